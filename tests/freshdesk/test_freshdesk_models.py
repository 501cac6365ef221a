"""Every recorded Freshdesk payload parses into the typed models, with the values it holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from freshdesk_fakes import BASE, fixture

from connector.errors import MalformedResponse
from connector.helpdesks.freshdesk import sansio
from connector.helpdesks.freshdesk.models import (
    COMPANY_FIELD_LIST,
    COMPANY_LIST,
    NOTE_LIST,
    TICKET_LIST,
    Company,
    Note,
    Ticket,
)
from connector.http import Request, Response


def ok(body: bytes, status: int = 200) -> Response:
    return Response(status, httpx.Headers(), body, Request("GET", f"{BASE}/api/v2/x"))


def test_show_with_stats_gives_aware_due_dates_stats_and_custom_fields() -> None:
    ticket = sansio.decode_ticket(ok(fixture("ticket_with_due_dates_stats_custom_fields.json")))
    assert ticket.id == 1
    assert ticket.status == 2
    assert ticket.priority == 1
    assert ticket.company_id is None
    assert ticket.requester_id == 6012691534
    assert ticket.created_at == datetime(2016, 5, 18, 4, 36, 4, tzinfo=UTC)
    assert ticket.fr_due_by == datetime(2016, 5, 18, 5, 36, 4, tzinfo=UTC)
    assert ticket.due_by == datetime(2016, 5, 18, 23, 36, 4, tzinfo=UTC)
    assert ticket.tags == ["foo", "bar"]
    assert ticket.custom_fields == {
        "parent_or_child": None,
        "parent_ticket_id": None,
        "child_ticket_id": None,
    }
    assert ticket.stats is not None
    assert ticket.stats.first_responded_at == datetime(2020, 6, 17, 20, 23, 43, tzinfo=UTC)
    assert ticket.stats.resolved_at == datetime(2020, 7, 24, 15, 35, 21, tzinfo=UTC)
    assert ticket.stats.closed_at is None


def test_put_response_shows_the_replaced_tags_and_new_status() -> None:
    ticket = Ticket.model_validate_json(fixture("ticket_updated_put_response.json"))
    assert (ticket.status, ticket.priority) == (4, 3)
    assert ticket.tags == ["hello", "world"]
    assert ticket.stats is None


@pytest.mark.parametrize(
    ("name", "ids"),
    [("tickets_list_page_1.json", range(29, 39)), ("tickets_list_page_2.json", range(39, 49))],
)
def test_recorded_list_pages_parse_whole(name: str, ids: range) -> None:
    tickets = TICKET_LIST.validate_json(fixture(name))
    assert [t.id for t in tickets] == list(ids)
    for ticket in tickets:
        assert ticket.fr_due_by is not None
        assert ticket.due_by is not None
        # Freshdesk set the dues from the second the ticket last changed, a second after creation
        # for two of them: one day to first response, five to resolution.
        assert ticket.fr_due_by - ticket.updated_at == timedelta(days=1)
        assert ticket.due_by - ticket.fr_due_by == timedelta(days=4)
        assert ticket.updated_at >= ticket.created_at


def test_docs_list_example_without_tags_keeps_its_custom_value() -> None:
    first, second = TICKET_LIST.validate_json(
        fixture("tickets_list_docs_example_custom_field_value.json")
    )
    assert first.custom_fields == {"category": "Default"}
    assert second.custom_fields == {"category": None}
    assert first.tags == second.tags == []


def test_companies_keep_their_custom_fields_as_sent() -> None:
    company = Company.model_validate_json(fixture("company_with_custom_fields.json"))
    assert company.name == "Super Nova"
    assert company.domains == ["supernova", "nova", "super"]
    assert company.custom_fields["address"] == "123, Baker Street,\r\nNew York"
    nova, poseidon = COMPANY_LIST.validate_json(fixture("companies_list.json"))
    assert (nova.id, poseidon.id) == (1, 2)
    assert poseidon.custom_fields == {"website": "https://www.poseidoncorp.org", "address": None}


def test_notes_and_replies_say_whether_they_are_private() -> None:
    note = Note.model_validate_json(fixture("private_note.json"))
    reply = Note.model_validate_json(fixture("reply.json"))
    assert (note.private, note.ticket_id, note.body) == (
        True,
        1,
        "<div>This is a private note</div>",
    )
    assert reply.private is False
    assert [
        n.private for n in NOTE_LIST.validate_json(fixture("conversations_note_and_reply.json"))
    ] == [
        True,
        False,
    ]


def test_company_fields_read_default_and_custom_types() -> None:
    fields = COMPANY_FIELD_LIST.validate_json(fixture("company_fields_list.json"))
    types = {field.name: field.type for field in fields}
    assert types["name"] == "default_name"
    assert "custom_url" in types.values()


def test_a_naive_timestamp_is_a_malformed_response() -> None:
    body = fixture("ticket_updated_put_response.json").replace(
        b'"2016-05-18T04:36:04Z"', b'"2016-05-18T04:36:04"'
    )
    with pytest.raises(MalformedResponse, match="created_at"):
        sansio.decode_ticket(ok(body))
