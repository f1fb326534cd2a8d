"""The one progress line of a running scenario, rewritten in place on a
terminal and printed once every 10 s otherwise (logs of a Kubernetes Job):

    slow-backend [least-outstanding] 00:23/00:50 phase fault | users 10 | 4.9 req/s | p99 27.1 ms | errors 0 | next: clear server2 in 17s

Depends on scenario.durations and scenario.histogram.
"""

import sys
import time

from . import durations, histogram

WINDOW_S = 5  # req/s and p99 over the last seconds, so the line follows changes


class Progress:
    def __init__(self, name, variant, duration, stream=None, every=10.0):
        self.label = f"{name} [{variant}]"
        self.duration = duration
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every = every
        self.last_print = None
        self.shown = False

    def line(self, t, phase, seconds, next_event):
        recent = seconds[-WINDOW_S:]
        n = sum(r["n"] for r in recent)
        hist = {}
        for r in recent:
            histogram.add(hist, r["h"])
        p99 = histogram.quantile(hist, 0.99, max((r["max"] for r in recent if r["n"]), default=None))
        users = recent[-1].get("users", 0) if recent else 0
        errors = sum(r["f"] for r in seconds)
        parts = [
            f"{self.label} {durations.clock(t)}/{durations.clock(self.duration)} phase {phase}",
            f"users {users}",
            f"{n / len(recent):.1f} req/s" if recent else "- req/s",
            f"p99 {p99:.1f} ms" if p99 is not None else "p99 -",
            f"errors {errors}",
        ]
        if next_event is not None:
            parts.append(f"next: {next_event.label()} in {max(0, round(next_event.at - t))}s")
        return " | ".join(parts)

    def update(self, t, phase, seconds, next_event):
        now = time.monotonic()
        if not self.tty and self.last_print is not None and now - self.last_print < self.every:
            return
        self.last_print = now
        text = self.line(t, phase, seconds, next_event)
        if self.tty:
            self.stream.write("\r\x1b[K" + text)
            self.shown = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def done(self):
        if self.tty and self.shown:
            self.stream.write("\n")
            self.stream.flush()
            self.shown = False
