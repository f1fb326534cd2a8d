"""Made-up but realistic summary.json data (the run directory's schema 1) for
the report's tests: a slow-backend scenario where one backend gets 25 ms
slower in the middle of the load, run once per balancer variant, so the
variants differ where they should (least_outstanding moves traffic away from
the slow backend, round_robin does not and fails its share gate).

The phases are as the runner lists them: `run`, two stages, and baseline /
fault / recovery made from the fault events, each judged after a 2 s settle
time. The gates cover every kind of result: whole-phase gates, a windowed
gate with `for` and `abort_on_fail`, a relative gate with its baseline
figure, one without (threshold null), and gates with no chart (error_rate,
requests). `aborted_summary` has a run stopped by its abort_on_fail gate,
`comparison` the compare command's table of two summaries, `old_format` a
summary as written before phases had kinds.

What the report must cope with is in here on purpose: a backend named
`<img src=x onerror=alert(1)>` (HOSTILE, so in a gate's text too), a stage
named with markup (HOSTILE_STAGE), a description with `</script>`, a fault
event that failed, a missed sample (null) in the series, and the partial
shapes of an interrupted run and of a run that could not start.

Standard library only; deterministic for a given seed. Depends on nothing.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

HOSTILE = "<img src=x onerror=alert(1)>"
HOSTILE_TEXT = " </script><b>not bold</b>"  # ends the description
HOSTILE_STAGE = "ramp <b onmouseover=alert(1)>up</b>"
BACKENDS = ["server1", HOSTILE, "server3"]
STRATEGIES = {"round-robin": "round_robin", "least-outstanding": "least_outstanding",
              "weighted-round-robin": "weighted_round_robin"}
RATE = 40.0  # req/s offered in total
SETTLE = 2.0
BASELINE_P90 = 3.5  # the baseline run's p90 (baseline, client), for the relative gate
WINDOW, FOR = 5, 2  # the windowed gate: every 5 s window, failing after 2 in a row
LAG_S = 2  # the runner judges a second this long after it ended


def settings(strategy: str) -> dict:
    """The parts of `gateway --print-config` a reader looks at, as that prints them."""
    return {
        "listen": {"host": "127.0.0.1", "port": 41237},
        "workers": 2,
        "balancer": {"strategy": strategy},
        "upstream": {"connect_timeout": "2s", "request_timeout": "30s", "pool_idle_timeout": "30s",
                     "pool_max_idle_per_host": 1024, "body_idle_timeout": "30s"},
        "servers": [],
        "admin": {"token": "<redacted>", "max_body_bytes": 65536, "allowed_hosts": ["localhost", "*"]},
        "health_check": {"enabled": True, "path": "/healthz", "interval": "1s", "timeout": "500ms",
                         "healthy_threshold": 1, "unhealthy_threshold": 2},
        "outlier": {"enabled": True, "consecutive_failures": 3, "count_5xx": False,
                    "base_ejection_time": "5s", "max_ejection_time": "1m", "max_ejection_percent": 50},
        "retry": {"max_attempts": 3, "per_try_timeout": "10s"},
    }


def times(duration_s: int) -> dict:
    """When things happen: the stage boundary, the slow backend's fault, the
    error fault on server3 (5 s long, from 5 s into the fault) and when the
    last fault is over. Needs duration_s >= 20 for that to end before the clear."""
    a, b = round(duration_s * 0.25), round(duration_s * 0.75)
    return {"stage": float(a), "fault_start": float(a), "fault_end": float(b), "errors_at": a + 5.0,
            "over": float(max(b, a + 10))}


def phases_for(duration_s: int) -> list[dict]:
    """As the runner lists them: run, the stages, then baseline, fault, recovery."""
    t, d = times(duration_s), float(duration_s)

    def phase(name, kind, start, end):
        return {"name": name, "kind": kind, "start_s": start, "end_s": end,
                "judged_from_s": start + (0.0 if kind == "run" else SETTLE)}

    out = [phase("run", "run", 0.0, d), phase(HOSTILE_STAGE, "stage", 0.0, t["stage"]),
           phase("steady", "stage", t["stage"], d), phase("baseline", "faults", 0.0, t["fault_start"]),
           phase("fault", "faults", t["fault_start"], t["over"])]
    if t["over"] < d:
        out.append(phase("recovery", "faults", t["over"], d))
    return out


def spec(duration_s: int, variants: list[str]) -> dict:
    t = times(duration_s)
    return {
        "name": "slow-backend",
        "description": "One of three backends gets 25 ms slower in the middle of the load." + HOSTILE_TEXT,
        "backends": BACKENDS,
        "gateway": {},
        "settle": SETTLE,
        "load": {"user": "constant_rate", "path": "/api/data", "rate": RATE,
                 "stages": [{"name": HOSTILE_STAGE, "duration": t["stage"], "users": 20, "spawn_rate": 20},
                            {"name": "steady", "duration": duration_s - t["stage"], "users": 20, "spawn_rate": 20}]},
        "faults": [{"at": t["fault_start"], "backend": HOSTILE, "action": "set", "faults": {"latency": 0.025, "jitter": 0.005}},
                   {"at": t["errors_at"], "backend": "server3", "action": "set",
                    "faults": {"error_rate": 0.02, "duration": "5000ms"}},
                   {"at": t["fault_end"], "backend": HOSTILE, "action": "clear"}],
        "variants": [{"name": v, "gateway": {"balancer": {"strategy": STRATEGIES.get(v, "round_robin")}}} for v in variants],
        "gates": ["p99 < 50ms", "error_rate < 1%", f"share({HOSTILE}) < 20%", "rps > 5", "requests >= 100",
                  {"gate": "p99 < 40ms", "phase": "fault", "window": f"{WINDOW}s", "for": f"{FOR}s", "abort_on_fail": True},
                  {"gate": "p90 <= baseline + 10%", "phase": "baseline"}],
    }


def _series(variant: str, duration_s: int, rng: random.Random, last: int, extra_ms: float) -> dict:
    strategy = STRATEGIES.get(variant, "round_robin")
    tm = times(duration_s)
    fault_start, fault_end = tm["fault_start"], tm["fault_end"]
    t = list(range(1, last + 1))
    c = {"rps": [], "p50_ms": [], "p99_ms": [], "failures": [], "users": []}
    g = {"rps": [], "errors": [], "backends": {b: {"rps": [], "share": []} for b in BACKENDS}}
    for s in t:
        in_fault = fault_start < s <= fault_end
        slow_share = (0.08 if strategy == "least_outstanding" else 1 / 3) if in_fault else 1 / 3
        rps = round(RATE * min(1.0, s / 3) + rng.uniform(-1.5, 1.5), 1)
        shares = [(1 - slow_share) / 2, slow_share, (1 - slow_share) / 2]
        shares = [max(0.0, x + rng.uniform(-0.02, 0.02)) for x in shares]
        total = sum(shares)
        shares = [x / total for x in shares]
        failures = (1 if rng.random() < 0.15 else 0) if tm["errors_at"] < s <= tm["errors_at"] + 5 else 0
        c["rps"].append(rps)
        c["p50_ms"].append(round(0.9 + rng.uniform(0, 0.3) + (0.3 if in_fault and slow_share > 0.3 else 0) + extra_ms / 4, 2))
        c["p99_ms"].append(round((27.0 + rng.uniform(0, 3)) if in_fault else 2.5 + rng.uniform(0, 1.5), 2) + extra_ms)
        c["failures"].append(failures)
        c["users"].append(20)
        g["rps"].append(round(rps + rng.uniform(-0.4, 0.4), 1))
        g["errors"].append(failures)
        for name, share in zip(BACKENDS, shares):
            g["backends"][name]["rps"].append(round(rps * share, 2))
            g["backends"][name]["share"].append(round(share, 4))
    if len(t) > 12:  # one missed sample: the page must draw a gap, not fail
        c["p99_ms"][11] = None
        g["backends"]["server3"]["share"][11] = None
    return {"t": t, "client": c, "gateway": g}


def _events(duration_s: int, last: float) -> list[dict]:
    tm = times(duration_s)
    events = [{"at_s": tm["fault_start"], "applied_s": tm["fault_start"] + 0.018, "backend": HOSTILE, "action": "set",
               "faults": {"latency": "25ms", "jitter": "5ms"}, "ok": True, "error": None},
              {"at_s": tm["errors_at"], "applied_s": tm["errors_at"] + 0.011, "backend": "server3", "action": "set",
               "faults": {"error_rate": 0.02, "duration": "5000ms"}, "ok": False,
               "error": "PUT /api/faults: 503 from server3 <after 3 tries>"},
              {"at_s": tm["fault_end"], "applied_s": tm["fault_end"] + 0.022, "backend": HOSTILE, "action": "clear",
               "faults": None, "ok": True, "error": None}]
    return [e for e in events if e["at_s"] <= last]


def _run(variant: str, duration_s: int, seed_rng: random.Random, stop_at: int | None = None, extra_ms: float = 0.0,
         abort_ms: float | None = None) -> dict:
    """One run's entry. abort_ms makes the windowed gate abort_on_fail at that
    threshold stop the run where its windows first breach FOR seconds in a row."""
    state = seed_rng.getstate()
    last = duration_s if stop_at is None else stop_at
    series = _series(variant, duration_s, seed_rng, last, extra_ms)
    phases = phases_for(duration_s)
    aborted = None
    if abort_ms is not None:
        at = _abort_second(series, phases, abort_ms)
        if at is not None and at < last:
            seed_rng.setstate(state)  # the same seconds, cut where the runner stopped
            last = at
            series = _series(variant, duration_s, seed_rng, last, extra_ms)
            aborted = at
    figures = {p["name"]: _figures(series, p, last) for p in phases if p["judged_from_s"] < last or p["kind"] == "run"}
    gates = _gates(variant, figures, series, phases, abort_ms if abort_ms is not None else 40.0)
    if aborted is not None:
        verdict = "aborted"
    elif stop_at is not None:
        verdict = "interrupted"
    else:
        verdict = "pass" if all(x["pass"] for x in gates) else "fail"
    entry = {"variant": variant, "verdict": verdict, "error": None,
             "gateway_settings": settings(STRATEGIES.get(variant, "round_robin")), "duration_s": float(last),
             "phases": phases, "fault_events": _events(duration_s, last), "figures": figures, "series": series,
             "gates": gates, "checks": {"client_matches_locust": True, "gateway_matches_stats": stop_at is None}}
    if aborted is not None:
        name = _windowed_name(abort_ms)
        entry["error"] = f"{name} failed at {aborted:.0f}s (abort_on_fail)"
        entry["aborted_by"] = {"gate": name, "at_s": float(aborted)}
    return entry


def _seconds_of(series: dict, phase: dict, last: float) -> list[int]:
    """Indexes of the seconds (t in (from, end]) that a phase's figures hold."""
    end = min(phase["end_s"], last)
    return [i for i, s in enumerate(series["t"]) if phase["judged_from_s"] < s <= end]


def _figures(series: dict, phase: dict, last: float) -> dict:
    idx = _seconds_of(series, phase, last)
    c, g = series["client"], series["gateway"]
    secs = max(1.0, min(phase["end_s"], last) - phase["judged_from_s"])
    req = round(sum(c["rps"][i] for i in idx))
    fail = sum(c["failures"][i] for i in idx)
    p99s = sorted(x for x in (c["p99_ms"][i] for i in idx) if x is not None) or [0.0]
    p50s = sorted(c["p50_ms"][i] for i in idx) or [0.0]
    greq = round(sum(g["rps"][i] for i in idx))
    backends = {}
    for name, b in g["backends"].items():
        n = round(sum(b["rps"][i] for i in idx))
        backends[name] = {"requests": n, "share": round(n / greq, 4) if greq else 0.0,
                          "errors": fail if name == "server3" else 0}
    return {"client": {"requests": req, "failures": fail, "error_rate": round(fail / req, 5) if req else 0.0,
                       "rps": round(req / secs, 2), "p50_ms": p50s[len(p50s) // 2],
                       "p90_ms": p99s[int(len(p99s) * 0.4)], "p95_ms": p99s[int(len(p99s) * 0.5)], "p99_ms": p99s[int(len(p99s) * 0.9)],
                       "max_ms": round(p99s[-1] * 1.3, 1)},
            "gateway": {"requests": greq, "errors": fail, "error_rate": round(fail / greq, 5) if greq else 0.0,
                        "rps": round(greq / secs, 2), "backends": backends}}


def _windows(series: dict, phase: dict, threshold: float):
    """(worst window p99, windows judged, longest breach, first second breached FOR in a row) for the windowed gate."""
    p99 = series["client"]["p99_ms"]
    idx = _seconds_of(series, phase, series["t"][-1] if series["t"] else 0)
    worst, judged, current, longest, tripped = None, 0, 0, 0, None
    for k in range(0, len(idx) - WINDOW + 1):
        values = [p99[i] for i in idx[k:k + WINDOW] if p99[i] is not None]
        if not values:
            current = 0
            continue
        figure = max(values)
        judged += 1
        worst = figure if worst is None else max(worst, figure)
        current = current + 1 if figure >= threshold else 0
        longest = max(longest, current)
        if tripped is None and current >= FOR:
            tripped = series["t"][idx[k + WINDOW - 1]]
    return worst, judged, longest, tripped


def _abort_second(series: dict, phases: list[dict], threshold: float) -> int | None:
    fault = next(p for p in phases if p["name"] == "fault")
    tripped = _windows(series, fault, threshold)[3]
    return None if tripped is None else int(tripped) + LAG_S


def _windowed_name(threshold_ms: float) -> str:
    return f"p99 < {threshold_ms:g}ms (fault, client, {WINDOW}s windows, for {FOR}s)"


def _gates(variant: str, figures: dict, series: dict, phases: list[dict], windowed_ms: float) -> list[dict]:
    def fig(phase, *path):
        v = figures.get(phase)
        for p in path:
            v = v.get(p) if isinstance(v, dict) else None
        return v

    def gate(text, metric, phase, op, threshold, threshold_text, unit, value, source="client", backend=None,
             baseline=None, **windowed):
        ok = value is not None and threshold is not None and {
            "<": value < threshold, "<=": value <= threshold, ">": value > threshold, ">=": value >= threshold}[op]
        where = ", ".join([phase, source] + ([f"{WINDOW}s windows", f"for {FOR}s"] if windowed else []))
        out = {"name": f"{text} ({where})", "gate": text, "metric": metric, "backend": backend, "phase": phase,
               "source": source, "op": op, "threshold": threshold, "threshold_text": threshold_text, "unit": unit,
               "window_s": float(WINDOW) if windowed else None, "for_s": float(FOR) if windowed else None,
               "abort_on_fail": bool(windowed), "baseline": baseline, "value": value, "pass": ok}
        out.update(windowed)
        if value is None:
            out["reason"] = "the baseline run has no figure for this gate" if threshold is None else "nothing measured"
        return out

    fault = next(p for p in phases if p["name"] == "fault")
    worst, judged, longest, _ = _windows(series, fault, windowed_ms)
    gates = [gate("p99 < 50ms", "p99", "recovery", "<", 50.0, "50ms", "ms", fig("recovery", "client", "p99_ms")),
             gate("error_rate < 1%", "error_rate", "run", "<", 0.01, "1%", "ratio", fig("run", "client", "error_rate")),
             gate(f"share({HOSTILE}) < 20%", "share", "fault", "<", 0.2, "20%", "ratio",
                  fig("fault", "gateway", "backends", HOSTILE, "share"), source="gateway", backend=HOSTILE),
             gate("rps > 5", "rps", "run", ">", 5.0, "5", "req/s", fig("run", "client", "rps")),
             gate("requests >= 100", "requests", "run", ">=", 100.0, "100", "requests", fig("run", "client", "requests")),
             gate(f"p99 < {windowed_ms:g}ms", "p99", "fault", "<", windowed_ms, f"{windowed_ms:g}ms", "ms", worst,
                  windows=judged, breached_s=longest),
             gate("p90 <= baseline + 10%", "p90", "baseline", "<=", round(BASELINE_P90 * 1.1, 3), "baseline + 10%", "ms",
                  fig("baseline", "client", "p90_ms"), baseline=BASELINE_P90)]
    gates[5]["pass"] = judged > 0 and longest < FOR
    if variant == "weighted-round-robin":  # its own gate, relative to a baseline run that lacks it
        gates.append(gate("p50 < baseline", "p50", "steady", "<", None, "baseline", "ms", None))
    return gates


def sample_summary(variants=("round-robin", "least-outstanding"), duration_s: int = 50, seed: int = 1,
                   stop_at: int | None = None, extra_ms: float = 0.0) -> dict:
    """A summary of one run per variant (["default"] for none); stop_at cuts it
    short as Ctrl-C would; extra_ms makes every request that much slower."""
    rng = random.Random(seed)
    variants = list(variants) or ["default"]
    runs = [_run(v, duration_s, rng, stop_at, extra_ms) for v in variants]
    return _summary(runs, variants, duration_s)


def _summary(runs: list[dict], variants: list[str], duration_s: int) -> dict:
    order = ["interrupted", "error", "aborted", "fail", "pass"]
    verdict = min((r["verdict"] for r in runs), key=order.index)
    return {"schema": 1,
            "scenario": {"name": "slow-backend", "description": spec(duration_s, [])["description"],
                         "file": "deploy/scenarios/slow-backend.yaml",
                         "spec": spec(duration_s, [v for v in variants if v != "default"])},
            "target": "local", "started_at": "2026-12-05T01:20:00Z",
            "finished_at": "2026-12-05T01:%02d:%02dZ" % divmod(20 * 60 + len(variants) * duration_s, 60),
            "verdict": verdict, "runs": runs}


def aborted_summary(duration_s: int = 50, seed: int = 1, threshold_ms: float = 20.0) -> dict:
    """One run stopped by its abort_on_fail gate (p99 < 20ms over 5 s windows
    in the fault phase, which the slow backend breaches)."""
    run = _run("default", duration_s, random.Random(seed), abort_ms=threshold_ms)
    assert run["verdict"] == "aborted", "the sample's fault must trip the gate"
    return _summary([run], ["default"], duration_s)


def error_summary() -> dict:
    """A run that could not be done: an error, no samples, no figures, no gates judged."""
    s = sample_summary(variants=(), duration_s=50)
    run = s["runs"][0]
    run.update(verdict="error", error="gateway did not become ready within 10s (see gateway.log)",
               gateway_settings=None, duration_s=0.0, fault_events=[], figures={},
               series={"t": [], "client": {}, "gateway": {}}, gates=[], checks={})
    s.update(verdict="error", finished_at=s["started_at"])
    return s


def comparison(a: dict, b: dict, tolerance: float = 0.1) -> dict:
    """The compare command's table of B against A ({tolerance, rows}), rows
    made as scenario.baseline.compare makes them: per variant both have, the
    client's figures per phase both have and every gate both have."""
    rows = []
    runs_b = {r["variant"]: r for r in b["runs"]}
    for ra in a["runs"]:
        rb = runs_b.get(ra["variant"])
        if rb is None:
            continue
        for phase in [p for p in ra["figures"] if p in rb["figures"]]:
            ca, cb = ra["figures"][phase]["client"], rb["figures"][phase]["client"]
            for key, unit, lower in (("p50_ms", "ms", True), ("p95_ms", "ms", True), ("p99_ms", "ms", True),
                                     ("error_rate", "ratio", True), ("rps", "req/s", None)):
                rows.append(_row(ra["variant"], f"{key.removesuffix('_ms')} ({phase}, client)", ca.get(key), cb.get(key),
                                 unit, lower, tolerance))
        gates_b = {g["name"]: g for g in rb["gates"]}
        for g in ra["gates"]:
            if g["name"] in gates_b:
                rows.append(_row(ra["variant"], f"gate {g['name']}", g["value"], gates_b[g["name"]]["value"], g["unit"],
                                 g["op"] in ("<", "<="), tolerance))
    return {"tolerance": tolerance, "rows": rows}


def _row(variant, what, a, b, unit, lower_is_better, tolerance):
    row = {"variant": variant, "what": what, "a": a, "b": b, "unit": unit, "change": None}
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
        return dict(row, verdict="missing")
    row["change"] = (b - a) / a if a else None
    noise = max(tolerance * abs(a), 0.001 if unit == "ratio" else 0.0)
    if abs(b - a) <= noise:
        return dict(row, verdict="same")
    if lower_is_better is None:
        return dict(row, verdict="changed")
    return dict(row, verdict="worse" if (b > a) == lower_is_better else "better")


def old_format(summary: dict) -> dict:
    """The summary as written before phases had kinds: stages only (no `run`
    phase, none made from the faults), figures for the run and the stages,
    gates with name, threshold, unit and result only (ratios without a unit;
    no windowed or relative gates). Gates on the fault-made phases stay, with
    no figure: a page must cope with a gate on a phase it cannot place."""
    s = copy.deepcopy(summary)
    for run in s["runs"]:
        stages = [p for p in run["phases"] if p["kind"] == "stage"]
        run["phases"] = [{"name": p["name"], "start_s": p["start_s"], "end_s": p["end_s"]} for p in stages]
        keep = {"run"} | {p["name"] for p in stages}
        run["figures"] = {k: v for k, v in run["figures"].items() if k in keep}
        run["gates"] = [{"name": g["name"], "metric": g["metric"], "phase": g["phase"], "source": g["source"],
                         "op": g["op"], "threshold": g["threshold"], "unit": "" if g["unit"] == "ratio" else g["unit"],
                         "value": g["value"] if g["phase"] in keep else None,
                         "pass": g["pass"] if g["phase"] in keep else None}
                        for g in run["gates"] if g["window_s"] is None and g["baseline"] is None and g["threshold"] is not None]
        run.pop("aborted_by", None)
    return s


def write_run(directory: Path, summary: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return directory


def plain(summary: dict) -> dict:
    """The same summary with ordinary names (server2, no markup), for pictures in the docs."""
    text = json.dumps(summary)
    for hostile, ordinary in ((HOSTILE, "server2"), (HOSTILE_TEXT, ""), (HOSTILE_STAGE, "ramp-up")):
        text = text.replace(json.dumps(hostile)[1:-1], ordinary)
    return json.loads(text)
