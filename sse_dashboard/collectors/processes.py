"""Top processes: the ten using the most CPU and the most memory, worked out only when asked.

One concept: a process table on demand. No thread and no sampling: ``top()`` reads the
process table when a page's panel (or a script) asks, at most once per ``cache_s`` however
many ask, so it costs nothing while nobody looks (bench/RESULTS-processes.md: the cost
when someone does).

CPU is the share of one core each process used since the previous reading (as ``top``
shows it: a busy process on two cores reads 200 %). The first reading after a quiet spell
takes two looks ``PRIME_S`` apart. Sources: psutil where installed, ``/proc`` on Linux
otherwise; where neither can, the answer says so (``available: false``, ``why``).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

__all__ = ["TopProcesses"]

TOP_N = 10
CACHE_S = 2.0
PRIME_S = 0.5
STALE_S = 30.0  # an older previous reading is too far back to make a rate from


class TopProcesses:
    """>>> TopProcesses().top()["cpu"][0]   # {"pid", "name", "cpu_percent", "rss_bytes"}"""

    def __init__(self, psutil: Any = None, proc_root: str | Path = "/proc", platform: str = os.name,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 cache_s: float = CACHE_S) -> None:
        self._psutil = psutil
        self.proc_root = Path(proc_root)
        self._platform = platform
        self._clock = clock
        self._sleep = sleep
        self.cache_s = cache_s
        self._lock = threading.Lock()
        self._previous: tuple[float, dict] | None = None   # (when, {pid: cpu seconds})
        self._answer: tuple[float, dict] | None = None

    @property
    def source(self) -> str | None:
        if self._psutil is not None:
            return "psutil"
        if self._platform != "nt" and (self.proc_root / "self" / "stat").exists():
            return "proc"
        return None

    def top(self, n: int = TOP_N) -> dict:
        source = self.source
        if source is None:
            return {"available": False, "source": None, "cpu": [], "memory": [],
                    "why": "listing processes needs psutil on this system (pip install psutil)"}
        with self._lock:  # one reading at a time; the others get its answer
            now = self._clock()
            if self._answer is not None and now - self._answer[0] < self.cache_s:
                return self._answer[1]
            if self._previous is None or now - self._previous[0] > STALE_S:
                self._previous = (now, {pid: p["cpu_s"] for pid, p in self._read().items()})
                self._sleep(PRIME_S)
                now = self._clock()
            table = self._read()
            then, before = self._previous
            elapsed = max(now - then, 1e-6)
            rows = []
            for pid, proc in table.items():
                used = proc["cpu_s"] - before.get(pid, 0.0)  # a new one: all it used, it used since then
                rows.append({"pid": pid, "name": proc["name"], "cpu_percent": round(max(0.0, used) / elapsed * 100, 1),
                             "rss_bytes": proc["rss_bytes"]})
            self._previous = (now, {pid: p["cpu_s"] for pid, p in table.items()})
            answer = {"available": True, "source": source, "why": None, "interval_s": round(elapsed, 2),
                      "processes": len(table),
                      "cpu": sorted(rows, key=lambda r: (-r["cpu_percent"], r["pid"]))[:n],
                      "memory": sorted(rows, key=lambda r: (-(r["rss_bytes"] or 0), r["pid"]))[:n]}
            self._answer = (now, answer)
            return answer

    def _read(self) -> dict[int, dict]:
        return self._read_psutil() if self._psutil is not None else self._read_proc()

    def _read_psutil(self) -> dict[int, dict]:
        table = {}
        for proc in self._psutil.process_iter(["pid", "name", "cpu_times", "memory_info"]):
            info = proc.info
            times, memory = info.get("cpu_times"), info.get("memory_info")
            table[info["pid"]] = {"name": info.get("name") or "?",
                                  "cpu_s": (times.user + times.system) if times else 0.0,
                                  "rss_bytes": memory.rss if memory else None}
        return table

    def _read_proc(self) -> dict[int, dict]:
        ticks = os.sysconf("SC_CLK_TCK")
        page = os.sysconf("SC_PAGE_SIZE")
        table = {}
        for entry in self.proc_root.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text(encoding="utf-8", errors="replace")
            except OSError:  # it ended between the listing and the read
                continue
            # The name is in parentheses and may itself hold spaces and parentheses.
            name = stat[stat.find("(") + 1:stat.rfind(")")]
            fields = stat[stat.rfind(")") + 2:].split()
            if len(fields) < 22:
                continue
            table[int(entry.name)] = {"name": name, "cpu_s": (int(fields[11]) + int(fields[12])) / ticks,
                                      "rss_bytes": int(fields[21]) * page}
        return table
