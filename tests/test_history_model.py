"""History as a model (#23): the model is a plain list of what was sampled, and every answer of
the stored history matches it, through staging, chunk groups, joins, retention, roll-ups,
downsampling, exports, clean stops and kill -9 of the process writing it.

A real child process (tests/history_driver.py) owns the data folder and writes through the
writer thread, as the dashboard does. Hypothesis drives it (write, flush, prune, read, export,
stop with SIGTERM, kill with SIGKILL, also mid-write and mid-prune, start again, sometimes on a
folder of schema 4 to upgrade) and checks every answer against the model exactly:

- where the samples are (``Kept``): staged rows, then, once more than ``staged_most`` (60, or
  120 where retention keeps under four groups) are staged, the oldest ``CHUNK_SAMPLES`` become a group; ``JOIN_GROUPS`` groups shorter than the
  longest allowed (``keep_samples // 4``, at most 600) are joined into one. Retention keeps the
  newest ``keep_samples`` by sample id: a group goes only once all of it is older, staged rows
  one by one;
- what a prune drops becomes the roll-ups of its minutes in the same transaction (merged with
  what the minute already holds), and the newest ``keep_buckets`` minutes of roll-ups are kept;
- a window is the stored roll-ups of the minutes before the oldest sample kept, then every
  sample kept, each float bit for bit (NaN payloads, -0.0, infinities) and every int an int;
  ``resolution`` is ``"rollup"`` exactly when a roll-up is in the answer. A roll-up's min and
  max are the model's over the samples dropped into its minute, its average between them and
  within float rounding of their mean (NaN: min, max and average over it mean nothing, so a
  minute's series with a NaN is checked only for being there);
- an export (``rows``) is the roll-ups' averages of the minutes before the oldest sample kept,
  then every sample kept;
- with ``points`` (what ``Application.history_columns`` answers): at most that many points,
  each bucket's min and max those of the points falling in it, its average between them and
  within rounding of their mean;
- a read is one snapshot: samples written (and the compaction that follows) while it is
  between its first block and the rest are not in it, and nothing it should show is missing
  (the driver writes at exactly that moment, from inside the read: no race left to timing);
- a clean stop (SIGTERM) loses nothing written; after SIGKILL only samples never confirmed by
  a flush (still queued) may be missing, and the ones kept are the oldest of those (the writer
  writes in order); a prune killed midway happened entirely or not at all (its roll-ups with
  its drop).

Two retentions: 121 samples (groups of 60 never join) and 2,400 (groups of 60 join into 600;
batches are 8 times larger there, so it prunes). Timestamps go on a second or a gap at a time,
half a second off the whole seconds, so a roll-up's minute is never a sample's time; the read
path chooses roll-ups by the oldest sample kept, not by the wall clock.

Budget: 6 examples of 16 steps in the suite (a few seconds), a failure printed as found;
``SSE_MODEL_EXAMPLES=N`` runs N and shrinks a failure (minutes: each step starts processes).
"""

from __future__ import annotations

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
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from sse_dashboard import storage
from sse_dashboard.storage.buckets import bucket_width
from sse_dashboard.storage.chunks import CHUNK_SAMPLES, JOIN_GROUPS, staged_most
from sse_dashboard.storage.summaries import AGG_S, slot_of
from sse_dashboard.storage.memory import downsample

sys.path.insert(0, str(Path(__file__).resolve().parent))
from history_driver import decode_line, encode_line  # noqa: E402

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM, SIGKILL")

DRIVER = Path(__file__).resolve().parent / "history_driver.py"
EXAMPLES = int(os.environ.get("SSE_MODEL_EXAMPLES") or 0)
ANSWER_TIMEOUT_S = 60.0

RETENTIONS = {"short": (120.0, 1), "long": (2399.0, 8)}  # full_s (keep_samples - 1), batch scale
ROLLUP_S = 60.0        # 1-minute roll-ups ...
ROLLUP_KEEP_S = 300.0  # ... 6 of them kept
MAX_QUEUED = 450       # below the writer's queue (600): a full queue drops samples, by design
MAX_ONE_WRITE = 450    # a batch written at once: at most 8 compactions follow (chunks.MAX_MOVES_A_WRITE)
T0 = 1_800_000_000.5   # a whole minute + 0.5


NAMES = ["system.cpu_percent", "gauges.depth", "counters.jobs", 'gauges.q{k="v"}', "gauges.late", "server.rss_bytes"]
NEVER_WRITTEN = "gauges.never"


def nan_with(sign: bool, payload: int) -> float:
    """A NaN with this sign and payload (quiet or signalling): the codec keeps every bit."""
    return struct.unpack("<d", struct.pack("<Q", (sign << 63) | (0x7FF << 52) | payload))[0]


finite_or_not = st.one_of(
    st.integers(-(2 ** 53), 2 ** 53),
    st.floats(allow_nan=False),  # infinities too
    st.floats(-1e6, 1e6).map(lambda v: round(v, 3)),  # one decimal scale: the scaled-integer codec
    st.sampled_from([0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
                     -1.7976931348623157e308, 2 ** 53 + 1, 2 ** 63 - 1, -(2 ** 63), float(2 ** 53 + 1), 0.1,
                     math.inf, -math.inf]),
)
nans = st.one_of(st.just(math.nan), st.builds(nan_with, st.booleans(), st.integers(1, 2 ** 52 - 1)))
values = st.integers(0, 11).flatmap(lambda k: nans if k == 0 else finite_or_not)
# A batch is drawn as a few patterns cycled over up to 250 samples (times the retention's
# scale): long runs without drawing (and overflowing Hypothesis' buffer with) every value. The
# sizes named put a prune's cut or a compaction on a group's edge (every 60 samples).
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
# the oldest sample kept, the newest sample or past it.
positions = st.one_of(st.floats(-0.05, 1.05), st.integers(0, 10 ** 6), st.sampled_from(["oldest", "newest", "after"]))
now_and_then = st.one_of(st.none(), st.none(), batches)


def bucket_of(ts: float) -> float:
    return math.floor(ts / ROLLUP_S) * ROLLUP_S


def same(a, b) -> bool:
    """Equal, floats by bit pattern (-0.0 is not 0.0, each NaN is its own), ints staying ints."""
    if isinstance(a, float) and isinstance(b, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    return type(a) is type(b) and a == b


def is_nan(value) -> bool:
    return isinstance(value, float) and math.isnan(value)


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


def avg_mismatch(lo, avg, hi, numbers: list) -> str | None:
    """Why ``avg`` is not an average of ``numbers`` shown between ``lo`` and ``hi``, or None:
    between them exactly (the answer shows them side by side), within rounding of the mean where
    every number is finite (an infinity's mean is only bounded)."""
    if avg is None or not lo <= avg <= hi:
        return "avg %r outside min %r, max %r" % (avg, lo, hi)
    if all(math.isfinite(v) for v in numbers):
        mean, tolerance = mean_and_tolerance(numbers)
        if abs(avg - mean) > tolerance:
            return "avg %r, the model's %r (min %r, max %r)" % (avg, mean, lo, hi)
    return None


def stats_mismatch(got: tuple, numbers: list) -> str | None:
    """Why a (min, avg, max) is not that of ``numbers``, or None. Min and max are compared as
    numbers (roll-ups are REAL columns: an int comes back a float)."""
    lo, avg, hi = got
    if lo is None or hi is None or float(lo) != float(min(numbers)) or float(hi) != float(max(numbers)):
        return "min/max %r/%r, the model's %r/%r" % (lo, hi, min(numbers), max(numbers))
    return avg_mismatch(lo, avg, hi, numbers)


def write_schema_4_folder(folder: str, batch: list) -> None:
    """What the dashboard before chunks (schema 4) left after a clean stop: a row a sample, a
    row a value, every minute's roll-up (written as each minute ended, and the last at the stop),
    the series' names."""
    conn = sqlite3.connect(os.path.join(folder, storage.DB_FILENAME))
    conn.execute("PRAGMA synchronous=OFF")  # a fixture: no fsync a script (0.4 s a folder)
    for script in storage.MIGRATIONS[:4]:
        conn.executescript(script)
    conn.executescript("CREATE TABLE schema_version (version INTEGER NOT NULL);"
                       "INSERT INTO schema_version VALUES (4); INSERT INTO meta VALUES ('epoch', 'v4');")
    ids: dict[str, int] = {}
    by_minute: dict[float, dict[str, list]] = {}
    for number, (ts, flat) in enumerate(batch, 1):
        conn.execute("INSERT INTO samples (id, ts) VALUES (?, ?)", (number, ts))
        for name, value in flat.items():
            if name not in ids:
                ids[name] = conn.execute("INSERT INTO series (name) VALUES (?)", (name,)).lastrowid
            conn.execute("INSERT INTO points VALUES (?, ?, ?)", (number, ids[name], value))
            by_minute.setdefault(bucket_of(ts), {}).setdefault(name, []).append(value)
    for bucket, numbers_by_name in by_minute.items():
        for name, numbers in numbers_by_name.items():
            mean, _ = mean_and_tolerance(numbers)
            conn.execute("INSERT INTO rollups VALUES (?, ?, ?, ?, ?, ?)",
                         (bucket, ids[name], min(numbers), mean, max(numbers), len(numbers)))
    conn.commit()
    conn.close()


class Writer:
    """The child process that owns the data folder (tests/history_driver.py)."""

    def __init__(self, folder: str, full_s: float) -> None:
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            # -S: no site (the package is stdlib only, the driver puts the checkout on its path):
            # a quarter less to start, and the model starts it often
            [sys.executable, "-S", str(DRIVER), folder, str(full_s), str(ROLLUP_S), str(ROLLUP_KEEP_S)],
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
        return decode_line(line)

    def send(self, op: str, **args) -> None:
        self.proc.stdin.write(encode_line(dict(args, op=op)))
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


class Kept:
    """Where the store holds the model's samples (indexes into ``HistoryModel.samples``; a
    sample's id is its index + 1): ``first``, the oldest kept at full resolution; ``groups``,
    each chunk group's ``[first, past)``, oldest first; ``staged_from``, the first staged row;
    ``rollups``, each stored minute's samples (one twice: counted twice)."""

    def __init__(self) -> None:
        self.first = 0
        self.groups: list[tuple[int, int]] = []
        self.staged_from = 0
        self.rollups: dict[float, list[int]] = {}

    def copy(self) -> "Kept":
        other = Kept()
        other.first, other.groups, other.staged_from = self.first, list(self.groups), self.staged_from
        other.rollups = {bucket: list(members) for bucket, members in self.rollups.items()}
        return other


class HistoryModel(RuleBasedStateMachine):
    """The model: ``samples``, every sample on disk in the order written; ``queued``, those the
    writer may not have written yet; ``kept``, what storage makes of them (``Kept``), known
    exactly unless a kill came between a write and the compaction after it (``layout_known``:
    the next write in this process makes it known again)."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.mkdtemp(prefix="sse-history-model-")
        self.writer: Writer | None = None
        self.samples: list[tuple[float, dict]] = []
        self.queued: list[tuple[float, dict]] = []
        self.kept = Kept()
        self.layout_known = True
        self.ticks = 0
        self.writes_since_start = 0

    # --- the model's bookkeeping --------------------------------------------------------

    def confirm(self, answer: dict, count: int | None = None, written_here: bool = True) -> None:
        """The queued samples (the oldest ``count`` of them) are on disk. ``written_here``: by
        the running process, each write followed by its compaction and join; else by a killed
        one, which may have stopped between them."""
        assert answer.get("dropped", 0) == 0 and answer.get("error") is None, (answer, self.writer.log())
        count = len(self.queued) if count is None else count
        self.samples.extend(self.queued[:count])
        self.queued = []
        if count and written_here:
            self.settle()
        elif count:
            self.layout_known = False

    def settle(self) -> None:
        """Compaction and joins as the writer leaves them after a write: the oldest 60 staged
        become a group while more than ``staged_most`` are staged; the oldest ``JOIN_GROUPS`` groups shorter
        than the longest allowed become one (each write joins once, and adds at most 8 groups:
        fewer than 10 wait after it)."""
        kept, most = self.kept, self.longest_group
        while len(self.samples) - kept.staged_from > staged_most(self.keep_samples):
            kept.groups.append((kept.staged_from, kept.staged_from + CHUNK_SAMPLES))
            kept.staged_from += CHUNK_SAMPLES
        while True:
            small = [i for i, (a, b) in enumerate(kept.groups) if b - a < most][:JOIN_GROUPS]
            if len(small) < JOIN_GROUPS or sum(kept.groups[i][1] - kept.groups[i][0] for i in small) > most:
                break
            assert small == list(range(small[0], small[0] + JOIN_GROUPS)), kept.groups  # the model's own
            kept.groups[small[0]:small[-1] + 1] = [(kept.groups[small[0]][0], kept.groups[small[-1]][1])]
            event("groups joined")
        self.layout_known = True

    def know_layout(self) -> None:
        """After a kill between a write and its compaction, what the next write would do: an
        empty one (a rule's precondition must not hang on the kill's timing: Hypothesis replays)."""
        if not self.layout_known:
            event("an empty write after a kill mid-write")
            self.writer.ask("settle")
            self.settle()

    def pruned(self, kept: Kept) -> Kept:
        """``kept`` after a prune: the samples with id at most ``len - keep_samples`` go (a group
        once all of it does), each into its minute's roll-up; the newest ``keep_buckets``
        minutes of roll-ups stay."""
        after = kept.copy()
        if len(self.samples) > self.keep_samples:
            cut = len(self.samples) - self.keep_samples  # ids up to cut go: indexes below it
            groups = [(a, b) for a, b in after.groups if b > cut]
            first = max(after.first, groups[0][0] if groups else max(after.staged_from, cut))
            for i in range(after.first, first):
                after.rollups.setdefault(bucket_of(self.samples[i][0]), []).append(i)
            if first > after.first:
                event("a prune drops samples%s" % (" and a joined group" if any(
                    b - a > CHUNK_SAMPLES for a, b in after.groups if b <= cut) else ""))
            after.groups, after.first, after.staged_from = groups, first, max(after.staged_from, first)
        # The newest ``keep_buckets`` minutes with a row stay: a minute of NaN only has none
        # (NaN is kept out of roll-ups), so it does not count, and goes with the older ones.
        rows = [bucket for bucket in sorted(after.rollups) if self.rollup_numbers(after.rollups[bucket], None)]
        if len(rows) > self.keep_buckets:
            oldest = rows[-self.keep_buckets - 1]
            for bucket in [bucket for bucket in after.rollups if bucket <= oldest]:
                del after.rollups[bucket]
        return after

    def make(self, spec: dict, most: int | None = None) -> list:
        """The batch ``spec`` describes (at most ``most`` samples), after the last sample."""
        last = self.queued[-1][0] if self.queued else self.samples[-1][0] if self.samples else self.t0 - 1
        batch = []
        count = spec["n"] * self.scale
        for i in range(count if most is None else min(count, most)):
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

    def numbers_of(self, indexes: list[int], names: list | None) -> dict:
        numbers: dict[str, list] = {}
        for i in indexes:
            for name, value in self.samples[i][1].items():
                if names is None or name in names:
                    numbers.setdefault(name, []).append(value)
        return numbers

    def rollup_numbers(self, indexes: list[int], names: list | None) -> dict:
        """What a roll-up of these samples holds: their numbers but NaN (min, max and mean over it
        mean nothing), and no series that had NaN only."""
        numbers = {name: [v for v in values if not is_nan(v)] for name, values in self.numbers_of(indexes, names).items()}
        return {name: values for name, values in numbers.items() if values}

    def first_full(self, kept: Kept) -> float | None:
        return self.samples[kept.first][0] if kept.first < len(self.samples) else None

    def expected(self, kept: Kept, start: float, end: float, names: list | None) -> tuple[list, list]:
        """The window as the model has it: ``(bucket, {name: numbers})`` of the roll-ups before
        the oldest sample kept, then the samples kept, as rows."""
        first_full = self.first_full(kept)
        buckets = []
        if first_full is None or start < first_full:
            for bucket in sorted(kept.rollups):
                if start - ROLLUP_S <= bucket <= end and (first_full is None or bucket < first_full):
                    numbers = self.rollup_numbers(kept.rollups[bucket], names)
                    if numbers:
                        buckets.append((bucket, numbers))
        rows = []
        for ts, flat in self.samples[kept.first:]:
            if start <= ts <= end:
                shown = flat if names is None else {k: v for k, v in flat.items() if k in names}
                if shown:
                    rows.append((ts, shown))
        return buckets, rows

    def expected_export(self, kept: Kept, start: float, end: float) -> tuple[list, list]:
        """An export as the model has it: the roll-ups of minutes in ``[start, end)`` before the
        oldest sample kept, then the samples kept."""
        first_full = self.first_full(kept)
        buckets = []
        if first_full is None or start < first_full:
            limit = end if first_full is None else min(end, first_full)
            buckets = [(bucket, self.rollup_numbers(kept.rollups[bucket], None)) for bucket in sorted(kept.rollups)
                       if start <= bucket < limit and self.rollup_numbers(kept.rollups[bucket], None)]
        return buckets, self.expected(kept, max(start, first_full or start), end, None)[1]

    # --- the checks ------------------------------------------------------------------------

    def check_answer(self, columns: dict, kept: Kept, start: float, end: float, names: list | None,
                     what: str) -> None:
        """``columns`` is the model's window exactly (``expected``)."""
        buckets, rows = self.expected(kept, start, end, names)
        count = len(buckets)
        assert columns["resolution"] == ("rollup" if buckets else "full"), (
            "%s: resolution %r with %d roll-up(s) in the model" % (what, columns["resolution"], count))
        times = columns["ts"]
        leading = 0  # roll-ups lead, on whole minutes (a sample's time never is one)
        while leading < len(times) and times[leading] % ROLLUP_S == 0:
            leading += 1
        got_buckets = times[:leading]
        assert got_buckets == [bucket for bucket, _ in buckets], (
            "%s: roll-ups of the minutes %r, the model's %r (the oldest sample kept at %r)"
            % (what, got_buckets, [bucket for bucket, _ in buckets], self.first_full(kept)))
        got = rows_of(columns, count)
        assert rows_equal(got, rows), (
            "%s: %d samples after %d roll-up(s), the model keeps %d (the samples from the %dth on); %s"
            % (what, len(got), count, len(rows), kept.first, first_difference(got, rows)))
        wanted = set().union(*(numbers for _, numbers in buckets), *(flat for _, flat in rows))
        assert set(columns["series"]) == wanted, (what, sorted(columns["series"]), sorted(wanted))
        for i, (bucket, numbers) in enumerate(buckets):
            for name in wanted:
                point = (columns["min"][name][i], columns["series"][name][i], columns["max"][name][i])
                if name not in numbers:
                    assert point == (None, None, None), (what, bucket, name, point)
                elif not any(map(is_nan, numbers[name])):  # NaN's min, max and mean mean nothing
                    reason = stats_mismatch(point, numbers[name])
                    assert reason is None, ("%s: the roll-up of %s in the minute at %r (%d samples): %s"
                                            % (what, name, bucket, len(numbers[name]), reason))
        if buckets:
            event("an answer with roll-ups")
            for i, (ts, flat) in enumerate(got, count):
                for name, value in flat.items():
                    assert same(columns["min"][name][i], value) and same(columns["max"][name][i], value), (
                        "%s: min/max of the sample at %r are not its value %r" % (what, ts, value))

    def check_export(self, got: list, kept: Kept, start: float, end: float, what: str) -> None:
        buckets, rows = self.expected_export(kept, start, end)
        times = [ts for ts, _ in got[:len(buckets)]]
        assert times == [bucket for bucket, _ in buckets], (what, times, [bucket for bucket, _ in buckets])
        for (bucket, flat), (_, numbers) in zip(got, buckets):
            assert flat.keys() == numbers.keys(), (what, bucket, sorted(flat), sorted(numbers))
            for name, avg in flat.items():
                if not any(map(is_nan, numbers[name])):  # (REAL columns: the bounds as floats)
                    reason = avg_mismatch(float(min(numbers[name])), avg, float(max(numbers[name])), numbers[name])
                    assert reason is None, "%s: the exported average of %s at %r: %s" % (what, name, bucket, reason)
        rest = got[len(buckets):]
        assert rows_equal(rest, rows), (
            "%s: %d rows after %d roll-up(s), the model keeps %d; %s"
            % (what, len(rest), len(buckets), len(rows), first_difference(rest, rows)))

    def check_downsampled(self, columns: dict, shown, points: int, start: float, end: float, what: str) -> None:
        """``shown`` is ``columns`` in at most ``points`` buckets of the window (README, Limits)."""
        assert not (isinstance(shown, str) and shown.startswith("raised")), "%s: downsampling %s" % (what, shown)
        if len(columns["ts"]) <= points:
            assert shown == "unchanged", (what, len(columns["ts"]), points)
            return
        assert shown.get("downsampled") is True and len(shown["ts"]) <= points, (what, len(shown["ts"]), points)
        event("downsampled %s" % columns["resolution"])
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
                if any(v is None or is_nan(v) for i in inside for v in (column[i], lows[i], highs[i])):
                    continue  # NaN (or what a roll-up of one left): min, max and mean mean nothing
                want_lo, want_hi = min(lows[i] for i in inside), max(highs[i] for i in inside)
                assert lo == want_lo and hi == want_hi, (
                    "%s: %s in the bucket at %r: min/max %r/%r, the points' %r/%r"
                    % (what, name, shown["ts"][at], lo, hi, want_lo, want_hi))
                reason = avg_mismatch(lo, avg, hi, [column[i] for i in inside])
                assert reason is None, "%s: %s in the bucket at %r: %s" % (what, name, shown["ts"][at], reason)

    def read(self, start: float, end: float, names: list | None, points: int | None, between: dict | None = None) -> None:
        """Flush (so the model knows what is on disk), then read; check the answer. ``between``:
        samples written while the read is under way, which it must not show."""
        self.confirm(self.writer.ask("flush"))
        batch = self.make(between, MAX_ONE_WRITE) if between else None
        answer = self.writer.ask("read", start=start, end=end, names=names, points=points, between=batch)
        what = "a read of [%r, %r] (names %s, points %s%s)" % (
            start, end, names, points, ", %d samples written meanwhile" % len(batch) if batch else "")
        self.check_answer(answer["columns"], self.kept, start, end, names, what)
        if points:
            self.check_downsampled(answer["columns"], answer["downsampled"], points, start, end, what)
        self.written_between(batch, answer)
        if points:
            self.check_bucketed(answer["bucketed"], start, end, names, points, what)

    def check_bucketed(self, got, start: float, end: float, names: list | None, points: int, what: str) -> None:
        """Buckets read from the summaries (``storage.buckets``), when the store gave them: whole
        buckets of ``k`` slots, aligned to their width, from the bucket ``start`` falls in to the
        one ``end`` falls in; each one's min and max those of the samples kept in it, its average
        between them and within rounding of their mean."""
        if got is None:
            event("bucketed: the values read instead")
            return
        event("bucketed")
        k = bucket_width(start, end, points)
        low, high = (slot_of(start) // k) * k, (slot_of(end) // k + 1) * k
        inside: dict[int, dict[str, list]] = {}
        for ts, flat in self.samples[self.kept.first:]:
            if low <= slot_of(ts) < high:
                numbers = inside.setdefault(slot_of(ts) // k, {})
                for name, value in flat.items():
                    if names is None or name in names:
                        numbers.setdefault(name, []).append(value)
        keys = sorted(inside)
        assert got["ts"] == [round(key * k * AGG_S, 3) for key in keys], (what, got["ts"][:3], keys[:3], k)
        assert len(got["ts"]) <= points and got["downsampled"] is True and got["interval"] == k * AGG_S, what
        wanted = set().union(*inside.values())
        assert set(got["series"]) == wanted, (what, sorted(got["series"]), sorted(wanted))
        for i, key in enumerate(keys):
            for name in wanted:
                point = (got["min"][name][i], got["series"][name][i], got["max"][name][i])
                numbers = inside[key].get(name)
                if numbers is None:
                    assert point == (None, None, None), (what, key, name, point)
                    continue
                reason = stats_mismatch(point, numbers)
                assert reason is None, "%s: %s in the bucket at %r: %s" % (what, name, got["ts"][i], reason)

    def written_between(self, batch: list | None, answer: dict) -> None:
        if batch:
            assert answer["between_written"] is not None, "the driver's write during a read did not happen"
            event("a read with a write between its blocks" if answer["between_written"] else "a read with a write")
            self.queued = batch
            self.confirm({})

    def check_everything(self) -> None:
        """The whole history, from before the oldest roll-up and from the oldest sample kept."""
        self.read(self.t0 - 10 ** 6, 1e12, None, None)
        self.read(self.first_full(self.kept) or self.t0, 1e12, None, None)

    def at(self, position, anchor: float) -> float:
        """A time from a drawn position: a fraction of the data's span, a sample's time, the
        oldest kept, the newest or later."""
        newest = self.samples[-1][0] if self.samples else self.t0
        if position == "oldest":
            return self.first_full(self.kept) or self.t0
        if position in ("newest", "after"):
            return newest if position == "newest" else newest + 1000
        if isinstance(position, int) and self.samples:
            return self.samples[position % len(self.samples)][0]
        return anchor + float(position) * (newest - self.t0 + 10)

    # --- the rules -----------------------------------------------------------------------------

    @initialize(retention=st.sampled_from(sorted(RETENTIONS)), offset=st.integers(0, 59),
                upgrade=st.one_of(st.none(), batches), first=batches)
    def start(self, retention: str, offset: int, upgrade: dict | None, first: dict) -> None:
        """Samples start at a minute's ``offset``-th second (and a half); sometimes in a folder
        of schema 4 to upgrade."""
        self.full_s, self.scale = RETENTIONS[retention]
        self.t0 = T0 + offset
        if upgrade is not None:
            self.upgrade(upgrade)
        self.start_writer()
        ready = self.writer.ready
        self.keep_samples, self.keep_buckets, self.longest_group = (
            ready["keep_samples"], ready["keep_buckets"], ready["longest_group"])
        self.write(first, then="queue")

    def upgrade(self, spec: dict) -> None:
        """A schema-4 folder of the batch's finite values (that dashboard's registry refused the
        others, and its history could not hold NaN)."""
        # Unscaled: at most 250 staged rows, so the first write (100 more at most) moves them all
        # in the 8 compactions a write may make, as ``settle`` assumes.
        scale, self.scale = self.scale, 1
        batch = [(ts, {k: v for k, v in flat.items() if math.isfinite(v)}) for ts, flat in self.make(spec)]
        batch = [(ts, flat) for ts, flat in batch if flat]
        self.scale = scale
        write_schema_4_folder(self.folder, batch)
        self.samples.extend(batch)

    def start_writer(self) -> None:
        self.writer = Writer(self.folder, self.full_s)
        self.writes_since_start = 0

    def teardown(self) -> None:
        if self.writer is not None and self.writer.proc.poll() is None:
            self.writer.kill()
        shutil.rmtree(self.folder, ignore_errors=True)

    @rule(spec=batches, then=st.sampled_from(["queue", "flush", "prune"]))
    def write(self, spec: dict, then: str) -> None:
        """Queue samples for the writer thread, as the sampler does: nothing is confirmed until
        a flush says every queued sample is written; ``then``: flush, or prune as the writer
        does after its writes."""
        batch = self.make(spec)
        for at in range(0, len(batch), MAX_QUEUED):
            part = batch[at:at + MAX_QUEUED]
            if len(self.queued) + len(part) > MAX_QUEUED:
                self.confirm(self.writer.ask("flush"))
            self.writer.ask("write", samples=part)
            self.queued.extend(part)
        self.writes_since_start += 1
        if then == "flush":
            self.confirm(self.writer.ask("flush"))
            self.check_everything()
        elif then == "prune":
            self.prune()

    @rule()
    def prune(self) -> None:
        """Retention, and the roll-ups of what it drops."""
        self.confirm(self.writer.ask("flush"))
        self.know_layout()
        self.confirm(self.writer.ask("prune"))
        self.kept = self.pruned(self.kept)
        self.check_everything()

    @precondition(lambda self: self.writes_since_start)
    @rule()
    def stop_and_start(self) -> None:
        """SIGTERM: every queued sample is written."""
        self.writer.terminate()
        self.confirm({})
        self.start_writer()
        self.check_everything()

    @precondition(lambda self: self.writes_since_start)
    @rule(during=st.one_of(st.none(), batches, st.just("prune")), delay_s=st.sampled_from([0, 0, 0.002, 0.01, 0.03]))
    def kill_and_start(self, during, delay_s: float) -> None:
        """SIGKILL, ``delay_s`` after sending ``during`` (samples: mid-write; "prune": mid-prune).
        Of the samples never confirmed, the oldest few may be on disk, the rest is gone; every
        confirmed one is there; a prune happened whole or not at all."""
        outcomes = [self.kept]
        if during == "prune" and self.ticks > self.keep_samples:
            self.confirm(self.writer.ask("flush"))
            self.know_layout()
            outcomes = [self.pruned(self.kept), self.kept]
            self.writer.send("prune")
        elif isinstance(during, dict):
            batch = self.make(during, MAX_QUEUED - len(self.queued))
            self.writer.send("write", samples=batch)
            self.queued.extend(batch)
        if delay_s:
            time.sleep(delay_s)  # only where the kill falls: every outcome is checked, none awaited
        self.writer.kill()
        self.start_writer()
        start, end = self.t0 - 10 ** 6, 1e12
        columns = self.writer.ask("read", start=start, end=end, names=None, points=None)["columns"]
        newest = columns["ts"][-1] if columns["ts"] else -math.inf
        unconfirmed, survived = len(self.queued), sum(1 for ts, _ in self.queued if ts <= newest)
        self.confirm({}, count=survived, written_here=False)
        failures = []
        for kept in outcomes:
            try:
                self.check_answer(columns, kept, start, end, None, "after SIGKILL and a start, everything")
            except AssertionError as failure:
                failures.append(failure)
            else:
                self.kept = kept
                if len(outcomes) > 1:
                    event("kill mid-prune: %s" % ("pruned" if kept is outcomes[0] else "not pruned"))
                elif unconfirmed:
                    event("kill mid-write: %s of the unconfirmed kept" % (
                        "none" if not survived else "all" if survived == unconfirmed else "some"))
                break
        else:
            raise failures[0]
        self.check_everything()

    @rule(start=positions, end=positions, names=names_asked, points=points_asked, between=now_and_then)
    def read_window(self, start, end, names, points, between) -> None:
        """A window anywhere in the samples' span (before the oldest kept: with roll-ups)."""
        begin = self.at(start, self.t0)
        self.read(begin, max(begin, self.at(end, self.t0)), names, points, between)

    @rule(back=st.floats(0, 900), end=positions, names=names_asked, points=points_asked, between=now_and_then)
    def read_long(self, back, end, names, points, between) -> None:
        """A window from before every roll-up kept."""
        self.read(self.t0 - ROLLUP_KEEP_S - back, self.at(end, self.t0), names, points, between)

    @rule(start=positions, end=positions, between=now_and_then)
    def export(self, start, end, between) -> None:
        """What the CSV and JSON exports read (``iter_history_rows``)."""
        self.confirm(self.writer.ask("flush"))
        begin = self.at(start, self.t0)
        finish = max(begin, self.at(end, self.t0))
        batch = self.make(between, MAX_ONE_WRITE) if between else None
        answer = self.writer.ask("rows", start=begin, end=finish, between=batch)
        self.check_export(answer["rows"], self.kept, begin, finish, "an export of [%r, %r]" % (begin, finish))
        self.written_between(batch, answer)


TestHistoryModel = HistoryModel.TestCase
TestHistoryModel.settings = settings(
    max_examples=EXAMPLES or 6, stateful_step_count=16, deadline=None, database=None,
    # Shrinking a failure starts the writer hundreds of times (two minutes): in the suite the
    # failing sequence is printed as found; SSE_MODEL_EXAMPLES=N shrinks it.
    phases=list(Phase) if EXAMPLES else [Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck))


# --- what the model found, each held here once fixed --------------------------------------------

MINUTE = T0 - 0.5


def test_an_upgraded_folder_rolls_up_each_sample_once(tmp_path):
    write_schema_4_folder(str(tmp_path), [(MINUTE + 0.5 + i, {"g": i}) for i in range(10)])
    store = storage.open_store(tmp_path, full_s=10, rollup_s=ROLLUP_S, interval_s=1.0)  # keeps 11 samples
    before = store.history_columns(MINUTE - 60, MINUTE + 1000)
    store.history.write([(MINUTE + 10.5 + i, {"g": 100}) for i in range(10)] +
                        [(MINUTE + 60.5 + i, {"g": 1}) for i in range(11)])
    store.prune()  # the first 20 go: the whole first minute, 0..9 and ten 100s
    after = store.history_columns(MINUTE - 60, MINUTE + 1000)
    store.close()
    # Before the fix ("rollup", 36.33...): the minute's schema-4 roll-up (avg 4.5 of 10) showed before
    # any sample was dropped, and was merged with the roll-up of all 20 (avg 52.25): 0..9 counted twice.
    assert (before["resolution"], after["series"]["g"][0]) == ("full", (45 + 1000) / 20), (before, after)


def test_a_minute_with_a_nan_keeps_min_avg_max_together(tmp_path):
    store = storage.open_store(tmp_path, full_s=10, rollup_s=ROLLUP_S, interval_s=1.0)
    store.history.write([(MINUTE + 0.5 + i, {"g": math.nan if i == 0 else float(i)}) for i in range(20)] +
                        [(MINUTE + 60.5 + i, {"g": 1.0}) for i in range(11)])
    store.prune()
    columns = store.history_columns(MINUTE - 60, MINUTE + 200)
    store.close()
    point = (columns["min"]["g"][0], columns["series"]["g"][0], columns["max"]["g"][0])
    assert None not in point or point == (None, None, None), point  # before the fix (None, 9e306, None)
    downsample(columns, 2, MINUTE - 60, MINUTE + 200)
