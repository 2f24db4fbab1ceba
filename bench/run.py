"""Fan-out benchmark: sse-dashboard against sse-starlette on uvicorn and against nginx + nchan
(the floor: a C pub/sub server), same machine, same run.

    pip install -e ".[bench]"
    apt-get install -y nginx-light libnginx-mod-nchan
    python bench/run.py            # the full run (about 25 minutes), writes bench/RESULTS.md
    python bench/run.py --quick    # about 3 minutes

For each N the servers run one after the other; each gets N stream connections opened at
--rate per second by load-client processes (bench/loadclient.py), then a measured window. The
server's CPU time and peak RSS come from the OS (psutil). Also measured: idle cost, time from
start to the first served byte, and POST /api/events throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import py_compile
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
WORKERS = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


MB = 1e6  # the targets say MB: 10^6 bytes, the stricter reading


def compile_ours() -> None:
    """Byte-compile our modules, as pip did the reference's when it installed them.

    Both servers then start from cached bytecode, as they would on a user's
    machine. Without this, PYTHONDONTWRITEBYTECODE=1 (set in some sandboxes and
    CI images) makes only our server compile its source at every start.
    """
    for path in ROOT.glob("*.py"):
        py_compile.compile(str(path), doraise=True)


def raise_fd_limit(wanted: int = 65536) -> None:
    """Room for 20,000 streams on each side (children inherit it). Above the hard limit only
    root may go; otherwise the soft limit goes up to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), max(hard, wanted)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


SERVERS = {
    "sse-dashboard": lambda port, interval: [PY, str(ROOT / "sse_server.py"), "--port", str(port),
                                             "--interval", str(interval), "--data-dir", ":memory:",
                                             "--max-clients", "100000", "--post-rate", "0"],
    "sse-starlette": lambda port, interval: [PY, str(ROOT / "bench" / "reference_server.py"), "--port", str(port),
                                             "--interval", str(interval)],
    # The feed is a Python publisher; only the nginx processes are measured (Server.processes).
    "nginx+nchan": lambda port, interval: [PY, str(ROOT / "bench" / "nchan_server.py"), "--port", str(port),
                                           "--interval", str(interval)],
}


class Server:
    def __init__(self, name: str, interval: float = 1.0) -> None:
        self.name = name
        self.port = free_port()
        self.started = time.monotonic()
        self.proc = subprocess.Popen(SERVERS[name](self.port, interval), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, cwd=str(ROOT))
        self.ps = psutil.Process(self.proc.pid)
        self.first_byte_s = self._wait_first_byte()

    def _wait_first_byte(self) -> float:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/api/metrics" % self.port, timeout=1) as r:
                    r.read(1)
                    return time.monotonic() - self.started
            except OSError:
                time.sleep(0.005)
        raise RuntimeError("%s did not start" % self.name)

    def processes(self) -> list:
        """The processes doing the fan-out: the server, or for nchan its nginx master and worker."""
        if self.name != "nginx+nchan":
            return [self.ps]
        return [p for p in self.ps.children(recursive=True) if p.name() == "nginx"]

    def cpu_s(self) -> float:
        total = 0.0
        for proc in self.processes():
            t = proc.cpu_times()
            total += t.user + t.system
        return total

    def threads(self) -> int:
        return sum(proc.num_threads() for proc in self.processes())

    def rss(self) -> int:
        return sum(proc.memory_info().rss for proc in self.processes())

    def peak_rss(self) -> int:
        total = 0
        for proc in self.processes():
            try:
                with open("/proc/%d/status" % proc.pid) as f:
                    total += next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
            except (OSError, StopIteration):
                total += proc.memory_info().rss
        return total

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def post_events(port: int, rate: float, start: float, seconds: float, posted: list) -> None:
    time.sleep(max(0.0, start - time.time()))
    body = json.dumps({"message": "bench event", "level": "info"}).encode()
    n = 0
    while time.time() < start + seconds:
        due = start + n / rate
        time.sleep(max(0.0, due - time.time()))
        req = urllib.request.Request("http://127.0.0.1:%d/api/events" % port, data=body,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                posted.append(json.load(r)["id"])
        except OSError:
            pass
        n += 1


def pct(values: list, p: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1))))]


def measure(name: str, n: int, args: argparse.Namespace, events_per_s: float = 0.0) -> dict:
    server = Server(name)
    ramp_s = n / args.rate
    start_at = time.time() + 0.5
    window_start = start_at + ramp_s + 3.0
    outs = []
    workers = []
    per = [n // WORKERS + (1 if i < n % WORKERS else 0) for i in range(WORKERS)]
    tmp = tempfile.mkdtemp()
    for i, conns in enumerate(per):
        out = os.path.join(tmp, "w%d.json" % i)
        outs.append(out)
        workers.append(subprocess.Popen([
            PY, str(ROOT / "bench" / "loadclient.py"), "--port", str(server.port),
            "--source", "127.0.0.%d" % (10 + i + 2 * args.round), "--conns", str(conns),
            "--rate", str(args.rate / WORKERS), "--start-at", str(start_at),
            "--window-start", str(window_start), "--window", str(args.window), "--out", out]))
    posted: list = []
    poster = None
    if events_per_s:
        poster = threading.Thread(target=post_events, args=(server.port, events_per_s, window_start + 0.5,
                                                            args.window - 1.5, posted))
        poster.start()
    time.sleep(max(0.0, window_start - time.time()))
    cpu0 = server.cpu_s()
    t0 = time.monotonic()
    time.sleep(args.window)
    cpu1 = server.cpu_s()
    threads = server.threads()
    elapsed = time.monotonic() - t0
    for w in workers:
        w.wait(args.window + ramp_s + 60)
    if poster:
        poster.join()
    peak = server.peak_rss()
    dropped = None
    if name == "sse-dashboard":  # the streams it dropped itself (too slow to read)
        with urllib.request.urlopen("http://127.0.0.1:%d/api/health" % server.port, timeout=10) as r:
            dropped = json.load(r).get("dropped")
        if dropped is None:
            with urllib.request.urlopen("http://127.0.0.1:%d/api/metrics" % server.port, timeout=10) as r:
                dropped = json.load(r)["server"]["dropped"]
    server.stop()
    results = [json.load(open(o)) for o in outs]
    connected = sum(r["connected"] for r in results)
    # The samples taken inside the window (by their own ts, with 2 s left for delivery), and
    # every frame of those samples whenever it arrived: no edge effects from the window.
    window_seqs = set()
    for r in results:
        for seq, entry in r["by_seq"].items():
            if window_start <= entry[0] <= window_start + args.window - 2.0:
                window_seqs.add(int(seq))
    if window_seqs:  # a tick nobody got counts as missed too
        window_seqs = set(range(min(window_seqs), max(window_seqs) + 1))
    lags = [x for r in results for seq in window_seqs for x in r["by_seq"].get(str(seq), [None])[1:]]
    ticks = len(window_seqs)
    frames = len(lags)
    received: dict = {}
    for r in results:
        for event_id, count in r["event_ids"].items():
            received[int(event_id)] = received.get(int(event_id), 0) + count
    lost = sum(max(0, connected - received.get(i, 0)) for i in posted) if posted else 0
    event_ms = [x for r in results for x in r["event_ms"]]
    loop = [x for r in results for x in r["loop_delay_ms"]]
    return {
        "server": name, "n": n, "events_per_s": events_per_s,
        "connected": connected, "failed": sum(r["failed"] for r in results),
        "closed_early": sum(r["closed_early"] for r in results), "server_dropped": dropped,
        "delivery": frames / (connected * ticks) if connected and ticks else 0.0,
        "missed": connected * ticks - frames,
        "lag": {p: pct(lags, p) for p in (50, 95, 99, 100)},
        "first_frame_p99": pct([x for r in results for x in r["first_frame_ms"]], 99),
        "event": {p: pct(event_ms, p) for p in (50, 99)}, "events_posted": len(posted), "events_lost": lost,
        "cpu_percent": 100.0 * (cpu1 - cpu0) / elapsed, "peak_rss": peak, "threads": threads,
        "client_loop_delay_p99": pct(loop, 99), "client_loop_delay_max": pct(loop, 100),
    }


def idle_cost(name: str, seconds: float) -> dict:
    server = Server(name)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"GET /api/metrics/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        time.sleep(2)
        cpu0, t0 = server.cpu_s(), time.monotonic()
        deadline = time.monotonic() + seconds
        sock.settimeout(1)
        while time.monotonic() < deadline:
            try:
                sock.recv(65536)
            except socket.timeout:
                pass
        cpu = 100.0 * (server.cpu_s() - cpu0) / (time.monotonic() - t0)
    rss = server.rss()
    threads = server.threads()
    first_byte = server.first_byte_s
    server.stop()
    return {"cpu_percent": cpu, "rss": rss, "first_byte_ms": first_byte * 1000, "threads": threads}


def post_throughput(name: str, seconds: float = 5.0, clients: int = 4) -> float:
    server = Server(name)
    body = json.dumps({"message": "bench event"}).encode()
    counts = [0] * clients
    deadline = time.monotonic() + seconds

    def run(i: int) -> None:
        while time.monotonic() < deadline:
            req = urllib.request.Request("http://127.0.0.1:%d/api/events" % server.port, data=body,
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=5) as r:
                r.read()
            counts[i] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    server.stop()
    return sum(counts) / seconds


def fmt_ms(v: float | None) -> str:
    return "-" if v is None else ("%.0f" % v if v >= 10 else "%.1f" % v)


def ratio(a: float | None, b: float | None) -> str:
    return "-" if not a or not b else "%.2f" % (a / b)


def write_results(rows: list, extra: dict, args: argparse.Namespace, path: Path) -> str:
    lines = [
        "# Fan-out benchmark: sse-dashboard vs sse-starlette and nginx + nchan",
        "",
        "`python bench/run.py%s` on %s: %d cores, Python %s, %s; interval 1 s, %g s windows, connections "
        "opened at %g/s by %d load-client processes (asyncio%s). The reference is sse-starlette %s on uvicorn %s "
        "(uvloop, httptools) with a queue per client (`bench/reference_server.py`); the floor is nginx + nchan "
        "(`bench/nchan_server.py`: only its nginx processes are measured, not the Python feed)." % (
            " --quick" if args.quick else "", time.strftime("%Y-%m-%d"), os.cpu_count(), sys.version.split()[0],
            sys.platform, args.window, args.rate, WORKERS, ", uvloop" if _has("uvloop") else "",
            _version("sse-starlette"), _version("uvicorn")),
        "",
        "Lag is arrival time minus the snapshot's `ts`, so it includes the load client's own delay "
        "(its event-loop delay is shown beside it: both share the same 2 cores). MB are 10^6 bytes. Both servers "
        "start from compiled bytecode (`compile_ours()`), as pip leaves the reference.",
        "",
        "| N | events/s | server | connected | delivered | lag p50 / p95 / p99 / max (ms) | event fan-out p50 / p99 (ms) "
        "| events lost | CPU (% of a core) | peak RSS (MB) | threads | client loop delay p99 (ms) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append("| %d | %g | %s | %d/%d | %.2f %% | %s / %s / %s / %s | %s | %s | %.1f | %.0f | %d | %s |" % (
            r["n"], r["events_per_s"], r["server"], r["connected"], r["n"], 100 * r["delivery"],
            fmt_ms(r["lag"][50]), fmt_ms(r["lag"][95]), fmt_ms(r["lag"][99]), fmt_ms(r["lag"][100]),
            "%s / %s" % (fmt_ms(r["event"][50]), fmt_ms(r["event"][99])) if r["events_per_s"] else "-",
            r["events_lost"] if r["events_per_s"] else "-", r["cpu_percent"], r["peak_rss"] / MB, r["threads"],
            fmt_ms(r["client_loop_delay_p99"])))
    lines += ["", "Ratios, ours / sse-starlette and ours / nchan (issue #13's targets: N = 1,000 and 5,000: CPU ≤ 2× "
              "nchan and ≤ ⅓ sse-starlette, lag p99 ≤ 1.3× nchan, peak RSS ≤ ½ sse-starlette; 1,000 with 5 events/s: "
              "CPU and event p99 ≤ ½ sse-starlette; 10,000 and 20,000: lag p99 ≤ 1.5× nchan):", "",
              "| N | events/s | lag p99 / starlette | lag p99 / nchan | event p99 / starlette | CPU / starlette "
              "| CPU / nchan | peak RSS / starlette |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    by = {(r["server"], r["n"], r["events_per_s"]): r for r in rows}
    for (server, n, eps), ours in by.items():
        if server != "sse-dashboard":
            continue
        ref = by.get(("sse-starlette", n, eps), {})
        floor = by.get(("nginx+nchan", n, eps), {})

        def of(row: dict, *keys: Any) -> Any:
            for key in keys:
                row = row.get(key) if isinstance(row, dict) else None
            return row

        lines.append("| %d | %g | %s | %s | %s | %s | %s | %s |" % (
            n, eps, ratio(ours["lag"][99], of(ref, "lag", 99)), ratio(ours["lag"][99], of(floor, "lag", 99)),
            ratio(ours["event"][99], of(ref, "event", 99)) if eps else "-",
            ratio(ours["cpu_percent"], of(ref, "cpu_percent")), ratio(ours["cpu_percent"], of(floor, "cpu_percent")),
            ratio(ours["peak_rss"], of(ref, "peak_rss"))))
    lines += ["", "Idle (1 client, %g s), start to first byte, and POST /api/events throughput (4 clients, 5 s):" %
              args.idle, "", "| server | idle CPU (% of a core) | idle RSS (MB) | idle threads | start to first byte (ms) "
              "| POSTs/s |", "| --- | --- | --- | --- | --- | --- |"]
    for name, e in extra.items():
        lines.append("| %s | %.2f | %.1f | %d | %.0f | %.0f |" % (name, e["cpu_percent"], e["rss"] / MB, e["threads"],
                                                                e["first_byte_ms"], e["posts_per_s"]))
    text = "\n".join(lines) + "\n"
    path.write_text(text, encoding="utf-8")
    return text


def _has(module: str) -> bool:
    try:
        __import__(module)
        return True
    except ImportError:
        return False


def _version(dist: str) -> str:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:
        return "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="N = 100, 1000, 3000 with 8 s windows (about 2 minutes)")
    parser.add_argument("--n", type=int, nargs="*", help="only these N")
    parser.add_argument("--servers", nargs="*", default=list(SERVERS), choices=list(SERVERS))
    parser.add_argument("--rate", type=float, default=500.0, help="connections opened per second")
    parser.add_argument("--window", type=float, default=None)
    parser.add_argument("--out", default=str(ROOT / "bench" / "RESULTS.md"))
    args = parser.parse_args()
    raise_fd_limit()
    compile_ours()
    sizes = args.n or ([100, 1000, 3000] if args.quick else [100, 1000, 3000, 5000, 10000, 20000])
    args.window = args.window or (8.0 if args.quick else 30.0)
    args.idle = 5.0 if args.quick else 60.0
    rows = []
    args.round = 0
    plan = [(n, 0.0) for n in sizes] + [(1000, 5.0)]
    for n, eps in plan:
        for name in args.servers:
            args.round = (args.round + 1) % 100  # a fresh source address: no TIME_WAIT left over
            row = measure(name, n, args, eps)
            rows.append(row)
            print("%-14s N=%-6d ev/s=%-3g connected=%-6d delivered=%.2f%% lag p99=%s ms cpu=%.0f%% rss=%.0f MB"
                  " loop p99=%s ms closed early=%d dropped=%s" % (
                      name, n, eps, row["connected"], 100 * row["delivery"], fmt_ms(row["lag"][99]),
                      row["cpu_percent"], row["peak_rss"] / MB, fmt_ms(row["client_loop_delay_p99"]),
                      row["closed_early"], row["server_dropped"]), flush=True)
    extra = {}
    for name in args.servers:
        extra[name] = idle_cost(name, args.idle)
        extra[name]["posts_per_s"] = post_throughput(name)
    print(write_results(rows, extra, args, Path(args.out)))


if __name__ == "__main__":
    main()
