"""Input that used to break the server (issue 11, items 5-8, 11 and 14): each gets a 4xx JSON
error, stores nothing, logs no traceback, and leaves the server healthy."""

from __future__ import annotations

import http.client
import json
import logging
import re
import socket

import pytest

from conftest import wait_until


@pytest.fixture
def no_tracebacks(caplog):
    """Fails the test if anything logged an exception or an ERROR while it ran."""
    caplog.set_level(logging.DEBUG)
    yield
    # In teardown, caplog.records would be teardown's own records: look at the test's.
    bad = [r for r in caplog.get_records("call") if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad]


def healthy(server) -> None:
    assert server.json("GET", "/api/health")[0] == 200


def post_raw(server, path, raw: bytes, headers=None):
    headers = dict({"Content-Type": "application/json"}, **(headers or {}))
    status, _, body = server.request("POST", path, raw, headers)
    return status, json.loads(body) if body else None


def test_deeply_nested_json_is_a_400(server, no_tracebacks):
    for raw in (b"[" * 30000, b'{"message": "x", "data": ' + b"[" * 30000 + b"]" * 30000 + b"}",
                b'{"counters": ' + b'{"a":' * 5000 + b"1" + b"}" * 5001):
        status, body = post_raw(server, "/api/events", raw)
        assert status == 400 and "deep" in body["error"]
    assert server.server.events.last_id == 0
    healthy(server)


def test_nesting_within_the_limit_is_fine(server):
    data = 1
    for _ in range(30):
        data = [data]
    assert server.json("POST", "/api/events", {"message": "deep but fine", "data": data})[0] == 201


@pytest.mark.parametrize("raw", [
    b'{"message": "a\\ud800"}',
    b'{"message": "ok", "source": "\\udfff"}',
    b'{"message": "ok", "data": {"k": "\\ud800"}}',
    b'{"message": "ok", "data": {"\\ud800": 1}}',
    b'{"message": "ok", "\\ud800": 1}',
])
def test_lone_surrogates_are_refused_in_memory_mode_too(server, sse_reader, no_tracebacks, raw):
    reader = sse_reader(server)
    reader.next_event("metrics")
    status, body = post_raw(server, "/api/events", raw)
    assert status == 400 and ("Unicode" in body["error"] or "unknown field" in body["error"])
    assert server.server.events.last_id == 0
    status, _, listing = server.request("GET", "/api/events")
    assert status == 200 and json.loads(listing)["events"] == []
    assert server.request("GET", "/api/events?format=csv")[2].startswith(b"id,ts,")
    # the open stream is unharmed: the next event arrives as a normal frame
    server.json("POST", "/api/events", {"message": "after"})
    assert json.loads(reader.next_event("log")["data"])["message"] == "after"


def test_an_unknown_key_is_never_echoed_raw(server, no_tracebacks):
    status, body = post_raw(server, "/api/metrics", b'{"\\ud800<script>": 1}')
    assert status == 400 and "Unicode" in body["error"] and "script" not in body["error"]
    status, body = post_raw(server, "/api/metrics", b'{"<script>\\u00e9' + b"x" * 500 + b'": 1}')
    assert status == 400 and "unknown field" in body["error"] and len(body["error"]) < 200
    assert '"<script>\\u00e9xxx' in body["error"]  # quoted, ASCII, cut short


def stream_status(server, path: str, headers: bytes = b"") -> bytes:
    """The status line of a stream request sent as raw bytes (a header byte such as 0xB2 is
    "²" to http.server, which decodes headers as Latin-1)."""
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(b"GET " + path.encode("ascii") + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + b"\r\n")
        reply = b""
        while b"\r\n" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    return reply.split(b"\r\n")[0]


@pytest.mark.parametrize("value", [b"\xb2", b"9" * 5000, b"-1", b"1.5", b" 3x", "\u0663".encode("utf-8")])
def test_odd_last_event_ids_start_a_normal_stream(server, no_tracebacks, value):
    assert stream_status(server, "/api/metrics/stream", b"Last-Event-ID: " + value + b"\r\n").endswith(b"200 OK")
    for query in ("%C2%B2", "%B2", "9" * 5000):
        assert stream_status(server, "/api/metrics/stream?lastEventId=" + query).endswith(b"200 OK")


@pytest.mark.parametrize("length", [b"\xb2", b"9" * 5000, b"-5", b"1e3", b"", "\u0663".encode("utf-8")])
def test_odd_content_lengths_are_a_400(server, no_tracebacks, length):
    head = (b"POST /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + length + b"\r\n\r\n")
    reply = server.raw(head + b'{"message":"x"}')
    assert reply.startswith(b"HTTP/1.0 400") or reply.startswith(b"HTTP/1.1 400"), reply[:80]
    assert b'"error"' in reply
    assert server.server.events.last_id == 0


@pytest.mark.parametrize("query", [
    "/api/metrics/history?seconds=" + "9" * 400,
    "/api/metrics/history?seconds=%C2%B2",
    "/api/events?since=" + "9" * 20,
    "/api/events?limit=99999999999999999999&from=0",
    "/api/events?since=99999999999999999999&format=csv",
    "/api/events?since=%D9%A3",
])
def test_out_of_range_query_numbers_are_a_400_before_any_200(server, no_tracebacks, query):
    status, headers, body = server.request("GET", query)
    assert status == 400 and "whole number" in json.loads(body)["error"]


def test_a_very_long_static_path_is_a_404(server, no_tracebacks):
    status, _, body = server.request("GET", "/static/" + "a" * 5000 + ".js")
    assert status == 404 and json.loads(body) == {"error": "not found"}


def test_an_export_that_fails_midway_does_not_look_complete(make_server, tmp_path, caplog):
    running = make_server(data_dir=tmp_path)
    for i in range(3):
        running.server.events.post("info", "e%d" % i)
    store = running.server.store
    real = store.iter_events

    def failing(*args, **kwargs):
        events = real(*args, **kwargs)
        yield next(events)
        raise OSError("disk read error")

    store.iter_events = failing
    conn = http.client.HTTPConnection(running.host, running.port, timeout=5)
    conn.request("GET", "/api/events?from=0&format=csv")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Transfer-Encoding") == "chunked"
    with pytest.raises((http.client.IncompleteRead, ValueError)):  # ValueError: no next chunk size
        resp.read()
    conn.close()
    store.iter_events = real
    conn = http.client.HTTPConnection(running.host, running.port, timeout=5)
    conn.request("GET", "/api/events?from=0&format=csv")
    assert conn.getresponse().read().count(b"\r\n") == 4  # header + 3 rows, complete
    conn.close()


def test_an_export_that_fails_at_once_is_an_error_status(make_server, tmp_path):
    running = make_server(data_dir=tmp_path)

    def broken(*args, **kwargs):
        raise OSError("disk read error")
        yield  # pragma: no cover

    running.server.store.iter_events = broken
    status, _, body = running.request("GET", "/api/events?from=0")
    assert status == 500 and json.loads(body) == {"error": "internal server error"}


# --- tokens ------------------------------------------------------------------------


def test_the_token_never_reaches_the_log(make_server, caplog):
    from sse_dashboard.web.handler import access_log
    running = make_server(token="s3cret")
    caplog.set_level(logging.DEBUG, logger="sse_dashboard.web.access")
    access_log.setLevel(logging.INFO)
    try:
        running.request("GET", "/?token=s3cret")
        running.request("GET", "/?token=wrong&x=1")
        running.request("GET", "/api/health", headers={"Authorization": "Bearer s3cret"})
    finally:
        access_log.setLevel(logging.WARNING)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "token=[redacted]" in text
    assert "s3cret" not in text and "wrong" not in text


@pytest.mark.parametrize("token", ["pässwörd", "two words", "semi;colon", 'quote"d', "ünï cödé; =x"])
def test_any_typeable_token_logs_in_and_its_cookie_works(make_server, no_tracebacks, token):
    import urllib.parse

    running = make_server(token=token)
    status, headers, _ = running.request("GET", "/?token=" + urllib.parse.quote(token))
    assert status == 303
    cookie = headers["Set-Cookie"].split(";")[0]
    status, _, _ = running.request("GET", "/api/health", headers={"Cookie": cookie})
    assert status == 200
    bearer = ("Bearer " + token).encode("utf-8").decode("latin-1")
    assert running.request("GET", "/api/health", headers={"Authorization": bearer})[0] == 200


def test_another_apps_odd_cookie_does_not_hide_ours(make_server):
    running = make_server(token="t0k")
    name = "sse_dashboard_token_%d" % running.port
    for header in ('prefs={"a":1}; %s=t0k' % name, '%s=t0k; prefs={"a":1}; x' % name,
                   'a=b;;  %s="t0k" ; c' % name):
        assert running.request("GET", "/api/health", headers={"Cookie": header})[0] == 200, header
    assert running.request("GET", "/api/health", headers={"Cookie": 'prefs={"a":1}'})[0] == 401


@pytest.mark.parametrize("token", ["tab\there", "new\nline", "   "])
def test_a_token_that_cannot_work_is_refused_at_start(spawn, token):
    p = spawn("--port", "0", "--token", token)
    assert p.proc.wait(10) == 2
    assert "--token" in p.output and "Traceback" not in p.output


# --- names and hosts ------------------------------------------------------------------


def test_odd_counter_names_keep_valid_and_distinct_prometheus_names(server):
    server.json("POST", "/api/metrics", {"counters": {":": 1, "_": 2, "a:b": 3, "a_b": 4}})
    wait_until(lambda: b"a_b" in server.request("GET", "/metrics")[2], message="sampled")
    _, _, text = server.request("GET", "/metrics")
    lines = [line for line in text.decode().splitlines() if line and not line.startswith("#")]
    app = {line.split()[0]: line.split()[1] for line in lines if not line.startswith(("system_", "sse_dashboard_"))}
    assert sorted(app.values()) == ["1", "2", "3", "4"]  # none dropped
    assert not any(name.startswith("__") for name in app)


@pytest.mark.parametrize("host", ["[::1]evil.com", "[::1]:80evil", "[127.0.0.1]", "[::1", "[::1]:"])
def test_a_host_that_only_starts_like_an_ip_is_refused(server, host):
    reply = server.raw(("GET /api/health HTTP/1.1\r\nHost: %s\r\n\r\n" % host).encode())
    assert reply.split(b" ")[1] in (b"421", b"400"), reply[:60]


def test_a_bracketed_ipv6_host_with_a_port_is_fine(server):
    assert server.raw(b"GET /api/health HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n").split(b" ")[1] == b"200"


def test_the_server_stays_healthy_after_all_of_it(server):
    with socket.create_connection((server.host, server.port)) as sock:
        sock.sendall(b"POST /api/events HTTP/1.1\r\nContent-Length: \xb2\r\n\r\n")
        sock.recv(100)
    wait_until(lambda: server.json("GET", "/api/health")[0] == 200, message="healthy")


@pytest.mark.parametrize("line", [b"GET /api/health", b"GET /api/health HTTP/0.9", b"GET  HTTP/1.0"])
def test_a_request_line_without_a_version_still_gets_a_status_line(server, line):
    reply = server.raw(line + b"\r\nHost: 127.0.0.1\r\n\r\n")
    assert re.match(rb"HTTP/1\.[01] (200|404) ", reply), reply[:60]
