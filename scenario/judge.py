"""Judging gates: each gate against the run's figures, as summary.json holds
them (name, figure, threshold, pass, and for windowed gates the longest
breach), and while the run goes, whether an `abort_on_fail` gate can no
longer pass. Depends on scenario.histogram and scenario.phases; the gates
come from scenario.gates, the figures from scenario.figures.

A gate without a window is judged on its phase's figure. A gate with a
`window` is judged on every window of that many whole seconds inside its
phase (sliding by one second): its figure is the worst window's, and it
fails when any window breaches or, with `for`, when windows breach that many
seconds in a row. A gate with no figure at all (no requests in its phase or
in any of its windows) fails: it proves nothing.
"""

from . import histogram

FIGURE_KEYS = {"p50": "p50_ms", "p90": "p90_ms", "p95": "p95_ms", "p99": "p99_ms", "max": "max_ms",
               "error_rate": "error_rate", "rps": "rps", "requests": "requests"}
QUANTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99}
LAG_S = 2  # a second's figures are complete this long after it ended (the locustfile writes them once a second)


def phase_figure(gate, figures):
    """The gate's figure over its whole phase, or None."""
    side = (figures.get(gate.phase) or {}).get(gate.source)
    if not side:
        return None
    if gate.metric == "share":
        return (side.get("backends", {}).get(gate.backend) or {}).get("share")
    if not side.get("requests"):  # `requests < 5` or `rps < 100` over nothing proves nothing either
        return None
    return side.get(FIGURE_KEYS[gate.metric])


def phase_seconds(phase, run_end, last_second):
    """The whole seconds (0, 1, ...) that belong to `phase`, up to last_second."""
    return [s for s in range(0, last_second + 1) if phase.holds(s + 0.5, run_end)]


def window_figure(gate, seconds, per_second):
    """The gate's figure over the given seconds (one window), or None."""
    recs = [per_second[gate.source].get(s) for s in seconds]
    recs = [r for r in recs if r]
    if gate.source == "client":
        n, f = sum(r["n"] for r in recs), sum(r["f"] for r in recs)
        if gate.metric == "requests":
            return n
        if gate.metric == "rps":
            return n / len(seconds)
        if not n:
            return None
        if gate.metric == "error_rate":
            return f / n
        top = max(r["max"] for r in recs if r["n"])
        if gate.metric == "max":
            return top
        hist = {}
        for r in recs:
            histogram.add(hist, r["h"])
        return histogram.quantile(hist, QUANTILES[gate.metric], top)
    n, errors = sum(r["requests"] for r in recs), sum(r["errors"] for r in recs)
    if gate.metric == "requests":
        return n
    if gate.metric == "rps":
        return n / len(seconds)
    if gate.metric == "error_rate":
        return errors / n if n else None
    attempts = sum(v["requests"] for r in recs for v in r["backends"].values())
    mine = sum(r["backends"].get(gate.backend, {}).get("requests", 0) for r in recs)
    return mine / attempts if attempts else None


def _requests_in(gate, seconds, per_second):
    """Requests the gate's side saw over these seconds."""
    key = "n" if gate.source == "client" else "requests"
    return sum((per_second[gate.source].get(s) or {}).get(key, 0) for s in seconds)


def windows(gate, phase_secs):
    """Each window of the gate over the phase's seconds, in order."""
    size = int(gate.window)
    return [phase_secs[i:i + size] for i in range(0, len(phase_secs) - size + 1)]


def worse(gate, a, b):
    """The worse of two figures for this gate (the one further on the failing side)."""
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b) if gate.op in ("<", "<=") else min(a, b)


class Streak:
    """Windows judged in order: the worst figure, and the longest run of breaches."""

    def __init__(self):
        self.value, self.current, self.longest, self.judged = None, 0, 0, 0

    def add(self, gate, figure, threshold):
        if figure is None:
            self.current = 0
            return
        self.judged += 1
        self.value = worse(gate, self.value, figure)
        self.current = self.current + 1 if gate.breached_by(figure, threshold) else 0
        self.longest = max(self.longest, self.current)

    def failed(self, gate):
        return self.longest >= (int(gate.for_s) if gate.for_s else 1)


def evaluate(gates, figures, per_second, phases, run_end, baselines=None):
    """One result per gate; `baselines` maps a gate's index to its baseline figure."""
    baselines = baselines or {}
    by_name = {p.name: p for p in phases}
    last = max(list(per_second["client"]) + list(per_second["gateway"]) + [0])
    results = []
    for i, gate in enumerate(gates):
        threshold, baseline = resolve(gate, baselines.get(i))
        result = {"name": gate.name, "gate": gate.text, "metric": gate.metric, "backend": gate.backend,
                  "phase": gate.phase, "source": gate.source, "op": gate.op, "threshold": threshold,
                  "threshold_text": gate.threshold_text, "unit": gate.unit, "window_s": gate.window,
                  "for_s": gate.for_s, "abort_on_fail": gate.abort_on_fail, "baseline": baseline}
        if gate.relative and baseline is None:
            result.update(value=None, pass_=False, reason="the baseline run has no figure for this gate")
        elif gate.window:
            streak = Streak()
            secs = phase_seconds(by_name[gate.phase], run_end, last)
            for window in windows(gate, secs):
                streak.add(gate, window_figure(gate, window, per_second), threshold)
            if not _requests_in(gate, secs, per_second):  # every window empty: no figure, as for the phase
                streak = Streak()
            result.update(value=streak.value, windows=streak.judged, breached_s=streak.longest,
                          pass_=streak.judged > 0 and not streak.failed(gate))
        else:
            value = phase_figure(gate, figures)
            result.update(value=value, pass_=value is not None and gate.passes(value, threshold))
        result["pass"] = result.pop("pass_")
        if result["value"] is None and "reason" not in result:
            result["reason"] = "nothing measured"
        results.append(result)
    return results


def resolve(gate, baseline):
    """(threshold, baseline figure) for a gate; relative gates scale the baseline's."""
    if not gate.relative:
        return gate.threshold, None
    if baseline is None:
        return None, None
    return baseline * (1.0 + gate.baseline_change), baseline


class AbortWatch:
    """While the load runs, the `abort_on_fail` gates that can no longer pass:
    a windowed gate as soon as its windows breach (for `for` in a row); a
    whole-phase gate once its phase is over. Judges each window once."""

    def __init__(self, gates, phases, run_end, baselines=None):
        self.phases = {p.name: p for p in phases}
        self.run_end = run_end
        self.watched = [(i, g, resolve(g, (baselines or {}).get(i))[0]) for i, g in enumerate(gates)
                        if g.abort_on_fail]
        self.streaks = {i: Streak() for i, _, _ in self.watched}
        self.next_window = {i: 0 for i, _, _ in self.watched}

    def failed(self, now, per_second, figures_of):
        """The first watched gate that has failed by `now`, or None.
        `figures_of(phase)` gives the figures so far (only called once a
        phase is over)."""
        complete = int(now) - LAG_S  # the last second whose figures are in
        for i, gate, threshold in self.watched:
            if threshold is None or self.next_window[i] is None:
                continue
            phase = self.phases[gate.phase]
            if gate.window:
                secs = phase_seconds(phase, self.run_end, complete)
                all_windows = windows(gate, secs)
                for secs_w in all_windows[self.next_window[i]:]:
                    self.streaks[i].add(gate, window_figure(gate, secs_w, per_second), threshold)
                self.next_window[i] = len(all_windows)
                if self.streaks[i].failed(gate):
                    return gate
            elif phase.end < self.run_end and complete >= phase.end:
                self.next_window[i] = None  # judged once, when the phase is over
                value = phase_figure(gate, figures_of(phase))
                if value is None or not gate.passes(value, threshold):
                    return gate
        return None


def result_line(result):
    """`FAIL p99 < 50ms (recovery, client): 83.2 ms`, or `pass ...`."""
    value = result["value"]
    if value is None:
        shown = f"no figure ({result.get('reason', 'nothing measured')})"
    else:
        shown = show(value, result["unit"])
        if result.get("baseline") is not None:
            shown += f" (baseline {show(result['baseline'], result['unit'])}, limit {show(result['threshold'], result['unit'])})"
        if result.get("window_s"):
            shown += f", worst of {result.get('windows', 0)} windows, longest breach {result.get('breached_s', 0)}s"
    return f"{'pass' if result['pass'] else 'FAIL'} {result['name']}: {shown}"


def show(value, unit):
    if unit == "ms":
        return f"{value:.1f} ms"
    if unit == "ratio":
        return f"{value * 100:.3g}%"
    if unit == "req/s":
        return f"{value:.1f} req/s"
    return f"{value:g}"
