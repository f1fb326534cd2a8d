#!/usr/bin/env python3
"""Deterministic costs per proxied request: user-space instructions, system
calls and TCP segments, for the gateway, NGINX, HAProxy and direct.

Requests per second on this 2-core VM move by about 20% from one run to the
next; these counts barely move, so they settle what the throughput rounds
cannot. `make bench-costs` runs this alone, `make bench` after its rounds.

Every proxy runs with ONE worker (the gateway GATEWAY__WORKERS=1, NGINX
`master_process off` and `worker_processes 1`, HAProxy `-db` and `nbthread
1`), configured otherwise as bench.py configures it (same templates, round
robin, upstream keep-alive, access logs as in the main bench), in front of
three release backends. A client in this file sends GET requests one at a
time on one keep-alive connection. Each figure is measured twice, with
COSTS_BASE_REQUESTS and COSTS_REQUESTS requests, each time in a freshly
started proxy, and reported as (count2 - count1) / (N2 - N1), so start-up,
shut-down and the connection's opening cancel out:

- instructions  callgrind's total Ir of the proxy's own process(es) (valgrind
                --tool=callgrind --trace-children=no; the backends run
                natively), i.e. user-space instructions
- syscalls      `strace -f -c` over the proxy's processes and threads (not
                under valgrind): total and the most frequent calls
- segments      segs_out of the established sockets on the proxy's and the
                backends' ports (ss -tin) around the requests: every hop on
                loopback, ACKs included. The machine-wide TcpOutSegs delta
                (/proc/net/snmp) is kept next to it; other jobs' traffic
                counts there too.

`gateway-nolog` is the gateway with its access log off, as in bench.py.
`direct` is the client straight to a backend: its instructions and system
calls are that backend's own, its segments the client-backend hop alone.

Settings, from the environment (bounded):
  COSTS_REQUESTS       requests in the longer run (2500; 100-100000)
  COSTS_BASE_REQUESTS  requests in the shorter run (500; 10-50000, fewer
                       than COSTS_REQUESTS)
  COSTS_TARGETS        subset of gateway,gateway-nolog,nginx,haproxy,direct (all)
  COSTS_MEASURES       subset of instructions,syscalls,segments (all)
  COSTS_READY_TIMEOUT  seconds a proxy under valgrind may take to listen
                       (60; 10-600)
  BENCH_PEER_ACCESS_LOG, BENCH_OUT, BENCH_BIN_DIR as for bench.py

Writes target/bench/costs.json and costs.md.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench  # noqa: E402  (bench/bench.py: processes, configs, settings)
import report  # noqa: E402  (bench/report.py: the Markdown table)

from bench import LOOPBACK, BenchError  # noqa: E402

TARGETS = ["gateway", "gateway-nolog", "nginx", "haproxy", "direct"]
MEASURES = ["instructions", "syscalls", "segments"]
TOOLS = {"instructions": "valgrind", "syscalls": "strace"}
TOP_SYSCALLS = 6
# After the last request: longer than Linux's largest delayed-ACK timeout
# (200 ms), so every segment of the run has left before the counters are read.
SETTLE_S = 0.5


# --------------------------------------------------------------------------
# Settings


def settings() -> dict:
    cfg = bench.settings()
    long_run = bench.env_int("COSTS_REQUESTS", 2500, 100, 100_000)
    short_run = bench.env_int("COSTS_BASE_REQUESTS", 500, 10, 50_000)
    if short_run >= long_run:
        raise BenchError(f"COSTS_BASE_REQUESTS={short_run} must be below COSTS_REQUESTS={long_run}")
    cfg.update(
        {
            # One worker everywhere: instructions do not depend on it, and a
            # single process/thread keeps valgrind's output to one file.
            "workers": 1,
            "connections": [1],
            "requests": [short_run, long_run],
            "cost_targets": bench.env_subset("COSTS_TARGETS", TARGETS),
            "measures": bench.env_subset("COSTS_MEASURES", MEASURES),
            "ready_timeout": bench.env_int("COSTS_READY_TIMEOUT", 60, 10, 600),
        }
    )
    return cfg


# --------------------------------------------------------------------------
# Reading the tools' output (tested in tests/bench/test_costs.py)


def callgrind_total(path: Path) -> int:
    """Total Ir (first event) of one callgrind output file: its `totals:`
    line, or `summary:` when there is no totals line."""
    totals = summary = None
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("totals:"):
            totals = int(line.split()[1])
        elif line.startswith("summary:"):
            summary = int(line.split()[1])
    value = totals if totals is not None else summary
    if value is None:
        raise BenchError(f"{path}: no totals or summary line (not a callgrind output file?)")
    return value


def strace_counts(text: str) -> dict[str, int]:
    """Calls per system call from `strace -c` output, with the row `total`."""
    counts: dict[str, int] = {}
    rules = 0
    for line in text.splitlines():
        if line.startswith("------"):
            rules += 1
            continue
        fields = line.split()
        # Rows sit after the first rule; the total after the second. The
        # errors column is empty for calls that never failed, so the calls
        # are always the fourth field and the name the last.
        if rules in (1, 2) and len(fields) >= 5 and fields[3].isdigit():
            counts[fields[-1]] = int(fields[3])
    if "total" not in counts:
        raise BenchError("no total row in strace -c output:\n" + text[-500:])
    return counts


def tcp_out_segments(snmp: str | None = None) -> int:
    """OutSegs of the Tcp lines of /proc/net/snmp (a header line of names,
    then a line of values)."""
    if snmp is None:
        snmp = Path("/proc/net/snmp").read_text()
    rows = [line.split()[1:] for line in snmp.splitlines() if line.startswith("Tcp:")]
    if len(rows) < 2:
        raise BenchError("no Tcp lines in /proc/net/snmp")
    return int(dict(zip(rows[0], rows[1]))["OutSegs"])


def socket_segments(ports: set[int], ss_output: str | None = None) -> int:
    """Sum of segs_out (segments sent, pure ACKs included) over the
    established TCP sockets with a local or peer port in `ports`, from
    `ss -tinH state established`: the segments of this run's connections
    alone, whatever else the machine sends."""
    if ss_output is None:
        ss_output = subprocess.run(
            ["ss", "-tinH", "state", "established"], capture_output=True, text=True, check=True, timeout=10
        ).stdout
    total, mine = 0, False
    for line in ss_output.splitlines():
        if not line.startswith((" ", "\t")):
            # A socket line: recv-q, send-q, local address:port, peer address:port.
            fields = line.split()
            mine = len(fields) >= 4 and bool({_port(fields[2]), _port(fields[3])} & ports)
        elif mine:
            for field in line.split():
                if field.startswith("segs_out:"):
                    total += int(field.split(":", 1)[1])
    return total


def _port(address: str) -> int:
    tail = address.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def per_request(short: tuple[int, float], long: tuple[int, float]) -> float:
    """(count, requests) of two runs -> the count one more request adds:
    what both runs share (start-up, shut-down, connecting) cancels."""
    (n1, c1), (n2, c2) = short, long
    if n2 == n1:
        raise ValueError("the two runs need different request counts")
    return (c2 - c1) / (n2 - n1)


def per_request_each(short: tuple[int, dict], long: tuple[int, dict]) -> dict[str, float]:
    """per_request for every key of two dicts of counts (a key missing from
    one run counts 0 there)."""
    keys = set(short[1]) | set(long[1])
    return {k: per_request((short[0], short[1].get(k, 0)), (long[0], long[1].get(k, 0))) for k in keys}


# --------------------------------------------------------------------------
# The client: one connection, one request at a time


def send_requests(port: int, count: int, path: str, before_close=None):
    """Sends `count` GET requests on one keep-alive connection, each after
    the previous answer; returns what `before_close()` returns, called
    while the connection is still open."""
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=60)
    try:
        for i in range(count):
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise BenchError(f"request {i + 1} to port {port} answered {response.status}")
        return before_close() if before_close else None
    finally:
        conn.close()


# --------------------------------------------------------------------------
# Running one target under a tool


def wait_listening(port: int, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    """Waits until something accepts on `port`. Unlike bench.wait_ready it
    sends no request: under valgrind the first request can outlast any
    short timeout and be sent again, which would make the two runs differ
    by more than their request counts. Refused connections never reach the
    proxy's code, and the one accepted probe is the same in both runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{proc.args[0]} exited with {proc.returncode}:\n{bench.tail(log)}")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.2)
    raise BenchError(f"nothing listens on port {port} after {timeout:.0f}s:\n{bench.tail(log)}")


class Costs:
    def __init__(self, cfg: dict, procs: bench.Processes, work: Path) -> None:
        self.cfg = cfg
        self.procs = procs
        self.work = work
        self.runner = bench.Bench(cfg, procs, work)
        self.commands: dict[str, list[str]] = {}

    def command(self, target: str) -> tuple[list[str], dict, Path, int]:
        """(argv, environment, log, port) of `target`, as bench.py runs it
        but single-process; for direct, one more backend."""
        if target == "direct":
            port = bench.free_port()
            log = self.runner.logs / "costs-direct.log"
            return [str(self.cfg["bin_dir"] / "backend")], bench.backend_env("direct", port), log, port
        argv, env, log, port = self.runner.target_command(target)
        if target == "nginx":
            conf = self.work / "nginx" / "nginx.conf"
            text = conf.read_text()
            # No master: the one worker is the process valgrind and strace
            # start (with a master, its forked worker would be a second
            # process and file).
            anchor = "master_process on;"
            assert anchor in text, "nginx.conf.tmpl changed: no master_process line"
            conf.write_text(text.replace(anchor, "master_process off;"))
        return argv, env, log, port

    def wrapper(self, measure: str, target: str, n: int) -> list[str]:
        if measure == "instructions":
            return [
                "valgrind",
                "--tool=callgrind",
                "--trace-children=no",
                "--quiet",
                f"--callgrind-out-file={self.work}/callgrind.{target}.{n}.%p",
            ]
        if measure == "syscalls":
            # Started under strace rather than attached: no ptrace
            # permission needed, and start-up cancels in the difference.
            return ["strace", "-f", "-c", "-o", str(self.work / f"strace.{target}.{n}")]
        return []

    def one_run(self, measure: str, target: str, n: int) -> float | dict:
        """Starts `target` fresh (under the measure's tool), sends `n`
        requests, stops it; returns the count."""
        argv, env, log, port = self.command(target)
        full = self.wrapper(measure, target, n) + argv
        self.commands.setdefault(f"{measure} {target}", full)
        proc = self.procs.start(full, log, env=env)
        try:
            if measure == "instructions":
                wait_listening(port, proc, log, self.cfg["ready_timeout"])
            else:
                url_path = "/healthz" if target == "direct" else self.cfg["path"]
                bench.wait_ready(f"http://{LOOPBACK}:{port}{url_path}", proc, log)
            if measure == "segments":
                return self.count_segments(port, n)
            send_requests(port, n, self.cfg["path"])
            self.stop_gracefully(proc, measure)
        finally:
            self.procs.stop(proc)
        if measure == "instructions":
            files = sorted(self.work.glob(f"callgrind.{target}.{n}.*"))
            if not files:
                raise BenchError(f"callgrind wrote no output for {target}:\n{bench.tail(log)}")
            return sum(callgrind_total(f) for f in files)
        return strace_counts((self.work / f"strace.{target}.{n}").read_text())

    def count_segments(self, port: int, n: int) -> dict[str, int]:
        """Segments sent during `n` requests: on this run's own sockets (the
        reported figure) and machine-wide (OutSegs, which other traffic on
        the machine inflates)."""
        ports = {port, *self.runner.backend_ports}
        time.sleep(SETTLE_S)
        sockets0, system0 = socket_segments(ports), tcp_out_segments()

        def after() -> tuple[int, int]:
            # Delayed ACKs of the last answer go out before the count.
            time.sleep(SETTLE_S)
            return socket_segments(ports), tcp_out_segments()

        sockets1, system1 = send_requests(port, n, self.cfg["path"], before_close=after)
        return {"sockets": sockets1 - sockets0, "system": system1 - system0}

    def stop_gracefully(self, proc: subprocess.Popen, measure: str) -> None:
        """SIGTERM to the proxy itself (under strace: strace's child), then
        wait: callgrind writes its file and strace its summary only when the
        proxy exits, and a SIGKILL would lose both."""
        pid = proc.pid
        if measure == "syscalls":
            # process_tree lists the root first, then one of its children.
            tree = bench.process_tree(proc.pid)
            pid = tree[1] if len(tree) > 1 else proc.pid
        try:
            os.kill(pid, signal.SIGTERM)
            proc.wait(self.cfg["ready_timeout"])
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            raise BenchError(f"{proc.args[0]} did not exit within {self.cfg['ready_timeout']}s of SIGTERM") from None

    def measure(self, measure: str, target: str) -> dict:
        n1, n2 = self.cfg["requests"]
        short, long = self.one_run(measure, target, n1), self.one_run(measure, target, n2)
        if measure == "syscalls":
            each = per_request_each((n1, short), (n2, long))
            top = sorted((k for k in each if k != "total"), key=lambda k: -each[k])[:TOP_SYSCALLS]
            return {"per_request": each["total"], "top": {k: each[k] for k in top}, "runs": [short["total"], long["total"]]}
        if measure == "segments":
            each = per_request_each((n1, short), (n2, long))
            return {"per_request": each["sockets"], "system_wide_per_request": each["system"], "runs": [short, long]}
        return {"per_request": per_request((n1, short), (n2, long)), "runs": [short, long]}

    def run(self) -> dict:
        missing = {m: TOOLS[m] for m in self.cfg["measures"] if m in TOOLS and shutil.which(TOOLS[m]) is None}
        for m, tool in missing.items():
            print(f"costs: {tool} not found, no {m} column (run `make deps-test`)", file=sys.stderr, flush=True)
        self.runner.start_backends()
        results: dict[str, dict] = {t: {} for t in self.cfg["cost_targets"]}
        for measure in self.cfg["measures"]:
            if measure in missing:
                continue
            for target in self.cfg["cost_targets"]:
                started = time.monotonic()
                results[target][measure] = self.measure(measure, target)
                print(
                    f"  costs {target:<8} {measure:<12} {results[target][measure]['per_request']:>12,.1f} per request"
                    f"  ({time.monotonic() - started:.0f} s)",
                    flush=True,
                )
        return {
            "requests": self.cfg["requests"],
            "peer_access_log": self.cfg["peer_access_log"],
            "missing_tools": missing,
            "tools": {t: bench.command_output([t, "--version"]).splitlines()[0] for t in TOOLS.values() if shutil.which(t)},
            "targets": results,
            "commands": self.commands,
        }


# --------------------------------------------------------------------------
# Entry points


def preflight(cfg: dict) -> None:
    for binary in ("backend", "gateway"):
        if not (cfg["bin_dir"] / binary).is_file():
            raise BenchError(f"{cfg['bin_dir'] / binary} missing: run `make release`")
    for tool in ("nginx", "haproxy"):
        if tool in cfg["cost_targets"] and shutil.which(tool) is None:
            raise BenchError(f"{tool} not found: run `make deps-test`")


def measure_all(procs: bench.Processes, cfg: dict | None = None) -> dict:
    """Runs every cost measurement in a temporary directory of its own;
    bench.py calls this after its throughput rounds."""
    cfg = cfg or settings()
    preflight(cfg)
    (cfg["out"] / "logs").mkdir(parents=True, exist_ok=True)
    n1, n2 = cfg["requests"]
    print(f"costs: {', '.join(cfg['measures'])} for {', '.join(cfg['cost_targets'])}, runs of {n1} and {n2} requests", flush=True)
    with tempfile.TemporaryDirectory(prefix="gateway-costs-") as work:
        try:
            return Costs(cfg, procs, Path(work)).run()
        finally:
            procs.stop_all()


def write(costs: dict, out: Path) -> None:
    (out / "costs.json").write_text(json.dumps(costs, indent=2) + "\n")
    (out / "costs.md").write_text("# Deterministic costs per request\n\n" + report.costs_markdown(costs))


def costs_main(procs: bench.Processes) -> int:
    cfg = settings()
    costs = measure_all(procs, cfg)
    costs["conditions"] = bench.conditions(cfg)
    write(costs, cfg["out"])
    print(f"\n{report.costs_markdown(costs)}")
    print(f"costs: wrote {cfg['out'] / 'costs.json'}, {cfg['out'] / 'costs.md'}")
    return 0


def main() -> int:
    return bench.run_cli("bench-costs", costs_main)


if __name__ == "__main__":
    sys.exit(main())
