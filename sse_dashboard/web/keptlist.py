"""A list of credentials kept in one JSON file of the data folder: the tokens', the share links' (#26).

One concept: the kept list. ``KeptList`` holds what ``tokens.json`` or ``shares.json`` holds, for
the running dashboard and for the command line changing it meanwhile. ``tokens.TokenStore`` and
``shares.ShareStore`` say what an entry is; this module says how a list of them is kept.

Invariants:
- the file is written whole, to a temporary file then ``os.replace``d, so a reader sees the old
  list or the new one, never half of one; on POSIX it is readable by its owner only;
- a change reads the file, changes the list and writes it holding ``<file>.lock`` (made with
  ``O_EXCL``, so it works across processes on every OS): the CLI and the admin API changing the
  list at the same moment each keep the other's change. A lock older than ``STALE_LOCK_S`` was
  left by a process that died, and is taken over;
- a running dashboard notices the file changing (its mtime, size or inode, looked at no more than
  once per ``CHECK_EVERY_S``), so an entry revoked from another terminal stops working without a
  restart; ``generation`` grows whenever an entry (by its ``digest``) leaves the list, which is
  what the stream hub watches to close the streams it let in;
- a file that cannot be read at start is an error (``KeptFileError``), not an empty list: a
  damaged file must not open the API. Damaged while running, the last good list stays.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any, Callable

__all__ = ["KeptList", "KeptFileError", "FileLock", "write_json", "CHECK_EVERY_S", "LOCK_WAIT_S", "STALE_LOCK_S"]

log = logging.getLogger(__name__)

LOCK_WAIT_S = 5.0                    # how long a change waits for another one to finish
STALE_LOCK_S = 30.0                  # a lock this old was left by a process that died
CHECK_EVERY_S = 1.0                  # how often a running dashboard looks at the file for the CLI's changes


class KeptFileError(ValueError):
    """The file cannot be read, written or locked; the message names it and says why."""


def _signature(stat: os.stat_result) -> tuple:
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


def write_json(path: Path, document: Any) -> tuple:
    """Write ``document`` whole (temporary file, then ``os.replace``); the new file's signature."""
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
        raise KeptFileError("cannot write %s: %s" % (path, exc.strerror or exc)) from None


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


class FileLock:
    """``path`` made with ``O_EXCL`` while a change is under way, in any process (see the module docstring)."""

    def __init__(self, path: Path, wait_s: float = LOCK_WAIT_S, what: str = "entrie") -> None:
        self.path, self.wait_s, self.what = path, wait_s, what

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
                raise KeptFileError("cannot lock %s: %s" % (self.path, exc.strerror or exc)) from None
            if time.monotonic() >= deadline:
                raise KeptFileError("another change to the %ss holds %s; try again (or delete it if no "
                                    "sse-dashboard is changing %ss)" % (self.what, self.path, self.what))
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


class KeptList:
    """The entries of ``path`` (``{"version": 1, key: [...]}``), or of this run only (``path=None``).

    ``parse`` makes an entry of one JSON object (``ValueError``, ``KeyError``... for a bad one);
    an entry has a ``digest`` and ``as_json()``. ``what`` names the file in messages ("token",
    "share"). ``on_replace(digests)`` is told the digests kept whenever the list changes, so its
    owner can forget what it keeps beside them."""

    def __init__(self, path: Path | None, key: str, parse: Callable[[dict], Any], *, what: str,
                 clock: Callable[[], float] = time.monotonic, check_every_s: float = CHECK_EVERY_S,
                 lock_wait_s: float = LOCK_WAIT_S, on_replace: Callable[[set], None] | None = None) -> None:
        self.path, self.key, self._parse, self._what = path, key, parse, what
        self._clock, self._check_every_s, self._on_replace = clock, check_every_s, on_replace
        self._lock = threading.Lock()        # guards the fields below
        # Serialises this process's read-modify-write of the file (held across that I/O on purpose:
        # two admins adding at once must not each write a list without the other's entry).
        self._file_lock = threading.Lock()
        self._process_lock = FileLock(path.with_name(path.name + ".lock"), lock_wait_s, what) \
            if path is not None else None
        self._entries: list = []
        self._signature: tuple | None = None
        self._generation = 0
        self._checked_at = clock()
        if path is not None:
            self._entries, self._signature = self._read()  # a damaged file stops the start

    @property
    def entries(self) -> list:
        with self._lock:
            return list(self._entries)

    @property
    def on_disk(self) -> bool:
        """Whether the file exists (as last read or written)."""
        with self._lock:
            return self._signature is not None

    @property
    def generation(self) -> int:
        """Grows whenever an entry leaves the list (revoked here, or gone from the file)."""
        return self._generation

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
            entries, signature = self._read()
        except KeptFileError as exc:
            log.warning("%s; the %ss read before stay in use", exc, self._what)
            return
        self._replace(entries, signature)

    def change(self, edit: Callable[[list], tuple[list | None, Any]]) -> Any:
        """``edit(the list as it is now)`` -> (the new list, or None to leave it; what to return),
        under this process's lock and the file's; the new list is written before this returns."""
        with self._file_lock, self._changing():
            entries = self._current()
            new, result = edit(entries)
            if new is not None:
                signature = write_json(self.path, {"version": 1, self.key: [e.as_json() for e in new]}) \
                    if self.path is not None else None
                self._replace(new, signature)
        return result

    def _changing(self) -> Any:
        """The lock other processes see while this one changes the file (nothing in memory)."""
        return self._process_lock if self._process_lock is not None else contextlib.nullcontext()

    def _current(self) -> list:
        """The list to change: the file as it is now (the CLI may have changed it), else ours."""
        if self.path is None:
            return self.entries
        entries, signature = self._read()
        self._replace(entries, signature)
        return entries

    def _read(self) -> tuple[list, tuple | None]:
        """(entries, the file's signature) or ([], None) when there is no file; ``KeptFileError``."""
        try:
            stat = self.path.stat()
            raw = self.path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):  # no file: also when the data folder cannot be one
            return [], None
        except OSError as exc:
            raise KeptFileError("cannot read %s: %s" % (self.path, exc.strerror or exc)) from None
        try:
            entries = [self._parse(item) for item in json.loads(raw.decode("utf-8"))[self.key]]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise KeptFileError("%s is not a %s file this dashboard wrote (%s); fix or delete it"
                                % (self.path, self._what, exc)) from None
        return entries, _signature(stat)

    def _replace(self, entries: list, signature: tuple | None) -> None:
        kept = {e.digest for e in entries}
        with self._lock:
            if any(e.digest not in kept for e in self._entries):
                self._generation += 1  # an entry stopped being valid: the hub closes its streams
            self._entries, self._signature = list(entries), signature
        if self._on_replace is not None:
            self._on_replace(kept)
