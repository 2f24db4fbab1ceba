"""``RemoteWriter``: each sample, pushed to one remote write receiver from its own thread.

One concept: delivery. The sampler hands every ``Sample`` to ``submit``, which only appends it
to a bounded queue and wakes the writer's thread; that thread encodes each tick once
(``remote_write``), posts the oldest ticks first as one request, and decides by the answer:

- 2xx: sent;
- 5xx, 429, no answer (refused, reset, timed out): kept, and tried again after a backoff that
  doubles from ``BACKOFF_MIN_S`` to ``BACKOFF_MAX_S``, or after the receiver's ``Retry-After``
  (seconds or an HTTP date, capped at ``RETRY_AFTER_MAX_S``) -- never a busy loop;
- anything else (400 for a bad sample, 401, 404, a redirect, which is not followed): the
  request's ticks are dropped, counted, and the reason logged once per distinct reason. A
  request the receiver refuses would be refused again; retrying it would stall every later tick.

Invariants:
- ``submit`` never blocks and never does I/O: the sampler's tick costs an append;
- the queue holds at most ``max_queued`` ticks; past it the oldest goes, counted as dropped
  (the disk queue that survives an outage and a restart is the next slice of #25);
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
import threading
import time
import urllib.parse
from collections import deque
from typing import Any, Callable, Iterable

from sse_dashboard.export.remote_write import encode_write_request, snappy_block, tick_series
from sse_dashboard.httpdates import retry_after_seconds

__all__ = ["RemoteWriter", "parse_url", "redacted_url", "DEFAULT_MAX_QUEUED", "MAX_SAMPLES_PER_REQUEST", "BACKOFF_MIN_S",
           "BACKOFF_MAX_S", "RETRY_AFTER_MAX_S", "REQUEST_TIMEOUT_S"]

log = logging.getLogger(__name__)

DEFAULT_MAX_QUEUED = 600              # ticks kept while the receiver is away: 10 minutes at 1 s
MAX_SAMPLES_PER_REQUEST = 2000        # Prometheus' own max_samples_per_send (2.42's default)
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 30.0
RETRY_AFTER_MAX_S = 300.0             # a receiver asking for more is not waited for longer
REQUEST_TIMEOUT_S = 10.0              # connect, send and answer together: a slow receiver stalls only this thread
MAX_REASONS = 20                      # distinct drop reasons counted (bounded: they come from the receiver)


def parse_url(url: str) -> urllib.parse.SplitResult:
    """The parts of a remote write URL; ``ValueError`` says what is wrong without echoing it
    (it may hold a password)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("a remote write URL starts with http:// or https:// and names a host "
                         "(e.g. http://127.0.0.1:9090/api/v1/write)")
    try:
        parts.port
    except ValueError:
        raise ValueError("the remote write URL's port must be a number from 1 to 65535") from None
    return parts


def redacted_url(url: str) -> str:
    """``scheme://host[:port]/path`` of ``url``: what logs and ``/api/health`` may show."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    host = "[%s]" % host if ":" in host else host
    port = ":%d" % parts.port if parts.port else ""
    return "%s://%s%s%s" % (parts.scheme, host, port, parts.path)


class RemoteWriter:
    """Pushes every sample to one remote write 1.0 receiver (Prometheus with
    ``--web.enable-remote-write-receiver``, VictoriaMetrics, Mimir, Thanos receive).

    >>> writer = RemoteWriter("http://127.0.0.1:9090/api/v1/write", instance="build-box")
    >>> sampler = Sampler(..., subscribers=[store.record, hub.publish, writer.submit])
    >>> writer.start(); ...; writer.state()["sent"]

    Use ``GET /metrics`` instead when the engine can reach this machine and may lose samples
    while either side is down.
    """

    def __init__(self, url: str, *, instance: str, headers: Iterable[tuple[str, str]] = (),
                 external_labels: Iterable[tuple[str, str]] = (), user_agent: str = "sse-dashboard",
                 max_queued: int = DEFAULT_MAX_QUEUED, timeout_s: float = REQUEST_TIMEOUT_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
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
        self._external_labels = tuple(sorted(external_labels))
        self.max_queued = max_queued
        self.timeout_s = timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        # Ticks not yet encoded: (submitted at, Sample); then encoded: (submitted at, samples, bytes).
        self._incoming: deque = deque()
        self._queue: deque = deque()
        self._queued_samples = 0
        self._sent = self._dropped = self._requests = 0
        self._drop_reasons: dict[str, int] = {}
        self._last_error: str | None = None
        self._retry_at = 0.0
        self._backoff_s = 0.0

    # -- the sampler's side -------------------------------------------------------------------

    def submit(self, sample: Any) -> None:
        """Queue one ``Sample`` (the sampler's subscriber): an append, never I/O, never a wait."""
        with self._lock:
            self._incoming.append((self._clock(), sample))
            while len(self._incoming) + len(self._queue) > self.max_queued:
                self._drop_oldest_locked()
        self._wake.set()

    def _drop_oldest_locked(self) -> None:
        if self._queue:
            _, count, _ = self._queue.popleft()
            self._queued_samples -= count
        else:
            _, sample = self._incoming.popleft()
            count = len(getattr(sample, "series", ())) or 1  # about its series: it was never encoded
        self._count_drop_locked("queue full (%d ticks): oldest dropped" % self.max_queued, count)

    def _count_drop_locked(self, reason: str, count: int) -> None:
        self._dropped += count
        if reason in self._drop_reasons or len(self._drop_reasons) < MAX_REASONS:
            self._drop_reasons[reason] = self._drop_reasons.get(reason, 0) + count
        else:
            self._drop_reasons["other"] = self._drop_reasons.get("other", 0) + count

    # -- reading ------------------------------------------------------------------------------

    def state(self) -> dict:
        """``{"url", "sent", "queued", "dropped", "drop_reasons", "last_error", "lag_s"}`` in
        samples (one series at one tick); ``lag_s``: how long the oldest unsent tick has waited."""
        with self._lock:
            oldest = [entry[0] for entry in (self._queue[0] if self._queue else None,
                                             self._incoming[0] if self._incoming else None) if entry]
            queued = self._queued_samples + sum(len(getattr(s, "series", ())) for _, s in self._incoming)
            return {"url": self.url, "instance": self.instance, "sent": self._sent, "queued": queued,
                    "dropped": self._dropped, "drop_reasons": dict(self._drop_reasons), "requests": self._requests,
                    "last_error": self._last_error,
                    "lag_s": round(max(0.0, self._clock() - min(oldest)), 3) if oldest else 0.0}

    # -- the writer's thread ------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="remote-write", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Stop the thread; what is still queued is not sent (held in memory only)."""
        with self._lock:
            self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._stopping:
                    return
                incoming, self._incoming = self._incoming, deque()
            self._encode(incoming)
            wait_s = self._retry_at - self._clock()
            with self._lock:
                ready = bool(self._queue)
            if ready and wait_s <= 0:
                self._send_batch()
                continue
            self._wake.wait(wait_s if ready else None)
            self._wake.clear()

    def _encode(self, incoming: deque) -> None:
        for submitted, sample in incoming:
            try:
                series = tick_series(sample.snapshot, self.instance, self._external_labels)
                body = encode_write_request(series, int(round(sample.ts * 1000)))
            except Exception:  # a bug in naming one tick must not stop the writer
                log.exception("remote write: encoding a sample failed; it is skipped")
                continue
            with self._lock:
                self._queue.append((submitted, len(series), body))
                self._queued_samples += len(series)
                while len(self._incoming) + len(self._queue) > self.max_queued:
                    self._drop_oldest_locked()

    def _send_batch(self) -> None:
        with self._lock:
            batch, count = [], 0
            for entry in self._queue:
                if batch and count + entry[1] > MAX_SAMPLES_PER_REQUEST:
                    break
                batch.append(entry)
                count += entry[1]
        outcome, detail, retry_after = self._post(snappy_block(b"".join(body for _, _, body in batch)))
        with self._lock:
            self._requests += 1
            first_time = outcome == "drop" and detail not in self._drop_reasons
            if outcome != "retry":
                # Those ticks are still the queue's oldest unless the bound dropped some meanwhile.
                for entry in batch:
                    if self._queue and self._queue[0] is entry:
                        self._queue.popleft()
                        self._queued_samples -= entry[1]
                        if outcome == "sent":
                            self._sent += entry[1]
                        else:
                            self._count_drop_locked(detail, entry[1])
            if outcome == "sent":
                self._backoff_s = 0.0
                self._retry_at = 0.0
                return
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
        try:
            connection.request("POST", self._target, body=body, headers=self._headers)
            response = connection.getresponse()
            answer = response.read(512).decode("utf-8", "replace").strip().splitlines()
            status = response.status
            retry_after = response.getheader("Retry-After")
        except (OSError, http.client.HTTPException) as exc:
            return "retry", "no answer (%s)" % (type(exc).__name__ if not str(exc) else "%s: %s" % (type(exc).__name__, exc)), None
        finally:
            connection.close()
        reason = "HTTP %d%s" % (status, (": " + answer[0][:200]) if answer else "")
        if 200 <= status < 300:
            return "sent", reason, None
        if status == 429 or status >= 500:
            return "retry", reason, _retry_after_s(retry_after)
        return "drop", reason, None


def _retry_after_s(value: str | None) -> float | None:
    """``Retry-After``: seconds, or an HTTP date; capped, never negative."""
    return retry_after_seconds(value, time.time(), RETRY_AFTER_MAX_S)
