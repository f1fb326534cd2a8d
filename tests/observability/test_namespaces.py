"""The dashboards' namespace, job and pod variables against a real
Prometheus holding several clusters' worth of series from the real binaries:

- `team-a` and `team-b`: one release each, labelled as the chart's
  ServiceMonitor labels them (job = the Service's name, the same in both
  namespaces, plus namespace, service, pod, container, endpoint); team-a has
  two backend pods, team-b one, and both have a pod named
  gatewaylab-backend-0;
- `team-c`: a gateway and a backend in one scrape job (`kubernetes-pods`),
  as annotation-based discovery (prometheus.io/scrape) labels them;
- `gateway` and `backend`: the local setup (deploy/prometheus/prometheus.yml),
  no namespace or pod label at all.

Each gateway gets a short bounded load (a few hundred requests in all). Then
every variable is resolved as Grafana would (label_values through
/api/v1/label/<name>/values with match[]), and every selector of every panel
query must read exactly the chosen namespaces' (and pods') targets of the
dashboard's own service: with one namespace, only its; with All, every one,
the local targets included; with a pod, that pod alone."""

import time
import unittest

import grafana
import promql
from test_live import DASHBOARDS, HOST, Stack, assert_finite_result, parse_ts, support, wait_until

STACK = None
RELEASE = "gatewaylab"
REQUESTS_PER_GATEWAY = 60
ROUNDS = 3


def servicemonitor_labels(namespace, component, pod):
    """The target labels the Prometheus Operator gives the chart's ServiceMonitor's targets."""
    service = f"{RELEASE}-{component}" if component == "gateway" else f"{RELEASE}-backend-headless"
    return {"job": service, "namespace": namespace, "service": service, "pod": pod,
            "container": component, "endpoint": "http"}


def setUpModule():
    global STACK
    support.require_binaries()
    stack = STACK = Stack()
    unittest.addModuleCleanup(stack.stop)
    quiet = {"BACKEND__LOG__LEVEL": "warn", "GATEWAY__LOG__LEVEL": "warn", "GATEWAY__LOG__ACCESS_LOG": "false"}

    # namespace (None: the local setup) -> (how its targets are labelled, its backends' pod names)
    layouts = {
        "team-a": ("servicemonitor", ["gatewaylab-backend-0", "gatewaylab-backend-1"]),
        "team-b": ("servicemonitor", ["gatewaylab-backend-0"]),
        "team-c": ("pods", ["gatewaylab-backend-0"]),
        None: ("local", [None]),
    }
    stack.targets = []  # (service, namespace, pod, instance)
    static = {}  # job -> [static_config]
    for namespace, (how, backend_pods) in layouts.items():
        backend_urls = []
        for i, pod in enumerate(backend_pods):
            proc = stack.backend(f"backend-{namespace or 'local'}-{i}", env=quiet, ready="/healthz", timeout=15,
                                 merge_output=True)
            instance = f"{HOST}:{proc.port}"
            backend_urls.append(f"server{i + 1}=http://{instance}")
            stack.targets.append(("backend", namespace, pod, instance))
        gw_pod = f"{RELEASE}-gateway-7c9d5-{namespace[-1]}x2q" if namespace else None
        gw = stack.gateway(f"gateway-{namespace or 'local'}", env={"GATEWAY__SERVERS": ",".join(backend_urls), **quiet},
                           ready="/healthz", timeout=15, merge_output=True)
        stack.targets.append(("gateway", namespace, gw_pod, f"{HOST}:{gw.port}"))
    for component, namespace, pod, instance in stack.targets:
        how = layouts[namespace][0]
        if how == "servicemonitor":
            labels = servicemonitor_labels(namespace, component, pod)
        elif how == "pods":
            labels = {"job": "kubernetes-pods", "namespace": namespace, "pod": pod}
        else:
            labels = {"job": component}
        job = labels.pop("job")
        static.setdefault(job, []).append({"targets": [instance], "labels": labels})
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [{"job_name": job, "static_configs": cfgs} for job, cfgs in static.items()],
    }
    ports = support.free_ports(1)
    stack.prometheus(config, ports[0])
    n = len(stack.targets)
    wait_until(lambda: sum(t["health"] == "up" for t in stack.prom.targets()) == n, 20, "first scrapes", interval=0.1)

    # In rounds a few scrapes apart: a series' first sample already holds
    # what came before it, so a rate sees only what later rounds add.
    stack.statuses = {}
    gateways = [(ns, int(i.rsplit(":", 1)[1])) for c, ns, _, i in stack.targets if c == "gateway"]
    for namespace, port in gateways:
        wait_until(lambda: all(s["state"] == "up" for s in support.servers(port)), 15, f"{namespace}'s backends up")
    for r in range(ROUNDS):
        for namespace, port in gateways:
            for i in range(REQUESTS_PER_GATEWAY // ROUNDS):
                path = "/api/data?status=500" if i % 10 < 2 else "/api/data"
                status, _, _ = support.request(port, "GET", path, headers={"x-request-id": f"ns-{namespace}-{r}-{i}"})
                stack.statuses.setdefault(namespace, []).append(status)
        time.sleep(1.5)
    load_end = time.time()

    def scraped_twice_after_load():
        ts = stack.prom.targets()
        return len(ts) == n and all(parse_ts(t["lastScrape"]) > load_end + 1.2 for t in ts)

    wait_until(scraped_twice_after_load, 20, "scrapes after the load", interval=0.1)


def targets_of(component, namespaces=None, pods=None):
    """Instances of `component` in `namespaces` (None: every one, the local
    ones without a namespace included) and, with `pods`, of those pods."""
    return sorted(i for c, ns, pod, i in STACK.targets
                  if c == component and (namespaces is None or ns in namespaces) and (pods is None or pod in pods))


DASHBOARD_COMPONENT = {"gateway.json": "gateway", "backend.json": "backend"}


class Load(unittest.TestCase):
    def test_every_gateway_proxied_its_requests(self):
        for namespace, statuses in STACK.statuses.items():
            with self.subTest(namespace=namespace):
                self.assertEqual(sorted(set(statuses)), [200, 500], statuses)


class Variables(unittest.TestCase):
    def test_namespace_lists_every_namespace(self):
        for name in DASHBOARD_COMPONENT:
            _, resolved = grafana.resolve_variables(grafana.load(DASHBOARDS / name), STACK.prom)
            with self.subTest(dashboard=name):
                self.assertEqual(resolved["namespace"], ["team-a", "team-b", "team-c"])

    def test_job_and_pod_follow_the_namespace(self):
        want = {
            ("gateway.json", "team-a"): (["gatewaylab-gateway"], ["gatewaylab-gateway-7c9d5-ax2q"]),
            ("gateway.json", "team-c"): (["kubernetes-pods"], ["gatewaylab-gateway-7c9d5-cx2q"]),
            ("backend.json", "team-a"): (["gatewaylab-backend-headless"], ["gatewaylab-backend-0", "gatewaylab-backend-1"]),
            ("backend.json", "team-b"): (["gatewaylab-backend-headless"], ["gatewaylab-backend-0"]),
            ("backend.json", "team-c"): (["kubernetes-pods"], ["gatewaylab-backend-0"]),
        }
        for (name, ns), (jobs, pods) in want.items():
            d = grafana.load(DASHBOARDS / name)
            _, resolved = grafana.resolve_variables(d, STACK.prom, {"namespace": [ns]})
            with self.subTest(dashboard=name, namespace=ns):
                self.assertEqual(resolved["job"], jobs)
                self.assertEqual(resolved["pod"], pods)
                self.assertEqual(resolved["instance"], targets_of(DASHBOARD_COMPONENT[name], [ns]))

    def test_all_lists_every_job_and_pod(self):
        for name, component in DASHBOARD_COMPONENT.items():
            _, resolved = grafana.resolve_variables(grafana.load(DASHBOARDS / name), STACK.prom)
            with self.subTest(dashboard=name):
                local = "gateway" if component == "gateway" else "backend"
                service = "gatewaylab-gateway" if component == "gateway" else "gatewaylab-backend-headless"
                self.assertEqual(resolved["job"], sorted([local, service, "kubernetes-pods"]))
                self.assertEqual(resolved["instance"], targets_of(component))


class Panels(unittest.TestCase):
    def check(self, name, selected, expected_instances):
        """Every panel query, with `selected`, returns finite data, and every
        selector in it reads exactly `expected_instances` (those of them that
        have the selector's series)."""
        d = grafana.load(DASHBOARDS / name)
        values, _ = grafana.resolve_variables(d, STACK.prom, selected)
        everything, _ = grafana.resolve_variables(d, STACK.prom)
        checked = 0
        for title, ref, expr in grafana.targets(d):
            query = grafana.substitute(expr, values)
            context = f"{name} {selected} panel {title!r} {ref}: {query}"
            with self.subTest(selected=selected, panel=title, ref=ref):
                assert_finite_result(self, STACK.prom.query(query), context)
                wide = promql.selectors(grafana.substitute(expr, everything))
                for sel, unscoped in zip(promql.selectors(query), wide, strict=True):
                    # What the selector reads, against the targets of the
                    # dashboard's service that have its series at all.
                    seen, having = ({s["metric"].get("instance") for s in
                                     STACK.prom.query(f"count by (instance) ({x})")["result"]} for x in (sel, unscoped))
                    self.assertTrue(seen, f"selector {sel} matches nothing: {context}")
                    self.assertEqual(seen, having & set(expected_instances), f"selector {sel}: {context}")
                checked += 1
        self.assertGreater(checked, 10)

    def test_one_namespace(self):
        for name, component in DASHBOARD_COMPONENT.items():
            for ns in ("team-a", "team-b", "team-c"):
                self.check(name, {"namespace": [ns]}, targets_of(component, [ns]))

    def test_two_namespaces(self):
        for name, component in DASHBOARD_COMPONENT.items():
            self.check(name, {"namespace": ["team-a", "team-b"]}, targets_of(component, ["team-a", "team-b"]))

    def test_all_includes_series_without_kubernetes_labels(self):
        for name, component in DASHBOARD_COMPONENT.items():
            self.check(name, {}, targets_of(component))
            self.assertTrue(targets_of(component, [None]))

    def test_one_pod_of_a_name_two_namespaces_share(self):
        self.check("backend.json", {"namespace": ["team-b"], "pod": ["gatewaylab-backend-0"]},
                   targets_of("backend", ["team-b"], ["gatewaylab-backend-0"]))
        self.check("backend.json", {"namespace": ["team-a"], "pod": ["gatewaylab-backend-1"]},
                   targets_of("backend", ["team-a"], ["gatewaylab-backend-1"]))

    def test_per_pod_lines_keep_namespaces_apart(self):
        # gatewaylab-backend-0 of team-a and of team-b are two lines under All.
        d = grafana.load(DASHBOARDS / "backend.json")
        values, _ = grafana.resolve_variables(d, STACK.prom)
        [expr] = [e for t, _, e in grafana.targets(d) if t == "Request rate per pod"]
        result = STACK.prom.query(grafana.substitute(expr, values))["result"]
        keys = sorted((s["metric"].get("namespace", ""), s["metric"].get("pod", "")) for s in result)
        self.assertEqual(keys, sorted([("", ""), ("team-a", "gatewaylab-backend-0"), ("team-a", "gatewaylab-backend-1"),
                                       ("team-b", "gatewaylab-backend-0"), ("team-c", "gatewaylab-backend-0")]))
        self.assertTrue(all(float(s["value"][1]) > 0 for s in result), result)


if __name__ == "__main__":
    unittest.main()
