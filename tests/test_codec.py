"""The chunk codec (#23): whatever list of None, int and float goes in comes back exactly:
the same types, every float's bit pattern (NaN payloads, -0.0, ±inf, subnormals), ints of any
size. Hypothesis writes the lists; the examples pin down which method each shape gets.

Budget: 200 examples per property; ``SSE_FUZZ_EXAMPLES=N`` runs N."""

from __future__ import annotations

import os
import random
import struct

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sse_dashboard.storage import codec

EXAMPLES = int(os.environ.get("SSE_FUZZ_EXAMPLES") or 200)
EDGE_INTS = [0, 1, -1, 2 ** 53, 2 ** 53 + 1, -(2 ** 53) - 1, 2 ** 63 - 1, -2 ** 63, 2 ** 63, -2 ** 63 - 1, 2 ** 64,
             10 ** 30, -10 ** 400]
EDGE_FLOATS = [0.0, -0.0, float("inf"), float("-inf"), float("nan"), 5e-324, -5e-324, 2.2250738585072014e-308,
               1.7976931348623157e308, 0.1, 1e-6, 9.2e18, 2.0 ** 63, -2.0 ** 63,
               struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000001))[0],   # a signalling NaN
               struct.unpack("<d", struct.pack("<Q", 0xFFF8DEADBEEF0001))[0]]   # a negative NaN, a payload

values = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True),
    st.integers(),
    st.sampled_from(EDGE_INTS),
    st.sampled_from(EDGE_FLOATS),
    st.integers(-10 ** 9, 10 ** 9).map(lambda m: m / 1000),   # the scaled method's home ground
)


def same(a, b) -> bool:
    """Equal as stored: the same type, and for floats the same 64 bits."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    return a == b


def assert_round_trip(items, methods=None):
    data = codec.encode(items, methods)
    back = codec.decode(data)
    assert len(back) == len(items)
    bad = [(i, a, b) for i, (a, b) in enumerate(zip(items, back)) if not same(a, b)]
    assert not bad, (codec.method_of(data), bad[:5])
    return data


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.lists(values, max_size=80))
@example([])
@example([None])
@example([-0.0])
@example([2 ** 53 + 1, -2 ** 63, 2 ** 64])
@example([0.5, 2 ** 62])            # k=1 puts the int past int64: held apart
@example([1.5, -0.0, 2.5])          # -0.0 has no scaled form: the chunk goes XOR
def test_every_list_round_trips_exactly(items):
    assert_round_trip(items)


@settings(max_examples=EXAMPLES // 2, deadline=None)
@given(st.lists(values, max_size=40))
@example([0.125, 3, None])
def test_the_scale_encode_reports_is_the_one_every_float_has(items):
    """``encode_with_scale``: the bytes ``encode`` writes, and a scale ``k`` with every float
    ``m / 10**k`` exactly (the chunk summaries sum decimals as those ``m``), or None."""
    data, k = codec.encode_with_scale(items)
    assert data == codec.encode(items)
    assert (k is None) == (codec.method_of(data).split("+")[0] in ("xor", "raw"))
    if k is not None:
        assert all(round(v * 10 ** k) / 10 ** k == v for v in items if isinstance(v, float))


@settings(max_examples=EXAMPLES // 2, deadline=None)
@given(st.lists(values, max_size=40), st.sampled_from(sorted(codec.METHODS)))
def test_every_method_round_trips_what_it_accepts(items, method):
    try:
        assert_round_trip(items, methods=(method,))
    except ValueError:
        assert method in (codec.DELTA, codec.DOD, codec.PACKED)  # only the scaled methods may decline


@settings(max_examples=EXAMPLES // 2, deadline=None)
@given(st.lists(st.one_of(st.integers(-2 ** 63, 2 ** 63 - 1), st.integers(-1000, 1000), st.sampled_from(EDGE_INTS)),
                min_size=1, max_size=60), st.sampled_from([1, 6, 9]))
def test_a_list_of_ints_is_made_in_c_as_the_same_bytes(items, level):
    """``encode_with_scale``'s path for a list of ints only (counters, a group's summaries)
    writes exactly what the general path writes, at every DEFLATE level."""
    kinds = codec._kinds_of(items)
    for method in (codec.PACKED, codec.DELTA):
        made = codec._scaled_body(method, items, kinds)
        if made is not None:
            break
    if made is None:
        general = min(codec._framings(codec.XOR, codec._body(codec.XOR, items, kinds), level), key=len), None
    else:
        general = min(codec._framings(method, made[0], level), key=len), made[1]
    assert codec.encode_with_scale(items, level) == general
    assert codec.decode(general[0]) == items


def test_a_bool_comes_back_as_an_int_and_other_types_are_refused():
    assert codec.decode(codec.encode([True, False])) == [1, 0]
    assert type(codec.decode(codec.encode([True]))[0]) is int
    for bad in ("1", b"1", 1j, [1]):
        with pytest.raises(TypeError):
            codec.encode([1, bad])


def method(items) -> str:
    return codec.method_of(assert_round_trip(items))


def test_each_shape_gets_its_method_and_costs_what_the_issue_asks():
    rng = random.Random(23)
    constant = [42] * 60
    counter = []
    total = 10 ** 6
    for _ in range(60):
        total += rng.randint(0, 5)
        counter.append(total)
    ramp = list(range(1000, 1000 + 60 * 7, 7))
    walk, x = [], 0
    for _ in range(60):
        x += rng.randint(-500, 500)
        walk.append(x / 1000)
    noisy = [rng.random() * 100 for _ in range(60)]
    assert method(constant) == "scaled-delta-packed+deflate"
    assert len(codec.encode(constant)) < 60 * 0.25          # well under a byte a sample
    assert method(counter) == "scaled-delta-packed+deflate"
    assert len(codec.encode(counter)) <= 60 * 1.5           # a byte or two
    assert method(ramp).startswith("scaled-delta")             # a steady rate: one delta repeated
    assert len(codec.encode(ramp)) < 60 * 0.25
    assert method(walk).startswith("scaled-delta")
    assert method(noisy).startswith("xor")               # full precision: no decimal scale
    assert len(codec.encode([None] * 60)) <= 5                # a series absent for the chunk


def test_each_method_reads_its_own_bytes():
    items = [None, 1, 2.5, None, 3, 2 ** 70, -0.0, float("nan")]
    for m in sorted(codec.METHODS):
        if m in (codec.DELTA, codec.DOD, codec.PACKED):
            data = assert_round_trip([1, 2.5, None, 2 ** 70, 7.125], methods=(m,))
        else:
            data = assert_round_trip(items, methods=(m,))
        assert data[0] & ~codec.DEFLATED == m


def test_the_first_byte_names_the_method_and_an_unknown_one_is_refused():
    assert codec.encode([]) [0] in codec.METHODS           # two bytes: method, n=0
    assert codec.encode([5] * 60)[0] & codec.DEFLATED
    with pytest.raises(ValueError, match="unknown chunk method"):
        codec.decode(b"\x7f\x00")
    with pytest.raises(ValueError):
        codec.decode(b"")


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.binary(max_size=64))
@example(b"\x02\xff\xff\xff\xff\x0f")       # a count of 2**32 values: refused, not allocated
@example(b"\x03\x02\x0a\x00")               # two ints, a scale, no stream
def test_bytes_it_did_not_write_are_a_value_error_never_a_crash(data):
    try:
        out = codec.decode(data)
    except ValueError:
        return
    assert isinstance(out, list)


def test_timestamps_are_integer_milliseconds_and_cost_a_byte_or_so_a_tick():
    rng = random.Random(5)
    ts = [1_700_000_000_000 + 1000 * i + rng.randint(-3, 3) for i in range(60)]
    data = codec.encode_timestamps(ts)
    assert codec.decode_timestamps(data) == ts
    assert len(data) < 2 * 60     # +-3 ms of jitter: one byte each; shared by every series
    assert len(codec.encode_timestamps(list(range(0, 60000, 1000)))) <= 12
    with pytest.raises(TypeError):
        codec.encode_timestamps([1.5])
