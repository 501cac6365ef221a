"""The one place that parses and prints instants.

Instants are timezone-aware everywhere. They are printed in UTC to the second with a `Z`.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

__all__ = ["format_instant", "format_local", "from_epoch", "parse_instant", "to_epoch"]


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


def to_epoch(value: datetime) -> int:
    """Whole seconds since the epoch; sub-second parts are dropped (output precision is 1 s)."""
    if value.tzinfo is None:
        raise ValueError(f"timestamp without a timezone: {value.isoformat()}")
    stamp = value.timestamp()
    whole = int(stamp)
    return whole - 1 if whole > stamp else whole  # floor, also before 1970


def from_epoch(seconds: int) -> datetime:
    """The aware UTC instant `seconds` after the epoch."""
    return datetime.fromtimestamp(seconds, UTC)


def format_instant(value: datetime) -> str:
    """ISO 8601 in UTC, to the second, with `Z`."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_local(value: datetime, zone: tzinfo) -> str:
    """The instant as a person reads it in `zone`: `Tue 2026-03-03 09:15 CET`."""
    return value.astimezone(zone).strftime("%a %Y-%m-%d %H:%M %Z")
