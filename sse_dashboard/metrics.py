"""Metrics: the application's counters and gauges, the system collector, and the sampler.

One concept: what the dashboard measures, sampled once per interval for everyone.

Invariants:
- counters only go up; gauges hold any finite number; names match
  ``METRIC_NAME_RE`` and their number is bounded;
- a rejected update stores nothing (all names and values are checked first);
- only the sampler thread calls the system collector, so only it calls
  psutil: since psutil 5.9.6 ``cpu_percent()`` keeps its baseline per calling
  thread (psutil#2282), and its first reading is a meaningless 0.0, so the
  first sample reports ``None`` instead;
- a published snapshot is never mutated; its JSON is encoded once per tick and
  the same bytes go to every client;
- every number in a snapshot is finite or ``None`` (``allow_nan=False``).

Intentional choices: a collector degrades instead of raising. Each reading
(cpu, memory, disk, ...) sits in its own ``try``; a failure gives ``None`` for
that field and one warning per cause, and a collector that fails outright
gives ``system.error`` while the next tick tries again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import deque
import math
import os
import re
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from sse_dashboard.collectors import devices
from sse_dashboard.collectors.rates import Rates
__all__ = [
    "METRIC_NAME_RE",
    "MetricsRegistry",
    "split_name",
    "unescape_label_value",
    "labeled_name",
    "canonical_name",
    "RegistrySealed",
    "metric_number",
    "SystemCollector",
    "PsutilCollector",
    "StdlibCollector",
    "make_system_collector",
    "Sampler",
    "History",
    "flatten_snapshot",
    "to_columns",
    "render_prometheus",
    "prometheus_name",
    "encode_json",
    "default_disk_path",
    "PROMETHEUS_CONTENT_TYPE",
]

log = logging.getLogger(__name__)

METRIC_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
MAX_NAME_CHARS = 100
# A name may carry labels in Prometheus' own notation, ``jobs{queue="mail"}`` (labels sorted,
# empty values dropped): pushed metrics, StatsD tags. /metrics shows them as real labels.
LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)', re.S)
MAX_LABELS = 10
MAX_LABELED_NAME_CHARS = 250
MAX_METRICS = 1000  # counters and gauges together: names come from clients
MAX_COUNTER_DELTA = 1e15  # a petabyte per update: far above real use
# Integers up to 2**53 are exact as float64, which is what JSON readers in
# browsers (and SQLite REAL) hold; larger ones are kept as floats.
MAX_EXACT_INT = 2 ** 53
DEFAULT_GAUGE_TTL_S = 86400.0  # a gauge nobody set for a day leaves the live snapshot


def _finite_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def metric_number(value: Any) -> int | float:
    """One number policy for every counter and gauge (README "Limits").

    An int within +-2**53 stays an int; a larger int becomes the nearest
    float; anything that is not a finite float64 is refused (``ValueError``).

    >>> metric_number(3), metric_number(2 ** 63), metric_number(1.5)
    (3, 9.223372036854776e+18, 1.5)
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("must be a finite number")
    if isinstance(value, int):
        if -MAX_EXACT_INT <= value <= MAX_EXACT_INT:
            return value
        try:
            value = float(value)
        except OverflowError:
            raise ValueError("is too large (at most about 1.8e308)") from None
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def _add(total: int | float, delta: int | float) -> int | float:
    return metric_number(total + delta)


class MetricsRegistry:
    """Thread-safe application counters and gauges.

    >>> registry = MetricsRegistry()
    >>> registry.inc("jobs_done"); registry.set("queue_depth", 7)
    >>> registry.snapshot()
    ({'jobs_done': 1}, {'queue_depth': 7})

    A counter counts things that happen (it only goes up); use a gauge for a
    level that goes up and down, and an event for something a person reads.
    A gauge that nobody has set for ``gauge_ttl_s`` leaves the snapshot (and
    frees its name); a counter stays until it is deleted. After ``seal()``
    (a clean stop) every update is refused with ``RegistrySealed``.

    Durability: with a ``journal`` (``Store.commit_metrics``), every update is
    committed before it is applied, under this registry's lock, so what a caller
    was told is stored is on disk, and a refused commit (``StorageError``) changes
    nothing. Updates that nobody acknowledges (StatsD lines: ``durable=False``)
    and expired gauges are kept "unsaved" and go to disk with the next commit,
    or at ``save_unsaved()`` (the sampler calls it once a tick).

    Budgets: each door names at most ``max_metrics`` counters and gauges of its
    own ("api": JSON, the client library, MCP; "push"; "statsd"), so StatsD,
    which has no token, cannot use up the names the token-protected API needs.
    """

    def __init__(self, max_metrics: int = MAX_METRICS, gauge_ttl_s: float = DEFAULT_GAUGE_TTL_S,
                 clock: Callable[[], float] = time.time, journal: Callable[..., None] | None = None) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, int | float] = {}
        self._gauges: dict[str, int | float] = {}
        self._gauge_set_at: dict[str, float] = {}
        self._doors: dict[tuple[str, str], str] = {}   # (kind, name) -> the door that made it
        self._door_counts: dict[str, int] = {}
        self._unsaved: set[tuple[str, str]] = set()   # changed in memory, not on disk yet
        self._max_metrics = max_metrics
        self._gauge_ttl_s = gauge_ttl_s
        self._clock = clock
        self._journal = journal
        self._sealed = False

    def inc(self, name: str, delta: float = 1) -> None:
        """Add ``delta`` (>= 0) to counter ``name``."""
        self.update(counters={name: delta})

    def set(self, name: str, value: float) -> None:
        """Set gauge ``name`` to ``value``."""
        self.update(gauges={name: value})

    def update(self, counters: Any = None, gauges: Any = None, gauge_deltas: Any = None,
               door: str = "api", durable: bool = True) -> dict:
        """Apply counter deltas and gauge values together, or raise ``ValueError`` (or the
        journal's ``StorageError``) and apply none.

        ``gauge_deltas`` move gauges relative to their value (StatsD's ``+3|g``).
        ``durable=False``: applied now, kept on disk with the next commit (nobody is told it was).
        Returns the stored values of the names it touched:
        ``{"counters": {name: total}, "gauges": {name: value}}``."""
        deltas: dict[str, int | float] = {}
        for name, delta in _check_mapping("counters", counters).items():
            name = canonical_name(name)
            deltas[name] = _counter_delta(name, delta) + deltas.get(name, 0)
        values = {canonical_name(n): _gauge_value(n, v) for n, v in _check_mapping("gauges", gauges).items()}
        moves = {canonical_name(n): _gauge_value(n, v) for n, v in _check_mapping("gauges", gauge_deltas).items()}
        with self._lock:
            self._check_open()
            now = self._clock()
            self._expire(now)
            new = self._check_room(door, [("counters", n) for n in deltas]
                                   + [("gauges", n) for n in values.keys() | moves.keys()])
            totals = {}
            for name, delta in deltas.items():
                try:
                    totals[name] = _add(self._counters.get(name, 0), delta)
                except ValueError:
                    raise ValueError("counter %r would pass the largest number" % name) from None
            for name, move in moves.items():
                try:
                    values[name] = _add(values.get(name, self._gauges.get(name, 0)), move)
                except ValueError:
                    raise ValueError("gauge %r would pass the largest number" % name) from None
            self._keep(totals, values, now, door, durable)
            self._counters.update(totals)
            self._gauges.update(values)
            self._gauge_set_at.update(dict.fromkeys(values, now))
            for key in new:
                self._adopt(key, door)
            return {"counters": totals, "gauges": dict(values)}

    def push(self, counters: dict, gauges: dict, remove: Any = (), meta: dict | None = None) -> None:
        """Replace metrics pushed as a group (Prometheus push): drop ``remove`` (``(kind, name)``
        pairs), then set counter totals and gauge values, all or none; ``meta`` (the groups'
        members) is kept in the same commit. Pushed gauges never expire (a daily job's result
        must last the day): they are "set" at infinity."""
        totals = {canonical_name(n): _gauge_value(n, v) for n, v in counters.items()}
        values = {canonical_name(n): _gauge_value(n, v) for n, v in gauges.items()}
        with self._lock:
            self._check_open()
            gone = [(kind, name) for kind, name in remove if name not in (totals if kind == "counters" else values)]
            gone = [key for key in gone if key[1] in self._table(key[0])]
            room = self._max_metrics - self._door_counts.get("push", 0) + sum(
                1 for key in gone if self._doors.get(key) == "push")
            new = [key for key in [("counters", n) for n in totals] + [("gauges", n) for n in values]
                   if key[1] not in self._table(key[0])]
            if len(new) > room:
                raise ValueError("too many metrics (at most %d names)" % self._max_metrics)
            self._keep(totals, values, math.inf, "push", True, gone=gone, meta=meta)
            for kind, name in gone:
                self._forget(kind, name)
            self._counters.update(totals)
            self._gauges.update(values)
            self._gauge_set_at.update(dict.fromkeys(values, math.inf))
            for key in new:
                self._adopt(key, "push")

    def _check_open(self) -> None:
        if self._sealed:
            raise RegistrySealed("the dashboard is stopping: nothing more is accepted")

    def _table(self, kind: str) -> dict:
        return self._counters if kind == "counters" else self._gauges

    def _check_room(self, door: str, keys: list) -> set:
        """The names among ``keys`` that are new, or ``ValueError`` when ``door`` has no room for them."""
        new = {key for key in keys if key[1] not in self._table(key[0])}
        if self._door_counts.get(door, 0) + len(new) > self._max_metrics:
            raise ValueError("too many metrics%s (at most %d names; delete unused ones with "
                             "DELETE /api/metrics/counters/NAME or /gauges/NAME)"
                             % ("" if door == "api" else " from " + _DOOR_NAMES.get(door, door), self._max_metrics))
        return new

    def _adopt(self, key: tuple, door: str) -> None:
        if key not in self._doors:
            self._doors[key] = door
            self._door_counts[door] = self._door_counts.get(door, 0) + 1

    def _forget(self, kind: str, name: str) -> None:
        """Drop a name from memory (under the lock) and give its door the room back."""
        self._table(kind).pop(name, None)
        if kind == "gauges":
            self._gauge_set_at.pop(name, None)
        door = self._doors.pop((kind, name), None)
        if door is not None:
            self._door_counts[door] -= 1

    def _keep(self, totals: dict, values: dict, set_at: float, door: str, durable: bool,
              gone: Any = (), meta: dict | None = None, forget: Any = ()) -> None:
        """Commit what an update is about to apply, with whatever is still unsaved; raises
        (and nothing is applied, nothing marked saved) when the journal refuses."""
        changed = [("counters", n) for n in totals] + [("gauges", n) for n in values]
        if self._journal is None:
            return
        if not durable:
            self._unsaved.update(changed)
            self._unsaved.difference_update(gone)
            return
        staged = dict.fromkeys(gone)
        staged.update((("counters", n), v) for n, v in totals.items())
        staged.update((("gauges", n), v) for n, v in values.items())
        rows = []
        for key in self._unsaved | staged.keys():
            kind, name = key
            if key in staged:
                value, at, made_by = staged[key], (set_at if kind == "gauges" else 0), self._doors.get(key, door)
            else:
                value, at, made_by = (self._table(kind).get(name), self._gauge_set_at.get(name, 0.0),
                                      self._doors.get(key, "api"))
            rows.append((kind, name, value, at, made_by))
        self._journal(rows, meta=meta, forget=forget)
        self._unsaved.clear()

    def save_unsaved(self) -> None:
        """Commit what changed without a commit (StatsD lines, expired gauges); on failure it stays
        unsaved and the store has said why (``Store.problem()``)."""
        with self._lock:
            if self._unsaved:
                try:
                    self._keep({}, {}, 0.0, "api", True)
                except Exception as exc:  # StorageError: retried at the next tick
                    log.debug("unsaved metrics not kept yet: %s", exc)

    def restore(self, counters: dict, gauges: dict, doors: dict | None = None) -> None:
        """Take back stored state (``{name: total}``, ``{name: (value, set_at)}``, and which door
        made each ``{(kind, name): door}``) at start.

        Not through ``update``: a total may exceed one update's delta limit."""
        with self._lock:
            for name, total in counters.items():
                self._counters[name] = metric_number(total)
            for name, (value, set_at) in gauges.items():
                self._gauges[name] = metric_number(value)
                self._gauge_set_at[name] = set_at
            for key in [("counters", n) for n in counters] + [("gauges", n) for n in gauges]:
                self._adopt(key, (doors or {}).get(key, "api"))

    def delete(self, kind: str, name: str) -> bool:
        """Forget counter or gauge ``name`` (``kind`` is "counters" or "gauges") with its stored
        history; False if unknown."""
        with self._lock:
            self._check_open()
            if name not in self._table(kind):
                return False
            self._keep({}, {}, 0.0, "api", True, gone=[(kind, name)], forget=["%s.%s" % (kind, name)])
            self._forget(kind, name)
            return True

    def snapshot(self) -> tuple[dict, dict]:
        """Copies of (counters, gauges), safe to use after the call."""
        with self._lock:
            self._expire(self._clock())
            return dict(self._counters), dict(self._gauges)

    def state(self) -> tuple[dict, dict]:
        """(counters, {gauge: (value, set_at)}): what storage keeps across a restart."""
        with self._lock:
            return dict(self._counters), {n: (v, self._gauge_set_at.get(n, 0.0)) for n, v in self._gauges.items()}

    def seal(self) -> tuple[dict, dict]:
        """Refuse every later update, keep what is unsaved, and return the final ``state()``."""
        with self._lock:
            self._sealed = True
        self.save_unsaved()
        return self.state()

    def _expire(self, now: float) -> None:
        if self._gauge_ttl_s is None or self._gauge_ttl_s <= 0:
            return
        old = [n for n, at in self._gauge_set_at.items() if now - at > self._gauge_ttl_s]
        for name in old:
            self._forget("gauges", name)
            if self._journal is not None:
                self._unsaved.add(("gauges", name))


_DOOR_NAMES = {"statsd": "StatsD", "push": "Prometheus push"}


class RegistrySealed(Exception):
    """An update arrived after the final state was written (the server is stopping)."""


def _counter_delta(name: Any, delta: Any) -> int | float:
    try:
        delta = metric_number(delta)
    except ValueError as exc:
        raise ValueError("counter %r: delta %s" % (name, exc)) from None
    if delta < 0:
        raise ValueError("counter %r: delta must not be negative (counters only go up)" % name)
    if delta > MAX_COUNTER_DELTA:
        raise ValueError("counter %r: delta must be at most %g" % (name, MAX_COUNTER_DELTA))
    return delta


def _gauge_value(name: Any, value: Any) -> int | float:
    try:
        return metric_number(value)
    except ValueError as exc:
        raise ValueError("gauge %r: value %s" % (name, exc)) from None


def _check_mapping(what: str, value: Any) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError("%s must be an object of name: number" % what)
    return value


def canonical_name(name: Any) -> str:
    """``name`` checked, with its labels (if any) in canonical order; ``ValueError`` if bad.

    >>> canonical_name('jobs{queue="mail",host="a"}')
    'jobs{host="a",queue="mail"}'
    """
    if isinstance(name, str) and len(name) <= MAX_NAME_CHARS and METRIC_NAME_RE.fullmatch(name):
        return name  # the common case: no labels
    base, labels = split_name(name)
    return labeled_name(base, labels)


def split_name(name: Any) -> tuple[str, dict]:
    """``'jobs{queue="mail"}'`` -> ``('jobs', {'queue': 'mail'})``; ``ValueError`` if bad."""
    if not isinstance(name, str):
        raise ValueError("metric names must be strings")
    base, brace, rest = name.partition("{")
    if not METRIC_NAME_RE.fullmatch(base):
        raise ValueError("metric names must match [a-zA-Z_:][a-zA-Z0-9_:]* (labels may follow: name{key=\"value\"})")
    if len(base) > MAX_NAME_CHARS:
        raise ValueError("metric name must be at most %d characters" % MAX_NAME_CHARS)
    labels: dict[str, str] = {}
    if brace:
        if not rest.endswith("}") or len(name) > MAX_LABELED_NAME_CHARS:
            raise ValueError("labels must be {key=\"value\",...} and the whole name at most %d characters"
                             % MAX_LABELED_NAME_CHARS)
        inside, at = rest[:-1], 0
        while at < len(inside.rstrip()):
            match = _LABEL_RE.match(inside, at)
            if match is None or match.end() == at:
                raise ValueError("labels must be {key=\"value\",...} (a value in double quotes, \\ \" and \\n escaped)")
            if match.group(1) in labels:
                raise ValueError("label %s is given twice" % match.group(1))
            labels[match.group(1)] = unescape_label_value(match.group(2))
            at = match.end()
    return base, labels


def labeled_name(base: str, labels: dict) -> str:
    """The canonical name of ``base`` with ``labels``: sorted, empty values dropped (as in
    Prometheus, where an empty label is no label); ``ValueError`` when a label is unusable."""
    labels = {k: v for k, v in labels.items() if v != ""}
    for key, value in labels.items():
        if not LABEL_NAME_RE.fullmatch(key) or key.startswith("__"):
            raise ValueError("label names must match [a-zA-Z_][a-zA-Z0-9_]* and not start with __")
        if not isinstance(value, str):
            raise ValueError("label values must be text")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("label values must be valid Unicode text") from None
    if len(labels) > MAX_LABELS:
        raise ValueError("at most %d labels per metric" % MAX_LABELS)
    if not labels:
        return base
    name = "%s{%s}" % (base, ",".join('%s="%s"' % (k, _escape_label(labels[k])) for k in sorted(labels)))
    if len(name) > MAX_LABELED_NAME_CHARS:
        raise ValueError("a metric name with its labels must be at most %d characters" % MAX_LABELED_NAME_CHARS)
    return name


_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


def unescape_label_value(text: str) -> str:
    """A label value as the text format writes it: only \\\\, \\" and \\n are escapes (as in
    Prometheus' own parser); any other backslash is a ``ValueError``, not a character dropped."""
    def replace(match: Any) -> str:
        if match.group(1) not in _ESCAPES:
            raise ValueError("label values may escape only \\\\, \\\" and \\n (found \\%s)" % match.group(1))
        return _ESCAPES[match.group(1)]
    return re.sub(r"\\(.)", replace, text, flags=re.S)


# --------------------------------------------------------------------------
# System collectors
# --------------------------------------------------------------------------

SYSTEM_FIELDS = (
    "cpu_percent",
    "cpu_per_core",
    "cpu_count",
    "memory_total_bytes",
    "memory_used_bytes",
    "memory_available_bytes",
    "memory_percent",
    "swap_total_bytes",
    "swap_used_bytes",
    "swap_percent",
    "disk_path",
    "disk_total_bytes",
    "disk_used_bytes",
    "disk_free_bytes",
    "disk_percent",
    "disk_read_bytes_per_s",
    "disk_write_bytes_per_s",
    "net_sent_bytes",
    "net_recv_bytes",
    "net_sent_bytes_per_s",
    "net_recv_bytes_per_s",
    "load_1",
    "load_5",
    "load_15",
    "process_count",
    "uptime_s",
    # Lists (devices.py): every real filesystem, disk, interface; sensors where psutil has them.
    "filesystems",
    "disks",
    "interfaces",
    "temperatures",
    "fans",
    "battery",
)
LIST_FIELDS = ("cpu_per_core", "filesystems", "disks", "interfaces", "temperatures", "fans", "battery")


def default_disk_path() -> str:
    """The root of the drive this program runs from (``C:\\`` on Windows, ``/`` elsewhere)."""
    return Path(sys.executable or ".").resolve().anchor or os.sep


class SystemCollector:
    """The collector protocol: ``collect()`` returns a dict of ``SYSTEM_FIELDS``
    (``None`` where unknown) plus ``source``; ``rss_bytes()`` is this process's
    resident memory. Only the sampler thread calls either."""

    source = "none"

    def __init__(self, disk_path: str | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.disk_path = disk_path or default_disk_path()
        # One Rates per group read together (an update forgets the keys it is not given).
        self._disk_io_rates = Rates(clock)
        self._net_io_rates = Rates(clock)
        self._disk_rates = Rates(clock, ndigits=1)   # per disk
        self._net_rates = Rates(clock, ndigits=1)    # per interface
        self._warned: set[str] = set()

    def collect(self) -> dict:
        system: dict[str, Any] = dict.fromkeys(SYSTEM_FIELDS)
        system["source"] = self.source
        for reader in self._readers():
            try:
                system.update(reader())
            except Exception as exc:  # degrade: one field group is None, not the sample
                self._warn_once(reader.__name__, exc)
        for key, value in system.items():
            if isinstance(value, float) and not math.isfinite(value):
                system[key] = None
        return system

    def rss_bytes(self) -> int | None:
        return None

    def _readers(self) -> list:
        return []

    def _warn_once(self, what: str, exc: BaseException) -> None:
        if what not in self._warned:
            self._warned.add(what)
            log.warning("system metric %s unavailable (%s: %s); reporting null", what.lstrip("_"), type(exc).__name__, exc)

    def _disk_usage(self) -> dict:
        usage = shutil.disk_usage(self.disk_path)
        return {
            "disk_path": self.disk_path,
            "disk_total_bytes": usage.total,
            "disk_used_bytes": usage.used,
            "disk_free_bytes": usage.free,
            # As df and psutil: used / (used + available to ordinary users). The blocks
            # reserved for root (5 % on ext4) count as neither, so the disk is "100 %"
            # when ordinary users can no longer write; used / total never reaches it.
            "disk_percent": _percent(usage.used, usage.used + usage.free),
        }

    def _load(self) -> dict:
        load = os.getloadavg()  # AttributeError on Windows: logged once, fields stay None
        return {"load_1": load[0], "load_5": load[1], "load_15": load[2]}


def _percent(part: float, whole: float) -> float | None:
    return round(100.0 * part / whole, 2) if whole else None


class PsutilCollector(SystemCollector):
    """System metrics from psutil (``pip install sse-dashboard[system]``)."""

    source = "psutil"

    def __init__(self, psutil: Any, disk_path: str | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(disk_path, clock)
        self._psutil = psutil
        self._process = None
        self._primed = False

    def _readers(self) -> list:
        return [self._cpu, self._memory, self._disk_usage, self._disk_io, self._net, self._load, self._processes,
                self._uptime, self._filesystems, self._devices, self._sensors]

    def _filesystems(self) -> dict:
        # all=True, then our own filter: psutil's all=False leaves out tmpfs (/tmp can fill up too).
        mounts = [(p.device, p.mountpoint, p.fstype) for p in self._psutil.disk_partitions(all=True)]
        return {"filesystems": devices.filesystem_usage(devices.real_filesystems(mounts))}

    def _devices(self) -> dict:
        disks = self._psutil.disk_io_counters(perdisk=True) or {}
        nics = self._psutil.net_io_counters(pernic=True) or {}
        sys_net = Path("/sys/class/net") if Path("/sys/class/net").is_dir() else None
        return {"disks": devices.disk_list({n: (d.read_bytes, d.write_bytes) for n, d in disks.items()
                                            if _is_whole_disk(n)}, self._disk_rates),
                "interfaces": devices.interface_list({n: (c.bytes_recv, c.bytes_sent) for n, c in nics.items()},
                                                     self._net_rates, sys_net)}

    def _sensors(self) -> dict:
        return devices.psutil_sensors(self._psutil)

    def _cpu(self) -> dict:
        psutil = self._psutil
        total = psutil.cpu_percent(interval=None)
        per_core = psutil.cpu_percent(interval=None, percpu=True)
        count = psutil.cpu_count() or len(per_core) or None
        if not self._primed:
            # The first call only sets the baseline and returns 0.0 (psutil docs).
            self._primed = True
            return {"cpu_count": count}
        return {"cpu_percent": total, "cpu_per_core": list(per_core), "cpu_count": count}

    def _memory(self) -> dict:
        vm = self._psutil.virtual_memory()
        sw = self._psutil.swap_memory()
        return {
            "memory_total_bytes": vm.total,
            "memory_used_bytes": vm.total - vm.available,
            "memory_available_bytes": vm.available,
            "memory_percent": vm.percent,
            "swap_total_bytes": sw.total,
            "swap_used_bytes": sw.used,
            "swap_percent": sw.percent,
        }

    def _disk_io(self) -> dict:
        io = self._psutil.disk_io_counters()
        per_s = self._disk_io_rates.update({"read": io.read_bytes if io else None,
                                            "write": io.write_bytes if io else None})
        return {"disk_read_bytes_per_s": per_s["read"], "disk_write_bytes_per_s": per_s["write"]}

    def _net(self) -> dict:
        io = self._psutil.net_io_counters()
        per_s = self._net_io_rates.update({"sent": io.bytes_sent, "recv": io.bytes_recv})
        return {
            "net_sent_bytes": io.bytes_sent,
            "net_recv_bytes": io.bytes_recv,
            "net_sent_bytes_per_s": per_s["sent"],
            "net_recv_bytes_per_s": per_s["recv"],
        }

    def _load(self) -> dict:
        load = self._psutil.getloadavg()
        return {"load_1": load[0], "load_5": load[1], "load_15": load[2]}

    def _processes(self) -> dict:
        return {"process_count": len(self._psutil.pids())}

    def _uptime(self) -> dict:
        return {"uptime_s": max(0.0, time.time() - self._psutil.boot_time())}

    def rss_bytes(self) -> int | None:
        try:
            if self._process is None:
                self._process = self._psutil.Process()
            return self._process.memory_info().rss
        except Exception:
            return None


class StdlibCollector(SystemCollector):
    """System metrics from the standard library alone.

    Linux: ``/proc`` (``proc_root`` lets tests feed fixture files).
    Windows: ``ctypes`` calls into kernel32/psapi. Everywhere:
    ``shutil.disk_usage`` and ``os.getloadavg`` where it exists.
    """

    source = "stdlib"

    def __init__(
        self,
        proc_root: str | Path = "/proc",
        disk_path: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        platform: str = os.name,
        sys_root: str | Path = "/sys",
    ) -> None:
        super().__init__(disk_path, clock)
        self.proc_root = Path(proc_root)
        self.sys_root = Path(sys_root)
        self._platform = platform
        self._cpu_times: dict[str, tuple[float, float]] = {}

    def _readers(self) -> list:
        readers = [self._cpu_count, self._disk_usage]
        if self._platform == "nt":
            return readers + [self._windows_cpu, self._windows_memory, self._windows_uptime, self._windows_drives]
        if self.proc_root.is_dir():
            readers += [self._proc_cpu, self._proc_memory, self._proc_disk_io, self._proc_net,
                        self._proc_processes, self._proc_uptime, self._proc_filesystems, self._proc_devices]
        return readers + [self._load]

    def _cpu_count(self) -> dict:
        return {"cpu_count": os.cpu_count()}

    def _busy_percent(self, key: str, busy: float, total: float) -> float | None:
        previous = self._cpu_times.get(key)
        self._cpu_times[key] = (busy, total)
        if previous is None or total <= previous[1]:
            return None
        return round(100.0 * max(0.0, busy - previous[0]) / (total - previous[1]), 1)

    # --- Linux /proc -------------------------------------------------------

    def _read(self, *parts: str) -> str:
        return self.proc_root.joinpath(*parts).read_text(encoding="ascii", errors="replace")

    def _proc_cpu(self) -> dict:
        total_pct = None
        per_core = []
        for line in self._read("stat").splitlines():
            if not line.startswith("cpu"):
                continue
            name, *fields = line.split()
            values = [float(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
            idle = values[3] + (values[4] if len(values) > 4 else 0.0)
            total = sum(values)
            pct = self._busy_percent(name, total - idle, total)
            if name == "cpu":
                total_pct = pct
            else:
                per_core.append(pct)
        if total_pct is None:
            return {}
        return {"cpu_percent": total_pct, "cpu_per_core": per_core if None not in per_core else None}

    def _proc_memory(self) -> dict:
        info = {}
        for line in self._read("meminfo").splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts:
                info[key] = int(parts[0]) * 1024  # kB
        total = info["MemTotal"]
        available = info.get("MemAvailable", info.get("MemFree", 0) + info.get("Cached", 0))
        swap_total = info.get("SwapTotal", 0)
        swap_used = swap_total - info.get("SwapFree", 0)
        return {
            "memory_total_bytes": total,
            "memory_used_bytes": total - available,
            "memory_available_bytes": available,
            "memory_percent": _percent(total - available, total),
            "swap_total_bytes": swap_total,
            "swap_used_bytes": swap_used,
            "swap_percent": _percent(swap_used, swap_total) if swap_total else 0.0,
        }

    def _proc_disk_io(self) -> dict:
        read = written = 0
        for line in self._read("diskstats").splitlines():
            fields = line.split()
            if len(fields) < 10 or not _is_whole_disk(fields[2]):
                continue
            read += int(fields[5]) * 512  # sectors are always 512 bytes here
            written += int(fields[9]) * 512
        per_s = self._disk_io_rates.update({"read": read, "write": written})
        return {"disk_read_bytes_per_s": per_s["read"], "disk_write_bytes_per_s": per_s["write"]}

    def _proc_net(self) -> dict:
        recv = sent = 0
        for line in self._read("net", "dev").splitlines()[2:]:
            name, _, rest = line.partition(":")
            fields = rest.split()
            if name.strip() == "lo" or len(fields) < 9:
                continue
            recv += int(fields[0])
            sent += int(fields[8])
        per_s = self._net_io_rates.update({"sent": sent, "recv": recv})
        return {
            "net_sent_bytes": sent,
            "net_recv_bytes": recv,
            "net_sent_bytes_per_s": per_s["sent"],
            "net_recv_bytes_per_s": per_s["recv"],
        }

    def _proc_filesystems(self) -> dict:
        mounts = devices.proc_mounts(self.proc_root / "self" / "mounts")
        return {"filesystems": devices.filesystem_usage(devices.real_filesystems(mounts))}

    def _proc_devices(self) -> dict:
        disks = {}
        for line in self._read("diskstats").splitlines():
            fields = line.split()
            if len(fields) >= 10 and _is_whole_disk(fields[2]):
                disks[fields[2]] = (int(fields[5]) * 512, int(fields[9]) * 512)
        nics = {}
        for line in self._read("net", "dev").splitlines()[2:]:
            name, _, rest = line.partition(":")
            fields = rest.split()
            if len(fields) >= 9:
                nics[name.strip()] = (int(fields[0]), int(fields[8]))
        sys_net = self.sys_root / "class" / "net"
        return {"disks": devices.disk_list(disks, self._disk_rates),
                "interfaces": devices.interface_list(nics, self._net_rates, sys_net if sys_net.is_dir() else None)}

    def _windows_drives(self) -> dict:
        return {"filesystems": devices.filesystem_usage(devices.windows_drives())}

    def _proc_processes(self) -> dict:
        return {"process_count": sum(1 for p in self.proc_root.iterdir() if p.name.isdigit())}

    def _proc_uptime(self) -> dict:
        return {"uptime_s": float(self._read("uptime").split()[0])}

    def rss_bytes(self) -> int | None:
        try:
            if self._platform == "nt":
                return _windows_rss()
            pages = int(self._read("self", "statm").split()[1])
            return pages * os.sysconf("SC_PAGE_SIZE")
        except Exception:
            return None

    # --- Windows (ctypes) ----------------------------------------------------

    def _windows_cpu(self) -> dict:
        import ctypes
        from ctypes import wintypes

        idle, kernel, user = wintypes.FILETIME(), wintypes.FILETIME(), wintypes.FILETIME()
        if not ctypes.windll.kernel32.GetSystemTimes(ctypes.byref(idle), ctypes.byref(kernel), ctypes.byref(user)):
            raise OSError("GetSystemTimes failed")

        def ticks(ft: Any) -> float:
            return float((ft.dwHighDateTime << 32) | ft.dwLowDateTime)

        total = ticks(kernel) + ticks(user)  # kernel time includes idle time
        return {"cpu_percent": self._busy_percent("cpu", total - ticks(idle), total)}

    def _windows_memory(self) -> dict:
        import ctypes

        class MEMORYSTATUSEX(ctypes.Structure):
            _fields_ = [
                ("dwLength", ctypes.c_ulong),
                ("dwMemoryLoad", ctypes.c_ulong),
                ("ullTotalPhys", ctypes.c_ulonglong),
                ("ullAvailPhys", ctypes.c_ulonglong),
                ("ullTotalPageFile", ctypes.c_ulonglong),
                ("ullAvailPageFile", ctypes.c_ulonglong),
                ("ullTotalVirtual", ctypes.c_ulonglong),
                ("ullAvailVirtual", ctypes.c_ulonglong),
                ("ullAvailExtendedVirtual", ctypes.c_ulonglong),
            ]

        status = MEMORYSTATUSEX()
        status.dwLength = ctypes.sizeof(MEMORYSTATUSEX)
        if not ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):
            raise OSError("GlobalMemoryStatusEx failed")
        total, available = status.ullTotalPhys, status.ullAvailPhys
        return {
            "memory_total_bytes": total,
            "memory_used_bytes": total - available,
            "memory_available_bytes": available,
            "memory_percent": _percent(total - available, total),
        }

    def _windows_uptime(self) -> dict:
        import ctypes

        ctypes.windll.kernel32.GetTickCount64.restype = ctypes.c_ulonglong
        return {"uptime_s": ctypes.windll.kernel32.GetTickCount64() / 1000.0}


def _is_whole_disk(name: str) -> bool:
    """sda, vda, nvme0n1, mmcblk0 count; partitions (sda1, nvme0n1p1) and virtual devices do not."""
    if name.startswith(("loop", "ram", "dm-", "zram", "sr", "md")):
        return False
    if name.startswith(("nvme", "mmcblk")):
        return re.search(r"p\d+$", name) is None
    return not name[-1].isdigit()


def _windows_rss() -> int | None:
    import ctypes
    from ctypes import wintypes

    class PROCESS_MEMORY_COUNTERS(ctypes.Structure):
        _fields_ = [
            ("cb", wintypes.DWORD),
            ("PageFaultCount", wintypes.DWORD),
            ("PeakWorkingSetSize", ctypes.c_size_t),
            ("WorkingSetSize", ctypes.c_size_t),
            ("QuotaPeakPagedPoolUsage", ctypes.c_size_t),
            ("QuotaPagedPoolUsage", ctypes.c_size_t),
            ("QuotaPeakNonPagedPoolUsage", ctypes.c_size_t),
            ("QuotaNonPagedPoolUsage", ctypes.c_size_t),
            ("PagefileUsage", ctypes.c_size_t),
            ("PeakPagefileUsage", ctypes.c_size_t),
        ]

    counters = PROCESS_MEMORY_COUNTERS()
    counters.cb = ctypes.sizeof(counters)
    kernel32 = ctypes.windll.kernel32
    kernel32.GetCurrentProcess.restype = wintypes.HANDLE
    ok = ctypes.windll.psapi.GetProcessMemoryInfo(kernel32.GetCurrentProcess(), ctypes.byref(counters), counters.cb)
    return counters.WorkingSetSize if ok else None


def make_system_collector(psutil: Any = "auto", **kwargs: Any) -> SystemCollector:
    """A psutil collector when psutil imports, else the standard-library one.

    Pass ``psutil=None`` to force the fallback (tests, or a broken psutil)."""
    if psutil == "auto":
        try:
            import psutil as psutil_module
        except ImportError:
            psutil_module = None
        psutil = psutil_module
    if psutil is not None:
        return PsutilCollector(psutil, **kwargs)
    return StdlibCollector(**kwargs)


# --------------------------------------------------------------------------
# History
# --------------------------------------------------------------------------

DEFAULT_HISTORY_S = 900.0   # 15 minutes at full resolution
MAX_HISTORY_POINTS = 100_000


def flatten_snapshot(snapshot: dict) -> dict:
    """The numeric series of one snapshot as ``{"system.cpu_percent": 3.5, "gauges.q": 7, ...}``.

    Series names are interned: every row of the history shares one copy of
    each name instead of holding its own (1,000 long names times 900 rows).
    """
    flat: dict[str, float] = {}
    for key, value in (snapshot.get("system") or {}).items():
        if key == "cpu_per_core" and isinstance(value, list):
            for i, core in enumerate(value):
                if _finite_number(core):
                    flat[sys.intern("system.cpu_core_%d_percent" % i)] = core
        elif _finite_number(value):
            flat[sys.intern("system." + key)] = value
    for section in ("counters", "gauges"):
        for name, value in (snapshot.get(section) or {}).items():
            flat[sys.intern(section + "." + name)] = value
    server = snapshot.get("server") or {}
    for key in ("clients", "rss_bytes"):
        if _finite_number(server.get(key)):
            flat[sys.intern("server." + key)] = server[key]
    return flat


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


# --------------------------------------------------------------------------
# Sampler
# --------------------------------------------------------------------------


def encode_json(obj: Any) -> bytes:
    """Compact UTF-8 JSON, refusing NaN/Infinity (they are not JSON)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


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
    (StatsD turns the interval's timings into gauges).
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
        self.history = History(min(MAX_HISTORY_POINTS, max(10, int(math.ceil(history_s / interval_s)) + 1)))
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


# --------------------------------------------------------------------------
# Prometheus text exposition (format 0.0.4)
# --------------------------------------------------------------------------

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# (family, type, help, system field, scale): units in the name, ratios 0..1 (Prometheus naming).
_SYSTEM_FAMILIES = (
    ("system_cpu_usage_ratio", "gauge", "CPU busy time over the last interval, 0..1", "cpu_percent", 0.01),
    ("system_cpu_logical_cores", "gauge", "Logical CPUs", "cpu_count", 1),
    ("system_memory_total_bytes", "gauge", "Physical memory", "memory_total_bytes", 1),
    ("system_memory_used_bytes", "gauge", "Physical memory in use (total - available)", "memory_used_bytes", 1),
    ("system_memory_available_bytes", "gauge", "Physical memory available", "memory_available_bytes", 1),
    ("system_swap_total_bytes", "gauge", "Swap space", "swap_total_bytes", 1),
    ("system_swap_used_bytes", "gauge", "Swap space in use", "swap_used_bytes", 1),
    ("system_disk_read_bytes_per_second", "gauge", "Disk reads over the last interval", "disk_read_bytes_per_s", 1),
    ("system_disk_written_bytes_per_second", "gauge", "Disk writes over the last interval", "disk_write_bytes_per_s", 1),
    ("system_network_received_bytes_total", "counter", "Bytes received on all interfaces but loopback", "net_recv_bytes", 1),
    ("system_network_sent_bytes_total", "counter", "Bytes sent on all interfaces but loopback", "net_sent_bytes", 1),
    ("system_load1", "gauge", "Load average over 1 minute", "load_1", 1),
    ("system_load5", "gauge", "Load average over 5 minutes", "load_5", 1),
    ("system_load15", "gauge", "Load average over 15 minutes", "load_15", 1),
    ("system_processes", "gauge", "Processes running", "process_count", 1),
    ("system_uptime_seconds", "gauge", "Time since the machine booted", "uptime_s", 1),
)
_DISK_FAMILIES = (
    ("system_disk_size_bytes", "Size of the filesystem", "disk_total_bytes"),
    ("system_disk_used_bytes", "Space used on the filesystem", "disk_used_bytes"),
    ("system_disk_free_bytes", "Space free on the filesystem", "disk_free_bytes"),
)
_SERVER_FAMILIES = (
    ("sse_dashboard_stream_clients", "gauge", "Open /api/metrics/stream connections", "clients"),
    ("sse_dashboard_dropped_clients_total", "counter", "Streams dropped for not reading", "dropped"),
    ("sse_dashboard_resident_memory_bytes", "gauge", "Resident memory of the dashboard process", "rss_bytes"),
    ("sse_dashboard_uptime_seconds", "gauge", "Time since the dashboard started", "uptime"),
    ("sse_dashboard_statsd_lines_total", "counter", "StatsD lines received", "statsd_lines"),
    ("sse_dashboard_statsd_malformed_total", "counter", "StatsD lines skipped as malformed", "statsd_malformed"),
    ("sse_dashboard_statsd_dropped_total", "counter", "StatsD lines refused by the metric limits", "statsd_dropped"),
    ("sse_dashboard_statsd_tcp_closed_total", "counter", "StatsD TCP senders closed to make room for a new one",
     "statsd_tcp_closed"),
)


def _escape_label(value: str) -> str:
    # The three escapes the text format defines; anything else is literal UTF-8.
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _sample_value(value: float) -> str:
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def prometheus_name(name: str, counter: bool) -> str:
    """An application metric's exposition name: ``jobs`` -> ``jobs_total`` for a counter.

    Our names already fit Prometheus' ``[a-zA-Z_:][a-zA-Z0-9_:]*``, but colons are
    reserved for recording rules (promtool refuses them), so they become ``_``; and
    ``__`` is reserved by Prometheus, so such names get an ``app`` prefix."""
    name = name.replace(":", "_")
    if counter and not name.endswith("_total"):
        name += "_total"
    if name.startswith("__"):
        name = "app" + name
    return name


def render_prometheus(snapshot: dict) -> str:
    """The snapshot as Prometheus text: one HELP and TYPE per family, before its samples.

    A family name can be claimed once: system and server families first, then
    counters, then gauges, each in name order. A later application metric that
    maps to a taken name (``a:b`` and ``a_b``) gets a suffix made from a hash of
    its own name, so it is neither dropped nor able to break a scrape."""
    lines: list[str] = []
    taken: set[str] = set()

    def family(name: str, kind: str, help_text: str, samples: list) -> None:
        samples = [(labels, v) for labels, v in samples if v is not None]
        if name in taken or not samples:
            return
        taken.add(name)
        lines.append("# HELP %s %s" % (name, _escape_help(help_text)))
        lines.append("# TYPE %s %s" % (name, kind))
        for labels, value in samples:
            label_text = ",".join('%s="%s"' % (k, _escape_label(str(v))) for k, v in labels)
            lines.append("%s%s %s" % (name, "{%s}" % label_text if label_text else "", _sample_value(value)))

    system = snapshot.get("system") or {}
    for name, kind, help_text, field, scale in _SYSTEM_FAMILIES:
        value = system.get(field)
        family(name, kind, help_text, [((), value * scale if scale != 1 and value is not None else value)])
    cores = system.get("cpu_per_core") or []
    family("system_cpu_core_usage_ratio", "gauge", "CPU busy time per core over the last interval, 0..1",
           [((("core", i),), v / 100.0 if v is not None else None) for i, v in enumerate(cores)])
    path = system.get("disk_path") or ""
    for name, help_text, field in _DISK_FAMILIES:
        family(name, "gauge", help_text, [((("path", path),), system.get(field))])
    _device_families(family, system)
    server = snapshot.get("server") or {}
    for name, kind, help_text, field in _SERVER_FAMILIES:
        family(name, kind, help_text, [((), server.get(field))])
    family("sse_dashboard_samples_total", "counter", "Samples taken since the dashboard started", [((), snapshot.get("seq"))])
    if "alerts" in snapshot:
        family("sse_dashboard_alerts_firing", "gauge", "Alert rules currently firing",
               [((), len(snapshot.get("alerts") or []))])
    beats = [b for b in snapshot.get("heartbeats") or [] if isinstance(b, dict)]
    family("sse_dashboard_heartbeat_last_seen_seconds", "gauge", "When each heartbeat was last received (unix time)",
           [((("name", b["name"]),), b.get("last_seen")) for b in beats])
    family("sse_dashboard_heartbeat_up", "gauge", "1 while a heartbeat is up and on time, 0 when down or silent",
           [((("name", b["name"]),), 1 if b.get("status") == "up" and not b.get("firing") else 0) for b in beats])
    family("sse_dashboard_info", "gauge", "The collector in use", [((("source", system.get("source", "")),), 1)])
    for section, kind in (("counters", "counter"), ("gauges", "gauge")):
        # Names with labels (jobs{queue="mail"}) are samples of one family (jobs).
        families: dict[str, list] = {}
        for name, value in sorted((snapshot.get(section) or {}).items()):
            base, labels = split_name(name) if "{" in name else (name, {})
            families.setdefault(base, []).append((tuple(sorted(labels.items())), value))
        for base, samples in families.items():
            exposed = prometheus_name(base, counter=kind == "counter")
            if exposed in taken:
                exposed = _disambiguated(exposed, base, kind == "counter")
            family(exposed, kind, "Application %s %s" % (kind, base), samples)
    return "\n".join(lines) + "\n"


def _device_families(family: Callable[..., None], system: dict) -> None:
    """Every filesystem, disk, interface and sensor, labelled the way node_exporter labels them."""
    def rows(key: str) -> list:
        value = system.get(key)
        return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []

    fs_labels = lambda f: (("device", f.get("device", "")), ("fstype", f.get("fstype", "")),  # noqa: E731
                           ("mountpoint", f.get("mountpoint", "")))
    for name, help_text, field in (("system_filesystem_size_bytes", "Size of each real filesystem", "total_bytes"),
                                   ("system_filesystem_used_bytes", "Space used on each filesystem", "used_bytes"),
                                   ("system_filesystem_free_bytes", "Space free to ordinary users", "free_bytes")):
        family(name, "gauge", help_text, [(fs_labels(f), f.get(field)) for f in rows("filesystems")])
    for name, help_text, field in (
            ("system_disk_device_read_bytes_per_second", "Reads per disk over the last interval", "read_bytes_per_s"),
            ("system_disk_device_written_bytes_per_second", "Writes per disk over the last interval",
             "write_bytes_per_s")):
        family(name, "gauge", help_text, [((("device", d.get("device", "")),), d.get(field)) for d in rows("disks")])
    for name, help_text, field in (
            ("system_network_interface_received_bytes_total", "Bytes received per interface", "recv_bytes"),
            ("system_network_interface_sent_bytes_total", "Bytes sent per interface", "sent_bytes")):
        family(name, "counter", help_text, [((("interface", i.get("name", "")),), i.get(field))
                                            for i in rows("interfaces")])
    family("system_temperature_celsius", "gauge", "Temperature per sensor",
           [((("sensor", t.get("sensor", "")), ("label", t.get("label", ""))), t.get("celsius"))
            for t in rows("temperatures")])
    family("system_fan_rpm", "gauge", "Fan speed per sensor",
           [((("sensor", f.get("sensor", "")), ("label", f.get("label", ""))), f.get("rpm")) for f in rows("fans")])
    battery = system.get("battery") if isinstance(system.get("battery"), dict) else {}
    family("system_battery_ratio", "gauge", "Battery charge, 0..1",
           [((), battery["percent"] / 100.0 if _finite_number(battery.get("percent")) else None)])
    family("system_battery_plugged", "gauge", "1 while on mains power",
           [((), None if battery.get("plugged") is None else int(bool(battery["plugged"])))])


def _disambiguated(exposed: str, name: str, counter: bool) -> str:
    tag = "_%s" % hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]
    if counter:
        return exposed[: -len("_total")] + tag + "_total"
    return exposed + tag
