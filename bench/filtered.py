"""Fan-out with narrowed streams: 1,000 streams with mixed filters against 1,000 plain ones.

    python bench/filtered.py            # two runs of a 30 s window, writes bench/RESULTS-filtered.md
    python bench/filtered.py --quick    # 10 s windows

Both runs: our server alone (python sse_server.py, memory only), N streams opened by two
load-client processes (bench/loadclient.py), events posted at --events-per-s with types, levels
and sources in turn. "plain" opens every stream on /api/metrics/stream; "filtered" opens them
on five paths in turn: four narrowed (by type glob, by level, by source, events only) and one
plain. Measured: the server's CPU during the window, each event's fan-out time (arrival at a
client - the event's ts), and whether every stream got exactly the events its filter matches.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import PY, ROOT, WORKERS, Server, compile_ours, pct, raise_fd_limit  # noqa: E402

MIX = [("record.created", "info", "admin"), ("deploy", "info", "ci"), (None, "warning", "app"),
       ("record.updated", "error", "admin"), (None, "info", "backup")]
FILTERED_PATHS = [
    "/api/metrics/stream?types=record.*",
    "/api/metrics/stream?levels=warning,error",
    "/api/metrics/stream?sources=backup,ci",
    "/api/metrics/stream?types=deploy&metrics=0",
    "/api/metrics/stream",
]


def wants(path: str, event: dict) -> bool:
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
    for key, field in (("levels", "level"), ("sources", "source")):
        if key in query and event[field] not in query[key][0].split(","):
            return False
    if "types" in query:
        return any(fnmatch.fnmatchcase(event["type"] or "log", p) for p in query["types"][0].split(","))
    return True


def post_mix(port: int, rate: float, start: float, seconds: float, posted: list) -> None:
    time.sleep(max(0.0, start - time.time()))
    n = 0
    while time.time() < start + seconds:
        time.sleep(max(0.0, start + n / rate - time.time()))
        kind, level, source = MIX[n % len(MIX)]
        body = {"message": "bench %d" % n, "level": level, "source": source}
        if kind:
            body["type"] = kind
        req = urllib.request.Request("http://127.0.0.1:%d/api/events" % port, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                posted.append(json.load(r))
        except OSError:
            pass
        n += 1


def run(paths: list, n: int, args: argparse.Namespace) -> dict:
    server = Server("sse-dashboard")
    rate = 500.0
    start_at = time.time() + 0.5
    window_start = start_at + n / rate + 3.0
    tmp = tempfile.mkdtemp()
    outs, workers = [], []
    for i in range(WORKERS):
        out = os.path.join(tmp, "w%d.json" % i)
        outs.append(out)
        # Worker i goes on where worker i - 1 stops: together they open the paths in turn.
        offset = i * (n // WORKERS) % len(paths)
        turned = paths[offset:] + paths[:offset]
        workers.append(subprocess.Popen([
            PY, str(ROOT / "bench" / "loadclient.py"), "--port", str(server.port), "--source", "127.0.0.%d" % (20 + i),
            "--conns", str(n // WORKERS), "--rate", str(rate / WORKERS), "--start-at", str(start_at),
            "--window-start", str(window_start), "--window", str(args.window), "--out", out]
            + [arg for p in turned for arg in ("--path", p)]))
    posted: list = []
    poster = threading.Thread(target=post_mix, args=(server.port, args.events_per_s, window_start + 0.5,
                                                     args.window - 2.0, posted))
    poster.start()
    time.sleep(max(0.0, window_start - time.time()))
    cpu0, t0 = server.cpu_s(), time.monotonic()
    time.sleep(args.window)
    cpu = 100.0 * (server.cpu_s() - cpu0) / (time.monotonic() - t0)
    for w in workers:
        w.wait(args.window + 60)
    poster.join()
    server.stop()
    results = [json.load(open(o)) for o in outs]
    exact, wrong = 0, 0
    by_path: dict = {}
    for r in results:
        for path, got in r["by_path"].items():
            entry = by_path.setdefault(path, {"streams": 0, "events": {}})
            entry["streams"] += got["streams"]
            for event_id, count in got["events"].items():
                entry["events"][int(event_id)] = entry["events"].get(int(event_id), 0) + count
    deliveries = 0
    for path, got in by_path.items():
        for event in posted:
            expected = got["streams"] if wants(path, event) else 0
            received = got["events"].get(event["id"], 0)
            deliveries += expected
            if received == expected:
                exact += 1
            else:
                wrong += 1
    event_ms = [x for r in results for x in r["event_ms"]]
    return {"n": n, "connected": sum(r["connected"] for r in results), "cpu_percent": cpu,
            "events_posted": len(posted), "deliveries_expected": deliveries, "deliveries": len(event_ms),
            "exact": exact, "wrong": wrong, "event_p50": pct(event_ms, 50), "event_p99": pct(event_ms, 99),
            "event_max": pct(event_ms, 100),
            "client_loop_delay_p99": pct([x for r in results for x in r["loop_delay_ms"]], 99)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--events-per-s", type=float, default=5.0)
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("--quick", action="store_true", help="10 s windows")
    parser.add_argument("--out", default=str(ROOT / "bench" / "RESULTS-filtered.md"))
    args = parser.parse_args()
    if args.quick:
        args.window = 10.0
    raise_fd_limit()
    compile_ours()
    # distinct: every stream its own filter, so no two share one encoding of a step's frames.
    distinct = ["/api/metrics/stream?sources=app,admin,s%d" % i for i in range(args.n)]
    rows = [("plain", run(["/api/metrics/stream"], args.n, args)), ("filtered", run(FILTERED_PATHS, args.n, args)),
            ("distinct", run(distinct, args.n, args))]
    lines = [
        "# Fan-out with narrowed streams",
        "",
        "`python bench/filtered.py%s` on %s, %d cores, Python %s; %d streams, %g events/s, %g s window."
        % (" --quick" if args.quick else "", time.strftime("%Y-%m-%d"), os.cpu_count(), sys.version.split()[0],
           args.n, args.events_per_s, args.window),
        "",
        "filtered: the streams open, in turn, `" + "`, `".join(FILTERED_PATHS) + "`. distinct: each stream "
        "has a filter of its own (`?sources=app,admin,sN`), the worst case for sharing.",
        "",
        "| run | streams | server CPU | events posted | deliveries (expected) | streams x events exact | "
        "fan-out p50 | p99 | max | client loop delay p99 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in rows:
        lines.append("| %s | %d | %.1f %% | %d | %d (%d) | %d of %d | %.1f ms | %.1f ms | %.1f ms | %.1f ms |" % (
            name, r["connected"], r["cpu_percent"], r["events_posted"], r["deliveries"], r["deliveries_expected"],
            r["exact"], r["exact"] + r["wrong"], r["event_p50"] or 0, r["event_p99"] or 0, r["event_max"] or 0,
            r["client_loop_delay_p99"] or 0))
    plain = rows[0][1]
    lines.append("")
    for name, r in rows[1:]:
        lines.append("Ratios, %s / plain in the same run: CPU %.2f, fan-out p99 %.2f." % (
            name, r["cpu_percent"] / plain["cpu_percent"] if plain["cpu_percent"] else float("nan"),
            (r["event_p99"] or 0) / plain["event_p99"] if plain["event_p99"] else float("nan")))
    lines += ["", "How to read it: \"streams x events exact\" counts (path, event) pairs where the streams on "
              "that path together received the event exactly as many times as their filter says (once each, or "
              "never); all must be exact. A narrowed stream is sent fewer frames than a plain one (and the "
              "metrics=0 ones no snapshots), so \"filtered\" costs less than \"plain\"; \"distinct\" is the "
              "cost of matching: every stream checks every event against a filter of its own.", ""]
    text = "\n".join(lines)
    Path(args.out).write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
