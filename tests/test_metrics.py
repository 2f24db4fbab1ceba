"""MetricsRegistry and Sampler: name rules, counters only go up, snapshots are copies."""

import json
import math
import threading

import pytest

from conftest import check_public_names
from sse_dashboard.collectors.system import SystemCollector
from sse_dashboard.registry import MetricsRegistry
from sse_dashboard.sampler import Sampler, flatten_snapshot
from sse_dashboard.events import EventLog
from sse_dashboard.storage.memory import History, MemoryStore


def test_all_lists_exactly_the_public_names():
    from sse_dashboard import exposition, registry, sampler
    from sse_dashboard.collectors import rates, system, windows
    from sse_dashboard.storage import database, events, history, memory, metric_state, store

    for module in (registry, sampler, exposition, system, rates, windows, database, events, history, memory,
                   metric_state, store):
        check_public_names(module)


def test_counters_add_and_gauges_set():
    registry = MetricsRegistry()
    registry.inc("jobs_done")
    registry.inc("jobs_done", 2.5)
    registry.set("queue_depth", 7)
    registry.set("queue_depth", -3)
    assert registry.snapshot() == ({"jobs_done": 3.5}, {"queue_depth": -3})


@pytest.mark.parametrize("name", ["a", "_x", "ns:name_1", "A9:_"])
def test_valid_names(name):
    registry = MetricsRegistry()
    registry.set(name, 1)
    assert name in registry.snapshot()[1]


@pytest.mark.parametrize("name", ["", "9lives", "has space", "dash-ed", "caf\u00e9", "a.b", 5, "x" * 201])
def test_bad_names_are_refused(name):
    registry = MetricsRegistry()
    with pytest.raises(ValueError, match="metric name"):
        registry.update(gauges={name: 1})
    assert registry.snapshot() == ({}, {})


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "3", None, True, [1]])
def test_non_finite_or_non_numbers_are_refused(value):
    registry = MetricsRegistry()
    with pytest.raises(ValueError):
        registry.update(gauges={"g": value})
    with pytest.raises(ValueError):
        registry.update(counters={"c": value})
    assert registry.snapshot() == ({}, {})


def test_negative_counter_delta_is_refused_and_nothing_in_the_update_is_applied():
    registry = MetricsRegistry()
    registry.inc("ok", 1)
    with pytest.raises(ValueError, match="must not be negative"):
        registry.update(counters={"ok": 5, "bad": -1}, gauges={"g": 1})
    assert registry.snapshot() == ({"ok": 1}, {})


def test_the_number_of_names_is_bounded():
    registry = MetricsRegistry(max_metrics=3)
    registry.update(counters={"a": 1, "b": 1}, gauges={"c": 1})
    with pytest.raises(ValueError, match="too many metrics"):
        registry.set("d", 1)
    registry.set("c", 2)  # existing names still update
    assert registry.snapshot() == ({"a": 1, "b": 1}, {"c": 2})


def test_update_needs_objects():
    registry = MetricsRegistry()
    with pytest.raises(ValueError, match="counters must be an object"):
        registry.update(counters=[1, 2])


def test_snapshot_is_a_copy():
    registry = MetricsRegistry()
    registry.inc("c")
    counters, gauges = registry.snapshot()
    counters["c"] = 100
    gauges["new"] = 1
    assert registry.snapshot() == ({"c": 1}, {})


def test_concurrent_increments_are_not_lost():
    registry = MetricsRegistry()

    def work():
        for _ in range(2000):
            registry.inc("hits")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert registry.snapshot()[0]["hits"] == 8000


class CountingCollector(SystemCollector):
    source = "test"

    def __init__(self):
        super().__init__(disk_path=".")
        self.calls = 0

    def _readers(self):
        return [self._count]

    def _count(self):
        self.calls += 1
        return {"cpu_percent": float(self.calls), "load_1": float("nan")}


class BrokenCollector(SystemCollector):
    source = "broken"

    def collect(self):
        raise RuntimeError("sensor on fire")


def test_sampler_tick_publishes_one_encoded_snapshot():
    registry = MetricsRegistry()
    registry.inc("c", 2)
    sampler = Sampler(registry, CountingCollector(), interval_s=1.0, server_stats=lambda: {"clients": 3})
    sampler.tick()
    snapshot, body = sampler.latest()
    assert json.loads(body) == snapshot
    assert snapshot["seq"] == 1
    assert snapshot["counters"] == {"c": 2}
    assert snapshot["server"]["clients"] == 3
    assert snapshot["system"]["cpu_percent"] == 1.0
    assert snapshot["system"]["load_1"] is None  # NaN never reaches JSON
    assert set(snapshot) >= {"seq", "ts", "interval", "system", "counters", "gauges", "server"}
    sampler.tick()
    assert sampler.latest()[0]["seq"] == 2
    assert snapshot["seq"] == 1  # the published one was not mutated


def test_a_collector_that_raises_gives_an_error_field_and_the_next_tick_runs():
    sampler = Sampler(MetricsRegistry(), BrokenCollector(), interval_s=1.0)
    sampler.tick()
    sampler.tick()
    snapshot, _ = sampler.latest()
    assert snapshot["seq"] == 2
    assert "sensor on fire" in snapshot["system"]["error"]


def test_a_failing_reader_degrades_to_none_and_warns_once(caplog):
    class HalfBroken(SystemCollector):
        source = "test"

        def _readers(self):
            return [self._good, self._bad]

        def _good(self):
            return {"cpu_count": 4}

        def _bad(self):
            raise OSError("no such file")

    collector = HalfBroken(disk_path=".")
    for _ in range(3):
        system = collector.collect()
    assert system["cpu_count"] == 4 and system["memory_percent"] is None
    warnings = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(warnings) == 1


def test_sampler_thread_ticks_once_per_interval_and_hands_each_sample_to_every_subscriber_in_order():
    rings = []
    collector = CountingCollector()
    sampler = Sampler(MetricsRegistry(), collector, interval_s=0.05,
                      subscribers=[lambda sample: rings.append(("first", sample.seq)),
                                   lambda sample: rings.append(("second", sample.seq))])
    sampler.start()
    try:
        assert sampler.latest()[0]["seq"] >= 1  # start() waits for the first snapshot
        from conftest import wait_until

        wait_until(lambda: sampler.seq >= 4, timeout=5, message="4 ticks")
    finally:
        sampler.stop()
    assert len(rings) == 2 * sampler.seq == 2 * collector.calls
    assert rings[:4] == [("first", 1), ("second", 1), ("first", 2), ("second", 2)]


def test_sampler_refuses_a_bad_interval():
    for bad in (0, -1, math.inf, math.nan):
        with pytest.raises(ValueError):
            Sampler(MetricsRegistry(), CountingCollector(), interval_s=bad)


def test_flatten_snapshot_names_every_numeric_series():
    flat = flatten_snapshot({
        "system": {"cpu_percent": 5.0, "cpu_per_core": [1.0, None, 3.0], "disk_path": "/", "load_1": None},
        "counters": {"jobs": 3}, "gauges": {"q": -1.5},
        "server": {"clients": 2, "rss_bytes": 100, "uptime": 9},
    })
    assert flat == {
        "system.cpu_percent": 5.0, "system.cpu_core_0_percent": 1.0, "system.cpu_core_2_percent": 3.0,
        "counters.jobs": 3, "gauges.q": -1.5, "server.clients": 2, "server.rss_bytes": 100,
    }


def test_history_is_bounded_and_served_as_columns():
    history = History(maxlen=3)
    for i in range(5):
        history.append(100.0 + i, {"a": i} if i != 3 else {"b": 30})
    assert history.columns(seconds=1000) == {
        "ts": [102.0, 103.0, 104.0],
        "series": {"a": [2, None, 4], "b": [None, 30, None]},
    }
    assert history.columns(seconds=1) == {"ts": [103.0, 104.0], "series": {"a": [None, 4], "b": [30, None]}}
    assert History(maxlen=5).columns(seconds=60) == {"ts": [], "series": {}}


def test_a_memory_store_covers_the_requested_time_at_the_interval_and_the_sampler_feeds_it():
    history = History.covering(600, interval_s=0.5)
    store = MemoryStore(history, EventLog())
    sampler = Sampler(MetricsRegistry(), CountingCollector(), interval_s=0.5, subscribers=[store.record])
    assert history.maxlen == 1201
    sampler.tick()
    sampler.tick()
    columns = history.columns(seconds=60)
    assert len(columns["ts"]) == 2 and columns["series"]["system.cpu_percent"] == [1.0, 2.0]