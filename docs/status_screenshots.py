"""Remake docs/status-page.png: `python docs/status_screenshots.py` (needs the test extras and
chromium). A status page as a client sees it, with no token (#26): a job that failed (its
incident open, with an admin's note), a heartbeat, an alert rule, a metric, and a maintenance
notice."""

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
from sse_dashboard.alerting.jobs import parse_jobs  # noqa: E402
from sse_dashboard.alerting.rules import AlertRule  # noqa: E402
from sse_dashboard.alerting.status import parse_status_pages  # noqa: E402
from sse_dashboard.app import build_app  # noqa: E402

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
TOKEN = "screenshot-admin"
PAGES = {"acme": {"title": "Acme services", "components": [
    {"kind": "job", "name": "backup", "label": "Nightly backup"},
    {"kind": "job", "name": "invoices", "label": "Invoice run"},
    {"kind": "heartbeat", "name": "web", "label": "Web site"},
    {"kind": "alert", "name": "queue_deep", "label": "Order queue"},
    {"kind": "metric", "name": "gauges.queue_depth", "label": "Orders waiting"}]}}


def call(server, method: str, path: str, body=None) -> dict:
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(server.url.rstrip("/") + path, data=data, method=method, headers={
        "Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"})
    with urllib.request.urlopen(request) as answer:
        text = answer.read()
    return json.loads(text) if text[:1] == b"{" else {}


def main() -> None:
    jobs = parse_jobs({"backup": {"schedule": 86400}, "invoices": {"schedule": 3600}})
    rules = [AlertRule(name="queue_deep", metric="gauges.queue_depth", op=">", threshold=100)]
    server = build_app(port=0, token=TOKEN, post_rate_per_s=0, interval_s=0.5, jobs=jobs, alert_rules=rules,
                       status_pages=parse_status_pages(PAGES))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    key = server.app.jobs.ping_key
    call(server, "GET", "/api/push/web")
    call(server, "POST", "/api/metrics", {"gauges": {"queue_depth": 12}})
    call(server, "GET", "/ping/%s/invoices" % key)
    call(server, "GET", "/ping/%s/backup/start" % key)
    time.sleep(1.2)
    call(server, "GET", "/ping/%s/backup/fail" % key)
    time.sleep(1.5)  # a sample or two: the incident opens
    view = server.app.status_pages.view("acme")[0]
    incident = view["incidents"][0]["id"]
    call(server, "POST", "/api/status-pages/acme/incidents/%s/notes" % incident,
         {"text": "The backup disk was full; space freed, a new run is on its way."})
    now = time.time()
    call(server, "POST", "/api/status-pages/acme/maintenance",
         {"start": now + 86400, "end": now + 86400 + 7200, "text": "Database upgrade: invoices may be late."})
    time.sleep(1.5)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(server.url.rstrip("/") + "/status/acme")
        page.wait_for_timeout(2500)
        page.screenshot(path=str(ROOT / "docs" / "status-page.png"), full_page=True)
        browser.close()
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    main()
