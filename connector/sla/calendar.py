"""Business calendars: offices, unions of offices, and business-time arithmetic.

An `Office` is an IANA zone, weekly open intervals in local wall-clock time and a holiday rule.
A `BusinessCalendar` is one office or the union of several: business time accrues while at least
one of them is open. Intervals are half-open, `[open, close)`.

How it stays fast: a calendar turns its offices' open intervals into one sorted list of UTC
intervals (epoch seconds, merged across offices) with a running total of business seconds before
each interval. Adding business time, measuring it and finding the next opening are then binary
searches on those lists, whatever the duration: adding 1000 business hours costs what adding 8
does. The lists cover whole years and grow on demand; they are built from local dates, so DST
changes and holidays are exact by construction and no day is assumed to last 24 hours.

Everything here is pure: no clock, no I/O. The cache of intervals is memoisation only.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from connector.sla.holidaydata import canonical, holiday_table, split_label
from connector.timeutil import from_epoch, to_epoch

__all__ = [
    "WEEKDAYS",
    "BusinessCalendar",
    "CalendarError",
    "HolidayRule",
    "Office",
    "WeeklyHours",
    "holiday_names",
    "zone",
]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_SECONDS = 86_400
FIRST_YEAR, LAST_YEAR = 1971, 2399
_ONE_DAY = timedelta(days=1)


class CalendarError(ValueError):
    """A calendar cannot answer: it never opens, or the instant is outside supported years."""


@dataclass(frozen=True)
class WeeklyHours:
    """Open intervals for each weekday (Monday first), as seconds after local midnight.

    `days[0]` holds Monday's intervals as `(open, close)` pairs, sorted and disjoint, with
    `0 <= open < close <= 86400`; a close of 86400 is 24:00, the next local midnight.
    """

    days: tuple[tuple[tuple[int, int], ...], ...]

    def __post_init__(self) -> None:
        if len(self.days) != 7:
            raise ValueError("weekly hours need exactly seven days")
        for spans in self.days:
            previous_close = -1
            for open_s, close_s in spans:
                if not 0 <= open_s < close_s <= DAY_SECONDS or open_s < previous_close:
                    raise ValueError(f"bad open interval {open_s}-{close_s}")
                previous_close = close_s
        if not any(self.days):
            raise ValueError("the office is never open")

    @classmethod
    def parse(cls, spec: Mapping[str, Sequence[str]]) -> WeeklyHours:
        """Build from `{"mon-fri": ["09:00-17:00"], "sat": ["10:00-12:00"]}`.

        Keys are a weekday or a range of weekdays; a day named twice is an error.
        """
        days: list[list[tuple[int, int]] | None] = [None] * 7
        for key, spans in spec.items():
            for index in _weekday_range(key):
                if days[index] is not None:
                    raise ValueError(f"{WEEKDAYS[index]} is given twice")
                days[index] = sorted(_parse_span(text) for text in spans)
        return cls(tuple(tuple(d or ()) for d in days))

    def day_seconds(self, weekday: int) -> int:
        """Open seconds on that weekday (0 = Monday)."""
        return sum(close - open_ for open_, close in self.days[weekday])

    @property
    def nominal_day_seconds(self) -> int | None:
        """The length of every open day, or None when open days differ in length."""
        lengths = {self.day_seconds(i) for i in range(7)} - {0}
        return lengths.pop() if len(lengths) == 1 else None


def _weekday_range(key: str) -> list[int]:
    names = key.strip().lower().split("-")
    try:
        indices = [WEEKDAYS.index(n.strip()[:3]) for n in names]
    except ValueError:
        raise ValueError(
            f"unknown weekday in {key!r} (expected mon..sun or a range mon-fri)"
        ) from None
    if len(indices) == 1:
        return indices
    if len(indices) == 2 and indices[0] <= indices[1]:
        return list(range(indices[0], indices[1] + 1))
    raise ValueError(f"bad weekday range {key!r} (expected e.g. mon-fri)")


def _parse_clock(text: str) -> int:
    hours, _, minutes = text.strip().partition(":")
    if not (hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
        raise ValueError(f"bad time {text!r} (expected HH:MM)")
    seconds = int(hours) * 3600 + int(minutes) * 60
    if int(minutes) > 59 or seconds > DAY_SECONDS:
        raise ValueError(f"bad time {text!r} (expected 00:00 to 24:00)")
    return seconds


def _parse_span(text: str) -> tuple[int, int]:
    start, sep, end = text.partition("-")
    if not sep:
        raise ValueError(f"bad interval {text!r} (expected HH:MM-HH:MM)")
    open_s, close_s = _parse_clock(start), _parse_clock(end)
    if open_s >= close_s:
        raise ValueError(f"interval {text!r} closes before it opens")
    return open_s, close_s


@dataclass(frozen=True)
class HolidayRule:
    """Which local dates an office is closed for the whole day.

    `country`/`subdivision` name a calendar of the `holidays` package; `names`, when given,
    keeps only those holidays, each also on its observed date when `observed` (names compared
    by `holidaydata.canonical`: the same days across the package's releases); `closed` adds
    dates of the contract's own.
    """

    country: str | None = None
    subdivision: str | None = None
    names: frozenset[str] | None = None
    observed: bool = True
    closed: frozenset[date] = frozenset()

    def closed_dates(self, first_year: int, last_year: int) -> frozenset[date]:
        """Every closed date from 1 January of `first_year` to 31 December of `last_year`."""
        dates = {d for d in self.closed if first_year <= d.year <= last_year}
        if self.country is None:
            return frozenset(dates)
        # A holiday observed on 31 December may belong to the next year's list: ask one more.
        table = _holiday_table(self, range(first_year - 1, last_year + 2))
        dates.update(d for d in table if first_year <= d.year <= last_year)
        return frozenset(dates)


def _holiday_table(rule: HolidayRule, years: Iterable[int]) -> dict[date, str]:
    assert rule.country is not None
    table = holiday_table(rule.country, rule.subdivision, years, observed=rule.observed)
    if rule.names is None:
        return table
    wanted = {canonical(name) for name in rule.names}
    kept: dict[date, str] = {}
    for day, label in table.items():
        for name in split_label(label):
            if canonical(name) in wanted:
                kept[day] = name
    return kept


def holiday_names(country: str, subdivision: str | None, years: Iterable[int]) -> set[str]:
    """The holidays a country (and subdivision) has in those years, by canonical name."""
    return {
        canonical(name)
        for label in holiday_table(country, subdivision, years).values()
        for name in split_label(label)
    }


@dataclass(frozen=True)
class Office:
    """A place that answers tickets: a zone, weekly hours and the dates it is closed."""

    name: str
    zone: ZoneInfo
    hours: WeeklyHours
    holidays: HolidayRule = field(default_factory=HolidayRule)

    def year_start(self, year: int) -> int:
        """Local midnight of 1 January of `year`, in epoch seconds."""
        return to_epoch(datetime(year, 1, 1, tzinfo=self.zone))

    def open_intervals(self, first_year: int, last_year: int) -> list[tuple[int, int]]:
        """The office's open intervals, in epoch seconds, for the local dates of those years."""
        closed = self.holidays.closed_dates(first_year, last_year)
        zone, days = self.zone, self.hours.days
        intervals: list[tuple[int, int]] = []
        day, stop = date(first_year, 1, 1), date(last_year + 1, 1, 1)
        while day < stop:
            spans = days[day.weekday()]
            if spans and day not in closed:
                midnight = datetime(day.year, day.month, day.day, tzinfo=zone)
                for open_s, close_s in spans:
                    # Aware + timedelta is wall-clock arithmetic: 09:00 stays 09:00 across DST,
                    # and 24:00 is the next local midnight whatever the length of the day.
                    opens = to_epoch(midnight + timedelta(seconds=open_s))
                    closes = to_epoch(midnight + timedelta(seconds=close_s))
                    if closes > opens:
                        intervals.append((opens, closes))
            day += _ONE_DAY
        return intervals


class BusinessCalendar:
    """One office or the union of several, with business-time arithmetic on aware instants.

    The `*_epoch` methods take and return whole epoch seconds; the others take and return
    aware datetimes (sub-second parts are dropped: the engine's precision is one second).
    """

    def __init__(self, offices: Sequence[Office], label: str | None = None) -> None:
        if not offices:
            raise ValueError("a calendar needs at least one office")
        self.offices: tuple[Office, ...] = tuple(offices)
        self.label = label or " + ".join(o.name for o in self.offices)
        self._first_year = 0
        self._last_year = -1
        self._lo = 0
        self._hi = -1
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._cum: list[int] = [0]

    def __repr__(self) -> str:
        return f"BusinessCalendar({self.label!r})"

    @property
    def nominal_day_seconds(self) -> int | None:
        """The length of a business day, shared by every office; None when they differ."""
        lengths = {o.hours.nominal_day_seconds for o in self.offices}
        return lengths.pop() if len(lengths) == 1 else None

    # -- public API on datetimes -------------------------------------------------------------

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The instant at which `duration` of business time has accrued from `start`.

        The clock starts at `start` if the calendar is open then, else at the next opening.
        Time that runs out exactly at a close is due at that close.
        """
        if start.tzinfo is None:
            raise ValueError(f"timestamp without a timezone: {start.isoformat()}")
        stamp = start.timestamp()  # to_epoch inlined: this is the hot path
        begin = int(stamp)
        if begin > stamp:
            begin -= 1
        seconds = duration.days * DAY_SECONDS + duration.seconds
        return datetime.fromtimestamp(self.add_epoch(begin, seconds), UTC)

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """Business time between two instants (negative when `end` is before `start`)."""
        return timedelta(seconds=self.elapsed_epoch(to_epoch(start), to_epoch(end)))

    def is_open(self, instant: datetime) -> bool:
        """True when at least one office is open at `instant`."""
        return self.is_open_epoch(to_epoch(instant))

    def next_opening(self, instant: datetime) -> datetime:
        """`instant` itself when open, else the next instant at which the calendar opens."""
        return from_epoch(self.next_opening_epoch(to_epoch(instant)))

    # -- the same on epoch seconds -----------------------------------------------------------

    def add_epoch(self, start: int, seconds: int) -> int:
        """`add` on epoch seconds."""
        if seconds <= 0:
            if seconds < 0:
                raise ValueError("cannot add a negative business duration")
            return start
        if not self._lo <= start <= self._hi:
            self._cover(start)
        while True:
            # Inlined _position(start): this is the hot path of every due computation.
            starts, cum = self._starts, self._cum
            i = bisect_right(starts, start) - 1
            if i < 0:
                target = seconds
            elif start < self._ends[i]:
                target = cum[i] + start - starts[i] + seconds
            else:
                target = cum[i + 1] + seconds
            if target <= cum[-1]:
                # Most targets end in the interval in hand or the next one: probe those first.
                j = i + 1 if i >= 0 else 0
                if not cum[j] < target <= cum[j + 1]:
                    j = (
                        i
                        if i >= 0 and cum[i] < target <= cum[i + 1]
                        else bisect_left(cum, target) - 1
                    )
                due = starts[j] + (target - cum[j])
                if due <= self._hi:
                    return due
            self._extend_forward(target - cum[-1])

    def elapsed_epoch(self, start: int, end: int) -> int:
        """`elapsed` on epoch seconds."""
        if not (self._lo <= start <= self._hi and self._lo <= end <= self._hi):
            self._cover(start)
            self._cover(end)
        # _position inlined, twice: paused clocks measure each stretch between two spells.
        starts, ends, cum = self._starts, self._ends, self._cum
        i = bisect_right(starts, end) - 1
        upto = 0 if i < 0 else cum[i] + end - starts[i] if end < ends[i] else cum[i + 1]
        i = bisect_right(starts, start) - 1
        return upto - (
            0 if i < 0 else cum[i] + start - starts[i] if start < ends[i] else cum[i + 1]
        )

    def is_open_epoch(self, instant: int) -> bool:
        """`is_open` on epoch seconds."""
        self._cover(instant)
        i = bisect_right(self._starts, instant) - 1
        return i >= 0 and instant < self._ends[i]

    def next_opening_epoch(self, instant: int) -> int:
        """`next_opening` on epoch seconds."""
        self._cover(instant)
        while True:
            i = bisect_right(self._starts, instant) - 1
            if i >= 0 and instant < self._ends[i]:
                return instant
            if i + 1 < len(self._starts) and self._starts[i + 1] <= self._hi:
                return self._starts[i + 1]
            self._extend_forward(1)

    # -- the interval table ------------------------------------------------------------------

    def _position(self, instant: int) -> int:
        """Business seconds from the start of the table to `instant`."""
        i = bisect_right(self._starts, instant) - 1
        if i < 0:
            return 0
        if instant < self._ends[i]:
            return self._cum[i] + instant - self._starts[i]
        return self._cum[i + 1]

    def _cover(self, instant: int) -> None:
        if self._lo <= instant <= self._hi:
            return
        year = from_epoch(instant).year
        if self._last_year < self._first_year:
            self._build(year - 1, year + 1)
        while instant < self._lo:
            self._build(self._first_year - max(2, self._span()), self._last_year)
        while instant > self._hi:
            self._build(self._first_year, self._last_year + max(2, self._span()))

    def _span(self) -> int:
        return self._last_year - self._first_year + 1

    def _extend_forward(self, missing_seconds: int) -> None:
        yearly = max(1, self._cum[-1] // max(1, self._span()))
        more = max(2, missing_seconds // yearly + 1, self._span() // 2)
        before, last_year = self._cum[-1], self._last_year
        self._build(self._first_year, self._last_year + more)
        if self._cum[-1] == before and self._last_year - last_year >= 10:
            raise CalendarError(f"calendar {self.label} never opens again")

    def _build(self, first_year: int, last_year: int) -> None:
        first_year, last_year = max(first_year, FIRST_YEAR), min(last_year, LAST_YEAR)
        if first_year == self._first_year and last_year == self._last_year:
            raise CalendarError(
                f"calendar {self.label}: instant outside the supported years "
                f"{FIRST_YEAR}-{LAST_YEAR}"
            )
        merged = _merge(
            iv for office in self.offices for iv in office.open_intervals(first_year, last_year)
        )
        self._first_year, self._last_year = first_year, last_year
        # The table is valid only where every office's years are covered.
        self._lo = max(o.year_start(first_year) for o in self.offices)
        self._hi = min(o.year_start(last_year + 1) for o in self.offices)
        self._starts = [s for s, _ in merged]
        self._ends = [e for _, e in merged]
        cum = [0]
        total = 0
        for s, e in merged:
            total += e - s
            cum.append(total)
        self._cum = cum


def _merge(intervals: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted union of half-open intervals; touching intervals become one."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    """The IANA zone of that name (cached)."""
    return ZoneInfo(name)
