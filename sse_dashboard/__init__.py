"""sse-dashboard: a live monitoring dashboard in Python's standard library.

One package; its folders are its layers, and imports only point down the list:

- ``web/``: HTTP: the server, the route table with who may use each route, the stream hub,
  MCP for agents, the OpenAPI description, exports, access checks;
- ``alerting/``: rules, heartbeats and notifications;
- ``ingest/``: the protocols applications already speak: StatsD, Prometheus push;
- ``sampler``: one snapshot per interval, taken once for every client;
- ``storage/``: what must survive a restart (SQLite), and the recent samples in memory;
- ``collectors/``: what the machine says: system, devices, processes; one rate calculator;
- ``exposition``: the Prometheus text of a snapshot;
- ``registry``: the application's counters and gauges, and the grammar of their names;
- ``events``: the event log, the data at the bottom.

``client`` is the library applications report with (it imports nothing of the rest);
``demo`` feeds synthetic data. The checkout's root keeps the user's names as short faces
over this package: ``sse_server.py`` (run it), ``metrics.py`` and ``events.py``.
"""

__version__ = "0.1.0"
