# weir as a `FROM scratch` image: the fully static x86_64 musl binary and
# nothing else (no shell, no libc, no /etc). Configure it with WEIR_*
# variables (WEIR_BROKERS, WEIR_TLS, WEIR_SASL_USERNAME, ...; see README.md):
#
#   docker build -t weir .
#   docker run --rm -e WEIR_BROKERS=10.0.0.5:9092 weir topics list
#
# Give brokers as IP addresses, or mount an /etc/hosts (README: "Static
# binaries and containers"): the image has no resolver configuration.

FROM rust:1.95-bookworm AS build
RUN rustup target add x86_64-unknown-linux-musl \
    && apt-get update \
    && apt-get install -y --no-install-recommends musl-tools \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY vendor/rskafka vendor/rskafka
# The caches keep the registry and the dependencies' builds between image
# builds; the binary is copied out of the cached target dir.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --target x86_64-unknown-linux-musl --bin weir \
    && cp target/x86_64-unknown-linux-musl/release/weir /weir

FROM scratch
COPY --from=build /weir /weir
# No /etc/passwd is needed for a numeric user: run as nobody.
USER 65534:65534
ENTRYPOINT ["/weir"]
