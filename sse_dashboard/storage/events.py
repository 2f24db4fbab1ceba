"""Events on disk: each committed before it is acknowledged, read back for pages and exports.

One concept: the ``events`` table, the durable copy of the event log (``sse_dashboard.events``).

Invariants:
- an event is committed before ``insert()`` returns (the server answers 201 only after that);
  a batch (``insert_many``: an OTLP logs export) is one transaction, all or none;
  ids come from the event log and are never reused;
- reads go through connections of their own, in chunks, oldest first unless asked otherwise;
- retention keeps at most ``max_events`` events and about ``max_event_bytes`` of event text,
  newest first, so the file stops growing (``prune``, run by the history's writer thread).

Intentional choice: one commit per event, without grouping: a commit costs tens of
microseconds against a request's hundreds (bench/RESULTS-durability.md).
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any, Iterator

from sse_dashboard.events import Event, EventFilter, make_event, newest_within
from sse_dashboard.storage.database import Database, StorageError, describe

__all__ = ["EventTable", "DEFAULT_MAX_STORED_EVENTS", "DEFAULT_MAX_STORED_EVENT_BYTES"]

log = logging.getLogger(__name__)

DEFAULT_MAX_STORED_EVENTS = 100_000
DEFAULT_MAX_STORED_EVENT_BYTES = 256 * 1024 * 1024
EVENT_COLUMNS = "id, ts, level, source, message, data, type"


class EventTable:
    """The stored events of one ``Database``.

    >>> table = EventTable(database)
    >>> table.insert(event)                      # committed, or StorageError
    >>> [e.id for e in table.iterate(after_id=0, limit=10)]
    """

    def __init__(self, database: Database, max_events: int = DEFAULT_MAX_STORED_EVENTS,
                 max_event_bytes: int = DEFAULT_MAX_STORED_EVENT_BYTES) -> None:
        self._db = database
        self.max_events = max_events
        self.max_event_bytes = max_event_bytes

    def insert(self, event: Event) -> None:
        """Commit one event; ``StorageError`` if the disk will not take it."""
        db = self._db
        db.check_file()
        try:
            with db.write_lock:
                db.conn.execute(
                    "INSERT INTO events (id, ts, level, source, message, data, type) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (event.id, event.ts, event.level, event.source, event.message, event.data_json, event.type))
            db.last_error = None
        except sqlite3.Error as exc:
            db.last_error = describe(exc)
            db.log_once(log, "event", "could not store event %d: %s", event.id, db.last_error)
            raise StorageError("events cannot be stored right now: %s" % db.last_error) from None

    def insert_many(self, events: list) -> None:
        """Commit events in one transaction, all or none; ``StorageError`` if the disk will not take them."""
        db = self._db
        db.check_file()
        try:
            with db.transaction() as conn:
                conn.executemany(
                    "INSERT INTO events (id, ts, level, source, message, data, type) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(e.id, e.ts, e.level, e.source, e.message, e.data_json, e.type) for e in events])
            db.last_error = None
        except sqlite3.Error as exc:
            db.last_error = describe(exc)
            db.log_once(log, "event", "could not store events %d-%d: %s", events[0].id, events[-1].id, db.last_error)
            raise StorageError("events cannot be stored right now: %s" % db.last_error) from None

    def last_id(self) -> int:
        return self._db.read_one("SELECT COALESCE(MAX(id), 0) FROM events")

    def recent(self, limit: int, max_chars: int | None = None) -> list[Event]:
        """The newest events, oldest first: at most ``limit``, and about ``max_chars`` of JSON."""
        rows = self._db.iterate("SELECT %s FROM events ORDER BY id DESC LIMIT ?" % EVENT_COLUMNS, (limit,), chunk=100)
        return newest_within((_event(row) for row in rows), max_chars)

    def iterate(self, after_id: int = 0, start: float | None = None, end: float | None = None,
                level: str | None = None, limit: int | None = None,
                only: EventFilter | None = None, newest: bool = False) -> Iterator[Event]:
        """Events after ``after_id`` with ``start <= ts <= end``, of ``level``, matching ``only``,
        oldest first, read in chunks from a connection of the caller's own; ``newest``: the
        newest ``limit`` of them, newest first."""
        sql = "SELECT %s FROM events WHERE id > ?" % EVENT_COLUMNS
        args: list[Any] = [after_id]
        for clause, value in (("ts >= ?", start), ("ts <= ?", end), ("level = ?", level)):
            if value is not None:
                sql += " AND " + clause
                args.append(value)
        if only is not None:
            clause, more = only.sql()
            sql += " AND " + clause
            args.extend(more)
        sql += " ORDER BY id DESC" if newest else " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        for row in self._db.iterate(sql, args):
            yield _event(row)

    def prune(self, conn: sqlite3.Connection) -> None:
        """Keep the newest ``max_events`` and about ``max_event_bytes`` (inside the caller's transaction)."""
        conn.execute("DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?", (self.max_events,))
        over = conn.execute(
            "SELECT id FROM (SELECT id, SUM(LENGTH(message) + LENGTH(source) + COALESCE(LENGTH(data), 0) + 80) "
            "OVER (ORDER BY id DESC) AS total FROM events) WHERE total > ? ORDER BY id DESC LIMIT 1",
            (self.max_event_bytes,)).fetchone()
        if over is not None:
            conn.execute("DELETE FROM events WHERE id <= ?", over)


def _event(row: tuple) -> Event:
    event_id, ts, level, source, message, data, event_type = row
    return make_event(event_id, ts, level, source, message, data, event_type)
