"""OTLP/HTTP: ``POST /v1/metrics`` and ``POST /v1/logs``, as OpenTelemetry SDKs export them.

One concept: the OTLP/HTTP side (the specification's paths, content types and status codes).
What a request means is ``ingest.otlp_metrics``'s and ``ingest.otlp_logs``'s; the body's
encodings are ``ingest.otlp``'s. Status codes, as an SDK reads them: 200 with an
``Export<Signal>ServiceResponse`` (``partialSuccess`` when some points or records were
rejected), 400 for a body that is not an OTLP request (not retried), 415 for another content
type or a protobuf body without the ``[otlp]`` extra, 413 past the size limit, 429 and 503 with
``Retry-After`` (the write rate, storage, a stop: retried). Every refusal's body is a
``google.rpc.Status`` in the request's encoding (``otlp_refusal``).
"""

from __future__ import annotations

import json

from sse_dashboard.ingest.otlp import (MAX_OTLP_BYTES, OtlpUnsupported, decode_request, encode_response,
                                       encode_status)
from sse_dashboard.ingest.push import gunzip_bounded
from sse_dashboard.web.response import HTTPError, Response

__all__ = ["OtlpHandlers", "OTLP_CONTENT_TYPES", "OTLP_PATHS", "otlp_refusal"]

OTLP_CONTENT_TYPES = ("application/json", "application/x-protobuf")
OTLP_PATHS = ("/v1/metrics", "/v1/logs")


def otlp_refusal(response: Response, content_type: str) -> Response:
    """A refusal of an OTLP request (``{"error": ...}``, from wherever it came: the guard's 401 or
    429, a 413, the handler's 400 or storage's 503) as OTLP/HTTP writes it (``encode_status``)."""
    try:
        message = json.loads(response.body)["error"]
    except (TypeError, ValueError, KeyError):
        return response  # not a refusal of ours (a streamed body): as it is
    body, answer_type = encode_status(response.status, message, content_type)
    return Response(response.status, body, answer_type, response.headers)


class OtlpHandlers:
    """``post_otlp_metrics`` and ``post_otlp_logs``: part of ``DashboardHandler``."""

    def post_otlp_metrics(self) -> Response:
        """POST /v1/metrics: an ExportMetricsServiceRequest (see ingest/otlp_metrics.py)."""
        return self._otlp_export("metrics", self.app.otlp_metrics.export)

    def post_otlp_logs(self) -> Response:
        """POST /v1/logs: an ExportLogsServiceRequest (see ingest/otlp_logs.py)."""
        return self._otlp_export("logs", self.app.otlp_logs.export)

    def _otlp_export(self, signal: str, export) -> Response:
        content_type = self.content_type()
        if content_type not in OTLP_CONTENT_TYPES:
            raise HTTPError(415, "Content-Type must be application/json or application/x-protobuf (OTLP/HTTP)")
        encoding = self.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip"):
            raise HTTPError(415, "Content-Encoding must be gzip or none")
        raw = self.read_body(MAX_OTLP_BYTES)
        try:
            if encoding == "gzip":  # an SDK's compression=gzip; bounded, whatever it claims
                raw = gunzip_bounded(raw, MAX_OTLP_BYTES)
            request = decode_request(raw, content_type, signal)
        except OtlpUnsupported as exc:
            raise HTTPError(415, str(exc)) from None
        except ValueError as exc:  # OtlpError, PushError (gzip)
            raise HTTPError(400, str(exc)) from None
        self.refuse_unless_durable()
        try:
            result = export(request)
        except ValueError as exc:  # OtlpError, the registry's limits: the whole request stores nothing
            raise HTTPError(400, str(exc)) from None
        body, answer_type = encode_response(signal, result.rejected, result.message, content_type)
        return Response(200, body, answer_type)

