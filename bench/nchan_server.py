"""The floor for bench/run.py: nginx + nchan (a pub/sub module in C) serving the same contract.

    apt-get install -y nginx-light libnginx-mod-nchan
    python bench/nchan_server.py --port 8090 --interval 1

nginx serves ``GET /api/metrics/stream`` as an nchan EventSource subscriber; this process is
the publisher: once per interval it publishes a snapshot of the dashboard's shape (about
1.5 KB, with ``seq`` and ``ts``) as ``event: metrics``, and it takes ``POST /api/events``
(proxied to it by nginx) and publishes each as ``event: log`` with an id. ``GET /api/metrics``
answers the latest snapshot, so bench/run.py's start-up probe works unchanged. bench/run.py
measures the CPU and memory of the nginx processes only: the publisher is the feed, not the
fan-out being compared.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MODULE_PATHS = ("/usr/lib/nginx/modules/ngx_nchan_module.so", "/usr/share/nginx/modules/ngx_nchan_module.so")

CONFIG = """
daemon off;
master_process on;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
{load_module}
worker_rlimit_nofile 65536;
events {{ worker_connections 60000; multi_accept on; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    nchan_max_reserved_memory 256M;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = /api/metrics/stream {{
            nchan_subscriber eventsource;
            nchan_channel_id dashboard;
            nchan_subscriber_first_message newest;
            nchan_eventsource_ping_interval 15;
        }}
        location = /internal/publish {{
            nchan_publisher;
            nchan_channel_id dashboard;
            nchan_message_buffer_length 1000;
            nchan_message_timeout 1h;
            allow 127.0.0.1;
        }}
        location / {{
            proxy_pass http://127.0.0.1:{feed_port};
        }}
    }}
}}
"""


def snapshot(seq: int) -> bytes:
    """A snapshot shaped (and sized) like the dashboard's."""
    return json.dumps({
        "boot_id": "0123456789ab", "events_epoch": "0123456789ab", "seq": seq, "ts": round(time.time(), 3),
        "interval": 1.0,
        "system": {"source": "nchan-feed", "cpu_percent": 3.5, "cpu_per_core": [3.1, 3.9], "cpu_count": 2,
                   "memory_total_bytes": 25276514304, "memory_used_bytes": 650000000,
                   "memory_available_bytes": 24626514304, "memory_percent": 2.6, "swap_total_bytes": 0,
                   "swap_used_bytes": 0, "swap_percent": 0.0, "disk_path": "/", "disk_total_bytes": 270553174016,
                   "disk_used_bytes": 24591732736, "disk_free_bytes": 84352561152, "disk_percent": 22.57,
                   "disk_read_bytes_per_s": 0.0, "disk_write_bytes_per_s": 4096.0, "net_sent_bytes": 858338398,
                   "net_recv_bytes": 1062466253, "net_sent_bytes_per_s": 632242.25, "net_recv_bytes_per_s": 632240.7,
                   "load_1": 0.41, "load_5": 0.37, "load_15": 0.59, "process_count": 75, "uptime_s": 2614.86},
        "counters": {"jobs_done": seq}, "gauges": {"queue_depth": 7}, "server": {"clients": 0, "dropped": 0},
        "alerts": [],
    }, separators=(",", ":")).encode()


class Feed:
    def __init__(self, nginx_port: int) -> None:
        self.nginx_port = nginx_port
        self.lock = threading.Lock()
        self.seq = 0
        self.last_id = 0
        self.latest = snapshot(0)

    def publish(self, event: str, body: bytes) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.nginx_port, timeout=10)
        try:
            conn.request("POST", "/internal/publish", body=body,
                         headers={"X-EventSource-Event": event, "Content-Type": "text/plain"})
            conn.getresponse().read()
        finally:
            conn.close()

    def tick(self) -> None:
        self.seq += 1
        self.latest = snapshot(self.seq)
        self.publish("metrics", self.latest)

    def post_event(self, payload: dict) -> bytes:
        with self.lock:
            self.last_id += 1
            event = {"id": self.last_id, "ts": round(time.time(), 3), "level": payload.get("level", "info"),
                     "source": payload.get("source", "app"), "message": payload.get("message", ""), "data": None}
            body = json.dumps(event, separators=(",", ":")).encode()
            self.publish("log", body)
        return body


def feed_handler(feed: Feed) -> type:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._answer(200, feed.latest)

        def do_POST(self) -> None:
            payload = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
            self._answer(201, feed.post_event(payload))

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    module = next((p for p in MODULE_PATHS if os.path.exists(p)), None)
    if not os.path.exists(nginx) or module is None:
        sys.exit("nginx with the nchan module is needed: apt-get install -y nginx-light libnginx-mod-nchan")
    feed = Feed(args.port)
    feed_server = ThreadingHTTPServer(("127.0.0.1", 0), feed_handler(feed))
    threading.Thread(target=feed_server.serve_forever, daemon=True).start()
    workdir = tempfile.mkdtemp(prefix="nchan-")
    config = Path(workdir) / "nginx.conf"
    config.write_text(CONFIG.format(dir=workdir, port=args.port, feed_port=feed_server.server_address[1],
                                    load_module="load_module %s;" % module), encoding="utf-8")
    proc = subprocess.Popen([nginx, "-c", str(config), "-p", workdir])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    next_tick = time.monotonic()
    try:
        while not stop.is_set() and proc.poll() is None:
            try:
                feed.tick()
            except OSError:
                pass  # nginx still starting
            next_tick += args.interval
            stop.wait(max(0.0, next_tick - time.monotonic()))
    finally:
        proc.send_signal(signal.SIGQUIT if proc.poll() is None else 0)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
