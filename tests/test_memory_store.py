"""The in-memory store answers storage's reads as the SQLite store does, for the same samples
and events: the web layer can ask one store whether or not there is a data folder (#22)."""

from __future__ import annotations

import itertools
import time

import pytest

from sse_dashboard.events import EventFilter, EventLog
from sse_dashboard.registry import MetricsRegistry
from sse_dashboard.sampler import Sampler
from sse_dashboard.storage import History, MemoryStore, open_store

T0 = 1_700_000_000.0


class Ticking:
    """A wall clock that moves one second per reading (events get distinct, known times)."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture
def both(tmp_path):
    """A SQLite store and a MemoryStore that were given the same events (the log persists to
    the first and is read by the second) and the same samples."""
    store = open_store(tmp_path)
    events = EventLog(maxlen=100, clock=Ticking(T0), persist=store.insert_event)
    history = History(maxlen=100)
    memory = MemoryStore(history, events, epoch="run1")
    kinds = [("info", "app", None), ("warning", "backup", "record.created"), ("error", "app", "record.deleted"),
             ("info", "cron", "deploy"), ("warning", "app", None)]
    for i in range(20):
        level, source, event_type = kinds[i % len(kinds)]
        events.post(level, "event %d" % i, source=source, type=event_type, data={"i": i} if i % 3 else None)
    now = time.time()  # within the SQLite store's full-resolution window
    samples = [(round(now - 60 + i, 3), {"system.cpu_percent": 1.5 * i, "counters.jobs": i} if i % 4
                else {"system.cpu_percent": 0.5, "gauges.depth": -i}) for i in range(30)]
    for ts, flat in samples:
        history.append(ts, flat)
    store.history.write(samples)
    yield store, memory, samples
    store.close()


def ids_and_text(events):
    return [(e.id, e.json) for e in events]


def test_the_same_event_reads_give_the_same_events(both):
    store, memory, _ = both
    assert memory.last_event_id() == store.last_event_id() == 20
    filters = [None, EventFilter.parse(types="record.*"), EventFilter.parse(sources="app", levels="info,warning"),
               EventFilter.parse(types="log")]
    windows = [(None, None), (T0 + 5, None), (None, T0 + 12), (T0 + 3, T0 + 15.5), (T0 + 30, None)]
    checked = 0
    for after, (start, end), level, only, limit, newest in itertools.product(
            (0, 4, 19, 20), windows, (None, "warning"), filters, (None, 1, 3), (False, True)):
        ask = dict(after_id=after, start=start, end=end, level=level, limit=limit, only=only, newest=newest)
        assert ids_and_text(memory.iter_events(**ask)) == ids_and_text(store.iter_events(**ask)), ask
        checked += 1
    assert checked == 4 * 5 * 2 * 4 * 3 * 2


@pytest.mark.parametrize("limit, max_chars", [(5, None), (100, None), (0, None), (10, 300), (10, 1)])
def test_the_newest_events_are_the_same(both, limit, max_chars):
    store, memory, _ = both
    assert ids_and_text(memory.recent_events(limit, max_chars)) == ids_and_text(store.recent_events(limit, max_chars))


def test_the_same_history_reads_give_the_same_rows_and_columns(both):
    store, memory, samples = both
    first, last = samples[0][0], samples[-1][0]
    for start, end in ((first, last), (first - 100, last + 100), (first + 3.5, first + 9), (last + 1, last + 5)):
        assert list(memory.iter_history_rows(start, end)) == list(store.iter_history_rows(start, end))
        stored = store.history_columns(start, end)
        assert stored.pop("resolution") == "full"  # what memory never needs to say: it keeps no roll-ups
        assert memory.history_columns(start, end) == stored


def test_what_the_web_layer_asks_of_any_store(tmp_path):
    events = EventLog()
    memory = MemoryStore(History(maxlen=10), events, epoch="abc")
    assert (memory.durable, memory.journal, memory.problem(), memory.health(), memory.epoch) == (
        False, None, None, "memory", "abc")
    assert MemoryStore(History(maxlen=10), events, unavailable="disk on fire").health() == "unavailable: disk on fire"
    assert memory.metric_state() == ({}, {}, {})
    assert memory.read_meta("alerts") is None
    memory.write_meta("alerts", '{"firing": {}}')
    assert memory.read_meta("alerts") == '{"firing": {}}'
    for call in (memory.start, memory.flush, memory.close, lambda: memory.announce("http://x/"),
                 lambda: memory.enqueue_sample(1.0, {"a": 1})):
        assert call() is None
    store = open_store(tmp_path)
    try:
        assert (store.durable, store.health(), store.problem()) == (True, "ok", None)
        registry = MetricsRegistry(journal=store.journal)  # one wiring for both: the journal or None
        registry.inc("jobs", 2)
        assert store.metric_state()[0] == {"jobs": 2}
        MetricsRegistry(journal=memory.journal).inc("jobs")
    finally:
        store.close()


def test_the_sampler_feeds_the_memory_store_its_samples():
    class Collector:
        source = "test"

        def collect(self):
            return {"source": "test", "cpu_percent": 7.0}

        def rss_bytes(self):
            return None

    history = History.covering(60, interval_s=1.0)
    store = MemoryStore(history, EventLog())
    sampler = Sampler(MetricsRegistry(), Collector(), subscribers=[store.record])
    sample = sampler.tick()
    columns = store.history_columns(sample.ts - 1, sample.ts + 1)
    assert columns["ts"] == [sample.ts] and columns["series"]["system.cpu_percent"] == [7.0]


def test_memory_answers_only_what_the_event_log_still_holds():
    events = EventLog(maxlen=3)
    for i in range(5):
        events.post("info", "e%d" % i)
    memory = MemoryStore(History(maxlen=10), events)
    assert [e.id for e in memory.iter_events()] == [3, 4, 5] and memory.last_event_id() == 5
