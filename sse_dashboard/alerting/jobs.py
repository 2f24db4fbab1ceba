"""Job monitors (#24): jobs that run on a schedule, pinged on Healthchecks' URL shapes, and an
alert when one hangs, runs late, fails, runs too fast or too often.

One concept: what a job's pings mean against its schedule. The URLs are the web layer's; the
schedule (a period, or cron in a time zone) is ``alerting.schedule``'s; here is the state of
each job and its one alert.

Invariants:
- a ping is kept (``persist``: the job's new state and the run it opened, closed or logged, in
  one commit) before it changes anything, so an acknowledged ping survives kill -9 and a
  refused one changes nothing;
- one alert per incident: it fires once with the first thing wrong, its message follows what
  is wrong now, and the next good run (or a pause) resolves it, once;
- a new job expects nothing until its first ping (Healthchecks' "new"); a paused job, or one
  in a maintenance window, expects nothing, and resuming (or the window's end) starts the
  count again from then, so runs missed meanwhile never fire;
- bounded: ``MAX_JOBS`` jobs, ``MAX_OPEN_RUNS`` starts a job waits on at once (the oldest
  give way), a ping's body kept up to ``MAX_OUTPUT_BYTES``, the newest runs of each job
  (``storage.jobs.MAX_RUNS``).

May import: ``alerting.alert``, ``alerting.schedule``, the standard library.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from sse_dashboard.alerting.alert import Alert, AlertChange, AlertOutlet
from sse_dashboard.alerting.schedule import Schedule

log = logging.getLogger(__name__)

__all__ = ["Jobs", "JobSpec", "parse_jobs", "SLUG_RE", "MAX_JOBS", "MAX_OUTPUT_BYTES", "ACTIONS"]

SLUG_RE = re.compile(r"[a-z0-9_-]{1,100}")     # Healthchecks' slug characters
MAX_JOBS = 200
MAX_OPEN_RUNS = 10
MAX_OUTPUT_BYTES = 10_000                       # Healthchecks' PING_BODY_LIMIT
MAX_ALERT_OUTPUT_CHARS = 1_000                  # of the last run's output, carried by its alert's event
MAX_SECONDS = 366 * 86400.0
MAX_FAIL_AFTER = 100
DEFAULT_GRACE_S = 3600.0
ACTIONS = ("start", "success", "fail", "log")
LEVELS = ("warning", "error")
SPEC_FIELDS = {"name", "schedule", "tz", "grace", "start_grace", "min_runtime", "too_often", "fail_after",
               "level", "notify"}


@dataclass(frozen=True)
class JobSpec:
    """What a job is expected to do: from the config file's ``"jobs"`` or ``POST /api/jobs``."""

    slug: str
    name: str
    schedule: Schedule
    grace: float = DEFAULT_GRACE_S
    start_grace: float | None = None     # how long a start may wait for its end (None: ``grace``)
    min_runtime: float | None = None     # a success faster than this is suspicious
    too_often: bool = False              # a success before its schedule allows is wrong
    fail_after: int = 1                  # failures in a row before it fires
    level: str = "error"
    notify: tuple | None = None

    @classmethod
    def parse(cls, slug: Any, entry: Any) -> JobSpec:
        """``ValueError`` with a message for a person when any part is unusable."""
        if not isinstance(slug, str) or not SLUG_RE.fullmatch(slug):
            raise ValueError("a job's slug must be 1-100 of a-z, 0-9, - and _")
        if not isinstance(entry, dict) or set(entry) - SPEC_FIELDS:
            raise ValueError("job %s: the fields are %s" % (slug, ", ".join(sorted(SPEC_FIELDS))))
        if "schedule" not in entry:
            raise ValueError("job %s: a schedule is needed: seconds between runs, or a cron expression" % slug)
        tz = entry.get("tz", "UTC")
        if not isinstance(tz, str):
            raise ValueError("job %s: tz must be a time zone name, like Europe/Berlin" % slug)
        try:
            schedule = Schedule.parse(entry["schedule"], tz)
        except ValueError as exc:
            raise ValueError("job %s: %s" % (slug, exc)) from None
        name = entry.get("name", slug)
        if not isinstance(name, str) or not 0 < len(name) <= 100:
            raise ValueError("job %s: name must be text of 1-100 characters" % slug)
        fail_after = entry.get("fail_after", 1)
        if isinstance(fail_after, bool) or not isinstance(fail_after, int) or not 1 <= fail_after <= MAX_FAIL_AFTER:
            raise ValueError("job %s: fail_after must be a whole number from 1 to %d" % (slug, MAX_FAIL_AFTER))
        too_often = entry.get("too_often", False)
        if not isinstance(too_often, bool):
            raise ValueError("job %s: too_often must be true or false" % slug)
        level = entry.get("level", "error")
        if level not in LEVELS:
            raise ValueError("job %s: level must be warning or error" % slug)
        notify = entry.get("notify")
        if notify is not None and (not isinstance(notify, list) or not all(isinstance(n, str) for n in notify)):
            raise ValueError("job %s: notify must be a list of notify target names" % slug)
        return cls(slug, name, schedule, grace=_seconds(entry.get("grace", DEFAULT_GRACE_S), slug, "grace"),
                   start_grace=_seconds(entry.get("start_grace"), slug, "start_grace"),
                   min_runtime=_seconds(entry.get("min_runtime"), slug, "min_runtime"),
                   too_often=too_often, fail_after=fail_after, level=level,
                   notify=None if notify is None else tuple(notify))

    def to_dict(self) -> dict:
        return {"slug": self.slug, "name": self.name, "schedule": self.schedule.to_dict(), "grace": self.grace,
                "start_grace": self.start_grace, "min_runtime": self.min_runtime, "too_often": self.too_often,
                "fail_after": self.fail_after, "level": self.level,
                "notify": None if self.notify is None else list(self.notify)}

    def entry(self) -> dict:
        """What ``parse`` takes back (the kept state holds this)."""
        schedule = self.schedule
        entry = {"name": self.name, "schedule": schedule.cron if schedule.kind == "cron" else schedule.period_s,
                 "tz": schedule.tz or "UTC", "grace": self.grace,
                 "too_often": self.too_often, "fail_after": self.fail_after, "level": self.level}
        for key in ("start_grace", "min_runtime", "notify"):
            value = getattr(self, key)
            if value is not None:
                entry[key] = list(value) if key == "notify" else value
        return entry

    @property
    def start_grace_s(self) -> float:
        return self.grace if self.start_grace is None else self.start_grace


def parse_jobs(document: Any) -> dict[str, JobSpec]:
    """The config file's ``"jobs": {"backup": {"schedule": "0 2 * * *", "tz": "Europe/Berlin"}}``."""
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ValueError('"jobs" must be an object of slug: {"schedule": ...}')
    if len(document) > MAX_JOBS:
        raise ValueError('"jobs": at most %d jobs' % MAX_JOBS)
    return {slug: JobSpec.parse(slug, entry) for slug, entry in document.items()}


def _seconds(value: Any, slug: str, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 <= value <= MAX_SECONDS:
        raise ValueError("job %s: %s must be a number of seconds from 0 to %d" % (slug, what, MAX_SECONDS))
    return float(value)


@dataclass
class _Job:
    """One job's state, changed only under ``Jobs``' lock (on a copy, kept, then put in place)."""

    id: str
    spec: JobSpec
    created: float
    reference: float | None = None      # expected runs count from here; None: new, nothing expected yet
    last_ping: float | None = None
    last_outcome: str | None = None     # "success" or "fail"
    last_exit: int | None = None
    last_duration: float | None = None
    failures: int = 0                   # failures in a row
    short: float | None = None          # the last success's duration, when under min_runtime
    early: float | None = None          # when the last success came before its schedule allowed
    open: dict = field(default_factory=dict)   # rid ("" for none) -> [start ts, run n]
    paused: bool = False
    maintenance_until: float | None = None
    runs: int = 0                       # run records made (the next one is runs + 1)
    last_output: str = ""               # the end of the last run's output, for its alert
    alert: Alert | None = None

    def copy(self) -> _Job:
        return replace(self, open={rid: list(run) for rid, run in self.open.items()})

    def state(self) -> dict:
        kept = {key: getattr(self, key) for key in ("id", "created", "reference", "last_ping", "last_outcome",
                                                    "last_exit", "last_duration", "failures", "short", "early",
                                                    "open", "paused", "maintenance_until", "runs",
                                                    "last_output")}
        kept["slug"], kept["spec"] = self.spec.slug, self.spec.entry()
        kept["alert"] = None if self.alert is None else self.alert.to_dict()
        return kept

    @classmethod
    def from_state(cls, kept: dict) -> _Job:
        spec = JobSpec.parse(kept["slug"], kept["spec"])
        alert = kept.get("alert")
        job = cls(kept["id"], spec, kept["created"],
                  alert=None if alert is None else Alert.from_dict(alert, "job", spec.notify))
        for key in ("reference", "last_ping", "last_outcome", "last_exit", "last_duration", "failures", "short",
                    "early", "open", "paused", "maintenance_until", "runs", "last_output"):
            if key in kept:
                setattr(job, key, kept[key])
        return job

    def next_expected(self) -> float | None:
        """When the next run is due (None: nothing is expected: new, or paused)."""
        if self.reference is None or self.paused:
            return None
        return self.spec.schedule.next_after(self.reference)

    def in_maintenance(self, now: float) -> bool:
        return self.maintenance_until is not None and now < self.maintenance_until

    def status(self, now: float) -> str:
        """new, up, started (a run is on), late (due, within its grace), down, paused or maintenance."""
        if self.paused:
            return "paused"
        if self.in_maintenance(now):
            return "maintenance"
        if self.problems(now):
            return "down"
        if self.open:
            return "started"
        expected = self.next_expected()
        if expected is not None and now >= expected:
            return "late"
        return "new" if self.reference is None else "up"

    def problems(self, now: float) -> list[str]:
        """What is wrong now, most urgent first, as the alert's message says it."""
        if self.paused or self.in_maintenance(now):
            return []
        spec, tz = self.spec, self.spec.schedule
        wrong = []
        for start, _ in sorted(self.open.values()):
            if now >= start + spec.start_grace_s:
                wrong.append("started %s, no end after %s grace" % (tz.clock(start), _duration(spec.start_grace_s)))
                break
        if self.last_outcome == "fail" and self.failures >= spec.fail_after:
            said = "exit status %d" % self.last_exit if self.last_exit else "failed"
            wrong.append(said + (" (%d failures in a row)" % self.failures if self.failures > 1 else ""))
        if self.short is not None:
            wrong.append("finished in %s, less than the minimum %s" % (_duration(self.short),
                                                                       _duration(spec.min_runtime or 0)))
        if self.early is not None:
            wrong.append("ran at %s, before its schedule allows" % tz.clock(self.early))
        expected = self.next_expected()
        if expected is not None and now >= expected + spec.grace:
            wrong.append("expected %s, no run after %s grace" % (tz.clock(expected), _duration(spec.grace)))
        return wrong

    def to_dict(self, now: float) -> dict:
        expected = self.next_expected()
        return {"id": self.id, "slug": self.spec.slug, "name": self.spec.name, "status": self.status(now),
                "schedule": self.spec.schedule.describe(), "grace": self.spec.grace,
                "start_grace": self.spec.start_grace_s, "min_runtime": self.spec.min_runtime,
                "last_ping": self.last_ping, "last_outcome": self.last_outcome, "last_exit": self.last_exit,
                "last_duration": self.last_duration, "failures": self.failures, "next_expected": expected,
                "running": len(self.open), "paused": self.paused, "maintenance_until": self.maintenance_until,
                "firing": self.alert is not None, "message": self.alert.message if self.alert else ""}


class Jobs:
    """Every job monitor, pinged by the web layer and checked on each sample.

    >>> jobs = Jobs(outlet, configured=parse_jobs(config["jobs"]), persist=store.save_job,
    ...             state=store.job_states(), runs=store.job_runs)
    >>> jobs.ping(job_id, "start")
    >>> jobs.ping(job_id, "success", body=b"42 files")
    >>> jobs.check()             # the sampler calls this: fires or resolves, returns the active alerts

    ``persist(job_id, state_json | None, run | None)`` commits (``StorageError`` refuses the
    ping); ``runs(job_id, limit, before)`` reads the kept runs. The outlet is called outside the lock.
    """

    def __init__(self, outlet: AlertOutlet, configured: dict | None = None,
                 persist: Callable[[str, str | None, dict | None], None] | None = None,
                 state: dict | None = None, runs: Callable[[str, int, int | None], list] | None = None,
                 clock: Callable[[], float] = time.time, ping_key: str | None = None) -> None:
        self._outlet = outlet
        self._persist = persist
        self._runs = runs
        self._clock = clock
        self.clock = clock  # the maintenance window's "now" (the API's "for N seconds")
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}
        self.ping_key = ping_key or uuid.uuid4().hex[:22]
        for job_id, kept in (state or {}).items():
            try:
                job = _Job.from_state(json.loads(kept))
            except (ValueError, KeyError, TypeError) as exc:  # written by a version that knew more: say so
                log.warning("job %s: its kept state is not usable (%s); it starts anew", job_id, exc)
                continue
            self._jobs[job.id] = job
        now = clock()
        for slug, spec in (configured or {}).items():
            job = self._by_slug(slug)
            if job is None:
                job = _Job(str(uuid.uuid4()), spec, now)
                self._save(job)
                self._jobs[job.id] = job
            elif job.spec != spec:
                job.spec = spec
                self._save(job)

    # --- what the API does ----------------------------------------------------------------

    def ping(self, job_id: str, action: str, rid: str | None = None, exit_status: int | None = None,
             body: bytes = b"") -> dict:
        """One signal (``start``, ``success``, ``fail``, ``log``; an exit status: 0 success, else
        fail); returns the run record it made or closed. ``KeyError``: no such job."""
        if action not in ACTIONS:
            raise ValueError("the action must be one of %s" % ", ".join(ACTIONS))
        if exit_status is not None:
            action = "success" if exit_status == 0 else "fail"
        output = body[:MAX_OUTPUT_BYTES].decode("utf-8", errors="replace")
        now = self._clock()
        with self._lock:
            job = self._jobs[job_id].copy()
            _settle(job, now)
            run = _apply(job, action, rid or "", exit_status, output, now)
            self._save(job, run)  # kept first: a failure changes nothing
            self._jobs[job.id] = job
        return run

    def create(self, spec: JobSpec) -> tuple[dict, bool]:
        """Add a job, or change the spec of the one with this slug; (its listing, created?)."""
        now = self._clock()
        with self._lock:
            job = self._by_slug(spec.slug)
            created = job is None
            if created:
                if len(self._jobs) >= MAX_JOBS:
                    raise ValueError("too many jobs (at most %d)" % MAX_JOBS)
                job = _Job(str(uuid.uuid4()), spec, now)
            else:
                job = replace(job.copy(), spec=spec)
            self._save(job)
            self._jobs[job.id] = job
            return job.to_dict(now), created

    def find(self, key: str) -> str | None:
        """The id of the job with this id or slug."""
        with self._lock:
            if key in self._jobs:
                return key
            job = self._by_slug(key)
            return None if job is None else job.id

    def pause(self, job_id: str, paused: bool) -> dict:
        """Pause (expect nothing, resolve what fires) or resume (expect runs from now on)."""
        return self._change(job_id, lambda job, now: _pause(job, paused, now))

    def maintenance(self, job_id: str, until: float | None) -> dict:
        """Expect nothing until ``until`` (None: end the window now); runs count again from its end."""
        return self._change(job_id, lambda job, now: _maintenance(job, until, now))

    def forget(self, job_id: str) -> bool:
        """Delete a job and its runs; a firing one is resolved ("removed")."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return False
            if self._persist is not None:
                self._persist(job.id, None, None)
            del self._jobs[job_id]
        if job.alert is not None:
            self._outlet.send([_resolved(job, "resolved: %s was removed" % job.spec.name, self._clock())])
        return True

    def runs(self, job_id: str, limit: int, before: int | None = None) -> list[dict]:
        return self._runs(job_id, limit, before) if self._runs is not None else []

    def runs_of(self, slug: str, limit: int) -> list[dict]:
        """The newest runs of the job with this slug ([] for none): for a reader that is not
        told the job's UUID (a status page: the UUID is the job's ping secret)."""
        with self._lock:
            job = next((job for job in self._jobs.values() if job.spec.slug == slug), None)
        return self.runs(job.id, limit) if job is not None else []

    def listing(self) -> list[dict]:
        now = self._clock()
        with self._lock:
            return [job.to_dict(now) for job in sorted(self._jobs.values(), key=lambda j: j.spec.slug)]

    def active(self) -> list[dict]:
        with self._lock:
            return [job.alert.to_dict() for job in self._jobs.values() if job.alert is not None]

    # --- the sampler's check ---------------------------------------------------------------

    def check(self) -> list[dict]:
        """Fire and resolve as the jobs' pings and schedules say; return the active job alerts."""
        now = self._clock()
        changes, changed = [], []
        with self._lock:
            for job in self._jobs.values():
                if _settle(job, now):
                    changed.append(job)
                change = _step(job, now)
                if change is not None:
                    changes.append(change)
                    changed.append(job)
            active = [job.alert.to_dict() for job in self._jobs.values() if job.alert is not None]
        self._outlet.send(changes)
        if changed:  # after the event and the notification, as the other engines do
            with self._lock:
                for job in changed:
                    try:
                        self._save(job)
                    except Exception as exc:
                        log.warning("job %s: alert state not kept: %s", job.spec.slug, exc)
        return active

    # --- inside ----------------------------------------------------------------------------

    def _change(self, job_id: str, how: Callable[[_Job, float], None]) -> dict:
        now = self._clock()
        with self._lock:
            job = self._jobs[job_id].copy()
            _settle(job, now)
            how(job, now)
            change = _step(job, now)  # a pause resolves at once
            self._save(job)
            self._jobs[job_id] = job
        if change is not None:
            self._outlet.send([change])
        return job.to_dict(now)

    def _by_slug(self, slug: str) -> _Job | None:
        return next((job for job in self._jobs.values() if job.spec.slug == slug), None)

    def _save(self, job: _Job, run: dict | None = None) -> None:
        if self._persist is not None:
            self._persist(job.id, json.dumps(job.state(), separators=(",", ":")), run)


def _apply(job: _Job, action: str, rid: str, exit_status: int | None, output: str, now: float) -> dict:
    """One signal on ``job`` (a copy); returns its run record."""
    if action == "log":
        job.runs += 1
        return {"n": job.runs, "kind": "log", "ts": now, "output": output}
    if action == "start":
        if rid in job.open or len(job.open) >= MAX_OPEN_RUNS:  # a start again, or too many on: the oldest gives way
            job.open.pop(rid if rid in job.open else min(job.open, key=lambda r: job.open[r][0]))
        job.runs += 1
        job.open[rid] = [now, job.runs]
        return {"n": job.runs, "kind": "start", "start": now, "rid": rid or None, "output": output}
    start, n = job.open.pop(rid, (None, None))
    if action == "fail" and start is None:
        job.open.pop("", None)  # a failure ends the run that had no id, whatever its own id (Healthchecks)
    if n is None:
        job.runs += 1
        n = job.runs
    duration = None if start is None else round(now - start, 3)
    before = job.next_expected()
    job.last_ping, job.last_outcome, job.last_exit, job.last_duration = now, action, exit_status, duration
    job.last_output = output[-MAX_ALERT_OUTPUT_CHARS:]  # a failing script says why at its end
    job.paused = False  # a run resumes a paused job, as it does in Healthchecks
    job.reference = now
    if action == "fail":
        job.failures += 1
        job.short = job.early = None
    else:
        job.failures = 0
        minimum = job.spec.min_runtime
        job.short = duration if minimum and duration is not None and duration < minimum else None
        job.early = now if job.spec.too_often and before is not None and now < before - job.spec.grace else None
    flags = [flag for flag, on in (("too fast", job.short is not None), ("too often", job.early is not None)) if on]
    return {"n": n, "kind": action, "start": start, "end": now, "duration": duration, "exit": exit_status,
            "rid": rid or None, "output": output, "flags": flags}


def _settle(job: _Job, now: float) -> bool:
    """End a maintenance window that is over, as of its end (runs count again from then);
    True if there was one. Whatever looks at a job first settles it."""
    if job.maintenance_until is not None and now >= job.maintenance_until:
        _maintenance(job, None, job.maintenance_until)
        return True
    return False


def _pause(job: _Job, paused: bool, now: float) -> None:
    job.paused = paused
    if not paused:  # a clean slate: runs missed while paused never fire
        job.reference = now if job.reference is not None else None
        job.short = job.early = None
        job.failures = 0
        job.open = {}


def _maintenance(job: _Job, until: float | None, now: float) -> None:
    if until is not None and until > now:
        job.maintenance_until = until
        return
    job.maintenance_until = None
    if job.reference is not None:
        job.reference = max(job.reference, now)  # what was due during the window is forgiven
    job.open = {rid: run for rid, run in job.open.items() if run[0] >= now}


def _step(job: _Job, now: float) -> AlertChange | None:
    """Fire, follow or resolve ``job``'s one alert as what is wrong says."""
    wrong = job.problems(now)
    if job.alert is not None and not wrong:
        return _resolved(job, "resolved: %s %s" % (job.spec.name, _why_good(job, now)), now)
    if not wrong:
        return None
    message = "%s: %s" % (job.spec.name, wrong[0])
    if job.alert is not None:  # still the one alert; it says what is wrong now
        job.alert = replace(job.alert, message=message)
        return None
    job.alert = Alert("job:" + job.spec.slug, "job", job.spec.level, "job." + job.spec.slug, None, None, None,
                      since=round(now, 3), message=message, targets=job.spec.notify)
    return AlertChange.fired(job.alert, message, {"job": job.spec.slug, "id": job.id, "state": "firing",
                                                  "reasons": wrong, "output": job.last_output})


def _why_good(job: _Job, now: float) -> str:
    if job.paused:
        return "is paused"
    if job.in_maintenance(now):
        return "is in maintenance"
    if job.last_outcome == "success":
        took = " in %s" % _duration(job.last_duration) if job.last_duration is not None else ""
        return "succeeded%s" % took
    return "is expected again"


def _resolved(job: _Job, text: str, now: float) -> AlertChange:
    alert, job.alert = job.alert, None
    told = replace(alert, level=job.spec.level, targets=job.spec.notify)
    return AlertChange.resolved(told, text, {"job": job.spec.slug, "id": job.id, "state": "resolved",
                                             "since": alert.since}, ended_at=now)


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return "%d %s" % (seconds // size, unit)
    return "%g s" % round(seconds, 3)
