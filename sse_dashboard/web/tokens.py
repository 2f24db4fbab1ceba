"""Scoped tokens (#26): several named tokens, each with the scopes it may use, kept as hashes.

One concept: the token store. ``TokenStore`` keeps the tokens of one data folder in
``tokens.json`` beside the history database (never in it: a small file the command line edits
while the dashboard runs). ``guard`` asks it who offered a token; the admin API and
``sse-dashboard token ...`` add and revoke.

Invariants:
- a token is shown in clear once, when it is made, and kept only as the SHA-256 of its text:
  tokens are 32 random bytes, so a fast hash is right (nothing to guess), and a lookup compares
  the offered token's hash with every stored one in constant time (``hmac.compare_digest``);
- the file is written whole, to a temporary file then ``os.replace``d, so a reader sees the old
  list or the new one, never half of one; on POSIX it is readable by its owner only;
- a change reads the file, changes the list and writes it holding ``tokens.json.lock`` (made
  with ``O_EXCL``, so it works across processes on every OS): the CLI and the admin API changing
  tokens at the same moment each keep the other's change. A lock older than ``STALE_LOCK_S``
  was left by a process that died, and is taken over;
- a running dashboard notices the file changing (its mtime, size or inode, looked at no more than
  once per ``CHECK_EVERY_S``), so a token revoked from another terminal stops working without a
  restart; ``generation`` grows whenever a token stops being valid, which is what the stream
  hub watches to close the streams it opened;
- once a data folder has had a token (the file exists), the API needs one, even after the last
  is revoked: revoking a leaked token must never open the dashboard. Delete the file to go back
  to the open default;
- when a token was last used is kept apart, in ``tokens-used.json``, which only the dashboard
  writes (the CLI only reads it), at most once per ``USED_EVERY_S``: so it is right to the
  minute, costs one small write a minute at most, and never races the CLI's changes;
- a file that cannot be read at start is an error (``TokenFileError``), not an empty list: a
  damaged file must not open the API. Damaged while running, the last good list stays.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

__all__ = ["SCOPES", "MAX_TOKENS", "TOKEN_FILE", "CHECK_EVERY_S", "TokenStore", "StoredToken", "TokenFileError", "TokenExists",
           "token_digest", "implied_scopes", "check_scopes", "check_name", "token_file", "USED_FILE", "USED_EVERY_S"]

log = logging.getLogger(__name__)

SCOPES = ("read", "write", "admin")  # admin implies the other two; read and write imply nothing
MAX_TOKENS = 100                     # a lookup compares with each: keep it a handful, not a database
TOKEN_FILE = "tokens.json"
USED_FILE = "tokens-used.json"       # when each token was last used: the dashboard's, apart from the CLI's file
USED_EVERY_S = 60.0                  # written at most this often
LOCK_WAIT_S = 5.0                    # how long a change waits for another one to finish
STALE_LOCK_S = 30.0                  # a lock this old was left by a process that died
CHECK_EVERY_S = 1.0                  # how often a running dashboard looks at the file for the CLI's changes
TOKEN_PREFIX = "sdt_"                # says what a leaked string is (secret scanners key on such prefixes)
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class TokenFileError(ValueError):
    """The token file cannot be read or written: the message names it and says why."""


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


def _read(path: Path) -> tuple[list, tuple | None]:
    """(tokens, the file's signature) or ([], None) when there is no file; ``TokenFileError``."""
    try:
        stat = path.stat()
        raw = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):  # no file: also when the data folder cannot be one
        return [], None
    except OSError as exc:
        raise TokenFileError("cannot read %s: %s" % (path, exc.strerror or exc)) from None
    try:
        document = json.loads(raw.decode("utf-8"))
        tokens = [StoredToken(check_name(t["name"]), check_scopes(t["scopes"]), str(t["digest"]), float(t["created"]))
                  for t in document["tokens"]]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise TokenFileError("%s is not a token file this dashboard wrote (%s); fix or delete it" % (path, exc)) from None
    return tokens, _signature(stat)


def _signature(stat: os.stat_result) -> tuple:
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


def _write(path: Path, tokens: list) -> tuple:
    """Write the whole list (temporary file, then ``os.replace``); the new file's signature."""
    return _write_json(path, {"version": 1, "tokens": [t.as_json() for t in tokens]})


def _read_used(path: Path) -> dict:
    """{digest: unix seconds} from the last-use file; empty when there is none or it is damaged
    (it is only ever a convenience)."""
    try:
        used = json.loads(path.read_text(encoding="utf-8"))
        return {str(digest): float(when) for digest, when in used.items()}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def _write_json(path: Path, document: dict) -> tuple:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps(document, indent=1).encode("utf-8")
    temporary = path.with_name(".%s.%s.tmp" % (path.name, secrets.token_hex(4)))
    try:
        fd = os.open(str(temporary), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(body)
            out.flush()
            os.fsync(out.fileno())
        _replace_file(temporary, path)
        return _signature(path.stat())
    except OSError as exc:
        try:
            temporary.unlink()
        except OSError:
            pass
        raise TokenFileError("cannot write %s: %s" % (path, exc.strerror or exc)) from None


def _replace_file(source: Path, target: Path, attempts: int = 5) -> None:
    """``os.replace``, tried again briefly on Windows, where it fails while another process (the
    dashboard taking the change) has the file open for that moment."""
    for attempt in range(attempts):
        try:
            os.replace(str(source), str(target))
            return
        except PermissionError:
            if os.name != "nt" or attempt == attempts - 1:
                raise
            time.sleep(0.05)


class _FileLock:
    """``path`` made with ``O_EXCL`` while a change is under way, in any process (see the module docstring)."""

    def __init__(self, path: Path, wait_s: float = LOCK_WAIT_S) -> None:
        self.path, self.wait_s = path, wait_s

    def __enter__(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                os.close(os.open(str(self.path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                return
            except FileExistsError:
                self._take_if_stale()
            except OSError as exc:
                raise TokenFileError("cannot lock %s: %s" % (self.path, exc.strerror or exc)) from None
            if time.monotonic() >= deadline:
                raise TokenFileError("another change to the tokens holds %s; try again (or delete it if no "
                                     "sse-dashboard is changing tokens)" % self.path)
            time.sleep(0.02)

    def _take_if_stale(self) -> None:
        try:
            if time.time() - self.path.stat().st_mtime > STALE_LOCK_S:
                self.path.unlink()
        except OSError:
            pass  # gone already, or taken: the next try says which

    def __exit__(self, *exc: object) -> None:
        try:
            self.path.unlink()
        except OSError:
            pass


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
        self._check_every_s = check_every_s
        self._lock = threading.Lock()        # guards the fields below
        # Serialises this process's read-modify-write of the file (held across that I/O on purpose:
        # two admins adding at once must not each write a list without the other's token).
        self._file_lock = threading.Lock()
        self._process_lock = _FileLock(path.with_name(path.name + ".lock"), lock_wait_s) if path is not None else None
        self._tokens: list[StoredToken] = []
        self._signature: tuple | None = None
        self._ever = False                   # a token was made in this run (the in-memory store)
        self._generation = 0
        self._last_used: dict[str, float] = {}
        self._used_saved_at: float | None = None  # monotonic; None: not written in this run
        self._checked_at = clock()
        if path is not None:
            self._tokens, self._signature = _read(path)  # a damaged file stops the start
            kept = {t.digest for t in self._tokens}
            self._last_used = {d: t for d, t in _read_used(path.with_name(USED_FILE)).items() if d in kept}

    # --- asked by requests and the stream hub --------------------------------------------

    @property
    def enabled(self) -> bool:
        """Whether tokens are in use here: the file exists, or one was made in this run."""
        self.refresh()
        with self._lock:
            return self._signature is not None or self._ever or bool(self._tokens)

    @property
    def generation(self) -> int:
        """Grows whenever a token stops being valid (revoked here, or gone from the file)."""
        self.refresh()
        return self._generation

    def lookup(self, offered: str) -> StoredToken | None:
        """The stored token ``offered`` is, or None; compared with each in constant time."""
        self.refresh()
        digest = token_digest(offered)
        with self._lock:
            found = None
            for entry in self._tokens:
                if hmac.compare_digest(entry.digest, digest):
                    found = entry
            if found is not None:
                self._last_used[found.digest] = round(time.time())
                save = self.path is not None and (self._used_saved_at is None
                                                  or self._clock() - self._used_saved_at >= USED_EVERY_S)
                if save:
                    self._used_saved_at = self._clock()
                    used = dict(self._last_used)
        if found is not None and save:
            self._save_used(used)
        return found

    def _save_used(self, used: dict) -> None:
        try:
            _write_json(self.path.with_name(USED_FILE), used)
        except TokenFileError as exc:
            log.warning("%s (when tokens were last used is not kept)", exc)

    def is_valid(self, digest: str) -> bool:
        """Whether the token with this hash is still kept (the stream hub asks for its streams)."""
        with self._lock:
            return any(entry.digest == digest for entry in self._tokens)

    def listing(self) -> list[dict]:
        """Every token's name, scopes, creation and last use (None: never), never its hash."""
        self.refresh()
        with self._lock:
            return [{"name": t.name, "scopes": list(t.scopes), "created": t.created,
                     "last_used": self._last_used.get(t.digest)} for t in self._tokens]

    def refresh(self, force: bool = False) -> None:
        """Take the file's changes (the CLI's), looking at most once per ``check_every_s``."""
        if self.path is None:
            return
        now = self._clock()
        with self._lock:
            if not force and now - self._checked_at < self._check_every_s:
                return
            self._checked_at = now
            known = self._signature
        try:
            signature = _signature(self.path.stat())
        except FileNotFoundError:
            signature = None
        except OSError:
            return
        if signature == known:
            return
        try:
            tokens, signature = _read(self.path)
        except TokenFileError as exc:
            log.warning("%s; the tokens read before stay in use", exc)
            return
        self._replace(tokens, signature)

    # --- changes: the admin API and the command line ---------------------------------------

    def add(self, name: str, scopes: Iterable[str]) -> tuple[str, StoredToken]:
        """Make a token: (its text, shown this once; what is kept). ``ValueError`` for a bad
        name or scope, a name in use, or too many tokens; ``TokenFileError`` if it cannot be kept."""
        name, scopes = check_name(name), check_scopes(list(scopes))
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        entry = StoredToken(name, scopes, token_digest(secret), round(time.time(), 3))
        with self._file_lock, self._changing():
            tokens = self._current()
            if any(t.name == name for t in tokens):
                raise TokenExists("a token named %s already exists (revoke it first)" % name)
            if len(tokens) >= MAX_TOKENS:
                raise ValueError("at most %d tokens; revoke one first" % MAX_TOKENS)
            self._save(tokens + [entry])
        with self._lock:
            self._ever = True
        log.info("token %s made, with the scopes %s", name, ", ".join(scopes))
        return secret, entry

    def revoke(self, name: str) -> bool:
        """Forget the token named ``name`` at once; False if there is none."""
        with self._file_lock, self._changing():
            tokens = self._current()
            kept = [t for t in tokens if t.name != name]
            if len(kept) == len(tokens):
                return False
            self._save(kept)
        log.info("token %s revoked", name)
        return True

    def _changing(self) -> Any:
        """The lock other processes see while this one changes the file (nothing in memory)."""
        return self._process_lock if self._process_lock is not None else contextlib.nullcontext()

    def _current(self) -> list:
        """The list to change: the file as it is now (the CLI may have changed it), else ours."""
        if self.path is None:
            with self._lock:
                return list(self._tokens)
        tokens, signature = _read(self.path)
        self._replace(tokens, signature)
        return tokens

    def _save(self, tokens: list) -> None:
        signature = _write(self.path, tokens) if self.path is not None else None
        self._replace(tokens, signature)

    def _replace(self, tokens: list, signature: tuple | None) -> None:
        with self._lock:
            kept = {t.digest for t in tokens}
            if any(t.digest not in kept for t in self._tokens):
                self._generation += 1  # a token stopped being valid: the hub closes its streams
            self._tokens, self._signature = list(tokens), signature
            self._last_used = {d: t for d, t in self._last_used.items() if d in kept}
