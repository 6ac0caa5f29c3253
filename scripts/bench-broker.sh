# shellcheck shell=bash
# Sourced by scripts/bench.sh and bench/pipe.sh: fresh Apache Kafka nodes
# (scripts/kafka.sh) on free 127.0.0.1 ports for a benchmark run.
#
#   bench_broker_start WORK WEIR [NODES]  prepare NODES nodes (default 1) under WORK/kafka,
#                                         start them in the background, export WEIR_BROKERS
#                                         and wait until WEIR sees every one of them
#   bench_broker_stop                     stop them (callers run this from their EXIT trap)
#
# bench_broker holds the nodes' pids: scripts/kafka.sh start execs the JVM,
# so a pid is the JVM's own and a kill reaches it.
bench_broker=

bench_broker_start() {
    local work=$1 weir=$2 nodes=${3:-1} port i brokers=""
    # Four consecutive free ports (PLAINTEXT, controller, SASL, SSL) per
    # node, nodes 10 apart, on 127.0.0.1, away from the test suite's and a
    # developer's 9092.
    port=$(python3 - "$nodes" <<'PY'
import random, socket, sys
nodes = int(sys.argv[1])
for _ in range(1000):
    base = random.randrange(20000, 32000, 10 * nodes)
    try:
        for n in range(nodes):
            for k in range(4):
                s = socket.socket(); s.bind(("127.0.0.1", base + 10 * n + k)); s.close()
        print(base); break
    except OSError:
        pass
PY
)
    rm -rf "$work/kafka"
    scripts/kafka.sh prepare "$work/kafka" "$nodes" "$port" >/dev/null
    bench_broker=""
    for ((i = 0; i < nodes; i++)); do
        scripts/kafka.sh start "$work/kafka/node-$i" >"$work/broker-$i.log" 2>&1 &
        bench_broker+="${bench_broker:+ }$!"
        brokers+="${brokers:+,}127.0.0.1:$((port + 10 * i))"
    done
    export WEIR_BROKERS=$brokers
    local pid
    for _ in $(seq 1 120); do
        [ "$("$weir" cluster --output json --timeout 1s 2>/dev/null |
            python3 -c 'import json, sys; print(len(json.load(sys.stdin)["brokers"]))' 2>/dev/null)" = "$nodes" ] && break
        for pid in $bench_broker; do
            kill -0 "$pid" 2>/dev/null || { cat "$work"/kafka/node-*/server.log >&2; exit 1; }
        done
        sleep 1
    done
    "$weir" topics list >/dev/null
}

bench_broker_stop() {
    [ -n "$bench_broker" ] || return 0
    local pid
    # shellcheck disable=SC2086
    kill $bench_broker 2>/dev/null || true
    for pid in $bench_broker; do
        wait "$pid" 2>/dev/null || true
    done
    bench_broker=
}
