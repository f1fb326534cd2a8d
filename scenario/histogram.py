"""Latency histograms with at most 1% relative error: a latency in ms falls in
bucket i = ceil(log(ms) / log(GAMMA)), and a bucket stands for the value
2·GAMMA^i / (GAMMA + 1), which is within (GAMMA - 1) / (GAMMA + 1) < 1% of
every value in it. Buckets are plain {index: count} dicts, so histograms of
seconds, phases and processes add up by summing counts. Depends on nothing
(the locustfile imports it inside Locust).
"""

import math

GAMMA = 1.02
_LOG_GAMMA = math.log(GAMMA)
FLOOR_MS = 0.001  # 1 µs: anything faster is counted as this


def index(ms):
    return math.ceil(math.log(max(ms, FLOOR_MS)) / _LOG_GAMMA)


def value(i):
    """The value bucket `i` stands for (ms)."""
    return 2.0 * GAMMA**i / (GAMMA + 1.0)


def add(into, other):
    """Adds histogram `other` into `into` (keys may be str, as read from JSON)."""
    for i, n in other.items():
        i = int(i)
        into[i] = into.get(i, 0) + n
    return into


def quantile(hist, q, max_ms=None):
    """The q-quantile (0 < q <= 1) by nearest rank, or None when empty; never
    above `max_ms` (the exact maximum) when given."""
    total = sum(hist.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for i in sorted(hist):
        seen += hist[i]
        if seen >= rank:
            v = value(i)
            return min(v, max_ms) if max_ms is not None else v
    return None  # pragma: no cover - rank <= total
