"""System collectors: the stdlib fallback on fixture /proc files, psutil through a fake module."""

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from sse_dashboard.collectors.system import SYSTEM_FIELDS, PsutilCollector, StdlibCollector, default_disk_path, make_system_collector

FIXTURE_PROC = Path(__file__).parent / "fixtures" / "proc"


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture
def proc(tmp_path):
    root = tmp_path / "proc"
    shutil.copytree(FIXTURE_PROC, root)
    return root


def test_stdlib_collector_reads_proc(proc):
    clock = FakeClock()
    collector = StdlibCollector(proc_root=proc, disk_path=str(proc), clock=clock, platform="posix")
    first = collector.collect()
    assert first["source"] == "stdlib"
    assert set(SYSTEM_FIELDS) <= set(first)
    assert first["cpu_percent"] is None          # no baseline yet: never a bogus 0.0
    assert first["net_recv_bytes_per_s"] is None
    assert first["memory_total_bytes"] == 8_000_000 * 1024
    assert first["memory_available_bytes"] == 6_000_000 * 1024
    assert first["memory_percent"] == 25.0
    assert first["swap_used_bytes"] == 500_000 * 1024
    assert first["swap_percent"] == 25.0
    assert first["net_recv_bytes"] == 1_024_000    # eth0 + wlan0, not lo
    assert first["net_sent_bytes"] == 501_000
    assert first["uptime_s"] == 12345.67
    assert first["process_count"] == 2
    assert first["disk_total_bytes"] > 0

    (proc / "stat").write_text((proc / "stat.next").read_text())
    net = proc / "net" / "dev"
    net.write_text(net.read_text().replace("1000000   2000", "1002000   2000"))
    disk = proc / "diskstats"
    disk.write_text(disk.read_text().replace("sda 100 0 2000", "sda 100 0 2020"))
    clock.now += 2.0
    second = collector.collect()
    # cpu: busy (non-idle, non-iowait) grew 1900 - 1500 = 400 of 11000 - 10000 ticks
    assert second["cpu_percent"] == 40.0
    assert second["cpu_per_core"] == [37.5, 41.7]
    assert second["net_recv_bytes_per_s"] == pytest.approx(1000.0)
    assert second["net_sent_bytes_per_s"] == 0.0
    assert second["disk_read_bytes_per_s"] == pytest.approx(20 * 512 / 2.0)  # whole disks only


def test_stdlib_rss_from_statm(proc):
    import os

    collector = StdlibCollector(proc_root=proc, platform="posix")
    if hasattr(os, "sysconf"):
        assert collector.rss_bytes() == 1200 * os.sysconf("SC_PAGE_SIZE")


def test_stdlib_collector_without_proc_still_reports_disk_and_cpu_count(tmp_path):
    collector = StdlibCollector(proc_root=tmp_path / "missing", disk_path=str(tmp_path), platform="posix")
    system = collector.collect()
    assert system["cpu_count"] and system["disk_total_bytes"] > 0
    assert system["memory_total_bytes"] is None


def test_counter_that_goes_backwards_gives_no_rate(proc):
    clock = FakeClock()
    collector = StdlibCollector(proc_root=proc, disk_path=str(proc), clock=clock, platform="posix")
    collector.collect()
    net = proc / "net" / "dev"
    net.write_text(net.read_text().replace("1000000   2000", "10   2000"))
    clock.now += 1
    assert collector.collect()["net_recv_bytes_per_s"] is None


def fake_psutil(cpu=(42.0, [40.0, 44.0])):
    calls = []

    def cpu_percent(interval=None, percpu=False):
        calls.append(percpu)
        return list(cpu[1]) if percpu else cpu[0]

    module = SimpleNamespace(
        cpu_percent=cpu_percent,
        cpu_count=lambda: 2,
        virtual_memory=lambda: SimpleNamespace(total=1000, available=250, percent=75.0),
        swap_memory=lambda: SimpleNamespace(total=100, used=10, percent=10.0),
        disk_io_counters=lambda: SimpleNamespace(read_bytes=5000, write_bytes=7000),
        net_io_counters=lambda: SimpleNamespace(bytes_sent=300, bytes_recv=900),
        getloadavg=lambda: (0.5, 0.25, 0.125),
        pids=lambda: [1, 2, 3],
        boot_time=lambda: 0.0,
        Process=lambda: SimpleNamespace(memory_info=lambda: SimpleNamespace(rss=12345)),
    )
    return module, calls


def test_psutil_collector_hides_the_meaningless_first_cpu_reading():
    module, calls = fake_psutil()
    collector = PsutilCollector(module, disk_path=".")
    first = collector.collect()
    assert first["source"] == "psutil"
    assert first["cpu_percent"] is None and first["cpu_per_core"] is None
    assert calls, "the first collect must prime psutil's baseline"
    second = collector.collect()
    assert second["cpu_percent"] == 42.0 and second["cpu_per_core"] == [40.0, 44.0]
    assert second["memory_used_bytes"] == 750 and second["memory_percent"] == 75.0
    assert second["load_1"] == 0.5 and second["process_count"] == 3
    assert collector.rss_bytes() == 12345


def test_psutil_reader_failure_degrades_one_group():
    module, _ = fake_psutil()

    def boom():
        raise PermissionError("denied")

    module.net_io_counters = boom
    system = PsutilCollector(module, disk_path=".").collect()
    assert system["net_recv_bytes"] is None and system["memory_total_bytes"] == 1000


def test_make_system_collector_falls_back_without_psutil():
    assert make_system_collector(psutil=None).source == "stdlib"
    module, _ = fake_psutil()
    assert make_system_collector(psutil=module).source == "psutil"


@pytest.mark.parametrize("use_psutil", [False, True])
def test_disk_percent_is_used_over_used_plus_available_as_df_says(monkeypatch, tmp_path, use_psutil):
    import collections

    from sse_dashboard.collectors import system
    usage = collections.namedtuple("usage", "total used free")
    # 100 GB disk, 20 GB used, 75 GB available to users, 5 GB reserved for root:
    monkeypatch.setattr(system.shutil, "disk_usage", lambda path: usage(100e9, 20e9, 75e9))
    if use_psutil:
        import psutil  # the [test] extra

        collector = PsutilCollector(psutil, disk_path=str(tmp_path))
    else:
        collector = StdlibCollector(proc_root=tmp_path / "missing", disk_path=str(tmp_path), platform="posix")
    assert collector.collect()["disk_percent"] == pytest.approx(100 * 20 / 95, abs=0.01)


def test_disk_percent_matches_psutil_on_this_machine(tmp_path):
    import psutil  # the [test] extra

    ours = StdlibCollector(proc_root=tmp_path / "missing", platform="posix").collect()["disk_percent"]
    assert ours == pytest.approx(psutil.disk_usage(default_disk_path()).percent, abs=0.2)


def test_one_rate_calculator_gives_a_rate_only_from_two_readings_that_grew():
    from sse_dashboard.collectors.rates import Rates

    clock = FakeClock()
    rates = Rates(clock=clock)
    assert rates.update({"a": 100, "b": 5}) == {"a": None, "b": None}      # one reading: no rate
    clock.now += 2.0
    assert rates.update({"a": 300, "b": 1}) == {"a": 100.0, "b": None}     # b went down: wrapped
    assert rates.update({"a": 400, "b": 2}) == {"a": None, "b": None}      # the clock did not move
    clock.now += 1.0
    assert rates.update({"a": None}) == {"a": None}                        # unknown: forgotten, b gone
    clock.now += 1.0
    assert rates.update({"a": 500, "b": 3}) == {"a": None, "b": None}
    rounded = Rates(ndigits=1)
    rounded.update({"x": 0}, now=0.0)
    assert rounded.update({"x": 1}, now=3.0) == {"x": 0.3}                 # ``now``: the reading's own time
