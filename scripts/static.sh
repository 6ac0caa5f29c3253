#!/usr/bin/env bash
# Builds weir as a fully static x86_64 musl binary:
#   target/x86_64-unknown-linux-musl/release/weir
# Installs the musl target (rustup) and musl-gcc (Debian's musl-tools, for
# the C parts of ring and the compression codecs) when they are missing.
#
# Only the binary's path goes to stdout, last; progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-musl

if ! rustup target list --installed | grep -qx "$target"; then
    rustup target add "$target" >&2
fi
if ! command -v musl-gcc >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq >&2 && apt-get install -y -qq musl-tools >/dev/null
    else
        echo "static build needs musl-gcc: sudo apt-get install musl-tools" >&2
        exit 1
    fi
fi
cargo build --release --locked --target "$target" --bin weir
bin=$(realpath "${CARGO_TARGET_DIR:-target}/$target/release/weir")
if ldd "$bin" 2>&1 | grep -q "=>"; then
    echo "$bin is not statically linked:" >&2
    ldd "$bin" >&2
    exit 1
fi
echo "$bin: $(du -h "$bin" | cut -f1), static, x86_64" >&2
echo "$bin"
