"""The one place that parses and prints instants.

Instants are timezone-aware everywhere. They are printed in UTC to the second with a `Z`;
where a person reads one, in a local zone as well, with the zone's abbreviation.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo

from pydantic_core import TzInfo

__all__ = [
    "format_instant",
    "format_local",
    "format_local_and_utc",
    "format_span",
    "from_epoch",
    "parse_day_or_instant",
    "parse_instant",
    "to_epoch",
    "zone_abbreviation",
]

# The zone classes whose offset never changes: Python's own and the one pydantic parses into.
_FIXED_ZONES = (timezone, TzInfo)
_FIXED_OFFSETS: dict[tzinfo, int] = {}
_ORDINAL_1970 = datetime(1970, 1, 1, tzinfo=UTC).toordinal()


def parse_instant(text: str) -> datetime:
    """Parse an ISO 8601 instant that carries an offset or `Z`; refuse naive ones."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"not an ISO 8601 instant: {text!r}") from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"timestamp without a timezone: {text!r} (add Z or an offset)")
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 parses but has no UTC instant
        raise ValueError(f"instant out of range: {text!r}") from None


def parse_day_or_instant(text: str) -> datetime:
    """A date (`2026-01-31`, its start in UTC) or an ISO 8601 instant with Z or an offset."""
    try:
        return datetime.combine(date.fromisoformat(text), time(0), tzinfo=UTC)
    except ValueError:
        pass
    try:
        return parse_instant(text)
    except ValueError:
        raise ValueError("expected a date (2026-01-31) or an instant with Z or an offset") from None


def to_epoch(value: datetime) -> int:
    """Whole seconds since the epoch; sub-second parts are dropped (output precision is 1 s).

    Exact in integers (a float timestamp rounds `.999999` up to the next second in far years),
    and quick: the offset of a fixed-offset zone (Python's own, and the one pydantic parses
    ISO 8601 into) is remembered, so most instants cost a few attribute reads.
    """
    zone = value.tzinfo
    fixed = isinstance(zone, _FIXED_ZONES)
    offset = _FIXED_OFFSETS.get(zone) if fixed and zone is not None else None
    local = (value.toordinal() - _ORDINAL_1970) * 86400 + (
        value.hour * 3600 + value.minute * 60 + value.second
    )
    if offset is not None:
        return local - offset
    delta = value.utcoffset()
    if delta is None:
        raise ValueError(f"timestamp without a timezone: {value.isoformat()}")
    if delta.microseconds:  # no real zone has them; exact all the same
        micros = local * 1_000_000 + value.microsecond - delta // timedelta(microseconds=1)
        return micros // 1_000_000
    offset = delta.days * 86400 + delta.seconds
    if fixed and zone is not None:
        if len(_FIXED_OFFSETS) > 1000:  # offsets come from input: keep the table small
            _FIXED_OFFSETS.clear()
        _FIXED_OFFSETS[zone] = offset
    return local - offset


def from_epoch(seconds: int) -> datetime:
    """The aware UTC instant `seconds` after the epoch."""
    return datetime.fromtimestamp(seconds, UTC)


def format_instant(value: datetime) -> str:
    """ISO 8601 in UTC, to the second, with `Z`."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_local(value: datetime, zone: tzinfo) -> str:
    """The instant as a person reads it in `zone`: `Tue 2026-03-03 09:15 CET`."""
    local = value.astimezone(zone)
    return f"{local.strftime('%a %Y-%m-%d %H:%M')} {zone_abbreviation(local)}"


def format_local_and_utc(value: datetime, zone: tzinfo) -> str:
    """The instant in `zone` with its UTC instant beside it, for a terminal:
    `Tue 2026-03-03 09:15 CET (2026-03-03T08:15:00Z)`."""
    return f"{format_local(value, zone)} ({format_instant(value)})"


def zone_abbreviation(value: datetime) -> str:
    """The abbreviation of an aware instant's zone at that instant: `CET`, `MDT`, `JST`.

    Some zones have no letters, only an offset (`+09`, `-03`, `+0530`): a bare `-03` after a
    time reads like arithmetic, so those are written from UTC: `UTC-03`, `UTC+05:30`.
    """
    name = value.tzname() or ""
    if name and name[0] not in "+-":
        return name
    offset = value.utcoffset() or timedelta(0)
    return _offset_name(offset.days * 86400 + offset.seconds)


def _offset_name(seconds: int) -> str:
    if not seconds:
        return "UTC"
    sign = "+" if seconds > 0 else "-"
    hours, minutes = divmod(abs(seconds) // 60, 60)
    return f"UTC{sign}{hours:02d}" + (f":{minutes:02d}" if minutes else "")


def format_span(seconds: int) -> str:
    """A length of (business or elapsed) time in hours and minutes: `29h30`, `0h00m45s`."""
    hours, rest = divmod(seconds, 3600)
    minutes, left = divmod(rest, 60)
    return f"{hours}h{minutes:02d}" + (f"m{left:02d}s" if left else "")
