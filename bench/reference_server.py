"""The reference for bench/run.py: the same stream contract built the way most people would,
with sse-starlette on uvicorn (pip install -e ".[bench]"). Never imported by the dashboard.

- one background sampler per interval (our own Sampler, so both servers send the same bytes);
- every connected client has an asyncio.Queue; each sample and each posted event is put on
  every queue, and sse-starlette's EventSourceResponse sends it;
- POST /api/events broadcasts an event with an id, GET /api/metrics returns the snapshot.

Run: python bench/reference_server.py --port 8200 [--interval 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvicorn  # noqa: E402
from sse_starlette.sse import EventSourceResponse, ServerSentEvent  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse, Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

from sse_dashboard.collectors.system import make_system_collector  # noqa: E402
from sse_dashboard.registry import MetricsRegistry  # noqa: E402
from sse_dashboard.sampler import Sampler  # noqa: E402

QUEUE_SIZE = 100


class Hub:
    def __init__(self, interval_s: float) -> None:
        self.clients: set[asyncio.Queue] = set()
        self.ids = itertools.count(1)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.sampler = Sampler(MetricsRegistry(), make_system_collector(), interval_s=interval_s,
                               subscribers=[self._sampled])

    def _sampled(self, sample) -> None:  # sampler thread
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.broadcast, ServerSentEvent(data=sample.body.decode(), event="metrics"))

    def broadcast(self, event: ServerSentEvent) -> None:
        for queue in list(self.clients):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                pass  # a slow client misses frames rather than growing without bound


def build(interval_s: float) -> Starlette:
    hub = Hub(interval_s)

    async def stream(request: Request) -> EventSourceResponse:
        queue: asyncio.Queue = asyncio.Queue(QUEUE_SIZE)
        hub.clients.add(queue)
        _, body = hub.sampler.latest()

        async def frames():
            try:
                yield ServerSentEvent(data=body.decode(), event="metrics", retry=5000)
                while True:
                    yield await queue.get()
            finally:
                hub.clients.discard(queue)

        return EventSourceResponse(frames(), ping=15, headers={"Cache-Control": "no-cache, no-transform",
                                                                "X-Accel-Buffering": "no"})

    async def metrics(request: Request) -> Response:
        _, body = hub.sampler.latest()
        return Response(body, media_type="application/json")

    async def post_event(request: Request) -> JSONResponse:
        body = await request.json()
        event = {"id": next(hub.ids), "ts": round(time.time(), 3), "level": body.get("level", "info"),
                 "source": body.get("source", "app"), "message": body["message"], "data": body.get("data")}
        hub.broadcast(ServerSentEvent(data=json.dumps(event, separators=(",", ":")), event="log", id=str(event["id"])))
        return JSONResponse(event, status_code=201)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "clients": len(hub.clients)})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        hub.loop = asyncio.get_running_loop()
        hub.sampler.start()
        yield
        hub.sampler.stop()

    return Starlette(routes=[
        Route("/api/metrics/stream", stream),
        Route("/api/metrics", metrics),
        Route("/api/events", post_event, methods=["POST"]),
        Route("/api/health", health),
    ], lifespan=lifespan)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8200)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()
    uvicorn.run(build(args.interval), host="127.0.0.1", port=args.port, log_level="warning",
                backlog=4096, timeout_keep_alive=5)


if __name__ == "__main__":
    main()
