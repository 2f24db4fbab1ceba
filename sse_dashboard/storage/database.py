"""The SQLite file itself: opening it, the data folder's lock, migrations, a corrupt file moved
aside, and the faults every write checks.

One concept: the database as a file on disk, shared by the tables' owners (``events``,
``metric_state``, ``history``) through one ``Database``.

Invariants:
- a data directory is used by one dashboard at a time (an OS file lock, released when the
  process dies, even by kill -9); a second one is told where the first runs (``DataDirInUse``);
- migrations only go forward, one transaction per step, so a failed one leaves the previous
  version intact; a file from a newer sse-dashboard is refused, never downgraded;
- a file SQLite cannot read is moved aside (``*.corrupt-<time>``) and replaced, and that is
  logged: it is never silently lost;
- the file is checked against the one opened before every write: deleted or replaced while
  running, every write is refused (``StorageError``), never lost silently;
- one connection writes, behind ``write_lock``; each read opens a read-only connection of its
  own, so a long export never holds up the writer.

Intentional choices: SQLite's WAL mode with ``synchronous=NORMAL``: a commit survives the
process being killed (the OS has the pages); only a power cut can lose the last commits.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any, Iterator

from sse_dashboard.storage import codec
from sse_dashboard.storage.chunks import pack_sample
from sse_dashboard.storage.summaries import decode_summary_scaled, encode_group, encode_summary, runs_of

__all__ = ["Database", "StorageError", "DataDirInUse", "open_database", "describe", "DB_FILENAME",
           "LOCK_FILENAME", "URL_FILENAME", "MIGRATIONS"]

log = logging.getLogger(__name__)

DB_FILENAME = "dashboard.sqlite3"
LOCK_FILENAME = "dashboard.lock"
URL_FILENAME = "dashboard.url"
BUSY_TIMEOUT_MS = 10_000  # how long a statement waits for another connection's lock
# A new file's pages (an existing one keeps its own: SQLite fixes it at creation, and changing it
# means rewriting the whole file). An empty store is ~20 pages of schema and empty tables and
# indexes: 1 KiB pages make that ~20 KiB, not ~100, most of what a few series cost an hour; the
# writer's CPU and a read of 1,000 series measured the same (bench/RESULTS-history-size.md).
PAGE_SIZE = 1024

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
    # 5: older samples compacted per series (storage/chunks.py, codec format 1); the staged rows
    # of an upgraded folder move into chunks as the writer goes on.
    """
    CREATE TABLE chunks (series INTEGER NOT NULL, first REAL NOT NULL, last REAL NOT NULL, upto INTEGER NOT NULL,
                         n INTEGER NOT NULL, ts BLOB NOT NULL, vals BLOB NOT NULL,
                         PRIMARY KEY (series, upto)) WITHOUT ROWID;
    CREATE INDEX chunks_last ON chunks (last);
    CREATE INDEX chunks_upto ON chunks (upto);
    """,
    # 6: staged samples one packed row each; chunks in groups that share their timestamps and
    # are joined as they age; roll-ups made from what retention drops; series ids never reused
    # (storage/chunks.py). The v5 rows are converted in place (_convert_v5_history). Chunks have
    # rowids: a row of a WITHOUT ROWID table longer than about 1 KB spills into a whole overflow
    # page, and an hour of a noisy series is longer (bench/RESULTS-history-size.md).
    """
    CREATE TABLE staged (id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, vals BLOB NOT NULL);
    CREATE TABLE groups (upto INTEGER PRIMARY KEY, first REAL NOT NULL, last REAL NOT NULL, n INTEGER NOT NULL,
                         ts BLOB NOT NULL);
    ALTER TABLE chunks RENAME TO chunks_v5;
    CREATE TABLE chunks (upto INTEGER NOT NULL, series INTEGER NOT NULL, vals BLOB NOT NULL);
    CREATE UNIQUE INDEX chunks_at ON chunks (upto, series);
    CREATE TABLE series_v6 (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE);
    INSERT INTO series_v6 SELECT id, name FROM series;
    DROP TABLE series;
    ALTER TABLE series_v6 RENAME TO series;
    """,
    # 7: job monitors (storage/jobs.py): each job's state, and its newest runs with their output.
    """
    CREATE TABLE jobs (id TEXT PRIMARY KEY, state TEXT NOT NULL);
    CREATE TABLE job_runs (job TEXT NOT NULL, n INTEGER NOT NULL, data TEXT NOT NULL);
    CREATE UNIQUE INDEX job_runs_at ON job_runs (job, n);
    """,
    # 8: each chunk's summary by 10-second slot (storage/summaries.py), so a read of wide buckets
    # reads those; the chunks already there get theirs in the same step (_summarize_chunks).
    """
    ALTER TABLE chunks ADD COLUMN summary BLOB;
    """,
    # 9: a group's summaries in one value (storage/summaries.py, format 2), read in a few calls
    # rather than a few a series; the chunks' own (format 1) move there (_group_summaries), and
    # chunks.summary stays, empty (dropping a column rewrites the table, and SQLite before 3.35
    # cannot).
    """
    ALTER TABLE groups ADD COLUMN summaries BLOB;
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


def _convert_v5_history(conn: sqlite3.Connection) -> None:
    """v5's staged rows (a row a value) as packed rows, and its chunks (a row a series, each with
    its own timestamps) as groups sharing theirs, one a compaction (``upto``)."""
    current, values = None, {}
    for sample, ts, series, value in conn.execute(
            "SELECT s.id, s.ts, p.series, p.value FROM samples s JOIN points p ON p.sample = s.id ORDER BY s.id"):
        if current is not None and sample != current[0]:
            conn.execute("INSERT INTO staged (id, ts, vals) VALUES (?, ?, ?)", current + (pack_sample(values),))
            values = {}
        current = (sample, ts)
        values[series] = value
    if current is not None:
        conn.execute("INSERT INTO staged (id, ts, vals) VALUES (?, ?, ?)", current + (pack_sample(values),))
    for (upto,) in conn.execute("SELECT DISTINCT upto FROM chunks_v5 ORDER BY upto").fetchall():
        by_series = {}
        for series, ts, vals in conn.execute("SELECT series, ts, vals FROM chunks_v5 WHERE upto = ?", (upto,)):
            by_series[series] = dict(zip(codec.decode(ts), codec.decode(vals)))
        times = sorted({ts for values in by_series.values() for ts in values})
        conn.execute("INSERT INTO groups (upto, first, last, n, ts) VALUES (?, ?, ?, ?, ?)",
                     (upto, times[0], times[-1], len(times), codec.encode(times)))
        conn.executemany("INSERT INTO chunks (upto, series, vals) VALUES (?, ?, ?)",
                         [(upto, series, codec.encode([values.get(ts) for ts in times]))
                          for series, values in by_series.items()])
    conn.execute("DROP TABLE chunks_v5")
    conn.execute("DROP TABLE points")
    conn.execute("DROP TABLE samples")
    # Schema 6 rolls up what retention drops; before, every minute was rolled up as it ended, so
    # the minutes of samples still kept go, or they would count twice when those are dropped.
    ((first,),) = conn.execute("SELECT MIN(m) FROM (SELECT MIN(first) AS m FROM groups UNION ALL "
                               "SELECT MIN(ts) FROM staged)").fetchall()
    if first is not None:
        conn.execute("DELETE FROM rollups WHERE bucket > ?", (first - 60,))


def _summarize_chunks(conn: sqlite3.Connection) -> None:
    """Schema 8: the summaries of the chunks written before (a group at a time: an hour of 1,000
    series takes a few seconds, once)."""
    for upto, ts in conn.execute("SELECT upto, ts FROM groups").fetchall():
        runs = runs_of(codec.decode(ts))
        rows = conn.execute("SELECT series, vals FROM chunks WHERE upto = ?", (upto,)).fetchall()
        updates = []
        for series, vals in rows:
            values = codec.decode(vals)
            scale = codec.encode_with_scale(values)[1]  # (the scale is not stored apart: found again)
            updates.append((encode_summary(values, runs, len(vals), scale), upto, series))
        conn.executemany("UPDATE chunks SET summary = ? WHERE upto = ? AND series = ?", updates)


def _group_summaries(conn: sqlite3.Connection) -> None:
    """Schema 9: each group's chunk summaries (format 1) as the group's (format 2), in the
    integers the values are stored as (a summary that has none is left out: its values are read)."""
    for upto, ts in conn.execute("SELECT upto, ts FROM groups").fetchall():
        kept = {}
        for series, summary in conn.execute("SELECT series, summary FROM chunks WHERE upto = ? AND summary IS NOT NULL",
                                            (upto,)).fetchall():
            scaled = decode_summary_scaled(summary)
            if scaled is not None:
                kept[series] = scaled
        conn.execute("UPDATE groups SET summaries = ? WHERE upto = ?",
                     (encode_group(kept.items(), runs_of(codec.decode(ts))), upto))
        conn.execute("UPDATE chunks SET summary = NULL WHERE upto = ?", (upto,))


AFTER_MIGRATION = {1: _convert_v1_samples, 5: _convert_v5_history, 7: _summarize_chunks, 8: _group_summaries}


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
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA page_size = %d" % PAGE_SIZE)  # (before WAL: a file in WAL mode keeps its size)
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


def open_database(data_dir: str | Path, max_bytes: int | None = None) -> Database:
    """Open (creating and migrating if needed) the database in ``data_dir``, holding its lock;
    ``StorageError`` says why not. ``max_bytes`` caps the file: past it SQLite says "database
    or disk is full", exactly as a full disk would."""
    directory = Path(data_dir)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        lock = _DirLock(directory / LOCK_FILENAME)
    except OSError as exc:
        raise StorageError("cannot use the data directory %s: %s" % (directory, exc.strerror or exc)) from None
    path = directory / DB_FILENAME
    try:
        conn = _open_checked(path)
        _migrate(conn)
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('epoch', ?)", (os.urandom(6).hex(),))
        if max_bytes is not None:
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            conn.execute("PRAGMA max_page_count = %d" % max(1, max_bytes // page_size))
        return Database(path, conn, lock)
    except sqlite3.Error as exc:
        lock.release()
        raise StorageError("cannot use %s: %s" % (path, exc)) from None
    except StorageError:
        lock.release()
        raise


class Database:
    """The open file: the one writing connection (take ``write_lock`` around every use), a
    read-only connection per read, and why writes fail (``last_error``, ``gone``).

    >>> database = open_database("data")
    >>> database.query("SELECT COUNT(*) FROM events", ())
    [(0,)]
    >>> database.close()

    The tables' owners (``EventTable``, ``MetricState``, ``StoredHistory``) share one; use
    ``open_store()`` for the whole store.
    """

    def __init__(self, path: Path, conn: sqlite3.Connection, lock: _DirLock) -> None:
        self.path = path
        self.conn = conn                      # the one writing connection
        self.write_lock = threading.Lock()
        self._dir_lock = lock
        self._identity = _file_identity(path)
        self._logged: set[str] = set()
        self.last_error: str | None = None    # the last write's failure, cleared by a success
        self.gone: str | None = None          # set once the file on disk is no longer ours
        self.epoch = conn.execute("SELECT value FROM meta WHERE key='epoch'").fetchone()[0]

    def announce(self, url: str) -> None:
        """Record this dashboard's URL beside the lock (see ``DataDirInUse``)."""
        self._dir_lock.announce(url)

    def problem(self) -> str | None:
        """Why writes fail right now (for /api/health and 503s), or None."""
        return self.gone or self.last_error

    def close(self) -> None:
        """Close the writing connection and let the data directory go."""
        with self.write_lock:
            self.conn.close()
        self._dir_lock.release()

    # --- faults ---------------------------------------------------------------------

    def check_file(self) -> None:
        """Refuse to write into a file that was deleted or replaced under us: its data
        would vanish at the next start. (One stat per write: about a microsecond.)"""
        if self.gone is None and _file_identity(self.path) != self._identity:
            self.gone = ("the database file %s was deleted or replaced while the dashboard ran; "
                         "restart the dashboard" % self.path)
            log.error("%s", self.gone)
        if self.gone is not None:
            raise StorageError(self.gone)

    def log_once(self, logger: logging.Logger, key: str, message: str, *args: Any, exc_info: bool = False) -> None:
        """Log a failure the first time it happens (at most 100 different ones)."""
        if key not in self._logged and len(self._logged) < 100:
            self._logged.add(key)
            logger.error(message, *args, exc_info=exc_info)

    def rollback(self) -> None:
        # SQLite may already have rolled back (a full disk does): a second ROLLBACK would
        # replace the real reason with "no transaction is active".
        if self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    # --- reading ----------------------------------------------------------------------

    def reader(self) -> sqlite3.Connection:
        """A read-only connection of the caller's own."""
        # A URI, so the connection can be read-only; quoted, so spaces, '#' and '?' in a
        # folder name (C:\Users\Jane Doe\...) survive.
        uri = "file:%s?mode=ro" % urllib.parse.quote(self.path.as_posix())
        # Not tied to a thread: an export abandoned mid-way may be closed by the garbage
        # collector in another thread, and that close must not fail.
        return sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)

    def query(self, sql: str, args: Any) -> list:
        """Every row of one query, on a connection of its own."""
        conn = self.reader()
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction under the storage lock: committed when the block ends, rolled
        back when it raises (whatever it raises: nothing half-written stays open)."""
        with self.write_lock:
            conn = self.conn
            conn.execute("BEGIN")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                self.rollback()
                raise

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read-only connection inside one read transaction: every query on it sees the file
        as it was at the first one (WAL), so a read of several tables is never torn by a write
        that moves rows from one to another meanwhile (history's compaction)."""
        conn = self.reader()
        try:
            conn.execute("BEGIN")
            yield conn
        finally:
            conn.close()

    def read_one(self, sql: str) -> Any:
        return self.query(sql, ())[0][0]

    def iterate(self, sql: str, args: Any, chunk: int = 500) -> Iterator[tuple]:
        """The rows of one query, read ``chunk`` at a time (an export of a week never sits in memory)."""
        conn = self.reader()
        try:
            cursor = conn.execute(sql, args)
            while True:
                rows = cursor.fetchmany(chunk)
                if not rows:
                    return
                yield from rows
        finally:
            conn.close()


def _file_identity(path: Path) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def describe(exc: BaseException) -> str:
    """A storage error in words a person acts on ("disk full"), not SQLite's alone."""
    text = str(exc)
    if isinstance(exc, sqlite3.Error) and "full" in text:
        return "disk full (%s)" % text
    return text
