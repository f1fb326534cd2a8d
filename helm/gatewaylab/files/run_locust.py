"""Runs Locust in a Kubernetes Job and makes its reports retrievable.

    python run_locust.py [--wait-http URL]... [--wait-tcp HOST:PORT]...
                         [--wait-timeout SECONDS] [--report-dir DIR]
                         [--print-html] [--keep-alive SECONDS] -- LOCUST ARGS...

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

Standard library only: it runs on the official locustio/locust image as is.
"""

import argparse
import base64
import gzip
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


def print_html_reports(report_dir):
    names = sorted(n for n in os.listdir(report_dir) if n.endswith(".html"))
    if not names:
        log(f"no HTML report in {report_dir}")
    for name in names:
        with open(os.path.join(report_dir, name), "rb") as f:
            packed = base64.b64encode(gzip.compress(f.read())).decode("ascii")
        print(BEGIN)
        for i in range(0, len(packed), 76):
            print(packed[i : i + 76])
        print(END, flush=True)
        log(f"printed {name} ({len(packed)} base64 characters)")


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--wait-http", action="append", default=[], metavar="URL")
    parser.add_argument("--wait-tcp", action="append", default=[], metavar="HOST:PORT")
    parser.add_argument("--wait-timeout", type=float, default=300)
    parser.add_argument("--report-dir")
    parser.add_argument("--print-html", action="store_true")
    parser.add_argument("--keep-alive", type=float, default=0)
    parser.add_argument("locust_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    locust_args = args.locust_args[1:] if args.locust_args[:1] == ["--"] else args.locust_args

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

    log("locust " + " ".join(locust_args))
    child = subprocess.Popen(["locust", *locust_args])
    rc = child.wait()
    log(f"locust exited with code {rc}")

    if args.report_dir and os.path.isdir(args.report_dir):
        log(f"reports in {args.report_dir}: {', '.join(sorted(os.listdir(args.report_dir))) or 'none'}")
        if args.print_html:
            print_html_reports(args.report_dir)
    if args.keep_alive > 0 and not stopping:
        log(
            f"keeping the pod for {args.keep_alive:g}s: "
            f"kubectl cp {os.environ.get('POD_NAMESPACE', '<namespace>')}/"
            f"{os.environ.get('HOSTNAME', '<pod>')}:{args.report_dir or '/reports'} ./locust-reports"
        )
        deadline = time.monotonic() + args.keep_alive
        while not stopping and time.monotonic() < deadline:
            time.sleep(1)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
