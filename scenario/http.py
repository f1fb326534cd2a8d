"""HTTP/1.1 requests to the services (JSON bodies, bearer tokens), for the
runner's own calls: registration, the fault API and /api/stats one
connection per request; /metrics once a second over one kept-alive
connection (`KeptAlive`), which halves what a sample costs the gateway
beyond rendering the page. Standard library only; depends on nothing else.
"""

import http.client
import json
import urllib.parse


def request(method, url, body=None, token=None, timeout=5.0):
    """(status, body bytes); an HTTP error status is an answer like any other.
    Raises OSError (refused, reset, timed out) when there is no answer."""
    u = urllib.parse.urlsplit(url)
    if u.scheme not in ("http", "https"):
        raise ValueError(f"not an http(s) URL: {url}")
    cls = http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection
    conn = cls(u.hostname, u.port, timeout=timeout)
    headers = {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, (u.path or "/") + (f"?{u.query}" if u.query else ""), body=data, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    except http.client.HTTPException as e:
        raise OSError(f"bad HTTP answer: {e!r}") from None
    finally:
        conn.close()


class KeptAlive:
    """GETs of one URL over one connection, opened again when it fails
    (the service closed it, or was restarted)."""

    def __init__(self, url, timeout):
        u = urllib.parse.urlsplit(url)
        if u.scheme not in ("http", "https"):
            raise ValueError(f"not an http(s) URL: {url}")
        self.cls = http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection
        self.host, self.port, self.timeout = u.hostname, u.port, timeout
        self.target = (u.path or "/") + (f"?{u.query}" if u.query else "")
        self.conn = None

    def get(self):
        """(status, body bytes), as `request`; one new connection is tried
        when the kept one fails."""
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = self.cls(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request("GET", self.target)
                response = self.conn.getresponse()
                return response.status, response.read()
            except (OSError, http.client.HTTPException) as e:
                self.close()
                if attempt == 2:
                    raise OSError(f"no answer: {e!r}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def get_json(url, timeout=5.0):
    status, body = request("GET", url, timeout=timeout)
    if status != 200:
        raise OSError(f"GET {url}: HTTP {status}: {body[:200]!r}")
    try:
        return json.loads(body)
    except ValueError:
        raise OSError(f"GET {url}: not JSON: {body[:200]!r}") from None


def error_text(status, body):
    """The `message` of a JSON error answer, else the start of the body."""
    try:
        doc = json.loads(body)
        err = doc.get("error")
        if isinstance(err, dict):
            return f"HTTP {status}: {err.get('message') or err.get('code')}"
        return f"HTTP {status}: {doc.get('message') or err}"
    except (ValueError, AttributeError):
        return f"HTTP {status}: {body[:200].decode(errors='replace')}"
