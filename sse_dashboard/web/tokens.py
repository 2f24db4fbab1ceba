"""Scoped tokens (#26): several named tokens, each with the scopes it may use, kept as hashes.

One concept: the token store. ``TokenStore`` keeps the tokens of one data folder in
``tokens.json`` beside the history database (never in it: a small file the command line edits
while the dashboard runs). ``guard`` asks it who offered a token; the admin API and
``sse-dashboard token ...`` add and revoke.

Invariants:
- a token is shown in clear once, when it is made, and kept only as the SHA-256 of its text:
  tokens are 32 random bytes, so a fast hash is right (nothing to guess), and a lookup compares
  the offered token's hash with every stored one in constant time (``hmac.compare_digest``);
- the file is kept as ``keptlist.KeptList`` keeps one: written whole under a lock other processes
  see, re-read when the command line changed it, ``generation`` growing when a token leaves it
  (what the stream hub watches to close the streams it opened), a damaged file at start an
  error (``TokenFileError``) rather than an empty list that would open the API;
- once a data folder has had a token (the file exists), the API needs one, even after the last
  is revoked: revoking a leaked token must never open the dashboard. Delete the file to go back
  to the open default;
- when a token was last used is kept apart, in ``tokens-used.json``, which only the dashboard
  writes (the CLI only reads it), at most once per ``USED_EVERY_S``: so it is right to the
  minute, costs one small write a minute at most, and never races the CLI's changes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from sse_dashboard.web.keptlist import CHECK_EVERY_S, LOCK_WAIT_S, KeptFileError, KeptList, write_json

__all__ = ["SCOPES", "MAX_TOKENS", "TOKEN_FILE", "CHECK_EVERY_S", "TokenStore", "StoredToken", "TokenFileError", "TokenExists",
           "token_digest", "implied_scopes", "check_scopes", "check_name", "token_file", "USED_FILE", "USED_EVERY_S"]

log = logging.getLogger(__name__)

SCOPES = ("read", "write", "admin")  # admin implies the other two; read and write imply nothing
MAX_TOKENS = 100                     # a lookup compares with each: keep it a handful, not a database
TOKEN_FILE = "tokens.json"
USED_FILE = "tokens-used.json"       # when each token was last used: the dashboard's, apart from the CLI's file
USED_EVERY_S = 60.0                  # written at most this often
TOKEN_PREFIX = "sdt_"                # says what a leaked string is (secret scanners key on such prefixes)
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


TokenFileError = KeptFileError  # the token file cannot be read, written or locked


class TokenExists(ValueError):
    """A token of that name is kept already."""


def token_digest(token: str) -> str:
    """What is kept of a token: the hex SHA-256 of its UTF-8 text."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def implied_scopes(scopes: Iterable[str]) -> frozenset:
    """Every scope a token with ``scopes`` may use: admin may do anything."""
    scopes = frozenset(scopes)
    return frozenset(SCOPES) if "admin" in scopes else scopes


def check_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError("a token's name must be 1 to 64 letters, digits, '.', '_' or '-'")
    return name


def check_scopes(scopes: object) -> tuple:
    """The scopes, sorted in ``SCOPES`` order, or ``ValueError`` naming the bad one."""
    if isinstance(scopes, str) or not isinstance(scopes, (list, tuple)) or not scopes:
        raise ValueError("scopes must be a list of one or more of %s" % ", ".join(SCOPES))
    for scope in scopes:
        if scope not in SCOPES:
            raise ValueError("unknown scope %s: the scopes are %s" % (json.dumps(scope)[:50], ", ".join(SCOPES)))
    return tuple(s for s in SCOPES if s in scopes)


def token_file(data_dir: str | Path | None) -> Path | None:
    """Where a data folder keeps its tokens; None for ``:memory:`` (or no folder)."""
    if data_dir is None or str(data_dir) == ":memory:":
        return None
    return Path(data_dir) / TOKEN_FILE


@dataclass(frozen=True)
class StoredToken:
    """One token as kept: its name, scopes, hash and when it was made (unix seconds)."""

    name: str
    scopes: tuple
    digest: str
    created: float

    def as_json(self) -> dict:
        return {"name": self.name, "scopes": list(self.scopes), "digest": self.digest, "created": self.created}


def _parse(item: dict) -> StoredToken:
    return StoredToken(check_name(item["name"]), check_scopes(item["scopes"]), str(item["digest"]), float(item["created"]))


def _read_used(path: Path) -> dict:
    """{digest: unix seconds} from the last-use file; empty when there is none or it is damaged
    (it is only ever a convenience)."""
    try:
        used = json.loads(path.read_text(encoding="utf-8"))
        return {str(digest): float(when) for digest, when in used.items()}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


class TokenStore:
    """The tokens of one data folder (``path``), or of this run only (``path=None``: ``:memory:``).

    >>> store = TokenStore(Path("data") / "tokens.json")
    >>> secret, entry = store.add("ci", ("write",))     # the only time the token is seen in clear
    >>> store.lookup(secret).scopes
    ('write',)
    >>> store.revoke("ci")
    True
    """

    def __init__(self, path: Path | None, *, clock: Callable[[], float] = time.monotonic,
                 check_every_s: float = CHECK_EVERY_S, lock_wait_s: float = LOCK_WAIT_S) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()        # guards the fields below
        self._ever = False                   # a token was made in this run (the in-memory store)
        self._last_used: dict[str, float] = {}
        self._used_saved_at: float | None = None  # monotonic; None: not written in this run
        self._kept = KeptList(path, "tokens", _parse, what="token", clock=clock, check_every_s=check_every_s,
                              lock_wait_s=lock_wait_s, on_replace=self._forget_last_used)
        if path is not None:
            kept = {t.digest for t in self._kept.entries}
            self._last_used = {d: t for d, t in _read_used(path.with_name(USED_FILE)).items() if d in kept}

    # --- asked by requests and the stream hub --------------------------------------------

    @property
    def enabled(self) -> bool:
        """Whether tokens are in use here: the file exists, or one was made in this run."""
        self.refresh()
        with self._lock:
            ever = self._ever
        return self._kept.on_disk or ever or bool(self._kept.entries)

    @property
    def generation(self) -> int:
        """Grows whenever a token stops being valid (revoked here, or gone from the file)."""
        self.refresh()
        return self._kept.generation

    def lookup(self, offered: str) -> StoredToken | None:
        """The stored token ``offered`` is, or None; compared with each in constant time."""
        self.refresh()
        digest = token_digest(offered)
        found = None
        for entry in self._kept.entries:
            if hmac.compare_digest(entry.digest, digest):
                found = entry
        if found is None:
            return None
        with self._lock:
            self._last_used[found.digest] = round(time.time())
            save = self.path is not None and (self._used_saved_at is None
                                              or self._clock() - self._used_saved_at >= USED_EVERY_S)
            if save:
                self._used_saved_at = self._clock()
                used = dict(self._last_used)
        if save:
            self._save_used(used)
        return found

    def _save_used(self, used: dict) -> None:
        try:
            write_json(self.path.with_name(USED_FILE), used)
        except TokenFileError as exc:
            log.warning("%s (when tokens were last used is not kept)", exc)

    def is_valid(self, digest: str) -> bool:
        """Whether the token with this hash is still kept (the stream hub asks for its streams)."""
        return any(entry.digest == digest for entry in self._kept.entries)

    def listing(self) -> list[dict]:
        """Every token's name, scopes, creation and last use (None: never), never its hash."""
        self.refresh()
        tokens = self._kept.entries
        with self._lock:
            return [{"name": t.name, "scopes": list(t.scopes), "created": t.created,
                     "last_used": self._last_used.get(t.digest)} for t in tokens]

    def refresh(self, force: bool = False) -> None:
        """Take the file's changes (the CLI's), looking at most once per ``check_every_s``."""
        self._kept.refresh(force)

    # --- changes: the admin API and the command line ---------------------------------------

    def add(self, name: str, scopes: Iterable[str]) -> tuple[str, StoredToken]:
        """Make a token: (its text, shown this once; what is kept). ``ValueError`` for a bad
        name or scope, a name in use, or too many tokens; ``TokenFileError`` if it cannot be kept."""
        name, scopes = check_name(name), check_scopes(list(scopes))
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        entry = StoredToken(name, scopes, token_digest(secret), round(time.time(), 3))

        def add_to(tokens: list) -> tuple[list, None]:
            if any(t.name == name for t in tokens):
                raise TokenExists("a token named %s already exists (revoke it first)" % name)
            if len(tokens) >= MAX_TOKENS:
                raise ValueError("at most %d tokens; revoke one first" % MAX_TOKENS)
            return tokens + [entry], None

        self._kept.change(add_to)
        with self._lock:
            self._ever = True
        log.info("token %s made, with the scopes %s", name, ", ".join(scopes))
        return secret, entry

    def revoke(self, name: str) -> bool:
        """Forget the token named ``name`` at once; False if there is none."""
        def without(tokens: list) -> tuple[list | None, bool]:
            kept = [t for t in tokens if t.name != name]
            return (kept, True) if len(kept) < len(tokens) else (None, False)

        revoked = self._kept.change(without)
        if revoked:
            log.info("token %s revoked", name)
        return revoked

    def _forget_last_used(self, kept: set) -> None:
        with self._lock:
            self._last_used = {d: t for d, t in self._last_used.items() if d in kept}
