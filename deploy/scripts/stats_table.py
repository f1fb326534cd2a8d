#!/usr/bin/env python3
"""The gateway's /api/stats/<window> JSON as a short table: totals, latency
percentiles, and one line per backend.

    python3 deploy/scripts/stats_table.py FILE        # or - for stdin
    curl -s localhost:8000/api/stats/1m | python3 deploy/scripts/stats_table.py -

Standard library only. Exit status 2 when the input is not the gateway's stats JSON.
"""

import json
import sys

COLUMNS = ("requests", "req/s", "errors", "error %", "p50 ms", "p90 ms", "p99 ms", "max ms", "state")


def number(value, digits):
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if digits else str(value)


def row(name, s):
    lat = s.get("latency_ms") or {}
    return [name, number(s.get("requests"), 0), number(s.get("requests_per_second"), 1),
            number(s.get("errors"), 0), number(100 * s.get("error_rate", 0.0), 2),
            number(lat.get("p50"), 2), number(lat.get("p90"), 2), number(lat.get("p99"), 2),
            number(lat.get("max"), 2), s.get("state", "")]


def table(stats):
    """The lines of the table for one stats document."""
    rows = [["", *COLUMNS], row("all backends", stats)]
    for name in sorted(stats.get("servers") or {}):
        rows.append(row(name, stats["servers"][name]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for r in rows:
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:-1], widths[1:-1])] + [r[-1]]
        lines.append("  ".join(cells).rstrip())
    status = stats.get("status") or {}
    head = (f"window {stats.get('window', '?')} ({stats.get('covered_seconds', '?')} s covered): "
            + ", ".join(f"{k} {v}" for k, v in status.items() if v))
    return [head] + lines


def main(argv):
    if len(argv) != 1:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        text = sys.stdin.read() if argv[0] == "-" else open(argv[0], encoding="utf-8").read()
        stats = json.loads(text)
        if not isinstance(stats, dict) or "requests" not in stats:
            raise ValueError("no 'requests' field")
        print("\n".join(table(stats)))
    except (OSError, ValueError, TypeError, AttributeError) as err:
        print(f"stats_table: not the gateway's stats JSON: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
