"""The process that writes the history in tests/test_history_model.py (run by it, not by pytest).

    python tests/history_driver.py FOLDER FULL_S ROLLUP_S ROLLUP_KEEP_S

It opens the store in FOLDER (``storage.open_store``, a 1 s interval), starts its writer
thread, says ``{"ready": ...}`` and answers each JSON command read from stdin, one a line,
with one JSON line on stdout:

- ``{"op": "write", "samples": [[ts, {name: value}], ...]}``: queued for the writer thread as
  the sampler queues them (``enqueue``); the answer confirms nothing is on disk yet;
- ``{"op": "flush"}``: every queued sample written; only now are they confirmed;
- ``{"op": "prune"}``: flush, then retention enforced (the writer's own pruning is off, so the
  test knows when it happens);
- ``{"op": "read", "start", "end", "names", "points"}``: ``Store.history_columns``, and with
  ``points`` the answer ``Application.history_columns`` builds from it (``downsample``).

SIGTERM is a clean stop, as the dashboard's: the queued samples and the open roll-up written
(``Store.close``), exit status 0. SIGKILL is the hard kill the test is about. Numbers cross as
JSON, whose floats are ``repr``: they read back bit for bit, and ints stay ints.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sse_dashboard import storage  # noqa: E402
from sse_dashboard.storage.memory import downsample  # noqa: E402

INTERVAL_S = 1.0
FLUSH_TIMEOUT_S = 60.0


def answer(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def flushed(store: storage.Store) -> dict:
    store.flush(FLUSH_TIMEOUT_S)
    return {"dropped": store.dropped_samples, "error": store.last_error}


def read(store: storage.Store, start: float, end: float, names: list | None, points: int | None) -> dict:
    before = time.time()
    columns = store.history_columns(start, end, names)
    columns.setdefault("interval", INTERVAL_S)  # as Application.history_columns
    shown = downsample(columns, points, start, end) if points else None
    return {"columns": columns, "downsampled": shown, "clock": [before, time.time()]}


def handle(store: storage.Store, command: dict) -> dict:
    op = command["op"]
    if op == "write":
        for ts, flat in command["samples"]:
            store.enqueue_sample(ts, flat)
        return {"queued": len(command["samples"])}
    if op == "flush":
        return flushed(store)
    if op == "prune":
        result = flushed(store)
        store.prune()
        return result
    if op == "read":
        return read(store, command["start"], command["end"], command.get("names"), command.get("points"))
    raise ValueError("unknown op %r" % op)


def stop(signum: int, frame: object) -> None:
    raise SystemExit(0)  # unwinds to main()'s finally: the clean close


def main(argv: list[str]) -> int:
    folder, full_s, rollup_s, rollup_keep_s = argv[1], float(argv[2]), float(argv[3]), float(argv[4])
    store = storage.open_store(folder, full_s=full_s, rollup_s=rollup_s, rollup_keep_s=rollup_keep_s,
                               interval_s=INTERVAL_S, prune_every_s=float("inf"))
    try:
        signal.signal(signal.SIGTERM, stop)
        store.start()
        answer({"ready": True, "keep_samples": store.history.keep_samples, "keep_buckets": store.history.keep_buckets})
        while True:
            line = sys.stdin.readline()
            if not line:
                return 0  # the test is gone
            answer(handle(store, json.loads(line)))
    finally:
        store.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
