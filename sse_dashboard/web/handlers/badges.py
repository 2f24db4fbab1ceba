"""Badges (#26): ``GET /badge/job/<slug>.svg`` and ``GET /badge/heartbeat/<name>.svg``.

One concept: a job's or a heartbeat's state now as a small SVG in the shields.io look, for a
README or a wiki page, with no token. A badge shows the name asked for and the state (``up``,
``down``, ``late``...), nothing else: not the job's UUID (its ping secret), a heartbeat's
message, times or output. An unknown kind or name is a 404 badge that echoes nothing of the
request. It may be cached for ``BADGE_MAX_AGE_S``.
"""

from __future__ import annotations

import re
from xml.sax.saxutils import escape

from sse_dashboard.web.response import Response

__all__ = ["BadgeHandlers", "BADGE_MAX_AGE_S", "render_badge", "STATE_COLOURS"]

BADGE_MAX_AGE_S = 30  # short: a badge says what is true now, but a README page may be busy
BADGE_TYPE = "image/svg+xml; charset=utf-8"
_PATH = re.compile(r"^/badge/(?P<kind>job|heartbeat)/(?P<name>[A-Za-z0-9_.:-]{1,100})\.svg$")
# shields.io's colours: brightgreen, yellow, orange, red, lightgrey.
STATE_COLOURS = {"up": "#4c1", "started": "#dfb317", "late": "#fe7d37", "down": "#e05d44"}
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
        state = self._badge_state(match["kind"], match["name"]) if match else None
        if state is None:
            return Response(404, render_badge(match["kind"] if match else "badge", "not found", GREY), BADGE_TYPE,
                            (("Cache-Control", "public, max-age=%d" % BADGE_MAX_AGE_S),))
        return Response(200, render_badge(match["name"], state, STATE_COLOURS.get(state, GREY)), BADGE_TYPE,
                        (("Cache-Control", "public, max-age=%d" % BADGE_MAX_AGE_S),))

    def _badge_state(self, kind: str, name: str) -> str | None:
        """The state of the job with this slug or the heartbeat with this name, or None."""
        if kind == "job":
            return next((job["status"] for job in self.app.jobs.listing() if job["slug"] == name), None)
        beat = next((beat for beat in self.app.heartbeats.listing() if beat["name"] == name), None)
        if beat is None:
            return None
        return "down" if beat["firing"] or beat["status"] == "down" else beat["status"]
