"""Zendesk tickets as facts, and decisions as the minimal Zendesk update (pure).

`ZendeskView` reads one ticket, its sideloaded organization and metric set for
`connector.helpdesks.mapping.read_facts`; `update_for` diffs the results a decision calls for
with the ticket as it is, and returns None when nothing would change.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from connector.helpdesks.mapping import DesiredResults
from connector.helpdesks.zendesk.models import MetricSet, Organization, Ticket, TicketUpdate
from connector.sla.model import Status

__all__ = ["ZendeskView", "update_for"]

# Zendesk's statuses in the engine's words ("hold" is Zendesk's on-hold).
STATUSES: dict[str, Status] = {
    "new": "new",
    "open": "open",
    "pending": "pending",
    "hold": "on_hold",
    "solved": "solved",
    "closed": "closed",
    "deleted": "deleted",
}


class ZendeskView:
    """A `WireView` over one Zendesk ticket with its organization and metric set."""

    __slots__ = ("metrics", "organization", "ticket")

    def __init__(
        self, ticket: Ticket, organization: Organization | None, metrics: MetricSet | None
    ) -> None:
        self.ticket = ticket
        self.organization = organization
        self.metrics = metrics

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
        """The status in the engine's words; a custom status falls back to open."""
        return STATUSES.get(self.ticket.status, "open")

    @property
    def status_key(self) -> str:
        """The custom status id when the account has custom statuses, else the status."""
        custom = self.ticket.custom_status_id
        return self.ticket.status if custom is None else str(custom)

    @property
    def status_since(self) -> datetime | None:
        """When the status last changed (the metric set's `status_updated_at`)."""
        return None if self.metrics is None else self.metrics.status_updated_at

    @property
    def tags(self) -> Sequence[str]:
        """The ticket's tags."""
        return self.ticket.tags

    def ticket_field(self, key: int | str) -> Any:
        """A custom ticket field's value."""
        return self.ticket.field(int(key))

    def customer_field(self, key: str) -> Any:
        """A custom field of the organization (None without one)."""
        if self.organization is None:
            return None
        return self.organization.organization_fields.get(key)

    def ticket_attribute(self, name: str) -> Any:
        """A native ticket attribute the wire model keeps."""
        return getattr(self.ticket, name, None)

    def customer_attribute(self, name: str) -> Any:
        """A native organization attribute the wire model keeps."""
        return None if self.organization is None else getattr(self.organization, name, None)

    def event(self, name: str) -> Any:
        """`first_reply_at` or `solved_at` from the metric set (None before it happens)."""
        if self.metrics is None:
            return None
        if name == "first_reply_at":
            return self.metrics.first_reply_at(self.ticket.created_at)
        return getattr(self.metrics, name, None)


def update_for(
    ticket: Ticket, desired: DesiredResults, *, posted_note: str | None
) -> TicketUpdate | None:
    """The smallest update that makes `ticket` show `desired`; None when it already does.

    `posted_note` is the fingerprint of the last note sla-connector posted on this ticket: a
    note goes out only when its text changed. Only the due fields of the mapping and the tags
    sla-connector owns are ever changed; agents' own fields and tags are left alone.
    """
    fields: dict[int, str | None] = {}
    for value in desired.due:
        field_id = int(value.destination.key)
        current = ticket.field(field_id)
        current_text = None if current in (None, "") else str(current)
        if current_text != value.text:
            fields[field_id] = value.text
    if desired.summary is not None:
        field_id, text = int(desired.summary[0]), desired.summary[1]
        if ticket.field(field_id) != text:
            fields[field_id] = text
    changes = desired.changes(ticket.priority, ticket.tags)
    update = TicketUpdate(
        custom_fields=fields,
        priority=None if changes.priority is None else str(changes.priority),
        additional_tags=changes.add,
        remove_tags=changes.remove,
        note=desired.note_to_post(posted_note),
    )
    return None if update.is_empty else update
