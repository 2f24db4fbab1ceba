"""OTLP/HTTP over real sockets: POST /v1/metrics and /v1/logs in OTLP/JSON (hand-made, as the
specification writes it) and protobuf (opentelemetry-proto's own classes), their answers, limits
and refusals. The SDK's own exporters are tests/test_otlp_sdk.py."""

from __future__ import annotations

import gzip
import http.client
import json
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import require_tool, required, wait_until
from sse_dashboard.storage.database import DB_FILENAME

START = 1_900_000_000_000_000_000  # after any test's dashboard started: a stream it saw from its start
JSON = {"Content-Type": "application/json"}


def attrs(**values) -> list:
    out = []
    for key, value in values.items():
        key = key.replace("__", ".")
        if isinstance(value, bool):
            out.append({"key": key, "value": {"boolValue": value}})
        elif isinstance(value, int):
            out.append({"key": key, "value": {"intValue": str(value)}})
        elif isinstance(value, float):
            out.append({"key": key, "value": {"doubleValue": value}})
        else:
            out.append({"key": key, "value": {"stringValue": value}})
    return out


def metrics_request(*metrics, service="shop") -> dict:
    return {"resourceMetrics": [{
        "resource": {"attributes": attrs(service__name=service, telemetry__sdk__language="python")},
        "scopeMetrics": [{"scope": {"name": "test"}, "metrics": list(metrics)}]}]}


def counter(name, value, start=START, temporality=2, monotonic=True, unit="", **labels) -> dict:
    point = {"startTimeUnixNano": str(start), "timeUnixNano": str(start + 1), "attributes": attrs(**labels)}
    point["asInt" if isinstance(value, int) else "asDouble"] = str(value) if isinstance(value, int) else value
    return {"name": name, "unit": unit, "sum": {"aggregationTemporality": temporality, "isMonotonic": monotonic,
                                                "dataPoints": [point]}}


def gauge(name, value, unit="", **labels) -> dict:
    return {"name": name, "unit": unit, "gauge": {"dataPoints": [{"asDouble": value, "attributes": attrs(**labels)}]}}


def export(server, body, path="/v1/metrics", headers=JSON):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, headers, answer = server.request("POST", path, raw, headers)
    return status, headers, answer


def app_metrics(server) -> tuple[dict, dict]:
    snapshot = server.json("GET", "/api/metrics")[1]
    return snapshot["counters"], snapshot["gauges"]


def test_gauges_and_counters_arrive_with_otel_names_units_and_labels(server):
    status, headers, answer = export(server, metrics_request(
        counter("http.server.requests", 5, unit="{request}", http__method="GET"),
        gauge("room.temperature", 21.5, unit="Cel"),
        gauge("cpu.utilization", 0.25, unit="1"),
        counter("queue.depth", 3, monotonic=False, unit="By")))
    assert (status, json.loads(answer)) == (200, {})
    assert headers["Content-Type"].startswith("application/json")
    counters, gauges = app_metrics(server)
    assert counters == {'http_server_requests{http_method="GET",service="shop"}': 5}
    assert gauges == {'room_temperature_celsius{service="shop"}': 21.5, 'cpu_utilization_ratio{service="shop"}': 0.25,
                      'queue_depth_bytes{service="shop"}': 3}
    text = server.request("GET", "/metrics")[2].decode()
    assert 'http_server_requests_total{http_method="GET",service="shop"} 5' in text


def test_a_cumulative_counter_counts_each_increase_once_across_resends_and_sdk_restarts(server):
    for value in (5, 5, 8):  # 5 sent twice (a retry): counted once
        assert export(server, metrics_request(counter("orders", value)))[0] == 200
    assert app_metrics(server)[0] == {'orders{service="shop"}': 8}
    # The app restarts: a new start time, counting from 0 again. Neither back to 2 nor 8 + 8.
    export(server, metrics_request(counter("orders", 2, start=START + 10**12)))
    assert app_metrics(server)[0] == {'orders{service="shop"}': 10}
    export(server, metrics_request(counter("orders", 7, start=START + 10**12)))
    assert app_metrics(server)[0] == {'orders{service="shop"}': 15}


def test_a_dashboard_restart_neither_loses_nor_double_counts_what_an_app_counted_meanwhile(make_server, tmp_path):
    """#27: each stream's last value is kept with the counter it added to, so a stream that
    started before the dashboard's restart goes on from where it was."""
    first = make_server(data_dir=tmp_path)
    old = 1_000_000_000_000_000_000  # the app started before the dashboard did
    export(first, metrics_request(counter("orders", 5, start=old)))
    assert app_metrics(first)[0] == {'orders{service="shop"}': 5}
    first.stop()
    second = make_server(data_dir=tmp_path)  # the dashboard restarts; the app goes on counting
    export(second, metrics_request(counter("orders", 8, start=old)))
    assert app_metrics(second)[0] == {'orders{service="shop"}': 8}  # not 5 (3 lost), not 13
    export(second, metrics_request(counter("orders", 8, start=old)))
    assert app_metrics(second)[0] == {'orders{service="shop"}': 8}
    # An app restarted while the dashboard was down: its new stream is new, all of it counts.
    second.stop()
    restarted = time.time_ns()
    third = make_server(data_dir=tmp_path)
    export(third, metrics_request(counter("orders", 4, start=restarted)))
    assert app_metrics(third)[0] == {'orders{service="shop"}': 12}
    # A counter it never held is new whatever its start: all of it counts.
    export(third, metrics_request(counter("refunds", 4, start=old)))
    assert app_metrics(third)[0]['refunds{service="shop"}'] == 4


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_kill_9_while_apps_export_neither_loses_nor_double_counts(spawn, tmp_path):
    """#27: apps export cumulative counters from several threads while the dashboard is killed
    with SIGKILL; after a start on the same folder, each app's next export leaves its counter
    exactly at the app's own total, whichever request the kill cut off."""
    def start():
        process = spawn("--port", "0", "--data-dir", str(tmp_path), "--interval", "0.2", "--post-rate", "0",
                        "--no-psutil")
        return process, process.wait_for_url(timeout=20)

    def post(port, app, value):
        body = json.dumps(metrics_request(counter("orders", value, start=1_000_000_000_000_000_000, app=app)))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("POST", "/v1/metrics", body.encode(), JSON)
            return conn.getresponse().status
        except OSError:
            return None  # the kill came first, or cut the answer off
        finally:
            conn.close()

    process, port = start()
    totals = {"a%d" % i: 0 for i in range(4)}
    answered = threading.Semaphore(0)

    def app_exports(app):
        for _ in range(200):
            totals[app] += 7
            if post(port, app, totals[app]) != 200:
                return
            answered.release()

    threads = [threading.Thread(target=app_exports, args=(app,)) for app in totals]
    for thread in threads:
        thread.start()
    for _ in range(60):  # the kill lands in the middle of the exports
        assert answered.acquire(timeout=10)
    process.proc.send_signal(signal.SIGKILL)
    process.proc.wait(10)
    for thread in threads:
        thread.join(30)
    process.stop()
    process, port = start()
    for app in totals:
        totals[app] += 1  # counted while the dashboard was down, exported after
        assert post(port, app, totals[app]) == 200
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/api/metrics")
    counters = json.loads(conn.getresponse().read())["counters"]
    assert {app: counters.get('orders{app="%s",service="shop"}' % app) for app in totals} == totals


def test_delta_sums_are_added_and_delta_up_down_counters_move_a_gauge(server):
    for _ in range(3):
        export(server, metrics_request(counter("bytes.sent", 100, temporality=1, unit="By"),
                                       counter("inflight", 2, temporality=1, monotonic=False)))
    export(server, metrics_request(counter("inflight", -5, temporality=1, monotonic=False)))
    counters, gauges = app_metrics(server)
    assert counters == {'bytes_sent_bytes{service="shop"}': 300}
    assert gauges == {'inflight{service="shop"}': 1}


def histogram(name, count, total, buckets, bounds, temporality=2, unit="ms", start=START, **extra) -> dict:
    point = {"startTimeUnixNano": str(start), "timeUnixNano": str(start + 1), "count": str(count), "sum": total,
             "bucketCounts": [str(b) for b in buckets], "explicitBounds": bounds, **extra}
    return {"name": name, "unit": unit, "histogram": {"aggregationTemporality": temporality, "dataPoints": [point]}}


def test_histograms_become_count_sum_and_quantiles_and_promtool_takes_them(server):
    export(server, metrics_request(histogram("http.duration", 10, 250.0, [2, 6, 2, 0], [10, 20, 50], unit="s",
                                             min=1.0, max=45.0)))
    export(server, metrics_request({"name": "rtt", "unit": "s", "exponentialHistogram": {
        "aggregationTemporality": 1, "dataPoints": [{"count": "4", "sum": 10.0, "scale": 0, "zeroCount": "0",
                                                     "positive": {"offset": 1, "bucketCounts": ["2", "2"]}}]}},
        {"name": "job.time", "unit": "s", "summary": {"dataPoints": [{
            "startTimeUnixNano": str(START), "count": "3", "sum": 6.0,
            "quantileValues": [{"quantile": 0.5, "value": 2.0}, {"quantile": 0.99, "value": 3.5}]}]}}))
    counters, gauges = app_metrics(server)
    assert counters['http_duration_seconds_count{service="shop"}'] == 10
    assert counters['http_duration_seconds_sum{service="shop"}'] == 250.0
    assert gauges['http_duration_seconds_p50{service="shop"}'] == 15.0  # rank 5 of (10, 20]: 3 of its 6 in
    assert gauges['http_duration_seconds_p99{service="shop"}'] == pytest.approx(20 + 25 * 0.95)  # (20, max 45]
    assert counters['rtt_seconds_count{service="shop"}'] == 4
    assert gauges['rtt_seconds_p50{service="shop"}'] == 4.0   # buckets (2, 4] and (4, 8]
    assert gauges['job_time_seconds_p99{service="shop"}'] == 3.5
    promtool = shutil.which("promtool")
    require_tool(promtool is not None, "promtool (apt-get install -y prometheus)")
    result = subprocess.run([promtool, "check", "metrics"], input=server.request("GET", "/metrics")[2],
                            capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr.decode() + result.stdout.decode()


def test_points_that_cannot_be_kept_are_a_partial_success_and_the_rest_are_kept(server):
    too_many = {"l%d" % i: "v" for i in range(12)}
    status, _, answer = export(server, metrics_request(
        gauge("fine", 1.0), gauge("labels", 1.0, **too_many),
        {"name": "novalue", "gauge": {"dataPoints": [{"asDouble": "NaN"}]}},
        counter("backwards", -3, temporality=1)))
    answer = json.loads(answer)
    assert status == 200 and answer["partialSuccess"]["rejectedDataPoints"] == "3", answer
    assert "at most 10 labels" in answer["partialSuccess"]["errorMessage"]
    assert app_metrics(server) == ({}, {'fine{service="shop"}': 1.0})


@pytest.mark.parametrize("body, why", [
    (b"{not json", "JSON"), (b"[]", "JSON object"), (b'{"resourceMetrics": {}}', "array"),
    (b'{"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "x", "sum": {"aggregationTemporality": 2,'
     b'"dataPoints": [{"asInt": "1", "attributes": [{"key": "k", "value": {"weird": 1}}]}]}}]}]}]}', None),
    (b"[" * 100_000 + b"]" * 100_000, "too deep"), (b'{"resourceMetrics": ' + b"[" * 50 + b"]" * 50 + b"}", "array"),
])
def test_a_body_that_is_no_otlp_request_is_a_400_and_stores_nothing(server, body, why):
    status, _, answer = export(server, body)
    if why is None:  # one bad attribute: that point is rejected, the request is answered
        assert status == 200 and json.loads(answer)["partialSuccess"]["rejectedDataPoints"] == "1"
    else:
        assert status == 400 and why in json.loads(answer)["error"], answer
    assert app_metrics(server) == ({}, {})
    assert server.json("GET", "/api/health")[0] == 200


def test_content_types_encodings_and_sizes(server):
    status, _, answer = export(server, b"{}", headers={"Content-Type": "text/plain"})
    assert status == 415 and "application/x-protobuf" in json.loads(answer)["error"]
    status, _, _ = export(server, b"{}", headers={"Content-Type": "application/json", "Content-Encoding": "br"})
    assert status == 415
    zipped = gzip.compress(json.dumps(metrics_request(gauge("zipped", 2.0))).encode())
    assert export(server, zipped, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})[0] == 200
    bomb = gzip.compress(b'{"resourceMetrics": []' + b" " * (5 * 1024 * 1024) + b"}")
    status, _, answer = export(server, bomb, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert status == 400 and "unpacks to more than" in json.loads(answer)["error"]
    reply = server.raw(b"POST /v1/metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                       b"Content-Length: %d\r\n\r\n" % (4 * 1024 * 1024 + 1))
    assert reply.startswith(b"HTTP/1.1 413 ")  # refused before a byte of the body is read
    assert app_metrics(server) == ({}, {'zipped{service="shop"}': 2.0})


def test_the_token_is_needed_and_the_post_rate_answers_429_with_retry_after(make_server):
    running = make_server(token="s3cret", post_rate_per_s=1)
    status, _, _ = export(running, metrics_request(gauge("g", 1.0)))
    assert status == 401
    auth = dict(JSON, Authorization="Bearer s3cret")
    statuses = [export(running, metrics_request(gauge("g", 1.0)), headers=auth) for _ in range(15)]
    refused = [headers for status, headers, _ in statuses if status == 429]
    assert refused and int(refused[0]["Retry-After"]) >= 1
    assert running.request("POST", "/v1/traces", b"{}", JSON)[0] == 401  # an unknown /v1/ path needs it too


def test_a_request_the_disk_refuses_stores_nothing_and_is_a_503(make_server, tmp_path):
    from sse_dashboard.storage import StorageError

    running = make_server(data_dir=tmp_path)

    def refuse(rows, meta=None, forget=()):
        raise StorageError("disk full")
    running.server.registry._journal = refuse
    status, headers, _ = export(running, metrics_request(counter("orders", 5)))
    assert status == 503 and headers["Retry-After"]
    running.server.registry._journal = None
    # The refused point left no stream state behind: the retry counts all of it, once.
    export(running, metrics_request(counter("orders", 5)))
    assert app_metrics(running)[0] == {'orders{service="shop"}': 5}


def log_record(body, severity=9, **attributes) -> dict:
    return {"timeUnixNano": str(START), "severityNumber": severity, "severityText": "X",
            "body": {"stringValue": body} if isinstance(body, str) else body, "attributes": attrs(**attributes),
            "traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "eee19b7ec3c1b174"}


def logs_request(*records, service="shop") -> dict:
    return {"resourceLogs": [{"resource": {"attributes": attrs(service__name=service)},
                              "scopeLogs": [{"scope": {"name": "app.orders"}, "logRecords": list(records)}]}]}


def test_logs_become_typed_events_that_type_filters_find(server):
    status, _, answer = export(server, logs_request(
        log_record("order 42 failed", severity=17, event__name="order.failed", order=42),
        log_record("slow", severity=13), log_record({"kvlistValue": {"values": attrs(a="b")}}, severity=1)),
        path="/v1/logs")
    assert (status, json.loads(answer)) == (200, {})
    events = server.json("GET", "/api/events")[1]["events"]
    assert [(e["level"], e["type"], e["source"], e["message"]) for e in events] == [
        ("error", "order.failed", "shop", "order 42 failed"), ("warning", None, "shop", "slow"),
        ("info", None, "shop", '{"a":"b"}')]
    assert events[0]["data"]["trace_id"] == "5b8efff798038103d269b633813fc60c"
    assert events[0]["data"]["span_id"] == "eee19b7ec3c1b174"
    assert events[0]["data"]["attributes"]["order"] == 42
    typed = server.json("GET", "/api/events?types=order.*")[1]["events"]
    assert [e["message"] for e in typed] == ["order 42 failed"]


def test_a_log_record_that_cannot_be_an_event_is_rejected_alone(server):
    status, _, answer = export(server, logs_request(
        log_record("kept"), log_record("forged", event__name="alert.firing"), dict(log_record("x"), traceId="zz")),
        path="/v1/logs")
    answer = json.loads(answer)["partialSuccess"]
    assert status == 200 and answer["rejectedLogRecords"] == "2" and "alert." in answer["errorMessage"]
    assert [e["message"] for e in server.json("GET", "/api/events")[1]["events"]] == ["kept"]


def test_protobuf_takes_the_same_path_and_answers_in_protobuf(server):
    required("opentelemetry.proto")
    from google.protobuf import json_format
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

    request = json_format.ParseDict(metrics_request(counter("orders", 5), gauge("bad", 1.0, **{
        "l%d" % i: "v" for i in range(12)})), metrics_service_pb2.ExportMetricsServiceRequest())
    proto = {"Content-Type": "application/x-protobuf"}
    status, headers, answer = export(server, request.SerializeToString(), headers=proto)
    assert status == 200 and headers["Content-Type"] == "application/x-protobuf"
    response = metrics_service_pb2.ExportMetricsServiceResponse.FromString(answer)
    assert response.partial_success.rejected_data_points == 1
    assert app_metrics(server)[0] == {'orders{service="shop"}': 5}
    logs = logs_service_pb2.ExportLogsServiceRequest()
    json_format.ParseDict(logs_request(dict(log_record("hello", event__name="greeting"), traceId="", spanId="")), logs)
    record = logs.resource_logs[0].scope_logs[0].log_records[0]
    record.trace_id, record.span_id = bytes.fromhex("5b8efff798038103d269b633813fc60c"), b"\xee" * 8
    status, _, _ = export(server, logs.SerializeToString(), path="/v1/logs", headers=proto)
    event = server.json("GET", "/api/events?types=greeting")[1]["events"][0]
    assert status == 200 and event["data"]["trace_id"] == "5b8efff798038103d269b633813fc60c"
    status, headers, _ = export(server, b"\xff\xff\xff", headers=proto)
    assert status == 400 and headers["Content-Type"] == "application/x-protobuf"  # a google.rpc.Status (below)


def test_a_refusal_is_a_google_rpc_status_in_the_request_s_encoding(make_server):
    """#27: OTLP/HTTP answers a failed request with a google.rpc.Status: for JSON its JSON mapping
    beside the house's "error", for protobuf the message itself, wherever the refusal comes from
    (the handler's 400, the guard's 429, storage's 503)."""
    required("opentelemetry.proto")
    status_pb2 = required("google.rpc.status_pb2")
    running = make_server(post_rate_per_s=1)
    status, _, answer = export(running, {"resourceMetrics": {"not": "a list"}})
    assert status == 400
    answer = json.loads(answer)
    assert answer["code"] == 3 and answer["message"] == answer["error"] and "resourceMetrics" in answer["error"]
    proto = {"Content-Type": "application/x-protobuf"}
    status, headers, answer = export(running, b"\xff\xff\xff", headers=proto)
    assert status == 400 and headers["Content-Type"] == "application/x-protobuf"
    refusal = status_pb2.Status.FromString(answer)
    assert refusal.code == 3 and "not a protobuf" in refusal.message
    statuses = [export(running, b"", headers=proto) for _ in range(15)]
    limited = [(headers, answer) for status, headers, answer in statuses if status == 429]
    assert limited and limited[0][0]["Retry-After"]
    assert status_pb2.Status.FromString(limited[0][1]).code == 8  # RESOURCE_EXHAUSTED, retried by an SDK


def test_storage_s_refusal_is_a_status_unavailable(make_server, tmp_path):
    import sqlite3

    running = make_server(data_dir=tmp_path)
    with sqlite3.connect(str(tmp_path / DB_FILENAME)) as db:
        db.execute("CREATE TRIGGER refuse BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END")
    status, headers, answer = export(running, logs_request(log_record("x")), path="/v1/logs")
    answer = json.loads(answer)
    assert status == 503 and headers["Retry-After"] and answer["code"] == 14 and answer["message"] == answer["error"]


def test_protobuf_without_the_otlp_extra_is_a_415_naming_it(spawn, tmp_path):
    hidden = tmp_path / "opentelemetry"
    hidden.mkdir()
    (hidden / "__init__.py").write_text("raise ImportError('opentelemetry is hidden for this test')\n")
    running = spawn("--port", "0", env={"PYTHONPATH": str(tmp_path)})
    port = running.wait_for_url()
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("POST", "/v1/metrics", b"\x0a\x00", {"Content-Type": "application/x-protobuf"})
    response = conn.getresponse()
    answer = json.loads(response.read())
    assert response.status == 415 and "[otlp]" in answer["error"], answer
    conn.request("POST", "/v1/metrics", json.dumps(metrics_request(gauge("g", 1.0))).encode(), JSON)
    assert conn.getresponse().status == 200  # JSON needs nothing more
    assert "Traceback" not in running.output


def test_the_stream_state_is_bounded_and_a_forgotten_stream_never_counts_twice(server):
    from sse_dashboard.ingest.otlp_metrics import MAX_STARTS_PER_NAME

    # One series from more SDK runs than the dashboard keeps start times for: the earliest is
    # forgotten. Coming back, it sets a baseline (its 5 was counted); a later run counts whole.
    for run in range(MAX_STARTS_PER_NAME + 1):
        export(server, metrics_request(counter("orders", 5, start=START + run)))
    total = 5 * (MAX_STARTS_PER_NAME + 1)
    assert app_metrics(server)[0] == {'orders{service="shop"}': total}
    export(server, metrics_request(counter("orders", 6, start=START)))  # the forgotten one again
    assert app_metrics(server)[0] == {'orders{service="shop"}': total}
    export(server, metrics_request(counter("orders", 3, start=START + 100)))
    assert app_metrics(server)[0] == {'orders{service="shop"}': total + 3}
    assert server.server.app.otlp_metrics.streams() <= MAX_STARTS_PER_NAME


def test_the_kept_stream_state_is_bounded_and_a_forgotten_stream_stays_forgotten_after_a_restart(make_server, tmp_path):
    import sqlite3

    from sse_dashboard.ingest.otlp_metrics import MAX_STARTS_PER_NAME

    first = make_server(data_dir=tmp_path)
    for run in range(MAX_STARTS_PER_NAME + 1):
        export(first, metrics_request(counter("orders", 5, start=START + run)))
    first.stop()
    with sqlite3.connect(str(tmp_path / DB_FILENAME)) as db:
        kept = db.execute("SELECT COUNT(*) FROM meta WHERE key LIKE 'otlp.stream:%'").fetchone()[0]
    assert kept == MAX_STARTS_PER_NAME  # the forgotten start's row went with it
    second = make_server(data_dir=tmp_path)
    total = 5 * (MAX_STARTS_PER_NAME + 1)
    export(second, metrics_request(counter("orders", 6, start=START)))  # the forgotten one again: a baseline
    assert app_metrics(second)[0] == {'orders{service="shop"}': total}
    export(second, metrics_request(counter("orders", 7, start=START + 1)))  # kept: its growth
    assert app_metrics(second)[0] == {'orders{service="shop"}': total + 2}


def test_a_logs_export_the_disk_refuses_part_way_stores_none_of_it(make_server, tmp_path):
    """#27: a batch of records is one commit: storage failing at its third record (a trigger in
    the real database, as a full disk would) leaves no event behind, and the SDK's retry posts
    them all, once."""
    import sqlite3

    running = make_server(data_dir=tmp_path)
    records = [log_record(text) for text in ("first", "second", "third", "fourth")]
    with sqlite3.connect(str(tmp_path / DB_FILENAME)) as db:
        db.execute("CREATE TRIGGER refuse_third BEFORE INSERT ON events WHEN NEW.message = 'third' "
                   "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
    status, headers, _ = export(running, logs_request(*records), path="/v1/logs")
    assert status == 503 and headers["Retry-After"]
    assert running.json("GET", "/api/events")[1]["events"] == []
    assert running.json("GET", "/api/events?source=shop&limit=10")[1]["events"] == []
    with sqlite3.connect(str(tmp_path / DB_FILENAME)) as db:
        db.execute("DROP TRIGGER refuse_third")
    # Storage says it is well again at its next write (the history's tick): the retry is taken.
    wait_until(lambda: export(running, logs_request(*records), path="/v1/logs")[0] == 200, message="a retry taken")
    events = running.json("GET", "/api/events")[1]["events"]
    assert [(e["id"], e["message"]) for e in events] == [(1, "first"), (2, "second"), (3, "third"), (4, "fourth")]


def test_another_attribute_can_type_the_events(make_server):
    running = make_server(otlp_event_type_attribute="log.kind")
    export(running, logs_request(log_record("deployed", log__kind="deploy.done"), log_record("x", event__name="other")),
           path="/v1/logs")
    events = running.json("GET", "/api/events?types=deploy.*")[1]["events"]
    assert [(e["message"], e["type"]) for e in events] == [("deployed", "deploy.done")]
    from sse_dashboard.cli import config_from_args, parse_args
    args = parse_args(["--otlp-event-type-attribute", "log.kind"])
    assert config_from_args(args, [], ":memory:").otlp_event_type_attribute == "log.kind"


def test_all_lists_exactly_the_public_names():
    from conftest import check_public_names
    from sse_dashboard.ingest import otlp, otlp_logs, otlp_metrics
    from sse_dashboard.web.handlers import otlp as otlp_handlers

    for module in (otlp, otlp_metrics, otlp_logs, otlp_handlers):
        check_public_names(module)
