"""What the resilience tests (`make test-resilience`) share beyond
tests/support: the scenario summary, a ProcessTest base with this suite's
defaults, raw-socket HTTP (answers as they are framed on the wire), a paced
keep-alive load, and a poller of backend states. Standard library only.

Real processes only: the release `gateway` and `backend` binaries from
target/release, each on its own free loopback port (support.net), stopped
when their test ends, pass or fail (support.procs).
"""

import http.client
import json
import re
import resource
import socket
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for support

from support import (  # noqa: E402,F401  (re-exported for the tests)
    BIN,
    HOST,
    ROOT,
    Processes,
    free_port,
    get_json,
    poll,
    register,
    request,
    require_binaries,
    servers,
    stop_everything,
    unregister,
    wait_until,
)

SUMMARIES = []


def summary(scenario, text):
    """Records one line for the end-of-run summary and prints it now."""
    line = f"[{scenario}] {text}"
    SUMMARIES.append(line)
    print(f"\n  {line}", file=sys.stderr, flush=True)


def raise_fd_limit(want=8192):
    """Raises the soft open-files limit (inherited by the children): the slow
    client test holds hundreds of sockets on both ends."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft
    if hard != resource.RLIM_INFINITY and hard < want:
        try:  # root may raise the hard limit too
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want
        except (ValueError, OSError):
            want = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


LOG_DIRS = []


def make_log_dir(test_name):
    """A fresh directory for one test's logs, under target/run/."""
    base = ROOT / "target" / "run"
    base.mkdir(parents=True, exist_ok=True)
    path = tempfile.mkdtemp(prefix=f"resilience.{test_name}.", dir=base)
    LOG_DIRS.append(path)
    return path


class ProcessTest(unittest.TestCase):
    """A scenario that starts processes: a fresh log directory per test, and
    every process stopped when the test ends, pass or fail."""

    def setUp(self):
        require_binaries()
        self.log_dir = make_log_dir(self.id().rsplit(".", 1)[-1])
        self.procs = Processes(self.log_dir, grace=5.0)
        self.addCleanup(self.procs.stop_all)

    def backend(self, name, port=None, env=None):
        """A release backend logging warnings only, ready once /healthz answers."""
        return self.procs.backend(name, port, {"BACKEND__LOG__LEVEL": "warn", **(env or {})}, ready="/healthz")

    def gateway(self, name="gateway", port=None, settings=None, env=None, wait=True):
        """A release gateway without access log unless `settings` turn it on,
        ready once /readyz answers (unless `wait` is False)."""
        settings = {"log.access_log": "false", **(settings or {})}
        return self.procs.gateway(name, port, settings, env, ready="/readyz" if wait else None)


# ---------------------------------------------------------------- logs

FORGED = "2030-01-01T00:00:00.000000Z"  # the timestamp the tests' forged log lines start with
CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def log_problems(new):
    """Raw control characters (tab included), invalid UTF-8, or forged lines
    in a stretch of log output."""
    problems = []
    text = new.decode("utf-8", "replace")
    if "\ufffd" in text:
        problems.append("log: invalid UTF-8 bytes")
    lines = text.split("\n")  # only what the gateway ends lines with; NEL and CR count as raw controls
    for line in lines:
        m = CONTROL.search(line)
        if m:
            problems.append(f"log: raw control character {m.group()!r} in {_short(line)}")
            break
    for line in lines:
        if line.startswith(FORGED) or (line and not re.match(r"\d{4}-\d\d-\d\dT", line)):
            problems.append(f"log: line not written by the gateway: {_short(line)}")
            break
    return problems


def _short(value):
    text = repr(value)
    return text if len(text) <= 160 else text[:157] + "..."


# ---------------------------------------------------------------- HTTP


def states(port):
    return {s["name"]: s["state"] for s in servers(port)}


def metric_samples(port):
    """GET /metrics as (name, {label: value}, value) triples."""
    status, _, body = request(port, "GET", "/metrics")
    if status != 200:
        raise AssertionError(f"GET /metrics: HTTP {status}")
    samples = []
    for line in body.decode("utf-8", "replace").splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, _, labels = head.partition("{")
        pairs = {}
        for m in re.finditer(r'(\w+)="((?:[^"\\]|\\.)*)"', labels):
            pairs[m.group(1)] = m.group(2)
        try:
            samples.append((name, pairs, float(value)))
        except ValueError:
            pass
    return samples


def metric_sum(port, name, **labels):
    """The sum of every sample of `name` whose labels include `labels`."""
    return sum(
        v for n, ls, v in metric_samples(port) if n == name and all(ls.get(k) == w for k, w in labels.items())
    )


def raw_exchange(port, payload, timeout=5.0, half_close=False):
    """Sends raw bytes on a fresh connection and reads until the server closes
    (or `timeout`). Returns (status or None, headers, body bytes, raw bytes).
    The peer may close (or reset) while we are still sending, as it may when
    refusing an oversized request: whatever arrived before is still parsed."""
    s = socket.create_connection((HOST, port), timeout=timeout)
    received = b""
    try:
        try:
            s.sendall(payload)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except OSError:  # EPIPE, ECONNRESET, ENOTCONN: the peer already gave up
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            except socket.timeout:
                break
            if not chunk:
                break
            received += chunk
            # One response is all we want; stop once it is complete.
            parsed = parse_response(received)
            if parsed is not None and parsed[3]:
                break
    finally:
        s.close()
    parsed = parse_response(received)
    if parsed is None:
        return None, {}, b"", received
    status, headers, body, _ = parsed
    return status, headers, body, received


def parse_response(data):
    """(status, headers, body, complete) from raw bytes, or None without a head."""
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    head = data[:head_end].decode("latin-1").split("\r\n")
    try:
        status = int(head[0].split(" ", 2)[1])
    except (IndexError, ValueError):
        return None
    headers = {}
    for line in head[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    rest = data[head_end + 4 :]
    if "content-length" in headers:
        n = int(headers["content-length"])
        return status, headers, rest[:n], len(rest) >= n
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body, pos = b"", 0
        while True:
            line_end = rest.find(b"\r\n", pos)
            if line_end < 0:
                return status, headers, body, False
            size = int(rest[pos:line_end].split(b";")[0] or b"0", 16)
            if size == 0:
                return status, headers, body, True
            body += rest[line_end + 2 : line_end + 2 + size]
            pos = line_end + 2 + size + 2
            if pos > len(rest):
                return status, headers, body, False
    return status, headers, rest, False


class RawResponse:
    """One response as read off a raw socket, with what its framing says.

    - ``status``: the final status, None without a whole head;
    - ``headers``: (lower-case name, value) pairs in order, repeats kept;
    - ``complete``: the body ended as its framing says (close-delimited
      bodies are complete when the server closed);
    - ``closed``: the server closed or reset the connection (while the
      answer was read, or within the linger time after it);
    - ``interim``: statuses of 1xx answers before the final one;
    - ``extra``: bytes after the response (a second answer, or junk);
    - ``elapsed``: seconds from sending to the last byte or the close.
    """

    def __init__(self):
        self.status = None
        self.headers = []
        self.body = b""
        self.complete = False
        self.closed = False
        self.interim = []
        self.extra = b""
        self.raw = b""
        self.elapsed = 0.0

    def header(self, name):
        return next((v for k, v in self.headers if k == name), None)

    def header_all(self, name):
        return [v for k, v in self.headers if k == name]

    def json_code(self):
        """The `error.code` of a JSON error answer, else None."""
        try:
            return json.loads(self.body)["error"]["code"]
        except (ValueError, KeyError, TypeError):
            return None

    def outcome(self):
        """The status when the answer is whole; else what happened instead."""
        if self.status is None:
            return "closed without an answer" if self.closed else "no answer"
        if not self.complete:
            return "cut" if self.closed else "stalled"
        return self.status

    def __repr__(self):
        return f"<{self.outcome()} {len(self.body)} body bytes{' closed' if self.closed else ''} after {ms(self.elapsed)}>"


def _parse_head(data):
    """(status, headers, head length) of the first head in data, or None."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = data[:end].decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split(" ", 2)[1])
    except (IndexError, ValueError):
        status = -1  # not HTTP: reported as such
    headers = []
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.append((k.strip().lower(), v.strip()))
    return status, headers, end + 4


def _chunked(data):
    """(body, bytes used, complete) of a chunked body at the start of data;
    stops (incomplete) at anything malformed."""
    body, pos = b"", 0
    while True:
        end = data.find(b"\r\n", pos)
        if end < 0:
            return body, pos, False
        try:
            size = int(data[pos:end].split(b";")[0].strip(), 16)
        except ValueError:
            return body, pos, False
        pos = end + 2
        if size == 0:
            while True:  # trailer lines, up to the empty one
                end = data.find(b"\r\n", pos)
                if end < 0:
                    return body, pos, False
                line, pos = data[pos:end], end + 2
                if not line:
                    return body, pos, True
        if len(data) < pos + size + 2:
            return body + data[pos : pos + size], len(data), False
        if data[pos + size : pos + size + 2] != b"\r\n":
            return body + data[pos : pos + size], pos + size, False
        body += data[pos : pos + size]
        pos += size + 2


def _framed(data, status, headers, method):
    """(body, bytes used, complete or None when only a close ends it)."""
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return b"", 0, True
    codings = ",".join(v for k, v in headers if k == "transfer-encoding").lower()
    if codings:
        if codings.replace(" ", "").endswith("chunked"):
            return _chunked(data)
        return data, len(data), None
    lengths = [v for k, v in headers if k == "content-length"]
    if lengths:
        try:
            n = int(lengths[0].split(",")[0])
        except ValueError:
            return data, len(data), None
        return data[:n], min(n, len(data)), len(data) >= n
    return data, len(data), None


def read_response(sock, timeout=5.0, method="GET", linger=0.0, started=None):
    """Reads one response (skipping 1xx answers) until it is complete, the
    server closes, or `timeout`; then waits up to `linger` seconds more to see
    whether the server closes the connection."""
    r = RawResponse()
    started = time.monotonic() if started is None else started
    deadline = started + timeout
    data = b""

    def parse():
        rest = data
        r.interim = []
        while True:
            head = _parse_head(rest)
            if head is None:
                return False
            status, headers, used = head
            if 100 <= status < 200:
                r.interim.append(status)
                rest = rest[used:]
                continue
            r.status, r.headers = status, headers
            body, consumed, complete = _framed(rest[used:], status, headers, method)
            r.body = body
            r.extra = rest[used + consumed :]
            r.complete = bool(complete) or (complete is None and r.closed)
            return complete is not None and complete

    done = False
    while not done:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        except OSError:  # reset
            chunk = b""
        if not chunk:
            r.closed = True
            parse()
            break
        data += chunk
        r.raw = data
        done = parse()
    r.elapsed = time.monotonic() - started
    if done and linger > 0:
        # Whatever follows (a close, or bytes that should never come).
        end = time.monotonic() + linger
        while time.monotonic() < end:
            sock.settimeout(max(0.01, end - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            except OSError:
                chunk = b""
            if not chunk:
                r.closed = True
                break
            r.extra += chunk
    r.raw = data
    return r


def raw_request(port, payload, timeout=5.0, method="GET", linger=0.0):
    """Sends raw bytes on a fresh connection and reads one response with
    read_response. A large payload is sent from a thread while the answer is
    read, since the server may answer (and stop reading) before the end. The
    server may close while we are still sending: what arrived before is
    still read."""
    s = socket.create_connection((HOST, port), timeout=timeout)
    started = time.monotonic()

    def send():
        try:
            s.sendall(payload)
        except OSError:  # EPIPE, ECONNRESET, timeout: the peer stopped reading
            pass

    sender = None
    try:
        if len(payload) > 65536:
            sender = threading.Thread(target=send, daemon=True)
            sender.start()
        else:
            send()
        return read_response(s, timeout, method, linger, started)
    finally:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()
        if sender is not None:
            sender.join(timeout)


# ---------------------------------------------------------------- load


class Result:
    __slots__ = ("start", "end", "status", "error", "served_by", "reused")

    def __init__(self, start, end, status, error, served_by, reused):
        self.start = start
        self.end = end
        self.status = status
        self.error = error
        self.served_by = served_by
        self.reused = reused

    @property
    def latency(self):
        return self.end - self.start

    def __repr__(self):
        what = self.status if self.error is None else self.error
        return f"<{what} after {self.latency * 1000:.0f} ms>"

    @property
    def ok(self):
        return self.status is not None and 200 <= self.status < 300


class Load:
    """Steady paced GET load on keep-alive connections from `threads` threads,
    `rate` requests per second in total, until stop() or `max_seconds`.
    Every request's outcome is recorded: status, or the error kind:

    - ``refused``: a new connection was refused (nothing was sent);
    - ``closed_before_response``: a reused keep-alive connection was closed by
      the server without any response byte (the idle-connection race of
      RFC 9112 9.3.1, at most once per connection);
    - ``reset_new_connection``: a new connection was reset or closed before
      any response byte (the kernel had queued it, the server never took it);
    - ``error:<Type>``: anything else (reset, timeout, truncated body...).
    """

    def __init__(self, port, path="/api/data", rate=300, threads=6, max_seconds=30, timeout=5.0):
        self.port = port
        self.path = path
        self.rate = rate
        self.threads = threads
        self.max_seconds = max_seconds
        self.timeout = timeout
        self.results = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers = []

    def start(self):
        self.t0 = time.monotonic()
        for i in range(self.threads):
            t = threading.Thread(target=self._run, args=(i,), daemon=True)
            t.start()
            self._workers.append(t)
        return self

    def stop(self):
        self._stop.set()
        for t in self._workers:
            t.join(timeout=self.timeout + 5)
        return self.results

    def _run(self, index):
        interval = self.threads / self.rate
        next_at = self.t0 + index * interval / self.threads
        conn, used = None, 0
        deadline = self.t0 + self.max_seconds
        local = []
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= deadline:
                break
            if next_at > now:
                time.sleep(next_at - now)
            next_at += interval
            start = time.monotonic()
            status = error = served_by = None
            reused = used > 0
            phase = "connect"
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
                    conn.connect()
                    used, reused = 0, False
                phase = "request"
                conn.request("GET", self.path)
                r = conn.getresponse()
                phase = "body"
                r.read()
                status = r.status
                served_by = r.getheader("x-served-by")
                used += 1
                if r.will_close:
                    conn.close()
                    conn = None
            except ConnectionRefusedError:
                error = "refused"
            except (ConnectionResetError, http.client.RemoteDisconnected, BrokenPipeError) as e:
                if phase == "request":
                    # Not one response byte came back on this connection.
                    error = "closed_before_response" if reused else "reset_new_connection"
                else:
                    error = f"error:{type(e).__name__}"
            except (OSError, http.client.HTTPException) as e:
                error = f"error:{type(e).__name__}"
            if error is not None and conn is not None:
                conn.close()
                conn = None
            local.append(Result(start, time.monotonic(), status, error, served_by, reused))
        if conn is not None:
            conn.close()
        with self._lock:
            self.results.extend(local)


def latency_stats(results):
    lat = sorted(r.latency for r in results)
    if not lat:
        return {"n": 0, "p50": 0, "p99": 0, "max": 0}

    def pct(p):
        return lat[min(len(lat) - 1, int(p / 100 * len(lat)))]

    return {"n": len(lat), "p50": pct(50), "p99": pct(99), "max": lat[-1]}


def ms(seconds):
    value = seconds * 1000
    return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"


class StatePoller:
    """Polls GET /api/servers every `interval` seconds in a thread and keeps
    (monotonic time, {name: state}) samples."""

    def __init__(self, port, interval=0.05):
        self.port = port
        self.interval = interval
        self.samples = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)
        return self.samples

    def _run(self):
        while not self._stop.is_set():
            try:
                current = states(self.port)
                # The time the answer arrived: a conservative upper bound.
                self.samples.append((time.monotonic(), current))
            except (OSError, AssertionError, ValueError):
                pass
            self._stop.wait(self.interval)

    def first(self, name, predicate, after):
        """Time of the first sample at or after `after` where predicate(state)."""
        for t, s in list(self.samples):
            if t >= after and name in s and predicate(s[name]):
                return t
        return None

