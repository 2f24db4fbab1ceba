"""Bytes a history sample costs on disk (#23): the whole SQLite file of this checkout, of the
commit before chunks, and a Prometheus block (promtool) holding the same samples.

Run: python bench/history_size.py [--series N] [--samples N] [--reference REV]
(writes bench/RESULTS-history-size.md). Each shape is N series sampled every second; ours are
written through the storage writer as the dashboard writes them (batches of 10 samples), then
the WAL is checkpointed and the file measured with its roll-ups and indexes; Prometheus' block
is built from the same samples (`promtool tsdb create-blocks-from openmetrics`), chunks and
index together.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from reference import reference_checkout  # noqa: E402
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


def ours(checkout: Path, series: int, samples: int) -> dict:
    sys.path.insert(0, str(checkout))
    from sse_dashboard import storage

    result = {}
    for name in SHAPES:
        values = shape(name, series, samples)
        with tempfile.TemporaryDirectory() as tmp:
            store = storage.open_store(tmp, full_s=10 ** 7, interval_s=1.0)
            rows = [(float(START + t), {"gauges.s%d" % i: values[i][t] for i in range(series)}) for t in range(samples)]
            for k in range(0, samples, 10):
                store.history.write(rows[k:k + 10])
            store.close()  # (the reference then writes its open roll-up bucket)
            conn = sqlite3.connect(str(Path(tmp) / "dashboard.sqlite3"))
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            size = sum(f.stat().st_size for f in Path(tmp).glob("dashboard.sqlite3*"))
            # Pages freed by moving rows into chunks stay in the file for the next rows to reuse.
            free = conn.execute("PRAGMA freelist_count").fetchone()[0] * conn.execute("PRAGMA page_size").fetchone()[0]
            conn.close()
        result[name] = (size - free) / (series * samples)
    return result


def prometheus(series: int, samples: int) -> dict:
    promtool = shutil.which("promtool")
    if promtool is None:
        return {}
    result = {}
    for name in SHAPES:
        values = shape(name, series, samples)
        with tempfile.TemporaryDirectory() as tmp:
            text = Path(tmp) / "samples.om"
            with text.open("w", encoding="utf-8") as f:
                f.write("# TYPE s gauge\n")
                for i in range(series):
                    for t in range(samples):
                        f.write('s{i="%d"} %r %d\n' % (i, values[i][t], START + t))
                f.write("# EOF\n")
            out = Path(tmp) / "blocks"
            subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(text), str(out)],
                           check=True, capture_output=True, timeout=300)
            size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file() and f.parent.name != "wal"
                       and (f.parent.name == "chunks" or f.name == "index"))
        result[name] = size / (series * samples)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=200)
    parser.add_argument("--samples", type=int, default=3600)
    parser.add_argument("--reference", default=REFERENCE)
    parser.add_argument("--only-ours", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only_ours:
        print(json.dumps(ours(ROOT, args.series, args.samples)))
        return
    new = ours(ROOT, args.series, args.samples)
    with reference_checkout(args.reference) as reference:
        for script in (__file__, ROOT / "bench" / "reference.py"):  # this script runs there too
            shutil.copy2(script, reference / "bench" / Path(script).name)
        done = subprocess.run([sys.executable, str(reference / "bench" / "history_size.py"), "--only-ours",
                               "--series", str(args.series), "--samples", str(args.samples)],
                              capture_output=True, text=True, check=True, timeout=600)
        old = json.loads(done.stdout.strip().splitlines()[-1])
    prom = prometheus(args.series, args.samples)
    lines = [
        "# History on disk: bytes a sample",
        "",
        "`python bench/history_size.py` on %s (%s, Python %s): %d series sampled every second for %d s, "
        "written as the dashboard writes them; the whole database file (samples, chunks, roll-ups, indexes) "
        "after a WAL checkpoint, less its free pages (which the next rows reuse), divided by the samples. Prometheus: `promtool tsdb create-blocks-from "
        "openmetrics` (%s) on the same samples, its block's chunks and index." % (
            time.strftime("%Y-%m-%d"), sys.platform, sys.version.split()[0], args.series, args.samples,
            subprocess.run(["promtool", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
            if shutil.which("promtool") else "not installed"),
        "",
        "| shape | before chunks (%s) | now | Prometheus | now / Prometheus |" % args.reference,
        "| --- | --- | --- | --- | --- |",
    ]
    for name in SHAPES:
        p = prom.get(name)
        lines.append("| %s | %.1f B | %.2f B | %s | %s |" % (
            name, old[name], new[name], "%.2f B" % p if p else "-", "%.2f" % (new[name] / p) if p else "-"))
    lines += ["", "\"now\" is the whole file: the newest 60-120 samples staged (one packed row a sample), "
              "the groups of 60 and 600 samples with their chunks and index, the series names. No roll-ups: "
              "an hour is what `--keep-full` keeps by default, and roll-ups are made from what retention "
              "drops. Prometheus' column is its block's chunks and index; its head block (the newest two "
              "hours, in memory and its WAL) is not in it."]
    out = ROOT / "bench" / "RESULTS-history-size.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
