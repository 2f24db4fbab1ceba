"""Counters' and gauges' state on disk, and the small named values kept beside it (``meta``).

One concept: what the registry and the alerting parts must find again after a restart.

Invariants:
- a counter's or gauge's new value is committed before the registry applies it
  (``commit``, the registry's ``journal``, called under the registry's lock), so the server
  answers 2xx only for what is on disk: a kill -9 loses nothing acknowledged;
- a commit is all or nothing: the state, the named values that go with it (a push group's
  members) and the stored history of a deleted name, in one transaction;
- a value keeps its exact type: the ``value`` column has no affinity, so 1 stays an integer.

Lock order: the registry's lock, then the database's write lock (``commit`` runs under the
first and takes the second); nothing here calls back into the registry.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from sse_dashboard.storage.database import Database, StorageError, describe
from sse_dashboard.storage.history import StoredHistory

__all__ = ["MetricState"]

log = logging.getLogger(__name__)

_UPSERT_STATE = ("INSERT INTO metric_state (kind, name, value, set_at, door) VALUES %s "
                 "ON CONFLICT (kind, name) DO UPDATE SET value = excluded.value, set_at = excluded.set_at, door = excluded.door")
_UPSERT_META = "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
_ONE_STATEMENT_ROWS = 100  # 5 parameters a row, well within SQLite's oldest limit of 999


class MetricState:
    """Counters' and gauges' stored state, and named values, in one ``Database``.

    >>> state = MetricState(database, history)
    >>> registry = MetricsRegistry(journal=state.commit)
    >>> registry.restore(*state.load())

    ``history`` is where a deleted name's stored history goes from, in the same commit.
    """

    def __init__(self, database: Database, history: StoredHistory) -> None:
        self._db = database
        self._history = history

    def load(self) -> tuple[dict, dict, dict]:
        """What is kept: ``({counter: total}, {gauge: (value, set_at)}, {(kind, name): door})``."""
        counters, gauges, doors = {}, {}, {}
        for kind, name, value, set_at, door in self._db.query(
                "SELECT kind, name, value, set_at, door FROM metric_state", ()):
            if kind == "counters":
                counters[name] = value
            else:
                gauges[name] = (value, set_at)
            doors[(kind, name)] = door
        return counters, gauges, doors

    def commit(self, changes: list, meta: dict | None = None, forget: Any = ()) -> None:
        """Commit counters' and gauges' new state in one transaction, before it is acknowledged.

        ``changes``: ``(kind, name, value, set_at, door)``, a value of None removes the name;
        ``meta``: named values kept in the same transaction (a push's group members, OTLP's
        streams), a value of None removes the name;
        ``forget``: series (``counters.jobs``) whose stored history goes too.
        ``StorageError`` if the disk will not take it: then nothing was kept."""
        if not changes and not meta and not forget:
            return  # nothing to keep (an update of no names)
        db = self._db
        db.check_file()
        with db.write_lock:
            conn = db.conn
            try:
                if len(changes) <= _ONE_STATEMENT_ROWS and not meta and not forget and all(
                        row[2] is not None for row in changes):
                    # The common write (a few counters and gauges) as one statement, which SQLite
                    # commits by itself: every sqlite call releases the GIL, and under concurrent
                    # requests each costs a wait to take it back (bench/RESULTS-durability.md).
                    conn.execute(_UPSERT_STATE % ", ".join(["(?, ?, ?, ?, ?)"] * len(changes)),
                                 [field for row in changes for field in row])
                    db.last_error = None
                    return
                conn.execute("BEGIN")
                kept = [row for row in changes if row[2] is not None]
                for i in range(0, len(kept), _ONE_STATEMENT_ROWS):
                    # (a hundred rows a statement: each statement gives the GIL up and waits to
                    # take it back, behind the writer's encoding; 10,000 gauges a row a
                    # statement waited seconds: bench/RESULTS-storage.md)
                    part = kept[i:i + _ONE_STATEMENT_ROWS]
                    conn.execute(_UPSERT_STATE % ", ".join(["(?, ?, ?, ?, ?)"] * len(part)),
                                 [field for row in part for field in row])
                if len(kept) < len(changes):
                    conn.executemany("DELETE FROM metric_state WHERE kind = ? AND name = ?",
                                     [row[:2] for row in changes if row[2] is None])
                if meta:
                    conn.executemany(_UPSERT_META, [item for item in meta.items() if item[1] is not None])
                    conn.executemany("DELETE FROM meta WHERE key = ?", [(k,) for k, v in meta.items() if v is None])
                for series in forget:
                    self._history.forget(series)
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                db.rollback()
                db.last_error = describe(exc)
                db.log_once(log, "metrics" + db.last_error, "could not store counters or gauges: %s", db.last_error)
                raise StorageError("cannot be stored right now: %s" % db.last_error) from None
            finally:
                if forget:  # the in-memory caches follow what the database now says
                    self._history.reload_series()
        db.last_error = None

    def read_meta(self, key: str) -> str | None:
        rows = self._db.query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def read_meta_prefix(self, prefix: str) -> dict:
        """Every named value whose name starts with ``prefix`` (a family kept key by key)."""
        # Ranged on the key's index: ``prefix`` up to the next string that does not start with it.
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        return dict(self._db.query("SELECT key, value FROM meta WHERE key >= ? AND key < ?", (prefix, end)))

    def write_meta(self, key: str, value: str) -> None:
        """Commit one named value; ``StorageError`` if the disk will not take it."""
        db = self._db
        db.check_file()
        try:
            with db.write_lock:
                db.conn.execute(_UPSERT_META, (key, value))
        except sqlite3.Error as exc:
            db.last_error = describe(exc)
            raise StorageError("cannot be stored right now: %s" % db.last_error) from None
