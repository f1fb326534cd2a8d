"""Slow clients (slowloris) against the release gateway
with http.header_read_timeout = 2s.

300 connections each send the start of a request head and then one more byte
every 200 ms, never finishing it; whenever the gateway closes one, another
takes its place, so 300 are open for the whole attack. Meanwhile two normal
clients (one keep-alive, one new connection per request) must get every
answer, quickly. The first 300 slow connections must each be closed by the
gateway about header_read_timeout after they opened. Afterwards the gateway
holds no more file descriptors than before the attack (nothing leaked), is
alive and printed no "panicked".
"""

import http.client
import os
import selectors
import socket
import statistics
import threading
import time
import unittest

import harness as h

SLOW = 300
TICK = 0.2
HEADER_TIMEOUT = 2.0
ATTACK = 6.0


class Slowloris(threading.Thread):
    def __init__(self, port, count, duration):
        super().__init__(daemon=True)
        self.port, self.count, self.duration = port, count, duration
        self.first_gen = {}  # socket -> open time; closed ones move to lifetimes
        self.lifetimes = []  # first generation: seconds from open to close by the gateway
        self.answers = 0  # bytes the gateway sent to slow connections before closing them
        self.opened = 0
        self.peak = 0
        self.connect_errors = 0
        self.stop = threading.Event()

    def _open(self, sel, first):
        try:
            s = socket.create_connection((h.HOST, self.port), timeout=2)
        except OSError:
            self.connect_errors += 1
            return
        s.setblocking(False)
        try:
            s.send(b"GET /api/data HTTP/1.1\r\nHost: slow\r\nX-Slow: ")
        except OSError:
            s.close()
            return
        self.opened += 1
        sel.register(s, selectors.EVENT_READ, (time.monotonic(), first))

    def run(self):
        sel = selectors.DefaultSelector()
        for _ in range(self.count):
            self._open(sel, True)
        end = time.monotonic() + self.duration
        next_tick = time.monotonic() + TICK
        while time.monotonic() < end and not self.stop.is_set():
            timeout = max(0.0, next_tick - time.monotonic())
            for key, _ in sel.select(timeout):
                s = key.fileobj
                opened, first = key.data
                closed = False
                try:
                    data = s.recv(4096)
                    if data:
                        self.answers += len(data)
                    else:
                        closed = True
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    closed = True
                if closed:
                    if first:
                        self.lifetimes.append(time.monotonic() - opened)
                    sel.unregister(s)
                    s.close()
                    self._open(sel, False)  # keep the pressure on
            self.peak = max(self.peak, len(sel.get_map()))
            if time.monotonic() >= next_tick:
                next_tick += TICK
                for key in list(sel.get_map().values()):
                    try:
                        key.fileobj.send(b"a")
                    except (BlockingIOError, InterruptedError):
                        pass
                    except OSError:
                        pass  # noticed as closed on the next select
        for key in list(sel.get_map().values()):
            key.fileobj.close()
        sel.close()


def normal_client(port, keep_alive, stop, out):
    conn = None
    while not stop.is_set():
        start = time.monotonic()
        status = error = None
        try:
            if conn is None:
                conn = http.client.HTTPConnection(h.HOST, port, timeout=5)
            conn.request("GET", "/api/data")
            r = conn.getresponse()
            r.read()
            status = r.status
        except (OSError, http.client.HTTPException) as e:
            error = type(e).__name__
            conn.close()
            conn = None
        if not keep_alive and conn is not None:
            conn.close()
            conn = None
        out.append(h.Result(start, time.monotonic(), status, error, None, keep_alive))
        stop.wait(0.01)
    if conn is not None:
        conn.close()


def run_normal(port, seconds):
    stop, out = threading.Event(), []
    threads = [threading.Thread(target=normal_client, args=(port, ka, stop, out), daemon=True) for ka in (True, False)]
    for t in threads:
        t.start()
    time.sleep(seconds)  # how long the normal clients run
    stop.set()
    for t in threads:
        t.join(10)
    return out


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def open_client_connections(port):
    """Connections accepted on `port` whose socket the server still holds
    (ESTABLISHED or CLOSE_WAIT in /proc/net/tcp); once it has closed one,
    what is left (FIN_WAIT, TIME_WAIT, LAST_ACK) holds no descriptor."""
    count = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] in ("01", "08"):
                count += 1
    return count


class SlowClients(h.ProcessTest):
    def setUp(self):
        self.fd_limit = h.raise_fd_limit()
        super().setUp()

    def test_6_slow_header_clients_do_not_block_normal_requests(self):
        self.assertGreaterEqual(self.fd_limit, SLOW * 2 + 100, "open-files limit too low for this test")
        backends = [self.backend(f"b{i}") for i in (1, 2)]
        gw = self.gateway(settings={"http.header_read_timeout": f"{HEADER_TIMEOUT}s"})
        for i, b in enumerate(backends, 1):
            h.register(gw.port, f"server{i}", f"http://{h.HOST}:{b.port}")

        baseline = run_normal(gw.port, 1.0)
        # Counted once the gateway has closed the baseline's connections.
        h.poll(lambda: open_client_connections(gw.port) == 0, 2.0)
        fds_before = fd_count(gw.pid)

        attack = Slowloris(gw.port, SLOW, ATTACK)
        attack.start()
        h.poll(lambda: attack.peak >= SLOW, 5.0)  # all 300 open and trickling
        during = run_normal(gw.port, ATTACK - 1.0)
        attack.join(ATTACK + 5)
        h.poll(lambda: open_client_connections(gw.port) == 0, 3.0)
        fds_after = fd_count(gw.pid)
        after = run_normal(gw.port, 0.5)

        base, lat = h.latency_stats(baseline), h.latency_stats(during)
        lifetimes = sorted(attack.lifetimes)
        h.summary(
            "6 slow clients",
            f"{attack.opened} slow connections opened ({attack.peak} open at once, {attack.connect_errors} "
            f"connect errors, open-files limit {self.fd_limit}); during the attack {len(during)} normal "
            f"requests, {sum(r.ok for r in during)} ok, latency p50 {h.ms(lat['p50'])} p99 {h.ms(lat['p99'])} "
            f"max {h.ms(lat['max'])} (before: p50 {h.ms(base['p50'])} p99 {h.ms(base['p99'])}); "
            f"{len(lifetimes)}/{SLOW} of the first slow connections closed by the gateway after "
            f"{h.ms(lifetimes[0]) if lifetimes else '-'} / {h.ms(statistics.median(lifetimes)) if lifetimes else '-'}"
            f" / {h.ms(lifetimes[-1]) if lifetimes else '-'} (min/median/max; header_read_timeout "
            f"{HEADER_TIMEOUT:.0f} s), {attack.answers} bytes sent to them; gateway fds {fds_before} before, "
            f"{fds_after} after",
        )
        self.assertEqual(attack.connect_errors, 0)
        self.assertGreaterEqual(attack.peak, SLOW, "the attack never had all its connections open")
        bad = [r for r in during + after if not r.ok]
        self.assertFalse(bad, f"{len(bad)} normal requests failed: {[r.status or r.error for r in bad][:10]}")
        self.assertGreater(len(during), 50)
        self.assertLess(lat["max"], 1.0, "a normal request waited behind the slow clients")
        self.assertEqual(len(lifetimes), SLOW, "some slow connections were never closed by the gateway")
        self.assertGreaterEqual(lifetimes[0], HEADER_TIMEOUT - 0.15, "closed before header_read_timeout")
        self.assertLess(lifetimes[-1], HEADER_TIMEOUT + 1.0, "held open well past header_read_timeout")
        self.assertLessEqual(fds_after, fds_before + 10, "the gateway kept descriptors of closed connections")
        self.assertTrue(gw.alive())
        self.assertNotIn("panicked", gw.output())


if __name__ == "__main__":
    unittest.main()
