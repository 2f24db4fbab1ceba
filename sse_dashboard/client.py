"""A client for the applications that report to the dashboard: standard library only.

    from sse_dashboard.client import Dashboard     # installed, or from the checkout's root

    dash = Dashboard("http://127.0.0.1:8080", token=None)
    dash.event("backup finished", level="info", source="backup", data={"files": 1200})
    dash.inc("jobs_done")
    dash.set("queue_depth", 17)
    with dash.timer("upload_seconds"):
        upload()
    dash.heartbeat("nightly-backup", every=86400)   # "I ran"; silent for a day fires an alert

One concept: reporting without risk to the caller. Every call returns at once and
never raises into the caller: items go to a bounded queue that one background
thread sends. Counter increments within an interval are summed into one update;
gauges keep their latest value. When the dashboard is down the thread retries
with exponential backoff; what the queue cannot hold is dropped and counted
(``dropped``). ``flush()`` waits (bounded) for what is queued; it runs at exit.
A timing is a gauge of seconds (the latest) plus a counter of how many there were.
"""

from __future__ import annotations

import atexit
import json
import logging
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from typing import Any

__all__ = ["Dashboard"]

log = logging.getLogger(__name__)

DEFAULT_MAX_QUEUE = 1000          # events waiting to be sent
DEFAULT_MAX_NAMES = 1000          # counters and gauges waiting (one entry per name)
DEFAULT_INTERVAL_S = 1.0          # how often metric updates go out
MAX_BACKOFF_S = 30.0


class Dashboard:
    """Reports events and metrics to one dashboard; see the module docstring."""

    def __init__(self, url: str = "http://127.0.0.1:8080", token: str | None = None, *,
                 interval_s: float = DEFAULT_INTERVAL_S, max_queue: int = DEFAULT_MAX_QUEUE,
                 timeout_s: float = 5.0, flush_at_exit: bool = True) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._events: deque[tuple] = deque()  # (path, body): events and heartbeats, in order
        self._max_queue = max_queue
        self._counters: dict[str, float] = {}
        self._gauges: dict[str, float] = {}
        self._in_flight = 0
        self.dropped = 0       # items refused for lack of room, or refused by the dashboard (4xx)
        self.sent = 0          # events and metric updates the dashboard acknowledged
        self.last_error: str | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="sse-dashboard-client", daemon=True)
        self._thread.start()
        if flush_at_exit:
            atexit.register(self.close)

    # --- what applications call: never blocks, never raises ---------------------------

    def event(self, message: str, level: str = "info", source: str = "app", data: Any = None,
              type: str | None = None) -> None:
        body = {"message": message, "level": level, "source": source}
        if data is not None:
            body["data"] = data
        if type is not None:
            body["type"] = type
        self._queue("/api/events", body)

    def heartbeat(self, name: str, status: str = "up", msg: str = "", ping: float | None = None,
                  every: float | None = None) -> None:
        """Say that job ``name`` ran (``status="down"``: it failed). With ``every`` (seconds),
        the dashboard fires an alert if no heartbeat follows within that time."""
        query = {"status": status}
        for key, value in (("msg", msg), ("ping", ping), ("every", every)):
            if value not in (None, ""):
                query[key] = str(value)
        self._queue("/api/push/%s?%s" % (urllib.parse.quote(name, safe=""), urllib.parse.urlencode(query)), None)

    def _queue(self, path: str, body: dict | None) -> None:
        with self._lock:
            if self._closed or len(self._events) >= self._max_queue:
                self.dropped += 1
                return
            self._events.append((path, body))
        self._wake.set()

    def inc(self, name: str, delta: float = 1) -> None:
        with self._lock:
            if self._closed or (name not in self._counters and self._names() >= DEFAULT_MAX_NAMES):
                self.dropped += 1
                return
            self._counters[name] = self._counters.get(name, 0) + delta

    def set(self, name: str, value: float) -> None:
        with self._lock:
            if self._closed or (name not in self._gauges and self._names() >= DEFAULT_MAX_NAMES):
                self.dropped += 1
                return
            self._gauges[name] = value

    def timing(self, name: str, seconds: float) -> None:
        """Record one duration: gauge ``name`` (seconds) and counter ``name_count``."""
        self.set(name, seconds)
        self.inc(name + "_count")

    def timer(self, name: str) -> "_Timer":
        """``with dash.timer("step_seconds"): ...`` records how long the block took."""
        return _Timer(self, name)

    def pending(self) -> int:
        """Items not yet acknowledged (queued or being sent)."""
        with self._lock:
            return len(self._events) + self._names() + self._in_flight

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until everything queued is sent (or ``timeout_s`` passes); True when it was."""
        deadline = time.monotonic() + timeout_s
        while self.pending() and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.02)
        return not self.pending()

    def close(self, timeout_s: float = 5.0) -> None:
        """Send what is queued (bounded), then stop; later calls are dropped."""
        self.flush(timeout_s)
        with self._lock:
            self._closed = True
        self._wake.set()

    # --- the sender thread ------------------------------------------------------------

    def _names(self) -> int:
        return len(self._counters) + len(self._gauges)

    def _run(self) -> None:
        backoff = 0.0
        while True:
            self._wake.wait(backoff or self.interval_s)
            self._wake.clear()
            with self._lock:
                if self._closed and not self._events and not self._names():
                    return
            try:
                self._send_all()
                backoff = 0.0
            except OSError as exc:  # down, refused, timed out: keep everything, try again later
                self.last_error = str(exc)
                backoff = min(MAX_BACKOFF_S, max(0.25, backoff * 2)) * random.uniform(0.8, 1.2)
            except Exception as exc:  # a bug here must never reach the application
                self.last_error = "%s: %s" % (type(exc).__name__, exc)
                log.debug("sse-dashboard client: %s", self.last_error)
                backoff = 1.0

    def _send_all(self) -> None:
        while True:
            with self._lock:
                if not self._events:
                    break
                path, body = self._events[0]
                self._in_flight = 1
            try:
                self._post(path, body)
            finally:
                with self._lock:
                    self._in_flight = 0
            with self._lock:
                self._events.popleft()
        with self._lock:
            counters, gauges = self._counters, self._gauges
            if not counters and not gauges:
                return
            self._counters, self._gauges = {}, {}
            self._in_flight = len(counters) + len(gauges)
        try:
            self._post("/api/metrics", {"counters": counters, "gauges": gauges})
        except OSError:
            with self._lock:  # put them back (new increments add on top, newer gauges win)
                for name, delta in counters.items():
                    self._counters[name] = self._counters.get(name, 0) + delta
                for name, value in gauges.items():
                    self._gauges.setdefault(name, value)
            raise
        finally:
            with self._lock:
                self._in_flight = 0

    def _post(self, path: str, body: dict | None) -> None:
        """One POST (``body`` None: an empty one). 2xx: sent. 429/503: raise (retried with
        backoff). Other 4xx: the item is bad and retrying cannot help: dropped and counted."""
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if self._token:
            headers["Authorization"] = "Bearer " + self._token
        data = json.dumps(body).encode("utf-8") if body is not None else b""
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                response.read()
            self.sent += 1
        except urllib.error.HTTPError as exc:
            if exc.code in (429, 503) or exc.code >= 500:
                raise OSError("HTTP %d from the dashboard" % exc.code) from None
            self.dropped += 1
            self.last_error = "HTTP %d: %s" % (exc.code, exc.read(500).decode("utf-8", "replace"))


class _Timer:
    def __init__(self, dashboard: Dashboard, name: str) -> None:
        self._dashboard = dashboard
        self._name = name
        self._started = 0.0

    def __enter__(self) -> "_Timer":
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._dashboard.timing(self._name, time.perf_counter() - self._started)
