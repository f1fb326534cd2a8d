"""The chart's scenario mode (scenario.*): the Locust Job runs the project's
scenario runner (`python -m scenario run ... --target kubernetes`) instead of
plain Locust.

ScenarioRender checks what is rendered: the Job's command, arguments,
environment and volumes, the ConfigMap holding the runner package and the
scenario as JSON, the gateway's settings and backend names taken from the
scenario, and the render-time refusals. ScenarioRun runs the rendered Job
with the release binaries on loopback, as test_render_and_run does (its
Deployment maps the in-cluster names, mounts and paths).
"""

import json
import re
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import yaml

import chartlib as c
from test_render_and_run import VENV_BIN, Deployment, base_env

sys.path.insert(0, str(c.ROOT / "tests"))  # for support
import support  # noqa: E402

SCENARIO_VALUES = c.CI_DIR / "scenario-values.yaml"
SMOKE = c.ROOT / "deploy" / "scenarios" / "smoke.yaml"
RUNNER = c.ROOT / "scenario"
SCENARIO_CM = "gatewaylab-scenario"


def seconds(text):
    """A scenario duration (1m30s, 500ms) in seconds."""
    factor = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(int(n) * factor[unit] for n, unit in re.findall(r"(\d+)(ms|s|m|h)", text))


def stage_seconds(spec):
    return sum(seconds(s["duration"]) for s in spec["load"]["stages"])


def job_container(docs):
    job = c.one(docs, "Job", component="locust")
    return job, job["spec"]["template"]["spec"], job["spec"]["template"]["spec"]["containers"][0]


def split_args(ctr):
    """(run_locust.py's own options, the runner's arguments after `--`)."""
    args = ctr["args"]
    i = args.index("--")
    return args[:i], args[i + 1:]


def gateway_servers(docs):
    cfg = yaml.safe_load(c.one(docs, "ConfigMap", name="gatewaylab-gateway")["data"]["gateway.yaml"])
    return cfg, [(s["name"], s["url"]) for s in cfg["servers"]]


def runner_files():
    """The runner package as the chart ships it: every file below scenario/ but tests and bytecode."""
    return {p.relative_to(RUNNER).as_posix(): p.read_bytes() for p in sorted(RUNNER.rglob("*"))
            if p.is_file() and not re.search(r"(^|/)(tests?|__pycache__)/|\.pyc$", p.relative_to(RUNNER).as_posix())}


class ScenarioRender(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.docs = c.render(SCENARIO_VALUES)
        cls.tmp = tempfile.TemporaryDirectory(prefix="helm-scenario-")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def write(self, name, text):
        path = Path(self.tmp.name) / name
        path.write_text(text)
        return path

    def test_off_by_default_the_plain_locust_job(self):
        docs = c.render()
        _, _, ctr = job_container(docs)
        self.assertNotIn("--scenario", ctr["args"])
        self.assertNotIn("PYTHONPATH", [e["name"] for e in ctr["env"]])
        self.assertFalse(c.find(docs, "ConfigMap", name=SCENARIO_CM))
        # The backends' fault API takes the admin token in every install.
        backend = c.one(docs, "StatefulSet", component="backend")
        env = c.resolve_env(docs, backend["spec"]["template"]["spec"]["containers"][0], "gatewaylab-backend-0")
        self.assertEqual(env["BACKEND__ADMIN__TOKEN"], c.secret_value(docs, "gatewaylab-admin", "token"))

    def test_job_runs_the_runner_against_the_backend_pods_in_ordinal_order(self):
        job, _, ctr = job_container(self.docs)
        self.assertEqual(ctr["command"], ["python", "/mnt/locust/run_locust.py"])
        own, runner = split_args(ctr)
        self.assertIn("--scenario", own)
        self.assertEqual(own[own.index("--report-dir") + 1], "/reports")
        self.assertIn("--print-html", own)
        _, servers = gateway_servers(self.docs)
        self.assertEqual([name for name, _ in servers], ["server1", "server2", "server3"])
        self.assertEqual([url.split(".")[0] for _, url in servers],
                         ["http://gatewaylab-backend-0", "http://gatewaylab-backend-1", "http://gatewaylab-backend-2"])
        self.assertEqual(runner, [
            "run", "/mnt/scenario/smoke.json", "--target", "kubernetes",
            "--gateway-url", f"http://gatewaylab-gateway.{c.NAMESPACE}.svc.cluster.local:8000",
            "--backend-urls", ",".join(url for _, url in servers),
            "--token-file", "/mnt/admin/token", "--out", "/reports"])
        env = c.resolve_env(self.docs, ctr, "job-pod")
        self.assertEqual(env["PYTHONPATH"], "/mnt/runner")
        spec = yaml.safe_load(SMOKE.read_text())
        # wait timeout + the scenario's stages + keep-alive (ci file: 120 s) + 300 s margin
        self.assertEqual(job["spec"]["activeDeadlineSeconds"], 300 + round(stage_seconds(spec) + 0.499) + 120 + 300)

    def test_mounts_hold_the_runner_the_scenario_as_json_and_the_token(self):
        _, spec, ctr = job_container(self.docs)
        mounts = c.materialize_mounts(self.docs, spec, ctr, Path(self.tmp.name) / "job")
        package = Path(mounts["/mnt/runner"]) / "scenario"
        mounted = {p.relative_to(package).as_posix(): p.read_bytes() for p in package.rglob("*") if p.is_file()}
        self.assertEqual(mounted, runner_files())
        scenario = Path(mounts["/mnt/scenario"]) / "smoke.json"
        self.assertEqual(json.loads(scenario.read_text()), yaml.safe_load(SMOKE.read_text()))
        token = (Path(mounts["/mnt/admin"]) / "token").read_text()
        self.assertEqual(token, c.secret_value(self.docs, "gatewaylab-admin", "token"))
        cm = c.one(self.docs, "ConfigMap", name=SCENARIO_CM)
        self.assertLess(len(json.dumps(cm).encode()), 1024 * 1024, "a ConfigMap holds at most 1 MiB")
        # The runner reads the mounted JSON with no PyYAML (the Locust image has none).
        no_yaml = "import runpy, sys; sys.modules['yaml'] = None; runpy.run_module('scenario', run_name='__main__')"
        proc = subprocess.run([sys.executable, "-c", no_yaml, "check", "--target", "kubernetes", str(scenario)], capture_output=True, text=True,
                              env={**base_env(), "PYTHONPATH": mounts["/mnt/runner"]}, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertIn(": ok (", proc.stdout)

    def test_own_file_names_the_backends_and_sets_the_gateway(self):
        own = {
            "name": "two-of-three",
            "backends": ["alpha", "beta"],
            "gateway": {"retry": {"max_attempts": 1}, "balancer": {"strategy": "weighted_round_robin"}},
            "variants": [{"name": "rr", "gateway": {"balancer": {"strategy": "round_robin"}}},
                         {"name": "lo", "gateway": {"balancer": {"strategy": "least_outstanding"}}}],
            "load": {"user": "api", "stages": [{"duration": "1m30s", "users": 2, "spawn_rate": 2}]},
            "faults": [{"at": "10s", "backend": "beta", "action": "set", "faults": {"latency": "5ms"}}],
            "gates": [{"gate": "share(beta) < 50%"}],
        }
        path = self.write("mine.yaml", yaml.safe_dump(own))
        docs = c.render(extra=["--set-file", f"scenario.file={path}"],
                        sets=["scenario.enabled=true", "scenario.variant=lo"])
        cm = c.one(docs, "ConfigMap", name=SCENARIO_CM)
        self.assertEqual(json.loads(cm["data"]["two-of-three.json"]), own)
        cfg, servers = gateway_servers(docs)
        # Pod i is the scenario's backend i; a pod it does not list keeps the chart's name.
        self.assertEqual([n for n, _ in servers], ["alpha", "beta", "server3"])
        self.assertEqual(cfg["balancer"]["strategy"], "least_outstanding")
        self.assertEqual(cfg["retry"]["max_attempts"], 1)
        job, _, ctr = job_container(docs)
        _, runner = split_args(ctr)
        self.assertEqual(runner[1], "/mnt/scenario/two-of-three.json")
        self.assertEqual(runner[runner.index("--backend-urls") + 1], ",".join(url for _, url in servers[:2]))
        self.assertEqual(runner[runner.index("--variant") + 1], "lo")
        self.assertEqual(job["spec"]["activeDeadlineSeconds"], 300 + 90 + 0 + 300)

    def test_existing_configmap_is_mounted_as_it_is(self):
        docs = c.render(sets=["scenario.enabled=true", "scenario.existingConfigMap=my-scenarios",
                              "scenario.existingConfigMapKey=slow.yaml"])
        _, spec, ctr = job_container(docs)
        volume = [v for v in spec["volumes"] if v["name"] == "scenario"][0]
        self.assertEqual(volume["configMap"], {"name": "my-scenarios", "items": [{"key": "slow.yaml", "path": "slow.yaml"}]})
        _, runner = split_args(ctr)
        self.assertEqual(runner[1], "/mnt/scenario/slow.yaml")
        _, servers = gateway_servers(docs)
        self.assertEqual(runner[runner.index("--backend-urls") + 1], ",".join(url for _, url in servers))
        cm = c.one(docs, "ConfigMap", name=SCENARIO_CM)
        self.assertEqual(set(cm["data"]), {p.replace("/", "__") for p in runner_files()}, "only the runner")

    def test_refused_at_render_time_naming_the_value(self):
        kill = self.write("kill.yaml", "backends: [a, b, c]\nfaults:\n  - {at: 1s, backend: b, action: kill}\n")
        four = self.write("four.yaml", "backends: [a, b, c, d]\n")
        listen = self.write("listen.yaml", "gateway: {listen: {port: 9000}}\n")
        variants = self.write("variants.yaml", "variants: [{name: rr}, {name: lo}]\n")
        broken = self.write("broken.yaml", "load: [1\n")
        on = ["scenario.enabled=true"]
        smoke = on + ["scenario.name=smoke"]
        cases = [
            (on, [], "needs one of scenario.name"),
            (smoke + ["locust.distributed.enabled=true"], [], "cannot run with locust.distributed.enabled=true"),
            (on + ["scenario.name=nope"], [], 'scenario.name: "nope" is not a shipped scenario (' ),
            (smoke, ["--set-file", f"scenario.file={four}"], "scenario.name and scenario.file are given"),
            (on + ["scenario.existingConfigMap=x", "scenario.name=smoke"], [],
             "scenario.name and scenario.existingConfigMap are given"),
            (on + ["backend.replicaCount=3"], ["--set-file", f"scenario.file={four}"],
             "scenario.file: backends: 4 backends (a, b, c, d) but backend.replicaCount is 3"),
            (smoke + ["backend.replicaCount=2"], [], "backend.replicaCount is 2"),
            (on, ["--set-file", f"scenario.file={kill}"], 'scenario.file: faults[0].action: "kill" works in local runs only'),
            (on, ["--set-file", f"scenario.file={listen}"], "scenario.file: gateway.listen is set by the chart"),
            (on, ["--set-file", f"scenario.file={variants}"], "scenario.variant: scenario.file has variants (rr, lo)"),
            (smoke + ["scenario.variant=fast"], [], 'scenario.variant: "fast" is not a variant of scenario.name=smoke'),
            (on, ["--set-file", f"scenario.file={broken}"], "scenario.file: not a YAML mapping"),
            (smoke + ["locust.enabled=false"], [], "scenario.enabled=true needs locust.enabled=true"),
            (smoke + ["gateway.backends.mode=dns"], [], "needs gateway.backends.mode=static (not dns)"),
            (smoke + ["gateway.replicaCount=2"], [], "needs gateway.replicaCount=1"),
            (on + ["scenario.nam=smoke"], [], "additional properties 'nam' not allowed"),
        ]
        for sets, extra, message in cases:
            with self.subTest(sets=sets, extra=extra):
                proc = c.helm(*c.template_args(sets=sets, extra=extra), check=False)
                self.assertNotEqual(proc.returncode, 0, f"{sets} {extra} was accepted")
                self.assertIn(message, proc.stderr)


class ScenarioRun(unittest.TestCase):
    """The rendered scenario Job run with the release binaries: its exit code
    is the gates' verdict, and its report is where the NOTES say."""

    @classmethod
    def setUpClass(cls):
        support.require_binaries()
        if not (VENV_BIN / "locust").exists():
            raise AssertionError(".venv/bin/locust is missing: run `make deps`")

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="helm-scenario-run-")
        self.procs = support.Processes(self.tmp.name)
        self.addCleanup(self.tmp.cleanup)
        self.addCleanup(self.procs.stop_all)

    def deploy(self, values=None, sets=(), extra=()):
        d = Deployment(self, c.render(values, extra=extra, sets=sets), self.procs, self.tmp.name)
        d.start_backends()
        d.start_gateway()
        return d

    def run_job(self, d):
        """(exit code, log, reports dir) of the rendered Job's command."""
        job = c.one(d.docs, "Job", component="locust")
        proc, mounts = d.locust_process(job, "scenario-job", job["metadata"]["name"])
        try:
            rc = proc.wait(timeout=240)
        except subprocess.TimeoutExpired:
            self.fail(f"the scenario Job did not finish:\n{proc.output()[-6000:]}")
        return rc, proc.output(), Path(mounts["/reports"])

    def notes_recover(self, log, values, name):
        """Runs the NOTES' command that takes `name` (report.html or summary.json) from the log."""
        notes = c.helm("install", c.RELEASE, str(c.CHART), "--dry-run=client", "--namespace", c.NAMESPACE,
                       "-f", str(values)).stdout
        target = {"report.html": "scenario-report.html", "summary.json": "summary.json"}[name]
        m = re.search(r"^ *kubectl -n \S+ logs job/\S+ \\\n((?:.*\\\n)*?.*" + re.escape(name) + r".*\\\n.*> "
                      + re.escape(target) + ")$", notes, re.M)
        self.assertTrue(m, f"NOTES lack the command saving {name}")
        logfile = Path(self.tmp.name) / "job.log"
        logfile.write_text(log)
        out = Path(self.tmp.name) / f"recovered-{name}"
        pipeline = m.group(1).replace("\\\n", " ").replace(f"> {target}", f"> {out}")
        subprocess.run(["bash", "-o", "pipefail", "-c", f"cat {logfile} {pipeline}"], check=True)
        return out.read_bytes()

    def test_smoke_scenario_passes_and_leaves_its_report(self):
        d = self.deploy(SCENARIO_VALUES)
        rc, log, reports = self.run_job(d)
        self.assertEqual(rc, 0, f"the smoke scenario Job failed ({rc}):\n{log[-6000:]}")
        summary = json.loads((reports / "summary.json").read_text())
        self.assertEqual((summary["target"], summary["verdict"]), ("kubernetes", "pass"))
        self.assertIn("run_locust: verdict: pass", log)
        for name in ("report.html", "summary.json"):
            self.assertEqual(self.notes_recover(log, SCENARIO_VALUES, name), (reports / name).read_bytes(), name)
        # The faults reached the backend pods (over the headless Service's names, with the token).
        events = [e for run in summary["runs"] for e in run["fault_events"]]
        self.assertTrue(events, "the smoke scenario sets no fault")
        self.assertTrue(all(e["ok"] for e in events), events)
        for (host, port), name in zip(d.backend_addrs, ("server1", "server2", "server3")):
            metrics = support.fetch(f"http://{host}:{port}/metrics")[2].decode()
            m = re.search(r"^backend_fault_changes_total(?:\{\})? (\d+)", metrics, re.M)
            changed = int(m.group(1)) if m else 0
            events_here = [e for e in events if e["backend"] == name]
            if events_here:
                self.assertGreaterEqual(changed, len(events_here), name)
            else:
                self.assertEqual(changed, 0, name)
            # Whatever was set is cleared at the end: the backends outlive the Job.
            faults = json.loads(support.fetch(f"http://{host}:{port}/api/faults")[2])
            self.assertEqual((faults["faults"]["latency"], faults["faults"]["mode"], faults["expires_in"]),
                             ("0s", "serve", None), name)

    def test_a_failing_gate_fails_the_job(self):
        path = Path(self.tmp.name) / "unreachable.yaml"
        path.write_text(yaml.safe_dump({
            "name": "unreachable",
            "description": "One user for 4 s, gated on a million requests.",
            "load": {"user": "api", "stages": [{"name": "only", "duration": "4s", "users": 1, "spawn_rate": 1}]},
            "gates": ["requests > 1000000"],
        }))
        d = self.deploy(sets=["scenario.enabled=true"], extra=["--set-file", f"scenario.file={path}"])
        rc, log, reports = self.run_job(d)
        self.assertEqual(rc, 1, log[-6000:])
        self.assertIn("FAIL requests > 1000000", log)
        self.assertIn("run_locust: verdict: fail", log)
        self.assertEqual(json.loads((reports / "summary.json").read_text())["verdict"], "fail")
        self.assertTrue((reports / "report.html").exists())


if __name__ == "__main__":
    unittest.main()
