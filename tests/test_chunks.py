"""History compacted into chunks (#23): what was written reads back exactly, whatever was moved
into chunks, pruned or reopened; an upgraded folder's staged rows move into chunks as it goes on.
The model is a plain list of the samples written."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import struct
from unittest import mock
from fractions import Fraction

from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from sse_dashboard import storage
from sse_dashboard.sampler import encode_json
from sse_dashboard.storage import codec, summaries
from sse_dashboard.storage.buckets import bucket_width
from sse_dashboard.storage.chunks import CHUNK_SAMPLES, JOIN_GROUPS, STAGED_MOST
from sse_dashboard.storage.database import PAGE_SIZE
from sse_dashboard.storage.summaries import AGG_S, decode_group, encode_group, encode_summary, runs_of, slot_of

NAMES = ["system.cpu_percent", "gauges.depth", "counters.jobs", 'gauges.q{k="v"}']
# What the registry lets through (metric_number): ints within 2**53, finite floats.
values = st.one_of(st.integers(-(2 ** 53), 2 ** 53), st.floats(allow_nan=False, allow_infinity=False),
                   st.floats(allow_nan=False, allow_infinity=False).map(lambda v: round(v, 3)),
                   st.integers(-10 ** 7, 10 ** 7).map(lambda v: v / 1000))  # a gauge's few decimals
samples = st.lists(st.dictionaries(st.sampled_from(NAMES), values, min_size=1, max_size=4),
                   min_size=2 * CHUNK_SAMPLES + 1, max_size=5 * CHUNK_SAMPLES)  # enough to chunk


def same(a, b) -> bool:
    """Equal, with floats compared by bit pattern (-0.0 is not 0.0) and ints staying ints."""
    if isinstance(a, float) and isinstance(b, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    return type(a) is type(b) and a == b


def rows_equal(got, want) -> bool:
    return len(got) == len(want) and all(
        ts == wts and flat.keys() == wflat.keys() and all(same(flat[k], wflat[k]) for k in flat)
        for (ts, flat), (wts, wflat) in zip(got, want))


@settings(max_examples=int(os.environ.get("SSE_MODEL_EXAMPLES") or 15), deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(written=samples, batch=st.integers(1, 50), reopen_at=st.integers(0, 5 * CHUNK_SAMPLES),
       window=st.tuples(st.integers(0, 300), st.integers(0, 300)), names=st.sets(st.sampled_from(NAMES)))
def test_what_was_written_reads_back_exactly_through_chunks_and_a_restart(tmp_path_factory, written, batch,
                                                                          reopen_at, window, names):
    folder = tmp_path_factory.mktemp("chunks")
    store = storage.open_store(folder, full_s=10 ** 6, interval_s=1.0)
    model = [(1000.0 + i, flat) for i, flat in enumerate(written)]
    try:
        for i in range(0, len(model), batch):
            if i <= reopen_at < i + batch:
                store.close()  # a stop and a start between two writes
                store = storage.open_store(folder, full_s=10 ** 6, interval_s=1.0)
            store.history.write(model[i:i + batch])
        staged = store.database.query("SELECT COUNT(*) FROM staged", ())[0][0]
        assert staged <= STAGED_MOST  # the rest went into chunks
        assert store.database.query("SELECT COUNT(*) FROM chunks", ())[0][0] > 0
        got = list(store.history._full_rows(0, 10 ** 7))
        assert rows_equal(got, model)
        lo, hi = 1000.0 + min(window), 1000.0 + max(window)
        narrowed = [(ts, {k: v for k, v in flat.items() if k in names}) for ts, flat in model if lo <= ts <= hi]
        only = store.history._ids_of(sorted(names))
        got = list(store.history._full_rows(lo, hi, only))
        assert rows_equal(got, [row for row in narrowed if row[1]])
    finally:
        store.close()


def test_retention_counts_samples_written_and_drops_whole_chunks(tmp_path):
    store = storage.open_store(tmp_path, full_s=200.0, interval_s=1.0)
    store.history.write([(1000.0 + i, {"g": i}) for i in range(600)])
    store.history.prune()
    got = list(store.history._full_rows(0, 10 ** 7))
    kept = [ts for ts, _ in got]
    assert kept[-1] == 1599.0 and 201 <= len(kept) <= 201 + CHUNK_SAMPLES  # the newest 201, and the rest of a chunk
    assert [flat["g"] for _, flat in got] == [int(ts) - 1000 for ts in kept]
    store.close()


def test_a_constant_series_costs_well_under_a_byte_a_sample_once_chunked(tmp_path):
    store = storage.open_store(tmp_path, full_s=10 ** 6, interval_s=1.0)
    for i in range(20):
        store.history.write([(1_700_000_000.0 + 60 * i + j, {"c%d" % k: 7 for k in range(50)}) for j in range(60)])
    ((values,),) = store.database.query("SELECT SUM(LENGTH(vals)) FROM chunks", ())
    ((times, n, longest),) = store.database.query("SELECT SUM(LENGTH(ts)), SUM(n), MAX(n) FROM groups", ())
    assert n >= 1200 - 2 * CHUNK_SAMPLES and longest == JOIN_GROUPS * CHUNK_SAMPLES  # minutes joined as they age
    assert (values + times) / (50 * n) < 0.15, (values, times, n)  # 0.5 when each series kept its own times
    store.close()


def test_a_series_deleted_while_its_samples_move_leaves_nothing_behind(tmp_path):
    store = storage.open_store(tmp_path, full_s=10 ** 6, interval_s=1.0)
    store.history.write([(1000.0 + i, {"a": i, "b": -i}) for i in range(2 * CHUNK_SAMPLES)])
    with store.database.write_lock:
        store.database.conn.execute("BEGIN")
        store.history.forget("a")
        store.database.conn.execute("COMMIT")
    store.history.reload_series()
    store.history.write([(2000.0 + i, {"a": i}) for i in range(CHUNK_SAMPLES)])  # "a" again: a new id
    got = list(store.history._full_rows(0, 10 ** 7))
    assert got == ([(1000.0 + i, {"b": -i}) for i in range(2 * CHUNK_SAMPLES)]
                   + [(2000.0 + i, {"a": i}) for i in range(CHUNK_SAMPLES)])
    (ids,) = store.database.query("SELECT COUNT(DISTINCT series) FROM chunks", ())
    assert ids == (1,)  # the deleted "a"'s values did not move into chunks
    store.close()


def test_a_version_4_folder_with_staged_samples_upgrades_and_moves_them_into_chunks(tmp_path):
    conn = sqlite3.connect(str(tmp_path / storage.DB_FILENAME))
    for script in storage.MIGRATIONS[:4]:
        conn.executescript(script)
    conn.executescript("CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (4);"
                       "INSERT INTO meta VALUES ('epoch', 'abc'); INSERT INTO series (id, name) VALUES (1, 'g');")
    for i in range(500):  # what today's main keeps: a row a sample, a row a value
        conn.execute("INSERT INTO samples (id, ts) VALUES (?, ?)", (i + 1, 1000.0 + i))
        conn.execute("INSERT INTO points VALUES (?, 1, ?)", (i + 1, i * 0.5))
    conn.commit()
    conn.close()
    store = storage.open_store(tmp_path, full_s=10 ** 6, interval_s=1.0)
    for i in range(500, 520):
        store.history.write([(1000.0 + i, {"g": i * 0.5})])
    assert store.database.query("SELECT COUNT(*) FROM staged", ())[0][0] <= STAGED_MOST
    got = list(store.history._full_rows(0, 10 ** 7))
    assert [(ts, flat["g"]) for ts, flat in got] == [(1000.0 + i, i * 0.5) for i in range(520)]
    store.close()


def test_a_version_5_folder_upgrades_its_staged_rows_and_chunks_in_place(tmp_path):
    """Schema 5 (this issue's first step) kept a row a staged value and a chunk row a series with
    its own timestamps; schema 6 packs the first and groups the second."""
    conn = sqlite3.connect(str(tmp_path / storage.DB_FILENAME))
    for script in storage.MIGRATIONS[:5]:
        conn.executescript(script)
    conn.executescript("CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (5);"
                       "INSERT INTO meta VALUES ('epoch', 'abc'); INSERT INTO series (id, name) VALUES (1, 'g'), (2, 'h');")
    times = [1000.0 + i for i in range(60)]
    conn.execute("INSERT INTO chunks VALUES (1, 1000.0, 1059.0, 60, 60, ?, ?)",
                 (codec.encode(times), codec.encode([i * 0.5 for i in range(60)])))
    conn.execute("INSERT INTO chunks VALUES (2, 1030.0, 1059.0, 60, 30, ?, ?)",  # "h" only in the second half
                 (codec.encode(times[30:]), codec.encode(list(range(30)))))
    for i in range(60, 130):
        conn.execute("INSERT INTO samples (id, ts) VALUES (?, ?)", (i + 1, 1000.0 + i))
        conn.execute("INSERT INTO points VALUES (?, 1, ?)", (i + 1, i * 0.5))
    conn.commit()
    conn.close()
    store = storage.open_store(tmp_path, full_s=10 ** 6, interval_s=1.0)
    want = [(1000.0 + i, {"g": i * 0.5, **({"h": i - 30} if 30 <= i < 60 else {})}) for i in range(130)]
    assert rows_equal(list(store.history._full_rows(0, 10 ** 7)), want)
    store.history.write([(1130.0, {"g": 65.0})])  # and it goes on from there
    assert rows_equal(list(store.history._full_rows(0, 10 ** 7)), want + [(1130.0, {"g": 65.0})])
    assert store.database.query("SELECT name FROM sqlite_master WHERE name IN ('points', 'samples', 'chunks_v5')",
                                ()) == []
    store.close()


def file_bytes(folder) -> int:
    """The database file and its WAL after a checkpoint, less its free pages (as the bench)."""
    conn = sqlite3.connect(str(folder / storage.DB_FILENAME))
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = sum(f.stat().st_size for f in folder.glob(storage.DB_FILENAME + "*") if not f.name.endswith("-shm"))
        return size - conn.execute("PRAGMA freelist_count").fetchone()[0] * conn.execute("PRAGMA page_size").fetchone()[0]
    finally:
        conn.close()


def test_an_empty_store_costs_little_on_disk_and_a_few_series_little_a_sample(tmp_path):
    """An empty store's schema and tables are a fixed cost: at 4 KiB pages ~100 KiB, most of what
    26 system series cost an hour (bench/RESULTS-history-size.md)."""
    storage.open_store(tmp_path / "empty", full_s=10 ** 6, interval_s=1.0).close()
    assert file_bytes(tmp_path / "empty") <= 32 * 1024
    store = storage.open_store(tmp_path / "few", full_s=10 ** 6, interval_s=1.0)
    rows = [(1000.0 + t, {"g%d" % i: (t * (i + 1)) // 7 for i in range(30)}) for t in range(1200)]
    for k in range(0, len(rows), 10):
        store.history.write(rows[k:k + 10])
    store.close()
    assert file_bytes(tmp_path / "few") / (30 * 1200) < 1.5  # 30 counters for 20 minutes, whole file (was 2.9)


def test_a_folder_with_4_kib_pages_keeps_them_and_keeps_working(tmp_path):
    """The page size is fixed when a file is made: a folder of before keeps its own, untouched."""
    conn = sqlite3.connect(str(tmp_path / storage.DB_FILENAME))
    conn.execute("PRAGMA page_size = 4096")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    store = storage.open_store(tmp_path, full_s=10 ** 6, interval_s=1.0)
    store.history.write([(1000.0 + i, {"g": i}) for i in range(3 * CHUNK_SAMPLES)])
    store.close()
    store = storage.open_store(tmp_path, full_s=10 ** 6, interval_s=1.0)
    assert [flat["g"] for _, flat in store.history._full_rows(0, 10 ** 7)] == list(range(3 * CHUNK_SAMPLES))
    assert store.database.query("PRAGMA page_size", ()) == [(4096,)] != [(PAGE_SIZE,)]
    store.close()


# --- buckets from the summaries (storage.summaries, storage.buckets) ---------------------------

def model_buckets(model: list, start: float, end: float, points: int, names) -> tuple[list, dict]:
    """The buckets a bucketed read must give: of ``k`` slots, aligned, from the one ``start`` falls
    in to the one ``end`` falls in: ``(keys, {key: {name: values}})``."""
    k = bucket_width(start, end, points)
    low, high = (slot_of(start) // k) * k, (slot_of(end) // k + 1) * k
    inside: dict = {}
    for ts, flat in model:
        if low <= slot_of(ts) < high:
            numbers = inside.setdefault(slot_of(ts) // k, {})
            for name, value in flat.items():
                if names is None or name in names:
                    numbers.setdefault(name, []).append(value)
    return sorted(inside), inside


def check_buckets(got: dict, model: list, start: float, end: float, points: int, names) -> None:
    keys, inside = model_buckets(model, start, end, points, names)
    k = bucket_width(start, end, points)
    assert got["ts"] == [round(key * k * AGG_S, 3) for key in keys]
    assert len(got["ts"]) <= points and got["interval"] == k * AGG_S and got["downsampled"] is True
    wanted = set().union(*inside.values())
    assert set(got["series"]) == wanted
    for i, key in enumerate(keys):
        for name in wanted:
            lo, avg, hi = got["min"][name][i], got["series"][name][i], got["max"][name][i]
            numbers = inside[key].get(name)
            if numbers is None:
                assert (lo, avg, hi) == (None, None, None)
                continue
            assert lo == min(numbers) and hi == max(numbers), (name, key, lo, hi, numbers)
            exact = float(sum(Fraction(v) for v in numbers) / len(numbers))
            assert lo <= avg <= hi and abs(avg - exact) <= 1e-9 * max(abs(v) for v in numbers) + 1e-300, (
                name, key, avg, exact)


def assert_same_json(encoded: bytes, answer: dict) -> None:
    """The answer written straight from the stored integers (``100241e-3``) reads back, with
    any JSON reader, as the very numbers of the answer, of the same types."""
    def same(a, b, where):
        assert type(a) is type(b), (where, a, b)
        if isinstance(a, dict):
            assert list(a) == list(b), where
            for key in a:
                same(a[key], b[key], where + (key,))
        elif isinstance(a, list):
            assert len(a) == len(b), where
            for i, (x, y) in enumerate(zip(a, b)):
                same(x, y, where + (i,))
        else:
            assert a == b, (where, a, b)
    same(json.loads(encoded), json.loads(encode_json(answer)), ())


gaps = st.lists(st.sampled_from([1.0, 1.0, 1.0, 0.5, 2.0, 9.7, 31.0]), min_size=1, max_size=8)
with_gaps = st.lists(st.dictionaries(st.sampled_from(NAMES), values, min_size=0, max_size=4),
                     min_size=2 * CHUNK_SAMPLES + 1, max_size=12 * CHUNK_SAMPLES)


@settings(max_examples=int(os.environ.get("SSE_MODEL_EXAMPLES") or 15), deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(written=with_gaps, steps=gaps, batch=st.integers(1, 100), window=st.tuples(st.floats(0, 1), st.floats(0, 1)),
       points=st.one_of(st.integers(2, 30), st.integers(31, 200)), names=st.one_of(st.none(), st.lists(st.sampled_from(NAMES), max_size=3)))
def test_buckets_from_summaries_are_the_samples_own(tmp_path_factory, written, steps, batch, window, points, names):
    """Whatever was written (gaps in time and in series, ints, decimals, full-precision floats),
    a bucketed read is the samples' own min, max and mean, bucket by bucket, or None."""
    ts, model = 1000.25, []
    for i, flat in enumerate(written):
        ts += steps[i % len(steps)]
        if flat:
            model.append((ts, flat))
    assume(model)
    store = storage.open_store(tmp_path_factory.mktemp("buckets"), full_s=10 ** 7, interval_s=1.0)
    try:
        for i in range(0, len(model), batch):
            store.history.write(model[i:i + batch])
        first, last = model[0][0], model[-1][0]
        start, end = sorted(first - 5 + (last - first + 10) * w for w in window)
        got = store.history.buckets(start, end, names or None, points)
        event("bucketed" if got is not None else "the values read instead")
        if got is not None:
            check_buckets(got, model, start, end, points, names or None)
            assert_same_json(store.history.buckets_json(start, end, names or None, points), got)
    finally:
        store.close()


def walk(series: int, samples: int) -> list:
    rng = random.Random(series)
    level, out = 100.0, []
    for _ in range(samples):
        level = round(level + rng.uniform(-1, 1), 3)
        out.append(level)
    return out


def test_an_hour_read_in_600_points_comes_from_the_summaries(tmp_path):
    """An hour of 3-decimal random walks at 600 points: 10-second buckets (360 of them), the
    groups of 600 samples summarised (not every value decoded), each bucket the samples' own."""
    walks = [walk(i, 3600) for i in range(3)]
    model = [(1_700_000_000.5 + t, {"gauges.w%d" % i: walks[i][t] for i in range(3)}) for t in range(3600)]
    store = storage.open_store(tmp_path, full_s=10 ** 7, interval_s=1.0)
    for i in range(0, len(model), 60):
        store.history.write(model[i:i + 60])
    start, end = model[-1][0] - 3600, model[-1][0]
    got = store.history.buckets(start, end, None, 600)
    assert got is not None and len(got["ts"]) == 360 and got["interval"] == 10.0  # (the 361st bucket is empty)
    check_buckets(got, model, start, end, 600, None)
    encoded = store.history.buckets_json(start, end, None, 600)
    assert_same_json(encoded, got)
    assert b"e-4," in encoded and b"e-3," in encoded  # means of 10 and the values, as decimals
    summarised = [name for n, name in kept_summaries(store) if n == 600]
    assert len(summarised) == 5 * 3  # five joined groups of three series
    store.close()


def test_a_read_of_a_few_series_reads_their_values_and_answers_the_same(tmp_path, monkeypatch):
    """A read of under a quarter of the series decodes their values, not whole groups'
    summaries (``buckets.FEW_OF``); its answer is what the read of every series says of them."""
    from sse_dashboard.storage import buckets as reading

    walks = [walk(i, 1500) for i in range(9)]
    model = [(1_700_000_000.5 + t, {"gauges.w%d" % i: walks[i][t] for i in range(9)}) for t in range(1500)]
    store = storage.open_store(tmp_path, full_s=10 ** 7, interval_s=1.0)
    for i in range(0, len(model), 60):
        store.history.write(model[i:i + 60])
    start, end = model[0][0], model[-1][0]
    every = store.history.buckets(start, end, None, 100)
    decoded = []
    monkeypatch.setattr(reading, "decode_group", lambda *args: decoded.append(args) or {})
    for names in (["gauges.w4"], ["gauges.w1", "gauges.w7"]):
        few = store.history.buckets(start, end, names, 100)
        assert few == dict(every, **{key: {name: every[key][name] for name in names} for key in ("series", "min", "max")})
        check_buckets(few, model, start, end, 100, names)
    assert not decoded  # (the values were read: no group's summaries decoded)
    store.close()


def test_the_groups_waiting_for_their_join_carry_summaries_whatever_their_size(tmp_path):
    """The newest groups of 60 of decimals (in every read of recent history) keep their summaries
    even where one costs more than half the chunk (3-decimal walks: most of them), so a read
    decodes no values for them; integers (a constant) keep the half rule, and so does a joined
    group (a walk's group of 600 keeps its summary because it pays, as before)."""
    walks = [walk(i, 1200) for i in range(5)]
    model = [(1_700_000_000.5 + t, dict({"gauges.w%d" % i: walks[i][t] for i in range(5)}, **{"gauges.c": 7}))
             for t in range(1200)]
    store = storage.open_store(tmp_path, full_s=10 ** 7, interval_s=1.0)
    for i in range(0, len(model), 60):
        store.history.write(model[i:i + 60])
    has = set(kept_summaries(store, with_upto=True))
    kept = [(n, name, int((upto, n, name) in has)) for upto, n, name in store.database.query(
        "SELECT g.upto, g.n, s.name FROM chunks c JOIN groups g USING (upto) JOIN series s ON s.id = c.series "
        "ORDER BY g.upto, s.name", ())]
    small = [(name, has) for n, name, has in kept if n == CHUNK_SAMPLES]
    assert small and all(has for name, has in small if name != "gauges.c"), kept
    assert not any(has for name, has in small if name == "gauges.c"), kept
    joined = [(name, has) for n, name, has in kept if n == JOIN_GROUPS * CHUNK_SAMPLES]
    assert ("gauges.c", 0) in joined and ("gauges.w0", 1) in joined, kept
    start, end = model[-1][0] - 900, model[-1][0]
    got = store.history.buckets(start, end, None, 100)
    assert got is not None
    check_buckets(got, model, start, end, 100, None)
    store.close()


def test_a_bucket_mean_a_rounding_puts_outside_its_min_and_max_is_held_within(tmp_path):
    """Three samples of 0.1 a slot: their sum over their count is 0.0999... (0.3 / 3) or
    0.1000...2, outside the bucket's min and max; the answer says 0.1 (``buckets._means``),
    with every bucket full, and with empty buckets at the ends (another series goes on)."""
    assert 0.3 / 3 < 0.1 < (0.1 + 0.1 + 0.1) / 3  # (why this data: the quotient misses either way)
    for first, past in ((0, 240), (30, 200)):
        model = [(1_700_000_000 + i * 10 / 3, {"gauges.on": 1, **({"gauges.tenth": 0.1} if first <= i < past else {})})
                 for i in range(240)]
        store = storage.open_store(tmp_path / str(first), full_s=10 ** 7, interval_s=1.0)
        for i in range(0, len(model), 30):
            store.history.write(model[i:i + 30])
        start, end = model[0][0], model[-1][0]
        got = store.history.buckets(start, end, None, 100)
        assert got is not None and got["interval"] == 10.0
        tenths = got["series"]["gauges.tenth"]
        assert set(tenths) - {None} == {0.1} and (tenths[0] is None) is (tenths[-1] is None) is (first > 0), tenths
        check_buckets(got, model, start, end, 100, None)
        store.close()


def test_a_schema_7_folder_gets_its_chunks_summarised_in_place(tmp_path):
    """A folder of today's main (schema 7: groups and chunks without summaries) upgrades in
    place: every chunk that a summary pays for gets one, and bucketed reads see them."""
    conn = sqlite3.connect(str(tmp_path / storage.DB_FILENAME))
    for script in storage.MIGRATIONS[:7]:
        conn.executescript(script)
    conn.executescript("CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (7);"
                       "INSERT INTO meta VALUES ('epoch', 'abc'); INSERT INTO series (id, name) VALUES (1, 'g'), (2, 'h');")
    values = walk(1, 600)
    times = [1_700_000_000.5 + i for i in range(600)]
    conn.execute("INSERT INTO groups VALUES (600, ?, ?, 600, ?)", (times[0], times[-1], codec.encode(times)))
    conn.execute("INSERT INTO chunks VALUES (600, 1, ?)", (codec.encode(values),))
    conn.execute("INSERT INTO chunks VALUES (600, 2, ?)", (codec.encode([7] * 600),))  # a summary would not pay
    conn.commit()
    conn.close()
    store = storage.open_store(tmp_path, full_s=10 ** 7, interval_s=1.0)
    assert kept_summaries(store) == [(600, "g")]  # (schema 8 summarised the chunk, 9 moved it to its group)
    model = [(ts, {"g": v, "h": 7}) for ts, v in zip(times, values)]
    got = store.history.buckets(times[0], times[-1], None, 30)
    assert got is not None
    check_buckets(got, model, times[0], times[-1], 30, None)
    store.close()


def test_a_schema_8_folder_gets_its_chunk_summaries_moved_to_their_groups(tmp_path):
    """A folder of the main before (schema 8: a summary a chunk, format 1) upgrades in place:
    each group gets its chunks' summaries as one (format 2), in the stored integers, the chunks
    keep none, and bucketed reads, in numbers and in JSON, are the samples' own."""
    conn = sqlite3.connect(str(tmp_path / storage.DB_FILENAME))
    for script in storage.MIGRATIONS[:8]:
        conn.executescript(script)
    conn.executescript("CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (8);"
                       "INSERT INTO meta VALUES ('epoch', 'abc');"
                       "INSERT INTO series (id, name) VALUES (1, 'g'), (2, 'h'), (3, 'i'), (4, 'j');")
    times = [1_700_000_000.5 + i for i in range(1200)]
    columns = {1: walk(1, 1200), 2: [7] * 1200, 3: [i // 3 for i in range(1200)],  # a walk, a constant, a counter
               4: [None if i % 7 == 0 else round(i * 0.25, 2) for i in range(1200)]}  # decimals with gaps
    for first in (0, 600):
        part = times[first:first + 600]
        runs = runs_of(part)
        conn.execute("INSERT INTO groups VALUES (?, ?, ?, 600, ?)", (first + 600, part[0], part[-1], codec.encode(part)))
        for series, values in columns.items():
            values = values[first:first + 600]
            vals, scale = codec.encode_with_scale(values)
            conn.execute("INSERT INTO chunks VALUES (?, ?, ?, ?)",
                         (first + 600, series, vals, encode_summary(values, runs, len(vals), scale, True)))
    conn.commit()
    before = dict(conn.execute("SELECT upto * 10 + series, summary IS NOT NULL FROM chunks"))
    conn.close()
    assert before[6001] and before[6004] and not before[6002]  # (what format 1 kept)
    store = storage.open_store(tmp_path, full_s=10 ** 7, interval_s=1.0)
    try:
        assert store.database.query("SELECT COUNT(*) FROM chunks WHERE summary IS NOT NULL", ()) == [(0,)]
        assert sorted(kept_summaries(store, with_upto=True)) == sorted(
            (upto // 10, 600, name) for upto, name in ((6001, "g"), (6004, "j"), (12001, "g"), (12004, "j")))
        model = [(ts, {name: columns[i][t] for i, name in enumerate("ghij", 1) if columns[i][t] is not None})
                 for t, ts in enumerate(times)]
        for points in (30, 120):
            got = store.history.buckets(times[0], times[-1], None, points)
            assert got is not None
            check_buckets(got, model, times[0], times[-1], points, None)
            assert_same_json(store.history.buckets_json(times[0], times[-1], None, points), got)
    finally:
        store.close()


def kept_summaries(store, with_upto: bool = False) -> list:
    """``(group size, series name)`` (with the group's ``upto`` first) of every summary the
    groups keep."""
    names = dict(store.database.query("SELECT id, name FROM series", ()))
    out = []
    for upto, n, ts, data in store.database.query("SELECT upto, n, ts, summaries FROM groups ORDER BY upto", ()):
        if data is not None:
            for series in sorted(decode_group(data, runs_of(codec.decode(ts)))):
                out.append((upto, n, names[series]) if with_upto else (n, names[series]))
    return out


@settings(max_examples=int(os.environ.get("SSE_MODEL_EXAMPLES") or 30), deadline=None)
@given(data=st.data(), runs=st.integers(1, 12), series=st.integers(1, 6))
def test_a_groups_summaries_come_back_as_written(data, runs, series):
    """``encode_group`` and ``decode_group``: any ints (beyond int64 too), None in an empty run,
    counts stored or taken from the runs, frames of any size, any slice of the runs, any series
    wanted."""
    lengths = data.draw(st.lists(st.integers(1, 20), min_size=runs, max_size=runs))
    bounds = [0]
    for n in lengths:
        bounds.append(bounds[-1] + n)
    group_runs = [(i, bounds[i], bounds[i + 1]) for i in range(runs)]
    big = st.one_of(st.integers(-10 ** 6, 10 ** 6), st.integers(-(2 ** 70), 2 ** 70))
    written = {}
    for sid in data.draw(st.lists(st.integers(1, 10 ** 6), min_size=series, max_size=series, unique=True)):
        counted = data.draw(st.booleans())
        counts = [data.draw(st.integers(0, n)) for n in lengths] if counted else list(lengths)
        mins, maxes, sums = ([None if c == 0 else data.draw(big) for c in counts] for _ in range(3))
        written[sid] = (data.draw(st.integers(0, 6)), data.draw(st.booleans()), counts, mins, maxes, sums)
    frame = data.draw(st.sampled_from([3, 7, 64, summaries.FRAME_VALUES]))  # (frames split anywhere)
    with mock.patch.object(summaries, "FRAME_VALUES", frame):
        encoded = encode_group(written.items(), group_runs)
    first = data.draw(st.integers(0, runs - 1))
    past = data.draw(st.integers(first + 1, runs))
    wanted = data.draw(st.one_of(st.none(), st.sets(st.sampled_from(sorted(written)))))
    got = decode_group(encoded, group_runs, wanted, first, past)
    assert set(got) == set(written if wanted is None else wanted)
    for sid, (k, floats, *lists) in got.items():
        assert (k, floats) == written[sid][:2]
        assert lists == [column[first:past] for column in written[sid][2:]]


class CountingLock:
    """The storage lock, counting the rows each hold changes (what a POST waiting for it waits on)."""

    def __init__(self, database) -> None:
        import threading

        self._lock, self._database, self.most = threading.Lock(), database, 0

    def __enter__(self):
        self._lock.acquire()
        self._before = self._database.conn.total_changes

    def __exit__(self, *exc) -> None:
        try:
            self.most = max(self.most, self._database.conn.total_changes - self._before)
        except sqlite3.ProgrammingError:  # the hold that closed the connection
            pass
        self._lock.release()


def test_a_join_holds_the_storage_lock_for_one_group_of_deletes_not_all(tmp_path):
    """Joining ten groups of 60 into one: the swap deletes the rows of one group and inserts the
    joined one; the other nine groups' chunks go after it, a group at a time (at 10,000 series
    deleting them all under the lock held it for most of a second: RESULTS-history-write.md)."""
    series = 40
    store = storage.open_store(tmp_path, full_s=10 ** 7, interval_s=1.0)
    counting = store.database.write_lock = CountingLock(store.database)
    for t in range((JOIN_GROUPS + 1) * CHUNK_SAMPLES + 1):
        store.history.write([(1000.0 + t, {"g%d" % i: t * i for i in range(series)})])
    assert store.database.query("SELECT MAX(n) FROM groups", ()) == [(JOIN_GROUPS * CHUNK_SAMPLES,)]  # joined
    assert counting.most <= 3 * series, counting.most  # was 11 groups' worth: 10 deleted, 1 inserted
    assert store.database.query("SELECT COUNT(*) FROM chunks WHERE upto NOT IN (SELECT upto FROM groups)", ()) == [(0,)]
    rows = list(store.history._full_rows(0, 10 ** 7))
    assert [flat["g3"] for _, flat in rows] == [t * 3 for t in range(len(rows))]
    store.close()


def test_the_json_answer_lists_series_in_the_order_of_the_numbers_answer(tmp_path):
    """Series come in name order in both answers, names that JSON escapes too (``"`` sorts
    before ``#``, its escape ``\\"`` after)."""
    model = [(1_700_000_000.5 + t, {'gauges.a"': t * 0.5, "gauges.a#": t}) for t in range(300)]
    store = storage.open_store(tmp_path, full_s=10 ** 7, interval_s=1.0)
    store.history.write(model)
    start, end = model[0][0], model[-1][0]
    got = store.history.buckets(start, end, None, 20)
    assert got is not None and list(got["series"]) == ['gauges.a"', "gauges.a#"]
    assert_same_json(store.history.buckets_json(start, end, None, 20), got)
    store.close()
