"""A backend dies (SIGKILL) or hangs (SIGSTOP)
under a steady keep-alive GET load through the release gateway.

1. SIGKILL one of three backends during ~11 s of 300 requests/s: no client
   request fails, the dead backend leaves `up` in GET /api/servers within
   1 s, and once restarted on the same port it is `up` again within two
   health-check intervals and receives traffic.
2. SIGSTOP one of three backends: every request still succeeds, none takes
   longer than one per-try timeout plus a margin for the retry, the hung
   backend is `ejected` (or `down`); after SIGCONT it comes back.
"""

import collections
import signal
import time
import unittest

import harness as h

RATE = 300
THREADS = 6


def describe(results):
    statuses = collections.Counter(r.status if r.error is None else r.error for r in results)
    return ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items(), key=lambda kv: str(kv[0])))


def failures(results):
    return [r for r in results if not r.ok]


class BackendFailures(h.ProcessTest):
    def stack(self, settings):
        backends = [self.backend(f"b{i}") for i in (1, 2, 3)]
        gw = self.gateway(settings=settings)
        for i, b in enumerate(backends, 1):
            h.register(gw.port, f"server{i}", f"http://{h.HOST}:{b.port}")
        return gw, backends

    def assert_no_panic(self, *procs):
        for p in procs:
            self.assertNotIn("panicked", p.output(), f"{p.name} panicked:\n{p.tail()}")

    def test_1_sigkill_backend_under_load(self):
        interval = 1.0
        gw, backends = self.stack({"health_check.interval": "1s", "health_check.timeout": "500ms"})
        victim = backends[1]
        poller = h.StatePoller(gw.port).start()
        load = h.Load(gw.port, rate=RATE, threads=THREADS, max_seconds=20).start()
        time.sleep(3)  # the scenario: 3 s of steady load before the kill

        t_kill = time.monotonic()
        victim.signal(signal.SIGKILL)
        victim.wait(5)
        t_not_up = h.poll(lambda: poller.first("server2", lambda s: s != "up", t_kill), t_kill + 3 - time.monotonic())
        self.assertIsNotNone(t_not_up, f"server2 still up 3 s after SIGKILL: {poller.samples[-1:]}")
        detect = t_not_up - t_kill
        state_after_kill = next(s["server2"] for t, s in poller.samples if t == t_not_up)
        detail = next(s for s in h.servers(gw.port) if s["name"] == "server2")["last_state_change"]

        # Restart it on the same port once it has been dead for 3 s (the scenario).
        time.sleep(max(0.0, t_kill + 3 - time.monotonic()))
        t_spawn = time.monotonic()
        restarted = self.backend("b2", port=victim.port)
        t_ready = time.monotonic()  # its own /healthz answers from here on
        t_up = h.poll(lambda: poller.first("server2", lambda s: s == "up", t_ready), 4 * interval)
        # Keep the load going a little longer so the restarted backend gets
        # traffic: the scenario is about 11 s of load.
        time.sleep(max(0.0, load.t0 + 11 - time.monotonic()))
        results = load.stop()
        poller.stop()

        self.assertIsNotNone(t_up, f"server2 not up {4 * interval}s after its restart: {h.states(gw.port)}")
        back = t_up - t_ready
        served_after = sum(1 for r in results if r.start > t_up and r.served_by == "b2")
        before_kill = [r for r in results if r.start < t_kill]
        lat = h.latency_stats(results)
        duration = max(r.end for r in results) - load.t0
        h.summary(
            "1 SIGKILL",
            f"{len(results)} requests in {duration:.1f} s ({len(results) / duration:.0f}/s; "
            f"{len(before_kill)} before the kill), {describe(results)}; "
            f"server2 {state_after_kill!r} {h.ms(detect)} after SIGKILL ({detail['reason']}); "
            f"back up {h.ms(back)} after its restart was ready ({h.ms(t_up - t_spawn)} after spawn), "
            f"then served {served_after} requests; latency p50 {h.ms(lat['p50'])} p99 {h.ms(lat['p99'])} "
            f"max {h.ms(lat['max'])}",
        )
        bad = failures(results)
        self.assertFalse(bad, f"{len(bad)} failed client requests: {describe(bad)}")
        self.assertGreaterEqual(len(results), RATE * 9, "the load did not reach its rate")
        self.assertLess(detect, 1.0, "the dead backend must leave 'up' within 1 s")
        self.assertLessEqual(back, 2 * interval, "back up within two health-check intervals")
        self.assertGreater(served_after, 0, "the restarted backend got no traffic")
        self.assertTrue(gw.alive())
        self.assert_no_panic(gw, restarted)

    def test_2_sigstop_backend_under_load(self):
        per_try = 0.5
        # The retry goes to a healthy backend, which answers in a few ms; the
        # rest of the margin is this Python client's own scheduling on 2 cores.
        margin = 0.35
        gw, backends = self.stack(
            {
                "retry.per_try_timeout": "500ms",
                "health_check.interval": "1s",
                "health_check.timeout": "300ms",
            }
        )
        victim = backends[1]
        poller = h.StatePoller(gw.port).start()
        load = h.Load(gw.port, rate=RATE, threads=THREADS, max_seconds=20, timeout=5).start()
        time.sleep(2)  # the scenario: 2 s of steady load before the hang

        t_stop = time.monotonic()
        victim.signal(signal.SIGSTOP)
        out = lambda s: s in ("ejected", "down")  # noqa: E731
        t_out = h.poll(lambda: poller.first("server2", out, t_stop), t_stop + 4 - time.monotonic())
        # The scenario: the backend stays hung for 3 s under the load.
        time.sleep(max(0.0, t_stop + 3 - time.monotonic()))
        view = next(s for s in h.servers(gw.port) if s["name"] == "server2")

        t_cont = time.monotonic()
        victim.signal(signal.SIGCONT)
        t_up = h.poll(lambda: poller.first("server2", lambda s: s == "up", t_cont), 4)
        results = load.stop()
        poller.stop()

        lat = h.latency_stats(results)
        slow = [r for r in results if r.latency >= per_try]
        first_out = next((s["server2"] for t, s in poller.samples if t == t_out), None)
        h.summary(
            "2 SIGSTOP",
            f"{len(results)} requests, {describe(results)}; {len(slow)} waited out the "
            f"{h.ms(per_try)} per-try timeout and were retried; latency p50 {h.ms(lat['p50'])} "
            f"p99 {h.ms(lat['p99'])} max {h.ms(lat['max'])} (limit {h.ms(per_try + margin)}); "
            f"server2 {first_out!r} {h.ms(t_out - t_stop) if t_out else 'never'} after SIGSTOP "
            f"({view['last_state_change']['reason']}); up again "
            f"{h.ms(t_up - t_cont) if t_up else 'never'} after SIGCONT",
        )
        bad = failures(results)
        self.assertFalse(bad, f"{len(bad)} failed client requests: {describe(bad)}")
        self.assertIsNotNone(t_out, "the hung backend was neither ejected nor marked down")
        self.assertIn(view["state"], ("ejected", "down"))
        self.assertGreater(len(slow), 0, "no request ever waited for the hung backend: the scenario did not happen")
        self.assertLess(lat["max"], per_try + margin, "a request took longer than one per-try timeout plus a retry")
        self.assertIsNotNone(t_up, "not up again after SIGCONT")
        self.assertTrue(gw.alive())
        self.assert_no_panic(gw, *backends)


if __name__ == "__main__":
    unittest.main()
