"""summary.json, the record of a scenario run (Contract 4): the scenario as
validated, one entry per variant with its settings, phases, fault events,
figures, series, gates and consistency checks, and the verdicts. Written
atomically after every variant, so an interrupted run still leaves one.
Depends on nothing.
"""

import json
import os
from datetime import datetime, timezone
from pathlib import Path

SCHEMA = 1
EXIT_CODES = {"pass": 0, "fail": 1, "error": 3, "aborted": 4, "interrupted": 130}


def utc_now():
    return datetime.now(timezone.utc)


def stamp(when):
    """`2026-12-05T01:20:00Z`."""
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def new(scenario, target, started):
    return {
        "schema": SCHEMA,
        "scenario": {"name": scenario.name, "description": scenario.description, "file": scenario.file,
                     "spec": scenario.to_dict()},
        "target": target,
        "started_at": stamp(started),
        "finished_at": None,
        "verdict": None,
        "runs": [],
    }


def run_entry(variant, gateway_settings, scenario):
    """A run's entry before it starts; the runner fills it in as it goes."""
    return {
        "variant": variant,
        "verdict": "error",
        "error": None,
        "gateway_settings": gateway_settings,
        "duration_s": 0.0,
        "phases": [{"name": p.name, "kind": p.kind, "start_s": p.start, "end_s": p.end,
                    "judged_from_s": p.judged_from} for p in scenario.phases],
        "fault_events": [],
        "figures": {},
        "series": {"t": [], "client": {}, "gateway": {}},
        "gates": [],
        "checks": {"client_matches_locust": None, "gateway_matches_stats": None},
    }


def verdict_of(gates):
    return "pass" if all(g["pass"] for g in gates) else "fail"


def overall(runs):
    """The worst of the runs' verdicts: interrupted, error, aborted, fail, pass."""
    verdicts = {r["verdict"] for r in runs}
    for v in ("interrupted", "error", "aborted", "fail"):
        if v in verdicts:
            return v
    return "pass" if runs else "error"


def finish(summary):
    summary["finished_at"] = stamp(utc_now())
    summary["verdict"] = overall(summary["runs"])
    return summary


def write(summary, run_dir):
    """Writes run_dir/summary.json (whole or not at all) and returns its path."""
    path = Path(run_dir) / "summary.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path
