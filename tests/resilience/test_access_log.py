"""The access log under concurrent load, against the release gateway.

The gateway writes its access lines by hand (observability::log_line),
batched per worker thread (observability::log_writer), instead of through the
tracing formatter. Under load from several concurrent clients on keep-alive
connections, with two workers:

- every proxied request has exactly one line, and every line is whole: in
  text it matches the subscriber's layout field for field, in JSON it parses
  and carries every field; nothing is lost at shutdown either;
- the log filter applies to those lines as it does to every other:
  RUST_LOG=info,access=off (or log.level=warn) leaves none, while the other
  INFO lines stay.
"""

import http.client
import json
import re
import signal
import threading
import unittest

import harness as h

CLIENTS = 8
PER_CLIENT = 150

TEXT_LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z  INFO request method=GET "
    r'path="/api/data\?n=(\d+)" status=200 backend="b1" latency_ms=\d+\.\d{1,3} '
    r'request_id="(t-\d+-\d+)" trace_id=""$'
)


def load(port):
    """CLIENTS keep-alive clients, PER_CLIENT requests each, every one with its
    own request id; returns the ids the gateway answered 200 for."""
    answered, lock, errors = [], threading.Lock(), []

    def client(c):
        conn = http.client.HTTPConnection(h.HOST, port, timeout=10)
        try:
            for i in range(PER_CLIENT):
                rid = f"t-{c}-{i}"
                conn.request("GET", f"/api/data?n={i}", headers={"X-Request-Id": rid})
                r = conn.getresponse()
                r.read()
                if r.status == 200:
                    with lock:
                        answered.append(rid)
        except (OSError, http.client.HTTPException) as e:
            errors.append(repr(e))
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    if errors:
        raise AssertionError(f"client errors: {errors[:3]}")
    return answered


class AccessLog(h.ProcessTest):
    def run_gateway(self, name, env):
        backend = self.backend(f"{name}-backend")
        gateway = self.procs.gateway(
            name,
            env={
                "GATEWAY__WORKERS": "2",
                "GATEWAY__SERVERS": f"b1=http://{h.HOST}:{backend.port}",
                "GATEWAY__LOG__ACCESS_LOG": "true",
                "RUST_LOG": "",
                **env,
            },
        )
        answered = load(gateway.port)
        self.assertEqual(len(answered), CLIENTS * PER_CLIENT)
        gateway.signal(signal.SIGTERM)
        self.assertEqual(gateway.wait(timeout=20), 0, gateway.tail())
        gateway.stop()
        return answered, gateway.output().splitlines()

    def test_text_lines_one_per_request_and_whole(self):
        answered, lines = self.run_gateway("text", {})
        access = [l for l in lines if "  INFO request " in l]
        ids = []
        for line in access:
            m = TEXT_LINE.match(line)
            self.assertIsNotNone(m, f"malformed access line: {line!r}")
            ids.append(m.group(2))
            self.assertTrue(m.group(2).endswith(f"-{m.group(1)}"), line)
        self.assertEqual(sorted(ids), sorted(answered), "lines lost or repeated")
        h.SUMMARIES.append(f"access log (text): {len(ids)} lines for {len(answered)} requests, all whole")

    def test_json_lines_one_per_request_and_whole(self):
        answered, lines = self.run_gateway("json", {"GATEWAY__LOG__FORMAT": "json"})
        ids = []
        for line in lines:
            if '"target":"access"' not in line:
                continue
            event = json.loads(line)
            self.assertEqual(
                set(event),
                {"timestamp", "level", "message", "method", "path", "status", "backend",
                 "latency_ms", "request_id", "trace_id", "target"},
                line,
            )
            self.assertEqual((event["level"], event["message"], event["status"]), ("INFO", "request", 200))
            ids.append(event["request_id"])
        self.assertEqual(sorted(ids), sorted(answered), "lines lost or repeated")

    def test_filters_drop_access_lines_and_keep_the_rest(self):
        for name, env in (
            ("rust-log-off", {"RUST_LOG": "info,access=off"}),
            ("level-warn", {"GATEWAY__LOG__LEVEL": "warn"}),
        ):
            _, lines = self.run_gateway(name, env)
            self.assertFalse([l for l in lines if " INFO request " in l], f"{name}: access lines were written")
            if name == "rust-log-off":
                self.assertTrue(any("gateway listening" in l for l in lines), "\n".join(lines[:5]))


if __name__ == "__main__":
    unittest.main()
