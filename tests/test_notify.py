"""Alert notifications against a real local HTTP receiver: payloads, Standard Webhooks
signatures (verified with the standardwebhooks package), retries, Retry-After, 410, flood
control, the documented ntfy, Slack and Discord shapes, and a receiver that never answers."""

from __future__ import annotations

import base64
import functools
import http.client
import json
import logging
import socket
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sse_dashboard.alerting.rules import parse_rules
from conftest import required, wait_until
from sse_dashboard.events import EventLog
from sse_dashboard.alerting.notify import TEST_ANSWER_S, Notifier
from sse_dashboard.alerting.targets import Target, parse_targets, render
from sse_dashboard.cli import load_config

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

class Receiver:
    """A webhook receiver: answers each POST with the next scripted (status, headers), then 200."""

    def __init__(self, script=()) -> None:
        self.script = list(script)
        self.requests: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append({"at": time.monotonic(), "path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                          "body": body})
                status, headers = receiver.script.pop(0) if receiver.script else (200, {})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = "http://127.0.0.1:%d/hook/s3cret-path" % self.server.server_address[1]

    def wait_for(self, n: int, timeout: float = 10.0) -> list[dict]:
        wait_until(lambda: len(self.requests) >= n, timeout=timeout, message="%d deliveries" % n)
        return self.requests

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(script=()):
        made.append(Receiver(script))
        return made[-1]
    yield make
    for r in made:
        r.close()


@pytest.fixture
def silent_url():
    """The URL of a receiver that never answers: connections wait in the listen backlog,
    accepted by the kernel, never read; closed (reset) at the end of the test."""
    sockets = []

    def make(path="/hook/s3cret-path"):
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        sockets.append(silent)
        return "http://127.0.0.1:%d%s" % (silent.getsockname()[1], path)
    yield make
    for silent in sockets:
        silent.close()


class NoJitter:
    def uniform(self, a, b):
        return 1.0


ALERT = {"name": "disk_full", "metric": "system.disk_percent", "value": 93.5, "threshold": 90.0, "level": "error",
         "message": "disk more than 90 % full", "started_at": 1700000000.0, "ended_at": None}


def notifier(targets, **kwargs) -> Notifier:
    kwargs.setdefault("rng", NoJitter())
    n = Notifier(targets, "http://127.0.0.1:8080/", **kwargs)
    n.start()
    return n


def test_an_alert_fires_and_resolves_as_signed_webhooks_through_the_real_server(make_server, receiver):
    standardwebhooks = required("standardwebhooks")
    hook = receiver()
    rules = parse_rules({"rules": [{"name": "queue", "metric": "gauges.q", "op": ">", "threshold": 5,
                                    "level": "warning", "message": "queue too long"}]})
    targets = parse_targets([{"name": "ops", "url": hook.url, "secret": SECRET}])
    running = make_server(alert_rules=rules, notify=targets)
    running.json("POST", "/api/metrics", {"gauges": {"q": 10}})
    firing = hook.wait_for(1)[0]
    running.json("POST", "/api/metrics", {"gauges": {"q": 1}})
    resolved = hook.wait_for(2)[1]
    for delivery in (firing, resolved):
        payload = standardwebhooks.Webhook(SECRET).verify(delivery["body"], delivery["headers"])
        assert delivery["headers"]["content-type"] == "application/json"
        assert payload["dashboard"] == {"url": running.server.url, "host": socket.gethostname()}
    first, second = json.loads(firing["body"]), json.loads(resolved["body"])
    assert first["type"] == "alert.firing" and second["type"] == "alert.resolved"
    assert first["id"] != second["id"] and firing["headers"]["webhook-id"] == first["id"]
    assert first["alert"] == {"name": "queue", "metric": "gauges.q", "value": 10, "threshold": 5.0,
                              "level": "warning", "message": "queue too long",
                              "started_at": first["alert"]["started_at"], "ended_at": None}
    assert second["alert"]["value"] == 1 and second["alert"]["ended_at"].endswith("Z")
    status = running.json("GET", "/api/alerts")[1]["notify"][0]
    assert status["state"] == "ok" and "s3cret" not in json.dumps(status)  # the URL's path is never shown


def test_500s_are_retried_with_growing_backoff_under_one_webhook_id(receiver):
    hook = receiver([(500, {}), (500, {}), (500, {})])
    n = notifier([Target("ops", hook.url, secret=SECRET)], backoff_s=0.2)
    n.alert_changed("alert.firing", ALERT)
    got = hook.wait_for(4)
    assert len({r["headers"]["webhook-id"] for r in got}) == 1
    gaps = [b["at"] - a["at"] for a, b in zip(got, got[1:])]
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4 and gaps[2] >= 0.8, gaps
    # The receiver records a request before it answers: wait for the notifier to read the 200.
    wait_until(lambda: n.status()[0]["attempts"] == 4, message="the fourth answer read")
    assert n.status()[0]["state"] == "ok"
    n.stop()


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured(receiver, status):
    hook = receiver([(status, {"Retry-After": "1"})])
    n = notifier([Target("ops", hook.url)], backoff_s=0.01)
    n.alert_changed("alert.firing", ALERT)
    got = hook.wait_for(2)
    assert got[1]["at"] - got[0]["at"] >= 1.0
    n.stop()


def test_410_disables_the_target_until_restart(receiver):
    hook = receiver([(410, {})])
    posted = []
    n = notifier([Target("ops", hook.url)], backoff_s=0.01, post=lambda *a, **k: posted.append(k.get("type")))
    n.alert_changed("alert.firing", ALERT)
    hook.wait_for(1)
    wait_until(lambda: n.status()[0]["state"] == "disabled", message="disabled")
    n.alert_changed("alert.resolved", dict(ALERT, ended_at=1700000100.0))
    n.alert_changed("alert.firing", dict(ALERT, name="other"))
    # Queuing is synchronous: nothing queued now means nothing is ever sent to it again.
    assert n.status()[0]["queued"] == 0 and n.status()[0]["state"] == "disabled"
    assert len(hook.requests) == 1
    assert posted == ["notify.disabled"]
    n.stop()


def test_a_flapping_rule_notifies_once_per_repeat_and_resolves_once_per_firing(receiver):
    hook = receiver()
    clock = [1000.0]
    n = notifier([Target("ops", hook.url, repeat_s=600)], clock=lambda: clock[0])
    kinds = []
    for _ in range(5):  # fire, resolve, fire, resolve ... within ten minutes
        n.alert_changed("alert.firing", ALERT)
        n.alert_changed("alert.resolved", ALERT)
        clock[0] += 10
    n.alert_changed("alert.firing", ALERT)   # and once more: it stays firing
    clock[0] += 600
    n.tick()                                 # the repeat interval is over: the firing that waited goes out
    n.tick()
    got = hook.wait_for(3)
    n.alert_changed("alert.resolved", ALERT)
    got = hook.wait_for(4)
    kinds = [json.loads(r["body"])["type"] for r in got]
    assert kinds == ["alert.firing", "alert.resolved", "alert.firing", "alert.resolved"]
    n.stop()


def test_the_notifier_keeps_its_own_clock_a_firing_that_waited_goes_by_itself(receiver):
    """#22: the resend clock ran inside the sampler's ``enrich``; now the notifier's own clock
    thread sends the firing that waited out ``repeat``, and ends with ``stop()``."""
    hook = receiver()
    clock = [1000.0]
    n = notifier([Target("ops", hook.url, repeat_s=600)], clock=lambda: clock[0], tick_s=0.02)
    n.alert_changed("alert.firing", ALERT)
    n.alert_changed("alert.resolved", ALERT)
    clock[0] += 10
    n.alert_changed("alert.firing", ALERT)  # within repeat: it waits
    hook.wait_for(2)
    clock[0] += 600                         # nobody calls tick(): the notifier's clock sees the time
    got = hook.wait_for(3)
    assert [json.loads(r["body"])["type"] for r in got] == ["alert.firing", "alert.resolved", "alert.firing"]
    assert "notify-clock" in [t.name for t in threading.enumerate()]
    n.stop()
    wait_until(lambda: "notify-clock" not in [t.name for t in threading.enumerate()], timeout=1,
               message="the clock thread ended")


def test_flood_control_is_safe_between_the_sampler_and_the_clock_thread(receiver):
    """Changes (the sampler's thread) and ticks (the clock's) meet in one flood state: neither
    sees it half-changed, and what is kept on disk is the last state decided."""
    clock = [1000.0]
    kept = []
    n = Notifier([Target("ops", receiver().url, repeat_s=5)], "http://127.0.0.1:8080/", max_queue=100_000,
                 clock=lambda: clock[0], persist=kept.append)  # not started: the queue only fills
    failed = []

    def tick_all_along():
        try:
            while not stop.is_set():
                n.tick()
        except Exception as exc:  # "dictionary changed size during iteration", without the lock
            failed.append(exc)
    stop = threading.Event()
    ticker = threading.Thread(target=tick_all_along)
    ticker.start()
    try:
        for i in range(300):
            for kind in ("alert.firing", "alert.resolved", "alert.firing"):  # the second firing waits
                n.alert_changed(kind, dict(ALERT, name="r%d" % i))
            clock[0] += 0.05
    finally:
        stop.set()
        ticker.join(5)
    clock[0] += 5
    n.tick()                                # the last firings that waited go too
    assert failed == []
    state = {(e["rule"], e["target"]): e for e in json.loads(kept[-1])}
    assert len(state) == 300 and all(e["waiting"] is None and e["open"] for e in state.values())
    assert n.status()[0]["queued"] == 900  # each name: a firing, its resolve, the firing that waited
    n.stop()


def test_failures_become_one_warning_event_and_one_when_it_works_again(make_server, receiver):
    hook = receiver([(500, {})] * 4)
    targets = [Target("ops", hook.url)]
    running = make_server(notify=targets)
    running.server.notifier.backoff_s = 0.05
    running.server.notifier.alert_changed("alert.firing", ALERT)
    hook.wait_for(5)
    wait_until(lambda: running.json("GET", "/api/events?types=notify.*")[1]["events"][-1:]
               and running.json("GET", "/api/events?types=notify.*")[1]["events"][-1]["type"] == "notify.ok",
               message="the recovery event")
    events = running.json("GET", "/api/events?types=notify.*")[1]["events"]
    assert [e["type"] for e in events] == ["notify.failing", "notify.ok"]
    assert "s3cret" not in json.dumps(events)


def test_a_receiver_that_never_answers_stalls_nothing(make_server):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # connections wait in the backlog: accepted by the kernel, never answered
    try:
        rules = parse_rules({"rules": [{"name": "q", "metric": "gauges.q", "op": ">", "threshold": 5}]})
        url = "http://127.0.0.1:%d/hook" % silent.getsockname()[1]
        running = make_server(alert_rules=rules, notify=parse_targets([{"name": "void", "url": url}]), interval_s=0.1)
        running.json("POST", "/api/metrics", {"gauges": {"q": 10}})
        wait_until(lambda: running.json("GET", "/api/alerts")[1]["alerts"], message="firing")
        seq = running.server.sampler.seq
        started = time.monotonic()
        wait_until(lambda: running.server.sampler.seq >= seq + 20, timeout=4, message="samples keep coming")
        assert time.monotonic() - started < 3.5  # 20 samples at 0.1 s while the sender waits on the receiver
        for _ in range(10):  # and requests answer at once
            assert running.json("POST", "/api/events", {"message": "still here"})[0] == 201
        assert running.server.notifier.status()[0]["attempts"] == 0  # its one attempt is still waiting
    finally:
        silent.close()


def test_the_test_endpoint_answers_with_each_targets_result(make_server, receiver):
    good, bad = receiver(), receiver([(500, {})])
    running = make_server(token="t", notify=parse_targets([{"name": "good", "url": good.url},
                                                            {"name": "bad", "url": bad.url}]))
    assert running.json("POST", "/api/alerts/test")[0] == 401
    status, body = running.json("POST", "/api/alerts/test", headers={"Authorization": "Bearer t"})
    assert status == 502
    assert [(r["target"], r["ok"], r["status"]) for r in body["results"]] == [("good", True, 200), ("bad", False, 500)]
    assert json.loads(good.requests[0]["body"])["type"] == "test"
    assert len(bad.requests) == 1  # a test is not retried


def test_the_test_endpoint_without_targets_says_how_to_add_one(server):
    status, body = server.json("POST", "/api/alerts/test")
    assert status == 400 and "notify" in body["error"]


MESSAGE = {"type": "alert.firing", "id": "msg_1", "timestamp": "2026-11-30T12:00:00.000Z",
           "alert": {"name": "disk_full", "metric": "system.disk_percent", "value": 93.5, "threshold": 90.0,
                     "level": "error", "message": "disk <b>more</b> than 90 % full & <!channel>",
                     "started_at": "2026-11-30T12:00:00.000Z", "ended_at": None},
           "dashboard": {"url": "http://127.0.0.1:8080/", "host": "box"}}


def test_ntfy_slack_and_discord_shapes_are_exactly_the_documented_ones(receiver):
    # ntfy (docs.ntfy.sh "Publishing"): the message as the body, Title, Priority and Tags headers.
    body, headers = render(Target("n", "http://x/t", "ntfy"), MESSAGE)
    assert body == "disk <b>more</b> than 90 % full & <!channel>".encode()
    assert headers == {"Content-Type": "text/plain; charset=utf-8", "Title": "ERROR: disk_full",
                       "Priority": "urgent", "Tags": "rotating_light"}
    # Slack incoming webhooks: {"text": ...}, with & < > escaped (api.slack.com "Formatting text").
    body, headers = render(Target("s", "http://x/s", "slack"), MESSAGE)
    assert body == (b'{"text":"*ERROR: disk_full*\\ndisk &lt;b&gt;more&lt;/b&gt; than 90 % full &amp; '
                    b'&lt;!channel&gt;"}')
    # Discord webhooks: {"content": ...}; allowed_mentions with no parse: nobody is pinged.
    body, headers = render(Target("d", "http://x/d", "discord"), MESSAGE)
    assert body == (b'{"content":"**ERROR: disk_full**\\ndisk <b>more</b> than 90 % full & <!channel>",'
                    b'"allowed_mentions":{"parse":[]}}')
    # And on the wire, to a real receiver: the same bytes, and a UTF-8 title RFC 2047-encoded.
    hook = receiver()
    n = notifier([Target("n", hook.url, "ntfy")])
    n.alert_changed("alert.firing", dict(ALERT, name="dísk", message="plein ✓"))
    got = hook.wait_for(1)[0]
    assert got["body"] == "plein ✓".encode() and got["headers"]["title"] == "=?utf-8?b?RVJST1I6IGTDrXNr?="
    n.stop()


@pytest.mark.parametrize("document,words", [
    ({"notify": [{"name": "ops", "url": "ftp://x"}]}, "url"),
    ({"notify": [{"name": "ops", "url": "http://x", "format": "teams"}]}, "format"),
    ({"notify": [{"name": "ops", "url": "http://x", "levels": ["info"]}]}, "levels"),
    ({"notify": [{"name": "ops", "url": "http://x"}, {"name": "ops", "url": "http://y"}]}, "twice"),
    ({"notify": [{"name": "ops", "url": "http://x"}],
      "rules": [{"name": "r", "metric": "gauges.q", "op": ">", "threshold": 1, "notify": ["pager"]}]}, "pager"),
    ({"heartbeats": {"job": {"every": 60, "notify": ["pager"]}}}, "there are none"),
])
def test_bad_notify_config_is_named(tmp_path, document, words):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match=words):
        load_config(str(path))


def test_a_rule_notifies_only_the_targets_it_names(receiver):
    a, b = receiver(), receiver()
    n = notifier([Target("a", a.url), Target("b", b.url, levels=("error",))])
    n.alert_changed("alert.firing", dict(ALERT, name="r1"), ("a",))
    n.alert_changed("alert.firing", dict(ALERT, name="r2", level="warning"))  # b takes errors only
    a.wait_for(2)
    n.alert_changed("alert.firing", dict(ALERT, name="r3"), ("b",))
    b.wait_for(1)
    assert [json.loads(r["body"])["alert"]["name"] for r in b.requests] == ["r3"]
    n.stop()


# --- a slow target and the test call (issue #21, item 3) ----------------------------------

QUEUE_RULE = {"rules": [{"name": "queue", "metric": "gauges.q", "op": ">", "threshold": 5}]}


def test_a_slow_target_never_delays_another_target(make_server, receiver, silent_url):
    """#21: one sender thread took one target after another, so a target that takes its 10 s
    held every other target's alert behind it."""
    fast = receiver()
    running = make_server(alert_rules=parse_rules(QUEUE_RULE),
                          notify=parse_targets([{"name": "slow", "url": silent_url()},
                                                {"name": "fast", "url": fast.url}]))
    running.json("POST", "/api/metrics", {"gauges": {"q": 10}})
    firing = fast.wait_for(1, timeout=2)[0]  # well before the slow target's 10 s timeout
    assert json.loads(firing["body"])["type"] == "alert.firing"
    assert {t["name"]: t["state"] for t in running.json("GET", "/api/alerts")[1]["notify"]} == {
        "slow": "idle", "fast": "ok"}


def test_the_test_call_answers_in_bounded_time_and_holds_back_no_real_alert(make_server, receiver, silent_url):
    """#21: test deliveries went ahead of real alerts, a call waited up to 25 s for a slow target,
    and every parallel call held a request thread and queued one delivery per target."""
    fast = receiver()
    running = make_server(alert_rules=parse_rules(QUEUE_RULE),
                          notify=parse_targets([{"name": "slow", "url": silent_url()},
                                                {"name": "fast", "url": fast.url}]))
    baseline = threading.active_count()
    first = {}

    def first_call():
        started = time.monotonic()
        first["status"], _, raw = running.request("POST", "/api/alerts/test", timeout=TEST_ANSWER_S + 5)
        first["took"], first["body"] = time.monotonic() - started, json.loads(raw)

    caller = threading.Thread(target=first_call)
    caller.start()
    fast.wait_for(1, timeout=2)  # the test is under way: the fast target has its test, the slow one hangs

    def another_call(_):
        try:
            status, headers, raw = running.request("POST", "/api/alerts/test", timeout=1.5)
            return status, headers.get("Retry-After"), json.loads(raw)
        except OSError as exc:  # a timeout: the call is held
            return repr(exc), None, None
    with ThreadPoolExecutor(10) as pool:
        others = list(pool.map(another_call, range(10)))
    assert all(status == 429 and retry_after and "test" in body["error"] for status, retry_after, body in others), \
        others[:2]
    # The ten refused calls hold no thread: only the first call (its client and request threads)
    # and the slow target's test delivery are left beyond what ran before (once the threads
    # that served the refusals have seen their clients hang up).
    wait_until(lambda: threading.active_count() - baseline <= 3, timeout=2,
               message="no more threads than before, but the first call's: %s" % threading.enumerate())

    running.json("POST", "/api/metrics", {"gauges": {"q": 10}})  # a real alert while the test runs
    got = fast.wait_for(2, timeout=3)  # not after the slow target's 10 s
    assert json.loads(got[1]["body"])["type"] == "alert.firing"

    caller.join(TEST_ANSWER_S + 5)
    assert first["took"] < TEST_ANSWER_S + 1, first
    assert first["status"] == 202
    assert first["body"]["results"] == [
        {"target": "slow", "ok": None, "status": None, "error": None, "pending": True},
        {"target": "fast", "ok": True, "status": 200, "error": None, "pending": False}]
    assert len(fast.requests) == 2  # one test, one firing: the ten refused calls sent nothing


def test_stopping_waits_for_no_slow_target(silent_url, receiver):
    """Three targets each in the middle of a delivery that would take its 10 s, one idle:
    stopping waits for none of the three (their daemon threads are left to their timeout;
    SIGTERM must exit within 2 s in all), and the idle sender has ended."""
    n = notifier([Target(name, silent_url()) for name in ("a", "b", "c")] + [Target("idle", receiver().url)])
    n.alert_changed("alert.firing", ALERT, ("a", "b", "c"))
    wait_until(lambda: all(t["queued"] == 0 for t in n.status()), message="all three in flight")
    started = time.monotonic()
    n.stop()
    assert time.monotonic() - started < 0.25
    wait_until(lambda: "notify-idle" not in [t.name for t in threading.enumerate()], timeout=1,
               message="the idle sender ended")


# --- URLs that http.client refuses, credentials, and errors nobody expected (item 4) --------

@pytest.mark.parametrize("url", [
    "http://127.0.0.1/hook/s3cret path", "http://127.0.0.1/hook/s3cret\\x01", "http://127.0.0.1/hook/s3cret\\t",
    "http://127.0.0.1/hook/s3cret\\x7f", "http://127.0.0.1/hook?token=s3cret\\n", "http://127.0.0.1/hook/s3cr\\u00e9t",
    "http://127.0.0.1:99999/hook/s3cret", "http://127.0.0.1:x/hook/s3cret", "http://127.0.0.1 /hook/s3cret",
])
def test_a_url_http_client_would_refuse_is_refused_at_load_without_echoing_it(tmp_path, url):
    """#21: a space or control character passed the load and broke every delivery later."""
    url = url.encode().decode("unicode_escape")
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"notify": [{"name": "ops", "url": url}]}))
    with pytest.raises(ValueError, match="notify target ops: url") as refused:
        load_config(str(path))
    assert "s3cr" not in str(refused.value) and "127.0.0.1" not in str(refused.value)


def _http_client_refuses(url: str) -> bool:
    """Whether urllib/http.client would raise on ``url`` before sending (no connection is made)."""
    try:
        request = urllib.request.Request(url, data=b"", method="POST")
        conn = http.client.HTTPConnection(request.host)
        conn.putrequest("POST", request.selector, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", request.host)
        return False
    except (ValueError, http.client.HTTPException, UnicodeError):
        return True


@pytest.mark.parametrize("char", [chr(c) for c in range(0x00, 0x21)] + ["\x7f", "\x85", "\u00a0", "\u2028", "é"])
@pytest.mark.parametrize("where", ["path", "query", "host"])
def test_every_url_http_client_refuses_is_refused_at_load(char, where):
    url = {"path": "http://example.com/a%sb", "query": "http://example.com/a?b=%s",
           "host": "http://exa%smple.com/a"}[where] % char
    try:
        parse_targets([{"name": "ops", "url": url}])
        accepted = True
    except ValueError:
        accepted = False
    assert not (accepted and _http_client_refuses(url)), repr(url)


def test_valid_urls_are_still_accepted():
    for url in ("http://example.com", "https://example.com:8443/a/b?c=d&e=%20f", "http://[::1]:8080/x",
                "https://hooks.slack.com/services/T000/B000/XXXX", "http://xn--bcher-kva.example/t"):
        assert parse_targets([{"name": "ops", "url": url}])[0].url == url


def test_credentials_in_the_url_are_sent_as_basic_auth(receiver):
    """#21: ``user:pass@`` was taken for part of the host name: every delivery failed."""
    hook = receiver()
    url = hook.url.replace("http://", "http://alice:p%40ss%3Aword@")
    target = parse_targets([{"name": "ops", "url": url}])[0]
    assert target.where == "http://127.0.0.1:%d" % hook.server.server_address[1]
    n = notifier([target])
    n.alert_changed("alert.firing", ALERT)
    got = hook.wait_for(1, timeout=3)[0]
    assert got["headers"]["authorization"] == "Basic " + base64.b64encode(b"alice:p@ss:word").decode()
    assert got["path"] == "/hook/s3cret-path"
    wait_until(lambda: n.status()[0]["state"] == "ok", message="ok")
    assert "p%40ss" not in json.dumps(n.status())
    n.stop()


def test_a_garbled_answer_is_a_failed_attempt_posted_once_and_retried():
    """#21: an exception urllib does not wrap (http.client's BadStatusLine here) escaped the
    handling: no retry, the target stayed idle, no notify.failing. Its text (the receiver's
    line, 6,000 characters here) is cut short enough for an event message."""
    garbler = socket.socket()
    garbler.bind(("127.0.0.1", 0))
    garbler.listen(16)
    answered = []

    def answer_garbage():
        while True:
            try:
                conn, _ = garbler.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"NOT HTTP " * 666 + b"\r\n\r\n")
                answered.append(1)
    threading.Thread(target=answer_garbage, daemon=True).start()
    events = EventLog()
    url = "http://127.0.0.1:%d/hook/s3cret-path" % garbler.getsockname()[1]
    n = notifier([Target("ops", url)], backoff_s=0.05, post=functools.partial(events.post, by_dashboard=True))
    try:
        n.alert_changed("alert.firing", ALERT)
        wait_until(lambda: len(answered) >= 3, timeout=3, message="three attempts (retried)")
        wait_until(lambda: n.status()[0]["attempts"] >= 3, timeout=2, message="attempts counted")
        status = n.status()[0]
        assert status["state"] == "failing" and "BadStatusLine" in status["last_error"]
        assert [e.type for e in events.since(0)] == ["notify.failing"]
    finally:
        n.stop()
        garbler.close()


def test_an_unexpected_error_is_logged_without_the_urls_secret_and_retried(caplog):
    """Whatever a delivery raises is one failed attempt: logged without the URL's path or
    query (Slack's and Discord's secret), retried, and the target shows failing."""
    calls = []

    def broken_opener(request, timeout):
        calls.append(request.full_url)
        raise RuntimeError("cannot send to %s" % request.full_url)
    posted = []
    url = "http://127.0.0.1:9/hook/s3cret-path?token=s3cret-query"
    n = notifier([Target("ops", url)], opener=broken_opener, backoff_s=0.05,
                 post=lambda level, message, **k: posted.append((k["type"], message)))
    try:
        with caplog.at_level(logging.DEBUG, logger="sse_dashboard.alerting.notify"):
            n.alert_changed("alert.firing", ALERT)
            wait_until(lambda: n.status()[0]["attempts"] >= 3, timeout=3, message="retried")
        status = n.status()[0]
        assert status["state"] == "failing" and status["last_error"].startswith("RuntimeError")
        assert [kind for kind, _ in posted] == ["notify.failing"]
        logged = caplog.text + "".join(str(r.exc_info) for r in caplog.records)
        assert "RuntimeError" in logged and "s3cret" not in logged
        assert "s3cret" not in json.dumps(status) + json.dumps(posted)
    finally:
        n.stop()


# --- dropped notifications (item 11) ------------------------------------------------------

def test_dropped_notifications_warn_once_a_minute_per_target_with_a_count(caplog, receiver):
    """#21: every dropped notification logged a WARNING line, with no rate limit."""
    clock = [1000.0]
    hook = receiver()
    n = Notifier([Target("a", hook.url), Target("b", hook.url)], "http://127.0.0.1:8080/", max_queue=2,
                 clock=lambda: clock[0])  # not started: nothing leaves the queues
    with caplog.at_level(logging.WARNING, logger="sse_dashboard.alerting.notify"):
        for i in range(50):
            n.alert_changed("alert.firing", dict(ALERT, name="r%d" % i), ("a",))
        n.alert_changed("alert.firing", dict(ALERT, name="r0"), ("b",))
        n.alert_changed("alert.firing", dict(ALERT, name="r1"), ("b",))
        n.alert_changed("alert.firing", dict(ALERT, name="r2"), ("b",))
        n.tick()
        lines = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
        assert len(lines) == 2, lines  # one for a (its first drop), one for b
        clock[0] += 61
        n.tick()  # a minute on: the drops since then are counted in one more line
    lines = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(lines) == 3 and "47" in lines[2] and " a" in lines[2], lines
    assert {t["name"]: t["dropped"] for t in n.status()} == {"a": 48, "b": 1}
    n.stop()


def test_a_firing_rule_survives_restarts_one_firing_one_resolve_and_repeat_remembered(make_server, receiver,
                                                                                        tmp_path):
    """#21 item 2: firing, clean stop, start again (twice): no second alert.firing event or
    webhook; the resolve reaches the target with the first firing's start; and a new firing
    within `repeat` of the last one sent waits, across the restart too."""
    hook = receiver()
    rules = parse_rules({"rules": [{"name": "deep", "metric": "gauges.q", "op": ">", "threshold": 5}]})
    targets = [Target("ops", hook.url, repeat_s=3600)]

    def start():
        return make_server(alert_rules=rules, notify=targets, data_dir=tmp_path)

    def alert_events(running):
        return [e for e in running.json("GET", "/api/events")[1]["events"] if e["type"] and e["type"].startswith("alert.")]

    running = start()
    running.json("POST", "/api/metrics", {"gauges": {"q": 10}})
    hook.wait_for(1)
    wait_until(lambda: alert_events(running), message="the firing event")
    for _ in range(2):
        running.stop()
        running = start()
        seq = running.server.sampler.seq
        wait_until(lambda: running.server.sampler.seq >= seq + 3, message="three samples after the restart")
        assert [a["rule"] for a in running.json("GET", "/api/alerts")[1]["alerts"]] == ["deep"]
    assert [e["type"] for e in alert_events(running)] == ["alert.firing"]
    assert len(hook.requests) == 1
    running.json("POST", "/api/metrics", {"gauges": {"q": 1}})
    wait_until(lambda: len(alert_events(running)) == 2, message="the resolve event")
    first, resolved = (json.loads(r["body"]) for r in hook.wait_for(2))
    assert resolved["type"] == "alert.resolved" and resolved["alert"]["started_at"] == first["alert"]["started_at"]
    running.stop()
    running = start()
    running.json("POST", "/api/metrics", {"gauges": {"q": 10}})  # fires again within the hour's repeat
    wait_until(lambda: len(alert_events(running)) == 3, message="the second firing event")
    seq = running.server.sampler.seq
    wait_until(lambda: running.server.sampler.seq >= seq + 3, message="three samples")
    assert len(hook.requests) == 2  # it waits for the repeat interval, remembered across the restart


def test_an_alert_whose_rule_was_removed_is_resolved_after_the_restart(make_server, receiver, tmp_path):
    hook = receiver()
    rules = parse_rules({"rules": [{"name": "deep", "metric": "gauges.q", "op": ">", "threshold": 5}]})
    running = make_server(alert_rules=rules, notify=[Target("ops", hook.url)], data_dir=tmp_path)
    running.json("POST", "/api/metrics", {"gauges": {"q": 10}})
    hook.wait_for(1)
    running.stop()
    running = make_server(notify=[Target("ops", hook.url)], data_dir=tmp_path)  # the rule is gone
    resolved = json.loads(hook.wait_for(2)[1]["body"])
    assert resolved["type"] == "alert.resolved" and resolved["alert"]["name"] == "deep"
    events = running.json("GET", "/api/events")[1]["events"]
    assert [e["type"] for e in events if e["source"] == "alerts"] == ["alert.firing", "alert.resolved"]
    assert running.json("GET", "/api/alerts")[1]["alerts"] == []


def test_a_notification_links_to_the_public_url_behind_a_proxy(make_server, receiver):
    hook = receiver()
    rules = parse_rules({"rules": [{"name": "deep", "metric": "gauges.q", "op": ">", "threshold": 5}]})
    running = make_server(alert_rules=rules, notify=[Target("ops", hook.url)], public_url="https://dash.example.org")
    running.json("POST", "/api/metrics", {"gauges": {"q": 10}})
    payload = json.loads(hook.wait_for(1)[0]["body"])
    assert payload["dashboard"]["url"] == "https://dash.example.org/"
