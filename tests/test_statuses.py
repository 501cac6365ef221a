"""Status histories as the connector keeps them: what a poll observes and what the helpdesk's
own record (Zendesk's ticket events) adds; reading the same record again changes nothing."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from connector.helpdesks.statuses import merge, observe
from connector.sla.model import StatusChange

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def at(minutes: int, status: str) -> StatusChange:
    return StatusChange.model_validate({"at": T0 + timedelta(minutes=minutes), "status": status})


def test_a_poll_appends_a_change_of_category_only() -> None:
    history = [at(0, "open")]
    assert observe(history, "open", T0 + timedelta(hours=1)) is None
    assert observe(history, "pending", T0 + timedelta(hours=1)) == [*history, at(60, "pending")]
    # Never before what is known (a helpdesk's clock a little behind another's).
    assert observe(history, "pending", T0 - timedelta(hours=1)) == [*history, at(0, "pending")]


def test_two_changes_in_one_second_read_again_and_again_change_nothing() -> None:
    page = [at(120, "pending"), at(120, "open")]
    history = merge([at(0, "open")], page)
    assert history == [at(0, "open"), at(120, "pending"), at(120, "open")]
    for _ in range(3):  # each cycle reads the second its last page ended on again
        assert merge(history, page) is None


def test_the_helpdesks_record_of_a_second_replaces_what_a_poll_observed_then() -> None:
    observed = [at(0, "open"), at(120, "pending")]  # the poll saw pending at 10:00
    page = [at(120, "on_hold"), at(120, "pending")]  # on hold, then pending, that second
    merged = merge(observed, page)
    assert merged == [at(0, "open"), at(120, "on_hold"), at(120, "pending")]
    assert merged is not None
    assert merge(merged, page) is None


def test_a_late_observation_gives_way_to_the_exact_change() -> None:
    observed = [at(0, "open"), at(125, "pending")]  # seen at the poll, 5 minutes late
    assert merge(observed, [at(120, "pending")]) == [at(0, "open"), at(120, "pending")]


STATUSES = st.sampled_from(["new", "open", "pending", "on_hold", "solved"])
CHANGES = st.lists(st.builds(at, st.integers(0, 30), STATUSES), max_size=12)


@given(history=CHANGES, page=CHANGES)
def test_merging_the_same_record_twice_is_merging_it_once(
    history: list[StatusChange], page: list[StatusChange]
) -> None:
    history = sorted(history, key=lambda change: change.at)
    once = merge(history, page)
    kept = history if once is None else once
    assert merge(kept, page) is None
    if once is not None:  # what merge makes repeats no status twice in a row
        assert all(a.status != b.status for a, b in itertools.pairwise(once))
