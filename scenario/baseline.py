"""Earlier runs as a yardstick: the figures a relative gate (`p99 <
baseline + 10%`) is judged against, and the comparison of two runs with a
noise tolerance (`compare --tolerance`). Reads summary.json files only.
Depends on scenario.judge (how figures are shown).

A baseline gate's figure is the same gate's in the baseline run (same metric,
backend, phase, source, window and `for`), in the run of the same variant,
or the baseline's only run. The comparison takes, per variant both runs
have, the client's figures for the whole run and each phase both have, and
every gate both have; a change within the tolerance (or within 0.1
percentage point for ratios, 0.5 ms for latencies) is noise.
"""

import json
import math
from pathlib import Path

from .judge import show

LOWER_IS_BETTER = {"p50_ms": "ms", "p90_ms": "ms", "p95_ms": "ms", "p99_ms": "ms", "error_rate": "ratio"}
NEUTRAL = {"rps": "req/s"}
RATIO_FLOOR = 0.001  # ratios closer than 0.1 percentage point are the same
# Latencies closer than this are the same: sub-millisecond figures move by
# more than 20% between two runs of the same code on a shared machine.
LATENCY_FLOOR_MS = 0.5


class BaselineError(ValueError):
    """A baseline run that cannot be used: one line naming the file."""


def read_summary(run_dir):
    path = Path(run_dir) / "summary.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise BaselineError(f"{path}: cannot read it: {e.strerror or e}") from None
    except ValueError as e:
        raise BaselineError(f"{path}: not JSON: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list) or not data["runs"]:
        raise BaselineError(f"{path}: holds no runs")
    return data


def _run_for(summary, variant):
    runs = [r for r in summary["runs"] if isinstance(r, dict)]
    same = [r for r in runs if r.get("variant") == variant]
    return same[0] if same else runs[0] if len(runs) == 1 else None


def _key(metric, backend, phase, source, window, for_s):
    return (metric, backend, phase, source, window, for_s)


def gate_figures(summary, scenario, variants):
    """{variant: {gate index: the baseline's figure or None}} for the scenario's
    relative gates; BaselineError when a variant has no run to compare with."""
    out = {}
    for variant in variants:
        run = _run_for(summary, variant)
        if run is None:
            names = ", ".join(str(r.get("variant")) for r in summary["runs"] if isinstance(r, dict))
            raise BaselineError(f"the baseline has no run of variant {variant} (it has {names})")
        theirs = {}
        for g in _list(run.get("gates")):
            if isinstance(g, dict) and _number(g.get("value")):
                theirs[_key(g.get("metric"), g.get("backend"), g.get("phase"), g.get("source"), g.get("window_s"),
                            g.get("for_s"))] = g["value"]
        out[variant] = {i: theirs.get(g.figure_key) for i, g in enumerate(scenario.gates_for(variant))
                        if g.relative}
    return out


def compare(summary_a, summary_b, tolerance):
    """Rows {variant, what, a, b, unit, change, verdict}: verdict is `worse`,
    `better`, `changed` (a figure with no better side moved beyond the
    tolerance) or `same`; `missing` when one run lacks the figure."""
    rows = []
    variants_b = {str(r.get("variant")): r for r in summary_b["runs"] if isinstance(r, dict)}
    for run_a in summary_a["runs"]:
        if not isinstance(run_a, dict) or str(run_a.get("variant")) not in variants_b:
            continue
        variant = str(run_a.get("variant"))
        run_b = variants_b[variant]
        fa, fb = _dict(run_a.get("figures")), _dict(run_b.get("figures"))
        for phase in [p for p in fa if p in fb]:
            ca, cb = _dict(_dict(fa[phase]).get("client")), _dict(_dict(fb[phase]).get("client"))
            for key, unit in {**LOWER_IS_BETTER, **NEUTRAL}.items():
                rows.append(_row(variant, f"{key.removesuffix('_ms')} ({phase}, client)", ca.get(key), cb.get(key),
                                 unit, key in LOWER_IS_BETTER, tolerance))
        gates_b = {g["name"]: g for g in _list(run_b.get("gates"))
                   if isinstance(g, dict) and isinstance(g.get("name"), str)}
        for g in _list(run_a.get("gates")):
            if isinstance(g, dict) and isinstance(g.get("name"), str) and g["name"] in gates_b:
                lower = g.get("op") in ("<", "<=")
                unit = g.get("unit") if g.get("unit") in ("ms", "ratio", "req/s", "requests") else "requests"
                rows.append(_row(variant, f"gate {g['name']}", g.get("value"), gates_b[g["name"]].get("value"),
                                 unit, lower, tolerance, sided=True))
    return rows


def _number(v):
    """A finite number: summary.json is read with json.loads, which takes NaN
    and Infinity, and an Infinity baseline would pass every `<` gate."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _dict(v):
    return v if isinstance(v, dict) else {}


def _list(v):
    return v if isinstance(v, list) else []


def _row(variant, what, a, b, unit, lower_is_better, tolerance, sided=False):
    row = {"variant": variant, "what": what, "a": a, "b": b, "unit": unit, "change": None}
    if not _number(a) or not _number(b):
        row["verdict"] = "missing"
        return row
    row["change"] = (b - a) / a if a else None
    noise = tolerance * abs(a)
    if unit == "ratio":
        noise = max(noise, RATIO_FLOOR)
    elif unit == "ms":
        noise = max(noise, LATENCY_FLOOR_MS)
    if abs(b - a) <= noise:
        row["verdict"] = "same"
    elif unit == "req/s" and not sided:
        row["verdict"] = "changed"
    else:
        row["verdict"] = "worse" if (b > a) == lower_is_better else "better"
    return row


def row_line(row):
    """`worse  [default] p99 (run, client): 12.1 ms -> 15.0 ms (+24%)`."""
    def fig(v):
        return "-" if not isinstance(v, (int, float)) else show(v, row["unit"])
    change = f" ({row['change'] * 100:+.0f}%)" if row["change"] is not None else ""
    return f"{row['verdict']:<7} [{row['variant']}] {row['what']}: {fig(row['a'])} -> {fig(row['b'])}{change}"
