"""What was acknowledged survives: clean stops, restarts, odd numbers, a vanished file,
full disks and clock steps (issue 11, items 1-4, 12 and 13). Real processes and real files."""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import sys
import urllib.error
import urllib.request

import pytest

from sse_dashboard import storage
from conftest import wait_until
from sse_dashboard.registry import MetricsRegistry


def call(port, method, path, body=None, timeout=5):
    """(status, parsed JSON) for any status."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def stop_cleanly(process):
    """Ctrl+C (SIGINT) where there is one, as a user stops it; it must exit 0."""
    process.proc.send_signal(signal.SIGINT if os.name != "nt" else signal.CTRL_BREAK_EVENT)
    assert process.proc.wait(10) == 0
    assert "Traceback" not in process.output, process.output


def sampled_to_disk(store) -> bool:
    store.flush()
    return bool(store.history.samples_kept())


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM])
def test_a_clean_stop_keeps_every_acknowledged_increment(spawn, tmp_path, how):
    p = spawn("--port", "0", "--data-dir", str(tmp_path), "--interval", "0.2")
    port = p.wait_for_url()
    assert call(port, "POST", "/api/metrics", {"counters": {"jobs": 1}})[0] == 200
    wait_until(lambda: call(port, "GET", "/api/metrics")[1]["counters"].get("jobs") == 1, message="sampled")
    # The next increment is acknowledged and the stop comes at once, before any sample:
    assert call(port, "POST", "/api/metrics", {"counters": {"jobs": 41}, "gauges": {"temp": 21.5}})[0] == 200
    p.proc.send_signal(how)
    assert p.proc.wait(10) == 0
    again = spawn("--port", "0", "--data-dir", str(tmp_path))
    snapshot = call(again.wait_for_url(), "GET", "/api/metrics")[1]
    assert snapshot["counters"]["jobs"] == 42 and isinstance(snapshot["counters"]["jobs"], int)
    assert snapshot["gauges"]["temp"] == 21.5


def test_an_update_racing_the_stop_is_refused_not_lost(make_server, tmp_path):
    running = make_server(data_dir=tmp_path)
    server = running.server
    server.registry.seal()  # what server_close() does before the final write
    status, body = running.json("POST", "/api/metrics", {"counters": {"late": 1}})
    assert status == 503 and "stopping" in body["error"]
    assert "late" not in server.registry.snapshot()[0]


def test_restart_returns_integers_as_integers_and_gauges_with_their_time(make_server, tmp_path):
    first = make_server(data_dir=tmp_path)
    first.json("POST", "/api/metrics", {"counters": {"jobs": 1, "bytes": 2.5}, "gauges": {"depth": 7, "temp": -3.25}})
    set_at = first.server.registry.state()[1]["depth"][1]
    first.stop()
    second = make_server(data_dir=tmp_path)
    _, snapshot = second.json("GET", "/api/metrics")
    assert snapshot["counters"] == {"jobs": 1, "bytes": 2.5}
    assert type(snapshot["counters"]["jobs"]) is int
    assert snapshot["gauges"] == {"depth": 7, "temp": -3.25}
    assert second.server.registry.state()[1]["depth"] == (7, set_at)
    _, _, text = second.request("GET", "/metrics")
    assert b"\njobs_total 1\n" in text and b"\ndepth 7\n" in text


@pytest.mark.parametrize("value", [2 ** 63, 2 ** 64 + 1, -(2 ** 63) - 5, 1e300, 10 ** 300])
def test_a_huge_gauge_is_stored_as_a_float_and_the_writer_keeps_going(make_server, tmp_path, value):
    running = make_server(data_dir=tmp_path)
    status, body = running.json("POST", "/api/metrics", {"gauges": {"g": value}})
    assert status == 200 and body["gauges"]["g"] == float(value)
    store = running.server.store
    wait_until(lambda: sampled_to_disk(store), message="a sample written")
    wait_until(lambda: store.metric_state()[1].get("g", (None,))[0] == float(value), message="gauge written")
    assert running.json("GET", "/api/health")[1]["storage"] == "ok"
    assert store.history._thread.is_alive()


def test_a_counter_past_2_63_and_a_stored_total_past_1e15_restart_fine(make_server, tmp_path):
    first = make_server(data_dir=tmp_path)
    for _ in range(3):
        assert first.json("POST", "/api/metrics", {"counters": {"big": 10 ** 15}})[0] == 200
    first.server.registry.restore({"huge": 2 ** 63 - 1}, {})
    assert first.json("POST", "/api/metrics", {"counters": {"huge": 10 ** 15}})[0] == 200
    first.stop()
    second = make_server(data_dir=tmp_path)  # the stored totals are not fed through the per-update limit
    counters = second.json("GET", "/api/metrics")[1]["counters"]
    assert counters["big"] == 3 * 10 ** 15 and type(counters["big"]) is int
    assert counters["huge"] == float(2 ** 63 - 1 + 10 ** 15)


def test_numbers_beyond_a_float_are_refused_and_store_nothing(server):
    raw = b'{"counters": {"ok": 1}, "gauges": {"g": ' + b"9" * 400 + b"}}"
    status, _, body = server.request("POST", "/api/metrics", raw, {"Content-Type": "application/json"})
    assert status == 400 and "too large" in json.loads(body)["error"]
    assert server.server.registry.snapshot() == ({}, {})


def test_the_writer_thread_survives_any_failure_and_health_says_so(make_server, tmp_path, caplog):
    running = make_server(data_dir=tmp_path)
    store = running.server.store
    real_pack = store.history._pack
    failures = []

    def broken_once(flat):
        if not failures:
            failures.append(1)
            raise OverflowError("Python int too large to convert to SQLite INTEGER")
        return real_pack(flat)

    with caplog.at_level(logging.ERROR, logger="sse_dashboard.storage"):
        store.history._pack = broken_once
        wait_until(lambda: failures, message="the failure")
        wait_until(lambda: store.last_error is None and sampled_to_disk(store), message="the writer recovered")
    assert store.history._thread.is_alive()
    assert sum("could not store" in r.getMessage() for r in caplog.records) == 1  # logged once


def test_health_reports_a_failing_writer(make_server, tmp_path):
    running = make_server(data_dir=tmp_path)
    store = running.server.store

    def broken(flat):
        raise ValueError("boom")

    store.history._pack = broken
    wait_until(lambda: running.json("GET", "/api/health")[1]["storage"] == "error: boom", message="error shown")
    status, body = running.json("POST", "/api/metrics", {"counters": {"c": 1}})
    assert status == 503 and "boom" in body["error"]


@pytest.mark.parametrize("how", ["delete", "replace"])
def test_a_database_file_deleted_or_replaced_while_running_refuses_writes(spawn, tmp_path, how):
    p = spawn("--port", "0", "--data-dir", str(tmp_path), "--interval", "0.2")
    port = p.wait_for_url()
    assert call(port, "POST", "/api/events", {"message": "kept"})[0] == 201
    db = tmp_path / storage.DB_FILENAME
    if how == "delete":
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(str(db) + suffix):
                os.unlink(str(db) + suffix)
    else:
        other = tmp_path / "other.sqlite3"
        sqlite3.connect(str(other)).close()
        os.replace(str(other), str(db))
    status, body = call(port, "POST", "/api/events", {"message": "would vanish"})
    assert status == 503 and "deleted or replaced" in body["error"]
    assert call(port, "POST", "/api/metrics", {"counters": {"c": 1}})[0] == 503
    assert "deleted or replaced" in call(port, "GET", "/api/health")[1]["storage"]
    p.proc.send_signal(signal.SIGTERM)
    assert p.proc.wait(10) == 0
    assert "Traceback" not in p.output


def test_a_full_disk_is_called_a_full_disk(make_server, tmp_path):
    running = make_server(data_dir=tmp_path, post_rate_per_s=0, storage_options={"max_bytes": 200 * 1024})
    for _ in range(400):
        status, _, body = running.request("POST", "/api/events", {"message": "m" * 2000})
        if status == 503:
            break
    assert status == 503 and "disk full" in json.loads(body)["error"]
    health = running.json("GET", "/api/health")[1]["storage"]
    assert health.startswith("error: disk full") and "no transaction" not in health


def make_store(tmp_path, **options):
    return storage.open_store(tmp_path, rollup_s=60.0, **options)


def test_a_clock_stepping_back_merges_into_the_rollup_bucket(tmp_path):
    store = make_store(tmp_path, full_s=2.0, interval_s=1.0)  # three samples kept at full resolution
    store.history.write([(1200.0 + i, {"g": 10}) for i in range(60)])
    store.history.prune()                                   # bucket 1200 rolled up (n=57, avg 10)
    store.history.write([(1230.0, {"g": 99})])              # the clock went back: bucket 1200 again
    store.history.write([(1320.0 + i, {"g": 10}) for i in range(3)])
    store.history.prune()                                   # the rest of it rolled up, merged
    (n, lo, avg, hi), = store.database.query("SELECT n, min, avg, max FROM rollups WHERE bucket = 1200", ())
    assert (n, lo, hi) == (61, 10, 99) and avg == pytest.approx((60 * 10 + 99) / 61)
    store.close()


def test_a_clock_jumping_forward_keeps_the_full_resolution_history(tmp_path):
    store = make_store(tmp_path, full_s=60.0, interval_s=1.0)
    now = 1_700_000_000.0
    store.history.write([(now + i, {"g": i}) for i in range(30)])
    store.history.write([(now + 7200 + i, {"g": i}) for i in range(5)])  # two hours later, by the clock
    store.prune()
    assert store.history.samples_kept() == 35  # within the 61 kept
    store.history.write([(now + 7300 + i, {"g": i}) for i in range(100)])
    store.prune()
    assert store.history.samples_kept() == store.keep_samples == 61
    store.close()


def test_a_version_1_database_is_migrated_with_its_counters_and_history(tmp_path):
    conn = sqlite3.connect(str(tmp_path / storage.DB_FILENAME))
    conn.executescript(storage.MIGRATIONS[0])
    conn.executescript("""
        CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (1);
        INSERT INTO meta VALUES ('epoch', 'abc');
        INSERT INTO counters VALUES ('jobs', 42.0), ('bytes', 2.5);
        INSERT INTO samples VALUES (1000.0, '{"system.cpu_percent": 3.5, "counters.jobs": 42}');
        INSERT INTO rollups VALUES (900.0, 'system.cpu_percent', 1, 2, 3, 60);
        INSERT INTO rollups VALUES (960.0, 'system.cpu_percent', 1, 2, 3, 60);
    """)
    conn.commit()
    conn.close()
    store = storage.open_store(tmp_path)
    assert store.metric_state()[:2] == ({"jobs": 42, "bytes": 2.5}, {})
    assert store.metric_state()[2] == {("counters", "jobs"): "api", ("counters", "bytes"): "api"}
    assert type(store.metric_state()[0]["jobs"]) is int
    # The roll-up, then the sample; the minute of the sample still kept is not a roll-up (schema 6 rolls
    # up what retention drops: kept, it would count twice).
    assert list(store.history.rows(0, 2000)) == [(900.0, {"system.cpu_percent": 2.0}),
                                                  (1000.0, {"system.cpu_percent": 3.5, "counters.jobs": 42})]
    store.close()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_kill_9_keeps_what_was_sampled(spawn, tmp_path):
    p = spawn("--port", "0", "--data-dir", str(tmp_path), "--interval", "0.2")
    port = p.wait_for_url()
    call(port, "POST", "/api/metrics", {"counters": {"jobs": 5}, "gauges": {"g": 1}})
    db = str(tmp_path / storage.DB_FILENAME)

    def on_disk():
        conn = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
        try:
            return conn.execute("SELECT value FROM metric_state WHERE name = 'jobs'").fetchone()
        finally:
            conn.close()

    wait_until(lambda: on_disk() == (5,), message="the counter on disk")
    p.proc.kill()
    p.proc.wait(5)
    again = spawn("--port", "0", "--data-dir", str(tmp_path))
    snapshot = call(again.wait_for_url(), "GET", "/api/metrics")[1]
    assert snapshot["counters"] == {"jobs": 5} and snapshot["gauges"] == {"g": 1}


def test_an_update_of_no_names_is_answered_and_changes_nothing(make_server, tmp_path):
    """An empty update with a data folder was a 503 ('near "ON": syntax error'): the one-statement
    commit of no rows. Found by tests/test_fuzz.py."""
    running = make_server(data_dir=tmp_path)
    for body in ({}, {"counters": {}}, {"gauges": {}}, {"counters": {}, "gauges": {}}):
        status, answer = running.json("POST", "/api/metrics", body)
        assert status == 200 and answer == {"status": "ok", "counters": {}, "gauges": {}}, (body, answer)
    assert running.json("GET", "/api/health")[1]["storage"] == "ok"


def test_a_failed_history_write_gives_no_series_id_to_another_name(tmp_path):
    """A new series' id was cached inside the transaction; after a rollback SQLite gave the same id
    to the next new name, and one metric's history was stored and shown under the other's."""
    store = storage.open_store(tmp_path)
    history = store.history
    history.write([(1.0, {"a": 1})])
    # A trigger stands in for a full disk: the write fails after its new series row was made.
    store.database.conn.execute("CREATE TEMP TRIGGER full BEFORE INSERT ON staged "
                                "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
    with pytest.raises(sqlite3.Error):
        history.write([(2.0, {"b": 2})])
    store.database.conn.execute("DROP TRIGGER full")
    history.write([(3.0, {"c": 3})])
    history.write([(4.0, {"b": 4})])
    assert list(history._full_rows(0, 10)) == [(1.0, {"a": 1}), (3.0, {"c": 3}), (4.0, {"b": 4})]
    store.close()


def test_a_name_another_door_takes_over_is_kept_as_that_doors_across_a_restart(tmp_path):
    """An API gauge expired and StatsD set the name again before the next save: the upsert kept the
    row's old door, so after a restart the API's budget was charged for a StatsD name."""
    clock = [1000.0]
    store = storage.open_store(tmp_path)
    registry = MetricsRegistry(gauge_ttl_s=60, clock=lambda: clock[0], journal=store.journal)
    registry.update(gauges={"g": 1})
    clock[0] += 120                                            # expired (deleted on disk at the next save)
    registry.update(gauges={"g": 2}, door="statsd", durable=False)
    registry.save_unsaved()
    assert store.metric_state()[2] == {("gauges", "g"): "statsd"}
    store.close()


def test_an_update_of_many_names_is_kept_whole_in_statements_of_a_hundred(tmp_path):
    """An update of 10,000 gauges and counters commits in one transaction, a hundred rows a
    statement (a row a statement gave the GIL up 10,000 times, behind the writer's encoding:
    seconds); every value comes back of its own type, and after a restart."""
    store = storage.open_store(tmp_path)
    registry = MetricsRegistry(max_metrics=20_000, journal=store.journal)
    gauges = {"g%d" % i: (i if i % 2 else i + 0.5) for i in range(10_000)}
    registry.update(gauges=gauges, counters={"c%d" % i: i + 1 for i in range(250)})
    counters, kept, _ = store.metric_state()
    assert {name: value for name, (value, _) in kept.items()} == gauges
    assert all(type(kept[name][0]) is type(value) for name, value in gauges.items())
    assert counters == {"c%d" % i: i + 1 for i in range(250)}
    store.close()
    store = storage.open_store(tmp_path)
    assert len(store.metric_state()[1]) == 10_000
    store.close()
