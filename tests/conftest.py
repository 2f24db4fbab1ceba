"""Shared test tools: a real server on a free port, deadline waits, a raw SSE reader."""

from __future__ import annotations

import http.client
import re
import subprocess
import json
import os
import shutil
import socket
import struct
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sse_dashboard.app import build_app  # noqa: E402
from sse_dashboard.web.server import DashboardServer  # noqa: E402

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
FAST_INTERVAL_S = 0.2


def require_tool(available: bool, what: str) -> None:
    """Skip locally when a tool is missing; in CI (CI=true) fail instead: a test that needs
    a tool must not pass in CI by being skipped (README, "The two commands")."""
    if available:
        return
    if IN_CI:
        pytest.fail("%s is required in CI but missing" % what)
    pytest.skip("%s is not installed" % what)


def required(module: str):
    """A test peer from the [test] extra (statsd, prometheus_client, ...): imported, or the test
    skips locally and fails in CI, like any missing tool."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        require_tool(False, "%s (pip install -e .[test])" % module)


def check_public_names(module) -> None:
    """``__all__`` lists exactly the module's public API: every name in it exists, and every
    public class or function the module defines is in it."""
    import inspect

    listed = set(module.__all__)
    assert all(hasattr(module, name) for name in listed), listed
    defined = {name for name, obj in vars(module).items()
               if not name.startswith("_") and (inspect.isclass(obj) or inspect.isfunction(obj))
               and obj.__module__ == module.__name__}
    assert defined <= listed, "public but not in __all__: %s" % sorted(defined - listed)


def wait_until(predicate, timeout: float = 5.0, message: str = "condition", interval: float = 0.01):
    """Poll ``predicate`` until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, message))
        time.sleep(interval)


class RunningServer:
    """A DashboardServer serving in a thread, with small helpers for requests."""

    def __init__(self, server: DashboardServer) -> None:
        self.server = server
        self.host, self.port = server.server_address[:2]
        self.thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return "http://%s:%d" % (self.host, self.port)

    def request(self, method: str, path: str, body=None, headers=None, timeout: float = 5.0,
                source: str = "127.0.0.1"):
        """(status, headers, body bytes). ``body`` dicts are sent as JSON; ``source`` is the
        client address (any of 127.0.0.0/8, to look like another client)."""
        headers = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout, source_address=(source, 0))
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.headers, resp.read()
        finally:
            conn.close()

    def raw(self, data: bytes, half_close: bool = True, timeout: float = 5.0) -> bytes:
        """Send raw bytes (a hand-made request) and read the whole reply until the server closes."""
        with socket.create_connection((self.host, self.port), timeout=timeout) as sock:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
            reply = b""
            while True:
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    break  # the server answered and closed without reading what we sent
                if not chunk:
                    break
                reply += chunk
        return reply

    def json(self, method: str, path: str, body=None, headers=None):
        status, headers, raw = self.request(method, path, body, headers)
        assert headers["Content-Type"].startswith("application/json"), headers["Content-Type"]
        return status, json.loads(raw)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def make_server():
    started = []

    def make(**kwargs) -> RunningServer:
        kwargs.setdefault("interval_s", FAST_INTERVAL_S)
        kwargs.setdefault("port", 0)
        server = build_app(host="127.0.0.1", **kwargs)
        running = RunningServer(server)
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()


@pytest.fixture
def server(make_server) -> RunningServer:
    return make_server()


class SSEReader:
    """A raw-socket EventSource stand-in: sends the GET, parses frames as the spec says."""

    def __init__(self, host: str, port: int, path: str = "/api/metrics/stream",
                 headers: dict | None = None, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        lines = ["GET %s HTTP/1.1" % path, "Host: %s:%d" % (host, port), "Accept: text/event-stream"]
        lines += ["%s: %s" % item for item in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buffer = b""
        head = self._read_until(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("stream closed")
            self.buffer += chunk
        part, _, self.buffer = self.buffer.partition(marker)
        return part

    def next_frame(self, timeout: float = 5.0) -> dict:
        """The next frame: {"event", "data", "id", "retry", "comments"} (raw strings)."""
        self.sock.settimeout(timeout)
        block = self._read_until(b"\n\n").decode("utf-8")
        frame = {"event": None, "data": None, "id": None, "retry": None, "comments": []}
        data = []
        for line in block.split("\n"):
            if line.startswith(":"):
                frame["comments"].append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data.append(value)
            elif name in ("event", "id", "retry"):
                frame[name] = value
        if data:
            frame["data"] = "\n".join(data)
        return frame

    def next_event(self, event: str, timeout: float = 5.0) -> dict:
        """Skip frames until one of type ``event`` arrives (bounded by ``timeout`` overall)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no %r frame within %.1fs" % (event, timeout))
            frame = self.next_frame(left)
            if frame["event"] == event:
                return frame

    def close(self, abort: bool = False) -> None:
        if abort:  # RST instead of FIN, like a killed browser tab
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


@pytest.fixture
def sse_reader():
    readers = []

    def open_reader(running: RunningServer, path: str = "/api/metrics/stream", headers=None) -> SSEReader:
        reader = SSEReader(running.host, running.port, path, headers)
        readers.append(reader)
        return reader

    yield open_reader
    for reader in readers:
        try:
            reader.close()
        except OSError:
            pass


class ServerProcess:
    def __init__(self, *args, env=None):
        full_env = dict(os.environ, **(env or {}))
        full_env.pop("PYTHONUTF8", None)
        if "--data-dir" not in args and "--help" not in args:
            args = args + ("--data-dir", ":memory:")  # never the checkout's data/ folder
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "sse_server.py"), *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=str(ROOT), env=full_env,
        )
        self.lines = []
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        try:
            for raw in self.proc.stdout:
                self.lines.append(raw.decode("utf-8", "replace"))
        except ValueError:
            pass  # stop() closed the pipe

    @property
    def output(self):
        return "".join(self.lines)

    def wait_for_url(self, timeout=10):
        match = wait_until(lambda: re.search(r"dashboard at http://127\.0\.0\.1:(\d+)/", self.output),
                           timeout=timeout, message="the start-up line")
        return int(match.group(1))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
        self.proc.stdout.close()


@pytest.fixture
def spawn():
    procs = []

    def start(*args, env=None):
        p = ServerProcess(*args, env=env)
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.stop()


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    # This machine has no network: without these Chromium keeps dialling out.
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    """A headless Debian Chromium, driven by Playwright (one per test module)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    require_tool(sync_playwright is not None, "playwright (pip install -e .[test])")
    executable = chromium_path()
    require_tool(executable is not None, "chromium (apt-get install -y chromium)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
