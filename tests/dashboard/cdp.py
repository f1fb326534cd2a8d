"""Headless Chromium (Debian's `chromium`) driven over the DevTools protocol on
--remote-debugging-pipe: the browser reads commands on fd 3 and writes answers
and events on fd 4, each a JSON message ended by a NUL byte. That is enough to
open a page, click, type, read what it shows and take screenshots, with the
standard library only (no websocket client needed).

Everything a page logs is kept: console calls, uncaught exceptions and the
browser's own log (CSP violations, failed loads), as `Tab.console`; every URL
the page requests is kept as `Tab.requests`.

Depends on nothing else in tests/.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time

CHROMIUM = shutil.which("chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-breakpad",
         "--disable-domain-reliability", "--disable-client-side-phishing-detection", "--hide-scrollbars",
         "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,Translate,MediaRouter",
         # Keeps timers at full rate in a page no one looks at.
         "--disable-background-timer-throttling", "--disable-renderer-backgrounding"]


class Browser:
    """One Chromium with a fresh profile; close() (or `with`) stops it."""

    def __init__(self, timeout=30.0):
        if CHROMIUM is None:
            raise RuntimeError("chromium is not installed (make deps installs it)")
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="dashboard-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def fds():
            # The child's fd 3 and 4, as --remote-debugging-pipe expects; moved
            # out of the way first, since either end may itself be 3 or 4.
            # dup2 leaves the copies inheritable; close_fds=False keeps them
            # (Python's own descriptors are not inheritable, so none leak).
            a = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen([CHROMIUM, *FLAGS, "--remote-debugging-pipe", f"--user-data-dir={self.profile}",
                                      "about:blank"], preexec_fn=fds, close_fds=False,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next = 0
        self._answers: dict[int, dict] = {}
        self._listeners: list = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _read(self):
        buf = b""
        while True:
            try:
                chunk = os.read(self._from_browser, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._cond.notify_all()
                return
            buf += chunk
            *messages, buf = buf.split(b"\0")
            for raw in messages:
                msg = json.loads(raw)
                with self._cond:
                    if "id" in msg:
                        self._answers[msg["id"]] = msg
                        self._cond.notify_all()
                    else:
                        for listener in list(self._listeners):
                            listener(msg)

    def send(self, method, params=None, session=None):
        """One command; its result, or an AssertionError with the browser's message."""
        with self._cond:
            self._next += 1
            ident = self._next
        msg = {"id": ident, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        with self._cond:
            while ident not in self._answers:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError(f"chromium: no answer to {method}")
                self._cond.wait(left)
            answer = self._answers.pop(ident)
        if "error" in answer:
            raise AssertionError(f"chromium: {method}: {answer['error']}")
        return answer.get("result", {})

    def tab(self, url, width=1400, height=1200):
        """A new tab showing url, its console and requests recorded from the start."""
        target = self.send("Target.createTarget", {"url": "about:blank"})
        session = self.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})["sessionId"]
        tab = Tab(self, session)
        with self._cond:
            self._listeners.append(tab._event)
        for domain in ("Runtime", "Log", "Page", "Network"):
            self.send(f"{domain}.enable", session=session)
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
        self.send("Page.navigate", {"url": url}, session=session)
        return tab

    def close(self):
        try:
            if self.proc.poll() is None:
                try:
                    self.send("Browser.close")
                except AssertionError:
                    pass
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
        finally:
            for fd in (self._to_browser, self._from_browser):
                try:
                    os.close(fd)
                except OSError:
                    pass
            shutil.rmtree(self.profile, ignore_errors=True)


class Tab:
    """One page: evaluate JavaScript in it, wait for conditions, click, type, screenshot."""

    def __init__(self, browser, session):
        self.browser = browser
        self.session = session
        self.console: list[dict] = []  # {"source", "level", "text"}
        self.requests: list[str] = []

    def _event(self, msg):
        if msg.get("sessionId") != self.session:
            return
        method, params = msg.get("method"), msg.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            self.console.append({"source": "console", "level": params.get("type"), "text": text})
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text", "")
            self.console.append({"source": "exception", "level": "error", "text": text})
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            self.console.append({"source": entry.get("source"), "level": entry.get("level"),
                                 "text": f"{entry.get('text')} {entry.get('url', '')}".strip()})
        elif method == "Network.requestWillBeSent":
            self.requests.append(params.get("request", {}).get("url", ""))

    def errors(self, ignore_network=False):
        """Console errors and warnings so far; network ones (an API's 4xx) left out when asked."""
        return [c for c in self.console if c["level"] in ("error", "warning", "assert")
                and not (ignore_network and c["source"] == "network")]

    def js(self, expression):
        """The value of expression (awaited when it is a promise)."""
        result = self.browser.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                        "awaitPromise": True}, session=self.session)
        if "exceptionDetails" in result:
            raise AssertionError(f"page: {expression}: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def wait(self, expression, timeout=10.0, what=None):
        """Polls expression until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.js(expression)
            except AssertionError as e:  # e.g. the page not loaded yet
                value = str(e)[-300:]
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)
                continue
            if value:
                return value
            if time.monotonic() >= deadline:
                raise AssertionError(f"not seen within {timeout}s: {what or expression} (last: {value!r})")
            time.sleep(0.1)

    def click(self, selector):
        self.js(f"document.querySelector({json.dumps(selector)}).click()")

    def type(self, selector, text):
        """Sets an input's value as a user would leave it."""
        self.js(f"(function(e){{e.focus(); e.value = {json.dumps(text)}; "
                f"e.dispatchEvent(new Event('input', {{bubbles: true}}));}})"
                f"(document.querySelector({json.dumps(selector)}))")

    def submit(self, selector):
        self.js(f"document.querySelector({json.dumps(selector)}).requestSubmit()")

    def screenshot(self, path):
        data = self.browser.send("Page.captureScreenshot", {"format": "png"}, session=self.session)["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return path
