"""The event log, from a checkout: a face over ``sse_dashboard``.

    >>> from events import EventLog
    >>> log = EventLog()
    >>> log.post("warning", "disk almost full", source="backup")

Not installed; installed, import from ``sse_dashboard.events``.
"""

from sse_dashboard.events import LEVELS, Event, EventFilter, EventLog

__all__ = ["LEVELS", "Event", "EventFilter", "EventLog"]
