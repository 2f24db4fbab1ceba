"""What a handler answers: a ``Response``, or an ``HTTPError`` raised for a client's mistake.

One concept: the response as a value. Handlers never touch the socket for an ordinary answer;
they return a ``Response`` and ``DashboardHandler._dispatch`` writes it (prometheus
``_bake_output``). Errors to clients are ``{"error": "..."}`` and never carry exception text.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from sse_dashboard.sampler import encode_json

__all__ = ["HTTPError", "Response", "JSON_TYPE", "SECURITY_HEADERS", "json_response", "error_response",
           "csv_download", "json_stream", "primed"]

JSON_TYPE = "application/json; charset=utf-8"
SECURITY_HEADERS = (
    # No inline script or style anywhere in static/, so the strictest policy fits; data: images
    # only for the tab icon that shows how many alerts fire.
    ("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; "
                                "frame-ancestors 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
)


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


def json_response(obj: Any, status: int = HTTPStatus.OK) -> Response:
    return Response(status, encode_json(obj), JSON_TYPE)


def error_response(status: int, message: str, headers: tuple = ()) -> Response:
    """``{"error": message}`` with ``status``: the one shape of every refusal."""
    return Response(status, encode_json({"error": message}), JSON_TYPE, headers)


def csv_download(chunks: Any, filename: str) -> Response:
    return Response(200, chunks, "text/csv; charset=utf-8", (
        ("Content-Disposition", 'attachment; filename="%s"' % filename), ("Cache-Control", "no-store")))


def json_stream(chunks: Any) -> Response:
    return Response(200, chunks, JSON_TYPE, (("Cache-Control", "no-store"),))


def primed(response: Response) -> Response:
    """A streamed response whose first chunk is already made: a query that fails at
    once becomes an error status, not a 200 with an empty body."""
    chunks = iter(response.body)
    first = next(chunks, b"")
    return Response(response.status, itertools.chain((first,), chunks), response.content_type, response.headers)
