#!/usr/bin/env bash
# Can the benchmark's baselines be built as weir is, fully static for
# x86_64 and aarch64 musl with zig as the C compiler? Tries
# bench/rdkafka-baseline and bench/confluent-baseline (and weir itself, by
# scripts/static.sh and scripts/cross.sh) for both targets, and prints a
# markdown table: built or not, the first error, stripped size, static or
# not. A failed build is a result, not a failure of this script.
#
#   TARGETS="x86_64-unknown-linux-musl aarch64-unknown-linux-musl"
#   CRATES="rdkafka-baseline confluent-baseline"
#
# Uses the cargo-zigbuild that scripts/cross.sh installs. Each baseline
# builds in its own target directory, from scratch the first time
# (Confluent's client took about 13 minutes per target on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
read -r -a targets <<<"${TARGETS:-x86_64-unknown-linux-musl aarch64-unknown-linux-musl}"
read -r -a crates <<<"${CRATES:-rdkafka-baseline confluent-baseline}"
out=target/bench
mkdir -p "$out"
CACHE=${WEIR_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/weir}
scripts/cross.sh >/dev/null # installs cargo-zigbuild and zig, and the aarch64 target
for target in "${targets[@]}"; do
    rustup target list --installed | grep -qx "$target" || rustup target add "$target" >&2
done

# row NAME TARGET BIN LOG SECONDS: one line of the table.
row() {
    local name=$1 target=$2 bin=$3 log=$4 took=$5 linked size
    if [ -n "$bin" ] && [ -f "$bin" ]; then
        size=$(stat -c %s "$bin")
        if readelf -d "$bin" 2>/dev/null | grep -q NEEDED; then
            linked="dynamic: $(readelf -d "$bin" | awk '/NEEDED/ {print $NF}' | tr -d '[]' | paste -sd' ')"
        else
            linked=static
        fi
        printf '| %s | %s | built in %s s | %s | %s |\n' "$name" "$target" "$took" "$(numfmt --grouping "$size")" "$linked"
    else
        # The first line that says why: the C compiler's own message (a
        # build script's failure only says that it failed), else the first
        # error, with the path cut to the file's name.
        local first
        first=$(grep -m1 -E 'fatal error|error:' "$log" | sed 's/^ *//; s|.*/\([^/]*:[0-9]*:[0-9]*: \)|\1|' | cut -c1-160 || true)
        printf '| %s | %s | failed after %s s: `%s` | – | – |\n' "$name" "$target" "$took" "${first:-$(tail -n1 "$log" | cut -c1-160)}"
    fi
}

{
    echo "| program | target | build | stripped bytes | linking |"
    echo "|---|---|---|--:|---|"
    for target in "${targets[@]}"; do
        start=$SECONDS
        case $target in
            x86_64-unknown-linux-musl) bin=$(scripts/static.sh 2>"$out/port-weir-$target.log" || true) ;;
            aarch64-unknown-linux-musl) bin=$(scripts/cross.sh 2>"$out/port-weir-$target.log" || true) ;;
            *) bin= ;;
        esac
        row weir "$target" "$bin" "$out/port-weir-$target.log" $((SECONDS - start))
    done
    for crate in "${crates[@]}"; do
        for target in "${targets[@]}"; do
            log=$out/port-$crate-$target.log
            start=$SECONDS
            bin=
            # As weir's aarch64 build: cargo zigbuild, zig as the C compiler.
            # Stripped at link time, as weir's release profile does.
            if PATH="$CACHE/zigbuild-venv/bin:$PATH" CARGO_PROFILE_RELEASE_STRIP=true cargo zigbuild --release --locked \
                --manifest-path "bench/$crate/Cargo.toml" --target "$target" \
                --target-dir "bench/$crate/target" >"$log" 2>&1; then
                bin=bench/$crate/target/$target/release/$crate
            fi
            row "$crate" "$target" "$bin" "$log" $((SECONDS - start))
        done
    done
} | tee "$out/portability.md"
