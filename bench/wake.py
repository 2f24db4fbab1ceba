"""Micro-benchmark: how long waking N sleeping stream threads takes, and its CPU.

    python bench/wake.py      # N = 1000, 5000, 10000, both ways, both futex hash sizes: bench/RESULTS-wake.md

Compares the ChangeBell (one waiter woken, each woken thread wakes the next) with
``threading.Condition.notify_all``, with this process's futex hash at the kernel's
default size and at ``sse_server.FUTEX_HASH_SLOTS`` (Linux 6.16+). Each case runs in
a fresh process, because a process cannot shrink its futex hash again. The threads
do no work once woken, so this is the wake-up alone: the stream's send comes on top.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ROUNDS = 10


def make_bell(kind: str):
    """(generation, wait, ring) for the ChangeBell or a plain notify_all Condition."""
    if kind == "chain":
        from events import ChangeBell

        bell = ChangeBell()
        return (lambda: bell.generation), bell.wait, bell.ring
    cond = threading.Condition()
    generation = [0]

    def wait(seen: int, timeout: float) -> int:
        with cond:
            cond.wait_for(lambda: generation[0] != seen, timeout)
            return generation[0]

    def ring() -> None:
        with cond:
            generation[0] += 1
            cond.notify_all()

    return (lambda: generation[0]), wait, ring


def measure(n: int, kind: str, wide: bool) -> str:
    import sse_server

    if wide:
        sse_server.widen_futex_hash()
    generation, wait, ring = make_bell(kind)
    woken: list = []

    def sleeper() -> None:
        seen = generation()
        while seen <= ROUNDS:
            seen = wait(seen, 30)
            woken.append(time.perf_counter())

    threads = [threading.Thread(target=sleeper, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len([t for t in threads if t.is_alive()]) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.5)  # every thread is asleep in wait()
    slots = sse_server.futex_hash_slots()
    spans = []
    cpu0 = time.process_time()
    for _ in range(ROUNDS):
        woken.clear()
        t0 = time.perf_counter()
        ring()
        while len(woken) < n:
            time.sleep(0.001)
        spans.append(max(woken) - t0)
        time.sleep(0.05)
    cpu = time.process_time() - cpu0
    ring()
    spans.sort()
    return "| %d | %s | %s | %.0f | %.1f |" % (n, "ChangeBell chain" if kind == "chain" else "notify_all",
                                              slots, 1000 * spans[len(spans) // 2], 1e6 * cpu / (ROUNDS * n))


def main() -> None:
    if len(sys.argv) == 4:  # one case, in this (fresh) process
        print(measure(int(sys.argv[1]), sys.argv[2], sys.argv[3] == "wide"))
        return
    lines = ["# Waking sleeping stream threads", "",
             "`python bench/wake.py` on %s: %d cores, Python %s, %s %s. Each case in a fresh process; the "
             "threads do nothing once woken." % (time.strftime("%Y-%m-%d"), os.cpu_count(), sys.version.split()[0],
                                                 platform.system(), platform.release()), "",
             "| N | wake-up | futex hash buckets | last thread running after (ms, median of %d) "
             "| CPU per wake-up (µs) |" % ROUNDS,
             "| --- | --- | --- | --- | --- |"]
    for wide in ("default", "wide"):
        for kind in ("chain", "all"):
            for n in (1000, 5000, 10000):
                out = subprocess.run([sys.executable, __file__, str(n), kind, wide], capture_output=True,
                                     text=True, check=True, timeout=300)
                lines.append(out.stdout.strip())
                print(lines[-1], flush=True)
    (ROOT / "bench" / "RESULTS-wake.md").write_text("\n".join(lines) + "\n", encoding="utf-8")

if __name__ == "__main__":
    main()
