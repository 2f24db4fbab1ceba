"""Property-based fuzzing of the ingest surfaces over real sockets: StatsD packets (UDP and
TCP), Prometheus push bodies and paths, heartbeat queries. Never a 5xx, never a dead listener,
never a traceback; a refusal stores nothing."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import tempfile
import urllib.parse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sse_dashboard.app import build_app
from conftest import RunningServer, require_tool, required, wait_until
from sse_dashboard.registry import labeled_name

os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(tempfile.gettempdir(), "sse-dashboard-hypothesis"))

FUZZ = settings(max_examples=int(os.environ.get("SSE_FUZZ_EXAMPLES") or 60), deadline=None, database=None,
                suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def running():
    server = RunningServer(build_app(host="127.0.0.1", port=0, interval_s=0.1, data_dir=":memory:",
                                                psutil=None, post_rate_per_s=0, statsd="127.0.0.1:0"))
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def no_tracebacks(caplog):
    with caplog.at_level(logging.WARNING):
        yield
    records = caplog.get_records("call")  # (caplog.records, here in teardown, would be teardown's own)
    assert not [r for r in records if r.exc_info], [r.getMessage() for r in records if r.exc_info]


statsd_words = st.sampled_from([b"c", b"g", b"ms", b"h", b"d", b"s", b"x", b"", b"@0.5", b"@0", b"#a:b,c", b"#",
                                b"+1", b"-1", b"1e308", b"1e999", b"nan", b"inf", b"0x10", b"\xff", b"\x00"])
statsd_lines = st.one_of(
    st.binary(max_size=120),
    st.builds(lambda name, parts: name + b":" + b"|".join(parts),
              st.from_regex(rb"[a-z.\-_0-9]{0,12}", fullmatch=True), st.lists(statsd_words, max_size=4)),
)


@FUZZ
@given(lines=st.lists(statsd_lines, min_size=1, max_size=20), tcp=st.booleans())
def test_statsd_takes_anything_and_keeps_listening(running, lines, tcp):
    payload = b"\n".join(lines).replace(b"sentinel", b"x")
    address = running.server.statsd.address
    before = running.server.registry.snapshot()[0].get("sentinel", 0)
    if tcp:
        with socket.create_connection(address) as sock:
            sock.sendall(payload + b"\nsentinel:1|c\n")
    else:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(payload[:60000], address)
            sock.sendto(b"sentinel:1|c", address)
    wait_until(lambda: running.server.registry.snapshot()[0].get("sentinel", 0) == before + 1,
               message="the sentinel after the fuzz")
    assert all(t.is_alive() for t in running.server.statsd._threads)
    assert running.json("GET", "/api/health")[0] == 200


@pytest.fixture(scope="module")
def pushed():
    """A server of its own: the StatsD fuzz's timers roll over at each flush, which would show
    as a change in the registry a refused push must leave alone."""
    server = RunningServer(build_app(host="127.0.0.1", port=0, interval_s=0.1, data_dir=":memory:",
                                                psutil=None, post_rate_per_s=0))
    yield server
    server.stop()


# The pieces where Python and Prometheus read the text format differently (#21): characters
# str.splitlines() breaks at, separators only Python takes for blanks, and float spellings
# only Python's float() takes.
odd_text = st.sampled_from(["", "\u2028", "\u2029", "\x85", "\x0c", "\x0b", "\x1c", "\x1d", "\x1e", "\r", "\\n",
                            "\\\\", '\\"', "\\u00e9", "\xa0", "#", " ", "\t", "{", "}", ","])
label_values = st.lists(st.one_of(odd_text, st.text("abc", max_size=2)), max_size=4).map("".join)
sample_values = st.one_of(
    st.sampled_from(["1", "-5", "+1", "007", "1.", ".5", "-0", "1e3", "1E-3", "1e", ".", "1_000", "1e1_0", "0x10",
                     "0x1p3", "Inf", "-Inf", "NaN", "-nan", "\uff11", "\u0661", "1\r", "1\x0c", "9" * 30, "1e999"]),
    st.integers(-10 ** 6, 10 ** 6).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr))
separators = st.sampled_from([" ", "\t", " \t ", "\xa0", "\x0c", ""])
samples = st.builds(
    lambda name, labels, sep, value, tail: "%s%s%s%s%s" % (
        name, "{%s}" % ",".join('%s="%s"' % kv for kv in labels) if labels is not None else "", sep, value, tail),
    st.sampled_from(["a", "b", "c", "c_total", "h_bucket"]),
    st.none() | st.lists(st.tuples(st.sampled_from(["k", "l", "job"]), label_values), max_size=2),
    separators, sample_values, st.sampled_from(["", " 1700000000000", "\r", " # {t=\"1\"} 1"]))
exposition_lines = st.one_of(
    st.text(max_size=60),
    samples,
    st.sampled_from(["# TYPE a counter", "# TYPE c counter", "# TYPE a histogram", "# TYPE b gauge",
                     "# TYPE b GAUGE", "# TYPE a gauges", "# TYPE c counter\r", "# HELP a x", "# EOF", "#", ""]),
)


@FUZZ
@given(lines=st.lists(exposition_lines, max_size=8), method=st.sampled_from(["PUT", "POST"]),
       job=st.text(min_size=0, max_size=10), content_type=st.sampled_from(["text/plain", "", "application/json"]))
def test_a_push_is_stored_whole_or_not_at_all(pushed, lines, method, job, content_type):
    before = pushed.server.registry.snapshot()
    path = "/metrics/job/" + urllib.parse.quote(job, safe="")
    headers = {"Content-Type": content_type} if content_type else {}
    status, _, body = pushed.request(method, path, "\n".join(lines).encode("utf-8", "surrogatepass"), headers=headers)
    assert status in (200, 400, 415), (status, body)
    if status != 200:
        assert pushed.server.registry.snapshot() == before
    else:
        assert all(value >= 0 for value in pushed.server.registry.snapshot()[0].values()), "a negative counter"
    pushed.request("DELETE", path)


@pytest.fixture(scope="module")
def promtool():
    found = shutil.which("promtool")
    require_tool(found is not None, "promtool (apt-get install -y prometheus)")
    return found


@settings(FUZZ, max_examples=min(FUZZ.max_examples, 40))
@given(lines=st.lists(st.one_of(samples, exposition_lines), min_size=1, max_size=6))
def test_what_a_push_takes_prometheus_parses_too(pushed, promtool, lines):
    """#21: the push took what Prometheus refuses (1_000, a fullwidth 1, a no-break space as a
    separator, \r\n). promtool check metrics reads with expfmt, the Pushgateway's own parser;
    where that parser and ours may differ on purpose (an exemplar, blanks after the value, a
    comment spelled "#TYPE"), the body is left out."""
    body = "\n".join(lines) + "\n"
    status, _, answer = pushed.request("PUT", "/metrics/job/oracle", body.encode("utf-8", "surrogatepass"),
                                       headers={"Content-Type": "text/plain"})
    pushed.request("DELETE", "/metrics/job/oracle")
    if status != 200 or any(" # " in line or line != line.rstrip(" \t") or line.startswith("#TYPE")
                            or line.startswith("#HELP") for line in lines):
        return
    checked = subprocess.run([promtool, "check", "metrics"], input=body.encode("utf-8", "surrogatepass"),
                             capture_output=True, timeout=30)
    assert checked.returncode != 1, (body, checked.stderr.decode(errors="replace"))


@FUZZ
@given(values=st.lists(st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=8),
                       min_size=1, max_size=5, unique=True))
def test_any_label_value_prometheus_client_pushes_comes_back_exact(pushed, values):
    """#21: whatever label value prometheus_client writes, /metrics gives it back (through its
    own parser) and /api/metrics holds it under the name the JSON API would give it."""
    required("prometheus_client")
    from prometheus_client import CollectorRegistry, Gauge, delete_from_gateway, push_to_gateway
    from prometheus_client.parser import text_string_to_metric_families

    registry = CollectorRegistry()
    gauge = Gauge("lv", "Label values", ["v"], registry=registry)
    for number, value in enumerate(values):
        gauge.labels(value).set(number)
    address = "%s:%d" % (pushed.host, pushed.port)
    push_to_gateway(address, job="lv", registry=registry)
    gauges = pushed.json("GET", "/api/metrics")[1]["gauges"]
    assert {k: v for k, v in gauges.items() if k.startswith("lv{")} == {
        labeled_name("lv", {"job": "lv", "v": value}): number for number, value in enumerate(values)}
    text = pushed.request("GET", "/metrics")[2].decode()
    family = [f for f in text_string_to_metric_families(text) if f.name == "lv"][0]
    assert {s.labels["v"]: s.value for s in family.samples} == {value: number for number, value in enumerate(values)}
    delete_from_gateway(address, job="lv")


@FUZZ
@given(name=st.text(max_size=30), query=st.dictionaries(st.sampled_from(["status", "msg", "ping", "every", "x"]),
                                                       st.text(max_size=20), max_size=4),
       method=st.sampled_from(["GET", "POST"]))
def test_a_heartbeat_is_recorded_or_refused_cleanly(running, name, query, method):
    before = running.server.heartbeats.listing()
    path = "/api/push/" + urllib.parse.quote(name, safe="") + "?" + urllib.parse.urlencode(query)
    status, _, body = running.request(method, path)
    assert status in (200, 400, 404), (status, body)
    if status != 200:
        assert [b["name"] for b in running.server.heartbeats.listing()] == [b["name"] for b in before]
    else:  # a sample or two look at it (alerts, the listing) before it goes
        seq = running.server.sampler.seq
        wait_until(lambda: running.server.sampler.seq >= seq + 2, message="two samples")
        running.request("DELETE", "/api/push/" + urllib.parse.quote(name, safe=""))
