"""Freshdesk API v2 values as the connector reads and writes them.

These are the wire edge: each model ignores the many attributes Freshdesk sends that the
connector does not use, so a new attribute on Freshdesk's side never breaks a poll. Instants are
aware (`AwareDatetime`): Freshdesk sends UTC with `Z`, and a naive value would be a bug on the
way in. Pages are parsed straight from the body bytes with the `*_LIST` adapters below
(`validate_json`), which is several times faster than `json.loads` followed by validation.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AliasChoices, AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

__all__ = [
    "COMPANY_FIELD_LIST",
    "COMPANY_LIST",
    "NOTE_LIST",
    "TICKET_FIELD_LIST",
    "TICKET_LIST",
    "Company",
    "CompanyField",
    "CustomValue",
    "Note",
    "Stats",
    "Ticket",
    "TicketField",
    "TicketUpdate",
]

# What a ticket custom field holds: text, number, decimal, checkbox, date (as "YYYY-MM-DD" text),
# dropdown (its label as text), a multi-select (its labels), or nothing.
CustomValue = str | int | float | bool | list[str] | None

_WIRE = ConfigDict(frozen=True, extra="ignore")
# An instant as sent, within the years Python can hold in UTC: `0001-01-01T00:00+01:00` parses,
# but converting or printing it overflows. Checked by pydantic's own comparison (no Python
# validator on the hot path of a page): anything outside is a malformed response.
WireInstant = Annotated[
    AwareDatetime,
    Field(gt=datetime(1, 1, 2, tzinfo=UTC), lt=datetime(9999, 12, 30, tzinfo=UTC)),
]


class Stats(BaseModel):
    """The `stats` block of a ticket (`include=stats`): when the ticket's milestones happened."""

    model_config = _WIRE

    first_responded_at: WireInstant | None = None
    agent_responded_at: WireInstant | None = None
    requester_responded_at: WireInstant | None = None
    resolved_at: WireInstant | None = None
    closed_at: WireInstant | None = None
    pending_since: WireInstant | None = None
    status_updated_at: WireInstant | None = None


class Ticket(BaseModel):
    """One Freshdesk ticket, as listed (`GET /api/v2/tickets`) or shown.

    `status` is 2 open, 3 pending, 4 resolved, 5 closed, or an account's custom status id;
    `priority` is 1 low, 2 medium, 3 high, 4 urgent.
    """

    model_config = _WIRE

    id: int
    created_at: WireInstant
    updated_at: WireInstant
    status: int
    priority: int
    company_id: int | None = None
    requester_id: int | None = None
    # The documented list example (docs fixture) leaves `tags` out altogether.
    tags: list[str] = Field(default_factory=list)
    # Kept as sent, whatever the type: a value the mapping cannot read makes that one ticket
    # unmapped (`connector.helpdesks.mapping`), where a stricter model here would refuse the
    # whole page and hold up every other ticket on it.
    custom_fields: dict[str, Any] = Field(default_factory=dict)
    fr_due_by: WireInstant | None = None
    due_by: WireInstant | None = None
    stats: Stats | None = None


class Company(BaseModel):
    """A Freshdesk company; `custom_fields` holds whatever the account defined, keyed by name."""

    model_config = _WIRE

    id: int
    name: str
    custom_fields: dict[str, Any] = Field(default_factory=dict)
    domains: list[str] = Field(default_factory=list)


class TicketField(BaseModel):
    """One field definition (`GET /api/v2/ticket_fields`), for `check` to find mapped fields.

    `choices` keeps Freshdesk's shape, which differs by field type (a list of labels for a
    dropdown, a mapping for `status`, nested mappings for dependent fields).
    """

    model_config = _WIRE

    id: int
    name: str
    label: str | None = None
    # Custom company fields say `type`; the default ones of the docs example say `field_type`.
    type: str | None = Field(default=None, validation_alias=AliasChoices("type", "field_type"))
    choices: list[Any] | dict[str, Any] | None = None


class CompanyField(TicketField):
    """One company field definition (`GET /api/v2/company_fields`): same shape as a ticket's."""


class Note(BaseModel):
    """A conversation entry on a ticket; the connector only writes private notes."""

    model_config = _WIRE

    body: str
    body_text: str | None = None
    private: bool = True
    id: int | None = None
    ticket_id: int | None = None
    created_at: WireInstant | None = None


class TicketUpdate(BaseModel):
    """The change the connector wants on one ticket; only what is set is sent.

    `tags` is the WHOLE new tag list, because `PUT /api/v2/tickets/{id}` replaces the tags: the
    writer merges the agents' tags in before building this. `dropped` tells why
    `check_due_dates` removed due dates from the update; it is never sent.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    fr_due_by: AwareDatetime | None = None
    due_by: AwareDatetime | None = None
    priority: int | None = Field(default=None, ge=1, le=4)
    tags: tuple[str, ...] | None = None
    custom_fields: dict[str, CustomValue] = Field(default_factory=dict)
    dropped: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        """Whether there is nothing to send."""
        return (
            self.fr_due_by is None
            and self.due_by is None
            and self.priority is None
            and self.tags is None
            and not self.custom_fields
        )


TICKET_LIST: TypeAdapter[list[Ticket]] = TypeAdapter(list[Ticket])
COMPANY_LIST: TypeAdapter[list[Company]] = TypeAdapter(list[Company])
TICKET_FIELD_LIST: TypeAdapter[list[TicketField]] = TypeAdapter(list[TicketField])
COMPANY_FIELD_LIST: TypeAdapter[list[CompanyField]] = TypeAdapter(list[CompanyField])
NOTE_LIST: TypeAdapter[list[Note]] = TypeAdapter(list[Note])
