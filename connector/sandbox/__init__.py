"""A local Zendesk + Freshdesk API for demos, tests and load runs (see `Sandbox`)."""

from connector.sandbox.faults import Fault, FaultBook, FaultKind
from connector.sandbox.sandbox import (
    FRESHDESK_URL,
    ZENDESK_URL,
    ManualClock,
    OffsetClock,
    Sandbox,
    SandboxCredentials,
)
from connector.sandbox.seed import CUSTOMERS, SeedCustomer, SeedTicket, bundled_tickets, generate
from connector.sandbox.server import SandboxServer
from connector.sandbox.wsgi import Counters, RequestCount, SandboxTransport
from connector.sandbox.zendesk import OAuthTokens

__all__ = [
    "CUSTOMERS",
    "FRESHDESK_URL",
    "ZENDESK_URL",
    "Counters",
    "Fault",
    "FaultBook",
    "FaultKind",
    "ManualClock",
    "OAuthTokens",
    "OffsetClock",
    "RequestCount",
    "Sandbox",
    "SandboxCredentials",
    "SandboxServer",
    "SandboxTransport",
    "SeedCustomer",
    "SeedTicket",
    "bundled_tickets",
    "generate",
]
