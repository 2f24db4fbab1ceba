"""Threshold alerts: rules from a JSON file, checked against every sample.

One concept: turning numbers into "something is wrong" and "it is fine again".

Invariants:
- a rule file loads whole or not at all; an error names the rule and the field;
- a rule fires once when its condition has held for ``for`` seconds, and
  resolves once when the value is back past ``clear`` (hysteresis; ``clear``
  defaults to the threshold): one event each way, never one per tick;
- a sample without the metric (``None``, a gauge not posted yet) neither fires
  nor resolves a rule: missing data is not good news;
- what is firing survives a restart (``persist(state)`` after each change, ``state``
  at start): a rule still firing is not announced again, and its resolve, whenever it
  comes, carries the original start; a firing rule removed from the config is resolved
  at the first sample ("no longer configured"), so no alert is left open forever.

A rule, in the file's ``"rules"`` list::

    {"name": "cpu_hot", "metric": "system.cpu_percent", "op": ">", "threshold": 90,
     "for": 30, "clear": 80, "level": "warning", "message": "CPU above 90 % for 30 s"}

``metric`` is a history series name (``system.<field>``, ``gauges.<name>``,
``counters.<name>``) or ``rate(counters.<name>)`` for a counter's rate per second.
"""

from __future__ import annotations

import json
import logging
import math
import operator
import re
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from sse_dashboard.alerting.alert import Alert, AlertChange, AlertOutlet
from sse_dashboard.collectors.rates import Rates
from sse_dashboard.collectors.system import LIST_FIELDS, SYSTEM_FIELDS
from sse_dashboard.sampler import flatten_snapshot

__all__ = ["AlertRule", "AlertEngine", "load_rules", "load_document", "parse_rules"]

log = logging.getLogger(__name__)

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
}
ALERT_LEVELS = ("warning", "error")
CONFIG_KEYS = ("rules", "heartbeats", "jobs", "notify", "remote_write", "external_labels", "instance", "status_pages")  # the top level
_RATE_RE = re.compile(r"rate\((counters\.[a-zA-Z_:][a-zA-Z0-9_:]*)\)")
_METRIC_RE = re.compile(r"(system|gauges|counters|server)\.[a-zA-Z_:][a-zA-Z0-9_:]*")
_NAME_RE = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
_FIELDS = {"name", "metric", "op", "threshold", "for", "clear", "level", "message", "notify"}
# The numeric series a sample has: a mistyped one (system.cpu_percnt) could never fire.
SYSTEM_SERIES = tuple("system." + f for f in SYSTEM_FIELDS if f not in LIST_FIELDS + ("disk_path",))
SERVER_SERIES = ("server.clients", "server.rss_bytes")
_CORE_RE = re.compile(r"system\.cpu_core_[0-9]{1,4}_percent")


@dataclass(frozen=True)
class AlertRule:
    name: str
    metric: str
    op: str
    threshold: float
    for_s: float = 0.0
    clear: float | None = None
    level: str = "warning"
    message: str = ""
    notify: tuple | None = None   # names of notify targets; None: all of them

    def breached(self, value: float) -> bool:
        return OPERATORS[self.op](value, self.threshold)

    def cleared(self, value: float) -> bool:
        """Back on the good side: of the threshold, or of ``clear`` when one is set (hysteresis)."""
        if self.clear is None:
            return not self.breached(value)
        return value <= self.clear if self.op in (">", ">=") else value >= self.clear

    def to_dict(self) -> dict:
        return {"name": self.name, "metric": self.metric, "op": self.op, "threshold": self.threshold,
                "for": self.for_s, "clear": self.clear, "level": self.level, "message": self.message,
                "notify": None if self.notify is None else list(self.notify)}


def load_rules(path: str | Path) -> list[AlertRule]:
    """Read and check a rule file; raise ``ValueError`` with the rule and field at fault."""
    return parse_rules(load_document(path))


def load_document(path: str | Path) -> Any:
    """The config file's JSON (rules, heartbeats), or ``ValueError`` saying why not."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError("cannot read alert rules from %s: %s" % (path, exc.strerror or exc)) from None
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ValueError("%s is not valid JSON: %s" % (path, exc)) from None
    return document


def parse_rules(document: Any) -> list[AlertRule]:
    if not isinstance(document, dict) or not isinstance(document.get("rules", []), list):
        raise ValueError('the config file must be an object with a "rules" list (and "heartbeats", if any)')
    unknown = sorted(set(document) - set(CONFIG_KEYS))
    if unknown:
        raise ValueError('the config file has %s; it takes a "rules" list, "heartbeats", "jobs", "notify", '
                         '"remote_write", "external_labels", "instance" and "status_pages"' % json.dumps(unknown[0][:40]))
    rules = [_parse_rule(i, raw) for i, raw in enumerate(document.get("rules", []), start=1)]
    names = [r.name for r in rules]
    for name in names:
        if names.count(name) > 1:
            raise ValueError("rule %r: the name is used twice" % name)
    return rules


def _parse_rule(index: int, raw: Any) -> AlertRule:
    where = "rule %d" % index
    if not isinstance(raw, dict):
        raise ValueError("%s: must be an object" % where)
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ValueError("%s: field 'name' must be 1-100 letters, digits or _ . : -" % where)
    where = "rule %d (%s)" % (index, name)

    def fail(field: str, why: str) -> ValueError:
        return ValueError("%s: field '%s' %s" % (where, field, why))

    unknown = set(raw) - _FIELDS
    if unknown:
        raise fail(sorted(unknown)[0], "is not a rule field (use: %s)" % ", ".join(sorted(_FIELDS)))
    metric = raw.get("metric")
    if not isinstance(metric, str) or not (_METRIC_RE.fullmatch(metric) or _RATE_RE.fullmatch(metric)):
        raise fail("metric", "must be like system.cpu_percent, gauges.NAME, counters.NAME or rate(counters.NAME)")
    if metric.startswith(("system.", "server.")) and not (
            metric in SYSTEM_SERIES or metric in SERVER_SERIES or _CORE_RE.fullmatch(metric)):
        raise fail("metric", "%s is not a series the dashboard has; the system and server ones are: %s, "
                   "system.cpu_core_N_percent" % (metric, ", ".join(SYSTEM_SERIES + SERVER_SERIES)))
    op = raw.get("op")
    if op not in OPERATORS:
        raise fail("op", "must be one of %s" % " ".join(OPERATORS))
    values = {}
    for field, default in (("threshold", None), ("for", 0.0), ("clear", None)):
        value = raw.get(field, default)
        if value is None and field != "threshold":
            values[field] = None
            continue
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise fail(field, "must be a number")
        values[field] = float(value)
    if values["for"] < 0:
        raise fail("for", "must not be negative (seconds)")
    clear = values["clear"]
    if clear is not None and ((op in (">", ">=") and clear > values["threshold"])
                              or (op in ("<", "<=") and clear < values["threshold"])):
        raise fail("clear", "must be on the good side of the threshold")
    level = raw.get("level", "warning")
    if level not in ALERT_LEVELS:
        raise fail("level", "must be warning or error")
    message = raw.get("message", "")
    if not isinstance(message, str) or len(message) > 500:
        raise fail("message", "must be a string of at most 500 characters")
    notify = raw.get("notify")
    if notify is not None and (not isinstance(notify, list) or not all(isinstance(n, str) for n in notify)):
        raise fail("notify", "must be a list of notify target names")
    return AlertRule(name=name, metric=metric, op=op, threshold=values["threshold"], for_s=values["for"],
                     clear=clear, level=level, message=message, notify=None if notify is None else tuple(notify))


class AlertEngine:
    """Checks rules against each snapshot; what fires or resolves goes to the outlet.

    >>> engine = AlertEngine(load_rules("examples/alerts.example.json"), AlertOutlet(post, notify))
    >>> extra = engine.evaluate(snapshot)      # {"alerts": [...active...]}

    The outlet is called from the sampler thread, outside this engine's lock.
    """

    def __init__(self, rules: list[AlertRule], outlet: AlertOutlet,
                 clock: Callable[[], float] = time.monotonic,
                 persist: Callable[[str], None] | None = None, state: str | None = None) -> None:
        self.rules = list(rules)
        self._outlet = outlet
        self._persist = persist
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: dict[str, float] = {}    # rule -> monotonic time first breached
        self._firing: dict[str, Alert] = {}     # rule -> the active alert
        self._rates = Rates()  # rate(counters.x): per second between two snapshots' ts
        self._seen: set[str] = set()  # rules whose metric has had a value at least once
        kept = json.loads(state).get("firing", {}) if state else {}
        configured = {rule.name: rule for rule in self.rules}
        for name, alert in kept.items():
            if name in configured:
                rule = configured[name]
                self._firing[name] = replace(Alert.from_dict(alert, "rule"), level=rule.level, targets=rule.notify)
        # Firing when the dashboard stopped, and gone from the config since: resolved at the first sample.
        self._orphans = {name: Alert.from_dict(alert, "rule") for name, alert in kept.items()
                         if name not in configured}

    def evaluate(self, snapshot: dict) -> dict:
        """Update every rule from one snapshot; return ``{"alerts": [active ...]}``."""
        values = self._values(snapshot)
        now = self._clock()
        ts = snapshot.get("ts", time.time())
        with self._lock:
            changes = self._resolve_orphans(ts)
            for rule in self.rules:
                value = values.get(rule.metric)
                if value is None:
                    continue
                self._seen.add(rule.name)
                changes.extend(self._step(rule, value, now, ts))
            active = [alert.to_dict() for alert in self._firing.values()]
            waiting = [{"rule": r.name, "metric": r.metric} for r in self.rules if r.name not in self._seen]
        self._outlet.send(changes)
        if changes:
            # After the event and the notifier's own record of what it sent: a crash in between
            # fires once more after the restart (a second event; flood control sends no second
            # notification), where saving first could lose the alert's announcement for good.
            with self._lock:
                self._save()
        return {"alerts": active, "alerts_waiting": waiting} if waiting else {"alerts": active}

    def rule_states(self) -> list[dict]:
        """Every rule, with ``seen``: whether its metric has had a value yet (a rule on a
        gauge nobody posts, or a misspelt one, can never fire and says so)."""
        with self._lock:
            seen = set(self._seen)
        return [dict(rule.to_dict(), seen=rule.name in seen) for rule in self.rules]

    def active(self) -> list[dict]:
        with self._lock:
            return [alert.to_dict() for alert in self._firing.values()]

    def _resolve_orphans(self, ts: float) -> list[AlertChange]:
        """Resolve what fired under a rule that is no longer configured (once, after a restart)."""
        changes = []
        for name, alert in self._orphans.items():
            text = "resolved: %s (the rule is no longer configured)" % (alert.message or name)
            changes.append(AlertChange.resolved(alert, text, {"rule": name, "value": alert.value, "state": "resolved"},
                                                ended_at=ts))
        self._orphans = {}
        return changes

    def _save(self) -> None:
        if self._persist is None:
            return
        try:
            self._persist(json.dumps({"firing": {name: alert.to_dict() for name, alert in self._firing.items()}}))
        except Exception as exc:  # storage failing: the alert still goes out, the page still shows it
            log.warning("alert state not kept: %s", exc)

    def _step(self, rule: AlertRule, value: float, now: float, ts: float) -> list[AlertChange]:
        firing = self._firing.get(rule.name)
        if firing is not None:
            firing = self._firing[rule.name] = replace(firing, value=value)
            if rule.cleared(value):
                del self._firing[rule.name]
                self._pending.pop(rule.name, None)
                text = "resolved: %s (%s = %s)" % (rule.message or rule.name, rule.metric, _fmt(value))
                # Told as the rule is now: it may have been edited while the dashboard was down.
                told = replace(firing, metric=rule.metric, threshold=rule.threshold, message=rule.message)
                return [AlertChange.resolved(told, text, {"rule": rule.name, "value": value, "state": "resolved"},
                                             ended_at=ts)]
            return []
        if not rule.breached(value):
            self._pending.pop(rule.name, None)
            return []
        since = self._pending.setdefault(rule.name, now)
        if now - since < rule.for_s:
            return []
        alert = self._firing[rule.name] = Alert(rule.name, "rule", rule.level, rule.metric, rule.op, rule.threshold,
                                                value, since=ts, message=rule.message, targets=rule.notify)
        text = "%s (%s = %s, %s %s)" % (rule.message or rule.name, rule.metric, _fmt(value), rule.op, _fmt(rule.threshold))
        return [AlertChange.fired(alert, text, {"rule": rule.name, "value": value, "threshold": rule.threshold,
                                                "state": "firing"})]

    def _values(self, snapshot: dict) -> dict:
        flat = flatten_snapshot(snapshot)
        ts = snapshot.get("ts")
        if not isinstance(ts, (int, float)):
            return flat
        counters = {m.group(1) for m in map(_RATE_RE.fullmatch, (r.metric for r in self.rules)) if m}
        for counter, rate in self._rates.update({c: flat.get(c) for c in counters}, now=ts).items():
            if rate is not None:
                flat["rate(%s)" % counter] = rate
        return flat


def _fmt(value: float) -> str:
    return ("%.2f" % value).rstrip("0").rstrip(".")
