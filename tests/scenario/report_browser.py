"""Opens a page from file:// in headless Chromium (Debian's `chromium`) with the
network blocked, and returns what a test needs to judge it:

- dom: the page's DOM after its scripts ran (`--dump-dom` once the virtual
  time budget is spent), parsed into elements (each knowing its parent, so a
  test can ask what is inside what) and visible text;
- console: every console message and uncaught error (`--enable-logging=stderr`
  prints them as CONSOLE lines);
- requests: every request the browser tried to send. All traffic goes to a
  recording proxy on loopback (`--proxy-server`) that answers nothing, so a
  page that needs the network is both seen and starved. Chromium's own calls
  home to Google's services are told apart by their host and left out.

screenshot() writes a PNG of the page at a given window size.

Standard library only; depends on nothing else in tests/.
"""

from __future__ import annotations

import re
import shutil
import socketserver
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

CHROMIUM = shutil.which("chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-breakpad",
         "--disable-domain-reliability", "--disable-client-side-phishing-detection", "--hide-scrollbars",
         "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,Translate,MediaRouter"]
# Hosts Chromium itself calls (component updates, accounts, time) whatever page it shows.
BROWSER_OWN = re.compile(r"(^|\.)(google\.com|googleapis\.com|gstatic\.com)$")
CONSOLE = re.compile(r":CONSOLE(?:\(\d+\)|:\d+)?\] (.*)$")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class RecordingProxy:
    """A TCP listener on 127.0.0.1 that notes each connection's request line and closes it."""

    def __init__(self):
        self.lines: list[str] = []
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                line = self.rfile.readline(8192).decode("latin-1").strip()
                if line:
                    outer.lines.append(line)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def page_requests(self) -> list[str]:
        return [line for line in self.lines if not BROWSER_OWN.search(_host(line))]


def _host(request_line: str) -> str:
    parts = request_line.split()
    target = parts[1] if len(parts) > 1 else ""
    if parts and parts[0] == "CONNECT":
        return target.rsplit(":", 1)[0]
    m = re.match(r"[a-z]+://([^/:]+)", target)
    return m.group(1) if m else target


@dataclass
class Element:
    tag: str
    attrs: dict
    text: str = ""  # direct and nested text, script and style text left out
    parent: "Element | None" = field(default=None, repr=False, compare=False)

    def within(self, ancestor: "Element") -> bool:
        e = self.parent
        while e is not None:
            if e is ancestor:
                return True
            e = e.parent
        return False


@dataclass
class Page:
    elements: list[Element]
    text: str
    console: list[str]
    requests: list[str]
    root: dict = field(default_factory=dict)

    def find(self, tag: str | None = None, cls: str | None = None, inside: Element | None = None) -> list[Element]:
        return [e for e in self.elements
                if (tag is None or e.tag == tag) and (cls is None or cls in e.attrs.get("class", "").split())
                and (inside is None or e.within(inside))]


class _DomParser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.open: list[Element] = []
        self.text: list[str] = []
        self.raw = 0  # inside script/style

    def handle_starttag(self, tag, attrs):
        e = Element(tag, {k: (v if v is not None else "") for k, v in attrs}, parent=self.open[-1] if self.open else None)
        self.elements.append(e)
        if tag in VOID:
            return
        self.open.append(e)
        if tag in ("script", "style"):
            self.raw += 1

    def handle_endtag(self, tag):
        for i in range(len(self.open) - 1, -1, -1):
            if self.open[i].tag == tag:
                if tag in ("script", "style"):
                    self.raw -= 1
                del self.open[i:]
                return

    def handle_data(self, data):
        if self.raw:
            return
        self.text.append(data)
        for e in self.open:
            e.text += data


def _run(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    if CHROMIUM is None:
        raise RuntimeError("chromium is not installed (make deps installs it)")
    with tempfile.TemporaryDirectory(prefix="report-chromium-") as profile:
        return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout)


def open_page(path: Path, window=(1400, 1800)) -> Page:
    """The page at path as Chromium left it after its scripts ran, with the network blocked."""
    with RecordingProxy() as proxy:
        done = _run([f"--proxy-server=127.0.0.1:{proxy.port}", "--proxy-bypass-list=<-loopback>",
                     "--enable-logging=stderr", "--v=0", f"--window-size={window[0]},{window[1]}",
                     "--virtual-time-budget=5000", "--dump-dom", Path(path).resolve().as_uri()])
    if done.returncode != 0 or "<html" not in done.stdout:
        raise RuntimeError(f"chromium --dump-dom failed ({done.returncode}): {done.stderr[-2000:]}")
    parser = _DomParser()
    parser.feed(done.stdout)
    console = [m.group(1) for m in map(CONSOLE.search, done.stderr.splitlines()) if m]
    html = next((e for e in parser.elements if e.tag == "html"), Element("html", {}))
    return Page(parser.elements, "".join(parser.text), console, proxy.page_requests(), html.attrs)


def screenshot(path: Path, out: Path, window=(1400, 1800)) -> Path:
    """A PNG of the page's first window-full, network blocked as for open_page."""
    out.parent.mkdir(parents=True, exist_ok=True)
    done = _run(["--proxy-server=127.0.0.1:9", f"--window-size={window[0]},{window[1]}",
                 "--virtual-time-budget=5000", f"--screenshot={out}", Path(path).resolve().as_uri()])
    if done.returncode != 0 or not out.is_file():
        raise RuntimeError(f"chromium --screenshot failed ({done.returncode}): {done.stderr[-2000:]}")
    return out
