"""SIGTERM to the gateway under load.

A steady keep-alive GET load (300/s) plus a few slow requests (2 s upstream
delay) that are in flight when the signal comes. With shutdown.delay = 1 s and
shutdown.drain_timeout = 5 s:

- /readyz answers 503 right after the signal and for the whole delay, while
  every proxied request is still served;
- no request sent before the listener closed fails: neither those sent
  before the signal (the slow ones finish during the drain) nor those sent
  during the delay. After the close, requests may only be refused, or find
  their idle keep-alive connection closed before any response byte (at most
  once per client connection); never a 5xx, a reset mid-response or a
  truncated body;
- the backends served exactly as many /api/data requests as the clients got
  answers: nothing the gateway forwarded was lost on the way back;
- the process exits with status 0 within delay + drain_timeout (+1 s).
"""

import collections
import http.client
import signal
import threading
import time
import unittest

import harness as h

DELAY = 1.0
DRAIN = 5.0
SLOW_MS = 2000
SLOW_COUNT = 4
NOT_ACCEPTED = {"refused", "closed_before_response", "reset_new_connection"}


class Slow(threading.Thread):
    """One slow GET on its own connection, sent at `at` (monotonic)."""

    def __init__(self, port, at):
        super().__init__(daemon=True)
        self.port, self.at = port, at
        self.result = None

    def run(self):
        time.sleep(max(0.0, self.at - time.monotonic()))  # sent at its time in the scenario
        start = time.monotonic()
        status = error = None
        conn = http.client.HTTPConnection(h.HOST, self.port, timeout=15)
        try:
            conn.request("GET", f"/api/data?delay_ms={SLOW_MS}")
            r = conn.getresponse()
            r.read()
            status = r.status
        except (OSError, http.client.HTTPException) as e:
            error = f"error:{type(e).__name__}"
        finally:
            conn.close()
        self.result = h.Result(start, time.monotonic(), status, error, None, False)


class ReadyPoller(threading.Thread):
    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.samples = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                status, _, _ = h.request(self.port, "GET", "/readyz", timeout=1)
            except ConnectionRefusedError:
                status = "refused"
            except (OSError, http.client.HTTPException) as e:
                status = type(e).__name__
            self.samples.append((time.monotonic(), status))
            self.stop.wait(0.05)


class GatewayShutdown(h.ProcessTest):
    def test_3_sigterm_gateway_under_load(self):
        backends = [self.backend(f"b{i}") for i in (1, 2, 3)]
        gw = self.gateway(
            settings={"shutdown.delay": f"{DELAY}s", "shutdown.drain_timeout": f"{DRAIN}s"},
        )
        for i, b in enumerate(backends, 1):
            h.register(gw.port, f"server{i}", f"http://{h.HOST}:{b.port}")

        load = h.Load(gw.port, rate=300, threads=6, max_seconds=20).start()
        time.sleep(2.0)  # the scenario: 2 s of steady load before the signal
        t_signal = time.monotonic() + 0.3
        slow = [Slow(gw.port, t_signal - 0.3) for _ in range(SLOW_COUNT)]
        for s in slow:
            s.start()
        ready = ReadyPoller(gw.port)
        # The scenario's timeline: /readyz watched from 0.2 s before the signal.
        time.sleep(max(0.0, t_signal - 0.2 - time.monotonic()))
        ready.start()
        time.sleep(max(0.0, t_signal - time.monotonic()))
        t_signal = time.monotonic()
        gw.signal(signal.SIGTERM)

        limit = DELAY + DRAIN + 1.0
        h.poll(lambda: not gw.alive(), t_signal + limit + 5 - time.monotonic(), interval=0.01)
        t_exit = time.monotonic()
        self.assertFalse(gw.alive(), f"the gateway did not exit {limit + 5:.0f} s after SIGTERM")
        exit_code = gw.popen.returncode
        time.sleep(0.3)  # a few refused requests after the exit, as a client would see them
        results = load.stop()
        ready.stop.set()
        ready.join(5)
        for s in slow:
            s.join(15)
        slow_results = [s.result for s in slow]

        t_close = t_signal + DELAY  # when the listener closes
        before_signal = [r for r in results if r.start < t_signal]
        during_delay = [r for r in results if t_signal <= r.start < t_close - 0.05]
        after_close = [r for r in results if r.start >= t_close - 0.05]
        kinds = collections.Counter(r.status if r.error is None else r.error for r in after_close)
        not_ready = [t for t, s in ready.samples if s == 503]
        first_503 = min((t for t in not_ready if t >= t_signal), default=None)
        first_refused = min((t for t, s in ready.samples if s == "refused"), default=None)
        ok_total = sum(r.ok for r in results) + sum(r.ok for r in slow_results if r)

        # What the backends served must match what the clients received (a
        # backend records a request a moment after answering it).
        def backends_served():
            return sum(h.get_json(b.port, "/api/stats/1m")["requests"] for b in backends)

        h.poll(lambda: backends_served() == ok_total, 2.0, interval=0.1)
        served = backends_served()

        h.summary(
            "3 SIGTERM",
            f"{len(before_signal)} requests before the signal and {len(during_delay)} during the "
            f"{DELAY:.0f} s delay, all 2xx: {all(r.ok for r in before_signal + during_delay)}; "
            f"{SLOW_COUNT} slow ({SLOW_MS} ms) in flight at the signal: "
            f"{[r.status or r.error for r in slow_results]}; after the close: {dict(kinds)}; "
            f"/readyz 503 {h.ms(first_503 - t_signal) if first_503 else 'never'} after SIGTERM, "
            f"refused {h.ms(first_refused - t_signal) if first_refused else 'never'} after; "
            f"exit {exit_code} {h.ms(t_exit - t_signal)} after SIGTERM (limit {limit:.0f} s); "
            f"backends served {served}, clients got {ok_total} answers",
        )
        for r in slow_results:
            self.assertIsNotNone(r)
            self.assertTrue(r.ok, f"slow request accepted before the signal failed: {r.status} {r.error}")
        bad = [r for r in before_signal + during_delay if not r.ok]
        self.assertFalse(
            bad, f"failed before the listener closed: {collections.Counter(r.status or r.error for r in bad)}"
        )
        self.assertGreater(len(before_signal), 300)
        self.assertGreater(len(during_delay), 100, "the load did not go on during the shutdown delay")
        odd = {k: v for k, v in kinds.items() if not (k in NOT_ACCEPTED or (isinstance(k, int) and 200 <= k < 300))}
        self.assertEqual(odd, {}, "after the close, only refusals and idle-connection closes are acceptable")
        self.assertLessEqual(
            kinds["closed_before_response"], load.threads, "more than one idle close per client connection"
        )
        self.assertEqual(served, ok_total, "backends served requests whose answers never reached a client")
        self.assertIsNotNone(first_503, "/readyz never answered 503 after SIGTERM")
        self.assertLess(first_503 - t_signal, 0.3)
        self.assertTrue(
            all(s == 503 for t, s in ready.samples if t_signal + 0.3 <= t < t_close - 0.05),
            "/readyz must stay 503 for the whole delay",
        )
        self.assertIsNotNone(first_refused)
        self.assertGreaterEqual(first_refused - t_signal, DELAY - 0.05, "the listener closed before shutdown.delay")
        self.assertEqual(exit_code, 0)
        self.assertLess(t_exit - t_signal, limit)
        self.assertIn("drain=Complete", gw.output())
        self.assertNotIn("panicked", gw.output())


if __name__ == "__main__":
    unittest.main()
