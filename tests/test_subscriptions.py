"""Typed events and narrowed streams: a subscriber gets exactly what it asked for, live,
after a reconnect, and from GET /api/events; checked with clients someone else wrote
(sseclient-py, the npm eventsource package) as well as our raw reader."""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
import time
import urllib.request

import pytest

from conftest import ROOT, require_tool, required, wait_until

JS_DIR = ROOT / "tests" / "js"

# A mixed stream of posts: (type, level, source). The subscription below wants record.* at
# info or warning level; everything else must never reach it.
MIX = [
    ("record.created", "info", "admin"),
    ("deploy", "info", "ci"),
    (None, "info", "app"),
    ("record.updated", "warning", "admin"),
    ("record.deleted", "error", "admin"),
    ("recordx", "info", "admin"),
    ("record.deleted", "info", "admin"),
]
SUBSCRIPTION = "types=record.*&levels=info,warning&metrics=0"


def wanted(kind, level, source) -> bool:
    return kind is not None and kind.startswith("record.") and level in ("info", "warning")


def post_mix(running, tag: str) -> list[int]:
    """Post MIX once; return the ids of the events the subscription wants."""
    ids = []
    for i, (kind, level, source) in enumerate(MIX):
        body = {"message": "%s %d" % (tag, i), "level": level, "source": source}
        if kind is not None:
            body["type"] = kind
        status, event = running.json("POST", "/api/events", body)
        assert status == 201, event
        assert event["type"] == kind
        if wanted(kind, level, source):
            ids.append(event["id"])
    return ids


def test_a_typed_event_is_stored_and_listed_with_its_type(server):
    status, event = server.json("POST", "/api/events", {"message": "row 7 added", "type": "record.created"})
    assert status == 201 and event["type"] == "record.created"
    listed = server.json("GET", "/api/events")[1]["events"]
    assert [(e["message"], e["type"]) for e in listed] == [("row 7 added", "record.created")]


@pytest.mark.parametrize("bad", ["log", "metrics", "resync", "error", "message", "has space", "x" * 101, "",
                                 "é", 7, ["a"], "a\nb"])
def test_an_unusable_type_is_a_400_and_stores_nothing(server, bad):
    status, body = server.json("POST", "/api/events", {"message": "m", "type": bad})
    assert status == 400 and "type" in body["error"]
    assert server.json("GET", "/api/events")[1]["events"] == []


def test_typed_events_have_their_own_name_on_the_wire_and_log_on_the_pages_stream(server, sse_reader):
    plain = sse_reader(server)
    page = sse_reader(server, "/api/metrics/stream?names=log")
    for reader in (plain, page):
        reader.next_event("metrics")
    server.json("POST", "/api/events", {"message": "a", "type": "record.created"})
    server.json("POST", "/api/events", {"message": "b"})
    assert [plain.next_event(name)["event"] for name in ("record.created", "log")] == ["record.created", "log"]
    first, second = page.next_event("log"), page.next_event("log")
    assert [json.loads(f["data"])["type"] for f in (first, second)] == ["record.created", None]


def test_a_narrowed_stream_gets_exactly_what_it_asked_for(server, sse_reader):
    reader = sse_reader(server, "/api/metrics/stream?" + SUBSCRIPTION)
    assert reader.next_frame()["retry"] is not None
    expected = post_mix(server, "live")
    got = [reader.next_frame() for _ in expected]
    assert [int(f["id"]) for f in got] == expected
    assert [f["event"] for f in got] == ["record.created", "record.updated", "record.deleted"]
    # Nothing else is queued for it: the next thing it sees is the next wanted event.
    more = post_mix(server, "again")
    assert int(reader.next_frame()["id"]) == more[0]


def test_an_events_only_stream_never_gets_a_snapshot(make_server, sse_reader):
    running = make_server(interval_s=0.05)
    reader = sse_reader(running, "/api/metrics/stream?metrics=0")
    reader.next_frame()  # retry
    seq = running.server.sampler.seq
    wait_until(lambda: running.server.sampler.seq >= seq + 3, message="three samples")
    running.json("POST", "/api/events", {"message": "only this"})
    frame = reader.next_frame()
    assert frame["event"] == "log" and json.loads(frame["data"])["message"] == "only this"


def test_replay_after_last_event_id_honours_the_filter(server, sse_reader):
    before = post_mix(server, "before")
    reader = sse_reader(server, "/api/metrics/stream?" + SUBSCRIPTION, headers={"Last-Event-ID": str(before[0])})
    reader.next_frame()  # retry
    got = [int(reader.next_frame()["id"]) for _ in before[1:]]
    assert got == before[1:]


def test_a_filter_that_matches_nothing_still_gets_heartbeats_that_move_its_id(make_server, sse_reader):
    running = make_server(heartbeat_s=0.3)
    reader = sse_reader(running, "/api/metrics/stream?types=nothing.matches&metrics=0")
    reader.next_frame()  # retry
    post_mix(running, "unwanted")
    last = running.server.events.last_id
    frame = reader.next_frame(timeout=5)
    assert frame["comments"] == ["ping"] and frame["data"] is None
    # An id line without data fires no event but moves the browser's Last-Event-ID, so a
    # reconnect does not replay (or lose to eviction) what this filter passed over.
    assert frame["id"] == str(last)
    assert reader.next_frame(timeout=5)["comments"] == ["ping"]


@pytest.mark.parametrize("query", ["types=a%20b", "types=" + ",".join("t%d" % i for i in range(21)),
                                   "levels=debug", "metrics=2", "names=html", "sources=" + "s" * 101])
def test_a_bad_filter_is_a_400(server, query):
    stream_only = query.startswith(("metrics=", "names="))
    for path in ("/api/metrics/stream?",) + (() if stream_only else ("/api/events?",)):
        status, body = server.json("GET", path + query)
        assert status == 400 and body["error"], (path, query)


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_get_events_pages_through_exactly_the_matching_events(make_server, tmp_path, storage):
    running = make_server(data_dir=tmp_path if storage == "sqlite" else ":memory:", max_events=10)
    expected = []
    for round_ in range(6):
        expected += post_mix(running, "r%d" % round_)
    # A cursor walk with a small page: every wanted event once, in order, and nothing else,
    # including those older than the 10 kept in memory (read from storage when there is one).
    seen, cursor = [], 0
    while True:
        page = running.json("GET", "/api/events?%s&since=%d&limit=2" % (SUBSCRIPTION, cursor))[1]
        seen += [e["id"] for e in page["events"]]
        cursor = page["next"]
        if not page["more"]:
            break
    kept = expected if storage == "sqlite" else [i for i in expected if i > running.server.events.last_id - 10]
    assert seen == kept
    newest = running.json("GET", "/api/events?sources=admin&levels=error&limit=3")[1]["events"]
    held = 3 if storage == "sqlite" else len([e for e in running.server.events.since(0) if e.level == "error"])
    assert [e["level"] for e in newest] == ["error"] * held and all(e["source"] == "admin" for e in newest)
    export = running.json("GET", "/api/events?%s&from=0" % SUBSCRIPTION)[1]["events"]
    assert [e["id"] for e in export] == kept


def test_types_survive_a_restart(make_server, tmp_path):
    first = make_server(data_dir=tmp_path)
    first.json("POST", "/api/events", {"message": "m", "type": "deploy"})
    first.stop()
    second = make_server(data_dir=tmp_path)
    assert [e["type"] for e in second.json("GET", "/api/events")[1]["events"]] == ["deploy"]
    assert second.json("GET", "/api/events?types=deploy&since=0")[1]["events"][0]["message"] == "m"


# --- clients someone else wrote ---------------------------------------------------------


def test_sseclient_py_subscribes_and_resumes_with_exactly_the_missed_matches(server):
    sseclient = required("sseclient")

    def subscribe(last_id=None):
        headers = {"Accept": "text/event-stream"}
        if last_id:
            headers["Last-Event-ID"] = last_id
        response = urllib.request.urlopen(urllib.request.Request(
            server.url + "/api/metrics/stream?" + SUBSCRIPTION, headers=headers), timeout=10)
        return response, sseclient.SSEClient(response).events()

    response, events = subscribe()
    live = post_mix(server, "live")
    got = [next(events) for _ in live]
    assert [int(e.id) for e in got] == live and all(e.event.startswith("record.") for e in got)
    response.close()  # the connection is cut
    missed = post_mix(server, "missed")
    response, events = subscribe(last_id=got[-1].id)
    resumed = [next(events) for _ in missed]
    assert [int(e.id) for e in resumed] == missed
    after = post_mix(server, "after")
    assert int(next(events).id) == after[0]  # and nothing it did not ask for came in between
    response.close()


def npm_install() -> None:
    """tests/js's packages, as pinned by its package-lock.json (once; the README's test command
    is all a newcomer runs)."""
    npm = shutil.which("npm")
    if npm is not None and not (JS_DIR / "node_modules" / "eventsource").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=JS_DIR, check=True, timeout=300,
                       capture_output=True)


def test_the_npm_eventsource_package_subscribes_and_resumes_after_a_cut(server):
    node = shutil.which("node")
    npm_install()
    require_tool(node is not None and (JS_DIR / "node_modules" / "eventsource").is_dir(),
                 "node with tests/js/node_modules (npm install --prefix tests/js)")
    from proxy import BufferingProxy

    proxy = BufferingProxy((server.host, server.port))
    proxy.holding = False
    listen = ["record.created", "record.updated", "record.deleted", "deploy", "log", "metrics"]
    proc = subprocess.Popen([node, str(JS_DIR / "subscribe.mjs"), proxy.url + "/api/metrics/stream?" + SUBSCRIPTION]
                            + listen, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=JS_DIR, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(json.loads(line)) for line in proc.stdout], daemon=True).start()

    def next_line(kind: str, timeout: float = 15.0) -> dict:
        item = lines.get(timeout=timeout)
        assert item["kind"] == kind, item
        return item

    try:
        next_line("open")
        live = post_mix(server, "live")
        got = [next_line("event") for _ in live]
        assert [int(e["id"]) for e in got] == live
        assert [e["type"] for e in got] == ["record.created", "record.updated", "record.deleted"]
        proxy.cut()
        next_line("error")
        missed = post_mix(server, "missed")  # while it waits to reconnect (retry: 5 s)
        next_line("open")
        resumed = [next_line("event") for _ in missed]
        assert [int(e["id"]) for e in resumed] == missed
        after = post_mix(server, "after")
        assert [int(next_line("event")["id"]) for _ in after] == after
        server.json("POST", "/api/events", {"message": "end", "type": "record.created"})
        assert next_line("event")["data"]["message"] == "end"  # nothing unwanted came before it
    finally:
        proc.stdin.close()
        proc.wait(10)
        proxy.close()


def test_a_narrowed_stream_with_snapshots_still_moves_its_id_so_a_reconnect_needs_no_resync(make_server, sse_reader):
    running = make_server(heartbeat_s=0.3, max_events=20)
    reader = sse_reader(running, "/api/metrics/stream?types=rare")
    running.json("POST", "/api/events", {"message": "wanted", "type": "rare"})
    last_id = None
    for _ in range(40):  # more than the log holds, none of them wanted
        running.json("POST", "/api/events", {"message": "noise"})
    newest = running.server.events.last_id
    deadline = time.monotonic() + 5
    while last_id != str(newest):  # what a browser's Last-Event-ID becomes, metrics frames and all
        assert time.monotonic() < deadline, "the id line never came (last id %s, newest %d)" % (last_id, newest)
        frame = reader.next_frame(timeout=5)
        last_id = frame["id"] if frame["id"] is not None else last_id
    again = sse_reader(running, "/api/metrics/stream?types=rare", headers={"Last-Event-ID": last_id})
    assert again.next_frame()["retry"] is not None
    assert again.next_frame()["event"] == "metrics"
    running.json("POST", "/api/events", {"message": "wanted again", "type": "rare"})
    seen = []
    while not seen or seen[-1]["event"] != "rare":
        seen.append(again.next_frame(timeout=5))
    assert "resync" not in [f["event"] for f in seen]  # it missed nothing it asked for
    assert json.loads(seen[-1]["data"])["message"] == "wanted again"
