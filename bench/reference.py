"""The reference a benchmark measures against, in the same run: a git revision of this
repository checked out in a temporary worktree, removed afterwards; and ``revision()``, the
commit a benchmark measured (its RESULTS file says which).

    with reference_checkout("3411770") as reference:
        before = measure(reference)
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def reference_checkout(revision: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        checkout = Path(tmp) / "reference"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(checkout), revision],
                       check=True)
        try:
            yield checkout
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(checkout)], check=False)


def revision(checkout: Path = ROOT) -> str:
    """The short commit of ``checkout``, with "+ uncommitted changes" when its tracked files
    outside ``bench/`` differ (a benchmark being written does not change what it measures)."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(checkout), *args], capture_output=True, text=True)
    commit = git("rev-parse", "--short", "HEAD").stdout.strip() or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench").stdout.strip()
    return commit + (" + uncommitted changes" if dirty else "")
