"""The page in a real headless Chromium (Debian's chromium, driven by Playwright)."""

from __future__ import annotations

import time

import pytest

from conftest import ROOT, require_tool, wait_until

pytestmark = pytest.mark.browser

@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.console_errors = []
    page.dialogs = []
    page.dialog_answers = []  # what the next confirm()s answer (True: OK); when none are left, Cancel
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
    page.on("pageerror", lambda e: page.console_errors.append(str(e)))

    def on_dialog(dialog):
        page.dialogs.append(dialog.message)
        dialog.accept() if page.dialog_answers and page.dialog_answers.pop(0) else dialog.dismiss()

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
    wait_until(lambda: page.text_content("#counters tr[data-name=jobs_done] .value") == "1", timeout=2,
               message="counter row")
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


def test_a_stream_held_back_by_a_buffering_proxy_falls_back_to_polling_then_recovers(make_server, page):
    from proxy import BufferingProxy

    server = make_server(interval_s=0.5)
    proxy = BufferingProxy((server.host, server.port))
    try:
        page.goto(proxy.url + "/")
        wait_status(page, "POLLING", timeout=8)  # open but silent for 3 s: stalled
        server.json("POST", "/api/events", {"message": "through the poll"})
        wait_until(lambda: "through the poll" in page.text_content("#events"), timeout=4, message="polled event")
        proxy.holding = False  # the proxy stops buffering: the background retry wins
        wait_status(page, "LIVE", timeout=10)
    finally:
        proxy.close()


def test_charts_are_seeded_from_history_so_a_reload_is_never_empty(make_server, page):
    server = make_server(interval_s=0.2)
    wait_until(lambda: server.server.sampler.seq >= 20, message="20 samples")
    points = lambda: int(page.get_attribute("#chart-memory", "data-points") or 0)  # noqa: E731
    for _ in range(2):  # first load, then a reload
        page.goto(server.url + "/")
        wait_status(page, "LIVE", timeout=2)
        seq_at_load = server.server.sampler.seq
        wait_until(lambda: points() > 0, timeout=2, message="chart drawn")
        # Far more points than live frames since load: they came from /history.
        assert points() >= 2 * 15, (points(), seq_at_load)


def test_hovering_a_chart_shows_time_and_values(make_server, page):
    server = make_server(interval_s=0.2)
    page.goto(server.url + "/")
    wait_status(page, "LIVE", timeout=2)
    wait_until(lambda: int(page.get_attribute("#chart-cpu", "data-points") or 0) > 3 * 8, timeout=4, message="8 samples")
    box = page.locator("#chart-cpu").bounding_box()
    page.hover("#chart-cpu", position={"x": box["width"] - 3, "y": 40})  # the newest point
    tip = page.locator("#chart-cpu + .chart-tip")
    wait_until(lambda: tip.is_visible(), timeout=2, message="tooltip")
    text = tip.text_content()
    assert "total:" in text and "core 0:" in text and "%" in text and ":" in text.splitlines()[0]


def test_clicking_a_metric_opens_a_larger_chart(make_server, page, tmp_path):
    # Two seconds at full resolution, pruned often: roll-ups exist within seconds.
    server = make_server(interval_s=0.2, data_dir=tmp_path, storage_options={"full_s": 2.0, "prune_every_s": 0.2})
    for value in (1, 5, 3):
        server.json("POST", "/api/metrics", {"gauges": {"queue_depth": value}})
        wait_until(lambda: server.server.registry.snapshot()[1]["queue_depth"] == value, message="gauge set")
    page.goto(server.url + "/")
    page.click("#gauges >> text=queue_depth")
    dialog = page.locator("#detail")
    wait_until(lambda: dialog.is_visible(), timeout=2, message="dialog")
    assert page.text_content("#detail-title") == "queue_depth"
    wait_until(lambda: int(page.get_attribute("#detail-canvas", "data-points") or 0) > 0, timeout=3,
               message="points in the big chart")
    page.click("[data-range='3600']")  # a longer range comes from the server's history
    wait_until(lambda: page.get_attribute("[data-range='3600']", "aria-pressed") == "true", timeout=2,
               message="1 hour selected")
    wait_until(lambda: int(page.get_attribute("#detail-canvas", "data-points") or 0) > 0, timeout=3,
               message="points over the hour")
    wait_until(lambda: server.server.store.database.query(
        "SELECT COUNT(*) FROM rollups JOIN series ON series.id = rollups.series "
        "WHERE series.name = 'gauges.queue_depth'", ())[0][0] > 0, timeout=10, message="samples rolled up")
    page.click("[data-range='86400']")  # a day: one-minute roll-ups, with their min-max band
    wait_until(lambda: "min\u2013max band" in (page.text_content("#detail-note") or ""), timeout=3,
               message="the roll-up note")
    assert "averages per 1m" in page.text_content("#detail-note")
    wait_until(lambda: page.get_attribute("#detail-canvas", "data-band") == "1", timeout=3, message="band drawn")
    page.click("#detail-close")
    wait_until(lambda: not dialog.is_visible(), timeout=2, message="dialog closed")


def test_counters_show_total_and_rate(make_server, page):
    server = make_server(interval_s=0.2)
    page.goto(server.url + "/")
    wait_status(page, "LIVE", timeout=2)
    for _ in range(8):
        seq = server.server.sampler.seq
        server.json("POST", "/api/metrics", {"counters": {"requests": 10}})
        wait_until(lambda: server.server.sampler.seq > seq, message="next sample")
    row = page.locator("#counters tr[data-name=requests]")
    wait_until(lambda: row.locator(".value").text_content() == "80", timeout=3, message="total 80")
    rate = row.locator(".rate").text_content()
    assert rate.endswith("/s") and rate != "\u2014", rate


def test_event_filters_search_pause_and_alert_badge(make_server, page):
    server = make_server(interval_s=0.5)
    page.goto(server.url + "/")
    wait_status(page, "LIVE", timeout=2)
    for level, message in [("info", "disk fine"), ("warning", "disk slow"), ("error", "net down"), ("info", "net up")]:
        server.json("POST", "/api/events", {"message": message, "level": level})
    messages = lambda: page.locator("#events .event-message").all_text_contents()  # noqa: E731
    wait_until(lambda: len(messages()) == 4, timeout=2, message="4 events")
    assert page.text_content("#alert-badge") == "2 alerts" and "(2)" in page.title()
    page.select_option("#event-level", "error")
    assert messages() == ["net down"]
    page.select_option("#event-level", "")
    page.fill("#event-search", "DISK")
    assert messages() == ["disk slow", "disk fine"]
    page.fill("#event-search", "")
    page.click("#event-pause")
    server.json("POST", "/api/events", {"message": "while paused"})
    wait_until(lambda: "waiting" in page.text_content("#pause-note"), timeout=2, message="pause note")
    assert "while paused" not in messages()
    page.click("#event-pause")
    assert messages()[0] == "while paused"
    page.click("#alert-badge")
    assert page.locator("#alert-badge").is_hidden() and "(" not in page.title()


def test_theme_follows_the_system_and_a_choice_is_remembered(make_server, browser):
    server = make_server(interval_s=0.5)
    context = browser.new_context(color_scheme="dark")
    try:
        page = context.new_page()
        page.goto(server.url + "/")
        theme = lambda: page.evaluate("document.documentElement.dataset.theme")  # noqa: E731
        wait_until(lambda: theme() == "dark", timeout=2, message="dark by default")
        page.click("#theme-toggle")
        assert theme() == "light"
        page.reload()
        wait_until(lambda: theme() == "light", timeout=2, message="remembered light")
    finally:
        context.close()


def test_eight_tabs_share_one_stream_and_all_update(make_server, browser):
    server = make_server(interval_s=0.5)
    context = browser.new_context()
    try:
        pages = []
        for _ in range(8):
            p = context.new_page()
            p.goto(server.url + "/")
            pages.append(p)
        for p in pages:
            wait_status(p, "LIVE", timeout=5)
        roles = lambda: [p.evaluate("document.documentElement.dataset.streamRole") for p in pages]  # noqa: E731
        assert sorted(roles()) == ["follower"] * 7 + ["leader"]
        wait_until(lambda: server.json("GET", "/api/health")[1]["clients"] == 1, timeout=5, message="one stream")

        def all_update(tabs):
            before = [p.text_content("#server-uptime") for p in tabs]
            wait_until(lambda: all(p.text_content("#server-uptime") != b for p, b in zip(tabs, before)),
                       timeout=5, message="every tab to update")

        all_update(pages)
        server.json("POST", "/api/events", {"message": "to every tab"})
        for p in pages:
            wait_until(lambda: "to every tab" in p.text_content("#events"), timeout=3, message="event in each tab")
        leader = pages[roles().index("leader")]
        pages.remove(leader)
        leader.close()
        wait_until(lambda: roles().count("leader") == 1, timeout=5, message="a new leader")
        wait_until(lambda: server.json("GET", "/api/health")[1]["clients"] == 1, timeout=5, message="one stream again")
        all_update(pages)
    finally:
        context.close()


HOSTILE_EVENTS = [
    {"message": "<script>alert(1)</script><img src=x onerror=alert(2)>", "source": "<b onmouseover=alert(3)>x</b>"},
    {"message": "W" * 4096, "source": "s" * 100},
    {"message": "\u202eevil.exe\u202c \u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627 right-to-left", "level": "warning"},
    {"message": "\U0001F680\U0001F525\U0001F4A5 " * 50 + "\u200b" * 100, "level": "error",
     "data": {"html": "<iframe src=javascript:alert(4)>", "n": [1, 2, 3]}},
    {"message": "line one\nline two\r\n<hr>", "source": "\u0000nul?"[1:]},
]


@pytest.mark.parametrize("width", [1200, 390])
def test_hostile_text_shows_as_text_and_never_breaks_the_layout(make_server, browser, width):
    server = make_server(interval_s=0.5)
    for event in HOSTILE_EVENTS:
        assert server.json("POST", "/api/events", event)[0] == 201
    assert server.json("POST", "/api/metrics", {"gauges": {"<b>x</b>": 1}})[0] == 400  # names are checked
    server.json("POST", "/api/metrics", {"gauges": {"g" * 200: 1e300}, "counters": {"c" * 200: 1e15}})
    context = browser.new_context(viewport={"width": width, "height": 900})
    try:
        page = context.new_page()
        errors, dialogs = [], []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(server.url + "/")
        wait_status(page, "LIVE", timeout=3)
        wait_until(lambda: page.locator("#events li").count() == len(HOSTILE_EVENTS), timeout=3, message="events")
        messages = page.locator("#events .event-message").all_text_contents()
        assert messages[-1] == HOSTILE_EVENTS[0]["message"]
        assert page.locator("#events .event-source").all_text_contents()[-1] == HOSTILE_EVENTS[0]["source"]
        assert page.locator("#events script, #events img, #events iframe, #events b, #events hr").count() == 0
        page.mouse.move(10, 10)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        assert dialogs == [] and errors == []
    finally:
        context.close()


def test_a_token_server_shows_how_to_get_in_and_then_works(make_server, page):
    server = make_server(interval_s=0.5, token="s3cret")
    page.goto(server.url + "/")
    wait_until(lambda: page.locator("#auth-note").is_visible(), timeout=5, message="the token note")
    page.goto(server.url + "/?token=s3cret")
    assert page.url == server.url + "/"  # the token left the address bar
    wait_status(page, "LIVE", timeout=3)
    assert page.locator("#auth-note").is_hidden()


def test_a_firing_alert_shows_as_banner_and_badge_until_resolved(make_server, page):
    from sse_dashboard.alerting.rules import parse_rules

    rules = parse_rules({"rules": [{"name": "queue_deep", "metric": "gauges.q", "op": ">", "threshold": 10,
                                    "level": "error", "message": "<b>queue</b> deep"}]})
    server = make_server(interval_s=0.2, alert_rules=rules)
    page.goto(server.url + "/")
    wait_status(page, "LIVE", timeout=2)
    assert page.locator("#alerts-banner").is_hidden()
    server.json("POST", "/api/metrics", {"gauges": {"q": 50}})
    wait_until(lambda: page.locator("#alerts-banner").is_visible(), timeout=3, message="the banner")
    assert page.text_content("#firing-badge") == "1 firing"
    item = page.text_content("#alerts-list li")
    assert "queue_deep" in item and "<b>queue</b> deep" in item and "ERROR" in item
    server.json("POST", "/api/metrics", {"gauges": {"q": 1}})
    wait_until(lambda: page.locator("#alerts-banner").is_hidden(), timeout=3, message="resolved")
    assert page.locator("#firing-badge").is_hidden()


def test_the_delete_button_removes_a_metric_after_asking(make_server, browser):
    server = make_server(interval_s=0.2)
    server.json("POST", "/api/metrics", {"counters": {"jobs": 3}, "gauges": {"depth": 5}})
    context = browser.new_context()
    page = context.new_page()
    answers = iter([False, True])  # first "Cancel", then "OK"
    asked = []

    def on_dialog(dialog):
        asked.append(dialog.message)
        dialog.accept() if next(answers) else dialog.dismiss()

    page.on("dialog", on_dialog)
    try:
        page.goto(server.url + "/")
        button = page.locator('#gauges tr[data-name="depth"] button.metric-delete')
        button.wait_for(timeout=3000)
        assert button.get_attribute("aria-label") == "delete gauge depth"
        button.click()
        wait_until(lambda: asked, message="the question")
        assert "depth" in asked[0] and server.server.registry.snapshot()[1] == {"depth": 5}  # cancelled: kept
        button.click()
        wait_until(lambda: server.server.registry.snapshot()[1] == {}, message="deleted on the server")
        wait_until(lambda: page.locator('#gauges tr[data-name="depth"]').count() == 0, message="row gone")
        assert page.locator('#counters tr[data-name="jobs"]').count() == 1
    finally:
        context.close()


def test_the_page_says_demo_and_lists_rules_waiting_for_data(make_server, page):
    from sse_dashboard.alerting.rules import AlertRule

    server = make_server(interval_s=0.2, demo=True,
                         alert_rules=[AlertRule(name="slow_queue", metric="gauges.never_posted", op=">", threshold=1)])
    page.goto(server.url + "/")
    wait_status(page, "LIVE", timeout=3)
    wait_until(lambda: page.is_visible("#demo-note"), message="demo note")
    wait_until(lambda: "slow_queue (gauges.never_posted)" in (page.text_content("#alerts-waiting") or ""),
               message="waiting rule")
    plain = make_server(interval_s=0.2)
    page.goto(plain.url + "/")
    wait_status(page, "LIVE", timeout=3)
    assert not page.is_visible("#demo-note") and not page.is_visible("#alerts-waiting")


def test_the_page_lists_heartbeats_with_their_age(make_server, page):
    server = make_server(interval_s=0.3)
    page.goto(server.url + "/")
    wait_status(page, "LIVE", timeout=3)
    assert page.locator("#heartbeats-section").is_hidden()
    server.json("GET", "/api/push/backup?every=3600&msg=%3Cb%3E42%20files%3C%2Fb%3E")
    server.json("GET", "/api/push/deploy?status=down&msg=exit%203")
    row = page.locator("#heartbeats tr[data-name=backup]")
    row.wait_for(timeout=3000)
    assert row.locator("td").nth(0).text_content() == "up"
    assert row.locator("td").nth(1).text_content().endswith("ago")
    assert row.locator("td").nth(2).text_content() == "1h 0m"
    assert row.locator("td").nth(3).text_content() == "<b>42 files</b>"
    down = page.locator("#heartbeats tr[data-name=deploy] td").nth(0)
    wait_until(lambda: down.get_attribute("class") == "beat-bad", timeout=3, message="down shown as bad")
    assert page.console_errors == []


WATCH_NOTIFICATIONS = """(() => {
  // Observe the real Notification API (it still runs): what was shown, and permission requests.
  const Real = window.Notification;
  window.__shown = [];
  window.__asked = 0;
  class Watched extends Real {
    constructor(title, options) { super(title, options); window.__shown.push({ title, body: options && options.body }); }
    static requestPermission() { window.__asked++; return Real.requestPermission(); }
  }
  window.Notification = Watched;
})()"""


def test_desktop_notifications_are_offered_never_forced_and_fire_once_per_alert(make_server, browser):
    from sse_dashboard.alerting.rules import parse_rules

    rules = parse_rules({"rules": [{"name": "queue_long", "metric": "gauges.q", "op": ">", "threshold": 5,
                                    "level": "error", "message": "the queue is long"}]})
    server = make_server(alert_rules=rules, interval_s=0.3)
    context = browser.new_context()
    context.grant_permissions(["notifications"], origin=server.url)
    page = context.new_page()
    page.add_init_script(WATCH_NOTIFICATIONS)
    try:
        page.goto(server.url + "/")
        wait_status(page, "LIVE", timeout=3)
        toggle = page.locator("#notify-toggle")
        assert toggle.text_content() == "Desktop alerts: off" and page.evaluate("window.__asked") == 0
        toggle.click()
        wait_until(lambda: toggle.text_content() == "Desktop alerts: on", timeout=3, message="turned on")
        assert toggle.get_attribute("aria-pressed") == "true"
        server.json("POST", "/api/metrics", {"gauges": {"q": 10}})
        wait_until(lambda: page.evaluate("window.__shown.length") == 1, timeout=5, message="one notification")
        shown = page.evaluate("window.__shown")[0]
        assert shown == {"title": "sse-dashboard: queue_long", "body": "ERROR: the queue is long"}
        wait_until(lambda: "1 firing" in page.title(), timeout=3, message="the count in the title")
        assert page.get_attribute("#favicon", "href").startswith("data:image/svg+xml,")
        seq = server.server.sampler.seq
        wait_until(lambda: server.server.sampler.seq >= seq + 3, message="more samples")
        assert page.evaluate("window.__shown.length") == 1  # still firing: no second one
        server.json("POST", "/api/metrics", {"gauges": {"q": 1}})
        wait_until(lambda: "firing" not in page.title(), timeout=3, message="resolved in the title")
        assert page.get_attribute("#favicon", "href") == "/static/favicon.svg"
        page.reload()  # remembered, and still nothing asked of the person
        wait_status(page, "LIVE", timeout=3)
        assert page.locator("#notify-toggle").text_content() == "Desktop alerts: on"
        assert page.evaluate("window.__asked") == 0
    finally:
        context.close()


def test_the_page_lists_filesystems_and_hides_virtual_interfaces_until_asked(make_server, page):
    running = make_server(interval_s=0.3)
    page.goto(running.url + "/")
    rows = page.locator("#filesystems tr")
    wait_until(lambda: rows.count() >= 1, timeout=5, message="filesystem rows")
    mounts = [rows.nth(i).locator("th").text_content() for i in range(rows.count())]
    assert "/" in mounts
    visible = page.locator("#interfaces tr:not([hidden])")
    wait_until(lambda: page.locator("#interfaces tr").count() >= 1, timeout=5, message="interface rows")
    assert "lo" not in [visible.nth(i).locator("th").text_content() for i in range(visible.count())]
    page.check("#show-virtual")
    wait_until(lambda: "lo" in [visible.nth(i).locator("th").text_content() for i in range(visible.count())],
               timeout=3, message="lo shown when asked")


def test_the_top_processes_panel_lists_a_process_the_test_started(make_server, page):
    import subprocess
    import sys

    busy = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 60\nwhile time.time() < end: pass"])
    try:
        server = make_server(interval_s=0.5)
        page.goto(server.url + "/")
        wait_status(page, "LIVE", timeout=3)
        assert server.server.processes._previous is None  # closed panel: nobody has read the table
        page.click("#processes-panel summary")
        wait_until(lambda: str(busy.pid) in page.text_content("#processes-cpu"), timeout=10,
                   message="the busy process in the panel")
        assert "processes; CPU over the last" in page.text_content("#processes-note")
        assert page.console_errors == []
    finally:
        busy.kill()
        busy.wait(10)


AXE = ROOT / "tests" / "js" / "node_modules" / "axe-core" / "axe.min.js"


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_axe_finds_no_serious_or_critical_violation(make_server, browser, theme):
    from sse_dashboard.alerting.rules import parse_rules
    from test_subscriptions import npm_install

    npm_install()
    require_tool(AXE.is_file(), "axe-core (npm install --prefix tests/js)")
    from sse_dashboard.alerting.jobs import parse_jobs

    rules = parse_rules({"rules": [{"name": "q", "metric": "gauges.q", "op": ">", "threshold": 1, "level": "error"}]})
    jobs = parse_jobs({"nightly": {"schedule": 3600, "min_runtime": 60}, "report": {"schedule": 600}})
    server = make_server(interval_s=0.3, alert_rules=rules, demo=True, jobs=jobs)
    server.json("POST", "/api/metrics", {"gauges": {"q": 5}})
    server.json("GET", "/api/push/backup?status=down&msg=disk%20full")
    job = server.json("GET", "/api/jobs/nightly")[1]["id"]
    for end in ("", "/3", ""):  # too fast, failed, and one still running
        server.request("POST", "/ping/%s/start" % job)
        server.request("POST", "/ping/%s%s" % (job, end), body=b"some output")
    server.request("POST", "/ping/%s/start" % job)
    for level in ("info", "warning", "error"):
        server.json("POST", "/api/events", {"message": "a %s event" % level, "level": level})
    context = browser.new_context(color_scheme=theme)
    page = context.new_page()
    try:
        page.goto(server.url + "/")
        wait_status(page, "LIVE", timeout=3)
        wait_until(lambda: page.is_visible("#firing-badge") and page.is_visible("#heartbeats-section")
                   and page.is_visible("#jobs-section"), timeout=5, message="badges and every section shown")
        page.click("#processes-panel summary")
        page.evaluate(AXE.read_text(encoding="utf-8"))  # evaluated, not a <script>: the page's CSP stays strict
        check = ("axe.run(document).then(r => r.violations.map(v => ({id: v.id, impact: v.impact,"
                 " nodes: v.nodes.map(n => n.target.join(' '))})))")
        bad = [v for v in page.evaluate(check) if v["impact"] in ("serious", "critical")]
        assert bad == [], bad
        page.click("#jobs tr[data-slug=nightly] .job-open")  # a job's dialog: its chart and runs
        wait_until(lambda: page.locator("#job-runs li").count() == 4, timeout=3, message="the job's runs")
        bad = [v for v in page.evaluate(check) if v["impact"] in ("serious", "critical")]
        assert bad == [], bad
    finally:
        context.close()


def test_every_chart_has_axes_in_its_unit_and_says_its_values_as_text(make_server, page):
    import re

    server = make_server(interval_s=0.3)
    server.json("POST", "/api/metrics", {"gauges": {"queue_depth": 1234}})
    page.goto(server.url + "/")
    wait_status(page, "LIVE", timeout=3)
    wait_until(lambda: page.get_attribute("#chart-cpu", "data-x-ticks"), timeout=5, message="axes drawn")
    units = {"#chart-cpu": " %", "#chart-memory": " %", "#chart-net": "/s", "#chart-disk": "/s"}
    for selector, unit in units.items():
        y_ticks = page.get_attribute(selector, "data-y-ticks").split("|")
        assert len(y_ticks) >= 2 and all(t.endswith(unit) for t in y_ticks), (selector, y_ticks)
        x_ticks = page.get_attribute(selector, "data-x-ticks").split("|")
        assert x_ticks and all(re.fullmatch(r"\d\d:\d\d(:\d\d)?", t) for t in x_ticks), (selector, x_ticks)
        assert ", now: " in page.get_attribute(selector, "aria-label")
    assert page.get_attribute("#chart-cpu", "data-y-ticks").split("|")[-1] == "100 %"
    page.click("#gauges tr[data-name=queue_depth] .metric-name")
    wait_until(lambda: page.get_attribute("#detail-canvas", "data-y-ticks"), timeout=3, message="the detail axes")
    assert "1,400" in page.get_attribute("#detail-canvas", "data-y-ticks").split("|")
    assert "queue_depth, now: queue_depth 1,234" == page.get_attribute("#detail-canvas", "aria-label")


def test_an_event_is_marked_on_the_charts_its_hover_shows_the_message_and_a_click_finds_it(make_server, page):
    from sse_dashboard.alerting.rules import parse_rules

    rules = parse_rules({"rules": [{"name": "q", "metric": "gauges.q", "op": ">", "threshold": 1}]})
    server = make_server(interval_s=0.3, alert_rules=rules)
    page.goto(server.url + "/")
    wait_status(page, "LIVE", timeout=3)
    seq = server.server.sampler.seq
    wait_until(lambda: server.server.sampler.seq >= seq + 3, message="a few samples on the charts")
    server.json("POST", "/api/events", {"message": "backup <b>failed</b>", "level": "error", "source": "backup"})
    for i in range(12):  # pushes it out of the ten the list shows
        server.json("POST", "/api/events", {"message": "routine %d" % i})
    marks = wait_until(lambda: page.get_attribute("#chart-cpu", "data-marks"), timeout=5, message="a marker")
    x = float(marks.split("|")[0])
    box = page.locator("#chart-cpu").bounding_box()
    page.mouse.move(box["x"] + x, box["y"] + box["height"] - 22)
    tip = page.locator("#chart-cpu ~ .chart-tip")
    wait_until(lambda: "backup <b>failed</b>" in (tip.text_content() or ""), timeout=3, message="the message on hover")
    page.mouse.click(box["x"] + x, box["y"] + box["height"] - 22)
    found = page.locator("#events li.event-found")
    wait_until(lambda: found.count() == 1, timeout=3, message="the event found in the list")
    assert found.locator(".event-message").text_content() == "backup <b>failed</b>"
    assert page.evaluate("document.activeElement.classList.contains('event-found')")
    server.json("POST", "/api/metrics", {"gauges": {"q": 5}})  # an alert fires: its span is shaded
    wait_until(lambda: page.get_attribute("#chart-net", "data-alert-spans") == "1", timeout=5,
               message="the firing alert shaded")
    assert page.console_errors == []


def test_a_time_range_loads_stored_history_travels_in_the_url_and_drag_zooms_back_to_live(make_server, page, tmp_path):
    server = make_server(interval_s=0.2, data_dir=tmp_path)
    seq = server.server.sampler.seq
    wait_until(lambda: server.server.sampler.seq >= seq + 10, message="samples stored")
    server.server.store.flush()
    page.goto(server.url + "/")
    wait_status(page, "LIVE", timeout=3)
    href = lambda: page.evaluate("location.href")  # noqa: E731 (page.url may miss a replaceState)
    page.click("[data-main-range='3600']")
    wait_until(lambda: "range=1h" in href(), timeout=5, message="the range in the URL")
    wait_until(lambda: "stored history" in page.text_content("#range-note"), timeout=3, message="stored history")
    wait_until(lambda: int(page.get_attribute("#chart-cpu", "data-points") or 0) > 5, timeout=3, message="points")
    assert page.get_attribute("[data-main-range='3600']", "aria-pressed") == "true"
    page.reload()  # a link shows the same view
    wait_until(lambda: page.get_attribute("[data-main-range='3600']", "aria-pressed") == "true"
               and "stored history" in page.text_content("#range-note"), timeout=5, message="the range from the URL")
    box = page.locator("#chart-cpu").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + 56 + (box["width"] - 62) * 0.5, y)
    page.mouse.down()
    page.mouse.move(box["x"] + 56 + (box["width"] - 62) * 0.95, y, steps=5)
    page.mouse.up()
    wait_until(lambda: "from=" in href() and "to=" in href(), timeout=3, message="the zoom in the URL")
    assert page.is_visible("#back-to-live")
    page.dblclick("#chart-cpu")
    wait_until(lambda: "range=" not in href() and "from=" not in href(), timeout=3, message="back to live")
    assert page.get_attribute("[data-main-range='300']", "aria-pressed") == "true"
    assert page.console_errors == []


def test_a_pinned_gauge_is_a_full_chart_that_survives_a_reload_and_travels_in_the_url(make_server, browser):
    server = make_server(interval_s=0.3)
    server.json("POST", "/api/metrics", {"gauges": {"queue_depth": 7}, "counters": {"jobs": 3}})
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(server.url + "/")
        wait_status(page, "LIVE", timeout=3)
        pin = page.locator("#gauges tr[data-name=queue_depth] .metric-pin")
        pin.wait_for(timeout=3000)
        pin.click()
        card = page.locator("#pinned [data-key='gauges.queue_depth']")
        card.wait_for(timeout=3000)
        wait_until(lambda: card.locator("canvas").get_attribute("data-y-ticks"), timeout=3, message="its axes")
        assert pin.get_attribute("aria-pressed") == "true"
        assert "pin=gauges.queue_depth" in page.evaluate("location.href")
        wait_until(lambda: "7 \u2013 7" in page.text_content("#gauges tr[data-name=queue_depth] .spark-range"),
                   timeout=3, message="min and max beside the sparkline")
        page.reload()
        page.locator("#pinned [data-key='gauges.queue_depth']").wait_for(timeout=3000)
        link = page.evaluate("location.href")
        other = browser.new_context()  # someone else opens the link: no localStorage, the URL says it
        try:
            there = other.new_page()
            there.goto(link)
            there.locator("#pinned [data-key='gauges.queue_depth']").wait_for(timeout=3000)
        finally:
            other.close()
        page.click("#pinned .unpin")
        wait_until(lambda: page.locator("#pinned .pinned-card").count() == 0, timeout=3, message="unpinned")
        assert "pin=" not in page.evaluate("location.href")
    finally:
        context.close()


def test_a_second_filesystem_from_a_fixture_machine_appears_with_its_mountpoint(make_server, page, tmp_path):
    import shutil as sh
    from pathlib import Path

    from sse_dashboard.collectors.system import StdlibCollector

    proc = tmp_path / "proc"
    sh.copytree(Path(__file__).parent / "fixtures" / "proc", proc)
    second = tmp_path / "scratch"
    second.mkdir()
    (proc / "self" / "mounts").write_text("/dev/vda1 / ext4 rw 0 0\ntmpfs %s tmpfs rw 0 0\n" % second)
    server = make_server(interval_s=0.3)
    server.server.sampler.collector = StdlibCollector(proc_root=proc, sys_root=tmp_path / "sys", platform="posix")
    page.goto(server.url + "/")
    wait_status(page, "LIVE", timeout=3)
    row = page.locator("#filesystems tr", has_text=str(second))
    row.wait_for(timeout=5000)
    assert row.locator("td").nth(1).text_content() == "tmpfs"


def test_the_order_and_folding_of_sections_are_remembered_and_in_the_url(make_server, browser):
    server = make_server(interval_s=0.5)
    server.json("POST", "/api/metrics", {"counters": {"jobs": 1}})
    tables = "section[data-section=app] .tables"
    context = browser.new_context()
    page = context.new_page()
    order = "Array.from(document.querySelectorAll('main > section[data-section]')).map(s => s.dataset.section)"
    try:
        page.goto(server.url + "/")
        wait_status(page, "LIVE", timeout=3)
        default = page.evaluate(order)
        assert default[0] == "system" and default[-1] == "events"
        page.wait_for_selector("#counters tr")
        assert page.is_visible(tables)
        page.click("[aria-label='move Events up']")
        page.click("[aria-label='hide or show Application']")
        assert page.is_hidden(tables) and page.get_attribute(
            "[aria-label='hide or show Application']", "aria-expanded") == "false"
        moved = page.evaluate(order)
        assert moved.index("events") == len(default) - 2
        link = page.evaluate("location.href")
        assert "order=" in link and "folded=app" in link
        page.reload()
        wait_status(page, "LIVE", timeout=3)
        assert page.evaluate(order) == moved and page.is_hidden(tables)
        other = browser.new_context()
        try:
            there = other.new_page()
            there.goto(link)
            there.wait_for_selector("[aria-label='hide or show Application']")
            assert there.evaluate(order) == moved and there.is_hidden(tables)
        finally:
            other.close()
        page.focus("[aria-label='hide or show Application']")
        page.keyboard.press("Enter")  # the keyboard does it too
        wait_until(lambda: page.is_visible(tables), timeout=3, message="shown again")
    finally:
        context.close()


def job_server(make_server, **jobs):
    """A server with these job monitors (slug: spec, as the config file's "jobs"), and their ids."""
    from sse_dashboard.alerting.jobs import parse_jobs

    server = make_server(interval_s=0.3, jobs=parse_jobs(jobs))
    ids = {job["slug"]: job["id"] for job in server.json("GET", "/api/jobs")[1]["jobs"]}
    return server, ids


def ping(server, path: str, body: bytes = b"") -> None:
    """A ping as curl sends it (POST, the output as its body), answered as Healthchecks does."""
    status, _, answer = server.request("POST", "/ping/" + path, body=body)
    assert (status, answer) == (200, b"OK"), (status, answer)


def job_state(server, slug: str) -> str:
    return next(job["status"] for job in server.json("GET", "/api/jobs")[1]["jobs"] if job["slug"] == slug)


def test_a_job_shows_its_state_and_next_run_and_a_failure_shows_down_with_its_output_as_text(make_server, page):
    import re

    server, ids = job_server(make_server, backup={"name": "Nightly backup", "schedule": 3600, "grace": 600},
                             report={"schedule": 86400})
    page.goto(server.url + "/")
    wait_status(page, "LIVE", timeout=3)
    row = page.locator("#jobs tr[data-slug=backup]")
    row.wait_for(timeout=3000)
    assert row.locator(".job-state").text_content() == "new"
    assert row.locator(".job-next").text_content() == "after its first ping"
    ping(server, ids["report"])
    ping(server, ids["backup"])
    wait_until(lambda: row.locator(".job-state").text_content() == "up", timeout=3, message="up after a success")
    assert re.fullmatch(r"in (59m \d+s|1h 0m)", row.locator(".job-next").text_content()), row.locator(".job-next").text_content()
    last = row.locator(".job-last").text_content()
    assert re.fullmatch(r"(just now|0m \d+s ago) \u00b7 success", last), last
    assert row.locator(".job-schedule").text_content() == "every 1 h"
    slugs = lambda: [r.get_attribute("data-slug") for r in page.locator("#jobs tr").all()]  # noqa: E731
    assert slugs() == ["backup", "report"]  # both up: by name ("Nightly backup" < "report")
    ping(server, ids["backup"] + "/3", b"disk <b>full</b>")
    wait_until(lambda: row.locator(".job-state").text_content() == "down", timeout=3, message="down after exit 3")
    wait_until(lambda: row.locator(".job-message").text_content() == "Nightly backup: exit status 3", timeout=3,
               message="the alert's message")
    assert "state-bad" in row.locator(".job-state").get_attribute("class")
    assert "failed (exit 3)" in row.locator(".job-last").text_content()
    assert slugs()[0] == "backup"
    page.focus("#jobs tr[data-slug=backup] .job-open")  # the keyboard opens it
    page.keyboard.press("Enter")
    detail = page.locator("#job-detail")
    wait_until(lambda: detail.is_visible(), timeout=3, message="the job's dialog")
    assert page.text_content("#job-detail-title") == "Nightly backup"
    runs = page.locator("#job-runs li")
    wait_until(lambda: runs.count() == 2, timeout=3, message="two runs listed")
    newest = runs.first
    assert newest.locator(".run-output").text_content() == "disk <b>full</b>"
    assert newest.locator(".run-kind").text_content() == "failed"
    assert newest.locator(".run-exit").text_content() == "exit 3"
    assert page.locator("#job-detail b, #jobs b").count() == 0
    page.keyboard.press("Escape")
    wait_until(lambda: not detail.is_visible(), timeout=3, message="closed with Escape")
    assert page.console_errors == [] and page.dialogs == []


def test_a_jobs_duration_chart_draws_its_runs_the_grace_and_minimum_and_marks_failures(make_server, page):
    server, ids = job_server(make_server, backup={"schedule": 3600, "start_grace": 5, "min_runtime": 2})
    job = ids["backup"]
    for outcome in ("", "/fail", ""):  # too fast, failed, too fast
        ping(server, job + "/start")
        ping(server, job + outcome)
    ping(server, job + "/start")  # still running
    page.goto(server.url + "/")
    wait_status(page, "LIVE", timeout=3)
    page.click("#jobs tr[data-slug=backup] .job-open")
    chart = page.locator("#job-runs-chart")
    wait_until(lambda: chart.get_attribute("data-points") == "4", timeout=3, message="four runs drawn")
    assert chart.get_attribute("data-failed") == "1"
    assert chart.get_attribute("data-flagged") == "2"
    assert chart.get_attribute("data-lines") == "grace|min"  # both to scale: 5 s and 2 s
    assert "4 runs" in chart.get_attribute("aria-label") and "1 failed" in chart.get_attribute("aria-label")
    assert page.locator("#job-runs li .run-flags", has_text="too fast").count() == 2
    ping(server, job + "/fail")  # the running one fails while the dialog is open: drawn again
    wait_until(lambda: chart.get_attribute("data-failed") == "2", timeout=3, message="the new failure drawn")
    assert chart.get_attribute("data-points") == "4"
    assert page.console_errors == []


def test_pause_resume_and_delete_a_job_from_the_page(make_server, page):
    server, ids = job_server(make_server, backup={"schedule": 3600})
    ping(server, ids["backup"])
    page.goto(server.url + "/")
    wait_status(page, "LIVE", timeout=3)
    row = page.locator("#jobs tr[data-slug=backup]")
    page.click("#jobs tr[data-slug=backup] .job-open")
    page.click("#job-pause")
    wait_until(lambda: job_state(server, "backup") == "paused", timeout=3, message="paused on the server")
    wait_until(lambda: row.locator(".job-state").text_content() == "paused", timeout=3, message="paused on the page")
    assert page.text_content("#job-pause") == "Resume" and row.locator(".job-next").text_content() == "paused"
    page.click("#job-pause")
    wait_until(lambda: job_state(server, "backup") == "up", timeout=3, message="resumed on the server")
    page.click("#job-delete")  # Cancel: kept
    wait_until(lambda: page.dialogs, timeout=3, message="the question")
    assert "backup" in page.dialogs[0] and job_state(server, "backup") == "up"
    page.dialog_answers.append(True)
    page.click("#job-delete")  # OK: gone
    wait_until(lambda: server.json("GET", "/api/jobs")[1]["jobs"] == [], timeout=3, message="deleted on the server")
    wait_until(lambda: page.locator("#jobs-section").is_hidden(), timeout=3, message="the section hidden")
    assert not page.locator("#job-detail").is_visible()
    assert page.console_errors == []
