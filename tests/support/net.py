"""Loopback ports and HTTP on them: free ports, one request per connection,
and the gateway's admin API. Depends on nothing else in support.

Ports come from 20000-29999: below Linux's ephemeral range (32768 and up),
so the tests' own outgoing connections can never take a port a service is
about to listen on (or is restarted on), and above the ports a running
`make run` uses (5000-5002, 8000).
"""

import http.client
import json
import random
import socket
import threading
import urllib.parse

HOST = "127.0.0.1"
LOW, HIGH = 20000, 29999

_taken = set()
_taken_lock = threading.Lock()


def port_free(port, hosts=(HOST,)):
    """Whether `port` can be bound on each of `hosts` and nothing answers on
    the first."""
    for host in hosts:
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                return False
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((hosts[0], port)) != 0


def free_port(hosts=(HOST,)):
    """A free port on every one of `hosts`, never handed out twice by this
    process."""
    for _ in range(500):
        port = random.randint(LOW, HIGH)
        with _taken_lock:
            if port in _taken:
                continue
            if port_free(port, hosts):
                _taken.add(port)
                return port
    raise AssertionError(f"no free port in {LOW}-{HIGH} on {', '.join(hosts)}")


def free_ports(n, hosts=(HOST,)):
    return [free_port(hosts) for _ in range(n)]


def request(port, method="GET", path="/", body=None, headers=None, timeout=5.0, host=HOST):
    """One request on a fresh connection to host:port; a dict or list body
    is sent as JSON. Returns (status, headers with lower-case names, body
    bytes); an HTTP error status is an answer like any other."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        hdrs = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        conn.close()


def fetch(url, method="GET", body=None, headers=None, timeout=5.0):
    """request() for a URL (http:// only: every peer here is on loopback)."""
    u = urllib.parse.urlsplit(url)
    if u.scheme != "http":
        raise ValueError(f"only http:// URLs: {url}")
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    return request(u.port or 80, method, path, body, headers, timeout, host=u.hostname)


def get_json(port, path, timeout=5.0, host=HOST):
    status, _, body = request(port, "GET", path, timeout=timeout, host=host)
    if status != 200:
        raise AssertionError(f"GET {path}: HTTP {status}: {body[:300]!r}")
    return json.loads(body)


def _auth(token):
    return {"Authorization": f"Bearer {token}"} if token else {}


def register(port, name, url, token=None, weight=None, host=HOST):
    """POST /api/servers; fails unless the gateway answers 201."""
    body = {"name": name, "url": url}
    if weight is not None:
        body["weight"] = weight
    status, _, data = request(port, "POST", "/api/servers", body=body, headers=_auth(token), host=host)
    if status != 201:
        raise AssertionError(f"register {name} -> {url}: HTTP {status}: {data!r}")


def unregister(port, name, token=None, host=HOST):
    """DELETE /api/servers/{name}; fails unless the gateway answers 204."""
    status, _, data = request(port, "DELETE", f"/api/servers/{name}", headers=_auth(token), host=host)
    if status != 204:
        raise AssertionError(f"delete {name}: HTTP {status}: {data!r}")


def servers(port, host=HOST):
    """The gateway's registry, GET /api/servers, as a list of dicts."""
    return get_json(port, "/api/servers", host=host)["servers"]
