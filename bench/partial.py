#!/usr/bin/env python3
"""Partial failure: one of three backends made worse, every proxy in one run.

`make bench-partial` builds the release binaries and runs this. It shares
bench.py's process handling (own process groups, everything stopped on
exit) and its NGINX and HAProxy templates, with the balancing changed:

- gateway-lo     the gateway, balancer.strategy=least_outstanding
- gateway-ewma   the gateway, balancer.strategy=peak_ewma
- nginx          NGINX, `least_conn`
- haproxy        HAProxy, `balance leastconn`

Cases (the fault is set on backend b3 through its own fault API, so it is
the same whatever proxy sits in front):

- slow   b3 answers 20 ms later (PUT /api/faults {"latency":"20ms"})
- errors b3 answers 5% of requests with 500
         ({"error_rate":0.05,"error_status":500}). Every proxy retries a 500
         on another backend here: the gateway with retry.on_statuses=500
         (GET is idempotent, so it is retried), NGINX with
         `proxy_next_upstream error timeout http_500`, HAProxy with
         `retry-on conn-failure empty-response response-timeout 500`
         (its `retries 3` and `option redispatch` are in the template).

Loads, one after the other against the same proxy process:

- light  open loop at PARTIAL_LIGHT_RATE req/s (20): spaced requests on
         one keep-alive connection that never overlap, so every backend has
         0 requests outstanding at each pick.
- open   open loop at PARTIAL_OPEN_RATE req/s (1000) from the asyncio
         generator below; latency is measured from each request's scheduled
         send time (corrected for coordinated omission). The generator is
         Python on a 2-core machine shared with the proxy and backends: it
         holds about 1,000-1,500 req/s here, far below the proxies'
         capacity, so this is a moderate load, not half of capacity. Its
         own send lag is reported (`send_lag_ms`); if its p99 is more than a
         few ms, the generator, not the proxy, was the bottleneck.
- wrk    wrk -t1 -cPARTIAL_WRK_CONNECTIONS (64), closed loop, as bench.py.

Before the loads, each proxy gets a 1 s wrk warm-up at 8 connections (so
peak_ewma and the peers start with some traffic seen). Backends are
started fresh for every proxy, so their /api/stats/1m counts cover their
whole life; the share of requests b3 got is its `requests` delta over the
sum of the three backends' deltas around each load (retries count as
requests on the backend they went to).

Rounds rotate the order of the proxies, as bench.py does. Reported figures
are medians over rounds. Writes target/bench/partial.json and partial.md.

Settings, from the environment (all bounded):
  PARTIAL_ROUNDS           rounds (2; 1-10)
  PARTIAL_CASES            slow,errors (subset)
  PARTIAL_TARGETS          gateway-lo,gateway-ewma,nginx,haproxy (subset)
  PARTIAL_LIGHT_RATE       req/s of the light load (20; 1-200)
  PARTIAL_LIGHT_SECONDS    seconds of the light load (5; 1-30)
  PARTIAL_OPEN_RATE        req/s of the open load (1000; 10-5000)
  PARTIAL_OPEN_SECONDS     seconds of the open load (5; 1-30)
  PARTIAL_WRK_SECONDS      seconds of the wrk load (4; 1-30)
  PARTIAL_WRK_CONNECTIONS  wrk connections (64; 1-1024)
  PARTIAL_SMOKE=1          one second per load, one round: checks the
                           plumbing, its figures mean nothing
  BENCH_WORKERS, BENCH_OUT, BENCH_BIN_DIR as for bench.py

Load goes to 127.0.0.1 only. Every process started here runs in its own
process group and is stopped on exit, including on errors and Ctrl-C.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
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
from bench import LOOPBACK, BenchError  # noqa: E402

ALL_TARGETS = ["gateway-lo", "gateway-ewma", "nginx", "haproxy"]
ALL_CASES = ["slow", "errors"]
LOADS = ["light", "open", "wrk"]
FAULTS = {
    "slow": {"latency": "20ms"},
    "errors": {"error_rate": 0.05, "error_status": 500},
}
TOKEN = "bench-partial"
WORSE = "b3"
# The backends' 1m stats window must cover the whole life of the backends.
MAX_BACKEND_LIFE_S = 55


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
            "light_s": 1 if smoke else bench.env_int("PARTIAL_LIGHT_SECONDS", 5, 1, 30),
            "open_rate": bench.env_int("PARTIAL_OPEN_RATE", 1000, 10, 5000),
            "open_s": 1 if smoke else bench.env_int("PARTIAL_OPEN_SECONDS", 5, 1, 30),
            "wrk_s": 1 if smoke else bench.env_int("PARTIAL_WRK_SECONDS", 4, 1, 30),
            "wrk_connections": bench.env_int("PARTIAL_WRK_CONNECTIONS", 64, 1, 1024),
            "warmup_s": 1,
        }
    )
    cfg["connections"] = [cfg["wrk_connections"]]
    if cfg["light_s"] + cfg["open_s"] + cfg["wrk_s"] + cfg["warmup_s"] + 10 > MAX_BACKEND_LIFE_S:
        raise BenchError(f"the loads together must stay under {MAX_BACKEND_LIFE_S - 10} s (backend stats window)")
    return cfg


# --------------------------------------------------------------------------
# Open-loop generator: requests sent on a fixed timeline, latency measured
# from the scheduled time, so a stalled answer counts for every request
# that should have been sent meanwhile (no coordinated omission).


def percentile(sorted_values: list[float], p: float) -> float | None:
    if not sorted_values:
        return None
    rank = max(0, min(len(sorted_values) - 1, int(round(p / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[rank]


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    chunked = False
    for line in lines[1:]:
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "content-length":
            length = int(value.strip())
        elif key == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status


async def _open_loop(port: int, rate: float, seconds: float, path: str, max_in_flight: int) -> dict:
    loop = asyncio.get_running_loop()
    request = f"GET {path} HTTP/1.1\r\nHost: {LOOPBACK}:{port}\r\n\r\n".encode()
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    latencies: list[float] = []
    lags: list[float] = []
    failed = {"status": 0, "socket": 0, "timeout": 0, "overload": 0}
    in_flight = 0
    total = int(rate * seconds)
    tasks = []

    async def one(scheduled: float) -> None:
        nonlocal in_flight
        in_flight += 1
        conn = None
        try:
            conn = idle.pop() if idle else await asyncio.open_connection(LOOPBACK, port)
            reader, writer = conn
            writer.write(request)
            status = await asyncio.wait_for(_read_response(reader), timeout=5.0)
            latencies.append((loop.time() - scheduled) * 1000.0)
            if status >= 400:
                failed["status"] += 1
            idle.append(conn)
        except asyncio.TimeoutError:
            failed["timeout"] += 1
            if conn:
                conn[1].close()
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            failed["socket"] += 1
            if conn:
                conn[1].close()
        finally:
            in_flight -= 1

    start = loop.time() + 0.05
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        lags.append(max(0.0, (loop.time() - scheduled) * 1000.0))
        if in_flight >= max_in_flight:
            failed["overload"] += 1
            continue
        tasks.append(loop.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    elapsed = loop.time() - start
    for _, writer in idle:
        writer.close()
    latencies.sort()
    lags.sort()
    return {
        "requests": len(latencies),
        "scheduled": total,
        "seconds": round(elapsed, 3),
        "rps": len(latencies) / elapsed if elapsed else 0.0,
        "latency_ms": {
            "p50": percentile(latencies, 50),
            "p99": percentile(latencies, 99),
            "p999": percentile(latencies, 99.9),
            "max": latencies[-1] if latencies else None,
        },
        "failed": sum(failed.values()),
        "failed_by_kind": failed,
        "send_lag_ms": {"p99": percentile(lags, 99), "max": lags[-1] if lags else None},
    }


def open_loop(port: int, rate: float, seconds: float, path: str = bench.PATH, max_in_flight: int = 1000) -> dict:
    return asyncio.run(_open_loop(port, rate, seconds, path, max_in_flight))


# --------------------------------------------------------------------------
# Backends and proxies


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
        rundir = self.work / target
        if rundir.exists():
            shutil.rmtree(rundir)
        rundir.mkdir(parents=True)
        rundir.chmod(0o755)
        log = self.logs / f"{target}.log"
        errors = case == "errors"
        if target == "nginx":
            servers = "        least_conn;\n" + "\n".join(f"        server {LOOPBACK}:{p};" for p in self.backend_ports)
            conf = bench.render(
                HERE / "nginx.conf.tmpl",
                {
                    "RUNDIR": str(rundir),
                    "WORKERS": str(self.cfg["workers"]),
                    "PORT": str(port),
                    "UPSTREAM_SERVERS": servers,
                    "UPSTREAM_KEEPALIVE": "1024",
                    "ACCESS_LOG": "access_log off;",
                },
            )
            if errors:
                anchor = "proxy_read_timeout 30s;"
                assert anchor in conf
                conf = conf.replace(anchor, anchor + "\n            proxy_next_upstream error timeout http_500;")
            (rundir / "nginx.conf").write_text(conf)
            proc = self.procs.start(["nginx", "-p", str(rundir), "-c", str(rundir / "nginx.conf")], log)
        elif target == "haproxy":
            servers = "\n".join(f"    server b{i + 1} {LOOPBACK}:{p}" for i, p in enumerate(self.backend_ports))
            conf = bench.render(
                HERE / "haproxy.cfg.tmpl",
                {"WORKERS": str(self.cfg["workers"]), "PORT": str(port), "SERVERS": servers, "GLOBAL_LOG": "", "DEFAULTS_LOG": ""},
            )
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
                "GATEWAY__BALANCER__STRATEGY": "least_outstanding" if target == "gateway-lo" else "peak_ewma",
            }
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
            result, _ = self.wrk(port, self.cfg["wrk_connections"], self.cfg["wrk_s"], name)
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
            row = open_loop(port, self.cfg["light_rate"], self.cfg["light_s"])
        else:
            row = open_loop(port, self.cfg["open_rate"], self.cfg["open_s"])
        after = self.counts()
        deltas = [a - b for a, b in zip(after, before)]
        row["backend_requests"] = {f"b{i + 1}": d for i, d in enumerate(deltas)}
        row["worse_share"] = deltas[-1] / sum(deltas) if sum(deltas) else None
        return row

    def measure_proxy(self, case: str, target: str, round_no: int) -> list[dict]:
        self.start_backends()
        rows = []
        try:
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

    def run(self) -> list[dict]:
        rows = []
        for round_no, order in bench.rotations(self.cfg["targets"], self.cfg["rounds"]):
            for case in self.cfg["cases"]:
                for target in order:
                    rows.extend(self.measure_proxy(case, target, round_no))
        return rows


# --------------------------------------------------------------------------
# Report


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(info: dict, rows: list[dict]) -> dict:
    summary = []
    for case in info["cases"]:
        for load in LOADS:
            for target in info["targets"]:
                mine = [r for r in rows if r["case"] == case and r["load"] == load and r["target"] == target]
                if not mine:
                    continue
                summary.append(
                    {
                        "case": case,
                        "load": load,
                        "target": target,
                        "rounds": len(mine),
                        "rps": median([r["rps"] for r in mine]),
                        "p50_ms": median([r["latency_ms"]["p50"] for r in mine]),
                        "p99_ms": median([r["latency_ms"]["p99"] for r in mine]),
                        "p999_ms": median([r["latency_ms"]["p999"] for r in mine]),
                        "worse_share": median([r["worse_share"] for r in mine]),
                        "failed": median([r["failed"] for r in mine]),
                        "requests": median([r["requests"] for r in mine]),
                        "send_lag_p99_ms": median([r.get("send_lag_ms", {}).get("p99") for r in mine]),
                    }
                )
    return {"conditions": info, "summary": summary, "runs": rows}


def fmt(v, spec=".2f"):
    return "-" if v is None else format(v, spec)


def markdown(results: dict) -> str:
    info = results["conditions"]
    out = [
        "# Partial failure: one backend of three made worse",
        "",
        f"{info['date']}, commit {info['commit']}, {info['cores']} cores ({info['cpu']}), {info['nginx']}, "
        f"{info['haproxy']}. {info['rounds']} round(s), medians over rounds; loads: light "
        f"{info['light_rate']} req/s for {info['light_s']} s, open {info['open_rate']} req/s for {info['open_s']} s "
        f"(latency from the scheduled send time), wrk -c{info['wrk_connections']} for {info['wrk_s']} s. "
        f"Worse backend: {WORSE}; share = its part of the requests the three backends counted "
        "(retries included). Failed = answers >= 400 and socket errors seen by the client."
        + (" SMOKE RUN: one second per load, the figures mean nothing." if info["smoke"] else ""),
        "",
    ]
    titles = {
        "slow": f"Case slow: {WORSE} +20 ms",
        "errors": f"Case errors: {WORSE} answers 5% with 500 (every proxy retries 500 on another backend)",
    }
    for case in info["cases"]:
        out += [f"## {titles[case]}", "", "| load | proxy | req/s | p50 ms | p99 ms | p99.9 ms | to b3 | failed |", "|---|---|---|---|---|---|---|---|"]
        for s in results["summary"]:
            if s["case"] != case:
                continue
            share = s["worse_share"]
            out.append(
                f"| {s['load']} | {s['target']} | {fmt(s['rps'], ',.0f')} | {fmt(s['p50_ms'])} | {fmt(s['p99_ms'])} | "
                f"{fmt(s['p999_ms'])} | {fmt(share * 100 if share is not None else None, '.1f')}% | {fmt(s['failed'], '.0f')} |"
            )
        out.append("")
    lags = [s["send_lag_p99_ms"] for s in results["summary"] if s["load"] == "open" and s["send_lag_p99_ms"] is not None]
    if lags:
        out.append(
            f"Open-loop generator send lag p99 (how late it sent; above a few ms it was the bottleneck): "
            f"worst {max(lags):.1f} ms."
        )
        out.append("")
    return "\n".join(out)


def partial_main(procs: bench.Processes) -> int:
    cfg = partial_settings()
    for tool in ("wrk", "nginx", "haproxy"):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} not found: run `make deps`")
    for binary in ("backend", "gateway"):
        if not (cfg["bin_dir"] / binary).is_file():
            raise BenchError(f"{cfg['bin_dir'] / binary} missing: run `make release`")
    out: Path = cfg["out"]
    (out / "logs").mkdir(parents=True, exist_ok=True)
    per_proxy = cfg["warmup_s"] + cfg["light_s"] + cfg["open_s"] + cfg["wrk_s"] + 2
    total = per_proxy * len(cfg["targets"]) * len(cfg["cases"]) * cfg["rounds"]
    print(f"bench-partial: about {total / 60:.1f} min; cases {cfg['cases']}; targets {cfg['targets']}", flush=True)
    started = time.monotonic()
    info = bench.conditions(cfg)
    info.update(
        {
            k: cfg[k]
            for k in ("smoke", "cases", "light_rate", "light_s", "open_rate", "open_s", "wrk_s", "wrk_connections")
        }
    )
    info["date"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    with tempfile.TemporaryDirectory(prefix="gateway-bench-partial-") as work:
        runner = Partial(cfg, procs, Path(work))
        rows = runner.run()
    info["elapsed_s"] = round(time.monotonic() - started, 1)
    results = summarize(info, rows)
    (out / "partial.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "partial.md").write_text(markdown(results))
    print("\n" + (out / "partial.md").read_text())
    print(f"bench-partial: wrote {out / 'partial.json'} and {out / 'partial.md'}")
    return 0


def main() -> int:
    return bench.run_cli("bench-partial", partial_main)


if __name__ == "__main__":
    sys.exit(main())
