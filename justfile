# weir's tasks. `just demo` shows the main job; `just test` runs every test.

set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes.
default:
    @just --list

# Run one local Apache Kafka node (KRaft) on 127.0.0.1:PORT in the foreground, on fresh data.
broker port="9092":
    scripts/kafka.sh run {{port}}

# Run N local Apache Kafka nodes in the foreground; node i on 127.0.0.1:PORT+10*i.
cluster nodes="3" port="9092":
    scripts/kafka.sh cluster {{nodes}} {{port}}

# Run one local Schema Registry (Apicurio, Confluent API at /apis/ccompat/v6, in memory) on 127.0.0.1:PORT in the foreground.
registry port="8081":
    scripts/registry.sh run {{port}}

# The main job, end to end, against a local broker it starts itself.
demo:
    scripts/demo.sh

# Format and lint checks, the static builds, and every test against a real broker.
test:
    scripts/kafka.sh install >/dev/null
    scripts/registry.sh install >/dev/null
    cargo fmt --check
    cargo clippy --locked --all-targets -- -D warnings
    scripts/static.sh
    scripts/cross.sh
    # Every test binary and the doc tests; the two that start three Kafka nodes of their own run beside the others (scripts/test-lanes.sh says how).
    WEIR_STATIC_BIN="$(scripts/static.sh)" WEIR_AARCH64_BIN="$(scripts/cross.sh)" scripts/test-lanes.sh
    # weir's changes to the vendored rskafka: its record batch codec (written ahead and read in place), frame and SASL mechanism tests, and every decoder weir uses fed random and damaged bytes (an error, never a panic).
    cargo test --locked --manifest-path vendor/rskafka/Cargo.toml --lib -- protocol::record protocol::primitives protocol::frame sasl:: protocol::fuzz_tests
    # weir as a library user gets it: tests/outside, a crate of its own outside the workspace, depends on weir by path without the `cli` feature and with no [patch]; built offline from weir's lock file into the same target directory (only weir, weir-rskafka and itself compile again), then run (no broker).
    cp Cargo.lock tests/outside/Cargo.lock
    cargo run --offline --manifest-path tests/outside/Cargo.toml --target-dir "${CARGO_TARGET_DIR:-target}"

# weir vs rust-rdkafka, Confluent's Rust client, Kafka's Java perf tools and kcat on a fresh local Kafka node: produce, consume, latency, cli, groups; weir pipe vs a Java loop (see BENCHMARKS.md).
bench:
    scripts/bench.sh

# Build the fully static x86_64 musl binary; prints its path.
static:
    scripts/static.sh

# Cross-build the fully static aarch64 musl binary (cargo-zigbuild, zig as C compiler); prints its path.
cross:
    scripts/cross.sh
