#!/usr/bin/env bash
# The Python virtualenv for the interoperability tests (tests/interop.rs):
# confluent-kafka (which bundles librdkafka) and kafka-python, pinned below;
# and for tests/metrics.rs, prometheus-client (its text format parser); for
# tests/registry.rs, confluent-kafka's Avro serializer and registry client
# (its avro and schemaregistry extras: fastavro, httpx).
#
#   scripts/pyenv.sh    create or update the venv if needed; print its python's path
#
# Only the python path goes to stdout; progress goes to stderr. The venv lives
# outside the repository, in $WEIR_CACHE_DIR, else
# ${XDG_CACHE_HOME:-$HOME/.cache}/weir. Installing takes under a minute once;
# changing the pins below re-installs.
set -euo pipefail

PINS="confluent-kafka[avro,schemaregistry]==2.16.1 kafka-python==3.0.12 prometheus-client==0.26.0"
CACHE=${WEIR_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/weir}
VENV=$CACHE/venv
PY=$VENV/bin/python
MARKER=$VENV/weir-pins.txt

current() {
    [ -x "$PY" ] && [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$PINS" ]
}

if ! current; then
    mkdir -p "$CACHE"
    # One install at a time, even when several test runs start together.
    exec 9>"$CACHE/venv.lock"
    flock 9
    if ! current; then
        echo "installing $PINS into $VENV" >&2
        [ -x "$PY" ] || python3 -m venv "$VENV" >&2
        # shellcheck disable=SC2086 # PINS is a list of words on purpose
        "$PY" -m pip install --quiet --disable-pip-version-check $PINS >&2
        echo "$PINS" >"$MARKER"
    fi
fi
echo "$PY"
