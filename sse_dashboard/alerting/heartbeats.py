"""Heartbeats (push monitors): jobs that say "I ran", and an alert when one goes quiet.

One concept: the last word from each named job. ``GET`` or ``POST
/api/push/<name>?status=up|down&msg=...&ping=...&every=SECONDS``, the shape cron
jobs, backup tools and Uptime Kuma-style push monitors already send.

Invariants:
- ``down`` fires an alert at once; with ``every`` (from the beat or the config
  file), no beat for longer than ``every`` fires one (``backup silent for 1 h``);
  a later ``up`` resolves it. One event each way, never one per tick, and a job
  that is down and then also silent is still one alert;
- a heartbeat named in the config file is expected from the start: it gets one
  full ``every`` after the dashboard starts before it counts as silent;
- names, messages, pings (0 to 366 days in ms) and the number of heartbeats are
  bounded; a refused beat changes nothing;
- ``persist(state)`` keeps every heartbeat after each beat and each alert change,
  so a restart knows when each last beat was (a job that died while the
  dashboard was down is still noticed) and what is firing (not announced twice).
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Callable

from sse_dashboard.alerting.alert import Alert, AlertChange, AlertOutlet

log = logging.getLogger(__name__)

__all__ = ["Heartbeats", "parse_heartbeats", "HEARTBEAT_NAME_RE"]

HEARTBEAT_NAME_RE = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
# Every sample carries the heartbeats (the page lists them): 200 of them with 200-character
# messages keep a snapshot frame within what the 1000 metric names already make it.
MAX_HEARTBEATS = 200
MAX_MESSAGE_CHARS = 200
MAX_EVERY_S = 366 * 86400.0
# A ping is how long the job took, in milliseconds: never negative, and never longer than the
# longest period a heartbeat may have (366 days); 1e308 is a typo or an attack, not a duration.
MAX_PING_MS = MAX_EVERY_S * 1000
STATUSES = ("up", "down")
LEVELS = ("warning", "error")


@dataclass
class _Beat:
    name: str
    every: float | None = None
    level: str = "error"
    notify: tuple | None = None      # notify target names; None: all
    status: str = "waiting"          # up, down, or waiting (configured, never heard from)
    message: str = ""
    ping: float | None = None
    last_seen: float | None = None
    since: float = 0.0               # when it was configured or first heard of (the grace period's start)
    alert: Alert | None = None

    def to_dict(self, now: float) -> dict:
        return {"name": self.name, "status": self.status, "message": self.message, "ping": self.ping,
                "last_seen": self.last_seen, "age": None if self.last_seen is None else round(now - self.last_seen, 3),
                "every": self.every, "level": self.level, "firing": self.alert is not None}

    def state(self) -> dict:
        return {"status": self.status, "message": self.message, "ping": self.ping, "last_seen": self.last_seen,
                "every": self.every, "since": self.since, "alert": None if self.alert is None else self.alert.to_dict()}


def parse_heartbeats(document: Any) -> dict[str, dict]:
    """The config file's ``"heartbeats": {"backup": {"every": 86400, "level": "error"}}``."""
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ValueError('"heartbeats" must be an object of name: {"every": SECONDS}')
    parsed = {}
    for name, entry in document.items():
        if not HEARTBEAT_NAME_RE.fullmatch(name):
            raise ValueError("heartbeat %r: the name must be 1-100 letters, digits or _ . : -" % name[:40])
        if not isinstance(entry, dict) or set(entry) - {"every", "level", "notify"}:
            raise ValueError('heartbeat %s: must be {"every": SECONDS, "level": "warning"|"error", '
                             '"notify": [TARGET, ...]}' % name)
        notify = entry.get("notify")
        if notify is not None and (not isinstance(notify, list) or not all(isinstance(n, str) for n in notify)):
            raise ValueError("heartbeat %s: notify must be a list of notify target names" % name)
        every = entry.get("every")
        if every is not None:
            every = _every(every, name)
        level = entry.get("level", "error")
        if level not in LEVELS:
            raise ValueError("heartbeat %s: level must be warning or error" % name)
        parsed[name] = {"every": every, "level": level, "notify": None if notify is None else tuple(notify)}
    return parsed


def _every(value: Any, name: str) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            value = None
    if (not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value)
            or not 1 <= value <= MAX_EVERY_S):
        raise ValueError("heartbeat %s: every must be a number of seconds from 1 to %d" % (name, MAX_EVERY_S))
    return float(value)


def _ping(value: Any) -> float:
    """A job's duration in milliseconds, from a query string or a JSON number."""
    try:
        ping = math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        ping = math.nan
    if not (math.isfinite(ping) and 0 <= ping <= MAX_PING_MS):
        raise ValueError("ping must be a duration in milliseconds, from 0 to %d (366 days)" % MAX_PING_MS)
    return ping


class Heartbeats:
    """Every heartbeat, checked on each sample.

    >>> beats = Heartbeats(AlertOutlet(post, notify), configured={"backup": {"every": 3600, "level": "error"}})
    >>> beats.beat("backup", status="up", message="42 files")
    >>> beats.check()            # the sampler calls this: fires or resolves, returns the active alerts

    The outlet is called from the sampler thread, outside the lock.
    """

    def __init__(self, outlet: AlertOutlet, configured: dict | None = None,
                 clock: Callable[[], float] = time.time, persist: Callable[[str], None] | None = None,
                 state: str | None = None) -> None:
        self._outlet = outlet
        self._clock = clock
        self._persist = persist
        self._lock = threading.Lock()
        self._beats: dict[str, _Beat] = {}
        now = clock()
        for name, kept in (json.loads(state) if state else {}).items():
            self._beats[name] = _Beat(name, every=kept.get("every"), status=kept.get("status", "up"),
                                      message=kept.get("message", ""), ping=kept.get("ping"),
                                      last_seen=kept.get("last_seen"), since=kept.get("since", now),
                                      alert=_kept_alert(kept.get("alert")))  # still firing: not announced twice
        for name, entry in (configured or {}).items():
            beat = self._beats.setdefault(name, _Beat(name, since=now))
            beat.every, beat.level, beat.notify = entry["every"], entry["level"], entry.get("notify")

    def beat(self, name: str, status: str = "up", message: str = "", ping: Any = None, every: Any = None) -> dict:
        """Record one beat; ``ValueError`` (changing nothing) when any part is unusable."""
        if not isinstance(name, str) or not HEARTBEAT_NAME_RE.fullmatch(name):
            raise ValueError("the heartbeat name must be 1-100 letters, digits or _ . : -")
        if status not in STATUSES:
            raise ValueError("status must be up or down")
        if not isinstance(message, str):
            raise ValueError("msg must be text")
        if len(message) > MAX_MESSAGE_CHARS:
            raise ValueError("msg must be at most %d characters" % MAX_MESSAGE_CHARS)
        try:
            message.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("msg must be valid Unicode text") from None
        if ping is not None:
            ping = _ping(ping)
        if every is not None:
            every = _every(every, name)
        now = self._clock()
        with self._lock:
            old = self._beats.get(name)
            if old is None and len(self._beats) >= MAX_HEARTBEATS:
                raise ValueError("too many heartbeats (at most %d names)" % MAX_HEARTBEATS)
            beat = replace(old) if old is not None else _Beat(name, since=now)
            beat.status, beat.message, beat.ping, beat.last_seen = status, message, ping, now
            if every is not None:
                beat.every = every
            self._save(dict(self._beats, **{name: beat}))  # kept first: a failure changes nothing
            self._beats[name] = beat
            return beat.to_dict(now)

    def forget(self, name: str) -> bool:
        """Remove a heartbeat; False if unknown. A firing one is resolved ("removed"), so the
        page's alert span closes and every target that got the firing gets its resolve."""
        with self._lock:
            beat = self._beats.get(name)
            if beat is None:
                return False
            self._save({n: b for n, b in self._beats.items() if n != name})
            del self._beats[name]
        if beat.alert is not None:
            told = replace(beat.alert, threshold=beat.every, level=beat.level, targets=beat.notify)
            data = {"heartbeat": name, "state": "resolved", "since": beat.alert.since}
            self._outlet.send([AlertChange.resolved(told, "resolved: %s was removed" % name, data,
                                                    ended_at=self._clock())])
        return True

    def check(self) -> list[dict]:
        """Fire and resolve as the beats say; return the active heartbeat alerts."""
        now = self._clock()
        changes = []
        with self._lock:
            for beat in self._beats.values():
                changes.extend(self._step(beat, now))
            active = [b.alert.to_dict() for b in self._beats.values() if b.alert is not None]
        self._outlet.send(changes)
        if changes:  # after the event and the notification, as AlertEngine.evaluate says why
            with self._lock:
                try:
                    self._save(self._beats)  # a restart must know what is firing
                except Exception as exc:
                    log.warning("heartbeat alert state not kept: %s", exc)
        return active

    def active(self) -> list[dict]:
        with self._lock:
            return [b.alert.to_dict() for b in self._beats.values() if b.alert is not None]

    def listing(self) -> list[dict]:
        now = self._clock()
        with self._lock:
            return [b.to_dict(now) for b in sorted(self._beats.values(), key=lambda b: b.name)]

    def _step(self, beat: _Beat, now: float) -> list[AlertChange]:
        reference = beat.last_seen if beat.last_seen is not None else beat.since
        silent = beat.every is not None and now - reference > beat.every
        wrong = beat.status == "down" or silent
        if beat.alert is not None and not wrong:
            alert, beat.alert = beat.alert, None
            text = "resolved: %s is up again%s" % (beat.name, _said(beat.message))
            # Told as the heartbeat is now: a beat may have changed its ``every``, a restart its level.
            told = replace(alert, threshold=beat.every, level=beat.level, targets=beat.notify)
            data = {"heartbeat": beat.name, "state": "resolved", "since": alert.since}
            return [AlertChange.resolved(told, text, data, ended_at=now)]
        if not wrong:
            return []
        if beat.status == "down":
            message = "%s is down%s" % (beat.name, _said(beat.message))
        else:
            message = "%s silent for %s" % (beat.name, _duration(beat.every))
        if beat.alert is not None:  # still the one alert; it says what is wrong now
            beat.alert = replace(beat.alert, value=round(now - reference, 3), message=message)
            return []
        beat.alert = Alert("heartbeat:" + beat.name, "heartbeat", beat.level, "heartbeat." + beat.name, ">", beat.every,
                           round(now - reference, 3), since=round(now, 3), message=message, targets=beat.notify)
        return [AlertChange.fired(beat.alert, message, {"heartbeat": beat.name, "state": "firing",
                                                        "status": beat.status, "last_seen": beat.last_seen})]

    def _save(self, beats: dict) -> None:
        if self._persist is not None:
            self._persist(json.dumps({name: b.state() for name, b in beats.items()}))


def _kept_alert(kept: dict | None) -> Alert | None:
    return None if kept is None else Alert.from_dict(kept, "heartbeat")


def _said(message: str) -> str:
    return ": " + message if message else ""


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return "%d %s" % (seconds // size, unit)
    return "%g s" % seconds
