"""Model-based test of share links (#26): Hypothesis makes, uses and revokes links at random on the
real server (real sockets), and opens streams with them, against a plain model of what a link's
viewer may do.

The promise (README, "Share links"): a link reads what its sections show and nothing else (403),
writes nothing (403), is 404 at once when revoked, and a stream it opened ends within a second
while the others go on.
"""

from __future__ import annotations

import json
import os
import tempfile

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from sse_dashboard.app import build_app
from conftest import RunningServer, SSEReader
from test_tokens_model import ended

os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(tempfile.gettempdir(), "sse-dashboard-hypothesis"))

ROOT_TOKEN = "model-root"
ADMIN = {"Authorization": "Bearer " + ROOT_TOKEN}
SECTION_SETS = [("system",), ("jobs",), ("events",), ("metrics", "alerts"), ("system", "events", "processes")]
# (method, path, body, the sections of which the link must show one (() any, None never), its status when allowed)
OPERATIONS = [
    ("GET", "/api/metrics", None, (), 200),
    ("GET", "/api/metrics/history?seconds=5", None, (), 200),
    ("GET", "/api/events?limit=1", None, (), 200),  # empty without the events section
    ("GET", "/api/jobs", None, ("jobs",), 200),
    ("GET", "/api/alerts", None, ("alerts", "heartbeats"), 200),
    ("GET", "/api/health", None, None, 200),
    ("POST", "/api/events", {"message": "m"}, None, 201),
    ("GET", "/api/push/beat", None, None, 200),
    ("DELETE", "/api/metrics/gauges/nothing", None, None, 404),
    ("GET", "/api/shares", None, None, 200),
    ("GET", "/", None, (), 200),
]


def may(sections: tuple, needs: tuple | None) -> bool:
    return needs is not None and (not needs or bool(set(needs) & set(sections)))


class ShareModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        server = build_app(host="127.0.0.1", port=0, interval_s=0.2, token=ROOT_TOKEN, post_rate_per_s=0,
                           heartbeat_s=3600)
        self.running = RunningServer(server)
        self.active: dict[str, tuple[str, tuple]] = {}   # handle -> (link id, sections)
        self.revoked: list[str] = []                      # link ids that must never work again
        self.streams: list[tuple[SSEReader, str]] = []    # open streams, with the link id each opened with

    def teardown(self) -> None:
        for reader, _ in self.streams:
            reader.close()
        self.running.stop()

    def as_link(self, method, path, body, link_id):
        joiner = "&" if "?" in path else "?"
        return self.running.request(method, path + joiner + "share=" + link_id, body)

    @initialize(sections=st.sampled_from(SECTION_SETS))
    def a_link_and_its_stream(self, sections):
        self.open_stream_with(self.make_link(sections))

    @rule(sections=st.sampled_from(SECTION_SETS))
    def make(self, sections):
        self.make_link(sections)

    def make_link(self, sections):
        status, _, body = self.running.request("POST", "/api/shares", {"sections": list(sections)}, ADMIN)
        assert status == 201, body
        made = json.loads(body)
        self.active[made["handle"]] = (made["id"], sections)
        return made["handle"]

    @precondition(lambda self: self.active)
    @rule(data=st.data())
    def revoke(self, data):
        self.revoke_handle(data.draw(st.sampled_from(sorted(self.active))))

    def revoke_handle(self, handle):
        status, _, _ = self.running.request("DELETE", "/api/shares/" + handle, headers=ADMIN)
        assert status == (200 if handle in self.active else 404)
        if handle in self.active:
            self.revoked.append(self.active.pop(handle)[0])

    @precondition(lambda self: self.active)
    @rule(data=st.data(), operation=st.sampled_from(OPERATIONS))
    def use(self, data, operation):
        link_id, sections = self.active[data.draw(st.sampled_from(sorted(self.active)))]
        method, path, body, needs, allowed = operation
        status, _, answer = self.as_link(method, path, body, link_id)
        if may(sections, needs):
            assert status == allowed, (sections, operation, answer)
        else:
            assert status == 403 and json.loads(answer)["error"], (sections, operation, answer)

    @precondition(lambda self: self.revoked)
    @rule(data=st.data(), operation=st.sampled_from(OPERATIONS))
    def use_revoked(self, data, operation):
        method, path, body, _, _ = operation
        assert self.as_link(method, path, body, data.draw(st.sampled_from(self.revoked)))[0] == 404

    @precondition(lambda self: self.active and len(self.streams) < 4)
    @rule(data=st.data())
    def open_stream(self, data):
        self.open_stream_with(data.draw(st.sampled_from(sorted(self.active))))

    def open_stream_with(self, handle):
        link_id, _ = self.active[handle]
        reader = SSEReader(self.running.host, self.running.port, path="/api/metrics/stream?share=" + link_id)
        assert reader.status == 200
        self.streams.append((reader, link_id))

    @precondition(lambda self: self.streams)
    @rule(data=st.data())
    def revoke_while_streaming(self, data):
        """Revoke the link of an open stream (the case the other rules reach only by chance)."""
        link_id = data.draw(st.sampled_from([link_id for _, link_id in self.streams]))
        handle = next((h for h, (i, _) in self.active.items() if i == link_id), None)
        if handle is not None:
            self.revoke_handle(handle)
        self.streams_follow_their_links()

    @precondition(lambda self: self.streams)
    @rule()
    def streams_follow_their_links(self):
        """A stream whose link was revoked ends within a second or so; the others go on."""
        valid = {link_id for link_id, _ in self.active.values()}
        kept = []
        for reader, link_id in self.streams:
            if link_id in valid:
                assert reader.next_event("metrics", timeout=3)
                kept.append((reader, link_id))
            else:
                assert ended(reader, within_s=3), "a stream of a revoked link is still open"
                event("a stream ended by its link's revocation")
                reader.close()
        self.streams = kept


TestShares = ShareModel.TestCase
TestShares.settings = settings(max_examples=int(os.environ.get("SSE_MODEL_EXAMPLES") or 6), stateful_step_count=15,
                               deadline=None, suppress_health_check=list(HealthCheck), database=None)
