"""Notify targets: where a notification goes, and what it is sent in each target's format.

One concept: a target as the config file names it (``"notify": [...]``), and the bytes it
receives: the JSON message (Standard Webhooks signed), or ntfy's, Slack's or Discord's shape.

Invariants:
- a target URL is checked when it is loaded with the rules http.client applies when it sends
  (no space, control or non-ASCII character; a numeric port), so it cannot fail later for
  that; ``user:password@`` in it is sent as HTTP basic auth, not as part of the host;
- an error about a URL never repeats it: its path or query may be the secret (Slack, Discord);
- every retry of a delivery carries the same ``webhook-id``, a fresh ``webhook-timestamp``
  and the signature over both (Standard Webhooks);
- Slack's and Discord's text can ping nobody, whatever the alert's message says.
"""

from __future__ import annotations

import base64
import email.header
import hashlib
import hmac
import json
import re
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

__all__ = ["Target", "parse_targets", "message", "render", "sign", "FORMATS", "LEVELS"]

FORMATS = ("json", "ntfy", "slack", "discord")
LEVELS = ("warning", "error")
DEFAULT_REPEAT_S = 600.0
_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# What http.client refuses in a request line or host (its _contains_disallowed_url_pchar_re).
_URL_FORBIDDEN_RE = re.compile("[\x00-\x20\x7f]")


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    format: str = "json"
    secret: str | None = field(default=None, repr=False)
    levels: tuple = LEVELS
    repeat_s: float = DEFAULT_REPEAT_S

    def __post_init__(self) -> None:
        problem = _url_problem(self.url)
        if problem:
            raise ValueError("notify target %s: %s" % (self.name, problem))

    @property
    def where(self) -> str:
        """The URL without path or query (Slack and Discord put their secret in the path)."""
        parts = urllib.parse.urlsplit(self.url)
        return "%s://%s" % (parts.scheme, parts.netloc.rpartition("@")[2])

    def request(self, message: dict, timestamp: int) -> urllib.request.Request:
        """The POST that delivers ``message``: in this target's format, with the Standard Webhooks
        headers (signed when there is a secret), and ``user:password@`` as basic auth."""
        body, headers = render(self, message)
        headers.update({"webhook-id": message["id"], "webhook-timestamp": str(timestamp),
                        "User-Agent": "sse-dashboard-notify"})
        if self.secret:
            headers["webhook-signature"] = sign(self.secret, message["id"], timestamp, body)
        url, authorization = _split_credentials(self.url)
        if authorization:
            headers["Authorization"] = authorization
        return urllib.request.Request(url, data=body, headers=headers, method="POST")


def _url_problem(url: Any) -> str | None:
    """Why ``url`` cannot be a target's URL, in words that never repeat it (its path or query
    may be the secret); None when http.client will send to it. Checked on the raw string:
    ``urlsplit`` silently drops tabs and newlines that http.client then refuses."""
    if not isinstance(url, str):
        return "url must be an http:// or https:// URL"
    if _URL_FORBIDDEN_RE.search(url):
        return "url has a space or control character (percent-encode it: a space is %20)"
    if not url.isascii():
        return "url has a non-ASCII character (percent-encode it; a host name in punycode, xn--)"
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not 0-65535
    except ValueError:
        return "url has a bad host or port (a port is a number up to 65535; an IPv6 host in [brackets])"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "url must be an http:// or https:// URL"
    return None


def _split_credentials(url: str) -> tuple[str, str | None]:
    """(the URL without ``user:password@``, a basic ``Authorization`` value or None): urllib
    would take the credentials for part of the host name (RFC 7617; percent-escapes decoded)."""
    netloc = urllib.parse.urlsplit(url).netloc
    if "@" not in netloc:
        return url, None
    userinfo, _, hostport = netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    credentials = "%s:%s" % (urllib.parse.unquote(user), urllib.parse.unquote(password))
    head, _, rest = url.partition("//")
    return (head + "//" + hostport + rest[len(netloc):],
            "Basic " + base64.b64encode(credentials.encode("utf-8")).decode("ascii"))


def parse_targets(document: Any) -> list[Target]:
    """The config file's ``"notify": [{"name", "url", "format", "secret", "levels", "repeat"}]``."""
    if document is None:
        return []
    if not isinstance(document, list):
        raise ValueError('"notify" must be a list of targets')
    targets = []
    for index, raw in enumerate(document, start=1):
        where = "notify target %d" % index
        if not isinstance(raw, dict):
            raise ValueError("%s: must be an object" % where)
        unknown = set(raw) - {"name", "url", "format", "secret", "levels", "repeat"}
        if unknown:
            raise ValueError("%s: unknown field %s" % (where, sorted(unknown)[0]))
        name = raw.get("name")
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise ValueError("%s: name must be 1-64 letters, digits or _ . -" % where)
        where = "notify target %s" % name
        url = raw.get("url")
        problem = _url_problem(url)
        if problem:
            raise ValueError("%s: %s" % (where, problem))
        fmt = raw.get("format", "json")
        if fmt not in FORMATS:
            raise ValueError("%s: format must be one of %s" % (where, ", ".join(FORMATS)))
        secret = raw.get("secret")
        if secret is not None and (not isinstance(secret, str) or not _key(secret)):
            raise ValueError("%s: secret must be a Standard Webhooks secret, whsec_ and base64" % where)
        levels = raw.get("levels", list(LEVELS))
        if not isinstance(levels, list) or not levels or any(level not in LEVELS for level in levels):
            raise ValueError("%s: levels must be a list of warning, error" % where)
        repeat = raw.get("repeat", DEFAULT_REPEAT_S)
        if not isinstance(repeat, (int, float)) or isinstance(repeat, bool) or not 0 <= repeat <= 7 * 86400:
            raise ValueError("%s: repeat must be 0 to 604800 seconds" % where)
        if any(t.name == name for t in targets):
            raise ValueError("%s: the name is used twice" % where)
        targets.append(Target(name, url, fmt, secret, tuple(levels), float(repeat)))
    return targets


def _key(secret: str) -> bytes:
    """The HMAC key of a secret, as the Standard Webhooks libraries read it."""
    text = secret[len("whsec_"):] if secret.startswith("whsec_") else secret
    try:
        return base64.b64decode(text + "==")
    except ValueError:
        return b""


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of id.timestamp.body>`` (Standard Webhooks)."""
    signed = b"%s.%d.%s" % (message_id.encode(), timestamp, body)
    return "v1," + base64.b64encode(hmac.new(_key(secret), signed, hashlib.sha256).digest()).decode()


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def message(kind: str, alert: dict, dashboard: dict, now: float) -> dict:
    """What every target is told of one change (``kind``: alert.firing, alert.resolved or test):
    the json format's body as it is, and what the other formats are rendered from."""
    return {"type": kind, "id": "msg_" + uuid.uuid4().hex, "timestamp": _iso(now),
            "alert": {"name": alert["name"], "metric": alert.get("metric"), "value": alert.get("value"),
                      "threshold": alert.get("threshold"), "level": alert.get("level"),
                      "message": alert.get("message") or "", "started_at": _iso(alert.get("started_at")),
                      "ended_at": _iso(alert.get("ended_at"))},
            "dashboard": dict(dashboard)}


def render(target: Target, message: dict) -> tuple[bytes, dict]:
    """The body and headers of ``message`` in ``target``'s format (without the webhook-* headers)."""
    alert = message["alert"]
    kind = message["type"]
    if kind == "alert.firing":
        title = "%s: %s" % (alert["level"].upper(), alert["name"])
    elif kind == "alert.resolved":
        title = "RESOLVED: %s" % alert["name"]
    else:
        title = "Test notification from sse-dashboard"
    text = alert["message"] or alert["name"]
    if target.format == "ntfy":
        priority = {"alert.firing": "urgent" if alert["level"] == "error" else "high"}.get(kind, "default")
        tags = {"alert.firing": "rotating_light" if alert["level"] == "error" else "warning",
                "alert.resolved": "white_check_mark"}.get(kind, "information_source")
        return text.encode("utf-8"), {"Content-Type": "text/plain; charset=utf-8", "Title": _header(title),
                                      "Priority": priority, "Tags": tags}
    if target.format == "slack":
        # Slack reads & < > as markup (<!channel> pings everyone): escape them in our text.
        body = {"text": _slack_escape("*%s*\n%s" % (title, text))}
    elif target.format == "discord":
        # No @everyone or role pings from an alert message, whatever it says.
        body = {"content": ("**%s**\n%s" % (title, text))[:2000], "allowed_mentions": {"parse": []}}
    else:
        body = message
    return (json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8"),
            {"Content-Type": "application/json"})


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _header(text: str) -> str:
    """A header value: ASCII as is, anything else RFC 2047-encoded (ntfy decodes it)."""
    text = text.replace("\r", " ").replace("\n", " ")
    try:
        text.encode("ascii")
        return text
    except UnicodeEncodeError:
        return email.header.Header(text, "utf-8").encode()
