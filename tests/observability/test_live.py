"""The dashboards and alert rules against the real thing: three release
backends and the release gateway on free loopback ports, a real Prometheus
(Debian's package) scraping all four every second and evaluating
deploy/prometheus/alerts.yml, a short bounded load through the gateway with
errors (?status=500, a backend with fault injection, a registered backend
that does not listen) and slow requests (?delay_ms=). Then:

- every query of every panel of both dashboards, template variables resolved
  through Prometheus as Grafana would, returns at least one finite value, and
  every selector inside it matches at least one series;
- every rule in alerts.yml evaluates without error in that Prometheus and
  every selector it reads matches a series;
- `promtool check metrics` reports nothing on the gateway's and the backends'
  /metrics.

Every process started here is stopped when the module ends, pass or fail
(module cleanup, atexit and a SIGTERM handler)."""

import atexit
import http.client
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path

import yaml

import grafana
import promql

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "target" / "release"
DASHBOARDS = ROOT / "deploy" / "grafana"
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
HOST = "127.0.0.1"

LOAD_SECONDS = float(os.environ.get("OBS_LOAD_SECONDS", "8"))
LOAD_WORKERS = 6
MAX_REQUESTS_PER_WORKER = 1500

STACK = None


class Prometheus:
    """The few HTTP API calls the tests make."""

    def __init__(self, base):
        self.base = base

    def _get(self, path, params):
        url = f"{self.base}{path}?{urllib.parse.urlencode(params, doseq=True)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                body = json.load(r)
        except urllib.error.HTTPError as e:
            with e:
                body = json.loads(e.read() or b"{}")
            raise AssertionError(f"GET {path} {params}: HTTP {e.code}: {body.get('error', body)}") from None
        if body.get("status") != "success":
            raise AssertionError(f"GET {path} {params}: {body}")
        return body["data"]

    def query(self, expr):
        return self._get("/api/v1/query", {"query": expr})

    def series(self, match):
        return self._get("/api/v1/series", {"match[]": match, "start": time.time() - 3600})

    def label_values(self, label):
        return self._get(f"/api/v1/label/{label}/values", {})

    def targets(self):
        return self._get("/api/v1/targets", {"state": "active"})["activeTargets"]

    def rules(self):
        return self._get("/api/v1/rules", {})["groups"]


def free_ports(n):
    """n distinct free loopback ports from 20000-29999 (below the ephemeral
    range, so this test's own outgoing connections cannot take them)."""
    ports = []
    for _ in range(500):
        p = random.randint(20000, 29999)
        if p in ports:
            continue
        with socket.socket() as s:
            try:
                s.bind((HOST, p))
            except OSError:
                continue
        ports.append(p)
        if len(ports) == n:
            return ports
    raise AssertionError(f"could not find {n} free ports in 20000-29999")


def http_get(url, timeout=2):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:  # e.g. 503 from /-/ready while starting
        with e:
            return e.code, e.read()


def wait_until(what, check, timeout, proc=None, log=None):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            break
        try:
            if check():
                return
        except Exception as e:  # not up yet
            last = e
        time.sleep(0.1)
    tail = ""
    if log is not None and Path(log).exists():
        tail = "\n--- " + str(log) + " (tail) ---\n" + "\n".join(Path(log).read_text(errors="replace").splitlines()[-30:])
    exited = f" (exited with {proc.returncode})" if proc is not None and proc.poll() is not None else ""
    raise AssertionError(f"{what} not ready after {timeout}s{exited}: {last}{tail}")


class Stack:
    def __init__(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="gatewaylab-obs."))
        self.procs = []
        self.stopped = False

    def start(self, name, argv, env):
        log = self.tmp / f"{name}.log"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKEND__", "GATEWAY__", "OTEL_"))}
        full_env.update(env)
        with open(log, "wb") as out:
            proc = subprocess.Popen(argv, env=full_env, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=self.tmp)
        self.procs.append((name, proc))
        return proc, log

    def stop(self):
        if self.stopped:
            return
        self.stopped = True
        for _, p in self.procs:
            if p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + 10
        for _, p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def setUpModule():
    global STACK
    for exe in ("backend", "gateway"):
        if not (BIN / exe).exists():
            raise AssertionError(f"{BIN / exe} missing: run `make release`")
    for tool in ("prometheus", "promtool"):
        if not shutil.which(tool):
            raise AssertionError(f"{tool} not found: run `make deps` (Debian package prometheus)")

    stack = STACK = Stack()
    unittest.addModuleCleanup(stack.stop)
    atexit.register(stack.stop)
    signal.signal(signal.SIGTERM, _on_sigterm)

    b_ports = free_ports(6)
    gw_port, prom_port, dead_port = b_ports[3:]
    b_ports = b_ports[:3]
    stack.backends = [f"{HOST}:{p}" for p in b_ports]
    stack.gateway = f"{HOST}:{gw_port}"
    stack.dead = f"{HOST}:{dead_port}"  # registered with the gateway, nothing listens

    quiet = {"BACKEND__LOG__LEVEL": "warn", "GATEWAY__LOG__LEVEL": "warn", "GATEWAY__LOG__ACCESS_LOG": "false"}
    for i, port in enumerate(b_ports):
        env = {"PORT": str(port), "BACKEND__LISTEN__HOST": HOST, "BACKEND__NAME": f"backend{i + 1}", **quiet}
        if i == 2:
            env["BACKEND__FAULTS__ERROR_RATE"] = "0.3"
        proc, log = stack.start(f"backend{i + 1}", [str(BIN / "backend")], env)
        wait_until(f"backend{i + 1}", lambda p=port: http_get(f"http://{HOST}:{p}/healthz")[0] == 200, 15, proc, log)
    servers = ",".join(f"server{i + 1}=http://{b}" for i, b in enumerate(stack.backends))
    proc, log = stack.start("gateway", [str(BIN / "gateway")],
                            {"PORT": str(gw_port), "GATEWAY__LISTEN__HOST": HOST, "GATEWAY__SERVERS": servers,
                             "GATEWAY__UPSTREAM__CONNECT_TIMEOUT": "500ms", **quiet})
    wait_until("gateway", lambda: http_get(f"http://{stack.gateway}/healthz")[0] == 200, 15, proc, log)

    # The example config, pointed at this stack, scraping every second.
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"].update({"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"})
    config["rule_files"] = [str(PROMETHEUS_DIR / f) for f in config["rule_files"]]
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert set(jobs) == {"gateway", "backend"}, f"example prometheus.yml jobs changed: {sorted(jobs)}"
    jobs["gateway"]["static_configs"] = [{"targets": [stack.gateway]}]
    jobs["backend"]["static_configs"] = [{"targets": stack.backends}]
    (stack.tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    proc, log = stack.start("prometheus", [
        "prometheus", f"--config.file={stack.tmp / 'prometheus.yml'}", f"--storage.tsdb.path={stack.tmp / 'tsdb'}",
        f"--web.listen-address={HOST}:{prom_port}", "--log.level=warn"], {})
    stack.prom = Prometheus(f"http://{HOST}:{prom_port}")
    wait_until("prometheus", lambda: http_get(f"{stack.prom.base}/-/ready")[0] == 200, 30, proc, log)
    wait_until("first scrapes", lambda: all(t["health"] == "up" for t in stack.prom.targets())
               and len(stack.prom.targets()) == 4, 15)

    stack.load = drive_load(stack)
    load_end = time.time()

    # Until every target has been scraped, and the rules evaluated, after the load.
    def scraped_after_load():
        ts = stack.prom.targets()
        return len(ts) == 4 and all(t["health"] == "up" and parse_ts(t["lastScrape"]) > load_end + 0.2 for t in ts)

    def evaluated_after_load():
        groups = stack.prom.rules()
        return groups and all(parse_ts(g["lastEvaluation"]) > load_end + 0.2 for g in groups)

    wait_until("scrapes after the load", scraped_after_load, 15)
    wait_until("rule evaluation after the load", evaluated_after_load, 15)


def parse_ts(text):
    """A Prometheus API time (RFC 3339 with up to nanoseconds, e.g.
    2026-01-02T03:04:05.123456789Z) as a Unix time."""
    m = re.fullmatch(r"(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    if not m:
        raise AssertionError(f"unexpected time format from Prometheus: {text!r}")
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    base = datetime.fromisoformat(m.group(1) + tz).timestamp()
    return base + (float("0." + m.group(2)) if m.group(2) else 0.0)


def drive_load(stack):
    """A bounded load through the gateway, LOAD_SECONDS long: mostly plain
    requests, some ?status=500, some slow (?delay_ms=), a few unknown paths;
    backend3 fails 30% on its own, and for a while a registered backend that
    does not listen draws a share of the traffic. Returns the status codes seen."""
    counts = {}
    lock = threading.Lock()
    deadline = time.monotonic() + LOAD_SECONDS

    def worker(seed):
        rnd = random.Random(seed)
        conn = None
        for i in range(MAX_REQUESTS_PER_WORKER):
            if time.monotonic() >= deadline:
                break
            r = rnd.random()
            if r < 0.10:
                path = "/api/data?status=500"
            elif r < 0.18:
                path = f"/api/data?delay_ms={rnd.randint(150, 400)}"
            elif r < 0.20:
                path = "/api/data?delay_ms=1200"
            elif r < 0.22:
                path = "/no/such/path"
            else:
                path = "/api/data"
            try:
                conn = conn or http.client.HTTPConnection(stack.gateway, timeout=10)
                conn.request("GET", path, headers={"x-request-id": f"obs-{seed}-{i}"})
                resp = conn.getresponse()
                resp.read()
                status = resp.status
                if resp.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                status = "no_response"
                if conn is not None:
                    conn.close()
                conn = None
            with lock:
                counts[status] = counts.get(status, 0) + 1
            time.sleep(0.005)
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(LOAD_WORKERS)]
    for t in threads:
        t.start()
    admin = f"http://{stack.gateway}/api/servers"
    time.sleep(LOAD_SECONDS * 0.25)
    req = urllib.request.Request(admin, method="POST", headers={"content-type": "application/json"},
                                 data=json.dumps({"name": "server4", "url": f"http://{stack.dead}"}).encode())
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.status == 201, r.status
    time.sleep(LOAD_SECONDS * 0.35)
    with urllib.request.urlopen(urllib.request.Request(f"{admin}/server4", method="DELETE"), timeout=5) as r:
        assert r.status in (200, 204), r.status
    for t in threads:
        t.join(timeout=LOAD_SECONDS + 30)
    return counts


class Load(unittest.TestCase):
    def test_load_had_successes_errors_and_failed_upstreams(self):
        c = STACK.load
        self.assertGreater(c.get(200, 0), 100, c)
        self.assertGreater(c.get(500, 0), 10, c)
        self.assertGreater(c.get(502, 0), 0, f"no 502 from the unreachable backend: {c}")
        self.assertEqual(c.get("no_response", 0), 0, c)


def assert_finite_result(testcase, data, context):
    kind, result = data["resultType"], data["result"]
    if kind == "scalar" or kind == "string":
        values = [result[1]]
    elif kind == "vector":
        values = [s["value"][1] for s in result]
    else:  # matrix
        values = [v[1] for s in result for v in s["values"]]
    testcase.assertTrue(values, f"no series: {context}")
    finite = [v for v in values if math.isfinite(float(v))]
    testcase.assertTrue(finite, f"only NaN/Inf ({values[:5]}): {context}")


class DashboardQueries(unittest.TestCase):
    def check_dashboard(self, name):
        d = grafana.load(DASHBOARDS / name)
        values, resolved = grafana.resolve_variables(d, STACK.prom)
        checked = 0
        for title, ref, expr in grafana.targets(d):
            query = grafana.substitute(expr, values)
            context = f"{name} panel {title!r} query {ref}: {expr}\n  evaluated as: {query}"
            with self.subTest(panel=title, ref=ref):
                self.assertEqual(grafana.unresolved(query), [], context)
                assert_finite_result(self, STACK.prom.query(query), context)
                for sel in promql.selectors(query):
                    data = STACK.prom.query(f"count({sel})")
                    self.assertTrue(data["result"], f"selector {sel} matches no series in {context}")
            checked += 1
        self.assertGreater(checked, 10)
        return resolved

    def test_gateway_dashboard(self):
        resolved = self.check_dashboard("gateway.json")
        self.assertEqual(resolved["instance"], [STACK.gateway])

    def test_backend_dashboard(self):
        resolved = self.check_dashboard("backend.json")
        self.assertEqual(resolved["instance"], sorted(STACK.backends), "backend instances (gateway excluded)")


class AlertRulesLive(unittest.TestCase):
    def test_rules_load_and_evaluate_without_error(self):
        groups = STACK.prom.rules()
        loaded = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
        want = sorted(r.get("alert") or r.get("record") for g in loaded["groups"] for r in g["rules"])
        got = sorted(r["name"] for g in groups for r in g["rules"])
        self.assertEqual(got, want)
        for g in groups:
            for r in g["rules"]:
                with self.subTest(rule=r["name"]):
                    self.assertEqual(r["health"], "ok", f"{r['name']}: {r.get('lastError')}")

    def test_every_rule_selector_matches_real_series(self):
        loaded = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
        for g in loaded["groups"]:
            for r in g["rules"]:
                name = r.get("alert") or r.get("record")
                for sel in promql.selectors(r["expr"]):
                    with self.subTest(rule=name, selector=sel):
                        self.assertTrue(STACK.prom.query(f"count({sel})")["result"],
                                        f"rule {name}: selector {sel} matches no series\n  expr: {r['expr']}")


class MetricsExposition(unittest.TestCase):
    def test_promtool_check_metrics(self):
        for name, target in [("gateway", STACK.gateway)] + [(f"backend{i + 1}", b) for i, b in enumerate(STACK.backends)]:
            with self.subTest(service=name):
                status, body = http_get(f"http://{target}/metrics")
                self.assertEqual(status, 200)
                r = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, timeout=30)
                report = (r.stdout + r.stderr).decode(errors="replace")
                self.assertEqual((r.returncode, report.strip()), (0, ""), f"promtool check metrics on {name}:\n{report}")


if __name__ == "__main__":
    unittest.main()
