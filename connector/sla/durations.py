"""Durations as contracts write them, and how each becomes a due instant.

The units, as they appear in contract files:

- `8 business_hours`, `3 business_days`: business time on the target's calendar; a business
  day is the calendar's nominal day length (8 h for 09:00-17:00).
- `3 hours`: elapsed time, open or closed.
- `next_day_at 09:00`: that wall-clock time on the local day after the start; with
  `weekend_to_monday`, a deadline on Saturday or Sunday moves to the Monday (wall clock kept).
- `best_effort`: no due instant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from connector.sla.calendar import DAY_SECONDS, BusinessCalendar
from connector.timeutil import from_epoch, to_epoch

__all__ = [
    "BestEffort",
    "BusinessDays",
    "BusinessHours",
    "Duration",
    "Hours",
    "NextDayAt",
    "parse_duration",
]

_AMOUNT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s+(business_hours|business_days|hours)\s*$")
_NEXT_DAY = re.compile(r"^\s*next_day_at\s+(\d{1,2}):(\d{2})(\s+weekend_to_monday)?\s*$")
GRAMMAR = (
    "expected 'N business_hours', 'N business_days', 'N hours', "
    "'next_day_at HH:MM [weekend_to_monday]' or 'best_effort'"
)


@dataclass(frozen=True)
class BusinessHours:
    """Business time on the target's calendar."""

    seconds: int
    kind: Literal["business_hours"] = "business_hours"

    def __str__(self) -> str:
        return _amount(self.seconds / 3600, "business hour")


@dataclass(frozen=True)
class BusinessDays:
    """N nominal business days, added as business time."""

    days: float
    kind: Literal["business_days"] = "business_days"

    def seconds_on(self, calendar: BusinessCalendar) -> int:
        """The business seconds this many days make on `calendar`."""
        day = calendar.nominal_day_seconds
        if day is None:
            raise ValueError(f"calendar {calendar.label} has open days of different lengths")
        return round(self.days * day)

    def __str__(self) -> str:
        return _amount(self.days, "business day")


@dataclass(frozen=True)
class Hours:
    """Elapsed (plain) time."""

    seconds: int
    kind: Literal["hours"] = "hours"

    def __str__(self) -> str:
        return _amount(self.seconds / 3600, "hour")


@dataclass(frozen=True)
class NextDayAt:
    """A wall-clock time on the local day after the start."""

    seconds_after_midnight: int
    weekend_to_monday: bool = False
    kind: Literal["next_day_at"] = "next_day_at"

    def due(self, start: datetime, zone: ZoneInfo) -> datetime:
        """The deadline for something that started at `start`, in `zone`'s wall clock."""
        local_day = start.astimezone(zone).date() + timedelta(days=1)
        if self.weekend_to_monday and local_day.weekday() >= 5:
            local_day += timedelta(days=7 - local_day.weekday())
        midnight = datetime(local_day.year, local_day.month, local_day.day, tzinfo=zone)
        return midnight + timedelta(seconds=self.seconds_after_midnight)

    def __str__(self) -> str:
        hours, minutes = divmod(self.seconds_after_midnight // 60, 60)
        text = f"{hours:02d}:{minutes:02d} local on the next day"
        return text + (", weekends moved to Monday" if self.weekend_to_monday else "")


@dataclass(frozen=True)
class BestEffort:
    """No due instant; never breaches."""

    kind: Literal["best_effort"] = "best_effort"

    def __str__(self) -> str:
        return "best effort"


Duration = BusinessHours | BusinessDays | Hours | NextDayAt | BestEffort


def parse_duration(text: object) -> Duration:
    """Parse a duration as written in a contract file; ValueError names the grammar."""
    if isinstance(text, Duration):
        return text
    if not isinstance(text, str):
        raise ValueError(f"{GRAMMAR}, got {text!r}")
    if text.strip() == "best_effort":
        return BestEffort()
    if match := _AMOUNT.match(text):
        amount, unit = float(match.group(1)), match.group(2)
        if amount <= 0:
            raise ValueError(f"a duration must be positive, got {text!r}")
        if unit == "business_days":
            return BusinessDays(amount)
        seconds = round(amount * 3600)
        return BusinessHours(seconds) if unit == "business_hours" else Hours(seconds)
    if match := _NEXT_DAY.match(text):
        hours, minutes = int(match.group(1)), int(match.group(2))
        if minutes > 59 or hours * 3600 + minutes * 60 >= DAY_SECONDS:
            raise ValueError(f"bad time of day in {text!r}")
        return NextDayAt(hours * 3600 + minutes * 60, weekend_to_monday=bool(match.group(3)))
    raise ValueError(f"{GRAMMAR}, got {text!r}")


def due_epoch(
    duration: BusinessHours | BusinessDays | Hours | NextDayAt,
    start: int,
    calendar: BusinessCalendar,
    zone: ZoneInfo,
) -> int:
    """The due instant, in epoch seconds, of a duration started at `start`."""
    if isinstance(duration, BusinessHours):
        return calendar.add_epoch(start, duration.seconds)
    if isinstance(duration, BusinessDays):
        return calendar.add_epoch(start, duration.seconds_on(calendar))
    if isinstance(duration, Hours):
        return start + duration.seconds
    return to_epoch(duration.due(from_epoch(start), zone))


def _amount(value: float, unit: str) -> str:
    return f"{value:g} {unit}" + ("" if value == 1 else "s")
