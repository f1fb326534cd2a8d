"""The processes of a local run: free loopback ports, the backends and the
gateway (and Locust, started by scenario.load) with their logs, readiness,
kill, restart and stop. Depends on scenario.http.

Everything a Stack starts is stopped when the Stack's `with` block ends,
however it ends (return, exception, Ctrl-C): SIGTERM (SIGINT for Locust), then SIGKILL after a
grace time, and reaped. Children also get PR_SET_PDEATHSIG=SIGKILL, so even a
SIGKILLed runner leaves nothing behind; that signal follows the *thread* that
started the child, which is why the runner starts (and restarts) processes
from its main thread only. Each child runs in a process group of its own
(setsid), so a terminal's Ctrl-C reaches the runner alone, which then stops
them in order.
"""

import ctypes
import json
import os
import random
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from . import http

HOST = "127.0.0.1"
# Below Linux's ephemeral range (32768+), so our own outgoing connections
# never take a port a backend is about to be restarted on.
PORTS = (20000, 29999)
STEERING = ("GATEWAY__", "BACKEND__", "OTEL_")
_PR_SET_PDEATHSIG = 1

try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover
    _libc = None


class StartFailed(Exception):
    """A process could not be started or did not become ready; the message
    says which, and ends with its log's last lines."""


def _die_with_parent():
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def clean_environment():
    """The runner's environment without what would steer the services."""
    return {k: v for k, v in os.environ.items() if not k.startswith(STEERING) and k not in ("PORT", "RUST_LOG")}


def free_port(taken):
    for _ in range(500):
        port = random.randint(*PORTS)
        if port in taken:
            continue
        with socket.socket() as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
        taken.add(port)
        return port
    raise StartFailed(f"no free port in {PORTS[0]}-{PORTS[1]} on {HOST}")


def write_settings(settings, path):
    """The scenario's gateway settings as a --config file (JSON, which the
    gateway reads as YAML). A file rather than GATEWAY__ variables: a
    one-element list such as retry.on_statuses [503] does not survive the
    variables' comma-separated form (the gateway reads `503` as a number)."""
    Path(path).write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    return Path(path)


def print_config(binary, settings):
    """(effective settings, None) from `binary --config <settings> --print-config`,
    or (None, the binary's one-line complaint)."""
    with tempfile.TemporaryDirectory(prefix="scenario-settings-") as tmp:
        config = write_settings(settings, Path(tmp) / "gateway.yaml")
        return _print_config([str(binary), "--config", str(config), "--print-config"])


def _print_config(argv, env=None):
    binary = argv[0]
    try:
        done = subprocess.run(argv, env={**clean_environment(), **(env or {})}, capture_output=True, text=True,
                              timeout=20, stdin=subprocess.DEVNULL)
    except OSError as e:
        return None, f"cannot run {binary}: {e.strerror or e}"
    except subprocess.TimeoutExpired:
        return None, f"{binary} --print-config did not answer within 20s"
    if done.returncode != 0:
        lines = [ln for ln in (done.stderr or done.stdout).splitlines() if ln.strip()]
        return None, lines[-1] if lines else f"exit status {done.returncode}"
    try:
        return json.loads(done.stdout), None
    except ValueError:
        return None, f"{binary} --print-config printed no JSON"


class Process:
    """One started process: argv, env and where its output goes."""

    def __init__(self, name, argv, env, log_path, port=None, cwd=None, stop_signal=signal.SIGTERM):
        self.name, self.argv, self.env, self.port = name, [str(a) for a in argv], env, port
        self.stop_signal = stop_signal  # what asks it to end cleanly
        self.log_path, self.cwd = Path(log_path), cwd
        self.popen = None

    def start(self):
        with open(self.log_path, "ab") as log:
            try:
                self.popen = subprocess.Popen(
                    self.argv, env={**clean_environment(), **self.env}, cwd=self.cwd, stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent, start_new_session=True,
                )
            except OSError as e:
                raise StartFailed(f"{self.name}: cannot run {self.argv[0]}: {e.strerror or e}") from None
        return self

    @property
    def pid(self):
        return self.popen.pid if self.popen else None

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def send(self, sig):
        if self.alive():
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self):
        """SIGKILL and reap (a fault: no shutdown, no goodbye)."""
        self.send(signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait(timeout=10)

    def tail(self, n=15):
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def url(self, path=""):
        return f"http://{HOST}:{self.port}{path}"

    def wait_ready(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                raise StartFailed(f"{self.name} exited during start-up (status {self.popen.returncode}); "
                                  f"last lines of {self.log_path.name}:\n{self.tail()}")
            try:
                if http.request("GET", self.url("/readyz"), timeout=1.0)[0] == 200:
                    return self
            except OSError:
                pass
            if time.monotonic() >= deadline:
                raise StartFailed(f"{self.name} not ready on {self.url()} after {timeout:g}s; "
                                  f"last lines of {self.log_path.name}:\n{self.tail()}")
            time.sleep(0.05)


class Stack:
    """The processes of one local run, stopped when the `with` block ends."""

    def __init__(self, log_dir, gateway_bin, backend_bin, grace=10.0):
        # Absolute, because the processes run in the log directory.
        self.log_dir = Path(log_dir).resolve()
        self.gateway_bin, self.backend_bin = (  # None: none to start (kubernetes)
            None if b is None else Path(b).resolve() for b in (gateway_bin, backend_bin)
        )
        self.grace = grace
        self.processes = []
        self.backends = {}
        self.gateway = None
        self.ports = set()

    def __enter__(self):
        return self

    def __exit__(self, *_exc):
        self.stop_all()
        return False

    def start(self, process):
        self.processes.append(process)
        return process.start()

    def start_backend(self, name, token):
        port = self.backends[name].port if name in self.backends else free_port(self.ports)
        env = {"BACKEND__LISTEN__HOST": HOST, "BACKEND__LISTEN__PORT": str(port), "BACKEND__NAME": name,
               "BACKEND__ADMIN__TOKEN": token}
        proc = Process(name, [self.backend_bin], env, self.log_dir / f"{name}.log", port=port, cwd=self.log_dir)
        self.backends[name] = proc
        return self.start(proc)

    def start_gateway(self, settings, token):
        """The gateway with the scenario's settings (a --config file in the log
        directory); where it listens and its token come from the variables."""
        port = free_port(self.ports)
        config = write_settings(settings, self.log_dir / "gateway-settings.yaml")
        env = {"GATEWAY__LISTEN__HOST": HOST, "GATEWAY__LISTEN__PORT": str(port), "GATEWAY__ADMIN__TOKEN": token}
        self.gateway = Process("gateway", [self.gateway_bin, "--config", config], env,
                               self.log_dir / "gateway.log", port=port, cwd=self.log_dir)
        return self.start(self.gateway)

    def gateway_settings(self):
        """The started gateway's effective settings, as it prints them under
        the same file and variables (tokens redacted)."""
        argv = [str(a) for a in self.gateway.argv] + ["--print-config"]
        settings, problem = _print_config(argv, self.gateway.env)
        if problem:
            raise StartFailed(f"gateway --print-config: {problem}")
        return settings

    def restart_backend(self, name, token, timeout=10.0):
        """Starts a killed backend again under its name and port."""
        return self.start_backend(name, token).wait_ready(timeout)

    def pids(self):
        return [p.pid for p in self.processes if p.pid is not None]

    def stop_all(self):
        """Each live process's stop signal (Locust first, so it writes its
        totals while the gateway still answers), SIGKILL after the grace time;
        a second Ctrl-C meanwhile is held back until all are reaped."""
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            for proc in sorted(self.processes, key=lambda p: p.name != "locust"):
                proc.send(signal.SIGCONT)
                proc.send(proc.stop_signal)
            deadline = time.monotonic() + self.grace
            for proc in self.processes:
                if proc.popen is None:
                    continue
                try:
                    proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    proc.send(signal.SIGKILL)
                    proc.popen.wait(timeout=10)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
