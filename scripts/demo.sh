#!/usr/bin/env bash
# `just demo`: weir's main job end to end against a local broker.
# Uses a broker already listening on $WEIR_BROKERS (default 127.0.0.1:9092,
# e.g. from `just broker`), or starts one there for the demo's duration.
set -euo pipefail
cd "$(dirname "$0")/.."

brokers=${WEIR_BROKERS:-127.0.0.1:9092}
export WEIR_BROKERS=$brokers
host=${brokers%%,*}
port=${host##*:}

cargo build --release --locked --quiet --bin weir
weir=target/release/weir

broker_pid=
cleanup() { [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null; true; }
trap cleanup EXIT

if ! (exec 3<>"/dev/tcp/${host%:*}/$port") 2>/dev/null; then
    scripts/nisshi.sh install >/dev/null
    echo "== starting a local broker on 127.0.0.1:$port"
    scripts/nisshi.sh run "$port" memory &
    broker_pid=$!
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
fi

echo "== weir topics create logs --partitions 6"
if $weir topics describe logs >/dev/null 2>&1; then
    echo "(topic \"logs\" already exists)"
else
    $weir topics create logs --partitions 6 --config retention.ms=86400000
fi
echo
echo "== weir topics list"
$weir topics list
echo
echo "== weir topics describe logs"
$weir topics describe logs
echo
echo "== weir produce -t logs -K '\\t' testdata/logs.tsv     (key = service, value = a JSON log line)"
$weir produce -t logs -K '\t' testdata/logs.tsv
echo
echo "== weir consume -t logs -e --where level=ERROR -c 5 -f '{partition}:{offset} {key} {value}'"
$weir consume -t logs -e --where level=ERROR -c 5 -f '{partition}:{offset} {key} {value}'
echo
group=demo-$$
echo "== weir consume -t logs -g $group -c 50 >/dev/null    (a group reads 50 records and commits)"
$weir consume -t logs -g "$group" -c 50 -q >/dev/null
echo "== weir offsets show -g $group"
$weir offsets show -g "$group"
echo
echo "== weir consume -t logs -g $group -e | wc -l           (the next run resumes after those 50)"
$weir consume -t logs -g "$group" -e -q | wc -l
