"""Reading Grafana dashboard JSON the way Grafana does for the tests: the
panels (rows' nested panels included), the query targets, and template
variables resolved against a real Prometheus and substituted into the
expressions (multi-value and "All" as a regex alternation, as Grafana's
Prometheus data source formats them; a variable's `allValue` for "All"
when it has one)."""

import json
import re
from pathlib import Path

# Grafana's built-in interval variables, with the value the tests use.
BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__range": "15m"}


def load(path):
    return json.loads(Path(path).read_text())


def panels(dashboard):
    """Every panel, rows' nested panels included, rows themselves excluded."""
    for p in dashboard.get("panels", []):
        if p.get("type") == "row":
            yield from p.get("panels", [])
        else:
            yield p


def rows(dashboard):
    return [p for p in dashboard.get("panels", []) if p.get("type") == "row"]


def targets(dashboard):
    """(panel title, refId, expr) of every Prometheus query target."""
    for p in panels(dashboard):
        for t in p.get("targets", []):
            yield p.get("title", "?"), t.get("refId", "?"), t.get("expr", "")


def regex_escape(value):
    """A value as a regex inside a PromQL double-quoted string."""
    return re.escape(value).replace("\\", "\\\\")


def format_multi(values):
    """How Grafana's Prometheus data source renders a multi-value / All variable."""
    escaped = [regex_escape(v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


_VAR = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def substitute(text, values):
    """Replaces $var, ${var}, ${var:fmt} and [[var]]; unknown names stay."""
    def repl(m):
        name = m.group(1) or m.group(2) or m.group(3)
        return values.get(name, m.group(0))
    return _VAR.sub(repl, text)


def unresolved(text):
    return [m.group(0) for m in _VAR.finditer(text)]


_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(.*),\s*)?([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$", re.S)
_QUERY_RESULT = re.compile(r"^\s*query_result\((.*)\)\s*$", re.S)


def _apply_regex(regex, texts):
    if not regex:
        return texts
    m = re.match(r"^/(.*)/([gimsuy]*)$", regex, re.S)
    pattern = re.compile(m.group(1) if m else regex, re.I if m and "i" in m.group(2) else 0)
    out = []
    for t in texts:
        found = pattern.search(t)
        if found:
            out.append(found.group(1) if found.groups() else t)
    return out


def _sample_text(sample):
    """A query_result line as Grafana renders it: name{labels} value timestamp_ms."""
    metric = dict(sample["metric"])
    name = metric.pop("__name__", "")
    labels = ",".join(f'{k}="{v}"' for k, v in metric.items())
    ts, value = sample["value"]
    return f"{name}{{{labels}}} {value} {int(float(ts) * 1000)}"


def resolve_variables(dashboard, prom, selected=None):
    """{name: substituted value} for every template variable, each query
    variable resolved through `prom` (a Prometheus client with .query and
    .label_values(label, match)) in order, so that a variable's query sees
    the values chosen for the variables before it; and {name: [options]}.

    `selected` ({name: [values]}) picks values as a user would; any other
    variable is at "All" (what the dashboards default to): its `allValue`
    when it has one, else every option as a regex alternation, as Grafana
    does. label_values(match, label) is answered, as Grafana's Prometheus
    data source does, by /api/v1/label/<label>/values?match[]=match, which
    lists no value for series without the label. A variable with no option
    at all is at All as well if it has an `allValue` (Grafana then defaults
    to All); otherwise, or for a type this helper does not know, or for a
    selected value that is not an option, raises AssertionError."""
    selected = selected or {}
    values = dict(BUILTINS)
    resolved = {}
    for var in dashboard.get("templating", {}).get("list", []):
        name, kind = var["name"], var.get("type")
        if kind == "datasource":
            continue  # only ever used as a panel's data source uid
        if kind == "constant":
            values[name] = var["query"]
            continue
        if kind == "custom":
            options = [o.strip() for o in var["query"].split(",") if o.strip()]
        elif kind == "query":
            q = var.get("query")
            definition = q.get("query") if isinstance(q, dict) else q
            definition = substitute(definition, values)
            left = unresolved(definition)
            if left:
                raise AssertionError(f"variable {name}: {left} unresolved in {definition!r}")
            if m := _LABEL_VALUES.match(definition):
                match, label = m.group(1), m.group(2)
                options = prom.label_values(label, match)
            elif m := _QUERY_RESULT.match(definition):
                options = [_sample_text(s) for s in prom.query(m.group(1))["result"]]
            else:
                raise AssertionError(f"variable {name}: unsupported query {definition!r}")
            options = sorted(set(_apply_regex(var.get("regex", ""), options)))
        else:
            raise AssertionError(f"variable {name}: unsupported type {kind!r}")
        resolved[name] = options
        multi = var.get("multi") or var.get("includeAll")
        if name in selected:
            chosen = list(selected[name])
            missing = [v for v in chosen if v not in options]
            if missing or not chosen:
                raise AssertionError(f"variable {name}: {missing or chosen} not among its options {options}")
            values[name] = format_multi(chosen) if multi else regex_escape(chosen[0])
        elif var.get("includeAll") and "allValue" in var and var["allValue"] is not None:
            values[name] = var["allValue"]
        elif not options:
            raise AssertionError(f"variable {name} ({var.get('definition') or var.get('query')}) resolved to no values")
        else:
            values[name] = format_multi(options) if multi else regex_escape(options[0])
    return values, resolved
