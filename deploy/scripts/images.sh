#!/usr/bin/env bash
# Builds the gateway and backend images from the project's Dockerfile.
#
#   deploy/scripts/images.sh [gateway] [backend]     (default: both)
#
# Settings (environment; the Makefile passes its variables of the same names):
#   IMAGE_REPO        name prefix, e.g. gatewaylab or registry.example.com/team (default gatewaylab)
#   IMAGE_TAG         tag (default: the workspace version in Cargo.toml)
#   CONTAINER_ENGINE  auto (docker when `docker info` works, else podman) | docker | podman
#   AIRGAP            auto | 0 | 1. 1 = build on local stand-ins for the two base
#                     images (deploy/scripts/base-images.sh) with the machine's Rust
#                     toolchain mounted: podman only, no registry needed. auto = 1
#                     with podman, 0 with docker.
#   RUST_IMAGE, RUNTIME_IMAGE   override the Dockerfile's bases when AIRGAP=0
#   SOURCE_URL        org.opencontainers.image.source (default: repository in Cargo.toml)
set -euo pipefail
cd "$(dirname "$0")/../.."

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(gateway backend)
for t in "${targets[@]}"; do
  case "$t" in gateway|backend) ;; *) echo "unknown image '$t' (gateway or backend)" >&2; exit 2 ;; esac
done

VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
IMAGE_REPO="${IMAGE_REPO:-gatewaylab}"
IMAGE_TAG="${IMAGE_TAG:-$VERSION}"
# shellcheck source=deploy/scripts/container-env.sh
. deploy/scripts/container-env.sh

airgap="${AIRGAP:-auto}"
if [ "$airgap" = auto ]; then
  if [ "$ENGINE" = podman ]; then airgap=1; else airgap=0; fi
fi
if [ "$airgap" = 1 ] && [ "$ENGINE" != podman ]; then
  echo "AIRGAP=1 needs podman (build-time volume mounts); set CONTAINER_ENGINE=podman" >&2
  exit 2
fi

SOURCE_URL="${SOURCE_URL:-$(sed -n 's/^repository = "\(.*\)"$/\1/p' Cargo.toml | head -n1)}"
common=(--build-arg "VERSION=$VERSION" -f Dockerfile)
if [ -n "$SOURCE_URL" ]; then common+=(--build-arg "SOURCE=$SOURCE_URL"); fi

if [ "$airgap" = 1 ]; then
  deploy/scripts/base-images.sh
  RECIPE=$(sed -n 's/^RECIPE=//p' deploy/scripts/base-images.sh)
  command -v rustup >/dev/null || { echo "AIRGAP=1 mounts the machine's Rust toolchain: rustup not found" >&2; exit 1; }
  rustup_home=$(rustup show home)
  cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
  common+=(
    --build-arg "RUST_IMAGE=${BUILDER_BASE:-localhost/gatewaylab-base/rust:bookworm-$RECIPE}"
    --build-arg "RUNTIME_IMAGE=${RUNTIME_BASE:-localhost/gatewaylab-base/base-nossl-debian12:nonroot-$RECIPE}"
    --pull=never
    # the official image's toolchain paths, read-only
    -v "$rustup_home:/usr/local/rustup:ro"
    -v "$cargo_bin:/usr/local/cargo/bin:ro"
    # HTTPS to crates.io may pass a proxy whose CA only the host trusts
    -v /etc/ssl/certs:/etc/ssl/certs:ro
  )
else
  if [ -n "${RUST_IMAGE:-}" ]; then common+=(--build-arg "RUST_IMAGE=$RUST_IMAGE"); fi
  if [ -n "${RUNTIME_IMAGE:-}" ]; then common+=(--build-arg "RUNTIME_IMAGE=$RUNTIME_IMAGE"); fi
fi

for t in "${targets[@]}"; do
  image="$IMAGE_REPO/$t:$IMAGE_TAG"
  start=$(date +%s)
  echo "== building $image with $ENGINE (air-gapped: $airgap)"
  if [ "$ENGINE" = docker ]; then
    DOCKER_BUILDKIT=1 docker build "${common[@]}" --target "$t" -t "$image" .
  else
    # docker format: the OCI format has no HEALTHCHECK
    podman build --format docker --network host "${common[@]}" --target "$t" -t "$image" .
  fi
  echo "== built $image in $(( $(date +%s) - start ))s"
done

if [ "$ENGINE" = podman ]; then
  # vfs keeps a full copy per layer: drop old build layers (keep a day's as cache)
  podman image prune -f --filter until=24h >/dev/null || true
fi
for t in "${targets[@]}"; do
  $ENGINE image inspect --format "{{.Size}}" "$IMAGE_REPO/$t:$IMAGE_TAG" \
    | awk -v n="$IMAGE_REPO/$t:$IMAGE_TAG" '{printf "%s: %.1f MB (%d bytes)\n", n, $1/1e6, $1}'
done
