"""``Retry-After`` read the one way every client of ours reads it (the notifier, the remote writer).

One concept: how long a server asked us to wait (RFC 9110 10.2.3): a number of seconds, or an
HTTP date; an RFC 5322 date in ``-0000`` is UTC, not this machine's zone.

May import: the standard library only.
"""

from __future__ import annotations

import email.utils
from datetime import timezone

__all__ = ["retry_after_seconds"]


def retry_after_seconds(value: str | None, now: float, cap: float) -> float | None:
    """Seconds to wait, from 0 to ``cap``; None when the header is absent or not one of the two forms."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), cap)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, min(when.timestamp() - now, cap))
