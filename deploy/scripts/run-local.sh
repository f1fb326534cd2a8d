#!/usr/bin/env bash
# `make run`: start three backends and the gateway from target/release, let a
# short headless Locust load register the backends and send traffic, print the
# gateway's /api/stats/1m as a short table (the JSON is saved beside the logs),
# then keep everything running until Ctrl-C.
# Every process this script starts is stopped when it exits, however it exits.
#
# Settings (environment):
#   GATEWAY_PORT       gateway port (8000)
#   BACKEND_PORTS      backend ports, space or comma separated ("5000 5001 5002")
#   LOCUST_USERS       Locust users (10)
#   LOCUST_SPAWN_RATE  users started per second (5)
#   LOCUST_RUN_TIME    length of the load (20s)
#   GATEWAY_ADMIN_TOKEN  if set, the gateway's admin API requires it and Locust sends it
#   STATS_JSON         1: print the gateway's full stats JSON after the summary table
#   RUN_LOG_DIR        where the logs and the stats JSON go (target/run/local; emptied first)
#
# Everything listens on 127.0.0.1 only: this is a local demo, and load goes to
# loopback only.
#
# tests/e2e/locust_e2e.sh sources this file for its process helpers
# (port_free, start_stack, stop_services, find_locust, ...), so the
# end-to-end test starts services exactly the way `make run` does. When sourced,
# only the functions are defined; main runs only when executed.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# PIDs of every process started by start_service, stopped by stop_services.
SERVICE_PIDS=()

# port_free PORT: succeeds when nothing accepts connections on 127.0.0.1:PORT.
# Checked before starting a service, because a service that cannot bind exits,
# and another program on that port could otherwise answer our /readyz.
port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# start_service LOG_FILE COMMAND...: run COMMAND in the background with its
# output in LOG_FILE, and remember its PID for stop_services.
start_service() {
  local log=$1
  shift
  "$@" >"$log" 2>&1 &
  SERVICE_PIDS+=("$!")
}

# wait_ready NAME PORT PID LOG_FILE [SECONDS]: wait until
# http://127.0.0.1:PORT/readyz answers 2xx while PID is still alive. Fails with
# a message naming the port and the end of the log if the process exits
# (typically: port already in use) or is not ready in time (10 s by default).
wait_ready() {
  local name=$1 port=$2 pid=$3 log=$4 limit=${5:-10}
  local deadline=$((SECONDS + limit))
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "error: $name (port $port) exited during start-up (port already in use? bad setting?); last lines of $log:" >&2
      tail -n 20 "$log" >&2
      return 1
    fi
    if curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$port/readyz" 2>/dev/null; then
      return 0
    fi
    if ((SECONDS >= deadline)); then
      echo "error: $name (port $port) not ready after ${limit}s; last lines of $log:" >&2
      tail -n 20 "$log" >&2
      return 1
    fi
    sleep 0.2
  done
}

# stop_services: SIGTERM every started process (they shut down gracefully),
# give them a bounded time, SIGKILL what is left, and reap them all so no
# process outlives the script.
stop_services() {
  local pid alive deadline=$((SECONDS + 20))
  ((${#SERVICE_PIDS[@]})) || return 0
  for pid in "${SERVICE_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  while ((SECONDS < deadline)); do
    alive=0
    for pid in "${SERVICE_PIDS[@]}"; do
      kill -0 "$pid" 2>/dev/null && alive=1
    done
    ((alive)) || break
    sleep 0.2
  done
  for pid in "${SERVICE_PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      echo "warning: PID $pid did not stop within 20s after SIGTERM; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  SERVICE_PIDS=()
}

# start_stack LOG_DIR GATEWAY_PORT ADMIN_TOKEN BACKEND_PORT...: start one
# backend per port (named server1, server2, ...) and the gateway (with that
# admin token; empty = admin API open), all on 127.0.0.1 with their logs in
# LOG_DIR, and wait until each is ready. The gateway starts with no servers:
# the locustfile registers them. Sets STACK_BACKENDS to the backends as
# "name=url,name=url", the form of the locustfile's BACKENDS.
start_stack() {
  local log_dir=$1 gateway_port=$2 token=$3
  shift 3
  local i port name
  local -a names=() ports=() pids=()
  STACK_BACKENDS=""
  for port in "$@"; do
    name="server$((${#names[@]} + 1))"
    start_service "$log_dir/$name.log" env BACKEND__LISTEN__HOST=127.0.0.1 BACKEND__LISTEN__PORT="$port" \
      BACKEND__NAME="$name" target/release/backend
    names+=("$name") ports+=("$port") pids+=("${SERVICE_PIDS[-1]}")
    STACK_BACKENDS+="${STACK_BACKENDS:+,}$name=http://127.0.0.1:$port"
  done
  start_service "$log_dir/gateway.log" env GATEWAY__LISTEN__HOST=127.0.0.1 GATEWAY__LISTEN__PORT="$gateway_port" \
    GATEWAY__ADMIN__TOKEN="$token" target/release/gateway
  names+=(gateway) ports+=("$gateway_port") pids+=("${SERVICE_PIDS[-1]}")

  for i in "${!names[@]}"; do
    wait_ready "${names[$i]}" "${ports[$i]}" "${pids[$i]}" "$log_dir/${names[$i]}.log"
    echo "${names[$i]} ready on http://127.0.0.1:${ports[$i]} (PID ${pids[$i]})"
  done
}

# find_locust: print the Locust to use: the project's venv (made by `make deps`)
# if present, else the one on PATH.
find_locust() {
  if [[ -x "$REPO_ROOT/.venv/bin/locust" ]]; then
    echo "$REPO_ROOT/.venv/bin/locust"
  elif command -v locust >/dev/null; then
    command -v locust
  else
    echo "error: locust not found (run 'make deps-run', or pip install -r requirements.txt)" >&2
    return 1
  fi
}

# require_binaries: the release binaries must exist (`make release` builds them).
require_binaries() {
  local bin
  for bin in backend gateway; do
    if [[ ! -x "$REPO_ROOT/target/release/$bin" ]]; then
      echo "error: target/release/$bin is missing; run 'make release' first" >&2
      return 1
    fi
  done
}

main() {
  local gateway_port=${GATEWAY_PORT:-8000}
  local -a backend_ports
  # Accept "5000,5001,5002" as well as "5000 5001 5002".
  IFS=', ' read -r -a backend_ports <<<"${BACKEND_PORTS:-5000 5001 5002}"
  local users=${LOCUST_USERS:-10} spawn_rate=${LOCUST_SPAWN_RATE:-5} run_time=${LOCUST_RUN_TIME:-20s}
  local log_dir=${RUN_LOG_DIR:-target/run/local}
  local gateway_url="http://127.0.0.1:$gateway_port"

  cd "$REPO_ROOT"
  require_binaries
  local locust
  locust=$(find_locust)

  local port
  for port in "${backend_ports[@]}" "$gateway_port"; do
    if [[ ! $port =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
      echo "error: '$port' is not a port number (GATEWAY_PORT / BACKEND_PORTS)" >&2
      return 1
    fi
    if ! port_free "$port"; then
      echo "error: port $port on 127.0.0.1 is already in use; choose others with GATEWAY_PORT / BACKEND_PORTS" >&2
      return 1
    fi
  done

  # Stop everything we start, on any exit. INT/TERM exit explicitly so the
  # EXIT trap runs (and the exit status tells how we ended).
  trap stop_services EXIT
  trap 'echo; echo "stopping..."; exit 130' INT
  trap 'exit 143' TERM

  rm -rf "$log_dir"
  mkdir -p "$log_dir"
  echo "logs: $log_dir/"

  start_stack "$log_dir" "$gateway_port" "${GATEWAY_ADMIN_TOKEN:-}" "${backend_ports[@]}"
  local backends=$STACK_BACKENDS

  echo
  echo "Locust: $users users, $spawn_rate/s, for $run_time against $gateway_url (registers $backends)"
  # Locust exits non-zero when any request failed; show the stats anyway.
  local locust_rc=0
  BACKENDS="$backends" "$locust" -f deploy/locust/locustfile.py --headless --only-summary \
    -H "$gateway_url" -u "$users" -r "$spawn_rate" --run-time "$run_time" --stop-timeout 10 \
    || locust_rc=$?
  ((locust_rc == 0)) || echo "warning: Locust exited with status $locust_rc (failed requests? see its report above)" >&2

  echo
  echo "Gateway stats, last minute ($gateway_url/api/stats/1m):"
  local stats_json=$log_dir/stats-1m.json
  curl -fsS "$gateway_url/api/stats/1m" >"$stats_json"
  python3 deploy/scripts/stats_table.py "$stats_json" || cat "$stats_json"
  if [[ ${STATS_JSON:-0} == 1 ]]; then
    python3 -m json.tool "$stats_json"
  fi
  echo "Full JSON: $stats_json (STATS_JSON=1 prints it here)"

  cat <<EOF

Everything is still running. Open $gateway_url/dashboard in a browser (each backend has its own too), or try:
  curl -i $gateway_url/api/data
  curl $gateway_url/api/servers
  curl $gateway_url/api/stats/1m      (also /api/stats/5m, /api/stats/1h)
  curl $gateway_url/metrics
  curl http://127.0.0.1:${backend_ports[0]}/api/data   (a backend directly)
  BACKENDS=$backends $locust -f deploy/locust/locustfile.py -H $gateway_url
                                      (Locust web UI on http://localhost:8089)
Logs: $log_dir/   Press Ctrl-C to stop everything.
EOF

  # `wait -n` returns when any service exits on its own, or at once when a
  # trapped signal arrives (unlike sleep); either way the EXIT trap cleans up.
  local status=0
  wait -n "${SERVICE_PIDS[@]}" || status=$?
  echo "error: a service exited unexpectedly (status $status); see $log_dir/" >&2
  return 1
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  main "$@"
fi
