"""Flood control for notifications: per alert and target, what was sent and when.

One concept: whether an alert's firing or resolve goes to a target now.

Invariants:
- a firing goes to a target at most once per that target's ``repeat`` seconds; one that comes
  sooner (a flapping rule) waits, and ``due()`` hands it over once the interval is over, if the
  alert still fires by then;
- a resolve goes exactly once for every firing that went, and never for one that did not;
- what went to whom is kept (``persist(state)`` after each change, ``state`` at start) for the
  targets still configured: a resolve after a restart reaches whoever got the firing, and
  ``repeat`` still counts from the firing sent before it.

Intentional choice: not thread-safe, and it calls ``persist`` itself. Its one owner, the
``Notifier``, calls it under one lock together with queueing what it lets through, so what is
queued, and what is kept on disk, is in the order it was decided: a resolve is never queued
ahead of the firing it resolves, and an older state never overwrites a newer one.
"""

from __future__ import annotations

import json
import logging
from typing import Callable

from sse_dashboard.alerting.targets import Target

__all__ = ["FloodControl"]

log = logging.getLogger(__name__)


class FloodControl:
    """What went to whom, and whether the next change goes too.

    >>> flood = FloodControl(targets, persist=save, state=kept)
    >>> if flood.admit("alert.firing", alert, target, now): queue(target, alert)
    >>> for target, alert in flood.due(now): queue(target, alert)    # firings that waited
    """

    def __init__(self, targets: list[Target], persist: Callable[[str], None] | None = None,
                 state: str | None = None) -> None:
        self._targets = {t.name: t for t in targets}
        self._persist = persist
        # (alert name, target) -> {"sent_at": time of the last firing sent, "open": a firing was sent
        # and not resolved yet, "waiting": a firing not sent yet (within repeat)}
        self._sent: dict[tuple, dict] = {}
        for entry in json.loads(state) if state else []:
            if entry["target"] in self._targets:
                self._sent[(entry["rule"], entry["target"])] = {
                    "sent_at": entry["sent_at"], "open": entry["open"], "waiting": entry["waiting"]}

    def admit(self, kind: str, alert: dict, target: Target, now: float) -> bool:
        """Whether ``alert``'s change (``alert.firing`` or ``alert.resolved``) goes to ``target``
        now; if it does, it counts as sent."""
        sent = self._sent.setdefault((alert["name"], target.name), {"sent_at": None, "open": False, "waiting": None})
        if kind == "alert.firing":
            if sent["open"]:
                return False
            if sent["sent_at"] is not None and now - sent["sent_at"] < target.repeat_s:
                sent["waiting"] = alert  # flapping: sent when the repeat interval is over, if still firing
                self._save()
                return False
            sent.update(sent_at=now, open=True, waiting=None)
        else:
            if sent["waiting"] is not None:
                sent["waiting"] = None  # its firing was never sent: nor is its resolve
                self._save()
                return False
            if not sent["open"]:
                return False
            sent["open"] = False
        self._save()
        return True

    def due(self, now: float) -> list[tuple[Target, dict]]:
        """The firings that waited out their target's ``repeat`` and still fire; they count as
        sent now."""
        due = []
        for (_, name), sent in self._sent.items():
            target = self._targets.get(name)
            alert = sent["waiting"]
            if alert is None or target is None or now - sent["sent_at"] < target.repeat_s:
                continue
            sent.update(sent_at=now, open=True, waiting=None)
            due.append((target, alert))
        if due:
            self._save()
        return due

    def _save(self) -> None:
        if self._persist is None:
            return
        try:
            self._persist(json.dumps([dict(sent, rule=rule, target=name) for (rule, name), sent in self._sent.items()]))
        except Exception as exc:  # storage failing: the notification still goes out
            log.warning("notification state not kept: %s", exc)
