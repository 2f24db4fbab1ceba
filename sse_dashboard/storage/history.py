"""The metrics history on disk: every sample at full resolution for a while, then roll-ups.

One concept: samples going to disk (one writer thread) and coming back as columns or rows.

Invariants:
- samples reach the disk from one writer thread through a bounded queue, so a slow disk
  delays storage, never sampling or the streams (when the queue is full the oldest waiting
  sample is dropped and counted in ``dropped_samples``);
- the writer thread never dies: any failure is logged once, shown as ``last_error``
  (``/api/health``) and retried with the next sample;
- a clean ``close()`` writes the open roll-up bucket; a hard kill loses at most the samples
  still queued for the writer (history, never acknowledged state);
- series names are stored once (``series``), points refer to them by id;
- retention is enforced by the writer by what is stored, not by the wall clock alone (a clock
  step must not wipe or overwrite history): the newest ``full_s / interval_s`` samples at full
  resolution, roll-ups (min/avg/max per ``rollup_s`` bucket, merged, never replaced) for
  ``rollup_keep_s``; the other tables' retention (``prune_also``) runs in the same pass.
"""

from __future__ import annotations

import heapq
import logging
import math
import queue
import sqlite3
import threading
import time
from typing import Callable, Iterable, Iterator

from sse_dashboard.storage.chunks import chunk_values, compact
from sse_dashboard.storage.database import Database, StorageError, describe

__all__ = ["StoredHistory", "DEFAULT_FULL_S", "DEFAULT_ROLLUP_S", "DEFAULT_ROLLUP_KEEP_S", "DEFAULT_INTERVAL_S"]

log = logging.getLogger(__name__)

DEFAULT_FULL_S = 3600.0              # full resolution for an hour
DEFAULT_ROLLUP_S = 60.0              # one-minute roll-ups ...
DEFAULT_ROLLUP_KEEP_S = 7 * 86400.0  # ... for a week
DEFAULT_INTERVAL_S = 1.0
WRITE_QUEUE_SAMPLES = 600
PRUNE_EVERY_S = 30.0


class StoredHistory:
    """The samples and roll-ups of one ``Database``, with the thread that writes them.

    >>> history = StoredHistory(database, interval_s=1.0)
    >>> history.start()
    >>> history.enqueue(time.time(), {"system.cpu_percent": 3.5})   # never waits
    >>> history.columns(time.time() - 300, time.time())
    >>> history.close()

    ``prune_also``: the other tables' retention, ``step(conn)``, run inside the same
    transaction as this one's (the events' count and size).
    """

    def __init__(self, database: Database, full_s: float = DEFAULT_FULL_S, rollup_s: float = DEFAULT_ROLLUP_S,
                 rollup_keep_s: float = DEFAULT_ROLLUP_KEEP_S, interval_s: float = DEFAULT_INTERVAL_S,
                 prune_every_s: float = PRUNE_EVERY_S,
                 prune_also: Iterable[Callable[[sqlite3.Connection], None]] = ()) -> None:
        self._db = database
        self.full_s = full_s
        self.rollup_s = rollup_s
        self.rollup_keep_s = rollup_keep_s
        self.prune_every_s = prune_every_s
        self.keep_samples = max(2, int(math.ceil(full_s / interval_s)) + 1)
        self.keep_buckets = max(2, int(math.ceil(rollup_keep_s / rollup_s)) + 1)
        self._prune_also = tuple(prune_also)
        self._queue: queue.Queue = queue.Queue(WRITE_QUEUE_SAMPLES)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._bucket: float | None = None
        self._acc: dict[str, list[float]] = {}   # name -> [min, sum, max, n] for the open bucket
        self._series: dict[str, int] = {}        # name -> id, as the series table says
        self.reload_series()
        self.dropped_samples = 0

    # --- samples in -------------------------------------------------------------------

    def enqueue(self, ts: float, flat: dict) -> None:
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

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="storage-writer", daemon=True)
        self._thread.start()

    def close(self, timeout_s: float = 5.0) -> None:
        """Write what is queued and the open roll-up bucket, and stop the writer."""
        self._stop.set()
        try:
            self._queue.put_nowait(None)  # wake the writer now, not at its next timeout
        except queue.Full:
            pass  # it is busy writing, and sees the stop when it is done
        if self._thread is not None:
            self._thread.join(timeout_s)
        try:
            self.write([], final=True)
        except Exception as exc:  # the file is gone or full: say so, the stop goes on
            log.error("could not write the last samples: %s", describe(exc))

    def flush(self, timeout_s: float = 5.0) -> None:
        """Wait until every queued sample is written (tests, and shutdown)."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def _run(self) -> None:
        db = self._db
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
                self.write(batch)
                if time.monotonic() - last_prune > self.prune_every_s:
                    self.prune()
                    last_prune = time.monotonic()
                db.last_error = None
            except Exception as exc:  # never die: say why, and try again with the next sample
                db.last_error = describe(exc)
                if db.gone is None:  # a vanished file was said once already
                    db.log_once(log, type(exc).__name__ + db.last_error,
                                "could not store %d sample(s): %s (retrying with the next one)", len(batch),
                                db.last_error, exc_info=not isinstance(exc, (sqlite3.Error, StorageError)))
            finally:
                for _ in batch:
                    self._queue.task_done()
            if self._stop.is_set() and self._queue.empty():
                return

    def write(self, batch: list, final: bool = False) -> None:
        """One transaction: the samples (``(ts, {name: value})``) and their roll-ups, now, in the
        caller's thread (the writer's; tests and benchmarks write directly)."""
        db = self._db
        db.check_file()
        with db.write_lock:
            # Put back on failure: the open bucket (folded in before the transaction) and the ids
            # of new series (handed out inside it); a kept id SQLite then gave another name would
            # show one metric's history under the other's.
            bucket_before, acc_before = self._bucket, {name: list(a) for name, a in self._acc.items()}
            rollups = []
            for ts, flat in batch:
                rollups.extend(self._accumulate(ts, flat))
            if final:
                rollups.extend(self._close_bucket())
            conn = db.conn
            conn.execute("BEGIN")
            try:
                for ts, flat in batch:
                    sample = conn.execute("INSERT INTO samples (ts) VALUES (?)", (ts,)).lastrowid
                    conn.executemany("INSERT INTO points VALUES (?, ?, ?)",
                                     [(sample, self._series_id(name), value) for name, value in flat.items()])
                conn.executemany(
                    "INSERT INTO rollups VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (bucket, series) DO UPDATE SET "
                    "min = MIN(min, excluded.min), max = MAX(max, excluded.max), "
                    "avg = (avg * n + excluded.avg * excluded.n) / (n + excluded.n), n = n + excluded.n",
                    [(bucket, self._series_id(name), lo, avg, hi, n) for bucket, name, lo, avg, hi, n in rollups])
                conn.execute("COMMIT")
            except BaseException:
                db.rollback()
                self._bucket, self._acc = bucket_before, acc_before
                self.reload_series()
                raise
        compact(db)  # the oldest staged samples into chunks: read and encoded without the lock

    def _series_id(self, name: str) -> int:
        series_id = self._series.get(name)
        if series_id is None:
            series_id = self._db.conn.execute("INSERT INTO series (name) VALUES (?)", (name,)).lastrowid
            self._series[name] = series_id
        return series_id

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

    # --- forgetting -------------------------------------------------------------------

    def forget(self, series: str) -> None:
        """A series' stored history (``counters.jobs``), inside the caller's transaction (a
        deleted counter's state goes in the same commit); then ``reload_series()``."""
        self._acc.pop(series, None)
        series_id = self._series.get(series)
        if series_id is not None:
            conn = self._db.conn
            conn.execute("DELETE FROM points WHERE series = ?", (series_id,))
            conn.execute("DELETE FROM chunks WHERE series = ?", (series_id,))
            conn.execute("DELETE FROM rollups WHERE series = ?", (series_id,))
            conn.execute("DELETE FROM series WHERE id = ?", (series_id,))

    def reload_series(self) -> None:
        """Make the names' cache say what the database says (after a commit or a rollback)."""
        self._series = dict((name, i) for i, name in self._db.conn.execute("SELECT id, name FROM series"))

    def prune(self) -> None:
        """Enforce retention by what is stored (the writer does this every ``prune_every_s``).

        Full-resolution samples: the newest ``keep_samples`` in the order written, so a
        clock step forward does not wipe them and one backward is not pruned first."""
        db = self._db
        with db.write_lock:
            conn = db.conn
            conn.execute("BEGIN")
            try:
                cut = conn.execute("SELECT MAX(id) FROM samples").fetchone()[0]
                if cut is not None and cut > self.keep_samples:
                    conn.execute("DELETE FROM points WHERE sample <= ?", (cut - self.keep_samples,))
                    conn.execute("DELETE FROM samples WHERE id <= ?", (cut - self.keep_samples,))
                    conn.execute("DELETE FROM chunks WHERE upto <= ?", (cut - self.keep_samples,))
                oldest_bucket = conn.execute("SELECT bucket FROM (SELECT DISTINCT bucket FROM rollups) "
                                             "ORDER BY bucket DESC LIMIT 1 OFFSET ?", (self.keep_buckets,)).fetchone()
                if oldest_bucket is not None:
                    conn.execute("DELETE FROM rollups WHERE bucket <= ?", oldest_bucket)
                for step in self._prune_also:
                    step(conn)
                conn.execute("COMMIT")
            except BaseException:
                db.rollback()
                raise
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # --- reading ----------------------------------------------------------------------

    def columns(self, start: float, end: float, names: list | None = None) -> dict:
        """Columns like ``History.columns()``: full resolution when the window is kept, else
        one point per roll-up bucket with ``min``/``max`` beside the averages in ``series``.

        ``interval`` is the spacing of the roll-ups returned; after the last stored bucket come
        the full-resolution samples not rolled up yet (``min`` and ``max`` are then the value
        itself), so the newest data is never missing from a long window. ``names``: only these
        series are read (a read of one series reads one series)."""
        only = self._ids_of(names)
        # (a second of slack: "the last hour" asked for a moment ago is still the last hour)
        if start >= time.time() - self.full_s - 1.0:
            rows = list(self._full_rows(start, end, only))
            names = sorted({name for _, flat in rows for name in flat})
            return {"ts": [ts for ts, _ in rows],
                    "series": {name: [flat.get(name) for _, flat in rows] for name in names},
                    "resolution": "full"}
        names_by_id = self._names()
        buckets: dict[float, dict[str, tuple]] = {}
        for bucket, series, lo, avg, hi in self._db.query(
                "SELECT bucket, series, min, avg, max FROM rollups WHERE bucket >= ? AND bucket <= ?%s ORDER BY bucket"
                % _among(only), (start - self.rollup_s, end) + tuple(only or ())):
            name = names_by_id.get(series)
            if name is not None:
                buckets.setdefault(bucket, {})[name] = (lo, avg, hi)
        # What is not rolled up yet (the open minute, a new file's first minutes) comes as its
        # full-resolution samples, so a long window ends in the latest seconds, not in one bucket
        # labelled at the start of the open minute.
        stored_until = max(buckets) + self.rollup_s if buckets else start
        recent = list(self._full_rows(max(start, stored_until), end, only))
        order = sorted(buckets)
        names = sorted({name for values in buckets.values() for name in values}
                       | {name for _, flat in recent for name in flat})

        def column(i: int, name: str) -> list:
            return ([buckets[b][name][i] if name in buckets[b] else None for b in order]
                    + [flat.get(name) for _, flat in recent])

        return {"ts": order + [ts for ts, _ in recent], "series": {name: column(1, name) for name in names},
                "min": {name: column(0, name) for name in names},
                "max": {name: column(2, name) for name in names},
                "resolution": "rollup", "interval": self.rollup_s}

    def rows(self, start: float, end: float) -> Iterator[tuple[float, dict]]:
        """Full-resolution rows where kept, roll-up averages before that, oldest first, in chunks."""
        full_from = time.time() - self.full_s
        if start < full_from:
            yield from self._rollup_rows(start, min(end, full_from))
        yield from self._full_rows(max(start, full_from), end)

    def _names(self) -> dict[int, str]:
        return dict(self._db.query("SELECT id, name FROM series", ()))

    def _full_rows(self, start: float, end: float, only: list | None = None) -> Iterator[tuple[float, dict]]:
        """Every sample in the window, oldest first: the chunked ones, then the staged rows."""
        names = self._names()
        chunked: dict[float, dict] = {}
        for ts, series, value in chunk_values(self._db.iterate, start, end, _among(only), tuple(only or ())):
            name = names.get(series)
            if name is not None:
                chunked.setdefault(ts, {})[name] = value
        staged = _group(self._db.iterate(
            "SELECT s.id, s.ts, p.series, p.value FROM samples s JOIN points p ON p.sample = s.id "
            "WHERE s.ts >= ? AND s.ts <= ?%s ORDER BY s.ts, s.id" % _among(only, "p.series"),
            (start, end) + tuple(only or ())), names)
        yield from heapq.merge(sorted(chunked.items(), key=lambda row: row[0]), staged, key=lambda row: row[0])

    def _ids_of(self, names: list | None) -> list | None:
        """The series ids of ``names`` (None: every series)."""
        if names is None:
            return None
        return [row[0] for row in self._db.query(
            "SELECT id FROM series WHERE name IN (%s)" % ", ".join("?" * len(names)), tuple(names))] if names else []

    def _rollup_rows(self, start: float, end: float) -> Iterator[tuple[float, dict]]:
        names = self._names()
        yield from _group(self._db.iterate(
            "SELECT bucket, bucket, series, avg FROM rollups WHERE bucket >= ? AND bucket < ? ORDER BY bucket",
            (start, end)), names)


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


def _among(ids: list | None, column: str = "series") -> str:
    """The SQL that keeps only ``ids`` (their values go after the query's own arguments)."""
    if ids is None:
        return ""
    return " AND %s IN (%s)" % (column, ", ".join("?" * len(ids))) if ids else " AND 0"
