"""A window of full-resolution history in min/avg/max buckets read from the groups' summaries
(``storage.summaries``), not from every value (#23).

One concept: the bucketed read, the fast twin of ``memory.downsample`` over stored samples.

Buckets are whole slots: ``width`` is the least multiple of ``AGG_S`` that fits the window in
``points`` buckets, and a bucket is ``slot // k`` (``k = width / AGG_S``), so buckets are aligned
to multiples of their width and the first may start up to a bucket before ``start`` (and the last
end up to one after ``end``): the answer shows every sample of the buckets the window touches,
and may have fewer points than asked, as Grafana's ``maxDataPoints`` allows. A bucket's min and
max are its samples' own, its average their sum over their count, within its min and max.

Decimals are read as the integers they are stored as (``m`` of ``m / 10**k``): mins and maxes
compared, sums added exactly, a mean divided once (``sum / (count * 10**k)``, so it is the exact
mean rounded once). ``Buckets.encoded`` writes them to JSON from those integers, ``m`` and an
exponent (``100241e-3``), which any JSON reader reads as the very double ``m / 10**k`` is: a
float's shortest form, made a million times, was most of the time an hour's read took. Series
with no summary kept (full-precision floats, constants, counters) and the staged samples are
summarised from their values; a read of a few of many series reads its values too (``FEW_OF``).

``read_buckets`` answers None, and the caller reads the values instead (``memory.downsample``),
when a summary cannot say it: a NaN or a sum that is not finite in a slot, timestamps that went
back (a clock step), or a mean an int sum cannot give as a float.

May import: ``storage.codec``, ``storage.chunks``, ``storage.summaries``, the standard library.
"""

from __future__ import annotations

import json
import math
from itertools import chain, repeat
from operator import le, mul, truediv
from typing import Any, Dict, List, NamedTuple, Optional

from sse_dashboard.storage import codec
from sse_dashboard.storage.chunks import unpack_sample_lists
from sse_dashboard.storage.summaries import AGG_S, decode_group, runs_of, summarize

__all__ = ["read_buckets", "bucket_width", "Buckets"]

# A read of fewer than a quarter of the series decodes their values, not whole groups' summaries: a
# series' values cost about four times what its part of a group's summaries does to read.
FEW_OF = 4
Columns = Dict[int, List[list]]   # series id -> [counts, mins, maxes, sums], a bucket each


class _Unsaid(Exception):
    """The summaries cannot give this window: read the values."""


def bucket_width(start: float, end: float, points: int) -> int:
    """``k``: a bucket is ``k`` slots, the least that fits ``[start, end]`` in ``points`` buckets
    (the window's ends fall in two of them: ``points - 1`` widths must cover it)."""
    return max(1, math.ceil((end - start) / max(1, points - 1) / AGG_S))


def read_buckets(conn: Any, start: float, end: float, points: int, only: Optional[List[int]],
                 series: int = 0) -> Optional["Buckets"]:
    """The buckets of the samples whose slots fall in the buckets ``[start, end]`` touches, or
    None (see above). ``conn`` reads in one snapshot; ``only``: just these series ids, of the
    ``series`` there are."""
    k = bucket_width(start, end, points)
    low, high = (math.floor(start / AGG_S) // k) * k, (math.floor(end / AGG_S) // k + 1) * k  # slots
    reader = _Reader(k, low, high)
    among = "" if only is None else " AND series IN (%s)" % ", ".join("?" * len(only)) if only else " AND 0"
    wanted = None if only is None else set(only)
    # A read of a few of many series decodes their values; of more, each group's summaries whole.
    by_summaries = only is None or len(only) * FEW_OF >= series
    try:
        for upto, ts, summaries in conn.execute(
                "SELECT upto, ts, %s FROM groups WHERE last >= ? AND first < ? ORDER BY upto"
                % ("summaries" if by_summaries else "NULL"), ((low - 1) * AGG_S, (high + 1) * AGG_S)).fetchall():
            runs = runs_of(codec.decode(ts))
            window = reader.begin(runs)
            if window is None:
                continue
            inside = runs[window.first:window.past]
            kept = decode_group(summaries, runs, wanted, window.first, window.past) if summaries is not None else {}
            rows = conn.execute("SELECT series, vals FROM chunks WHERE upto = ?%s" % among,
                                (upto,) + tuple(only or ())).fetchall() if not kept else _unkept(conn, upto, kept, wanted)
            reader.add(window, chain(kept.items(), ((series, _values_part(vals, inside)) for series, vals in rows)))
        staged = conn.execute("SELECT ts, vals FROM staged WHERE ts >= ? AND ts < ? ORDER BY id",
                              ((low - 1) * AGG_S, (high + 1) * AGG_S)).fetchall()
        times, columns = [ts for ts, _ in staged], _staged_columns([vals for _, vals in staged], wanted)
        runs = runs_of(times)
        window = reader.begin(runs)
        if window is not None:
            reader.add(window, ((series, _staged_part(column, runs, window, reader.scales.get(series)))
                                for series, column in columns.items()))
        return reader.answer()
    except (_Unsaid, OverflowError):
        return None


# A group's runs' summary of one series: ``(k, floats, counts, mins, maxes, sums)``, the mins,
# maxes and sums ints scaled by ``10**k`` (decimals, compared and summed exactly), or with ``k``
# None, numbers as they are; ``floats``: whether the values were floats rather than ints.
Part = tuple


def _staged_columns(packed: list, wanted: Optional[set]) -> Dict[int, list]:
    """The staged samples as columns, a series each (None where a sample has no value of it):
    at once where every sample holds the same series (nearly always), a value at a time else."""
    samples = [unpack_sample_lists(vals) for vals in packed]
    if not samples:
        return {}
    ids = samples[0][0]
    if all(sample[0] == ids for sample in samples):
        columns = dict(zip(ids, map(list, zip(*(values for _, values in samples)))))
    else:
        columns = {}
        for i, (sample_ids, values) in enumerate(samples):
            for series, value in zip(sample_ids, values):
                column = columns.get(series)
                if column is None:
                    column = columns[series] = [None] * len(samples)
                column[i] = value
    return columns if wanted is None else {series: columns[series] for series in wanted if series in columns}


def _unkept(conn: Any, upto: int, kept: dict, wanted: Optional[set]) -> list:
    """The ``(series, vals)`` of a group's series (of ``wanted``) with no summary kept."""
    ids = [series for (series,) in conn.execute("SELECT series FROM chunks WHERE upto = ?", (upto,))
           if series not in kept and (wanted is None or series in wanted)]
    rows = []
    for i in range(0, len(ids), 500):
        part = ids[i:i + 500]
        rows += conn.execute("SELECT series, vals FROM chunks WHERE upto = ? AND series IN (%s)"
                             % ", ".join("?" * len(part)), [upto] + part).fetchall()
    return rows


def _values_part(vals: bytes, runs: list) -> Optional[Part]:
    """A chunk's part from its values, of ``runs`` (those inside the window): no summary kept
    (a constant, a counter, full-precision floats), or a read of a few series."""
    scaled_values = codec.decode_scaled(vals)
    if scaled_values is not None:
        k, ints, floats = scaled_values
        made = summarize(ints, runs)
        return None if made is None else (k, floats) + made
    made = summarize(codec.decode(vals), runs)
    return None if made is None else (None, True) + made


def _staged_part(values: list, all_runs: list, window: "_Window", k: Optional[int]) -> Optional[Part]:
    """The staged samples' part (of the runs inside ``window``), scaled as the series' stored
    part when its values allow."""
    runs = all_runs[window.first:window.past]
    if None not in values and k is not None:
        p = 10 ** k
        try:
            ints = list(map(round, map(mul, values, repeat(p))))
        except (OverflowError, ValueError):  # an infinity, a NaN: not a decimal
            ints = None
        if ints is not None and list(map(truediv, ints, repeat(p))) == values:  # each is m / 10**k
            made = summarize(ints, runs)
            floats = any(isinstance(v, float) for v in values)
            return None if made is None else (k, floats) + made
    made = summarize(values, runs)
    return None if made is None else (None, True) + made


class _Window(NamedTuple):
    """A group's runs inside the window: ``[first, past)``; ``bounds``, each bucket's runs
    ``[a, b)`` counted from ``first``; ``offset``, the first bucket's place in the answer;
    ``whole``, a bucket a run."""
    first: int
    past: int
    bounds: list
    offset: int
    whole: bool


class _Reader:
    """Buckets as they are read, a group (or the staged samples) at a time, oldest first."""

    def __init__(self, k: int, low: int, high: int) -> None:
        self.k, self.low, self.high = k, low, high
        self.keys: List[int] = []        # the buckets so far, ascending
        self.columns: Columns = {}
        self.scales: Dict[int, Optional[int]] = {}   # series id -> k of its scaled ints, None: numbers
        self.floats: Dict[int, bool] = {}            # series id -> whether any value was a float

    def begin(self, runs: list) -> Optional["_Window"]:
        """Which of a group's ``runs`` (or the staged samples') fall in the window, and their
        buckets, now taken as the next ones; None: none does."""
        k = self.k
        inside = [i for i, (slot, _, _) in enumerate(runs) if self.low <= slot < self.high]
        if not inside:
            return None
        first, past = inside[0], inside[-1] + 1
        if past - first != len(inside):
            raise _Unsaid()  # slots out of order: a clock stepped back
        keys, bounds = [], []
        for i in range(past - first):
            key = runs[first + i][0] // k
            if keys and key == keys[-1]:
                bounds[-1][1] = i + 1
            elif keys and key < keys[-1]:
                raise _Unsaid()
            else:
                keys.append(key)
                bounds.append([i, i + 1])
        shared = bool(self.keys) and keys[0] == self.keys[-1]  # a bucket begun in the group before
        if self.keys and keys[0] < self.keys[-1]:
            raise _Unsaid()
        offset = len(self.keys) - shared
        self.keys.extend(keys[1:] if shared else keys)
        return _Window(first, past, bounds, offset, k == 1 and past - first == len(keys))

    def add(self, window: "_Window", parts: Any) -> None:
        """The ``(series, part)`` pairs of the runs ``begin`` gave ``window`` for (a summary a
        run inside it)."""
        offset = window.offset
        for series, part in parts:
            if part is None:
                raise _Unsaid()  # a NaN or an endless sum in a slot
            summary = self._in_series_scale(series, part)
            new = summary if window.whole else _combine(summary, window.bounds)
            column = self.columns.get(series)
            if column is None:
                column = self.columns[series] = [[], [], [], []]
            held = len(column[0])
            if held < offset:
                for part_, fill in zip(column, (0, None, None, None)):
                    part_.extend([fill] * (offset - held))
            if held > offset:  # the shared bucket: merge its first
                _merge(column, offset, [part_[0] for part_ in new])
                new = [part_[1:] for part_ in new]
            for part_, more in zip(column, new):
                part_ += more

    def _in_series_scale(self, series: int, part: Part) -> tuple:
        """``part``'s counts, mins, maxes and sums in the scale the series' column is kept in:
        the larger of the two ``k`` (the column's rescaled when it is the new one's), numbers
        when either is not scaled."""
        k, floats, summary = part[0], part[1], part[2:]
        self.floats[series] = floats or self.floats.get(series, False)
        if series not in self.scales:
            self.scales[series] = k
            return summary
        held = self.scales[series]
        if held == k:
            return summary
        if held is None or k is None:
            if k is not None:
                summary = _unscaled(summary, k)
            else:
                self.columns[series][:] = _unscaled(self.columns[series], held)
                self.scales[series] = None
            return summary
        if k > held:
            self.columns[series][:] = _rescaled(self.columns[series], k - held)
            self.scales[series] = k
            return summary
        return _rescaled(summary, held - k)

    def answer(self) -> Optional["Buckets"]:
        if not self.keys:
            return None
        width = self.k * AGG_S
        count = len(self.keys)
        out = {}
        for series, (counts, mins, maxes, sums) in self.columns.items():
            if len(counts) < count:
                for part, fill in zip((counts, mins, maxes, sums), (0, None, None, None)):
                    part.extend([fill] * (count - len(part)))
            if not any(counts):
                continue
            k = self.scales.get(series)
            if k is None:
                out[series] = (None, True, mins, _means(counts, mins, maxes, sums), maxes)  # (a list)
            else:
                out[series] = (k, self.floats.get(series, True), mins, _Means(counts, sums, k), maxes)
        if not out:  # none of the series asked for has a value here: no buckets to show
            return None
        return Buckets([round(key * width, 3) for key in self.keys], out, width)


class Buckets:
    """A bucketed read's answer: ``times``, the buckets' starts; ``stats``, a series id's
    ``(k, floats, mins, avgs, maxes)``, with ``k`` and ``floats`` as in ``Part`` (the averages
    are floats); ``width``, a bucket's seconds. ``columns`` is the answer as numbers,
    ``encoded`` the same as JSON, written without making a float of each decimal."""

    def __init__(self, times: list, stats: dict, width: float) -> None:
        self.times, self.stats, self.width = times, stats, width

    def columns(self, names_by_id: dict) -> dict:
        named = sorted((names_by_id[i], stats) for i, stats in self.stats.items() if i in names_by_id)
        return {"ts": self.times, "series": {name: _listed(avgs) for name, (_, _, _, avgs, _) in named},
                "min": {name: _numbers(lows, k, floats) for name, (k, floats, lows, _, _) in named},
                "max": {name: _numbers(highs, k, floats) for name, (k, floats, _, _, highs) in named},
                "resolution": "full", "interval": self.width, "downsampled": True}

    def encoded(self, names_by_id: dict) -> bytes:
        """``json.dumps(self.columns(names_by_id))``, compact, with the mins and maxes of
        decimals written as their integers and an exponent (``100241e-3``: the same number to
        every JSON reader, as the decoder's ``m / 10**k`` is): their float form was most of the
        time a long read took."""
        named = [(_json(name), stats) for name, stats in sorted(  # (in ``columns``' order: by name, not by its JSON)
            (names_by_id[i], stats) for i, stats in self.stats.items() if i in names_by_id)]
        return ('{"ts":%s,"series":{%s},"min":{%s},"max":{%s},"resolution":"full","interval":%s,'
                '"downsampled":true}' % (
                    _json(self.times),
                    ",".join("%s:%s" % (name, avgs.encoded() if isinstance(avgs, _Means) else _json(avgs))
                             for name, (_, _, _, avgs, _) in named),
                    ",".join("%s:%s" % (name, _scaled_json(lows, k, floats))
                             for name, (k, floats, lows, _, _) in named),
                    ",".join("%s:%s" % (name, _scaled_json(highs, k, floats))
                             for name, (k, floats, _, _, highs) in named),
                    _json(self.width))).encode("utf-8")


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _numbers(column: list, k: Optional[int], floats: bool) -> list:
    """A column of ints scaled by ``10**k`` as the numbers they are (as ``codec.decode``)."""
    if k is None or (k == 0 and not floats):
        return column
    p = 10 ** k
    if None not in column:
        return list(map(truediv, column, repeat(p)))
    return [None if m is None else m / p for m in column]


def _scaled_json(column: list, k: Optional[int], floats: bool) -> str:
    """``_json(_numbers(column, k, floats))``, as numbers JSON reads the same, written from the
    ints: ``m`` with ``e-k`` after it (``.0`` for a float with ``k`` 0), by one ``%`` format
    (in C, twice as fast as ``json.dumps`` of the ints: bench/RESULTS-history-query.md)."""
    if k is None or not column:
        return _json(column)
    after = "e-%d" % k if k else ".0" if floats else ""
    if None in column:  # (an empty bucket: at a window's ends)
        text = _json(column).replace(",", after + ",").replace("]", after + "]")
        return text.replace("null" + after, "null")
    return "[%s]" % ((("%d" + after + ",") * len(column)) % tuple(column))[:-1]


def _unscaled(summary: Any, k: int) -> list:
    counts, mins, maxes, sums = summary
    return [counts] + [_numbers(part, k, True) for part in (mins, maxes, sums)]


def _rescaled(summary: Any, more: int) -> list:
    counts, mins, maxes, sums = summary
    times = 10 ** more
    return [counts] + [[None if m is None else m * times for m in part] for part in (mins, maxes, sums)]


class _Means:
    """A column's averages from its ints: ``sum / (count * 10**k)`` a bucket, the exact mean
    rounded once to a float (so within the bucket's min and max). ``encoded`` writes them as
    JSON without a float's shortest form where it can: where a bucket's count is ``2**a * 5**b``
    (10 samples a slot at 1 s: nearly every bucket) the mean is a decimal, written as its
    integer and an exponent, as the mins and maxes are."""

    def __init__(self, counts: list, sums: list, k: int) -> None:
        self.counts, self.sums, self.k = counts, sums, k

    def floats(self) -> list:
        p = 10 ** self.k
        if 0 not in self.counts:
            return list(map(truediv, self.sums, map(mul, self.counts, repeat(p))))
        return [None if c == 0 else total / (c * p) for total, c in zip(self.sums, self.counts)]

    def encoded(self) -> str:
        counts, n = self.counts, len(self.counts)
        c = counts[n // 2]
        digits = _decimal_digits(c)
        a, b = 0, n
        while a < b and counts[a] != c:
            a += 1
        while b > a and counts[b - 1] != c:
            b -= 1
        if digits is None or b - a < 2 or counts[a:b].count(c) != b - a:
            return _json(self.floats())
        factor = 10 ** digits // c  # (1 for 10 samples a slot: the sums are the mantissas)
        mantissas = self.sums[a:b] if factor == 1 else list(map(mul, self.sums[a:b], repeat(factor)))
        middle = _scaled_json(mantissas, self.k + digits, True)
        if a == 0 and b == n:
            return middle
        p = 10 ** self.k
        head = [None if x == 0 else total / (x * p) for total, x in zip(self.sums[:a], counts[:a])]
        tail = [None if x == 0 else total / (x * p) for total, x in zip(self.sums[b:], counts[b:])]
        return "[" + ",".join(part for part in (_json(head)[1:-1], middle[1:-1], _json(tail)[1:-1]) if part) + "]"


def _decimal_digits(count: int) -> Optional[int]:
    """``d`` with ``10**d / count`` an int (a mean over ``count`` is a decimal of ``d`` more
    digits), or None."""
    if count <= 0:
        return None
    for d in range(7):
        if 10 ** d % count == 0:
            return d
    return None


def _listed(avgs: Any) -> list:
    return avgs.floats() if isinstance(avgs, _Means) else avgs


def _means(counts: list, mins: list, maxes: list, sums: list) -> list:
    """Each bucket's sum over its count (None where empty), held within its min and max. Empty
    buckets are mostly at the window's ends (before the first sample, after the last), so the
    full ones between are divided in C; a gap between full ones takes the slower way."""
    if 0 not in counts:
        return _within(list(map(truediv, sums, counts)), mins, maxes)
    n = len(counts)
    a = next(i for i, c in enumerate(counts) if c)
    b = n - next(i for i, c in enumerate(reversed(counts)) if c)
    if 0 not in counts[a:b]:
        inner = _within(list(map(truediv, sums[a:b], counts[a:b])), mins[a:b], maxes[a:b])
        return [None] * a + inner + [None] * (n - b)
    means = [None if c == 0 else total / c for total, c in zip(sums, counts)]
    return [None if m is None else min(max(m, lo), hi) for m, lo, hi in zip(means, mins, maxes)]


def _within(means: list, mins: list, maxes: list) -> list:
    """``means`` each held within its bucket's min and max (a rounded sum over a count may land
    a hair outside); checked first in C, since it nearly always holds: 3x faster than clamping
    each (an hour of 1,000 series: 0.08 s of the read)."""
    if all(map(le, mins, means)) and all(map(le, means, maxes)):
        return means
    return list(map(min, map(max, means, mins), maxes))


def _combine(summary: tuple, bounds: list) -> List[list]:
    """A group's runs' summary as buckets: ``bounds`` are each bucket's runs ``[a, b)``."""
    counts, mins, maxes, sums = summary
    slices = [(a, b) for a, b in bounds]
    if 0 not in counts[slices[0][0]:slices[-1][1]]:
        return [list(map(sum, [counts[a:b] for a, b in slices])),
                list(map(min, [mins[a:b] for a, b in slices])),
                list(map(max, [maxes[a:b] for a, b in slices])),
                _sums([sums[a:b] for a, b in slices])]
    out: List[list] = [[], [], [], []]
    for a, b in slices:
        kept = [i for i in range(a, b) if counts[i]]
        if not kept:
            for part, fill in zip(out, (0, None, None, None)):
                part.append(fill)
            continue
        out[0].append(sum(counts[i] for i in kept))
        out[1].append(min(mins[i] for i in kept))
        out[2].append(max(maxes[i] for i in kept))
        out[3].append(_sums([[sums[i] for i in kept]])[0])
    return out


def _sums(parts: list) -> list:
    totals = list(map(sum, parts))
    if not all(isinstance(t, int) or math.isfinite(t) for t in totals):
        raise _Unsaid()
    return totals


def _merge(column: list, at: int, new: list) -> None:
    """Fold one bucket's ``[count, min, max, sum]`` into ``column``'s bucket ``at``."""
    counts, mins, maxes, sums = column
    n, lo, hi, total = new
    if not n:
        return
    if not counts[at]:
        counts[at], mins[at], maxes[at], sums[at] = n, lo, hi, total
        return
    counts[at] += n
    if lo < mins[at]:
        mins[at] = lo
    if hi > maxes[at]:
        maxes[at] = hi
    total += sums[at]  # (a bucket split by a group's end: once a series a group, so kept cheap)
    if not (isinstance(total, int) or math.isfinite(total)):
        raise _Unsaid()
    sums[at] = total
