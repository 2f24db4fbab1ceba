"""HTTP: how the dashboard is reached.

Owns: the server's lifecycle (``server``), the dispatcher (``handler``) and the route table
with who may use each route (``routes``), reading requests (``request``) and answering them
(``response``), the handlers by resource (``handlers/``), access decisions (``guard``), the
stream hub and the SSE frame (``streams``), MCP for agents (``mcp``), the OpenAPI
description (``openapi``, with the data's shapes in ``schemas``), the streamed exports
(``exports``), a status page as HTML and Atom (``statuspage``), and the credentials: scoped tokens
(``tokens``) and share links (``shares``, ``shareview``), each list kept in its file the one way
``keptlist`` keeps it.

May import: ``application`` (the ``Application`` it serves), ``config``, and the layers below
them (alerting, ingest, storage, metrics, events). Nothing below imports ``web``.
"""
