#!/usr/bin/env python3
"""Turns bench/partial.py's runs into medians over rounds, a Markdown report
and a PNG chart.

partial.py calls `summarize` and `write_all`; on its own,
    python3 bench/partial_report.py [target/bench/partial.json] [--publish DIR]
re-renders partial.md and partial.png from an existing partial.json (or
writes DIR/bench-partial.md and DIR/bench-partial.png without the run's
date and commit, which is what docs/ holds).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report  # noqa: E402  (bench/report.py: the shared command line)
from report import chart_support_problem  # noqa: E402,F401  (partial.py checks it before a run)

LOADS = ["light", "open", "wrk"]
CASES = ["healthy", "slow", "errors"]
ORDER = ["gateway-rr", "gateway-lo", "gateway-ewma", "gateway-hash", "nginx", "haproxy"]
LABELS = {
    "gateway-rr": "gateway round_robin",
    "gateway-lo": "gateway least_outstanding",
    "gateway-ewma": "gateway peak_ewma",
    "gateway-hash": "gateway hash (query:user)",
    "nginx": "NGINX least_conn",
    "haproxy": "HAProxy leastconn",
}
COLORS = {
    "gateway-rr": "#ffbb78",
    "gateway-lo": "#ff9896",
    "gateway-ewma": "#d62728",
    "gateway-hash": "#9467bd",
    "nginx": "#2ca02c",
    "haproxy": "#1f77b4",
}
WORSE = "b3"


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(info: dict, rows: list[dict]) -> dict:
    """One entry per (case, load, target): medians over rounds, and for the
    unhealthy cases the p99 over the same proxy's healthy p99 in that load
    (None without a healthy case)."""
    summary = []
    for case in info["cases"]:
        for load in LOADS:
            for target in info["targets"]:
                mine = [r for r in rows if r["case"] == case and r["load"] == load and r["target"] == target]
                if not mine:
                    continue
                summary.append(
                    {
                        "case": case,
                        "load": load,
                        "target": target,
                        "rounds": len(mine),
                        "rps": median([r["rps"] for r in mine]),
                        "p50_ms": median([r["latency_ms"]["p50"] for r in mine]),
                        "p99_ms": median([r["latency_ms"]["p99"] for r in mine]),
                        "p999_ms": median([r["latency_ms"]["p999"] for r in mine]),
                        "worse_share": median([r["worse_share"] for r in mine]),
                        "failed": median([r["failed"] for r in mine]),
                        "requests": median([r["requests"] for r in mine]),
                        "send_lag_p99_ms": median([r.get("send_lag_ms", {}).get("p99") for r in mine]),
                    }
                )
    healthy = {(s["load"], s["target"]): s["p99_ms"] for s in summary if s["case"] == "healthy"}
    for s in summary:
        base = healthy.get((s["load"], s["target"]))
        s["p99_vs_healthy"] = s["p99_ms"] / base if s["case"] != "healthy" and base and s["p99_ms"] is not None else None
    return {"conditions": info, "summary": summary, "runs": rows}


def fmt(v, spec=".2f"):
    return "-" if v is None else format(v, spec)


def stamp(info: dict) -> str:
    if info.get("published"):
        return ""
    return f"{info['date']}, commit {info['commit']}, "


def markdown(results: dict) -> str:
    info = results["conditions"]
    cap = info.get("capacity")
    open_note = (
        f"open loop {info['open_rate']:,} req/s for {info['open_s']} s from oha ({info['open_connections']} connections, "
        "latency from the scheduled send time)"
        + (
            f", half of the {cap['rps']:,} req/s {cap['target']} served under wrk -c{cap['connections']} with healthy backends"
            if cap
            else ""
        )
    )
    out = [
        "# Partial failure: one backend of three made worse",
        "",
        f"{stamp(info)}{info['cores']} cores ({info['cpu']}), {info['nginx']}, {info['haproxy']}, {info.get('oha', 'oha')}. "
        f"{info['rounds']} round(s), medians over rounds. Loads: light {info['light_rate']} req/s for {info['light_s']} s "
        f"(one connection, requests never overlap); {open_note}; wrk -c{info['wrk_connections']} for {info['wrk_s']} s "
        "(closed loop). "
        f"Worse backend: {WORSE}; \"to {WORSE}\" = its part of the requests the three backends counted "
        "(retries included). Failed = answers >= 400 and transport errors seen by the client. "
        "\"vs healthy\" = p99 over the same proxy's p99 under the same load with every backend healthy."
        + (" SMOKE RUN: one second per load, the figures mean nothing." if info["smoke"] else ""),
        "",
    ]
    titles = {
        "healthy": "Case healthy: no fault (the reference)",
        "slow": f"Case slow: {WORSE} +20 ms",
        "errors": f"Case errors: {WORSE} answers 5% with 500 (every proxy retries 500 on another backend)",
    }
    for case in info["cases"]:
        out += [
            f"## {titles[case]}",
            "",
            f"| load | proxy | req/s | p50 ms | p99 ms | p99.9 ms | vs healthy | to {WORSE} | failed |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for s in results["summary"]:
            if s["case"] != case:
                continue
            share = s["worse_share"]
            out.append(
                f"| {s['load']} | {LABELS.get(s['target'], s['target'])} | {fmt(s['rps'], ',.0f')} | {fmt(s['p50_ms'])} | "
                f"{fmt(s['p99_ms'])} | {fmt(s['p999_ms'])} | {fmt(s['p99_vs_healthy'], '.2f')}{'x' if s['p99_vs_healthy'] else ''} | "
                f"{fmt(share * 100 if share is not None else None, '.1f')}% | {fmt(s['failed'], '.0f')} |"
            )
        out.append("")
    lags = [s["send_lag_p99_ms"] for s in results["summary"] if s["load"] == "light" and s["send_lag_p99_ms"] is not None]
    if lags:
        out.append(
            f"Light-load generator send lag p99 (how late it sent; above a few ms it was the bottleneck): "
            f"worst {max(lags):.1f} ms."
        )
        out.append("")
    return "\n".join(out)


def chart(results: dict, path: Path) -> None:
    """One row per case, two panels: p99 by load (log scale: the slow case
    spans 1 to 1,000 ms) and the worse backend's share by load."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    info = results["conditions"]
    summary = results["summary"]
    cases = [c for c in CASES if c in info["cases"]]
    targets = [t for t in ORDER if any(s["target"] == t for s in summary)]
    by = {(s["case"], s["load"], s["target"]): s for s in summary}
    fig, axes = plt.subplots(len(cases), 2, figsize=(13, 3.6 * len(cases)), squeeze=False)
    width = 0.8 / max(1, len(targets))
    for row, case in zip(axes, cases):
        panels = [
            (row[0], f"{case}: p99 latency, ms (log)", lambda s: s["p99_ms"], ".1f"),
            (row[1], f"{case}: share of requests to {WORSE}, %", lambda s: None if s["worse_share"] is None else s["worse_share"] * 100, ".0f"),
        ]
        for ax, title, get, spec in panels:
            for i, t in enumerate(targets):
                xs, ys = [], []
                for j, load in enumerate(LOADS):
                    s = by.get((case, load, t))
                    value = get(s) if s else None
                    if value is not None:
                        xs.append(j + (i - (len(targets) - 1) / 2) * width)
                        ys.append(value)
                if ys:
                    bars = ax.bar(xs, ys, width * 0.95, label=LABELS[t], color=COLORS[t])
                    ax.bar_label(bars, labels=[format(y, spec) for y in ys], fontsize=6, rotation=90, padding=2)
            ax.set_title(title, fontsize=10)
            ax.set_xticks(range(len(LOADS)), LOADS)
            ax.grid(axis="y", alpha=0.3)
            if "log" in title:
                ax.set_yscale("log")
                ax.margins(y=0.35)
            else:
                ax.set_ylim(0, 100)
                ax.axhline(100 / 3, color="#999", lw=0.8, ls="--")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(6, len(labels)), fontsize=8)
    fig.suptitle(
        f"make bench-partial, {stamp(info)}{WORSE} of three backends worse, {info['rounds']} round(s), loopback\n"
        f"loads: light {info['light_rate']} req/s, open {info['open_rate']:,} req/s (oha), wrk -c{info['wrk_connections']}"
        + (" (SMOKE: figures mean nothing)" if info["smoke"] else ""),
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.05, 1, 0.95))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_all(results: dict, out: Path) -> None:
    (out / "partial.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "partial.md").write_text(markdown(results))
    chart(results, out / "partial.png")


def main() -> int:
    return report.rerender(
        "partial_report", "partial.json", summarize, markdown, chart, ("partial.md", "partial.png", "bench-partial.md", "bench-partial.png")
    )


if __name__ == "__main__":
    sys.exit(main())
