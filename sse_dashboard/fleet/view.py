"""``Fleet``: who the engine holds and how each one is doing, asked once per interval for everyone.

One concept: the fleet listing. Every dashboard that pushes with ``--remote-write`` sends an info
series, ``sse_dashboard_info{instance, url, version, source}`` (``export.remote_write``); one
thread here asks the engine three questions per refresh (``QueryClient``):

1. who was heard from in the last ``LIST_WINDOW_S`` and when last: the info series' sample
   times, the newest ``max_instances`` (+1, to know there were more);
2. their CPU, memory, disk, alerts firing and jobs down now, in one query (each part tagged
   with ``label_replace``);
3. their CPU over the last hour (``query_range``, ``SPARK_POINTS`` points), for a sparkline.

``fleet_listing`` makes the rows of those answers (a pure function), and the rows go out in
trouble order: silent longer than ``stale_s`` first, then with alerts firing, then with jobs
down, then by name. The listing is encoded once, handed to ``publish`` (the stream hub) and
kept for ``GET /api/fleet``.

Invariants:
- one thread asks the engine, and only while someone looks (a stream wants the listing, or
  ``read`` was called within two refreshes): a hundred viewers cost one question set per
  refresh, none cost nothing;
- a refresh has one deadline (``timeout_s``) for all its questions; an engine that is down,
  slow or answers garbage makes ``engine.state`` "down" or "error" with a reason, and the last
  listing stays, with its own time (``as_of``): the page says the engine is down, nothing else
  stops;
- ``read`` waits for a fresh listing at most ``timeout_s`` (plus a little), so
  ``GET /api/fleet`` answers within that, whatever the engine does;
- a row's ``url`` is the info series' only when it is an absolute http or https URL (anything
  else would become a link the page must not make), at most ``MAX_URL_CHARS``.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable

from sse_dashboard.fleet.engine import DEFAULT_TIMEOUT_S, EngineError, QueryClient, parse_engine_url

__all__ = ["Fleet", "FleetSettings", "fleet_listing", "trouble_order", "promql_instances", "DEFAULT_STALE_S",
           "DEFAULT_MAX_INSTANCES", "LIST_WINDOW_S", "SPARK_WINDOW_S", "SPARK_POINTS", "MIN_REFRESH_S",
           "MAX_URL_CHARS"]

log = logging.getLogger(__name__)

DEFAULT_STALE_S = 60.0          # silent this long: flagged (a dashboard pushes every interval)
DEFAULT_MAX_INSTANCES = 200     # rows in the listing; more are counted, not listed
LIST_WINDOW_S = 3600            # an instance silent longer than this leaves the listing
SPARK_WINDOW_S = 3600           # the sparkline: the last hour of CPU ...
SPARK_POINTS = 60               # ... at one point a minute
MIN_REFRESH_S = 1.0             # at most one question set a second, whatever --interval is
MAX_URL_CHARS = 2000
MAX_NAME_CHARS = 200            # an instance name shown (the engine may hold longer ones)
SEEN_STEP_S = 15                # the resolution of "last seen" for instances silent over 5 minutes

# PromQL: the info series' last sample time. timestamp() reads the newest sample within the
# engine's lookback (5 minutes); past it, the subquery finds it to within SEEN_STEP_S.
SEEN_QUERY = ("topk(%(k)d, timestamp(sse_dashboard_info) or "
              "max_over_time(timestamp(sse_dashboard_info)[%(window)ds:%(step)ds]))")
# What each row shows, as the writer names it (GET /metrics' names, README "More than one machine").
VALUE_QUERIES = (
    ("cpu", "max by (instance) (system_cpu_usage_ratio{%(only)s})"),
    ("memory", "max by (instance) (system_memory_used_bytes{%(only)s} / system_memory_total_bytes{%(only)s})"),
    ("disk", "max by (instance) (system_disk_used_bytes{%(only)s} / "
             "(system_disk_used_bytes{%(only)s} + system_disk_free_bytes{%(only)s}))"),
    ("alerts", "max by (instance) (sse_dashboard_alerts_firing{%(only)s})"),
    ("jobs_down", "count by (instance) (sse_dashboard_job_up{%(only)s} == 0)"),
)
SPARK_QUERY = "max by (instance) (system_cpu_usage_ratio{%(only)s})"
_RE2_SPECIAL = set("\\.+*?()|[]{}^$")  # what Go's regexp.QuoteMeta escapes


@dataclass(frozen=True)
class FleetSettings:
    """``--fleet URL`` and its bounds. ``refresh_s`` None: the dashboard's interval (at least
    ``MIN_REFRESH_S``)."""

    url: str
    stale_s: float = DEFAULT_STALE_S
    max_instances: int = DEFAULT_MAX_INSTANCES
    timeout_s: float = DEFAULT_TIMEOUT_S
    refresh_s: float | None = None

    def __post_init__(self) -> None:
        parse_engine_url(self.url)
        if not (self.stale_s > 0 and math.isfinite(self.stale_s)):
            raise ValueError("the fleet's stale age must be a number of seconds above 0")
        if not 1 <= self.max_instances <= 10_000:
            raise ValueError("the fleet lists from 1 to 10000 instances")
        if not 0 < self.timeout_s <= 60:
            raise ValueError("the fleet's engine timeout must be above 0 and at most 60 seconds")


def promql_instances(names: list[str]) -> str:
    """A label matcher taking exactly these instances: ``instance=~"a|b\\.c"`` (RE2, anchored by
    PromQL), written as a PromQL string."""
    pattern = "|".join("".join("\\" + c if c in _RE2_SPECIAL else c for c in name) for name in names)
    return "instance=~" + json.dumps(pattern, ensure_ascii=False)


def _link(url: Any) -> str | None:
    """The info series' url when it may become a link: absolute http(s) with a host."""
    if not isinstance(url, str) or len(url) > MAX_URL_CHARS:
        return None
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port
    except ValueError:
        return None
    return url if parts.scheme in ("http", "https") and parts.hostname else None


def trouble_order(row: dict) -> tuple:
    """Silent first, then alerts firing, then jobs down, then by name."""
    return (not row["stale"], not row["alerts_firing"], not row["jobs_down"], row["instance"])


def fleet_listing(seen: list, values: list, spark: list, *, stale_s: float, max_instances: int,
                  spark_start: float, spark_step_s: float) -> dict:
    """The rows of the engine's answers (``QueryClient.instant``/``range`` results):
    ``{"instances": [row, ...], "truncated": bool}``, rows in ``trouble_order``."""
    rows: dict[str, dict] = {}
    for labels, (evaluated, last_seen) in seen:
        name = labels.get("instance")
        if not name or last_seen is None:
            continue
        row = rows.get(name)
        if row is not None and row["last_seen"] >= last_seen:
            continue  # two info series for one instance (a restart with another url): the newest
        age = max(0.0, evaluated - last_seen)
        rows[name] = {"instance": name[:MAX_NAME_CHARS], "url": _link(labels.get("url")),
                      "version": str(labels.get("version", ""))[:40] or None,
                      "last_seen": round(last_seen, 3), "age_s": round(age, 3), "stale": age > stale_s,
                      "cpu_percent": None, "memory_percent": None, "disk_percent": None,
                      "alerts_firing": 0, "jobs_down": 0, "cpu_history": [None] * (SPARK_POINTS + 1)}
    for labels, (_, value) in values:
        row = rows.get(labels.get("instance"))
        what = labels.get("fleet_part")
        if row is None or value is None:
            continue
        if what in ("cpu", "memory", "disk"):
            row[what + "_percent"] = round(value * 100.0, 2)
        elif what in ("alerts", "jobs_down"):
            row["alerts_firing" if what == "alerts" else "jobs_down"] = int(value)
    for labels, points in spark:
        row = rows.get(labels.get("instance"))
        if row is None:
            continue
        for at, value in points:
            slot = int(round((at - spark_start) / spark_step_s))
            if 0 <= slot <= SPARK_POINTS and value is not None:
                row["cpu_history"][slot] = round(value * 100.0, 2)
    ordered = sorted(rows.values(), key=trouble_order)
    return {"instances": ordered[:max_instances], "truncated": len(ordered) > max_instances}


class Fleet:
    """The fleet listing, refreshed by its own thread while someone looks.

    >>> fleet = Fleet(FleetSettings("http://127.0.0.1:9090"), interval_s=1.0,
    ...               publish=lambda body: hub.broadcast("fleet", body), wanted=lambda: hub.wanting("fleet") > 0)
    >>> fleet.start(); body = fleet.read(); fleet.stop()
    """

    def __init__(self, settings: FleetSettings, *, interval_s: float, publish: Callable[[bytes], None],
                 wanted: Callable[[], bool], user_agent: str = "sse-dashboard",
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.refresh_s = max(MIN_REFRESH_S, settings.refresh_s if settings.refresh_s is not None else interval_s)
        self._client = QueryClient(settings.url, user_agent=user_agent, clock=clock)
        self._publish = publish
        self._wanted = wanted
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._asked_at = -math.inf
        self._made_at = -math.inf   # monotonic time of the last refresh (answered or not)
        self._generation = 0
        self._listing = {"instances": [], "truncated": False}
        self._as_of: float | None = None
        self._engine = {"url": self._client.url, "state": "starting", "error": None, "checked_at": None, "took_s": None}
        self._body = self._encode_locked()

    # -- reading (any thread) --------------------------------------------------------------------

    def read(self) -> bytes:
        """The listing's JSON; if it is older than a refresh, the thread is woken and this waits
        for the new one at most ``timeout_s`` (plus a little): never longer."""
        with self._lock:
            self._asked_at = self._clock()
            fresh = self._clock() - self._made_at < self.refresh_s
            generation = self._generation
        if not fresh:
            self._wake.set()
            with self._changed:
                self._changed.wait_for(lambda: self._generation != generation or self._stopping,
                                       self.settings.timeout_s + 0.5)
        with self._lock:
            return self._body

    def latest(self) -> bytes:
        """The last listing's JSON as it is (a stream's first fleet frame): never waits."""
        with self._lock:
            return self._body

    # -- the thread ------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fleet", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        with self._lock:
            self._stopping = True
            self._changed.notify_all()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _looked_at(self) -> bool:
        with self._lock:
            asked_at = self._asked_at
        return self._clock() - asked_at < 2 * self.refresh_s or self._wanted()

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._stopping:
                    return
                due_in = self._made_at + self.refresh_s - self._clock()
            if due_in <= 0 and self._looked_at():
                try:
                    body = self.refresh()
                except Exception:  # a bug in reading one answer must not end the fleet page ...
                    log.exception("fleet: a refresh failed")
                    body = None
                    with self._lock:
                        self._made_at = self._clock()  # ... nor become a loop asking the engine non-stop
                if body is not None:
                    self._publish(body)
                continue
            # Asleep until the next refresh is due, or until someone asks (read, a new stream).
            self._wake.wait(due_in if due_in > 0 else self.refresh_s)
            self._wake.clear()

    def refresh(self) -> bytes:
        """Ask the engine (one deadline for every question), keep the new listing, return its JSON."""
        started = self._clock()
        deadline = started + self.settings.timeout_s
        try:
            listing = self._ask(deadline)
            engine = {"state": "ok", "error": None}
        except EngineError as exc:
            listing, engine = None, {"state": exc.state, "error": exc.message}
            self._log_change(exc.message)
        else:
            self._log_change(None)
        engine.update(url=self._client.url, checked_at=round(self._wall(), 3),
                      took_s=round(self._clock() - started, 3))
        with self._lock:
            if listing is not None:
                self._listing, self._as_of = listing, engine["checked_at"]
            self._engine = engine
            self._made_at = self._clock()
            self._generation += 1
            self._body = self._encode_locked()
            self._changed.notify_all()
            return self._body

    def _log_change(self, error: str | None) -> None:
        """Log when the engine goes away and when it is back, not at every refresh."""
        before = self._engine.get("error")
        if error is not None and error != before:
            log.warning("fleet engine %s: %s", self._client.url, error)
        elif error is None and before is not None:
            log.info("fleet engine %s answers again", self._client.url)

    def _ask(self, deadline: float) -> dict:
        client, settings = self._client, self.settings
        seen = client.instant(SEEN_QUERY % {"k": settings.max_instances + 1, "window": LIST_WINDOW_S,
                                            "step": SEEN_STEP_S}, deadline)
        names = sorted({labels["instance"] for labels, _ in seen if labels.get("instance")})
        values, spark = [], []
        end = self._wall()
        step = SPARK_WINDOW_S / SPARK_POINTS
        start = end - SPARK_WINDOW_S
        if names:
            only = promql_instances(names)
            values = client.instant(" or ".join(
                'label_replace(%s, "fleet_part", "%s", "", "")' % (query % {"only": only}, part)
                for part, query in VALUE_QUERIES), deadline)
            spark = client.range(SPARK_QUERY % {"only": only}, start, end, step, deadline)
        return fleet_listing(seen, values, spark, stale_s=settings.stale_s, max_instances=settings.max_instances,
                             spark_start=start, spark_step_s=step)

    def _encode_locked(self) -> bytes:
        document = {"engine": dict(self._engine), "as_of": self._as_of, "stale_after_s": self.settings.stale_s,
                    "max_instances": self.settings.max_instances, "history_window_s": SPARK_WINDOW_S,
                    "history_points": SPARK_POINTS + 1, **self._listing}
        return json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
