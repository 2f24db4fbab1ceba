"""Synthetic data for ``--demo``: counters, gauges and events of every level.

One concept: a newcomer sees a live page at once. It uses only the public
``MetricsRegistry`` and ``EventLog`` API, exactly as an embedding application would.
"""

from __future__ import annotations

import math
import random
import threading
import time

from sse_dashboard.events import EventLog
from sse_dashboard.registry import MetricsRegistry, RegistrySealed
from sse_dashboard.storage import StorageError

__all__ = ["DemoFeeder"]

_MESSAGES = (
    ("info", "worker", "job {n} finished in {ms} ms"),
    ("info", "scheduler", "queued batch {n}"),
    ("warning", "worker", "job {n} retried after a timeout ({ms} ms)"),
    ("error", "storage", "write failed for job {n}: disk quota exceeded"),
)


class DemoFeeder:
    """A daemon thread that updates demo metrics every ``period_s`` and posts an event now and then.

    >>> DemoFeeder(registry, events, stop=threading.Event()).start()
    """

    def __init__(self, registry: MetricsRegistry, events: EventLog, stop: threading.Event,
                 period_s: float = 0.5, seed: int | None = None) -> None:
        self.registry = registry
        self.events = events
        self.stop = stop
        self.period_s = period_s
        self._random = random.Random(seed)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, name="demo", daemon=True)
        thread.start()
        return thread

    def _run(self) -> None:
        started = time.monotonic()
        n = 0
        self.events.post("info", "demo mode: these counters, gauges and events are synthetic", source="demo")
        while not self.stop.wait(self.period_s):
            n += 1
            try:
                self._feed(n, (time.monotonic() - started) / 20.0)
            except (RegistrySealed, StorageError):
                return  # the dashboard is stopping, or storage refuses: nothing to demonstrate

    def _feed(self, n: int, phase: float) -> None:
        self.registry.update(
            counters={"jobs_done": self._random.randint(0, 4), "bytes_uploaded": self._random.randint(0, 2_000_000)},
            gauges={
                "queue_depth": round(20 + 15 * math.sin(phase) + self._random.uniform(-2, 2), 1),
                "active_workers": self._random.randint(2, 8),
                "temperature_c": round(45 + 5 * math.cos(phase / 2), 1),
            },
        )
        if n % 6 == 0:
            level, source, text = self._random.choice(_MESSAGES)
            self.events.post(level, text.format(n=n, ms=self._random.randint(20, 900)), source=source,
                             data={"job": n})
