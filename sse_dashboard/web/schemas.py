"""The JSON shapes of the dashboard's data, as the OpenAPI document (``openapi``) states them.

One concept: what a snapshot, an event, a job, a heartbeat's fields, a remote writer's state and
the fleet listing look like on the wire, as JSON Schema. ``openapi`` builds the paths from these;
schemathesis holds the running server to both.
"""

from __future__ import annotations

import re

from sse_dashboard.events import DASHBOARD_TYPE_PREFIXES, RESERVED_TYPES
from sse_dashboard.alerting.heartbeats import MAX_EVERY_S, MAX_MESSAGE_CHARS, MAX_PING_MS

__all__ = ["NAME", "DASHBOARD_TYPES", "TYPE", "HEARTBEAT_NAME", "NUMBER_OR_NULL", "BEAT_FIELDS", "MAX_WHOLE", "UUID", "SLUG", "TEXT", "JOB", "REMOTE_WRITE", "FLEET_ROW", "FLEET", "JOB_SPEC", "SNAPSHOT", "EVENT", "NEW_EVENT", "METRICS_UPDATE"]

NAME = {"type": "string", "pattern": "^[a-zA-Z_:][a-zA-Z0-9_:]*$", "maxLength": 100,
         "description": "a metric name; labels may follow in Prometheus notation, name{key=\"value\"} "
                        "(at most 10, 250 characters in all)"}
# A type a client may post: not a name the stream uses itself, nor one of the dashboard's own
# (alert.firing, notify.failing, ...: events.DASHBOARD_TYPE_PREFIXES).
DASHBOARD_TYPES = "^(%s)" % "|".join(re.escape(prefix) for prefix in DASHBOARD_TYPE_PREFIXES)
TYPE = {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,100}$",
         "not": {"anyOf": [{"enum": list(RESERVED_TYPES)}, {"pattern": DASHBOARD_TYPES}]}}
HEARTBEAT_NAME = {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,100}$"}
NUMBER_OR_NULL = {"type": ["number", "null"]}
# What a heartbeat carries, all in its URL (a POST carries no body: 415).
BEAT_FIELDS = {
    "status": ({"type": "string", "enum": ["up", "down"], "default": "up"}, "down fires an alert at once"),
    "msg": ({"type": "string", "maxLength": MAX_MESSAGE_CHARS}, "a message shown with it"),
    "ping": ({"type": "number", "minimum": 0, "maximum": MAX_PING_MS},
             "how long the job took, in milliseconds (at most 366 days)"),
    "every": ({"type": "number", "minimum": 1, "maximum": MAX_EVERY_S},
              "seconds: no heartbeat for longer fires an alert"),
}
MAX_WHOLE = 10 ** 15 - 1  # query numbers: at most 15 digits
UUID = {"type": "string", "format": "uuid", "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"}
SLUG = {"type": "string", "pattern": "^[a-z0-9_-]{1,100}$"}
TEXT = {"text/plain; charset=utf-8": {"schema": {"type": "string"}}}
JOB = {"type": "object", "required": ["id", "slug", "name", "status", "schedule", "grace", "next_expected"],
        "properties": {"status": {"enum": ["new", "up", "started", "late", "down", "paused", "maintenance"]}}}
# One remote write receiver's delivery (#25), in samples (a series at a tick); no secret in it.
REMOTE_WRITE = {"type": "object", "required": ["url", "sent", "queued", "dropped", "last_error", "lag_s"],
                 "properties": {"url": {"type": "string"}, "instance": {"type": "string"},
                                "sent": {"type": "integer"}, "queued": {"type": "integer"},
                                "dropped": {"type": "integer"}, "requests": {"type": "integer"},
                                "drop_reasons": {"type": "object", "additionalProperties": {"type": "integer"}},
                                "last_error": {"type": ["string", "null"]}, "lag_s": {"type": "number"},
                                # where the unsent ticks wait: the data folder's queue file, or memory
                                "queue": {"enum": ["disk", "memory"]}, "queued_ticks": {"type": "integer"},
                                "queued_bytes": {"type": "integer"}}}
# The fleet listing (#25): the engine's state, then a row per instance (fleet.view).
FLEET_ROW = {"type": "object", "required": ["instance", "url", "last_seen", "age_s", "stale", "cpu_percent",
                                             "memory_percent", "disk_percent", "alerts_firing", "jobs_down",
                                             "cpu_history"],
              "properties": {"instance": {"type": "string"}, "url": {"type": ["string", "null"]},
                             "version": {"type": ["string", "null"]}, "last_seen": {"type": "number"},
                             "age_s": {"type": "number", "minimum": 0}, "stale": {"type": "boolean"},
                             "cpu_percent": NUMBER_OR_NULL, "memory_percent": NUMBER_OR_NULL,
                             "disk_percent": NUMBER_OR_NULL, "alerts_firing": {"type": "integer"},
                             "jobs_down": {"type": "integer"},
                             "cpu_history": {"type": "array", "items": NUMBER_OR_NULL}}}
FLEET = {"type": "object", "required": ["engine", "as_of", "stale_after_s", "instances", "truncated"],
          "properties": {"engine": {"type": "object", "required": ["url", "state", "error", "checked_at"],
                                    "properties": {"url": {"type": "string"},
                                                   "state": {"enum": ["starting", "ok", "down", "error"]},
                                                   "error": {"type": ["string", "null"]},
                                                   "checked_at": NUMBER_OR_NULL, "took_s": NUMBER_OR_NULL}},
                         "as_of": NUMBER_OR_NULL, "stale_after_s": {"type": "number"},
                         "max_instances": {"type": "integer"}, "history_window_s": {"type": "number"},
                         "history_points": {"type": "integer"},
                         "instances": {"type": "array", "items": FLEET_ROW}, "truncated": {"type": "boolean"}}}
JOB_SPEC = {"type": "object", "required": ["slug", "schedule"], "additionalProperties": False, "properties": {
    "slug": SLUG, "name": {"type": "string", "minLength": 1, "maxLength": 100},
    "schedule": {"oneOf": [{"type": "number", "minimum": 1, "maximum": 366 * 86400},
                           {"type": "string", "description": "a 5-field cron expression, or seconds"}]},
    "tz": {"type": "string", "description": "a time zone name for cron (default UTC)"},
    "grace": {"type": "number", "minimum": 0, "maximum": 366 * 86400},
    "start_grace": {"type": "number", "minimum": 0, "maximum": 366 * 86400},
    "min_runtime": {"type": "number", "minimum": 0, "maximum": 366 * 86400},
    "too_often": {"type": "boolean"}, "fail_after": {"type": "integer", "minimum": 1, "maximum": 100},
    "level": {"enum": ["warning", "error"]}, "notify": {"type": "array", "items": {"type": "string"}}}}



SNAPSHOT = {
    "type": "object",
    "required": ["seq", "ts", "interval", "system", "counters", "gauges", "server"],
    "properties": {
        "boot_id": {"type": "string"},
        "events_epoch": {"type": "string"},
        "alerts": {"type": "array", "items": {"type": "object"}},
        "alerts_waiting": {"type": "array", "items": {"type": "object"},
                           "description": "rules whose metric has never had a value (absent when none)"},
        "demo": {"const": True, "description": "present when started with --demo: synthetic data"},
        "fleet": {"const": "/fleet", "description": "present when started with --fleet: the fleet page"},
        "identity": {"type": "object", "description": "present with --remote-write: this dashboard's page and "
                     "version, sent as labels of sse_dashboard_info",
                     "properties": {"url": {"type": "string"}, "version": {"type": "string"}}},
        "heartbeats": {"type": "array", "items": {"type": "object", "required": ["name", "status", "last_seen"]}},
        "remote_write": {"type": "array", "items": REMOTE_WRITE,
                         "description": "with --remote-write: each receiver's state (absent without one)"},
        "seq": {"type": "integer", "minimum": 1},
        "ts": {"type": "number"},
        "interval": {"type": "number", "exclusiveMinimum": 0},
        "system": {
            "type": "object",
            "required": ["source"],
            "properties": {
                "source": {"type": "string"},
                "error": {"type": "string"},
                "cpu_percent": NUMBER_OR_NULL,
                "cpu_per_core": {"type": ["array", "null"], "items": NUMBER_OR_NULL},
                "memory_percent": NUMBER_OR_NULL,
                "disk_percent": dict(NUMBER_OR_NULL, description="used / (used + available) * 100 for the "
                                     "filesystem at disk_path, as df and psutil report it"),
            },
        },
        "counters": {"type": "object", "additionalProperties": {"type": "number"}},
        "gauges": {"type": "object", "additionalProperties": {"type": "number"}},
        "server": {
            "type": "object",
            "required": ["clients", "dropped", "uptime", "rss_bytes"],
            "properties": {
                "clients": {"type": "integer", "minimum": 0},
                "dropped": {"type": "integer", "minimum": 0},
                "uptime": {"type": "number", "minimum": 0},
                "rss_bytes": {"type": ["integer", "null"]},
                "statsd_lines": {"type": "integer", "description": "with --statsd: lines received"},
                "statsd_malformed": {"type": "integer", "description": "with --statsd: lines skipped as malformed"},
                "statsd_dropped": {"type": "integer", "description": "with --statsd: lines refused by the limits"},
                "statsd_tcp_closed": {"type": "integer",
                                      "description": "with --statsd: TCP senders closed to make room for a new one"},
            },
        },
    },
}

EVENT = {
    "type": "object",
    "required": ["id", "ts", "level", "source", "message", "data"],
    "properties": {
        "id": {"type": "integer", "minimum": 1},
        "ts": {"type": "number"},
        "level": {"type": "string", "enum": ["info", "warning", "error"]},
        "type": {"type": ["string", "null"]},
        "source": {"type": "string"},
        "message": {"type": "string"},
        "data": {},
    },
}

NEW_EVENT = {
    "type": "object",
    "required": ["message"],
    "additionalProperties": False,
    "properties": {
        "message": {"type": "string", "minLength": 1, "maxLength": 4096, "pattern": "\\S"},
        "level": {"type": "string", "enum": ["info", "warning", "error"], "default": "info"},
        "source": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": "\\S", "default": "app"},
        "data": {"description": "any JSON value"},
        "type": {"anyOf": [TYPE, {"type": "null"}],  # null: untyped, as when it is left out
                 "description": "e.g. record.created: streams send it as 'event: record.created'. "
                                "alert.* and notify.* are the dashboard's own (400); null or absent: untyped"},
    },
}

METRICS_UPDATE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "counters": {
            "type": "object", "propertyNames": NAME, "maxProperties": 50,
            "additionalProperties": {"type": "number", "minimum": 0, "maximum": 1e15},
            "description": "name: amount to add (never negative: counters only go up)",
        },
        "gauges": {
            "type": "object", "propertyNames": NAME, "maxProperties": 50,
            "additionalProperties": {"type": "number"},
            "description": "name: new value",
        },
    },
}
