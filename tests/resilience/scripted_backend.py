"""A scripted raw-socket HTTP/1.1 backend for the resilience tests: it
answers whatever bytes a test scripts (broken framing, resets, stalls,
unasked bytes), which no real server would send. Standard library only.
"""

import socket
import struct
import threading
import time

from harness import HOST, free_port


class PeerRequest:
    """One request as a ScriptedBackend read it."""

    def __init__(self, conn, index, line, headers, body):
        self.conn = conn  # the PeerConn it came on
        self.index = index  # its position on that connection, from 0
        self.line = line  # the request line, as sent
        parts = line.split(" ")
        self.method = parts[0] if parts else ""
        self.target = parts[1] if len(parts) > 1 else ""
        self.headers = headers  # (lower-case name, value) pairs
        self.body = body  # None when the handler answers before the body

    def header(self, name):
        return next((v for k, v in self.headers if k == name), None)

    @property
    def request_id(self):
        return self.header("x-request-id")


class PeerConn:
    """One accepted connection of a ScriptedBackend, for handlers to script."""

    def __init__(self, backend, sock, number):
        self.backend = backend
        self.sock = sock
        self.number = number  # connections accepted before this one
        self.buf = b""

    def _recv(self):
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return None
        except OSError:
            return b""
        return chunk

    def read_head(self):
        """(request line, headers) of the next request; None at the end."""
        while b"\r\n\r\n" not in self.buf:
            if self.backend.closing.is_set():
                return None
            chunk = self._recv()
            if chunk == b"":
                return None
            if chunk:
                self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = []
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers.append((k.strip().lower(), v.strip()))
        return lines[0], headers

    def read_exactly(self, n):
        while len(self.buf) < n:
            chunk = self._recv()
            if chunk == b"" or self.backend.closing.is_set():
                raise ConnectionError("closed inside a request body")
            if chunk:
                self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_line(self):
        while b"\r\n" not in self.buf:
            chunk = self._recv()
            if chunk == b"" or self.backend.closing.is_set():
                raise ConnectionError("closed inside a request body")
            if chunk:
                self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_body(self, headers):
        codings = ",".join(v for k, v in headers if k == "transfer-encoding").lower()
        if "chunked" in codings:
            body = b""
            while True:
                size = int(self.read_line().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.read_line():
                        pass
                    return body
                body += self.read_exactly(size)
                self.read_exactly(2)
        length = next((v for k, v in headers if k == "content-length"), "0")
        return self.read_exactly(int(length.split(",")[0]))

    def send(self, data):
        # Reads poll every 200 ms (to notice close()); a large answer gets longer.
        try:
            self.sock.settimeout(5)
            self.sock.sendall(data)
        except OSError:
            pass
        finally:
            try:
                self.sock.settimeout(0.2)
            except OSError:
                pass

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def reset(self):
        """Closes with a TCP RST instead of a FIN."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()

    def hang(self):
        """Says nothing until the other side closes or the backend stops."""
        while not self.backend.closing.is_set():
            chunk = self._recv()
            if chunk == b"":
                break
        self.close()

    def close_after_draining(self, limit=2.0):
        """What servers do after an early answer: stop sending, read and drop
        what the client still sends (so no RST destroys the answer), close."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        end = time.monotonic() + limit
        while time.monotonic() < end and not self.backend.closing.is_set():
            if self._recv() == b"":
                break
        self.close()


def http_response(status=200, body=b"hello", headers=None, reason="OK"):
    """Bytes of a response with a Content-Length, unless `headers` frame it."""
    lines = [f"HTTP/1.1 {status} {reason}"]
    headers = list(headers or [])
    if not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in headers):
        headers.append(("Content-Length", str(len(body))))
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class ScriptedBackend:
    """A raw-socket HTTP/1.1 backend on a free loopback port, for scripting
    misbehaviour that no real server would show. Every request except the
    health check (`health_path`, answered 200 unless `health_hung` is set) is
    read (head and, unless the handler has `before_body = True`, body),
    recorded in `requests`, and handed to `handler(conn, request)`, which
    writes whatever it likes on `conn` (a PeerConn) and returns True to read
    another request on the same connection. One thread per connection;
    close() ends them all."""

    def __init__(self, handler=None, health_path="/healthz", port=None):
        self.port = port or free_port()
        self.handler = handler or (lambda conn, req: conn.send(http_response()) or True)
        self.health_path = health_path
        self.health_hung = threading.Event()
        self.closing = threading.Event()
        self.requests = []
        self.connections = 0
        self._lock = threading.Lock()
        self._socks = []
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((HOST, self.port))
        self.listener.listen(256)
        self.listener.settimeout(0.2)
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self):
        return f"http://{HOST}:{self.port}"

    def arrivals(self, request_id):
        """How many times a request with this X-Request-Id arrived."""
        with self._lock:
            return sum(1 for r in self.requests if r.request_id == request_id)

    def _accept(self):
        while not self.closing.is_set():
            try:
                sock, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            sock.settimeout(0.2)
            with self._lock:
                conn = PeerConn(self, sock, self.connections)
                self.connections += 1
                self._socks.append(sock)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        index = 0
        try:
            while not self.closing.is_set():
                head = conn.read_head()
                if head is None:
                    break
                line, headers = head
                if line.split(" ")[1:2] == [self.health_path]:
                    conn.read_body(headers)
                    if self.health_hung.is_set():
                        conn.hang()
                        return
                    conn.send(http_response(body=b"ok"))
                    continue
                handler = self.handler
                body = None if getattr(handler, "before_body", False) else conn.read_body(headers)
                request = PeerRequest(conn, index, line, headers, body)
                index += 1
                with self._lock:
                    self.requests.append(request)
                if not handler(conn, request):
                    break
        except (ConnectionError, ValueError, OSError):
            pass
        finally:
            conn.close()

    def close(self):
        self.closing.set()
        try:
            self.listener.close()
        except OSError:
            pass
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass
