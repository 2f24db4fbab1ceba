"""One alert, whether a rule or a heartbeat raised it, and the one way its changes go out.

One concept: what "an alert" is once something fired, and what happens when it fires or
resolves: the dashboard posts its own event, then the notifier hears of it.

Invariants:
- an ``Alert`` is immutable: an engine replaces it when its value or message moves, so the
  alert a change carries is the alert as it was at that moment, read outside the engine's lock;
- ``to_dict()`` is the one shape the snapshot, ``GET /api/alerts``, MCP's ``list_alerts`` and
  the kept state show; ``for_notification()`` is the one shape the notifier sends from;
- a change is posted as an ``alert.firing`` or ``alert.resolved`` event (source ``alerts`` for
  a rule, ``heartbeats`` for a heartbeat) and then given to the notifier with the targets the
  rule or heartbeat names, one change after the other, in the order they happened.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

__all__ = ["Alert", "AlertChange", "AlertOutlet", "SOURCES"]

SOURCES = {"rule": "alerts", "heartbeat": "heartbeats", "job": "jobs"}  # an alert's kind -> the source of its events


@dataclass(frozen=True)
class Alert:
    """Something firing now.

    >>> alert = Alert("cpu_hot", "rule", "warning", "system.cpu_percent", ">", 90.0, 97.5, ts)
    >>> alert.to_dict()                  # {"rule": "cpu_hot", "level": "warning", ...}
    """

    name: str                       # the rule's name, or "heartbeat:<job>"
    kind: str                       # "rule" or "heartbeat" (SOURCES)
    level: str                      # warning or error
    metric: str | None
    op: str | None
    threshold: float | None
    value: float | None
    since: float                    # when it fired (a wall-clock ts, shown to people)
    message: str = ""
    targets: tuple | None = None    # the notify targets it goes to; None: all of them

    def to_dict(self) -> dict:
        """The alert as the snapshot, the API and the kept state show it."""
        return {"rule": self.name, "level": self.level, "metric": self.metric, "op": self.op,
                "threshold": self.threshold, "value": self.value, "since": self.since, "message": self.message}

    @classmethod
    def from_dict(cls, kept: dict, kind: str, targets: tuple | None = None) -> Alert:
        """An alert from the kept state (``to_dict()`` before a restart)."""
        return cls(name=kept.get("rule"), kind=kind, level=kept.get("level"), metric=kept.get("metric"),
                   op=kept.get("op"), threshold=kept.get("threshold"), value=kept.get("value"),
                   since=kept.get("since"), message=kept.get("message", ""), targets=targets)

    def for_notification(self, ended_at: float | None = None) -> dict:
        """The alert as notifications describe it (``Notifier.alert_changed``)."""
        return {"name": self.name, "metric": self.metric, "value": self.value, "threshold": self.threshold,
                "level": self.level, "message": self.message or self.name, "started_at": self.since,
                "ended_at": ended_at}


@dataclass(frozen=True)
class AlertChange:
    """An alert fired or resolved: the event to post, and the alert to notify of."""

    state: str                      # "firing" or "resolved"
    alert: Alert
    text: str                       # the event's message
    data: dict                      # the event's data
    ended_at: float | None = None   # when it resolved

    @classmethod
    def fired(cls, alert: Alert, text: str, data: dict) -> AlertChange:
        return cls("firing", alert, text, data)

    @classmethod
    def resolved(cls, alert: Alert, text: str, data: dict, ended_at: float) -> AlertChange:
        return cls("resolved", alert, text, data, ended_at)

    @property
    def type(self) -> str:
        return "alert." + self.state

    @property
    def level(self) -> str:
        """The event's level: the alert's when it fires; a resolve is good news."""
        return self.alert.level if self.state == "firing" else "info"


class AlertOutlet:
    """Where the changes of rules and heartbeats alike go: posted, then notified.

    >>> outlet = AlertOutlet(post=notice, notify=notifier.alert_changed)
    >>> engine = AlertEngine(rules, outlet)     # and Heartbeats(outlet, ...)
    >>> outlet.send(changes)                    # by an engine, outside its lock

    ``post(level, message, source=..., data=..., type=...)`` must be allowed the ``alert.*``
    types (``build_app`` gives one that posts ``by_dashboard``); ``notify(type, alert, targets)``
    only queues (``Notifier.alert_changed``). Both are called on the engine's thread (the
    sampler's).
    """

    def __init__(self, post: Callable[..., Any],
                 notify: Callable[[str, dict, tuple | None], None] | None = None) -> None:
        self._post = post
        self._notify = notify

    def send(self, changes: Iterable[AlertChange]) -> None:
        for change in changes:
            alert = change.alert
            self._post(change.level, change.text, source=SOURCES[alert.kind], data=change.data, type=change.type)
            if self._notify is not None:
                self._notify(change.type, alert.for_notification(change.ended_at), alert.targets)
