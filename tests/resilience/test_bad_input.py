"""Every request of tests/data/bad_requests.json (200+ malformed admin
requests, and requests refused before any route) replayed against the
release gateway, each on its own raw socket, byte for byte as the table
writes it.

What each one must be answered is checked on an in-process gateway by
services/gateway/tests/bad_requests.rs; here it is the release process that
is checked: every request got an answer, none a 5xx other than the one a row
documents (the 501 for a transfer coding the server does not implement), the
process is alive and still serving, nothing it printed contains "panicked",
its log gained no raw control character and no forged line (some rows try to
write them), and the registry (names, urls, weights, states, sources) is
exactly what it was before.
"""

import json
import unittest

import harness as h

TABLES = json.loads((h.ROOT / "tests" / "data" / "bad_requests.json").read_text())


def text(value):
    """A text value of the table as bytes: a string, or a list of pieces
    (strings, {"repeat": s, "times": n}, {"hex": bytes})."""
    if isinstance(value, str):
        return value.encode()
    out = b""
    for piece in value:
        if isinstance(piece, str):
            out += piece.encode()
        elif "repeat" in piece:
            out += piece["repeat"].encode() * piece["times"]
        else:
            out += bytes.fromhex(piece["hex"])
    return out


def admin_request(row, token):
    """The bytes an `admin` row sends (the table's `about` says how)."""
    if "raw" in row:
        return text(row["raw"])
    lines = [row["method"].encode() + b" " + text(row["path"]) + b" HTTP/1.1", b"Host: gw", b"Connection: close"]
    if "auth" not in row:
        lines.append(f"Authorization: Bearer {token}".encode())
    elif row["auth"] is not None:
        lines.append(f"Authorization: {row['auth']}".encode())
    headers = row.get("headers", [])
    if isinstance(headers, dict):
        headers = [(f"{headers['name']}{i}", headers["value"]) for i in range(headers["count"])]
    lines += [name.encode() + b": " + text(value) for name, value in headers]
    body = None
    if "json" in row:
        body = json.dumps(row["json"], separators=(",", ":")).encode()
    elif "body" in row:
        body = text(row["body"])
    if body is not None:
        lines.append(f"Content-Length: {len(body)}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")


def requests(token):
    """(label, payload, documented statuses) of every row of both tables."""
    for row in TABLES["admin"]["rows"]:
        yield row["label"], admin_request(row, token), {row["status"]}
    refused = TABLES["refused_before_routing"]
    for row in refused["rows"]:
        statuses = row["status"] if isinstance(row["status"], list) else [row["status"]]
        yield row["label"], text(row["raw"]) + refused["then"].encode(), set(statuses)


def registry_view(port):
    """What must not change: everything but the live counters and timestamps."""
    keep = ("name", "url", "weight", "state", "source")
    listed = [{k: s[k] for k in keep} for s in h.servers(port)]
    one_by_one = [{k: h.get_json(port, f"/api/servers/{s['name']}")[k] for k in keep} for s in listed]
    return listed, one_by_one


class BadInput(h.ProcessTest):
    def test_4_malformed_admin_requests(self):
        table = TABLES["admin"]
        token = table["settings"]["admin.token"]
        gw = self.gateway(settings={**table["settings"], "log.access_log": "true"})
        for server in table["servers"]:
            h.register(gw.port, server["name"], server["url"], token=token, weight=server.get("weight"))
        before = registry_view(gw.port)
        before_raw = h.request(gw.port, "GET", "/api/servers")[2]
        log_at = len(gw.stdout_bytes())

        rows = list(requests(token))
        self.assertGreaterEqual(len(rows), 200)
        problems, statuses = [], {}
        for label, payload, documented in rows:
            status, _, body, raw = h.raw_exchange(gw.port, payload, timeout=5)
            statuses[status] = statuses.get(status, 0) + 1
            if status is None:
                problems.append(f"{label}: no answer ({raw[:80]!r})")
            elif status >= 500 and status not in documented:
                problems.append(f"{label}: 5xx: {status} {body[:200]!r}")

        after = registry_view(gw.port)
        after_raw = h.request(gw.port, "GET", "/api/servers")[2]
        alive = gw.alive()
        healthz = h.request(gw.port, "GET", "/healthz")[0] if alive else None
        log = h.log_problems(gw.stdout_bytes()[log_at:])
        h.summary(
            "4 bad input",
            f"{len(rows)} malformed requests, answers by status: "
            f"{dict(sorted((k or 0, v) for k, v in statuses.items()))}; {len(problems)} unanswered or an "
            f"undocumented 5xx; log problems: {len(log)}; gateway alive: {alive} (/healthz {healthz}); "
            f"registry unchanged: {before == after} ({len(before[0])} servers; /api/servers "
            f"{len(before_raw)} -> {len(after_raw)} bytes)",
        )
        self.assertEqual(problems, [], "\n".join(problems))
        self.assertEqual(log, [], "\n".join(log))
        self.assertTrue(alive, gw.tail())
        self.assertEqual(healthz, 200)
        self.assertEqual(before, after, "a refused request changed the registry")
        self.assertNotIn("panicked", gw.output())


if __name__ == "__main__":
    unittest.main()
