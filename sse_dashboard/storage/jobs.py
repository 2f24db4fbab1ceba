"""Job monitors on disk: each job's state, and its runs (#24).

One concept: what the job monitors must find again after a restart. ``alerting.jobs`` decides
what a ping means; this keeps the result.

Invariants:
- a ping's effect is one transaction: the job's new state and the run it opened, closed or
  logged, committed before the ping is answered (``save``), so kill -9 loses no acknowledged
  ping, and a failed commit changes nothing;
- a job keeps its newest ``MAX_RUNS`` run records (logs included); older ones go in the same
  transaction that adds a new one, so the table is bounded by jobs times runs;
- deleting a job deletes its runs with it.
"""

from __future__ import annotations

import json
import sqlite3
from sse_dashboard.storage.database import Database, StorageError, describe

__all__ = ["JobTable", "MAX_RUNS"]

MAX_RUNS = 100


class JobTable:
    """The ``jobs`` and ``job_runs`` tables of one ``Database``.

    >>> table = JobTable(database)
    >>> table.save("9f0c...", '{"status": "up", ...}', {"n": 7, "kind": "success", ...})
    >>> table.states()        # {"9f0c...": '{"status": "up", ...}'}
    >>> table.runs("9f0c...", limit=20)
    """

    def __init__(self, database: Database) -> None:
        self._db = database

    def save(self, job: str, state: str | None, run: dict | None = None) -> None:
        """Commit a job's state (None: the job and its runs go) and, with it, one run record
        (its ``n`` names it: the same ``n`` again replaces it, as when a run ends)."""
        db = self._db
        db.check_file()
        try:
            with db.transaction() as conn:
                if state is None:
                    conn.execute("DELETE FROM jobs WHERE id = ?", (job,))
                    conn.execute("DELETE FROM job_runs WHERE job = ?", (job,))
                else:
                    conn.execute("INSERT INTO jobs VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET state = excluded.state",
                                 (job, state))
                if run is not None:
                    conn.execute("INSERT INTO job_runs (job, n, data) VALUES (?, ?, ?) "
                                 "ON CONFLICT (job, n) DO UPDATE SET data = excluded.data",
                                 (job, run["n"], json.dumps(run, separators=(",", ":"))))
                    conn.execute("DELETE FROM job_runs WHERE job = ? AND n <= ?", (job, run["n"] - MAX_RUNS))
        except sqlite3.Error as exc:
            db.last_error = describe(exc)
            raise StorageError("cannot be stored right now: %s" % db.last_error) from None

    def states(self) -> dict[str, str]:
        return dict(self._db.query("SELECT id, state FROM jobs", ()))

    def runs(self, job: str, limit: int, before: int | None = None) -> list[dict]:
        """The job's run records, newest first: at most ``limit``, older than ``before`` when given."""
        rows = self._db.query("SELECT data FROM job_runs WHERE job = ? AND n < ? ORDER BY n DESC LIMIT ?",
                              (job, before if before is not None else 2 ** 62, limit))
        return [json.loads(data) for (data,) in rows]

