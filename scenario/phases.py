"""Phases: the named windows of a run that figures and gates are given for.
Depends on nothing (scenario.spec builds them, scenario.figures and
scenario.judge use them).

- `run`: the whole load, from its start to the end of the last stage.
- one phase per stage, named as the stage;
- when the scenario has fault events, three more: `baseline` (from the start
  to the first event), `fault` (from the first event until the last fault is
  over: the last `clear` or `restart`, or the end of a `set`'s own
  `duration`) and `recovery` (from then to the end). A phase that would be
  empty is left out: no `recovery` when a fault lasts to the end.

The rule for what belongs to a phase: a client second [t, t+1) (the requests
that ended in it) and a gateway interval between two samples belong to
every phase whose span holds their middle, after the phase's first `settle`
seconds. What ends after the last stage (requests finishing while Locust
stops, the final sample) belongs to the phases that last to the end. `run`
has no settle time: it holds everything. Phases use the planned times of
the fault events; the report marks the times they were applied.
"""

from dataclasses import dataclass

RUN = "run"
FAULT_PHASES = ("baseline", "fault", "recovery")


@dataclass(frozen=True)
class Phase:
    name: str
    start: float
    end: float
    kind: str  # run | stage | faults
    settle: float = 0.0

    @property
    def judged_from(self):
        """Where the phase's figures begin: its start plus the settle time."""
        return self.start + self.settle

    @property
    def span(self):
        """Seconds of the phase that count (its length less the settle time)."""
        return max(0.0, self.end - self.judged_from)

    def holds(self, middle, run_end):
        """Whether a second or interval whose middle is `middle` belongs here."""
        if middle < self.judged_from:
            return False
        return middle < self.end or self.end >= run_end


def fault_span(events, run_end):
    """(first event, when the last fault is over) in seconds, or None without
    events; the second is run_end when a fault lasts to the end. `events`
    hold at, backend, action and faults (a `set`'s own `duration` in ms text
    is read by `faults_duration`)."""
    if not events:
        return None
    first = min(e.at for e in events)
    over = {}  # backend -> when its current fault ends (None: still on)
    for e in sorted(events, key=lambda e: (e.at, e.index)):
        if e.action in ("clear", "restart"):
            over[e.backend] = e.at
        elif e.action == "set" and e.faults and "duration" in e.faults:
            over[e.backend] = min(run_end, e.at + faults_duration(e.faults["duration"]))
        else:  # set without duration, or kill: on until a later event
            over[e.backend] = None
    ends = list(over.values())
    return first, run_end if any(v is None for v in ends) else max(ends)


def faults_duration(text):
    """Seconds from the `123ms`/`123us` form the fault API is sent."""
    return float(text[:-2]) / (1000.0 if text.endswith("ms") else 1e6)


def build(stages, events, run_end, settle=0.0):
    """[Phase] for a scenario: run, the stages, then baseline/fault/recovery."""
    phases = [Phase(RUN, 0.0, run_end, "run")]
    phases += [Phase(s.name, s.start, s.end, "stage", settle) for s in stages]
    span = fault_span(events, run_end)
    if span:
        first, over = span
        for name, start, end in (("baseline", 0.0, first), ("fault", first, over), ("recovery", over, run_end)):
            if end > start:
                phases.append(Phase(name, start, end, "faults", settle))
    return phases


def by_name(phases):
    return {p.name: p for p in phases}
