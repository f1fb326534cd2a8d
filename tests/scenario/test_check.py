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

from scenario import baseline, cli, figures, histogram, judge, spec  # noqa: E402

GATEWAY = ROOT / "target" / "release" / "gateway"
BASE = {
    "description": "d",
    "load": {"user": "constant_rate", "rate": 5,
             "stages": [{"name": "a", "duration": "5s", "users": 1}, {"name": "b", "duration": "5s", "users": 1}]},
    "faults": [{"at": "5s", "backend": "server2", "action": "set", "faults": {"latency": "25ms"}}],
    "gates": [{"gate": "p99 < 50ms", "phase": "b"}],
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
        self.assertRefused(edited(lambda d: put(d, "gates", 0, "gate", "p99 < fast")), "gates[0].gate",
                           ['"fast" is not a duration'])
        self.assertRefused(edited(lambda d: put(d, "gates", 0, "gate", "p99 < 50")), "gates[0].gate",
                           ['"50" is a number', "50ms"])
        self.assertRefused(edited(lambda d: put(d, "gates", 0, "window", "2.5s")), "gates[0].window",
                           ["whole seconds"])

    def test_numbers_are_not_durations(self):
        self.assertRefused(edited(lambda d: put(d, "load", "stages", 0, "duration", 10)),
                           "load.stages[0].duration", ["number", "write 10s"])
        self.assertRefused(edited(lambda d: put(d, "faults", 0, "faults", "latency", 25)),
                           "faults[0].faults.latency", ["number", "write 25s"])

    def test_files_nested_too_deeply_or_too_large(self):
        deep_json = '{"description": "d", "load": ' + '{"a": ' * 5000 + "1" + "}" * 5000 + "}"
        self.assertRefused(None, None, ["nested too deeply"], text=deep_json)
        if spec.yaml is None:
            self.skipTest("PyYAML not installed")
        self.assertRefused(None, None, ["nested too deeply"], text="description: d\ngates: " + "[" * 3000 + "]" * 3000)
        # Nine mappings of nine, eight levels deep: 9^8 values from nine short lines.
        bomb = ["  a0: &a0 {" + ", ".join(f"k{j}: 1" for j in range(9)) + "}"]
        bomb += ["  a%d: &a%d {" % (i, i) + ", ".join(f"k{j}: *a{i - 1}" for j in range(9)) + "}" for i in range(1, 9)]
        text = "description: d\nload: {stages: [{duration: 5s, users: 1}]}\ngateway:\n" + "\n".join(bomb) + "\n"
        self.assertRefused(None, None, ["more than 100000 values", "aliases"], text=text)

    def test_numbers_that_are_not_finite_or_of_no_sane_size(self):
        nines = "9" * 400
        cases = [
            ("load.rate", ["constant_rate needs `rate`"], lambda d: put(d, "load", "rate", float("nan"))),
            ("load.rate", ["constant_rate needs `rate`"], lambda d: put(d, "load", "rate", float("inf"))),
            ("load.stages[0].spawn_rate", ["inf must be a number > 0"],
             lambda d: put(d, "load", "stages", 0, "spawn_rate", float("inf"))),
            ("load.stages[0].rate", ["must be a number > 0"], lambda d: put(d, "load", "stages", 0, "rate", 10 ** 400)),
            ("load.stages[0].duration", ["longer than 24h"], lambda d: put(d, "load", "stages", 0, "duration", nines + "h")),
            ("load.stages[0].duration", ["is not a duration"], lambda d: put(d, "load", "stages", 0, "duration", "\uff15s")),
            ("faults[0].faults.latency", ["longer than 24h"], lambda d: put(d, "faults", 0, "faults", "latency", nines + "s")),
            ("gates[0].window", ["longer than 24h"], lambda d: put(d, "gates", 0, "window", nines + "s")),
            ("gates[0].gate", ["longer than 24h"], lambda d: put(d, "gates", 0, "gate", f"p99 < {nines}s")),
            ("gates[0].gate", ["too large"], lambda d: put(d, "gates", 0, "gate", f"requests > {nines}")),
            ("gates[0].gate", ["too large"], lambda d: put(d, "gates", 0, "gate", f"p99 < baseline + {nines}%")),
        ]
        for key, words, change in cases:
            with self.subTest(key=key, words=words):
                # json.dumps writes NaN and Infinity, which json.loads reads back (as YAML's .nan and .inf)
                self.assertRefused(edited(change), key, words)

    def test_fault_durations_the_backends_would_refuse(self):
        self.assertRefused(edited(lambda d: put(d, "faults", 0, "faults", "duration", "2h")), "faults[0].faults.duration",
                           ["longer than the backends' fault API takes (1h)"])
        long_refuse = edited(lambda d: (put(d, "load", "stages", 1, "duration", "2h"),
                                        put(d, "faults", 0, "faults", {"mode": "refuse"})))
        self.assertRefused(long_refuse, "faults[0].faults", ["refuse lasts until", "give it a `duration`"])
        put(long_refuse, "faults", 0, "faults", "duration", "1h")
        self.assertEqual(self.check(long_refuse), (0, []))

    def test_unknown_backend(self):
        self.assertRefused(edited(lambda d: put(d, "faults", 0, "backend", "server9")), "faults[0].backend",
                           ['"server9" is not one of the backends (server1, server2, server3)'])

    def test_unknown_phase(self):
        self.assertRefused(edited(lambda d: put(d, "gates", 0, "phase", "later")), "gates[0].phase",
                           ['"later" is not a phase (run, a, b, baseline, fault)'])

    def test_gate_grammar(self):
        cases = {
            "p98 < 50ms": ['"p98" is unknown', "p50, p90, p95, p99, max, error_rate, rps, requests, share"],
            "p99 50ms": ["is not a threshold", "p99 < 50ms"],
            "p99 == 50ms": ['"==" is not a comparison'],
            "share < 10%": ["share needs its backend: share(server2)"],
            "share(server9) < 10%": ['"server9" is not one of the backends'],
            "p99(server1) < 10ms": ["p99 takes no backend"],
            "error_rate < 2": ["error_rate is a ratio from 0 to 1", "2%"],
            "error_rate < 150%": ["at most 100%"],
            "rps > 10%": ["rps is not a ratio"],
            "rps >": ["has no threshold"],
            "p99 < baseline * 2": ['"baseline * 2" is not a duration'],
        }
        for text, words in cases.items():
            with self.subTest(gate=text):
                self.assertRefused(edited(lambda d: put(d, "gates", 0, "gate", text)), "gates[0].gate", words)
        self.assertRefused(edited(lambda d: put(d, "gates", 0, 7)), "gates[0]", ["must be a mapping"])
        self.assertRefused(edited(lambda d: put(d, "gates", 0, {"phase": "b"})), "gates[0].gate", ["is missing"])

    def test_gates_read_as_written(self):
        doc = edited(lambda d: put(d, "gates", ["error_rate < 1%", "share(server2) >= 0.25",
                                                {"gate": "p99 <= baseline + 10%", "phase": "fault"},
                                                {"gate": "p95<20ms", "window": "2s", "for": "2s",
                                                 "abort_on_fail": True}]))
        gates = spec.validate(doc, "x.json").gates
        self.assertEqual([(g.metric, g.op, g.threshold, g.phase, g.source) for g in gates],
                         [("error_rate", "<", 0.01, "run", "client"), ("share", ">=", 0.25, "run", "gateway"),
                          ("p99", "<=", None, "fault", "client"), ("p95", "<", 20.0, "run", "client")])
        self.assertEqual([g.name for g in gates],
                         ["error_rate < 1% (run, client)", "share(server2) >= 0.25 (run, gateway)",
                          "p99 <= baseline + 10% (fault, client)", "p95 < 20ms (run, client, 2s windows, for 2s)"])
        self.assertAlmostEqual(gates[2].baseline_change, 0.10)
        self.assertEqual((gates[3].window, gates[3].for_s, gates[3].abort_on_fail), (2.0, 2.0, True))

    def test_windows_must_fit_their_phase(self):
        self.assertRefused(edited(lambda d: put(d, "gates", 0, "window", "6s")), "gates[0].window",
                           ["6s is longer than b (5s judged)"])
        self.assertRefused(edited(lambda d: put(d, "gates", 0, "for", "2s")), "gates[0].for", ["needs a window"])
        doc = edited(lambda d: (put(d, "gates", 0, "window", "3s"), put(d, "gates", 0, "for", "4s")))
        self.assertRefused(doc, "gates[0].for", ["from 1s to 3s"])
        self.assertRefused(edited(lambda d: put(d, "settle", "5s")), "gates[0].phase",
                           ['"b" has nothing left after the settle time'])

    def test_a_stage_named_as_a_fault_phase(self):
        self.assertRefused(edited(lambda d: put(d, "load", "stages", 1, "name", "fault")), "load.stages[1].name",
                           ['"fault" is a phase the fault events make'])

    def test_variant_gates(self):
        doc = edited(lambda d: put(d, "variants", [{"name": "x", "gates": ["rps > 1"]},
                                                   {"name": "y", "gates": [{"gate": "p99 < 1ms", "phase": "z"}]}]))
        self.assertRefused(doc, "variants[1].gates[0].phase", ['"z" is not a phase'])

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


    def test_out_that_cannot_be_a_directory(self):
        if not GATEWAY.exists():
            self.skipTest("target/release/gateway not built")
        with tempfile.TemporaryDirectory() as tmp:
            path, taken = Path(tmp) / "ok.json", Path(tmp) / "a-file"
            path.write_text(json.dumps(BASE))
            taken.write_text("")
            for args in (["run", str(path), "--out", str(taken)], ["run", str(path), "--out", f"{taken}/x"]):
                with self.subTest(args=args):
                    done = subprocess.run([sys.executable, "-m", "scenario", *args], cwd=ROOT, capture_output=True,
                                          text=True, timeout=60)
                    self.assertEqual(done.returncode, 2, done.stderr)
                    self.assertEqual(len(done.stderr.splitlines()), 1, done.stderr)
                    self.assertIn(f"--out {args[-1]}: cannot be made a directory", done.stderr)
            earlier = Path(tmp) / "earlier"
            earlier.mkdir()
            (earlier / "summary.json").write_text("{}")
            done = subprocess.run([sys.executable, "-m", "scenario", "run", str(path), "--out", str(earlier)],
                                  cwd=ROOT, capture_output=True, text=True, timeout=60)
            self.assertEqual((done.returncode, done.stderr.strip()),
                             (2, f"python3 -m scenario: --out {earlier}: holds an earlier run (summary.json); "
                                 "give a new directory"))
            self.assertEqual((earlier / "summary.json").read_text(), "{}", "an earlier run is never overwritten")


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


class Phases(unittest.TestCase):
    def phases(self, faults, settle=None):
        doc = edited(lambda d: put(d, "faults", faults))
        doc["load"]["stages"][1]["duration"] = "15s"  # a 5s stage and a 15s one: 20s in all
        if settle:
            doc["settle"] = settle
        return {p.name: (p.start, p.end, p.judged_from) for p in spec.validate(doc, "x.json").phases}

    def test_phases_from_stages_and_fault_events(self):
        self.assertEqual(self.phases([]), {"run": (0, 20, 0), "a": (0, 5, 0), "b": (5, 20, 5)})
        set_at = {"backend": "server2", "action": "set", "faults": {"latency": "5ms"}}
        self.assertEqual(self.phases([{"at": "3s", **set_at},
                                      {"at": "8s", "backend": "server2", "action": "clear"}], settle="1s"),
                         {"run": (0, 20, 0), "a": (0, 5, 1), "b": (5, 20, 6), "baseline": (0, 3, 1),
                          "fault": (3, 8, 4), "recovery": (8, 20, 9)})
        # A fault that clears itself ends where its duration does; one that
        # never clears lasts to the end and leaves no recovery.
        timed = {"at": "4s", "backend": "server1", "action": "set", "faults": {"mode": "refuse", "duration": "3s"}}
        self.assertEqual(self.phases([{"at": "3s", **set_at}, {"at": "9s", "backend": "server2", "action": "clear"},
                                      timed])["fault"], (3, 9, 3))
        self.assertEqual(self.phases([timed, {"at": "12s", **set_at}])["fault"], (4, 20, 4))
        self.assertNotIn("recovery", self.phases([timed, {"at": "12s", **set_at}]))
        self.assertNotIn("baseline", self.phases([{"at": "0s", **set_at}]))


class Judging(unittest.TestCase):
    """Gates judged on per-second figures, without running anything."""

    def judged(self, gates, per_second_n, failures=None, latency=None, settle=None):
        doc = edited(lambda d: put(d, "gates", gates))
        if settle:
            doc["settle"] = settle
        scenario = spec.validate(doc, "x.json")
        records = []
        for t, n in enumerate(per_second_n):
            ms = (latency or {}).get(t, 5.0)
            records.append({"t": t, "n": n, "f": (failures or {}).get(t, 0),
                            "h": {histogram.index(ms): n} if n else {}, "max": ms if n else 0.0})
        figs = figures.figures(scenario.phases, records, [], 10.0, scenario.backends)
        per = figures.per_second(records, [])
        return judge.evaluate(scenario.gates, figs, per, scenario.phases, scenario.duration)

    def test_a_phase_with_no_requests_fails(self):
        (r,) = self.judged([{"gate": "p99 < 50ms", "phase": "b"}], [10] * 5 + [0] * 5)
        self.assertEqual((r["pass"], r["value"]), (False, None))
        self.assertEqual(r["reason"], "nothing measured")

    def test_requests_and_rps_over_a_phase_with_no_requests_fail(self):
        results = self.judged([{"gate": "requests < 5", "phase": "b"}, {"gate": "rps < 100", "phase": "b"},
                               {"gate": "rps < 100", "phase": "b", "window": "2s"},
                               {"gate": "requests > 0", "phase": "b"}], [10] * 5 + [0] * 5)
        self.assertEqual([(r["pass"], r["value"], r["reason"]) for r in results],
                         [(False, None, "nothing measured")] * 4)
        # An empty window among others is a real 0 (a gateway gone quiet must breach `rps > 1`)
        (r,) = self.judged([{"gate": "rps > 1", "window": "1s"}], [10] * 5 + [0] * 5)
        self.assertEqual((r["pass"], r["value"], r["breached_s"]), (False, 0.0, 5))

    def test_a_burst_diluted_in_the_totals_is_caught_by_a_window(self):
        failures = {7: 5}  # 5 of 10 requests fail in one second out of ten: 5% over the run
        whole, windowed, lasting = self.judged(
            ["error_rate < 10%", {"gate": "error_rate < 10%", "window": "2s"},
             {"gate": "error_rate < 10%", "window": "2s", "for": "3s"}], [10] * 10, failures)
        self.assertTrue(whole["pass"])
        self.assertEqual((windowed["pass"], windowed["value"], windowed["breached_s"], windowed["windows"]),
                         (False, 0.25, 2, 9))
        self.assertTrue(lasting["pass"], "two breaching windows in a row are not three")

    def test_settle_leaves_the_start_of_a_phase_out(self):
        slow_start = {5: 100.0}  # the first second of stage b is slow
        plain, settled = self.judged([{"gate": "max < 50ms", "phase": "b"}], [10] * 10, latency=slow_start), \
            self.judged([{"gate": "max < 50ms", "phase": "b"}], [10] * 10, latency=slow_start, settle="1s")
        self.assertFalse(plain[0]["pass"])
        self.assertTrue(settled[0]["pass"])

    def test_abort_watch_stops_on_a_breach_only_once_its_seconds_are_in(self):
        doc = edited(lambda d: put(d, "gates", [{"gate": "error_rate < 10%", "window": "2s", "abort_on_fail": True}]))
        scenario = spec.validate(doc, "x.json")
        watch = judge.AbortWatch(scenario.gates, scenario.phases, scenario.duration)
        records = [{"t": t, "n": 10, "f": 5 if t == 3 else 0, "h": {}, "max": 1.0} for t in range(6)]
        per = figures.per_second(records, [])
        self.assertIsNone(watch.failed(4.5, per, None), "second 3 is not complete until 2s after it")
        self.assertIs(watch.failed(5.5, per, None), scenario.gates[0])

    def test_relative_gates(self):
        doc = edited(lambda d: put(d, "gates", [{"gate": "p99 < baseline + 10%", "phase": "b"}]))
        scenario = spec.validate(doc, "x.json")
        summary = {"runs": [{"variant": "default", "gates": [
            {"metric": "p99", "backend": None, "phase": "b", "source": "client", "window_s": None, "for_s": None,
             "value": 4.0}]}]}
        self.assertEqual(baseline.gate_figures(summary, scenario, ["default"]), {"default": {0: 4.0}})
        self.assertEqual(judge.resolve(scenario.gates[0], 4.0), (4.4, 4.0))
        summary["runs"][0]["variant"] = "other"
        self.assertEqual(baseline.gate_figures(summary, scenario, ["default"]), {"default": {0: 4.0}},
                         "a baseline with one run is compared whatever its variant")
        summary["runs"].append({"variant": "third", "gates": []})
        with self.assertRaisesRegex(baseline.BaselineError, "no run of variant default"):
            baseline.gate_figures(summary, scenario, ["default"])

    def test_a_baseline_figure_that_is_not_finite_is_no_figure(self):
        doc = edited(lambda d: put(d, "gates", [{"gate": "p99 < baseline + 10%", "phase": "b"}]))
        scenario = spec.validate(doc, "x.json")
        for text in ("Infinity", "NaN", "-Infinity", "1e999"):
            with self.subTest(value=text), tempfile.TemporaryDirectory() as tmp:
                gate = ('{"metric": "p99", "backend": null, "phase": "b", "source": "client", "window_s": null, '
                        f'"for_s": null, "value": {text}}}')
                Path(tmp, "summary.json").write_text('{"runs": [{"variant": "default", "gates": [' + gate + ']}]}')
                figures_ = baseline.gate_figures(baseline.read_summary(tmp), scenario, ["default"])
                self.assertEqual(figures_, {"default": {0: None}})
                row = baseline.compare({"runs": [{"variant": "v", "figures": {"run": {"client": {"p99_ms": 1.0}}}}]},
                                       {"runs": [{"variant": "v", "figures": {"run": {"client": {
                                           "p99_ms": json.loads(text)}}}}]}, 0.1)[3]
                self.assertEqual((row["what"], row["verdict"]), ("p99 (run, client)", "missing"))

    def test_compare_with_a_tolerance(self):
        def run(p99, errors):
            return {"runs": [{"variant": "default", "figures": {"run": {"client": {
                "p50_ms": 1.0, "p95_ms": 2.0, "p99_ms": p99, "error_rate": errors, "rps": 10.0}}}, "gates": []}]}
        rows = {r["what"]: r["verdict"] for r in baseline.compare(run(10.0, 0.0), run(10.9, 0.0005), 0.10)}
        self.assertEqual((rows["p99 (run, client)"], rows["error_rate (run, client)"]), ("same", "same"))
        rows = {r["what"]: r["verdict"] for r in baseline.compare(run(10.0, 0.0), run(12.0, 0.01), 0.10)}
        self.assertEqual((rows["p99 (run, client)"], rows["error_rate (run, client)"]), ("worse", "worse"))
        rows = {r["what"]: r["verdict"] for r in baseline.compare(run(0.6, 0.0), run(0.9, 0.0), 0.10)}
        self.assertEqual(rows["p99 (run, client)"], "same", "0.3 ms is within the latency floor")


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
