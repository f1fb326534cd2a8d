"""The failure contract of the proxied path, as two tables run against the
release gateway (default settings unless a row names a short timeout or a
low limit; rows with the same settings share one gateway).

1. Misbehaving backends: a scripted raw-socket backend (ScriptedBackend in
   scripted_backend.py), registered afresh for each row beside a real release
   `backend` named `real`, does one wrong thing per row. Seen per row: what
   the client gets (status, bytes, whether the connection was closed, how
   fast), how often the request reached the scripted backend, the change in
   gateway_retries_total, whether the backend was charged (GET /api/servers:
   consecutive_failures or an ejection, failures_total; GET /api/stats/1h:
   its errors), and for breaks after the head whether the request was
   recorded as an error (the gateway's 1h errors, an `error` field on its
   access log line).
2. Misbehaving clients: raw sockets to a gateway with two healthy real
   backends (r1, r2): broken or slow bodies, control characters,
   absolute-form targets, label and series growth. After every row a normal
   GET still gets 200, r1 and r2 are still `up` and were not charged.
   (Requests refused before routing, with bytes after them, and refused
   registrations are rows of tests/data/bad_requests.json: their answers are
   checked in services/gateway/tests/bad_requests.rs, the release process
   and its log in test_bad_input.py.)

Every row, both tables: each arrival at a backend beyond the first is
counted in gateway_retries_total (no hidden resend), the gateway is alive
and printed no "panicked", and its log gained no raw control character and
no forged line. Each table collects every row's deviations and fails once,
listing them all.
"""

import collections
import http.client
import json
import re
import select
import socket
import threading
import time
import unittest
from http import HTTPStatus

import harness as h
from scripted_backend import ScriptedBackend, http_response

REAL = "real"
PROBE_PATH = "/api/echo/probe"

# ---------------------------------------------------------------- what scripted backends do


def answers(raw, keep=True):
    """Sends `raw` as the answer; keeps the connection unless `keep` is False."""

    def handle(conn, req):
        conn.send(raw)
        if not keep:
            conn.close()
        return keep

    return handle


def answers_slowly(delay):
    def handle(conn, req):
        time.sleep(delay)  # the backend's behaviour: a slow answer
        conn.send(http_response())
        return True

    return handle


def closes_unanswered(conn, req):
    conn.close()
    return False


def resets_unanswered(conn, req):
    conn.reset()
    return False


def hangs(conn, req):
    conn.hang()
    return False


def hangs_with_health_checks(conn, req):
    conn.backend.health_hung.set()
    conn.hang()
    return False


def stalls_after(raw):
    def handle(conn, req):
        conn.send(raw)
        conn.hang()
        return False

    return handle


def refuses_before_the_body(raw):
    def handle(conn, req):
        conn.send(raw)
        conn.close_after_draining()
        return False

    handle.before_body = True
    return handle


def sends_extra_after(raw, extra, delay=0.05):
    def handle(conn, req):
        conn.send(raw)
        time.sleep(delay)  # the backend's behaviour: the extra bytes come later, unasked
        conn.send(extra)
        return True

    return handle


NOTHING_LISTENS = None  # no scripted backend: the registered port refuses connections

OK = http_response()
CHUNKED = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


def head(*lines, body=b""):
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


# ---------------------------------------------------------------- table 1: misbehaving backends

BackendRow = collections.namedtuple("BackendRow", "name does expect peer method settings pooled body wait")


def backend_row(name, does, expect, peer, method="GET", settings=None, pooled=0, body=None, wait=5.0):
    if method == "POST" and body is None:
        body = b"hello"
    return BackendRow(name, does, expect, peer, method, settings or {}, pooled, body, wait)


PER_TRY_1S = {"retry.per_try_timeout": "1s"}
BODY_IDLE_1S = {"upstream.body_idle_timeout": "1s"}
BROKEN = ("cut", 502)  # a break after the head closes the client's connection mid-body
CHARGED = {"charged": True, "recorded_as_error": True}

BACKEND_ROWS = [
    backend_row("healthy answer (control row)", "answers 200 with 5 bytes",
                {"status": 200, "body": b"hello", "peer_arrivals": 1, "retries": 0, "charged": False}, answers(OK)),
    backend_row("GET, closed unanswered, fresh connection", "reads the request, closes without a byte",
                {"status": 200, "peer_arrivals": 1, "retries": 1, "charged": True}, closes_unanswered),
    backend_row("POST, closed unanswered, fresh connection", "reads the request, closes without a byte",
                {"status": 502, "code": "upstream_unreachable", "peer_arrivals": 1, "retries": 0, "charged": True},
                closes_unanswered, "POST"),
    backend_row("GET, closed unanswered, pooled connections", "8 keep-alive connections pooled by earlier GETs; "
                "then reads each request and closes without a byte", {"status": 200}, closes_unanswered, pooled=8),
    backend_row("POST, closed unanswered, pooled connections", "8 keep-alive connections pooled by earlier GETs; "
                "then reads each request and closes without a byte",
                {"status": 502, "code": "upstream_unreachable", "peer_arrivals": 1, "retries": 0},
                closes_unanswered, "POST", pooled=8),
    backend_row("GET, reset unanswered", "reads the request, resets the connection (RST)",
                {"status": 200, "peer_arrivals": 1, "retries": 1, "charged": True}, resets_unanswered),
    backend_row("POST, reset unanswered", "reads the request, resets the connection (RST)",
                {"status": 502, "code": "upstream_unreachable", "peer_arrivals": 1, "retries": 0, "charged": True},
                resets_unanswered, "POST"),
    backend_row("POST, connection refused", "nothing listens on the registered port",
                {"status": 200, "retries": 1, "charged": True}, NOTHING_LISTENS, "POST"),
    backend_row("garbage head", "answers `NOT HTTP AT ALL`",
                {"status": 502, "peer_arrivals": 1, "retries": 0, "charged": True},
                answers(b"NOT HTTP AT ALL\r\n\r\n", keep=False), "POST"),
    backend_row("head too large", "answers a 80 KB head",
                {"status": 502, "peer_arrivals": 1, "retries": 0, "charged": True},
                answers(head("HTTP/1.1 200 OK", *[f"X-Filler-{i}: {'a' * 1000}" for i in range(80)],
                             "Content-Length: 0")), "POST"),
    backend_row("101 unasked", "answers 101 Switching Protocols to a request that asked for no upgrade",
                {"status": 502, "peer_arrivals": 1, "retries": 0, "charged": True},
                answers(head("HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade")),
                "POST"),
    backend_row("Content-Length lines disagree", "answers `Content-Length: 5` and `Content-Length: 6`",
                {"status": 502, "peer_arrivals": 1, "retries": 0, "charged": True},
                answers(head("HTTP/1.1 200 OK", "Content-Length: 5", "Content-Length: 6", body=b"hello!")), "POST"),
    backend_row("Content-Length list disagrees", "answers `Content-Length: 5, 6`",
                {"status": 502, "peer_arrivals": 1, "retries": 0, "charged": True},
                answers(head("HTTP/1.1 200 OK", "Content-Length: 5, 6", body=b"hello!")), "POST"),
    backend_row("Content-Length not a number", "answers `Content-Length: abc`",
                {"status": 502, "peer_arrivals": 1, "retries": 0, "charged": True},
                answers(head("HTTP/1.1 200 OK", "Content-Length: abc", body=b"hello")), "POST"),
    backend_row("Content-Length: 5, 5", "answers `Content-Length: 5, 5` and 5 bytes",
                {"status": 200, "body": b"hello", "content_length": ["5"], "charged": False},
                answers(head("HTTP/1.1 200 OK", "Content-Length: 5, 5", body=b"hello"))),
    backend_row("two identical Content-Length lines", "answers `Content-Length: 5` twice and 5 bytes",
                {"status": 200, "body": b"hello", "content_length": ["5"], "charged": False},
                answers(head("HTTP/1.1 200 OK", "Content-Length: 5", "Content-Length: 5", body=b"hello"))),
    backend_row("Transfer-Encoding: gzip", "answers `Transfer-Encoding: gzip`, body until close",
                {"status": 502, "peer_arrivals": 1, "retries": 0, "charged": True},
                answers(head("HTTP/1.1 200 OK", "Transfer-Encoding: gzip", body=b"\x1f\x8b\x08\x00junk"),
                        keep=False), "POST"),
    backend_row("Transfer-Encoding: gzip, chunked", "answers `Transfer-Encoding: gzip, chunked`",
                {"status": 502, "peer_arrivals": 1, "retries": 0, "charged": True},
                answers(head("HTTP/1.1 200 OK", "Transfer-Encoding: gzip, chunked",
                             body=b"5\r\nhello\r\n0\r\n\r\n")), "POST"),
    backend_row("Transfer-Encoding: chunked, chunked", "answers `Transfer-Encoding: chunked, chunked`",
                {"status": 502, "peer_arrivals": 1, "retries": 0, "charged": True},
                answers(head("HTTP/1.1 200 OK", "Transfer-Encoding: chunked, chunked",
                             body=b"5\r\nhello\r\n0\r\n\r\n")), "POST"),
    backend_row("chunk size overflows", "answers chunked with a 17-digit hex chunk size",
                {"status": BROKEN, "retries": 0, **CHARGED},
                answers(CHUNKED.encode() + b"1ffffffffffffffff\r\nhello", keep=False), "POST"),
    backend_row("bad chunk CRLF", "answers chunked, 5 bytes of data then `XX` instead of CRLF",
                {"status": BROKEN, "retries": 0, **CHARGED},
                answers(CHUNKED.encode() + b"5\r\nhelloXX0\r\n\r\n", keep=False), "POST"),
    backend_row("trailer flood", "answers chunked, then 3000 trailer lines (48 KB)",
                {"status": BROKEN, "retries": 0, **CHARGED},
                answers(CHUNKED.encode() + b"5\r\nhello\r\n0\r\n" + b"X-Trailer: 0123456\r\n" * 3000 + b"\r\n",
                        keep=False), "POST"),
    backend_row("body cut short", "answers `Content-Length: 100`, sends 10 bytes, closes",
                {"status": "cut", "body": b"0123456789", "retries": 0, **CHARGED},
                answers(head("HTTP/1.1 200 OK", "Content-Length: 100", body=b"0123456789"), keep=False), "POST"),
    backend_row("chunked body without its last chunk", "answers one chunk, closes",
                {"status": "cut", "body": b"hello", "retries": 0, **CHARGED},
                answers(CHUNKED.encode() + b"5\r\nhello\r\n", keep=False), "POST"),
    backend_row("body stalls mid-way", "answers `Content-Length: 100`, sends 10 bytes, then nothing "
                "(upstream.body_idle_timeout=1s)",
                {"status": "cut", "body": b"0123456789", "within": 2.5, "retries": 0, **CHARGED},
                stalls_after(head("HTTP/1.1 200 OK", "Content-Length: 100", body=b"0123456789")),
                settings=BODY_IDLE_1S, wait=5.0),
    backend_row("POST, hangs without an answer", "reads the request, never answers (retry.per_try_timeout=1s)",
                {"status": 504, "code": "upstream_timeout", "within": 2.0, "peer_arrivals": 1, "retries": 0,
                 "charged": True}, hangs, "POST", settings=PER_TRY_1S, wait=4.0),
    backend_row("GET, hangs without an answer", "reads the request, never answers (retry.per_try_timeout=1s)",
                {"status": 200, "within": 2.0, "peer_arrivals": 1, "retries": 1, "charged": True},
                hangs, settings=PER_TRY_1S, wait=4.0),
    backend_row("GET, hangs and is marked down", "reads the request, never answers, and its health checks "
                "hang from then on (health checks at their defaults: down after about 2 s)",
                {"status": 200, "within": 4.0, "peer_arrivals": 1, "retries": 1, "state": ("down", "ejected")},
                hangs_with_health_checks, wait=6.0),
    backend_row("early 413 during a 1 MiB upload", "answers 413 after the head, before reading the body",
                {"status": 413, "peer_arrivals": 1, "retries": 0, "charged": False},
                refuses_before_the_body(http_response(413, b"too big", [("Connection", "close")],
                                                        "Payload Too Large")), "POST", body=b"x" * (1 << 20)),
    backend_row("1xx then the final answer", "answers 100 Continue, 103 Early Hints, then 200",
                {"status": 200, "body": b"hello", "charged": False},
                answers(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n" + OK)),
    backend_row("unasked bytes after the body", "answers 200 with 5 bytes, then 50 ms later `EXTRA` unasked",
                {"status": 200, "body": b"hello", "next_on_new_connection": True, "charged": False},
                sends_extra_after(OK, b"EXTRA")),
    backend_row("HTTP/1.0 body until close (control row)", "answers HTTP/1.0 without a length, closes",
                {"status": 200, "body": b"hello", "charged": False},
                answers(b"HTTP/1.0 200 OK\r\n\r\nhello", keep=False)),
    backend_row("control character in a header value", "answers a header whose value holds ESC",
                {"status": 502, "peer_arrivals": 1, "retries": 0, "charged": True},
                answers(head("HTTP/1.1 200 OK", "X-Evil: a\x1b[2Jb", "Content-Length: 5", body=b"hello")),
                "POST"),
]

# ---------------------------------------------------------------- table 2: misbehaving clients

ClientRow = collections.namedtuple("ClientRow", "name does expect act settings")

BODY_IDLE_500MS = {"limits.body_idle_timeout": "500ms"}
MAX_BODY_256K = {"limits.max_body_bytes": "262144"}
IN_FLIGHT_4 = {"limits.max_in_flight": "4"}
PIPELINED = b"GET /api/echo/smuggled HTTP/1.1\r\nHost: gw\r\n\r\n"


def req(method, path, *headers, body=b"", host="gw"):
    lines = [f"{method} {path} HTTP/1.1"] + ([f"Host: {host}"] if host else []) + list(headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked_post(chunks, *headers):
    return req("POST", "/api/echo/c", "Transfer-Encoding: chunked", *headers, body=chunks)


def sends(payload, wait=3.0, linger=1.0):
    """The row's client sends `payload` at once and reads one answer."""

    def act(ctx):
        data = payload(ctx) if callable(payload) else payload
        return seen_from(h.raw_request(ctx.gw.port, data, timeout=wait, linger=linger))

    return act


def seen_from(r):
    return {
        "status": r.outcome(),
        "code": r.json_code(),
        "closed": r.closed,
        "elapsed": r.elapsed,
        "second_answer": b"HTTP/1." in r.extra,
        "answered": r.status is not None,
        "response": r,
    }


def trickles(first, piece, every=1.0, limit=4.0):
    """Sends `first`, then `piece` every `every` seconds until the gateway
    answers or closes, or `limit` seconds pass."""

    def act(ctx):
        s = socket.create_connection((h.HOST, ctx.gw.port), timeout=limit)
        started = time.monotonic()
        try:
            s.sendall(first)
            next_at = started + every
            while time.monotonic() < started + limit:
                readable, _, _ = select.select([s], [], [], max(0.0, next_at - time.monotonic()))
                if readable:
                    break
                try:
                    s.sendall(piece)
                except OSError:
                    break
                next_at += every
            return seen_from(h.read_response(s, limit, "POST", linger=0.5, started=started))
        finally:
            s.close()

    return act


def abandons(payload, rid, after=0.3):
    """Sends `payload` (tagged with X-Request-Id `rid`), closes after `after`
    seconds, and reads the status the access log gives the request."""

    def act(ctx):
        s = socket.create_connection((h.HOST, ctx.gw.port), timeout=3)
        try:
            s.sendall(payload)
            time.sleep(after)  # the client's behaviour: it gives up after a while
        finally:
            s.close()
        line = access_line(ctx.gw, rid, 2.5)
        m = re.search(r" status=(\d+)", line or "")
        return {"log_status": int(m.group(1)) if m else None}

    return act


def slow_uploaders_and_a_normal_client(ctx):
    """8 uploaders (twice limits.max_in_flight) each send a head announcing 100
    bytes and then a byte every 250 ms; meanwhile a normal client sends 8 GETs."""
    uploaders = []
    for _ in range(8):
        s = socket.create_connection((h.HOST, ctx.gw.port), timeout=3)
        s.sendall(req("POST", "/api/echo/slow", "Content-Length: 100", body=b"x"))
        uploaders.append(s)
    statuses, stop = [], threading.Event()

    def trickle():
        while not stop.wait(0.25):
            for s in uploaders:
                try:
                    s.send(b"x")
                except OSError:
                    pass

    t = threading.Thread(target=trickle, daemon=True)
    t.start()
    try:
        # Every uploader's head read (the /metrics request counts itself).
        h.poll(lambda: h.metric_sum(ctx.gw.port, "http_server_active_requests") >= len(uploaders) + 1, 3.0)
        for _ in range(8):
            try:
                statuses.append(h.request(ctx.gw.port, "GET", "/api/data", timeout=3)[0])
            except OSError as e:
                statuses.append(type(e).__name__)
            time.sleep(0.2)  # the normal client's pace, while the uploaders trickle
    finally:
        stop.set()
        t.join(2)
        for s in uploaders:
            s.close()
    return {"normal_statuses": statuses}


def ten_malformed_bodies(ctx):
    outcomes = []
    for i in range(10):
        payload = chunked_post(b"zz\r\nhello\r\n0\r\n\r\n", f"X-Request-Id: malformed-{i}")
        outcomes.append(h.raw_request(ctx.gw.port, payload, timeout=3).outcome())
    return {"statuses": outcomes}


def echo(ctx, payload, tries=4):
    """Sends payload until an /api/echo answer comes back; its JSON."""
    for _ in range(tries):
        r = h.raw_request(ctx.gw.port, payload, timeout=3)
        try:
            answer = json.loads(r.body)
        except ValueError:
            continue
        if isinstance(answer, dict) and "path" in answer:
            return answer
    return None


def absolute_form_empty_path(ctx):
    """`GET http://host?x=1` (no path), sent until it reaches a scripted
    backend registered beside r1 and r2 for the row, which records the
    request line as it arrived. (A real backend cannot show it: without a
    path prefix it refuses a target that does not start with `/`, and with
    one the gateway's joining of prefix and target hides the difference.)"""
    recorder = ScriptedBackend()
    h.register(ctx.gw.port, "recorder", recorder.url)
    try:
        for _ in range(6):
            h.raw_request(ctx.gw.port, req("GET", f"http://{h.HOST}:{ctx.gw.port}?x=1", "Connection: close"), 3)
            if recorder.requests:
                break
    finally:
        h.unregister(ctx.gw.port, "recorder")
        recorder.close()
    return {"forwarded_target": recorder.requests[0].target if recorder.requests else None}


def absolute_form_with_path(ctx):
    got = echo(ctx, req("GET", f"http://{h.HOST}:{ctx.gw.port}/api/echo/abs?x=1", "Connection: close"))
    return {"echoed": got and [got["path"], got["query"]]}


def forwarded_for_lines(ctx):
    got = echo(ctx, req("GET", "/api/echo/xff", "X-Forwarded-For: 10.0.0.1", "X-Forwarded-For: 10.0.0.2, 10.0.0.3",
                        "X-Forwarded-For: 10.0.0.4", "Connection: close"))
    values = (got or {}).get("headers", {}).get("x-forwarded-for", [])
    return {"chain": [v.strip() for v in ", ".join(values).split(",") if v.strip()]}


def registration_churn(ctx):
    """300 registrations, 10 at a time, each batch with 10 GETs through the
    gateway, then deleted; which series still name them."""
    url = f"http://{h.HOST}:{ctx.r1.port}"
    for batch in range(30):
        names = [f"churn-{batch * 10 + i}" for i in range(10)]
        for name in names:
            h.register(ctx.gw.port, name, url)
        for _ in range(10):
            h.request(ctx.gw.port, "GET", "/api/data")
        for name in names:
            h.unregister(ctx.gw.port, name)
    left = sorted({n + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(ls.items())) + "}"
                   for n, ls, _ in h.metric_samples(ctx.gw.port) if any(v.startswith("churn-") for v in ls.values())})
    return {"series_naming_deleted": len(left), "series_naming_deleted_detail": f"e.g. {short(left[:2])}"}


REGISTERED_STATUSES = {str(s.value) for s in HTTPStatus} | {"306", "418"}
STATUS_CLASSES = {"1xx", "2xx", "3xx", "4xx", "5xx", ""}


def status_labels(ctx):
    """GET /api/data?status=N for every N the backend allows (200-599), on
    one keep-alive connection; which status labels /metrics then has."""
    conn = http.client.HTTPConnection(h.HOST, ctx.gw.port, timeout=5)
    try:
        for n in range(200, 600):
            conn.request("GET", f"/api/data?status={n}")
            conn.getresponse().read()
    finally:
        conn.close()
    labels = {ls["http_response_status_code"] for _, ls, _ in h.metric_samples(ctx.gw.port)
              if "http_response_status_code" in ls}
    odd = sorted(labels - REGISTERED_STATUSES - STATUS_CLASSES)
    return {"unregistered_labels": len(odd), "unregistered_labels_detail": f"e.g. {odd[:8]}"}


KNOWN_METHODS = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "_OTHER"}
ROUTES = {"/api/servers", "/api/servers/{name}", "/api/stats/{window}", "/metrics", "/healthz", "/readyz", "/*"}


def invented_methods_and_paths(ctx):
    for i in range(40):
        h.raw_request(ctx.gw.port, req(f"BREW{i}", f"/api/echo/p{i}?q={i}", "Connection: close"), timeout=3)
        h.raw_request(ctx.gw.port, req("GET", f"/random/{i}/x{i}", "Connection: close"), timeout=3)
    samples = h.metric_samples(ctx.gw.port)
    methods = {ls["http_request_method"] for _, ls, _ in samples if "http_request_method" in ls}
    routes = {ls["http_route"] for _, ls, _ in samples if "http_route" in ls}
    return {"unknown_method_labels": sorted(methods - KNOWN_METHODS), "unknown_route_labels": sorted(routes - ROUTES)}


CLIENT_ROWS = [
    ClientRow("malformed chunk size `zz`", "POSTs a chunked body whose size line is `zz`, then a pipelined GET",
              {"status": 400, "code": "invalid_body", "closed": True, "second_answer": False},
              sends(chunked_post(b"zz\r\nhello\r\n0\r\n\r\n") + PIPELINED), None),
    ClientRow("malformed chunk CRLF", "POSTs a chunk followed by `XX` instead of CRLF, then a pipelined GET",
              {"status": 400, "code": "invalid_body", "closed": True, "second_answer": False},
              sends(chunked_post(b"5\r\nhelloXX0\r\n\r\n") + PIPELINED), None),
    # hyper's decoder takes any chunk size that fits in 64 bits (NGINX
    # refuses those over 2^59 with 400), so what follows is read as that
    # chunk's data: bounded by limits.body_idle_timeout (or max_body_bytes),
    # then refused as the client's fault; the pipelined request is never
    # read as a request.
    ClientRow("chunk size ffffffffffffffff", "POSTs a chunk size of 2^64-1, 5 bytes, then a pipelined GET",
              {"status": 408, "code": "body_timeout", "closed": True, "second_answer": False},
              sends(chunked_post(b"ffffffffffffffff\r\nhello\r\n0\r\n\r\n") + PIPELINED), BODY_IDLE_500MS),
    ClientRow("ten malformed bodies in a row", "POSTs 10 chunked bodies with size `zz`, one after the other",
              {"statuses": [400] * 10}, ten_malformed_bodies, None),
    ClientRow("slow buffered body", "POSTs `Content-Length: 20` and 1 byte a second (limits.body_idle_timeout=500ms)",
              {"status": 408, "code": "body_timeout", "closed": True, "within": 2.0},
              trickles(req("POST", "/api/echo/slow", "Content-Length: 20", body=b"x"), b"x"), BODY_IDLE_500MS),
    ClientRow("slow streamed body", "POSTs chunked, a 1-byte chunk a second (limits.body_idle_timeout=500ms)",
              {"status": 408, "code": "body_timeout", "closed": True, "within": 2.0},
              trickles(chunked_post(b"1\r\nx\r\n"), b"1\r\nx\r\n"), BODY_IDLE_500MS),
    ClientRow("abandoned buffered upload", "announces 1000 bytes, sends 100, closes",
              {"log_status": 499, "forwarded": 0},
              abandons(req("POST", "/api/echo/a", "Content-Length: 1000", "X-Request-Id: abandoned-buffered",
                           body=b"x" * 100), "abandoned-buffered"), None),
    ClientRow("abandoned streamed upload", "announces 1 MiB, sends 128 KiB, closes",
              {"log_status": 499},
              abandons(req("POST", "/api/echo/a", f"Content-Length: {1 << 20}", "X-Request-Id: abandoned-streamed",
                           body=b"x" * (128 << 10)), "abandoned-streamed"), None),
    ClientRow("gone before the answer", "GETs /api/data?delay_ms=800, closes after 200 ms",
              {"log_status": 499},
              abandons(req("GET", "/api/data?delay_ms=800", "X-Request-Id: gone-early"), "gone-early", 0.2), None),
    ClientRow("Content-Length over 64 MiB", "POSTs `Content-Length: 67108865` (default limits.max_body_bytes)",
              {"status": 413, "code": "body_too_large", "within": 1.0, "forwarded": 0},
              sends(req("POST", "/api/echo/big", "Content-Length: 67108865"), linger=0), None),
    ClientRow("chunked body over limits.max_body_bytes", "POSTs 320 KiB chunked (limits.max_body_bytes=256 KiB)",
              {"status": 413, "code": "body_too_large"},
              sends(chunked_post(b"".join(b"8000\r\n" + b"x" * 0x8000 + b"\r\n" for _ in range(10)) + b"0\r\n\r\n"),
                    linger=0), MAX_BODY_256K),
    ClientRow("slow uploaders over limits.max_in_flight", "8 slow uploaders (limits.max_in_flight=4), and a "
              "normal client sending 8 GETs", {"normal_statuses": [200] * 8}, slow_uploaders_and_a_normal_client,
              IN_FLIGHT_4),
    ClientRow("Content-Length and Transfer-Encoding both", "POSTs both, a chunked body, then a pipelined GET "
              "(RFC 9112 6.3: close after answering)", {"closed": True, "second_answer": False},
              sends(req("POST", "/api/echo/a", "Content-Length: 5", "Transfer-Encoding: chunked",
                        body=b"0\r\n\r\n") + PIPELINED), None),
    ClientRow("C1 controls in the path", "GETs a path holding UTF-8 NEL and CSI (U+0085, U+009B)",
              {"answered": True}, sends(req("GET", "/api/echo/a\xc2\x85b\xc2\x9bc", "Connection: close"), linger=0),
              None),
    ClientRow("DEL in the path", "GETs a path holding a raw DEL byte",
              {"answered": True}, sends(req("GET", "/api/echo/a\x7fb", "Connection: close"), linger=0), None),
    ClientRow("tab in X-Request-Id", "sends an X-Request-Id holding a tab (a visible-ASCII id otherwise)",
              {"answered": True},
              sends(req("GET", "/api/echo/id", "X-Request-Id: a\tb", "Connection: close"), linger=0), None),
    ClientRow("C1 bytes in X-Request-Id", "sends an X-Request-Id holding the raw bytes 0x85 and 0x9b",
              {"answered": True},
              sends(req("GET", "/api/echo/id", "X-Request-Id: a\x85b\x9bc", "Connection: close"), linger=0), None),
    ClientRow("absolute form, empty path", "GETs `http://host?x=1` (a recording backend shows the target sent)",
              {"forwarded_target": "/?x=1"}, absolute_form_empty_path, None),
    ClientRow("absolute form with a path (control row)", "GETs `http://host/api/echo/abs?x=1`",
              {"echoed": ["/api/echo/abs", "x=1"]}, absolute_form_with_path, None),
    ClientRow("X-Forwarded-For on several lines", "sends three X-Forwarded-For lines (four addresses)",
              {"chain": ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "127.0.0.1"]}, forwarded_for_lines, None),
    ClientRow("registration churn", "300 registrations and deletions with 300 GETs among them",
              {"series_naming_deleted": 0}, registration_churn, None),
    ClientRow("backend-chosen statuses", "GETs /api/data?status=N for N = 200..599 (the backend answers N)",
              {"unregistered_labels": 0, "charged": None}, status_labels, None),
    ClientRow("invented methods and paths (control row)", "40 invented methods and 40 distinct unknown paths",
              {"unknown_method_labels": [], "unknown_route_labels": []}, invented_methods_and_paths, None),
]

# ---------------------------------------------------------------- shared checks


CHECKED_APART = {"charged", "recorded_as_error"}  # by the runners, against the gateway's counters


def compare(expect, seen):
    """Deviations of `seen` from `expect`, one 'key: saw X, expected Y' each.
    `within` bounds seen["elapsed"]; a tuple lists the acceptable values."""
    problems = []
    for key, want in expect.items():
        if want is None or key in CHECKED_APART:
            continue
        if key == "within":
            got = seen.get("elapsed")
            if got is None or got > want:
                problems.append(f"took {got:.2f} s, expected at most {want} s" if got else "no timing")
            continue
        got = seen.get(key, "<not seen>")
        ok = got in want if isinstance(want, tuple) else got == want
        if not ok:
            detail = seen.get(f"{key}_detail")
            problems.append(f"{key}: saw {short(got)}{f' ({detail})' if detail else ''}, expected {short(want)}")
    return problems


def short(value):
    text = repr(value)
    return text if len(text) <= 160 else text[:157] + "..."


def access_line(gw, request_id, timeout):
    """The access log line of the request with this id, polled for up to
    `timeout` seconds (lines are batched per worker)."""
    needle = f'request_id="{request_id}"'.encode()

    def find():
        for line in gw.stdout_bytes().splitlines():
            if needle in line and b" request method=" in line:
                return line.decode("utf-8", "replace")
        return None

    return h.poll(find, timeout)


class GatewayRefused(Exception):
    pass


class Gateways:
    """One gateway per distinct settings, started when a row first needs it,
    with `backends` ({name: port}) registered; restarted if it died."""

    def __init__(self, test, backends):
        self.test, self.backends = test, backends
        self.running, self.refused = {}, {}

    def get(self, settings):
        key = tuple(sorted(settings.items()))
        if key in self.refused:
            raise GatewayRefused(self.refused[key])
        gw = self.running.get(key)
        if gw is not None and gw.alive():
            return gw
        name = "gateway-" + ("-".join(f"{k}={v}" for k, v in key) or "defaults").replace("/", "_")
        try:
            gw = self.test.gateway(name=f"{name}-{len(self.running)}",
                                   settings={"log.access_log": "true", **settings})
        except AssertionError as e:
            lines = [l for l in str(e).splitlines() if l.strip()]
            self.refused[key] = f"the gateway did not start with {settings}: {lines[-1] if lines else e}"
            raise GatewayRefused(self.refused[key]) from None
        for name, port in self.backends.items():
            h.register(gw.port, name, f"http://{h.HOST}:{port}")
        self.running[key] = gw
        return gw


class Watch:
    """What a row may not do to the gateway: die, panic, or write raw
    control characters or forged lines to its log."""

    def __init__(self, gw):
        self.gw = gw
        self.log_at = len(gw.stdout_bytes())
        self.panics = gw.output().count("panicked")

    def problems(self):
        problems = []
        if not self.gw.alive():
            problems.append(f"the gateway exited ({self.gw.popen.returncode})")
        if self.gw.output().count("panicked") > self.panics:
            line = next(l for l in self.gw.output().splitlines() if "panicked" in l)
            problems.append(f"the gateway panicked: {short(line)}")
        return problems + h.log_problems(self.gw.stdout_bytes()[self.log_at :])


def retries_total(gw):
    return int(h.metric_sum(gw.port, "gateway_retries_total"))


def total_errors(gw):
    return h.get_json(gw.port, "/api/stats/1h")["errors"]


def charges(gw, name):
    """What a backend has been charged with so far."""
    view = h.get_json(gw.port, f"/api/servers/{name}")
    stats = h.get_json(gw.port, "/api/stats/1h")["servers"].get(name, {})
    return {
        "consecutive_failures": view["consecutive_failures"],
        "ejections": view["ejections"],
        "failures_total": view["failures_total"],
        "stats errors": stats.get("errors", 0),
        "state": view["state"],
    }


def charge(gw, name, before=None):
    """(charged, not charged, description) of one backend, counting from
    `before` (an earlier charges()) when given."""
    now = charges(gw, name)
    if before:
        for key in ("ejections", "failures_total", "stats errors"):
            now[key] -= before[key]
    failing = now["consecutive_failures"] > 0 or now["ejections"] > 0 or now["state"] == "ejected"
    failures, errors = now["failures_total"], now["stats errors"]
    text = " ".join(f"{k}={'+' if before and k not in ('state', 'consecutive_failures') else ''}{v}"
                    for k, v in now.items())
    return failing and failures > 0 and errors > 0, not failing and failures == 0 and errors == 0, text


# ---------------------------------------------------------------- the two runners


class FailureContract(h.ProcessTest):
    def test_misbehaving_backends(self):
        real = self.backend(REAL)
        gateways = Gateways(self, {REAL: real.port})
        self.run_table("backend", BACKEND_ROWS, lambda i, row: self.backend_row(gateways, i, row))

    def run_table(self, peer, rows, run_row):
        """Runs every row, then fails once listing each row that did not
        behave as the contract says, and adds a summary line."""
        failures, outcomes = [], collections.Counter()
        started = time.monotonic()
        for i, row in enumerate(rows):
            try:
                problems = run_row(i, row)
            except GatewayRefused as e:
                problems = [str(e)]
            except (AssertionError, OSError, ValueError, KeyError) as e:
                problems = [f"the row could not run: {type(e).__name__}: {short(str(e))}"]
            outcomes["passed" if not problems else "failed"] += 1
            if problems:
                failures.append(f"[{row.name}] ({peer} {row.does}): " + "; ".join(problems))
        h.summary(f"failure contract: {peer}s",
                  f"{len(rows)} misbehaving {peer}s in {time.monotonic() - started:.1f} s: "
                  f"{outcomes['passed']} as the contract says, {outcomes['failed']} not")
        self.assertEqual(failures, [], "\n" + "\n".join(failures))

    def backend_row(self, gateways, i, row):
        gw = gateways.get(row.settings)
        name = f"peer-{i}"
        peer = None
        if row.peer is NOTHING_LISTENS:
            url = f"http://{h.HOST}:{h.free_port()}"
        else:
            peer = ScriptedBackend(answers_slowly(0.3) if row.pooled else answers(OK))
            url = peer.url
        h.register(gw.port, name, url)
        watch = Watch(gw)
        try:
            problems = []
            if row.pooled:
                pooled = self.pool_connections(gw, peer, row.pooled)
                if pooled < 2:
                    problems.append(f"set-up: only {pooled} keep-alive connections to the backend")
            if peer:
                peer.handler = row.peer
            seen, rid = self.probe(gw, peer, row)
            problems += self.after_probe(gw, peer, name, row, seen, rid)
            return problems + compare(row.expect, seen) + watch.problems()
        finally:
            try:
                h.unregister(gw.port, name)
            except (AssertionError, OSError):
                pass
            if peer:
                peer.close()

    def pool_connections(self, gw, peer, n):
        """2n concurrent GETs, half of them held 300 ms by the backend, so the
        gateway's workers pool about n connections to it."""
        threads = [threading.Thread(target=h.request, args=(gw.port, "GET", PROBE_PATH), daemon=True)
                   for _ in range(2 * n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(5)
        return len({r.conn.number for r in peer.requests})

    def probe(self, gw, peer, row):
        """Sends the row's request until it reaches the scripted backend
        (round robin may pick `real` first); what was seen."""
        slug = re.sub(r"[^a-z0-9]+", "-", row.name.lower()).strip("-")[:40]
        for n in range(4):
            rid = f"{slug}-{n}"
            retries0, errors0 = retries_total(gw), total_errors(gw)
            headers = [f"X-Request-Id: {rid}"]
            if row.body is not None:
                headers.append(f"Content-Length: {len(row.body)}")
            payload = req(row.method, PROBE_PATH, *headers, body=row.body or b"")
            linger = 1.0 if "closed" in row.expect else 0.0
            r = h.raw_request(gw.port, payload, timeout=row.wait, method=row.method, linger=linger)
            arrivals = peer.arrivals(rid) if peer else 0
            retries = retries_total(gw) - retries0
            served_by = r.header("x-served-by")
            if arrivals or retries or served_by != REAL:
                break
        seen = seen_from(r)
        seen.update(body=r.body, peer_arrivals=arrivals, retries=retries, served_by=served_by,
                    content_length=r.header_all("content-length"), errors_before=errors0)
        seen["attempts"] = arrivals + (served_by == REAL)
        return seen, rid

    def after_probe(self, gw, peer, name, row, seen, rid):
        expect, problems = row.expect, []
        unaccounted = seen["attempts"] - 1 - seen["retries"]
        if unaccounted > 0:
            problems.append(f"{unaccounted} hidden resend(s): {seen['attempts']} arrivals at backends "
                            f"({seen['peer_arrivals']} at the scripted one), {seen['retries']} counted retries")
        if seen["attempts"] > 3:
            problems.append(f"{seen['attempts']} attempts, more than retry.max_attempts (3)")
        if expect.get("charged") is not None:
            want = expect["charged"]
            if not want:
                # An absence cannot be polled for: a charge would have been
                # recorded well within this time.
                time.sleep(0.2)
            got = h.poll(lambda: charge(gw, name)[0 if want else 1], 1.5 if want else 0, interval=0.1)
            if not got:
                problems.append(f"charged: saw {charge(gw, name)[2]}, expected "
                                f"{'charged (each count >= 1)' if want else 'not charged (all 0)'}")
        if expect.get("recorded_as_error"):
            errors = h.poll(lambda: total_errors(gw) > seen["errors_before"], 1.0, interval=0.1)
            line = access_line(gw, rid, 1.0)
            if not errors:
                problems.append("recorded_as_error: the gateway's /api/stats/1h errors did not grow")
            # A 5xx status says it already; an answer cut after its head
            # needs the error field.
            if line is None or not (re.search(r" error\w*=", line) or re.search(r" status=5\d\d ", line)):
                problems.append(f"recorded_as_error: access log line without an error field or 5xx: {short(line)}")
        if "state" in expect:
            out = lambda: h.states(gw.port).get(name) in expect["state"]  # noqa: E731
            h.poll(out, 3.0, interval=0.1)
            seen["state"] = h.states(gw.port).get(name)
        if "next_on_new_connection" in expect:
            first = next(r.conn.number for r in peer.requests if r.request_id == rid)
            again = row._replace(name=row.name + " again")
            seen2, rid2 = self.probe(gw, peer, again)
            second = [r.conn.number for r in peer.requests if r.request_id == rid2]
            seen["next_on_new_connection"] = bool(second) and second[0] != first
            if seen2["status"] != 200 or seen2["body"] != b"hello":
                problems.append(f"the next request got {seen2['status']} {short(seen2['body'])}")
        return problems

    def test_misbehaving_clients(self):
        backends = {"r1": self.backend("r1"), "r2": self.backend("r2")}
        gateways = Gateways(self, {n: b.port for n, b in backends.items()})
        self.run_table("client", CLIENT_ROWS, lambda _, row: self.client_row(gateways, row, backends))

    def client_row(self, gateways, row, backends):
        gw = gateways.get(row.settings or {})
        ctx = collections.namedtuple("Ctx", "gw r1 r2")(gw, backends["r1"], backends["r2"])
        forwarded0 = self.forwarded(backends)
        charged0 = {name: charges(gw, name) for name in backends}
        watch = Watch(gw)
        seen = row.act(ctx)
        seen["forwarded"] = self.forwarded(backends) - forwarded0
        problems = compare(row.expect, seen)
        if row.expect.get("charged", False) is not None:
            for name in backends:
                time.sleep(0.1)  # an absence cannot be polled for: time for a charge to show
                _, clean, text = charge(gw, name, charged0[name])
                if not clean:
                    problems.append(f"{name} charged: {text}")
        problems += watch.problems()
        if gw.alive():
            status = h.request(gw.port, "GET", "/api/data")[0]
            if status != 200:
                problems.append(f"a normal GET afterwards got {status}")
            states = h.states(gw.port)
            if any(states.get(n) != "up" for n in backends):
                problems.append(f"backends afterwards: {states}")
            # A fresh registration, so this row's harm does not spill into the next.
            if problems:
                for name, b in backends.items():
                    h.unregister(gw.port, name)
                    h.register(gw.port, name, f"http://{h.HOST}:{b.port}")
        return problems

    @staticmethod
    def forwarded(backends):
        """Requests the real backends have answered (their /api/stats)."""
        return sum(h.get_json(b.port, "/api/stats/1h")["requests"] for b in backends.values())


if __name__ == "__main__":
    unittest.main()
