"""What one client can make the dashboard hold: memory and disk under the largest inputs the API allows.

    python bench/bounds.py            # writes bench/RESULTS-bounds.md

1. Events: 1,000 POSTs with a 64 KB ``data`` (16,200 floats each, `0.5`) to a real server process
   (SQLite storage on), RSS before and after; then a restart: RSS and time to the first answer.
2. Names: 1,000 gauges with the longest name allowed, sampled until the 15-minute history ring
   is full (900 ticks, in-process and without waiting: the ring is bounded by rows), RSS growth;
   the snapshot's size; the database growth for 900 samples of those series.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402  (the [bench] extra)


def start(data_dir: str) -> tuple[subprocess.Popen, int, float]:
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, str(ROOT / "sse_server.py"), "--port", "0", "--data-dir", data_dir,
                             "--post-rate", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        match = re.search(r"dashboard at http://127\.0\.0\.1:(\d+)/", line)
        if match:
            port = int(match.group(1))
            get(port, "/api/health")
            return proc, port, time.monotonic() - started
    raise RuntimeError("the server did not start")


def get(port: int, path: str) -> dict:
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=30) as resp:
        return json.load(resp)


def post(port: int, path: str, body: bytes) -> int:
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 1e6


def events_case() -> dict:
    body = json.dumps({"message": "big", "data": [0.5] * 16200}, separators=(",", ":")).encode()
    assert len(body) <= 64 * 1024, len(body)
    with tempfile.TemporaryDirectory() as tmp:
        proc, port, _ = start(tmp)
        try:
            before = rss_mb(proc.pid)
            for _ in range(1000):
                post(port, "/api/events", body)
            after = rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(10)
        proc, port, first_answer_s = start(tmp)
        try:
            restarted = rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(10)
    return {"idle": before, "after": after, "restarted": restarted, "first_answer_s": first_answer_s}


def names_case() -> dict:
    from sse_dashboard import registry as metric_registry
    from sse_dashboard import storage
    from sse_dashboard.collectors.system import make_system_collector
    from sse_dashboard.sampler import Sampler
    name_chars = getattr(metric_registry, "MAX_NAME_CHARS", 100)
    registry = metric_registry.MetricsRegistry()
    names = ["g%03d_" % i + "x" * (name_chars - 5) for i in range(1000)]
    registry.update(gauges={name: 1.5 for name in names})
    from sse_dashboard.events import EventLog
    from sse_dashboard.storage.memory import History, MemoryStore

    history = History.covering(900, 1.0)  # what a dashboard without a data folder keeps
    sampler = Sampler(registry, make_system_collector(), interval_s=1.0,
                      subscribers=[MemoryStore(history, EventLog()).record])
    process = psutil.Process()
    before = process.memory_info().rss / 1e6
    for _ in range(900):
        sampler.tick()
    after = process.memory_info().rss / 1e6
    snapshot_kb = len(sampler.latest()[1]) / 1e3
    rows = history.rows(900)
    with tempfile.TemporaryDirectory() as tmp:
        store = storage.open_store(tmp)
        for ts, flat in rows:
            store.history.write([(ts, flat)])
        store.database.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = sum(f.stat().st_size for f in Path(tmp).glob("dashboard.sqlite3*")) / 1e6
        store.close()
    return {"name_chars": name_chars, "history_mb": after - before, "snapshot_kb": snapshot_kb,
            "db_mb_900": size, "db_mb_hour": size * 3600 / len(rows)}


def main() -> None:
    events = events_case()
    names = names_case()
    lines = [
        "# Bounds benchmark",
        "",
        "`python bench/bounds.py` on %s (%s, Python %s). MB are 10^6 bytes." % (
            time.strftime("%Y-%m-%d"), sys.platform, sys.version.split()[0]),
        "",
        "| case | measure | value |",
        "| --- | --- | --- |",
        "| 1,000 POSTs of 64 KB `data` | server RSS idle -> after | %.0f -> %.0f MB |" % (events["idle"], events["after"]),
        "| same, after a restart | RSS; start to first answer | %.0f MB; %.2f s |" % (
            events["restarted"], events["first_answer_s"]),
        "| 1,000 gauges, names of %d chars, 900 samples | history ring growth (RSS) | %.0f MB |" % (
            names["name_chars"], names["history_mb"]),
        "| same | one snapshot (every stream, every tick) | %.0f KB |" % names["snapshot_kb"],
        "| same | database for 900 samples; per hour at 1 s | %.0f MB; %.0f MB |" % (
            names["db_mb_900"], names["db_mb_hour"]),
    ]
    out = ROOT / "bench" / "RESULTS-bounds.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
