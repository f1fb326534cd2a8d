"""`make run`'s script (deploy/scripts/run-local.sh) on free loopback ports
with a short load: its end is a short table (totals, percentiles, one line
per backend) and the path of the full JSON, not the JSON itself; Ctrl-C
stops every process it started. And deploy/scripts/stats_table.py on a
made-up stats document."""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for support

from support import ROOT, free_ports, require_binaries  # noqa: E402

sys.path.insert(0, str(ROOT / "deploy" / "scripts"))
import stats_table  # noqa: E402

SAMPLE = {
    "window": "1m", "window_seconds": 60, "covered_seconds": 20, "requests": 1200, "requests_per_second": 60.0,
    "errors": 3, "error_rate": 0.0025, "status": {"1xx": 0, "2xx": 1197, "3xx": 0, "4xx": 0, "5xx": 3, "no_response": 0},
    "latency_ms": {"p50": 0.41, "p90": 0.9, "p95": 1.2, "p99": 3.1, "max": 12.5, "mean": 0.55},
    "servers": {name: {"requests": 400, "requests_per_second": 20.0, "errors": 1, "error_rate": 0.0025,
                       "latency_ms": {"p50": 0.3, "p90": 0.8, "p99": 2.0, "max": 9.0}, "state": "up"}
                for name in ("server2", "server1", "server3")},
}


class StatsTable(unittest.TestCase):
    def test_totals_percentiles_and_one_line_per_backend(self):
        lines = stats_table.table(SAMPLE)
        self.assertEqual(lines[0], "window 1m (20 s covered): 2xx 1197, 5xx 3")
        self.assertEqual(lines[1].split(), ["requests", "req/s", "errors", "error", "%", "p50", "ms", "p90", "ms",
                                            "p99", "ms", "max", "ms", "state"])
        self.assertEqual(lines[2].split(), ["all", "backends", "1200", "60.0", "3", "0.25", "0.41", "0.90", "3.10",
                                            "12.50"])
        self.assertEqual([line.split()[0] for line in lines[3:]], ["server1", "server2", "server3"])
        self.assertEqual(lines[3].split()[-1], "up")

    def test_refuses_what_is_not_stats(self):
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            f.write('{"error": {"code": "stats_disabled"}}')
            f.flush()
            proc = subprocess.run([sys.executable, str(ROOT / "deploy" / "scripts" / "stats_table.py"), f.name],
                                  capture_output=True, text=True)
        self.assertEqual(proc.returncode, 2)
        self.assertIn("not the gateway's stats JSON", proc.stderr)


class RunLocal(unittest.TestCase):
    def test_summary_table_then_ctrl_c_stops_everything(self):
        require_binaries()
        ports = free_ports(4)
        with tempfile.TemporaryDirectory(prefix="run-local-") as tmp:
            env = {**os.environ, "GATEWAY_PORT": str(ports[0]), "BACKEND_PORTS": " ".join(map(str, ports[1:])),
                   "LOCUST_USERS": "3", "LOCUST_SPAWN_RATE": "3", "LOCUST_RUN_TIME": "3s", "RUN_LOG_DIR": tmp}
            proc = subprocess.Popen(["bash", str(ROOT / "deploy" / "scripts" / "run-local.sh")], cwd=ROOT, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    start_new_session=True)
            out = []
            try:
                deadline = time.monotonic() + 90
                for line in proc.stdout:
                    out.append(line)
                    if "Press Ctrl-C" in line or time.monotonic() > deadline:
                        break
                text = "".join(out)
                self.assertIn("Press Ctrl-C", text, text[-3000:])
                summary = text[text.index("Gateway stats, last minute"):text.index("Everything is still running")]
                lines = [x for x in summary.splitlines() if x.strip()]
                self.assertLessEqual(len(lines), 10, summary)
                self.assertNotIn('"latency_ms"', summary, "the JSON is printed only on request")
                names = [x.split()[0] for x in lines]
                for name in ("all", "server1", "server2", "server3"):
                    self.assertIn(name, names, summary)
                json_path = Path(tmp) / "stats-1m.json"
                self.assertIn(f"Full JSON: {json_path}", summary)
                stats = json.loads(json_path.read_text())
                self.assertGreater(stats["requests"], 0)
                self.assertEqual(sorted(stats["servers"]), ["server1", "server2", "server3"])
            finally:
                os.killpg(proc.pid, signal.SIGINT)
                try:
                    rest, _ = proc.communicate(timeout=30)
                    rc = proc.returncode
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    raise
            self.assertEqual(rc, 130, rest)
            self.assertIn("stopping...", rest)
            for port in ports:  # (connections in TIME_WAIT may still keep the port from being bound)
                with socket.socket() as s:
                    s.settimeout(0.5)
                    self.assertNotEqual(s.connect_ex(("127.0.0.1", port)), 0, f"port {port} still answers after Ctrl-C")


if __name__ == "__main__":
    unittest.main()
