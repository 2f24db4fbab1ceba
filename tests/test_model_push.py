"""Model-based test of Prometheus push: Hypothesis sends PUT, POST and DELETE for a few groups
(and malformed bodies, and restarts) to the real server, against a plain dict of groups.

The promise (README, "Prometheus push"): PUT replaces the group, POST replaces the families it
sends and keeps the group's others, DELETE removes the group; a 400 stores nothing; what was
acknowledged is there after a restart, as counters (``# TYPE counter``) and gauges, with the
grouping labels, and a group pushed before a restart can be replaced or deleted after it.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from sse_dashboard.app import build_app
from conftest import RunningServer

os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(tempfile.gettempdir(), "sse-dashboard-hypothesis"))

GROUPS = {"/metrics/job/a": {"job": "a"}, "/metrics/job/a/instance/x": {"instance": "x", "job": "a"},
          "/metrics/job@base64/Yi9j": {"job": "b/c"}}
FAMILIES = ["jobs", "temp", "rows"]
KINDS = {"jobs": "counter", "temp": "gauge", "rows": "untyped"}
values = st.one_of(st.integers(0, 10 ** 6), st.floats(0, 1e9, allow_nan=False).map(lambda v: round(v, 3)))
# Label values with characters str.splitlines() breaks at; the text format takes them raw (#21).
LABELS = ["", "k1", "k2", "a\u2028b", "c\x85d", "e\x0cf\x1dg", "h\ri"]
families = st.dictionaries(st.sampled_from(FAMILIES),
                           st.dictionaries(st.sampled_from(LABELS), values, min_size=1, max_size=2),
                           min_size=1, max_size=3)


def body_of(sent: dict) -> bytes:
    lines = []
    for family, samples in sent.items():
        lines.append("# TYPE %s %s" % (family, KINDS[family]))
        for label, value in samples.items():
            lines.append('%s%s %r' % (family, '{k="%s"}' % label if label else "", value))
    return ("\n".join(lines) + "\n").encode()


def name_of(family: str, label: str, grouping: dict) -> str:
    labels = dict(grouping, **({"k": label} if label else {}))
    return "%s{%s}" % (family, ",".join('%s="%s"' % (k, labels[k]) for k in sorted(labels)))


def typed(values: dict) -> dict:
    return {name: (type(value), value) for name, value in values.items()}


class PushModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.data_dir = tempfile.mkdtemp(prefix="sse-push-model-")
        self.running = self.start()
        self.groups: dict[str, dict] = {}  # path -> {family: {label: value}}

    def start(self) -> RunningServer:
        return RunningServer(build_app(host="127.0.0.1", port=0, interval_s=0.2, data_dir=self.data_dir,
                                                  psutil=None, post_rate_per_s=0))

    def teardown(self) -> None:
        self.running.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def send(self, method: str, path: str, body: bytes = b"") -> int:
        status, _, raw = self.running.request(method, path, body, headers={"Content-Type": "text/plain"})
        assert status < 500, raw
        return status

    @rule(path=st.sampled_from(sorted(GROUPS)), sent=families, replace=st.booleans())
    def push(self, path, sent, replace) -> None:
        assert self.send("PUT" if replace else "POST", path, body_of(sent)) == 200
        group = {} if replace else dict(self.groups.get(path, {}))
        group.update(sent)
        self.groups[path] = group

    @rule(path=st.sampled_from(sorted(GROUPS)), sent=families,
          spoil=st.sampled_from([b"x{", b"y 1 123", b"z NaN", b"9 1", b'w{a="1",a="2"} 1',
                                 # what Prometheus refuses too (#21)
                                 b"# TYPE n counter\nn -1", b"d 1\nd 2", b"u 1_000", b"r 1\r", b"v\xc2\xa01"]))
    def push_malformed(self, path, sent, spoil) -> None:
        assert self.send("PUT", path, body_of(sent) + spoil + b"\n") == 400

    @rule(path=st.sampled_from(sorted(GROUPS)))
    def delete(self, path) -> None:
        assert self.send("DELETE", path) == 200
        self.groups.pop(path, None)

    @rule()
    def restart(self) -> None:
        self.running.stop()
        self.running = self.start()

    @invariant()
    def the_metrics_are_the_model(self) -> None:
        counters, gauges = {}, {}
        for path, group in self.groups.items():
            for family, samples in group.items():
                for label, value in samples.items():
                    if KINDS[family] == "counter":
                        counters[name_of(family, label, GROUPS[path])] = value
                    else:
                        gauges[name_of(family, label, GROUPS[path])] = value
        snapshot = self.running.json("GET", "/api/metrics")[1]
        # (type, value): a pushed "5" is the int 5 and "5.0" the float, as the same JSON would be (#21)
        assert typed(snapshot["counters"]) == typed(counters)
        got_gauges = {k: v for k, v in snapshot["gauges"].items() if not k.startswith("push_time_seconds")}
        assert typed(got_gauges) == typed(gauges)
        pushed = {k for k in snapshot["gauges"] if k.startswith("push_time_seconds")}
        assert pushed == {name_of("push_time_seconds", "", GROUPS[p]) for p in self.groups}


TestPush = PushModel.TestCase
TestPush.settings = settings(max_examples=int(os.environ.get("SSE_MODEL_EXAMPLES") or 15), stateful_step_count=15,
                             deadline=None, database=None, suppress_health_check=list(HealthCheck))
