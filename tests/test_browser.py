"""The page in a real headless Chromium (Debian's chromium, driven by Playwright)."""

from __future__ import annotations

import time

import pytest

from conftest import chromium_path, require_tool, wait_until

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    # This machine has no network: without these Chromium keeps dialling out.
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    require_tool(sync_playwright is not None, "playwright (pip install -e .[test])")
    executable = chromium_path()
    require_tool(executable is not None, "chromium (apt-get install -y chromium)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.console_errors = []
    page.dialogs = []
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
    page.on("pageerror", lambda e: page.console_errors.append(str(e)))

    def on_dialog(dialog):
        page.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    yield page
    context.close()


def status_text(page) -> str:
    return page.text_content("#status-text") or ""


def wait_status(page, text: str, timeout: float):
    wait_until(lambda: status_text(page) == text, timeout=timeout,
               message="status %r (it shows %r)" % (text, status_text(page)))


def test_page_goes_live_without_console_errors_and_values_change(make_server, page):
    server = make_server(interval_s=0.5)
    server.json("POST", "/api/metrics", {"counters": {"jobs_done": 1}, "gauges": {"queue_depth": 3}})
    page.goto(server.url + "/")
    wait_status(page, "LIVE", timeout=2)
    assert "sse-dashboard" in page.title() and "\u2715" not in page.title()
    first = page.text_content("#server-uptime")
    wait_until(lambda: page.text_content("#server-uptime") != first, timeout=3, message="values to change")
    wait_until(lambda: page.text_content("#counters") == "jobs_done1", timeout=2, message="counter row")
    server.json("POST", "/api/metrics", {"gauges": {"new_gauge": 42}})
    wait_until(lambda: "new_gauge42" in page.text_content("#gauges"), timeout=3, message="a new gauge row")
    assert page.text_content("#memory") not in ("", "\u2014")
    assert page.console_errors == []


def test_posted_event_appears_within_a_second_as_literal_text(make_server, page):
    server = make_server(interval_s=0.5)
    page.goto(server.url + "/")
    wait_status(page, "LIVE", timeout=2)
    hostile = '<img src=x onerror=alert(1)><script>alert(2)</script>'
    posted = time.monotonic()
    server.json("POST", "/api/events", {"message": hostile, "level": "error", "source": "<b>src</b>"})
    page.wait_for_selector("#events li", timeout=1000)
    assert time.monotonic() - posted < 1.0 + 0.2
    item = page.locator("#events li").first
    assert item.locator(".event-message").text_content() == hostile
    assert item.locator(".event-source").text_content() == "<b>src</b>"
    assert "level-error" in item.get_attribute("class")
    assert page.locator("#events img, #events script, #events b").count() == 0
    assert page.dialogs == []


def test_events_show_newest_first_and_at_most_ten(make_server, page):
    server = make_server(interval_s=0.5)
    for i in range(12):
        server.json("POST", "/api/events", {"message": "m%d" % i})
    page.goto(server.url + "/")
    wait_until(lambda: page.locator("#events li").count() == 10, timeout=3, message="10 events")
    messages = page.locator("#events .event-message").all_text_contents()
    assert messages[0] == "m11" and messages[-1] == "m2"


def test_stopped_server_shows_disconnected_and_a_restart_reconnects_with_missed_events(make_server, page):
    server = make_server(interval_s=0.5)
    port = server.port
    page.goto(server.url + "/")
    wait_status(page, "LIVE", timeout=2)
    server.stop()
    wait_status(page, "DISCONNECTED", timeout=10)
    assert page.title().startswith("\u2715")
    restarted = make_server(interval_s=0.5, port=port)
    restarted.json("POST", "/api/events", {"message": "posted while you were away"})
    wait_status(page, "LIVE", timeout=10)
    wait_until(lambda: "posted while you were away" in page.text_content("#events"), timeout=5,
               message="the missed event")


def test_without_eventsource_the_page_polls_every_two_seconds(make_server, page):
    server = make_server(interval_s=0.5)
    requests = []
    page.on("request", lambda r: r.url.endswith("/api/metrics") and requests.append(time.monotonic()))
    page.add_init_script("delete window.EventSource;")
    page.goto(server.url + "/")
    wait_status(page, "POLLING", timeout=3)
    server.json("POST", "/api/events", {"message": "seen by polling"})
    wait_until(lambda: "seen by polling" in page.text_content("#events"), timeout=4, message="polled event")
    # page.evaluate() lets Playwright deliver the queued "request" callbacks.
    wait_until(lambda: page.evaluate("0") == 0 and len(requests) >= 4, timeout=10, message="4 polls")
    gaps = [b - a for a, b in zip(requests, requests[1:])]
    assert all(1.5 < g < 2.8 for g in gaps), gaps
    assert page.console_errors == []


def test_phone_viewport_does_not_scroll_sideways(make_server, browser):
    server = make_server(interval_s=0.5)
    server.json("POST", "/api/metrics", {"gauges": {"a_really_long_gauge_name_" * 4: 1e15}})
    server.json("POST", "/api/events", {"message": "x" * 500, "source": "s" * 100})
    context = browser.new_context(viewport={"width": 390, "height": 844})
    try:
        page = context.new_page()
        page.goto(server.url + "/")
        wait_status(page, "LIVE", timeout=2)
        page.wait_for_selector("#events li")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, width
    finally:
        context.close()
