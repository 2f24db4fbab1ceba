"""History as a model (#23): the model is a plain list of what was sampled, and every answer of
the stored history matches it within the documented loss, through chunks, roll-ups, retention,
downsampling, clean stops and kill -9 of the process writing it.

A real child process (tests/history_driver.py) owns the data folder and writes through the
writer thread, as the dashboard does. Hypothesis drives it (write, flush, prune, read, stop
with SIGTERM, kill with SIGKILL, start again, sometimes on a folder of schema 4 to upgrade) and
checks every answer against the model:

- full resolution (a window inside ``full_s``): exactly the samples of the window, every float
  bit for bit and every int an int, among those kept: after a prune the newest
  ``keep_samples`` at least, and at most those and the rest of one chunk (whole chunks go);
- a clean stop (SIGTERM) loses nothing written; after SIGKILL only samples never confirmed by
  a flush (still queued) may be missing, and the ones kept are the oldest of those (the writer
  writes in order);
- a longer window is the roll-ups, then the samples not rolled up yet: each bucket's min and
  max are the model's over the samples in that bucket, its average between them and within
  float rounding of their mean; every bucket since the roll-ups' retention is there, and what
  follows the last one is exactly the samples at full resolution;
- with ``points`` (what ``Application.history_columns`` answers): at most that many points,
  each bucket's min and max those of the points falling in it (so the model's), its average
  between them and within rounding of their mean.

Values are what the sampler can hand the history: ints (up to 2**63 - 1, beyond what the
registry keeps as ints), finite floats including -0.0, subnormals and the largest ones. The
registry and the collectors refuse NaN and infinities before they reach the history
(``metric_number``, ``flatten_snapshot``); ``tests/test_codec.py`` covers them in chunks.
Timestamps start near the wall clock (the read path chooses full resolution by it) and go on
a second or a gap at a time; with 2 minutes of full resolution, 1-minute roll-ups kept 5
minutes and a few hundred samples, the store chunks, prunes and rolls up in every example.

Budget: 6 examples of 16 steps in the suite (a few seconds), a failure printed as found;
``SSE_MODEL_EXAMPLES=N`` runs N and shrinks a failure (minutes: each step starts processes).
"""

from __future__ import annotations

import json
import math
import os
import queue
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from sse_dashboard import storage
from sse_dashboard.sampler import encode_json
from sse_dashboard.storage.chunks import CHUNK_SAMPLES
from sse_dashboard.storage.memory import downsample

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM, SIGKILL")

DRIVER = Path(__file__).resolve().parent / "history_driver.py"
EXAMPLES = int(os.environ.get("SSE_MODEL_EXAMPLES") or 0)
ANSWER_TIMEOUT_S = 60.0

FULL_S = 120.0         # 121 samples at full resolution ...
ROLLUP_S = 60.0        # ... 1-minute roll-ups ...
ROLLUP_KEEP_S = 300.0  # ... for 5 minutes: a few hundred samples prune both
MAX_QUEUED = 450       # below the writer's queue (600): a full queue drops samples, by design

# Today's storage falls short of the promise in four ways this model found. Each is tolerated
# below exactly (no more) and pinned by a strict xfail test at the end of this file, so its fix
# shows as an XPASS: then delete that xfail and set its flag to False.
OPEN_ROLLUP_LOST_TO_KILL = True          # test_a_kill_keeps_the_open_minute_in_the_roll_ups
OPEN_ROLLUP_HIDDEN_AFTER_RESTART = True  # test_samples_after_a_restart_mid_minute_show_in_a_long_window
ROLLUP_AVG_MAY_OVERFLOW = True           # test_a_minute_of_the_largest_floats_has_a_finite_average
AVG_MAY_ROUND_OUTSIDE_MIN_MAX = True     # test_the_average_of_a_constant_is_that_constant

NAMES = ["system.cpu_percent", "gauges.depth", "counters.jobs", 'gauges.q{k="v"}', "gauges.late", "server.rss_bytes"]
NEVER_WRITTEN = "gauges.never"

values = st.one_of(
    st.integers(-(2 ** 53), 2 ** 53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(-1e6, 1e6).map(lambda v: round(v, 3)),  # one decimal scale: the scaled-integer codec
    st.sampled_from([0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
                     -1.7976931348623157e308, 2 ** 53 + 1, 2 ** 63 - 1, -(2 ** 63), float(2 ** 53 + 1), 0.1]),
)
# A batch is drawn as a few patterns cycled over up to 250 samples: long runs without drawing
# (and overflowing Hypothesis' buffer with) every value. The sizes named put a prune's cut on a
# chunk's edge (every 60 samples), where pruning one sample too many shows.
batches = st.fixed_dictionaries({
    "n": st.one_of(st.integers(1, 20), st.integers(21, 250), st.sampled_from([60, 120, 121, 122, 180, 181, 240])),
    "names": st.lists(st.sets(st.sampled_from(NAMES), min_size=1, max_size=4), min_size=1, max_size=4),
    "values": st.lists(values, min_size=1, max_size=5),
    "steps": st.lists(st.sampled_from([1, 1, 1, 1, 2, 3, 59, 61, 150]), min_size=1, max_size=4),
    "shape": st.sampled_from(["cycle", "constant", "counter"]),
})
names_asked = st.one_of(st.none(), st.lists(st.sampled_from(NAMES + [NEVER_WRITTEN]), min_size=1, max_size=3,
                                            unique=True))
points_asked = st.one_of(st.none(), st.integers(1, 50), st.integers(1, 3000))
# Where a window starts or ends: a fraction of the data's span, exactly at a sample's time, at
# the newest sample or past it.
positions = st.one_of(st.floats(-0.05, 1.05), st.integers(0, 10 ** 6), st.sampled_from(["newest", "after"]))


def bucket_of(ts: float) -> float:
    return math.floor(ts / ROLLUP_S) * ROLLUP_S


def same(a, b) -> bool:
    """Equal, floats by bit pattern (-0.0 is not 0.0), ints staying ints."""
    if isinstance(a, float) and isinstance(b, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    return type(a) is type(b) and a == b


def rows_of(columns: dict, first: int = 0) -> list:
    """The answer's rows from ``first`` on, as ``(ts, {name: value})`` without the Nones."""
    series = columns["series"]
    return [(ts, {name: column[i] for name, column in series.items() if column[i] is not None})
            for i, ts in enumerate(columns["ts"]) if i >= first]


def rows_equal(got: list, want: list) -> bool:
    return len(got) == len(want) and all(
        same(ts, wts) and flat.keys() == wflat.keys() and all(same(flat[k], wflat[k]) for k in flat)
        for (ts, flat), (wts, wflat) in zip(got, want))


def first_difference(got: list, want: list) -> str:
    for (ts, flat), (wts, wflat) in zip(got, want):
        if not rows_equal([(ts, flat)], [(wts, wflat)]):
            return "first difference: got %r %r, the model %r %r" % (ts, flat, wts, wflat)
    if len(got) < len(want):
        return "the first missing: %r" % (want[len(got):][:2],)
    return "the first one too many: %r" % (got[len(want):][:2],)


def mean_and_tolerance(numbers: list) -> tuple[float, float]:
    """The exact mean (no overflow, no cancellation) and how far a float sum may stray from it."""
    exact = sum(Fraction(v) for v in numbers) / len(numbers)
    scale = max(abs(float(v)) for v in numbers)
    return float(exact), 1e-9 * scale + 1e-300


def sum_overflows(numbers: list) -> bool:
    return sum(abs(Fraction(v)) for v in numbers) > Fraction(sys.float_info.max)


def stats_mismatch(got: tuple, numbers: list) -> str | None:
    """Why a (min, avg, max) is not that of ``numbers``, or None. Min and max are compared as
    numbers (roll-ups are REAL columns: an int comes back a float)."""
    lo, avg, hi = got
    if lo is None or hi is None or float(lo) != float(min(numbers)) or float(hi) != float(max(numbers)):
        return "min/max %r/%r, the model's %r/%r" % (lo, hi, min(numbers), max(numbers))
    if ROLLUP_AVG_MAY_OVERFLOW and sum_overflows(numbers) and (avg is None or math.isinf(avg)):
        return None
    mean, tolerance = mean_and_tolerance(numbers)
    if avg is None or outside(float(lo), avg, float(hi), tolerance) or abs(avg - mean) > tolerance:
        return "avg %r, the model's %r (min %r, max %r)" % (avg, mean, lo, hi)
    return None


def outside(lo: float, avg: float, hi: float, tolerance: float) -> bool:
    """An average that is not between the min and the max (by rounding, where tolerated)."""
    slack = tolerance if AVG_MAY_ROUND_OUTSIDE_MIN_MAX else 0.0
    return not lo - slack <= avg <= hi + slack


class Writer:
    """The child process that owns the data folder (tests/history_driver.py)."""

    def __init__(self, folder: str) -> None:
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, str(DRIVER), folder, str(FULL_S), str(ROLLUP_S), str(ROLLUP_KEEP_S)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True, bufsize=1)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.ready = self.receive()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def log(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode("utf-8", "replace")[-3000:]

    def receive(self) -> dict:
        try:
            line = self.lines.get(timeout=ANSWER_TIMEOUT_S)
        except queue.Empty:
            raise AssertionError("the writer process did not answer in %.0f s; its log:\n%s"
                                 % (ANSWER_TIMEOUT_S, self.log())) from None
        if line is None:
            raise AssertionError("the writer process ended (status %s); its log:\n%s"
                                 % (self.proc.wait(10), self.log()))
        return json.loads(line)

    def send(self, op: str, **args) -> None:
        self.proc.stdin.write(json.dumps(dict(args, op=op)) + "\n")
        self.proc.stdin.flush()

    def ask(self, op: str, **args) -> dict:
        self.send(op, **args)
        return self.receive()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(30)
        self._release()

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        status = self.proc.wait(30)
        assert status == 0, "the writer process exited %s on SIGTERM; its log:\n%s" % (status, self.log())
        self._release()

    def _release(self) -> None:
        self.proc.stdin.close()
        self.proc.stdout.close()
        self.stderr.close()


class HistoryModel(RuleBasedStateMachine):
    """The model: ``samples``, every sample on disk in the order written (its index is its place
    in "the newest keep_samples"); ``queued``, those the writer may not have written yet.

    Beside them, what retention and roll-ups make of them: ``full_required``/``full_possible``,
    the first index that must still be / may still be at full resolution; ``rollups_from``, the
    oldest minute the roll-ups may still hold; and, for the tolerated shortfalls only, which
    samples today's roll-ups miss (``open``: folded in memory by the running process, ``lost``:
    folded by a process that was killed)."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.mkdtemp(prefix="sse-history-model-")
        self.writer: Writer | None = None
        self.samples: list[tuple[float, dict]] = []
        self.queued: list[tuple[float, dict]] = []
        self.by_bucket: dict[float, list[int]] = {}
        self.full_required = self.full_possible = 0
        self.rollups_from = -math.inf
        self.stored_buckets: set[float] = set()  # minutes the roll-up table holds a row of
        self.open_bucket: float | None = None
        self.open: list[int] = []
        self.lost: set[int] = set()
        self.ticks = 0
        self.writes_since_start = 0

    # --- the model's bookkeeping --------------------------------------------------------

    def written(self, ts: float, flat: dict) -> None:
        """One sample on disk, folded into its minute the way the running process does: a
        minute's roll-up is written when the next minute starts (or at a clean stop)."""
        index = len(self.samples)
        self.samples.append((ts, flat))
        bucket = bucket_of(ts)
        self.by_bucket.setdefault(bucket, []).append(index)
        if self.open_bucket is not None and bucket != self.open_bucket:
            self.close_open_bucket()
        self.open_bucket = bucket
        self.open.append(index)

    def close_open_bucket(self) -> None:
        if self.open:
            self.stored_buckets.add(self.open_bucket)
        self.open_bucket, self.open = None, []

    def confirm(self, answer: dict, count: int | None = None) -> None:
        """The queued samples (the oldest ``count`` of them) are on disk."""
        assert answer.get("dropped", 0) == 0 and answer.get("error") is None, (answer, self.writer.log())
        count = len(self.queued) if count is None else count
        for ts, flat in self.queued[:count]:
            self.written(ts, flat)
        self.queued = []

    def make(self, spec: dict) -> list:
        """The batch ``spec`` describes, after the last sample."""
        last = self.queued[-1][0] if self.queued else self.samples[-1][0] if self.samples else self.t0 - 1
        batch = []
        for i in range(spec["n"]):
            last += spec["steps"][i % len(spec["steps"])]
            self.ticks += 1
            flat = {}
            for name in sorted(spec["names"][i % len(spec["names"])]):
                k = NAMES.index(name)
                if spec["shape"] == "constant":
                    flat[name] = spec["values"][k % len(spec["values"])]
                elif spec["shape"] == "cycle":
                    flat[name] = spec["values"][(i + k) % len(spec["values"])]
                else:
                    flat[name] = self.ticks * (k + 1)
            batch.append((last, flat))
        return batch

    def visible(self, start: float, end: float, names: list | None, first: int) -> list:
        """The model's samples from index ``first`` in the window, as a read shows them."""
        rows = []
        for ts, flat in self.samples[first:]:
            if start <= ts <= end:
                shown = flat if names is None else {k: v for k, v in flat.items() if k in names}
                if shown:
                    rows.append((ts, shown))
        return rows

    # --- the checks ------------------------------------------------------------------------

    def check_full(self, got: list, start: float, end: float, names: list | None, what: str) -> None:
        """``got`` is the model's window, from a first sample retention allows on."""
        possible = self.visible(start, end, names, self.full_possible)
        required = self.visible(start, end, names, self.full_required)
        want = possible[len(possible) - len(got):] if got else []
        assert len(got) >= len(required) and rows_equal(got, want), (
            "%s: %d rows in [%r, %r], the model keeps %d (%d more if not pruned yet); %s"
            % (what, len(got), start, end, len(required), len(possible) - len(required),
               first_difference(got, want if len(got) >= len(required) else required)))

    def bucket_members(self, bucket: float, names: list | None) -> list[list]:
        """The samples whose min/avg/max a minute's roll-up may hold: all of them (the promise),
        or, where a shortfall is tolerated, all but those it misses."""
        everyone = set(self.by_bucket.get(bucket, ()))
        missed = []
        if OPEN_ROLLUP_HIDDEN_AFTER_RESTART and bucket == self.open_bucket:
            missed.append(set(self.open))
        if OPEN_ROLLUP_LOST_TO_KILL:
            missed.append(self.lost)
        choices = [everyone]
        for i in range(1, 2 ** len(missed)):
            choices.append(everyone - set().union(*(m for bit, m in enumerate(missed) if i >> bit & 1)))
        return [self.numbers_of(sorted(members), names) for members in choices]

    def numbers_of(self, indexes: list[int], names: list | None) -> dict:
        numbers: dict[str, list] = {}
        for i in indexes:
            for name, value in self.samples[i][1].items():
                if names is None or name in names:
                    numbers.setdefault(name, []).append(value)
        return numbers

    def check_bucket(self, bucket: float, got: dict, names: list | None, what: str) -> None:
        choices = self.bucket_members(bucket, names)
        for numbers in choices:
            if got.keys() == numbers.keys() and not any(stats_mismatch(got[k], numbers[k]) for k in numbers):
                return
        promise = choices[0]
        reasons = ["series %s, the model's %s" % (sorted(got), sorted(promise))] if got.keys() != promise.keys() else []
        reasons += ["%s: %s" % (k, stats_mismatch(got[k], promise[k])) for k in promise if k in got
                    and stats_mismatch(got[k], promise[k])]
        raise AssertionError("%s: the roll-up of the minute at %r is not the model's: %s"
                             % (what, bucket, "; ".join(reasons)))

    def check_rollups(self, columns: dict, start: float, end: float, names: list | None, what: str) -> None:
        """Roll-ups (the leading points on whole minutes: samples are never on one) then the
        samples not rolled up yet, exactly."""
        times = columns["ts"]
        count = 0
        while count < len(times) and times[count] % ROLLUP_S == 0:
            count += 1
        rolled = times[:count]
        assert rolled == sorted(set(rolled)), "%s: roll-up minutes out of order: %r" % (what, rolled)
        for i, bucket in enumerate(rolled):
            assert start - ROLLUP_S <= bucket <= end and bucket >= self.rollups_from, (
                "%s: a roll-up of the minute at %r (retention keeps those from %r)" % (what, bucket, self.rollups_from))
            got = {name: (columns["min"][name][i], column[i], columns["max"][name][i])
                   for name, column in columns["series"].items()
                   if column[i] is not None or columns["min"][name][i] is not None}
            self.check_bucket(bucket, got, names, what)
        last = rolled[-1] if rolled else None
        for bucket, members in self.by_bucket.items():
            kept = start - ROLLUP_S <= bucket <= end and bucket >= self.rollups_from
            if kept and last is not None and bucket < last and bucket not in rolled:
                assert any(not numbers for numbers in self.bucket_members(bucket, names)), (
                    "%s: the minute at %r (%d samples) is missing from the roll-ups" % (what, bucket, len(members)))
        recent = rows_of(columns, count)
        for i, (ts, flat) in enumerate(recent, count):
            for name, value in flat.items():
                assert same(columns["min"][name][i], value) and same(columns["max"][name][i], value), (
                    "%s: min/max of the sample at %r are not its value %r" % (what, ts, value))
        self.check_full(recent, max(start, last + ROLLUP_S) if rolled else start, end, names,
                        what + ", after the roll-ups,")

    def check_downsampled(self, columns: dict, shown: dict, points: int, start: float, end: float,
                          what: str) -> None:
        """``shown`` is ``columns`` in at most ``points`` buckets of the window (README, Limits)."""
        if len(columns["ts"]) <= points:
            assert json.dumps(shown, sort_keys=True) == json.dumps(columns, sort_keys=True), what
            return
        assert shown.get("downsampled") is True and len(shown["ts"]) <= points, (what, len(shown["ts"]), points)
        width = max((end - start) / points, 1e-9)
        groups: dict[int, list[int]] = {}
        for i, ts in enumerate(columns["ts"]):
            groups.setdefault(min(points - 1, max(0, int((ts - start) // width))), []).append(i)
        order = sorted(groups)
        assert shown["ts"] == [round(start + j * width, 3) for j in order], what
        assert shown["series"].keys() == columns["series"].keys(), what
        for name, column in columns["series"].items():
            lows = (columns.get("min") or {}).get(name, column)
            highs = (columns.get("max") or {}).get(name, column)
            for at, j in enumerate(order):
                inside = [i for i in groups[j] if column[i] is not None]
                lo, avg, hi = shown["min"][name][at], shown["series"][name][at], shown["max"][name][at]
                if not inside:
                    assert (lo, avg, hi) == (None, None, None), (what, name, shown["ts"][at], lo, avg, hi)
                    continue
                want_lo, want_hi = min(lows[i] for i in inside), max(highs[i] for i in inside)
                assert lo == want_lo and hi == want_hi, (
                    "%s: %s in the bucket at %r: min/max %r/%r, the points' %r/%r"
                    % (what, name, shown["ts"][at], lo, hi, want_lo, want_hi))
                averaged = [column[i] for i in inside]
                if ROLLUP_AVG_MAY_OVERFLOW and any(math.isinf(v) for v in averaged):
                    continue
                mean, tolerance = mean_and_tolerance(averaged)
                assert not outside(lo, avg, hi, tolerance) and abs(avg - mean) <= tolerance, (
                    "%s: %s in the bucket at %r: avg %r, min %r, max %r, the points' mean %r"
                    % (what, name, shown["ts"][at], avg, lo, hi, mean))

    def read(self, start: float, end: float, names: list | None, points: int | None) -> dict:
        """Flush (so the model knows what is on disk), then read; check the answer."""
        self.confirm(self.writer.ask("flush"))
        answer = self.writer.ask("read", start=start, end=end, names=names, points=points)
        columns, (before, after) = answer["columns"], answer["clock"]
        what = "%s read of [%r, %r] (names %s, points %s)" % (columns["resolution"], start, end, names, points)
        if start >= after - FULL_S - 1.0:
            assert columns["resolution"] == "full", what
        elif start < before - FULL_S - 1.0:
            assert columns["resolution"] == "rollup", what
        if columns["resolution"] == "full":
            self.check_full(rows_of(columns), start, end, names, what)
        else:
            self.check_rollups(columns, start, end, names, what)
        if points:
            self.check_downsampled(columns, answer["downsampled"], points, start, end, what)
        return columns

    def check_everything(self) -> None:
        """Every sample at full resolution, and the whole history as a long window shows it."""
        newest = self.samples[-1][0] if self.samples else self.t0
        self.read(self.t0 - 5, newest + 1000, None, None)
        self.read(self.t0 - FULL_S - 70, newest + 1000, None, None)

    def read_everything_recent(self, what: str) -> list:
        """Every sample, at full resolution (they all are newer than ``full_s`` ago)."""
        answer = self.writer.ask("read", start=self.t0 - 5, end=1e12, names=None, points=None)
        assert answer["columns"]["resolution"] == "full", (
            "%s: the example ran so long its first samples left full resolution" % what)
        return rows_of(answer["columns"])

    def at(self, position, anchor: float) -> float:
        """A time from a drawn position: a fraction of the data's span, a sample's time, the
        newest sample's or later."""
        if position in ("newest", "after"):
            newest = self.samples[-1][0] if self.samples else self.t0
            return newest if position == "newest" else newest + 1000
        if isinstance(position, int) and self.samples:
            return self.samples[position % len(self.samples)][0]
        span = (self.samples[-1][0] if self.samples else self.t0) - self.t0 + 10
        return anchor + float(position) * span

    # --- the rules -----------------------------------------------------------------------------

    @initialize(offset=st.integers(0, 59), upgrade=st.one_of(st.none(), batches), first=batches)
    def start(self, offset: int, upgrade: dict | None, first: dict) -> None:
        """Samples start a minute before now, half a second off the whole seconds, so a roll-up's
        minute is never a sample's time; sometimes in a folder of schema 4 to upgrade."""
        self.t0 = math.floor(time.time()) - 60 + offset + 0.5
        if upgrade is not None:
            self.write_schema_4_folder(self.make(upgrade))
        self.start_writer()
        self.keep_samples, self.keep_buckets = self.writer.ready["keep_samples"], self.writer.ready["keep_buckets"]
        self.write(first, flush=False)

    def write_schema_4_folder(self, batch: list) -> None:
        """What the dashboard before chunks (schema 4) left after a clean stop: a row a sample,
        a row a value, every minute's roll-up, the series' names."""
        conn = sqlite3.connect(os.path.join(self.folder, storage.DB_FILENAME))
        for script in storage.MIGRATIONS[:4]:
            conn.executescript(script)
        conn.executescript("CREATE TABLE schema_version (version INTEGER NOT NULL);"
                           "INSERT INTO schema_version VALUES (4); INSERT INTO meta VALUES ('epoch', 'v4');")
        ids = {name: i + 1 for i, name in enumerate(NAMES)}
        conn.executemany("INSERT INTO series (id, name) VALUES (?, ?)", [(i, name) for name, i in ids.items()])
        for number, (ts, flat) in enumerate(batch, 1):
            conn.execute("INSERT INTO samples (id, ts) VALUES (?, ?)", (number, ts))
            conn.executemany("INSERT INTO points VALUES (?, ?, ?)", [(number, ids[k], v) for k, v in flat.items()])
            self.written(ts, flat)
        self.close_open_bucket()
        for bucket, members in self.by_bucket.items():
            for name, numbers in self.numbers_of(members, None).items():
                conn.execute("INSERT INTO rollups VALUES (?, ?, ?, ?, ?, ?)",
                             (bucket, ids[name], min(numbers), sum(numbers) / len(numbers), max(numbers), len(numbers)))
        conn.commit()
        conn.close()

    def start_writer(self) -> None:
        self.writer = Writer(self.folder)
        self.writes_since_start = 0

    def teardown(self) -> None:
        if self.writer is not None and self.writer.proc.poll() is None:
            self.writer.kill()
        shutil.rmtree(self.folder, ignore_errors=True)

    @rule(spec=batches, flush=st.booleans())
    def write(self, spec: dict, flush: bool) -> None:
        """Queue samples for the writer thread, as the sampler does: nothing is confirmed until
        a flush says every queued sample is written."""
        batch = self.make(spec)
        if len(self.queued) + len(batch) > MAX_QUEUED:
            self.confirm(self.writer.ask("flush"))
        self.writer.ask("write", samples=batch)
        self.queued.extend(batch)
        self.writes_since_start += 1
        if flush:
            self.confirm(self.writer.ask("flush"))
            self.check_everything()

    @precondition(lambda self: self.ticks > self.keep_samples)  # (what a kill keeps varies: not that)
    @rule()
    def prune(self) -> None:
        """Retention: the newest ``keep_samples`` at full resolution (whole chunks go, so up to
        ``CHUNK_SAMPLES - 1`` older ones may stay), the newest ``keep_buckets`` minutes of roll-ups."""
        self.confirm(self.writer.ask("prune"))
        cut = len(self.samples) - self.keep_samples
        self.full_required = max(self.full_required, cut)
        self.full_possible = max(self.full_possible, cut - (CHUNK_SAMPLES - 1))
        stored = sorted(self.stored_buckets)
        if len(stored) > self.keep_buckets:
            self.rollups_from = max(self.rollups_from, stored[-self.keep_buckets])
            self.stored_buckets = set(stored[-self.keep_buckets:])
        self.check_everything()

    @precondition(lambda self: self.writes_since_start)
    @rule()
    def stop_and_start(self) -> None:
        """SIGTERM: every queued sample and the open minute's roll-up are written."""
        self.writer.terminate()
        self.confirm({})
        self.close_open_bucket()
        self.start_writer()
        self.check_everything()

    @precondition(lambda self: self.writes_since_start)
    @rule(during=st.one_of(st.none(), batches))
    def kill_and_start(self, during: dict | None) -> None:
        """SIGKILL (``during``: as soon as those samples are sent, mid-write): of the samples
        never confirmed, the oldest few may be on disk, the rest is gone. Every confirmed one is
        there."""
        if during is not None:
            batch = self.make(during)[:MAX_QUEUED - len(self.queued)]
            self.writer.send("write", samples=batch)
            self.queued.extend(batch)
        self.writer.kill()
        self.start_writer()
        got = self.read_everything_recent("after SIGKILL")
        newest = got[-1][0] if got else -math.inf
        self.confirm({}, count=sum(1 for ts, _ in self.queued if ts <= newest))
        self.lost.update(self.open)  # folded in the killed process's memory only
        self.open_bucket, self.open = None, []
        self.check_full(got, self.t0 - 5, 1e12, None, "after SIGKILL and a start, everything")
        self.check_everything()

    @rule(start=positions, end=positions, names=names_asked, points=points_asked)
    def read_recent(self, start, end, names, points) -> None:
        """A window inside full resolution."""
        begin = max(self.t0 - 5, self.at(start, self.t0))
        self.read(begin, max(begin, self.at(end, self.t0)), names, points)

    @rule(back=st.floats(0, 600), end=positions, names=names_asked, points=points_asked)
    def read_long(self, back, end, names, points) -> None:
        """A window reaching past full resolution (it starts before the first sample)."""
        self.read(self.t0 - FULL_S - 70 - back, self.at(end, self.t0), names, points)


TestHistoryModel = HistoryModel.TestCase
TestHistoryModel.settings = settings(
    max_examples=EXAMPLES or 6, stateful_step_count=16, deadline=None, database=None,
    # Shrinking a failure starts the writer hundreds of times (two minutes): in the suite the
    # failing sequence is printed as found; SSE_MODEL_EXAMPLES=N shrinks it.
    phases=list(Phase) if EXAMPLES else [Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck))


# --- what the model tolerates today, each pinned (strict: its fix fails here until unpinned) ----

def an_hour_ago_minute() -> float:
    """A whole minute an hour ago: windows from there are past full resolution (``FULL_S``)."""
    return bucket_of(time.time() - 3600)


def long_window(store, start: float, end: float) -> dict:
    columns = store.history_columns(start, end, None)
    assert columns["resolution"] == "rollup"
    return columns


@pytest.mark.xfail(strict=True, reason="#23: the open minute's roll-up is kept in memory until the minute "
                                       "ends; kill -9 loses it, though its samples were written")
def test_a_kill_keeps_the_open_minute_in_the_roll_ups(tmp_path):
    minute = an_hour_ago_minute()
    writer = Writer(str(tmp_path))
    writer.ask("write", samples=[(minute + 0.5 + i, {"g": i}) for i in range(11)])
    assert writer.ask("flush") == {"dropped": 0, "error": None}  # confirmed: on disk
    writer.kill()
    writer = Writer(str(tmp_path))
    writer.ask("write", samples=[(minute + 60.5, {"g": 100}), (minute + 120.5, {"g": 200})])
    writer.ask("flush")
    columns = writer.ask("read", start=minute - 60, end=minute + 200, names=None, points=None)["columns"]
    writer.kill()
    # Today: [minute + 60, minute + 120.5]: the first minute's 11 samples are in no long window.
    assert columns["ts"][0] == minute, columns
    assert (columns["min"]["g"][0], columns["max"]["g"][0]) == (0, 10)


@pytest.mark.xfail(strict=True, reason="#23: stopped mid-minute, that minute's roll-up is written; started "
                                       "again, the minute's new samples show in no long window until it ends")
def test_samples_after_a_restart_mid_minute_show_in_a_long_window(tmp_path):
    minute = an_hour_ago_minute()
    options = dict(full_s=FULL_S, rollup_s=ROLLUP_S, interval_s=1.0)
    store = storage.open_store(tmp_path, **options)
    store.history.write([(minute + 0.5 + i, {"g": i}) for i in range(11)])
    store.close()
    store = storage.open_store(tmp_path, **options)
    store.history.write([(minute + 20.5 + i, {"g": 100 + i}) for i in range(11)])
    columns = long_window(store, minute - 60, minute + 60)
    store.close()
    # Today: one point, the roll-up written at the stop (max 10); 100..110 are nowhere.
    assert max(v for v in columns["max"]["g"] if v is not None) == 110, columns


@pytest.mark.xfail(strict=True, reason="#23: a minute's roll-up sums its values: two gauges at 1e308 make an "
                                       "infinite average, which /api/metrics/history cannot send (JSON)")
def test_a_minute_of_the_largest_floats_has_a_finite_average(tmp_path):
    minute = an_hour_ago_minute()
    store = storage.open_store(tmp_path, full_s=FULL_S, rollup_s=ROLLUP_S, interval_s=1.0)
    store.history.write([(minute + 0.5, {"g": 1e308}), (minute + 1.5, {"g": 1e308}), (minute + 60.5, {"g": 1})])
    columns = long_window(store, minute - 60, minute + 120)
    store.close()
    assert columns["series"]["g"][0] == 1e308, columns
    encode_json(columns)  # what the answer is sent as: NaN and infinities refused


@pytest.mark.xfail(strict=True, reason="#23: a sum of rounded terms: the average of a constant can be an ulp "
                                       "off it, outside the min and max shown beside it")
def test_the_average_of_a_constant_is_that_constant(tmp_path):
    minute = an_hour_ago_minute()
    shown = downsample({"ts": [float(i) for i in range(6)], "series": {"g": [0.1] * 6}}, 1, 0.0, 6.0)
    assert shown["series"]["g"] == [0.1], shown  # today 0.09999999999999999, min and max 0.1
    store = storage.open_store(tmp_path, full_s=FULL_S, rollup_s=ROLLUP_S, interval_s=1.0)
    store.history.write([(minute + 0.5 + i, {"g": 0.1}) for i in range(3)] + [(minute + 60.5, {"g": 1})])
    columns = long_window(store, minute - 60, minute + 120)
    store.close()
    assert columns["series"]["g"][0] == 0.1, columns  # today 0.10000000000000002
