"""Read-only share links (#26), against the real server: an admin makes a link, its viewer reads
only the link's sections with what is hidden in anything shared removed, writes nothing, and a
revoked or expired link ends at once, open streams too. Also: ping secrets only for write/admin."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys

import pytest

from conftest import ROOT, SSEReader, wait_until
from sse_dashboard.web.shares import MAX_SHARES, SECTIONS, ShareStore, parse_duration
from sse_dashboard.web.tokens import token_digest

ROOT_TOKEN = "root-token"
ADMIN = {"Authorization": "Bearer " + ROOT_TOKEN}
SECRET_IP = "192.168.77.31"
SECRET_V6 = "fd00:beef::17"
SECRET_DATA = "the-event-data-payload"
SECRET_OUTPUT = "TOP-SECRET-RUN-OUTPUT"
HOST = socket.gethostname()


@pytest.fixture
def dash(make_server, tmp_path):
    return make_server(token=ROOT_TOKEN, post_rate_per_s=0, data_dir=tmp_path)


def make_link(server, *sections, **options):
    status, body = server.json("POST", "/api/shares", dict({"sections": list(sections)}, **options), ADMIN)
    assert status == 201, body
    return body


def share_get(server, path, link, headers=None):
    joiner = "&" if "?" in path else "?"
    status, answer_headers, raw = server.request("GET", path + joiner + "share=" + link["id"], headers=headers)
    return status, answer_headers, raw


def fill(server):
    """Data with a secret in every place a share must hide it."""
    server.json("POST", "/api/metrics", {"counters": {"orders": 3}}, ADMIN)
    server.json("POST", "/api/events", {"message": "login from %s and %s" % (SECRET_IP, SECRET_V6),
                                        "data": {"note": SECRET_DATA}}, ADMIN)
    server.json("POST", "/api/events", {"message": "disk full on %s" % HOST, "source": HOST}, ADMIN)
    server.json("POST", "/api/jobs", {"slug": "backup", "schedule": 3600}, ADMIN)
    status, _, _ = server.request("POST", "/ping/%s/backup" % server.server.app.jobs.ping_key,
                                  body=SECRET_OUTPUT.encode(), headers={"Content-Type": "text/plain"})
    assert status == 200
    wait_until(lambda: server.json("GET", "/api/metrics", headers=ADMIN)[1]["jobs"], message="a sample with the job")


def test_an_admin_makes_a_link_shown_once_and_kept_as_a_hash(dash, tmp_path):
    link = make_link(dash, "system", "jobs", expires_in_s=3600, kiosk=True)
    assert link["url"] == "/s/" + link["id"] and len(link["id"]) >= 40
    status, listing = dash.json("GET", "/api/shares", headers=ADMIN)
    assert status == 200 and [s["sections"] for s in listing["shares"]] == [["system", "jobs"]]
    shown = json.dumps(listing)
    assert link["id"] not in shown and token_digest(link["id"]) not in shown
    kept = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert link["id"].encode() not in kept and token_digest(link["id"]).encode() in kept
    status, headers, page = dash.request("GET", link["url"])
    assert status == 200 and b"<html" in page.lower()
    assert headers["Content-Security-Policy"] and headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer" and "no-store" in headers["Cache-Control"]


@pytest.mark.parametrize("bad", [{"sections": []}, {"sections": ["everything"]}, {"sections": "system"},
                                 {"sections": ["system"], "expires_in_s": -1}, {"sections": ["system"], "kiosk": 1},
                                 {"sections": ["system"], "more": 1}, {}])
def test_bad_links_are_refused_clearly_and_keep_nothing(dash, bad):
    status, body = dash.json("POST", "/api/shares", bad, ADMIN)
    assert status == 400 and body["error"]
    assert dash.json("GET", "/api/shares", headers=ADMIN)[1]["shares"] == []


def test_links_are_bounded(dash):
    store = dash.server.shares
    for _ in range(MAX_SHARES):
        store.add(("system",))
    status, body = dash.json("POST", "/api/shares", {"sections": ["system"]}, ADMIN)
    assert status == 400 and str(MAX_SHARES) in body["error"]


def test_a_link_reads_only_its_sections(dash):
    fill(dash)
    link = make_link(dash, "system", "jobs")
    status, _, raw = share_get(dash, "/api/metrics", link)
    snapshot = json.loads(raw)
    assert status == 200 and snapshot["system"]["cpu_count"] and snapshot["jobs"][0]["slug"] == "backup"
    assert "counters" not in snapshot and "gauges" not in snapshot and "alerts" not in snapshot
    status, _, raw = share_get(dash, "/api/metrics/history?seconds=60", link)
    series = json.loads(raw)["series"]
    assert status == 200 and series and all(name.startswith(("system.", "server.")) for name in series)
    status, _, raw = share_get(dash, "/api/events", link)
    assert status == 200 and json.loads(raw)["events"] == []  # as its stream: no events without the section
    for path in ("/api/processes", "/api/alerts"):
        status, _, raw = share_get(dash, path, link)
        assert status == 403 and "section" in json.loads(raw)["error"], path
    metrics_only = make_link(dash, "metrics")
    snapshot = json.loads(share_get(dash, "/api/metrics", metrics_only)[2])
    assert snapshot["counters"] == {"orders": 3} and "system" not in snapshot and "jobs" not in snapshot


def test_nothing_hidden_reaches_a_share_session(dash):
    fill(dash)
    link = make_link(dash, *SECTIONS, hide_hosts=True)
    job = dash.json("GET", "/api/jobs", headers=ADMIN)[1]
    secrets = [SECRET_IP, SECRET_V6, SECRET_DATA, SECRET_OUTPUT, job["ping_key"], job["jobs"][0]["id"],
               socket.gethostname()]
    answers = b""
    for path in ("/api/metrics", "/api/metrics/history?seconds=60", "/api/events", "/api/jobs", "/api/jobs/backup",
                 "/api/jobs/backup/runs", "/api/alerts", "/api/share"):
        status, _, raw = share_get(dash, path, link)
        assert status == 200, (path, raw)
        answers += raw
    assert b"login from" in answers and b"backup" in answers and b"disk full on" in answers  # what is shown is there
    for secret in secrets:
        assert secret.encode() not in answers, secret
    status, _, raw = share_get(dash, "/api/processes", link)
    processes = json.loads(raw)
    assert status == 200
    for row in processes.get("cpu", []) + processes.get("memory", []):
        assert set(row) <= {"pid", "name", "cpu_percent", "rss_bytes"}


def test_host_names_are_hidden_only_when_the_link_says_so(dash):
    fill(dash)
    plain, hiding = make_link(dash, "events"), make_link(dash, "events", hide_hosts=True)
    assert HOST.encode() in share_get(dash, "/api/events", plain)[2]
    raw = share_get(dash, "/api/events", hiding)[2]
    assert HOST.encode() not in raw and b"disk full on [hidden]" in raw


def test_a_share_session_changes_nothing(dash):
    link = make_link(dash, *SECTIONS)
    for method, path in (("POST", "/api/events"), ("POST", "/api/metrics"), ("POST", "/api/shares"),
                         ("DELETE", "/api/metrics/counters/x"), ("POST", "/api/jobs"), ("GET", "/api/tokens"),
                         ("GET", "/api/shares"), ("POST", "/mcp")):
        status, _, raw = dash.request(method, path + "?share=" + link["id"], body={"message": "x"})
        assert status == 403 and "share link" in json.loads(raw)["error"], (method, path)
    assert dash.server.events.last_id == 0


def test_a_share_stream_carries_only_its_sections_and_counts_against_max_clients(make_server, tmp_path):
    server = make_server(token=ROOT_TOKEN, post_rate_per_s=0, data_dir=tmp_path, max_clients=1)
    link = make_link(server, "system")
    reader = SSEReader(server.host, server.port, path="/api/metrics/stream?share=" + link["id"])
    try:
        assert reader.status == 200
        server.json("POST", "/api/metrics", {"counters": {"orders": 1}}, ADMIN)
        server.json("POST", "/api/events", {"message": "secret " + SECRET_IP}, ADMIN)
        last_id = server.server.events.last_id
        seen = 0
        while seen < 3:  # three samples after the event: a link without "events" is sent none of them
            frame = reader.next_frame()
            if frame["data"] is None:
                continue  # retry:, a heartbeat
            assert frame.get("event") == "metrics" and SECRET_IP not in frame.get("data", ""), frame
            snapshot = json.loads(frame["data"])
            assert "system" in snapshot and "counters" not in snapshot and "jobs" not in snapshot
            seen += server.server.hub._cursor >= last_id
        status, _, raw = share_get(server, "/api/metrics/stream", link)
        assert status == 503, raw  # the one slot is taken by the share viewer
    finally:
        reader.close()


def test_a_link_with_events_streams_them_scrubbed(dash):
    link = make_link(dash, "events")
    reader = SSEReader(dash.host, dash.port, path="/api/metrics/stream?share=" + link["id"])
    try:
        dash.json("POST", "/api/events", {"message": "from " + SECRET_IP, "data": {"k": SECRET_DATA}}, ADMIN)
        event = json.loads(reader.next_event("log")["data"])
        assert event["message"] == "from [hidden]" and "data" not in event
    finally:
        reader.close()


def test_a_revoked_link_ends_at_once_its_open_stream_too(dash):
    link = make_link(dash, "system")
    reader = SSEReader(dash.host, dash.port, path="/api/metrics/stream?share=" + link["id"])
    try:
        assert reader.status == 200 and reader.next_event("metrics")
        handle = dash.json("GET", "/api/shares", headers=ADMIN)[1]["shares"][0]["handle"]
        assert dash.json("DELETE", "/api/shares/" + handle, headers=ADMIN)[0] == 200
        with pytest.raises(EOFError):
            for _ in range(100):
                reader.next_frame(timeout=3)
    finally:
        reader.close()
    assert dash.request("GET", link["url"])[0] == 404
    assert share_get(dash, "/api/metrics", link)[0] == 404
    assert dash.json("DELETE", "/api/shares/" + handle, headers=ADMIN)[0] == 404


def test_an_expired_link_answers_410_and_its_stream_ends(dash):
    link = make_link(dash, "system", expires_in_s=0.5)
    reader = SSEReader(dash.host, dash.port, path="/api/metrics/stream?share=" + link["id"])
    try:
        assert reader.status == 200
        with pytest.raises(EOFError):
            for _ in range(100):
                reader.next_frame(timeout=3)
    finally:
        reader.close()
    assert dash.request("GET", link["url"])[0] == 410
    assert share_get(dash, "/api/metrics", link)[0] == 410


def test_the_store_expires_links_on_its_clock_and_bumps_its_generation():
    now = [1000.0]
    store = ShareStore(None, clock=lambda: now[0])
    link_id, share = store.add(("jobs",), expires_in_s=60)
    assert store.lookup(link_id) == (share, "ok") and store.is_valid(share.digest)
    generation = store.generation
    now[0] += 61
    assert store.lookup(link_id)[1] == "expired" and not store.is_valid(share.digest)
    assert store.generation > generation
    assert store.lookup("nope") == (None, "unknown")


@pytest.mark.parametrize("text,seconds", [("7d", 7 * 86400), ("12h", 43200), ("30m", 1800), ("45s", 45), ("90", 90)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_ping_secrets_are_shown_only_to_write_and_admin(dash):
    fill(dash)
    tokens = {}
    for name, scopes in (("read", ["read"]), ("write", ["read", "write"])):
        status, body = dash.json("POST", "/api/tokens", {"name": name + "-bot", "scopes": scopes}, ADMIN)
        tokens[name] = {"Authorization": "Bearer " + body["token"]}
    admin_view = dash.json("GET", "/api/jobs", headers=ADMIN)[1]
    uuid_re = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
    assert admin_view["ping_key"] and uuid_re.search(json.dumps(admin_view).encode())
    assert dash.json("GET", "/api/jobs", headers=tokens["write"])[1]["ping_key"] == admin_view["ping_key"]
    for path in ("/api/jobs", "/api/jobs/backup"):
        status, _, raw = dash.request("GET", path, headers=tokens["read"])
        assert status == 200 and admin_view["ping_key"].encode() not in raw and not uuid_re.search(raw), path


def run_share_cli(*args, data_dir):
    return subprocess.run([sys.executable, str(ROOT / "sse_server.py"), "share", *args, "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=30, cwd=str(ROOT))


def test_the_cli_adds_lists_and_revokes_links_a_running_dashboard_takes(make_server, tmp_path):
    server = make_server(token=ROOT_TOKEN, post_rate_per_s=0, data_dir=tmp_path)
    made = run_share_cli("add", "--section", "system", "--section", "jobs", "--expires", "7d", "--kiosk",
                         data_dir=tmp_path)
    assert made.returncode == 0, made.stderr
    url = made.stdout.strip()
    assert url.startswith("/s/") and url[3:] not in (tmp_path / "shares.json").read_text()
    server.server.shares.refresh(force=True)
    assert server.request("GET", url)[0] == 200
    listed = run_share_cli("list", data_dir=tmp_path)
    assert "system,jobs" in listed.stdout and "kiosk" in listed.stdout and url[3:] not in listed.stdout
    handle = listed.stdout.split()[0]
    assert run_share_cli("revoke", handle, data_dir=tmp_path).returncode == 0
    server.server.shares.refresh(force=True)
    assert server.request("GET", url)[0] == 404
    assert run_share_cli("revoke", handle, data_dir=tmp_path).returncode == 1
    bad = run_share_cli("add", "--section", "system", "--expires", "soon", data_dir=tmp_path)
    assert bad.returncode == 1 and "duration" in bad.stderr


def test_exports_are_refused_to_a_share_session_and_its_id_is_kept_out_of_the_logs(dash, caplog):
    """Exports stream rows past the JSON filter (CSV, from/to): a link does not get them."""
    import logging
    caplog.set_level(logging.DEBUG)
    logging.getLogger("sse_dashboard.web.access").setLevel(logging.DEBUG)
    fill(dash)
    link = make_link(dash, *SECTIONS)
    for path in ("/api/metrics/history?format=csv", "/api/metrics/history?from=0&to=9999999999",
                 "/api/events?format=csv", "/api/events?from=0&to=9999999999"):
        status, _, raw = share_get(dash, path, link)
        assert status == 403 and "export" in json.loads(raw)["error"], (path, status, raw[:200])
    dash.request("GET", link["url"])
    assert link["id"] not in caplog.text and "/s/[redacted]" in caplog.text


def test_a_read_token_finds_no_ping_secret_in_the_snapshot_the_stream_or_mcp(dash):
    """A job's UUID is its ping URL's secret: the snapshot (so the stream) and MCP's list_jobs,
    which a read token reads, carry the jobs without it."""
    fill(dash)
    status, body = dash.json("POST", "/api/tokens", {"name": "reader", "scopes": ["read"]}, ADMIN)
    reader = {"Authorization": "Bearer " + body["token"]}
    secret = dash.json("GET", "/api/jobs", headers=ADMIN)[1]["jobs"][0]["id"].encode()
    status, _, raw = dash.request("GET", "/api/metrics", headers=reader)
    assert status == 200 and b"backup" in raw and secret not in raw
    stream = SSEReader(dash.host, dash.port, headers=reader)
    try:
        frame = stream.next_event("metrics")
        assert "backup" in frame["data"] and secret.decode() not in frame["data"]
    finally:
        stream.close()
    status, _, raw = dash.request("POST", "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                                   "params": {"name": "list_jobs", "arguments": {"job": "backup"}}},
                                  dict(reader, Accept="application/json"))
    assert status == 200 and b"backup" in raw and secret not in raw, raw[:300]


def test_metric_names_are_never_taken_for_hidden_fields_but_their_addresses_are_hidden(dash):
    """A counter may be named data or output (only fields of those names are hidden); an address
    in a label value is hidden like any other."""
    dash.json("POST", "/api/metrics", {"counters": {"data": 1, "output": 2, 'hits{peer="10.9.8.7"}': 3}}, ADMIN)
    link = make_link(dash, "metrics")
    raw = share_get(dash, "/api/metrics", link)[2]
    counters = json.loads(raw)["counters"]
    assert counters["data"] == 1 and counters["output"] == 2 and b"10.9.8.7" not in raw
    wait_until(lambda: b"counters.data" in share_get(dash, "/api/metrics/history?seconds=60", link)[2],
               message="the counter in the history")
    assert b"10.9.8.7" not in share_get(dash, "/api/metrics/history?seconds=60", link)[2]


def test_every_route_a_link_may_read_has_its_filter():
    """A route added to SHARE_READS without a filter would send a link everything: refused here."""
    from sse_dashboard.web.routes import ROUTES, SHARE_READS
    from sse_dashboard.web.shareview import FILTERS
    assert set(SHARE_READS) == set(FILTERS)
    handlers = {route.handler for route in ROUTES if route.method == "GET"}
    assert set(SHARE_READS) <= handlers


def test_a_damaged_share_file_stops_the_start_and_never_opens_anything(tmp_path):
    from sse_dashboard.web.tokens import TokenFileError
    (tmp_path / "shares.json").write_text("{not json")
    with pytest.raises(TokenFileError, match="shares.json"):
        ShareStore(tmp_path / "shares.json")
