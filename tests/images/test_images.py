"""Container test (`make test-images`): builds the gateway and backend images
from the Dockerfile (deploy/scripts/images.sh) and runs them for real with
host networking on free loopback ports, as the numeric non-root user, with a
read-only root filesystem, no capabilities and no-new-privileges:

- image metadata: user 65532:65532, port, entrypoint, OCI labels, health
  check, size under IMAGE_MAX_BYTES (30 MB);
- three backends and one gateway, each ready, running as uid 65532 on a
  read-only root; the backends registered through POST /api/servers;
  /api/data answers through the gateway from all three; /metrics and
  /api/stats/1m answer;
- the `probe` subcommand inside the containers: exit 0 for a ready URL,
  non-zero for a 404 and for a refused connection; the image's own
  HEALTHCHECK command passes (and `podman healthcheck run` with podman);
- SIGTERM (stop with a 2 s grace period) ends each container within those
  2 s with exit code 0: a graceful exit, not the SIGKILL after the grace.

The engine and its storage come from deploy/scripts/container-env.sh, as for
the image scripts. Every container started here is removed at the end, pass
or fail, with the last lines of its log printed when a check failed. Each
check is a subtest; the run ends with `images: N checks, N failed`.

Environment: IMAGE_REPO, IMAGE_TAG, CONTAINER_ENGINE, AIRGAP (as for
`make images`), IMAGE_MAX_BYTES, and SKIP_BUILD=1 to use images already built.
"""

import contextlib
import json
import os
import re
import subprocess
import sys
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for support

import support  # noqa: E402
from support import HOST, ROOT  # noqa: E402

CARGO = (ROOT / "Cargo.toml").read_text()
VERSION = re.search(r'^version = "(.*)"$', CARGO, re.M).group(1)
REPO_URL = re.search(r'^repository = "(.*)"$', CARGO, re.M).group(1)
IMAGE_REPO = os.environ.get("IMAGE_REPO") or "gatewaylab"
IMAGE_TAG = os.environ.get("IMAGE_TAG") or VERSION
IMAGE_MAX_BYTES = int(os.environ.get("IMAGE_MAX_BYTES") or 30_000_000)
SERVICES = {"gateway": 8000, "backend": 5000}  # each image's port
BACKENDS = ("server1", "server2", "server3")
GRACE_SECONDS = 2

ENGINE = None  # "docker" or "podman"
ENGINE_ENV = None  # this process's environment plus container-env.sh's exports
CHECKS = []  # (description, passed)


def image(svc):
    return f"{IMAGE_REPO}/{svc}:{IMAGE_TAG}"


def engine(*args, timeout=120):
    """Runs the container engine; the CompletedProcess (text)."""
    return subprocess.run([ENGINE, *args], env=ENGINE_ENV, capture_output=True, text=True, timeout=timeout)


def inspect(what, fmt, kind="image"):
    r = engine(kind, "inspect", "--format", fmt, what)
    if r.returncode != 0:
        raise AssertionError(f"{ENGINE} {kind} inspect {what}: {r.stderr.strip()}")
    return r.stdout.strip()


def engine_environment():
    """The engine container-env.sh picks, and the environment it exports
    (podman's private storage and configuration)."""
    r = subprocess.run(["bash", "-c", ". deploy/scripts/container-env.sh >&2 && env -0"], cwd=ROOT,
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"deploy/scripts/container-env.sh: {r.stderr.strip()}")
    env = dict(line.split("=", 1) for line in r.stdout.split("\0") if "=" in line)
    return env["ENGINE"], env


def setUpModule():
    global ENGINE, ENGINE_ENV
    ENGINE, ENGINE_ENV = engine_environment()
    if os.environ.get("SKIP_BUILD") != "1":
        started = time.monotonic()
        env = {**os.environ, "IMAGE_REPO": IMAGE_REPO, "IMAGE_TAG": IMAGE_TAG}
        subprocess.run(["deploy/scripts/images.sh", "gateway", "backend"], cwd=ROOT, env=env, check=True)
        print(f"images built in {time.monotonic() - started:.0f}s", file=sys.stderr)
    print(f"== container test with {ENGINE}: {image('gateway')}, {image('backend')}", file=sys.stderr)


def tearDownModule():
    print("\n== image sizes", file=sys.stderr)
    for svc in SERVICES:
        with contextlib.suppress(AssertionError, ValueError):
            print(f"  {image(svc):<32} {int(inspect(image(svc), '{{.Size}}')) / 1e6:6.1f} MB", file=sys.stderr)
    failed = [what for what, ok in CHECKS if not ok]
    print(f"images: {len(CHECKS)} checks, {len(failed)} failed", file=sys.stderr)


class Checks(unittest.TestCase):
    @contextlib.contextmanager
    def check(self, what):
        """One named check: a subtest, counted for the summary."""
        with self.subTest(what):
            try:
                yield
            except BaseException:
                CHECKS.append((what, False))
                raise
            CHECKS.append((what, True))


class ImageMetadata(Checks):
    def test_user_port_and_entrypoint(self):
        for svc, port in SERVICES.items():
            with self.check(f"{svc}: runs as 65532:65532"):
                self.assertEqual(inspect(image(svc), "{{.Config.User}}"), "65532:65532")
            with self.check(f"{svc}: exposes {port}/tcp"):
                self.assertIn(f"{port}/tcp", json.loads(inspect(image(svc), "{{json .Config.ExposedPorts}}")))
            with self.check(f"{svc}: entrypoint is the binary"):
                self.assertEqual(json.loads(inspect(image(svc), "{{json .Config.Entrypoint}}")),
                                 [f"/usr/local/bin/{svc}"])

    def test_oci_labels(self):
        for svc in SERVICES:
            labels = json.loads(inspect(image(svc), "{{json .Config.Labels}}"))
            for label in ("description", "title", "licenses"):
                with self.check(f"{svc}: label org.opencontainers.image.{label}"):
                    self.assertTrue(labels.get(f"org.opencontainers.image.{label}"), labels)
            with self.check(f"{svc}: label org.opencontainers.image.source = {REPO_URL}"):
                self.assertEqual(labels.get("org.opencontainers.image.source"), REPO_URL)
            with self.check(f"{svc}: label org.opencontainers.image.version = {VERSION}"):
                self.assertEqual(labels.get("org.opencontainers.image.version"), VERSION)

    def test_health_check(self):
        for svc, port in SERVICES.items():
            with self.check(f"{svc}: health check runs '{svc} probe' on :{port}/readyz"):
                test = json.loads(inspect(image(svc), "{{json .Config.Healthcheck}}"))["Test"]
                self.assertEqual(test[:3], ["CMD", f"/usr/local/bin/{svc}", "probe"])
                self.assertEqual(test[-1], f"http://127.0.0.1:{port}/readyz")

    def test_size(self):
        for svc in SERVICES:
            size = int(inspect(image(svc), "{{.Size}}"))
            with self.check(f"{svc}: image size {size} bytes < {IMAGE_MAX_BYTES}"):
                self.assertLess(size, IMAGE_MAX_BYTES)


class RunningContainers(Checks):
    """Three backends and the gateway, in containers; the tests run in the
    order of their numbers, the last one stops the containers."""

    @classmethod
    def setUpClass(cls):
        cls.run_id = f"gl-imgtest-{os.getpid()}"
        cls.ports = dict(zip((*BACKENDS, "gateway"), support.free_ports(4)))
        cls.containers = []
        cls.addClassCleanup(cls.remove_containers)
        for name in BACKENDS:
            port = cls.ports[name]
            cls.start(name, "backend", ["-e", f"PORT={port}", "-e", f"BACKEND__LISTEN__HOST={HOST}",
                                        "-e", f"BACKEND__NAME={name}"])
        cls.start("gateway", "gateway", ["-e", f"PORT={cls.ports['gateway']}", "-e", f"GATEWAY__LISTEN__HOST={HOST}"])
        cls.ready = {}
        for name, port in cls.ports.items():
            cls.ready[name] = support.poll(lambda p=port: ready(p), 20, interval=0.2)

    @classmethod
    def start(cls, name, svc, args):
        container, port = f"{cls.run_id}-{name}", cls.ports[name]
        if ENGINE == "podman":
            # Exec form, on this container's port; no timer (there is no
            # systemd here): test_4 runs the check with `podman healthcheck run`.
            health = ["--health-cmd", json.dumps([f"/usr/local/bin/{svc}", "probe", "-q",
                                                  f"http://127.0.0.1:{port}/readyz"]), "--health-interval=disable"]
        else:
            health = ["--no-healthcheck"]
        cls.containers.append(container)
        r = engine("run", "-d", "--name", container, "--network", "host", "--read-only", "--user", "65532:65532",
                   "--cap-drop=ALL", "--security-opt", "no-new-privileges", *health, *args, image(svc))
        if r.returncode != 0:
            raise AssertionError(f"{ENGINE} run {container}: {r.stderr.strip()}")

    @classmethod
    def remove_containers(cls):
        if not cls.containers:
            return
        if any(not ok for _, ok in CHECKS):
            for c in cls.containers:
                logs = engine("logs", c)
                tail = "\n".join((logs.stdout + logs.stderr).splitlines()[-20:])
                print(f"---- logs of {c} (last 20 lines)\n{tail}", file=sys.stderr)
        engine("rm", "-f", *cls.containers)

    def url(self, name, path):
        return f"http://{HOST}:{self.ports[name]}{path}"

    def require_all_ready(self):
        if not all(self.ready.values()):
            self.fail(f"not every container became ready: {self.ready}")

    def test_1_ready_as_uid_65532_on_a_read_only_root(self):
        for name, port in self.ports.items():
            with self.check(f"{name}: ready on 127.0.0.1:{port}"):
                self.assertTrue(self.ready[name], f"not ready within 20 s; {ENGINE} logs: "
                                f"{engine('logs', f'{self.run_id}-{name}').stderr[-2000:]}")
            container = f"{self.run_id}-{name}"
            with self.check(f"{name}: process runs as uid 65532"):
                pid = inspect(container, "{{.State.Pid}}", "container")
                status = Path(f"/proc/{pid}/status").read_text()
                self.assertRegex(status, r"(?m)^Uid:\s+65532\s")
            with self.check(f"{name}: root filesystem is read-only"):
                self.assertEqual(inspect(container, "{{.HostConfig.ReadonlyRootfs}}", "container"), "true")

    def test_2_backends_registered_through_the_gateway(self):
        self.require_all_ready()
        for name in BACKENDS:
            status, _, body = support.request(self.ports["gateway"], "POST", "/api/servers",
                                              body={"name": name, "url": self.url(name, "")})
            with self.check(f"register {name} via POST /api/servers -> 201 (got {status})"):
                self.assertEqual(status, 201, body)
        with self.check("GET /api/servers lists the three backends"):
            names = sorted(s["name"] for s in support.servers(self.ports["gateway"]))
            self.assertEqual(names, list(BACKENDS))

    def test_3_api_through_the_gateway(self):
        self.require_all_ready()
        by_header, by_body = set(), set()
        for _ in range(30):
            with contextlib.suppress(OSError, ValueError):
                status, headers, body = support.request(self.ports["gateway"], "GET", "/api/data")
                if status == 200:
                    by_header.add(headers.get("x-served-by"))
                    by_body.add(json.loads(body).get("instance", {}).get("name"))
        for name in BACKENDS:
            with self.check(f"/api/data through the gateway answered by {name} (x-served-by)"):
                self.assertIn(name, by_header)
            with self.check(f"/api/data through the gateway answered by {name} (instance.name)"):
                self.assertIn(name, by_body)
        with self.check("gateway /metrics has http_server_request_duration_seconds"):
            _, _, body = support.request(self.ports["gateway"], "GET", "/metrics")
            self.assertRegex(body.decode(), r"(?m)^http_server_request_duration_seconds")
        with self.check("gateway /api/stats/1m counts the 30 proxied requests"):
            stats = support.get_json(self.ports["gateway"], "/api/stats/1m")
            self.assertEqual(stats["window"], "1m")
            self.assertGreaterEqual(stats["requests"], 30)
            self.assertIn("server1", stats["servers"])
        with self.check("backend /metrics answers"):
            _, _, body = support.request(self.ports["server1"], "GET", "/metrics")
            self.assertRegex(body.decode(), r"(?m)^http_server_request_duration_seconds")

    def test_4_probe_and_health_check_inside_the_containers(self):
        self.require_all_ready()
        for name, svc in (("server1", "backend"), ("gateway", "gateway")):
            container, port = f"{self.run_id}-{name}", self.ports[name]
            binary = f"/usr/local/bin/{svc}"
            with self.check(f"{name}: '{svc} probe' of /readyz inside the container exits 0"):
                r = engine("exec", container, binary, "probe", "-q", f"http://127.0.0.1:{port}/readyz")
                self.assertEqual(r.returncode, 0, r.stderr)
            r = engine("exec", container, binary, "probe", "-q", "--timeout", "1s",
                       f"http://127.0.0.1:{port}/no-such-path")
            with self.check(f"{name}: '{svc} probe' of a 404 exits non-zero (got {r.returncode})"):
                self.assertNotEqual(r.returncode, 0)
            r = engine("exec", container, binary, "probe", "-q", "--timeout", "1s", "http://127.0.0.1:1/readyz")
            with self.check(f"{name}: '{svc} probe' of a refused port exits non-zero (got {r.returncode})"):
                self.assertNotEqual(r.returncode, 0)
            # The image's HEALTHCHECK command, with this container's port.
            test = json.loads(inspect(image(svc), "{{json .Config.Healthcheck.Test}}"))
            command = [re.sub(r":(5000|8000)/", f":{port}/", a) for a in test[1:]]
            with self.check(f"{name}: the image's HEALTHCHECK command passes ({' '.join(command)})"):
                r = engine("exec", container, *command)
                self.assertEqual(r.returncode, 0, r.stderr)
            if ENGINE == "podman":
                with self.check(f"{name}: podman healthcheck run reports healthy"):
                    r = engine("healthcheck", "run", container)
                    self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_5_sigterm_stops_each_gracefully_within_the_grace_period(self):
        for name in self.ports:
            container = f"{self.run_id}-{name}"
            started = time.monotonic()
            engine("stop", "-t", str(GRACE_SECONDS), container)
            ms = (time.monotonic() - started) * 1000
            code = inspect(container, "{{.State.ExitCode}}", "container")
            with self.check(f"{name}: SIGTERM stopped it in {ms:.0f} ms (< {GRACE_SECONDS * 1000}) with exit code "
                            f"{code} (0 = graceful)"):
                self.assertLess(ms, GRACE_SECONDS * 1000)
                self.assertEqual(code, "0")


def ready(port):
    """Whether /readyz on the port answers 2xx."""
    try:
        return 200 <= support.request(port, "GET", "/readyz", timeout=1)[0] < 300
    except OSError:
        return False


if __name__ == "__main__":
    unittest.main(verbosity=2)
