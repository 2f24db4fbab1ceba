"""Share links over HTTP (#26): the page at ``/s/<id>``, what a session shows (``GET /api/share``), and
the admin's ``GET /api/shares``, ``POST /api/shares``, ``DELETE /api/shares/<handle>``.

One concept: share links' HTTP side. The store is ``web/shares.py``; what a viewer may read, and
how its answers are cut, is ``guard.check_share`` and ``shareview``. A new link's id is in the
answer to its POST and nowhere else (``Cache-Control: no-store``); listings carry handles.
"""

from __future__ import annotations

import urllib.parse

from sse_dashboard.sampler import encode_json
from sse_dashboard.web.response import JSON_TYPE, HTTPError, Response
from sse_dashboard.web.tokens import TokenFileError

__all__ = ["ShareHandlers"]

_FIELDS = ("sections", "expires_in_s", "kiosk", "hide_hosts", "name")


def _answer(obj: dict, status: int = 200) -> Response:
    return Response(status, encode_json(obj), JSON_TYPE, (("Cache-Control", "no-store"),))


class ShareHandlers:
    """``serve_share``, ``get_share_session``, ``get_shares``, ``post_share`` and ``delete_share``:
    part of ``DashboardHandler``."""

    def serve_share(self) -> Response:
        """The page, read-only: its script finds the link's id in its own address and carries it
        to every call as ``?share=``. An unknown or revoked link is 404, an expired one 410."""
        link_id = self.route_path[len("/s/"):]
        share, state = self.server.shares.lookup(urllib.parse.unquote(link_id)[:200])
        if share is None:
            raise HTTPError(404, "no such share link (it was revoked, or never existed)")
        if state == "expired":
            raise HTTPError(410, "this share link has expired")
        page = self._static_file("index.html")
        # The address is the secret: never cached, never sent on as a Referer (a security header too).
        return Response(200, page.body, page.content_type, (("Cache-Control", "no-store"),))

    def get_share_session(self) -> Response:
        """What the ``?share=`` session shows, for the page to lay itself out; 404 for anyone else."""
        share = getattr(self, "share", None)
        if share is None:
            raise HTTPError(404, "not a share session: open a share link (/s/<id>)")
        return _answer({"sections": list(share.sections), "kiosk": share.kiosk, "hide_hosts": share.hide_hosts,
                        "expires": share.expires})

    def get_shares(self) -> Response:
        return _answer({"shares": self.server.shares.listing()})

    def post_share(self) -> Response:
        body = self.read_json_body()
        unknown = sorted(set(body) - set(_FIELDS))
        if unknown:
            raise HTTPError(400, "unknown field %s: a share link has %s" % (unknown[0][:50], ", ".join(_FIELDS)))
        if "sections" not in body:
            raise HTTPError(400, 'a share link needs sections, e.g. {"sections": ["system", "jobs"]}')
        try:
            link_id, share = self.server.shares.add(body["sections"], expires_in_s=body.get("expires_in_s"),
                                                    kiosk=body.get("kiosk", False),
                                                    hide_hosts=body.get("hide_hosts", False), name=body.get("name", ""))
        except TokenFileError as exc:
            raise HTTPError(503, str(exc), (("Retry-After", "30"),)) from None
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from None
        return _answer(dict(share.public(), id=link_id, url="/s/" + link_id), 201)

    def delete_share(self) -> Response:
        handle = urllib.parse.unquote(self.route_path[len("/api/shares/"):])
        try:
            revoked = self.server.shares.revoke(handle)
        except TokenFileError as exc:
            raise HTTPError(503, str(exc), (("Retry-After", "30"),)) from None
        if not revoked:
            raise HTTPError(404, "no share link has the handle %s" % handle[:64])
        self.server.hub.wake()  # its streams end now, not at the hub's next timeout
        return _answer({"status": "revoked", "handle": handle})
