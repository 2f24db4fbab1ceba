"""Job pings (#24) from Python clients someone else wrote for Healthchecks, from PyPI, pointed
at the dashboard as at a self-hosted Healthchecks: only the base URL changes. What each client
sends is what the dashboard records, as ``GET /api/jobs/<slug>/runs`` and the job's state show.

- ``healthchecks-decorator`` (``@healthcheck(url=..., send_start=..., send_diagnostics=...)``):
  GET ``<url>/start``, then GET ``<url>`` (POST with the function's result form-encoded as the
  body when ``send_diagnostics``), or GET ``<url>/fail`` when the function raises. The query
  of ``url`` is kept on every call, so ``?create=1`` and ``?rid=`` ride along.
- ``healthchecks-wrapper`` (``with HealthCheck(url):``, and ``async with``): GET
  ``<url>/start``, then GET ``<url>``, or POST ``<url>/fail`` with the traceback as the body.
  It prints ``Ping failed: ...`` on any answer that is not 2xx, so a quiet stdout means it took
  every answer. (The decorator keeps quiet either way: what the dashboard recorded is the
  evidence there; both send with ``urllib``, which takes any 2xx, ``201 Created`` too.)

Neither client has exit statuses or ``/log``; those URLs are held to Healthchecks' own curl
lines in ``test_jobs.py``. (``healthchecks-io``, which has them, cannot be installed beside the
``croniter>=7`` the schedule tests need: it pins ``croniter<4``.)
"""

from __future__ import annotations

import asyncio
import time

import pytest

from conftest import required, wait_until
from sse_dashboard.alerting.jobs import parse_jobs

RID_A = "6a1f3c2e-0b7d-4e59-9c1a-2f8e4d6b7a10"
RID_B = "0c9e7b4a-5d3f-4a21-8e6b-1d2c3b4a5f60"
WORK_S = 0.15  # how long a "job" takes: its measured duration must cover it
CLOCK_SLACK_S = 0.02  # durations are time.time() differences, which tick in 15.6 ms on Windows before 3.13


@pytest.fixture(autouse=True)
def no_client_environment(monkeypatch):
    """healthchecks-decorator reads HEALTHCHECK_URL, _SEND_START, _SEND_DIAGNOSTICS for what a
    call leaves None: the machine's own must not change what these tests send."""
    for name in ("URL", "SEND_START", "SEND_DIAGNOSTICS"):
        monkeypatch.delenv("HEALTHCHECK_" + name, raising=False)


@pytest.fixture
def dashboard(make_server, tmp_path):
    return make_server(data_dir=tmp_path, jobs=parse_jobs({"backup": {"schedule": 3600, "grace": 600}}))


def ping_base(running) -> str:
    """What replaces ``https://hc-ping.com``."""
    return running.url + "/ping"


def job_url(running, slug: str = "backup") -> str:
    return "%s/%s" % (ping_base(running), running.server.app.jobs.find(slug))


def slug_url(running, slug: str) -> str:
    return "%s/%s/%s" % (ping_base(running), running.json("GET", "/api/jobs")[1]["ping_key"], slug)


def runs(running, slug: str = "backup") -> list:
    status, body = running.json("GET", "/api/jobs/%s/runs" % slug)
    assert status == 200, body
    return body["runs"]


def job(running, slug: str = "backup") -> dict:
    status, body = running.json("GET", "/api/jobs/%s" % slug)
    assert status == 200, body
    return body


def firing(running, slug: str = "backup") -> dict:
    """The job once the sampler's check has fired its alert."""
    return wait_until(lambda: (lambda state: state["firing"] and state)(job(running, slug)),
                      message="%s firing" % slug)


# --- healthchecks-decorator ----------------------------------------------------------------------

def test_decorator_success_by_uuid_records_a_run_and_the_job_is_up(dashboard):
    healthcheck = required("healthchecks_decorator").healthcheck

    @healthcheck(url=job_url(dashboard), send_start=False)
    def nightly():
        return "done"

    assert job(dashboard)["status"] == "new"
    assert nightly() == "done"
    (run,) = runs(dashboard)
    assert (run["kind"], run["exit"], run["start"], run["duration"], run["output"]) == ("success", None, None, None, "")
    state = job(dashboard)
    assert (state["status"], state["last_outcome"], state["running"], state["firing"]) == ("up", "success", 0, False)


def test_decorator_start_then_success_measures_the_duration(dashboard):
    healthcheck = required("healthchecks_decorator").healthcheck
    seen = {}

    @healthcheck(url=job_url(dashboard), send_start=True)
    def backup():
        seen["during"] = job(dashboard)  # the start arrived before the work
        time.sleep(WORK_S)               # the job's work, not a wait for the server

    began = time.monotonic()
    backup()
    elapsed = time.monotonic() - began
    assert seen["during"]["status"] == "started" and seen["during"]["running"] == 1
    (run,) = runs(dashboard)  # the start's record, closed by the success
    assert run["kind"] == "success" and run["start"] is not None
    assert WORK_S - CLOCK_SLACK_S <= run["duration"] <= elapsed + CLOCK_SLACK_S, (run["duration"], elapsed)
    state = job(dashboard)
    assert (state["status"], state["running"], state["last_duration"]) == ("up", 0, run["duration"])


def test_decorator_failure_fails_the_run_and_fires(dashboard):
    healthcheck = required("healthchecks_decorator").healthcheck

    @healthcheck(url=job_url(dashboard), send_start=True)
    def backup():
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):  # the decorator pings /fail and re-raises
        backup()
    (run,) = runs(dashboard)
    assert run["kind"] == "fail" and run["duration"] is not None and run["output"] == ""
    state = firing(dashboard)
    assert (state["status"], state["last_outcome"], state["failures"]) == ("down", "fail", 1)
    assert state["message"] == "backup: failed"


def test_decorator_diagnostics_are_kept_as_the_runs_output(dashboard):
    healthcheck = required("healthchecks_decorator").healthcheck

    @healthcheck(url=job_url(dashboard), send_diagnostics=True)
    def backup():
        return {"files": 42, "note": "caf\u00e9 \u2713"}

    backup()
    (run,) = runs(dashboard)
    # Sent as it sends it (urlencode, POST): Healthchecks keeps a body as it comes, and so do we.
    assert run["kind"] == "success" and run["output"] == "files=42&note=caf%C3%A9+%E2%9C%93"


def test_decorator_by_slug_with_create_makes_the_job_on_its_first_ping(dashboard):
    healthcheck = required("healthchecks_decorator").healthcheck
    url = slug_url(dashboard, "nightly-report") + "?create=1"

    @healthcheck(url=url, send_start=True)
    def report():
        time.sleep(0.01)

    assert dashboard.json("GET", "/api/jobs/nightly-report")[0] == 404
    report()  # /start?create=1 makes it (201 Created), the success finds it (200 OK)
    made = job(dashboard, "nightly-report")
    assert (made["status"], made["schedule"], made["last_outcome"]) == ("up", "every 1 d", "success")
    (run,) = runs(dashboard, "nightly-report")
    assert run["kind"] == "success" and run["duration"] is not None
    report()
    assert [r["kind"] for r in runs(dashboard, "nightly-report")] == ["success", "success"]
    assert runs(dashboard, "backup") == []


def test_decorator_by_slug_without_create_pings_an_existing_job(dashboard):
    healthcheck = required("healthchecks_decorator").healthcheck
    healthcheck(url=slug_url(dashboard, "backup"), send_start=True)(lambda: None)()
    (run,) = runs(dashboard)
    assert run["kind"] == "success" and run["duration"] is not None
    healthcheck(url=slug_url(dashboard, "never-made"))(lambda: None)()  # 404: nothing is made
    assert dashboard.json("GET", "/api/jobs/never-made")[0] == 404


def test_decorator_overlapping_runs_are_paired_by_their_rid(dashboard):
    healthcheck = required("healthchecks_decorator").healthcheck
    base = job_url(dashboard)

    @healthcheck(url=base + "?rid=" + RID_B, send_start=True)
    def inner():
        time.sleep(0.02)

    @healthcheck(url=base + "?rid=" + RID_A, send_start=True)
    def outer():
        time.sleep(WORK_S)
        inner()  # starts after outer's start, ends before outer's end

    outer()
    newest, oldest = runs(dashboard)
    assert (oldest["rid"], newest["rid"]) == (RID_A, RID_B)
    assert oldest["kind"] == newest["kind"] == "success"
    assert oldest["duration"] >= WORK_S - CLOCK_SLACK_S and newest["duration"] is not None
    assert oldest["duration"] > newest["duration"]
    assert job(dashboard)["running"] == 0


# --- healthchecks-wrapper ------------------------------------------------------------------------

def test_wrapper_context_manager_pings_start_and_success(dashboard, capsys):
    HealthCheck = required("healthchecks_wrapper").HealthCheck
    with HealthCheck(job_url(dashboard)):
        assert job(dashboard)["status"] == "started"
        time.sleep(WORK_S)
    (run,) = runs(dashboard)
    assert run["kind"] == "success" and run["duration"] >= WORK_S - CLOCK_SLACK_S
    assert job(dashboard)["status"] == "up"
    assert capsys.readouterr().out == ""  # it took every answer


def test_wrapper_failure_posts_the_traceback_as_the_runs_output(dashboard, capsys):
    HealthCheck = required("healthchecks_wrapper").HealthCheck
    with HealthCheck(job_url(dashboard), suppress_exceptions=True):
        raise ValueError("tape \u00e9jected")
    (run,) = runs(dashboard)
    assert run["kind"] == "fail" and run["duration"] is not None
    assert run["output"].startswith("Traceback (most recent call last):")
    assert run["output"].rstrip().endswith("ValueError: tape \u00e9jected")
    state = firing(dashboard)
    assert state["status"] == "down" and state["message"] == "backup: failed"
    assert capsys.readouterr().out == ""


def test_wrapper_async_context_manager_by_slug(dashboard, capsys):
    HealthCheck = required("healthchecks_wrapper").HealthCheck

    async def main():
        async with HealthCheck(slug_url(dashboard, "backup")):
            await asyncio.sleep(WORK_S)

    asyncio.run(main())
    (run,) = runs(dashboard)
    assert run["kind"] == "success" and run["duration"] >= WORK_S - CLOCK_SLACK_S
    assert capsys.readouterr().out == ""


def test_wrapper_says_so_when_an_answer_is_not_2xx(dashboard, capsys):
    """The negative control for the quiet stdout above: an unknown check's 404 is noticed."""
    HealthCheck = required("healthchecks_wrapper").HealthCheck
    with HealthCheck(ping_base(dashboard) + "/00000000-0000-4000-8000-000000000000"):
        pass
    assert capsys.readouterr().out.splitlines() == ["Ping failed: HTTP Error 404: Not Found"] * 2
    assert runs(dashboard) == []
