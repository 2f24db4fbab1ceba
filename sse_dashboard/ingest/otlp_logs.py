"""OTLP logs into the event log: ``POST /v1/logs``'s meaning.

One concept: each ``LogRecord`` of an ``ExportLogsServiceRequest`` (as ``otlp.decode_request``
gives it) becomes one typed event:
- severity -> level (TRACE..INFO: info, WARN: warning, ERROR and FATAL: error; without a number,
  the severity text says it);
- body -> message (text as it is, anything else as JSON; cut at the event log's limit);
- ``service.name`` -> source; ``eventName`` (or the ``type_attribute``, ``event.name`` by
  default) -> the event type, so ``?types=`` filters them;
- ``data``: the attributes, ``trace_id`` and ``span_id`` (hex), ``severity_text``,
  ``severity_number``, ``time_unix_nano`` and the scope's name.

Invariants:
- a request is read whole first: a record that cannot be an event is rejected (partial success,
  counted, with why), the others are posted in one commit (``EventLog.post_many``), all or
  none: a request refused as a whole (a 400, storage's 503) posts nothing;
- at most ``MAX_OTLP_LOG_RECORDS`` records a request, ``MAX_OTLP_LOG_DATA_CHARS`` of data each.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sse_dashboard.events import MAX_MESSAGE_CHARS, MAX_SOURCE_CHARS, EventLog, check_type, is_unicode_text
from sse_dashboard.ingest.otlp import OtlpError, any_value, attributes, objects, read_int
from sse_dashboard.ingest.otlp_metrics import ExportResult

__all__ = ["OtlpLogs", "read_logs", "MAX_OTLP_LOG_RECORDS", "MAX_OTLP_LOG_DATA_CHARS", "DEFAULT_TYPE_ATTRIBUTE",
           "level_of"]

MAX_OTLP_LOG_RECORDS = 1000            # records in one request (an SDK's batch is 512)
MAX_OTLP_LOG_DATA_CHARS = 64 * 1024    # one record's data as JSON, as much as POST /api/events takes
DEFAULT_TYPE_ATTRIBUTE = "event.name"
DEFAULT_LOG_SOURCE = "otlp"
_ID_DIGITS = {"traceId": 32, "spanId": 16}  # hex digits of a trace id and a span id
_VISIBLE = re.compile(r"\S")


def level_of(number: Any, text: Any) -> str:
    """The event level of a severity: ``SeverityNumber`` 1-12 info, 13-16 warning, 17-24 error."""
    if isinstance(number, int) and not isinstance(number, bool) and number > 0:
        return "info" if number <= 12 else "warning" if number <= 16 else "error"
    word = text.lower() if isinstance(text, str) else ""
    if word.startswith(("err", "fatal", "crit", "alert", "emerg")):
        return "error"
    return "warning" if word.startswith("warn") else "info"


def _message(body: Any, fallback: str) -> str:
    text = body if isinstance(body, str) else (
        "" if body is None else json.dumps(body, separators=(",", ":"), ensure_ascii=False))
    if not _VISIBLE.search(text):
        text = fallback
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[:MAX_MESSAGE_CHARS - 1] + "\u2026"
    return text


class _Record:
    """One record read: what ``EventLog.post`` takes."""

    __slots__ = ("level", "message", "source", "data", "type")

    def __init__(self, level: str, message: str, source: str, data: dict, type: str | None) -> None:
        self.level, self.message, self.source, self.data, self.type = level, message, source, data, type


def read_logs(request: dict, type_attribute: str = DEFAULT_TYPE_ATTRIBUTE) -> tuple[list, ExportResult]:
    """The records of ``request`` as events to post, and the count of those rejected and why;
    ``OtlpError`` when the request's shape is wrong."""
    records: list[_Record] = []
    result = ExportResult()
    for resource in objects(request.get("resourceLogs"), "resourceLogs"):
        about = resource.get("resource")
        resource_attrs = attributes(about.get("attributes")) if isinstance(about, dict) else {}
        service = resource_attrs.get("service.name")
        source = service[:MAX_SOURCE_CHARS] if isinstance(service, str) and _VISIBLE.search(service) else \
            DEFAULT_LOG_SOURCE
        for scope in objects(resource.get("scopeLogs"), "resourceLogs[].scopeLogs"):
            about = scope.get("scope")
            scope_name = about.get("name") if isinstance(about, dict) else None
            for record in objects(scope.get("logRecords"), "scopeLogs[].logRecords"):
                if len(records) + result.rejected >= MAX_OTLP_LOG_RECORDS:
                    _reject(result, "at most %d log records in one request" % MAX_OTLP_LOG_RECORDS)
                    continue
                try:
                    records.append(_read_record(record, source, scope_name, type_attribute))
                except (OtlpError, ValueError) as exc:
                    _reject(result, str(exc))
    result.accepted = len(records)
    return records, result


def _reject(result: ExportResult, why: str) -> None:
    result.rejected += 1
    if len(result.errors) < 20:
        result.errors.append(why)


def _read_record(record: dict, source: str, scope_name: Any, type_attribute: str) -> _Record:
    attrs = attributes(record.get("attributes"))
    number = read_int(record.get("severityNumber"), "severityNumber", 0)
    text = record.get("severityText")
    event_type = record.get("eventName") or attrs.get(type_attribute)
    if event_type is not None:
        check_type(event_type)  # ValueError naming the rule
    data: dict[str, Any] = {"attributes": attrs} if attrs else {}
    for key, out in (("traceId", "trace_id"), ("spanId", "span_id")):
        value = record.get(key)
        if value:  # empty: not in a trace
            if not isinstance(value, str) or not re.fullmatch("[0-9a-fA-F]{%d}" % _ID_DIGITS[key], value):
                raise OtlpError("%s must be %d hex digits" % (key, _ID_DIGITS[key]))
            data[out] = value.lower()
    if isinstance(text, str) and text:
        data["severity_text"] = text[:40]
    if number:
        data["severity_number"] = number
    when = read_int(record.get("timeUnixNano"), "timeUnixNano", 0) or read_int(
        record.get("observedTimeUnixNano"), "observedTimeUnixNano", 0)
    if when:
        data["time_unix_nano"] = str(when)
    if isinstance(scope_name, str) and scope_name:
        data["scope"] = scope_name[:200]
    encoded = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    if len(encoded) > MAX_OTLP_LOG_DATA_CHARS:
        raise OtlpError("a log record's attributes must be at most %d characters as JSON" % MAX_OTLP_LOG_DATA_CHARS)
    fallback = event_type or (text if isinstance(text, str) and text else "(a log record without a body)")
    message = _message(any_value(record.get("body")), fallback)
    if not all(is_unicode_text(text) for text in (encoded, message, source)):
        raise OtlpError("a log record must be valid Unicode text (it has a lone surrogate such as \\ud800)")
    return _Record(level_of(number, text), message, source, data, event_type)


class OtlpLogs:
    """Logs exports into ``events``; ``type_attribute`` names the attribute that types an event."""

    def __init__(self, events: EventLog, type_attribute: str = DEFAULT_TYPE_ATTRIBUTE) -> None:
        self.events = events
        self.type_attribute = type_attribute

    def export(self, request: dict) -> ExportResult:
        records, result = read_logs(request, self.type_attribute)
        # One commit for the batch: a refused request (storage's 503) leaves no record of it behind.
        self.events.post_many([{"level": r.level, "message": r.message, "source": r.source, "data": r.data or None,
                                "type": r.type} for r in records])
        return result
