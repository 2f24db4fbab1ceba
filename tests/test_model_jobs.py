"""Model-based test of job monitors (#24): random pings (start, success, fail, exit statuses,
overlapping run ids, logs), pauses, maintenance windows, restarts and the passing of time,
driven against the real engine on a real store with an injected clock, and held after every
check to a plain model of what should be firing; each incident fires once and resolves once,
across restarts."""

from __future__ import annotations

import os
import shutil
import tempfile

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from sse_dashboard import storage
from sse_dashboard.alerting.alert import AlertOutlet
from sse_dashboard.alerting.jobs import Jobs, parse_jobs

SPECS = {
    "a": {"schedule": 600, "grace": 60, "min_runtime": 30, "fail_after": 2, "too_often": True},
    "b": {"schedule": 300, "grace": 120, "start_grace": 200},
}
RIDS = [None, "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"]


class ModelJob:
    """What a job should be, written out plainly from the README's rules."""

    def __init__(self, spec: dict) -> None:
        self.period, self.grace = spec["schedule"], spec["grace"]
        self.start_grace = spec.get("start_grace", self.grace)
        self.min_runtime, self.fail_after = spec.get("min_runtime"), spec.get("fail_after", 1)
        self.too_often = spec.get("too_often", False)
        self.reference = None
        self.open = {}
        self.failures, self.outcome = 0, None
        self.short = self.early = False
        self.paused, self.maintenance_until = False, None
        self.firing = False

    def due(self):
        return None if self.reference is None or self.paused else self.reference + self.period

    def start(self, rid, now):
        self.open[rid or ""] = now

    def end(self, rid, outcome, now):
        start = self.open.pop(rid or "", None)
        if outcome == "fail" and start is None:
            self.open.pop("", None)
        due = self.due()
        self.reference, self.paused, self.outcome = now, False, outcome
        if outcome == "fail":
            self.failures += 1
            self.short = self.early = False
        else:
            self.failures = 0
            self.short = bool(self.min_runtime and start is not None and now - start < self.min_runtime)
            self.early = bool(self.too_often and due is not None and now < due - self.grace)

    def resume(self, now):
        self.paused = False
        if self.reference is not None:
            self.reference = now
        self.short = self.early = False
        self.failures, self.open = 0, {}

    def end_maintenance(self, at):
        self.maintenance_until = None
        if self.reference is not None:
            self.reference = max(self.reference, at)
        self.open = {rid: start for rid, start in self.open.items() if start >= at}

    def settle(self, now):
        if self.maintenance_until is not None and now >= self.maintenance_until:
            self.end_maintenance(self.maintenance_until)

    def wrong(self, now) -> bool:
        if self.paused or (self.maintenance_until is not None and now < self.maintenance_until):
            return False
        due = self.due()
        return (any(now >= start + self.start_grace for start in self.open.values())
                or (self.outcome == "fail" and self.failures >= self.fail_after)
                or self.short or self.early
                or (due is not None and now >= due + self.grace))


class JobMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.mkdtemp(prefix="jobs-model-")
        self.now = 1_790_000_000.0
        self.events = []
        self.model = {slug: ModelJob(spec) for slug, spec in SPECS.items()}
        self._open()

    def _open(self) -> None:
        self.store = storage.open_store(self.folder)
        outlet = AlertOutlet(lambda level, message, **fields: self.events.append(
            (fields["data"]["job"], fields["type"])))
        self.jobs = Jobs(outlet, parse_jobs(SPECS), persist=self.store.save_job, state=self.store.job_states(),
                         runs=self.store.job_runs, clock=lambda: self.now)
        self.ids = {slug: self.jobs.find(slug) for slug in SPECS}

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    @initialize(ran=st.sets(st.sampled_from(sorted(SPECS))))
    def some_have_run(self, ran):
        for slug in sorted(ran):  # (a new job expects nothing: most of what matters needs a first run)
            self.end(slug, None, "success")

    @rule(seconds=st.sampled_from([1, 29, 31, 59, 61, 119, 121, 199, 201, 299, 301, 599, 601, 900, 3600]))
    def time_passes(self, seconds):
        self.now += seconds
        for model in self.model.values():
            model.settle(self.now)

    @rule(slug=st.sampled_from(sorted(SPECS)), rid=st.sampled_from(RIDS))
    def start(self, slug, rid):
        self.jobs.ping(self.ids[slug], "start", rid=rid)
        self.model[slug].start(rid, self.now)

    @rule(slug=st.sampled_from(sorted(SPECS)), rid=st.sampled_from(RIDS),
          how=st.sampled_from(["success", "fail", 0, 1, 3]))
    def end(self, slug, rid, how):
        exit_status = how if isinstance(how, int) else None
        self.jobs.ping(self.ids[slug], "success" if exit_status is not None else how, rid=rid,
                       exit_status=exit_status, body=b"output")
        self.model[slug].end(rid, "fail" if how == "fail" or (exit_status or 0) > 0 else "success", self.now)

    @rule(slug=st.sampled_from(sorted(SPECS)))
    def log(self, slug):
        self.jobs.ping(self.ids[slug], "log", body=b"a line")

    @rule(slug=st.sampled_from(sorted(SPECS)))
    def pause(self, slug):
        self.jobs.pause(self.ids[slug], True)
        self.model[slug].paused = True
        self.model[slug].firing = False  # a pause resolves at once

    @rule(slug=st.sampled_from(sorted(SPECS)))
    def resume(self, slug):
        model = self.model[slug]
        if not model.paused:
            return  # (resuming a running job resets what it expects: the pings' rules cover that)
        self.jobs.pause(self.ids[slug], False)
        model.resume(self.now)
        model.firing = model.wrong(self.now)  # the change is judged at once

    @rule(slug=st.sampled_from(sorted(SPECS)), seconds=st.sampled_from([0, 100, 700]))
    def maintenance(self, slug, seconds):
        self.jobs.maintenance(self.ids[slug], self.now + seconds if seconds else None)
        model = self.model[slug]
        if seconds:
            model.maintenance_until = self.now + seconds
        else:
            model.end_maintenance(self.now)
        model.firing = model.wrong(self.now)

    @rule()
    def restart(self):
        self.store.close()
        self._open()
        assert self.ids == {slug: self.jobs.find(slug) for slug in SPECS}  # the same jobs, the same UUIDs

    @rule()
    def check(self):
        self.jobs.check()
        listing = {job["slug"]: job for job in self.jobs.listing()}
        for slug, model in self.model.items():
            model.firing = model.wrong(self.now)
            assert listing[slug]["firing"] == model.firing, (slug, listing[slug], vars(model), self.now)

    @invariant()
    def each_incident_fires_once_and_resolves_once(self):
        for slug in SPECS:
            kinds = [kind for job, kind in self.events if job == slug]
            assert all(a != b for a, b in zip(kinds, kinds[1:])), (slug, kinds)  # firing, resolved, firing, ...
            assert not kinds or kinds[0] == "alert.firing"
            firing_now = bool(kinds) and kinds[-1] == "alert.firing"
            assert firing_now == self.model[slug].firing, (slug, kinds, vars(self.model[slug]))

    @invariant()
    def the_engine_agrees_with_what_was_told(self):
        listing = {job["slug"]: job["firing"] for job in self.jobs.listing()}
        for slug in SPECS:
            kinds = [kind for job, kind in self.events if job == slug]
            assert listing[slug] == (bool(kinds) and kinds[-1] == "alert.firing"), (slug, kinds)


JobMachine.TestCase.settings = settings(max_examples=int(os.environ.get("SSE_MODEL_EXAMPLES") or 40),
                                        stateful_step_count=40, deadline=None, database=None,
                                        suppress_health_check=list(HealthCheck))
test_job_monitors_follow_the_model = JobMachine.TestCase
