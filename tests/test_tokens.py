"""Scoped tokens (#26), against the real server: every route with every kind of credential,
the admin API, revocation at once (open streams too), the token file, and the command line."""

from __future__ import annotations

import http.client
import itertools
import json
import logging
import os
import stat
import subprocess
import sys

import pytest

from conftest import ROOT, SSEReader, wait_until  # noqa: F401  (spawn is a conftest fixture)
from sse_dashboard.web.routes import ROUTES, SHARE_READS, Access, Route
from sse_dashboard.web.shares import SECTIONS
from sse_dashboard.web.tokens import SCOPES, TokenStore, token_digest

ROOT_TOKEN = "root-token"  # --token: an admin token that cannot be revoked
_unique = itertools.count()


def call(server, method, path, headers=None, body=None):
    """(status, body bytes); a stream's status is read from its headers and the stream closed."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    try:
        headers = dict(headers or {})
        if isinstance(body, dict):
            body = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        if resp.getheader("Content-Type", "").startswith("text/event-stream"):
            return resp.status, b""
        return resp.status, resp.read()
    finally:
        conn.close()


def bearer(token):
    return {"Authorization": "Bearer " + token} if token else {}


def concrete(route) -> str:
    """A path the route takes, under a name nothing else used: a request changes nothing another reads."""
    if not route.prefix:
        return route.path
    return route.path + ("" if route.path.endswith("/") else "/") + "n%d" % next(_unique)


def add_token(server, name, *scopes, admin=ROOT_TOKEN) -> str:
    status, body = call(server, "POST", "/api/tokens", bearer(admin), {"name": name, "scopes": list(scopes)})
    assert status == 201, body
    return json.loads(body)["token"]


@pytest.fixture
def scoped(make_server, tmp_path):
    """A dashboard with --token and a stored token of each scope, one more revoked."""
    server = make_server(token=ROOT_TOKEN, post_rate_per_s=0, data_dir=tmp_path)
    tokens = {scope: add_token(server, scope + "-bot", scope) for scope in SCOPES}
    tokens["revoked"] = add_token(server, "gone", *SCOPES)
    assert call(server, "DELETE", "/api/tokens/gone", bearer(ROOT_TOKEN))[0] == 200
    # Share-link sessions (#26): a link showing every section, and one revoked.
    for credential in ("share", "revoked-share"):
        status, body = call(server, "POST", "/api/shares", bearer(ROOT_TOKEN), {"sections": list(SECTIONS)})
        tokens[credential] = json.loads(body)["id"]
    handle = json.loads(call(server, "GET", "/api/shares", bearer(ROOT_TOKEN))[1])["shares"][1]["handle"]
    assert call(server, "DELETE", "/api/shares/" + handle, bearer(ROOT_TOKEN))[0] == 200
    return server, tokens


def expected_share_status(route: Route, reference: int) -> int:
    """The plain model of a share session (a link showing every section): it reads what a link may
    read (as the admin would, cut), opens what anyone may, and is refused everything else."""
    if route.handler == "get_share_session":
        return 200  # the admin has no share session: 404 for it
    if not route.access.token and not route.access.write:
        return reference
    return reference if route.method == "GET" and route.handler in SHARE_READS else 403


def expected_refusal(access: Access, credential: str) -> int | None:
    """The plain model of who may do what: 401 without a valid token, 403 with too little scope."""
    if not access.token:
        return None
    if credential in ("none", "revoked"):
        return 401
    held = set(SCOPES) if credential == "admin" else {credential}
    return None if access.scope in held else 403


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: "%s %s" % (r.method, r.path))
def test_every_route_answers_each_credential_exactly_as_its_scope_says(scoped, route):
    """Walks the route table itself: a route added later is checked here without being listed. An
    allowed request gets exactly what the --token (admin) gets for it; a refused one 401 or 403. A
    share-link session (?share=, sent with the admin's token, which must not count) gets what
    ``expected_share_status`` says; a revoked link 404 everywhere."""
    server, tokens = scoped
    reference = call(server, route.method, concrete(route), bearer(ROOT_TOKEN))[0]
    assert reference not in (401, 403), reference
    for credential in ("none", "read", "write", "admin", "revoked"):
        status, body = call(server, route.method, concrete(route), bearer(tokens.get(credential)))
        refusal = expected_refusal(route.access, credential)
        assert status == (refusal or reference), (credential, status, body)
        if refusal == 403:
            assert json.loads(body)["error"].startswith("this needs the '%s' scope" % route.access.scope)
    path = concrete(route)
    status, body = call(server, route.method, path + "?share=" + tokens["share"], bearer(ROOT_TOKEN))
    assert status == expected_share_status(route, reference), ("share", status, body)
    status, body = call(server, route.method, path + "?share=" + tokens["revoked-share"])
    assert status == 404, ("revoked share", status, body)


def test_the_route_table_forces_a_scope_on_every_row():
    """Access has no default scope, and one that needs a token must name a real scope."""
    with pytest.raises(TypeError):
        Access("token", token=True, cookie=True, query=False, write=False)  # no scope: refused
    with pytest.raises(ValueError):
        Access("token", token=True, cookie=True, query=False, write=False, scope=None)
    with pytest.raises(ValueError):
        Access("anyone", token=False, cookie=False, query=False, write=False, scope="read")
    with pytest.raises(ValueError):
        Route("GET", "/x", "get_x", Access("t", token=True, cookie=True, query=False, write=False, scope="everything"))
    for route in ROUTES:
        assert (route.access.scope in SCOPES) == route.access.token, route


def test_deletes_alert_tests_configuration_and_tokens_need_admin():
    admin = {(r.method, r.path) for r in ROUTES if r.access.scope == "admin"}
    assert {(r.method, r.path) for r in ROUTES if r.method == "DELETE"} <= admin
    assert {("POST", "/api/alerts/test"), ("GET", "/api/tokens"), ("POST", "/api/tokens"), ("POST", "/api/jobs"),
            ("DELETE", "/api/tokens/")} <= admin


def test_a_read_token_opens_the_page_cookie_and_the_stream_but_cannot_write(scoped):
    server, tokens = scoped
    status, headers, _ = server.request("GET", "/?token=" + tokens["read"])
    assert status == 303
    jar = {"Cookie": headers["Set-Cookie"].split(";")[0]}
    assert call(server, "GET", "/api/metrics", jar)[0] == 200
    status, body = call(server, "POST", "/api/events", jar, {"message": "x"})
    assert status == 403 and "'write' scope" in json.loads(body)["error"]
    assert server.server.events.last_id == 0
    assert server.request("GET", "/?token=" + tokens["revoked"])[0] == 401


def test_a_write_token_posts_but_reads_nothing(scoped):
    server, tokens = scoped
    assert call(server, "POST", "/api/events", bearer(tokens["write"]), {"message": "x"})[0] == 201
    assert call(server, "GET", "/api/events", bearer(tokens["write"]))[0] == 403
    assert call(server, "GET", "/api/push/nightly?token=" + tokens["write"])[0] == 200
    assert call(server, "GET", "/api/push/nightly?token=" + tokens["read"])[0] == 403


def test_the_admin_api_lists_without_secrets_and_refuses_bad_input(scoped):
    server, tokens = scoped
    status, body = call(server, "GET", "/api/tokens", bearer(tokens["admin"]))
    listed = json.loads(body)["tokens"]
    assert status == 200 and [t["name"] for t in listed] == ["read-bot", "write-bot", "admin-bot"]
    assert {t["name"]: t["scopes"] for t in listed}["write-bot"] == ["write"]
    assert all(set(t) == {"name", "scopes", "created", "last_used"} for t in listed)
    for secret in tokens.values():
        assert secret.encode() not in body and token_digest(secret).encode() not in body
    for bad in ({"name": "read-bot", "scopes": ["read"]}, {"name": "x", "scopes": ["root"]}, {"name": "x", "scopes": []},
                {"name": "a b", "scopes": ["read"]}, {"name": "x"}, {"name": "x", "scopes": ["read"], "more": 1}):
        status, body = call(server, "POST", "/api/tokens", bearer(tokens["admin"]), bad)
        assert status in (400, 409) and json.loads(body)["error"], bad
    assert call(server, "DELETE", "/api/tokens/nobody", bearer(tokens["admin"]))[0] == 404
    assert len(json.loads(call(server, "GET", "/api/tokens", bearer(ROOT_TOKEN))[1])["tokens"]) == 3


def test_without_any_token_the_api_stays_open_and_the_first_token_closes_it(make_server):
    server = make_server(post_rate_per_s=0)
    assert call(server, "GET", "/api/metrics")[0] == 200
    secret = add_token(server, "first", "admin", admin=None)  # open: anyone here may make the first
    assert call(server, "GET", "/api/metrics")[0] == 401
    assert call(server, "GET", "/api/metrics", bearer(secret))[0] == 200
    # Revoking the last token does not open the API again: a leaked token's revocation must not.
    assert call(server, "DELETE", "/api/tokens/first", bearer(secret))[0] == 200
    assert call(server, "GET", "/api/metrics")[0] == 401


def test_a_stream_opened_with_a_token_ends_when_it_is_revoked(scoped):
    server, tokens = scoped
    keeper = SSEReader(server.host, server.port, headers=bearer(ROOT_TOKEN))
    reader = SSEReader(server.host, server.port, headers=bearer(tokens["read"]))
    try:
        assert reader.status == 200 and reader.next_event("metrics")
        assert call(server, "DELETE", "/api/tokens/read-bot", bearer(ROOT_TOKEN))[0] == 200
        with pytest.raises(EOFError):
            for _ in range(100):  # a few intervals' frames at most, then the hub closes it
                reader.next_frame(timeout=3)
        assert keeper.next_event("metrics")  # the --token's stream goes on
    finally:
        reader.close()
        keeper.close()


def test_no_token_in_clear_in_the_data_folder_or_the_logs(make_server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    logging.getLogger("sse_dashboard.web.access").setLevel(logging.DEBUG)
    server = make_server(token=ROOT_TOKEN, data_dir=tmp_path)
    secret = add_token(server, "ci", "write", "read")
    assert call(server, "GET", "/api/metrics", bearer(secret))[0] == 200
    assert call(server, "GET", "/api/push/job?token=" + secret)[0] == 200
    server.request("GET", "/?token=" + secret)
    assert call(server, "DELETE", "/api/tokens/ci", bearer(ROOT_TOKEN))[0] == 200
    stored = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert secret.encode() not in stored
    assert secret not in caplog.text and "/api/push/job" in caplog.text


# --- the token file and the command line ------------------------------------------------

def run_cli(*args, data_dir):
    return subprocess.run([sys.executable, str(ROOT / "sse_server.py"), "token", *args, "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=30, cwd=str(ROOT))


def test_the_cli_adds_lists_and_revokes_tokens_kept_as_hashes(tmp_path):
    added = run_cli("add", "ci", "--scope", "write", "--scope", "read", data_dir=tmp_path)
    assert added.returncode == 0, added.stderr
    secret = added.stdout.strip().splitlines()[-1]
    assert len(secret) >= 40 and " " not in secret
    text = (tmp_path / "tokens.json").read_text()
    assert secret not in text and token_digest(secret) in text
    listed = run_cli("list", data_dir=tmp_path)
    assert listed.returncode == 0 and "ci" in listed.stdout and "read,write" in listed.stdout
    assert secret not in listed.stdout + listed.stderr
    again = run_cli("add", "ci", "--scope", "read", data_dir=tmp_path)
    assert again.returncode == 1 and "already" in again.stderr
    bad = run_cli("add", "x", "--scope", "root", data_dir=tmp_path)
    assert bad.returncode == 2 and "scope" in bad.stderr
    assert run_cli("revoke", "ci", data_dir=tmp_path).returncode == 0
    assert run_cli("revoke", "ci", data_dir=tmp_path).returncode == 1
    assert "ci" not in run_cli("list", data_dir=tmp_path).stdout


def test_a_running_dashboard_takes_tokens_added_and_revoked_by_the_cli(make_server, tmp_path):
    server = make_server(data_dir=tmp_path)
    secret = run_cli("add", "wall", "--scope", "read", data_dir=tmp_path).stdout.strip().splitlines()[-1]
    wait_until(lambda: call(server, "GET", "/api/metrics")[0] == 401, message="the token file noticed")
    assert "last used never" in run_cli("list", data_dir=tmp_path).stdout
    assert call(server, "GET", "/api/metrics", bearer(secret))[0] == 200
    listed = run_cli("list", data_dir=tmp_path).stdout
    assert "wall" in listed and "last used never" not in listed  # the dashboard keeps when it was used
    reader = SSEReader(server.host, server.port, headers=bearer(secret))
    try:
        assert reader.next_event("metrics")
        assert run_cli("revoke", "wall", data_dir=tmp_path).returncode == 0
        wait_until(lambda: call(server, "GET", "/api/metrics", bearer(secret))[0] == 401, message="the revocation")
        with pytest.raises(EOFError):
            for _ in range(100):
                reader.next_frame(timeout=3)
    finally:
        reader.close()


def test_the_token_store_keeps_nothing_in_clear_and_writes_atomically(tmp_path):
    store = TokenStore(tmp_path / "tokens.json")
    secret, entry = store.add("a", ("read",))
    assert store.lookup(secret).name == "a" and store.lookup(secret + "x") is None
    assert not list(tmp_path.glob("*.tmp")) and secret not in (tmp_path / "tokens.json").read_text()
    if os.name != "nt":
        assert stat.S_IMODE((tmp_path / "tokens.json").stat().st_mode) == 0o600  # its owner's alone
    reopened = TokenStore(tmp_path / "tokens.json")
    assert reopened.lookup(secret).scopes == ("read",)
    generation = reopened.generation
    assert reopened.revoke("a") and reopened.generation > generation and reopened.lookup(secret) is None


def test_the_readme_scope_table_is_the_route_table():
    """README, Security: each scope's routes, as the route table says (a route added later fails here)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Security"):readme.index("## Performance")]
    documented = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().split("|")]
        if len(cells) == 5 and cells[1].strip("`") in SCOPES:
            documented[cells[1].strip("`")] = {r.strip().strip("`") for r in cells[3].split(",")}

    def shown(route):
        if not route.prefix:
            return "%s %s" % (route.method, route.path)
        return "%s %s/<name>" % (route.method, route.path.rstrip("/"))

    expected = {scope: {shown(r) for r in ROUTES if r.access.scope == scope} for scope in SCOPES}
    assert documented == expected


def mcp_call(server, token, name, arguments, method="tools/call"):
    """One legacy-era JSON-RPC call to /mcp with ``token``: (HTTP status, the answer)."""
    params = {"name": name, "arguments": arguments} if method == "tools/call" else {}
    status, body = call(server, "POST", "/mcp", dict(bearer(token), Accept="application/json"),
                        {"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    return status, json.loads(body)


def test_mcp_reads_with_the_read_scope_and_posts_only_with_write(scoped):
    """An agent with a read token can use MCP's read tools; its one writing tool needs 'write'."""
    server, tokens = scoped
    status, answer = mcp_call(server, tokens["read"], "get_health", {})
    assert status == 200 and answer["result"]["isError"] is False
    status, answer = mcp_call(server, tokens["read"], "post_event", {"message": "from a reader"})
    assert status == 200 and answer["result"]["isError"] is True
    assert "'write' scope" in answer["result"]["content"][0]["text"]
    assert server.server.events.last_id == 0
    assert mcp_call(server, tokens["write"], "post_event", {"message": "x"})[0] == 403  # the route needs read
    both = add_token(server, "agent", "read", "write")
    status, answer = mcp_call(server, both, "post_event", {"message": "from a writer"})
    assert answer["result"]["isError"] is False and server.server.events.last_id == 1
    assert mcp_call(server, None, "get_health", {})[0] == 401


def test_a_wide_bind_with_stored_tokens_starts_and_a_damaged_token_file_stops_the_start(spawn, tmp_path):
    """Tokens in the data folder protect a wide bind as --token does; a token file that cannot be
    read stops the start (an empty list would open the API)."""
    secret = run_cli("add", "ops", "--scope", "admin", data_dir=tmp_path).stdout.strip().splitlines()[-1]
    p = spawn("--host", "0.0.0.0", "--port", "0", "--data-dir", str(tmp_path))
    port = p.wait_for_url()
    assert "open to anyone" not in p.output
    assert http_status(port) == 401 and http_status(port, secret) == 200
    p.stop()
    (tmp_path / "tokens.json").write_text('{"tokens": [{"name": "ops"}]}')
    damaged = spawn("--port", "0", "--data-dir", str(tmp_path))
    assert damaged.proc.wait(10) == 2
    wait_until(lambda: "tokens.json" in damaged.output and "fix or delete it" in damaged.output, message="the reason")
    assert "Traceback" not in damaged.output


def http_status(port, token=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/api/health", headers=bearer(token))
        return conn.getresponse().status
    finally:
        conn.close()


def test_a_stream_joining_the_hub_with_a_token_revoked_already_is_closed_at_once():
    """The hub notices a revocation by the store's generation; a stream revoked while it was opening
    (before the generation the hub last saw) is checked on joining."""
    import socket

    from sse_dashboard.events import EventLog
    from sse_dashboard.web.streams import StreamHub

    store = TokenStore(None)
    _, entry = store.add("late", ("read",))
    store.revoke("late")
    hub = StreamHub(EventLog(), tokens=store, heartbeat_s=3600)  # it has seen this generation already
    hub.start()
    ours, theirs = socket.socketpair()
    try:
        assert hub.reserve(10)
        hub.add(ours, cursor=0, seq=0, token=entry.digest)
        theirs.settimeout(3)
        assert theirs.recv(100) == b""
        wait_until(lambda: hub.clients == 0, message="the slot given back")
    finally:
        hub.stop()
        theirs.close()


def test_a_change_waits_for_another_process_and_takes_over_a_stale_lock(tmp_path):
    """The CLI and the dashboard change tokens.json under tokens.json.lock: one waits for the other
    (here: gives up with a clear error), and a lock left by a dead process is taken over."""
    lock = tmp_path / "tokens.json.lock"
    lock.write_text("")
    store = TokenStore(tmp_path / "tokens.json", lock_wait_s=0.2)
    with pytest.raises(ValueError, match="another change to the tokens holds"):
        store.add("a", ("read",))
    assert not (tmp_path / "tokens.json").exists()
    old = os.stat(lock).st_mtime - 3600
    os.utime(lock, (old, old))
    secret, _ = store.add("a", ("read",))
    assert store.lookup(secret) is not None and not lock.exists()
