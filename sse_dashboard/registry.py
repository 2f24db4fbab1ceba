"""The registry: the application's counters and gauges, and the grammar of their names and numbers.

One concept: what applications report (posted JSON, the client library, MCP, StatsD,
Prometheus push), checked and kept, thread-safe.

Invariants:
- counters only go up; gauges hold any finite number; names match ``METRIC_NAME_RE`` (labels
  may follow in Prometheus' notation, ``jobs{queue="mail"}``) and their number is bounded per
  door (``MAX_METRICS`` each for the API, StatsD and Prometheus push);
- a rejected update stores nothing (all names and values are checked first), and its
  ``ValueError`` says why in words for the person who sent it (the server passes it on as a 400);
- with a journal (``Store.commit_metrics``), an update is on disk before it is applied: what a
  caller was told is stored survives a kill -9;
- every number kept is finite: an int within +-2**53 or a float (``metric_number``).

Lock order: this registry's lock, then the store's write lock (the journal runs under the first).
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from typing import Any, Callable

__all__ = [
    "METRIC_NAME_RE",
    "LABEL_NAME_RE",
    "MetricsRegistry",
    "RegistrySealed",
    "split_name",
    "unescape_label_value",
    "escape_label_value",
    "labeled_name",
    "canonical_name",
    "metric_number",
    "is_finite_number",
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


def is_finite_number(value: Any) -> bool:
    """An int or float (not a bool) that is finite: what a snapshot's numbers must be."""
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
               door: str = "api", durable: bool = True, meta: dict | None = None) -> dict:
        """Apply counter deltas and gauge values together, or raise ``ValueError`` (or the
        journal's ``StorageError``) and apply none.

        ``gauge_deltas`` move gauges relative to their value (StatsD's ``+3|g``).
        ``durable=False``: applied now, kept on disk with the next commit (nobody is told it was).
        ``meta``: named values committed in the same transaction (durable updates only; a value
        of None removes the name): what OTLP keeps of each stream beside the counter it added to.
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
            self._keep(totals, values, now, door, durable, meta=meta)
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
            gone = [key for key in dict.fromkeys(gone) if key[1] in self._table(key[0])]  # each once: room is counted
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

    def save_unsaved(self, last: bool = False) -> None:
        """Commit what changed without a commit (StatsD lines, expired gauges); on failure it stays
        unsaved and the store has said why (``Store.problem()``). ``last``: no later try comes."""
        with self._lock:
            if self._unsaved:
                try:
                    self._keep({}, {}, 0.0, "api", True)
                except Exception as exc:  # StorageError: retried at the next tick
                    if last:
                        log.warning("%d counter or gauge change(s) not kept at the stop (StatsD lines, "
                                    "expired gauges): %s", len(self._unsaved), exc)
                    else:
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
        self.save_unsaved(last=True)
        return self.state()

    def _expire(self, now: float) -> None:
        if self._gauge_ttl_s is None or self._gauge_ttl_s <= 0:
            return
        old = [n for n, at in self._gauge_set_at.items() if now - at > self._gauge_ttl_s]
        for name in old:
            self._forget("gauges", name)
            if self._journal is not None:
                self._unsaved.add(("gauges", name))


_DOOR_NAMES = {"statsd": "StatsD", "push": "Prometheus push", "otlp": "OpenTelemetry"}


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
    name = "%s{%s}" % (base, ",".join('%s="%s"' % (k, escape_label_value(labels[k])) for k in sorted(labels)))
    if len(name) > MAX_LABELED_NAME_CHARS:
        raise ValueError("a metric name with its labels must be at most %d characters" % MAX_LABELED_NAME_CHARS)
    return name


def escape_label_value(value: str) -> str:
    """A label value as the text format writes it: the three escapes it defines (\\\\, \\" and
    \\n); anything else is literal UTF-8. ``unescape_label_value`` undoes it."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


def unescape_label_value(text: str) -> str:
    """A label value as the text format writes it: only \\\\, \\" and \\n are escapes (as in
    Prometheus' own parser); any other backslash is a ``ValueError``, not a character dropped."""
    def replace(match: Any) -> str:
        if match.group(1) not in _ESCAPES:
            raise ValueError("label values may escape only \\\\, \\\" and \\n (found \\%s)" % match.group(1))
        return _ESCAPES[match.group(1)]
    return re.sub(r"\\(.)", replace, text, flags=re.S)
