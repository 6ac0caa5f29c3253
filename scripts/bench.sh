#!/usr/bin/env bash
# weir against rust-rdkafka (librdkafka), on the same local broker, in one run.
#
# Builds `weir` and bench/rdkafka-baseline in release mode, starts a fresh
# single-node Apache Kafka (scripts/kafka.sh) on free 127.0.0.1 ports, and
# runs every scenario for
# weir, rdkafka with librdkafka's defaults and rdkafka tuned for
# throughput, alternately (the order rotates each round), ROUNDS times.
# Each run is its own process under GNU time (client CPU user+sys, peak
# RSS). Prints a markdown table of medians (peak RSS: the largest) and the
# issue's targets; raw results go to target/bench/results.jsonl.
#
#   ROUNDS=3 RECORDS=1000000 SIZE=100 RATE=10000 LATENCY_RECORDS=50000
#   FETCH_WAIT=     (unset: each client's default fetch wait, as a user runs it)
#   SCENARIOS="produce consume latency groups pipe"   (a subset runs only those)
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
scenarios=${SCENARIOS:-produce consume latency groups pipe}
out=target/bench
mkdir -p "$out"

# Debian packages: cmake and the libcurl headers for librdkafka's cmake
# build (it includes curl.h even with curl off), GNU time for the numbers.
missing=()
command -v cmake >/dev/null || missing+=(cmake)
[ -e /usr/include/curl/curl.h ] || ls /usr/include/*/curl/curl.h >/dev/null 2>&1 || missing+=(libcurl4-openssl-dev)
[ -x /usr/bin/time ] || missing+=(time)
command -v python3 >/dev/null || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "== installing ${missing[*]}" >&2
        apt-get update -qq >&2 && apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "the benchmark needs: sudo apt-get install ${missing[*]}" >&2
        exit 1
    fi
fi

echo "== building weir and the rdkafka baseline (release)" >&2
cargo build --release --locked --quiet --bin weir
cargo build --release --locked --quiet --manifest-path bench/rdkafka-baseline/Cargo.toml
weir=$PWD/target/release/weir
baseline=$PWD/bench/rdkafka-baseline/target/release/rdkafka-baseline
scripts/kafka.sh install >/dev/null

work=$(mktemp -d)
# shellcheck source=scripts/bench-broker.sh
. scripts/bench-broker.sh
trap 'status=$?; bench_broker_stop; rm -rf "$work"; exit $status' EXIT
bench_broker_start "$work" "$weir"
kafka_version=$(basename "$(dirname "$(scripts/kafka.sh install)")")

results=$out/results.jsonl
: >"$results"
{
    echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r)"
    echo "weir $("$weir" --version | cut -d' ' -f2) ($(rustc --version | cut -d' ' -f1-2)); $("$baseline" version); Apache Kafka ${kafka_version#kafka-} (one KRaft node, heap 512 MiB), 127.0.0.1"
    echo "$rounds rounds; $records records of $size B; latency: $latency_records records at $rate/s, fetch wait ${fetch_wait:-each client default}"
    # Other work on the machine shows here; the alternation keeps the ratios.
    echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out/machine.txt" >&2

tools=(weir rdkafka-defaults rdkafka-tuned)
command_for() {
    case "$1" in
        weir) echo "$weir bench" ;;
        # The producer before idempotence (one batch at a time per partition).
        weir-no-idempotence) echo "$weir bench" ;;
        rdkafka-defaults) echo "$baseline --profile defaults" ;;
        rdkafka-tuned) echo "$baseline --profile tuned" ;;
    esac
}

# run SCENARIO TOOL ROUND ARGS...: one measured process, one result line.
run() {
    local scenario=$1 tool=$2 round=$3
    shift 3
    # shellcheck disable=SC2046
    if ! /usr/bin/time -f "%U %S %M" -o "$work/time" $(command_for "$tool") "$@" --json >"$work/report" 2>"$work/err"; then
        echo "!! $scenario $tool round $round failed:" >&2
        cat "$work/err" >&2
        return 1
    fi
    python3 - "$scenario" "$tool" "$round" "$work/report" "$work/time" >>"$results" <<'EOF'
import json, sys
scenario, tool, rnd, report, timing = sys.argv[1:]
r = json.loads(open(report).read().strip().splitlines()[-1])
user, sys_, rss = open(timing).read().split()[-3:]
r.update(scenario=scenario, tool=tool, round=int(rnd), cpu_s=float(user) + float(sys_), rss_kib=int(rss))
print(json.dumps(r))
EOF
    python3 -c '
import json, sys
r = json.loads(open(sys.argv[1]).read().splitlines()[-1])
l = r["latency_ms"] or {}
print("   %-22s %-17s %11.0f rec/s %7.1f MB/s  cpu %.2f s  rss %.0f MiB%s" % (r["scenario"], r["tool"],
    r["records_per_sec"], r["mb_per_sec"], r["cpu_s"], r["rss_kib"] / 1024,
    "  p50 %.2f p99 %.2f ms" % (l["p50"], l["p99"]) if l else ""))' <(tail -n1 "$results") >&2
}

# Each round starts with the next tool, so no tool always goes first.
rotated() {
    local round=$1 i
    for i in 0 1 2; do echo "${tools[$(((round + i) % 3))]}"; done
}

cases=("1 none" "6 none" "1 lz4" "6 lz4")
started=$(date +%s)
for what in $scenarios; do
    case "$what" in
    produce)
        for c in "${cases[@]}"; do
            read -r p codec <<<"$c"
            scenario="produce ${p}p $codec"
            echo "== $scenario: $records x $size B" >&2
            for round in $(seq 1 "$rounds"); do
                for tool in $(rotated "$round") weir-no-idempotence; do
                    topic=bench-produce-$p-$codec-$tool-$round
                    extra=()
                    [ "$tool" = weir-no-idempotence ] && extra=(--no-idempotence)
                    "$weir" topics create "$topic" --partitions "$p" >/dev/null
                    run "$scenario" "$tool" "$round" produce -t "$topic" --partitions "$p" -n "$records" \
                        --size "$size" --compression "$codec" "${extra[@]}"
                    "$weir" topics delete "$topic" >/dev/null
                done
            done
        done
        ;;
    consume)
        for c in "${cases[@]}"; do
            read -r p codec <<<"$c"
            scenario="consume ${p}p $codec"
            topic=bench-consume-$p-$codec
            echo "== $scenario: $records x $size B (produced once by weir)" >&2
            "$weir" bench produce -t "$topic" --partitions "$p" -n "$records" --size "$size" --compression "$codec" >/dev/null
            for round in $(seq 1 "$rounds"); do
                for tool in $(rotated "$round"); do
                    run "$scenario" "$tool" "$round" consume -t "$topic" -n "$records"
                done
            done
            "$weir" topics delete "$topic" >/dev/null
        done
        ;;
    latency)
        for p in 1 6; do
            scenario="latency ${p}p ${rate}/s"
            echo "== $scenario: $latency_records x $size B, send to consume" >&2
            for round in $(seq 1 "$rounds"); do
                for tool in $(rotated "$round"); do
                    topic=bench-latency-$p-$tool-$round
                    "$weir" topics create "$topic" --partitions "$p" >/dev/null
                    run "$scenario" "$tool" "$round" latency -t "$topic" --partitions "$p" -n "$latency_records" \
                        --size "$size" --rate "$rate" ${fetch_wait:+--fetch-max-wait "$fetch_wait"}
                    "$weir" topics delete "$topic" >/dev/null
                done
            done
        done
        ;;
    groups)
        echo "== groups: takeover after SIGKILL, SIGTERM and a join; one member against three" >&2
        python3 bench/groups.py "$weir" "$out/groups.md" >&2
        ;;
    pipe)
        echo "== pipe: weir pipe against a Java consume-transform-produce loop (bench/pipe.sh)" >&2
        BROKERS=$WEIR_BROKERS RECORDS=$records SIZE=$size ROUNDS=$rounds bench/pipe.sh >&2
        ;;
    *) echo "unknown scenario \"$what\" (produce, consume, latency, groups, pipe)" >&2; exit 2 ;;
    esac
done
echo "$(($(date +%s) - started)) s of measurements; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" |
    tee -a "$out/machine.txt" >&2

python3 - "$results" <<'EOF' | tee "$out/table.md"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
order = []
for r in rows:
    if r["scenario"] not in order:
        order.append(r["scenario"])
tools = ["weir", "weir-no-idempotence", "rdkafka-defaults", "rdkafka-tuned"]
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
        "p50": med([l["p50"] for l in lat]) if lat else None,
        "p99": med([l["p99"] for l in lat]) if lat else None,
    }

ms = lambda v: "–" if v is None else ("%.1f" % v if v >= 1 else "%.2f" % v)
print("| scenario | tool | records/s | MB/s | CPU s | peak RSS MiB | p50 ms | p99 ms | weir ÷ tool (records/s) |")
print("|---|---|--:|--:|--:|--:|--:|--:|--:|")
table = {}
for s in order:
    for t in tools:
        x = stats(s, t)
        if x is None:
            continue
        table[s, t] = x
        w = table.get((s, "weir"))
        ratio = "" if t == "weir" or not w else "%.2f×" % (w["rps"] / x["rps"])
        print("| %s | %s | %.0f | %.1f | %.2f | %.0f | %s | %s | %s |" % (
            s, t, x["rps"], x["mbps"], x["cpu"], x["rss"], ms(x["p50"]), ms(x["p99"]), ratio))

print()
print("Targets against rdkafka-tuned (records/s: consume ≥ 1.5×, produce ≥ 1.0×; peak RSS ≤ ¼; p99 no worse):")
print()
print("| scenario | records/s weir ÷ tuned | peak RSS weir ÷ tuned | p99 weir − tuned ms | CPU s weir ÷ tuned |")
print("|---|--:|--:|--:|--:|")
for s in order:
    w, b = table.get((s, "weir")), table.get((s, "rdkafka-tuned"))
    if not w or not b:
        continue
    mark = lambda ok: "✓" if ok else "✗"
    rps = w["rps"] / b["rps"]
    cells = []
    if s.startswith("latency"):
        cells.append("–")
    else:
        need = 1.5 if s.startswith("consume") else 1.0
        cells.append("%.2f× %s" % (rps, mark(rps >= need)))
    rss = w["rss"] / b["rss"]
    cells.append("%.2f %s" % (rss, mark(rss <= 0.25)))
    if w["p99"] is not None and b["p99"] is not None:
        d = w["p99"] - b["p99"]
        cells.append("%+.2f %s" % (d, mark(d <= 0)))
    else:
        cells.append("–")
    cells.append("%.2f" % (w["cpu"] / b["cpu"]))
    print("| %s | %s |" % (s, " | ".join(cells)))
EOF
