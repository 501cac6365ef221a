"""The pure protocol: the requests Zendesk receives and the errors its answers become."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest
from zendesk_helpers import BASE, fixture_bytes

from connector.errors import (
    AuthError,
    Conflict,
    MalformedResponse,
    NotAvailable,
    NotFound,
    RateLimited,
    ValidationFailed,
)
from connector.helpdesks.zendesk import TicketUpdate, TicketWrite, base_url_for, sansio
from connector.http import Request, Response

READ_AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def answer(
    status: int, body: bytes, content_type: str = "application/json", **headers: str
) -> Response:
    request = Request("PUT", f"{BASE}/api/v2/tickets/1.json")
    return Response(status, httpx.Headers({"content-type": content_type, **headers}), body, request)


def test_first_export_call_sends_start_time_and_sideloads() -> None:
    request = sansio.export_request(BASE, start_time=datetime(2026, 3, 1, tzinfo=UTC))

    assert request.method == "GET"
    assert request.url == f"{BASE}/api/v2/incremental/tickets/cursor.json"
    assert dict(request.params) == {
        "start_time": "1772323200",
        "include": "organizations,metric_sets",
        "exclude_deleted": "true",
    }


def test_next_export_calls_send_the_cursor_and_no_start_time() -> None:
    request = sansio.export_request(BASE, cursor="MTU3NjYxMzUzOS4wfHw0Njd8")

    params = dict(request.params)
    assert params["cursor"] == "MTU3NjYxMzUzOS4wfHw0Njd8"
    assert "start_time" not in params


def test_export_needs_exactly_one_starting_point() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        sansio.export_request(BASE)
    with pytest.raises(ValueError, match="exactly one"):
        sansio.export_request(BASE, start_time=READ_AT, cursor="c")


def test_update_is_guarded_and_never_replaces_all_tags() -> None:
    update = TicketUpdate(
        custom_fields={9100101: "2026-03-02T16:00:00Z", 9100102: "2026-03-02", 9100103: None},
        priority="urgent",
        additional_tags=("sla_photoprism", "sla_sev1"),
        remove_tags=("sla_at_risk",),
        note="First response due Mon 2026-03-02 17:00 CET",
    )

    request = sansio.update_request(BASE, 4711, update, READ_AT)

    assert (request.method, request.url) == ("PUT", f"{BASE}/api/v2/tickets/4711.json")
    assert request.json == {
        "ticket": {
            "safe_update": True,
            "updated_stamp": "2026-03-02T09:00:00Z",
            "custom_fields": [
                {"id": 9100101, "value": "2026-03-02T16:00:00Z"},
                {"id": 9100102, "value": "2026-03-02"},
                {"id": 9100103, "value": None},
            ],
            "priority": "urgent",
            "additional_tags": ["sla_photoprism", "sla_sev1"],
            "remove_tags": ["sla_at_risk"],
            "comment": {"body": "First response due Mon 2026-03-02 17:00 CET", "public": False},
        }
    }


def test_update_sends_only_what_changes() -> None:
    request = sansio.update_request(BASE, 1, TicketUpdate(additional_tags=("x",)), READ_AT)

    assert set(request.json["ticket"]) == {"safe_update", "updated_stamp", "additional_tags"}


def test_empty_update_is_refused_before_any_request() -> None:
    with pytest.raises(ValueError, match="nothing to update"):
        sansio.update_request(BASE, 1, TicketUpdate(), READ_AT)


def test_update_many_gives_each_ticket_its_id_and_stamp() -> None:
    writes = [
        TicketWrite(1, TicketUpdate(priority="high"), READ_AT),
        TicketWrite(2, TicketUpdate(note="n"), datetime(2026, 3, 2, 10, 0, tzinfo=UTC)),
    ]

    request = sansio.update_many_request(BASE, writes)

    assert request.url == f"{BASE}/api/v2/tickets/update_many.json"
    assert request.json == {
        "tickets": [
            {
                "id": 1,
                "safe_update": True,
                "updated_stamp": "2026-03-02T09:00:00Z",
                "priority": "high",
            },
            {
                "id": 2,
                "safe_update": True,
                "updated_stamp": "2026-03-02T10:00:00Z",
                "comment": {"body": "n", "public": False},
            },
        ]
    }


def test_batches_over_the_documented_limit_are_refused() -> None:
    writes = [TicketWrite(i, TicketUpdate(priority="low"), READ_AT) for i in range(101)]

    with pytest.raises(ValueError, match="at most 100"):
        sansio.update_many_request(BASE, writes)
    with pytest.raises(ValueError, match="at most 100"):
        sansio.show_many_request(BASE, range(101))
    with pytest.raises(ValueError, match="twice"):
        sansio.update_many_request(BASE, writes[:1] * 2)


def test_show_many_sends_sorted_unique_ids() -> None:
    request = sansio.show_many_request(BASE, [3, 1, 3, 2])

    assert dict(request.params)["ids"] == "1,2,3"


def test_fields_are_listed_with_cursor_pagination() -> None:
    first = sansio.ticket_fields_request(BASE)
    later = sansio.organization_fields_request(BASE, after="abc")

    assert dict(first.params) == {"page[size]": "100"}
    assert later.url == f"{BASE}/api/v2/organization_fields.json"
    assert dict(later.params) == {"page[size]": "100", "page[after]": "abc"}


def test_subdomain_becomes_the_https_base() -> None:
    assert base_url_for("Acme") == "https://acme.zendesk.com"
    with pytest.raises(ValueError, match="subdomain"):
        base_url_for("acme.evil.com/")


def test_validation_details_become_field_errors() -> None:
    body = {
        "error": "RecordInvalid",
        "description": "Record validation errors",
        "details": {
            "status": [{"description": "Status: closed prevents ticket update"}],
            "base": [{"description": "Due date: invalid date", "error": "InvalidValue"}],
        },
    }

    error = sansio.decode_error(
        answer(422, json.dumps(body).encode(), **{"x-zendesk-request-id": "r1"})
    )

    assert isinstance(error, ValidationFailed)
    assert error.status == 422
    assert error.request_id == "r1"
    assert [(e.field, e.message, e.code) for e in error.errors] == [
        ("status", "Status: closed prevents ticket update", None),
        ("base", "Due date: invalid date", "InvalidValue"),
    ]


def test_safe_update_conflict_is_a_conflict() -> None:
    body = b'{"error":"DatabaseConflict","description":"Database collision"}'

    error = sansio.decode_error(answer(409, body))

    assert isinstance(error, Conflict)
    assert "Database collision" in str(error)


def test_recorded_text_plain_conflict_is_quoted() -> None:
    headers = json.loads(
        fixture_bytes("error_409_conflict_import_requester_collision.headers.json")
    )
    recorded = {k: v[0] for k, v in headers["response"]["headers"].items()}

    error = sansio.decode_error(
        answer(409, fixture_bytes("error_409_conflict_import_requester_collision.txt"), **recorded)
    )

    assert isinstance(error, Conflict)
    assert "Requester creation collision - please try again" in str(error)
    assert error.request_id == "5a3cc347-8338-42e5-c24d-067cf45c5175"


def test_titled_error_object_gives_its_title_and_message() -> None:
    body = b'{"error":{"title":"Forbidden","message":"You do not have access to this page"}}'

    error = sansio.decode_error(answer(403, body))

    assert isinstance(error, AuthError)
    assert "Forbidden: You do not have access to this page" in str(error)


def test_proxy_html_page_is_named_not_dumped() -> None:
    page = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"

    error = sansio.decode_error(answer(502, page, content_type="text/html"))

    assert isinstance(error, NotAvailable)
    assert "HTML error page" in str(error)
    assert "<html>" not in str(error)


def test_plain_not_found() -> None:
    error = sansio.decode_error(
        answer(404, b'{"error":"RecordNotFound","description":"Not found"}')
    )

    assert isinstance(error, NotFound)


def test_400_without_details_is_not_a_validation_failure() -> None:
    error = sansio.decode_error(answer(400, b'{"error":"InvalidEndpoint"}'))

    assert not isinstance(error, ValidationFailed)
    assert error.status == 400


def test_rate_limit_carries_the_wait() -> None:
    request = Request("GET", f"{BASE}/api/v2/tickets/1.json")
    response = Response(429, httpx.Headers({"retry-after": "7"}), b"", request, retry_after=7.0)

    error = sansio.decode_error(response)

    assert isinstance(error, RateLimited)
    assert error.retry_after == 7.0


@pytest.mark.parametrize(
    "body",
    [b"<html>maintenance</html>", b'{"tickets": "none"}', b'{"tickets": []}', b""],
)
def test_unreadable_success_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedResponse):
        sansio.decode_export(answer(200, body))


def test_page_claiming_more_without_a_cursor_is_malformed() -> None:
    body = b'{"tickets": [], "end_of_stream": false, "after_cursor": null}'

    with pytest.raises(MalformedResponse, match="after_cursor"):
        sansio.decode_export(answer(200, body))


def test_show_and_show_many_bodies_decode_alike() -> None:
    single = fixture_bytes("ticket_show_email_via.json")
    many = fixture_bytes("incremental_export_with_metric_sets.json")

    assert [t.id for t in sansio.decode_tickets(answer(200, single)).tickets] == [2]
    assert len(sansio.decode_tickets(answer(200, many)).metric_sets) == 3


def test_fields_page_without_meta_is_the_last() -> None:
    page = sansio.decode_ticket_fields(answer(200, fixture_bytes("ticket_fields_list.json")))

    assert len(page.fields) == 15
    assert page.after_cursor is None


@pytest.mark.reliability
@pytest.mark.parametrize(
    "damage",
    [
        {"tags": None},
        {"status": None},
        {"created_at": "2026-03-02T08:15:00"},  # no zone
        {"id": "three"},
    ],
    ids=["tags null", "no status", "naive time", "id not a number"],
)
def test_one_malformed_ticket_does_not_hold_up_its_page(damage: dict[str, object]) -> None:
    data = json.loads(fixture_bytes("incremental_export_with_metric_sets.json"))
    data["tickets"][1].update(damage)
    data.update(end_of_stream=True, after_cursor=None)
    body = json.dumps(data).encode()

    page = sansio.decode_export(answer(200, body))
    assert [t.id for t in page.tickets] == [2, 4]
    (bad,) = page.malformed
    assert bad.id == ("three" if "id" in damage else "3")  # as the page gave it
    assert len(page.metric_sets) == 3
    many = sansio.decode_tickets(answer(200, body))
    assert [t.id for t in many.tickets] == [2, 4]
    assert len(many.malformed) == 1


def test_a_page_whose_envelope_is_broken_is_still_refused() -> None:
    data = json.loads(fixture_bytes("incremental_export_with_metric_sets.json"))
    data["metric_sets"] = "none"
    data.update(end_of_stream=True)
    with pytest.raises(MalformedResponse):
        sansio.decode_export(answer(200, json.dumps(data).encode()))


# --- the ticket events export: status changes --------------------------------------------------


def test_ticket_events_request_is_time_based() -> None:
    request = sansio.ticket_events_request(BASE, 1772323200)
    assert request.url == f"{BASE}/api/v2/incremental/ticket_events.json"
    assert dict(request.params) == {"start_time": "1772323200"}


def audit(ticket_id: int, at: int, *children: dict[str, object]) -> dict[str, object]:
    """An audit as the export sends it: the changed field as each child event's own key."""
    return {
        "id": at * 10,
        "ticket_id": ticket_id,
        "timestamp": at,
        "created_at": "2026-03-01T00:00:00Z",
        "via": "Web form",  # a string here, an object elsewhere
        "event_type": "Audit",
        "child_events": list(children),
    }


def test_ticket_events_give_status_and_custom_status_changes_only() -> None:
    body = {
        "ticket_events": [
            audit(1, 100, {"id": 1, "status": "new", "event_type": "Create"}),
            audit(1, 200, {"id": 2, "priority": "high", "event_type": "Change"}),
            audit(
                1,
                300,
                {"id": 3, "status": "pending", "event_type": "Change", "previous_value": "0"},
                {"id": 4, "custom_status_id": "4044396", "event_type": "Change"},
            ),
            audit(2, 300, {"id": 5, "custom_status_id": 17, "event_type": "Change"}),
            audit(2, 400, {"id": 6, "status": "solved", "event_type": "Notification"}),
        ],
        "end_time": 400,
        "count": 5,
        "end_of_stream": True,
    }
    page = sansio.decode_ticket_events(answer(200, json.dumps(body).encode()))
    assert [(c.ticket_id, c.at, c.status, c.custom_status_id) for c in page.changes] == [
        (1, 100, "new", None),
        (1, 300, "pending", "4044396"),
        (2, 300, None, "17"),
    ]
    assert (page.end_time, page.end_of_stream) == (400, True)


def test_ticket_events_without_end_of_stream_end_on_a_page_that_is_not_full() -> None:
    # The recorded pages carry `next_page` always and no `end_of_stream`: a page of fewer than
    # 1000 audits is the last, as for the older time-based exports.
    link = f"{BASE}/api/v2/incremental/ticket_events.json?start_time=5"
    full = {"ticket_events": [audit(1, 5)] * 1000, "end_time": 5, "next_page": link}
    short = {"ticket_events": [audit(1, 5)], "end_time": 5, "next_page": link}
    assert not sansio.decode_ticket_events(answer(200, json.dumps(full).encode())).end_of_stream
    assert sansio.decode_ticket_events(answer(200, json.dumps(short).encode())).end_of_stream


def test_an_audit_that_does_not_read_is_left_out_and_the_page_goes_on() -> None:
    body = {
        "ticket_events": [
            {"id": 1, "ticket_id": 1, "metric": "reply_time", "time": "x", "type": "measure"},
            audit(2, 7, {"id": 2, "status": "pending", "event_type": "Change"}),
            {**audit(3, 8), "child_events": None},
        ],
        "end_time": 8,
        "end_of_stream": True,
    }
    page = sansio.decode_ticket_events(answer(200, json.dumps(body).encode()))
    assert [(c.ticket_id, c.status) for c in page.changes] == [(2, "pending")]


def test_a_ticket_events_page_that_is_not_one_is_malformed() -> None:
    with pytest.raises(MalformedResponse):
        sansio.decode_ticket_events(answer(200, b'{"events": []}'))
