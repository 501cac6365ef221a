"""Zendesk: typed models, the sans-I/O protocol, credentials and the client over the shell."""

from connector.helpdesks.zendesk.auth import ApiTokenCredentials, OAuthCredentials, OAuthTokens
from connector.helpdesks.zendesk.client import ZendeskClient
from connector.helpdesks.zendesk.models import (
    CustomFieldValue,
    ExportPage,
    FieldOption,
    FieldsPage,
    FieldValue,
    JobResult,
    JobStatus,
    MetricSet,
    Minutes,
    Organization,
    OrganizationField,
    Ticket,
    TicketField,
    TicketPage,
    TicketUpdate,
    TicketWrite,
)
from connector.helpdesks.zendesk.sansio import base_url_for

__all__ = [
    "ApiTokenCredentials",
    "CustomFieldValue",
    "ExportPage",
    "FieldOption",
    "FieldValue",
    "FieldsPage",
    "JobResult",
    "JobStatus",
    "MetricSet",
    "Minutes",
    "OAuthCredentials",
    "OAuthTokens",
    "Organization",
    "OrganizationField",
    "Ticket",
    "TicketField",
    "TicketPage",
    "TicketUpdate",
    "TicketWrite",
    "ZendeskClient",
    "base_url_for",
]
