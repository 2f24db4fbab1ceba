"""Job monitors (#24): what a run's pings mean against its schedule, each incident firing once
and resolving once; the Healthchecks URL shapes and answers over a real socket, with the
command lines Healthchecks documents."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sse_dashboard import storage
from sse_dashboard.alerting.alert import AlertOutlet
from sse_dashboard.alerting.jobs import MAX_OUTPUT_BYTES, Jobs, JobSpec, parse_jobs
from sse_dashboard.storage.memory import History, MemoryStore
from sse_dashboard.events import EventLog
from conftest import require_tool, wait_until

T0 = 1_790_000_000.0  # Monday 2026-09-21, 14:13:20 UTC (16:13 in Berlin, summer time)


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Told:
    """The outlet's two sides: each change's event, as the page and the notifier see them."""

    def __init__(self) -> None:
        self.changes = []

    def post(self, level, message, **fields):
        self.changes.append((fields["type"], message))

    def outlet(self) -> AlertOutlet:
        return AlertOutlet(self.post)

    def kinds(self) -> list:
        return [kind for kind, _ in self.changes]


def make_jobs(store=None, clock=None, **jobs):
    store = store if store is not None else MemoryStore(History(maxlen=10), EventLog())
    clock = clock or Clock()
    told = Told()
    engine = Jobs(told.outlet(), parse_jobs(jobs), persist=store.save_job, state=store.job_states(),
                  runs=store.job_runs, clock=clock, ping_key="k" * 22)
    return engine, told, clock, store


def job_id(engine, slug):
    return engine.find(slug)


def test_a_hung_job_fires_once_and_its_end_resolves_it_once():
    jobs, told, clock, _ = make_jobs(backup={"schedule": "0 2 * * *", "tz": "Europe/Berlin", "grace": 7200})
    backup = job_id(jobs, "backup")
    jobs.ping(backup, "start")
    clock.advance(7199)
    assert jobs.check() == [] and told.changes == []
    clock.advance(2)
    assert len(jobs.check()) == 1
    clock.advance(600)
    jobs.check()
    assert told.kinds() == ["alert.firing"]
    assert told.changes[0][1] == "backup: started 16:13, no end after 2 h grace"  # in the job's zone
    run = jobs.ping(backup, "success")
    assert run["duration"] == 7801 and run["kind"] == "success"
    jobs.check()
    jobs.check()
    assert told.kinds() == ["alert.firing", "alert.resolved"]
    assert told.changes[1][1] == "resolved: backup succeeded in %s" % "7801 s"


def test_a_job_that_finishes_too_fast_fires_and_a_normal_run_resolves():
    jobs, told, clock, _ = make_jobs(dump={"schedule": 86400, "min_runtime": 60})
    dump = job_id(jobs, "dump")
    jobs.ping(dump, "start")
    clock.advance(2)
    run = jobs.ping(dump, "success", body=b"0 tables")
    assert run["flags"] == ["too fast"] and run["output"] == "0 tables"
    jobs.check()
    assert told.changes == [("alert.firing", "dump: finished in 2 s, less than the minimum 1 min")]
    clock.advance(86400)
    jobs.ping(dump, "start")
    clock.advance(90)
    jobs.ping(dump, "success")
    jobs.check()
    assert told.kinds() == ["alert.firing", "alert.resolved"]


def test_a_late_job_fires_after_its_grace_and_its_run_resolves():
    jobs, told, clock, _ = make_jobs(sync={"schedule": 3600, "grace": 600})
    sync = job_id(jobs, "sync")
    jobs.check()
    clock.advance(10 * 86400)
    assert jobs.check() == [], "a new job expects nothing before its first ping"
    jobs.ping(sync, "success")
    clock.advance(3600 + 599)
    jobs.check()
    assert told.changes == [] and jobs.listing()[0]["status"] == "late"  # due, within its grace
    clock.advance(1)  # grace over (Healthchecks: down at the grace's end)
    jobs.check()
    assert told.kinds() == ["alert.firing"] and "no run after 10 min grace" in told.changes[0][1]
    assert jobs.listing()[0]["status"] == "down"
    jobs.ping(sync, "success")
    jobs.check()
    assert told.kinds() == ["alert.firing", "alert.resolved"]
    assert jobs.listing()[0]["status"] == "up"


def test_a_failure_or_a_nonzero_exit_status_fires_at_once():
    jobs, told, clock, _ = make_jobs(job={"schedule": 60})
    job = job_id(jobs, "job")
    jobs.ping(job, "success", exit_status=3)
    jobs.check()
    assert told.changes == [("alert.firing", "job: exit status 3")]
    jobs.ping(job, "success", exit_status=0)
    jobs.check()
    jobs.ping(job, "fail")
    jobs.check()
    assert told.kinds() == ["alert.firing", "alert.resolved", "alert.firing"]
    assert told.changes[-1][1] == "job: failed"


def test_a_failures_alert_carries_the_end_of_its_output():
    jobs, told, clock, store = make_jobs(job={"schedule": 60})
    events = []
    jobs._outlet = AlertOutlet(lambda level, message, **fields: events.append(fields["data"]))
    jobs.ping(job_id(jobs, "job"), "fail", body=b"x" * 5000 + b"\nerror: disk full")
    jobs.check()
    assert events[0]["output"].endswith("error: disk full") and len(events[0]["output"]) == 1000


def test_fail_after_n_waits_for_n_failures_in_a_row():
    jobs, told, clock, _ = make_jobs(flaky={"schedule": 60, "fail_after": 3})
    flaky = job_id(jobs, "flaky")
    for _ in range(2):
        jobs.ping(flaky, "fail")
        jobs.check()
    jobs.ping(flaky, "success")
    for _ in range(2):
        jobs.ping(flaky, "fail")
        jobs.check()
    assert told.changes == []
    jobs.ping(flaky, "fail", exit_status=None)
    jobs.check()
    assert told.changes == [("alert.firing", "flaky: failed (3 failures in a row)")]


def test_too_often_fires_when_a_run_comes_before_its_schedule_allows():
    jobs, told, clock, _ = make_jobs(report={"schedule": "0 * * * *", "grace": 300, "too_often": True})
    report = job_id(jobs, "report")
    clock.now = T0 - T0 % 3600 + 5  # 5 s past an hour
    jobs.ping(report, "success")
    clock.advance(600)              # 10 past: the next is due on the hour
    run = jobs.ping(report, "success")
    jobs.check()
    assert run["flags"] == ["too often"] and told.kinds() == ["alert.firing"]
    assert "before its schedule allows" in told.changes[0][1]
    clock.now = T0 - T0 % 3600 + 3600 + 3  # the next hour: on schedule again
    jobs.ping(report, "success")
    jobs.check()
    assert told.kinds() == ["alert.firing", "alert.resolved"]


def test_runs_overlapping_are_paired_by_their_rid():
    jobs, told, clock, _ = make_jobs(etl={"schedule": 60, "grace": 1000})
    etl = job_id(jobs, "etl")
    a, b = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
    jobs.ping(etl, "start", rid=a)
    clock.advance(10)
    jobs.ping(etl, "start", rid=b)
    clock.advance(5)
    assert jobs.ping(etl, "success", rid=a)["duration"] == 15
    assert jobs.listing()[0]["running"] == 1
    clock.advance(1)
    assert jobs.ping(etl, "success", rid=b)["duration"] == 6
    assert jobs.listing()[0]["running"] == 0


def test_pausing_resolves_and_runs_missed_while_paused_never_fire():
    jobs, told, clock, _ = make_jobs(nightly={"schedule": 86400, "grace": 3600})
    nightly = job_id(jobs, "nightly")
    jobs.ping(nightly, "success")
    clock.advance(86400 + 3601)
    jobs.check()
    jobs.pause(nightly, True)
    jobs.check()
    assert told.kinds() == ["alert.firing", "alert.resolved"] and "paused" in told.changes[1][1]
    clock.advance(30 * 86400)
    jobs.check()
    jobs.pause(nightly, False)  # expected runs count from now
    clock.advance(86400 + 3599)
    jobs.check()
    assert told.kinds() == ["alert.firing", "alert.resolved"]
    clock.advance(2)
    jobs.check()
    assert told.kinds() == ["alert.firing", "alert.resolved", "alert.firing"]


def test_a_maintenance_window_forgives_what_was_due_during_it():
    jobs, told, clock, _ = make_jobs(backup={"schedule": 3600, "grace": 60})
    backup = job_id(jobs, "backup")
    jobs.ping(backup, "success")
    jobs.maintenance(backup, clock.now + 4 * 3600)
    clock.advance(4 * 3600 - 1)
    jobs.check()
    assert jobs.listing()[0]["status"] == "maintenance" and told.changes == []
    clock.advance(1)
    jobs.check()
    clock.advance(3600 + 59)
    jobs.check()
    assert told.changes == []  # the next run is due an interval after the window, not before
    clock.advance(2)
    jobs.check()
    assert told.kinds() == ["alert.firing"]


def test_a_restart_keeps_every_job_its_runs_and_what_fires(tmp_path):
    store = storage.open_store(tmp_path)
    jobs, told, clock, _ = make_jobs(store=store, backup={"schedule": 60})
    backup = job_id(jobs, "backup")
    jobs.ping(backup, "start")
    jobs.ping(backup, "success", exit_status=2, body=b"disk full")
    jobs.check()
    assert told.kinds() == ["alert.firing"]
    store.close()
    store = storage.open_store(tmp_path)
    again, told_again, _, _ = make_jobs(store=store, clock=clock, backup={"schedule": 60})
    assert again.find("backup") == backup and again.listing()[0]["firing"]
    again.check()
    assert told_again.changes == []  # not announced twice
    runs = again.runs(backup, 10)
    assert [(r["kind"], r["exit"], r["output"]) for r in runs] == [("fail", 2, "disk full")]
    again.ping(backup, "success")
    again.check()
    assert told_again.kinds() == ["alert.resolved"]
    store.close()


def test_output_is_kept_up_to_its_limit_and_log_adds_a_line_without_changing_state():
    jobs, told, clock, _ = make_jobs(job={"schedule": 60})
    job = job_id(jobs, "job")
    run = jobs.ping(job, "success", body=b"x" * (MAX_OUTPUT_BYTES + 5000))
    assert len(run["output"]) == MAX_OUTPUT_BYTES
    before = jobs.listing()[0]
    log_run = jobs.ping(job, "log", body="caf\u00e9 \u2713".encode())
    assert log_run["kind"] == "log" and log_run["output"] == "caf\u00e9 \u2713"
    assert jobs.listing()[0] == before
    assert [r["kind"] for r in jobs.runs(job, 10)] == ["log", "success"]


@pytest.mark.parametrize("entry, says", [
    ({"schedule": "61 * * * *"}, "minute"),
    ({"schedule": "0 2 * * *", "tz": "Mars/Olympus"}, "time zone"),
    ({}, "schedule is needed"),
    ({"schedule": 60, "grace": -1}, "grace"),
    ({"schedule": 60, "fail_after": 0}, "fail_after"),
    ({"schedule": 60, "too_often": "yes"}, "too_often"),
    ({"schedule": 60, "colour": "red"}, "the fields are"),
])
def test_a_bad_spec_says_what_is_wrong(entry, says):
    with pytest.raises(ValueError, match=says):
        JobSpec.parse("job", entry)


# --- over HTTP ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server_once():
    """One server for a fuzzing test's many examples (a server a run would be seconds each)."""
    from sse_dashboard.app import build_app
    from conftest import RunningServer
    running = RunningServer(build_app(host="127.0.0.1", port=0, interval_s=0.5, post_rate_per_s=0))
    yield running
    running.stop()


@pytest.fixture
def pinged(make_server, tmp_path):
    server = make_server(data_dir=tmp_path, jobs=parse_jobs({"backup": {"schedule": "0 2 * * *", "grace": 3600}}))
    job = server.server.app.jobs.find("backup")
    return server, job


def test_the_ping_urls_answer_as_healthchecks_does(pinged):
    server, job = pinged
    for path, status, text in [
        ("/ping/%s" % job, 200, "OK"),
        ("/ping/%s/start" % job, 200, "OK"),
        ("/ping/%s/fail" % job, 200, "OK"),
        ("/ping/%s/0" % job, 200, "OK"),
        ("/ping/%s/255" % job, 200, "OK"),
        ("/ping/%s/log" % job, 200, "OK"),
        ("/ping/%s/256" % job, 400, "invalid url format"),
        ("/ping/%s/0255" % job, 200, "OK"),           # an int, as Django's converter reads it
        ("/ping/%s/" % job, 200, "OK"),
        ("/ping/%s/stop" % job, 404, "not found"),   # not a signal: Healthchecks tries it as key/slug
        ("/ping/%s/start/x" % job, 404, "not found"),
        ("/ping/%s" % job.upper(), 404, "not found"),  # its UUIDs are lower-case
        ("/ping/%s?rid=nope" % job, 400, "invalid uuid format"),
        ("/ping/%s" % "00000000-0000-4000-8000-000000000000", 404, "not found"),
        ("/ping/%s/backup" % ("x" * 22), 404, "not found"),
    ]:
        for method in ("GET", "POST", "HEAD"):
            got, headers, body = server.request(method, path)
            assert got == status, (method, path, got, body)
            assert body == (b"" if method == "HEAD" else text.encode()), (method, path)
            assert headers["Content-Type"] == "text/plain; charset=utf-8"
            assert headers["Access-Control-Allow-Origin"] == "*" and headers["Ping-Body-Limit"] == str(MAX_OUTPUT_BYTES)


def test_a_slug_ping_creates_its_job_with_create_1(pinged):
    server, _ = pinged
    key = server.json("GET", "/api/jobs")[1]["ping_key"]
    assert server.request("GET", "/ping/%s/new-job" % key)[0] == 404
    status, _, body = server.request("GET", "/ping/%s/new-job?create=1" % key)
    assert (status, body) == (201, b"Created")
    assert server.request("GET", "/ping/%s/new-job/start?create=1" % key)[:3:2] == (200, b"OK")
    assert server.request("GET", "/ping/%s/New-Job" % key)[:3:2] == (400, b"invalid url format")
    jobs = {j["slug"]: j for j in server.json("GET", "/api/jobs")[1]["jobs"]}
    assert jobs["new-job"]["status"] == "started" and jobs["new-job"]["schedule"] == "every 1 d"


def test_the_api_creates_lists_pauses_and_deletes_jobs_and_pages_runs(pinged):
    server, backup = pinged
    status, job = server.json("POST", "/api/jobs", {"slug": "sync", "schedule": "*/15 * * * *", "grace": 120,
                                                    "min_runtime": 5})
    assert status == 201 and job["slug"] == "sync" and job["status"] == "new"
    assert server.json("POST", "/api/jobs", {"slug": "sync", "schedule": 900})[0] == 200  # the same job, changed
    status, body = server.json("POST", "/api/jobs", {"slug": "Bad Slug", "schedule": 60})
    assert status == 400 and "slug" in body["error"]
    for i in range(7):
        assert server.request("POST", "/ping/%s" % backup, b"run %d" % i)[0] == 200
    runs = server.json("GET", "/api/jobs/backup/runs?limit=5")[1]
    assert [r["output"] for r in runs["runs"]] == ["run 6", "run 5", "run 4", "run 3", "run 2"]
    older = server.json("GET", "/api/jobs/backup/runs?limit=5&before=%d" % runs["next"])[1]
    assert [r["output"] for r in older["runs"]] == ["run 1", "run 0"] and older["next"] is None
    assert server.json("POST", "/api/jobs/backup/pause")[1]["status"] == "paused"
    assert server.json("POST", "/api/jobs/%s/resume" % backup)[1]["status"] == "up"
    assert server.json("POST", "/api/jobs/backup/maintenance", {"seconds": 3600})[1]["status"] == "maintenance"
    assert server.json("DELETE", "/api/jobs/sync")[0] == 200
    assert server.json("GET", "/api/jobs/sync")[0] == 404
    assert server.request("GET", "/ping/%s" % job["id"])[:3:2] == (404, b"not found")


def test_jobs_show_in_the_snapshot_and_in_prometheus_text(pinged):
    server, backup = pinged
    server.request("GET", "/ping/%s/start" % backup)
    wait_until(lambda: any(j["slug"] == "backup" and j["running"] for j in server.json("GET", "/api/metrics")[1].get("jobs", [])),
               message="the job in the snapshot")
    text = server.request("GET", "/metrics")[2].decode()
    assert 'sse_dashboard_job_up{job="backup"} 1' in text and 'sse_dashboard_job_started{job="backup"} 1' in text


def test_a_ping_url_is_never_logged(pinged, caplog):
    server, backup = pinged
    with caplog.at_level(logging.DEBUG):
        server.request("GET", "/ping/%s/start" % backup)
        server.request("GET", "/ping/%s/backup" % server.server.app.jobs.ping_key)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert backup not in logged and server.server.app.jobs.ping_key not in logged


def test_the_command_lines_healthchecks_documents_work_against_the_dashboard(pinged):
    """From Healthchecks' docs (bash, runitor-style wrapper, exit status, log, rid), with only
    the base URL changed."""
    require_tool(shutil.which("curl") is not None, "curl")
    server, backup = pinged
    base = server.url + "/ping/"
    rid = "123e4567-e89b-12d3-a456-426614174000"

    def sh(script: str) -> subprocess.CompletedProcess:
        return subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30,
                              env={"PATH": "/usr/bin:/bin", "URL": base + backup})

    assert sh('curl -fsS -m 10 --retry 5 -o /dev/null "$URL/start"').returncode == 0
    assert sh('m=$(echo "backup of 42 files" 2>&1); curl -fsS -m 10 --retry 5 --data-raw "$m" "$URL/$?"').stdout == "OK"
    assert sh('curl -fsS -m 10 --retry 5 "$URL/start?rid=%s" && sleep 0.01 && curl -fsS -m 10 --retry 5 "$URL?rid=%s"'
              % (rid, rid)).stdout == "OKOK"
    assert sh('false; curl -fsS -m 10 --retry 5 -o /dev/null "$URL/$?"').returncode == 0
    assert sh('curl -fsS -m 10 --retry 5 --data-raw "a line" "$URL/log"').stdout == "OK"
    runs = server.json("GET", "/api/jobs/backup/runs")[1]["runs"]
    assert [(r["kind"], r.get("exit")) for r in runs][:3] == [("log", None), ("fail", 1), ("success", None)]
    assert runs[3]["output"] == "backup of 42 files" and runs[3]["exit"] == 0
    assert runs[2]["rid"] == rid and runs[2]["duration"] is not None
    assert json.loads(json.dumps(runs))  # (plain JSON all the way)


def test_mcp_lists_a_job_with_its_runs(pinged):
    server, backup = pinged
    server.request("POST", "/ping/%s/3" % backup, b"disk full")
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "list_jobs",
                                                                          "arguments": {"job": "backup"}}}
    status, _, body = server.request("POST", "/mcp", call, {"Accept": "application/json, text/event-stream",
                                                              "MCP-Protocol-Version": "2025-11-25"})
    result = json.loads(body)["result"]["structuredContent"]
    assert status == 200 and result["jobs"][0]["slug"] == "backup"
    assert [(r["kind"], r["exit"], r["output"]) for r in result["runs"]] == [("fail", 3, "disk full")]


bodies = st.recursive(st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats() | st.text(max_size=30),
                      lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                                   max_size=4), max_leaves=12)
specs = st.fixed_dictionaries({}, optional={
    "slug": st.one_of(st.from_regex(r"\A[a-z0-9_-]{1,12}\Z"), st.text(max_size=12)),
    "schedule": st.one_of(st.integers(-5, 10 ** 8), st.floats(), st.sampled_from([
        "0 2 * * *", "*/15 * * * *", "0 0 30 2 *", "61 * * * *", "0 2 * * MON-FRI", "5-1 * * * *", "@daily",
        "0 2 * *", "", "3600", "1e400"]), st.text(max_size=20)),
    "tz": st.sampled_from(["UTC", "Europe/Berlin", "Mars/Olympus", "", "../../etc/passwd", "Etc/GMT+2"]),
    "grace": bodies, "start_grace": bodies, "min_runtime": bodies, "too_often": bodies, "fail_after": bodies,
    "level": st.sampled_from(["warning", "error", "info"]), "notify": bodies, "name": bodies, "colour": bodies})


@settings(max_examples=int(os.environ.get("SSE_FUZZ_EXAMPLES") or 60), deadline=None,
          suppress_health_check=list(HealthCheck))
@given(spec=specs)
def test_fuzzed_job_specs_are_made_or_refused_whole_never_a_5xx(server_once, spec):
    before = {j["slug"]: j for j in server_once.json("GET", "/api/jobs")[1]["jobs"]}
    status, _, raw = server_once.request("POST", "/api/jobs", spec)
    body = json.loads(raw)
    after = {j["slug"]: j for j in server_once.json("GET", "/api/jobs")[1]["jobs"]}
    assert status in (200, 201, 400), (status, body)
    if status == 400:
        assert set(body) == {"error"} and body["error"] and after == before  # nothing half-stored
    else:
        assert after[body["slug"]] == body and body["slug"] == spec["slug"]
        server_once.json("DELETE", "/api/jobs/%s" % body["slug"])
