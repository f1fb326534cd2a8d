"""Load test for the API gateway: register the backends once, then GET /api/data.

Run it against a gateway on http://localhost:8000 (the default host, also
pre-filled in the web UI on http://localhost:8089):

    locust -f deploy/locust/locustfile.py                      # web UI
    locust -f deploy/locust/locustfile.py --headless -u 10 -r 2 -t 1m

When a test run starts (Locust's ``test_start`` event), the backends are
registered with ``POST /api/servers``, once per run: by the process that runs
the test, or in distributed mode by the master only, never by the workers and
never once per user. Registering the same server again is a cheap ``200``
(``201`` the first time). Then every simulated user calls ``GET /api/data``
every 1 to 3 seconds.

Environment variables:

``BACKENDS``
    The backends to register, as ``name=url`` pairs separated by commas, e.g.
    ``BACKENDS="server1=http://127.0.0.1:5000,server2=http://127.0.0.1:5001"``.
    Unset or empty: server1..server3 at http://localhost:5000..5002.
    A malformed value stops Locust at start-up with a message saying which
    entry is wrong.
``REGISTER``
    ``true`` (default) registers the backends when a run starts; ``false``
    skips it, for a gateway that already lists its backends (in its settings
    file or from DNS), so that nothing is listed twice.
``GATEWAY_ADMIN_TOKEN``
    When set, registrations send ``Authorization: Bearer <token>`` (needed
    when the gateway's admin API is protected by ``admin.token``).
``LOCUST_FAST_HTTP``
    ``true`` makes the users ``FastHttpUser``\\ s (geventhttpclient), which
    generate several times the requests per second of a CPU core that the
    default ``HttpUser`` (requests) does. Default ``false``.

The target host comes from Locust itself (``-H``/``--host`` or the web UI).
This file imports nothing but Locust and the standard library, so it also
works when mounted on its own, e.g. from a Kubernetes ConfigMap.
"""

import logging
import os
import sys
from urllib.parse import urlsplit

from locust import FastHttpUser, HttpUser, between, events, task
from locust.clients import HttpSession
from locust.runners import WorkerRunner

DEFAULT_BACKENDS = [
    ("server1", "http://localhost:5000"),
    ("server2", "http://localhost:5001"),
    ("server3", "http://localhost:5002"),
]
DEFAULT_HOST = "http://localhost:8000"
REGISTER_NAME = "/api/servers [register]"


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


def parse_bool(name, default):
    """An on/off environment variable; anything else stops Locust at start-up."""
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    sys.exit(f'locustfile: invalid {name}="{os.environ[name]}" (expected true or false)')


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
REGISTER = parse_bool("REGISTER", True)
FAST_HTTP = parse_bool("LOCUST_FAST_HTTP", False)
ADMIN_TOKEN = os.environ.get("GATEWAY_ADMIN_TOKEN", "").strip()


def register_backends(host, request_event, backends=None, token=None):
    """POSTs every backend to ``host``/api/servers. Each registration is a
    request in Locust's statistics (one row, ``REGISTER_NAME``), so a failed
    one counts as a failure (and fails ``--exit-code-on-error``). Returns the
    number that succeeded."""
    backends = BACKENDS if backends is None else backends
    token = ADMIN_TOKEN if token is None else token
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    session = HttpSession(base_url=host, request_event=request_event, user=None)
    done = 0
    for name, url in backends:
        with session.post(
            "/api/servers", json={"name": name, "url": url}, headers=headers,
            name=REGISTER_NAME, catch_response=True, timeout=10,
        ) as response:
            # 201 = registered now, 200 = already registered with the same URL.
            if response.status_code in (200, 201):
                response.success()
                done += 1
            elif response.status_code == 0:
                # No HTTP answer at all (connection refused, timeout, ...).
                response.failure(f"registering {name}={url}: {response.error!r}")
            else:
                response.failure(f"registering {name}={url}: HTTP {response.status_code}: {response.text}")
    return done


@events.test_start.add_listener
def on_test_start(environment, **_kwargs):
    """Registers the backends once per test run. In distributed mode the
    master does it (it fires test_start too) and the workers do not."""
    if isinstance(environment.runner, WorkerRunner):
        return
    if not REGISTER:
        logging.info("locustfile: REGISTER=false, not registering backends")
        return
    host = environment.host or DEFAULT_HOST
    done = register_backends(host, environment.events.request)
    logging.info("locustfile: registered %d of %d backends with %s", done, len(BACKENDS), host)


class ApiUser(FastHttpUser if FAST_HTTP else HttpUser):
    """A client of the gateway: reads data (the backends were registered when the run started)."""

    wait_time = between(1, 3)
    host = DEFAULT_HOST

    @task
    def get_data(self):
        self.client.get("/api/data")
