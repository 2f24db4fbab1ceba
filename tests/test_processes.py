"""Top processes: a process the test starts shows up, read only when asked."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from conftest import wait_until
from sse_dashboard.collectors.processes import TopProcesses

BUSY = "import time\nend = time.time() + 60\nwhile time.time() < end: pass\n"


@pytest.fixture
def busy():
    proc = subprocess.Popen([sys.executable, "-c", BUSY])
    yield proc
    proc.kill()
    proc.wait(10)


@pytest.mark.parametrize("collector", ["psutil", "proc"])
def test_a_busy_process_the_test_started_tops_the_cpu_list(make_server, busy, collector):
    running = make_server(psutil="auto" if collector == "psutil" else None)

    def busy_listed():
        top = running.json("GET", "/api/processes")[1]
        return top["source"] == collector and busy.pid in [p["pid"] for p in top["cpu"][:3]] and top
    top = wait_until(busy_listed, timeout=10, interval=0.5, message="the busy process near the top")
    row = next(p for p in top["cpu"] if p["pid"] == busy.pid)
    assert row["cpu_percent"] > 30 and row["rss_bytes"] > 1_000_000 and row["name"].startswith("python")
    assert len(top["memory"]) == 10 and top["memory"][0]["rss_bytes"] >= top["memory"][-1]["rss_bytes"]


def test_it_costs_nothing_until_asked_and_one_read_serves_everyone_for_two_seconds():
    reads = []
    clock = [100.0]
    top = TopProcesses(None, clock=lambda: clock[0], sleep=lambda s: clock.__setitem__(0, clock[0] + s))
    original = top._read
    top._read = lambda: reads.append(1) or original()
    assert reads == [] and not [t for t in threading.enumerate() if "process" in t.name]
    first = top.top()
    assert len(reads) == 2  # two looks half a second apart: the first time there is no earlier reading
    clock[0] += 1.0
    assert top.top() is first and len(reads) == 2
    clock[0] += 1.5
    top.top()
    assert len(reads) == 3


def test_where_nothing_can_list_processes_it_says_so(server):
    top = TopProcesses(None, platform="nt").top()
    assert top["available"] is False and "psutil" in top["why"]
