"""A status page (#26) in a real headless Chromium: readable with JavaScript off, live with it on
(a job failing shows at once and opens an incident that resolves), and no serious or critical
axe-core violation in either theme."""

from __future__ import annotations

import pytest

from conftest import require_tool, wait_until
from sse_dashboard.alerting.jobs import parse_jobs
from sse_dashboard.alerting.status import parse_status_pages
from test_browser import AXE

pytestmark = pytest.mark.browser

PAGES = {"public": {"title": "Acme services", "components": [
    {"kind": "job", "name": "backup", "label": "Nightly backup"},
    {"kind": "heartbeat", "name": "web", "label": "Web site"},
    {"kind": "metric", "name": "gauges.queue_depth", "label": "Queue"}],
    "maintenance": [{"start": 4102444800, "end": 4102452000, "text": "Database upgrade"}]}}


@pytest.fixture
def dash(make_server):
    server = make_server(interval_s=0.2, jobs=parse_jobs({"backup": {"schedule": 3600}}),
                         status_pages=parse_status_pages(PAGES))
    server.job_id = server.json("GET", "/api/jobs")[1]["jobs"][0]["id"]
    return server


def open_page(browser, url, **options):
    context = browser.new_context(**options)
    page = context.new_page()
    page.console_errors = []
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
    page.on("pageerror", lambda e: page.console_errors.append(str(e)))
    page.goto(url)
    return context, page


def test_without_javascript_the_page_shows_every_component_and_its_state(dash, browser):
    dash.request("GET", "/ping/%s" % dash.job_id)
    wait_until(lambda: b"Operational" in dash.request("GET", "/status/public")[2], message="backup up")
    context, page = open_page(browser, dash.url + "/status/public", java_script_enabled=False)
    try:
        labels = page.locator("#components .label").all_text_contents()
        states = page.locator("#components .state").all_text_contents()
        assert labels == ["Nightly backup", "Web site", "Queue"]
        assert states[0] == "Operational" and states[1] == "No data"
        assert page.locator("#components .bars").nth(0).locator("li").count() == 90
        assert page.is_visible("text=Database upgrade")
        assert page.text_content("#live") == "(not live: reload to update)"
    finally:
        context.close()


def test_a_failing_job_shows_live_and_opens_an_incident_that_resolves(dash, browser):
    dash.request("GET", "/ping/%s" % dash.job_id)
    context, page = open_page(browser, dash.url + "/status/public")
    try:
        wait_until(lambda: page.text_content("#live") == "(live)", message="the page live")
        wait_until(lambda: page.locator("#components .state").first.text_content() == "Operational",
                   message="backup operational")
        assert dash.request("GET", "/ping/%s/fail" % dash.job_id)[0] == 200
        wait_until(lambda: page.text_content("#overall") == "Some systems are down", message="the page says so live")
        assert page.locator("#components .state").first.text_content() == "Down"
        incident = page.locator("#incidents .incident")
        wait_until(lambda: incident.count() == 1 and incident.locator(".incident-status").text_content() == "ongoing",
                   message="an ongoing incident")
        assert dash.request("GET", "/ping/%s" % dash.job_id)[0] == 200
        wait_until(lambda: incident.locator(".incident-status").text_content().startswith("resolved"),
                   message="the incident resolved, live")
        assert "Nightly backup is up again" in incident.text_content()
        assert page.text_content("#overall") == "All systems operational"
        assert page.console_errors == []
    finally:
        context.close()


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_axe_finds_no_serious_or_critical_violation_on_a_status_page(dash, browser, theme):
    from test_subscriptions import npm_install

    npm_install()
    require_tool(AXE.is_file(), "axe-core (npm install --prefix tests/js)")
    dash.request("GET", "/ping/%s" % dash.job_id)
    dash.request("GET", "/ping/%s/fail" % dash.job_id)  # an incident on the page, and a red bar
    context, page = open_page(browser, dash.url + "/status/public", color_scheme=theme)
    try:
        wait_until(lambda: page.locator("#incidents .incident").count() == 1, message="the incident shown")
        page.evaluate(AXE.read_text(encoding="utf-8"))  # evaluated, not a <script>: the page's CSP stays strict
        check = ("axe.run(document).then(r => r.violations.map(v => ({id: v.id, impact: v.impact,"
                 " nodes: v.nodes.map(n => n.target.join(' '))})))")
        bad = [v for v in page.evaluate(check) if v["impact"] in ("serious", "critical")]
        assert bad == [], bad
    finally:
        context.close()
