"""Gates as a scenario file writes them, read and checked: a threshold in a
small grammar (`p99 < 50ms`, `error_rate < 1%`, `share(server2) < 10%`,
`p99 <= baseline + 10%`) with optional `phase`, `source`, `window`, `for` and
`abort_on_fail`. Every problem is a SpecError naming the key. Depends on
scenario.durations and scenario.checks (Keys, SpecError); scenario.judge
evaluates what this makes.

The grammar: METRIC OP THRESHOLD, where METRIC is p50, p90, p95, p99, max,
error_rate, rps, requests or share(BACKEND); OP is <, <=, > or >=; and
THRESHOLD is a duration for latencies (`50ms`), a ratio for error_rate and
share (`1%` or `0.01`), a number for rps and requests, or `baseline`,
optionally `+ N%` or `- N%`: the same gate's figure in a baseline run given
with `--baseline`.
"""

import math
import re
from dataclasses import dataclass

from . import durations
from .checks import Keys, SpecError, quoted

METRICS = ("p50", "p90", "p95", "p99", "max", "error_rate", "rps", "requests", "share")
LATENCY = ("p50", "p90", "p95", "p99", "max")
RATIOS = ("error_rate", "share")
SOURCES = ("client", "gateway")
OPS = ("<=", ">=", "<", ">")
_GATE = re.compile(r"\s*(?P<metric>[a-z_0-9]+)(?:\((?P<backend>[^()]*)\))?\s*(?P<op><=|>=|<|>|=+|!=)\s*(?P<rest>.*?)\s*")
_BASELINE = re.compile(r"baseline(?:\s*(?P<sign>[+-])\s*(?P<pct>[0-9]+(?:\.[0-9]+)?)\s*%)?")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
LARGEST = 1e12  # thresholds and baseline changes beyond this are typos, and float() makes inf of longer ones


@dataclass
class Gate:
    text: str  # the threshold as written, normalised: `p99 < 50ms`
    metric: str
    op: str
    threshold: float | None  # ms for latencies, a ratio 0-1, or a number; None: relative to the baseline
    threshold_text: str
    phase: str
    source: str
    backend: str | None = None
    window: float | None = None  # seconds: judged over every window of this length in the phase
    for_s: float | None = None  # seconds: fails only when windows breach this long in a row
    abort_on_fail: bool = False
    baseline_change: float | None = None  # relative: +0.10 for `baseline + 10%`

    @property
    def unit(self):
        return "ms" if self.metric in LATENCY else {"rps": "req/s", "requests": "requests"}.get(self.metric, "ratio")

    @property
    def relative(self):
        return self.threshold is None

    @property
    def name(self):
        """The gate as the output names it: `p99 < 30ms (recovery, client, 10s windows)`."""
        where = [self.phase, self.source]
        if self.window:
            where.append(f"{durations.humanize(self.window)} windows")
        if self.for_s:
            where.append(f"for {durations.humanize(self.for_s)}")
        return f"{self.text} ({', '.join(where)})"

    @property
    def figure_key(self):
        """The gate without its threshold: what a baseline run's gate must match."""
        return (self.metric, self.backend, self.phase, self.source, self.window, self.for_s)

    def passes(self, value, threshold):
        return {"<": value < threshold, "<=": value <= threshold, ">": value > threshold,
                ">=": value >= threshold}[self.op]

    def breached_by(self, value, threshold):
        return not self.passes(value, threshold)


def check_gates(value, scenario, where="gates"):
    """[Gate] from a `gates` list; `scenario` gives the backends and phases."""
    if not isinstance(value, list):
        raise SpecError(where, f"must be a list, not {_kind(value)}")
    return [_gate(raw, f"{where}[{i}]", scenario) for i, raw in enumerate(value)]


def _gate(raw, where, scenario):
    if isinstance(raw, str):
        raw, text_at = {"gate": raw}, where
    else:
        text_at = f"{where}.gate"
    keys = Keys(raw, where, required=("gate",), optional=("phase", "source", "window", "for", "abort_on_fail"))
    text = keys.get("gate")
    if not isinstance(text, str):
        raise SpecError(text_at, f"{quoted(text)} must be a threshold such as `p99 < 50ms`")
    metric, backend, op, threshold, threshold_text, change = _parse(text, text_at, scenario)
    phases = {p.name: p for p in scenario.phases}
    phase = keys.get("phase", "run")
    if not isinstance(phase, str) or phase not in phases:
        raise SpecError(f"{where}.phase", f"{quoted(phase)} is not a phase ({', '.join(phases)})")
    source = keys.get("source", "gateway" if metric == "share" else "client")
    if not isinstance(source, str) or source not in SOURCES:
        raise SpecError(f"{where}.source", f"{quoted(source)} is unknown ({', '.join(SOURCES)})")
    if metric == "share" and source != "gateway":
        raise SpecError(f"{where}.source", "share is the gateway's view only (source: gateway)")
    if metric in LATENCY and source == "gateway":
        raise SpecError(f"{where}.source", f"{metric} per phase is measured by the client only (source: client)")
    window = _seconds(keys, "window", where)
    for_s = _seconds(keys, "for", where)
    span = phases[phase].span
    if span <= 0:
        raise SpecError(f"{where}.phase", f'"{phase}" has nothing left after the settle time')
    if window is not None:
        if window != int(window) or window < 1:
            raise SpecError(f"{where}.window", "must be whole seconds, at least 1s (the figures are per second)")
        if window > span:
            raise SpecError(f"{where}.window", f"{durations.humanize(window)} is longer than {phase} "
                                               f"({durations.humanize(span)} judged)")
    if for_s is not None:
        if window is None:
            raise SpecError(f"{where}.for", "needs a window: `for` is how long the windows must breach in a row")
        if for_s != int(for_s) or for_s < 1 or for_s > span - window + 1:
            raise SpecError(f"{where}.for", f"must be whole seconds from 1s to {durations.humanize(span - window + 1)} "
                                            f"(the windows {phase} has)")
    abort = keys.get("abort_on_fail", False)
    if not isinstance(abort, bool):
        raise SpecError(f"{where}.abort_on_fail", f"{quoted(abort)} must be true or false")
    normal = f"{metric}({backend})" if backend else metric
    return Gate(text=f"{normal} {op} {threshold_text}", metric=metric, op=op, threshold=threshold,
                threshold_text=threshold_text, phase=phase, source=source, backend=backend, window=window,
                for_s=for_s, abort_on_fail=abort, baseline_change=change)


def _parse(text, where, scenario):
    m = _GATE.fullmatch(text)
    if not m:
        raise SpecError(where, f"{quoted(text)} is not a threshold: write METRIC OP VALUE, such as `p99 < 50ms`")
    metric, backend, op, rest = m["metric"], m["backend"], m["op"], m["rest"]
    if metric not in METRICS:
        raise SpecError(where, f'"{metric}" is unknown ({", ".join(METRICS)})')
    if op not in OPS:
        raise SpecError(where, f'"{op}" is not a comparison (<, <=, >, >=)')
    if metric == "share":
        if backend is None:
            raise SpecError(where, "share needs its backend: share(server2)")
        backend = backend.strip()
        if backend not in scenario.backends:
            raise SpecError(where, f'share({backend}): "{backend}" is not one of the backends '
                                   f"({', '.join(scenario.backends)})")
    elif backend is not None:
        raise SpecError(where, f"{metric} takes no backend (only share(BACKEND) does)")
    if not rest:
        raise SpecError(where, f"{quoted(text)} has no threshold after {op}")
    b = _BASELINE.fullmatch(rest)
    if b:
        if b["pct"] and float(b["pct"]) > LARGEST:
            raise SpecError(where, f'"{b["pct"]}%" is too large a change')
        change = (float(b["pct"]) / 100.0) * (-1 if b["sign"] == "-" else 1) if b["sign"] else 0.0
        shown = f"baseline {b['sign']} {_trim(float(b['pct']))}%" if b["sign"] else "baseline"
        return metric, backend, op, None, shown, change
    threshold, shown = _threshold(metric, rest, where)
    return metric, backend, op, threshold, shown, None


def _threshold(metric, text, where):
    if metric in LATENCY:
        if _NUMBER.fullmatch(text):
            raise SpecError(where, f'"{text}" is a number; {metric} needs a duration with its unit, such as {text}ms')
        try:
            seconds = durations.parse(text)
        except durations.DurationError as e:
            raise SpecError(where, f"{metric}: {e}") from None
        return seconds * 1000.0, durations.humanize(seconds)
    percent = text.endswith("%")
    number = text[:-1].strip() if percent else text
    if not _NUMBER.fullmatch(number):
        kind = "a ratio (1% or 0.01)" if metric in RATIOS else "a number"
        raise SpecError(where, f'"{text}" is not {kind}')
    value = float(number)
    if value > LARGEST:
        raise SpecError(where, f'"{text}" is too large (at most {LARGEST:g})')
    if percent:
        if metric not in RATIOS:
            raise SpecError(where, f"{metric} is not a ratio; write a number without %")
        if value > 100:
            raise SpecError(where, f'"{text}": a ratio is at most 100%')
        return value / 100.0, f"{_trim(value)}%"
    if metric in RATIOS and value > 1:
        raise SpecError(where, f'"{text}": {metric} is a ratio from 0 to 1 (or write it as a percentage: {text}%)')
    return value, _trim(value)


def _seconds(keys, key, where):
    if key not in keys.value:
        return None
    seconds = keys.duration(key)
    if seconds <= 0:
        raise SpecError(f"{where}.{key}", "must be more than 0s")
    return seconds


def _trim(value):
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _kind(v):
    return "nothing" if v is None else f"a {type(v).__name__}"

