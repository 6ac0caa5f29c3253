# shellcheck shell=bash
# Sourced by scripts/bench.sh and bench/pipe.sh: one fresh single-node
# Apache Kafka (scripts/kafka.sh) on free 127.0.0.1 ports for a benchmark run.
#
#   bench_broker_start WORK WEIR   prepare a node under WORK/kafka, start it in the background,
#                                  export WEIR_BROKERS and wait until WEIR can list topics
#   bench_broker_stop              stop it (callers run this from their EXIT trap)
#
# bench_broker holds the broker's pid: scripts/kafka.sh start execs the JVM,
# so the pid is the JVM's own and a kill reaches it.
bench_broker=

bench_broker_start() {
    local work=$1 weir=$2 port
    # Four consecutive free ports (PLAINTEXT, controller, SASL, SSL) on
    # 127.0.0.1, away from the test suite's and a developer's 9092.
    port=$(python3 -c '
import random, socket
for _ in range(1000):
    base = random.randrange(20000, 32000, 10)
    try:
        for k in range(4):
            s = socket.socket(); s.bind(("127.0.0.1", base + k)); s.close()
        print(base); break
    except OSError:
        pass')
    scripts/kafka.sh prepare "$work/kafka" 1 "$port" >/dev/null
    scripts/kafka.sh start "$work/kafka/node-0" >"$work/broker.log" 2>&1 &
    bench_broker=$!
    export WEIR_BROKERS=127.0.0.1:$port
    for _ in $(seq 1 120); do
        "$weir" topics list --timeout 1s >/dev/null 2>&1 && break
        kill -0 "$bench_broker" 2>/dev/null || { cat "$work/kafka/node-0/server.log" >&2; exit 1; }
        sleep 1
    done
    "$weir" topics list >/dev/null
}

bench_broker_stop() {
    [ -n "$bench_broker" ] || return 0
    kill "$bench_broker" 2>/dev/null || true
    wait "$bench_broker" 2>/dev/null || true
    bench_broker=
}
