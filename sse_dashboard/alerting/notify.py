"""Alert notifications: delivering each change to the targets that want it (targets.py says
what each receives: webhooks signed as Standard Webhooks, ntfy, Slack and Discord).

One concept: telling someone outside the page that an alert fired or resolved.

Invariants:
- nothing here blocks the sampler or a request: ``alert_changed`` only queues (and
  commits what was sent to whom, with ``persist``: one small commit per change; at worst it
  waits for the clock thread's own such commit);
- each target has its own bounded queue and its own sender thread (so there are as many
  threads as targets, whatever the traffic, and one clock), so a slow or dead target only ever
  delays itself; past ``max_queue`` the oldest waiting delivery of that target is dropped,
  counted, and warned about at most once a minute per target (with how many went);
- the notifier keeps its own time: its clock thread (``tick()`` every ``tick_s``, started by
  ``start()``, ended by ``stop()``) sends the firings that waited out ``repeat`` and tells of
  drops; nobody else has to call it;
- a test (``test()``, ``POST /api/alerts/test``) never enters those queues: it is sent by one
  short-lived thread per target, one test at a time (another call while one is sending raises
  ``NotificationTestBusy``: a 429), and answers within ``TEST_ANSWER_S`` with what it knows,
  "pending" for a target that has not answered yet;
- every exception in a delivery is one failed attempt, retried as any other: an unexpected one
  is logged by its type and where it happened, never its message (it may hold the URL);
- 2xx is success; a redirect is not followed (it is a failure); 429 and 503
  wait for ``Retry-After``; other failures are retried with exponential backoff
  and jitter for at most ``max_retry_s``; 410 disables that target until restart;
- every retry of a delivery is the same message (the same ``webhook-id``), sent afresh;
- flood control per rule and target (flood.py): a firing is sent at most once per
  ``repeat`` seconds; one that comes sooner waits, and is sent when the
  interval is over if the alert still fires; a resolve is sent exactly once for
  every firing that was sent (and never for one that was not);
- a target that starts failing posts one warning event (and one when it works
  again), never one per attempt; its URL (which may carry a secret) is never
  logged or shown whole.
"""

from __future__ import annotations

import heapq
import http.client
import itertools
import logging
import random
import socket
import threading
import time
import traceback
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable

from sse_dashboard.alerting.flood import FloodControl
from sse_dashboard.alerting.targets import Target, message
from sse_dashboard.outbound import retry_after_seconds

__all__ = ["Notifier", "NotificationTestBusy", "TEST_ANSWER_S"]

log = logging.getLogger(__name__)

TIMEOUT_S = 10.0
MAX_QUEUE = 1000              # per target
TICK_S = 1.0                  # the notifier's clock: firings that waited out ``repeat`` go, drops are told
TEST_ANSWER_S = 2.0           # POST /api/alerts/test answers within this; a target still sending is pending
DROP_LOG_EVERY_S = 60.0       # at most one "dropped" warning per target a minute, with a count
MAX_ERROR_CHARS = 200         # of a delivery's error, as shown in status and notify.failing
MAX_RETRY_S = 3600.0
BACKOFF_S = 5.0
MAX_BACKOFF_S = 600.0


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any) -> None:
        return None  # urllib then raises HTTPError with the 3xx status: a failure, as it should be


def _default_opener() -> Callable[..., Any]:
    return urllib.request.build_opener(_NoRedirects).open


@dataclass
class _Delivery:
    target: Target
    message: dict
    first_at: float
    attempts: int = 0
    test: bool = False            # a test: one attempt, its result kept for the caller, never retried
    result: dict | None = None


@dataclass
class _TargetState:
    state: str = "idle"           # idle (nothing sent yet), ok, failing, disabled
    last_ok_at: float | None = None
    failing_since: float | None = None
    last_error: str | None = None
    last_status: int | None = None
    attempts: int = 0
    dropped: int = 0
    dropped_unlogged: int = 0     # dropped since the last warning line
    drop_logged_at: float | None = None

    # Each is called under the notifier's lock.

    def row(self, target: Target, queued: int) -> dict:
        """The target as ``GET /api/alerts`` shows it (its URL as scheme and host only)."""
        return {"name": target.name, "format": target.format, "where": target.where, "state": self.state,
                "last_ok_at": self.last_ok_at, "failing_since": self.failing_since, "last_error": self.last_error,
                "last_status": self.last_status, "attempts": self.attempts, "dropped": self.dropped,
                "queued": queued}

    def record(self, ok: bool, status: int | None, error: str | None, now: float) -> str:
        """Count one attempt; return the state before it (disabled stays so until restart,
        whatever a test says)."""
        before = self.state
        self.attempts += 1
        self.last_status = status
        if before == "disabled":
            return before
        if ok:
            self.state, self.last_ok_at, self.failing_since, self.last_error = "ok", now, None, None
        else:
            self.last_error = error
            if self.state != "failing":
                self.state, self.failing_since = "failing", now
        return before

    def drop_counts(self, now: float) -> int:
        """How many were dropped since the last warning, if a minute has passed (a full queue
        drops one a delivery: a line each would flood the log); then counting starts again."""
        if not self.dropped_unlogged or (self.drop_logged_at is not None
                                         and now - self.drop_logged_at < DROP_LOG_EVERY_S):
            return 0
        count, self.dropped_unlogged, self.drop_logged_at = self.dropped_unlogged, 0, now
        return count


class NotificationTestBusy(Exception):
    """A test notification is still being sent; ``retry_after_s`` says when it will be done."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__("a test notification is still being sent; try again in %d s" % retry_after_s)
        self.retry_after_s = retry_after_s


class Notifier:
    """Sends alert changes to every target that wants them.

    >>> notifier = Notifier(parse_targets(config["notify"]), dashboard_url, post=event_log.post)
    >>> notifier.start()                                # a sender thread per target, and the clock
    >>> notifier.alert_changed("alert.firing", alert)   # from the sampler thread: only queues
    >>> notifier.stop()                                 # at most ``timeout_s``, whatever a target does

    ``post(level, message, source=..., data=..., type=...)`` reports a target that starts
    or stops failing. ``clock``, ``rng``, ``opener``, ``test_answer_s`` and ``tick_s`` can be
    injected; ``tick()`` is what the clock thread calls every ``tick_s``.
    """

    def __init__(self, targets: list[Target], dashboard_url: str, post: Callable[..., Any] | None = None, *,
                 clock: Callable[[], float] = time.time, opener: Callable[..., Any] | None = None,
                 timeout_s: float = TIMEOUT_S, backoff_s: float = BACKOFF_S, max_backoff_s: float = MAX_BACKOFF_S,
                 max_retry_s: float = MAX_RETRY_S, max_queue: int = MAX_QUEUE, rng: random.Random | None = None,
                 test_answer_s: float = TEST_ANSWER_S, tick_s: float = TICK_S,
                 persist: Callable[[str], None] | None = None, state: str | None = None) -> None:
        self.targets = list(targets)
        self.dashboard = {"url": dashboard_url, "host": socket.gethostname()}
        self._post = post
        self._clock = clock
        self._open = opener or _default_opener()
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_retry_s = max_retry_s
        self.max_queue = max_queue
        self.test_answer_s = test_answer_s
        self.tick_s = tick_s
        self._rng = rng or random.Random()
        # One lock for the queues and states; each target's sender waits on its own condition
        # (over that lock), so a delivery wakes only the thread that sends it.
        self._lock = threading.Lock()
        self._queues: dict[str, list] = {t.name: [] for t in self.targets}  # heaps of (due, seq, delivery)
        self._wake = {t.name: threading.Condition(self._lock) for t in self.targets}
        self._tested = threading.Condition(self._lock)  # a test delivery got its answer (or we stop)
        self._tests_running = 0                          # test deliveries still sending
        self._test_started = 0.0                         # monotonic
        self._seq = itertools.count()
        self._states = {t.name: _TargetState() for t in self.targets}
        # Flood control is asked from two threads, the sampler's (alert_changed) and the clock's
        # (tick), and commits what it decides. Its own lock, held from the decision through the
        # commit to the queueing, keeps both in the order decided; it is taken before ``_lock``
        # (in _enqueue), never while holding it, and never by a sender.
        self._flood_lock = threading.Lock()
        self._flood = FloodControl(self.targets, persist=persist, state=state)
        self._stop = False
        self._stopping = threading.Event()  # wakes the clock thread at once
        self._threads: dict[str, threading.Thread] = {}
        self._clock_thread: threading.Thread | None = None
        self._sending: set[str] = set()  # targets whose sender is in the middle of a delivery

    # --- called from other threads ----------------------------------------------------

    def alert_changed(self, kind: str, alert: dict, targets: tuple | None = None) -> None:
        """An alert fired (``alert.firing``) or resolved; ``targets`` names the targets the rule
        uses (None: all). Only queues, after flood control (whose commit it may wait for)."""
        now = self._clock()
        with self._flood_lock:
            for target in self.targets:
                if targets is not None and target.name not in targets:
                    continue
                if alert.get("level") not in target.levels:
                    continue
                if self._flood.admit(kind, alert, target, now):
                    self._enqueue(target, self._message(kind, alert), now)

    def tick(self) -> None:
        """Send the firings that waited out their repeat interval, and say what was dropped
        (the clock thread calls this every ``tick_s``)."""
        now = self._clock()
        with self._flood_lock:
            for target, alert in self._flood.due(now):
                self._enqueue(target, self._message("alert.firing", alert), now)
        with self._lock:
            warnings = [self._drop_warning(t.name, now) for t in self.targets]
        for warning in warnings:
            if warning:
                log.warning(*warning)

    def test(self) -> list[dict]:
        """Send a test notification to every target now and wait (at most ``test_answer_s``) for
        the answers; a target that has not answered yet is ``"pending": true`` (its result shows
        in ``status()`` when it comes). Raises ``NotificationTestBusy`` while an earlier test is
        still sending: one test at a time, so test calls hold no more than one thread per target."""
        now = self._clock()
        alert = {"name": "test", "metric": None, "value": None, "threshold": None, "level": "warning",
                 "message": "a test notification from sse-dashboard", "started_at": now, "ended_at": None}
        deliveries = [_Delivery(target, self._message("test", alert), now, test=True) for target in self.targets]
        with self._lock:
            if self._tests_running:
                left = self._test_started + self.timeout_s - time.monotonic()
                raise NotificationTestBusy(max(1, int(left) + 1))
            self._tests_running = len(deliveries)
            self._test_started = time.monotonic()
        for delivery in deliveries:
            try:
                threading.Thread(target=self._send_test, args=(delivery,), daemon=True,
                                 name="notify-test-%s" % delivery.target.name).start()
            except RuntimeError:  # "can't start new thread": that one fails, the next test is not refused
                with self._lock:
                    delivery.result = {"target": delivery.target.name, "ok": False, "status": None,
                                       "error": "no thread to send it", "pending": False}
                    self._tests_running -= 1
        deadline = time.monotonic() + self.test_answer_s
        with self._lock:
            while not self._stop and any(d.result is None for d in deliveries):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._tested.wait(left)
            return [d.result or {"target": d.target.name, "ok": None, "status": None, "error": None, "pending": True}
                    for d in deliveries]

    def status(self) -> list[dict]:
        with self._lock:
            return [self._states[t.name].row(t, len(self._queues[t.name])) for t in self.targets]

    def start(self) -> None:
        for target in self.targets:
            thread = threading.Thread(target=self._send_loop, args=(target,), name="notify-%s" % target.name,
                                      daemon=True)
            self._threads[target.name] = thread
            thread.start()
        if self.targets:  # without a target nothing waits and nothing is dropped
            self._clock_thread = threading.Thread(target=self._tick_loop, name="notify-clock", daemon=True)
            self._clock_thread.start()

    def stop(self, timeout_s: float = 0.5) -> None:
        """Stop sending. The clock and the idle senders end at once (waited for, at most
        ``timeout_s`` in all); a sender in the middle of a delivery (up to its 10 s timeout) is
        not waited for: its daemon thread ends after it, and posts no event."""
        with self._lock:
            self._stop = True
            for wake in self._wake.values():
                wake.notify()
            self._tested.notify_all()
            idle = [thread for name, thread in self._threads.items() if name not in self._sending]
        self._stopping.set()
        if self._clock_thread is not None:
            idle.append(self._clock_thread)  # at most one commit of flood state away from its end
        deadline = time.monotonic() + timeout_s
        for thread in idle:
            thread.join(max(0.0, deadline - time.monotonic()))

    # --- the clock and the sender threads -----------------------------------------------

    def _tick_loop(self) -> None:
        """The notifier's own clock: ``tick()`` every ``tick_s`` until ``stop()``."""
        while not self._stopping.wait(self.tick_s):
            try:
                self.tick()
            except Exception:  # a bug here must not stop the clock: firings that wait would never go
                log.exception("notifications: the clock's tick failed (a bug)")

    def _message(self, kind: str, alert: dict) -> dict:
        return message(kind, alert, self.dashboard, self._clock())

    def _enqueue(self, target: Target, message: dict, now: float) -> None:
        warning = None
        with self._lock:
            if self._states[target.name].state == "disabled":
                return
            queue = self._queues[target.name]
            if len(queue) >= self.max_queue:
                queue.remove(min(queue, key=lambda item: item[2].first_at))
                heapq.heapify(queue)
                self._states[target.name].dropped += 1
                self._states[target.name].dropped_unlogged += 1
                warning = self._drop_warning(target.name, now)
            heapq.heappush(queue, (now, next(self._seq), _Delivery(target, message, now)))
            self._wake[target.name].notify()
        if warning:
            log.warning(*warning)

    def _drop_warning(self, name: str, now: float) -> tuple | None:
        """The warning for what ``name`` dropped since the last one, at most one a minute. Under the lock."""
        count = self._states[name].drop_counts(now)
        if not count:
            return None
        return ("notifications to %s: queue full (%d), dropped the oldest %d waiting since the last warning",
                name, self.max_queue, count)

    def _send_loop(self, target: Target) -> None:
        while True:
            delivery = self._next_due(target)
            if delivery is None:
                return
            try:
                self._deliver(delivery)
            except Exception as exc:  # a bug here must not end this target's notifications
                log.error("notifications to %s: unexpected %s after a delivery (a bug)\n%s", target.name,
                          type(exc).__name__, _where(exc))
            finally:
                with self._lock:
                    self._sending.discard(target.name)

    def _next_due(self, target: Target) -> _Delivery | None:
        """The target's next delivery once it is due; None when stopping."""
        with self._lock:
            queue, wake = self._queues[target.name], self._wake[target.name]
            while not self._stop:
                now = self._clock()
                if queue and queue[0][0] <= now:
                    self._sending.add(target.name)
                    return heapq.heappop(queue)[2]
                # At most a second at a time: an injected clock may move without a notify.
                wake.wait(min(max(queue[0][0] - now, 0.0), 1.0) if queue else None)
            return None

    def _send_test(self, delivery: _Delivery) -> None:
        try:
            self._deliver(delivery)
        except Exception as exc:
            log.error("notifications to %s: unexpected %s after a test (a bug)\n%s", delivery.target.name,
                      type(exc).__name__, _where(exc))
        finally:
            with self._lock:
                if delivery.result is None:
                    delivery.result = {"target": delivery.target.name, "ok": False, "status": None,
                                       "error": "unexpected error (see the log)", "pending": False}
                self._tests_running -= 1
                self._tested.notify_all()

    def _deliver(self, delivery: _Delivery) -> None:
        """One attempt, then: recorded, answered (a test) or queued again (a failure)."""
        target = delivery.target
        status, error, retry_after = self._attempt(delivery)
        ok = status is not None and 200 <= status < 300
        self._record(target, ok, status, error)
        if delivery.test:
            with self._lock:
                delivery.result = {"target": target.name, "ok": ok, "status": status, "error": error,
                                   "pending": False}
                self._tested.notify_all()
            return
        if ok:
            return
        now = self._clock()
        if status == 410:
            self._disable(target)
            return
        if status in (429, 503) and retry_after is not None:
            delay = retry_after
        else:
            delay = min(self.max_backoff_s, self.backoff_s * 2 ** (delivery.attempts - 1))
            delay *= self._rng.uniform(0.5, 1.5)
        if now + delay - delivery.first_at > self.max_retry_s:
            log.warning("gave up a notification to %s after %d attempts: %s", target.name, delivery.attempts, error)
            return
        with self._lock:
            if self._states[target.name].state != "disabled":
                heapq.heappush(self._queues[target.name], (now + delay, next(self._seq), delivery))
                self._wake[target.name].notify()

    def _attempt(self, delivery: _Delivery) -> tuple[int | None, str | None, float | None]:
        """(HTTP status or None, error or None, Retry-After seconds or None) of one POST. Never
        raises: whatever goes wrong is a failed attempt, described without the URL."""
        target = delivery.target
        delivery.attempts += 1
        try:
            request = target.request(delivery.message, int(self._clock()))
            with self._open(request, timeout=self.timeout_s) as response:
                status = response.status
                response.read(65536)
            return status, None, None
        except urllib.error.HTTPError as exc:
            return (exc.code, "HTTP %d" % exc.code,
                    _retry_after(exc.headers.get("Retry-After") if exc.headers else None, self._clock()))
        except (OSError, http.client.HTTPException) as exc:
            if not isinstance(exc, http.client.InvalidURL):  # its message holds the URL
                # refused, reset, timed out, DNS, TLS; or an answer that is not HTTP (BadStatusLine,
                # which quotes the receiver's line: cut short, it goes into an event's message)
                error = "%s: %s" % (type(exc).__name__, getattr(exc, "reason", None) or exc)
                return None, error if len(error) <= MAX_ERROR_CHARS else error[:MAX_ERROR_CHARS - 1] + "…", None
            return None, self._unexpected(target, exc), None
        except Exception as exc:
            return None, self._unexpected(target, exc), None

    def _unexpected(self, target: Target, exc: Exception) -> str:
        """The error of an exception nobody expected: logged with where it happened, once per
        streak of it; never its message, which may hold the URL's secret path or query."""
        error = "%s (unexpected, see the log)" % type(exc).__name__
        with self._lock:
            repeated = self._states[target.name].last_error == error
        if not repeated:
            log.error("notifications to %s: unexpected %s, counted as a failed attempt (its message is left "
                      "out: it may hold the URL)\n%s", target.name, type(exc).__name__, _where(exc))
        return error

    def _record(self, target: Target, ok: bool, status: int | None, error: str | None) -> None:
        now = self._clock()
        with self._lock:
            before = self._states[target.name].record(ok, status, error, now)
        if before == "disabled":
            return
        if not ok and before != "failing" and status != 410:  # 410 is said once, by _disable
            log.warning("notifications to %s are failing: %s", target.name, error)
            self._tell("warning", "notifications to %s are failing: %s" % (target.name, error),
                       data={"target": target.name, "error": error}, type="notify.failing")
        elif ok and before == "failing":
            self._tell("info", "notifications to %s work again" % target.name, data={"target": target.name},
                       type="notify.ok")

    def _tell(self, level: str, message: str, **fields: Any) -> None:
        """Post one of our events; if that fails, the delivery still goes on (and is retried).
        Not after ``stop()``: the event log's storage may be closed by then."""
        if self._post is None or self._stop:
            return
        try:
            self._post(level, message, source="notify", **fields)
        except Exception as exc:
            log.error("could not post the notify event %r: %s", fields.get("type"), exc)

    def _disable(self, target: Target) -> None:
        with self._lock:
            self._states[target.name].state = "disabled"
            self._states[target.name].last_error = "HTTP 410 Gone: disabled until restart"
            self._queues[target.name].clear()
        log.warning("notification target %s answered 410 Gone: disabled until restart", target.name)
        self._tell("warning", "notification target %s answered 410 Gone: disabled until restart" % target.name,
                   data={"target": target.name}, type="notify.disabled")


def _where(exc: BaseException) -> str:
    """The traceback of ``exc`` without its message: file, line and code of each frame."""
    return "".join(traceback.format_tb(exc.__traceback__)).rstrip()


def _retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header, at most a day; None if absent or odd."""
    return retry_after_seconds(value, now, 86400.0)
