"""The sandbox's Freshdesk API as a client sees it: paging, validation, notes, limits."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from connector.sandbox import FRESHDESK_URL, ManualClock, Sandbox, SeedTicket
from tests.sandbox.conftest import FRESHDESK_AUTH, START

SINCE = {"updated_since": "2026-01-01T00:00:00Z", "order_by": "updated_at", "order_type": "asc"}


def put(freshdesk: httpx.Client, ticket_id: int, **changes: Any) -> httpx.Response:
    return freshdesk.put(f"/api/v2/tickets/{ticket_id}", json=changes)


def errors(response: httpx.Response) -> list[tuple[str, str]]:
    body = response.json()
    assert body["description"] == "Validation failed"
    return [(e["field"], e["code"]) for e in body["errors"]]


def test_list_follows_the_link_header_to_the_end(freshdesk: httpx.Client) -> None:
    response = freshdesk.get("/api/v2/tickets", params={**SINCE, "per_page": 10})
    seen: list[dict[str, Any]] = []
    pages = 0
    while True:
        assert response.status_code == 200
        seen += response.json()
        pages += 1
        if "next" not in response.links:
            break
        response = freshdesk.get(response.links["next"]["url"])
    assert pages == 3
    assert len({t["id"] for t in seen}) == len(seen) == 27
    stamps = [t["updated_at"] for t in seen]
    assert stamps == sorted(stamps)


def test_page_301_is_refused_with_the_services_body(freshdesk: httpx.Client) -> None:
    response = freshdesk.get("/api/v2/tickets", params={**SINCE, "page": 301})
    assert response.status_code == 400
    assert response.json() == {
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
    assert freshdesk.get("/api/v2/tickets", params={**SINCE, "page": 300}).json() == []


def test_per_page_is_at_most_100(freshdesk: httpx.Client) -> None:
    response = freshdesk.get("/api/v2/tickets", params={**SINCE, "per_page": 101})
    assert errors(response) == [("per_page", "invalid_value")]


def test_without_updated_since_only_the_last_30_days(
    sandbox: Sandbox, freshdesk: httpx.Client
) -> None:
    old = SeedTicket(7777, "Old ticket", START - timedelta(days=40), 101, severity="sev3")
    sandbox.seed([old], customers=())

    recent = {t["id"] for t in freshdesk.get("/api/v2/tickets", params={"per_page": 100}).json()}
    assert 7777 not in recent
    params = {"updated_since": "2026-01-01T00:00:00Z", "per_page": 100}
    since = {t["id"] for t in freshdesk.get("/api/v2/tickets", params=params).json()}
    assert 7777 in since


def test_updated_since_filters_on_updated_at(freshdesk: httpx.Client, clock: ManualClock) -> None:
    clock.advance(60)
    put(freshdesk, 1005, priority=3)
    response = freshdesk.get(
        "/api/v2/tickets", params={**SINCE, "updated_since": "2026-03-02T09:01:00Z"}
    )
    assert [t["id"] for t in response.json()] == [1005]


def test_include_stats_costs_two_more_credits(freshdesk: httpx.Client) -> None:
    plain = freshdesk.get("/api/v2/tickets", params=SINCE)
    assert "stats" not in plain.json()[0]
    assert plain.headers["X-RateLimit-Used-CurrentRequest"] == "1"

    with_stats = freshdesk.get("/api/v2/tickets", params={**SINCE, "include": "stats"})
    assert with_stats.headers["X-RateLimit-Used-CurrentRequest"] == "3"
    answered = next(t for t in with_stats.json() if t["id"] == 1002)
    assert answered["stats"]["first_responded_at"] == "2026-03-01T05:00:00Z"


def test_show_with_stats_and_missing_ticket(freshdesk: httpx.Client) -> None:
    ticket = freshdesk.get("/api/v2/tickets/1003", params={"include": "stats"}).json()
    assert ticket["status"] == 4
    assert ticket["stats"]["resolved_at"] is not None
    assert ticket["custom_fields"]["cf_sla_severity"] == "sev3"
    assert freshdesk.get("/api/v2/tickets/424242").status_code == 404


def test_due_dates_are_written_and_tags_replaced(freshdesk: httpx.Client) -> None:
    response = put(
        freshdesk,
        1001,
        fr_due_by="2026-03-03T08:15:00Z",
        due_by="2026-03-04T16:00:00Z",
        priority=4,
        tags=["sla_photoprism", "sla_sev1"],
    )
    assert response.status_code == 200
    ticket = response.json()
    assert (ticket["fr_due_by"], ticket["due_by"]) == (
        "2026-03-03T08:15:00Z",
        "2026-03-04T16:00:00Z",
    )
    assert ticket["tags"] == ["sla_photoprism", "sla_sev1"]
    assert put(freshdesk, 1001, tags=["vip"]).json()["tags"] == ["vip"]


def test_due_dates_before_created_at_are_refused(freshdesk: httpx.Client) -> None:
    response = put(freshdesk, 1001, fr_due_by="2026-01-01T00:00:00Z")
    assert errors(response) == [("fr_due_by", "invalid_value")]


def test_first_response_due_may_not_pass_resolution_due(freshdesk: httpx.Client) -> None:
    both = put(freshdesk, 1001, fr_due_by="2026-03-05T00:00:00Z", due_by="2026-03-04T00:00:00Z")
    assert errors(both) == [("fr_due_by", "invalid_value")]
    # The seeded fr_due_by is created + 1 day: a due_by before it is the culprit.
    alone = put(freshdesk, 1001, due_by="2026-03-02T04:00:00Z")
    assert errors(alone) == [("due_by", "invalid_value")]


def test_due_dates_are_refused_while_the_sla_timer_is_stopped(freshdesk: httpx.Client) -> None:
    pending = put(freshdesk, 5007, fr_due_by="2026-03-03T08:00:00Z")
    assert errors(pending) == [("fr_due_by", "incompatible_field")]
    resolving = put(freshdesk, 1001, status=4, due_by="2026-03-09T08:00:00Z")
    assert errors(resolving) == [("due_by", "incompatible_field")]


def test_other_validation_rules(freshdesk: httpx.Client) -> None:
    long_tag = "x" * 33
    response = put(
        freshdesk,
        1001,
        tags=["ok", long_tag],
        priority=7,
        custom_fields={"cf_sla_severity": "sev9", "cf_unknown": 1},
        responder_email="someone@example.com",
    )
    assert sorted(errors(response)) == sorted(
        [
            ("responder_email", "invalid_field"),
            ("priority", "invalid_value"),
            ("tags", "invalid_value"),
            ("cf_sla_severity", "invalid_value"),
            ("cf_unknown", "invalid_field"),
        ]
    )
    assert freshdesk.get("/api/v2/tickets/1001").json()["priority"] == 4  # nothing applied


def test_notes_and_conversations(freshdesk: httpx.Client, clock: ManualClock) -> None:
    clock.advance(120)
    created = freshdesk.post(
        "/api/v2/tickets/1002/notes", json={"body": "SLA note", "private": True}
    )
    assert created.status_code == 201
    assert (created.json()["private"], created.json()["body_text"]) == (True, "SLA note")

    thread = freshdesk.get("/api/v2/tickets/1002/conversations").json()
    assert [(n["private"], n["source"]) for n in thread] == [(False, 0), (True, 2)]
    missing = freshdesk.post("/api/v2/tickets/1002/notes", json={"private": True})
    assert errors(missing) == [("body", "missing_field")]
    assert freshdesk.get("/api/v2/tickets/1002").json()["updated_at"] == "2026-03-02T09:02:00Z"


def test_companies_list_pages_and_carry_the_mapping_fields(freshdesk: httpx.Client) -> None:
    first = freshdesk.get("/api/v2/companies", params={"per_page": 5})
    assert len(first.json()) == 5
    assert "next" in first.links
    company = freshdesk.get("/api/v2/companies/301").json()
    assert company["custom_fields"]["sla_region"] == "north_america"
    assert company["custom_fields"]["sla_contract"] == "pix4dengine-enterprise"
    assert freshdesk.get("/api/v2/companies/4242").status_code == 404


def test_ticket_fields_name_the_custom_fields(freshdesk: httpx.Client) -> None:
    fields = {f["name"]: f for f in freshdesk.get("/api/v2/ticket_fields").json()}
    assert fields["cf_sla_severity"]["type"] == "custom_dropdown"
    assert "sev1" in fields["cf_sla_severity"]["choices"]
    assert fields["cf_images"]["type"] == "custom_number"


def test_wrong_api_key_gets_freshdesks_401(sandbox: Sandbox) -> None:
    with httpx.Client(
        transport=sandbox.freshdesk_transport(), base_url=FRESHDESK_URL, auth=("nope", "X")
    ) as client:
        response = client.get("/api/v2/tickets/1001")
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_credentials"


def test_enforced_rate_limit_counts_credits(clock: ManualClock) -> None:
    sandbox = Sandbox.seeded(clock=clock, rate_limit=5)
    with httpx.Client(
        transport=sandbox.freshdesk_transport(), base_url=FRESHDESK_URL, auth=FRESHDESK_AUTH
    ) as client:
        first = client.get("/api/v2/tickets", params={**SINCE, "include": "stats"})
        assert (first.headers["X-RateLimit-Total"], first.headers["X-RateLimit-Remaining"]) == (
            "5.0",
            "2.0",
        )
        refused = client.get("/api/v2/tickets", params={**SINCE, "include": "stats"})
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "60"
        assert client.get("/api/v2/tickets/1001").status_code == 200  # one credit was left
