"""Figures of a run, for the whole run and each phase, from both sides: the
client's per-second counts and histograms (the locustfile's records) and the
gateway's sampled counter totals; the same per second, for gates judged over
windows; and the per-second series the report draws. Depends on
scenario.histogram and scenario.phases (which also says what belongs to a
phase).
"""

import math

from . import histogram
from .phases import RUN


def stage_at(stages, t):
    """The name of the stage running at `t` (the last one after the end)."""
    for stage in stages:
        if t < stage.end:
            return stage.name
    return stages[-1].name


def _members(phases, middle, run_end):
    return [p.name for p in phases if p.holds(middle, run_end)]


def _spans(phases, elapsed):
    """{phase: seconds of it that ran and count} for the phases that began."""
    spans = {}
    for p in phases:
        if p.name == RUN:
            spans[RUN] = elapsed
        elif p.judged_from < elapsed:
            spans[p.name] = max(0.0, min(p.end, elapsed) - p.judged_from)
    return spans


def _r(value, digits=3):
    return None if value is None else round(value, digits)


def client_figures(phases, seconds, elapsed):
    """{phase: {requests, failures, error_rate, rps, p50_ms, p90_ms, p95_ms, p99_ms, max_ms}}."""
    spans = _spans(phases, elapsed)
    run_end = _run_end(phases)
    acc = {name: {"n": 0, "f": 0, "h": {}, "max": None} for name in spans}
    for rec in seconds:
        for name in _members(phases, rec["t"] + 0.5, run_end):
            a = acc.setdefault(name, {"n": 0, "f": 0, "h": {}, "max": None})
            a["n"] += rec["n"]
            a["f"] += rec["f"]
            histogram.add(a["h"], rec["h"])
            if rec["n"]:
                a["max"] = max(a["max"] or 0.0, rec["max"])
    out = {}
    for name, a in acc.items():
        span = spans.get(name, 0.0)
        out[name] = {
            "requests": a["n"], "failures": a["f"],
            "error_rate": _r(a["f"] / a["n"], 6) if a["n"] else 0.0,
            "rps": _r(a["n"] / span) if span > 0 else None,
            "p50_ms": _r(histogram.quantile(a["h"], 0.50, a["max"])),
            "p90_ms": _r(histogram.quantile(a["h"], 0.90, a["max"])),
            "p95_ms": _r(histogram.quantile(a["h"], 0.95, a["max"])),
            "p99_ms": _r(histogram.quantile(a["h"], 0.99, a["max"])),
            "max_ms": _r(a["max"]),
        }
    return out


def _deltas(samples):
    """[(t0, t1, delta totals)] between consecutive samples."""
    out = []
    for (t0, a), (t1, b) in zip(samples, samples[1:]):
        backends = {}
        for name in set(a["backends"]) | set(b["backends"]):
            x, y = a["backends"].get(name, {}), b["backends"].get(name, {})
            backends[name] = {k: y.get(k, 0) - x.get(k, 0) for k in ("requests", "errors")}
        out.append((t0, t1, {"requests": b["requests"] - a["requests"], "errors": b["errors"] - a["errors"],
                             "backends": backends}))
    return out


def gateway_figures(phases, samples, elapsed, backends):
    """{phase: {requests, errors, error_rate, rps, backends: {name: {requests, share, errors}}}}.
    `backends` are listed even when they got nothing."""
    spans = _spans(phases, elapsed)
    run_end = _run_end(phases)
    acc = {name: {"requests": 0, "errors": 0, "backends": {}} for name in spans}
    for t0, t1, d in _deltas(samples):
        for name in _members(phases, (t0 + t1) / 2, run_end):
            _add_interval(acc.setdefault(name, {"requests": 0, "errors": 0, "backends": {}}), d)
    out = {}
    for name, a in acc.items():
        attempts = sum(v["requests"] for v in a["backends"].values())
        names = list(backends) + sorted(set(a["backends"]) - set(backends))
        span = spans.get(name, 0.0)
        out[name] = {
            "requests": a["requests"], "errors": a["errors"],
            "error_rate": _r(a["errors"] / a["requests"], 6) if a["requests"] else 0.0,
            "rps": _r(a["requests"] / span) if span > 0 else None,
            "backends": {
                b: {"requests": a["backends"].get(b, {}).get("requests", 0),
                    "share": _r(a["backends"].get(b, {}).get("requests", 0) / attempts, 4) if attempts else None,
                    "errors": a["backends"].get(b, {}).get("errors", 0)}
                for b in names
            },
        }
    return out


def backend_figures(phases, own_samples, elapsed):
    """{phase: {backend: {requests, errors, rps}}}: what each backend counted
    itself serving, from its own sampled totals (`own_samples`: {name:
    [(t, totals)]}); a backend never read is left out."""
    spans = _spans(phases, elapsed)
    run_end = _run_end(phases)
    out = {name: {} for name in spans}
    for backend, samples in own_samples.items():
        if not samples:
            continue
        for name in spans:
            out[name][backend] = {"requests": 0, "errors": 0, "rps": None}
        for (t0, a), (t1, b) in zip(samples, samples[1:]):
            for name in _members(phases, (t0 + t1) / 2, run_end):
                if name in out:
                    out[name][backend]["requests"] += b["requests"] - a["requests"]
                    out[name][backend]["errors"] += b["errors"] - a["errors"]
        for name, span in spans.items():
            if span > 0:
                out[name][backend]["rps"] = _r(out[name][backend]["requests"] / span)
    return out


def figures(phases, seconds, samples, elapsed, backends, own_samples=None):
    """summary.json's `figures`: per phase (`run` first), client, gateway and
    the backends' own counts."""
    client = client_figures(phases, seconds, elapsed)
    gateway = gateway_figures(phases, samples, elapsed, backends)
    own = backend_figures(phases, own_samples or {}, elapsed)
    return {p.name: {"client": client.get(p.name), "gateway": gateway.get(p.name), "backends": own.get(p.name, {})}
            for p in phases if p.name in client or p.name in gateway}


def per_second(seconds, samples):
    """{"client": {s: record}, "gateway": {s: interval totals}}: second s holds
    what ended in [s, s+1) on the client and the sampled interval whose
    middle is in it on the gateway (the sampler reads once per second)."""
    client = {rec["t"]: rec for rec in seconds}
    gateway = {}
    for t0, t1, d in _deltas(samples):
        # Two intervals in one second (a late sample) are added up.
        _add_interval(gateway.setdefault(math.floor((t0 + t1) / 2), {"requests": 0, "errors": 0, "backends": {}}), d)
    return {"client": client, "gateway": gateway}


def _add_interval(into, d):
    into["requests"] += d["requests"]
    into["errors"] += d["errors"]
    for b, v in d["backends"].items():
        ib = into["backends"].setdefault(b, {"requests": 0, "errors": 0})
        ib["requests"] += v["requests"]
        ib["errors"] += v["errors"]


def _run_end(phases):
    return next(p.end for p in phases if p.name == RUN)


def series(seconds, samples, backends, elapsed):
    """One point per whole second of the load (t = 1, 2, ... seconds since
    it began); None where a side has nothing for that second. What ends
    after the last whole second (Locust stopping, the final sample) is in
    the figures but not drawn: a part of a second would show as a drop."""
    last = max(1, math.floor(elapsed))
    ts = list(range(1, last + 1))
    pos = {t: i for i, t in enumerate(ts)}
    none = [None] * len(ts)
    client = {k: list(none) for k in ("rps", "p50_ms", "p90_ms", "p99_ms", "failures", "users")}
    for rec in seconds:
        i = pos.get(rec["t"] + 1)
        if i is None:
            continue
        hist = {int(k): v for k, v in rec["h"].items()}
        client["rps"][i] = rec["n"]
        client["failures"][i] = rec["f"]
        client["users"][i] = rec.get("users")
        client["p50_ms"][i] = _r(histogram.quantile(hist, 0.50, rec["max"]))
        client["p90_ms"][i] = _r(histogram.quantile(hist, 0.90, rec["max"]))
        client["p99_ms"][i] = _r(histogram.quantile(hist, 0.99, rec["max"]))
    names = list(backends)
    counts = {"requests": [0] * len(ts), "errors": [0] * len(ts), "span": [0.0] * len(ts)}
    per = {b: [0] * len(ts) for b in names}
    seen = [False] * len(ts)
    for t0, t1, d in _deltas(samples):
        i = pos.get(max(round(t1), 1))
        if i is None:
            continue
        seen[i] = True
        counts["requests"][i] += d["requests"]
        counts["errors"][i] += d["errors"]
        counts["span"][i] += t1 - t0
        for b, v in d["backends"].items():
            if b not in per:
                per[b], names = [0] * len(ts), names + [b]
            per[b][i] += v["requests"]
    gateway = {"rps": list(none), "errors": list(none), "backends": {b: {"rps": list(none), "share": list(none)}
                                                                    for b in names}}
    for i in range(len(ts)):
        if not seen[i]:
            continue
        span = counts["span"][i] or 1.0
        gateway["rps"][i] = _r(counts["requests"][i] / span)
        gateway["errors"][i] = counts["errors"][i]
        attempts = sum(per[b][i] for b in names)
        for b in names:
            gateway["backends"][b]["rps"][i] = _r(per[b][i] / span)
            gateway["backends"][b]["share"][i] = _r(per[b][i] / attempts, 4) if attempts else None
    return {"t": ts, "client": client, "gateway": gateway}
