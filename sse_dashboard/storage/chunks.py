"""History on disk, compacted: samples staged as one packed row each, then moved into chunk
groups that share their timestamps, joined into longer groups as they age (#23).

One concept: the layout of the samples on disk, and moving them from one shape to the next.

- ``staged``: the newest samples, one row a sample: its time and ``pack_sample`` of its values
  (the series' ids and their values, each list through ``codec.encode``). A write is one row a
  sample, so kill -9 loses no history beyond the writer's queue.
- ``groups`` and ``chunks``: once more than ``STAGED_MOST`` samples are staged (twice a group
  when retention keeps under four groups: ``staged_most``), the oldest
  ``CHUNK_SAMPLES`` become one group: its timestamps once (``groups.ts``), and one chunk a
  series with that series' values at those timestamps (``None`` where it had none). Once
  ``JOIN_GROUPS`` such groups are there, the oldest are joined into one group of
  ``JOIN_GROUPS * CHUNK_SAMPLES`` samples (never longer than a quarter of what retention keeps,
  so retention, which drops whole groups, keeps at most a quarter more than it must).
- A group is keyed by ``upto``, the highest sample id it holds, so retention counts samples
  written, as it does for staged rows: a clock step does not wipe history.

Invariants:
- every step is one transaction, and the storage lock is held only for the swap: the reading
  and the encoding (most of the cost) run on a reader's connection, and the swap checks that
  what was read did not change meanwhile; a join's swap drops the groups it replaces, and their
  chunks, which no read can reach any more, are deleted after it, a group a transaction;
- values decode exactly (every float bit for bit, ints as ints: codec's property tests);
- series ids are never reused (``series`` is AUTOINCREMENT), so a value left in a packed row
  or a chunk for a deleted series can never be read as another's: it is skipped on reading and
  dropped at the next move.

May import: ``storage.codec``, ``storage.summaries``, the standard library.
"""

from __future__ import annotations

import struct
from typing import Any, Dict, Iterator, List, Optional, Tuple

from sse_dashboard.storage import codec
from sse_dashboard.storage.summaries import encode_group, runs_of, scaled_summary

__all__ = ["compact", "join", "chunk_rows", "staged_most", "pack_sample", "unpack_sample", "unpack_sample_lists", "blocks", "CHUNK_SAMPLES", "JOIN_GROUPS",
           "STAGED_MOST"]

CHUNK_SAMPLES = 60
JOIN_GROUPS = 10
# Staged rows past this move into a group. A staged row packs its sample's ids and values on their
# own (about 5 B a value against 0.3-3 in a chunk): fewer of them is most of what a store of a
# few series costs over its empty tables (bench/RESULTS-history-size.md).
STAGED_MOST = CHUNK_SAMPLES
MAX_MOVES_A_WRITE = 8  # a folder upgraded with an hour staged catches up over a few writes

Block = Tuple[List[float], Dict[int, list]]  # timestamps, and each series' values at them


def pack_sample(values_by_id: Dict[int, Any]) -> bytes:
    """One sample's values as bytes: the length of the ids' encoding (4 bytes), the ids in
    order, then the values in the same order (``codec.encode`` both)."""
    ids = sorted(values_by_id)
    head = codec.encode(ids)
    return struct.pack("<I", len(head)) + head + codec.encode([values_by_id[i] for i in ids])


def unpack_sample(data: bytes) -> Dict[int, Any]:
    return dict(zip(*unpack_sample_lists(data)))


def unpack_sample_lists(data: bytes) -> Tuple[list, list]:
    """``pack_sample``'s ids, ascending, and their values, as two lists."""
    (size,) = struct.unpack_from("<I", data)
    return codec.decode(bytes(data[4:4 + size])), codec.decode(bytes(data[4 + size:]))


# --- moving samples --------------------------------------------------------------------------

def staged_most(keep_samples: int) -> int:
    """How many samples stay staged: ``STAGED_MOST``, or twice a group where a group would be
    more than a quarter of what retention keeps (retention drops staged rows one by one but a
    group whole: a tiny ``--keep-full`` stays exact)."""
    return STAGED_MOST if keep_samples >= 4 * CHUNK_SAMPLES else 2 * CHUNK_SAMPLES


def compact(db: Any, size: int = CHUNK_SAMPLES, most: int = STAGED_MOST) -> int:
    """Move the oldest ``size`` staged samples into a group while more than ``most`` (scaled to
    ``size``; ``staged_most``) are staged (at most ``MAX_MOVES_A_WRITE`` times); returns how many samples moved."""
    moved = 0
    for _ in range(MAX_MOVES_A_WRITE):
        ((count,),) = db.query("SELECT COUNT(*) FROM staged", ())
        if count <= most * size // CHUNK_SAMPLES:
            break
        rows = db.query("SELECT id, ts, vals FROM staged ORDER BY id LIMIT ?", (size,))
        first, upto = rows[0][0], rows[-1][0]
        times = [ts for _, ts, _ in rows]
        columns: Dict[int, list] = {}
        for i, (_, _, vals) in enumerate(rows):
            for series, value in unpack_sample(vals).items():
                column = columns.get(series)
                if column is None:
                    column = columns[series] = [None] * len(rows)
                column[i] = value
        chunks, summaries = chunk_rows(upto, times, columns, to_be_joined=True)
        group = (upto, min(times), max(times), len(rows), codec.encode(times), summaries)

        def unchanged(conn: Any) -> bool:
            ((still, low),) = conn.execute("SELECT COUNT(*), MIN(id) FROM staged WHERE id <= ?", (upto,)).fetchall()
            return still == len(rows) and low == first

        if not _swap(db, unchanged, group, chunks, "DELETE FROM staged WHERE id BETWEEN %d AND %d" % (first, upto)):
            break
        moved += len(rows)
    return moved


def join(db: Any, size: int = CHUNK_SAMPLES, longest: int = JOIN_GROUPS * CHUNK_SAMPLES) -> int:
    """Join the oldest ``JOIN_GROUPS`` groups shorter than ``longest`` into one, when that many
    are there and the joined group is no longer than ``longest``; returns the samples joined."""
    small = db.query("SELECT upto, n, ts FROM groups WHERE n < ? ORDER BY upto LIMIT ?", (longest, JOIN_GROUPS))
    if len(small) < JOIN_GROUPS or sum(n for _, n, _ in small) > longest:
        return 0
    uptos = [upto for upto, _, _ in small]
    times: List[float] = []
    columns: Dict[int, list] = {}
    count = 0
    for upto, n, ts in small:
        offset = len(times)
        times.extend(codec.decode(ts))
        for series, vals in db.query("SELECT series, vals FROM chunks WHERE upto = ?", (upto,)):
            column = columns.get(series)
            if column is None:
                column = columns[series] = []
            column.extend([None] * (offset - len(column)))
            column.extend(codec.decode(vals))
            count += 1
    for column in columns.values():
        column.extend([None] * (len(times) - len(column)))
    upto = uptos[-1]
    chunks, summaries = chunk_rows(upto, times, columns)
    group = (upto, min(times), max(times), len(times), codec.encode(times), summaries)
    marks = ", ".join(str(int(u)) for u in uptos)

    def unchanged(conn: Any) -> bool:
        ((groups, chunk_rows),) = conn.execute(
            "SELECT (SELECT COUNT(*) FROM groups WHERE upto IN (%s)), (SELECT COUNT(*) FROM chunks WHERE upto IN (%s))"
            % (marks, marks)).fetchall()
        return groups == len(uptos) and chunk_rows == count

    # The swap drops the old groups' rows, and the chunks of the last only (the joined group takes
    # its key): the others' chunks, no longer reachable from a group, go after it, a group at a
    # time, so the storage lock is never held for all of them at once (at 10,000 series the
    # deletes were most of a join's hold, bench/RESULTS-history-write.md).
    gone = "DELETE FROM chunks WHERE upto = %d; DELETE FROM groups WHERE upto IN (%s)" % (upto, marks)
    if not _swap(db, unchanged, group, chunks, gone):
        return 0
    for old in uptos[:-1]:
        _drop_unreachable(db, old)
    return len(times)


def _drop_unreachable(db: Any, upto: int) -> None:
    """Delete the chunks of a group that is gone (joined), in a transaction of their own. Until
    then no read sees them (reads find chunks through ``groups``); a kill before leaves them to
    retention, which drops chunks by ``upto`` whether a group holds them or not."""
    with db.transaction() as conn:
        if not conn.execute("SELECT 1 FROM groups WHERE upto = ?", (upto,)).fetchall():
            conn.execute("DELETE FROM chunks WHERE upto = ?", (upto,))


def chunk_rows(upto: int, times: List[float], columns: Dict[int, list], to_be_joined: bool = False) -> tuple:
    """A group's ``(upto, series, vals)`` rows, each series' values encoded, and the group's
    summaries by slot (``storage.summaries``: of the series that keep one; None when none
    does). ``to_be_joined``: a group fresh from the staged rows keeps its summaries whatever
    their size (every recent read needs them; the join replaces them with its own)."""
    runs = runs_of(times)
    rows: list = []

    def summaries() -> Iterator[tuple]:  # (one at a time: a group's summaries are written as they come)
        for series, values in columns.items():
            vals, scale = codec.encode_with_scale(values)
            rows.append((upto, series, vals))
            summary = scaled_summary(values, runs, len(vals), scale, to_be_joined)
            if summary is not None:
                yield series, summary

    encoded = encode_group(summaries(), runs)  # (which fills ``rows``)
    return rows, encoded


def _swap(db: Any, unchanged: Any, group: tuple, chunks: list, gone: str) -> bool:
    """In one transaction under the storage lock: if ``unchanged(conn)``, run ``gone`` (what the
    new group replaces) and insert the group and its chunks (of series that still exist)."""
    with db.transaction() as conn:
        if not unchanged(conn):  # a delete or a prune came between: next time (nothing written)
            return False
        for statement in gone.split(";"):
            conn.execute(statement)
        live = _existing(conn, [row[1] for row in chunks])
        conn.execute("INSERT INTO groups (upto, first, last, n, ts, summaries) VALUES (?, ?, ?, ?, ?, ?)", group)
        conn.executemany("INSERT INTO chunks (upto, series, vals) VALUES (?, ?, ?)",
                         [row for row in chunks if row[1] in live])
    return True


def _existing(conn: Any, ids: List[int]) -> set:
    """Which of ``ids`` are series still (a delete may have come while the rows were encoded)."""
    live: set = set()
    for i in range(0, len(ids), 500):
        part = ids[i:i + 500]
        live.update(row[0] for row in conn.execute(
            "SELECT id FROM series WHERE id IN (%s)" % ", ".join("?" * len(part)), part))
    return live


# --- reading -----------------------------------------------------------------------------------

def blocks(conn: Any, start: float, end: float, only: Optional[List[int]] = None) -> Iterator[Block]:
    """The samples with ``start <= ts <= end`` as blocks of columns, oldest first: one a group,
    then one for the staged samples; ``only``: just these series ids (None: every series).
    A block's columns are as long as its timestamps (``None`` where a series had no value);
    series with no value in the block are left out. ``conn`` reads inside one transaction
    (``Database.snapshot``): read apart, a compaction between the groups and the staged rows
    would hide the samples it moved."""
    among = "" if only is None else " AND series IN (%s)" % ", ".join("?" * len(only)) if only else " AND 0"
    wanted = None if only is None else set(only)
    for upto, ts in conn.execute("SELECT upto, ts FROM groups WHERE last >= ? AND first <= ? ORDER BY upto",
                                 (start, end)).fetchall():
        times = codec.decode(ts)
        keep = _inside(times, start, end)
        columns = {}
        for series, vals in conn.execute("SELECT series, vals FROM chunks WHERE upto = ?%s" % among,
                                         (upto,) + tuple(only or ())).fetchall():
            values = codec.decode(vals)
            columns[series] = values if keep is None else [values[i] for i in keep]
        yield (times if keep is None else [times[i] for i in keep]), columns
    times, columns = [], {}
    for ts, vals in conn.execute("SELECT ts, vals FROM staged WHERE ts >= ? AND ts <= ? ORDER BY id",
                                 (start, end)).fetchall():
        values = unpack_sample(vals)
        if wanted is not None:
            values = {series: value for series, value in values.items() if series in wanted}
        for series, value in values.items():
            column = columns.get(series)
            if column is None:
                column = columns[series] = []
            column.extend([None] * (len(times) - len(column)))
            column.append(value)
        times.append(ts)
    for column in columns.values():
        column.extend([None] * (len(times) - len(column)))
    yield times, columns


def _inside(times: List[float], start: float, end: float) -> Optional[List[int]]:
    """The positions of ``times`` inside the window, or None when all of them are."""
    if times and start <= min(times) and max(times) <= end:
        return None
    return [i for i, ts in enumerate(times) if start <= ts <= end]
