"""What writing history costs while it runs (#23): CPU a value of the sampler and of the storage
writer thread, whether the writer keeps up, and RSS, at 1,000 and 10,000 series a second, for
this checkout and a reference (default 3411770, the main before #23), in one run.

Run: python bench/history_load.py [--reference REV] [--seconds 120] [--series 1000,10000]
     [--server-seconds 60]
(writes bench/RESULTS-history-load.md; a quick run: --seconds 20 --series 200,2000 --server-seconds 10).

1. **The writing path, in one process** (a subprocess a side, importing that side's code): a
   registry holding N application gauges (its budget raised to N: the server's API takes 1,000
   names a door, three doors, so 10,000 application series cannot reach a real server), the
   real ``Sampler`` with this machine's system collector, ticking every second on its own
   thread, and the store with its real writer thread, wired as each side's server wires them
   (now: the sampler hands each sample to ``store.record``, and the registry commits through
   ``store.journal``; 3411770: ``record=store.enqueue_sample``, and the writer saves the
   registry's whole state with every batch). The main thread moves every gauge once a second
   (a 3-decimal random walk), as POSTs would. Before the timed part, 2 minutes of samples are
   written straight to the store, so the timed part compacts once a minute as a dashboard that
   has run a while does (the first compaction comes once 120 samples are staged).

   Measured over ``--seconds``: when each sample was handed on (a tick more than 1.5 s after the
   one before is late; one more than a whole interval late, and the sampler skips the next);
   each thread's CPU (the kernel's scheduler clock for that
   thread, ``/proc/self/task/TID/schedstat``; psutil's coarser times elsewhere), divided by the values sampled (gauges + system series); ticks
   taken against seconds passed; the writer's queue, read every second (a private attribute:
   "n/a" when a storage change renames it), the samples dropped, and how long the last ones take
   to drain once sampling stops; the process' RSS, every second.

2. **A real server** (``sse_server.py --data-dir``, ``history_reads.serve``) fed 1,000 gauges
   a second by ``POST /api/metrics`` (one door's budget) for ``--server-seconds``, on a folder
   holding 130 s of them beforehand: its RSS and its CPU (the POSTs' handling included).

3. **Prometheus beside us** (Debian's 2.42, when installed): ``prometheus`` scraping N gauges
   every second from a loopback exporter in this process (the text changes every second, a
   3-decimal random walk), for ``--seconds`` after 10 s of warming up: the prometheus process'
   CPU (scrape, parse, head, WAL, its GC) per sample ingested, and its RSS. Its head keeps the
   newest two hours in memory, so its RSS grows past what a short run shows.
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import json
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from history_query import serve_prometheus  # noqa: E402
from history_reads import fill, serve  # noqa: E402
from reference import reference_checkout, revision  # noqa: E402

REFERENCE = "3411770"   # main before #23
SERIES = (1000, 10000)
PREFILL_SAMPLES = 130   # past the 120 staged samples that start compaction
PROMETHEUS_WARM_UP_S = 10
SERVER_GAUGES = 1000    # the API door's budget (registry.MAX_METRICS)


# --- 1. the writing path, in one process --------------------------------------------------

class Side:
    """One checkout's registry, sampler and store, wired as its server wires them."""

    def __init__(self, checkout: Path, folder: str, series: int) -> None:
        self.tick_times: list[float] = []   # when each sample was handed on (monotonic)
        sys.path.insert(0, str(checkout))
        if (checkout / "storage.py").is_file():  # the layout before the package (3411770)
            import metrics
            import storage
            self.store = storage.open_store(folder, interval_s=1.0)
            self.registry = metrics.MetricsRegistry(max_metrics=series)
            self.store.state_source = self.registry.state
            self.sampler = metrics.Sampler(self.registry, metrics.make_system_collector(), interval_s=1.0,
                                           record=self.store.enqueue_sample, on_sample=self._ticked)
            self.write = self.store._write
            self._writer = self.store
            self.flatten = metrics.flatten_snapshot
        else:
            from sse_dashboard import storage
            from sse_dashboard.collectors.system import make_system_collector
            from sse_dashboard.registry import MetricsRegistry
            from sse_dashboard.sampler import Sampler, flatten_snapshot
            self.store = storage.open_store(folder, interval_s=1.0)
            self.registry = MetricsRegistry(max_metrics=series, journal=self.store.journal)
            self.sampler = Sampler(self.registry, make_system_collector(), interval_s=1.0,
                                   subscribers=[self.store.record, self._ticked])
            self.write = self.store.history.write
            self._writer = self.store.history
            self.flatten = flatten_snapshot

    def _ticked(self, *sample) -> None:
        self.tick_times.append(time.monotonic())

    def queued(self) -> int | None:
        """Samples waiting for the writer (None: this storage keeps its queue elsewhere)."""
        queue = getattr(self._writer, "_queue", None)
        return queue.qsize() if queue is not None else None


def thread_cpu(process: psutil.Process, native_ids: dict[str, int]) -> dict[str, float]:
    """CPU seconds of each named thread so far: Linux's scheduler clock (``schedstat``, in ns)
    where there is one; else psutil's user + system time, which counts in 10 ms ticks and
    misses much of a thread that runs a few ms a second."""
    out = {}
    for name, tid in native_ids.items():
        try:
            out[name] = int(Path("/proc/self/task/%d/schedstat" % tid).read_text().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            by_id = {t.id: t.user_time + t.system_time for t in process.threads()}
            out[name] = by_id.get(tid, 0.0)
    return out


class Walk:
    """N gauges, each a 3-decimal random walk."""

    def __init__(self, series: int, seed: int = 23) -> None:
        self._rng = random.Random(seed)
        self.names = ["s%d" % i for i in range(series)]
        self.levels = [100.0] * series

    def step(self) -> dict:
        rng = self._rng
        self.levels = [round(v + rng.uniform(-1, 1), 3) for v in self.levels]
        return dict(zip(self.names, self.levels))


def measure_path(checkout: Path, series: int, seconds: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        side = Side(checkout, folder, series)
        walk = Walk(series)
        start = time.time() - PREFILL_SAMPLES - 1
        for k in range(PREFILL_SAMPLES):  # straight to the store: a dashboard that has run a while
            side.write([(start + k, {"gauges." + name: value for name, value in walk.step().items()})])
        side.registry.update(gauges=walk.step())
        side.store.start()
        side.sampler.start()
        me = psutil.Process()
        ids = {t.name: t.native_id for t in threading.enumerate() if t.name in ("sampler", "storage-writer")}
        values_a_tick = len(side.flatten(side.sampler.latest()[0]))
        ticks_before = len(side.tick_times)
        cpu_before, seq_before, process_before = thread_cpu(me, ids), side.sampler.seq, me.cpu_times()
        wall = time.monotonic()
        queue_lengths, rss, update_s, update_cpu = [], [me.memory_info().rss], [], 0.0
        next_second = time.monotonic()
        for _ in range(seconds):
            next_second += 1.0
            gauges = walk.step()
            began, cpu_began = time.perf_counter(), time.thread_time()
            side.registry.update(gauges=gauges)   # what the POSTs would do
            update_s.append(time.perf_counter() - began)
            update_cpu += time.thread_time() - cpu_began
            time.sleep(max(0.0, next_second - time.monotonic()))
            queue_lengths.append(side.queued())
            rss.append(me.memory_info().rss)
        # (read before the sampler stops: a thread's clock goes with it)
        cpu_after, process_after = thread_cpu(me, ids), me.cpu_times()
        elapsed = time.monotonic() - wall
        ticks = side.sampler.seq - seq_before
        tick_times = side.tick_times[max(0, ticks_before - 1):]
        gaps = [b - a for a, b in zip(tick_times, tick_times[1:])]
        side.sampler.stop()
        began = time.monotonic()
        side.store.flush(60.0)
        drain_s = time.monotonic() - began
        queued_after = side.queued()
        dropped = side.store.dropped_samples
        side.store.close()
    values = ticks * values_a_tick
    cpu = {name: cpu_after[name] - cpu_before[name] for name in ids}
    known = [q for q in queue_lengths if q is not None]
    return {
        "series": series, "values_a_tick": values_a_tick, "seconds": elapsed, "ticks": ticks,
        "sampler_us_a_value": cpu.get("sampler", 0.0) * 1e6 / max(1, values),
        "writer_us_a_value": cpu.get("storage-writer", 0.0) * 1e6 / max(1, values),
        "update_us_a_value": update_cpu * 1e6 / max(1, values),
        "sampler_percent": cpu.get("sampler", 0.0) * 100 / elapsed,
        "writer_percent": cpu.get("storage-writer", 0.0) * 100 / elapsed,
        "process_percent": (sum(process_after[:2]) - sum(process_before[:2])) * 100 / elapsed,
        "update_ms_p50": sorted(update_s)[len(update_s) // 2] * 1000 if update_s else 0.0,
        "update_ms_max": max(update_s) * 1000 if update_s else 0.0,
        "longest_gap_s": max(gaps, default=0.0), "late_ticks": sum(1 for gap in gaps if gap > 1.5),
        "queue_max": max(known) if known else None, "queue_last": known[-1] if known else None,
        "queued_after_flush": queued_after, "drain_s": drain_s, "dropped": dropped,
        "rss_peak_mb": max(rss) / 1e6, "rss_end_mb": rss[-1] / 1e6,
    }


def run_path(checkout: Path, series: int, seconds: int) -> dict:
    """``measure_path`` in a process of its own (each side imports its own modules)."""
    done = subprocess.run([sys.executable, __file__, "--only", str(checkout), "--series", str(series),
                           "--seconds", str(seconds)], capture_output=True, text=True, timeout=seconds + 900)
    if done.returncode != 0:
        raise RuntimeError("measuring %s at %d series failed:\n%s" % (checkout, series, done.stderr[-3000:]))
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- 2. a real server ---------------------------------------------------------------------

def post(port: int, gauges: dict) -> float:
    body = json.dumps({"gauges": gauges}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    began = time.perf_counter()
    try:
        conn.request("POST", "/api/metrics", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        answer = response.read()
    finally:
        conn.close()
    if response.status != 200:
        raise RuntimeError("POST /api/metrics: HTTP %d %s" % (response.status, answer[:300]))
    return time.perf_counter() - began


def measure_server(checkout: Path, gauges: int, seconds: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        fill(checkout, folder, gauges, PREFILL_SAMPLES)  # gauges.s0...: the names posted below
        proc, port = serve(checkout, folder)
        try:
            server = psutil.Process(proc.pid)
            walk = Walk(gauges)
            post(port, walk.step())
            cpu_before, wall = sum(server.cpu_times()[:2]), time.monotonic()
            rss, post_s = [server.memory_info().rss], []
            next_second = time.monotonic()
            for _ in range(seconds):
                next_second += 1.0
                post_s.append(post(port, walk.step()))
                time.sleep(max(0.0, next_second - time.monotonic()))
                rss.append(server.memory_info().rss)
            elapsed = time.monotonic() - wall
            cpu = sum(server.cpu_times()[:2]) - cpu_before
        finally:
            proc.terminate()
            proc.wait(30)
    return {"gauges": gauges, "seconds": elapsed, "cpu_percent": cpu * 100 / elapsed,
            "post_ms_p50": sorted(post_s)[len(post_s) // 2] * 1000, "rss_start_mb": rss[0] / 1e6,
            "rss_peak_mb": max(rss) / 1e6, "rss_end_mb": rss[-1] / 1e6}


# --- 3. Prometheus beside us -------------------------------------------------------------

class Exporter:
    """N gauges in Prometheus' text format on a loopback port, moved once a second."""

    def __init__(self, series: int) -> None:
        self._walk = Walk(series)
        self.scrapes = 0
        self.body = b""
        self.move()
        exporter = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = exporter.body
                exporter.scrapes += 1
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # (no line a scrape)
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self.server.serve_forever, daemon=True),
                         threading.Thread(target=self._run, daemon=True)]
        for t in self._threads:
            t.start()

    def move(self) -> None:
        self.body = "".join("# TYPE gauges_%s gauge\ngauges_%s %r\n" % (name, name, value)
                            for name, value in self._walk.step().items()).encode()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.move()

    def close(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()


def measure_prometheus(series: int, seconds: int) -> dict:
    exporter = Exporter(series)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "prometheus"
            data.mkdir()
            config = ("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n"
                      "  - job_name: bench\n    static_configs:\n      - targets: ['127.0.0.1:%d']\n" % exporter.port)
            proc, _ = serve_prometheus(data, config, default_blocks=True)
            try:
                server = psutil.Process(proc.pid)
                time.sleep(PROMETHEUS_WARM_UP_S)  # the first scrapes make the series: not the steady cost
                cpu_before, scrapes_before, wall = sum(server.cpu_times()[:2]), exporter.scrapes, time.monotonic()
                rss = [server.memory_info().rss]
                for _ in range(seconds):
                    time.sleep(1.0)
                    rss.append(server.memory_info().rss)
                elapsed = time.monotonic() - wall
                cpu = sum(server.cpu_times()[:2]) - cpu_before
                scrapes = exporter.scrapes - scrapes_before
            finally:
                proc.terminate()
                proc.wait(30)
    finally:
        exporter.close()
    return {"series": series, "seconds": elapsed, "scrapes": scrapes, "cpu_percent": cpu * 100 / elapsed,
            "us_a_sample": cpu * 1e6 / max(1, scrapes * series), "rss_peak_mb": max(rss) / 1e6,
            "rss_end_mb": rss[-1] / 1e6}


# --- both sides, and the report -----------------------------------------------------------

def measure(reference: str = REFERENCE, series: tuple = SERIES, seconds: int = 120, server_seconds: int = 60) -> dict:
    out: dict = {"reference": reference, "seconds": seconds, "server_seconds": server_seconds, "path": {},
                 "server": {}, "prometheus": {}}
    with reference_checkout(reference) as checkout:
        for n in series:
            for side, root in (("reference", checkout), ("now", ROOT)):
                out["path"].setdefault(str(n), {})[side] = run_path(root, n, seconds)
        if server_seconds > 0:
            for side, root in (("reference", checkout), ("now", ROOT)):
                out["server"][side] = measure_server(root, SERVER_GAUGES, server_seconds)
    if shutil.which("prometheus"):
        for n in series:
            out["prometheus"][str(n)] = measure_prometheus(n, seconds)
    return out


def writer_kept_up(r: dict) -> bool:
    """Nothing dropped, the queue (near) empty at the end, the rest written within 2 s."""
    return not r["dropped"] and (r["queue_last"] is None or r["queue_last"] <= 2) and r["drain_s"] < 2.0


def sustained(r: dict) -> str:
    """The writer kept up and every tick came on time (none more than 1.5 intervals after the one
    before: a sample that late is late on every stream, and a whole interval late one is lost)."""
    return yes_no(writer_kept_up(r) and r["late_ticks"] == 0 and r["ticks"] >= int(r["seconds"]) - 1)


def yes_no(ok: bool) -> str:
    return "yes" if ok else "**no**"


def path_table(results: dict, reference: str) -> list[str]:
    lines = ["| series a second | side | values a tick | sampler CPU a value | writer CPU a value | sampler + writer "
             "| sampler + writer, % of a core | registry updates a value | registry update p50 / max "
             "| process, % of a core | ticks / s | ticks late (longest gap) | writer queue max / last | dropped "
             "| drained in | writer kept up | sustained | RSS peak |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- "
             "| --- |"]
    for n, sides in results.items():
        for side, r in sides.items():
            queue = "n/a" if r["queue_max"] is None else "%d / %d" % (r["queue_max"], r["queue_last"])
            lines.append("| %s | %s | %s | %.2f µs | %.2f µs | %.2f µs | %.1f %% | %.2f µs | %.0f / %.0f ms | %.1f %% "
                         "| %d / %.0f | %d (%.2f s) | %s | %d | %.2f s | %s | %s | %.0f MB |" % (
                             format(int(n), ","), "%s (%s)" % (side, reference if side == "reference" else "this checkout"),
                             format(r["values_a_tick"], ","), r["sampler_us_a_value"], r["writer_us_a_value"],
                             write_us(r), r["sampler_percent"] + r["writer_percent"], r["update_us_a_value"],
                             r["update_ms_p50"], r["update_ms_max"], r["process_percent"], r["ticks"], r["seconds"],
                             r["late_ticks"], r["longest_gap_s"], queue, r["dropped"], r["drain_s"],
                             yes_no(writer_kept_up(r)), sustained(r), r["rss_peak_mb"]))
    return lines


def write_us(r: dict) -> float:
    """CPU a value sampled: the sampler and the storage writer together."""
    return r["sampler_us_a_value"] + r["writer_us_a_value"]


def server_table(results: dict, reference: str) -> list[str]:
    lines = ["| side | gauges posted a second | server CPU, % of a core | POST p50 | RSS at start -> peak (end) |",
             "| --- | --- | --- | --- | --- |"]
    for side, r in results.items():
        lines.append("| %s (%s) | %s | %.1f %% | %.1f ms | %.0f -> %.0f (%.0f) MB |" % (
            side, reference if side == "reference" else "this checkout", format(r["gauges"], ","), r["cpu_percent"],
            r["post_ms_p50"], r["rss_start_mb"], r["rss_peak_mb"], r["rss_end_mb"]))
    return lines


def prometheus_table(results: dict) -> list[str]:
    lines = ["| series a second | scrapes / s | Prometheus CPU a sample | % of a core | RSS peak (end) |",
             "| --- | --- | --- | --- | --- |"]
    for n, r in results.items():
        lines.append("| %s | %d / %.0f | %.2f µs | %.1f %% | %.0f (%.0f) MB |" % (
            format(int(n), ","), r["scrapes"], r["seconds"], r["us_a_sample"], r["cpu_percent"], r["rss_peak_mb"],
            r["rss_end_mb"]))
    return lines


def report(out: dict) -> str:
    lines = ["# Writing history while it runs: CPU a value, keeping up, RSS", "",
             "`python bench/history_load.py` on %s (%s, Python %s, commit %s, %d cores): each side's registry, "
             "sampler (this machine's system collector) and store with its writer thread in one process, N "
             "gauges moved every second for %d s after %d s of samples written beforehand; CPU per thread from "
             "the kernel's scheduler clock, per value sampled (gauges + system series); \"registry updates\": "
             "the main thread's CPU in `registry.update` (what POSTs cost without HTTP: now it commits the "
             "gauges through the journal, the reference's writer saved them with each batch), and its wall "
             "time; \"ticks late\": samples handed on more than 1.5 s after the one before (a whole interval "
             "late, and the sampler skips the next); \"sustained\": the writer kept up and no tick was late; "
             "\"process\": all of it, the bench's own random numbers included. Reference: %s." % (
                 time.strftime("%Y-%m-%d"), sys.platform, sys.version.split()[0], revision(), psutil.cpu_count(),
                 out["seconds"], PREFILL_SAMPLES, out["reference"]), ""]
    lines += path_table(out["path"], out["reference"])
    if out["server"]:
        lines += ["", "A real server process (`sse_server.py --data-dir`) fed %s gauges a second by `POST "
                  "/api/metrics` for %d s (the API's budget is 1,000 names a door, so 10,000 application series "
                  "cannot reach one: the in-process rows above stand for it):" % (
                      format(SERVER_GAUGES, ","), out["server_seconds"]), ""]
        lines += server_table(out["server"], out["reference"])
    if out["prometheus"]:
        lines += ["", "Prometheus (%s) scraping the same number of gauges every second from a loopback exporter, "
                  "for %d s after %d s of warming up; its whole process' CPU a sample ingested:" % (
                      prometheus_version(), out["seconds"], PROMETHEUS_WARM_UP_S), ""]
        lines += prometheus_table(out["prometheus"])
    return "\n".join(lines) + "\n"


def prometheus_version() -> str:
    done = subprocess.run([shutil.which("prometheus") or "prometheus", "--version"], capture_output=True, text=True)
    return done.stdout.split("\n")[0].replace("prometheus, version ", "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", default=REFERENCE)
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--series", default=",".join(str(n) for n in SERIES))
    parser.add_argument("--server-seconds", type=int, default=60, help="0: no real server")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the numbers as JSON")
    parser.add_argument("--only", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    series = tuple(int(n) for n in args.series.split(","))
    if args.only:
        print(json.dumps(measure_path(Path(args.only), series[0], args.seconds)))
        return
    out = measure(args.reference, series, args.seconds, args.server_seconds)
    text = report(out)
    (ROOT / "bench" / "RESULTS-history-load.md").write_text(text, encoding="utf-8")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1), encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
