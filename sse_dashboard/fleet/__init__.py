"""The fleet: every dashboard an engine holds, read back from that engine (#25).

Each dashboard pushes its samples with ``--remote-write`` (``export``); one of them, started with
``--fleet URL``, asks the engine's Prometheus query API who is there and how each one is doing:

- ``engine``: ``QueryClient``, the Prometheus HTTP query API (``/api/v1/query``,
  ``/api/v1/query_range``) over ``http.client``, with a timeout and a bounded answer, and the
  parsing of its answers (Prometheus, VictoriaMetrics, Thanos and Mimir answer alike);
- ``view``: ``Fleet``, one thread that asks the engine once per interval while someone is looking,
  and the listing it makes of the answers (one row per instance, the ones in trouble first),
  encoded once for every viewer.

May import: the standard library and ``outbound`` (URLs checked and shown redacted). It knows
nothing of HTTP serving or of the stream hub: ``app.build_app`` gives it the function that hands a new listing to the hub.
"""
