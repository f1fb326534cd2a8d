"""The gateway dashboard's latency percentiles against the gateway's own
/api/stats, for proxied requests that take well under a millisecond: a
release backend behind a release gateway on loopback, a real Prometheus
scraping the gateway every second, and eight clients sending requests on
keep-alive connections, so that requests queue a little as under real load
(0.1 to a few ms at the gateway; alone, one takes some 30 µs).

histogram_quantile can only interpolate inside the bucket a quantile falls
in, so the dashboards are as precise as the buckets are narrow: with 5 ms
as the first bucket, a 0.4 ms median showed as 2.5 ms. Each percentile the
dashboard shows must be within the width of the bucket the /api/stats value
falls in, and that bucket at most 1.5 times as wide as the value (or as
100 µs, for smaller values), so sub-millisecond latencies get buckets of
their own size.

Shares the process handling of test_live; its own processes are stopped
when the module ends, pass or fail."""

import http.client
import json
import math
import shutil
import threading
import time
import unittest
import urllib.request

import grafana
from test_live import DASHBOARDS, HOST, Stack, http_get, parse_ts, support, wait_until

CLIENTS = 8
REQUESTS_PER_CLIENT = 300
TRAFFIC_SECONDS = 20  # at most; a few seconds on a quiet machine
FLOOR_MS = 0.1  # below this, a bucket as wide as 100 µs is precise enough

STACK = None


def setUpModule():
    global STACK
    support.require_binaries()
    if not shutil.which("prometheus"):
        raise AssertionError("prometheus not found: run `make deps` (Debian package prometheus)")

    stack = STACK = Stack()
    unittest.addModuleCleanup(stack.stop)

    backend_port, gateway_port, prom_port = support.free_ports(3)
    quiet = {"BACKEND__LOG__LEVEL": "warn", "GATEWAY__LOG__LEVEL": "warn", "GATEWAY__LOG__ACCESS_LOG": "false"}
    stack.backend("backend", backend_port, quiet, ready="/healthz", timeout=15, merge_output=True)
    stack.target = f"{HOST}:{gateway_port}"  # the gateway, as Prometheus and the clients address it
    stack.gateway("gateway", gateway_port, env={"GATEWAY__SERVERS": f"server1=http://{HOST}:{backend_port}", **quiet},
                  ready="/healthz", timeout=15, merge_output=True)

    config = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
              "scrape_configs": [{"job_name": "gateway", "static_configs": [{"targets": [stack.target]}]}]}
    stack.prometheus(config, prom_port)

    def scraped_after(t):
        def check():
            targets = stack.prom.targets()
            return targets and all(x["health"] == "up" and parse_ts(x["lastScrape"]) > t + 0.2 for x in targets)
        return check

    # One request creates the series, and a scrape records them before the
    # traffic, so rate() over the window sees all of it.
    send(1, time.monotonic() + 10)
    wait_until(scraped_after(time.time()), 15, "a scrape before the traffic", interval=0.1)
    deadline = time.monotonic() + TRAFFIC_SECONDS
    sent, failures = [], []

    def client():
        try:
            sent.append(send(REQUESTS_PER_CLIENT, deadline))
        except (OSError, http.client.HTTPException, AssertionError) as e:
            failures.append(repr(e))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=TRAFFIC_SECONDS + 15)
    if failures or sum(sent) < CLIENTS * REQUESTS_PER_CLIENT / 4:
        raise AssertionError(f"{sum(sent)} requests in {TRAFFIC_SECONDS}s; failures: {failures[:3]}")
    wait_until(scraped_after(time.time()), 15, "a scrape after the traffic", interval=0.1)


def send(n, deadline):
    """Up to n GET /api/data through the gateway on one connection, until
    `deadline`; returns how many were sent."""
    conn = http.client.HTTPConnection(STACK.target, timeout=10)
    try:
        for i in range(n):
            if time.monotonic() >= deadline:
                return i
            conn.request("GET", "/api/data")
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise AssertionError(f"GET /api/data through the gateway: {response.status}")
        return n
    finally:
        conn.close()


def bucket_bounds():
    """The finite bucket bounds of the gateway's request-duration histogram,
    in ms, as /metrics exposes them."""
    _, body = http_get(f"http://{STACK.target}/metrics")
    bounds = set()
    for line in body.decode().splitlines():
        if line.startswith("http_server_request_duration_seconds_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            if le != "+Inf":
                bounds.add(float(le) * 1000)
    if not bounds:
        raise AssertionError("no http_server_request_duration_seconds buckets in the gateway's /metrics")
    return sorted(bounds)


def bucket_of(value, bounds):
    """(lower, upper] of the bucket `value` falls in."""
    lower = 0.0
    for upper in bounds:
        if value <= upper:
            return lower, upper
        lower = upper
    return lower, math.inf


class DashboardLatencyMatchesStats(unittest.TestCase):
    def dashboard_query(self, title, ref, **labels):
        """The value (ms) of a gateway dashboard panel query as Grafana
        would run it now; with labels, of the series carrying them."""
        d = grafana.load(DASHBOARDS / "gateway.json")
        values, _ = grafana.resolve_variables(d, STACK.prom)
        [expr] = [e for t, r, e in grafana.targets(d) if (t, r) == (title, ref)]
        result = STACK.prom.query(grafana.substitute(expr, values))["result"]
        found = [float(s["value"][1]) for s in result if labels.items() <= s["metric"].items()]
        self.assertEqual(len(found), 1, f"{title} {ref} {labels}: {result}")
        return found[0] * 1000

    def check(self, what, shown, stats, bounds):
        lower, upper = bucket_of(stats, bounds)
        width = upper - lower
        context = (f"{what}: dashboard {shown:.3f} ms, /api/stats {stats:.3f} ms, "
                   f"bucket ({lower:g}, {upper:g}] ms")
        self.assertLessEqual(width, 1.5 * max(stats, FLOOR_MS), f"bucket too wide for the value: {context}")
        self.assertLessEqual(abs(shown - stats), width, context)

    def test_end_to_end_and_upstream_percentiles(self):
        with urllib.request.urlopen(f"http://{STACK.target}/api/stats/1m", timeout=5) as r:
            stats = json.load(r)
        bounds = bucket_bounds()
        # What the test is about: latencies the old first bucket (5 ms) swallowed.
        self.assertLess(stats["latency_ms"]["p50"], 5, stats)
        panels = {
            ("end to end", 0.5): ("Latency percentiles (gateway, end to end)", "A", {}, stats),
            ("end to end", 0.99): ("Latency percentiles (gateway, end to end)", "C", {}, stats),
            ("server1", 0.5): ("Upstream p50 latency per backend", "A", {"upstream": "server1"},
                               stats["servers"]["server1"]),
            ("server1", 0.99): ("Upstream p99 latency per backend", "A", {"upstream": "server1"},
                                stats["servers"]["server1"]),
        }
        for (what, q), (title, ref, labels, summary) in panels.items():
            with self.subTest(what=what, quantile=q):
                shown = self.dashboard_query(title, ref, **labels)
                self.check(f"{what} p{int(q * 100)}", shown, summary["latency_ms"][f"p{int(q * 100)}"], bounds)


if __name__ == "__main__":
    unittest.main()
