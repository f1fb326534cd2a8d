"""A table of malformed admin requests against the
release gateway, started with an admin token, admin.max_body_bytes = 4096 and
http.max_header_bytes = 16384.

Each row is sent on its own raw socket, byte for byte as written, and must get
its documented status (and, for JSON errors, its `error.code`). Afterwards:
no answer was a 5xx other than the one row documents (the 501 RFC 9112 asks
for a transfer coding the server does not implement), the process is alive
and still serving, nothing it printed contains "panicked", and the registry
(names, urls, weights, states, sources) is exactly what it was before.
"""

import json
import unittest

import harness as h

TOKEN = "s3cret-token-for-tests"
MAX_BODY = 4096
MAX_HEADER = 16384
AUTH = object()  # "send the right token"

LOCAL = "http://127.0.0.1:1"  # a destination the policy allows


def js(**fields):
    return json.dumps(fields).encode()


def row(label, method, path, body=None, status=400, code=None, headers=None, auth=AUTH, raw=None):
    return {
        "label": label,
        "method": method,
        "path": path,
        "body": body,
        "status": status,
        "code": code,
        "headers": headers or [],
        "auth": auth,
        "raw": raw,
    }


def post(label, body, status=400, code="invalid_body", **kw):
    return row(label, "POST", "/api/servers", body, status, code, **kw)


def table():
    rows = []
    add = rows.append

    # --- invalid JSON
    for label, body in [
        ("unterminated object", b"{"),
        ("unterminated string", b'{"name": "x", "url": "http://127.0.0.1:1'),
        ("missing comma", b'{"name": "x" "url": "http://127.0.0.1:1"}'),
        ("single quotes", b"{'name': 'x', 'url': 'http://127.0.0.1:1'}"),
        ("trailing comma", b'{"name": "x", "url": "http://127.0.0.1:1",}'),
        ("form encoding", b"name=x&url=http%3A%2F%2F127.0.0.1%3A1"),
        ("xml", b"<server><name>x</name></server>"),
        ("null", b"null"),
        ("true", b"true"),
        ("number", b"42"),
        ("string", b'"server1"'),
        ("second object after the first", b'{"name": "x", "url": "http://127.0.0.1:1"} {}'),
        ("garbage after the object", b'{"name": "x", "url": "http://127.0.0.1:1"}garbage'),
        ("empty body", b""),
        ("white space only", b"  \r\n\t "),
        ("invalid UTF-8 in a string", b'{"name": "\xff\xfe", "url": "http://127.0.0.1:1"}'),
        ("UTF-8 byte order mark", b'\xef\xbb\xbf{"name": "x", "url": "http://127.0.0.1:1"}'),
        ("raw control character in a string", b'{"name": "a\x01b", "url": "http://127.0.0.1:1"}'),
        ("raw newline in a string", b'{"name": "a\nb", "url": "http://127.0.0.1:1"}'),
        ("NaN weight", b'{"name": "x", "url": "http://127.0.0.1:1", "weight": NaN}'),
        ("comment", b'/* hi */ {"name": "x", "url": "http://127.0.0.1:1"}'),
        ("duplicate key", b'{"name": "x", "name": "y", "url": "http://127.0.0.1:1"}'),
        ("deeply nested value", b'{"name": ' + b"[" * 1900 + b"]" * 1900 + b', "url": "http://127.0.0.1:1"}'),
        ("lone surrogate escape", b'{"name": "\\ud800", "url": "http://127.0.0.1:1"}'),
        ("bad escape", b'{"name": "\\x41", "url": "http://127.0.0.1:1"}'),
    ]:
        add(post(f"invalid JSON: {label}", body))

    # --- wrong types
    for label, fields in [
        ("name is a number", {"name": 123, "url": LOCAL}),
        ("name is null", {"name": None, "url": LOCAL}),
        ("name is a bool", {"name": True, "url": LOCAL}),
        ("name is a list", {"name": ["a"], "url": LOCAL}),
        ("name is an object", {"name": {"a": 1}, "url": LOCAL}),
        ("url is a number", {"name": "x", "url": 5000}),
        ("url is null", {"name": "x", "url": None}),
        ("url is a list", {"name": "x", "url": [LOCAL]}),
        ("url is an object", {"name": "x", "url": {"host": "127.0.0.1", "port": 1}}),
        ("weight is a string", {"name": "x", "url": LOCAL, "weight": "3"}),
        ("weight is negative", {"name": "x", "url": LOCAL, "weight": -1}),
        ("weight is a fraction", {"name": "x", "url": LOCAL, "weight": 1.5}),
        ("weight is a float", {"name": "x", "url": LOCAL, "weight": 1e3}),
        ("weight overflows u32", {"name": "x", "url": LOCAL, "weight": 2**32}),
        ("weight overflows u64", {"name": "x", "url": LOCAL, "weight": 10**20}),
        ("weight is a bool", {"name": "x", "url": LOCAL, "weight": True}),
        ("weight is a list", {"name": "x", "url": LOCAL, "weight": [1]}),
    ]:
        add(post(f"wrong type: {label}", json.dumps(fields).encode()))
    add(post("wrong type: a list of objects", json.dumps([{"name": "x", "url": LOCAL}]).encode()))

    # --- missing and unknown fields
    for label, fields in [
        ("missing: everything", {}),
        ("missing: url", {"name": "x"}),
        ("missing: name", {"url": LOCAL}),
        ("missing: both, weight only", {"weight": 1}),
        ("unknown: extra", {"name": "x", "url": LOCAL, "extra": 1}),
        ("unknown: Name (case)", {"name": "x", "url": LOCAL, "Name": "x"}),
        ("unknown: state", {"name": "x", "url": LOCAL, "state": "up"}),
        ("unknown: health_check", {"name": "x", "url": LOCAL, "health_check": "/x"}),
    ]:
        add(post(label, json.dumps(fields).encode()))

    # --- bad and unsupported urls: 400 invalid_field
    for url in [
        "",
        "localhost:5000",
        "127.0.0.1:5000",
        "/relative/path",
        "ftp://127.0.0.1/",
        "file:///etc/passwd",
        "gopher://127.0.0.1:70/",
        "ws://127.0.0.1:5000/",
        "javascript:alert(1)",
        "data:text/plain,hi",
        "unix:///var/run/backend.sock",
        "http://",
        "http://:5000",
        "http://user:pass@127.0.0.1:5000",
        "http://user@127.0.0.1:5000",
        "http://127.0.0.1:5000/?a=1",
        "http://127.0.0.1:5000/#frag",
        "http://127.0.0.1:99999",
        "http://127.0.0.1:-1",
        "http://[::1",
        "http://exa mple.local",
        "http://256.256.256.256/",
        "http://[fe80::1%25eth0]/",
        "http://127.0.0.1:5000/" + "a" * 2100,
        # A host the URL parser reads as another one than a person does.
        "http:///127.0.0.1:5000",
        "http://0/",
        "http://2852039166/",
        "http://0xa9fea9fe/",
        "http://0251.0376.0251.0376/",
        # Control characters that would reach a log line.
        "http://127.0.0.1:5000/\n2026-01-01T00:00:00Z  INFO forged",
        "http://127.0.0.1:5000/\x1b[2J",
    ]:
        add(post(f"bad url {url[:40]!r}", js(name="x", url=url), code="invalid_field"))

    # --- destinations the registration policy refuses: 403
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://169.254.169.254:80",
        "http://[fe80::1]/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://METADATA.GOOGLE.INTERNAL./",
        "http://metadata/",
        "http://instance-data/",
        "http://instance-data.ec2.internal/",
        "http://8.8.8.8/",
        "https://8.8.8.8:443/",
        "http://1.1.1.1:5000",
        "http://0.0.0.0:5000",
        "http://[::]/",
        "http://[::ffff:169.254.169.254]/",
        "http://[::ffff:8.8.8.8]/",
        "http://169.254.169.254.nip.io/",
        "http://example.com/",
        "http://localhost.evil.example/",
        "http://224.0.0.1/",
        "http://[ff02::1]/",
        "http://[fd00:ec2::254]/",
        "http://100.100.100.200/",
        "http://[2001:4860:4860::8888]/",
        "http://255.255.255.255/",
    ]:
        add(post(f"refused destination {url[:45]}", js(name="x", url=url), 403, "destination_not_allowed"))

    # --- long and odd names: 400 invalid_field
    for name in [
        "",
        "a" * 64,
        "a" * 3000,
        "a b",
        "a/b",
        "../etc",
        "s\u00e9rver",
        "\u540d\u524d",
        "\U0001f600",
        "a\u0000b",
        "a\nb",
        "a\tb",
        "\u202eevil",
        "a\u200bb",
        "a:b",
        "a@b",
        "<script>",
        "a%20b",
        "\uff53\uff45\uff52\uff56\uff45\uff52",
        "a;rm -rf",
    ]:
        add(post(f"bad name {name[:20]!r}", js(name=name, url=LOCAL), code="invalid_field"))
    for weight in (0, 1001, 2**32 - 1):
        add(post(f"weight {weight} out of range", js(name="x", url=LOCAL, weight=weight), code="invalid_field"))

    # --- oversized bodies: 413; the limit itself is still accepted as a size
    pad = lambda n: (b'{"zz": 1}' + b" " * n)[:n]  # noqa: E731
    add(post("body of exactly max_body_bytes (unknown field)", pad(MAX_BODY)))
    add(post("body one byte over max_body_bytes", pad(MAX_BODY + 1), 413, "payload_too_large"))
    add(post("100 KB body", b" " * 100_000, 413, "payload_too_large"))
    add(post("1 MB valid JSON", js(name="x", url=LOCAL + "/" + "a" * 1_000_000), 413, "payload_too_large"))
    add(row("PUT 5000 byte body", "PUT", "/api/servers/x", b" " * 5000, 413, "payload_too_large"))
    add(row("PATCH 5000 byte body", "PATCH", "/api/servers/server1", b" " * 5000, 413, "payload_too_large"))
    add(
        row(
            "chunked 8 KB body",
            "POST",
            "/api/servers",
            status=413,
            code="payload_too_large",
            raw=lambda port: request_head("POST", "/api/servers", port, [("Transfer-Encoding", "chunked")])
            + b"1000\r\n"
            + b" " * 4096
            + b"\r\n1000\r\n"
            + b" " * 4096
            + b"\r\n0\r\n\r\n",
        )
    )
    add(
        row(
            "Content-Length of a terabyte, no body sent",
            "POST",
            "/api/servers",
            status=413,
            code="payload_too_large",
            raw=lambda port: request_head("POST", "/api/servers", port, [("Content-Length", str(10**12))]),
        )
    )

    # --- oversized request heads: 431 from hyper, before any route
    big = "a" * (MAX_HEADER + 4000)
    for label, method, path, headers in [
        ("one 20 KB header", "GET", "/api/servers", [("X-Big", big)]),
        ("200 headers of 100 bytes", "GET", "/api/servers", [(f"X-H{i}", "v" * 100) for i in range(200)]),
        ("150 tiny headers (over hyper's 100)", "GET", "/api/servers", [(f"X-H{i}", "v") for i in range(150)]),
        ("20 KB request target", "GET", "/api/servers/" + big, []),
        ("20 KB Authorization", "POST", "/api/servers", [("Authorization", "Bearer " + big)]),
        ("20 KB Cookie on a registration", "POST", "/api/servers", [("Cookie", big)]),
    ]:
        add(
            row(
                f"oversized head: {label}",
                method,
                path,
                js(name="x", url=LOCAL) if method == "POST" else None,
                431,
                None,
                headers=headers,
                auth=None if any(k == "Authorization" for k, _ in headers) else AUTH,
            )
        )

    # --- wrong methods: 405
    for method, path in [
        ("DELETE", "/api/servers"),
        ("PUT", "/api/servers"),
        ("PATCH", "/api/servers"),
        ("POST", "/api/servers/server1"),
        ("OPTIONS", "/api/servers"),
        ("OPTIONS", "/api/servers/server1"),
        ("TRACE", "/api/servers"),
        ("FOO", "/api/servers"),
        ("PURGE", "/api/servers/server1"),
        ("POST", "/api/stats/1m"),
        ("DELETE", "/api/stats/1m"),
        ("POST", "/healthz"),
        ("POST", "/readyz"),
        ("POST", "/metrics"),
        ("PUT", "/metrics"),
    ]:
        add(row(f"wrong method {method} {path}", method, path, js(name="x", url=LOCAL), 405, "method_not_allowed"))
    # HEAD is GET without the body (RFC 9110), not a wrong method.
    add(row("HEAD /api/servers answers as GET does", "HEAD", "/api/servers", None, 200, None))

    # --- missing and wrong tokens: 401 / 403, valid bodies otherwise
    good = js(name="intruder", url=LOCAL)
    for label, value, status, code in [
        ("no Authorization", None, 401, "unauthorized"),
        ("wrong token", "Bearer wrong", 403, "forbidden"),
        ("Bearer without a token", "Bearer", 401, "unauthorized"),
        ("Bearer and spaces", "Bearer    ", 401, "unauthorized"),
        ("Basic credentials", "Basic YWRtaW46YWRtaW4=", 401, "unauthorized"),
        ("token without a scheme", TOKEN, 401, "unauthorized"),
        ("scheme in capitals", "BEARER " + TOKEN, 401, "unauthorized"),
        ("Token scheme", "Token " + TOKEN, 401, "unauthorized"),
        ("token plus one character", f"Bearer {TOKEN}x", 403, "forbidden"),
        ("token minus its last character", f"Bearer {TOKEN[:-1]}", 403, "forbidden"),
        ("token with a space inside", f"Bearer {TOKEN[:4]} {TOKEN[4:]}", 403, "forbidden"),
        ("token in a different case", f"Bearer {TOKEN.upper()}", 403, "forbidden"),
        ("two tokens", f"Bearer {TOKEN}, Bearer {TOKEN}", 403, "forbidden"),
    ]:
        add(post(f"auth: {label}", good, status, code, auth=value))
    for method, path, body in [
        ("PUT", "/api/servers/server1", js(url=LOCAL)),
        ("PATCH", "/api/servers/server1", js(state="draining")),
        ("DELETE", "/api/servers/server1", None),
    ]:
        add(row(f"auth: {method} without a token", method, path, body, 401, "unauthorized", auth=None))
        add(row(f"auth: {method} with a wrong token", method, path, body, 403, "forbidden", auth="Bearer nope"))
    add(post("auth: no token and an invalid body", b"{", 401, "unauthorized", auth=None))
    add(post("auth: no token and an oversized body", b" " * 10_000, 401, "unauthorized", auth=None))

    # --- PUT: name mismatches and bad path names
    for label, path, body, status, code in [
        ("body name differs", "/api/servers/server1", js(name="server2", url=LOCAL), 400, "invalid_body"),
        ("body name empty", "/api/servers/server1", js(name="", url=LOCAL), 400, "invalid_body"),
        ("body name in capitals", "/api/servers/server1", js(name="SERVER1", url=LOCAL), 400, "invalid_body"),
        ("new name, body name differs", "/api/servers/newone", js(name="other", url=LOCAL), 400, "invalid_body"),
        ("space in path name", "/api/servers/bad%20name", js(url=LOCAL), 400, "invalid_field"),
        ("64 character path name", "/api/servers/" + "a" * 64, js(url=LOCAL), 400, "invalid_field"),
        ("unicode path name", "/api/servers/%C3%A9", js(url=LOCAL), 400, "invalid_field"),
        ("refused destination", "/api/servers/server1", js(url="http://169.254.169.254/"), 403, "destination_not_allowed"),
        ("unsupported scheme", "/api/servers/server1", js(url="ftp://127.0.0.1/"), 400, "invalid_field"),
        ("weight 0", "/api/servers/server1", js(url=LOCAL, weight=0), 400, "invalid_field"),
        ("missing url", "/api/servers/server1", js(weight=2), 400, "invalid_body"),
        ("unknown field", "/api/servers/server1", js(url=LOCAL, foo=1), 400, "invalid_body"),
        ("empty body", "/api/servers/server1", b"", 400, "invalid_body"),
    ]:
        add(row(f"PUT: {label}", "PUT", path, body, status, code))

    # --- PATCH: bad states
    for label, body in [
        ("down", js(state="down")),
        ("ejected", js(state="ejected")),
        ("UP in capitals", js(state="UP")),
        ("Draining capitalised", js(state="Draining")),
        ("empty string", js(state="")),
        ("null", js(state=None)),
        ("number", js(state=1)),
        ("list", js(state=["up"])),
        ("object", js(state={"value": "up"})),
        ("missing", js()),
        ("extra field", js(state="up", weight=2)),
        ("form encoded", b"state=up"),
        ("empty body", b""),
    ]:
        add(row(f"PATCH state: {label}", "PATCH", "/api/servers/server1", body, 400, "invalid_body"))
    add(row("PATCH unknown server", "PATCH", "/api/servers/nope", js(state="draining"), 404, "not_found"))
    add(row("PATCH unknown server, bad state", "PATCH", "/api/servers/nope", js(state="down"), 400, "invalid_body"))

    # --- unknown servers and routes, conflicts
    add(row("GET unknown server", "GET", "/api/servers/nope", None, 404, "not_found", auth=None))
    add(row("DELETE unknown server", "DELETE", "/api/servers/nope", None, 404, "not_found"))
    add(row("GET below a server", "GET", "/api/servers/server1/extra", None, 404, "not_found", auth=None))
    add(row("unknown stats window", "GET", "/api/stats/2m", None, 404, "unknown_window", auth=None))
    add(post("conflict: other url", js(name="server1", url=LOCAL), 409, "conflict"))
    add(post("conflict: other weight", None, 409, "conflict"))  # body filled in with server1's url

    # --- broken HTTP framing: hyper's 400, or the body reader's
    add(
        row(
            "bad chunk size",
            "POST",
            "/api/servers",
            status=400,
            code="invalid_body",
            raw=lambda port: request_head("POST", "/api/servers", port, [("Transfer-Encoding", "chunked")])
            + b"zz\r\nhello\r\n0\r\n\r\n",
        )
    )
    for label, payload in [
        ("Content-Length not a number", b"POST /api/servers HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"),
        ("two different Content-Lengths", b"POST /api/servers HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"),
        ("garbage request line", b"HELLO\r\n\r\n"),
        ("space in a header name", b"GET /api/servers HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n"),
        ("header without a colon", b"GET /api/servers HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n"),
        ("unsupported HTTP version", b"GET /api/servers HTTP/9.9\r\nHost: x\r\n\r\n"),
        ("NUL in the request target", b"GET /api/servers/\x00 HTTP/1.1\r\nHost: x\r\n\r\n"),
    ]:
        add(row(f"framing: {label}", "RAW", "-", status=400, code=None, raw=lambda port, p=payload: p))
    # HTTP/1.1 needs exactly one Host (RFC 9112 3.2); a change without one is
    # refused before the admin API sees it, token or not.
    body = js(name="hostless", url=LOCAL)
    for label, host_lines, code in [
        ("no Host", "", "missing_host"),
        ("two Hosts", "Host: a\r\nHost: b\r\n", "invalid_host"),
    ]:
        payload = (
            f"POST /api/servers HTTP/1.1\r\n{host_lines}Authorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode() + body
        add(row(f"framing: {label}", "RAW", "-", status=400, code=code, raw=lambda port, p=payload: p))
    # A body coded with anything but one chunked (RFC 9112 6.1): the gateway
    # would have to drop the other codings while re-framing it, so it refuses.
    for label, codings, status, code in [
        ("gzip under chunked", "gzip, chunked", 501, "unsupported_transfer_coding"),
        ("chunked twice", "chunked, chunked", 400, "invalid_transfer_encoding"),
    ]:
        payload = (
            f"POST /api/servers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nTransfer-Encoding: {codings}\r\nConnection: close\r\n\r\n"
            f"{len(body):x}\r\n"
        ).encode() + body + b"\r\n0\r\n\r\n"
        add(row(f"framing: {label}", "RAW", "-", status=status, code=code, raw=lambda port, p=payload: p))
    return rows


def request_head(method, path, port, headers, auth=AUTH):
    lines = [f"{method} {path} HTTP/1.1", f"Host: {h.HOST}:{port}", "Connection: close"]
    if auth is AUTH:
        lines.append(f"Authorization: Bearer {TOKEN}")
    elif auth is not None:
        lines.append(f"Authorization: {auth}")
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")


def encode(r, port):
    if r["raw"] is not None:
        return r["raw"](port)
    headers = list(r["headers"])
    if r["body"] is not None:
        headers.append(("Content-Length", str(len(r["body"]))))
    return request_head(r["method"], r["path"], port, headers, r["auth"]) + (r["body"] or b"")


def registry_view(port):
    """What must not change: everything but the live counters and timestamps."""
    keep = ("name", "url", "weight", "state", "source")
    listed = [{k: s[k] for k in keep} for s in h.servers(port)]
    one_by_one = [{k: h.get_json(port, f"/api/servers/{s['name']}")[k] for k in keep} for s in listed]
    return listed, one_by_one


class BadInput(h.ProcessTest):
    def test_4_malformed_admin_requests(self):
        b1 = self.backend("b1")
        b2 = self.backend("b2")
        gw = self.gateway(
            settings={
                "admin.token": TOKEN,
                "admin.max_body_bytes": MAX_BODY,
                "http.max_header_bytes": MAX_HEADER,
            },
        )
        server1_url = f"http://{h.HOST}:{b1.port}"
        h.register(gw.port, "server1", server1_url, token=TOKEN, weight=2)
        h.register(gw.port, "server2", f"http://{h.HOST}:{b2.port}", token=TOKEN)
        before = registry_view(gw.port)
        before_raw = h.request(gw.port, "GET", "/api/servers")[2]

        rows = table()
        for r in rows:
            if r["label"] == "conflict: other weight":
                r["body"] = js(name="server1", url=server1_url, weight=5)
        self.assertGreaterEqual(len(rows), 100)

        mismatches, statuses = [], {}
        for r in rows:
            status, headers, body, raw = h.raw_exchange(gw.port, encode(r, gw.port), timeout=5)
            statuses[status] = statuses.get(status, 0) + 1
            problem = None
            if status is None:
                problem = f"no answer ({raw[:80]!r})"
            elif status >= 500 and status != r["status"]:
                problem = f"5xx: {status} {body[:200]!r}"
            elif status != r["status"]:
                problem = f"status {status}, expected {r['status']}: {body[:200]!r}"
            elif r["code"] is not None:
                try:
                    error = json.loads(body)["error"]
                    if error["code"] != r["code"] or not error["message"]:
                        problem = f"code {error['code']!r}, expected {r['code']!r}"
                except (ValueError, KeyError, TypeError):
                    problem = f"not a JSON error: {body[:200]!r}"
            if status == 401 and headers.get("www-authenticate") != "Bearer":
                problem = f"401 without 'WWW-Authenticate: Bearer': {headers}"
            if status == 405:
                allow = [m.strip() for m in headers.get("allow", "").split(",") if m.strip()]
                if not allow or r["method"] in allow:
                    problem = f"405 with Allow {headers.get('allow')!r} for {r['method']}"
            if problem:
                mismatches.append(f"{r['label']}: {problem}")

        after = registry_view(gw.port)
        after_raw = h.request(gw.port, "GET", "/api/servers")[2]
        alive = gw.alive()
        healthz = h.request(gw.port, "GET", "/healthz")[0] if alive else None
        h.summary(
            "4 bad input",
            f"{len(rows)} malformed requests, answers by status: "
            f"{dict(sorted((k or 0, v) for k, v in statuses.items()))}; {len(mismatches)} not as documented; "
            f"gateway alive: {alive} (/healthz {healthz}); registry unchanged: {before == after} "
            f"({len(before[0])} servers; /api/servers {len(before_raw)} -> {len(after_raw)} bytes)",
        )
        self.assertEqual(mismatches, [], "\n".join(mismatches))
        self.assertTrue(alive, gw.tail())
        self.assertEqual(healthz, 200)
        self.assertEqual(before, after, "a refused request changed the registry")
        self.assertNotIn("panicked", gw.output())


if __name__ == "__main__":
    unittest.main()
