"""Scenario files refused before anything starts: each bad file gets one line
on stderr naming the key and what is wrong, and exit code 2 (`check`, and
`run`, which validates the same way). Also: every shipped scenario passes
`check`, JSON needs no PyYAML, and histograms keep within 1%.

Run with `python3 -m unittest discover -s tests/scenario`. Needs no running
service; the gateway settings case uses target/release/gateway.
"""

import contextlib
import io
import json
import math
import random
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from scenario import cli, histogram, spec  # noqa: E402

GATEWAY = ROOT / "target" / "release" / "gateway"
BASE = {
    "description": "d",
    "load": {"user": "constant_rate", "rate": 5,
             "stages": [{"name": "a", "duration": "5s", "users": 1}, {"name": "b", "duration": "5s", "users": 1}]},
    "faults": [{"at": "5s", "backend": "server2", "action": "set", "faults": {"latency": "25ms"}}],
    "gates": [{"metric": "p99", "below": "50ms", "phase": "b"}],
}


def edited(change):
    doc = json.loads(json.dumps(BASE))
    change(doc)
    return doc


def put(doc, *path_and_value):
    *path, key, value = path_and_value
    target = doc
    for p in path:
        target = target[p]
    target[key] = value
    return doc


class Refused(unittest.TestCase):
    def check(self, data, *extra, text=None):
        """Runs `check` on `data` (dumped as JSON, or `text` as it is);
        returns (exit code, stderr lines)."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bad.yaml"
            path.write_text(text if text is not None else json.dumps(data))
            return self.check_file(path, *extra)

    def check_file(self, path, *extra):
        err, out = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = cli.main(["check", str(path), "--gateway-bin", "/nonexistent/gateway", *extra])
        return code, err.getvalue().splitlines()

    def assertRefused(self, data, key, words, *extra, text=None):
        code, lines = self.check(data, *extra, text=text)
        self.assertEqual(code, 2, lines)
        self.assertEqual(len(lines), 1, lines)
        self.assertIn(f": {key}: " if key else ": ", lines[0])
        for word in words:
            self.assertIn(word, lines[0])

    def test_the_base_file_is_valid(self):
        self.assertEqual(self.check(BASE), (0, []))

    def test_unknown_keys_at_every_level(self):
        cases = {
            "bogus": lambda d: put(d, "bogus", 1),
            "load.bogus": lambda d: put(d, "load", "bogus", 1),
            "load.stages[1].bogus": lambda d: put(d, "load", "stages", 1, "bogus", 1),
            "faults[0].bogus": lambda d: put(d, "faults", 0, "bogus", 1),
            "faults[0].faults.bogus": lambda d: put(d, "faults", 0, "faults", "bogus", 1),
            "variants[0].bogus": lambda d: put(d, "variants", [{"name": "x", "bogus": 1}]),
            "gates[0].bogus": lambda d: put(d, "gates", 0, "bogus", 1),
        }
        for key, change in cases.items():
            with self.subTest(key=key):
                self.assertRefused(edited(change), key, ["unknown key"])

    def test_bad_durations(self):
        self.assertRefused(edited(lambda d: put(d, "load", "stages", 0, "duration", "10")),
                           "load.stages[0].duration", ['"10" is not a duration', "10s"])
        self.assertRefused(edited(lambda d: put(d, "faults", 0, "at", "soon")), "faults[0].at", ["not a duration"])
        self.assertRefused(edited(lambda d: put(d, "gates", 0, "below", "fast")), "gates[0].below",
                           ["not a duration"])

    def test_numbers_are_not_durations(self):
        self.assertRefused(edited(lambda d: put(d, "load", "stages", 0, "duration", 10)),
                           "load.stages[0].duration", ["number", "write 10s"])
        self.assertRefused(edited(lambda d: put(d, "faults", 0, "faults", "latency", 25)),
                           "faults[0].faults.latency", ["number", "write 25s"])

    def test_unknown_backend(self):
        self.assertRefused(edited(lambda d: put(d, "faults", 0, "backend", "server9")), "faults[0].backend",
                           ['"server9" is not one of the backends (server1, server2, server3)'])

    def test_unknown_phase(self):
        self.assertRefused(edited(lambda d: put(d, "gates", 0, "phase", "later")), "gates[0].phase",
                           ['"later" is not a stage'])

    def test_unknown_metric(self):
        self.assertRefused(edited(lambda d: put(d, "gates", 0, "metric", "p98")), "gates[0].metric",
                           ['"p98" is unknown', "p50, p95, p99, max, error_rate, rps, requests, share"])

    def test_both_below_and_above(self):
        self.assertRefused(edited(lambda d: put(d, "gates", 0, "above", "1ms")), "gates[0]",
                           ["exactly one of below and above"])

    def test_fault_after_the_end(self):
        self.assertRefused(edited(lambda d: put(d, "faults", 0, "at", "10s")), "faults[0].at",
                           ["not before the run's end (10s)"])

    def test_restart_without_kill(self):
        self.assertRefused(edited(lambda d: put(d, "faults", 0, {"at": "1s", "backend": "server3",
                                                                  "action": "restart"})),
                           "faults[0].action", ["restart of server3, which is not killed"])

    def test_kill_with_target_kubernetes(self):
        kill = edited(lambda d: put(d, "faults", 0, {"at": "1s", "backend": "server3", "action": "kill"}))
        self.assertEqual(self.check(kill)[0], 0)
        self.assertRefused(kill, "faults[0].action", ["local runs only"], "--target", "kubernetes")

    def test_empty_stages(self):
        self.assertRefused(edited(lambda d: put(d, "load", "stages", [])), "load.stages", ["non-empty"])

    def test_a_yaml_that_is_not_a_mapping(self):
        self.assertRefused(None, None, ["must be a mapping", "not a list"], text="- one\n- two\n")

    def test_a_missing_file(self):
        code, lines = self.check_file(Path("/nonexistent/scenario.yaml"))
        self.assertEqual((code, len(lines)), (2, 1), lines)
        self.assertIn("/nonexistent/scenario.yaml: cannot read the file", lines[0])

    def test_gateway_settings_the_gateway_refuses(self):
        if not GATEWAY.exists():
            self.skipTest("target/release/gateway not built")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bad.json"
            path.write_text(json.dumps(edited(lambda d: put(d, "gateway", {"retry": {"bogus": 1}}))))
            err = io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = cli.main(["check", str(path), "--gateway-bin", str(GATEWAY)])
        lines = err.getvalue().splitlines()
        self.assertEqual((code, len(lines)), (2, 1), lines)
        self.assertIn(": gateway: the gateway refuses these settings:", lines[0])
        self.assertIn("bogus", lines[0])

    def test_run_refuses_the_same_way_before_starting_anything(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bad.json"
            path.write_text(json.dumps(edited(lambda d: put(d, "bogus", 1))))
            done = subprocess.run([sys.executable, "-m", "scenario", "run", str(path), "--out", f"{tmp}/out"],
                                  cwd=ROOT, capture_output=True, text=True, timeout=60)
            self.assertEqual(done.returncode, 2, done.stderr)
            self.assertEqual(done.stderr.strip(), f"{path}: bogus: unknown key")
            self.assertFalse(Path(tmp, "out").exists(), "a refused scenario must change nothing")


class Accepted(unittest.TestCase):
    def test_every_shipped_scenario_checks(self):
        files = sorted((ROOT / "deploy" / "scenarios").glob("*.yaml"))
        self.assertTrue(files)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            self.assertEqual(cli.main(["check", *map(str, files)]), 0)
        for path in files:
            scenario = spec.load(path)
            with self.subTest(scenario=path.name):
                self.assertTrue(scenario.description)
                self.assertLessEqual(scenario.duration, 120, "every shipped scenario stays under 2 minutes")
                self.assertTrue(scenario.gates)

    def test_json_without_pyyaml(self):
        with tempfile.TemporaryDirectory() as tmp, mock.patch.object(spec, "yaml", None):
            path = Path(tmp) / "plain.json"
            path.write_text(json.dumps(BASE))
            scenario = spec.load(path)
            self.assertEqual((scenario.name, scenario.duration), ("plain", 10.0))
            path.write_text("description: yaml\n")
            with self.assertRaisesRegex(spec.SpecError, "PyYAML"):
                spec.load(path)


class Histograms(unittest.TestCase):
    def test_quantiles_within_one_percent(self):
        rng = random.Random(7)
        values = sorted(rng.lognormvariate(1.0, 1.5) for _ in range(5000))
        hist = {}
        for v in values:
            i = histogram.index(v)
            hist[i] = hist.get(i, 0) + 1
        for q in (0.5, 0.9, 0.95, 0.99, 0.999):
            exact = values[math.ceil(q * len(values)) - 1]  # nearest rank, as histogram.quantile
            got = histogram.quantile(hist, q, max_ms=values[-1])
            with self.subTest(q=q):
                self.assertLessEqual(abs(got - exact) / exact, 0.01)


if __name__ == "__main__":
    unittest.main()
