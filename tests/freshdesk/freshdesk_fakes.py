"""Test helpers for the Freshdesk client: a fake clock, a shell, and a fake ticket list."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from connector.helpdesks.freshdesk import ApiKeyCredentials, FreshdeskClient
from connector.http import HttpShell
from connector.timeutil import format_instant, parse_instant
from tests.fakes import FakeTime

__all__ = [
    "API_KEY",
    "BASE",
    "FIXTURES",
    "NOW",
    "PAGE_REFUSED",
    "FakeTicketList",
    "FakeTime",
    "client_for",
    "fixture",
    "ticket_json",
]

FIXTURES = Path(__file__).parent / "fixtures"
BASE = "https://acme.freshdesk.com"
API_KEY = "canary-KEY-4f7d1c0e9b"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)

# Freshdesk's refusal of page 301, as recorded in airbyte's tests and issue 3858.
PAGE_REFUSED = {
    "description": "Validation failed",
    "errors": [
        {
            "field": "page",
            "message": "You cannot access tickets beyond the 300th page. "
            "Please provide a smaller page number.",
            "code": "invalid_value",
        }
    ],
}


def fixture(name: str) -> bytes:
    """The bytes of a recorded payload."""
    return (FIXTURES / name).read_bytes()


def client_for(time: FakeTime, base_url: str = BASE) -> FreshdeskClient:
    """A client on a real `httpx.Client` (respx intercepts it) with a fake clock."""
    shell = HttpShell(
        httpx.Client(),
        credentials=ApiKeyCredentials(API_KEY),
        sleep=time.sleep,
        clock=time.clock,
        wall_clock=lambda: NOW,
        rng=random.Random(7),
    )
    return FreshdeskClient(shell, base_url)


def ticket_json(
    ticket_id: int,
    updated_at: datetime,
    *,
    created_at: datetime | None = None,
    status: int = 2,
    **extra: Any,
) -> dict[str, Any]:
    """A list entry shaped like the recorded pages, with only what the tests vary."""
    created = created_at or updated_at
    return {
        "id": ticket_id,
        "created_at": format_instant(created),
        "updated_at": format_instant(updated_at),
        "status": status,
        "priority": 1,
        "company_id": None,
        "requester_id": 69005244534,
        "tags": [],
        "custom_fields": {},
        "fr_due_by": None,
        "due_by": None,
        "stats": {"first_responded_at": None, "resolved_at": None},
        **extra,
    }


class FakeTicketList:
    """`GET /api/v2/tickets` as Freshdesk serves it: filter, sort, pages, `Link`, page cap.

    `updated_since` is inclusive; pages past `max_page` are refused with Freshdesk's 400.
    """

    def __init__(self, tickets: list[dict[str, Any]], max_page: int = 300) -> None:
        self.tickets = tickets
        self.max_page = max_page
        self.requests: list[dict[str, str]] = []

    def touch(self, ticket_id: int, updated_at: datetime) -> None:
        """An agent (or the connector) changes a ticket: it moves to the end of the order."""
        for ticket in self.tickets:
            if ticket["id"] == ticket_id:
                ticket["updated_at"] = format_instant(updated_at)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        self.requests.append(params)
        page, per_page = int(params["page"]), int(params["per_page"])
        if page > self.max_page:
            return httpx.Response(400, json=PAGE_REFUSED)
        since = parse_instant(params["updated_since"])
        rows = sorted(
            (t for t in self.tickets if parse_instant(t["updated_at"]) >= since),
            key=lambda t: (t["updated_at"], t["id"]),
        )
        chunk = rows[(page - 1) * per_page : page * per_page]
        headers = {"X-RateLimit-Total": "700", "X-RateLimit-Remaining": "650"}
        if len(rows) > page * per_page:
            headers["Link"] = f'<{request.url.copy_set_param("page", page + 1)}>; rel="next"'
        return httpx.Response(200, content=json.dumps(chunk).encode(), headers=headers)
