"""The README says what the code does: its options block is the command line's parser, and its
Limits table states the code's constants (issue 21: the README said heartbeats take 1,000 names
and 1,000-character messages while the code took 200 and 200, and had no `--gauge-ttl`).

Each failure names what is missing where, so an option or a limit added later (by anyone)
fails here until the README says it."""

from __future__ import annotations

import argparse
import re

import pytest

from sse_dashboard import events
from sse_dashboard.alerting import heartbeats, jobs, uptime
from sse_dashboard.alerting import status as status_pages
from sse_dashboard.storage import jobs as job_storage
from sse_dashboard.web.handlers import jobs as job_handlers
from sse_dashboard import registry as metrics  # the registry's limits (once in metrics.py)
from sse_dashboard.ingest import push as pushgateway
from sse_dashboard.ingest import otlp, otlp_logs, otlp_metrics
from sse_dashboard import application, cli, config
from sse_dashboard.web import request, shares as web_shares, tokens as web_tokens
from sse_dashboard.ingest import statsd as statsd_listener
from sse_dashboard import storage
from sse_dashboard.fleet import engine as fleet_engine, view as fleet_view
from sse_dashboard.export import queue as export_queue
from conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def section(heading: str) -> str:
    """The README's text under ``heading`` (a whole line such as ``## Options``), up to the next heading."""
    start = README.index("\n" + heading + "\n") + len(heading) + 2
    following = re.search(r"^#{1,%d} " % heading.count("#"), README[start:], re.M)
    return README[start:start + following.start()] if following else README[start:]


def table(text: str) -> list[list[str]]:
    """The body rows of the first Markdown table in ``text``, as lists of cells (``\\|`` kept)."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    return [[cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines[2:]]


# --- options ---------------------------------------------------------------------------------

def parser_actions() -> list[argparse.Action]:
    # argparse has no public list of its arguments; _actions is what its own help is made from.
    return [a for a in cli.make_parser()._actions if not isinstance(a, argparse._HelpAction)]


def names(action: argparse.Action) -> list[str]:
    return list(action.option_strings) or [action.metavar or action.dest]


def known_to_parser() -> set[str]:
    return {name for action in parser_actions() for name in names(action)}


def usage_block() -> str:
    return re.search(r"```text\n(.*?)```", section("## Options"), re.S).group(1)


def test_the_usage_block_shows_every_option_and_only_real_ones():
    shown = set(re.findall(r"\[(-{1,2}[A-Za-z][\w-]*|[A-Z]+)[\] ]", usage_block()))
    missing = [" or ".join(names(a)) for a in parser_actions() if not shown & set(names(a))]
    unknown = sorted(shown - known_to_parser())
    assert not (missing or unknown), "README.md, ## Options, the usage block: %s" % "; ".join(
        (["lacks %s (cli.make_parser() has it)" % ", ".join(missing)] if missing else []) +
        (["shows %s, which the parser does not know" % ", ".join(unknown)] if unknown else []))


def option_rows() -> dict[str, list[str]]:
    """First-column names (``--port``, ``PORT``, ``-v``) -> that row's cells."""
    rows = {}
    for cells in table(section("## Options")):
        for span in re.findall(r"`([^`]+)`", cells[0]):
            rows[span.split()[0]] = cells
    return rows


def test_the_options_table_has_a_row_for_every_option_and_only_real_ones():
    rows = option_rows()
    missing = [" or ".join(names(a)) for a in parser_actions() if not set(rows) & set(names(a))]
    unknown = sorted(set(rows) - known_to_parser())
    assert not (missing or unknown), "README.md, ## Options, the table: %s" % "; ".join(
        (["has no row for %s (add | `--option` | default | meaning |)" % ", ".join(missing)] if missing else []) +
        (["has a row for %s, which the parser does not know" % ", ".join(unknown)] if unknown else []))


def stated_default(cell: str):
    """What a default cell says, when it says one plainly: a single `literal`, "off" or "none"
    (anything else, such as `data/` beside `sse_server.py`, is prose and is not compared)."""
    literal = re.fullmatch(r"`([^`]+)`", cell)
    if literal:
        return literal.group(1)
    word = cell.split(" ")[0]
    return word if word in ("off", "none") else None


def matches(stated: str, actual) -> bool:
    if stated == "off":
        return actual in (False, None)
    if stated == "none":
        return actual in (None, [], ())
    try:
        return float(stated) == float(actual)
    except (TypeError, ValueError):
        return stated == str(actual)


def test_every_default_the_options_table_states_is_the_parsers(monkeypatch):
    monkeypatch.delenv("SSE_DASHBOARD_TOKEN", raising=False)
    effective = vars(cli.parse_args([]))  # after parse_args' own filling-in (--port from PORT)
    rows = option_rows()
    wrong = []
    for action in parser_actions():
        if not action.option_strings or action.dest not in effective:
            continue  # the positional PORT shares --port's row; --version has no value
        cells = next((rows[n] for n in names(action) if n in rows), None)
        stated = stated_default(cells[1]) if cells else None
        if stated is not None and not matches(stated, effective[action.dest]):
            wrong.append("%s says %r, the parser %r" % (action.option_strings[-1], stated, effective[action.dest]))
    assert not wrong, "README.md, ## Options, default column: " + "; ".join(wrong)


# --- limits ----------------------------------------------------------------------------------

MIB = 1024 * 1024
# Each row of the README's Limits table -> the numbers its "default" cell states, in order, as
# (what in the code, value in the unit the README writes). A tuple of values: one number the
# README states for several constants, which must then all be equal.
LIMITS = {
    "metric names": [("metrics.MAX_METRICS", metrics.MAX_METRICS), ("metrics.MAX_NAME_CHARS", metrics.MAX_NAME_CHARS)],
    "numbers": [("the smallest counter delta", 0), ("metrics.MAX_COUNTER_DELTA", metrics.MAX_COUNTER_DELTA)],
    "idle gauges": [("metrics.DEFAULT_GAUGE_TTL_S", metrics.DEFAULT_GAUGE_TTL_S)],
    "events in memory": [("events.DEFAULT_MAXLEN", events.DEFAULT_MAXLEN),
                         ("events.DEFAULT_MAX_CHARS in MiB", events.DEFAULT_MAX_CHARS / MIB)],
    "events on disk": [("storage.DEFAULT_MAX_STORED_EVENTS", storage.DEFAULT_MAX_STORED_EVENTS),
                       ("storage.DEFAULT_MAX_STORED_EVENT_BYTES in MiB",
                        storage.DEFAULT_MAX_STORED_EVENT_BYTES / MIB)],
    "history on disk": [],
    "labels": [("metrics.MAX_LABELS", metrics.MAX_LABELS), ("metrics.MAX_LABELED_NAME_CHARS",
                                                            metrics.MAX_LABELED_NAME_CHARS)],
    "request bodies": [("request.MAX_BODY_BYTES in KiB", request.MAX_BODY_BYTES / 1024),
                       ("request.MAX_JSON_DEPTH", request.MAX_JSON_DEPTH),
                       ("pushgateway.MAX_PUSH_BYTES in MiB", pushgateway.MAX_PUSH_BYTES / MIB)],
    "StatsD": [("statsd_listener.MAX_VALUES_PER_TIMER and MAX_SET_MEMBERS",
                (statsd_listener.MAX_VALUES_PER_TIMER, statsd_listener.MAX_SET_MEMBERS)),
               ("statsd_listener.MAX_PENDING_NAMES", statsd_listener.MAX_PENDING_NAMES),
               ("statsd_listener.MAX_TCP_CONNECTIONS", statsd_listener.MAX_TCP_CONNECTIONS),
               ("statsd_listener.MAX_LINE_BYTES in KiB", statsd_listener.MAX_LINE_BYTES / 1024)],
    "heartbeats": [("heartbeats.MAX_HEARTBEATS", heartbeats.MAX_HEARTBEATS),
                   ("heartbeats.MAX_MESSAGE_CHARS", heartbeats.MAX_MESSAGE_CHARS),
                   ("the shortest ping", 0), ("heartbeats.MAX_PING_MS in days", heartbeats.MAX_PING_MS / 86400000)],
    "jobs": [("jobs.MAX_JOBS", jobs.MAX_JOBS), ("jobs.MAX_OPEN_RUNS", jobs.MAX_OPEN_RUNS),
             ("jobs.MAX_OUTPUT_BYTES", jobs.MAX_OUTPUT_BYTES),
             ("web.handlers.jobs.MAX_PING_BODY_BYTES", job_handlers.MAX_PING_BODY_BYTES),
             ("storage.jobs.MAX_RUNS", job_storage.MAX_RUNS)],
    "push groups": [("pushgateway.MAX_GROUPS", pushgateway.MAX_GROUPS)],
    "OpenTelemetry": [("otlp.MAX_OTLP_BYTES in MiB", otlp.MAX_OTLP_BYTES / MIB),
                      ("otlp_metrics.MAX_OTLP_POINTS", otlp_metrics.MAX_OTLP_POINTS),
                      ("otlp_logs.MAX_OTLP_LOG_RECORDS", otlp_logs.MAX_OTLP_LOG_RECORDS),
                      ("otlp_metrics.MAX_OTLP_STREAMS", otlp_metrics.MAX_OTLP_STREAMS),
                      ("otlp_metrics.MAX_BUCKETS", otlp_metrics.MAX_BUCKETS),
                      ("otlp_logs.MAX_OTLP_LOG_DATA_CHARS in KiB", otlp_logs.MAX_OTLP_LOG_DATA_CHARS / 1024)],
    "history answers": [("application.DEFAULT_HISTORY_POINTS", application.DEFAULT_HISTORY_POINTS),
                        ("application.MAX_HISTORY_POINTS", application.MAX_HISTORY_POINTS),
                        ("application.MAX_HISTORY_NAMES", application.MAX_HISTORY_NAMES),
                        ("application.MAX_HISTORY_READS", application.MAX_HISTORY_READS)],
    "stream filters": [("events.MAX_FILTER_TERMS", events.MAX_FILTER_TERMS)],
    "streams": [("config.DEFAULT_MAX_CLIENTS", config.DEFAULT_MAX_CLIENTS)],
    "POSTs": [("config.DEFAULT_POST_RATE_PER_S", config.DEFAULT_POST_RATE_PER_S)],
    "fleet page": [("fleet.view.DEFAULT_MAX_INSTANCES", fleet_view.DEFAULT_MAX_INSTANCES),
                   ("fleet.engine.MAX_ANSWER_BYTES in MiB", fleet_engine.MAX_ANSWER_BYTES / MIB),
                   ("fleet.engine.DEFAULT_TIMEOUT_S", fleet_engine.DEFAULT_TIMEOUT_S)],
    "remote write config": [("config.MAX_REMOTE_WRITE_URLS", config.MAX_REMOTE_WRITE_URLS),
                            ("config.MAX_EXTERNAL_LABELS", config.MAX_EXTERNAL_LABELS),
                            ("config.MAX_LABEL_VALUE_CHARS", config.MAX_LABEL_VALUE_CHARS),
                            ("config.MAX_SECRET_FILE_BYTES in KiB", config.MAX_SECRET_FILE_BYTES / 1024)],
    "remote write queue": [("export.queue.DEFAULT_QUEUE_MAX_BYTES in MiB", export_queue.DEFAULT_QUEUE_MAX_BYTES / MIB),
                           ("export.queue.DEFAULT_QUEUE_MAX_AGE_S", export_queue.DEFAULT_QUEUE_MAX_AGE_S),
                           ("export.queue.DEFAULT_MAX_TICKS", export_queue.DEFAULT_MAX_TICKS)],
    "tokens": [("web.tokens.MAX_TOKENS", web_tokens.MAX_TOKENS), ("names of", 64)],
    "status pages": [("alerting.status.MAX_PAGES", status_pages.MAX_PAGES),
                     ("alerting.status.MAX_COMPONENTS", status_pages.MAX_COMPONENTS),
                     ("alerting.uptime.MAX_DAYS", uptime.MAX_DAYS),
                     ("alerting.status.MAX_INCIDENTS", status_pages.MAX_INCIDENTS),
                     ("alerting.status.MAX_NOTES", status_pages.MAX_NOTES),
                     ("alerting.status.MAX_NOTE_CHARS", status_pages.MAX_NOTE_CHARS),
                     ("alerting.status.MAX_MAINTENANCE", status_pages.MAX_MAINTENANCE)],
    "share links": [("web.shares.MAX_SHARES", web_shares.MAX_SHARES), ("names of", 64),
                    ("web.shares.MAX_EXPIRY_S in days", web_shares.MAX_EXPIRY_S / 86400)],
}
_NUMBER = re.compile(r"(?<![\w.^])\d+(?:,\d{3})*(?:\.\d+)?(?:e\d+)?(?![\w^])")


def stated_numbers(cell: str) -> list[float]:
    """The numbers in a cell, leaving out code that is a pattern (``[a-zA-Z0-9_]``)."""
    prose = re.sub(r"`[^`]*\[[^`]*`", "", cell)
    return [float(n.replace(",", "")) for n in _NUMBER.findall(prose)]


def limit_rows() -> dict[str, list[str]]:
    return {cells[0]: cells for cells in table(section("### Limits"))}


def test_the_limits_table_and_the_checked_rows_are_the_same():
    rows = limit_rows()
    assert not set(rows) - set(LIMITS), (
        "README.md, ### Limits: row(s) %s are not checked; add each to LIMITS in tests/test_readme.py with the "
        "code constants it states" % ", ".join(sorted(set(rows) - set(LIMITS))))
    assert not set(LIMITS) - set(rows), "README.md, ### Limits: no row %s any more (LIMITS in tests/test_readme.py)" % (
        ", ".join(sorted(set(LIMITS) - set(rows))))


@pytest.mark.parametrize("row", sorted(LIMITS))
def test_each_limit_the_readme_states_is_the_codes(row):
    cells = limit_rows().get(row)
    if cells is None:
        pytest.skip("no such row (the test above says so)")
    stated = stated_numbers(cells[1])
    expected = LIMITS[row]
    assert len(stated) == len(expected), (
        "README.md, ### Limits, %r states %d number(s) %s; tests/test_readme.py knows %d: %s" % (
            row, len(stated), stated, len(expected), ", ".join(what for what, _ in expected)))
    wrong = ["says %g where %s is %s" % (number, what, "/".join("%g" % v for v in values))
             for number, (what, value) in zip(stated, expected)
             for values in [value if isinstance(value, tuple) else (value,)]
             if any(number != v for v in values)]
    assert not wrong, "README.md, ### Limits, %r: %s" % (row, "; ".join(wrong))


# --- examples --------------------------------------------------------------------------------

def test_the_statsd_example_without_nc_sends_what_it_says(make_server):
    """Issue 21: the StatsD example needed `nc`, which a Debian image lacks; the README's Python
    line (run here as written, with the test server's port) counts deploys{env="prod"}."""
    import shlex
    import subprocess
    import sys

    from conftest import wait_until

    line = next(line for line in section("### StatsD").splitlines() if line.startswith("python3 -c "))
    running = make_server(statsd="127.0.0.1:0", data_dir=":memory:")
    port = running.server.statsd.address[1]
    program, flag, code = shlex.split(line)  # as a POSIX shell splits it
    assert (program, flag) == ("python3", "-c") and ", 8125)" in code
    subprocess.run([sys.executable, flag, code.replace(", 8125)", ", %d)" % port)], check=True, timeout=30)
    wait_until(lambda: running.json("GET", "/api/metrics")[1]["counters"].get('deploys{env="prod"}') == 1,
               message="the README's StatsD line counted")
