"""Alerts and heartbeats: the alert state, a test notification, a job's heartbeat and forgetting it.

One concept: alerting over HTTP. A heartbeat's fields travel in its URL (a GET writes here:
``routes.PING``), so cron jobs and push monitors that can only fetch a URL can send one.
"""

from __future__ import annotations

import urllib.parse

from sse_dashboard.alerting.notify import NotificationTestBusy
from sse_dashboard.web.response import HTTPError, Response, json_response

__all__ = ["AlertHandlers"]


class AlertHandlers:
    """``get_alerts``, ``post_alerts_test``, ``push_heartbeat`` and ``delete_heartbeat``: part of
    ``DashboardHandler``."""

    def get_alerts(self) -> Response:
        return json_response(self.app.alerts_state())

    def post_alerts_test(self) -> Response:
        """POST /api/alerts/test: a test notification to every target, answered with each result."""
        notifier = self.app.notifier
        if not notifier.targets:
            raise HTTPError(400, 'no notify targets: add "notify" to the --config file (README "Notifications")')
        try:
            results = notifier.test()
        except NotificationTestBusy as exc:  # one test at a time: parallel calls hold no thread
            raise HTTPError(429, str(exc), (("Retry-After", str(exc.retry_after_s)),)) from None
        if any(r["ok"] is False for r in results):
            return json_response({"results": results}, 502)
        return json_response({"results": results}, 202 if any(r["pending"] for r in results) else 200)

    def push_heartbeat(self) -> Response:
        """GET or POST /api/push/NAME?status=up|down&msg=...&ping=...&every=SECONDS: a heartbeat."""
        if self.command == "HEAD":
            raise HTTPError(405, "a heartbeat is GET or POST", (("Allow", "DELETE, GET, POST"),))
        name = urllib.parse.unquote(self.route_path[len("/api/push/"):])
        self.refuse_a_heartbeat_body()
        self.refuse_unless_durable()
        try:
            beat = self.app.heartbeats.beat(name, status=_default(self.query_value("status"), "up"),
                                            message=self.query_value("msg") or "", ping=self.query_value("ping"),
                                            every=self.query_value("every"))
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from None
        return json_response(dict(beat, ok=True))

    def refuse_a_heartbeat_body(self) -> None:
        """A heartbeat's fields are in its URL; a body would be ignored, so it is refused.

        ``curl -d status=down`` (a form) used to be answered 200 and recorded as ``up``. A POST
        with no body (``curl -X POST``, Uptime Kuma, urllib's empty form) is what push monitors
        send, whatever its Content-Type; a cross-site form is refused by its Origin (guard.py)."""
        if self._body_pending:
            raise HTTPError(415, "a heartbeat takes no body: put its fields in the URL "
                                 "(/api/push/NAME?status=down&msg=...&ping=MS&every=SECONDS)")

    def delete_heartbeat(self) -> Response:
        name = urllib.parse.unquote(self.route_path[len("/api/push/"):])
        found = self.app.heartbeats.forget(name)
        if not found:
            raise HTTPError(404, "no such heartbeat")
        return json_response({"status": "deleted", "name": name})


def _default(value: str | None, default: str) -> str:
    """A query value, or ``default`` when absent (an empty ``?status=`` is a value, and wrong)."""
    return default if value is None else value
