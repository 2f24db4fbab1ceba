"""Schemathesis against the running server: no 5xx, and every response fits /api/openapi.json."""

import pytest

from conftest import require_tool

try:
    import schemathesis
    from hypothesis import HealthCheck, settings
except ImportError:  # pragma: no cover - reported by the fixture below
    schemathesis = None


@pytest.fixture
def api_schema(make_server):
    require_tool(schemathesis is not None, "schemathesis (pip install -e .[test])")
    # No rate limit here: the generator posts much faster than a person's scripts do.
    server = make_server(post_rate_per_s=0)
    return schemathesis.openapi.from_url(server.url + "/api/openapi.json")


if schemathesis is not None:
    schema = schemathesis.pytest.from_fixture("api_schema")

    @schema.exclude(path="/api/metrics/stream").parametrize()
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    def test_api_matches_its_openapi_description(case):
        case.call_and_validate()
else:
    def test_api_matches_its_openapi_description():
        require_tool(False, "schemathesis (pip install -e .[test])")
