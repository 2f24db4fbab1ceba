"""Schemathesis against the running server: no 5xx, and every response fits /api/openapi.json.

Driven through schemathesis' Python API with Hypothesis directly, not its pytest plugin, which
follows pytest's internals too closely (schemathesis 4.32 breaks on pytest 9.2)."""

import os

import pytest

from conftest import require_tool

try:
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable
except ImportError:  # reported by the test below
    schemathesis = None

# Examples per operation and mode: 12 keep the suite within its minutes; SSE_OPENAPI_EXAMPLES=200 for a longer run.
EXAMPLES = int(os.environ.get("SSE_OPENAPI_EXAMPLES") or 12)


def test_api_matches_its_openapi_description(make_server):
    require_tool(schemathesis is not None, "schemathesis (pip install -e .[test])")
    # No rate limit here: the generator posts much faster than a person's scripts do.
    server = make_server(post_rate_per_s=0)
    schema = schemathesis.openapi.from_url(server.url + "/api/openapi.json")
    checked = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path == "/api/metrics/stream":
            continue  # it never ends; tests/test_http_stream.py covers it
        if operation.path == "/metrics/job/{job}":
            continue  # a text-format body no schema describes: tests/test_pushgateway.py drives it
        if operation.path in ("/mcp", "/api/alerts/test"):
            continue  # JSON-RPC, and a send to targets: tests/test_mcp.py and tests/test_notify.py
        if (operation.method.upper(), operation.path) == ("POST", "/api/tokens"):
            continue  # a token made closes the API to the generator: tests/test_tokens.py drives it
        if (operation.method.upper(), operation.path) == ("POST", "/api/jobs"):
            continue  # a cron expression no JSON schema describes exactly: tests/test_jobs.py fuzzes it
        if (operation.method.upper(), operation.path) in (("PUT", "/api/status-pages/{slug}"),
                                                          ("POST", "/api/status-pages/{slug}/maintenance")):
            continue  # an end after its start, ISO 8601 times: no JSON schema says it; tests/test_status.py does
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            def check(case):
                case.call_and_validate()

            try:
                check()
            except Unsatisfiable:
                continue  # nothing invalid can be made for this operation (no parameters, no body)
            checked.append((operation.method.upper(), operation.path, mode.value))
    covered = {(m, p) for m, p, _ in checked}
    for expected in [("GET", "/api/metrics"), ("POST", "/api/metrics"), ("GET", "/api/events"),
                     ("POST", "/api/events"), ("GET", "/api/metrics/history"), ("GET", "/api/health"),
                     ("GET", "/api/alerts"), ("GET", "/metrics"), ("GET", "/api/push/{name}")]:
        assert expected in covered, expected
    assert ("POST", "/api/events", "negative") in checked
