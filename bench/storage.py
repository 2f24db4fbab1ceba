"""Storage costs: POST /api/events throughput with durable storage vs memory, and a sampler
tick with storage on vs off. Run: python bench/storage.py  (writes bench/RESULTS-storage-writes.md;
bench/RESULTS-storage.md is bench/storage_vs_prometheus.py's)."""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sse_server  # noqa: E402
from sse_dashboard.collectors.system import make_system_collector  # noqa: E402
from sse_dashboard.registry import MetricsRegistry  # noqa: E402
from sse_dashboard.sampler import Sampler  # noqa: E402
from sse_dashboard.storage import open_store  # noqa: E402

POST_SECONDS = 5.0
CLIENTS = 4


def post_throughput(data_dir) -> float:
    server = sse_server.build_app(port=0, post_rate_per_s=0, data_dir=data_dir)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = server.url + "api/events"
    body = json.dumps({"message": "benchmark event", "level": "info", "data": {"n": 1}}).encode()
    counts = [0] * CLIENTS
    deadline = time.monotonic() + POST_SECONDS

    def client(i: int) -> None:
        while time.monotonic() < deadline:
            req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=5) as resp:
                assert resp.status == 201
            counts[i] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    server.shutdown()
    server.server_close()
    return sum(counts) / POST_SECONDS


def tick_cost(with_store: bool, ticks: int = 300) -> tuple[float, float]:
    """Median sampler tick (ms), and the writer's time per sample (ms) when storing."""
    registry = MetricsRegistry()
    registry.update(counters={"c%d" % i: i for i in range(20)}, gauges={"g%d" % i: i for i in range(20)})
    tmp = tempfile.mkdtemp()
    store = open_store(tmp) if with_store else None
    sampler = Sampler(registry, make_system_collector(), interval_s=1.0,
                      subscribers=[store.record] if store else [])
    times = []
    for _ in range(ticks):
        started = time.perf_counter()
        sampler.tick()
        times.append((time.perf_counter() - started) * 1000)
    writer_ms = 0.0
    if store is not None:
        batch = [(time.time() + i, {"s%d" % k: float(k) for k in range(60)}) for i in range(ticks)]
        started = time.perf_counter()
        for item in batch:  # one sample per commit: the worst case (the writer batches when behind)
            store.history.write([item])
        writer_ms = (time.perf_counter() - started) * 1000 / ticks
        store.close()
    return statistics.median(times), writer_ms


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        durable = post_throughput(tmp)
    memory = post_throughput(None)
    # Alternate the two, several rounds: psutil's own cost drifts more than storage adds.
    offs, ons, writers = [], [], []
    for _ in range(4):
        offs.append(tick_cost(False)[0])
        on, writer = tick_cost(True)
        ons.append(on)
        writers.append(writer)
    tick_off, tick_on, writer = statistics.median(offs), statistics.median(ons), statistics.median(writers)
    lines = [
        "# Storage benchmark",
        "",
        "`python bench/storage.py` on %s (%s, %d clients for %.0f s, loopback)." % (
            time.strftime("%Y-%m-%d"), sys.platform, CLIENTS, POST_SECONDS),
        "",
        "| measure | memory only | SQLite (WAL, synchronous=NORMAL) |",
        "| --- | --- | --- |",
        "| POST /api/events accepted per second | %.0f | %.0f |" % (memory, durable),
        "| sampler tick, median of 4 alternating rounds (sampler thread) | %.2f ms | %.2f ms |" % (tick_off, tick_on),
        "| writing one sample (writer thread, one commit each) | - | %.2f ms |" % writer,
        "",
        "The sampler only queues the sample; the commit happens on the writer thread, so the",
        "tick - and so every stream - does not wait for the disk.",
    ]
    out = ROOT / "bench" / "RESULTS-storage-writes.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
