"""Remake docs/desktop.png and docs/phone.png: `python docs/screenshots.py` (needs the test extras and chromium)."""

import shutil
import sys
import threading
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from sse_dashboard.app import build_app  # noqa: E402

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def main() -> None:
    server = build_app(port=0, demo=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    time.sleep(45)  # let the demo fill the charts and post some events (a picture, not a test)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=ARGS)
        for name, size in (("desktop", (1200, 900)), ("phone", (390, 844))):
            page = browser.new_page(viewport={"width": size[0], "height": size[1]})
            # A pinned gauge and a pinned counter, as someone would set them up.
            page.goto(server.url + ("?pin=gauges.queue_depth,counters.jobs_done:rate" if name == "desktop" else ""))
            page.wait_for_selector("#events li")
            page.wait_for_timeout(1500)
            page.screenshot(path=str(ROOT / "docs" / (name + ".png")), full_page=name == "desktop")
        browser.close()
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    main()
