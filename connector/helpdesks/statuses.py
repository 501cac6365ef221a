"""A ticket's status history as the connector observes it (pure).

Neither helpdesk gives the whole history with a ticket: each poll shows the present status and,
in its metrics (Zendesk's metric set, Freshdesk's stats), when the ticket entered it. The
connector keeps what it has seen: a change of status category appends an entry that starts
when the helpdesk says the status changed (never before the last entry known). A change and
its reversal between two polls are not seen; the history known starts at the first sight.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from connector.sla.model import Status, StatusChange

__all__ = ["merge", "observe"]


def observe(
    history: Sequence[StatusChange], status: Status, since: datetime
) -> list[StatusChange] | None:
    """The history with `status` seen in force since `since`; None when it already ends so."""
    if history and history[-1].status == status:
        return None
    at = since if not history or since >= history[-1].at else history[-1].at
    return [*history, StatusChange(at=at, status=status)]


def merge(
    history: Sequence[StatusChange], changes: Sequence[StatusChange]
) -> list[StatusChange] | None:
    """The history with the helpdesk's own records of changes merged in; None if unchanged.

    The helpdesk's record of a second is the whole truth of that second: what the history
    kept at a second the changes speak of (an entry observed by a poll, or the same audits
    read before) gives way to them, in their order. A status that repeats the one before it is
    no change and goes. So merging the same changes again changes nothing.
    """
    seconds = {change.at for change in changes}
    kept = [change for change in history if change.at not in seconds]
    combined = sorted([*kept, *changes], key=lambda change: change.at)  # stable
    merged: list[StatusChange] = []
    for change in combined:
        if not merged or merged[-1].status != change.status:
            merged.append(change)
    return None if merged == list(history) else merged
