"""Prometheus text exposition (format 0.0.4) of a snapshot, for ``GET /metrics``.

One concept: a pure function from a published snapshot to the text a Prometheus server scrapes
(prometheus client_python's ``exposition.py``); it reads nothing else and keeps no state. The
families themselves (``prometheus_families``) are also what remote write sends (#25), so a
series has one name whether it is scraped or pushed.

Invariants:
- one ``# HELP`` and one ``# TYPE`` per family, before its samples; a family name is claimed
  once, so no scrape ever sees a family twice;
- units in the names and ratios as 0..1 (Prometheus naming); system families are labelled as
  node_exporter labels them;
- an application name with labels (``jobs{queue="mail"}``) is a sample of its family (``jobs``);
  label values use the text format's three escapes and nothing else.
"""

from __future__ import annotations

import hashlib
import math
from typing import Callable

from sse_dashboard.registry import escape_label_value, is_finite_number, split_name

__all__ = ["render_prometheus", "prometheus_families", "prometheus_name", "PROMETHEUS_CONTENT_TYPE"]

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# (family, type, help, system field, scale): units in the name, ratios 0..1 (Prometheus naming).
_SYSTEM_FAMILIES = (
    ("system_cpu_usage_ratio", "gauge", "CPU busy time over the last interval, 0..1", "cpu_percent", 0.01),
    ("system_cpu_logical_cores", "gauge", "Logical CPUs", "cpu_count", 1),
    ("system_memory_total_bytes", "gauge", "Physical memory", "memory_total_bytes", 1),
    ("system_memory_used_bytes", "gauge", "Physical memory in use (total - available)", "memory_used_bytes", 1),
    ("system_memory_available_bytes", "gauge", "Physical memory available", "memory_available_bytes", 1),
    ("system_swap_total_bytes", "gauge", "Swap space", "swap_total_bytes", 1),
    ("system_swap_used_bytes", "gauge", "Swap space in use", "swap_used_bytes", 1),
    ("system_disk_read_bytes_per_second", "gauge", "Disk reads over the last interval", "disk_read_bytes_per_s", 1),
    ("system_disk_written_bytes_per_second", "gauge", "Disk writes over the last interval", "disk_write_bytes_per_s", 1),
    ("system_network_received_bytes_total", "counter", "Bytes received on all interfaces but loopback", "net_recv_bytes", 1),
    ("system_network_sent_bytes_total", "counter", "Bytes sent on all interfaces but loopback", "net_sent_bytes", 1),
    ("system_load1", "gauge", "Load average over 1 minute", "load_1", 1),
    ("system_load5", "gauge", "Load average over 5 minutes", "load_5", 1),
    ("system_load15", "gauge", "Load average over 15 minutes", "load_15", 1),
    ("system_processes", "gauge", "Processes running", "process_count", 1),
    ("system_uptime_seconds", "gauge", "Time since the machine booted", "uptime_s", 1),
)
_DISK_FAMILIES = (
    ("system_disk_size_bytes", "Size of the filesystem", "disk_total_bytes"),
    ("system_disk_used_bytes", "Space used on the filesystem", "disk_used_bytes"),
    ("system_disk_free_bytes", "Space free on the filesystem", "disk_free_bytes"),
)
_SERVER_FAMILIES = (
    ("sse_dashboard_stream_clients", "gauge", "Open /api/metrics/stream connections", "clients"),
    ("sse_dashboard_dropped_clients_total", "counter", "Streams dropped for not reading", "dropped"),
    ("sse_dashboard_resident_memory_bytes", "gauge", "Resident memory of the dashboard process", "rss_bytes"),
    ("sse_dashboard_uptime_seconds", "gauge", "Time since the dashboard started", "uptime"),
    ("sse_dashboard_statsd_lines_total", "counter", "StatsD lines received", "statsd_lines"),
    ("sse_dashboard_statsd_malformed_total", "counter", "StatsD lines skipped as malformed", "statsd_malformed"),
    ("sse_dashboard_statsd_dropped_total", "counter", "StatsD lines refused by the metric limits", "statsd_dropped"),
    ("sse_dashboard_statsd_tcp_closed_total", "counter", "StatsD TCP senders closed to make room for a new one",
     "statsd_tcp_closed"),
)


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _sample_value(value: float) -> str:
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def prometheus_name(name: str, counter: bool) -> str:
    """An application metric's exposition name: ``jobs`` -> ``jobs_total`` for a counter.

    Our names already fit Prometheus' ``[a-zA-Z_:][a-zA-Z0-9_:]*``, but colons are
    reserved for recording rules (promtool refuses them), so they become ``_``; and
    ``__`` is reserved by Prometheus, so such names get an ``app`` prefix."""
    name = name.replace(":", "_")
    if counter and not name.endswith("_total"):
        name += "_total"
    if name.startswith("__"):
        name = "app" + name
    return name


def render_prometheus(snapshot: dict) -> str:
    """The snapshot as Prometheus text: one HELP and TYPE per family, before its samples."""
    lines: list[str] = []
    for name, kind, help_text, samples in prometheus_families(snapshot):
        lines.append("# HELP %s %s" % (name, _escape_help(help_text)))
        lines.append("# TYPE %s %s" % (name, kind))
        for labels, value in samples:
            label_text = ",".join('%s="%s"' % (k, escape_label_value(str(v))) for k, v in labels)
            lines.append("%s%s %s" % (name, "{%s}" % label_text if label_text else "", _sample_value(value)))
    return "\n".join(lines) + "\n"


def prometheus_families(snapshot: dict) -> list[tuple[str, str, str, list]]:
    """The snapshot's series as ``(family, type, help, [(labels, value), ...])``, the one naming
    that ``GET /metrics`` and remote write (``export.remote_write``) both use. ``labels`` is a
    tuple of ``(name, value)`` pairs; a value is a finite or non-finite number, never ``None``.

    A family name can be claimed once: system and server families first, then
    counters, then gauges, each in name order. A later application metric that
    maps to a taken name (``a:b`` and ``a_b``) gets a suffix made from a hash of
    its own name, so it is neither dropped nor able to break a scrape."""
    families: list[tuple[str, str, str, list]] = []
    taken: set[str] = set()

    def family(name: str, kind: str, help_text: str, samples: list) -> None:
        samples = [(labels, v) for labels, v in samples if v is not None]
        if name in taken or not samples:
            return
        taken.add(name)
        families.append((name, kind, help_text, samples))

    system = snapshot.get("system") or {}
    for name, kind, help_text, field, scale in _SYSTEM_FAMILIES:
        value = system.get(field)
        family(name, kind, help_text, [((), value * scale if scale != 1 and value is not None else value)])
    cores = system.get("cpu_per_core") or []
    family("system_cpu_core_usage_ratio", "gauge", "CPU busy time per core over the last interval, 0..1",
           [((("core", i),), v / 100.0 if v is not None else None) for i, v in enumerate(cores)])
    path = system.get("disk_path") or ""
    for name, help_text, field in _DISK_FAMILIES:
        family(name, "gauge", help_text, [((("path", path),), system.get(field))])
    _device_families(family, system)
    server = snapshot.get("server") or {}
    for name, kind, help_text, field in _SERVER_FAMILIES:
        family(name, kind, help_text, [((), server.get(field))])
    family("sse_dashboard_samples_total", "counter", "Samples taken since the dashboard started", [((), snapshot.get("seq"))])
    if "alerts" in snapshot:
        family("sse_dashboard_alerts_firing", "gauge", "Alert rules currently firing",
               [((), len(snapshot.get("alerts") or []))])
    beats = [b for b in snapshot.get("heartbeats") or [] if isinstance(b, dict)]
    family("sse_dashboard_heartbeat_last_seen_seconds", "gauge", "When each heartbeat was last received (unix time)",
           [((("name", b["name"]),), b.get("last_seen")) for b in beats])
    family("sse_dashboard_heartbeat_up", "gauge", "1 while a heartbeat is up and on time, 0 when down or silent",
           [((("name", b["name"]),), 1 if b.get("status") == "up" and not b.get("firing") else 0) for b in beats])
    jobs = [j for j in snapshot.get("jobs") or [] if isinstance(j, dict)]
    family("sse_dashboard_job_up", "gauge", "1 unless a job monitor is down (as Healthchecks' hc_check_up)",
           [((("job", j["slug"]),), 0 if j.get("status") == "down" else 1) for j in jobs])
    family("sse_dashboard_job_started", "gauge", "1 while a job has started and not ended",
           [((("job", j["slug"]),), 1 if j.get("running") else 0) for j in jobs])
    family("sse_dashboard_job_last_duration_seconds", "gauge", "How long a job's last run took (from its start ping)",
           [((("job", j["slug"]),), j.get("last_duration")) for j in jobs])
    family("sse_dashboard_job_last_ping_timestamp_seconds", "gauge", "When a job last ended a run (unix time)",
           [((("job", j["slug"]),), j.get("last_ping")) for j in jobs])
    family("sse_dashboard_info", "gauge", "The collector in use", [((("source", system.get("source", "")),), 1)])
    for section, kind in (("counters", "counter"), ("gauges", "gauge")):
        # Names with labels (jobs{queue="mail"}) are samples of one family (jobs).
        by_base: dict[str, list] = {}
        for name, value in sorted((snapshot.get(section) or {}).items()):
            base, labels = split_name(name) if "{" in name else (name, {})
            by_base.setdefault(base, []).append((tuple(sorted(labels.items())), value))
        for base, samples in by_base.items():
            exposed = prometheus_name(base, counter=kind == "counter")
            if exposed in taken:
                exposed = _disambiguated(exposed, base, kind == "counter")
            family(exposed, kind, "Application %s %s" % (kind, base), samples)
    return families


def _device_families(family: Callable[..., None], system: dict) -> None:
    """Every filesystem, disk, interface and sensor, labelled the way node_exporter labels them."""
    def rows(key: str) -> list:
        value = system.get(key)
        return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []

    fs_labels = lambda f: (("device", f.get("device", "")), ("fstype", f.get("fstype", "")),  # noqa: E731
                           ("mountpoint", f.get("mountpoint", "")))
    for name, help_text, field in (("system_filesystem_size_bytes", "Size of each real filesystem", "total_bytes"),
                                   ("system_filesystem_used_bytes", "Space used on each filesystem", "used_bytes"),
                                   ("system_filesystem_free_bytes", "Space free to ordinary users", "free_bytes")):
        family(name, "gauge", help_text, [(fs_labels(f), f.get(field)) for f in rows("filesystems")])
    for name, help_text, field in (
            ("system_disk_device_read_bytes_per_second", "Reads per disk over the last interval", "read_bytes_per_s"),
            ("system_disk_device_written_bytes_per_second", "Writes per disk over the last interval",
             "write_bytes_per_s")):
        family(name, "gauge", help_text, [((("device", d.get("device", "")),), d.get(field)) for d in rows("disks")])
    for name, help_text, field in (
            ("system_network_interface_received_bytes_total", "Bytes received per interface", "recv_bytes"),
            ("system_network_interface_sent_bytes_total", "Bytes sent per interface", "sent_bytes")):
        family(name, "counter", help_text, [((("interface", i.get("name", "")),), i.get(field))
                                            for i in rows("interfaces")])
    family("system_temperature_celsius", "gauge", "Temperature per sensor",
           [((("sensor", t.get("sensor", "")), ("label", t.get("label", ""))), t.get("celsius"))
            for t in rows("temperatures")])
    family("system_fan_rpm", "gauge", "Fan speed per sensor",
           [((("sensor", f.get("sensor", "")), ("label", f.get("label", ""))), f.get("rpm")) for f in rows("fans")])
    battery = system.get("battery") if isinstance(system.get("battery"), dict) else {}
    family("system_battery_ratio", "gauge", "Battery charge, 0..1",
           [((), battery["percent"] / 100.0 if is_finite_number(battery.get("percent")) else None)])
    family("system_battery_plugged", "gauge", "1 while on mains power",
           [((), None if battery.get("plugged") is None else int(bool(battery["plugged"])))])


def _disambiguated(exposed: str, name: str, counter: bool) -> str:
    tag = "_%s" % hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]
    if counter:
        return exposed[: -len("_total")] + tag + "_total"
    return exposed + tag
