"""The fleet page in a real headless Chromium, against a real Prometheus 2.42 (#25): ten dashboards
push to it, one of them is stopped, and the page of the one with ``--fleet`` lists all ten, the
stopped one first and flagged, each name a link to that dashboard's own page."""

from __future__ import annotations

import pytest

from conftest import wait_until
from sse_dashboard.fleet.view import FleetSettings
from test_remote_write import prometheus  # noqa: F401  (the fixture: a Prometheus with its receiver on)

pytestmark = pytest.mark.browser

STALE_S = 2.0  # short, so the stopped dashboard is flagged without waiting the default minute
NAMES = ["fleet-%02d" % i for i in range(8)] + ["odd.name+(1)|x", "<img src=x onerror=alert(1)>"]


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.console_errors = []
    page.dialogs = []
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
    page.on("pageerror", lambda e: page.console_errors.append(str(e)))
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    yield page
    context.close()


def listing(running) -> dict:
    return running.json("GET", "/api/fleet")[1]


def test_ten_dashboards_pushing_to_prometheus_are_listed_the_stopped_one_first_and_flagged(make_server, prometheus,
                                                                                            page):
    write = (prometheus + "/api/v1/write",)
    # In-process dashboards (a thread each for sampling, streams and pushing), history in memory:
    # ten cost little on two cores. The first also shows the fleet.
    dashboards = [make_server(interval_s=0.5, remote_write=write, instance=name,
                              **({"fleet": FleetSettings(prometheus, stale_s=STALE_S)} if i == 0 else {}))
                  for i, name in enumerate(NAMES)]
    viewer, stopped = dashboards[0], dashboards[3]
    urls = {name: running.url + "/" for name, running in zip(NAMES, dashboards)}

    def all_fresh():
        rows = listing(viewer)["instances"]
        return len(rows) == 10 and not any(r["stale"] for r in rows)

    wait_until(all_fresh, timeout=20, message="ten fresh instances on /api/fleet", interval=0.2)
    stopped.stop()
    wait_until(lambda: [r["instance"] for r in listing(viewer)["instances"] if r["stale"]] == [NAMES[3]],
               timeout=15, message="the stopped dashboard flagged", interval=0.2)

    page.goto(viewer.url + "/fleet")
    wait_until(lambda: page.text_content("#status-text") == "LIVE", timeout=5, message="the page live")
    rows = page.locator("#fleet tr")
    wait_until(lambda: rows.count() == 10, timeout=5, message="ten rows")
    first = rows.nth(0)
    assert first.get_attribute("data-instance") == NAMES[3]
    assert first.locator(".fleet-state").text_content() == "silent"
    assert "fleet-stale" in first.get_attribute("class")
    assert page.locator("#fleet tr.fleet-stale").count() == 1
    shown = {}
    for i in range(10):
        link = rows.nth(i).locator("th a")
        shown[link.text_content()] = link.get_attribute("href")
    assert shown == urls  # each name, as text, links to that dashboard's own page
    assert page.locator("#fleet img").count() == 0 and page.dialogs == []
    assert "10 instances, 1 silent" in page.text_content("#fleet-summary")
    assert page.text_content("#engine").endswith("answering")
    # The sparkline has the points Prometheus gave for the last hour (at least the newest).
    assert rows.nth(1).locator("polyline").get_attribute("points")
    assert page.console_errors == []
    # The local page links to the fleet page.
    page.goto(viewer.url + "/")
    page.wait_for_selector("#fleet-link", state="visible", timeout=5000)
    assert page.get_attribute("#fleet-link", "href") == "/fleet"


def test_an_engine_that_is_down_shows_on_the_fleet_page_and_the_local_page_stays_live(make_server, page):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        refused = "http://127.0.0.1:%d" % sock.getsockname()[1]
    running = make_server(interval_s=0.5, fleet=FleetSettings(refused, timeout_s=0.5, refresh_s=0.5))
    page.goto(running.url + "/fleet")
    wait_until(lambda: "DOWN" in (page.text_content("#engine") or ""), timeout=5, message="the engine shown down")
    assert "refused" in page.text_content("#engine")
    assert page.text_content("#status-text") == "LIVE"  # our own stream is fine: only the engine is down
    assert page.locator("#fleet tr").count() == 0
    page.goto(running.url + "/")
    wait_until(lambda: page.text_content("#status-text") == "LIVE", timeout=5, message="the local page live")
    assert page.is_visible("#fleet-link")
    assert page.console_errors == []


def test_the_fleet_page_without_fleet_says_how_to_start_it(server, page):
    page.goto(server.url + "/fleet")
    page.wait_for_selector("#no-fleet", state="visible", timeout=5000)
    assert "--fleet URL" in page.text_content("#no-fleet")
    page.goto(server.url + "/")
    page.wait_for_selector("#status-text:text('LIVE')", timeout=5000)
    assert page.is_hidden("#fleet-link")
