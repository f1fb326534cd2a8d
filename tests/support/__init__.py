"""What the Python test suites share: free loopback ports, HTTP on them,
waiting on a deadline, and the release binaries (and other peers) started as
processes whose logs are kept and which are stopped whatever happens.

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/
    import support

- support.wait: poll() and wait_until(), the only way a suite waits for
  something to happen (no fixed sleeps).
- support.net: HOST, free_port(s), request()/fetch(), the admin API
  (register, unregister, servers).
- support.procs: Proc, Processes (start, wait ready, stop, logs), BIN.
- support.otlp: an OTLP/HTTP trace receiver (needs opentelemetry-proto; import
  it on its own).

Standard library only (otlp aside); depends on nothing else in tests/.
"""

from .net import HOST, fetch, free_port, free_ports, get_json, port_free, register, request, servers, unregister
from .procs import BIN, ROOT, Proc, Processes, StartupFailed, require_binaries, stop_everything
from .wait import poll, wait_until

__all__ = [
    "BIN",
    "HOST",
    "ROOT",
    "Proc",
    "Processes",
    "StartupFailed",
    "fetch",
    "free_port",
    "free_ports",
    "get_json",
    "poll",
    "port_free",
    "register",
    "request",
    "require_binaries",
    "servers",
    "stop_everything",
    "unregister",
    "wait_until",
]
