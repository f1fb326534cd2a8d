"""The fault timeline: each event of the scenario applied when its time has
come, through the backend's fault API (set: PUT /api/faults, clear: DELETE)
or, locally, by killing and restarting the backend's process; each recorded
with when it was applied and whether it worked. Depends on scenario.http and
scenario.durations; the runner's main loop calls `due` (one thread, so a
restarted backend is started from the main thread).
"""

import time

from . import durations, http

RETRY_S = 3.0  # a backend coming back from `refuse` (or a restart) may take a moment to listen


class Timeline:
    """The events still to come and the record of those applied.

    backend_urls: {name: base URL}; token: the backends' admin token (or
    None); clock: seconds since the load began; kill/restart: callables
    taking a backend name (local runs only)."""

    def __init__(self, scenario, backend_urls, clock, token=None, kill=None, restart=None):
        self.scenario = scenario
        self.now = clock
        self.urls = backend_urls
        self.token = token
        self.kill, self.restart = kill, restart
        self.pending = list(scenario.faults)  # already in time order
        self.records = []
        self.touched = set()  # backends whose faults were set, to clear at the end

    def next_event(self):
        return self.pending[0] if self.pending else None

    def due(self, t):
        """Applies every event whose time is at or before `t` (seconds since
        the load began); returns the records made."""
        done = []
        while self.pending and self.pending[0].at <= t:
            done.append(self.apply(self.pending.pop(0)))
        return done

    def apply(self, event):
        started = self.now()
        applied = None
        faults = None
        try:
            if event.action == "set":
                faults = self._with_refuse_duration(event)
                applied = self._call("PUT", event.backend, faults)
                self.touched.add(event.backend)
            elif event.action == "clear":
                applied = self._call("DELETE", event.backend)
            elif event.action == "kill":
                self.kill(event.backend)
            elif event.action == "restart":
                self.restart(event.backend)
            error = None
        except Exception as e:  # noqa: BLE001 - any failure is recorded, and the run goes on
            error = str(e).splitlines()[0] if str(e) else type(e).__name__
        record = {"at_s": event.at, "applied_s": round(applied if applied is not None else started, 3),
                  "backend": event.backend, "action": event.action, "faults": faults,
                  "ok": error is None, "error": error}
        self.records.append(record)
        return record

    def _with_refuse_duration(self, event):
        """A refused backend cannot be told to stop refusing, so `refuse` lasts
        until that backend's next event or the run's end, unless it says."""
        faults = dict(event.faults)
        if faults.get("mode") == "refuse" and "duration" not in faults:
            later = [e.at for e in self.scenario.faults if e.backend == event.backend and e.at > event.at]
            faults["duration"] = durations.as_millis(min(later, default=self.scenario.duration) - event.at)
        return faults

    def _call(self, method, backend, body=None):
        """PUT/DELETE /api/faults; returns when it was sent (seconds since the
        load began). Connection errors are tried again for RETRY_S."""
        url = self.urls[backend].rstrip("/") + "/api/faults"
        deadline = time.monotonic() + RETRY_S
        while True:
            sent = self.now()
            try:
                status, answer = http.request(method, url, body=body, token=self.token, timeout=5.0)
                break
            except OSError as e:
                if time.monotonic() >= deadline:
                    raise OSError(f"{method} {url}: {e}") from None
                time.sleep(0.1)
        if status != 200:
            raise OSError(f"{method} {url}: {http.error_text(status, answer)}")
        return sent

    def clear_all(self):
        """DELETE /api/faults on every backend that had faults set (best
        effort, at the end of a run against backends that outlive it)."""
        for backend in sorted(self.touched):
            try:
                self._call("DELETE", backend)
            except OSError:
                pass
