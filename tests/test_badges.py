"""Badges (#26): ``/badge/<job|heartbeat|alert|status>/<name>.svg`` on the real server,
parsed as SVG by an XML parser: the state now, in the shields.io look, for anyone, and nothing else."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from conftest import wait_until
from sse_dashboard.alerting.rules import AlertRule
from sse_dashboard.alerting.status import parse_status_pages

SVG = "{http://www.w3.org/2000/svg}"
ROOT_TOKEN = "badge-root"


def badge(server, path):
    """(status, headers, the badge's texts, the message's colour) for ``path``, parsed as SVG."""
    status, headers, body = server.request("GET", path)
    svg = ET.fromstring(body)
    assert svg.tag == SVG + "svg" and svg.get("role") == "img"
    texts = [t.text for t in svg.iter(SVG + "text")]
    colour = next(r.get("fill") for r in svg.iter(SVG + "rect") if r.get("x"))  # the message box
    return status, headers, texts, colour, body


def admin(server, method, path, body=None):
    return server.request(method, path, body, headers={"Authorization": "Bearer " + ROOT_TOKEN})


@pytest.fixture
def guarded(make_server):
    return make_server(token=ROOT_TOKEN, post_rate_per_s=0)


def test_a_job_badge_shows_its_state_now_to_anyone(guarded):
    job = admin(guarded, "POST", "/api/jobs", {"slug": "backup", "schedule": 3600})
    assert job[0] == 201
    uuid = __import__("json").loads(job[2])["id"]
    status, headers, texts, colour, body = badge(guarded, "/badge/job/backup.svg")
    assert status == 200 and headers["Content-Type"] == "image/svg+xml; charset=utf-8"
    assert headers["Cache-Control"] == "public, max-age=30"
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert texts.count("backup") == 2 and texts.count("new") == 2  # shadow and text, as shields.io draws them
    assert guarded.request("GET", "/ping/%s/fail" % uuid)[0] == 200
    status, _, texts, colour, body = badge(guarded, "/badge/job/backup.svg")
    assert "down" in texts and colour == "#e05d44"
    assert guarded.request("GET", "/ping/%s" % uuid)[0] == 200
    status, _, texts, colour, body = badge(guarded, "/badge/job/backup.svg")
    assert "up" in texts and colour == "#4c1"
    assert uuid.encode() not in body  # the UUID is the job's ping secret


def test_a_heartbeat_badge_shows_up_or_down_and_not_its_message(guarded):
    assert admin(guarded, "GET", "/api/push/nightly?msg=secret-detail")[0] == 200
    status, _, texts, colour, body = badge(guarded, "/badge/heartbeat/nightly.svg")
    assert status == 200 and texts == ["nightly", "nightly", "up", "up"] and b"secret-detail" not in body
    assert admin(guarded, "GET", "/api/push/nightly?status=down")[0] == 200
    assert badge(guarded, "/badge/heartbeat/nightly.svg")[2][2] == "down"


@pytest.mark.parametrize("path", ["/badge/job/nothing.svg", "/badge/heartbeat/nothing.svg", "/badge/alert/x.svg",
                                  "/badge/job/backup", "/badge/job/%3Cscript%3E.svg", "/badge/"])
def test_an_unknown_badge_is_a_404_badge_that_echoes_nothing(guarded, path):
    status, headers, texts, colour, body = badge(guarded, path)
    assert status == 404 and texts[2:] == ["not found", "not found"] and b"script" not in body
    assert headers["Content-Type"] == "image/svg+xml; charset=utf-8"


def test_badges_need_no_token_but_the_api_still_does(guarded):
    assert guarded.request("GET", "/api/jobs")[0] == 401
    assert guarded.request("HEAD", "/badge/job/backup.svg")[0] == 404


def test_an_alert_badge_says_ok_or_firing_and_not_the_alerts_message(make_server):
    rules = [AlertRule(name="queue_deep", metric="gauges.queue_depth", op=">", threshold=10)]
    server = make_server(alert_rules=rules, token=ROOT_TOKEN, post_rate_per_s=0)
    status, _, texts, colour, _ = badge(server, "/badge/alert/queue_deep.svg")
    assert status == 200 and texts == ["queue_deep", "queue_deep", "ok", "ok"] and colour == "#4c1"
    assert admin(server, "POST", "/api/metrics", {"gauges": {"queue_depth": 99}})[0] == 200
    wait_until(lambda: badge(server, "/badge/alert/queue_deep.svg")[2][2] == "firing", timeout=5,
               message="the badge to say firing")
    status, _, texts, colour, body = badge(server, "/badge/alert/queue_deep.svg")
    assert colour == "#e05d44" and b"99" not in body  # the value and the alert's message stay home
    assert badge(server, "/badge/alert/other_rule.svg")[0] == 404


def test_a_status_page_badge_shows_the_pages_state_or_its_uptime_over_a_window(make_server):
    pages = parse_status_pages({"public": {"title": "Acme", "components": [
        {"kind": "heartbeat", "name": "web", "label": "Web site"}]}})
    server = make_server(status_pages=pages, token=ROOT_TOKEN, post_rate_per_s=0)
    assert admin(server, "GET", "/api/push/web")[0] == 200
    wait_until(lambda: badge(server, "/badge/status/public.svg")[2][2] == "up", timeout=5,
               message="the page's badge to say up")
    status, _, texts, colour, _ = badge(server, "/badge/status/public.svg?uptime=30d")
    assert status == 200 and texts[0] == "public 30d" and colour == "#4c1", texts
    assert texts[2] in ("100%", "no data"), texts  # a new page: all of its counted time was up
    assert admin(server, "GET", "/api/push/web?status=down")[0] == 200
    wait_until(lambda: badge(server, "/badge/status/public.svg")[2][2] == "down", timeout=5,
               message="the page's badge to say down")
    for path in ("/badge/status/public.svg?uptime=1y", "/badge/job/public.svg?uptime=30d", "/badge/status/nope.svg"):
        assert badge(server, path)[0] == 404, path
