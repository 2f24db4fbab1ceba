"""``TickQueue``: the ticks one remote write receiver has not taken yet, in memory or on disk.

One concept: holding ticks in order until they are sent. The sampler hands each ``Sample`` to
``submit`` (an append, never I/O); the queue's own thread encodes it once (``remote_write``) and
keeps it, then wakes the writer, which reads the oldest ticks with ``batch`` and, once the
receiver has answered, forgets them with ``remove``.

Two places to keep them:

- ``MemoryTicks`` (no data folder): a deque, bounded by a number of ticks; lost with the process;
- ``SqliteTicks`` (a data folder): ``DATA_DIR/remote-write/<hash>.sqlite3``, one file per
  receiver, named by a hash of its URL without the password (never written in clear). Each
  tick is one row: its sequence number, timestamp, number of samples and its encoded
  ``WriteRequest``, zlib-compressed. Bounded by bytes and by age.

Invariants:
- a tick is committed before the queue takes the next one from the sampler (WAL,
  ``synchronous=NORMAL``: a kill -9 loses at most the tick being encoded; a power cut may lose
  the last few commits), and the writer's thread is never needed for that: a receiver that
  stalls a request for its whole timeout delays no commit;
- ticks leave in the order they were taken, each once: a request's ticks are deleted, committed,
  once it is answered, and its last tick is committed as "in flight" before it goes out, so a
  restart resends at most the request in flight at a kill -9, exactly as it was (the receiver
  keeps one copy; a longer request would be refused whole for its first, stored, samples);
- past a bound the oldest ticks go first, and every one is reported through ``on_drop(reason,
  samples)``; a tick is either sent, dropped with a reason, or still queued;
- the history store's file is never touched: this file has its own lock and schema.

Intentional choices: one file per receiver rather than one shared file with a cursor each: each
writer owns its rows, so no receiver's outage holds back another's pruning and there is no
cross-writer bookkeeping; two receivers cost two writes a tick (measured in
bench/RESULTS-remote-write-queue.md). zlib at level 1: the label sets repeat in every tick, so
it stores about a sixth of the protobuf for a fraction of its encoding cost.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
import time
import zlib
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from sse_dashboard.export.remote_write import TickEncoder

__all__ = ["TickQueue", "Tick", "MemoryTicks", "SqliteTicks", "queue_file", "DEFAULT_MAX_TICKS",
           "DEFAULT_QUEUE_MAX_BYTES", "DEFAULT_QUEUE_MAX_AGE_S", "MAX_WAITING_TICKS", "QUEUE_FOLDER"]

log = logging.getLogger(__name__)

DEFAULT_MAX_TICKS = 600                      # in memory: 10 minutes at 1 s
DEFAULT_QUEUE_MAX_BYTES = 256 * 1024 * 1024  # on disk: compressed tick bodies (the file adds SQLite's pages)
DEFAULT_QUEUE_MAX_AGE_S = 86400.0            # on disk: a tick older than a day is dropped
MAX_WAITING_TICKS = 600                      # taken from the sampler but not yet encoded (a stuck disk)
QUEUE_FOLDER = "remote-write"
_ZLIB_LEVEL = 1
_SCHEMA = 1


@dataclass(frozen=True)
class Tick:
    """One tick as the receiver gets it: ``body`` is its encoded ``WriteRequest`` (not framed)."""

    seq: int
    ts_ms: int
    samples: int
    body: bytes


def queue_file(folder: str | Path, url_identity: str) -> Path:
    """``folder/remote-write/<hash>.sqlite3``: ``url_identity`` names the receiver (the writer's
    URL without its password); hashed, so neither the folder's listing nor the file holds it."""
    digest = hashlib.sha256(url_identity.encode("utf-8")).hexdigest()[:20]
    return Path(folder) / QUEUE_FOLDER / ("%s.sqlite3" % digest)


class MemoryTicks:
    """Ticks in a deque, gone with the process."""

    where = "memory"

    def __init__(self) -> None:
        self._ticks: deque = deque()
        self.samples = self.bytes = 0

    def __len__(self) -> int:
        return len(self._ticks)

    def last_seq(self) -> int:
        return self._ticks[-1].seq if self._ticks else 0

    def append(self, tick: Tick) -> None:
        self._ticks.append(tick)
        self.samples += tick.samples
        self.bytes += len(tick.body)

    def oldest(self) -> Tick | None:
        return self._ticks[0] if self._ticks else None

    def first(self, max_samples: int) -> list[Tick]:
        out, count = [], 0
        for tick in self._ticks:
            if out and count + tick.samples > max_samples:
                break
            out.append(tick)
            count += tick.samples
        return out

    def mark_in_flight(self, seq: int) -> None:
        pass  # nothing survives the process to resend

    def delete_through(self, seq: int) -> list[tuple[int, int]]:
        """Forget the ticks up to ``seq``: [(samples, bytes)] of each."""
        gone = []
        while self._ticks and self._ticks[0].seq <= seq:
            tick = self._ticks.popleft()
            gone.append((tick.samples, len(tick.body)))
        self.samples -= sum(n for n, _ in gone)
        self.bytes -= sum(size for _, size in gone)
        return gone

    def close(self) -> None:
        pass


class SqliteTicks:
    """Ticks in their own SQLite file; what a restart finds there is sent first."""

    where = "disk"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Used by the queue's thread and the writer's, never at once (TickQueue's _store_lock).
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA busy_timeout=5000")
            self._conn.execute("CREATE TABLE IF NOT EXISTS ticks (seq INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL, "
                               "samples INTEGER NOT NULL, body BLOB NOT NULL)")
            self._conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)")
            self._conn.execute("PRAGMA user_version=%d" % _SCHEMA)
            row = self._conn.execute("SELECT value FROM meta WHERE key = 'in_flight'").fetchone()
            self._in_flight = row[0] if row else 0
            count, samples, size, last = self._conn.execute(
                "SELECT count(*), coalesce(sum(samples), 0), coalesce(sum(length(body)), 0), coalesce(max(seq), 0) "
                "FROM ticks").fetchone()
            self._oldest = self._read_oldest()
        except sqlite3.Error:
            self._conn.close()
            raise
        self._count, self.samples, self.bytes, self._last = count, samples, size, last

    def __len__(self) -> int:
        return self._count

    def last_seq(self) -> int:
        return max(self._last, self._in_flight)  # an emptied file numbers on, never reusing a sent number

    def append(self, tick: Tick) -> None:
        stored = zlib.compress(tick.body, _ZLIB_LEVEL)
        self._conn.execute("INSERT INTO ticks (seq, ts_ms, samples, body) VALUES (?, ?, ?, ?)",
                           (tick.seq, tick.ts_ms, tick.samples, stored))  # autocommit: one transaction
        self._count += 1
        self.samples += tick.samples
        self.bytes += len(stored)
        self._last = tick.seq
        if self._oldest is None:
            self._oldest = Tick(tick.seq, tick.ts_ms, tick.samples, b"")

    def oldest(self) -> Tick | None:
        """The oldest tick's place (no body), from memory: ``state()`` does no I/O."""
        return self._oldest

    def _read_oldest(self) -> Tick | None:
        row = self._conn.execute("SELECT seq, ts_ms, samples FROM ticks ORDER BY seq LIMIT 1").fetchone()
        return Tick(row[0], row[1], row[2], b"") if row else None

    def first(self, max_samples: int) -> list[Tick]:
        out, count = [], 0
        rows = self._conn.execute("SELECT seq, ts_ms, samples, body FROM ticks ORDER BY seq LIMIT ?",
                                  (max(1, max_samples),))
        for seq, ts_ms, samples, body in rows:
            if out and (count + samples > max_samples or seq > self._in_flight >= out[0].seq):
                break  # the request sent before a kill -9 goes again as it was, never longer
            out.append(Tick(seq, ts_ms, samples, zlib.decompress(body)))
            count += samples
        return out

    def mark_in_flight(self, seq: int) -> None:
        """Remember, committed, the last tick of the request about to go out: if the process dies
        before its answer is recorded, the next start resends exactly that request first. A longer
        one would be refused whole by Prometheus (its first samples are out of order once stored),
        losing the ticks it added."""
        if seq != self._in_flight:
            self._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('in_flight', ?)", (seq,))
            self._in_flight = seq

    def delete_through(self, seq: int) -> list[tuple[int, int]]:
        """Forget the ticks up to ``seq``, committed: [(samples, bytes)] of each."""
        with self._conn:  # the read and the delete in one transaction
            self._conn.execute("BEGIN IMMEDIATE")
            gone = self._conn.execute("SELECT samples, length(body) FROM ticks WHERE seq <= ? ORDER BY seq",
                                      (seq,)).fetchall()
            self._conn.execute("DELETE FROM ticks WHERE seq <= ?", (seq,))
            self._oldest = self._read_oldest()
        self._count -= len(gone)
        self.samples -= sum(n for n, _ in gone)
        self.bytes -= sum(size for _, size in gone)
        return gone

    def close(self) -> None:
        self._conn.close()


class TickQueue:
    """The ticks one writer has not sent: ``submit`` from the sampler, ``batch``/``remove``
    from the writer's thread, bounds applied by the queue's own thread.

    >>> queue = TickQueue(SqliteTicks(path), instance="box", on_drop=count, wake=event.set)
    >>> queue.start(); queue.submit(sample); queue.batch(2000) -> [Tick, ...]
    """

    def __init__(self, ticks: MemoryTicks | SqliteTicks, *, instance: str, external_labels: tuple = (),
                 on_drop: Callable[[str, int], None], wake: Callable[[], None], max_ticks: int | None = None,
                 max_bytes: int | None = None, max_age_s: float | None = None,
                 wall_clock: Callable[[], float] = time.time) -> None:
        if max_ticks is not None and max_ticks < 1:
            raise ValueError("the remote write queue must hold at least one tick")
        if max_bytes is not None and max_bytes < 1:
            raise ValueError("the remote write queue must hold at least one byte")
        if max_age_s is not None and not max_age_s > 0:
            raise ValueError("the remote write queue's age bound must be above 0 seconds")
        self._ticks = ticks
        self.instance = instance
        self._external_labels = tuple(external_labels)
        self._encoder = TickEncoder(instance, self._external_labels)  # the queue's thread alone uses it
        self._on_drop = on_drop
        self._wake_writer = wake
        self.max_ticks, self.max_bytes, self.max_age_s = max_ticks, max_bytes, max_age_s
        self._wall_clock = wall_clock
        self._lock = threading.Lock()          # the waiting deque and the flags
        self._store_lock = threading.Lock()    # the ticks' store (one SQLite connection, two threads)
        self._waiting: deque = deque()         # Samples taken from the sampler, not yet encoded
        self._have_waiting = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._next_seq = ticks.last_seq() + 1

    # -- the sampler's side -------------------------------------------------------------------

    def submit(self, sample: Any) -> None:
        """Take one ``Sample``: an append, never I/O, never a wait."""
        dropped = []
        with self._lock:
            self._waiting.append(sample)
            limit = min(MAX_WAITING_TICKS, self.max_ticks or MAX_WAITING_TICKS)
            while len(self._waiting) > max(1, limit - (len(self._ticks) if self.max_ticks else 0)):
                dropped.append(self._waiting.popleft())
        for old in dropped:  # about its series: it was never encoded
            self._on_drop(self._full_reason(), len(getattr(old, "series", ())) or 1)
        self._have_waiting.set()

    # -- the writer's side --------------------------------------------------------------------

    def batch(self, max_samples: int) -> list[Tick]:
        """The oldest ticks, whole, up to ``max_samples`` (at least one tick), marked in flight."""
        with self._store_lock:
            ticks = self._ticks.first(max_samples)
            if ticks:
                self._ticks.mark_in_flight(ticks[-1].seq)
            return ticks

    def remove(self, ticks: list[Tick]) -> int:
        """Forget ``ticks`` (sent, or refused for good): the samples of those still queued (the
        bound may have dropped some while they were in flight; those were counted then)."""
        if not ticks:
            return 0
        with self._store_lock:
            return sum(samples for samples, _ in self._ticks.delete_through(ticks[-1].seq))

    def state(self) -> dict:
        with self._lock:
            waiting = list(self._waiting)
        with self._store_lock:
            oldest = self._ticks.oldest()
            ticks, samples, size = len(self._ticks), self._ticks.samples, self._ticks.bytes
        oldest_ts = oldest.ts_ms / 1000 if oldest else (waiting[0].ts if waiting else None)
        return {"queue": self._ticks.where, "queued": samples + sum(len(getattr(s, "series", ())) for s in waiting),
                "queued_ticks": ticks + len(waiting), "queued_bytes": size,
                "lag_s": round(max(0.0, self._wall_clock() - oldest_ts), 3) if oldest_ts is not None else 0.0}

    # -- the queue's thread -------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="remote-write-queue", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Keep what was taken (on disk: a restart sends it), then close the store."""
        with self._lock:
            self._stopping = True
        self._have_waiting.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                return  # still writing: closing under it would lose the tick
        with self._store_lock:
            self._ticks.close()

    def _run(self) -> None:
        self._apply_bounds()  # a restart may find ticks that have grown too old meanwhile
        while True:
            self._have_waiting.wait()
            with self._lock:
                self._have_waiting.clear()
                taken, self._waiting = self._waiting, deque()
                stopping = self._stopping
            for sample in taken:
                self._keep(sample)
            if taken:
                self._wake_writer()
            if stopping:
                return

    def _keep(self, sample: Any) -> None:
        try:
            timestamp_ms = int(round(sample.ts * 1000))
            count, body = self._encoder.encode(sample.snapshot, timestamp_ms)
            tick = Tick(self._next_seq, timestamp_ms, count, body)
        except Exception:  # a bug in naming one tick must not stop the queue
            log.exception("remote write: encoding a sample failed; it is skipped")
            return
        try:
            with self._store_lock:  # kept and bounded at once: state() never sees the bound passed
                self._ticks.append(tick)
                gone = self._trim_locked()
        except sqlite3.Error as exc:
            self._on_drop("queue file failing: %s" % type(exc).__name__, tick.samples)
            log.error("remote write: could not keep a tick in the queue file: %s", exc)
            return
        self._next_seq += 1
        self._report(gone)

    def _apply_bounds(self) -> None:
        with self._store_lock:
            gone = self._trim_locked()
        self._report(gone)

    def _trim_locked(self) -> list[tuple[str, int]]:
        """Drop the oldest ticks while a bound is passed: [(reason, samples)] of each."""
        gone = []
        while True:
            oldest = self._ticks.oldest()
            reason = self._passed_bound(oldest, len(self._ticks), self._ticks.bytes)
            if reason is None:
                return gone
            gone.extend((reason, samples) for samples, _ in self._ticks.delete_through(oldest.seq))

    def _report(self, gone: list[tuple[str, int]]) -> None:
        for reason, samples in gone:  # called with no lock held: it takes the writer's
            self._on_drop(reason, samples)

    def _passed_bound(self, oldest: Tick | None, count: int, size: int) -> str | None:
        if oldest is None:
            return None
        too_many = self.max_ticks is not None and count > self.max_ticks
        too_big = self.max_bytes is not None and size > self.max_bytes and count > 1  # the newest stays, whatever its size
        if too_many or too_big:
            return self._full_reason()
        if self.max_age_s is not None and oldest.ts_ms / 1000 < self._wall_clock() - self.max_age_s:
            return "older than %g s: dropped" % self.max_age_s
        return None

    def _full_reason(self) -> str:
        if self.max_ticks is not None:
            return "queue full (%d ticks): oldest dropped" % self.max_ticks
        return "queue full (%s): oldest dropped" % _size_text(self.max_bytes or 0)


def _size_text(size: int) -> str:
    return "%g MiB" % (size / 1048576) if size >= 1048576 else "%d bytes" % size
