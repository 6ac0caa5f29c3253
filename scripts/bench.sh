#!/usr/bin/env bash
# weir against the clients a user would otherwise pick, on the same local
# broker, in one run: rust-rdkafka (librdkafka), Confluent's Rust client
# (confluent-kafka 1.0, a translation of the Java client), Kafka's own Java
# perf tools, and kcat.
#
# Builds `weir`, bench/rdkafka-baseline and bench/confluent-baseline in
# release mode, starts a fresh single-node Apache Kafka (scripts/kafka.sh)
# on free 127.0.0.1 ports, and runs every scenario for each tool of TOOLS
# alternately (the order rotates each round), ROUNDS times. Each run is its
# own process under GNU time (client CPU user+sys, peak RSS); the broker's
# CPU during the run is read from /proc. Prints a markdown table of medians
# (peak RSS: the largest) and the issue's targets; raw results go to
# target/bench/results.jsonl.
#
#   ROUNDS=3 RECORDS=1000000 SIZE=100 RATE=10000 LATENCY_RECORDS=50000
#   BIG=100000x10240   produce and consume also RECORDSxSIZE (empty: only RECORDS x SIZE)
#   CODECS="none lz4 zstd"   PARTITIONS="1 6"   (produce and consume cases)
#   FETCH_WAIT=     (unset: each client's default fetch wait, as a user runs it)
#   SCENARIOS="produce consume latency cli rf3 groups pipe"   (a subset runs only those)
#   TOOLS="weir rdkafka-defaults rdkafka-tuned confluent-defaults confluent-tuned java rskafka-raw"
#                   (produce, consume and latency; java and rskafka-raw have no latency job;
#                   rskafka-raw, bench/rskafka-raw, is the plainest loop on weir's own client
#                   library: the reference for "weir reaches 90 % of it")
#   CLI_PARTITIONS=1   partitions of the cli scenario's topics
#
# Every consume scenario reads two topics: one written by `weir bench
# produce` (batches of up to 1 MiB) and one written by Kafka's own
# ProducerPerformance with the Java client's defaults (batch.size 16 KiB,
# linger.ms 5): topics as users have them.
#
# rf3 runs the produce cases of RECORDS x SIZE again on three nodes (a
# fresh KRaft cluster in place of the single node), topics with replication
# factor 3 and min.insync.replicas=2, every tool with acks=all: the setting
# users run.
#
# cli times whole processes, as a user runs them, weir against kcat:
# produce a file of RECORDS lines of SIZE bytes (with and without keys),
# consume to the end into /dev/null, and consume as JSON.
#
# pipe is bench/pipe.sh on this broker: weir pipe against a Java
# consume-transform-produce loop, with RECORDS, SIZE and ROUNDS; its table
# goes to target/bench/pipe.md (about 2 minutes at the defaults).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
records=${RECORDS:-1000000}
size=${SIZE:-100}
rate=${RATE:-10000}
latency_records=${LATENCY_RECORDS:-50000}
# Kafka answers a fetch as soon as data arrives, so the latency scenario
# runs with each client's default maximum fetch wait unless asked.
fetch_wait=${FETCH_WAIT:-}
scenarios=${SCENARIOS:-produce consume latency cli rf3 groups pipe}
read -r -a codecs <<<"${CODECS:-none lz4 zstd}"
read -r -a partition_counts <<<"${PARTITIONS:-1 6}"
big=${BIG-100000x10240}
read -r -a tools <<<"${TOOLS:-weir rdkafka-defaults rdkafka-tuned confluent-defaults confluent-tuned java rskafka-raw}"
cli_partitions=${CLI_PARTITIONS:-1}
out=target/bench
mkdir -p "$out"
wants() { [[ " ${tools[*]} " == *" $1"* ]]; }

# Debian packages: cmake and the libcurl headers for librdkafka's cmake
# build (it includes curl.h even with curl off), GNU time for the numbers.
missing=()
command -v cmake >/dev/null || missing+=(cmake)
[ -e /usr/include/curl/curl.h ] || ls /usr/include/*/curl/curl.h >/dev/null 2>&1 || missing+=(libcurl4-openssl-dev)
[ -x /usr/bin/time ] || missing+=(time)
command -v python3 >/dev/null || missing+=(python3)
[[ " $scenarios " != *" cli "* ]] || command -v kcat >/dev/null || missing+=(kcat)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "== installing ${missing[*]}" >&2
        apt-get update -qq >&2 && apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "the benchmark needs: sudo apt-get install ${missing[*]}" >&2
        exit 1
    fi
fi

echo "== building weir and the baselines (release)" >&2
cargo build --release --locked --quiet --bin weir
weir=$PWD/target/release/weir
baseline=$PWD/bench/rdkafka-baseline/target/release/rdkafka-baseline
confluent=$PWD/bench/confluent-baseline/target/release/confluent-baseline
# Always built: its histogram source is weir's, and `version` names librdkafka.
cargo build --release --locked --quiet --manifest-path bench/rdkafka-baseline/Cargo.toml
if wants confluent; then
    cargo build --release --locked --quiet --manifest-path bench/confluent-baseline/Cargo.toml
fi
raw=$PWD/bench/rskafka-raw/target/release/rskafka-raw
if wants rskafka-raw; then
    cargo build --release --locked --quiet --manifest-path bench/rskafka-raw/Cargo.toml
fi
kafka_libs=$(scripts/kafka.sh install)
# Kafka's perf tools as bin/kafka-producer-perf-test.sh and
# kafka-consumer-perf-test.sh start them (kafka-run-class.sh's JVM options,
# KAFKA_HEAP_OPTS=-Xmx512M), logging warnings to stderr.
java_tool=(java -Xmx512M -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
    -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$(dirname "$kafka_libs")/tools-log4j2.properties" -cp "$kafka_libs/*")

work=$(mktemp -d)
# shellcheck source=scripts/bench-broker.sh
. scripts/bench-broker.sh
trap 'status=$?; bench_broker_stop; rm -rf "$work"; exit $status' EXIT
bench_broker_start "$work" "$weir"
kafka_version=$(basename "$(dirname "$(scripts/kafka.sh install)")")

# A broker just started spends several times more CPU per record on its
# first few hundred requests (its JIT compiling) than later: unmeasured,
# write and read a topic once, so that the first scenario's first tool
# does not pay for it.
echo "== warming the broker up" >&2
"$weir" bench produce -t bench-warmup --partitions 6 -n "$records" --size "$size" >/dev/null
"$weir" bench consume -t bench-warmup -n "$records" >/dev/null
"$weir" topics delete bench-warmup >/dev/null

results=$out/results.jsonl
: >"$results"
{
    echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r)"
    echo "weir $("$weir" --version | cut -d' ' -f2) ($(rustc --version | cut -d' ' -f1-2)); $("$baseline" version)$(wants confluent && echo "; $("$confluent" version)"); Apache Kafka ${kafka_version#kafka-} (one KRaft node, heap 512 MiB), 127.0.0.1"
    echo "tools: ${tools[*]}$([[ " $scenarios " == *" cli "* ]] && echo "; kcat $(kcat -V 2>&1 | sed -n 's/^Version \([^ ]*\).*librdkafka \([^ ]*\).*/\1 (librdkafka \2)/p')")"
    echo "$rounds rounds; $records records of $size B; latency: $latency_records records at $rate/s, fetch wait ${fetch_wait:-each client default}"
    # Other work on the machine shows here; the alternation keeps the ratios.
    echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out/machine.txt" >&2

command_for() {
    case "$1" in
        weir) echo "$weir bench" ;;
        # The producer before idempotence (one batch at a time per partition).
        weir-no-idempotence) echo "$weir bench" ;;
        rdkafka-defaults) echo "$baseline --profile defaults" ;;
        rdkafka-tuned) echo "$baseline --profile tuned" ;;
        # A 35 s deadline (delivery.timeout.ms, at least linger.ms plus the
        # 30 s request.timeout.ms, and the consume job's):
        # runs take 1-10 s, and the client's default producer leaves some
        # batches unsent until the deadline in most 6-partition runs
        # (BENCHMARKS.md), which at its 60 s would add a minute each.
        confluent-defaults) echo "$confluent --timeout-secs 35 --profile defaults" ;;
        confluent-tuned) echo "$confluent --timeout-secs 35 --profile tuned" ;;
        rskafka-raw) echo "$raw" ;;
    esac
}

# The broker's CPU so far, in ms: every thread's run time from schedstat
# (/proc/PID/stat counts 10 ms ticks, too coarse for one run). A broker
# just started, or just written to, spends more per record than one that
# has served a while (its JIT still compiling), so each consume scenario
# reads its topics once before the measured rounds. A thread that ends
# between the listing and the read is skipped (before, the failed read
# ended the whole run without a message, under `set -e` and pipefail: the
# three JVMs of rf3 start and end threads often); its time is then missing
# from the sum, so a run's broker CPU can come out low, even negative.
broker_cpu_ms() {
    local pid
    for pid in $bench_broker; do
        cat /proc/"$pid"/task/*/schedstat 2>/dev/null || true
    done | awk '{s += $1} END {printf "%d", s / 1e6}'
}

# Kafka's perf tools with the settings a user tuning them would pass
# (BENCHMARKS.md): weir's batch size, the same linger and codec, a buffer
# that holds a whole run; fetches and polls as large as rdkafka-tuned's.
JAVA_PRODUCER=(acks=all linger.ms=5 batch.size=1032192 buffer.memory=268435456)
JAVA_CONSUMER=(max.partition.fetch.bytes=10485760 fetch.max.bytes=104857600 max.poll.records=10000)

# java_command MODE ARGS...: the perf tool's command line, in the array
# `cmd`, for weir bench's produce or consume arguments; false for latency
# (Kafka's EndToEndLatency sends one record at a time and waits for it:
# another measurement).
java_command() {
    local mode=$1 topic="" n=$records sz=$size codec=none prop
    shift
    while [ $# -gt 0 ]; do
        case "$1" in
            -t) topic=$2; shift ;;
            -n) n=$2; shift ;;
            --size) sz=$2; shift ;;
            --compression) codec=$2; shift ;;
        esac
        shift
    done
    case "$mode" in
        produce)
            cmd=("${java_tool[@]}" org.apache.kafka.tools.ProducerPerformance --bootstrap-server "$WEIR_BROKERS"
                --topic "$topic" --num-records "$n" --record-size "$sz" --throughput -1
                --command-property "${JAVA_PRODUCER[@]}" compression.type="$codec") ;;
        consume)
            cmd=("${java_tool[@]}" org.apache.kafka.tools.ConsumerPerformance --bootstrap-server "$WEIR_BROKERS"
                --topic "$topic" --num-records "$n" --timeout 60000)
            for prop in "${JAVA_CONSUMER[@]}"; do cmd+=(--command-property "$prop"); done ;;
        *) return 1 ;;
    esac
}

# java_report MODE SIZE: the perf tool's output (stdin) as weir bench's
# JSON. ProducerPerformance's last line is its total (first send to last
# acknowledgement, send-to-acknowledgement latencies); ConsumerPerformance's
# fetch.* columns leave out the group join (weir and the baselines join
# no group).
java_report() {
    python3 -c '
import json, re, sys
mode, size = sys.argv[1], int(sys.argv[2])
lines = [l for l in sys.stdin.read().splitlines() if l.strip()]
r = {"tool": "java", "mode": mode, "compression": "none", "failed": 0, "interrupted": False,
     "latency_ms": None, "ack_latency_ms": None}
if mode == "produce":
    m = re.match(r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
                 r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99.9th", lines[-1])
    n, rps, mbs, avg, mx, p50, p95, p99, p999 = m.groups()
    r.update(records=int(n), bytes=int(n) * size, records_per_sec=float(rps), mb_per_sec=float(mbs),
             elapsed_s=int(n) / float(rps),
             latency_ms=dict(avg=float(avg), max=float(mx), p50=float(p50), p95=float(p95),
                             p99=float(p99), p99_9=float(p999)))
else:
    head = [h.strip() for h in lines[-2].split(",")]
    row = dict(zip(head, [v.strip() for v in lines[-1].split(",")]))
    n = int(row["data.consumed.in.nMsg"])
    r.update(records=n, bytes=int(float(row["data.consumed.in.MB"]) * 1048576),
             records_per_sec=float(row["fetch.nMsg.sec"]), mb_per_sec=float(row["fetch.MB.sec"]),
             elapsed_s=float(row["fetch.time.ms"]) / 1000)
print(json.dumps(r))' "$1" "$2"
}

# run SCENARIO TOOL ROUND ARGS...: one measured process, one result line.
# ARGS are weir bench's (produce|consume|latency ...).
run() {
    local scenario=$1 tool=$2 round=$3
    shift 3
    local cmd=() b0 b1
    if [ "$tool" = java ]; then
        java_command "$@" || return 0
    else
        # shellcheck disable=SC2207
        cmd=($(command_for "$tool") "$@" --json)
    fi
    b0=$(broker_cpu_ms)
    if ! /usr/bin/time -f "%U %S %M" -o "$work/time" "${cmd[@]}" >"$work/report" 2>"$work/err"; then
        failed "$scenario" "$tool" "$round"
        return 0
    fi
    b1=$(broker_cpu_ms)
    if [ "$tool" = java ]; then
        java_report "$1" "$size" <"$work/report" >"$work/report.json"
        mv "$work/report.json" "$work/report"
    fi
    record "$scenario" "$tool" "$round" $((b1 - b0))
}

# failed SCENARIO TOOL ROUND: a run that failed is shown, listed at the
# end, and left out of the table; the other runs go on.
failures=()
failed() {
    echo "!! $1 $2 round $3 failed:" >&2
    tail -n 5 "$work/err" >&2
    failures+=("$1, $2, round $3: $(tail -n 1 "$work/err" | cut -c1-200)")
}

# record SCENARIO TOOL ROUND BROKER_MS: the JSON report in $work/report and
# the times in $work/time as one line of results.jsonl, and a progress line.
record() {
    python3 - "$1" "$2" "$3" "$4" "$work/report" "$work/time" >>"$results" <<'EOF'
import json, sys
scenario, tool, rnd, broker_ms, report, timing = sys.argv[1:]
r = json.loads(open(report).read().strip().splitlines()[-1])
user, sys_, rss = open(timing).read().split()[-3:]
r.update(scenario=scenario, tool=tool, round=int(rnd), cpu_s=float(user) + float(sys_), rss_kib=int(rss),
         broker_cpu_s=int(broker_ms) / 1000)
print(json.dumps(r))
EOF
    python3 -c '
import json, sys
r = json.loads(open(sys.argv[1]).read().splitlines()[-1])
l = r["latency_ms"] or {}
print("   %-32s %-18s %11.0f rec/s %7.1f MB/s  cpu %.2f s  rss %.0f MiB  broker %.2f s%s" % (r["scenario"], r["tool"],
    r["records_per_sec"], r["mb_per_sec"], r["cpu_s"], r["rss_kib"] / 1024, r["broker_cpu_s"],
    "  p50 %.2f p99 %.2f ms" % (l["p50"], l["p99"]) if l else ""))' <(tail -n1 "$results") >&2
}

# Each round starts with the next tool, so no tool always goes first.
rotated() {
    local round=$1 i n=${#tools[@]}
    for ((i = 0; i < n; i++)); do echo "${tools[$(((round + i) % n))]}"; done
}

# java_fill TOPIC PARTITIONS CODEC: RECORDS records of SIZE bytes written by
# Kafka's ProducerPerformance with the Java client's defaults (batch.size
# 16 KiB, linger.ms 5, acks all, idempotent) but the codec.
java_fill() {
    "$weir" topics create "$1" --partitions "$2" >/dev/null
    "${java_tool[@]}" org.apache.kafka.tools.ProducerPerformance --bootstrap-server "$WEIR_BROKERS" \
        --topic "$1" --num-records "$records" --record-size "$size" --throughput -1 \
        --command-property compression.type="$3" >"$work/fill" 2>&1 ||
        { cat "$work/fill" >&2; return 1; }
}

# high_watermarks TOPIC: the sum of the topic's latest offsets.
high_watermarks() {
    "$weir" topics describe "$1" | awk '/^ *PARTITION/ {p = 1; next} p && NF {s += $NF} END {print s + 0}'
}

# cli_run SCENARIO TOOL ROUND BYTES OUT CMD...: one whole process as a user
# runs it, stdout to OUT; records/s is RECORDS over its wall time.
cli_run() {
    local scenario=$1 tool=$2 round=$3 bytes=$4 output=$5 b0 b1
    shift 5
    b0=$(broker_cpu_ms)
    if ! /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$@" >"$output" 2>"$work/err"; then
        failed "$scenario" "$tool" "$round"
        return 0
    fi
    b1=$(broker_cpu_ms)
    python3 -c '
import json, sys
records, nbytes, timing, tool, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
wall = max(float(open(timing).read().split()[-4]), 1e-3)
print(json.dumps({"tool": tool, "mode": mode, "records": records, "bytes": nbytes, "failed": 0,
    "elapsed_s": wall, "records_per_sec": records / wall, "mb_per_sec": nbytes / wall / 1048576,
    "latency_ms": None, "ack_latency_ms": None, "interrupted": False}))' \
        "$records" "$bytes" "$work/time" "$tool" "${scenario#cli }" >"$work/report"
    record "$scenario" "$tool" "$round" $((b1 - b0))
}

# The cli scenario: weir's commands against kcat's and Kafka's console
# tools' (with their defaults, as kafka-console-producer.sh and
# kafka-console-consumer.sh start them), as whole processes. The console
# consumer stops after RECORDS records (it has no "until the end").
cli_tools=(weir kcat java)
cli() {
    java_console_producer=("${java_tool[@]}" org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$WEIR_BROKERS")
    java_console_consumer=("${java_tool[@]}" org.apache.kafka.tools.consumer.ConsoleConsumer
        --bootstrap-server "$WEIR_BROKERS" --from-beginning --max-messages "$records")
    local lines=$work/lines.txt keyed=$work/keyed.txt p=$cli_partitions round tool topic n
    local brokers=$WEIR_BROKERS
    python3 - "$records" "$size" "$lines" "$keyed" <<'EOF'
import sys
n, size, plain, keyed = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
state = 0x9E3779B97F4A7C15
value = bytearray()
for _ in range(size):
    state ^= (state << 13) & 0xFFFFFFFFFFFFFFFF
    state ^= state >> 7
    state ^= (state << 17) & 0xFFFFFFFFFFFFFFFF
    value.append(65 + state % 26)
with open(plain, "wb") as f:
    f.write((bytes(value) + b"\n") * n)
with open(keyed, "wb") as f:
    for i in range(n):
        key = b"k%07d:" % i
        f.write(key + bytes(value[: max(size - len(key), 0)]) + b"\n")
EOF
    for what in produce "produce -K" consume "consume json"; do
        scenario="cli $what ${p}p"
        echo "== $scenario: $records lines of $size B, whole processes: weir against kcat" >&2
        topic=bench-cli-read
        if [ "$what" = consume ]; then
            "$weir" topics create "$topic" --partitions "$p" >/dev/null
            "$weir" produce -t "$topic" "$lines" >/dev/null 2>&1
            # Unmeasured: each tool reads it once, and reads all of it.
            for tool in "${cli_tools[@]}"; do
                case $tool in
                    weir) n=$("$weir" consume -t "$topic" -e | wc -l) ;;
                    kcat) n=$(kcat -C -b "$brokers" -t "$topic" -e -o beginning -q | wc -l) ;;
                    java) n=$("${java_console_consumer[@]}" --topic "$topic" 2>/dev/null | wc -l) ;;
                esac
                [ "$n" = "$records" ] || { echo "!! $tool read $n of $records lines of $topic" >&2; return 1; }
            done
        fi
        for round in $(seq 1 "$rounds"); do
            for tool in $(for ((i = 0; i < ${#cli_tools[@]}; i++)); do
                echo "${cli_tools[$(((round + i) % ${#cli_tools[@]}))]}"; done); do
                # The console consumer has no JSON output.
                [ "$tool" = java ] && [ "$what" = "consume json" ] && continue
                case "$what" in
                    produce | "produce -K")
                        topic=bench-cli-$tool-$round
                        "$weir" topics create "$topic" --partitions "$p" >/dev/null
                        local file=$lines bytes=$((records * size)) kflag=()
                        if [ "$what" = "produce -K" ]; then
                            file=$keyed bytes=$((records * (size - 1))) kflag=(-K :)
                        fi
                        case $tool in
                            weir) cli_run "$scenario" weir "$round" "$bytes" /dev/null \
                                "$weir" produce -t "$topic" "${kflag[@]}" "$file" ;;
                            kcat) cli_run "$scenario" kcat "$round" "$bytes" /dev/null \
                                kcat -P -b "$brokers" -t "$topic" "${kflag[@]}" -l "$file" ;;
                            java) java_kflag=()
                                [ "$what" = "produce -K" ] && java_kflag=(--reader-property parse.key=true
                                    --reader-property key.separator=:)
                                cli_run "$scenario" java "$round" "$bytes" /dev/null \
                                    "${java_console_producer[@]}" --topic "$topic" "${java_kflag[@]}" <"$file" ;;
                        esac
                        n=$(high_watermarks "$topic")
                        [ "$n" = "$records" ] || failures+=("$scenario, $tool, round $round: $n of $records records written")
                        "$weir" topics delete "$topic" >/dev/null
                        ;;
                    consume)
                        case $tool in
                            weir) cli_run "$scenario" weir "$round" $((records * size)) /dev/null \
                                "$weir" consume -t "$topic" -e ;;
                            kcat) cli_run "$scenario" kcat "$round" $((records * size)) /dev/null \
                                kcat -C -b "$brokers" -t "$topic" -e -o beginning -q ;;
                            java) cli_run "$scenario" java "$round" $((records * size)) /dev/null \
                                "${java_console_consumer[@]}" --topic "$topic" ;;
                        esac
                        ;;
                    "consume json")
                        case $tool in
                            weir) cli_run "$scenario" weir "$round" $((records * size)) /dev/null \
                                "$weir" consume -t "$topic" -e --json ;;
                            kcat) cli_run "$scenario" kcat "$round" $((records * size)) /dev/null \
                                kcat -C -b "$brokers" -t "$topic" -e -o beginning -q -J ;;
                        esac
                        ;;
                esac
            done
        done
    done
    "$weir" topics delete bench-cli-read >/dev/null
}

cases=()
for codec in "${codecs[@]}"; do
    for p in "${partition_counts[@]}"; do cases+=("$p $codec"); done
done
# The record shapes of produce and consume: RECORDS x SIZE, then BIG.
shapes=("${records}x$size")
[ -z "$big" ] || shapes+=("$big")
base_records=$records base_size=$size
# shape_suffix: the scenario name's mark of a shape other than the first.
shape_suffix() {
    [ "$records" = "$base_records" ] && [ "$size" = "$base_size" ] && return 0
    if [ $((size % 1024)) = 0 ]; then echo " $((size / 1024))KiB"; else echo " ${size}B"; fi
}

# produce_cases SUFFIX TOPIC_FLAGS...: every produce case and shape, each
# tool on a fresh topic (created with TOPIC_FLAGS) per run.
produce_cases() {
    local suffix=$1 shape p codec round tool topic extra
    shift
    for shape in "${shapes[@]}"; do
        records=${shape%x*} size=${shape#*x}
        for c in "${cases[@]}"; do
            read -r p codec <<<"$c"
            scenario="produce ${p}p $codec$(shape_suffix)$suffix"
            echo "== $scenario: $records x $size B" >&2
            for round in $(seq 1 "$rounds"); do
                for tool in $(rotated "$round") $(wants weir && echo weir-no-idempotence); do
                    topic=bench-produce-$p-$codec-$tool-$round
                    extra=()
                    [ "$tool" = weir-no-idempotence ] && extra=(--no-idempotence)
                    # On three nodes a create can time out after the controller
                    # made the topic; the retry then finds it there.
                    "$weir" topics create "$topic" --partitions "$p" "$@" >/dev/null 2>"$work/create" ||
                        grep -q "already exists" "$work/create" || { cat "$work/create" >&2; exit 1; }
                    # Replicated: one record acknowledged by every replica
                    # before the measured run. A topic just created has
                    # followers not yet fetching from its leader, and the
                    # first acks=all batches waited for them: runs that
                    # began at once had a p99 near 1 s, runs 3 s later
                    # none (BENCHMARKS.md, "A second full run").
                    if [ $# -gt 0 ]; then
                        echo warm-up | "$weir" produce -t "$topic" >/dev/null
                    fi
                    run "$scenario" "$tool" "$round" produce -t "$topic" --partitions "$p" -n "$records" \
                        --size "$size" --compression "$codec" "${extra[@]}"
                    "$weir" topics delete "$topic" >/dev/null
                done
            done
        done
    done
    records=$base_records size=$base_size
}

started=$(date +%s)
for what in $scenarios; do
    case "$what" in
    produce)
        produce_cases ""
        ;;
    rf3)
        echo "== rf3: three nodes in place of the single one" >&2
        bench_broker_stop
        bench_broker_start "$work" "$weir" 3
        "$weir" bench produce -t bench-warmup --partitions 6 -n "$records" --size "$size" >/dev/null
        "$weir" topics delete bench-warmup >/dev/null
        # The first shape only: replication's cost per request shows there.
        all_shapes=("${shapes[@]}")
        shapes=("${shapes[0]}")
        produce_cases " rf3" --replication-factor 3 --config min.insync.replicas=2
        shapes=("${all_shapes[@]}")
        bench_broker_stop
        bench_broker_start "$work" "$weir"
        ;;
    consume)
        for shape in "${shapes[@]}"; do
            records=${shape%x*} size=${shape#*x}
            for c in "${cases[@]}"; do
                read -r p codec <<<"$c"
                for writer in weir java; do
                    topic=bench-consume-$p-$codec-$writer
                    if [ "$writer" = weir ]; then
                        scenario="consume ${p}p $codec$(shape_suffix)"
                        echo "== $scenario: $records x $size B (produced once by weir bench: batches up to 1 MiB)" >&2
                        "$weir" bench produce -t "$topic" --partitions "$p" -n "$records" --size "$size" \
                            --compression "$codec" >/dev/null
                    else
                        scenario="consume ${p}p $codec$(shape_suffix) java-written"
                        echo "== $scenario: $records x $size B (produced once by ProducerPerformance: 16 KiB batches)" >&2
                        java_fill "$topic" "$p" "$codec"
                    fi
                    # Unmeasured: the broker's first read of a topic just written
                    # costs it more (see broker_cpu_ms), whichever tool comes first.
                    "$weir" bench consume -t "$topic" -n "$records" >/dev/null
                    for round in $(seq 1 "$rounds"); do
                        for tool in $(rotated "$round"); do
                            run "$scenario" "$tool" "$round" consume -t "$topic" -n "$records"
                        done
                    done
                    "$weir" topics delete "$topic" >/dev/null
                done
            done
        done
        records=$base_records size=$base_size
        ;;
    latency)
        for p in 1 6; do
            scenario="latency ${p}p ${rate}/s"
            echo "== $scenario: $latency_records x $size B, send to consume" >&2
            for round in $(seq 1 "$rounds"); do
                for tool in $(rotated "$round"); do
                    [ "$tool" = java ] || [ "$tool" = rskafka-raw ] && continue
                    topic=bench-latency-$p-$tool-$round
                    "$weir" topics create "$topic" --partitions "$p" >/dev/null
                    run "$scenario" "$tool" "$round" latency -t "$topic" --partitions "$p" -n "$latency_records" \
                        --size "$size" --rate "$rate" ${fetch_wait:+--fetch-max-wait "$fetch_wait"}
                    "$weir" topics delete "$topic" >/dev/null
                done
            done
        done
        ;;
    cli)
        cli
        ;;
    groups)
        echo "== groups: takeover after SIGKILL, SIGTERM and a join; one member against three" >&2
        python3 bench/groups.py "$weir" "$out/groups.md" >&2
        ;;
    pipe)
        echo "== pipe: weir pipe against a Java consume-transform-produce loop (bench/pipe.sh)" >&2
        BROKERS=$WEIR_BROKERS RECORDS=$records SIZE=$size ROUNDS=$rounds bench/pipe.sh >&2
        ;;
    *) echo "unknown scenario \"$what\" (produce, consume, latency, cli, rf3, groups, pipe)" >&2; exit 2 ;;
    esac
done
echo "$(($(date +%s) - started)) s of measurements; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" |
    tee -a "$out/machine.txt" >&2
if [ ${#failures[@]} -gt 0 ]; then
    printf 'failed runs (left out of the table):\n' | tee -a "$out/machine.txt" >&2
    printf '  %s\n' "${failures[@]}" | tee -a "$out/machine.txt" >&2
fi

python3 - "$results" <<'EOF' | tee "$out/table.md"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
order = []
for r in rows:
    if r["scenario"] not in order:
        order.append(r["scenario"])
tools = ["weir", "weir-no-idempotence", "rdkafka-defaults", "rdkafka-tuned", "confluent-defaults",
         "confluent-tuned", "java", "kcat", "rskafka-raw"]
med = lambda xs: statistics.median(xs) if xs else float("nan")

def stats(scenario, tool):
    rs = [r for r in rows if r["scenario"] == scenario and r["tool"] == tool]
    if not rs:
        return None
    lat = [r["latency_ms"] for r in rs if r["latency_ms"]]
    return {
        "rps": med([r["records_per_sec"] for r in rs]),
        "mbps": med([r["mb_per_sec"] for r in rs]),
        "cpu": med([r["cpu_s"] for r in rs]),
        "rss": max(r["rss_kib"] for r in rs) / 1024,
        "broker": med([r.get("broker_cpu_s", float("nan")) for r in rs]),
        "p50": med([l["p50"] for l in lat]) if lat else None,
        "p99": med([l["p99"] for l in lat]) if lat else None,
        "p999": med([l["p99_9"] for l in lat if l.get("p99_9") is not None]) if lat else None,
    }

ms = lambda v: "–" if v is None else ("%.1f" % v if v >= 1 else "%.2f" % v)
print("| scenario | tool | records/s | MB/s | CPU s | broker CPU s | peak RSS MiB | p50 ms | p99 ms | p99.9 ms | weir ÷ tool (records/s) |")
print("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
table = {}
for s in order:
    for t in tools:
        x = stats(s, t)
        if x is None:
            continue
        table[s, t] = x
        w = table.get((s, "weir"))
        ratio = "" if t == "weir" or not w else "%.2f×" % (w["rps"] / x["rps"])
        print("| %s | %s | %.0f | %.1f | %.2f | %.2f | %.0f | %s | %s | %s | %s |" % (
            s, t, x["rps"], x["mbps"], x["cpu"], x["broker"], x["rss"], ms(x["p50"]), ms(x["p99"]),
            ms(x["p999"]), ratio))

# The issue's targets, against the best of the other clients in the same
# scenario (not weir without idempotence, not kcat: the cli scenario is
# whole processes): records/s produce >= 1.2x and consume >= 1.5x the
# fastest, peak RSS <= 0.5x the smallest, p99 no worse than the lowest.
print()
print("Targets against the best of the others (records/s: produce ≥ 1.2×, consume ≥ 1.5×; peak RSS ≤ 0.5×; p99 no worse):")
print()
print("| scenario | records/s weir ÷ fastest | peak RSS weir ÷ smallest | p99 weir − lowest ms | CPU s weir ÷ least | weir ÷ rskafka-raw (≥ 0.9) |")
print("|---|--:|--:|--:|--:|--:|")
others = ["rdkafka-defaults", "rdkafka-tuned", "confluent-defaults", "confluent-tuned", "java"]
for s in order:
    w = table.get((s, "weir"))
    # The user's path (cli) against the other command-line tools.
    rest = [(t, table[s, t]) for t in (["kcat", "java"] if s.startswith("cli") else others) if (s, t) in table]
    if not w or not rest:
        continue
    mark = lambda ok: "✓" if ok else "✗"
    cells = []
    if s.startswith("latency"):
        cells.append("–")
    else:
        t, b = max(rest, key=lambda r: r[1]["rps"])
        need = 1.5 if s.startswith("consume") else 1.2
        cells.append("%.2f× %s (%s)" % (w["rps"] / b["rps"], mark(w["rps"] / b["rps"] >= need), t))
    t, b = min(rest, key=lambda r: r[1]["rss"])
    cells.append("%.2f %s (%s)" % (w["rss"] / b["rss"], mark(w["rss"] / b["rss"] <= 0.5), t))
    lat = [(t, x) for t, x in rest if x["p99"] is not None]
    if w["p99"] is not None and lat:
        t, b = min(lat, key=lambda r: r[1]["p99"])
        d = w["p99"] - b["p99"]
        cells.append("%+.2f %s (%s)" % (d, mark(d <= 0), t))
    else:
        cells.append("–")
    t, b = min(rest, key=lambda r: r[1]["cpu"])
    cells.append("%.2f (%s)" % (w["cpu"] / b["cpu"], t))
    raw = table.get((s, "rskafka-raw"))
    cells.append("%.2f %s" % (w["rps"] / raw["rps"], mark(w["rps"] / raw["rps"] >= 0.9)) if raw else "–")
    print("| %s | %s |" % (s, " | ".join(cells)))

# The spread: min … max of records/s over the rounds, per scenario and tool.
print()
print("Spread over the rounds, records/s (min … max):")
print()
for s in order:
    parts = []
    for t in tools:
        rs = [r["records_per_sec"] for r in rows if r["scenario"] == s and r["tool"] == t]
        if rs:
            parts.append("%s %.0f … %.0f" % (t, min(rs), max(rs)))
    print("- %s: %s" % (s, "; ".join(parts)))
EOF
