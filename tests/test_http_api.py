"""The JSON API against the real server over real sockets."""

import json

import pytest

from conftest import wait_until
from sse_dashboard.web.request import MAX_BODY_BYTES


def test_snapshot_has_the_documented_shape(server):
    status, snap = server.json("GET", "/api/metrics")
    assert status == 200
    assert set(snap) >= {"seq", "ts", "interval", "system", "counters", "gauges", "server"}
    assert snap["interval"] == pytest.approx(0.2)
    assert snap["system"]["source"] in ("psutil", "stdlib")
    assert set(snap["server"]) >= {"clients", "dropped", "rss_bytes", "uptime"}


def test_snapshot_seq_increases(server):
    first = server.json("GET", "/api/metrics")[1]["seq"]
    wait_until(lambda: server.json("GET", "/api/metrics")[1]["seq"] > first, message="a newer seq")


def test_health(server):
    status, body = server.json("GET", "/api/health")
    assert status == 200
    assert body["status"] == "ok" and body["clients"] == 0 and body["uptime"] >= 0 and body["version"]


def test_post_event_returns_201_and_the_stored_event(server):
    status, event = server.json("POST", "/api/events", {"message": "backup done", "level": "warning",
                                                        "source": "cron", "data": {"files": 3}})
    assert status == 201
    assert event["id"] == 1 and event["level"] == "warning" and event["source"] == "cron"
    assert event["data"] == {"files": 3} and event["message"] == "backup done"
    _, listed = server.json("GET", "/api/events")
    assert listed["events"] == [event]


def test_post_event_defaults_to_info_from_app(server):
    _, event = server.json("POST", "/api/events", {"message": "hi \u2603 \U0001F680"})
    assert (event["level"], event["source"], event["message"]) == ("info", "app", "hi \u2603 \U0001F680")


def test_get_events_since_limit_and_level(server):
    for i, level in enumerate(["info", "error", "warning", "error"]):
        server.json("POST", "/api/events", {"message": "m%d" % i, "level": level})
    ids = lambda q: [e["id"] for e in server.json("GET", "/api/events" + q)[1]["events"]]  # noqa: E731
    assert ids("") == [1, 2, 3, 4]
    assert ids("?since=2") == [3, 4]
    assert ids("?limit=2") == [3, 4]
    assert ids("?level=error") == [2, 4]
    assert ids("?since=1&level=error&limit=1") == [2]  # a cursor: the oldest after it
    _, page = server.json("GET", "/api/events?since=0&limit=3")
    assert [e["id"] for e in page["events"]] == [1, 2, 3] and page["more"] is True and page["next"] == 3
    _, page = server.json("GET", "/api/events?since=3&limit=3")
    assert [e["id"] for e in page["events"]] == [4] and page["more"] is False and page["next"] == 4
    _, newest = server.json("GET", "/api/events?limit=2")
    assert newest["more"] is True and newest["next"] == 4


@pytest.mark.parametrize("stored", [False, True])
def test_paging_with_since_sees_every_event_once_while_more_arrive(make_server, tmp_path, stored):
    running = make_server(data_dir=tmp_path if stored else None, max_events=25, post_rate_per_s=0)
    for i in range(33):
        running.server.events.post("info", "e%d" % i)
    seen, cursor, pages = [], 0, 0
    while True:
        if 0 < pages <= 3:  # new events keep arriving while the client pages
            running.server.events.post("info", "late%d" % pages)
        _, page = running.json("GET", "/api/events?since=%d&limit=10" % cursor)
        seen += [e["id"] for e in page["events"]]
        cursor, pages = page["next"], pages + 1
        if not page["more"]:
            break
    # Every event is seen exactly once, in order; from memory, only those the ring still held.
    last = running.server.events.last_id
    assert last > 33 and seen == list(range(1 if stored else seen[0], last + 1)) and seen[0] <= 9


def test_a_write_is_visible_to_the_next_read(make_server):
    running = make_server(interval_s=3600)  # no sample will come: the read must not wait for one
    assert running.json("POST", "/api/metrics", {"counters": {"jobs": 2}, "gauges": {"depth": 7}})[0] == 200
    snapshot = running.json("GET", "/api/metrics")[1]
    assert snapshot["counters"] == {"jobs": 2} and snapshot["gauges"] == {"depth": 7}
    text = running.request("GET", "/metrics")[2].decode()
    assert "\njobs_total 2\n" in text and "\ndepth 7\n" in text


def test_post_metrics_then_the_snapshot_shows_them(server):
    status, body = server.json("POST", "/api/metrics", {"counters": {"jobs_done": 2}, "gauges": {"queue_depth": 7.5}})
    assert status == 200 and body == {"status": "ok", "counters": {"jobs_done": 2}, "gauges": {"queue_depth": 7.5}}
    # The answer carries the stored values of the names it touched: the total, not the delta.
    assert server.json("POST", "/api/metrics", {"counters": {"jobs_done": 3}})[1]["counters"] == {"jobs_done": 5}

    def shown():
        snap = server.json("GET", "/api/metrics")[1]
        return snap["counters"].get("jobs_done") == 5 and snap["gauges"].get("queue_depth") == 7.5

    wait_until(shown, message="posted metrics in the snapshot")


BAD_EVENTS = [
    ("invalid JSON", b"{not json", 400, "valid UTF-8 JSON"),
    ("not an object", b"[1, 2]", 400, "JSON object"),
    ("invalid UTF-8", b'{"message": "\xff\xfe"}', 400, "UTF-8"),
    ("NaN", b'{"message": "x", "data": NaN}', 400, "JSON"),
    ("missing message", b'{"level": "info"}', 400, "message is required"),
    ("message not a string", b'{"message": 5}', 400, "message must be a non-empty string"),
    ("empty message", b'{"message": ""}', 400, "message must be a non-empty string"),
    ("unknown level", b'{"message": "x", "level": "fatal"}', 400, "level must be one of info, warning, error"),
    ("level wrong type", b'{"message": "x", "level": 3}', 400, "level must be one of"),
    ("source wrong type", b'{"message": "x", "source": []}', 400, "source must be"),
    ("unknown field", b'{"message": "x", "colour": "red"}', 400, "unknown field"),
]


@pytest.mark.parametrize("why, body, status, error", BAD_EVENTS, ids=[b[0] for b in BAD_EVENTS])
def test_bad_event_gets_json_error_and_stores_nothing(server, why, body, status, error):
    got, headers, raw = server.request("POST", "/api/events", body, {"Content-Type": "application/json"})
    assert got == status
    assert headers["Content-Type"].startswith("application/json")
    assert error in json.loads(raw)["error"]
    assert server.server.events.last_id == 0
    assert server.json("GET", "/api/health")[0] == 200


BAD_METRICS = [
    ("negative counter", {"counters": {"c": -1}}, "must not be negative"),
    ("bad name", {"gauges": {"bad name": 1}}, "metric name"),
    ("string value", {"gauges": {"g": "7"}}, "finite number"),
    ("bool value", {"counters": {"c": True}}, "finite number"),
    ("not an object", {"counters": [1]}, "counters must be an object"),
    ("null gauges (found by schemathesis)", {"counters": {}, "gauges": None}, "gauges must be an object"),
    ("delta too large", {"counters": {"c": 1e16}}, "at most"),
    ("unknown field", {"histograms": {}}, "unknown field"),
    ("one bad among good", {"counters": {"ok": 1}, "gauges": {"g": None}}, "finite number"),
]


@pytest.mark.parametrize("why, body, error", BAD_METRICS, ids=[b[0] for b in BAD_METRICS])
def test_bad_metrics_get_400_and_store_nothing(server, why, body, error):
    status, reply = server.json("POST", "/api/metrics", body)
    assert status == 400 and error in reply["error"]
    assert server.server.registry.snapshot() == ({}, {})


def test_body_over_64_kib_is_413_before_reading(server):
    body = b'{"message": "' + b"x" * MAX_BODY_BYTES + b'"}'
    status, reply = server.json("POST", "/api/events", body, {"Content-Type": "application/json"})
    assert status == 413 and "at most" in reply["error"]
    assert server.server.events.last_id == 0


def test_declared_length_over_the_cap_is_refused_without_sending_a_body(server):
    # Only headers are sent: the server must answer from Content-Length alone.
    reply = server.raw(b"POST /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                       b"Content-Length: 10000000\r\n\r\n", half_close=False)
    assert reply.startswith(b"HTTP/1.1 413") and b"Connection: close" in reply


def test_wrong_content_type_is_415(server):
    status, reply = server.json("POST", "/api/events", b'{"message": "x"}', {"Content-Type": "text/plain"})
    assert status == 415 and "application/json" in reply["error"]
    assert server.server.events.last_id == 0


def test_truncated_body_is_400(server):
    reply = server.raw(b"POST /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                       b"Content-Length: 100\r\n\r\n{\"message\": \"x\"}")
    assert reply.startswith(b"HTTP/1.1 400") and b"shorter" in reply
    assert server.server.events.last_id == 0


def test_missing_content_length_is_400(server):
    reply = server.raw(b"POST /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400") and b"Content-Length" in reply


@pytest.mark.parametrize("method, path, allow", [
    ("DELETE", "/api/events", "GET, HEAD, POST"),
    ("PUT", "/api/metrics", "GET, HEAD, POST"),
    ("POST", "/api/health", "GET, HEAD"),
    ("POST", "/api/metrics/stream", "GET, HEAD"),
    ("POST", "/", "GET, HEAD"),
])
def test_wrong_method_is_405_with_allow(server, method, path, allow):
    status, headers, raw = server.request(method, path, b"{}", {"Content-Type": "application/json"})
    assert status == 405
    assert headers["Allow"] == allow
    assert json.loads(raw) == {"error": "method not allowed"}


@pytest.mark.parametrize("path", ["/api/nope", "/api/metrics/", "/api", "/nothing-here"])
def test_unknown_path_is_404_json(server, path):
    status, body = server.json("GET", path)
    assert status == 404 and body == {"error": "not found"}


def test_bad_query_values_are_400(server):
    for query in ("?since=abc", "?limit=0", "?limit=-5", "?level=debug"):
        status, body = server.json("GET", "/api/events" + query)
        assert status == 400 and "error" in body, query


def test_an_internal_error_is_500_without_exception_text(server, caplog):
    def broken():
        raise RuntimeError("secret internals")

    server.server.sampler.latest = broken  # the only way to make a healthy handler fail
    status, body = server.json("GET", "/api/metrics")
    assert status == 500 and body == {"error": "internal server error"}
    assert any("secret internals" in r.getMessage() or r.exc_info for r in caplog.records)


def test_history_has_columns_for_system_and_app_series(server):
    server.json("POST", "/api/metrics", {"counters": {"jobs": 1}, "gauges": {"q": 2}})
    wait_until(lambda: len(server.json("GET", "/api/metrics/history")[1]["ts"]) >= 3 and
               "gauges.q" in server.json("GET", "/api/metrics/history")[1]["series"], message="3 samples")
    status, body = server.json("GET", "/api/metrics/history?seconds=60")
    assert status == 200 and body["interval"] == pytest.approx(0.2)
    n = len(body["ts"])
    assert body["ts"] == sorted(body["ts"])
    for name in ("system.memory_percent", "system.cpu_percent", "gauges.q", "counters.jobs", "server.clients"):
        assert len(body["series"][name]) == n, name


def test_history_seconds_limits_the_window(make_server):
    server = make_server(interval_s=0.05)
    wait_until(lambda: server.server.sampler.seq >= 40, message="40 samples")
    ts = server.json("GET", "/api/metrics/history?seconds=1")[1]["ts"]
    assert 0 < len(ts) <= 22 and ts[-1] - ts[0] <= 1.0


def test_history_csv_download(server):
    wait_until(lambda: server.server.sampler.seq >= 2, message="2 samples")
    status, headers, body = server.request("GET", "/api/metrics/history?format=csv")
    assert status == 200
    assert headers["Content-Type"] == "text/csv; charset=utf-8"
    assert headers["Content-Disposition"].startswith("attachment")
    lines = body.decode().splitlines()
    header = lines[0].split(",")
    assert header[:2] == ["ts", "time_utc"] and "system.cpu_count" in header
    assert len(lines) >= 3 and all(len(line.split(",")) == len(header) for line in lines[1:])


def test_events_csv_download_quotes_formulas(server):
    server.json("POST", "/api/events", {"message": "=HYPERLINK(\"http://x\",\"click\")", "level": "error",
                                        "source": "+cmd", "data": {"a": "b, c"}})
    server.json("POST", "/api/events", {"message": "plain \u2603"})
    status, headers, body = server.request("GET", "/api/events?format=csv")
    assert status == 200 and headers["Content-Type"] == "text/csv; charset=utf-8"
    import csv
    import io

    rows = list(csv.reader(io.StringIO(body.decode("utf-8"))))
    assert rows[0] == ["id", "ts", "time_utc", "level", "source", "message", "data"]
    assert rows[1][5] == "'=HYPERLINK(\"http://x\",\"click\")" and rows[1][4] == "'+cmd"
    assert json.loads(rows[1][6]) == {"a": "b, c"}
    assert rows[2][5] == "plain \u2603" and rows[2][6] == ""
    assert rows[1][2].endswith("Z")


@pytest.mark.parametrize("query", ["?format=xml", "?seconds=0", "?seconds=x"])
def test_bad_history_queries_are_400(server, query):
    status, body = server.json("GET", "/api/metrics/history" + query)
    assert status == 400 and "error" in body


def test_http_1_1_keeps_the_connection_for_ordinary_requests(server):
    import http.client

    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    try:
        conn.request("GET", "/api/health")
        assert conn.getresponse().read() and conn.sock is not None
        sock = conn.sock
        conn.request("POST", "/api/events", body=b'{"message": "on the same connection"}',
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 201 and resp.read() and conn.sock is sock
        conn.request("GET", "/api/metrics")
        resp = conn.getresponse()
        assert resp.status == 200 and json.loads(resp.read()) and conn.sock is sock
    finally:
        conn.close()


def test_an_unread_body_closes_the_connection_instead_of_being_parsed(server):
    body = b'GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'  # would look like a request
    reply = server.raw(b"POST /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
                       b"Content-Length: %d\r\n\r\n%s" % (len(body), body), half_close=False)
    assert reply.startswith(b"HTTP/1.1 415") and reply.count(b"HTTP/1.1 ") == 1


def test_an_idle_keep_alive_connection_is_closed_after_the_request_timeout(make_server):
    import time

    running = make_server(request_timeout_s=0.5)
    started = time.monotonic()
    reply = running.raw(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", half_close=False)
    assert reply.startswith(b"HTTP/1.1 200") and 0.3 < time.monotonic() - started < 3


def test_a_keep_alive_client_is_answered_without_the_delayed_ack_wait(server):
    """Headers and body go out as two writes; with Nagle's algorithm the body waited for the
    client's delayed ACK of the headers, 40 ms on Linux, on every keep-alive request (a
    requests.Session got at most ~25 answers a second). The median of 15 must be far below."""
    import http.client
    import statistics
    import time

    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    latencies = []
    for i in range(15):
        started = time.perf_counter()
        conn.request("POST", "/api/metrics", body=json.dumps({"counters": {"n": 1}}),
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        assert response.status == 200
        latencies.append(time.perf_counter() - started)
    conn.close()
    assert statistics.median(latencies) < 0.02, latencies


def test_a_labeled_metric_is_deleted_by_the_name_it_was_posted_under(server):
    """The registry keeps labels in canonical order; a DELETE spelling them as the POST did got 404."""
    import urllib.parse

    posted = 'jobs{queue="mail",host="a"}'
    assert server.json("POST", "/api/metrics", {"counters": {posted: 1}})[0] == 200
    status, body = server.json("DELETE", "/api/metrics/counters/" + urllib.parse.quote(posted, safe=""))
    assert status == 200, body
    assert server.json("GET", "/api/metrics")[1]["counters"] == {}
