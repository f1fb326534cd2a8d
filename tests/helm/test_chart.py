"""The chart, checked offline with the real helm binary: lint, render every
ci/ values file, validate every manifest against the Kubernetes API schemas,
and policy checks on what is rendered.

Run with `make test-helm` (or `.venv/bin/python -m unittest discover -s tests/helm`).
"""

import json
import re
import subprocess
import tarfile
import tempfile
import unittest
from pathlib import Path

import kubernetes_validate
import yaml

import chartlib as c
import values_table

RENDERED = {name: c.render(values, args) for name, values, args in c.ci_cases()}


def k8s_versions():
    """The oldest and newest supported versions, which kubernetes-validate must bundle.
    (Every version in between was checked once by hand; the chart uses no API
    that appeared or went away inside the range.)"""
    schemas = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    found = set()
    for d in schemas.iterdir():
        m = re.match(r"v(\d+)\.(\d+)\.\d+-local-strict$", d.name)
        if m:
            found.add((int(m.group(1)), int(m.group(2))))
    for version in (c.OLDEST_K8S, c.NEWEST_K8S):
        assert version in found, f"kubernetes-validate bundles {sorted(found)}, not {version}"
    return ["%d.%d.0" % c.OLDEST_K8S, "%d.%d.0" % c.NEWEST_K8S]


def labels_match(selector, labels):
    return all((labels or {}).get(k) == v for k, v in selector.items())


def matches_expressions(expressions, labels):
    for e in expressions or []:
        value = (labels or {}).get(e["key"])
        op = e["operator"]
        if op == "In" and value not in e["values"]:
            return False
        if op == "NotIn" and value in e["values"]:
            return False
        if op == "Exists" and value is None:
            return False
        if op == "DoesNotExist" and value is not None:
            return False
    return True


def workloads(docs):
    return [(d, *c.pod_template(d)) for d in docs if d["kind"] in c.WORKLOAD_KINDS]


def is_hook_test(doc):
    return (doc["metadata"].get("annotations") or {}).get("helm.sh/hook") == "test"


class LintAndRender(unittest.TestCase):
    def test_lint_strict_with_defaults_and_every_ci_file(self):
        for name, values, args in c.ci_cases():
            with self.subTest(case=name):
                lint = ["lint", "--strict", str(c.CHART)]
                if values:
                    lint += ["-f", str(values)]
                proc = c.helm(*lint, check=False)
                self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
                self.assertIn("0 chart(s) failed", proc.stdout)

    def test_ci_folder_covers_the_required_cases(self):
        names = {name for name, _, _ in c.ci_cases()}
        for required in ("defaults", "distributed-values", "dns-discovery-values", "servicemonitor-values",
                         "tracing-values", "prometheusrule-values", "scenario-values"):
            self.assertIn(required, names)
        self.assertTrue(one_of(RENDERED["distributed-values"], "Job", "locust-worker"))
        self.assertFalse(c.find(RENDERED["dns-discovery-values"], "Job"))
        cfg = gateway_config(RENDERED["dns-discovery-values"])
        self.assertEqual(cfg["discovery"]["dns_name"],
                         f"gatewaylab-backend-headless.{c.NAMESPACE}.svc.cluster.local")
        self.assertNotIn("servers", cfg)
        self.assertTrue(c.find(RENDERED["servicemonitor-values"], "ServiceMonitor"))
        self.assertTrue(c.find(RENDERED["prometheusrule-values"], "PrometheusRule"))
        self.assertIn("OTEL_EXPORTER_OTLP_ENDPOINT", gateway_env(RENDERED["tracing-values"]))
        self.assertTrue(c.find(RENDERED["scenario-values"], "ConfigMap", name="gatewaylab-scenario"))

    def test_kube_version_constraint_accepts_the_supported_range(self):
        for version in (c.OLDEST_K8S, c.NEWEST_K8S):
            with self.subTest(version=version):
                c.helm(*c.template_args(extra=["--kube-version", "%d.%d.0" % version]))
        proc = c.helm(*c.template_args(extra=["--kube-version", "1.24.0"]), check=False)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("kubeVersion", proc.stderr + proc.stdout)


def one_of(docs, kind, component):
    return c.find(docs, kind, component=component)


def gateway_env(docs, component="gateway"):
    """The resolved environment of the gateway (or backend-0) container."""
    kind = "Deployment" if component == "gateway" else "StatefulSet"
    workload = c.one(docs, kind, component=component)
    ctr = workload["spec"]["template"]["spec"]["containers"][0]
    return c.resolve_env(docs, ctr, f"{workload['metadata']['name']}-0")


def gateway_config(docs):
    cm = c.one(docs, "ConfigMap", name="gatewaylab-gateway")
    return yaml.safe_load(cm["data"]["gateway.yaml"])


class KubernetesSchemas(unittest.TestCase):
    def test_every_manifest_validates_strictly_against_oldest_and_newest_supported_version(self):
        versions = k8s_versions()
        for name, docs in RENDERED.items():
            for doc in docs:
                if doc["apiVersion"].startswith("monitoring.coreos.com/"):
                    continue  # CRDs, checked by test_service_monitor_* and PrometheusRuleFromTheAlertsFile
                for version in versions:
                    with self.subTest(case=name, kind=doc["kind"], name=doc["metadata"]["name"], k8s=version):
                        try:
                            kubernetes_validate.validate(doc, version, strict=True)
                        except kubernetes_validate.ValidationError as e:
                            self.fail(f"{e.message}")

    def test_strict_validation_catches_an_unknown_field(self):
        # The check above could pass vacuously if strict mode ignored extras.
        doc = json.loads(json.dumps(c.one(RENDERED["defaults"], "Deployment")))
        doc["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
        with self.assertRaises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(doc, "%d.%d.0" % c.NEWEST_K8S, strict=True)


class Policy(unittest.TestCase):
    REQUIRED_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component",
                       "app.kubernetes.io/version", "app.kubernetes.io/managed-by", "app.kubernetes.io/part-of",
                       "helm.sh/chart")

    def each_case(self):
        for name, docs in RENDERED.items():
            yield name, docs

    def test_standard_labels_on_every_resource_and_pod(self):
        for name, docs in self.each_case():
            for d in docs:
                labels = d["metadata"].get("labels") or {}
                for key in self.REQUIRED_LABELS:
                    self.assertIn(key, labels, f"{name}: {d['kind']}/{d['metadata']['name']}")
                self.assertEqual(labels["app.kubernetes.io/instance"], c.RELEASE)
            for d, meta, _ in workloads(docs):
                for key in self.REQUIRED_LABELS:
                    self.assertIn(key, meta.get("labels") or {}, f"{name}: pod of {d['metadata']['name']}")

    def test_containers_have_resources_security_and_pinned_images(self):
        for name, docs in self.each_case():
            for d, _, spec in workloads(docs):
                where = f"{name}: {d['kind']}/{d['metadata']['name']}"
                self.assertIs(spec.get("automountServiceAccountToken"), False, where)
                psc = spec.get("securityContext") or {}
                self.assertIs(psc.get("runAsNonRoot"), True, where)
                self.assertEqual(psc.get("runAsUser"), 65532, where)
                self.assertEqual((psc.get("seccompProfile") or {}).get("type"), "RuntimeDefault", where)
                for ctr in c.all_containers(spec):
                    w = f"{where} container {ctr['name']}"
                    res = ctr.get("resources") or {}
                    for key in ("cpu", "memory"):
                        self.assertIn(key, res.get("requests") or {}, w)
                    self.assertIn("memory", res.get("limits") or {}, w)
                    sc = ctr.get("securityContext") or {}
                    self.assertIs(sc.get("allowPrivilegeEscalation"), False, w)
                    self.assertIs(sc.get("readOnlyRootFilesystem"), True, w)
                    self.assertIs(sc.get("runAsNonRoot"), True, w)
                    self.assertEqual(sc.get("runAsUser"), 65532, w)
                    self.assertIn("ALL", (sc.get("capabilities") or {}).get("drop") or [], w)
                    self.assertFalse((sc.get("capabilities") or {}).get("add"), w)
                    self.assertEqual((sc.get("seccompProfile") or {}).get("type"), "RuntimeDefault", w)
                    self.assertIs(sc.get("privileged", False), False, w)
                    image = ctr["image"]
                    m = re.fullmatch(r"[a-z0-9./_-]+(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]*))?(?:@sha256:[0-9a-f]{64})?", image)
                    self.assertTrue(m and m.group("tag"), f"{w}: image {image!r} has no tag")
                    self.assertNotEqual(m.group("tag"), "latest", w)
                    self.assertIn(ctr.get("imagePullPolicy"), ("IfNotPresent", "Always", "Never"), w)

    def test_long_running_containers_have_probes_on_declared_ports(self):
        for name, docs in self.each_case():
            for d, _, spec in workloads(docs):
                if d["kind"] == "Job" or is_hook_test(d):
                    continue
                for ctr in spec["containers"]:
                    w = f"{name}: {d['metadata']['name']} container {ctr['name']}"
                    ports = {p["name"]: p["containerPort"] for p in ctr.get("ports") or []}
                    for probe in ("livenessProbe", "readinessProbe"):
                        self.assertIn(probe, ctr, w)
                        http = ctr[probe].get("httpGet")
                        self.assertTrue(http, f"{w}: {probe} is not an HTTP probe")
                        self.assertIn(http["port"], ports, f"{w}: {probe} port {http['port']} is not a named port")

    def test_jobs_do_not_retry_forever_or_restart_in_place(self):
        for name, docs in self.each_case():
            for d in c.find(docs, "Job"):
                w = f"{name}: {d['metadata']['name']}"
                spec = d["spec"]
                self.assertIn(spec["template"]["spec"]["restartPolicy"], ("Never", "OnFailure"), w)
                self.assertIn("activeDeadlineSeconds", spec, w)
                self.assertIn("backoffLimit", spec, w)
            for d in c.find(docs, "Job", component="locust") + c.find(docs, "Job", component="locust-master"):
                self.assertRegex(d["metadata"]["name"], r"-locust-r1$")
                args = d["spec"]["template"]["spec"]["containers"][0]["args"]
                if "--scenario" in args:
                    continue  # the scenario runner's Job (test_scenario.py)
                locust_args = args[args.index("--") + 1:]
                self.assertIn("--headless", locust_args)
                i = locust_args.index("--exit-code-on-error")
                self.assertEqual(locust_args[i + 1], "1")

    def test_selectors_match_pod_labels(self):
        for name, docs in self.each_case():
            pods = workloads(docs)
            for d, meta, _ in pods:
                if d["kind"] in ("Deployment", "StatefulSet"):
                    sel = d["spec"]["selector"]["matchLabels"]
                    self.assertTrue(labels_match(sel, meta["labels"]), f"{name}: {d['metadata']['name']}")
                    self.assertIn("app.kubernetes.io/component", sel)
            for pdb in c.find(docs, "PodDisruptionBudget"):
                sel = pdb["spec"]["selector"]["matchLabels"]
                hits = [d for d, meta, _ in pods if labels_match(sel, meta.get("labels"))]
                self.assertTrue(hits, f"{name}: PDB {pdb['metadata']['name']} selects no pods")
                for d in hits:
                    self.assertGreater(d["spec"].get("replicas", 1), 1,
                                       f"{name}: PDB {pdb['metadata']['name']} over a single replica blocks drains")
            for sts in c.find(docs, "StatefulSet"):
                svc = c.one(docs, "Service", name=sts["spec"]["serviceName"])
                self.assertEqual(svc["spec"].get("clusterIP"), "None", "the StatefulSet's Service must be headless")
                self.assertTrue(labels_match(svc["spec"]["selector"], sts["spec"]["template"]["metadata"]["labels"]))

    def test_every_service_targets_a_named_port_of_its_pods(self):
        for name, docs in self.each_case():
            pods = workloads(docs)
            for svc in c.find(docs, "Service"):
                w = f"{name}: Service {svc['metadata']['name']}"
                selected = [(d, spec) for d, meta, spec in pods
                            if labels_match(svc["spec"]["selector"], meta.get("labels")) and not is_hook_test(d)]
                self.assertTrue(selected, f"{w} selects no pods")
                for port in svc["spec"]["ports"]:
                    target = port["targetPort"]
                    self.assertIsInstance(target, str, f"{w}: targetPort should name a container port")
                    for d, spec in selected:
                        names = {p["name"] for ctr in spec["containers"] for p in ctr.get("ports") or []}
                        self.assertIn(target, names, f"{w}: {d['metadata']['name']} has no port {target!r}")

    def test_every_referenced_configmap_and_secret_is_rendered(self):
        for name, docs in self.each_case():
            cms = {d["metadata"]["name"]: d for d in c.find(docs, "ConfigMap")}
            secrets = {d["metadata"]["name"]: d for d in c.find(docs, "Secret")}
            for d, _, spec in workloads(docs):
                w = f"{name}: {d['metadata']['name']}"
                vols = {v["name"]: v for v in spec.get("volumes") or []}
                for v in vols.values():
                    if "configMap" in v:
                        cm = cms.get(v["configMap"]["name"])
                        self.assertIsNotNone(cm, f"{w}: ConfigMap {v['configMap']['name']} not rendered")
                        for item in v["configMap"].get("items") or []:
                            self.assertIn(item["key"], cm["data"], w)
                    if "secret" in v:
                        s = secrets.get(v["secret"]["secretName"])
                        self.assertIsNotNone(s, f"{w}: Secret {v['secret']['secretName']} not rendered")
                        for item in v["secret"].get("items") or []:
                            self.assertIn(item["key"], s.get("data") or {}, w)
                for ctr in c.all_containers(spec):
                    for m in ctr.get("volumeMounts") or []:
                        self.assertIn(m["name"], vols, f"{w}: mount of undeclared volume {m['name']}")
                        vol = vols[m["name"]]
                        if "subPath" in m and "configMap" in vol:
                            self.assertIn(m["subPath"], cms[vol["configMap"]["name"]]["data"], w)
                    for e in ctr.get("env") or []:
                        src = e.get("valueFrom") or {}
                        if "secretKeyRef" in src:
                            ref = src["secretKeyRef"]
                            self.assertIn(ref["name"], secrets, f"{w}: env {e['name']}")
                            self.assertIn(ref["key"], secrets[ref["name"]]["data"], f"{w}: env {e['name']}")
                        if "configMapKeyRef" in src:
                            ref = src["configMapKeyRef"]
                            self.assertIn(ref["key"], cms[ref["name"]]["data"], f"{w}: env {e['name']}")
                sa = spec.get("serviceAccountName")
                if sa:
                    self.assertTrue(c.find(docs, "ServiceAccount", name=sa), f"{w}: ServiceAccount {sa}")

    def test_every_container_env_resolves_without_duplicate_names(self):
        # Server-side apply (Helm 4's default) refuses an env list naming a variable twice.
        for name, docs in self.each_case():
            for d, _, spec in workloads(docs):
                for ctr in c.all_containers(spec):
                    with self.subTest(case=name, workload=d["metadata"]["name"], container=ctr["name"]):
                        c.resolve_env(docs, ctr, f"{d['metadata']['name']}-0")

    def test_gateway_pod_rolls_when_its_config_changes(self):
        def annotations(docs):
            return c.one(docs, "Deployment", component="gateway")["spec"]["template"]["metadata"]["annotations"]
        base = annotations(RENDERED["defaults"])["checksum/config"]
        changed = annotations(c.render(sets=["gateway.config.upstream.request_timeout=5s"]))["checksum/config"]
        self.assertNotEqual(base, changed)
        self.assertEqual(base, annotations(c.render())["checksum/config"])

    def test_grace_period_covers_shutdown_delay_and_drain(self):
        docs = RENDERED["defaults"]
        gw = c.one(docs, "Deployment", component="gateway")["spec"]["template"]["spec"]
        self.assertEqual(gw["terminationGracePeriodSeconds"], 5 + 15 + 5)
        be = c.one(docs, "StatefulSet", component="backend")["spec"]["template"]["spec"]
        self.assertEqual(be["terminationGracePeriodSeconds"], 5 + 10 + 5)
        docs = c.render(sets=["gateway.config.shutdown.delay=1m30s", "gateway.config.shutdown.drain_timeout=1500ms"])
        gw = c.one(docs, "Deployment", component="gateway")["spec"]["template"]["spec"]
        self.assertEqual(gw["terminationGracePeriodSeconds"], 90 + 2 + 5)
        docs = c.render(sets=["gateway.terminationGracePeriodSeconds=7"])
        gw = c.one(docs, "Deployment", component="gateway")["spec"]["template"]["spec"]
        self.assertEqual(gw["terminationGracePeriodSeconds"], 7)


class ValuesAndOptions(unittest.TestCase):
    def assert_rejected(self, sets, message):
        proc = c.helm(*c.template_args(sets=sets), check=False)
        self.assertNotEqual(proc.returncode, 0, f"--set {sets} was accepted")
        self.assertIn(message, proc.stderr)

    def test_schema_rejects_unknown_keys_and_wrong_types(self):
        self.assert_rejected(["replicas=3"], "additional properties 'replicas' not allowed")
        self.assert_rejected(["gateway.replicaCount=two"], "want integer")
        self.assert_rejected(["gateway.config.upstream.conect_timeout=1s"], "conect_timeout")
        self.assert_rejected(["gateway.config.balancer.strategy=random"], "round_robin")
        self.assert_rejected(["gateway.config.shutdown.delay=soon"], "/gateway/config/shutdown/delay")
        self.assert_rejected(["backend.faults.error_rate=1.5"], "error_rate")
        self.assert_rejected(["locust.users=0"], "/locust/users")
        self.assert_rejected(["locust.image.tag=2.47.0:bad"], "/locust/image/tag")

    def test_impossible_combinations_fail_with_a_reason(self):
        self.assert_rejected(["gateway.backends.mode=register", "locust.enabled=false"], "nothing else registers")
        self.assert_rejected(["gateway.backends.mode=register", "gateway.replicaCount=2"], "one gateway replica")
        self.assert_rejected(["gateway.backends.mode=register", "locust.register=false"], "locust.register=false")
        self.assert_rejected(["locust.register=maybe"], "/locust/register")

    def test_bring_your_own_locustfile(self):
        def locust_pods(docs):
            return [(d, spec) for d, _, spec in workloads(docs)
                    if d["metadata"]["labels"]["app.kubernetes.io/component"].startswith("locust")]

        def locustfile_arg(spec):
            args = spec["containers"][0]["args"]
            return args[args.index("-f") + 1]

        # From values: the text and a module beside it, in the chart's ConfigMap.
        docs = c.render(sets=["locust.locustfile.content=from locust import HttpUser",
                              "locust.locustfile.extraFiles.helpers\\.py=X = 1", "locust.ui.enabled=true",
                              "locust.distributed.enabled=true"])
        cm = c.one(docs, "ConfigMap", name="gatewaylab-locust")
        self.assertEqual(cm["data"]["locustfile.py"], "from locust import HttpUser\n")
        self.assertEqual(cm["data"]["helpers.py"], "X = 1\n")
        self.assertEqual(len(locust_pods(docs)), 3)
        for d, spec in locust_pods(docs):
            self.assertEqual(locustfile_arg(spec), "/mnt/locustfile/locustfile.py", d["metadata"]["name"])
        default_sum = c.one(RENDERED["defaults"], "Job")["spec"]["template"]["metadata"]["annotations"]
        custom_sum = c.one(docs, "Job", component="locust-master")["spec"]["template"]["metadata"]["annotations"]
        self.assertNotEqual(default_sum["checksum/locustfile"], custom_sum["checksum/locustfile"])
        # From the user's ConfigMap, mounted as a directory.
        docs = c.render(sets=["locust.locustfile.existingConfigMap=my-load",
                              "locust.locustfile.existingConfigMapKey=shop.py", "locust.distributed.enabled=true"])
        self.assertNotIn("locustfile.py", c.one(docs, "ConfigMap", name="gatewaylab-locust")["data"])
        for d, spec in locust_pods(docs):
            self.assertEqual(locustfile_arg(spec), "/mnt/locustfile/shop.py")
            vol = [v for v in spec["volumes"] if v["name"] == "locustfile"][0]
            self.assertEqual(vol["configMap"]["name"], "my-load")
        # The shipped file stays the default.
        cm = c.one(RENDERED["defaults"], "ConfigMap", name="gatewaylab-locust")
        self.assertEqual(cm["data"]["locustfile.py"], (c.ROOT / "deploy" / "locust" / "locustfile.py").read_text())
        # FastHttpUser for the shipped file.
        job = c.one(c.render(sets=["locust.fastHttpUser=true"]), "Job")
        env = c.resolve_env(docs, job["spec"]["template"]["spec"]["containers"][0], "pod")
        self.assertEqual(env["LOCUST_FAST_HTTP"], "true")
        self.assertNotIn("LOCUST_FAST_HTTP", c.resolve_env(
            RENDERED["defaults"], c.one(RENDERED["defaults"], "Job")["spec"]["template"]["spec"]["containers"][0], "pod"))

    def test_bring_your_own_locustfile_refuses_what_cannot_work(self):
        self.assert_rejected(["locust.locustfile.existingConfigMap=my-load", "locust.locustfile.content=x"],
                             "cannot be combined with locust.locustfile.content")
        self.assert_rejected(["locust.locustfile.extraFiles.run_locust\\.py=x"], "are taken")
        self.assert_rejected(["locust.locustfile.content=x", "locust.fastHttpUser=true"], "subclass locust.FastHttpUser")
        self.assert_rejected(["scenario.enabled=true", "scenario.name=smoke", "locust.locustfile.content=x"],
                             "cannot be combined with scenario.enabled")
        self.assert_rejected(["locust.locustfile.extraFiles.a/b=x"], "invalid propertyName 'a/b'")
        self.assert_rejected(["locust.locustfile.existingConfigMap=My_Load"], "/locust/locustfile/existingConfigMap")

    def test_each_runs_jobs_are_kept_across_upgrades_and_notes_say_how_to_remove_them(self):
        # Helm deletes what the previous revision rendered and the new one does not (the
        # previous run's Job, named -r<revision>) unless it carries resource-policy keep.
        for name, docs in RENDERED.items():
            for d in docs:
                kept = (d["metadata"].get("annotations") or {}).get("helm.sh/resource-policy")
                component = d["metadata"]["labels"]["app.kubernetes.io/component"]
                if d["kind"] == "Job" and component.startswith("locust"):
                    self.assertEqual(kept, "keep", f"{name}: {d['metadata']['name']}")
                elif d["kind"] != "Secret":  # the admin Secret has its own policy
                    self.assertIsNone(kept, f"{name}: {d['kind']} {d['metadata']['name']}")
        docs = c.render(sets=["locust.keepRuns=false", "locust.distributed.enabled=true"])
        for job in c.find(docs, "Job"):
            self.assertNotIn("helm.sh/resource-policy", job["metadata"].get("annotations") or {})
        notes = notes_for(c.CI_DIR / "distributed-values.yaml")
        selectors = re.findall(r"kubectl -n \S+ (?:get|delete) jobs -l '([^']+)'", notes)
        self.assertEqual(len(selectors), 2, notes)
        jobs = c.find(RENDERED["distributed-values"], "Job")
        for selector in selectors:
            equal, rest = selector.split(",", 1)
            key, value = equal.split("=")
            m = re.fullmatch(r"(\S+) in \(([^)]*)\)", rest)
            picked = [j["metadata"]["name"] for j in jobs if j["metadata"]["labels"].get(key) == value
                      and j["metadata"]["labels"].get(m.group(1)) in m.group(2).split(",")]
            self.assertEqual(sorted(picked), ["gatewaylab-locust-r1", "gatewaylab-locust-r1-worker"])
        self.assertIn("delete job gatewaylab-locust-r1 gatewaylab-locust-r1-worker", notes)
        self.assertNotIn("Earlier runs stay", notes_for(c.CI_DIR / "dns-discovery-values.yaml"))

    def test_registration_only_where_the_backends_mode_needs_it(self):
        def register(docs):
            values = set()
            for d, _, spec in workloads(docs):
                if (d["metadata"]["labels"]["app.kubernetes.io/component"]).startswith("locust"):
                    values.add(c.resolve_env(docs, spec["containers"][0], "pod")["REGISTER"])
            self.assertEqual(len(values), 1, values)
            return values.pop()
        self.assertEqual(register(RENDERED["defaults"]), "false")
        self.assertEqual(register(RENDERED["distributed-values"]), "false")
        self.assertEqual(register(RENDERED["register-values"]), "true")
        self.assertEqual(register(RENDERED["interactive-values"]), "false")
        self.assertEqual(register(c.render(sets=["gateway.backends.mode=dns"])), "false")
        self.assertEqual(register(c.render(sets=["gateway.backends.mode=dns", "locust.register=true"])), "true")
        self.assertEqual(register(c.render(sets=["gateway.backends.mode=register", "locust.register=true",
                                                 "locust.distributed.enabled=true"])), "true")

    def test_admin_token_given_existing_or_generated(self):
        docs = c.render(sets=["admin.token=s3cret"])
        self.assertEqual(c.secret_value(docs, "gatewaylab-admin", "token"), "s3cret")
        generated = c.secret_value(RENDERED["defaults"], "gatewaylab-admin", "token")
        self.assertRegex(generated, r"^[A-Za-z0-9]{40}$")
        docs = c.render(sets=["admin.existingSecret=my-token", "admin.secretKey=tok"])
        self.assertFalse(c.find(docs, "Secret"))
        gw = c.one(docs, "Deployment", component="gateway")["spec"]["template"]["spec"]
        vol = [v for v in gw["volumes"] if "secret" in v][0]["secret"]
        self.assertEqual((vol["secretName"], vol["items"][0]["key"]), ("my-token", "tok"))
        job = c.one(docs, "Job", component="locust")["spec"]["template"]["spec"]["containers"][0]
        ref = [e for e in job["env"] if e["name"] == "GATEWAY_ADMIN_TOKEN"][0]["valueFrom"]["secretKeyRef"]
        self.assertEqual((ref["name"], ref["key"]), ("my-token", "tok"))

    def test_service_monitor_needs_the_api_and_selects_both_services(self):
        values = c.CI_DIR / "servicemonitor-values.yaml"
        self.assertFalse(c.find(c.render(values), "ServiceMonitor"), "rendered without the CRD's API")
        docs = RENDERED["servicemonitor-values"]
        sm = c.one(docs, "ServiceMonitor")
        self.assertEqual(sm["apiVersion"], "monitoring.coreos.com/v1")
        self.assertEqual(sm["metadata"]["labels"]["release"], "kube-prometheus-stack")
        sel = sm["spec"]["selector"]
        picked = [s for s in c.find(docs, "Service")
                  if labels_match(sel["matchLabels"], s["metadata"]["labels"])
                  and matches_expressions(sel.get("matchExpressions"), s["metadata"]["labels"])]
        self.assertEqual(sorted(s["metadata"]["labels"]["app.kubernetes.io/component"] for s in picked),
                         ["backend", "gateway"])
        for endpoint in sm["spec"]["endpoints"]:
            self.assertEqual(endpoint["path"], "/metrics")
            for s in picked:
                self.assertIn(endpoint["port"], [p["name"] for p in s["spec"]["ports"]])
        self.assertEqual(set(sm["spec"]) - {"selector", "namespaceSelector", "endpoints", "jobLabel"}, set())
        for d in c.find(docs, "StatefulSet") + c.find(docs, "Deployment"):
            self.assertNotIn("prometheus.io/scrape", d["spec"]["template"]["metadata"].get("annotations") or {})

    def test_service_monitor_and_rule_forced_without_the_api_for_gitops_rendering(self):
        sets = ["monitoring.serviceMonitor.enabled=true", "monitoring.serviceMonitor.force=true",
                "monitoring.serviceMonitor.namespace=monitoring", "monitoring.serviceMonitor.interval=30s",
                "monitoring.serviceMonitor.labels.release=prom",
                "monitoring.serviceMonitor.relabelings[0].action=labeldrop",
                "monitoring.serviceMonitor.relabelings[0].regex=container",
                "monitoring.serviceMonitor.metricRelabelings[0].action=drop",
                "monitoring.serviceMonitor.metricRelabelings[0].sourceLabels[0]=__name__",
                "monitoring.serviceMonitor.metricRelabelings[0].regex=process_threads",
                "monitoring.prometheusRule.enabled=true", "monitoring.prometheusRule.force=true",
                "monitoring.prometheusRule.namespace=monitoring"]
        docs = c.render(sets=sets)  # no --api-versions: as Argo CD or Flux render
        sm = c.one(docs, "ServiceMonitor")
        self.assertEqual(sm["metadata"]["namespace"], "monitoring")
        self.assertEqual(sm["metadata"]["labels"]["release"], "prom")
        self.assertEqual(sm["spec"]["namespaceSelector"], {"matchNames": [c.NAMESPACE]})
        [endpoint] = sm["spec"]["endpoints"]
        self.assertEqual(endpoint["interval"], "30s")
        self.assertEqual(endpoint["relabelings"], [{"action": "labeldrop", "regex": "container"}])
        self.assertEqual(endpoint["metricRelabelings"],
                         [{"action": "drop", "sourceLabels": ["__name__"], "regex": "process_threads"}])
        self.assertEqual(c.one(docs, "PrometheusRule")["metadata"]["namespace"], "monitoring")
        # Not forced: the release namespace, and no relabelings unless given.
        sm = c.one(RENDERED["servicemonitor-values"], "ServiceMonitor")
        self.assertEqual(sm["metadata"]["namespace"], c.NAMESPACE)
        self.assertNotIn("relabelings", sm["spec"]["endpoints"][0])
        notes = notes_for(c.CI_DIR / "servicemonitor-values.yaml")
        self.assertIn("set monitoring.serviceMonitor.force=true to render it anyway", notes)
        self.assertNotIn("WARNING", c.helm("install", c.RELEASE, str(c.CHART), "--dry-run=client", "-n", c.NAMESPACE,
                                           *sum((["--set", x] for x in sets), [])).stdout)
        self.assert_rejected(["monitoring.serviceMonitor.namespace=Monitoring"], "/monitoring/serviceMonitor/namespace")

    def test_prometheus_annotations_point_at_the_metrics_port(self):
        for d in c.find(RENDERED["defaults"], "Deployment") + c.find(RENDERED["defaults"], "StatefulSet"):
            ann = d["spec"]["template"]["metadata"]["annotations"]
            self.assertEqual(ann["prometheus.io/scrape"], "true")
            self.assertEqual(ann["prometheus.io/path"], "/metrics")
            ports = [p["containerPort"] for p in d["spec"]["template"]["spec"]["containers"][0]["ports"]]
            self.assertIn(int(ann["prometheus.io/port"]), ports)

    def test_dashboards_are_configmaps_for_the_grafana_sidecar(self):
        docs = RENDERED["servicemonitor-values"]
        dashboards = sorted(p.name for p in (c.CHART / "dashboards").glob("*.json"))
        self.assertIn("gateway.json", dashboards)
        cms = [d for d in c.find(docs, "ConfigMap") if d["metadata"]["labels"].get("grafana_dashboard") == "1"]
        self.assertEqual(sorted(k for cm in cms for k in cm["data"]), dashboards)
        for cm in cms:
            self.assertEqual(cm["metadata"]["namespace"], "monitoring")
            self.assertEqual(cm["metadata"]["annotations"]["grafana_folder"], "gatewaylab")
            for text in cm["data"].values():
                dash = json.loads(text)
                self.assertNotIn("id", dash)
                self.assertTrue(dash["uid"])

    def test_distributed_mode_wires_workers_to_the_master(self):
        docs = RENDERED["distributed-values"]
        master = c.one(docs, "Job", component="locust-master")
        worker = c.one(docs, "Job", component="locust-worker")
        svc = c.one(docs, "Service", component="locust-master")
        self.assertEqual(worker["spec"]["parallelism"], 3)
        self.assertEqual(worker["spec"]["completions"], 3)
        margs = master["spec"]["template"]["spec"]["containers"][0]["args"]
        self.assertEqual(margs[margs.index("--expect-workers") + 1], "3")
        wargs = worker["spec"]["template"]["spec"]["containers"][0]["args"]
        self.assertEqual(wargs[wargs.index("--master-host") + 1], svc["metadata"]["name"])
        self.assertEqual(int(wargs[wargs.index("--master-port") + 1]), svc["spec"]["ports"][0]["port"])

    def test_notes_give_the_commands(self):
        # `helm install --dry-run` has no --api-versions: rendered without the
        # monitoring API, the ServiceMonitor case must warn instead.
        for name, values, _ in c.ci_cases():
            notes = notes_for(values)
            with self.subTest(case=name):
                self.assertIn(f"kubectl -n {c.NAMESPACE} port-forward service/gatewaylab-gateway 8000:8000", notes)
                for path in ("/api/stats/1m", "/api/stats/5m", "/api/stats/1h", "/api/servers"):
                    self.assertIn(f"curl -s http://127.0.0.1:8000{path}", notes)
                docs = RENDERED[name]
                for job in c.find(docs, "Job", component="locust") + c.find(docs, "Job", component="locust-master"):
                    self.assertIn(f"logs -f job/{job['metadata']['name']}", notes)
                    scenario = "--scenario" in job["spec"]["template"]["spec"]["containers"][0]["args"]
                    self.assertIn("gunzip > scenario-report.html" if scenario else "gunzip > locust-report.html", notes)
                if c.find(docs, "Deployment", component="locust-ui"):
                    self.assertIn("port-forward service/gatewaylab-locust-ui 8089:8089", notes)
                if name == "servicemonitor-values":
                    self.assertIn("WARNING: monitoring.serviceMonitor.enabled is set but", notes)
                if name == "prometheusrule-values":
                    self.assertIn("WARNING: monitoring.prometheusRule.enabled is set but", notes)
                if name == "tracing-values":
                    self.assertIn("Traces go to http://otel-collector.monitoring.svc.cluster.local:4318", notes)
                else:
                    self.assertNotIn("Traces go to", notes)


def resolved(docs, kind, component, pod_index=0):
    workload = c.one(docs, kind, component=component)
    ctr = workload["spec"]["template"]["spec"]["containers"][0]
    return c.resolve_env(docs, ctr, f"{workload['metadata']['name']}-{pod_index}")


def resource_attributes(env):
    """OTEL_RESOURCE_ATTRIBUTES as the services read it: key=value pairs split at commas."""
    return dict(pair.split("=", 1) for pair in env["OTEL_RESOURCE_ATTRIBUTES"].split(","))


class Tracing(unittest.TestCase):
    """tracing.* -> the OTEL_* variables of the gateway and backend containers
    (resolved as the kubelet would: downward API, $(VAR) references). That
    the services accept them and export spans is test_render_and_run's part."""

    def test_off_by_default_no_otel_variable_anywhere(self):
        for name, docs in RENDERED.items():
            if name == "tracing-values":
                continue
            for d, _, spec in workloads(docs):
                for ctr in c.all_containers(spec):
                    names = [e["name"] for e in ctr.get("env") or []]
                    self.assertFalse([n for n in names if n.startswith(("OTEL_", "K8S_"))],
                                     f"{name}: {d['metadata']['name']}/{ctr['name']}")

    def test_rendered_settings_per_component(self):
        docs = RENDERED["tracing-values"]
        gateway = resolved(docs, "Deployment", "gateway")
        backend = resolved(docs, "StatefulSet", "backend", pod_index=2)
        for env in (gateway, backend):
            self.assertEqual(env["OTEL_EXPORTER_OTLP_ENDPOINT"], "http://otel-collector.monitoring.svc.cluster.local:4318")
            self.assertEqual(env["OTEL_EXPORTER_OTLP_PROTOCOL"], "http/protobuf")
            self.assertEqual(env["OTEL_TRACES_SAMPLER_ARG"], "0.2")
        self.assertEqual(gateway["OTEL_SERVICE_NAME"], "gateway")
        self.assertEqual(backend["OTEL_SERVICE_NAME"], "backend")
        # ci/tracing-values.yaml overrides the gateway's sampler through extraEnv: given once, its value.
        self.assertEqual(gateway["OTEL_TRACES_SAMPLER"], "parentbased_always_on")
        self.assertEqual(backend["OTEL_TRACES_SAMPLER"], "parentbased_traceidratio")
        self.assertEqual(resource_attributes(gateway), {
            "k8s.namespace.name": c.NAMESPACE, "k8s.pod.name": "gatewaylab-gateway-0",
            "k8s.container.name": "gateway", "service.version": "0.1.0", "deployment.environment.name": "ci"})
        self.assertEqual(resource_attributes(backend)["k8s.pod.name"], "gatewaylab-backend-2")
        self.assertEqual(resource_attributes(backend)["k8s.container.name"], "backend")
        for job in c.find(docs, "Job"):
            names = [e["name"] for e in job["spec"]["template"]["spec"]["containers"][0].get("env") or []]
            self.assertFalse([n for n in names if n.startswith("OTEL_")], "Locust does not trace")

    def test_names_tags_samplers_and_literal_dollars(self):
        docs = c.render(sets=["tracing.enabled=true", "tracing.endpoint=https://otlp.example.org/otlp",
                              "tracing.protocol=http/json", "tracing.sampler=always_on",
                              "tracing.serviceNames.gateway=edge", "backend.image.tag=1.2.3",
                              "tracing.resourceAttributes.owner=a$(K8S_POD_NAME)$$b"])
        gateway = resolved(docs, "Deployment", "gateway")
        backend = resolved(docs, "StatefulSet", "backend")
        self.assertEqual(gateway["OTEL_EXPORTER_OTLP_ENDPOINT"], "https://otlp.example.org/otlp")
        self.assertEqual(gateway["OTEL_EXPORTER_OTLP_PROTOCOL"], "http/json")
        self.assertEqual((gateway["OTEL_SERVICE_NAME"], backend["OTEL_SERVICE_NAME"]), ("edge", "backend"))
        self.assertEqual(gateway["OTEL_TRACES_SAMPLER"], "always_on")
        self.assertNotIn("OTEL_TRACES_SAMPLER_ARG", gateway, "a ratio for a sampler without one")
        self.assertEqual(resource_attributes(backend)["service.version"], "1.2.3")
        self.assertEqual(resource_attributes(gateway)["service.version"], "0.1.0")
        # A user's value reaches the service as written: the kubelet expands no part of it.
        self.assertEqual(resource_attributes(gateway)["owner"], "a$(K8S_POD_NAME)$$b")
        docs = c.render(sets=["tracing.enabled=true", "tracing.endpoint=http://tempo:4318", "tracing.samplerArg=0.05"])
        self.assertEqual(resolved(docs, "StatefulSet", "backend")["OTEL_TRACES_SAMPLER_ARG"], "0.05")

    def test_schema_and_template_refuse_what_the_services_would_not_use(self):
        cases = [
            (["tracing.enabled=true"], "needs tracing.endpoint"),
            (["tracing.protocol=grpc"], "/tracing/protocol"),
            (["tracing.endpoint=tempo:4318"], "/tracing/endpoint"),
            (["tracing.sampler=ratio"], "/tracing/sampler"),
            (["tracing.samplerArg=1.5"], "/tracing/samplerArg"),
            (["tracing.samplerArg=half"], "/tracing/samplerArg"),
            (["tracing.resourceAttributes.team=a\\,b"], "/tracing/resourceAttributes/team"),
            (["tracing.serviceNames.backend="], "/tracing/serviceNames/backend"),
            (["tracing.traceEndpoint=http://x:4318"], "traceEndpoint"),
            (["tracing.enabled=true", "tracing.endpoint=http://x:4318", "tracing.resourceAttributes.service\\.name=x"],
             "tracing.serviceNames"),
        ]
        for sets, message in cases:
            with self.subTest(sets=sets):
                proc = c.helm(*c.template_args(sets=sets), check=False)
                self.assertNotEqual(proc.returncode, 0, f"--set {sets} was accepted")
                self.assertIn(message, proc.stderr)


ALERTS = c.ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_GROUP_KEYS = {"name", "interval", "rules", "limit", "partial_response_strategy", "query_offset", "labels"}
RULE_KEYS = {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}


class PrometheusRuleFromTheAlertsFile(unittest.TestCase):
    """The PrometheusRule is deploy/prometheus/alerts.yml's groups, as they
    are, plus the ci file's routing label. kubernetes-validate has no schema
    for the operator's CRDs: the structure is checked here, the expressions by
    promtool."""

    def setUp(self):
        self.values = c.CI_DIR / "prometheusrule-values.yaml"
        self.rule = c.one(RENDERED["prometheusrule-values"], "PrometheusRule")

    def test_needs_the_api(self):
        self.assertFalse(c.find(c.render(self.values), "PrometheusRule"), "rendered without the CRD's API")
        self.assertFalse(c.find(c.render(extra=["--api-versions", "monitoring.coreos.com/v1"]), "PrometheusRule"),
                         "rendered although not enabled")

    def test_groups_are_the_alerts_file_plus_the_rule_labels(self):
        rule = self.rule
        self.assertEqual(rule["apiVersion"], "monitoring.coreos.com/v1")
        self.assertEqual(rule["metadata"]["name"], "gatewaylab")
        self.assertEqual(rule["metadata"]["labels"]["release"], "kube-prometheus-stack")
        self.assertEqual(set(rule["spec"]), {"groups"})
        expected = yaml.safe_load(ALERTS.read_text())["groups"]
        self.assertTrue(expected and all(g["rules"] for g in expected), "deploy/prometheus/alerts.yml has no rules")
        for group in expected:
            for r in group["rules"]:
                if "alert" in r:
                    # The rule's own labels win over ruleLabels.
                    r["labels"] = {"team": "loadtest", **(r.get("labels") or {})}
        self.assertEqual(rule["spec"]["groups"], expected)
        # Without ruleLabels the groups are the file's, byte for byte in meaning.
        docs = c.render(extra=["--api-versions", "monitoring.coreos.com/v1"],
                        sets=["monitoring.prometheusRule.enabled=true"])
        self.assertEqual(c.one(docs, "PrometheusRule")["spec"]["groups"], yaml.safe_load(ALERTS.read_text())["groups"])
        docs = c.render(extra=["--api-versions", "monitoring.coreos.com/v1"],
                        sets=["monitoring.prometheusRule.enabled=true", "monitoring.prometheusRule.ruleLabels.severity=info"])
        own = {r["alert"]: r["labels"]["severity"] for g in yaml.safe_load(ALERTS.read_text())["groups"]
               for r in g["rules"] if "severity" in (r.get("labels") or {})}
        self.assertTrue(own, "no alert with a severity label to check with")
        rendered = {r["alert"]: r["labels"]["severity"] for g in c.one(docs, "PrometheusRule")["spec"]["groups"]
                    for r in g["rules"] if r.get("alert") in own}
        self.assertEqual(rendered, own, "ruleLabels replaced a rule's own label")

    def test_structure_the_operator_accepts(self):
        names = set()
        for group in self.rule["spec"]["groups"]:
            self.assertLessEqual(set(group), RULE_GROUP_KEYS, group.get("name"))
            self.assertIsInstance(group["name"], str)
            self.assertNotIn(group["name"], names, "group names must be unique")
            names.add(group["name"])
            self.assertTrue(group["rules"])
            for r in group["rules"]:
                where = f"{group['name']}/{r.get('alert') or r.get('record')}"
                self.assertLessEqual(set(r), RULE_KEYS, where)
                self.assertEqual(("alert" in r) + ("record" in r), 1, f"{where}: needs alert or record")
                self.assertIsInstance(r["expr"], str, where)
                self.assertTrue(r["expr"].strip(), where)
                if "for" in r:
                    self.assertRegex(r["for"], r"^([0-9]+(ms|s|m|h|d|w|y))+$", where)
                for key in ("labels", "annotations"):
                    for k, v in (r.get(key) or {}).items():
                        self.assertIsInstance(v, str, f"{where}: {key}.{k} must be a string")
                if "alert" in r:
                    self.assertEqual(r["labels"]["team"], "loadtest", where)

    def test_promtool_accepts_the_rendered_rules(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "rendered-rules.yml"
            path.write_text(yaml.safe_dump({"groups": self.rule["spec"]["groups"]}))
            proc = subprocess.run([c.tool("promtool"), "check", "rules", str(path)], capture_output=True, text=True)
            self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
            count = sum(1 for g in self.rule["spec"]["groups"] for r in g["rules"])
            self.assertIn(f"SUCCESS: {count} rules found", proc.stdout + proc.stderr)


def notes_for(values=None):
    cmd = ["install", c.RELEASE, str(c.CHART), "--dry-run=client", "--namespace", c.NAMESPACE]
    if values:
        cmd += ["-f", str(values)]
    out = c.helm(*cmd).stdout
    return out.split("NOTES:", 1)[1]


class SourcesOfTruth(unittest.TestCase):
    """The chart links to the project's locustfile, alert rules, dashboards,
    scenario runner and shipped scenarios instead of copying them; helm
    follows the links in lint, template, install and package. These tests
    fail if a link is replaced by a (drifting) copy or points elsewhere."""

    def test_chart_links_to_the_projects_files(self):
        for link, target in (("files/locustfile.py", "deploy/locust/locustfile.py"),
                             ("files/alerts.yml", "deploy/prometheus/alerts.yml"),
                             ("files/scenario", "scenario"),
                             ("files/scenarios", "deploy/scenarios"),
                             ("dashboards", "deploy/grafana")):
            path = c.CHART / link
            self.assertTrue(path.is_symlink(), f"helm/gatewaylab/{link} must be a link to {target}")
            self.assertFalse(Path(path.readlink()).is_absolute(), "the link must be relative")
            self.assertEqual(path.resolve(), (c.ROOT / target).resolve())

    def test_readme_lists_every_value_with_its_default(self):
        readme = (c.CHART / "README.md").read_text()
        self.assertEqual(readme, values_table.readme_with_table(readme),
                         "helm/gatewaylab/README.md's values table is stale: run `make helm-docs`")

    def test_packaged_chart_holds_the_linked_files(self):
        with tempfile.TemporaryDirectory() as tmp:
            c.helm("package", str(c.CHART), "--destination", tmp)
            tgz = next(Path(tmp).glob("gatewaylab-*.tgz"))
            with tarfile.open(tgz) as tar:
                members = {m.name: m for m in tar.getmembers()}
                self.assertFalse([n for n, m in members.items() if m.issym() or m.islnk()], "links in the package")
                packed = tar.extractfile("gatewaylab/files/locustfile.py").read()
                packed_alerts = tar.extractfile("gatewaylab/files/alerts.yml").read()
                dashboards = {Path(n).name: tar.extractfile(n).read() for n in members
                              if n.startswith("gatewaylab/dashboards/") and n.endswith(".json")}
                scenarios = {Path(n).name: tar.extractfile(n).read() for n in members
                             if n.startswith("gatewaylab/files/scenarios/") and members[n].isfile()}
                runner = {n[len("gatewaylab/files/scenario/"):]: tar.extractfile(n).read() for n in members
                          if n.startswith("gatewaylab/files/scenario/") and members[n].isfile()}
            self.assertEqual(packed, (c.ROOT / "deploy" / "locust" / "locustfile.py").read_bytes())
            self.assertEqual(packed_alerts, (c.ROOT / "deploy" / "prometheus" / "alerts.yml").read_bytes())
            expected = {p.name: p.read_bytes() for p in (c.ROOT / "deploy" / "grafana").glob("*.json")}
            self.assertTrue(expected, "deploy/grafana/ has no dashboards")
            self.assertEqual(dashboards, expected)
            self.assertEqual(scenarios, {p.name: p.read_bytes() for p in (c.ROOT / "deploy" / "scenarios").glob("*.yaml")})
            self.assertIn("smoke.yaml", scenarios)
            self.assertIn("__main__.py", runner)
            for rel, data in runner.items():
                self.assertEqual(data, (c.ROOT / "scenario" / rel).read_bytes(), rel)
            for required in ("gatewaylab/values.schema.json", "gatewaylab/files/run_locust.py",
                             "gatewaylab/templates/NOTES.txt", "gatewaylab/README.md"):
                self.assertIn(required, members)
            self.assertFalse([n for n in members if n.startswith("gatewaylab/ci/")], "ci/ is for tests only")
            # The package alone installs with no values at all.
            docs = [d for d in yaml.safe_load_all(c.helm("template", "demo", str(tgz)).stdout) if d]
            cms = [d for d in docs if d["kind"] == "ConfigMap"]
            self.assertEqual(sorted(k for d in cms if d["metadata"]["labels"].get("grafana_dashboard") for k in d["data"]),
                             sorted(expected))
            locust_cm = [d for d in cms if d["metadata"]["name"] == "demo-gatewaylab-locust"][0]
            self.assertEqual(locust_cm["data"]["locustfile.py"].encode(), packed)
            # ... and renders the rules from its own copy of the alerts file.
            out = c.helm("template", "demo", str(tgz), "--api-versions", "monitoring.coreos.com/v1",
                         "--set", "monitoring.prometheusRule.enabled=true").stdout
            rule = [d for d in yaml.safe_load_all(out) if d and d["kind"] == "PrometheusRule"][0]
            self.assertEqual(rule["spec"]["groups"], yaml.safe_load(packed_alerts)["groups"])

if __name__ == "__main__":
    unittest.main()
