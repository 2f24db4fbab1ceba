"""The application event log.

One concept: events that an application posts (``info``, ``warning``,
``error``, optionally with a ``type`` such as ``record.created``), kept in a
bounded ring with integer ids, and the filters a reader narrows them with.

Invariants:
- ids are strictly increasing, start at 1 and are never reused within a run;
- the ring holds at most ``maxlen`` events and about ``max_chars`` characters
  of event JSON (a budget in bytes of text, whichever is reached first); the
  oldest fall off first; an event's ``data`` is kept only as its compact JSON
  text (a list of 16,000 floats is 64 KB as text, about 520 KB as objects);
- text that is not valid Unicode (a lone surrogate such as ``"\ud800"``) is
  refused: it could be neither encoded for a stream nor stored;
- ``post()`` validates everything before it stores anything, so a rejected
  event leaves the log untouched (its ``ValueError`` message is written for
  the person who sent it: the server passes it through as ``{"error": ...}``);
- every event's JSON is encoded once, when it is posted, and shared by every
  stream that sends it;
- ``alert.*`` and ``notify.*`` types are the dashboard's own: only a post marked
  ``by_dashboard`` may use them (the page draws alert spans from them). A
  ``source`` is only a label, open to anyone, and nothing trusts it.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import math
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["LEVELS", "Event", "EventFilter", "EventLog", "Replay", "make_event", "is_unicode_text", "check_type",
           "newest_within", "DASHBOARD_TYPE_PREFIXES"]

log = logging.getLogger(__name__)

LEVELS = ("info", "warning", "error")
DEFAULT_MAXLEN = 1000
DEFAULT_MAX_CHARS = 32 * 1024 * 1024
MAX_MESSAGE_CHARS = 4096
MAX_SOURCE_CHARS = 100
DEFAULT_SOURCE = "app"
TYPE_RE = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
# Names a stream already uses for its own frames (and "error", which EventSource fires
# itself): a typed event goes out as ``event: <type>``, so it must not be mistaken for one.
RESERVED_TYPES = ("log", "metrics", "resync", "error", "message", "fleet")  # fleet: the fleet page's frame (#25)
# The dashboard's own events: alerts (alert.firing, alert.resolved) and notification reports
# (notify.failing, ...). The page shades an alert span from an alert.firing, so a client that
# could post one could paint a false alert on every chart: only the dashboard posts these.
DASHBOARD_TYPE_PREFIXES = ("alert.", "notify.")
UNTYPED = "log"  # what an event without a type is called on the wire, and in a filter


@dataclass(frozen=True)
class Event:
    """One posted event. ``json`` is its encoded form, made once at post time, and
    the only copy of its ``data``: ``data_json`` is a slice of it, ``data`` is parsed
    from it when asked (a 64 KB list of numbers is 64 KB as text, 520 KB as objects)."""

    id: int
    ts: float
    level: str
    source: str
    message: str
    json: str = field(default="", repr=False, compare=False)
    type: str | None = None
    data_at: int = field(default=-1, repr=False, compare=False)  # where data starts in json; -1: none

    @property
    def data_json(self) -> str | None:
        return None if self.data_at < 0 else self.json[self.data_at:-1]

    @property
    def data(self) -> Any:
        text = self.data_json
        return None if text is None else json.loads(text)

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "ts": self.ts,
            "level": self.level,
            "type": self.type,
            "source": self.source,
            "message": self.message,
            "data": self.data,
        }


@dataclass(frozen=True)
class Replay:
    """What a reconnecting reader missed: the events, or ``complete=False`` when
    the id is unknown (from the future, e.g. another run) or already evicted."""

    events: list
    complete: bool
    last_id: int


class EventLog:
    """A bounded, thread-safe log of application events.

    >>> events = EventLog(maxlen=100)
    >>> events.post("warning", "disk almost full", source="backup").id
    1
    >>> [e.message for e in events.since(0)]
    ['disk almost full']

    ``on_post`` (the stream hub's ``Doorbell.ring``) is called after each post,
    outside the lock. ``persist(event)``, when given, stores the event durably
    before it becomes visible; if it raises, the post fails and nothing is
    stored. ``persist_many(events)`` stores a batch of ``post_many`` in one
    commit (without it, each goes through ``persist``, one by one).
    ``initial`` (oldest first) and ``last_id`` resume a log kept
    elsewhere, so ids continue where they stopped. Use metrics (a counter or
    gauge) instead of events for anything that happens many times a second.
    """

    def __init__(
        self,
        maxlen: int = DEFAULT_MAXLEN,
        on_post: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
        persist: Callable[[Event], None] | None = None,
        initial: list[Event] | tuple = (),
        persist_many: Callable[[list], None] | None = None,
        last_id: int = 0,
        max_chars: int = DEFAULT_MAX_CHARS,
    ) -> None:
        if maxlen < 1:
            raise ValueError("maxlen must be at least 1")
        self.max_chars = max_chars
        self._lock = threading.Lock()
        # Posts take _post_lock across persist(): writes reach storage in id order, and
        # readers (streams) only ever take _lock, which never waits on a disk.
        self._post_lock = threading.Lock()
        self._events: deque[Event] = deque(maxlen=maxlen)
        self._chars = 0
        for event in initial:
            self._append(event)
        self._last_id = max([last_id] + [e.id for e in self._events])
        self._on_post = on_post
        self._clock = clock
        self._persist = persist
        self._persist_many = persist_many

    @property
    def maxlen(self) -> int:
        return self._events.maxlen or 0

    @property
    def last_id(self) -> int:
        return self._last_id  # an int read is atomic; posts update it under _lock

    def __len__(self) -> int:
        with self._lock:
            return len(self._events)

    def post(
        self,
        level: str,
        message: str,
        source: str = DEFAULT_SOURCE,
        data: Any = None,
        durable: bool = True,
        type: str | None = None,
        by_dashboard: bool = False,
    ) -> Event:
        """Validate and store one event; raise ``ValueError`` (storing nothing) on bad input.

        ``by_dashboard=True`` marks the dashboard's own notices (alerts, notification reports):
        only they may use the ``alert.*`` and ``notify.*`` types. ``durable=False`` keeps one
        in memory only (when storage is failing: an alert must still reach the page)."""
        level, message, source, data_json = _validate(level, message, source, data)
        check_type(type, by_dashboard)
        with self._post_lock:
            event_id = self.last_id + 1
            ts = round(self._clock(), 3)
            event = make_event(event_id, ts, level, source, message, data_json, type)
            if self._persist is not None and durable:
                self._persist(event)  # raises: the id is not used and nothing is stored
            with self._lock:
                self._append(event)
                self._last_id = event_id
        # Posted events are data, not diagnostics: never re-log them above DEBUG.
        log.debug("event %d posted (%s)", event.id, level)
        if self._on_post is not None:
            self._on_post()
        return event

    def post_many(self, posts: list) -> list[Event]:
        """Validate and store a batch (each a dict of ``post``'s arguments: level, message, source,
        data, type) with consecutive ids, all or none: a ``ValueError`` or the store's refusal
        leaves the log untouched. One commit with ``persist_many``."""
        checked = []
        for post in posts:
            level, message, source, data_json = _validate(post["level"], post["message"],
                                                          post.get("source", DEFAULT_SOURCE), post.get("data"))
            check_type(post.get("type"))
            checked.append((level, source, message, data_json, post.get("type")))  # make_event's order
        if not checked:
            return []
        with self._post_lock:
            ts = round(self._clock(), 3)
            first = self.last_id + 1
            events = [make_event(first + i, ts, *fields) for i, fields in enumerate(checked)]
            if self._persist_many is not None:
                self._persist_many(events)  # raises: no id is used and nothing is stored
            elif self._persist is not None:
                for event in events:
                    self._persist(event)
            with self._lock:
                for event in events:
                    self._append(event)
                self._last_id = events[-1].id
        log.debug("events %d-%d posted", first, events[-1].id)
        if self._on_post is not None:
            self._on_post()
        return events

    def _append(self, event: Event) -> None:
        events = self._events
        if len(events) == events.maxlen:
            self._chars -= len(events.popleft().json)
        events.append(event)
        self._chars += len(event.json)
        while self._chars > self.max_chars and len(events) > 1:
            self._chars -= len(events.popleft().json)

    def since(
        self,
        after_id: int = 0,
        limit: int | None = None,
        level: str | None = None,
        only: "EventFilter | None" = None,
    ) -> list[Event]:
        """Events with ``id > after_id``, oldest first; ``limit`` keeps the oldest of them, so
        ``after_id`` works as a cursor: the next page starts after the last event returned.
        ``level`` and ``only`` (an ``EventFilter``) narrow them before the limit applies."""
        if level is not None and level not in LEVELS:
            raise ValueError(_level_message())
        if self._last_id <= after_id:
            return []  # the common case for a stream woken by a tick: no lock taken
        with self._lock:
            # ids are contiguous inside the ring, so the new ones are the last
            # (last_id - after_id): take them from the right end, in O(new), because
            # every stream calls this for every posted event.
            wanted = min(len(self._events), self._last_id - after_id)
            selected = [self._events[-i] for i in range(wanted, 0, -1)]
        if level is not None:
            selected = [e for e in selected if e.level == level]
        if only is not None:
            selected = [e for e in selected if only.matches(e)]
        if limit is not None:
            selected = selected[:max(0, limit)]
        return selected

    def newest(self, limit: int, level: str | None = None, only: "EventFilter | None" = None) -> list[Event]:
        """The newest ``limit`` events (of ``level``, matching ``only``), oldest first."""
        selected = self.since(0, level=level, only=only)
        return selected[-limit:] if limit > 0 else []

    @property
    def first_id(self) -> int:
        """The oldest id still held (``last_id + 1`` when empty)."""
        with self._lock:
            return self._events[0].id if self._events else self._last_id + 1

    def replay(self, after_id: int) -> Replay:
        """What a reader that last saw ``after_id`` missed, or that it cannot be told."""
        with self._lock:
            last_id = self._last_id
            first = self._events[0].id if self._events else last_id + 1
            if after_id > last_id or after_id < first - 1:
                return Replay(events=[], complete=False, last_id=last_id)
            events = [e for e in self._events if e.id > after_id]
        return Replay(events=events, complete=True, last_id=last_id)


def _level_message() -> str:
    return "level must be one of " + ", ".join(LEVELS)


# "Not blank" as JSON Schema's pattern \S says it (ECMAScript's whitespace), which the OpenAPI
# description promises: Python's str.strip() would also remove \x1c-\x1f and refuse "\x1f".
_VISIBLE = re.compile("[^\t\n\x0b\x0c\r \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]")


def _validate(level: Any, message: Any, source: Any, data: Any) -> tuple:
    if level not in LEVELS or not isinstance(level, str):
        raise ValueError(_level_message())
    if not isinstance(message, str) or not _VISIBLE.search(message):
        raise ValueError("message must be a non-empty string")
    if len(message) > MAX_MESSAGE_CHARS:
        raise ValueError("message must be at most %d characters" % MAX_MESSAGE_CHARS)
    if not isinstance(source, str) or not _VISIBLE.search(source):
        raise ValueError("source must be a non-empty string")
    if len(source) > MAX_SOURCE_CHARS:
        raise ValueError("source must be at most %d characters" % MAX_SOURCE_CHARS)
    if data is None:
        data_json = None
    else:
        try:
            data_json = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError, RecursionError):
            raise ValueError("data must be plain JSON (no NaN or Infinity)") from None
    for what, text in (("message", message), ("source", source), ("data", data_json)):
        if text is not None and not is_unicode_text(text):
            raise ValueError("%s must be valid Unicode text (it has a lone surrogate such as \\ud800)" % what)
    return level, message, source, data_json


def is_unicode_text(text: str) -> bool:
    """False for a str that cannot be UTF-8 encoded (a lone surrogate from a JSON ``\\ud800`` escape)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_type(event_type: Any, by_dashboard: bool = False) -> None:
    """``ValueError`` unless ``event_type`` is None or a type name this poster may use."""
    if event_type is None:
        return
    if not isinstance(event_type, str) or not TYPE_RE.fullmatch(event_type):
        raise ValueError("type must be 1-100 letters, digits or _ . : - (like record.created)")
    if event_type in RESERVED_TYPES:
        raise ValueError("type must not be %s: the stream uses those names itself"
                         % ", ".join(repr(t) for t in RESERVED_TYPES))
    if event_type.startswith(DASHBOARD_TYPE_PREFIXES) and not by_dashboard:
        raise ValueError("types starting with %s belong to the dashboard (its alerts and notification reports); "
                         "choose another, such as myapp.%s" % (" or ".join(DASHBOARD_TYPE_PREFIXES), event_type))


def newest_within(newest_first: Any, max_chars: int | None) -> list[Event]:
    """The events of ``newest_first`` (newest first) that fit in about ``max_chars`` of JSON,
    oldest first; at least one. What a restart keeps in memory, from disk or from memory alike."""
    events, chars = [], 0
    for event in newest_first:
        chars += len(event.json)
        if max_chars is not None and chars > max_chars and events:
            break
        events.append(event)
    events.reverse()
    return events


def make_event(event_id: int, ts: float, level: str, source: str, message: str, data_json: str | None,
               type: str | None = None) -> Event:
    """An Event from validated fields (a post, or a row read back from storage)."""
    encoded = _encode(event_id, ts, level, type, source, message, data_json or "null")
    data_at = -1 if data_json is None else len(encoded) - len(data_json) - 1
    return Event(id=event_id, ts=ts, level=level, source=source, message=message, json=encoded, data_at=data_at,
                 type=type)


def _encode(event_id: int, ts: float, level: str, event_type: str | None, source: str, message: str,
            data_json: str) -> str:
    def text(value: str | None) -> str:
        return json.dumps(value, ensure_ascii=False)

    # Built by hand so ``data`` is encoded once (already checked in _validate); it stays last.
    return (
        '{"id":%d,"ts":%s,"level":%s,"type":%s,"source":%s,"message":%s,"data":%s}'
        % (event_id, _number(ts), text(level), text(event_type), text(source), text(message), data_json)
    )


def _number(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError("timestamp must be finite")
    return repr(value)


# --------------------------------------------------------------------------
# Filters: what a subscriber (a narrowed stream, a page of GET /api/events) asked for
# --------------------------------------------------------------------------

MAX_FILTER_TERMS = 20
_PATTERN_RE = re.compile(r"[A-Za-z0-9_.:*?-]{1,100}")  # a type, with * and ? as wildcards


@dataclass(frozen=True)
class EventFilter:
    """Events whose type matches one of ``types`` (globs: ``record.*``; an untyped event's
    type is ``log`` here), whose level is in ``levels`` and whose source is in ``sources``;
    an empty tuple means any. Frozen and hashable: the stream hub groups streams by filter.

    >>> only = EventFilter.parse(types="record.*,deploy", levels="warning,error")
    >>> only.matches(make_event(1, 0.0, "error", "app", "x", None, "record.created"))
    True
    """

    types: tuple = ()
    levels: tuple = ()
    sources: tuple = ()
    _types_re: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.types:
            pattern = "|".join(fnmatch.translate(t) for t in self.types)
            object.__setattr__(self, "_types_re", re.compile(pattern))

    @classmethod
    def parse(cls, types: str | None = None, levels: str | None = None,
              sources: str | None = None) -> "EventFilter | None":
        """From comma-separated query values; None when nothing narrows; ``ValueError`` if bad."""
        type_terms = _terms("types", types)
        for term in type_terms:
            if not _PATTERN_RE.fullmatch(term):
                raise ValueError("types: %s is not a type pattern (letters, digits, _ . : - and * ?)"
                                 % json.dumps(term[:40]))
        level_terms = _terms("levels", levels)
        for term in level_terms:
            if term not in LEVELS:
                raise ValueError("levels: each must be one of " + ", ".join(LEVELS))
        source_terms = _terms("sources", sources)
        for term in source_terms:
            if len(term) > MAX_SOURCE_CHARS or not is_unicode_text(term):
                raise ValueError("sources: each must be a source name of at most %d characters" % MAX_SOURCE_CHARS)
        if not (type_terms or level_terms or source_terms):
            return None
        return cls(tuple(type_terms), tuple(level_terms), tuple(source_terms))

    def matches(self, event: Event) -> bool:
        if self.levels and event.level not in self.levels:
            return False
        if self.sources and event.source not in self.sources:
            return False
        return self._types_re is None or self._types_re.match(event.type or UNTYPED) is not None

    def sql(self) -> tuple[str, list]:
        """The same test as an SQL condition on the events table (GLOB has fnmatch's * and ?)."""
        clauses, args = [], []
        if self.types:
            clauses.append("(%s)" % " OR ".join(["COALESCE(type, 'log') GLOB ?"] * len(self.types)))
            args.extend(self.types)
        for column, values in (("level", self.levels), ("source", self.sources)):
            if values:
                clauses.append("%s IN (%s)" % (column, ",".join("?" * len(values))))
                args.extend(values)
        return " AND ".join(clauses) or "1", args


def _terms(name: str, value: str | None) -> list[str]:
    """The comma-separated terms of a query value, exactly as sent (no trimming): an empty
    value means none; an empty term (``a,,b``) is refused, as the OpenAPI pattern says."""
    if not value:
        return []
    terms = value.split(",")
    if len(terms) > MAX_FILTER_TERMS:
        raise ValueError("%s: at most %d, separated by commas" % (name, MAX_FILTER_TERMS))
    if not all(terms):
        raise ValueError("%s: an empty term (two commas in a row, or one at an end)" % name)
    return list(dict.fromkeys(terms))
