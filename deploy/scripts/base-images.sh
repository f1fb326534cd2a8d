#!/usr/bin/env bash
# Air-gapped stand-ins for the Dockerfile's two base images, made from
# Debian's packages when no container registry can be reached (podman only):
#
#   BUILDER_BASE  stands in for the official Rust image (rust:1.95-bookworm):
#                 a minimal Debian bookworm plus gcc, libc6-dev and
#                 ca-certificates, with the official image's RUSTUP_HOME,
#                 CARGO_HOME and PATH. It has no Rust: images.sh mounts the
#                 machine's toolchain read-only at those paths during the build.
#   RUNTIME_BASE  stands in for gcr.io/distroless/base-nossl-debian12:nonroot:
#                 only the files of the packages that image is made of
#                 (base-files, netbase, tzdata, ca-certificates with its bundle,
#                 libc6), /etc/passwd with nonroot = 65532, /tmp; no shell, no
#                 package manager; USER 65532:65532, WORKDIR /home/nonroot.
#
# Both come from one `debootstrap --variant=minbase bookworm` and are imported
# with `podman import`. Images that already exist are kept (delete them, or
# bump RECIPE, to make them again), so a rebuild does not bootstrap again.
set -euo pipefail
cd "$(dirname "$0")/../.."

RECIPE=r1
BUILDER_BASE="${BUILDER_BASE:-localhost/gatewaylab-base/rust:bookworm-$RECIPE}"
RUNTIME_BASE="${RUNTIME_BASE:-localhost/gatewaylab-base/base-nossl-debian12:nonroot-$RECIPE}"
SUITE=bookworm

CONTAINER_ENGINE=podman
# shellcheck source=deploy/scripts/container-env.sh
. deploy/scripts/container-env.sh

if podman image exists "$BUILDER_BASE" && podman image exists "$RUNTIME_BASE"; then
  echo "base images present: $BUILDER_BASE $RUNTIME_BASE"
  exit 0
fi

if [ -z "${DEBIAN_MIRROR:-}" ]; then
  DEBIAN_MIRROR=$(awk '/^URIs:/ && $2 ~ /\/debian\/?$/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$DEBIAN_MIRROR" ] || DEBIAN_MIRROR=$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
fi

work="$CONTAINERS_HOME/base-work"
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"

runtime_pkgs=(base-files netbase tzdata ca-certificates libc6)
echo "debootstrap $SUITE from $DEBIAN_MIRROR (about a minute)..."
start=$(date +%s)
debootstrap --variant=minbase --include=gcc,libc6-dev,ca-certificates,tzdata,netbase \
  "$SUITE" "$rootfs" "$DEBIAN_MIRROR" > "$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
echo "debootstrap done in $(( $(date +%s) - start ))s"

# ---- builder stand-in: the whole bootstrap, without apt's caches ----------
if ! podman image exists "$BUILDER_BASE"; then
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log
  mkdir -p "$rootfs/usr/local/rustup" "$rootfs/usr/local/cargo/bin"
  tar --numeric-owner -C "$rootfs" -c . | podman import --quiet \
    --change 'ENV RUSTUP_HOME=/usr/local/rustup' \
    --change 'ENV CARGO_HOME=/usr/local/cargo' \
    --change 'ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'WORKDIR /' \
    --change 'CMD ["bash"]' \
    --change "LABEL org.opencontainers.image.description=Air-gapped stand-in for the official Rust image: Debian $SUITE minbase + gcc libc6-dev ca-certificates; mount a Rust toolchain at /usr/local/rustup and /usr/local/cargo/bin" \
    - "$BUILDER_BASE" >/dev/null
  echo "imported $BUILDER_BASE"
fi

# ---- runtime stand-in: only the files of distroless base-nossl's packages -
if ! podman image exists "$RUNTIME_BASE"; then
  slim="$work/runtime"
  mkdir -p "$slim"
  # merged /usr, as in bookworm and distroless
  mkdir -p "$slim/usr/bin" "$slim/usr/sbin" "$slim/usr/lib" "$slim/usr/lib64"
  for d in bin sbin lib lib64; do ln -s "usr/$d" "$slim/$d"; done
  : > "$work/files"
  for p in "${runtime_pkgs[@]}"; do
    list=""
    for cand in "$rootfs/var/lib/dpkg/info/$p.list" "$rootfs/var/lib/dpkg/info/$p:amd64.list"; do
      [ -f "$cand" ] && list="$cand"
    done
    [ -n "$list" ] || { echo "package $p is not in the bootstrap" >&2; exit 1; }
    while IFS= read -r f; do
      case "$f" in
        /usr/share/doc/*/copyright) ;;
        /usr/share/doc/*|/usr/share/man/*|/usr/share/info/*|/usr/share/lintian/*|/usr/share/locale/*) continue ;;
      esac
      # files and symlinks only; directories are made as needed
      if [ -L "$rootfs$f" ] || [ -f "$rootfs$f" ]; then printf '%s\n' "${f#/}" >> "$work/files"; fi
    done < "$list"
  done
  tar --numeric-owner -C "$rootfs" --no-recursion -cf - -T "$work/files" \
    | tar --numeric-owner -C "$slim" --keep-directory-symlink -xf -
  # ca-certificates' bundle is made by its postinst, not shipped in the package
  mkdir -p "$slim/etc/ssl/certs"
  cp "$rootfs/etc/ssl/certs/ca-certificates.crt" "$slim/etc/ssl/certs/"
  cat > "$slim/etc/passwd" <<'PW'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
PW
  cat > "$slim/etc/group" <<'GR'
root:x:0:
nobody:x:65534:
tty:x:5:
staff:x:50:
nonroot:x:65532:
GR
  printf 'hosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n' > "$slim/etc/nsswitch.conf"
  mkdir -p "$slim/tmp" "$slim/root" "$slim/home/nonroot" "$slim/var/lib" "$slim/etc"
  chmod 1777 "$slim/tmp"; chmod 700 "$slim/root" "$slim/home/nonroot"
  chown 65532:65532 "$slim/home/nonroot"
  [ ! -e "$slim/bin/sh" ] || { echo "runtime stand-in must have no shell" >&2; exit 1; }
  tar --numeric-owner -C "$slim" -c . | podman import --quiet \
    --change 'USER 65532:65532' \
    --change 'WORKDIR /home/nonroot' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change "LABEL org.opencontainers.image.description=Air-gapped stand-in for gcr.io/distroless/base-nossl-debian12:nonroot, from Debian $SUITE packages" \
    - "$RUNTIME_BASE" >/dev/null
  echo "imported $RUNTIME_BASE"
fi
podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep gatewaylab-base
