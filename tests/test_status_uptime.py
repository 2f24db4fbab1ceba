"""Status pages' uptime (#26) against a plain model: a component's states at samples, on an
injected clock that crosses hour and day boundaries, and the fractions the page shows."""

from __future__ import annotations

import math

from hypothesis import given, settings, strategies as st

from sse_dashboard.alerting.uptime import DAY_S, HOUR_S, MAX_DAYS, UptimeLedger

MAX_GAP_S = 120.0
STATES = ["up", "down", "late", "unknown", "maintenance"]


def model_fractions(samples, now):
    """The plain model: every interval between two samples no further apart than the gap counts,
    whole, for the first sample's state (late counts as up); a window is [its start, now]."""
    intervals = [(t0, t1, s0) for (t0, s0), (t1, _) in zip(samples, samples[1:]) if 0 < t1 - t0 <= MAX_GAP_S]

    def fraction(start, end):
        up = down = 0.0
        for t0, t1, state in intervals:
            overlap = max(0.0, min(t1, end) - max(t0, start))
            if state in ("up", "late"):
                up += overlap
            elif state == "down":
                down += overlap
        return None if up + down <= 0 else up / (up + down)

    hour, day = math.floor(now / HOUR_S), math.floor(now / DAY_S)
    windows = {"24h": fraction((hour - 24) * HOUR_S, now)}
    for name, days in (("7d", 7), ("30d", 30), ("90d", 90)):
        windows[name] = fraction((day - days + 1) * DAY_S, now)
    bars = [fraction(d * DAY_S, (d + 1) * DAY_S) for d in range(day - MAX_DAYS + 1, day + 1)]
    return windows, bars


def close(a, b):
    return (a is None and b is None) or (a is not None and b is not None and abs(a - b) < 1e-5)


steps = st.lists(st.tuples(st.one_of(st.floats(0.5, 110), st.floats(110, 130), st.sampled_from([3600.0, DAY_S - 50.0])),
                           st.sampled_from(STATES)), min_size=1, max_size=120)


@settings(max_examples=150, deadline=None)
@given(start_offset=st.floats(0, 900), steps=steps, day=st.integers(20_000, 21_000))
def test_uptime_and_daily_bars_match_the_model_across_day_boundaries(start_offset, steps, day):
    ledger = UptimeLedger(max_gap_s=MAX_GAP_S)
    ts = day * DAY_S - start_offset  # a little before midnight UTC: the first steps cross it
    samples = []
    for dt, state in steps:
        ledger.observe(ts, state)
        samples.append((ts, state))
        ts += dt
    now = samples[-1][0]
    windows, bars = model_fractions(samples, now)
    got = ledger.uptime(now)
    assert all(close(got[name], windows[name]) for name in windows), (got, windows)
    got_bars = ledger.bars(now)
    assert len(got_bars) == MAX_DAYS and all(close(a, b) for a, b in zip(got_bars, bars)), (got_bars[-3:], bars[-3:])
    # What is kept comes back the same after a restart.
    again = UptimeLedger.from_state(ledger.state(), max_gap_s=MAX_GAP_S)
    assert all(close(again.uptime(now)[name], got[name]) for name in got)


def test_a_day_down_and_a_day_up_show_as_two_bars_and_half_over_seven_days():
    ledger = UptimeLedger(max_gap_s=MAX_GAP_S)
    start = 20_500 * DAY_S
    for i in range(0, 2 * DAY_S + 1, 60):
        ledger.observe(start + i, "down" if i < DAY_S else "up")
    now = start + 2 * DAY_S
    bars = ledger.bars(now)
    assert bars[-3:] == [0.0, 1.0, None]  # the day it was down, the day it was up, today (nothing yet)
    assert ledger.uptime(now)["7d"] == 0.5
    assert ledger.uptime(now)["24h"] == 1.0


def test_the_buckets_are_bounded_to_ninety_days():
    ledger = UptimeLedger(max_gap_s=DAY_S)
    start = 20_000 * DAY_S
    for day in range(200):
        ledger.observe(start + day * DAY_S, "up")
    assert len(ledger.days) <= MAX_DAYS and len(ledger.hours) <= 25


def test_all_lists_exactly_the_public_names():
    from conftest import check_public_names
    from sse_dashboard.alerting import status, uptime
    from sse_dashboard.web import statuspage
    from sse_dashboard.web.handlers import status as status_handlers

    for module in (status, uptime, statuspage, status_handlers):
        check_public_names(module)
