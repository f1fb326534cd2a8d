"""Made-up but realistic summary.json data (the run directory's schema 1) for
the report's tests: a slow-backend scenario where one backend gets 25 ms
slower in the middle phase, run once per balancer variant, so the variants
differ where they should (least_outstanding moves traffic away from the slow
backend, round_robin does not and fails its share gate).

What the report must cope with is in here on purpose: a backend named
`<img src=x onerror=alert(1)>` (HOSTILE), a description with `</script>`, a
fault event that failed, a missed sample (null) in the series, and the
partial shapes of an interrupted run and of a run that could not start.

Standard library only; deterministic for a given seed. Depends on nothing.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HOSTILE = "<img src=x onerror=alert(1)>"
HOSTILE_TEXT = " </script><b>not bold</b>"  # ends the description
BACKENDS = ["server1", HOSTILE, "server3"]
STRATEGIES = {"round-robin": "round_robin", "least-outstanding": "least_outstanding",
              "weighted-round-robin": "weighted_round_robin"}
RATE = 40.0  # req/s offered in total


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


def phases_for(duration_s: int) -> list[dict]:
    a, b = round(duration_s * 0.25), round(duration_s * 0.75)
    return [{"name": "warm-up", "start_s": 0.0, "end_s": float(a)},
            {"name": "fault", "start_s": float(a), "end_s": float(b)},
            {"name": "recovery", "start_s": float(b), "end_s": float(duration_s)}]


def spec(duration_s: int, variants: list[str]) -> dict:
    ph = phases_for(duration_s)
    return {
        "name": "slow-backend",
        "description": "One of three backends gets 25 ms slower in the middle phase." + HOSTILE_TEXT,
        "backends": BACKENDS,
        "gateway": {},
        "load": {"user": "constant_rate", "path": "/api/data", "rate": RATE,
                 "stages": [{"name": p["name"], "duration": p["end_s"] - p["start_s"], "users": 20, "spawn_rate": 20}
                            for p in ph]},
        "faults": [{"at": ph[1]["start_s"], "backend": HOSTILE, "action": "set", "faults": {"latency": 0.025, "jitter": 0.005}},
                   {"at": ph[1]["start_s"] + 5, "backend": "server3", "action": "set", "faults": {"error_rate": 0.02}},
                   {"at": ph[2]["start_s"], "backend": HOSTILE, "action": "clear"}],
        "variants": [{"name": v, "gateway": {"balancer": {"strategy": STRATEGIES.get(v, "round_robin")}}} for v in variants],
        "gates": gates_spec(),
    }


def gates_spec() -> list[dict]:
    return [{"metric": "p99", "below": 0.05, "phase": "recovery", "source": "client"},
            {"metric": "error_rate", "below": 0.01, "phase": "run", "source": "client"},
            {"metric": "share", "backend": HOSTILE, "phase": "fault", "below": 0.2, "source": "gateway"},
            {"metric": "rps", "above": 5, "phase": "run", "source": "client"}]


def _run(variant: str, duration_s: int, rng: random.Random, stop_at: int | None = None) -> dict:
    strategy = STRATEGIES.get(variant, "round_robin")
    ph = phases_for(duration_s)
    fault_start, fault_end = ph[1]["start_s"], ph[1]["end_s"]
    last = duration_s if stop_at is None else stop_at
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
        failures = (1 if rng.random() < 0.15 else 0) if in_fault and s > fault_start + 5 else 0
        c["rps"].append(rps)
        c["p50_ms"].append(round(0.9 + rng.uniform(0, 0.3) + (0.3 if in_fault and slow_share > 0.3 else 0), 2))
        c["p99_ms"].append(round((27.0 + rng.uniform(0, 3)) if in_fault else 2.5 + rng.uniform(0, 1.5), 2))
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
    series = {"t": t, "client": c, "gateway": g}
    phases = [p for p in ph if p["start_s"] < last]
    figures = {"run": _figures(series, 0, last)}
    for p in phases:
        figures[p["name"]] = _figures(series, p["start_s"], min(p["end_s"], last))
    events = [{"at_s": fault_start, "applied_s": fault_start + 0.018, "backend": HOSTILE, "action": "set",
               "faults": {"latency": "25ms", "jitter": "5ms"}, "ok": True, "error": None},
              {"at_s": fault_start + 5, "applied_s": fault_start + 5.011, "backend": "server3", "action": "set",
               "faults": {"error_rate": 0.02}, "ok": False,
               "error": "PUT /api/faults: 503 from server3 <after 3 tries>"},
              {"at_s": fault_end, "applied_s": fault_end + 0.022, "backend": HOSTILE, "action": "clear",
               "faults": None, "ok": True, "error": None}]
    events = [e for e in events if e["at_s"] <= last]
    gates = _gates(figures, complete=stop_at is None)
    verdict = "interrupted" if stop_at is not None else ("pass" if all(x["pass"] for x in gates) else "fail")
    return {"variant": variant, "verdict": verdict, "error": None, "gateway_settings": settings(strategy),
            "duration_s": float(last), "phases": phases, "fault_events": events, "figures": figures,
            "series": series, "gates": gates,
            "checks": {"client_matches_locust": True, "gateway_matches_stats": stop_at is None}}


def _figures(series: dict, start: float, end: float) -> dict:
    idx = [i for i, s in enumerate(series["t"]) if start < s <= end]
    c, g = series["client"], series["gateway"]
    secs = max(1.0, end - start)
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
                       "p95_ms": p99s[int(len(p99s) * 0.5)], "p99_ms": p99s[int(len(p99s) * 0.9)],
                       "max_ms": round(p99s[-1] * 1.3, 1)},
            "gateway": {"requests": greq, "errors": fail, "error_rate": round(fail / greq, 5) if greq else 0.0,
                        "rps": round(greq / secs, 2), "backends": backends}}


def _gates(figures: dict, complete: bool) -> list[dict]:
    def gate(name, metric, phase, source, op, threshold, unit, value):
        ok = None if value is None else (value < threshold if op == "<" else value > threshold)
        return {"name": name, "metric": metric, "phase": phase, "source": source, "op": op,
                "threshold": threshold, "unit": unit, "value": value, "pass": ok}

    def fig(phase, *path):
        v = figures.get(phase)
        for p in path:
            v = v.get(p) if isinstance(v, dict) else None
        return v

    recovery = fig("recovery", "client", "p99_ms") if complete else None
    return [gate("p99 < 50ms (recovery, client)", "p99", "recovery", "client", "<", 50.0, "ms", recovery),
            gate("error_rate < 0.01 (run, client)", "error_rate", "run", "client", "<", 0.01, "",
                 fig("run", "client", "error_rate")),
            gate(f"share {HOSTILE} < 0.2 (fault, gateway)", "share", "fault", "gateway", "<", 0.2, "",
                 fig("fault", "gateway", "backends", HOSTILE, "share")),
            gate("rps > 5 (run, client)", "rps", "run", "client", ">", 5.0, "req/s", fig("run", "client", "rps"))]


def sample_summary(variants=("round-robin", "least-outstanding"), duration_s: int = 50, seed: int = 1,
                   stop_at: int | None = None) -> dict:
    """A summary of one run per variant (["default"] for none); stop_at cuts it short as Ctrl-C would."""
    rng = random.Random(seed)
    variants = list(variants) or ["default"]
    runs = [_run(v, duration_s, rng, stop_at) for v in variants]
    order = ["error", "interrupted", "fail", "pass"]
    verdict = min((r["verdict"] for r in runs), key=order.index)
    return {"schema": 1,
            "scenario": {"name": "slow-backend", "description": spec(duration_s, [])["description"],
                         "file": "deploy/scenarios/slow-backend.yaml",
                         "spec": spec(duration_s, [v for v in variants if v != "default"])},
            "target": "local", "started_at": "2026-12-05T01:20:00Z",
            "finished_at": "2026-12-05T01:%02d:%02dZ" % divmod(20 * 60 + len(variants) * duration_s, 60),
            "verdict": verdict, "runs": runs}


def error_summary() -> dict:
    """A run that could not be done: an error, no samples, no figures, no gates judged."""
    s = sample_summary(variants=(), duration_s=50)
    run = s["runs"][0]
    run.update(verdict="error", error="gateway did not become ready within 10s (see gateway.log)",
               gateway_settings=None, duration_s=0.0, fault_events=[], figures={},
               series={"t": [], "client": {}, "gateway": {}}, gates=[], checks={})
    s.update(verdict="error", finished_at=s["started_at"])
    return s


def write_run(directory: Path, summary: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return directory


def plain(summary: dict) -> dict:
    """The same summary with ordinary names (server2, no markup), for pictures in the docs."""
    text = json.dumps(summary)
    for hostile, ordinary in ((HOSTILE, "server2"), (HOSTILE_TEXT, "")):
        text = text.replace(json.dumps(hostile)[1:-1], ordinary)
    return json.loads(text)
