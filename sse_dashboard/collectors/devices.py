"""Every real filesystem, disk, network interface and sensor, as lists for the snapshot.

One concept: which devices a machine has that a person wants to see, and their numbers,
from psutil or the standard library (``/proc`` and ``/sys`` on Linux, drive letters on
Windows). ``collectors.system.SystemCollector`` calls these; they only read.

Invariants:
- filesystems: pseudo ones (proc, sysfs, cgroup, overlay, squashfs ...), mounts under
  /dev, /proc, /sys and /run, and bind mounts (a device already listed) are left out, as
  node_exporter's defaults do; tmpfs elsewhere (/tmp) is a real place to run out of space;
- interfaces: every one is listed, with ``virtual`` true for loopback, bridges, veth,
  docker and other interfaces without a device behind them (the page hides those unless asked);
- rates come from two readings (``rates.Rates``); a device that appears has ``None`` the first
  time, and one that disappears is forgotten (containers come and go: the memory does not grow);
- lists are bounded (``MAX_ITEMS`` each): a host with 5,000 veth interfaces sends 200.
"""

from __future__ import annotations

import os
import shutil
import string
from pathlib import Path
from typing import Any, Iterable

from sse_dashboard.collectors.rates import Rates

__all__ = ["real_filesystems", "filesystem_usage", "proc_mounts", "windows_drives", "interface_list",
           "disk_list", "is_virtual_interface", "psutil_sensors", "MAX_ITEMS"]

MAX_ITEMS = 200
PSEUDO_FSTYPES = frozenset("""autofs binfmt_misc bpf cgroup cgroup2 configfs debugfs devpts devtmpfs efivarfs
fuse.gvfsd-fuse fuse.lxcfs fuse.portal fusectl hugetlbfs iso9660 mqueue nsfs overlay proc procfs pstore ramfs
rpc_pipefs securityfs selinuxfs squashfs erofs sysfs tracefs nfsd cifs_bogus""".split())
HIDDEN_MOUNTS = ("/dev", "/proc", "/sys", "/run", "/var/lib/docker/", "/var/lib/containers/", "/snap/")
VIRTUAL_PREFIXES = ("lo", "docker", "br-", "veth", "virbr", "vmnet", "vboxnet", "cni", "flannel", "cali", "tun",
                    "tap", "vEthernet", "Loopback", "isatap", "Teredo")


def _hidden(mountpoint: str) -> bool:
    return any(mountpoint == prefix.rstrip("/") or mountpoint.startswith(prefix.rstrip("/") + "/")
               for prefix in HIDDEN_MOUNTS)


def real_filesystems(mounts: Iterable[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """(device, mountpoint, fstype) of the real filesystems among ``mounts``, bind mounts once."""
    seen_devices: set[str] = set()
    kept = []
    for device, mountpoint, fstype in sorted(mounts, key=lambda m: (len(m[1]), m[1])):
        if fstype in PSEUDO_FSTYPES or _hidden(mountpoint):
            continue
        if device.startswith("/dev/"):  # the same block device mounted again is a bind mount
            if device in seen_devices:
                continue
            seen_devices.add(device)
        kept.append((device, mountpoint, fstype))
    return kept[:MAX_ITEMS]


def filesystem_usage(filesystems: list[tuple[str, str, str]]) -> list[dict]:
    out = []
    for device, mountpoint, fstype in filesystems:
        try:
            usage = shutil.disk_usage(mountpoint)
        except OSError:  # gone, or not ours to read (a stale network mount)
            continue
        if usage.total == 0:
            continue
        out.append({"mountpoint": mountpoint, "device": device, "fstype": fstype, "total_bytes": usage.total,
                    "used_bytes": usage.used, "free_bytes": usage.free,
                    "percent": round(100.0 * usage.used / (usage.used + usage.free), 2) if usage.used + usage.free
                    else None})
    return out


def proc_mounts(path: Path) -> list[tuple[str, str, str]]:
    """/proc/self/mounts: device, mountpoint (with \\040 and friends decoded) and fstype."""
    mounts = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.split()
        if len(fields) >= 3:
            mounts.append((_unescape(fields[0]), _unescape(fields[1]), fields[2]))
    return mounts


def _unescape(text: str) -> str:
    # The kernel writes space, tab, newline and backslash in mount paths as octal escapes.
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        text = text.replace(code, char)
    return text


def windows_drives() -> list[tuple[str, str, str]]:
    """The drive letters that answer, as (device, mountpoint, fstype) with fstype unknown."""
    drives = []
    for letter in string.ascii_uppercase:
        root = "%s:\\" % letter
        if os.path.exists(root):
            drives.append((root, root, ""))
    return drives


def is_virtual_interface(name: str, sys_net: Path | None = None) -> bool:
    """Loopback or without a device behind it (Linux: no /sys/class/net/NAME/device)."""
    if name == "lo" or name.lower().startswith("loopback"):
        return True
    if sys_net is not None and (sys_net / name).exists():
        return not (sys_net / name / "device").exists()
    return name.startswith(VIRTUAL_PREFIXES)


def interface_list(counters: dict[str, tuple[int, int]], rates: Rates, sys_net: Path | None = None) -> list[dict]:
    """``counters``: name -> (bytes received, bytes sent) totals."""
    names = sorted(counters)[:MAX_ITEMS]
    totals = {}
    for name in names:
        totals["%s:recv" % name], totals["%s:sent" % name] = counters[name]
    per_s = rates.update(totals)
    return [{"name": name, "virtual": is_virtual_interface(name, sys_net),
             "recv_bytes": counters[name][0], "sent_bytes": counters[name][1],
             "recv_bytes_per_s": per_s["%s:recv" % name], "sent_bytes_per_s": per_s["%s:sent" % name]}
            for name in names]


def disk_list(counters: dict[str, tuple[int, int]], rates: Rates) -> list[dict]:
    """``counters``: device -> (bytes read, bytes written) totals."""
    names = sorted(counters)[:MAX_ITEMS]
    totals = {}
    for name in names:
        totals["%s:read" % name], totals["%s:write" % name] = counters[name]
    per_s = rates.update(totals)
    return [{"device": name, "read_bytes_per_s": per_s["%s:read" % name],
             "write_bytes_per_s": per_s["%s:write" % name]} for name in names]


def psutil_sensors(psutil: Any) -> dict:
    """Temperatures, fans and battery where psutil reports them (not every OS does)."""
    out: dict[str, Any] = {}
    read = getattr(psutil, "sensors_temperatures", None)
    temps = read() if read else {}
    out["temperatures"] = [{"sensor": chip, "label": t.label or chip, "celsius": t.current,
                            "high": t.high, "critical": t.critical}
                           for chip, entries in sorted((temps or {}).items()) for t in entries][:MAX_ITEMS]
    read = getattr(psutil, "sensors_fans", None)
    fans = read() if read else {}
    out["fans"] = [{"sensor": chip, "label": f.label or chip, "rpm": f.current}
                   for chip, entries in sorted((fans or {}).items()) for f in entries][:MAX_ITEMS]
    read = getattr(psutil, "sensors_battery", None)
    battery = read() if read else None
    out["battery"] = None if battery is None else {
        "percent": round(battery.percent, 1), "plugged": battery.power_plugged,
        "seconds_left": battery.secsleft if isinstance(battery.secsleft, int) and battery.secsleft >= 0 else None}
    return out
