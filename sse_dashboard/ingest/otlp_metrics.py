"""OTLP metrics into the registry: ``POST /v1/metrics``'s meaning.

One concept: an ``ExportMetricsServiceRequest`` (as ``otlp.decode_request`` gives it) turned
into counter deltas and gauge values, with the state a cumulative stream needs between two
exports so that a restarted SDK neither takes a counter back nor counts anything twice.

What becomes what (README "OpenTelemetry"):
- gauges -> gauges; monotonic sums -> counters (cumulative: the growth since the stream's
  last point; delta: added); non-monotonic sums -> gauges (cumulative: set; delta: moved);
- histograms and exponential histograms -> ``NAME_count`` and ``NAME_sum`` counters and
  ``NAME_p50``, ``NAME_p90`` and ``NAME_p99`` gauges interpolated in the point's buckets (since the
  stream's start for cumulative points, the interval for delta ones); summaries -> the same
  counters and their own quantiles;
- names and labels as the OpenTelemetry-Prometheus compatibility specification writes them
  (``otlp.metric_base_name``, ``otlp.label_name``); the resource gives ``service`` (from
  ``service.name``) and the few labels in ``RESOURCE_LABELS``, the point its attributes.

Cumulative streams: a stream is (name with labels, start time). A point of a known stream adds
its growth (a smaller value with the same start is a reset: it adds the value). A new start is a
restarted SDK: its whole value is new. ``MAX_OTLP_STREAMS`` streams are kept (the least recently
seen go first), at most ``MAX_STARTS_PER_NAME`` start times a name (the earliest go first); a
forgotten stream that comes back sets a baseline (adds nothing), while a later start (an SDK
restarted since) counts whole. A stream never seen that started before ``trusted_since`` (when
this data folder first kept stream state), for a counter the registry already holds, may have
been counted before that: it sets its baseline too.

Restarts: the stream state (each stream's last value, the forgotten starts, ``trusted_since``)
is kept in the store's named values (``STATE_PREFIX``), committed in the same transaction as the
counters it moved (``MetricsRegistry.update(meta=...)``), and given back at start (``state``):
after a restart, a SIGTERM or a kill -9 alike, a stream goes on from its last value, so what an
app counted across the dashboard's restart is added once. Without a data folder, nothing of
either is kept.

Invariants:
- a request is read whole first; a point that cannot be kept is rejected (partial success,
  with the count and why), the others are applied in one registry update or none are;
- a counter's increment and the stream value that caused it are committed together or not at
  all; a refused request (a 400, storage's 503) leaves nothing behind, in memory or on disk.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

from sse_dashboard.ingest.otlp import (OtlpError, attributes, label_name, label_text, metric_base_name, objects,
                                       read_double, read_int)
from sse_dashboard.registry import MAX_NAME_CHARS, MetricsRegistry, labeled_name

__all__ = ["OtlpMetrics", "ExportResult", "read_metrics", "quantile_name", "resource_labels", "point_labels",
           "MAX_OTLP_STREAMS", "MAX_OTLP_POINTS", "QUANTILES", "RESOURCE_LABELS", "STATE_PREFIX"]

log = logging.getLogger(__name__)

MAX_OTLP_STREAMS = 10_000   # cumulative streams remembered between exports
MAX_STARTS_PER_NAME = 4     # start times kept per stream name: older ones belong to SDKs that restarted
MAX_OTLP_POINTS = 10_000    # data points in one request
MAX_BUCKETS = 1_000         # buckets in one histogram point
QUANTILES = (0.5, 0.9, 0.99)
# Resource attributes that become labels; the rest (telemetry.sdk.*, service.instance.id, process.*)
# would make every restart a new series, or pass the label limit.
RESOURCE_LABELS = {"service.name": "service", "service.namespace": "service_namespace",
                   "deployment.environment": "environment", "deployment.environment.name": "environment",
                   "host.name": "host"}
_DELTA, _CUMULATIVE = 1, 2
_TEMPORALITY_NAMES = {"AGGREGATION_TEMPORALITY_DELTA": _DELTA, "AGGREGATION_TEMPORALITY_CUMULATIVE": _CUMULATIVE}
_NO_RECORDED_VALUE = 1  # DataPointFlags: the point says "no value" (a stale marker)
_KINDS = ("gauge", "sum", "histogram", "exponentialHistogram", "summary")
# The stream state in the store's named values: one a stream, one a name with a forgotten start.
STATE_PREFIX = "otlp."
_STREAM_KEY = STATE_PREFIX + "stream:"   # + start:name -> the last value
_FLOOR_KEY = STATE_PREFIX + "floor:"     # + name -> the latest start forgotten
_TRUSTED_KEY = STATE_PREFIX + "trusted_since"
_ABSENT = object()


@dataclass
class ExportResult:
    """What one request did: points taken and rejected, and why (for ``partialSuccess``)."""

    accepted: int = 0
    rejected: int = 0
    errors: list = field(default_factory=list)

    @property
    def message(self) -> str:
        if not self.errors:
            return ""
        more = len(self.errors) - 3
        return "; ".join(self.errors[:3]) + ("; and %d more" % more if more > 0 else "")


@dataclass
class _Batch(ExportResult):
    """A request read, nothing stored yet: ``cumulative`` holds (name, start, value)."""

    cumulative: list = field(default_factory=list)
    adds: dict = field(default_factory=dict)
    gauges: dict = field(default_factory=dict)
    moves: dict = field(default_factory=dict)

    def take(self, items: list) -> None:
        for kind, name, *rest in items:
            if kind == "cumulative":
                self.cumulative.append((name, rest[0], rest[1]))
            elif kind == "add":
                self.adds[name] = self.adds.get(name, 0) + rest[0]
            elif kind == "move":
                self.moves[name] = self.moves.get(name, 0) + rest[0]
            else:
                self.gauges[name] = rest[0]
        self.accepted += 1

    def reject(self, count: int, why: str) -> None:
        self.rejected += count
        if len(self.errors) < 20:
            self.errors.append(why)


class OtlpMetrics:
    """Metrics exports into ``registry`` (its "otlp" door: a budget of names of its own).

    ``state``: the named values under ``STATE_PREFIX`` the store kept (``read_meta_prefix``),
    to go on from; ``keep_state``: commit them with each update (False without a data folder,
    where the counters are not kept either). ``clock`` gives unix seconds: ``trusted_since``
    for a data folder without them."""

    def __init__(self, registry: MetricsRegistry, clock: Callable[[], float] = time.time,
                 max_streams: int = MAX_OTLP_STREAMS, state: dict | None = None, keep_state: bool = True) -> None:
        self.registry = registry
        self._lock = threading.Lock()
        self._clock = clock
        self._max_streams = max_streams
        self._keep_state = keep_state
        self._streams: OrderedDict = OrderedDict()  # (name, start ns) -> last cumulative value
        self._starts: dict[str, list] = {}          # name -> its start times kept
        # name -> the latest start of a stream forgotten here: one that comes back was counted already
        self._floors: OrderedDict = OrderedDict()
        state = state or {}
        trusted = state.get(_TRUSTED_KEY)
        self._trusted_since_ns = int(trusted) if trusted else int(clock() * 1e9)
        self._unsaved = {} if trusted else {_TRUSTED_KEY: str(self._trusted_since_ns)}  # goes with the next commit
        self._restore(state)

    def _restore(self, state: dict) -> None:
        for key, value in sorted(state.items()):
            try:
                if key.startswith(_STREAM_KEY):
                    start, _, name = key[len(_STREAM_KEY):].partition(":")
                    self._streams[(name, int(start))] = json.loads(value)
                    self._starts.setdefault(name, []).append(int(start))
                elif key.startswith(_FLOOR_KEY):
                    self._floors[key[len(_FLOOR_KEY):]] = int(value)
            except ValueError:  # not worth failing a start over: that stream sets a baseline
                log.warning("OTLP stream state %r unreadable, left out", key[:80])

    def export(self, request: dict) -> ExportResult:
        """Apply a request; ``OtlpError`` (a 400) or the registry's ``ValueError`` store nothing."""
        batch = read_metrics(request)
        with self._lock:
            staged, deltas = self._stage(batch.cumulative)
            counters = dict(batch.adds)
            for name, delta in deltas.items():
                counters[name] = counters.get(name, 0) + delta
            undo = _Undo(self)
            meta = self._commit(staged, undo)
            meta = meta if self._keep_state else None
            try:
                if counters or batch.gauges or batch.moves or meta:
                    # The streams' new values go in the counters' own commit: a kill -9 keeps both or neither.
                    self.registry.update(counters=counters, gauges=batch.gauges, gauge_deltas=batch.moves,
                                         door="otlp", meta=meta or None)
            except BaseException:
                undo.apply()
                raise
            if meta:
                self._unsaved = {}
        return ExportResult(batch.accepted, batch.rejected, batch.errors)

    def streams(self) -> int:
        with self._lock:
            return len(self._streams)

    def _stage(self, cumulative: list) -> tuple[dict, dict]:
        """The new last values of the streams, and each counter's growth; nothing changed yet."""
        staged: dict[tuple, Any] = {}
        deltas: dict[str, Any] = {}
        known = None
        for name, start, value in cumulative:
            key = (name, start)
            last = staged.get(key, self._streams.get(key))
            if last is None:
                if start <= self._floors.get(name, -1):
                    delta = 0  # forgotten here (the bounds), counted before: a baseline
                elif start >= self._trusted_since_ns:
                    delta = value
                else:  # maybe counted before this folder kept streams: a baseline, unless never seen
                    known = self.registry.snapshot()[0] if known is None else known
                    delta = 0 if name in known else value
            else:
                delta = value - last if value >= last else value  # smaller, same start: a reset
            staged[key] = value
            deltas[name] = deltas.get(name, 0) + max(delta, 0)
        return staged, deltas

    def _commit(self, staged: dict, undo: "_Undo") -> dict:
        """Take the staged values into the table (``undo`` can take them back); returns the named
        values to commit that say so (only what changed: an idle stream writes nothing)."""
        meta = dict(self._unsaved)
        streams, before, keep = self._streams, undo.streams, self._keep_state
        for key, value in staged.items():
            last = streams.get(key, _ABSENT)
            before.setdefault(key, last)
            if last is _ABSENT and not self._new_stream(key, meta, undo):
                continue  # the new stream is itself the oldest start of its name: not kept
            if keep and last != value:
                meta[_STREAM_KEY + "%d:%s" % (key[1], key[0])] = repr(value)
            streams[key] = value
            streams.move_to_end(key)
        while len(streams) > self._max_streams:
            key = next(iter(streams))
            self._drop(key, meta, undo)
        return meta

    def _new_stream(self, key: tuple, meta: dict, undo: "_Undo") -> bool:
        """Count a new start of its name: past ``MAX_STARTS_PER_NAME`` the earliest goes (an SDK
        that restarted never sends its old start again). False when that is the new one."""
        name, start = key
        undo.starts(name)
        starts = self._starts.setdefault(name, [])
        starts.append(start)
        if len(starts) <= MAX_STARTS_PER_NAME:
            return True
        oldest = min(starts)
        self._drop((name, oldest), meta, undo)
        return oldest != start

    def _drop(self, key: tuple, meta: dict, undo: "_Undo") -> None:
        """Forget a stream: if it comes back, it sets a baseline (a later start, an SDK that
        restarted since, still counts whole)."""
        name, start = key
        undo.streams.setdefault(key, self._streams.get(key, _ABSENT))
        undo.starts(name)
        self._streams.pop(key, None)
        meta[_STREAM_KEY + "%d:%s" % (start, name)] = None
        starts = self._starts[name]
        starts.remove(start)
        if not starts:
            del self._starts[name]
        undo.floor(name)
        self._floors[name] = max(self._floors.get(name, start), start)
        self._floors.move_to_end(name)
        meta[_FLOOR_KEY + name] = str(self._floors[name])
        while len(self._floors) > self._max_streams:
            gone = next(iter(self._floors))
            undo.floor(gone)
            del self._floors[gone]
            meta[_FLOOR_KEY + gone] = None
            # Past this bound too: from now on, every unknown stream that started earlier sets a baseline.
            self._trusted_since_ns = max(self._trusted_since_ns, int(self._clock() * 1e9))
            meta[_TRUSTED_KEY] = str(self._trusted_since_ns)


class _Undo:
    """What ``OtlpMetrics._commit`` changed, to put back when the commit is refused (storage, a
    limit): the first value seen of each entry it touched. The order of recency is not put back."""

    def __init__(self, owner: OtlpMetrics) -> None:
        self._owner = owner
        self.streams: dict = {}
        self._starts: dict = {}
        self._floors: dict = {}
        self._trusted = owner._trusted_since_ns

    def starts(self, name: str) -> None:
        if name not in self._starts:
            kept = self._owner._starts.get(name)
            self._starts[name] = _ABSENT if kept is None else list(kept)

    def floor(self, name: str) -> None:
        if name not in self._floors:
            self._floors[name] = self._owner._floors.get(name, _ABSENT)

    def apply(self) -> None:
        owner = self._owner
        for table, saved in ((owner._streams, self.streams), (owner._starts, self._starts),
                             (owner._floors, self._floors)):
            for key, value in saved.items():
                if value is _ABSENT:
                    table.pop(key, None)
                else:
                    table[key] = value
        owner._trusted_since_ns = self._trusted


# --- reading a request (pure) -------------------------------------------------------


def read_metrics(request: dict) -> _Batch:
    """Every data point of ``request`` as registry updates; ``OtlpError`` when its shape is wrong."""
    batch = _Batch()
    for resource in objects(request.get("resourceMetrics"), "resourceMetrics"):
        common = resource_labels(resource.get("resource"))
        for scope in objects(resource.get("scopeMetrics"), "resourceMetrics[].scopeMetrics"):
            for metric in objects(scope.get("metrics"), "scopeMetrics[].metrics"):
                _read_metric(metric, common, batch)
    return batch


def resource_labels(resource: Any) -> dict:
    if resource is None:
        return {}
    if not isinstance(resource, dict):
        raise OtlpError("resource must be an object")
    labels = {}
    for key, value in attributes(resource.get("attributes")).items():
        if key in RESOURCE_LABELS and value is not None:
            labels[RESOURCE_LABELS[key]] = label_text(value)
    return labels


def _read_metric(metric: dict, common: dict, batch: _Batch) -> None:
    kinds = [kind for kind in _KINDS if kind in metric]
    name = metric.get("name")
    shown = repr(name[:60]) if isinstance(name, str) else "a metric"
    if len(kinds) != 1 or not isinstance(metric[kinds[0]], dict):
        batch.reject(0, "%s must have one of %s" % (shown, ", ".join(_KINDS)))
        return
    kind, data = kinds[0], metric[kinds[0]]
    points = objects(data.get("dataPoints"), "dataPoints")
    try:
        reader = _reader(kind, data, metric)
    except (OtlpError, ValueError) as exc:
        batch.reject(len(points), "%s: %s" % (shown, exc))
        return
    for point in points:
        if batch.accepted + batch.rejected >= MAX_OTLP_POINTS:
            batch.reject(1, "at most %d data points in one request" % MAX_OTLP_POINTS)
            continue
        try:
            if int(read_int(point.get("flags"), "flags", 0)) & _NO_RECORDED_VALUE:
                batch.accepted += 1  # a "no value" marker: nothing to keep
                continue
            labels = dict(common, **point_labels(point.get("attributes")))
            batch.take(reader(point, labels))
        except (OtlpError, ValueError) as exc:
            batch.reject(1, "%s: %s" % (shown, exc))


def _reader(kind: str, data: dict, metric: dict) -> Callable[[dict, dict], list]:
    """The function that turns one point of this metric into registry items."""
    unit = metric.get("unit")
    if kind == "gauge":
        base = metric_base_name(metric.get("name"), unit, gauge=True)
        return lambda point, labels: [("gauge", _name(base, labels), _number(point))]
    if kind == "summary":
        base = metric_base_name(metric.get("name"), unit, gauge=True)
        return lambda point, labels: _summary_items(base, point, labels)
    temporality = _temporality(data.get("aggregationTemporality"))
    if kind == "sum":
        monotonic = data.get("isMonotonic", False) is True
        base = metric_base_name(metric.get("name"), unit, gauge=not monotonic)
        return lambda point, labels: [_sum_item(base, point, labels, monotonic, temporality)]
    base = metric_base_name(metric.get("name"), unit, gauge=False)
    buckets = _explicit_buckets if kind == "histogram" else _exponential_buckets
    return lambda point, labels: _histogram_items(base, point, labels, temporality, buckets(point))


def _temporality(value: Any) -> int:
    value = _TEMPORALITY_NAMES.get(value, value) if isinstance(value, str) else value
    if value not in (_DELTA, _CUMULATIVE) or isinstance(value, bool):
        raise OtlpError("aggregationTemporality must be 1 (delta) or 2 (cumulative)")
    return value


def point_labels(items: Any) -> dict:
    """A point's attributes as labels; two keys that become one label keep both values (``a;b``)."""
    labels: dict[str, str] = {}
    attrs = attributes(items)
    for key in sorted(attrs):
        if attrs[key] is None:
            continue
        label = label_name(key)
        text = label_text(attrs[key])
        labels[label] = labels[label] + ";" + text if label in labels else text
    return labels


def _name(base: str, labels: dict) -> str:
    return _labeled(base, tuple(labels.items()))


@functools.lru_cache(maxsize=4096)
def _labeled(base: str, labels: tuple) -> str:
    """The registry's name for a series; ``ValueError``: too many labels, too long. Memoized: an SDK
    sends the same series at every export, and building the name was a third of a request's time."""
    if len(base) > MAX_NAME_CHARS:  # (its characters are metric_base_name's: always valid)
        raise ValueError("metric name %s... must be at most %d characters" % (base[:40], MAX_NAME_CHARS))
    return labeled_name(base, dict(labels))


def _number(point: dict) -> int | float:
    if "asInt" in point:
        return read_int(point["asInt"], "asInt")
    if "asDouble" in point:
        return read_double(point["asDouble"], "asDouble")
    raise OtlpError("a data point needs asDouble or asInt")


def _start(point: dict) -> int:
    return read_int(point.get("startTimeUnixNano"), "startTimeUnixNano", 0)


def _sum_item(base: str, point: dict, labels: dict, monotonic: bool, temporality: int) -> tuple:
    value, name = _number(point), _name(base, labels)
    if not monotonic:
        return ("gauge", name, value) if temporality == _CUMULATIVE else ("move", name, value)
    if value < 0:
        raise OtlpError("a monotonic sum cannot be negative (%s)" % value)
    if temporality == _CUMULATIVE:
        return ("cumulative", name, _start(point), value)
    return ("add", name, value)


def _count_and_sum(base: str, point: dict, labels: dict, temporality: int, total: Any) -> list:
    count = read_int(point.get("count"), "count", 0)
    if count < 0:
        raise OtlpError("count cannot be negative")
    items = [(_grow(temporality), _name(base + "_count", labels), *_grown(point, temporality, count))]
    # A sum of negative observations is no counter: then only the count and the quantiles are kept.
    if total is not None and total >= 0 and read_double(point.get("min", 0), "min") >= 0:
        items.append((_grow(temporality), _name(base + "_sum", labels), *_grown(point, temporality, total)))
    return items


def _grow(temporality: int) -> str:
    return "cumulative" if temporality == _CUMULATIVE else "add"


def _grown(point: dict, temporality: int, value: Any) -> tuple:
    return (_start(point), value) if temporality == _CUMULATIVE else (value,)


def _histogram_items(base: str, point: dict, labels: dict, temporality: int, buckets: list) -> list:
    total = read_double(point["sum"], "sum") if "sum" in point else None
    items = _count_and_sum(base, point, labels, temporality, total)
    observed = sum(count for _, _, count in buckets)
    if observed:
        for q in QUANTILES:
            items.append(("gauge", _name(quantile_name(base, q), labels), _bucket_quantile(buckets, observed, q)))
    return items


def _summary_items(base: str, point: dict, labels: dict) -> list:
    total = read_double(point.get("sum", 0), "sum")
    items = _count_and_sum(base, point, labels, _CUMULATIVE, total)
    for entry in objects(point.get("quantileValues"), "quantileValues"):
        q = read_double(entry.get("quantile", 0), "quantile")
        if not 0 <= q <= 1:
            raise OtlpError("a quantile must be within 0..1")
        items.append(("gauge", _name(quantile_name(base, q), labels), read_double(entry.get("value", 0), "value")))
    return items


def quantile_name(base: str, q: float) -> str:
    """``NAME_p50`` for the 0.5 quantile, ``NAME_p99_9`` for 0.999, as StatsD timers name theirs: a
    ``quantile`` label outside a summary family is what promtool's lint refuses."""
    return "%s_p%s" % (base, ("%.6g" % (q * 100)).replace(".", "_"))


def _counts(values: Any, what: str) -> list:
    if values is None:
        return []
    if not isinstance(values, list) or len(values) > MAX_BUCKETS:
        raise OtlpError("%s must be an array of at most %d counts" % (what, MAX_BUCKETS))
    counts = [read_int(value, what) for value in values]
    if any(count < 0 for count in counts):
        raise OtlpError("%s cannot be negative" % what)
    return counts


def _explicit_buckets(point: dict) -> list:
    """(lower, upper, count) for each bucket, the outer ones closed by min and max when given."""
    counts = _counts(point.get("bucketCounts"), "bucketCounts")
    bounds = point.get("explicitBounds") or []
    if not isinstance(bounds, list) or len(bounds) > MAX_BUCKETS:
        raise OtlpError("explicitBounds must be an array of at most %d numbers" % MAX_BUCKETS)
    bounds = [read_double(bound, "explicitBounds") for bound in bounds]
    if not counts:
        return []
    if len(counts) != len(bounds) + 1:
        raise OtlpError("bucketCounts must have one more entry than explicitBounds")
    if any(b <= a for a, b in zip(bounds, bounds[1:])):
        raise OtlpError("explicitBounds must increase")
    low = read_double(point["min"], "min") if "min" in point else (min(0.0, bounds[0]) if bounds else 0.0)
    high = read_double(point["max"], "max") if "max" in point else (bounds[-1] if bounds else low)
    edges = [min(low, bounds[0]) if bounds else low] + bounds + [max(high, bounds[-1]) if bounds else high]
    if "min" in point or "max" in point:  # nothing was observed outside them: no quantile is either
        edges = [min(max(edge, low), high) for edge in edges]
    return [(edges[i], edges[i + 1], count) for i, count in enumerate(counts)]


def _exponential_buckets(point: dict) -> list:
    """An exponential histogram's buckets, lowest first: base ``2 ** 2 ** -scale``, bucket
    ``i`` holds (base**i, base**(i+1)]; negative ones mirror them; the zero bucket is 0."""
    scale = read_int(point.get("scale"), "scale", 0)
    if not -10 <= scale <= 20:
        raise OtlpError("scale must be within -10..20")
    base = 2.0 ** (2.0 ** -scale)
    sides = []
    for key, sign in (("negative", -1), ("positive", 1)):
        side = point.get(key) or {}
        if not isinstance(side, dict):
            raise OtlpError("%s must be an object" % key)
        offset = read_int(side.get("offset"), key + ".offset", 0)
        counts = _counts(side.get("bucketCounts"), key + ".bucketCounts")
        try:
            edges = [(base ** (offset + k), base ** (offset + k + 1), count) for k, count in enumerate(counts)]
        except OverflowError:
            raise OtlpError("%s buckets reach past the largest number" % key) from None
        if not all(math.isfinite(high) for _, high, _ in edges):
            raise OtlpError("%s buckets reach past the largest number" % key)
        sides.append([(-high, -low, count) for low, high, count in reversed(edges)] if sign < 0 else edges)
    zero = read_int(point.get("zeroCount"), "zeroCount", 0)
    return sides[0] + ([(0.0, 0.0, zero)] if zero else []) + sides[1]


def _bucket_quantile(buckets: list, observed: int, q: float) -> float:
    """The ``q`` quantile by linear interpolation inside the bucket that holds its rank."""
    rank, seen = q * observed, 0
    for low, high, count in buckets:
        if count and seen + count >= rank:
            return low + (high - low) * max(0.0, rank - seen) / count
        seen += count
    return buckets[-1][1]
