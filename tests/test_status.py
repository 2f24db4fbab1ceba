"""Status pages (#26) against the real server: the server-rendered page read without JavaScript,
incidents from a failing job with their timeline and an admin's note, the Atom feed read by
feedparser, the admin API, the live stream, access without a token, and nothing not listed leaking."""

from __future__ import annotations

import http.client
import json
from html.parser import HTMLParser

import pytest

from conftest import required, wait_until
from sse_dashboard.alerting.jobs import parse_jobs
from sse_dashboard.alerting.status import MAX_PAGES, parse_status_pages

ROOT_TOKEN = "root-token"
SECRET_OUTPUT = "password=hunter2 in the failing job's output"
PAGES = {"public": {"title": "Acme <services>", "components": [
    {"kind": "job", "name": "backup", "label": "Nightly backup"},
    {"kind": "heartbeat", "name": "web", "label": "Web site"},
    {"kind": "metric", "name": "gauges.queue_depth", "label": "Queue"}],
    "maintenance": [{"start": 4102444800, "end": 4102452000, "text": "Database <upgrade>"}]}}


class PageReader(HTMLParser):
    """The components as a reader without JavaScript sees them: (label, state text) per row."""

    def __init__(self) -> None:
        super().__init__()
        self.rows, self._in, self.text, self.scripts_inline = [], None, [], 0
        self._script = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        if tag == "li" and "component" in classes:
            self.rows.append({"label": "", "state": "", "value": ""})
        if tag == "span" and self.rows and ("label" in classes or "state" in classes or "value" in classes):
            self._in = "label" if "label" in classes else "state" if "state" in classes else "value"
        if tag == "script":
            self._script = True
            self.scripts_inline += "src" not in attrs
        if "style" in attrs:
            raise AssertionError("an inline style the CSP would block: %r" % attrs)

    def handle_endtag(self, tag):
        if tag == "span":
            self._in = None
        if tag == "script":
            self._script = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in:
            self.rows[-1][self._in] += data


def read_page(server, slug="public"):
    status, headers, body = server.request("GET", "/status/" + slug)
    assert status == 200, body
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    reader = PageReader()
    reader.feed(body.decode("utf-8"))
    return reader, headers, body.decode("utf-8")


@pytest.fixture
def dash(make_server, tmp_path):
    jobs = parse_jobs({"backup": {"schedule": 3600}, "payroll-secret": {"schedule": 3600}})
    server = make_server(jobs=jobs, status_pages=parse_status_pages(PAGES), token=ROOT_TOKEN, data_dir=tmp_path,
                         post_rate_per_s=0)
    listed = server.json("GET", "/api/jobs", headers=admin())[1]["jobs"]
    server.job_ids = {job["slug"]: job["id"] for job in listed}
    return server


def admin():
    return {"Authorization": "Bearer " + ROOT_TOKEN}


def ping(server, slug, action="", body=None):
    path = "/ping/%s%s" % (server.job_ids[slug], "/" + action if action else "")
    status = server.request("POST" if body else "GET", path, body=body.encode() if body else None,
                            headers={"Content-Type": "text/plain"} if body else None)[0]
    assert status == 200


def row(reader, label):
    return next(r for r in reader.rows if r["label"] == label)


def test_the_first_view_is_server_rendered_html_with_every_component_and_its_state(dash, sse_reader):
    ping(dash, "backup", "start")
    ping(dash, "backup", body=SECRET_OUTPUT)  # a run with a duration, and output the page must not show
    dash.request("POST", "/api/metrics", {"gauges": {"queue_depth": 7}}, headers=admin())
    wait_until(lambda: row(read_page(dash)[0], "Nightly backup")["state"] == "Operational", message="backup up")
    wait_until(lambda: row(read_page(dash)[0], "Queue")["value"] == "7", message="the queue's value")
    reader, headers, page = read_page(dash)
    assert [r["label"] for r in reader.rows] == ["Nightly backup", "Web site", "Queue"]
    assert row(reader, "Web site")["state"] == "No data"  # never heard from
    assert reader.scripts_inline == 0
    assert "<title>Acme &lt;services&gt;</title>" in page and "Database &lt;upgrade&gt;" in page
    assert page.count('class="bar ') == 3 * 90
    assert "24 hours" in page and "90 days" in page
    # The dashboard's security headers, with no token asked for although the API needs one.
    assert headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"
    assert dash.request("GET", "/api/jobs")[0] == 401
    assert sse_reader(dash, "/status/public/stream").status == 200  # the live view needs no token either
    assert page.count('class="run run-ok h10"') == 1 and "hunter2" not in page  # the run's duration, not its output


def test_a_failing_job_opens_an_incident_that_resolves_with_its_timeline_and_a_note(dash):
    ping(dash, "backup")
    ping(dash, "backup", "fail", body=SECRET_OUTPUT)
    wait_until(lambda: row(read_page(dash)[0], "Nightly backup")["state"] == "Down", message="backup down")
    reader, _, page = read_page(dash)
    assert "Nightly backup is down" in page and "ongoing" in page
    status, body = dash.json("POST", "/api/status-pages/public/incidents/1/notes", {"text": "Looking <into> it"},
                             headers=admin())
    assert status == 201 and body["incident"]["updates"][-1]["text"] == "Looking <into> it"
    ping(dash, "backup")
    wait_until(lambda: "resolved" in read_page(dash)[2], message="the incident resolved")
    page = read_page(dash)[2]
    assert "Nightly backup is up again" in page and "Looking &lt;into&gt; it" in page
    assert SECRET_OUTPUT not in page and "hunter2" not in page


def test_the_atom_feed_is_valid_for_a_real_feed_reader(dash):
    feedparser = required("feedparser")
    ping(dash, "backup")
    ping(dash, "backup", "fail", body=SECRET_OUTPUT)
    wait_until(lambda: b"incident-1" in dash.request("GET", "/status/public/feed.atom")[2], message="an entry")
    status, headers, body = dash.request("GET", "/status/public/feed.atom")
    assert status == 200 and headers["Content-Type"] == "application/atom+xml; charset=utf-8"
    feed = feedparser.parse(body)
    assert not feed.bozo, feed.bozo_exception
    assert feed.version == "atom10"
    assert feed.feed.id.endswith("/status/public") and feed.feed.title == "Acme <services>: incidents"
    assert feed.feed.updated_parsed is not None
    [entry] = feed.entries
    assert entry.id.endswith("/status/public#incident-1") and entry.title == "Nightly backup is down"
    assert entry.updated_parsed is not None and entry.link.endswith("/status/public#incident-1")
    assert b"hunter2" not in body and b"payroll-secret" not in body


def test_nothing_the_page_does_not_list_leaks(dash):
    """Another job, the jobs' UUIDs (their ping secrets), a job's output, an event's data: in none
    of the page, the feed and the stream."""
    for slug in ("backup", "payroll-secret"):
        ping(dash, slug)
        ping(dash, slug, "fail", body=SECRET_OUTPUT)
    dash.request("POST", "/api/events", {"message": "deploy", "data": {"secret": "event-data-xyz"}}, headers=admin())
    wait_until(lambda: "Nightly backup is down" in read_page(dash)[2], message="the incident")
    page = read_page(dash)[2]
    feed = dash.request("GET", "/status/public/feed.atom")[2].decode()
    for text in (page, feed):
        for secret in ("payroll-secret", dash.job_ids["backup"], dash.job_ids["payroll-secret"], "hunter2",
                       "event-data-xyz"):
            assert secret not in text, secret
    assert "127.0.0.1" not in page  # (the feed's links are on the Host its reader asked for, or --public-url)


def test_the_stream_carries_the_page_and_nothing_else_and_counts_against_max_clients(make_server, sse_reader):
    jobs = parse_jobs({"backup": {"schedule": 3600}})
    server = make_server(jobs=jobs, status_pages=parse_status_pages(PAGES), max_clients=1)
    job_id = server.json("GET", "/api/jobs")[1]["jobs"][0]["id"]
    reader = sse_reader(server, "/status/public/stream")
    assert reader.status == 200 and reader.headers["content-type"] == "text/event-stream; charset=utf-8"
    first = json.loads(reader.next_event("status:public")["data"])
    assert [c["label"] for c in first["components"]] == ["Nightly backup", "Web site", "Queue"]
    assert server.request("GET", "/status/public/stream")[0] == 503  # the one slot is taken
    server.request("POST", "/api/events", {"message": "x", "data": {"secret": "event-data-xyz"}})
    assert server.request("GET", "/ping/%s/fail" % job_id)[0] == 200

    def backup_down():
        frame = reader.next_frame()
        assert frame["event"] in (None, "status:public"), frame  # no metrics, no events
        return frame["data"] and json.loads(frame["data"])["components"][0]["state"] == "down"

    wait_until(backup_down, message="the page's new view on the stream")


def test_an_admin_makes_changes_and_deletes_pages_and_bad_input_stores_nothing(dash):
    page = {"title": "Internal", "components": [{"kind": "job", "name": "payroll-secret"}]}
    assert dash.request("PUT", "/api/status-pages/internal", page)[0] == 401
    status, body = dash.json("PUT", "/api/status-pages/internal", page, headers=admin())
    assert status == 201 and body["url"] == "/status/internal"
    assert read_page(dash, "internal")[0].rows[0]["label"] == "payroll-secret"
    for bad, why in [({"components": []}, "components"), ({"components": [{"kind": "disk", "name": "x"}]}, "kind"),
                     ({"components": [{"kind": "job", "name": "a b"}]}, "name"), ({"title": "x", "x": 1}, "unknown"),
                     ({"components": [{"kind": "job", "name": "j%d" % i} for i in range(31)]}, "at most 30")]:
        status, body = dash.json("PUT", "/api/status-pages/other", bad, headers=admin())
        assert status == 400 and why in body["error"], body
    assert dash.request("GET", "/status/other")[0] == 404
    # A lone surrogate (no UTF-8 for it) in a label is kept as "?": the page still encodes.
    odd = {"title": "odd \ud800", "components": [{"kind": "metric", "name": "x", "label": "a \udfff"}]}
    assert dash.json("PUT", "/api/status-pages/odd", odd, headers=admin())[0] == 201
    assert "odd ?" in read_page(dash, "odd")[2] and dash.request("GET", "/status/odd/feed.atom")[0] == 200
    assert dash.json("DELETE", "/api/status-pages/odd", headers=admin())[0] == 200
    assert dash.json("PUT", "/api/status-pages/public", page, headers=admin())[0] == 409  # the config file's
    assert dash.json("DELETE", "/api/status-pages/public", headers=admin())[0] == 409
    status, body = dash.json("POST", "/api/status-pages/internal/maintenance",
                             {"start": "2099-01-01T00:00:00Z", "end": "2099-01-01T02:00:00Z", "text": "Moving racks"},
                             headers=admin())
    assert status == 201 and "Moving racks" in read_page(dash, "internal")[2]
    assert dash.json("POST", "/api/status-pages/internal/maintenance", {"start": 5, "end": 1, "text": "x"},
                     headers=admin())[0] == 400
    assert dash.json("POST", "/api/status-pages/internal/incidents/99/notes", {"text": "x"}, headers=admin())[0] == 404
    for i in range(MAX_PAGES - 2):  # with the config file's and "internal": the most there may be
        assert dash.json("PUT", "/api/status-pages/p%d" % i, page, headers=admin())[0] == 201
    status, body = dash.json("PUT", "/api/status-pages/one-more", page, headers=admin())
    assert status == 400 and "at most %d status pages" % MAX_PAGES in body["error"]
    for i in range(MAX_PAGES - 2):
        assert dash.json("DELETE", "/api/status-pages/p%d" % i, headers=admin())[0] == 200
    listed = dash.json("GET", "/api/status-pages", headers=admin())[1]["pages"]
    assert [(p["slug"], p["configured"]) for p in listed] == [("internal", False), ("public", True)]
    assert dash.json("DELETE", "/api/status-pages/internal", headers=admin())[0] == 200
    assert dash.request("GET", "/status/internal")[0] == 404
    assert dash.json("DELETE", "/api/status-pages/internal", headers=admin())[0] == 404


def test_incidents_pages_and_bars_survive_a_restart(make_server, tmp_path):
    jobs = parse_jobs({"backup": {"schedule": 3600}})
    first = make_server(jobs=jobs, status_pages=parse_status_pages(PAGES), data_dir=tmp_path)
    job_id = first.json("GET", "/api/jobs")[1]["jobs"][0]["id"]
    first.request("GET", "/ping/%s" % job_id)
    first.request("GET", "/ping/%s/fail" % job_id)
    wait_until(lambda: "Nightly backup is down" in first.request("GET", "/status/public")[2].decode(), message="down")
    assert first.json("PUT", "/api/status-pages/extra", {"components": [{"kind": "metric", "name": "system.cpu_percent"}]})[0] == 201
    first.stop()
    again = make_server(jobs=jobs, status_pages=parse_status_pages(PAGES), data_dir=tmp_path)
    page = again.request("GET", "/status/public")[2].decode()
    assert "Nightly backup is down" in page and "incident-1" in page
    assert 'class="bar bar-down"' in page  # today's bar kept its down time
    assert again.request("GET", "/status/extra")[0] == 200


def test_the_config_file_makes_a_page_and_a_bad_one_stops_the_start(spawn, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"jobs": {"backup": {"schedule": 3600}}, "status_pages": PAGES}), encoding="utf-8")
    process = spawn("--port", "0", "--config", str(config))
    port = process.wait_for_url()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/status/public")
    answer = conn.getresponse()
    assert answer.status == 200 and b"Nightly backup" in answer.read()
    conn.close()
    config.write_text(json.dumps({"status_pages": {"Bad Slug": PAGES["public"]}}), encoding="utf-8")
    bad = spawn("--port", "0", "--config", str(config))
    assert bad.proc.wait(10) == 2
    assert "a slug is 1 to 64 of a-z 0-9 _ -" in bad.output


def test_a_heartbeat_down_and_a_rule_firing_open_incidents_too(make_server):
    from sse_dashboard.alerting.rules import parse_rules

    rules = parse_rules({"rules": [{"name": "queue_long", "metric": "gauges.q", "op": ">", "threshold": 10}]})
    pages = parse_status_pages({"ops": {"title": "Ops", "components": [
        {"kind": "heartbeat", "name": "web", "label": "Web site"}, {"kind": "alert", "name": "queue_long", "label": "Queue"}]}})
    server = make_server(alert_rules=rules, status_pages=pages)
    server.request("GET", "/api/push/web")
    server.request("POST", "/api/metrics", {"gauges": {"q": 1}})
    wait_until(lambda: [r["state"] for r in read_page(server, "ops")[0].rows] == ["Operational", "Operational"],
               message="both up")
    server.request("GET", "/api/push/web?status=down&msg=private%20detail")
    server.request("POST", "/api/metrics", {"gauges": {"q": 50}})
    wait_until(lambda: "Web site is down" in read_page(server, "ops")[2] and "Queue is down" in read_page(server, "ops")[2],
               message="two incidents")
    assert "private detail" not in read_page(server, "ops")[2]  # a heartbeat's message is its sender's, not the page's
    server.request("POST", "/api/metrics", {"gauges": {"q": 1}})
    wait_until(lambda: "Queue is up again" in read_page(server, "ops")[2], message="the rule's incident resolved")


class Sample:
    def __init__(self, ts, snapshot, series=None):
        self.ts, self.snapshot, self.series = ts, snapshot, series or {}


def test_a_view_is_built_and_rendered_once_a_sample_however_many_ask():
    from sse_dashboard.alerting.status import StatusPages

    pages = StatusPages(parse_status_pages({"p": {"components": [{"kind": "job", "name": "backup"}]}}))
    made = []

    def render(view):
        made.append(view["updated"])
        return b"page"

    pages.observe(Sample(1000.0, {"jobs": [{"slug": "backup", "status": "up", "id": "u", "last_ping": 1}]}))
    assert [pages.rendered("p", "html", render) for _ in range(5)] == [b"page"] * 5
    pages.observe(Sample(1001.0, {"jobs": [{"slug": "backup", "status": "down", "id": "u", "last_ping": 2}]}))
    pages.rendered("p", "html", render)
    pages.rendered("p", "html", render)
    assert made == [1000.0, 1001.0]
    view = pages.view("p")[0]
    assert view["components"][0]["state"] == "down" and view["incidents"][0]["title"] == "backup is down"
    assert view["components"][0]["uptime"]["24h"] == 1.0  # the second it was up; down since, not yet counted


def test_the_stream_tells_nothing_of_the_event_log_not_even_its_ids(make_server, sse_reader):
    """A narrowed stream's heartbeat usually carries ``id:`` (where its reconnect resumes): a status
    page's must not, or anyone could count the dashboard's events."""
    server = make_server(status_pages=parse_status_pages(PAGES), heartbeat_s=0.2)
    reader = sse_reader(server, "/status/public/stream")
    for i in range(5):
        server.request("POST", "/api/events", {"message": "event %d" % i})
    frames = []
    wait_until(lambda: frames.append(reader.next_frame()) or len(frames) >= 12, timeout=10, message="a dozen frames")
    assert [f for f in frames if f["id"] is not None or f["event"] not in (None, "status:public")] == []


def test_a_component_taken_off_the_page_resolves_its_incident_and_damaged_kept_state_is_dropped():
    from sse_dashboard.alerting.status import StatusPages

    kept = {}
    both = {"p": {"components": [{"kind": "job", "name": "a"}, {"kind": "job", "name": "b"}]}}
    pages = StatusPages(parse_status_pages(both), persist=lambda body: kept.update(body=body))
    down = {"jobs": [{"slug": "a", "status": "down", "id": "1"}, {"slug": "b", "status": "down", "id": "2"}]}
    pages.observe(Sample(1000.0, down))
    assert len([i for i in pages.view("p")[0]["incidents"] if i["resolved"] is None]) == 2
    state = json.loads(kept["body"])
    state["p"]["incidents"].append({"id": "x", "title": None})  # damaged: dropped, not fatal
    only_a = {"p": {"components": [{"kind": "job", "name": "a"}]}}
    again = StatusPages(parse_status_pages(only_a), state=json.dumps(state))
    again.observe(Sample(1001.0, down))
    incidents = {i["component"]: i for i in again.view("p")[0]["incidents"]}
    assert set(incidents) == {"a", "b"} and incidents["a"]["resolved"] is None
    assert incidents["b"]["updates"][-1]["text"] == "b is no longer on this page"
