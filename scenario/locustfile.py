"""The Locust file of a scenario run: the load shape (one stage after the
other), the two kinds of user, and a request listener that counts what the
client saw per second. The runner (scenario.load) starts Locust on this file;
it is not meant to be run by hand.

Settings come from the runner, in the environment:

``SCENARIO_LOAD``
    JSON: ``{"user": "api" | "constant_rate", "path": "/api/data", "rate": 100,
    "stages": [{"name", "duration", "users", "spawn_rate", "rate"}, ...]}`` (durations
    in seconds).
``SCENARIO_EVENTS``
    The file this writes, as JSON lines: first ``{"start": <unix time the
    load started>}``, then one line per second of load,
    ``{"t": i, "n": requests, "f": failures, "h": {bucket: count}, "max": ms,
    "users": n}`` for the requests that ended in second i (from ``start + i``
    to ``start + i + 1``); ``h`` is a scenario.histogram.

No registration here: the runner registers the backends once, so every
request Locust makes is load. Depends on Locust (and its gevent), the
standard library and scenario.histogram.
"""

import json
import os
import random
import sys
import time
from pathlib import Path

import gevent
from locust import HttpUser, LoadTestShape, between, events, task

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scenario import histogram  # noqa: E402

try:
    CONFIG = json.loads(os.environ["SCENARIO_LOAD"])
    EVENTS_FILE = os.environ["SCENARIO_EVENTS"]
    PATH = CONFIG["path"]
    STAGES = CONFIG["stages"]
except (KeyError, ValueError) as err:
    sys.exit(f"scenario locustfile: SCENARIO_LOAD / SCENARIO_EVENTS missing or invalid ({err}); "
             "run it through `python3 -m scenario run`")


class ApiUser(HttpUser):
    """The seed's user: GET the path every 1 to 3 seconds."""

    wait_time = between(1, 3)

    @task
    def get_data(self):
        self.client.get(PATH)


class ConstantRateUser(HttpUser):
    """Together the users send `rate` requests per second: each paces itself
    to rate / (users running now), as locust's constant_throughput does,
    but each begins at a random point of its interval and each wait is
    moved by up to a quarter of the interval either way (the rate stays the
    same on average). Without that, users started together, or woken
    together after any pause of Locust's event loop, stay in step for the
    rest of the run and send their requests in one burst per interval: a
    gateway's in-flight limit would see the bursts, not the rate."""

    def on_start(self):
        stage = stage_now()  # its users, not those started so far: all of them share the rate
        gevent.sleep(random.uniform(0.0, max(1, stage["users"]) / (stage.get("rate") or CONFIG["rate"])))

    def wait_time(self):
        users = max(1, self.environment.runner.user_count if self.environment.runner else 1)
        stage = stage_now()
        period = users / (stage.get("rate") or CONFIG["rate"])
        ran = time.perf_counter() - self._cp_last_run - self._cp_last_wait_time
        self._cp_last_wait_time = max(0.0, period - ran + random.uniform(-0.25, 0.25) * period)
        self._cp_last_run = time.perf_counter()
        return self._cp_last_wait_time

    @task
    def get_data(self):
        self.client.get(PATH)


def stage_now():
    """The running stage (the last one after the end)."""
    elapsed = time.time() - COUNTS.start if COUNTS.start is not None else 0.0
    end = 0.0
    for stage in STAGES:
        end += stage["duration"]
        if elapsed < end:
            break
    return stage


# The scenario's one user, in a list: Locust takes every module-level name
# bound to a user class for a user of its own. The other is set aside.
USER_CLASSES = [ConstantRateUser] if CONFIG["user"] == "constant_rate" else [ApiUser]
(ApiUser if CONFIG["user"] == "constant_rate" else ConstantRateUser).abstract = True


class Counts:
    """Requests per second of load, written out once each second is over."""

    def __init__(self):
        self.start = None
        self.seconds = {}
        self.written = 0  # seconds before this one are on file
        self.file = None
        self.environment = None

    def begin(self, start):
        self.start = start
        self.file = open(EVENTS_FILE, "a", encoding="utf-8")
        self._write({"start": start})

    def record(self, response_time, failed):
        if self.start is None:
            return
        # A request ending in a second already written out (only at the very
        # end, after the final flush) is counted in the next one.
        second = max(self.written, int(time.time() - self.start))
        counts = self.seconds.setdefault(second, {"n": 0, "f": 0, "h": {}, "max": 0.0})
        counts["n"] += 1
        counts["f"] += 1 if failed else 0
        i = histogram.index(response_time)
        counts["h"][i] = counts["h"].get(i, 0) + 1
        counts["max"] = max(counts["max"], response_time)

    def flush(self, everything=False):
        if self.file is None or self.file.closed:
            return
        now = int(time.time() - self.start)
        last = max([now] + list(self.seconds)) + 1 if everything else now
        for second in range(self.written, last):
            counts = self.seconds.pop(second, {"n": 0, "f": 0, "h": {}, "max": 0.0})
            self._write({"t": second, "users": self.user_count(), **counts})
        self.written = max(self.written, last)

    def user_count(self):
        runner = self.environment.runner if self.environment is not None else None
        return runner.user_count if runner is not None else 0

    def _write(self, record):
        self.file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.file.flush()


COUNTS = Counts()


class StagesShape(LoadTestShape):
    """The stages one after the other; the load ends after the last."""

    def tick(self):
        run_time = self.get_run_time()
        if COUNTS.start is None:
            COUNTS.begin(time.time() - run_time)
            gevent.spawn(_flush_every_second)
        end = 0.0
        for stage in STAGES:
            end += stage["duration"]
            if run_time < end:
                return stage["users"], stage["spawn_rate"], USER_CLASSES
        return None


def _flush_every_second():
    while True:
        gevent.sleep(1.0 - (time.time() - COUNTS.start) % 1.0 + 0.01)
        COUNTS.flush()


@events.init.add_listener
def _on_init(environment, **_kwargs):
    COUNTS.environment = environment


@events.request.add_listener
def _on_request(response_time, exception, **_kwargs):
    COUNTS.record(response_time, exception is not None)


@events.test_stop.add_listener
def _on_stop(**_kwargs):
    COUNTS.flush(everything=True)


@events.quitting.add_listener
def _on_quit(**_kwargs):
    COUNTS.flush(everything=True)
