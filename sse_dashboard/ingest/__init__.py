"""Ingest: the protocols applications already speak, turned into counters, gauges and events.

- ``statsd``: StatsD lines over UDP and TCP (timers and sets summed up per interval);
- ``push``: Prometheus push, as the Pushgateway takes it (groups of metrics a batch job sends);
- ``otlp``, ``otlp_metrics``, ``otlp_logs``: OpenTelemetry's OTLP/HTTP (an SDK's exports: its
  metrics into the registry, its logs into typed events).

Each parses its protocol whole before anything is stored, and hands the result to the
registry (``sse_dashboard.registry``), whose limits and durability apply.

May import: ``registry``, ``events`` and the standard library (and, only when a protobuf OTLP
body comes, ``opentelemetry-proto``, the optional ``[otlp]`` extra); never ``web`` (the HTTP
routes that carry a push read its body and call ``push`` here), never ``storage``.
"""
