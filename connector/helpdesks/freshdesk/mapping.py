"""Freshdesk tickets as facts, and decisions as the minimal Freshdesk writes (pure).

`FreshdeskView` reads one ticket (with its stats) and its company for
`connector.helpdesks.mapping.read_facts`; `writes_for` diffs the results a decision calls for
with the ticket as it is: an update (None when nothing would change) and a note to post.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connector.helpdesks.freshdesk.models import Company, Ticket, TicketUpdate
from connector.helpdesks.freshdesk.sansio import (
    TAG_MAX_LENGTH,
    TIMER_STOPPING_STATUSES,
    check_due_dates,
    refuses_tag,
)
from connector.helpdesks.mapping import DesiredResults
from connector.sla.model import Status

__all__ = ["FreshdeskView", "FreshdeskWrites", "writes_for"]

# Freshdesk's built-in statuses in the engine's words; custom statuses count as open.
STATUSES: dict[int, Status] = {2: "open", 3: "pending", 4: "solved", 5: "closed"}


class FreshdeskView:
    """A `WireView` over one Freshdesk ticket and its company."""

    __slots__ = ("company", "ticket")

    def __init__(self, ticket: Ticket, company: Company | None) -> None:
        self.ticket = ticket
        self.company = company

    @property
    def ticket_id(self) -> str:
        """The ticket id as text."""
        return str(self.ticket.id)

    @property
    def created_at(self) -> datetime:
        """When the ticket was created."""
        return self.ticket.created_at

    @property
    def status(self) -> Status:
        """The status in the engine's words."""
        return STATUSES.get(self.ticket.status, "open")

    @property
    def status_key(self) -> str:
        """The status id, as the mapping's `facts.statuses` names it."""
        return str(self.ticket.status)

    @property
    def status_since(self) -> datetime | None:
        """When the status last changed (`stats.status_updated_at`)."""
        return None if self.ticket.stats is None else self.ticket.stats.status_updated_at

    @property
    def tags(self) -> Sequence[str]:
        """The ticket's tags."""
        return self.ticket.tags

    def ticket_field(self, key: int | str) -> Any:
        """A custom ticket field (`cf_...`)."""
        return self.ticket.custom_fields.get(str(key))

    def customer_field(self, key: str) -> Any:
        """A custom field of the company (None without one)."""
        return None if self.company is None else self.company.custom_fields.get(key)

    def ticket_attribute(self, name: str) -> Any:
        """A native ticket attribute the wire model keeps."""
        return getattr(self.ticket, name, None)

    def customer_attribute(self, name: str) -> Any:
        """A native company attribute the wire model keeps."""
        return None if self.company is None else getattr(self.company, name, None)

    def event(self, name: str) -> Any:
        """An instant from the ticket's stats (None before it happens)."""
        return None if self.ticket.stats is None else getattr(self.ticket.stats, name, None)


@dataclass(frozen=True, slots=True)
class FreshdeskWrites:
    """What to send for one ticket: a field update and a private note, each optional."""

    update: TicketUpdate | None
    note: str | None
    dropped: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        """Whether nothing needs sending."""
        return self.update is None and self.note is None


def writes_for(
    ticket: Ticket,
    desired: DesiredResults,
    *,
    posted_note: str | None,
    timer_stopping_statuses: Iterable[int] = TIMER_STOPPING_STATUSES,
) -> FreshdeskWrites:
    """The smallest writes that make `ticket` show `desired`.

    `fr_due_by` and `due_by` are Freshdesk's own fields; see `_due_dates` for how a field with
    no contract due (best effort, or no such target) is kept consistent. Tags are sent as the
    whole merged list (Freshdesk replaces tags): agents' tags are kept in place.
    A note goes out only when its fingerprint differs from `posted_note`.
    """
    ours = {str(value.destination.key): value.due for value in desired.due if value.due is not None}
    dues, dropped = _due_dates(ticket, ours.get("fr_due_by"), ours.get("due_by"))
    changes = desired.changes(ticket.priority, ticket.tags)
    tags = None
    if changes.add or changes.remove:
        kept = [t for t in ticket.tags if t not in changes.remove]
        # The PUT replaces the whole list, so every tag kept goes back in it, and one that
        # Freshdesk now refuses (an agent's, from an older rule or another tool) would make it
        # refuse the whole write. Tags are then left as they are; the rest is still written.
        refused = [t for t in kept if refuses_tag(t)]
        if refused:
            dropped.append(
                f"ticket {ticket.id}: tags left unwritten, as Freshdesk would refuse the list "
                f"with its tag {refused[0][:40]!r} in it (over {TAG_MAX_LENGTH} characters or "
                "a comma)"
            )
        else:
            tags = (*kept, *changes.add)
    custom: dict[str, str] = {}
    if desired.summary is not None:
        name, text = desired.summary
        if ticket.custom_fields.get(name) != text:
            custom[name] = text
    update = TicketUpdate(
        fr_due_by=dues.get("fr_due_by"),
        due_by=dues.get("due_by"),
        priority=None if changes.priority is None else int(changes.priority),
        tags=tags,
        custom_fields=custom,
    )
    update = check_due_dates(ticket, update, timer_stopping_statuses=timer_stopping_statuses)
    return FreshdeskWrites(
        update=None if update.is_empty else update,
        note=desired.note_to_post(posted_note),
        dropped=(*dropped, *update.dropped),
    )


def _due_dates(
    ticket: Ticket, first: datetime | None, final: datetime | None
) -> tuple[dict[str, datetime], list[str]]:
    """The due dates to send, given the contract's (None: no due time for that field).

    Freshdesk cannot hold "no due time" and refuses `due_by` before `fr_due_by`. A field
    without a contract due keeps its value unless that would break the order, in which case
    it takes the other field's contract due: a first response is due no later than the
    resolution. When both are the contract's and out of order, `fr_due_by` is brought down to
    `due_by`. The result depends only on the inputs, so a re-poll asks for nothing new.
    """
    reasons = []
    where = f"ticket {ticket.id}"
    if first is not None and final is not None and final < first:
        reasons.append(f"{where}: first response due after the resolution; fr_due_by = due_by")
        first = final
    elif first is None and final is not None:
        if ticket.fr_due_by is None or ticket.fr_due_by > final:
            reasons.append(f"{where}: no first response due; fr_due_by = due_by")
            first = final
    elif final is None and first is not None and (ticket.due_by is None or ticket.due_by < first):
        reasons.append(f"{where}: no resolution due; due_by = fr_due_by")
        final = first
    wanted = {"fr_due_by": first, "due_by": final}
    dues = {
        name: value
        for name, value in wanted.items()
        if value is not None and getattr(ticket, name) != value
    }
    return dues, reasons
