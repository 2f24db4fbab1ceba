"""The composition root: ``build_app()`` creates every part, connects them and starts them.

One concept: wiring. Read ``build_app`` top to bottom to see what a dashboard is made of and
in which order: storage, the registry and the event log (both resumed from storage), the
HTTP socket (bound early: the URL is part of what storage and the notifier are given), push
groups, StatsD, the alerting parts, the stream hub, the sampler, then the application object
(``application.Application``) and the HTTP server that serves it. Each part is given what it
needs when it is made.

    >>> from sse_dashboard.app import build_app, Config     # in a checkout: import sse_server
    >>> server = build_app(port=0)                           # or build_app(Config(port=0))

Data flows one way: the sampler hands each ``Sample`` to the subscribers it is given (the
store, then the stream hub); an event posted rings the hub's ``Doorbell``, which the event log
is given when it is made. Nobody asks the sampler again, and nothing is set onto a part after
it is made. In memory (no data folder) the store is a ``MemoryStore`` answering the same reads,
so nothing above asks "memory or SQLite?".
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import logging
import secrets
import socket
import time
import uuid
from pathlib import Path
from typing import Any, Sequence

from sse_dashboard import __version__
from sse_dashboard.alerting.alert import AlertOutlet
from sse_dashboard.alerting.heartbeats import Heartbeats
from sse_dashboard.alerting.jobs import Jobs
from sse_dashboard.alerting.notify import Notifier
from sse_dashboard.alerting.rules import AlertEngine
from sse_dashboard.alerting.status import StatusPages
from sse_dashboard.application import Application, alert_extras, remote_write_extras, server_stats
from sse_dashboard.collectors.processes import TopProcesses
from sse_dashboard.config import Config
from sse_dashboard.demo import DemoFeeder
from sse_dashboard.events import EventFilter, EventLog
from sse_dashboard.export.writer import RemoteWriter
from sse_dashboard.fleet.view import Fleet, FleetSettings
from sse_dashboard.ingest.otlp_logs import OtlpLogs
from sse_dashboard.ingest.otlp_metrics import STATE_PREFIX, OtlpMetrics
from sse_dashboard.ingest.push import PushGroups
from sse_dashboard.ingest.statsd import StatsdAggregator, StatsdListener, parse_address
from sse_dashboard.collectors.system import make_system_collector
from sse_dashboard.registry import MetricsRegistry
from sse_dashboard.sampler import Sampler
from sse_dashboard.storage import DataDirInUse, Store, StorageError, open_store
from sse_dashboard.storage.memory import DEFAULT_HISTORY_S, History, MemoryStore
from sse_dashboard.web.mcp import McpEndpoint, dashboard_tools
from sse_dashboard.web.server import DashboardServer, listen, listen_url
from sse_dashboard.web.streams import Doorbell, StreamHub
from sse_dashboard.web.shares import Revocations, ShareStore, share_file
from sse_dashboard.web.tokens import TokenStore, token_file

__all__ = ["build_app", "Config", "ListenerUnavailable", "address_in_use"]

log = logging.getLogger(__name__)


class ListenerUnavailable(OSError):
    """A second listener (StatsD) could not take its port: the message says what to do."""


def _one_per_url(targets: Sequence) -> list:
    """The remote write targets, the first of each URL only: a URL given twice (in the config
    file and with --remote-write) is one receiver, with one queue file."""
    first: dict = {}
    for target in targets:
        first.setdefault(target.url, target)
    return list(first.values())


def build_app(config: Config | None = None, *, start: bool = True, fleet: FleetSettings | None = None,
              **fields: Any) -> DashboardServer:
    """Create, connect and (with ``start=True``) start everything but ``serve_forever``.
    ``fleet``: the engine the fleet page reads (``--fleet``), None for no fleet page.

    >>> server = build_app(port=0)                 # or build_app(Config(port=0))
    >>> threading.Thread(target=server.serve_forever, daemon=True).start()
    >>> server.events.post("info", "hello")      # in-process use
    """
    config = Config(**fields) if config is None else dataclasses.replace(config, **fields)
    boot_id = uuid.uuid4().hex[:12]
    tokens = TokenStore(token_file(config.data_dir))  # first: a damaged token file stops the start (#26)
    shares = ShareStore(share_file(config.data_dir))  # so does a damaged share-link file
    doorbell = Doorbell()  # wakes the stream hub: rung by each posted event and each sample
    store, events = _open_storage(config, doorbell, boot_id)
    # Every counter and gauge update is committed before it is applied (and answered).
    registry = MetricsRegistry(gauge_ttl_s=config.gauge_ttl_s, journal=store.journal)
    listener = None
    try:
        registry.restore(*store.metric_state())  # totals and gauges continue where they stopped
        started_monotonic = time.monotonic()
        listener = listen(config.host, config.port)
        pushes = PushGroups(registry, store.read_meta(PushGroups.META_KEY))
        # StatsD's interval timings become gauges just before each sample: its flush is the sampler's `prepare`.
        statsd = _statsd_listener(registry, config.statsd) if config.statsd else None
    except BaseException:
        if listener is not None:
            listener.close()
        store.close()
        raise
    url = listen_url(listener.getsockname())
    store.announce(url)
    notice = functools.partial(_post_notice, events)
    # A notification links to the page as its reader reaches it: through the proxy when there is one.
    page_url = config.public_url + "/" if config.public_url else url
    notifier = Notifier(list(config.notify), page_url, post=notice,
                        persist=functools.partial(store.write_meta, "notify_flood"), state=store.read_meta("notify_flood"))
    outlet = AlertOutlet(notice, notifier.alert_changed)  # one "post, then notify" for rules and heartbeats
    alerts = AlertEngine(list(config.alert_rules), outlet, persist=functools.partial(store.write_meta, "alerts"),
                         state=store.read_meta("alerts"))
    heartbeats = Heartbeats(outlet, dict(config.heartbeats), persist=functools.partial(store.write_meta, "heartbeats"),
                            state=store.read_meta("heartbeats"))
    jobs = Jobs(outlet, dict(config.jobs), persist=store.save_job, state=store.job_states(), runs=store.job_runs,
                ping_key=_ping_key(store))
    hub = StreamHub(events, doorbell, heartbeat_s=config.heartbeat_s, write_timeout_s=config.write_timeout_s,
                    tokens=Revocations(tokens, shares))  # a revoked token or share link ends its streams
    # Each remote write receiver gets every sample from its own thread; submit() only queues. With
    # a data folder the queue is a file there of its own: an outage or a restart loses no tick.
    queue_dir = None if isinstance(store, MemoryStore) else Path(config.data_dir)
    writers = [RemoteWriter(target.url, instance=config.instance or socket.gethostname(), headers=target.headers,
                            external_labels=config.external_labels, user_agent="sse-dashboard/" + __version__,
                            queue_dir=queue_dir, **dict(config.remote_write_queue))
               for target in _one_per_url(config.remote_write)]
    # What is pushed says where this dashboard's page is, so a fleet page can link to it (#25).
    identity = {"identity": {"url": page_url, "version": __version__}} if writers else {}
    # The fleet page's listing: asked of the engine by one thread, handed to the streams that want it.
    fleet_view = Fleet(fleet, interval_s=config.interval_s, publish=functools.partial(hub.broadcast, "fleet"),
                       wanted=functools.partial(hub.wanting, "fleet"),
                       user_agent="sse-dashboard/" + __version__) if fleet is not None else None
    # Status pages (#26): each sample's states counted, each page's view made once and handed to its streams.
    status_pages = StatusPages(dict(config.status_pages), persist=functools.partial(store.write_meta, "status_pages"),
                               state=store.read_meta("status_pages"), runs=jobs.runs_of, publish=hub.broadcast,
                               wanted=hub.wanting, rules=tuple(rule.name for rule in config.alert_rules))
    # The sample pipeline, in the order each tick runs it (sampler.Sampler): StatsD's interval,
    # the snapshot, the alerts' judgement, then one Sample to storage and to the stream hub.
    sampler = Sampler(
        registry,
        make_system_collector(config.psutil),
        interval_s=config.interval_s,
        server_stats=functools.partial(server_stats, hub, statsd, started_monotonic),
        extra=dict({"boot_id": boot_id, "events_epoch": store.epoch}, **({"demo": True} if config.demo else {}),
                   **identity, **({"fleet": "/fleet"} if fleet_view is not None else {})),
        prepare=[statsd.aggregator.flush] if statsd is not None else [],
        judges=[functools.partial(alert_extras, alerts, heartbeats, jobs),
                functools.partial(remote_write_extras, writers)],
        subscribers=[store.record, hub.publish, status_pages.observe] + [writer.submit for writer in writers],
    )
    app = Application(config=config, registry=registry, events=events, store=store, pushes=pushes, notifier=notifier,
                      alerts=alerts, heartbeats=heartbeats, jobs=jobs, hub=hub, sampler=sampler,
                      processes=TopProcesses(getattr(sampler.collector, "_psutil", None)), statsd=statsd,
                      boot_id=boot_id, started_monotonic=started_monotonic, remote_writers=writers, fleet=fleet_view,
                      otlp_metrics=OtlpMetrics(registry, state=store.read_meta_prefix(STATE_PREFIX),
                                               keep_state=store.durable),
                      otlp_logs=OtlpLogs(events, type_attribute=config.otlp_event_type_attribute),
                      status_pages=status_pages)
    mcp = McpEndpoint(dashboard_tools(app, functools.partial(events.post), EventFilter.parse), __version__)
    server = DashboardServer(listener, app, hub, mcp, tokens, shares)
    if start:
        store.start()
        sampler.start()
        hub.start()
        notifier.start()
        for writer in writers:
            writer.start()
        if fleet_view is not None:
            fleet_view.start()
        if statsd is not None:
            statsd.start()
            log.info("StatsD on %s:%d (UDP and TCP)", *statsd.address)
        if config.demo:
            DemoFeeder(registry, events, stop=server.stopping).start()
    return server


def address_in_use(exc: OSError) -> bool:
    """Whether a bind failed because the port is taken (POSIX errno, or WinError 10048)."""
    return exc.errno == errno.EADDRINUSE or getattr(exc, "winerror", None) == 10048


def _ping_key(store: Store | MemoryStore) -> str:
    """This dashboard's ping key (``/ping/<ping key>/<slug>``): made once, kept with the data."""
    key = store.read_meta("ping_key")
    if key is None:
        key = secrets.token_urlsafe(16)
        store.write_meta("ping_key", key)
    return key


def _statsd_listener(registry: MetricsRegistry, address: str) -> StatsdListener:
    host, port = parse_address(address)
    try:
        return StatsdListener(StatsdAggregator(registry), host, port)
    except OSError as exc:
        why = ("UDP or TCP port %d on %s is taken (a local Netdata, Telegraf or statsd agent often listens on 8125); "
               "stop it or use --statsd %s:OTHER_PORT" % (port, host, host) if address_in_use(exc)
               else "cannot listen on %s:%d: %s" % (host, port, exc.strerror or exc))
        raise ListenerUnavailable("StatsD: " + why) from None


def _open_storage(config: Config, doorbell: Doorbell, boot_id: str) -> tuple[Store | MemoryStore, EventLog]:
    """The store and the event log it keeps. No data folder (or ":memory:"): both in memory,
    by choice; a folder that cannot be used: in memory too, with events refused (nothing posted
    could be kept) and /api/health saying why."""
    limits = {"maxlen": config.max_events, "max_chars": config.max_event_chars, "on_post": doorbell.ring}
    data_dir = config.data_dir
    if data_dir is not None and str(data_dir) != ":memory:":
        try:
            store = open_store(data_dir, **dict({"interval_s": config.interval_s}, **dict(config.storage_options)))
        except DataDirInUse:
            raise  # not a fault to run around: the user has two dashboards on one folder (main() says so)
        except StorageError as exc:
            # The live page still works from memory; POST /api/events answers 503 (nothing durable).
            log.error("storage unavailable, events will be refused until restarted: %s", exc)
            return _in_memory(config, EventLog(persist=_refuse(str(exc)), **limits), boot_id, str(exc))
        log.info("storing events and history in %s", store.path)
        try:
            events = EventLog(persist=store.insert_event, persist_many=store.insert_events,
                              initial=store.recent_events(config.max_events, config.max_event_chars),
                              last_id=store.last_event_id(), **limits)
        except BaseException:
            store.close()
            raise
        return store, events
    return _in_memory(config, EventLog(**limits), boot_id, None)


def _in_memory(config: Config, events: EventLog, boot_id: str, problem: str | None) -> tuple[MemoryStore, EventLog]:
    history = History.covering(DEFAULT_HISTORY_S, config.interval_s)
    return MemoryStore(history, events, epoch=boot_id, unavailable=problem), events


def _refuse(problem: str) -> Any:
    def refuse(event: Any) -> None:
        raise StorageError("storage is unavailable: %s" % problem)
    return refuse


def _post_notice(events: EventLog, level: str, message: str, **fields: Any) -> None:
    """Post one of the dashboard's own events (an alert firing): durably when storage can,
    else in memory only, so the page still hears of it. Only these may use the alert.* types."""
    try:
        events.post(level, message, by_dashboard=True, **fields)
    except StorageError as exc:
        log.warning("storage failing (%s): alert event kept in memory only", exc)
        events.post(level, message, durable=False, by_dashboard=True, **fields)
