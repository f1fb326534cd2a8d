#!/usr/bin/env bash
# jq filters below are single-quoted on purpose: their $variables come from --arg.
# shellcheck disable=SC2016
# Container test: builds the gateway and backend images from the Dockerfile
# (deploy/scripts/images.sh) and runs them for real with host networking on
# free loopback ports, as the numeric non-root user, with a read-only root
# filesystem, no capabilities and no-new-privileges:
#   - image metadata: user 65532:65532, port, entrypoint, OCI labels, health
#     check, size under IMAGE_MAX_BYTES (30 MB);
#   - three backends + one gateway; backends registered through POST /api/servers;
#     /api/data answers through the gateway from all three; /metrics and
#     /api/stats/1m answer on the gateway;
#   - the `probe` subcommand inside the containers: exit 0 for a ready URL,
#     non-zero for a refused connection and for a 404; the image's own
#     HEALTHCHECK command passes;
#   - SIGTERM (stop with a 2 s grace period) ends each container within 2 s with
#     exit code 0, i.e. a graceful exit and not the SIGKILL after the grace.
# Every container it starts is removed on exit, failure or interrupt.
#
#   SKIP_BUILD=1   use images that are already built
set -euo pipefail
cd "$(dirname "$0")/../.."

VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
REPO_URL=$(sed -n 's/^repository = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
export IMAGE_REPO="${IMAGE_REPO:-gatewaylab}"
export IMAGE_TAG="${IMAGE_TAG:-$VERSION}"
IMAGE_MAX_BYTES="${IMAGE_MAX_BYTES:-30000000}"
GATEWAY_IMAGE="$IMAGE_REPO/gateway:$IMAGE_TAG"
BACKEND_IMAGE="$IMAGE_REPO/backend:$IMAGE_TAG"
# shellcheck source=deploy/scripts/container-env.sh
. deploy/scripts/container-env.sh

passed=0
failed=0
ok()   { passed=$((passed + 1)); echo "  ok   $*"; }
fail() { failed=$((failed + 1)); echo "  FAIL $*"; }
check() { # check "description" command...
  local what="$1"; shift
  if "$@"; then ok "$what"; else fail "$what"; fi
}
jq_ok() { # jq_ok JSON [jq args...] FILTER: true when FILTER yields true
  local json="$1"; shift
  jq -e "$@" <<<"$json" >/dev/null 2>&1
}

run_id="gl-imgtest-$$"
containers=()
workdir=$(mktemp -d)
cleanup() {
  local rc=$?
  if [ ${#containers[@]} -gt 0 ]; then
    if [ "$failed" -gt 0 ] || [ "$rc" -ne 0 ]; then
      for c in "${containers[@]}"; do
        echo "---- logs of $c (last 20 lines)"
        $ENGINE logs "$c" 2>&1 | tail -n 20 || true
      done
    fi
    $ENGINE rm -f "${containers[@]}" >/dev/null 2>&1 || true
  fi
  rm -rf "$workdir"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- build -------------------------------------------------------------------
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  start=$(date +%s)
  deploy/scripts/images.sh gateway backend
  echo "images built in $(( $(date +%s) - start ))s"
fi
echo "== container test with $ENGINE: $GATEWAY_IMAGE, $BACKEND_IMAGE"

# ---- image metadata ------------------------------------------------------------
inspect() { $ENGINE image inspect --format "$2" "$1"; }
for svc in gateway backend; do
  image="$IMAGE_REPO/$svc:$IMAGE_TAG"
  port=8000; [ "$svc" = backend ] && port=5000
  check "$svc: runs as 65532:65532" [ "$(inspect "$image" '{{.Config.User}}')" = "65532:65532" ]
  check "$svc: exposes $port/tcp" grep -q "\"$port/tcp\"" <<<"$(inspect "$image" '{{json .Config.ExposedPorts}}')"
  check "$svc: entrypoint is the binary" \
    [ "$(inspect "$image" '{{json .Config.Entrypoint}}')" = "[\"/usr/local/bin/$svc\"]" ]
  labels=$(inspect "$image" '{{json .Config.Labels}}')
  for l in description title licenses; do
    check "$svc: label org.opencontainers.image.$l" \
      jq_ok "$labels" --arg k "org.opencontainers.image.$l" '.[$k] | length > 0'
  done
  check "$svc: label org.opencontainers.image.source = $REPO_URL" \
    jq_ok "$labels" --arg v "$REPO_URL" '.["org.opencontainers.image.source"] == $v'
  check "$svc: label org.opencontainers.image.version = $VERSION" \
    jq_ok "$labels" --arg v "$VERSION" '.["org.opencontainers.image.version"] == $v'
  check "$svc: health check runs '$svc probe' on :$port/readyz" \
    jq_ok "$(inspect "$image" '{{json .Config.Healthcheck}}')" \
      --arg b "/usr/local/bin/$svc" --arg u "http://127.0.0.1:$port/readyz" \
      '.Test[0] == "CMD" and .Test[1] == $b and .Test[2] == "probe" and .Test[-1] == $u'
  size=$(inspect "$image" '{{.Size}}')
  check "$svc: image size $size bytes < $IMAGE_MAX_BYTES" [ "$size" -lt "$IMAGE_MAX_BYTES" ]
done

# ---- start three backends and the gateway ---------------------------------------
read -r P1 P2 P3 GP < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
PY
)
declare -A port_of=([server1]=$P1 [server2]=$P2 [server3]=$P3 [gateway]=$GP)

start_container() { # start_container NAME IMAGE BINARY PORT ENV...
  local name="$run_id-$1" image="$2" bin="$3" port="$4"; shift 4
  local extra=()
  if [ "$ENGINE" = podman ]; then
    # exec form, on this container's port; no timer (there is no systemd here):
    # the test runs the check itself with `podman healthcheck run`
    extra=(--health-cmd "[\"/usr/local/bin/$bin\",\"probe\",\"-q\",\"http://127.0.0.1:$port/readyz\"]"
           --health-interval=disable)
  else
    extra=(--no-healthcheck)
  fi
  containers+=("$name")
  $ENGINE run -d --name "$name" --network host --read-only --user 65532:65532 \
    --cap-drop=ALL --security-opt no-new-privileges "${extra[@]}" "$@" "$image" >/dev/null
}
for s in server1 server2 server3; do
  start_container "$s" "$BACKEND_IMAGE" backend "${port_of[$s]}" \
    -e "PORT=${port_of[$s]}" -e BACKEND__LISTEN__HOST=127.0.0.1 -e "BACKEND__NAME=$s"
done
start_container gateway "$GATEWAY_IMAGE" gateway "$GP" \
  -e "PORT=$GP" -e GATEWAY__LISTEN__HOST=127.0.0.1

wait_ready() { # wait_ready PORT: up to 20 s for /readyz
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$1/readyz" 2>/dev/null && return 0
    sleep 0.2
  done
  return 1
}
for s in server1 server2 server3 gateway; do
  if ! wait_ready "${port_of[$s]}"; then
    fail "$s: ready on 127.0.0.1:${port_of[$s]} within 20 s"
    echo "$passed passed, $failed failed"
    exit 1
  fi
  ok "$s: ready on 127.0.0.1:${port_of[$s]}"
  pid=$($ENGINE inspect --format '{{.State.Pid}}' "$run_id-$s")
  check "$s: process runs as uid 65532" grep -Eq '^Uid:[[:space:]]+65532[[:space:]]' "/proc/$pid/status"
  check "$s: root filesystem is read-only" \
    [ "$($ENGINE inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$run_id-$s")" = true ]
done

# ---- through the gateway -------------------------------------------------------------
G="http://127.0.0.1:$GP"
for s in server1 server2 server3; do
  code=$(curl -sS -o "$workdir/reg.json" -w '%{http_code}' --max-time 5 -X POST "$G/api/servers" \
    -H 'content-type: application/json' \
    -d "{\"name\":\"$s\",\"url\":\"http://127.0.0.1:${port_of[$s]}\"}")
  check "register $s via POST /api/servers -> 201 (got $code)" [ "$code" = 201 ]
done
check "GET /api/servers lists the three backends" \
  jq_ok "$(curl -sS --max-time 5 "$G/api/servers" || true)" \
  '[.servers[].name] | sort == ["server1","server2","server3"]'

declare -A by_header=() by_body=()
for _ in $(seq 1 30); do
  if curl -sS --max-time 5 -D "$workdir/h" -o "$workdir/b" "$G/api/data" \
     && grep -q '^HTTP/[0-9.]* 200' "$workdir/h"; then
    h=$(tr -d '\r' < "$workdir/h" | awk -F': ' 'tolower($1) == "x-served-by" {print $2}')
    b=$(jq -r '.instance.name // empty' "$workdir/b" 2>/dev/null || true)
    [ -z "$h" ] || by_header[$h]=1
    [ -z "$b" ] || by_body[$b]=1
  fi
done
for s in server1 server2 server3; do
  check "/api/data through the gateway answered by $s (x-served-by)" [ -n "${by_header[$s]:-}" ]
  check "/api/data through the gateway answered by $s (instance.name)" [ -n "${by_body[$s]:-}" ]
done
metrics=$(curl -sS --max-time 5 "$G/metrics" || true)
check "gateway /metrics has http_server_request_duration_seconds" \
  grep -q '^http_server_request_duration_seconds' <<<"$metrics"
stats=$(curl -sS --max-time 5 "$G/api/stats/1m" || true)
check "gateway /api/stats/1m counts the 30 proxied requests" \
  jq_ok "$stats" '.window == "1m" and .requests >= 30 and (.servers | has("server1"))'
check "backend /metrics answers" \
  grep -q '^http_server_request_duration_seconds' <<<"$(curl -sS --max-time 5 "http://127.0.0.1:$P1/metrics" || true)"

# ---- probe subcommand and health check inside the containers -------------------------
for s in server1 gateway; do
  bin=backend; [ "$s" = gateway ] && bin=gateway
  c="$run_id-$s"; p="${port_of[$s]}"
  check "$s: '$bin probe' of /readyz inside the container exits 0" \
    "$ENGINE" exec "$c" "/usr/local/bin/$bin" probe -q "http://127.0.0.1:$p/readyz"
  rc=0; $ENGINE exec "$c" "/usr/local/bin/$bin" probe -q --timeout 1s "http://127.0.0.1:$p/no-such-path" >/dev/null 2>&1 || rc=$?
  check "$s: '$bin probe' of a 404 exits non-zero (got $rc)" [ "$rc" -ne 0 ]
  rc=0; $ENGINE exec "$c" "/usr/local/bin/$bin" probe -q --timeout 1s "http://127.0.0.1:1/readyz" >/dev/null 2>&1 || rc=$?
  check "$s: '$bin probe' of a refused port exits non-zero (got $rc)" [ "$rc" -ne 0 ]
  # the image's HEALTHCHECK command, with this container's port
  mapfile -t hc < <($ENGINE image inspect --format '{{json .Config.Healthcheck.Test}}' \
    "$IMAGE_REPO/$bin:$IMAGE_TAG" | jq -r --arg p "$p" '.[1:][] | sub(":(5000|8000)/"; ":" + $p + "/")')
  check "$s: the image's HEALTHCHECK command passes (${hc[*]})" "$ENGINE" exec "$c" "${hc[@]}"
  if [ "$ENGINE" = podman ]; then
    check "$s: podman healthcheck run reports healthy" podman healthcheck run "$c"
  fi
done

# ---- SIGTERM: each container stops within 2 s, gracefully -----------------------------
for s in server1 server2 server3 gateway; do
  c="$run_id-$s"
  t0=$(date +%s%N)
  $ENGINE stop -t 2 "$c" >/dev/null
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  code=$($ENGINE inspect --format '{{.State.ExitCode}}' "$c")
  check "$s: SIGTERM stopped it in ${ms} ms (< 2000) with exit code $code (0 = graceful)" \
    [ "$ms" -lt 2000 -a "$code" = 0 ]
done

# ---- sizes ------------------------------------------------------------------------------
echo "== image sizes"
for svc in gateway backend; do
  $ENGINE image inspect --format '{{.Size}}' "$IMAGE_REPO/$svc:$IMAGE_TAG" \
    | awk -v n="$IMAGE_REPO/$svc:$IMAGE_TAG" '{printf "  %-32s %6.1f MB\n", n, $1/1e6}'
done
echo "images: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
