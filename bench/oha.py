"""oha as bench-partial's open-loop load near capacity.

oha (https://github.com/hatoo/oha) sends at a fixed rate (`-q`) from many
connections and, with `--latency-correction`, measures each latency from
the request's scheduled time, so queueing in front of a slow proxy is
counted (no coordinated omission). A Python generator holds a few
thousand req/s here; oha holds 25,000 req/s with about a third of a core.

`make tools-oha` installs the pinned version into .cache/tools/bin; `OHA`
names another binary.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERSION = "1.16.0"
PINNED = ROOT / ".cache" / "tools" / "bin" / "oha"


class OhaError(Exception):
    """oha is missing, failed or printed something this module cannot read."""


def find() -> Path:
    """The oha binary: $OHA, else the pinned install, else the PATH."""
    named = os.environ.get("OHA", "").strip()
    if named:
        if not Path(named).is_file():
            raise OhaError(f"OHA={named}: no such file")
        return Path(named)
    if PINNED.is_file():
        return PINNED
    found = shutil.which("oha")
    if found:
        return Path(found)
    raise OhaError(f"oha not found: run `make tools-oha` (cargo install oha {VERSION} into .cache/tools)")


def argv(binary: Path, url_regex: str, rate: int, seconds: int, connections: int) -> list[str]:
    """The command line: `url_regex` is a regular expression oha draws each
    request's URL from (`--rand-regex-url`), so users' keys vary."""
    return [
        str(binary),
        "--no-tui",
        "--output-format",
        "json",
        "-z",
        f"{seconds}s",
        "-q",
        str(rate),
        "--latency-correction",
        # Requests still in flight at the deadline are answered and counted,
        # not dropped as errors.
        "-w",
        "-c",
        str(connections),
        "-t",
        "5s",
        "--rand-regex-url",
        url_regex,
    ]


def parse(text: str) -> dict:
    """oha's JSON summary as bench-partial's row: requests, req/s, latency
    percentiles in ms, failures (answers >= 400 and transport errors)."""
    try:
        data = json.loads(text)
        summary = data["summary"]
        pct = data["latencyPercentiles"]
        statuses = {int(k): int(v) for k, v in data["statusCodeDistribution"].items()}
        errors = {str(k): int(v) for k, v in (data.get("errorDistribution") or {}).items()}
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise OhaError(f"unreadable oha output ({e}): {text[:200]!r}") from None
    answered = sum(statuses.values())
    seconds = float(summary["total"])
    ms = {k: (None if pct.get(src) is None else float(pct[src]) * 1000.0) for k, src in
          (("p50", "p50"), ("p99", "p99"), ("p999", "p99.9"))}
    ms["max"] = None if summary.get("slowest") is None else float(summary["slowest"]) * 1000.0
    failed_status = sum(v for k, v in statuses.items() if k >= 400)
    return {
        "requests": answered,
        "seconds": round(seconds, 3),
        "rps": answered / seconds if seconds else 0.0,
        "latency_ms": ms,
        "failed": failed_status + sum(errors.values()),
        "failed_by_kind": {"status": failed_status, **errors},
    }


def run(binary: Path, url_regex: str, rate: int, seconds: int, connections: int, log: Path) -> dict:
    """Runs oha once (bounded: it stops at its deadline, and is killed 30 s
    after it) and returns parse()'s row."""
    cmd = argv(binary, url_regex, rate, seconds, connections)
    with open(log, "a") as f:
        f.write(f"\n### {' '.join(cmd)}\n")
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        raise OhaError(f"oha did not finish within {seconds + 30} s") from None
    with open(log, "a") as f:
        f.write(done.stderr)
    if done.returncode != 0:
        raise OhaError(f"oha exited with {done.returncode}: {done.stderr.strip()[-400:]}")
    return parse(done.stdout)
