"""Status pages (#26): what a page lists, each component's state and uptime, its incidents and
maintenance notices.

One concept: the public view of chosen jobs, heartbeats, alert rules and metrics. A page is
configured (the config file's ``status_pages``, or an admin's ``PUT /api/status-pages/<slug>``)
with its components; each sample, ``StatusPages.observe`` reads the sample's snapshot (the jobs,
heartbeats and alerts ``alert_extras`` put there, the numeric series), counts each component's
time in its ledger (``alerting.uptime``), opens an incident when a component goes down and
resolves it when it comes back, and hands each page's view, encoded once, to the streams that
want it (``publish``/``wanted``: the stream hub's side channel ``status:<slug>``).

Invariants:
- a view holds only what its page lists, under the labels it gives: never another job, a job's
  UUID (its ping secret) or output, a heartbeat's message, an event's data or an address; an
  incident's text is made here from the label and the state, never from an alert's message;
- bounded: ``MAX_PAGES`` pages, ``MAX_COMPONENTS`` components a page, ``MAX_INCIDENTS``
  incidents a page (the oldest resolved go first), ``MAX_NOTES`` notes an incident,
  ``MAX_MAINTENANCE`` notices a page, 90 days of buckets a component;
- kept (``persist``, one meta value) at most every ``SAVE_EVERY_S`` of samples, and at once
  after an incident or an admin's change; an admin's change that cannot be kept is undone;
- ``observe`` runs on the sampler's thread and never blocks on a reader: views are built
  there, once per sample, and read by HTTP requests as they are.

May import: ``alerting.uptime``, the standard library.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from sse_dashboard.alerting.uptime import UptimeLedger, day_label, MAX_DAYS, DAY_S

__all__ = ["StatusPages", "PageSpec", "Component", "parse_status_pages", "parse_page", "STATUS_SLUG_RE", "KINDS",
           "MAX_PAGES", "MAX_COMPONENTS", "MAX_INCIDENTS", "MAX_NOTES", "MAX_NOTE_CHARS", "MAX_MAINTENANCE",
           "MAX_DURATIONS", "ConfiguredPage", "channel", "component_state", "parse_maintenance"]

log = logging.getLogger(__name__)

STATUS_SLUG_RE = re.compile(r"[a-z0-9_-]{1,64}")
_NAME_RE = re.compile(r"[A-Za-z0-9_.:-]{1,200}")
KINDS = ("job", "heartbeat", "alert", "metric")
MAX_PAGES = 20
MAX_COMPONENTS = 30
MAX_INCIDENTS = 50
MAX_NOTES = 20
MAX_NOTE_CHARS = 1000
MAX_TITLE_CHARS = 100
MAX_MAINTENANCE = 20
MAX_DURATIONS = 30           # the newest runs a job's duration chart shows
SAVE_EVERY_S = 60.0
MAX_RENDERINGS = 100         # cached renderings (a page as HTML, as a feed for one origin)
_PAGE_FIELDS = {"title", "components", "maintenance"}
_COMPONENT_FIELDS = {"kind", "name", "label"}
_JOB_STATES = {"up": "up", "started": "up", "late": "late", "down": "down", "maintenance": "maintenance"}


class ConfiguredPage(Exception):
    """An admin tried to change a page the config file defines: change the file instead."""


@dataclass(frozen=True)
class Component:
    kind: str
    name: str
    label: str

    @property
    def key(self) -> str:
        return "%s:%s" % (self.kind, self.name)


@dataclass(frozen=True)
class PageSpec:
    slug: str
    title: str
    components: tuple
    maintenance: tuple = ()         # (start, end, text) from the configuration

    def entry(self) -> dict:
        return {"title": self.title,
                "components": [{"kind": c.kind, "name": c.name, "label": c.label} for c in self.components],
                "maintenance": [{"start": s, "end": e, "text": t} for s, e, t in self.maintenance]}


def parse_status_pages(document: Any) -> dict[str, PageSpec]:
    """The config file's ``"status_pages": {"public": {"title": ..., "components": [...]}}``."""
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ValueError("status_pages must be an object of slug -> page")
    if len(document) > MAX_PAGES:
        raise ValueError("status_pages: at most %d pages" % MAX_PAGES)
    return {slug: parse_page(slug, entry) for slug, entry in document.items()}


def parse_page(slug: Any, entry: Any) -> PageSpec:
    """One page: ``ValueError`` says what is wrong, for a user."""
    if not isinstance(slug, str) or not STATUS_SLUG_RE.fullmatch(slug):
        raise ValueError("status page %s: a slug is 1 to 64 of a-z 0-9 _ -" % json.dumps(str(slug)[:70]))
    where = "status page %s" % slug
    if not isinstance(entry, dict):
        raise ValueError("%s: must be an object with title and components" % where)
    unknown = sorted(set(entry) - _PAGE_FIELDS)
    if unknown:
        raise ValueError("%s: unknown field %s (allowed: %s)" % (where, json.dumps(unknown[0][:40]),
                                                                ", ".join(sorted(_PAGE_FIELDS))))
    title = _text(entry.get("title", slug), where + ": title", MAX_TITLE_CHARS)
    raw = entry.get("components")
    if not isinstance(raw, list) or not raw:
        raise ValueError("%s: components must be a non-empty list" % where)
    if len(raw) > MAX_COMPONENTS:
        raise ValueError("%s: at most %d components" % (where, MAX_COMPONENTS))
    listed = [_component("%s: component %d" % (where, i), c) for i, c in enumerate(raw, start=1)]
    first = {}
    for component in listed:
        first.setdefault(component.key, component)  # one listed twice is shown once, as first listed
    components = tuple(first.values())
    notices = entry.get("maintenance") or []
    if not isinstance(notices, list) or len(notices) > MAX_MAINTENANCE:
        raise ValueError("%s: maintenance must be a list of at most %d notices" % (where, MAX_MAINTENANCE))
    maintenance = tuple(parse_maintenance(n, "%s: maintenance %d" % (where, i)) for i, n in enumerate(notices, 1))
    return PageSpec(slug, title, components, maintenance)


def _component(where: str, raw: Any) -> Component:
    if not isinstance(raw, dict):
        raise ValueError("%s: must be an object with kind and name" % where)
    unknown = sorted(set(raw) - _COMPONENT_FIELDS)
    if unknown:
        raise ValueError("%s: unknown field %s (allowed: kind, name, label)" % (where, json.dumps(unknown[0][:40])))
    kind = raw.get("kind")
    if kind not in KINDS:
        raise ValueError("%s: kind must be one of %s" % (where, ", ".join(KINDS)))
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ValueError("%s: name must be 1 to 200 of letters, digits, _ . : -" % where)
    return Component(kind, name, _text(raw.get("label", name), where + ": label", MAX_TITLE_CHARS))


def parse_maintenance(raw: Any, where: str = "maintenance") -> tuple:
    """``{"start": ..., "end": ..., "text": ...}`` (times as Unix seconds or ISO 8601 with a zone)."""
    if not isinstance(raw, dict) or set(raw) - {"start", "end", "text"}:
        raise ValueError("%s: must be an object with start, end and text" % where)
    start, end = _when(raw.get("start"), where + ": start"), _when(raw.get("end"), where + ": end")
    if end <= start:
        raise ValueError("%s: end must be after start" % where)
    return start, end, _text(raw.get("text"), where + ": text", MAX_NOTE_CHARS)


def _when(value: Any, where: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1e11:
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed.timestamp()
    raise ValueError("%s: a time as Unix seconds or ISO 8601 with a zone (2026-12-24T02:00:00Z)" % where)


def _text(value: Any, where: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise ValueError("%s: text of 1 to %d characters" % (where, limit))
    # A lone surrogate (JSON's "\\ud800") has no UTF-8: it would break every encoding of the page.
    return value.strip().encode("utf-8", "replace").decode("utf-8")


def component_state(component: Component, snapshot: dict, series: dict) -> tuple[str, Any]:
    """(state, value) of one component in one sample: up, down, late, maintenance or unknown;
    a metric's value is its latest number (up while it has one)."""
    kind, name = component.kind, component.name
    if kind == "job":
        job = next((j for j in snapshot.get("jobs") or () if j.get("slug") == name), None)
        return (_JOB_STATES.get(job.get("status"), "unknown") if job else "unknown"), None
    if kind == "heartbeat":
        beat = next((b for b in snapshot.get("heartbeats") or () if b.get("name") == name), None)
        if beat is None:
            return "unknown", None
        return ("down" if beat.get("firing") or beat.get("status") == "down"
                else "up" if beat.get("status") == "up" else "unknown"), None
    if kind == "alert":
        if any(a.get("rule") == name for a in snapshot.get("alerts") or ()):
            return "down", None
        return "up" if name in (snapshot.get("_rules") or ()) else "unknown", None
    value = series.get(name)
    return ("up" if value is not None else "unknown"), value


class _Page:
    """One page's mutable state; guarded by ``StatusPages._lock``."""

    def __init__(self, spec: PageSpec, configured: bool, kept: dict | None = None) -> None:
        kept = kept if isinstance(kept, dict) else {}
        self.spec, self.configured = spec, configured
        ledgers = kept.get("ledgers") if isinstance(kept.get("ledgers"), dict) else {}
        self.ledgers = {c.key: UptimeLedger.from_state(ledgers.get(c.key)) for c in spec.components}
        self.now: dict[str, tuple] = {}                      # key -> (state, value) at the last sample
        self.durations: dict[str, list] = {}                 # job key -> its newest runs' durations
        self.incidents: list[dict] = [i for i in kept.get("incidents") or () if _valid_incident(i)][-MAX_INCIDENTS:]
        self.next_incident = int(kept.get("next_incident") or len(self.incidents) + 1)
        self.notices: list[dict] = [n for n in kept.get("notices") or () if isinstance(n, dict)][-MAX_MAINTENANCE:]
        self.next_notice = int(kept.get("next_notice") or len(self.notices) + 1)

    def state(self) -> dict:
        kept = {"ledgers": {key: ledger.state() for key, ledger in self.ledgers.items()},
                "incidents": self.incidents, "next_incident": self.next_incident,
                "notices": self.notices, "next_notice": self.next_notice}
        if not self.configured:
            kept["spec"] = self.spec.entry()
        return kept

    def open_incident(self, component: Component) -> dict | None:
        return next((i for i in self.incidents if i["key"] == component.key and i["resolved"] is None), None)

    def step(self, component: Component, state: str, ts: float) -> bool:
        """Open or resolve ``component``'s incident as its state says; True if one changed."""
        incident = self.open_incident(component)
        if state == "down" and incident is None:
            self.incidents.append({"id": self.next_incident, "key": component.key, "component": component.label,
                                   "title": "%s is down" % component.label, "started": ts, "resolved": None,
                                   "updates": [{"ts": ts, "kind": "started", "text": "%s is down" % component.label}]})
            self.next_incident += 1
            self._trim_incidents()
            return True
        if state != "down" and incident is not None:
            said = "%s is up again" % component.label if state in ("up", "late") else "%s is %s" % (component.label, state)
            incident["resolved"] = ts
            incident["updates"].append({"ts": ts, "kind": "resolved", "text": said})
            return True
        return False

    def resolve_unlisted(self, ts: float) -> bool:
        """Resolve the open incidents of components no longer on the page (its spec changed)."""
        listed = {c.key for c in self.spec.components}
        changed = False
        for incident in self.incidents:
            if incident["resolved"] is None and incident["key"] not in listed:
                incident["resolved"] = ts
                incident["updates"].append({"ts": ts, "kind": "resolved",
                                            "text": "%s is no longer on this page" % incident["component"]})
                changed = True
        return changed

    def _trim_incidents(self) -> None:
        while len(self.incidents) > MAX_INCIDENTS:
            gone = next((i for i in self.incidents if i["resolved"] is not None), self.incidents[0])
            self.incidents.remove(gone)

    def maintenance(self, now: float) -> list[dict]:
        """Notices that have not ended, soonest first: the configured ones and the admin's."""
        notices = [{"id": "c%d" % n, "start": s, "end": e, "text": t}
                   for n, (s, e, t) in enumerate(self.spec.maintenance, 1)] + [dict(n) for n in self.notices]
        return sorted((n for n in notices if n["end"] > now), key=lambda n: n["start"])

    def view(self, now: float) -> dict:
        components = []
        for component in self.spec.components:
            state, value = self.now.get(component.key, ("unknown", None))
            ledger = self.ledgers[component.key]
            row = {"label": component.label, "kind": component.kind, "state": state,
                   "uptime": ledger.uptime(now), "bars": ledger.bars(now)}
            if component.kind == "metric":
                row["value"] = value
            if component.key in self.durations:
                row["durations"] = self.durations[component.key]
            components.append(row)
        states = [c["state"] for c in components]
        overall = ("down" if "down" in states else "late" if "late" in states
                   else "up" if "up" in states else "unknown")
        incidents = [{k: v for k, v in i.items() if k != "key"} for i in reversed(self.incidents)]
        return {"slug": self.spec.slug, "title": self.spec.title, "updated": round(now, 3), "state": overall,
                "first_day": day_label(int(now // DAY_S) - MAX_DAYS + 1), "components": components,
                "incidents": incidents, "maintenance": self.maintenance(now)}


class StatusPages:
    """Every status page: fed each sample, read by the web layer.

    >>> pages = StatusPages(parse_status_pages(doc["status_pages"]), persist=..., state=store.read_meta("status_pages"),
    ...                     runs=jobs.runs_of, publish=hub.broadcast, wanted=hub.wanting, rules=("cpu_hot",))
    >>> sampler = Sampler(..., subscribers=[..., pages.observe])
    >>> pages.view("public")          # the page's view as of the last sample, or None
    """

    def __init__(self, configured: dict | None = None, *, persist: Callable[[str], None] | None = None,
                 state: str | None = None, runs: Callable[..., list] | None = None,
                 publish: Callable[[str, bytes], None] | None = None, wanted: Callable[[str], int] | None = None,
                 rules: tuple = (), clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()
        self._persist, self._runs = persist, runs
        self._publish, self._wanted = publish, wanted
        self._rules = frozenset(rules)
        self._clock = clock
        kept = _load(state)
        self._pages: dict[str, _Page] = {slug: _Page(spec, True, kept.get(slug)) for slug, spec in (configured or {}).items()}
        for slug, entry in kept.items():
            if slug not in self._pages and isinstance(entry, dict) and len(self._pages) < MAX_PAGES:
                try:
                    self._pages[slug] = _Page(parse_page(slug, entry.get("spec")), False, entry)
                except ValueError as exc:
                    log.warning("a kept status page is dropped: %s", exc)
        self._views: dict[str, tuple[dict, bytes]] = {}
        self._rendered: dict[tuple, tuple] = {}            # (slug, how) -> (the view's bytes, what was made of it)
        self._saved_at = 0.0
        self._last_ts: float | None = None
        self._seen_pings: dict[str, Any] = {}

    # --- the sampler's thread -------------------------------------------------------------

    def observe(self, sample: Any) -> None:
        """One sample (a ``sampler.Sample``): count, open or resolve incidents; build the view of
        each page a stream watches and hand it to them (others are built when first asked for)."""
        snapshot, ts = dict(sample.snapshot, _rules=self._rules), sample.ts
        durations = self._durations(snapshot)
        with self._lock:
            changed = False
            for page in self._pages.values():
                changed = page.resolve_unlisted(ts) or changed
                for component in page.spec.components:
                    state, value = component_state(component, snapshot, sample.series)
                    page.ledgers[component.key].observe(ts, state)
                    page.now[component.key] = (state, value)
                    if component.kind == "job" and component.name in durations:
                        page.durations[component.key] = durations[component.name]
                    changed = page.step(component, state, ts) or changed
            self._last_ts = ts
            self._views = {}  # stale now: each is built again when first asked for, once this sample
            slugs = list(self._pages)
        if changed or ts - self._saved_at >= SAVE_EVERY_S:
            self._saved_at = ts
            self._save(quiet=True)
        if self._publish is not None and self._wanted is not None:
            for slug in slugs:
                if self._wanted(channel(slug)):  # only a page someone watches is built each sample
                    current = self.view(slug)
                    if current is not None:
                        self._publish(channel(slug), current[1])

    def _durations(self, snapshot: dict) -> dict:
        """Each listed job's newest run durations, asked of storage only when it was pinged since."""
        with self._lock:  # (an admin may be changing the pages meanwhile)
            wanted = {c.name for page in self._pages.values() for c in page.spec.components if c.kind == "job"}
        for slug in set(self._seen_pings) - wanted:
            del self._seen_pings[slug]  # a job no page lists any more
        found = {}
        for job in snapshot.get("jobs") or ():
            slug = job.get("slug")
            if slug not in wanted or self._runs is None:
                continue
            seen = job.get("last_ping")  # a new run, or a job made again under its slug, changes it
            kept = self._seen_pings.get(slug)
            if kept is None or kept[0] != seen:
                runs = self._runs(slug, MAX_DURATIONS * 3)
                points = [{"ts": r.get("end"), "duration": r["duration"], "ok": r.get("kind") == "success"}
                          for r in runs if r.get("duration") is not None][:MAX_DURATIONS]
                kept = self._seen_pings[slug] = (seen, points[::-1])
            found[slug] = kept[1]
        return found

    # --- reads ---------------------------------------------------------------------------

    def view(self, slug: str) -> tuple[dict, bytes] | None:
        """The page's view as of the last sample (built now if none was yet), or None: no such page."""
        cached = self._views.get(slug)
        if cached is not None:
            return cached
        with self._lock:
            page = self._pages.get(slug)
            view = page.view(self._last_ts if self._last_ts is not None else self._clock()) if page is not None else None
            if view is None:
                return None
            built = self._views[slug] = (view, _encode(view))  # (in the lock: a sample's reset is not undone)
        return built

    def rendered(self, slug: str, how: str, render: Callable[[dict], bytes]) -> bytes | None:
        """``render(view)`` of the page's current view, made once per view (so once per sample
        however many ask); None: no such page. ``how`` names the rendering (HTML, a feed)."""
        current = self.view(slug)
        if current is None:
            return None
        view, body = current
        made = self._rendered.get((slug, how))
        if made is not None and made[0] is body:
            return made[1]
        if len(self._rendered) >= MAX_RENDERINGS:
            self._rendered.clear()
        output = render(view)
        self._rendered[(slug, how)] = (body, output)
        return output

    def listing(self) -> list[dict]:
        with self._lock:
            return [dict(page.spec.entry(), slug=slug, configured=page.configured)
                    for slug, page in sorted(self._pages.items())]

    # --- an admin's changes ------------------------------------------------------------------

    def put(self, slug: str, entry: Any) -> bool:
        """Create or replace an admin's page; True if it is new. ``ValueError``: bad input;
        ``ConfiguredPage``: the config file owns it."""
        spec = parse_page(slug, entry)
        with self._lock:
            old = self._pages.get(slug)
            if old is not None and old.configured:
                raise ConfiguredPage("status page %s is defined in the config file: change it there" % slug)
            if old is None and len(self._pages) >= MAX_PAGES:
                raise ValueError("at most %d status pages" % MAX_PAGES)
            page = _Page(spec, False, old.state() if old is not None else None)
            self._pages[slug] = page
        self._keep_or_undo(slug, old)
        self._views.pop(slug, None)
        return old is None

    def delete(self, slug: str) -> bool:
        with self._lock:
            old = self._pages.get(slug)
            if old is None:
                return False
            if old.configured:
                raise ConfiguredPage("status page %s is defined in the config file: change it there" % slug)
            del self._pages[slug]
        self._keep_or_undo(slug, old)
        self._views.pop(slug, None)
        return True

    def add_note(self, slug: str, incident_id: int, text: Any) -> dict:
        """An admin's note on an incident's timeline. ``KeyError``: no such page or incident."""
        text = _text(text, "text", MAX_NOTE_CHARS)
        with self._lock:
            page = self._pages[slug]
            incident = next(i for i in page.incidents if i["id"] == incident_id) if any(
                i["id"] == incident_id for i in page.incidents) else None
            if incident is None:
                raise KeyError(incident_id)
            if sum(1 for u in incident["updates"] if u["kind"] == "note") >= MAX_NOTES:
                raise ValueError("an incident takes at most %d notes" % MAX_NOTES)
            note = {"ts": round(self._clock(), 3), "kind": "note", "text": text}
            incident["updates"].append(note)
        self._keep_or_undo(slug, None, undo=lambda: incident["updates"].remove(note))
        self._views.pop(slug, None)
        return {k: v for k, v in incident.items() if k != "key"}

    def add_maintenance(self, slug: str, raw: Any) -> dict:
        """An admin's maintenance notice. ``KeyError``: no such page."""
        start, end, text = parse_maintenance(raw)
        now = self._clock()
        with self._lock:
            page = self._pages[slug]
            page.notices = [n for n in page.notices if n["end"] > now - 7 * DAY_S]
            if len(page.notices) >= MAX_MAINTENANCE:
                raise ValueError("a page takes at most %d maintenance notices" % MAX_MAINTENANCE)
            notice = {"id": "m%d" % page.next_notice, "start": start, "end": end, "text": text}
            page.notices.append(notice)
            page.next_notice += 1
        self._keep_or_undo(slug, None, undo=lambda: page.notices.remove(notice))
        self._views.pop(slug, None)
        return notice

    def _keep_or_undo(self, slug: str, old: _Page | None, undo: Callable[[], None] | None = None) -> None:
        try:
            self._save(quiet=False)
        except Exception:
            with self._lock:
                if undo is not None:
                    undo()
                elif old is None:
                    self._pages.pop(slug, None)
                else:
                    self._pages[slug] = old
            raise

    def _save(self, quiet: bool) -> None:
        if self._persist is None:
            return
        with self._save_lock:  # two saves in a row land in the order they were made
            with self._lock:
                body = json.dumps({slug: page.state() for slug, page in self._pages.items()}, separators=(",", ":"))
            try:
                self._persist(body)
            except Exception as exc:
                if not quiet:
                    raise
                log.warning("status pages not kept this time (%s); the next sample tries again", exc)


def _valid_incident(kept: Any) -> bool:
    """An incident as ``_Page.step`` makes them (the kept state is ours, but a damaged one must
    not break the page): anything else is dropped at the start."""
    number = (int, float)
    return (isinstance(kept, dict) and isinstance(kept.get("id"), int) and isinstance(kept.get("key"), str)
            and isinstance(kept.get("component"), str) and isinstance(kept.get("title"), str)
            and isinstance(kept.get("started"), number) and isinstance(kept.get("resolved"), (type(None),) + number)
            and isinstance(kept.get("updates"), list) and bool(kept["updates"])
            and all(isinstance(u, dict) and isinstance(u.get("ts"), number) and isinstance(u.get("kind"), str)
                    and isinstance(u.get("text"), str) for u in kept["updates"]))


def channel(slug: str) -> str:
    """The stream hub's side channel that carries a page's view."""
    return "status:" + slug


def _encode(view: dict) -> bytes:
    return json.dumps(view, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def _load(state: str | None) -> dict:
    if not state:
        return {}
    try:
        kept = json.loads(state)
    except ValueError:
        log.warning("the kept status pages could not be read; starting them afresh")
        return {}
    return kept if isinstance(kept, dict) else {}
