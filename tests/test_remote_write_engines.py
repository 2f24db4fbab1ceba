"""Remote write against real engines (#25): what one dashboard sends, Prometheus 2.42 and
VictoriaMetrics 1.79 return, sample for sample, for every kind of series it has.

"What it sends" is read by a third receiver on the same dashboard, decoded by decoders someone
else wrote (python-snappy, protobuf's runtime: ``test_remote_write.decode``); each engine must
then hold exactly those series, each with exactly those (timestamp, value) pairs up to a tick
both have confirmed: none missing, none doubled, none renamed. Prometheus is read with a range
selector through ``/api/v1/query`` (its raw samples) and ``query_range``; VictoriaMetrics with
``/api/v1/export`` (its raw samples) and ``query_range``."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from conftest import require_tool, required, wait_until
from sse_dashboard.export import remote_write
from sse_dashboard.alerting.heartbeats import parse_heartbeats
from sse_dashboard.alerting.jobs import parse_jobs
from sse_dashboard.registry import MAX_LABELED_NAME_CHARS, labeled_name
from test_remote_write import ScriptedReceiver, free_port, get_json, prometheus  # noqa: F401 (a fixture)

INSTANCE = "engines ☃"
# Label values the text format and the protobuf must both carry untouched.
ODD = {"quote": 'say "hi"', "slash": "C:\\temp\\", "nl": "one\ntwo", "eq": "a=b,c={d}", "uni": "ü ☃ 日本"}
TICKS = tuple(sorted([("__name__", "sse_dashboard_samples_total"), ("instance", INSTANCE), ("site", 'lab "7"')]))


def long_label_name() -> str:
    """A gauge with one label value as long as the dashboard's name limit lets it be."""
    return labeled_name("long_gauge", {"v": "x" * (MAX_LABELED_NAME_CHARS - len('long_gauge{v=""}'))})


@pytest.fixture
def victoria(tmp_path):
    binary = shutil.which("victoria-metrics")
    require_tool(binary is not None, "victoria-metrics (apt-get install -y victoria-metrics)")
    port = free_port()
    # latencyOffset 0: a sample is visible as soon as it is stored (default: 30 s later);
    # no response cache, so a query after more samples arrived is not answered from an old one.
    proc = subprocess.Popen([binary, "-httpListenAddr", "127.0.0.1:%d" % port, "-storageDataPath", str(tmp_path / "vm"),
                             "-search.latencyOffset", "0s", "-search.disableCache", "-loggerLevel", "ERROR"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = "http://127.0.0.1:%d" % port

    def ready():
        assert proc.poll() is None, "victoria-metrics exited: %s" % proc.stderr.read().decode()[-2000:]
        try:
            return urllib.request.urlopen(base + "/health", timeout=1).read().strip() == b"OK"
        except OSError:
            return False

    try:
        wait_until(ready, timeout=30, message="victoria-metrics /health", interval=0.1)
        yield base
    finally:
        proc.kill()
        proc.wait(10)
        proc.stderr.close()


Series = dict  # {sorted label pairs: [(timestamp ms, value), ...]}


def sent_by(receiver: ScriptedReceiver, until_ms: int) -> Series:
    series: Series = {}
    for labels, value, ts in list(receiver.accepted):
        if ts <= until_ms:
            series.setdefault(tuple(sorted(labels)), []).append((ts, value))
    return series


def prometheus_raw(base: str, until_ms: int) -> Series:
    selector = '{instance="%s"}[10m]' % INSTANCE
    query = urllib.parse.urlencode({"query": selector, "time": "%.3f" % (time.time() + 1)})
    out: Series = {}
    for row in get_json(base + "/api/v1/query?" + query)["data"]["result"]:
        pairs = [(round(float(ts) * 1000), float(v)) for ts, v in row["values"] if round(float(ts) * 1000) <= until_ms]
        if pairs:
            out[tuple(sorted(row["metric"].items()))] = pairs
    return out


def victoria_raw(base: str, until_ms: int) -> Series:
    query = urllib.parse.urlencode({"match[]": '{instance="%s"}' % INSTANCE})
    out: Series = {}
    with urllib.request.urlopen(base + "/api/v1/export?" + query, timeout=5) as response:
        for line in response.read().decode("utf-8").splitlines():
            row = json.loads(line)
            pairs = [(ts, float(v)) for ts, v in zip(row["timestamps"], row["values"]) if ts <= until_ms]
            if pairs:
                out[tuple(sorted(row["metric"].items()))] = pairs
    return out


def differences(sent: Series, stored: Series, exact: bool) -> list:
    """What differs, series by series: missing, extra, or other samples. VictoriaMetrics keeps a
    float as a decimal of 12 significant digits or more (its docs, "precision"), not all 17."""
    def same(a: float, b: float) -> bool:
        return a == b or (math.isnan(a) and math.isnan(b)) or (not exact and math.isclose(a, b, rel_tol=1e-11))

    out = [("missing", labels) for labels in sent if labels not in stored]
    out += [("not sent", labels) for labels in stored if labels not in sent]
    for labels, samples in sent.items():
        held = stored.get(labels)
        if held is not None and (len(held) != len(samples) or not all(
                t1 == t2 and same(v1, v2) for (t1, v1), (t2, v2) in zip(samples, held))):
            out.append(("other samples", labels, samples, held))
    return out


def query_range(base: str, selector: str, start_ms: int, end_ms: int) -> list:
    query = urllib.parse.urlencode({"query": selector, "start": "%.3f" % (start_ms / 1000),
                                    "end": "%.3f" % (end_ms / 1000), "step": "1s"})
    return get_json(base + "/api/v1/query_range?" + query)["data"]["result"]


@pytest.mark.parametrize("framing", ["literal", "cramjam"])
def test_every_kind_of_series_reaches_prometheus_and_victoriametrics_sample_for_sample(
        make_server, prometheus, victoria, tmp_path, monkeypatch, framing):  # noqa: F811 (prometheus: a fixture)
    if framing == "literal":
        monkeypatch.setattr(remote_write, "_cramjam", None)  # the standard library's snappy, as without [snappy]
    else:
        required("cramjam")
    assert remote_write.snappy_compressor() == framing
    copy = ScriptedReceiver([(204, (), 0)])
    try:
        running = make_server(
            remote_write=(prometheus + "/api/v1/write", victoria + "/api/v1/write", copy.url), instance=INSTANCE,
            external_labels={"site": 'lab "7"'}, data_dir=tmp_path / "data",
            heartbeats=parse_heartbeats({"nightly": {"every": 3600}, "never": {"every": 3600}}),
            jobs=parse_jobs({"backup": {"schedule": 3600, "grace": 60}}))
        app = running.server.app
        registry = app.registry
        running.request("POST", "/api/push/nightly")
        running.request("POST", "/ping/%s/start" % app.jobs.find("backup"))
        first = app.sampler.latest()[0]["seq"]
        for n in range(8):  # a new value of each application series every tick or so
            registry.inc(labeled_name("requests", {"route": "/api/v1", **ODD}), 1 + n)
            registry.inc("plain_total", 0.5)
            registry.set(labeled_name("queue_depth", ODD), n * 1.25 - 3)
            registry.set(long_label_name(), 1e-9 * (n + 1))
            registry.set("big_gauge", 123456789.123 + n)
            wait_until(lambda: app.sampler.latest()[0]["seq"] > first + n, timeout=5, message="a tick")
        last = app.sampler.latest()[0]
        until_ms = round(last["ts"] * 1000)
        wait_until(lambda: (until_ms, float(last["seq"])) in sent_by(copy, until_ms).get(TICKS, ()),
                   timeout=10, message="the copy to hold the last tick")
        sent = sent_by(copy, until_ms)
    finally:
        copy.close()

    names = {dict(labels)["__name__"] for labels in sent}
    for wanted in ("system_cpu_usage_ratio", "system_memory_used_bytes", "system_filesystem_size_bytes",
                   "requests_total", "plain_total", "queue_depth", "long_gauge", "big_gauge",
                   "sse_dashboard_heartbeat_up", "sse_dashboard_heartbeat_last_seen_seconds",
                   "sse_dashboard_job_up", "sse_dashboard_job_started", "sse_dashboard_samples_total"):
        assert wanted in names, (wanted, sorted(names))
    odd = next(dict(labels) for labels in sent if dict(labels)["__name__"] == "queue_depth")
    assert {k: odd[k] for k in ODD} == ODD and odd["site"] == 'lab "7"' and odd["instance"] == INSTANCE
    assert len(next(dict(l) for l in sent if dict(l)["__name__"] == "long_gauge")["v"]) > 200

    for engine, read, exact in ((prometheus, prometheus_raw, True), (victoria, victoria_raw, False)):
        try:
            wait_until(lambda: not differences(sent, read(engine, until_ms), exact), timeout=15,
                       message="%s to hold what was sent" % engine)
        except AssertionError:
            raise AssertionError((engine, differences(sent, read(engine, until_ms), exact)[:5])) from None

    # query_range, the fleet page's read: one point a second from those samples, on each engine.
    ticks = sent[TICKS]
    for engine in (prometheus, victoria):
        result = query_range(engine, 'sse_dashboard_samples_total{instance="%s"}' % INSTANCE, ticks[0][0], until_ms)
        assert len(result) == 1 and {float(v) for _, v in result[0]["values"]} <= {v for _, v in ticks}, (engine, result)
    state = {w["url"]: w for w in app.health()["remote_write"]}
    assert all(w["dropped"] == 0 for w in state.values()), state
