"""Model-based test of scoped tokens (#26): Hypothesis makes, uses and revokes tokens at random on
the real server (real sockets), and opens streams with them, against a plain model of who may do
what.

The promise (README, "Security"): a token may use exactly the routes of its scopes (admin: all);
no valid token is 401, too little scope 403; a revoked token is refused at once, and a stream it
opened ends within a second while the others go on.
"""

from __future__ import annotations

import json
import os
import tempfile
import time

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from sse_dashboard.app import build_app
from conftest import RunningServer, SSEReader

os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(tempfile.gettempdir(), "sse-dashboard-hypothesis"))

ROOT_TOKEN = "model-root"
NAMES = ["a", "b", "c"]
SCOPE_SETS = [("read",), ("write",), ("admin",), ("read", "write")]
# (method, path, body, the scope it needs, its status when allowed): one of each kind of route.
OPERATIONS = [
    ("GET", "/api/metrics", None, "read", 200),
    ("GET", "/api/events?limit=1", None, "read", 200),
    ("POST", "/api/events", {"message": "m"}, "write", 201),
    ("GET", "/api/push/beat?token={token}", None, "write", 200),
    ("DELETE", "/api/metrics/gauges/nothing", None, "admin", 404),
    ("GET", "/api/tokens", None, "admin", 200),
]


def may(scopes: tuple, needed: str) -> bool:
    return "admin" in scopes or needed in scopes


class TokenModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        server = build_app(host="127.0.0.1", port=0, interval_s=0.2, token=ROOT_TOKEN, post_rate_per_s=0,
                           heartbeat_s=3600)
        self.running = RunningServer(server)
        self.active: dict[str, tuple[str, tuple]] = {}   # name -> (token, scopes)
        self.revoked: list[str] = []                      # tokens that must never work again
        self.streams: list[tuple[SSEReader, str]] = []    # open streams, with the token each opened with

    def teardown(self) -> None:
        for reader, _ in self.streams:
            reader.close()
        self.running.stop()

    def request(self, method, path, body=None, token=None):
        headers = {"Authorization": "Bearer " + token} if token and "{token}" not in path else {}
        return self.running.request(method, path.replace("{token}", token or ""), body, headers)

    # --- what a person or a script does --------------------------------------------------

    @initialize(name=st.sampled_from(NAMES), scopes=st.sampled_from(SCOPE_SETS))
    def a_token_and_its_stream(self, name, scopes):
        """Start with a token and, when it may read, a stream: revoking it is what matters most."""
        self.make(name, scopes)
        self.open_stream_with(name)

    @rule(name=st.sampled_from(NAMES), scopes=st.sampled_from(SCOPE_SETS))
    def make(self, name, scopes):
        status, _, body = self.request("POST", "/api/tokens", {"name": name, "scopes": list(scopes)}, ROOT_TOKEN)
        if name in self.active:
            assert status == 409, body
            return
        assert status == 201, body
        self.active[name] = (json.loads(body)["token"], scopes)

    @rule(name=st.sampled_from(NAMES))
    def revoke(self, name):
        status, _, _ = self.request("DELETE", "/api/tokens/" + name, token=ROOT_TOKEN)
        assert status == (200 if name in self.active else 404)
        if name in self.active:
            self.revoked.append(self.active.pop(name)[0])

    @precondition(lambda self: self.active)
    @rule(data=st.data(), operation=st.sampled_from(OPERATIONS))
    def use(self, data, operation):
        name = data.draw(st.sampled_from(sorted(self.active)))
        token, scopes = self.active[name]
        method, path, body, needed, allowed = operation
        status, _, answer = self.request(method, path, body, token)
        if may(scopes, needed):
            assert status == allowed, (name, scopes, operation, answer)
        else:
            assert status == 403 and ("'%s' scope" % needed) in json.loads(answer)["error"], (scopes, operation)

    @precondition(lambda self: self.revoked)
    @rule(data=st.data(), operation=st.sampled_from(OPERATIONS))
    def use_revoked(self, data, operation):
        token = data.draw(st.sampled_from(self.revoked))
        method, path, body, _, _ = operation
        assert self.request(method, path, body, token)[0] == 401

    @rule(operation=st.sampled_from(OPERATIONS))
    def use_none(self, operation):
        method, path, body, _, _ = operation
        assert self.request(method, path, body)[0] == 401

    @precondition(lambda self: self.active and len(self.streams) < 4)
    @rule(data=st.data())
    def open_stream(self, data):
        self.open_stream_with(data.draw(st.sampled_from(sorted(self.active))))

    def open_stream_with(self, name):
        token, scopes = self.active[name]
        reader = SSEReader(self.running.host, self.running.port, headers={"Authorization": "Bearer " + token})
        if not may(scopes, "read"):
            assert reader.status == 403
            reader.close()
            return
        assert reader.status == 200
        self.streams.append((reader, token))

    @precondition(lambda self: self.streams)
    @rule(data=st.data())
    def revoke_while_streaming(self, data):
        """Revoke the token of an open stream (the case the other rules reach only by chance)."""
        token = data.draw(st.sampled_from([token for _, token in self.streams]))
        name = next((n for n, (t, _) in self.active.items() if t == token), None)
        if name is not None:
            self.revoke(name)
        self.streams_follow_their_tokens()

    @precondition(lambda self: self.streams)
    @rule()
    def streams_follow_their_tokens(self):
        """A stream whose token was revoked ends within a second or so; the others go on."""
        valid = {token for token, _ in self.active.values()}
        kept = []
        for reader, token in self.streams:
            if token in valid:
                assert reader.next_event("metrics", timeout=3)
                kept.append((reader, token))
            else:
                assert ended(reader, within_s=3), "a stream of a revoked token is still open"
                event("a stream ended by its token's revocation")
                reader.close()
        self.streams = kept


def ended(reader: SSEReader, within_s: float) -> bool:
    """Whether the server closes the stream within ``within_s`` (frames before that are skipped)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            reader.next_frame(timeout=max(0.05, deadline - time.monotonic()))
        except EOFError:
            return True
        except OSError:  # the timeout: still open
            return False
    return False


TestTokens = TokenModel.TestCase
TestTokens.settings = settings(max_examples=int(os.environ.get("SSE_MODEL_EXAMPLES") or 8), stateful_step_count=20,
                               deadline=None, suppress_health_check=list(HealthCheck), database=None)
