"""One run of a scenario (one variant): start what it needs (locally: the
backends and the gateway; always: Locust), register the backends, then in
the main thread apply the faults on time, sample the gateway once per second
and show progress until the load ends; then the final figures, checks and
gates. Depends on every other runner module but the command line.
"""

import secrets
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from . import figures as fig
from . import http, judge, summary
from .faults import Timeline
from .load import STOP_TIMEOUT_S, Load
from .progress import Progress
from .sampler import BackendSampler, Sampler
from .stack import StartFailed, Stack

SETTLE_S = 5.0  # a service books a request when its answer has ended, a moment after the client has it
OVERRUN_S = STOP_TIMEOUT_S + 30  # how long Locust may outlive the last stage before it is stopped


class Interrupted(Exception):
    """Ctrl-C or SIGTERM: stop, record what ran, exit 130."""


class Aborted(Exception):
    """An `abort_on_fail` gate can no longer pass: stop the load, judge what ran."""

    def __init__(self, gate, at):
        super().__init__(f"{gate.name} failed at {at:.0f}s (abort_on_fail)")
        self.gate, self.at = gate, at


@dataclass
class Target:
    """Where a run goes. Local: binaries to start. Kubernetes: URLs to use."""

    kind: str  # local | kubernetes
    gateway_bin: Path | None = None
    backend_bin: Path | None = None
    gateway_url: str | None = None
    backend_urls: list | None = None
    token: str | None = None
    locust_bin: str | None = None
    baselines: dict | None = None  # {variant: {gate index: the baseline run's figure}}


class RunFailed(Exception):
    """The run could not be done (a process died, an API refused): one line."""


def run_variant(scenario, variant, settings, target, log_dir, entry):
    """Runs one variant, filling in `entry` (summary.run_entry); returns it.
    Raises Interrupted after filling it in when the run was interrupted."""
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    state = {}
    interrupted = False
    with Stack(log_dir, target.gateway_bin, target.backend_bin) as stack:
        try:
            try:
                _run(scenario, variant, settings, target, stack, state, entry)
            except Interrupted:
                interrupted = True
                entry["verdict"], entry["error"] = "interrupted", None
                if "clock" in state:
                    state["stopped_at"] = state["clock"]()
                if "load" in state:
                    state["load"].stop()
            except Aborted as e:
                entry["verdict"], entry["error"] = "aborted", str(e)
                entry["aborted_by"] = {"gate": e.gate.name, "at_s": round(e.at, 3)}
                print(f"aborting: {e}", file=sys.stderr)
                state["stopped_at"] = e.at
                state["load"].stop()
            except (StartFailed, RunFailed, OSError) as e:
                entry["verdict"], entry["error"] = "error", " ".join(str(e).split("\n")[0].split())
                print(f"error: {e}", file=sys.stderr)
                if "load" in state:
                    state["load"].stop()
            if "load" in state and state["load"].start_unix is not None:
                _finish(scenario, state, entry, interrupted)
        except Interrupted:
            interrupted = True  # a second signal while finishing: keep what is there
            entry["verdict"] = "interrupted"
    if interrupted:
        raise Interrupted()
    return entry


def _run(scenario, variant, settings, target, stack, state, entry):
    state["baselines"] = (target.baselines or {}).get(variant)
    state["gates"] = scenario.gates_for(variant)
    if target.kind == "local":
        gateway_url, backend_urls, token = _start_local(scenario, settings, stack)
        entry["gateway_settings"] = stack.gateway_settings()
    else:
        gateway_url, backend_urls, token = target.gateway_url, dict(zip(scenario.backends, target.backend_urls)), \
            target.token
    names = _upstream_names(gateway_url, backend_urls) if target.kind == "kubernetes" else {}
    sampler = Sampler(gateway_url, names)
    if not sampler.baseline():
        raise RunFailed(f"the gateway's metrics cannot be read: {sampler.last_error}")
    own = {name: BackendSampler(url) for name, url in backend_urls.items()}
    for b in own.values():
        b.sample(0.0)
    state.update(sampler=sampler, gateway_url=gateway_url, names=names, own=own,
                 stats_before=_stats(gateway_url), backends=list(scenario.backends))
    load = Load(scenario, gateway_url, stack.log_dir, target.locust_bin).start(stack)
    state["load"] = load
    started = load.wait_started()
    clock = lambda: time.monotonic() - started  # noqa: E731 - seconds since the load began
    state["clock"] = clock
    state["own_watch"] = _sample_backends_every_second(own, clock)
    kill = restart = None
    if target.kind == "local":
        kill = lambda name: stack.backends[name].kill()  # noqa: E731
        restart = lambda name: stack.restart_backend(name, token)  # noqa: E731
    timeline = Timeline(scenario, backend_urls, clock, token=token, kill=kill, restart=restart)
    state["timeline"] = timeline
    progress = Progress(scenario.name, variant, scenario.duration)
    state["progress"] = progress
    watch = judge.AbortWatch(state["gates"], scenario.phases, scenario.duration, state["baselines"])
    next_sample = 1.0
    try:
        while load.alive():
            t = clock()
            if t >= next_sample:  # first: the sample closes the second before any fault due now
                sampler.sample(t)
                next_sample = float(int(t) + 1)
                _watch(watch, scenario, state, t)
            timeline.due(t)
            load.read()
            _check_services(stack, timeline)
            stage = fig.stage_at(scenario.load.stages, min(t, scenario.duration - 1e-9))
            progress.update(t, stage, load.seconds, timeline.next_event())
            if t > scenario.duration + OVERRUN_S:
                raise RunFailed(f"Locust still running {OVERRUN_S}s after the last stage ended")
            wake = min([next_sample] + [e.at for e in timeline.pending[:1]])
            time.sleep(max(0.01, min(0.25, wake - clock())))
    finally:
        state["own_watch"]()
        progress.done()
        if target.kind == "kubernetes":
            # The backends outlive the run, so however it ends (Ctrl-C and
            # SIGTERM included) none keeps a fault it was given.
            timeline.clear_all()
    if load.process.popen.returncode not in (0, 1):  # 1: some requests failed, which the figures show
        raise RunFailed(f"Locust exited with status {load.process.popen.returncode}; see locust.log: "
                        f"{load.process.tail(3)}")
    entry["verdict"] = "pass"


def _sample_backends_every_second(own, clock):
    """Samples each backend's own counts once a second, in a thread: a
    backend that hangs or is gone must not hold up the faults' timing.
    Returns a function that stops it and waits for it."""
    stop = threading.Event()

    def loop():
        while not stop.wait(max(0.0, 1.0 - clock() % 1.0)):
            for b in own.values():
                b.sample(clock())

    thread = threading.Thread(target=loop, name="backend-sampler", daemon=True)
    thread.start()

    def stopped():
        stop.set()
        thread.join(timeout=2 * len(own))  # each sample times out after 0.5 s

    return stopped


def _watch(watch, scenario, state, t):
    if not watch.watched:
        return
    load, sampler = state["load"], state["sampler"]
    run_phase = scenario.phases[0]

    def figures_of(phase):
        return fig.figures([run_phase, phase], load.seconds, sampler.samples, t, state["backends"])

    gate = watch.failed(t, fig.per_second(load.seconds, sampler.samples), figures_of)
    if gate is not None:
        raise Aborted(gate, t)


def _start_local(scenario, settings, stack):
    backend_token, gateway_token = secrets.token_hex(16), secrets.token_hex(16)
    for name in scenario.backends:
        stack.start_backend(name, backend_token)
    stack.start_gateway(settings, gateway_token)
    for proc in [stack.gateway] + [stack.backends[n] for n in scenario.backends]:
        proc.wait_ready()
    gateway_url = stack.gateway.url()
    for name in scenario.backends:
        status, body = http.request("POST", gateway_url + "/api/servers",
                                    body={"name": name, "url": stack.backends[name].url()}, token=gateway_token)
        if status not in (200, 201):
            raise RunFailed(f"registering {name} with the gateway: {http.error_text(status, body)}")
    return gateway_url, {n: stack.backends[n].url() for n in scenario.backends}, backend_token


def _upstream_names(gateway_url, backend_urls):
    """{gateway's name for a backend: the scenario's}, matched by URL (the
    chart's gateway names its backends itself)."""
    by_url = {u.rstrip("/").lower(): n for n, u in backend_urls.items()}
    try:
        servers = http.get_json(gateway_url.rstrip("/") + "/api/servers")["servers"]
    except (OSError, KeyError, TypeError) as e:
        raise RunFailed(f"the gateway's /api/servers cannot be read: {e}") from None
    return {s["name"]: by_url[s["url"].rstrip("/").lower()] for s in servers
            if s.get("url", "").rstrip("/").lower() in by_url}


def _check_services(stack, timeline):
    if stack.gateway is not None and not stack.gateway.alive():
        raise RunFailed(f"the gateway exited during the run (status {stack.gateway.popen.returncode}); "
                        "see gateway.log")
    killed = {r["backend"] for r in timeline.records if r["action"] == "kill"} - {
        r["backend"] for r in timeline.records if r["action"] == "restart"}
    for name, proc in stack.backends.items():
        if name not in killed and not proc.alive():
            raise RunFailed(f"backend {name} exited during the run (status {proc.popen.returncode}); see {name}.log")


def _stats(gateway_url):
    try:
        return http.get_json(gateway_url.rstrip("/") + "/api/stats/1h")
    except OSError:
        return None


def _finish(scenario, state, entry, interrupted):
    """Final sample, figures, checks and gates from whatever ran."""
    load, sampler, clock = state["load"], state["sampler"], state["clock"]
    load.read()
    stopped = interrupted or entry["verdict"] == "aborted"
    elapsed = min(state.get("stopped_at", clock()), scenario.duration) if stopped else scenario.duration
    gateway_ok = _settle(state)
    seconds, samples, backends = load.seconds, sampler.samples, state["backends"]
    entry["duration_s"] = round(elapsed, 3)
    entry["fault_events"] = state["timeline"].records if "timeline" in state else []
    own = state.get("own", {})
    if "own_watch" in state:
        state["own_watch"]()
    for b in own.values():
        b.sample(clock())
    entry["figures"] = fig.figures(scenario.phases, seconds, samples, elapsed, backends,
                                   {name: b.samples for name, b in own.items()})
    entry["series"] = fig.series(seconds, samples, backends, elapsed)
    totals = load.locust_totals()
    client = (sum(r["n"] for r in seconds), sum(r["f"] for r in seconds))
    entry["checks"] = {"client_matches_locust": None if totals is None else totals == client,
                       "gateway_matches_stats": gateway_ok}
    state["locust_totals"], state["client_totals"] = totals, client
    entry["gates"] = judge.evaluate(state["gates"], entry["figures"], fig.per_second(seconds, samples),
                                    scenario.phases, scenario.duration, state.get("baselines"))
    if entry["verdict"] == "pass":
        entry["verdict"] = summary.verdict_of(entry["gates"])
    if entry["verdict"] in ("pass", "fail") and any(not r["ok"] for r in entry["fault_events"]):
        bad = next(r for r in entry["fault_events"] if not r["ok"])
        entry["verdict"], entry["error"] = "error", f"fault {bad['action']} {bad['backend']} failed: {bad['error']}"


def _settle(state):
    """Takes the final sample, again for up to SETTLE_S until the sampled
    totals agree with the gateway's /api/stats/1h (over the same span);
    returns whether they agree (None when the stats cannot tell)."""
    sampler, clock = state["sampler"], state["clock"]
    deadline = time.monotonic() + SETTLE_S
    taken = False
    while True:
        if taken:
            sampler.samples.pop()  # keep one final sample, the latest
        taken = sampler.sample(clock()) is not None
        if not taken:
            return None
        after = _stats(state["gateway_url"])
        agree = _agrees(sampler.samples[0][1], sampler.samples[-1][1], state["stats_before"], after, state["names"])
        if agree is not False or time.monotonic() >= deadline:
            return agree
        time.sleep(0.25)


def _agrees(first, last, before, after, names):
    if before is None or after is None or after.get("covered_seconds", 0) >= after.get("window_seconds", 0):
        return None  # no stats, or some of the run may have aged out of the window

    def requests(stats, name=None):
        if name is None:
            return stats.get("requests", 0), stats.get("errors", 0)
        s = stats.get("servers", {}).get(name, {})
        return s.get("requests", 0), s.get("errors", 0)

    if (last["requests"] - first["requests"], last["errors"] - first["errors"]) != tuple(
            a - b for a, b in zip(requests(after), requests(before))):
        return False
    upstreams = {n: n for n in last["backends"] if n not in names.values()} | names  # gateway name -> ours
    for upstream, scenario_name in upstreams.items():
        got = last["backends"].get(scenario_name, {}).get("requests", 0) - \
            first["backends"].get(scenario_name, {}).get("requests", 0)
        if got != requests(after, upstream)[0] - requests(before, upstream)[0]:
            return False
    return True
