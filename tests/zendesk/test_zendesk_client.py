"""The client over the real shell and httpx, against respx: calls, paging, retries, errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest
import respx
from zendesk_helpers import (
    FakeTime,
    MakeClient,
    export_body,
    fixture_bytes,
    json_response,
    ticket_json,
)

from connector.errors import (
    ApiError,
    Conflict,
    MalformedResponse,
    NotAvailable,
    RateLimited,
    ValidationFailed,
)
from connector.helpdesks.zendesk import TicketUpdate, TicketWrite

EXPORT = "/api/v2/incremental/tickets/cursor.json"
READ_AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
START = datetime(2026, 3, 1, tzinfo=UTC)


def params(call: respx.models.Call) -> dict[str, str]:
    return dict(call.request.url.params)


def test_export_page_with_sideloads(router: respx.MockRouter, make_client: MakeClient) -> None:
    route = router.get(EXPORT).mock(
        return_value=json_response(200, export_body([1, 2], after_cursor="c1", end_of_stream=False))
    )

    page = make_client().export(start_time=START)

    assert params(route.calls.last)["start_time"] == "1772323200"
    assert [t.id for t in page.tickets] == [1, 2]
    ticket = page.tickets[0]
    organization = page.organization_for(ticket)
    metric_set = page.metric_set_for(ticket)
    assert organization is not None
    assert organization.organization_fields["seats"] == 12
    assert metric_set is not None
    assert metric_set.first_reply_at(ticket.created_at) == datetime(2026, 3, 2, 9, 50, tzinfo=UTC)
    assert ticket.field(9100001) == "severity_sev1"
    assert ticket.field(9100006) is True
    assert page.after_cursor == "c1"


def test_iteration_follows_cursors_until_end_of_stream(
    router: respx.MockRouter, make_client: MakeClient
) -> None:
    route = router.get(EXPORT).mock(
        side_effect=[
            json_response(200, export_body([1, 2], after_cursor="c1", end_of_stream=False)),
            json_response(200, export_body([3], after_cursor="c2", end_of_stream=False)),
            json_response(200, export_body([4], after_cursor="c3", end_of_stream=True)),
        ]
    )

    pages = list(make_client().iter_export(START))

    assert [[t.id for t in page.tickets] for page in pages] == [[1, 2], [3], [4]]
    assert pages[-1].after_cursor == "c3"  # where the next poll resumes
    sent = [params(call) for call in route.calls]
    assert sent[0]["start_time"] == "1772323200"
    assert "cursor" not in sent[0]
    assert [s.get("cursor") for s in sent[1:]] == ["c1", "c2"]
    assert all("start_time" not in s for s in sent[1:])
    assert all(s["include"] == "organizations,metric_sets" for s in sent)


def test_show_with_sideloads(router: respx.MockRouter, make_client: MakeClient) -> None:
    body = export_body([4711], after_cursor=None, end_of_stream=True)
    route = router.get("/api/v2/tickets/4711.json").mock(
        return_value=json_response(
            200,
            {
                "ticket": body["tickets"][0],
                "organizations": body["organizations"],
                "metric_sets": body["metric_sets"],
            },
        )
    )

    page = make_client().show(4711)

    assert params(route.calls.last)["include"] == "organizations,metric_sets"
    (ticket,) = page.tickets
    assert page.organization_for(ticket) is not None
    assert page.metric_set_for(ticket) is not None


def test_show_many(router: respx.MockRouter, make_client: MakeClient) -> None:
    route = router.get("/api/v2/tickets/show_many.json").mock(
        return_value=json_response(200, {"tickets": [ticket_json(1), ticket_json(2)]})
    )

    page = make_client().show_many([2, 1])

    assert params(route.calls.last)["ids"] == "1,2"
    assert [t.id for t in page.tickets] == [1, 2]


def test_update_sends_one_guarded_put_and_returns_the_ticket(
    router: respx.MockRouter, make_client: MakeClient
) -> None:
    route = router.put("/api/v2/tickets/8868.json").mock(
        return_value=httpx.Response(
            200, content=fixture_bytes("ticket_update_put_response_with_audit.json")
        )
    )
    update = TicketUpdate(
        custom_fields={9100101: "2026-03-02T16:00:00Z"},
        additional_tags=("sla_sev1",),
        note="SLA: first response due 16:00 UTC",
    )

    ticket = make_client().update(8868, update, READ_AT)

    assert ticket.id == 8868
    sent = json.loads(route.calls.last.request.content)["ticket"]
    assert sent["safe_update"] is True
    assert sent["updated_stamp"] == "2026-03-02T09:00:00Z"
    assert sent["comment"] == {"body": "SLA: first response due 16:00 UTC", "public": False}
    assert "tags" not in sent
    assert route.call_count == 1


def test_conflict_on_update_is_raised_and_not_retried(
    router: respx.MockRouter, make_client: MakeClient, fake_time: FakeTime
) -> None:
    route = router.put("/api/v2/tickets/1.json").mock(
        return_value=json_response(
            409, {"error": "DatabaseConflict", "description": "Database collision"}
        )
    )

    with pytest.raises(Conflict):
        make_client().update(1, TicketUpdate(priority="urgent"), READ_AT)

    assert route.call_count == 1
    assert fake_time.sleeps == []


def test_validation_failure_names_the_fields(
    router: respx.MockRouter, make_client: MakeClient
) -> None:
    router.put("/api/v2/tickets/1.json").mock(
        return_value=json_response(
            422,
            {
                "error": "RecordInvalid",
                "description": "Record validation errors",
                "details": {"base": [{"description": "Due date: invalid", "error": "Invalid"}]},
            },
        )
    )

    with pytest.raises(ValidationFailed) as caught:
        make_client().update(1, TicketUpdate(custom_fields={9100102: "tomorrow"}), READ_AT)

    assert [(e.field, e.code) for e in caught.value.errors] == [("base", "Invalid")]


def test_recorded_text_plain_conflict(router: respx.MockRouter, make_client: MakeClient) -> None:
    router.put("/api/v2/tickets/1.json").mock(
        return_value=httpx.Response(
            409,
            content=fixture_bytes("error_409_conflict_import_requester_collision.txt"),
            headers={"content-type": "text/plain; charset=UTF-8"},
        )
    )

    with pytest.raises(Conflict, match="Requester creation collision"):
        make_client().update(1, TicketUpdate(priority="low"), READ_AT)


def test_update_many_then_wait_for_the_job(
    router: respx.MockRouter, make_client: MakeClient, fake_time: FakeTime
) -> None:
    job = {"id": "J1", "status": "queued", "total": 2, "progress": 0, "results": None}
    put = router.put("/api/v2/tickets/update_many.json").mock(
        return_value=json_response(200, {"job_status": job})
    )
    poll = router.get("/api/v2/job_statuses/J1.json").mock(
        side_effect=[
            json_response(200, {"job_status": {**job, "status": "working", "progress": 1}}),
            json_response(
                200,
                {
                    "job_status": {
                        **job,
                        "status": "completed",
                        "progress": 2,
                        "results": [
                            {"id": 1, "action": "update", "success": True, "status": "Updated"},
                            {
                                "id": 2,
                                "action": "update",
                                "success": False,
                                "error": "UpdateConflict",
                                "details": "Ticket changed",
                            },
                        ],
                    }
                },
            ),
        ]
    )
    client = make_client()

    queued = client.update_many(
        [
            TicketWrite(1, TicketUpdate(priority="high"), READ_AT),
            TicketWrite(2, TicketUpdate(priority="low"), READ_AT),
        ]
    )
    done = client.wait_for_job(queued.id, poll_interval=5.0)

    assert [t["id"] for t in json.loads(put.calls.last.request.content)["tickets"]] == [1, 2]
    assert queued.status == "queued"
    assert poll.call_count == 2
    assert fake_time.sleeps == [5.0]
    assert [r.id for r in done.succeeded] == [1]
    assert [r.error for r in done.failed] == ["UpdateConflict"]


def test_waiting_gives_up_after_the_poll_budget(
    router: respx.MockRouter, make_client: MakeClient
) -> None:
    router.get("/api/v2/job_statuses/J2.json").mock(
        return_value=json_response(200, {"job_status": {"id": "J2", "status": "working"}})
    )

    with pytest.raises(ApiError, match="not finished after 3 polls"):
        make_client().wait_for_job("J2", poll_interval=1.0, max_polls=3)


def test_organizations_by_id(router: respx.MockRouter, make_client: MakeClient) -> None:
    route = router.get("/api/v2/organizations/show_many.json").mock(
        return_value=httpx.Response(200, content=fixture_bytes("organizations_list.json"))
    )

    organizations = make_client().organizations([361898904440, 361898904439])

    assert params(route.calls.last)["ids"] == "361898904439,361898904440"
    assert [o.name for o in organizations] == ["Rebel Alliance", "Imperial Senate"]


def test_ticket_fields_follow_cursor_pages(
    router: respx.MockRouter, make_client: MakeClient
) -> None:
    fields = json.loads(fixture_bytes("ticket_fields_list.json"))["ticket_fields"]
    route = router.get("/api/v2/ticket_fields.json").mock(
        side_effect=[
            json_response(
                200,
                {"ticket_fields": fields[:10], "meta": {"has_more": True, "after_cursor": "p2"}},
            ),
            json_response(
                200,
                {"ticket_fields": fields[10:], "meta": {"has_more": False, "after_cursor": "p3"}},
            ),
        ]
    )

    listed = make_client().ticket_fields()

    assert len(listed) == 15
    assert [params(call).get("page[after]") for call in route.calls] == [None, "p2"]


def test_organization_fields(router: respx.MockRouter, make_client: MakeClient) -> None:
    router.get("/api/v2/organization_fields.json").mock(
        return_value=httpx.Response(200, content=fixture_bytes("organization_fields_list.json"))
    )

    assert [f.key for f in make_client().organization_fields()] == [
        "test_key",
        "test_external_id",
    ]


# --- the one retry policy, seen through the client -------------------------------------------


def test_429_with_retry_after_seconds_waits_that_long(
    router: respx.MockRouter, make_client: MakeClient, fake_time: FakeTime
) -> None:
    router.get("/api/v2/tickets/1.json").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "17"}),
            json_response(200, {"ticket": ticket_json(1)}),
        ]
    )

    page = make_client().show(1)

    assert page.tickets[0].id == 1
    assert sum(fake_time.sleeps) == pytest.approx(17.0)


def test_429_with_retry_after_date_waits_until_then(
    router: respx.MockRouter, make_client: MakeClient, fake_time: FakeTime
) -> None:
    router.get("/api/v2/tickets/1.json").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "Mon, 02 Mar 2026 08:01:30 GMT"}),
            json_response(200, {"ticket": ticket_json(1)}),
        ]
    )

    make_client().show(1)

    assert sum(fake_time.sleeps) == pytest.approx(90.0)


def test_429_without_retry_after_backs_off(
    router: respx.MockRouter, make_client: MakeClient, fake_time: FakeTime
) -> None:
    route = router.get("/api/v2/tickets/1.json").mock(
        side_effect=[
            httpx.Response(429),
            httpx.Response(429),
            json_response(200, {"ticket": ticket_json(1)}),
        ]
    )

    make_client().show(1)

    assert route.call_count == 3
    assert len(fake_time.sleeps) == 2
    assert all(0 < s <= 30 for s in fake_time.sleeps)


def test_429_that_never_ends_is_raised_after_the_attempts(
    router: respx.MockRouter, make_client: MakeClient
) -> None:
    route = router.get(EXPORT).mock(return_value=httpx.Response(429, headers={"Retry-After": "1"}))

    with pytest.raises(RateLimited):
        make_client(attempts=3).export(start_time=START)

    assert route.call_count == 3


def test_503_on_a_read_is_retried(
    router: respx.MockRouter, make_client: MakeClient, fake_time: FakeTime
) -> None:
    route = router.get(EXPORT).mock(
        side_effect=[
            httpx.Response(503, text="<html>busy</html>", headers={"content-type": "text/html"}),
            json_response(200, export_body([1], after_cursor="c", end_of_stream=True)),
        ]
    )

    page = make_client().export(start_time=START)

    assert route.call_count == 2
    assert page.end_of_stream
    assert len(fake_time.sleeps) == 1


def test_transport_error_on_a_read_is_retried(
    router: respx.MockRouter, make_client: MakeClient
) -> None:
    route = router.get("/api/v2/organizations/show_many.json").mock(
        side_effect=[
            httpx.ReadTimeout("timed out"),
            httpx.Response(200, content=fixture_bytes("organizations_list.json")),
        ]
    )

    assert len(make_client().organizations([1])) == 2
    assert route.call_count == 2


def test_update_retried_after_a_cut_connection_cannot_write_twice(
    router: respx.MockRouter, make_client: MakeClient
) -> None:
    # The first PUT may have landed; the guard turns the retry into a 409, never a second note.
    route = router.put("/api/v2/tickets/1.json").mock(
        side_effect=[
            httpx.RemoteProtocolError("connection closed mid-response"),
            json_response(409, {"error": "DatabaseConflict", "description": "Database collision"}),
        ]
    )

    with pytest.raises(Conflict):
        make_client().update(1, TicketUpdate(note="note"), READ_AT)

    bodies = [json.loads(call.request.content)["ticket"] for call in route.calls]
    assert len(bodies) == 2
    assert all(b["safe_update"] is True for b in bodies)


def test_proxy_error_page_that_persists_is_not_available(
    router: respx.MockRouter, make_client: MakeClient
) -> None:
    router.get(EXPORT).mock(
        return_value=httpx.Response(
            502,
            text="<html><title>502 Bad Gateway</title></html>",
            headers={"content-type": "text/html"},
        )
    )

    with pytest.raises(NotAvailable, match="HTML error page"):
        make_client(attempts=2).export(start_time=START)


def test_malformed_success_body(router: respx.MockRouter, make_client: MakeClient) -> None:
    route = router.get(EXPORT).mock(return_value=httpx.Response(200, text="<html>ok</html>"))

    with pytest.raises(MalformedResponse):
        make_client().export(start_time=START)

    assert route.call_count == 1
