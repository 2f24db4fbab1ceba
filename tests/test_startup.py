"""Starting a second dashboard, the demo, and alert rules that cannot fire (issue 12, items 5-7):
a start either works whole or ends with one clear line; nothing is half-alive."""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import subprocess
import sys
import urllib.request

import pytest

from sse_dashboard import storage
from sse_dashboard.alerting.rules import AlertRule, parse_rules
from conftest import ROOT, wait_until


def run(*args, cwd=None, env=None, timeout=15):
    """Run the dashboard to completion (it is expected to stop by itself): (exit code, output)."""
    full_env = dict(os.environ, **(env or {}))
    done = subprocess.run([sys.executable, str(ROOT / "sse_server.py"), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=full_env)
    return done.returncode, done.stdout + done.stderr


def browser_recorder(tmp_path):
    """A BROWSER command (the webbrowser module honours it) that writes the URL it is given to a file."""
    record = tmp_path / "opened.txt"
    script = tmp_path / "browser.py"
    script.write_text("import sys, pathlib\npathlib.Path(%r).write_text(sys.argv[1])\n" % str(record))
    return {"BROWSER": "%s %s %%s" % (sys.executable, script)}, record


def test_a_second_dashboard_on_the_same_folder_stops_with_one_clear_line(spawn, tmp_path):
    first = spawn("--port", "0", "--data-dir", str(tmp_path))
    port = first.wait_for_url()
    code, output = run("--port", "0", "--data-dir", str(tmp_path))
    assert code == 2 and "Traceback" not in output
    line = [line for line in output.splitlines() if "ERROR" in line]
    assert len(line) == 1, output
    assert "in use by another dashboard (http://127.0.0.1:%d/)" % port in line[0]
    assert "--data-dir DIR" in line[0] and "--data-dir :memory:" in line[0]


def test_started_with_open_it_shows_the_dashboard_that_already_runs(spawn, tmp_path):
    first = spawn("--port", "0", "--data-dir", str(tmp_path / "data"))
    port = first.wait_for_url()
    env, record = browser_recorder(tmp_path)
    code, output = run("--port", "0", "--data-dir", str(tmp_path / "data"), "--open", env=env)
    assert code == 0 and "already runs at http://127.0.0.1:%d/" % port in output
    wait_until(lambda: record.exists() and record.read_text() == "http://127.0.0.1:%d/" % port, message="opened")


def test_the_same_port_taken_by_a_dashboard_is_named_and_opened(spawn, tmp_path):
    first = spawn("--port", "0", "--data-dir", ":memory:")
    port = first.wait_for_url()
    code, output = run("--port", str(port), "--data-dir", ":memory:")
    assert code == 2 and "a dashboard already runs at http://127.0.0.1:%d/" % port in output
    env, record = browser_recorder(tmp_path)
    code, output = run("--port", str(port), "--data-dir", ":memory:", "--open", env=env)
    assert code == 0
    wait_until(lambda: record.exists() and record.read_text() == "http://127.0.0.1:%d/" % port, message="opened")


def test_a_port_taken_by_something_else_is_a_plain_port_error():
    with socket.create_server(("127.0.0.1", 0)) as other:
        port = other.getsockname()[1]
        code, output = run("--port", str(port), "--data-dir", ":memory:")
    assert code == 2 and "already in use" in output and "dashboard already runs" not in output


def test_after_a_clean_stop_the_folder_is_free_and_says_no_url(spawn, tmp_path):
    first = spawn("--port", "0", "--data-dir", str(tmp_path))
    first.wait_for_url()
    assert (tmp_path / storage.URL_FILENAME).read_text().startswith("http://127.0.0.1:")
    first.proc.terminate()
    assert first.proc.wait(10) == 0
    assert not (tmp_path / storage.URL_FILENAME).exists()
    second = spawn("--port", "0", "--data-dir", str(tmp_path))
    second.wait_for_url()


def test_demo_data_stays_in_memory_and_the_snapshot_says_demo(tmp_path):
    proc = subprocess.Popen([sys.executable, str(ROOT / "sse_server.py"), "--port", "0", "--demo"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=str(tmp_path))
    try:
        port = None
        for line in proc.stdout:
            if "dashboard at http://127.0.0.1:" in line:
                port = int(line.split("127.0.0.1:")[1].split("/")[0])
                break
        with urllib.request.urlopen("http://127.0.0.1:%d/api/health" % port, timeout=5) as resp:
            assert json.load(resp)["storage"] == "memory"
        with urllib.request.urlopen("http://127.0.0.1:%d/api/metrics" % port, timeout=5) as resp:
            assert json.load(resp)["demo"] is True
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()


def test_an_alert_still_reaches_the_page_when_storage_fails(make_server, tmp_path, caplog):
    rule = AlertRule(name="deep", metric="gauges.depth", op=">", threshold=10)
    running = make_server(data_dir=tmp_path, alert_rules=[rule])
    for suffix in ("", "-wal", "-shm"):
        path = tmp_path / (storage.DB_FILENAME + suffix)
        if path.exists():
            path.unlink()
    # In-process and not acknowledged to anyone (as a StatsD line is): the POST would (rightly) be refused now.
    running.server.registry.update(gauges={"depth": 50}, durable=False)
    wait_until(lambda: running.json("GET", "/api/metrics")[1].get("alerts"), message="the alert in the snapshot")
    events = running.json("GET", "/api/events")[1]["events"]
    assert [e["source"] for e in events] == ["alerts"] and events[0]["level"] == "warning"
    assert not [r for r in caplog.records if r.exc_info]


def test_a_misspelt_system_metric_stops_the_start(tmp_path):
    with pytest.raises(ValueError, match="system.cpu_percnt is not a series.*system.cpu_percent"):
        parse_rules({"rules": [{"name": "x", "metric": "system.cpu_percnt", "op": ">", "threshold": 1}]})
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"rules": [{"name": "x", "metric": "system.disk_percnt", "op": ">", "threshold": 1}]}))
    code, output = run("--port", "0", "--data-dir", ":memory:", "--config", str(rules))
    assert code == 2 and "system.disk_percnt is not a series" in output and "Traceback" not in output


def test_a_rule_whose_metric_never_had_a_value_says_so(make_server):
    rules = [AlertRule(name="q", metric="gauges.queue", op=">", threshold=5),
             AlertRule(name="cpu", metric="system.cpu_count", op=">", threshold=10 ** 6)]
    running = make_server(alert_rules=rules)
    wait_until(lambda: running.server.sampler.seq >= 2, message="two samples")
    states = {r["name"]: r["seen"] for r in running.json("GET", "/api/alerts")[1]["rules"]}
    assert states == {"q": False, "cpu": True}
    assert running.json("GET", "/api/metrics")[1]["alerts_waiting"] == [{"rule": "q", "metric": "gauges.queue"}]
    running.json("POST", "/api/metrics", {"gauges": {"queue": 1}})
    wait_until(lambda: all(r["seen"] for r in running.json("GET", "/api/alerts")[1]["rules"]), message="seen")
    wait_until(lambda: "alerts_waiting" not in running.json("GET", "/api/metrics")[1], message="none waiting")


def test_a_new_data_folder_says_once_that_it_was_created_and_an_old_one_says_what_it_migrated(tmp_path, caplog):
    """Issue 21: a new data folder logged "migrated to version 1", "2", "3"."""
    caplog.set_level(logging.INFO, logger="sse_dashboard.storage")

    def schema_lines():
        lines = [r.getMessage() for r in caplog.records if r.name == "sse_dashboard.storage.database" and "version" in r.getMessage()]
        caplog.clear()
        return lines

    latest = len(storage.MIGRATIONS)
    storage.open_store(tmp_path / "new").close()
    assert schema_lines() == ["storage created at schema version %d" % latest]
    storage.open_store(tmp_path / "new").close()
    assert schema_lines() == []  # nothing to say when it is up to date
    (tmp_path / "old").mkdir()  # a folder the first version wrote
    with sqlite3.connect(str(tmp_path / "old" / storage.DB_FILENAME)) as conn:
        conn.executescript(storage.MIGRATIONS[0])
        conn.executescript("CREATE TABLE schema_version (version INTEGER NOT NULL); "
                           "INSERT INTO schema_version VALUES (1);")
    conn.close()
    storage.open_store(tmp_path / "old").close()
    assert schema_lines() == ["storage schema migrated from version 1 to %d" % latest]
