"""kill -9 under concurrent writes of every kind loses nothing acknowledged (#21 item 1).

A model-based test: Hypothesis sends bursts of writes from several threads at once to a
real ``python sse_server.py`` process (counter increments, gauge values, events, Prometheus
pushes, heartbeats), kills it with SIGKILL after a drawn number of acknowledgements, starts
it again on the same data folder and compares what it has with a plain model.

The promise (README, "Storage"): every write answered 2xx is on disk before the answer, so
after kill -9 a counter holds at least every acknowledged increment, and at most those plus
the ones whose answer the kill cut off; a gauge, a push group and a heartbeat hold their
last acknowledged value or a later one that was cut off; every acknowledged event is there
with its id. A write refused at connect (the process was already dead) is not there.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import urllib.parse
import uuid

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from conftest import ServerProcess

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")

os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(tempfile.gettempdir(), "sse-dashboard-hypothesis"))

THREADS = 4
ACKED, UNKNOWN, REFUSED = "acked", "unknown", "refused"

writes = st.one_of(
    st.tuples(st.just("counter"), st.integers(0, 2), st.integers(1, 1000)),
    st.tuples(st.just("gauge"), st.integers(0, 2), st.integers(-10 ** 6, 10 ** 6).map(lambda v: v / 4)),
    st.tuples(st.just("event"), st.just(0), st.just(0)),
    st.tuples(st.just("push"), st.integers(0, 1), st.integers(0, 10 ** 6)),
    st.tuples(st.just("beat"), st.integers(0, 1), st.integers(0, 10 ** 6)),
)


def key_of(write: tuple) -> tuple:
    """Writes to one gauge, group or heartbeat go from one thread, in order: then "the last
    acknowledged one, or a later one cut off" is the whole truth about what is stored."""
    kind, index, _ = write
    return (kind, index)


class Client:
    """Requests to the process, each with a verdict: acked (2xx), refused (never reached the
    server: the kill came first) or unknown (the kill cut the answer off)."""

    def __init__(self, port: int) -> None:
        self.port = port

    def send(self, method: str, path: str, body: bytes | None = None, content_type: str = "application/json"):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            try:
                conn.connect()
            except ConnectionRefusedError:
                return REFUSED, None
            conn.request(method, path, body=body, headers={"Content-Type": content_type} if body is not None else {})
            response = conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException):
            return UNKNOWN, None
        finally:
            conn.close()
        assert response.status < 300, (method, path, response.status, raw)
        return ACKED, json.loads(raw) if raw else None


def request_for(write: tuple, token: str) -> tuple:
    kind, index, value = write
    if kind == "counter":
        return "POST", "/api/metrics", json.dumps({"counters": {"c%d" % index: value}}).encode(), "application/json"
    if kind == "gauge":
        return "POST", "/api/metrics", json.dumps({"gauges": {"g%d" % index: value}}).encode(), "application/json"
    if kind == "event":
        return "POST", "/api/events", json.dumps({"message": token}).encode(), "application/json"
    if kind == "push":
        body = "# TYPE done counter\ndone %d\nlast %d\n" % (value, value)
        return "PUT", "/metrics/job/p%d" % index, body.encode(), "text/plain"
    return "GET", "/api/push/h%d?msg=%s" % (index, urllib.parse.quote(token)), None, ""


class KillModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.data_dir = tempfile.mkdtemp(prefix="sse-kill9-")
        self.process = self.start()
        # What may be stored: counters as [least, most]; the others as sets of possible values.
        self.counters: dict[str, list] = {}
        self.gauges: dict[str, set] = {}
        self.pushes: dict[str, set] = {}
        self.beats: dict[str, set] = {}
        self.events: dict[int, str] = {}          # acknowledged: id -> message
        self.maybe_events: set[str] = set()       # cut off: may or may not be there
        self.sent_messages: set[str] = set()

    def start(self) -> ServerProcess:
        process = ServerProcess("--port", "0", "--data-dir", self.data_dir, "--interval", "0.2", "--post-rate", "0",
                                "--no-psutil")
        self.client = Client(process.wait_for_url(timeout=20))
        return process

    def teardown(self) -> None:
        self.process.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    @rule(burst=st.lists(writes, min_size=1, max_size=40), kill_after=st.one_of(st.none(), st.integers(0, 40)))
    def write_concurrently(self, burst, kill_after) -> None:
        """The burst from THREADS threads at once; with ``kill_after``, SIGKILL once that many
        writes were acknowledged (or all of them were), then a start on the same folder."""
        lanes: list[list] = [[] for _ in range(THREADS)]
        for i, write in enumerate(burst):
            kind = write[0]
            lane = i % THREADS if kind in ("counter", "event") else hash(key_of(write)) % THREADS
            lanes[lane].append((write, uuid.uuid4().hex))
        results: list[tuple] = []
        acked = threading.Semaphore(0)
        lock = threading.Lock()

        def run(lane: list) -> None:
            for write, token in lane:
                verdict, answer = self.client.send(*request_for(write, token))
                with lock:
                    results.append((write, token, verdict, answer))
                if verdict == ACKED:
                    acked.release()

        threads = [threading.Thread(target=run, args=(lane,)) for lane in lanes if lane]
        for thread in threads:
            thread.start()
        if kill_after is not None:
            for _ in range(min(kill_after, len(burst))):
                if not acked.acquire(timeout=10):
                    break  # fewer acknowledged than drawn (an earlier kill): kill now
            self.process.proc.send_signal(signal.SIGKILL)
            self.process.proc.wait(10)
        for thread in threads:
            thread.join(30)
            assert not thread.is_alive()
        self.expect(results)
        if kill_after is not None:
            self.process.stop()
            self.process = self.start()

    def expect(self, results: list) -> None:
        by_key: dict[tuple, list] = {}
        for write, token, verdict, answer in results:
            kind, index, value = write
            self.sent_messages.add(token)
            if verdict == REFUSED:
                continue
            if kind == "counter":
                least, most = self.counters.setdefault("c%d" % index, [0, 0])
                self.counters["c%d" % index] = [least + value * (verdict == ACKED), most + value]
            elif kind == "event":
                if verdict == ACKED:
                    self.events[answer["id"]] = token
                else:
                    self.maybe_events.add(token)
            else:
                by_key.setdefault(key_of(write), []).append((write, token, verdict))
        # One lane per key, so `results` holds each key's writes in the order they were sent.
        for (kind, index), sequence in by_key.items():
            table, name = {"gauge": (self.gauges, "g%d"), "push": (self.pushes, "p%d"),
                           "beat": (self.beats, "h%d")}[kind]
            name = name % index
            possible = set(table.get(name, {None}))
            for write, token, verdict in sequence:
                value = write[2] if kind == "gauge" else (write[2] if kind == "push" else token)
                possible = {value} if verdict == ACKED else possible | {value}
            table[name] = possible

    @invariant()
    def nothing_acknowledged_is_missing(self) -> None:
        status, snapshot = self.client.send("GET", "/api/metrics")
        assert status == ACKED
        counters, gauges = snapshot["counters"], snapshot["gauges"]
        for name, (least, most) in self.counters.items():
            assert least <= counters.get(name, 0) <= most, (name, counters.get(name), least, most)
            self.counters[name] = [counters.get(name, 0)] * 2
        for name, possible in self.gauges.items():
            assert gauges.get(name) in possible, (name, gauges.get(name), possible)
            self.gauges[name] = {gauges.get(name)}
        for name, possible in self.pushes.items():
            done, last = counters.get('done{job="%s"}' % name), gauges.get('last{job="%s"}' % name)
            assert done == last and done in possible, (name, done, last, possible)
            self.pushes[name] = {done}
        _, alerts = self.client.send("GET", "/api/alerts")
        messages = {beat["name"]: beat["message"] for beat in alerts["heartbeats"]}
        for name, possible in self.beats.items():
            assert messages.get(name) in possible, (name, messages.get(name), possible)
            self.beats[name] = {messages.get(name)}
        _, page = self.client.send("GET", "/api/events?limit=1000")
        stored = {event["id"]: event["message"] for event in page["events"] if event["source"] == "app"}
        for event_id, message in self.events.items():
            assert stored.get(event_id) == message, (event_id, message, stored.get(event_id))
        assert set(stored.values()) <= set(self.events.values()) | self.maybe_events
        self.events = stored  # a cut-off event that was kept is now known
        self.maybe_events = set()


TestKill9 = KillModel.TestCase
TestKill9.settings = settings(max_examples=int(os.environ.get("SSE_MODEL_EXAMPLES") or 6), stateful_step_count=4,
                              deadline=None, database=None, suppress_health_check=list(HealthCheck))

