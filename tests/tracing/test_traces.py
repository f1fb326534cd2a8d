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
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.join(ROOT, "target", "release")
SERVER, CLIENT = trace_pb2.Span.SPAN_KIND_SERVER, trace_pb2.Span.SPAN_KIND_CLIENT


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """An OTLP/HTTP trace endpoint collecting (service name, span) pairs."""

    def __init__(self):
        self.spans = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                request = trace_service_pb2.ExportTraceServiceRequest()
                request.ParseFromString(body)
                with receiver.lock:
                    for rs in request.resource_spans:
                        attrs = {a.key: a.value.string_value for a in rs.resource.attributes}
                        for ss in rs.scope_spans:
                            for span in ss.spans:
                                receiver.spans.append((attrs.get("service.name"), span))
                reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, predicate, timeout=10.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                found = predicate(list(self.spans))
            if found:
                return found
            time.sleep(0.1)
        with self.lock:
            raise AssertionError(f"spans not seen within {timeout}s; got {[(s, p.name) for s, p in self.spans]}")

    def close(self):
        self.server.shutdown()


class Service:
    def __init__(self, binary, env, logdir):
        self.port = int(env["PORT"])
        self.log_path = os.path.join(logdir, f"{binary}-{self.port}.log")
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "GATEWAY__", "BACKEND__"))}
        full_env.update(env)
        full_env.setdefault("RUST_LOG", "info")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([os.path.join(BIN, binary)], env=full_env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                if get(self.port, "/readyz")[0] == 200:
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"{binary} on {self.port} did not become ready:\n{self.output()}")

    def output(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def get(port, path, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


class TracingTest(unittest.TestCase):
    def setUp(self):
        self.logdir = tempfile.mkdtemp(prefix="tracing-")
        self.services = []
        self.receiver = Receiver()

    def tearDown(self):
        for s in self.services:
            s.stop()
        self.receiver.close()

    def start(self, binary, env):
        service = Service(binary, env, self.logdir)
        self.services.append(service)
        return service

    def otel(self, **extra):
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{self.receiver.port}", "OTEL_BSP_SCHEDULE_DELAY": "100"}
        env.update(extra)
        return env

    def test_one_trace_spans_gateway_client_and_backend(self):
        backend = self.start("backend", {"PORT": str(free_port()), **self.otel()})
        gateway = self.start(
            "gateway",
            {"PORT": str(free_port()), "GATEWAY__SERVERS": f"b1=http://127.0.0.1:{backend.port}", **self.otel()},
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
        deadline = time.time() + 5
        while trace_id not in gateway.output() and time.time() < deadline:
            time.sleep(0.1)
        access = [l for l in gateway.output().splitlines() if "request_id" in l and "trace_id" in l]
        self.assertTrue(any(trace_id in l for l in access), f"trace id {trace_id} not in access log:\n{gateway.output()}")

    def test_quiet_logs_do_not_turn_tracing_off(self):
        # One service quietened by RUST_LOG, the other by its log.level.
        backend = self.start("backend", {"PORT": str(free_port()), "RUST_LOG": "warn", **self.otel()})
        gateway = self.start(
            "gateway",
            {
                "PORT": str(free_port()),
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
        backend = self.start("backend", {"PORT": str(free_port()), **self.otel()})
        dead = free_port()
        gateway = self.start(
            "gateway",
            {
                "PORT": str(free_port()),
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
        failed = [c for c in clients if c.status.code == trace_pb2.Status.STATUS_CODE_ERROR]
        self.assertEqual(len(failed), 1)

    def test_buffered_spans_are_flushed_on_shutdown(self):
        backend = self.start("backend", {"PORT": str(free_port())})
        gateway = self.start(
            "gateway",
            {
                "PORT": str(free_port()),
                "GATEWAY__SERVERS": f"b1=http://127.0.0.1:{backend.port}",
                **self.otel(OTEL_BSP_SCHEDULE_DELAY="60000", OTEL_SERVICE_NAME="edge"),
            },
        )
        self.assertEqual(get(gateway.port, "/api/data")[0], 200)
        time.sleep(0.5)
        self.assertFalse([p for s, p in self.receiver.spans if s == "edge"], "spans arrived before shutdown")
        gateway.stop()
        self.assertEqual(gateway.proc.returncode, 0)
        self.receiver.wait_for(lambda spans: [p for s, p in spans if s == "edge" and p.kind == SERVER], timeout=3)

    def test_an_unreachable_collector_never_slows_or_fails_requests(self):
        backend = self.start("backend", {"PORT": str(free_port())})
        gateway = self.start(
            "gateway",
            {
                "PORT": str(free_port()),
                "GATEWAY__SERVERS": f"b1=http://127.0.0.1:{backend.port}",
                "GATEWAY__LOG__ACCESS_LOG": "false",
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}",
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
        backend = self.start("backend", {"PORT": str(free_port())})
        self.assertEqual(get(backend.port, "/api/data")[0], 200)
        backend.stop()
        out = backend.output().lower()
        for word in ("otlp", "opentelemetry", "trace", "exporter"):
            self.assertNotIn(word, out, f"{word!r} in a service's output without tracing configured:\n{out}")


if __name__ == "__main__":
    unittest.main(verbosity=2)
