"""The route table: every path the dashboard answers, the handler that answers it, and who may use it.

One concept: routing as data. ``DashboardHandler`` finds a request's ``Route`` here and calls
the handler it names; ``guard.check_access`` reads the route's ``Access`` before that. Tests walk
this table: every handler exists, the README lists every route and its rule, and with a token
every route but the page's refuses a client without it (tests/test_security.py).

Invariants:
- every row states its rule: ``Access`` has no default, so a new route cannot be left open
  by forgetting it;
- a request that no route takes (404, 405) is checked by the rule of the place it aims at
  (``access_for``): an unknown method or path under the API still needs the token, so what
  is there is not told to whoever lacks it; any method that changes state is checked as a write;
- HEAD is GET without the body; a path that exists under other methods gets 405 with ``Allow``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from sse_dashboard.web.tokens import SCOPES  # what a token may do; admin implies the others

__all__ = ["Access", "SCOPES", "PUBLIC", "READ", "WRITE", "ADMIN", "ADMIN_GET", "PING", "PING_ADMIN", "MCP", "BADGE", "KEYED", "STATUS", "Route", "ROUTES", "UNROUTED", "WRITE_METHODS",
           "SHARE_READS",
           "find_route", "allowed_methods", "access_for"]




@dataclass(frozen=True)
class Access:
    """Who may use a route. The token parts count only when tokens are in use (``--token``, or a
    token made with ``sse-dashboard token add``): without any, the API is open, as it always was.

    ``token``: a token is required, and ``scope`` says which one it needs (``read``: the page's
    data, the stream, reads; ``write``: posting metrics, events, pings, pushes; ``admin``: deletes,
    alert tests, configuration, tokens); it has no default, so a new route states it (``None``
    exactly where no token is asked for). ``cookie``: the page's cookie (set by ``/?token=``)
    carries it; not where a GET writes, since an ``<img>`` on any page would send it. ``query``:
    ``?token=`` carries it, for a URL pasted into a tool that cannot send headers. ``write``: the
    request changes state, so a foreign ``Origin`` (or another page's request) gets 403 and the
    per-address rate applies. ``name`` is how the README's API table says it."""

    name: str
    token: bool
    cookie: bool
    query: bool
    write: bool
    scope: str | None

    def __post_init__(self) -> None:
        if self.token and self.scope not in SCOPES:
            raise ValueError("a route that needs a token must say its scope (one of %s), not %r"
                             % (", ".join(SCOPES), self.scope))
        if not self.token and self.scope is not None:
            raise ValueError("a route open to anyone has no scope (%r)" % self.scope)


PUBLIC = Access("anyone", token=False, cookie=False, query=False, write=False, scope=None)  # the page: no data
READ = Access("read", token=True, cookie=True, query=False, write=False, scope="read")
WRITE = Access("write, same-origin", token=True, cookie=True, query=False, write=True, scope="write")
ADMIN = Access("admin, same-origin", token=True, cookie=True, query=False, write=True, scope="admin")
ADMIN_GET = Access("admin", token=True, cookie=True, query=False, write=False, scope="admin")  # reads only an admin may
# Heartbeats: cron jobs and push monitors send GET, so a GET writes here (README "Heartbeats").
PING = Access("write or ?token=, same-origin", token=True, cookie=False, query=True, write=True, scope="write")
PING_ADMIN = Access("admin or ?token=, same-origin", token=True, cookie=False, query=True, write=True, scope="admin")
# MCP: an agent with a read token may use its read tools; the one that posts needs 'write' (web/mcp.py).
MCP = Access("read (write to post), same-origin", token=True, cookie=True, query=False, write=True, scope="read")
# Badges: a job's or a heartbeat's state (up, down...) and nothing else, for anyone (#26).
BADGE = Access("anyone (the state only)", token=False, cookie=False, query=False, write=False, scope=None)
# Status pages: for anyone, showing only what the page's configuration lists (#26).
STATUS = Access("anyone (what the page lists)", token=False, cookie=False, query=False, write=False, scope=None)
# Job pings: the URL's job UUID or ping key is the secret, as in Healthchecks, so a script written
# for it changes only its base URL (README "Jobs"); a GET writes here too.
KEYED = Access("the job's UUID or ping key in the URL, same-origin", token=False, cookie=False, query=False,
               write=True, scope=None)

WRITE_METHODS = ("POST", "PUT", "DELETE")


@dataclass(frozen=True)
class Route:
    """One row: ``method`` and ``path`` (the whole path, or with ``prefix`` its start) go to the
    handler method named ``handler``, for whoever ``access`` lets in."""

    method: str
    path: str
    handler: str
    access: Access
    prefix: bool = False

    def matches(self, path: str) -> bool:
        return path.startswith(self.path) if self.prefix else path == self.path


ROUTES = (
    Route("GET", "/", "serve_index", PUBLIC),
    Route("GET", "/index.html", "serve_index", PUBLIC),
    Route("GET", "/static/", "serve_static", PUBLIC, prefix=True),
    Route("GET", "/api/metrics", "get_metrics", READ),
    Route("POST", "/api/metrics", "post_metrics", WRITE),
    Route("DELETE", "/api/metrics/counters/", "delete_metric", ADMIN, prefix=True),
    Route("DELETE", "/api/metrics/gauges/", "delete_metric", ADMIN, prefix=True),
    Route("GET", "/api/metrics/stream", "stream_metrics", READ),
    Route("GET", "/api/metrics/history", "get_history", READ),
    Route("GET", "/api/events", "get_events", READ),
    Route("POST", "/api/events", "post_event", WRITE),
    Route("GET", "/api/push/", "push_heartbeat", PING, prefix=True),
    Route("POST", "/api/push/", "push_heartbeat", PING, prefix=True),
    Route("DELETE", "/api/push/", "delete_heartbeat", PING_ADMIN, prefix=True),
    Route("PUT", "/metrics/job", "push_metrics", WRITE, prefix=True),  # the Pushgateway's API
    Route("POST", "/metrics/job", "push_metrics", WRITE, prefix=True),
    Route("DELETE", "/metrics/job", "delete_push_group", ADMIN, prefix=True),
    Route("POST", "/v1/metrics", "post_otlp_metrics", WRITE),  # OTLP/HTTP, as OpenTelemetry SDKs export
    Route("POST", "/v1/logs", "post_otlp_logs", WRITE),
    Route("GET", "/ping/", "ping_job", KEYED, prefix=True),  # Healthchecks' ping URLs
    Route("POST", "/ping/", "ping_job", KEYED, prefix=True),
    Route("GET", "/api/jobs", "get_jobs", READ),
    Route("POST", "/api/jobs", "post_job", ADMIN),  # a job monitor is configuration
    Route("GET", "/api/jobs/", "get_job", READ, prefix=True),
    Route("POST", "/api/jobs/", "post_job_action", ADMIN, prefix=True),
    Route("DELETE", "/api/jobs/", "delete_job", ADMIN, prefix=True),
    Route("GET", "/api/health", "get_health", READ),
    Route("GET", "/api/alerts", "get_alerts", READ),
    Route("GET", "/api/processes", "get_processes", READ),
    Route("POST", "/api/alerts/test", "post_alerts_test", ADMIN),
    Route("POST", "/mcp", "post_mcp", MCP),
    Route("GET", "/metrics", "get_prometheus", READ),
    Route("GET", "/api/openapi.json", "get_openapi", READ),
    Route("GET", "/fleet", "serve_fleet", PUBLIC),  # the fleet page: it holds no data (#25)
    Route("GET", "/api/fleet", "get_fleet", READ),
    Route("GET", "/api/tokens", "get_tokens", ADMIN_GET),  # scoped tokens (#26)
    Route("POST", "/api/tokens", "post_token", ADMIN),
    Route("DELETE", "/api/tokens/", "delete_token", ADMIN, prefix=True),
    Route("GET", "/badge/", "get_badge", BADGE, prefix=True),  # a job's, heartbeat's, alert's or status page's state, for a README
    Route("GET", "/status/", "serve_status", STATUS, prefix=True),  # status pages: HTML, feed.atom, stream (#26)
    Route("GET", "/api/status-pages", "get_status_pages", ADMIN_GET),
    Route("PUT", "/api/status-pages/", "put_status_page", ADMIN, prefix=True),
    Route("POST", "/api/status-pages/", "post_status_page", ADMIN, prefix=True),
    Route("DELETE", "/api/status-pages/", "delete_status_page", ADMIN, prefix=True),
    # Share links (#26): the link is its own credential (web/shares.py), so the page needs no token.
    Route("GET", "/s/", "serve_share", PUBLIC, prefix=True),
    Route("GET", "/api/share", "get_share_session", READ),  # what a ?share= session shows (the page asks)
    Route("GET", "/api/shares", "get_shares", ADMIN_GET),
    Route("POST", "/api/shares", "post_share", ADMIN),
    Route("DELETE", "/api/shares/", "delete_share", ADMIN, prefix=True),
)

# What a share link's viewer (``?share=<id>``) may read: the handler, and the sections of which the
# link must show one (empty: any link). Everything else that needs a token is refused to it (403),
# every write included; routes open to anyone stay open. Each has its filter in ``shareview.FILTERS``.
# Events are as the stream sends them: none to a link without the "events" section (an empty page).
SHARE_READS = {
    "get_metrics": (), "stream_metrics": (), "get_history": (), "get_share_session": (),
    "get_events": (), "get_jobs": ("jobs",), "get_job": ("jobs",),
    "get_alerts": ("alerts", "heartbeats"), "get_processes": ("processes",),
}

# The API's own places: a path under one that no route takes is still the API's, and needs the
# token before it is told 404. Any other unknown path is nobody's: 404 for anyone.
UNROUTED = (("/api/", READ), ("/metrics/", READ), ("/v1/", WRITE))

_EXACT = {(route.method, route.path): route for route in ROUTES if not route.prefix}
_PREFIXED = tuple(route for route in ROUTES if route.prefix)


def find_route(method: str, path: str) -> Route | None:
    """The route for ``method`` (HEAD is looked up as GET) and ``path``: an exact path first,
    then the prefixes in table order."""
    method = "GET" if method == "HEAD" else method
    route = _EXACT.get((method, path))
    if route is None:
        route = next((r for r in _PREFIXED if r.method == method and r.matches(path)), None)
    return route


def allowed_methods(path: str) -> list[str]:
    """The methods ``path`` takes, for a 405's ``Allow`` (HEAD wherever GET is); empty: 404."""
    methods = {route.method for route in ROUTES if route.matches(path)}
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


def access_for(method: str, path: str) -> Access:
    """Who may send this request: its route's rule; with no route, the rule of the path's
    routes under other methods (a 405), else of the API place it is under (``UNROUTED``), else
    anyone's. Without a route it is a write when its method is one, or the path's GET writes."""
    route = find_route(method, path)
    if route is not None:
        return route.access
    near = [route for route in ROUTES if route.matches(path)]
    if near:
        rule = near[0].access  # every route of one path asks for the token the same way (a test says so)
        get_writes = any(route.method == "GET" and route.access.write for route in near)
    else:
        rule = next((access for start, access in UNROUTED if path.startswith(start)), PUBLIC)
        get_writes = False
    return dataclasses.replace(rule, write=method in WRITE_METHODS or get_writes)
