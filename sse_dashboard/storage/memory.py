"""What the dashboard keeps in memory: the recent samples, as a bounded ring.

One concept: the in-memory twin of the stored history, read the same way (rows of
``(ts, {series: value})``, served as columns).

Invariants:
- memory is bounded: at most ``maxlen`` rows, each holding the series of one sample, whose
  number the registry bounds (``MAX_METRICS``);
- rows are never mutated once appended (``forget`` replaces them), so a reader holding one
  keeps a consistent row without a lock.
"""

from __future__ import annotations

import math
import threading
from collections import deque

__all__ = ["History", "to_columns", "DEFAULT_HISTORY_S", "MAX_HISTORY_POINTS"]

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
