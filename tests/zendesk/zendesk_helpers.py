"""Test data and a fake clock for the Zendesk tests (imported by the test modules)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from connector.helpdesks.zendesk import ZendeskClient

BASE = "https://acme.zendesk.com"
FIXTURES = Path(__file__).parent / "fixtures"

MakeClient = Callable[..., ZendeskClient]


@dataclass
class FakeTime:
    """Monotonic and wall clocks that move only when the shell sleeps."""

    monotonic: float = 1000.0
    start: datetime = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.monotonic

    def wall(self) -> datetime:
        return self.start + timedelta(seconds=self.monotonic - 1000.0)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.monotonic += seconds


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def ticket_json(ticket_id: int, organization_id: int | None = 7, **extra: Any) -> dict[str, Any]:
    """A ticket as the export sends it, with the attributes the connector reads and a few more."""
    body: dict[str, Any] = {
        "url": f"{BASE}/api/v2/tickets/{ticket_id}.json",
        "id": ticket_id,
        "created_at": "2026-03-02T08:15:00Z",
        "updated_at": "2026-03-02T09:00:00Z",
        "generated_timestamp": 1772442000,
        "subject": "Photos not delivered",
        "status": "open",
        "priority": "high",
        "organization_id": organization_id,
        "requester_id": 42,
        "tags": ["photoprism", "vip"],
        "custom_fields": [
            {"id": 9100001, "value": "severity_sev1"},
            {"id": 9100005, "value": "35"},
            {"id": 9100006, "value": True},
            {"id": 9100101, "value": None},
        ],
        "fields": [{"id": 9100001, "value": "severity_sev1"}],
    }
    body.update(extra)
    return body


def export_body(
    ticket_ids: list[int], *, after_cursor: str | None, end_of_stream: bool
) -> dict[str, Any]:
    """A cursor export page with `include=organizations,metric_sets` sideloads."""
    return {
        "tickets": [ticket_json(i) for i in ticket_ids],
        "organizations": [
            {
                "id": 7,
                "name": "Lausanne Photo SA",
                "external_id": "org-17",
                "tags": ["gold"],
                "organization_fields": {"sla_contract": "photoprism", "seats": 12},
                "domain_names": ["example.com"],
            }
        ],
        "metric_sets": [
            {
                "id": 1000 + i,
                "ticket_id": i,
                "solved_at": None,
                "replies": 1,
                "reply_time_in_minutes": {"calendar": 95, "business": 45},
            }
            for i in ticket_ids
        ],
        "after_url": None if after_cursor is None else f"{BASE}/api/v2/x?cursor={after_cursor}",
        "after_cursor": after_cursor,
        "before_url": None,
        "before_cursor": None,
        "end_of_stream": end_of_stream,
    }


def json_response(status: int, body: Any, **headers: str) -> httpx.Response:
    return httpx.Response(
        status,
        content=json.dumps(body).encode(),
        headers={"content-type": "application/json; charset=utf-8", **headers},
    )
