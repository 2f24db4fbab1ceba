"""The application: the wired parts of one dashboard, and the reads that HTTP and MCP share.

One concept: what a dashboard *is*, apart from how it is reached. ``app.build_app`` makes
the parts and hands them all to ``Application``; the web handlers and the MCP tools read
through it (``current_snapshot``, ``health``, ``history_columns``, ``event_page``...), so
both answer alike. It knows no sockets, no HTTP and no status codes.

Invariants:
- an ``Application`` is complete when constructed: nothing is assigned onto it afterwards;
- ``close()`` stops the parts in the order that keeps everything acknowledged: the
  listeners and the notifier, the interval's StatsD timings, the registry (sealed: a write
  still running is refused, not lost), the sampler, then storage's last write;
- it imports nothing of ``web``: the stream hub is only read for its counts (``StreamCounts``).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol, Sequence

from sse_dashboard import __version__
from sse_dashboard.alerting.heartbeats import Heartbeats
from sse_dashboard.alerting.jobs import Jobs
from sse_dashboard.alerting.notify import Notifier
from sse_dashboard.alerting.rules import AlertEngine
from sse_dashboard.collectors.processes import TopProcesses
from sse_dashboard.config import Config
from sse_dashboard.events import EventFilter, EventLog
from sse_dashboard.export.writer import RemoteWriter
from sse_dashboard.ingest.otlp_logs import OtlpLogs
from sse_dashboard.ingest.otlp_metrics import OtlpMetrics
from sse_dashboard.ingest.push import PushGroups
from sse_dashboard.ingest.statsd import StatsdListener
from sse_dashboard.registry import MetricsRegistry
from sse_dashboard.sampler import Sampler, encode_json
from sse_dashboard.storage import Store
from sse_dashboard.storage.memory import MemoryStore, downsample

# History answers (README "Limits"): points a series by default and at most, names at most, and how
# many are built at once (each holds its window in memory while it is built).
DEFAULT_HISTORY_POINTS = 1000  # about a chart's width
MAX_HISTORY_POINTS = 10_000
MAX_HISTORY_NAMES = 100
MAX_HISTORY_READS = 4

__all__ = ["Application", "DEFAULT_HISTORY_POINTS", "MAX_HISTORY_POINTS", "MAX_HISTORY_NAMES", "MAX_HISTORY_READS",
           "StreamCounts", "server_stats", "alert_extras", "remote_write_extras"]

log = logging.getLogger(__name__)


class StreamCounts(Protocol):
    """What the application reads of the stream hub: how many streams are open, how many dropped."""

    clients: int
    dropped: int


def server_stats(hub: StreamCounts, statsd: StatsdListener | None, started_monotonic: float) -> dict:
    """The snapshot's ``server`` part: streams open and dropped, uptime, and StatsD's counts."""
    stats = {"clients": hub.clients, "dropped": hub.dropped,
             "uptime": round(time.monotonic() - started_monotonic, 3)}
    if statsd is not None:
        stats.update(statsd.aggregator.stats())
    return stats


def alert_extras(alerts: AlertEngine, heartbeats: Heartbeats, jobs: Jobs, snapshot: dict) -> dict:
    """What a sample adds to the system part: active alerts (rules, heartbeats and jobs), the
    heartbeats and the jobs."""
    extra = alerts.evaluate(snapshot)
    extra["alerts"] = extra["alerts"] + heartbeats.check() + jobs.check()
    extra["heartbeats"] = heartbeats.listing()
    # Without their UUIDs: each is a ping URL's secret, and a read token reads the snapshot (#26).
    extra["jobs"] = [{key: value for key, value in job.items() if key != "id"} for job in jobs.listing()]
    return extra


def remote_write_extras(writers: Sequence[RemoteWriter], snapshot: dict) -> dict:
    """What a sample adds for remote write: each receiver's state (``RemoteWriter.state``: the
    URL redacted to scheme, host and path), so the page shows it live; nothing without one."""
    return {"remote_write": [writer.state() for writer in writers]} if writers else {}


class Application:
    """One dashboard's parts, wired, and what HTTP and MCP read of them.

    >>> server = build_app(port=0)
    >>> server.app.health()["status"]
    'ok'

    ``store`` is the SQLite ``Store`` or, without a data folder, a ``MemoryStore`` answering the
    same reads; ``events_epoch`` names the event store (it outlives restarts with the file);
    ``boot_id`` names this run."""

    def __init__(self, *, config: Config, registry: MetricsRegistry, events: EventLog, store: Store | MemoryStore,
                 pushes: PushGroups, notifier: Notifier, alerts: AlertEngine, heartbeats: Heartbeats, jobs: Jobs,
                 hub: StreamCounts, sampler: Sampler, processes: TopProcesses, statsd: StatsdListener | None,
                 boot_id: str, started_monotonic: float, remote_writers: Sequence[RemoteWriter] = (),
                 fleet: Any = None, otlp_metrics: OtlpMetrics, otlp_logs: OtlpLogs, status_pages: Any = None) -> None:
        self.config = config
        self.registry = registry
        self.events = events
        self.store = store
        self.pushes = pushes
        self.otlp_metrics = otlp_metrics  # OpenTelemetry's doors (POST /v1/metrics, /v1/logs)
        self.otlp_logs = otlp_logs
        self.notifier = notifier
        self.alerts = alerts
        self.heartbeats = heartbeats
        self.jobs = jobs
        self.hub = hub
        self.sampler = sampler
        self.processes = processes
        self.statsd = statsd
        self.boot_id = boot_id
        self.events_epoch = store.epoch
        self.started_monotonic = started_monotonic
        self.remote_writers = tuple(remote_writers)
        self.fleet = fleet  # a fleet.view.Fleet with --fleet, else None
        self.status_pages = status_pages  # an alerting.status.StatusPages (#26)
        self._closed = False
        self._heavy_reads = threading.BoundedSemaphore(MAX_HISTORY_READS)

    def stats(self) -> dict:
        return server_stats(self.hub, self.statsd, self.started_monotonic)

    def active_alerts(self) -> list[dict]:
        return self.alerts.active() + self.heartbeats.active() + self.jobs.active()

    def current_snapshot(self) -> dict:
        """The latest sample with the application's counters and gauges as they are now:
        a script that posts and then reads sees what it posted (the system part stays the sample)."""
        snapshot, _ = self.sampler.latest()
        counters, gauges = self.registry.snapshot()
        return dict(snapshot, counters=counters, gauges=gauges)

    def health(self) -> dict:
        stats = self.stats()
        health = {"status": "ok", "clients": stats["clients"], "uptime": stats["uptime"], "version": __version__,
                  "storage": self.storage_state()}
        if self.remote_writers:
            health["remote_write"] = [writer.state() for writer in self.remote_writers]
        return health

    def storage_state(self) -> str:
        """"ok", "memory", "error: ..." or "unavailable: ..." (/api/health)."""
        return self.store.health()

    def alerts_state(self) -> dict:
        return {"alerts": self.active_alerts(), "rules": self.alerts.rule_states(),
                "heartbeats": self.heartbeats.listing(), "notify": self.notifier.status()}

    def history_columns(self, start: float, end: float, names: list | None = None,
                        points: int = DEFAULT_HISTORY_POINTS) -> dict:
        """Columns of the window (stored ones with roll-ups' min and max when they are older), of
        ``names`` only when given, at most ``points`` a series (``storage.memory.downsample``)."""
        with self._heavy_reads:  # a few at once: each holds its window in memory while it is built
            bucketed = self.store.history_buckets(start, end, names, points)  # from summaries, when they can
            if bucketed is not None:
                return bucketed
            return self._downsampled(start, end, names, points)

    def history_json(self, start: float, end: float, names: list | None = None,
                     points: int = DEFAULT_HISTORY_POINTS) -> bytes:
        """``history_columns`` as compact JSON; the buckets from summaries written straight
        from their stored integers (``storage.buckets.Buckets.encoded``)."""
        with self._heavy_reads:
            encoded = self.store.history_buckets_json(start, end, names, points)
            if encoded is not None:
                return encoded
            return encode_json(self._downsampled(start, end, names, points))

    def _downsampled(self, start: float, end: float, names: list | None, points: int) -> dict:
        columns = self.store.history_columns(start, end, names)
        columns.setdefault("interval", self.sampler.interval_s)  # the spacing of the points returned
        return downsample(columns, points, start, end)

    def event_page(self, since: int | None, limit: int, level: str | None = None,
                   only: EventFilter | None = None) -> dict:
        """A page of events: the oldest ``limit`` after the cursor ``since`` (None: the newest
        ``limit``), with ``more`` and ``next``; older than memory holds comes from storage."""
        log_, store = self.events, self.store
        known = log_.last_id  # read before the query: every event up to it is in the answer
        if since is None:  # the newest `limit`; `more`: older ones exist
            events = log_.newest(limit + 1, level, only)
            if len(events) <= limit and log_.first_id > 1 and (level or only):
                # Memory holds fewer matches than asked for: the older ones are on disk.
                events = list(store.iter_events(level=level, limit=limit + 1, only=only, newest=True))[::-1]
            more = len(events) > limit
            events = events[-limit:]
            cursor = max(known, events[-1].id if events else 0)
        else:  # a page: the oldest `limit` after the cursor
            if since < log_.first_id - 1:
                events = list(store.iter_events(since, level=level, limit=limit + 1, only=only))  # older than memory
            else:
                events = log_.since(since, limit=limit + 1, level=level, only=only)
            more = len(events) > limit
            events = events[:limit]
            cursor = events[-1].id if more else max(since, known, events[-1].id if events else 0)
        return {"events": events, "more": more, "next": cursor, "last_id": log_.last_id, "epoch": self.events_epoch}

    def close(self) -> None:
        """Stop taking data and write everything acknowledged (the module docstring's order).
        The web server calls it after it has stopped the streams and cut its connections."""
        # Each may wait up to 0.5 s for its thread (a receive timeout, a delivery in flight): at
        # once, those waits overlap instead of adding up. Neither holds anything acknowledged.
        _stop_together(self.statsd, self.notifier, self.fleet)
        if self.statsd is not None:
            self.statsd.aggregator.flush()  # the last interval's timings, before the final state
        self.registry.seal()
        self.sampler.stop()
        _stop_together(*self.remote_writers)  # after the sampler: nothing is submitted to them any more
        if not self._closed:  # a second close() must not release the data folder twice
            self._closed = True
            self.store.flush()
            self.store.close()


def _stop_together(*parts: Any) -> None:
    """Call ``stop()`` on every part that is there, all at once, and wait for them all."""
    def stop(part: Any) -> None:
        try:
            part.stop()
        except Exception:  # one part's failure must not keep the others, or storage, from stopping
            log.exception("stopping %s failed", type(part).__name__)

    threads = [threading.Thread(target=stop, args=(part,), name="stop", daemon=True)
               for part in parts if part is not None]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
