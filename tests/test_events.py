"""EventLog: ids, bounds, queries, validation."""

import pytest

import events
from conftest import check_public_names
from events import LEVELS, EventLog


def test_all_lists_exactly_the_public_names():
    check_public_names(events)


def test_ids_start_at_one_and_only_increase():
    log = EventLog()
    ids = [log.post("info", "m%d" % i).id for i in range(5)]
    assert ids == [1, 2, 3, 4, 5]
    assert log.last_id == 5


def test_ring_is_bounded_and_drops_the_oldest():
    log = EventLog(maxlen=3)
    for i in range(10):
        log.post("info", "m%d" % i)
    assert len(log) == 3
    assert [e.id for e in log.since(0)] == [8, 9, 10]
    assert log.post("info", "next").id == 11  # ids never reused


def test_since_limit_and_level():
    log = EventLog()
    for i, level in enumerate(["info", "warning", "error", "info", "error"]):
        log.post(level, "m%d" % i)
    assert [e.id for e in log.since(2)] == [3, 4, 5]
    assert [e.id for e in log.since(0, limit=2)] == [1, 2]  # a cursor: the oldest after it
    assert [e.id for e in log.newest(2)] == [4, 5]
    assert [e.id for e in log.since(0, level="error")] == [3, 5]
    assert log.since(5) == []
    assert log.since(99) == []


def test_event_json_matches_its_fields():
    import json

    log = EventLog(clock=lambda: 1700000000.1234)
    event = log.post("warning", "disk <b>full</b> \u2603", source="backup", data={"free": 3})
    assert json.loads(event.json) == {
        "id": 1, "ts": 1700000000.123, "level": "warning", "type": None, "source": "backup",
        "message": "disk <b>full</b> \u2603", "data": {"free": 3},
    }
    assert event.to_dict() == json.loads(event.json)


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        (("debug", "x"), {}, "level must be one of info, warning, error"),
        ((None, "x"), {}, "level must be one of"),
        (("info", ""), {}, "message must be a non-empty string"),
        (("info", "   "), {}, "message must be a non-empty string"),
        (("info", 42), {}, "message must be a non-empty string"),
        (("info", "x" * 5000), {}, "message must be at most"),
        (("info", "x"), {"source": ""}, "source must be a non-empty string"),
        (("info", "x"), {"source": 3}, "source must be a non-empty string"),
        (("info", "x"), {"data": float("nan")}, "data must be plain JSON"),
        (("info", "x"), {"data": {"a": object()}}, "data must be plain JSON"),
    ],
)
def test_bad_events_raise_value_error_and_store_nothing(args, kwargs, message):
    log = EventLog()
    with pytest.raises(ValueError, match=message):
        log.post(*args, **kwargs)
    assert len(log) == 0 and log.last_id == 0


def test_replay_after_a_known_id_is_complete():
    log = EventLog(maxlen=5)
    for i in range(3):
        log.post("info", "m%d" % i)
    replay = log.replay(1)
    assert replay.complete and [e.id for e in replay.events] == [2, 3]
    assert log.replay(3).complete and log.replay(3).events == []
    assert log.replay(0).complete and len(log.replay(0).events) == 3


def test_replay_of_a_future_or_evicted_id_is_incomplete():
    log = EventLog(maxlen=2)
    for i in range(5):
        log.post("info", "m%d" % i)
    assert not log.replay(99).complete   # unknown: from another run
    assert not log.replay(1).complete    # 2 and 3 are gone
    assert log.replay(3).complete        # 4 and 5 are both still here


def test_on_post_is_called_after_each_post():
    calls = []
    log = EventLog(on_post=lambda: calls.append(1))
    log.post("info", "a")
    log.post("error", "b")
    assert calls == [1, 1]


def test_levels_are_the_documented_three():
    assert LEVELS == ("info", "warning", "error")


