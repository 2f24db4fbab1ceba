"""OTLP/HTTP, the OpenTelemetry protocol: what both signals share.

One concept: turning an OTLP request body into the plain dict of the specification's JSON
mapping (lowerCamelCase keys, 64-bit integers as strings or numbers, trace and span ids in
hex), whichever encoding it came in, and reading the values inside it: ``AnyValue``,
attributes, numbers, and the names OpenTelemetry gives metrics and labels as Prometheus
writes them (the OpenTelemetry "Prometheus and OpenMetrics compatibility" specification).
``otlp_metrics`` and ``otlp_logs`` take the dict from here; there is one code path after it.

Invariants:
- JSON is read with the standard library; protobuf needs the optional ``[otlp]`` extra
  (``opentelemetry-proto``'s own message classes) and, without it, ``OtlpUnsupported`` says so;
- a body either decodes whole or raises ``OtlpError`` (a 400 for the sender): nothing of it
  is stored before that;
- numbers read from a body are finite, integers exact (``int64``/``fixed64`` as strings).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from typing import Any

__all__ = ["OtlpError", "OtlpUnsupported", "MAX_OTLP_BYTES", "decode_request",
           "encode_response", "encode_status", "GRPC_CODES", "any_value", "attributes", "label_text", "objects", "read_int", "read_double",
           "metric_base_name", "label_name", "SIGNALS"]

MAX_OTLP_BYTES = 4 * 1024 * 1024   # a request body, after gzip too: an SDK's batch of 512 log records fits
_MAX_ANY_DEPTH = 16                # arrays and key-value lists inside one AnyValue (read recursively)
# The Python package that holds the message classes, and what to install for it.
OTLP_EXTRA_HINT = "protobuf bodies need the [otlp] extra: pip install 'sse-dashboard[otlp]' (opentelemetry-proto)"

# signal -> (request message, response message, the response's rejected-count field)
SIGNALS = {
    "metrics": ("opentelemetry.proto.collector.metrics.v1.metrics_service_pb2",
                "ExportMetricsServiceRequest", "ExportMetricsServiceResponse", "rejectedDataPoints"),
    "logs": ("opentelemetry.proto.collector.logs.v1.logs_service_pb2",
             "ExportLogsServiceRequest", "ExportLogsServiceResponse", "rejectedLogRecords"),
}


class OtlpError(ValueError):
    """A body that is not an OTLP request; the message is for the person who sent it."""


class OtlpUnsupported(Exception):
    """A protobuf body while the ``[otlp]`` extra is not installed."""


# --- decoding ------------------------------------------------------------------


def decode_request(raw: bytes, content_type: str, signal: str) -> dict:
    """The request as the JSON mapping's dict; ``OtlpError`` or ``OtlpUnsupported``."""
    if content_type == "application/x-protobuf":
        return _decode_protobuf(raw, signal)
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise OtlpError("the body must be valid UTF-8 JSON (OTLP/JSON)") from None
    except RecursionError:
        # The parser's own limit (about 1,000 levels): nothing below reads deeper than
        # MAX_OTLP_JSON_DEPTH, and scanning every body for it first cost a tenth of a request.
        raise OtlpError("the body nests arrays and objects too deep") from None
    if not isinstance(body, dict):
        raise OtlpError("the body must be a JSON object (an Export%sServiceRequest)" % signal.capitalize())
    return body


def _message_classes(signal: str) -> tuple[Any, Any, Any]:
    """(request class, response class, json_format) from opentelemetry-proto, or ``OtlpUnsupported``."""
    module_name, request, response, _ = SIGNALS[signal]
    try:
        import importlib
        module = importlib.import_module(module_name)
        from google.protobuf import json_format
    except ImportError:
        raise OtlpUnsupported(OTLP_EXTRA_HINT) from None
    return getattr(module, request), getattr(module, response), json_format


def _decode_protobuf(raw: bytes, signal: str) -> dict:
    request_class, _, json_format = _message_classes(signal)
    message = request_class()
    try:
        message.ParseFromString(raw)
    except Exception:  # google.protobuf.message.DecodeError, and RecursionError on deep nesting
        raise OtlpError("the body is not a protobuf %s" % request_class.__name__) from None
    body = json_format.MessageToDict(message, use_integers_for_enums=True)
    if signal == "logs":
        _hex_ids(body)  # protobuf's JSON writes bytes in base64; OTLP/JSON writes ids in hex
    return body


def _hex_ids(body: dict) -> None:
    for resource in body.get("resourceLogs", ()):
        for scope in resource.get("scopeLogs", ()):
            for record in scope.get("logRecords", ()):
                for key in ("traceId", "spanId"):
                    if key in record:
                        record[key] = base64.b64decode(record[key]).hex()


def encode_response(signal: str, rejected: int, message: str, content_type: str) -> tuple[bytes, str]:
    """The success answer (an ``Export<Signal>ServiceResponse``) in the request's encoding:
    empty when everything was taken, else ``partialSuccess`` with the count and why."""
    field = SIGNALS[signal][3]
    partial = {field: str(rejected), "errorMessage": message} if rejected or message else None
    if content_type == "application/x-protobuf":
        _, response_class, json_format = _message_classes(signal)
        answer = json_format.ParseDict({"partialSuccess": partial} if partial else {}, response_class())
        return answer.SerializeToString(), "application/x-protobuf"
    body = {"partialSuccess": partial} if partial else {}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8"), "application/json"


# A refusal's google.rpc.Code, from its HTTP status as google/rpc/code.proto maps them.
GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 405: 12, 409: 10, 413: 8, 415: 3, 429: 8, 500: 13, 503: 14}
_UNKNOWN = 2


def encode_status(status: int, message: str, content_type: str) -> tuple[bytes, str]:
    """A refusal as OTLP/HTTP writes it: a ``google.rpc.Status`` in the request's encoding.

    For JSON, ``{"error": message, "code": n, "message": message}``: the house's ``error`` and
    Status's JSON mapping at once. For protobuf (when the ``[otlp]`` extra is installed: without
    it, the sender is told so in JSON), the Status message itself, written here (two fields: the
    ``google.rpc`` classes are another package, and an answer must not depend on one)."""
    code = GRPC_CODES.get(status, _UNKNOWN)
    if content_type == "application/x-protobuf" and _has_protobuf():
        text = message.encode("utf-8", "replace")
        return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text, "application/x-protobuf"
    body = {"error": message, "code": code, "message": message}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8"), "application/json"


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _has_protobuf() -> bool:
    try:
        _message_classes("metrics")
    except OtlpUnsupported:
        return False
    return True


# --- values --------------------------------------------------------------------

_INT_RE = re.compile(r"-?[0-9]{1,20}")


def read_int(value: Any, what: str, default: int | None = None) -> int:
    """An int64/fixed64 field: a JSON number without a fraction, or its decimal string."""
    if value is None:
        if default is None:
            raise OtlpError("%s is required" % what)
        return default
    if isinstance(value, bool):
        raise OtlpError("%s must be an integer" % what)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INT_RE.fullmatch(value):
        return int(value)
    raise OtlpError("%s must be an integer (a number or a decimal string)" % what)


_SPECIAL_DOUBLES = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def read_double(value: Any, what: str) -> float:
    """A double field (protobuf's JSON also writes ``"NaN"``/``"Infinity"`` as strings); finite only."""
    if isinstance(value, str):
        number = _SPECIAL_DOUBLES.get(value)
        if number is None:
            try:
                number = float(value) if re.fullmatch(r"-?[0-9.eE+-]{1,40}", value) else None
            except ValueError:
                number = None
        if number is None:
            raise OtlpError("%s must be a number" % what)
        value = number
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise OtlpError("%s must be a number" % what)
    value = float(value)
    if not math.isfinite(value):
        raise OtlpError("%s is %s; only finite values can be kept" % (what, value))
    return value


def any_value(value: Any, depth: int = 0) -> Any:
    """An ``AnyValue`` as plain JSON: strings, booleans, numbers (int64 exact), lists, objects;
    bytes stay base64 text. ``OtlpError`` for anything else."""
    if value is None or value == {}:
        return None
    if not isinstance(value, dict) or len(value) != 1:
        raise OtlpError("an AnyValue must be an object with one of stringValue, boolValue, intValue, "
                        "doubleValue, arrayValue, kvlistValue, bytesValue")
    if depth > _MAX_ANY_DEPTH:
        raise OtlpError("an AnyValue nests more than %d deep" % _MAX_ANY_DEPTH)
    (kind, inner), = value.items()
    if kind == "stringValue" and isinstance(inner, str):
        return inner
    if kind == "boolValue" and isinstance(inner, bool):
        return inner
    if kind == "intValue":
        return read_int(inner, "intValue")
    if kind == "doubleValue":
        try:
            return read_double(inner, "doubleValue")
        except OtlpError:
            return str(inner)  # NaN/Infinity: JSON has no such number, and an attribute is only shown
    if kind == "bytesValue" and isinstance(inner, str):
        try:
            base64.b64decode(inner, validate=True)
        except (binascii.Error, ValueError):
            raise OtlpError("bytesValue must be base64") from None
        return inner
    if kind == "arrayValue" and isinstance(inner, dict):
        return [any_value(item, depth + 1) for item in _list(inner.get("values"), "arrayValue.values")]
    if kind == "kvlistValue" and isinstance(inner, dict):
        return attributes(inner.get("values"), depth + 1)
    raise OtlpError("%s is not a valid AnyValue field" % json.dumps(str(kind)[:40]))


def attributes(items: Any, depth: int = 0) -> dict:
    """A list of ``KeyValue`` as a dict (a key given twice: the last one)."""
    result: dict[str, Any] = {}
    for item in _list(items, "attributes"):
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise OtlpError("an attribute must be {\"key\": ..., \"value\": {...}}")
        result[item["key"]] = any_value(item.get("value"), depth)
    return result


def _list(value: Any, what: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise OtlpError("%s must be an array" % what)
    return value


def objects(value: Any, what: str) -> list:
    """A request's array of messages (``resourceMetrics``, ``scopeLogs``...): [] when absent."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise OtlpError("%s must be an array of objects" % what)
    return value


def label_text(value: Any) -> str:
    """An attribute's value as a label value: text as it is, anything else as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# --- names (OpenTelemetry -> Prometheus) ----------------------------------------

_INVALID_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_:]+")
_INVALID_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]+")
_UNDERSCORES = re.compile(r"__+")
# The units the compatibility specification names (UCUM, as OpenTelemetry writes them).
_UNITS = {
    "d": "days", "h": "hours", "min": "minutes", "s": "seconds", "ms": "milliseconds", "us": "microseconds",
    "ns": "nanoseconds", "By": "bytes", "KiBy": "kibibytes", "MiBy": "mebibytes", "GiBy": "gibibytes",
    "TiBy": "tibibytes", "KBy": "kilobytes", "MBy": "megabytes", "GBy": "gigabytes", "TBy": "terabytes",
    "m": "meters", "V": "volts", "A": "amperes", "J": "joules", "W": "watts", "g": "grams", "Cel": "celsius",
    "Hz": "hertz", "%": "percent",
}
_PER_UNITS = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week", "mo": "month", "y": "year"}


def _unit_words(unit: str, gauge: bool) -> str:
    """The name suffix for ``unit``: ``ms`` -> ``milliseconds``, ``By/s`` -> ``bytes_per_second``,
    ``1`` -> ``ratio`` for a gauge; ``{requests}`` (an annotation) -> nothing."""
    unit = re.sub(r"\{[^}]*\}", "", unit or "").strip()
    if not unit:
        return ""
    if unit == "1":
        return "ratio" if gauge else ""
    top, _, per = unit.partition("/")
    words = _UNITS.get(top, top)
    if per:
        words = (words + "_per_" if words else "per_") + _PER_UNITS.get(per, per)
    return _UNDERSCORES.sub("_", _INVALID_NAME_CHARS.sub("_", words)).strip("_")


def metric_base_name(name: Any, unit: Any, gauge: bool) -> str:
    """A metric's Prometheus name without ``_total`` (the exposition adds it to counters):
    invalid characters become ``_``, the unit is appended unless the name already says it.

    >>> metric_base_name("http.server.duration", "ms", gauge=False)
    'http_server_duration_milliseconds'
    """
    if not isinstance(name, str) or not name:
        raise OtlpError("a metric must have a name")
    base = _UNDERSCORES.sub("_", _INVALID_NAME_CHARS.sub("_", name)).strip("_") or "_"
    if base[0].isdigit():
        base = "_" + base
    if base.endswith("_total"):
        base = base[:-len("_total")]
    words = _unit_words(unit if isinstance(unit, str) else "", gauge)
    if words and not base.endswith("_" + words) and base != words:
        base += "_" + words
    return base


def label_name(key: str) -> str:
    """An attribute key as a label name: ``http.method`` -> ``http_method``; a leading digit or
    ``__`` (reserved for Prometheus) gets ``key_`` before it."""
    label = _INVALID_LABEL_CHARS.sub("_", key) or "_"
    if label[0].isdigit() or label.startswith("__"):
        label = "key_" + label
    return label
