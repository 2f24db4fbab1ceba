"""What the top-processes panel costs: one read of the process table, with psutil and with /proc.

    python bench/processes.py        # writes bench/RESULTS-processes.md

The panel reads /api/processes every 3 s while it is open (and answers are shared for 2 s
between pages); closed, nothing reads the table at all. So the cost while shown is one read per
3 s, and the CPU share is that read's CPU time / 3 s. Measured here with CPU time (process_time)
as well as wall time, over --reads reads (the cache off), on the machine's own process table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sse_dashboard.collectors.processes import TopProcesses  # noqa: E402


def measure(top: TopProcesses, reads: int) -> dict:
    top.cache_s = 0.0
    top.top()  # the first one primes (two looks)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(reads):
        answer = top.top()
    wall, cpu = (time.perf_counter() - wall0) / reads, (time.process_time() - cpu0) / reads
    return {"processes": answer["processes"], "wall_ms": wall * 1000, "cpu_ms": cpu * 1000,
            "share_percent": 100 * cpu / 3.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reads", type=int, default=50)
    parser.add_argument("--out", default=str(ROOT / "bench" / "RESULTS-processes.md"))
    args = parser.parse_args()
    rows = []
    try:
        import psutil
        rows.append(("psutil %s" % psutil.__version__, measure(TopProcesses(psutil), args.reads)))
    except ImportError:
        pass
    if Path("/proc/self/stat").exists():
        rows.append(("/proc (standard library)", measure(TopProcesses(None), args.reads)))
    lines = ["# Top processes: the cost of the panel", "",
             "`python bench/processes.py` on %s, %d cores, Python %s; %d reads each." % (
                 time.strftime("%Y-%m-%d"), os.cpu_count(), sys.version.split()[0], args.reads), "",
             "| source | processes | one read, wall | one read, CPU | CPU share while a page shows the panel (a read per 3 s) |",
             "| --- | --- | --- | --- | --- |"]
    for name, r in rows:
        lines.append("| %s | %d | %.1f ms | %.1f ms | %.2f %% of one core |" % (
            name, r["processes"], r["wall_ms"], r["cpu_ms"], r["share_percent"]))
    lines += ["", "With the panel closed in every page nothing reads the table: no thread, no timer (tested in "
              "tests/test_processes.py). The first read after a quiet spell takes two looks 0.5 s apart.", ""]
    Path(args.out).write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
