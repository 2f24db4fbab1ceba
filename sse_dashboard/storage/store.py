"""The store: one SQLite file holding events, counters' and gauges' state, and the history.

One concept: what must survive a restart, as the rest of the dashboard asks for it. ``Store``
composes the table owners over one ``Database`` and answers with the same reads as
``MemoryStore`` (the dashboard that keeps nothing on disk), so callers never ask which one.

Lock order: the registry's lock, then the database's write lock (``commit_metrics`` runs
under the first and takes the second); nothing in storage calls back into the registry.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Callable, Iterator

from sse_dashboard.events import Event, EventFilter
from sse_dashboard.storage.database import Database, StorageError, open_database
from sse_dashboard.storage.events import DEFAULT_MAX_STORED_EVENT_BYTES, DEFAULT_MAX_STORED_EVENTS, EventTable
from sse_dashboard.storage.history import (DEFAULT_FULL_S, DEFAULT_INTERVAL_S, DEFAULT_ROLLUP_KEEP_S, DEFAULT_ROLLUP_S,
                                           PRUNE_EVERY_S, StoredHistory)
from sse_dashboard.storage.jobs import JobTable
from sse_dashboard.storage.metric_state import MetricState

__all__ = ["Store", "open_store"]


def open_store(data_dir: str | Path, max_bytes: int | None = None, **options: Any) -> "Store":
    """Open (creating if needed) the store in ``data_dir``; ``StorageError`` says why not.
    ``options`` are ``Store``'s (retention, interval); ``max_bytes`` caps the file."""
    database = open_database(data_dir, max_bytes=max_bytes)
    try:
        return Store(database, **options)
    except sqlite3.Error as exc:
        database.close()
        raise StorageError("cannot use %s: %s" % (database.path, exc)) from None


class Store:
    """The open database. Create it with ``open_store()``; ``start()`` the writer, ``close()`` at the end.

    >>> store = open_store("data")
    >>> registry = MetricsRegistry(journal=store.journal)
    >>> registry.restore(*store.metric_state())
    >>> store.start()
    >>> events = EventLog(persist=store.insert_event, initial=store.recent_events(1000),
    ...                   last_id=store.last_event_id())

    Its parts, for a reader who wants one table's rules: ``database`` (the file, its lock and
    faults), ``events``, ``metrics`` (counters', gauges' and named values) and ``history``.
    """

    durable = True  # what is acknowledged is on disk (MemoryStore: False)

    def __init__(self, database: Database, full_s: float = DEFAULT_FULL_S, rollup_s: float = DEFAULT_ROLLUP_S,
                 rollup_keep_s: float = DEFAULT_ROLLUP_KEEP_S,
                 max_events: int = DEFAULT_MAX_STORED_EVENTS, prune_every_s: float = PRUNE_EVERY_S,
                 interval_s: float = DEFAULT_INTERVAL_S,
                 max_event_bytes: int = DEFAULT_MAX_STORED_EVENT_BYTES) -> None:
        self.database = database
        self.events = EventTable(database, max_events=max_events, max_event_bytes=max_event_bytes)
        self.history = StoredHistory(database, full_s=full_s, rollup_s=rollup_s, rollup_keep_s=rollup_keep_s,
                                     interval_s=interval_s, prune_every_s=prune_every_s,
                                     prune_also=(self.events.prune,))
        self.metrics = MetricState(database, self.history)
        self.jobs = JobTable(database)

    @property
    def path(self) -> Path:
        return self.database.path

    @property
    def epoch(self) -> str:
        """This file's identity: made once with it, so a reader can tell one file's ids from another's."""
        return self.database.epoch

    @property
    def last_error(self) -> str | None:
        return self.database.last_error

    @property
    def keep_samples(self) -> int:
        return self.history.keep_samples

    @property
    def dropped_samples(self) -> int:
        return self.history.dropped_samples

    @property
    def journal(self) -> Callable[..., None]:
        """What ``MetricsRegistry(journal=...)`` commits every update through."""
        return self.commit_metrics

    def announce(self, url: str) -> None:
        """Record this dashboard's URL beside the lock (see ``DataDirInUse``)."""
        self.database.announce(url)

    def problem(self) -> str | None:
        """Why writes fail right now (for /api/health and 503s), or None."""
        return self.database.problem()

    def health(self) -> str:
        """What /api/health says of storage."""
        problem = self.problem()
        return "error: " + problem if problem else "ok"

    # --- events ---------------------------------------------------------------------

    def insert_event(self, event: Event) -> None:
        """Commit one event; ``StorageError`` if the disk will not take it."""
        self.events.insert(event)

    def insert_events(self, events: list) -> None:
        """Commit events in one transaction, all or none (``EventTable.insert_many``)."""
        self.events.insert_many(events)

    def last_event_id(self) -> int:
        return self.events.last_id()

    def recent_events(self, limit: int, max_chars: int | None = None) -> list[Event]:
        """The newest events, oldest first: at most ``limit``, and about ``max_chars`` of JSON."""
        return self.events.recent(limit, max_chars)

    def iter_events(self, after_id: int = 0, start: float | None = None, end: float | None = None,
                    level: str | None = None, limit: int | None = None,
                    only: EventFilter | None = None, newest: bool = False) -> Iterator[Event]:
        """Events oldest first (``newest``: the newest ``limit``, newest first), in chunks."""
        return self.events.iterate(after_id, start, end, level, limit, only, newest)

    # --- counters, gauges and named values ------------------------------------------

    def metric_state(self) -> tuple[dict, dict, dict]:
        """What is kept: ``({counter: total}, {gauge: (value, set_at)}, {(kind, name): door})``."""
        return self.metrics.load()

    def commit_metrics(self, changes: list, meta: dict | None = None, forget: Any = ()) -> None:
        """Commit counters' and gauges' new state before it is acknowledged (``MetricState.commit``)."""
        self.metrics.commit(changes, meta, forget)

    def read_meta(self, key: str) -> str | None:
        return self.metrics.read_meta(key)

    def read_meta_prefix(self, prefix: str) -> dict:
        """Every named value whose name starts with ``prefix``."""
        return self.metrics.read_meta_prefix(prefix)

    def write_meta(self, key: str, value: str) -> None:
        """Commit one named value; ``StorageError`` if the disk will not take it."""
        self.metrics.write_meta(key, value)

    # --- job monitors -------------------------------------------------------------------

    def save_job(self, job: str, state: str | None, run: dict | None = None) -> None:
        """Commit a job's state and one run record together (``JobTable.save``)."""
        self.jobs.save(job, state, run)

    def job_states(self) -> dict[str, str]:
        return self.jobs.states()

    def job_runs(self, job: str, limit: int, before: int | None = None) -> list[dict]:
        return self.jobs.runs(job, limit, before)

    # --- history ----------------------------------------------------------------------

    def record(self, sample: Any) -> None:
        """Hand one sample (a ``sampler.Sample``) to the writer thread without waiting (the sampler
        calls this each tick)."""
        self.history.enqueue(sample.ts, sample.series)

    def forget_series(self, name: str) -> None:
        """Nothing more to do: a delete takes the stored history with it in its own commit
        (``MetricsRegistry.delete``)."""

    def enqueue_sample(self, ts: float, flat: dict) -> None:
        """Hand a sample to the writer thread without waiting (the sampler calls this)."""
        self.history.enqueue(ts, flat)

    def history_columns(self, start: float, end: float, names: list | None = None) -> dict:
        """Columns of the window, full resolution or roll-ups (``StoredHistory.columns``), of
        ``names`` only when given."""
        return self.history.columns(start, end, names)

    def history_buckets(self, start: float, end: float, names: list | None, points: int) -> dict | None:
        """The window in at most ``points`` buckets from the chunks' summaries, or None: read
        ``history_columns`` and downsample them (``StoredHistory.buckets``)."""
        return self.history.buckets(start, end, names, points)

    def history_buckets_json(self, start: float, end: float, names: list | None, points: int) -> bytes | None:
        """``history_buckets`` as compact JSON (``StoredHistory.buckets_json``), or None."""
        return self.history.buckets_json(start, end, names, points)

    def iter_history_rows(self, start: float, end: float) -> Iterator[tuple[float, dict]]:
        """Full-resolution rows where kept, roll-up averages before that, oldest first, in chunks."""
        return self.history.rows(start, end)

    def prune(self) -> None:
        """Enforce retention now (the writer does this every ``prune_every_s``)."""
        self.history.prune()

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the history's writer thread."""
        self.history.start()

    def flush(self, timeout_s: float = 5.0) -> None:
        """Wait until every queued sample is written (tests, and shutdown)."""
        self.history.flush(timeout_s)

    def close(self, timeout_s: float = 5.0) -> None:
        """Write what is queued and the open roll-up bucket, stop the writer, let the data
        directory go. (Counters and gauges are on disk already: see ``commit_metrics``.)"""
        self.history.close(timeout_s)
        self.database.close()
