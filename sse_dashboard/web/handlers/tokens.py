"""Scoped tokens over HTTP (#26): ``GET /api/tokens``, ``POST /api/tokens``, ``DELETE /api/tokens/<name>``.

One concept: the admin's view of the token store (``web/tokens.py``), the same as
``sse-dashboard token list|add|revoke``. A new token's text is in the answer to its POST and
nowhere else, ever (``Cache-Control: no-store``); listings carry names and scopes, never a
token or its hash. The routes need the admin scope (``routes.py``).
"""

from __future__ import annotations

import urllib.parse

from sse_dashboard.sampler import encode_json
from sse_dashboard.web.response import JSON_TYPE, HTTPError, Response
from sse_dashboard.web.tokens import TokenExists, TokenFileError

__all__ = ["TokenHandlers"]



def _answer(obj: dict, status: int = 200) -> Response:
    return Response(status, encode_json(obj), JSON_TYPE, (("Cache-Control", "no-store"),))


class TokenHandlers:
    """``get_tokens``, ``post_token`` and ``delete_token``: part of ``DashboardHandler``."""

    def get_tokens(self) -> Response:
        return _answer({"tokens": self.server.tokens.listing()})

    def post_token(self) -> Response:
        body = self.read_json_body()
        unknown = sorted(set(body) - {"name", "scopes"})
        if unknown:
            raise HTTPError(400, "unknown field %s: a token has a name and scopes" % unknown[0][:50])
        if "name" not in body or "scopes" not in body:
            raise HTTPError(400, "a token needs a name and scopes, e.g. {\"name\": \"ci\", \"scopes\": [\"write\"]}")
        try:
            secret, entry = self.server.tokens.add(body["name"], body["scopes"] if isinstance(body["scopes"], list) else ())
        except TokenExists as exc:
            raise HTTPError(409, str(exc)) from None
        except TokenFileError as exc:
            raise HTTPError(503, str(exc), (("Retry-After", "30"),)) from None
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from None
        return _answer({"name": entry.name, "scopes": list(entry.scopes), "created": entry.created, "token": secret}, 201)

    def delete_token(self) -> Response:
        name = urllib.parse.unquote(self.route_path[len("/api/tokens/"):])
        try:
            revoked = self.server.tokens.revoke(name)
        except TokenFileError as exc:
            raise HTTPError(503, str(exc), (("Retry-After", "30"),)) from None
        if not revoked:
            raise HTTPError(404, "no token is named %s" % name[:64])
        self.server.hub.wake()  # its streams end now, not at the hub's next timeout
        return _answer({"status": "revoked", "name": name})
