"""Paused clocks: the spells a ticket's status stops a target, and the time that accrues around
them (docs/pausing.md).

A status spell is half-open: a ticket that enters `pending` at `t` and leaves at `u` is paused
on `[t, u)`. The status at an instant is that of the latest history entry at or before it;
before the first entry the ticket is `open`; entries after the instant asked about are not
known yet. Time accrues on some measure (business time of a calendar, or elapsed time) only
outside the spells; the due instant is where the accrued time reaches the duration, and a
target paused at the end of what is known owes the rest.

No loop over minutes or days: between two spells the measure's own `add` finds the instant
(a search in the calendar's interval table), so the cost is one search per spell.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from operator import itemgetter

from connector.sla.model import StatusChange
from connector.timeutil import to_epoch

__all__ = ["Spell", "accrue", "epoch_history", "paused_spells"]

# [start, end) in epoch seconds; end None: still paused at the last instant known.
Spell = tuple[int, int | None]


def epoch_history(changes: Iterable[StatusChange]) -> list[tuple[int, str]]:
    """A status history as (epoch seconds, status), oldest first; changes at one instant keep
    their order (a stable sort: the last of them holds)."""
    return sorted(((to_epoch(c.at), c.status) for c in changes), key=itemgetter(0))


def paused_spells(
    history: Iterable[tuple[int, str]], paused_by: Collection[str], start: int, until: int
) -> list[Spell]:
    """The spells within `[start, until]` in which the status is one of `paused_by`.

    `history` is (epoch, status) oldest first, as the helpdesk recorded it (entries at one
    instant keep their order: the last one holds). Spells are clipped to `start`, disjoint and
    sorted; the last one has no end when the ticket is still paused at `until`.
    """
    spells: list[Spell] = []
    paused, since = False, start
    for at, status in history:
        if at > until:
            break
        now_paused = status in paused_by
        if now_paused == paused:
            continue
        instant = max(at, start)
        if now_paused:
            # Paused again at the instant a spell ended (an entry that never held, overridden
            # at its own instant): one spell, not two that touch.
            since = spells.pop()[0] if spells and spells[-1][1] == instant else instant
        elif instant > since:
            spells.append((since, instant))
        paused = now_paused
    if paused:
        spells.append((since, None))
    return spells


def accrue(
    add: Callable[[int, int], int],
    measure: Callable[[int, int], int],
    start: int,
    amounts: Sequence[int],
    spells: Sequence[Spell],
) -> list[tuple[int | None, int]]:
    """Where each of `amounts` (ascending) seconds of time has accrued from `start`, not
    counting `spells`: `(due, 0)`, or `(None, owed)` when the clock is paused (an open last
    spell) before that amount has accrued. One walk over the spells serves every amount.

    `add(t, n)` is the instant `n` seconds of the measure after `t` (at a close when they run
    out exactly there); `measure(t, u)` the seconds of the measure in `[t, u)`. An amount that
    runs out exactly where a spell begins is due there.
    """
    results: list[tuple[int | None, int]] = []
    pending = list(amounts)
    cursor, accrued = start, 0
    for begin, end in spells:
        if end is not None and end <= cursor:
            continue
        if begin > cursor:
            reached = accrued + measure(cursor, begin)
            while pending and pending[0] <= reached:
                results.append((add(cursor, pending.pop(0) - accrued), 0))
            if not pending:
                return results
            accrued = reached
        if end is None:
            return results + [(None, amount - accrued) for amount in pending]
        cursor = max(cursor, end)
    return results + [(add(cursor, amount - accrued), 0) for amount in pending]
