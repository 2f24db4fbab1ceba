"""Prometheus push, as the Pushgateway takes it: groups of metrics a batch job sends.

One concept: ``PUT``/``POST``/``DELETE /metrics/job/<job>{/<label>/<value>}`` with a
Prometheus text-format body (0.0.4, or OpenMetrics text), exactly what
``prometheus_client.push_to_gateway``, ``pushadd_to_gateway`` and
``delete_from_gateway`` send.

Invariants:
- a body is parsed whole before anything is stored: a malformed one stores nothing;
- a body is read as Prometheus reads it (expfmt, the Pushgateway's parser): what it refuses,
  and what the Pushgateway refuses after it (the same series twice), is a 400 naming the line;
  a pushed value is kept as the same text posted in JSON would be (``1`` an int, ``1.0`` a float);
- a group is named by its grouping labels; its samples carry them (a sample's own
  label of the same name is overwritten, as in the Pushgateway), and live in the
  registry as ordinary counters (``# TYPE counter``) and gauges (everything else:
  gauge, untyped, and the ``_bucket``/``_sum``/``_count`` samples of histograms and
  summaries), so the page, history, alerts and ``/metrics`` see them;
- ``PUT`` replaces the whole group, ``POST`` only the metric families it sends,
  ``DELETE`` removes the group; each also sets or removes ``push_time_seconds``
  for the group, as the Pushgateway does;
- which names belong to which group is committed with the metrics in one
  transaction before the push is answered, so a restart (even after kill -9)
  can still replace or delete a group pushed before it.
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

from sse_dashboard.registry import LABEL_NAME_RE, METRIC_NAME_RE, MetricsRegistry, labeled_name, metric_number, unescape_label_value

__all__ = ["PushGroups", "parse_grouping", "parse_exposition", "PushError", "MAX_PUSH_BYTES", "gunzip_bounded"]

MAX_PUSH_BYTES = 1024 * 1024
MAX_GROUPS = 1000
# The text format's only separators are blanks and tabs (expfmt's isBlankOrTab): a no-break
# space or a form feed is part of a token, as in Prometheus.
_BLANKS = " \t"
_BLANKS_TUPLE = (" ", "\t")
_BLANKS_RE = re.compile(r"[ \t]+")
_LABEL_PAIR_RE = re.compile(r'[ \t]*([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"((?:[^"\\\n]|\\.)*)"[ \t]*(,?)')
# Sample values: what Go's strconv.ParseFloat reads, less what Prometheus' parsers refuse
# before it ("p", "P", "_": hexadecimal floats need a p exponent, so none is left). ASCII
# digits only: Python's float() also takes "1_000" and "\uff11" (a fullwidth 1).
_INTEGER_RE = re.compile(r"[+-]?[0-9]+")
_DECIMAL_RE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_SPECIAL_RE = re.compile(r"[+-]?inf(?:inity)?|nan", re.IGNORECASE)
# TYPE words: the 0.0.4 text format's (expfmt, any case) and OpenMetrics'.
_TYPES = frozenset(["counter", "gauge", "histogram", "summary", "untyped", "gauge_histogram",
                    "gaugehistogram", "stateset", "info", "unknown"])
_CR_MESSAGE = ("line %d: ends in \\r (a Windows line ending): the text format ends lines with \\n alone, "
               "and Prometheus refuses \\r\\n too")


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


def parse_exposition(text: str, grouping: dict | None = None) -> list[tuple[str, str, dict, int | float]]:
    """``(kind, name, labels, value)`` for every sample of a text-format body, where
    ``kind`` is "counters" or "gauges"; ``PushError`` naming the line when Prometheus would
    refuse it too. ``grouping`` (the push's path labels, which replace a sample's own) is
    needed to see two samples that become the same series once it is applied."""
    reader = _ExpositionReader(grouping or {})
    # Lines end at "\n" alone, as Prometheus reads them: str.splitlines() also breaks at
    # U+2028, U+0085, \x0c, \x1d..., which prometheus_client writes raw inside label values.
    for number, line in enumerate(text.split("\n"), start=1):
        reader.read_line(line, number)
    return reader.samples


class _ExpositionReader:
    """One body's state while it is read: the declared types and HELPs, and the series seen."""

    def __init__(self, grouping: dict) -> None:
        self.grouping = grouping
        self.types: dict[str, str] = {}
        self.helped: set = set()
        self.sampled: set = set()  # names that had samples (a TYPE must come before them)
        self.series: dict[tuple, int] = {}  # (name, labels as stored) -> the line that gave it
        self.samples: list = []

    def read_line(self, line: str, number: int) -> None:
        line = line.strip(_BLANKS)
        if not line:
            return
        if line == "\r":  # the empty line of a Windows body
            raise PushError(_CR_MESSAGE % number)
        if line.startswith("#"):
            self._comment(line, number)
            return
        name, labels, value = _sample(line, number)
        kind = _kind(name, self.types)
        if kind == "counters" and value < 0:
            # A counter's total starts at 0 and only grows (OpenMetrics); the JSON API refuses
            # a negative delta for the same reason.
            raise PushError("line %d: %s is a counter, whose total cannot be negative (%s)" % (number, name, value))
        self._take_series(name, labels, number)
        self.sampled.add(name)
        self.samples.append((kind, name, labels, value))

    def _comment(self, line: str, number: int) -> None:
        words = _BLANKS_RE.split(line, 3)
        if words[0] != "#" or len(words) < 3 or words[1] not in ("TYPE", "HELP"):
            return  # a plain comment, UNIT, EOF, or a TYPE/HELP with nothing after the name
        name = words[2]
        if line.endswith("\r") and (words[1] == "TYPE" or len(words) == 3):  # (a HELP text may end in \r)
            raise PushError(_CR_MESSAGE % number)
        if not METRIC_NAME_RE.fullmatch(name):
            raise PushError("line %d: %s is not a metric name" % (number, json.dumps(name[:60])))
        if len(words) < 4:
            return
        if words[1] == "HELP":
            if name in self.helped:
                raise PushError("line %d: a second HELP line for %s" % (number, name))
            self.helped.add(name)
            return
        kind = words[3]
        if kind.lower() not in _TYPES:  # expfmt reads the type in any case
            raise PushError("line %d: %s is not a metric type (%s)"
                            % (number, json.dumps(kind[:40]), ", ".join(sorted(_TYPES))))
        if name in self.types:
            raise PushError("line %d: a second TYPE line for %s" % (number, name))
        if name in self.sampled:
            raise PushError("line %d: the TYPE of %s comes after its samples" % (number, name))
        self.types[name] = kind.lower()

    def _take_series(self, name: str, labels: dict, number: int) -> None:
        # As the group stores it: the grouping labels replace the sample's own, and an
        # empty label is no label. The Pushgateway refuses such a push too (pushgateway#214).
        stored = dict(labels, **self.grouping)
        key = (name, tuple(sorted((k, v) for k, v in stored.items() if v != "")))
        first = self.series.setdefault(key, number)
        if first != number:
            raise PushError("line %d: the same sample as line %d (one name and label set, given twice)"
                            % (number, first))


def _sample(line: str, number: int) -> tuple[str, dict, int | float]:
    match = METRIC_NAME_RE.match(line)
    if match is None:
        raise PushError("line %d: a sample must start with a metric name" % number)
    name, at = match.group(0), match.end()
    labels: dict[str, str] = {}
    brace = len(line) - len(line[at:].lstrip(_BLANKS))  # blanks may come before the "{" too
    if line.startswith("{", brace):
        labels, at = _labels(line, brace + 1, number)
    fields = _BLANKS_RE.split(line[at:].strip(_BLANKS))
    if "#" in fields:  # an OpenMetrics exemplar follows " # "
        fields = fields[:fields.index("#")]
    if len(fields) == 2:
        raise PushError("line %d: pushed samples must not have timestamps (the time of the push is theirs)"
                        % number)
    if len(fields) != 1 or not fields[0]:
        raise PushError("line %d: a sample is NAME{LABELS} VALUE" % number)
    return name, labels, _value(fields[0], name, number)


def _labels(line: str, at: int, number: int) -> tuple[dict, int]:
    """The labels after a ``{`` at ``at``, and where the text after the ``}`` begins."""
    labels: dict[str, str] = {}
    while True:
        while line.startswith(_BLANKS_TUPLE, at):
            at += 1
        if line.startswith("}", at):
            return labels, at + 1
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


def _value(text: str, name: str, number: int) -> int | float:
    """A sample value as Prometheus reads it (Go's ``strconv.ParseFloat`` without ``p``,
    ``P`` or ``_``), kept as JSON keeps the same text: an integer literal is an int."""
    if _INTEGER_RE.fullmatch(text):
        digits = text.lstrip("+-").lstrip("0") or "0"
        if len(digits) <= 19:  # cheap and exact (int() of a long text is slow, or refused on 3.11+)
            return -int(digits) if text.startswith("-") else int(digits)
        value: int | float = float(text)  # the nearest float, as metric_number(int(text)) gives
    elif _DECIMAL_RE.fullmatch(text):
        value = float(text)
    elif _SPECIAL_RE.fullmatch(text):
        value = math.nan
    elif text.endswith("\r"):
        raise PushError(_CR_MESSAGE % number)
    else:
        raise PushError("line %d: %s is not a number (Prometheus reads decimal floats: 1, -2.5, .5, 1e3)"
                        % (number, json.dumps(text[:40])))
    if not math.isfinite(value):
        # JSON, the page and the history have no NaN or infinity: refuse rather than drop it.
        raise PushError("line %d: %s is %s; only finite values can be kept"
                        % (number, name, text if len(text) <= 12 else text[:12] + "..."))
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
    {'done{job="backup"}': 1, 'push_time_seconds{job="backup"}': 1700000000.0}

    Which names belong to which group goes to the registry's journal with the
    metrics themselves, in one commit (meta ``push_groups``), and ``members`` (kept
    from an earlier run) restores it: a push is on disk whole before it is answered.
    """

    META_KEY = "push_groups"

    def __init__(self, registry: MetricsRegistry, members: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.registry = registry
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
            self.registry.push(counters, gauges, remove=stale, meta=self._meta(groups))
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
            self.registry.push({}, {}, remove=[(kind, full) for kind, full, _ in old] + [("gauges", key)],
                               meta=self._meta(groups))
            self._groups = groups
        return True

    def groups(self) -> dict[str, int]:
        with self._lock:
            return {key: len(names) for key, names in self._groups.items()}

    def _meta(self, groups: dict) -> dict:
        return {self.META_KEY: json.dumps({key: sorted(names) for key, names in groups.items()})}
