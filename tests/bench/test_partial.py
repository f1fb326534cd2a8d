"""bench-partial without timings: the light-load generator's counting and
HTTP parsing against a tiny local server, the users' keys every load
carries (the generator's, wrk's users.lua, oha's URL pattern), oha's
summary, and the peers' configurations for the partial-failure cases
checked by nginx -t and haproxy -c."""

from __future__ import annotations

import http.server
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
import bench  # noqa: E402
import oha  # noqa: E402
import openloop  # noqa: E402
import partial  # noqa: E402
import partial_report  # noqa: E402


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    count = 0
    paths: list[str] = []
    lock = threading.Lock()

    def do_GET(self):  # noqa: N802
        with Handler.lock:
            Handler.count += 1
            Handler.paths.append(self.path)
            n = Handler.count
        if n % 4 == 0:
            # every fourth answer: a 500, chunked
            self.send_response(500)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"5\r\nerror\r\n0\r\n\r\n")
        else:
            body = b'{"ok":true}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, *args):
        pass


def serve(test: unittest.TestCase) -> int:
    """Starts Handler on a free port for this test; returns the port."""
    Handler.count = 0
    Handler.paths = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    test.addCleanup(server.server_close)
    test.addCleanup(server.shutdown)
    return server.server_address[1]


class OpenLoopTest(unittest.TestCase):
    def test_counts_every_scheduled_request_and_the_failed_ones(self):
        port = serve(self)
        result = openloop.open_loop(port, rate=100, seconds=0.4, paths=partial.user_paths("/api/data"))
        self.assertEqual(Handler.paths, [f"/api/data?user={i:03d}" for i in range(40)])
        self.assertEqual(result["scheduled"], 40)
        self.assertEqual(result["requests"], 40)
        self.assertEqual(result["failed_by_kind"]["status"], 10)
        self.assertEqual(result["failed"], 10)
        lat = result["latency_ms"]
        self.assertTrue(lat["p50"] <= lat["p99"] <= lat["p999"] <= lat["max"])

    def test_refused_connections_are_failed_requests(self):
        port = bench.free_port()  # nothing listens there
        result = openloop.open_loop(port, rate=50, seconds=0.1, paths=["/"])
        self.assertEqual(result["requests"], 0)
        self.assertEqual(result["failed_by_kind"]["socket"], 5)


class UsersTest(unittest.TestCase):
    @unittest.skipUnless(shutil.which("wrk"), "wrk not installed")
    def test_wrk_cycles_the_same_users_and_still_reports(self):
        port = serve(self)
        done = subprocess.run(
            ["wrk", "-t1", "-c1", "-d1s", "-s", str(ROOT / "bench/users.lua"), f"http://127.0.0.1:{port}/api/data"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("BENCH_JSON {", done.stdout)
        users = [int(p.removeprefix("/api/data?user=")) for p in Handler.paths]
        self.assertGreater(len(users), 10)
        # One user after the other (wrk may draw the first request itself).
        self.assertEqual(users, [(users[0] + i) % partial.USERS for i in range(len(users))])

    def test_oha_pattern_draws_exactly_the_generators_users(self):
        import re

        pattern = partial.user_regex(8080, "/api/data")
        self.assertTrue(pattern.startswith("http://127.0.0.1:8080/api/data"))
        # oha reads the pattern as a regular expression: it must match each
        # of the 1,000 users' URLs and nothing else.
        regex = re.compile(pattern + "$")
        for path in partial.user_paths("/api/data"):
            self.assertTrue(regex.match(f"http://127.0.0.1:8080{path}"), path)
        for other in ("/api/data?user=7", "/api/data?user=0007", "/api/data?user=1000", "/api/data?user="):
            self.assertIsNone(regex.match(f"http://127.0.0.1:8080{other}"), other)


class OhaPatternTest(unittest.TestCase):
    def test_oha_draws_the_users_evenly(self):
        try:
            binary = oha.find()
        except oha.OhaError:
            self.skipTest("oha not installed (make tools-oha)")
        # --dump-urls prints the URLs oha would draw and sends nothing.
        done = subprocess.run(
            [str(binary), "--dump-urls", "6000", "--rand-regex-url", partial.user_regex(9, "/api/data")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        users = [line.rsplit("=", 1)[1] for line in done.stdout.split()]
        self.assertEqual(len(users), 6000)
        self.assertLessEqual(set(users), {p.rsplit("=", 1)[1] for p in partial.user_paths("/api/data")})
        # Even: no user drawn more than 30 times in 6,000 (6 expected; a
        # pattern with alternatives gave one user half of all requests).
        self.assertLess(max(users.count(u) for u in set(users)), 30)
        self.assertGreater(len(set(users)), 900)


class OhaTest(unittest.TestCase):
    SUMMARY = {
        "summary": {"successRate": 0.99, "total": 2.0, "slowest": 0.031, "fastest": 0.0001, "requestsPerSec": 500.0},
        "latencyPercentiles": {"p50": 0.0007, "p99": 0.0031, "p99.9": 0.0120},
        "statusCodeDistribution": {"200": 990, "500": 6},
        "errorDistribution": {"connection closed": 4},
    }

    def test_summary_becomes_a_row_with_failures_by_kind(self):
        import json

        row = oha.parse(json.dumps(self.SUMMARY))
        self.assertEqual(row["requests"], 996)
        self.assertEqual(row["rps"], 498.0)
        self.assertAlmostEqual(row["latency_ms"]["p99"], 3.1)
        self.assertAlmostEqual(row["latency_ms"]["max"], 31.0)
        self.assertEqual(row["failed"], 10)
        self.assertEqual(row["failed_by_kind"], {"status": 6, "connection closed": 4})

    def test_unreadable_output_is_a_clear_error(self):
        for text in ("", "{}", "not json", '{"summary": {}}'):
            with self.assertRaises(oha.OhaError):
                oha.parse(text)

    def test_real_oha_against_a_local_server(self):
        try:
            binary = oha.find()
        except oha.OhaError:
            self.skipTest("oha not installed (make tools-oha)")
        port = serve(self)
        log = Path(tempfile.mkdtemp(prefix="oha-test-")) / "oha.log"
        self.addCleanup(shutil.rmtree, log.parent, True)
        row = oha.run(binary, partial.user_regex(port, "/api/data"), rate=50, seconds=1, connections=4, log=log)
        self.assertGreaterEqual(row["requests"], 40)
        self.assertEqual(row["requests"], Handler.count)
        # Handler answers every fourth request with a 500.
        self.assertEqual(row["failed_by_kind"]["status"], Handler.count // 4)
        self.assertTrue(all(p.startswith("/api/data?user=") for p in Handler.paths))


class ReportTest(unittest.TestCase):
    @staticmethod
    def row(case, target, p99, round_no, share=0.3):
        return {
            "case": case, "load": "open", "target": target, "round": round_no, "rps": 100.0, "requests": 500,
            "latency_ms": {"p50": 1.0, "p99": p99, "p999": p99 * 2, "max": p99 * 3},
            "worse_share": share, "failed": 0,
        }

    def test_medians_over_rounds_and_p99_against_the_same_proxys_healthy_run(self):
        rows = [
            self.row("healthy", "nginx", 4.0, 1), self.row("healthy", "nginx", 6.0, 2),
            self.row("slow", "nginx", 20.0, 1), self.row("slow", "nginx", 30.0, 2),
            self.row("healthy", "gateway-ewma", 10.0, 1), self.row("healthy", "gateway-ewma", 10.0, 2),
            self.row("slow", "gateway-ewma", 12.0, 1, 0.0), self.row("slow", "gateway-ewma", 13.0, 2, 0.02),
        ]
        info = {"cases": ["healthy", "slow"], "targets": ["gateway-ewma", "nginx"]}
        by = {(s["case"], s["target"]): s for s in partial_report.summarize(info, rows)["summary"]}
        self.assertEqual(by[("slow", "nginx")]["p99_ms"], 25.0)
        self.assertEqual(by[("slow", "nginx")]["p99_vs_healthy"], 5.0)
        self.assertEqual(by[("slow", "gateway-ewma")]["p99_vs_healthy"], 1.25)
        self.assertEqual(by[("slow", "gateway-ewma")]["worse_share"], 0.01)
        self.assertIsNone(by[("healthy", "nginx")]["p99_vs_healthy"])

    def test_without_a_healthy_case_there_is_no_ratio(self):
        rows = [self.row("slow", "nginx", 20.0, 1)]
        summary = partial_report.summarize({"cases": ["slow"], "targets": ["nginx"]}, rows)["summary"]
        self.assertIsNone(summary[0]["p99_vs_healthy"])


class PeerConfigTest(unittest.TestCase):
    def proxy_config(self, target: str, case: str) -> Path:
        work = Path(tempfile.mkdtemp(prefix="partial-test-"))
        self.addCleanup(shutil.rmtree, work, True)
        cfg = {"workers": 2, "out": work, "connections": [64], "bin_dir": work}
        runner = partial.Partial(cfg, bench.Processes(), work)
        runner.backend_ports = [bench.free_port() for _ in range(3)]
        started = []
        runner.procs.start = lambda argv, log, env=None: started.append(argv)  # configure only
        bench.wait_ready, saved = (lambda *a, **k: None), bench.wait_ready
        try:
            runner.start_proxy(target, case)
        finally:
            bench.wait_ready = saved
        return work / target

    @unittest.skipUnless(shutil.which("nginx"), "nginx not installed")
    def test_nginx_least_conn_and_retry_on_500(self):
        for case in partial.ALL_CASES:
            rundir = self.proxy_config("nginx", case)
            conf = (rundir / "nginx.conf").read_text()
            self.assertIn("least_conn;", conf)
            self.assertEqual("proxy_next_upstream error timeout http_500;" in conf, case == "errors")
            check = subprocess.run(["nginx", "-t", "-p", str(rundir), "-c", str(rundir / "nginx.conf")], capture_output=True, text=True)
            self.assertEqual(check.returncode, 0, check.stderr)

    @unittest.skipUnless(shutil.which("haproxy"), "haproxy not installed")
    def test_haproxy_leastconn_and_retry_on_500(self):
        for case in partial.ALL_CASES:
            rundir = self.proxy_config("haproxy", case)
            conf = (rundir / "haproxy.cfg").read_text()
            self.assertIn("balance leastconn", conf)
            self.assertEqual("retry-on conn-failure empty-response response-timeout 500" in conf, case == "errors")
            check = subprocess.run(["haproxy", "-c", "-f", str(rundir / "haproxy.cfg")], capture_output=True, text=True)
            self.assertEqual(check.returncode, 0, check.stderr)


if __name__ == "__main__":
    unittest.main()
