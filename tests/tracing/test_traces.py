#!/usr/bin/env python3
"""Traces across the gateway and a backend, checked with a real OTLP/HTTP receiver.

Starts the release binaries as processes on loopback with the standard
OTEL_* variables pointing at a small OTLP/HTTP receiver in this process,
which decodes the protobuf export requests. Checks:
  - one request through the gateway yields a gateway server span, a client
    span and a backend server span in one trace, with correct parent links,
    each service under its own service.name;
  - a retried request shows one client span per attempt;
  - the access-log line carries the trace id;
  - logs quietened to warn or error still leave every span exported, and
    no access line written;
  - spans still buffered are flushed on SIGTERM;
  - with the collector down, requests still succeed promptly;
  - without an endpoint, nothing about tracing is logged.
Run: python3 tests/tracing/test_traces.py (after `cargo build --release`).
"""

import http.client
import os
import shutil
import sys
import tempfile
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for support

import support  # noqa: E402
from support.otlp import CLIENT, SERVER, STATUS_ERROR, Receiver  # noqa: E402


def get(port, path, headers=None):
    return support.request(port, "GET", path, headers=headers, timeout=10)


class TracingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        support.require_binaries()

    def setUp(self):
        logdir = tempfile.mkdtemp(prefix="tracing-")
        self.addCleanup(shutil.rmtree, logdir, ignore_errors=True)
        self.procs = support.Processes(logdir)
        self.addCleanup(self.procs.stop_all)
        self.receiver = Receiver()
        self.addCleanup(self.receiver.close)

    def start(self, binary, env):
        """The release `binary` with `env` (PORT among it), logging at info
        unless RUST_LOG says otherwise, ready once /readyz answers."""
        env = {"RUST_LOG": os.environ.get("RUST_LOG", "info"), **env}
        port = int(env["PORT"])
        return self.procs.start(binary, [support.BIN / binary], env, port=port, merge_output=True).wait_ready()

    def otel(self, **extra):
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{self.receiver.port}", "OTEL_BSP_SCHEDULE_DELAY": "100"}
        env.update(extra)
        return env

    def test_one_trace_spans_gateway_client_and_backend(self):
        backend = self.start("backend", {"PORT": str(support.free_port()), **self.otel()})
        gateway = self.start(
            "gateway",
            {"PORT": str(support.free_port()), "GATEWAY__SERVERS": f"b1=http://127.0.0.1:{backend.port}",
             **self.otel()},
        )
        status, headers, _ = get(gateway.port, "/api/data?x=1")
        self.assertEqual(status, 200)

        def complete(spans):
            gw_server = [p for s, p in spans if s == "gateway" and p.kind == SERVER and p.name == "GET /*"]
            clients = [p for s, p in spans if s == "gateway" and p.kind == CLIENT]
            be_server = [p for s, p in spans if s == "backend" and p.kind == SERVER and p.name == "GET /api/data"]
            return (gw_server[0], clients[0], be_server[0]) if gw_server and clients and be_server else None

        gw_server, client, be_server = self.receiver.wait_for(complete)
        self.assertEqual(gw_server.trace_id, client.trace_id)
        self.assertEqual(client.trace_id, be_server.trace_id)
        self.assertEqual(client.parent_span_id, gw_server.span_id, "client span is not a child of the gateway's server span")
        self.assertEqual(be_server.parent_span_id, client.span_id, "backend span does not continue the client span")
        self.assertEqual(gw_server.name, "GET /*")
        self.assertEqual(be_server.name, "GET /api/data")
        attrs = {a.key: a.value for a in client.attributes}
        self.assertEqual(attrs["http.response.status_code"].int_value, 200, str(attrs))
        self.assertEqual(attrs["upstream"].string_value, "b1")
        self.assertEqual(attrs["http.request.resend_count"].int_value, 0)

        trace_id = gw_server.trace_id.hex()
        support.poll(lambda: trace_id in gateway.output(), 5)
        access = [l for l in gateway.output().splitlines() if "request_id" in l and "trace_id" in l]
        self.assertTrue(any(trace_id in l for l in access), f"trace id {trace_id} not in access log:\n{gateway.output()}")

    def test_quiet_logs_do_not_turn_tracing_off(self):
        # One service quietened by RUST_LOG, the other by its log.level.
        backend = self.start("backend", {"PORT": str(support.free_port()), "RUST_LOG": "warn", **self.otel()})
        gateway = self.start(
            "gateway",
            {
                "PORT": str(support.free_port()),
                "GATEWAY__SERVERS": f"b1=http://127.0.0.1:{backend.port}",
                "RUST_LOG": "",
                "GATEWAY__LOG__LEVEL": "error",
                **self.otel(),
            },
        )
        self.assertEqual(get(gateway.port, "/api/data")[0], 200)

        def all_three(spans):
            kinds = {(s, p.kind) for s, p in spans}
            return {("gateway", SERVER), ("gateway", CLIENT), ("backend", SERVER)} <= kinds

        self.receiver.wait_for(all_three)
        # The spans left after the answer did, and the access line would
        # have been written before them: the log level still holds for it.
        self.assertNotIn("request_id", gateway.output())
        self.assertNotIn("INFO", gateway.output() + backend.output())

    def test_each_retry_is_its_own_client_span(self):
        backend = self.start("backend", {"PORT": str(support.free_port()), **self.otel()})
        dead = support.free_port()
        gateway = self.start(
            "gateway",
            {
                "PORT": str(support.free_port()),
                "GATEWAY__SERVERS": f"dead=http://127.0.0.1:{dead},live=http://127.0.0.1:{backend.port}",
                "GATEWAY__HEALTH_CHECK__ENABLED": "false",
                **self.otel(),
            },
        )
        status, _, _ = get(gateway.port, "/api/data")
        self.assertEqual(status, 200)

        def attempts(spans):
            clients = [p for s, p in spans if s == "gateway" and p.kind == CLIENT]
            by_trace = {}
            for c in clients:
                by_trace.setdefault(c.trace_id, []).append(c)
            full = [cs for cs in by_trace.values() if len(cs) >= 2]
            return full[0] if full else None

        clients = self.receiver.wait_for(attempts)
        self.assertEqual(len({c.parent_span_id for c in clients}), 1, "attempts should share the server span as parent")
        failed = [c for c in clients if c.status.code == STATUS_ERROR]
        self.assertEqual(len(failed), 1)

    def test_buffered_spans_are_flushed_on_shutdown(self):
        backend = self.start("backend", {"PORT": str(support.free_port())})
        gateway = self.start(
            "gateway",
            {
                "PORT": str(support.free_port()),
                "GATEWAY__SERVERS": f"b1=http://127.0.0.1:{backend.port}",
                **self.otel(OTEL_BSP_SCHEDULE_DELAY="60000", OTEL_SERVICE_NAME="edge"),
            },
        )
        self.assertEqual(get(gateway.port, "/api/data")[0], 200)
        # An absence cannot be polled for: five times the schedule delay the
        # other tests use, ample for an export that should not happen.
        time.sleep(0.5)
        self.assertFalse([p for s, p in self.receiver.spans if s == "edge"], "spans arrived before shutdown")
        gateway.stop()
        self.assertEqual(gateway.returncode, 0)
        self.receiver.wait_for(lambda spans: [p for s, p in spans if s == "edge" and p.kind == SERVER], timeout=3)

    def test_an_unreachable_collector_never_slows_or_fails_requests(self):
        backend = self.start("backend", {"PORT": str(support.free_port())})
        gateway = self.start(
            "gateway",
            {
                "PORT": str(support.free_port()),
                "GATEWAY__SERVERS": f"b1=http://127.0.0.1:{backend.port}",
                "GATEWAY__LOG__ACCESS_LOG": "false",
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{support.free_port()}",
                "OTEL_BSP_SCHEDULE_DELAY": "50",
            },
        )
        conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=5)
        slowest = 0.0
        for _ in range(300):
            started = time.time()
            conn.request("GET", "/api/data")
            response = conn.getresponse()
            response.read()
            self.assertEqual(response.status, 200)
            slowest = max(slowest, time.time() - started)
        conn.close()
        # Exports fail in the background; no request waits for them.
        self.assertLess(slowest, 1.0, f"slowest request took {slowest:.3f}s")
        print(f"\n  collector down: 300 requests, slowest {slowest * 1000:.1f} ms", file=sys.stderr)

    def test_no_endpoint_means_no_tracing_and_no_noise(self):
        backend = self.start("backend", {"PORT": str(support.free_port())})
        self.assertEqual(get(backend.port, "/api/data")[0], 200)
        backend.stop()
        out = backend.output().lower()
        for word in ("otlp", "opentelemetry", "trace", "exporter"):
            self.assertNotIn(word, out, f"{word!r} in a service's output without tracing configured:\n{out}")


if __name__ == "__main__":
    unittest.main(verbosity=2)
