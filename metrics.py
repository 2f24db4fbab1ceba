"""The application's counters and gauges, from a checkout: a face over ``sse_dashboard.registry``.

    >>> from metrics import MetricsRegistry
    >>> registry = MetricsRegistry()
    >>> registry.inc("jobs_done"); registry.set("queue_depth", 7)

The registry (and the grammar of metric names) lives in ``sse_dashboard/registry.py``; the
sampler, the system collectors and the Prometheus text, which this module once held too, are
``sse_dashboard/sampler.py``, ``sse_dashboard/collectors/system.py`` and
``sse_dashboard/exposition.py``. Not installed; installed, import from ``sse_dashboard.registry``.
"""

from sse_dashboard.registry import METRIC_NAME_RE, MetricsRegistry, RegistrySealed, canonical_name, labeled_name

__all__ = ["METRIC_NAME_RE", "MetricsRegistry", "RegistrySealed", "canonical_name", "labeled_name"]
