"""Durations as scenario files write them (`500ms`, `10s`, `2m`, `1m30s`), read
into seconds and written back in the same form. Depends on nothing.

Bare numbers are refused on purpose: `10` could mean seconds or milliseconds,
and a scenario that says `10s` cannot be misread.
"""

import math
import re

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(us|ms|s|m|h)")
_WHOLE = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?(?:us|ms|s|m|h))+")
LONGEST = 24 * 3600.0  # no duration in a scenario is longer than a day


class DurationError(ValueError):
    """A value that is not a duration; the message says how to write one."""


def parse(value):
    """Seconds (float) from `10s`, `1m30s`, `250ms`; DurationError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise DurationError(f"{_show(value)} is not a duration (write e.g. 10s)")
    if isinstance(value, (int, float)):
        raise DurationError(f"{_show(value)} is a number, not a duration (write {_show(value)}s)")
    text = value.strip()
    if not _WHOLE.fullmatch(text):
        raise DurationError(f"{_show(value)} is not a duration (write e.g. 10s)")
    seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
    if not math.isfinite(seconds) or seconds > LONGEST:
        raise DurationError(f"{_show(value)} is longer than {humanize(LONGEST)}")
    return seconds


def humanize(seconds):
    """`1m30s`, `50s`, `250ms`, `0s`: the shortest exact form down to 1 ms
    (finer values are written in microseconds)."""
    micros = round(seconds * 1e6)
    if micros == 0:
        return "0s"
    if micros % 1000:
        return f"{micros}us"
    millis = micros // 1000
    if millis < 1000 or millis % 1000:
        if millis >= 1000:
            return f"{_whole_seconds(millis // 1000)}{millis % 1000}ms"
        return f"{millis}ms"
    return _whole_seconds(millis // 1000)


def as_millis(seconds):
    """The form sent to the services' fault API: whole milliseconds when exact."""
    micros = round(seconds * 1e6)
    return f"{micros // 1000}ms" if micros % 1000 == 0 else f"{micros}us"


def clock(seconds):
    """`mm:ss` for the progress line."""
    s = max(0, int(seconds))
    return f"{s // 60:02d}:{s % 60:02d}"


def _whole_seconds(total):
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{secs}s" if secs else "")
    return text or "0s"


def _show(value):
    return f'"{value}"' if isinstance(value, str) else repr(value)
