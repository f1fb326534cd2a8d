"""Runs Locust (or a scenario) in a Kubernetes Job and makes its reports retrievable.

    python run_locust.py [--wait-http URL]... [--wait-tcp HOST:PORT]...
                         [--wait-timeout SECONDS] [--report-dir DIR]
                         [--print-html] [--keep-alive SECONDS] -- LOCUST ARGS...
    python run_locust.py ... --scenario -- run FILE --target kubernetes ...

1. Waits until every --wait-http URL answers 2xx and every --wait-tcp address
   accepts connections (the gateway and backends, or the Locust master), so a
   Job that starts before them does not fail on connection errors.
2. Runs `locust LOCUST ARGS...`, passing SIGTERM/SIGINT on to it.
3. With --print-html, prints the HTML report from --report-dir, gzipped and
   base64-encoded between BEGIN/END marker lines, so that it can be taken
   from `kubectl logs` after the pod has finished (see the chart's NOTES).
4. With --keep-alive N, keeps running N more seconds so that
   `kubectl cp <pod>:<report dir> ...` can copy the reports.
5. Exits with Locust's exit code (with --exit-code-on-error, non-zero when
   any request failed), so a failed load test fails the Job.

With --scenario it runs `python -m scenario ARGS...` (the project's scenario
runner, found through PYTHONPATH) instead of `locust ARGS...` (a SIGTERM passed
on makes it stop the load and still write its summary and report);
--print-html prints report.html and summary.json between their own marker
lines; the exit code is the runner's (0 every gate passed, 1 a gate failed,
2 invalid scenario, 3 the run could not be done, 4 aborted by an
abort_on_fail gate, 143 stopped by SIGTERM).

Standard library only: it runs on the official locustio/locust image as is.
"""

import argparse
import base64
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

BEGIN = "-----BEGIN LOCUST HTML REPORT (gzip+base64)-----"
END = "-----END LOCUST HTML REPORT-----"
# A scenario's files, each between "-----BEGIN SCENARIO <file> (gzip+base64)-----"
# and "-----END SCENARIO <file>-----".
SCENARIO_FILES = ("report.html", "summary.json")
SCENARIO_EXIT_CODES = {
    0: "every gate passed",
    1: "a gate failed",
    2: "the scenario or the command line is invalid",
    3: "the run could not be done",
    4: "aborted: an abort_on_fail gate could no longer pass",
    130: "interrupted (SIGINT)",
    143: "stopped (SIGTERM: the Job's deadline, or the Job deleted)",
}


def log(message):
    print(f"run_locust: {message}", flush=True)


def http_ready(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return 200 <= response.status < 300, f"HTTP {response.status}"
    except urllib.error.HTTPError as err:
        return False, f"HTTP {err.code}"
    except (OSError, ValueError) as err:
        return False, str(err)


def tcp_ready(address):
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True, "accepting"
    except (OSError, ValueError) as err:
        return False, str(err)


def wait_for(http_urls, tcp_addresses, timeout):
    checks = [(url, http_ready) for url in http_urls] + [(addr, tcp_ready) for addr in tcp_addresses]
    deadline = time.monotonic() + timeout
    for target, check in checks:
        last_reported = 0.0
        while True:
            ok, detail = check(target)
            if ok:
                log(f"{target} is ready")
                break
            now = time.monotonic()
            if now >= deadline:
                log(f"gave up after {timeout:g}s waiting for {target}: {detail}")
                return False
            if now - last_reported >= 10:
                log(f"waiting for {target}: {detail}")
                last_reported = now
            time.sleep(1)
    return True


def print_packed(path, begin, end):
    with open(path, "rb") as f:
        packed = base64.b64encode(gzip.compress(f.read())).decode("ascii")
    print(begin)
    for i in range(0, len(packed), 76):
        print(packed[i : i + 76])
    print(end, flush=True)
    log(f"printed {os.path.basename(path)} ({len(packed)} base64 characters)")


def print_html_reports(report_dir):
    names = sorted(n for n in os.listdir(report_dir) if n.endswith(".html"))
    if not names:
        log(f"no HTML report in {report_dir}")
    for name in names:
        print_packed(os.path.join(report_dir, name), BEGIN, END)


def print_scenario_reports(report_dir):
    for name in SCENARIO_FILES:
        path = os.path.join(report_dir, name)
        if os.path.isfile(path):
            print_packed(path, f"-----BEGIN SCENARIO {name} (gzip+base64)-----", f"-----END SCENARIO {name}-----")
        else:
            log(f"no {name} in {report_dir}")


def log_verdict(report_dir, rc):
    """The runner's exit code in words, and the verdict its summary.json records."""
    log(f"scenario exit code {rc}: {SCENARIO_EXIT_CODES.get(rc, 'unexpected')}")
    try:
        with open(os.path.join(report_dir or "", "summary.json"), encoding="utf-8") as f:
            summary = json.load(f)
    except (OSError, ValueError) as err:
        log(f"no readable summary.json: {err}")
        return
    for run in summary.get("runs") or []:
        gates = run.get("gates") or []
        failed = [g.get("name") for g in gates if not g.get("pass")]
        log(f"variant {run.get('variant')}: {run.get('verdict')}, {len(gates) - len(failed)} of {len(gates)} gates passed"
            + (f"; failed: {'; '.join(map(str, failed))}" if failed else ""))
    log(f"verdict: {summary.get('verdict')}")


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--wait-http", action="append", default=[], metavar="URL")
    parser.add_argument("--wait-tcp", action="append", default=[], metavar="HOST:PORT")
    parser.add_argument("--wait-timeout", type=float, default=300)
    parser.add_argument("--report-dir")
    parser.add_argument("--print-html", action="store_true")
    parser.add_argument("--keep-alive", type=float, default=0)
    parser.add_argument("--scenario", action="store_true",
                        help="run `python -m scenario ARGS` (the scenario runner) instead of `locust ARGS`")
    parser.add_argument("locust_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    locust_args = args.locust_args[1:] if args.locust_args[:1] == ["--"] else args.locust_args
    command = [sys.executable, "-m", "scenario"] if args.scenario else ["locust"]
    what = "scenario" if args.scenario else "locust"

    stopping = []
    child = None

    def on_signal(signum, _frame):
        stopping.append(signum)
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    if not wait_for(args.wait_http, args.wait_tcp, args.wait_timeout):
        return 3
    if stopping:
        return 128 + stopping[0]

    log(" ".join(command + locust_args))
    child = subprocess.Popen([*command, *locust_args])
    rc = child.wait()
    log(f"{what} exited with code {rc}")

    if args.report_dir and os.path.isdir(args.report_dir):
        log(f"reports in {args.report_dir}: {', '.join(sorted(os.listdir(args.report_dir))) or 'none'}")
        if args.print_html:
            (print_scenario_reports if args.scenario else print_html_reports)(args.report_dir)
    if args.scenario:
        log_verdict(args.report_dir, rc)
    if args.keep_alive > 0 and not stopping:
        log(
            f"keeping the pod for {args.keep_alive:g}s: "
            f"kubectl cp {os.environ.get('POD_NAMESPACE', '<namespace>')}/"
            f"{os.environ.get('HOSTNAME', '<pod>')}:{args.report_dir or '/reports'} ./{what}-reports"
        )
        deadline = time.monotonic() + args.keep_alive
        while not stopping and time.monotonic() < deadline:
            time.sleep(1)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
