"""Gates: each scenario gate judged against the run's figures, as summary.json
holds them (name, figure, threshold, pass). A gate on a figure the run does
not have (no requests in that phase, say) fails: it proves nothing. Depends
on nothing; scenario.figures makes what it reads.
"""

FIGURE_KEYS = {"p50": "p50_ms", "p95": "p95_ms", "p99": "p99_ms", "max": "max_ms",
               "error_rate": "error_rate", "rps": "rps", "requests": "requests"}


def value_of(gate, figures):
    side = (figures.get(gate.phase) or {}).get(gate.source)
    if not side:
        return None
    if gate.metric == "share":
        return (side.get("backends", {}).get(gate.backend) or {}).get("share")
    if gate.metric in ("p50", "p95", "p99", "max") and not side.get("requests"):
        return None
    return side.get(FIGURE_KEYS[gate.metric])


def evaluate(gates, figures):
    results = []
    for gate in gates:
        value = value_of(gate, figures)
        passed = value is not None and (value < gate.threshold if gate.op == "<" else value > gate.threshold)
        results.append({"name": gate.name, "metric": gate.metric, "phase": gate.phase, "source": gate.source,
                        "op": gate.op, "threshold": gate.threshold, "unit": gate.unit,
                        "value": value, "pass": passed})
    return results


def result_line(result):
    """`FAIL p99 < 50ms (recovery, client): 83.2 ms`, or `pass ...`."""
    value = result["value"]
    if value is None:
        shown = "no figure (nothing measured)"
    elif result["unit"] == "ms":
        shown = f"{value:.1f} ms"
    elif result["unit"] == "ratio":
        shown = f"{value:.4g}"
    elif result["unit"] == "req/s":
        shown = f"{value:.1f} req/s"
    else:
        shown = f"{value:g}"
    return f"{'pass' if result['pass'] else 'FAIL'} {result['name']}: {shown}"
