"""Storage: what must survive a restart, in one SQLite file per data folder.

- ``database``: the file: opening it, the folder's lock, migrations, a corrupt file moved
  aside, the faults every write checks (``StorageError``, ``DataDirInUse``);
- ``events``: event rows: each committed before it is acknowledged, paged, exported, pruned;
- ``metric_state``: counters' and gauges' state and small named values (``meta``);
- ``history``: samples and roll-ups, and the one thread that writes them;
- ``chunks``: the layout of history on disk (staged rows, chunk groups) and the moves between;
- ``codec``: one series' values of one chunk as bytes and back, exactly (#23; pure functions);
- ``store``: ``Store``, the parts composed, and ``open_store()``;
- ``memory``: the same reads from memory (``MemoryStore``), over the recent samples'
  ring (``History``), for a dashboard that keeps nothing on disk.

May import: ``sse_dashboard.events`` (the data it keeps) and the standard library; nothing
above it (not the sampler, the alerting or the web layer). Lock order, where it matters: the
registry's lock, then the database's write lock (``Store.commit_metrics``).

The names below are the ones the rest of the package uses.
"""

from sse_dashboard.storage.database import (DB_FILENAME, MIGRATIONS, URL_FILENAME, DataDirInUse, StorageError,
                                            open_database)
from sse_dashboard.storage.events import DEFAULT_MAX_STORED_EVENT_BYTES, DEFAULT_MAX_STORED_EVENTS
from sse_dashboard.storage.history import DEFAULT_FULL_S, DEFAULT_ROLLUP_KEEP_S, DEFAULT_ROLLUP_S
from sse_dashboard.storage.memory import History, MemoryStore
from sse_dashboard.storage.store import Store, open_store

__all__ = ["Store", "MemoryStore", "History", "open_store", "open_database", "StorageError", "DataDirInUse",
           "DB_FILENAME", "URL_FILENAME", "MIGRATIONS", "DEFAULT_MAX_STORED_EVENTS", "DEFAULT_MAX_STORED_EVENT_BYTES",
           "DEFAULT_FULL_S", "DEFAULT_ROLLUP_S", "DEFAULT_ROLLUP_KEEP_S"]
