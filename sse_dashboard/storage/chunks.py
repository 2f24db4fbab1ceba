"""Compacted history: each series' older samples in chunks, compressed (``storage.codec``).

One concept: moving staged samples into chunks, and reading them back. The writer stages every
sample as rows (``samples``, and ``points``: one row a value, each with an index entry), which
costs about 20-30 bytes a value whatever the value. Once more than ``2 * CHUNK_SAMPLES``
samples are staged, the oldest ``CHUNK_SAMPLES`` move here in the writer's transaction: one row
a series (``chunks``), holding the timestamps and the values of that series in those samples,
each encoded by ``codec.encode`` (format version 1, README "Storage").

Invariants:
- nothing is lost to kill -9: the swap of rows for chunks is one transaction, and what it has
  not moved is still staged; the storage lock is held only for that swap (the reading and the
  encoding, most of the cost, run on a reader's connection, and the swap checks that what was
  read did not change meanwhile); the newest ``CHUNK_SAMPLES`` samples are always staged rows, so a
  sample is never rewritten once acknowledged to the disk;
- a chunk's values decode exactly (every float bit for bit, ints as ints: codec's property
  tests);
- a chunk records the highest sample id it holds (``upto``), so retention counts samples
  written, as it does for the staged rows: a clock step does not wipe history.

May import: ``storage.codec``, ``storage.database``, the standard library.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from sse_dashboard.storage import codec

__all__ = ["compact", "chunk_values", "CHUNK_SAMPLES"]

CHUNK_SAMPLES = 60
MAX_COMPACTIONS_A_WRITE = 8  # a folder upgraded with an hour staged catches up over a few writes


def compact(db: Any, size: int = CHUNK_SAMPLES) -> int:
    """Move the oldest ``size`` staged samples into chunks while more than ``2 * size`` are
    staged (at most ``MAX_COMPACTIONS_A_WRITE`` times); returns how many samples moved.

    Reading and encoding happen on a reader's connection, without the storage lock (they are
    most of the cost); the lock is taken only to swap the rows for the chunks, in one
    transaction, after checking that nothing it read changed meanwhile (a delete, a prune)."""
    moved = 0
    for _ in range(MAX_COMPACTIONS_A_WRITE):
        ((first, count),) = db.query("SELECT MIN(id), COUNT(*) FROM samples", ())
        if first is None or count <= 2 * size:
            break
        ((upto,),) = db.query("SELECT id FROM samples ORDER BY id LIMIT 1 OFFSET ?", (size - 1,))
        by_series: dict[int, tuple[list, list]] = {}
        read = 0
        for series, ts, value in db.iterate(
                "SELECT p.series, s.ts, p.value FROM points p JOIN samples s ON s.id = p.sample "
                "WHERE p.sample BETWEEN ? AND ? ORDER BY p.series, s.ts, s.id", (first, upto)):
            times, values = by_series.setdefault(series, ([], []))
            times.append(ts)
            values.append(value)
            read += 1
        rows = [(series, times[0], times[-1], upto, len(times), codec.encode(times), codec.encode(values))
                for series, (times, values) in by_series.items()]
        with db.write_lock:
            conn = db.conn
            conn.execute("BEGIN")
            try:
                ((still,),) = conn.execute("SELECT COUNT(*) FROM points WHERE sample BETWEEN ? AND ?",
                                           (first, upto)).fetchall()
                ((staged_first,),) = conn.execute("SELECT MIN(id) FROM samples", ()).fetchall()
                if still != read or staged_first != first:  # changed under us: next time
                    conn.execute("ROLLBACK")
                    break
                conn.executemany("INSERT INTO chunks (series, first, last, upto, n, ts, vals) "
                                 "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
                conn.execute("DELETE FROM points WHERE sample BETWEEN ? AND ?", (first, upto))
                conn.execute("DELETE FROM samples WHERE id BETWEEN ? AND ?", (first, upto))
                conn.execute("COMMIT")
            except BaseException:
                db.rollback()
                raise
        moved += upto - first + 1
    return moved


def chunk_values(iterate: Callable[[str, tuple], Iterator[tuple]], start: float, end: float,
                 among: str = "", args: tuple = ()) -> Iterator[tuple[float, int, object]]:
    """``(ts, series, value)`` of every chunked value with ``start <= ts <= end``, read through
    ``iterate(sql, args)`` (a reader's connection); ``among`` narrows the series (an SQL
    condition on ``series`` whose arguments are ``args``)."""
    for series, times, values in iterate(
            "SELECT series, ts, vals FROM chunks WHERE last >= ? AND first <= ?%s" % among, (start, end) + args):
        for ts, value in zip(codec.decode(times), codec.decode(values)):
            if start <= ts <= end and value is not None:
                yield ts, series, value
