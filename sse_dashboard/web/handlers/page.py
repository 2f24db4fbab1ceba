"""The page and its files: ``GET /``, ``/index.html`` and ``/static/<file>``.

One concept: serving ``static/`` safely. Nothing outside it can be named on any OS; the
content type comes from an explicit map first. ``/?token=`` trades the token for a cookie.
"""

from __future__ import annotations

import mimetypes
import urllib.parse

from sse_dashboard.web.guard import cookie_name, cookie_value, grant_for, tokens_in_use
from sse_dashboard.web.response import HTTPError, Response

__all__ = ["PageHandlers", "STATIC_CONTENT_TYPES"]

STATIC_CONTENT_TYPES = {
    # Explicit, because Windows' registry can make mimetypes say text/plain for
    # .js (cpython#88141), which browsers refuse for scripts with nosniff.
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".png": "image/png",
    ".json": "application/json; charset=utf-8",
}


class PageHandlers:
    """``serve_index`` and ``serve_static``: part of ``DashboardHandler``."""

    def serve_index(self) -> Response:
        offered = self.query_value("token")
        policy = self.server.policy
        if offered is not None and tokens_in_use(policy):
            if grant_for(policy, offered) is None:  # --token or a stored one; each route checks its scope
                raise HTTPError(401, "wrong token")
            # Trade the token in the URL for an HttpOnly cookie, and drop it from the address bar
            # (and from history); EventSource cannot send an Authorization header.
            cookie = "%s=%s; HttpOnly; SameSite=Strict; Path=/" % (cookie_name(self.server.server_port),
                                                                  cookie_value(offered))
            if self._through_https_public_url():
                cookie += "; Secure"  # never sent back over plain http, where anyone on the path reads it
            return Response(303, b"", "text/plain", (("Location", "/"), ("Set-Cookie", cookie),
                                                    ("Cache-Control", "no-store")))
        return self._static_file("index.html")

    def serve_static(self) -> Response:
        return self._static_file(urllib.parse.unquote(self.route_path[len("/static/"):]))

    def _static_file(self, relative: str) -> Response:
        # Refuse anything that could name a file outside static/ on any OS:
        # backslashes and drive letters (Windows), NUL, absolute paths, dot segments.
        if (not relative or "\\" in relative or "\x00" in relative or ":" in relative
                or relative.startswith("/") or any(p in ("", ".", "..") for p in relative.split("/"))):
            raise HTTPError(404, "not found")
        root = self.server.static_dir
        try:
            path = (root / relative).resolve()
            if root not in path.parents or not path.is_file():
                raise HTTPError(404, "not found")
            content = path.read_bytes()
        except (OSError, ValueError):  # a name too long for the OS (ENAMETOOLONG), and the like
            raise HTTPError(404, "not found") from None
        content_type = STATIC_CONTENT_TYPES.get(path.suffix.lower())
        if content_type is None:
            content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return Response(200, content, content_type, (("Cache-Control", "no-cache"),))

    def _through_https_public_url(self) -> bool:
        """Whether this request came through ``--public-url`` and it is https (a TLS proxy)."""
        public = self.app.config.public_url
        if not public or not public.startswith("https://"):
            return False
        host = (self.headers.get("Host") or "").strip().lower().rstrip(".")
        named = urllib.parse.urlsplit(public)
        port = named.port or 443
        return host in (named.hostname or "", "%s:%d" % (named.hostname, port))
