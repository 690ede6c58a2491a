# syntax=docker/dockerfile:1
#
# The `stigmergy` binary in a small runtime image. One image for every role: the all-in-one
# `serve` (the default command) and, split around Kafka and PostgreSQL, `capture`, `project` and
# `gateway` (deploy/README.md).
#
#   docker build -t stigmergy:0.1.0 .        # BuildKit (the default builder of Docker >= 23)

# ---- build ------------------------------------------------------------------------------------
# The workspace's rust-version is 1.90 (edition 2024).
FROM rust:1.90-bookworm AS builder

# rdkafka-sys builds librdkafka from its bundled sources with librdkafka's own `configure` and
# `make` (not CMake, so no cmake is needed), statically, without zlib, TLS, SASL, curl or zstd:
# that takes a C toolchain (build-essential), make, perl and python3 (for librdkafka's
# linker-script generator). The rust:*-bookworm images already carry all four; installing them
# again is a no-op that keeps the build from depending on what the base image happens to hold.
RUN --mount=type=cache,target=/var/cache/apt,sharing=locked \
    --mount=type=cache,target=/var/lib/apt/lists,sharing=locked \
    rm -f /etc/apt/apt.conf.d/docker-clean \
 && apt-get update \
 && apt-get install -y --no-install-recommends build-essential make perl python3

WORKDIR /src
# Only what the build reads: the manifests, the crates, and the JSON Schemas that capture embeds
# at compile time (include_str! of schemas/). docs/ and ../shared are not needed to build.
COPY Cargo.toml Cargo.lock ./
COPY services ./services
COPY schemas ./schemas

# The registry and the target directory live in BuildKit cache mounts, so a rebuild recompiles
# only what changed; the binary is copied out of the cache mount in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p stigmergy \
 && install -D -m 0755 target/release/stigmergy /out/stigmergy

# ---- runtime ----------------------------------------------------------------------------------
FROM debian:bookworm-slim

LABEL org.opencontainers.image.title="stigmergy" \
      org.opencontainers.image.description="Open, event-sourced supply-chain traceability for commons-based manufacturing" \
      org.opencontainers.image.source="https://github.com/stigmergy/stigmergy" \
      org.opencontainers.image.licenses="AGPL-3.0-or-later"

# librdkafka, SQLite and mimalloc are linked statically; the rest is glibc.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# A non-root user with a fixed uid/gid (10001), so that volume ownership and the Kubernetes
# securityContext (runAsUser/fsGroup 10001) agree.
RUN groupadd --system --gid 10001 stigmergy \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/stigmergy --no-create-home \
        --shell /usr/sbin/nologin stigmergy \
 && install -d -o stigmergy -g stigmergy -m 0750 /var/lib/stigmergy

COPY --from=builder /out/stigmergy /usr/local/bin/stigmergy

# Numeric, so that Kubernetes can check runAsNonRoot against the image.
USER 10001:10001
WORKDIR /var/lib/stigmergy
EXPOSE 8080

ENTRYPOINT ["stigmergy"]
# All-in-one: embedded log and SQLite in /var/lib/stigmergy (mount a volume there). For the split
# services give another command, e.g. `capture --log kafka://… --store postgres://… …`.
CMD ["serve", "--data-dir", "/var/lib/stigmergy", "--listen", "0.0.0.0:8080"]
