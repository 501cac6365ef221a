"""The Freshdesk client over HTTP (respx): every call, its errors, retries, pacing, the poll."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import respx
from freshdesk_fakes import (
    API_KEY,
    BASE,
    FakeTicketList,
    FakeTime,
    client_for,
    fixture,
    ticket_json,
)

from connector.errors import (
    AuthError,
    MalformedResponse,
    NotAvailable,
    NotFound,
    RateLimited,
    ValidationFailed,
)
from connector.helpdesks.freshdesk import (
    FreshdeskClient,
    PollPosition,
    TicketPoller,
    TicketUpdate,
)

TICKET = fixture("ticket_with_due_dates_stats_custom_fields.json")


@pytest.fixture
def time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def client(time: FakeTime) -> FreshdeskClient:
    return client_for(time)


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


# --- each call -------------------------------------------------------------------------------


def test_show_asks_for_stats_with_the_api_key(
    client: FreshdeskClient, api: respx.MockRouter
) -> None:
    route = api.get("/api/v2/tickets/1", params={"include": "stats"}).respond(200, content=TICKET)
    ticket = client.show(1)
    assert ticket.stats is not None
    sent = route.calls.last.request
    assert sent.headers["Authorization"] == "Basic " + base64.b64encode(
        f"{API_KEY}:X".encode()
    ).decode("ascii")


def test_update_sends_only_the_changes_and_returns_the_stored_ticket(
    client: FreshdeskClient, api: respx.MockRouter
) -> None:
    route = api.put("/api/v2/tickets/1").respond(
        200, content=fixture("ticket_updated_put_response.json")
    )
    stored = client.update(1, TicketUpdate(priority=3, tags=("hello", "world")))
    assert json.loads(route.calls.last.request.content) == {
        "priority": 3,
        "tags": ["hello", "world"],
    }
    assert stored.tags == ["hello", "world"]


def test_a_tag_too_long_never_reaches_freshdesk(
    client: FreshdeskClient, api: respx.MockRouter
) -> None:
    route = api.put("/api/v2/tickets/1").respond(200, content=TICKET)
    with pytest.raises(ValidationFailed, match="at most 32"):
        client.update(1, TicketUpdate(tags=("sla_" + "x" * 29,)))
    assert not route.called


def test_add_note_posts_a_private_escaped_body(
    client: FreshdeskClient, api: respx.MockRouter
) -> None:
    route = api.post("/api/v2/tickets/1/notes").respond(201, content=fixture("private_note.json"))
    note = client.add_note(1, "SLA: first response due 09:00 <Berlin>")
    assert note.private is True
    assert json.loads(route.calls.last.request.content) == {
        "body": "SLA: first response due 09:00 &lt;Berlin&gt;",
        "private": True,
    }


def test_company_companies_and_field_definitions(
    client: FreshdeskClient, api: respx.MockRouter
) -> None:
    api.get("/api/v2/companies/1").respond(200, content=fixture("company_with_custom_fields.json"))
    page2 = api.get("/api/v2/companies", params={"page": "2"}).respond(
        200, json=[{"id": 3, "name": "Kraken", "custom_fields": {"sla_plan": "gold"}}]
    )
    api.get("/api/v2/companies", params={"page": "1", "per_page": "100"}).respond(
        200,
        content=fixture("companies_list.json"),
        headers={"Link": f'<{BASE}/api/v2/companies?per_page=100&page=2>; rel="next"'},
    )
    # Hand-written: no recorded ticket_fields list was found under a permissive licence.
    api.get("/api/v2/ticket_fields").respond(
        200,
        json=[
            {"id": 1, "name": "cf_sla_severity", "label": "Severity", "type": "custom_dropdown",
             "choices": ["sev1", "sev2"]},
            {"id": 2, "name": "status", "label": "Status", "type": "default_status",
             "choices": {"2": ["Open", "Being Processed"]}},
        ],
    )  # fmt: skip
    api.get("/api/v2/company_fields").respond(200, content=fixture("company_fields_list.json"))

    assert client.company(1).custom_fields["website"] == "https://www.supernova.org"
    assert [c.name for c in client.companies()] == ["Super Nova", "Poseidon", "Kraken"]
    assert page2.call_count == 1
    fields = {f.name: f for f in client.ticket_fields()}
    assert fields["cf_sla_severity"].choices == ["sev1", "sev2"]
    assert "domains" in {f.name for f in client.company_fields()}


# --- errors, retries and pacing --------------------------------------------------------------


def test_429_with_retry_after_waits_that_long_then_succeeds(
    client: FreshdeskClient, api: respx.MockRouter, time: FakeTime
) -> None:
    api.get("/api/v2/tickets/1").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "7"}),
            httpx.Response(200, content=TICKET),
        ]
    )
    assert client.show(1).id == 1
    assert time.sleeps == [7.0]


def test_429_without_retry_after_backs_off_briefly_then_succeeds(
    client: FreshdeskClient, api: respx.MockRouter, time: FakeTime
) -> None:
    api.get("/api/v2/tickets/1").mock(
        side_effect=[httpx.Response(429), httpx.Response(200, content=TICKET)]
    )
    assert client.show(1).id == 1
    assert len(time.sleeps) == 1
    assert 0 <= time.sleeps[0] <= 0.5  # the first step of the jittered backoff


def test_429_that_never_ends_is_reported_as_rate_limited(
    client: FreshdeskClient, api: respx.MockRouter
) -> None:
    route = api.get("/api/v2/tickets/1").respond(429, headers={"Retry-After": "1"})
    with pytest.raises(RateLimited) as caught:
        client.show(1)
    assert caught.value.retry_after == 1.0
    assert route.call_count == client.shell.policy.attempts


def test_5xx_on_a_read_is_retried(
    client: FreshdeskClient, api: respx.MockRouter, time: FakeTime
) -> None:
    route = api.get("/api/v2/tickets/1").mock(
        side_effect=[httpx.Response(502), httpx.Response(200, content=TICKET)]
    )
    assert client.show(1).id == 1
    assert route.call_count == 2
    assert len(time.sleeps) == 1


def test_5xx_on_a_note_is_not_retried_since_it_may_have_landed(
    client: FreshdeskClient, api: respx.MockRouter
) -> None:
    route = api.post("/api/v2/tickets/1/notes").respond(503, text="upstream timeout")
    with pytest.raises(NotAvailable, match="upstream timeout"):
        client.add_note(1, "SLA note")
    assert route.call_count == 1


def test_validation_error_body_comes_back_as_field_errors(
    client: FreshdeskClient, api: respx.MockRouter
) -> None:
    api.put("/api/v2/tickets/1").respond(
        400,
        json={
            "description": "Validation failed",
            "errors": [
                {"field": "due_by", "message": "It should be a/an valid date",
                 "code": "invalid_value"},
                {"field": "cf_sla_severity", "message": "Unexpected/invalid field in request",
                 "code": "invalid_field"},
            ],
        },
    )  # fmt: skip
    with pytest.raises(ValidationFailed) as caught:
        client.update(1, TicketUpdate(priority=2))
    assert [(e.field, e.code) for e in caught.value.errors] == [
        ("due_by", "invalid_value"),
        ("cf_sla_severity", "invalid_field"),
    ]


def test_missing_ticket_is_not_found(client: FreshdeskClient, api: respx.MockRouter) -> None:
    api.get("/api/v2/tickets/404").respond(404)
    with pytest.raises(NotFound) as caught:
        client.show(404)
    assert caught.value.url == f"{BASE}/api/v2/tickets/404"


@pytest.mark.parametrize(
    "body", [b"<html>maintenance</html>", b'{"id": "not a number"}', b'[{"id": 1}]']
)
def test_malformed_success_body_is_reported_not_guessed(
    client: FreshdeskClient, api: respx.MockRouter, body: bytes
) -> None:
    api.get("/api/v2/tickets/1").respond(200, content=body)
    with pytest.raises(MalformedResponse, match="expected a JSON ticket"):
        client.show(1)


def test_bad_api_key_fails_once_and_never_shows_the_key(
    client: FreshdeskClient, api: respx.MockRouter
) -> None:
    route = api.get("/api/v2/tickets/1").respond(
        401, json={"code": "invalid_credentials", "message": "You have to be logged in"}
    )
    with pytest.raises(AuthError) as caught:
        client.show(1)
    assert route.call_count == 1
    assert API_KEY not in str(caught.value)
    assert API_KEY not in repr(caught.value.__dict__)
    assert API_KEY not in repr(client.shell.credentials)


def test_rate_limit_headers_pace_the_next_request(
    client: FreshdeskClient, api: respx.MockRouter, time: FakeTime
) -> None:
    api.get("/api/v2/tickets/1").mock(
        side_effect=[
            httpx.Response(200, content=TICKET, headers={"X-RateLimit-Total": "700",
                "X-RateLimit-Remaining": "3", "X-RateLimit-Used-CurrentRequest": "1"}),
            httpx.Response(200, content=TICKET, headers={"X-RateLimit-Total": "700",
                "X-RateLimit-Remaining": "0", "X-RateLimit-Used-CurrentRequest": "1"}),
            httpx.Response(200, content=TICKET, headers={"X-RateLimit-Total": "700",
                "X-RateLimit-Remaining": "650", "X-RateLimit-Used-CurrentRequest": "1"}),
            httpx.Response(200, content=TICKET),
        ]
    )  # fmt: skip
    client.show(1)
    assert time.sleeps == []
    # Freshdesk does not say when its window refills: 3 left of 700 is the last 0.4 % of the
    # budget, so the steady 60/700 s between requests is stretched 23-fold (the last tenth of
    # the budget lasts a minute at least).
    client.show(1)
    assert time.sleeps == pytest.approx([2.0])
    client.show(1)  # none left: one steady interval, then a 429 would say how long
    assert time.sleeps == pytest.approx([2.0, 60 / 700])
    client.show(1)  # plenty left again: no wait
    assert time.sleeps == pytest.approx([2.0, 60 / 700])


# --- the poll --------------------------------------------------------------------------------

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def many_tickets(count: int, per_second: int) -> list[dict[str, object]]:
    """`count` tickets, `per_second` of them sharing each `updated_at`."""
    return [ticket_json(i, T0 + timedelta(seconds=1 + i // per_second)) for i in range(count)]


def poll_all(client: FreshdeskClient, poller: TicketPoller) -> list[tuple[int, datetime]]:
    return [(t.id, t.updated_at) for page in client.poll(poller) for t in page]


def test_a_305_page_poll_restarts_before_page_301_and_reports_each_ticket_once(
    client: FreshdeskClient, api: respx.MockRouter
) -> None:
    # 3 tickets share each second and pages hold 2, so page 300 ends inside a second.
    server = FakeTicketList(many_tickets(610, per_second=3))
    api.get("/api/v2/tickets").mock(side_effect=server)
    poller = TicketPoller(T0, per_page=2, restart_every=300)  # follow Link up to the cap

    reported = poll_all(client, poller)

    assert sorted(i for i, _ in reported) == list(range(610))  # none lost, none twice
    pages = [int(r["page"]) for r in server.requests]
    assert max(pages) == 300
    boundary = server.requests[300]  # the request after page 300
    assert boundary["page"] == "1"
    assert boundary["updated_since"] == "2026-01-01T00:03:20Z"  # the second of ticket 599
    assert len(server.requests) == 307  # 300 pages, then 13 tickets from ticket 597 on
    assert poller.done
    assert poller.last_updated_at == T0 + timedelta(seconds=1 + 609 // 3)


def test_a_400_for_a_page_past_the_cap_restarts_from_the_last_change(
    client: FreshdeskClient, api: respx.MockRouter
) -> None:
    server = FakeTicketList(many_tickets(40, per_second=4), max_page=3)
    api.get("/api/v2/tickets").mock(side_effect=server)

    reported = poll_all(client, TicketPoller(T0, per_page=5, restart_every=300))

    assert sorted(i for i, _ in reported) == list(range(40))
    refused = [r for r in server.requests if int(r["page"]) > 3]
    assert refused  # the fake refused page 4 at least once, and the poll went on
    after = server.requests[server.requests.index(refused[0]) + 1]
    assert after["page"] == "1"


def test_tickets_written_between_pages_are_not_skipped(
    client: FreshdeskClient, api: respx.MockRouter
) -> None:
    server = FakeTicketList(many_tickets(30, per_second=1))
    api.get("/api/v2/tickets").mock(side_effect=server)
    poller = TicketPoller(T0, per_page=5)  # restart_every=1: each page from the last change
    later = T0 + timedelta(hours=1)
    written: set[int] = set()
    seen: list[tuple[int, datetime]] = []
    for page in client.poll(poller):
        seen += [(t.id, t.updated_at) for t in page]
        for ticket in page[:3]:  # the connector writes to three tickets of each page
            if ticket.id not in written:
                written.add(ticket.id)
                later += timedelta(seconds=1)
                server.touch(ticket.id, later)

    assert {i for i, _ in seen} == set(range(30))
    assert len(seen) == len(set(seen))  # a ticket comes twice only as a newer version


def test_next_round_reports_only_what_changed_since(
    client: FreshdeskClient, api: respx.MockRouter
) -> None:
    server = FakeTicketList(many_tickets(7, per_second=2))
    api.get("/api/v2/tickets").mock(side_effect=server)
    poller = TicketPoller(T0, per_page=3)
    assert len(poll_all(client, poller)) == 7
    assert poll_all(client, poller) == []  # nothing changed: the last second comes back, deduped
    server.touch(2, T0 + timedelta(minutes=5))
    server.tickets.append(ticket_json(99, T0 + timedelta(minutes=6)))
    assert [i for i, _ in poll_all(client, poller)] == [2, 99]


@pytest.mark.parametrize("restart_every", [1, 300])
def test_a_poll_resumed_from_a_saved_position_finishes_the_round(
    client: FreshdeskClient, api: respx.MockRouter, restart_every: int
) -> None:
    server = FakeTicketList(many_tickets(20, per_second=3))
    api.get("/api/v2/tickets").mock(side_effect=server)
    poller = TicketPoller(T0, per_page=4, restart_every=restart_every)
    pages = client.poll(poller)
    first = [t.id for page in (next(pages), next(pages)) for t in page]
    saved = poller.position.model_dump_json()  # the daemon stops here

    resumed = TicketPoller.resume(
        PollPosition.model_validate_json(saved), per_page=4, restart_every=restart_every
    )
    rest = [i for i, _ in poll_all(client, resumed)]
    assert sorted(first + rest) == list(range(20))
