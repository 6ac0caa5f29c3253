#!/usr/bin/env bash
# `just demo`: weir's main job end to end against a local Kafka.
# Uses a broker already listening on $WEIR_BROKERS (default 127.0.0.1:9092,
# e.g. from `just broker`), or starts a local Apache Kafka node there
# (scripts/kafka.sh run) for the demo's duration.
set -euo pipefail
cd "$(dirname "$0")/.."

brokers=${WEIR_BROKERS:-127.0.0.1:9092}
export WEIR_BROKERS=$brokers
host=${brokers%%,*}
port=${host##*:}

cargo build --release --locked --quiet --bin weir
weir=target/release/weir

broker_pid=
cleanup() {
    # SIGTERM: Kafka shuts down cleanly (its wait status is 143).
    if [ -n "$broker_pid" ]; then
        kill "$broker_pid" 2>/dev/null || true
        wait "$broker_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT

if ! (exec 3<>"/dev/tcp/${host%:*}/$port") 2>/dev/null; then
    scripts/kafka.sh install >/dev/null
    echo "== starting a local Apache Kafka on 127.0.0.1:$port"
    scripts/kafka.sh run "$port" &
    broker_pid=$!
    # A JVM takes a few seconds; the broker serves once it is unfenced.
    for _ in $(seq 1 120); do
        $weir topics list --timeout 1s >/dev/null 2>&1 && break
        kill -0 "$broker_pid" 2>/dev/null || { echo "Kafka did not start" >&2; exit 1; }
        sleep 1
    done
    echo
fi

# The sample logs: generated here (not downloaded), deterministic.
logs=testdata/logs.jsonl
if [ ! -s "$logs" ]; then
    echo "== scripts/gen-logs.py > $logs   (300,000 log lines over 5 minutes)"
    python3 scripts/gen-logs.py --lines 300000 --minutes 5 --start 2026-11-24T09:00:00Z >"$logs.tmp"
    mv "$logs.tmp" "$logs"
fi
echo "== head -2 $logs"
head -2 "$logs"
echo

echo "== weir topics create logs --partitions 6"
if $weir topics describe logs >/dev/null 2>&1; then
    echo "(topic \"logs\" already exists: counting what it holds)"
    fresh=
else
    $weir topics create logs --partitions 6 --config retention.ms=-1
    fresh=1
fi
echo
if [ -n "$fresh" ]; then
    echo "== weir produce -t logs --format json $logs"
    $weir produce -t logs --format json "$logs"
    echo
fi

group=demo-count-$$
echo "== weir count -t logs -e --by 'regex:^\S+ (\w+)' --window 1m -g $group"
$weir count -t logs -e --by 'regex:^\S+ (\w+)' --window 1m -g "$group"
echo
echo "== weir offsets show -g $group     (counts and offsets were checkpointed together)"
$weir offsets show -g "$group"
echo

echo "== weir topics create events --partitions 3"
if $weir topics describe events >/dev/null 2>&1; then
    echo "(topic \"events\" already exists)"
else
    $weir topics create events --partitions 3
fi
echo
echo "== weir produce -t events -K '\\t' testdata/logs.tsv     (key = service, value = a JSON log line)"
$weir produce -t events -K '\t' testdata/logs.tsv
echo
echo "== weir consume -t events -e --where level=ERROR -c 5 -f '{partition}:{offset} {key} {value}'"
$weir consume -t events -e --where level=ERROR -c 5 -f '{partition}:{offset} {key} {value}'
echo
group=demo-$$
echo "== weir consume -t events -g $group -c 50 >/dev/null    (a group reads 50 records and commits)"
$weir consume -t events -g "$group" -c 50 -q >/dev/null
echo "== weir consume -t events -g $group -e | wc -l           (the next run resumes after those 50)"
$weir consume -t events -g "$group" -e -q | wc -l
