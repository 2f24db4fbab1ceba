"""/api/metrics/stream over a raw socket: frames, replay, heartbeat, disconnects, shutdown."""

import json
import logging
import socket
import threading
import time

import pytest

from conftest import SSEReader, wait_until


def stream_threads():
    return [t for t in threading.enumerate() if t.name.startswith("Thread-") and t.is_alive()]


def test_stream_headers_and_first_frames_arrive_at_once(server, sse_reader):
    started = time.monotonic()
    reader = sse_reader(server)
    assert reader.status == 200
    assert reader.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert reader.headers["cache-control"] == "no-cache, no-transform"
    assert reader.headers["x-accel-buffering"] == "no"
    assert "content-length" not in reader.headers and "content-encoding" not in reader.headers
    first = reader.next_frame(timeout=1.5)
    assert first["retry"] == "5000"
    metrics = reader.next_frame(timeout=1.5)
    assert metrics["event"] == "metrics" and metrics["id"] is None
    assert time.monotonic() - started < 1.5
    snap = json.loads(metrics["data"])
    assert {"seq", "ts", "system", "counters", "gauges"} <= set(snap)


def test_one_metrics_frame_per_tick_with_increasing_seq(server, sse_reader):
    reader = sse_reader(server)
    seqs = [json.loads(reader.next_event("metrics")["data"])["seq"] for _ in range(4)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4


def test_posted_event_is_pushed_within_half_a_second(make_server, sse_reader):
    server = make_server(interval_s=30)  # no metrics ticks to hide behind
    reader = sse_reader(server)
    reader.next_event("metrics")
    posted_at = time.monotonic()
    _, event = server.json("POST", "/api/events", {"message": "now", "level": "error"})
    frame = reader.next_event("log", timeout=0.5)
    assert time.monotonic() - posted_at < 0.5
    assert frame["id"] == str(event["id"])
    assert json.loads(frame["data"]) == event


def test_last_event_id_header_replays_what_was_missed_before_live_frames(server, sse_reader):
    for i in range(5):
        server.json("POST", "/api/events", {"message": "m%d" % i})
    reader = sse_reader(server, headers={"Last-Event-ID": "2"})
    frames = [reader.next_frame() for _ in range(5)]
    assert frames[0]["retry"] == "5000" and frames[1]["event"] == "metrics"
    assert [f["id"] for f in frames[2:]] == ["3", "4", "5"]
    assert [json.loads(f["data"])["message"] for f in frames[2:]] == ["m2", "m3", "m4"]
    server.json("POST", "/api/events", {"message": "live"})
    assert reader.next_event("log")["id"] == "6"  # nothing replayed twice


def test_last_event_id_query_parameter_works_for_clients_without_headers(server, sse_reader):
    for i in range(3):
        server.json("POST", "/api/events", {"message": "m%d" % i})
    reader = sse_reader(server, path="/api/metrics/stream?lastEventId=1")
    assert [reader.next_event("log")["id"] for _ in range(2)] == ["2", "3"]


def test_header_wins_over_query_parameter(server, sse_reader):
    for i in range(3):
        server.json("POST", "/api/events", {"message": "m%d" % i})
    reader = sse_reader(server, path="/api/metrics/stream?lastEventId=0", headers={"Last-Event-ID": "2"})
    assert reader.next_event("log")["id"] == "3"


def test_fresh_connection_gets_no_old_events(server, sse_reader):
    server.json("POST", "/api/events", {"message": "old"})
    reader = sse_reader(server)
    reader.next_event("metrics")
    server.json("POST", "/api/events", {"message": "new"})
    assert json.loads(reader.next_event("log")["data"])["message"] == "new"


@pytest.mark.parametrize("last_id", ["99", "1"])
def test_unknown_or_expired_id_gets_one_resync_frame(make_server, sse_reader, last_id):
    server = make_server(max_events=3)
    for i in range(6):  # ids 1..6; the ring keeps 4..6, so 1 is expired and 99 unknown
        server.json("POST", "/api/events", {"message": "m%d" % i})
    reader = sse_reader(server, headers={"Last-Event-ID": last_id})
    frame = reader.next_event("resync")
    assert frame["id"] == "6"  # resets the browser's last-event-ID to one this run knows
    assert json.loads(frame["data"]) == {"last_id": 6}
    server.json("POST", "/api/events", {"message": "after"})
    assert reader.next_event("log")["id"] == "7"


def test_ids_from_another_server_run_get_resync(server, sse_reader):
    server.json("POST", "/api/events", {"message": "m"})
    reader = sse_reader(server, path="/api/metrics/stream?epoch=someotherrun", headers={"Last-Event-ID": "0"})
    assert reader.next_event("resync")["id"] == "1"


def test_bad_last_event_id_means_none(server, sse_reader):
    server.json("POST", "/api/events", {"message": "m"})
    reader = sse_reader(server, headers={"Last-Event-ID": "abc"})
    reader.next_event("metrics")
    server.json("POST", "/api/events", {"message": "n"})
    assert reader.next_event("log")["id"] == "2"


def test_quiet_stream_gets_heartbeat_comments(make_server, sse_reader):
    server = make_server(interval_s=30, heartbeat_s=0.2)
    reader = sse_reader(server)
    reader.next_event("metrics")
    frame = reader.next_frame(timeout=2)
    assert frame["comments"] == ["ping"] and frame["event"] is None and frame["data"] is None


def test_health_counts_stream_clients(server, sse_reader):
    readers = [sse_reader(server) for _ in range(3)]
    for reader in readers:
        reader.next_event("metrics")
    wait_until(lambda: server.json("GET", "/api/health")[1]["clients"] == 3, message="3 clients")


def test_a_hundred_abrupt_disconnects_leave_no_thread_and_no_error(make_server, caplog):
    caplog.set_level(logging.DEBUG)
    server = make_server()
    baseline = len(stream_threads())
    readers = [SSEReader(server.host, server.port) for _ in range(100)]
    for reader in readers:
        reader.next_event("metrics")
    wait_until(lambda: server.server.stats()["clients"] == 100, message="100 clients")
    for i, reader in enumerate(readers):
        reader.close(abort=i % 2 == 0)  # half RST (a killed tab), half FIN
    wait_until(lambda: server.server.stats()["clients"] == 0, timeout=10, message="all streams ended")
    wait_until(lambda: len(stream_threads()) <= baseline, timeout=10, message="stream threads gone")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not [r for r in caplog.records if r.exc_info]
    assert server.json("GET", "/api/health")[0] == 200


def test_disconnect_in_the_middle_of_a_frame_is_quiet(make_server, caplog):
    server = make_server()
    reader = SSEReader(server.host, server.port)
    reader.sock.recv(10)  # read part of the first frame only
    reader.close(abort=True)
    wait_until(lambda: server.server.stats()["clients"] == 0, message="stream ended")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_reader_that_stops_reading_is_dropped_after_the_write_timeout(make_server, caplog):
    server = make_server(interval_s=30, write_timeout_s=0.5)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((server.host, server.port))
    sock.sendall(b"GET /api/metrics/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    wait_until(lambda: server.server.stats()["clients"] == 1, message="stream open")
    big = "x" * 60000
    try:
        # Fill both socket buffers: the stream's next write blocks, then times out.
        for _ in range(200):
            server.server.events.post("info", "flood", data=big)
            if server.server.stats()["dropped"]:
                break
        wait_until(lambda: server.server.stats()["dropped"] == 1, timeout=10, message="reader dropped")
        wait_until(lambda: server.server.stats()["clients"] == 0, message="stream ended")
    finally:
        sock.close()
    assert server.json("GET", "/api/health")[0] == 200
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_shutdown_with_open_streams_is_prompt(make_server):
    server = make_server(interval_s=30, heartbeat_s=60)
    readers = [SSEReader(server.host, server.port) for _ in range(5)]
    for reader in readers:
        reader.next_event("metrics")
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2.0
    for reader in readers:
        reader.sock.settimeout(2)
        with pytest.raises(EOFError):
            reader.next_frame(timeout=2)
        reader.close()
    assert server.server.stats()["clients"] == 0


def test_head_on_the_stream_sends_headers_only(server):
    status, headers, body = server.request("HEAD", "/api/metrics/stream")
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream") and body == b""


def test_a_keep_alive_connection_is_cut_at_shutdown_not_served_by_a_stopped_server(make_server):
    """A browser reconnects its stream on a pooled keep-alive connection: after a stop, that must
    fail (so it tries again later), not open a stream that a stopped hub never feeds."""
    import http.client

    running = make_server()
    conn = http.client.HTTPConnection(running.host, running.port, timeout=5)
    conn.request("GET", "/api/health")
    assert conn.getresponse().read() and True
    running.stop()
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        conn.request("GET", "/api/metrics/stream")
        response = conn.getresponse()
        assert response.status != 200, "a stopped server opened a stream"
        raise ConnectionError("answered %d" % response.status)
    conn.close()
