"""A small open-loop HTTP/1.1 generator for light loads.

Requests go out on a fixed timeline whatever the answers do, and each
latency is measured from the request's scheduled send time, so a stalled
answer counts for every request that should have been sent meanwhile (no
coordinated omission). It is Python, so it holds a few thousand req/s at
most on a small machine: bench-partial uses it for the light load, where
the point is spaced requests on one keep-alive connection that never
overlap, and uses oha for loads near the proxies' capacity.

`paths` are cycled in order, one per request, so a load can carry many
users' keys (`/api/data?user=N`) for the hash strategy.
"""

from __future__ import annotations

import asyncio

LOOPBACK = "127.0.0.1"
ANSWER_TIMEOUT_S = 5.0


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of already sorted values (None when empty)."""
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


async def _open_loop(port: int, rate: float, seconds: float, paths: list[str], max_in_flight: int) -> dict:
    loop = asyncio.get_running_loop()
    requests = [f"GET {p} HTTP/1.1\r\nHost: {LOOPBACK}:{port}\r\n\r\n".encode() for p in paths]
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    latencies: list[float] = []
    lags: list[float] = []
    failed = {"status": 0, "socket": 0, "timeout": 0, "overload": 0}
    in_flight = 0
    total = int(rate * seconds)
    tasks = []

    async def one(scheduled: float, request: bytes) -> None:
        nonlocal in_flight
        in_flight += 1
        conn = None
        try:
            conn = idle.pop() if idle else await asyncio.open_connection(LOOPBACK, port)
            reader, writer = conn
            writer.write(request)
            status = await asyncio.wait_for(_read_response(reader), timeout=ANSWER_TIMEOUT_S)
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
        tasks.append(loop.create_task(one(scheduled, requests[i % len(requests)])))
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


def open_loop(port: int, rate: float, seconds: float, paths: list[str], max_in_flight: int = 1000) -> dict:
    """Sends `rate` req/s for `seconds` to 127.0.0.1:`port`; returns counts,
    req/s, latency percentiles (ms, from the scheduled time), failures by
    kind and the generator's own send lag."""
    if not paths:
        raise ValueError("open_loop needs at least one path")
    return asyncio.run(_open_loop(port, rate, seconds, paths, max_in_flight))
