"""The scenario report (scenario/report.py): pages rendered from sample
summaries (report_samples.py) and opened from file:// in headless Chromium
with the network blocked (report_browser.py). For every page:

- it finished drawing (data-report-ready on <html>) with no error caught by the
  page (data-report-errors), no console message at all, and no request sent;
- every chart plotted exactly the values the summary holds for it
  (data-points) and left pixels of its series' colours in its plot area
  (data-ink); a run without samples shows a placeholder instead;
- the charts of a row share one y scale and all charts one x range;
- every chart drew its run's stages as bands and its fault-made phases
  (baseline/fault/recovery) in the strip, never the `run` phase, and a
  dashed line for exactly the gates with a chart and a threshold (latency,
  req/s, share; no error_rate or requests), each listed under the chart;
- the hostile backend name (so a gate's text), the stage named with markup
  and the description holding `</script><b>` show as text, and no element or
  on* attribute came out of them.

And per page: the gate table says how a gate was judged (window, `for`,
abort_on_fail, baseline and resolved limit, worst window, longest breach,
why there is no figure); an aborted run's banner names the gate and the
second; a comparison shows what changed, worse rows marked; a summary from
before phases had kinds still draws.

Screenshots of a run and of a comparison go to target/scenario-report/ (the
pictures in docs/images/ are of real runs; docs/development.md says how).

    python3 -m unittest tests/scenario/test_report.py -v
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(HERE), str(ROOT)]

import report_browser  # noqa: E402
import report_samples as samples  # noqa: E402
from scenario import report  # noqa: E402

SCRIPTS_ON_PAGE = 4  # error catcher, data, uPlot, the report's own
ROWS = {"rps": [("client", "rps"), ("gateway", "rps")], "latency": [("client", "p99_ms"), ("client", "p50_ms")],
        "errors": [("client", "failures"), ("gateway", "errors")]}
MAX_REPORT_BYTES = 300_000
MAX_IMAGE_BYTES = 400_000
CHART_OF = {"p50": "latency", "p90": "latency", "p99": "latency", "rps": "rps", "share": "share"}


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _phases(run: dict) -> list[dict]:
    """The phases the page can place: objects with numeric start and end."""
    phases = run.get("phases") if isinstance(run, dict) else None
    return [p for p in (phases if isinstance(phases, list) else [])
            if isinstance(p, dict) and _number(p.get("start_s")) and _number(p.get("end_s"))]


def expected_marks(runs: list[dict]) -> dict:
    """(row, column) -> (stage bands, fault-made phases, [(phase, threshold)] of the gate lines).

    A gate has a line when its metric has a chart (client latency, rps,
    share), its threshold is a number and its phase is in the run (or is
    `run`); gates with the same threshold over the same seconds share one."""
    out = {}
    for ci, run in enumerate(runs):
        run = run if isinstance(run, dict) else {}
        phases = _phases(run)
        stages = sum(1 for p in phases if p.get("kind") in (None, "stage"))
        faults = sum(1 for p in phases if p.get("kind") == "faults")
        spans = {}
        for p in phases:
            start = p["judged_from_s"] if _number(p.get("judged_from_s")) else p["start_s"]
            start = min(max(start, p["start_s"]), p["end_s"])
            spans.setdefault(str(p.get("name")), (start, p["end_s"]))
        gates = run.get("gates") if isinstance(run.get("gates"), list) else []
        for row in ("rps", "latency", "errors", "share"):
            lines = {}
            for g in gates:
                if not isinstance(g, dict) or not _number(g.get("threshold")):
                    continue
                if CHART_OF.get(g.get("metric")) != row or (row == "latency" and g.get("source", "client") != "client"):
                    continue
                phase = str(g.get("phase", "run"))
                span = spans.get(phase) or ((0, "end") if phase == "run" else None)
                if span and span[1] != span[0]:  # a phase with no seconds left after its settle time has no line
                    lines.setdefault((g["threshold"], span), (phase, float(g["threshold"])))
            out[(row, ci)] = (stages, faults, sorted(lines.values()))
    return out


def expected_points(runs: list[dict]) -> dict:
    """(row, column) -> how many values the chart must plot: the non-null ones within len(t)."""
    backends = []
    for run in runs:
        for name in ((run.get("series") or {}).get("gateway") or {}).get("backends", {}):
            if name not in backends:
                backends.append(name)
    out = {}
    for ci, run in enumerate(runs):
        series = run.get("series") or {}
        n = len(series.get("t") or [])

        def count(values):
            return sum(1 for v in (values or [])[:n] if isinstance(v, (int, float)))

        for row, paths in ROWS.items():
            out[(row, ci)] = sum(count((series.get(a) or {}).get(b)) for a, b in paths)
        per = (series.get("gateway") or {}).get("backends") or {}
        out[("share", ci)] = sum(count((per.get(name) or {}).get("share")) for name in backends)
    return out


class ReportPages(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if report_browser.CHROMIUM is None:
            raise RuntimeError("chromium is not installed: make deps installs it")
        cls.tmp = Path(tempfile.mkdtemp(prefix="report-test-"))
        cls.shots = ROOT / "target" / "scenario-report"

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def run_dir(self, name: str, summary: dict) -> Path:
        return samples.write_run(self.tmp / name / "20261205T012000Z", summary)

    def check_page(self, html: Path, runs: list[dict]) -> report_browser.Page:
        page = report_browser.open_page(html)
        self.assertEqual(page.root.get("data-report-ready"), "1", f"the page did not finish drawing: {page.console}")
        self.assertNotIn("data-report-errors", page.root, [e.text for e in page.find("div", "page-errors")])
        self.assertEqual(page.console, [], "console messages")
        self.assertEqual(page.requests, [], "the page tried to use the network")

        charts = page.find("div", "chart")
        want = expected_points(runs)
        # No samples in any run: one note instead of the charts.
        self.assertEqual(len(charts), len(want) if any(want.values()) else 0)
        for c in charts:
            key = (c.attrs["data-row"], int(c.attrs["data-column"]))
            with self.subTest(chart=key):
                if want[key] == 0:
                    self.assertEqual(c.attrs.get("data-empty"), "1", "a chart without samples shows the placeholder")
                    continue
                self.assertEqual(int(c.attrs.get("data-points", -1)), want[key], "values plotted")
                self.assertGreater(int(c.attrs.get("data-ink", 0)), 0, "series pixels in the plot area")
        marks = expected_marks(runs)
        for c in charts:
            if "data-y-max" not in c.attrs:
                self.assertEqual(page.find("li", "gate-line", inside=c), [], "no gate list without a chart")
                continue
            key = (c.attrs["data-row"], int(c.attrs["data-column"]))
            stages, faults, lines = marks[key]
            with self.subTest(marks=key):
                self.assertEqual(int(c.attrs["data-stage-bands"]), stages, "stage bands")
                self.assertEqual(int(c.attrs["data-fault-phases"]), faults, "fault-made phases in the strip")
                listed = page.find("li", "gate-line", inside=c)
                self.assertEqual(sorted((li.attrs["data-phase"], float(li.attrs["data-threshold"])) for li in listed),
                                 lines, "gate lines")
                self.assertEqual(int(c.attrs["data-gate-lines"]),
                                 sum(1 for li in listed if li.attrs["data-drawn"] == "1"), "lines drawn = lines listed as drawn")
        for li in page.find("li", "gate-line"):
            self.assertFalse({"error_rate", "requests"} & set(li.attrs["data-metric"].split()), li.text)
        drawn = [c for c in charts if "data-y-max" in c.attrs]
        self.assertEqual(len({c.attrs["data-x-max"] for c in drawn}), min(1, len(drawn)), "one x range")
        for row in ("rps", "latency", "errors", "share"):
            tops = {c.attrs["data-y-max"] for c in drawn if c.attrs["data-row"] == row}
            self.assertLessEqual(len(tops), 1, f"{row}: one y scale per row, got {tops}")

        # User strings are text, never markup.
        self.assertEqual(page.find("img"), [])
        self.assertEqual(page.find("b"), [])
        self.assertEqual(len(page.find("script")), SCRIPTS_ON_PAGE)
        handlers = [(e.tag, a) for e in page.elements for a in e.attrs if a.startswith("on")]
        self.assertEqual(handlers, [])
        return page

    def test_run_with_variants_failed_gate_and_failed_fault(self):
        summary = samples.sample_summary(variants=("round-robin", "least-outstanding", "weighted-round-robin"),
                                         duration_s=120)
        html = report.render_run(self.run_dir("variants", summary))
        self.assertEqual(html.name, "report.html")
        self.assertLess(html.stat().st_size, MAX_REPORT_BYTES, "three variants of 120 s")
        page = self.check_page(html, summary["runs"])

        self.assertIn(samples.HOSTILE, [e.text for e in page.find("td", "backend")])
        self.assertIn("</script><b>not bold</b>", page.find("p", "description")[0].text)
        banner = page.find("div", "verdict-fail")
        self.assertEqual(len(banner), 1)
        share = summary["runs"][0]["gates"][2]["value"]
        self.assertIn(f"share({samples.HOSTILE}) < 20% (fault, gateway) was {share * 100:.1f}%", banner[0].text)
        self.assertIn("p50 < baseline (steady, client): no figure (the baseline run has no figure for this gate)",
                      banner[0].text)

        # Every chartable gate of every run is a line, error_rate and requests gates are not.
        lines = page.find("li", "gate-line")
        self.assertEqual({m for li in lines for m in li.attrs["data-metric"].split()}, {"p99", "p90", "rps", "share"})
        self.assertTrue(all(li.attrs["data-drawn"] == "1" for li in lines), "every threshold is on its chart's scale")
        shares = {c.attrs["data-column"]: page.find("li", "gate-line", inside=c)[0]
                  for c in page.find("div", "chart") if c.attrs["data-row"] == "share"}
        self.assertEqual({k: li.attrs["data-pass"] for k, li in shares.items()}, {"0": "fail", "1": "pass", "2": "fail"})
        self.assertIn(f"share({samples.HOSTILE}) < 20% over fault (0:32–1:30): FAIL", shares["0"].text)
        self.assertIn("recovery", page.find("p", "chart-key")[0].text, "the strip's key names the phases")

        # Figures per phase: the whole run, the stages, then the fault-made phases, once each.
        block = next(s for s in page.find("section", "block") if s.text.startswith("Figures per phase, client"))
        phases = [e.text for e in page.find("td", "phase", inside=block) if "repeat" not in e.attrs["class"]]
        self.assertEqual(phases, ["whole run", samples.HOSTILE_STAGE, "steady", "baseline", "fault", "recovery"])

        # The gate table: how each gate was judged.
        judged = [e.text for e in page.find("td", "judged")]
        self.assertIn("every 5 s windowfails when 2 s of windows in a row breachabort on fail", judged)
        self.assertEqual(len(page.find("span", "badge")), 3, "abort on fail, in each run's row")
        self.assertIn("< 40.0 ms", [e.text for e in page.find("td", "limit")])
        windowed = summary["runs"][0]["gates"][5]
        self.assertIn(f"{windowed['value']:.1f} msworst of {windowed['windows']} windows",
                      [e.text for e in page.find("td", "num")], "the worst window's figure")
        self.assertIn("<= 3.9 msbaseline 3.5 ms + 10%", [e.text for e in page.find("td", "limit")])
        self.assertIn("< baselineno baseline figure", [e.text for e in page.find("td", "limit")])
        notes = [e.text for e in page.find("td", "notes")]
        self.assertIn("no window breached", notes)
        self.assertIn("the baseline run has no figure for this gate", notes)
        results = [e.text for e in page.find("td", "result")]
        self.assertIn("FAIL", results)
        self.assertIn("error: PUT /api/faults: 503 from server3 <after 3 tries>", results)
        # Variants differ in balancer.strategy only, and the page says so.
        self.assertIn("balancer.strategy", [e.text for e in page.find("td", "mono")])

    def test_single_run_and_screenshot(self):
        summary = samples.plain(samples.sample_summary(variants=(), duration_s=60))
        html = report.render_run(self.run_dir("single", summary))
        page = self.check_page(html, summary["runs"])
        self.assertEqual([e.text for e in page.find("h1")], ["Scenario slow-backend"])
        self.assertIn("server2", [e.text for e in page.find("td", "backend")])
        self.screenshot(html, "scenario-report.png")

    def test_compare_two_runs(self):
        a = samples.plain(samples.sample_summary(variants=(), duration_s=60, seed=2))
        b = samples.plain(samples.sample_summary(variants=("round-robin", "least-outstanding"), duration_s=90, seed=3))
        b.update(started_at="2026-12-05T02:10:00Z", finished_at="2026-12-05T02:13:00Z")
        out = self.tmp / "compare-out"
        html = report.render_compare(self.run_dir("a", a), self.run_dir("b", b), out)
        self.assertEqual(html, out / "report.html")
        page = self.check_page(html, a["runs"] + b["runs"])
        labels = [e.text for e in page.find("span", "run-label")]
        for label in ("A", "B · round-robin", "B · least-outstanding"):
            self.assertIn(label, labels)
        self.assertNotIn("What changed", page.text, "no comparison given, no table")
        self.screenshot(html, "scenario-compare.png")

    def test_compare_shows_what_changed(self):
        variants = ("round-robin", "least-outstanding")
        a = samples.sample_summary(variants=variants, duration_s=60, seed=2)
        b = samples.sample_summary(variants=variants, duration_s=60, seed=3, extra_ms=2.0)
        cmp = samples.comparison(a, b, tolerance=0.1)
        cmp["rows"].append(dict(cmp["rows"][0], variant=samples.HOSTILE, what=samples.HOSTILE_STAGE, verdict="missing",
                                b=None, change=None))
        html = report.render_compare(self.run_dir("cmp-a", a), self.run_dir("cmp-b", b), self.tmp / "cmp-out", cmp)
        page = self.check_page(html, a["runs"] + b["runs"])
        heading = [h for h in page.find("h2") if h.text.startswith("What changed")]
        self.assertEqual([h.text for h in heading], ["What changed (tolerance ±10%)"])
        rows = page.find("tr", "cmp")
        self.assertEqual(len(rows), len(cmp["rows"]))
        worse = page.find("tr", "cmp-worse")
        self.assertEqual(len(worse), sum(r["verdict"] == "worse" for r in cmp["rows"]))
        self.assertGreater(len(worse), 0)
        # A and B in the row's unit: ms with one decimal, ratios as percent, req/s with one decimal.
        cells = [[td.text for td in page.find("td", inside=tr)] for tr in rows]
        for unit, fmt in (("ms", lambda v: f"{v:.1f} ms"), ("req/s", lambda v: f"{v:.1f} req/s")):
            r = next(r for r in cmp["rows"] if r["unit"] == unit and r["verdict"] != "missing")
            self.assertIn([r["verdict"], r["variant"], r["what"], fmt(r["a"]), fmt(r["b"])], [c[:5] for c in cells])
        r = next(r for r in cmp["rows"] if r["unit"] == "ratio" and r["a"] and r["b"])
        shown = next(c for c in cells if c[1:3] == [r["variant"], r["what"]])
        self.assertTrue(shown[3].endswith("%") and shown[4].endswith("%"), shown)
        # Rows within the tolerance wait folded under the ones that moved.
        folded = page.find("details", inside=heading[0].parent)
        self.assertEqual(len(folded), 1)
        self.assertEqual(len(page.find("tr", "cmp-same", inside=folded[0])), sum(r["verdict"] == "same" for r in cmp["rows"]))
        self.assertIn([samples.HOSTILE, samples.HOSTILE_STAGE],
                      [[td.text for td in page.find("td", inside=tr)][1:3] for tr in page.find("tr", "cmp-missing")])

    def test_compare_with_a_run_that_could_not_start(self):
        a, b = samples.sample_summary(variants=(), duration_s=30), samples.error_summary()
        odd = {"tolerance": "10%", "rows": [None, 5, {"verdict": 3, "a": "1", "b": None, "unit": None, "change": "x"}]}
        html = report.render_compare(self.run_dir("ok", a), self.run_dir("failed", b), self.tmp / "compare-error", odd)
        page = self.check_page(html, a["runs"] + b["runs"])
        self.assertEqual(len([c for c in page.find("div", "chart") if c.attrs.get("data-empty") == "1"]), 4)
        self.assertIn("What changed", [h.text for h in page.find("h2")])
        self.assertEqual(len(page.find("tr", "cmp")), 3)

    def test_aborted_run(self):
        summary = samples.aborted_summary()
        run = summary["runs"][0]
        page = self.check_page(report.render_run(self.run_dir("aborted", summary)), summary["runs"])
        banner = page.find("div", "verdict-aborted")
        self.assertEqual(len(banner), 1)
        self.assertEqual(page.find("strong", inside=banner[0])[0].text, "ABORTED")
        gate, at = run["aborted_by"]["gate"], run["aborted_by"]["at_s"]
        self.assertIn(f"default: aborted: stopped at {at:g} s by gate {gate} (abort_on_fail)", banner[0].text)
        notes = [e.text for e in page.find("td", "notes")]
        self.assertIn(f"longest breach {run['gates'][5]['breached_s']} s in a rowstopped the run at {at:g} s", notes)
        self.assertIn("nothing measured", notes, "the recovery gate's phase never came")
        latency = next(c for c in page.find("div", "chart") if c.attrs["data-row"] == "latency")
        self.assertIn("fail", [li.attrs["data-pass"] for li in page.find("li", "gate-line", inside=latency)])

    def test_summary_from_before_phases_had_kinds(self):
        summary = samples.old_format(samples.sample_summary(variants=("round-robin", "least-outstanding")))
        page = self.check_page(report.render_run(self.run_dir("old", summary)), summary["runs"])
        charts = page.find("div", "chart")
        self.assertEqual({c.attrs["data-stage-bands"] for c in charts}, {"2"})
        self.assertEqual({c.attrs["data-fault-phases"] for c in charts}, {"0"})
        self.assertNotIn("Strip above each chart", page.text)
        self.assertEqual({li.attrs["data-metric"] for li in page.find("li", "gate-line")}, {"rps"},
                         "gates on phases the old summary lacks have no span to draw")
        limits = [e.text for e in page.find("td", "limit")]
        self.assertIn("< 20%", limits, "a ratio without a unit is still a percentage")

    def test_interrupted_run(self):
        summary = samples.sample_summary(stop_at=23)
        page = self.check_page(report.render_run(self.run_dir("interrupted", summary)), summary["runs"])
        self.assertEqual(len(page.find("div", "verdict-interrupted")), 1)

    def test_run_that_could_not_start(self):
        summary = samples.error_summary()
        page = self.check_page(report.render_run(self.run_dir("error", summary)), summary["runs"])
        self.assertIn("gateway did not become ready within 10s", page.find("div", "verdict-error")[0].text)
        self.assertIn("No samples: the load did not start", page.text)

    def test_summary_without_runs(self):
        summary = dict(samples.error_summary(), runs=[])
        page = self.check_page(report.render_run(self.run_dir("no-runs", summary)), [])
        self.assertIn("no run was recorded", page.text)

    def test_summary_with_wrong_types_everywhere(self):
        summary = samples.sample_summary(variants=(), duration_s=20)
        run = summary["runs"][0]
        run.update(variant=5, phases="warm-up", fault_events=[None, 5, {"at_s": "10s", "backend": None}],
                   gates=[None, {"name": 3, "pass": "yes", "value": "x"}], checks=None, figures=[],
                   gateway_settings="not an object", duration_s="long", aborted_by="soon")
        odd = dict(samples.sample_summary(variants=(), duration_s=20)["runs"][0], verdict="aborted", aborted_by={"at_s": "x"})
        odd["phases"] = [None, {"name": None, "kind": 7, "start_s": 0, "end_s": 5}, {"name": "f", "kind": "faults", "start_s": "0"},
                         {"name": "late", "kind": "faults", "start_s": 3, "end_s": 9, "judged_from_s": 99}]
        odd["gates"] = [{"metric": "p99", "threshold": "50", "phase": "run"}, {"metric": "p99", "threshold": 5, "phase": "nope"},
                        {"metric": "rps", "threshold": 1e9, "phase": "run", "pass": True},
                        {"metric": "share", "threshold": 0.5, "phase": "late", "window_s": "5", "baseline": "x"}]
        run["series"]["client"] = {"rps": "fast", "p99_ms": [None, "1", 2.0]}
        run["series"]["gateway"]["backends"] = {"server1": None}
        summary.update(scenario="x", verdict=None, runs=[run, {}, odd])
        self.check_page(report.render_run(self.run_dir("wrong-types", summary)), summary["runs"])

    def test_the_browser_check_sees_errors_and_network_use(self):
        # The checks above pass only if open_page can see these; a page that does both:
        bad = self.tmp / "bad.html"
        bad.write_text('<!DOCTYPE html><html><body><img src="http://report-test.invalid/x.png">'
                       "<script>console.log('logged'); missing();</script></body></html>")
        page = report_browser.open_page(bad)
        self.assertTrue(any("report-test.invalid" in r for r in page.requests), page.requests)
        self.assertTrue(any("logged" in m for m in page.console), page.console)
        self.assertTrue(any("missing is not defined" in m for m in page.console), page.console)

    def screenshot(self, html: Path, name: str):
        png = report_browser.screenshot(html, self.shots / name)
        size = png.stat().st_size
        self.assertTrue(png.read_bytes().startswith(b"\x89PNG"))
        self.assertLess(size, MAX_IMAGE_BYTES, f"{name}: {size} bytes")


class ReportData(unittest.TestCase):
    """What needs no browser: the embedded data and bad summaries."""

    def test_embedded_json_cannot_end_its_script_element(self):
        value = {"name": "</script><script>alert(1)</script><!--", "amp": "a&b", "line": "x\u2028y"}
        text = report.embed_json(value)
        self.assertIsNone(re.search(r"</|<!--|<script", text, re.IGNORECASE), text)
        self.assertEqual(json.loads(text), value)

    def test_page_carries_the_summary(self):
        summary = samples.sample_summary(variants=(), duration_s=20)
        summary["runs"][0]["series"]["client"]["rps"][0] = float("nan")
        summary["runs"][0]["series"]["client"]["p50_ms"][0] = 1.23456789
        with tempfile.TemporaryDirectory() as tmp:
            html = report.render_run(samples.write_run(Path(tmp), summary)).read_text(encoding="utf-8")
        block = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S).group(1)
        run = json.loads(block)["sources"][0]["summary"]["runs"][0]
        self.assertIsNone(run["series"]["client"]["rps"][0], "NaN becomes null")
        self.assertEqual(run["series"]["client"]["p50_ms"][0], 1.235, "series rounded to 3 decimals")
        self.assertEqual(run["gates"], summary["runs"][0]["gates"])
        self.assertEqual(run["phases"], summary["runs"][0]["phases"])
        self.assertNotIn("/*@", html, "every placeholder filled")

    def test_comparison_travels_in_the_payload(self):
        a = samples.sample_summary(variants=(), duration_s=20)
        cmp = samples.comparison(a, a)
        with tempfile.TemporaryDirectory() as tmp:
            d = samples.write_run(Path(tmp) / "run", a)
            html = report.render_compare(d, d, Path(tmp) / "out", cmp).read_text(encoding="utf-8")
        block = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S).group(1)
        self.assertEqual(json.loads(block)["comparison"], cmp)

    def test_bad_summaries_are_refused_in_one_line(self):
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            cases = [("", "cannot be read"), ("{", "not JSON"), ("[]", "must be a JSON object"),
                     ('{"schema": 2, "runs": []}', "schema: 2 is not supported"),
                     ('{"schema": 1, "runs": {}}', "runs: must be a list of objects")]
            for text, message in cases:
                with self.subTest(text=text):
                    path = d / "summary.json"
                    path.unlink(missing_ok=True)
                    if text:
                        path.write_text(text)
                    with self.assertRaises(report.ReportError) as err:
                        report.render_run(d)
                    self.assertIn(message, str(err.exception))
                    self.assertNotIn("\n", str(err.exception))
                    self.assertFalse((d / "report.html").exists())


if __name__ == "__main__":
    unittest.main()
