#!/usr/bin/env python3
"""Side-by-side load test: the gateway against NGINX, HAProxy and no proxy.

`make bench` builds the release binaries and runs this. It starts three of
the project's backends on loopback, then measures each target in turn with
wrk, alternating the targets within every round:

- direct          wrk straight to one backend (what the proxies add to)
- nginx           NGINX, BENCH_WORKERS workers, round robin, upstream keep-alive
- haproxy         HAProxy, BENCH_WORKERS threads, round robin, http-reuse always
- gateway         this project's gateway: stats, metrics, access log on
- gateway-nolog   the same with log.access_log=false (the logging cost)
- gateway-bare    stats, metrics and access log all off (what they cost)

Each target process is started fresh for every measurement, warmed up with a
short wrk run at the same connection count, measured, and stopped, so its
peak RSS belongs to that connection count. Per target and connection count
the report gives the median over rounds of requests per second, p50 and p99
latency and the proxy's own CPU time per request (utime+stime of all its
processes and threads from /proc, delta over the measured run), its peak RSS
(sum of VmHWM over its processes) and the errors (socket errors plus HTTP
statuses >= 400), with ratios against NGINX.

Writes target/bench/results.json, results.md and results.png (the report is
rendered by bench/report.py, which can also re-render an existing JSON).

Settings, from the environment (all bounded):
  BENCH_DURATION     seconds per measured run (4; 1-120)
  BENCH_WARMUP       seconds of warm-up before each run (1; 0-30)
  BENCH_ROUNDS       rounds over all targets (10; 1-20)
  BENCH_WORKERS      worker processes / threads of every proxy (2; 1-64)
  BENCH_CONNECTIONS  comma-separated connection counts (64,256; each 1-1024)
  BENCH_WRK_THREADS  wrk threads (1; 1-4). One, as in performance-notes: on
                     2 cores a second wrk thread takes CPU from the proxy
                     under test and the backends.
  BENCH_TARGETS      comma-separated subset of the targets above (all)
  BENCH_PEER_ACCESS_LOG  1 (default): NGINX and HAProxy write an access log
                     line per request too, like the gateway; 0: they don't.
  BENCH_COSTS        1 (default): after the rounds, bench/costs.py counts
                     instructions, syscalls and TCP segments per request
                     (its own COSTS_* settings); 0: it doesn't.
  BENCH_OUT          output directory (target/bench)
  BENCH_BIN_DIR      where backend and gateway are (target/release)

Load goes to 127.0.0.1 only. Every process started here runs in its own
process group and is stopped on exit, including on errors and Ctrl-C.
"""

from __future__ import annotations

import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import report  # noqa: E402  (bench/report.py, next to this file)

CLK_TCK = os.sysconf("SC_CLK_TCK")
ALL_TARGETS = ["direct", "nginx", "haproxy", "gateway", "gateway-nolog", "gateway-bare"]
LOOPBACK = "127.0.0.1"
PATH = "/api/data"
BACKENDS = 3


def rotations(targets: list[str], rounds: int):
    """(round number, the targets in that round's order) for each round. The
    order rotates every round, so no target always runs first (or right
    after the same neighbour)."""
    for round_no in range(1, rounds + 1):
        shift = (round_no - 1) % len(targets)
        order = targets[shift:] + targets[:shift]
        print(f"round {round_no}/{rounds}: {', '.join(order)}", flush=True)
        yield round_no, order


class BenchError(Exception):
    """A failure that ends the run with a message instead of a traceback."""


# --------------------------------------------------------------------------
# Settings


def env_int(name: str, default: int, low: int, high: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BenchError(f"{name}={raw!r} is not an integer") from None
    if not low <= value <= high:
        raise BenchError(f"{name}={value} is outside {low}..{high}")
    return value


def env_subset(name: str, allowed: list[str]) -> list[str]:
    """A comma-separated subset of `allowed` from the environment; all of
    them when unset."""
    raw = os.environ.get(name, "").strip()
    chosen = [x.strip() for x in raw.split(",") if x.strip()] if raw else list(allowed)
    unknown = [x for x in chosen if x not in allowed]
    if unknown or not chosen:
        raise BenchError(f"{name}: unknown {unknown}; choose from {allowed}")
    return chosen


def settings() -> dict:
    conns_raw = os.environ.get("BENCH_CONNECTIONS", "64,256")
    try:
        connections = [int(c) for c in conns_raw.split(",") if c.strip()]
    except ValueError:
        raise BenchError(f"BENCH_CONNECTIONS={conns_raw!r}: expected numbers like 64,256") from None
    if not connections or any(not 1 <= c <= 1024 for c in connections):
        raise BenchError(f"BENCH_CONNECTIONS={conns_raw!r}: each must be 1..1024")
    targets = env_subset("BENCH_TARGETS", ALL_TARGETS)
    peer_log = os.environ.get("BENCH_PEER_ACCESS_LOG", "1").strip()
    if peer_log not in ("0", "1"):
        raise BenchError("BENCH_PEER_ACCESS_LOG must be 0 or 1")
    with_costs = os.environ.get("BENCH_COSTS", "1").strip()
    if with_costs not in ("0", "1"):
        raise BenchError("BENCH_COSTS must be 0 or 1")
    return {
        "duration_s": env_int("BENCH_DURATION", 4, 1, 120),
        "warmup_s": env_int("BENCH_WARMUP", 1, 0, 30),
        "rounds": env_int("BENCH_ROUNDS", 10, 1, 20),
        "connections": connections,
        "wrk_threads": env_int("BENCH_WRK_THREADS", 1, 1, 4),
        # The same for all three proxies: NGINX worker_processes, HAProxy
        # nbthread, the gateway's workers (whose own default is one per core,
        # which would not be a like-for-like comparison on a bigger machine).
        "workers": env_int("BENCH_WORKERS", 2, 1, 64),
        "targets": targets,
        "peer_access_log": peer_log == "1",
        "costs": with_costs == "1",
        "out": Path(os.environ.get("BENCH_OUT", ROOT / "target" / "bench")),
        "bin_dir": Path(os.environ.get("BENCH_BIN_DIR", ROOT / "target" / "release")),
        "path": PATH,
    }


# --------------------------------------------------------------------------
# Processes: start in their own group, stop the group, always.


class Processes:
    """Every process this run started; `stop_all` ends them by group id."""

    def __init__(self) -> None:
        self.live: list[subprocess.Popen] = []

    def start(self, argv: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
        out = open(log, "ab")
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        finally:
            out.close()
        self.live.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 10.0) -> None:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(5)
        # Children left in the group (e.g. NGINX workers) go too.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if proc in self.live:
            self.live.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.live)):
            try:
                self.stop(proc)
            except Exception as e:  # keep stopping the others
                print(f"bench: could not stop pid {proc.pid}: {e}", file=sys.stderr)


def _raise_exit(signum, _frame):
    raise SystemExit(128 + signum)


# --------------------------------------------------------------------------
# /proc accounting


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # Fields after "(comm)"; rest[0] is field 3 (state) of proc(5).
    return raw[raw.rindex(")") + 2 :].split()


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields:
                children.setdefault(int(fields[1]), []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def cpu_seconds(root: int) -> float:
    """User+system time of `root`'s whole process tree, all threads,
    including children it has already reaped (cutime/cstime), so the delta
    over a run is right even if a worker is replaced during it."""
    ticks = 0
    for pid in process_tree(root):
        f = _stat_fields(pid)
        if f:
            ticks += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    return ticks / CLK_TCK


def status_kib(root: int, field: str) -> int:
    """Sum of a /proc/PID/status memory field (VmRSS, VmHWM, ...) over
    `root`'s processes, in KiB."""
    total = 0
    for pid in process_tree(root):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    total += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def peak_rss_kib(root: int) -> int:
    """Sum of VmHWM (peak resident set) over `root`'s processes."""
    return status_kib(root, "VmHWM")


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])
    return total - idle, total


# --------------------------------------------------------------------------
# Networking helpers (loopback only; no environment proxies)

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    assert url.startswith(f"http://{LOOPBACK}:"), url
    try:
        with _opener.open(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{proc.args[0]} exited with {proc.returncode} before answering {url}:\n{tail(log)}")
        try:
            status, _ = http_get(url, timeout=1.0)
            if status == 200:
                return
            last = f"HTTP {status}"
        except OSError as e:
            last = str(e)
        time.sleep(0.05)
    raise BenchError(f"{url} not ready after {timeout:.0f}s ({last}):\n{tail(log)}")


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


# --------------------------------------------------------------------------
# Targets


def render(template: Path, values: dict[str, str]) -> str:
    text = template.read_text()
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    left = re.findall(r"\{\{[A-Z_]+\}\}", text)
    if left:
        raise BenchError(f"{template.name}: no value for {sorted(set(left))}")
    return text


def backend_env(name: str, port: int) -> dict:
    """The environment of one project backend in the benchmarks."""
    return {
        "BACKEND__LISTEN__HOST": LOOPBACK,
        "BACKEND__LISTEN__PORT": str(port),
        "PORT": str(port),
        "BACKEND__NAME": name,
        "BACKEND__LOG__LEVEL": "warn",
    }


class Bench:
    def __init__(self, cfg: dict, procs: Processes, workdir: Path) -> None:
        self.cfg = cfg
        self.procs = procs
        self.work = workdir
        self.logs = cfg["out"] / "logs"
        self.backend_ports: list[int] = []
        self.backends: list[subprocess.Popen] = []
        self.ports = {t: free_port() for t in ALL_TARGETS if t != "direct"}

    # -- backends ----------------------------------------------------------

    def start_backends(self) -> None:
        binary = self.cfg["bin_dir"] / "backend"
        for i in range(BACKENDS):
            port = free_port()
            log = self.logs / f"backend-{i + 1}.log"
            proc = self.procs.start([str(binary)], log, env=backend_env(f"b{i + 1}", port))
            wait_ready(f"http://{LOOPBACK}:{port}/healthz", proc, log)
            self.backend_ports.append(port)
            self.backends.append(proc)

    # -- one target process --------------------------------------------------

    def start_target(self, target: str) -> tuple[subprocess.Popen | None, int, Path | None]:
        """Starts `target` fresh; returns (process, port, its log), with no
        process and log for direct."""
        if target == "direct":
            return None, self.backend_ports[0], None
        argv, env, log, port = self.target_command(target)
        proc = self.procs.start(argv, log, env=env)
        wait_ready(f"http://{LOOPBACK}:{port}{self.cfg['path']}", proc, log)
        return proc, port, log

    def target_command(self, target: str) -> tuple[list[str], dict, Path, int]:
        """Writes `target`'s configuration into a fresh run directory and
        returns how to start it: (argv, environment, log file, port). Kept
        apart from starting it so that costs.py can run the same command
        under valgrind or strace."""
        port = self.ports[target]
        rundir = self.run_dir(target)
        log = self.logs / f"{target}.log"
        peer_log = self.cfg["peer_access_log"]
        if target == "nginx":
            (rundir / "nginx.conf").write_text(self.nginx_conf(rundir, port, peer_log))
            return ["nginx", "-p", str(rundir), "-c", str(rundir / "nginx.conf")], {}, log, port
        elif target == "haproxy":
            (rundir / "haproxy.cfg").write_text(self.haproxy_conf(port, peer_log))
            argv = ["haproxy", "-db", "-f", str(rundir / "haproxy.cfg"), "-p", str(rundir / "haproxy.pid")]
            # HAProxy's log lines go to its stdout: a file of their own.
            return argv, {}, rundir / "access.log", port
        # gateway, gateway-nolog, gateway-bare
        env = {
            **self.gateway_env(port),
            "GATEWAY__LOG__ACCESS_LOG": "true" if target == "gateway" else "false",
            "GATEWAY__STATS__ENABLED": "false" if target == "gateway-bare" else "true",
            "GATEWAY__METRICS__ENABLED": "false" if target == "gateway-bare" else "true",
            "GATEWAY__LOG__LEVEL": "info",
        }
        # The gateway logs to stdout (access lines included): a file,
        # as a log collector would take it.
        return [str(self.cfg["bin_dir"] / "gateway")], env, rundir / "stdout.log", port

    def run_dir(self, target: str) -> Path:
        """A fresh, empty run directory for `target` (config, pid file, logs)."""
        rundir = self.work / target
        if rundir.exists():
            shutil.rmtree(rundir)
        rundir.mkdir(parents=True)
        # NGINX workers run as an unprivileged user when started as root.
        rundir.chmod(0o755)
        return rundir

    def nginx_conf(self, rundir: Path, port: int, peer_log: bool, balancing: str = "") -> str:
        """NGINX's configuration in front of the backends; `balancing` is an
        `upstream` directive such as `least_conn` (none: round robin)."""
        servers = "\n".join(f"        server {LOOPBACK}:{p};" for p in self.backend_ports)
        if balancing:
            servers = f"        {balancing};\n" + servers
        return render(
            HERE / "nginx.conf.tmpl",
            {
                "RUNDIR": str(rundir),
                "WORKERS": str(self.cfg["workers"]),
                "PORT": str(port),
                "UPSTREAM_SERVERS": servers,
                "UPSTREAM_KEEPALIVE": str(max(1024, max(self.cfg["connections"]))),
                "ACCESS_LOG": f"access_log {rundir}/access.log bench;" if peer_log else "access_log off;",
            },
        )

    def haproxy_conf(self, port: int, peer_log: bool) -> str:
        """HAProxy's configuration in front of the backends (round robin)."""
        servers = "\n".join(f"    server b{i + 1} {LOOPBACK}:{p}" for i, p in enumerate(self.backend_ports))
        return render(
            HERE / "haproxy.cfg.tmpl",
            {
                "WORKERS": str(self.cfg["workers"]),
                "PORT": str(port),
                "SERVERS": servers,
                "GLOBAL_LOG": "    log stdout format raw local0 info" if peer_log else "",
                "DEFAULTS_LOG": (
                    "    log global\n"
                    '    log-format "%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %{+Q}r id=%[var(txn.request_id)]"'
                    if peer_log
                    else ""
                ),
            },
        )

    def gateway_env(self, port: int) -> dict:
        """The gateway's listener, workers and static backends; the callers
        add the switches they compare."""
        servers = ",".join(f"b{i + 1}=http://{LOOPBACK}:{p}" for i, p in enumerate(self.backend_ports))
        return {
            "GATEWAY__LISTEN__HOST": LOOPBACK,
            "GATEWAY__LISTEN__PORT": str(port),
            "PORT": str(port),
            "GATEWAY__SERVERS": servers,
            "GATEWAY__WORKERS": str(self.cfg["workers"]),
        }

    def stop_target(self, proc: subprocess.Popen | None, target: str, log: Path | None) -> None:
        if proc is None:
            return
        self.procs.stop(proc)
        # Keep the end of the last run's output (access lines and all) and
        # NGINX's error log for a look; the rest goes with the temp dir.
        if log is not None:
            (self.logs / f"{target}-last-run.log").write_text(tail(log, 50) + "\n")
        error_log = self.work / target / "error.log"
        if error_log.exists():
            shutil.copy(error_log, self.logs / f"{target}-error.log")

    # -- checks ----------------------------------------------------------------

    def forwarded_headers(self, target: str, port: int) -> dict:
        """What the backend receives through `target`: the forwarding
        headers every proxy must add the same way."""
        status, body = http_get(f"http://{LOOPBACK}:{port}/api/echo")
        if status != 200:
            raise BenchError(f"{target}: GET /api/echo answered {status}")
        headers = json.loads(body)["headers"]
        seen = {k: headers.get(k) for k in ("x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-request-id")}
        if target != "direct":
            missing = [k for k, v in seen.items() if not v]
            if missing:
                raise BenchError(f"{target} does not forward {missing}; check its configuration")
        return seen

    # -- one measurement -------------------------------------------------------

    def wrk(self, port: int, conns: int, seconds: int, log_name: str, script: Path = HERE / "report.lua") -> tuple[dict, float]:
        """Runs wrk with `script` (which must end as report.lua does);
        returns its figures and its own CPU seconds."""
        url = f"http://{LOOPBACK}:{port}{self.cfg['path']}"
        argv = [
            "wrk",
            f"-t{self.cfg['wrk_threads']}",
            f"-c{conns}",
            f"-d{seconds}s",
            "--timeout",
            "5s",
            "--latency",
            "-s",
            str(script),
            url,
        ]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        log = self.logs / "wrk.log"
        with open(log, "a") as f:
            f.write(f"\n### {log_name}: {' '.join(argv)}\n")
        proc = self.procs.start(argv, log)
        try:
            proc.wait(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            self.procs.stop(proc)
            raise BenchError(f"wrk did not finish ({log_name})") from None
        self.procs.live.remove(proc)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        wrk_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if proc.returncode != 0:
            raise BenchError(f"wrk failed ({log_name}):\n{tail(log)}")
        marker = [line for line in log.read_text().splitlines() if line.startswith("BENCH_JSON ")]
        if not marker:
            raise BenchError(f"wrk printed no summary ({log_name}):\n{tail(log)}")
        return json.loads(marker[-1][len("BENCH_JSON ") :]), wrk_cpu

    def measure(self, target: str, conns: int, round_no: int) -> dict:
        name = f"{target} c{conns} r{round_no}"
        proc, port, log = self.start_target(target)
        try:
            headers = self.forwarded_headers(target, port)
            if self.cfg["warmup_s"]:
                self.wrk(port, conns, self.cfg["warmup_s"], f"{name} warm-up")
            root = proc.pid if proc else None
            cpu0 = cpu_seconds(root) if root else 0.0
            back0 = sum(cpu_seconds(b.pid) for b in self.backends)
            busy0, total0 = machine_ticks()
            result, wrk_cpu = self.wrk(port, conns, self.cfg["duration_s"], name)
            busy1, total1 = machine_ticks()
            back1 = sum(cpu_seconds(b.pid) for b in self.backends)
            cpu1 = cpu_seconds(root) if root else 0.0
            rss = peak_rss_kib(root) if root else None
            if proc is not None and proc.poll() is not None:
                raise BenchError(f"{target} exited during the run:\n{tail(log) if log else ''}")
        finally:
            self.stop_target(proc, target, log)

        requests = result["requests"]
        seconds = result["duration_us"] / 1e6
        errors = result["errors"]
        lat = result["latency_us"]
        wall_s = (total1 - total0) / CLK_TCK / (os.cpu_count() or 1)
        busy_cores = (busy1 - busy0) / CLK_TCK / wall_s if wall_s else 0.0
        proxy_cpu = cpu1 - cpu0
        backend_cpu = back1 - back0
        accounted = proxy_cpu + backend_cpu + wrk_cpu
        row = {
            "target": target,
            "connections": conns,
            "round": round_no,
            "requests": requests,
            "seconds": round(seconds, 3),
            "rps": requests / seconds if seconds else 0.0,
            "latency_ms": {k: v / 1000.0 for k, v in lat.items()},
            "errors": errors,
            "errors_total": sum(errors.values()),
            "proxy_cpu_s": round(proxy_cpu, 3) if proc else None,
            "proxy_cpu_us_per_request": (proxy_cpu / requests * 1e6) if proc and requests else None,
            "peak_rss_kib": rss,
            "backend_cpu_us_per_request": backend_cpu / requests * 1e6 if requests else None,
            "wrk_cpu_s": round(wrk_cpu, 3),
            "machine_busy_cores": round(busy_cores, 2),
            # CPU used by everything else on the machine during the run
            # (other jobs, kernel threads): the noise in this run.
            "other_cpu_cores": round(max(0.0, busy_cores - accounted / seconds), 2) if seconds else None,
            "forwarded_headers": headers,
        }
        cpu = row["proxy_cpu_us_per_request"]
        print(
            f"  {target:<14} c={conns:<4} round {round_no}: {row['rps']:>9,.0f} req/s"
            f"  p50 {row['latency_ms']['p50']:.2f} ms  p99 {row['latency_ms']['p99']:.2f} ms"
            + (f"  cpu {cpu:.1f} us/req" if cpu is not None else "")
            + (f"  rss {rss / 1024:.1f} MiB" if rss else "")
            + f"  errors {row['errors_total']}  (other load {row['other_cpu_cores']} cores)",
            flush=True,
        )
        return row

    def run(self) -> list[dict]:
        rows = []
        for round_no, order in rotations(self.cfg["targets"], self.cfg["rounds"]):
            for conns in self.cfg["connections"]:
                for target in order:
                    rows.append(self.measure(target, conns, round_no))
        return rows


# --------------------------------------------------------------------------
# Conditions of the run, for the report


def command_output(argv: list[str]) -> str:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (p.stdout + p.stderr).strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def conditions(cfg: dict) -> dict:
    cpu_model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    commit = command_output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    haproxy = command_output(["haproxy", "-v"]).splitlines()
    wrk = command_output(["wrk", "-v"]).splitlines()
    dirty = command_output(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "services"])
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit + (" (services/ modified)" if dirty else ""),
        "cpu": cpu_model,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "load_average_at_start": os.getloadavg(),
        "nginx": command_output(["nginx", "-v"]).replace("nginx version: ", ""),
        "haproxy": haproxy[0] if haproxy else "",
        "wrk": wrk[0] if wrk else "",
        "duration_s": cfg["duration_s"],
        "warmup_s": cfg["warmup_s"],
        "rounds": cfg["rounds"],
        "connections": cfg["connections"],
        "wrk_threads": cfg["wrk_threads"],
        "workers": cfg["workers"],
        "path": cfg["path"],
        "peer_access_log": cfg["peer_access_log"],
        "targets": cfg["targets"],
    }


def preflight(cfg: dict) -> None:
    for tool in ("wrk", "nginx", "haproxy"):
        if shutil.which(tool) is None and (tool == "wrk" or tool in cfg["targets"]):
            raise BenchError(f"{tool} not found: run `make deps` (Debian packages wrk, nginx-light, haproxy)")
    for binary in ("backend", "gateway"):
        if not (cfg["bin_dir"] / binary).is_file():
            raise BenchError(f"{cfg['bin_dir'] / binary} missing: run `make release`")
    problem = report.chart_support_problem()
    if problem:
        raise BenchError(problem)


def run_cli(name: str, body) -> int:
    """Runs `body(procs)` as a command: SIGTERM and SIGHUP end it cleanly,
    a BenchError becomes a one-line message, and every process started
    through `procs` is stopped whatever happens. Returns the exit code."""
    signal.signal(signal.SIGTERM, _raise_exit)
    signal.signal(signal.SIGHUP, _raise_exit)
    procs = Processes()
    try:
        return body(procs)
    except BenchError as e:
        print(f"{name}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    finally:
        procs.stop_all()


def main() -> int:
    # Run as a script this file is __main__; costs.py's `import bench` must
    # get this same module, or its BenchError would be another class.
    sys.modules.setdefault("bench", sys.modules[__name__])
    return run_cli("bench", bench_main)


def bench_main(procs: Processes) -> int:
    cfg = settings()
    preflight(cfg)
    out: Path = cfg["out"]
    (out / "logs").mkdir(parents=True, exist_ok=True)
    for old in (out / "logs").iterdir():
        old.unlink()
    runs = len(cfg["targets"]) * len(cfg["connections"]) * cfg["rounds"]
    per_run = cfg["duration_s"] + cfg["warmup_s"] + 1
    print(
        f"bench: {runs} runs of {cfg['duration_s']} s (+{cfg['warmup_s']} s warm-up), "
        f"about {runs * per_run / 60:.1f} min; wrk -t{cfg['wrk_threads']}; "
        f"targets {', '.join(cfg['targets'])}; connections {cfg['connections']}",
        flush=True,
    )
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as work:
        bench = Bench(cfg, procs, Path(work))
        bench.start_backends()
        info = conditions(cfg)
        rows = bench.run()
        procs.stop_all()
    costs_result = None
    if cfg["costs"]:
        import costs  # here: costs.py imports this module

        costs_result = costs.measure_all(procs)
    info["elapsed_s"] = round(time.monotonic() - started, 1)
    results = report.summarize(info, rows)
    if costs_result:
        results["costs"] = costs_result
        costs.write({**costs_result, "conditions": info}, out)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    report.write_all(results, out)
    print(f"\n{(out / 'results.md').read_text()}")
    print(f"bench: wrote {out / 'results.json'}, {out / 'results.md'}, {out / 'results.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
