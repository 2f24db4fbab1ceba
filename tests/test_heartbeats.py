"""Heartbeats: a job that stops beating fires exactly one alert and one resolve; down fires at
once; bad beats change nothing; they survive a restart; curl and the client library send them."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from sse_dashboard.client import Dashboard
from conftest import require_tool, wait_until
from sse_dashboard.alerting.alert import AlertOutlet
from sse_dashboard.alerting.heartbeats import Heartbeats, parse_heartbeats


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def recorder():
    """What was posted, and the outlet that posts it there."""
    posted = []

    def post(level, message, **fields):
        posted.append(dict(fields, level=level, message=message))
    return posted, AlertOutlet(post)


def test_a_job_that_stops_beating_fires_once_and_resolves_once():
    clock, (posted, outlet) = Clock(), recorder()
    beats = Heartbeats(outlet, clock=clock)
    beats.beat("backup", every=300)
    for _ in range(3):
        clock.now += 100
        assert beats.check() == []
    clock.now += 1  # 301 s since the beat
    for _ in range(5):  # firing stays one alert, however many samples look at it
        active = beats.check()
        clock.now += 60
    assert [a["message"] for a in active] == ["backup silent for 5 min"]
    beats.beat("backup")
    assert beats.check() == [] and beats.check() == []
    assert [(p["type"], p["level"]) for p in posted] == [("alert.firing", "error"), ("alert.resolved", "info")]
    assert all(p["source"] == "heartbeats" for p in posted)


def test_down_fires_at_the_next_check_and_up_resolves_it():
    clock, (posted, outlet) = Clock(), recorder()
    beats = Heartbeats(outlet, clock=clock)
    beats.beat("deploy", status="down", message="exit 3")
    assert [a["message"] for a in beats.check()] == ["deploy is down: exit 3"]
    beats.beat("deploy", status="down", message="exit 4")  # still down: still the one alert, saying so
    assert [a["message"] for a in beats.check()] == ["deploy is down: exit 4"]
    beats.beat("deploy", status="up")
    assert beats.check() == []
    assert [p["type"] for p in posted] == ["alert.firing", "alert.resolved"]


def test_a_configured_heartbeat_gets_one_period_of_grace_from_the_start():
    clock, (posted, outlet) = Clock(), recorder()
    beats = Heartbeats(outlet, configured=parse_heartbeats({"nightly": {"every": 3600, "level": "warning"}}),
                       clock=clock)
    assert beats.listing()[0]["status"] == "waiting"
    clock.now += 3600
    assert beats.check() == []
    clock.now += 1
    assert [(a["level"], a["message"]) for a in beats.check()] == [("warning", "nightly silent for 1 h")]


def test_state_survives_a_restart_so_a_job_that_died_meanwhile_is_noticed():
    clock, (posted, outlet) = Clock(), recorder()
    saved = []
    beats = Heartbeats(outlet, clock=clock, persist=saved.append)
    beats.beat("backup", every=60, message="ok", ping=12.5)
    clock.now += 120  # the dashboard was down for two minutes
    again = Heartbeats(outlet, clock=clock, state=saved[-1], persist=saved.append)
    assert [a["message"] for a in again.check()] == ["backup silent for 1 min"]
    assert again.listing()[0]["message"] == "ok" and again.listing()[0]["ping"] == 12.5
    third = Heartbeats(outlet, clock=clock, state=saved[-1])  # restarted while it fires
    assert [a["message"] for a in third.check()] == ["backup silent for 1 min"]
    assert [p["type"] for p in posted] == ["alert.firing"]  # announced once, not at every start


def test_a_heartbeat_without_every_that_is_up_never_fires():
    posted, outlet = recorder()
    beats = Heartbeats(outlet)
    beats.beat("adhoc")
    assert beats.check() == [] and posted == []


@pytest.mark.parametrize("query", ["status=maybe", "status=", "every=0", "every=abc", "every=1e99", "ping=abc",
                                   "ping=nan", "ping=-5", "ping=1e308", "ping=inf", "msg=" + "m" * 201])
def test_a_bad_beat_is_a_400_and_changes_nothing(server, query):
    status, body = server.json("GET", "/api/push/job?" + query)
    assert status == 400 and body["error"]
    assert server.json("GET", "/api/alerts")[1]["heartbeats"] == []


@pytest.mark.parametrize("name", ["has%20space", "%2F", "x" * 101, "caf%C3%A9"])
def test_a_bad_name_is_a_400(server, name):
    assert server.json("POST", "/api/push/" + name)[0] == 400


def test_too_many_heartbeats_are_refused():
    beats = Heartbeats(AlertOutlet(lambda *a, **k: None))
    for i in range(200):
        beats.beat("job%d" % i)
    with pytest.raises(ValueError, match="too many"):
        beats.beat("one_more")


def test_over_http_a_silent_job_fires_one_alert_and_its_next_beat_one_resolve(make_server):
    running = make_server(interval_s=0.1)
    assert running.json("GET", "/api/push/backup?every=1&msg=first")[1]["ok"] is True
    alerts = wait_until(lambda: running.json("GET", "/api/alerts")[1]["alerts"], timeout=5,
                        message="the silence noticed")
    assert alerts[0]["rule"] == "heartbeat:backup" and alerts[0]["message"] == "backup silent for 1 s"
    seq = running.server.sampler.seq
    wait_until(lambda: running.server.sampler.seq >= seq + 5, message="five more samples")
    assert running.json("POST", "/api/push/backup?status=up")[0] == 200
    wait_until(lambda: not running.json("GET", "/api/alerts")[1]["alerts"], message="resolved")
    seq = running.server.sampler.seq
    wait_until(lambda: running.server.sampler.seq >= seq + 3, message="three more samples")
    events = running.json("GET", "/api/events?types=alert.*")[1]["events"]
    assert [e["type"] for e in events] == ["alert.firing", "alert.resolved"]
    snapshot = running.json("GET", "/api/metrics")[1]
    assert [(b["name"], b["status"], b["firing"]) for b in snapshot["heartbeats"]] == [("backup", "up", False)]
    text = running.request("GET", "/metrics")[2].decode()
    assert 'sse_dashboard_heartbeat_up{name="backup"} 1' in text


def test_curl_and_the_client_library_send_heartbeats(make_server):
    curl = shutil.which("curl")
    require_tool(curl is not None, "curl")
    running = make_server(token="t0k")
    out = subprocess.run([curl, "-fsS", running.url + "/api/push/cron-job?status=down&msg=disk%20full&token=t0k"],
                         capture_output=True, timeout=10)
    assert out.returncode == 0 and json.loads(out.stdout)["status"] == "down"
    refused = subprocess.run([curl, "-s", "-o", "/dev/null", "-w", "%{http_code}",
                              running.url + "/api/push/cron-job?token=wrong"], capture_output=True, timeout=10)
    assert refused.stdout == b"401"
    dash = Dashboard(running.url, token="t0k", flush_at_exit=False)
    dash.heartbeat("cron-job", msg="fine again", ping=5, every=3600)
    assert dash.flush(5) and dash.dropped == 0
    beat = running.json("GET", "/api/alerts", headers={"Authorization": "Bearer t0k"})[1]["heartbeats"][0]
    assert (beat["status"], beat["message"], beat["ping"], beat["every"]) == ("up", "fine again", 5.0, 3600.0)
    dash.close()


@pytest.mark.parametrize("site", ["cross-site", "same-site"])  # same-site: another port of localhost
def test_a_get_from_another_page_cannot_beat(server, site):
    status, body = server.json("GET", "/api/push/job", headers={"Sec-Fetch-Site": site})
    assert status == 403
    assert server.json("GET", "/api/alerts")[1]["heartbeats"] == []


def test_the_cookie_does_not_authorise_a_get_that_writes_and_head_writes_nothing(make_server):
    running = make_server(token="tok")
    cookie = {"Cookie": "sse_dashboard_token_%d=tok" % running.port}
    assert running.request("GET", "/api/push/job", headers=cookie)[0] == 401
    assert running.request("GET", "/api/push/job", headers={"Authorization": "Bearer tok"})[0] == 200
    assert running.request("HEAD", "/api/push/other", headers={"Authorization": "Bearer tok"})[0] == 405
    names = [b["name"] for b in running.json("GET", "/api/alerts", headers={"Authorization": "Bearer tok"})[1]
             ["heartbeats"]]
    assert names == ["job"]


def test_heartbeats_survive_a_restart_of_the_server(make_server, tmp_path):
    first = make_server(data_dir=tmp_path)
    first.json("GET", "/api/push/nightly?every=86400&msg=ok")
    first.stop()
    second = make_server(data_dir=tmp_path)
    beat = second.json("GET", "/api/alerts")[1]["heartbeats"][0]
    assert (beat["name"], beat["message"], beat["every"]) == ("nightly", "ok", 86400.0)
    assert second.json("DELETE", "/api/push/nightly")[0] == 200
    assert second.json("GET", "/api/alerts")[1]["heartbeats"] == []


@pytest.mark.parametrize("document,words", [({"x": {"every": 0}}, "every"), ({"x": {"evry": 5}}, "must be"),
                                            ({"bad name": {}}, "name"), ({"x": {"level": "info"}}, "level"),
                                            ([], "object")])
def test_bad_heartbeat_config_is_named(document, words):
    with pytest.raises(ValueError, match=words):
        parse_heartbeats(document)


@pytest.mark.parametrize("ping", ["0", "1.5", "31622400000"])
def test_a_ping_is_a_duration_from_zero_to_the_longest_period(server, ping):
    """Issue 21, item 11: ping=-5 and ping=1e308 were kept; a ping is a duration in ms, at most
    366 days (the longest ``every``)."""
    status, body = server.json("GET", "/api/push/job?ping=" + ping)
    assert status == 200 and body["ping"] == float(ping)


@pytest.mark.parametrize("content_type, body", [
    ("application/x-www-form-urlencoded", b"status=down&msg=disk+full"),
    ("text/plain", b"backup log: 42 files"),
    ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data; name=status\r\n\r\ndown\r\n--x--"),
    ("application/json", b'{"status": "down"}'),
])
def test_a_heartbeat_post_with_a_body_is_a_415_that_says_where_the_fields_go(server, content_type, body):
    """Issue 21, item 11: ``curl -d status=down`` (a form body) was answered 200 and recorded
    ``up``: the body was never read. A heartbeat's fields are in its URL; a body is refused."""
    status, answer = server.json("POST", "/api/push/job", body, headers={"Content-Type": content_type})
    assert status == 415 and "no body" in answer["error"] and "?status=" in answer["error"]
    assert server.json("GET", "/api/alerts")[1]["heartbeats"] == []


def test_a_heartbeat_post_without_a_body_is_taken_whatever_its_type(server):
    # curl -X POST (no type), and urllib's POST with empty data (which it calls a form).
    assert server.json("POST", "/api/push/a?status=down&msg=hi")[1]["status"] == "down"
    status, beat = server.json("POST", "/api/push/b?ping=12", b"",
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200 and beat["ping"] == 12.0
    assert [b["name"] for b in server.json("GET", "/api/alerts")[1]["heartbeats"]] == ["a", "b"]


def test_removing_a_firing_heartbeat_resolves_its_alert_once():
    """DELETE of a firing heartbeat dropped its alert silently: the page's span stayed open and the
    targets that got the firing never got a resolve (flood control, now kept across restarts,
    remembered it as open for good)."""
    clock, (posted, outlet) = Clock(), recorder()
    beats = Heartbeats(outlet, clock=clock)
    beats.beat("deploy", status="down", message="exit 3")
    beats.check()
    assert beats.forget("deploy") and beats.active() == []
    assert [(p["type"], p["message"]) for p in posted] == [("alert.firing", "deploy is down: exit 3"),
                                                           ("alert.resolved", "resolved: deploy was removed")]
    beats.check()
    assert len(posted) == 2
    beats.beat("quiet")
    assert beats.forget("quiet") and len(posted) == 2  # nothing was firing: nothing to say
