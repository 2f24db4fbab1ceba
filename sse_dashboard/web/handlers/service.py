"""The service itself: its health, its OpenAPI description, and MCP for agents.

One concept: what machines ask about the dashboard. ``get_health`` is the application's
``health()``; MCP's tools read through the same application object (``web/mcp.py``).
"""

from __future__ import annotations

from sse_dashboard import __version__
from sse_dashboard.sampler import encode_json
from sse_dashboard.web.guard import grant_for, offered_token, tokens_in_use
from sse_dashboard.web.openapi import openapi_spec
from sse_dashboard.web.request import MAX_BODY_BYTES, MAX_JSON_DEPTH, json_depth
from sse_dashboard.web.response import JSON_TYPE, HTTPError, Response, json_response

__all__ = ["ServiceHandlers"]


class ServiceHandlers:
    """``get_health``, ``get_openapi`` and ``post_mcp``: part of ``DashboardHandler``."""

    def get_health(self) -> Response:
        return json_response(self.app.health())

    def get_openapi(self) -> Response:
        return json_response(openapi_spec(__version__))

    def _may_write(self) -> bool:
        """Whether this request's token has the 'write' scope (or no tokens are in use): MCP's
        writing tools need it, its reading ones only the route's 'read' (#26)."""
        policy = self.server.policy
        if not tokens_in_use(policy):
            return True
        grant = grant_for(policy, offered_token(policy, self.headers))
        return grant is not None and "write" in grant.scopes

    def post_mcp(self) -> Response:
        """POST /mcp: the Model Context Protocol, stateless and JSON only (web/mcp.py)."""
        accept = self.headers.get("Accept", "*/*").lower()
        if not any(kind in accept for kind in ("application/json", "application/*", "*/*")):
            raise HTTPError(406, "Accept must include application/json (this MCP server answers in JSON)")
        if self.content_type() != "application/json":
            raise HTTPError(415, "Content-Type must be application/json")
        raw = self.read_body(MAX_BODY_BYTES)
        if json_depth(raw) > MAX_JSON_DEPTH:
            status, answer = 400, {"jsonrpc": "2.0", "id": None, "error": {
                "code": -32700, "message": "Parse error: nested more than %d deep" % MAX_JSON_DEPTH}}
        else:
            status, answer = self.server.mcp.handle(raw, self.headers, self._may_write())
        if answer is None:
            return Response(202, b"", JSON_TYPE)
        return Response(status, encode_json(answer), JSON_TYPE, (("Cache-Control", "no-store"),))
