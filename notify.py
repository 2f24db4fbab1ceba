"""Alert notifications: webhooks (Standard Webhooks signed), ntfy, Slack and Discord.

One concept: telling someone outside the page that an alert fired or resolved.

Invariants:
- a target URL is checked when it is loaded with the rules http.client applies when it sends
  (no space, control or non-ASCII character; a numeric port), so it cannot fail later for
  that, and the message names the target, never the URL;
- nothing here blocks the sampler or a request: ``alert_changed`` only queues
  (a bounded queue; past it the oldest waiting delivery is dropped and counted),
  and one sender thread delivers with a 10 s timeout;
- 2xx is success; a redirect is not followed (it is a failure); 429 and 503
  wait for ``Retry-After``; other failures are retried with exponential backoff
  and jitter for at most ``max_retry_s``; 410 disables that target until restart;
- every retry of a delivery carries the same ``webhook-id``, a fresh
  ``webhook-timestamp`` and the signature over both (Standard Webhooks);
- flood control per rule and target: a firing is sent at most once per
  ``repeat`` seconds; one that comes sooner waits, and is sent when the
  interval is over if the alert still fires; a resolve is sent exactly once for
  every firing that was sent (and never for one that was not);
- a target that starts failing posts one warning event (and one when it works
  again), never one per attempt; its URL (which may carry a secret) is never
  logged or shown whole.
"""

from __future__ import annotations

import base64
import email.header
import email.utils
import hashlib
import heapq
import hmac
import itertools
import json
import logging
import random
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

__all__ = ["Target", "Notifier", "parse_targets", "render", "sign"]

log = logging.getLogger(__name__)

FORMATS = ("json", "ntfy", "slack", "discord")
LEVELS = ("warning", "error")
DEFAULT_REPEAT_S = 600.0
TIMEOUT_S = 10.0
MAX_QUEUE = 1000
MAX_RETRY_S = 3600.0
BACKOFF_S = 5.0
MAX_BACKOFF_S = 600.0
_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# What http.client refuses in a request line or host (its _contains_disallowed_url_pchar_re).
_URL_FORBIDDEN_RE = re.compile("[\x00-\x20\x7f]")


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    format: str = "json"
    secret: str | None = field(default=None, repr=False)
    levels: tuple = LEVELS
    repeat_s: float = DEFAULT_REPEAT_S

    def __post_init__(self) -> None:
        problem = _url_problem(self.url)
        if problem:
            raise ValueError("notify target %s: %s" % (self.name, problem))

    @property
    def where(self) -> str:
        """The URL without path or query (Slack and Discord put their secret in the path)."""
        parts = urllib.parse.urlsplit(self.url)
        return "%s://%s" % (parts.scheme, parts.netloc.rpartition("@")[2])


def _url_problem(url: Any) -> str | None:
    """Why ``url`` cannot be a target's URL, in words that never repeat it (its path or query
    may be the secret); None when http.client will send to it. Checked on the raw string:
    ``urlsplit`` silently drops tabs and newlines that http.client then refuses."""
    if not isinstance(url, str):
        return "url must be an http:// or https:// URL"
    if _URL_FORBIDDEN_RE.search(url):
        return "url has a space or control character (percent-encode it: a space is %20)"
    if not url.isascii():
        return "url has a non-ASCII character (percent-encode it; a host name in punycode, xn--)"
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not 0-65535
    except ValueError:
        return "url has a bad host or port (a port is a number up to 65535; an IPv6 host in [brackets])"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "url must be an http:// or https:// URL"
    return None


def parse_targets(document: Any) -> list[Target]:
    """The config file's ``"notify": [{"name", "url", "format", "secret", "levels", "repeat"}]``."""
    if document is None:
        return []
    if not isinstance(document, list):
        raise ValueError('"notify" must be a list of targets')
    targets = []
    for index, raw in enumerate(document, start=1):
        where = "notify target %d" % index
        if not isinstance(raw, dict):
            raise ValueError("%s: must be an object" % where)
        unknown = set(raw) - {"name", "url", "format", "secret", "levels", "repeat"}
        if unknown:
            raise ValueError("%s: unknown field %s" % (where, sorted(unknown)[0]))
        name = raw.get("name")
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise ValueError("%s: name must be 1-64 letters, digits or _ . -" % where)
        where = "notify target %s" % name
        url = raw.get("url")
        problem = _url_problem(url)
        if problem:
            raise ValueError("%s: %s" % (where, problem))
        fmt = raw.get("format", "json")
        if fmt not in FORMATS:
            raise ValueError("%s: format must be one of %s" % (where, ", ".join(FORMATS)))
        secret = raw.get("secret")
        if secret is not None and (not isinstance(secret, str) or not _key(secret)):
            raise ValueError("%s: secret must be a Standard Webhooks secret, whsec_ and base64" % where)
        levels = raw.get("levels", list(LEVELS))
        if not isinstance(levels, list) or not levels or any(level not in LEVELS for level in levels):
            raise ValueError("%s: levels must be a list of warning, error" % where)
        repeat = raw.get("repeat", DEFAULT_REPEAT_S)
        if not isinstance(repeat, (int, float)) or isinstance(repeat, bool) or not 0 <= repeat <= 7 * 86400:
            raise ValueError("%s: repeat must be 0 to 604800 seconds" % where)
        if any(t.name == name for t in targets):
            raise ValueError("%s: the name is used twice" % where)
        targets.append(Target(name, url, fmt, secret, tuple(levels), float(repeat)))
    return targets


def _key(secret: str) -> bytes:
    """The HMAC key of a secret, as the Standard Webhooks libraries read it."""
    text = secret[len("whsec_"):] if secret.startswith("whsec_") else secret
    try:
        return base64.b64decode(text + "==")
    except ValueError:
        return b""


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of id.timestamp.body>`` (Standard Webhooks)."""
    signed = b"%s.%d.%s" % (message_id.encode(), timestamp, body)
    return "v1," + base64.b64encode(hmac.new(_key(secret), signed, hashlib.sha256).digest()).decode()


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def render(target: Target, message: dict) -> tuple[bytes, dict]:
    """The body and headers of ``message`` in ``target``'s format (without the webhook-* headers)."""
    alert = message["alert"]
    kind = message["type"]
    if kind == "alert.firing":
        title = "%s: %s" % (alert["level"].upper(), alert["name"])
    elif kind == "alert.resolved":
        title = "RESOLVED: %s" % alert["name"]
    else:
        title = "Test notification from sse-dashboard"
    text = alert["message"] or alert["name"]
    if target.format == "ntfy":
        priority = {"alert.firing": "urgent" if alert["level"] == "error" else "high"}.get(kind, "default")
        tags = {"alert.firing": "rotating_light" if alert["level"] == "error" else "warning",
                "alert.resolved": "white_check_mark"}.get(kind, "information_source")
        return text.encode("utf-8"), {"Content-Type": "text/plain; charset=utf-8", "Title": _header(title),
                                      "Priority": priority, "Tags": tags}
    if target.format == "slack":
        # Slack reads & < > as markup (<!channel> pings everyone): escape them in our text.
        body = {"text": _slack_escape("*%s*\n%s" % (title, text))}
    elif target.format == "discord":
        # No @everyone or role pings from an alert message, whatever it says.
        body = {"content": ("**%s**\n%s" % (title, text))[:2000], "allowed_mentions": {"parse": []}}
    else:
        body = message
    return (json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8"),
            {"Content-Type": "application/json"})


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _header(text: str) -> str:
    """A header value: ASCII as is, anything else RFC 2047-encoded (ntfy decodes it)."""
    text = text.replace("\r", " ").replace("\n", " ")
    try:
        text.encode("ascii")
        return text
    except UnicodeEncodeError:
        return email.header.Header(text, "utf-8").encode()


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
    reply: threading.Event | None = None
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


class Notifier:
    """Sends alert changes to every target that wants them.

    >>> notifier = Notifier(parse_targets(config["notify"]), dashboard_url, post=event_log.post)
    >>> notifier.start()
    >>> notifier.alert_changed("alert.firing", alert)   # from the sampler thread: only queues
    >>> notifier.tick()                                 # each sample: sends firings that waited

    ``post(level, message, source=..., data=..., type=...)`` reports a target that starts
    or stops failing. ``clock``, ``sleep`` (``random``) and ``opener`` can be injected.
    """

    def __init__(self, targets: list[Target], dashboard_url: str, post: Callable[..., Any] | None = None, *,
                 clock: Callable[[], float] = time.time, opener: Callable[..., Any] | None = None,
                 timeout_s: float = TIMEOUT_S, backoff_s: float = BACKOFF_S, max_backoff_s: float = MAX_BACKOFF_S,
                 max_retry_s: float = MAX_RETRY_S, max_queue: int = MAX_QUEUE, rng: random.Random | None = None) -> None:
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
        self._rng = rng or random.Random()
        self._cond = threading.Condition()
        self._queue: list = []            # heap of (due, seq, delivery)
        self._seq = itertools.count()
        self._states = {t.name: _TargetState() for t in self.targets}
        # (rule, target) -> {"sent_at": time of the last firing sent, "open": a firing was sent and not
        # resolved yet, "waiting": a firing not sent yet (within repeat)}
        self._flood: dict[tuple, dict] = {}
        self._stop = False
        self._thread: threading.Thread | None = None

    # --- called from other threads ----------------------------------------------------

    def alert_changed(self, kind: str, alert: dict, targets: tuple | None = None) -> None:
        """An alert fired (``alert.firing``) or resolved; ``targets`` names the targets the rule
        uses (None: all). Never blocks."""
        now = self._clock()
        for target in self.targets:
            if targets is not None and target.name not in targets:
                continue
            if alert.get("level") not in target.levels:
                continue
            flood = self._flood.setdefault((alert["name"], target.name), {"sent_at": None, "open": False,
                                                                          "waiting": None})
            if kind == "alert.firing":
                if flood["open"]:
                    continue
                if flood["sent_at"] is not None and now - flood["sent_at"] < target.repeat_s:
                    flood["waiting"] = alert  # flapping: sent when the repeat interval is over, if still firing
                    continue
                flood.update(sent_at=now, open=True, waiting=None)
            else:
                if flood["waiting"] is not None:
                    flood["waiting"] = None  # its firing was never sent: nor is its resolve
                    continue
                if not flood["open"]:
                    continue
                flood["open"] = False
            self._enqueue(target, self._message(kind, alert), now)

    def tick(self) -> None:
        """Send the firings that waited out their repeat interval (the sampler calls this)."""
        now = self._clock()
        for (rule, name), flood in self._flood.items():
            target = next((t for t in self.targets if t.name == name), None)
            alert = flood["waiting"]
            if alert is None or target is None or now - flood["sent_at"] < target.repeat_s:
                continue
            flood.update(sent_at=now, open=True, waiting=None)
            self._enqueue(target, self._message("alert.firing", alert), now)

    def test(self) -> list[dict]:
        """Send a test notification to every target now and wait (bounded) for each answer."""
        now = self._clock()
        alert = {"name": "test", "metric": None, "value": None, "threshold": None, "level": "warning",
                 "message": "a test notification from sse-dashboard", "started_at": now, "ended_at": None}
        deliveries = []
        for target in self.targets:
            delivery = _Delivery(target, self._message("test", alert), now, reply=threading.Event())
            deliveries.append(delivery)
            with self._cond:
                heapq.heappush(self._queue, (0.0, next(self._seq), delivery))  # before anything waiting
                self._cond.notify()
        results = []
        for delivery in deliveries:
            delivery.reply.wait(self.timeout_s * 2 + 5)
            results.append(delivery.result or {"target": delivery.target.name, "ok": False,
                                               "error": "no answer in time"})
        return results

    def status(self) -> list[dict]:
        with self._cond:
            queued = {}
            for _, _, delivery in self._queue:
                queued[delivery.target.name] = queued.get(delivery.target.name, 0) + 1
            return [{"name": t.name, "format": t.format, "where": t.where, "state": self._states[t.name].state,
                     "last_ok_at": self._states[t.name].last_ok_at, "failing_since": self._states[t.name].failing_since,
                     "last_error": self._states[t.name].last_error, "last_status": self._states[t.name].last_status,
                     "attempts": self._states[t.name].attempts, "dropped": self._states[t.name].dropped,
                     "queued": queued.get(t.name, 0)} for t in self.targets]

    def start(self) -> None:
        if self.targets:
            self._thread = threading.Thread(target=self._run, name="notify", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 0.5) -> None:
        """Stop sending; a delivery in flight (up to its 10 s timeout) is left to its daemon thread."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout_s)

    # --- the sender thread -------------------------------------------------------------

    def _message(self, kind: str, alert: dict) -> dict:
        now = self._clock()
        return {"type": kind, "id": "msg_" + uuid.uuid4().hex, "timestamp": _iso(now),
                "alert": {"name": alert["name"], "metric": alert.get("metric"), "value": alert.get("value"),
                          "threshold": alert.get("threshold"), "level": alert.get("level"),
                          "message": alert.get("message") or "", "started_at": _iso(alert.get("started_at")),
                          "ended_at": _iso(alert.get("ended_at"))},
                "dashboard": dict(self.dashboard)}

    def _enqueue(self, target: Target, message: dict, now: float) -> None:
        with self._cond:
            if self._states[target.name].state == "disabled":
                return
            if len(self._queue) >= self.max_queue:
                oldest = min(self._queue, key=lambda item: item[2].first_at)
                self._queue.remove(oldest)
                heapq.heapify(self._queue)
                self._states[oldest[2].target.name].dropped += 1
                log.warning("notification queue full (%d): dropped the oldest, for %s", self.max_queue,
                            oldest[2].target.name)
            heapq.heappush(self._queue, (now, next(self._seq), _Delivery(target, message, now)))
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop:
                    if self._queue and self._queue[0][0] <= self._clock():
                        break
                    wait = (self._queue[0][0] - self._clock()) if self._queue else None
                    self._cond.wait(None if wait is None else min(max(wait, 0.0), 1.0))
                if self._stop:
                    return
                _, _, delivery = heapq.heappop(self._queue)
            try:
                self._attempt(delivery)
            except Exception:  # a bug here must not end notifications
                log.exception("notification to %s failed unexpectedly", delivery.target.name)

    def _attempt(self, delivery: _Delivery) -> None:
        target, message = delivery.target, delivery.message
        body, headers = render(target, message)
        timestamp = int(self._clock())
        headers.update({"webhook-id": message["id"], "webhook-timestamp": str(timestamp),
                        "User-Agent": "sse-dashboard-notify"})
        if target.secret:
            headers["webhook-signature"] = sign(target.secret, message["id"], timestamp, body)
        delivery.attempts += 1
        status, error, retry_after = None, None, None
        try:
            request = urllib.request.Request(target.url, data=body, headers=headers, method="POST")
            with self._open(request, timeout=self.timeout_s) as response:
                status = response.status
                response.read(65536)
        except urllib.error.HTTPError as exc:
            status, error = exc.code, "HTTP %d" % exc.code
            retry_after = _retry_after(exc.headers.get("Retry-After") if exc.headers else None, self._clock())
        except (OSError, ValueError) as exc:  # refused, reset, timed out, DNS
            error = "%s: %s" % (type(exc).__name__, getattr(exc, "reason", None) or exc)
        ok = status is not None and 200 <= status < 300
        self._record(target, ok, status, error)
        if delivery.reply is not None:  # a test: one attempt, answered
            delivery.result = {"target": target.name, "ok": ok, "status": status, "error": error}
            delivery.reply.set()
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
        with self._cond:
            heapq.heappush(self._queue, (now + delay, next(self._seq), delivery))
            self._cond.notify()

    def _record(self, target: Target, ok: bool, status: int | None, error: str | None) -> None:
        now = self._clock()
        with self._cond:
            state = self._states[target.name]
            state.attempts += 1
            state.last_status = status
            before = state.state
            if ok:
                state.state, state.last_ok_at, state.failing_since, state.last_error = "ok", now, None, None
            else:
                state.last_error = error
                if state.state != "failing":
                    state.state, state.failing_since = "failing", now
        if self._post is None:
            return
        if not ok and before != "failing" and status != 410:  # 410 is said once, by _disable
            log.warning("notifications to %s are failing: %s", target.name, error)
            self._post("warning", "notifications to %s are failing: %s" % (target.name, error), source="notify",
                       data={"target": target.name, "error": error}, type="notify.failing")
        elif ok and before == "failing":
            self._post("info", "notifications to %s work again" % target.name, source="notify",
                       data={"target": target.name}, type="notify.ok")

    def _disable(self, target: Target) -> None:
        with self._cond:
            self._states[target.name].state = "disabled"
            self._states[target.name].last_error = "HTTP 410 Gone: disabled until restart"
            self._queue = [item for item in self._queue if item[2].target.name != target.name]
            heapq.heapify(self._queue)
        log.warning("notification target %s answered 410 Gone: disabled until restart", target.name)
        if self._post is not None:
            self._post("warning", "notification target %s answered 410 Gone: disabled until restart" % target.name,
                       source="notify", data={"target": target.name}, type="notify.disabled")


def _retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (seconds, or an HTTP date); None if absent or odd."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(min(int(value), 86400))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, min(86400.0, when.timestamp() - now))
