"""Alert rules: loading (whole or not at all), firing once, resolving with hysteresis, over HTTP."""

import importlib

import pytest

from sse_dashboard.alerting.alert import AlertOutlet
from sse_dashboard.alerting.rules import AlertEngine, load_rules, parse_rules
from conftest import ROOT, wait_until


def rule(**fields):
    base = {"name": "q", "metric": "gauges.q", "op": ">", "threshold": 10}
    base.update(fields)
    return base


@pytest.mark.parametrize("module", ["alert", "rules", "heartbeats", "notify", "targets"])
def test_all_names_exist(module):
    module = importlib.import_module("sse_dashboard.alerting." + module)
    for name in module.__all__:
        assert hasattr(module, name)


def test_the_example_file_loads():
    rules = load_rules(ROOT / "examples" / "alerts.example.json")
    assert len(rules) >= 3 and {r.level for r in rules} <= {"warning", "error"}


@pytest.mark.parametrize("raw, words", [
    ({"rules": [rule(op="=>")]}, "rule 1 (q): field 'op'"),
    ({"rules": [rule(), rule(name="r", threshold="high")]}, "rule 2 (r): field 'threshold'"),
    ({"rules": [rule(metric="cpu")]}, "rule 1 (q): field 'metric'"),
    ({"rules": [rule(metric="rate(gauges.q)")]}, "field 'metric'"),
    ({"rules": [rule(level="info")]}, "field 'level'"),
    ({"rules": [rule(**{"for": -1})]}, "field 'for'"),
    ({"rules": [rule(clear=20)]}, "field 'clear'"),
    ({"rules": [rule(colour="red")]}, "field 'colour'"),
    ({"rules": [rule(name="bad name!")]}, "rule 1: field 'name'"),
    ({"rules": [rule(), rule()]}, "used twice"),
    ({"rules": ["x"]}, "rule 1: must be an object"),
    ({"alerts": []}, '"rules" list'),
])
def test_a_bad_rule_is_named_with_its_field(raw, words):
    with pytest.raises(ValueError) as err:
        parse_rules(raw)
    assert words in str(err.value)


def test_a_file_that_is_not_json_is_refused(tmp_path):
    path = tmp_path / "rules.json"
    path.write_text("{rules: [}", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_rules(path)
    with pytest.raises(ValueError, match="cannot read"):
        load_rules(tmp_path / "missing.json")


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def snap(ts, **gauges):
    return {"ts": ts, "gauges": gauges, "counters": {}, "system": {}}


def make_engine(*raw_rules):
    posted = []
    clock = Clock()
    engine = AlertEngine(parse_rules({"rules": list(raw_rules)}),
                         AlertOutlet(lambda level, message, **kw: posted.append((level, message, kw["data"]))),
                         clock=clock)
    return engine, posted, clock


def test_fires_once_after_for_and_resolves_once_past_clear():
    engine, posted, clock = make_engine(rule(**{"for": 5, "clear": 8, "level": "error", "message": "queue deep"}))
    for t, value in [(0, 11), (2, 12), (4, 15)]:  # breached, but not for 5 s yet
        clock.now = t
        assert engine.evaluate(snap(t, q=value)) == {"alerts": []}
    clock.now = 5
    active = engine.evaluate(snap(5, q=13))["alerts"]
    assert [a["rule"] for a in active] == ["q"] and active[0]["value"] == 13
    for t, value in [(6, 14), (7, 9), (8, 10)]:  # still firing: 9 and 10 are above clear=8
        clock.now = t
        assert len(engine.evaluate(snap(t, q=value))["alerts"]) == 1
    clock.now = 9
    assert engine.evaluate(snap(9, q=8))["alerts"] == []
    assert [(level, data["state"]) for level, _, data in posted] == [("error", "firing"), ("info", "resolved")]
    assert "queue deep" in posted[0][1] and "resolved" in posted[1][1]


def test_a_dip_resets_the_for_timer():
    engine, posted, clock = make_engine(rule(**{"for": 5}))
    for t, value in [(0, 11), (4, 9), (6, 11), (10, 11)]:
        clock.now = t
        engine.evaluate(snap(t, q=value))
    assert posted == []
    clock.now = 11
    engine.evaluate(snap(11, q=11))
    assert len(posted) == 1


def test_missing_data_neither_fires_nor_resolves():
    engine, posted, clock = make_engine(rule())
    engine.evaluate(snap(0))
    assert posted == []
    engine.evaluate(snap(1, q=11))
    engine.evaluate(snap(2))  # the gauge vanished: not good news
    assert len(engine.active()) == 1 and len(posted) == 1


def test_rate_of_a_counter():
    engine, posted, clock = make_engine(rule(metric="rate(counters.jobs)", op="<", threshold=1.0),
                                        rule(name="fast", metric="rate(counters.jobs)", op=">", threshold=100))
    for t, total in [(0, 0), (1, 5), (2, 10), (3, 10)]:
        engine.evaluate({"ts": t, "counters": {"jobs": total}, "gauges": {}, "system": {}})
    assert [data["rule"] for _, _, data in posted] == ["q"]  # fired when the rate dropped to 0


def test_alerts_over_http(make_server):
    rules = parse_rules({"rules": [rule(clear=5, level="warning", message="queue deep")]})
    server = make_server(alert_rules=rules)
    server.json("POST", "/api/metrics", {"gauges": {"q": 50}})
    wait_until(lambda: server.json("GET", "/api/metrics")[1]["alerts"], message="the alert in the snapshot")
    status, body = server.json("GET", "/api/alerts")
    assert status == 200 and [a["rule"] for a in body["alerts"]] == ["q"] and body["rules"][0]["name"] == "q"
    seq = server.server.sampler.seq
    wait_until(lambda: server.server.sampler.seq >= seq + 3, message="a few more ticks (still firing: one event)")
    server.json("POST", "/api/metrics", {"gauges": {"q": 1}})
    wait_until(lambda: not server.json("GET", "/api/metrics")[1]["alerts"], message="resolved")
    events = server.json("GET", "/api/events?limit=100")[1]["events"]
    assert [(e["level"], e["source"], e["data"]["state"]) for e in events] == [
        ("warning", "alerts", "firing"), ("info", "alerts", "resolved")]


def test_no_rules_means_an_empty_alert_list(server):
    assert server.json("GET", "/api/metrics")[1]["alerts"] == []
    assert server.json("GET", "/api/alerts")[1] == {"alerts": [], "rules": [], "heartbeats": [], "notify": []}


def test_rules_and_heartbeats_post_and_notify_through_one_outlet_in_the_same_shapes():
    """#22: one alert shape and one "post, then notify" step serve rules and heartbeats; the
    snapshot's alert, the event and the notification keep the shapes they always had."""
    from sse_dashboard.alerting.heartbeats import Heartbeats

    said = []
    outlet = AlertOutlet(lambda level, message, **kw: said.append(("post", level, message, kw)),
                         notify=lambda kind, alert, targets: said.append(("notify", kind, alert, targets)))
    clock = Clock()
    engine = AlertEngine(parse_rules({"rules": [rule(level="error", message="queue deep", notify=["ops"])]}), outlet,
                         clock=clock)
    assert engine.evaluate(snap(1000.0, q=12))["alerts"] == [
        {"rule": "q", "level": "error", "metric": "gauges.q", "op": ">", "threshold": 10.0, "value": 12,
         "since": 1000.0, "message": "queue deep"}]
    engine.evaluate(snap(1001.0, q=3))
    clock.now = 1_700_000_000.0
    beats = Heartbeats(outlet, configured={"nightly": {"every": 60.0, "level": "warning", "notify": None}},
                       clock=clock)
    clock.now += 61
    assert beats.check() == [
        {"rule": "heartbeat:nightly", "level": "warning", "metric": "heartbeat.nightly", "op": ">",
         "threshold": 60.0, "value": 61.0, "since": 1_700_000_061.0, "message": "nightly silent for 1 min"}]
    beats.beat("nightly")
    clock.now += 1
    beats.check()
    assert said == [
        ("post", "error", "queue deep (gauges.q = 12, > 10)",
         {"source": "alerts", "data": {"rule": "q", "value": 12, "threshold": 10.0, "state": "firing"},
          "type": "alert.firing"}),
        ("notify", "alert.firing", {"name": "q", "metric": "gauges.q", "value": 12, "threshold": 10.0,
                                    "level": "error", "message": "queue deep", "started_at": 1000.0,
                                    "ended_at": None}, ("ops",)),
        ("post", "info", "resolved: queue deep (gauges.q = 3)",
         {"source": "alerts", "data": {"rule": "q", "value": 3, "state": "resolved"}, "type": "alert.resolved"}),
        ("notify", "alert.resolved", {"name": "q", "metric": "gauges.q", "value": 3, "threshold": 10.0,
                                      "level": "error", "message": "queue deep", "started_at": 1000.0,
                                      "ended_at": 1001.0}, ("ops",)),
        ("post", "warning", "nightly silent for 1 min",
         {"source": "heartbeats", "data": {"heartbeat": "nightly", "state": "firing", "status": "waiting",
                                           "last_seen": None}, "type": "alert.firing"}),
        ("notify", "alert.firing", {"name": "heartbeat:nightly", "metric": "heartbeat.nightly", "value": 61.0,
                                    "threshold": 60.0, "level": "warning", "message": "nightly silent for 1 min",
                                    "started_at": 1_700_000_061.0, "ended_at": None}, None),
        ("post", "info", "resolved: nightly is up again",
         {"source": "heartbeats", "data": {"heartbeat": "nightly", "state": "resolved", "since": 1_700_000_061.0},
          "type": "alert.resolved"}),
        ("notify", "alert.resolved", {"name": "heartbeat:nightly", "metric": "heartbeat.nightly", "value": 61.0,
                                      "threshold": 60.0, "level": "warning", "message": "nightly silent for 1 min",
                                      "started_at": 1_700_000_061.0, "ended_at": 1_700_000_062.0}, None)]


def test_a_rule_firing_across_a_restart_keeps_its_shape_and_is_not_announced_again():
    said, kept = [], []
    outlet = AlertOutlet(lambda level, message, **kw: said.append(kw["type"]))
    rules = parse_rules({"rules": [rule(message="queue deep")]})
    AlertEngine(rules, outlet, persist=kept.append).evaluate(snap(1000.0, q=12))
    again = AlertEngine(rules, outlet, state=kept[-1])
    assert again.active() == [{"rule": "q", "level": "warning", "metric": "gauges.q", "op": ">", "threshold": 10.0,
                               "value": 12, "since": 1000.0, "message": "queue deep"}]
    assert again.evaluate(snap(1001.0, q=13))["alerts"][0]["value"] == 13 and said == ["alert.firing"]


def test_the_alerting_layer_imports_nothing_above_it_and_storage_only_through_callables():
    """#22: imports point down; alerting/ reaches storage only through ``persist``/``state``
    and posts only through ``post``, both given by build_app."""
    import ast

    folder = ROOT / "sse_dashboard" / "alerting"
    assert ast.get_docstring(ast.parse((folder / "__init__.py").read_text(encoding="utf-8")))
    above = ("sse_dashboard.web", "sse_dashboard.storage", "sse_dashboard.app", "sse_dashboard.cli",
             "sse_dashboard.application", "sse_dashboard.demo")
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert not name.startswith(above), "%s imports %s" % (path.name, name)
