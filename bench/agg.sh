#!/usr/bin/env bash
# `weir agg` against Kafka Streams (bench/streams-agg) computing the same
# windowed count and sum per key, on the same local broker, in one run.
#
# Builds weir (release) and the Streams application (Maven, kafka-streams
# of the version scripts/kafka.sh installs), starts a fresh single-node
# Apache Kafka (scripts/bench-broker.sh) on free 127.0.0.1 ports, and for
# each number of distinct keys in KEYS fills a 6-partition input topic with
# N records keyed by the group key: ~100-byte JSON values with the key and
# a numeric field "bytes", event timestamps spread over SPAN seconds. Then
# each tool in TOOLS, from a fresh group and output topic:
#
#   weir      weir agg -t IN --by json:/key --agg count --agg sum:json:/bytes
#                 --window 60s --emit final -g G --to-topic OUT --json --commit-interval 1000ms
#   streams   java -jar bench/streams-agg/target/streams-agg.jar --from IN --to OUT
#                 --app-id G --state-dir DIR --window-ms 60000 --grace-ms 0 --field /bytes
#                 --commit-interval-ms 1000
#                 (groupByKey, TimeWindows, aggregate into a RocksDB window store,
#                 suppress(untilWindowCloses), at_least_once, one stream thread)
#
# and measures (bench/agg.py says exactly how): records/s until its
# committed position reaches the end of the input, the time to its first
# output record, peak RSS (VmHWM) and CPU from /proc, the rows it wrote
# against the windows it has closed, and, after a SIGKILL and EXTRA new
# records, the time from the restart until its committed position moves
# again; then a SIGTERM must stop it cleanly. Prints a markdown table, also
# in target/bench/agg.md; raw results in target/bench/agg.jsonl, each
# process's stderr (Streams' timed events) in target/bench/agg-logs/.
# Restarts after a SIGKILL include the broker group's session timeout (45 s
# for both), as a restarted process meets it, unless weir runs as a static
# member (STATIC=1).
#
#   N=1000000           records per input topic
#   KEYS="100000 1000000"   distinct keys, one input topic each
#   TOOLS="weir streams"    TOOLS=streams runs Kafka Streams alone
#   WINDOW=60 GRACE=0 SPAN=600   window, grace and event-time span, seconds
#   COMMIT_MS=1000      both tools' commit interval (weir --commit-interval,
#                       Streams commit.interval.ms)
#   EMIT=final|updates  final: weir --emit final, Streams suppress(untilWindowCloses);
#                       updates: weir --emit updates, Streams without suppress
#   GUARANTEE=alos|eos  eos: weir --exactly-once, Streams exactly_once_v2
#   EXTRA=max(1000,N/100)   records appended before the restart
#   STREAMS_JAVA_OPTS=  JVM options for the Streams application (default: none,
#                       the JVM's defaults, as a user starts it)
#   STREAMS_WIPE_STATE=1    restart Streams without its state directory (a new
#                       host or container: the whole changelog is restored)
#   STREAMS_RETENTION_MS=   the window store's retention (Materialized.withRetention);
#                       default: the library's, window size plus grace. The store
#                       keeps a RocksDB instance per segment of max(retention/2, 60 s)
#                       per task, so a backlog opens and drops one per minute of event time
#   WEIR_AGG=count      run `weir count` (no sum) in place of `weir agg`, to try the
#                       weir side of this script before weir agg exists
#   WEIR_BY=json:/key   weir's --by (key: the record key, as Streams' groupByKey)
#   STATIC=1            weir joins as a static member (--group-instance-id
#                       bench-agg-0): the restart after the SIGKILL takes the
#                       partitions back without waiting out the session
#   TIMEOUT=900         seconds a tool may take to reach the end of its input
#   BROKERS=HOST:PORT   a broker already running instead of a fresh one
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
out=target/bench
mkdir -p "$out"

missing=()
for tool in cargo mvn java python3; do command -v "$tool" >/dev/null || missing+=("$tool"); done
[ ${#missing[@]} -eq 0 ] || { echo "the agg benchmark needs: ${missing[*]}" >&2; exit 1; }

echo "== building weir (release) and bench/streams-agg (Maven)" >&2
cargo build --release --locked --quiet --bin weir
weir=$PWD/target/release/weir
if [[ " ${TOOLS:-weir streams} " == *" weir "* && ${WEIR_AGG:-agg} == agg ]] && ! "$weir" agg --help >/dev/null 2>&1; then
    echo "this weir has no \`weir agg\`: run TOOLS=streams, or WEIR_AGG=count to try the weir side with weir count" >&2
    exit 1
fi
kafka_libs=$(scripts/kafka.sh install)
kafka_version=$(basename "$(dirname "$kafka_libs")")
kafka_version=${kafka_version#kafka-}
# Maven writes its errors on stdout (and colour resets even with -q): shown
# only on failure. Its repository is Maven's own (~/.m2), outside the tree.
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
        # agg.py's children (the tool measured, its pollers) go with it.
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
    echo "weir $("$weir" --version | cut -d' ' -f2); kafka-streams $kafka_version on $(java -version 2>&1 | head -1); Apache Kafka $kafka_version, $WEIR_BROKERS"
    echo "${N:-1000000} records per input (6 partitions), keys: ${KEYS:-100000 1000000}; windows ${WINDOW:-60} s, grace ${GRACE:-0} s, over ${SPAN:-600} s of event time;" \
        "emit ${EMIT:-final}, ${GUARANTEE:-alos}, commits every ${COMMIT_MS:-1000} ms; tools: ${TOOLS:-weir streams}${STATIC:+; STATIC=$STATIC}"
    echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out/agg.md" >&2

python3 bench/agg.py "$weir" "$jar" "$work" "$out" >"$work/table" &
measuring=$!
status=0
wait "$measuring" || status=$?
measuring=
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/agg.md" >&2
tee -a "$out/agg.md" <"$work/table"
# A tool that failed, wrote other rows than its closed windows hold, or did
# not stop cleanly on SIGTERM fails the run (after the table).
exit "$status"
