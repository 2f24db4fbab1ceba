"""/metrics: exact exposition text, escaping, promtool, and a real Prometheus scraping it."""

import json
import shutil
import socket
import subprocess
import urllib.parse
import urllib.request

from conftest import require_tool, wait_until
from sse_dashboard.exposition import PROMETHEUS_CONTENT_TYPE, prometheus_name, render_prometheus


def test_exposition_is_exact():
    text = render_prometheus({
        "seq": 7,
        "system": {"source": "stdlib", "cpu_percent": 25.0, "cpu_per_core": [10.0, 40.0], "disk_path": "/",
                   "disk_total_bytes": 1000},
        "counters": {"jobs": 3},
        "gauges": {"queue_depth": 2.5},
        "server": {"clients": 1, "dropped": 0},
    })
    assert text == (
        "# HELP system_cpu_usage_ratio CPU busy time over the last interval, 0..1\n"
        "# TYPE system_cpu_usage_ratio gauge\n"
        "system_cpu_usage_ratio 0.25\n"
        "# HELP system_cpu_core_usage_ratio CPU busy time per core over the last interval, 0..1\n"
        "# TYPE system_cpu_core_usage_ratio gauge\n"
        'system_cpu_core_usage_ratio{core="0"} 0.1\n'
        'system_cpu_core_usage_ratio{core="1"} 0.4\n'
        "# HELP system_disk_size_bytes Size of the filesystem\n"
        "# TYPE system_disk_size_bytes gauge\n"
        'system_disk_size_bytes{path="/"} 1000\n'
        "# HELP sse_dashboard_stream_clients Open /api/metrics/stream connections\n"
        "# TYPE sse_dashboard_stream_clients gauge\n"
        "sse_dashboard_stream_clients 1\n"
        "# HELP sse_dashboard_dropped_clients_total Streams dropped for not reading\n"
        "# TYPE sse_dashboard_dropped_clients_total counter\n"
        "sse_dashboard_dropped_clients_total 0\n"
        "# HELP sse_dashboard_samples_total Samples taken since the dashboard started\n"
        "# TYPE sse_dashboard_samples_total counter\n"
        "sse_dashboard_samples_total 7\n"
        "# HELP sse_dashboard_info The collector in use\n"
        "# TYPE sse_dashboard_info gauge\n"
        'sse_dashboard_info{source="stdlib"} 1\n'
        "# HELP jobs_total Application counter jobs\n"
        "# TYPE jobs_total counter\n"
        "jobs_total 3\n"
        "# HELP queue_depth Application gauge queue_depth\n"
        "# TYPE queue_depth gauge\n"
        "queue_depth 2.5\n"
    )


def test_label_values_are_escaped():
    text = render_prometheus({"system": {"disk_path": 'C:\\dir "x"\nnext', "disk_free_bytes": 1}})
    assert 'system_disk_free_bytes{path="C:\\\\dir \\"x\\"\\nnext"} 1\n' in text


def test_special_values():
    text = render_prometheus({"gauges": {"a": float("inf"), "b": float("-inf"), "c": float("nan"), "d": 10**20}})
    assert "a +Inf\n" in text and "b -Inf\n" in text and "c NaN\n" in text and "d 100000000000000000000\n" in text


def test_names_are_mapped_deterministically_and_collisions_get_their_own_family():
    assert prometheus_name("jobs", counter=True) == "jobs_total"
    assert prometheus_name("jobs_total", counter=True) == "jobs_total"
    assert prometheus_name("__name__", counter=False) == "app__name__"
    assert prometheus_name("ns:requests", counter=True) == "ns_requests_total"
    assert prometheus_name(":_x", counter=False) == "app__x"
    assert prometheus_name(":", counter=True) == "app__total"  # not the reserved "__total"
    snapshot = {"counters": {"jobs": 1, "jobs_total": 2}, "gauges": {"jobs_total": 3, "__x": 4,
                "sse_dashboard_stream_clients": 99}, "server": {"clients": 5}}
    text = render_prometheus(snapshot)
    assert text == render_prometheus(snapshot)  # deterministic
    assert text.count("# TYPE jobs_total ") == 1 and "\njobs_total 1\n" in text
    assert "\nsse_dashboard_stream_clients 5\n" in text
    assert "app__x 4\n" in text
    samples = [line.split() for line in text.splitlines()
               if line and not line.startswith(("#", "sse_dashboard_info"))]
    names = [name for name, _ in samples]
    assert len(names) == len(set(names))  # every family once
    assert sorted(v for _, v in samples) == ["1", "2", "3", "4", "5", "99"]  # nothing dropped
    assert all(name.startswith(("jobs_", "sse_dashboard_stream_clients", "app__x")) for name in names)


def test_every_family_has_help_and_type_before_its_samples():
    text = render_prometheus({"seq": 1, "system": {"cpu_percent": 1.0, "cpu_per_core": [1.0]},
                              "counters": {"a": 1, "b": 2}, "gauges": {"c": 3}})
    assert text.endswith("\n")
    seen_type = None
    families = []
    for line in text.splitlines():
        if line.startswith("# HELP "):
            families.append(line.split()[2])
        elif line.startswith("# TYPE "):
            seen_type = line.split()[2]
            assert seen_type == families[-1]
        else:
            assert line.split("{")[0].split(" ")[0] == seen_type
    assert len(families) == len(set(families))


def test_metrics_endpoint(server):
    server.json("POST", "/api/metrics", {"counters": {"jobs_done": 5}})
    wait_until(lambda: b"jobs_done_total 5" in server.request("GET", "/metrics")[2], message="the counter")
    status, headers, _ = server.request("GET", "/metrics")
    assert status == 200 and headers["Content-Type"] == PROMETHEUS_CONTENT_TYPE


def test_metrics_endpoint_needs_the_token(make_server):
    server = make_server(token="t0k")
    assert server.request("GET", "/metrics")[0] == 401
    assert server.request("GET", "/metrics", headers={"Authorization": "Bearer t0k"})[0] == 200


def test_promtool_accepts_the_output_even_with_awkward_names(server):
    promtool = shutil.which("promtool")
    require_tool(promtool is not None, "promtool (apt-get install -y prometheus)")
    server.json("POST", "/api/metrics", {"counters": {"jobs": 1, "jobs_total": 2, "ns:reqs": 3, "__secret": 4},
                                         "gauges": {"jobs_total": 5, "_": 6, "sse_dashboard_info": 7}})
    wait_until(lambda: b"ns_reqs_total" in server.request("GET", "/metrics")[2], message="posted names")
    body = server.request("GET", "/metrics")[2]
    result = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_real_prometheus_scrapes_a_counter_we_set(make_server, tmp_path):
    binary = shutil.which("prometheus")
    require_tool(binary is not None, "prometheus (apt-get install -y prometheus)")
    server = make_server(token="scrape-me")
    server.json("POST", "/api/metrics", {"counters": {"jobs_done": 42}, "gauges": {"queue_depth": 7}},
                headers={"Authorization": "Bearer scrape-me"})
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n"
        "  - job_name: dashboard\n"
        "    authorization:\n      credentials: scrape-me\n"
        "    static_configs:\n      - targets: ['127.0.0.1:%d']\n" % server.port, encoding="utf-8")
    port = free_port()
    proc = subprocess.Popen([binary, "--config.file=%s" % config, "--storage.tsdb.path=%s" % (tmp_path / "data"),
                             "--web.listen-address=127.0.0.1:%d" % port],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def query(expr):
        url = "http://127.0.0.1:%d/api/v1/query?%s" % (port, urllib.parse.urlencode({"query": expr}))
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                result = json.load(resp)["data"]["result"]
        except OSError:
            return None
        return result[0]["value"][1] if result else None

    try:
        assert wait_until(lambda: query("jobs_done_total"), timeout=30, message="Prometheus to scrape") == "42"
        assert query("queue_depth") == "7"
        assert query('up{job="dashboard"}') == "1"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
