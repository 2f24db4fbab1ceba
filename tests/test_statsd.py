"""StatsD in: the PyPI ``statsd`` client over UDP and TCP, raw packets with every line type,
malformed lines and floods, against the real listener."""

from __future__ import annotations

import logging
import shutil
import select
import socket
import subprocess

import pytest

from conftest import require_tool, required, wait_until
from sse_dashboard.registry import MetricsRegistry
from sse_dashboard.app import ListenerUnavailable, build_app
from sse_dashboard.ingest.statsd import MAX_TCP_CONNECTIONS, StatsdAggregator, StatsdListener, parse_address


@pytest.fixture
def statsd_server(make_server):
    return make_server(statsd="127.0.0.1:0", data_dir=":memory:")


def send_udp(running, payload: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(payload, running.server.statsd.address)


def snapshot(running) -> dict:
    return running.json("GET", "/api/metrics")[1]


def wait_for(running, section: str, name: str, value=None):
    def found():
        values = snapshot(running)[section]
        return name in values and (value is None or values[name] == value) and values
    return wait_until(found, timeout=5, message="%s %s = %r" % (section, name, value))[name]


def test_the_pypi_statsd_client_over_udp_and_tcp(statsd_server):
    statsd = required("statsd")
    host, port = statsd_server.server.statsd.address
    udp = statsd.StatsClient(host, port, prefix="app")
    udp.incr("jobs")
    udp.incr("jobs", 4)
    udp.gauge("queue", 7)
    udp.gauge("queue", 3, delta=True)
    udp.timing("latency", 12)
    udp.set("users", "bob")
    udp.set("users", "alice")
    udp.set("users", "bob")
    tcp = statsd.TCPStatsClient(host, port, prefix="tcp")
    tcp.incr("hits", 3)
    tcp.gauge("depth", -2, delta=True)
    tcp.close()
    assert wait_for(statsd_server, "counters", "app_jobs", 5) == 5
    assert wait_for(statsd_server, "gauges", "app_queue", 10) == 10
    assert wait_for(statsd_server, "gauges", "app_latency_p99", 12) == 12
    assert wait_for(statsd_server, "gauges", "app_users", 2) == 2
    assert wait_for(statsd_server, "counters", "tcp_hits", 3) == 3
    assert wait_for(statsd_server, "gauges", "tcp_depth", -2) == -2
    assert snapshot(statsd_server)["server"]["statsd_malformed"] == 0


def test_every_line_type_in_raw_packets(statsd_server):
    send_udp(statsd_server, b"\n".join([
        b"api.requests:1|c|@0.1",                    # sample rate: counts as 10
        b"api.requests:2|c",
        b"temp:20|g", b"temp:+5|g", b"temp:-1.5|g",   # set, then move
        b"render:10|ms", b"render:20|ms", b"render:30:40|ms",  # packed values (DogStatsD 1.1)
        b"size:100|h", b"dist:7|d",
        b"visitors:a|s", b"visitors:b|s",
        b"hits:1|c|#route:/home,canary",             # DogStatsD tags become labels
    ]))
    assert wait_for(statsd_server, "counters", "api_requests", 12) == 12
    assert wait_for(statsd_server, "gauges", "temp", 23.5) == 23.5
    gauges = snapshot(statsd_server)["gauges"]
    assert wait_for(statsd_server, "gauges", "render_count", 4)
    gauges = snapshot(statsd_server)["gauges"]
    assert {s: gauges["render_" + s] for s in ("min", "max", "mean", "p50", "p90", "p99")} == {
        "min": 10, "max": 40, "mean": 25, "p50": 20, "p90": 40, "p99": 40}
    assert gauges["size_count"] >= 0 and "dist_p50" in gauges and "visitors" in gauges
    assert wait_for(statsd_server, "counters", 'hits{canary="true",route="/home"}', 1) == 1
    text = statsd_server.request("GET", "/metrics")[2].decode()
    assert 'hits_total{canary="true",route="/home"} 1' in text


def test_malformed_lines_are_counted_skipped_and_logged_once_a_minute(statsd_server, caplog):
    bad = [b"no_colon", b"x:1", b"x:1|zz", b"x:abc|c", b"x:-1|c", b"x:1|c|@2", b"x:nan|g", b":1|c",
           b"\xff\xfe:1|c", b"x:1|ms|@0"]
    with caplog.at_level(logging.WARNING, logger="sse_dashboard.ingest.statsd"):
        send_udp(statsd_server, b"\n".join(bad + [b"good:1|c"]))
        wait_for(statsd_server, "counters", "good", 1)
        send_udp(statsd_server, b"still:bad")
        wait_until(lambda: snapshot(statsd_server)["server"]["statsd_malformed"] == len(bad) + 1,
                   message="every malformed line counted")
    assert len([r for r in caplog.records if "malformed" in r.getMessage()]) == 1
    assert statsd_server.json("GET", "/api/health")[1]["status"] == "ok"


def test_a_flood_of_names_is_bounded_and_leaves_the_api_its_own_names(statsd_server):
    """#21 item 7: StatsD has no token; its names have a budget of their own, so a flood of
    them cannot make token-protected JSON writes of new names fail (it did: 400)."""
    for start in range(0, 1500, 100):
        send_udp(statsd_server, b"\n".join(b"flood_%d:1|c" % i for i in range(start, start + 100)))
    wait_until(lambda: snapshot(statsd_server)["server"]["statsd_lines"] >= 1500, timeout=10,
               message="the flood read (UDP on loopback does not drop at this rate)")
    server = snapshot(statsd_server)
    assert len(server["counters"]) + len(server["gauges"]) == 1000
    assert server["server"]["statsd_dropped"] == 500
    status, body = statsd_server.json("POST", "/api/metrics", {"counters": {"app_%d" % i: 1 for i in range(1000)}})
    assert status == 200, body
    status, body = statsd_server.json("POST", "/api/metrics", {"counters": {"one_more": 1}})
    assert status == 400 and "too many metrics (at most 1000" in body["error"]  # the API's own budget, full now
    send_udp(statsd_server, b"flood_0:1|c\nflood_1500:1|c")  # StatsD still updates its names, adds none
    wait_until(lambda: snapshot(statsd_server)["counters"].get("flood_0") == 2, message="flood_0 updated")
    assert "flood_1500" not in snapshot(statsd_server)["counters"]


def test_a_very_long_tcp_line_is_malformed_and_the_connection_goes_on(statsd_server):
    with socket.create_connection(statsd_server.server.statsd.address) as sock:
        sock.sendall(b"x:1|c" + b"x" * 20000 + b"\nafter:1|c\n")
        wait_for(statsd_server, "counters", "after", 1)
    wait_until(lambda: snapshot(statsd_server)["server"]["statsd_malformed"] == 1, message="one malformed")


def test_timings_per_interval_with_a_flush():
    registry = MetricsRegistry()
    agg = StatsdAggregator(registry)
    agg.feed(b"\n".join(b"t:%d|ms" % i for i in range(1, 101)))
    agg.feed(b"t:1000|ms|@0.5")
    agg.flush()
    gauges = registry.snapshot()[1]
    assert gauges["t_count"] == 102 and gauges["t_min"] == 1 and gauges["t_max"] == 1000
    assert (gauges["t_p50"], gauges["t_p90"], gauges["t_p99"]) == (51, 91, 100)
    agg.flush()  # nothing new: the count says so once, the rest keep their values
    assert registry.snapshot()[1]["t_count"] == 0 and registry.snapshot()[1]["t_max"] == 1000


def test_a_taken_port_says_who_usually_has_it(make_server):
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker.bind(("127.0.0.1", 0))
    port = blocker.getsockname()[1]
    try:
        with pytest.raises(ListenerUnavailable) as err:
            build_app(port=0, statsd="127.0.0.1:%d" % port, data_dir=":memory:", psutil=None, start=False)
        assert "Netdata" in str(err.value) and str(port) in str(err.value)
    finally:
        blocker.close()


def test_the_command_line_refuses_to_start_on_a_taken_statsd_port(spawn):
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker.bind(("127.0.0.1", 0))
    try:
        proc = spawn("--port", "0", "--statsd", "127.0.0.1:%d" % blocker.getsockname()[1])
        assert proc.proc.wait(15) == 2
        assert "Telegraf" in proc.output
    finally:
        blocker.close()


@pytest.mark.parametrize("text,expected", [("8125", ("127.0.0.1", 8125)), (":9125", ("127.0.0.1", 9125)),
                                           ("0.0.0.0:8125", ("0.0.0.0", 8125)), ("[::1]:8125", ("::1", 8125))])
def test_statsd_addresses(text, expected):
    assert parse_address(text) == expected


def test_promtool_accepts_statsd_names_and_labels(statsd_server):
    promtool = shutil.which("promtool")
    require_tool(promtool is not None, "promtool (apt-get install -y prometheus)")
    send_udp(statsd_server, b"a.b-c:1|c|#env:prod,9lives\nlatency:3|ms|#route:/x\"y")
    wait_for(statsd_server, "gauges", 'latency_p99{route="/x\\"y"}')
    body = statsd_server.request("GET", "/metrics")[2]
    result = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=30)
    # Exit 3 is lint advice only (a timer's "latency_count" gauge is not a histogram's _count);
    # a format or name error would be exit 1.
    problems = [line for line in result.stderr.decode().splitlines() if line.strip()]
    assert result.returncode in (0, 3) and all("should not" in p for p in problems), result.stderr.decode()
    assert 'a_b_c_total{env="prod",tag_9lives="true"} 1' in body.decode()


def test_a_second_dashboard_cannot_share_the_statsd_port(statsd_server):
    host, port = statsd_server.server.statsd.address
    with pytest.raises(ListenerUnavailable, match="taken"):
        build_app(port=0, statsd="%s:%d" % (host, port), data_dir=":memory:", psutil=None, start=False)
    send_udp(statsd_server, b"still_mine:1|c")
    assert wait_for(statsd_server, "counters", "still_mine", 1) == 1


def test_one_bad_timer_or_set_spoils_only_itself():
    registry = MetricsRegistry()
    agg = StatsdAggregator(registry)
    agg.feed(b"good:5|ms\nvisitors:u1|s\n" + b"x" * 99 + b":1|ms\nhuge:1e308|ms\nhuge:1e308|ms\ntiny:1|ms|@5e-324")
    agg.flush()
    gauges = registry.snapshot()[1]
    assert gauges["good_p50"] == 5 and gauges["visitors"] == 1 and "huge_mean" not in gauges
    assert agg.dropped == 2 and agg.malformed == 1  # the long name, the infinite mean; the rate


def test_set_members_are_bounded_across_all_sets(monkeypatch):
    from sse_dashboard.ingest import statsd as statsd_listener
    monkeypatch.setattr(statsd_listener, "MAX_SET_MEMBERS_TOTAL", 50)
    registry = MetricsRegistry()
    agg = StatsdAggregator(registry)
    agg.feed(b"\n".join(b"s%d:m%d|s" % (i % 5, i) for i in range(200)))
    agg.flush()
    assert sum(registry.snapshot()[1].values()) == 50


def test_the_tail_of_an_oversized_tcp_line_is_not_read_as_a_line(statsd_server):
    with socket.create_connection(statsd_server.server.statsd.address) as sock:
        sock.sendall(b"a" * 9000)
        sock.sendall(b"junk:1|c" + b"b" * 100 + b"\nafter:1|c\n")
        wait_for(statsd_server, "counters", "after", 1)
    assert not any(name.startswith(("junk", "a", "b")) for name in snapshot(statsd_server)["counters"]
                   if name != "after")


def server_stats(running) -> dict:
    return snapshot(running)["server"]


def closed_by_server(socks: list, timeout: float = 5.0) -> list:
    """The sockets the server has closed (EOF or reset), once at least one has been."""
    def closed():
        readable, _, _ = select.select(socks, [], [], 0)
        gone = []
        for sock in readable:
            try:
                if sock.recv(1) == b"":
                    gone.append(sock)
            except ConnectionResetError:
                gone.append(sock)
        return gone
    return wait_until(closed, timeout=timeout, message="a sender closed by the server")


def test_slow_senders_at_the_tcp_cap_give_way_to_a_new_one(statsd_server):
    """#21: senders dripping a byte now and then held all 64 slots for good; the 65th was closed
    and its lines lost. Now the sender longest without a complete line is closed to make room:
    its complete lines are applied, its unfinished one is counted as dropped, it sees the close."""
    address = statsd_server.server.statsd.address
    first = socket.create_connection(address)
    first.sendall(b"early:1|c\nearly:2|c\ncut:5")
    wait_for(statsd_server, "counters", "early", 3)
    slow = [socket.create_connection(address) for _ in range(MAX_TCP_CONNECTIONS - 1)]
    try:
        for sock in slow:
            sock.sendall(b"d")  # a byte, never a whole line
        with socket.create_connection(address) as newcomer:
            newcomer.sendall(b"newcomer:1|c\n")
            assert wait_for(statsd_server, "counters", "newcomer", 1) == 1
        assert closed_by_server([first] + slow) == [first]
        wait_until(lambda: server_stats(statsd_server)["statsd_tcp_closed"] == 1, message="the close counted")
        assert server_stats(statsd_server)["statsd_dropped"] == 1  # "cut:5", never finished
        assert "cut" not in snapshot(statsd_server)["counters"]
    finally:
        for sock in [first] + slow:
            sock.close()


def test_many_senders_past_the_cap_are_all_applied_and_counted_with_one_warning(statsd_server, caplog):
    """#21: each refused connection wrote a WARNING line (507 for 507 connections)."""
    address = statsd_server.server.statsd.address
    extra = 100
    held = [socket.create_connection(address) for _ in range(MAX_TCP_CONNECTIONS)]
    try:
        with caplog.at_level(logging.WARNING, logger="sse_dashboard.ingest.statsd"):
            for i in range(extra):
                sock = socket.create_connection(address)
                sock.sendall(b"past_cap:1|c\n")
                held.append(sock)
            wait_for(statsd_server, "counters", "past_cap", extra)
            wait_until(lambda: server_stats(statsd_server)["statsd_tcp_closed"] == extra,
                       message="every sender closed for room counted")
        warnings = [r.getMessage() for r in caplog.records if r.name == "sse_dashboard.ingest.statsd"]
        assert len(warnings) == 1 and "statsd_tcp_closed" in warnings[0], warnings
    finally:
        for sock in held:
            sock.close()


def test_held_back_warnings_are_counted_in_the_next_one(caplog):
    """Every warning is at most one line per cause per minute, and the next line says how many
    were only counted in between (a clock the test moves, not a minute of waiting)."""
    now = [0.0]
    agg = StatsdAggregator(MetricsRegistry(), clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="sse_dashboard.ingest.statsd"):
        agg.feed(b"bad\n" * 5)
        now[0] += 59
        agg.feed(b"bad")
        now[0] += 1
        agg.feed(b"bad")
    lines = [r.getMessage() for r in caplog.records if r.name == "sse_dashboard.ingest.statsd"]
    assert len(lines) == 2 and "5 more" in lines[1], lines


def test_closing_for_room_is_said_once_a_minute_with_the_count_in_between(caplog):
    """The cap and the clock are the listener's parameters: one slot, six senders, a minute
    that passes when the test says so."""
    now = [0.0]
    agg = StatsdAggregator(MetricsRegistry())
    listener = StatsdListener(agg, "127.0.0.1", 0, max_connections=1, clock=lambda: now[0])
    listener.start()
    senders = []
    try:
        with caplog.at_level(logging.WARNING, logger="sse_dashboard.ingest.statsd"):
            for i in range(6):
                if i == 5:
                    now[0] += 60
                sock = socket.create_connection(listener.address)
                sock.sendall(b"sender_%d:1|c\n" % i)
                senders.append(sock)
                wait_until(lambda: agg.stats()["statsd_tcp_closed"] == i, message="%d closed for room" % i)
            wait_until(lambda: agg.stats()["statsd_lines"] == 6, message="every sender's line")
        assert all(agg.registry.snapshot()[0]["sender_%d" % i] == 1 for i in range(6))
        lines = [r.getMessage() for r in caplog.records if r.name == "sse_dashboard.ingest.statsd"]
        assert len(lines) == 2 and "3 more" in lines[1], lines
    finally:
        for sock in senders:
            sock.close()
        listener.stop()
