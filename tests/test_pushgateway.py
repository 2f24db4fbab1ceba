"""Prometheus push: prometheus_client's own push functions against the real server."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from conftest import require_tool, required
from sse_dashboard.registry import labeled_name

try:
    from prometheus_client import (CollectorRegistry, Counter, Gauge, Histogram, delete_from_gateway,
                                   push_to_gateway, pushadd_to_gateway)
    from prometheus_client.exposition import default_handler
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # every test here says so (and fails in CI)
    pass


@pytest.fixture(autouse=True)
def _prometheus_client():
    required("prometheus_client")


def address(running) -> str:
    return "%s:%d" % (running.host, running.port)


def batch_registry(rows: int = 7) -> CollectorRegistry:
    registry = CollectorRegistry()
    Gauge("job_last_success_unixtime", "Last success", registry=registry).set(1700000000)
    Counter("rows_processed", "Rows", ["table"], registry=registry).labels("users").inc(rows)
    Histogram("duration_seconds", "Duration", registry=registry, buckets=(1, 5)).observe(2)
    return registry


def app_metrics(running) -> tuple[dict, dict]:
    snapshot = running.json("GET", "/api/metrics")[1]
    return snapshot["counters"], snapshot["gauges"]


GROUP = 'instance="db/1",job="nightly"'


def test_push_to_gateway_shows_every_sample_with_its_grouping_labels(server):
    push_to_gateway(address(server), job="nightly", registry=batch_registry(),
                    grouping_key={"instance": "db/1"})  # a "/" travels as @base64
    counters, gauges = app_metrics(server)
    assert counters == {'rows_processed_total{%s,table="users"}' % GROUP: 7.0}
    assert gauges["job_last_success_unixtime{%s}" % GROUP] == 1700000000.0
    assert gauges['duration_seconds_bucket{%s,le="5.0"}' % GROUP] == 1.0
    assert "push_time_seconds{%s}" % GROUP in gauges
    text = server.request("GET", "/metrics")[2].decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    sample = families["rows_processed"].samples[0]
    assert sample.labels == {"instance": "db/1", "job": "nightly", "table": "users"} and sample.value == 7
    assert families["rows_processed"].type == "counter"


def test_pushadd_replaces_only_the_families_it_sends_and_put_replaces_the_group(server):
    push_to_gateway(address(server), job="nightly", registry=batch_registry(), grouping_key={"instance": "db/1"})
    only_rows = CollectorRegistry()
    Counter("rows_processed", "Rows", ["table"], registry=only_rows).labels("orders").inc(3)
    pushadd_to_gateway(address(server), job="nightly", registry=only_rows, grouping_key={"instance": "db/1"})
    counters, gauges = app_metrics(server)
    assert counters == {'rows_processed_total{%s,table="orders"}' % GROUP: 3.0}  # the family replaced
    assert "job_last_success_unixtime{%s}" % GROUP in gauges                     # the others kept
    push_to_gateway(address(server), job="nightly", registry=only_rows, grouping_key={"instance": "db/1"})
    counters, gauges = app_metrics(server)
    assert counters == {'rows_processed_total{%s,table="orders"}' % GROUP: 3.0}
    assert not any(name.startswith(("job_last", "duration")) for name in gauges)


def test_delete_from_gateway_removes_one_group_only(server):
    push_to_gateway(address(server), job="nightly", registry=batch_registry(), grouping_key={"instance": "db/1"})
    push_to_gateway(address(server), job="hourly", registry=batch_registry(rows=2))
    delete_from_gateway(address(server), job="nightly", grouping_key={"instance": "db/1"})
    counters, gauges = app_metrics(server)
    assert counters == {'rows_processed_total{job="hourly",table="users"}': 2.0}
    assert all('job="hourly"' in name for name in gauges)
    delete_from_gateway(address(server), job="nightly", grouping_key={"instance": "db/1"})  # again: fine


def test_groups_survive_a_restart_and_can_then_be_replaced(make_server, tmp_path):
    first = make_server(data_dir=tmp_path)
    push_to_gateway(address(first), job="nightly", registry=batch_registry(), grouping_key={"instance": "db/1"})
    first.stop()
    second = make_server(data_dir=tmp_path)
    counters, gauges = app_metrics(second)
    assert counters == {'rows_processed_total{%s,table="users"}' % GROUP: 7.0}
    assert gauges["job_last_success_unixtime{%s}" % GROUP] == 1700000000.0
    delete_from_gateway(address(second), job="nightly", grouping_key={"instance": "db/1"})
    assert app_metrics(second) == ({}, {})


@pytest.mark.parametrize("body", [
    b"a{b=\"1\" 2\n",                 # unterminated labels
    b"a\n",                           # no value
    b"a 1 1700000000000\n",           # a timestamp (the Pushgateway refuses them too)
    b"a NaN\n",                       # not a finite number: JSON and the page have none
    b"a{b=\"1\",b=\"2\"} 1\n",        # a label twice
    b"good 1\n9bad 2\n",              # one bad line spoils the body: nothing is stored
    b"a 1\xff\n",                     # not UTF-8
    b"# TYPE 1x counter\n",
    b"a{__name__=\"x\"} 1\n",          # a reserved label
    b"a{l=\"\\u00e9\"} 1\n",            # an escape the format does not have: refused, not read as "u00e9"
])
def test_a_malformed_body_is_a_400_and_stores_nothing(server, body):
    status, answer = server.json("PUT", "/metrics/job/x", body, headers={"Content-Type": "text/plain"})
    assert status == 400 and answer["error"]
    assert app_metrics(server) == ({}, {})


@pytest.mark.parametrize("path,status", [("/metrics/job/", 400), ("/metrics/job", 400), ("/metrics/job/a/b", 400),
                                         ("/metrics/instance/a", 404), ("/metrics/job@base64/!!", 400),
                                         ("/metrics/job/a/__x/1", 400)])
def test_bad_grouping_paths(server, path, status):
    got, answer = server.json("PUT", path, b"a 1\n", headers={"Content-Type": "text/plain"})
    assert got == status and answer["error"]
    assert app_metrics(server) == ({}, {})


def test_protobuf_is_refused_with_415(server):
    status, answer = server.json("PUT", "/metrics/job/x", b"\x00\x01",
                                 headers={"Content-Type": "application/vnd.google.protobuf; encoding=delimited"})
    assert status == 415 and "text" in answer["error"]


def test_openmetrics_text_is_taken(server):
    body = (b"# TYPE jobs counter\n# UNIT jobs jobs\njobs_total 3 # {trace=\"a\"} 1\n"
            b"# TYPE temp gauge\ntemp 21.5\n# EOF\n")
    status, _ = server.json("POST", "/metrics/job/om", body, headers={"Content-Type": "application/openmetrics-text"})
    assert status == 200
    assert app_metrics(server)[0] == {'jobs_total{job="om"}': 3.0}


def test_pushes_need_the_token_like_every_write(make_server):
    running = make_server(token="s3cret")
    with pytest.raises(Exception) as err:
        push_to_gateway(address(running), job="x", registry=batch_registry())
    assert "401" in str(err.value)

    def bearer(url, method, timeout, headers, data):
        return default_handler(url, method, timeout, headers + [("Authorization", "Bearer s3cret")], data)

    push_to_gateway(address(running), job="x", registry=batch_registry(), handler=bearer)
    status, answer = running.json("PUT", "/metrics/job/x", b"a 1\n",
                                  headers={"Authorization": "Bearer s3cret", "Origin": "http://evil.example"})
    assert status == 403


def test_promtool_accepts_the_pushed_metrics(server):
    promtool = shutil.which("promtool")
    require_tool(promtool is not None, "promtool (apt-get install -y prometheus)")
    push_to_gateway(address(server), job="nightly", registry=batch_registry(), grouping_key={"instance": "db/1"})
    body = server.request("GET", "/metrics")[2]
    result = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=30)
    problems = [line for line in result.stderr.decode().splitlines() if line.strip()]
    # Lint advice only (a pushed histogram's _count sample is kept as a gauge), never a format error.
    assert result.returncode in (0, 3) and all("should" in p for p in problems), result.stderr.decode()


@pytest.mark.parametrize("path", ["/metrics/job/" + "x" * 300,
                                  "/metrics/job/x" + "".join("/l%d/v" % i for i in range(11))])
def test_an_unusable_group_name_is_a_400_for_every_method(server, path):
    for method in ("PUT", "POST", "DELETE"):
        status, answer = server.json(method, path, b"a 1\n", headers={"Content-Type": "text/plain"})
        assert status == 400 and answer["error"], method


def test_gzip_pushes_are_taken_and_a_gzip_bomb_is_not(server):
    import gzip

    push_to_gateway(address(server), job="zipped", registry=batch_registry(), compression="gzip")
    assert 'rows_processed_total{job="zipped",table="users"}' in app_metrics(server)[0]
    bomb = gzip.compress(b"a 1\n" + b"#" * (20 * 1024 * 1024))
    status, answer = server.json("PUT", "/metrics/job/bomb", bomb,
                                 headers={"Content-Type": "text/plain", "Content-Encoding": "gzip"})
    assert status == 400 and "unpacks" in answer["error"]
    status, _ = server.json("PUT", "/metrics/job/x", b"a 1\n", headers={"Content-Encoding": "br"})
    assert status == 415


def test_a_push_the_disk_refuses_stores_nothing(make_server, tmp_path):
    from sse_dashboard.storage import StorageError

    running = make_server(data_dir=tmp_path)

    def refuse(rows, meta=None, forget=()):
        raise StorageError("disk full")
    running.server.registry._journal = refuse
    status, answer = running.json("PUT", "/metrics/job/j", b"x 1\n", headers={"Content-Type": "text/plain"})
    assert status == 503 and app_metrics(running) == ({}, {})


# Every character str.splitlines() breaks a line at, but the text format does not (it breaks at
# "\n" only, which prometheus_client writes as the escape \n); "\r" and "\r\n" inside a value too.
ODD_LABEL_VALUES = ["a\u2028b", "a\u2029b", "a\x85b", "a\x0cb", "a\x0bb", "a\x1cb", "a\x1db", "a\x1eb",
                    "a\rb", "a\r\nb", "a\nb", "\r"]


def test_label_values_prometheus_client_writes_raw_come_back_exact(server):
    """#21: U+2028, U+0085, \x0c, \x1d... in a label value were a 400 (the body was split with
    str.splitlines()); prometheus_client writes them raw and reads them back."""
    registry = CollectorRegistry()
    gauge = Gauge("odd", "Label values other tools break lines at", ["v"], registry=registry)
    for number, value in enumerate(ODD_LABEL_VALUES):
        gauge.labels(value).set(number)
    push_to_gateway(address(server), job="odd", registry=registry)
    gauges = app_metrics(server)[1]
    assert {k: v for k, v in gauges.items() if k.startswith("odd")} == {
        labeled_name("odd", {"job": "odd", "v": value}): number for number, value in enumerate(ODD_LABEL_VALUES)}
    text = server.request("GET", "/metrics")[2].decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert {s.labels["v"]: s.value for s in families["odd"].samples} == {
        value: number for number, value in enumerate(ODD_LABEL_VALUES)}


def push_text(running, body: bytes, path: str = "/metrics/job/x"):
    return running.json("PUT", path, body, headers={"Content-Type": "text/plain"})


@pytest.mark.parametrize("body,line", [
    (b"# TYPE c counter\nc -5\n", 2),                # a counter's total is never negative
    (b"# TYPE c counter\nc_total -0.5\n", 2),        # the OpenMetrics sample name too
    (b"a 1\na 2\n", 2),                              # the same sample twice (the Pushgateway: 400)
    (b'a{x="1",y="2"} 1\na{y="2",x="1"} 2\n', 2),   # ... in another label order
    (b'a{x=""} 1\na 2\n', 2),                        # ... an empty label is no label
    (b'a{job="other"} 1\na 2\n', 2),                 # ... once the grouping label job="x" replaces job
    (b"a 1_000\n", 1),                               # Python's float() takes digit separators; Go's does not
    (b"a 1e1_0\n", 1),
    (b"a 0x1p3\n", 1),                               # hexadecimal floats: refused by Prometheus ("pP_")
    (b"a 0x10\n", 1),
    (b"a 1e\n", 1),
    (b"a .\n", 1),
    (b"a -nan\n", 1),
    (b"a \xef\xbc\x91\n", 1),                        # FULLWIDTH DIGIT ONE, which float() reads as 1
    (b"a \xd9\xa1\n", 1),                            # ARABIC-INDIC DIGIT ONE
    (b"a 1\r\nb 2\r\n", 1),                          # Windows line endings: Prometheus reads "1\r"
    (b"a\xc2\xa01\n", 1),                            # a no-break space is not a separator
    (b"a 1\x0c\n", 1),                               # nor a form feed
    (b"a 1\n# TYPE a gauge\n", 2),                   # TYPE after the family's samples
    (b"# TYPE a gauge\n# TYPE a counter\na 1\n", 2),  # a second TYPE
    (b"# TYPE a gauges\na 1\n", 1),                  # a type Prometheus does not know
    (b"# TYPE a counter\r\na 1\n", 1),
    (b"# HELP a one\n# HELP a two\na 1\n", 2),       # a second HELP
])
def test_what_prometheus_refuses_is_a_400_naming_the_line_and_stores_nothing(server, body, line):
    """#21: the push was more lenient than Prometheus (expfmt, the Pushgateway's parser)."""
    status, answer = push_text(server, body)
    assert status == 400 and answer["error"].startswith("line %d: " % line), answer
    assert app_metrics(server) == ({}, {})


@pytest.mark.parametrize("body,value", [
    (b"a 1.\n", 1.0), (b"a .5\n", 0.5), (b"a +1\n", 1), (b"a -0\n", 0), (b"a 007\n", 7),
    (b"a 1e3\n", 1000.0), (b"a 1E-3\n", 0.001), (b"a -2.5e+2\n", -250.0), (b"a 1e-400\n", 0.0),
    (b"a 9007199254740993\n", 9007199254740992.0),    # past 2**53: the nearest float, as in JSON
    (b"a 123456789012345678901234567890\n", 1.2345678901234568e+29),
    (b"\t a\t 1 \t\n", 1),                           # blanks and tabs around and between
    (b"a{} 1\n", 1), (b'a {l=""} 1\n', 1), (b'a{l=""}1\n', 1),
    (b"# TYPE a GAUGE\na 1\n", 1),                   # expfmt reads the type in any case
    (b"a 1\n\n# a comment\r\n# EOF\n", 1),
])
def test_every_float_syntax_prometheus_reads_is_taken(server, body, value):
    status, answer = push_text(server, body)
    assert status == 200, answer
    stored = app_metrics(server)[1]['a{job="x"}']
    assert stored == value and type(stored) is type(value)


def test_a_pushed_number_is_kept_as_the_same_number_posted_in_json(server):
    """#21: pushed integers showed as 1.0 in /metrics while JSON-posted ones showed 1: the text
    of the number decides, in both doors (an integer literal is an int within +-2**53)."""
    numbers = {"i": "1", "f": "1.0", "e": "1e3", "z": "-0", "big": "12345678901234567890", "neg": "-7"}
    body = "".join("p_%s %s\n" % (key, text) for key, text in numbers.items()) + "# TYPE p_c counter\np_c 5\n"
    assert push_text(server, body.encode(), "/metrics/job/n")[0] == 200
    posted = '{"gauges":{%s},"counters":{"j_c":5}}' % ",".join('"j_%s":%s' % kv for kv in numbers.items())
    assert server.json("POST", "/api/metrics", posted.encode(), headers={"Content-Type": "application/json"})[0] == 200
    counters, gauges = app_metrics(server)
    for key in numbers:
        pushed, sent = gauges['p_%s{job="n"}' % key], gauges["j_%s" % key]
        assert (type(pushed), pushed) == (type(sent), sent), key
    assert (type(counters['p_c{job="n"}']), counters['p_c{job="n"}']) == (int, 5) == (type(counters["j_c"]), 5)
    text = server.request("GET", "/metrics")[2].decode()
    shown = dict(line.rsplit(" ", 1) for line in text.splitlines() if line.startswith(("p_", "j_")))
    for key in list(numbers) + ["c_total"]:
        assert shown['p_%s{job="n"}' % key] == shown["j_%s" % key], (key, shown)


def test_curl_as_the_pushgateway_readme_shows_it_pushes_and_a_foreign_form_does_not(server):
    """`echo "some_metric 3.14" | curl --data-binary @- .../metrics/job/some_job` (the Pushgateway's
    own example) sends Content-Type application/x-www-form-urlencoded: it got 415 here."""
    import shutil
    import subprocess

    from conftest import require_tool

    curl = shutil.which("curl")
    require_tool(curl is not None, "curl (apt-get install -y curl)")
    done = subprocess.run([curl, "-s", "-w", "\n%{http_code}", "--data-binary", "@-",
                           "%s/metrics/job/some_job" % server.url], input="some_metric 3.14\n",
                          capture_output=True, text=True, timeout=30)
    assert done.stdout.strip().endswith("200"), done.stdout
    assert app_metrics(server)[1]['some_metric{job="some_job"}'] == 3.14
    status, _, _ = server.request("POST", "/metrics/job/evil", b"x 1\n",
                                  {"Content-Type": "application/x-www-form-urlencoded",
                                   "Origin": "https://evil.example"})
    assert status == 403 and 'x{job="evil"}' not in app_metrics(server)[1]
