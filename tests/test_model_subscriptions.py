"""Model-based test of narrowed streams: Hypothesis posts typed events and opens, cuts and
resumes filtered subscribers on the real server (real sockets), against a plain list.

The promise (README, "Typed events and subscriptions"): a subscriber receives exactly the
posted events its filter matches, each once, in id order, typed events under their type's
name; after a cut, resuming with Last-Event-ID gives exactly the matching events it missed;
an event refused with 400 reaches nobody.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

from sse_dashboard.app import build_app
from conftest import RunningServer, SSEReader

os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(tempfile.gettempdir(), "sse-dashboard-hypothesis"))

TYPES = [None, "a.x", "a.y", "b", "log", "bad type", "a.x.deep"]   # "log" and "bad type" are refused
PATTERNS = {"a.*": "a.y", "a.x": "a.x", "b": "b", "log": None, "*": "zz", "a.?": "a.x"}
LEVELS = ["info", "warning", "error"]
SOURCES = ["s1", "s2"]


@dataclass
class Filter:
    types: tuple
    levels: tuple
    sources: tuple

    def query(self) -> str:
        parts = ["metrics=0"]
        for name, values in (("types", self.types), ("levels", self.levels), ("sources", self.sources)):
            if values:
                parts.append("%s=%s" % (name, ",".join(values)))
        return "&".join(parts)

    def matches(self, event: dict) -> bool:
        import fnmatch
        if self.levels and event["level"] not in self.levels:
            return False
        if self.sources and event["source"] not in self.sources:
            return False
        kind = event["type"] or "log"
        return not self.types or any(fnmatch.fnmatchcase(kind, p) for p in self.types)

    def an_event_it_wants(self) -> dict:
        kind = PATTERNS[self.types[0]] if self.types else "zz"
        return {"message": "sentinel", "type": kind, "level": (self.levels or LEVELS)[0],
                "source": (self.sources or SOURCES)[0]}


filters = st.builds(Filter, st.lists(st.sampled_from(sorted(PATTERNS)), max_size=2, unique=True).map(tuple),
                    st.lists(st.sampled_from(LEVELS), max_size=2, unique=True).map(tuple),
                    st.lists(st.sampled_from(SOURCES), max_size=1, unique=True).map(tuple))


@dataclass
class Subscriber:
    only: Filter
    start: int                      # it wants what came after this id
    reader: SSEReader | None = None
    got: list = field(default_factory=list)


class SubscriptionModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        server = build_app(host="127.0.0.1", port=0, interval_s=0.5, heartbeat_s=3600,
                                      data_dir=":memory:", psutil=None, post_rate_per_s=0)
        self.running = RunningServer(server)
        self.events: list[dict] = []     # what the server acknowledged, in order
        self.subscribers: list[Subscriber] = []

    def teardown(self) -> None:
        try:
            for sub in self.subscribers:  # nothing unwanted waits behind what it has: a sentinel is next
                if sub.reader is None:
                    continue
                self.post(sub.only.an_event_it_wants())
                self.check(sub)
        finally:
            for sub in self.subscribers:
                if sub.reader is not None:
                    sub.reader.close()
            self.running.stop()

    def post(self, body: dict) -> None:
        status, answer = self.running.json("POST", "/api/events", body)
        if body.get("type") in ("log", "bad type"):
            assert status == 400, answer
            return
        assert status == 201, answer
        self.events.append(answer)

    def open(self, sub: Subscriber) -> None:
        sub.reader = SSEReader(self.running.host, self.running.port, "/api/metrics/stream?" + sub.only.query(),
                               headers={"Last-Event-ID": str(sub.got[-1]["id"] if sub.got else sub.start)})
        assert sub.reader.status == 200
        assert sub.reader.next_frame()["retry"] is not None

    def check(self, sub: Subscriber) -> None:
        expected = [e for e in self.events if e["id"] > sub.start and sub.only.matches(e)]
        while len(sub.got) < len(expected):
            frame = sub.reader.next_frame(timeout=5)
            if frame["data"] is None:
                continue  # a heartbeat comment
            assert frame["event"] != "metrics" and frame["event"] != "resync", frame
            event = json.loads(frame["data"])
            assert frame["event"] == (event["type"] or "log") and int(frame["id"]) == event["id"]
            sub.got.append(event)
            assert [e["id"] for e in sub.got] == [e["id"] for e in expected[:len(sub.got)]], (
                "%s got %s, wanted %s" % (sub.only, [e["id"] for e in sub.got], [e["id"] for e in expected]))
        assert sub.got == expected

    @rule(kind=st.sampled_from(TYPES), level=st.sampled_from(LEVELS), source=st.sampled_from(SOURCES))
    def post_event(self, kind, level, source) -> None:
        body = {"message": "m%d" % len(self.events), "level": level, "source": source}
        if kind is not None:
            body["type"] = kind
        self.post(body)

    @precondition(lambda self: len(self.subscribers) < 4)
    @rule(only=filters)
    def subscribe(self, only: Filter) -> None:
        sub = Subscriber(only, start=self.events[-1]["id"] if self.events else 0)
        self.open(sub)
        self.subscribers.append(sub)

    def connected(self) -> list:
        return [s for s in self.subscribers if s.reader is not None]

    @precondition(lambda self: self.connected())
    @rule(data=st.data())
    def read(self, data) -> None:
        self.check(data.draw(st.sampled_from(self.connected())))

    @precondition(lambda self: self.connected())
    @rule(data=st.data())
    def cut(self, data) -> None:
        sub = data.draw(st.sampled_from(self.connected()))
        sub.reader.close(abort=data.draw(st.booleans()))
        sub.reader = None

    @precondition(lambda self: any(s.reader is None for s in self.subscribers))
    @rule(data=st.data())
    def resume(self, data) -> None:
        sub = data.draw(st.sampled_from([s for s in self.subscribers if s.reader is None]))
        self.open(sub)
        self.check(sub)


TestSubscriptions = SubscriptionModel.TestCase
TestSubscriptions.settings = settings(max_examples=int(os.environ.get("SSE_MODEL_EXAMPLES") or 25),
                                      stateful_step_count=25, deadline=None, database=None,
                                      suppress_health_check=list(HealthCheck))
