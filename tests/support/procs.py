"""Processes for the tests: the release `gateway` and `backend` binaries (and
any other peer, e.g. Prometheus or Locust) started with a clean environment,
their output kept in log files, waited for until ready, and stopped whatever
happens. Depends on support.net and support.wait.

Every process started here is stopped by its group's stop_all() (tests call
it in their cleanup), and again at interpreter exit and on SIGTERM/SIGINT
(handlers installed with the first group):
stopped (SIGSTOP) processes get SIGCONT first, then SIGTERM, then SIGKILL
after a grace time. Children also get PR_SET_PDEATHSIG=SIGKILL, so even a
SIGKILLed test run leaves nothing behind.
"""

import atexit
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from .net import HOST, free_port, request
from .wait import wait_until

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "target" / "release"

# Variables that steer the services: a test says what it wants, nothing leaks
# in from the shell that runs it.
SERVICE_PREFIXES = ("GATEWAY__", "BACKEND__", "OTEL_")
SERVICE_VARIABLES = ("PORT",)


class StartupFailed(AssertionError):
    """A process exited while starting, or did not become ready in time."""


def require_binaries():
    for name in ("gateway", "backend"):
        path = BIN / name
        if not os.access(path, os.X_OK):
            raise AssertionError(f"{path} is missing: run `make release`")


def clean_environment():
    """This process's environment without the variables that steer services."""
    return {k: v for k, v in os.environ.items() if not k.startswith(SERVICE_PREFIXES) and k not in SERVICE_VARIABLES}


_PR_SET_PDEATHSIG = 1
try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover
    _libc = None


def _die_with_parent():
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class Proc:
    """A started process and its logs: `name`.log (stdout, and stderr too
    when merged) and `name`.stderr in `log_dir`.

    env: added to clean_environment(), or the whole environment when
    inherit_env is False. new_session: in a session (and process group) of
    its own, signalled as a group, so that what it spawns stops with it and a
    terminal's Ctrl-C reaches only the test."""

    def __init__(self, name, argv, env, log_dir, port=None, cwd=None, inherit_env=True, merge_output=False,
                 new_session=False):
        self.name = name
        self.port = port
        self.argv = [str(a) for a in argv]
        self.env = {**clean_environment(), **env} if inherit_env else dict(env)
        self.log_path = Path(log_dir) / f"{name}.log"
        self.err_path = None if merge_output else Path(log_dir) / f"{name}.stderr"
        self.new_session = new_session
        self.stopped = False
        self._log = open(self.log_path, "ab")
        self._err = None if merge_output else open(self.err_path, "ab")
        self.popen = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=cwd or log_dir,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT if merge_output else self._err,
            preexec_fn=_die_with_parent,
            start_new_session=new_session,
        )
        self.started_at = time.monotonic()

    @property
    def pid(self):
        return self.popen.pid

    @property
    def returncode(self):
        return self.popen.poll()

    def alive(self):
        return self.popen.poll() is None

    def signal(self, sig):
        """Sends `sig` (to the whole group in a session of its own); keeps
        track of SIGSTOP so that stopping it later sends SIGCONT first."""
        if not self.alive():
            return
        try:
            if self.new_session:
                os.killpg(self.pid, sig)
            else:
                self.popen.send_signal(sig)
        except ProcessLookupError:
            return
        if sig == signal.SIGSTOP:
            self.stopped = True
        elif sig == signal.SIGCONT:
            self.stopped = False

    def wait(self, timeout):
        return self.popen.wait(timeout=timeout)

    def terminate(self):
        """SIGCONT if stopped, then SIGTERM; does not wait."""
        if self.stopped:
            self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)

    def reap(self, deadline):
        """Waits until `deadline` (monotonic), SIGKILLs after it; closes the logs."""
        try:
            self.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.popen.kill()
            self.popen.wait(timeout=5)
        for f in (self._log, self._err):
            if f is not None and not f.closed:
                f.close()

    def stop(self, grace=10.0):
        """SIGCONT (if stopped), SIGTERM, SIGKILL after `grace` seconds; reaps."""
        self.terminate()
        self.reap(time.monotonic() + grace)

    def output(self):
        """Everything the process printed (stdout, then stderr)."""
        text = ""
        for p in (self.log_path, self.err_path):
            if p is not None and p.exists():
                text += p.read_text(errors="replace")
        return text

    def stdout_bytes(self):
        """Everything written to stdout (its log), as raw bytes."""
        return self.log_path.read_bytes() if self.log_path.exists() else b""

    def stderr_text(self):
        return self.err_path.read_text(errors="replace") if self.err_path and self.err_path.exists() else ""

    def tail(self, n=30):
        return "\n".join(self.output().splitlines()[-n:])

    def url(self, path="", host=HOST):
        return f"http://{host}:{self.port}{path}"

    def wait_ready(self, path="/readyz", timeout=10.0, host=HOST, port=None):
        """Polls GET `path` on host:port (the process's port by default)
        until it answers 2xx. Raises StartupFailed, with the log's tail, if
        the process exits first or `timeout` passes."""
        port = port or self.port

        def ready():
            return 200 <= request(port, "GET", path, timeout=1, host=host)[0] < 300

        try:
            wait_until(ready, timeout, what=f"{self.name}: http://{host}:{port}{path} ready", procs=[self])
        except AssertionError as e:
            raise StartupFailed(str(e)) from None
        return self


_groups = []
_groups_lock = threading.Lock()


def _on_signal(signum, _frame):
    stop_everything()
    sys.exit(128 + signum)


def _install_cleanup():
    """At exit and on SIGTERM/SIGINT, stop every process (once the first
    group exists: importing this module changes nothing)."""
    atexit.register(stop_everything)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)


class Processes:
    """The processes one test (or module) starts, their logs in `log_dir`."""

    def __init__(self, log_dir, grace=10.0):
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.grace = grace
        self.procs = []
        with _groups_lock:
            if not _groups:
                _install_cleanup()
            _groups.append(self)

    def start(self, name, argv, env=None, **options):
        """Starts a process (see Proc for the options) and returns it."""
        proc = Proc(name, argv, env or {}, self.log_dir, **options)
        self.procs.append(proc)
        return proc

    def backend(self, name, port=None, env=None, ready="/readyz", timeout=10.0, **options):
        """target/release/backend on HOST:port (a free port by default),
        named `name`, waited for on `ready` (None: not waited for)."""
        port = port or free_port()
        full = {"PORT": str(port), "BACKEND__LISTEN__HOST": HOST, "BACKEND__NAME": name, **(env or {})}
        proc = self.start(name, [BIN / "backend"], full, port=port, **options)
        return proc.wait_ready(ready, timeout) if ready else proc

    def gateway(self, name="gateway", port=None, settings=None, env=None, ready="/readyz", timeout=10.0, **options):
        """target/release/gateway on HOST:port (a free port by default).
        `settings` maps dotted keys (`retry.per_try_timeout`) to values,
        given as GATEWAY__ variables; `env` is added as it is."""
        port = port or free_port()
        full = {"GATEWAY__LISTEN__HOST": HOST, "GATEWAY__LISTEN__PORT": str(port)}
        for key, value in (settings or {}).items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            full["GATEWAY__" + key.upper().replace(".", "__")] = text
        full.update(env or {})
        proc = self.start(name, [BIN / "gateway"], full, port=port, **options)
        return proc.wait_ready(ready, timeout) if ready else proc

    def stop_all(self):
        """Stops every process of the group at once: SIGCONT to stopped ones,
        SIGTERM to all, SIGKILL to those still there after the grace time."""
        procs, self.procs = list(self.procs), []
        for p in procs:
            try:
                p.terminate()
            except Exception as e:  # noqa: BLE001 - keep cleaning up the others
                print(f"stopping {p.name} (pid {p.pid}): {e}", file=sys.stderr)
        deadline = time.monotonic() + self.grace
        for p in procs:
            try:
                p.reap(deadline)
            except Exception as e:  # noqa: BLE001
                print(f"stopping {p.name} (pid {p.pid}): {e}", file=sys.stderr)


def stop_everything():
    """Stops every process of every group (at exit, or on a signal)."""
    with _groups_lock:
        groups = list(_groups)
    for g in groups:
        g.stop_all()

