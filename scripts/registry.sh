#!/usr/bin/env bash
# Apicurio Registry 2.1.5.Final (Apache-2), a Schema Registry serving the
# Confluent-compatible API at /apis/ccompat/v6, for development, tests and
# the demo; built by the project from Maven Central (scripts/registry/pom.xml)
# and run with in-memory storage on 127.0.0.1.
#
#   scripts/registry.sh install       build the registry into the cache if missing; print its quarkus-run.jar
#   scripts/registry.sh run [PORT]    run one on 127.0.0.1:PORT (default 8081) in the foreground, empty
#   scripts/registry.sh run PORT CERT KEY   the same over https only, with this PEM certificate and key
#
# The cache lives outside the repository: $WEIR_CACHE_DIR, else
# ${XDG_CACHE_HOME:-$HOME/.cache}/weir. The first install takes about
# 2.5 minutes and 200 MB of Maven repository; it answers about 4 s after
# start, at about 160 MB of memory. Nothing but Maven downloads anything.
set -euo pipefail

VERSION=2.1.5.Final
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${WEIR_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/weir}
ROOT=$CACHE/registry-$VERSION
JAR=$ROOT/target/quarkus-app/quarkus-run.jar
# Small heap, serial GC, C1 only: up to four JVMs share a 2-core test machine.
JVM=(-Xmx192m -XX:+UseSerialGC -XX:TieredStopAtLevel=1)

usage() { sed -n '2,9p' "$0" >&2; exit 2; }

install() {
    if [ -f "$ROOT/.installed" ] && cmp -s "$HERE/registry/pom.xml" "$ROOT/pom.xml"; then
        echo "$JAR"
        return
    fi
    mkdir -p "$CACHE"
    # One install at a time, even when several test runs start together.
    exec 9>"$CACHE/registry-$VERSION.lock"
    flock 9
    if ! { [ -f "$ROOT/.installed" ] && cmp -s "$HERE/registry/pom.xml" "$ROOT/pom.xml"; }; then
        echo "building Apicurio Registry $VERSION from Maven Central into $ROOT" >&2
        rm -rf "$ROOT"
        mkdir -p "$ROOT"
        cp "$HERE/registry/pom.xml" "$ROOT/pom.xml"
        mvn -q -B -Dstyle.color=never -f "$ROOT/pom.xml" package -DskipTests >&2
        [ -f "$JAR" ] || { echo "the build left no $JAR" >&2; exit 1; }
        touch "$ROOT/.installed"
    fi
    echo "$JAR"
}

run() {
    local port=${1:-8081} cert=${2:-} key=${3:-}
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "something already listens on 127.0.0.1:$port; pick another port" >&2
        exit 1
    fi
    install >/dev/null
    local listen=(-Dquarkus.http.port="$port") scheme=http
    if [ -n "$cert" ]; then
        [ -f "$cert" ] && [ -f "$key" ] || { echo "no certificate \"$cert\" or key \"$key\"" >&2; exit 2; }
        # https only: plain HTTP on a port of the system's choosing, refused.
        listen=(-Dquarkus.http.port=0 -Dquarkus.http.ssl-port="$port" -Dquarkus.http.insecure-requests=disabled
            -Dquarkus.http.ssl.certificate.file="$cert" -Dquarkus.http.ssl.certificate.key-file="$key")
        scheme=https
    fi
    echo "Apicurio Registry $VERSION on $scheme://127.0.0.1:$port (Confluent API at /apis/ccompat/v6, in memory); Ctrl-C stops it" >&2
    # exec: a signal to this process (or the parent's death, for tests) reaches the JVM itself.
    exec java "${JVM[@]}" "${listen[@]}" -Dquarkus.http.host=127.0.0.1 \
        -Dregistry.storage.kind=mem -Dquarkus.log.level=WARN -jar "$JAR"
}

case "${1:-}" in
    install) install ;;
    run) shift; [ $# -le 1 ] || [ $# -eq 3 ] || usage; run "$@" ;;
    *) usage ;;
esac
