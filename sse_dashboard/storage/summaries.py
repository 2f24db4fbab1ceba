"""Summaries kept beside each chunk (#23): per series, for every ``AGG_S`` seconds of the chunk's
samples (a *slot*: ``floor(ts / AGG_S)``), their count, min, max and sum, so a read whose buckets
are a slot or wider reads a few numbers a slot, not every value.

One concept: a chunk's values summarised by slot, as bytes and back (pure functions, no I/O).

- The slots of a group come from its shared timestamps (``runs_of``): runs of consecutive
  samples in one slot, in the order written. Summaries are per run, so a reader derives the same
  runs from the group's timestamps and needs no slot numbers stored.
- ``count`` counts the values (not ``None``); ``min`` and ``max`` are the values' own (an int
  stays an int); ``sum`` is exact for ints and, for decimals, summed as scaled integers, so it is
  the decimal sum rounded once (and the codec keeps it as compactly as the values).
- A summary is not kept (``encode_summary`` returns None) for full-precision floats (no decimal
  scale fits: their summary costs nearly half what the values do), when a run holds a NaN or its
  sum is not finite (min, max and mean mean nothing, or cannot be summed), or when it would cost
  more than ``KEEP_AT_MOST`` of the chunk's own bytes (constants, counters: the values cost next
  to nothing to read), except for decimals in a group waiting for its join (``whatever_size``): the
  newest ``JOIN_GROUPS`` groups a series are in every read of recent history, and decoding and
  summarising their values was most of an hour's read (bench/RESULTS-storage.md), while their
  summaries' bytes go at the join. The read then summarises the values itself: the answers are
  the same, only the time differs.

Format (version 1): byte 0 the version, then one ``codec.encode`` list: the runs' counts, then
their mins, their maxes and their sums (a quarter of the list each).

May import: ``storage.codec``, the standard library.
"""

from __future__ import annotations

import math
from itertools import repeat
from operator import floordiv, mul
from typing import Any, List, Optional, Sequence, Tuple

from sse_dashboard.storage import codec

__all__ = ["AGG_S", "KEEP_AT_MOST", "slot_of", "runs_of", "summarize", "encode_summary", "decode_summary",
           "decode_summary_scaled"]

AGG_S = 10.0           # a slot's seconds: reads at buckets of 10 s or wider use the summaries
KEEP_AT_MOST = 0.5     # a summary costing more than this share of its chunk's bytes is not kept
VERSION = 1

Run = Tuple[int, int, int]                      # slot, first position, past position
Summary = Tuple[list, list, list, list]         # counts, mins, maxes, sums, a run each


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


def decode_summary(data: bytes) -> Summary:
    """The counts, mins, maxes and sums ``encode_summary`` was given."""
    if not data or data[0] != VERSION:
        raise ValueError("not a chunk summary (version %r)" % (data[:1],))
    values = codec.decode(data[1:])
    n, odd = divmod(len(values), 4)
    if odd:
        raise ValueError("not a chunk summary (%d values)" % len(values))
    return values[:n], values[n:2 * n], values[2 * n:3 * n], values[3 * n:]


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
