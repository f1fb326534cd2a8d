"""bench/partial.py without timings: the open-loop generator's counting and
HTTP parsing against a tiny local server, and the peers' configurations for
the partial-failure cases checked by nginx -t and haproxy -c."""

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
import partial  # noqa: E402


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    count = 0
    lock = threading.Lock()

    def do_GET(self):  # noqa: N802
        with Handler.lock:
            Handler.count += 1
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


class OpenLoopTest(unittest.TestCase):
    def test_counts_every_scheduled_request_and_the_failed_ones(self):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            Handler.count = 0
            result = partial.open_loop(server.server_address[1], rate=100, seconds=0.4)
        finally:
            server.shutdown()
            server.server_close()
        self.assertEqual(result["scheduled"], 40)
        self.assertEqual(result["requests"], 40)
        self.assertEqual(result["failed_by_kind"]["status"], 10)
        self.assertEqual(result["failed"], 10)
        lat = result["latency_ms"]
        self.assertTrue(lat["p50"] <= lat["p99"] <= lat["p999"] <= lat["max"])

    def test_refused_connections_are_failed_requests(self):
        port = bench.free_port()  # nothing listens there
        result = partial.open_loop(port, rate=50, seconds=0.1)
        self.assertEqual(result["requests"], 0)
        self.assertEqual(result["failed_by_kind"]["socket"], 5)


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
        for case in ("slow", "errors"):
            rundir = self.proxy_config("nginx", case)
            conf = (rundir / "nginx.conf").read_text()
            self.assertIn("least_conn;", conf)
            self.assertEqual("proxy_next_upstream error timeout http_500;" in conf, case == "errors")
            check = subprocess.run(["nginx", "-t", "-p", str(rundir), "-c", str(rundir / "nginx.conf")], capture_output=True, text=True)
            self.assertEqual(check.returncode, 0, check.stderr)

    @unittest.skipUnless(shutil.which("haproxy"), "haproxy not installed")
    def test_haproxy_leastconn_and_retry_on_500(self):
        for case in ("slow", "errors"):
            rundir = self.proxy_config("haproxy", case)
            conf = (rundir / "haproxy.cfg").read_text()
            self.assertIn("balance leastconn", conf)
            self.assertEqual("retry-on conn-failure empty-response response-timeout 500" in conf, case == "errors")
            check = subprocess.run(["haproxy", "-c", "-f", str(rundir / "haproxy.cfg")], capture_output=True, text=True)
            self.assertEqual(check.returncode, 0, check.stderr)


if __name__ == "__main__":
    unittest.main()
