"""Prometheus remote write (#25): what a dashboard pushes is what the engine stores, sample for
sample, and an engine that fails, refuses or stalls never holds up the sampler.

The encoding is checked by decoders someone else wrote (python-snappy, Google's protobuf runtime
with the message types built from prompb's field numbers), the delivery against a real
Prometheus 2.42 started here with ``--web.enable-remote-write-receiver``, and the failures
against a small scripted receiver."""

from __future__ import annotations

import base64
import email.utils
import http.server
import json
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from conftest import SSEReader, require_tool, required, wait_until
from sse_dashboard.export import remote_write
from sse_dashboard.export.remote_write import encode_write_request, snappy_block, snappy_literal_block, tick_series
from sse_dashboard.export.writer import RemoteWriter, redacted_url
from sse_dashboard.registry import labeled_name
from sse_dashboard.sampler import Sample

ODD_LABELS = {"path": 'C:\\temp "quoted"\nsecond line', "sym": "☃ é ,{}= #", "zero": "0"}
ODD_GAUGE = labeled_name("odd_gauge", ODD_LABELS)


# --- an independent decoder: python-snappy and protobuf's runtime ----------------------------

def write_request_class():
    """prompb's WriteRequest (remote.proto, types.proto), built at run time from its field numbers."""
    descriptor_pb2 = required("google.protobuf.descriptor_pb2")
    from google.protobuf import descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="test_prompb.proto", package="test_prompb", syntax="proto3")

    def message(name, *fields):
        msg = file.message_type.add(name=name)
        for field_name, number, kind, type_name, repeated in fields:
            msg.field.add(name=field_name, number=number, type=kind,
                          label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL,
                          **({"type_name": ".test_prompb." + type_name} if type_name else {}))

    message("Label", ("name", 1, F.TYPE_STRING, None, False), ("value", 2, F.TYPE_STRING, None, False))
    message("Sample", ("value", 1, F.TYPE_DOUBLE, None, False), ("timestamp", 2, F.TYPE_INT64, None, False))
    message("TimeSeries", ("labels", 1, F.TYPE_MESSAGE, "Label", True), ("samples", 2, F.TYPE_MESSAGE, "Sample", True))
    message("WriteRequest", ("timeseries", 1, F.TYPE_MESSAGE, "TimeSeries", True))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("test_prompb.WriteRequest"))


def decode(body: bytes) -> list[tuple[tuple, float, int]]:
    """[(labels, value, timestamp ms), ...] of a snappy-framed WriteRequest, in its order."""
    snappy = required("snappy")
    request = write_request_class()()
    request.ParseFromString(snappy.uncompress(body))
    return [(tuple((label.name, label.value) for label in ts.labels), sample.value, sample.timestamp)
            for ts in request.timeseries for sample in ts.samples]


@pytest.mark.parametrize("size", [0, 1, 59, 60, 61, 255, 256, 257, 65535, 65536, 65537, 200_000])
def test_the_literal_snappy_block_is_read_back_by_python_snappy_at_every_tag_length(size):
    snappy = required("snappy")
    data = bytes(i * 7 % 251 for i in range(size))
    assert snappy.uncompress(snappy_literal_block(data)) == data
    assert snappy.uncompress(snappy_block(data)) == data  # compressed when the [snappy] extra is there


def test_with_the_snappy_extra_requests_are_compressed_and_without_it_literal(monkeypatch):
    required("cramjam")
    snappy = required("snappy")
    body = encode_write_request(tick_series({"seq": 1, "system": {}, "server": {}, "counters": {},
                                             "gauges": {"g%d" % i: i for i in range(100)}}, "box"), 1)
    assert remote_write.snappy_compressor() == "cramjam"
    compressed = snappy_block(body)
    assert len(compressed) < len(body) / 3 and snappy.uncompress(compressed) == body
    monkeypatch.setattr(remote_write, "_cramjam", None)  # as without the extra
    assert remote_write.snappy_compressor() == "literal" and snappy_block(body) == snappy_literal_block(body)


def test_a_write_request_decodes_with_protobuf_to_the_same_labels_values_and_timestamps():
    series = [((("__name__", "a_total"), ("instance", "h")), 3.0),
              ((("__name__", "b"), ("instance", "ü ☃"), ("x", 'q"\\\n')), -0.25),
              ((("__name__", "c"),), float("inf"))]
    assert decode(snappy_block(encode_write_request(series, 1_700_000_000_123))) == [
        (labels, value, 1_700_000_000_123) for labels, value in series]
    # A timestamp before 1970 is a negative int64 (10 varint bytes): it must still read back.
    assert decode(snappy_block(encode_write_request(series[:1], -5)))[0][2] == -5


def test_two_ticks_concatenated_are_one_request_with_both_in_order():
    one = encode_write_request([((("__name__", "g"),), 1.0)], 1000)
    two = encode_write_request([((("__name__", "g"),), 2.0)], 2000)
    assert [(v, ts) for _, v, ts in decode(snappy_block(one + two))] == [(1.0, 1000), (2.0, 2000)]


def test_a_snapshots_series_are_named_as_get_metrics_names_them_with_instance_and_sorted_labels():
    snapshot = {"seq": 7, "system": {"cpu_percent": 50.0, "disk_path": ""}, "server": {},
                "counters": {'jobs{instance="mine",queue="mail"}': 4}, "gauges": {ODD_GAUGE: 1.5}}
    rows = dict(tick_series(snapshot, "box-1"))
    assert rows[(("__name__", "system_cpu_usage_ratio"), ("instance", "box-1"))] == 0.5
    assert rows[(("__name__", "jobs_total"), ("exported_instance", "mine"), ("instance", "box-1"),
                 ("queue", "mail"))] == 4
    assert rows[tuple(sorted([("__name__", "odd_gauge"), ("instance", "box-1")] + list(ODD_LABELS.items())))] == 1.5
    for labels in rows:
        assert list(labels) == sorted(labels) and all(value != "" for _, value in labels), labels


_LABEL_VALUES = st.sampled_from(["", "mine", "mail", "ü ☃", 'q"\\\n', "a=b"])


@st.composite
def _snapshots(draw):
    """Snapshots as the sampler makes them: labelled counters and gauges whose labels may clash
    with instance or be empty (two rows, one series), and the info series' identity."""
    def metric(name):
        labels = draw(st.dictionaries(st.sampled_from(["instance", "queue", "site", "x"]), _LABEL_VALUES, max_size=3))
        return labeled_name(name, labels) if labels else name
    names = st.sampled_from(["jobs", "sent", "queue_depth", "temp"])
    counters = {metric(draw(names)): draw(st.integers(0, 10 ** 6)) for _ in range(draw(st.integers(0, 4)))}
    gauges = {metric(draw(names)): draw(st.floats(allow_nan=True)) for _ in range(draw(st.integers(0, 4)))}
    snapshot = {"seq": 1, "system": {"cpu_percent": draw(st.floats(0, 100))}, "server": {},
                "counters": counters, "gauges": gauges}
    if draw(st.booleans()):
        snapshot["identity"] = {"url": "http://%s:8080/" % draw(st.sampled_from(["a", "b"])), "version": "1"}
    return snapshot


@settings(max_examples=60, deadline=None)
@given(ticks=st.lists(st.tuples(_snapshots(), st.integers(-10 ** 13, 10 ** 13)), min_size=1, max_size=6),
       external=st.sampled_from([(), (("site", "lab"),), (("x", "1"), ("zone", "z"))]),
       cache_bound=st.sampled_from([0, 2, 100_000]))
def test_the_tick_encoder_sends_the_bytes_the_plain_encoding_does_tick_after_tick(ticks, external, cache_bound):
    # The writer encodes with TickEncoder (labels encoded once, remembered): whatever the labels,
    # the series appearing and going, the timestamp's length or the cache starting over, each
    # tick's bytes are the plain tick_series + encode_write_request's.
    encoder = remote_write.TickEncoder("box-1", external)
    previous = remote_write.MAX_CACHED_SERIES
    remote_write.MAX_CACHED_SERIES = cache_bound
    try:
        for snapshot, timestamp_ms in ticks:
            series = tick_series(snapshot, "box-1", external)
            assert encoder.encode(snapshot, timestamp_ms) == (len(series), encode_write_request(series, timestamp_ms))
    finally:
        remote_write.MAX_CACHED_SERIES = previous


# --- a real Prometheus -----------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str, timeout: float = 5.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


@pytest.fixture
def prometheus(tmp_path):
    binary = shutil.which("prometheus")
    require_tool(binary is not None, "prometheus (apt-get install -y prometheus)")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1h\n")
    proc = subprocess.Popen([binary, "--config.file=%s" % config, "--storage.tsdb.path=%s" % (tmp_path / "tsdb"),
                             "--web.listen-address=127.0.0.1:%d" % port, "--web.enable-remote-write-receiver"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = "http://127.0.0.1:%d" % port

    def ready():
        assert proc.poll() is None, "prometheus exited: %s" % proc.stderr.read().decode()[-2000:]
        try:
            return urllib.request.urlopen(base + "/-/ready", timeout=1).status == 200
        except OSError:
            return False

    try:
        wait_until(ready, timeout=30, message="prometheus /-/ready", interval=0.1)
        yield base
    finally:
        proc.kill()
        proc.wait(10)
        proc.stderr.close()


def raw_samples(base: str, selector: str) -> list[tuple[int, float]]:
    """Every stored sample of the one series ``selector`` picks: [(timestamp ms, value)]."""
    query = urllib.parse.urlencode({"query": "%s[10m]" % selector, "time": "%.3f" % (time.time() + 1)})
    result = get_json(base + "/api/v1/query?" + query)["data"]["result"]
    assert len(result) <= 1, result
    return [(round(float(ts) * 1000), float(value)) for ts, value in result[0]["values"]] if result else []


def test_what_a_dashboard_pushes_prometheus_returns_sample_for_sample(make_server, prometheus):
    running = make_server(remote_write=(prometheus + "/api/v1/write",), instance="test-a")
    registry, app = running.server.app.registry, running.server.app
    start = time.time() - 1
    value = 0.5
    registry.set(ODD_GAUGE, value)
    first_seq = app.sampler.latest()[0]["seq"]
    while app.sampler.latest()[0]["seq"] < first_seq + 8:  # a new value for every tick or two
        value += 1.25
        registry.set(ODD_GAUGE, value)
        time.sleep(0.1)
    rows = list(app.store.iter_history_rows(start, time.time() + 1))
    key = "gauges." + ODD_GAUGE
    expected = [(round(ts * 1000), flat[key]) for ts, flat in rows if key in flat]
    assert len(expected) >= 6
    matcher = ",".join('%s="%s"' % (k, v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n"))
                       for k, v in sorted(ODD_LABELS.items()))
    selector = '{__name__="odd_gauge",instance="test-a",%s}' % matcher
    wait_until(lambda: len(raw_samples(prometheus, selector)) >= len(expected), timeout=10,
               message="prometheus to hold every tick")
    stored = raw_samples(prometheus, selector)
    assert stored[:len(expected)] == expected, (stored, expected)
    # The tick counter too: sample n at the n-th tick's own timestamp, none missing, none doubled.
    ticks = raw_samples(prometheus, 'sse_dashboard_samples_total{instance="test-a"}')
    seqs = [v for _, v in ticks]
    assert seqs == [float(n) for n in range(int(seqs[0]), int(seqs[0]) + len(seqs))], seqs
    state = app.health()["remote_write"][0]
    assert state["dropped"] == 0 and state["last_error"] is None and state["sent"] > 0, state
    # query_range answers from those samples too (a step that lands on no sample takes the one before).
    query = urllib.parse.urlencode({"query": selector, "start": "%.3f" % (expected[0][0] / 1000),
                                    "end": "%.3f" % (expected[-1][0] / 1000), "step": "0.2"})
    ranged = get_json(prometheus + "/api/v1/query_range?" + query)["data"]["result"]
    assert ranged and {float(v) for _, v in ranged[0]["values"]} <= {v for _, v in expected}


# --- a broken engine -------------------------------------------------------------------------

class ScriptedReceiver:
    """A remote write receiver answering from a script: each answer is (status, headers, delay_s);
    the last one repeats. It decodes what it accepts, to check order and completeness."""

    def __init__(self, script):
        self.script = list(script)
        self.requests: list[dict] = []
        self.accepted: list = []
        self.release = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status, headers, delay_s = receiver.script.pop(0) if len(receiver.script) > 1 else receiver.script[0]
                receiver.requests.append({"at": time.monotonic(), "status": status, "headers": dict(self.headers)})
                if delay_s:
                    receiver.release.wait(delay_s)
                if status == 204:
                    receiver.accepted.extend(decode(body))
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                body = getattr(receiver, "body", "").encode()
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/api/v1/write" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(*script):
        made.append(ScriptedReceiver(script))
        return made[-1]

    yield make
    for r in made:
        r.close()


def test_5xx_and_429_are_retried_after_retry_after_and_every_tick_arrives_once_in_order(make_server, receiver):
    engine = receiver((500, (), 0), (429, (("Retry-After", "2"),), 0), (204, (), 0))
    running = make_server(remote_write=(engine.url,), instance="test-b")
    app = running.server.app
    wait_until(lambda: len(engine.requests) >= 4 and app.health()["remote_write"][0]["queued"] == 0, timeout=10,
               message="the retried ticks to be accepted")
    statuses = [r["status"] for r in engine.requests]
    assert statuses[:3] == [500, 429, 204], statuses
    # Retry-After: 2 was honoured (the backoff alone would have waited 1 s).
    assert engine.requests[2]["at"] - engine.requests[1]["at"] >= 1.95
    headers = engine.requests[0]["headers"]
    assert headers["Content-Encoding"] == "snappy" and headers["Content-Type"] == "application/x-protobuf"
    assert headers["X-Prometheus-Remote-Write-Version"] == "0.1.0" and headers["User-Agent"].startswith("sse-dashboard/")
    seqs = [v for labels, v, _ in engine.accepted if ("__name__", "sse_dashboard_samples_total") in labels]
    assert seqs == [float(n) for n in range(1, len(seqs) + 1)], seqs  # from the first tick, none missing or doubled
    state = app.health()["remote_write"][0]
    assert state["dropped"] == 0 and state["last_error"].startswith("HTTP 429"), state


def test_a_400_drops_the_batch_with_a_counted_logged_reason_and_sampling_goes_on(make_server, receiver, caplog):
    engine = receiver((400, (), 0))
    running = make_server(remote_write=(engine.url,))
    app = running.server.app
    seq = app.sampler.latest()[0]["seq"]
    wait_until(lambda: app.sampler.latest()[0]["seq"] >= seq + 5 and len(engine.requests) >= 3, timeout=10,
               message="ticks and refused requests")
    state = app.health()["remote_write"][0]
    assert state["dropped"] > 0 and state["sent"] == 0 and list(state["drop_reasons"]) == ["HTTP 400"], state
    warnings = [r for r in caplog.records if "dropped: HTTP 400" in r.getMessage()]
    assert len(warnings) == 1  # once per distinct reason, not once per request


def test_an_engine_that_does_not_answer_never_holds_up_the_sampler(make_server, receiver):
    engine = receiver((204, (), 30))  # holds every request until the test ends
    running = make_server(remote_write=(engine.url,))
    app = running.server.app
    wait_until(lambda: engine.requests, timeout=5, message="the first request")
    seq = app.sampler.latest()[0]["seq"]
    started = time.monotonic()
    wait_until(lambda: app.sampler.latest()[0]["seq"] >= seq + 10, timeout=5, message="ten more ticks")
    assert time.monotonic() - started < 3.5  # 0.2 s ticks: a stalled engine costs the sampler nothing
    state = app.health()["remote_write"][0]
    assert state["queued"] > 0 and state["lag_s"] > 1.0, state


def test_a_full_queue_drops_the_oldest_ticks_counts_them_and_sends_the_rest_in_order(receiver):
    engine = receiver((503, (("Retry-After", "1"),), 0), (204, (), 0))
    writer = RemoteWriter(engine.url, instance="q", max_queued=3)
    writer.start()
    try:
        for seq in range(1, 7):
            snapshot = {"seq": seq, "system": {}, "server": {}, "counters": {}, "gauges": {"g": seq}}
            writer.submit(Sample(seq, 1000.0 + seq, snapshot, b"", {"gauges.g": seq}))
            if seq == 1:
                wait_until(lambda: engine.requests, message="the first (refused) request")
            time.sleep(0.05)  # not a synchronisation: lets the writer encode, so both queues overflow
        wait_until(lambda: writer.state()["queued"] == 0 and engine.accepted, timeout=5, message="the rest sent")
    finally:
        writer.stop()
    sent = [v for labels, v, _ in engine.accepted if ("__name__", "sse_dashboard_samples_total") in labels]
    assert sent == [4.0, 5.0, 6.0], sent
    state = writer.state()
    assert state["dropped"] == 3 * 3, state  # three ticks of three series (samples_total, info, g)
    assert list(state["drop_reasons"]) == ["queue full (3 ticks): oldest dropped"], state


def test_no_secret_in_the_url_or_headers_is_logged_or_shown(make_server, receiver, caplog):
    engine = receiver((401, (), 0))
    url = engine.url.replace("http://", "http://alice:s3cr%40t@") + "?api_key=k3y"
    running = make_server(remote_write=(url,))
    app = running.server.app
    wait_until(lambda: app.health()["remote_write"][0]["dropped"] > 0, timeout=5, message="a refused request")
    assert engine.requests[0]["headers"]["Authorization"] == "Basic YWxpY2U6czNjckB0"  # alice:s3cr@t
    shown = json.dumps(app.health()) + running.request("GET", "/api/health")[2].decode() + caplog.text
    assert "s3cr" not in shown and "k3y" not in shown and "YWxp" not in shown
    assert redacted_url(url) == engine.url


def test_ticks_queued_before_the_writer_runs_are_bounded_the_same_way(receiver):
    engine = receiver((204, (), 0))
    writer = RemoteWriter(engine.url, instance="q", max_queued=2)
    for seq in range(1, 5):  # not started yet: the ticks wait unencoded, and the bound still holds
        writer.submit(Sample(seq, 1000.0 + seq, {"seq": seq, "system": {}, "server": {}, "counters": {}, "gauges": {}},
                             b"", {}))
    writer.start()
    try:
        wait_until(lambda: writer.state()["queued"] == 0 and engine.accepted, timeout=5, message="the rest sent")
    finally:
        writer.stop()
    assert [v for _, v, _ in engine.accepted if v > 1] == [3.0, 4.0]  # samples_total; the info series is 1
    assert writer.state()["dropped"] == 2


@pytest.mark.skipif(not hasattr(time, "tzset"), reason="time.tzset is POSIX")
def test_a_retry_after_date_in_minus_0000_is_utc_whatever_this_machines_zone(monkeypatch):
    """RFC 5322's "-0000" gives a naive datetime; read as local time it was hours off outside UTC."""
    from sse_dashboard.export.writer import _retry_after_s
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        assert 25 <= _retry_after_s(email.utils.formatdate(time.time() + 30, usegmt=False)[:-5] + "-0000") <= 31
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


# --- the config file: receivers with credentials, external labels (#25) -----------------------

BEARER_FROM_FILE = "tok-file-Zq81"
BEARER_FROM_ENV = "tok-env-Kx72"
PASSWORD_FROM_FILE = "pw-file-Mm40"
PASSWORD_FROM_ENV = "pw-env-Rr55"
SECRETS = (BEARER_FROM_FILE, BEARER_FROM_ENV, PASSWORD_FROM_FILE, PASSWORD_FROM_ENV)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


def secrets_in(text: str) -> list[str]:
    """Every secret, or a form of it (base64 for basic auth), that ``text`` shows."""
    forms = list(SECRETS) + [basic(u, p)[6:] for u, p in (("bob", PASSWORD_FROM_FILE), ("eve", PASSWORD_FROM_ENV))]
    return [form for form in forms if form in text]


def test_the_config_files_receivers_get_basic_and_bearer_auth_from_files_and_env_and_no_answer_shows_them(
        tmp_path, spawn, receiver, sse_reader):
    engines = [receiver((204, (), 0)) for _ in range(4)]
    (tmp_path / "token").write_text(BEARER_FROM_FILE + "\n")  # a trailing newline, as editors leave it
    (tmp_path / "password").write_text(PASSWORD_FROM_FILE)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({
        "instance": "from-file",
        "external_labels": {"site": "lab ☃", "env": "test"},
        "remote_write": [
            {"url": engines[0].url, "bearer_token_file": "token"},  # relative to the config file's folder
            {"url": engines[1].url, "bearer_token_env": "RW_TOKEN", "headers": {"X-Scope-OrgID": "tenant-1"}},
            {"url": engines[2].url, "basic_auth": {"username": "bob", "password_file": str(tmp_path / "password")}},
            {"url": engines[3].url, "basic_auth": {"username": "eve", "password_env": "RW_PASSWORD"}},
        ]}))
    p = spawn("--port", "0", "--interval", "0.2", "--config", str(config), "--external-label", "env=cli", "-v",
              env={"RW_TOKEN": BEARER_FROM_ENV, "RW_PASSWORD": PASSWORD_FROM_ENV})
    port = p.wait_for_url()
    wait_until(lambda: all(e.accepted for e in engines), timeout=10, message="every receiver to get a tick")
    seen = [e.requests[0]["headers"].get("Authorization") for e in engines]
    assert seen == ["Bearer " + BEARER_FROM_FILE, "Bearer " + BEARER_FROM_ENV, basic("bob", PASSWORD_FROM_FILE),
                    basic("eve", PASSWORD_FROM_ENV)]
    assert engines[1].requests[0]["headers"]["X-Scope-OrgID"] == "tenant-1"
    labels = dict(next(labels for labels, _, _ in engines[0].accepted
                       if ("__name__", "sse_dashboard_samples_total") in labels))
    assert (labels["instance"], labels["site"], labels["env"]) == ("from-file", "lab ☃", "cli")  # the option wins

    base = "http://127.0.0.1:%d" % port
    answers = [urllib.request.urlopen(base + path, timeout=5).read().decode()
               for path in ("/api/health", "/api/metrics", "/api/alerts", "/api/openapi.json", "/metrics")]
    reader = SSEReader("127.0.0.1", port)
    answers.append(reader.next_event("metrics")["data"])
    reader.close()
    health = json.loads(answers[0])
    assert [w["url"] for w in health["remote_write"]] == [e.url for e in engines]
    p.stop()  # the whole log, to its end
    assert not secrets_in("\n".join(answers) + p.output), secrets_in("\n".join(answers) + p.output)


@pytest.mark.parametrize("entry, words", [
    ({"url": "ftp://x/y"}, "http:// or https://"),
    ({"url": "http://h/w", "bearer_token_file": "missing-file"}, "bearer_token_file .*missing-file.* cannot be read"),
    ({"url": "http://h/w", "bearer_token_env": "RW_UNSET_VARIABLE"}, "RW_UNSET_VARIABLE is not set"),
    ({"url": "http://h/w", "bearer_token_env": "RW_TOKEN", "basic_auth": {"username": "u", "password_env": "RW_TOKEN"}},
     "only one of"),
    ({"url": "http://h/w", "basic_auth": {"username": "u", "password": "inline-Qq9"}}, "password_file or password_env"),
    ({"url": "http://h/w", "headers": {"Authorization": "Bearer inline-Qq9"}}, "bearer_token_file"),
    ({"url": "http://h/w", "headers": {"Content-Type": "text/plain"}}, "set by the dashboard"),
    ({"url": "http://h/w", "headers": {"X-Key": "inline-Qq9\r\nX-Evil: 1"}}, "line break"),
    ({"url": "http://h/w", "headers": {"Bad Name": "v"}}, "not a header name"),
    ({"url": "http://h/w", "tls": True}, 'unknown key "tls"'),
    ({"url": "http://u:inline-Qq9@h/w", "bearer_token_env": "RW_TOKEN"}, "only one of"),
])
def test_a_bad_remote_write_entry_is_named_and_never_echoes_a_secret(tmp_path, monkeypatch, entry, words):
    from sse_dashboard.cli import load_export
    monkeypatch.setenv("RW_TOKEN", "env-secret-Pp3")
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"remote_write": [entry]}))
    with pytest.raises(ValueError, match=words) as caught:
        load_export(str(path))
    assert "remote_write 1" in str(caught.value)
    assert "inline-Qq9" not in str(caught.value) and "env-secret-Pp3" not in str(caught.value)


@pytest.mark.parametrize("labels, words", [
    ({"__meta": "x"}, "reserved"),
    ({"9lives": "x"}, "not a label name"),
    ({"a-b": "x"}, "not a label name"),
    ({"instance": "x"}, '"instance"'),
    ({"site": ""}, "empty"),
    ({"site": 5}, "a string"),
    ({"site": "x" * 1025}, "1024"),
])
def test_a_bad_external_label_is_refused_at_load(tmp_path, labels, words):
    from sse_dashboard.cli import load_export
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"external_labels": labels}))
    with pytest.raises(ValueError, match=words):
        load_export(str(path))


@pytest.mark.parametrize("argument, words", [("__x=1", "reserved"), ("site", "NAME=VALUE"), ("a.b=1", "not a label name")])
def test_a_bad_external_label_option_exits_2_naming_it(spawn, argument, words):
    p = spawn("--port", "0", "--external-label", argument)
    assert p.proc.wait(10) == 2
    wait_until(lambda: re.search(words, p.output), message="the error line")


def test_a_config_file_with_a_bad_remote_write_does_not_start_and_says_why(tmp_path, spawn):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"remote_write": [{"url": "http://h/w", "bearer_token_env": "RW_UNSET_VARIABLE"}]}))
    p = spawn("--port", "0", "--config", str(path))
    assert p.proc.wait(10) == 2
    wait_until(lambda: "RW_UNSET_VARIABLE is not set" in p.output, message="the error line")
    assert "Traceback" not in p.output


# --- hostile engines: nothing they do holds up the sampler or the page (#25) -------------------

class RawEngine:
    """A TCP server that answers each connection with ``answer(sock)``: what no well-behaved HTTP
    server sends (garbage, a trickle of bytes, nothing at all)."""

    def __init__(self, answer):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = "http://127.0.0.1:%d/api/v1/write" % self.listener.getsockname()[1]
        self.connections = 0
        self.closing = threading.Event()
        self.answer = answer
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.closing.is_set():
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._one, args=(sock,), daemon=True).start()

    def _one(self, sock):
        with sock:
            try:
                sock.settimeout(5)
                sock.recv(65536)
                self.answer(sock, self.closing)
            except OSError:
                pass

    def close(self):
        self.closing.set()
        self.listener.close()


def garbage(sock, closing):
    sock.sendall(b"\x00\xffNOT HTTP AT ALL\r\n\r\n" + bytes(range(256)) * 4)


def trickle(sock, closing):
    """A status line one byte at a time, never finished: each read returns before the timeout."""
    while not closing.wait(0.1):
        sock.sendall(b"H")


@pytest.fixture
def raw_engine():
    made = []

    def make(answer):
        made.append(RawEngine(answer))
        return made[-1]

    yield make
    for engine in made:
        engine.close()


def tick_gaps(app, since: float) -> list[float]:
    rows = list(app.store.iter_history_rows(since, time.time() + 1))
    return [round(b[0] - a[0], 3) for a, b in zip(rows, rows[1:])]


def test_slow_failing_refusing_garbage_and_redirecting_engines_never_hold_up_the_sampler_or_the_page(
        make_server, receiver, raw_engine):
    elsewhere = receiver((204, (), 0))
    engines = {
        "slow": receiver((204, (), 30)),
        "500": receiver((500, (), 0)),
        "400": receiver((400, (), 0)),
        "301": receiver((301, (("Location", elsewhere.url),), 0)),
        "307": receiver((307, (("Location", elsewhere.url),), 0)),
        "garbage": raw_engine(garbage),
        "trickle": raw_engine(trickle),
    }
    running = make_server(remote_write=tuple(e.url for e in engines.values()), instance="hostile")
    app = running.server.app
    started = time.time()
    wait_until(lambda: all(getattr(e, "requests", None) or getattr(e, "connections", 0) for e in engines.values()),
               timeout=5, message="every engine to be tried")
    slowest = 0.0
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:  # the page and the API, asked again and again meanwhile
        for path in ("/api/health", "/api/metrics", "/", "/metrics"):
            asked = time.monotonic()
            status, _, _ = running.request("GET", path, timeout=5)
            slowest = max(slowest, time.monotonic() - asked)
            assert status == 200, path
    assert slowest < 1.0, slowest
    gaps = tick_gaps(app, started)
    # 0.2 s ticks on their grid: none late by more than a few ticks (a shared CI machine), most on time.
    assert len(gaps) >= 12 and max(gaps) < 1.0 and abs(sorted(gaps)[len(gaps) // 2] - 0.2) < 0.05, gaps
    states = {name: state for name, state in zip(engines, app.health()["remote_write"])}
    for code in ("400", "301", "307"):  # refused, or sent elsewhere: dropped with the answer as reason
        assert states[code]["sent"] == 0 and list(states[code]["drop_reasons"]) == ["HTTP %s" % code], states[code]
    assert not elsewhere.requests  # a redirect is not followed
    assert states["500"]["dropped"] == 0 and states["500"]["last_error"] == "HTTP 500", states["500"]
    assert states["garbage"]["last_error"].startswith("no answer (BadStatusLine"), states["garbage"]
    assert states["slow"]["queued"] > 0 and states["trickle"]["queued"] > 0


def test_an_engine_that_trickles_its_answer_is_given_up_after_the_request_timeout(raw_engine):
    engine = raw_engine(trickle)
    writer = RemoteWriter(engine.url, instance="q", timeout_s=0.5)
    writer.start()
    try:
        writer.submit(Sample(1, 1000.0, {"seq": 1, "system": {}, "server": {}, "counters": {}, "gauges": {}}, b"", {}))
        wait_until(lambda: writer.state()["last_error"], timeout=3, message="the request to be given up")
        assert writer.state()["last_error"] == "no answer within 0.5 s", writer.state()
    finally:
        writer.stop()


def escape_sequence(sock, closing):
    """A refusal whose words would recolour a terminal (ESC [ 31 m) if logged as they came."""
    body = b"\x1b[31mred\x07 bad sample"
    sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))


def test_an_engines_control_characters_never_reach_the_log_or_the_state(raw_engine, caplog):
    engine = raw_engine(escape_sequence)
    writer = RemoteWriter(engine.url, instance="q", timeout_s=2)
    writer.start()
    try:
        writer.submit(Sample(1, 1000.0, {"seq": 1, "system": {}, "server": {}, "counters": {}, "gauges": {}}, b"", {}))
        wait_until(lambda: writer.state()["drop_reasons"], timeout=3, message="the refused tick dropped")
    finally:
        writer.stop()
    assert list(writer.state()["drop_reasons"]) == ["HTTP 400: ?[31mred? bad sample"], writer.state()
    assert not any("\x1b" in record.getMessage() for record in caplog.records)


# --- the writer's state in the snapshot and on the page (#25) -----------------------------------

def test_each_snapshot_carries_the_writers_state_redacted(make_server, receiver, sse_reader):
    engine = receiver((204, (), 0))
    url = engine.url.replace("http://", "http://alice:s3cr%40t@") + "?api_key=k3y"
    running = make_server(remote_write=(url,))
    reader = sse_reader(running)
    wait_until(lambda: running.server.app.health()["remote_write"][0]["sent"] > 0, timeout=5, message="a sent tick")
    frame = reader.next_event("metrics")
    while json.loads(frame["data"])["remote_write"][0]["sent"] == 0:
        frame = reader.next_event("metrics")
    state = json.loads(frame["data"])["remote_write"]
    assert [w["url"] for w in state] == [engine.url] and state[0]["dropped"] == 0, state
    assert set(state[0]) >= {"sent", "queued", "dropped", "last_error", "lag_s"}
    assert "s3cr" not in frame["data"] and "k3y" not in frame["data"] and "alice" not in frame["data"]
    # A dashboard without remote write has no such key (the page hides its panel).
    plain = make_server()
    assert "remote_write" not in plain.json("GET", "/api/metrics")[1]


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.console_errors = []
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
    page.on("pageerror", lambda e: page.console_errors.append(str(e)))
    yield page
    context.close()


@pytest.mark.browser
def test_the_page_shows_each_receivers_state_as_literal_text_and_no_secret(make_server, receiver, page):
    good = receiver((204, (), 0))
    hostile = ScriptedReceiver([(400, (), 0)])
    hostile_body = '<img src=x onerror="window.pwned=1">'
    hostile.body = hostile_body  # the receiver's answer, which the page must show as text
    bad_url = hostile.url.replace("http://", "http://bob:pa55w0rd@") + "?token=t0ken"
    try:
        running = make_server(remote_write=(good.url, bad_url), interval_s=0.3)
        page.goto(running.url + "/")
        wait_until(lambda: page.is_visible("#remote-write-section"), timeout=5, message="the remote write panel")
        rows = lambda: page.query_selector_all("#remote-write tr")  # noqa: E731
        wait_until(lambda: len(rows()) == 2 and "HTTP 400" in (page.text_content("#remote-write") or ""),
                   timeout=5, message="both receivers, the refused one with its reason")
        first, second = [row.query_selector_all("th, td") for row in rows()]
        assert first[0].text_content() == good.url and second[0].text_content() == hostile.url
        wait_until(lambda: int(page.text_content("#remote-write tr:first-child .rw-sent").replace(",", "")) > 0,
                   timeout=5, message="samples sent")
        assert page.text_content("#remote-write tr:last-child .rw-dropped") != "0"
        error = page.text_content("#remote-write tr:last-child .rw-error")
        assert error.startswith("HTTP 400") and hostile_body in error, error
        assert page.evaluate("window.pwned") is None and page.query_selector("#remote-write img") is None
        text = page.text_content("body")
        assert "pa55w0rd" not in text and "t0ken" not in text and "bob" not in text
        assert page.console_errors == []
    finally:
        hostile.close()


def test_the_readmes_config_example_loads_as_it_says(tmp_path, monkeypatch):
    from sse_dashboard.cli import load_export
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    example = readme.split("## More than one machine", 1)[1].split("```json", 1)[1].split("```", 1)[0]
    token = tmp_path / "metrics-token"
    token.write_text("t0k\n")
    path = tmp_path / "config.json"
    path.write_text(example.replace("/etc/sse-dashboard/metrics-token", str(token)))
    monkeypatch.setenv("MIMIR_PASSWORD", "pw")
    export = load_export(str(path))
    assert export.instance == "gpu-box" and dict(export.external_labels) == {"site": "lab", "rack": "r7"}
    assert [dict(t.headers) for t in export.remote_write] == [
        {"Authorization": "Bearer t0k"}, {"X-Scope-OrgID": "team-a", "Authorization": basic("gpu-box", "pw")}]
    monkeypatch.delenv("MIMIR_PASSWORD")
    with pytest.raises(ValueError, match="remote_write 2: basic_auth: password_env: the environment variable "
                                         "MIMIR_PASSWORD is not set"):
        load_export(str(path))
