"""History answers cost what they show (#23, first part): ``names`` reads only those series,
``points`` bounds the points a series (longer windows come as buckets' averages with their min
and max), and both have caps that answer 400. Over the SQLite store and the in-memory one."""

from __future__ import annotations

import math
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sse_dashboard.application import MAX_HISTORY_NAMES, MAX_HISTORY_POINTS
from sse_dashboard.storage.memory import downsample


@pytest.fixture(params=["sqlite", "memory"])
def filled(request, make_server, tmp_path):
    """A server whose history holds 120 samples of a, b and c, a second apart, ending now."""
    import time

    running = make_server(data_dir=tmp_path if request.param == "sqlite" else None)
    store = running.server.store
    now = time.time()
    rows = [(now - 120 + i, {"gauges.a": float(i), "gauges.b": float(-i), "gauges.c": 7.0}) for i in range(120)]
    if request.param == "sqlite":
        store.history.write(rows)
    else:
        for ts, flat in rows:
            store.history.append(ts, flat)
    return running


def test_names_reads_only_those_series(filled):
    status, body = filled.json("GET", "/api/metrics/history?seconds=300&names=gauges.a,gauges.c")
    assert status == 200 and set(body["series"]) == {"gauges.a", "gauges.c"}
    assert body["series"]["gauges.a"][-120:] == [float(i) for i in range(120)]
    assert filled.json("GET", "/api/metrics/history?seconds=300&names=gauges.nothing")[1]["series"] == {}


def test_points_bounds_a_series_with_averages_min_and_max(filled):
    status, body = filled.json("GET", "/api/metrics/history?seconds=300&names=gauges.a&points=10")
    assert status == 200 and body["downsampled"] is True and len(body["ts"]) <= 10
    averages, lows, highs = body["series"]["gauges.a"], body["min"]["gauges.a"], body["max"]["gauges.a"]
    assert lows[-1] <= averages[-1] <= highs[-1] and highs[-1] == 119.0
    assert min(v for v in lows if v is not None) == 0.0
    full = filled.json("GET", "/api/metrics/history?seconds=300&points=1000")[1]
    assert "downsampled" not in full and len(full["ts"]) >= 120


@pytest.mark.parametrize("query", ["points=0", "points=%d" % (MAX_HISTORY_POINTS + 1), "points=x",
                                   "names=" + ",".join("s%d" % i for i in range(MAX_HISTORY_NAMES + 1))])
def test_past_the_caps_is_a_400_that_says_so(server, query):
    status, body = server.json("GET", "/api/metrics/history?" + query)
    assert status == 400 and ("points" in body["error"] or "names" in body["error"])


def test_the_mcp_history_of_one_metric_is_bounded_too(filled):
    import json

    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "get_history", "arguments": {"metric": "gauges.a", "seconds": 300, "points": 12}}}
    status, _, raw = filled.request("POST", "/mcp", json.dumps(call).encode(),
                                    {"Content-Type": "application/json", "Accept": "application/json"})
    answer = json.loads(raw)["result"]["structuredContent"]
    assert status == 200 and len(answer["values"]) <= 12 and answer["max"][-1] == 119.0


finite = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=int(os.environ.get("SSE_FUZZ_EXAMPLES") or 100), deadline=None)
@given(values=st.lists(st.one_of(st.none(), finite), min_size=1, max_size=200), points=st.integers(1, 50))
def test_downsampling_keeps_every_value_within_its_buckets_bounds(values, points):
    columns = {"ts": [1000.0 + i for i in range(len(values))], "series": {"s": values}}
    out = downsample(columns, points, 1000.0, 1000.0 + len(values))
    if len(values) <= points:
        assert out is columns  # no more points than asked for: as it is
        return
    assert len(out["ts"]) <= points and out["ts"] == sorted(out["ts"])
    kept = [v for v in values if v is not None]
    for average, low, high in zip(out["series"]["s"], out["min"]["s"], out["max"]["s"]):
        if average is None:
            assert low is None and high is None
            continue
        slack = 1e-9 * max(1.0, abs(low), abs(high))  # an average of n values, rounded n times
        assert math.isfinite(average) and low - slack <= average <= high + slack
    if kept:
        assert min(v for v in out["min"]["s"] if v is not None) == min(kept)
        assert max(v for v in out["max"]["s"] if v is not None) == max(kept)


def plain_downsample(columns, points, start, end):
    """The model: each value into its bucket, one at a time (what downsample did before its
    buckets became slices)."""
    width = max((end - start) / points, 1e-9)
    index = [min(points - 1, max(0, int((ts - start) // width))) for ts in columns["ts"]]
    used = sorted(set(index))
    out = {"ts": [round(start + b * width, 3) for b in used], "series": {}, "min": {}, "max": {}}
    for name, values in columns["series"].items():
        lows, highs = (columns.get("min") or {}).get(name, values), (columns.get("max") or {}).get(name, values)
        kept = {b: [] for b in used}
        for i, value in enumerate(values):
            if value is not None:
                kept[index[i]].append((value, lows[i], highs[i]))
        out["series"][name] = [math.fsum(v for v, _, _ in kept[b]) / len(kept[b]) if kept[b] else None for b in used]
        out["min"][name] = [min(lo for _, lo, _ in kept[b]) if kept[b] else None for b in used]
        out["max"][name] = [max(hi for _, _, hi in kept[b]) if kept[b] else None for b in used]
    return out


small = st.integers(-10 ** 6, 10 ** 6).map(lambda v: v / 8)


@settings(max_examples=int(os.environ.get("SSE_FUZZ_EXAMPLES") or 100), deadline=None)
@given(rows=st.lists(st.tuples(st.floats(0, 100), st.one_of(st.none(), small), st.one_of(st.none(), small)),
                     min_size=1, max_size=120),
       in_order=st.booleans(), rolled_up=st.booleans(), points=st.integers(1, 30))
def test_downsampling_gives_what_the_plain_model_gives(rows, in_order, rolled_up, points):
    if in_order:
        rows = sorted(rows, key=lambda row: row[0])
    columns = {"ts": [1000.0 + ts for ts, _, _ in rows], "series": {"a": [a for _, a, _ in rows],
                                                                    "b": [b for _, _, b in rows]}}
    if rolled_up:  # roll-ups carry their own min and max beside the average
        columns["min"] = {k: [None if v is None else v - 1 for v in vs] for k, vs in columns["series"].items()}
        columns["max"] = {k: [None if v is None else v + 2 for v in vs] for k, vs in columns["series"].items()}
    got, want = downsample(columns, points, 1000.0, 1100.0), plain_downsample(columns, points, 1000.0, 1100.0)
    if len(rows) <= points:
        return
    assert got["ts"] == want["ts"] and got["min"] == want["min"] and got["max"] == want["max"]
    for name in want["series"]:
        for g, w in zip(got["series"][name], want["series"][name]):
            assert (g is None) == (w is None) and (w is None or math.isclose(g, w, rel_tol=1e-9, abs_tol=1e-9))


def test_a_wide_read_over_http_comes_in_whole_aligned_buckets_from_the_summaries(make_server, tmp_path):
    """20 minutes of two 3-decimal walks at 100 points: buckets of two 10-second slots (20 s,
    aligned to 20 s: storage.buckets), each with its samples' own min and max, through the real
    server (before the summaries: 100 buckets of 12 s from the window's start)."""
    import random
    import time

    from sse_dashboard import storage

    now = time.time()
    rng = random.Random(23)
    levels, rows = [100.0, 5.0], []
    for i in range(1200):
        levels = [round(level + rng.uniform(-1, 1), 3) for level in levels]
        rows.append((now - 1200 + i, {"gauges.w0": levels[0], "gauges.w1": levels[1]}))
    store = storage.open_store(tmp_path, interval_s=1.0)  # written before the server samples
    for i in range(0, len(rows), 100):
        store.history.write(rows[i:i + 100])
    store.close()
    running = make_server(data_dir=tmp_path)
    status, body = running.json("GET", "/api/metrics/history?seconds=1200&points=100&names=gauges.w0,gauges.w1")
    assert status == 200 and body["downsampled"] is True and body["interval"] == 20.0
    assert 60 <= len(body["ts"]) <= 100 and all(ts % 20 == 0 for ts in body["ts"])
    for i, start in enumerate(body["ts"]):
        inside = [flat["gauges.w0"] for ts, flat in rows if start <= ts < start + 20]
        if inside:
            assert (body["min"]["gauges.w0"][i], body["max"]["gauges.w0"][i]) == (min(inside), max(inside))
            assert min(inside) <= body["series"]["gauges.w0"][i] <= max(inside)
            assert math.isclose(body["series"]["gauges.w0"][i], sum(inside) / len(inside), rel_tol=1e-9)
