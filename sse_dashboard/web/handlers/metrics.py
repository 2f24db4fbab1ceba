"""Metrics: the snapshot, posting and deleting counters and gauges, history, Prometheus text,
the top processes.

One concept: the numbers, read and written over HTTP. Validation stays with the registry: its
``ValueError`` becomes a 400 here, narrowly, around the one call.
"""

from __future__ import annotations

import urllib.parse

from sse_dashboard.application import DEFAULT_HISTORY_POINTS, MAX_HISTORY_NAMES, MAX_HISTORY_POINTS
from sse_dashboard.exposition import PROMETHEUS_CONTENT_TYPE, render_prometheus
from sse_dashboard.registry import canonical_name
from sse_dashboard.sampler import encode_json
from sse_dashboard.web.exports import HISTORY_CSV_NAME, history_csv, json_array_chunks
from sse_dashboard.web.request import parse_int
from sse_dashboard.web.response import JSON_TYPE, HTTPError, Response, csv_download, json_response, json_stream

__all__ = ["MetricHandlers"]


class MetricHandlers:
    """``get_metrics``, ``post_metrics``, ``delete_metric``, ``get_history``, ``get_prometheus``
    and ``get_processes``: part of ``DashboardHandler``."""

    def get_metrics(self) -> Response:
        return Response(200, encode_json(self.app.current_snapshot()), JSON_TYPE, (("Cache-Control", "no-store"),))

    def post_metrics(self) -> Response:
        body = self.read_json_body()
        self.check_fields(body, ("counters", "gauges"))
        for key in ("counters", "gauges"):
            if key in body and not isinstance(body[key], dict):
                raise HTTPError(400, "%s must be an object of name: number" % key)
        self.refuse_unless_durable()
        try:
            stored = self.app.registry.update(counters=body.get("counters"), gauges=body.get("gauges"))
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from None
        return json_response(dict(status="ok", **stored))

    def delete_metric(self) -> Response:
        """DELETE /api/metrics/counters/NAME or /gauges/NAME: the metric and its history."""
        kind, _, name = self.route_path[len("/api/metrics/"):].partition("/")
        name = _as_stored(urllib.parse.unquote(name))
        app = self.app
        self.refuse_unless_durable()
        found = app.registry.delete(kind, name)  # with its stored history, in one commit
        if not found:
            raise HTTPError(404, "no such %s" % kind[:-1])
        app.store.forget_series("%s.%s" % (kind, name))  # in memory; SQLite's went in the commit
        return json_response({"status": "deleted", "kind": kind, "name": name})

    def get_history(self) -> Response:
        store = self.app.store
        start, end, explicit = self.time_window(300)
        points = parse_int(self.query_value("points"), "points", default=DEFAULT_HISTORY_POINTS, minimum=1)
        if points > MAX_HISTORY_POINTS:
            raise HTTPError(400, "points must be at most %d a series" % MAX_HISTORY_POINTS)
        names = self._history_names()
        if self.response_format() == "csv":
            return csv_download(history_csv(lambda: store.iter_history_rows(start, end)), HISTORY_CSV_NAME)
        if explicit:  # an export: rows, streamed, so a week never sits in memory at once
            rows = store.iter_history_rows(start, end)
            return json_stream(json_array_chunks('{"rows":[', (encode_json({"ts": ts, "series": flat})
                                                               for ts, flat in rows), "]}"))
        body = self.app.history_json(start, end, names, points)
        return Response(200, body, JSON_TYPE, (("Cache-Control", "no-store"),))

    def _history_names(self) -> list | None:
        """``names``: comma-separated series names (``system.cpu_percent,gauges.depth``), or None: all."""
        value = self.query_value("names")
        if value is None:
            return None
        names = list(dict.fromkeys(name.strip() for name in value.split(",") if name.strip()))
        if len(names) > MAX_HISTORY_NAMES:
            raise HTTPError(400, "names takes at most %d series names (comma-separated)" % MAX_HISTORY_NAMES)
        return names or None  # (only commas: every series, as without it)

    def get_prometheus(self) -> Response:
        snapshot = self.app.current_snapshot()
        return Response(200, render_prometheus(snapshot).encode("utf-8"), PROMETHEUS_CONTENT_TYPE,
                        (("Cache-Control", "no-store"),))

    def get_processes(self) -> Response:
        """The top ten by CPU and by memory, read now (at most every 2 s, however many ask)."""
        return Response(200, encode_json(self.app.processes.top()), JSON_TYPE, (("Cache-Control", "no-store"),))


def _as_stored(name: str) -> str:
    """A name as the registry keeps it (labels in canonical order), so a DELETE may spell the
    labels as the POST did; a name that does not parse is looked up as it is (and not found)."""
    try:
        return canonical_name(name)
    except ValueError:
        return name
