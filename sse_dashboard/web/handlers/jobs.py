"""Job monitors over HTTP: the pings on Healthchecks' URL shapes, and the jobs' API (#24).

One concept: the job monitors' HTTP side. What a ping means is ``alerting.jobs``'; here are
the URL shapes, the bodies and the answers.

The ping URLs answer as Healthchecks' do, so a script, ``runitor`` or a backup tool's hook
written for Healthchecks changes only its base URL: ``OK`` (200), ``Created`` (201, a job made
by its first ping with ``?create=1``), ``not found`` (404), ``invalid url format`` and
``invalid uuid format`` (400), plain text, with ``Ping-Body-Limit`` and
``Access-Control-Allow-Origin: *``. Everything else here answers JSON, as the rest of the API.
"""

from __future__ import annotations

import re
import urllib.parse
import uuid

from sse_dashboard.alerting.jobs import MAX_OUTPUT_BYTES, JobSpec
from sse_dashboard.web.request import parse_int
from sse_dashboard.web.response import HTTPError, Response, json_response

__all__ = ["JobHandlers", "MAX_PING_BODY_BYTES", "MAX_RUNS_A_PAGE"]

MAX_PING_BODY_BYTES = 100_000    # read, and the first MAX_OUTPUT_BYTES kept (Healthchecks keeps 10,000)
MAX_RUNS_A_PAGE = 100
PING_HEADERS = (("Ping-Body-Limit", str(MAX_OUTPUT_BYTES)), ("Access-Control-Allow-Origin", "*"),
                ("Cache-Control", "no-store"))


# Healthchecks' URL patterns (hc/api/urls.py): Django's uuid (lower-case), slug and int converters.
_SIGNAL = r"(?:/(?P<signal>start|fail|log|[0-9]{1,9}|))?"
_BY_UUID = re.compile(r"(?P<code>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})" + _SIGNAL)
_BY_SLUG = re.compile(r"(?P<key>[-a-zA-Z0-9_]+)/(?P<slug>[-a-zA-Z0-9_]+)" + _SIGNAL)


def _text(status: int, text: str) -> Response:
    return Response(status, text.encode("utf-8"), "text/plain; charset=utf-8", PING_HEADERS)


class JobHandlers:
    """``ping_job``, ``get_jobs``, ``post_job``, ``get_job``, ``post_job_action`` and ``delete_job``:
    part of ``DashboardHandler``."""

    def ping_job(self) -> Response:
        """HEAD, GET or POST /ping/<uuid>[/start|/fail|/log|/<exit status>] or
        /ping/<ping key>/<slug>[/...] (``?create=1`` makes the job; ``?rid=<uuid>`` pairs a start
        with its end), matched as Healthchecks' URL patterns match them."""
        path = urllib.parse.unquote(self.route_path[len("/ping/"):])
        by_uuid = _BY_UUID.fullmatch(path)
        by_slug = None if by_uuid else _BY_SLUG.fullmatch(path)
        if by_uuid is None and by_slug is None:
            return _text(404, "not found")
        jobs = self.app.jobs
        signal = (by_uuid or by_slug).group("signal") or ""
        action, exit_status = (signal or "success", None) if not signal.isdigit() else ("success", int(signal))
        if exit_status is not None and exit_status > 255:
            return _text(400, "invalid url format")
        created = False
        if by_uuid:
            job_id = jobs.find(by_uuid.group("code"))
        else:
            slug = by_slug.group("slug")
            if slug != slug.lower():
                return _text(400, "invalid url format")
            if by_slug.group("key") != jobs.ping_key:
                return _text(404, "not found")
            job_id = jobs.find(slug)
            if job_id is None and self.query_value("create") == "1":
                job_id, created = self._create_by_ping(slug), True
        rid = self.query_value("rid")
        if rid is not None and not _is_uuid(rid):
            return _text(400, "invalid uuid format")
        if job_id is None:
            return _text(404, "not found")
        body = self.read_body(MAX_PING_BODY_BYTES) if self._body_pending else b""
        self.refuse_unless_durable()
        try:
            jobs.ping(job_id, action, rid=rid.lower() if rid else None, exit_status=exit_status, body=body)
        except KeyError:  # deleted meanwhile
            return _text(404, "not found")
        return _text(201, "Created") if created else _text(200, "OK")

    def _create_by_ping(self, slug: str) -> str | None:
        """A job made by its first ping: the default schedule (a day) and grace (an hour), as
        Healthchecks makes one; change it with POST /api/jobs."""
        self.refuse_unless_durable()
        try:
            job, _ = self.app.jobs.create(JobSpec.parse(slug, {"schedule": 86400}))
        except ValueError:  # too many jobs: Healthchecks answers as if there were none
            return None
        return job["id"]

    def get_jobs(self) -> Response:
        """The jobs; their UUIDs and the ping key (whoever has one may ping) only for a token that
        may write, as pings do (a read token sees the jobs without them, #26)."""
        if self._may_write():
            return json_response({"jobs": self.app.jobs.listing(), "ping_key": self.app.jobs.ping_key})
        return json_response({"jobs": [_without_secret(job) for job in self.app.jobs.listing()]})

    def post_job(self) -> Response:
        """POST /api/jobs {"slug": ..., "schedule": ..., ...}: a job made, or its spec changed."""
        body = self.read_json_body()
        slug = body.pop("slug", None)
        try:
            spec = JobSpec.parse(slug, body)
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from None
        self.refuse_unless_durable()
        try:
            job, created = self.app.jobs.create(spec)
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from None
        return json_response(job, 201 if created else 200)

    def get_job(self) -> Response:
        """GET /api/jobs/<id or slug> (the job) or /api/jobs/<id or slug>/runs?limit=&before= (its runs)."""
        job_id, what = self._job_path()
        if what == "runs":
            limit = parse_int(self.query_value("limit"), "limit", default=50, minimum=1)
            if limit > MAX_RUNS_A_PAGE:
                raise HTTPError(400, "limit must be at most %d" % MAX_RUNS_A_PAGE)
            before = parse_int(self.query_value("before"), "before", default=None, minimum=1)
            runs = self.app.jobs.runs(job_id, limit, before)
            return json_response({"runs": runs, "next": runs[-1]["n"] if len(runs) == limit else None})
        if what:
            raise HTTPError(404, "no such place: /api/jobs/<id>/runs is")
        job = next(job for job in self.app.jobs.listing() if job["id"] == job_id)
        return json_response(job if self._may_write() else _without_secret(job))

    def post_job_action(self) -> Response:
        """POST /api/jobs/<id or slug>/pause, /resume or /maintenance {"seconds": N} (0: end it)."""
        job_id, what = self._job_path()
        jobs = self.app.jobs
        if what in ("pause", "resume"):
            self.refuse_unless_durable()
            return json_response(jobs.pause(job_id, what == "pause"))
        if what == "maintenance":
            body = self.read_json_body()
            self.check_fields(body, ("seconds",))
            seconds = body.get("seconds")
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= 366 * 86400:
                raise HTTPError(400, "seconds must be a number from 0 (end the window now) to %d" % (366 * 86400))
            self.refuse_unless_durable()
            now = jobs.clock()
            return json_response(jobs.maintenance(job_id, now + seconds if seconds else None))
        raise HTTPError(404, "no such action: pause, resume or maintenance")

    def delete_job(self) -> Response:
        job_id, what = self._job_path()
        if what:
            raise HTTPError(404, "DELETE /api/jobs/<id or slug> deletes a job")
        self.refuse_unless_durable()
        self.app.jobs.forget(job_id)
        return json_response({"status": "deleted", "id": job_id})

    def _job_path(self) -> tuple[str, str]:
        """The job named in /api/jobs/<id or slug>[/what], and what; 404 when there is none."""
        key, _, what = self.route_path[len("/api/jobs/"):].partition("/")
        job_id = self.app.jobs.find(urllib.parse.unquote(key).lower())
        if job_id is None:
            raise HTTPError(404, "no such job")
        return job_id, what


def _without_secret(job: dict) -> dict:
    """A job without its UUID, which is its ping URL's secret."""
    return {key: value for key, value in job.items() if key != "id"}


def _is_uuid(text: str) -> bool:
    """A UUID in its canonical textual form, as Healthchecks' URLs and ``rid`` take it."""
    try:
        return len(text) == 36 and str(uuid.UUID(text)) == text.lower()
    except ValueError:
        return False



