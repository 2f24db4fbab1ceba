"""The OpenTelemetry Python SDK, unchanged but for its endpoint (``OTEL_EXPORTER_OTLP_ENDPOINT``),
exporting to the real server over both OTLP/HTTP encodings: its protobuf exporter
(``opentelemetry-exporter-otlp-proto-http``) and its JSON one (``-json-http``, a beta)."""

from __future__ import annotations

import importlib
import logging

import pytest

from conftest import required, wait_until

PROTOCOLS = {
    "http/protobuf": ("opentelemetry.exporter.otlp.proto.http.metric_exporter",
                      "opentelemetry.exporter.otlp.proto.http._log_exporter"),
    "http/json": ("opentelemetry.exporter.otlp.json.http.metric_exporter",
                  "opentelemetry.exporter.otlp.json.http._log_exporter"),
}


@pytest.fixture(params=sorted(PROTOCOLS))
def protocol(request):
    required("opentelemetry.sdk")
    for module in PROTOCOLS[request.param]:
        required(module)
    return request.param


@pytest.fixture
def endpoint(server, monkeypatch):
    """As the README says it: the base URL in the environment, nothing in the code."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", server.url)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "shop")
    return server


def meter_provider(protocol: str, **exporter_options):
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    exporter = importlib.import_module(PROTOCOLS[protocol][0]).OTLPMetricExporter(**exporter_options)
    # Exports come from force_flush() (and shutdown()) only: no timer in a test.
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    return MeterProvider(metric_readers=[reader])


def app_metrics(server) -> tuple[dict, dict]:
    snapshot = server.json("GET", "/api/metrics")[1]
    return snapshot["counters"], snapshot["gauges"]


def test_counters_up_down_counters_gauges_and_histograms_arrive(endpoint, protocol):
    provider = meter_provider(protocol)
    meter = provider.get_meter("shop.orders")
    orders = meter.create_counter("orders", unit="{order}")
    queue = meter.create_up_down_counter("queue.size")
    temperature = meter.create_gauge("room.temperature", unit="Cel")
    latency = meter.create_histogram("checkout.latency", unit="s")
    orders.add(3, {"country": "fr"})
    orders.add(4, {"country": "fr"})
    orders.add(1, {"country": "de"})
    queue.add(5)
    queue.add(-2)
    temperature.set(21.5, {"room": "lab"})
    for seconds in (0.1, 0.2, 0.3, 0.4):
        latency.record(seconds)
    try:
        assert provider.force_flush(5000)
        counters, gauges = app_metrics(endpoint)
        assert counters['orders{country="fr",service="shop"}'] == 7
        assert counters['orders{country="de",service="shop"}'] == 1
        assert gauges['queue_size{service="shop"}'] == 3
        assert gauges['room_temperature_celsius{room="lab",service="shop"}'] == 21.5
        assert counters['checkout_latency_seconds_count{service="shop"}'] == 4
        assert counters['checkout_latency_seconds_sum{service="shop"}'] == pytest.approx(1.0)
        assert 0 < gauges['checkout_latency_seconds_p50{service="shop"}'] <= 0.4  # inside the SDK's buckets
        orders.add(2, {"country": "fr"})
        assert provider.force_flush(5000)  # cumulative: the SDK resends 9, the dashboard adds 2
        assert app_metrics(endpoint)[0]['orders{country="fr",service="shop"}'] == 9
    finally:
        provider.shutdown()
    text = endpoint.request("GET", "/metrics")[2].decode()
    assert 'orders_total{country="fr",service="shop"} 9' in text


def test_a_restarted_app_neither_takes_a_counter_back_nor_counts_twice(endpoint, protocol):
    first = meter_provider(protocol)
    first.get_meter("shop").create_counter("orders").add(5)
    first.shutdown()  # exports, as an app does when it stops
    second = meter_provider(protocol)  # the app again: a new start time, counting from 0
    orders = second.get_meter("shop").create_counter("orders")
    orders.add(2)
    try:
        assert second.force_flush(5000)
        assert app_metrics(endpoint)[0] == {'orders{service="shop"}': 7}
        orders.add(1)
        assert second.force_flush(5000)
        assert app_metrics(endpoint)[0] == {'orders{service="shop"}': 8}
    finally:
        second.shutdown()


def test_delta_temporality_is_added(endpoint, protocol):
    from opentelemetry.sdk.metrics import Counter
    from opentelemetry.sdk.metrics.export import AggregationTemporality

    provider = meter_provider(protocol, preferred_temporality={Counter: AggregationTemporality.DELTA})
    orders = provider.get_meter("shop").create_counter("orders")
    try:
        for amount in (5, 2):
            orders.add(amount)
            assert provider.force_flush(5000)
        assert app_metrics(endpoint)[0] == {'orders{service="shop"}': 7}
    finally:
        provider.shutdown()


def test_logs_arrive_as_typed_events_with_their_trace(endpoint, protocol):
    from opentelemetry import trace
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.trace import TracerProvider

    exporter = importlib.import_module(PROTOCOLS[protocol][1]).OTLPLogExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = logging.getLogger("test_otlp_sdk." + protocol)
    logger.propagate = False
    handler = LoggingHandler(level=logging.INFO, logger_provider=provider)
    logger.addHandler(handler)
    tracer = TracerProvider().get_tracer("shop")
    try:
        with tracer.start_as_current_span("checkout") as span:
            logger.error("order %d failed", 42, extra={"event.name": "order.failed", "order_id": 42})
            trace_id = trace.format_trace_id(span.get_span_context().trace_id)
        logger.warning("stock is low")
        provider.force_flush(5000)
    finally:
        logger.removeHandler(handler)
        provider.shutdown()
    events = wait_until(lambda: endpoint.json("GET", "/api/events")[1]["events"], message="the log records")
    failed = endpoint.json("GET", "/api/events?types=order.failed")[1]["events"]
    assert [(e["level"], e["source"], e["message"]) for e in failed] == [("error", "shop", "order 42 failed")]
    assert failed[0]["data"]["trace_id"] == trace_id and failed[0]["data"]["attributes"]["order_id"] == 42
    assert [(e["level"], e["message"]) for e in events][-1] == ("warning", "stock is low")


def test_a_batch_refused_with_429_is_retried_by_the_sdk_and_counted_once(make_server, monkeypatch, protocol, caplog):
    running = make_server(post_rate_per_s=1)  # a burst of 10, then one a second
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", running.url)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "shop")
    wait_until(lambda: running.request("POST", "/v1/metrics", b"{}", {"Content-Type": "application/json"})[0] == 429,
               message="the POST rate to run out")
    provider = meter_provider(protocol)
    provider.get_meter("shop").create_counter("orders").add(5)
    try:
        with caplog.at_level(logging.WARNING, logger="opentelemetry"):
            assert provider.force_flush(10_000)  # 429, Retry-After: 1, then taken
        assert any("retrying" in record.getMessage() for record in caplog.records), caplog.text
        assert app_metrics(running)[0] == {'orders{service="shop"}': 5}
    finally:
        provider.shutdown()
    assert app_metrics(running)[0] == {'orders{service="shop"}': 5}


def test_gzip_and_exponential_histograms_from_the_sdk(endpoint, protocol, monkeypatch):
    from opentelemetry.sdk.metrics import Histogram, MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    exporter = importlib.import_module(PROTOCOLS[protocol][0]).OTLPMetricExporter()
    provider = MeterProvider(metric_readers=[PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)],
                             views=[View(instrument_type=Histogram, aggregation=ExponentialBucketHistogramAggregation())])
    latency = provider.get_meter("shop").create_histogram("query.time", unit="ms")
    for value in range(1, 101):
        latency.record(value)
    try:
        assert provider.force_flush(5000)
    finally:
        provider.shutdown()
    counters, gauges = app_metrics(endpoint)
    assert counters['query_time_milliseconds_count{service="shop"}'] == 100
    assert counters['query_time_milliseconds_sum{service="shop"}'] == 5050
    assert gauges['query_time_milliseconds_p50{service="shop"}'] == pytest.approx(50, rel=0.05)
    assert gauges['query_time_milliseconds_p99{service="shop"}'] == pytest.approx(99, rel=0.05)
