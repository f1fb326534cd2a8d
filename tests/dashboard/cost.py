"""What one open /dashboard costs the gateway: its CPU time (utime + stime from
/proc/<pid>/stat) over SECONDS under a fixed load, without and then with one
page open in headless Chromium, and the CPU time of the page's own calls
(GET /api/stats/1m?series=true and /api/servers) measured alone, N of each.

    python3 tests/dashboard/cost.py [SECONDS] [RATE]

Not part of `make test` (it takes about 2.5 minutes); run after `make release`.
"""

import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import support  # noqa: E402
from cdp import Browser  # noqa: E402
from test_dashboard import Load  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 60
    rate = float(sys.argv[2]) if len(sys.argv) > 2 else 100
    support.require_binaries()
    procs = support.Processes(support.ROOT / "target" / "dashboard" / "cost-logs")
    try:
        backends = [procs.backend(f"b{i}") for i in (1, 2, 3)]
        gw = procs.gateway()
        for i, b in enumerate(backends, 1):
            support.register(gw.port, f"server{i}", f"http://{support.HOST}:{b.port}")
        load = Load(gw.port, rate=rate, max_seconds=3 * seconds + 30).start()
        time.sleep(5)
        c0 = cpu_seconds(gw.pid)
        time.sleep(seconds)
        without = cpu_seconds(gw.pid) - c0
        with Browser() as browser:
            tab = browser.tab(f"http://{support.HOST}:{gw.port}/dashboard")
            tab.wait("document.getElementById('banner').getAttribute('data-state') === 'ok'", 15)
            n0, c0 = len(tab.requests), cpu_seconds(gw.pid)
            time.sleep(seconds)
            with_page = cpu_seconds(gw.pid) - c0
            calls = len(tab.requests) - n0
        sent = load.sent
        load.stop()
        n = 2000
        c0 = cpu_seconds(gw.pid)
        for _ in range(n):
            support.request(gw.port, "GET", "/api/stats/1m?series=true")
            support.request(gw.port, "GET", "/api/servers")
        per_poll_ms = (cpu_seconds(gw.pid) - c0) / n * 1000
        print(f"load: {rate:.0f} req/s ({sent} sent), {seconds:.0f} s each")
        print(f"gateway CPU without a page: {without:.2f} s; with one page open: {with_page:.2f} s "
              f"(difference {with_page - without:+.2f} s, {(with_page - without) / seconds * 100:+.2f} % of a core)")
        print(f"page calls in {seconds:.0f} s: {calls}; one poll (stats + servers) alone costs "
              f"{per_poll_ms:.3f} ms of gateway CPU (new connection each), so "
              f"{per_poll_ms * seconds / 2 / 1000:.3f} s per {seconds:.0f} s at one poll every 2 s")
    finally:
        procs.stop_all()


if __name__ == "__main__":
    main()
