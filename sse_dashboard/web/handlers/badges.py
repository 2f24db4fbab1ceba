"""Badges (#26): ``GET /badge/<kind>/<name>.svg`` for a job, a heartbeat, an alert rule or a status page.

One concept: a thing's state now as a small SVG in the shields.io look, for a README or a wiki
page, with no token. A badge shows the name asked for and the state (``up``, ``down``,
``late``..., an alert rule ``ok`` or ``firing``), or with ``?uptime=24h|7d|30d|90d`` a status
page's uptime over that window, nothing else: not the job's UUID (its ping secret), a
heartbeat's or an alert's message, times or output. An unknown kind or name is a 404 badge that
echoes nothing of the request. It may be cached for ``BADGE_MAX_AGE_S``.
"""

from __future__ import annotations

import re
from xml.sax.saxutils import escape

from sse_dashboard.web.response import Response

__all__ = ["BadgeHandlers", "BADGE_MAX_AGE_S", "render_badge", "STATE_COLOURS"]

BADGE_MAX_AGE_S = 30  # short: a badge says what is true now, but a README page may be busy
BADGE_TYPE = "image/svg+xml; charset=utf-8"
_PATH = re.compile(r"^/badge/(?P<kind>job|heartbeat|alert|status)/(?P<name>[A-Za-z0-9_.:-]{1,100})\.svg$")
# shields.io's colours: brightgreen, yellow, orange, red, lightgrey.
STATE_COLOURS = {"up": "#4c1", "ok": "#4c1", "started": "#dfb317", "late": "#fe7d37", "down": "#e05d44",
                 "firing": "#e05d44"}
UPTIME_WINDOWS = ("24h", "7d", "30d", "90d")
GREY = "#9f9f9f"
_CHAR_WIDTH = 7  # Verdana 11px averages about 6.5 px a character; a little wide is better than cut


def render_badge(label: str, message: str, colour: str) -> bytes:
    """Two boxes, a label and a message, as shields.io draws them (flat style)."""
    left, right = 10 + _CHAR_WIDTH * len(label), 10 + _CHAR_WIDTH * len(message)
    width = left + right
    label, message = escape(label), escape(message)
    title = "%s: %s" % (label, message)
    return ('<svg xmlns="http://www.w3.org/2000/svg" width="%(w)d" height="20" role="img" aria-label="%(t)s">'
            '<title>%(t)s</title>'
            '<linearGradient id="s" x2="0" y2="100%%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/>'
            '<stop offset="1" stop-opacity=".1"/></linearGradient>'
            '<clipPath id="r"><rect width="%(w)d" height="20" rx="3" fill="#fff"/></clipPath>'
            '<g clip-path="url(#r)"><rect width="%(l)d" height="20" fill="#555"/>'
            '<rect x="%(l)d" width="%(r)d" height="20" fill="%(c)s"/>'
            '<rect width="%(w)d" height="20" fill="url(#s)"/></g>'
            '<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">'
            '<text x="%(lx)g" y="15" fill="#010101" fill-opacity=".3">%(a)s</text>'
            '<text x="%(lx)g" y="14">%(a)s</text>'
            '<text x="%(rx)g" y="15" fill="#010101" fill-opacity=".3">%(b)s</text>'
            '<text x="%(rx)g" y="14">%(b)s</text></g></svg>'
            % {"w": width, "l": left, "r": right, "c": colour, "t": title, "a": label, "b": message,
               "lx": left / 2, "rx": left + right / 2}).encode("utf-8")


class BadgeHandlers:
    """``get_badge``: part of ``DashboardHandler``."""

    def get_badge(self) -> Response:
        match = _PATH.match(self.route_path)
        window = self.query_value("uptime")
        if window is not None and (window not in UPTIME_WINDOWS or not match or match["kind"] != "status"):
            match = None  # uptime is kept for status pages only, over those windows
        state = self._badge_state(match["kind"], match["name"]) if match else None
        if state is None:
            return Response(404, render_badge(match["kind"] if match else "badge", "not found", GREY), BADGE_TYPE,
                            (("Cache-Control", "public, max-age=%d" % BADGE_MAX_AGE_S),))
        message = state
        if window is not None:
            message = _percent(self._page_uptime(match["name"], window))
        label = match["name"] if window is None else "%s %s" % (match["name"], window)
        return Response(200, render_badge(label, message, STATE_COLOURS.get(state, GREY)), BADGE_TYPE,
                        (("Cache-Control", "public, max-age=%d" % BADGE_MAX_AGE_S),))

    def _badge_state(self, kind: str, name: str) -> str | None:
        """The state of the job with this slug, the heartbeat with this name, the alert rule
        with this name or the status page with this slug, or None."""
        if kind == "job":
            return next((job["status"] for job in self.app.jobs.listing() if job["slug"] == name), None)
        if kind == "alert":
            if not any(rule.name == name for rule in self.app.alerts.rules):
                return None
            return "firing" if any(alert["rule"] == name for alert in self.app.alerts.active()) else "ok"
        if kind == "status":
            pages = self.app.status_pages
            view = pages.view(name) if pages is not None else None
            return view[0]["state"] if view is not None else None
        beat = next((beat for beat in self.app.heartbeats.listing() if beat["name"] == name), None)
        if beat is None:
            return None
        return "down" if beat["firing"] or beat["status"] == "down" else beat["status"]

    def _page_uptime(self, slug: str, window: str) -> float | None:
        """The status page's uptime over ``window``: the mean of its components' that have one."""
        view = self.app.status_pages.view(slug)
        fractions = [c["uptime"][window] for c in view[0]["components"] if c["uptime"].get(window) is not None]
        return sum(fractions) / len(fractions) if fractions else None


def _percent(fraction: float | None) -> str:
    """``99.95%``; ``no data`` before anything was counted."""
    if fraction is None:
        return "no data"
    return "%s%%" % ("%.2f" % (fraction * 100)).rstrip("0").rstrip(".")
