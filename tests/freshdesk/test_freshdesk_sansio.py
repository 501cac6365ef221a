"""The pure Freshdesk protocol: update rules, bodies, error bodies, paging, credentials."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from freshdesk_fakes import API_KEY, BASE, PAGE_REFUSED, ticket_json

from connector.errors import (
    ApiError,
    AuthError,
    ConfigError,
    FieldError,
    NotAvailable,
    NotFound,
    ValidationFailed,
)
from connector.helpdesks.freshdesk import (
    ApiKeyCredentials,
    PollPosition,
    Ticket,
    TicketPoller,
    TicketUpdate,
    base_url_for,
    check_due_dates,
    check_tags,
    sansio,
)
from connector.http import Request, Response

CREATED = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
H = timedelta(hours=1)


def response(
    status: int,
    body: bytes | object,
    headers: dict[str, str] | None = None,
    request: Request | None = None,
) -> Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Response(
        status, httpx.Headers(headers or {}), raw, request or Request("GET", f"{BASE}/api/v2/x")
    )


def ticket(status: int = 2, fr: datetime | None = None, due: datetime | None = None) -> Ticket:
    return Ticket(
        id=7,
        created_at=CREATED,
        updated_at=CREATED,
        status=status,
        priority=2,
        fr_due_by=fr,
        due_by=due,
    )


# --- check_due_dates -------------------------------------------------------------------------

DueRule = tuple[
    str, int, datetime | None, datetime | None, datetime | None, datetime | None, object
]


# (case, ticket status, ticket's own fr/due, update's fr/due, outcome). Outcome: "sent" (unchanged),
# "dropped" (due dates removed, reason given) or the fields refused with ValidationFailed.
DUE_DATE_RULES: list[DueRule] = [
    ("both after creation, in order", 2, None, None, CREATED + H, CREATED + 8 * H, "sent"),
    ("both at creation exactly", 2, None, None, CREATED, CREATED, "sent"),
    ("fr alone, ticket has due", 2, None, CREATED + 9 * H, CREATED + H, None, "sent"),
    ("custom open status", 6, None, None, CREATED + H, CREATED + 2 * H, "sent"),
    ("fr before creation", 2, None, None, CREATED - H, CREATED + H, ("fr_due_by",)),
    ("due before creation", 2, None, None, CREATED, CREATED - H, ("due_by", "due_by")),
    ("due before fr", 2, None, None, CREATED + 3 * H, CREATED + 2 * H, ("due_by",)),
    ("fr alone, after ticket's due", 2, None, CREATED + H, CREATED + 2 * H, None, ("due_by",)),
    ("due alone, ticket has no fr", 2, None, None, None, CREATED + H, ("fr_due_by",)),
    ("pending stops the timer", 3, None, None, CREATED + H, CREATED + 2 * H, "dropped"),
    ("resolved stops the timer", 4, None, None, CREATED + H, CREATED + 2 * H, "dropped"),
    ("closed stops the timer", 5, None, None, CREATED - H, CREATED + 2 * H, "dropped"),
]


@pytest.mark.parametrize("rule", DUE_DATE_RULES, ids=[row[0] for row in DUE_DATE_RULES])
def test_due_date_rules(rule: DueRule) -> None:
    _name, status, own_fr, own_due, fr, due, outcome = rule
    update = TicketUpdate(fr_due_by=fr, due_by=due, priority=3)
    if outcome == "sent":
        assert check_due_dates(ticket(status, own_fr, own_due), update) == update
    elif outcome == "dropped":
        checked = check_due_dates(ticket(status, own_fr, own_due), update)
        assert (checked.fr_due_by, checked.due_by, checked.priority) == (None, None, 3)
        assert "stops the SLA timer" in checked.dropped[0]
        assert "fr_due_by" not in sansio.update_body(checked)
    else:
        with pytest.raises(ValidationFailed) as caught:
            check_due_dates(ticket(status, own_fr, own_due), update)
        assert tuple(e.field for e in caught.value.errors) == outcome
        assert caught.value.status is None  # refused before anything was sent


def test_custom_statuses_that_stop_the_timer_are_configurable() -> None:
    update = TicketUpdate(fr_due_by=CREATED + H, due_by=CREATED + 2 * H)
    assert check_due_dates(ticket(status=9), update) == update
    dropped = check_due_dates(ticket(status=9), update, timer_stopping_statuses={3, 4, 5, 9})
    assert dropped.is_empty
    assert dropped.dropped


def test_an_update_without_due_dates_is_left_alone_whatever_the_status() -> None:
    update = TicketUpdate(tags=("sla_gold",))
    assert check_due_dates(ticket(status=5), update) is update


# --- update body and tags --------------------------------------------------------------------


def test_update_body_holds_only_what_changes_in_utc() -> None:
    update = TicketUpdate(
        due_by=datetime(2026, 3, 3, 10, 0, tzinfo=UTC) + timedelta(microseconds=5),
        fr_due_by=datetime(2026, 3, 2, 17, 0, tzinfo=UTC),
        tags=("sla_gold", "agent-tag"),
    )
    request = sansio.update_request(BASE, 42, update)
    assert (request.method, request.url) == ("PUT", f"{BASE}/api/v2/tickets/42")
    assert request.json == {
        "fr_due_by": "2026-03-02T17:00:00Z",
        "due_by": "2026-03-03T10:00:00Z",
        "tags": ["sla_gold", "agent-tag"],
    }
    assert sansio.update_body(TicketUpdate(priority=4, custom_fields={"cf_x": None})) == {
        "priority": 4,
        "custom_fields": {"cf_x": None},
    }


def test_an_empty_tag_list_is_sent_to_clear_tags_but_an_empty_update_is_refused() -> None:
    assert sansio.update_request(BASE, 1, TicketUpdate(tags=())).json == {"tags": []}
    with pytest.raises(ValueError, match="empty update"):
        sansio.update_request(BASE, 1, TicketUpdate())


def test_tags_over_32_characters_or_with_commas_are_refused_before_sending() -> None:
    check_tags(["x" * 32])
    with pytest.raises(ValidationFailed) as caught:
        sansio.update_request(BASE, 1, TicketUpdate(tags=("ok", "y" * 33, "a,b")))
    assert [e.field for e in caught.value.errors] == ["tags", "tags"]
    assert "33 characters" in str(caught.value)
    assert "comma" in str(caught.value)


def test_note_body_is_escaped_html_and_private() -> None:
    request = sansio.note_request(BASE, 5, 'Due <b>soon</b> & "late"\nline 2')
    assert (request.method, request.url) == ("POST", f"{BASE}/api/v2/tickets/5/notes")
    assert request.json == {
        "body": "Due &lt;b&gt;soon&lt;/b&gt; &amp; &quot;late&quot;<br>line 2",
        "private": True,
    }
    assert not request.idempotent


# --- error bodies ----------------------------------------------------------------------------


def test_validation_body_gives_one_field_error_each() -> None:
    body = {
        "description": "Validation failed",
        "errors": [
            {"field": "due_by", "message": "It should be greater than created_at", "code": "x"},
            {"field": "tags", "message": "Has 40 characters", "code": "invalid_value"},
        ],
    }
    error = sansio.error_from(response(400, body, {"X-Request-Id": "req-1"}))
    assert isinstance(error, ValidationFailed)
    assert error.errors == [
        FieldError("due_by", "It should be greater than created_at", "x"),
        FieldError("tags", "Has 40 characters", "invalid_value"),
    ]
    assert (error.status, error.request_id) == (400, "req-1")


def test_a_409_naming_fields_is_a_validation_failure_not_an_edit_conflict() -> None:
    body = {
        "description": "Validation failed",
        "errors": [
            {"field": "email", "message": "It should be a unique value", "code": "duplicate_value"}
        ],
    }
    error = sansio.error_from(response(409, body))
    assert isinstance(error, ValidationFailed)
    assert (error.status, error.errors[0].code) == (409, "duplicate_value")


@pytest.mark.parametrize(
    ("status", "body", "kind", "text"),
    [
        (401, {"code": "invalid_credentials", "message": "You have to be logged in"}, AuthError,
         "invalid_credentials: You have to be logged in"),
        (404, b"", NotFound, "HTTP 404 with an empty body"),
        (502, b"<html>Bad gateway</html>", NotAvailable, "<html>Bad gateway</html>"),
        (405, {"message": "Method not allowed"}, ApiError, "Method not allowed"),
    ],
)  # fmt: skip
def test_other_error_bodies_keep_freshdesk_words(
    status: int, body: object, kind: type[ApiError], text: str
) -> None:
    error = sansio.error_from(response(status, body))
    assert type(error) is kind
    assert text in str(error)


# --- paging ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("link", "more"),
    [
        (f'<{BASE}/api/v2/tickets?page=2&per_page=100>; rel="next"', True),
        (f"<{BASE}/api/v2/tickets?page=2>;rel=next", True),
        (f'<{BASE}/x?page=1>; rel="prev", <{BASE}/x?page=3>; rel="next"', True),
        (f'<{BASE}/x?page=1>; rel="prev"', False),
        (None, False),
    ],
)
def test_link_header_next(link: str | None, more: bool) -> None:
    assert sansio.has_next_page(httpx.Headers({"Link": link} if link else {})) is more


def list_page(tickets: list[dict[str, object]], more: bool) -> Response:
    headers = {"Link": f'<{BASE}/api/v2/tickets?page=9>; rel="next"'} if more else {}
    return response(200, tickets, headers)


T0 = datetime(2026, 1, 1, tzinfo=UTC)
S = timedelta(seconds=1)


def test_first_request_asks_for_changes_since_oldest_first_with_stats() -> None:
    request = TicketPoller(T0).next_request(BASE)
    assert request is not None
    assert (request.method, request.url) == ("GET", f"{BASE}/api/v2/tickets")
    assert request.params == (
        ("updated_since", "2026-01-01T00:00:00Z"),
        ("order_by", "updated_at"),
        ("order_type", "asc"),
        ("per_page", "100"),
        ("include", "stats"),
        ("page", "1"),
    )


def test_a_round_ends_without_next_link_and_the_next_reaches_back_by_the_overlap() -> None:
    poller = TicketPoller(T0, per_page=2, restart_every=300)
    first = poller.feed(list_page([ticket_json(1, T0 + S), ticket_json(2, T0 + 2 * S)], True))
    assert [t.id for t in first] == [1, 2]
    assert poller.page == 2
    last = poller.feed(list_page([ticket_json(3, T0 + 2 * S)], False))
    assert [t.id for t in last] == [3]
    assert poller.done
    assert poller.next_request(BASE) is None
    poller.start_round()
    # OVERLAP before the last change, but never before where the round began.
    assert (poller.since, poller.page) == (T0, 1)
    # The next round sees the tickets of the last second again: only a new version is reported.
    again = poller.feed(
        list_page(
            [ticket_json(2, T0 + 2 * S), ticket_json(3, T0 + 2 * S), ticket_json(2, T0 + 5 * S)],
            False,
        )
    )
    assert [(t.id, t.updated_at) for t in again] == [(2, T0 + 5 * S)]


def test_position_resumes_without_repeating_or_losing() -> None:
    poller = TicketPoller(T0, per_page=2, restart_every=300, clock=lambda: T0 + 9 * S)
    poller.feed(list_page([ticket_json(1, T0 + S), ticket_json(2, T0 + S)], True))
    saved = PollPosition.model_validate_json(poller.position.model_dump_json())
    assert saved == PollPosition(
        since=T0,
        page=2,
        last_updated_at=T0 + S,
        start=T0,
        unsure_from=T0,  # page 2 is asked by number: the next round reaches back to here
        round_time=T0 + 9 * S,
        seen=((1, T0 + S), (2, T0 + S)),
    )
    resumed = TicketPoller.resume(saved, per_page=2, restart_every=300)
    request = resumed.next_request(BASE)
    assert request is not None
    assert ("page", "2") in request.params
    fresh = resumed.feed(list_page([ticket_json(2, T0 + S), ticket_json(3, T0 + S)], False))
    assert [t.id for t in fresh] == [3]


def test_by_default_each_page_starts_again_from_the_last_change() -> None:
    poller = TicketPoller(T0, per_page=2)
    poller.feed(list_page([ticket_json(1, T0 + S), ticket_json(2, T0 + 2 * S)], True))
    assert (poller.since, poller.page) == (T0 + 2 * S, 1)
    # A whole page of one instant cannot move `since`: only then the next page is asked.
    poller.feed(list_page([ticket_json(2, T0 + 2 * S), ticket_json(3, T0 + 2 * S)], True))
    assert (poller.since, poller.page) == (T0 + 2 * S, 2)


def test_more_than_300_pages_of_one_instant_is_reported_not_looped() -> None:
    stuck = PollPosition(since=T0, page=300, last_updated_at=T0, seen_ids=(1,))
    poller = TicketPoller.resume(stuck, per_page=2)
    with pytest.raises(ApiError, match="cannot page past them"):
        poller.feed(list_page([ticket_json(8, T0), ticket_json(9, T0)], True))


def test_page_refusal_on_the_first_page_is_an_error_not_a_restart() -> None:
    with pytest.raises(ValidationFailed, match="300th page"):
        TicketPoller(T0).feed(response(400, PAGE_REFUSED))


def test_poller_refuses_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="aware"):
        TicketPoller(datetime(2026, 1, 1))  # noqa: DTZ001
    with pytest.raises(ValueError, match="per_page"):
        TicketPoller(T0, per_page=101)
    with pytest.raises(ValueError, match="restart_every"):
        TicketPoller(T0, restart_every=301)


# --- who and where ---------------------------------------------------------------------------


def test_api_key_is_basic_auth_user_with_x_password_and_never_shown() -> None:
    credentials = ApiKeyCredentials(API_KEY)
    scheme, token = credentials.headers()["Authorization"].split()
    assert scheme == "Basic"
    assert base64.b64decode(token).decode() == f"{API_KEY}:X"
    assert API_KEY not in repr(credentials)
    assert API_KEY not in str(credentials)
    assert API_KEY not in f"{credentials!r} {credentials}"
    assert credentials.refresh() is False
    with pytest.raises(ValueError, match="empty"):
        ApiKeyCredentials("  ")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("acme", "https://acme.freshdesk.com"),
        ("ACME.freshdesk.com", "https://acme.freshdesk.com"),
        ("https://acme.freshdesk.com/", "https://acme.freshdesk.com"),
        ("http://127.0.0.1:8085", "http://127.0.0.1:8085"),
    ],
)
def test_base_url_for_account_names_and_urls(given: str, expected: str) -> None:
    assert base_url_for(given) == expected


@pytest.mark.parametrize("given", ["http://acme.freshdesk.com", "acme/../evil", ""])
def test_base_url_refuses_plain_http_off_loopback_and_odd_names(given: str) -> None:
    with pytest.raises(ConfigError):
        base_url_for(given)


@pytest.mark.reliability
@pytest.mark.parametrize(
    "damage",
    [{"tags": None}, {"status": None}, {"updated_at": "2026-01-01T00:00:09"}],
    ids=["tags null", "no status", "naive time"],
)
def test_one_malformed_ticket_does_not_hold_up_its_page(damage: dict[str, object]) -> None:
    tickets = [ticket_json(i, T0 + i * S) for i in (1, 2, 3)]
    tickets[1].update(damage)
    poller = TicketPoller(T0, per_page=3)
    fresh = poller.feed(list_page(tickets, False))
    assert [t.id for t in fresh] == [1, 3]
    assert [(m.id, m.problem.split(":")[0]) for m in poller.malformed] == [
        ("2", next(iter(damage)))
    ]
    assert poller.last_updated_at == T0 + 3 * S  # the position goes past it with the page
