#!/usr/bin/env bash
# Apache Kafka for development, tests, the demo and the bench, installed by
# the project from Maven Central and run in KRaft mode on 127.0.0.1.
#
#   scripts/kafka.sh install              resolve Kafka's jars into the cache if missing; print the libs folder
#   scripts/kafka.sh run [PORT]           one node (broker and controller) in the foreground, fresh data
#   scripts/kafka.sh cluster N [PORT]     N nodes in the foreground (node i listens on PORT+10*i), fresh data
#   scripts/kafka.sh prepare DIR N PORT   write N nodes' configs and TLS files under DIR and format their storage
#   scripts/kafka.sh start DIR/node-I     run one prepared node in the foreground (logs in DIR/node-I/server.log)
#   scripts/kafka.sh tool CLASS ARGS...   run a Kafka command-line tool (e.g. org.apache.kafka.tools.TopicCommand)
#
# Each node listens on four ports from its PORT: PLAINTEXT on PORT, the
# KRaft controller on PORT+1, SASL_PLAINTEXT on PORT+2 (PLAIN user
# "alice"/"alice-secret", SCRAM-SHA-256/512 users added with
# kafka-configs), and SSL with client authentication required on PORT+3
# (DIR/tls: ca.pem, client.pem, client.key, signed by the same CA).
#
# The cache lives outside the repository: $WEIR_CACHE_DIR, else
# ${XDG_CACHE_HOME:-$HOME/.cache}/weir. The first install takes under a
# minute with a warm Maven repository. Nothing but Maven downloads anything.
set -euo pipefail

VERSION=${WEIR_KAFKA_VERSION:-4.4.0}
# The SLF4J binding the Kafka distribution ships: without it the broker
# would log nothing (the Maven artifacts leave the binding to the user).
LOG4J_VERSION=2.25.5
CACHE=${WEIR_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/weir}
ROOT=$CACHE/kafka-$VERSION
LIBS=$ROOT/libs
# Small heaps: up to four JVMs share a 2-core test machine.
HEAP=${WEIR_KAFKA_HEAP:--Xmx512m -Xms128m}

usage() { sed -n '2,20p' "$0" >&2; exit 2; }

install() {
    if [ -f "$ROOT/.installed" ]; then
        echo "$LIBS"
        return
    fi
    mkdir -p "$CACHE"
    # One install at a time, even when several test runs start together.
    exec 9>"$CACHE/kafka-$VERSION.lock"
    flock 9
    if [ ! -f "$ROOT/.installed" ]; then
        echo "installing Apache Kafka $VERSION from Maven Central into $LIBS" >&2
        rm -rf "$LIBS"
        mkdir -p "$ROOT"
        cat >"$ROOT/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>weir.local</groupId>
  <artifactId>kafka-install</artifactId>
  <version>$VERSION</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
EOF
        mvn -q -B -Dstyle.color=never -f "$ROOT/pom.xml" dependency:copy-dependencies \
            -DincludeScope=runtime -DoutputDirectory="$LIBS" >&2
        write_tool_log_config
        touch "$ROOT/.installed"
    fi
    echo "$LIBS"
}

# Tools log warnings to stderr; their output stays on stdout.
write_tool_log_config() {
    cat >"$ROOT/tools-log4j2.properties" <<'EOF'
status = error
appender.err.type = Console
appender.err.name = err
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.err.ref = err
EOF
}

JAVA_OPTS=(-cp "$LIBS/*" -Djava.awt.headless=true -XX:+UseG1GC -XX:MaxGCPauseMillis=20)

# prepare DIR N PORT: configs, TLS files and formatted storage for N nodes.
prepare() {
    local dir=$1 nodes=$2 port=$3
    [ "$nodes" -ge 1 ] || { echo "N must be at least 1" >&2; exit 2; }
    install >/dev/null
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    make_tls "$dir/tls"
    local voters="" i
    for ((i = 0; i < nodes; i++)); do
        voters+="${voters:+,}$((i + 1))@127.0.0.1:$((port + 10 * i + 1))"
    done
    local rf=$((nodes < 3 ? nodes : 3)) isr=$((nodes < 2 ? 1 : 2))
    local cluster_id
    # 16 random bytes in URL-safe base64, as Kafka's Uuid; one starting
    # with "-" would be read as an option (Kafka's own random ids avoid it).
    cluster_id=-
    while [ "${cluster_id#-}" != "$cluster_id" ]; do
        cluster_id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | cut -c1-22)
    done
    local pids=()
    for ((i = 0; i < nodes; i++)); do
        local node=$dir/node-$i base=$((port + 10 * i))
        mkdir -p "$node/data"
        cat >"$node/server.properties" <<EOF
process.roles=broker,controller
node.id=$((i + 1))
controller.quorum.voters=$voters
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:$base,CONTROLLER://127.0.0.1:$((base + 1)),SASL_PLAINTEXT://127.0.0.1:$((base + 2)),SSL://127.0.0.1:$((base + 3))
advertised.listeners=PLAINTEXT://127.0.0.1:$base,SASL_PLAINTEXT://127.0.0.1:$((base + 2)),SSL://127.0.0.1:$((base + 3))
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL
inter.broker.listener.name=PLAINTEXT
log.dirs=$node/data

sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="alice-secret";
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
# OAUTHBEARER with Kafka's default (unsecured JWS) validator, as Kafka's own
# tests use it: a token {"alg":"none"} with sub, iat and exp and no signature.
listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub="admin";

ssl.keystore.type=PEM
ssl.keystore.location=$dir/tls/broker.pem
ssl.truststore.type=PEM
ssl.truststore.location=$dir/tls/ca.pem
listener.name.ssl.ssl.client.auth=required

num.partitions=1
default.replication.factor=$rf
offsets.topic.num.partitions=5
offsets.topic.replication.factor=$rf
transaction.state.log.num.partitions=5
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
# Share groups: a record a member acquired returns to the group when its
# acquisition lock expires (Kafka: 30 s, at least 15 s); the tests kill
# members and wait for their records, so 10 s.
group.share.min.record.lock.duration.ms=1000
group.share.record.lock.duration.ms=10000
group.initial.rebalance.delay.ms=0
EOF
        cat >"$node/log4j2.properties" <<EOF
status = error
appender.file.type = File
appender.file.name = file
appender.file.fileName = $node/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = info
logger.request.name = kafka.request.logger
logger.request.level = warn
EOF
        java "${JAVA_OPTS[@]}" -Xmx256m -Dlog4j2.configurationFile="$ROOT/tools-log4j2.properties" \
            kafka.tools.StorageTool format -t "$cluster_id" -c "$node/server.properties" \
            >"$node/format.log" 2>&1 &
        pids+=($!)
    done
    local failed=0
    for ((i = 0; i < nodes; i++)); do
        wait "${pids[$i]}" || { failed=1; cat "$dir/node-$i/format.log" >&2; }
    done
    [ "$failed" = 0 ] || { echo "formatting the storage under $dir failed" >&2; exit 1; }
}

# A CA, the brokers' key and certificate (for 127.0.0.1 and localhost) and
# a client's, as PEM files. The brokers' keystore is key and chain in one file.
make_tls() {
    local tls=$1
    [ -f "$tls/client.pem" ] && return
    mkdir -p "$tls"
    (
        cd "$tls"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -keyout ca.key -out ca.pem -days 30 -subj "/CN=weir test CA" 2>/dev/null
        for who in broker client; do
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
                -keyout "$who.key" -out "$who.csr" -subj "/CN=weir-$who" 2>/dev/null
            printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$who.ext"
            openssl x509 -req -in "$who.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
                -days 30 -extfile "$who.ext" -out "$who.crt" 2>/dev/null
            cat "$who.crt" ca.pem >"$who.pem"
            rm -f "$who.csr" "$who.ext" "$who.crt"
        done
        cat broker.key broker.pem >broker-keystore.pem
        mv broker-keystore.pem broker.pem
    )
}

# start NODE_DIR: exec one prepared node, so that a signal to this process
# (or the parent's death, for tests) reaches the JVM itself.
start() {
    local node=$1
    [ -f "$node/server.properties" ] || { echo "no prepared node in $node (scripts/kafka.sh prepare)" >&2; exit 2; }
    install >/dev/null
    # shellcheck disable=SC2086
    exec java "${JAVA_OPTS[@]}" $HEAP -Dlog4j2.configurationFile="$node/log4j2.properties" \
        -Dkafka.logs.dir="$node" kafka.Kafka "$node/server.properties"
}

# wait_port PORT SECONDS: until something accepts on 127.0.0.1:PORT.
wait_port() {
    local deadline=$((SECONDS + $2))
    until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.2
    done
}

# Refuses ports something already listens on: the fresh data folder of a
# node is named after its port, and would be wiped under a running one.
ports_free() {
    local p
    for p in "$@"; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "something already listens on 127.0.0.1:$p (another Kafka?); pick another port" >&2
            exit 1
        fi
    done
}

cluster() {
    local nodes=${1:-3} port=${2:-9092} i
    for ((i = 0; i < nodes; i++)); do ports_free $((port + 10 * i)) $((port + 10 * i + 1)) $((port + 10 * i + 2)) $((port + 10 * i + 3)); done
    local dir=$CACHE/cluster-$port
    rm -rf "$dir"
    prepare "$dir" "$nodes" "$port"
    local pids=() i
    trap 'kill "${pids[@]}" 2>/dev/null; wait; exit 0' INT TERM
    trap 'kill "${pids[@]}" 2>/dev/null' EXIT
    for ((i = 0; i < nodes; i++)); do
        "$0" start "$dir/node-$i" &
        pids+=($!)
    done
    for ((i = 0; i < nodes; i++)); do
        wait_port $((port + 10 * i)) 120 || { echo "node $i did not listen; see $dir/node-$i/server.log" >&2; exit 1; }
    done
    local list=""
    for ((i = 0; i < nodes; i++)); do list+="${list:+,}127.0.0.1:$((port + 10 * i))"; done
    echo "Apache Kafka $VERSION: $nodes nodes at $list (SASL +2, SSL +3; logs and TLS files in $dir); Ctrl-C stops them" >&2
    wait
}

run() {
    local port=${1:-9092}
    ports_free "$port" $((port + 1)) $((port + 2)) $((port + 3))
    local dir=$CACHE/run-$port
    rm -rf "$dir"
    prepare "$dir" 1 "$port"
    echo "Apache Kafka $VERSION listening on 127.0.0.1:$port (SASL $((port + 2)), SSL $((port + 3)); log $dir/node-0/server.log); Ctrl-C stops it" >&2
    start "$dir/node-0"
}

tool() {
    local class=${1:?a tool class}
    shift
    install >/dev/null
    exec java "${JAVA_OPTS[@]}" -Xmx256m -Dlog4j2.configurationFile="$ROOT/tools-log4j2.properties" "$class" "$@"
}

case "${1:-}" in
    install) install ;;
    run) shift; run "$@" ;;
    cluster) shift; cluster "$@" ;;
    prepare) shift; [ $# -eq 3 ] || usage; prepare "$@" ;;
    start) shift; [ $# -eq 1 ] || usage; start "$1" ;;
    tool) shift; tool "$@" ;;
    *) usage ;;
esac
