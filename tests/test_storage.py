"""Durable storage with real SQLite files and real server processes: crashes, restarts, retention, faults."""

import http.client
import json
import os
import threading
import time
import urllib.error
import urllib.request

import pytest

from sse_dashboard import storage
from conftest import SSEReader, wait_until
from sse_dashboard.events import EventLog


def post(port, path, body, timeout=5):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status, json.load(resp)


def get(port, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as resp:
        return json.load(resp)


def all_events(port):
    return get(port, "/api/events?from=0")["events"]


def test_kill_9_while_posting_loses_no_acknowledged_event(spawn, tmp_path):
    p = spawn("--port", "0", "--data-dir", str(tmp_path), "--post-rate", "0", "--interval", "0.5")
    port = p.wait_for_url()
    acknowledged = {}
    lock = threading.Lock()
    stop = threading.Event()

    def writer(n):
        i = 0
        while not stop.is_set():
            try:
                status, event = post(port, "/api/events", {"message": "w%d-%d" % (n, i)}, timeout=2)
            except (OSError, ValueError, http.client.HTTPException):
                continue  # the server died under us: this one was never acknowledged
            assert status == 201
            with lock:
                acknowledged[event["id"]] = event["message"]
            i += 1

    threads = [threading.Thread(target=writer, args=(n,), daemon=True) for n in range(4)]
    for t in threads:
        t.start()
    wait_until(lambda: len(acknowledged) >= 200, timeout=20, message="200 acknowledged posts")
    p.proc.kill()  # SIGKILL on POSIX, TerminateProcess on Windows: no clean-up runs
    p.proc.wait(5)
    stop.set()
    for t in threads:
        t.join(5)
    restarted = spawn("--port", "0", "--data-dir", str(tmp_path))
    port = restarted.wait_for_url()
    stored = all_events(port)
    ids = [e["id"] for e in stored]
    assert ids == sorted(set(ids)), "ids unique and increasing"
    by_id = {e["id"]: e["message"] for e in stored}
    missing = [i for i in acknowledged if by_id.get(i) != acknowledged[i]]
    assert missing == [], "acknowledged but lost: %s" % missing[:10]
    # and new ids continue after the old ones
    assert post(port, "/api/events", {"message": "after"})[1]["id"] > max(ids)


def test_restart_keeps_counters_history_and_replays_the_gap_once(spawn, tmp_path):
    p = spawn("--port", "0", "--data-dir", str(tmp_path), "--interval", "0.2")
    port = p.wait_for_url()
    post(port, "/api/metrics", {"counters": {"jobs_done": 5}, "gauges": {"queue_depth": 3}})
    for i in range(3):
        post(port, "/api/events", {"message": "before-%d" % i})
    wait_until(lambda: get(port, "/api/metrics")["counters"].get("jobs_done") == 5, message="counter sampled")
    before = time.time()
    wait_until(lambda: get(port, "/api/metrics/history?seconds=60")["ts"][-1:] and
               get(port, "/api/metrics/history?seconds=60")["ts"][-1] >= before, message="history on disk")
    epoch = get(port, "/api/metrics")["events_epoch"]
    p.proc.terminate()
    assert p.proc.wait(5) == 0

    p2 = spawn("--port", "0", "--data-dir", str(tmp_path), "--interval", "0.2")
    port = p2.wait_for_url()
    snap = get(port, "/api/metrics")
    assert snap["counters"]["jobs_done"] == 5 and snap["events_epoch"] == epoch
    post(port, "/api/metrics", {"counters": {"jobs_done": 1}})
    wait_until(lambda: get(port, "/api/metrics")["counters"].get("jobs_done") == 6, message="total continues")
    history = get(port, "/api/metrics/history?seconds=120")
    assert history["ts"][0] < before and "gauges.queue_depth" in history["series"]
    for i in range(2):
        post(port, "/api/events", {"message": "after-%d" % i})
    # A browser that had seen event 1 before the restart reconnects:
    reader = SSEReader("127.0.0.1", port, "/api/metrics/stream?epoch=" + epoch, headers={"Last-Event-ID": "1"})
    try:
        got = [json.loads(reader.next_event("log")["data"])["message"] for _ in range(4)]
        assert got == ["before-1", "before-2", "after-0", "after-1"]
        post(port, "/api/events", {"message": "live"})
        assert json.loads(reader.next_event("log")["data"])["message"] == "live"  # nothing replayed twice
    finally:
        reader.close()


def test_retention_keeps_the_file_bounded(make_server, tmp_path):
    server = make_server(interval_s=0.02, data_dir=tmp_path, storage_options={
        "full_s": 0.5, "rollup_s": 0.1, "rollup_keep_s": 1.0, "prune_every_s": 0.1, "max_events": 50})

    def size():
        return sum(f.stat().st_size for f in tmp_path.glob(storage.DB_FILENAME + "*"))

    for _ in range(300):
        server.server.events.post("info", "x" * 200)
    wait_until(lambda: server.server.sampler.seq >= 100, timeout=10, message="100 ticks")
    store = server.server.store
    store.flush()
    early = size()
    wait_until(lambda: server.server.sampler.seq >= 400, timeout=20, message="400 ticks")
    store.flush()
    late = size()
    assert late <= early * 1.5 + 64 * 1024, (early, late)
    rows = store.history.samples_kept()
    assert rows <= 0.5 / 0.02 + 40  # about full_s worth of samples (plus a prune interval)
    assert store.database.query("SELECT COUNT(*) FROM events", ())[0][0] <= 50 + 1


def test_history_reads_rollups_beyond_the_full_resolution_window(make_server, tmp_path):
    server = make_server(interval_s=0.02, data_dir=tmp_path, storage_options={
        "full_s": 1.0, "rollup_s": 0.1, "rollup_keep_s": 60, "prune_every_s": 0.1})
    server.json("POST", "/api/metrics", {"gauges": {"g": 4}})
    wait_until(lambda: server.server.sampler.seq >= 150, timeout=15, message="150 ticks (3 s)")
    server.server.store.flush()
    recent = server.json("GET", "/api/metrics/history?seconds=1")[1]
    older = server.json("GET", "/api/metrics/history?seconds=30")[1]
    assert older.get("resolution") == "rollup" and len(older["ts"]) > 3
    assert recent["ts"] and recent.get("resolution") == "full"
    assert 4 in older["series"]["gauges.g"]


def test_exports_stream_rows_between_from_and_to(make_server, tmp_path):
    server = make_server(interval_s=0.05, data_dir=tmp_path)
    for i in range(5):
        server.server.events.post("warning" if i % 2 else "info", "e%d" % i)
    t0 = time.time()
    wait_until(lambda: server.server.sampler.seq >= 10, message="10 ticks")
    server.server.store.flush()
    status, headers, body = server.request("GET", "/api/events?from=0&format=csv")
    assert status == 200 and "Content-Length" not in headers  # streamed
    assert body.decode().count("\r\n") == 6
    _, events = server.json("GET", "/api/events?from=0&level=warning")
    assert [e["message"] for e in events["events"]] == ["e1", "e3"]
    _, rows = server.json("GET", "/api/metrics/history?from=%f&to=%f" % (t0 - 5, time.time()))
    assert len(rows["rows"]) >= 5 and "system.cpu_count" in rows["rows"][0]["series"]
    status, _, body = server.request("GET", "/api/metrics/history?from=%f&format=csv" % (t0 - 5))
    assert status == 200 and body.startswith(b"ts,time_utc,")
    assert server.json("GET", "/api/events?from=10&to=5")[1] == {"events": []}


def test_an_unusable_data_dir_says_so_and_the_page_keeps_working(spawn, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the folder should be", encoding="utf-8")
    p = spawn("--port", "0", "--data-dir", str(blocker / "data"), "--interval", "0.2")
    port = p.wait_for_url()
    assert "storage unavailable" in p.output and "cannot use the data directory" in p.output
    with pytest.raises(urllib.error.HTTPError) as refused:
        post(port, "/api/events", {"message": "x"})
    assert refused.value.code == 503 and "storage" in json.load(refused.value)["error"]
    assert get(port, "/api/health")["storage"].startswith("unavailable")
    reader = SSEReader("127.0.0.1", port)
    try:
        assert reader.next_event("metrics")  # the live page still works
    finally:
        reader.close()
    assert "Traceback" not in p.output


def test_a_full_disk_gives_503_on_post_and_storage_recovers_nothing_half_written(make_server, tmp_path):
    server = make_server(data_dir=tmp_path, post_rate_per_s=0, storage_options={"max_bytes": 200 * 1024})
    statuses = []
    for i in range(400):
        status, _, body = server.request("POST", "/api/events", {"message": "m" * 2000})
        statuses.append(status)
        if status == 503:
            assert "cannot be stored" in json.loads(body)["error"]
            break
    assert statuses[-1] == 503 and statuses[:-1] == [201] * (len(statuses) - 1)
    assert server.server.events.last_id == len(statuses) - 1  # the refused one took no id
    assert server.json("GET", "/api/health")[1]["storage"].startswith("error")
    assert server.json("GET", "/api/metrics")[0] == 200


def test_a_corrupt_file_is_moved_aside_and_replaced(spawn, tmp_path):
    (tmp_path / storage.DB_FILENAME).write_bytes(b"this is not a database" * 100)
    p = spawn("--port", "0", "--data-dir", str(tmp_path))
    port = p.wait_for_url()
    aside = list(tmp_path.glob(storage.DB_FILENAME + ".corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not a database")
    assert "moved it to" in p.output
    assert post(port, "/api/events", {"message": "fresh"})[0] == 201


def test_schema_version_is_recorded_and_a_newer_one_is_refused(tmp_path):
    store = storage.open_store(tmp_path)
    store.close()
    import sqlite3

    conn = sqlite3.connect(str(tmp_path / storage.DB_FILENAME))
    assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == len(storage.MIGRATIONS)
    conn.execute("UPDATE schema_version SET version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(storage.StorageError, match="newer"):
        storage.open_store(tmp_path)


def test_event_log_resumes_ids_from_storage(tmp_path):
    store = storage.open_store(tmp_path)
    log = EventLog(persist=store.insert_event)
    for i in range(3):
        log.post("info", "m%d" % i)
    store.close()
    store = storage.open_store(tmp_path)
    resumed = EventLog(persist=store.insert_event, initial=store.recent_events(10), last_id=store.last_event_id())
    assert [e.message for e in resumed.since(0)] == ["m0", "m1", "m2"]
    assert resumed.post("info", "m3").id == 4
    store.close()


def test_no_data_dir_means_memory_only(server):
    assert server.server.store.durable is False  # a MemoryStore: the same reads, nothing kept
    assert server.json("GET", "/api/health")[1]["storage"] == "memory"
    assert os.path.basename(str(server.server.events_epoch))


def test_a_data_dir_with_spaces_and_hashes_works(tmp_path):
    odd = tmp_path / "Jane Doe #1 ?x"
    store = storage.open_store(odd)
    log = EventLog(persist=store.insert_event)
    log.post("info", "hello")
    assert [e.message for e in store.recent_events(5)] == ["hello"]
    store.close()


def rollup_store(tmp_path, full_s=60.0):
    store = storage.open_store(tmp_path, full_s=full_s, rollup_s=10.0, interval_s=1.0)
    return store


def test_rollup_answers_say_their_spacing_and_carry_min_and_max(tmp_path):
    store = rollup_store(tmp_path)
    now = time.time()
    base = now - now % 10 - 300  # five minutes ago, on a bucket boundary
    for i in range(30):  # three buckets of ten samples: 0..9, 10..19, 20..29
        store.history.write([(base + i, {"g": i})])
    store.history.write([(now - 61 + i, {"g": 0}) for i in range(61)])  # the 61 kept at full resolution
    store.history.prune()                                                # the 30 older ones rolled up
    body = store.history_columns(now - 3600, now)
    assert body["resolution"] == "rollup" and body["interval"] == 10.0
    assert body["ts"][:3] == [base, base + 10, base + 20]
    assert body["min"]["g"][:3] == [0, 10, 20] and body["max"]["g"][:3] == [9, 19, 29]
    assert body["series"]["g"][:3] == [4.5, 14.5, 24.5]
    store.close()


def test_a_long_window_in_the_first_minute_still_has_the_recent_samples(tmp_path):
    store = rollup_store(tmp_path)
    now = time.time()
    first = now - now % 10 if now % 10 >= 5 else now - now % 10 - 10  # five seconds inside one bucket
    stamps = [first + i for i in range(5)]
    for i, ts in enumerate(stamps):  # a few seconds of full-resolution samples, no bucket closed yet
        store.history.write([(ts, {"g": 2 * i})])
    body = store.history_columns(now - 61 - 3600, now)
    assert body["resolution"] == "full" and body["ts"], body  # nothing rolled up yet
    # #23: it ends in the latest samples themselves, not in one bucket labelled at the open minute's start.
    assert body["ts"] == stamps and body["series"]["g"] == [0, 2, 4, 6, 8]
    store.close()


def test_a_long_window_is_roll_ups_then_the_samples_not_rolled_up_yet(tmp_path):
    store = rollup_store(tmp_path, full_s=4.0)  # five samples kept at full resolution
    now = time.time()
    base = now - now % 10 - 300
    for i in range(25):  # two buckets rolled up (0..9, 10..19), then five samples kept as they are
        store.history.write([(base + i, {"g": i})])
    store.history.prune()
    body = store.history_columns(now - 3600, now)
    assert body["ts"] == [base, base + 10] + [base + 20 + i for i in range(5)]
    assert body["series"]["g"] == [4.5, 14.5, 20, 21, 22, 23, 24]
    assert body["min"]["g"][-1] == body["max"]["g"][-1] == 24
    store.close()


def test_the_history_route_passes_interval_min_and_max_through(make_server, tmp_path):
    server = make_server(interval_s=0.05, data_dir=tmp_path, storage_options={"full_s": 1.0, "rollup_s": 0.5})
    server.json("POST", "/api/metrics", {"gauges": {"g": 3}})
    wait_until(lambda: server.server.sampler.seq >= 30, timeout=10, message="30 ticks")
    server.server.store.flush()
    server.server.store.prune()  # what retention drops becomes roll-ups (the writer does this every 30 s)
    body = server.json("GET", "/api/metrics/history?seconds=30")[1]
    assert body["resolution"] == "rollup" and body["interval"] == 0.5
    assert 3 in body["min"]["gauges.g"] and 3 in body["max"]["gauges.g"]
    full = server.json("GET", "/api/metrics/history?seconds=1")[1]
    assert full["resolution"] == "full" and full["interval"] == 0.05 and "min" not in full
