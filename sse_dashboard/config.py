"""What a dashboard is started with: ``Config``, its defaults, and where the shipped files are.

One concept: the run's configuration, fixed once made. ``cli.parse_args`` builds one from the
command line, ``app.build_app`` takes one (or its fields as keywords); nothing changes it after.

Invariants:
- a ``Config`` is frozen and normalised in ``__post_init__`` (token, origins, tuples), so
  nothing downstream normalises again;
- a value that cannot work is refused here, with a message for the user (``--public-url``);
- this module imports only the data layer's own defaults (``events``, ``metrics``).
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sse_dashboard.events import DEFAULT_MAX_CHARS
from sse_dashboard.registry import DEFAULT_GAUGE_TTL_S

__all__ = ["Config", "DEFAULT_HOST", "DEFAULT_PORT", "DEFAULT_INTERVAL_S", "HEARTBEAT_S", "STREAM_WRITE_TIMEOUT_S",
           "REQUEST_TIMEOUT_S", "DEFAULT_MAX_CLIENTS", "DEFAULT_POST_RATE_PER_S", "shipped_path", "find_static_dir",
           "origin_of", "browser_origin"]

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
    heartbeats: tuple = ()                # (name, {"every": s, "level": ...}) expected from the start
    jobs: tuple = ()                      # (slug, alerting.jobs.JobSpec): job monitors from the config file
    notify: tuple = ()                    # notify.Target: where alert changes are sent
    remote_write: tuple = ()              # remote write 1.0 receivers' URLs (#25): each gets every sample
    instance: str | None = None           # the instance label of what is pushed; None: this machine's host name
    remote_write_queue: tuple = ()        # (name, value) pairs for each RemoteWriter's disk queue: max_bytes, max_age_s

    def __post_init__(self) -> None:
        # Normalised once, so nothing downstream has to.
        object.__setattr__(self, "token", self.token or None)
        object.__setattr__(self, "allowed_hosts", tuple(self.allowed_hosts))
        object.__setattr__(self, "cors_origin", self.cors_origin.rstrip("/") if self.cors_origin else None)
        object.__setattr__(self, "public_url", origin_of(self.public_url) if self.public_url else None)
        object.__setattr__(self, "alert_rules", tuple(self.alert_rules))
        object.__setattr__(self, "notify", tuple(self.notify))
        object.__setattr__(self, "remote_write", tuple(self.remote_write))
        object.__setattr__(self, "jobs", tuple(sorted(self.jobs.items() if isinstance(self.jobs, dict) else self.jobs)))
        beats = self.heartbeats
        object.__setattr__(self, "heartbeats", tuple(sorted(beats.items() if isinstance(beats, dict) else beats)))
        options = self.storage_options
        object.__setattr__(self, "storage_options", tuple(sorted((options.items() if isinstance(options, dict)
                                                                  else options or ()))))
