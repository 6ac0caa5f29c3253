#!/usr/bin/env bash
# `weir pipe` against a Java consume-transform-produce loop
# (bench/java-pipe, Kafka's own client) doing the same filter, on the same
# local broker, in one run (issue 18).
#
# Builds weir (release) and the Java program (Maven), starts a fresh
# single-node Apache Kafka (scripts/bench-broker.sh) on free 127.0.0.1
# ports, and fills an input topic of 6 partitions once with RECORDS keyed
# records of SIZE-byte values, about half of which contain MATCH. Then,
# ROUNDS times, each tool reads the whole input from a fresh group, writes
# the records whose value contains MATCH to a fresh 6-partition topic,
# commits, and exits:
#
#   weir       weir pipe -t IN --to OUT -g G --grep MATCH -e       (at least once, 5 s commits)
#   weir-eos   the same with --exactly-once --commit-interval 100ms   (a transaction per input partition every 100 ms)
#   java-alos  java -jar java-pipe.jar ... --records RECORDS       (flush + commitSync every 5 s)
#   java-eos   the same with --exactly-once                         (a transaction every 100 ms)
#
# The order rotates each round. Each run is its own process under GNU time
# (wall, CPU user+sys, peak RSS), and its output topic is read back: it
# must hold exactly the matching records. records/s is input records per
# second of the process's wall time, start-up included; the tools' own
# clocks are in a column beside it. Prints a markdown table of medians
# (peak RSS: the largest), also in target/bench/pipe.md; raw results go to
# target/bench/pipe.jsonl.
#
#   RECORDS=1000000 SIZE=100 ROUNDS=3 MATCH=needle
#   BROKERS=HOST:PORT   a broker already running (scripts/bench.sh passes
#                       its own) instead of a fresh one; topics are created there
set -euo pipefail
# A failure inside $(fill ...) or $(count ...) stops the run too.
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
records=${RECORDS:-1000000}
size=${SIZE:-100}
rounds=${ROUNDS:-3}
match=${MATCH:-needle}
partitions=6
out=target/bench
mkdir -p "$out"

# weir's --grep takes a regex and the Java loop a plain string: a word is
# both, with the same meaning.
[[ $match =~ ^[A-Za-z0-9_]+$ ]] || { echo "MATCH must be letters, digits or _ (it is a regex for weir)" >&2; exit 2; }
missing=()
for tool in cargo mvn java python3; do command -v "$tool" >/dev/null || missing+=("$tool"); done
[ -x /usr/bin/time ] || missing+=("GNU time (/usr/bin/time)")
[ ${#missing[@]} -eq 0 ] || { echo "the pipe benchmark needs: ${missing[*]}" >&2; exit 1; }

echo "== building weir (release) and bench/java-pipe (Maven)" >&2
cargo build --release --locked --quiet --bin weir
weir=$PWD/target/release/weir
kafka_libs=$(scripts/kafka.sh install)
kafka_version=$(basename "$(dirname "$kafka_libs")")
kafka_version=${kafka_version#kafka-}
# The client of the same version as the broker. Maven writes its errors
# on stdout (and colour resets even with -q): shown only on failure.
mvn -q -B -f bench/java-pipe/pom.xml -Dkafka.version="$kafka_version" package >"$out/java-pipe-build.log" 2>&1 ||
    { cat "$out/java-pipe-build.log" >&2; exit 1; }
jar=$PWD/bench/java-pipe/target/java-pipe.jar

work=$(mktemp -d)
# shellcheck source=scripts/bench-broker.sh
. scripts/bench-broker.sh
# The measured run in flight: GNU time's pid. A signal to this script
# ends the tool under it (time's child) before the broker goes.
measured=
cleanup() {
    local status=$?
    if [ -n "$measured" ]; then
        pkill -TERM -P "$measured" 2>/dev/null || true
        wait "$measured" 2>/dev/null || true
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

tools=(weir weir-eos java-alos java-eos)

{
    echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r)"
    echo "weir $("$weir" --version | cut -d' ' -f2) ($(rustc --version | cut -d' ' -f1-2)); kafka-clients $kafka_version on $(java -version 2>&1 | head -1); Apache Kafka $kafka_version, $WEIR_BROKERS"
    echo "$rounds rounds; $records records of $size B with 10-byte keys, $partitions partitions, those containing \"$match\" piped; tools: ${tools[*]}"
    echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out/pipe.md" >&2

# fill TOPIC N: N keyed records, about half containing the match; prints
# how many do. The values are SIZE bytes: a counter, the match or a
# same-length stand-in, then upper-case letters (which cannot form the
# lower-case match) from a fixed sequence, so values differ.
fill() {
    local topic=$1 n=$2
    "$weir" topics create "$topic" --partitions "$partitions" >/dev/null
    python3 - "$n" "$size" "$match" "$work/expected" <<'EOF' | "$weir" produce -t "$topic" -K : -H bench=pipe
import random, sys
n, size, match, expected = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
rng = random.Random(18)
letters = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4096))
other = "-" * len(match)
head = 12 + len(match) + 2
if size < head:
    sys.exit("SIZE must be at least %d" % head)
fill = size - head
pool = letters * (2 + fill // len(letters))
out, matching = sys.stdout, 0
for i in range(n):
    hit = rng.random() < 0.5
    matching += hit
    at = i % len(letters)
    out.write("k%09d:%012d %s %s\n" % (i, i, match if hit else other, pool[at:at + fill]))
open(expected, "w").write("%d\n" % matching)
EOF
    cat "$work/expected"
}

# count TOPIC: the records in TOPIC (not its high watermarks, which count
# transaction markers too).
count() {
    "$weir" consume -q -t "$1" -e -f . | wc -l
}

input=bench-pipe-in
echo "== filling $input: $records x $size B" >&2
started=$(date +%s)
expected=$(fill "$input" "$records")
have=$(count "$input")
[ "$have" = "$records" ] || { echo "!! $input holds $have records, not $records" >&2; exit 1; }
echo "   $expected of $records records contain \"$match\" ($(($(date +%s) - started)) s)" >&2

command_for() {
    local tool=$1 in=$2 to=$3 group=$4 n=$5
    case "$tool" in
        weir) echo "$weir pipe -t $in --to $to -g $group --grep $match -e" ;;
        weir-eos) echo "$weir pipe -t $in --to $to -g $group --grep $match -e --exactly-once --commit-interval 100ms" ;;
        java-alos) echo "java -jar $jar --brokers $WEIR_BROKERS --from $in --to $to --group $group --contains $match --records $n" ;;
        java-eos) echo "java -jar $jar --brokers $WEIR_BROKERS --from $in --to $to --group $group --contains $match --records $n --exactly-once" ;;
    esac
}

# run TOOL ROUND IN N EXPECTED: one measured process on a fresh output
# topic and group; checks the output and prints the result line.
run() {
    local tool=$1 round=$2 in=$3 n=$4 want=$5
    local to=$in-out-$tool-$round group=$in-$tool-$round
    "$weir" topics create "$to" --partitions "$partitions" >/dev/null
    # shellcheck disable=SC2046
    /usr/bin/time -f "%e %U %S %M" -o "$work/time" $(command_for "$tool" "$in" "$to" "$group" "$n") \
        >"$work/stdout" 2>"$work/stderr" &
    measured=$!
    if ! wait "$measured"; then
        measured=
        echo "!! $tool round $round failed:" >&2
        cat "$work/stderr" >&2
        return 1
    fi
    measured=
    local got
    got=$(count "$to")
    "$weir" topics delete "$to" >/dev/null
    if [ "$got" != "$want" ]; then
        echo "!! $tool round $round: $to holds $got records, not the $want that contain \"$match\"" >&2
        cat "$work/stderr" >&2
        return 1
    fi
    python3 - "$tool" "$round" "$n" "$got" "$work/stdout" "$work/stderr" "$work/time" <<'EOF'
import json, re, sys
tool, rnd, n, got, stdout, stderr, timing = sys.argv[1:]
wall, user, sys_, rss = open(timing).read().split()[-4:]
own = {}
if tool.startswith("java"):
    own = json.loads(open(stdout).read().strip().splitlines()[-1])
    read, written, secs = own["records"], own["written"], own["seconds"]
else:
    # weir pipe's summary line on stderr.
    m = re.search(r"piped (\d+) of (\d+) records read .* in ([\d.]+)s", open(stderr).read())
    if not m:
        sys.exit("no summary from weir pipe in: " + open(stderr).read())
    written, read, secs = int(m.group(1)), int(m.group(2)), float(m.group(3))
if read != int(n) or written != int(got):
    sys.exit("%s round %s: read %d of %s, wrote %d where the topic holds %s" % (tool, rnd, read, n, written, got))
print(json.dumps(dict(tool=tool, round=int(rnd), records=read, written=written, output_records=int(got),
    wall_s=float(wall), records_per_sec=read / max(float(wall), 0.01), own_s=secs,
    own_records_per_sec=read / max(secs, 1e-6), cpu_s=float(user) + float(sys_), rss_kib=int(rss),
    first_record_s=own.get("first_record_seconds"))))
EOF
}

# Kafka creates __consumer_offsets and __transaction_state, and weir its
# offsets topic, on first use: a small unmeasured pass over every tool
# pays for that outside the rounds (and checks them).
echo "== warm-up: every tool once on 1000 records" >&2
warm=bench-pipe-warm
warm_expected=$(fill "$warm" 1000)
for tool in "${tools[@]}"; do
    run "$tool" 0 "$warm" 1000 "$warm_expected" >/dev/null
done
"$weir" topics delete "$warm" >/dev/null

results=$out/pipe.jsonl
: >"$results"
started=$(date +%s)
for round in $(seq 1 "$rounds"); do
    for i in $(seq 0 $((${#tools[@]} - 1))); do
        # Each round starts with the next tool, so no tool always goes first.
        tool=${tools[$(((round - 1 + i) % ${#tools[@]}))]}
        run "$tool" "$round" "$input" "$records" "$expected" >>"$results"
        python3 -c '
import json, sys
r = json.loads(sys.argv[1])
print("   round %d %-9s %9.0f rec/s (own clock %9.0f)  wall %.2f s  cpu %.2f s  rss %.0f MiB  wrote %d%s" % (r["round"], r["tool"],
    r["records_per_sec"], r["own_records_per_sec"], r["wall_s"], r["cpu_s"], r["rss_kib"] / 1024, r["written"],
    "  first records after %.2f s" % r["first_record_s"] if r["first_record_s"] is not None else ""))' "$(tail -n1 "$results")" >&2
    done
done
"$weir" topics delete "$input" >/dev/null
echo "$(($(date +%s) - started)) s of measurements; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" |
    tee -a "$out/pipe.md" >&2

python3 - "$results" <<'EOF' | tee -a "$out/pipe.md"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
tools = [t for t in ["weir", "weir-eos", "java-alos", "java-eos"] if any(r["tool"] == t for r in rows)]
names = {
    "weir": "weir pipe (at least once)",
    "weir-eos": "weir pipe --exactly-once",
    "java-alos": "Java loop, at least once",
    "java-eos": "Java loop, exactly once",
}
# The weir row each Java row is compared with: the same guarantee.
same_mode = {"java-alos": "weir", "java-eos": "weir-eos"}
med = {}
for t in tools:
    rs = [r for r in rows if r["tool"] == t]
    med[t] = dict(
        rps=statistics.median(r["records_per_sec"] for r in rs),
        own=statistics.median(r["own_records_per_sec"] for r in rs),
        wall=statistics.median(r["wall_s"] for r in rs),
        cpu=statistics.median(r["cpu_s"] for r in rs),
        rss=max(r["rss_kib"] for r in rs) / 1024,
        written=rs[0]["written"],
    )
print()
print("| tool | records/s (wall) | records/s (own clock) | wall s | CPU s | peak RSS MiB | records written | weir ÷ this, same guarantee (records/s, wall) |")
print("|---|--:|--:|--:|--:|--:|--:|--:|")
for t in tools:
    m = med[t]
    w = med.get(same_mode.get(t))
    ratio = "%.2f×" % (w["rps"] / m["rps"]) if w else ""
    print("| %s | %.0f | %.0f | %.2f | %.2f | %.0f | %d | %s |" % (
        names[t], m["rps"], m["own"], m["wall"], m["cpu"], m["rss"], m["written"], ratio))
EOF
