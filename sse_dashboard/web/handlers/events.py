"""Events: the log's pages and exports, and posting one.

One concept: the event log over HTTP. Paging is the application's (``Application.event_page``,
which MCP shares); exports stream from storage when there is one.
"""

from __future__ import annotations

from sse_dashboard.events import LEVELS
from sse_dashboard.web.exports import EVENTS_CSV_NAME, events_csv, json_array_chunks
from sse_dashboard.web.request import parse_int
from sse_dashboard.web.response import JSON_TYPE, HTTPError, Response, csv_download, json_stream

__all__ = ["EventHandlers", "MAX_EVENTS_LIMIT", "DEFAULT_EVENTS_LIMIT"]

MAX_EVENTS_LIMIT = 1000
DEFAULT_EVENTS_LIMIT = 100


class EventHandlers:
    """``get_events`` and ``post_event``: part of ``DashboardHandler``."""

    def get_events(self) -> Response:
        """Paging (``since`` is a cursor: oldest first, ``more`` and ``next``), the newest
        ``limit`` (no ``since``), or an export (``from``/``to``, ``format=csv``)."""
        since = parse_int(self.query_value("since"), "since", default=0)
        fmt = self.response_format()
        level = self.query_value("level")
        if level is not None and level not in LEVELS:
            raise HTTPError(400, "level must be one of " + ", ".join(LEVELS))
        only = self.event_filter()
        explicit = self.query_value("from") is not None or self.query_value("to") is not None
        store = self.app.store
        if fmt == "csv" or explicit:
            # Exports: every stored event in the window, streamed (from the database, when there is one).
            start, end, _ = self.time_window(10 * 365 * 86400)
            limit = parse_int(self.query_value("limit"), "limit", default=None, minimum=1)
            events = store.iter_events(since, start, end, level, limit, only=only)
            if fmt == "csv":
                return csv_download(events_csv(events), EVENTS_CSV_NAME)
            return json_stream(json_array_chunks('{"events":[', (e.json.encode("utf-8") for e in events), "]}"))
        limit = parse_int(self.query_value("limit"), "limit", default=DEFAULT_EVENTS_LIMIT, minimum=1)
        limit = min(limit, max(MAX_EVENTS_LIMIT, self.app.events.maxlen))
        page = self.app.event_page(None if self.query_value("since") is None else since, limit, level, only)
        body = '{"events":[%s],"more":%s,"next":%d,"last_id":%d,"epoch":"%s"}' % (
            ",".join(e.json for e in page["events"]), "true" if page["more"] else "false", page["next"],
            page["last_id"], page["epoch"])
        return Response(200, body.encode("utf-8"), JSON_TYPE, (("Cache-Control", "no-store"),))

    def post_event(self) -> Response:
        body = self.read_json_body()
        self.check_fields(body, ("message", "level", "source", "data", "type"))
        if "message" not in body:
            raise HTTPError(400, "message is required")
        try:
            event = self.app.events.post(
                body.get("level", "info"), body["message"], source=body.get("source", "app"), data=body.get("data"),
                type=body.get("type"),
            )
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from None
        return Response(201, event.json.encode("utf-8"), JSON_TYPE)
