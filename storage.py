"""Durable storage in one SQLite file: events, counter totals, and the metrics history.

One concept: what must survive a restart.

Invariants:
- an event is committed before ``insert_event()`` returns (the server answers
  201 only after that); ids come from the event log and are never reused;
- samples reach the disk from one writer thread through a bounded queue, so a
  slow disk delays storage, never sampling or the streams (when the queue is
  full the oldest waiting sample is dropped and counted);
- retention is enforced by the writer: full-resolution samples for
  ``full_s``, roll-ups (min/avg/max per ``rollup_s`` bucket) for
  ``rollup_keep_s``, and at most ``max_events`` events, so the file stops
  growing once the windows are full;
- a data directory is used by one dashboard at a time (an OS file lock,
  released when the process dies, even by kill -9);
- a file SQLite cannot read is moved aside (``*.corrupt-<time>``) and
  replaced, and that is logged: it is never silently lost.

Intentional choices: SQLite's WAL mode with ``synchronous=NORMAL``: a commit
survives the process being killed (the OS has the pages); only a power cut can
lose the last commits. Each request that reads opens its own connection, so a
long export never holds up the writer.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import sqlite3
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any, Iterator

from events import Event, make_event

__all__ = ["Store", "StorageError", "open_store", "DB_FILENAME"]

log = logging.getLogger(__name__)

DB_FILENAME = "dashboard.sqlite3"
LOCK_FILENAME = "dashboard.lock"
DEFAULT_FULL_S = 3600.0            # full resolution for an hour
DEFAULT_ROLLUP_S = 60.0            # one-minute roll-ups ...
DEFAULT_ROLLUP_KEEP_S = 7 * 86400.0  # ... for a week
DEFAULT_MAX_STORED_EVENTS = 100_000
WRITE_QUEUE_SAMPLES = 600
PRUNE_EVERY_S = 30.0

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
]


class StorageError(Exception):
    """Storage cannot do what was asked; the message is for a person."""


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
            raise StorageError("the data directory %s is in use by another dashboard" % path.parent) from None

    def release(self) -> None:
        self._file.close()


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
            conn.executescript("BEGIN IMMEDIATE;" + MIGRATIONS[step] +
                               "DELETE FROM schema_version; INSERT INTO schema_version VALUES (%d); COMMIT;" % (step + 1))
        except sqlite3.Error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        log.info("storage schema migrated to version %d", step + 1)
    return len(MIGRATIONS)


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
    >>> store.start()
    >>> events = EventLog(persist=store.insert_event, initial=store.recent_events(1000),
    ...                   last_id=store.last_event_id())
    """

    def __init__(self, path: Path, conn: sqlite3.Connection, lock: _DirLock,
                 full_s: float = DEFAULT_FULL_S, rollup_s: float = DEFAULT_ROLLUP_S,
                 rollup_keep_s: float = DEFAULT_ROLLUP_KEEP_S,
                 max_events: int = DEFAULT_MAX_STORED_EVENTS, prune_every_s: float = PRUNE_EVERY_S,
                 max_bytes: int | None = None) -> None:
        self.path = path
        self.full_s = full_s
        self.rollup_s = rollup_s
        self.rollup_keep_s = rollup_keep_s
        self.max_events = max_events
        self.prune_every_s = prune_every_s
        self._conn = conn               # the one writing connection
        self._write_lock = threading.Lock()
        self._dir_lock = lock
        self._queue: queue.Queue = queue.Queue(WRITE_QUEUE_SAMPLES)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._bucket: float | None = None
        self._acc: dict[str, list[float]] = {}   # name -> [min, sum, max, n] for the open bucket
        self.dropped_samples = 0
        self.last_error: str | None = None
        self.epoch = conn.execute("SELECT value FROM meta WHERE key='epoch'").fetchone()[0]
        if max_bytes is not None:
            # A hard cap on the file: past it SQLite says "database or disk is full",
            # exactly as a full disk would.
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            conn.execute("PRAGMA max_page_count = %d" % max(1, max_bytes // page_size))

    # --- events --------------------------------------------------------------

    def insert_event(self, event: Event) -> None:
        """Commit one event; ``StorageError`` if the disk will not take it."""
        try:
            with self._write_lock:
                self._conn.execute(
                    "INSERT INTO events (id, ts, level, source, message, data) VALUES (?, ?, ?, ?, ?, ?)",
                    (event.id, event.ts, event.level, event.source, event.message,
                     None if event.data is None else json.dumps(event.data, ensure_ascii=False)))
            self.last_error = None
        except sqlite3.Error as exc:
            self.last_error = str(exc)
            log.warning("could not store event %d: %s", event.id, exc)
            raise StorageError("events cannot be stored right now: %s" % exc) from None

    def last_event_id(self) -> int:
        return self._read_one("SELECT COALESCE(MAX(id), 0) FROM events")

    def recent_events(self, limit: int) -> list[Event]:
        rows = self._query("SELECT id, ts, level, source, message, data FROM events ORDER BY id DESC LIMIT ?",
                           (limit,))
        return [_event(row) for row in reversed(rows)]

    def iter_events(self, after_id: int = 0, start: float | None = None, end: float | None = None,
                    level: str | None = None, limit: int | None = None) -> Iterator[Event]:
        """Events oldest first, read in chunks from a connection of the caller's own."""
        sql = "SELECT id, ts, level, source, message, data FROM events WHERE id > ?"
        args: list[Any] = [after_id]
        for clause, value in (("ts >= ?", start), ("ts <= ?", end), ("level = ?", level)):
            if value is not None:
                sql += " AND " + clause
                args.append(value)
        sql += " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        for row in self._iterate(sql, args):
            yield _event(row)

    # --- counters and samples -------------------------------------------------

    def counters(self) -> dict[str, float]:
        return dict(self._query("SELECT name, value FROM counters", ()))

    def enqueue_sample(self, ts: float, flat: dict, counters: dict) -> None:
        """Hand a sample to the writer thread without waiting (the sampler calls this)."""
        item = (ts, flat, counters)
        while True:
            try:
                self._queue.put_nowait(item)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.dropped_samples += 1
                except queue.Empty:
                    pass

    def history_columns(self, start: float, end: float) -> dict:
        """Columns like ``History.columns()``: full resolution when the window is kept, else roll-ups."""
        # (a second of slack: "the last hour" asked for a moment ago is still the last hour)
        if start >= time.time() - self.full_s - 1.0:
            rows = [(ts, json.loads(series)) for ts, series in self._query(
                "SELECT ts, series FROM samples WHERE ts >= ? AND ts <= ? ORDER BY ts", (start, end))]
            resolution = "full"
        else:
            by_bucket: dict[float, dict] = {}
            for bucket, name, avg in self._query(
                    "SELECT bucket, name, avg FROM rollups WHERE bucket >= ? AND bucket <= ? ORDER BY bucket",
                    (start - self.rollup_s, end)):
                by_bucket.setdefault(bucket, {})[name] = avg
            rows = sorted(by_bucket.items())
            resolution = "rollup"
        names = sorted({name for _, flat in rows for name in flat})
        return {"ts": [ts for ts, _ in rows],
                "series": {name: [flat.get(name) for _, flat in rows] for name in names},
                "resolution": resolution}

    def iter_history_rows(self, start: float, end: float) -> Iterator[tuple[float, dict]]:
        """Full-resolution rows where kept, roll-up averages before that, oldest first, in chunks."""
        full_from = time.time() - self.full_s
        if start < full_from:
            current: tuple[float, dict] | None = None
            for bucket, name, avg in self._iterate(
                    "SELECT bucket, name, avg FROM rollups WHERE bucket >= ? AND bucket < ? ORDER BY bucket",
                    (start, min(end, full_from))):
                if current is None or current[0] != bucket:
                    if current is not None:
                        yield current
                    current = (bucket, {})
                current[1][name] = avg
            if current is not None:
                yield current
        for ts, series in self._iterate("SELECT ts, series FROM samples WHERE ts >= ? AND ts <= ? ORDER BY ts",
                                        (max(start, full_from), end)):
            yield ts, json.loads(series)

    # --- the writer thread ------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="storage-writer", daemon=True)
        self._thread.start()

    def close(self, timeout_s: float = 5.0) -> None:
        """Write what is queued, stop the writer, and let the data directory go."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
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
            try:
                self._write_samples(batch)
                if time.monotonic() - last_prune > self.prune_every_s:
                    self.prune()
                    last_prune = time.monotonic()
                self.last_error = None
            except sqlite3.Error as exc:
                self.last_error = str(exc)
                log.warning("could not store %d sample(s): %s", len(batch), exc)
            finally:
                for _ in batch:
                    self._queue.task_done()

    def _write_samples(self, batch: list) -> None:
        rollups = []
        for ts, flat, _ in batch:
            rollups.extend(self._accumulate(ts, flat))
        counters = batch[-1][2]
        with self._write_lock:
            self._conn.execute("BEGIN")
            try:
                self._conn.executemany("INSERT OR REPLACE INTO samples (ts, series) VALUES (?, ?)",
                                       [(ts, json.dumps(flat, separators=(",", ":"))) for ts, flat, _ in batch])
                self._conn.executemany("INSERT OR REPLACE INTO counters (name, value) VALUES (?, ?)",
                                       list(counters.items()))
                self._conn.executemany("INSERT OR REPLACE INTO rollups VALUES (?, ?, ?, ?, ?, ?)", rollups)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def _accumulate(self, ts: float, flat: dict) -> list:
        """Fold a sample into the open bucket; return the rows of a bucket that just closed."""
        bucket = round(ts - ts % self.rollup_s, 3)
        closed = []
        if self._bucket is not None and bucket != self._bucket:
            closed = [(self._bucket, name, a[0], a[1] / a[3], a[2], a[3]) for name, a in self._acc.items()]
            self._acc = {}
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

    def prune(self) -> None:
        """Enforce retention (the writer does this every ``prune_every_s``)."""
        now = time.time()
        with self._write_lock:
            self._conn.execute("DELETE FROM samples WHERE ts < ?", (now - self.full_s,))
            self._conn.execute("DELETE FROM rollups WHERE bucket < ?", (now - self.rollup_keep_s,))
            self._conn.execute("DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?", (self.max_events,))
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # --- reading ------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        # A URI, so the connection can be read-only; quoted, so spaces, '#' and '?' in a
        # folder name (C:\Users\Jane Doe\...) survive.
        uri = "file:%s?mode=ro" % urllib.parse.quote(self.path.as_posix())
        return sqlite3.connect(uri, uri=True, timeout=10)

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


def _event(row: tuple) -> Event:
    event_id, ts, level, source, message, data = row
    return make_event(event_id, ts, level, source, message, None if data is None else json.loads(data))
