#!/usr/bin/env python3
"""Turns the runs of bench/bench.py into medians, ratios against NGINX, the
performance target checks, a Markdown table and a PNG chart.

bench.py calls `summarize` and `write_all`; on its own,
    python3 bench/report.py [target/bench/results.json]
re-renders results.md and results.png from an existing results.json
(medians and ratios recomputed from its raw runs).
"""

from __future__ import annotations

import json
import random
import statistics
import sys
from pathlib import Path

ORDER = ["gateway", "gateway-nolog", "gateway-bare", "nginx", "haproxy", "direct"]
LABELS = {
    "gateway": "gateway (stats, metrics, access log)",
    "gateway-nolog": "gateway, access log off",
    "gateway-bare": "gateway, stats + metrics + log off",
    "nginx": "NGINX",
    "haproxy": "HAProxy",
    "direct": "direct to one backend",
}
COLORS = {
    "gateway": "#d62728",
    "gateway-nolog": "#ff9896",
    "gateway-bare": "#ffbb78",
    "nginx": "#2ca02c",
    "haproxy": "#1f77b4",
    "direct": "#7f7f7f",
}

# The project's performance targets, checked on the medians (informative only: the test
# suite makes no timing assertions).
RPS_VS_PEERS = 1.10
CPU_VS_NGINX = 0.85
LOGGING_COST = 0.05
RSS_LIMIT_MIB = 30.0


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _interval(values: list, resamples: int = 2000) -> tuple[float, float] | None:
    """95% bootstrap interval of the median of `values` (one per round):
    where the median would land if the machine had dealt out other rounds
    like these. Seeded, so re-rendering a results.json gives the same
    figures."""
    values = [v for v in values if v is not None]
    if len(values) < 3:
        return None
    rng = random.Random(7)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(resamples))
    return medians[int(0.025 * resamples)], medians[int(0.975 * resamples) - 1]


def _same_round_ratios(groups: dict, target: str, peer: str, conns: int, key: str) -> list[float]:
    """`target`'s `key` over `peer`'s in the same round, one per round."""
    theirs = {r["round"]: r[key] for r in groups.get((peer, conns), [])}
    return [
        r[key] / theirs[r["round"]]
        for r in groups.get((target, conns), [])
        if r[key] is not None and theirs.get(r["round"])
    ]


def _same_round_ratio(groups: dict, target: str, peer: str, conns: int, key: str) -> float | None:
    """Median over rounds of `target`'s `key` over `peer`'s in the same round."""
    return _median(_same_round_ratios(groups, target, peer, conns, key))


def summarize(conditions: dict, runs: list[dict]) -> dict:
    groups: dict[tuple[str, int], list[dict]] = {}
    for run in runs:
        groups.setdefault((run["target"], run["connections"]), []).append(run)

    summary = []
    for (target, conns), rs in groups.items():
        rss = [r["peak_rss_kib"] for r in rs if r["peak_rss_kib"]]
        summary.append(
            {
                "target": target,
                "connections": conns,
                "rounds": len(rs),
                "rps": _median([r["rps"] for r in rs]),
                "rps_min": min(r["rps"] for r in rs),
                "rps_max": max(r["rps"] for r in rs),
                "p50_ms": _median([r["latency_ms"]["p50"] for r in rs]),
                "p99_ms": _median([r["latency_ms"]["p99"] for r in rs]),
                "cpu_us_per_request": _median([r["proxy_cpu_us_per_request"] for r in rs]),
                "peak_rss_mib": max(rss) / 1024 if rss else None,
                "requests": sum(r["requests"] for r in rs),
                "errors": sum(r["errors_total"] for r in rs),
                "backend_cpu_us_per_request": _median([r["backend_cpu_us_per_request"] for r in rs]),
                "other_cpu_cores": _median([r["other_cpu_cores"] for r in rs]),
            }
        )
    by = {(s["target"], s["connections"]): s for s in summary}
    for s in summary:
        nginx = by.get(("nginx", s["connections"]))
        s["vs_nginx"] = {
            "rps": _ratio(s["rps"], nginx and nginx["rps"]),
            "p99": _ratio(s["p99_ms"], nginx and nginx["p99_ms"]),
            "cpu": _ratio(s["cpu_us_per_request"], nginx and nginx["cpu_us_per_request"]),
            "rss": _ratio(s["peak_rss_mib"], nginx and nginx["peak_rss_mib"]),
        }
        # The machine's speed drifts over minutes (a shared VM): a ratio
        # within each round, where the targets ran back to back, is steadier
        # than the ratio of medians taken over the whole run.
        s["vs_nginx_same_round"] = {
            "rps": _same_round_ratio(groups, s["target"], "nginx", s["connections"], "rps"),
            "cpu": _same_round_ratio(groups, s["target"], "nginx", s["connections"], "proxy_cpu_us_per_request"),
        }
    summary.sort(key=lambda s: (s["connections"], ORDER.index(s["target"])))

    # What the gateway's observability costs: the access log alone
    # (gateway vs gateway-nolog), and stats + metrics + access log together
    # (gateway vs gateway-bare).
    logging_cost = _costs(groups, "gateway-nolog")
    observability_cost = _costs(groups, "gateway-bare")

    return {
        "conditions": conditions,
        "summary": summary,
        "logging_cost": logging_cost,
        "observability_cost": observability_cost,
        "targets": check_targets(by, groups, observability_cost),
        "runs": runs,
    }


def _costs(groups: dict, without: str) -> list[dict]:
    """Per connection count: the share of req/s and the CPU per request the
    default gateway pays over the `without` variant, as medians over the
    rounds of the two runs in the same round."""
    costs = []
    for conns in sorted({c for (_, c) in groups}):
        on = {r["round"]: r for r in groups.get(("gateway", conns), [])}
        off = {r["round"]: r for r in groups.get((without, conns), [])}
        pairs = [(on[k], off[k]) for k in sorted(on.keys() & off.keys()) if off[k]["rps"]]
        if not pairs:
            continue
        throughput_costs = [1 - a["rps"] / b["rps"] for a, b in pairs]
        costs.append(
            {
                "connections": conns,
                "throughput_cost": _median(throughput_costs),
                "throughput_cost_interval": _interval(throughput_costs),
                "cpu_us_per_request_added": _median(
                    [
                        a["proxy_cpu_us_per_request"] - b["proxy_cpu_us_per_request"]
                        for a, b in pairs
                        if a["proxy_cpu_us_per_request"] is not None and b["proxy_cpu_us_per_request"] is not None
                    ]
                )
                or 0.0,
            }
        )
    return costs


def check_targets(by: dict, groups: dict, observability_cost: list[dict]) -> list[dict]:
    checks = []

    def add(what: str, value: str, met: bool) -> None:
        checks.append({"target": what, "measured": value, "met": met})

    for conns in sorted({c for (_, c) in by}):
        gw = by.get(("gateway", conns))
        if not gw:
            continue
        for peer, name in (("nginx", "NGINX"), ("haproxy", "HAProxy")):
            p = by.get((peer, conns))
            if p and p["rps"]:
                r = gw["rps"] / p["rps"]
                ratios = _same_round_ratios(groups, "gateway", peer, conns, "rps")
                add(
                    f"req/s >= {RPS_VS_PEERS}x {name} at {conns} conns",
                    f"{r:.2f}x; same round {_x(_median(ratios))}{_within(_interval(ratios), 'x')}",
                    r >= RPS_VS_PEERS,
                )
        n = by.get(("nginx", conns))
        if n and n["cpu_us_per_request"] and gw["cpu_us_per_request"]:
            r = gw["cpu_us_per_request"] / n["cpu_us_per_request"]
            ratios = _same_round_ratios(groups, "gateway", "nginx", conns, "proxy_cpu_us_per_request")
            add(
                f"CPU/request <= {CPU_VS_NGINX}x NGINX at {conns} conns",
                f"{r:.2f}x; same round {_x(_median(ratios))}{_within(_interval(ratios), 'x')}",
                r <= CPU_VS_NGINX,
            )
        if n and n["p99_ms"]:
            add(
                f"p99 <= NGINX's at {conns} conns",
                f"{gw['p99_ms']:.2f} ms vs {n['p99_ms']:.2f} ms",
                gw["p99_ms"] <= n["p99_ms"],
            )
        if conns >= 256 and gw["peak_rss_mib"]:
            add(
                f"RSS < {RSS_LIMIT_MIB:.0f} MiB at {conns} conns",
                f"{gw['peak_rss_mib']:.1f} MiB",
                gw["peak_rss_mib"] < RSS_LIMIT_MIB,
            )
    for lc in observability_cost:
        add(
            f"stats, metrics and access log cost <= {LOGGING_COST:.0%} of req/s at {lc['connections']} conns",
            f"{lc['throughput_cost']:.1%}{_within(lc.get('throughput_cost_interval'), '%')}",
            lc["throughput_cost"] <= LOGGING_COST,
        )
    return checks


# --------------------------------------------------------------------------
# Markdown


def _f(value: float | None, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def _x(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def _within(interval: tuple[float, float] | None, unit: str) -> str:
    """`, 95% interval a–b`, as ratios (`x`) or shares (`%`)."""
    if not interval:
        return ""
    lo, hi = interval
    if unit == "%":
        return f", 95% interval {lo:.1%} to {hi:.1%}"
    return f", 95% interval {lo:.2f}–{hi:.2f}×"


def stamp(conditions: dict) -> str:
    """When and on which commit the run was made, for a local report; empty
    when publishing (`--publish`), so the docs describe the code rather than
    a moment in its history."""
    if conditions.get("published"):
        return ""
    return f"{conditions['date']}, commit {conditions['commit']}: "


def markdown(results: dict) -> str:
    c = results["conditions"]
    # Runs from before BENCH_WORKERS existed used two everywhere.
    workers = c.get("workers", 2)
    worker_count = f"{workers} worker{'s' if workers != 1 else ''}"
    lines = [
        "# Gateway vs NGINX vs HAProxy",
        "",
        f"{stamp(c)}{c['cores']} cores ({c['cpu']}), Linux {c['kernel']}. "
        f"wrk -t{c['wrk_threads']} ({c['wrk']}), GET {c['path']} on loopback, "
        f"{c['duration_s']} s per run after {c['warmup_s']} s warm-up, median of {c['rounds']} rounds "
        f"with the targets' order rotated each round; each proxy started fresh for every run. "
        f"Three project backends behind every proxy, round robin. {c['nginx']} ({worker_count}, "
        f"upstream keepalive 1024), {c['haproxy'].split(' - ')[0]} (nbthread {workers}, http-reuse always), gateway "
        f"with {worker_count}; access log per request "
        f"{'on for NGINX and HAProxy too' if c['peer_access_log'] else 'off for NGINX and HAProxy'}. "
        f"Gateway with its default settings (round robin; stats, metrics and access log on); the "
        f"`access log off` row sets log.access_log=false, the `stats + metrics + log off` row also "
        f"stats.enabled=false and metrics.enabled=false.",
        "",
        "| target | conns | req/s | vs NGINX | same round | p50 ms | p99 ms | p99 vs NGINX | CPU µs/req "
        "| CPU vs NGINX | same round | peak RSS MiB | errors / requests |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in results["summary"]:
        v, same = s["vs_nginx"], s.get("vs_nginx_same_round", {})
        lines.append(
            f"| {LABELS[s['target']]} | {s['connections']} | {s['rps']:,.0f} | {_x(v['rps'])} "
            f"| {_x(same.get('rps'))} | {_f(s['p50_ms'], '.2f')} | {_f(s['p99_ms'], '.2f')} | {_x(v['p99'])} "
            f"| {_f(s['cpu_us_per_request'], '.1f')} | {_x(v['cpu'])} | {_x(same.get('cpu'))} "
            f"| {_f(s['peak_rss_mib'], '.1f')} | {s['errors']} / {s['requests']:,} |"
        )
    lines += [
        "",
        "req/s, latency and CPU are medians over the rounds; `same round` is the median over the rounds "
        "of the ratio to NGINX's run in the same round (steadier when the machine's speed drifts "
        "between rounds); peak RSS is the largest over the rounds "
        "(sum of VmHWM over the proxy's processes). CPU per request is the proxy's own user+system "
        "time (all processes and threads, from /proc) over the measured run divided by the requests "
        "served. Errors are socket errors plus HTTP statuses >= 400, as wrk counts them.",
        "",
    ]
    other = [s["other_cpu_cores"] for s in results["summary"] if s["other_cpu_cores"] is not None]
    if other:
        lines += [
            f"Other load on the machine during the runs (CPU not used by the proxy, the backends or wrk): "
            f"median {statistics.median(other):.2f}, worst {max(other):.2f} cores of {c['cores']}. "
            f"Load average when the run started: {', '.join(f'{x:.2f}' for x in c['load_average_at_start'])}.",
            "",
        ]
    for key, what in (
        ("logging_cost", "Access logging cost in the gateway (access log on vs off, same-round medians)"),
        ("observability_cost", "Stats, metrics and access log together (all on vs all off, same-round medians)"),
    ):
        if results.get(key):
            lines.append(what + ": " + "; ".join(
                f"{lc['throughput_cost']:.1%} of req/s and {lc['cpu_us_per_request_added']:+.1f} µs CPU/request "
                f"at {lc['connections']} conns"
                for lc in results[key]
            ) + ".")
            lines.append("")
    if results.get("costs"):
        lines += ["## Deterministic costs per request", "", costs_markdown(results["costs"])]
    if results["targets"]:
        lines += [
            "Performance targets (gateway with its defaults: stats, metrics and access log on), judged on the "
            "medians; the 95% interval is a bootstrap over the rounds of the same-round figure: where its "
            "median would fall if the machine had dealt out other rounds like these. A target whose interval "
            "spans its threshold is within this run's noise either way.",
            "",
        ]
        for t in results["targets"]:
            lines.append(f"- {'met' if t['met'] else 'NOT met'}: {t['target']} (measured {t['measured']})")
        lines.append("")
    return "\n".join(lines)


COST_COLUMNS = [("instructions", "instructions", ",.0f"), ("syscalls", "syscalls", ".2f"), ("segments", "TCP segments", ".1f")]


def costs_markdown(costs: dict) -> str:
    """The table of bench/costs.py's counts per request, with ratios
    against NGINX, and what they count."""
    by = costs["targets"]
    nginx = by.get("nginx", {})
    header = "| target |" + "".join(f" {label}/req | vs NGINX |" for _, label, _ in COST_COLUMNS) + " most frequent syscalls/req |"
    lines = [header, "|---|" + "---:|---:|" * len(COST_COLUMNS) + "---|"]
    for target in (t for t in ORDER if t in by):
        row = f"| {LABELS[target]} |"
        for key, _, fmt in COST_COLUMNS:
            value = by[target].get(key, {}).get("per_request")
            peer = nginx.get(key, {}).get("per_request")
            row += f" {_f(value, fmt)} | {_x(_ratio(value, peer)) if target != 'nginx' else ''} |"
        top = by[target].get("syscalls", {}).get("top", {})
        # Calls made less than once in 20 requests are start-up's remains, not per-request work.
        row += " " + ", ".join(f"{name} {count:.2f}" for name, count in top.items() if count >= 0.05) + " |"
        lines.append(row)
    n1, n2 = costs["requests"]
    lines += [
        "",
        f"One worker per proxy, one client connection, one request at a time; each count is "
        f"(run of {n2:,} requests - run of {n1:,}) / {n2 - n1:,}, each run in a freshly started proxy. "
        "Instructions: callgrind's total Ir of the proxy's process (user space only; backends not counted). "
        "Syscalls: strace -f -c over the proxy's processes and threads. TCP segments: segs_out of the run's own "
        "sockets (ss -tin), every loopback hop, ACKs included (client-proxy and proxy-backend); delayed ACKs can "
        "move it by a few tenths. direct: the client straight to a backend, whose instructions and syscalls these "
        "are. Access log on for the gateway (not in `access log off`)"
        f"{' and for the peers' if costs.get('peer_access_log') else ', off for the peers'}.",
        "",
    ]
    for measure, tool in costs.get("missing_tools", {}).items():
        lines += [f"No {measure} column: {tool} is not installed.", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Chart


def chart_support_problem() -> str | None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "matplotlib is missing (it draws the charts): run `make deps` (requirements-dev.txt)"
    return None


def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    summary = results["summary"]
    conns = sorted({s["connections"] for s in summary})
    targets = [t for t in ORDER if any(s["target"] == t for s in summary)]
    by = {(s["target"], s["connections"]): s for s in summary}
    panels = [
        ("requests per second (median)", lambda s: s["rps"], ",.0f"),
        ("p99 latency, ms", lambda s: s["p99_ms"], ".2f"),
        ("proxy CPU per request, µs", lambda s: s["cpu_us_per_request"], ".1f"),
        ("peak RSS, MiB", lambda s: s["peak_rss_mib"], ".1f"),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5))
    for ax, (title, get, fmt) in zip(axes.flat, panels):
        # Only the targets this figure applies to (direct has no proxy CPU
        # or RSS), centred on each connection count.
        shown = [t for t in targets if any(get(s) is not None for s in summary if s["target"] == t)]
        width = 0.8 / max(1, len(shown))
        for i, t in enumerate(shown):
            xs, ys = [], []
            for j, c in enumerate(conns):
                s = by.get((t, c))
                value = get(s) if s else None
                if value is not None:
                    xs.append(j + (i - (len(shown) - 1) / 2) * width)
                    ys.append(value)
            if not ys:
                continue
            bars = ax.bar(xs, ys, width * 0.95, label=LABELS[t], color=COLORS[t])
            ax.bar_label(bars, labels=[format(y, fmt) for y in ys], fontsize=7, rotation=90, padding=2)
        ax.set_title(title)
        ax.set_xticks(range(len(conns)), [f"{c} connections" for c in conns])
        ax.yaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
        ax.margins(y=0.2)
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9)
    c = results["conditions"]
    fig.suptitle(
        f"make bench, {stamp(c)}wrk -t{c['wrk_threads']}, {c['duration_s']} s x {c['rounds']} rounds, "
        f"{c['cores']} cores, loopback"
    )
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_all(results: dict, out: Path) -> None:
    (out / "results.md").write_text(markdown(results))
    chart(results, out / "results.png")


def rerender(prog: str, default_json: str, summarize, markdown, chart, names: tuple[str, str, str, str]) -> int:
    """The command line of a report module: `PROG [RUN.json]` re-renders a
    run's table and chart beside it (names[0], names[1]); `PROG RUN.json
    --publish DIR` writes them to DIR/names[2] and DIR/names[3] without the
    run's date and commit (what `docs/` holds). Medians and ratios are
    recomputed from the raw runs, so a re-render picks up report changes."""
    args = sys.argv[1:]
    publish = None
    if "--publish" in args:
        at = args.index("--publish")
        if at + 1 >= len(args):
            print(f"{prog}: --publish needs a directory", file=sys.stderr)
            return 2
        publish = Path(args[at + 1])
        del args[at : at + 2]
    path = Path(args[0]) if args else Path(__file__).resolve().parent.parent / "target/bench" / default_json
    problem = chart_support_problem()
    if problem:
        print(f"{prog}: {problem}", file=sys.stderr)
        return 1
    results = json.loads(path.read_text())
    results.update(summarize(results["conditions"], results["runs"]))
    if publish:
        results["conditions"]["published"] = True
        out, (md, png) = publish, names[2:]
    else:
        out, (md, png) = path.parent, names[:2]
    (out / md).write_text(markdown(results))
    chart(results, out / png)
    print(f"{prog}: wrote {out / md} and {out / png}")
    return 0


def main() -> int:
    return rerender("report", "results.json", summarize, markdown, chart, ("results.md", "results.png", "bench-results.md", "bench.png"))


if __name__ == "__main__":
    sys.exit(main())
