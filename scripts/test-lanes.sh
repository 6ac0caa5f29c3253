#!/usr/bin/env bash
# weir's tests in two lanes at once (`just test` runs this):
#
#   scripts/test-lanes.sh
#
# The tests that start three Kafka nodes of their own (tests/faults.rs and
# tests/network.rs: kills, restarts and network faults, mostly waiting on
# the cluster) run beside all the others (the unit tests, the doc tests and
# every other test binary, on the shared node each binary starts), instead
# of after them: cargo runs one test binary at a time, and the two lanes
# together take the time of the longer one. Every test still runs, each
# binary as `cargo test` runs it (from the repository's root, with the same
# environment); the output of the three-node lane follows the other's.
# Exits non-zero when any test binary failed.
set -euo pipefail
cd "$(dirname "$0")/.."

# The three-node lane: test binaries by name.
CLUSTER_TESTS="faults network"

log=$(mktemp)
trap 'rm -f "$log"' EXIT

# Builds every test binary once and lists them (kind, name, path).
binaries=$(cargo test --locked --no-run --message-format=json 2>/dev/null |
    grep '"profile":{[^}]*"test":true' |
    sed -n 's/.*"target":{"kind":\["\([a-z-]*\)"\][^}]*"name":"\([^"]*\)".*"executable":"\([^"]*\)".*/\1 \2 \3/p' |
    sort -k1,1 -k2,2)
if [ -z "$binaries" ]; then
    echo "test-lanes: no test binaries found (cargo test --no-run failed?)" >&2
    cargo test --locked --no-run >&2
    exit 1
fi

in_cluster_lane() {
    local name=$1
    for t in $CLUSTER_TESTS; do
        [ "$name" = "$t" ] && return 0
    done
    return 1
}

# Runs each binary of a lane in turn; returns non-zero if any failed.
run_lane() {
    local failed=0 kind name path
    while read -r kind name path; do
        echo "     Running $kind $name ($path)"
        "$path" || failed=1
    done
    return $failed
}

cluster=$(echo "$binaries" | while read -r kind name path; do
    if [ "$kind" = test ] && in_cluster_lane "$name"; then echo "$kind $name $path"; fi
done)
others=$(echo "$binaries" | while read -r kind name path; do
    if ! { [ "$kind" = test ] && in_cluster_lane "$name"; }; then echo "$kind $name $path"; fi
done)

echo "$cluster" | run_lane >"$log" 2>&1 &
cluster_pid=$!

status=0
echo "$others" | run_lane || status=1
cargo test --locked --doc || status=1

wait $cluster_pid || status=1
echo "----- the three-node lane ($CLUSTER_TESTS) -----"
cat "$log"
exit $status
