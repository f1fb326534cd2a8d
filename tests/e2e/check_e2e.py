#!/usr/bin/env python3
"""Assertions of the end-to-end test (run by tests/e2e/locust_e2e.sh).

Compares what Locust sent with what the gateway and the backends counted:

- Locust: no failed request, exit status 0, every backend registered once
  per run (not once per user), and at least one GET /api/data per user (so the equalities below
  cannot hold vacuously with zero traffic).
- Gateway /api/stats/1m: ``requests`` equals Locust's GET /api/data count (the
  gateway's own routes, such as POST /api/servers, are not counted), no errors,
  all 2xx; every backend got traffic under ``servers`` and those sum to the total.
- Each backend's own /api/stats/1m ``requests`` equals what the gateway
  attributes to it, so they also sum to the total.
- No window lost requests: covered_seconds < window_seconds everywhere.

A service records a request once it has finished, which can be a moment after
the client has read the response, so the stats are read again for a few
seconds until they agree; a real mismatch still fails after that.

Standard library only. Exit status 0 when every check passes, 1 otherwise.
"""

import argparse
import csv
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for support

from support import fetch, poll  # noqa: E402

DATA = ("GET", "/api/data")
REGISTER = ("POST", "/api/servers [register]")
SETTLE_SECONDS = 5.0


def get_json(url):
    status, _, body = fetch(url)
    if status != 200:
        raise AssertionError(f"GET {url}: HTTP {status}: {body[:300]!r}")
    return json.loads(body)


def backends_arg(spec):
    """``name=url,name=url`` (the locustfile's BACKENDS) into {name: url}."""
    backends = {}
    for entry in spec.split(","):
        name, sep, url = entry.partition("=")
        if not sep or not name or not url:
            raise argparse.ArgumentTypeError(f"expected name=url, got {entry!r}")
        backends[name] = url.rstrip("/")
    return backends


def check_locust(entries, status, users, n_backends, failures_csv):
    """Problems with the Locust run itself, and its GET /api/data count."""
    problems = []
    rows = {(e["method"], e["name"]): e for e in entries}
    failures = sum(e["num_failures"] for e in entries)
    if failures:
        problems.append(f"Locust reported {failures} failed requests (details from its CSV, which may lag the count):")
        try:
            with open(failures_csv, newline="") as f:
                for row in csv.DictReader(f):
                    problems.append(f"  {row['Occurrences']}x {row['Method']} {row['Name']}: {row['Error']}")
        except OSError:
            pass
    if status != 0:
        problems.append(f"Locust exited with status {status} (failures or an exception in the locustfile; see locust.log)")
    unexpected = sorted(set(rows) - {DATA, REGISTER})
    if unexpected:
        problems.append(f"Locust sent requests the locustfile should not: {unexpected}")
    registrations = rows.get(REGISTER, {}).get("num_requests", 0)
    if registrations != n_backends:
        problems.append(f"expected {n_backends} registrations (once per run, not per user), Locust made {registrations}")
    sent = rows.get(DATA, {}).get("num_requests", 0)
    if sent < users:
        problems.append(f"only {sent} GET /api/data requests for {users} users: the load did not run")
    return sent, registrations, problems


def check_stats(gateway, backends, sent):
    """Problems comparing the services' 1m stats with Locust's count."""
    problems = []
    windows = {"gateway": gateway} | {f"backend {name}": stats for name, stats in backends.items()}
    for who, stats in windows.items():
        if stats["covered_seconds"] >= stats["window_seconds"]:
            problems.append(f"{who}: the run outlasted the {stats['window']} window (covered_seconds={stats['covered_seconds']}); counts may have aged out")
    if gateway["requests"] != sent:
        problems.append(f"gateway /api/stats/1m requests={gateway['requests']}, Locust sent {sent} GET /api/data")
    if gateway["errors"] != 0 or gateway["status"]["2xx"] != gateway["requests"]:
        problems.append(f"gateway counted errors={gateway['errors']}, status={gateway['status']}")
    servers = gateway.get("servers", {})
    for name in backends:
        through_gateway = servers.get(name, {}).get("requests", 0)
        if through_gateway == 0:
            problems.append(f"gateway sent no traffic to {name} (servers: {sorted(servers)})")
        if backends[name]["requests"] != through_gateway:
            problems.append(f"{name}: gateway counted {through_gateway} requests to it, the backend itself {backends[name]['requests']}")
    per_server = sum(s["requests"] for s in servers.values())
    if per_server != sent:
        problems.append(f"gateway per-server requests sum to {per_server}, not {sent}")
    at_backends = sum(s["requests"] for s in backends.values())
    if at_backends != sent:
        problems.append(f"backends' own /api/stats/1m requests sum to {at_backends}, not {sent}")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--locust-prefix", required=True, help="the --json-file/--csv prefix of the Locust run")
    parser.add_argument("--locust-status", type=int, required=True, help="Locust's exit status")
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--gateway", required=True, help="gateway base URL")
    parser.add_argument("--backends", type=backends_arg, required=True, help="name=url,name=url")
    args = parser.parse_args()

    try:
        with open(f"{args.locust_prefix}.json") as f:
            entries = json.load(f)
    except (OSError, ValueError) as err:
        print(f"FAIL: cannot read Locust's results: {err}", file=sys.stderr)
        return 1
    sent, registrations, problems = check_locust(
        entries, args.locust_status, args.users, len(args.backends), f"{args.locust_prefix}_failures.csv"
    )

    def agree():
        nonlocal gateway, backends, stats_problems
        gateway = get_json(f"{args.gateway.rstrip('/')}/api/stats/1m")
        backends = {name: get_json(f"{url}/api/stats/1m") for name, url in args.backends.items()}
        stats_problems = check_stats(gateway, backends, sent)
        return not stats_problems

    gateway, backends, stats_problems = None, None, None
    poll(agree, SETTLE_SECONDS, interval=0.25)
    problems += stats_problems

    latency = gateway["latency_ms"]
    print(f"Locust:  {sent} GET /api/data, {registrations} registrations, "
          f"{sum(e['num_failures'] for e in entries)} failures, exit status {args.locust_status}")
    print(f"gateway: {gateway['requests']} requests in /api/stats/1m, {gateway['errors']} errors, "
          f"latency p50 {latency['p50']} ms, p99 {latency['p99']} ms, max {latency['max']} ms")
    for name, stats in backends.items():
        via = gateway.get("servers", {}).get(name, {}).get("requests", 0)
        print(f"  {name}: {via} via the gateway, {stats['requests']} at the backend")
    if problems:
        sys.stdout.flush()  # keep the summary above the problems when both are piped
        print("FAIL:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print("PASS: Locust, gateway and backends agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
