"""EventLog: ids, bounds, queries, validation."""

import pytest

from sse_dashboard import events
from conftest import check_public_names, wait_until
from sse_dashboard.events import LEVELS, EventLog


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




# --- the dashboard's own event types (issue 21, item 8) ------------------------------------

@pytest.mark.parametrize("kind", ["alert.firing", "alert.resolved", "alert.anything", "notify.failing", "notify.ok"])
def test_a_client_cannot_post_the_dashboards_own_event_types(kind):
    """Issue 21, item 8: the page shades an alert span from any ``alert.firing``; only the
    dashboard may post those (and its ``notify.*`` reports)."""
    log = EventLog()
    with pytest.raises(ValueError, match="belong to the dashboard"):
        log.post("error", "cpu_hot firing", source="alerts", type=kind, data={"rule": "cpu_hot"})
    assert len(log) == 0 and log.last_id == 0
    assert log.post("error", "cpu_hot firing", source="alerts", type=kind, by_dashboard=True).type == kind


@pytest.mark.parametrize("kind", ["alerts.mine", "alert", "my.alert.firing", "Alert.firing", "notifyx.ok"])
def test_types_that_only_look_alike_stay_open_to_clients(kind):
    assert EventLog().post("info", "x", type=kind).type == kind


def test_a_spoofed_alert_over_http_is_a_400_and_a_real_one_still_posts(make_server):
    from sse_dashboard.alerting.rules import AlertRule

    running = make_server(alert_rules=[AlertRule(name="q_high", metric="gauges.q", op=">", threshold=1)])
    spoof = {"message": "cpu_hot firing", "level": "error", "source": "alerts", "type": "alert.firing",
             "data": {"rule": "cpu_hot", "state": "firing"}}
    status, body = running.json("POST", "/api/events", spoof)
    assert status == 400 and "alert." in body["error"] and "belong to the dashboard" in body["error"]
    assert running.json("POST", "/api/events", dict(spoof, type="notify.failing"))[0] == 400
    assert running.json("GET", "/api/events")[1]["events"] == []
    # A plain event that merely says source "alerts" is a label like any other: it shades nothing.
    assert running.json("POST", "/api/events", dict(spoof, type=None))[0] == 201
    running.json("POST", "/api/metrics", {"gauges": {"q": 5}})
    fired = wait_until(lambda: running.json("GET", "/api/events?types=alert.*")[1]["events"], timeout=5,
                       message="the rule's own alert.firing")
    assert [(e["type"], e["source"], e["data"]["rule"]) for e in fired] == [("alert.firing", "alerts", "q_high")]


def refused_patterns(schema) -> list:
    """Every ``pattern`` inside a schema's ``not``."""
    found, todo = [], [schema["not"]]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            found += [node["pattern"]] if "pattern" in node else []
            todo += list(node.values())
        elif isinstance(node, list):
            todo += node
    return found


def test_the_openapi_description_and_the_mcp_tool_refuse_the_dashboards_own_types(server):
    import re

    from sse_dashboard.web.mcp import TOOLS

    spec = server.json("GET", "/api/openapi.json")[1]
    body = spec["paths"]["/api/events"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    tool = next(t for t in TOOLS if t["name"] == "post_event")["inputSchema"]
    for schema in (body["properties"]["type"], tool["properties"]["type"]):
        if "anyOf" in schema:  # a string, or null (untyped)
            schema = next(s for s in schema["anyOf"] if s.get("type") != "null")
        patterns = refused_patterns(schema)
        assert all(any(re.search(p, kind) for p in patterns) for kind in ("alert.firing", "notify.ok"))
        assert not any(re.search(p, "record.alert.x") or re.search(p, "alerts.mine") for p in patterns)
