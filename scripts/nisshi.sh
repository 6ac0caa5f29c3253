#!/usr/bin/env bash
# The local Kafka-compatible broker (nisshi) for development, tests and the demo.
#
#   scripts/nisshi.sh install               build nisshi into the cache if missing; print its path
#   scripts/nisshi.sh run [PORT] [STORAGE]  run a broker on 127.0.0.1:PORT in the foreground
#                                           STORAGE: memory (default) or sqlite:FILE.db
#
# The cache lives outside the repository: $WEIR_CACHE_DIR, else
# ${XDG_CACHE_HOME:-$HOME/.cache}/weir. Building takes about 10 minutes once.
set -euo pipefail

VERSION=0.8.1
TOOLCHAIN=1.96.0
CACHE=${WEIR_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/weir}
ROOT=$CACHE/nisshi-$VERSION
BIN=$ROOT/bin/nisshi

install() {
    if [ -x "$BIN" ]; then
        echo "$BIN"
        return
    fi
    mkdir -p "$CACHE"
    # One build at a time, even when several test runs start together.
    exec 9>"$CACHE/nisshi.lock"
    flock 9
    if [ ! -x "$BIN" ]; then
        echo "installing nisshi $VERSION into $ROOT (takes about 10 minutes once)" >&2
        rustup toolchain install "$TOOLCHAIN" --profile minimal >&2
        cargo "+$TOOLCHAIN" install nisshi --version "$VERSION" --locked \
            --no-default-features --features dynostore,libsql --root "$ROOT" >&2
    fi
    echo "$BIN"
}

run() {
    local port=${1:-9092} storage=${2:-memory} engine
    case "$storage" in
        memory) engine=memory://nisshi/ ;;
        sqlite:*) engine="sqlite://${storage#sqlite:}?maintenance_interval=5s" ;;
        *) echo "unknown storage \"$storage\" (memory or sqlite:FILE.db)" >&2; exit 2 ;;
    esac
    install >/dev/null
    echo "nisshi $VERSION listening on 127.0.0.1:$port ($storage storage); Ctrl-C stops it" >&2
    exec "$BIN" broker \
        --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine "$engine" --silent
}

case "${1:-}" in
    install) install ;;
    run) shift; run "$@" ;;
    *) sed -n '2,10p' "$0" >&2; exit 2 ;;
esac
