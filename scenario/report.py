"""report.html for scenario runs: one run directory (`render_run`) or two earlier
runs side by side (`render_compare`, with the compare command's table of
what changed).

The page is one self-contained file: the template (report_template.html) with
its stylesheet (report.css), scripts (report_util.js, report_gates.js,
report_charts.js, report.js) and the vendored uPlot (vendor/uplot/) inlined,
and the summary data embedded as JSON in a `<script type="application/json">`
block. It opens from file:// with no network. Python puts no user-controlled
string into the HTML itself: names, descriptions and settings travel only
inside that JSON block (escaped so that no `</script>` or `<!--` can end it
early), and the scripts write them into the page with textContent.

Reads summary.json as described by the run directory's contract (schema 1):
phases with their kind (run, stage, or made from the fault events), figures
per phase, gates with how they were judged (windows, baseline, abort); older
summaries whose phases have no kind are read as stages. Figures or series
that an interrupted, aborted or failed run lacks are drawn as gaps.
Standard library only: it also runs in the Kubernetes Job, which has Python
and Locust and nothing else. Depends on nothing else in the scenario package.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENDOR = HERE / "vendor" / "uplot"
SCHEMA = 1
# The page's own scripts, in the order they run (each uses the ones before it).
SCRIPTS = ("report_util.js", "report_gates.js", "report_charts.js", "report.js")
REPORT_NAME = "report.html"

# Series values are per-second figures read on a chart: three decimals keep
# every digit a reader can see and keep a three-variant, 120 s report small.
SERIES_DECIMALS = 3
PLACEHOLDER = re.compile(r"/\*@(UPLOT_CSS|REPORT_CSS|UPLOT_JS|REPORT_JS|DATA)@\*/")


class ReportError(ValueError):
    """A summary that cannot be reported; the message is one line naming the file."""


def render_run(run_dir: Path) -> Path:
    """Reads run_dir/summary.json, writes run_dir/report.html and returns its path."""
    run_dir = Path(run_dir)
    summary = load_summary(run_dir)
    payload = {"mode": "run", "sources": [_source(run_dir, summary, None)]}
    return _write(run_dir / REPORT_NAME, payload)


def render_compare(dir_a: Path, dir_b: Path, out_dir: Path, comparison: dict | None = None) -> Path:
    """Writes out_dir/report.html drawing the runs of dir_a and dir_b side by
    side; `comparison` ({tolerance, rows}, rows as scenario.baseline.compare
    makes them) is shown as a table of what changed beyond the tolerance, and
    left out when None."""
    dir_a, dir_b, out_dir = Path(dir_a), Path(dir_b), Path(out_dir)
    sources = [_source(d, load_summary(d), label) for d, label in ((dir_a, "A"), (dir_b, "B"))]
    out_dir.mkdir(parents=True, exist_ok=True)
    return _write(out_dir / REPORT_NAME, {"mode": "compare", "sources": sources, "comparison": comparison})


def load_summary(run_dir: Path) -> dict:
    """summary.json of run_dir, checked just enough for the page to draw it."""
    path = Path(run_dir) / "summary.json"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ReportError(f"{path}: cannot be read ({e.strerror or e})") from None
    try:
        summary = json.loads(text)
    except ValueError as e:
        raise ReportError(f"{path}: not JSON ({e})") from None
    if not isinstance(summary, dict):
        raise ReportError(f"{path}: the summary must be a JSON object")
    schema = summary.get("schema")
    if schema != SCHEMA:
        raise ReportError(f"{path}: schema: {schema!r} is not supported (this report reads schema {SCHEMA})")
    runs = summary.get("runs", [])
    if not isinstance(runs, list) or not all(isinstance(r, dict) for r in runs):
        raise ReportError(f"{path}: runs: must be a list of objects")
    return summary


def render_html(payload: dict) -> str:
    """The whole page for a payload {"mode": "run"|"compare", "sources": [...], "comparison": ...}."""
    parts = {
        "UPLOT_CSS": _read(VENDOR / "uPlot.min.css"),
        "REPORT_CSS": _read(HERE / "report.css"),
        "UPLOT_JS": _inline_script(_read(VENDOR / "uPlot.iife.min.js")),
        "REPORT_JS": "\n".join(_inline_script(_read(HERE / name)) for name in SCRIPTS),
        "DATA": embed_json(payload),
    }
    # One pass: text put in for one placeholder is never searched for another.
    return PLACEHOLDER.sub(lambda m: parts[m.group(1)], _read(HERE / "report_template.html"))


def embed_json(value) -> str:
    """JSON safe inside a <script type="application/json"> element.

    `<`, `>` and `&` are written as \\u escapes, so no `</script>`, `<!--` or
    `<script` can appear in the element whatever the strings hold; JSON.parse
    reads the escapes back as the same characters.
    """
    text = json.dumps(_clean(value), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _source(run_dir: Path, summary: dict, label: str | None) -> dict:
    # The directory is named by its last two parts (<scenario>/<time>): enough to
    # find it again, without this machine's paths in a page that gets shared.
    resolved = Path(run_dir).resolve()
    where = "/".join(resolved.parts[-2:])
    runs = [dict(r, series=_round_series(r.get("series"))) for r in summary.get("runs", [])]
    return {"label": label, "dir": where, "summary": dict(summary, runs=runs)}


def _round_series(series):
    if not isinstance(series, dict):
        return series

    def walk(v):
        if isinstance(v, float):
            return round(v, SERIES_DECIMALS) if math.isfinite(v) else None
        if isinstance(v, list):
            return [walk(x) for x in v]
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        return v

    return walk(series)


def _clean(v):
    """NaN and infinities (which Python's json reads) become null: JSON.parse refuses them."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, list):
        return [_clean(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    return v


def _inline_script(js: str) -> str:
    # Inside <script>, only `</script` (any case) and `<!--` change how HTML
    # parses the text; neither occurs in the scripts we ship, and this keeps it so.
    if re.search(r"</script|<!--", js, re.IGNORECASE):
        raise ReportError("a script to inline contains </script or <!--")
    return js


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _write(path: Path, payload: dict) -> Path:
    html = render_html(payload)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path
