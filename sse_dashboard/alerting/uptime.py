"""Uptime of one status-page component (#26): seconds up and down, per UTC day and per hour.

One concept: the ledger. A component is seen in one state at each sample; the time from one
sample to the next counts for the state seen at the first, split at every hour and day
boundary it crosses. ``uptime`` answers the page's windows from those buckets: ``24h`` is the
current hour and the 24 before it, ``7d``/``30d``/``90d`` the current UTC day and the N-1
before it. A gap longer than ``max_gap_s`` (a restart, a stopped sampler) counts for nothing:
nobody saw the component then.

Invariants:
- bounded: at most ``MAX_DAYS`` day buckets and ``MAX_HOURS`` hour buckets; older ones go;
- only ``up`` and ``down`` are counted (``late`` counts as up: it is within its grace);
  ``unknown`` and ``maintenance`` count for neither, so a fraction is up / (up + down), or
  None when nothing was counted;
- ``state()``/``from_state()`` round-trip, so a restart keeps the bars.

May import: the standard library.
"""

from __future__ import annotations

import math
import time
from typing import Any

__all__ = ["UptimeLedger", "WINDOWS", "MAX_DAYS", "DAY_S", "HOUR_S", "counted_as", "day_label"]

DAY_S = 86400
HOUR_S = 3600
MAX_DAYS = 90                 # the page's 90 daily bars
MAX_HOURS = 25                # the current hour and the 24 before it
WINDOWS = (("24h", None), ("7d", 7), ("30d", 30), ("90d", 90))  # name -> days (None: hourly)
DEFAULT_MAX_GAP_S = 120.0


def counted_as(state: str | None) -> str | None:
    """The bucket a state counts in: "up", "down", or None (not counted)."""
    if state in ("up", "late"):
        return "up"
    if state == "down":
        return "down"
    return None


def day_label(day: int) -> str:
    """A day number (days since 1970-01-01, UTC) as YYYY-MM-DD."""
    return time.strftime("%Y-%m-%d", time.gmtime(day * DAY_S))


class UptimeLedger:
    """Seconds up and down per day and per hour for one component; not thread-safe (its page's
    lock guards it).

    >>> ledger = UptimeLedger()
    >>> ledger.observe(ts, "up")          # each sample
    >>> ledger.uptime(now)                # {"24h": 0.99, "7d": ..., "30d": ..., "90d": ...}
    """

    def __init__(self, max_gap_s: float = DEFAULT_MAX_GAP_S) -> None:
        self.max_gap_s = max_gap_s
        self.days: dict[int, list[float]] = {}    # day -> [up_s, down_s]
        self.hours: dict[int, list[float]] = {}   # hour -> [up_s, down_s]
        self.last_ts: float | None = None
        self.last_state: str | None = None

    def observe(self, ts: float, state: str) -> None:
        """The component is in ``state`` at ``ts``: the time since the last sample counts for the
        state seen then. A sample from the past (the clock stepped back) only sets the state."""
        last_ts, last_state = self.last_ts, self.last_state
        self.last_ts, self.last_state = ts, state
        if last_ts is None or ts <= last_ts or ts - last_ts > self.max_gap_s:
            return
        self.add(last_ts, ts, last_state)

    def add(self, start: float, end: float, state: str | None) -> None:
        """Count [start, end) for ``state``, split at hour (and so day) boundaries."""
        column = {"up": 0, "down": 1}.get(counted_as(state) or "")
        if column is None or end <= start:
            return
        t = start
        while t < end:
            hour = math.floor(t / HOUR_S)
            stop = min(end, (hour + 1) * HOUR_S)
            self.hours.setdefault(hour, [0.0, 0.0])[column] += stop - t
            self.days.setdefault(hour * HOUR_S // DAY_S, [0.0, 0.0])[column] += stop - t
            t = stop
        self._trim(math.floor(end / HOUR_S))

    def _trim(self, hour_now: int) -> None:
        for hour in [h for h in self.hours if h <= hour_now - MAX_HOURS]:
            del self.hours[hour]
        day_now = hour_now * HOUR_S // DAY_S
        for day in [d for d in self.days if d <= day_now - MAX_DAYS]:
            del self.days[day]

    def uptime(self, now: float) -> dict:
        """Each window's fraction up (rounded to 1e-6), or None when nothing was counted in it."""
        hour_now, day_now = math.floor(now / HOUR_S), math.floor(now / DAY_S)
        answer = {}
        for name, days in WINDOWS:
            if days is None:
                cells = [self.hours.get(h) for h in range(hour_now - MAX_HOURS + 1, hour_now + 1)]
            else:
                cells = [self.days.get(d) for d in range(day_now - days + 1, day_now + 1)]
            answer[name] = _fraction(cells)
        return answer

    def bars(self, now: float) -> list:
        """The ``MAX_DAYS`` days up to today, oldest first: each day's fraction up, or None."""
        day_now = math.floor(now / DAY_S)
        return [_fraction([self.days.get(d)]) for d in range(day_now - MAX_DAYS + 1, day_now + 1)]

    def state(self) -> dict:
        return {"days": {str(d): [round(v, 3) for v in cell] for d, cell in self.days.items()},
                "hours": {str(h): [round(v, 3) for v in cell] for h, cell in self.hours.items()},
                "last_ts": self.last_ts, "last_state": self.last_state}

    @classmethod
    def from_state(cls, kept: Any, max_gap_s: float = DEFAULT_MAX_GAP_S) -> UptimeLedger:
        """A ledger from ``state()``; anything malformed is dropped, never fatal."""
        ledger = cls(max_gap_s)
        if not isinstance(kept, dict):
            return ledger
        for key, target in (("days", ledger.days), ("hours", ledger.hours)):
            for slot, cell in (kept.get(key) or {}).items():
                try:
                    up, down = (float(v) for v in cell)
                    target[int(slot)] = [up, down]
                except (TypeError, ValueError):
                    continue
        if isinstance(kept.get("last_ts"), (int, float)):
            ledger.last_ts = float(kept["last_ts"])
            ledger.last_state = kept.get("last_state") if isinstance(kept.get("last_state"), str) else None
        return ledger


def _fraction(cells: list) -> float | None:
    up = sum(cell[0] for cell in cells if cell)
    down = sum(cell[1] for cell in cells if cell)
    return None if up + down <= 0 else round(up / (up + down), 6)
