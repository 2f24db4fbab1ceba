"""Durable storage in one SQLite file: events, counter totals, and the metrics history.

One concept: what must survive a restart.

Invariants:
- an event is committed before ``insert_event()`` returns (the server answers
  201 only after that); ids come from the event log and are never reused;
- samples reach the disk from one writer thread through a bounded queue, so a
  slow disk delays storage, never sampling or the streams (when the queue is
  full the oldest waiting sample is dropped and counted);
- a counter's or gauge's new value is committed before the registry applies it
  (``commit_metrics``, called by ``MetricsRegistry`` under its lock), so the
  server answers 2xx only for what is on disk: a kill -9 loses nothing
  acknowledged, of any kind (events, counters, gauges, pushes, heartbeats);
- a clean ``close()`` writes the open roll-up bucket; a hard kill loses at most
  the samples still queued for the writer (history, never acknowledged state);
- the writer thread never dies: any failure is logged once, shown as
  ``last_error`` (``/api/health``) and retried with the next sample;
- the database file is checked against the one opened: deleted or replaced
  while running, every write is refused (``StorageError``), never lost silently;
- series names are stored once (``series``), points refer to them by id;
- retention is enforced by the writer by what is stored, not by the wall clock
  alone (a clock step must not wipe or overwrite history): the newest
  ``full_s / interval_s`` samples at full resolution, roll-ups (min/avg/max per
  ``rollup_s`` bucket, merged, never replaced) for ``rollup_keep_s``, and at
  most ``max_events`` events and ``max_event_bytes`` of event text, so the file
  stops growing once the windows are full;
- a data directory is used by one dashboard at a time (an OS file lock,
  released when the process dies, even by kill -9);
- a file SQLite cannot read is moved aside (``*.corrupt-<time>``) and
  replaced, and that is logged: it is never silently lost.

Lock order: the registry's lock, then this store's write lock (``commit_metrics``
runs under the first and takes the second); nothing here calls back into the registry.

Intentional choices: SQLite's WAL mode with ``synchronous=NORMAL``: a commit
survives the process being killed (the OS has the pages); only a power cut can
lose the last commits. One commit per acknowledged write, without grouping:
a commit costs tens of microseconds against a request's hundreds
(bench/RESULTS-durability.md). Each request that reads opens its own connection, so a
long export never holds up the writer.
"""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import sqlite3
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Iterator

from sse_dashboard.events import Event, EventFilter, make_event

__all__ = ["Store", "StorageError", "DataDirInUse", "open_store", "DB_FILENAME"]

log = logging.getLogger(__name__)

DB_FILENAME = "dashboard.sqlite3"
LOCK_FILENAME = "dashboard.lock"
URL_FILENAME = "dashboard.url"  # where the dashboard holding the lock can be reached
DEFAULT_FULL_S = 3600.0            # full resolution for an hour
DEFAULT_ROLLUP_S = 60.0            # one-minute roll-ups ...
DEFAULT_ROLLUP_KEEP_S = 7 * 86400.0  # ... for a week
DEFAULT_MAX_STORED_EVENTS = 100_000
DEFAULT_MAX_STORED_EVENT_BYTES = 256 * 1024 * 1024
DEFAULT_INTERVAL_S = 1.0
WRITE_QUEUE_SAMPLES = 600
PRUNE_EVERY_S = 30.0

_UPSERT_STATE = ("INSERT INTO metric_state (kind, name, value, set_at, door) VALUES %s "
                 "ON CONFLICT (kind, name) DO UPDATE SET value = excluded.value, set_at = excluded.set_at")
_ONE_STATEMENT_ROWS = 100  # 5 parameters a row, well within SQLite's oldest limit of 999

# Forward migrations: MIGRATIONS[n] takes a database from version n to n + 1.
MIGRATIONS = [
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE events (id INTEGER PRIMARY KEY, ts REAL NOT NULL, level TEXT NOT NULL,
                         source TEXT NOT NULL, message TEXT NOT NULL, data TEXT);
    CREATE INDEX events_ts ON events (ts);
    CREATE TABLE counters (name TEXT PRIMARY KEY, value REAL NOT NULL);
    CREATE TABLE samples (ts REAL PRIMARY KEY, series TEXT NOT NULL);
    CREATE TABLE rollups (bucket REAL NOT NULL, name TEXT NOT NULL, min REAL, avg REAL, max REAL,
                          n INTEGER NOT NULL, PRIMARY KEY (bucket, name));
    """,
    # 2: names once (series), samples as (tick, series, value), counters and gauges with their
    # exact type (a column without affinity keeps 1 an integer) and the time a gauge was set.
    """
    CREATE TABLE series (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
    CREATE TABLE metric_state (kind TEXT NOT NULL, name TEXT NOT NULL, value NOT NULL, set_at REAL NOT NULL,
                               PRIMARY KEY (kind, name));
    INSERT INTO metric_state SELECT 'counters', name,
        CASE WHEN value = CAST(value AS INTEGER) AND abs(value) <= 9007199254740992
             THEN CAST(value AS INTEGER) ELSE value END, 0 FROM counters;
    DROP TABLE counters;
    ALTER TABLE samples RENAME TO samples_v1;
    CREATE TABLE samples (id INTEGER PRIMARY KEY, ts REAL NOT NULL);
    CREATE INDEX samples_ts ON samples (ts);
    CREATE TABLE points (sample INTEGER NOT NULL, series INTEGER NOT NULL, value NOT NULL,
                         PRIMARY KEY (sample, series)) WITHOUT ROWID;
    CREATE INDEX points_series ON points (series);
    INSERT OR IGNORE INTO series (name) SELECT DISTINCT name FROM rollups;
    ALTER TABLE rollups RENAME TO rollups_v1;
    CREATE TABLE rollups (bucket REAL NOT NULL, series INTEGER NOT NULL, min REAL, avg REAL, max REAL,
                          n INTEGER NOT NULL, PRIMARY KEY (bucket, series)) WITHOUT ROWID;
    CREATE INDEX rollups_series ON rollups (series);
    INSERT INTO rollups SELECT r.bucket, s.id, r.min, r.avg, r.max, r.n FROM rollups_v1 r JOIN series s ON s.name = r.name;
    DROP TABLE rollups_v1;
    """,
    # 3: an event's type (record.created), NULL for the untyped ones.
    """
    ALTER TABLE events ADD COLUMN type TEXT;
    """,
    # 4: which door made a counter or gauge (api, statsd, push): each has its own budget of
    # names, so one without a token (StatsD) cannot use up the names the token-protected API needs.
    """
    ALTER TABLE metric_state ADD COLUMN door TEXT NOT NULL DEFAULT 'api';
    """,
]
# Steps that need Python after their SQL, in the same transaction.


def _convert_v1_samples(conn: sqlite3.Connection) -> None:
    ids: dict[str, int] = dict((name, i) for i, name in conn.execute("SELECT id, name FROM series"))
    for ts, series in conn.execute("SELECT ts, series FROM samples_v1 ORDER BY ts").fetchall():
        sample = conn.execute("INSERT INTO samples (ts) VALUES (?)", (ts,)).lastrowid
        for name, value in json.loads(series).items():
            if name not in ids:
                ids[name] = conn.execute("INSERT INTO series (name) VALUES (?)", (name,)).lastrowid
            conn.execute("INSERT INTO points VALUES (?, ?, ?)", (sample, ids[name], value))
    conn.execute("DROP TABLE samples_v1")


AFTER_MIGRATION = {1: _convert_v1_samples}


class StorageError(Exception):
    """Storage cannot do what was asked; the message is for a person."""


class DataDirInUse(StorageError):
    """Another dashboard holds the data directory; ``url`` is where it runs, when it said."""

    def __init__(self, directory: Path, url: str | None) -> None:
        where = " at %s" % url if url else ""
        super().__init__("the data folder %s is in use by another dashboard%s" % (directory, where))
        self.directory = directory
        self.url = url


class _DirLock:
    """An exclusive lock on a file in the data directory, released when the process ends."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, "a+b")
        try:
            if os.name == "nt":
                import msvcrt

                self._file.seek(0)
                msvcrt.locking(self._file.fileno(), msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._file.close()
            raise DataDirInUse(path.parent, _read_url(path.parent / URL_FILENAME)) from None
        self._url_file = path.parent / URL_FILENAME

    def announce(self, url: str) -> None:
        """Say where this dashboard runs, for a second one started on the same folder.
        (A file of its own: on Windows the locked byte cannot be read by others.)"""
        try:
            temporary = self._url_file.with_suffix(".url.tmp")
            temporary.write_text(url, encoding="utf-8")
            temporary.replace(self._url_file)
        except OSError as exc:
            log.warning("could not write %s: %s", self._url_file, exc)

    def release(self) -> None:
        try:
            self._url_file.unlink()
        except OSError:
            pass
        self._file.close()


def _read_url(path: Path) -> str | None:
    try:
        url = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return url if url.startswith("http://") and len(url) < 300 else None


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=10, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def _migrate(conn: sqlite3.Connection) -> int:
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    version = row[0] if row else 0
    if version > len(MIGRATIONS):
        raise StorageError("the database was written by a newer sse-dashboard (schema %d)" % version)
    for step in range(version, len(MIGRATIONS)):
        # One transaction per step: a failed migration leaves the previous version intact.
        try:
            conn.execute("BEGIN IMMEDIATE")
            for statement in _statements(MIGRATIONS[step]):
                conn.execute(statement)
            if step in AFTER_MIGRATION:
                AFTER_MIGRATION[step](conn)
            conn.execute("DELETE FROM schema_version")
            conn.execute("INSERT INTO schema_version VALUES (?)", (step + 1,))
            conn.execute("COMMIT")
        except sqlite3.Error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    if version == 0:  # one line, not one per step: a new folder is not a migration
        log.info("storage created at schema version %d", len(MIGRATIONS))
    elif version < len(MIGRATIONS):
        log.info("storage schema migrated from version %d to %d", version, len(MIGRATIONS))
    return len(MIGRATIONS)


def _statements(script: str) -> list[str]:
    """A migration script as single statements (executescript would commit on its own)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return [s for s in statements if s]


def _open_checked(path: Path) -> sqlite3.Connection:
    """Open and check the file; move a corrupt one aside and start a new one."""
    conn = None
    try:
        conn = _connect(path)
        ok = conn.execute("PRAGMA quick_check").fetchone()[0]
        if ok != "ok":
            raise sqlite3.DatabaseError(ok)
        return conn
    except sqlite3.DatabaseError as exc:
        if conn is not None:
            conn.close()
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            raise StorageError("the database %s is locked by another program" % path) from None
        if isinstance(exc, sqlite3.OperationalError) and "unable to open" in str(exc):
            raise StorageError("cannot open %s: %s" % (path, exc)) from None
        aside = path.with_name("%s.corrupt-%s" % (path.name, time.strftime("%Y%m%d-%H%M%S")))
        for suffix in ("", "-wal", "-shm"):
            part = Path(str(path) + suffix)
            if part.exists():
                part.replace(Path(str(aside) + suffix))
        log.error("the database %s could not be read (%s); moved it to %s and started a new one",
                  path, exc, aside.name)
        return _connect(path)


def open_store(data_dir: str | Path, **options: Any) -> "Store":
    """Open (creating if needed) the store in ``data_dir``; ``StorageError`` says why not."""
    directory = Path(data_dir)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        lock = _DirLock(directory / LOCK_FILENAME)
    except OSError as exc:
        raise StorageError("cannot use the data directory %s: %s" % (directory, exc.strerror or exc)) from None
    try:
        path = directory / DB_FILENAME
        conn = _open_checked(path)
        _migrate(conn)
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('epoch', ?)", (os.urandom(6).hex(),))
        return Store(path, conn, lock, **options)
    except sqlite3.Error as exc:
        lock.release()
        raise StorageError("cannot use %s: %s" % (directory / DB_FILENAME, exc)) from None
    except StorageError:
        lock.release()
        raise


class Store:
    """The open database. Create it with ``open_store()``; ``start()`` the writer, ``close()`` at the end.

    >>> store = open_store("data")
    >>> registry = MetricsRegistry(journal=store.commit_metrics)
    >>> registry.restore(*store.metric_state())
    >>> store.start()
    >>> events = EventLog(persist=store.insert_event, initial=store.recent_events(1000),
    ...                   last_id=store.last_event_id())
    """

    def __init__(self, path: Path, conn: sqlite3.Connection, lock: _DirLock,
                 full_s: float = DEFAULT_FULL_S, rollup_s: float = DEFAULT_ROLLUP_S,
                 rollup_keep_s: float = DEFAULT_ROLLUP_KEEP_S,
                 max_events: int = DEFAULT_MAX_STORED_EVENTS, prune_every_s: float = PRUNE_EVERY_S,
                 max_bytes: int | None = None, interval_s: float = DEFAULT_INTERVAL_S,
                 max_event_bytes: int = DEFAULT_MAX_STORED_EVENT_BYTES) -> None:
        self.path = path
        self.full_s = full_s
        self.rollup_s = rollup_s
        self.rollup_keep_s = rollup_keep_s
        self.max_events = max_events
        self.max_event_bytes = max_event_bytes
        self.prune_every_s = prune_every_s
        self.keep_samples = max(2, int(math.ceil(full_s / interval_s)) + 1)
        self.keep_buckets = max(2, int(math.ceil(rollup_keep_s / rollup_s)) + 1)
        self._conn = conn               # the one writing connection
        self._write_lock = threading.Lock()
        self._dir_lock = lock
        self._identity = _file_identity(path)
        self._queue: queue.Queue = queue.Queue(WRITE_QUEUE_SAMPLES)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._bucket: float | None = None
        self._acc: dict[str, list[float]] = {}   # name -> [min, sum, max, n] for the open bucket
        self._series: dict[str, int] = dict((name, i) for i, name in conn.execute("SELECT id, name FROM series"))
        self._logged: set[str] = set()
        self.dropped_samples = 0
        self.last_error: str | None = None
        self.gone: str | None = None    # set once the file on disk is no longer ours
        self.epoch = conn.execute("SELECT value FROM meta WHERE key='epoch'").fetchone()[0]
        if max_bytes is not None:
            # A hard cap on the file: past it SQLite says "database or disk is full",
            # exactly as a full disk would.
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            conn.execute("PRAGMA max_page_count = %d" % max(1, max_bytes // page_size))

    def announce(self, url: str) -> None:
        """Record this dashboard's URL beside the lock (see ``DataDirInUse``)."""
        self._dir_lock.announce(url)

    def problem(self) -> str | None:
        """Why writes fail right now (for /api/health and 503s), or None."""
        return self.gone or self.last_error

    # --- events --------------------------------------------------------------

    def insert_event(self, event: Event) -> None:
        """Commit one event; ``StorageError`` if the disk will not take it."""
        self._check_file()
        try:
            with self._write_lock:
                self._conn.execute(
                    "INSERT INTO events (id, ts, level, source, message, data, type) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (event.id, event.ts, event.level, event.source, event.message, event.data_json, event.type))
            self.last_error = None
        except sqlite3.Error as exc:
            self.last_error = _describe(exc)
            self._log_once("event", "could not store event %d: %s", event.id, self.last_error)
            raise StorageError("events cannot be stored right now: %s" % self.last_error) from None

    def last_event_id(self) -> int:
        return self._read_one("SELECT COALESCE(MAX(id), 0) FROM events")

    def recent_events(self, limit: int, max_chars: int | None = None) -> list[Event]:
        """The newest events, oldest first: at most ``limit``, and about ``max_chars`` of JSON."""
        events, chars = [], 0
        for row in self._iterate("SELECT %s FROM events ORDER BY id DESC LIMIT ?" % EVENT_COLUMNS,
                                 (limit,), chunk=100):
            event = _event(row)
            chars += len(event.json)
            if max_chars is not None and chars > max_chars and events:
                break
            events.append(event)
        events.reverse()
        return events

    def iter_events(self, after_id: int = 0, start: float | None = None, end: float | None = None,
                    level: str | None = None, limit: int | None = None,
                    only: EventFilter | None = None, newest: bool = False) -> Iterator[Event]:
        """Events oldest first, read in chunks from a connection of the caller's own;
        ``newest``: the newest ``limit`` of them, newest first."""
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
        for row in self._iterate(sql, args):
            yield _event(row)

    # --- small named values (the push groups' members) -------------------------

    def read_meta(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def write_meta(self, key: str, value: str) -> None:
        """Commit one named value; ``StorageError`` if the disk will not take it."""
        self._check_file()
        try:
            with self._write_lock:
                self._conn.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                                   (key, value))
        except sqlite3.Error as exc:
            self.last_error = _describe(exc)
            raise StorageError("cannot be stored right now: %s" % self.last_error) from None

    # --- counters, gauges and samples -------------------------------------------

    def metric_state(self) -> tuple[dict, dict, dict]:
        """What is kept: ``({counter: total}, {gauge: (value, set_at)}, {(kind, name): door})``."""
        counters, gauges, doors = {}, {}, {}
        for kind, name, value, set_at, door in self._query(
                "SELECT kind, name, value, set_at, door FROM metric_state", ()):
            if kind == "counters":
                counters[name] = value
            else:
                gauges[name] = (value, set_at)
            doors[(kind, name)] = door
        return counters, gauges, doors

    def commit_metrics(self, changes: list, meta: dict | None = None, forget: Any = ()) -> None:
        """Commit counters' and gauges' new state in one transaction, before it is acknowledged.

        ``changes``: ``(kind, name, value, set_at, door)``, a value of None removes the name;
        ``meta``: named values kept in the same transaction (a push's group members);
        ``forget``: series (``counters.jobs``) whose stored history goes too.
        ``StorageError`` if the disk will not take it: then nothing was kept."""
        if not changes and not meta and not forget:
            return  # nothing to keep (an update of no names)
        self._check_file()
        with self._write_lock:
            try:
                if len(changes) <= _ONE_STATEMENT_ROWS and not meta and not forget and all(
                        row[2] is not None for row in changes):
                    # The common write (a few counters and gauges) as one statement, which SQLite
                    # commits by itself: every sqlite call releases the GIL, and under concurrent
                    # requests each costs a wait to take it back (bench/RESULTS-durability.md).
                    self._conn.execute(_UPSERT_STATE % ", ".join(["(?, ?, ?, ?, ?)"] * len(changes)),
                                       [field for row in changes for field in row])
                    self.last_error = None
                    return
                self._conn.execute("BEGIN")
                kept = [row for row in changes if row[2] is not None]
                if kept:
                    self._conn.executemany(_UPSERT_STATE % "(?, ?, ?, ?, ?)", kept)
                if len(kept) < len(changes):
                    self._conn.executemany("DELETE FROM metric_state WHERE kind = ? AND name = ?",
                                           [row[:2] for row in changes if row[2] is None])
                if meta:
                    self._conn.executemany(
                        "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        list(meta.items()))
                for series in forget:
                    self._forget_series(series)
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                self.last_error = _describe(exc)
                self._log_once("metrics" + self.last_error, "could not store counters or gauges: %s", self.last_error)
                raise StorageError("cannot be stored right now: %s" % self.last_error) from None
            finally:
                if forget:  # the in-memory caches follow what the database now says
                    self._series = dict((name, i) for i, name in self._conn.execute("SELECT id, name FROM series"))
        self.last_error = None

    def _forget_series(self, series: str) -> None:
        """A series' stored history (inside the caller's transaction)."""
        self._acc.pop(series, None)
        series_id = self._series.get(series)
        if series_id is not None:
            self._conn.execute("DELETE FROM points WHERE series = ?", (series_id,))
            self._conn.execute("DELETE FROM rollups WHERE series = ?", (series_id,))
            self._conn.execute("DELETE FROM series WHERE id = ?", (series_id,))

    def enqueue_sample(self, ts: float, flat: dict) -> None:
        """Hand a sample to the writer thread without waiting (the sampler calls this)."""
        item = (ts, flat)
        while True:
            try:
                self._queue.put_nowait(item)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self._queue.task_done()
                    self.dropped_samples += 1
                except queue.Empty:
                    pass

    def history_columns(self, start: float, end: float) -> dict:
        """Columns like ``History.columns()``: full resolution when the window is kept, else
        one point per roll-up bucket with ``min``/``max`` beside the averages in ``series``.

        ``interval`` is the spacing of the points returned. Buckets not rolled up yet (the
        open minute, or the first minute of a new file) are made from the full-resolution
        samples, so the newest data is never missing from a long window."""
        # (a second of slack: "the last hour" asked for a moment ago is still the last hour)
        if start >= time.time() - self.full_s - 1.0:
            rows = list(self._full_rows(start, end))
            names = sorted({name for _, flat in rows for name in flat})
            return {"ts": [ts for ts, _ in rows],
                    "series": {name: [flat.get(name) for _, flat in rows] for name in names},
                    "resolution": "full"}
        names_by_id = self._names()
        buckets: dict[float, dict[str, tuple]] = {}
        for bucket, series, lo, avg, hi in self._query(
                "SELECT bucket, series, min, avg, max FROM rollups WHERE bucket >= ? AND bucket <= ? ORDER BY bucket",
                (start - self.rollup_s, end)):
            name = names_by_id.get(series)
            if name is not None:
                buckets.setdefault(bucket, {})[name] = (lo, avg, hi)
        stored_until = max(buckets) + self.rollup_s if buckets else start - self.rollup_s
        recent: dict[float, dict[str, list]] = {}
        for ts, flat in self._full_rows(max(start - self.rollup_s, stored_until), end):
            acc = recent.setdefault(round(ts - ts % self.rollup_s, 3), {})
            for name, value in flat.items():
                a = acc.get(name)
                if a is None:
                    acc[name] = [value, value, value, 1]
                else:
                    a[0], a[1], a[2], a[3] = min(a[0], value), a[1] + value, max(a[2], value), a[3] + 1
        for bucket, acc in recent.items():
            if bucket not in buckets:
                buckets[bucket] = {name: (a[0], a[1] / a[3], a[2]) for name, a in acc.items()}
        order = sorted(buckets)
        names = sorted({name for values in buckets.values() for name in values})

        def column(i: int, name: str) -> list:
            return [buckets[b][name][i] if name in buckets[b] else None for b in order]

        return {"ts": order, "series": {name: column(1, name) for name in names},
                "min": {name: column(0, name) for name in names},
                "max": {name: column(2, name) for name in names},
                "resolution": "rollup", "interval": self.rollup_s}

    def iter_history_rows(self, start: float, end: float) -> Iterator[tuple[float, dict]]:
        """Full-resolution rows where kept, roll-up averages before that, oldest first, in chunks."""
        full_from = time.time() - self.full_s
        if start < full_from:
            yield from self._rollup_rows(start, min(end, full_from))
        yield from self._full_rows(max(start, full_from), end)

    def _names(self) -> dict[int, str]:
        return dict(self._query("SELECT id, name FROM series", ()))

    def _full_rows(self, start: float, end: float) -> Iterator[tuple[float, dict]]:
        names = self._names()
        yield from _group(self._iterate(
            "SELECT s.id, s.ts, p.series, p.value FROM samples s JOIN points p ON p.sample = s.id "
            "WHERE s.ts >= ? AND s.ts <= ? ORDER BY s.ts, s.id", (start, end)), names)

    def _rollup_rows(self, start: float, end: float) -> Iterator[tuple[float, dict]]:
        names = self._names()
        yield from _group(self._iterate(
            "SELECT bucket, bucket, series, avg FROM rollups WHERE bucket >= ? AND bucket < ? ORDER BY bucket",
            (start, end)), names)

    # --- the writer thread ------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="storage-writer", daemon=True)
        self._thread.start()

    def close(self, timeout_s: float = 5.0) -> None:
        """Write what is queued and the open roll-up bucket, stop the writer, let the data
        directory go. (Counters and gauges are on disk already: see ``commit_metrics``.)"""
        self._stop.set()
        try:
            self._queue.put_nowait(None)  # wake the writer now, not at its next timeout
        except queue.Full:
            pass  # it is busy writing, and sees the stop when it is done
        if self._thread is not None:
            self._thread.join(timeout_s)
        try:
            self._write([], final=True)
        except Exception as exc:  # the file is gone or full: say so, the stop goes on
            log.error("could not write the last samples: %s", _describe(exc))
        with self._write_lock:
            self._conn.close()
        self._dir_lock.release()

    def flush(self, timeout_s: float = 5.0) -> None:
        """Wait until every queued sample is written (tests, and shutdown)."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def _run(self) -> None:
        last_prune = 0.0
        while True:
            try:
                batch = [self._queue.get(timeout=0.5)]
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            while len(batch) < 100:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if None in batch:  # close()'s wake-up: the samples before it are still written
                self._queue.task_done()
                batch.remove(None)
                if not batch:
                    if self._stop.is_set():
                        return
                    continue
            try:
                self._write(batch)
                if time.monotonic() - last_prune > self.prune_every_s:
                    self.prune()
                    last_prune = time.monotonic()
                self.last_error = None
            except Exception as exc:  # never die: say why, and try again with the next sample
                self.last_error = _describe(exc)
                if self.gone is None:  # a vanished file was said once already
                        self._log_once(type(exc).__name__ + self.last_error,
                                   "could not store %d sample(s): %s (retrying with the next one)", len(batch),
                                   self.last_error, exc_info=not isinstance(exc, (sqlite3.Error, StorageError)))
            finally:
                for _ in batch:
                    self._queue.task_done()
            if self._stop.is_set() and self._queue.empty():
                return

    def _write(self, batch: list, final: bool = False) -> None:
        """One transaction: the samples and their roll-ups."""
        self._check_file()
        with self._write_lock:
            rollups = []
            for ts, flat in batch:
                rollups.extend(self._accumulate(ts, flat))
            if final:
                rollups.extend(self._close_bucket())
            self._conn.execute("BEGIN")
            try:
                for ts, flat in batch:
                    sample = self._conn.execute("INSERT INTO samples (ts) VALUES (?)", (ts,)).lastrowid
                    self._conn.executemany("INSERT INTO points VALUES (?, ?, ?)",
                                           [(sample, self._series_id(name), value) for name, value in flat.items()])
                self._conn.executemany(
                    "INSERT INTO rollups VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (bucket, series) DO UPDATE SET "
                    "min = MIN(min, excluded.min), max = MAX(max, excluded.max), "
                    "avg = (avg * n + excluded.avg * excluded.n) / (n + excluded.n), n = n + excluded.n",
                    [(bucket, self._series_id(name), lo, avg, hi, n) for bucket, name, lo, avg, hi, n in rollups])
                self._conn.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise

    def _series_id(self, name: str) -> int:
        series_id = self._series.get(name)
        if series_id is None:
            series_id = self._conn.execute("INSERT INTO series (name) VALUES (?)", (name,)).lastrowid
            self._series[name] = series_id
        return series_id

    def _rollback(self) -> None:
        # SQLite may already have rolled back (a full disk does): a second ROLLBACK would
        # replace the real reason with "no transaction is active".
        if self._conn.in_transaction:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    def _accumulate(self, ts: float, flat: dict) -> list:
        """Fold a sample into the open bucket; return the rows of a bucket that just closed."""
        bucket = round(ts - ts % self.rollup_s, 3)
        closed = []
        if self._bucket is not None and bucket != self._bucket:
            closed = self._close_bucket()
        self._bucket = bucket
        for name, value in flat.items():
            acc = self._acc.get(name)
            if acc is None:
                self._acc[name] = [value, value, value, 1]
            else:
                acc[0] = min(acc[0], value)
                acc[1] += value
                acc[2] = max(acc[2], value)
                acc[3] += 1
        return closed

    def _close_bucket(self) -> list:
        closed = [(self._bucket, name, a[0], a[1] / a[3], a[2], a[3]) for name, a in self._acc.items()]
        self._acc = {}
        return closed

    def prune(self) -> None:
        """Enforce retention by what is stored (the writer does this every ``prune_every_s``).

        Full-resolution samples: the newest ``keep_samples`` in the order written, so a
        clock step forward does not wipe them and one backward is not pruned first."""
        with self._write_lock:
            conn = self._conn
            conn.execute("BEGIN")
            try:
                cut = conn.execute("SELECT MAX(id) FROM samples").fetchone()[0]
                if cut is not None and cut > self.keep_samples:
                    conn.execute("DELETE FROM points WHERE sample <= ?", (cut - self.keep_samples,))
                    conn.execute("DELETE FROM samples WHERE id <= ?", (cut - self.keep_samples,))
                oldest_bucket = conn.execute("SELECT bucket FROM (SELECT DISTINCT bucket FROM rollups) "
                                             "ORDER BY bucket DESC LIMIT 1 OFFSET ?", (self.keep_buckets,)).fetchone()
                if oldest_bucket is not None:
                    conn.execute("DELETE FROM rollups WHERE bucket <= ?", oldest_bucket)
                conn.execute("DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?", (self.max_events,))
                over = conn.execute(
                    "SELECT id FROM (SELECT id, SUM(LENGTH(message) + LENGTH(source) + COALESCE(LENGTH(data), 0) + 80) "
                    "OVER (ORDER BY id DESC) AS total FROM events) WHERE total > ? ORDER BY id DESC LIMIT 1",
                    (self.max_event_bytes,)).fetchone()
                if over is not None:
                    conn.execute("DELETE FROM events WHERE id <= ?", over)
                conn.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # --- faults -------------------------------------------------------------------

    def _check_file(self) -> None:
        """Refuse to write into a file that was deleted or replaced under us: its data
        would vanish at the next start. (One stat per write: about a microsecond.)"""
        if self.gone is None and _file_identity(self.path) != self._identity:
            self.gone = ("the database file %s was deleted or replaced while the dashboard ran; "
                         "restart the dashboard" % self.path)
            log.error("%s", self.gone)
        if self.gone is not None:
            raise StorageError(self.gone)

    def _log_once(self, key: str, message: str, *args: Any, exc_info: bool = False) -> None:
        if key not in self._logged and len(self._logged) < 100:
            self._logged.add(key)
            log.error(message, *args, exc_info=exc_info)

    # --- reading ------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        # A URI, so the connection can be read-only; quoted, so spaces, '#' and '?' in a
        # folder name (C:\Users\Jane Doe\...) survive.
        uri = "file:%s?mode=ro" % urllib.parse.quote(self.path.as_posix())
        # Not tied to a thread: an export abandoned mid-way may be closed by the garbage
        # collector in another thread, and that close must not fail.
        return sqlite3.connect(uri, uri=True, timeout=10, check_same_thread=False)

    def _query(self, sql: str, args: Any) -> list:
        conn = self._reader()
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()

    def _read_one(self, sql: str) -> Any:
        return self._query(sql, ())[0][0]

    def _iterate(self, sql: str, args: Any, chunk: int = 500) -> Iterator[tuple]:
        conn = self._reader()
        try:
            cursor = conn.execute(sql, args)
            while True:
                rows = cursor.fetchmany(chunk)
                if not rows:
                    return
                yield from rows
        finally:
            conn.close()


def _group(rows: Iterator[tuple], names: dict[int, str]) -> Iterator[tuple[float, dict]]:
    """(row key, ts, series id, value) rows, grouped by key, as (ts, {name: value}) rows."""
    key, current = None, None
    for row_key, ts, series, value in rows:
        name = names.get(series)
        if name is None:
            continue  # deleted while we read
        if current is None or key != row_key:
            if current is not None:
                yield current
            key, current = row_key, (ts, {})
        current[1][name] = value
    if current is not None:
        yield current


def _file_identity(path: Path) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _describe(exc: BaseException) -> str:
    """A storage error in words a person acts on ("disk full"), not SQLite's alone."""
    text = str(exc)
    if isinstance(exc, sqlite3.Error) and "full" in text:
        return "disk full (%s)" % text
    return text


EVENT_COLUMNS = "id, ts, level, source, message, data, type"


def _event(row: tuple) -> Event:
    event_id, ts, level, source, message, data, event_type = row
    return make_event(event_id, ts, level, source, message, data, event_type)
