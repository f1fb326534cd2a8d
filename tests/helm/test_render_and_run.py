"""Render and run: start what the chart renders, on loopback.

For each case the chart is rendered with `helm template`; the gateway,
backend and Locust containers' command, arguments, environment (with the
downward API and Secret references resolved as the kubelet would) and mounted
ConfigMap/Secret files are taken as they are and run with the project's
release binaries (target/release/gateway and backend) and the project's Locust
(.venv). Only these are changed: listen ports and addresses (everything on
127.0.0.x with free ports), the in-cluster host names (to those loopback
ports), mount paths (to temporary copies) and, for Locust, the run time.
The binaries reject unknown settings keys and unknown GATEWAY__/BACKEND__
variables, so a setting renamed in a binary but not in the chart fails here;
the negative tests prove that the harness notices.

DNS discovery runs the gateway in a private mount namespace (`unshare -m`)
whose /etc/hosts gives the headless Service's name three loopback addresses,
so the rendered dns_name is resolved as it is, like the cluster's DNS would.

Tracing points the rendered OTLP endpoint (an in-cluster collector's name) at
tests/support's OTLP/HTTP receiver on loopback, which decodes the exported
spans, or at a closed port.
"""

import csv
import json
import re
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
from pathlib import Path

import yaml

import chartlib as c

sys.path.insert(0, str(c.ROOT / "tests"))  # for support
import support  # noqa: E402
from support import BIN, StartupFailed, fetch, free_port  # noqa: E402
from support.otlp import CLIENT, SERVER, Receiver  # noqa: E402

VENV_BIN = c.ROOT / ".venv" / "bin"
ENTRYPOINTS = {  # image repository -> what its ENTRYPOINT runs
    "gatewaylab/gateway": str(BIN / "gateway"),
    "gatewaylab/backend": str(BIN / "backend"),
    "locustio/locust": str(VENV_BIN / "locust"),
}
LOCUST_RUN_TIME = "12s"


def log(proc, tail=4000):
    """The end of what a process printed."""
    return proc.output()[-tail:]


def base_env():
    """What the image and the kubelet provide besides the rendered env."""
    return {"PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}


class Remap:
    """In-cluster host:port pairs and bare host names -> loopback."""

    def __init__(self):
        self.pairs = {}   # "host:port" -> "127.0.0.1:port"
        self.hosts = {}   # "host" -> "127.0.0.1"

    def add(self, host, port, local_port, also_short=None, local_host="127.0.0.1"):
        self.pairs[f"{host}:{port}"] = f"{local_host}:{local_port}"
        if also_short:
            self.pairs[f"{also_short}:{port}"] = f"{local_host}:{local_port}"

    def __call__(self, text):
        keys = sorted(self.pairs, key=len, reverse=True)
        if keys:
            text = re.sub(r"(?<![\w.-])(" + "|".join(map(re.escape, keys)) + r")(?![\w-])",
                          lambda m: self.pairs[m.group(1)], text)
        for host in sorted(self.hosts, key=len, reverse=True):
            text = re.sub(r"(?<![\w.-])" + re.escape(host) + r"(?![\w.:-])", self.hosts[host], text)
        return text


class Deployment:
    """A rendered release started on loopback."""

    def __init__(self, test, docs, procs, workdir):
        self.t, self.docs, self.procs, self.workdir = test, docs, procs, Path(workdir)
        self.remap = Remap()
        self.gateway_port = free_port()
        self.backend_names = []
        gw_svc = c.one(docs, "Service", component="gateway")
        fqdn = f"{gw_svc['metadata']['name']}.{c.NAMESPACE}.svc.cluster.local"
        self.remap.add(fqdn, gw_svc["spec"]["ports"][0]["port"], self.gateway_port,
                       also_short=gw_svc["metadata"]["name"])
        self.gateway_url = f"http://127.0.0.1:{self.gateway_port}"
        self.token = None

    # -- helpers ---------------------------------------------------------
    def start_pod(self, name, argv, env, cwd=None):
        """A container's process: exactly `env`, output merged as `kubectl
        logs` shows it, in a session of its own (what it spawns stops with it)."""
        return self.procs.start(name, argv, env, cwd=cwd, inherit_env=False, merge_output=True, new_session=True)

    def container(self, workload, name=None):
        _, spec = c.pod_template(workload)
        ctrs = [x for x in spec["containers"] if name is None or x["name"] == name]
        self.t.assertEqual(len(ctrs), 1)
        return spec, ctrs[0]

    def argv(self, ctr, mounts):
        """command + args as the container runtime would run them."""
        rendered = list(ctr.get("command") or []) + list(ctr.get("args") or [])
        rendered = [self.remap(c.remap_paths(str(a), mounts)) for a in rendered]
        if "command" in ctr:
            return rendered
        return [ENTRYPOINTS[ctr["image"].rsplit(":", 1)[0]]] + rendered

    def env(self, ctr, pod_name, mounts):
        env = c.resolve_env(self.docs, ctr, pod_name)
        env = {k: self.remap(c.remap_paths(v, mounts)) for k, v in env.items()}
        return env

    def assert_no_cluster_names(self, what, strings):
        for s in strings:
            self.t.assertNotIn(".svc.cluster.local", s, f"{what}: unmapped in-cluster name in {s!r}")

    def check_probes(self, proc, ctr, port):
        for probe in ("readinessProbe", "livenessProbe"):
            path = ctr[probe]["httpGet"]["path"]
            proc.wait_ready(path, 20, port=port)

    def otlp_endpoint(self):
        """(host, port) of the rendered OTLP endpoint, the same for the gateway and the backends."""
        endpoints = set()
        for kind, component in (("Deployment", "gateway"), ("StatefulSet", "backend")):
            workload = c.one(self.docs, kind, component=component)
            _, ctr = self.container(workload, component)
            endpoints.add(c.resolve_env(self.docs, ctr, "pod")["OTEL_EXPORTER_OTLP_ENDPOINT"])
        self.t.assertEqual(len(endpoints), 1, endpoints)
        url = urllib.parse.urlsplit(endpoints.pop())
        return url.hostname, url.port

    # -- backends --------------------------------------------------------
    def start_backends(self, hosts=None, shared_port=None):
        """One process per StatefulSet pod, each on its own port (or each on
        its own loopback address and `shared_port`, for DNS discovery)."""
        sts = c.one(self.docs, "StatefulSet", component="backend")
        headless = sts["spec"]["serviceName"]
        spec, ctr = self.container(sts)
        container_port = ctr["ports"][0]["containerPort"]
        self.backend_addrs = []
        for i in range(sts["spec"]["replicas"]):
            pod = f"{sts['metadata']['name']}-{i}"
            host = hosts[i] if hosts else "127.0.0.1"
            port = shared_port or free_port()
            self.remap.add(f"{pod}.{headless}.{c.NAMESPACE}.svc.cluster.local", container_port, port, local_host=host)
            mounts = c.materialize_mounts(self.docs, spec, ctr, self.workdir / pod)
            env = self.env(ctr, pod, mounts)
            # Remapped, not added: the chart must set the listen port itself.
            self.t.assertEqual(env.get("BACKEND__LISTEN__PORT"), str(container_port))
            env["BACKEND__LISTEN__PORT"] = str(port)
            env["BACKEND__LISTEN__HOST"] = host
            argv = self.argv(ctr, mounts)
            self.assert_no_cluster_names(pod, argv + list(env.values()))
            proc = self.start_pod(pod, argv, {**base_env(), "HOSTNAME": pod, **env})
            for probe in ("readinessProbe", "livenessProbe"):
                proc.wait_ready(ctr[probe]["httpGet"]["path"], 20, host, port)
            self.backend_names.append(env.get("BACKEND__NAME", pod))
            self.backend_addrs.append((host, port))
        self.t.assertEqual(self.backend_names, [f"{sts['metadata']['name']}-{i}" for i in range(len(self.backend_names))])

    # -- gateway ---------------------------------------------------------
    def gateway_settings(self, discovery_port=None):
        """(argv, env, config path) of the gateway pod, remapped."""
        dep = c.one(self.docs, "Deployment", component="gateway")
        spec, ctr = self.container(dep, "gateway")
        self.gateway_ctr = ctr
        pod = f"{dep['metadata']['name']}-0"
        mounts = c.materialize_mounts(self.docs, spec, ctr, self.workdir / "gateway")
        argv = self.argv(ctr, mounts)
        env = self.env(ctr, pod, mounts)
        config_path = Path(argv[argv.index("--config") + 1])
        config = yaml.safe_load(config_path.read_text())
        self.t.assertEqual(config["listen"]["port"], ctr["ports"][0]["containerPort"])
        text = c.remap_paths(self.remap(config_path.read_text()), mounts)
        config = yaml.safe_load(text)
        config["listen"]["port"] = self.gateway_port
        config["listen"]["host"] = "127.0.0.1"
        if discovery_port:
            config["discovery"]["port"] = discovery_port
        config_path.write_text(yaml.safe_dump(config))
        token_file = config["admin"]["token_file"]
        self.token = Path(token_file).read_text().strip()
        return argv, {**base_env(), "HOSTNAME": pod, **env}, config

    def start_gateway(self, discovery_hosts=None, discovery_port=None):
        argv, env, config = self.gateway_settings(discovery_port)
        if not discovery_hosts:
            self.assert_no_cluster_names("gateway", argv + [json.dumps(config)])
        # The effective settings are the rendered ones (the file is read and every key known).
        printed = subprocess.run(argv + ["--print-config"], env=env, capture_output=True, text=True)
        if printed.returncode != 0:
            raise StartupFailed(f"gateway --print-config: {printed.stderr}")
        effective = json.loads(printed.stdout)
        for key, value in config.items():
            if isinstance(value, dict):
                for sub, v in value.items():
                    self.t.assertEqual(effective[key][sub], v, f"gateway setting {key}.{sub}")
            else:
                self.t.assertEqual(effective[key], value, f"gateway setting {key}")
        if discovery_hosts:
            hosts = Path(self.workdir / "hosts")
            dns_name = config["discovery"]["dns_name"]
            hosts.write_text(Path("/etc/hosts").read_text() + "".join(f"{ip} {dns_name}\n" for ip in discovery_hosts))
            script = 'mount --bind "$1" /etc/hosts && shift && exec "$@"'
            argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(hosts), *argv]
        self.gateway = self.start_pod("gateway", argv, env)
        self.check_probes(self.gateway, self.gateway_ctr, self.gateway_port)

    def servers(self):
        status, _, body = fetch(f"{self.gateway_url}/api/servers")
        self.t.assertEqual(status, 200)
        return {s["name"]: s for s in json.loads(body)["servers"]}

    def assert_data_from_all_backends(self, requests=30):
        served = set()
        for i in range(requests):
            status, headers, body = fetch(f"{self.gateway_url}/api/data", headers={"X-Request-Id": f"helm-{i}"})
            self.t.assertEqual(status, 200, body[:300])
            self.t.assertEqual(headers.get("x-request-id"), f"helm-{i}")
            served.add(json.loads(body)["instance"]["name"])
        self.t.assertEqual(served, set(self.backend_names), "not every backend pod answered through the gateway")

    def registrations(self):
        """POST /api/servers requests the gateway has accepted (2xx), from its /metrics."""
        status, _, body = fetch(f"{self.gateway_url}/metrics")
        self.t.assertEqual(status, 200)
        total = 0
        for line in body.decode().splitlines():
            if line.startswith("http_server_request_duration_seconds_count{") \
                    and 'http_route="/api/servers"' in line and 'http_request_method="POST"' in line \
                    and 'http_response_status_code="2' in line:
                total += int(float(line.rsplit(" ", 1)[1]))
        return total

    def assert_admin_token_required(self):
        intruder = {"name": "intruder", "url": "http://127.0.0.1:9"}
        status, _, _ = fetch(f"{self.gateway_url}/api/servers", "POST", intruder)
        self.t.assertEqual(status, 401, "the admin token from the Secret is not enforced")

    # -- helm test pod ---------------------------------------------------
    def run_helm_test_pod(self):
        pod = [d for d in c.find(self.docs, "Pod")
               if (d["metadata"].get("annotations") or {}).get("helm.sh/hook") == "test"][0]
        for ctr in c.all_containers(pod["spec"]):  # init containers first, in order, as the kubelet does
            argv = self.argv(ctr, {})
            self.assert_no_cluster_names(ctr["name"], argv)
            proc = subprocess.run(argv, env=base_env(), capture_output=True, text=True, timeout=30)
            self.t.assertEqual(proc.returncode, 0, f"helm test step {ctr['name']}: {proc.stderr}{proc.stdout}")

    # -- locust ----------------------------------------------------------
    def locust_process(self, workload, name, pod, run_time=LOCUST_RUN_TIME, ports=None):
        spec, ctr = self.container(workload)
        mounts = c.materialize_mounts(self.docs, spec, ctr, self.workdir / name)
        argv = self.argv(ctr, mounts)
        for flag, value in (ports or {}).items():
            argv[argv.index(flag) + 1] = str(value)
        if "--run-time" in argv:
            argv[argv.index("--run-time") + 1] = run_time
        if "--keep-alive" in argv:  # the pod's wait for `kubectl cp`, not needed here
            argv[argv.index("--keep-alive") + 1] = "0"
        env = self.env(ctr, pod, mounts)
        self.assert_no_cluster_names(name, argv + list(env.values()))
        return self.start_pod(name, argv, {**base_env(), "HOSTNAME": pod, **env}, cwd=mounts.get("/tmp")), mounts

    def run_locust(self):
        """Runs the Locust Job (and its workers in distributed mode); returns
        (stdout log, reports dir)."""
        master = (c.find(self.docs, "Job", component="locust") +
                  c.find(self.docs, "Job", component="locust-master"))
        self.t.assertEqual(len(master), 1)
        master = master[0]
        workers = c.find(self.docs, "Job", component="locust-worker")
        ports = {}
        worker_procs = []
        if workers:
            svc = c.one(self.docs, "Service", component="locust-master")
            mport = free_port()
            name, port = svc["metadata"]["name"], svc["spec"]["ports"][0]["port"]
            self.remap.add(name, port, mport)
            self.remap.hosts[name] = "127.0.0.1"
            ports = {"--master-bind-port": mport}
            for i in range(workers[0]["spec"]["parallelism"]):
                proc, _ = self.locust_process(workers[0], f"locust-worker-{i}", f"worker-{i}",
                                              ports={"--master-port": mport})
                worker_procs.append(proc)
        proc, mounts = self.locust_process(master, "locust", master["metadata"]["name"], ports=ports)
        try:
            rc = proc.wait(timeout=180)
        except subprocess.TimeoutExpired:
            self.t.fail(f"Locust did not finish:\n{log(proc)}")
        output = proc.output()
        self.t.assertEqual(rc, 0, f"the rendered Locust command failed ({rc}):\n{output[-6000:]}")
        for w in worker_procs:
            try:
                self.t.assertEqual(w.wait(timeout=30), 0, log(w))
            except subprocess.TimeoutExpired:
                self.t.fail(f"{w.name} did not stop after the master:\n{log(w)}")
        return output, Path(mounts["/reports"])

    def assert_locust_report(self, log, reports, registrations=0):
        """The CSV and HTML reports, with `registrations` POST /api/servers in
        Locust's figures (once per run, not per user or worker)."""
        with open(reports / "locust_stats.csv") as f:
            rows = {(r["Type"], r["Name"]): r for r in csv.DictReader(f)}
        total = rows[("", "Aggregated")]
        self.t.assertGreater(int(total["Request Count"]), 0)
        self.t.assertEqual(int(total["Failure Count"]), 0)
        self.t.assertGreater(int(rows[("GET", "/api/data")]["Request Count"]), 0)
        registered = rows.get(("POST", "/api/servers [register]"), {}).get("Request Count", 0)
        self.t.assertEqual(int(registered), registrations, "registrations in Locust's report")
        self.t.assertTrue((reports / "report.html").exists())
        # The NOTES' command recovers the HTML report from the log.
        notes = c.helm("install", c.RELEASE, str(c.CHART), "--dry-run=client", "--namespace", c.NAMESPACE,
                       *sum((["--set", s] for s in self.sets), []),
                       *(["-f", str(self.values)] if self.values else [])).stdout
        m = re.search(r"^ *(kubectl -n \S+ logs job/\S+) \\\n(.*?> locust-report\.html)$", notes, re.M | re.S)
        self.t.assertTrue(m, "NOTES lack the report command")
        logfile = self.workdir / "job.log"
        logfile.write_text(log)
        pipeline = m.group(2).replace("\\\n", " ").replace("locust-report.html", str(self.workdir / "report.html"))
        subprocess.run(["bash", "-o", "pipefail", "-c", f"cat {logfile} {pipeline}"], check=True)
        self.t.assertEqual((self.workdir / "report.html").read_bytes(), (reports / "report.html").read_bytes())


class RenderAndRun(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for binary in ("gateway", "backend"):
            if not (BIN / binary).exists():
                raise AssertionError(f"target/release/{binary} is missing: run `make release`")
        if not (VENV_BIN / "locust").exists():
            raise AssertionError(".venv/bin/locust is missing: run `make deps`")

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="helm-run-")
        self.procs = support.Processes(self.tmp.name)
        self.addCleanup(self.tmp.cleanup)
        self.addCleanup(self.procs.stop_all)

    def deploy(self, values=None, sets=()):
        docs = c.render(values, sets=sets)
        d = Deployment(self, docs, self.procs, self.tmp.name)
        d.values, d.sets = values, list(sets)
        return d

    def test_defaults_static_backends_and_the_locust_job(self):
        d = self.deploy()
        d.start_backends()
        d.start_gateway()
        self.assertEqual(sorted(d.servers()), ["server1", "server2", "server3"])
        d.assert_admin_token_required()
        d.assert_data_from_all_backends()
        d.run_helm_test_pod()
        log, reports = d.run_locust()
        d.assert_locust_report(log, reports, registrations=0)
        self.assertEqual(d.registrations(), 0, "static mode: the gateway lists the backends, Locust must not register")
        self.assertEqual(sorted(d.servers()), ["server1", "server2", "server3"])
        _, _, body = fetch(f"{d.gateway_url}/api/stats/1m")
        per_server = json.loads(body)["servers"]
        for name in ("server1", "server2", "server3"):
            self.assertGreater(per_server[name]["requests"], 0, name)

    def test_register_mode_distributed_registers_once_per_run(self):
        # Distributed: 3 workers x 10 users each would once have made 90 registrations.
        d = self.deploy(c.CI_DIR / "register-values.yaml",
                        sets=["locust.distributed.enabled=true", "locust.distributed.workers=3", "locust.users=30",
                              "locust.spawnRate=15"])
        d.start_backends()
        d.start_gateway()
        self.assertEqual(d.servers(), {}, "register mode starts without backends")
        d.assert_admin_token_required()
        log, reports = d.run_locust()
        d.assert_locust_report(log, reports, registrations=3)
        self.assertEqual(d.registrations(), 3, "one registration per backend for the whole distributed run")
        self.assertEqual(sorted(d.servers()), ["server1", "server2", "server3"])
        d.assert_data_from_all_backends()
        d.run_helm_test_pod()

    def test_distributed_locust_master_and_workers(self):
        d = self.deploy(c.CI_DIR / "distributed-values.yaml")
        d.start_backends()
        d.start_gateway()
        d.assert_data_from_all_backends()
        log, reports = d.run_locust()
        d.assert_locust_report(log, reports, registrations=0)
        self.assertIn("--master", log)
        self.assertEqual(d.registrations(), 0)

    def test_dns_discovery_with_a_distributed_run_lists_each_backend_once(self):
        d = self.deploy(c.CI_DIR / "dns-discovery-values.yaml",
                        sets=["locust.enabled=true", "locust.distributed.enabled=true", "locust.distributed.workers=2",
                              "locust.users=6", "locust.spawnRate=6", "locust.fastHttpUser=true"])
        hosts = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
        port = free_port(hosts=(*hosts, "0.0.0.0"))
        d.start_backends(hosts=hosts, shared_port=port)
        d.start_gateway(discovery_hosts=hosts, discovery_port=port)
        support.poll(lambda: len(d.servers()) >= 3, 10, interval=0.2)
        log, reports = d.run_locust()
        d.assert_locust_report(log, reports, registrations=0)
        self.assertEqual(d.registrations(), 0)
        servers = d.servers()
        self.assertEqual(sorted(s["url"] for s in servers.values()), sorted(f"http://{h}:{port}" for h in hosts),
                         f"each backend listed once: {sorted(servers)}")

    def test_a_locustfile_from_the_users_configmap_runs(self):
        # The user's own ConfigMap (made with `kubectl create configmap my-load --from-file=...`):
        # a locustfile under another key, importing a module beside it.
        d = self.deploy(sets=["locust.locustfile.existingConfigMap=my-load",
                              "locust.locustfile.existingConfigMapKey=shop.py",
                              "locust.extraArgs={--tags,browse}",
                              "locust.extraEnv[0].name=SHOP_PATH", "locust.extraEnv[0].value=/api/data?from=shop"])
        d.docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "my-load"}, "data": {
            "shoplib.py": "import os\nPATH = os.environ['SHOP_PATH']\n",
            "shop.py": (
                "from locust import HttpUser, constant, tag, task\n"
                "import shoplib\n\n"
                "class Shopper(HttpUser):\n"
                "    wait_time = constant(0.5)\n\n"
                "    @tag('browse')\n"
                "    @task\n"
                "    def browse(self):\n"
                "        self.client.get(shoplib.PATH, name='browse')\n\n"
                "    @tag('buy')\n"
                "    @task\n"
                "    def buy(self):\n"
                "        self.client.post('/checkout', name='buy')\n"),
        }})
        d.start_backends()
        d.start_gateway()
        log, reports = d.run_locust()
        with open(reports / "locust_stats.csv") as f:
            rows = {(r["Type"], r["Name"]): int(r["Request Count"]) for r in csv.DictReader(f)}
        self.assertGreater(rows.pop(("GET", "browse")), 10, log[-3000:])
        self.assertEqual(set(rows), {("", "Aggregated")}, "only the user's task ran (--tags browse from extraArgs)")
        self.assertEqual(d.registrations(), 0)

    def test_dns_discovery_resolves_the_headless_service(self):
        d = self.deploy(c.CI_DIR / "dns-discovery-values.yaml")
        hosts = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
        port = free_port(hosts=(*hosts, "0.0.0.0"))
        d.start_backends(hosts=hosts, shared_port=port)
        d.start_gateway(discovery_hosts=hosts, discovery_port=port)
        support.poll(lambda: len(d.servers()) >= 3, 10, interval=0.2)
        servers = d.servers()
        self.assertEqual(sorted(s["url"] for s in servers.values()), sorted(f"http://{h}:{port}" for h in hosts))
        for name in servers:
            self.assertTrue(name.startswith("gatewaylab-backend-headless-"), name)
        d.assert_data_from_all_backends()
        d.run_helm_test_pod()

    def test_interactive_locust_ui_serves_its_probes(self):
        d = self.deploy(c.CI_DIR / "interactive-values.yaml")
        d.start_backends()
        d.start_gateway()
        ui = c.one(d.docs, "Deployment", component="locust-ui")
        port = free_port()
        proc, _ = d.locust_process(ui, "locust-ui", f"{ui['metadata']['name']}-0", ports={"--web-port": port})
        _, ctr = d.container(ui)
        d.check_probes(proc, ctr, port)
        self.assertEqual(d.token, "demo-token-for-ci")

    def test_tracing_exports_one_trace_per_request_from_every_pod(self):
        d = self.deploy(c.CI_DIR / "tracing-values.yaml")
        receiver = Receiver()
        self.addCleanup(receiver.close)
        host, port = d.otlp_endpoint()
        d.remap.add(host, port, receiver.port)
        d.start_backends()
        d.start_gateway()
        d.assert_data_from_all_backends()
        gateway_pod = "gatewaylab-gateway-0"

        def whole_traces(_):
            """{backend pod: (gateway server span, client span, backend span)} for traces that went through each."""
            spans = receiver.resources
            servers = {s.trace_id: s for r, s in spans if r.get("k8s.pod.name") == gateway_pod and s.kind == SERVER}
            clients = {s.span_id: s for r, s in spans if r.get("k8s.pod.name") == gateway_pod and s.kind == CLIENT}
            found = {}
            for r, s in spans:
                if r.get("service.name") == "backend" and s.kind == SERVER and s.name == "GET /api/data" \
                        and s.trace_id in servers and s.parent_span_id in clients:
                    found[r["k8s.pod.name"]] = (servers[s.trace_id], clients[s.parent_span_id], s)
            return found if set(found) == set(d.backend_names) else None

        traces = receiver.wait_for(whole_traces, timeout=20)
        for pod, (server, client, backend) in traces.items():
            self.assertEqual(client.parent_span_id, server.span_id, pod)
        with receiver.lock:
            resources = [r for r, _ in receiver.resources]
            exports = list(receiver.exports)
        gateway = [r for r in resources if r.get("k8s.pod.name") == gateway_pod][0]
        self.assertEqual(gateway, {**gateway, "service.name": "gateway", "k8s.namespace.name": c.NAMESPACE,
                                   "k8s.container.name": "gateway", "service.version": "0.1.0",
                                   "deployment.environment.name": "ci"})
        for r in resources:
            component = "backend" if r["k8s.pod.name"] in d.backend_names else "gateway"
            self.assertEqual((r["service.name"], r["k8s.container.name"], r["k8s.namespace.name"]),
                             (component, component, c.NAMESPACE), r)
        self.assertEqual({r["k8s.pod.name"] for r in resources}, {gateway_pod, *d.backend_names})
        self.assertEqual(set(exports), {("/v1/traces", "application/x-protobuf")})
        # The access log leads from a request to its trace.
        trace_ids = {server.trace_id.hex() for server, _, _ in traces.values()}
        output = d.gateway.output()
        self.assertTrue(any(f'"trace_id":"{tid}"' in output for tid in trace_ids), output[-2000:])

    def test_tracing_with_the_collector_down_still_serves(self):
        d = self.deploy(c.CI_DIR / "tracing-values.yaml")
        host, port = d.otlp_endpoint()
        d.remap.add(host, port, free_port())  # nothing listens there
        d.start_backends()
        d.start_gateway()
        started = time.monotonic()
        d.assert_data_from_all_backends()
        self.assertLess(time.monotonic() - started, 5, "requests waited for the collector")
        d.run_helm_test_pod()
        for proc in d.procs.procs:
            self.assertTrue(proc.alive(), f"{proc.name} stopped:\n{log(proc)}")
            self.assertIn("exporting traces over OTLP/HTTP", proc.output(), proc.name)

    def test_a_setting_the_gateway_does_not_know_fails_the_run(self):
        d = self.deploy(sets=["gateway.extraConfig.upstream.connect_timout=1s"])
        d.start_backends()
        with self.assertRaisesRegex(StartupFailed, "connect_timout"):
            d.start_gateway()

    def test_a_variable_the_backend_does_not_know_fails_the_run(self):
        d = self.deploy(sets=["backend.extraEnv[0].name=BACKEND__FAULTS__LATENCI", "backend.extraEnv[0].value=1ms"])
        with self.assertRaisesRegex(StartupFailed, "(?i)latenci"):
            d.start_backends()


if __name__ == "__main__":
    unittest.main()
