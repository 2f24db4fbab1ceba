"""One client cannot take all the memory or the disk (issue 11, items 9 and 10): events are
bounded by bytes as well as by count, series by count and name length, idle gauges expire,
names are stored once, and any counter or gauge can be deleted with its history."""

from __future__ import annotations

import json
import sqlite3

import pytest

from sse_dashboard import storage
from sse_dashboard.storage.chunks import unpack_sample
from conftest import wait_until
from sse_dashboard.events import EventLog
from sse_dashboard.registry import MAX_NAME_CHARS, MetricsRegistry
from sse_dashboard.sampler import flatten_snapshot


def test_the_event_log_is_bounded_by_characters_as_well_as_by_count():
    log = EventLog(maxlen=1000, max_chars=200_000)
    big = [0.123456789] * 2000  # about 24 KB of JSON
    for i in range(100):
        log.post("info", "e%d" % i, data=big)
    kept = log.since(0)
    assert sum(len(e.json) for e in kept) <= 200_000
    assert 5 <= len(kept) < 10 and kept[-1].message == "e99"
    ids = [e.id for e in kept]
    assert ids == list(range(ids[0], 101))  # the oldest went first, no gaps
    assert log.replay(ids[0] - 2).complete is False and log.replay(ids[0] - 1).complete is True


def test_event_data_is_kept_as_compact_text_not_objects():
    event = EventLog().post("info", "m", data={"values": [1.5] * 100})
    assert "data" not in type(event).__dataclass_fields__ and "data_json" not in type(event).__dataclass_fields__
    assert event.json.endswith(',"data":' + event.data_json + "}")
    assert event.data == {"values": [1.5] * 100}
    assert event.data_json == json.dumps({"values": [1.5] * 100}, separators=(",", ":"))


def test_a_restart_loads_only_what_fits_the_budget(make_server, tmp_path):
    first = make_server(data_dir=tmp_path, post_rate_per_s=0)
    for i in range(40):
        assert first.json("POST", "/api/events", {"message": "e%d" % i, "data": "x" * 10_000})[0] == 201
    first.stop()
    second = make_server(data_dir=tmp_path, max_event_chars=100_000)
    kept = second.server.events.since(0)
    assert 5 <= len(kept) <= 10 and kept[-1].message == "e39"
    assert second.server.events.last_id == 40
    # the rest is still on disk for exports
    assert len(second.json("GET", "/api/events?from=0")[1]["events"]) == 40


def test_stored_events_are_pruned_by_bytes(tmp_path):
    store = storage.open_store(tmp_path, max_event_bytes=50_000)
    log = EventLog(persist=store.insert_event)
    for i in range(30):
        log.post("info", "m" * 4000)
    store.prune()
    left = store.database.query("SELECT COUNT(*), MAX(id) FROM events", ())[0]
    assert 8 <= left[0] <= 12 and left[1] == 30
    store.close()


def test_names_are_bounded_in_length_and_number(server):
    status, body = server.json("POST", "/api/metrics", {"gauges": {"g" * (MAX_NAME_CHARS + 1): 1}})
    assert status == 400 and "at most %d characters" % MAX_NAME_CHARS in body["error"]
    registry = MetricsRegistry(max_metrics=3)
    registry.update(counters={"a": 1, "b": 1}, gauges={"c": 1})
    with pytest.raises(ValueError, match="DELETE"):
        registry.set("d", 1)


def test_a_gauge_nobody_sets_expires_and_frees_its_name():
    now = [1000.0]
    registry = MetricsRegistry(max_metrics=2, gauge_ttl_s=60, clock=lambda: now[0])
    registry.update(counters={"c": 1}, gauges={"old": 1})
    now[0] += 30
    registry.set("old", 2)  # set again: its time starts over
    now[0] += 59
    assert registry.snapshot() == ({"c": 1}, {"old": 2})
    now[0] += 2
    assert registry.snapshot() == ({"c": 1}, {})  # counters never expire
    registry.set("new", 1)  # the slot is free again


def test_history_rows_share_one_copy_of_each_name():
    rows = [flatten_snapshot({"gauges": {"x" * 100 + str(7): i}}) for i in range(3)]
    keys = [next(iter(row)) for row in rows]
    assert keys[0] is keys[1] is keys[2]


def test_stored_samples_refer_to_names_by_id(make_server, tmp_path):
    running = make_server(data_dir=tmp_path)
    running.json("POST", "/api/metrics", {"gauges": {"a_long_gauge_name": 1}})
    store = running.server.store
    def staged_with_it():
        store.flush()
        ((gauge,),) = store.database.query("SELECT id FROM series WHERE name = 'gauges.a_long_gauge_name'",
                                           ()) or [(None,)]
        rows = [vals for (vals,) in store.database.query("SELECT vals FROM staged", ())]
        return [vals for vals in rows if gauge in unpack_sample(vals)]

    wait_until(lambda: len(staged_with_it()) >= 2, message="samples written")
    assert all(b"a_long_gauge_name" not in vals for vals in staged_with_it())  # the id, never the name


def test_delete_a_counter_and_a_gauge_with_their_history(make_server, tmp_path):
    running = make_server(data_dir=tmp_path)
    running.json("POST", "/api/metrics", {"counters": {"jobs": 3}, "gauges": {"depth": 5, "keep": 1}})
    store = running.server.store
    wait_until(lambda: store.flush() or "gauges.depth" in running.json(
        "GET", "/api/metrics/history?seconds=60")[1]["series"], message="history of depth")
    assert running.json("DELETE", "/api/metrics/gauges/depth") == (
        200, {"status": "deleted", "kind": "gauges", "name": "depth"})
    assert running.json("DELETE", "/api/metrics/counters/jobs")[0] == 200
    assert running.json("DELETE", "/api/metrics/counters/jobs")[0] == 404
    assert running.json("DELETE", "/api/metrics/gauges/never")[0] == 404
    wait_until(lambda: running.json("GET", "/api/metrics")[1]["gauges"] == {"keep": 1}, message="gone live")
    series = running.json("GET", "/api/metrics/history?seconds=60")[1]["series"]
    assert "gauges.depth" not in series and "counters.jobs" not in series and "gauges.keep" in series
    assert not store.database.query("SELECT * FROM series WHERE name IN ('gauges.depth', 'counters.jobs')", ())
    running.stop()
    again = make_server(data_dir=tmp_path)
    snapshot = again.json("GET", "/api/metrics")[1]
    assert snapshot["counters"] == {} and snapshot["gauges"] == {"keep": 1}
    assert "gauges.depth" not in again.json("GET", "/api/metrics/history?seconds=60")[1]["series"]
    # and a counter deleted starts again from zero
    assert again.json("POST", "/api/metrics", {"counters": {"jobs": 1}})[1]["counters"] == {"jobs": 1}


def test_delete_needs_the_token_and_refuses_other_origins(make_server):
    running = make_server(token="t")
    running.server.registry.set("g", 1)
    assert running.request("DELETE", "/api/metrics/gauges/g")[0] == 401
    auth = {"Authorization": "Bearer t"}
    assert running.request("DELETE", "/api/metrics/gauges/g", headers=dict(auth, Origin="http://evil.example"))[0] == 403
    assert running.request("DELETE", "/api/metrics/gauges/g", headers=auth)[0] == 200
