"""What writing history costs (#23): CPU a sample value and the longest single write (a
compaction holds the storage lock), at 1,000 and 10,000 series, for this checkout and for the
commit before chunks, in one run.

Run: python bench/history_write.py [--reference REV] [--samples N]
(writes bench/RESULTS-history-write.md). Samples are written one a transaction, as the storage
writer does at one sample a second; the values are a 3-decimal random walk.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from reference import reference_checkout  # noqa: E402
REFERENCE = "99f5c0e"  # main before history was compacted into chunks
SERIES = (1000, 10000)


class TimedLock:
    """The storage lock, timing how long it is held: what a POST waiting for it could wait."""

    def __init__(self, lock) -> None:
        self._lock = lock
        self.longest = 0.0
        self._since = 0.0

    def __enter__(self):
        self._lock.acquire()
        self._since = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.longest = max(self.longest, time.perf_counter() - self._since)
        self._lock.release()


def measure(checkout: Path, samples: int) -> dict:
    sys.path.insert(0, str(checkout))
    from sse_dashboard import storage

    out = {}
    for series in SERIES:
        rng = random.Random(series)
        level = [100.0] * series
        with tempfile.TemporaryDirectory() as tmp:
            store = storage.open_store(tmp, full_s=10 ** 7, interval_s=1.0)
            held = TimedLock(store.database.write_lock)
            store.database.write_lock = held
            cpu, longest = 0.0, 0.0
            for t in range(samples):
                for i in range(series):
                    level[i] = round(level[i] + rng.uniform(-1, 1), 3)
                row = (1_700_000_000.0 + t, {"gauges.s%d" % i: level[i] for i in range(series)})
                started, wall = time.process_time(), time.perf_counter()
                store.history.write([row])
                cpu += time.process_time() - started
                longest = max(longest, time.perf_counter() - wall)
            store.close()
        out[str(series)] = {"us_a_value": cpu * 1e6 / (series * samples), "longest_ms": longest * 1000,
                            "cpu_a_second_percent": cpu * 100 / samples, "held_ms": held.longest * 1000}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", default=REFERENCE)
    parser.add_argument("--samples", type=int, default=180)
    parser.add_argument("--only", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        print(json.dumps(measure(Path(args.only), args.samples)))
        return
    results = {}
    with reference_checkout(args.reference) as reference:
        for side, checkout in (("before chunks", reference), ("now", ROOT)):
            done = subprocess.run([sys.executable, __file__, "--only", str(checkout), "--samples", str(args.samples)],
                                  capture_output=True, text=True, check=True, timeout=1800)
            results[side] = json.loads(done.stdout.strip().splitlines()[-1])
    lines = ["# Writing history: what it costs", "",
             "`python bench/history_write.py` on %s (%s, Python %s): %d samples of a 3-decimal random walk, one "
             "a transaction, as the storage writer writes them. CPU of the writing thread (`time.process_time`); "
             "the longest single write (wall clock, its compaction included), and the longest time the storage "
             "lock was held: what a POST waiting for it could wait." % (
                 time.strftime("%Y-%m-%d"), sys.platform, sys.version.split()[0], args.samples), "",
             "| series | side | CPU a value | CPU a second at 1 sample/s | longest write | longest hold of the storage lock |",
             "| --- | --- | --- | --- | --- | --- |"]
    for series in SERIES:
        for side in results:
            r = results[side][str(series)]
            lines.append("| %d | %s (%s) | %.2f µs | %.1f %% of a core | %.0f ms | %.0f ms |" % (
                series, side, args.reference if side == "before chunks" else "this checkout", r["us_a_value"],
                r["cpu_a_second_percent"], r["longest_ms"], r["held_ms"]))
    out = ROOT / "bench" / "RESULTS-history-write.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
