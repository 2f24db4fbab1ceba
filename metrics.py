"""The application's counters and gauges, from a checkout: a face over ``sse_dashboard``.

    >>> from metrics import MetricsRegistry
    >>> registry = MetricsRegistry()
    >>> registry.inc("jobs_done"); registry.set("queue_depth", 7)

Not installed; installed, import from ``sse_dashboard.metrics``.
"""

from sse_dashboard.metrics import METRIC_NAME_RE, MetricsRegistry, RegistrySealed, canonical_name, labeled_name

__all__ = ["METRIC_NAME_RE", "MetricsRegistry", "RegistrySealed", "canonical_name", "labeled_name"]
