"""``RemoteWriter``: each sample, pushed to one remote write receiver from its own thread.

One concept: delivery. The sampler hands every ``Sample`` to ``submit``, which only appends it
to the writer's ``queue.TickQueue``; the queue's thread encodes each tick once (``remote_write``)
and keeps it (in the data folder when there is one) and wakes the writer's thread, which posts
the oldest ticks first as one request and decides by the answer:

- 2xx: sent;
- 5xx, 429, no answer (refused, reset, timed out): kept, and tried again after a backoff that
  doubles from ``BACKOFF_MIN_S`` to ``BACKOFF_MAX_S``, or after the receiver's ``Retry-After``
  (seconds or an HTTP date, capped at ``RETRY_AFTER_MAX_S``) -- never a busy loop;
- anything else (400 for a bad sample, 401, 404, a redirect, which is not followed): the
  request's ticks are dropped, counted, and the reason logged once per distinct reason. A
  request the receiver refuses would be refused again; retrying it would stall every later tick.

Invariants:
- ``submit`` never blocks and never does I/O: the sampler's tick costs an append;
- the queue is bounded (in memory ``max_queued`` ticks; on disk ``max_bytes`` and ``max_age_s``);
  past a bound the oldest go, counted as dropped with the bound as reason;
- a request's ticks leave the queue (committed, on disk) before the next request is made, so a
  restart resends at most the one request in flight at a kill -9;
- ticks go out in the order they were taken, so each series' samples are in time order (the
  remote write spec's MUST);
- the URL's user name and password become an ``Authorization`` header; ``headers`` and the URL's
  query are never logged nor in ``state()`` (it shows the scheme, host and path only).

Intentional choices: a request carries whole ticks (a tick's series are never split across
requests, so the engine never holds half a tick); one HTTP connection per request (a receiver
behind a proxy that closes idle connections costs nothing to handle).
"""

from __future__ import annotations

import base64
import http.client
import logging
import socket
import sqlite3
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Iterable

from sse_dashboard.export.queue import (DEFAULT_MAX_TICKS, DEFAULT_QUEUE_MAX_AGE_S, DEFAULT_QUEUE_MAX_BYTES,
                                        MemoryTicks, SqliteTicks, TickQueue, queue_file)
from sse_dashboard.export.remote_write import snappy_block
from sse_dashboard.outbound import parse_http_url, redacted_url, retry_after_seconds

__all__ = ["RemoteWriter", "parse_url", "redacted_url", "DEFAULT_MAX_QUEUED", "MAX_SAMPLES_PER_REQUEST", "BACKOFF_MIN_S",
           "BACKOFF_MAX_S", "RETRY_AFTER_MAX_S", "REQUEST_TIMEOUT_S"]

log = logging.getLogger(__name__)

DEFAULT_MAX_QUEUED = DEFAULT_MAX_TICKS  # ticks kept in memory (no data folder) while the receiver is away
MAX_SAMPLES_PER_REQUEST = 2000        # Prometheus' own max_samples_per_send (2.42's default)
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 30.0
RETRY_AFTER_MAX_S = 300.0             # a receiver asking for more is not waited for longer
REQUEST_TIMEOUT_S = 10.0              # connect, send and answer together: a slow receiver stalls only this thread
MAX_REASONS = 20                      # distinct drop reasons counted (bounded: they come from the receiver)


def parse_url(url: str) -> urllib.parse.SplitResult:
    """The parts of a remote write URL; ``ValueError`` says what is wrong without echoing it
    (it may hold a password)."""
    return parse_http_url(url, "remote write URL", "http://127.0.0.1:9090/api/v1/write")


class RemoteWriter:
    """Pushes every sample to one remote write 1.0 receiver (Prometheus with
    ``--web.enable-remote-write-receiver``, VictoriaMetrics, Mimir, Thanos receive).

    >>> writer = RemoteWriter("http://127.0.0.1:9090/api/v1/write", instance="build-box", queue_dir=data_dir)
    >>> sampler = Sampler(..., subscribers=[store.record, hub.publish, writer.submit])
    >>> writer.start(); ...; writer.state()["sent"]

    With ``queue_dir`` (the data folder) the ticks wait on disk (``queue.SqliteTicks``, bounded by
    ``max_bytes`` and ``max_age_s``) and a restart sends them; without, in memory (``max_queued``
    ticks). Use ``GET /metrics`` instead when the engine can reach this machine.
    """

    def __init__(self, url: str, *, instance: str, headers: Iterable[tuple[str, str]] = (),
                 external_labels: Iterable[tuple[str, str]] = (), user_agent: str = "sse-dashboard",
                 max_queued: int = DEFAULT_MAX_QUEUED, queue_dir: str | Path | None = None,
                 max_bytes: int = DEFAULT_QUEUE_MAX_BYTES, max_age_s: float = DEFAULT_QUEUE_MAX_AGE_S,
                 timeout_s: float = REQUEST_TIMEOUT_S, clock: Callable[[], float] = time.monotonic) -> None:
        parts = parse_url(url)
        if max_queued < 1:
            raise ValueError("the remote write queue must hold at least one tick")
        self.url = redacted_url(url)
        self._parts = parts
        self._target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        self._headers = {
            "Content-Encoding": "snappy",
            "Content-Type": "application/x-protobuf",
            "X-Prometheus-Remote-Write-Version": "0.1.0",
            "User-Agent": user_agent,
        }
        if parts.username is not None:
            credentials = "%s:%s" % (urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or ""))
            self._headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode("utf-8")).decode("ascii")
        self._headers.update(dict(headers))
        self.instance = instance
        self.max_queued = max_queued
        self.timeout_s = timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._sent = self._dropped = self._requests = 0
        self._drop_reasons: dict[str, int] = {}
        self._last_error: str | None = None
        self._retry_at = 0.0
        self._backoff_s = 0.0
        self._queue = self._open_queue(queue_dir, max_bytes, max_age_s, tuple(sorted(external_labels)))

    def _open_queue(self, queue_dir: str | Path | None, max_bytes: int, max_age_s: float,
                    external_labels: tuple) -> TickQueue:
        common = {"instance": self.instance, "external_labels": external_labels, "on_drop": self._count_drop,
                  "wake": self._wake.set}
        if queue_dir is not None:
            path = queue_file(queue_dir, _queue_identity(self._parts))
            try:
                return TickQueue(SqliteTicks(path), max_bytes=max_bytes, max_age_s=max_age_s, **common)
            except (sqlite3.Error, OSError) as exc:
                # Sending goes on; only a restart's resume is lost. /api/health says "queue": "memory".
                log.error("remote write to %s: the queue file %s cannot be used (%s); queueing in memory",
                          self.url, path, exc)
        return TickQueue(MemoryTicks(), max_ticks=self.max_queued, **common)

    # -- the sampler's side -------------------------------------------------------------------

    def submit(self, sample: Any) -> None:
        """Queue one ``Sample`` (the sampler's subscriber): an append, never I/O, never a wait."""
        self._queue.submit(sample)

    def _count_drop(self, reason: str, count: int) -> None:
        with self._lock:
            self._count_drop_locked(reason, count)

    def _count_drop_locked(self, reason: str, count: int) -> None:
        self._dropped += count
        if reason in self._drop_reasons or len(self._drop_reasons) < MAX_REASONS:
            self._drop_reasons[reason] = self._drop_reasons.get(reason, 0) + count
        else:
            self._drop_reasons["other"] = self._drop_reasons.get("other", 0) + count

    # -- reading ------------------------------------------------------------------------------

    def state(self) -> dict:
        """``{"url", "sent", "queued", "dropped", "drop_reasons", "last_error", "lag_s", ...}``, in
        samples (one series at one tick); ``queued_ticks``, ``queued_bytes`` (on disk: compressed)
        and ``queue`` ("disk" or "memory"); ``lag_s``: the age of the oldest unsent tick."""
        queued = self._queue.state()
        with self._lock:
            return dict({"url": self.url, "instance": self.instance, "sent": self._sent, "dropped": self._dropped,
                         "drop_reasons": dict(self._drop_reasons), "requests": self._requests,
                         "last_error": self._last_error}, **queued)

    # -- the writer's thread ------------------------------------------------------------------

    def start(self) -> None:
        self._queue.start()
        self._thread = threading.Thread(target=self._run, name="remote-write", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Stop both threads; what is still queued stays on disk for the next start (in memory: lost)."""
        with self._lock:
            self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._queue.stop(timeout)

    def _run(self) -> None:
        while True:
            # Cleared before looking, so a tick kept meanwhile wakes the wait below.
            self._wake.clear()
            with self._lock:
                if self._stopping:
                    return
            wait_s = self._retry_at - self._clock()
            try:
                batch = self._queue.batch(MAX_SAMPLES_PER_REQUEST) if wait_s <= 0 else []
                if batch:
                    self._send_batch(batch)
                    continue
            except sqlite3.Error as exc:  # the queue file failing (a full or broken disk), or closed by stop()
                with self._lock:
                    if self._stopping:
                        return
                    self._last_error = "queue file: %s" % type(exc).__name__
                log.error("remote write to %s: reading the queue file failed (%s); trying again in %g s",
                          self.url, exc, BACKOFF_MAX_S)
                self._retry_at = self._clock() + BACKOFF_MAX_S
                continue
            self._wake.wait(wait_s if wait_s > 0 else None)

    def _send_batch(self, batch: list) -> None:
        count = sum(tick.samples for tick in batch)
        outcome, detail, retry_after = self._post(snappy_block(b"".join(tick.body for tick in batch)))
        # Sent or refused for good: forgotten (committed on disk) before the next request goes out.
        still_queued = self._queue.remove(batch) if outcome != "retry" else 0
        with self._lock:
            self._requests += 1
            first_time = outcome == "drop" and detail not in self._drop_reasons
            if outcome == "sent":
                self._sent += still_queued
                self._backoff_s = 0.0
                self._retry_at = 0.0
                return
            if outcome == "drop":
                self._count_drop_locked(detail, still_queued)
            self._last_error = detail
        if outcome == "drop":
            if first_time:
                log.warning("remote write to %s: %d samples dropped: %s", self.url, count, detail)
            return
        self._backoff_s = min(BACKOFF_MAX_S, max(BACKOFF_MIN_S, self._backoff_s * 2))
        # The receiver's Retry-After when it gives one, but never less than the shortest backoff
        # (a "Retry-After: 0" on every answer must not become a busy loop).
        delay = max(retry_after, BACKOFF_MIN_S) if retry_after is not None else self._backoff_s
        self._retry_at = self._clock() + delay
        log.info("remote write to %s: %s; trying again in %.1f s", self.url, detail, delay)

    def _post(self, body: bytes) -> tuple[str, str, float | None]:
        """("sent" | "retry" | "drop", what happened (no secret in it), Retry-After in seconds)."""
        connection_class = http.client.HTTPSConnection if self._parts.scheme == "https" else http.client.HTTPConnection
        connection = connection_class(self._parts.hostname, self._parts.port, timeout=self.timeout_s)
        # The socket's timeout bounds each read only: an engine trickling a byte at a time would
        # hold the request (and every later tick) forever. The watchdog ends it at the deadline.
        expired = threading.Event()
        watchdog = threading.Timer(self.timeout_s, _abort, (connection, expired))
        watchdog.daemon = True
        watchdog.start()
        try:
            connection.request("POST", self._target, body=body, headers=self._headers)
            response = connection.getresponse()
            answer = response.read(512).decode("utf-8", "replace").strip().splitlines()
            status = response.status
            retry_after = response.getheader("Retry-After")
        except (OSError, http.client.HTTPException, ValueError) as exc:
            if expired.is_set():
                return "retry", "no answer within %g s" % self.timeout_s, None
            return "retry", "no answer (%s)" % (type(exc).__name__ if not str(exc) else "%s: %s" % (type(exc).__name__, exc)), None
        finally:
            watchdog.cancel()
            connection.close()
        reason = "HTTP %d%s" % (status, (": " + _printable(answer[0][:200])) if answer else "")
        if 200 <= status < 300:
            return "sent", reason, None
        if status == 429 or status >= 500:
            return "retry", reason, _retry_after_s(retry_after)
        return "drop", reason, None


def _abort(connection: http.client.HTTPConnection, expired: threading.Event) -> None:
    """End a request past its deadline: shutting the socket down wakes the read blocked on it."""
    expired.set()
    sock = connection.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed: the request ended on its own


def _printable(text: str) -> str:
    """The engine's words as a log line may carry them: control characters (a terminal's escape
    sequences) become ``?``."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def _queue_identity(parts: urllib.parse.SplitResult) -> str:
    """What names a URL's queue file (hashed, never written in clear): the URL without its
    password, so two receivers that differ by user, tenant or query parameter keep apart, and a
    new password keeps the backlog."""
    user = "%s@" % parts.username if parts.username is not None else ""
    return "%s://%s%s%s" % (parts.scheme, user, redacted_url(parts.geturl()).split("://", 1)[1],
                            "?" + parts.query if parts.query else "")


def _retry_after_s(value: str | None) -> float | None:
    """``Retry-After``: seconds, or an HTTP date; capped, never negative."""
    return retry_after_seconds(value, time.time(), RETRY_AFTER_MAX_S)
