"""Access control and limits, against the real server: token, Host, Origin, CORS, caps, slow clients."""

import json
import socket
import time

import pytest

from conftest import SSEReader, wait_until
from sse_dashboard.web.guard import RateLimiter, cookie_name, host_allowed, token_matches
from sse_dashboard.web.routes import ROUTES


def call(server, method, path, body=None, headers=None, source="127.0.0.1"):
    return server.request(method, path, body, headers, source=source)


# --- token ----------------------------------------------------------------------

def concrete(route) -> str:
    """A path the route takes: a prefix route's prefix with a name after it."""
    return route.path + ("x" if route.path.endswith("/") else "/x") if route.prefix else route.path


@pytest.mark.parametrize("route", [r for r in ROUTES if r.access.token], ids=lambda r: "%s %s" % (r.method, r.path))
def test_with_a_token_every_route_but_the_pages_needs_it(make_server, route):
    """Walks the route table itself: a route added later is checked here without being listed."""
    server = make_server(token="s3cret")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"},
                    {"Cookie": "%s=wrong" % cookie_name(server.port)}):
        status, resp_headers, body = call(server, route.method, concrete(route) + "?token=wrong", headers=headers)
        assert status == 401, headers
        assert resp_headers["WWW-Authenticate"] == "Bearer"
        assert "token" in json.loads(body)["error"]


def test_only_the_page_and_the_job_pings_are_open_to_anyone():
    """A route anyone may use is a decision, made here: the pages (the dashboard's, the fleet's)
    and their files hold no data; a job ping's secret is in its URL (the job's UUID or the ping
    key), as in Healthchecks; a badge shows a job's or heartbeat's state and nothing else; a status page what its configuration
    lists; a share link's page holds no data either, and its id is its secret (#26)."""
    assert {(r.method, r.path) for r in ROUTES if not r.access.token} == {
        ("GET", "/"), ("GET", "/index.html"), ("GET", "/static/"), ("GET", "/fleet"), ("GET", "/ping/"),
        ("POST", "/ping/"), ("GET", "/badge/"), ("GET", "/status/"), ("GET", "/s/")}


def test_with_a_token_a_job_ping_still_needs_only_its_url(make_server):
    server = make_server(token="s3cret")
    job = server.json("POST", "/api/jobs", {"slug": "backup", "schedule": 60},
                      headers={"Authorization": "Bearer s3cret"})[1]["id"]
    assert call(server, "GET", "/ping/%s" % job)[::2] == (200, b"OK")
    assert call(server, "GET", "/ping/%s" % job.replace(job[-4:], "0000"))[::2] == (404, b"not found")
    assert call(server, "GET", "/ping/%s" % job, headers={"Origin": "http://evil.example"})[0] == 403


@pytest.mark.parametrize("method, path", [("GET", "/api/nope"), ("GET", "/api/"), ("POST", "/metrics/nope"),
                                          ("PUT", "/api/metrics"), ("GET", "/mcp"), ("GET", "/metrics/job/x"),
                                          ("PATCH", "/api/push/job")])
def test_with_a_token_an_unknown_api_path_or_method_is_401_before_404_or_405(make_server, method, path):
    server = make_server(token="s3cret")
    assert call(server, method, path)[0] == 401
    assert call(server, method, path, headers={"Authorization": "Bearer s3cret"})[0] in (404, 405)


def test_bearer_token_opens_the_api(make_server):
    server = make_server(token="s3cret")
    status, _, _ = call(server, "GET", "/api/health", headers={"Authorization": "Bearer s3cret"})
    assert status == 200
    status, _, _ = call(server, "POST", "/api/events", {"message": "x"}, headers={"Authorization": "bearer s3cret"})
    assert status == 201


def test_unauthorised_post_stores_nothing(make_server):
    server = make_server(token="s3cret")
    assert call(server, "POST", "/api/events", {"message": "x"})[0] == 401
    assert call(server, "POST", "/api/metrics", {"gauges": {"g": 1}})[0] == 401
    assert server.server.events.last_id == 0 and server.server.registry.snapshot() == ({}, {})


def test_page_is_served_without_the_token_but_shows_no_data(make_server):
    server = make_server(token="s3cret")
    status, _, body = call(server, "GET", "/")
    assert status == 200 and b"sse-dashboard" in body


def test_visiting_with_the_token_sets_an_httponly_cookie_that_opens_api_and_stream(make_server):
    server = make_server(token="s3cret")
    status, headers, _ = call(server, "GET", "/?token=s3cret")
    assert status == 303 and headers["Location"] == "/"
    cookie = headers["Set-Cookie"]
    name = cookie_name(server.port)
    assert cookie.startswith(name + "=s3cret;") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    jar = {"Cookie": "%s=s3cret" % name}
    assert call(server, "GET", "/api/metrics", headers=jar)[0] == 200
    reader = SSEReader(server.host, server.port, headers=jar)
    try:
        assert reader.status == 200 and reader.next_event("metrics")
    finally:
        reader.close()
    assert call(server, "GET", "/api/metrics", headers={"Cookie": "%s=nope" % name})[0] == 401
    assert call(server, "GET", "/api/metrics", headers={"Cookie": "sse_dashboard_token_1=s3cret"})[0] == 401


def test_the_token_cookie_is_secure_through_an_https_public_url_and_only_there(make_server):
    """Behind a TLS proxy (--public-url https://...), the cookie carrying the token must never go
    back over plain http; opened directly on http://127.0.0.1, it cannot be Secure or it is lost."""
    server = make_server(token="s3cret", public_url="https://dash.example.org")
    for host in ("dash.example.org", "dash.example.org:443", "DASH.example.org."):
        status, headers, _ = call(server, "GET", "/?token=s3cret", headers={"Host": host})
        assert status == 303 and headers["Set-Cookie"].endswith("; Secure"), host
    status, headers, _ = call(server, "GET", "/?token=s3cret")
    assert status == 303 and "Secure" not in headers["Set-Cookie"]
    plain = make_server(token="s3cret")
    assert "Secure" not in call(plain, "GET", "/?token=s3cret")[1]["Set-Cookie"]


def test_visiting_with_a_wrong_token_is_401(make_server):
    server = make_server(token="s3cret")
    status, headers, _ = call(server, "GET", "/?token=guess")
    assert status == 401 and "Set-Cookie" not in headers


def test_token_comparison_and_no_token_mode():
    assert token_matches(None, None) and token_matches("", "anything")
    assert token_matches("abc", "abc") and not token_matches("abc", "abd") and not token_matches("abc", None)


# --- Host header (DNS rebinding) ------------------------------------------------

@pytest.mark.parametrize("host, ok", [
    ("127.0.0.1:8080", True), ("localhost:8080", True), ("LOCALHOST", True), ("[::1]:8080", True),
    ("192.168.1.20", True), ("app.localhost", True), ("evil.example", False), ("evil.example:8080", False),
    ("127.0.0.1.nip.io", False), ("", False), ("dash.lan", False),
])
def test_host_rules(host, ok):
    assert host_allowed(host) is ok


def test_foreign_host_header_is_refused_everywhere(make_server):
    server = make_server()
    for path in ("/", "/api/metrics", "/static/app.js", "/api/metrics/stream"):
        status, _, body = call(server, "GET", path, headers={"Host": "rebind.attacker.example"})
        assert status == 421 and "Host" in json.loads(body)["error"], path
    status, _, _ = call(server, "POST", "/api/events", {"message": "x"}, headers={"Host": "rebind.attacker.example"})
    assert status == 421 and server.server.events.last_id == 0


def test_allow_host_admits_a_named_host(make_server):
    server = make_server(allowed_hosts=("dash.lan",))
    assert call(server, "GET", "/api/health", headers={"Host": "dash.lan:8080"})[0] == 200
    assert call(server, "GET", "/api/health", headers={"Host": "other.lan"})[0] == 421


# --- Origin, CORS ------------------------------------------------------------------

def test_cross_site_post_is_refused_and_stores_nothing(server):
    status, _, body = call(server, "POST", "/api/events", {"message": "x"}, headers={"Origin": "http://evil.example"})
    assert status == 403 and "cross-site" in json.loads(body)["error"]
    assert server.server.events.last_id == 0
    same = "http://%s:%d" % (server.host, server.port)
    assert call(server, "POST", "/api/events", {"message": "x"}, headers={"Origin": same})[0] == 201


def test_no_cors_headers_by_default(server):
    _, headers, _ = call(server, "GET", "/api/metrics", headers={"Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in headers
    assert call(server, "OPTIONS", "/api/events", headers={"Origin": "http://evil.example"})[0] == 405


def test_cors_origin_allows_exactly_that_origin(make_server):
    server = make_server(cors_origin="https://grafana.example")
    origin = {"Origin": "https://grafana.example"}
    _, headers, _ = call(server, "GET", "/api/metrics", headers=origin)
    assert headers["Access-Control-Allow-Origin"] == "https://grafana.example" and headers["Vary"] == "Origin"
    status, headers, _ = call(server, "OPTIONS", "/api/events", headers=dict(origin, **{
        "Access-Control-Request-Method": "POST"}))
    assert status == 204 and "POST" in headers["Access-Control-Allow-Methods"]
    assert call(server, "POST", "/api/events", {"message": "x"}, headers=origin)[0] == 201
    _, headers, _ = call(server, "GET", "/api/metrics", headers={"Origin": "https://other.example"})
    assert "Access-Control-Allow-Origin" not in headers


def post_from(server, origin, host=None):
    """The status of a write sent with this ``Origin`` (and ``Host``, else the server's own)."""
    headers = {"Origin": origin}
    if host is not None:
        headers["Host"] = host
    return call(server, "POST", "/api/events", {"message": "x"}, headers=headers)[0]


def test_the_https_origin_of_the_requests_own_host_is_the_pages_own(make_server):
    # A TLS proxy passing the Host it is reached by (README): the page's writes carry an
    # https Origin for that very Host. Foreign ones stay out, and store nothing.
    server = make_server(allowed_hosts=("dash.lan",))
    assert post_from(server, "https://dash.lan", host="dash.lan") == 201
    assert post_from(server, "https://dash.lan:8443", host="dash.lan:8443") == 201
    assert post_from(server, "https://dash.lan", host="dash.lan:443") == 201   # Origin drops a default port
    assert post_from(server, "https://%s:%d" % (server.host, server.port)) == 201
    stored = server.server.events.last_id
    for origin, host in [("https://dash.lan:8443", "dash.lan"),        # another port
                         ("https://dash.lan", "dash.lan:8443"),
                         ("https://evil.lan", "dash.lan"),              # another host
                         ("https://dash.lan.evil.example", "dash.lan"),
                         ("https://127.0.0.1", "dash.lan"),
                         ("null", "dash.lan"),                          # a sandboxed frame, a data: page
                         ("https://dash.lan", None)]:                   # Host is the server's own address
        status = post_from(server, origin, host)
        assert status == 403, (origin, host, status)
    assert server.server.events.last_id == stored


def test_public_url_is_the_one_origin_for_its_name_and_admits_its_host(make_server):
    server = make_server(public_url="https://dash.example.org/")
    # Its name is allowed without --allow-host: the operator has said it is ours.
    assert call(server, "GET", "/api/health", headers={"Host": "dash.example.org"})[0] == 200
    assert post_from(server, "https://dash.example.org", host="dash.example.org") == 201
    # nginx's $host drops the port: the public URL, not the Host, says which one the page has.
    server_8443 = make_server(public_url="https://dash.example.org:8443")
    assert post_from(server_8443, "https://dash.example.org:8443", host="dash.example.org") == 201
    assert post_from(server_8443, "https://dash.example.org", host="dash.example.org") == 403
    stored = server.server.events.last_id
    # Plain http on the public name is what a network attacker can forge (no TLS), so once the
    # page is said to be https there, it is refused even though it matches http:// + Host.
    for origin in ("http://dash.example.org", "https://dash.example.org:8443", "https://evil.example", "null"):
        assert post_from(server, origin, host="dash.example.org") == 403, origin
    assert server.server.events.last_id == stored
    # The dashboard opened directly on this machine still writes.
    assert post_from(server, "http://%s:%d" % (server.host, server.port)) == 201


@pytest.mark.parametrize("url", ["dash.example.org", "ftp://dash.example.org", "https://",
                                 "https://dash.example.org/dash/", "https://user:pw@dash.example.org",
                                 "https://dash.example.org/?a=1", "https://dash.example.org:99999"])
def test_public_url_must_be_an_origin(url, capsys):
    from sse_dashboard.cli import parse_args
    from sse_dashboard.config import Config
    with pytest.raises(ValueError, match="public URL"):
        Config(public_url=url)
    with pytest.raises(SystemExit):
        parse_args(["--public-url", url])
    err = capsys.readouterr().err
    assert "--public-url" in err and "pw" not in err


# --- headers on every response ----------------------------------------------------------

@pytest.mark.parametrize("method, path", [("GET", "/"), ("GET", "/static/app.js"), ("GET", "/api/metrics"),
                                          ("GET", "/api/nope"), ("DELETE", "/api/events"), ("POST", "/api/events")])
def test_security_headers_on_every_response(server, method, path):
    _, headers, _ = call(server, method, path, body=b"{}", headers={"Content-Type": "application/json"})
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"


def test_security_headers_on_the_stream(server, sse_reader):
    reader = sse_reader(server)
    assert "default-src 'self'" in reader.headers["content-security-policy"]
    assert reader.headers["referrer-policy"] == "no-referrer"


def test_protocol_errors_are_json_too(server):
    reply = server.raw(b"GARBAGE\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"400" and b"GARBAGE" not in head
    assert "error" in json.loads(body)
    reply = server.raw(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Big: " + b"a" * 70000 + b"\r\n\r\n")
    assert reply.split(b" ")[1] in (b"400", b"431")


def test_an_unknown_method_is_405_with_allow(server):
    status, headers, body = call(server, "TRACE", "/api/metrics")
    assert status == 405 and headers["Allow"] == "GET, HEAD, POST"


# --- limits ------------------------------------------------------------------------------

def test_stream_cap_answers_503_with_retry_after_and_never_blocks_health(make_server, sse_reader):
    server = make_server(max_clients=2)
    first = sse_reader(server)
    second = sse_reader(server)
    first.next_event("metrics")
    second.next_event("metrics")
    status, headers, body = call(server, "GET", "/api/metrics/stream")
    assert status == 503 and headers["Retry-After"] and "too many" in json.loads(body)["error"]
    assert call(server, "GET", "/api/health")[0] == 200
    first.close()
    wait_until(lambda: server.server.stats()["clients"] == 1, message="a slot to free up")
    third = sse_reader(server)
    assert third.status == 200


def test_post_rate_limit_is_per_address_with_retry_after(make_server):
    server = make_server(post_rate_per_s=5)  # burst of 10
    statuses = [call(server, "POST", "/api/events", {"message": "m"})[0] for _ in range(15)]
    assert statuses[:10] == [201] * 10 and 429 in statuses[10:]
    stored = server.server.events.last_id
    assert stored == statuses.count(201)
    status, headers, body = call(server, "POST", "/api/events", {"message": "m"})
    assert status == 429 and int(headers["Retry-After"]) >= 1 and "slow down" in json.loads(body)["error"]
    # Another address has its own bucket, and reads are never limited.
    assert call(server, "POST", "/api/events", {"message": "m"}, source="127.0.0.2")[0] == 201
    assert call(server, "GET", "/api/events")[0] == 200


def test_rate_limiter_refills_and_stays_bounded():
    now = [0.0]
    limiter = RateLimiter(rate_per_s=2, burst=2, max_clients=3, clock=lambda: now[0])
    assert limiter.allow("a") == 0 and limiter.allow("a") == 0
    assert limiter.allow("a") == pytest.approx(0.5)
    now[0] += 0.5
    assert limiter.allow("a") == 0
    for name in "bcdef":
        limiter.allow(name)
    assert len(limiter._buckets) == 3


def test_slow_headers_are_dropped_without_holding_back_others(make_server):
    server = make_server(request_timeout_s=0.5)
    sock = socket.create_connection((server.host, server.port), timeout=5)
    try:
        started = time.monotonic()
        request = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        closed = False
        for byte in request[:-2]:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            # Meanwhile everyone else is served promptly.
            assert call(server, "GET", "/api/health")[0] == 200
            if time.monotonic() - started > 3:
                break
        if not closed:
            sock.settimeout(3)
            assert sock.recv(100) == b""  # the server gave up on us
        assert time.monotonic() - started < 3
    finally:
        sock.close()


def test_a_body_slower_than_promised_is_dropped_and_stores_nothing(make_server):
    server = make_server(request_timeout_s=0.5)
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(b"POST /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{\"message\":")
        started = time.monotonic()
        assert sock.recv(100) == b""
        assert time.monotonic() - started < 3
    assert server.server.events.last_id == 0


# --- scoped tokens (#26; tests/test_tokens.py walks every route) -----------------------------

def test_a_token_with_the_scope_still_meets_the_host_origin_and_rate_checks(make_server):
    server = make_server(token="s3cret", post_rate_per_s=1)
    admin = json.loads(call(server, "POST", "/api/tokens", {"name": "ops", "scopes": ["admin"]},
                            headers={"Authorization": "Bearer s3cret"})[2])["token"]
    bearer = {"Authorization": "Bearer " + admin}
    assert call(server, "GET", "/api/health", headers=dict(bearer, Host="rebind.attacker.example"))[0] == 421
    status, _, body = call(server, "POST", "/api/events", {"message": "x"}, headers=dict(bearer, Origin="http://evil.example"))
    assert status == 403 and "cross-site" in json.loads(body)["error"]
    statuses = [call(server, "POST", "/api/events", {"message": "x"}, headers=bearer)[0] for _ in range(12)]
    assert 429 in statuses


def test_too_little_scope_is_403_naming_it_and_no_token_is_401(make_server):
    server = make_server(token="s3cret")
    reader = json.loads(call(server, "POST", "/api/tokens", {"name": "wall", "scopes": ["read"]},
                             headers={"Authorization": "Bearer s3cret"})[2])["token"]
    status, headers, body = call(server, "DELETE", "/api/metrics/gauges/g", headers={"Authorization": "Bearer " + reader})
    assert status == 403 and json.loads(body) == {"error": "this needs the 'admin' scope; the token has read"}
    assert "WWW-Authenticate" not in headers
    assert call(server, "DELETE", "/api/metrics/gauges/g")[0] == 401
