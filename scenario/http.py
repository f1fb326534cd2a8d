"""HTTP/1.1 requests to the services (one connection per request, JSON
bodies, bearer tokens), for the runner's own calls: registration, the fault
API, /metrics and /api/stats. Standard library only; depends on nothing else.
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
