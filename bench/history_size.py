"""Bytes a history sample costs on disk (#23): the whole SQLite file of this checkout, of the
commit before chunks, and a Prometheus block (promtool) holding the same samples.

Run: python bench/history_size.py [--series N] [--samples N] [--reference REV]
     [--system-every S | --no-system]
(writes bench/RESULTS-history-size.md). Each shape is N series sampled every second; ours are
written through the storage writer as the dashboard writes them (batches of 10 samples), then
the WAL is checkpointed and the file measured with its roll-ups and indexes; Prometheus' block
is built from the same samples (`promtool tsdb create-blocks-from openmetrics`), chunks and
index together. The last shape is this machine's own system series (what the sampler's system
collector reports): ``--samples`` readings taken ``--system-every`` seconds apart (0.05 s, so a
run does not take an hour; ``codec.system_series``), stored as if one second apart.

``write_openmetrics`` and ``build_blocks`` are shared with ``history_query.py``.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from reference import reference_checkout, revision  # noqa: E402
REFERENCE = "99f5c0e"  # main before history was compacted into chunks
START = 1_700_000_000


def shape(name: str, series: int, samples: int, seed: int = 1) -> list[list]:
    """values[i][t] of each series i at tick t."""
    rng = random.Random(seed)
    out = []
    for i in range(series):
        if name == "constant":
            out.append([7] * samples)
        elif name == "counter":
            total, row = 0, []
            for _ in range(samples):
                total += rng.randint(0, 5)
                row.append(total)
            out.append(row)
        elif name == "random walk, 3 decimals":
            value, row = 100.0, []
            for _ in range(samples):
                value = round(value + rng.uniform(-1, 1), 3)
                row.append(value)
            out.append(row)
        else:  # half constant, half rising by 0-5 a second
            total, row = 0, []
            for _ in range(samples):
                total += rng.randint(0, 5) if i % 2 else 0
                row.append(total)
            out.append(row)
    return out


SHAPES = ["constant", "counter", "random walk, 3 decimals", "half constant, half rising"]
SYSTEM = "this machine's system series"


def system_shape(samples: int, every_s: float) -> list[list]:
    """This machine's system series, ``samples`` readings ``every_s`` apart (None: not reported)."""
    from codec import system_series  # (imports this checkout's collector)

    return system_series(samples, every_s)


def shapes(series: int, samples: int, system: list[list] | None = None) -> list[tuple[str, list[list]]]:
    """(name, values[i][t]) of every shape measured; the system series when recorded."""
    named = [(name, shape(name, series, samples)) for name in SHAPES]
    if system:
        named.append((SYSTEM, system))
    return named


def stored_values(values: list[list]) -> int:
    return sum(1 for row in values for value in row if value is not None)


EMPTY = ", over an empty store"  # the key of a shape's bytes a sample less an empty store's file


def file_bytes(folder: str) -> int:
    """The database file (and its WAL, after a checkpoint) less its free pages, which the next rows
    reuse. Not the ``-shm`` file: shared memory for the WAL index, gone with the last connection."""
    conn = sqlite3.connect(str(Path(folder) / "dashboard.sqlite3"))
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = sum(f.stat().st_size for f in Path(folder).glob("dashboard.sqlite3*") if not f.name.endswith("-shm"))
        return size - conn.execute("PRAGMA freelist_count").fetchone()[0] * conn.execute("PRAGMA page_size").fetchone()[0]
    finally:
        conn.close()


def ours(checkout: Path, series: int, samples: int, system: list[list] | None = None) -> dict:
    """Bytes a sample of each shape: the whole file (``shape``) and its growth over an empty
    store's (``shape + EMPTY``: the schema and empty tables are a fixed cost, not a sample's)."""
    sys.path.insert(0, str(checkout))
    from sse_dashboard import storage

    with tempfile.TemporaryDirectory() as tmp:
        storage.open_store(tmp, full_s=10 ** 7, interval_s=1.0).close()
        empty = file_bytes(tmp)
    result = {}
    for name, values in shapes(series, samples, system):
        count, length = len(values), len(values[0])
        with tempfile.TemporaryDirectory() as tmp:
            store = storage.open_store(tmp, full_s=10 ** 7, interval_s=1.0)
            rows = [(float(START + t), {"gauges.s%d" % i: values[i][t] for i in range(count)
                                        if values[i][t] is not None}) for t in range(length)]
            for k in range(0, length, 10):
                store.history.write(rows[k:k + 10])
            store.close()  # (the reference then writes its open roll-up bucket)
            size = file_bytes(tmp)
        result[name] = size / stored_values(values)
        result[name + EMPTY] = (size - empty) / stored_values(values)
    return result


def write_openmetrics(path: Path, series: Iterable[tuple[str, str, Iterable[tuple[int, object]]]]) -> None:
    """Samples as an OpenMetrics file for promtool, written as they come (a week of samples need
    not sit in memory): ``series`` yields ``(family, series, [(ts in s, value), ...])``, a
    family's series one after another; None values are left out."""
    family_now = None
    with path.open("w", encoding="utf-8") as f:
        for family, text, points in series:
            if family != family_now:
                f.write("# TYPE %s gauge\n" % family)
                family_now = family
            f.writelines("%s %r %d\n" % (text, value, ts) for ts, value in points if value is not None)
        f.write("# EOF\n")


def promtool_command(text: Path, out: Path, max_block_duration: str | None = None) -> list[str]:
    """``promtool tsdb create-blocks-from openmetrics``; ``max_block_duration`` (its hidden flag,
    e.g. "18h") makes blocks as long as a compacted Prometheus keeps, instead of 2 h ones."""
    command = [shutil.which("promtool") or "promtool", "tsdb", "create-blocks-from", "openmetrics"]
    if max_block_duration:
        command.append("--max-block-duration=" + max_block_duration)
    return command + [str(text), str(out)]


def build_blocks(text: Path, out: Path, max_block_duration: str | None = None, timeout_s: float = 600) -> None:
    subprocess.run(promtool_command(text, out, max_block_duration), check=True, capture_output=True,
                   timeout=timeout_s)


def block_bytes(out: Path) -> int:
    """The blocks' chunks and index (not the WAL, not the metadata)."""
    return sum(f.stat().st_size for f in out.rglob("*") if f.is_file() and f.parent.name != "wal"
               and (f.parent.name == "chunks" or f.name == "index"))


def prometheus(series: int, samples: int, system: list[list] | None = None) -> dict:
    if shutil.which("promtool") is None:
        return {}
    result = {}
    for name, values in shapes(series, samples, system):
        with tempfile.TemporaryDirectory() as tmp:
            text, out = Path(tmp) / "samples.om", Path(tmp) / "blocks"
            write_openmetrics(text, (("s", 's{i="%d"}' % i, ((START + t, v) for t, v in enumerate(row)))
                                     for i, row in enumerate(values)))
            build_blocks(text, out)
            result[name] = block_bytes(out) / stored_values(values)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=200)
    parser.add_argument("--samples", type=int, default=3600)
    parser.add_argument("--reference", default=REFERENCE)
    parser.add_argument("--system-every", type=float, default=0.05, metavar="S",
                        help="seconds between two readings of this machine's system series (default 0.05)")
    parser.add_argument("--no-system", action="store_true", help="leave out this machine's system series")
    parser.add_argument("--only-ours", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--system-file", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only_ours:
        system = json.loads(Path(args.system_file).read_text()) if args.system_file else None
        print(json.dumps(ours(ROOT, args.series, args.samples, system)))
        return
    system = None if args.no_system else system_shape(args.samples, args.system_every)
    new = ours(ROOT, args.series, args.samples, system)
    with reference_checkout(args.reference) as reference, tempfile.TemporaryDirectory() as tmp:
        for script in (__file__, ROOT / "bench" / "reference.py"):  # this script runs there too
            shutil.copy2(script, reference / "bench" / Path(script).name)
        system_file = Path(tmp) / "system.json"  # the same readings, not the reference's own
        system_file.write_text(json.dumps(system))
        done = subprocess.run([sys.executable, str(reference / "bench" / "history_size.py"), "--only-ours",
                               "--series", str(args.series), "--samples", str(args.samples)]
                              + (["--system-file", str(system_file)] if system else []),
                              capture_output=True, text=True, check=True, timeout=600)
        old = json.loads(done.stdout.strip().splitlines()[-1])
    prom = prometheus(args.series, args.samples, system)
    lines = [
        "# History on disk: bytes a sample",
        "",
        "`python bench/history_size.py` on %s (%s, Python %s, commit %s): %d series sampled every second for %d s, "
        "written as the dashboard writes them; the whole database file (samples, chunks, roll-ups, indexes) "
        "after a WAL checkpoint, less its free pages (which the next rows reuse), divided by the samples. Prometheus: `promtool tsdb create-blocks-from "
        "openmetrics` (%s) on the same samples, its block's chunks and index.%s" % (
            time.strftime("%Y-%m-%d"), sys.platform, sys.version.split()[0], revision(), args.series, args.samples,
            subprocess.run(["promtool", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
            if shutil.which("promtool") else "not installed",
            "" if not system else " This machine's system series: the %d series its system collector reported, "
            "%d readings %g s apart, stored as if a second apart." % (len(system), args.samples, args.system_every)),
        "",
        "| shape | before chunks (%s) | now | now, over an empty store | Prometheus | now / Prometheus |"
        % args.reference,
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name in [name for name in new if not name.endswith(EMPTY)]:
        p = prom.get(name)
        lines.append("| %s | %.1f B | %.2f B | %.2f B | %s | %s |" % (
            name, old[name], new[name], new[name + EMPTY], "%.2f B" % p if p else "-",
            "%.2f" % (new[name] / p) if p else "-"))
    lines += ["", "\"now\" is the whole file: the newest 1-60 samples staged (one packed row a sample), "
              "the groups of 60 and 600 samples with their summaries, their chunks and index, the series names. No roll-ups: "
              "an hour is what `--keep-full` keeps by default, and roll-ups are made from what retention "
              "drops. Prometheus' column is its block's chunks and index; its head block (the newest two "
              "hours, in memory and its WAL) is not in it."]
    out = ROOT / "bench" / "RESULTS-history-size.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
