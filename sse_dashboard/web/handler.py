"""One request: find its route, check who may use it, call the handler, write the answer.

One concept: the dispatcher. ``DashboardHandler`` is ``BaseHTTPRequestHandler`` with one
``_dispatch`` for every method: it looks the request up in the route table (``routes.py``),
asks ``guard`` with that route's rule, calls the handler the route names and writes the
``Response`` it returns. The handlers themselves are grouped by resource in ``handlers/``.

Invariants:
- handlers return a ``Response`` (bytes, or an iterator of bytes for a streamed export) and
  ``_dispatch`` writes it; ``stream_metrics`` writes only the stream's opening, then hands
  the socket to the hub (``streams.py``), which alone writes to it from then on;
- ``_handle`` is the one place that turns ``HTTPError`` into ``{"error": ...}``; any other
  exception is logged and answered 500 without its text;
- a request's line, headers and body share one deadline (slowloris); writes get the write
  timeout;
- access lines never carry ``?token=`` (``guard.redact_secrets``);
- a request with ``?share=<id>`` is a share link's session (#26): ``guard.check_share`` decides
  instead of the token rules, and its JSON answers go out cut by ``shareview`` (``shared_view``),
  so what a link hides never leaves the server.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import time
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

from sse_dashboard import __version__
from sse_dashboard.application import Application
from sse_dashboard.registry import RegistrySealed
from sse_dashboard.sampler import encode_json
from sse_dashboard.storage import StorageError
from sse_dashboard.web.guard import Decision, check_access, check_share, redact_secrets
from sse_dashboard.web.handlers.alerts import AlertHandlers
from sse_dashboard.web.handlers.badges import BadgeHandlers
from sse_dashboard.web.handlers.events import EventHandlers
from sse_dashboard.web.handlers.fleet import FleetHandlers
from sse_dashboard.web.handlers.jobs import JobHandlers
from sse_dashboard.web.handlers.metrics import MetricHandlers
from sse_dashboard.web.handlers.otlp import OTLP_PATHS, OtlpHandlers, otlp_refusal
from sse_dashboard.web.handlers.page import PageHandlers
from sse_dashboard.web.handlers.push import PushHandlers
from sse_dashboard.web.handlers.service import ServiceHandlers
from sse_dashboard.web.handlers.status import StatusHandlers
from sse_dashboard.web.handlers.shares import ShareHandlers
from sse_dashboard.web.handlers.stream import StreamHandlers
from sse_dashboard.web.handlers.tokens import TokenHandlers
from sse_dashboard.web.request import DeadlineReader, RequestReading
from sse_dashboard.web.response import (JSON_TYPE, SECURITY_HEADERS, HTTPError, Response, error_response,
                                        json_response, primed)
from sse_dashboard.web.routes import Route, access_for, allowed_methods, find_route
from sse_dashboard.web.shareview import FILTERS, view_answer

if TYPE_CHECKING:
    from sse_dashboard.web.server import DashboardServer

__all__ = ["DashboardHandler", "access_log"]

log = logging.getLogger(__name__)
access_log = logging.getLogger("sse_dashboard.web.access")


class DashboardHandler(PageHandlers, MetricHandlers, EventHandlers, StreamHandlers, AlertHandlers, PushHandlers,
                       OtlpHandlers, JobHandlers, FleetHandlers, ServiceHandlers, TokenHandlers, BadgeHandlers,
                       StatusHandlers, ShareHandlers, RequestReading, BaseHTTPRequestHandler):
    """One request. Routes are data (``routes.ROUTES``); each handler returns a ``Response``.

    The handler methods come from ``handlers/`` (one class per resource), reading a request
    from ``RequestReading``; this class only dispatches and writes."""

    server: DashboardServer
    server_version = "sse-dashboard/" + __version__
    # Keep-alive for ordinary requests (the polling page and scripts reuse a connection); a
    # stream, an export, an error before the body was read and any HTTP/1.0 client close it.
    protocol_version = "HTTP/1.1"
    wbufsize = 0  # every wfile.write() is one sendall: an SSE frame goes out whole, at once

    @property
    def app(self) -> Application:
        return self.server.app

    def setup(self) -> None:
        super().setup()
        # An answer goes out as two writes (headers, then body); with Nagle's algorithm the second
        # waits for the client's delayed ACK of the first, 40 ms on Linux, so a keep-alive client
        # (a requests.Session, http.client, the page's polling) got at most ~25 answers a second.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._reader = DeadlineReader(self.connection, time.monotonic())
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
        self._reader.deadline = time.monotonic() + self.app.config.request_timeout_s
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
            self._send(error_response(503, "the dashboard is stopping", (("Retry-After", "5"), ("Connection", "close"))))
            return
        parts = urllib.parse.urlsplit(self.path)
        self.route_path = parts.path
        self.query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
        head = method == "HEAD"
        length = self.headers.get("Content-Length", "0").strip()
        self._body_pending = length not in ("", "0") or "Transfer-Encoding" in self.headers
        route = find_route(method, parts.path)
        access = route.access if route is not None else access_for(method, parts.path)
        link_id = self.query_value("share")
        self.share = None  # the share link this request reads as (#26), or None
        if link_id is not None:
            decision, self.share = check_share(self.server.policy, self.server.shares, route, access, method,
                                               self.headers, link_id)
        else:
            decision = check_access(self.server.policy, access, method, self.headers, self.client_address[0],
                                    self.query_value("token"))
        if decision is not None:  # refused, or a CORS preflight answered
            response = _decided(decision)
        else:
            response = self._handle(method, parts.path, route)
            if self.share is not None and response is not None and route is not None:
                response = shared_view(response, route.handler, self.share)
        if response is not None and response.status >= 400 and parts.path in OTLP_PATHS:
            response = otlp_refusal(response, self.content_type())  # an SDK reads a google.rpc.Status
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
                response = primed(response)
            return response
        except HTTPError as exc:
            return error_response(exc.status, exc.message, exc.headers)
        # Refusals any write can meet, answered the same way wherever they come from: the dashboard is
        # stopping (the registry is sealed), or storage cannot keep what it would acknowledge.
        except RegistrySealed as exc:
            return error_response(503, str(exc), (("Retry-After", "5"),))
        except StorageError as exc:
            return error_response(503, str(exc), (("Retry-After", "30"),))
        except (ConnectionError, socket.timeout):
            raise  # the client left; handle_error logs it at DEBUG
        except Exception:
            log.exception("error handling %s %s", method, path)
            return json_response({"error": "internal server error"}, HTTPStatus.INTERNAL_SERVER_ERROR)

    def refuse_unless_durable(self) -> None:
        """503 while storage cannot keep what we would acknowledge (file gone, disk full)."""
        problem = self.app.store.problem()
        if problem:
            raise HTTPError(503, "storage cannot keep this right now: %s" % problem, (("Retry-After", "30"),))

    # --- writing -------------------------------------------------------------

    def _send(self, response: Response, head: bool = False) -> None:
        # Reads ran against the request deadline; writes get the write timeout.
        self.connection.settimeout(self.app.config.write_timeout_s)
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
        cors_origin = self.app.config.cors_origin
        if cors_origin and origin == cors_origin:
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


def _redacted(args: tuple) -> list:
    """Log arguments with any ?token= hidden; numbers stay numbers (the format may say %d)."""
    return [redact_secrets(a) if isinstance(a, str) else a for a in args]


def shared_view(response: Response, handler: str, share: Any) -> Response:
    """A share session's answer cut to what its link shows (``shareview``): JSON answers of the
    routes it may read; the page's files and errors as they are."""
    if handler not in FILTERS or response.status != 200:
        return response
    if not response.content_type.startswith("application/json") or not isinstance(response.body, (bytes, bytearray)):
        # An export (CSV, from/to rows) streams past the filter: a link gets the page's JSON only.
        return error_response(403, "a share link gets no exports (CSV, from/to): only what its page shows")
    body = encode_json(view_answer(handler, share, json.loads(response.body)))
    headers = tuple(h for h in response.headers if h[0].lower() != "cache-control") + (("Cache-Control", "no-store"),)
    return Response(response.status, body, response.content_type, headers)


def _decided(decision: Decision) -> Response:
    """An access decision as a response: 204 for a preflight, else the JSON error."""
    if decision.status == 204:
        return Response(204, b"", "text/plain", decision.headers)
    return error_response(decision.status, decision.message, decision.headers)
