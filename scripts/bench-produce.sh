#!/usr/bin/env bash
# Producer benchmark: 1,000,000 records of 100 bytes (99 + newline) into a
# 1-partition and a 6-partition topic on a local nisshi (memory storage),
# several rounds each. Prints weir's own summary plus client CPU seconds
# (user+sys) and peak RSS from GNU time.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
records=${RECORDS:-1000000}

cargo build --release --locked --quiet --bin weir
weir=$PWD/target/release/weir
nisshi=$(scripts/nisshi.sh install)
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$nisshi" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine memory://nisshi/ --silent >"$work/broker.log" 2>&1 &
broker=$!
trap 'kill $broker 2>/dev/null; rm -rf "$work"' EXIT
export WEIR_BROKERS=127.0.0.1:$port
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done

python3 -c "import sys; sys.stdout.write(('x'*99+'\n')*$records)" >"$work/input.txt"
for partitions in 1 6; do
    for round in $(seq 1 "$rounds"); do
        topic=bench-$partitions-$round
        "$weir" topics create "$topic" --partitions "$partitions" >/dev/null
        /usr/bin/time -f "cpu %U+%S s, peak RSS %M KiB" \
            "$weir" produce -t "$topic" "$work/input.txt" 2>&1 | sed "s/^/[$partitions partitions, round $round] /"
        "$weir" topics delete "$topic" >/dev/null
    done
done
