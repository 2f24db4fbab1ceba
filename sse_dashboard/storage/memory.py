"""What the dashboard keeps in memory: the recent samples, and the store that reads them.

One concept: storage in memory, the twin of the SQLite store. ``History`` is a bounded ring
of recent samples (rows of ``(ts, {series: value})``, served as columns); ``MemoryStore``
answers the reads ``Store`` answers from that ring and the event log, for a dashboard that
keeps nothing on disk, so the layers above ask one store and never "memory or SQLite?".

Invariants:
- memory is bounded: at most ``maxlen`` rows, each holding the series of one sample, whose
  number the registry bounds (``MAX_METRICS``); events are the event log's (its own bounds);
- rows are never mutated once appended (``forget`` replaces them), so a reader holding one
  keeps a consistent row without a lock;
- a ``MemoryStore`` read gives what the SQLite store's gives for the same samples and events
  (tests/test_memory_store.py), within what memory still holds.
"""

from __future__ import annotations

import math
import operator
import sys
import threading
import uuid
from collections import deque
from typing import Any, Iterator

from sse_dashboard.events import Event, EventFilter, EventLog, newest_within
from sse_dashboard.storage.jobs import MAX_RUNS

__all__ = ["History", "MemoryStore", "to_columns", "downsample", "finite_mean", "DEFAULT_HISTORY_S", "MAX_HISTORY_POINTS"]

DEFAULT_HISTORY_S = 900.0   # 15 minutes at full resolution
MAX_HISTORY_POINTS = 100_000


class History:
    """A bounded ring of recent samples, served as compact columns.

    >>> history = History(maxlen=600)
    >>> history.append(1700000000.0, {"system.cpu_percent": 3.5})
    >>> history.columns(seconds=300, now=1700000001.0)
    {'ts': [1700000000.0], 'series': {'system.cpu_percent': [3.5]}}

    Memory is bounded by ``maxlen`` rows times the number of series, which
    the registry bounds (``MAX_METRICS``).
    """

    def __init__(self, maxlen: int) -> None:
        if maxlen < 1:
            raise ValueError("history needs room for at least one sample")
        self._lock = threading.Lock()
        self._rows: deque[tuple[float, dict]] = deque(maxlen=maxlen)

    @classmethod
    def covering(cls, seconds: float, interval_s: float) -> "History":
        """Room for ``seconds`` of samples taken every ``interval_s`` (at least 10 rows, at
        most ``MAX_HISTORY_POINTS``)."""
        return cls(min(MAX_HISTORY_POINTS, max(10, int(math.ceil(seconds / interval_s)) + 1)))

    @property
    def maxlen(self) -> int:
        return self._rows.maxlen or 0

    def append(self, ts: float, flat: dict) -> None:
        with self._lock:
            self._rows.append((ts, flat))

    def forget(self, name: str) -> None:
        """Remove series ``name`` from every row (a deleted counter or gauge); rows are
        replaced, never mutated, so a reader holding one keeps a consistent row."""
        with self._lock:
            self._rows = deque(((ts, {k: v for k, v in flat.items() if k != name}) if name in flat else (ts, flat)
                                for ts, flat in self._rows), maxlen=self._rows.maxlen)

    def between(self, start: float, end: float) -> list[tuple[float, dict]]:
        """The (ts, series) rows with start <= ts <= end, oldest first (rows are never mutated)."""
        with self._lock:
            rows = list(self._rows)
        return [row for row in rows if start <= row[0] <= end]

    def rows(self, seconds: float, now: float | None = None) -> list[tuple[float, dict]]:
        """The rows of the last ``seconds`` (before ``now``, or before the newest row)."""
        with self._lock:
            if not self._rows:
                return []
            newest = self._rows[-1][0]
        end = newest if now is None else now
        return self.between(end - seconds, max(end, newest))

    def columns(self, seconds: float, now: float | None = None) -> dict:
        return to_columns(self.rows(seconds, now))


def to_columns(rows: list[tuple[float, dict]]) -> dict:
    """Rows of (ts, series) as ``{"ts": [...], "series": {name: [...]}}``, None where a series had no value."""
    names: dict[str, None] = {}
    for _, flat in rows:
        names.update(dict.fromkeys(flat))
    return {
        "ts": [ts for ts, _ in rows],
        "series": {name: [flat.get(name) for _, flat in rows] for name in sorted(names)},
    }


def downsample(columns: dict, points: int, start: float, end: float) -> dict:
    """At most ``points`` points a series: the window cut into ``points`` equal buckets, each
    with the average of its values and, beside it, their ``min`` and ``max`` (of the roll-ups'
    own min and max where the columns carry them). Columns with no more points come back as
    they are. Like Grafana's ``maxDataPoints``: an answer costs what it shows."""
    if len(columns["ts"]) <= points:
        return columns
    width = max((end - start) / points, 1e-9)
    index = [min(points - 1, max(0, int((ts - start) // width))) for ts in columns["ts"]]
    runs = _runs(index)
    out = {"ts": [round(start + bucket * width, 3) for bucket in sorted({bucket for bucket, _ in runs})],
           "series": {}, "min": {}, "max": {}}
    at = {ts_bucket: i for i, ts_bucket in enumerate(sorted({bucket for bucket, _ in runs}))}
    lows_of, highs_of = columns.get("min") or {}, columns.get("max") or {}
    order = [bucket for bucket, _ in runs]
    in_order = order == sorted(at)  # each bucket one run, ascending: time went forward (the common case)
    bounds = [ab for _, ab in runs]
    sizes = [b - a for a, b in bounds]
    for name, values in columns["series"].items():
        lows, highs = lows_of.get(name, values), highs_of.get(name, values)
        if in_order and None not in values:  # every bucket's values are one slice: no loop a value
            slices = [values[a:b] for a, b in bounds]
            mins = out["min"][name] = list(map(min, slices if lows is values else [lows[a:b] for a, b in bounds]))
            maxes = out["max"][name] = list(map(max, slices if highs is values else [highs[a:b] for a, b in bounds]))
            # (an average rounded n times may fall an ulp outside its bucket's min and max)
            out["series"][name] = list(map(min, map(max, _means(slices, sizes), mins), maxes))
            continue
        if in_order and lows is values and highs is values:  # full resolution, with gaps
            parts = [[v for v in part if v is not None] if None in part else part
                     for part in (values[a:b] for a, b in bounds)]
            out["min"][name] = [min(part) if part else None for part in parts]
            out["max"][name] = [max(part) if part else None for part in parts]
            out["series"][name] = _within([finite_mean(part) if part else None for part in parts],
                                          out["min"][name], out["max"][name])
            continue
        means, mins, maxes = [None] * len(at), [None] * len(at), [None] * len(at)
        whole = None not in values
        for bucket, (a, b) in runs:
            i = at[bucket]
            if whole:
                part, part_lows, part_highs = values[a:b], lows[a:b], highs[a:b]
            else:
                kept = [j for j in range(a, b) if values[j] is not None]
                if not kept:
                    continue
                part = [values[j] for j in kept]
                part_lows, part_highs = [lows[j] for j in kept], [highs[j] for j in kept]
            if means[i] is None:
                means[i], mins[i], maxes[i] = (finite_mean(part), len(part)), min(part_lows), max(part_highs)
            else:  # the same bucket again: timestamps out of order (a clock stepped back)
                mean, n = means[i]
                means[i] = (finite_mean([mean] * n + list(part)), n + len(part))
                mins[i], maxes[i] = min(mins[i], min(part_lows)), max(maxes[i], max(part_highs))
        out["series"][name] = _within([None if m is None else m[0] for m in means], mins, maxes)
        out["min"][name] = mins
        out["max"][name] = maxes
    out["resolution"] = columns.get("resolution", "full")
    out["interval"] = round(width, 3)
    out["downsampled"] = True
    return out


def _runs(index: list) -> list:
    """``(bucket, (first, past))``: the runs of equal buckets in ``index``."""
    runs: list = []
    first = 0
    for i in range(1, len(index) + 1):
        if i == len(index) or index[i] != index[first]:
            runs.append((index[first], (first, i)))
            first = i
    return runs


def _within(means: list, mins: list, maxes: list) -> list:
    return [None if m is None else min(max(m, lo), hi) for m, lo, hi in zip(means, mins, maxes)]


def _means(slices: list, sizes: list) -> list:
    """The average of each slice, as ``_mean`` gives it, computed in C when every sum is finite."""
    sums = list(map(sum, slices))
    try:
        if all(map(math.isfinite, sums)):
            return list(map(operator.truediv, sums, sizes))
    except OverflowError:  # an int sum beyond a float
        pass
    return [finite_mean(part) for part in slices]


def finite_mean(values: list) -> float:
    """The average, finite for any finite values (a plain sum of two 1e308s is infinity)."""
    total = sum(values)
    if isinstance(total, int) or math.isfinite(total):
        try:
            return total / len(values)
        except OverflowError:  # an int sum beyond a float
            return math.copysign(sys.float_info.max, total)
    total = 0.0
    for value in values:
        total += value / len(values)
    return total if math.isfinite(total) else math.copysign(sys.float_info.max, total)


class MemoryStore:
    """Storage's reads answered from memory: the store of a dashboard without a data folder.

    >>> events = EventLog()
    >>> history = History.covering(900, interval_s=1.0)
    >>> store = MemoryStore(history, events)
    >>> sampler = Sampler(registry, collector, history=history, record=store.enqueue_sample)
    >>> store.history_columns(time.time() - 300, time.time())

    The reads of ``Store`` (``history_columns``, ``iter_history_rows``, ``iter_events``,
    ``recent_events``, ``last_event_id``, ``metric_state``, ``read_meta``, ``problem``,
    ``health``, ``epoch``) and its lifecycle (``start``, ``flush``, ``close``, ``announce``).
    It writes nothing of its own: the sampler appends each sample to ``history`` and the event
    log keeps the events, so ``enqueue_sample`` does nothing and there is no ``insert_event``;
    ``journal`` is None (the registry then keeps no unsaved set). Named values
    (``write_meta``) last as long as the process. ``unavailable``: why the SQLite store could
    not be opened, for /api/health (the event log refuses posts itself).

    Use ``Store`` (``open_store()``) when anything must survive a restart.
    """

    durable = False       # nothing acknowledged survives a restart (Store: True)
    journal = None        # MetricsRegistry(journal=store.journal): nothing to commit to
    last_error = None
    dropped_samples = 0

    def __init__(self, history: History, events: EventLog, epoch: str | None = None,
                 unavailable: str | None = None) -> None:
        self.history = history
        self.events = events
        self.epoch = epoch if epoch is not None else uuid.uuid4().hex[:12]  # this run's: ids restart with it
        self.unavailable = unavailable
        self._lock = threading.Lock()
        self._meta: dict[str, str] = {}
        self._jobs: dict[str, str] = {}
        self._runs: dict[str, dict[int, dict]] = {}

    def problem(self) -> str | None:
        """None: nothing here can fail to keep what is acknowledged (it keeps it in memory)."""
        return None

    def health(self) -> str:
        """What /api/health says of storage."""
        return "unavailable: " + self.unavailable if self.unavailable else "memory"

    def announce(self, url: str) -> None:
        """Nothing to announce: no data folder is held."""

    def start(self) -> None:
        """No writer thread to start."""

    def flush(self, timeout_s: float = 5.0) -> None:
        """Nothing is queued."""

    def close(self, timeout_s: float = 5.0) -> None:
        """Nothing to write or let go."""

    # --- history ----------------------------------------------------------------------

    def record(self, sample: Any) -> None:
        """Keep one sample (a ``sampler.Sample``; the sampler calls this each tick)."""
        self.history.append(sample.ts, sample.series)

    def enqueue_sample(self, ts: float, flat: dict) -> None:
        """Keep one sample's series (what ``record`` does, by its parts)."""
        self.history.append(ts, flat)

    def forget_series(self, name: str) -> None:
        """A deleted counter's or gauge's history (``counters.jobs``) goes from memory."""
        self.history.forget(name)

    def history_buckets(self, start: float, end: float, names: list | None, points: int) -> None:
        """None: memory keeps no summaries (``downsample`` the columns)."""
        return None

    def history_buckets_json(self, start: float, end: float, names: list | None, points: int) -> None:
        """None, as ``history_buckets``."""
        return None

    def history_columns(self, start: float, end: float, names: list | None = None) -> dict:
        """The window's rows as columns (always full resolution: memory keeps no roll-ups), of
        ``names`` only when given (rows without any of them left out, as SQLite's are)."""
        rows = self.history.between(start, end)
        if names is not None:
            wanted = set(names)
            rows = [(ts, {k: v for k, v in flat.items() if k in wanted}) for ts, flat in rows]
            rows = [row for row in rows if row[1]]
        return to_columns(rows)

    def iter_history_rows(self, start: float, end: float) -> Iterator[tuple[float, dict]]:
        """The window's rows, oldest first."""
        return iter(self.history.between(start, end))

    # --- events ---------------------------------------------------------------------

    def last_event_id(self) -> int:
        return self.events.last_id

    def recent_events(self, limit: int, max_chars: int | None = None) -> list[Event]:
        """The newest events, oldest first: at most ``limit``, and about ``max_chars`` of JSON."""
        return newest_within(reversed(self.events.newest(limit)), max_chars)

    def iter_events(self, after_id: int = 0, start: float | None = None, end: float | None = None,
                    level: str | None = None, limit: int | None = None,
                    only: EventFilter | None = None, newest: bool = False) -> Iterator[Event]:
        """Events after ``after_id`` with ``start <= ts <= end``, of ``level``, matching ``only``,
        oldest first; ``newest``: the newest ``limit`` of them, newest first (as ``Store``'s,
        among the events the log still holds)."""
        events = [event for event in self.events.since(after_id, level=level, only=only)
                  if (start is None or event.ts >= start) and (end is None or event.ts <= end)]
        if newest:
            events.reverse()
        yield from (events if limit is None else events[:limit])

    # --- counters, gauges and named values ------------------------------------------

    def metric_state(self) -> tuple[dict, dict, dict]:
        """Nothing kept from a previous run."""
        return {}, {}, {}

    # --- job monitors ---------------------------------------------------------------

    def save_job(self, job: str, state: str | None, run: dict | None = None) -> None:
        """Keep a job's state and one run record (the newest ``MAX_RUNS`` a job), as ``Store`` does."""
        with self._lock:
            if state is None:
                self._jobs.pop(job, None)
                self._runs.pop(job, None)
            else:
                self._jobs[job] = state
            if run is not None:
                runs = self._runs.setdefault(job, {})
                runs[run["n"]] = dict(run)
                for n in [n for n in runs if n <= run["n"] - MAX_RUNS]:
                    del runs[n]

    def job_states(self) -> dict[str, str]:
        with self._lock:
            return dict(self._jobs)

    def job_runs(self, job: str, limit: int, before: int | None = None) -> list[dict]:
        with self._lock:
            runs = self._runs.get(job, {})
            return [dict(runs[n]) for n in sorted(runs, reverse=True) if before is None or n < before][:limit]

    def read_meta(self, key: str) -> str | None:
        with self._lock:
            return self._meta.get(key)

    def read_meta_prefix(self, prefix: str) -> dict:
        with self._lock:
            return {key: value for key, value in self._meta.items() if key.startswith(prefix)}

    def write_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._meta[key] = value
