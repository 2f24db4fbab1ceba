"""sse-dashboard: a live monitoring dashboard in Python's standard library.

One package; its folders are its layers, and imports only point down the list:

- ``cli``: the command line (``main``); ``app``: ``build_app()``, the one place that makes
  every part and connects them; ``config``: ``Config``, what a dashboard is started with;
- ``web/``: HTTP: the server, the route table with who may use each route, the handlers,
  the stream hub, MCP for agents, the OpenAPI description, exports, access checks;
- ``application``: the wired parts of one dashboard and the reads HTTP and MCP share;
- ``alerting/``: rules, heartbeats and notifications: one alert shape, one "post, then notify";
- ``sampler``: one ``Sample`` per interval, handed to the subscribers it was given;
- ``ingest/``: the protocols applications already speak: StatsD, Prometheus push;
- ``storage/``: what must survive a restart (SQLite), or the same reads from memory;
- ``collectors/``: what the machine says: system, devices, processes; one rate calculator;
- ``exposition``: the Prometheus text of a snapshot;
- ``registry``: the application's counters and gauges, and the grammar of their names;
- ``events``: the event log, the data at the bottom.

Locks, where two meet: the registry's, then storage's write lock (a counter's commit runs
under the first and takes the second); nothing takes them the other way round.

``client`` is the library applications report with (it imports nothing of the rest);
``demo`` feeds synthetic data. The checkout's root keeps the user's names as short faces
over this package: ``sse_server.py`` (run it), ``metrics.py`` and ``events.py``.
"""

__version__ = "0.1.0"
