"""The one door to the `holidays` package: its tables, under names that survive its releases.

Contract files name holidays (`only: [Thanksgiving Day, ...]`) in the package's English names,
and the package renames holidays between releases ("Thanksgiving" became "Thanksgiving Day" in
0.69, "Whit Monday" became "Pentecost Monday" in 0.100) and rewrites its markers ("(estimated)
(observed)" became "(observed, estimated)"). Names are compared here by a canonical form: the
markers taken off and each known alias replaced by the name of its group, so a contract means
the same days with every release we allow and a name the installed release does not know is
refused at load.

The aliases were read off the package's own tables, release against release, date by date
(0.60 to 0.109; a rename shows as one date under two names). Add a group when a release renames
a holiday: tests/test_holiday_dates.py pins the closed dates of every bundled calendar.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from datetime import date
from types import ModuleType

__all__ = ["canonical", "holiday_table", "split_label", "subdivisions"]

# Each group: the current name first, then the names earlier releases gave the same holiday.
_ALIAS_GROUPS: tuple[tuple[str, ...], ...] = (
    ("Thanksgiving Day", "Thanksgiving"),
    ("Pentecost Monday", "Whit Monday"),
    ("Pentecost", "Whit Sunday"),
    ("Saint Berchtold's Day", "Berchtold's Day"),
    ("Autumnal Equinox Day", "Autumnal Equinox"),
    ("Women's Day", "International Women's Day"),
    ("May Bank Holiday", "May Day"),
    ("Christmas Day", "Christmas"),
    ("Diwali", "Deepavali", "Diwali (Deepavali)"),
    ("Eid al-Fitr", "Eid ul-Fitr"),
    ("Ashura", "Day of Ashura"),
    ("Prophet's Birthday", "Mawlid"),
    ("Mahatma Gandhi's Birthday", "Gandhi Jayanti"),
    ("Guru Nanak's Birthday", "Guru Nanak Jayanti"),
    ("Mahavira's Birthday", "Mahavir Jayanti"),
)
_CANONICAL = {alias.casefold(): group[0] for group in _ALIAS_GROUPS for alias in group}
# What the package appends to a name: "(observed)", "(estimated)", both in either spelling.
_MARKERS = re.compile(r"(\s*\((?:observed|estimated)(?:,\s*(?:observed|estimated))*\))+$")


def canonical(name: str) -> str:
    """The name every release we allow agrees on: markers removed, a known alias replaced."""
    bare = " ".join(_MARKERS.sub("", name).split())
    return _CANONICAL.get(bare.casefold(), bare)


def split_label(label: str) -> list[str]:
    """The holidays of one date: the package joins several holidays of a date with "; "."""
    return [part for part in str(label).split("; ") if part]


def holiday_table(
    country: str, subdivision: str | None, years: Iterable[int], *, observed: bool = True
) -> dict[date, str]:
    """The package's holidays of `country` (and `subdivision`) in `years`: date to label.

    Raises `NotImplementedError` for a country the package does not have.
    """
    table = _package().country_holidays(
        country, subdiv=subdivision, years=list(years), observed=observed
    )
    return {day: str(label) for day, label in table.items()}


def subdivisions(country: str) -> tuple[str, ...]:
    """The subdivision codes the package knows for `country` (`NotImplementedError` if none)."""
    return tuple(_package().country_holidays(country, years=[]).subdivisions)


def _package() -> ModuleType:
    # Imported late: it costs ~50 ms and only calendars that are used need it. Releases up to
    # 0.71 warn at import that 1.0 may break their API; the lock pins the release we tested,
    # so the notice is not for our users.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import holidays

    return holidays
