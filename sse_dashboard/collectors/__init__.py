"""Collectors: what the machine says, read on demand, never pushed.

- ``system``: CPU, memory, disk, network, load, uptime (psutil, or the standard library:
  ``/proc`` on Linux, ``windows`` through ctypes); the sampler thread is its only caller;
- ``devices``: every real filesystem, disk, interface and sensor, as lists for the snapshot;
- ``processes``: the top processes, read only when someone asks;
- ``rates``: the one rate calculator (two readings over the measured interval).

May import: the standard library and each other; nothing else of the package (no registry,
no storage, no HTTP). A collector degrades (``None`` and a warning once), it never raises.
"""
