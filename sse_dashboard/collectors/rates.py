"""Per-second rates of totals that only grow (bytes sent, bytes read, a counter).

One concept: a rate is the growth of a total between two readings divided by the time between
them, as psutil's ``nettop.py`` computes it: never the total divided by an uptime, never a
difference without its measured interval.

Invariants:
- a rate is ``None`` on a key's first reading, when the clock did not move forward, and when
  the total went down (a counter wrapped, a device was replaced, a process restarted): never
  negative, never infinite, never a made-up 0;
- every ``update()`` is one reading of a whole group of keys, at one instant; a key missing
  from it (a device gone) or given as ``None`` (unknown) is forgotten, so containers that come
  and go with a veth each do not grow the memory.

Intentional choice: the clock is injected (``time.monotonic`` by default, so a wall-clock step
never makes a rate); a caller whose readings carry their own time (a snapshot's ``ts``) passes
it as ``now``.
"""

from __future__ import annotations

import time
from typing import Callable, Mapping

__all__ = ["Rates"]


class Rates:
    """Rates per second of a group of growing totals, one ``update()`` per reading.

    >>> rates = Rates(clock=iter([10.0, 12.0]).__next__)
    >>> rates.update({"eth0:recv": 1000, "eth0:sent": 20})   # the first reading: no rate yet
    {'eth0:recv': None, 'eth0:sent': None}
    >>> rates.update({"eth0:recv": 3000, "eth0:sent": 20})   # two seconds later
    {'eth0:recv': 1000.0, 'eth0:sent': 0.0}

    Use one ``Rates`` per group that is read together (every interface, every disk): an
    ``update()`` forgets the keys it is not given. ``ndigits`` rounds the rates (``None``: not).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, ndigits: int | None = None) -> None:
        self._clock = clock
        self._ndigits = ndigits
        self._previous: dict[str, tuple[float, float]] = {}   # key -> (when, total) of the last reading

    def update(self, totals: Mapping[str, float | None], now: float | None = None) -> dict[str, float | None]:
        """One reading of every key's total (``None``: unknown now); returns each key's rate."""
        now = self._clock() if now is None else now
        rates: dict[str, float | None] = {}
        for key, total in totals.items():
            before = self._previous.get(key)
            rate = None
            if total is not None and before is not None and now > before[0] and total >= before[1]:
                rate = (total - before[1]) / (now - before[0])
                if self._ndigits is not None:
                    rate = round(rate, self._ndigits)
            rates[key] = rate
        self._previous = {key: (now, total) for key, total in totals.items() if total is not None}
        return rates
