# shellcheck shell=bash
# Sourced by the image scripts: picks the container engine and, for podman and
# buildah, a private storage and configuration that work on a plain Debian 12
# machine without a Docker engine (runc, cgroupfs, no default rlimits).
#
#   CONTAINER_ENGINE  auto (default) | docker | podman
#   CONTAINERS_HOME   podman/buildah storage, build caches and base-image work
#                     dirs; default ~/.cache/gatewaylab/containers, so every
#                     checkout on the machine shares it and nothing lands in
#                     the git tree.
#   STORAGE_DRIVER    auto (default) | overlay | vfs. auto = overlay when this
#                     machine can mount it there (as root), else vfs, which
#                     works everywhere but copies every layer in full (slower,
#                     GBs of disk). Each driver has its own storage directory.
#
# After sourcing: ENGINE is "docker" or "podman" and, for podman,
# CONTAINERS_CONF, CONTAINERS_STORAGE_CONF and TMPDIR are exported, so plain
# `podman ...` and `buildah ...` commands use that storage.

gl_engine_detect() {
  case "${CONTAINER_ENGINE:-auto}" in
    docker|podman) ENGINE="$CONTAINER_ENGINE" ;;
    auto|"")
      if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
        ENGINE=docker
      elif command -v podman >/dev/null 2>&1; then
        ENGINE=podman
      else
        echo "no container engine: neither a working docker (docker info) nor podman" >&2
        return 1
      fi ;;
    *) echo "CONTAINER_ENGINE must be auto, docker or podman (got '$CONTAINER_ENGINE')" >&2; return 1 ;;
  esac
  export ENGINE
}

gl_overlay_works() { # can the kernel mount overlay on CONTAINERS_HOME's filesystem?
  [ "$(id -u)" -eq 0 ] || return 1
  grep -qw overlay /proc/filesystems 2>/dev/null || return 1
  local d rc=1
  d=$(mktemp -d "$CONTAINERS_HOME/overlay-probe.XXXXXX") || return 1
  mkdir -p "$d/lower" "$d/upper" "$d/work" "$d/merged"
  if mount -t overlay overlay -o "lowerdir=$d/lower,upperdir=$d/upper,workdir=$d/work" "$d/merged" 2>/dev/null; then
    umount "$d/merged" && rc=0
  fi
  rm -rf "$d"
  return "$rc"
}

gl_podman_setup() {
  CONTAINERS_HOME="${CONTAINERS_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/gatewaylab/containers}"
  mkdir -p "$CONTAINERS_HOME/tmp"
  CONTAINERS_HOME="$(cd "$CONTAINERS_HOME" && pwd)"
  case "${STORAGE_DRIVER:-auto}" in
    overlay|vfs) ;;
    auto|"") if gl_overlay_works; then STORAGE_DRIVER=overlay; else STORAGE_DRIVER=vfs; fi ;;
    *) echo "STORAGE_DRIVER must be auto, overlay or vfs (got '$STORAGE_DRIVER')" >&2; return 1 ;;
  esac
  local storage="$CONTAINERS_HOME/storage-$STORAGE_DRIVER"
  mkdir -p "$storage/graph" "$storage/run"
  # Debian's podman 4.3 on this kind of machine: crun fails in cgroup hybrid
  # mode and the default ulimits fail with "setrlimit: Operation not permitted".
  cat > "$CONTAINERS_HOME/containers.conf" <<CONF
[containers]
default_ulimits = []

[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
events_logger = "file"
CONF
  cat > "$storage/storage.conf" <<CONF
[storage]
driver = "$STORAGE_DRIVER"
graphroot = "$storage/graph"
runroot = "$storage/run"
CONF
  export CONTAINERS_HOME STORAGE_DRIVER
  export CONTAINERS_CONF="$CONTAINERS_HOME/containers.conf"
  export CONTAINERS_STORAGE_CONF="$storage/storage.conf"
  export BUILDAH_RUNTIME=runc
  # buildah keeps RUN --mount=type=cache directories under TMPDIR: keep them
  # with the storage so they survive between runs.
  export TMPDIR="$CONTAINERS_HOME/tmp"
}

gl_engine_detect || return 1
if [ "$ENGINE" = podman ]; then
  gl_podman_setup
fi
