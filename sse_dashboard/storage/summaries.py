"""Summaries kept beside each group's chunks (#23): per series, for every ``AGG_S`` seconds of the
group's samples (a *slot*: ``floor(ts / AGG_S)``), their count, min, max and sum, so a read whose
buckets are a slot or wider reads a few numbers a slot, not every value.

One concept: a group's values summarised by slot, as bytes and back (pure functions, no I/O).

- The slots of a group come from its shared timestamps (``runs_of``): runs of consecutive
  samples in one slot, in the order written. Summaries are per run, so a reader derives the same
  runs from the group's timestamps and needs no slot numbers stored.
- A series' summary is kept in the integers its values are stored as (``codec``: each value
  ``m / 10**k``): ``count`` counts the values (not ``None``), ``min`` and ``max`` are the
  values' own ``m``, and ``sum`` is the sum of the ``m``, exact, so a mean is exact until it is
  divided once.
- A summary is not kept (``scaled_summary`` returns None) for full-precision floats (no decimal
  scale fits: their summary costs nearly half what the values do), or when it would cost
  more than ``KEEP_AT_MOST`` of the chunk's own bytes (constants, counters: the values cost next
  to nothing to read), except for decimals in a group waiting for its join (``whatever_size``): the
  newest ``JOIN_GROUPS`` groups a series are in every read of recent history, and decoding and
  summarising their values was most of an hour's read (bench/RESULTS-storage.md), while their
  summaries' bytes go at the join. The read then summarises the values itself: the answers are
  the same, only the time differs.

Format, version 2 (``groups.summaries``, one a group, schema 9): byte 0 the version, then
frames, each a 4-byte little-endian length and one ``codec.encode`` list of ints: the first, the
series' ids and then a flag each (``k | floats << 3 | counted << 4``: the scale, whether the
values were floats rather than ints, whether the counts are stored; when not, each run's count
is its length: the series has a value at every tick); the rest, read as one list, each series
in turn: its counts (when stored), mins, maxes and sums, a run each. One list for every series,
so a read of a whole group decodes it in a few calls, in C, not a few a series: that was most
of an hour's read (bench/RESULTS-history-query.md).

Version 1 (schema 8: ``chunks.summary``, a chunk's own) is written and read by the migrations
only (to 8, then 9): byte 0 the version, then one ``codec.encode`` list: the runs' counts, then their mins, their
maxes and their sums (floats for decimals, the decimal sum rounded once).

May import: ``storage.codec``, the standard library.
"""

from __future__ import annotations

import math
import struct
from array import array
from itertools import repeat
from operator import floordiv, mul
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from sse_dashboard.storage import codec

__all__ = ["AGG_S", "KEEP_AT_MOST", "slot_of", "runs_of", "summarize", "scaled_summary", "encode_group",
           "decode_group", "encode_summary", "decode_summary_scaled"]

AGG_S = 10.0           # a slot's seconds: reads at buckets of 10 s or wider use the summaries
KEEP_AT_MOST = 0.5     # a summary costing more than this share of its chunk's bytes is not kept
VERSION = 1           # a chunk's own summary (schema 8), read by the migration only
GROUP_VERSION = 2     # a group's summaries (schema 9)
FRAME_VALUES = 1 << 19  # values a frame of a group's summaries (the codec takes at most 1 << 20 a list)
# DEFLATE's fastest level for them: 2% larger than the codec's 6, a sixth of its time (1,000 random
# walks' group of 600: 13 ms against 100 ms), read as fast.
FRAME_LEVEL = 1

Run = Tuple[int, int, int]                      # slot, first position, past position
Summary = Tuple[list, list, list, list]         # counts, mins, maxes, sums, a run each
# A series' summary in its stored integers: (k, floats, counts, mins, maxes, sums), the mins,
# maxes and sums ``m`` of values ``m / 10**k``; ``floats``: the values were floats, not ints.
Scaled = tuple


def slot_of(ts: float) -> int:
    return math.floor(ts / AGG_S)


def runs_of(times: Sequence[float]) -> List[Run]:
    """``(slot, first, past)``: the runs of consecutive positions of ``times`` in one slot."""
    runs: List[Run] = []
    first, current = 0, None
    for i, ts in enumerate(times):
        slot = math.floor(ts / AGG_S)
        if slot != current:
            if current is not None:
                runs.append((current, first, i))
            first, current = i, slot
    if current is not None:
        runs.append((current, first, len(times)))
    return runs


def summarize(values: Sequence[Any], runs: Sequence[Run], scale: Optional[int] = None) -> Optional[Summary]:
    """Each run's count, min, max and sum of ``values`` (None: a run holds a NaN or an infinity,
    or a sum is not finite). A run with no value has count 0 and None for the rest. ``scale``:
    the decimal scale of every float (``codec.encode_with_scale``): the sums are then summed as
    scaled integers, the decimal sum rounded once, which the codec keeps as compactly as the
    values; without it, a float sum (a read's own summary, never stored)."""
    parts = [values[a:b] for _, a, b in runs]
    if None in values:
        parts = [[v for v in part if v is not None] if None in part else part for part in parts]
    if scale and any(isinstance(v, float) for v in values):
        p = 10 ** scale
        try:
            sums = [sum(map(round, map(mul, part, repeat(p)))) / p for part in parts]
        except OverflowError:  # a sum of ints beyond a float
            return None
    else:
        sums = list(map(sum, parts))
    if not all(isinstance(total, int) or math.isfinite(total) for total in sums):
        return None
    counts = list(map(len, parts))
    if 0 in counts:
        return (counts, [min(part) if part else None for part in parts],
                [max(part) if part else None for part in parts],
                [total if part else None for total, part in zip(sums, parts)])
    return counts, list(map(min, parts)), list(map(max, parts)), sums


def encode_summary(values: Sequence[Any], runs: Sequence[Run], chunk_bytes: int, scale: Optional[int],
                   whatever_size: bool = False) -> Optional[bytes]:
    """The summary of one chunk's ``values`` as bytes, or None when it is not kept (see above):
    ``scale`` None (full-precision floats: their min, max and sum cost as much as the values, and
    this machine's system series would cost more than Prometheus' on disk), a slot or more a
    sample, a NaN or an endless sum, or more than ``KEEP_AT_MOST`` of ``chunk_bytes`` (unless
    ``whatever_size`` and the values have decimals: a group to be joined soon)."""
    if scale is None or not runs or len(runs) * 2 > len(values):
        return None
    summary = summarize(values, runs, scale)
    if summary is None:
        return None
    counts, mins, maxes, sums = summary
    out = bytes([VERSION]) + codec.encode(counts + mins + maxes + sums)  # one list: one header, one decode
    return out if (whatever_size and scale) or len(out) <= KEEP_AT_MOST * chunk_bytes else None


def decode_summary_scaled(data: bytes) -> Optional[tuple]:
    """``(k, floats, counts, mins, maxes, sums)`` with the mins, maxes and sums as ints scaled
    by ``10**k`` (``codec.decode_scaled``: decimals compared and summed exactly, no float made),
    the counts as they are, and ``floats`` whether the values were floats (not ints); None when
    the summary holds something else (decode it)."""
    if not data or data[0] != VERSION:
        raise ValueError("not a chunk summary (version %r)" % (data[:1],))
    scaled = codec.decode_scaled(data[1:])
    if scaled is None:
        return None
    k, values, floats = scaled
    n, odd = divmod(len(values), 4)
    if odd:
        raise ValueError("not a chunk summary (%d values)" % len(values))
    counts = values[:n] if k == 0 else list(map(floordiv, values[:n], repeat(10 ** k)))
    return k, floats, counts, values[n:2 * n], values[2 * n:3 * n], values[3 * n:]


# --- a group's summaries (version 2) ------------------------------------------------------------

def scaled_summary(values: Sequence[Any], runs: Sequence[Run], chunk_bytes: int, scale: Optional[int],
                   whatever_size: bool = False) -> Optional[Scaled]:
    """One series' summary in its stored integers, or None when it is not kept (the module's
    rule): ``scale`` None, a slot or more a sample, or costing more than ``KEEP_AT_MOST`` of
    ``chunk_bytes`` on its own (unless ``whatever_size`` and the values have decimals)."""
    if scale is None or not runs or len(runs) * 2 > len(values):
        return None
    p = 10 ** scale
    if None not in values:
        ints = list(map(round, map(mul, values, repeat(p))))  # (exact: codec found every value m / p)
    else:
        ints = [None if v is None else round(v * p) for v in values]
    counts, mins, maxes, sums = summarize(ints, runs)  # (ints: exact, finite)
    if not (whatever_size and scale) and 1 + len(codec.encode(counts + mins + maxes + sums)) > KEEP_AT_MOST * chunk_bytes:
        return None
    return scale, any(isinstance(v, float) for v in values), counts, mins, maxes, sums


def encode_group(summaries: Iterable[Tuple[int, Scaled]], runs: Sequence[Run]) -> Optional[bytes]:
    """The kept summaries of a group's series (``(series id, scaled_summary(...))`` pairs) as
    bytes (version 2), or None when there is none. They are taken one at a time into 8 bytes a
    number, and written a frame at a time: a group of 10,000 series (1.8 million numbers) as
    lists of ints held 70 MB, this holds 4."""
    lengths = [b - a for _, a, b in runs]
    ids, flags, frames = [], [], []
    body: Any = array("q")  # (a list once a number is past int64)
    for series, (k, floats, counts, mins, maxes, sums) in summaries:
        counted = counts != lengths
        ids.append(series)
        flags.append(k | bool(floats) << 3 | counted << 4)
        for part in ((counts, mins, maxes, sums) if counted else (mins, maxes, sums)):
            held = len(body)
            try:
                body.extend(part)
            except (OverflowError, TypeError):  # past int64, or None (a run with no value)
                del body[held:]  # (what the array took before it stopped)
                body = body.tolist() + list(part)
        if len(body) >= FRAME_VALUES:
            frames.append(codec.encode(body[:FRAME_VALUES], level=FRAME_LEVEL))
            del body[:FRAME_VALUES]
    if not ids:
        return None
    if body:
        frames.append(codec.encode(body, level=FRAME_LEVEL))
    frames.insert(0, codec.encode(ids + flags))
    return bytes([GROUP_VERSION]) + b"".join(struct.pack("<I", len(frame)) + frame for frame in frames)


def decode_group(data: bytes, runs: Sequence[Run], wanted: Optional[set] = None, first: int = 0,
                 past: Optional[int] = None) -> Dict[int, Scaled]:
    """``{series id: summary}`` of ``encode_group``'s bytes (of the ``wanted`` ids only, when
    given), of the runs ``[first, past)`` only; ``runs``: the group's, from its timestamps."""
    if not data or data[0] != GROUP_VERSION:
        raise ValueError("not a group's summaries (version %r)" % (data[:1],))
    frames, at = [], 1
    while at < len(data):
        (size,) = struct.unpack_from("<I", data, at)
        frames.append(data[at + 4:at + 4 + size])
        at += 4 + size
    if not frames or at != len(data):
        raise ValueError("not a group's summaries: the frames overrun")
    head = codec.decode(frames[0])
    n = len(head) // 2
    body: list = []
    for frame in frames[1:]:
        body += codec.decode(frame)
    width = len(runs)
    past = width if past is None else past
    lengths = [b - a for _, a, b in runs[first:past]]  # (shared by the series that store no counts)
    out, at = {}, 0
    for series, flag in zip(head[:n], head[n:]):
        counted = flag >> 4 & 1
        if wanted is None or series in wanted:
            a, b = at + first, at + past
            if counted:
                counts = body[a:b]
                a, b = a + width, b + width
            else:
                counts = lengths
            out[series] = (flag & 7, bool(flag >> 3 & 1), counts, body[a:b], body[a + width:b + width],
                           body[a + 2 * width:b + 2 * width])
        at += (3 + counted) * width
    if at != len(body) or 2 * n != len(head):
        raise ValueError("not a group's summaries: %d values for %d series of %d runs" % (len(body), n, width))
    return out
