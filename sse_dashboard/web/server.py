"""The dashboard's HTTP server: the page, the JSON API and the opening of the event stream.

One concept: HTTP. ``build_app()`` wires a ``MetricsRegistry``, an
``EventLog``, a ``Sampler``, the ``StreamHub``, the ``AlertEngine`` and (with a
data directory) the ``Store`` into a ``DashboardServer``; ``DashboardHandler``
answers requests from one route table, after ``guard``'s access checks.

Invariants:
- nothing runs at import: no threads, no logging set-up, no global state;
- handlers return a ``Response`` (bytes, or an iterator of bytes for a streamed
  export) and ``_dispatch`` writes it; ``stream_metrics`` writes only the
  stream's opening, then hands the socket to the hub (``streams.py``), which
  alone writes to it from then on;
- errors to clients are ``{"error": "..."}`` and never carry exception text.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import functools
import io
import itertools
import json
import logging
import math
import mimetypes
import os
import re
import signal
import socket
import socketserver
import sys
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sse_dashboard import __version__
from sse_dashboard.web.mcp import McpEndpoint, dashboard_tools
from sse_dashboard.alerting.rules import AlertEngine, load_document, parse_rules
from sse_dashboard.alerting.heartbeats import Heartbeats, parse_heartbeats
from sse_dashboard.alerting.notify import NotificationTestBusy, Notifier, parse_targets
from sse_dashboard.collectors.processes import TopProcesses
from sse_dashboard.web.openapi import openapi_spec
from sse_dashboard.demo import DemoFeeder
from sse_dashboard.events import DEFAULT_MAX_CHARS, LEVELS, EventFilter, EventLog, is_unicode_text
from sse_dashboard.web.exports import EVENTS_CSV_NAME, HISTORY_CSV_NAME, events_csv, history_csv, json_array_chunks
from sse_dashboard.web.guard import (Decision, Policy, RateLimiter, check_access, cookie_name, cookie_value, is_loopback, origin_of,
                   redact_secrets, token_matches, token_problem)
from sse_dashboard.ingest.push import MAX_PUSH_BYTES, PushError, PushGroups, gunzip_bounded, parse_exposition, parse_grouping
from sse_dashboard.metrics import (DEFAULT_GAUGE_TTL_S, PROMETHEUS_CONTENT_TYPE, MetricsRegistry, RegistrySealed, Sampler,
                     encode_json, labeled_name, make_system_collector, render_prometheus, to_columns)
from sse_dashboard.ingest.statsd import StatsdAggregator, StatsdListener, parse_address
from sse_dashboard.storage import DataDirInUse, Store, StorageError, open_store
from sse_dashboard.web.routes import Route, access_for, allowed_methods, find_route
from sse_dashboard.web.streams import StreamHub, format_sse, metrics_frame, resync_frame


log = logging.getLogger(__name__)
access_log = logging.getLogger("sse_dashboard.web.access")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_INTERVAL_S = 1.0
HEARTBEAT_S = 15.0
RETRY_MS = 5000
STREAM_WRITE_TIMEOUT_S = 10.0
REQUEST_TIMEOUT_S = 10.0  # the whole request line, headers and body, not each read
# An open stream costs a socket and a small record in the hub, not a thread (bench/RESULTS.md:
# about 16 KB of RSS each at 20,000 streams); the operating system's limit on open files is the
# real bound, and main() fits the cap to it.
DEFAULT_MAX_CLIENTS = 10_000
SPARE_FILES = 64  # descriptors kept free for the database, static files and ordinary requests
DEFAULT_POST_RATE_PER_S = 50.0
SECURITY_HEADERS = (
    # No inline script or style anywhere in static/, so the strictest policy fits; data: images
    # only for the tab icon that shows how many alerts fire.
    ("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; "
                                "frame-ancestors 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
)
MAX_BODY_BYTES = 64 * 1024
MAX_JSON_DEPTH = 32  # nesting of arrays and objects in a request body
MAX_EVENTS_LIMIT = 1000
DEFAULT_EVENTS_LIMIT = 100

STATIC_CONTENT_TYPES = {
    # Explicit, because Windows' registry can make mimetypes say text/plain for
    # .js (cpython#88141), which browsers refuse for scripts with nosniff.
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".png": "image/png",
    ".json": "application/json; charset=utf-8",
}


def find_static_dir() -> Path:
    """The page: ``sse_dashboard/static/`` when installed (pyproject.toml maps the checkout's
    ``static/`` there), else ``static/`` at the root of the checkout."""
    return _data_dir_of("static")


def _data_dir_of(name: str) -> Path:
    package = Path(__file__).resolve().parent.parent
    installed = package / name
    return installed if installed.is_dir() else package.parent / name


# --------------------------------------------------------------------------
# Responses and errors
# --------------------------------------------------------------------------


class HTTPError(Exception):
    """Raised by handlers for a client error; ``_dispatch`` turns it into ``{"error": message}``."""

    def __init__(self, status: int, message: str, headers: tuple = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


@dataclass(frozen=True)
class Response:
    status: int
    body: Any  # bytes, or an iterator of bytes for a streamed export
    content_type: str
    headers: tuple = ()


JSON_TYPE = "application/json; charset=utf-8"


def json_response(obj: Any, status: int = HTTPStatus.OK) -> Response:
    return Response(status, encode_json(obj), JSON_TYPE)


def csv_download(chunks: Any, filename: str) -> Response:
    return Response(200, chunks, "text/csv; charset=utf-8", (
        ("Content-Disposition", 'attachment; filename="%s"' % filename), ("Cache-Control", "no-store")))


def json_stream(chunks: Any) -> Response:
    return Response(200, chunks, JSON_TYPE, (("Cache-Control", "no-store"),))


def _parse_time(value: str | None, name: str) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise HTTPError(400, "%s must be a time in unix seconds" % name) from None
    if not math.isfinite(number):
        raise HTTPError(400, "%s must be a time in unix seconds" % name)
    return number


# ASCII digits only: str.isdigit() and int() also take "²" and other scripts' digits.
# 15 digits keep every number exact as a float and within SQLite's 64-bit integers.
_WHOLE_NUMBER = re.compile(r"-?[0-9]{1,15}")


def _parse_int(value: str | None, name: str, default: int | None = None, minimum: int = 0) -> int | None:
    if value is None:
        return default
    if not _WHOLE_NUMBER.fullmatch(value.strip()):
        raise HTTPError(400, "%s must be a whole number of at most 15 digits" % name)
    number = int(value)
    if number < minimum:
        raise HTTPError(400, "%s must be at least %d" % (name, minimum))
    return number


def parse_last_event_id(value: str | None) -> int | None:
    """A Last-Event-ID as an int, or None when absent or not a non-negative integer of at most 15 digits."""
    if value is None:
        return None
    value = value.strip()
    return int(value) if _WHOLE_NUMBER.fullmatch(value) and not value.startswith("-") else None


parse_length = parse_last_event_id  # a Content-Length follows the same rule: 0-15 ASCII digits


_JSON_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def json_depth(raw: bytes) -> int:
    """How deeply arrays and objects nest in a JSON text (strings skipped), without parsing it:
    ``json.loads`` of 30,000 ``[`` is a RecursionError, not a 400."""
    depth = deepest = 0
    for match in _JSON_TOKENS.finditer(raw):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


def _quoted(text: str, limit: int = 40) -> str:
    """Client text made safe to put in an error message: short, ASCII, quoted."""
    return json.dumps(text[:limit])


# --------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------


class DashboardServer(ThreadingHTTPServer):
    """The HTTP server holding the wired application state.

    Attributes: ``config`` (a frozen ``Config``), ``policy`` (``guard.Policy``),
    ``registry``, ``events``, ``sampler``, ``hub``, ``alerts``, ``store``,
    ``stopping`` (set on shutdown), ``static_dir``. ``build_app`` wires them.
    """

    daemon_threads = True
    # A listen backlog of 5 (the socketserver default) refuses connections when
    # many tabs or scripts reconnect at once after a restart.
    request_queue_size = 1024
    # SO_REUSEADDR on Windows lets a second server share the port silently (cpython#85307).
    allow_reuse_address = os.name != "nt"

    def __init__(self, config: Config, registry: MetricsRegistry, events: EventLog) -> None:
        self.config = config
        self.registry = registry
        self.events = events
        self.hub: StreamHub | None = None
        self.static_dir = (config.static_dir or find_static_dir()).resolve()
        self.sampler: Sampler | None = None
        self.alerts: AlertEngine | None = None
        self.heartbeats: Heartbeats | None = None
        self.notifier: Notifier | None = None
        self.mcp: McpEndpoint | None = None
        self.processes: TopProcesses | None = None
        self.statsd: StatsdListener | None = None
        self.store: Store | None = None
        self.storage_problem: str | None = None
        self.events_epoch = ""
        self.stopping = threading.Event()
        self.started_monotonic = time.monotonic()
        self.boot_id = uuid.uuid4().hex[:12]
        self._handed_off: set[int] = set()  # ids of sockets the stream hub now owns
        # Connections a request thread holds (keep-alive ones wait there for their next request):
        # at shutdown they are cut, or a browser's next request on one would still be answered,
        # by a server whose sampler and stream hub have stopped (a stream that opens and stays silent).
        self._connections: set = set()
        self._connections_lock = threading.Lock()
        super().__init__((config.host, config.port), DashboardHandler)
        self.policy = Policy(port=self.server_port, token=config.token, allowed_hosts=config.allowed_hosts,
                             cors_origin=config.cors_origin, public_origin=config.public_url,
                             writes=RateLimiter(config.post_rate_per_s, burst=max(10.0, 2 * config.post_rate_per_s)))

    def server_bind(self) -> None:
        # Not HTTPServer.server_bind: its getfqdn() can stall ~30 s on reverse DNS (pip#13742).
        if os.name == "nt" and hasattr(socket, "SO_EXCLUSIVEADDRUSE"):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = port

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        if ":" in host:
            host = "[%s]" % host
        elif host == "0.0.0.0":
            host = "127.0.0.1"
        return "http://%s:%d/" % (host, port)

    def uptime_s(self) -> float:
        return round(time.monotonic() - self.started_monotonic, 3)

    def stats(self) -> dict:
        hub = self.hub
        stats = {"clients": hub.clients if hub else 0, "dropped": hub.dropped if hub else 0, "uptime": self.uptime_s()}
        if self.statsd is not None:
            stats.update(self.statsd.aggregator.stats())
        return stats

    def enrich(self, snapshot: dict) -> dict:
        """What a sample adds to the system part: active alerts (rules and heartbeats), heartbeats."""
        extra = self.alerts.evaluate(snapshot)
        extra["alerts"] = extra["alerts"] + self.heartbeats.check()
        extra["heartbeats"] = self.heartbeats.listing()
        self.notifier.tick()
        return extra

    def active_alerts(self) -> list[dict]:
        return self.alerts.active() + self.heartbeats.active()

    # --- what the HTTP API and the MCP tools both read ---------------------------------

    def current_snapshot(self) -> dict:
        """The latest sample with the application's counters and gauges as they are now:
        a script that posts and then reads sees what it posted (the system part stays the sample)."""
        snapshot, _ = self.sampler.latest()
        counters, gauges = self.registry.snapshot()
        return dict(snapshot, counters=counters, gauges=gauges)

    def health(self) -> dict:
        stats = self.stats()
        return {"status": "ok", "clients": stats["clients"], "uptime": stats["uptime"], "version": __version__,
                "storage": self.storage_state()}

    def storage_state(self) -> str:
        if self.storage_problem:
            return "unavailable: " + self.storage_problem
        if self.store is None:
            return "memory"
        problem = self.store.problem()
        return "error: " + problem if problem else "ok"

    def alerts_state(self) -> dict:
        return {"alerts": self.active_alerts(), "rules": self.alerts.rule_states(),
                "heartbeats": self.heartbeats.listing(), "notify": self.notifier.status()}

    def history_columns(self, start: float, end: float) -> dict:
        """Columns of the window: stored (with roll-ups' min and max) when there is a store."""
        if self.store is not None:
            columns = self.store.history_columns(start, end)
        else:
            columns = to_columns(self.sampler.history.between(start, end))
        columns.setdefault("interval", self.sampler.interval_s)  # the spacing of the points returned
        return columns

    def event_page(self, since: int | None, limit: int, level: str | None = None,
                   only: EventFilter | None = None) -> dict:
        """A page of events: the oldest ``limit`` after the cursor ``since`` (None: the newest
        ``limit``), with ``more`` and ``next``; older than memory holds comes from storage."""
        log_, store = self.events, self.store
        known = log_.last_id  # read before the query: every event up to it is in the answer
        if since is None:  # the newest `limit`; `more`: older ones exist
            events = log_.newest(limit + 1, level, only)
            if store is not None and len(events) <= limit and log_.first_id > 1 and (level or only):
                # Memory holds fewer matches than asked for: the older ones are on disk.
                events = list(store.iter_events(level=level, limit=limit + 1, only=only, newest=True))[::-1]
            more = len(events) > limit
            events = events[-limit:]
            cursor = max(known, events[-1].id if events else 0)
        else:  # a page: the oldest `limit` after the cursor
            if store is not None and since < log_.first_id - 1:
                events = list(store.iter_events(since, level=level, limit=limit + 1, only=only))  # older than memory
            else:
                events = log_.since(since, limit=limit + 1, level=level, only=only)
            more = len(events) > limit
            events = events[:limit]
            cursor = events[-1].id if more else max(since, known, events[-1].id if events else 0)
        return {"events": events, "more": more, "next": cursor, "last_id": log_.last_id, "epoch": self.events_epoch}

    def hand_off(self, sock: socket.socket) -> None:
        """``sock`` belongs to the stream hub now: the request's end must not close it."""
        self._handed_off.add(id(sock))
        self.untrack(sock)

    def track(self, sock: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(sock)

    def untrack(self, sock: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(sock)

    def shutdown_request(self, request: Any) -> None:
        if id(request) in self._handed_off:
            self._handed_off.discard(id(request))
            return
        super().shutdown_request(request)

    def shutdown(self) -> None:
        """Stop serving (streams are closed by ``server_close``)."""
        self.stopping.set()
        # serve_forever() sees the stop only between waits of up to its poll interval (0.5 s).
        # On Linux, shutting the listening socket's read side ends every wait at once (and
        # refuses new connections, which could only get 503 now); elsewhere it raises and the
        # poll interval stands. A shorter poll would cost a third more CPU when idle.
        try:
            self.socket.shutdown(socket.SHUT_RD)
        except OSError:
            pass
        super().shutdown()

    def server_close(self) -> None:
        """Stop, writing everything acknowledged: the registry takes no more updates
        (a request still running gets 503), then storage writes its final state."""
        self.stopping.set()
        if self.hub is not None:
            self.hub.stop()
        with self._connections_lock:
            connections, self._connections = list(self._connections), set()
        for sock in connections:  # keep-alive connections idle in a request thread
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        # Each may wait up to 0.5 s for its thread (a receive timeout, a delivery in flight): at
        # once, those waits overlap instead of adding up. Neither holds anything acknowledged.
        _stop_together(self.statsd, self.notifier)
        if self.statsd is not None:
            self.statsd.aggregator.flush()  # the last interval's timings, before the final state
        self.registry.seal()
        if self.sampler is not None:
            self.sampler.stop()
        if self.store is not None:
            self.store.flush()
            self.store.close()
            self.store = None
        super().server_close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, socket.timeout)):
            log.debug("client %s went away: %s", client_address, exc)
        else:
            log.exception("unexpected error serving %s", client_address)


class DashboardHandler(BaseHTTPRequestHandler):
    """One request. Routes are data (``routes.ROUTES``); each handler returns a ``Response``."""

    server: DashboardServer
    server_version = "sse-dashboard/" + __version__
    # Keep-alive for ordinary requests (the polling page and scripts reuse a connection); a
    # stream, an export, an error before the body was read and any HTTP/1.0 client close it.
    protocol_version = "HTTP/1.1"
    wbufsize = 0  # every wfile.write() is one sendall: an SSE frame goes out whole, at once

    def setup(self) -> None:
        super().setup()
        # An answer goes out as two writes (headers, then body); with Nagle's algorithm the second
        # waits for the client's delayed ACK of the first, 40 ms on Linux, so a keep-alive client
        # (a requests.Session, http.client, the page's polling) got at most ~25 answers a second.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._reader = _DeadlineReader(self.connection, time.monotonic())
        self.rfile = io.BufferedReader(self._reader)
        self.server.track(self.connection)

    def finish(self) -> None:
        self.server.untrack(self.connection)
        super().finish()

    def parse_request(self) -> bool:
        ok = super().parse_request()
        if ok and self.request_version == "HTTP/0.9":
            # A request line without a version is HTTP/0.9, whose answers have no status line:
            # nobody speaks it any more, and a bare body would look like a successful reply.
            self.request_version = "HTTP/1.0"
            self.close_connection = True
        return ok

    def handle_one_request(self) -> None:
        # One deadline for the wait, the request line, headers and body together: a client
        # that sends a byte at a time (slowloris), or keeps a connection idle, is dropped
        # after request_timeout_s instead of holding a thread.
        self._reader.deadline = time.monotonic() + self.server.config.request_timeout_s
        self._body_pending = False
        super().handle_one_request()

    # --- dispatch ----------------------------------------------------------

    # BaseHTTPRequestHandler calls do_<METHOD>: every standard method goes to the one
    # dispatcher (a method a path does not take gets 405 with Allow); any other gets 501.
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_OPTIONS(self) -> None:
        self._dispatch("OPTIONS")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_TRACE(self) -> None:
        self._dispatch("TRACE")

    def do_CONNECT(self) -> None:
        self._dispatch("CONNECT")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors that http.server finds itself (bad request line, headers too long): JSON too."""
        self.log_error("code %d, message %s", code, message)
        self.close_connection = True
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            self.request_version = "HTTP/1.0"  # answer with a status line and headers, not bare 0.9 bytes
        body = encode_json({"error": message or self.responses.get(code, ("error",))[0]})
        self.send_response(code)  # the standard reason phrase: never echo request bytes in the status line
        self.send_header("Content-Type", JSON_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self._send_common_headers()
        self.end_headers()
        if getattr(self, "command", None) != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(body)

    def _dispatch(self, method: str) -> None:
        if self.server.stopping.is_set():  # a request that slipped in as the server stops
            self.close_connection = True
            self._body_pending = True
            self._send(Response(503, encode_json({"error": "the dashboard is stopping"}), JSON_TYPE,
                                (("Retry-After", "5"), ("Connection", "close"))))
            return
        parts = urllib.parse.urlsplit(self.path)
        self.route_path = parts.path
        self.query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
        head = method == "HEAD"
        length = self.headers.get("Content-Length", "0").strip()
        self._body_pending = length not in ("", "0") or "Transfer-Encoding" in self.headers
        route = find_route(method, parts.path)
        access = route.access if route is not None else access_for(method, parts.path)
        decision = check_access(self.server.policy, access, method, self.headers, self.client_address[0],
                                self.query_value("token"))
        if decision is not None:  # refused, or a CORS preflight answered
            response = _decided(decision)
        else:
            response = self._handle(method, parts.path, route)
        if response is not None:
            if self._body_pending:
                # A body we did not read would be taken for the next request: close instead.
                response = Response(response.status, response.body, response.content_type,
                                    tuple(response.headers) + (("Connection", "close"),))
            self._send(response, head)

    def _handle(self, method: str, path: str, route: Route | None) -> Response | None:
        """The route's response, or the error it raised as a JSON response."""
        try:
            if route is None:
                allowed = allowed_methods(path)
                if allowed:
                    raise HTTPError(405, "method not allowed", (("Allow", ", ".join(allowed)),))
                raise HTTPError(404, "not found")
            response = getattr(self, route.handler)()
            if response is not None and not isinstance(response.body, (bytes, bytearray)):
                response = _primed(response)
            return response
        except HTTPError as exc:
            return Response(exc.status, encode_json({"error": exc.message}), JSON_TYPE, exc.headers)
        # Refusals any write can meet, answered the same way wherever they come from: the dashboard is
        # stopping (the registry is sealed), or storage cannot keep what it would acknowledge.
        except RegistrySealed as exc:
            return Response(503, encode_json({"error": str(exc)}), JSON_TYPE, (("Retry-After", "5"),))
        except StorageError as exc:
            return Response(503, encode_json({"error": str(exc)}), JSON_TYPE, (("Retry-After", "30"),))
        except (ConnectionError, socket.timeout):
            raise  # the client left; handle_error logs it at DEBUG
        except Exception:
            log.exception("error handling %s %s", method, path)
            return json_response({"error": "internal server error"}, HTTPStatus.INTERNAL_SERVER_ERROR)

    def _send(self, response: Response, head: bool = False) -> None:
        # Reads ran against the request deadline; writes get the write timeout.
        self.connection.settimeout(self.server.config.write_timeout_s)
        streamed = not isinstance(response.body, (bytes, bytearray))
        chunked = streamed and self.request_version == "HTTP/1.1"
        if chunked:
            # Chunked, so a client can tell an export cut short by a failure (no last
            # chunk) from a complete one; an HTTP/1.0 client only sees the close.
            self.protocol_version = "HTTP/1.1"
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        if not streamed:
            self.send_header("Content-Length", str(len(response.body)))
        elif chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
        self._send_common_headers()
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        if head:
            return
        if not streamed:
            self.wfile.write(response.body)
            return
        self._send_streamed(response.body, chunked)

    def _send_streamed(self, chunks: Any, chunked: bool) -> None:
        """An export: chunks from a database cursor, sent in ~64 KiB writes. A failure on
        the way ends the connection without the last chunk: never a short "success"."""
        pending, size = [], 0

        def write(data: bytes) -> None:
            if data:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)

        try:
            for chunk in chunks:
                pending.append(chunk)
                size += len(chunk)
                if size >= 65536:
                    write(b"".join(pending))
                    pending, size = [], 0
        except Exception:
            log.exception("an export failed after its first bytes; the response is cut short")
            self.close_connection = True
            return
        write(b"".join(pending))
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    def _send_common_headers(self) -> None:
        for name, value in SECURITY_HEADERS:
            self.send_header(name, value)
        headers = getattr(self, "headers", None)  # absent when the request line itself was bad
        origin = headers.get("Origin") if headers is not None else None
        if self.server.config.cors_origin and origin == self.server.config.cors_origin:
            # Only the one origin named with --cors-origin; never "*" (glances CVE-2026-34839).
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Vary", "Origin")

    # --- logging -------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:
        # Not stderr: a Windows console in QuickEdit mode blocks writes and would
        # freeze requests (earthenterprise#1634). Off unless --access-log.
        # The request line may carry ?token=: never write it out.
        access_log.info("%s " + format, self.address_string(), *_redacted(args))

    def log_error(self, format: str, *args: Any) -> None:
        access_log.debug("%s " + format, self.address_string(), *_redacted(args))

    # --- request helpers -----------------------------------------------------

    def query_value(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None

    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0].strip().lower()

    def read_body(self, max_bytes: int) -> bytes:
        """The request body, or HTTPError 400/413 (nothing read past the cap)."""
        length = parse_length(self.headers.get("Content-Length"))
        if length is None:
            raise HTTPError(400, "Content-Length header is required (a whole number of bytes)")
        if length > max_bytes:
            raise HTTPError(413, "body must be at most %d bytes" % max_bytes)
        raw = self.rfile.read(length)
        self._body_pending = False
        if len(raw) < length:
            raise HTTPError(400, "body is shorter than Content-Length")
        return raw

    def read_json_body(self, max_bytes: int = MAX_BODY_BYTES) -> dict:
        """The request body as a JSON object, or HTTPError 400/413/415 (nothing read past the cap)."""
        if self.content_type() != "application/json":
            raise HTTPError(415, "Content-Type must be application/json")
        raw = self.read_body(max_bytes)
        if json_depth(raw) > MAX_JSON_DEPTH:
            raise HTTPError(400, "body nests arrays and objects more than %d deep" % MAX_JSON_DEPTH)
        try:
            body = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise HTTPError(400, "body must be valid UTF-8 JSON") from None
        if not isinstance(body, dict):
            raise HTTPError(400, "body must be a JSON object")
        if not all(is_unicode_text(key) for key in body):
            raise HTTPError(400, "field names must be valid Unicode text (no lone surrogates such as \\ud800)")
        return body

    def check_fields(self, body: dict, expected: tuple) -> None:
        unknown = sorted(set(body) - set(expected))
        if unknown:
            raise HTTPError(400, "unknown field(s): %s (expected %s)" % (
                ", ".join(_quoted(name) for name in unknown[:5]), ", ".join(expected)))

    # --- handlers ------------------------------------------------------------

    def serve_index(self) -> Response:
        offered = self.query_value("token")
        if offered is not None and self.server.config.token:
            if not token_matches(self.server.config.token, offered):
                raise HTTPError(401, "wrong token")
            # Trade the token in the URL for an HttpOnly cookie, and drop it from the address bar
            # (and from history); EventSource cannot send an Authorization header.
            cookie = "%s=%s; HttpOnly; SameSite=Strict; Path=/" % (cookie_name(self.server.server_port),
                                                                  cookie_value(offered))
            return Response(303, b"", "text/plain", (("Location", "/"), ("Set-Cookie", cookie),
                                                    ("Cache-Control", "no-store")))
        return self._static_file("index.html")

    def serve_static(self) -> Response:
        return self._static_file(urllib.parse.unquote(self.route_path[len("/static/"):]))

    def _static_file(self, relative: str) -> Response:
        # Refuse anything that could name a file outside static/ on any OS:
        # backslashes and drive letters (Windows), NUL, absolute paths, dot segments.
        if (not relative or "\\" in relative or "\x00" in relative or ":" in relative
                or relative.startswith("/") or any(p in ("", ".", "..") for p in relative.split("/"))):
            raise HTTPError(404, "not found")
        root = self.server.static_dir
        try:
            path = (root / relative).resolve()
            if root not in path.parents or not path.is_file():
                raise HTTPError(404, "not found")
            content = path.read_bytes()
        except (OSError, ValueError):  # a name too long for the OS (ENAMETOOLONG), and the like
            raise HTTPError(404, "not found") from None
        content_type = STATIC_CONTENT_TYPES.get(path.suffix.lower())
        if content_type is None:
            content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return Response(200, content, content_type, (("Cache-Control", "no-cache"),))

    def get_metrics(self) -> Response:
        return Response(200, encode_json(self.server.current_snapshot()), JSON_TYPE, (("Cache-Control", "no-store"),))

    def post_metrics(self) -> Response:
        body = self.read_json_body()
        self.check_fields(body, ("counters", "gauges"))
        for key in ("counters", "gauges"):
            if key in body and not isinstance(body[key], dict):
                raise HTTPError(400, "%s must be an object of name: number" % key)
        self.refuse_unless_durable()
        try:
            stored = self.server.registry.update(counters=body.get("counters"), gauges=body.get("gauges"))
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from None
        return json_response(dict(status="ok", **stored))

    def refuse_unless_durable(self) -> None:
        """503 while storage cannot keep what we would acknowledge (file gone, disk full)."""
        store = self.server.store
        problem = store.problem() if store is not None else None
        if problem:
            raise HTTPError(503, "storage cannot keep this right now: %s" % problem, (("Retry-After", "30"),))

    def delete_metric(self) -> Response:
        """DELETE /api/metrics/counters/NAME or /gauges/NAME: the metric and its history."""
        kind, _, name = self.route_path[len("/api/metrics/"):].partition("/")
        name = urllib.parse.unquote(name)
        server = self.server
        self.refuse_unless_durable()
        found = server.registry.delete(kind, name)  # with its stored history, in one commit
        if not found:
            raise HTTPError(404, "no such %s" % kind[:-1])
        server.sampler.history.forget("%s.%s" % (kind, name))
        return json_response({"status": "deleted", "kind": kind, "name": name})

    def response_format(self) -> str:
        fmt = self.query_value("format")
        if fmt is None:
            return "json"
        if fmt not in ("json", "csv"):
            raise HTTPError(400, "format must be json or csv")
        return fmt

    def time_window(self, default_s: float) -> tuple[float, float, bool]:
        """(start, end, explicit) from ``from``/``to`` (unix seconds) or ``seconds`` back from now."""
        start, end = _parse_time(self.query_value("from"), "from"), _parse_time(self.query_value("to"), "to")
        seconds = _parse_int(self.query_value("seconds"), "seconds", default=int(default_s), minimum=1)
        if start is None and end is None:
            now = time.time()
            return now - seconds, now, False
        end = time.time() if end is None else end
        start = end - default_s if start is None else start
        return start, end, True  # from after to is an empty window, not an error

    def get_history(self) -> Response:
        sampler, store = self.server.sampler, self.server.store
        start, end, explicit = self.time_window(300)
        if self.response_format() == "csv":
            if store is not None:
                return csv_download(history_csv(lambda: store.iter_history_rows(start, end)), HISTORY_CSV_NAME)
            rows = sampler.history.between(start, end)
            return csv_download(history_csv(lambda: iter(rows)), HISTORY_CSV_NAME)
        if explicit:  # an export: rows, streamed, so a week never sits in memory at once
            rows = store.iter_history_rows(start, end) if store is not None else iter(sampler.history.between(start, end))
            return json_stream(json_array_chunks('{"rows":[', (encode_json({"ts": ts, "series": flat})
                                                               for ts, flat in rows), "]}"))
        return Response(200, encode_json(self.server.history_columns(start, end)), JSON_TYPE,
                        (("Cache-Control", "no-store"),))

    def get_events(self) -> Response:
        """Paging (``since`` is a cursor: oldest first, ``more`` and ``next``), the newest
        ``limit`` (no ``since``), or an export (``from``/``to``, ``format=csv``)."""
        since = _parse_int(self.query_value("since"), "since", default=0)
        fmt = self.response_format()
        level = self.query_value("level")
        if level is not None and level not in LEVELS:
            raise HTTPError(400, "level must be one of " + ", ".join(LEVELS))
        only = self.event_filter()
        explicit = self.query_value("from") is not None or self.query_value("to") is not None
        store = self.server.store
        if fmt == "csv" or explicit:
            # Exports: every stored event in the window, streamed from the database when there is one.
            start, end, _ = self.time_window(10 * 365 * 86400)
            limit = _parse_int(self.query_value("limit"), "limit", default=None, minimum=1)
            if store is not None:
                events = store.iter_events(since, start, end, level, limit, only=only)
            else:
                events = iter([e for e in self.server.events.since(since, limit=limit, level=level, only=only)
                               if start <= e.ts <= end])
            if fmt == "csv":
                return csv_download(events_csv(events), EVENTS_CSV_NAME)
            return json_stream(json_array_chunks('{"events":[', (e.json.encode("utf-8") for e in events), "]}"))
        limit = _parse_int(self.query_value("limit"), "limit", default=DEFAULT_EVENTS_LIMIT, minimum=1)
        limit = min(limit, max(MAX_EVENTS_LIMIT, self.server.events.maxlen))
        page = self.server.event_page(None if self.query_value("since") is None else since, limit, level, only)
        body = '{"events":[%s],"more":%s,"next":%d,"last_id":%d,"epoch":"%s"}' % (
            ",".join(e.json for e in page["events"]), "true" if page["more"] else "false", page["next"],
            page["last_id"], page["epoch"])
        return Response(200, body.encode("utf-8"), JSON_TYPE, (("Cache-Control", "no-store"),))

    def event_filter(self) -> EventFilter | None:
        """``types``, ``levels`` and ``sources`` from the query (comma-separated), or None."""
        try:
            return EventFilter.parse(self.query_value("types"), self.query_value("levels"), self.query_value("sources"))
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from None

    def post_event(self) -> Response:
        body = self.read_json_body()
        self.check_fields(body, ("message", "level", "source", "data", "type"))
        if "message" not in body:
            raise HTTPError(400, "message is required")
        try:
            event = self.server.events.post(
                body.get("level", "info"), body["message"], source=body.get("source", "app"), data=body.get("data"),
                type=body.get("type"),
            )
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from None
        return Response(201, event.json.encode("utf-8"), JSON_TYPE)

    def get_health(self) -> Response:
        return json_response(self.server.health())

    def get_alerts(self) -> Response:
        return json_response(self.server.alerts_state())

    def post_alerts_test(self) -> Response:
        """POST /api/alerts/test: a test notification to every target, answered with each result."""
        if not self.server.notifier.targets:
            raise HTTPError(400, 'no notify targets: add "notify" to the --config file (README "Notifications")')
        try:
            results = self.server.notifier.test()
        except NotificationTestBusy as exc:  # one test at a time: parallel calls hold no thread
            raise HTTPError(429, str(exc), (("Retry-After", str(exc.retry_after_s)),)) from None
        if any(r["ok"] is False for r in results):
            return json_response({"results": results}, 502)
        return json_response({"results": results}, 202 if any(r["pending"] for r in results) else 200)

    def get_processes(self) -> Response:
        """The top ten by CPU and by memory, read now (at most every 2 s, however many ask)."""
        return Response(200, encode_json(self.server.processes.top()), JSON_TYPE, (("Cache-Control", "no-store"),))

    def push_heartbeat(self) -> Response:
        """GET or POST /api/push/NAME?status=up|down&msg=...&ping=...&every=SECONDS: a heartbeat."""
        if self.command == "HEAD":
            raise HTTPError(405, "a heartbeat is GET or POST", (("Allow", "DELETE, GET, POST"),))
        name = urllib.parse.unquote(self.route_path[len("/api/push/"):])
        self.refuse_a_heartbeat_body()
        self.refuse_unless_durable()
        try:
            beat = self.server.heartbeats.beat(name, status=_default(self.query_value("status"), "up"),
                                               message=self.query_value("msg") or "", ping=self.query_value("ping"),
                                               every=self.query_value("every"))
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from None
        return json_response(dict(beat, ok=True))

    def refuse_a_heartbeat_body(self) -> None:
        """A heartbeat's fields are in its URL; a body would be ignored, so it is refused.

        ``curl -d status=down`` (a form) used to be answered 200 and recorded as ``up``. A POST
        with no body (``curl -X POST``, Uptime Kuma, urllib's empty form) is what push monitors
        send, whatever its Content-Type; a cross-site form is refused by its Origin (guard.py)."""
        if self._body_pending:
            raise HTTPError(415, "a heartbeat takes no body: put its fields in the URL "
                                 "(/api/push/NAME?status=down&msg=...&ping=MS&every=SECONDS)")

    def delete_heartbeat(self) -> Response:
        name = urllib.parse.unquote(self.route_path[len("/api/push/"):])
        found = self.server.heartbeats.forget(name)
        if not found:
            raise HTTPError(404, "no such heartbeat")
        return json_response({"status": "deleted", "name": name})

    def get_prometheus(self) -> Response:
        snapshot = self.server.current_snapshot()
        return Response(200, render_prometheus(snapshot).encode("utf-8"), PROMETHEUS_CONTENT_TYPE,
                        (("Cache-Control", "no-store"),))

    def push_metrics(self) -> Response:
        """PUT or POST /metrics/job/JOB{/LABEL/VALUE}: a Pushgateway push (see pushgateway.py)."""
        grouping = self._grouping()
        if self.content_type() not in ("", "text/plain", "application/openmetrics-text"):
            raise HTTPError(415, "the body must be Prometheus text (text/plain; version=0.0.4) or OpenMetrics text")
        encoding = self.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip"):
            raise HTTPError(415, "Content-Encoding must be gzip or none")
        raw = self.read_body(MAX_PUSH_BYTES)
        if encoding == "gzip":  # prometheus_client's compression="gzip"; bounded, whatever it claims
            try:
                raw = gunzip_bounded(raw, MAX_PUSH_BYTES)
            except ValueError as exc:
                raise HTTPError(400, str(exc)) from None
        try:
            samples = parse_exposition(raw.decode("utf-8"), grouping)
        except UnicodeDecodeError:
            raise HTTPError(400, "the body must be UTF-8 text") from None
        except PushError as exc:
            raise HTTPError(400, str(exc)) from None
        self.refuse_unless_durable()
        try:
            stored = self.server.pushes.push(grouping, samples, replace=self.command == "PUT")
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from None
        return json_response({"status": "ok", "group": grouping, "samples": stored})

    def delete_push_group(self) -> Response:
        """DELETE /metrics/job/JOB{/LABEL/VALUE}: the group and its metrics (200 even if absent, as
        the Pushgateway answers)."""
        grouping = self._grouping()
        self.refuse_unless_durable()
        found = self.server.pushes.delete(grouping)
        return json_response({"status": "deleted" if found else "absent", "group": grouping})

    def _grouping(self) -> dict:
        try:
            grouping = parse_grouping(self.route_path[len("/metrics/"):])
            labeled_name("push_time_seconds", grouping)  # the group's own name must be a usable one
        except ValueError as exc:  # PushError too
            raise HTTPError(400, str(exc)) from None
        return grouping

    def post_mcp(self) -> Response:
        """POST /mcp: the Model Context Protocol, stateless and JSON only (agent_api.py)."""
        accept = self.headers.get("Accept", "*/*").lower()
        if not any(kind in accept for kind in ("application/json", "application/*", "*/*")):
            raise HTTPError(406, "Accept must include application/json (this MCP server answers in JSON)")
        if self.content_type() != "application/json":
            raise HTTPError(415, "Content-Type must be application/json")
        raw = self.read_body(MAX_BODY_BYTES)
        if json_depth(raw) > MAX_JSON_DEPTH:
            status, answer = 400, {"jsonrpc": "2.0", "id": None, "error": {
                "code": -32700, "message": "Parse error: nested more than %d deep" % MAX_JSON_DEPTH}}
        else:
            status, answer = self.server.mcp.handle(raw, self.headers)
        if answer is None:
            return Response(202, b"", JSON_TYPE)
        return Response(status, encode_json(answer), JSON_TYPE, (("Cache-Control", "no-store"),))

    def get_openapi(self) -> Response:
        return json_response(openapi_spec(__version__))

    # --- the stream ----------------------------------------------------------

    def stream_metrics(self) -> None:
        """Open ``text/event-stream``: headers, ``retry:``, the current snapshot (and a
        ``resync`` if the client's last id means nothing here), then hand the socket to
        the stream hub, which sends everything after (README "How the stream works")."""
        server = self.server
        last_event_id = parse_last_event_id(self.headers.get("Last-Event-ID"))
        if last_event_id is None:
            last_event_id = parse_last_event_id(self.query_value("lastEventId"))
        only = self.event_filter()
        with_metrics = self._flag("metrics", True)
        typed = self._stream_names()
        hub = server.hub
        max_clients = server.config.max_clients
        if not hub.reserve(max_clients):
            raise HTTPError(503, "too many stream clients (at most %d); poll /api/metrics instead" % max_clients,
                            (("Retry-After", "10"),))
        added = False
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-cache, no-transform")
            self.send_header("X-Accel-Buffering", "no")  # nginx: do not buffer (sse-starlette#5)
            self.send_header("Connection", "close")  # the body ends when the connection does
            self._send_common_headers()
            self.end_headers()
            self.close_connection = True
            if self.command == "HEAD":
                return None
            snapshot, body = server.sampler.latest()
            frames = [format_sse(retry=RETRY_MS)] + ([metrics_frame(body)] if with_metrics else [])
            cursor = server.events.last_id
            epoch = self.query_value("epoch")
            if last_event_id is not None:
                if (epoch is not None and epoch != server.events_epoch) or not (
                        server.events.first_id - 1 <= last_event_id <= cursor):
                    # From another run of the server, from the future, or already evicted.
                    frames.append(resync_frame(cursor))
                else:
                    cursor = last_event_id  # the hub replays what came after it
                log.debug("stream from %s resumed after id %s", self.client_address, last_event_id)
            # Frames are small and must go now, not when Nagle's algorithm decides.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.connection.settimeout(server.config.write_timeout_s)
            self.wfile.write(b"".join(frames))
            server.hand_off(self.connection)
            hub.add(self.connection, cursor=cursor, seq=snapshot["seq"], only=only, typed=typed, metrics=with_metrics)
            added = True
        except (socket.timeout, ConnectionError) as exc:  # gone during the handshake
            log.debug("stream to %s ended before it started: %s", self.client_address, exc)
        finally:
            if not added:
                hub.release()
        return None


    def _flag(self, name: str, default: bool) -> bool:
        value = self.query_value(name)
        if value is None:
            return default
        if value not in ("0", "1", "true", "false"):
            raise HTTPError(400, "%s must be 0 or 1" % name)
        return value in ("1", "true")

    def _stream_names(self) -> bool:
        """True: typed events go out under their type; ``names=log`` (the page) names them all ``log``."""
        names = self.query_value("names")
        if names not in (None, "type", "log"):
            raise HTTPError(400, "names must be type (typed events under their type, the default) or log")
        return names != "log"


class _DeadlineReader(io.RawIOBase):
    """Socket reads that all share one deadline (each recv gets only the time left)."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self.deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("request not received in time")
        self._sock.settimeout(left)
        return self._sock.recv_into(buffer)


def _redacted(args: tuple) -> list:
    """Log arguments with any ?token= hidden; numbers stay numbers (the format may say %d)."""
    return [redact_secrets(a) if isinstance(a, str) else a for a in args]


def _default(value: str | None, default: str) -> str:
    """A query value, or ``default`` when absent (an empty ``?status=`` is a value, and wrong)."""
    return default if value is None else value


def _reject_constant(name: str) -> None:
    raise ValueError("%s is not valid JSON" % name)


def _decided(decision: Decision) -> Response:
    """An access decision as a response: 204 for a preflight, else the JSON error."""
    if decision.status == 204:
        return Response(204, b"", "text/plain", decision.headers)
    return Response(decision.status, encode_json({"error": decision.message}), JSON_TYPE, decision.headers)


def _primed(response: Response) -> Response:
    """A streamed response whose first chunk is already made: a query that fails at
    once becomes an error status, not a 200 with an empty body."""
    chunks = iter(response.body)
    first = next(chunks, b"")
    return Response(response.status, itertools.chain((first,), chunks), response.content_type, response.headers)


# --------------------------------------------------------------------------
# Wiring and the command line
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """Everything a dashboard is started with; ``parse_args`` builds one from the command
    line, ``build_app`` takes one (or its fields as keywords). Fixed for the run."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    interval_s: float = DEFAULT_INTERVAL_S
    demo: bool = False
    psutil: Any = "auto"                  # "auto", None (the stdlib collector) or the module
    max_events: int = 1000
    max_event_chars: int = DEFAULT_MAX_CHARS
    gauge_ttl_s: float = DEFAULT_GAUGE_TTL_S
    static_dir: Path | None = None
    heartbeat_s: float = HEARTBEAT_S
    write_timeout_s: float = STREAM_WRITE_TIMEOUT_S
    request_timeout_s: float = REQUEST_TIMEOUT_S
    token: str | None = None
    allowed_hosts: tuple = ()
    cors_origin: str | None = None
    public_url: str | None = None         # the origin the page is served from (a TLS proxy's https://...)
    max_clients: int = DEFAULT_MAX_CLIENTS
    post_rate_per_s: float = DEFAULT_POST_RATE_PER_S
    alert_rules: tuple = ()
    data_dir: str | Path | None = None    # None or ":memory:": keep nothing
    storage_options: tuple = ()           # (name, value) pairs for storage.open_store
    statsd: str | None = None             # "[HOST:]PORT" to take StatsD on (UDP and TCP); None: off
    heartbeats: tuple = ()                # (name, {"every": s, "level": ...}) expected from the start
    notify: tuple = ()                    # notify.Target: where alert changes are sent

    def __post_init__(self) -> None:
        # Normalised once, so nothing downstream has to.
        object.__setattr__(self, "token", self.token or None)
        object.__setattr__(self, "allowed_hosts", tuple(self.allowed_hosts))
        object.__setattr__(self, "cors_origin", self.cors_origin.rstrip("/") if self.cors_origin else None)
        object.__setattr__(self, "public_url", origin_of(self.public_url) if self.public_url else None)
        object.__setattr__(self, "alert_rules", tuple(self.alert_rules))
        object.__setattr__(self, "notify", tuple(self.notify))
        beats = self.heartbeats
        object.__setattr__(self, "heartbeats", tuple(sorted(beats.items() if isinstance(beats, dict) else beats)))
        options = self.storage_options
        object.__setattr__(self, "storage_options", tuple(sorted((options.items() if isinstance(options, dict)
                                                                  else options or ()))))


def build_app(config: Config | None = None, *, start: bool = True, **fields: Any) -> DashboardServer:
    """Create, connect and (with ``start=True``) start everything but ``serve_forever``.

    >>> server = build_app(port=0)                 # or build_app(Config(port=0))
    >>> threading.Thread(target=server.serve_forever, daemon=True).start()
    >>> server.events.post("info", "hello")      # in-process use
    """
    config = Config(**fields) if config is None else dataclasses.replace(config, **fields)
    store, storage_problem = _open_storage(config.data_dir,
                                           dict({"interval_s": config.interval_s}, **dict(config.storage_options)))
    # Every counter and gauge update is committed before it is applied (and answered).
    registry = MetricsRegistry(gauge_ttl_s=config.gauge_ttl_s,
                               journal=store.commit_metrics if store is not None else None)
    try:
        events = _event_log(store, storage_problem, config.max_events, config.max_event_chars)
        if store is not None:
            registry.restore(*store.metric_state())  # totals and gauges continue where they stopped
        server = DashboardServer(config, registry, events)
        server.pushes = PushGroups(registry, store.read_meta(PushGroups.META_KEY) if store is not None else None)
    except BaseException:
        if store is not None:
            store.close()
        raise
    server.store = store
    if store is not None:
        store.announce(server.url)
    server.storage_problem = storage_problem
    server.events_epoch = store.epoch if store is not None else server.boot_id
    notice = functools.partial(_post_notice, events)
    server.notifier = Notifier(list(config.notify), server.url, post=notice,
                               persist=functools.partial(store.write_meta, "notify_flood") if store else None,
                               state=store.read_meta("notify_flood") if store is not None else None)
    server.alerts = AlertEngine(list(config.alert_rules), post=notice, notify=server.notifier.alert_changed,
                                persist=functools.partial(store.write_meta, "alerts") if store else None,
                                state=store.read_meta("alerts") if store is not None else None)
    server.heartbeats = Heartbeats(notice, dict(config.heartbeats),
                                   persist=functools.partial(store.write_meta, "heartbeats") if store else None,
                                   state=store.read_meta("heartbeats") if store is not None else None,
                                   notify=server.notifier.alert_changed)
    hub = server.hub = StreamHub(events, lambda: server.sampler.latest(), heartbeat_s=config.heartbeat_s,
                                 write_timeout_s=config.write_timeout_s)
    events.on_post = hub.wake  # an event goes out the moment it is posted
    sampler = Sampler(
        registry,
        make_system_collector(config.psutil),
        interval_s=config.interval_s,
        on_sample=lambda: hub.published(*server.sampler.latest()),
        server_stats=server.stats,
        extra=dict({"boot_id": server.boot_id, "events_epoch": server.events_epoch},
                   **({"demo": True} if config.demo else {})),
        enrich=server.enrich,
        record=store.enqueue_sample if store is not None else None,
    )
    server.sampler = sampler
    server.processes = TopProcesses(getattr(sampler.collector, "_psutil", None))
    server.mcp = McpEndpoint(dashboard_tools(server, functools.partial(events.post), EventFilter.parse), __version__)
    if config.statsd:
        server.statsd = _statsd_listener(server, config.statsd)
        sampler.prepare = server.statsd.aggregator.flush
    if start:
        if store is not None:
            store.start()
        sampler.start()
        hub.start()
        server.notifier.start()
        if server.statsd is not None:
            server.statsd.start()
            log.info("StatsD on %s:%d (UDP and TCP)", *server.statsd.address)
        if config.demo:
            DemoFeeder(registry, events, stop=server.stopping).start()
    return server


def _stop_together(*parts: Any) -> None:
    """Call ``stop()`` on every part that is there, all at once, and wait for them all."""
    def stop(part: Any) -> None:
        try:
            part.stop()
        except Exception:  # one part's failure must not keep the others, or storage, from stopping
            log.exception("stopping %s failed", type(part).__name__)

    threads = [threading.Thread(target=stop, args=(part,), name="stop", daemon=True)
               for part in parts if part is not None]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


class ListenerUnavailable(OSError):
    """A second listener (StatsD) could not take its port: the message says what to do."""


def _statsd_listener(server: DashboardServer, address: str) -> StatsdListener:
    host, port = parse_address(address)
    try:
        return StatsdListener(StatsdAggregator(server.registry), host, port)
    except OSError as exc:
        server.server_close()
        why = ("UDP or TCP port %d on %s is taken (a local Netdata, Telegraf or statsd agent often listens on 8125); "
               "stop it or use --statsd %s:OTHER_PORT" % (port, host, host) if _in_use(exc)
               else "cannot listen on %s:%d: %s" % (host, port, exc.strerror or exc))
        raise ListenerUnavailable("StatsD: " + why) from None


def _open_storage(data_dir: str | Path | None, options: dict) -> tuple[Store | None, str | None]:
    """The store, or (None, why not). No data_dir (or ":memory:") means memory only, by choice."""
    if data_dir is None or str(data_dir) == ":memory:":
        return None, None
    try:
        store = open_store(data_dir, **options)
    except DataDirInUse:
        raise  # not a fault to run around: the user has two dashboards on one folder (main() says so)
    except StorageError as exc:
        # The live page still works from memory; POST /api/events answers 503 (nothing durable).
        log.error("storage unavailable, events will be refused until restarted: %s", exc)
        return None, str(exc)
    log.info("storing events and history in %s", store.path)
    return store, None


def _post_notice(events: EventLog, level: str, message: str, **fields: Any) -> None:
    """Post one of the dashboard's own events (an alert firing): durably when storage can,
    else in memory only, so the page still hears of it. Only these may use the alert.* types."""
    try:
        events.post(level, message, by_dashboard=True, **fields)
    except StorageError as exc:
        log.warning("storage failing (%s): alert event kept in memory only", exc)
        events.post(level, message, durable=False, by_dashboard=True, **fields)


def _event_log(store: Store | None, problem: str | None, max_events: int, max_chars: int) -> EventLog:
    if store is not None:
        return EventLog(maxlen=max_events, max_chars=max_chars, persist=store.insert_event,
                        initial=store.recent_events(max_events, max_chars), last_id=store.last_event_id())
    if problem is not None:
        def refuse(event: Any) -> None:
            raise StorageError("storage is unavailable: %s" % problem)

        return EventLog(maxlen=max_events, max_chars=max_chars, persist=refuse)
    return EventLog(maxlen=max_events, max_chars=max_chars)


def default_data_dir() -> Path:
    """``data/`` beside the script in a checkout (or an unpacked zip: it has pyproject.toml);
    the per-user data folder once installed."""
    here = Path(__file__).resolve().parent.parent.parent  # the checkout's root, when there is one
    if (here / "pyproject.toml").is_file():
        return here / "data"
    if os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "sse-dashboard"


def _in_use(exc: OSError) -> bool:
    return exc.errno == errno.EADDRINUSE or getattr(exc, "winerror", None) == 10048


def _dashboard_at(host: str, port: int) -> str | None:
    """The URL of the sse-dashboard answering on host:port, or None (something else, or nothing)."""
    import http.client  # only on this error path

    address = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    conn = http.client.HTTPConnection(address, port, timeout=2)
    try:
        conn.request("GET", "/api/health")
        response = conn.getresponse()
        server = response.getheader("Server", "")
        response.read(4096)
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()
    if not server.startswith("sse-dashboard/"):
        return None
    return "http://%s:%d/" % ("[%s]" % address if ":" in address else address, port)


def _another_dashboard(url: str | None, open_browser: bool, message: str) -> int:
    """A second start where one dashboard already runs: with --open (the .bat), show that one."""
    if open_browser and url:
        import webbrowser

        log.info("a dashboard already runs at %s: opening it in the browser", url)
        webbrowser.open(url)
        return 0
    log.error("%s", message)
    return 2


def port_error_message(exc: OSError, host: str, port: int) -> str:
    """One sentence saying why the port could not be bound and what to try."""
    winerror = getattr(exc, "winerror", None)
    if exc.errno == errno.EADDRINUSE or winerror == 10048:
        return ("port %d on %s is already in use (is another dashboard running?); "
                "try another one, e.g. --port %d" % (port, host, port + 10))
    if exc.errno == errno.EACCES or winerror == 10013:
        return ("port %d on %s is reserved or forbidden (on Windows Hyper-V/WSL reserve port ranges: "
                "see 'netsh interface ipv4 show excludedportrange protocol=tcp'); try e.g. --port %d"
                % (port, host, port + 10))
    if exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
        return "cannot listen on %s: no such address on this machine (%s)" % (host, exc.strerror or exc)
    return "cannot listen on %s port %d: %s" % (host, port, exc.strerror or exc)


# Shipped beside this file in a checkout and when installed (pyproject.toml's package data),
# so --help can name a file that is really there.
EXAMPLE_CONFIG = _data_dir_of("examples") / "alerts.example.json"


def make_parser() -> argparse.ArgumentParser:
    """The command line (tests/test_readme.py holds the README's options block to it)."""
    parser = argparse.ArgumentParser(
        prog="sse-dashboard", description="A live monitoring dashboard: open the printed URL in a browser.",
        # Raw, so the example's path (site-packages-something when installed) is not broken at a hyphen.
        epilog="an example --config file to copy:\n  %s" % EXAMPLE_CONFIG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("port_arg", nargs="?", type=int, metavar="PORT", help="port (same as --port)")
    parser.add_argument("--port", type=int, default=None, help="port to listen on (default %d; 0 = any free port)" % DEFAULT_PORT)
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default %s, this machine only)" % DEFAULT_HOST)
    parser.add_argument("--interval", type=float, default=DEFAULT_INTERVAL_S, help="seconds between samples (default 1.0)")
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help="where events and history are kept (default %s; ':memory:' keeps nothing)" % default_data_dir())
    parser.add_argument("--keep-full", type=float, default=3600.0, metavar="SECONDS",
                        help="keep every sample this long (default 3600)")
    parser.add_argument("--keep-rollups", type=float, default=7 * 86400.0, metavar="SECONDS",
                        help="keep one-minute min/avg/max this long (default 7 days)")
    parser.add_argument("--config", metavar="FILE",
                        help="alert rules, expected heartbeats and notify targets (JSON; an example is named below)")
    parser.add_argument("--statsd", metavar="[HOST:]PORT", default=None,
                        help="take StatsD lines on this UDP and TCP port (off by default; 8125 is usual)")
    parser.add_argument("--demo", action="store_true", help="feed synthetic counters, gauges and events")
    parser.add_argument("--no-psutil", action="store_true", help="use the standard-library collector even if psutil is installed")
    parser.add_argument("--token", default=os.environ.get("SSE_DASHBOARD_TOKEN") or None,
                        help="require this token for the API (env SSE_DASHBOARD_TOKEN); open /?token=TOKEN once in the browser")
    parser.add_argument("--insecure", action="store_true", help="allow a non-loopback --host without a token")
    parser.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                        help="a host name this server may be reached by (besides localhost and IP addresses)")
    parser.add_argument("--cors-origin", default=None, metavar="ORIGIN", help="allow this one origin cross-site (e.g. https://grafana.example)")
    parser.add_argument("--public-url", default=None, metavar="URL",
                        help="the origin the page is served from, behind a reverse proxy (e.g. https://dash.example.org)")
    parser.add_argument("--max-clients", type=int, default=DEFAULT_MAX_CLIENTS, help="most concurrent streams (default %d)" % DEFAULT_MAX_CLIENTS)
    parser.add_argument("--post-rate", type=float, default=DEFAULT_POST_RATE_PER_S,
                        help="POSTs per second per client address (default %g; 0 = unlimited)" % DEFAULT_POST_RATE_PER_S)
    parser.add_argument("--gauge-ttl", type=float, default=DEFAULT_GAUGE_TTL_S, metavar="SECONDS",
                        help="a gauge nobody set for this long leaves the live view (default %g, a day; 0 = never)"
                        % DEFAULT_GAUGE_TTL_S)
    parser.add_argument("--open", action="store_true", help="open the page in the default browser once serving")
    parser.add_argument("--access-log", action="store_true", help="log every request (off by default)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version="sse-dashboard " + __version__)
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.port is None:
        args.port = args.port_arg if args.port_arg is not None else DEFAULT_PORT
    if not 0 <= args.port <= 65535:
        parser.error("port must be between 0 and 65535")
    if not (args.interval > 0 and args.interval <= 3600):
        parser.error("--interval must be a number of seconds above 0")
    if not (args.keep_full > 0 and args.keep_rollups > 0):
        parser.error("--keep-full and --keep-rollups must be above 0 seconds")
    if args.token is not None and token_problem(args.token):
        parser.error("--token: %s" % token_problem(args.token))
    if args.statsd is not None:
        try:
            parse_address(args.statsd)
        except ValueError as exc:
            parser.error(str(exc))
    if not (args.gauge_ttl >= 0 and math.isfinite(args.gauge_ttl)):
        parser.error("--gauge-ttl must be 0 or more seconds")
    if args.public_url is not None:
        try:
            origin_of(args.public_url)
        except ValueError as exc:
            parser.error("--public-url: %s" % exc)
    return args


def load_config(path: str | None) -> tuple[list, dict, list]:
    """(alert rules, heartbeats, notify targets) from the --config file; ``ValueError`` names
    what is wrong, and nothing is half-loaded."""
    document = load_document(path) if path else {}
    rules = parse_rules(document)
    heartbeats = parse_heartbeats(document.get("heartbeats"))
    targets = parse_targets(document.get("notify"))
    names = {t.name for t in targets}
    for what, wanted in [("rule %s" % r.name, r.notify) for r in rules] + [
            ("heartbeat %s" % name, entry["notify"]) for name, entry in heartbeats.items()]:
        unknown = sorted(set(wanted or ()) - names)
        if unknown:
            raise ValueError("%s: notify names %s, which is not a notify target (%s)"
                             % (what, unknown[0], ", ".join(sorted(names)) or "there are none"))
    return rules, heartbeats, targets


def fit_open_file_limit(max_clients: int) -> int:
    """Raise this process's soft limit on open files toward what ``max_clients`` streams
    need (POSIX; Windows has no such per-process limit for sockets), and return the number
    of streams that fit: past it a client gets 503, not a failed accept()."""
    try:
        import resource
    except ImportError:
        return max_clients
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_clients + SPARE_FILES
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new_soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
            soft = new_soft
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft < wanted:
        fitted = max(1, soft - SPARE_FILES)
        log.warning("this system allows %d open files, so at most %d streams (not %d); "
                    "raise it with 'ulimit -n'", soft, fitted, max_clients)
        return fitted
    return max_clients


def config_from_args(args: argparse.Namespace, rules: list, data_dir: str | Path) -> Config:
    return Config(host=args.host, port=args.port, interval_s=args.interval, demo=args.demo,
                  psutil=None if args.no_psutil else "auto", token=args.token, allowed_hosts=tuple(args.allow_host),
                  cors_origin=args.cors_origin, public_url=args.public_url,
                  max_clients=fit_open_file_limit(args.max_clients),
                  post_rate_per_s=args.post_rate,
                  alert_rules=tuple(rules), gauge_ttl_s=args.gauge_ttl, data_dir=data_dir, statsd=args.statsd,
                  storage_options={"full_s": args.keep_full, "rollup_keep_s": args.keep_rollups})


def _configure_console() -> None:
    # A cp1252 console, or output redirected to a file on Windows, must not turn a
    # non-ASCII event message into a UnicodeEncodeError (waku-agent#140).
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is None:
            continue
        try:
            if stream.isatty():
                reconfigure(errors="replace")
            else:
                reconfigure(encoding="utf-8", errors="replace")
        except (ValueError, OSError):
            pass


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _configure_console()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    access_log.setLevel(logging.INFO if args.access_log or args.verbose else logging.WARNING)
    if not is_loopback(args.host):
        if not args.token and not args.insecure:
            log.error("refusing to listen on %s without a token: anyone on the network could read and post. "
                      "Start with --token TOKEN (or SSE_DASHBOARD_TOKEN), or --insecure if you really mean it", args.host)
            return 2
        log.warning("listening on %s: reachable from other machines%s", args.host,
                    "" if args.token else " and open to anyone (--insecure)")
    try:
        rules, heartbeats, targets = load_config(args.config)
    except ValueError as exc:
        log.error("config not loaded, not starting: %s", exc)
        return 2
    data_dir = args.data_dir or (":memory:" if args.demo else default_data_dir())
    if args.demo and not args.data_dir:
        log.info("demo: synthetic counters, gauges and events, kept in memory only (not in %s)", default_data_dir())
    try:
        server = build_app(config_from_args(args, rules, data_dir), heartbeats=heartbeats, notify=targets)
    except DataDirInUse as exc:
        return _another_dashboard(exc.url, args.open, "the data folder %s is in use by another dashboard%s; use that one, "
                                  "or start this one with --data-dir DIR (another folder) or --data-dir :memory: "
                                  "(keep nothing)" % (exc.directory, " (%s)" % exc.url if exc.url else ""))
    except ListenerUnavailable as exc:
        log.error("%s", exc)
        return 2
    except OSError as exc:
        url = _dashboard_at(args.host, args.port) if _in_use(exc) else None
        if url:
            return _another_dashboard(url, args.open, "a dashboard already runs at %s; use that one, or start "
                                      "this one with another --port" % url)
        log.error("%s", port_error_message(exc, args.host, args.port))
        return 2
    collector = server.sampler.collector
    log.info("system metrics from %s", collector.source)
    if rules:
        log.info("%d alert rule(s) from %s", len(rules), args.config)
    log.info("dashboard at %s (Ctrl+C to stop)", server.url)

    done = threading.Event()

    def request_stop(signum: int, frame: Any) -> None:
        done.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    if hasattr(signal, "SIGBREAK"):  # Ctrl+Break on Windows
        signal.signal(signal.SIGBREAK, request_stop)

    serving = threading.Thread(target=server.serve_forever, name="serve_forever", daemon=True)
    serving.start()
    if args.open:
        import webbrowser  # only here: it pulls in subprocess and shlex, ~0.5 MB nobody else needs

        threading.Thread(target=webbrowser.open, args=(server.url,), name="open-browser", daemon=True).start()
    try:
        # Wait in short slices: on Windows a plain wait() would not see Ctrl+C.
        while not done.wait(0.5) and serving.is_alive():
            pass
    finally:
        log.info("stopping")
        server.shutdown()  # from this thread, not serve_forever's (socketserver deadlock note)
        server.server_close()
        serving.join(2.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
