"""The process that writes the history in tests/test_history_model.py (run by it, not by pytest).

    python tests/history_driver.py FOLDER FULL_S ROLLUP_S ROLLUP_KEEP_S

It opens the store in FOLDER (``storage.open_store``, a 1 s interval), starts its writer
thread, says ``{"ready": ...}`` and answers each command read from stdin, one a line, with
one line on stdout:

- ``{"op": "write", "samples": [[ts, {name: value}], ...]}``: queued for the writer thread as
  the sampler queues them (``enqueue``); the answer confirms nothing is on disk yet;
- ``{"op": "flush"}``: every queued sample written; only now are they confirmed;
- ``{"op": "settle"}``: an empty write (``StoredHistory.write([])``): the compaction and the
  join every write ends with, after a kill came between a write and them;
- ``{"op": "prune"}``: flush, then retention enforced (the writer's own pruning is off, so the
  test knows when it happens);
- ``{"op": "read", "start", "end", "names", "points", "between"}``: ``Store.history_columns``,
  and with ``points`` the answer ``Application.history_columns`` builds from it
  (``downsample``; ``"unchanged"`` when it hands the columns back as they are, the exception's
  text when it raises);
- ``{"op": "rows", "start", "end", "between"}``: ``Store.iter_history_rows`` (the exports).

``between``: samples written (``StoredHistory.write``, in this thread, so the compaction that
follows runs too) while the read is between its first block of samples and the rest: a read
that is not one snapshot misses what that compaction moves. The answer's ``between_written``
says it happened: None if not, else how many blocks (the staged rows at least) were read after.

SIGTERM is a clean stop, as the dashboard's: the queued samples written (``Store.close``),
exit status 0. SIGKILL is the hard kill the test is about. Lines are base64 pickles: every
float crosses bit for bit (NaN payloads and -0.0 too; JSON would not keep them) and ints stay
ints.
"""

from __future__ import annotations

import base64
import pickle
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sse_dashboard import storage  # noqa: E402
from sse_dashboard.storage import history as stored_history  # noqa: E402
from sse_dashboard.storage.memory import downsample  # noqa: E402

INTERVAL_S = 1.0
FLUSH_TIMEOUT_S = 60.0


def encode_line(obj: object) -> str:
    return base64.b64encode(pickle.dumps(obj, protocol=4)).decode("ascii") + "\n"


def decode_line(line: str) -> object:
    return pickle.loads(base64.b64decode(line))


def answer(obj: dict) -> None:
    sys.stdout.write(encode_line(obj))
    sys.stdout.flush()


class WriteBetweenBlocks:
    """Stands in for ``blocks`` in the history module: once ``arm``-ed, the first block read,
    it writes the batch before the rest is read (the moment a compaction used to tear a read)."""

    def __init__(self, store: storage.Store) -> None:
        self.store = store
        self.read_blocks = stored_history.blocks
        self.batch: list | None = None
        self.written = False
        self.blocks_after = 0

    def arm(self, batch: list | None) -> None:
        self.batch, self.written, self.blocks_after = batch, False, 0

    def __call__(self, conn, start, end, only=None):
        blocks = self.read_blocks(conn, start, end, only)
        yield next(blocks)  # the groups are read (or, with none, the staged rows)
        if self.batch is not None:
            batch, self.batch = self.batch, None
            self.store.history.write(batch)
            self.written = True
        for block in blocks:
            self.blocks_after += 1
            yield block


def flushed(store: storage.Store) -> dict:
    store.flush(FLUSH_TIMEOUT_S)
    return {"dropped": store.dropped_samples, "error": store.last_error}


def read(store: storage.Store, between: WriteBetweenBlocks, command: dict) -> dict:
    start, end, points = command["start"], command["end"], command.get("points")
    between.arm(command.get("between"))
    columns = store.history_columns(start, end, command.get("names"))
    written = between.blocks_after if between.written else None
    columns.setdefault("interval", INTERVAL_S)  # as Application.history_columns
    shown = None
    if points:
        try:
            shown = downsample(columns, points, start, end)
        except Exception as exc:  # the model says whether that is a known shortfall
            shown = "raised %r" % exc
        else:
            shown = "unchanged" if shown is columns else shown
    # What Application.history_columns answers first when it can: buckets from the summaries
    # (after the write between blocks, if any: the model checks it against what is kept then).
    bucketed = store.history_buckets(start, end, command.get("names"), points) if points else None
    return {"columns": columns, "downsampled": shown, "between_written": written, "bucketed": bucketed}


def rows(store: storage.Store, between: WriteBetweenBlocks, command: dict) -> dict:
    between.arm(command.get("between"))
    got = list(store.iter_history_rows(command["start"], command["end"]))
    return {"rows": got, "between_written": between.blocks_after if between.written else None}


def handle(store: storage.Store, between: WriteBetweenBlocks, command: dict) -> dict:
    op = command["op"]
    if op == "write":
        for ts, flat in command["samples"]:
            store.enqueue_sample(ts, flat)
        return {"queued": len(command["samples"])}
    if op == "flush":
        return flushed(store)
    if op == "settle":
        store.history.write([])  # the compaction and join a write ends with, with no samples
        return {}
    if op == "prune":
        result = flushed(store)
        store.prune()
        return result
    if op == "read":
        return read(store, between, command)
    if op == "rows":
        return rows(store, between, command)
    raise ValueError("unknown op %r" % op)


def stop(signum: int, frame: object) -> None:
    raise SystemExit(0)  # unwinds to main()'s finally: the clean close


def main(argv: list[str]) -> int:
    folder, full_s, rollup_s, rollup_keep_s = argv[1], float(argv[2]), float(argv[3]), float(argv[4])
    store = storage.open_store(folder, full_s=full_s, rollup_s=rollup_s, rollup_keep_s=rollup_keep_s,
                               interval_s=INTERVAL_S, prune_every_s=float("inf"))
    between = WriteBetweenBlocks(store)
    stored_history.blocks = between
    try:
        signal.signal(signal.SIGTERM, stop)
        store.start()
        answer({"ready": True, "keep_samples": store.history.keep_samples, "keep_buckets": store.history.keep_buckets,
                "longest_group": store.history.longest_group})
        while True:
            line = sys.stdin.readline()
            if not line:
                return 0  # the test is gone
            answer(handle(store, between, decode_line(line)))
    finally:
        store.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
