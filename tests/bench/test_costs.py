"""bench/costs.py without timings: reading callgrind's totals, strace -c's
table, /proc/net/snmp and ss's per-socket counters (from real runs of the
tools where they are installed), the difference of two runs, the
single-process NGINX configuration and the report's table."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
import bench  # noqa: E402
import costs  # noqa: E402
import report  # noqa: E402

STRACE_TABLE = """\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 40.00    0.000040           4        10           read
 30.00    0.000030           3        10         2 openat
 30.00    0.000030          30         1           execve
------ ----------- ----------- --------- --------- ----------------
100.00    0.000100           4        21         2 total
"""

SNMP = """\
Ip: Forwarding DefaultTTL InReceives
Ip: 1 64 100
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs
Tcp: 1 200 120000 -1 5 5 0 0 2 1000 1234
Udp: InDatagrams NoPorts
Udp: 3 4
"""

SS = """\
0      0      127.0.0.1:5001 127.0.0.1:40000
\t bbr wscale:7,7 rto:204 bytes_sent:10 segs_out:7 segs_in:5 data_segs_out:3
0      0      127.0.0.1:40000 127.0.0.1:5001
\t bbr wscale:7,7 rto:204 segs_out:6 segs_in:7 data_segs_out:3
0      0      10.0.0.1:22 10.0.0.2:50000
\t bbr segs_out:1000 segs_in:1000
0      0      [::1]:5002 [::1]:40001
\t cubic segs_out:2 segs_in:2
"""


class TmpDir(unittest.TestCase):
    def tmp(self) -> Path:
        path = Path(tempfile.mkdtemp(prefix="costs-test-"))
        self.addCleanup(shutil.rmtree, path, True)
        return path


class CallgrindTest(TmpDir):
    def test_totals_line_wins_over_summary(self):
        path = self.tmp() / "callgrind.out.1"
        path.write_text("events: Ir\nsummary: 100\nfn=main\n1 100\ntotals: 123\n")
        self.assertEqual(costs.callgrind_total(path), 123)

    def test_summary_alone(self):
        path = self.tmp() / "callgrind.out.1"
        path.write_text("events: Ir Dr\nsummary: 456 7\n")
        self.assertEqual(costs.callgrind_total(path), 456)

    def test_not_a_callgrind_file(self):
        path = self.tmp() / "other"
        path.write_text("hello\n")
        with self.assertRaises(bench.BenchError):
            costs.callgrind_total(path)

    @unittest.skipUnless(shutil.which("valgrind"), "valgrind not installed")
    def test_real_run_of_true(self):
        work = self.tmp()
        out = work / "callgrind.true.%p"
        run = subprocess.run(
            ["valgrind", "--tool=callgrind", "--quiet", f"--callgrind-out-file={out}", "/bin/true"],
            capture_output=True, text=True, timeout=60,
        )
        self.assertEqual(run.returncode, 0, run.stderr)
        files = list(work.glob("callgrind.true.*"))
        self.assertEqual(len(files), 1)
        # The dynamic loader alone runs tens of thousands of instructions.
        self.assertGreater(costs.callgrind_total(files[0]), 10_000)


class StraceTest(TmpDir):
    def test_table_with_and_without_errors(self):
        self.assertEqual(costs.strace_counts(STRACE_TABLE), {"read": 10, "openat": 10, "execve": 1, "total": 21})

    def test_no_total_is_an_error(self):
        with self.assertRaises(bench.BenchError):
            costs.strace_counts("strace: exec: No such file or directory\n")

    @unittest.skipUnless(shutil.which("strace"), "strace not installed")
    def test_real_run(self):
        out = self.tmp() / "strace.out"
        run = subprocess.run(["strace", "-f", "-c", "-o", str(out), "/bin/true"], capture_output=True, text=True, timeout=30)
        self.assertEqual(run.returncode, 0, run.stderr)
        counts = costs.strace_counts(out.read_text())
        self.assertEqual(counts["execve"], 1)
        self.assertEqual(counts["total"], sum(v for k, v in counts.items() if k != "total"))


class SegmentsTest(unittest.TestCase):
    def test_snmp_out_segs(self):
        self.assertEqual(costs.tcp_out_segments(SNMP), 1234)

    def test_snmp_of_this_machine(self):
        self.assertGreaterEqual(costs.tcp_out_segments(), 0)

    def test_ss_sums_the_sockets_on_given_ports(self):
        self.assertEqual(costs.socket_segments({5001}, SS), 13)
        self.assertEqual(costs.socket_segments({5001, 5002}, SS), 15)
        self.assertEqual(costs.socket_segments({9999}, SS), 0)

    @unittest.skipUnless(shutil.which("ss"), "ss not installed")
    def test_ss_counts_a_real_exchange(self):
        with socket.create_server(("127.0.0.1", 0)) as server:
            port = server.getsockname()[1]
            with socket.create_connection(("127.0.0.1", port)) as client:
                peer, _ = server.accept()
                with peer:
                    for _ in range(3):
                        client.sendall(b"ping")
                        self.assertEqual(peer.recv(4), b"ping")
                        peer.sendall(b"pong")
                        self.assertEqual(client.recv(4), b"pong")
                    # SYN-ACK, ACK and the six data segments at least.
                    self.assertGreaterEqual(costs.socket_segments({port}), 8)


class DifferenceTest(unittest.TestCase):
    def test_shared_costs_cancel(self):
        # 1,000 for start-up and shut-down, 30 per request.
        self.assertEqual(costs.per_request((500, 1_000 + 500 * 30), (2500, 1_000 + 2500 * 30)), 30)

    def test_each_key_missing_counts_zero(self):
        each = costs.per_request_each((10, {"read": 20, "total": 25}), (20, {"read": 40, "write": 5, "total": 50}))
        self.assertEqual(each, {"read": 2.0, "write": 0.5, "total": 2.5})

    def test_equal_counts_refused(self):
        with self.assertRaises(ValueError):
            costs.per_request((5, 1), (5, 2))

    def test_settings_need_the_longer_run_longer(self):
        env = {"COSTS_REQUESTS": "500", "COSTS_BASE_REQUESTS": "500"}
        with mock.patch.dict(os.environ, env), self.assertRaises(bench.BenchError):
            costs.settings()
        with mock.patch.dict(os.environ, {"COSTS_MEASURES": "instructions,bogus"}), self.assertRaises(bench.BenchError):
            costs.settings()
        with mock.patch.dict(os.environ, {"COSTS_REQUESTS": "3000", "COSTS_TARGETS": "nginx"}):
            cfg = costs.settings()
        self.assertEqual((cfg["requests"], cfg["cost_targets"], cfg["workers"]), ([500, 3000], ["nginx"], 1))


class ConfigTest(TmpDir):
    def runner(self) -> costs.Costs:
        work = self.tmp()
        cfg = {**costs.settings(), "out": work, "bin_dir": work}
        runner = costs.Costs(cfg, bench.Processes(), work)
        runner.runner.backend_ports = [bench.free_port() for _ in range(3)]
        return runner

    @unittest.skipUnless(shutil.which("nginx"), "nginx not installed")
    def test_nginx_runs_as_one_process(self):
        argv, _, _, _ = self.runner().command("nginx")
        conf = Path(argv[argv.index("-c") + 1])
        text = conf.read_text()
        self.assertIn("master_process off;", text)
        self.assertIn("worker_processes 1;", text)
        check = subprocess.run(argv[:1] + ["-t"] + argv[1:], capture_output=True, text=True)
        self.assertEqual(check.returncode, 0, check.stderr)

    def test_gateway_and_direct_commands(self):
        runner = self.runner()
        argv, env, _, _ = runner.command("gateway")
        self.assertEqual((env["GATEWAY__WORKERS"], env["GATEWAY__LOG__ACCESS_LOG"]), ("1", "true"))
        argv, env, _, port = runner.command("direct")
        self.assertTrue(argv[0].endswith("backend"))
        self.assertEqual(env["BACKEND__LISTEN__PORT"], str(port))
        wrapped = runner.wrapper("instructions", "gateway", 500)
        self.assertIn("--trace-children=no", wrapped)


class ReportTest(unittest.TestCase):
    def test_table_with_ratios_against_nginx_and_a_missing_tool(self):
        result = {
            "requests": [500, 2500],
            "peer_access_log": True,
            "missing_tools": {"syscalls": "strace"},
            "targets": {
                "gateway": {"instructions": {"per_request": 30_000.0}, "segments": {"per_request": 4.0}},
                "nginx": {"instructions": {"per_request": 40_000.0}, "segments": {"per_request": 4.0}},
            },
        }
        text = report.costs_markdown(result)
        self.assertIn("| gateway (stats, metrics, access log) | 30,000 | 0.75× | – |", text)
        self.assertIn("No syscalls column: strace is not installed.", text)


if __name__ == "__main__":
    unittest.main()
