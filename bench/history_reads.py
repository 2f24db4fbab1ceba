"""What reading history costs (#23): 1,000 series over an hour at one sample a second, read
through the HTTP API by 1 and by 8 clients at once, for this checkout and for a reference
(default 88c79ef: chunks, before the read and compaction changes that followed; pass
--reference 3411770 for the main of the morning, whose answers were unbounded).

Run: python bench/history_reads.py [--reference REV] [--series N] [--seconds N]
(writes bench/RESULTS-history-reads.md). Each side is a real server process on a data folder
filled beforehand by the storage writer; the clients read whole answers and throw them away.
Peak RSS is the server process' (psutil), sampled every 20 ms.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from reference import reference_checkout  # noqa: E402
REFERENCE = "3411770"
QUERIES = {
    "all series, 1 h (default answer)": "/api/metrics/history?seconds=3600",
    "all series, 1 h, points=600": "/api/metrics/history?seconds=3600&points=600",
    "one series, 1 h, points=600": "/api/metrics/history?seconds=3600&points=600&names=gauges.s7",
}


def fill(checkout: Path, folder: str, series: int, seconds: int) -> None:
    """Write the samples with the checkout's own storage (so its format is the one measured)."""
    code = (
        "import sys, random, time; sys.path.insert(0, %r)\n"
        "if %r:\n import storage\nelse:\n from sse_dashboard import storage\n"
        "store = storage.open_store(%r, interval_s=1.0)\n"
        "rng = random.Random(1); level = [100.0] * %d; now = time.time()\n"
        "w = store.history.write if hasattr(store, 'history') and hasattr(store.history, 'write') else store._write\n"
        "for t in range(%d):\n"
        "    for i in range(len(level)): level[i] = round(level[i] + rng.uniform(-1, 1), 3)\n"
        "    w([(now - %d + t, {'gauges.s%%d' %% i: level[i] for i in range(len(level))})])\n"
        "store.close()\n" % (str(checkout), (checkout / "storage.py").is_file(), folder, series, seconds, seconds))
    subprocess.run([sys.executable, "-c", code], check=True, timeout=1800)


def serve(checkout: Path, folder: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, str(checkout / "sse_server.py"), "--port", "0", "--data-dir", folder,
                             "--no-psutil", "--post-rate", "0"], cwd=str(checkout),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        match = re.search(r"dashboard at http://127\.0\.0\.1:(\d+)/", line)
        if match:
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            return proc, int(match.group(1))
    raise RuntimeError("the server did not start")


def read(port: int, path: str, clients: int, rss: psutil.Process) -> dict:
    peak, done, sizes, times = [rss.memory_info().rss], threading.Event(), [], []

    def watch() -> None:
        while not done.is_set():
            peak.append(rss.memory_info().rss)
            time.sleep(0.02)

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        started = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        times.append(time.perf_counter() - started)
        sizes.append(len(body) if response.status == 200 else -response.status)
        conn.close()

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    watcher.join()
    return {"mb": max(sizes) / 1e6, "seconds": max(times), "peak_rss_mb": max(peak) / 1e6,
            "before_rss_mb": peak[0] / 1e6}


def measure(checkout: Path, series: int, seconds: int) -> dict:
    out = {}
    with tempfile.TemporaryDirectory() as folder:
        fill(checkout, folder, series, seconds)
        proc, port = serve(checkout, folder)
        try:
            rss = psutil.Process(proc.pid)
            for name, path in QUERIES.items():
                for clients in (1, 8):
                    out["%s, %d at once" % (name, clients)] = read(port, path, clients, rss)
        finally:
            proc.terminate()
            proc.wait(10)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", default=REFERENCE)
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=3600)
    args = parser.parse_args()
    results = {}
    with reference_checkout(args.reference) as reference:
        results["reference"] = measure(reference, args.series, args.seconds)
        results["now"] = measure(ROOT, args.series, args.seconds)
    lines = ["# Reading history: what an answer costs", "",
             "`python bench/history_reads.py` on %s (%s, Python %s): %d series of a 3-decimal random walk over "
             "%d s at one sample a second, in a data folder; a real server process; reference %s, now this "
             "checkout. Answer size and the slowest client's time; the server's RSS before and at its peak."
             % (time.strftime("%Y-%m-%d"), sys.platform, sys.version.split()[0], args.series, args.seconds,
                args.reference), "",
             "| query | side | answer | slowest | server RSS before -> peak |", "| --- | --- | --- | --- | --- |"]
    for key in results["now"]:
        for side in ("reference", "now"):
            r = results[side].get(key)
            if r is None:
                continue
            answer = "%.1f MB" % r["mb"] if r["mb"] >= 0 else "HTTP %d" % -int(r["mb"] * 1e6)
            lines.append("| %s | %s | %s | %.2f s | %.0f -> %.0f MB |" % (
                key, side, answer, r["seconds"], r["before_rss_mb"], r["peak_rss_mb"]))
    out = ROOT / "bench" / "RESULTS-history-reads.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
