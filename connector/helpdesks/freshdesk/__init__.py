"""Freshdesk API v2: typed models, the sans-I/O protocol and the client on the HTTP shell."""

from connector.helpdesks.freshdesk.client import FreshdeskClient
from connector.helpdesks.freshdesk.models import (
    Company,
    CompanyField,
    CustomValue,
    Note,
    Stats,
    Ticket,
    TicketField,
    TicketUpdate,
)
from connector.helpdesks.freshdesk.sansio import (
    MAX_PAGE,
    TAG_MAX_LENGTH,
    TIMER_STOPPING_STATUSES,
    ApiKeyCredentials,
    PollPosition,
    TicketPoller,
    base_url_for,
    check_due_dates,
    check_tags,
)

__all__ = [
    "MAX_PAGE",
    "TAG_MAX_LENGTH",
    "TIMER_STOPPING_STATUSES",
    "ApiKeyCredentials",
    "Company",
    "CompanyField",
    "CustomValue",
    "FreshdeskClient",
    "Note",
    "PollPosition",
    "Stats",
    "Ticket",
    "TicketField",
    "TicketPoller",
    "TicketUpdate",
    "base_url_for",
    "check_due_dates",
    "check_tags",
]
