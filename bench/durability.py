"""What durable counters, gauges and pushes cost (#21 item 1): writes a second answered by a
dashboard that commits every counter, gauge and push before answering, against the same
load on a reference checkout that did not (the commit before), in the same run.

Run: python bench/durability.py [--reference REV] [--seconds S] [--rounds N]
(writes bench/RESULTS-durability.md). Each server is a real ``sse_server.py`` process; the
load comes from this process, CLIENTS threads. Three comparisons:
- before/after, a new connection per request (as urllib and curl do): reference and new,
  both with a data folder;
- the commit's own cost at a high rate: new, keep-alive clients, a data folder against
  ``--data-dir :memory:`` (no journal: the one difference on these paths);
- keep-alive clients, reference and new: the reference answered a keep-alive client at most
  ~25 times a second (Nagle's algorithm against the client's delayed ACK; fixed with
  TCP_NODELAY in the same change).
Rounds alternate the sides, so a drift of the machine hits all of them.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from reference import reference_checkout  # noqa: E402
REFERENCE = "3411770"  # main before writes were committed before their answer
CLIENTS = 4

LOADS = {
    "POST /api/metrics (a counter and a gauge)": (
        "POST", "/api/metrics", lambda i: json.dumps({"counters": {"jobs": 1}, "gauges": {"depth": i % 100}}).encode(),
        "application/json"),
    "PUT /metrics/job/JOB (a push of 3 samples)": (
        "PUT", "/metrics/job/bench", lambda i: b"# TYPE done counter\ndone %d\nrows %d\nlast 1.5\n" % (i, i),
        "text/plain"),
    "POST /api/events (already durable before)": (
        "POST", "/api/events", lambda i: json.dumps({"message": "benchmark event %d" % i}).encode(), "application/json"),
}


def start_server(checkout: Path, data_dir: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, str(checkout / "sse_server.py"), "--port", "0", "--data-dir", data_dir,
                             "--post-rate", "0", "--no-psutil"], cwd=str(checkout),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 20
    for line in proc.stdout:
        match = re.search(r"dashboard at http://127\.0\.0\.1:(\d+)/", line)
        if match:
            threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep the pipe drained
            return proc, int(match.group(1))
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise RuntimeError("the server in %s did not start" % checkout)


def posts_per_second(port: int, load: tuple, seconds: float, keep_alive: bool) -> float:
    method, path, body_of, content_type = load
    counts = [0] * CLIENTS
    deadline = time.monotonic() + seconds

    def client(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        i = 0
        while time.monotonic() < deadline:
            headers = {"Content-Type": content_type}
            if not keep_alive:
                headers["Connection"] = "close"
            conn.request(method, path, body=body_of(i), headers=headers)
            response = conn.getresponse()
            response.read()
            assert response.status < 300, response.status
            if not keep_alive:
                conn.close()
            i += 1
        counts[k] = i
        conn.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / seconds


def measure(checkout: Path, seconds: float, keep_alive: bool, memory: bool = False) -> dict:
    with tempfile.TemporaryDirectory() as data_dir:
        proc, port = start_server(checkout, ":memory:" if memory else data_dir)
        try:
            return {name: posts_per_second(port, load, seconds, keep_alive) for name, load in LOADS.items()}
        finally:
            proc.terminate()
            proc.wait(10)


def table(title: str, left: str, right: str, runs: dict) -> list:
    lines = ["", "### " + title, "", "| writes answered per second (median of rounds) | %s | %s | %s / %s |"
             % (left, right, right, left), "| --- | --- | --- | --- |"]
    for name in LOADS:
        a = statistics.median(r[name] for r in runs[left])
        b = statistics.median(r[name] for r in runs[right])
        lines.append("| %s | %.0f | %.0f | %.2f |" % (name, a, b, b / a))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", default=REFERENCE, help="the git revision to compare with (default %s)" % REFERENCE)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sides = {  # name -> (checkout, keep-alive, memory only)
        "reference, new connections": ("ref", False, False),
        "new, new connections": ("new", False, False),
        "new, keep-alive, memory only": ("new", True, True),
        "new, keep-alive": ("new", True, False),
        "reference, keep-alive": ("ref", True, False),
    }
    runs: dict[str, list] = {side: [] for side in sides}
    with reference_checkout(args.reference) as reference:
        for _ in range(args.rounds):
            for side, (which, keep_alive, memory) in sides.items():
                runs[side].append(measure(reference if which == "ref" else ROOT, args.seconds, keep_alive, memory))
    lines = [
        "# Durable counters, gauges and pushes: what they cost",
        "",
        "`python bench/durability.py` on %s (%s, Python %s, %d clients, %d rounds of %.0f s each, the sides "
        "alternating; a data folder on local disk, SQLite WAL with synchronous=NORMAL)." % (
            time.strftime("%Y-%m-%d"), sys.platform, sys.version.split()[0], CLIENTS, args.rounds, args.seconds),
        "Reference: %s, where counters, gauges and pushes reached the disk with the next sample; new: this "
        "checkout, where each is committed before its answer." % args.reference,
    ]
    lines += table("Before and after: a new connection per request", "reference, new connections",
                   "new, new connections", runs)
    lines += table("The commit's own cost, at a keep-alive client's rate", "new, keep-alive, memory only",
                   "new, keep-alive", runs)
    lines += table("Keep-alive clients: the 40 ms Nagle wait, gone", "reference, keep-alive", "new, keep-alive", runs)
    lines += ["", "Every round, in the order of the loads above:", ""] + [
        "- %s: %s" % (side, "; ".join(", ".join("%.0f" % r[name] for name in LOADS) for r in runs[side]))
        for side in runs]
    out = ROOT / "bench" / "RESULTS-durability.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
