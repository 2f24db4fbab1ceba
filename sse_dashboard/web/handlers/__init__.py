"""The route handlers, one class per resource, that ``web.handler.DashboardHandler`` combines.

Owns: turning a checked request into a ``Response`` for the page (``page``), metrics
(``metrics``), events (``events``), the event stream's opening (``stream``), alerts and
heartbeats (``alerts``), Prometheus push (``push``), OpenTelemetry's OTLP/HTTP (``otlp``),
and the service itself: health, the OpenAPI description, MCP (``service``). Each handler is named ``<verb>_<resource>`` as in
``web.routes.ROUTES``. They read the dashboard through ``self.app`` (the ``Application``),
and the server's own parts (the stream hub, the page's folder, MCP) through ``self.server``.

May import: ``web.request``, ``web.response``, ``web.exports``, ``web.streams``,
``web.openapi``, ``web.guard`` and the layers below ``web``; never ``web.handler`` or
``web.server``, which import these.
"""
