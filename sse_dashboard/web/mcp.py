"""MCP for agents: a stateless Model Context Protocol server at ``POST /mcp``, JSON only.

One concept: the Model Context Protocol's wire rules, and the tools an agent gets. No
session, no server-initiated messages, no event stream: every request is answered whole.

Both protocol eras are served, as the official SDK's client may use either:
- the current one (``2026-07-28``): ``server/discover``, every request stamped with
  ``params._meta`` (protocol version, client capabilities) and the ``MCP-Protocol-Version``,
  ``Mcp-Method`` and, for a tool call, ``Mcp-Name`` headers, which must agree with the body;
- the handshake one (``2025-11-25`` back to ``2024-11-05``): ``initialize``,
  ``notifications/initialized``, ``ping``.

Invariants:
- a request is checked in the order the specification gives: JSON (-32700), the
  JSON-RPC envelope and no batches (-32600), then for the current era ``_meta`` (-32602),
  the headers against the body (-32020), the version (-32022, with the supported ones),
  then the method (-32601); a notification gets 202 and no body;
- a tool's failure (bad arguments, storage refusing a write) is a result with
  ``isError: true``, which the agent reads; a protocol error is a JSON-RPC error;
- every tool result carries its data twice: as ``structuredContent`` and as JSON text.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
import re
import time
from dataclasses import dataclass
from typing import Any, Callable

from sse_dashboard.application import Application
from sse_dashboard.events import DASHBOARD_TYPE_PREFIXES

__all__ = ["McpEndpoint", "MODERN_VERSIONS", "HANDSHAKE_VERSIONS", "TOOLS", "RpcError", "ToolError",
           "dashboard_tools"]

MODERN_VERSIONS = ("2026-07-28",)
HANDSHAKE_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")
META_VERSION = "io.modelcontextprotocol/protocolVersion"
META_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"
META_SERVER = "io.modelcontextprotocol/serverInfo"
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602
HEADER_MISMATCH, UNSUPPORTED_VERSION = -32020, -32022
# HTTP statuses for errors in the current era (its transport specification); the handshake era
# names none, and its clients read errors from a 200 as well.
MODERN_STATUS = {PARSE_ERROR: 400, INVALID_REQUEST: 400, INVALID_PARAMS: 400, HEADER_MISMATCH: 400,
                 UNSUPPORTED_VERSION: 400, METHOD_NOT_FOUND: 404}
# A whole number an agent may send (JSON Schema "integer"): JavaScript's Number.MAX_SAFE_INTEGER,
# the largest every JSON reader keeps exact. 1e300 is "whole" too, but no id or count is that big.
MAX_INTEGER = 2 ** 53 - 1
INSTRUCTIONS = ("A live monitoring dashboard of this machine and the applications that report to it. "
                "Read the current state with get_snapshot, trends with get_history, what happened with "
                "list_events and list_alerts; annotate the timeline with post_event (for example "
                "'deployed v2' or 'started retraining').")


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


class ToolError(Exception):
    """A tool could not do what was asked: the agent gets the message as an error result."""


_READ = {"readOnlyHint": True, "destructiveHint": False, "idempotentHint": True, "openWorldHint": False}
_OBJECT = {"type": "object"}


def _schema(properties: dict, required: tuple = ()) -> dict:
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": False}


TOOLS = [
    {"name": "get_snapshot", "title": "Current snapshot",
     "description": "The newest sample: CPU, memory, disk, network, load, and the application's counters "
                    "and gauges as they are now, plus alerts firing and heartbeats.",
     "inputSchema": _schema({}), "outputSchema": _OBJECT, "annotations": dict(_READ, title="Current snapshot")},
    {"name": "get_history", "title": "History of one metric",
     "description": "One series over the last `seconds` (default 300, at most 7 days): a point per sample, "
                    "or per minute with min and max beside the average once samples are rolled up. "
                    "`metric` is a series name such as system.cpu_percent, gauges.queue_depth or "
                    "counters.jobs_done (the keys of get_snapshot, joined with a dot).",
     "inputSchema": _schema({"metric": {"type": "string", "minLength": 1, "maxLength": 300},
                             "seconds": {"type": "number", "minimum": 1, "maximum": 7 * 86400},
                             "points": {"type": "integer", "minimum": 1, "maximum": 2000,
                                        "description": "at most this many points (default 600): longer windows "
                                                       "come as averages with min and max"}}, ("metric",)),
     "outputSchema": _OBJECT, "annotations": dict(_READ, title="History of one metric")},
    {"name": "list_events", "title": "List events",
     "description": "Events oldest first after the cursor `since` (continue with `next` while `more`), or "
                    "the newest `limit` without it; narrowed by `level`, `type` (a glob, e.g. record.*) "
                    "and `source`.",
     "inputSchema": _schema({"since": {"type": "integer", "minimum": 0, "maximum": MAX_INTEGER},
                             "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
                             "level": {"type": "string", "enum": ["info", "warning", "error"]},
                             "type": {"type": "string", "maxLength": 100},
                             "source": {"type": "string", "maxLength": 100}}),
     "outputSchema": _OBJECT, "annotations": dict(_READ, title="List events")},
    {"name": "list_alerts", "title": "List alerts",
     "description": "Alerts firing now (rules and heartbeats), every rule, every heartbeat with its age, and "
                    "each notification target's last delivery.",
     "inputSchema": _schema({}), "outputSchema": _OBJECT, "annotations": dict(_READ, title="List alerts")},
    {"name": "list_jobs", "title": "List jobs",
     "description": "Every job monitor: its state (new, up, started, late, down, paused, maintenance), "
                    "schedule, last run and its duration, the next run expected, and why it is down; "
                    "with `job` (a slug), that job's newest runs and their output too.",
     "inputSchema": _schema({"job": {"type": "string", "pattern": "^[a-z0-9_-]{1,100}$"},
                             "limit": {"type": "integer", "minimum": 1, "maximum": 100}}),
     "outputSchema": _OBJECT, "annotations": dict(_READ, title="List jobs")},
    {"name": "get_health", "title": "Dashboard health",
     "description": "Whether the dashboard is well: version, uptime, open streams, storage state.",
     "inputSchema": _schema({}), "outputSchema": _OBJECT, "annotations": dict(_READ, title="Dashboard health")},
    {"name": "post_event", "title": "Post an event",
     "description": "Add an event to the timeline, shown live on every open page: e.g. 'deployed v2' or "
                    "'started retraining'. `level` info (default), warning or error; `type` such as "
                    "deploy or agent.step; `data` any JSON.",
     "inputSchema": _schema({"message": {"type": "string", "minLength": 1, "maxLength": 4096},
                             "level": {"type": "string", "enum": ["info", "warning", "error"]},
                             "source": {"type": "string", "minLength": 1, "maxLength": 100},
                             "type": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,100}$",
                                      "not": {"pattern": "^(%s)" % "|".join(map(re.escape, DASHBOARD_TYPE_PREFIXES))},
                                      "description": "not alert.* or notify.*: those are the dashboard's own"},
                             "data": {}}, ("message",)),
     "outputSchema": _OBJECT,
     "annotations": {"title": "Post an event", "readOnlyHint": False, "destructiveHint": False,
                     "idempotentHint": False, "openWorldHint": False}},
]
_TOOLS_BY_NAME = {tool["name"]: tool for tool in TOOLS}


@dataclass
class McpEndpoint:
    """The protocol, over tools that ``tools[name](arguments)`` runs (returning a JSON object, or
    raising ``ToolError``). ``handle`` takes the body and headers of one POST."""

    tools: dict
    version: str

    def handle(self, raw: bytes, headers: Any, may_write: bool = True) -> tuple[int, dict | None]:
        """(HTTP status, the JSON-RPC answer or None for 202). ``may_write``: whether the caller's
        token has the 'write' scope, which the tools that are not read-only need (#26)."""
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return 400, _error(None, PARSE_ERROR, "Parse error: the body is not JSON")
        if not _is_envelope(body):
            return 400, _error(None, INVALID_REQUEST, "Invalid Request: one JSON-RPC 2.0 object (batches are not "
                                                      "supported)")
        if "id" not in body:
            return 202, None  # a notification (notifications/initialized, cancelled): nothing to answer
        request_id, method = body["id"], body["method"]
        params = body.get("params") if isinstance(body.get("params"), dict) else {}
        modern = _is_modern(method, params, headers)
        try:
            if modern:
                self._check_stamp(body, params, headers)
                result = self._modern(method, params, may_write)
            else:
                result = self._handshake(method, params, may_write)
        except RpcError as exc:
            status = MODERN_STATUS.get(exc.code, 200) if modern else (400 if exc.code == INVALID_REQUEST else 200)
            return status, _error(request_id, exc.code, exc.message, exc.data)
        return 200, {"jsonrpc": "2.0", "id": request_id, "result": result}

    # --- the two eras -----------------------------------------------------------------

    def _handshake(self, method: str, params: dict, may_write: bool) -> dict:
        if method == "initialize":
            asked = params.get("protocolVersion")
            return {"protocolVersion": asked if asked in HANDSHAKE_VERSIONS else HANDSHAKE_VERSIONS[0],
                    "capabilities": {"tools": {"listChanged": False}}, "serverInfo": self._server_info(),
                    "instructions": INSTRUCTIONS}
        if method == "ping":
            return {}
        if method == "tools/list":
            return {"tools": TOOLS}
        if method == "tools/call":
            return self._call(params, may_write)
        raise RpcError(METHOD_NOT_FOUND, "Method not found: %s" % _shown(method))

    def _modern(self, method: str, params: dict, may_write: bool) -> dict:
        if method == "server/discover":
            result = {"supportedVersions": list(MODERN_VERSIONS), "capabilities": {"tools": {"listChanged": False}},
                      "instructions": INSTRUCTIONS, "ttlMs": 0, "cacheScope": "public"}
        elif method == "tools/list":
            result = {"tools": TOOLS, "ttlMs": 0, "cacheScope": "public"}
        elif method == "tools/call":
            result = self._call(params, may_write)
        else:
            raise RpcError(METHOD_NOT_FOUND, "Method not found: %s" % _shown(method))
        result["resultType"] = "complete"
        result["_meta"] = {META_SERVER: self._server_info()}
        return result

    def _check_stamp(self, body: dict, params: dict, headers: Any) -> None:
        meta = params.get("_meta")
        if not isinstance(meta, dict) or META_VERSION not in meta or META_CAPABILITIES not in meta:
            raise RpcError(INVALID_PARAMS, "params._meta must carry %s and %s" % (META_VERSION, META_CAPABILITIES))
        if headers.get("MCP-Protocol-Version") != meta[META_VERSION]:
            raise RpcError(HEADER_MISMATCH, "the MCP-Protocol-Version header does not match params._meta")
        if headers.get("Mcp-Method") != body["method"]:
            raise RpcError(HEADER_MISMATCH, "the Mcp-Method header does not match the method")
        if body["method"] == "tools/call" and _header_name(headers.get("Mcp-Name")) != params.get("name"):
            raise RpcError(HEADER_MISMATCH, "the Mcp-Name header does not match the tool's name")
        if meta[META_VERSION] not in MODERN_VERSIONS:
            raise RpcError(UNSUPPORTED_VERSION, "Unsupported protocol version",
                           {"supported": list(MODERN_VERSIONS + HANDSHAKE_VERSIONS),
                            "requested": _shown(meta[META_VERSION])})

    # --- tools ------------------------------------------------------------------------

    def _call(self, params: dict, may_write: bool) -> dict:
        name = params.get("name")
        if name not in _TOOLS_BY_NAME:
            raise RpcError(INVALID_PARAMS, "Unknown tool: %s" % _shown(name))
        arguments = params.get("arguments", {})
        try:
            if not may_write and not _TOOLS_BY_NAME[name]["annotations"]["readOnlyHint"]:
                raise ToolError("%s needs the 'write' scope; the token offered has not" % name)
            if not isinstance(arguments, dict):
                raise ToolError("arguments must be an object")
            arguments = _check_arguments(_TOOLS_BY_NAME[name]["inputSchema"], arguments)
            structured = self.tools[name](arguments)
        except ToolError as exc:
            return {"content": [{"type": "text", "text": str(exc)}], "isError": True}
        text = json.dumps(structured, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        return {"content": [{"type": "text", "text": text}], "structuredContent": structured, "isError": False}

    def _server_info(self) -> dict:
        return {"name": "sse-dashboard", "version": self.version}


def _is_envelope(body: Any) -> bool:
    if not isinstance(body, dict) or body.get("jsonrpc") != "2.0" or not isinstance(body.get("method"), str):
        return False
    if "id" in body and (isinstance(body["id"], bool) or not isinstance(body["id"], (str, int))):
        return False  # a request id is a string or a whole number, never null
    return "params" not in body or isinstance(body["params"], dict)


def _is_modern(method: str, params: dict, headers: Any) -> bool:
    """The current era: a protocol header that is not a handshake version, or a stamped request."""
    header = headers.get("MCP-Protocol-Version")
    if header is not None and header not in HANDSHAKE_VERSIONS:
        return True
    meta = params.get("_meta")
    return method != "initialize" and isinstance(meta, dict) and META_VERSION in meta


def _header_name(value: str | None) -> str | None:
    """The Mcp-Name header: plain ASCII, or ``=?base64?...?=`` for any other name."""
    if value and value.startswith("=?base64?") and value.endswith("?="):
        try:
            return base64.b64decode(value[len("=?base64?"):-2], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
    return value


def _error(request_id: Any, code: int, message: str, data: Any = None) -> dict:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def _shown(value: Any) -> str:
    return json.dumps(value, ensure_ascii=True)[:80]


def _check_arguments(schema: dict, arguments: dict) -> dict:
    """The few JSON Schema rules our tools' input schemas use; ``ToolError`` names what is wrong.
    Returns the arguments with every integer as an ``int`` (JSON's ``7.0`` is the integer 7)."""
    arguments = dict(arguments)
    properties = schema["properties"]
    for name in arguments:
        if name not in properties:
            raise ToolError("unknown argument %s (this tool takes: %s)" % (_shown(name), ", ".join(properties) or
                                                                          "none"))
    for name in schema["required"]:
        if name not in arguments:
            raise ToolError("%s is required" % name)
    for name, value in arguments.items():
        rule = properties[name]
        kind = rule.get("type")
        if kind == "string" and not isinstance(value, str):
            raise ToolError("%s must be a string" % name)
        if kind in ("integer", "number"):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ToolError("%s must be a number" % name)
            whole = kind == "integer"
            if whole and value != int(value):
                raise ToolError("%s must be a whole number" % name)
            low = rule.get("minimum", -MAX_INTEGER if whole else -math.inf)
            high = rule.get("maximum", MAX_INTEGER if whole else math.inf)
            if not low <= value <= high:
                raise ToolError("%s must be from %s to %s" % (name, low, high))
            if whole:
                arguments[name] = int(value)
        if "enum" in rule and value not in rule["enum"]:
            raise ToolError("%s must be one of %s" % (name, ", ".join(rule["enum"])))
        if isinstance(value, str) and not rule.get("minLength", 0) <= len(value) <= rule.get("maxLength", 10 ** 9):
            raise ToolError("%s must be %d to %d characters" % (name, rule.get("minLength", 0), rule["maxLength"]))
    return arguments


def list_jobs(app: Application, args: dict) -> dict:
    """Every job; with ``job``, that job's newest runs (at most ``limit``) beside."""
    jobs = app.jobs.listing()
    shown = [{key: value for key, value in j.items() if key != "id"} for j in jobs]  # a UUID is a ping secret (#26)
    slug = args.get("job")
    if slug is None:
        return {"jobs": shown}
    index = next((i for i, j in enumerate(jobs) if j["slug"] == slug), None)
    if index is None:
        raise ToolError("no job %s (list_jobs without job lists them)" % slug)
    return {"jobs": [shown[index]], "runs": app.jobs.runs(jobs[index]["id"], args.get("limit", 20))}


def dashboard_tools(app: Application, post_event: Callable[..., Any], only_filter: Callable[..., Any]) -> dict:
    """The tools, over the application (``post_event(level, message, **fields)`` stores one
    event; ``only_filter(types, levels, sources)`` builds an ``events.EventFilter``): they read
    what the HTTP API reads, through the same ``Application`` methods."""

    def get_history(args: dict) -> dict:
        metric, seconds = args["metric"], float(args.get("seconds", 300))
        now = time.time()
        points = int(args.get("points", 600))
        columns = app.history_columns(now - seconds, now, [metric], points)  # reads that one series only
        if metric not in columns.get("series", {}):  # (only then is every series read: to name them)
            known = sorted(app.history_columns(now - seconds, now, None, 1).get("series", {}))
            raise ToolError("no series %s in that window; these have values: %s" % (_shown(metric),
                                                                                    ", ".join(known[:60])))
        answer = {"metric": metric, "ts": columns["ts"], "values": columns["series"][metric],
                  "interval": columns.get("interval"), "resolution": columns.get("resolution", "full")}
        for bound in ("min", "max"):
            if metric in (columns.get(bound) or {}):
                answer[bound] = columns[bound][metric]
        return answer

    def list_events(args: dict) -> dict:
        try:
            only = only_filter(args.get("type"), args.get("level"), args.get("source"))
        except ValueError as exc:
            raise ToolError(str(exc)) from None
        page = app.event_page(args.get("since"), int(args.get("limit", 100)), None, only)
        return dict(page, events=[e.to_dict() for e in page["events"]])

    def post(args: dict) -> dict:
        try:
            event = post_event(args.get("level", "info"), args["message"], source=args.get("source", "agent"),
                               data=args.get("data"), type=args.get("type"))
        except ValueError as exc:
            raise ToolError(str(exc)) from None
        except Exception as exc:  # storage refusing (disk full, file gone): the agent should know
            raise ToolError("not stored: %s" % exc) from None
        return event.to_dict()

    return {"get_snapshot": lambda args: app.current_snapshot(),
            "get_history": get_history,
            "list_events": list_events,
            "list_alerts": lambda args: app.alerts_state(),
            "list_jobs": functools.partial(list_jobs, app),
            "get_health": lambda args: app.health(),
            "post_event": post}
