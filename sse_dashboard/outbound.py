"""What every HTTP client of ours (the notifier, the remote writer, the fleet's engine) does one way.

One concept: talking to another server. ``parse_http_url`` checks a URL we are told to send to
without echoing it (it may hold a password); ``redacted_url`` is what logs and answers may show
of it (scheme, host, port, path: never the user, password or query); ``retry_after_seconds`` is
how long a server asked us to wait (RFC 9110 10.2.3): a number of seconds, or an HTTP date; an
RFC 5322 date in ``-0000`` is UTC, not this machine's zone.

May import: the standard library only.
"""

from __future__ import annotations

import email.utils
import urllib.parse
from datetime import timezone

__all__ = ["retry_after_seconds", "parse_http_url", "redacted_url"]


def parse_http_url(url: str, what: str, example: str) -> urllib.parse.SplitResult:
    """The parts of ``url``, an http(s) URL with a host and a valid port; ``ValueError`` names
    ``what`` it is and shows ``example``, never the URL itself."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("the %s starts with http:// or https:// and names a host (e.g. %s)" % (what, example))
    try:
        parts.port
    except ValueError:
        raise ValueError("the %s's port must be a number from 1 to 65535" % what) from None
    return parts


def redacted_url(url: str) -> str:
    """``scheme://host[:port]/path`` of ``url``: what logs, pages and API answers may show."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    host = "[%s]" % host if ":" in host else host
    port = ":%d" % parts.port if parts.port else ""
    return "%s://%s%s%s" % (parts.scheme, host, port, parts.path)


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
