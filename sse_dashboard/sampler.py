"""The sampler: one snapshot per interval, taken once for every client.

One concept: the tick. Each interval the sampler reads the system collector and the registry,
builds one snapshot, lets the judges (alerts) add to it, encodes its JSON once and hands one
``Sample`` to the subscribers it was given (storage, the stream hub).

Invariants:
- only the sampler thread calls the system collector, so only it calls psutil (see
  ``collectors.system``);
- a published snapshot is never mutated; its JSON is encoded once per tick and the same bytes
  go to every client;
- every number in a snapshot is finite or ``None`` (``allow_nan=False``);
- ticks sit on a fixed grid (no drift by the cost of sampling); after a long stall (suspend)
  the missed ticks are skipped, not replayed;
- a failing collector, feeder, judge or subscriber is logged and the tick goes on: sampling
  never stops.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from sse_dashboard.collectors.system import SystemCollector
from sse_dashboard.registry import MetricsRegistry, is_finite_number

__all__ = ["Sample", "Sampler", "flatten_snapshot", "encode_json"]

log = logging.getLogger(__name__)


def encode_json(obj: Any) -> bytes:
    """Compact UTF-8 JSON, refusing NaN/Infinity (they are not JSON)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def flatten_snapshot(snapshot: dict) -> dict:
    """The numeric series of one snapshot as ``{"system.cpu_percent": 3.5, "gauges.q": 7, ...}``.

    Series names are interned: every row of the history shares one copy of
    each name instead of holding its own (1,000 long names times 900 rows).
    """
    flat: dict[str, float] = {}
    for key, value in (snapshot.get("system") or {}).items():
        if key == "cpu_per_core" and isinstance(value, list):
            for i, core in enumerate(value):
                if is_finite_number(core):
                    flat[sys.intern("system.cpu_core_%d_percent" % i)] = core
        elif is_finite_number(value):
            flat[sys.intern("system." + key)] = value
    for section in ("counters", "gauges"):
        for name, value in (snapshot.get(section) or {}).items():
            flat[sys.intern(section + "." + name)] = value
    server = snapshot.get("server") or {}
    for key in ("clients", "rss_bytes"):
        if is_finite_number(server.get(key)):
            flat[sys.intern("server." + key)] = server[key]
    return flat


@dataclass(frozen=True)
class Sample:
    """One tick, as every subscriber gets it: the snapshot (never mutated), its JSON encoded
    once, and its numeric series (``flatten_snapshot``)."""

    seq: int
    ts: float
    snapshot: dict
    body: bytes
    series: dict


class Sampler:
    """One daemon thread that takes one sample per interval for everybody.

    >>> sampler = Sampler(registry, make_system_collector(), interval_s=1.0,
    ...                   prepare=[statsd.flush], judges=[alerts.judge], subscribers=[store.record, hub.publish])
    >>> sampler.start()          # returns once the first sample exists
    >>> snapshot, body = sampler.latest()

    Each tick runs, in this order:

    1. ``prepare``: what turns the interval into values first (StatsD's timers and sets);
    2. the system collector, the registry (its unsaved state kept first), ``server_stats()``;
    3. ``judges``: each reads the snapshot and returns keys it adds (the active alerts);
    4. the JSON, encoded once, and one ``Sample`` handed to each of ``subscribers`` in order
       (storage or the in-memory history, then the stream hub). Nobody asks the sampler again;
       ``latest()`` is for readers that come later (a request, a stream's first frame).
    """

    def __init__(
        self,
        registry: MetricsRegistry,
        collector: SystemCollector,
        interval_s: float = 1.0,
        *,
        server_stats: Callable[[], dict] | None = None,
        extra: dict | None = None,
        prepare: Iterable[Callable[[], None]] = (),
        judges: Iterable[Callable[[dict], dict]] = (),
        subscribers: Iterable[Callable[[Sample], None]] = (),
    ) -> None:
        if not (interval_s > 0 and math.isfinite(interval_s)):
            raise ValueError("interval must be a positive number of seconds")
        self.registry = registry
        self.collector = collector
        self.interval_s = interval_s
        self._server_stats = server_stats or dict
        self._extra = dict(extra or {})
        self._prepare = tuple(prepare)
        self._judges = tuple(judges)
        self._subscribers = tuple(subscribers)
        self._lock = threading.Lock()
        self._latest: Sample | None = None
        self._seq = 0
        self._stop = threading.Event()
        self._first = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, timeout_s: float = 5.0) -> None:
        """Start the thread and wait (bounded) for the first sample."""
        if self._thread is not None:
            raise RuntimeError("sampler already started")
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self._thread.start()
        self._first.wait(timeout_s)

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    @property
    def seq(self) -> int:
        return self._seq

    def latest(self) -> tuple[dict, bytes]:
        """The newest snapshot and its JSON bytes (never mutate the dict).

        No lock: the sample is published by one reference assignment, which is atomic."""
        latest = self._latest
        if latest is None:
            raise RuntimeError("no sample yet: call start() first")
        return latest.snapshot, latest.body

    def _run(self) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            self.tick()
            self._first.set()
            # Ticks are scheduled on a fixed grid so the period does not drift by the
            # cost of sampling; after a long stall (suspend) skip the missed ticks.
            next_tick += self.interval_s
            now = time.monotonic()
            if next_tick < now:
                next_tick = now + self.interval_s
            self._stop.wait(next_tick - now)

    def tick(self) -> Sample:
        """Take, encode and publish one sample (the sampler thread's job)."""
        for prepare in self._prepare:
            try:
                prepare()
            except Exception:  # a feeder's bug must not stop sampling
                log.exception("preparing the sample failed; taking it anyway")
        snapshot = self._snapshot()
        for judge in self._judges:
            try:
                snapshot.update(judge(snapshot))
            except Exception:  # an alert bug must not stop sampling
                log.exception("judging the sample failed; publishing it without")
        sample = Sample(snapshot["seq"], snapshot["ts"], snapshot, encode_json(snapshot), flatten_snapshot(snapshot))
        with self._lock:
            self._seq = sample.seq
            self._latest = sample
        for subscriber in self._subscribers:
            try:
                subscriber(sample)  # each must not block: storage queues, the hub only rings
            except Exception:
                log.exception("a subscriber of the sample failed; the others still get it")
        return sample

    def _snapshot(self) -> dict:
        try:
            system = self.collector.collect()
        except Exception as exc:  # a broken collector must not kill the sampler
            log.exception("system collector failed; next tick tries again")
            system = {"source": getattr(self.collector, "source", "none"), "error": "%s: %s" % (type(exc).__name__, exc)}
        self.registry.save_unsaved()  # StatsD's lines and expired gauges, once a tick
        counters, gauges = self.registry.snapshot()
        server = dict(self._server_stats())
        server["rss_bytes"] = self.collector.rss_bytes()
        snapshot = dict(self._extra)
        snapshot.update(seq=self._seq + 1, ts=round(time.time(), 3), interval=self.interval_s, system=system,
                        counters=counters, gauges=gauges, server=server)
        return snapshot
