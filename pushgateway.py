"""Prometheus push, as the Pushgateway takes it: groups of metrics a batch job sends.

One concept: ``PUT``/``POST``/``DELETE /metrics/job/<job>{/<label>/<value>}`` with a
Prometheus text-format body (0.0.4, or OpenMetrics text), exactly what
``prometheus_client.push_to_gateway``, ``pushadd_to_gateway`` and
``delete_from_gateway`` send.

Invariants:
- a body is parsed whole before anything is stored: a malformed one stores nothing;
- a group is named by its grouping labels; its samples carry them (a sample's own
  label of the same name is overwritten, as in the Pushgateway), and live in the
  registry as ordinary counters (``# TYPE counter``) and gauges (everything else:
  gauge, untyped, and the ``_bucket``/``_sum``/``_count`` samples of histograms and
  summaries), so the page, history, alerts and ``/metrics`` see them;
- ``PUT`` replaces the whole group, ``POST`` only the metric families it sends,
  ``DELETE`` removes the group; each also sets or removes ``push_time_seconds``
  for the group, as the Pushgateway does;
- which names belong to which group is kept with the data (``persist``), so a
  restart can still replace or delete a group pushed before it.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
import math
import re
import threading
import time
import urllib.parse
from typing import Any, Callable

from metrics import LABEL_NAME_RE, METRIC_NAME_RE, MetricsRegistry, labeled_name, metric_number, unescape_label_value

__all__ = ["PushGroups", "parse_grouping", "parse_exposition", "PushError", "MAX_PUSH_BYTES", "gunzip_bounded"]

MAX_PUSH_BYTES = 1024 * 1024
MAX_GROUPS = 1000
_VALUE_WORDS = {"nan": math.nan, "+inf": math.inf, "inf": math.inf, "-inf": -math.inf}
_LABEL_PAIR_RE = re.compile(r'[ \t]*([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"((?:[^"\\\n]|\\.)*)"[ \t]*(,?)')


class PushError(ValueError):
    """A push that cannot be taken; the message is for the person who sent it."""


def parse_grouping(rest: str) -> dict[str, str]:
    """The grouping labels from the path after ``/metrics/``: ``job/nightly/instance/db1``;
    a label name ending in ``@base64`` has a URL-safe base64 value (``=`` for empty)."""
    parts = rest.split("/")
    if len(parts) < 2 or len(parts) % 2 or parts[0] not in ("job", "job@base64"):
        raise PushError("the path must be /metrics/job/JOB{/LABEL/VALUE}")
    grouping: dict[str, str] = {}
    for raw_name, raw_value in zip(parts[::2], parts[1::2]):
        name = urllib.parse.unquote(raw_name)
        value = urllib.parse.unquote(raw_value)
        if name.endswith("@base64"):
            name = name[:-len("@base64")]
            try:
                value = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                raise PushError("the value of %s is not URL-safe base64 of UTF-8 text" % name) from None
        if not LABEL_NAME_RE.fullmatch(name) or name.startswith("__"):
            raise PushError("grouping label names must match [a-zA-Z_][a-zA-Z0-9_]*")
        if name in grouping:
            raise PushError("grouping label %s is given twice" % name)
        grouping[name] = value
    if not grouping["job"]:
        raise PushError("the job name must not be empty")
    return grouping


def gunzip_bounded(data: bytes, limit: int) -> bytes:
    """A gzip body, unpacked to at most ``limit`` bytes (a small bomb must not become a big one)."""
    unpacker = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = unpacker.decompress(data, limit + 1)
    except zlib.error:
        raise PushError("the body is not valid gzip") from None
    if len(out) > limit or unpacker.unconsumed_tail:
        raise PushError("the body unpacks to more than %d bytes" % limit)
    if not unpacker.eof:
        raise PushError("the gzip body is cut short")
    return out


def parse_exposition(text: str) -> list[tuple[str, str, dict, float]]:
    """``(kind, name, labels, value)`` for every sample of a text-format body, where
    ``kind`` is "counters" or "gauges"; ``PushError`` naming the line when it is not
    the Prometheus text format (0.0.4 or OpenMetrics text)."""
    types: dict[str, str] = {}
    samples = []
    # Lines end at "\n" alone, as Prometheus reads them: str.splitlines() also breaks at
    # U+2028, U+0085, \x0c, \x1d..., which prometheus_client writes raw inside label values.
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.strip(" \t")
        if not line:
            continue
        if line.startswith("#"):
            words = line.split(None, 3)
            if len(words) >= 4 and words[1] == "TYPE":
                if not METRIC_NAME_RE.fullmatch(words[2]):
                    raise PushError("line %d: %s is not a metric name" % (number, json.dumps(words[2][:60])))
                types[words[2]] = words[3].strip()
            continue  # HELP, UNIT, EOF and plain comments
        name, labels, value = _sample(line, number)
        samples.append((_kind(name, types), name, labels, value))
    return samples


def _sample(line: str, number: int) -> tuple[str, dict, float]:
    match = METRIC_NAME_RE.match(line)
    if match is None:
        raise PushError("line %d: a sample must start with a metric name" % number)
    name, at = match.group(0), match.end()
    labels: dict[str, str] = {}
    if line.startswith("{", at):
        at += 1
        while True:
            while at < len(line) and line[at] == " ":
                at += 1
            if line.startswith("}", at):
                at += 1
                break
            pair = _LABEL_PAIR_RE.match(line, at)
            if pair is None:
                raise PushError('line %d: labels must be {name="value",...}' % number)
            key, raw, comma = pair.groups()
            if key in labels:
                raise PushError("line %d: label %s is given twice" % (number, key))
            try:
                labels[key] = unescape_label_value(raw)
            except ValueError as exc:
                raise PushError("line %d: %s" % (number, exc)) from None
            at = pair.end()
            if not comma and not line.startswith("}", at):
                raise PushError("line %d: labels must be separated by commas" % number)
    rest = line[at:].split("#", 1)[0].split()  # an OpenMetrics exemplar follows " # "
    if len(rest) == 2:
        raise PushError("line %d: pushed samples must not have timestamps (the time of the push is theirs)"
                        % number)
    if len(rest) != 1:
        raise PushError("line %d: a sample is NAME{LABELS} VALUE" % number)
    return name, labels, _value(rest[0], name, number)


def _value(text: str, name: str, number: int) -> float:
    value = _VALUE_WORDS.get(text.lower())
    if value is None:
        try:
            value = float(text)
        except ValueError:
            raise PushError("line %d: %s is not a number" % (number, json.dumps(text[:40]))) from None
    if not math.isfinite(value):
        # JSON, the page and the history have no NaN or infinity: refuse rather than drop it.
        raise PushError("line %d: %s is %s; only finite values can be kept" % (number, name, text))
    return value


def _kind(name: str, types: dict) -> str:
    if types.get(name) == "counter":
        return "counters"
    if name.endswith("_total") and types.get(name[:-len("_total")]) == "counter":
        return "counters"  # OpenMetrics: the family is "jobs", the sample "jobs_total"
    return "gauges"


class PushGroups:
    """The pushed groups, their metrics in ``registry``.

    >>> groups = PushGroups(registry)
    >>> groups.push({"job": "backup"}, parse_exposition("done 1\\n"), replace=True)
    >>> registry.snapshot()[1]
    {'done{job="backup"}': 1.0, 'push_time_seconds{job="backup"}': 1700000000.0}

    ``persist(members)`` is called with every group's names after each change, and
    ``members`` (from it, at start) restores them.
    """

    def __init__(self, registry: MetricsRegistry, persist: Callable[[str], None] | None = None,
                 members: str | None = None, clock: Callable[[], float] = time.time) -> None:
        self.registry = registry
        self._persist = persist
        self._clock = clock
        self._lock = threading.Lock()
        # grouping name (canonical, e.g. push_time_seconds' labels) -> {(kind, name, family)}
        self._groups: dict[str, set] = {}
        if members:
            for key, names in json.loads(members).items():
                self._groups[key] = {tuple(item) for item in names}

    def push(self, grouping: dict, samples: list, replace: bool) -> int:
        """Store a group's samples (``replace``: the whole group, else only the families
        sent); returns how many samples were stored. ``ValueError`` stores nothing."""
        key = labeled_name("push_time_seconds", grouping)
        fresh: set = set()
        counters: dict[str, Any] = {}
        gauges: dict[str, Any] = {}
        for kind, name, labels, value in samples:
            full = labeled_name(name, dict(labels, **grouping))
            (counters if kind == "counters" else gauges)[full] = metric_number(value)
            fresh.add((kind, full, name))
        gauges[key] = round(self._clock(), 3)
        with self._lock:
            if key not in self._groups and len(self._groups) >= MAX_GROUPS:
                raise PushError("too many push groups (at most %d); delete one first" % MAX_GROUPS)
            old = self._groups.get(key, set())
            sent = {family for _, _, family in fresh}
            stale = [(kind, full) for kind, full, family in old if replace or family in sent]
            kept = {item for item in old if not (replace or item[2] in sent)}
            groups = dict(self._groups, **{key: kept | fresh})
            self._save(groups)  # kept first: a disk that refuses changes nothing
            try:
                self.registry.push(counters, gauges, remove=stale)
            except BaseException:
                self._save(self._groups)  # back to what is true (best effort: it just worked)
                raise
            self._groups = groups
        return len(samples)

    def delete(self, grouping: dict) -> bool:
        """Remove a group and its metrics; False when there is no such group."""
        key = labeled_name("push_time_seconds", grouping)
        with self._lock:
            old = self._groups.get(key)
            if old is None:
                return False
            groups = {k: v for k, v in self._groups.items() if k != key}
            self._save(groups)
            try:
                self.registry.push({}, {}, remove=[(kind, full) for kind, full, _ in old] + [("gauges", key)])
            except BaseException:
                self._save(self._groups)
                raise
            self._groups = groups
        return True

    def groups(self) -> dict[str, int]:
        with self._lock:
            return {key: len(names) for key, names in self._groups.items()}

    def _save(self, groups: dict) -> None:
        if self._persist is not None:
            self._persist(json.dumps({key: sorted(names) for key, names in groups.items()}))
