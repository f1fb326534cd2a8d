"""deploy/scenarios/smoke.yaml run end to end by `python3 -m scenario run`:
the release gateway and backends and a real Locust, on loopback. Checks the
exit codes (0 pass, 1 a failed gate, 4 an abort_on_fail gate, 130 Ctrl-C),
summary.json's shape, gates judged against a baseline run, that
the client's counts equal Locust's own totals and the gateway's equal its
access log, and that an interrupted run stops every process it started and
still writes its summary.

Run with `python3 -m unittest discover -s tests/scenario` (after
`cargo build --release`; Locust from .venv or PATH). About 45 s.
"""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for support
from support import Processes, get_json, register  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "deploy" / "scenarios" / "smoke.yaml"
BIN = ROOT / "target" / "release"
RUN_TIMEOUT_S = 90

TOP_KEYS = {"schema", "scenario", "target", "started_at", "finished_at", "verdict", "runs"}
RUN_KEYS = {"variant", "verdict", "error", "gateway_settings", "duration_s", "phases", "fault_events", "figures",
            "series", "gates", "checks"}
CLIENT_KEYS = {"requests", "failures", "error_rate", "rps", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms"}
GATEWAY_KEYS = {"requests", "errors", "error_rate", "rps", "backends"}
EVENT_KEYS = {"at_s", "applied_s", "backend", "action", "faults", "ok", "error"}
GATE_KEYS = {"name", "gate", "metric", "backend", "phase", "source", "op", "threshold", "threshold_text", "unit",
             "window_s", "for_s", "abort_on_fail", "baseline", "value", "pass"}
WINDOW_KEYS = {"windows", "breached_s"}


def runner(scenario, out, **popen):
    return subprocess.Popen([sys.executable, "-m", "scenario", "run", str(scenario), "--out", str(out)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def finish(proc):
    try:
        out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"the runner did not end within {RUN_TIMEOUT_S}s:\n{out}\n{err}") from None
    return proc.returncode, out, err


def descendants(pid):
    """PIDs of every live process below `pid`, from /proc."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class SmokeRun(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for name in ("gateway", "backend"):
            if not os.access(BIN / name, os.X_OK):
                raise unittest.SkipTest(f"target/release/{name} is missing: cargo build --release")
        cls.tmp = tempfile.TemporaryDirectory(prefix="scenario-test-")
        cls.dir = Path(cls.tmp.name)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_smoke_passes_and_its_figures_agree(self):
        out = self.dir / "smoke"
        # Relative paths, as `make scenario` passes them: the services run in
        # the run directory, so the runner must not hand them relative ones.
        code, stdout, stderr = finish(runner(SMOKE.relative_to(ROOT), os.path.relpath(out, ROOT)))
        self.assertEqual(code, 0, f"{stdout}\n{stderr}")
        self.assertRegex(stdout, r"(?m)^pass error_rate < 1% \(run, client\): 0%$")
        summary = json.loads((out / "summary.json").read_text())
        self.assertEqual(set(summary), TOP_KEYS)
        self.assertEqual((summary["schema"], summary["target"], summary["verdict"]), (1, "local", "pass"))
        self.assertEqual(summary["scenario"]["name"], "smoke")
        (run,) = summary["runs"]
        self.assertEqual(set(run), RUN_KEYS)
        self.assertEqual((run["variant"], run["verdict"], run["error"]), ("default", "pass", None))
        self.assertEqual(run["gateway_settings"]["listen"]["host"], "127.0.0.1")
        phases = [(p["name"], p["kind"], p["start_s"], p["end_s"]) for p in run["phases"]]
        self.assertEqual(phases, [("run", "run", 0, 20), ("steady", "stage", 0, 20), ("baseline", "faults", 0, 5),
                                  ("fault", "faults", 5, 15), ("recovery", "faults", 15, 20)])
        self.assertEqual(list(run["figures"]), [p[0] for p in phases])
        for name, fig in run["figures"].items():
            with self.subTest(phase=name):
                self.assertEqual(set(fig["client"]), CLIENT_KEYS)
                self.assertEqual(set(fig["gateway"]), GATEWAY_KEYS)
                self.assertEqual(set(fig["gateway"]["backends"]), {"server1", "server2", "server3"})
                self.assertEqual(set(fig["backends"]), {"server1", "server2", "server3"})
                self.assertGreater(fig["client"]["requests"], 0)
        self.assertEqual([(e["action"], e["backend"], e["ok"]) for e in run["fault_events"]],
                         [("set", "server2", True), ("clear", "server2", True)])
        self.assertTrue(all(set(e) == EVENT_KEYS for e in run["fault_events"]))
        self.assertTrue(run["gates"] and all(g["pass"] for g in run["gates"]))
        for g in run["gates"]:
            self.assertEqual(set(g), GATE_KEYS | (WINDOW_KEYS if g["window_s"] else set()), g)
        series = run["series"]
        self.assertEqual(set(series), {"t", "client", "gateway"})
        for side in (series["client"], series["gateway"]):
            for values in side.values():
                if isinstance(values, list):
                    self.assertEqual(len(values), len(series["t"]))

        # The client's counts are Locust's own totals ...
        client = run["figures"]["run"]["client"]
        locust = json.loads((out / "locust.json").read_text())
        self.assertEqual((client["requests"], client["failures"]),
                         (sum(e["num_requests"] for e in locust), sum(e["num_failures"] for e in locust)))
        # Each backend's own count of what it served is the gateway's count of
        # the attempts it sent there (nothing failed, so nothing was retried).
        for name, own in run["figures"]["run"]["backends"].items():
            self.assertEqual(own["requests"], run["figures"]["run"]["gateway"]["backends"][name]["requests"], name)
        # ... and the gateway's are its /api/stats/1h (checked by the runner)
        # and its access log (one line per proxied request).
        self.assertEqual(run["checks"], {"client_matches_locust": True, "gateway_matches_stats": True})
        access = re.findall(r" INFO request method=GET ", (out / "gateway.log").read_text())
        self.assertEqual(run["figures"]["run"]["gateway"]["requests"], len(access))
        for name in ("server1.log", "server2.log", "server3.log", "locust.log"):
            self.assertTrue((out / name).is_file(), name)

    def short_smoke(self, name, gates):
        """smoke.yaml cut to 6s with `gates` added: the gates, not the load, are under test."""
        data = yaml.safe_load(SMOKE.read_text())
        data["load"]["stages"][0]["duration"] = "6s"
        data["faults"] = [{"at": "2s", "backend": "server2", "action": "set", "faults": {"latency": "5ms"}},
                          {"at": "4s", "backend": "server2", "action": "clear"}]
        data["gates"] = [g for g in data["gates"] if "window" not in g] + gates
        path = self.dir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    def test_failed_gates_exit_1_and_are_named(self):
        # A baseline run whose p99 no real run can come within 1% of.
        base = self.dir / "tiny-baseline"
        base.mkdir()
        (base / "summary.json").write_text(json.dumps({"runs": [{"variant": "default", "gates": [
            {"metric": "p99", "backend": None, "phase": "run", "source": "client", "window_s": None, "for_s": None,
             "value": 0.001}]}]}))
        path = self.short_smoke("impossible", ["requests > 1000000", "p99 < baseline + 1%"])
        proc = subprocess.Popen([sys.executable, "-m", "scenario", "run", str(path), "--out",
                                 str(self.dir / "impossible"), "--baseline", str(base)], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        code, stdout, stderr = finish(proc)
        self.assertEqual(code, 1, f"{stdout}\n{stderr}")
        self.assertRegex(stdout, r"(?m)^FAIL requests > 1000000 \(run, client\): \d+$")
        self.assertRegex(stdout, r"(?m)^FAIL p99 < baseline \+ 1% \(run, client\): [\d.]+ ms "
                                 r"\(baseline 0.0 ms, limit 0.0 ms\)$")
        self.assertEqual(stdout.count("FAIL "), 2, stdout)
        summary = json.loads((self.dir / "impossible" / "summary.json").read_text())
        self.assertEqual(summary["verdict"], "fail")
        self.assertEqual(summary["runs"][0]["gates"][-1]["baseline"], 0.001)

    def test_an_abort_on_fail_gate_stops_the_run_and_exits_4(self):
        path = self.short_smoke("abort", [{"gate": "rps > 1000", "window": "2s", "abort_on_fail": True}])
        started = time.monotonic()
        code, stdout, stderr = finish(runner(path, self.dir / "abort"))
        self.assertEqual(code, 4, f"{stdout}\n{stderr}")
        self.assertIn("aborting: rps > 1000 (run, client, 2s windows) failed at", stderr)
        summary = json.loads((self.dir / "abort" / "summary.json").read_text())
        (run,) = summary["runs"]
        self.assertEqual((summary["verdict"], run["verdict"]), ("aborted", "aborted"))
        self.assertEqual(run["aborted_by"]["gate"], "rps > 1000 (run, client, 2s windows)")
        self.assertLess(run["duration_s"], 6, "the load stopped before its end")
        self.assertLess(time.monotonic() - started, 60)
        # Locust stopped cleanly: its own totals were written and equal the client's figures
        self.assertIs(run["checks"]["client_matches_locust"], True, run["checks"])

    def test_ctrl_c_stops_everything_and_still_writes_the_summary(self):
        out = self.dir / "interrupted"
        proc = runner(SMOKE, out)
        pids = []
        try:
            deadline = time.monotonic() + 60
            seconds = out / "client-seconds.jsonl"
            # Mid-run: the load has been going for a second or more.
            while not (seconds.exists() and '"t":1' in seconds.read_text()):
                self.assertIsNone(proc.poll(), "the runner ended before the load began")
                self.assertLess(time.monotonic(), deadline, "the load did not begin within 60s")
                time.sleep(0.1)
            pids = descendants(proc.pid)
            os.kill(proc.pid, signal.SIGINT)
        finally:
            code, stdout, stderr = finish(proc)
        self.assertEqual(code, 130, f"{stdout}\n{stderr}")
        self.assertGreaterEqual(len(pids), 5, "three backends, the gateway and Locust")
        left = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
        self.assertEqual(left, [], "processes the runner started are still there")
        summary = json.loads((out / "summary.json").read_text())
        self.assertEqual((summary["verdict"], summary["runs"][0]["verdict"]), ("interrupted", "interrupted"))
        self.assertGreater(summary["runs"][0]["figures"]["run"]["client"]["requests"], 0)
        self.assertIs(summary["runs"][0]["checks"]["client_matches_locust"], True, summary["runs"][0]["checks"])


class KubernetesTarget(unittest.TestCase):
    """`--target kubernetes`: the runner starts nothing and the backends
    outlive the run, so a run stopped mid-fault must still clear it."""

    def setUp(self):
        for name in ("gateway", "backend"):
            if not os.access(BIN / name, os.X_OK):
                raise unittest.SkipTest(f"target/release/{name} is missing: cargo build --release")
        tmp = tempfile.TemporaryDirectory(prefix="scenario-k8s-test-")
        self.addCleanup(tmp.cleanup)
        self.dir = Path(tmp.name)
        self.procs = Processes(self.dir / "services")
        self.addCleanup(self.procs.stop_all)

    def test_sigterm_mid_fault_clears_the_fault_it_set(self):
        token = "fault-api-token"
        backends = [self.procs.backend(f"pod-{i}", env={"BACKEND__ADMIN__TOKEN": token}) for i in range(3)]
        gateway = self.procs.gateway()
        for i, b in enumerate(backends):
            register(gateway.port, f"pod-{i}", b.url())
        (self.dir / "token").write_text(token + "\n")
        scenario = self.dir / "k8s.json"
        scenario.write_text(json.dumps({
            "description": "server2 slowed from the first second on, for longer than the run lasts here",
            "load": {"user": "constant_rate", "rate": 10, "stages": [{"duration": "30s", "users": 2}]},
            "faults": [{"at": "1s", "backend": "server2", "action": "set", "faults": {"latency": "40ms"}}],
        }))
        out = self.dir / "run"
        proc = subprocess.Popen(
            [sys.executable, "-m", "scenario", "run", str(scenario), "--out", str(out), "--target", "kubernetes",
             "--gateway-url", gateway.url(), "--backend-urls", ",".join(b.url() for b in backends),
             "--token-file", str(self.dir / "token")],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while get_json(backends[1].port, "/api/faults")["faults"]["latency"] != "40ms":
                self.assertIsNone(proc.poll(), "the runner ended before it set the fault")
                self.assertLess(time.monotonic(), deadline, "the fault was not set within 60s")
                time.sleep(0.1)
            os.kill(proc.pid, signal.SIGTERM)
        finally:
            code, stdout, stderr = finish(proc)
        self.assertEqual(code, 143, f"{stdout}\n{stderr}")
        self.assertEqual(get_json(backends[1].port, "/api/faults")["faults"]["latency"], "0s")
        summary = json.loads((out / "summary.json").read_text())
        self.assertEqual((summary["target"], summary["verdict"]), ("kubernetes", "interrupted"))


if __name__ == "__main__":
    unittest.main()
