"""Injected faults as a client meets them, in process, and the HTTP shell's answer to them."""

from __future__ import annotations

import email.utils
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from connector.errors import Conflict, NotAvailable
from connector.http import HttpShell, Request, Response, RetryPolicy, error_for
from connector.sandbox import ZENDESK_URL, FaultKind, ManualClock, Sandbox
from tests.sandbox.conftest import START, ZENDESK_AUTH

TICKET = "/api/v2/tickets/1001.json"


@pytest.mark.parametrize(
    ("kind", "status", "retry_after"),
    [
        (FaultKind.RATE_LIMITED, 429, "2"),
        (FaultKind.RATE_LIMITED_HTTP_DATE, 429, "Mon, 02 Mar 2026 09:00:02 GMT"),
        (FaultKind.RATE_LIMITED_BARE, 429, None),
        (FaultKind.SERVER_ERROR, 500, None),
        (FaultKind.BAD_GATEWAY, 502, None),
        (FaultKind.UNAVAILABLE, 503, None),
        (FaultKind.UNAVAILABLE_RETRY_AFTER, 503, "2"),
    ],
)
def test_error_faults_answer_once_then_the_api_is_back(
    sandbox: Sandbox, zendesk: httpx.Client, kind: FaultKind, status: int, retry_after: str | None
) -> None:
    sandbox.faults.add(kind, helpdesk="zendesk", method="GET", path="/api/v2/tickets/*")
    failed = zendesk.get(TICKET)
    assert failed.status_code == status
    assert failed.headers.get("Retry-After") == retry_after
    assert zendesk.get(TICKET).status_code == 200


def test_faults_match_on_helpdesk_method_and_path(
    sandbox: Sandbox, zendesk: httpx.Client, freshdesk: httpx.Client
) -> None:
    sandbox.faults.add("server_error", helpdesk="freshdesk", method="PUT", count=None)
    assert zendesk.put(TICKET, json={"ticket": {"priority": "low"}}).status_code == 200
    assert freshdesk.get("/api/v2/tickets/1001").status_code == 200
    assert freshdesk.put("/api/v2/tickets/1001", json={"priority": 1}).status_code == 500
    assert freshdesk.put("/api/v2/tickets/1001", json={"priority": 1}).status_code == 500

    sandbox.faults.clear()
    assert freshdesk.put("/api/v2/tickets/1001", json={"priority": 1}).status_code == 200


def test_probability_zero_never_fires(sandbox: Sandbox, zendesk: httpx.Client) -> None:
    sandbox.faults.add("server_error", count=None, probability=0.0)
    assert {zendesk.get(TICKET).status_code for _ in range(20)} == {200}


def test_slow_response_sleeps_on_the_sandbox_clock(
    sandbox: Sandbox, zendesk: httpx.Client, clock: ManualClock
) -> None:
    sandbox.faults.add("slow", delay=12.5)
    assert zendesk.get(TICKET).status_code == 200
    assert clock.slept == [12.5]
    assert clock() == START + timedelta(seconds=12.5)


def test_slow_after_applies_the_call_before_it_waits(
    sandbox: Sandbox, zendesk: httpx.Client, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    clock_sleep = clock.sleep

    def sleep(seconds: float) -> None:  # what a client killed during the wait would leave
        seen.append(sandbox.zendesk.tickets[1001].priority)
        clock_sleep(seconds)

    monkeypatch.setattr(sandbox, "_sleep", sleep)
    sandbox.faults.add("slow_after", method="PUT", delay=30)
    assert zendesk.put(TICKET, json={"ticket": {"priority": "low"}}).status_code == 200
    assert seen == ["low"]
    assert clock() == START + timedelta(seconds=30)


def test_cut_before_the_write_leaves_the_ticket_alone(
    sandbox: Sandbox, zendesk: httpx.Client
) -> None:
    sandbox.faults.add("cut_before", method="PUT")
    with pytest.raises(httpx.RemoteProtocolError):
        zendesk.put(TICKET, json={"ticket": {"priority": "low"}})
    assert zendesk.get(TICKET).json()["ticket"]["priority"] == "urgent"


def test_cut_after_the_write_loses_only_the_answer(sandbox: Sandbox, zendesk: httpx.Client) -> None:
    sandbox.faults.add("cut_after", method="PUT")
    with pytest.raises(httpx.ReadError):
        zendesk.put(TICKET, json={"ticket": {"priority": "low"}})
    assert zendesk.get(TICKET).json()["ticket"]["priority"] == "low"
    assert sandbox.counters.total(method="PUT", status=0) == 1


def test_malformed_body_is_truncated_json_with_200(sandbox: Sandbox, zendesk: httpx.Client) -> None:
    sandbox.faults.add("malformed")
    response = zendesk.get(TICKET)
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_agent_edit_just_before_a_safe_update_makes_it_409(
    sandbox: Sandbox, zendesk: httpx.Client
) -> None:
    stamp = zendesk.get(TICKET).json()["ticket"]["updated_at"]
    sandbox.faults.add("agent_edit", method="PUT")
    body = {"ticket": {"priority": "high", "safe_update": True, "updated_stamp": stamp}}
    assert zendesk.put(TICKET, json=body).status_code == 409
    assert "agent_edit" in zendesk.get(TICKET).json()["ticket"]["tags"]


def test_counters_count_calls_by_route_and_status(sandbox: Sandbox, zendesk: httpx.Client) -> None:
    sandbox.faults.add("rate_limited")
    zendesk.get(TICKET)
    zendesk.get(TICKET)
    zendesk.get("/api/v2/tickets/1002.json")
    route = "/api/v2/tickets/{id}.json"
    assert sandbox.counters.total(helpdesk="zendesk", route=route, status=429) == 1
    assert sandbox.counters.total(helpdesk="zendesk", route=route, status=200) == 2
    assert sandbox.counters.total(helpdesk="freshdesk") == 0
    sandbox.reset()
    assert sandbox.counters.total() == 0


def test_fault_arguments_are_checked(sandbox: Sandbox) -> None:
    with pytest.raises(ValueError, match="probability"):
        sandbox.faults.add("slow", probability=1.5)
    with pytest.raises(ValueError, match="helpdesk"):
        sandbox.faults.add("slow", helpdesk="jira")
    with pytest.raises(ValueError, match="not_a_kind"):
        sandbox.faults.add("not_a_kind")


# --- the connector's HTTP shell against the faults ------------------------------------------


def _ticket_or_error(response: Response) -> dict[str, Any]:
    if response.status >= 400:
        raise error_for(response, response.text())
    return dict(response.json()["ticket"])


def _shell(sandbox: Sandbox, clock: ManualClock) -> HttpShell:
    client = httpx.Client(
        transport=sandbox.zendesk_transport(), base_url=ZENDESK_URL, auth=ZENDESK_AUTH
    )
    return HttpShell(
        client,
        policy=RetryPolicy(attempts=4, backoff_initial=0.01),
        sleep=clock.sleep,
        clock=lambda: clock().timestamp(),
        wall_clock=clock,
    )


def test_the_shell_waits_out_an_http_date_retry_after(sandbox: Sandbox, clock: ManualClock) -> None:
    sandbox.faults.add("rate_limited_http_date", retry_after=30)
    shell = _shell(sandbox, clock)
    ticket = shell.send(Request("GET", TICKET), _ticket_or_error)
    assert ticket["id"] == 1001
    assert sum(clock.slept) == pytest.approx(30)  # the date's delay, waited once


def test_a_put_whose_answer_was_lost_comes_back_as_a_conflict(
    sandbox: Sandbox, clock: ManualClock
) -> None:
    """The PUT landed, the shell retried it, and the stale stamp says so with a 409."""
    shell = _shell(sandbox, clock)
    stamp = shell.send(Request("GET", TICKET), _ticket_or_error)["updated_at"]
    clock.advance(10)
    sandbox.faults.add("cut_after", method="PUT")
    body = {"ticket": {"priority": "high", "safe_update": True, "updated_stamp": stamp}}
    with pytest.raises(Conflict):
        shell.send(Request("PUT", TICKET, json=body), _ticket_or_error)
    assert shell.send(Request("GET", TICKET), _ticket_or_error)["priority"] == "high"


def test_a_cut_post_is_not_sent_twice(sandbox: Sandbox, clock: ManualClock) -> None:
    with httpx.Client(
        transport=sandbox.freshdesk_transport(),
        base_url="https://sandbox.freshdesk.com",
        auth=("sandbox-freshdesk-key", "X"),
    ) as client:
        shell = HttpShell(client, sleep=clock.sleep, wall_clock=clock)
        sandbox.faults.add("cut_after", method="POST")
        note = Request("POST", "/api/v2/tickets/1002/notes", json={"body": "x", "private": True})
        with pytest.raises(NotAvailable):
            shell.send(note, lambda r: r.json())
        # It landed once; the shell did not blindly repeat it.
        assert len(client.get("/api/v2/tickets/1002/conversations").json()) == 2


def test_http_date_is_in_gmt(sandbox: Sandbox, zendesk: httpx.Client) -> None:
    sandbox.faults.add("rate_limited_http_date", retry_after=90)
    header = zendesk.get(TICKET).headers["Retry-After"]
    when = email.utils.parsedate_to_datetime(header)
    assert when == datetime(2026, 3, 2, 9, 1, 30, tzinfo=UTC)
