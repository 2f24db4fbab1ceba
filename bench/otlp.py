"""OTLP/HTTP intake (#27), measured: data points a second the dashboard accepts per core of its
own CPU, for OTLP/JSON and OTLP protobuf at 100 and 1,000 series, beside the same points
posted through the JSON API (POST /api/metrics) and StatsD (TCP lines), in the same run.

Run: python bench/otlp.py                 (writes bench/RESULTS-otlp.md)
     python bench/otlp.py --seconds 2     (shorter rounds)
     python bench/otlp.py --data-folder   (each dashboard on a data folder of its own: every
                                           answer waits for its commit, as in use)

Each series count gets a dashboard of its own (a subprocess: ``sse_server.py --data-dir :memory:
--post-rate 0 --statsd``), so each door's 1,000-name budget holds. Each round sends the same
counter series (one point a series a request: the shape an SDK's periodic export has), over one
keep-alive connection, for about ``--seconds``; the dashboard's CPU time (user + system, from
/proc through psutil) over the round is the denominator. Bodies are built before the clock
starts: the client's cost is not counted. A point counts as accepted when the answer says so
(200 without rejected points; for StatsD, when the totals reach what was sent).
"""

from __future__ import annotations

import argparse
import http.client
import json
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS-otlp.md"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Dashboard:
    def __init__(self, data_dir: str = ":memory:") -> None:
        self.statsd_port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "sse_server.py"), "--port", "0", "--data-dir", data_dir, "--post-rate", "0",
             "--statsd", "127.0.0.1:%d" % self.statsd_port, "--no-psutil"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=str(ROOT))
        deadline = time.monotonic() + 15
        output = b""
        while time.monotonic() < deadline:
            output += self.proc.stdout.readline()
            found = re.search(rb"dashboard at http://127\.0\.0\.1:(\d+)/", output)
            if found:
                self.port = int(found.group(1))
                break
        else:
            raise SystemExit("the dashboard did not start: %s" % output.decode(errors="replace"))
        self.process = psutil.Process(self.proc.pid)
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def cpu_s(self) -> float:
        times = self.process.cpu_times()
        return times.user + times.system

    def post(self, path: str, body: bytes, content_type: str) -> tuple[int, bytes]:
        self.conn.request("POST", path, body, {"Content-Type": content_type})
        response = self.conn.getresponse()
        return response.status, response.read()

    def counters(self) -> dict:
        self.conn.request("GET", "/api/metrics")
        return json.loads(self.conn.getresponse().read())["counters"]

    def stop(self) -> None:
        self.conn.close()
        self.proc.kill()
        self.proc.wait(5)


def otlp_request(series: int, value: int, start: int) -> dict:
    points = [{"startTimeUnixNano": str(start), "timeUnixNano": str(start + value), "asInt": str(value),
               "attributes": [{"key": "series", "value": {"stringValue": str(i)}}]} for i in range(series)]
    return {"resourceMetrics": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "bench"}}]},
                                 "scopeMetrics": [{"metrics": [{"name": "bench.requests", "sum": {
                                     "aggregationTemporality": 2, "isMonotonic": True, "dataPoints": points}}]}]}]}


def protobuf_of(request: dict) -> bytes:
    from google.protobuf import json_format
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

    return json_format.ParseDict(request, metrics_service_pb2.ExportMetricsServiceRequest()).SerializeToString()


def measure(dashboard: Dashboard, bodies, send, seconds: float) -> tuple[int, float, float]:
    """(points accepted, dashboard CPU seconds, wall seconds) for sending ``bodies`` in turn."""
    accepted = 0
    cpu0, wall0 = dashboard.cpu_s(), time.monotonic()
    for points, body in bodies:
        accepted += send(body) and points
        if time.monotonic() - wall0 >= seconds:
            break
    return accepted, dashboard.cpu_s() - cpu0, time.monotonic() - wall0


def otlp_sender(dashboard: Dashboard, content_type: str):
    def send(body: bytes) -> bool:
        status, answer = dashboard.post("/v1/metrics", body, content_type)
        return status == 200 and (content_type != "application/json" or answer == b"{}")
    return send


def run_series(series: int, seconds: float, rounds: int, data_dir: str = ":memory:") -> dict:
    dashboard = Dashboard(data_dir)
    results = {}
    try:
        start = time.time_ns()
        requests = [otlp_request(series, value, start) for value in range(1, rounds + 1)]
        plans = {
            "OTLP/JSON": ([(series, json.dumps(r).encode()) for r in requests], otlp_sender(dashboard, "application/json")),
            "OTLP protobuf": ([(series, protobuf_of(r)) for r in requests],
                              otlp_sender(dashboard, "application/x-protobuf")),
            "JSON API (POST /api/metrics)": (
                [(series, json.dumps({"counters": {'bench_api{series="%d"}' % i: 1 for i in range(series)}}).encode())
                 for _ in range(rounds)],
                lambda body: dashboard.post("/api/metrics", body, "application/json")[0] == 200),
        }
        for name, (bodies, send) in plans.items():
            results[name] = measure(dashboard, bodies, send, seconds)
        results["StatsD (TCP lines)"] = measure_statsd(dashboard, series, seconds, rounds)
    finally:
        dashboard.stop()
    return results


def measure_statsd(dashboard: Dashboard, series: int, seconds: float, rounds: int) -> tuple[int, float, float]:
    """StatsD is answered by nobody: points count when the flushed totals reach what was sent."""
    batch = "".join("bench.statsd:1|c|#series:%d\n" % i for i in range(series)).encode()
    sock = socket.create_connection(("127.0.0.1", dashboard.statsd_port))
    cpu0, wall0 = dashboard.cpu_s(), time.monotonic()
    sent = 0
    try:
        for _ in range(rounds):
            sock.sendall(batch)
            sent += series
            if time.monotonic() - wall0 >= seconds:
                break
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the totals appear at the next flush (a sample: 1 s)
            total = sum(v for k, v in dashboard.counters().items() if k.startswith("bench_statsd"))
            if total >= sent:
                break
            time.sleep(0.05)
    finally:
        sock.close()
    # The wait for the flush is idle time for the dashboard, but counts in its CPU as the sampler's
    # ticks do in every other row.
    return int(total), dashboard.cpu_s() - cpu0, time.monotonic() - wall0


def table(all_results: dict) -> list[str]:
    lines = ["| series | door | points accepted | dashboard CPU s | wall s | **points/s per core** | points/s (wall) |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    for series, results in all_results.items():
        for name, (points, cpu, wall) in results.items():
            lines.append("| %d | %s | %d | %.2f | %.2f | **%s** | %s |" % (
                series, name, points, cpu, wall, "{:,.0f}".format(points / cpu if cpu else 0),
                "{:,.0f}".format(points / wall if wall else 0)))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="how long each round sends (default 5)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--data-folder", action="store_true",
                        help="run each dashboard on a temporary data folder (default: --data-dir :memory:)")
    args = parser.parse_args()
    all_results = {}
    # Bodies for a little more than a round can send (measured: ~600 requests a second of 100
    # points at best); building protobuf ones is the client's slow part.
    for series, rounds in ((100, int(1000 * args.seconds)), (1000, int(150 * args.seconds))):
        with tempfile.TemporaryDirectory(prefix="bench-otlp-") as folder:
            all_results[series] = run_series(series, args.seconds, rounds, folder if args.data_folder else ":memory:")
        for line in table({series: all_results[series]})[2:]:
            print(line)
    write(args.output, all_results, args.seconds)


def write(path: Path, all_results: dict, seconds: float) -> None:
    text = "\n".join([
        "# OTLP/HTTP intake (#27): data points accepted a second per core",
        "",
        "Written by `python bench/otlp.py` on %s, Python %s, %s, %d logical CPUs (shared with other work)." % (
            time.strftime("%Y-%m-%d"), platform.python_version(), platform.platform(), psutil.cpu_count()),
        "",
        "One dashboard a series count; each door sends the same counter series (one point a series a request, "
        "as an SDK's periodic export) for about %g s over one keep-alive connection; bodies built beforehand. "
        "Per core = points accepted / the dashboard's own CPU seconds (user + system)." % seconds,
        "",
        *table(all_results),
        "",
    ])
    path.write_text(text, encoding="utf-8")
    print("wrote", path)


if __name__ == "__main__":
    main()
