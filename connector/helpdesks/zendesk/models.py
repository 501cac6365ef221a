"""Typed values of the Zendesk API: what the client reads, and what the writer asks for.

Wire models are frozen and ignore unknown keys, so a Zendesk release that adds attributes
changes nothing here. They keep only the attributes the connector reads: a 1000-ticket export
page is parsed in one `model_validate_json` call on the body bytes, and every attribute kept
costs time on every ticket of every page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Annotated, Any, Generic, NamedTuple, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SkipValidation,
    field_validator,
)

from connector.helpdesks.wire import Malformed

__all__ = [
    "FINISHED_JOB_STATES",
    "CustomFieldValue",
    "EventStatus",
    "EventsPage",
    "ExportPage",
    "FieldOption",
    "FieldValue",
    "FieldsPage",
    "JobResult",
    "JobStatus",
    "MetricSet",
    "Minutes",
    "Organization",
    "OrganizationField",
    "Ticket",
    "TicketField",
    "TicketPage",
    "TicketUpdate",
    "TicketWrite",
]

# What a custom ticket field holds on the wire: text, number, checkbox, a multiselect's tags.
FieldValue = str | int | float | bool | list[str] | None

# Documented job states; "killed" is not in every reference version but Zendesk sends it.
FINISHED_JOB_STATES = frozenset({"completed", "failed", "killed"})


# An instant as sent, within the years Python can hold in UTC: `0001-01-01T00:00+01:00` parses,
# but converting or printing it overflows. Checked by pydantic's own comparison (no Python
# validator on the hot path of a page): anything outside is a malformed response.
WireInstant = Annotated[
    AwareDatetime,
    Field(gt=datetime(1, 1, 2, tzinfo=UTC), lt=datetime(9999, 12, 30, tzinfo=UTC)),
]


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


def _none_as_empty(value: Any) -> Any:
    # Zendesk sends `null` for some empty lists (job results, field options): same meaning.
    # Never on the hot path of a ticket page: a "before" validator makes pydantic build the
    # Python objects first and validate them again, which doubled the parse time of a page.
    return () if value is None else value


@dataclass(frozen=True, slots=True)
class CustomFieldValue:
    """One custom field of a ticket: its id and its value as Zendesk sends it.

    A dataclass, not a model, and the value is not re-validated: a recorded page carries
    about 40 custom fields a ticket, and validating them as models of a union made parsing a
    1000-ticket page four times slower. JSON can only yield the types of `FieldValue` here
    (or an object, which no field type sends). Read values with `Ticket.field(id)`.
    """

    id: int
    value: Annotated[FieldValue, SkipValidation] = None


class Ticket(_Wire):
    """The attributes of a ticket the connector reads."""

    id: int
    created_at: WireInstant
    updated_at: WireInstant
    generated_timestamp: int | None = None
    status: str
    # With custom statuses: the specific status (`status` holds its category). Zendesk has
    # been seen sending it as a number and as a string of digits.
    custom_status_id: int | None = None
    priority: str | None = None
    organization_id: int | None = None
    requester_id: int | None = None
    tags: tuple[str, ...] = ()
    custom_fields: tuple[CustomFieldValue, ...] = ()

    @cached_property
    def _fields_by_id(self) -> dict[int, FieldValue]:
        return {field.id: field.value for field in self.custom_fields}

    def field(self, field_id: int) -> FieldValue:
        """The value of custom field `field_id`; None when empty or not on this ticket."""
        return self._fields_by_id.get(field_id)


class Organization(_Wire):
    """An organization (the customer) with its custom fields, keyed by field key."""

    id: int
    name: str
    external_id: str | None = None
    tags: tuple[str, ...] = ()
    # The value types depend on each account's field definitions: checked by the mapping.
    organization_fields: dict[str, Any] = Field(default_factory=dict)


class Minutes(_Wire):
    """A Zendesk duration metric: calendar and business minutes, each unknown until it ends."""

    calendar: int | None = None
    business: int | None = None


class MetricSet(_Wire):
    """The SLA-relevant metrics Zendesk keeps for one ticket."""

    ticket_id: int
    solved_at: WireInstant | None = None
    status_updated_at: WireInstant | None = None
    reply_time_in_minutes: Minutes | None = None

    def first_reply_at(self, created_at: datetime) -> datetime | None:
        """When the first agent reply went out, or None before it did.

        Zendesk gives only the reply time in whole calendar minutes, not the instant, so the
        result is `created_at` plus those minutes: exact to the minute, not to the second.
        """
        minutes = (
            None if self.reply_time_in_minutes is None else self.reply_time_in_minutes.calendar
        )
        return None if minutes is None else created_at + timedelta(minutes=minutes)


class TicketPage(_Wire):
    """Tickets with their sideloaded organizations and metric sets."""

    tickets: tuple[Ticket, ...] = ()
    organizations: tuple[Organization, ...] = ()
    metric_sets: tuple[MetricSet, ...] = ()
    # The tickets of the page that did not read (not a field of Zendesk's: filled by sansio).
    malformed: tuple[Malformed, ...] = ()

    @cached_property
    def _organizations_by_id(self) -> Mapping[int, Organization]:
        return {organization.id: organization for organization in self.organizations}

    @cached_property
    def _metric_sets_by_ticket(self) -> Mapping[int, MetricSet]:
        return {metric_set.ticket_id: metric_set for metric_set in self.metric_sets}

    def organization_for(self, ticket: Ticket) -> Organization | None:
        """The sideloaded organization of `ticket`, if it has one and it came along."""
        if ticket.organization_id is None:
            return None
        return self._organizations_by_id.get(ticket.organization_id)

    def metric_set_for(self, ticket: Ticket) -> MetricSet | None:
        """The sideloaded metric set of `ticket`, if it came along."""
        return self._metric_sets_by_ticket.get(ticket.id)


class ExportPage(TicketPage):
    """One page of the cursor-based incremental ticket export."""

    after_cursor: str | None = None
    end_of_stream: bool


@dataclass(frozen=True, slots=True)
class EventStatus:
    """One audit's status change: Zendesk's status (its category) and/or custom status id."""

    ticket_id: int
    at: int  # epoch seconds
    status: str | None
    custom_status_id: str | None


@dataclass(frozen=True, slots=True)
class EventsPage:
    """One page of the ticket events export: its status changes, and where it ends."""

    changes: tuple[EventStatus, ...]
    end_time: int | None
    end_of_stream: bool


class FieldOption(_Wire):
    """One option of a drop-down (or system) field: the title agents see and its tag."""

    name: str
    value: str


class _Field(_Wire):
    id: int
    type: str
    title: str
    active: bool = True
    # Custom drop-downs list `custom_field_options`, status, priority and type list
    # `system_field_options`; the other list is empty, null or absent.
    custom_field_options: tuple[FieldOption, ...] = ()
    system_field_options: tuple[FieldOption, ...] = ()

    _empty = field_validator("custom_field_options", "system_field_options", mode="before")(
        _none_as_empty
    )

    @property
    def options(self) -> tuple[FieldOption, ...]:
        """The options of a drop-down or system field; () for free-form fields."""
        return self.custom_field_options + self.system_field_options


F = TypeVar("F", bound=_Field)


class TicketField(_Field):
    """A ticket field definition, as `check` compares it with a mapping file."""


class OrganizationField(_Field):
    """An organization field definition; organizations carry its values under `key`."""

    key: str


class FieldsPage(_Wire, Generic[F]):
    """One page of field definitions and the cursor to the next page, if any."""

    fields: tuple[F, ...]
    after_cursor: str | None = None


class JobResult(_Wire):
    """What a background job did to one ticket."""

    id: int | None = None
    action: str | None = None
    success: bool = False
    status: str | None = None
    error: str | None = None
    details: str | None = None


class JobStatus(_Wire):
    """A background job (such as update_many) and, once it ran, its per-ticket results."""

    id: str
    status: str  # queued, working, completed, failed or killed
    progress: int | None = None
    total: int | None = None
    message: str | None = None
    results: tuple[JobResult, ...] = ()

    _empty = field_validator("results", mode="before")(_none_as_empty)

    @property
    def finished(self) -> bool:
        """Whether the job stopped and will not change any more."""
        return self.status in FINISHED_JOB_STATES

    @property
    def succeeded(self) -> tuple[JobResult, ...]:
        """The per-ticket results that worked."""
        return tuple(result for result in self.results if result.success)

    @property
    def failed(self) -> tuple[JobResult, ...]:
        """The per-ticket results that did not (a safe-update conflict, a refused value...)."""
        return tuple(result for result in self.results if not result.success)


class TicketUpdate(BaseModel):
    """The change the writer asks for on one ticket; None and () leave things as they are.

    The note is a private comment sent in the same request as the fields, so the fields and
    the note land together or not at all.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    custom_fields: dict[int, str | None] = Field(default_factory=dict)  # None clears
    priority: str | None = None
    additional_tags: tuple[str, ...] = ()
    remove_tags: tuple[str, ...] = ()
    note: str | None = None

    @property
    def is_empty(self) -> bool:
        """Whether sending this would change nothing."""
        return not (
            self.custom_fields
            or self.priority is not None
            or self.additional_tags
            or self.remove_tags
            or self.note
        )


class TicketWrite(NamedTuple):
    """One entry of a batch update: the ticket, its change and its `updated_at` as read."""

    ticket_id: int
    update: TicketUpdate
    updated_stamp: datetime
