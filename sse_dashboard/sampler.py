"""The sampler: one snapshot per interval, taken once for every client.

One concept: the tick. Each interval the sampler reads the system collector and the registry,
builds one snapshot, encodes its JSON once, publishes both, appends the flattened series to
the history and hands them to storage.

Invariants:
- only the sampler thread calls the system collector, so only it calls psutil (see
  ``collectors.system``);
- a published snapshot is never mutated; its JSON is encoded once per tick and the same bytes
  go to every client;
- every number in a snapshot is finite or ``None`` (``allow_nan=False``);
- ticks sit on a fixed grid (no drift by the cost of sampling); after a long stall (suspend)
  the missed ticks are skipped, not replayed;
- a failing collector, feeder or enricher is logged and the tick goes on: sampling never stops.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import threading
import time
from typing import Any, Callable

from sse_dashboard.collectors.system import SystemCollector
from sse_dashboard.registry import MetricsRegistry, is_finite_number
from sse_dashboard.storage.memory import DEFAULT_HISTORY_S, History

__all__ = ["Sampler", "flatten_snapshot", "encode_json"]

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


class Sampler:
    """One daemon thread that takes one snapshot per interval for every client.

    >>> sampler = Sampler(MetricsRegistry(), make_system_collector(), interval_s=1.0)
    >>> sampler.start()          # returns once the first snapshot exists
    >>> snapshot, body = sampler.latest()
    >>> recent = sampler.history.columns(seconds=300)

    ``on_sample`` (e.g. the stream hub's) is called after each publish;
    ``server_stats`` returns the ``server`` part (clients, dropped, uptime);
    ``enrich(snapshot)`` returns extra top-level keys (the active alerts);
    ``record(ts, series)`` hands each sample to storage; ``prepare()`` runs first
    (StatsD turns the interval's timings into gauges). ``history``: the ring each sample is
    appended to (shared with a ``MemoryStore``); by default one holding ``history_s``.
    """

    def __init__(
        self,
        registry: MetricsRegistry,
        collector: SystemCollector,
        interval_s: float = 1.0,
        on_sample: Callable[[], None] | None = None,
        server_stats: Callable[[], dict] | None = None,
        extra: dict | None = None,
        history_s: float = DEFAULT_HISTORY_S,
        enrich: Callable[[dict], dict] | None = None,
        record: Callable[[float, dict], None] | None = None,
        prepare: Callable[[], None] | None = None,
        history: History | None = None,
    ) -> None:
        if not (interval_s > 0 and math.isfinite(interval_s)):
            raise ValueError("interval must be a positive number of seconds")
        self.registry = registry
        self.collector = collector
        self.interval_s = interval_s
        self._on_sample = on_sample
        self._server_stats = server_stats or dict
        self._extra = dict(extra or {})
        self._enrich = enrich
        self._record = record
        self.prepare = prepare  # settable: e.g. StatsD's flush of the interval's timings
        self.history = history if history is not None else History.covering(history_s, interval_s)
        self._lock = threading.Lock()
        self._latest: tuple[dict, bytes] | None = None
        self._seq = 0
        self._stop = threading.Event()
        self._first = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, timeout_s: float = 5.0) -> None:
        """Start the thread and wait (bounded) for the first snapshot."""
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

        No lock: the pair is published by one reference assignment, which is atomic,
        and thousands of streams read it at once on every tick."""
        latest = self._latest
        if latest is None:
            raise RuntimeError("no sample yet: call start() first")
        return latest

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

    def tick(self) -> dict:
        """Take, encode and publish one snapshot (the sampler thread's job)."""
        if self.prepare is not None:
            try:
                self.prepare()
            except Exception:  # a feeder's bug must not stop sampling
                log.exception("preparing the sample failed; taking it anyway")
        try:
            system = self.collector.collect()
        except Exception as exc:  # a broken collector must not kill the sampler
            log.exception("system collector failed; next tick tries again")
            system = {"source": getattr(self.collector, "source", "none"), "error": "%s: %s" % (type(exc).__name__, exc)}
        self.registry.save_unsaved()  # StatsD's lines and expired gauges, once a tick
        counters, gauges = self.registry.snapshot()
        server = dict(self._server_stats())
        server["rss_bytes"] = self.collector.rss_bytes()
        with self._lock:
            seq = self._seq + 1
        snapshot = dict(self._extra)
        snapshot.update(
            seq=seq,
            ts=round(time.time(), 3),
            interval=self.interval_s,
            system=system,
            counters=counters,
            gauges=gauges,
            server=server,
        )
        if self._enrich is not None:
            try:
                snapshot.update(self._enrich(snapshot))
            except Exception:  # an alert bug must not stop sampling
                log.exception("enriching the snapshot failed; publishing it without")
        body = encode_json(snapshot)
        with self._lock:
            self._seq = seq
            self._latest = (snapshot, body)
        flat = flatten_snapshot(snapshot)
        self.history.append(snapshot["ts"], flat)
        if self._record is not None:
            self._record(snapshot["ts"], flat)  # must not block: storage queues it
        if self._on_sample is not None:
            self._on_sample()
        return snapshot
