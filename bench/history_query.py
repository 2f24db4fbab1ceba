"""Query latency (#23): the dashboard's ``GET /api/metrics/history`` against Prometheus'
``query_range`` on the same samples, in one run.

Run: python bench/history_query.py [--series 1000] [--seconds 3600] [--long-series 10]
     [--long-seconds 604800] [--points 600] [--repeat 10]
(writes bench/RESULTS-history-query.md; a quick run: --series 100 --seconds 600
--long-seconds 86400 --repeat 3).

Two data sets, each a 3-decimal random walk a series, one sample a second, timestamps whole
seconds ending when the run starts (the dashboard picks full resolution or roll-ups by the wall
clock, so its history must end now):

- "recent": ``--series`` series over ``--seconds`` (1,000 over an hour), read as all series at
  ``--points`` points: ours ``?seconds=3600&points=600``, Prometheus ``{__name__=~"gauges_s.*"}``
  at step 3600/600 = 6 s;
- "long": ``--long-series`` series over ``--long-seconds`` (10 over 7 days), read at
  ``--points`` points: ours ``?seconds=604800&points=600&names=...`` (roll-ups, then the
  samples not rolled up yet), Prometheus the same selector at step 604800/600 = 1008 s.

Ours: the samples written through the storage writer (``history.write``, batches of 60, with
``history.prune()`` every hour of samples and once at the end: the writer prunes every 30 s, and
retention counts samples, so the folder ends the same), then a real ``sse_server.py`` process on
the folder (``history_reads.serve``). It samples this machine every second meanwhile, as a
dashboard does, so "all series" also holds its ~30 system series.

Prometheus: the same samples as OpenMetrics (``history_size.write_openmetrics``, streamed),
``promtool tsdb create-blocks-from openmetrics --max-block-duration=18h`` (the blocks a
Prometheus with the default 15 days' retention compacts its history into, instead of 2 h
ones), then ``prometheus`` on that folder, loopback only, no scrape targets, its compaction
kept off (min and max block duration 2 h) so nothing runs under the queries. Also timed:
``avg_over_time(...[step])``, which averages every sample of each step as our buckets do
(``query_range`` alone returns the one sample at each step).

Each query runs once to warm up, then ``--repeat`` times, ours and Prometheus' taking turns so
both read the same window of the same samples (each asks for the window ending at that moment).
Latency is from sending the request to the answer's last byte, on a fresh connection.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))
from history_reads import serve  # noqa: E402
from history_size import promtool_command, write_openmetrics  # noqa: E402
from reference import revision  # noqa: E402

SEED = 23
FILL_BATCH = 60            # samples a write: the writer's batches are up to 100 when behind
PRUNE_EVERY_SAMPLES = 3600
BLOCK_DURATION = "18h"
READY_TIMEOUT_S = 300.0
QUERY_TIMEOUT_S = 600.0


# --- the samples --------------------------------------------------------------------------

def walk(series: int, seconds: int) -> Iterator[float]:
    """Series ``series``' values, one a second: a 3-decimal random walk of its own (seeded by the
    series, so it can be made a series at a time for Prometheus and a tick at a time for us)."""
    rng = random.Random(SEED * 1_000_003 + series)
    level = 100.0
    for _ in range(seconds):
        level = round(level + rng.uniform(-1, 1), 3)
        yield level


def first_ts(seconds: int, end: int) -> int:
    return end - seconds + 1


def fill_ours(folder: str, series: int, seconds: int, end: int) -> None:
    """Write the samples as the storage writer does (batches, compaction, roll-ups, pruning)."""
    from sse_dashboard import storage

    store = storage.open_store(folder, interval_s=1.0)
    history = store.history
    walks = [walk(i, seconds) for i in range(series)]
    names = ["gauges.s%d" % i for i in range(series)]
    start = first_ts(seconds, end)
    batch = []
    for t in range(seconds):
        batch.append((float(start + t), {name: next(w) for name, w in zip(names, walks)}))
        if len(batch) == FILL_BATCH or t == seconds - 1:
            history.write(batch)
            batch = []
        if (t + 1) % PRUNE_EVERY_SAMPLES == 0:
            history.prune()
    history.prune()
    store.close()


def write_prometheus_text(path: Path, series: int, seconds: int, end: int) -> None:
    start = first_ts(seconds, end)
    # (a label of its own: avg_over_time() drops the name, and the series must stay apart)
    write_openmetrics(path, (("gauges_s%d" % i, 'gauges_s%d{s="%d"}' % (i, i),
                              ((start + t, value) for t, value in enumerate(walk(i, seconds))))
                             for i in range(series)))


# --- Prometheus ---------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_prometheus(data: Path, config: str = "global:\n  scrape_interval: 1m\n",
                     default_blocks: bool = False) -> tuple[subprocess.Popen, int]:
    """Prometheus on ``data``, listening on loopback; returns once ready. By default it scrapes
    nothing (no ``scrape_configs``) and compacts nothing (min and max block duration 2 h), so
    nothing runs under the queries; ``default_blocks``: its own block durations."""
    config_file = data.parent / (data.name + ".yml")
    config_file.write_text(config, encoding="utf-8")
    port = free_port()
    output = open(data.parent / (data.name + ".log"), "w+", encoding="utf-8")  # (the child writes it)
    flags = [] if default_blocks else ["--storage.tsdb.min-block-duration=2h", "--storage.tsdb.max-block-duration=2h"]
    proc = subprocess.Popen([shutil.which("prometheus") or "prometheus", "--config.file=" + str(config_file),
                             "--storage.tsdb.path=" + str(data), "--web.listen-address=127.0.0.1:%d" % port,
                             "--storage.tsdb.retention.time=30d"] + flags,
                            stdout=output, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            output.seek(0)
            raise RuntimeError("prometheus exited (%s): %s" % (proc.returncode, output.read()[-2000:]))
        try:
            status, _ = get(port, "/-/ready", timeout_s=2)
            if status == 200:
                return proc, port
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("prometheus was not ready within %.0f s" % READY_TIMEOUT_S)


def prometheus_path(query: str, seconds: int, points: int) -> str:
    end = time.time()
    return "/api/v1/query_range?" + urllib.parse.urlencode(
        {"query": query, "start": "%.3f" % (end - seconds), "end": "%.3f" % end, "step": step_of(seconds, points)})


def min_avg_max(selector: str, step: str) -> str:
    """One query answering what ours does: each series' min, average and max a step (three series
    a series, told apart by an ``agg`` label)."""
    return " or ".join('label_replace(%s_over_time(%s[%ss]), "agg", "%s", "", "")' % (f, selector, step, f)
                       for f in ("min", "avg", "max"))


def step_of(seconds: int, points: int) -> str:
    return "%g" % (seconds / points)


# --- one query ----------------------------------------------------------------------------

def get(port: int, path: str, timeout_s: float = QUERY_TIMEOUT_S) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def timed(port: int, path: str) -> tuple[float, bytes]:
    started = time.perf_counter()
    status, body = get(port, path)
    elapsed = time.perf_counter() - started
    if status != 200:
        raise RuntimeError("GET %s: HTTP %d %s" % (path, status, body[:300]))
    return elapsed, body


def shape_of_ours(body: bytes) -> tuple[int, int]:
    """(series, points a series) of a history answer."""
    answer = json.loads(body)
    return len(answer.get("series", {})), len(answer.get("ts", []))


def shape_of_prometheus(body: bytes) -> tuple[int, int]:
    result = json.loads(body)["data"]["result"]
    return len(result), max((len(r["values"]) for r in result), default=0)


def percentile(values: list[float], q: float) -> float:
    """Nearest rank: the smallest value with at least ``q`` of them at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


class Query:
    """One way to ask one side for the data set's window."""

    def __init__(self, side: str, port: int, path_of, shape_of) -> None:
        self.side, self.port, self._path_of, self._shape_of = side, port, path_of, shape_of
        self.times: list[float] = []
        self.size = 0
        self.shape = (0, 0)

    def run(self, keep: bool = True) -> None:
        elapsed, body = timed(self.port, self._path_of())
        if keep:
            self.times.append(elapsed)
        self.size, self.shape = len(body), self._shape_of(body)

    def summary(self) -> dict:
        return {"side": self.side, "p50_s": percentile(self.times, 0.5), "p90_s": percentile(self.times, 0.9),
                "runs": len(self.times), "answer_bytes": self.size, "series": self.shape[0],
                "points": self.shape[1]}


def compare(queries: list[Query], repeat: int) -> list[dict]:
    """One warm-up each, then ``repeat`` rounds, the sides taking turns within a round."""
    for query in queries:
        query.run(keep=False)
    for _ in range(repeat):
        for query in queries:
            query.run()
    return [query.summary() for query in queries]


# --- a data set, both sides ---------------------------------------------------------------

def measure_set(label: str, series: int, seconds: int, points: int, repeat: int, names: bool,
                work: Path) -> dict:
    """Fill both sides with the same samples, serve them, time the queries."""
    end = int(time.time())
    folder, text, blocks = work / (label + "-ours"), work / (label + ".om"), work / (label + "-prometheus")
    folder.mkdir()
    started = time.monotonic()
    write_prometheus_text(text, series, seconds, end)
    written = time.monotonic() - started
    started = time.monotonic()
    promtool = subprocess.Popen(promtool_command(text, blocks, BLOCK_DURATION), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
    promtool_done: dict = {}

    def wait_for_promtool() -> None:
        promtool_done["stderr"] = promtool.stderr.read()
        promtool.wait()
        promtool_done["s"] = time.monotonic() - started

    waiter = threading.Thread(target=wait_for_promtool)
    waiter.start()
    fill_ours(str(folder), series, seconds, end)   # meanwhile: promtool has its own process
    filled = time.monotonic() - started
    waiter.join()
    built = promtool_done["s"]
    if promtool.returncode != 0:
        raise RuntimeError("promtool failed: %s" % promtool_done["stderr"][-2000:].decode(errors="replace"))
    text_bytes = text.stat().st_size
    text.unlink()  # up to a few hundred MB
    ours_proc, ours_port = serve(ROOT, str(folder))
    prom_proc, prom_port = serve_prometheus(blocks)
    selector = '{__name__=~"gauges_s.*"}'
    step = step_of(seconds, points)
    wanted = "&names=" + ",".join("gauges.s%d" % i for i in range(series)) if names else ""
    ours_path = "/api/metrics/history?seconds=%d&points=%d%s" % (seconds, points, wanted)
    try:
        queries = [
            Query("dashboard", ours_port, lambda: ours_path, shape_of_ours),
            Query("Prometheus query_range", prom_port, lambda: prometheus_path(selector, seconds, points),
                  shape_of_prometheus),
            Query("Prometheus avg_over_time", prom_port,
                  lambda: prometheus_path("avg_over_time(%s[%ss])" % (selector, step), seconds, points),
                  shape_of_prometheus),
            Query("Prometheus min, avg and max", prom_port,
                  lambda: prometheus_path(min_avg_max(selector, step), seconds, points), shape_of_prometheus),
        ]
        results = compare(queries, repeat)
    finally:
        for proc in (ours_proc, prom_proc):
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return {"label": label, "series": series, "seconds": seconds, "points": points, "repeat": repeat,
            "ours_path": ours_path, "prometheus_query": selector, "step": step, "results": results,
            "openmetrics_bytes": text_bytes, "openmetrics_s": written, "fill_s": filled, "promtool_s": built}


def measure(series: int = 1000, seconds: int = 3600, long_series: int = 10, long_seconds: int = 7 * 86400,
            points: int = 600, repeat: int = 10) -> list[dict]:
    """Both data sets, one after the other (each side's servers stop before the next set)."""
    with tempfile.TemporaryDirectory() as tmp:
        return [measure_set("recent", series, seconds, points, repeat, False, Path(tmp)),
                measure_set("long", long_series, seconds=long_seconds, points=points, repeat=repeat, names=True,
                            work=Path(tmp))]


# --- the report ---------------------------------------------------------------------------

def describe(s: dict) -> str:
    return "%s series over %s" % (format(s["series"], ","), duration(s["seconds"]))


def duration(seconds: float) -> str:
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return "%d %s" % (n, unit if unit != "days" or n != 1 else "day")
    return "%d s" % seconds


def table(sets: list[dict]) -> list[str]:
    lines = ["| data set | side | p50 | p90 | answer | series x points | p50 / Prometheus query_range |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for s in sets:
        by_side = {r["side"]: r for r in s["results"]}
        prom = by_side["Prometheus query_range"]["p50_s"]
        for r in s["results"]:
            lines.append("| %s at %d points | %s | %s | %s | %.2f MB | %d x %d | %s |" % (
                describe(s), s["points"], r["side"], ms(r["p50_s"]), ms(r["p90_s"]), r["answer_bytes"] / 1e6,
                r["series"], r["points"], "%.1f" % (r["p50_s"] / prom) if prom else "-"))
    return lines


def ms(seconds: float) -> str:
    return "%.0f ms" % (seconds * 1000) if seconds >= 0.1 else "%.1f ms" % (seconds * 1000)


def report(sets: list[dict]) -> str:
    prometheus_version = subprocess.run(["prometheus", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    lines = ["# Reading history: the dashboard against Prometheus on the same samples", "",
             "`python bench/history_query.py` on %s (%s, Python %s, commit %s, %s): %d timed runs a query after one "
             "warm-up, the sides taking turns; latency from the request to the answer's last byte." % (
                 time.strftime("%Y-%m-%d"), sys.platform, sys.version.split()[0], revision(), prometheus_version,
                 sets[0]["repeat"]), ""]
    lines += table(sets)
    lines += ["", "The queries:"]
    for s in sets:
        lines.append("- %s: ours `GET %s`; Prometheus `GET /api/v1/query_range?query=%s&step=%s` over the same "
                     "window, `avg_over_time(%s[%ss])` at that step, and the answer ours gives (min, avg and max "
                     "a bucket) as one query, `%s`." % (
                         describe(s), s["ours_path"] if len(s["ours_path"]) < 90 else s["ours_path"][:80] + "...",
                         s["prometheus_query"], s["step"], s["prometheus_query"], s["step"],
                         min_avg_max(s["prometheus_query"], s["step"])))
    lines += ["", "Preparing them (not timed above): " + "; ".join(
        "%s: OpenMetrics %.0f MB in %.0f s, then our fill took %.0f s and promtool's blocks %.0f s, side by side" % (
            describe(s), s["openmetrics_bytes"] / 1e6, s["openmetrics_s"], s["fill_s"], s["promtool_s"])
        for s in sets) + "."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=3600)
    parser.add_argument("--long-series", type=int, default=10)
    parser.add_argument("--long-seconds", type=int, default=7 * 86400)
    parser.add_argument("--points", type=int, default=600)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the numbers as JSON")
    args = parser.parse_args()
    sets = measure(args.series, args.seconds, args.long_series, args.long_seconds, args.points, args.repeat)
    text = report(sets)
    (ROOT / "bench" / "RESULTS-history-query.md").write_text(text, encoding="utf-8")
    if args.json:
        Path(args.json).write_text(json.dumps(sets, indent=1), encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
