"""Who may use the dashboard, and how much: tokens and their scopes, the Host header, Origin, rate limits.

One concept: access decisions, free of HTTP plumbing. ``DashboardHandler`` asks, with the
rule of the request's route (``routes.py`` says who may use each), and turns the answers
into statuses.

Invariants:
- a token is compared in constant time (``hmac.compare_digest``): ``--token`` here, the stored
  ones by their hashes (``tokens.TokenStore``);
- tokens are in use when there is ``--token`` or the data folder has a token file; then a route
  that asks for one answers 401 without a valid token and 403, naming the scope, to a token
  without the route's scope (``--token`` has every scope); without any, the API is open, as it
  always was (to this machine alone unless ``--host`` says otherwise);
- the Host header is trusted only when it is an IP literal, ``localhost``, a
  name given with ``--allow-host`` or the name of ``--public-url``: a
  DNS-rebinding page (glances CVE-2026-32632) reaches us under *its own* name,
  which is none of these;
- a write carrying an ``Origin`` must come from the page's own origin (see
  ``own_origins``): ``http://`` or ``https://`` and the request's (allowed)
  Host, exactly ``--public-url`` for that URL's name, or ``--cors-origin``;
- the rate limiter's memory is bounded (least recently seen addresses go first).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import math
import re
import threading
import time
import urllib.parse
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from sse_dashboard.config import browser_origin
from sse_dashboard.web.routes import SHARE_READS, Access, Route
from sse_dashboard.web.shares import Share, ShareStore
from sse_dashboard.web.tokens import SCOPES, TokenStore, implied_scopes

__all__ = ["token_matches", "token_problem", "host_allowed", "is_loopback", "RateLimiter", "cookie_name",
           "cookie_value", "parse_cookies", "redact_secrets", "Policy", "Decision", "check_access", "offered_token",
           "own_origins", "Grant", "grant_for", "tokens_in_use", "check_share"]

MAX_TOKEN_CHARS = 1000


def token_matches(expected: str | None, offered: str | None) -> bool:
    """True when no token is required, or ``offered`` equals it (constant time)."""
    if not expected:
        return True
    if offered is None:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), offered.encode("utf-8"))


def token_problem(token: str) -> str | None:
    """Why ``token`` cannot be used (said at start), or None. Any text a person can type
    works: it travels percent-encoded in the cookie and as UTF-8 elsewhere."""
    if not token.strip():
        return "the token must not be empty or blank"
    if len(token) > MAX_TOKEN_CHARS:
        return "the token must be at most %d characters" % MAX_TOKEN_CHARS
    if any(ord(c) < 32 or ord(c) == 127 for c in token):
        return "the token must not contain control characters (tabs, newlines)"
    try:
        token.encode("utf-8")
    except UnicodeEncodeError:
        return "the token must be valid Unicode text"
    return None


def cookie_name(port: int) -> str:
    # Cookies ignore ports: two dashboards on one host must not overwrite each other's.
    return "sse_dashboard_token_%d" % port


def cookie_value(token: str) -> str:
    """The token as a cookie value: percent-encoded, so spaces, ``;`` and non-ASCII survive."""
    return urllib.parse.quote(token, safe="")


def parse_cookies(header: str | None) -> dict[str, str]:
    """A Cookie header as {name: value}, leniently: one odd cookie of another app on
    localhost (``prefs={"a":1}``) must not hide ours, as ``SimpleCookie`` would."""
    cookies: dict[str, str] = {}
    for part in (header or "").split(";"):
        name, sep, value = part.partition("=")
        name = name.strip()
        if sep and name and name not in cookies:  # the first of duplicates is the most specific
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            cookies[name] = urllib.parse.unquote(value)
    return cookies


_SECRET_IN_QUERY = re.compile(r"((?:^|[?&;])token=)[^&\s;]*", re.IGNORECASE)
_SECRET_IN_PING = re.compile(r"(/ping/)[^/?\s]*")  # a job's UUID, or the ping key: whoever has it may ping
_SECRET_SHARE = re.compile(r"((?:^|[?&;])share=|/s/)[^&\s;/?]*")  # a share link's id opens it


def redact_secrets(text: str) -> str:
    """A request line or path with the value of any ``token=`` and a ping URL's UUID or ping
    key replaced, for logs."""
    text = _SECRET_SHARE.sub(r"\1[redacted]", text)
    return _SECRET_IN_PING.sub(r"\1[redacted]", _SECRET_IN_QUERY.sub(r"\1[redacted]", text))


def _split_host(host_header: str) -> str:
    host = host_header.strip().lower()
    if host.startswith("["):  # [::1]:8080; anything else after "]" is not a host
        inside, bracket, rest = host[1:].partition("]")
        return inside if bracket and ":" in inside and re.fullmatch(r"(:[0-9]{1,5})?", rest) else host
    if host.count(":") == 1:
        return host.rsplit(":", 1)[0]
    return host


def host_allowed(host_header: str | None, allowed_names: Iterable[str] = ()) -> bool:
    """Whether a request's Host header names this server (see the module docstring)."""
    if host_header is None:
        return True  # HTTP/1.0 clients may omit it; browsers, and so rebinding pages, never do
    host = _split_host(host_header).rstrip(".")
    if host in ("localhost",) or host.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    return host in {name.lower().rstrip(".") for name in allowed_names}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RateLimiter:
    """A token bucket per client address.

    >>> limiter = RateLimiter(rate_per_s=10, burst=20)
    >>> limiter.allow("127.0.0.1")
    0.0

    ``allow()`` returns 0.0 when the request may go ahead, else the seconds to
    wait (for ``Retry-After``). ``rate_per_s=0`` turns limiting off.
    """

    def __init__(self, rate_per_s: float, burst: float, max_clients: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate_per_s = rate_per_s
        self.burst = max(1.0, burst)
        self._max_clients = max_clients
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, client: str) -> float:
        if self.rate_per_s <= 0:
            return 0.0
        now = self._clock()
        with self._lock:
            tokens, then = self._buckets.pop(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.rate_per_s)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self.rate_per_s
            self._buckets[client] = (tokens, now)
            while len(self._buckets) > self._max_clients:
                self._buckets.popitem(last=False)
        return wait


# --------------------------------------------------------------------------
# The access decision for one request
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Policy:
    """Who may do what: from the dashboard's configuration, fixed for its run, and its token store
    (``tokens``), whose tokens change while it runs."""

    port: int
    token: str | None = None
    allowed_hosts: tuple = ()
    cors_origin: str | None = None
    writes: RateLimiter | None = None
    public_origin: str | None = None  # ``origin_of(--public-url)``: where the page is served from
    tokens: TokenStore | None = None  # the data folder's scoped tokens (#26)

    @property
    def public_host(self) -> str | None:
        """The public URL's host name (its Host is ours), or None."""
        return urllib.parse.urlsplit(self.public_origin).hostname.rstrip(".") if self.public_origin else None


@dataclass(frozen=True)
class Grant:
    """Who a valid token is: its ``name`` (``--token`` for that one), the ``scopes`` it may use,
    and its ``digest`` (None for ``--token``, which cannot be revoked) to tell when it is revoked."""

    name: str
    scopes: frozenset
    digest: str | None


def tokens_in_use(policy: Policy) -> bool:
    """Whether routes that ask for a token get one: ``--token``, or the data folder has tokens."""
    return bool(policy.token) or (policy.tokens is not None and policy.tokens.enabled)


def grant_for(policy: Policy, offered: str | None) -> Grant | None:
    """The grant of the token ``offered``, or None when it is no valid token."""
    if offered is None:
        return None
    if policy.token and token_matches(policy.token, offered):
        return Grant("--token", frozenset(SCOPES), None)
    stored = policy.tokens.lookup(offered) if policy.tokens is not None else None
    if stored is None:
        return None
    return Grant(stored.name, implied_scopes(stored.scopes), stored.digest)


@dataclass(frozen=True)
class Decision:
    """Not allowed (``status`` 4xx with ``message``), or a CORS preflight answered (204)."""

    status: int
    message: str = ""
    headers: tuple = ()


PREFLIGHT = Decision(204, headers=(
    ("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE"),
    ("Access-Control-Allow-Headers", "Content-Type, Authorization, Last-Event-ID"),
    ("Access-Control-Max-Age", "600"),
))


def check_access(policy: Policy, access: Access, method: str, headers: Mapping[str, str],
                 client: str, query_token: str | None = None) -> Decision | None:
    """None when the request may go on to its handler; else what to answer instead.

    ``access`` is the rule of the request's route (``routes.access_for``). In order: the Host
    header (DNS rebinding), a CORS preflight from the one allowed origin, the token where the
    rule asks for it and its scope, then for writes the Origin (CSRF) and the rate. ``query_token``
    (``?token=``) counts only where the rule says so: a heartbeat URL pasted into a tool
    that cannot send headers."""
    if not host_allowed(headers.get("Host"), _our_names(policy)):
        return MISDIRECTED
    origin = headers.get("Origin")
    if method == "OPTIONS" and policy.cors_origin and origin == policy.cors_origin:
        return PREFLIGHT
    if access.token and tokens_in_use(policy):
        offered = offered_token(policy, headers, cookie=access.cookie)
        if offered is None and access.query:
            offered = query_token
        grant = grant_for(policy, offered)
        if grant is None:
            return Decision(401, "a valid token is required (Authorization: Bearer TOKEN, or open /?token=TOKEN once)",
                            (("WWW-Authenticate", "Bearer"),))
        if access.scope not in grant.scopes:
            return Decision(403, "this needs the '%s' scope; the token has %s" % (
                access.scope, ", ".join(s for s in SCOPES if s in grant.scopes)))
    if access.write:
        if origin is not None and origin not in own_origins(policy, headers.get("Host")):
            return Decision(403, "cross-site requests are refused (Origin %s; behind a proxy, see --public-url)"
                            % json.dumps(origin[:100]))
        if origin is None and headers.get("Sec-Fetch-Site") not in (None, "same-origin", "none"):
            # A GET from another page's <img> or link carries no Origin; browsers still say where
            # it came from here. Same-site is not enough: another port of localhost is same-site.
            return Decision(403, "requests from other pages are refused")
        wait_s = policy.writes.allow(client) if policy.writes is not None else 0.0
        if wait_s > 0:
            return Decision(429, "too many requests: slow down", (("Retry-After", str(max(1, math.ceil(wait_s)))),))
    return None


MISDIRECTED = Decision(421, "this server does not answer to that Host name (see --allow-host)")


def _our_names(policy: Policy) -> tuple:
    return policy.allowed_hosts + ((policy.public_host,) if policy.public_host else ())


def check_share(policy: Policy, shares: ShareStore, route: Route | None, access: Access, method: str,
                headers: Mapping[str, str], link_id: str) -> tuple[Decision | None, Share | None]:
    """A share session's request (``?share=<id>``): (None, its link) when it may go on, else (what
    to answer, None). The Host check first, as for anyone; then an unknown or revoked link is 404
    and an expired one 410; routes open to anyone stay open; of the rest a link reads only what
    ``routes.SHARE_READS`` allows its sections, and never writes (403). Its token, if it also
    offers one, does not count: the session is the link's."""
    if not host_allowed(headers.get("Host"), _our_names(policy)):
        return MISDIRECTED, None
    share, state = shares.lookup(link_id[:200])
    if share is None:
        return Decision(404, "no such share link (it was revoked, or never existed)"), None
    if state == "expired":
        return Decision(410, "this share link has expired"), None
    if not access.token and not access.write:
        return None, share  # the page's own files and badges, open to anyone anyway
    needs = SHARE_READS.get(route.handler) if route is not None and method in ("GET", "HEAD") else None
    if needs is None:
        return Decision(403, "a share link only reads what it shows; this needs a token"), None
    if needs and not set(needs) & set(share.sections):
        return Decision(403, "this share link does not show the %s section" % " or ".join(needs)), None
    return None, share


def own_origins(policy: Policy, host_header: str | None) -> set[str]:
    """The origins a write may come from: the page's own, and ``--cors-origin``.

    The page is served either directly or through a TLS proxy that passes on the Host it is
    reached by (README), so its origin is ``http://`` or ``https://`` + that Host. This is
    asked only after ``host_allowed``, so the Host is ours, and a browser never lets a page
    set it: only a page served from that very host and port has such an Origin. Ports count
    (``Origin`` carries one unless it is the default), so a same-site page on another port
    of the same name, which the ``SameSite`` cookie does reach, is still refused; so are
    other names for the same address, and ``null``. DNS rebinding cannot get here: the
    rebound name fails the Host check first. A Host without a port stands for both default
    ports (80 and 443), which the Host alone cannot tell apart.

    ``--public-url`` says which one is the page's for its name: then ``http://`` on that
    name is refused too (a network attacker can forge a plain-HTTP page there and post from
    it to the https one), and a proxy that drops the port from Host (nginx's ``$host``)
    still matches. A Host that is not the public name (the dashboard opened directly at
    ``http://127.0.0.1:8080``) keeps the rule above."""
    origins = {o for o in (policy.cors_origin, policy.public_origin) if o}
    host = host_header.strip() if host_header else ""
    if host and _split_host(host).rstrip(".") != policy.public_host:
        origins.update((browser_origin("http", host), browser_origin("https", host)))
    return origins


def offered_token(policy: Policy, headers: Mapping[str, str], cookie: bool = True) -> str | None:
    """The token a request offers: ``Authorization: Bearer``, else (``cookie``) this dashboard's cookie."""
    auth = headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return _header_text(auth[7:].strip())
    return parse_cookies(headers.get("Cookie")).get(cookie_name(policy.port)) if cookie else None


def _header_text(value: str) -> str:
    """A header value as the client meant it: http.server decodes header bytes as
    Latin-1, so a UTF-8 token (é) arrives as mojibake unless it is decoded again."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value
