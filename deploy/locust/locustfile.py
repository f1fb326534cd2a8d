"""Load test for the API gateway: register the backends, then GET /api/data.

Run it against a gateway on http://localhost:8000 (the default host, also
pre-filled in the web UI on http://localhost:8089):

    locust -f deploy/locust/locustfile.py                      # web UI
    locust -f deploy/locust/locustfile.py --headless -u 10 -r 2 -t 1m

Each simulated user first registers the backends with ``POST /api/servers``
(idempotent on the gateway: 201 the first time, 200 when the same server is
registered again), then calls ``GET /api/data`` every 1 to 3 seconds.

Environment variables:

``BACKENDS``
    The backends to register, as ``name=url`` pairs separated by commas, e.g.
    ``BACKENDS="server1=http://127.0.0.1:5000,server2=http://127.0.0.1:5001"``.
    Unset or empty: server1..server3 at http://localhost:5000..5002.
    A malformed value stops Locust at start-up with a message saying which
    entry is wrong.
``GATEWAY_ADMIN_TOKEN``
    When set, registrations send ``Authorization: Bearer <token>`` (needed
    when the gateway's admin API is protected by ``admin.token``).

The target host comes from Locust itself (``-H``/``--host`` or the web UI).
This file imports nothing but Locust and the standard library, so it also
works when mounted on its own, e.g. from a Kubernetes ConfigMap.
"""

import os
import sys
from urllib.parse import urlsplit

from locust import HttpUser, between, task

DEFAULT_BACKENDS = [
    ("server1", "http://localhost:5000"),
    ("server2", "http://localhost:5001"),
    ("server3", "http://localhost:5002"),
]


def parse_backends(spec):
    """Parses ``name=url,name=url`` into ``[(name, url), ...]``.

    Raises ValueError naming the offending entry, so a typo in BACKENDS is a
    clear start-up error instead of a stream of failed registrations.
    """
    backends = []
    seen = set()
    for position, raw in enumerate(spec.split(","), start=1):
        entry = raw.strip()
        if not entry:
            raise ValueError(f"entry {position} is empty")
        name, sep, url = entry.partition("=")
        name, url = name.strip(), url.strip()
        if not sep or not name or not url:
            raise ValueError(f"entry {position} {entry!r} is not of the form name=url")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"entry {position} {entry!r}: {url!r} is not an http(s)://host[:port] URL")
        if name in seen:
            # The gateway would answer 409 Conflict for a second URL under the same name.
            raise ValueError(f"entry {position} {entry!r}: name {name!r} appears twice")
        seen.add(name)
        backends.append((name, url))
    return backends


def backends_from_env():
    spec = os.environ.get("BACKENDS", "").strip()
    if not spec:
        return list(DEFAULT_BACKENDS)
    try:
        return parse_backends(spec)
    except ValueError as err:
        # Exiting at import time stops Locust before any user starts, with
        # this one line instead of a traceback.
        sys.exit(f'locustfile: invalid BACKENDS="{spec}": {err} (expected "name=url,name=url")')


BACKENDS = backends_from_env()
ADMIN_TOKEN = os.environ.get("GATEWAY_ADMIN_TOKEN", "").strip()


class ApiUser(HttpUser):
    """A client of the gateway: registers the backends once, then reads data."""

    wait_time = between(1, 3)
    host = "http://localhost:8000"

    def on_start(self):
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"} if ADMIN_TOKEN else {}
        for name, url in BACKENDS:
            # One stats row for all registrations instead of the raw path.
            with self.client.post(
                "/api/servers",
                json={"name": name, "url": url},
                headers=headers,
                name="/api/servers [register]",
                catch_response=True,
            ) as response:
                # 201 = registered now, 200 = already registered with the same URL.
                if response.status_code in (200, 201):
                    response.success()
                elif response.status_code == 0:
                    # No HTTP answer at all (connection refused, timeout, ...).
                    response.failure(f"registering {name}={url}: {response.error!r}")
                else:
                    response.failure(f"registering {name}={url}: HTTP {response.status_code}: {response.text}")

    @task
    def get_data(self):
        self.client.get("/api/data")
