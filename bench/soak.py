#!/usr/bin/env python3
"""Does the gateway's memory stay flat under a long run? (`make bench-soak`)

Starts three backends and one gateway (stats, metrics and access log on,
as in `make bench`; the access log goes to /dev/null so ten million lines
do not fill the disk), then drives it with wrk at SOAK_CONNECTIONS in
segments of SOAK_SEGMENT seconds until SOAK_REQUESTS requests have been
served or SOAK_MAX_MINUTES have passed. After every segment it samples the
gateway's resident memory (VmRSS, all its processes) and its peak (VmHWM).

The verdict compares the last sample with the first one taken after the
first 10% of the requests (allocator pools and connection buffers are warm
by then): growth within 5% is "flat". Writes target/bench/soak.json and
soak.md.

Settings, from the environment (all bounded):
  SOAK_REQUESTS      requests to serve (10000000; 100000-100000000)
  SOAK_CONNECTIONS   wrk connections (256; 1-1024)
  SOAK_SEGMENT       seconds per wrk run between samples (10; 2-60)
  SOAK_MAX_MINUTES   stop after this long even if short of the count (15; 1-120)
  BENCH_OUT, BENCH_BIN_DIR as for bench.py

Load goes to 127.0.0.1 only; every process started here is stopped on exit.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench  # noqa: E402  (bench/bench.py: processes, wrk, /proc helpers)


def soak_settings() -> dict:
    cfg = bench.settings()
    cfg.update(
        {
            "requests": bench.env_int("SOAK_REQUESTS", 10_000_000, 100_000, 100_000_000),
            "soak_connections": bench.env_int("SOAK_CONNECTIONS", 256, 1, 1024),
            "segment_s": bench.env_int("SOAK_SEGMENT", 10, 2, 60),
            "max_minutes": bench.env_int("SOAK_MAX_MINUTES", 15, 1, 120),
        }
    )
    return cfg


def upstream_connections(ports: list[int]) -> int:
    """Established TCP connections to the backends (only the gateway opens
    them), from /proc/net/tcp: the gateway's upstream pools, which are most
    of its memory at high connection counts."""
    wanted = {f"{p:04X}" for p in ports}
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # fields[2] is the remote address:port, fields[3] the state (01 = established).
            if len(fields) > 3 and fields[3] == "01" and fields[2].rsplit(":", 1)[-1] in wanted:
                count += 1
    return count


def run(cfg: dict, procs: bench.Processes, work: Path) -> dict:
    runner = bench.Bench(cfg, procs, work)
    runner.start_backends()
    port = bench.free_port()
    servers = ",".join(f"b{i + 1}=http://{bench.LOOPBACK}:{p}" for i, p in enumerate(runner.backend_ports))
    gateway = procs.start(
        [str(cfg["bin_dir"] / "gateway")],
        Path("/dev/null"),
        env={
            "GATEWAY__LISTEN__HOST": bench.LOOPBACK,
            "GATEWAY__LISTEN__PORT": str(port),
            "PORT": str(port),
            "GATEWAY__SERVERS": servers,
            "GATEWAY__LOG__ACCESS_LOG": "true",
            "GATEWAY__LOG__LEVEL": "info",
        },
    )
    bench.wait_ready(f"http://{bench.LOOPBACK}:{port}{cfg['path']}", gateway, Path("/dev/null"))
    samples = [{"requests": 0, "elapsed_s": 0.0, "rss_kib": bench.status_kib(gateway.pid, "VmRSS")}]
    served, errors = 0, 0
    started = time.monotonic()
    deadline = started + cfg["max_minutes"] * 60
    conns = cfg["soak_connections"]
    while served < cfg["requests"] and time.monotonic() < deadline:
        figures, _ = runner.wrk(port, conns, cfg["segment_s"], f"soak c{conns} after {served:,}")
        if gateway.poll() is not None:
            raise bench.BenchError("the gateway exited during the soak")
        served += figures["requests"]
        errors += sum(figures["errors"].values())
        sample = {
            "requests": served,
            "elapsed_s": round(time.monotonic() - started, 1),
            "rps": round(figures["requests"] / (figures["duration_us"] / 1e6)),
            "rss_kib": bench.status_kib(gateway.pid, "VmRSS"),
            "peak_rss_kib": bench.peak_rss_kib(gateway.pid),
            "upstream_connections": upstream_connections(runner.backend_ports),
        }
        samples.append(sample)
        print(
            f"  {served:>12,} requests  {sample['rps']:>7,} req/s  "
            f"RSS {sample['rss_kib'] / 1024:6.1f} MiB  peak {sample['peak_rss_kib'] / 1024:6.1f} MiB  "
            f"upstream connections {sample['upstream_connections']}",
            flush=True,
        )
    warm = next(s for s in samples[1:] if s["requests"] >= cfg["requests"] // 10)
    last = samples[-1]
    growth = (last["rss_kib"] - warm["rss_kib"]) / warm["rss_kib"] * 100
    return {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "connections": conns,
        "requests": served,
        "errors": errors,
        "target_requests": cfg["requests"],
        "warm_sample": warm,
        "last_sample": last,
        "growth_percent": round(growth, 2),
        "flat": abs(growth) <= 5.0 and served >= cfg["requests"],
        "samples": samples,
    }


def markdown(result: dict) -> str:
    warm, last = result["warm_sample"], result["last_sample"]
    if result["requests"] < result["target_requests"]:
        verdict = f"fell short of {result['target_requests']:,} requests (time limit)"
    elif result["flat"]:
        verdict = "flat (within 5%)"
    else:
        verdict = "NOT flat (more than 5% apart)"
    lines = [
        f"# Gateway memory over {result['requests']:,} requests ({result['connections']} connections)",
        "",
        f"RSS after {warm['requests']:,} requests: {warm['rss_kib'] / 1024:.1f} MiB; "
        f"after {last['requests']:,}: {last['rss_kib'] / 1024:.1f} MiB "
        f"({result['growth_percent']:+.1f}%): **{verdict}**. Peak RSS {last['peak_rss_kib'] / 1024:.1f} MiB; "
        f"errors {result['errors']:,}.",
        "",
        "Upstream connections: established connections from the gateway to the backends when the "
        "sample was taken (its per-worker keep-alive pools).",
        "",
        "| requests | elapsed s | req/s | RSS MiB | peak RSS MiB | upstream connections |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for s in result["samples"][1:]:
        lines.append(
            f"| {s['requests']:,} | {s['elapsed_s']} | {s['rps']:,} | {s['rss_kib'] / 1024:.1f} | "
            f"{s['peak_rss_kib'] / 1024:.1f} | {s.get('upstream_connections', '–')} |"
        )
    return "\n".join(lines) + "\n"


def soak_main(procs: bench.Processes) -> int:
    cfg = soak_settings()
    if not bench.shutil.which("wrk"):
        raise bench.BenchError("wrk not found: run `make deps`")
    out: Path = cfg["out"]
    (out / "logs").mkdir(parents=True, exist_ok=True)
    print(
        f"soak: up to {cfg['requests']:,} requests at {cfg['soak_connections']} connections "
        f"(at most {cfg['max_minutes']} min)",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="gateway-soak-") as work:
        result = run(cfg, procs, Path(work))
    (out / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "soak.md").write_text(markdown(result))
    print("\n" + markdown(result))
    print(f"soak: wrote {out / 'soak.json'} and {out / 'soak.md'}")
    return 0


def main() -> int:
    return bench.run_cli("soak", soak_main)

if __name__ == "__main__":
    sys.exit(main())
