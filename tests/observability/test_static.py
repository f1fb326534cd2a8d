"""Checks that need no running service: the dashboards' structure (what
Grafana and its provisioning sidecar rely on), their Helm chart copies, the
alert rules (`promtool check rules`, `promtool test rules`), the example
Prometheus config, and this directory's PromQL scanner."""

import re
import shutil
import subprocess
import unittest
from pathlib import Path

import grafana
import promql

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "deploy" / "grafana"
CHART_DASHBOARDS = ROOT / "helm" / "gatewaylab" / "dashboards"
PROMETHEUS = ROOT / "deploy" / "prometheus"
EXPECTED = {"gateway.json": "gatewaylab-gateway", "backend.json": "gatewaylab-backend"}
RUNBOOKS = ROOT / "docs" / "runbooks.md"
CHART = ROOT / "helm" / "gatewaylab" / "Chart.yaml"
# The variables every query filters by, and the matcher each must use.
SCOPE = ("namespace", "job", "pod")


def promtool(*args):
    exe = shutil.which("promtool")
    if not exe:
        raise AssertionError("promtool not found: run `make deps` (Debian package prometheus)")
    return subprocess.run([exe, *args], capture_output=True, text=True, cwd=ROOT, timeout=60)


class Dashboards(unittest.TestCase):
    def test_the_expected_dashboards_exist(self):
        self.assertEqual(sorted(p.name for p in DASHBOARDS.glob("*.json")), sorted(EXPECTED))

    def test_fixed_uid_and_no_id(self):
        for name, uid in EXPECTED.items():
            d = grafana.load(DASHBOARDS / name)
            with self.subTest(dashboard=name):
                self.assertEqual(d.get("uid"), uid)
                self.assertNotIn("id", d, "a dashboard id makes imports clash; only the uid may be fixed")
                self.assertTrue(d.get("title"))

    def test_datasource_variable_and_every_query_uses_it(self):
        for name in EXPECTED:
            d = grafana.load(DASHBOARDS / name)
            variables = {v["name"]: v for v in d["templating"]["list"]}
            with self.subTest(dashboard=name):
                ds = variables.get("datasource")
                self.assertIsNotNone(ds, "no `datasource` template variable")
                self.assertEqual(ds["type"], "datasource")
                self.assertEqual(ds["query"], "prometheus")
                want = {"type": "prometheus", "uid": "${datasource}"}
                for v in variables.values():
                    if v["type"] == "query":
                        self.assertEqual(v.get("datasource"), want, f"variable {v['name']}")
                for p in grafana.panels(d):
                    self.assertEqual(p.get("datasource"), want, f"panel {p.get('title')}")
                    self.assertTrue(p.get("targets"), f"panel {p.get('title')} has no query")
                    for t in p["targets"]:
                        self.assertEqual(t.get("datasource"), want, f"panel {p.get('title')} {t.get('refId')}")
                        self.assertTrue(t.get("expr", "").strip(), f"panel {p.get('title')} {t.get('refId')}: empty expr")

    def test_range_windows_are_rate_interval(self):
        for name in EXPECTED:
            d = grafana.load(DASHBOARDS / name)
            for title, ref, expr in grafana.targets(d):
                with self.subTest(dashboard=name, panel=title, ref=ref):
                    windows = re.findall(r"\[([^\]]*)\]", expr)
                    for w in windows:
                        self.assertEqual(w, "$__rate_interval", f"range window [{w}] in {expr}")
                    if re.search(r"\b(rate|irate|increase)\s*\(", expr):
                        self.assertTrue(windows, expr)

    def test_no_query_hides_a_missing_series(self):
        # `or vector(0)` and absent() would make a query return data whatever
        # its selectors match, which defeats the live check. Panels show 0 for
        # "no data" through fieldConfig noValue instead.
        for name in EXPECTED:
            d = grafana.load(DASHBOARDS / name)
            for title, ref, expr in grafana.targets(d):
                with self.subTest(dashboard=name, panel=title, ref=ref):
                    self.assertNotRegex(expr, r"\bor\s+vector\s*\(|\babsent(_over_time)?\s*\(")

    def test_panel_ids_unique_and_layout_present(self):
        for name in EXPECTED:
            d = grafana.load(DASHBOARDS / name)
            everything = list(grafana.panels(d)) + grafana.rows(d)
            ids = [p.get("id") for p in everything]
            with self.subTest(dashboard=name):
                self.assertEqual(len(ids), len(set(ids)), "duplicate panel ids")
                for p in everything:
                    g = p.get("gridPos", {})
                    self.assertTrue({"h", "w", "x", "y"} <= set(g), f"panel {p.get('title')}: gridPos {g}")
                    self.assertLessEqual(g["x"] + g["w"], 24, p.get("title"))

    def test_cluster_variables(self):
        # namespace, job and pod, each filtered by the ones before it; All
        # for namespace and pod is `.*`, which also matches series without
        # the label (a plain Prometheus outside Kubernetes); job's All is
        # every listed job, so a dashboard never reads another service's
        # series. Each is listed from a metric only its own service exports.
        own = {"gateway.json": "gateway_backends", "backend.json": "backend_fault_mode"}
        for name in EXPECTED:
            d = grafana.load(DASHBOARDS / name)
            variables = {v["name"]: v for v in d["templating"]["list"]}
            order = [v["name"] for v in d["templating"]["list"]]
            with self.subTest(dashboard=name):
                self.assertEqual(order[:4], ["datasource", *SCOPE])
                metric = own[name]
                want = {
                    "namespace": f"label_values({metric}, namespace)",
                    "job": f'label_values({metric}{{namespace=~"$namespace"}}, job)',
                    "pod": f'label_values({metric}{{namespace=~"$namespace", job=~"$job"}}, pod)',
                }
                for var, definition in want.items():
                    v = variables[var]
                    self.assertEqual((v["type"], v["definition"], v["query"]["query"]),
                                     ("query", definition, definition), var)
                    self.assertTrue(v["multi"] and v["includeAll"], f"{var}: multi-value with All")
                    self.assertEqual(v["current"].get("value"), ["$__all"], f"{var}: defaults to All")
                    self.assertEqual(v.get("hide", 0), 0, f"{var} is hidden")
                    self.assertEqual(v.get("allValue"), None if var == "job" else ".*", var)
                for var, v in variables.items():
                    if v["type"] == "query" and var not in want:
                        # Anything else (the hidden instance list) narrows the three, never widens them.
                        for scope in SCOPE:
                            self.assertIn(f'{scope}=~"${scope}"', v["definition"], var)
                        self.assertIsNone(v.get("allValue"), var)

    def test_every_query_filters_by_namespace_job_and_pod(self):
        for name in EXPECTED:
            d = grafana.load(DASHBOARDS / name)
            for title, ref, expr in grafana.targets(d):
                sels = promql.selectors(expr)
                with self.subTest(dashboard=name, panel=title, ref=ref):
                    self.assertTrue(sels, expr)
                    for sel in sels:
                        matchers = set(re.findall(r'([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"', sel))
                        for scope in SCOPE:
                            self.assertIn((scope, "=~", f"${scope}"), matchers, f"{sel} in {expr}")

    def test_every_panel_has_a_unit(self):
        for name in EXPECTED:
            d = grafana.load(DASHBOARDS / name)
            for p in grafana.panels(d):
                with self.subTest(dashboard=name, panel=p.get("title")):
                    self.assertTrue(p.get("fieldConfig", {}).get("defaults", {}).get("unit"), "no unit")

    def test_cpu_panels_are_shares_of_a_core(self):
        # rate(process_cpu_seconds_total) is cores busy: percentunit shows 1 as 100%.
        for name in EXPECTED:
            d = grafana.load(DASHBOARDS / name)
            [p] = [p for p in grafana.panels(d) if p["title"] == "CPU"]
            with self.subTest(dashboard=name):
                self.assertEqual(p["fieldConfig"]["defaults"]["unit"], "percentunit")
                self.assertIn("rate(process_cpu_seconds_total{", p["targets"][0]["expr"])
                self.assertIn("100% = one core", p["description"])

    def test_legends_name_pods(self):
        # A query that splits by pod says which pod in its legend; none names
        # a scrape address (instance) instead.
        for name in EXPECTED:
            d = grafana.load(DASHBOARDS / name)
            for p in grafana.panels(d):
                for t in p["targets"]:
                    legend = t.get("legendFormat", "")
                    with self.subTest(dashboard=name, panel=p["title"], ref=t["refId"]):
                        self.assertNotIn("{{instance}}", legend)
                        groups = re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", t["expr"])
                        if any("pod" in [g.strip() for g in grp.split(",")] for grp in groups):
                            self.assertTrue(legend.startswith("{{pod}}") or "{{pod}}" in legend, legend)
                            self.assertIn("namespace", groups[0], "split by pod within namespace")

    def test_chart_packages_the_same_dashboards(self):
        ours = {p.name: p.read_bytes() for p in DASHBOARDS.glob("*.json")}
        chart = {p.name: p.read_bytes() for p in CHART_DASHBOARDS.glob("*.json")}
        self.assertEqual(sorted(chart), sorted(ours), "copy deploy/grafana/*.json to helm/gatewaylab/dashboards/")
        for name in ours:
            self.assertEqual(chart[name], ours[name], f"helm/gatewaylab/dashboards/{name} differs from deploy/grafana/{name}")


class AlertRules(unittest.TestCase):
    def test_promtool_check_rules(self):
        r = promtool("check", "rules", str(PROMETHEUS / "alerts.yml"))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_promtool_unit_tests(self):
        r = promtool("test", "rules", str(PROMETHEUS / "alerts_test.yml"))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_every_alert_has_unit_tests_that_fire_and_that_do_not(self):
        import yaml
        rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
        alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
        tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())["tests"]
        fires, quiet = set(), set()
        for t in tests:
            for case in t.get("alert_rule_test", []):
                (fires if case.get("exp_alerts") else quiet).add(case["alertname"])
        self.assertEqual(sorted(alerts - fires), [], "alerts without a firing case")
        self.assertEqual(sorted(alerts - quiet), [], "alerts without a non-firing case")

    def test_every_alert_has_a_runbook_section(self):
        import yaml
        rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
        home = yaml.safe_load(CHART.read_text())["home"].rstrip("/")
        base = f"{home}/blob/main/docs/runbooks.md#"
        anchors = runbook_anchors()
        alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
        self.assertTrue(alerts)
        for r in alerts:
            with self.subTest(alert=r["alert"]):
                url = r.get("annotations", {}).get("runbook_url", "")
                self.assertTrue(url.startswith(base), f"runbook_url {url!r} is not under {base}")
                anchor = url[len(base):]
                self.assertEqual(anchor, r["alert"].lower(), "the section is named after the alert")
                self.assertIn(anchor, anchors, f"docs/runbooks.md has no section #{anchor}")
                section = anchors[anchor]
                for what in ("Meaning", "Confirm", "Act"):
                    self.assertIn(f"**{what}", section, f"#{anchor} does not say {what}")

    def test_example_prometheus_config(self):
        r = promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


def runbook_anchors():
    """{GitHub anchor: section text} of docs/runbooks.md's level-2 headings."""
    sections, current = {}, None
    for line in RUNBOOKS.read_text().splitlines():
        if line.startswith("## "):
            slug = re.sub(r"[^\w\- ]", "", line[3:].strip().lower()).replace(" ", "-")
            current = sections.setdefault(slug, [])
        elif current is not None:
            current.append(line)
    return {k: "\n".join(v) for k, v in sections.items()}


class Scanner(unittest.TestCase):
    def test_selectors(self):
        self.assertEqual(
            promql.selectors('sum by (le) (rate(a_b{x="}",y=~"5..|"}[5m])) / ignoring(z) c offset 5m'
                             ' or vector(0) and on (job, instance) gateway_backends'),
            ['a_b{x="}",y=~"5..|"}', "c", "gateway_backends"])
        self.assertEqual(
            promql.selectors('histogram_quantile(0.99, sum(rate(h_bucket{i=~"$i"}[$__rate_interval])) by (le)) > 1.5e3'),
            ['h_bucket{i=~"$i"}'])
        self.assertEqual(promql.selectors('max by (i) (time() - p{job="a"}) + {__name__="up"}'),
                         ['p{job="a"}', '{__name__="up"}'])

    def test_variable_formatting(self):
        self.assertEqual(grafana.format_multi(["127.0.0.1:5000", "a|b"]), r"(127\\.0\\.0\\.1:5000|a\\|b)")
        self.assertEqual(grafana.substitute('x{i=~"$instance",j="${job}"}[$__rate_interval]',
                                            {"instance": "I", "job": "J", "__rate_interval": "1m"}),
                         'x{i=~"I",j="J"}[1m]')


if __name__ == "__main__":
    unittest.main()
