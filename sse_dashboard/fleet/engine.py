"""``QueryClient``: the Prometheus HTTP query API, asked from the server, never from the browser.

One concept: one question to the engine, and its answer checked. ``instant`` posts to
``/api/v1/query`` and ``range`` to ``/api/v1/query_range`` (https://prometheus.io/docs/prometheus/
latest/querying/api/), form-encoded, as Prometheus, VictoriaMetrics, Thanos and Mimir all take it;
the answer is read into plain tuples, or refused with an ``EngineError`` that says why in words
fit for the page.

Invariants:
- every question has a deadline: connecting, sending and reading the answer all stop at it
  (a slow engine costs the fleet thread that long, never a request thread or the sampler);
- an answer is read up to ``max_answer_bytes`` and no further: a bigger one is an error;
- a redirect is not followed, a 4xx/5xx is an error with its status, and anything that is not
  a Prometheus answer of the kind asked for is an error too: nothing half-read reaches the page;
- a number that is NaN or infinite reads as ``None`` (the page shows "no value");
- the URL's user name and password become an ``Authorization`` header; what is shown of the
  URL (``redacted``) is its scheme, host, port and path, never them nor the query.
"""

from __future__ import annotations

import base64
import http.client
import json
import math
import socket
import time
import urllib.parse
from typing import Any

from sse_dashboard.outbound import parse_http_url, redacted_url

__all__ = ["QueryClient", "EngineError", "parse_engine_url", "parse_answer", "DEFAULT_TIMEOUT_S", "MAX_ANSWER_BYTES"]

DEFAULT_TIMEOUT_S = 3.0                 # one refresh, every question together
MAX_ANSWER_BYTES = 4 * 1024 * 1024      # one answer; 200 instances' hour of CPU at 1 min steps is ~0.4 MiB
_READ_CHUNK = 64 * 1024

Labels = dict


class EngineError(Exception):
    """The engine could not answer. ``state``: "down" (refused, unreachable, timed out) or
    "error" (it answered, but not a usable answer); the message is for the page."""

    def __init__(self, state: str, message: str) -> None:
        super().__init__(message)
        self.state = state
        self.message = message


def parse_engine_url(url: str) -> urllib.parse.SplitResult:
    """The parts of a query API URL (``http://127.0.0.1:9090``, or with a path prefix such as
    VictoriaMetrics cluster's ``/select/0/prometheus``); ``ValueError`` without echoing it."""
    return parse_http_url(url, "fleet URL", "http://127.0.0.1:9090, Prometheus' own address")


def _number(text: Any) -> float | None:
    """A sample value as the API writes it (a string: "0.5", "NaN", "+Inf"); None unless finite."""
    if not isinstance(text, str):
        raise EngineError("error", "the engine's answer is not a Prometheus query answer (a value is not a string)")
    try:
        value = float(text)
    except ValueError:
        raise EngineError("error", "the engine's answer is not a Prometheus query answer (a value is not a number)") from None
    return value if math.isfinite(value) else None


def _pair(point: Any) -> tuple[float, float | None]:
    if (not isinstance(point, list) or len(point) != 2 or isinstance(point[0], bool)
            or not isinstance(point[0], (int, float))):
        raise EngineError("error", "the engine's answer is not a Prometheus query answer (a point is not [time, value])")
    return float(point[0]), _number(point[1])


def _labels(item: Any) -> Labels:
    metric = item.get("metric") if isinstance(item, dict) else None
    if not isinstance(metric, dict) or not all(isinstance(v, str) for v in metric.values()):
        raise EngineError("error", "the engine's answer is not a Prometheus query answer (a series has no labels)")
    return metric


def parse_answer(body: bytes, kind: str) -> list:
    """The ``result`` of a Prometheus API answer of ``resultType`` ``kind``: for "vector",
    ``[(labels, (time, value)), ...]``; for "matrix", ``[(labels, [(time, value), ...]), ...]``."""
    try:
        answer = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise EngineError("error", "the engine's answer is not JSON") from None
    if not isinstance(answer, dict) or answer.get("status") not in ("success", "error"):
        raise EngineError("error", "the engine's answer is not a Prometheus query answer")
    if answer["status"] == "error":
        raise EngineError("error", "the engine refused the query: %s" % str(answer.get("error"))[:200])
    data = answer.get("data")
    if not isinstance(data, dict) or data.get("resultType") != kind or not isinstance(data.get("result"), list):
        raise EngineError("error", "the engine's answer is not a Prometheus %s answer" % kind)
    if kind == "vector":
        return [(_labels(item), _pair(item.get("value"))) for item in data["result"]]
    rows = []
    for item in data["result"]:
        values = item.get("values") if isinstance(item, dict) else None
        if not isinstance(values, list):
            raise EngineError("error", "the engine's answer is not a Prometheus query answer (a series has no values)")
        rows.append((_labels(item), [_pair(point) for point in values]))
    return rows


class QueryClient:
    """Questions to one engine's query API.

    >>> client = QueryClient("http://127.0.0.1:9090")
    >>> client.instant("sse_dashboard_info", deadline=time.monotonic() + 3)
    [({'__name__': 'sse_dashboard_info', 'instance': 'box-1', ...}, (1700000000.0, 1.0))]
    """

    def __init__(self, url: str, *, max_answer_bytes: int = MAX_ANSWER_BYTES, user_agent: str = "sse-dashboard",
                 clock: Any = time.monotonic) -> None:
        parts = parse_engine_url(url)
        self.url = redacted_url(url)
        self._parts = parts
        self._base = parts.path.rstrip("/")
        self.max_answer_bytes = max_answer_bytes
        self._clock = clock
        self._headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json",
                         "User-Agent": user_agent}
        if parts.username is not None:
            credentials = "%s:%s" % (urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or ""))
            self._headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode("utf-8")).decode("ascii")

    def instant(self, query: str, deadline: float) -> list:
        """``[(labels, (time, value)), ...]`` of ``query`` now."""
        return parse_answer(self._post("/api/v1/query", {"query": query}, deadline), "vector")

    def range(self, query: str, start: float, end: float, step_s: float, deadline: float) -> list:
        """``[(labels, [(time, value), ...]), ...]`` of ``query`` from ``start`` to ``end`` (unix time)."""
        form = {"query": query, "start": "%.3f" % start, "end": "%.3f" % end, "step": "%g" % step_s}
        return parse_answer(self._post("/api/v1/query_range", form, deadline), "matrix")

    def _left(self, deadline: float) -> float:
        left = deadline - self._clock()
        if left <= 0:
            raise EngineError("down", "the engine did not answer in time")
        return left

    def _post(self, path: str, form: dict, deadline: float) -> bytes:
        parts = self._parts
        connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        connection = connection_class(parts.hostname, parts.port, timeout=self._left(deadline))
        try:
            connection.request("POST", self._base + path, body=urllib.parse.urlencode(form), headers=self._headers)
            sock = connection.sock  # kept: the connection lets go of it once the answer says "close"
            sock.settimeout(self._left(deadline))
            response = connection.getresponse()
            body = self._read(sock, response, deadline)
        except EngineError:
            raise
        except socket.timeout:  # (TimeoutError from 3.10 on)
            raise EngineError("down", "the engine did not answer in time") from None
        except ConnectionRefusedError:
            raise EngineError("down", "the engine refused the connection (is it running?)") from None
        except (OSError, http.client.HTTPException) as exc:
            raise EngineError("down", "no answer from the engine (%s)" % type(exc).__name__) from None
        finally:
            connection.close()
        if 300 <= response.status < 400:
            raise EngineError("error", "the engine answered HTTP %d (a redirect, not followed): "
                                       "give --fleet the address it redirects to" % response.status)
        if response.status >= 400 and not body.lstrip().startswith(b"{"):
            raise EngineError("error", "the engine answered HTTP %d" % response.status)
        return body

    def _read(self, sock: socket.socket, response: http.client.HTTPResponse, deadline: float) -> bytes:
        """The answer's body, up to the bound and the deadline (a slow drip counts against it too)."""
        chunks, size = [], 0
        while True:
            sock.settimeout(self._left(deadline))
            chunk = response.read1(_READ_CHUNK)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > self.max_answer_bytes:
                raise EngineError("error", "the engine's answer is larger than %d bytes" % self.max_answer_bytes)
            chunks.append(chunk)
