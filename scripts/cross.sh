#!/usr/bin/env bash
# Builds weir as a fully static aarch64 musl binary, every compression codec
# included (zstd and lz4 are C, compiled with zig as the cross C compiler):
#   target/aarch64-unknown-linux-musl/release/weir
#
# Installs what it needs when missing: the rustup target; cargo-zigbuild and
# zig (the ziglang wheel), pinned below, from PyPI into a virtualenv in
# $WEIR_CACHE_DIR, else ${XDG_CACHE_HOME:-$HOME/.cache}/weir; and, to run the
# result on x86_64, qemu-aarch64-static (Debian's qemu-user-static) when root.
#
# Only the binary's path goes to stdout, last; progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
target=aarch64-unknown-linux-musl
PINS="cargo-zigbuild==0.24.1 ziglang==0.17.1"
CACHE=${WEIR_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/weir}
VENV=$CACHE/zigbuild-venv
MARKER=$VENV/weir-pins.txt

if ! rustup target list --installed | grep -qx "$target"; then
    rustup target add "$target" >&2
fi

current() {
    [ -x "$VENV/bin/cargo-zigbuild" ] && [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$PINS" ]
}
if ! current; then
    mkdir -p "$CACHE"
    # One install at a time, even when several builds start together.
    exec 9>"$CACHE/zigbuild-venv.lock"
    flock 9
    if ! current; then
        echo "installing $PINS into $VENV" >&2
        [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" >&2
        # shellcheck disable=SC2086 # PINS is a list of words on purpose
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check $PINS >&2
        echo "$PINS" >"$MARKER"
    fi
    exec 9>&-
fi

if ! command -v qemu-aarch64-static >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing qemu-user-static (to run the aarch64 binary here)" >&2
        apt-get update -qq >&2 && apt-get install -y -qq qemu-user-static >/dev/null
    else
        echo "note: qemu-aarch64-static is missing, so the aarch64 binary cannot be" \
            "run here: sudo apt-get install qemu-user-static" >&2
    fi
fi

# cargo-zigbuild finds zig as `python3 -m ziglang`: the venv's python.
PATH="$VENV/bin:$PATH" cargo zigbuild --release --locked --target "$target" --bin weir >&2
bin=$(realpath "${CARGO_TARGET_DIR:-target}/$target/release/weir")
# A static binary needs no shared library (readelf: binutils, beside gcc).
if readelf -d "$bin" | grep -q NEEDED; then
    echo "$bin is not statically linked:" >&2
    readelf -d "$bin" | grep NEEDED >&2
    exit 1
fi
echo "$bin: $(du -h "$bin" | cut -f1), static, aarch64" >&2
echo "$bin"
