"""Business calendars: semantics of contracts.md §1, and properties against a reference.

The reference implementation below walks time minute by minute asking "is any office open
now?" in local wall-clock time. It is slow and obviously right; the engine must agree with it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.sla.calendar import (
    BusinessCalendar,
    CalendarError,
    HolidayRule,
    Office,
    WeeklyHours,
)

NINE_TO_FIVE = WeeklyHours.parse({"mon-fri": ["09:00-17:00"]})
VAUD = Office("vaud", ZoneInfo("Europe/Zurich"), NINE_TO_FIVE, HolidayRule("CH", "VD"))
LAUSANNE = Office("lausanne", ZoneInfo("Europe/Zurich"), NINE_TO_FIVE, HolidayRule("CH"))
DENVER = Office("denver", ZoneInfo("America/Denver"), NINE_TO_FIVE, HolidayRule("US"))
TOKYO = Office("tokyo", ZoneInfo("Asia/Tokyo"), NINE_TO_FIVE, HolidayRule("JP"))
MAJOR_US = frozenset(
    [
        "New Year's Day",
        "Memorial Day",
        "Independence Day",
        "Labor Day",
        "Thanksgiving Day",
        "Christmas Day",
    ]
)
PACIFIC = Office(
    "pacific", ZoneInfo("America/Los_Angeles"), NINE_TO_FIVE, HolidayRule("US", names=MAJOR_US)
)
# Split shifts, a Saturday morning and a closed date of the contract's own.
SPLIT = Office(
    "split",
    ZoneInfo("America/Denver"),
    WeeklyHours.parse({"mon-fri": ["08:00-12:00", "13:00-17:30"], "sat": ["10:00-12:00"]}),
    HolidayRule(closed=frozenset({date(2026, 12, 24), date(2027, 1, 4)})),
)
# Whole days in a zone whose DST changes happen at midnight (Chile).
SANTIAGO = Office(
    "santiago", ZoneInfo("America/Santiago"), WeeklyHours.parse({"mon-fri": ["00:00-24:00"]})
)

CALENDARS = {
    "vaud": BusinessCalendar([VAUD]),
    "union": BusinessCalendar([LAUSANNE, DENVER, TOKYO]),
    "pacific": BusinessCalendar([PACIFIC]),
    "split": BusinessCalendar([SPLIT]),
    "santiago": BusinessCalendar([SANTIAGO]),
    "santiago+vaud": BusinessCalendar([SANTIAGO, VAUD]),
}
MEMBERS = {"union": [LAUSANNE, DENVER, TOKYO], "santiago+vaud": [SANTIAGO, VAUD]}


def z(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def local(text: str, zone: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone))


# -- the reference -------------------------------------------------------------------------


def _closed_dates(office: Office) -> frozenset[date]:
    return office.holidays.closed_dates(2025, 2028)


_CLOSED = {o.name: _closed_dates(o) for c in CALENDARS.values() for o in c.offices}


def ref_is_open(offices: list[Office], instant: datetime) -> bool:
    for office in offices:
        wall = instant.astimezone(office.zone)
        if wall.date() in _CLOSED[office.name]:
            continue
        second = wall.hour * 3600 + wall.minute * 60 + wall.second
        if any(o <= second < c for o, c in office.hours.days[wall.weekday()]):
            return True
    return False


def ref_add(offices: list[Office], start: datetime, minutes: int) -> datetime:
    step = timedelta(minutes=1)
    current = start
    while minutes:
        if ref_is_open(offices, current):
            minutes -= 1
        current += step
    return current


# -- strategies -----------------------------------------------------------------------------

starts = st.integers(
    min_value=int(z("2026-01-01T00:00:00Z").timestamp()) // 60,
    max_value=int(z("2027-06-30T00:00:00Z").timestamp()) // 60,
).map(lambda m: datetime.fromtimestamp(m * 60, UTC))
names = st.sampled_from(sorted(CALENDARS))
business = st.integers(min_value=1, max_value=60 * 40).map(lambda m: timedelta(minutes=m))


# -- properties -----------------------------------------------------------------------------


@settings(max_examples=3000)
@given(name=names, start=starts, minutes=st.integers(min_value=1, max_value=60 * 12))
def test_agrees_with_minute_stepping_reference(name: str, start: datetime, minutes: int) -> None:
    calendar = CALENDARS[name]
    expected = ref_add(list(calendar.offices), start, minutes)
    assert calendar.add(start, timedelta(minutes=minutes)) == expected
    assert calendar.is_open(start) == ref_is_open(list(calendar.offices), start)


@given(name=names, start=starts, a=business, b=business)
def test_adding_is_additive(name: str, start: datetime, a: timedelta, b: timedelta) -> None:
    calendar = CALENDARS[name]
    assert calendar.add(calendar.add(start, a), b) == calendar.add(start, a + b)


@given(name=names, start=starts, a=business, b=business, later=business)
def test_adding_is_monotone(
    name: str, start: datetime, a: timedelta, b: timedelta, later: timedelta
) -> None:
    calendar = CALENDARS[name]
    small, big = sorted((a, b))
    assert calendar.add(start, small) <= calendar.add(start, big)
    assert calendar.add(start, small) <= calendar.add(start + later, small)


@given(name=names, start=starts, duration=business)
def test_elapsed_inverts_add(name: str, start: datetime, duration: timedelta) -> None:
    calendar = CALENDARS[name]
    assert calendar.elapsed(start, calendar.add(start, duration)) == duration


@given(name=names, start=starts, duration=business)
def test_due_is_inside_an_open_interval_or_at_its_close(
    name: str, start: datetime, duration: timedelta
) -> None:
    calendar = CALENDARS[name]
    due = calendar.add(start, duration)
    assert calendar.is_open(due - timedelta(seconds=1))
    assert due > start


@given(name=st.sampled_from(sorted(MEMBERS)), start=starts, duration=business)
def test_union_is_never_later_than_any_member(
    name: str, start: datetime, duration: timedelta
) -> None:
    union = CALENDARS[name].add(start, duration)
    for office in MEMBERS[name]:
        assert union <= BusinessCalendar([office]).add(start, duration)


# -- worked examples of contracts.md §1 ---------------------------------------------------------


def test_due_exactly_at_a_close_is_that_close() -> None:
    start = local("2026-11-16T09:00", "Europe/Zurich")  # a Monday
    due = CALENDARS["vaud"].add(start, timedelta(hours=8))
    assert due == local("2026-11-16T17:00", "Europe/Zurich")


def test_intervals_are_half_open() -> None:
    vaud = CALENDARS["vaud"]
    assert vaud.is_open(local("2026-11-16T09:00", "Europe/Zurich"))
    assert not vaud.is_open(local("2026-11-16T17:00", "Europe/Zurich"))
    assert vaud.next_opening(local("2026-11-16T17:00", "Europe/Zurich")) == local(
        "2026-11-17T09:00", "Europe/Zurich"
    )


def test_clock_starts_at_next_opening_friday_evening_to_monday() -> None:
    start = local("2026-11-20T18:30", "Europe/Zurich")
    assert CALENDARS["vaud"].add(start, timedelta(hours=1)) == local(
        "2026-11-23T10:00", "Europe/Zurich"
    )


def test_holiday_closes_the_whole_local_day() -> None:
    # 21 September 2026 is Prayer Monday in Vaud: Friday 16:00 + 2 h runs to Tuesday 10:00.
    start = local("2026-09-18T16:00", "Europe/Zurich")
    assert CALENDARS["vaud"].add(start, timedelta(hours=2)) == local(
        "2026-09-22T10:00", "Europe/Zurich"
    )


def test_observed_holiday_of_a_named_subset() -> None:
    # Independence Day 2026 is a Saturday, observed Friday 3 July; Juneteenth is not "major".
    pacific = CALENDARS["pacific"]
    assert not pacific.is_open(local("2026-07-03T10:00", "America/Los_Angeles"))
    assert pacific.is_open(local("2026-06-19T10:00", "America/Los_Angeles"))
    # New Year's Day 2022 was a Saturday, observed on Friday 31 December 2021.
    assert not pacific.is_open(local("2021-12-31T10:00", "America/Los_Angeles"))


@pytest.mark.parametrize(
    ("start", "hours", "due"),
    [
        # Europe/Zurich springs forward on 29 March 2026: Friday 16:00 CET + 2 h = Monday
        # 10:00 CEST, which is 08:00 UTC (the offset changed over the weekend).
        ("2026-03-27T15:00:00Z", 2, "2026-03-30T08:00:00Z"),
        # And falls back on 25 October 2026: Friday 16:00 CEST + 2 h = Monday 10:00 CET.
        ("2026-10-23T14:00:00Z", 2, "2026-10-26T09:00:00Z"),
    ],
)
def test_wall_clock_hours_survive_dst(start: str, hours: int, due: str) -> None:
    assert CALENDARS["vaud"].add(z(start), timedelta(hours=hours)) == z(due)


def test_whole_days_in_a_zone_whose_dst_changes_at_midnight() -> None:
    # Chile springs forward at 24:00 on Saturday 5 September 2026 (Sunday starts at 01:00,
    # UTC-3). Friday 22:00 (UTC-4) + 4 h: 2 h to Friday's 24:00 close, 2 h from Monday 00:00.
    santiago = CALENDARS["santiago"]
    friday = local("2026-09-04T22:00", "America/Santiago")
    assert santiago.add(friday, timedelta(hours=4)) == z("2026-09-07T05:00:00Z")
    # Time that runs out at the 24:00 close is due at that close, not on Monday.
    assert santiago.add(friday, timedelta(hours=2)) == z("2026-09-05T04:00:00Z")


def test_union_counts_overlap_once() -> None:
    # Lausanne is open 08:00-16:00 UTC in November, London 09:00-17:00 UTC: 9 hours, not 16.
    london = Office("london", ZoneInfo("Europe/London"), NINE_TO_FIVE)
    union = BusinessCalendar([LAUSANNE, london])
    day = union.elapsed(z("2026-11-16T00:00:00Z"), z("2026-11-17T00:00:00Z"))
    assert day == timedelta(hours=9)
    assert union.add(z("2026-11-16T08:00:00Z"), timedelta(hours=9)) == z("2026-11-16T17:00:00Z")


def test_large_durations_cross_years() -> None:
    vaud = CALENDARS["vaud"]
    start = local("2026-11-16T09:00", "Europe/Zurich")
    due = vaud.add(start, timedelta(hours=8 * 1000))
    assert vaud.elapsed(start, due) == timedelta(hours=8000)
    assert due.year == 2030


def test_instants_before_the_table_extend_it_backwards() -> None:
    calendar = BusinessCalendar([VAUD])
    calendar.add(local("2026-11-16T09:00", "Europe/Zurich"), timedelta(hours=1))
    early = local("2019-03-04T09:00", "Europe/Zurich")
    assert calendar.add(early, timedelta(hours=8)) == local("2019-03-04T17:00", "Europe/Zurich")


def test_a_calendar_that_never_opens_again_is_an_error() -> None:
    always_closed = frozenset(date(2026, 1, 1) + timedelta(days=i) for i in range(366 * 40))
    office = Office("gone", ZoneInfo("UTC"), NINE_TO_FIVE, HolidayRule(closed=always_closed))
    with pytest.raises(CalendarError, match="never opens again"):
        BusinessCalendar([office]).add(z("2026-06-01T00:00:00Z"), timedelta(hours=1))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"mon-fri": ["17:00-09:00"]}, "closes before it opens"),
        ({"mon-fri": ["9-17"]}, "expected HH:MM"),
        ({"mon-fri": ["09:00-25:00"]}, "00:00 to 24:00"),
        ({"mon-fri": ["09:00-17:00"], "fri": ["18:00-19:00"]}, "fri is given twice"),
        ({"fri-mon": ["09:00-17:00"]}, "bad weekday range"),
        ({"funday": ["09:00-17:00"]}, "unknown weekday"),
        ({"mon": ["09:00-12:00", "11:00-13:00"]}, "bad open interval"),
        ({"mon-fri": []}, "never open"),
    ],
)
def test_weekly_hours_reject_nonsense(spec: dict[str, list[str]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WeeklyHours.parse(spec)


def test_nominal_day_length() -> None:
    assert NINE_TO_FIVE.nominal_day_seconds == 8 * 3600
    assert SPLIT.hours.nominal_day_seconds is None
