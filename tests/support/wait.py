"""Waiting for something to happen by polling on a deadline.

A test that needs a state (a port that answers, a backend marked down, a log
line written) asks for it with these and goes on the moment it holds; only a
test whose behaviour *is* the passing of time (a client that stays silent, a
load of a given length) sleeps, and says why. Depends on nothing else.
"""

import time


def poll(check, timeout, interval=0.05):
    """Calls check() until it returns something truthy or `timeout` seconds
    have passed, and returns its last result (falsy when the time ran out).
    check() runs at least once, and once more at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        left = deadline - time.monotonic()
        if result or left <= 0:
            return result
        time.sleep(min(interval, left))


def wait_until(check, timeout, what="the condition", interval=0.05, procs=()):
    """Polls check() until it returns something truthy, and returns that.

    An exception from check() counts as "not yet" (a service that is still
    starting refuses connections). Raises AssertionError naming `what` after
    `timeout` seconds, or as soon as one of `procs` (support.procs.Proc) has
    exited, with check()'s last exception and the tail of those processes'
    logs."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        exited = [p for p in procs if not p.alive()]
        if exited:
            break
        try:
            result = check()
            if result:
                return result
            last = None
        except Exception as e:  # noqa: BLE001 - not there yet, whatever the reason
            last = e
        left = deadline - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(interval, left))
    why = ", ".join(f"{p.name} exited with {p.returncode}" for p in exited) or f"not within {timeout:g} s"
    detail = f": {type(last).__name__}: {last}" if last is not None else ""
    logs = "".join(f"\n--- {p.name} (last lines) ---\n{p.tail()}" for p in procs)
    raise AssertionError(f"{what}: {why}{detail}{logs}")
