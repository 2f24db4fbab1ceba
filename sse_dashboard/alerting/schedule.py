"""Job schedules: when a job is expected to run (#24).

One concept: given a schedule and a moment, the next moment the job should run. A schedule is
a period in seconds (``"3600"``: the next run is due one period after the last) or a 5-field
cron expression (minute, hour, day-of-month, month, day-of-week) evaluated in a time zone, with
the syntax Healthchecks accepts through ``cronsim``: ``*``, lists ``a,b``, ranges ``a-b``, steps
``*/n``, ``a-b/n`` and ``a/n``, month and weekday names (``JAN``-``DEC``, ``SUN``-``SAT``, any
case), ``0`` and ``7`` both Sunday, ``L`` (last day) and ``LW`` (last weekday) in
day-of-month, ``5L`` (the month's last Friday) and ``5#2`` (its second Friday) in day-of-week.

Invariants:
- a ``Schedule`` is complete when ``Schedule.parse`` returns it, and immutable; bad input raises
  ``ValueError`` with a short message naming the bad field, written for users (the API passes it
  through as ``{"error": ...}``);
- ``next_after(ts)`` is strictly greater than ``ts``, and a cron schedule's result is always a
  moment whose local time in the schedule's zone matches every field (or the end of a
  spring-forward gap, below);
- a cron expression that can never fire (``0 0 30 2 *``) is refused by ``parse``, so
  ``next_after`` always finds a next run (within datetime's range, years 1-9999). The check is
  exact, not a search: which days of a month match depends only on the month, its length and the
  weekday it starts on, and all of those combinations occur within every 40 years; Healthchecks
  refuses the same expressions (it asks cronsim for one run after 2000-01-01 and cronsim gives up
  after 50 years);
- ``next_after`` jumps field by field (month, day, hour, minute) with ``bisect``: a few
  microseconds a call, never a minute-by-minute scan.

Days. When both day fields are restricted a day matches either (``0 0 1 * MON``: the 1st and
every Monday; crontab(5)); when either field starts with ``*`` (``*/2`` too) both must match.
This is Debian cron's reading, and cronsim's.

Daylight saving time, as Debian cron (cron(8)) and cronsim do it:
- a job at a fixed time (neither the minute nor the hour field starts with ``*``: ``30 2 * * *``,
  ``0 1-3 * * *``) follows the wall clock. A time skipped by a spring-forward gap runs when the
  gap ends (02:30 on a day that jumps from 02:00 to 03:00 runs at 03:00, once, even if 03:00 is
  also in the schedule); a time that occurs twice on a fall-back day runs once, the first time;
- a job with a wildcard minute or hour (``*/15 * * * *``, ``0 * * * *``, ``* 2 * * *``) runs at
  every real moment whose local time matches: not in a gap, twice in a repeated hour.

Time zones: any ``zoneinfo`` name, ``UTC``, or a fixed offset (``+02:00``, ``-0530``, ``UTC+2``:
ISO 8601 signs, east of Greenwich is ``+``; the opposite of POSIX ``TZ`` and ``Etc/GMT+2``). An
unknown name is a ``ValueError``. Without a time-zone database (Windows without the ``tzdata``
package) a named zone is evaluated in UTC, with one warning for the process, never a crash;
``to_dict()`` says which zone is in use.

Intentional choices (DO NOT "fix" without reading this):
- cronsim advances a wildcard-minute/hour search by adding the minutes it computed on the wall
  clock to the UTC time, and by truncating to the hour. Where a DST change is not a whole hour
  on the wall clock that skips real matches: on Lord Howe's 30-minute change ``30 * * * *``
  misses 02:30 on the day the clock jumps from 02:00 to 02:30 and ``* 5 * * *`` starts at 05:30
  on both change days; on Chatham's change at 02:45 ``* */4 * * *`` misses 04:00 (and cronsim
  2.9 loops forever on ``* 3 * * *`` from Chatham's fall-back). cronsim's own README calls any
  difference from Debian cron a bug in cronsim; we follow Debian cron there (the job's cron
  daemon runs it at those times). The tests hold us to cronsim everywhere else.
- the reference is cronsim 2.9. Healthchecks still pins 2.7, which differs in two corners we do
  not copy: it reads ``1-1/5`` as ``1/5`` (every fifth from 1) where 2.9 reads ``1``, and it
  refuses a day-of-month above 29 that no listed month has even when day-of-week could match
  (``0 0 30 2 MON``: 2.9 runs it on February's Mondays).
- only 5 fields (Healthchecks refuses cronsim's optional seconds field), and no ``@daily``-style
  macros or ``?``/``H`` (neither cronsim nor Healthchecks accepts them).

May import: the standard library only.
"""

from __future__ import annotations

import bisect
import calendar
import functools
import logging
import math
import re
import zoneinfo
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo

__all__ = ["Schedule", "MIN_PERIOD_S", "MAX_PERIOD_S", "MAX_CRON_CHARS"]

log = logging.getLogger(__name__)

MIN_PERIOD_S = 1.0
MAX_PERIOD_S = 366 * 86400.0        # as a heartbeat's ``every``
MAX_CRON_CHARS = 200
MAX_TZ_CHARS = 64

# (name, lowest, highest) of the five fields, in order.
_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day-of-month", 1, 31), ("month", 1, 12),
           ("day-of-week", 0, 7))
_MINUTE, _HOUR, _DOM, _MONTH, _DOW = range(5)
_NAMES = {
    _MONTH: {name: i + 1 for i, name in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split())},
    _DOW: {name: i for i, name in enumerate("SUN MON TUE WED THU FRI SAT".split())},
}
_LAST = "L"              # day-of-month: the month's last day; day-of-week (dow, _LAST): its last such weekday
_LAST_WEEKDAY = "LW"     # day-of-month: the month's last Monday-to-Friday
_WHAT_SCHEDULE = ('schedule must be a period in seconds (%d to %d) or a 5-field cron expression '
                  'like "30 2 * * MON-FRI"' % (MIN_PERIOD_S, MAX_PERIOD_S))
_PERIOD_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_OFFSET_RE = re.compile(r"(?:UTC|GMT)?([+-])([0-9]{1,2})(?::?([0-9]{2}))?", re.IGNORECASE)
_TZ_NAME_RE = re.compile(r"[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+)*")
_EPOCH = datetime(1970, 1, 1)
_UTC_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MINUTE_TD = timedelta(minutes=1)
_SECOND_TD = timedelta(seconds=1)


@dataclass(frozen=True)
class Schedule:
    """When a job is expected to run: a period, or a cron expression in a time zone.

    >>> nightly = Schedule.parse("30 2 * * MON-FRI", tz="Europe/Berlin")
    >>> due = nightly.next_after(last_run_ts)          # unix time, strictly after
    >>> Schedule.parse("3600").next_after(ts) == ts + 3600

    Build one with ``parse`` (the constructor takes the compiled rule). ``kind`` is ``"period"``
    or ``"cron"``; a period has ``period_s``, a cron schedule ``cron`` (the expression as given,
    whitespace normalised) and ``tz``.
    """

    kind: str
    period_s: float | None = None
    cron: str | None = None
    tz: str | None = None
    _rule: _CronRule | None = field(default=None, repr=False, compare=False)

    @classmethod
    def parse(cls, text: str | int | float, tz: str = "UTC") -> Schedule:
        """A period in seconds (``3600``, ``"3600"``; ``tz`` is not used) or a 5-field cron
        expression in ``tz``."""
        if isinstance(text, bool) or not isinstance(text, (str, int, float)):
            raise ValueError(_WHAT_SCHEDULE)
        if isinstance(text, str):
            if len(text.split()) > 1:
                return _parse_cron(text, tz)
            if not _PERIOD_RE.fullmatch(text.strip()):
                raise ValueError(_WHAT_SCHEDULE)
        try:
            period = float(text)
        except OverflowError:                                    # an int beyond any float
            period = math.inf
        if not math.isfinite(period) or not MIN_PERIOD_S <= period <= MAX_PERIOD_S:
            raise ValueError("period must be %d to %d seconds (366 days)" % (MIN_PERIOD_S, MAX_PERIOD_S))
        return cls(kind="period", period_s=period)

    def next_after(self, ts: float) -> float:
        """The next expected run strictly after unix time ``ts``: ``ts + period`` for a period.

        Raises ``ValueError`` when ``ts`` is not finite, or when the next run would fall outside
        the years 1-9999."""
        if not math.isfinite(ts):
            raise ValueError("ts must be a finite number")
        if self.kind == "period":
            return ts + self.period_s
        try:
            return self._rule.next_after(ts)
        except OverflowError:
            raise ValueError("no run between the years 1 and 9999 after %r" % ts) from None

    def clock(self, ts: float) -> str:
        """``ts`` as a person reads it on this schedule's clock, ``02:00``: in the cron job's
        time zone, or for a period in this machine's (an alert says when, not where)."""
        if self.kind == "period":
            return datetime.fromtimestamp(ts).strftime("%H:%M")
        return datetime.fromtimestamp(ts, self._rule.zone).strftime("%H:%M")

    def describe(self) -> str:
        """What a person reads: ``every 1 h``, ``cron "30 2 * * MON-FRI" in Europe/Berlin``."""
        if self.kind == "period":
            return "every " + _format_period(self.period_s)
        text = 'cron "%s" in %s' % (self.cron, self._rule.zone_used)
        if self._rule.zone_used != self.tz:
            text += " (%s is unknown here: no time-zone database, pip install tzdata)" % self.tz
        return text

    def to_dict(self) -> dict:
        """The JSON shape: ``{"kind": "period", "period_s": 3600}`` or ``{"kind": "cron",
        "cron": ..., "tz": as asked, "tz_used": the zone evaluated in}`` (they differ only when
        the time-zone database is missing)."""
        if self.kind == "period":
            period = int(self.period_s) if self.period_s.is_integer() else self.period_s
            return {"kind": "period", "period_s": period}
        return {"kind": "cron", "cron": self.cron, "tz": self.tz, "tz_used": self._rule.zone_used}


class _CronRule:
    """A parsed cron expression in its zone: the fields as sorted tuples, and the search."""

    __slots__ = ("zone", "zone_used", "minutes", "hours", "months", "days", "wall_clock")

    def __init__(self, zone: tzinfo, zone_used: str, minutes: tuple, hours: tuple, months: tuple,
                 days: dict, wall_clock: bool) -> None:
        self.zone, self.zone_used = zone, zone_used
        self.minutes, self.hours, self.months = minutes, hours, months
        self.days = days                  # (weekday of the 1st, Monday=0; days in month) -> matching days
        self.wall_clock = wall_clock      # a fixed-time job: follows the wall clock across DST

    def next_after(self, ts: float) -> float:
        return self._next_wall_clock(ts) if self.wall_clock else self._next_real(ts)

    def _next_wall_clock(self, ts: float) -> float:
        """Fixed-time jobs: the next matching wall-clock time after ``ts``'s; one in a gap runs
        at the gap's end, one in a repeated hour at its first occurrence (cronsim's
        ``fixup_tz``). From the second pass of a repeated hour the first occurrences are
        already past, so they are skipped."""
        lower = _floor_minute(_local(ts, self.zone).replace(tzinfo=None)) + _MINUTE_TD
        while True:
            wall = self._next_match(lower)
            before, after = _offsets(self.zone, wall)
            if before < after:                                   # in a gap: runs when it ends
                wall = self._gap_end(wall)
                before = self.zone.utcoffset(wall)
            at = _instant(wall, before)                          # the first occurrence
            if at > ts:
                return at
            lower = wall + _MINUTE_TD

    def _next_real(self, ts: float) -> float:
        """Wildcard jobs: the first real moment after ``ts`` whose local time matches. Wall
        times are visited in order; each has 0 (in a gap), 1 or 2 (repeated) real moments, and
        the first moment of later wall times only grows, so the search ends at the first wall
        time whose first moment is after ``ts``."""
        here = _local(ts, self.zone)
        wall = here.replace(tzinfo=None)
        before, after = _offsets(self.zone, wall)
        if before > after and here.fold == 0:
            # The first pass of a repeated hour: wall times before this one come again later.
            wall -= before - after
        lower = _floor_minute(wall)
        best = None
        while True:
            wall = self._next_match(lower)
            before, after = _offsets(self.zone, wall)
            moments = () if before < after else (_instant(wall, before), _instant(wall, after))
            for at in moments:
                if at > ts and (best is None or at < best):
                    best = at
            if moments and moments[0] > ts:
                return best
            lower = wall + _MINUTE_TD

    def _next_match(self, lower: datetime) -> datetime:
        """The first naive wall time at or after ``lower`` (a whole minute) matching every
        field, jumping a field at a time. ``parse`` made sure some date matches, so this ends
        within 40 years; past the year 9999 it raises ``OverflowError``."""
        months, hours, minutes = self.months, self.hours, self.minutes
        year, month, day, hour, minute = lower.year, lower.month, lower.day, lower.hour, lower.minute
        while True:
            if year > 9999:
                raise OverflowError("past the year 9999")
            i = bisect.bisect_left(months, month)
            if i == len(months):
                year, month, day, hour, minute = year + 1, months[0], 1, 0, 0
                continue
            if months[i] != month:
                month, day, hour, minute = months[i], 1, 0, 0
            days = self.days[calendar.monthrange(year, month)]
            i = bisect.bisect_left(days, day)
            if i == len(days):
                month, day, hour, minute = month + 1, 1, 0, 0
                continue
            if days[i] != day:
                day, hour, minute = days[i], 0, 0
            i = bisect.bisect_left(hours, hour)
            if i == len(hours):
                day, hour, minute = day + 1, 0, 0
                continue
            if hours[i] != hour:
                hour, minute = hours[i], 0
            i = bisect.bisect_left(minutes, minute)
            if i == len(minutes):
                hour, minute = hour + 1, 0
                continue
            return datetime(year, month, day, hour, minutes[i])

    def _gap_end(self, wall: datetime) -> datetime:
        """The first real whole minute after ``wall``, which a spring-forward gap skipped (what
        cronsim reaches by adding a minute at a time): a binary search over the gap."""
        low, high = 0, 1                                         # in minutes; wall + low is in the gap
        while _is_gap(self.zone, wall + high * _MINUTE_TD):
            low, high = high, high * 2
        while high - low > 1:
            middle = (low + high) // 2
            if _is_gap(self.zone, wall + middle * _MINUTE_TD):
                low = middle
            else:
                high = middle
        return wall + high * _MINUTE_TD


# -- parsing ------------------------------------------------------------------------------------

def _parse_cron(text: str, tz: str) -> Schedule:
    if len(text) > MAX_CRON_CHARS:
        raise ValueError("cron expression is longer than %d characters" % MAX_CRON_CHARS)
    fields = text.split()
    if len(fields) != 5:
        raise ValueError("cron expression needs 5 fields (minute hour day-of-month month "
                         "day-of-week), got %d" % len(fields))
    parts = [f.upper() for f in fields]
    values = [_parse_field(index, part, fields[index]) for index, part in enumerate(parts)]
    # Debian cron: a day field starting with "*" makes the two day fields AND, otherwise OR.
    days_and = parts[_DOM].startswith("*") or parts[_DOW].startswith("*")
    table = {}
    for first in range(7):
        for length in (28, 29, 30, 31):
            table[(first, length)] = tuple(
                d for d in range(1, length + 1)
                if _day_matches(values[_DOM], values[_DOW], days_and, first, length, d))
    months = tuple(sorted(values[_MONTH]))
    lengths = {m: (28, 29) if m == 2 else (calendar.mdays[m],) for m in months}
    if not any(table[(first, length)] for m in months for length in lengths[m] for first in range(7)):
        raise ValueError('cron expression "%s" never runs: no date has day-of-month %s, month %s '
                         'and day-of-week %s' % (" ".join(fields), fields[_DOM], fields[_MONTH], fields[_DOW]))
    zone, zone_used = _resolve_zone(tz)
    rule = _CronRule(
        zone, zone_used, minutes=tuple(sorted(values[_MINUTE])), hours=tuple(sorted(values[_HOUR])),
        months=months, days=table,
        # Debian cron and cronsim follow the wall clock only for jobs at fixed times.
        wall_clock=not parts[_MINUTE].startswith("*") and not parts[_HOUR].startswith("*"))
    return Schedule(kind="cron", cron=" ".join(fields), tz=tz, _rule=rule)


def _parse_field(index: int, text: str, as_written: str) -> set:
    """One field's values (``text`` upper-cased), as cronsim reads them: the same order of
    checks, so the same corner cases (``a/n`` runs to the field's end, ``1/2`` in day-of-week
    includes 7, ``L/3`` is ``L``)."""
    name, lowest, highest = _FIELDS[index]

    def bad(reason: str) -> ValueError:
        shown = as_written if len(as_written) <= 40 else as_written[:37] + "..."
        return ValueError('bad %s field "%s": %s' % (name, shown, reason))

    def number(s: str) -> int:
        if s in _NAMES.get(index, ()):
            return _NAMES[index][s]
        if not s or not all(c in "0123456789" for c in s):
            expected = "a number %d-%d" % (lowest, highest)
            if index in _NAMES:
                expected += " or a name %s" % ("JAN-DEC" if index == _MONTH else "SUN-SAT")
            raise bad(("empty value; expected " if not s else "expected ") + expected)
        value = int(s)
        if not lowest <= value <= highest:
            raise bad("%d is not in %d-%d" % (value, lowest, highest))
        return value

    def parse(s: str) -> set:
        if s == "*":
            return set(range(lowest, highest + 1))
        if "," in s:
            values = set()
            for term in s.split(","):
                values |= parse(term)
            return values
        if index == _DOW and "L" in s:                           # 5L: the last Friday
            if not s[:-1] or not all(c in "0123456789" for c in s[:-1]):
                raise bad("use a weekday number before L, like 5L")
            return {(number(s[:-1]) % 7, _LAST)}
        if index == _DOW and "#" in s:                           # 5#2: the second Friday
            term, nth = s.split("#", 1)
            if not nth or not all(c in "0123456789" for c in nth) or not 1 <= int(nth) <= 5:
                raise bad("the number after # must be 1-5")
            return {(number(term) % 7, int(nth))}
        if "/" in s:
            term, step_text = s.split("/", 1)
            if not step_text or not all(c in "0123456789" for c in step_text) or int(step_text) == 0:
                raise bad("the step after / must be a whole number of at least 1")
            step = int(step_text)
            values = parse(term)
            if values in ({_LAST}, {_LAST_WEEKDAY}):
                return values
            if len(values) == 1 and "-" not in term:             # a/n: from a to the field's end
                return set(range(values.pop(), highest + 1, step))
            return set(sorted(values)[::step])
        if "-" in s:
            start, end = s.split("-", 1)
            start, end = number(start), number(end)
            if end < start:
                raise bad("the range %s-%s goes backwards" % (start, end))
            return set(range(start, end + 1))
        if index == _DOM and s in (_LAST, _LAST_WEEKDAY):
            return {s}
        return {number(s)}

    values = parse(text)
    if index == _DOW:
        values = {v if isinstance(v, tuple) else v % 7 for v in values}   # 7 is Sunday too
    return values


def _day_matches(dom: set, dow: set, days_and: bool, first: int, length: int, day: int) -> bool:
    """Whether ``day`` of a month of ``length`` days whose 1st is weekday ``first`` (Monday=0)
    matches the day fields, as cronsim's ``match_day``."""
    weekday = (first + day) % 7                                  # cron's: Sunday=0
    last_weekday = length - {5: 1, 6: 2}.get((first + length - 1) % 7, 0)
    on_dom = day in dom or (_LAST in dom and day == length) or (_LAST_WEEKDAY in dom and day == last_weekday)
    on_dow = (weekday in dow or ((weekday, _LAST) in dow and day + 7 > length)
              or (weekday, (day + 6) // 7) in dow)
    return (on_dom and on_dow) if days_and else (on_dom or on_dow)


# -- time zones ---------------------------------------------------------------------------------

def _load_zone(name: str) -> tzinfo:
    """The one place that asks ``zoneinfo`` (tests make it fail as Windows without tzdata)."""
    return zoneinfo.ZoneInfo(name)


def _resolve_zone(name: str) -> tuple[tzinfo, str]:
    """(zone, name of the zone in use) for a zone name or a fixed offset."""
    if not isinstance(name, str) or not name:
        raise ValueError("tz must be a time zone name like Europe/Berlin, or an offset like +02:00")
    if name.upper() in ("UTC", "Z"):
        return timezone.utc, name
    offset = _OFFSET_RE.fullmatch(name)
    if offset:
        sign, hours, minutes = offset.group(1), int(offset.group(2)), int(offset.group(3) or 0)
        if hours > 14 or minutes > 59:
            raise ValueError('unknown time zone "%s": offsets go from -14:00 to +14:00' % name)
        delta = timedelta(hours=hours, minutes=minutes) * (-1 if sign == "-" else 1)
        return timezone(delta), name
    if len(name) > MAX_TZ_CHARS or not _TZ_NAME_RE.fullmatch(name):
        raise ValueError('unknown time zone "%s"' % name[:MAX_TZ_CHARS])
    try:
        return _load_zone(name), name
    except zoneinfo.ZoneInfoNotFoundError:
        pass
    except (ValueError, OSError):                                # a directory, an odd key
        raise ValueError('unknown time zone "%s"' % name) from None
    try:
        _load_zone("UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        _warn_no_database()                                      # no database at all: not the name's fault
        return timezone.utc, "UTC"
    raise ValueError('unknown time zone "%s"' % name)


@functools.lru_cache(maxsize=1)
def _warn_no_database() -> None:
    """Said once for the process, however many schedules name a zone."""
    log.warning("no time-zone database (on Windows: pip install tzdata): cron schedules in named "
                "time zones are evaluated in UTC")


def _local(ts: float, zone: tzinfo) -> datetime:
    """The whole second ``ts`` falls in, as an aware local time (with ``fold`` set), on every OS
    and for any year. Runs are on whole minutes, so "after ts" is "after its second"; rounding
    ``ts`` to microseconds instead would make 11:59:59.9999998 into 12:00 and skip a 12:00 run."""
    return (_UTC_EPOCH + timedelta(seconds=math.floor(ts))).astimezone(zone)


def _offsets(zone: tzinfo, wall: datetime) -> tuple[timedelta, timedelta]:
    """A naive wall time's UTC offsets at its first and second reading (``fold`` 0 and 1):
    equal for an ordinary time, first > second when it is repeated, first < second in a gap."""
    return zone.utcoffset(wall), zone.utcoffset(wall.replace(fold=1))


def _is_gap(zone: tzinfo, wall: datetime) -> bool:
    before, after = _offsets(zone, wall)
    return before < after


def _instant(wall: datetime, offset: timedelta) -> float:
    return float((wall - _EPOCH - offset) // _SECOND_TD)


def _floor_minute(wall: datetime) -> datetime:
    return wall.replace(second=0, microsecond=0)


def _format_period(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return "%d %s" % (seconds // size, unit)
    return "%g s" % seconds
