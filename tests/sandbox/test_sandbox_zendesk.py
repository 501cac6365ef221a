"""The sandbox's Zendesk API as a client sees it: export, reads, writes, auth, limits."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from connector.sandbox import ZENDESK_URL, ManualClock, Sandbox
from connector.timeutil import to_epoch
from tests.sandbox.conftest import START, ZENDESK_AUTH

EXPORT = "/api/v2/incremental/tickets/cursor.json"
SEEDED_IDS = {1001, 1002, 1003, 1004, 1005, 1006, 2001, 2002, 2003, 2004, 3001, 3002, 3003,
              3004, 4001, 4002, 4003, 4004, 5001, 5002, 5003, 5004, 5005, 5006, 5007, 9001,
              9002}  # fmt: skip


def ticket(zendesk: httpx.Client, ticket_id: int) -> dict[str, Any]:
    response = zendesk.get(f"/api/v2/tickets/{ticket_id}.json")
    assert response.status_code == 200
    return dict(response.json()["ticket"])


def field(ticket_json: dict[str, Any], field_id: int) -> Any:
    return next(f["value"] for f in ticket_json["custom_fields"] if f["id"] == field_id)


def put(zendesk: httpx.Client, ticket_id: int, **changes: Any) -> httpx.Response:
    return zendesk.put(f"/api/v2/tickets/{ticket_id}.json", json={"ticket": changes})


def export_all(zendesk: httpx.Client, **params: Any) -> tuple[list[dict[str, Any]], str]:
    """Follow after_url until end_of_stream; the tickets and the last cursor."""
    response = zendesk.get(EXPORT, params={"start_time": 0, **params})
    tickets: list[dict[str, Any]] = []
    while True:
        assert response.status_code == 200
        page = response.json()
        tickets += page["tickets"]
        if page["end_of_stream"]:
            return tickets, page["after_cursor"]
        response = zendesk.get(page["after_url"])


# --- incremental export ------------------------------------------------------------------


def test_export_pages_with_a_cursor_until_end_of_stream(zendesk: httpx.Client) -> None:
    first = zendesk.get(EXPORT, params={"start_time": 0, "per_page": 10}).json()
    assert len(first["tickets"]) == 10
    assert first["end_of_stream"] is False
    assert first["before_cursor"] is None
    assert first["after_url"].startswith(f"{ZENDESK_URL}{EXPORT}?cursor={first['after_cursor']}")

    tickets, _ = export_all(zendesk, per_page=10)
    assert {t["id"] for t in tickets} == SEEDED_IDS
    stamps = [t["generated_timestamp"] for t in tickets]
    assert stamps == sorted(stamps)


def test_export_leaves_out_the_last_minute_and_brings_writes_back(
    zendesk: httpx.Client, clock: ManualClock
) -> None:
    _, cursor = export_all(zendesk)
    assert put(zendesk, 1001, priority="high").status_code == 200

    # The daemon's own write is younger than a minute: not exported yet.
    soon = zendesk.get(EXPORT, params={"cursor": cursor}).json()
    assert (soon["tickets"], soon["end_of_stream"]) == ([], True)
    assert soon["after_cursor"] == cursor

    clock.advance(61)
    later = zendesk.get(EXPORT, params={"cursor": cursor}).json()
    assert [t["id"] for t in later["tickets"]] == [1001]
    assert later["tickets"][0]["generated_timestamp"] == to_epoch(START)


def test_export_refuses_a_start_time_within_the_last_minute(zendesk: httpx.Client) -> None:
    response = zendesk.get(EXPORT, params={"start_time": to_epoch(START) - 30})
    assert response.status_code == 422
    assert response.json()["error"] == "InvalidValue"
    assert response.json()["description"].startswith("Too recent start_time.")


def test_export_needs_a_start_time_or_a_cursor(zendesk: httpx.Client) -> None:
    assert zendesk.get(EXPORT).status_code == 400
    assert zendesk.get(EXPORT, params={"cursor": "not a cursor!"}).status_code == 400


def test_export_sideloads_organizations_and_metric_sets(zendesk: httpx.Client) -> None:
    tickets, _ = export_all(zendesk, include="organizations,metric_sets")
    page = zendesk.get(
        EXPORT, params={"start_time": 0, "include": "organizations,metric_sets"}
    ).json()
    org_ids = {o["id"] for o in page["organizations"]}
    assert org_ids == {t["organization_id"] for t in tickets if t["organization_id"]}

    answered = next(t for t in tickets if t["id"] == 1002)
    # Created 30 h before START, first public agent reply 28 h before.
    assert answered["metric_set"]["reply_time_in_minutes"] == {"calendar": 120, "business": 120}
    assert answered["metric_set"]["solved_at"] is None
    solved = next(m for m in page["metric_sets"] if m["ticket_id"] == 1003)
    assert solved["solved_at"] is not None


def test_export_has_its_own_budget_of_ten_a_minute(
    zendesk: httpx.Client, clock: ManualClock
) -> None:
    seen = [
        zendesk.get(EXPORT, params={"start_time": 0}).headers[
            "Zendesk-RateLimit-incremental-exports"
        ]
        for _ in range(10)
    ]
    assert seen[0].startswith("total=10; remaining=9;")
    assert seen[-1].startswith("total=10; remaining=0;")

    refused = zendesk.get(EXPORT, params={"start_time": 0})
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) == 60
    assert zendesk.get("/api/v2/tickets/1001.json").status_code == 200  # other calls go on

    clock.advance(60)
    assert zendesk.get(EXPORT, params={"start_time": 0}).status_code == 200


# --- reads --------------------------------------------------------------------------------


def test_show_many_returns_the_tickets_that_exist(zendesk: httpx.Client) -> None:
    response = zendesk.get("/api/v2/tickets/show_many.json", params={"ids": "1001,4001,999"})
    assert [t["id"] for t in response.json()["tickets"]] == [1001, 4001]
    too_many = ",".join(str(i) for i in range(1, 102))
    refused = zendesk.get("/api/v2/tickets/show_many.json", params={"ids": too_many})
    assert refused.status_code == 400


def test_unknown_ticket_and_unknown_endpoint(zendesk: httpx.Client) -> None:
    missing = zendesk.get("/api/v2/tickets/424242.json")
    assert (missing.status_code, missing.json()["error"]) == (404, "RecordNotFound")
    unknown = zendesk.get("/api/v2/macros.json")
    assert (unknown.status_code, unknown.json()["error"]) == (404, "InvalidEndpoint")


def test_organizations_carry_the_mapping_fields(zendesk: httpx.Client) -> None:
    response = zendesk.get("/api/v2/organizations/show_many.json", params={"ids": "202,501"})
    by_id = {o["id"]: o["organization_fields"] for o in response.json()["organizations"]}
    assert by_id[202]["sla_contract"] == "pix4d-premium"
    assert by_id[202]["offices"] == "denver,tokyo"
    assert by_id[501]["subscription_start"] == "2025-09-01"
    assert (by_id[501]["seats"], by_id[501]["subscription_active"]) == (4, True)


def test_fields_listings(zendesk: httpx.Client) -> None:
    fields = zendesk.get("/api/v2/ticket_fields.json").json()["ticket_fields"]
    types = {f["id"]: f["type"] for f in fields}
    assert types[9100001] == "tagger"
    assert types[9100102] == "date"
    severity = next(f for f in fields if f["id"] == 9100001)
    assert "severity_sev1" in [o["value"] for o in severity["custom_field_options"]]
    org_fields = zendesk.get("/api/v2/organization_fields").json()["organization_fields"]
    keys = {f["key"] for f in org_fields}
    assert {"sla_contract", "sla_plan", "offices", "timezone"} <= keys


# --- writes -------------------------------------------------------------------------------


def test_additional_tags_merge_and_tags_replace(zendesk: httpx.Client) -> None:
    put(zendesk, 1001, additional_tags=["vip"])
    merged = put(zendesk, 1001, additional_tags=["sla_photoprism", "sla_sev1"]).json()["ticket"]
    assert merged["tags"] == ["severity_sev1", "vip", "sla_photoprism", "sla_sev1"]

    removed = put(zendesk, 1001, remove_tags=["vip"]).json()["ticket"]
    assert "vip" not in removed["tags"]

    # `tags` replaces everything, dropdown tags included: the severity field is cleared.
    replaced = put(zendesk, 1001, tags=["sla_photoprism"]).json()["ticket"]
    assert replaced["tags"] == ["sla_photoprism"]
    assert field(replaced, 9100001) is None


def test_dropdown_values_and_tags_follow_each_other(zendesk: httpx.Client) -> None:
    updated = put(
        zendesk, 2002, custom_fields=[{"id": 9100002, "value": "override_critical"}]
    ).json()["ticket"]
    assert "override_critical" in updated["tags"]
    assert "override_severe" not in updated["tags"]
    bad = put(zendesk, 2002, custom_fields=[{"id": 9100002, "value": "override_nonsense"}])
    assert bad.status_code == 422


def test_date_fields_take_a_date_only(zendesk: httpx.Client) -> None:
    before = ticket(zendesk, 1001)
    refused = put(
        zendesk,
        1001,
        custom_fields=[
            {"id": 9100101, "value": "2026-03-02T16:00:00Z"},
            {"id": 9100102, "value": "2026-03-02T16:00:00Z"},
        ],
    )
    assert refused.status_code == 422
    body = refused.json()
    assert (body["error"], body["description"]) == ("RecordInvalid", "Record validation errors")
    assert [d["field_key"] for d in body["details"]["base"]] == [9100102]
    assert ticket(zendesk, 1001) == before  # nothing of the refused update landed

    accepted = put(
        zendesk,
        1001,
        custom_fields=[
            {"id": 9100101, "value": "2026-03-02T16:00:00Z"},
            {"id": 9100102, "value": "2026-03-02"},
        ],
    ).json()["ticket"]
    assert (field(accepted, 9100101), field(accepted, 9100102)) == (
        "2026-03-02T16:00:00Z",
        "2026-03-02",
    )


def test_an_update_that_changes_nothing_does_not_move_updated_at(
    zendesk: httpx.Client, clock: ManualClock
) -> None:
    clock.advance(300)
    before = ticket(zendesk, 1004)
    after = put(zendesk, 1004, priority=before["priority"], additional_tags=[]).json()["ticket"]
    assert after["updated_at"] == before["updated_at"]
    assert after["generated_timestamp"] == before["generated_timestamp"]

    changed = put(zendesk, 1004, priority="urgent").json()["ticket"]
    assert changed["updated_at"] == "2026-03-02T09:05:00Z"


def test_safe_update_refuses_a_stale_stamp_with_409(
    zendesk: httpx.Client, sandbox: Sandbox, clock: ManualClock
) -> None:
    stamp = ticket(zendesk, 1001)["updated_at"]
    clock.advance(5)
    sandbox.agent_edit(1001)  # an agent saves the ticket meanwhile

    stale = put(zendesk, 1001, priority="high", safe_update=True, updated_stamp=stamp)
    assert stale.status_code == 409
    assert stale.json()["error"] == "UpdateConflict"
    fresh = ticket(zendesk, 1001)
    assert fresh["priority"] == "urgent"
    assert "agent_edit" in fresh["tags"]

    retried = put(
        zendesk, 1001, priority="high", safe_update=True, updated_stamp=fresh["updated_at"]
    )
    assert retried.status_code == 200
    assert retried.json()["ticket"]["priority"] == "high"


def test_private_note_is_a_private_comment(zendesk: httpx.Client) -> None:
    response = put(zendesk, 1005, comment={"body": "SLA: first response due ...", "public": False})
    assert response.status_code == 200
    comments = zendesk.get("/api/v2/tickets/1005/comments.json").json()["comments"]
    assert [(c["body"], c["public"]) for c in comments][-1] == (
        "SLA: first response due ...",
        False,
    )


def test_update_many_answers_a_job_that_runs_its_entries_in_turn(
    zendesk: httpx.Client, clock: ManualClock
) -> None:
    """Queued, working, completed: about 10 s for 100 tickets as observed on real accounts,
    each entry applied (a safe update checked) when its turn comes."""
    entries = [{"id": 1001, "priority": "low"}, {"id": 424242, "priority": "low"}]
    response = zendesk.put("/api/v2/tickets/update_many.json", json={"tickets": entries})
    job = response.json()["job_status"]
    assert (response.status_code, job["status"], job["total"]) == (200, "queued", 2)
    assert job["id"].startswith("V3-")
    assert ticket(zendesk, 1001)["priority"] != "low"  # nothing applied yet

    clock.advance(1.6)  # the first entry's turn (1.5 s + 0.085 s)
    working = zendesk.get(job["url"]).json()["job_status"]
    assert (working["status"], working["progress"], working["results"]) == ("working", 1, None)
    assert ticket(zendesk, 1001)["priority"] == "low"

    clock.advance(1)
    polled = zendesk.get(job["url"]).json()["job_status"]
    assert polled["status"] == "completed"
    assert [(r["id"], r["success"]) for r in polled["results"]] == [(1001, True), (424242, False)]

    clock.advance(86_401)  # a finished job's status is kept a day
    assert zendesk.get(job["url"]).status_code == 404

    too_many = [{"id": i, "priority": "low"} for i in range(1, 102)]
    refused = zendesk.put("/api/v2/tickets/update_many.json", json={"tickets": too_many})
    assert refused.status_code == 400


def test_a_hundred_tickets_take_a_job_ten_seconds(
    zendesk: httpx.Client, clock: ManualClock
) -> None:
    entries = [{"id": 1001, "priority": "low"}] * 100
    job = zendesk.put("/api/v2/tickets/update_many.json", json={"tickets": entries}).json()
    clock.advance(9.9)
    assert zendesk.get(job["job_status"]["url"]).json()["job_status"]["status"] == "working"
    clock.advance(0.2)
    assert zendesk.get(job["job_status"]["url"]).json()["job_status"]["status"] == "completed"


def test_at_most_30_jobs_queued_or_running(zendesk: httpx.Client, clock: ManualClock) -> None:
    body = {"tickets": [{"id": 1001, "priority": "low"}] * 100}
    for _ in range(30):
        assert zendesk.put("/api/v2/tickets/update_many.json", json=body).status_code == 200
    refused = zendesk.put("/api/v2/tickets/update_many.json", json=body)
    assert refused.status_code == 429
    assert refused.json()["error"] == "TooManyJobs"
    assert refused.headers["Retry-After"] == "10"  # when the first job ends
    clock.advance(10.1)
    assert zendesk.put("/api/v2/tickets/update_many.json", json=body).status_code == 200


# --- authentication and rate limits --------------------------------------------------------


def test_wrong_credentials_get_zendesks_401(sandbox: Sandbox) -> None:
    with httpx.Client(
        transport=sandbox.zendesk_transport(),
        base_url=ZENDESK_URL,
        auth=("agent@example.com/token", "wrong"),
    ) as client:
        response = client.get("/api/v2/tickets/1001.json")
    assert response.status_code == 401
    assert response.json() == {"error": "Couldn't authenticate you"}


def test_oauth_refresh_rotates_both_tokens(sandbox: Sandbox, clock: ManualClock) -> None:
    tokens = sandbox.issue_oauth_tokens()
    with httpx.Client(transport=sandbox.zendesk_transport(), base_url=ZENDESK_URL) as client:

        def show(access: str) -> int:
            headers = {"Authorization": f"Bearer {access}"}
            return client.get("/api/v2/tickets/1001.json", headers=headers).status_code

        assert show(tokens.access_token) == 200
        clock.advance(tokens.expires_in)
        assert show(tokens.access_token) == 401

        grant = {
            "grant_type": "refresh_token",
            "refresh_token": tokens.refresh_token,
            "client_id": "sla-connector",
            "client_secret": "sandbox-client-secret",
        }
        fresh = client.post("/oauth/tokens", json=grant).json()
        assert fresh["refresh_token"] != tokens.refresh_token
        assert show(fresh["access_token"]) == 200

        reused = client.post("/oauth/tokens", json=grant)
        assert (reused.status_code, reused.json()["error"]) == (400, "invalid_grant")


def test_enforced_rate_limit_answers_429_with_retry_after(clock: ManualClock) -> None:
    sandbox = Sandbox.seeded(clock=clock, rate_limit=3)
    with httpx.Client(
        transport=sandbox.zendesk_transport(), base_url=ZENDESK_URL, auth=ZENDESK_AUTH
    ) as client:
        remaining = []
        for step in range(3):  # at 0 s, 10 s and 20 s
            clock.advance(10 if step else 0)
            response = client.get("/api/v2/tickets/1001.json")
            assert response.headers["X-Rate-Limit"] == "3"
            remaining.append(response.headers["X-Rate-Limit-Remaining"])
        assert remaining == ["2", "1", "0"]

        refused = client.get("/api/v2/tickets/1001.json")
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "40"  # the first call leaves the window then

        clock.advance(40)
        assert client.get("/api/v2/tickets/1001.json").status_code == 200


@pytest.mark.parametrize("path", ["/api/v2/tickets/1001.json", "/api/v2/tickets/1001"])
def test_paths_work_with_and_without_json_suffix(zendesk: httpx.Client, path: str) -> None:
    assert zendesk.get(path).json()["ticket"]["id"] == 1001


# --- the documented limits, pinned ----------------------------------------------------------


def test_update_ticket_allows_100_a_minute_an_account_agents_saves_included(
    clock: ManualClock,
) -> None:
    """Zendesk: the Update Ticket endpoint allows 100 requests a minute an account, and the
    agents' updates in the UI count against it (their 429 is counted)."""
    sandbox = Sandbox.seeded(clock=clock, zendesk_update_limit=100)
    with httpx.Client(
        transport=sandbox.zendesk_transport(), base_url=ZENDESK_URL, auth=ZENDESK_AUTH
    ) as zendesk:
        for _ in range(30):
            assert sandbox.agent_ui_update(1001)
        tickets = sorted(sandbox.zendesk.tickets)
        for n in range(70):
            response = put(zendesk, tickets[1 + n % 20], priority="high" if n % 2 else "low")
            assert response.status_code == 200, response.text
        budget = response.headers["Zendesk-RateLimit-tickets-update"]
        assert budget.startswith("total=100; remaining=0; resets=")
        refused = put(zendesk, tickets[-1], priority="low")
        assert refused.status_code == 429
        assert not sandbox.agent_ui_update(1002)
        assert sandbox.zendesk.agent_429s == 1
        clock.advance(60)
        assert put(zendesk, tickets[-1], priority="low").status_code == 200


def test_one_ticket_takes_30_updates_in_10_minutes(
    zendesk: httpx.Client, clock: ManualClock
) -> None:
    for n in range(30):
        response = put(zendesk, 1001, priority="high" if n % 2 else "low")
        assert response.status_code == 200
        clock.advance(1)
    assert response.headers["zendesk-ratelimit-per-ticket-updates"].startswith(
        "total=30; remaining=0;"
    )
    assert put(zendesk, 1001, priority="urgent").status_code == 429
    assert put(zendesk, 1002, priority="urgent").status_code == 200  # another ticket: its own
    clock.advance(600 - 29)
    assert put(zendesk, 1001, priority="urgent").status_code == 200
