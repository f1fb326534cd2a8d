"""An OTLP/HTTP trace receiver on a free loopback port, decoding the
protobuf export requests the services send. Needs opentelemetry-proto
(requirements-dev.txt); depends on support.wait.
"""

import http.server
import threading

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from .wait import poll

SERVER, CLIENT = trace_pb2.Span.SPAN_KIND_SERVER, trace_pb2.Span.SPAN_KIND_CLIENT
STATUS_ERROR = trace_pb2.Status.STATUS_CODE_ERROR


class Receiver:
    """Collects every exported span as `spans` [(service.name, span)] and
    `resources` [(resource attributes, span)], and every export request's
    (path, content type) as `exports`. Read them under `lock`, or through
    wait_for."""

    def __init__(self):
        self.spans, self.resources, self.exports = [], [], []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                request = trace_service_pb2.ExportTraceServiceRequest()
                request.ParseFromString(body)
                with receiver.lock:
                    receiver.exports.append((self.path, self.headers.get("content-type")))
                    for rs in request.resource_spans:
                        attrs = {a.key: a.value.string_value for a in rs.resource.attributes}
                        for ss in rs.scope_spans:
                            for span in ss.spans:
                                receiver.spans.append((attrs.get("service.name"), span))
                                receiver.resources.append((attrs, span))
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
        """Polls predicate(spans), run under the lock (it may read
        `resources` too), until it returns something truthy; returns that."""

        def check():
            with self.lock:
                return predicate(list(self.spans))

        found = poll(check, timeout, interval=0.1)
        if not found:
            with self.lock:
                raise AssertionError(f"spans not seen within {timeout}s; got {[(s, p.name) for s, p in self.spans]}")
        return found

    def close(self):
        self.server.shutdown()
        self.server.server_close()
