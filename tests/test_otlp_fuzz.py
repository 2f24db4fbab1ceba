"""Property-based fuzzing of OTLP/HTTP over real sockets: POST /v1/metrics and /v1/logs with
OTLP/JSON bodies that are nearly right (each field sometimes anything at all) and protobuf bodies
made from them, cut short or random. Never a 5xx, never a traceback; a refused request (any 4xx)
stores nothing, and an accepted one says how many it rejected."""

from __future__ import annotations

import json
import logging
import os
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import RunningServer
from sse_dashboard.app import build_app

os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(tempfile.gettempdir(), "sse-dashboard-hypothesis"))

FUZZ = settings(max_examples=int(os.environ.get("SSE_FUZZ_EXAMPLES") or 60), deadline=None, database=None,
                suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def running():
    server = RunningServer(build_app(host="127.0.0.1", port=0, interval_s=0.1, data_dir=":memory:",
                                     psutil=None, post_rate_per_s=0))
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def no_tracebacks(caplog):
    with caplog.at_level(logging.WARNING):
        yield
    records = caplog.get_records("call")
    assert not [r for r in records if r.exc_info], [r.getMessage() for r in records if r.exc_info]


anything = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8)


def nearly(strategy):
    """Mostly what the field should hold; sometimes anything at all."""
    return st.one_of(strategy, strategy, strategy, anything)


int64 = st.integers(-2 ** 63, 2 ** 64).map(str) | st.integers(0, 2 ** 53)
names = st.sampled_from(["orders", "http.server.duration", "a b", "9lives", "_total", "x" * 120, "", "é.ü"])
units = st.sampled_from(["", "1", "ms", "By", "{req}", "By/s", "%", "Cel", "weird/unit"])
any_value = st.deferred(lambda: st.one_of(
    st.builds(lambda v: {"stringValue": v}, st.text(max_size=20)),
    st.builds(lambda v: {"intValue": v}, int64),
    st.builds(lambda v: {"doubleValue": v}, st.floats()),
    st.builds(lambda v: {"boolValue": v}, st.booleans()),
    st.builds(lambda v: {"bytesValue": v}, st.sampled_from(["AAEC", "not base64!", ""])),
    st.builds(lambda v: {"arrayValue": {"values": v}}, st.lists(any_value, max_size=2)),
    st.builds(lambda v: {"kvlistValue": {"values": v}}, st.lists(attribute, max_size=2)),
    anything))
attribute = st.fixed_dictionaries({"key": nearly(st.sampled_from(["service.name", "http.method", "event.name", "k",
                                                                  "__x", "1a", "a.b", "a_b"])),
                                   "value": any_value})
attributes = nearly(st.lists(attribute, max_size=4))
number_point = st.fixed_dictionaries({}, optional={
    "asInt": nearly(int64), "asDouble": nearly(st.floats()), "startTimeUnixNano": nearly(int64),
    "timeUnixNano": nearly(int64), "attributes": attributes, "flags": nearly(st.integers(0, 3))})
bucket_counts = nearly(st.lists(st.integers(0, 100).map(str), max_size=5))
histogram_point = st.fixed_dictionaries({}, optional={
    "count": nearly(int64), "sum": nearly(st.floats()), "bucketCounts": bucket_counts,
    "explicitBounds": nearly(st.lists(st.floats(), max_size=4)), "min": nearly(st.floats()),
    "max": nearly(st.floats()), "startTimeUnixNano": nearly(int64), "attributes": attributes})
exponential_point = st.fixed_dictionaries({}, optional={
    "count": nearly(int64), "sum": nearly(st.floats()), "scale": nearly(st.integers(-12, 22)),
    "zeroCount": nearly(int64), "attributes": attributes,
    "positive": nearly(st.fixed_dictionaries({"offset": nearly(st.integers(-2 ** 40, 2 ** 40)),
                                              "bucketCounts": bucket_counts})),
    "negative": nearly(st.fixed_dictionaries({"offset": nearly(st.integers(-2000, 2000)),
                                              "bucketCounts": bucket_counts}))})
summary_point = st.fixed_dictionaries({}, optional={
    "count": nearly(int64), "sum": nearly(st.floats()), "startTimeUnixNano": nearly(int64),
    "quantileValues": nearly(st.lists(st.fixed_dictionaries({"quantile": nearly(st.floats()),
                                                             "value": nearly(st.floats())}), max_size=3))})
temporality = nearly(st.sampled_from([0, 1, 2, "AGGREGATION_TEMPORALITY_DELTA"]))


def data(points, **fields):
    return st.fixed_dictionaries({"dataPoints": nearly(st.lists(points, max_size=3)), **fields})


metric = st.builds(
    lambda name, unit, kind: {"name": name, "unit": unit, **kind}, nearly(names), nearly(units), st.one_of(
        st.builds(lambda d: {"gauge": d}, data(number_point)),
        st.builds(lambda d: {"sum": d}, data(number_point, aggregationTemporality=temporality,
                                             isMonotonic=nearly(st.booleans()))),
        st.builds(lambda d: {"histogram": d}, data(histogram_point, aggregationTemporality=temporality)),
        st.builds(lambda d: {"exponentialHistogram": d}, data(exponential_point, aggregationTemporality=temporality)),
        st.builds(lambda d: {"summary": d}, data(summary_point)),
        anything.map(lambda d: {"gauge": d})))
metrics_request = st.builds(
    lambda resources: {"resourceMetrics": resources},
    nearly(st.lists(st.fixed_dictionaries({
        "resource": nearly(st.fixed_dictionaries({"attributes": attributes})),
        "scopeMetrics": nearly(st.lists(st.fixed_dictionaries({"metrics": nearly(st.lists(metric, max_size=3))}),
                                        max_size=2))}), max_size=2)))
log_record = st.fixed_dictionaries({}, optional={
    "severityNumber": nearly(st.integers(0, 30)), "severityText": nearly(st.sampled_from(["INFO", "WARN", "error", ""])),
    "body": any_value, "attributes": attributes, "eventName": nearly(st.sampled_from(["order.failed", "alert.firing",
                                                                                       "log", "a b", ""])),
    "traceId": nearly(st.sampled_from(["5b8efff798038103d269b633813fc60c", "zz", "", "00" * 16])),
    "spanId": nearly(st.sampled_from(["eee19b7ec3c1b174", "x", ""])), "timeUnixNano": nearly(int64)})
logs_request = st.builds(
    lambda resources: {"resourceLogs": resources},
    nearly(st.lists(st.fixed_dictionaries({
        "resource": nearly(st.fixed_dictionaries({"attributes": attributes})),
        "scopeLogs": nearly(st.lists(st.fixed_dictionaries({
            "scope": nearly(st.fixed_dictionaries({"name": nearly(st.text(max_size=10))})),
            "logRecords": nearly(st.lists(log_record, max_size=4))}), max_size=2))}), max_size=2)))


def state(running) -> tuple:
    return running.server.registry.snapshot(), running.server.app.events.last_id


def check_answer(running, before, status, headers, raw, signal):
    assert status < 500, (status, raw[:300])
    if status != 200:
        assert status in (400, 413, 415), status
        if headers["Content-Type"].startswith("application/json"):
            assert json.loads(raw)["error"]
        else:  # a google.rpc.Status, as OTLP/HTTP answers a protobuf request
            from google.rpc import status_pb2
            assert status_pb2.Status.FromString(raw).message
        assert state(running) == before, "a refused request stored something"
        return
    if headers["Content-Type"].startswith("application/json"):
        answer = json.loads(raw)
        partial = answer.get("partialSuccess")
        assert partial is None or int(partial["rejectedDataPoints" if signal == "metrics" else "rejectedLogRecords"]) >= 0
    assert running.request("GET", "/api/health")[0] == 200


def post(running, path, body: bytes, content_type: str):
    return running.request("POST", path, body, {"Content-Type": content_type})


@FUZZ
@given(request=metrics_request)
def test_metrics_json_never_a_5xx_and_a_refusal_stores_nothing(running, request):
    before = state(running)
    body = json.dumps(request).encode()  # NaN and Infinity as JSON's non-standard words, too
    check_answer(running, before, *post(running, "/v1/metrics", body, "application/json"), "metrics")


@FUZZ
@given(request=logs_request)
def test_logs_json_never_a_5xx_and_a_refusal_stores_nothing(running, request):
    before = state(running)
    body = json.dumps(request).encode()
    check_answer(running, before, *post(running, "/v1/logs", body, "application/json"), "logs")


def protobuf_of(request: dict, signal: str, cut: int | None) -> bytes:
    from google.protobuf import json_format
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

    message = (metrics_service_pb2.ExportMetricsServiceRequest() if signal == "metrics"
               else logs_service_pb2.ExportLogsServiceRequest())
    try:
        json_format.ParseDict(request, message, ignore_unknown_fields=True)
    except Exception:  # not a request protobuf can hold: send what was made of it so far
        pass
    raw = message.SerializeToString()
    return raw if cut is None else raw[:cut]


@FUZZ
@given(signal=st.sampled_from(["metrics", "logs"]), data=st.data(), cut=st.none() | st.integers(0, 200),
       junk=st.none() | st.binary(max_size=200))
def test_protobuf_never_a_5xx_and_a_refusal_stores_nothing(running, signal, data, cut, junk):
    pytest.importorskip("opentelemetry.proto")  # tests/test_otlp.py fails when the extra is missing
    request = data.draw(metrics_request if signal == "metrics" else logs_request)
    body = junk if junk is not None else protobuf_of(request, signal, cut)
    before = state(running)
    check_answer(running, before, *post(running, "/v1/" + signal, body, "application/x-protobuf"), signal)
