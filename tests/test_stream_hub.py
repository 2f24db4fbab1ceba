"""The stream hub (issue 13): one thread writes every stream; slow readers skip stale snapshots
but never miss an event silently; a replay's memory is bounded; shutdown is prompt at 10,000."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from sse_dashboard.web import streams
from conftest import ROOT, wait_until


def open_silent(running, path="/api/metrics/stream", headers=b"", rcvbuf=4096):
    """A stream client that reads its headers and then nothing (a small receive buffer fills fast)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect((running.host, running.port))
    sock.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + b"\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 200"), head
    port = sock.getsockname()[1]
    # The headers come before the stream's cursor is taken: wait until the hub has it, so the
    # events a test posts next are all "after it connected".
    wait_until(lambda: any(s.sock.getpeername()[1] == port for s in list(running.server.hub._streams)
                           if s.sock.fileno() >= 0), message="the stream with the hub")
    return sock


def frames_of(sock, until, timeout=10.0):
    """Read frames (as dicts) from a raw stream socket until ``until(frames)`` is true."""
    sock.settimeout(timeout)
    buffer, frames = b"", []
    deadline = time.monotonic() + timeout
    while not until(frames):
        assert time.monotonic() < deadline, "no such frames in time (last: %s)" % [
            (f.get("event"), f.get("id")) for f in frames[-3:]]
        chunk = sock.recv(65536)
        assert chunk, "stream closed"
        buffer += chunk
        while b"\n\n" in buffer:
            block, buffer = buffer.split(b"\n\n", 1)
            frame = {}
            for line in block.decode("utf-8").split("\n"):
                name, _, value = line.partition(": ")
                frame[name] = value
            frames.append(frame)
    return frames


def test_a_slow_live_reader_gets_a_resync_instead_of_silently_missing_events(make_server):
    running = make_server(max_events=50, post_rate_per_s=0)
    sock = open_silent(running)
    try:
        for i in range(400):  # far more than the log holds, and than the socket buffers take
            running.server.events.post("info", "e%d" % i, data="x" * 40_000)
        frames = frames_of(sock, lambda fs: any(f.get("id") == "400" for f in fs))
    finally:
        sock.close()
    seen, resyncs = [], 0
    for frame in frames:
        if frame.get("event") == "resync":
            resyncs += 1
            seen.append(("resync", json.loads(frame["data"])["last_id"]))
        elif frame.get("event") == "log":
            seen.append(("log", int(frame["id"])))
    assert resyncs >= 1, "it fell behind the log and was not told"
    previous = 0
    for kind, number in seen:  # every gap in the ids is announced by a resync
        if kind == "log":
            assert number == previous + 1, (previous, number)
        previous = number


def test_a_replay_is_written_as_the_client_reads_so_its_memory_stays_small(make_server):
    running = make_server(post_rate_per_s=0)
    for i in range(300):
        running.server.events.post("info", "big %d" % i, data="y" * 60_000)
    hub = running.server.hub
    socks = [open_silent(running, headers=b"Last-Event-ID: 0\r\n") for _ in range(10)]
    try:
        wait_until(lambda: len(hub._streams) == 10, message="ten streams with the hub")
        time.sleep(0.5)  # let the hub try to queue all it would
        largest = max(s.backlog_bytes for s in hub._streams)
        assert largest < streams.LOW_WATER + 70_000, largest  # at most one event past the low water mark
        frames = frames_of(socks[0], lambda fs: sum(f.get("event") == "log" for f in fs) >= 300, timeout=20)
        ids = [int(f["id"]) for f in frames if f.get("event") == "log"]
        assert ids == list(range(1, 301))  # the whole replay, in order, once
    finally:
        for sock in socks:
            sock.close()


def test_a_backlogged_reader_skips_stale_snapshots(make_server):
    running = make_server(interval_s=0.05, post_rate_per_s=0)
    sock = open_silent(running)
    try:
        hub = running.server.hub
        for i in range(150):  # more than the kernel's buffers take: the rest is a backlog
            running.server.events.post("info", "big %d" % i, data="w" * 60_000)
        wait_until(lambda: any(s.backlog for s in hub._streams), timeout=10, message="a backlog")
        stream = [s for s in hub._streams if s.backlog][0]
        seq = running.server.sampler.seq
        wait_until(lambda: running.server.sampler.seq > seq + 20, message="twenty more ticks")
        # However many ticks pass, the stream holds one snapshot at most: the newest.
        queued = [f for f in stream.backlog if f.startswith(b"event: metrics")]
        assert len(queued) <= 1 and stream.pending_metrics is not None
        newest = running.server.sampler.latest()[1]
        wait_until(lambda: stream.pending_metrics.endswith(running.server.sampler.latest()[1] + b"\n\n"),
                   timeout=2, message="the pending snapshot is the newest")
        assert newest
    finally:
        sock.close()


def test_more_backlogged_streams_than_one_select_group_are_all_served(make_server):
    running = make_server(interval_s=0.05, post_rate_per_s=0)
    running.server.hub.select_group = 2  # as Windows' 512-socket limit, made small
    socks = [open_silent(running) for _ in range(7)]
    try:
        for i in range(200):
            running.server.events.post("info", "m%d" % i, data="z" * 1000)
        for sock in socks:
            frames = frames_of(sock, lambda fs: any(f.get("id") == "200" for f in fs), timeout=15)
            assert [int(f["id"]) for f in frames if f.get("event") == "log"] == list(range(1, 201))
    finally:
        for sock in socks:
            sock.close()


def test_open_streams_hold_no_thread(make_server, sse_reader):
    running = make_server()
    idle = threading.active_count()
    readers = [sse_reader(running) for _ in range(200)]
    wait_until(lambda: running.server.hub.clients == 200, message="200 streams")
    wait_until(lambda: threading.active_count() <= idle + 3, message="handler threads returned to the pool")
    running.json("POST", "/api/events", {"message": "to all"})
    for reader in readers[::40]:
        assert json.loads(reader.next_event("log")["data"])["message"] == "to all"


def test_a_client_that_closes_is_forgotten(make_server, sse_reader):
    running = make_server(interval_s=0.05)
    reader = sse_reader(running)
    wait_until(lambda: running.server.hub.clients == 1, message="one stream")
    reader.close(abort=True)
    wait_until(lambda: running.server.hub.clients == 0, timeout=3, message="forgotten")
    assert running.server.hub.dropped == 0  # closed by the client, not dropped by us


@pytest.mark.skipif(os.name == "nt", reason="signals and fd limits")
def test_ctrl_c_with_ten_thousand_open_streams_exits_within_two_seconds(tmp_path):
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 10_500:
        pytest.skip("this machine allows %d open files" % hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    proc = subprocess.Popen([sys.executable, str(ROOT / "sse_server.py"), "--port", "0", "--data-dir", ":memory:",
                             "--max-clients", "20000", "--interval", "0.5"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard)))
    socks = []
    try:
        port = None
        for line in proc.stdout:
            match = re.search(r"dashboard at http://127\.0\.0\.1:(\d+)/", line)
            if match:
                port = int(match.group(1))
                break
        request = b"GET /api/metrics/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        for _ in range(10_000):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(request)
            socks.append(sock)
        for sock in socks[::500]:
            assert sock.recv(12) == b"HTTP/1.1 200"
        def health():
            with socket.create_connection(("127.0.0.1", port)) as conn:
                conn.sendall(b"GET /api/health HTTP/1.0\r\n\r\n")
                return conn.recv(4096)

        wait_until(lambda: b'"clients":10000' in health(), timeout=30, message="10,000 clients")
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
        assert time.monotonic() - started < 2.0
    finally:
        for sock in socks:
            sock.close()
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)
        proc.stdout.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
