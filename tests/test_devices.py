"""Every real filesystem, disk and interface: which are listed, with what, in the snapshot,
on /metrics with node_exporter's labels, and on the page."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import wait_until
from sse_dashboard.collectors.devices import interface_list, is_virtual_interface, real_filesystems
from sse_dashboard.collectors.rates import Rates
from sse_dashboard.collectors.system import StdlibCollector
from sse_dashboard.exposition import render_prometheus

FIXTURE_PROC = Path(__file__).parent / "fixtures" / "proc"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def machine(tmp_path):
    """A /proc and /sys of a machine with a second filesystem: a tmpfs at a folder of the test's."""
    proc = tmp_path / "proc"
    shutil.copytree(FIXTURE_PROC, proc)
    second = tmp_path / "data disk"  # a space in the path: /proc/mounts writes it as \040
    second.mkdir()
    (proc / "self" / "mounts").write_text("\n".join([
        "/dev/vda1 / ext4 rw 0 0",
        "proc /proc proc rw 0 0",
        "sysfs /sys sysfs rw 0 0",
        "tmpfs /run tmpfs rw 0 0",
        "overlay /var/lib/docker/overlay2/x/merged overlay rw 0 0",
        "/dev/loop3 /snap/core/1 squashfs ro 0 0",
        "/dev/vda1 /mnt/bind ext4 rw 0 0",                      # a bind mount of / : listed once
        "tmpfs %s tmpfs rw 0 0" % str(second).replace(" ", "\\040"),
    ]) + "\n")
    sys_net = tmp_path / "sys" / "class" / "net"
    for name, physical in (("lo", False), ("eth0", True), ("wlan0", True), ("docker0", False)):
        (sys_net / name).mkdir(parents=True)
        if physical:
            (sys_net / name / "device").mkdir()
    return proc, tmp_path / "sys", second


def test_the_snapshot_lists_every_real_filesystem_disk_and_interface(machine):
    proc, sys_root, second = machine
    clock = FakeClock()
    collector = StdlibCollector(proc_root=proc, sys_root=sys_root, disk_path="/", clock=clock, platform="posix")
    first = collector.collect()
    assert [(f["mountpoint"], f["fstype"]) for f in first["filesystems"]] == [("/", "ext4"), (str(second), "tmpfs")]
    tmpfs = first["filesystems"][1]
    assert tmpfs["total_bytes"] > 0 and tmpfs["used_bytes"] + tmpfs["free_bytes"] <= tmpfs["total_bytes"]
    assert [d["device"] for d in first["disks"]] == ["nvme0n1", "sda"]
    assert first["disks"][0]["read_bytes_per_s"] is None  # one reading: no rate yet
    assert [(i["name"], i["virtual"]) for i in first["interfaces"]] == [("eth0", False), ("lo", True),
                                                                       ("wlan0", False)]
    shutil.copy(proc / "diskstats", proc / "diskstats.first")
    text = (proc / "diskstats").read_text().replace(" sda 100 0 2000", " sda 100 0 4000")
    (proc / "diskstats").write_text(text)
    clock.now += 2.0
    second_sample = collector.collect()
    sda = [d for d in second_sample["disks"] if d["device"] == "sda"][0]
    assert sda["read_bytes_per_s"] == 2000 * 512 / 2.0


def test_metrics_label_them_as_node_exporter_does(machine):
    proc, sys_root, second = machine
    system = StdlibCollector(proc_root=proc, sys_root=sys_root, disk_path="/", platform="posix").collect()
    text = render_prometheus({"system": system, "seq": 1})
    assert 'system_filesystem_size_bytes{device="tmpfs",fstype="tmpfs",mountpoint="%s"}' % second in text
    assert 'system_disk_device_read_bytes_per_second' not in text  # no rate yet: no sample, not a zero
    assert 'system_network_interface_received_bytes_total{interface="eth0"} 1000000' in text


def test_bind_mounts_pseudo_filesystems_and_hidden_places_are_left_out():
    kept = real_filesystems([("/dev/sda1", "/home", "ext4"), ("/dev/sda1", "/", "ext4"), ("cgroup2", "/sys/fs/cgroup",
                             "cgroup2"), ("tmpfs", "/dev/shm", "tmpfs"), ("tmpfs", "/tmp", "tmpfs"),
                             ("server:/x", "/mnt/nfs", "nfs4")])
    assert kept == [("/dev/sda1", "/", "ext4"), ("tmpfs", "/tmp", "tmpfs"), ("server:/x", "/mnt/nfs", "nfs4")]


def test_interfaces_that_come_and_go_are_forgotten():
    rates = Rates(clock=FakeClock())
    for i in range(100):  # containers: a veth each, for one sample
        interface_list({"eth0": (i, i), "veth%d" % i: (1, 1)}, rates)
    assert len(rates._previous) == 4
    assert is_virtual_interface("veth1a2b") and is_virtual_interface("vEthernet (WSL)")
    assert not is_virtual_interface("Ethernet 2") and not is_virtual_interface("wlp3s0")

