"""Fuzzing the HTTP surface over raw sockets: whatever arrives, the server answers like a server.

Hypothesis writes requests byte by byte (request lines, headers, query strings, JSON bodies) and
sends them to an in-process server. The oracle, for every request (README, "The API"):

- a complete HTTP status line comes back, with a status below 500 (except the two an HTTP/1.x
  server owes: 501 for a method it does not know, 505 for a request line naming HTTP/2);
- the body is whole (Content-Length, or chunks up to the last one); a 4xx that has a body says
  why as JSON ``{"error": "..."}``; a 200 JSON body parses;
- nothing is logged at ERROR or with a traceback, and no thread dies of an exception;
- afterwards ``GET /api/health`` is 200;
- a request answered 4xx stored nothing: ``GET /api/events``'s ``last_id`` and the counters and
  gauges are what they were before it.

GETs go to two long-lived servers holding a few events and metrics, one in memory and one on
SQLite (the command line's default). POST bodies go to a new server per example, so a request
that corrupts a server cannot make the next example fail; after a body is accepted, everything
that shows it (event list, exports, CSV, snapshot, Prometheus, history, stream) is read back.

Budget: about 150 examples per test in CI; ``SSE_FUZZ_EXAMPLES=N`` runs N per test.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from sse_dashboard.app import build_app
from conftest import RunningServer, wait_until

# Hypothesis keeps caches (source constants, Unicode tables) in .hypothesis/ under the working
# directory, some of them written while pytest collects; keep them out of the checkout.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(tempfile.gettempdir(), "sse-dashboard-hypothesis"))

EXAMPLES = int(os.environ.get("SSE_FUZZ_EXAMPLES", "0") or 0)
INTERVAL_S = 0.2
FRESH_INTERVAL_S = 0.05  # new servers per example sample faster, so reading an accepted POST back is quick


def fuzz_settings(ci_examples: int) -> settings:
    return settings(
        max_examples=EXAMPLES or ci_examples,
        deadline=None,
        database=None,  # no .hypothesis/ folder in the checkout
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                               HealthCheck.large_base_example, HealthCheck.function_scoped_fixture],
    )


# --------------------------------------------------------------------------
# Sending raw bytes and reading the reply
# --------------------------------------------------------------------------


@dataclass
class Reply:
    """One request and the bytes that came back, read as an HTTP/1.x response (the first one:
    bytes sent past a body's end are the next request on a keep-alive connection)."""

    request: bytes
    raw: bytes

    @property
    def status(self) -> int | None:
        match = re.match(rb"HTTP/1\.[01] (\d{3}) [^\r\n]*\r\n", self.raw)
        return int(match.group(1)) if match else None

    @property
    def head(self) -> bytes:
        return self.raw.partition(b"\r\n\r\n")[0]

    def header(self, name: str) -> str | None:
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name.lower().encode():
                return value.strip().decode("latin-1")
        return None

    @property
    def method(self) -> bytes:
        return self.request.split(b" ", 1)[0]

    def body(self) -> tuple[bytes, bool]:
        """(body, complete): by Content-Length, by chunks, or up to the close."""
        rest = self.raw.partition(b"\r\n\r\n")[2]
        if self.method == b"HEAD" or self.status in (204, 304):
            return b"", True
        if "chunked" in (self.header("Transfer-Encoding") or "").lower():
            return dechunk(rest)
        length = self.header("Content-Length")
        if length is not None and length.isdigit():
            return rest[:int(length)], len(rest) >= int(length)
        return rest, True

    def __repr__(self) -> str:
        return "request %r\n  answered %r" % (self.request[:600], self.raw[:600])


def dechunk(data: bytes) -> tuple[bytes, bool]:
    """A chunked body decoded, and whether its last (empty) chunk arrived."""
    body = b""
    while True:
        size_line, sep, data = data.partition(b"\r\n")
        if not sep:
            return body, False
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            return body, False
        if size == 0:
            return body, True
        if len(data) < size + 2:
            return body + data[:size], False
        body, data = body + data[:size], data[size + 2:]


def exchange(server: RunningServer, request: bytes, timeout: float = 10.0) -> Reply:
    """Send ``request`` whole, half-close (so a keep-alive connection ends after the answer), and
    read until the server closes. A stream is read only up to the end of its headers."""
    deadline = time.monotonic() + timeout
    with socket.create_connection((server.host, server.port), timeout=timeout) as sock:
        try:
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server answered early (413, 414, ...) and closed: read what it said
        raw = b""
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            raw += chunk
            head, sep, _ = raw.partition(b"\r\n\r\n")
            if sep and b"text/event-stream" in head.lower():
                break  # a live stream: the status line and headers are all we judge
            if len(raw) >= 5 and not raw.startswith(b"HTTP/"):
                break  # no status line: that is the verdict already (and it may be an endless stream)
    return Reply(request, raw)


def http_request(method: bytes, target: bytes, headers: list | None = None, body: bytes = b"",
                 version: bytes = b"HTTP/1.1") -> bytes:
    lines = [method + b" " + target + b" " + version]
    lines += [name + b": " + value for name, value in (headers or [])]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def post_json(target: str, body: bytes, content_type: bytes = b"application/json") -> bytes:
    return http_request(b"POST", target.encode(), [(b"Host", b"127.0.0.1"), (b"Content-Type", content_type),
                                                   (b"Content-Length", str(len(body)).encode())], body)


def get(target: str, headers: list | None = None) -> bytes:
    return http_request(b"GET", target.encode(), [(b"Host", b"127.0.0.1")] + (headers or []))


# --------------------------------------------------------------------------
# The oracle
# --------------------------------------------------------------------------


class ErrorLog(logging.Handler):
    """Every record logged at ERROR or with a traceback, and every exception that ended a thread."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.problems: list[str] = []
        self._previous_hook = threading.excepthook

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.levelno >= logging.ERROR:
            self.problems.append(self.format(record))

    def thread_died(self, args: Any) -> None:
        self.problems.append("thread %s died: %r" % (getattr(args.thread, "name", "?"), args.exc_value))
        self._previous_hook(args)

    def install(self) -> None:
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(self)
        threading.excepthook = self.thread_died

    def uninstall(self) -> None:
        logging.getLogger().removeHandler(self)
        threading.excepthook = self._previous_hook

    def take(self) -> list[str]:
        problems, self.problems = self.problems, []
        return problems


def stored_state(server: RunningServer) -> tuple:
    """What a refused request must not change: the newest event id, the counters and gauges."""
    reply = exchange(server, get("/api/events?limit=1"))
    assert reply.status == 200, reply
    return json.loads(reply.body()[0])["last_id"], server.server.registry.snapshot()


STANDARD_METHODS = {b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"CONNECT", b"OPTIONS", b"TRACE", b"PATCH"}


def asks_for_http2_or_later(request: bytes) -> bool:
    words = request.split(b"\r\n", 1)[0].split()
    match = re.fullmatch(rb"HTTP/(\d+)\.\d+", words[-1]) if len(words) >= 3 else None
    return bool(match) and int(match.group(1)) >= 2


def acceptable_5xx(reply: Reply) -> bool:
    """The two 5xx an HTTP/1.x server owes a client: 501 for a method it does not know (RFC 9110
    15.6.2), 505 for a request line naming HTTP/2 or later (15.6.6)."""
    if reply.status == 501:
        return reply.method not in STANDARD_METHODS
    return reply.status == 505 and asks_for_http2_or_later(reply.request)


def check_reply(reply: Reply) -> None:
    """A complete status line, below 500; a 4xx body is {"error": text}; a JSON body is whole."""
    assert reply.status is not None, "no complete HTTP status line: %r" % reply
    assert reply.status < 500 or acceptable_5xx(reply), "server error: %r" % reply
    content_type = (reply.header("Content-Type") or "").lower()
    if content_type.startswith("text/event-stream"):
        return  # a live stream: read up to its headers only
    body, complete = reply.body()
    assert complete, "the body was cut short: %r" % reply
    if 400 <= reply.status < 500 and body:
        assert content_type.startswith("application/json"), "a 4xx body that is not JSON: %r" % reply
        error = json.loads(body)
        assert isinstance(error, dict) and isinstance(error.get("error"), str), "not {\"error\": ...}: %r" % reply
    if reply.status == 200 and content_type.startswith("application/json") and reply.method != b"HEAD":
        try:
            json.loads(body)
        except ValueError:
            raise AssertionError("a 200 whose JSON body does not parse: %r" % reply) from None


@contextlib.contextmanager
def judged(server: RunningServer, errors: ErrorLog) -> Iterator[list]:
    """Run the body's requests (append their Replies to the yielded list), then apply the oracle."""
    errors.take()
    before = stored_state(server)
    replies: list[Reply] = []
    yield replies
    event("answered %s" % (replies[0].status if replies else None))  # --hypothesis-show-statistics
    for reply in replies:
        check_reply(reply)
    problems = errors.take()
    assert not problems, "the server logged:\n%s\nafter %r" % ("\n".join(problems)[:4000], replies)
    health = exchange(server, get("/api/health"))
    assert health.status == 200, "after %r, /api/health: %r" % (replies, health)
    if any(400 <= reply.status < 500 for reply in replies):
        assert stored_state(server) == before, "a refused request changed what is stored: %r" % replies


# --------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------


def start_server(data_dir: str | None, interval_s: float) -> RunningServer:
    return RunningServer(build_app(host="127.0.0.1", port=0, interval_s=interval_s, post_rate_per_s=0,
                                              data_dir=data_dir))


def seed(server: RunningServer) -> None:
    """A few events and metrics, so that lists, exports, CSV and history have rows to write."""
    for body in [{"message": "started \u2603", "source": "seed"},
                 {"message": "=HYPERLINK(\"x\")", "level": "warning", "data": {"n": [1, 2.5, None, "\U0001F600"]}},
                 {"message": "disk full", "level": "error", "source": "backup", "data": "x"}]:
        assert exchange(server, post_json("/api/events", json.dumps(body).encode())).status == 201
    metrics = {"counters": {"jobs_done": 3, "bytes:total": 1.5}, "gauges": {"queue_depth": -2, "temp": 36.6}}
    assert exchange(server, post_json("/api/metrics", json.dumps(metrics).encode())).status == 200
    seq = server.server.sampler.seq
    wait_until(lambda: server.server.sampler.seq >= seq + 2, message="two samples holding the seeded metrics")


@pytest.fixture(scope="module")
def errors() -> Iterator[ErrorLog]:
    handler = ErrorLog()
    handler.install()
    yield handler
    handler.uninstall()


@pytest.fixture(scope="module")
def servers(tmp_path_factory, errors) -> Iterator[dict]:
    """Two seeded servers for requests that only read: "memory" and "sqlite"."""
    started = {"memory": start_server(None, INTERVAL_S),
               "sqlite": start_server(str(tmp_path_factory.mktemp("fuzz-sqlite")), INTERVAL_S)}
    try:
        for server in started.values():
            seed(server)
        errors.take()
        yield started
    finally:
        for server in started.values():
            server.stop()


class FreshServers:
    """A new server per example; the old ones stop in the background (closing SQLite takes ~0.5 s)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.stopping: list[threading.Thread] = []

    @contextlib.contextmanager
    def __call__(self, storage: str) -> Iterator[RunningServer]:
        data_dir = tempfile.mkdtemp(dir=self.root) if storage == "sqlite" else None
        server = start_server(data_dir, FRESH_INTERVAL_S)
        try:
            yield server
        finally:
            stopper = threading.Thread(target=server.stop, name="stop-fresh-server", daemon=True)
            stopper.start()
            self.stopping.append(stopper)

    def close(self) -> None:
        for stopper in self.stopping:
            stopper.join(10)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory, errors) -> Iterator[FreshServers]:
    servers = FreshServers(str(tmp_path_factory.mktemp("fuzz-fresh")))
    yield servers
    servers.close()


STORAGE = st.sampled_from(["memory", "sqlite"])


# --------------------------------------------------------------------------
# Request lines
# --------------------------------------------------------------------------

METHODS = st.one_of(
    st.just(b"GET"), st.just(b"GET"), st.just(b"HEAD"),  # the routes that read files and parse queries
    st.sampled_from([b"POST", b"PUT", b"DELETE", b"OPTIONS", b"TRACE", b"PATCH", b"CONNECT", b"PROPFIND",
                     b"M-SEARCH", b"get", b"G\xc9T", b"GET\x00", b"*"]),
    st.from_regex(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,20}", fullmatch=True),
)
ROUTES = ["/", "/index.html", "/api/metrics", "/api/metrics/stream", "/api/metrics/history", "/api/events",
          "/api/health", "/api/openapi.json", "/api/alerts", "/metrics", "/static/app.js", "/static/style.css"]
PATH_PIECES = st.one_of(
    st.sampled_from([b"/", b"api/", b"metrics", b"events", b"stream", b"history", b"health", b"static/", b"app.js",
                     b"index.html", b"..", b".", b"%2e%2e", b"%2F", b"%2f", b"%00", b"%ff", b"%", b"%zz", b"%C2%B2",
                     b"?", b"#", b"[", b"]", b"//", b"\\", b";", b"~", b"@", b":", b"\xc2\xb2", b"\xff", b"\x00",
                     b"\x7f", b"\t", b"a" * 300, b"%61" * 100]),
    st.binary(min_size=1, max_size=4).filter(lambda b: b"\n" not in b),
)
TARGETS = st.one_of(
    st.sampled_from(ROUTES).map(str.encode),
    st.builds(lambda route, pieces: route + b"".join(pieces), st.sampled_from(ROUTES + [""]).map(str.encode),
              st.lists(PATH_PIECES, max_size=8)),
    st.builds(lambda n, piece: b"/static/" + piece * n, st.sampled_from([600, 2500, 5000]),
              st.sampled_from([b"a", b"a/", b"%ff", b"..%2f", b"\xc3\xa9"])),
    st.sampled_from([b"*", b"http://127.0.0.1/api/health", b"//[", b"//[::1]x/api/health", b"/api/health#x",
                     b"/" + b"a" * 70000]),
)


@fuzz_settings(150)
@given(storage=STORAGE, method=METHODS, target=TARGETS, version=st.sampled_from([b"HTTP/1.0", b"HTTP/1.1"]))
@example(storage="memory", method=b"GET", target=b"/static/" + b"a" * 4992, version=b"HTTP/1.1")  # 5,000 chars
@example(storage="memory", method=b"GET", target=b"/static/" + b"%ff" * 100, version=b"HTTP/1.1")
@example(storage="memory", method=b"GET", target=b"/static/%2e%2e/sse_server.py", version=b"HTTP/1.1")
def test_any_request_target_gets_a_proper_answer(servers, errors, storage, method, target, version):
    """Odd methods, odd bytes, percent-escapes, very long paths: always an HTTP answer below 500."""
    server = servers[storage]
    with judged(server, errors) as replies:
        replies.append(exchange(server, http_request(method, target, [(b"Host", b"127.0.0.1")], version=version)))


VERSIONS = st.one_of(
    st.sampled_from([None, b"HTTP/0.9", b"HTTP/1.0", b"HTTP/1.1", b"HTTP/2.0", b"HTTP/3", b"HTTP/1.1.1",
                     b"http/1.1", b"HTTP/01.1", b"HTTP/1.10", b"HTTP/\xc2\xb2.1", b"HTTP/1", b"HTTP/", b"FOO"]),
    st.from_regex(rb"HTTP/[0-9]{1,3}\.[0-9]{1,3}", fullmatch=True),
)


@fuzz_settings(60)
@given(method=st.sampled_from([b"GET", b"HEAD", b"POST", b"FOO"]), target=st.sampled_from(ROUTES).map(str.encode),
       version=VERSIONS)
@example(method=b"GET", target=b"/api/health", version=None)
@example(method=b"GET", target=b"/api/health", version=b"HTTP/0.9")
def test_any_protocol_version_gets_a_status_line(servers, errors, method, target, version):
    """Missing, old (HTTP/0.9), future or malformed versions: the answer starts with a status line
    (as ``send_error`` already ensures for errors), never bare body bytes."""
    server = servers["memory"]
    line = method + b" " + target + (b" " + version if version is not None else b"")
    with judged(server, errors) as replies:
        replies.append(exchange(server, line + b"\r\nHost: 127.0.0.1\r\n\r\n"))


# --------------------------------------------------------------------------
# Headers
# --------------------------------------------------------------------------


def header_bytes(value: str) -> bytes:
    """Header text as a client would send it: Latin-1 where it can be, else UTF-8 bytes (a lone
    surrogate as the three bytes it would be, which are not valid UTF-8)."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")


HEADER_TEXT = st.text(st.characters(exclude_characters="\r\n"), max_size=30)
DIGIT_RUNS = st.builds(lambda d, n: d * n, st.sampled_from(["1", "9", "0"]), st.sampled_from([20, 400, 4300, 5000]))
NUMBERISH = st.one_of(
    st.sampled_from(["\u00b2", "\u2460", "\u0663", "\U0001d7d7", "-1", "0", " 7 ", "7 8", "+5", "0x10", "1_000", "1e3",
                     "", " ", "NaN", "99999999999999999999", "00000000000000000001"]),
    DIGIT_RUNS, st.integers().map(str), HEADER_TEXT,
)
HEADER_VALUES = {
    b"Last-Event-ID": NUMBERISH,
    b"Content-Length": NUMBERISH,
    b"Cookie": st.one_of(st.sampled_from(['prefs={"a":1}', "sse_dashboard_token_1=x", "a=\u00e9; b=\"\\\"", "=;=;",
                                          "a=b; $Version=1", "\u2603=\u2603"]), HEADER_TEXT),
    b"Host": st.one_of(st.sampled_from(["[::1]evil.com", "", "[", "]", "127.0.0.1:99999", "localhost.", "[::1]:80",
                                        "\u00e9.localhost", "127.0.0.1\x00", "1.2.3.4.5", "LOCALHOST"]), HEADER_TEXT),
    b"Authorization": st.one_of(st.sampled_from(["Bearer", "Bearer ", "bearer x", "Basic Zm9vOmJhcg==",
                                                 "Bearer \u00e9\u00e9"]), HEADER_TEXT),
    b"Origin": st.one_of(st.sampled_from(["null", "http://127.0.0.1", "http://evil.example"]), HEADER_TEXT),
    b"Content-Type": st.one_of(st.sampled_from(["application/json", "APPLICATION/JSON; charset=latin-1", "text/plain",
                                                "application/json;;;", ";"]), HEADER_TEXT),
    b"Connection": st.sampled_from(["keep-alive", "close", "Upgrade", "\u00e9"]),
    b"X-Anything": HEADER_TEXT,
}
HEADER_ROUTES = st.sampled_from([("GET", "/api/metrics/stream"), ("GET", "/api/metrics/stream?lastEventId=1"),
                                 ("GET", "/api/events"), ("GET", "/api/health"), ("GET", "/metrics"),
                                 ("GET", "/static/app.js"), ("POST", "/api/events"), ("POST", "/api/metrics"),
                                 ("POST", "/api/events"), ("POST", "/api/metrics"), ("HEAD", "/api/metrics/stream"),
                                 ("GET", "/api/metrics/stream")])
KEY_HEADERS = [b"Last-Event-ID", b"Content-Length", b"Cookie", b"Host", b"Authorization"]
VALID_BODIES = {"/api/events": b'{"message": "header fuzz"}', "/api/metrics": b'{"counters": {"header_fuzz": 1}}'}


@st.composite
def header_sets(draw) -> list:
    names = draw(st.lists(st.sampled_from(sorted(HEADER_VALUES) + KEY_HEADERS * 2), max_size=4))
    return [(name, header_bytes(draw(HEADER_VALUES[name]))) for name in names]


@fuzz_settings(120)
@given(storage=STORAGE, route=HEADER_ROUTES, headers=header_sets(), keep_defaults=st.booleans())
@example(storage="memory", route=("GET", "/api/metrics/stream"), headers=[(b"Last-Event-ID", b"\xb2")],
         keep_defaults=True)  # "²" in Latin-1: str.isdigit() says yes, int() says no
@example(storage="memory", route=("GET", "/api/metrics/stream"), headers=[(b"Last-Event-ID", b"1" * 5000)],
         keep_defaults=True)
@example(storage="memory", route=("POST", "/api/events"), headers=[(b"Content-Length", b"\xb2")], keep_defaults=True)
@example(storage="memory", route=("POST", "/api/events"), headers=[(b"Content-Length", b"1" * 5000)],
         keep_defaults=True)
@example(storage="memory", route=("POST", "/api/metrics"), headers=[(b"Content-Length", b"-1")], keep_defaults=True)
@example(storage="memory", route=("GET", "/api/events"), headers=[(b"Cookie", b'prefs={"a":1}'),
                                                               (b"Host", b"[::1]evil.com")], keep_defaults=False)
def test_any_header_value_gets_a_proper_answer(servers, errors, storage, route, headers, keep_defaults):
    """Last-Event-ID, Content-Length, Cookie, Host, Authorization ... with any value: below 500."""
    server = servers[storage]
    method, target = route
    body = VALID_BODIES.get(target, b"") if method == "POST" else b""
    names = {name.lower() for name, _ in headers}
    defaults = [(b"Host", b"127.0.0.1"), (b"Content-Type", b"application/json"),
                (b"Content-Length", str(len(body)).encode())] if keep_defaults else []
    headers = [(n, v) for n, v in defaults if n.lower() not in names] + headers
    with judged(server, errors) as replies:
        replies.append(exchange(server, http_request(method.encode(), target.encode(), headers, body)))


# --------------------------------------------------------------------------
# Query strings
# --------------------------------------------------------------------------

QUERY_PARAMS = {
    "/api/events": ["since", "limit", "level", "format", "from", "to"],
    "/api/metrics/history": ["seconds", "from", "to", "format"],
    "/api/metrics/stream": ["lastEventId", "epoch"],
    "/": ["token"],
    "/metrics": ["name"],
}
QUERY_VALUES = st.one_of(
    NUMBERISH,
    st.sampled_from(["1e308", "-1e308", "1e400", "inf", "-inf", "nan", "-0", "0.5", "1.5e9", "json", "csv", "CSV",
                     "info", "warning", "error", "Info", "\u00e9", "%", "&", "=", "+"]),
    st.floats().map(repr), st.integers(-10 ** 30, 10 ** 30).map(str),
)


@st.composite
def targets_with_queries(draw) -> str:
    route = draw(st.sampled_from(sorted(QUERY_PARAMS) + ["/api/health", "/api/alerts"]))
    names = QUERY_PARAMS.get(route, []) + ["x"]
    parts = []
    for name in draw(st.lists(st.sampled_from(names), max_size=5)):
        value = draw(QUERY_VALUES)
        how = draw(st.sampled_from(["quoted", "quoted", "raw", "bare"]))
        if how == "bare":
            parts.append(name)
        elif how == "quoted":
            parts.append(name + "=" + urllib.parse.quote(value, safe=""))
        else:  # as typed: only what would break the request line itself is escaped
            parts.append(name + "=" + value.replace("%", "%25").replace(" ", "%20").replace("#", "%23"))
    return route + ("?" + "&".join(parts) if parts else "")


@fuzz_settings(120)
@given(storage=STORAGE, target=targets_with_queries())
@example(storage="memory", target="/api/metrics/stream?lastEventId=%C2%B2")
@example(storage="memory", target="/api/metrics/history?seconds=1" + "0" * 399)
@example(storage="sqlite", target="/api/events?since=1" + "0" * 30 + "&from=0")
@example(storage="sqlite", target="/api/events?limit=1" + "0" * 30 + "&from=0")
@example(storage="memory", target="/api/events?from=1e308&to=-1e308&format=csv")
def test_any_query_string_gets_a_proper_answer(servers, errors, storage, target):
    """since, limit, level, format, from, to, seconds, lastEventId with any value: below 500, and a
    streamed export that starts with 200 is whole JSON."""
    server = servers[storage]
    request = b"GET " + header_bytes(target) + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with judged(server, errors) as replies:
        replies.append(exchange(server, request))


# --------------------------------------------------------------------------
# JSON bodies
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """JSON text put into a body as is (400-digit numbers, 1e309, NaN, broken fragments)."""

    text: str

    def __repr__(self) -> str:
        match = re.search(r"(.)\1{19,}", self.text)
        if not match:
            return "Raw(%r)" % self.text
        return "Raw(%r + %r * %d + %r)" % (self.text[:match.start()], match.group(1), len(match.group(0)),
                                           self.text[match.end():])


def to_json(value: Any, ascii_only: bool) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{%s}" % ",".join("%s:%s" % (json.dumps(k, ensure_ascii=ascii_only), to_json(v, ascii_only))
                                 for k, v in value.items())
    if isinstance(value, list):
        return "[%s]" % ",".join(to_json(v, ascii_only) for v in value)
    return json.dumps(value, ensure_ascii=ascii_only)


SURROGATE_TEXT = st.builds(lambda s, sur: s + sur, st.text(max_size=5), st.sampled_from(["\ud800", "\udfff", "\udc00"]))
ODD_NUMBERS = st.sampled_from([
    Raw("1" + "0" * 399), Raw("-" + "9" * 400), Raw("1" + "0" * 399 + ".5"), Raw("0." + "0" * 398 + "1"),
    Raw("1e309"), Raw("-1e309"), Raw("1e-400"), Raw("NaN"), Raw("Infinity"), Raw("-Infinity"), Raw("-0"),
    Raw("1" + "0" * 4300), 2 ** 53 + 1, 2 ** 63, 2 ** 64, -2 ** 64, 10 ** 15, 10 ** 15 + 1, 2 ** 1024, 1e300, -1e300,
    5e-324,
])
LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                   st.text(max_size=10), SURROGATE_TEXT, ODD_NUMBERS)
VALUES = st.recursive(LEAVES, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.one_of(st.text(max_size=5), SURROGATE_TEXT), inner, max_size=3)),
    max_leaves=8)
DEEP = st.builds(lambda opener, n: Raw(opener * n), st.sampled_from(["[", "{\"a\":", "[{\"a\":"]),
                 st.sampled_from([100, 1000, 30000]))
METRIC_NAMES = st.one_of(st.sampled_from(["jobs_done", "a", ":", "_x", "queue_depth"]),
                         st.sampled_from(["", "9", "a-b", "\u00e9", "x" * 201, "a\ud800"]), st.text(max_size=5))
GOOD_METRIC_MAPS = st.dictionaries(st.sampled_from(["jobs_done", "a", ":", "_x"]), st.integers(0, 100), min_size=1)
METRIC_MAPS = st.one_of(GOOD_METRIC_MAPS, GOOD_METRIC_MAPS,  # so a good half often meets a bad half
                        st.dictionaries(METRIC_NAMES, st.one_of(ODD_NUMBERS, LEAVES), max_size=3), VALUES, DEEP)
EVENT_FIELDS = {
    "message": st.one_of(st.text(min_size=1, max_size=20), SURROGATE_TEXT, VALUES, DEEP),
    "level": st.one_of(st.sampled_from(["info", "warning", "error"]), VALUES),
    "source": st.one_of(st.text(max_size=10), SURROGATE_TEXT, VALUES),
    "data": st.one_of(VALUES, DEEP),
    "extra": VALUES,
}
METRIC_FIELDS = {"counters": METRIC_MAPS, "gauges": METRIC_MAPS, "extra": VALUES}
BROKEN_BODIES = st.sampled_from([
    b"", b"{", b"[" * 30000, b"{\"message\":" * 20000, b"\xff\xfe", b"{\"message\": \"\xff\"}",
    b"{\"message\": \"\xed\xa0\x80\"}", b"{\"message\": \"\xc0\xaf\"}", b"\xef\xbb\xbf{\"message\": \"bom\"}",
    b"{\"message\": \"x\"} trailing", b"{\"message\": \"x\", \"message\": \"y\"}", b"null", b"[]", b"\"x\"",
    b"{\"message\": \"caf\xe9\"}", b"{\"counters\": {\"a\": 1}}\x00", b"{\"\\ud800\": 1}", b" " * 70000,
])


@st.composite
def json_bodies(draw, fields: dict) -> bytes:
    """An object with some of ``fields`` (values of any shape), written with or without \\u escapes;
    or a broken body."""
    if draw(st.integers(0, 4)) == 0:
        return draw(BROKEN_BODIES)
    names = draw(st.lists(st.sampled_from(sorted(fields)), unique=True, max_size=len(fields)))
    body = {name: draw(fields[name]) for name in names}
    ascii_only = draw(st.booleans())
    text = to_json(body, ascii_only)
    return text.encode("utf-8", "surrogatepass")  # unescaped surrogates become invalid UTF-8, on purpose


def read_back(server: RunningServer) -> list[Reply]:
    """Everything that shows stored events and metrics, once a sample has taken the last POST."""
    seq = server.server.sampler.seq
    wait_until(lambda: server.server.sampler.seq >= seq + 2, message="a sample after the POST")
    paths = ["/api/events", "/api/events?since=0&from=0", "/api/events?format=csv", "/api/events?level=info",
             "/api/metrics", "/metrics", "/api/metrics/history?seconds=60", "/api/metrics/history?from=0",
             "/api/metrics/history?from=0&format=csv", "/api/alerts"]
    replies = [exchange(server, get(path)) for path in paths]
    replies.append(exchange(server, get("/api/metrics/stream", [(b"Last-Event-ID", b"0")])))
    return replies


@fuzz_settings(150)
@given(storage=STORAGE, body=json_bodies(EVENT_FIELDS),
       content_type=st.sampled_from([b"application/json", b"application/json; charset=utf-8", b"Application/JSON"]))
@example(storage="memory", body=b'{"message": "\\ud800"}', content_type=b"application/json")
@example(storage="sqlite", body=b'{"message": "\\ud800"}', content_type=b"application/json")
@example(storage="sqlite", body=b'{"message": "x", "data": {"\\udfff": 1}}', content_type=b"application/json")
@example(storage="memory", body=b'{"\\ud800": 1}', content_type=b"application/json")
@example(storage="memory", body=b"[" * 30000, content_type=b"application/json")
@example(storage="sqlite", body=b'{"message": "x", "data": [' + b"9" * 400 + b"]}", content_type=b"application/json")
def test_any_event_body_gets_a_proper_answer(fresh, errors, storage, body, content_type):
    """POST /api/events with deep nesting, lone surrogates, 400-digit numbers, wrong types, bytes
    that are not UTF-8: 201 or 4xx, and whatever was accepted can be read back everywhere."""
    with fresh(storage) as server, judged(server, errors) as replies:
        replies.append(exchange(server, post_json("/api/events", body, content_type)))
        if replies[0].status == 201:
            replies.extend(read_back(server))


@fuzz_settings(150)
@given(storage=STORAGE, body=json_bodies(METRIC_FIELDS))
@example(storage="memory", body=b'{"gauges": {"g": 1' + b"0" * 399 + b"}}")
@example(storage="memory", body=b'{"counters": {"c": 1' + b"0" * 399 + b"}}")
@example(storage="sqlite", body=b'{"gauges": {"g": 18446744073709551616}}')  # 2**64
@example(storage="memory", body=b'{"counters": {"\\ud800": 1}}')
@example(storage="memory", body=b'{"counters": ' + b"[" * 30000 + b"}")
@example(storage="sqlite", body=b'{"counters": {"jobs_done": 1}, "gauges": {"g": "high"}}')  # all or nothing
def test_any_metrics_body_gets_a_proper_answer(fresh, errors, storage, body):
    """POST /api/metrics with huge, tiny, non-finite and non-numeric values and odd names: 200 or
    400, a refusal changes nothing, and whatever was accepted can be read back everywhere."""
    with fresh(storage) as server, judged(server, errors) as replies:
        replies.append(exchange(server, post_json("/api/metrics", body)))
        if replies[0].status == 200:
            replies.extend(read_back(server))
