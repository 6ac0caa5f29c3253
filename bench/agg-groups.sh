#!/usr/bin/env bash
# A windowed aggregate grouped by a field of the value across the members
# of a group: weir (`weir count`/`weir agg --by json:/level -g G`, several
# processes of one group) against Kafka Streams (bench/streams-agg's
# StreamsAggGroups: groupBy, which writes every record to a repartition
# topic, several JVMs of one application.id), on the same local broker.
#
# Builds weir (release) and bench/streams-agg (Maven, kafka-streams of the
# version scripts/kafka.sh installs), starts a fresh single-node Apache
# Kafka (scripts/bench-broker.sh) on free 127.0.0.1 ports, fills a
# 12-partition input topic with N log records keyed by host (~100-byte JSON
# values with "level" and a numeric "bytes", event timestamps spread over
# SPAN seconds), and for each aggregate list in AGGS, tool in TOOLS and
# number of processes in INSTANCES, from a fresh group and output topic:
#
#   weir      weir count -t IN --by json:/level --window 60s --grace 600s --emit updates
#                 -g G --to-topic OUT --json --commit-interval 1000ms
#             (count,sum,max: weir agg ... --agg count --agg sum:json:/bytes --agg max:json:/bytes)
#   streams   java -cp bench/streams-agg/target/streams-agg.jar weir.bench.StreamsAggGroups
#                 --from IN --to OUT --app-id G --state-dir DIR/G-I --window-ms 60000
#                 --grace-ms 600000 --group-by /level --agg count[,sum,max] --field /bytes
#                 --commit-interval-ms 1000
#             (groupBy(level) through G-by-repartition, TimeWindows, count() or
#             aggregate() into a RocksDB window store (G-counts-changelog,
#             G-aggs-changelog), at_least_once, one stream thread per process)
#
# and measures (bench/agg-groups.py says exactly how): records/s until the
# group's committed position reaches the end of the input, the time until
# the output holds the final value of every (window, level) (by the
# broker's append times), CPU seconds per million records and peak RSS
# (sum and max over the processes) from /proc, the bytes and records
# written to internal topics (Streams: its -repartition and -changelog
# topics; weir: __weir_offsets-G-* and what __weir_offsets grew by), and
# checks the last row per (window, level) of the output against the
# reference computed from the input. Prints a markdown table, also in
# target/bench/agg-groups.md; raw results in target/bench/agg-groups.jsonl,
# each process's stderr in target/bench/agg-groups-logs/.
#
#   N=1000000            input records
#   HOSTS=120            distinct record keys (hosts)
#   TOOLS="streams weir" TOOLS=streams runs Kafka Streams alone
#   INSTANCES="1 3"      processes per run, one run each
#   AGGS="count count,sum,max"   aggregate lists, one run each (count first;
#                        of count, sum, min, max of "bytes"; count alone: weir count)
#   WINDOW=60 GRACE=600 SPAN=600  window, grace and event-time span, seconds. The
#                        grace covers the span: Streams' repartition topic interleaves
#                        the input partitions as its tasks read them, far apart in
#                        event time on a backlog, and records further behind its
#                        stream time than the grace are dropped (with GRACE=60,
#                        200,000 records: 70% of them)
#   COMMIT_MS=1000       both tools' commit interval
#   EMIT=updates|final   updates: weir --emit updates, Streams without suppress (rows
#                        at every commit; the last per (window, level) is checked);
#                        final: weir --emit final, Streams suppress(untilWindowCloses),
#                        an input per run and closing records after the data
#   GUARANTEE=alos|eos   eos: weir --exactly-once, Streams exactly_once_v2
#   QUIET=15             seconds without a new output row after which an output
#                        that is not yet right counts as final
#   STREAMS_JAVA_OPTS=   JVM options for each Streams process (default: none)
#   TIMEOUT=900          seconds a run may take
#   BROKERS=HOST:PORT    a broker already running instead of a fresh one
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
out=target/bench
mkdir -p "$out"

missing=()
for tool in cargo mvn java python3; do command -v "$tool" >/dev/null || missing+=("$tool"); done
[ ${#missing[@]} -eq 0 ] || { echo "the agg-groups benchmark needs: ${missing[*]}" >&2; exit 1; }

echo "== building weir (release) and bench/streams-agg (Maven)" >&2
cargo build --release --locked --quiet --bin weir
weir=$PWD/target/release/weir
if [[ " ${TOOLS:-streams weir} " == *" weir "* && " ${AGGS:-count count,sum,max} " == *,* ]] && ! "$weir" agg --help >/dev/null 2>&1; then
    echo "this weir has no \`weir agg\`: run AGGS=count or TOOLS=streams" >&2
    exit 1
fi
kafka_libs=$(scripts/kafka.sh install)
kafka_version=$(basename "$(dirname "$kafka_libs")")
kafka_version=${kafka_version#kafka-}
mvn -q -B -f bench/streams-agg/pom.xml -Dkafka.version="$kafka_version" package >"$out/streams-agg-build.log" 2>&1 ||
    { cat "$out/streams-agg-build.log" >&2; exit 1; }
jar=$PWD/bench/streams-agg/target/streams-agg.jar

work=$(mktemp -d)
# shellcheck source=scripts/bench-broker.sh
. scripts/bench-broker.sh
measuring=
cleanup() {
    local status=$?
    if [ -n "$measuring" ]; then
        # agg-groups.py's children (the processes measured, its pollers) go with it.
        pkill -TERM -P "$measuring" 2>/dev/null || true
        kill "$measuring" 2>/dev/null || true
        wait "$measuring" 2>/dev/null || true
    fi
    bench_broker_stop
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if [ -n "${BROKERS:-}" ]; then
    export WEIR_BROKERS=$BROKERS
else
    bench_broker_start "$work" "$weir"
fi

{
    echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r)"
    echo "weir $("$weir" --version | cut -d' ' -f2) ($(git rev-parse --short HEAD)); kafka-streams $kafka_version on $(java -version 2>&1 | head -1); Apache Kafka $kafka_version, $WEIR_BROKERS"
    echo "${N:-1000000} records (12 partitions, ${HOSTS:-120} hosts), by level; windows ${WINDOW:-60} s, grace ${GRACE:-600} s, over ${SPAN:-600} s of event time;" \
        "emit ${EMIT:-updates}, ${GUARANTEE:-alos}, commits every ${COMMIT_MS:-1000} ms; tools: ${TOOLS:-streams weir}; instances: ${INSTANCES:-1 3}; aggregates: ${AGGS:-count count,sum,max}"
    echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out/agg-groups.md" >&2

python3 bench/agg-groups.py "$weir" "$jar" "$work" "$out" >"$work/table" &
measuring=$!
status=0
wait "$measuring" || status=$?
measuring=
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/agg-groups.md" >&2
tee -a "$out/agg-groups.md" <"$work/table"
# A run whose output is wrong, or whose processes failed or did not stop
# cleanly on SIGTERM, fails the script (after the table).
exit "$status"
