"""One load-client process for bench/run.py: N stream connections on asyncio, timed frames.

It opens its connections at a fixed rate, then during the measured window records for every
metrics frame its lag (arrival - the snapshot's ts) by seq number, and for every log
frame the event's fan-out latency (arrival - the event's ts). It also measures its own event
loop delay, so a reader can tell a slow server from a busy client. Results go to --out as JSON.
Standard library only (uvloop is used when installed, as it makes the client cheaper).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import socket
import time

SEQ_RE = re.compile(rb'"seq":(\d+)')
TS_RE = re.compile(rb'"ts":([0-9.]+)')
ID_RE = re.compile(rb'"id":(\d+)')


class Stats:
    def __init__(self, window: tuple[float, float]) -> None:
        self.window = window
        self.connected = 0
        self.failed = 0
        self.closed_early = 0
        self.first_frame_ms: list[float] = []
        self.by_seq: dict[int, list] = {}  # seq -> [snapshot ts, lags in ms ...]
        self.event_ms: list[float] = []
        self.event_ids: dict[int, int] = {}
        self.by_path: dict[str, dict] = {}  # path -> {"streams": n, "events": {id: count}}
        self.loop_delay_ms: list[float] = []

    def in_window(self, now: float) -> bool:
        return self.window[0] <= now <= self.window[1]


async def client(host: str, port: int, source: str, stats: Stats, stop_at: float,
                 path: str = "/api/metrics/stream") -> None:
    started = time.time()
    try:
        reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
        writer.write(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n" % path.encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(head[:40])
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        stats.failed += 1
        return
    stats.connected += 1
    mine = stats.by_path.setdefault(path, {"streams": 0, "events": {}})
    mine["streams"] += 1
    buffer = b""
    first = True
    try:
        while time.time() < stop_at:
            chunk = await reader.read(65536)
            if not chunk:
                stats.closed_early += 1
                return
            now = time.time()
            buffer += chunk
            if b"\r" in buffer:
                buffer = buffer.replace(b"\r\n", b"\n")  # sse-starlette separates lines with CRLF
            *frames, buffer = buffer.split(b"\n\n")
            for frame in frames:
                if b"event: metrics" in frame:
                    seq = int(SEQ_RE.search(frame).group(1))
                    if first:
                        stats.first_frame_ms.append((now - started) * 1000)
                        first = False
                    entry = stats.by_seq.get(seq)
                    if entry is None:
                        entry = stats.by_seq[seq] = [float(TS_RE.search(frame).group(1))]
                    entry.append(round((now - entry[0]) * 1000, 2))
                elif b"data: " in frame and b"event: resync" not in frame:  # an event, typed or "log"
                    event_id = int(ID_RE.search(frame).group(1))
                    ts = float(TS_RE.search(frame).group(1))
                    stats.event_ms.append((now - ts) * 1000)
                    stats.event_ids[event_id] = stats.event_ids.get(event_id, 0) + 1
                    mine["events"][event_id] = mine["events"].get(event_id, 0) + 1
    except (OSError, asyncio.IncompleteReadError):
        stats.closed_early += 1
    finally:
        writer.close()


async def loop_delay(stats: Stats, stop_at: float) -> None:
    while time.time() < stop_at:
        planned = time.monotonic() + 0.05
        await asyncio.sleep(0.05)
        if stats.in_window(time.time()):
            stats.loop_delay_ms.append(max(0.0, time.monotonic() - planned) * 1000)


async def run(args: argparse.Namespace) -> Stats:
    stats = Stats((args.window_start, args.window_start + args.window))
    stop_at = args.window_start + args.window + 0.5
    tasks = [asyncio.ensure_future(loop_delay(stats, stop_at))]
    await asyncio.sleep(max(0.0, args.start_at - time.time()))
    batch = max(1, int(args.rate / 20))  # open in 50 ms batches at the given rate
    for i in range(0, args.conns, batch):
        for k in range(min(batch, args.conns - i)):
            path = args.path[(i + k) % len(args.path)]  # the paths, in turn
            tasks.append(asyncio.ensure_future(client(args.host, args.port, args.source, stats, stop_at, path)))
        await asyncio.sleep(batch / args.rate)
    await asyncio.gather(*tasks)
    return stats


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--source", default="127.0.0.1", help="local address (its own port range)")
    parser.add_argument("--conns", type=int, required=True)
    parser.add_argument("--rate", type=float, default=500.0, help="connections opened per second")
    parser.add_argument("--start-at", type=float, required=True, help="wall-clock time to start")
    parser.add_argument("--window-start", type=float, required=True)
    parser.add_argument("--window", type=float, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--path", action="append", help="stream path(s), used in turn (default /api/metrics/stream)")
    args = parser.parse_args()
    args.path = args.path or ["/api/metrics/stream"]
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    stats = asyncio.run(run(args))
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({
            "connected": stats.connected, "failed": stats.failed, "closed_early": stats.closed_early,
            "first_frame_ms": stats.first_frame_ms, "by_seq": stats.by_seq, "event_ms": stats.event_ms,
            "event_ids": stats.event_ids, "loop_delay_ms": stats.loop_delay_ms, "by_path": stats.by_path,
        }, f)


if __name__ == "__main__":
    socket.setdefaulttimeout(30)
    main()
