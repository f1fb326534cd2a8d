"""The scenario report (scenario/report.py): pages rendered from sample
summaries (report_samples.py) and opened from file:// in headless Chromium
with the network blocked (report_browser.py). For every page:

- it finished drawing (data-report-ready on <html>) with no error caught by the
  page (data-report-errors), no console message at all, and no request sent;
- every chart plotted exactly the values the summary holds for it
  (data-points) and left pixels of its series' colours in its plot area
  (data-ink); a run without samples shows a placeholder instead;
- the charts of a row share one y scale and all charts one x range;
- the hostile backend name and the description holding `</script><b>` show
  as text, and no element or on* attribute came out of them.

Screenshots of a run and of a comparison go to target/scenario-report/;
UPDATE_DOC_IMAGES=1 also writes them to docs/images/ for the docs.

    python3 -m unittest tests/scenario/test_report.py -v
"""

from __future__ import annotations

import json
import os
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
        self.assertIn(f"share {samples.HOSTILE} < 0.2 (fault, gateway) was 0.33", banner[0].text)
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
        self.screenshot(html, "scenario-compare.png")

    def test_compare_with_a_run_that_could_not_start(self):
        a, b = samples.sample_summary(variants=(), duration_s=30), samples.error_summary()
        html = report.render_compare(self.run_dir("ok", a), self.run_dir("failed", b), self.tmp / "compare-error")
        page = self.check_page(html, a["runs"] + b["runs"])
        self.assertEqual(len([c for c in page.find("div", "chart") if c.attrs.get("data-empty") == "1"]), 4)

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
                   gateway_settings="not an object", duration_s="long")
        run["series"]["client"] = {"rps": "fast", "p99_ms": [None, "1", 2.0]}
        run["series"]["gateway"]["backends"] = {"server1": None}
        summary.update(scenario="x", verdict=None, runs=[run, {}])
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
        if os.environ.get("UPDATE_DOC_IMAGES") == "1":
            (ROOT / "docs" / "images").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(png, ROOT / "docs" / "images" / name)


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
        self.assertNotIn("/*@", html, "every placeholder filled")

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
