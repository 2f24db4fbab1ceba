"""The metrics history on disk: every sample at full resolution for a while, then roll-ups.

One concept: samples going to disk (one writer thread) and coming back as columns or rows.

Invariants:
- samples reach the disk from one writer thread through a bounded queue, so a slow disk
  delays storage, never sampling or the streams (when the queue is full the oldest waiting
  sample is dropped and counted in ``dropped_samples``);
- the writer thread never dies: any failure is logged once, shown as ``last_error``
  (``/api/health``) and retried with the next sample;
- a write is one transaction of one staged row a sample (``storage.chunks``), so a hard kill
  loses at most the samples still queued for the writer (history, never acknowledged state);
- series names are stored once (``series``), samples refer to them by id;
- retention is enforced by the writer by what is stored, not by the wall clock alone (a clock
  step must not wipe or overwrite history): the newest ``full_s / interval_s`` samples at full
  resolution; what retention drops becomes roll-ups (min/avg/max per ``rollup_s`` bucket,
  merged, never replaced) in the same transaction, kept for ``rollup_keep_s``; the other
  tables' retention (``prune_also``) runs in the same pass.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import queue
import sqlite3
import sys
import threading
import time
from typing import Any, Callable, Iterable, Iterator

from sse_dashboard.storage import codec
from sse_dashboard.storage.buckets import Buckets, read_buckets
from sse_dashboard.storage.chunks import (CHUNK_SAMPLES, JOIN_GROUPS, blocks, compact, join, pack_sample, staged_most,
                                          unpack_sample)
from sse_dashboard.storage.database import BUSY_TIMEOUT_MS, Database, StorageError, describe
from sse_dashboard.storage.memory import finite_mean

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
        # Retention drops whole groups: a group at most a quarter of what is kept keeps at most a
        # quarter more than asked for.
        self.longest_group = min(JOIN_GROUPS * CHUNK_SAMPLES, self.keep_samples // 4)
        # One mover at a time (the writer; a test or a tool may prune from another thread): what a
        # move reads without the storage lock must not be moved by another meanwhile.
        self._moving = threading.Lock()
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
        """Write what is queued, and stop the writer."""
        self._stop.set()
        try:
            self._queue.put_nowait(None)  # wake the writer now, not at its next timeout
        except queue.Full:
            pass  # it is busy writing, and sees the stop when it is done
        if self._thread is not None:
            self._thread.join(timeout_s)

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

    def write(self, batch: list) -> None:
        """One transaction: the samples (``(ts, {name: value})``), one staged row each, now, in
        the caller's thread (the writer's; tests and benchmarks write directly); then the oldest
        staged samples move into chunk groups (``storage.chunks``)."""
        db = self._db
        db.check_file()
        with db.write_lock:
            conn = db.conn
            conn.execute("BEGIN")
            try:
                conn.executemany("INSERT INTO staged (ts, vals) VALUES (?, ?)",
                                 [(ts, self._pack(flat)) for ts, flat in batch if flat])
                conn.execute("COMMIT")
            except BaseException:
                db.rollback()
                # The ids of new series were handed out inside the transaction: a kept id SQLite
                # then gave another name would show one metric's history under the other's.
                self.reload_series()
                raise
        with self._moving:
            compact(db, most=staged_most(self.keep_samples))  # read and encoded without the lock, swapped under it
            join(db, longest=self.longest_group)

    def _pack(self, flat: dict) -> bytes:
        return pack_sample({self._series_id(name): value for name, value in flat.items()})

    def _series_id(self, name: str) -> int:
        series_id = self._series.get(name)
        if series_id is None:
            series_id = self._db.conn.execute("INSERT INTO series (name) VALUES (?)", (name,)).lastrowid
            self._series[name] = series_id
        return series_id

    # --- forgetting -------------------------------------------------------------------

    def forget(self, series: str) -> None:
        """A series' stored history (``counters.jobs``), inside the caller's transaction (a
        deleted counter's state goes in the same commit); then ``reload_series()``. Its values
        in staged rows stay until they move: with its id gone (ids are never reused) they are
        read as no one's and dropped at the move."""
        series_id = self._series.get(series)
        if series_id is not None:
            conn = self._db.conn
            conn.execute("DELETE FROM chunks WHERE series = ?", (series_id,))
            conn.execute("DELETE FROM rollups WHERE series = ?", (series_id,))
            conn.execute("DELETE FROM series WHERE id = ?", (series_id,))

    def reload_series(self) -> None:
        """Make the names' cache say what the database says (after a commit or a rollback)."""
        self._series = dict((name, i) for i, name in self._db.conn.execute("SELECT id, name FROM series"))

    def prune(self) -> None:
        """Enforce retention by what is stored (the writer does this every ``prune_every_s``).

        Full resolution: the newest ``keep_samples`` in the order written (whole groups: a group
        goes once all of it is older), so a clock step forward does not wipe them and one
        backward is not pruned first. What goes becomes min/avg/max roll-ups in the same
        transaction (computed before the storage lock is taken: no other move runs meanwhile)."""
        with self._moving:
            self._prune()

    def _prune(self) -> None:
        db = self._db
        ((top,),) = db.query("SELECT MAX(m) FROM (SELECT MAX(id) AS m FROM staged UNION ALL "
                             "SELECT MAX(upto) FROM groups)", ())
        cut = None if top is None or top <= self.keep_samples else top - self.keep_samples
        rollups = self._rollups_upto(cut) if cut is not None else []
        with db.write_lock:
            conn = db.conn
            conn.execute("BEGIN")
            try:
                if cut is not None:
                    live = set(i for (i,) in conn.execute("SELECT id FROM series"))
                    conn.executemany(UPSERT_ROLLUP, [row for row in rollups if row[1] in live])
                    conn.execute("DELETE FROM chunks WHERE upto <= ?", (cut,))
                    conn.execute("DELETE FROM groups WHERE upto <= ?", (cut,))
                    conn.execute("DELETE FROM staged WHERE id <= ?", (cut,))
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
            # TRUNCATE waits for open readers (an export, a long read) up to the busy timeout, and
            # this holds the storage lock: wait a moment at most; the next prune tries again.
            conn.execute("PRAGMA busy_timeout = 100")
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            finally:
                conn.execute("PRAGMA busy_timeout = %d" % BUSY_TIMEOUT_MS)

    def _rollups_upto(self, cut: int) -> list:
        """Roll-up rows ``(bucket, series, min, avg, max, n)`` of the samples retention drops:
        the groups with ``upto <= cut`` and the staged samples with ``id <= cut``."""
        acc: dict[tuple, list] = {}
        db = self._db
        for upto, ts in db.query("SELECT upto, ts FROM groups WHERE upto <= ?", (cut,)):
            runs = self._bucket_runs(codec.decode(ts))
            for series, vals in db.iterate("SELECT series, vals FROM chunks WHERE upto = ?", (upto,)):
                values = codec.decode(vals)
                for bucket, a, b in runs:
                    _fold(acc, (bucket, series), [v for v in values[a:b] if v is not None and v == v])
        for ts, vals in db.query("SELECT ts, vals FROM staged WHERE id <= ?", (cut,)):
            bucket = round(ts - ts % self.rollup_s, 3)
            for series, value in unpack_sample(vals).items():
                if value is not None and value == value:  # (NaN has no place between a min and a max)
                    _fold(acc, (bucket, series), [value])
        return [(bucket, series, _sql_number(lo), min(max(mean, lo), hi), _sql_number(hi), n)
                for (bucket, series), (lo, mean, hi, n) in acc.items()]

    def _bucket_runs(self, times: list) -> list:
        """``(bucket, first, past)``: the runs of positions in ``times`` that share a bucket."""
        runs: list = []
        for i, ts in enumerate(times):
            bucket = round(ts - ts % self.rollup_s, 3)
            if runs and runs[-1][0] == bucket:
                runs[-1][2] = i + 1
            else:
                runs.append([bucket, i, i + 1])
        return runs

    # --- reading ----------------------------------------------------------------------

    def columns(self, start: float, end: float, names: list | None = None) -> dict:
        """Columns like ``History.columns()``: the samples kept at full resolution, and before
        them, when the window reaches further back, one point per roll-up bucket with ``min``
        and ``max`` beside the averages in ``series`` (``interval`` is then the roll-ups'
        spacing; ``min`` and ``max`` of a full-resolution point are the value itself). So a long
        window ends in the latest samples, never in one bucket. ``names``: only these series are
        read (a read of one series reads one series). One snapshot: a prune or a compaction
        meanwhile neither hides nor doubles a sample."""
        with self._db.snapshot() as conn:
            only = _ids_of(conn, names)
            names_by_id = dict(conn.execute("SELECT id, name FROM series"))
            first_full = _first_full(conn)
            rollups = []
            if first_full is None or start < first_full:
                rollups = conn.execute(
                    "SELECT bucket, series, min, avg, max FROM rollups WHERE bucket >= ? AND bucket <= ? AND bucket < ?%s"
                    % _among(only), (start - self.rollup_s, end, math.inf if first_full is None else first_full)
                    + tuple(only or ())).fetchall()
            times, full = _full_columns(conn, start if first_full is None else max(start, first_full), end, only)
        series = {names_by_id[i]: column for i, column in full.items() if i in names_by_id}
        if not rollups:
            return {"ts": times, "series": {name: series[name] for name in sorted(series)}, "resolution": "full"}
        order, lows, avgs, highs = _rollup_columns(rollups, names_by_id)
        names = sorted(set(series) | set(avgs))
        padding, gap = [None] * len(times), [None] * len(order)

        def column(rolled: dict, name: str) -> list:
            return rolled.get(name, gap) + series.get(name, padding)

        return {"ts": order + times, "series": {name: column(avgs, name) for name in names},
                "min": {name: column(lows, name) for name in names},
                "max": {name: column(highs, name) for name in names},
                "resolution": "rollup", "interval": self.rollup_s}

    def buckets(self, start: float, end: float, names: list | None, points: int) -> dict | None:
        """The window in at most ``points`` min/avg/max buckets read from the groups' summaries
        (``storage.buckets``: whole buckets, aligned to their width), as ``memory.downsample``
        shapes them; None when the window reaches roll-ups, holds no more samples than
        ``points`` (the answer is the samples), or a summary cannot say it: then read
        ``columns`` and downsample them. One snapshot, as ``columns``."""
        return self._buckets(start, end, names, points, Buckets.columns)

    def buckets_json(self, start: float, end: float, names: list | None, points: int) -> bytes | None:
        """``buckets`` as compact JSON, written straight from the stored integers."""
        return self._buckets(start, end, names, points, Buckets.encoded)

    def _buckets(self, start: float, end: float, names: list | None, points: int, shaped: Callable) -> Any:
        with _collector_paused():
            with self._db.snapshot() as conn:
                if points < 2 or not end > start or not _bucketable(conn, start, end, points, self.rollup_s):
                    return None
                names_by_id = dict(conn.execute("SELECT id, name FROM series"))
                answer = read_buckets(conn, start, end, points, _ids_of(conn, names), len(names_by_id))
            return None if answer is None else shaped(answer, names_by_id)

    def rows(self, start: float, end: float) -> Iterator[tuple[float, dict]]:
        """Roll-up averages where only roll-ups are kept, then the full-resolution rows, oldest
        first, a group at a time (an export never holds more than one group), from one snapshot."""
        with self._db.snapshot() as conn:
            first_full = _first_full(conn)
            names = dict(conn.execute("SELECT id, name FROM series"))
            if first_full is None or start < first_full:
                yield from _group(conn.execute(
                    "SELECT bucket, bucket, series, avg FROM rollups WHERE bucket >= ? AND bucket < ? ORDER BY bucket",
                    (start, end if first_full is None else min(end, first_full))), names)
            yield from _full_rows(conn, names, start if first_full is None else max(start, first_full), end)

    def samples_kept(self) -> int:
        """How many samples are kept at full resolution (staged and in groups)."""
        ((count,),) = self._db.query("SELECT (SELECT COUNT(*) FROM staged) + "
                                     "(SELECT COALESCE(SUM(n), 0) FROM groups)", ())
        return count

    def _first_full(self) -> float | None:
        with self._db.snapshot() as conn:
            return _first_full(conn)

    def _full_rows(self, start: float, end: float, only: list | None = None) -> Iterator[tuple[float, dict]]:
        """Every sample kept in the window as rows (tests read through this)."""
        with self._db.snapshot() as conn:
            yield from _full_rows(conn, dict(conn.execute("SELECT id, name FROM series")), start, end, only)

    def _ids_of(self, names: list | None) -> list | None:
        with self._db.snapshot() as conn:
            return _ids_of(conn, names)


# A bucket met again (a clock stepped back) merges: the average weighted by counts, as two weights
# of one (a sum of averages times counts could be infinite), kept within the new min and max.
UPSERT_ROLLUP = (
    "INSERT INTO rollups VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (bucket, series) DO UPDATE SET "
    "min = MIN(min, excluded.min), max = MAX(max, excluded.max), "
    "avg = MAX(MIN(min, excluded.min), MIN(MAX(max, excluded.max), "
    "avg * (n * 1.0 / (n + excluded.n)) + excluded.avg * (excluded.n * 1.0 / (n + excluded.n)))), "
    "n = n + excluded.n")


_paused_lock = threading.Lock()
_paused = [0, False]  # reads under way, and whether the collector was on before the first


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a bucketed read runs (and on again after the
    last of those running at once, if it was on): a read makes tens of thousands of lists of
    ints, none in a cycle, and the collector, set off by their number, walked every int of
    them again and again, a sixth of an hour's read (bench/RESULTS-history-query.md). Memory
    freed by reference counting is freed as before."""
    with _paused_lock:
        if _paused[0] == 0:
            _paused[1] = gc.isenabled()
            gc.disable()
        _paused[0] += 1
    try:
        yield
    finally:
        with _paused_lock:
            _paused[0] -= 1
            if _paused[0] == 0 and _paused[1]:
                gc.enable()


def _rollup_columns(rows: list, names_by_id: dict) -> tuple[list, dict, dict, dict]:
    """Roll-up rows ``(bucket, series, min, avg, max)`` as columns: the buckets in order, and
    for each series its mins, averages and maxes at them (None where it has none)."""
    order = sorted({row[0] for row in rows})
    at = {bucket: i for i, bucket in enumerate(order)}
    lows: dict[str, list] = {}
    avgs: dict[str, list] = {}
    highs: dict[str, list] = {}
    for bucket, series, lo, avg, hi in rows:
        name = names_by_id.get(series)
        if name is None:
            continue  # deleted while we read
        column = avgs.get(name)
        if column is None:
            column = avgs[name] = [None] * len(order)
            lows[name], highs[name] = [None] * len(order), [None] * len(order)
        i = at[bucket]
        column[i], lows[name][i], highs[name][i] = avg, lo, hi
    return order, lows, avgs, highs


def _bucketable(conn: Any, start: float, end: float, points: int, rollup_s: float) -> bool:
    """Whether the window is full resolution only (no roll-up in it) and holds more samples
    than ``points`` (else the answer is the samples themselves)."""
    first_full = _first_full(conn)
    if first_full is None:
        return False
    if start < first_full and conn.execute(  # roll-ups in the window: ``columns`` has them
            "SELECT 1 FROM rollups WHERE bucket >= ? AND bucket <= ? AND bucket < ? LIMIT 1",
            (start - rollup_s, end, first_full)).fetchall():
        return False
    ((held,),) = conn.execute(  # at least this many samples in the window
        "SELECT (SELECT COALESCE(SUM(n), 0) FROM groups WHERE first >= ? AND last <= ?) + "
        "(SELECT COUNT(*) FROM staged WHERE ts >= ? AND ts <= ?)", (start, end, start, end)).fetchall()
    return held > points


def _first_full(conn: Any) -> float | None:
    """The time of the oldest sample kept at full resolution (None: none is)."""
    ((first,),) = conn.execute("SELECT MIN(m) FROM (SELECT MIN(first) AS m FROM groups UNION ALL "
                               "SELECT MIN(ts) FROM staged)").fetchall()
    return first


def _ids_of(conn: Any, names: list | None) -> list | None:
    """The series ids of ``names`` (None: every series)."""
    if names is None:
        return None
    return [row[0] for row in conn.execute(
        "SELECT id FROM series WHERE name IN (%s)" % ", ".join("?" * len(names)), tuple(names))] if names else []


def _full_columns(conn: Any, start: float, end: float, only: list | None = None) -> tuple[list, dict]:
    """Every sample kept in the window as columns: (timestamps, {series id: values}), in the
    order of time; with ``only``, the samples with a value of one of those series."""
    times: list = []
    columns: dict[int, list] = {}
    for block_times, block in blocks(conn, start, end, only):
        offset = len(times)
        times.extend(block_times)
        for series, values in block.items():
            column = columns.get(series)
            if column is None:
                column = columns[series] = []
            column.extend([None] * (offset - len(column)))
            column.extend(values)
    for series in list(columns):
        column = columns[series]
        column.extend([None] * (len(times) - len(column)))
        if column.count(None) == len(column):
            del columns[series]
    return _in_time_order(times, columns, only is not None)


def _full_rows(conn: Any, names: dict, start: float, end: float,
               only: list | None = None) -> Iterator[tuple[float, dict]]:
    """Every sample kept in the window as rows ``(ts, {name: value})``, a block at a time."""
    for times, block in blocks(conn, start, end, only):
        times, block = _in_time_order(times, block, False)
        named = [(names[series], values) for series, values in block.items() if series in names]
        for i, ts in enumerate(times):
            flat = {name: values[i] for name, values in named if values[i] is not None}
            if flat:
                yield ts, flat


def _in_time_order(times: list, columns: dict, drop_empty: bool) -> tuple[list, dict]:
    """The columns with their timestamps ascending (stably: samples of one time stay in the
    order written; a clock that stepped back is the only cause of disorder); ``drop_empty``:
    without the samples where no column has a value."""
    keep = range(len(times))
    if any(b < a for a, b in zip(times, times[1:])):
        keep = sorted(keep, key=times.__getitem__)
    if drop_empty and columns:
        rows = list(zip(*columns.values()))
        keep = [i for i in keep if any(v is not None for v in rows[i])]
    elif drop_empty:
        keep = []
    if isinstance(keep, range):
        return times, columns
    return [times[i] for i in keep], {series: [values[i] for i in keep] for series, values in columns.items()}


def _fold(acc: dict, key: tuple, values: list) -> None:
    """Fold ``values`` into ``acc[key]`` = [min, mean, max, n] (means, not sums: two 1e308s
    make an infinite sum, never an infinite mean)."""
    if not values:
        return
    lo, hi, mean, n = min(values), max(values), finite_mean(values), len(values)
    current = acc.get(key)
    if current is None:
        acc[key] = [lo, mean, hi, n]
    else:
        total = current[3] + n
        current[0], current[2] = min(current[0], lo), max(current[2], hi)
        current[1] = _finite(current[1] * (current[3] / total) + mean * (n / total))
        current[3] = total


def _finite(value: float) -> float:
    return value if math.isfinite(value) else math.copysign(sys.float_info.max, value)


def _sql_number(value: float) -> float:
    """An int beyond SQLite's 64 bits, as a float (the roll-up's min or max of huge ints)."""
    return float(value) if isinstance(value, int) and not -2 ** 63 <= value < 2 ** 63 else value


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
