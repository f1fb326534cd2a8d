# Container images for the gateway and the backend, from one multi-stage build:
#
#   docker build --target gateway -t gatewaylab/gateway:0.1.0 .
#   docker build --target backend -t gatewaylab/backend:0.1.0 .
#
# (`make images` does both.) RUST_IMAGE and RUNTIME_IMAGE may name mirrored or
# local copies of the two bases; the air-gapped build in
# deploy/scripts/images.sh passes local stand-ins made from Debian's packages
# and builds this same file unchanged.
ARG RUST_IMAGE=docker.io/library/rust:1.95.0-bookworm
# glibc only (the binaries use rustls, not OpenSSL, and no C++); the builder
# adds libgcc_s. gcr.io/distroless/cc-debian12:nonroot works too (8 MB larger).
ARG RUNTIME_IMAGE=gcr.io/distroless/base-nossl-debian12:nonroot

# ---- builder ---------------------------------------------------------------
FROM ${RUST_IMAGE} AS builder
WORKDIR /src
# Only what cargo reads, so edits to docs, deploy files or tests don't rebuild.
COPY Cargo.toml Cargo.lock ./
COPY .cargo ./.cargo
COPY services ./services
# The dashboards embed the vendored uPlot from here (include_bytes!), the one
# copy the scenario report inlines too.
COPY scenario/vendor ./scenario/vendor
# The release profile of Cargo.toml (fat LTO, one codegen unit), without the
# line tables: they are most of the binary's size (gateway: 36 MB -> 8 MB).
ENV CARGO_PROFILE_RELEASE_STRIP=debuginfo \
    CARGO_TERM_COLOR=never
# Downloaded crates and compiled dependencies persist in cache mounts between
# builds, so a source change recompiles only the workspace crates.
# Besides glibc the binaries link libgcc_s (unwinding): /out/rootfs carries the
# builder's copy (same Debian release as the runtime base) to the runtime image.
RUN --mount=type=cache,id=gatewaylab-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=gatewaylab-cargo-target,target=/src/target,sharing=locked \
    cargo build --release --locked -p gateway -p backend \
 && mkdir -p /out \
 && cp target/release/gateway target/release/backend /out/ \
 && lib=$(ldd /out/gateway | awk '$1 ~ /^libgcc_s[.]so/ {print $3}') \
 && test -n "$lib" \
 && libdir="/out/rootfs/usr/lib/$(basename "$(dirname "$lib")")" \
 && mkdir -p "$libdir" \
 && cp -L "$lib" "$libdir/"

# ---- runtime images --------------------------------------------------------
# What both images share: labels, libgcc_s, the numeric non-root user (so
# Kubernetes' runAsNonRoot can check it) and the stop signal. The binaries
# write nothing to disk: the containers run with a read-only root filesystem.
FROM ${RUNTIME_IMAGE} AS runtime
ARG VERSION=0.1.0
ARG SOURCE=https://github.com/gatewaylab/gatewaylab
LABEL org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/rootfs/ /
USER 65532:65532
STOPSIGNAL SIGTERM

# No shell or curl in the images: each binary probes itself (`probe URL`). The
# health checks assume the default port; with another PORT, override them
# (--health-cmd) or use the orchestrator's own probes.
FROM runtime AS backend
LABEL org.opencontainers.image.title="gatewaylab-backend" \
      org.opencontainers.image.description="Dummy upstream service for gateway load tests: JSON data, stats windows, Prometheus metrics, fault injection"
COPY --from=builder /out/backend /usr/local/bin/backend
EXPOSE 5000
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/backend", "probe", "-q", "--timeout", "2s", "http://127.0.0.1:5000/readyz"]
ENTRYPOINT ["/usr/local/bin/backend"]

FROM runtime AS gateway
LABEL org.opencontainers.image.title="gatewaylab-gateway" \
      org.opencontainers.image.description="HTTP API gateway and load balancer with an admin API, live stats windows and Prometheus metrics"
COPY --from=builder /out/gateway /usr/local/bin/gateway
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/gateway", "probe", "-q", "--timeout", "2s", "http://127.0.0.1:8000/readyz"]
ENTRYPOINT ["/usr/local/bin/gateway"]
