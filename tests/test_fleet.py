"""The fleet page's listing (#25): what each dashboard pushes says where its page is; the dashboard
with ``--fleet`` asks the engine from the server, once per refresh for every viewer, and an engine
that is down, slow or answers garbage never holds up the page, the stream or ``GET /api/fleet``.

The engine here is a small scripted Prometheus query API on a real socket (the answers are the
shapes Prometheus 2.42 gives); tests/test_fleet_browser.py runs the whole thing against a real
Prometheus and Chromium."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
import urllib.parse

import pytest

from conftest import check_public_names, wait_until
from sse_dashboard.export.remote_write import tick_series
from sse_dashboard.fleet import engine as fleet_engine, view as fleet_view
from sse_dashboard.fleet.view import FleetSettings, promql_instances

NOW = 1_800_000_000.0


class FakeEngine:
    """A Prometheus query API answering from ``world`` (instance -> what it reports), or failing as
    ``mode`` says: "ok", "500", "garbage", "slow", "redirect", "error-json", "not-json-502"."""

    def __init__(self):
        self.mode = "ok"
        self.world: dict[str, dict] = {}
        self.queries: list[tuple[str, str]] = []
        self.release = threading.Event()
        engine = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                form = urllib.parse.parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
                engine.queries.append((self.path, form["query"][0]))
                status, body, headers = engine.answer(self.path, form)
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def answer(self, path, form):
        if self.mode == "slow":
            self.release.wait(10)
        if self.mode == "500":
            return 500, b"internal error", ()
        if self.mode == "not-json-502":
            return 502, b"<html>Bad Gateway</html>", ()
        if self.mode == "redirect":
            return 302, b"", (("Location", "http://elsewhere.example/"),)
        if self.mode == "garbage":
            return 200, b'{"status": "success", "data": {"resultType": "vector", "result": [{"metric": 7}]}}', ()
        if self.mode == "error-json":
            return 400, json.dumps({"status": "error", "errorType": "bad_data", "error": "parse error"}).encode(), ()
        query = form["query"][0]
        if path.endswith("/query_range"):
            start, step = float(form["start"][0]), float(form["step"][0])
            result = [{"metric": {"instance": name}, "values": [[start + step * i, str(v)] for i, v in
                                                                enumerate(row.get("spark", []))]}
                      for name, row in self.world.items()]
            return 200, self._success("matrix", result), ()
        if "timestamp(sse_dashboard_info)" in query:
            result = [{"metric": {"instance": name, "url": row.get("url", ""), "version": "9.9", "source": "psutil"},
                       "value": [NOW, str(NOW - row.get("age", 1.0))]} for name, row in self.world.items()]
        else:
            result = [{"metric": {"instance": name, "fleet_part": part}, "value": [NOW, str(row[part])]}
                      for name, row in self.world.items() for part in ("cpu", "memory", "disk", "alerts", "jobs_down")
                      if part in row]
        return 200, self._success("vector", result), ()

    @staticmethod
    def _success(kind, result):
        return json.dumps({"status": "success", "data": {"resultType": kind, "result": result}}).encode()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def engine():
    made = FakeEngine()
    yield made
    made.close()


def refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return "http://127.0.0.1:%d" % sock.getsockname()[1]  # closed again: nothing listens there


def fleet_server(make_server, url, **settings):
    settings.setdefault("timeout_s", 0.5)
    settings.setdefault("refresh_s", 0.2)
    return make_server(fleet=FleetSettings(url, **settings))


# --- identity --------------------------------------------------------------------------------

def test_the_pushed_info_series_carries_the_dashboards_url_and_version(make_server):
    running = make_server(remote_write=("http://127.0.0.1:9/api/v1/write",), instance="box-1")
    snapshot = running.server.app.sampler.latest()[0]
    assert snapshot["identity"]["url"] == running.url + "/"
    rows = dict(tick_series(snapshot, "box-1"))
    info = [labels for labels in rows if ("__name__", "sse_dashboard_info") in labels]
    assert len(info) == 1
    labels = dict(info[0])
    assert labels["url"] == running.url + "/" and labels["version"] and labels["instance"] == "box-1", labels
    assert rows[info[0]] == 1


def test_the_info_series_names_the_public_url_when_there_is_one(make_server):
    running = make_server(remote_write=("http://127.0.0.1:9/api/v1/write",), public_url="https://dash.example.org")
    assert running.server.app.sampler.latest()[0]["identity"]["url"] == "https://dash.example.org/"


# --- the listing ---------------------------------------------------------------------------

def test_the_listing_puts_silent_then_alerting_then_jobs_down_first_and_links_only_http_urls(make_server, engine):
    engine.world = {
        "a-fine": {"url": "http://10.0.0.1:8080/", "cpu": 0.25, "memory": 0.5, "disk": 0.125, "alerts": 0,
                   "jobs_down": 0, "spark": [0.1, 0.2]},
        "b-silent": {"url": "https://b.example/", "age": 600.0, "cpu": 0.1},
        "c-alerts": {"url": "javascript:alert(1)", "alerts": 2, "cpu": 0.3},
        "d-jobs": {"url": "/relative", "jobs_down": 1},
        "<img src=x onerror=alert(1)>": {"url": "data:text/html,hi", "cpu": 0.0},
    }
    running = fleet_server(make_server, engine.url, stale_s=60)
    listing = wait_until(lambda: (lambda d: d if d["engine"]["state"] == "ok" else None)(
        running.json("GET", "/api/fleet")[1]), timeout=5, message="an answered listing")
    rows = listing["instances"]
    assert [r["instance"] for r in rows] == ["b-silent", "c-alerts", "d-jobs", "<img src=x onerror=alert(1)>", "a-fine"]
    by_name = {r["instance"]: r for r in rows}
    assert by_name["b-silent"]["stale"] and by_name["b-silent"]["age_s"] == 600.0
    assert not by_name["a-fine"]["stale"]
    assert [by_name[n]["url"] for n in ("a-fine", "b-silent", "c-alerts", "d-jobs")] == [
        "http://10.0.0.1:8080/", "https://b.example/", None, None]
    assert by_name["<img src=x onerror=alert(1)>"]["url"] is None
    fine = by_name["a-fine"]
    assert (fine["cpu_percent"], fine["memory_percent"], fine["disk_percent"], fine["version"]) == (25.0, 50.0, 12.5, "9.9")
    assert fine["cpu_history"][:2] == [10.0, 20.0] and len(fine["cpu_history"]) == listing["history_points"]
    assert by_name["c-alerts"]["alerts_firing"] == 2 and by_name["d-jobs"]["jobs_down"] == 1
    # The per-instance questions are narrowed to the instances listed, escaped for RE2.
    narrowed = [q for path, q in engine.queries if "label_replace" in q]
    assert narrowed and promql_instances(sorted(engine.world)) in narrowed[-1]


def test_more_instances_than_the_bound_are_counted_not_listed(make_server, engine):
    engine.world = {"host-%02d" % i: {"cpu": 0.1} for i in range(5)}
    running = fleet_server(make_server, engine.url, max_instances=3)
    listing = wait_until(lambda: (lambda d: d if d["engine"]["state"] == "ok" else None)(
        running.json("GET", "/api/fleet")[1]), timeout=5, message="an answered listing")
    assert len(listing["instances"]) == 3 and listing["truncated"] is True
    assert any("topk(4," in q for _, q in engine.queries)  # the engine is asked for the bound + 1 only


def test_promql_instances_escapes_every_re2_special_and_the_quotes():
    matcher = promql_instances(['a.b', 'c|d', 'e"f\\g', "(h)+[i]{j}^$*?"])
    assert matcher == r'instance=~"a\\.b|c\\|d|e\"f\\\\g|\\(h\\)\\+\\[i\\]\\{j\\}\\^\\$\\*\\?"'


# --- viewers and the engine's load ---------------------------------------------------------

def test_nobody_looking_asks_the_engine_nothing_and_many_viewers_cost_one_question_set(make_server, engine, sse_reader):
    engine.world = {"a": {"cpu": 0.1}}
    running = fleet_server(make_server, engine.url, refresh_s=0.5)
    time.sleep(1.0)  # (measuring that nothing happens: nothing to wait for)
    assert engine.queries == []
    readers = [sse_reader(running, "/api/metrics/stream?metrics=0&fleet=1&types=fleet") for _ in range(5)]
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(running.json("GET", "/api/fleet"))) for _ in range(10)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    for reader in readers:
        wait_until(lambda: json.loads(reader.next_event("fleet")["data"])["engine"]["state"] == "ok", timeout=5,
                   message="a fleet frame from the engine")
    elapsed = time.monotonic() - started
    assert len(answers) == 10 and all(status == 200 for status, _ in answers)
    sets = sum(1 for _, q in engine.queries if "timestamp(sse_dashboard_info)" in q)
    assert 1 <= sets <= elapsed / 0.5 + 2, (sets, elapsed)


def test_a_fleet_stream_gets_each_new_listing_and_no_events(make_server, engine, sse_reader):
    engine.world = {"a": {"cpu": 0.1}}
    running = fleet_server(make_server, engine.url)
    reader = sse_reader(running, "/api/metrics/stream?metrics=0&fleet=1&types=fleet")
    first = reader.next_frame()
    assert first["retry"] is not None
    assert reader.next_frame()["event"] == "fleet"  # at once, as it stands
    running.json("POST", "/api/events", {"message": "not for the fleet page"})
    checked = [json.loads(reader.next_event("fleet")["data"])["engine"]["checked_at"] for _ in range(3)]
    assert checked == sorted(checked) and len(set(checked)) == 3
    assert b"not for the fleet page" not in reader.buffer


def test_without_fleet_the_api_and_the_stream_say_404_and_a_client_cannot_post_a_fleet_event(server):
    status, body = server.json("GET", "/api/fleet")
    assert status == 404 and "--fleet" in body["error"]
    status, _, raw = server.request("GET", "/api/metrics/stream?fleet=1")
    assert status == 404 and b"--fleet" in raw
    assert "fleet" not in server.json("GET", "/api/metrics")[1]
    status, body = server.json("POST", "/api/events", {"message": "x", "type": "fleet"})
    assert status == 400, body
    assert server.request("GET", "/fleet")[0] == 200  # the page says itself there is no engine


# --- a broken engine -------------------------------------------------------------------------

@pytest.mark.parametrize("mode, state, says", [
    ("refused", "down", "refused"),
    ("500", "error", "HTTP 500"),
    ("not-json-502", "error", "HTTP 502"),
    ("garbage", "error", "not a Prometheus query answer"),
    ("error-json", "error", "parse error"),
    ("redirect", "error", "redirect"),
    ("slow", "down", "in time"),
])
def test_a_broken_engine_shows_as_such_promptly_and_the_page_and_stream_go_on(make_server, engine, sse_reader,
                                                                             mode, state, says):
    engine.mode = mode
    running = fleet_server(make_server, refused_url() if mode == "refused" else engine.url, timeout_s=0.5)
    metrics_stream = sse_reader(running)
    started = time.monotonic()
    status, listing = running.json("GET", "/api/fleet")
    took = time.monotonic() - started
    assert status == 200 and took < 0.5 + 0.8, took
    listing = wait_until(lambda: (lambda d: d if d["engine"]["state"] != "starting" else None)(
        running.json("GET", "/api/fleet")[1]), timeout=3, message="the engine's state")
    assert listing["engine"]["state"] == state and says in listing["engine"]["error"], listing["engine"]
    assert listing["instances"] == [] and listing["as_of"] is None
    # The dashboard itself: its page, its API and its stream go on.
    assert running.request("GET", "/")[0] == 200
    seq = running.json("GET", "/api/metrics")[1]["seq"]
    wait_until(lambda: running.json("GET", "/api/metrics")[1]["seq"] > seq + 1, timeout=3, message="ticks")
    assert metrics_stream.next_event("metrics")["data"]
    fleet_stream = sse_reader(running, "/api/metrics/stream?metrics=0&fleet=1&types=fleet")
    frame = wait_until(lambda: (lambda d: d if d["engine"]["state"] == state else None)(
        json.loads(fleet_stream.next_event("fleet")["data"])), timeout=3, message="the state on the stream")
    assert says in frame["engine"]["error"]


def test_an_engine_that_goes_away_keeps_the_last_listing_with_its_time_and_comes_back(make_server, engine):
    engine.world = {"a": {"cpu": 0.1}}
    running = fleet_server(make_server, engine.url)
    good = wait_until(lambda: (lambda d: d if d["engine"]["state"] == "ok" else None)(
        running.json("GET", "/api/fleet")[1]), timeout=5, message="an answered listing")
    engine.mode = "500"
    bad = wait_until(lambda: (lambda d: d if d["engine"]["state"] == "error" else None)(
        running.json("GET", "/api/fleet")[1]), timeout=5, message="the engine in error")
    assert [r["instance"] for r in bad["instances"]] == ["a"] and bad["as_of"] == good["as_of"]
    engine.mode = "ok"
    wait_until(lambda: running.json("GET", "/api/fleet")[1]["engine"]["state"] == "ok", timeout=5, message="back")


def test_an_answer_past_the_bound_is_an_error_not_read_whole(engine):
    engine.world = {"host-%04d" % i: {"url": "http://x.example/" + "p" * 200} for i in range(100)}
    client = fleet_engine.QueryClient(engine.url, max_answer_bytes=4096)
    with pytest.raises(fleet_engine.EngineError, match="larger than 4096 bytes"):
        client.instant("timestamp(sse_dashboard_info)", time.monotonic() + 2)


def test_the_fleet_url_is_checked_and_its_password_shown_nowhere(make_server, engine, caplog):
    with pytest.raises(ValueError, match="http:// or https://"):
        FleetSettings("ftp://x")
    engine.mode = "500"
    secret_url = engine.url.replace("http://", "http://user:s3cret@") + "/prefix"
    running = fleet_server(make_server, secret_url)
    listing = wait_until(lambda: (lambda d: d if d["engine"]["state"] == "error" else None)(
        running.json("GET", "/api/fleet")[1]), timeout=5, message="the engine in error")
    assert listing["engine"]["url"] == engine.url + "/prefix"
    assert engine.queries[0][0] == "/prefix/api/v1/query"
    assert "s3cret" not in json.dumps(listing) and "s3cret" not in caplog.text


def test_public_names():
    check_public_names(fleet_engine)
    check_public_names(fleet_view)
