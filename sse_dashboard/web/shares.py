"""Read-only share links (#26): ``/s/<id>`` opens the page showing chosen sections, for anyone with the link.

One concept: the share store. ``ShareStore`` keeps the links of one data folder in ``shares.json``
beside ``tokens.json``, kept the same way (``keptlist.KeptList``: written whole under a lock other
processes see, re-read when the command line changed it). ``handler`` asks it what a request's ``?share=<id>`` is; the admin API
and ``sse-dashboard share ...`` add and revoke; ``shareview`` says what a link's viewer may see.

Invariants:
- a link's id is 32 random bytes, shown once when it is made and kept only as its SHA-256
  (as tokens are); a listing names a link by ``handle``, the first 12 hex digits of that hash,
  which is no use for opening it;
- a link names its sections (``SECTIONS``): a viewer reads those and nothing else, and writes
  nothing, whatever the rest of the API allows;
- an expired link is kept (so it answers 410, not 404) until revoked; ``generation`` grows when a
  link is revoked, leaves the file or is seen to expire, which is what the stream hub watches (through
  ``Revocations``) to close that link's streams at once;
- at most ``MAX_SHARES`` links: each one is a way in, so a handful, not a database.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from sse_dashboard.web.keptlist import CHECK_EVERY_S, LOCK_WAIT_S, KeptList
from sse_dashboard.web.tokens import token_digest

__all__ = ["SECTIONS", "MAX_SHARES", "SHARE_FILE", "MAX_EXPIRY_S", "Share", "ShareStore", "Revocations",
           "check_sections", "parse_duration", "share_file"]

log = logging.getLogger(__name__)

# What a link may show. system: the machine's charts; metrics: the application's counters and
# gauges; the others are the page's panels of the same name.
SECTIONS = ("system", "metrics", "jobs", "heartbeats", "alerts", "events", "processes")
MAX_SHARES = 100
SHARE_FILE = "shares.json"
MAX_EXPIRY_S = 366 * 86400
LINK_PREFIX = "sds_"
_DURATION_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def check_sections(sections: object) -> tuple:
    """The sections, in ``SECTIONS`` order, or ``ValueError`` naming the bad one."""
    if isinstance(sections, str) or not isinstance(sections, (list, tuple)) or not sections:
        raise ValueError("sections must be a list of one or more of %s" % ", ".join(SECTIONS))
    for section in sections:
        if section not in SECTIONS:
            raise ValueError("unknown section %s: the sections are %s" % (json.dumps(section)[:50], ", ".join(SECTIONS)))
    if len(set(sections)) != len(sections):
        raise ValueError("each section at most once")
    return tuple(s for s in SECTIONS if s in sections)


def parse_duration(text: str) -> float:
    """``7d``, ``12h``, ``30m``, ``45s`` or plain seconds, as seconds; ``ValueError`` otherwise."""
    match = _DURATION_RE.match(str(text))
    if not match:
        raise ValueError("a duration is a number with s, m, h, d or w (e.g. 7d), not %r" % str(text)[:30])
    return float(match.group(1)) * _UNITS[match.group(2)]


def _check_expiry(expires_in_s: object) -> float | None:
    if expires_in_s is None:
        return None
    if isinstance(expires_in_s, bool) or not isinstance(expires_in_s, (int, float)) \
            or not 0 < expires_in_s <= MAX_EXPIRY_S:
        raise ValueError("expires_in_s must be a number of seconds above 0 and at most %d (a year)" % MAX_EXPIRY_S)
    return float(expires_in_s)


def share_file(data_dir: str | Path | None) -> Path | None:
    """Where a data folder keeps its links; None for ``:memory:`` (or no folder)."""
    if data_dir is None or str(data_dir) == ":memory:":
        return None
    return Path(data_dir) / SHARE_FILE


@dataclass(frozen=True)
class Share:
    """One link as kept: its hash, sections, options, when it was made and when it ends (unix seconds)."""

    digest: str
    sections: tuple
    created: float
    expires: float | None = None
    kiosk: bool = False
    hide_hosts: bool = False
    name: str = ""

    @property
    def handle(self) -> str:
        return self.digest[:12]

    def as_json(self) -> dict:
        return {"digest": self.digest, "sections": list(self.sections), "created": self.created,
                "expires": self.expires, "kiosk": self.kiosk, "hide_hosts": self.hide_hosts, "name": self.name}

    def public(self) -> dict:
        """What a listing shows: never the id, nor its hash beyond the handle."""
        return {"handle": self.handle, "name": self.name, "sections": list(self.sections), "created": self.created,
                "expires": self.expires, "kiosk": self.kiosk, "hide_hosts": self.hide_hosts}


def _parse(item: dict) -> Share:
    return Share(str(item["digest"]), check_sections(item["sections"]), float(item["created"]),
                 None if item.get("expires") is None else float(item["expires"]), bool(item.get("kiosk")),
                 bool(item.get("hide_hosts")), str(item.get("name", ""))[:64])


class ShareStore:
    """The share links of one data folder (``path``), or of this run only (``path=None``).

    >>> store = ShareStore(Path("data") / "shares.json")
    >>> link_id, share = store.add(("system", "jobs"), expires_in_s=7 * 86400)   # shown this once
    >>> store.lookup(link_id)
    (Share(...), 'ok')
    >>> store.revoke(share.handle)
    True

    ``clock`` is unix time (expiry is a date a person reads back)."""

    def __init__(self, path: Path | None, *, clock: Callable[[], float] = time.time,
                 check_every_s: float = CHECK_EVERY_S, lock_wait_s: float = LOCK_WAIT_S) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._expired: set[str] = set()   # digests seen expired (each bumps the generation once)
        self._expirations = 0
        self._kept = KeptList(path, "shares", _parse, what="share", check_every_s=check_every_s,
                              lock_wait_s=lock_wait_s, on_replace=self._forget_expired)

    # --- asked by requests and the stream hub -----------------------------------------------

    def lookup(self, link_id: str) -> tuple[Share | None, str]:
        """(the link, "ok"), (the link, "expired") or (None, "unknown"); compared in constant time."""
        self.refresh()
        digest = token_digest(link_id)
        found = None
        for share in self._kept.entries:
            if hmac.compare_digest(share.digest, digest):
                found = share
        if found is None:
            return None, "unknown"
        return found, "expired" if self._is_expired(found) else "ok"

    def is_valid(self, digest: str) -> bool:
        """Whether the link with this hash is kept and has not expired."""
        share = next((s for s in self._kept.entries if s.digest == digest), None)
        return share is not None and not self._is_expired(share)

    @property
    def generation(self) -> int:
        """Grows whenever a link stops being valid: revoked, gone from the file, or expired."""
        self.refresh()
        for share in self._kept.entries:
            self._is_expired(share)
        return self._kept.generation + self._expirations

    def listing(self) -> list[dict]:
        self.refresh()
        return [dict(s.public(), expired=self._is_expired(s)) for s in self._kept.entries]

    def _is_expired(self, share: Share) -> bool:
        if share.expires is None or self._clock() < share.expires:
            return False
        with self._lock:
            if share.digest not in self._expired:
                self._expired.add(share.digest)
                self._expirations += 1  # the hub closes its streams
        return True

    def refresh(self, force: bool = False) -> None:
        """Take the file's changes (the CLI's), looking at most once per ``check_every_s``."""
        self._kept.refresh(force)

    # --- changes: the admin API and the command line ------------------------------------------

    def add(self, sections: Iterable[str], *, expires_in_s: object = None, kiosk: object = False,
            hide_hosts: object = False, name: object = "") -> tuple[str, Share]:
        """Make a link: (its id, shown this once; what is kept). ``ValueError`` for bad options or
        too many links; ``KeptFileError`` if it cannot be kept."""
        sections = check_sections(sections if isinstance(sections, (list, tuple)) else None)
        expires_in_s = _check_expiry(expires_in_s)
        for field, value in (("kiosk", kiosk), ("hide_hosts", hide_hosts)):
            if not isinstance(value, bool):
                raise ValueError("%s must be true or false" % field)
        if not isinstance(name, str) or len(name) > 64 or any(ord(c) < 32 for c in name):
            raise ValueError("name must be text of at most 64 characters")
        link_id = LINK_PREFIX + secrets.token_urlsafe(32)
        now = self._clock()
        share = Share(token_digest(link_id), sections, round(now, 3),
                      None if expires_in_s is None else round(now + expires_in_s, 3), kiosk, hide_hosts, name)
        def add_to(shares: list) -> tuple[list, None]:
            if len(shares) >= MAX_SHARES:
                raise ValueError("at most %d share links; revoke one first" % MAX_SHARES)
            return shares + [share], None

        self._kept.change(add_to)
        log.info("share link %s made, showing %s", share.handle, ", ".join(sections))
        return link_id, share

    def revoke(self, handle: str) -> bool:
        """Forget the link whose handle is ``handle`` at once; False if there is none."""
        def without(shares: list) -> tuple[list | None, bool]:
            kept = [s for s in shares if s.handle != handle]
            return (kept, True) if len(kept) < len(shares) else (None, False)

        revoked = self._kept.change(without)
        if revoked:
            log.info("share link %s revoked", handle)
        return revoked

    def _forget_expired(self, kept: set) -> None:
        with self._lock:
            self._expired &= kept  # forget what was seen expired of links that are gone


class Revocations:
    """What the stream hub watches: tokens and share links together. Its ``generation`` grows when
    either's does; a stream's credential (a token's or a link's hash) is valid while either keeps it."""

    def __init__(self, tokens: Any, shares: ShareStore) -> None:
        self.tokens, self.shares = tokens, shares

    @property
    def generation(self) -> int:
        return self.tokens.generation + self.shares.generation

    def is_valid(self, digest: str) -> bool:
        return self.tokens.is_valid(digest) or self.shares.is_valid(digest)
