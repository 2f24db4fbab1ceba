"""The fleet page and its listing: ``GET /fleet`` and ``GET /api/fleet`` (#25).

One concept: the fleet's HTTP side. What the listing holds and how the engine is asked is
``fleet.view``'s; here the page's file is served, and the listing is answered as the fleet thread
last made it (waiting for a fresher one at most the engine timeout). The stream carries the same
listing as ``event: fleet`` to a stream opened with ``?fleet=1`` (``handlers.stream``).
"""

from __future__ import annotations

from sse_dashboard.web.response import JSON_TYPE, HTTPError, Response

__all__ = ["FleetHandlers", "NO_FLEET"]

NO_FLEET = "this dashboard has no fleet engine: start it with --fleet URL (a Prometheus-compatible query API)"


class FleetHandlers:
    """``serve_fleet`` and ``get_fleet``: part of ``DashboardHandler``."""

    def serve_fleet(self) -> Response:
        """The page (it says so itself when there is no engine: it holds no data)."""
        return self._static_file("fleet.html")

    def get_fleet(self) -> Response:
        fleet = self.app.fleet
        if fleet is None:
            raise HTTPError(404, NO_FLEET)
        return Response(200, fleet.read(), JSON_TYPE, (("Cache-Control", "no-store"),))
