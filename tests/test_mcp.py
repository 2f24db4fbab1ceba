"""POST /mcp with the official MCP Python SDK's client, in the current protocol era
(server/discover), the handshake era (initialize) and auto (which probes), plus the wire rules
the specification gives for errors, checked with raw requests."""

from __future__ import annotations

import asyncio
import json
import sys

import pytest

from conftest import IN_CI

try:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
except ImportError:  # reported by the fixture below
    Client = None

MODES = ["2026-07-28", "legacy", "auto"]
TOOL_NAMES = ["get_snapshot", "get_history", "list_events", "list_alerts", "list_jobs", "get_health", "post_event"]


@pytest.fixture
def sdk():
    if Client is None:
        if IN_CI and sys.version_info >= (3, 10):
            pytest.fail("the mcp SDK is required in CI but missing (pip install -e .[test])")
        pytest.skip("the mcp SDK is not installed (it needs Python 3.10 or later)")


def run_client(url: str, mode: str, work, token: str | None = None, statuses: list | None = None):
    """Open the SDK's client on ``url`` in ``mode`` and run ``await work(client)``; ``statuses``
    collects the HTTP status of every response the client got."""
    async def record(response):
        if statuses is not None:
            statuses.append(response.status_code)

    async def main():
        headers = {"Authorization": "Bearer " + token} if token else {}
        http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(10, read=30),
                                  event_hooks={"response": [record]})
        async with http, Client(streamable_http_client(url, http_client=http), mode=mode) as client:
            return await work(client)
    return asyncio.run(main())


def structured(result) -> dict:
    assert result.is_error is False, result.content
    assert json.loads(result.content[0].text) == result.structured_content  # the same data as text
    return result.structured_content


@pytest.mark.parametrize("mode", MODES)
def test_the_sdk_lists_and_calls_every_tool(make_server, sse_reader, sdk, mode):
    running = make_server(token="tok")
    running.json("POST", "/api/metrics", {"gauges": {"queue_depth": 3}}, headers={"Authorization": "Bearer tok"})
    reader = sse_reader(running, "/api/metrics/stream?types=deploy&metrics=0", headers={"Authorization": "Bearer tok"})
    reader.next_frame()  # retry

    async def work(client):
        tools = (await client.list_tools()).tools
        results = {"version": client.protocol_version, "tools": tools}
        results["snapshot"] = structured(await client.call_tool("get_snapshot", {}))
        results["history"] = structured(await client.call_tool("get_history", {"metric": "server.clients",
                                                                               "seconds": 60}))
        results["posted"] = structured(await client.call_tool("post_event", {
            "message": "deployed v2", "type": "deploy", "level": "info", "data": {"version": 2}}))
        results["events"] = structured(await client.call_tool("list_events", {"type": "deploy"}))
        results["alerts"] = structured(await client.call_tool("list_alerts", {}))
        results["jobs"] = structured(await client.call_tool("list_jobs", {}))
        results["no_job"] = await client.call_tool("list_jobs", {"job": "nope"})
        results["health"] = structured(await client.call_tool("get_health", {}))
        results["bad"] = await client.call_tool("get_history", {"metric": "no.such_series"})
        return results

    got = run_client(running.url + "/mcp", mode, work, token="tok")
    assert got["version"] == ("2025-11-25" if mode == "legacy" else "2026-07-28")
    assert [t.name for t in got["tools"]] == TOOL_NAMES
    for tool in got["tools"]:
        assert tool.input_schema["type"] == "object" and tool.description
        assert tool.annotations.read_only_hint is (tool.name != "post_event")
    assert got["snapshot"]["gauges"] == {"queue_depth": 3} and "cpu_percent" in got["snapshot"]["system"]
    assert len(got["history"]["ts"]) == len(got["history"]["values"]) > 0
    assert got["posted"]["message"] == "deployed v2" and got["posted"]["source"] == "agent"
    assert [e["message"] for e in got["events"]["events"]] == ["deployed v2"]
    assert got["alerts"]["alerts"] == [] and got["health"]["status"] == "ok"
    assert got["jobs"] == {"jobs": []} and got["no_job"].is_error is True
    assert got["bad"].is_error is True and "no series" in got["bad"].content[0].text
    frame = reader.next_frame()  # the agent's event reached an open stream, under its type
    assert frame["event"] == "deploy" and json.loads(frame["data"])["data"] == {"version": 2}


@pytest.mark.parametrize("mode", ["2026-07-28", "legacy"])
def test_the_sdk_with_a_wrong_token_gets_401(make_server, sdk, mode):
    running = make_server(token="tok")

    async def work(client):
        return await client.list_tools()

    statuses: list = []
    with pytest.raises(BaseException):
        run_client(running.url + "/mcp", mode, work, token="wrong", statuses=statuses)
    assert statuses and set(statuses) == {401}
    assert running.request("POST", "/mcp", b"{}", headers={"Content-Type": "application/json"})[0] == 401


def test_a_foreign_origin_is_403(server):
    status, _, body = server.request("POST", "/mcp", json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "ping"}).encode(),
        headers={"Content-Type": "application/json", "Origin": "http://evil.example"})
    assert status == 403


STAMP = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
         "io.modelcontextprotocol/clientCapabilities": {}}


def rpc(server, body, headers=None, raw=None):
    headers = dict({"Content-Type": "application/json", "Accept": "application/json, text/event-stream"},
                   **(headers or {}))
    status, response_headers, data = server.request("POST", "/mcp", raw if raw is not None else json.dumps(body).encode(),
                                                    headers=headers)
    return status, (json.loads(data) if data else None)


def modern(method, params=None, **headers):
    body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": dict(params or {}, _meta=STAMP)}
    return body, dict({"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": method}, **headers)


@pytest.mark.parametrize("case", [
    "parse", "batch", "null_id", "unknown_modern", "unknown_legacy", "method_header", "version_header",
    "name_header", "unsupported", "no_meta", "unknown_tool",
])
def test_protocol_errors_are_the_ones_the_specification_gives(server, case):
    if case == "parse":
        status, answer = rpc(server, None, raw=b"{not json")
        expected = (400, -32700)
    elif case == "batch":
        status, answer = rpc(server, [{"jsonrpc": "2.0", "id": 1, "method": "ping"}])
        expected = (400, -32600)
    elif case == "null_id":
        status, answer = rpc(server, {"jsonrpc": "2.0", "id": None, "method": "ping"})
        expected = (400, -32600)
    elif case == "unknown_modern":
        status, answer = rpc(server, *modern("resources/list"))
        expected = (404, -32601)
    elif case == "unknown_legacy":
        status, answer = rpc(server, {"jsonrpc": "2.0", "id": 1, "method": "resources/list"},
                             {"MCP-Protocol-Version": "2025-11-25"})
        expected = (200, -32601)
    elif case == "method_header":
        body, headers = modern("tools/list")
        status, answer = rpc(server, body, dict(headers, **{"Mcp-Method": "tools/call"}))
        expected = (400, -32020)
    elif case == "version_header":
        body, headers = modern("tools/list")
        status, answer = rpc(server, body, dict(headers, **{"MCP-Protocol-Version": "2099-01-01"}))
        expected = (400, -32020)
    elif case == "name_header":
        body, headers = modern("tools/call", {"name": "get_health", "arguments": {}}, **{"Mcp-Name": "post_event"})
        status, answer = rpc(server, body, headers)
        expected = (400, -32020)
    elif case == "unsupported":
        body, headers = modern("tools/list")
        body["params"]["_meta"] = dict(STAMP, **{"io.modelcontextprotocol/protocolVersion": "2099-01-01"})
        status, answer = rpc(server, body, dict(headers, **{"MCP-Protocol-Version": "2099-01-01"}))
        expected = (400, -32022)
        assert "2026-07-28" in answer["error"]["data"]["supported"]
    elif case == "no_meta":
        status, answer = rpc(server, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                             {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/list"})
        expected = (400, -32602)
    else:
        body, headers = modern("tools/call", {"name": "rm_rf", "arguments": {}}, **{"Mcp-Name": "rm_rf"})
        status, answer = rpc(server, body, headers)
        expected = (400, -32602)
    assert (status, answer["error"]["code"]) == expected, answer
    assert answer["jsonrpc"] == "2.0" and answer["error"]["message"]


def test_a_notification_is_202_with_no_body_and_get_is_405(server):
    status, answer = rpc(server, {"jsonrpc": "2.0", "method": "notifications/initialized"})
    assert (status, answer) == (202, None)
    status, headers, _ = server.request("GET", "/mcp")
    assert status == 405 and headers["Allow"] == "POST"
    status, _, _ = server.request("POST", "/mcp", b"{}", headers={"Content-Type": "application/json",
                                                                   "Accept": "text/html"})
    assert status == 406


def test_bad_arguments_are_a_tool_error_the_agent_reads_and_store_nothing(server):
    body, headers = modern("tools/call", {"name": "post_event", "arguments": {"message": "", "level": "loud"}},
                           **{"Mcp-Name": "post_event"})
    status, answer = rpc(server, body, headers)
    assert status == 200 and answer["result"]["isError"] is True
    assert server.json("GET", "/api/events")[1]["events"] == []
    body["params"]["arguments"] = {"message": "ok", "extra": 1}
    status, answer = rpc(server, body, headers)
    assert answer["result"]["isError"] is True and "unknown argument" in answer["result"]["content"][0]["text"]


def call_tool(server, name, arguments):
    body, headers = modern("tools/call", {"name": name, "arguments": arguments}, **{"Mcp-Name": name})
    status, answer = rpc(server, body, headers)
    assert status == 200, answer
    return answer["result"]


def test_an_agent_cannot_post_the_dashboards_own_alert_events(server):
    """Issue 21, item 8: alert.* (and notify.*) types belong to the dashboard, through MCP too."""
    result = call_tool(server, "post_event", {"message": "cpu_hot firing", "level": "error", "source": "alerts",
                                               "type": "alert.firing", "data": {"rule": "cpu_hot"}})
    assert result["isError"] is True and "belong to the dashboard" in result["content"][0]["text"]
    assert server.json("GET", "/api/events")[1]["events"] == []


@pytest.mark.parametrize("since", [1e300, 2 ** 53, -1, 1.5, "3", True])
def test_list_events_takes_only_whole_numbers_in_range_as_since(server, since):
    """Issue 21, item 11: ``since: 1e300`` passed as an integer and came back as ``"next": 1e+300``."""
    result = call_tool(server, "list_events", {"since": since})
    assert result["isError"] is True and "since" in result["content"][0]["text"], result


def test_a_whole_float_since_is_read_as_an_integer_and_next_is_one(server):
    server.json("POST", "/api/events", {"message": "one"})
    result = call_tool(server, "list_events", {"since": 7.0, "limit": 5.0})
    assert result["isError"] is False
    assert '"next":7,' in result["content"][0]["text"] and result["structuredContent"]["next"] == 7
    largest = call_tool(server, "list_events", {"since": 2 ** 53 - 1})
    assert largest["isError"] is False and largest["structuredContent"]["next"] == 2 ** 53 - 1
