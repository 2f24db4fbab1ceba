"""A share link's page in a real headless Chromium (#26): only its sections, no control that
writes, every call carrying the link; the kiosk view (no controls, large type, sections in turn)."""

from __future__ import annotations

import pytest

import test_browser
from conftest import wait_until
from test_browser import wait_status

page = test_browser.page  # the fixture: a fresh context a test, console errors collected

pytestmark = pytest.mark.browser

ROOT_TOKEN = "browser-root"
ADMIN = {"Authorization": "Bearer " + ROOT_TOKEN}
WRITING_CONTROLS = ".metric-delete, #job-pause, #job-delete, #event-pause"


def make_link(server, *sections, **options):
    status, body = server.json("POST", "/api/shares", dict({"sections": list(sections)}, **options), ADMIN)
    assert status == 201, body
    return body


def visible(page, selector: str) -> bool:
    return page.evaluate("""(sel) => [...document.querySelectorAll(sel)].some(
        (e) => e.offsetParent !== null && getComputedStyle(e).visibility !== 'hidden')""", selector)


def test_a_share_link_shows_only_its_sections_and_nothing_that_writes(make_server, page):
    server = make_server(interval_s=0.5, token=ROOT_TOKEN, post_rate_per_s=0)
    server.json("POST", "/api/metrics", {"counters": {"orders_total_secret": 5}}, ADMIN)
    server.json("POST", "/api/jobs", {"slug": "backup", "schedule": 3600}, ADMIN)
    link = make_link(server, "system", "jobs")
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(server.url + link["url"])
    wait_status(page, "LIVE", timeout=3)
    wait_until(lambda: page.text_content("#memory") not in ("", "\u2014"), timeout=3, message="memory shown")
    wait_until(lambda: visible(page, "[data-section=jobs]") and "backup" in page.text_content("[data-section=jobs]"),
               timeout=3, message="the jobs section")
    assert visible(page, "[data-section=system]")
    for hidden in ("[data-section=app]", "[data-section=events]", "[data-section=processes]"):
        assert not visible(page, hidden), hidden
    assert "orders_total_secret" not in page.content()  # not hidden in the page: never sent to it
    assert not visible(page, WRITING_CONTROLS)
    api_calls = [url for url in requests if "/api/" in url]
    assert api_calls and all("share=" + link["id"] in url for url in api_calls), api_calls
    assert page.console_errors == []


def test_the_kiosk_view_has_no_controls_large_type_and_shows_sections_in_turn(make_server, page):
    server = make_server(interval_s=0.5, token=ROOT_TOKEN, post_rate_per_s=0)
    server.json("POST", "/api/jobs", {"slug": "backup", "schedule": 3600}, ADMIN)
    link = make_link(server, "system", "metrics", "jobs", kiosk=True)
    page.goto(server.url + link["url"] + "?every=1")
    wait_status(page, "LIVE", timeout=3)
    assert page.evaluate("document.documentElement.classList.contains('kiosk')")
    assert not visible(page, "header button, main button, main input, main select, main summary")
    size = page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
    assert size >= 20, size
    wait_until(lambda: page.text_content("#memory") not in ("", "\u2014") and visible(page, "#memory"), timeout=3,
               message="the values that open a chart elsewhere shown as values")

    def shown():
        return page.evaluate("""() => [...document.querySelectorAll('[data-section]')]
            .filter((e) => e.offsetParent !== null).map((e) => e.dataset.section).join(',')""")

    first = wait_until(lambda: shown() if "," not in shown() and shown() else None, timeout=3, message="one section")
    wait_until(lambda: shown() not in ("", first) and "," not in shown(), timeout=4, message="the next section")
    assert page.console_errors == []


def test_kiosk_1_in_the_address_turns_any_link_into_a_kiosk(make_server, page):
    server = make_server(interval_s=0.5, token=ROOT_TOKEN, post_rate_per_s=0)
    link = make_link(server, "system")
    page.goto(server.url + link["url"] + "?kiosk=1")
    wait_status(page, "LIVE", timeout=3)
    assert page.evaluate("document.documentElement.classList.contains('kiosk')")
    assert page.console_errors == []
