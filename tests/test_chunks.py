"""History compacted into chunks (#23): what was written reads back exactly, whatever was moved
into chunks, pruned or reopened; an upgraded folder's staged rows move into chunks as it goes on.
The model is a plain list of the samples written."""

from __future__ import annotations

import os
import sqlite3
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sse_dashboard import storage
from sse_dashboard.storage import codec
from sse_dashboard.storage.chunks import CHUNK_SAMPLES, JOIN_GROUPS, STAGED_MOST
from sse_dashboard.storage.database import PAGE_SIZE

NAMES = ["system.cpu_percent", "gauges.depth", "counters.jobs", 'gauges.q{k="v"}']
# What the registry lets through (metric_number): ints within 2**53, finite floats.
values = st.one_of(st.integers(-(2 ** 53), 2 ** 53), st.floats(allow_nan=False, allow_infinity=False),
                   st.floats(allow_nan=False, allow_infinity=False).map(lambda v: round(v, 3)))
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
