"""What a dashboard is started with: ``Config``, its defaults, and where the shipped files are.

One concept: the run's configuration, fixed once made. ``cli.parse_args`` builds one from the
command line, ``app.build_app`` takes one (or its fields as keywords); nothing changes it after.

Invariants:
- a ``Config`` is frozen and normalised in ``__post_init__`` (token, origins, tuples), so
  nothing downstream normalises again;
- a value that cannot work is refused here, with a message for the user (``--public-url``, the
  config file's ``remote_write`` entries and ``external_labels``);
- a secret (a bearer token, a password) is read from its file or environment variable once, at
  load, and is never in a message, a ``repr`` or an answer: messages name the file or the
  variable, never what it holds;
- this module imports only the data layer's own defaults (``events``, ``metrics``).
"""

from __future__ import annotations

import base64
import os
import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from sse_dashboard.events import DEFAULT_MAX_CHARS
from sse_dashboard.registry import DEFAULT_GAUGE_TTL_S

__all__ = ["Config", "DEFAULT_HOST", "DEFAULT_PORT", "DEFAULT_INTERVAL_S", "HEARTBEAT_S", "STREAM_WRITE_TIMEOUT_S",
           "REQUEST_TIMEOUT_S", "DEFAULT_MAX_CLIENTS", "DEFAULT_POST_RATE_PER_S", "shipped_path", "find_static_dir",
           "origin_of", "browser_origin", "RemoteWriteTarget", "parse_remote_write", "parse_external_labels",
           "parse_instance", "check_external_label", "MAX_REMOTE_WRITE_URLS", "MAX_EXTERNAL_LABELS", "MAX_LABEL_VALUE_CHARS",
           "MAX_SECRET_FILE_BYTES"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_INTERVAL_S = 1.0
HEARTBEAT_S = 15.0
STREAM_WRITE_TIMEOUT_S = 10.0
REQUEST_TIMEOUT_S = 10.0  # the whole request line, headers and body, not each read
# An open stream costs a socket and a small record in the hub, not a thread (bench/RESULTS.md:
# about 16 KB of RSS each at 20,000 streams); the operating system's limit on open files is the
# real bound, and main() fits the cap to it.
DEFAULT_MAX_CLIENTS = 10_000
DEFAULT_POST_RATE_PER_S = 50.0
# Remote write (#25): receivers, external labels and their values, and a secret file, at most.
MAX_REMOTE_WRITE_URLS = 10          # each is a thread and a queue
MAX_EXTERNAL_LABELS = 20            # added to every series of every tick
MAX_LABEL_VALUE_CHARS = 1024
MAX_SECRET_FILE_BYTES = 64 * 1024   # a token or a password, not a keyring


def shipped_path(name: str) -> Path:
    """A folder that ships with the code (``static``, ``examples``): inside the package when
    installed (pyproject.toml maps the checkout's folders there), else at the checkout's root."""
    package = Path(__file__).resolve().parent
    installed = package / name
    return installed if installed.is_dir() else package.parent / name


def find_static_dir() -> Path:
    """The page: ``sse_dashboard/static/`` when installed, else ``static/`` at the checkout's root."""
    return shipped_path("static")


# --------------------------------------------------------------------------
# Origins: the --public-url field's rule, and the form guard compares with Origin
# --------------------------------------------------------------------------

_DEFAULT_PORTS = {"http": 80, "https": 443}


def browser_origin(scheme: str, host_header: str) -> str:
    """``scheme://host[:port]`` as a browser serialises it in ``Origin``: lower case, and no
    port when it is the scheme's default (``Host: dash.lan:443`` is ``https://dash.lan``)."""
    host = host_header.strip().lower()
    default = ":%d" % _DEFAULT_PORTS[scheme]
    if host.endswith(default) and (host.count(":") == 1 or host[:-len(default)].endswith("]")):
        host = host[:-len(default)]
    return "%s://%s" % (scheme, host)


def origin_of(url: str) -> str:
    """The origin of ``--public-url`` (``https://dash.example.org[:port]``); ``ValueError``
    says what is wrong without echoing the URL (it could hold a password)."""
    example = "e.g. https://dash.example.org or https://dash.example.org:8443"
    parts = urllib.parse.urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError("the public URL must start with https:// or http:// and name a host (%s)" % example)
    if "@" in parts.netloc or parts.query or parts.fragment or parts.path not in ("", "/"):
        # The page asks for /api/... from the root: it cannot be served under a path.
        raise ValueError("the public URL must be only the origin the page is served from: scheme, host and "
                         "port, with no path, user name or query (%s)" % example)
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError("the public URL's port must be a number from 1 to 65535 (%s)" % example)
    host = "[%s]" % parts.hostname if ":" in parts.hostname else parts.hostname
    return browser_origin(scheme, host if port is None else "%s:%d" % (host, port))


# --------------------------------------------------------------------------
# The configuration
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """Everything a dashboard is started with; ``parse_args`` builds one from the command
    line, ``build_app`` takes one (or its fields as keywords). Fixed for the run.

    >>> config = Config(port=0, token="s3cret")
    >>> server = build_app(config)                # or build_app(port=0, token="s3cret")
    """

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    interval_s: float = DEFAULT_INTERVAL_S
    demo: bool = False
    psutil: Any = "auto"                  # "auto", None (the stdlib collector) or the module
    max_events: int = 1000
    max_event_chars: int = DEFAULT_MAX_CHARS
    gauge_ttl_s: float = DEFAULT_GAUGE_TTL_S
    static_dir: Path | None = None
    heartbeat_s: float = HEARTBEAT_S
    write_timeout_s: float = STREAM_WRITE_TIMEOUT_S
    request_timeout_s: float = REQUEST_TIMEOUT_S
    token: str | None = None
    allowed_hosts: tuple = ()
    cors_origin: str | None = None
    public_url: str | None = None         # the origin the page is served from (a TLS proxy's https://...)
    max_clients: int = DEFAULT_MAX_CLIENTS
    post_rate_per_s: float = DEFAULT_POST_RATE_PER_S
    alert_rules: tuple = ()
    data_dir: str | Path | None = None    # None or ":memory:": keep nothing
    storage_options: tuple = ()           # (name, value) pairs for storage.open_store
    statsd: str | None = None             # "[HOST:]PORT" to take StatsD on (UDP and TCP); None: off
    otlp_event_type_attribute: str = "event.name"  # the OTLP log attribute that gives an event its type
    heartbeats: tuple = ()                # (name, {"every": s, "level": ...}) expected from the start
    jobs: tuple = ()                      # (slug, alerting.jobs.JobSpec): job monitors from the config file
    notify: tuple = ()                    # notify.Target: where alert changes are sent
    remote_write: tuple = ()              # RemoteWriteTarget (or a URL): remote write 1.0 receivers (#25)
    instance: str | None = None           # the instance label of what is pushed; None: this machine's host name
    external_labels: tuple = ()           # (name, value) added to every series pushed (parse_external_labels)
    remote_write_queue: tuple = ()        # (name, value) pairs for each RemoteWriter's disk queue: max_bytes, max_age_s
    status_pages: tuple = ()              # (slug, alerting.status.PageSpec): public status pages (#26)

    def __post_init__(self) -> None:
        # Normalised once, so nothing downstream has to.
        object.__setattr__(self, "token", self.token or None)
        object.__setattr__(self, "allowed_hosts", tuple(self.allowed_hosts))
        object.__setattr__(self, "cors_origin", self.cors_origin.rstrip("/") if self.cors_origin else None)
        object.__setattr__(self, "public_url", origin_of(self.public_url) if self.public_url else None)
        object.__setattr__(self, "alert_rules", tuple(self.alert_rules))
        object.__setattr__(self, "notify", tuple(self.notify))
        object.__setattr__(self, "remote_write", tuple(t if isinstance(t, RemoteWriteTarget) else RemoteWriteTarget(t)
                                                      for t in self.remote_write))
        labels = self.external_labels
        object.__setattr__(self, "external_labels", tuple(sorted(labels.items() if isinstance(labels, dict)
                                                                 else labels)))
        object.__setattr__(self, "jobs", tuple(sorted(self.jobs.items() if isinstance(self.jobs, dict) else self.jobs)))
        pages = self.status_pages
        object.__setattr__(self, "status_pages", tuple(sorted(pages.items() if isinstance(pages, dict) else pages)))
        beats = self.heartbeats
        object.__setattr__(self, "heartbeats", tuple(sorted(beats.items() if isinstance(beats, dict) else beats)))
        options = self.storage_options
        object.__setattr__(self, "storage_options", tuple(sorted((options.items() if isinstance(options, dict)
                                                                  else options or ()))))


# --------------------------------------------------------------------------
# Remote write (#25): the config file's receivers, external labels and instance
# --------------------------------------------------------------------------

# Prometheus' label name rule; names starting with "__" are its own (__name__, __meta_...).
LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_HEADER_NAME_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")  # RFC 9110's token
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# What the writer sets itself (the spec's headers), or what the auth keys set: Prometheus refuses
# these in its own remote_write "headers" too.
_RESERVED_HEADERS = frozenset(["content-encoding", "content-type", "content-length", "user-agent", "host",
                               "x-prometheus-remote-write-version", "connection", "transfer-encoding"])
_ENTRY_KEYS = ("url", "headers", "basic_auth", "bearer_token_file", "bearer_token_env")
_AUTH_KEYS = ("basic_auth", "bearer_token_file", "bearer_token_env")


@dataclass(frozen=True)
class RemoteWriteTarget:
    """One remote write receiver: its URL and the headers sent with every request (credentials
    included, read at load). Neither is in its ``repr``: both may hold a secret."""

    url: str = field(repr=False)
    headers: tuple = field(default=(), repr=False)   # ((name, value), ...)


def parse_remote_write(entries: Any, *, base_dir: Path | None = None,
                       environ: Mapping[str, str] | None = None) -> tuple:
    """The config file's ``"remote_write"`` list as ``RemoteWriteTarget``s, secrets read now.

    Each entry: ``{"url", "headers": {...}, "basic_auth": {"username", "password_file" |
    "password_env"}, "bearer_token_file" | "bearer_token_env"}``; a relative file is read from
    ``base_dir`` (the config file's folder). ``ValueError`` names the entry and the key, and never
    what a secret holds. The URL's own shape is the writer's to check (``export.writer.parse_url``)."""
    if entries is None:
        return ()
    if not isinstance(entries, list):
        raise ValueError('"remote_write" must be a list of {"url": ...} objects')
    if len(entries) > MAX_REMOTE_WRITE_URLS:
        raise ValueError('"remote_write" lists at most %d receivers' % MAX_REMOTE_WRITE_URLS)
    environ = os.environ if environ is None else environ
    return tuple(_remote_write_entry("remote_write %d" % i, raw, base_dir, environ)
                 for i, raw in enumerate(entries, start=1))


def _remote_write_entry(where: str, raw: Any, base_dir: Path | None, environ: Mapping[str, str]) -> RemoteWriteTarget:
    if not isinstance(raw, dict):
        raise ValueError('%s: must be an object with a "url"' % where)
    unknown = sorted(set(raw) - set(_ENTRY_KEYS))
    if unknown:
        raise ValueError('%s: unknown key "%s"; it takes %s' % (where, unknown[0][:40], ", ".join(_ENTRY_KEYS)))
    url = raw.get("url")
    if not isinstance(url, str) or not url.strip():
        raise ValueError('%s: "url" must be the receiver\'s URL, e.g. http://127.0.0.1:9090/api/v1/write' % where)
    headers = _headers(where, raw.get("headers"))
    auth = [key for key in _AUTH_KEYS if key in raw]
    if urllib.parse.urlsplit(url.strip()).username is not None:
        auth.append("a user name in the URL")
    if len(auth) > 1:
        raise ValueError("%s: give only one of basic_auth, bearer_token_file, bearer_token_env and a user name "
                         "in the URL (it has %s)" % (where, " and ".join(auth)))
    if "basic_auth" in raw:
        headers.append(("Authorization", _basic_auth(where, raw["basic_auth"], base_dir, environ)))
    elif "bearer_token_file" in raw or "bearer_token_env" in raw:
        source = "bearer_token_file" if "bearer_token_file" in raw else "bearer_token_env"
        headers.append(("Authorization", "Bearer " + _secret(where, source, raw[source], base_dir, environ)))
    return RemoteWriteTarget(url.strip(), tuple(headers))


def _headers(where: str, raw: Any) -> list:
    if raw is None:
        return []
    if not isinstance(raw, dict):
        raise ValueError('%s: "headers" must be an object of header names and values' % where)
    headers = []
    for name, value in raw.items():
        if not _HEADER_NAME_RE.match(name):
            raise ValueError('%s: "%s" is not a header name' % (where, name[:60].encode("ascii", "replace").decode()))
        if name.lower() == "authorization":
            raise ValueError("%s: headers: give Authorization as bearer_token_file, bearer_token_env or basic_auth "
                             "(read from a file or the environment, never kept in the config file)" % where)
        if name.lower() in _RESERVED_HEADERS:
            raise ValueError("%s: headers: %s is set by the dashboard (the remote write spec's headers)" % (where, name))
        if not isinstance(value, str):
            raise ValueError("%s: headers: the value of %s must be a string" % (where, name))
        _check_header_value(where, "the value of header %s" % name, value)
        headers.append((name, value))
    return headers


def _check_header_value(where: str, what: str, value: str) -> None:
    """A value http.client can send as it is; the message names ``what``, never the value."""
    if "\r" in value or "\n" in value:
        raise ValueError("%s: %s has a line break" % (where, what))
    if any(ord(c) < 0x20 and c != "\t" or ord(c) == 0x7F for c in value) or not value.isascii():
        raise ValueError("%s: %s must be printable ASCII" % (where, what))


def _basic_auth(where: str, raw: Any, base_dir: Path | None, environ: Mapping[str, str]) -> str:
    if not isinstance(raw, dict) or set(raw) - {"username", "password_file", "password_env", "password"}:
        raise ValueError('%s: basic_auth must be {"username": ..., "password_file": ...} or '
                         '{"username": ..., "password_env": ...}' % where)
    username = raw.get("username")
    if not isinstance(username, str) or not username or ":" in username:
        raise ValueError("%s: basic_auth: username must be a non-empty string without ':'" % where)
    sources = [key for key in ("password_file", "password_env") if key in raw]
    if "password" in raw or len(sources) != 1:
        raise ValueError("%s: basic_auth: give the password as password_file or password_env (one of them), "
                         "not in the config file" % where)
    password = _secret(where, "basic_auth: " + sources[0], raw[sources[0]], base_dir, environ)
    return "Basic " + base64.b64encode(("%s:%s" % (username, password)).encode("utf-8")).decode("ascii")


def _secret(where: str, key: str, source: Any, base_dir: Path | None, environ: Mapping[str, str]) -> str:
    """The secret a ``*_file`` or ``*_env`` key names, surrounding white space removed (as
    Prometheus reads its ``*_file`` keys: an editor's trailing newline is not part of it)."""
    if not isinstance(source, str) or not source:
        raise ValueError("%s: %s must name a %s" % (where, key, "file" if key.endswith("_file") else "variable"))
    if key.endswith("_env"):
        if not _ENV_NAME_RE.match(source):
            raise ValueError("%s: %s must be an environment variable's name" % (where, key))
        value = environ.get(source, "").strip()
        if not value:
            raise ValueError("%s: %s: the environment variable %s is not set (or empty)" % (where, key, source))
    else:
        path = Path(source)
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        try:
            with open(path, "rb") as file:
                data = file.read(MAX_SECRET_FILE_BYTES + 1)
        except OSError as exc:
            raise ValueError("%s: %s %s cannot be read: %s" % (where, key, path, exc.strerror or type(exc).__name__)) \
                from None
        if len(data) > MAX_SECRET_FILE_BYTES:
            raise ValueError("%s: %s %s is larger than %d bytes" % (where, key, path, MAX_SECRET_FILE_BYTES))
        try:
            value = data.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise ValueError("%s: %s %s is not UTF-8 text" % (where, key, path)) from None
        if not value:
            raise ValueError("%s: %s %s is empty" % (where, key, path))
    if key.startswith("bearer"):
        _check_header_value(where, "the token of %s" % key, value)
    elif "\r" in value or "\n" in value:
        raise ValueError("%s: %s: the password has a line break" % (where, key))
    return value


def parse_external_labels(raw: Any, where: str = '"external_labels"') -> tuple:
    """``{"name": "value", ...}`` as sorted pairs, by Prometheus' label rules: a name matches
    ``[a-zA-Z_][a-zA-Z0-9_]*`` and does not start with ``__``; a value is a non-empty string (an
    empty one would be no label at all). ``instance`` has its own key and option."""
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise ValueError('%s must be an object of label names and values, e.g. {"site": "lab"}' % where)
    if len(raw) > MAX_EXTERNAL_LABELS:
        raise ValueError("%s: at most %d labels" % (where, MAX_EXTERNAL_LABELS))
    for name, value in raw.items():
        check_external_label(name, value, where)
    return tuple(sorted(raw.items()))


def check_external_label(name: Any, value: Any, where: str) -> None:
    """``ValueError`` when ``name=value`` cannot be an external label; the name is shown, cut short."""
    shown = str(name)[:60]
    if not isinstance(name, str) or not LABEL_NAME_RE.match(name):
        raise ValueError('%s: "%s" is not a label name (letters, digits and _, not first a digit)' % (where, shown))
    if name.startswith("__"):
        raise ValueError('%s: "%s": names starting with __ are reserved for Prometheus' % (where, shown))
    if name == "instance":
        raise ValueError('%s: set "instance" with the config file\'s "instance" key or --instance' % where)
    if not isinstance(value, str):
        raise ValueError("%s: the value of %s must be a string" % (where, shown))
    if not value:
        raise ValueError("%s: the value of %s is empty (an empty label is no label to Prometheus)" % (where, shown))
    if len(value) > MAX_LABEL_VALUE_CHARS:
        raise ValueError("%s: the value of %s is longer than %d characters" % (where, shown, MAX_LABEL_VALUE_CHARS))


def parse_instance(raw: Any, where: str = '"instance"') -> str | None:
    """The instance label: a non-empty string of at most ``MAX_LABEL_VALUE_CHARS``."""
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError("%s must be a non-empty string (the machine's name on the engine)" % where)
    if len(raw) > MAX_LABEL_VALUE_CHARS:
        raise ValueError("%s is longer than %d characters" % (where, MAX_LABEL_VALUE_CHARS))
    return raw
