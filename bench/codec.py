"""The chunk codec (#23), chosen by measurement: bytes a sample of each candidate encoding on
the shapes the issue names, Prometheus' own chunks beside them on the same samples, and the CPU
cost of encoding 1,000 series x 60 values.

Run: python bench/codec.py            (writes bench/RESULTS-codec.md)
     python bench/codec.py --no-prometheus    (without promtool)

Prometheus: ``promtool tsdb create-blocks-from openmetrics FILE DIR`` (Debian's 2.42) builds a
block from an OpenMetrics file of the same samples (1,000 series x 90 samples at 1 s); its
``chunks/`` and ``index`` are measured apart.
"""

from __future__ import annotations

import collections
import os
import platform
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sse_dashboard.collectors.system import make_system_collector  # noqa: E402
from sse_dashboard.sampler import flatten_snapshot  # noqa: E402
from sse_dashboard.storage import codec  # noqa: E402

SEED = 23
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


# --- the shapes: each a list of series, each a list of values at shared 1 s ticks ----------

def constant(rng, series, ticks):
    return [[rng.randint(0, 1000)] * ticks for _ in range(series)]


def counter(rng, series, ticks):
    out = []
    for _ in range(series):
        total, values = rng.randint(0, 10 ** 6), []
        for _ in range(ticks):
            total += rng.randint(0, 5)
            values.append(total)
        out.append(values)
    return out


def walk(rng, series, ticks):
    out = []
    for _ in range(series):
        milli, values = rng.randint(-10 ** 6, 10 ** 6), []
        for _ in range(ticks):
            milli += rng.randint(-1000, 1000)
            values.append(milli / 1000)   # 3 decimals, as a float, the way a gauge arrives
        out.append(values)
    return out


def half_and_half(rng, series, ticks):
    return constant(rng, series // 2, ticks) + counter(rng, series - series // 2, ticks)


def system_series(ticks, every_s=0.05):
    """This machine's system series (``flatten_snapshot`` of ``collect()``), ``ticks`` readings."""
    collector = make_system_collector()
    rows = []
    for _ in range(ticks):
        rows.append(flatten_snapshot({"system": collector.collect()}))
        time.sleep(every_s)
    names = sorted({name for row in rows for name in row})
    return [[row.get(name) for row in rows] for name in names]


# --- the candidates ---------------------------------------------------------------------

def plain_xor_zlib(values):
    """(b) as the textbook has it: every XOR as 8 bytes, then zlib (header and checksum)."""
    floats = [float(v) for v in values if v is not None]
    bits = struct.unpack("<%dQ" % len(floats), struct.pack("<%dd" % len(floats), *floats))
    prev, words = 0, []
    for b in bits:
        words.append(b ^ prev)
        prev = b
    return zlib.compress(struct.pack(">%dQ" % len(words), *words))


def method_or_xor(method):
    def encode(values):
        try:
            return codec.encode(values, methods=(method,))
        except ValueError:  # no decimal scale fits: the brief's fallback, (b)
            return codec.encode(values, methods=(codec.XOR,))
    return encode


CANDIDATES = [
    ("(a) raw float64 + deflate", lambda v: codec.encode(v, methods=(codec.RAW,))),
    ("(b0) 8-byte XOR + zlib", plain_xor_zlib),
    ("(b) byte-level XOR + deflate", lambda v: codec.encode(v, methods=(codec.XOR,))),
    ("(c) scaled delta + deflate", method_or_xor(codec.DELTA)),
    ("(c) scaled delta-of-delta + deflate", method_or_xor(codec.DOD)),
    ("(d) scaled delta packed at a fixed width + deflate", method_or_xor(codec.PACKED)),
    ("smallest of b, c-delta, c-dod", lambda v: codec.encode(v, methods=(codec.XOR, codec.DELTA, codec.DOD))),
    ("**chosen**: d, else c-delta, else b", codec.encode),
]


def chunks_of(series, size):
    for values in series:
        for start in range(0, len(values), size):
            yield values[start:start + size]


def bytes_per_sample(series, size, encode):
    samples = sum(len(v) for v in series)
    return sum(len(encode(chunk)) for chunk in chunks_of(series, size)) / samples


def timestamps_share(series, size):
    """The shared timestamps' bytes, spread over every sample of the chunk (exact 1 s ticks)."""
    ticks = len(series[0])
    total = 0
    for start in range(0, ticks, size):
        ms = [1_700_000_000_000 + 1000 * i for i in range(start, min(ticks, start + size))]
        total += len(codec.encode_timestamps(ms))
    return total / (ticks * len(series))


def methods_chosen(series, size):
    counts = collections.Counter(codec.method_of(codec.encode(c)) for c in chunks_of(series, size))
    return ", ".join("%s %d%%" % (name, round(100 * n / sum(counts.values()))) for name, n in counts.most_common())


# --- Prometheus on the same samples -----------------------------------------------------

def prometheus_bytes(series, work: Path, name: str):
    path = work / (name + ".om")
    with open(path, "w", encoding="ascii") as f:
        f.write("# TYPE bench_%s gauge\n" % name)
        for i, values in enumerate(series):
            for t, v in enumerate(values):
                if v is None:
                    continue
                f.write('bench_%s{series="%04d"} %r %d\n' % (name, i, v, 1_700_000_000 + t))
        f.write("# EOF\n")
    out = work / (name + ".tsdb")
    subprocess.run([PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(path), str(out)],
                   check=True, capture_output=True)
    chunks = sum(p.stat().st_size for p in out.glob("*/chunks/*"))
    index = sum(p.stat().st_size for p in out.glob("*/index"))
    samples = sum(1 for values in series for v in values if v is not None)
    return chunks / samples, index / samples


# --- CPU --------------------------------------------------------------------------------

def cpu_us_per_sample(series, encode, repeat=3):
    chunks = list(chunks_of(series, 60))
    samples = sum(len(c) for c in chunks)
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for chunk in chunks:
            encode(chunk)
        best = min(best, time.process_time() - start)
    return best / samples * 1e6


def decode_us_per_sample(series):
    blobs = [codec.encode(c) for c in chunks_of(series, 60)]
    samples = sum(len(c) for c in chunks_of(series, 60))
    start = time.process_time()
    for blob in blobs:
        codec.decode(blob)
    return (time.process_time() - start) / samples * 1e6


def main(argv):
    rng = random.Random(SEED)
    lines = ["# The chunk codec (#23): bytes a sample, by measurement", "",
             "Written by `python bench/codec.py` on %s, Python %s, %s. Seed %d." % (
                 time.strftime("%Y-%m-%d"), platform.python_version(), platform.platform(), SEED), ""]
    shapes = [("constant gauge (ints)", constant(rng, 100, 600)),
              ("counter, +0..5 a second", counter(rng, 100, 600)),
              ("random walk, 3 decimals", walk(rng, 100, 600)),
              ("ints: half constant, half +0..5", half_and_half(rng, 100, 600))]
    print("sampling this machine's system series (300 x 0.05 s) ...", file=sys.stderr)
    system = system_series(300)
    shapes.append(("this machine's system series (%d, 300 readings 0.05 s apart)" % len(system), system))

    for size in (60, 300):
        lines += ["## Bytes a sample, chunks of %d values" % size, "",
                  "100 series x 600 ticks a shape (the system series: all of them x 300 ticks). "
                  "Values only; the shared timestamps (exact 1 s ticks) add the last column's share.", "",
                  "| shape | " + " | ".join(name for name, _ in CANDIDATES) + " | chosen + timestamps |",
                  "|---" * (len(CANDIDATES) + 2) + "|"]
        for shape, series in shapes:
            cells = ["%.3f" % bytes_per_sample(series, size, encode) for _, encode in CANDIDATES]
            total = bytes_per_sample(series, size, codec.encode) + timestamps_share(series, size)
            lines.append("| %s | %s | %.3f |" % (shape, " | ".join(cells), total))
        lines += ["", "Which method `encode` keeps, by share of chunks:", ""]
        for shape, series in shapes:
            lines.append("- %s: %s" % (shape, methods_chosen(series, size)))
        lines.append("")

    lines += ["## CPU: encoding 1,000 series x 60 values (one minute of chunks)", "",
              "`time.process_time()`, best of 3, microseconds a sample (x 60,000 = the minute's cost).", "",
              "| shape | " + " | ".join(name for name, _ in CANDIDATES) + " | decode (chosen) |",
              "|---" * (len(CANDIDATES) + 2) + "|"]
    rng = random.Random(SEED + 1)
    for shape, make in [("constant gauge", constant), ("counter", counter), ("random walk, 3 decimals", walk),
                        ("half constant, half rising", half_and_half)]:
        series = make(rng, 1000, 60)
        cells = ["%.2f" % cpu_us_per_sample(series, encode) for _, encode in CANDIDATES]
        lines.append("| %s | %s | %.2f |" % (shape, " | ".join(cells), decode_us_per_sample(series)))
    lines.append("")

    if "--no-prometheus" not in argv and os.path.exists(PROMTOOL):
        version = subprocess.run([PROMTOOL, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
        lines += ["## Beside Prometheus, on the same samples: 1,000 series x 90 samples at 1 s", "",
                  "Prometheus: `%s`, `promtool tsdb create-blocks-from openmetrics FILE DIR` on an "
                  "OpenMetrics file of exactly these samples (timestamps in seconds, values as `repr()`); "
                  "its chunks hold timestamps and values, one chunk a series here. Ours: `codec.encode` "
                  "per series per chunk, plus the chunk's shared timestamps once; **not yet** the "
                  "per-row cost of the table that will hold the chunks (the next step of #23)." % version, "",
                  "| shape | ours, one chunk of 90 | ours, chunks of 60 (60 + 30) | Prometheus chunks | "
                  "Prometheus index | ratio (ours 60 / Prometheus chunks) |", "|---|---|---|---|---|---|"]
        rng = random.Random(SEED + 2)
        with tempfile.TemporaryDirectory() as tmp:
            for shape, make, name in [("constant gauge", constant, "constant"), ("counter, +0..5 a second", counter,
                                      "counter"), ("random walk, 3 decimals", walk, "walk"),
                                      ("ints: half constant, half +0..5", half_and_half, "half"),
                                      ("this machine's system series, first 90 readings", None, "system")]:
                series = make(rng, 1000, 90) if make else [values[:90] for values in system]
                ours90 = bytes_per_sample(series, 90, codec.encode) + timestamps_share(series, 90)
                ours60 = bytes_per_sample(series, 60, codec.encode) + timestamps_share(series, 60)
                chunks, index = prometheus_bytes(series, Path(tmp), name)
                lines.append("| %s | %.3f | %.3f | %.3f | %.3f | %.2f |" % (shape, ours90, ours60, chunks, index,
                                                                             ours60 / chunks))
        lines.append("")

    text = "\n".join(lines) + "\n"
    print(text)
    return text


NOTES_MARK = "<!-- written by hand below this line; bench/codec.py keeps it -->"

if __name__ == "__main__":
    result = main(sys.argv[1:])
    target = ROOT / "bench" / "RESULTS-codec.md"
    notes = NOTES_MARK + "\n"
    if target.exists() and NOTES_MARK in target.read_text(encoding="utf-8"):
        notes = NOTES_MARK + target.read_text(encoding="utf-8").split(NOTES_MARK, 1)[1]
    target.write_text(result + "\n" + notes, encoding="utf-8")
