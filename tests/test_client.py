"""The client library against the real server: what an application calls arrives, and when the
dashboard is down the application is neither blocked nor raised into."""

from __future__ import annotations

import socket
import time

from sse_dashboard.client import Dashboard
from conftest import wait_until


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_events_and_metrics_arrive_and_increments_are_batched(make_server):
    running = make_server(post_rate_per_s=0)
    dash = Dashboard(running.url, interval_s=0.1, flush_at_exit=False)
    try:
        dash.event("deployed v2", level="warning", source="ci", data={"sha": "abc"})
        for _ in range(50):
            dash.inc("jobs")
        dash.set("depth", 7)
        with dash.timer("step_seconds"):
            time.sleep(0.01)
        assert dash.flush(5)
        events = running.json("GET", "/api/events")[1]["events"]
        assert [(e["message"], e["level"], e["source"], e["data"]) for e in events] == [
            ("deployed v2", "warning", "ci", {"sha": "abc"})]
        counters, gauges = running.server.registry.snapshot()
        assert counters == {"jobs": 50, "step_seconds_count": 1}
        assert gauges["depth"] == 7 and 0.01 <= gauges["step_seconds"] < 1
        assert dash.sent <= 4  # fifty increments went out as one update (with the event and the rest)
    finally:
        dash.close(1)


def test_with_the_dashboard_down_calls_return_at_once_and_items_arrive_when_it_is_back(make_server):
    port = free_port()
    dash = Dashboard("http://127.0.0.1:%d" % port, interval_s=0.05, timeout_s=1, flush_at_exit=False)
    try:
        started = time.perf_counter()
        for i in range(100):
            dash.event("while down %d" % i)
            dash.inc("tries")
        assert time.perf_counter() - started < 0.5  # no network wait in the caller
        wait_until(lambda: dash.last_error is not None, message="the client noticed the dashboard is down")
        assert dash.pending() >= 100
        running = make_server(port=port, post_rate_per_s=0)
        wait_until(lambda: dash.pending() == 0, timeout=40, message="the queue sent after the dashboard came back")
        messages = [e["message"] for e in running.json("GET", "/api/events?limit=1000")[1]["events"]]
        assert messages == ["while down %d" % i for i in range(100)]  # all, in order, once
        assert running.server.registry.snapshot()[0] == {"tries": 100}
        assert dash.dropped == 0
    finally:
        dash.close(1)


def test_the_queue_bound_holds_and_drops_are_counted():
    dash = Dashboard("http://127.0.0.1:%d" % free_port(), max_queue=3, flush_at_exit=False)
    try:
        for i in range(5):
            dash.event("e%d" % i)  # never raises, even though nothing can be sent
        assert dash.dropped >= 2 and dash.pending() <= 3
        assert dash.flush(0.2) is False  # bounded: it gives up, it does not hang
    finally:
        dash.close(0.1)


def test_an_item_the_dashboard_refuses_is_dropped_not_retried_forever(make_server):
    running = make_server(post_rate_per_s=0)
    dash = Dashboard(running.url, interval_s=0.05, flush_at_exit=False)
    try:
        dash.event("")  # an empty message: 400
        dash.event("fine")
        assert dash.flush(5)
        assert dash.dropped == 1 and "400" in dash.last_error
        assert [e["message"] for e in running.json("GET", "/api/events")[1]["events"]] == ["fine"]
    finally:
        dash.close(1)


def test_a_token_is_sent(make_server):
    running = make_server(token="t0k", post_rate_per_s=0)
    dash = Dashboard(running.url, token="t0k", interval_s=0.05, flush_at_exit=False)
    try:
        dash.inc("authorised")
        assert dash.flush(5)
        assert running.server.registry.snapshot()[0] == {"authorised": 1}
    finally:
        dash.close(1)
