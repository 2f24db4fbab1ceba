"""Prometheus push: ``PUT``/``POST``/``DELETE /metrics/job/JOB{/LABEL/VALUE}``, as the
Pushgateway takes it.

One concept: the Pushgateway's HTTP side. The text format and the groups are
``ingest.push``'s; here are the body's size, encoding and content type.
"""

from __future__ import annotations

from sse_dashboard.ingest.push import MAX_PUSH_BYTES, PushError, gunzip_bounded, parse_exposition, parse_grouping
from sse_dashboard.registry import labeled_name
from sse_dashboard.web.response import HTTPError, Response, json_response

__all__ = ["PushHandlers"]


class PushHandlers:
    """``push_metrics`` and ``delete_push_group``: part of ``DashboardHandler``."""

    def push_metrics(self) -> Response:
        """PUT or POST /metrics/job/JOB{/LABEL/VALUE}: a Pushgateway push (see ingest/push.py)."""
        grouping = self._grouping()
        # curl --data-binary, as the Pushgateway's own README shows it, labels the text as a form:
        # the Pushgateway reads it as text, so do we. (A form from another site carries its Origin,
        # which guard refuses before this.)
        if self.content_type() not in ("", "text/plain", "application/openmetrics-text",
                                       "application/x-www-form-urlencoded"):
            raise HTTPError(415, "the body must be Prometheus text (text/plain; version=0.0.4) or OpenMetrics text")
        encoding = self.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip"):
            raise HTTPError(415, "Content-Encoding must be gzip or none")
        raw = self.read_body(MAX_PUSH_BYTES)
        if encoding == "gzip":  # prometheus_client's compression="gzip"; bounded, whatever it claims
            try:
                raw = gunzip_bounded(raw, MAX_PUSH_BYTES)
            except ValueError as exc:
                raise HTTPError(400, str(exc)) from None
        try:
            samples = parse_exposition(raw.decode("utf-8"), grouping)
        except UnicodeDecodeError:
            raise HTTPError(400, "the body must be UTF-8 text") from None
        except PushError as exc:
            raise HTTPError(400, str(exc)) from None
        self.refuse_unless_durable()
        try:
            stored = self.app.pushes.push(grouping, samples, replace=self.command == "PUT")
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from None
        return json_response({"status": "ok", "group": grouping, "samples": stored})

    def delete_push_group(self) -> Response:
        """DELETE /metrics/job/JOB{/LABEL/VALUE}: the group and its metrics (200 even if absent, as
        the Pushgateway answers)."""
        grouping = self._grouping()
        self.refuse_unless_durable()
        found = self.app.pushes.delete(grouping)
        return json_response({"status": "deleted" if found else "absent", "group": grouping})

    def _grouping(self) -> dict:
        try:
            grouping = parse_grouping(self.route_path[len("/metrics/"):])
            labeled_name("push_time_seconds", grouping)  # the group's own name must be a usable one
        except ValueError as exc:  # PushError too
            raise HTTPError(400, str(exc)) from None
        return grouping
