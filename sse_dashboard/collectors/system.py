"""What the machine says: CPU, memory, disk, network, load, uptime, and its devices.

One concept: the system collector, from psutil when it is installed, else from the standard
library (``/proc`` on Linux, ctypes on Windows: ``windows.py``; ``shutil.disk_usage`` and
``os.getloadavg`` everywhere), behind one protocol: ``collect()`` returns a dict of
``SYSTEM_FIELDS`` plus ``source``.

Invariants:
- only the sampler thread calls a collector, so only it calls psutil: since psutil 5.9.6
  ``cpu_percent()`` keeps its baseline per calling thread (psutil#2282), and its first reading
  is a meaningless 0.0, so the first sample reports ``None`` instead;
- rates come from two readings over the measured monotonic interval (``rates.Rates``);
- every number is finite or ``None``: NaN never reaches ``json.dumps(allow_nan=False)``.

Intentional choices: a collector degrades instead of raising. Each reading (cpu, memory,
disk, ...) sits in its own ``try``; a failure gives ``None`` for that field and one warning per
cause. System boundaries (``proc_root``, ``sys_root``, ``platform``, the clock, the psutil
module) are constructor parameters, so tests feed fixture files and fake modules.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

from sse_dashboard.collectors import devices, windows
from sse_dashboard.collectors.rates import Rates

__all__ = ["SystemCollector", "PsutilCollector", "StdlibCollector", "make_system_collector", "default_disk_path",
           "SYSTEM_FIELDS", "LIST_FIELDS"]

log = logging.getLogger(__name__)

SYSTEM_FIELDS = (
    "cpu_percent",
    "cpu_per_core",
    "cpu_count",
    "memory_total_bytes",
    "memory_used_bytes",
    "memory_available_bytes",
    "memory_percent",
    "swap_total_bytes",
    "swap_used_bytes",
    "swap_percent",
    "disk_path",
    "disk_total_bytes",
    "disk_used_bytes",
    "disk_free_bytes",
    "disk_percent",
    "disk_read_bytes_per_s",
    "disk_write_bytes_per_s",
    "net_sent_bytes",
    "net_recv_bytes",
    "net_sent_bytes_per_s",
    "net_recv_bytes_per_s",
    "load_1",
    "load_5",
    "load_15",
    "process_count",
    "uptime_s",
    # Lists (devices.py): every real filesystem, disk, interface; sensors where psutil has them.
    "filesystems",
    "disks",
    "interfaces",
    "temperatures",
    "fans",
    "battery",
)
LIST_FIELDS = ("cpu_per_core", "filesystems", "disks", "interfaces", "temperatures", "fans", "battery")


def default_disk_path() -> str:
    """The root of the drive this program runs from (``C:\\`` on Windows, ``/`` elsewhere)."""
    return Path(sys.executable or ".").resolve().anchor or os.sep


class SystemCollector:
    """The collector protocol: ``collect()`` returns a dict of ``SYSTEM_FIELDS``
    (``None`` where unknown) plus ``source``; ``rss_bytes()`` is this process's
    resident memory. Only the sampler thread calls either."""

    source = "none"

    def __init__(self, disk_path: str | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.disk_path = disk_path or default_disk_path()
        # One Rates per group read together (an update forgets the keys it is not given).
        self._disk_io_rates = Rates(clock)
        self._net_io_rates = Rates(clock)
        self._disk_rates = Rates(clock, ndigits=1)   # per disk
        self._net_rates = Rates(clock, ndigits=1)    # per interface
        self._warned: set[str] = set()

    def collect(self) -> dict:
        system: dict[str, Any] = dict.fromkeys(SYSTEM_FIELDS)
        system["source"] = self.source
        for reader in self._readers():
            try:
                system.update(reader())
            except Exception as exc:  # degrade: one field group is None, not the sample
                self._warn_once(reader.__name__, exc)
        for key, value in system.items():
            if isinstance(value, float) and not math.isfinite(value):
                system[key] = None
        return system

    def rss_bytes(self) -> int | None:
        return None

    def _readers(self) -> list:
        return []

    def _warn_once(self, what: str, exc: BaseException) -> None:
        if what not in self._warned:
            self._warned.add(what)
            log.warning("system metric %s unavailable (%s: %s); reporting null", what.lstrip("_"), type(exc).__name__, exc)

    def _disk_usage(self) -> dict:
        usage = shutil.disk_usage(self.disk_path)
        return {
            "disk_path": self.disk_path,
            "disk_total_bytes": usage.total,
            "disk_used_bytes": usage.used,
            "disk_free_bytes": usage.free,
            # As df and psutil: used / (used + available to ordinary users). The blocks
            # reserved for root (5 % on ext4) count as neither, so the disk is "100 %"
            # when ordinary users can no longer write; used / total never reaches it.
            "disk_percent": _percent(usage.used, usage.used + usage.free),
        }

    def _load(self) -> dict:
        load = os.getloadavg()  # AttributeError on Windows: logged once, fields stay None
        return {"load_1": load[0], "load_5": load[1], "load_15": load[2]}


def _percent(part: float, whole: float) -> float | None:
    return round(100.0 * part / whole, 2) if whole else None


class PsutilCollector(SystemCollector):
    """System metrics from psutil (``pip install sse-dashboard[system]``)."""

    source = "psutil"

    def __init__(self, psutil: Any, disk_path: str | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(disk_path, clock)
        self._psutil = psutil
        self._process = None
        self._primed = False

    def _readers(self) -> list:
        return [self._cpu, self._memory, self._disk_usage, self._disk_io, self._net, self._load, self._processes,
                self._uptime, self._filesystems, self._devices, self._sensors]

    def _filesystems(self) -> dict:
        # all=True, then our own filter: psutil's all=False leaves out tmpfs (/tmp can fill up too).
        mounts = [(p.device, p.mountpoint, p.fstype) for p in self._psutil.disk_partitions(all=True)]
        return {"filesystems": devices.filesystem_usage(devices.real_filesystems(mounts))}

    def _devices(self) -> dict:
        disks = self._psutil.disk_io_counters(perdisk=True) or {}
        nics = self._psutil.net_io_counters(pernic=True) or {}
        sys_net = Path("/sys/class/net") if Path("/sys/class/net").is_dir() else None
        return {"disks": devices.disk_list({n: (d.read_bytes, d.write_bytes) for n, d in disks.items()
                                            if _is_whole_disk(n)}, self._disk_rates),
                "interfaces": devices.interface_list({n: (c.bytes_recv, c.bytes_sent) for n, c in nics.items()},
                                                     self._net_rates, sys_net)}

    def _sensors(self) -> dict:
        return devices.psutil_sensors(self._psutil)

    def _cpu(self) -> dict:
        psutil = self._psutil
        total = psutil.cpu_percent(interval=None)
        per_core = psutil.cpu_percent(interval=None, percpu=True)
        count = psutil.cpu_count() or len(per_core) or None
        if not self._primed:
            # The first call only sets the baseline and returns 0.0 (psutil docs).
            self._primed = True
            return {"cpu_count": count}
        return {"cpu_percent": total, "cpu_per_core": list(per_core), "cpu_count": count}

    def _memory(self) -> dict:
        vm = self._psutil.virtual_memory()
        sw = self._psutil.swap_memory()
        return {
            "memory_total_bytes": vm.total,
            "memory_used_bytes": vm.total - vm.available,
            "memory_available_bytes": vm.available,
            "memory_percent": vm.percent,
            "swap_total_bytes": sw.total,
            "swap_used_bytes": sw.used,
            "swap_percent": sw.percent,
        }

    def _disk_io(self) -> dict:
        io = self._psutil.disk_io_counters()
        per_s = self._disk_io_rates.update({"read": io.read_bytes if io else None,
                                            "write": io.write_bytes if io else None})
        return {"disk_read_bytes_per_s": per_s["read"], "disk_write_bytes_per_s": per_s["write"]}

    def _net(self) -> dict:
        io = self._psutil.net_io_counters()
        per_s = self._net_io_rates.update({"sent": io.bytes_sent, "recv": io.bytes_recv})
        return {
            "net_sent_bytes": io.bytes_sent,
            "net_recv_bytes": io.bytes_recv,
            "net_sent_bytes_per_s": per_s["sent"],
            "net_recv_bytes_per_s": per_s["recv"],
        }

    def _load(self) -> dict:
        load = self._psutil.getloadavg()
        return {"load_1": load[0], "load_5": load[1], "load_15": load[2]}

    def _processes(self) -> dict:
        return {"process_count": len(self._psutil.pids())}

    def _uptime(self) -> dict:
        return {"uptime_s": max(0.0, time.time() - self._psutil.boot_time())}

    def rss_bytes(self) -> int | None:
        try:
            if self._process is None:
                self._process = self._psutil.Process()
            return self._process.memory_info().rss
        except Exception:
            return None


class StdlibCollector(SystemCollector):
    """System metrics from the standard library alone.

    Linux: ``/proc`` (``proc_root`` lets tests feed fixture files).
    Windows: ``ctypes`` calls into kernel32/psapi (``windows.py``). Everywhere:
    ``shutil.disk_usage`` and ``os.getloadavg`` where it exists.
    """

    source = "stdlib"

    def __init__(
        self,
        proc_root: str | Path = "/proc",
        disk_path: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        platform: str = os.name,
        sys_root: str | Path = "/sys",
    ) -> None:
        super().__init__(disk_path, clock)
        self.proc_root = Path(proc_root)
        self.sys_root = Path(sys_root)
        self._platform = platform
        self._cpu_times: dict[str, tuple[float, float]] = {}

    def _readers(self) -> list:
        readers = [self._cpu_count, self._disk_usage]
        if self._platform == "nt":
            return readers + [self._windows_cpu, self._windows_memory, self._windows_uptime, self._windows_drives]
        if self.proc_root.is_dir():
            readers += [self._proc_cpu, self._proc_memory, self._proc_disk_io, self._proc_net,
                        self._proc_processes, self._proc_uptime, self._proc_filesystems, self._proc_devices]
        return readers + [self._load]

    def _cpu_count(self) -> dict:
        return {"cpu_count": os.cpu_count()}

    def _busy_percent(self, key: str, busy: float, total: float) -> float | None:
        previous = self._cpu_times.get(key)
        self._cpu_times[key] = (busy, total)
        if previous is None or total <= previous[1]:
            return None
        return round(100.0 * max(0.0, busy - previous[0]) / (total - previous[1]), 1)

    # --- Linux /proc -------------------------------------------------------

    def _read(self, *parts: str) -> str:
        return self.proc_root.joinpath(*parts).read_text(encoding="ascii", errors="replace")

    def _proc_cpu(self) -> dict:
        total_pct = None
        per_core = []
        for line in self._read("stat").splitlines():
            if not line.startswith("cpu"):
                continue
            name, *fields = line.split()
            values = [float(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
            idle = values[3] + (values[4] if len(values) > 4 else 0.0)
            total = sum(values)
            pct = self._busy_percent(name, total - idle, total)
            if name == "cpu":
                total_pct = pct
            else:
                per_core.append(pct)
        if total_pct is None:
            return {}
        return {"cpu_percent": total_pct, "cpu_per_core": per_core if None not in per_core else None}

    def _proc_memory(self) -> dict:
        info = {}
        for line in self._read("meminfo").splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts:
                info[key] = int(parts[0]) * 1024  # kB
        total = info["MemTotal"]
        available = info.get("MemAvailable", info.get("MemFree", 0) + info.get("Cached", 0))
        swap_total = info.get("SwapTotal", 0)
        swap_used = swap_total - info.get("SwapFree", 0)
        return {
            "memory_total_bytes": total,
            "memory_used_bytes": total - available,
            "memory_available_bytes": available,
            "memory_percent": _percent(total - available, total),
            "swap_total_bytes": swap_total,
            "swap_used_bytes": swap_used,
            "swap_percent": _percent(swap_used, swap_total) if swap_total else 0.0,
        }

    def _proc_disk_io(self) -> dict:
        read = written = 0
        for line in self._read("diskstats").splitlines():
            fields = line.split()
            if len(fields) < 10 or not _is_whole_disk(fields[2]):
                continue
            read += int(fields[5]) * 512  # sectors are always 512 bytes here
            written += int(fields[9]) * 512
        per_s = self._disk_io_rates.update({"read": read, "write": written})
        return {"disk_read_bytes_per_s": per_s["read"], "disk_write_bytes_per_s": per_s["write"]}

    def _proc_net(self) -> dict:
        recv = sent = 0
        for line in self._read("net", "dev").splitlines()[2:]:
            name, _, rest = line.partition(":")
            fields = rest.split()
            if name.strip() == "lo" or len(fields) < 9:
                continue
            recv += int(fields[0])
            sent += int(fields[8])
        per_s = self._net_io_rates.update({"sent": sent, "recv": recv})
        return {
            "net_sent_bytes": sent,
            "net_recv_bytes": recv,
            "net_sent_bytes_per_s": per_s["sent"],
            "net_recv_bytes_per_s": per_s["recv"],
        }

    def _proc_filesystems(self) -> dict:
        mounts = devices.proc_mounts(self.proc_root / "self" / "mounts")
        return {"filesystems": devices.filesystem_usage(devices.real_filesystems(mounts))}

    def _proc_devices(self) -> dict:
        disks = {}
        for line in self._read("diskstats").splitlines():
            fields = line.split()
            if len(fields) >= 10 and _is_whole_disk(fields[2]):
                disks[fields[2]] = (int(fields[5]) * 512, int(fields[9]) * 512)
        nics = {}
        for line in self._read("net", "dev").splitlines()[2:]:
            name, _, rest = line.partition(":")
            fields = rest.split()
            if len(fields) >= 9:
                nics[name.strip()] = (int(fields[0]), int(fields[8]))
        sys_net = self.sys_root / "class" / "net"
        return {"disks": devices.disk_list(disks, self._disk_rates),
                "interfaces": devices.interface_list(nics, self._net_rates, sys_net if sys_net.is_dir() else None)}

    def _windows_drives(self) -> dict:
        return {"filesystems": devices.filesystem_usage(devices.windows_drives())}

    def _proc_processes(self) -> dict:
        return {"process_count": sum(1 for p in self.proc_root.iterdir() if p.name.isdigit())}

    def _proc_uptime(self) -> dict:
        return {"uptime_s": float(self._read("uptime").split()[0])}

    def rss_bytes(self) -> int | None:
        try:
            if self._platform == "nt":
                return windows.resident_bytes()
            pages = int(self._read("self", "statm").split()[1])
            return pages * os.sysconf("SC_PAGE_SIZE")
        except Exception:
            return None

    # --- Windows (ctypes, in windows.py) ---------------------------------------------

    def _windows_cpu(self) -> dict:
        busy, total = windows.cpu_times()
        return {"cpu_percent": self._busy_percent("cpu", busy, total)}

    def _windows_memory(self) -> dict:
        total, available = windows.memory_status()
        return {
            "memory_total_bytes": total,
            "memory_used_bytes": total - available,
            "memory_available_bytes": available,
            "memory_percent": _percent(total - available, total),
        }

    def _windows_uptime(self) -> dict:
        return {"uptime_s": windows.uptime_s()}


def _is_whole_disk(name: str) -> bool:
    """sda, vda, nvme0n1, mmcblk0 count; partitions (sda1, nvme0n1p1) and virtual devices do not."""
    if name.startswith(("loop", "ram", "dm-", "zram", "sr", "md")):
        return False
    if name.startswith(("nvme", "mmcblk")):
        return re.search(r"p\d+$", name) is None
    return not name[-1].isdigit()


def make_system_collector(psutil: Any = "auto", **kwargs: Any) -> SystemCollector:
    """A psutil collector when psutil imports, else the standard-library one.

    Pass ``psutil=None`` to force the fallback (tests, or a broken psutil)."""
    if psutil == "auto":
        try:
            import psutil as psutil_module
        except ImportError:
            psutil_module = None
        psutil = psutil_module
    if psutil is not None:
        return PsutilCollector(psutil, **kwargs)
    return StdlibCollector(**kwargs)
