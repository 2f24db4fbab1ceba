"""Model-based test of OTLP sums: Hypothesis drives a few apps' counters (cumulative and delta
temporality) through adds, exports, resent exports, refused exports, app restarts and dashboard
restarts against the real server (POST /v1/metrics, data on disk), and compares each counter
with a plain model.

The promise (README, "OpenTelemetry"): a cumulative stream adds its growth since its last point,
so a resent point counts once and a restarted app (a new start time, counting from 0) neither
takes the counter back nor counts twice; delta points are added; a refused request stores
nothing (and, not retried by an SDK, its delta is lost; a cumulative stream's next point still
carries it); the dashboard's own restart changes nothing: each stream's last value is kept
with the counter it added to, so what an app counted between its last point before the restart
and its first after is added, once (#27).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from conftest import RunningServer
from sse_dashboard.app import build_app

os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(tempfile.gettempdir(), "sse-dashboard-hypothesis"))

APPS = {"a": 2, "b": 2, "d": 1}  # app -> its counter's temporality (2 cumulative, 1 delta); a and b share a name


class App:
    """One app's SDK, as the model sees it."""

    def __init__(self, temporality: int) -> None:
        self.temporality = temporality
        self.restart()

    def restart(self) -> None:
        self.start = time.time_ns()
        self.total = 0          # counted since start (what a cumulative point says)
        self.unexported = 0     # counted since the last export (what a delta point says)
        self.last_point = None  # the last point sent, for a resend


def request(app: str, value: int, start: int, temporality: int, broken: bool = False) -> bytes:
    point = {"startTimeUnixNano": str(start), "timeUnixNano": str(time.time_ns()), "asInt": str(value),
             "attributes": [{"key": "app", "value": {"stringValue": "b" if app == "b" else "a"}}]}
    metric = {"name": "orders", "sum": {"aggregationTemporality": temporality, "isMonotonic": True,
                                        "dataPoints": [point]}}
    body = {"resourceMetrics": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "delta" if app == "d" else "shop"}}]},
        "scopeMetrics": [{"metrics": [metric] if not broken else {"not": "a list"}}]}]}
    return json.dumps(body).encode()


class OtlpSums(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.data_dir = tempfile.mkdtemp(prefix="sse-otlp-model-")
        self.running = self.start()
        self.apps = {name: App(temporality) for name, temporality in APPS.items()}
        self.model = {name: 0 for name in APPS}   # what each counter must show

    def start(self) -> RunningServer:
        return RunningServer(build_app(host="127.0.0.1", port=0, interval_s=0.2, data_dir=self.data_dir,
                                       psutil=None, post_rate_per_s=0))

    def post(self, app: str, value: int, start: int, broken: bool = False) -> int:
        body = request(app, value, start, self.apps[app].temporality, broken)
        return self.running.request("POST", "/v1/metrics", body, {"Content-Type": "application/json"})[0]

    @rule(app=st.sampled_from(sorted(APPS)), amount=st.integers(0, 1000))
    def add(self, app, amount):
        self.apps[app].total += amount
        self.apps[app].unexported += amount

    @rule(app=st.sampled_from(sorted(APPS)))
    def export(self, app):
        sdk = self.apps[app]
        value = sdk.total if sdk.temporality == 2 else sdk.unexported
        assert self.post(app, value, sdk.start) == 200
        if sdk.temporality == 1:
            self.model[app] += value
        else:
            self.model[app] += sdk.total - (sdk.last_point or 0)
        sdk.last_point = sdk.total if sdk.temporality == 2 else None
        sdk.unexported = 0

    @rule(app=st.sampled_from(["a", "b"]))
    def resend(self, app):
        """A retried cumulative point: counted once."""
        sdk = self.apps[app]
        if sdk.last_point is not None:
            assert self.post(app, sdk.last_point, sdk.start) == 200

    @rule(app=st.sampled_from(sorted(APPS)))
    def refused_export(self, app):
        sdk = self.apps[app]
        assert self.post(app, sdk.total, sdk.start, broken=True) == 400
        if sdk.temporality == 1:
            sdk.unexported = 0  # a 400 is not retried: those counts are gone

    @rule(app=st.sampled_from(sorted(APPS)))
    def restart_app(self, app):
        self.apps[app].restart()  # what it counted since its last export is lost with it

    @rule()
    def restart_dashboard(self):
        self.running.stop()
        time.sleep(0.002)  # a start time strictly after the old streams' (time_ns granularity)
        self.running = self.start()  # the apps go on: their next points carry what they counted meanwhile

    @invariant()
    def counters_match_the_model(self):
        counters = self.running.json("GET", "/api/metrics")[1]["counters"]
        shown = {"a": counters.get('orders{app="a",service="shop"}', 0),
                 "b": counters.get('orders{app="b",service="shop"}', 0),
                 "d": counters.get('orders{app="a",service="delta"}', 0)}
        assert shown == self.model

    def teardown(self):
        self.running.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


OtlpSums.TestCase.settings = settings(max_examples=int(os.environ.get("SSE_MODEL_EXAMPLES") or 15),
                                      stateful_step_count=20, deadline=None, database=None,
                                      suppress_health_check=list(HealthCheck))
test_otlp_sums_match_the_model = OtlpSums.TestCase
