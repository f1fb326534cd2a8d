"""The live /dashboard pages of the release gateway and backend, in headless
Chromium driven over the DevTools protocol (cdp.py), under a small bounded
load on loopback:

- the files: a strict Content-Security-Policy, nosniff, frame-ancestors
  'none', content types and caching headers; page weight under 200 KB;
- the gateway's page loads with no console error, asks only its own origin,
  and its charts hold data;
- backend names and URLs are shown as text (the most hostile ones the
  registration rules let through);
- an action refused by the API (wrong token) shows the API's message; a
  drain done from the page shows in /api/servers;
- a backend killed under load shows down or ejected on the page within
  seconds, its row marked as changed; an unreachable gateway is said so;
- on a gateway with `admin.listen`, the page is served on both ports and
  offers changes only on the admin one;
- the backend's page shows its traffic and the faults in force;
- a page opened mid-load draws the last minute at once, from the gateway's
  per-bucket `series`.

Screenshots go to target/dashboard/.
"""

import http.client
import json
import re
import signal
import sys
import threading
import time
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import support  # noqa: E402
from cdp import Browser  # noqa: E402

OUT = support.ROOT / "target" / "dashboard"
TOKEN = "dashboard-test-token"
MAX_WEIGHT = 200 * 1024
# What the API lets through of a hostile registration: names are
# [A-Za-z0-9._-] (".." is the nastiest: a dot segment in a URL path), and a
# URL keeps ' ; & ( ) while < > " are percent-encoded. "&lt;img ...&gt;"
# would turn into an element if the page ever wrote it as HTML.
HOSTILE_NAME = ".."
HOSTILE_PATH = "/'&lt;img/src=x/onerror=window.pwned=1&gt;;alert(1)"


def auth(token=TOKEN):
    return {"Authorization": f"Bearer {token}"}


class Load:
    """GET /api/data at about `rate` per second on one kept-alive connection,
    until stop() or max_seconds."""

    def __init__(self, port, rate=40, max_seconds=150):
        self.port, self.rate, self.max_seconds = port, rate, max_seconds
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(10)

    def _run(self):
        conn, deadline, interval = None, time.monotonic() + self.max_seconds, 1 / self.rate
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                conn = conn or http.client.HTTPConnection(support.HOST, self.port, timeout=5)
                conn.request("GET", "/api/data")
                conn.getresponse().read()
                self.sent += 1
            except (OSError, http.client.HTTPException):
                if conn is not None:
                    conn.close()
                conn = None
            self._stop.wait(interval)
        if conn is not None:
            conn.close()


class Dashboard(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        support.require_binaries()
        OUT.mkdir(parents=True, exist_ok=True)
        cls.procs = support.Processes(OUT / "logs")
        cls.backends = [cls.procs.backend(f"b{i}") for i in (1, 2, 3)]
        cls.gw = cls.procs.gateway(settings={"admin.token": TOKEN, "health_check.interval": "1s",
                                             "health_check.timeout": "500ms"})
        for i, b in enumerate(cls.backends, 1):
            support.register(cls.gw.port, f"server{i}", f"http://{support.HOST}:{b.port}", token=TOKEN)
        # The hostile entries point at a live backend below a path it does
        # not serve: their health checks fail, so they never get traffic.
        support.register(cls.gw.port, HOSTILE_NAME, f"http://{support.HOST}:{cls.backends[0].port}{HOSTILE_PATH}",
                         token=TOKEN)
        cls.load = Load(cls.gw.port).start()
        cls.browser = Browser()
        cls.base = f"http://{support.HOST}:{cls.gw.port}"
        cls.tab = cls.browser.tab(cls.base + "/dashboard")
        cls.tab.wait("document.documentElement.getAttribute('data-admin') !== null && "
                     "document.querySelector('#banner').getAttribute('data-state') === 'ok'", 15, "the first poll")

    @classmethod
    def tearDownClass(cls):
        cls.load.stop()
        cls.browser.close()
        cls.procs.stop_all()

    def row(self, name, what="state"):
        return self.tab.js(f"(function(){{var r = Array.from(document.querySelectorAll('#backends tbody tr'))"
                           f".find(function(t){{return t.getAttribute('data-name') === {json.dumps(name)};}});"
                           f"return r ? ({{state: r.getAttribute('data-state'), changed: r.classList.contains('changed'),"
                           f" name: r.querySelector('.name').textContent, url: r.querySelector('.url').textContent}}) "
                           f": null;}})()")

    def api_server(self, name):
        return next(s for s in support.servers(self.gw.port) if s["name"] == name)

    def test_1_files_are_served_locked_down_and_small(self):
        for port in (self.gw.port, self.backends[0].port):
            status, headers, html = support.request(port, "GET", "/dashboard")
            self.assertEqual(status, 200)
            total = len(html)
            files = re.findall(r'(?:src|href)="(/dashboard/[^"]+)"', html.decode())
            self.assertGreaterEqual(len(files), 5, files)
            for path in ["/dashboard", *files]:
                status, h, body = support.request(port, "GET", path)
                self.assertEqual(status, 200, path)
                csp = h["content-security-policy"]
                for part in ("default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'",
                             "frame-ancestors 'none'"):
                    self.assertIn(part, csp, path)
                self.assertNotIn("unsafe", csp)
                self.assertEqual(h["x-content-type-options"], "nosniff", path)
                kind = path.split("?")[0].rsplit(".", 1)[-1] if "." in path else "html"
                self.assertTrue(h["content-type"].startswith(
                    {"js": "text/javascript", "css": "text/css", "html": "text/html"}[kind]), path)
                self.assertIn("immutable" if "?v=" in path else "no-cache", h["cache-control"], path)
                if path != "/dashboard":
                    total += len(body)
            print(f"\npage weight on port {port}: {total} bytes ({len(files)} files + HTML)")
            self.assertLess(total, MAX_WEIGHT)
            status, h, _ = support.request(port, "GET", "/dashboard/nope.js")
            self.assertEqual(status, 404)

    def test_2_loads_clean_and_charts_hold_data(self):
        tab = self.tab
        points = tab.wait("(function(){var n = Array.from(document.querySelectorAll('[data-chart]'))"
                          ".map(function(c){return Number(c.getAttribute('data-points') || 0);});"
                          "return n.length === 3 && n.every(function(x){return x >= 2;}) && n;})()", 15,
                          "every chart with two points or more")
        self.assertEqual(len(points), 3)
        self.assertEqual(tab.js("document.querySelectorAll('.uplot canvas').length"), 3)
        rps = tab.js("document.querySelector('.tile .value').textContent")
        self.assertRegex(rps, r"^\d+(\.\d)?/s$")
        self.assertGreater(float(rps[:-2]), 5, "the load shows in req/s")
        self.assertIn("version", tab.js("document.getElementById('about').textContent"))
        self.assertIn("round_robin", tab.js("document.getElementById('settings').textContent"))
        self.assertEqual(tab.errors(), [], "console errors on load")
        self.assertIsNone(tab.js("document.documentElement.getAttribute('data-dash-errors')"))
        foreign = [u for u in tab.requests if not u.startswith(self.base + "/")]
        self.assertEqual(foreign, [], "requests beyond the page's origin")
        self.assertFalse(tab.js("Object.keys(localStorage).length"))

    def test_3_hostile_name_and_url_are_text(self):
        api = self.api_server(HOSTILE_NAME)
        row = self.tab.wait(f"document.querySelector('#backends tr[data-name=\"..\"]') !== null", 5)
        self.assertTrue(row)
        row = self.row(HOSTILE_NAME)
        self.assertEqual(row["name"], HOSTILE_NAME)
        self.assertEqual(row["url"], api["url"])
        self.assertIn("&lt;img", row["url"])
        self.assertEqual(self.tab.js("document.querySelectorAll('img, [onerror]').length"), 0)
        self.assertIsNone(self.tab.js("window.pwned === undefined ? null : window.pwned"))

    def test_4_refused_action_shows_the_api_message(self):
        tab = self.tab
        status, _, body = support.request(self.gw.port, "PATCH", "/api/servers/server1", {"state": "draining"},
                                          auth("wrong"))
        self.assertEqual(status, 403)
        api_message = json.loads(body)["error"]["message"]
        tab.type("#token", "wrong")
        tab.submit("#token-form")
        tab.wait("document.documentElement.getAttribute('data-admin') === 'on'", 5)
        tab.click("#backends tr[data-name='server1'] button.drain")
        shown = tab.wait("(function(){var m = document.getElementById('admin-message');"
                         "return m.getAttribute('data-kind') === 'error' && m.textContent;})()", 5)
        self.assertIn("HTTP 403 forbidden", shown)
        self.assertIn(api_message, shown)
        self.assertEqual(self.api_server("server1")["state"], "up")
        tab.type("#reg-name", "bad-url")
        tab.type("#reg-url", "ftp://example.invalid")
        tab.submit("#register-form")
        shown = tab.wait("(function(){var m = document.getElementById('admin-message');"
                         "return /Register bad-url refused/.test(m.textContent) && m.textContent;})()", 5)
        self.assertIn("HTTP 403", shown)  # the token is checked before the body
        self.assertNotIn("wrong", tab.js("location.href + document.cookie + JSON.stringify(localStorage)"))

    def test_5_drain_from_the_page_shows_in_the_api(self):
        tab = self.tab
        tab.type("#token", TOKEN)
        tab.submit("#token-form")
        self.assertEqual(tab.js("sessionStorage.getItem('gatewaylab.dashboard.token')"), TOKEN)
        tab.click("#backends tr[data-name='server2'] button.drain")
        support.wait_until(lambda: self.api_server("server2")["state"] == "draining", 5, "server2 draining in the API")
        tab.wait("document.querySelector(\"#backends tr[data-name='server2']\").getAttribute('data-state') === 'draining'",
                 5)
        self.assertTrue(self.row("server2")["changed"], "a row whose state changed is marked")
        tab.click("#backends tr[data-name='server2'] button.drain")  # now "Undrain"
        support.wait_until(lambda: self.api_server("server2")["state"] == "up", 5, "server2 up again")
        self.assertEqual(tab.errors(ignore_network=True), [])

    def test_6_killed_backend_shows_down_within_seconds(self):
        victim = self.backends[2]
        t0 = time.monotonic()
        victim.signal(signal.SIGKILL)
        self.tab.wait("['down', 'ejected'].indexOf(document.querySelector(\"#backends tr[data-name='server3']\")"
                      ".getAttribute('data-state')) >= 0", 6, "server3 down or ejected on the page")
        print(f"\nkilled backend shown as {self.row('server3')['state']} after {time.monotonic() - t0:.1f} s")
        self.assertTrue(self.row("server3")["changed"])
        self.tab.screenshot(OUT / "gateway.png")

    def test_7_backend_page_shows_its_traffic_and_faults(self):
        b = self.backends[0]
        status, _, _ = support.request(b.port, "PUT", "/api/faults", {"latency": "3ms", "duration": "60s"})
        self.assertEqual(status, 200)
        tab = self.browser.tab(f"http://{support.HOST}:{b.port}/dashboard")
        tab.wait("document.getElementById('faults').getAttribute('data-mode') === 'serve' && "
                 "/3ms/.test(document.getElementById('faults').textContent)", 10, "the faults in force")
        self.assertEqual(tab.js("document.getElementById('instance').textContent"), "b1")
        tab.wait("Number(document.querySelector('[data-chart=rps]').getAttribute('data-points')) >= 2", 10)
        self.assertEqual(tab.errors(), [])
        self.assertEqual([u for u in tab.requests if not u.startswith(f"http://{support.HOST}:{b.port}/")], [])
        tab.screenshot(OUT / "backend.png")

    def test_8_admin_listener_serves_the_page_and_takes_the_changes(self):
        admin_port = support.free_port()
        gw = self.procs.gateway("gateway-admin", settings={"admin.listen": f"{support.HOST}:{admin_port}"})
        support.wait_until(lambda: support.port_free(admin_port) is False, 5, "the admin listener")
        for port, here in ((gw.port, False), (admin_port, True)):
            self.assertEqual(support.request(port, "GET", "/dashboard")[0], 200)
            self.assertEqual(support.request(port, "GET", "/api/stats/1m")[0], 200)
            self.assertEqual(support.get_json(port, "/api/settings")["admin"]["changes_here"], here)
        tab = self.browser.tab(f"http://{support.HOST}:{gw.port}/dashboard")
        text = tab.wait("/admin listener/.test(document.getElementById('admin-status').textContent) && "
                        "document.getElementById('admin-status').textContent", 10)
        self.assertIn("Read-only here", text)
        self.assertEqual(tab.js("document.documentElement.getAttribute('data-admin')"), "off")
        admin_tab = self.browser.tab(f"http://{support.HOST}:{admin_port}/dashboard")
        admin_tab.wait("document.documentElement.getAttribute('data-admin') === 'on'", 10,
                       "changes offered on the admin listener (no token set)")
        self.assertEqual(admin_tab.errors(), [])

    def test_9_unreachable_gateway_is_said_so(self):
        self.load.stop()
        self.gw.signal(signal.SIGKILL)
        text = self.tab.wait("document.getElementById('banner').getAttribute('data-state') === 'down' && "
                             "document.getElementById('banner').textContent", 10, "the banner saying so")
        self.assertIn("The gateway has been unreachable since", text)
        self.assertIn("retrying in", text)


    def test_8b_charts_are_filled_from_the_series_at_once(self):
        # The gateway's own /api/stats?series=true: a page opened now draws
        # the last minute at once, without waiting for polls to add points.
        stats = json.loads(support.request(self.gw.port, "GET", "/api/stats/1m?series=true")[2])
        self.assertGreater(sum(stats["series"]["requests"][:-1]), 0, "the load has been running")
        tab = self.browser.tab(self.base + "/dashboard")
        tab.wait("document.getElementById('charts').getAttribute('data-source') === 'series'", 10)
        points = tab.js("Array.from(document.querySelectorAll('[data-chart]'))"
                        ".map(function(c){return Number(c.getAttribute('data-points'));})")
        # Requests: the 59 whole buckets (the partial last one is left out).
        # Error rate and latency (two lines) have a point wherever a bucket
        # had requests: every second of the load so far, drawn at once, where
        # a page filled by its polls would have one point.
        busy = sum(1 for n in stats["series"]["requests"][:-1] if n)
        self.assertEqual(points[0], 59)
        self.assertGreaterEqual(points[1], busy)
        self.assertGreater(points[1], 1)
        self.assertEqual(points[2], 2 * points[1])
        self.assertEqual(tab.errors(), [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
