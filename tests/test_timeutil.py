"""`to_epoch` in integers: whatever the zone, offset or year, the floor of the true instant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

from connector.sla.model import Instant
from connector.timeutil import to_epoch

PARSED = TypeAdapter(Instant)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def exact(instant: datetime) -> int:
    return (instant - EPOCH) // timedelta(seconds=1)


@given(
    instant=st.datetimes(
        min_value=datetime(1, 1, 3),  # noqa: DTZ001 - hypothesis takes naive bounds
        max_value=datetime(9999, 12, 28),  # noqa: DTZ001
        timezones=st.sampled_from(
            [
                UTC,
                ZoneInfo("Europe/Berlin"),
                ZoneInfo("America/St_Johns"),
                timezone(timedelta(hours=-3, minutes=-30)),
            ]
        ),
    ),
    offset=st.integers(-14 * 60, 14 * 60),
)
def test_the_epoch_is_the_floor_of_the_instant(instant: datetime, offset: int) -> None:
    assert to_epoch(instant) == exact(instant)
    # As pydantic parses a text with an offset (into its own fixed-offset zone).
    parsed = PARSED.validate_python(
        instant.replace(tzinfo=timezone(timedelta(minutes=offset))).isoformat()
    )
    assert to_epoch(parsed) == exact(parsed)


def test_far_instants_keep_their_second() -> None:
    # A float timestamp rounds this up to the next second.
    assert to_epoch(datetime(2515, 1, 1, 0, 0, 0, 999_999, tzinfo=UTC)) == 17_198_524_800


def test_a_naive_instant_is_refused() -> None:
    with pytest.raises(ValueError, match="without a timezone"):
        to_epoch(datetime(2026, 3, 2))  # noqa: DTZ001 - the point of the test


def test_an_offset_with_microseconds_is_exact() -> None:
    odd = timezone(timedelta(hours=1, microseconds=1))
    for value in (datetime(1, 1, 2, tzinfo=odd), datetime(2026, 3, 2, 0, 0, 0, 0, tzinfo=odd)):
        assert to_epoch(value) == exact(value)
