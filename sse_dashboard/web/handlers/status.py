"""Status pages over HTTP (#26): ``GET /status/<slug>`` (HTML), ``/status/<slug>/feed.atom``,
``/status/<slug>/stream``, and the admin's ``/api/status-pages`` routes.

One concept: the status pages' HTTP side. The pages need no token (``routes.STATUS``): what they
show is what their configuration lists, built once per sample by ``alerting.status`` and
rendered once per sample (``StatusPages.rendered``), whoever asks. The stream carries the page's
view only (the hub's side channel ``status:<slug>``): no metrics, no events; it takes one of the
``--max-clients`` slots like any stream.
"""

from __future__ import annotations

import logging
import re
import urllib.parse

from sse_dashboard.alerting.status import ConfiguredPage, channel
from sse_dashboard.events import EventFilter
from sse_dashboard.sampler import encode_json
from sse_dashboard.web.response import JSON_TYPE, HTTPError, Response
from sse_dashboard.web.statuspage import render_atom, render_html
from sse_dashboard.web.streams import format_sse, side_frame

__all__ = ["StatusHandlers", "STATUS_MAX_AGE_S", "FEED_MAX_AGE_S"]

log = logging.getLogger(__name__)

STATUS_MAX_AGE_S = 5        # a proxy or browser may keep the first view this long; the stream is live
FEED_MAX_AGE_S = 60
_PUBLIC = re.compile(r"^/status/(?P<slug>[a-z0-9_-]{1,64})(?P<rest>|/feed\.atom|/stream)$")
_ADMIN = re.compile(r"^/api/status-pages/(?P<slug>[a-z0-9_-]{1,64})"
                    r"(?P<rest>|/maintenance|/incidents/(?P<incident>[0-9]{1,9})/notes)$")
# The status stream carries the page only. Its cursor is past any event id, so the hub never
# catches it up and never sends it an ``id:`` line (which would tell how many events there are);
# and a filter no event matches (no event type holds a NUL), should the log ever get that far.
NO_EVENTS = EventFilter(types=("\x00",))
PAST_EVERY_EVENT = 2 ** 62
RETRY_MS = 5000


def _answer(obj: dict, status: int = 200) -> Response:
    return Response(status, encode_json(obj), JSON_TYPE, (("Cache-Control", "no-store"),))


class StatusHandlers:
    """``serve_status``, ``get_status_pages``, ``put_status_page``, ``post_status_page`` and
    ``delete_status_page``: part of ``DashboardHandler``."""

    def serve_status(self) -> Response | None:
        match = _PUBLIC.match(self.route_path)
        pages = self.app.status_pages
        if match is None or pages is None or pages.view(match["slug"]) is None:
            raise HTTPError(404, "no such status page")
        slug, rest = match["slug"], match["rest"]
        if rest == "/stream":
            return self._stream_status(slug)
        if rest == "/feed.atom":
            base = self._public_base()
            body = pages.rendered(slug, "atom " + base, lambda view: render_atom(view, base))
            return Response(200, body, "application/atom+xml; charset=utf-8",
                            (("Cache-Control", "public, max-age=%d" % FEED_MAX_AGE_S),))
        body = pages.rendered(slug, "html", render_html)
        return Response(200, body, "text/html; charset=utf-8",
                        (("Cache-Control", "public, max-age=%d" % STATUS_MAX_AGE_S),))

    def _public_base(self) -> str:
        """The origin the feed's links use: --public-url, else the Host asked for (already checked)."""
        if self.app.config.public_url:
            return self.app.config.public_url
        return "http://" + (self.headers.get("Host") or "%s:%d" % self.server.server_address[:2])

    def _stream_status(self, slug: str) -> None:
        """``text/event-stream`` of the page's view: its current one now, each new one as the hub sends it."""
        app = self.app
        current = app.status_pages.view(slug)
        if current is None:  # deleted a moment ago
            raise HTTPError(404, "no such status page")

        def first_frames() -> tuple[list, dict]:
            snapshot, _ = app.sampler.latest()
            return [format_sse(retry=RETRY_MS), side_frame(channel(slug), current[1])], dict(
                cursor=PAST_EVERY_EVENT, seq=snapshot["seq"], only=NO_EVENTS, metrics=False, sides=(channel(slug),))

        self.stream_to_hub("status stream", "reload the page later", first_frames)
        return None

    # --- the admin's ----------------------------------------------------------------------

    def get_status_pages(self) -> Response:
        return _answer({"pages": self._pages().listing()})

    def put_status_page(self) -> Response:
        slug = self._admin_target(rest="")[0]
        body = self.read_json_body()
        try:
            created = self._pages().put(slug, body)
        except ConfiguredPage as exc:
            raise HTTPError(409, str(exc)) from None
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from None
        return _answer({"status": "created" if created else "replaced", "slug": slug,
                        "url": "/status/%s" % slug}, 201 if created else 200)

    def delete_status_page(self) -> Response:
        slug = self._admin_target(rest="")[0]
        try:
            deleted = self._pages().delete(slug)
        except ConfiguredPage as exc:
            raise HTTPError(409, str(exc)) from None
        if not deleted:
            raise HTTPError(404, "no such status page")
        return _answer({"status": "deleted", "slug": slug})

    def post_status_page(self) -> Response:
        """``/<slug>/maintenance`` (a notice) or ``/<slug>/incidents/<id>/notes`` (a note)."""
        slug, match = self._admin_target()
        body = self.read_json_body()
        pages = self._pages()
        try:
            if match["rest"] == "/maintenance":
                return _answer({"maintenance": pages.add_maintenance(slug, body)}, 201)
            if match["incident"] is not None:
                self.check_fields(body, ("text",))
                return _answer({"incident": pages.add_note(slug, int(match["incident"]), body.get("text"))}, 201)
        except KeyError:
            raise HTTPError(404, "no such status page or incident") from None
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from None
        raise HTTPError(404, "not found: POST /api/status-pages/<slug>/maintenance or .../incidents/<id>/notes")

    def _admin_target(self, rest: str | None = None) -> tuple:
        match = _ADMIN.match(urllib.parse.unquote(self.route_path))
        if match is None or (rest is not None and match["rest"] != rest):
            raise HTTPError(404, "not found: a status page's slug is 1 to 64 of a-z 0-9 _ -")
        return match["slug"], match

    def _pages(self):
        if self.app.status_pages is None:
            raise HTTPError(404, "status pages are not available here")
        return self.app.status_pages
