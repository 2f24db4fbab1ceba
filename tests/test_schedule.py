"""Job schedules (#24): the cron evaluator held to two implementations someone else wrote.

- ``cronsim`` (what Healthchecks itself runs) is the reference: random expressions from the
  grammar, random zones (with DST, with Lord Howe's 30-minute DST, without) and starting points
  spread over 2000-2040 or near a DST change; the next runs must be cronsim's. The one documented
  exception (module docstring): on Lord Howe's change days cronsim skips real matches of
  wildcard jobs, and there the expected runs are cronsim's plus those matches (what Debian cron
  runs), found by walking the day's matching local times (cronsim with no zone) and keeping the
  real moments of each.
- ``croniter`` must agree too, on the syntax both read alike and away from DST changes; at a DST
  change it repeats fixed-time jobs in a fall-back hour and runs a wildcard job's skipped hour at
  the end of the gap, and there cronsim decides.
- ``parse`` refuses exactly what Healthchecks refuses (cronsim's parser, then one run after
  2000-01-01), on grammar-made and mutated expressions.

Budget: 200 examples per property; ``SSE_FUZZ_EXAMPLES=N`` runs N. The peers are the ``[test]``
extra; without them these tests skip, and fail in CI (``CI=true``).
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import os
import sys
import zoneinfo
from datetime import datetime, time, timedelta, timezone

import pytest
from hypothesis import event, example, given, note, settings
from hypothesis import strategies as st

from conftest import check_public_names, require_tool, required
from sse_dashboard.alerting import schedule as schedule_module
from sse_dashboard.alerting.schedule import Schedule

EXAMPLES = int(os.environ.get("SSE_FUZZ_EXAMPLES") or 200)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None)
RUNS = 6                                   # next runs compared per example

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]
HALF_HOUR_DST = {"Australia/Lord_Howe"}    # of ZONES, the one whose DST change is not a whole hour
YEAR_2000 = datetime(2000, 1, 1, tzinfo=timezone.utc).timestamp()
YEAR_2040 = datetime(2040, 1, 1, tzinfo=timezone.utc).timestamp()

MONTHS = "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split()
WEEKDAYS = "SUN MON TUE WED THU FRI SAT".split()
RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]


def local(tz: str, *fields, fold: int = 0) -> float:
    return datetime(*fields, tzinfo=zoneinfo.ZoneInfo(tz), fold=fold).timestamp()


# -- the grammar --------------------------------------------------------------------------------

def spelled(index: int, number: int, use_name: bool, lower: bool) -> str:
    """A value as a number, or (months, weekdays) as a name in either case."""
    if not use_name or index not in (3, 4) or (index == 4 and number == 7):
        return str(number)
    name = MONTHS[number - 1] if index == 3 else WEEKDAYS[number]
    return name.lower() if lower else name


def value(index: int, highest: int):
    return st.builds(functools.partial(spelled, index), st.integers(RANGES[index][0], highest),
                     st.booleans(), st.booleans())


def span(index: int, highest: int, distinct: bool):
    """``a-b`` with a <= b (a < b when ``distinct``: croniter reads ``5-5`` differently)."""
    lowest = RANGES[index][0]

    def text(a, length, names):
        b = min(a + length, highest)
        return "%s-%s" % (spelled(index, a, names, False), spelled(index, b, names, True))

    top = highest - 1 if distinct else highest
    return st.builds(text, st.integers(lowest, top), st.integers(1 if distinct else 0, highest - lowest),
                     st.booleans())


def term(index: int, full: bool = True):
    """One list item other than ``*``. ``full``: everything cronsim reads (``a/n``, ``L``,
    ``LW``, ``5L``, ``5#2``, 7 as Sunday); otherwise what croniter reads the same way."""
    highest = 6 if index == 4 and not full else RANGES[index][1]
    options = [
        value(index, highest),
        span(index, highest, distinct=not full),
        st.integers(1, highest + 1).map("*/{}".format),
        st.builds("{}/{}".format, span(index, highest, distinct=not full), st.integers(1, 12)),
    ]
    if full:
        options.append(st.builds("{}/{}".format, value(index, highest), st.integers(1, 12)))
        if index == 2:
            options.append(st.sampled_from(["L", "LW"]))
        if index == 4:
            options.append(st.builds("{}L".format, st.integers(0, 7)))
            options.append(st.builds("{}#{}".format, st.integers(0, 7), st.integers(1, 5)))
    return st.one_of(options)


def field_text(index: int, full: bool = True):
    """A field: ``*``, one item, or a list of 2-3. The day fields are ``*`` more often, so that
    DST change days (Sundays in spring and autumn) come up."""
    several = st.lists(term(index, full), min_size=2, max_size=3).map(",".join)
    if not full and index == 4:
        several = several.filter(lambda t: "#" not in t)   # croniter: no # in a list
    stars = [st.just("*")] * (3 if index >= 2 else 1)
    return st.one_of(*stars, term(index, full), term(index, full), several)


@functools.lru_cache(maxsize=None)
def field_tuples(full: bool = True):
    return st.tuples(*(field_text(i, full) for i in range(5)))


def expressions(full: bool = True):
    return field_tuples(full).map(" ".join)


@functools.lru_cache(maxsize=None)
def dst_changes(tz: str) -> tuple:
    """The zone's offset changes in 2000-2040 (unix times, to the second)."""
    zone = zoneinfo.ZoneInfo(tz)

    def offset(ts):
        return datetime.fromtimestamp(ts, zone).utcoffset()

    changes, week = [], 7 * 86400
    for start in range(int(YEAR_2000), int(YEAR_2040), week):
        if offset(start) != offset(start + week):
            low, high = start, start + week
            while high - low > 1:
                middle = (low + high) // 2
                low, high = (middle, high) if offset(middle) == offset(low) else (low, middle)
            changes.append(high)
    return tuple(changes)


SHIFTS = st.one_of(st.sampled_from([0, -1, 1, -60, 60, -1800, 1800, -3600, 3600, 5400]),
                   st.integers(-180, 180).map(lambda minutes: minutes * 60),
                   st.integers(-3 * 3600, 3 * 3600),
                   st.floats(-2 * 86400, 2 * 86400))


def whole_microseconds(ts: float) -> float:
    """``ts`` as the references see it: they take a datetime, which keeps microseconds, so a start
    0.2 us before a minute would be the minute itself to them and not to us."""
    return datetime.fromtimestamp(ts, timezone.utc).timestamp()


@st.composite
def cases(draw, full: bool = True):
    """(expression, zone, start). The start is anywhere in 2000-2040, or near one of the zone's
    DST changes (on it, a second either side, within the hours around it, within two days);
    then, half the time, the expression is aimed at the change: its hours (the gap or the
    repeated hour and either side), its day, and minutes that meet a 30-minute change."""
    tz = draw(st.sampled_from(ZONES))
    fields = list(draw(field_tuples(full)))
    changes = dst_changes(tz)
    if not changes or draw(st.integers(0, 2)) == 0:
        return " ".join(fields), tz, whole_microseconds(draw(st.floats(YEAR_2000, YEAR_2040)))
    change = draw(st.sampled_from(changes))
    if draw(st.booleans()):
        zone = zoneinfo.ZoneInfo(tz)
        before, after = datetime.fromtimestamp(change - 1, zone), datetime.fromtimestamp(change, zone)
        low, high = max(min(before.hour, after.hour) - 1, 0), min(max(before.hour, after.hour) + 1, 23)
        fields[0] = draw(st.sampled_from([fields[0], "*", "*/15", "0", "30", "45"]))
        fields[1] = draw(st.sampled_from(["*", str(before.hour), str(after.hour), "%d-%d" % (low, high),
                                          "%d,%d,%d" % (low, before.hour, high), "*/2", "1/2" if full else "*/3"]))
        fields[2] = draw(st.sampled_from(["*", str(after.day)]))
        fields[3] = draw(st.sampled_from(["*", str(after.month)]))
        fields[4] = draw(st.sampled_from(["*", str((after.weekday() + 1) % 7)]))
    return " ".join(fields), tz, whole_microseconds(change + draw(SHIFTS))


# -- the references -----------------------------------------------------------------------------

def cronsim():
    """cronsim 2.9 or later: the version whose semantics we match. It needs Python 3.11; on older
    Pythons pip installs 2.7 (Healthchecks' pin), which reads ``1-1/5`` as ``1/5`` and refuses
    ``0 0 30 2 MON``, so there these tests skip, in CI too (as the mcp SDK's tests do on 3.9)."""
    if sys.version_info < (3, 11):
        pytest.skip("cronsim 2.9, the version we match, needs Python 3.11")
    module = required("cronsim")
    version = tuple(int(p) for p in importlib.metadata.version("cronsim").split(".")[:2])
    require_tool(version >= (2, 9), "cronsim>=2.9 (pip install -e .[test])")
    return module


def parses(expr: str, tz: str = "UTC") -> bool:
    try:
        Schedule.parse(expr, tz)
    except ValueError:
        return False
    return True


def healthchecks_accepts(expr: str) -> bool:
    """Healthchecks' own check (hc/front/validators.py ``CronValidator``): 5 fields, cronsim
    parses it and finds a run after 2000-01-01."""
    reference = cronsim()
    if len(expr.split()) != 5:
        return False
    try:
        next(reference.CronSim(expr, datetime(2000, 1, 1)))
    except (reference.CronSimError, StopIteration):
        return False
    return True


def our_runs(expr: str, tz: str, ts: float, count: int = RUNS) -> list:
    schedule, runs = Schedule.parse(expr, tz), []
    for _ in range(count):
        ts = schedule.next_after(ts)
        runs.append(ts)
    return runs


def cronsim_runs(expr: str, tz: str, ts: float, count: int = RUNS) -> list:
    CronSim = cronsim().CronSim
    runs = []
    for when in CronSim(expr, datetime.fromtimestamp(ts, zoneinfo.ZoneInfo(tz))):
        # cronsim forgets which pass of a repeated hour it started in: from the second pass it can
        # answer a run of the first, which is already past.
        if when.timestamp() > ts:
            runs.append(when.timestamp())
            if len(runs) == count:
                return runs
    return runs


def real_moments(wall: datetime, zone) -> list:
    """The unix times whose local time in ``zone`` is ``wall``: none in a gap, two in a repeat."""
    found = []
    for fold in (0, 1):
        ts = wall.replace(tzinfo=zone, fold=fold).timestamp()
        if datetime.fromtimestamp(ts, zone).replace(tzinfo=None) == wall and ts not in found:
            found.append(ts)
    return found


def expected_runs(expr: str, tz: str, ts: float, count: int = RUNS) -> list:
    """cronsim's runs, plus (Lord Howe, wildcard jobs) the real matches cronsim skips on a DST
    change day or the day after, found by walking those days' matching wall times (cronsim
    without a zone: no DST) and keeping each one's real moments."""
    runs = cronsim_runs(expr, tz, ts, count)
    minute, hour = expr.upper().split()[:2]
    if tz not in HALF_HOUR_DST or not (minute.startswith("*") or hour.startswith("*")):
        return runs
    CronSim = cronsim().CronSim
    zone = zoneinfo.ZoneInfo(tz)
    first, last = datetime.fromtimestamp(ts, zone).date(), datetime.fromtimestamp(runs[-1], zone).date()
    found = set(runs)
    for change in dst_changes(tz):
        changed = datetime.fromtimestamp(change, zone).date()
        for day in (changed, changed + timedelta(days=1)):
            if first <= day <= last:
                for wall in CronSim(expr, datetime.combine(day, time()) - timedelta(seconds=1)):
                    if wall.date() != day:
                        break
                    found.update(t for t in real_moments(wall, zone) if t > ts)
    extended = sorted(found)[:count]
    if extended != runs:
        event("Lord Howe: a real match cronsim skips")
    return extended


def croniter_runs(expr: str, tz: str, ts: float, count: int = RUNS) -> list:
    croniter = required("croniter").croniter
    # implement_cron_bug: a day field starting with "*" makes the day fields AND, as in Debian
    # cron and cronsim; without it croniter ORs them ("*/2" and "MON" is every other day OR Monday).
    runs, it = [], croniter(expr, datetime.fromtimestamp(ts, zoneinfo.ZoneInfo(tz)), implement_cron_bug=True)
    while len(runs) < count:
        at = it.get_next(float)
        if at > ts:
            runs.append(at)
    return runs


def shown(runs: list, tz: str) -> list:
    return [datetime.fromtimestamp(t, zoneinfo.ZoneInfo(tz)).isoformat() for t in runs]


# -- the properties -----------------------------------------------------------------------------

@FUZZ
@given(cases())
@example(("30 2 * * *", "Europe/Berlin", local("Europe/Berlin", 2024, 3, 31, 1, 0)))            # a gap
@example(("30 1 * * *", "America/New_York", local("America/New_York", 2024, 11, 3, 1, 15, fold=1)))  # 2nd pass
@example(("0 * * * *", "America/New_York", local("America/New_York", 2024, 11, 3, 0, 45)))
@example(("30 * * * *", "Australia/Lord_Howe", local("Australia/Lord_Howe", 2024, 10, 6, 0, 30)))
@example(("0 0 * 2 MON#5", "UTC", YEAR_2000))
def test_next_runs_match_cronsim(case):
    expr, tz, ts = case
    note("%s in %s from %s" % (expr, tz, shown([ts], tz)[0]))
    if not parses(expr, tz):
        assert not healthchecks_accepts(expr), "%r: Healthchecks accepts it, we refuse it" % expr
        return
    ours, theirs = our_runs(expr, tz, ts), expected_runs(expr, tz, ts)
    if any(ts <= change <= ours[-1] for change in dst_changes(tz)):
        event("the runs cross a DST change")
    assert ours == theirs, "ours %s\ncronsim %s" % (shown(ours, tz), shown(theirs, tz))


@FUZZ
@given(cases(full=False))
def test_next_runs_match_croniter_away_from_dst_changes(case):
    expr, tz, ts = case
    note("%s in %s from %s" % (expr, tz, shown([ts], tz)[0]))
    if not parses(expr, tz):
        return
    ours, theirs = our_runs(expr, tz, ts), croniter_runs(expr, tz, ts)
    if ours == theirs:
        return
    # croniter's known DST differences (a fixed-time job again in the repeated hour; a wildcard
    # job's skipped hour run when the gap ends): only at a DST change, and there cronsim decides.
    lo, hi = ts - 86400, max(ours[-1], theirs[-1]) + 86400
    assert any(lo <= change <= hi for change in dst_changes(tz)), (
        "croniter differs away from a DST change:\nours %s\ncroniter %s" % (shown(ours, tz), shown(theirs, tz)))
    event("croniter differs at a DST change")
    if sys.version_info >= (3, 11):                 # where the cronsim we match installs
        assert ours == expected_runs(expr, tz, ts)


def mutated(expr: str, position: int, junk: str, delete: bool) -> str:
    position %= len(expr) + 1
    return expr[:position] + expr[position + 1:] if delete else expr[:position] + junk + expr[position:]


@FUZZ
@given(expressions(), st.integers(0, 60), st.sampled_from(list("0123456789*/-,LW#") + ["JAN", "SUN", "60", "32", ""]),
       st.booleans(), st.booleans())
@example("0 0 30 2 *", 0, "", False, False)
@example("0 0 */31 * 1#5", 0, "", False, False)           # parses in cronsim, never runs
@example("* * * * 7#01", 0, "", False, False)             # cronsim reads "01" as 1
def test_parse_refuses_exactly_what_healthchecks_refuses(expr, position, junk, delete, mutate):
    if mutate:
        expr = mutated(expr, position, junk, delete)
    assert parses(expr) == healthchecks_accepts(expr), expr


# -- examples a person can read -----------------------------------------------------------------

def test_a_fixed_time_in_a_spring_forward_gap_runs_when_the_gap_ends_once():
    berlin = "Europe/Berlin"          # 2024-03-31 02:00 CET -> 03:00 CEST
    runs = our_runs("30 2,3 * * *", berlin, local(berlin, 2024, 3, 31, 0, 0), 3)
    assert shown(runs, berlin) == ["2024-03-31T03:00:00+02:00", "2024-03-31T03:30:00+02:00",
                                   "2024-04-01T02:30:00+02:00"]


def test_a_fixed_time_in_a_repeated_hour_runs_once_and_not_again_from_the_second_pass():
    ny = "America/New_York"           # 2024-11-03 02:00 EDT -> 01:00 EST
    schedule = Schedule.parse("30 1 * * *", ny)
    assert shown([schedule.next_after(local(ny, 2024, 11, 3, 0, 0))], ny) == ["2024-11-03T01:30:00-04:00"]
    second_pass = local(ny, 2024, 11, 3, 1, 15, fold=1)
    assert shown([schedule.next_after(second_pass)], ny) == ["2024-11-04T01:30:00-05:00"]


def test_a_wildcard_job_runs_at_every_real_match_twice_in_a_repeated_hour_never_in_a_gap():
    ny = "America/New_York"
    hourly = our_runs("0 * * * *", ny, local(ny, 2024, 11, 3, 0, 30), 3)
    assert shown(hourly, ny) == ["2024-11-03T01:00:00-04:00", "2024-11-03T01:00:00-05:00",
                                 "2024-11-03T02:00:00-05:00"]
    # 2024-03-10 has no 02:xx in New York: a job for hour 2 with a wildcard minute skips the day.
    assert shown(our_runs("*/30 2 * * *", ny, local(ny, 2024, 3, 10, 0, 0), 1), ny) == ["2024-03-11T02:00:00-04:00"]


def test_wildcard_jobs_run_when_debian_cron_runs_them_where_cronsim_skips_odd_dst_changes():
    """Intentional difference from cronsim (module docstring): its wall-minute jumps overshoot a
    DST change that is not a whole hour on the wall clock; Debian cron runs the job at every
    real local time that matches."""
    lh = "Australia/Lord_Howe"        # 2024-10-06 02:00 +10:30 -> 02:30 +11:00
    start = local(lh, 2024, 10, 6, 0, 30)
    assert shown(our_runs("30 * * * *", lh, start, 3), lh) == [
        "2024-10-06T01:30:00+10:30", "2024-10-06T02:30:00+11:00", "2024-10-06T03:30:00+11:00"]
    assert shown(our_runs("* 5 * * *", lh, start, 1), lh) == ["2024-10-06T05:00:00+11:00"]
    # Chatham's clock jumps from 02:45 to 03:45 (2031-09-28): 04:00 is real (cronsim: 08:00).
    chatham = "Pacific/Chatham"
    assert shown(our_runs("* */4 * * *", chatham, local(chatham, 2031, 9, 28, 3, 45), 1), chatham) == [
        "2031-09-28T04:00:00+13:45"]
    assert shown(cronsim_runs("30 * * * *", lh, start, 3), lh)[1] == "2024-10-06T03:30:00+11:00"
    assert shown(cronsim_runs("* 5 * * *", lh, start, 1), lh) == ["2024-10-06T05:30:00+11:00"]


def test_day_fields_or_when_both_are_restricted_and_when_one_starts_with_a_star():
    start = datetime(2024, 1, 1, tzinfo=timezone.utc).timestamp()   # a Monday
    either = our_runs("0 0 13 * FRI", "UTC", start, 3)               # the 13th or any Friday
    assert shown(either, "UTC") == ["2024-01-05T00:00:00+00:00", "2024-01-12T00:00:00+00:00",
                                    "2024-01-13T00:00:00+00:00"]
    both = our_runs("0 0 */2 * FRI", "UTC", start, 2)                # odd days that are Fridays
    assert shown(both, "UTC") == ["2024-01-05T00:00:00+00:00", "2024-01-19T00:00:00+00:00"]


def test_last_days_nth_weekdays_names_and_sunday_as_7():
    start = datetime(2024, 1, 1, tzinfo=timezone.utc).timestamp()
    assert shown(our_runs("0 4 L * *", "UTC", start, 2), "UTC") == ["2024-01-31T04:00:00+00:00",
                                                                    "2024-02-29T04:00:00+00:00"]
    assert shown(our_runs("0 4 LW 3 *", "UTC", start, 1), "UTC") == ["2024-03-29T04:00:00+00:00"]
    assert shown(our_runs("0 0 * * fri#2", "UTC", start, 1), "UTC") == ["2024-01-12T00:00:00+00:00"]
    assert shown(our_runs("0 0 * * 5L", "UTC", start, 1), "UTC") == ["2024-01-26T00:00:00+00:00"]
    assert our_runs("0 0 * jan 7", "UTC", start, 4) == our_runs("0 0 * 1 SUN", "UTC", start, 4)


def test_periods():
    hourly = Schedule.parse("3600")
    assert (hourly.kind, hourly.period_s) == ("period", 3600.0)
    assert hourly.next_after(1000.5) == 4600.5
    assert Schedule.parse(90).to_dict() == {"kind": "period", "period_s": 90}
    assert Schedule.parse("2.5").to_dict() == {"kind": "period", "period_s": 2.5}
    assert Schedule.parse(" 86400 ").describe() == "every 1 d"
    assert Schedule.parse(5400).describe() == "every 90 min"
    assert Schedule.parse(3600) == Schedule.parse("3600")


@pytest.mark.parametrize("text, message", [
    ("0", "period must be 1 to 31622400 seconds"),
    (10 ** 9, "period must be 1 to 31622400 seconds"),
    (float("nan"), "period must be"),
    (True, "a period in seconds"),
    ("", "a period in seconds"),
    ("daily", "a period in seconds"),
    ("-5", "a period in seconds"),
    ("@daily x", "needs 5 fields"),
    ("* * * *", "needs 5 fields (minute hour day-of-month month day-of-week), got 4"),
    ("0 * * * * *", "got 6"),
    ("60 * * * *", 'bad minute field "60": 60 is not in 0-59'),
    ("0 24 * * *", 'bad hour field "24": 24 is not in 0-23'),
    ("0 0 0 * *", 'bad day-of-month field "0": 0 is not in 1-31'),
    ("0 0 * 13 *", 'bad month field "13"'),
    ("0 0 * foo *", 'bad month field "foo": expected a number 1-12 or a name JAN-DEC'),
    ("0 0 * * 1-fry", "expected a number 0-7 or a name SUN-SAT"),
    ("x * * * *", 'bad minute field "x": expected a number 0-59'),
    ("0 0 * * 8", 'bad day-of-week field "8": 8 is not in 0-7'),
    ("*/0 * * * *", "the step after / must be a whole number of at least 1"),
    ("5-1 * * * *", "the range 5-1 goes backwards"),
    ("0 0 * * MON#6", "the number after # must be 1-5"),
    ("0 0 * * FRIL", "use a weekday number before L"),
    ("1,,2 * * * *", 'bad minute field "1,,2": empty value; expected a number 0-59'),
    ("0 0 30 2 *", 'never runs: no date has day-of-month 30, month 2 and day-of-week *'),
    ("0 0 31 4,6,9,11 *", "never runs"),
    ("0 0 */31 * 1#5", "never runs"),
    ("0 " * 150, "longer than 200 characters"),
])
def test_bad_schedules_say_what_is_wrong(text, message):
    with pytest.raises(ValueError) as caught:
        Schedule.parse(text)
    assert message in str(caught.value)
    assert len(str(caught.value)) < 200


def test_an_impossible_day_of_month_is_fine_when_the_weekday_can_match():
    """With both day fields restricted either may match: 30 February never comes, Mondays do."""
    start = datetime(2024, 2, 1, tzinfo=timezone.utc).timestamp()
    assert shown(our_runs("0 0 30 2 MON", "UTC", start, 1), "UTC") == ["2024-02-05T00:00:00+00:00"]


def test_to_dict_describe_and_kind_of_a_cron_schedule():
    nightly = Schedule.parse("30  2 * *   mon-fri", "Europe/Berlin")
    assert nightly.kind == "cron" and nightly.period_s is None
    assert nightly.to_dict() == {"kind": "cron", "cron": "30 2 * * mon-fri", "tz": "Europe/Berlin",
                                 "tz_used": "Europe/Berlin"}
    assert nightly.describe() == 'cron "30 2 * * mon-fri" in Europe/Berlin'
    assert nightly == Schedule.parse("30 2 * * mon-fri", "Europe/Berlin")
    assert nightly != Schedule.parse("30 2 * * mon-fri", "UTC")


def test_time_zones_by_name_and_fixed_offset():
    start = datetime(2024, 5, 31, 12, tzinfo=timezone.utc).timestamp()
    two_am = datetime(2024, 6, 1, 2, 0, tzinfo=timezone.utc).timestamp()
    for tz, hours in (("+02:00", 2), ("UTC+2", 2), ("+0200", 2), ("-05:30", -5.5), ("UTC", 0), ("Asia/Kolkata", 5.5)):
        assert Schedule.parse("0 2 * * *", tz).next_after(start) == two_am - hours * 3600, tz
    for bad in ("Mars/Olympus", "Europe", "../etc/passwd", "+15:00", "", "x" * 100):
        with pytest.raises(ValueError, match="time zone"):
            Schedule.parse("0 2 * * *", bad)


@pytest.fixture
def no_tz_database(monkeypatch):
    """As on Windows without the tzdata package: every zone lookup fails, even valid names."""
    def missing(name):
        raise zoneinfo.ZoneInfoNotFoundError("No time zone found with key %s" % name)

    monkeypatch.setattr(schedule_module, "_load_zone", missing)
    # A fresh "said once" so this test sees the warning whatever ran before it.
    monkeypatch.setattr(schedule_module, "_warn_no_database",
                        functools.lru_cache(maxsize=1)(schedule_module._warn_no_database.__wrapped__))


def test_without_a_tz_database_named_zones_fall_back_to_utc_with_one_warning(no_tz_database, caplog):
    caplog.set_level(logging.WARNING, logger=schedule_module.__name__)
    berlin = Schedule.parse("0 2 * * *", "Europe/Berlin")
    Schedule.parse("0 3 * * *", "America/New_York")
    Schedule.parse("0 3 * * *", "Mars/Olympus")          # can't tell a typo without a database
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "tzdata" in warnings[0].getMessage()
    assert berlin.to_dict()["tz_used"] == "UTC" and berlin.to_dict()["tz"] == "Europe/Berlin"
    assert "no time-zone database" in berlin.describe()
    start = datetime(2024, 6, 1, tzinfo=timezone.utc).timestamp()
    assert berlin.next_after(start) == datetime(2024, 6, 1, 2, tzinfo=timezone.utc).timestamp()
    # UTC and fixed offsets need no database.
    assert Schedule.parse("0 2 * * *", "+02:00").next_after(start - 1) == start
    assert Schedule.parse("0 2 * * *", "UTC").to_dict()["tz_used"] == "UTC"


def test_next_after_is_strictly_after_to_the_last_bit():
    minute = datetime(2004, 12, 31, 12, tzinfo=timezone.utc).timestamp()
    for tz in ("UTC", "Europe/Berlin", "Asia/Kolkata"):
        every_minute = Schedule.parse("* * * * *", tz)
        assert every_minute.next_after(minute - 2e-7) == minute
        assert every_minute.next_after(minute) == minute + 60
        assert every_minute.next_after(minute - 60.5) == minute - 60
    noon_utc = Schedule.parse("0 12 * * *")
    assert noon_utc.next_after(minute - 2e-7) == minute
    assert noon_utc.next_after(minute) == minute + 86400


def test_next_after_bad_times():
    schedule = Schedule.parse("0 0 1 1 *")
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="finite"):
            schedule.next_after(bad)
    with pytest.raises(ValueError, match="9999"):
        schedule.next_after(datetime(9999, 6, 1, tzinfo=timezone.utc).timestamp())
    assert schedule.next_after(-86400.0 * 365) == 0.0     # before 1970 works too (1969 -> 1970-01-01)


def test_public_names():
    check_public_names(schedule_module)
