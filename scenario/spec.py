"""The scenario file: read (JSON, or YAML when PyYAML is installed), checked
key by key, and held as dataclasses with durations in seconds. Every problem
is a SpecError naming the key path, raised before anything is started.
Depends on scenario.durations, scenario.checks and scenario.gates (the
per-section rules) and scenario.phases.
"""

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import durations, phases
from .checks import Keys, SpecError, check_faults, check_gateway, check_variants, quoted
from .gates import check_gates

try:  # optional: JSON needs no PyYAML, and the Kubernetes Job has none
    import yaml
except ImportError:  # pragma: no cover - depends on the machine
    yaml = None

NAME = re.compile(r"[a-z0-9-]{1,64}")
BACKEND_NAME = re.compile(r"[A-Za-z0-9_.-]{1,63}")  # the gateway's rule for server names
DEFAULT_BACKENDS = ["server1", "server2", "server3"]
USERS = ("api", "constant_rate")
TARGETS = ("local", "kubernetes")
MAX_VALUES = 100_000  # values in a file, YAML aliases expanded: far beyond any scenario, well before a bomb
MAX_DEPTH = 50  # mappings and lists inside each other


@dataclass
class Stage:
    name: str
    duration: float
    users: int
    spawn_rate: float
    start: float = 0.0
    rate: float | None = None  # constant_rate: this stage's requests per second (else the load's)

    @property
    def end(self):
        return self.start + self.duration


@dataclass
class Load:
    user: str
    path: str
    rate: float | None
    stages: list


@dataclass
class FaultEvent:
    index: int
    at: float
    backend: str
    action: str  # set | clear | kill | restart
    faults: dict | None = None  # as PUT /api/faults takes them (durations as text)

    def label(self):
        return f"{self.action} {self.backend}"


@dataclass
class Variant:
    name: str
    gateway: dict  # the scenario's `gateway` with this variant's settings laid over it
    gates: list = field(default_factory=list)  # judged on this variant only, after the scenario's


@dataclass
class Scenario:
    name: str
    description: str
    file: str
    backends: list
    gateway: dict
    load: Load
    faults: list
    settle: float = 0.0
    phases: list = field(default_factory=list)
    variants: list = field(default_factory=list)
    gates: list = field(default_factory=list)

    @property
    def duration(self):
        return self.load.stages[-1].end

    def gates_for(self, variant):
        """The gates a variant's run is judged on: the scenario's, then its own."""
        own = next((v.gates for v in self.variants if v.name == variant), [])
        return self.gates + own

    def runs(self):
        """(variant name, gateway settings) per run: one per variant, or `default`."""
        if not self.variants:
            return [Variant("default", self.gateway)]
        return self.variants

    def to_dict(self):
        """The validated scenario as summary.json holds it (seconds for durations)."""
        out = asdict(self)
        out["duration_s"] = self.duration
        for stage in out["load"]["stages"]:
            stage["end"] = stage["start"] + stage["duration"]
        for gate, spec in zip(out["gates"], self.gates):
            gate["name"], gate["unit"] = spec.name, spec.unit
        for variant, spec in zip(out["variants"], self.variants):
            for gate, gspec in zip(variant["gates"], spec.gates):
                gate["name"], gate["unit"] = gspec.name, gspec.unit
        for phase, spec in zip(out["phases"], self.phases):
            phase["judged_from"] = spec.judged_from
        return out


def load(path, target="local"):
    """Reads and checks a scenario file; raises SpecError (one line) on any problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise SpecError(None, f"cannot read the file: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise SpecError(None, "is not UTF-8 text") from None
    data = _parse(text)
    return validate(data, path, target)


def _parse(text):
    data = _parse_text(text)
    _check_size(data)
    return data


def _parse_text(text):
    try:
        return json.loads(text)
    except RecursionError:
        raise SpecError(None, f"is nested too deeply (at most {MAX_DEPTH} levels)") from None
    except ValueError as json_error:
        if yaml is None:
            raise SpecError(
                None, f"is not JSON ({json_error}), and PyYAML, needed for YAML, is not installed"
            ) from None
    try:
        return yaml.safe_load(text)
    except RecursionError:
        raise SpecError(None, f"is nested too deeply (at most {MAX_DEPTH} levels)") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SpecError(None, f"is not valid YAML{where}: {problem}") from None


def _check_size(data):
    """Refuses a file whose values, YAML aliases expanded, are too many or
    too deeply nested (an alias bomb takes a few lines and billions of
    values); stops counting at the limit, so it costs little either way."""
    count, todo = 0, [(data, 0)]
    while todo:
        value, depth = todo.pop()
        count += 1
        if count > MAX_VALUES:
            raise SpecError(None, f"holds more than {MAX_VALUES} values (YAML aliases expanded): too large")
        if depth > MAX_DEPTH:
            raise SpecError(None, f"is nested too deeply (at most {MAX_DEPTH} levels)")
        if isinstance(value, dict):
            todo.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            todo.extend((v, depth + 1) for v in value)


def validate(data, path, target="local"):
    """Scenario from already-parsed data (`path` names the file in errors)."""
    if target not in TARGETS:
        raise SpecError(None, f"unknown target {target!r} ({', '.join(TARGETS)})")
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise SpecError(None, f"must be a mapping of keys (name, description, load, ...), not {kind}")
    top = Keys(data, "", required=("description", "load"),
               optional=("name", "backends", "gateway", "settle", "faults", "variants", "gates"))
    name = top.get("name", Path(path).stem)
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise SpecError("name", f"{quoted(name)} must be 1-64 of a-z, 0-9 and - (it names the run directory)")
    description = top.get("description")
    if not isinstance(description, str) or not description.strip():
        raise SpecError("description", "must be a sentence saying what the scenario shows")
    backends = _backends(top.get("backends", list(DEFAULT_BACKENDS)))
    gateway = check_gateway(top.get("gateway", {}), "gateway")
    stages_load = _load(top.get("load"))
    scenario = Scenario(
        name=name, description=description.strip(), file=str(path), backends=backends, gateway=gateway,
        load=stages_load, faults=[],
    )
    scenario.faults = [FaultEvent(**e) for e in check_faults(top.get("faults", []), scenario, target)]
    scenario.settle = top.duration("settle") if "settle" in data else 0.0
    scenario.phases = phases.build(stages_load.stages, scenario.faults, scenario.duration, scenario.settle)
    _check_phase_names(scenario)
    scenario.variants = [Variant(n, g, check_gates(own, scenario, f"variants[{i}].gates"))
                         for i, (n, g, own) in enumerate(check_variants(top.get("variants", []), gateway))]
    scenario.gates = check_gates(top.get("gates", []), scenario)
    return scenario


def _check_phase_names(scenario):
    made = [p.name for p in scenario.phases if p.kind == "faults"]
    for i, stage in enumerate(scenario.load.stages):
        if scenario.faults and stage.name in phases.FAULT_PHASES:
            raise SpecError(f"load.stages[{i}].name", f'"{stage.name}" is a phase the fault events make '
                            f"({', '.join(made)}); give the stage another name")


def _backends(value):
    if not isinstance(value, list) or not value:
        raise SpecError("backends", "must be a non-empty list of names")
    seen = set()
    for i, name in enumerate(value):
        if not isinstance(name, str) or not BACKEND_NAME.fullmatch(name):
            raise SpecError(f"backends[{i}]", f"{quoted(name)} must be 1-63 of A-Z, a-z, 0-9, -, _ and .")
        if name in seen:
            raise SpecError(f"backends[{i}]", f'"{name}" appears twice')
        seen.add(name)
    return list(value)


def _load(value):
    keys = Keys(value, "load", required=("stages",), optional=("user", "path", "rate"))
    user = keys.get("user", "api")
    if user not in USERS:
        raise SpecError("load.user", f"{quoted(user)} is unknown ({', '.join(USERS)})")
    path = keys.get("path", "/api/data")
    if not isinstance(path, str) or not path.startswith("/") or any(c.isspace() or ord(c) < 32 for c in path):
        raise SpecError("load.path", f"{quoted(path)} must be a path starting with / (no spaces)")
    rate = keys.get("rate")
    stages = keys.get("stages")
    if not isinstance(stages, list) or not stages:
        raise SpecError("load.stages", "must be a non-empty list of stages")
    every_stage_rated = all(isinstance(st, dict) and "rate" in st for st in stages)
    if user == "constant_rate":
        if (rate is not None or not every_stage_rated) and (not _number(rate) or rate <= 0):
            raise SpecError("load.rate", "constant_rate needs `rate`, the total requests per second (a number > 0), "
                                         "here or on every stage")
    elif rate is not None:
        raise SpecError("load.rate", "only for user constant_rate (the api user waits 1-3 s between requests)")
    out, start, names = [], 0.0, set()
    for i, raw in enumerate(stages):
        where = f"load.stages[{i}]"
        s = Keys(raw, where, required=("duration", "users"), optional=("name", "spawn_rate", "rate"))
        stage_name = s.get("name", f"stage-{i + 1}")
        if not isinstance(stage_name, str) or not NAME.fullmatch(stage_name) or stage_name == "run":
            raise SpecError(f"{where}.name", f"{quoted(stage_name)} must be 1-64 of a-z, 0-9 and - (and not `run`)")
        if stage_name in names:
            raise SpecError(f"{where}.name", f'"{stage_name}" names two stages')
        names.add(stage_name)
        duration = s.duration("duration")
        if duration <= 0:
            raise SpecError(f"{where}.duration", "must be more than 0s")
        users = s.get("users")
        if isinstance(users, bool) or not isinstance(users, int) or not 0 <= users <= 10000:
            raise SpecError(f"{where}.users", f"{quoted(users)} must be a whole number 0-10000")
        spawn_rate = s.get("spawn_rate", max(users, 1))
        if not _number(spawn_rate) or spawn_rate <= 0:
            raise SpecError(f"{where}.spawn_rate", f"{quoted(spawn_rate)} must be a number > 0 (users per second)")
        stage_rate = s.get("rate")
        if stage_rate is not None:
            if user != "constant_rate":
                raise SpecError(f"{where}.rate", "only for user constant_rate (the api user waits 1-3 s between requests)")
            if not _number(stage_rate) or stage_rate <= 0:
                raise SpecError(f"{where}.rate", f"{quoted(stage_rate)} must be a number > 0 (requests per second)")
        out.append(Stage(stage_name, duration, users, float(spawn_rate), start,
                         float(stage_rate) if stage_rate is not None else None))
        start += duration
    if not any(st.users for st in out):
        raise SpecError("load.stages", "every stage has 0 users: the scenario sends nothing")
    return Load(user, path, float(rate) if rate is not None else None, out)


def _number(v):
    """A number, finite and of a sane size (YAML's .nan and .inf are floats
    too, and a 400-digit int cannot become one)."""
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(v) and abs(v) <= 1e12
    except OverflowError:
        return False



def summary_line(scenario):
    """`N stages, M faults, K gates, 50s per variant` for `check`."""
    n = len(scenario.load.stages), len(scenario.faults), len(scenario.gates) + sum(
        len(v.gates) for v in scenario.variants)
    variants = f", {len(scenario.variants)} variants" if scenario.variants else ""
    made = [p.name for p in scenario.phases if p.kind == "faults"]
    from_faults = f", phases {'/'.join(made)} from the faults" if made else ""
    return (f"{n[0]} stages, {n[1]} faults{from_faults}, {n[2]} gates{variants}, "
            f"{durations.humanize(scenario.duration)} per variant")
