"""The command line: ``sse-dashboard`` / ``python sse_server.py`` / ``python -m sse_dashboard``.

One concept: turning arguments and the --config file into a running dashboard, and saying in
one sentence what to do when it cannot start (a port in use, a data folder another dashboard
holds, a config that does not load). ``main()`` sets up logging and the console, calls
``app.build_app``, serves until Ctrl+C or SIGTERM, and stops from its own thread
(socketserver's ``shutdown`` deadlock note).
"""

from __future__ import annotations

import argparse
import errno
import logging
import math
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

from sse_dashboard import __version__
from sse_dashboard.alerting.heartbeats import parse_heartbeats
from sse_dashboard.alerting.jobs import parse_jobs
from sse_dashboard.alerting.targets import parse_targets
from sse_dashboard.alerting.status import parse_status_pages
from sse_dashboard.alerting.rules import load_document, parse_rules
from sse_dashboard.app import ListenerUnavailable, address_in_use, build_app
from sse_dashboard.config import (DEFAULT_HOST, DEFAULT_INTERVAL_S, DEFAULT_MAX_CLIENTS, DEFAULT_PORT,
                                  DEFAULT_POST_RATE_PER_S, Config, RemoteWriteTarget, check_external_label,
                                  origin_of, parse_external_labels, parse_instance, parse_remote_write, shipped_path)
from sse_dashboard.export.queue import DEFAULT_QUEUE_MAX_AGE_S, DEFAULT_QUEUE_MAX_BYTES
from sse_dashboard.export.writer import parse_url
from sse_dashboard.fleet.view import DEFAULT_STALE_S, FleetSettings
from sse_dashboard.ingest.statsd import parse_address
from sse_dashboard.registry import DEFAULT_GAUGE_TTL_S
from sse_dashboard.storage import DataDirInUse
from sse_dashboard.web.guard import is_loopback, token_problem
from sse_dashboard.web.handler import access_log
from sse_dashboard.web.shares import SECTIONS, ShareStore, parse_duration, share_file
from sse_dashboard.web.tokens import SCOPES, TokenExists, TokenFileError, TokenStore, token_file

__all__ = ["main", "make_parser", "parse_args", "load_config", "load_export", "Export", "config_from_args", "port_error_message",
           "fit_open_file_limit", "default_data_dir", "EXAMPLE_CONFIG", "SPARE_FILES", "token_command",
           "share_command"]

log = logging.getLogger(__name__)

SPARE_FILES = 64  # descriptors kept free for the database, static files and ordinary requests


def default_data_dir() -> Path:
    """``data/`` beside the script in a checkout (or an unpacked zip: it has pyproject.toml);
    the per-user data folder once installed."""
    here = Path(__file__).resolve().parent.parent  # the checkout's root, when there is one
    if (here / "pyproject.toml").is_file():
        return here / "data"
    if os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "sse-dashboard"


def _dashboard_at(host: str, port: int) -> str | None:
    """The URL of the sse-dashboard answering on host:port, or None (something else, or nothing)."""
    import http.client  # only on this error path

    address = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    conn = http.client.HTTPConnection(address, port, timeout=2)
    try:
        conn.request("GET", "/api/health")
        response = conn.getresponse()
        server = response.getheader("Server", "")
        response.read(4096)
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()
    if not server.startswith("sse-dashboard/"):
        return None
    return "http://%s:%d/" % ("[%s]" % address if ":" in address else address, port)


def _another_dashboard(url: str | None, open_browser: bool, message: str) -> int:
    """A second start where one dashboard already runs: with --open (the .bat), show that one."""
    if open_browser and url:
        import webbrowser

        log.info("a dashboard already runs at %s: opening it in the browser", url)
        webbrowser.open(url)
        return 0
    log.error("%s", message)
    return 2


def port_error_message(exc: OSError, host: str, port: int) -> str:
    """One sentence saying why the port could not be bound and what to try."""
    winerror = getattr(exc, "winerror", None)
    if exc.errno == errno.EADDRINUSE or winerror == 10048:
        return ("port %d on %s is already in use (is another dashboard running?); "
                "try another one, e.g. --port %d" % (port, host, port + 10))
    if exc.errno == errno.EACCES or winerror == 10013:
        return ("port %d on %s is reserved or forbidden (on Windows Hyper-V/WSL reserve port ranges: "
                "see 'netsh interface ipv4 show excludedportrange protocol=tcp'); try e.g. --port %d"
                % (port, host, port + 10))
    if exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
        return "cannot listen on %s: no such address on this machine (%s)" % (host, exc.strerror or exc)
    return "cannot listen on %s port %d: %s" % (host, port, exc.strerror or exc)


# Shipped beside this file in a checkout and when installed (pyproject.toml's package data),
# so --help can name a file that is really there.
EXAMPLE_CONFIG = shipped_path("examples") / "alerts.example.json"


def make_parser() -> argparse.ArgumentParser:
    """The command line (tests/test_readme.py holds the README's options block to it)."""
    parser = argparse.ArgumentParser(
        prog="sse-dashboard", description="A live monitoring dashboard: open the printed URL in a browser.",
        # Raw, so the example's path (site-packages-something when installed) is not broken at a hyphen.
        epilog="an example --config file to copy:\n  %s" % EXAMPLE_CONFIG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("port_arg", nargs="?", type=int, metavar="PORT", help="port (same as --port)")
    parser.add_argument("--port", type=int, default=None, help="port to listen on (default %d; 0 = any free port)" % DEFAULT_PORT)
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default %s, this machine only)" % DEFAULT_HOST)
    parser.add_argument("--interval", type=float, default=DEFAULT_INTERVAL_S, help="seconds between samples (default 1.0)")
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help="where events and history are kept (default %s; ':memory:' keeps nothing)" % default_data_dir())
    parser.add_argument("--keep-full", type=float, default=3600.0, metavar="SECONDS",
                        help="keep every sample this long (default 3600)")
    parser.add_argument("--keep-rollups", type=float, default=7 * 86400.0, metavar="SECONDS",
                        help="keep one-minute min/avg/max this long (default 7 days)")
    parser.add_argument("--config", metavar="FILE",
                        help="alert rules, expected heartbeats, notify targets and remote write receivers "
                             "(JSON; an example is named below)")
    parser.add_argument("--statsd", metavar="[HOST:]PORT", default=None,
                        help="take StatsD lines on this UDP and TCP port (off by default; 8125 is usual)")
    parser.add_argument("--otlp-event-type-attribute", default="event.name", metavar="NAME",
                        help="the OpenTelemetry log attribute that gives an event its type (default event.name)")
    parser.add_argument("--demo", action="store_true", help="feed synthetic counters, gauges and events")
    parser.add_argument("--no-psutil", action="store_true", help="use the standard-library collector even if psutil is installed")
    parser.add_argument("--token", default=os.environ.get("SSE_DASHBOARD_TOKEN") or None,
                        help="require this token for the API (env SSE_DASHBOARD_TOKEN); open /?token=TOKEN once in the browser")
    parser.add_argument("--insecure", action="store_true", help="allow a non-loopback --host without a token")
    parser.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                        help="a host name this server may be reached by (besides localhost and IP addresses)")
    parser.add_argument("--cors-origin", default=None, metavar="ORIGIN", help="allow this one origin cross-site (e.g. https://grafana.example)")
    parser.add_argument("--public-url", default=None, metavar="URL",
                        help="the origin the page is served from, behind a reverse proxy (e.g. https://dash.example.org)")
    parser.add_argument("--max-clients", type=int, default=DEFAULT_MAX_CLIENTS, help="most concurrent streams (default %d)" % DEFAULT_MAX_CLIENTS)
    parser.add_argument("--post-rate", type=float, default=DEFAULT_POST_RATE_PER_S,
                        help="POSTs per second per client address (default %g; 0 = unlimited)" % DEFAULT_POST_RATE_PER_S)
    parser.add_argument("--gauge-ttl", type=float, default=DEFAULT_GAUGE_TTL_S, metavar="SECONDS",
                        help="a gauge nobody set for this long leaves the live view (default %g, a day; 0 = never)"
                        % DEFAULT_GAUGE_TTL_S)
    parser.add_argument("--remote-write", action="append", default=[], metavar="URL",
                        help="push every sample to this Prometheus remote write URL (repeatable), "
                             "e.g. http://127.0.0.1:9090/api/v1/write")
    parser.add_argument("--instance", default=None, metavar="NAME",
                        help="the instance label of what --remote-write pushes (default: this machine's host name)")
    parser.add_argument("--external-label", action="append", default=[], metavar="NAME=VALUE",
                        help="a label added to every series --remote-write pushes (repeatable), e.g. site=lab")
    parser.add_argument("--fleet", default=None, metavar="URL",
                        help="show every dashboard pushing to this engine at /fleet, read from its Prometheus query API "
                             "(e.g. http://127.0.0.1:9090)")
    parser.add_argument("--fleet-stale", type=float, default=DEFAULT_STALE_S, metavar="SECONDS",
                        help="on /fleet, flag a dashboard silent this long (default %g)" % DEFAULT_STALE_S)
    parser.add_argument("--remote-write-max-mb", type=float, default=DEFAULT_QUEUE_MAX_BYTES / 1048576, metavar="MB",
                        help="most MiB of ticks queued in the data folder per --remote-write URL while its engine is "
                             "away (default %g); past it the oldest go" % (DEFAULT_QUEUE_MAX_BYTES / 1048576))
    parser.add_argument("--remote-write-max-age", type=float, default=DEFAULT_QUEUE_MAX_AGE_S, metavar="SECONDS",
                        help="queued ticks older than this are dropped (default %g, a day)" % DEFAULT_QUEUE_MAX_AGE_S)
    parser.add_argument("--open", action="store_true", help="open the page in the default browser once serving")
    parser.add_argument("--access-log", action="store_true", help="log every request (off by default)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version="sse-dashboard " + __version__)
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.port is None:
        args.port = args.port_arg if args.port_arg is not None else DEFAULT_PORT
    if not 0 <= args.port <= 65535:
        parser.error("port must be between 0 and 65535")
    if not (args.interval > 0 and args.interval <= 3600):
        parser.error("--interval must be a number of seconds above 0")
    if not (args.keep_full > 0 and args.keep_rollups > 0):
        parser.error("--keep-full and --keep-rollups must be above 0 seconds")
    if args.token is not None and token_problem(args.token):
        parser.error("--token: %s" % token_problem(args.token))
    if args.statsd is not None:
        try:
            parse_address(args.statsd)
        except ValueError as exc:
            parser.error(str(exc))
    if not (args.gauge_ttl >= 0 and math.isfinite(args.gauge_ttl)):
        parser.error("--gauge-ttl must be 0 or more seconds")
    if not 0 < len(args.otlp_event_type_attribute) <= 100:
        parser.error("--otlp-event-type-attribute must be an attribute name of 1 to 100 characters")
    for url in args.remote_write:
        try:
            parse_url(url)
        except ValueError as exc:
            parser.error("--remote-write: %s" % exc)
    try:
        parse_instance(args.instance, "--instance")
        args.external_labels = _external_label_options(args.external_label)
    except ValueError as exc:
        parser.error(str(exc))
    if not (args.remote_write_max_mb > 0 and args.remote_write_max_age > 0
            and math.isfinite(args.remote_write_max_mb) and math.isfinite(args.remote_write_max_age)):
        parser.error("--remote-write-max-mb and --remote-write-max-age must be above 0")
    if args.public_url is not None:
        try:
            origin_of(args.public_url)
        except ValueError as exc:
            parser.error("--public-url: %s" % exc)
    try:
        args.fleet_settings = FleetSettings(args.fleet, stale_s=args.fleet_stale) if args.fleet else None
    except ValueError as exc:
        parser.error("--fleet: %s" % exc)
    return args


def load_config(path: str | None) -> tuple[list, dict, list, dict]:
    """(alert rules, heartbeats, notify targets, jobs) from the --config file; ``ValueError``
    names what is wrong, and nothing is half-loaded."""
    document = load_document(path) if path else {}
    rules = parse_rules(document)
    heartbeats = parse_heartbeats(document.get("heartbeats"))
    targets = parse_targets(document.get("notify"))
    jobs = parse_jobs(document.get("jobs"))
    names = {t.name for t in targets}
    for what, wanted in [("rule %s" % r.name, r.notify) for r in rules] + [
            ("heartbeat %s" % name, entry["notify"]) for name, entry in heartbeats.items()] + [
            ("job %s" % slug, spec.notify) for slug, spec in jobs.items()]:
        unknown = sorted(set(wanted or ()) - names)
        if unknown:
            raise ValueError("%s: notify names %s, which is not a notify target (%s)"
                             % (what, unknown[0], ", ".join(sorted(names)) or "there are none"))
    return rules, heartbeats, targets, jobs


class Export(NamedTuple):
    """What the --config file says about remote write: receivers, external labels, instance."""

    remote_write: tuple = ()
    external_labels: tuple = ()
    instance: str | None = None


def load_export(path: str | None) -> Export:
    """The --config file's ``remote_write``, ``external_labels`` and ``instance``, secrets read
    now (a relative secret file is beside the config file); ``ValueError`` names what is wrong
    and never what a secret holds."""
    if not path:
        return Export()
    document = load_document(path)
    if not isinstance(document, dict):
        return Export()  # load_config says what is wrong with it
    targets = parse_remote_write(document.get("remote_write"), base_dir=Path(path).resolve().parent)
    for i, target in enumerate(targets, start=1):
        try:
            parse_url(target.url)
        except ValueError as exc:
            raise ValueError("remote_write %d: %s" % (i, exc)) from None
    return Export(targets, parse_external_labels(document.get("external_labels")),
                  parse_instance(document.get("instance")))


def _external_label_options(values: list[str]) -> tuple:
    """--external-label NAME=VALUE, each checked as the config file's are; a later one wins."""
    labels: dict[str, str] = {}
    for value in values:
        name, sep, text = value.partition("=")
        if not sep:
            raise ValueError("--external-label takes NAME=VALUE, e.g. --external-label site=lab")
        check_external_label(name, text, "--external-label")
        labels[name] = text
    return tuple(sorted(labels.items()))


def fit_open_file_limit(max_clients: int) -> int:
    """Raise this process's soft limit on open files toward what ``max_clients`` streams
    need (POSIX; Windows has no such per-process limit for sockets), and return the number
    of streams that fit: past it a client gets 503, not a failed accept()."""
    try:
        import resource
    except ImportError:
        return max_clients
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_clients + SPARE_FILES
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new_soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
            soft = new_soft
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft < wanted:
        fitted = max(1, soft - SPARE_FILES)
        log.warning("this system allows %d open files, so at most %d streams (not %d); "
                    "raise it with 'ulimit -n'", soft, fitted, max_clients)
        return fitted
    return max_clients


def config_from_args(args: argparse.Namespace, rules: list, data_dir: str | Path, export: Export = Export()) -> Config:
    """The run's ``Config``; for remote write the options add to the config file's (receivers,
    labels) or win over it (the instance, a label set in both)."""
    labels = dict(export.external_labels, **dict(getattr(args, "external_labels", ())))
    return Config(host=args.host, port=args.port, interval_s=args.interval, demo=args.demo,
                  psutil=None if args.no_psutil else "auto", token=args.token, allowed_hosts=tuple(args.allow_host),
                  cors_origin=args.cors_origin, public_url=args.public_url,
                  max_clients=fit_open_file_limit(args.max_clients),
                  post_rate_per_s=args.post_rate,
                  alert_rules=tuple(rules), gauge_ttl_s=args.gauge_ttl, data_dir=data_dir, statsd=args.statsd,
                  otlp_event_type_attribute=args.otlp_event_type_attribute,
                  remote_write=export.remote_write + tuple(RemoteWriteTarget(url) for url in args.remote_write),
                  instance=args.instance or export.instance, external_labels=labels,
                  remote_write_queue=(("max_bytes", max(1, int(args.remote_write_max_mb * 1048576))),
                                      ("max_age_s", args.remote_write_max_age)),
                  storage_options={"full_s": args.keep_full, "rollup_keep_s": args.keep_rollups})


def _configure_console() -> None:
    # A cp1252 console, or output redirected to a file on Windows, must not turn a
    # non-ASCII event message into a UnicodeEncodeError (waku-agent#140).
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is None:
            continue
        try:
            if stream.isatty():
                reconfigure(errors="replace")
            else:
                reconfigure(encoding="utf-8", errors="replace")
        except (ValueError, OSError):
            pass


def _local_minute(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "never"


def token_command(argv: list[str]) -> int:
    """``sse-dashboard token add NAME --scope S | list | revoke NAME`` (#26): the data folder's
    tokens, kept as hashes; a running dashboard takes the change within a second."""
    folder = _data_dir_option()
    parser = argparse.ArgumentParser(prog="sse-dashboard token", parents=[folder],
                                     description="Scoped tokens: read, write, admin (admin may do anything).")
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", parents=[folder], help="make a token and print it (shown this once)")
    add.add_argument("name")
    add.add_argument("--scope", action="append", required=True, choices=SCOPES, help="repeatable")
    commands.add_parser("list", parents=[folder], help="names, scopes and creation times (never a token)")
    commands.add_parser("revoke", parents=[folder], help="revoke at once, open streams too").add_argument("name")
    args = parser.parse_args(argv)
    path = token_file(getattr(args, "data_dir", None) or default_data_dir())
    if path is None:
        parser.error("--data-dir :memory: keeps no tokens: make them over the API (POST /api/tokens)")
    try:
        store = TokenStore(path)
        if args.command == "add":
            secret, _ = store.add(args.name, args.scope)
            sys.stderr.write("token %s made (%s); it is shown this once:\n" % (args.name, ", ".join(args.scope)))
            sys.stdout.write(secret + "\n")
        elif args.command == "list":
            for entry in store.listing():
                sys.stdout.write("%-24s %-18s made %s, last used %s\n" % (
                    entry["name"], ",".join(entry["scopes"]), _local_minute(entry["created"]), _local_minute(entry["last_used"])))
        elif not store.revoke(args.name):
            sys.stderr.write("no token is named %s in %s\n" % (args.name, path))
            return 1
    except (TokenExists, TokenFileError, ValueError) as exc:
        sys.stderr.write("%s\n" % exc)
        return 1
    return 0


def _data_dir_option() -> argparse.ArgumentParser:
    """``--data-dir``, for the ``token`` and ``share`` commands: before or after their verb."""
    folder = argparse.ArgumentParser(add_help=False)
    folder.add_argument("--data-dir", default=argparse.SUPPRESS, metavar="DIR",
                        help="the dashboard's data folder (default %s)" % default_data_dir())
    return folder


def share_command(argv: list[str]) -> int:
    """``sse-dashboard share add --section S [--expires 7d] [--kiosk] [--hide-hosts] | list | revoke
    HANDLE`` (#26): the data folder's read-only share links; a running dashboard takes the change
    within a second."""
    folder = _data_dir_option()
    parser = argparse.ArgumentParser(prog="sse-dashboard share", parents=[folder],
                                     description="Read-only share links /s/<id>, showing chosen sections.")
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", parents=[folder], help="make a link and print it (shown this once)")
    add.add_argument("--section", action="append", required=True, choices=SECTIONS, help="repeatable")
    add.add_argument("--expires", metavar="DURATION", help="e.g. 7d, 12h, 30m (default: never)")
    add.add_argument("--kiosk", action="store_true", help="no controls, large type, sections in turn")
    add.add_argument("--hide-hosts", action="store_true", help="hide this machine's name too")
    add.add_argument("--name", default="", help="a note for the listing")
    commands.add_parser("list", parents=[folder], help="handles, sections and expiry (never a link)")
    commands.add_parser("revoke", parents=[folder], help="revoke at once, open streams too").add_argument("handle")
    args = parser.parse_args(argv)
    path = share_file(getattr(args, "data_dir", None) or default_data_dir())
    if path is None:
        parser.error("--data-dir :memory: keeps no links: make them over the API (POST /api/shares)")
    try:
        store = ShareStore(path)
        if args.command == "add":
            expires = parse_duration(args.expires) if args.expires else None
            link_id, share = store.add(args.section, expires_in_s=expires, kiosk=args.kiosk,
                                       hide_hosts=args.hide_hosts, name=args.name)
            sys.stderr.write("share link %s made (%s); it is shown this once:\n" % (share.handle, ", ".join(share.sections)))
            sys.stdout.write("/s/%s\n" % link_id)
        elif args.command == "list":
            for entry in store.listing():
                ends = "expired" if entry["expired"] else "until " + _local_minute(entry["expires"]) if entry["expires"] else ""
                sys.stdout.write("%-13s %-32s %s%s %s\n" % (entry["handle"], ",".join(entry["sections"]),
                                                           "kiosk " if entry["kiosk"] else "", ends, entry["name"]))
        elif not store.revoke(args.handle):
            sys.stderr.write("no share link has the handle %s in %s\n" % (args.handle, path))
            return 1
    except (TokenFileError, ValueError) as exc:
        sys.stderr.write("%s\n" % exc)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["token"]:
        return token_command(argv[1:])
    if argv[:1] == ["share"]:
        return share_command(argv[1:])
    args = parse_args(argv)
    _configure_console()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    access_log.setLevel(logging.INFO if args.access_log or args.verbose else logging.WARNING)
    data_dir = args.data_dir or (":memory:" if args.demo else default_data_dir())
    tokens_kept = token_file(data_dir) is not None and token_file(data_dir).is_file()
    if not is_loopback(args.host):
        if not args.token and not tokens_kept and not args.insecure:
            log.error("refusing to listen on %s without a token: anyone on the network could read and post. "
                      "Start with --token TOKEN (or SSE_DASHBOARD_TOKEN), or --insecure if you really mean it", args.host)
            return 2
        log.warning("listening on %s: reachable from other machines%s", args.host,
                    "" if args.token or tokens_kept else " and open to anyone (--insecure)")
    try:
        rules, heartbeats, targets, jobs = load_config(args.config)
        export = load_export(args.config)
        pages = parse_status_pages(load_document(args.config).get("status_pages")) if args.config else {}
    except ValueError as exc:
        log.error("config not loaded, not starting: %s", exc)
        return 2
    if args.demo and not args.data_dir:
        log.info("demo: synthetic counters, gauges and events, kept in memory only (not in %s)", default_data_dir())
    try:
        server = build_app(config_from_args(args, rules, data_dir, export), heartbeats=heartbeats, notify=targets, jobs=jobs,
                           status_pages=pages, fleet=args.fleet_settings)
    except DataDirInUse as exc:
        return _another_dashboard(exc.url, args.open, "the data folder %s is in use by another dashboard%s; use that one, "
                                  "or start this one with --data-dir DIR (another folder) or --data-dir :memory: "
                                  "(keep nothing)" % (exc.directory, " (%s)" % exc.url if exc.url else ""))
    except (ListenerUnavailable, TokenFileError) as exc:
        log.error("%s", exc)
        return 2
    except OSError as exc:
        url = _dashboard_at(args.host, args.port) if address_in_use(exc) else None
        if url:
            return _another_dashboard(url, args.open, "a dashboard already runs at %s; use that one, or start "
                                      "this one with another --port" % url)
        log.error("%s", port_error_message(exc, args.host, args.port))
        return 2
    collector = server.sampler.collector
    log.info("system metrics from %s", collector.source)
    if rules:
        log.info("%d alert rule(s) from %s", len(rules), args.config)
    log.info("dashboard at %s (Ctrl+C to stop)", server.url)

    done = threading.Event()

    def request_stop(signum: int, frame: Any) -> None:
        done.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    if hasattr(signal, "SIGBREAK"):  # Ctrl+Break on Windows
        signal.signal(signal.SIGBREAK, request_stop)

    serving = threading.Thread(target=server.serve_forever, name="serve_forever", daemon=True)
    serving.start()
    if args.open:
        import webbrowser  # only here: it pulls in subprocess and shlex, ~0.5 MB nobody else needs

        threading.Thread(target=webbrowser.open, args=(server.url,), name="open-browser", daemon=True).start()
    try:
        # Wait in short slices: on Windows a plain wait() would not see Ctrl+C.
        while not done.wait(0.5) and serving.is_alive():
            pass
    finally:
        log.info("stopping")
        server.shutdown()  # from this thread, not serve_forever's (socketserver deadlock note)
        server.server_close()
        serving.join(2.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
