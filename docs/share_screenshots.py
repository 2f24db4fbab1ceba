"""Remake docs/share-link.png and docs/share-kiosk.png: `python docs/share_screenshots.py` (needs the
test extras and chromium). A share link showing the system charts and the jobs, as its viewer sees it
(no token, nothing that writes), and a kiosk link on a wall screen (#26)."""

import json
import shutil
import sys
import threading
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from sse_dashboard.app import build_app  # noqa: E402

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
TOKEN = "screenshot-admin"


def post(server, path: str, body) -> dict:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(server.url.rstrip("/") + path, data=data, method="POST", headers={
        "Authorization": "Bearer " + TOKEN,
        "Content-Type": "application/json" if not isinstance(body, bytes) else "text/plain"})
    with urllib.request.urlopen(request) as answer:
        text = answer.read()
    return json.loads(text) if text[:1] == b"{" else {}


def main() -> None:
    server = build_app(port=0, demo=True, token=TOKEN, post_rate_per_s=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for slug, schedule in (("backup", 86400), ("invoices", 3600), ("cleanup", 600)):
        post(server, "/api/jobs", {"slug": slug, "schedule": schedule})
        post(server, "/ping/%s/%s" % (server.app.jobs.ping_key, slug), b"done")
    time.sleep(30)  # let the demo fill the charts (a picture, not a test)
    link = post(server, "/api/shares", {"sections": ["system", "jobs"], "name": "client"})
    kiosk = post(server, "/api/shares", {"sections": ["system", "metrics", "jobs"], "kiosk": True})
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=ARGS)
        for name, url, size in (("share-link", link["url"], (1200, 900)), ("share-kiosk", kiosk["url"], (1600, 900))):
            page = browser.new_page(viewport={"width": size[0], "height": size[1]})
            page.goto(server.url.rstrip("/") + url)
            page.wait_for_selector("#status-text:text('LIVE')")
            page.wait_for_timeout(2500)
            page.screenshot(path=str(ROOT / "docs" / (name + ".png")), full_page=name == "share-link")
        browser.close()
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    main()
