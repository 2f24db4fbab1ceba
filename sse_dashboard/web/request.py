"""Reading a request: its query values, its body, the time window it asks for, all bounded.

One concept: turning what a client sent into checked values, or ``HTTPError`` 400/413/415
with a message written for the client. ``RequestReading`` is the part of ``DashboardHandler``
that does it (it reads ``self.query``, ``self.headers`` and ``self.rfile``); the functions
here are its pure parts.

Invariants:
- nothing is read past a cap: a body's size is checked against ``Content-Length`` before
  reading, and every read shares the request's one deadline (``DeadlineReader``);
- numbers are ASCII digits of bounded length; times are finite;
- a body nested deeper than ``MAX_JSON_DEPTH`` is refused before ``json.loads`` sees it.
"""

from __future__ import annotations

import io
import json
import math
import re
import socket
import time
from typing import Any

from sse_dashboard.events import EventFilter, is_unicode_text
from sse_dashboard.web.response import HTTPError

__all__ = ["MAX_BODY_BYTES", "MAX_JSON_DEPTH", "RequestReading", "DeadlineReader", "parse_time", "parse_int",
           "parse_last_event_id", "parse_length", "json_depth", "quoted"]

MAX_BODY_BYTES = 64 * 1024
MAX_JSON_DEPTH = 32  # nesting of arrays and objects in a request body


def parse_time(value: str | None, name: str) -> float | None:
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


def parse_int(value: str | None, name: str, default: int | None = None, minimum: int = 0) -> int | None:
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


def quoted(text: str, limit: int = 40) -> str:
    """Client text made safe to put in an error message: short, ASCII, quoted."""
    return json.dumps(text[:limit])


def _reject_constant(name: str) -> None:
    raise ValueError("%s is not valid JSON" % name)


class DeadlineReader(io.RawIOBase):
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


class RequestReading:
    """The request-reading half of ``DashboardHandler``: ``query`` (parsed by ``_dispatch``),
    ``headers`` and ``rfile`` (``BaseHTTPRequestHandler``'s), and ``_body_pending`` (True
    until the body is read: an unread body is taken for the next request, so the
    connection closes instead)."""

    query: dict
    headers: Any
    rfile: Any
    _body_pending: bool

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
                ", ".join(quoted(name) for name in unknown[:5]), ", ".join(expected)))

    def response_format(self) -> str:
        fmt = self.query_value("format")
        if fmt is None:
            return "json"
        if fmt not in ("json", "csv"):
            raise HTTPError(400, "format must be json or csv")
        return fmt

    def time_window(self, default_s: float) -> tuple[float, float, bool]:
        """(start, end, explicit) from ``from``/``to`` (unix seconds) or ``seconds`` back from now."""
        start, end = parse_time(self.query_value("from"), "from"), parse_time(self.query_value("to"), "to")
        seconds = parse_int(self.query_value("seconds"), "seconds", default=int(default_s), minimum=1)
        if start is None and end is None:
            now = time.time()
            return now - seconds, now, False
        end = time.time() if end is None else end
        start = end - default_s if start is None else start
        return start, end, True  # from after to is an empty window, not an error

    def event_filter(self) -> EventFilter | None:
        """``types``, ``levels`` and ``sources`` from the query (comma-separated), or None."""
        try:
            return EventFilter.parse(self.query_value("types"), self.query_value("levels"), self.query_value("sources"))
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from None

    def query_flag(self, name: str, default: bool) -> bool:
        """A 0/1 (or false/true) query value."""
        value = self.query_value(name)
        if value is None:
            return default
        if value not in ("0", "1", "true", "false"):
            raise HTTPError(400, "%s must be 0 or 1" % name)
        return value in ("1", "true")
