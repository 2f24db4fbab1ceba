"""The page under load in headless Chromium: long tasks, frames per second, and the JS heap over time.

    python bench/page.py                  # 10 minutes, writes bench/RESULTS-page.md
    python bench/page.py --minutes 2      # a quicker look

The dashboard runs as users run it (python sse_server.py, memory only, 1 s interval); a feeder
posts 100 application gauges once a second and 5 events a second (one in five a warning, so
the charts carry markers). Debian's chromium (through Playwright) keeps the page open the
whole time. Measured in the page: long tasks (over 50 ms, PerformanceObserver) and frames per
second (requestAnimationFrame) in a 60 s window after a minute of warm-up; over the run, the JS
heap after a forced garbage collection (Chrome DevTools Protocol), once a minute: it must level
off, not keep growing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
OBSERVE = """
window.__long = [];
new PerformanceObserver((list) => { for (const e of list.getEntries()) if (window.__long.length < 10000) window.__long.push([e.startTime, e.duration]); })
  .observe({ type: "longtask", buffered: true });
window.__frames = 0;  // a count, not a list: the measurement must not grow the heap it measures
(function tick() { window.__frames++; requestAnimationFrame(tick); })();
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port: int, path: str, body: dict) -> None:
    request = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(request, timeout=5).read()
    except OSError:
        pass


def feed(port: int, stop: threading.Event) -> None:
    n = 0
    start = time.monotonic()
    while not stop.is_set():
        due = start + n * 0.2
        stop.wait(max(0.0, due - time.monotonic()))
        if n % 5 == 0:
            post(port, "/api/metrics", {"gauges": {"app_gauge_%03d" % i: (n + i) % 97 for i in range(100)}})
        post(port, "/api/events", {"message": "bench event %d" % n, "level": "warning" if n % 5 == 0 else "info",
                                   "source": "bench", "type": "bench.tick"})
        n += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--out", default=str(ROOT / "bench" / "RESULTS-page.md"))
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    port = free_port()
    server = subprocess.Popen([sys.executable, str(ROOT / "sse_server.py"), "--port", str(port), "--data-dir",
                               ":memory:", "--post-rate", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stop = threading.Event()
    try:
        time.sleep(1.5)
        threading.Thread(target=feed, args=(port, stop), daemon=True).start()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=ARGS)
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.add_init_script(OBSERVE)
            cdp = page.context.new_cdp_session(page)
            cdp.send("Performance.enable")
            page.goto("http://127.0.0.1:%d/" % port)

            def heap_mb() -> float:
                cdp.send("HeapProfiler.collectGarbage")
                metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
                return metrics["JSHeapUsedSize"] / 1e6

            heap = []
            started = time.monotonic()
            page.wait_for_timeout(60_000)  # warm-up: charts full, the event list full
            heap.append((1, heap_mb()))
            t0, f0 = page.evaluate("[performance.now(), window.__frames]")
            page.wait_for_timeout(60_000)
            t1, f1 = page.evaluate("[performance.now(), window.__frames]")
            longs = page.evaluate("window.__long.filter(([s]) => s >= %f && s <= %f).map(([, d]) => d)" % (t0, t1))
            frames = f1 - f0
            heap.append((2, heap_mb()))
            minute = 3
            while time.monotonic() - started < args.minutes * 60:
                page.wait_for_timeout(max(0, int((started + minute * 60 - time.monotonic()) * 1000)))
                heap.append((minute, heap_mb()))
                minute += 1
            events_shown = page.locator("#events li").count()
            status = page.text_content("#status-text")
            browser.close()
    finally:
        stop.set()
        server.terminate()
        server.wait(10)
    fps = frames / ((t1 - t0) / 1000)
    lines = [
        "# The page under load", "",
        "`python bench/page.py --minutes %g` on %s, %d cores, Python %s, %s." % (
            args.minutes, time.strftime("%Y-%m-%d"), os.cpu_count(), sys.version.split()[0],
            subprocess.run([shutil.which("chromium"), "--version"], capture_output=True, text=True).stdout.strip()),
        "Load: 100 gauges updated once a second, 5 events a second (one in five a warning), 1 s samples.", "",
        "| in the 60 s window after a minute | value |", "| --- | --- |",
        "| long tasks over 50 ms | %d (longest %s) |" % (len(longs), "%.0f ms" % max(longs) if longs else "none"),
        "| frames per second (requestAnimationFrame) | %.1f |" % fps,
        "| status at the end | %s, %d events listed |" % (status, events_shown), "",
        "JS heap after a forced garbage collection, by minute:", "",
        "| minute | " + " | ".join(str(m) for m, _ in heap) + " |",
        "| --- | " + " | ".join("---" for _ in heap) + " |",
        "| MB | " + " | ".join("%.1f" % v for _, v in heap) + " |", "",
    ]
    text = "\n".join(lines)
    Path(args.out).write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
