"""The OpenAPI 3 description of the HTTP API, served at ``GET /api/openapi.json``.

One concept: the contract as data: every path, its parameters and answers, built from the data's
shapes in ``schemas``. Tests run schemathesis against the running server with it, so a route,
field or status that drifts from it fails there.
"""

from __future__ import annotations

import copy

from sse_dashboard.web.schemas import (BEAT_FIELDS, EVENT, FLEET, HEARTBEAT_NAME, JOB, JOB_SPEC, MAX_WHOLE, METRICS_UPDATE,
                                       NAME, NEW_EVENT, NUMBER_OR_NULL, REMOTE_WRITE, SLUG, SNAPSHOT, TEXT, UUID)

__all__ = ["openapi_spec"]

_ERROR = {"$ref": "#/components/responses/Error"}

_JOB_PARAM = {"name": "job", "in": "path", "required": True, "schema": SLUG, "description": "its slug or UUID"}


def _ping(summary: str, parameters: list, created: bool = False) -> dict:
    """A ping URL: answered in Healthchecks' words, plain text (the JSON errors are the guard's)."""
    text = {"content": TEXT}
    responses = {"200": {"description": "OK", **text}, "400": {"description": "invalid url format, or "
                                                                              "invalid uuid format (rid)", **text},
                 "404": {"description": "not found", **text}, **_errors(403, 413, 429, 503)}
    if created:
        responses["201"] = {"description": "Created (?create=1 made the job)", **text}
    query = [_query("rid", UUID, "pairs a start with its end when runs overlap")]
    if created:
        query.append(_query("create", {"type": "string", "enum": ["1"]}, "make the job on its first ping"))
    return {method: {"summary": summary, "parameters": parameters + query, "security": [{}],
                     **({"requestBody": {"required": False, "content": {"text/plain": {"schema": {"type": "string"}}}}}
                        if method == "post" else {}),
                     "responses": responses} for method in ("get", "post")}


def _query(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


_TEST_RESULTS = {"type": "object", "required": ["results"], "properties": {"results": {"type": "array", "items": {
    "type": "object", "required": ["target", "ok", "status", "error", "pending"]}}}}
_FORMAT = _query("format", {"type": "string", "enum": ["json", "csv"]}, "json (default) or csv")
_FILTERS = [
    _query("types", {"type": "string", "pattern": "^([A-Za-z0-9_.:*?-]{1,100}(,[A-Za-z0-9_.:*?-]{1,100}){0,19})?$"},
           "comma-separated type globs (record.*); an untyped event's type is 'log'"),
    _query("levels", {"type": "string", "pattern": "^((info|warning|error)(,(info|warning|error)){0,19})?$"},
           "comma-separated levels"),
    _query("sources", {"type": "string", "pattern": "^([^,]{1,100}(,[^,]{1,100}){0,19})?$"},
           "comma-separated sources"),
]


def _errors(*codes: int) -> dict:
    return {str(code): _ERROR for code in codes}


def _otlp(signal: str, rejected: str) -> dict:
    """An OTLP/HTTP export (the OpenTelemetry specification describes the body's every field)."""
    request = {"type": "object", "description": "an Export%sServiceRequest in OTLP/JSON (lowerCamelCase, "
               "int64 as strings, hex ids)" % signal,
               # null is the empty list, as protobuf's JSON mapping reads it
               "properties": {"resource%s" % signal: {"type": ["array", "null"], "items": {"type": "object"}}}}
    answer = {"type": "object", "properties": {"partialSuccess": {"type": "object", "properties": {
        rejected: {"type": "string"}, "errorMessage": {"type": "string"}}}}}
    # A google.rpc.Status in the request's encoding; as JSON, its mapping beside the house's "error".
    refusal = {"description": "what is wrong: a google.rpc.Status", "content": {
        "application/json": {"schema": {"type": "object", "required": ["error", "code", "message"], "properties": {
            "error": {"type": "string"}, "code": {"type": "integer"}, "message": {"type": "string"}},
            "additionalProperties": False}},
        "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}}}}
    return {
        "summary": "OTLP/HTTP %s export, as OpenTelemetry SDKs send it (README \"OpenTelemetry\")" % signal.lower(),
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": request},
            "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}}}},
        "responses": {"200": {"description": "taken (partialSuccess: some were rejected, and why)", "content": {
            "application/json": {"schema": answer},
            "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}}}},
            **dict.fromkeys(("400", "401", "403", "413", "415", "429", "503"), refusal)},
    }


def _json(schema: dict) -> dict:
    return {"content": {"application/json": {"schema": schema}}}




_TOKEN_NAME = {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"}
_TOKEN_LISTED = {"type": "object", "required": ["name", "scopes", "created", "last_used"], "additionalProperties": False,
                 "properties": {"name": _TOKEN_NAME,
                                "scopes": {"type": "array", "items": {"enum": ["read", "write", "admin"]}},
                                "created": {"type": "number"}, "last_used": NUMBER_OR_NULL}}
# Scoped tokens (#26): an admin's view of them; a token's text is in the answer to its POST only.
_TOKEN_PATHS = {
    "/api/tokens": {
        "get": {"summary": "The scoped tokens: names and scopes, never a token (admin)",
                "responses": {"200": {"description": "the tokens", **_json({
                    "type": "object", "required": ["tokens"],
                    "properties": {"tokens": {"type": "array", "items": _TOKEN_LISTED}}})}, **_errors(401)}},
        "post": {"summary": "Make a token; its text is in this answer only (admin)",
                 "requestBody": {"required": True, **_json({
                     "type": "object", "required": ["name", "scopes"], "additionalProperties": False,
                     "properties": {"name": _TOKEN_NAME, "scopes": {
                         "type": "array", "minItems": 1, "items": {"enum": ["read", "write", "admin"]}}}})},
                 "responses": {"201": {"description": "made", **_json({
                     "type": "object", "required": ["name", "scopes", "created", "token"],
                     "properties": {"token": {"type": "string"}}})},
                     **_errors(400, 401, 403, 409, 413, 415, 429, 503)}},
    },
    "/api/tokens/{name}": {
        "delete": {"summary": "Revoke a token at once, and end the streams it opened (admin)",
                   "parameters": [{"name": "name", "in": "path", "required": True, "schema": _TOKEN_NAME}],
                   "responses": {"200": {"description": "revoked", **_json({
                       "type": "object", "required": ["status", "name"],
                       "properties": {"status": {"const": "revoked"}}})}, **_errors(401, 403, 404, 429, 503)}},
    },
}


_SECTIONS = {"type": "array", "minItems": 1, "uniqueItems": True,
             "items": {"enum": ["system", "metrics", "jobs", "heartbeats", "alerts", "events", "processes"]}}
_SHARE_LISTED = {"type": "object", "required": ["handle", "name", "sections", "created", "expires", "kiosk", "hide_hosts"],
                 "properties": {"handle": {"type": "string"}, "name": {"type": "string"}, "sections": _SECTIONS,
                                "created": {"type": "number"}, "expires": NUMBER_OR_NULL, "kiosk": {"type": "boolean"},
                                "hide_hosts": {"type": "boolean"}, "expired": {"type": "boolean"}}}
# Read-only share links (#26): an admin's view; a link's id is in the answer to its POST only.
_SHARE_PATHS = {
    "/api/shares": {
        "get": {"summary": "The share links: handles, sections, expiry; never a link's id (admin)",
                "responses": {"200": {"description": "the links", **_json({
                    "type": "object", "required": ["shares"],
                    "properties": {"shares": {"type": "array", "items": _SHARE_LISTED}}})}, **_errors(401)}},
        "post": {"summary": "Make a read-only share link /s/<id>; its id is in this answer only (admin)",
                 "requestBody": {"required": True, **_json({
                     "type": "object", "required": ["sections"], "additionalProperties": False,
                     "properties": {"sections": _SECTIONS,
                                    "expires_in_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 366 * 86400},
                                    "kiosk": {"type": "boolean"}, "hide_hosts": {"type": "boolean"},
                                    "name": {"type": "string", "maxLength": 64, "pattern": "^[^\\x00-\\x1f]*$"}}})},
                 "responses": {"201": {"description": "made", **_json({
                     "type": "object", "required": ["id", "url", "handle", "sections"],
                     "properties": {"id": {"type": "string"}, "url": {"type": "string"}}})},
                     **_errors(400, 401, 403, 413, 415, 429, 503)}},
    },
    "/api/shares/{handle}": {
        "delete": {"summary": "Revoke a share link at once, and end its open streams (admin)",
                   "parameters": [{"name": "handle", "in": "path", "required": True, "schema": {"type": "string"}}],
                   "responses": {"200": {"description": "revoked", **_json({
                       "type": "object", "required": ["status", "handle"],
                       "properties": {"status": {"const": "revoked"}}})}, **_errors(401, 403, 404, 429, 503)}},
    },
    "/api/share": {
        "get": {"summary": "What the share session (?share=<id>) shows; 404 without one",
                "parameters": [{"name": "share", "in": "query", "required": False, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "the link's sections and options", **_json({
                    "type": "object", "required": ["sections", "kiosk", "hide_hosts", "expires"]})},
                    **_errors(401, 403, 404, 410)}},
    },
}


_SVG = {"image/svg+xml; charset=utf-8": {"schema": {"type": "string"}}}
_BADGE_PATH = {"/badge/{kind}/{name}.svg": {"get": {
    "summary": "A job's, heartbeat's, alert rule's or status page's state now, as an SVG badge (no token; "
               "cacheable for 30 s)",
    "security": [{}],
    "parameters": [{"name": "kind", "in": "path", "required": True,
                    "schema": {"enum": ["job", "heartbeat", "alert", "status"]}},
                   {"name": "name", "in": "path", "required": True, "schema": HEARTBEAT_NAME,
                    "description": "the job's slug, the heartbeat's name, the alert rule's name or the status page's slug"},
                   {"name": "uptime", "in": "query", "required": False,
                    "schema": {"enum": ["24h", "7d", "30d", "90d"]},
                    "description": "a status page's uptime over this window instead of its state"}],
    "responses": {"200": {"description": "the badge", "content": _SVG},
                  "404": {"description": "a 'not found' badge", "content": _SVG}, **_errors(421)}}}}


_PAGE_SLUG = {"type": "string", "pattern": "^[a-z0-9_-]{1,64}$"}
_SLUG_PARAM = {"name": "slug", "in": "path", "required": True, "schema": _PAGE_SLUG}
_PAGE = {"type": "object", "required": ["components"], "additionalProperties": False,
         "properties": {"title": {"type": "string", "minLength": 1, "maxLength": 100},
                        "components": {"type": "array", "minItems": 1, "maxItems": 30, "items": {
                            "type": "object", "required": ["kind", "name"], "additionalProperties": False,
                            "properties": {"kind": {"enum": ["job", "heartbeat", "alert", "metric"]},
                                           "name": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,200}$"},
                                           "label": {"type": "string", "minLength": 1, "maxLength": 100}}}},
                        "maintenance": {"type": "array", "maxItems": 20}}}
_NOTE_TEXT = {"type": "string", "minLength": 1, "maxLength": 1000, "pattern": "\\S"}
_NOTICE = {"type": "object", "required": ["start", "end", "text"], "additionalProperties": False,
           "properties": {"start": {"type": ["number", "string"]}, "end": {"type": ["number", "string"]}, "text": _NOTE_TEXT}}
_ANSWER = _json({"type": "object"})  # Status pages (#26): the public page and feed (no token), and an admin's changes.
_STATUS_PATHS = {
    "/status/{slug}": {"get": {
        "summary": "A status page, server-rendered HTML (no token; what the page lists only)", "security": [{}],
        "parameters": [_SLUG_PARAM],
        "responses": {"200": {"description": "the page", "content": {"text/html; charset=utf-8": {"schema": {"type": "string"}}}},
                      **_errors(404, 421)}}},
    "/status/{slug}/feed.atom": {"get": {
        "summary": "A status page's incidents as an Atom feed (no token)", "security": [{}],
        "parameters": [_SLUG_PARAM],
        "responses": {"200": {"description": "the feed", "content": {
            "application/atom+xml; charset=utf-8": {"schema": {"type": "string"}}}}, **_errors(404, 421)}}},
    "/api/status-pages": {"get": {"summary": "Every status page (admin)", "responses": {"200": {
        "description": "the pages", **_json({"type": "object", "required": ["pages"]})}, **_errors(401)}}},
    "/api/status-pages/{slug}": {
        "put": {"summary": "Make or replace a status page (admin)", "parameters": [_SLUG_PARAM],
                "requestBody": {"required": True, **_json(_PAGE)},
                "responses": {"200": {"description": "replaced", **_ANSWER}, "201": {"description": "made", **_ANSWER},
                              **_errors(400, 401, 404, 409, 413, 415, 429, 503)}},
        "delete": {"summary": "Delete a status page made over the API (admin)", "parameters": [_SLUG_PARAM],
                   "responses": {"200": {"description": "deleted", **_ANSWER}, **_errors(401, 404, 409, 429, 503)}}},
    "/api/status-pages/{slug}/maintenance": {"post": {
        "summary": "Add a maintenance notice to a status page (admin)", "parameters": [_SLUG_PARAM],
        "requestBody": {"required": True, **_json(_NOTICE)},
        "responses": {"201": {"description": "added", **_ANSWER}, **_errors(400, 401, 404, 413, 415, 429, 503)}}},
    "/api/status-pages/{slug}/incidents/{incident}/notes": {"post": {
        "summary": "Add a note to an incident's timeline (admin)",
        "parameters": [_SLUG_PARAM, {"name": "incident", "in": "path", "required": True,
                                     "schema": {"type": "integer", "minimum": 1, "maximum": 999999999}}],
        "requestBody": {"required": True, **_json({"type": "object", "required": ["text"], "additionalProperties": False,
                                                  "properties": {"text": _NOTE_TEXT}})},
        "responses": {"201": {"description": "added", **_ANSWER}, **_errors(400, 401, 404, 413, 415, 429, 503)}}},
}


def openapi_spec(version: str) -> dict:
    """The OpenAPI document for this server version: where a token is asked for (401), a token
    without the route's scope gets 403 too."""
    spec = _spec(version)
    spec["paths"].update(copy.deepcopy(_TOKEN_PATHS))
    spec["paths"].update(copy.deepcopy(_BADGE_PATH))
    spec["paths"].update(copy.deepcopy(_STATUS_PATHS))
    spec["paths"].update(copy.deepcopy(_SHARE_PATHS))
    for path in spec["paths"].values():
        for operation in path.values():
            if "401" in operation["responses"]:
                operation["responses"].setdefault("403", _ERROR)
    return spec


def _spec(version: str) -> dict:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "sse-dashboard",
            "version": version,
            "description": "A live monitoring dashboard. Once tokens are in use (--token, or a token made "
                           "with 'sse-dashboard token add'), every /api path needs 'Authorization: Bearer "
                           "TOKEN' (or the cookie set by /?token=TOKEN) with the route's scope: read, write "
                           "or admin (README, Security).",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Error": {
                    "description": "what is wrong, for a person to read",
                    **_json({"type": "object", "required": ["error"],
                             "properties": {"error": {"type": "string"}}, "additionalProperties": False}),
                },
            },
        },
        "paths": {
            "/api/metrics": {
                "get": {
                    "summary": "The latest snapshot (refreshed once per interval)",
                    "responses": {"200": {"description": "snapshot", **_json(SNAPSHOT)}, **_errors(401)},
                },
                "post": {
                    "summary": "Add to counters and set gauges; all or nothing",
                    "requestBody": {"required": True, **_json(METRICS_UPDATE)},
                    "responses": {
                        "200": {"description": "stored: the values now held for the names it touched "
                                               "(counter totals, not deltas)",
                                **_json({"type": "object", "required": ["status", "counters", "gauges"],
                                         "properties": {"status": {"const": "ok"},
                                                        "counters": {"type": "object"},
                                                        "gauges": {"type": "object"}}})},
                        **_errors(400, 401, 403, 413, 415, 429, 503),
                    },
                },
            },
            **{"/api/metrics/%s/{name}" % kind: {
                "delete": {
                    "summary": "Delete a %s and its history (live and stored)" % kind[:-1],
                    "parameters": [{"name": "name", "in": "path", "required": True, "schema": NAME}],
                    "responses": {
                        "200": {"description": "deleted", **_json({
                            "type": "object", "required": ["status", "kind", "name"],
                            "properties": {"status": {"const": "deleted"}, "kind": {"const": kind},
                                           "name": {"type": "string"}}})},
                        **_errors(401, 403, 404, 429, 503),
                    },
                },
            } for kind in ("counters", "gauges")},
            "/api/metrics/stream": {
                "get": {
                    "summary": "Server-sent events: 'metrics' frames each interval, 'log' frames as events are posted",
                    "parameters": [_query("lastEventId", {"type": "integer", "minimum": 0, "maximum": MAX_WHOLE},
                                          "resume after this event id (or the Last-Event-ID header)"),
                                   *_FILTERS,
                                   _query("metrics", {"type": "string", "enum": ["0", "1", "true", "false"]},
                                          "0: events only, no 'metrics' frames"),
                                   _query("names", {"type": "string", "enum": ["type", "log"]},
                                          "type (default): a typed event is 'event: <type>'; log: every event "
                                          "is 'event: log' (one listener for all, as the page uses)"),
                                   _query("fleet", {"type": "string", "enum": ["0", "1", "true", "false"]},
                                          "1: 'fleet' frames too, the GET /api/fleet listing each time it is "
                                          "new (404 without --fleet)")],
                    "responses": {
                        "200": {"description": "an endless text/event-stream",
                                "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                        **_errors(401, 404, 503),
                    },
                },
            },
            "/api/metrics/history": {
                "get": {
                    "summary": "Recent samples as columns",
                    "parameters": [
                        _query("seconds", {"type": "integer", "minimum": 1, "maximum": MAX_WHOLE, "default": 300}, "how far back"),
                        _query("from", {"type": "number"}, "start, unix seconds (an export: rows, streamed)"),
                        _query("to", {"type": "number"}, "end, unix seconds (default now)"),
                        _query("points", {"type": "integer", "minimum": 1, "maximum": 10000, "default": 1000},
                               "at most this many points a series: a longer window comes as buckets' averages "
                               "with their min and max"),
                        _query("names", {"type": "string"}, "only these series, comma-separated (at most 100), "
                               "e.g. system.cpu_percent,gauges.depth"),
                        _FORMAT,
                    ],
                    "responses": {
                        "200": {
                            "description": "ts plus one list per series",
                            "content": {
                                "application/json": {"schema": {"anyOf": [
                                    {"type": "object", "required": ["ts", "series", "interval"],
                                     "properties": {
                                         "ts": {"type": "array", "items": {"type": "number"}},
                                         "series": {"type": "object", "additionalProperties": {
                                             "type": "array", "items": NUMBER_OR_NULL}},
                                         "interval": {"type": "number",
                                                      "description": "seconds between the points returned"},
                                         "resolution": {"type": "string", "enum": ["full", "rollup"]},
                                         "min": {"type": "object", "description": "rollups and downsampled "
                                                 "answers: each bucket's minimum, aligned with ts (series holds "
                                                 "the average)"},
                                         "max": {"type": "object", "description": "each bucket's maximum"},
                                         "downsampled": {"type": "boolean",
                                                         "description": "more points than `points` were bucketed"},
                                     }},
                                    {"type": "object", "required": ["rows"],
                                     "properties": {"rows": {"type": "array", "items": {
                                         "type": "object", "required": ["ts", "series"]}}}},
                                ]}},
                                "text/csv": {"schema": {"type": "string"}},
                            },
                        },
                        **_errors(400, 401),
                    },
                },
            },
            "/api/events": {
                "get": {
                    "summary": "Buffered events, oldest first",
                    "parameters": [
                        _query("since", {"type": "integer", "minimum": 0, "maximum": MAX_WHOLE}, "a cursor: the oldest events with a larger id, up to `limit`; "
                               "continue from `next` while `more` is true"),
                        _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_WHOLE}, "at most this many (without `since`: the newest)"),
                        _query("level", {"type": "string", "enum": ["info", "warning", "error"]}, "only this level"),
                        *_FILTERS,
                        _query("from", {"type": "number"}, "only events at or after this time (unix seconds)"),
                        _query("to", {"type": "number"}, "only events at or before this time"),
                        _FORMAT,
                    ],
                    "responses": {
                        "200": {
                            "description": "events",
                            "content": {
                                "application/json": {"schema": {
                                    "type": "object", "required": ["events"],
                                    "properties": {"events": {"type": "array", "items": EVENT},
                                                   "more": {"type": "boolean", "description":
                                                            "more events remain after (with since) or before "
                                                            "(without) these"},
                                                   "next": {"type": "integer",
                                                            "description": "the cursor for the next page (since=next)"},
                                                   "last_id": {"type": "integer"}, "epoch": {"type": "string"}},
                                }},
                                "text/csv": {"schema": {"type": "string"}},
                            },
                        },
                        **_errors(400, 401),
                    },
                },
                "post": {
                    "summary": "Post an event; it is pushed to every open stream at once",
                    "requestBody": {"required": True, **_json(NEW_EVENT)},
                    "responses": {"201": {"description": "the stored (committed) event", **_json(EVENT)},
                                  **_errors(400, 401, 403, 413, 415, 429, 503)},
                },
            },
            "/api/health": {
                "get": {
                    "summary": "Liveness, with the number of stream clients",
                    "responses": {
                        "200": {"description": "ok", **_json({
                            "type": "object", "required": ["status", "clients", "uptime", "version"],
                            "properties": {"status": {"const": "ok"}, "clients": {"type": "integer"},
                                           "uptime": {"type": "number"}, "version": {"type": "string"},
                                           "storage": {"type": "string"},
                                           "remote_write": {"type": "array", "items": REMOTE_WRITE}},
                        })},
                        **_errors(401),
                    },
                },
            },
            "/api/alerts": {
                "get": {
                    "summary": "Alert rules, and those firing now",
                    "responses": {
                        "200": {"description": "alerts", **_json({
                            "type": "object", "required": ["alerts", "rules"],
                            "properties": {"alerts": {"type": "array", "items": {"type": "object", "required": [
                                "rule", "level", "metric", "value", "threshold", "since"]}},
                                "heartbeats": {"type": "array", "items": {"type": "object"}},
                                "rules": {"type": "array", "items": {
                                    "type": "object", "required": ["name", "metric", "seen"],
                                    "properties": {"seen": {"type": "boolean", "description":
                                                            "whether its metric has had a value yet"}}}}},
                        })},
                        **_errors(401),
                    },
                },
            },
            "/api/alerts/test": {
                "post": {
                    "summary": "Send a test notification to every notify target; each one's result",
                    "responses": {
                        "200": {"description": "every target took it", **_json(_TEST_RESULTS)},
                        "202": {"description": "none failed; one has not answered within 2 s", **_json(_TEST_RESULTS)},
                        "502": {"description": "a target did not take it", **_json(_TEST_RESULTS)},
                        **_errors(400, 401, 403, 429),
                    },
                },
            },
            "/mcp": {
                "post": {
                    "summary": "The Model Context Protocol (stateless, JSON responses): server/discover "
                               "(2026-07-28) or initialize (2025-11-25 and older), tools/list, tools/call",
                    "requestBody": {"required": True, **_json({"type": "object", "description":
                                                               "one JSON-RPC 2.0 request or notification"})},
                    "responses": {
                        "200": {"description": "a JSON-RPC response", **_json({"type": "object"})},
                        "202": {"description": "a notification, accepted (no body)"},
                        "400": {"description": "a JSON-RPC error (parse, envelope, headers, version)",
                                **_json({"type": "object"})},
                        "404": {"description": "a JSON-RPC error: no such method", **_json({"type": "object"})},
                        **_errors(401, 403, 406, 413, 415, 429),
                    },
                },
            },
            "/api/push/{name}": {
                method: {
                    "summary": "A heartbeat (push monitor): job NAME ran. GET works too, for tools that only "
                               "take a URL (with --token, ?token= is accepted here); a POST has no body (415)",
                    "parameters": [{"name": "name", "in": "path", "required": True, "schema": HEARTBEAT_NAME}] + [
                        _query(field, schema, description) for field, (schema, description) in BEAT_FIELDS.items()],
                    "responses": {"200": {"description": "recorded", **_json({
                        "type": "object", "required": ["ok", "name", "status"],
                        "properties": {"ok": {"const": True}}})},
                        **_errors(*((400, 401, 403, 413, 415, 429, 503) if method == "post" else
                                    (400, 401, 403, 429, 503)))},
                } for method in ("get", "post")
            } | {
                "delete": {
                    "summary": "Forget a heartbeat",
                    "parameters": [{"name": "name", "in": "path", "required": True, "schema": HEARTBEAT_NAME}],
                    "responses": {"200": {"description": "deleted", **_json({"type": "object"})},
                                  **_errors(401, 403, 404, 429, 503)},
                },
            },
            "/ping/{uuid}": _ping("Healthchecks' success signal for the job with this UUID (HEAD too; a POST "
                                  "body is kept as the run's output, its first 10,000 bytes)",
                                  [{"name": "uuid", "in": "path", "required": True, "schema": UUID}]),
            **{"/ping/{uuid}/%s" % signal: _ping(summary, [{"name": "uuid", "in": "path", "required": True,
                                                            "schema": UUID}])
               for signal, summary in (("start", "The job with this UUID started"),
                                       ("fail", "The job with this UUID failed (/ping/UUID/EXIT-STATUS, "
                                                "0-255, says it with the exit status: 0 is a success)"),
                                       ("log", "A line of output for the job's log: its state does not change"))},
            "/ping/{key}/{slug}": _ping("Success, for the job with this slug (key: this dashboard's ping key, "
                                        "GET /api/jobs; /start, /fail, /log and /EXIT-STATUS may follow)",
                                        [{"name": "key", "in": "path", "required": True,
                                          "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,100}$"}},
                                         {"name": "slug", "in": "path", "required": True, "schema": SLUG}], True),
            "/api/jobs": {
                "get": {"summary": "Every job monitor and this dashboard's ping key",
                        "responses": {"200": {"description": "jobs", **_json({
                            "type": "object", "required": ["jobs"],  # ping_key: for a token that may write only
                            "properties": {"jobs": {"type": "array", "items": JOB}}})}, **_errors(401)}},
                "post": {"summary": "Make a job monitor, or change the one with this slug",
                         "requestBody": {"required": True, **_json(JOB_SPEC)},
                         "responses": {"200": {"description": "changed", **_json(JOB)},
                                       "201": {"description": "made", **_json(JOB)},
                                       **_errors(400, 401, 403, 413, 415, 429, 503)}},
            },
            "/api/jobs/{job}": {
                "get": {"summary": "One job", "parameters": [_JOB_PARAM],
                        "responses": {"200": {"description": "the job", **_json(JOB)}, **_errors(401, 404)}},
                "delete": {"summary": "Delete a job and its runs", "parameters": [_JOB_PARAM],
                           "responses": {"200": {"description": "deleted", **_json({"type": "object"})},
                                         **_errors(401, 403, 404, 429, 503)}},
            },
            "/api/jobs/{job}/runs": {
                "get": {"summary": "A job's runs, newest first, with their output",
                        "parameters": [_JOB_PARAM,
                                       _query("limit", {"type": "integer", "minimum": 1, "maximum": 100}, "at most"),
                                       _query("before", {"type": "integer", "minimum": 1, "maximum": MAX_WHOLE},
                                              "runs older than this run number (the answer's next)")],
                        "responses": {"200": {"description": "runs", **_json({
                            "type": "object", "required": ["runs", "next"]})}, **_errors(400, 401, 404)}},
            },
            **{"/api/jobs/{job}/%s" % action: {"post": {
                "summary": summary, "parameters": [_JOB_PARAM],
                "responses": {"200": {"description": "the job now", **_json(JOB)},
                              **_errors(401, 403, 404, 429, 503)}}}
               for action, summary in (("pause", "Pause a job: nothing is expected, what fires resolves"),
                                       ("resume", "Resume a job: runs are expected from now on"))},
            "/api/jobs/{job}/maintenance": {"post": {
                "summary": "A maintenance window: nothing is expected for `seconds` (0 ends it)",
                "parameters": [_JOB_PARAM],
                "requestBody": {"required": True, **_json({
                    "type": "object", "required": ["seconds"], "additionalProperties": False,
                    "properties": {"seconds": {"type": "number", "minimum": 0, "maximum": 366 * 86400}}})},
                "responses": {"200": {"description": "the job now", **_json(JOB)},
                              **_errors(400, 401, 403, 404, 413, 415, 429, 503)}}},
            "/metrics/job/{job}": {
                **{method: {
                    "summary": summary + " (Pushgateway-compatible; more grouping labels may follow as "
                               "/LABEL/VALUE, a name ending in @base64 takes URL-safe base64)",
                    "parameters": [{"name": "job", "in": "path", "required": True,
                                    "schema": {"type": "string", "minLength": 1}}],
                    "requestBody": {"required": True, "content": {
                        "text/plain": {"schema": {"type": "string"}},
                        "application/openmetrics-text": {"schema": {"type": "string"}}}},
                    "responses": {"200": {"description": "stored", **_json({
                        "type": "object", "required": ["status", "group", "samples"]})},
                        **_errors(400, 401, 403, 413, 415, 429, 503)},
                } for method, summary in (("put", "Replace the group's metrics"),
                                          ("post", "Replace the metric families sent, keep the group's others"))},
                "delete": {
                    "summary": "Delete the group and its metrics",
                    "parameters": [{"name": "job", "in": "path", "required": True,
                                    "schema": {"type": "string", "minLength": 1}}],
                    "responses": {"200": {"description": "deleted (or there was none)", **_json({
                        "type": "object", "required": ["status", "group"]})}, **_errors(400, 401, 403, 429, 503)},
                },
            },
            **{path: {"post": _otlp(signal, field)} for path, signal, field in (
                ("/v1/metrics", "Metrics", "rejectedDataPoints"), ("/v1/logs", "Logs", "rejectedLogRecords"))},
            "/metrics": {
                "get": {
                    "summary": "Prometheus text exposition (format 0.0.4)",
                    "responses": {
                        "200": {"description": "metrics", "content": {
                            "text/plain; version=0.0.4; charset=utf-8": {"schema": {"type": "string"}}}},
                        **_errors(401),
                    },
                },
            },
            "/api/fleet": {
                "get": {
                    "summary": "The fleet: every dashboard the --fleet engine holds, those in trouble first",
                    "responses": {"200": {"description": "the listing, as the server last asked the engine",
                                          **_json(FLEET)}, **_errors(401, 404)},
                },
            },
            "/api/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI 3.1", **_json({"type": "object"})}, **_errors(401)},
                },
            },
        },
        "security": [{}, {"bearer": []}],
    }
