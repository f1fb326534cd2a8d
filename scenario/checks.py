"""The rules for each section of a scenario file beyond the load and the
gates: gateway settings, the fault timeline and variants, each problem a
SpecError naming its key path; and Keys, the checked mapping every section
reads. Depends on scenario.durations; scenario.spec assembles the results.
"""

import re

from . import durations

ACTIONS = ("set", "clear", "kill", "restart")
FAULT_KEYS = ("latency", "jitter", "error_rate", "error_status", "mode", "duration")
MODES = ("serve", "hang", "reset", "refuse")
# Gateway settings the runner sets itself (where it listens, the admin token,
# the backends it registers): a scenario cannot change them.
RUNNER_OWNED = {("listen",), ("servers",), ("admin", "token"), ("admin", "token_file"), ("admin", "listen")}
VARIANT_NAME = re.compile(r"[a-z0-9-]{1,64}")
LONGEST_FAULT_S = 3600.0  # the backends' fault API takes a `duration` of at most 1h


class SpecError(Exception):
    """One problem with a scenario: `path` is the key (None for the file itself)."""

    def __init__(self, path, message):
        super().__init__(message)
        self.path = path
        self.message = message

    def line(self, file):
        return f"{file}: {self.path}: {self.message}" if self.path else f"{file}: {self.message}"


class Keys:
    """A mapping at `where`, its keys checked against the allowed ones."""

    def __init__(self, value, where, required=(), optional=()):
        self.where = where
        if not isinstance(value, dict):
            raise SpecError(where or None, f"must be a mapping (key: value), not {_kind(value)}")
        for key in value:
            if key not in required and key not in optional:
                raise SpecError(self.path(key), "unknown key")
        for key in required:
            if key not in value:
                raise SpecError(self.path(key), "is missing")
        self.value = value

    def path(self, key):
        return f"{self.where}.{key}" if self.where else str(key)

    def get(self, key, default=None):
        return self.value.get(key, default)

    def duration(self, key):
        try:
            return durations.parse(self.value[key])
        except durations.DurationError as e:
            raise SpecError(self.path(key), str(e)) from None


def check_gateway(value, where, prefix=()):
    """Gateway settings nested as in gateway.yaml; their names and values are
    the gateway's to judge (`gateway --print-config` before a run)."""
    if not isinstance(value, dict):
        raise SpecError(where, f"must be a mapping of gateway settings, not {_kind(value)}")
    for key, v in value.items():
        path = prefix + (str(key),)
        at = f"{where}.{key}"
        if path in RUNNER_OWNED:
            raise SpecError(at, "is set by the runner (it starts the gateway and registers the backends)")
        if isinstance(v, dict):
            check_gateway(v, at, path)
        elif isinstance(v, list):
            if any(isinstance(item, (dict, list)) or item is None for item in v):
                raise SpecError(at, "a list of plain values only (it is passed as name=a,b,c)")
        elif v is None or not isinstance(v, (str, int, float, bool)):
            raise SpecError(at, f"{_kind(v)} is not a setting value")
    return value


def check_faults(value, scenario, target):
    if not isinstance(value, list):
        raise SpecError("faults", f"must be a list of events, not {_kind(value)}")
    events = []
    for i, raw in enumerate(value):
        where = f"faults[{i}]"
        keys = Keys(raw, where, required=("at", "backend", "action"), optional=("faults",))
        at = keys.duration("at")
        if at >= scenario.duration:
            raise SpecError(f"{where}.at", f"{durations.humanize(at)} is not before the run's end "
                                           f"({durations.humanize(scenario.duration)})")
        backend = keys.get("backend")
        if backend not in scenario.backends:
            raise SpecError(f"{where}.backend", f"{quoted(backend)} is not one of the backends "
                                                f"({', '.join(scenario.backends)})")
        action = keys.get("action")
        if action not in ACTIONS:
            raise SpecError(f"{where}.action", f"{quoted(action)} is unknown ({', '.join(ACTIONS)})")
        if action in ("kill", "restart") and target == "kubernetes":
            raise SpecError(f"{where}.action", f"{action} is for local runs only (the chart's pods are not ours "
                                               "to kill); use faults with mode refuse")
        faults = None
        if action == "set":
            if "faults" not in raw:
                raise SpecError(f"{where}.faults", "is missing (set needs the faults, as PUT /api/faults takes them)")
            faults = _fault_settings(raw["faults"], f"{where}.faults")
        elif "faults" in raw:
            raise SpecError(f"{where}.faults", f"only for action set, not {action}")
        events.append(dict(index=i, at=at, backend=backend, action=action, faults=faults))
    events.sort(key=lambda e: (e["at"], e["index"]))
    _check_order(events)
    _check_refuse_lengths(events, scenario.duration)
    return events


def _check_refuse_lengths(events, run_end):
    """`refuse` without a `duration` is given one up to the backend's next
    event or the run's end (scenario.faults); it must be one the API takes."""
    for e in events:
        if e["action"] == "set" and e["faults"].get("mode") == "refuse" and "duration" not in e["faults"]:
            later = [x["at"] for x in events if x["backend"] == e["backend"] and x["at"] > e["at"]]
            if min(later, default=run_end) - e["at"] > LONGEST_FAULT_S:
                raise SpecError(f"faults[{e['index']}].faults", "refuse lasts until the backend's next event "
                                f"or the run's end, longer than the fault API takes "
                                f"({durations.humanize(LONGEST_FAULT_S)}): give it a `duration`")


def _fault_settings(value, where):
    keys = Keys(value, where, optional=FAULT_KEYS)
    out = {}
    for key in ("latency", "jitter", "duration"):
        if key in value:
            seconds = keys.duration(key)
            if key == "duration" and seconds <= 0:
                raise SpecError(f"{where}.duration", "must be more than 0s")
            if key == "duration" and seconds > LONGEST_FAULT_S:
                raise SpecError(f"{where}.duration", f"{durations.humanize(seconds)} is longer than the "
                                                     f"backends' fault API takes ({durations.humanize(LONGEST_FAULT_S)})")
            out[key] = durations.as_millis(seconds)
    if "error_rate" in value:
        rate = value["error_rate"]
        if not _number(rate) or not 0.0 <= rate <= 1.0:
            raise SpecError(f"{where}.error_rate", f"{quoted(rate)} must be a number from 0.0 to 1.0")
        out["error_rate"] = float(rate)
    if "error_status" in value:
        status = value["error_status"]
        if isinstance(status, bool) or not isinstance(status, int) or not 500 <= status <= 599:
            raise SpecError(f"{where}.error_status", f"{quoted(status)} must be a status 500-599")
        out["error_status"] = status
    if "mode" in value:
        if value["mode"] not in MODES:
            raise SpecError(f"{where}.mode", f"{quoted(value['mode'])} is unknown ({', '.join(MODES)})")
        out["mode"] = value["mode"]
    return out


def _check_order(events):
    """A backend must be running for set/clear/kill, and killed for restart
    (`events` in time order)."""
    killed = {}
    for e in events:
        where, backend, at = f"faults[{e['index']}]", e["backend"], durations.humanize(e["at"])
        since = killed.get(backend)
        if e["action"] == "restart":
            if since is None:
                raise SpecError(f"{where}.action", f"restart of {backend}, which is not killed at {at}")
            del killed[backend]
        elif since is not None:
            raise SpecError(f"{where}.action", f"{e['action']} of {backend}, which is killed at {at} "
                                               f"(faults[{since}]; restart it first)")
        elif e["action"] == "kill":
            killed[backend] = e["index"]


def check_variants(value, gateway):
    """[(name, gateway settings with the variant's laid over the scenario's,
    the variant's own gates as written)]."""
    if not isinstance(value, list):
        raise SpecError("variants", f"must be a list, not {_kind(value)}")
    out, seen = [], set()
    for i, raw in enumerate(value):
        where = f"variants[{i}]"
        keys = Keys(raw, where, required=("name",), optional=("gateway", "gates"))
        name = keys.get("name")
        if not isinstance(name, str) or not VARIANT_NAME.fullmatch(name):
            raise SpecError(f"{where}.name", f"{quoted(name)} must be 1-64 of a-z, 0-9 and - (it names a directory)")
        if name in seen:
            raise SpecError(f"{where}.name", f'"{name}" names two variants')
        seen.add(name)
        own = check_gateway(keys.get("gateway", {}), f"{where}.gateway")
        out.append((name, merge(gateway, own), keys.get("gates", [])))
    return out


def merge(base, over):
    """`over` laid over `base`, mapping by mapping."""
    out = dict(base)
    for key, value in over.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _kind(v):
    return "nothing" if v is None else f"a {type(v).__name__}" if not isinstance(v, (str, int, float)) else quoted(v)


def quoted(v):
    """A value as error messages quote it: strings in double quotes."""
    return f'"{v}"' if isinstance(v, str) else repr(v)
