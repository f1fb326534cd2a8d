"""The load: Locust started headless on scenario/locustfile.py as a process
of the Stack, the per-second counts it writes read back while it runs, and
its own final totals (`--json-file`) to check them against. Depends on
scenario.stack.
"""

import json
import os
import shutil
import signal
import time
from pathlib import Path

from .stack import Process, StartFailed

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
ROOT = Path(__file__).resolve().parents[1]
STOP_TIMEOUT_S = 10  # requests in flight when the last stage ends may finish


def find_locust(given=None):
    """The Locust to run: `given`, the repository's .venv, or the one on PATH."""
    for candidate in (given, ROOT / ".venv" / "bin" / "locust", shutil.which("locust")):
        if candidate and os.access(candidate, os.X_OK):
            return str(candidate)
    if given:
        raise StartFailed(f"--locust-bin {given}: not an executable")
    raise StartFailed("locust not found (pip install -r requirements.txt, or give --locust-bin)")


def load_settings(scenario):
    """What the locustfile reads from SCENARIO_LOAD."""
    load = scenario.load
    return {"user": load.user, "path": load.path, "rate": load.rate,
            "stages": [{"name": s.name, "duration": s.duration, "users": s.users, "spawn_rate": s.spawn_rate,
                        "rate": s.rate} for s in load.stages]}


class Load:
    """One Locust run against `gateway_url`; its files in `log_dir`."""

    def __init__(self, scenario, gateway_url, log_dir, locust_bin):
        self.scenario = scenario
        self.gateway_url = gateway_url
        self.log_dir = Path(log_dir)
        self.events_path = self.log_dir / "client-seconds.jsonl"
        self.json_prefix = self.log_dir / "locust"
        self.locust_bin = locust_bin
        self.process = None
        self.start_unix = None
        self.seconds = []  # the locustfile's per-second records, in order
        self._offset = 0
        self._partial = b""

    def start(self, stack):
        self.events_path.unlink(missing_ok=True)
        env = {"SCENARIO_LOAD": json.dumps(load_settings(self.scenario)), "SCENARIO_EVENTS": str(self.events_path),
               "PYTHONUNBUFFERED": "1"}
        argv = [self.locust_bin, "-f", LOCUSTFILE, "--headless", "--only-summary", "-H", self.gateway_url,
                "--stop-timeout", str(STOP_TIMEOUT_S), "--json-file", self.json_prefix, "--loglevel", "INFO"]
        # SIGINT, not SIGTERM: with a shape class, headless Locust installs
        # its SIGTERM handler only once the shape is over, so a SIGTERM
        # before that kills it with no totals written.
        self.process = stack.start(Process("locust", argv, env, self.log_dir / "locust.log", cwd=self.log_dir,
                                           stop_signal=signal.SIGINT))
        return self

    def wait_started(self, timeout=60.0):
        """Waits for the load's first tick; returns the monotonic time it began."""
        deadline = time.monotonic() + timeout
        while self.start_unix is None:
            self.read()
            if self.start_unix is not None:
                break
            if not self.process.alive():
                raise StartFailed(f"Locust exited before the load began (status {self.process.popen.returncode}); "
                                  f"last lines of locust.log:\n{self.process.tail()}")
            if time.monotonic() > deadline:
                raise StartFailed(f"Locust did not begin the load within {timeout:g}s; "
                                  f"last lines of locust.log:\n{self.process.tail()}")
            time.sleep(0.05)
        return time.monotonic() - (time.time() - self.start_unix)

    def read(self):
        """Takes in the lines the locustfile has written since the last read."""
        try:
            with open(self.events_path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return
        self._offset += len(chunk)
        data = self._partial + chunk
        *lines, self._partial = data.split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            record = json.loads(line)
            if "start" in record:
                self.start_unix = record["start"]
            else:
                self.seconds.append(record)

    def alive(self):
        return self.process is not None and self.process.alive()

    def wait(self, timeout):
        """Waits for Locust to end on its own; False if it is still running."""
        deadline = time.monotonic() + timeout
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.read()
        return not self.alive()

    def stop(self, grace=15.0):
        """Asks Locust to stop (SIGINT: it stops its users, writes its totals
        and the locustfile its last second)."""
        if self.alive():
            self.process.send(self.process.stop_signal)
            if not self.wait(grace):
                self.process.kill()
        self.read()

    def locust_totals(self):
        """(requests, failures) from Locust's own --json-file, or None."""
        try:
            entries = json.loads(Path(f"{self.json_prefix}.json").read_text())
        except (OSError, ValueError):
            return None
        return (sum(e.get("num_requests", 0) for e in entries), sum(e.get("num_failures", 0) for e in entries))

