"""The closed dates of every bundled calendar, pinned: a `holidays` release that moves, adds or
drops a day (or renames a holiday a contract names) fails here, loudly, before it is locked.

The dates are those of the contracts' own words (contracts.md) as the locked `holidays` release
gives them, observed dates included. A change here is a change to what the contracts promise:
check it against the vendor's document before updating the table.
"""

from __future__ import annotations

from datetime import date

import pytest

from connector.mappingfiles import default_mappings_dir, load_contracts
from connector.sla import holidaydata
from connector.sla.calendar import HolidayRule, Office
from connector.sla.holidaydata import canonical

# (contract, calendar): "YEAR: MM-DD ..." for 2026, 2027 and 2028.
CLOSED = {
    ("photoprism", "berlin"): """
        2026: 01-01 03-08 04-03 04-06 05-01 05-14 05-25 10-03 12-25 12-26
        2027: 01-01 03-08 03-26 03-29 05-01 05-06 05-17 10-03 12-25 12-26
        2028: 01-01 03-08 04-14 04-17 05-01 05-25 06-05 06-17 10-03 12-25 12-26
    """,
    ("pix4d-premium", "lausanne"): """
        2026: 01-01 05-14 08-01 12-25
        2027: 01-01 05-06 08-01 12-25
        2028: 01-01 05-25 08-01 12-25
    """,
    ("pix4d-premium", "denver"): """
        2026: 01-01 01-19 02-16 05-25 06-19 07-03 07-04 09-07 10-12 11-11 11-26 12-25
        2027: 01-01 01-18 02-15 05-31 06-18 06-19 07-04 07-05 09-06 10-11 11-11 11-25 12-24
              12-25 12-31
        2028: 01-01 01-17 02-21 05-29 06-19 07-04 09-04 10-09 11-10 11-11 11-23 12-25
    """,
    ("pix4d-premium", "tokyo"): """
        2026: 01-01 01-12 02-11 02-23 03-20 04-29 05-03 05-04 05-05 05-06 07-20 08-11 09-21
              09-22 09-23 10-12 11-03 11-23
        2027: 01-01 01-11 02-11 02-23 03-21 03-22 04-29 05-03 05-04 05-05 07-19 08-11 09-20
              09-23 10-11 11-03 11-23
        2028: 01-01 01-10 02-11 02-23 03-20 04-29 05-03 05-04 05-05 07-17 08-11 09-18 09-22
              10-09 11-03 11-23
    """,
    ("pix4dengine-enterprise", "pacific"): """
        2026: 01-01 05-25 07-03 07-04 09-07 11-26 12-25
        2027: 01-01 05-31 07-04 07-05 09-06 11-25 12-24 12-25 12-31
        2028: 01-01 05-29 07-04 09-04 11-23 12-25
    """,
    ("pix4dengine-enterprise", "central_europe"): """
        2026: 01-01 01-02 04-03 04-06 05-14 05-25 08-01 09-21 12-25
        2027: 01-01 01-02 03-26 03-29 05-06 05-17 08-01 09-20 12-25
        2028: 01-01 01-02 04-14 04-17 05-25 06-05 08-01 09-18 12-25
    """,
}
YEARS = (2026, 2028)


def pinned(text: str) -> set[date]:
    dates: set[date] = set()
    year = 0
    for token in text.split():
        if token.endswith(":"):
            year = int(token[:-1])
        else:
            month, day = token.split("-")
            dates.add(date(year, int(month), int(day)))
    return dates


def bundled_offices() -> dict[tuple[str, str], Office]:
    offices = {}
    for name, contract in load_contracts(default_mappings_dir()).items():
        for office_name in contract.office_names:
            (office,) = contract.calendar((office_name,), "UTC").offices
            if office.holidays.country is not None or office.holidays.closed:
                offices[name, office_name] = office
    return offices


def test_every_bundled_calendar_with_holidays_is_pinned() -> None:
    assert set(bundled_offices()) == set(CLOSED)


@pytest.mark.parametrize("key", sorted(CLOSED), ids="/".join)
def test_the_closed_dates_of_2026_to_2028_are_those_pinned(key: tuple[str, str]) -> None:
    office = bundled_offices()[key]
    closed = office.holidays.closed_dates(*YEARS)
    expected = pinned(CLOSED[key])
    assert sorted(closed - expected) == [], "closed now, not pinned"
    assert sorted(expected - closed) == [], "pinned, no longer closed"


# --- names across releases ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("Thanksgiving", "Thanksgiving Day"),
        ("Whit Monday", "Pentecost Monday"),
        ("Berchtold's Day", "Saint Berchtold's Day"),
        ("Autumnal Equinox (observed)", "Autumnal Equinox Day"),
        ("Vesak Day (estimated) (observed)", "Vesak Day (observed, estimated)"),
        ("Chinese New Year (estimated)", "Chinese New Year"),
    ],
)
def test_a_holiday_renamed_by_a_release_keeps_its_canonical_name(older: str, newer: str) -> None:
    assert canonical(older) == canonical(newer)


def test_distinct_holidays_stay_distinct() -> None:
    names = ["Christmas Day", "Saint Stephen's Day", "Pentecost", "Pentecost Monday", "May Day"]
    assert len({canonical(n) for n in names}) == len(names)
    assert canonical("Diwali (Deepavali)") == "Diwali"  # a bracket that is part of the name


def renamed(table: dict[date, str], renames: dict[str, str]) -> dict[date, str]:
    """A table as an older release worded it."""

    def older(name: str) -> str:
        bare = name.removesuffix(" (observed)")
        return renames.get(canonical(bare), bare) + name[len(bare) :]

    return {
        day: "; ".join(older(name) for name in holidaydata.split_label(label))
        for day, label in table.items()
    }


@pytest.mark.parametrize(
    ("country", "subdivision", "only", "older"),
    [
        (
            "US",
            None,
            ["Thanksgiving Day", "Independence Day"],
            {"Thanksgiving Day": "Thanksgiving"},
        ),
        (
            "CH",
            "VD",
            ["Pentecost Monday", "Saint Berchtold's Day"],
            {"Pentecost Monday": "Whit Monday", "Saint Berchtold's Day": "Berchtold's Day"},
        ),
    ],
)
def test_a_named_subset_means_the_same_days_under_an_older_releases_names(
    monkeypatch: pytest.MonkeyPatch,
    country: str,
    subdivision: str | None,
    only: list[str],
    older: dict[str, str],
) -> None:
    rule = HolidayRule(country=country, subdivision=subdivision, names=frozenset(only))
    today = rule.closed_dates(*YEARS)
    assert len(today) >= 3 * len(only)

    current = holidaydata.holiday_table
    monkeypatch.setattr(
        "connector.sla.calendar.holiday_table",
        lambda *args, **kwargs: renamed(current(*args, **kwargs), older),
    )
    assert (
        HolidayRule(country=country, subdivision=subdivision, names=frozenset(only)).closed_dates(
            *YEARS
        )
        == today
    )
    # and a contract written with the older names means those days under the newer ones
    monkeypatch.setattr("connector.sla.calendar.holiday_table", current)
    older_names = frozenset(older.get(name, name) for name in only)
    assert (
        HolidayRule(country=country, subdivision=subdivision, names=older_names).closed_dates(
            *YEARS
        )
        == today
    )
