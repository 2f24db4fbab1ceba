"""What durable counters, gauges and pushes cost (#21 item 1): posts a second answered by a
dashboard that commits every counter, gauge and push before answering, against the same
load on a reference checkout that did not (the commit before), in the same run.

Run: python bench/durability.py [--reference REV] [--seconds S] [--rounds N]
(writes bench/RESULTS-durability.md). Each server is a real ``sse_server.py`` process with
a data folder in a temporary directory; the load comes from this process, CLIENTS threads
on keep-alive connections, so the server's per-request cost is all that is measured.
Rounds alternate reference and new, so a drift of the machine hits both.
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


def posts_per_second(port: int, load: tuple, seconds: float) -> float:
    method, path, body_of, content_type = load
    counts = [0] * CLIENTS
    deadline = time.monotonic() + seconds

    def client(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        i = 0
        while time.monotonic() < deadline:
            conn.request(method, path, body=body_of(i), headers={"Content-Type": content_type})
            response = conn.getresponse()
            response.read()
            assert response.status < 300, response.status
            i += 1
        counts[k] = i
        conn.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / seconds


def measure(checkout: Path, seconds: float) -> dict:
    with tempfile.TemporaryDirectory() as data_dir:
        proc, port = start_server(checkout, data_dir)
        try:
            return {name: posts_per_second(port, load, seconds) for name, load in LOADS.items()}
        finally:
            proc.terminate()
            proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", default=REFERENCE, help="the git revision to compare with (default %s)" % REFERENCE)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        reference = Path(tmp) / "reference"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(reference), args.reference],
                       check=True)
        try:
            runs: dict[str, list] = {"reference": [], "new": []}
            for _ in range(args.rounds):
                runs["reference"].append(measure(reference, args.seconds))
                runs["new"].append(measure(ROOT, args.seconds))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(reference)], check=False)
    lines = [
        "# Durable counters, gauges and pushes: what they cost",
        "",
        "`python bench/durability.py` on %s (%s, Python %s, %d keep-alive clients, %d rounds of %.0f s each, "
        "alternating; a data folder on local disk, SQLite WAL with synchronous=NORMAL)." % (
            time.strftime("%Y-%m-%d"), sys.platform, sys.version.split()[0], CLIENTS, args.rounds, args.seconds),
        "Reference: %s, where counters, gauges and pushes reached the disk with the next sample; new: this "
        "checkout, where each is committed before its answer." % args.reference,
        "",
        "| writes answered per second (median of rounds) | reference | new | new / reference |",
        "| --- | --- | --- | --- |",
    ]
    for name in LOADS:
        ref = statistics.median(r[name] for r in runs["reference"])
        new = statistics.median(r[name] for r in runs["new"])
        lines.append("| %s | %.0f | %.0f | %.2f |" % (name, ref, new, new / ref))
    lines += ["", "Every round: " + "; ".join(
        "%s %s" % (side, ", ".join("%.0f" % r[name] for r in runs[side] for name in LOADS)) for side in runs)]
    out = ROOT / "bench" / "RESULTS-durability.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
