#!/usr/bin/env python3
"""Partial failure: one of three backends made worse, every proxy in one run.

`make bench-partial` builds the release binaries, installs oha and runs
this. It shares bench.py's process handling (own process groups,
everything stopped on exit) and its NGINX and HAProxy templates, with the
balancing changed:

- gateway-rr     the gateway, balancer.strategy=round_robin (its default)
- gateway-lo     the gateway, balancer.strategy=least_outstanding
- gateway-ewma   the gateway, balancer.strategy=peak_ewma
- gateway-hash   the gateway, balancer.strategy=hash, key query:user
- nginx          NGINX, `least_conn`
- haproxy        HAProxy, `balance leastconn`

Cases (the fault is set on backend b3 through its own fault API, so it is
the same whatever proxy sits in front):

- healthy  no fault: the reference the other cases are read against
- slow     b3 answers 20 ms later (PUT /api/faults {"latency":"20ms"})
- errors   b3 answers 5% of requests with 500
           ({"error_rate":0.05,"error_status":500}). Every proxy retries a
           500 on another backend here: the gateway with
           retry.on_statuses=500 (GET is idempotent, so it is retried),
           NGINX with `proxy_next_upstream error timeout http_500`, HAProxy
           with `retry-on conn-failure empty-response response-timeout 500`
           (its `retries 3` and `option redispatch` are in the template).

Loads, one after the other against the same proxy process; every request
carries one of 1,000 users' keys (`/api/data?user=000` to `999`), which only
gateway-hash looks at:

- light  open loop at PARTIAL_LIGHT_RATE req/s (20) from openloop.py:
         spaced requests on one keep-alive connection that never overlap,
         so every backend has 0 requests outstanding at each pick, as with
         the seed's Locust users.
- open   open loop at PARTIAL_OPEN_RATE req/s from oha
         (--latency-correction: latency from each request's scheduled send
         time, so queueing is counted), PARTIAL_OPEN_CONNECTIONS (256)
         connections. Unset, the rate is half of capacity: NGINX's req/s
         under wrk -c64 with three healthy backends, measured once at the
         start of the run and rounded down to 500.
- wrk    wrk -t1 -cPARTIAL_WRK_CONNECTIONS (64), closed loop, as bench.py.

Before the loads, each proxy gets a 1 s wrk warm-up at 8 connections (so
peak_ewma and the peers start with some traffic seen). Backends are
started fresh for every proxy, so their /api/stats/1m counts cover their
whole life; the share of requests b3 got is its `requests` delta over the
sum of the three backends' deltas around each load (retries count as
requests on the backend they went to).

Rounds rotate the order of the proxies, as bench.py does. Reported figures
are medians over rounds. Writes target/bench/partial.json, partial.md and
partial.png (partial_report.py).

Settings, from the environment (all bounded):
  PARTIAL_ROUNDS            rounds (2; 1-10)
  PARTIAL_CASES             healthy,slow,errors (subset)
  PARTIAL_TARGETS           gateway-rr,gateway-lo,gateway-ewma,gateway-hash,nginx,haproxy (subset)
  PARTIAL_LIGHT_RATE        req/s of the light load (20; 1-200)
  PARTIAL_LIGHT_SECONDS     seconds of the light load (10; 1-30)
  PARTIAL_OPEN_RATE         req/s of the open load (unset: half of capacity; 100-200000)
  PARTIAL_OPEN_SECONDS      seconds of the open load (5; 1-20)
  PARTIAL_OPEN_CONNECTIONS  oha connections (256; 1-1024)
  PARTIAL_WRK_SECONDS       seconds of the wrk load (4; 1-20)
  PARTIAL_WRK_CONNECTIONS   wrk connections (64; 1-1024)
  PARTIAL_SMOKE=1           one second per load, one round, open load at
                            500 req/s: checks the plumbing, its figures
                            mean nothing
  OHA                       another oha binary (oha.py)
  BENCH_WORKERS, BENCH_OUT, BENCH_BIN_DIR as for bench.py

Load goes to 127.0.0.1 only. Every process started here runs in its own
process group and is stopped on exit, including on errors and Ctrl-C.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import bench  # noqa: E402  (bench/bench.py: processes, wrk, helpers)
import oha  # noqa: E402
import openloop  # noqa: E402
import partial_report  # noqa: E402
from bench import LOOPBACK, BenchError  # noqa: E402

STRATEGIES = {
    "gateway-rr": "round_robin",
    "gateway-lo": "least_outstanding",
    "gateway-ewma": "peak_ewma",
    "gateway-hash": "hash",
}
ALL_TARGETS = [*STRATEGIES, "nginx", "haproxy"]
ALL_CASES = ["healthy", "slow", "errors"]
LOADS = ["light", "open", "wrk"]
FAULTS = {
    "healthy": None,
    "slow": {"latency": "20ms"},
    "errors": {"error_rate": 0.05, "error_status": 500},
}
TOKEN = "bench-partial"
WORSE = "b3"
USERS = 1000  # as bench/users.lua
HASH_KEY = "query:user"
# The backends' 1m stats window must cover the whole life of the backends.
MAX_BACKEND_LIFE_S = 55
CALIBRATION_S = 3


def partial_settings() -> dict:
    cfg = bench.settings()
    smoke = os.environ.get("PARTIAL_SMOKE", "0").strip() == "1"
    cfg.update(
        {
            "smoke": smoke,
            "rounds": 1 if smoke else bench.env_int("PARTIAL_ROUNDS", 2, 1, 10),
            "cases": bench.env_subset("PARTIAL_CASES", ALL_CASES),
            "targets": bench.env_subset("PARTIAL_TARGETS", ALL_TARGETS),
            "light_rate": bench.env_int("PARTIAL_LIGHT_RATE", 20, 1, 200),
            "light_s": 1 if smoke else bench.env_int("PARTIAL_LIGHT_SECONDS", 10, 1, 30),
            "open_rate": 500 if smoke else bench.env_int("PARTIAL_OPEN_RATE", 0, 100, 200000),
            "open_s": 1 if smoke else bench.env_int("PARTIAL_OPEN_SECONDS", 5, 1, 20),
            "open_connections": bench.env_int("PARTIAL_OPEN_CONNECTIONS", 256, 1, 1024),
            "wrk_s": 1 if smoke else bench.env_int("PARTIAL_WRK_SECONDS", 4, 1, 20),
            "wrk_connections": bench.env_int("PARTIAL_WRK_CONNECTIONS", 64, 1, 1024),
            "warmup_s": 1,
        }
    )
    cfg["connections"] = [cfg["wrk_connections"]]
    if cfg["light_s"] + cfg["open_s"] + cfg["wrk_s"] + cfg["warmup_s"] + 10 > MAX_BACKEND_LIFE_S:
        raise BenchError(f"the loads together must stay under {MAX_BACKEND_LIFE_S - 10} s (backend stats window)")
    return cfg


def user_paths(path: str) -> list[str]:
    """The light load's requests: every user once, in the order users.lua uses.
    Keys are three digits, 000-999, so that oha's pattern can draw them
    uniformly."""
    return [f"{path}?user={i:03d}" for i in range(USERS)]


def user_regex(port: int, path: str) -> str:
    """oha's URL pattern: one of the same 1,000 users per request, uniformly
    (each digit drawn alone; a pattern with alternatives, such as
    `0|[1-9][0-9]{0,2}`, would draw its first branch half of the time)."""
    return f"http://{LOOPBACK}:{port}{path}\\?user=[0-9]{{3}}"


def backend_requests(port: int) -> int:
    status, body = bench.http_get(f"http://{LOOPBACK}:{port}/api/stats/1m")
    if status != 200:
        raise BenchError(f"backend on {port}: /api/stats/1m answered {status}")
    return int(json.loads(body)["requests"])


def put_faults(port: int, faults: dict) -> None:
    req = urllib.request.Request(
        f"http://{LOOPBACK}:{port}/api/faults",
        data=json.dumps(faults).encode(),
        method="PUT",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with bench._opener.open(req, timeout=2.0) as r:
        if r.status != 200:
            raise BenchError(f"PUT /api/faults answered {r.status}")


class Partial(bench.Bench):
    def start_backends(self) -> None:
        self.backend_ports, self.backends = [], []
        binary = self.cfg["bin_dir"] / "backend"
        for i in range(bench.BACKENDS):
            port = bench.free_port()
            log = self.logs / f"backend-{i + 1}.log"
            env = {**bench.backend_env(f"b{i + 1}", port), "BACKEND__ADMIN__TOKEN": TOKEN}
            proc = self.procs.start([str(binary)], log, env=env)
            bench.wait_ready(f"http://{LOOPBACK}:{port}/healthz", proc, log)
            self.backend_ports.append(port)
            self.backends.append(proc)
        self.backends_started = time.monotonic()

    def stop_backends(self) -> None:
        for proc in self.backends:
            self.procs.stop(proc)

    def start_proxy(self, target: str, case: str):
        port = bench.free_port()
        rundir = self.run_dir(target)
        log = self.logs / f"{target}.log"
        errors = case == "errors"
        if target == "nginx":
            conf = self.nginx_conf(rundir, port, peer_log=False, balancing="least_conn")
            if errors:
                anchor = "proxy_read_timeout 30s;"
                assert anchor in conf
                conf = conf.replace(anchor, anchor + "\n            proxy_next_upstream error timeout http_500;")
            (rundir / "nginx.conf").write_text(conf)
            proc = self.procs.start(["nginx", "-p", str(rundir), "-c", str(rundir / "nginx.conf")], log)
        elif target == "haproxy":
            conf = self.haproxy_conf(port, peer_log=False)
            assert "balance roundrobin" in conf
            conf = conf.replace("balance roundrobin", "balance leastconn")
            if errors:
                conf = conf.replace(
                    "balance leastconn", "balance leastconn\n    retry-on conn-failure empty-response response-timeout 500"
                )
            (rundir / "haproxy.cfg").write_text(conf)
            proc = self.procs.start(["haproxy", "-db", "-f", str(rundir / "haproxy.cfg")], log)
        else:
            env = {
                **self.gateway_env(port),
                "GATEWAY__LOG__ACCESS_LOG": "false",
                "GATEWAY__LOG__LEVEL": "warn",
                "GATEWAY__BALANCER__STRATEGY": STRATEGIES[target],
            }
            if target == "gateway-hash":
                env["GATEWAY__BALANCER__HASH__KEY"] = HASH_KEY
            if errors:
                env["GATEWAY__RETRY__ON_STATUSES"] = "500"
            proc = self.procs.start([str(self.cfg["bin_dir"] / "gateway")], log, env=env)
        bench.wait_ready(f"http://{LOOPBACK}:{port}/healthz", proc, log)
        return proc, port, log

    def counts(self) -> list[int]:
        return [backend_requests(p) for p in self.backend_ports]

    def one_load(self, load: str, port: int, name: str) -> dict:
        before = self.counts()
        if load == "wrk":
            result, _ = self.wrk(port, self.cfg["wrk_connections"], self.cfg["wrk_s"], name, HERE / "users.lua")
            seconds = result["duration_us"] / 1e6
            errors = result["errors"]
            row = {
                "requests": result["requests"],
                "seconds": round(seconds, 3),
                "rps": result["requests"] / seconds if seconds else 0.0,
                "latency_ms": {k: result["latency_us"][k] / 1000.0 for k in ("p50", "p99", "p999", "max")},
                "failed": sum(errors.values()),
                "failed_by_kind": errors,
            }
        elif load == "light":
            row = openloop.open_loop(port, self.cfg["light_rate"], self.cfg["light_s"], user_paths(self.cfg["path"]))
        else:
            row = oha.run(
                self.oha,
                user_regex(port, self.cfg["path"]),
                self.cfg["open_rate"],
                self.cfg["open_s"],
                self.cfg["open_connections"],
                self.logs / "oha.log",
            )
        after = self.counts()
        deltas = [a - b for a, b in zip(after, before)]
        row["backend_requests"] = {f"b{i + 1}": d for i, d in enumerate(deltas)}
        row["worse_share"] = deltas[-1] / sum(deltas) if sum(deltas) else None
        return row

    def measure_proxy(self, case: str, target: str, round_no: int) -> list[dict]:
        self.start_backends()
        rows = []
        try:
            if FAULTS[case]:
                put_faults(self.backend_ports[-1], FAULTS[case])
            proc, port, log = self.start_proxy(target, case)
            try:
                self.wrk(port, 8, self.cfg["warmup_s"], f"{case} {target} r{round_no} warm-up")
                for load in LOADS:
                    name = f"{case} {target} {load} r{round_no}"
                    row = self.one_load(load, port, name)
                    if proc.poll() is not None:
                        raise BenchError(f"{target} exited during {name}:\n{bench.tail(log)}")
                    row.update({"case": case, "target": target, "load": load, "round": round_no})
                    rows.append(row)
                    lat = row["latency_ms"]
                    share = row["worse_share"]
                    print(
                        f"  {case:<6} {target:<12} {load:<5} r{round_no}: {row['rps']:>8,.0f} req/s"
                        f"  p50 {lat['p50']:.2f}  p99 {lat['p99']:.2f}  p99.9 {lat['p999']:.2f} ms"
                        f"  {WORSE} {share * 100 if share is not None else float('nan'):.1f}%  failed {row['failed']}"
                        + (f"  send lag p99 {row['send_lag_ms']['p99']:.1f} ms" if "send_lag_ms" in row else ""),
                        flush=True,
                    )
            finally:
                self.procs.stop(proc)
            if time.monotonic() - self.backends_started > MAX_BACKEND_LIFE_S:
                raise BenchError("backends lived longer than their 1m stats window; shorten the loads")
        finally:
            self.stop_backends()
        return rows

    def calibrate(self) -> int:
        """Half of capacity: NGINX's (or the first target's) req/s under wrk
        at PARTIAL_WRK_CONNECTIONS with three healthy backends, rounded down
        to 500. One figure for every proxy, so they all get the same load."""
        target = "nginx" if "nginx" in self.cfg["targets"] else self.cfg["targets"][0]
        self.start_backends()
        try:
            proc, port, _ = self.start_proxy(target, "healthy")
            try:
                self.wrk(port, 8, self.cfg["warmup_s"], "calibration warm-up")
                result, _ = self.wrk(port, self.cfg["wrk_connections"], CALIBRATION_S, f"calibration {target}")
            finally:
                self.procs.stop(proc)
        finally:
            self.stop_backends()
        capacity = result["requests"] / (result["duration_us"] / 1e6)
        rate = max(500, int(capacity / 2) // 500 * 500)
        print(f"calibration: {target} served {capacity:,.0f} req/s at -c{self.cfg['wrk_connections']}; open load {rate:,} req/s")
        self.capacity = {"target": target, "rps": round(capacity), "connections": self.cfg["wrk_connections"]}
        return rate

    def run(self) -> list[dict]:
        self.oha = oha.find()
        self.capacity = None
        if not self.cfg["open_rate"]:
            self.cfg["open_rate"] = self.calibrate()
        rows = []
        for round_no, order in bench.rotations(self.cfg["targets"], self.cfg["rounds"]):
            for case in self.cfg["cases"]:
                for target in order:
                    rows.extend(self.measure_proxy(case, target, round_no))
        return rows


def partial_main(procs: bench.Processes) -> int:
    cfg = partial_settings()
    for tool in ("wrk", "nginx", "haproxy"):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} not found: run `make deps`")
    try:
        oha.find()
    except oha.OhaError as e:
        raise BenchError(str(e)) from None
    for binary in ("backend", "gateway"):
        if not (cfg["bin_dir"] / binary).is_file():
            raise BenchError(f"{cfg['bin_dir'] / binary} missing: run `make release`")
    problem = partial_report.chart_support_problem()
    if problem:
        raise BenchError(problem)
    out: Path = cfg["out"]
    (out / "logs").mkdir(parents=True, exist_ok=True)
    per_proxy = cfg["warmup_s"] + cfg["light_s"] + cfg["open_s"] + cfg["wrk_s"] + 3
    total = per_proxy * len(cfg["targets"]) * len(cfg["cases"]) * cfg["rounds"]
    print(f"bench-partial: about {total / 60:.1f} min; cases {cfg['cases']}; targets {cfg['targets']}", flush=True)
    started = time.monotonic()
    info = bench.conditions(cfg)
    with tempfile.TemporaryDirectory(prefix="gateway-bench-partial-") as work:
        runner = Partial(cfg, procs, Path(work))
        rows = runner.run()
    info.update(
        {
            k: cfg[k]
            for k in (
                "smoke",
                "cases",
                "light_rate",
                "light_s",
                "open_rate",
                "open_s",
                "open_connections",
                "wrk_s",
                "wrk_connections",
            )
        }
    )
    info["capacity"] = runner.capacity
    info["oha"] = bench.command_output([str(runner.oha), "--version"]).strip()
    info["date"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    info["elapsed_s"] = round(time.monotonic() - started, 1)
    results = partial_report.summarize(info, rows)
    partial_report.write_all(results, out)
    print("\n" + (out / "partial.md").read_text())
    print(f"bench-partial: wrote {out / 'partial.json'}, {out / 'partial.md'} and {out / 'partial.png'}")
    return 0


def main() -> int:
    return bench.run_cli("bench-partial", partial_main)


if __name__ == "__main__":
    sys.exit(main())
