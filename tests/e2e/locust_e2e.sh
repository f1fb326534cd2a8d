#!/usr/bin/env bash
# End-to-end test (`make test-e2e`, after `make release`): three release
# backends and the release gateway as real processes on free loopback ports, a
# real headless Locust run with the project's locustfile, then
# tests/e2e/check_e2e.py compares Locust's exact counts with the gateway's and
# the backends' /api/stats/1m.
#
# Ports come from 20000-29999: not 5000-5002/8000 (so a running `make run` is
# no obstacle) and below Linux's ephemeral range (32768+), where the outgoing
# connections of this very test take their ports.
#
# Settings (environment): E2E_USERS (20), E2E_SPAWN_RATE (10), E2E_RUN_TIME (20s).
# The run must end well inside a minute, as the stats compared are /api/stats/1m.
#
# Every process started here is stopped on exit (trap), pass or fail. Logs go
# to a fresh target/run/e2e.XXXXXX/, removed on success and kept on failure.
set -euo pipefail
cd "$(dirname "$0")/../.."

# Process helpers shared with `make run`: port_free, start_stack,
# stop_services, find_locust, require_binaries.
# shellcheck source=deploy/scripts/run-local.sh
source deploy/scripts/run-local.sh

users=${E2E_USERS:-20}
spawn_rate=${E2E_SPAWN_RATE:-10}
run_time=${E2E_RUN_TIME:-20s}
n_backends=3

require_binaries
locust=$(find_locust)

# pick_ports N: print the first of N consecutive free ports in 20000-29999,
# trying random places so concurrent runs are unlikely to collide.
pick_ports() {
  local n=$1 attempt base i
  for attempt in $(seq 1 50); do
    base=$((20000 + RANDOM % (10000 - n)))
    for ((i = 0; i < n; i++)); do
      port_free $((base + i)) || continue 2
    done
    echo "$base"
    return 0
  done
  echo "error: no $n consecutive free ports found in 20000-29999 after $attempt tries" >&2
  return 1
}

mkdir -p target/run
log_dir=$(mktemp -d target/run/e2e.XXXXXX)

cleanup() {
  local status=$?
  stop_services
  if ((status == 0)); then
    rm -rf "$log_dir"
  else
    echo "e2e: FAILED (status $status); logs kept in $log_dir/" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

base=$(pick_ports $((n_backends + 1)))
gateway_port=$base
gateway_url="http://127.0.0.1:$gateway_port"
# A token, so the run also proves the locustfile authenticates its registrations.
admin_token="e2e-$RANDOM$RANDOM$RANDOM"

mapfile -t backend_ports < <(seq $((base + 1)) $((base + n_backends)))
start_stack "$log_dir" "$gateway_port" "$admin_token" "${backend_ports[@]}"
backends=$STACK_BACKENDS
echo "e2e: gateway on $gateway_url, backends $backends; Locust $users users at $spawn_rate/s for $run_time"

# --json-file: exact final counts (the CSV can lag them); --csv only for the
# failure messages; --stop-timeout: requests in flight at the end finish and
# are counted by Locust as well as by the services. `timeout` bounds the run
# should Locust hang; --foreground keeps Locust in our process group so a
# Ctrl-C reaches it (without it, Locust ignores the SIGINT that timeout
# forwards and runs to its end). Locust exits non-zero on failures: the check
# reports it.
locust_status=0
BACKENDS="$backends" GATEWAY_ADMIN_TOKEN="$admin_token" timeout --foreground --kill-after=10 120 \
  "$locust" -f deploy/locust/locustfile.py --headless --only-summary -H "$gateway_url" \
  -u "$users" -r "$spawn_rate" --run-time "$run_time" --stop-timeout 10 \
  --json-file "$log_dir/locust" --csv "$log_dir/locust" >"$log_dir/locust.log" 2>&1 || locust_status=$?

if ! python3 tests/e2e/check_e2e.py --locust-prefix "$log_dir/locust" --locust-status "$locust_status" \
  --users "$users" --gateway "$gateway_url" --backends "$backends"; then
  echo "--- last lines of $log_dir/locust.log:" >&2
  tail -n 20 "$log_dir/locust.log" >&2
  exit 1
fi
