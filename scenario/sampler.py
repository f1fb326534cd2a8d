"""The gateway's view and each backend's own, sampled: GET /metrics once per
second, parse the request counters, keep the running totals with the time
they were read. Depends on scenario.http.

Counted: `http_server_request_duration_seconds_count` of proxied requests
(route `/*`: everything that is not one of the gateway's own routes, so the
sampling itself, /metrics and /api/stats, is never in it), by status; and
`http_client_request_duration_seconds_count` by upstream, one per attempt
(retries included). Errors are what /api/stats counts as errors: 5xx answers
and requests without one (499: the client left); for an attempt, a 5xx or no
answer at all (error_type set). On a backend: its
`http_server_request_duration_seconds_count` on every route but its own API
(the fault API, /metrics, /api/stats, the health probes), so what it served
to the gateway, health checks left out.
"""

import re
import time

from . import http

SERVER = "http_server_request_duration_seconds_count"
CLIENT = "http_client_request_duration_seconds_count"
PROXIED_ROUTE = "/*"
BACKEND_OWN_ROUTES = {"/api/faults", "/metrics", "/api/stats/{window}", "/healthz", "/readyz"}
_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text, names=None):
    """Totals from a /metrics text: {"requests", "errors", "backends":
    {name: {"requests", "errors"}}}; `names` maps upstream labels to the
    scenario's backend names (others keep their label)."""
    totals = {"requests": 0, "errors": 0, "backends": {}}
    for line in text.splitlines():
        if not line.startswith(("http_server_request_duration_seconds_count",
                                "http_client_request_duration_seconds_count")):
            continue
        m = _LINE.match(line)
        if not m:
            continue
        metric, labels, value = m.group(1), dict(_LABEL.findall(m.group(2) or "")), m.group(3)
        try:
            count = int(float(value))
        except ValueError:
            continue
        status = labels.get("http_response_status_code", "")
        if metric == SERVER and labels.get("http_route") == PROXIED_ROUTE:
            totals["requests"] += count
            if status.startswith("5") or status == "499":
                totals["errors"] += count
        elif metric == CLIENT and "upstream" in labels:
            name = (names or {}).get(labels["upstream"], labels["upstream"])
            b = totals["backends"].setdefault(name, {"requests": 0, "errors": 0})
            b["requests"] += count
            if labels.get("error_type") or status.startswith("5"):
                b["errors"] += count
    return totals


def parse_backend(text):
    """A backend's totals from its /metrics text: {"requests", "errors"}."""
    totals = {"requests": 0, "errors": 0}
    for line in text.splitlines():
        if not line.startswith(SERVER):
            continue
        m = _LINE.match(line)
        if not m or m.group(1) != SERVER:
            continue
        labels = dict(_LABEL.findall(m.group(2) or ""))
        if labels.get("http_route") in BACKEND_OWN_ROUTES:
            continue
        try:
            count = int(float(m.group(3)))
        except ValueError:
            continue
        totals["requests"] += count
        if labels.get("http_response_status_code", "").startswith("5"):
            totals["errors"] += count
    return totals


class BackendSampler:
    """A backend's own counts, sampled. A backend started again (a `restart`)
    counts from zero: what its earlier process served is kept, so the totals
    only grow. A backend that does not answer (killed, refusing) is skipped."""

    def __init__(self, url):
        self.conn = http.KeptAlive(url.rstrip("/") + "/metrics", timeout=0.5)
        self.samples = []  # [(t, {"requests", "errors"})], running totals
        self.before = {"requests": 0, "errors": 0}  # what earlier processes served
        self.last = None  # the current process's latest reading

    def sample(self, t):
        try:
            status, body = self.conn.get()
            if status != 200:
                return None
            now = parse_backend(body.decode("utf-8", "replace"))
        except OSError:
            return None
        if self.last is not None and now["requests"] < self.last["requests"]:
            self.before = {k: self.before[k] + self.last[k] for k in self.before}
        self.last = now
        totals = {k: self.before[k] + now[k] for k in now}
        self.samples.append((t, totals))
        return totals


class Sampler:
    """Samples of the gateway's totals, each with its time since the load
    started (`t`, seconds; negative for the baseline taken before it)."""

    def __init__(self, gateway_url, names=None):
        self.url = gateway_url.rstrip("/") + "/metrics"
        self.conn = http.KeptAlive(self.url, timeout=2.0)
        self.names = names or {}
        self.samples = []  # [(t, totals)]
        self.failures = 0
        self.last_error = None

    def sample(self, t):
        """Reads /metrics now; a failed read is counted and skipped (the next
        sample's delta then covers both seconds)."""
        try:
            status, body = self.conn.get()
            if status != 200:
                raise OSError(f"HTTP {status}")
            totals = parse(body.decode("utf-8", "replace"), self.names)
        except OSError as e:
            self.failures += 1
            self.last_error = f"GET {self.url}: {e}"
            return None
        self.samples.append((t, totals))
        return totals

    def baseline(self, retries=20):
        """The totals before the load (a fresh local gateway: all zero)."""
        for _ in range(retries):
            if self.sample(0.0) is not None:
                return True
            time.sleep(0.1)
        return False
