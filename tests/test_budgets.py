"""Per-endpoint budgets, and the agents' share of Zendesk's Update Ticket budget (issue 17).

Zendesk allows 100 Update Ticket requests a minute per account, and the agents' own saves in
the UI spend the same budget. A backfill that writes as fast as the account's general limit
allows would take it all and the agents would get 429s. The connector spends at most its
configured share (`[zendesk] update_share`, half by default), judged from the endpoint's own
`Zendesk-RateLimit-tickets-update` header (which counts the agents' use too).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from connector.errors import RateLimited
from connector.helpdesks.freshdesk.sansio import PLAN_SUB_LIMITS
from connector.http import (
    Budget,
    HttpShell,
    Pacer,
    RateLimit,
    Request,
    Response,
    RetryPolicy,
    error_for,
    parse_endpoint_limits,
)
from connector.sandbox import ManualClock, Sandbox, generate
from connector.sandbox.agents import Agents
from connector.sandbox.freshdesk import PLANS
from connector.service.sync import Totals
from tests.test_sync_e2e import open_desk

START = datetime(2026, 3, 6, 15, 0, tzinfo=UTC)


def test_endpoint_headers_are_read_in_both_spellings() -> None:
    headers = {
        "Zendesk-RateLimit-tickets-update": "total=100; remaining=42; resets=17",
        "zendesk-rate-limit-incremental-exports": "total=10; remaining=9; resets=50",
        "X-Rate-Limit": "700",
        "X-Rate-Limit-Remaining": "650",
    }
    assert parse_endpoint_limits(headers) == {
        "tickets-update": RateLimit(100, 42, 17),
        "incremental-exports": RateLimit(10, 9, 50),
    }


def test_a_share_caps_the_connectors_own_use_and_leaves_the_rest_to_others() -> None:
    half = Budget(share=0.5)
    # The agents spent 20, we 0: our half is whole.
    assert half.of(RateLimit(100, 80, 30), own=0) == RateLimit(50, 50, 30)
    # We spent 30, the agents 30: 20 more of our half.
    assert half.of(RateLimit(100, 40, 30), own=30) == RateLimit(50, 20, 30)
    # We spent our half: wait, whatever remains for the agents.
    assert half.of(RateLimit(100, 45, 30), own=50) == RateLimit(50, 0, 30)
    # The agents spent more than theirs: never more than what remains at all.
    assert half.of(RateLimit(100, 5, 30), own=10) == RateLimit(50, 5, 30)
    assert Budget().of(RateLimit(100, 40, 30), own=30) == RateLimit(100, 40, 30)


def test_an_endpoints_429_holds_off_that_endpoint_only() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        if request.method == "PUT":
            return httpx.Response(
                429,
                headers={
                    "Retry-After": "30",
                    "Zendesk-RateLimit-tickets-update": "total=100; remaining=0; resets=30",
                },
            )
        return httpx.Response(200, json={})

    now = [0.0]
    slept: list[float] = []

    def decode(response: Response) -> object:
        if response.status != 200:
            raise error_for(response, "refused")
        return response.json()

    shell = HttpShell(
        httpx.Client(transport=httpx.MockTransport(handler)),
        clock=lambda: now[0],
        sleep=slept.append,
        pacer=Pacer(),
        policy=RetryPolicy(attempts=1),
    )
    put = Request("PUT", "https://x.example/api/v2/tickets/1.json", budget="tickets-update")
    with pytest.raises(RateLimited):
        shell.send(put, decode)
    assert shell.endpoint_pacer("tickets-update").delay(now[0]) > 0
    assert shell.pacer.delay(now[0]) == 0  # reads go on
    slept.clear()
    shell.send(Request("GET", "https://x.example/api/v2/tickets/1.json"), decode)
    assert slept == []


def backfill(tmp_path: Path, share: float) -> tuple[Sandbox, Totals | None, Agents]:
    clock = ManualClock(START)
    sandbox = Sandbox.seeded(
        clock=clock, anchor=START, incremental_export_limit=None, zendesk_update_limit=100
    )
    sandbox.seed(generate(400, seed=3, anchor=START), customers=(), helpdesks=("zendesk",))
    agents = Agents(sandbox, clock)
    desk = open_desk(
        "zendesk",
        tmp_path / str(share),
        sandbox,
        clock,
        section={"update_share": share},
        sleep=agents.advance,
        observers=[agents.request_took],
        monotonic=agents.seconds,
    )
    totals = None
    try:
        clock.advance(61)
        totals = desk.sync.poll("poll", START - timedelta(days=400))
    except RateLimited:
        pass  # the whole budget, fought over with the agents: the caller looks at the minutes
    finally:
        desk.sync.helpdesk.close()
        desk.state.close()
    return sandbox, totals, agents


def test_a_backfill_leaves_the_agents_their_half_of_update_ticket(tmp_path: Path) -> None:
    sandbox, totals, agents = backfill(tmp_path, share=0.5)
    assert totals is not None
    assert totals.failed == 0
    assert totals.writes > 400
    assert sandbox.zendesk.agent_updates > 100  # the agents worked all along
    assert sandbox.zendesk.agent_429s == 0
    assert sandbox.counters.total(helpdesk="zendesk", method="PUT", status=429) == 0
    assert agents.busiest_minute() <= 50  # never more than its half in any minute


def test_without_a_share_the_connector_takes_more_than_half(tmp_path: Path) -> None:
    """The same backfill allowed the whole Update Ticket budget takes more than half of it in
    some minute (and ends up fighting the agents for the rest): the share, not the account's
    limit, is what keeps half for the agents."""
    _, _, agents = backfill(tmp_path, share=1.0)
    assert agents.busiest_minute() > 50


# --- Freshdesk: the plan's sub-limits, which Freshdesk enforces and never announces ----------


def test_the_sandbox_plans_are_freshdesks_figures() -> None:
    assert PLANS == {
        "growth": {"account": 200, "tickets-update": 80, "tickets-list": 20},
        "pro": {"account": 400, "tickets-update": 160, "tickets-list": 100},
        "enterprise": {"account": 700, "tickets-update": 280, "tickets-list": 200},
    }
    for plan, limits in PLANS.items():
        assert PLAN_SUB_LIMITS[plan] == {k: v for k, v in limits.items() if k != "account"}


def freshdesk_backfill(tmp_path: Path, plan: str | None) -> Sandbox:
    """A Growth account (update 80 a minute, the account 200): the connector told the plan,
    or not. Each request takes 50 ms of the sandbox clock: the account's limit binds first."""
    clock = ManualClock(START)
    sandbox = Sandbox.seeded(clock=clock, anchor=START, freshdesk_plan="growth")
    sandbox.seed(generate(300, seed=4, anchor=START), customers=(), helpdesks=("freshdesk",))
    desk = open_desk(
        "freshdesk",
        tmp_path / str(plan),
        sandbox,
        clock,
        section={"plan": plan},
        observers=[lambda *_: clock.advance(0.05)],
    )
    try:
        totals = desk.sync.poll("poll", START - timedelta(days=400))
        assert totals.failed == 0
        assert totals.writes > 300
    finally:
        desk.sync.helpdesk.close()
        desk.state.close()
    return sandbox


def test_told_its_plan_the_connector_stays_within_freshdesks_sub_limits(tmp_path: Path) -> None:
    sandbox = freshdesk_backfill(tmp_path, "growth")
    assert sandbox.counters.total(helpdesk="freshdesk", status=429) == 0


def test_not_told_its_plan_the_connector_meets_the_update_sub_limit(tmp_path: Path) -> None:
    sandbox = freshdesk_backfill(tmp_path, None)
    assert sandbox.counters.total(helpdesk="freshdesk", method="PUT", status=429) > 0


# --- Zendesk: 30 updates a ticket in 10 minutes -------------------------------------------------


def test_one_busy_ticket_over_its_own_limit_holds_up_no_other(tmp_path: Path) -> None:
    """Zendesk allows 30 updates of one ticket in 10 minutes. A ticket over it is refused
    (429, `Zendesk-RateLimit-per-ticket-updates` spent): that ticket waits for a later try,
    the others are written at once; the shell neither retries it in a loop nor holds every
    request for the ticket's Retry-After."""
    clock = ManualClock(START)
    sandbox = Sandbox.seeded(clock=clock, anchor=START, incremental_export_limit=None)
    desk = open_desk("zendesk", tmp_path, sandbox, clock)
    sync, state = desk.sync, desk.state
    for _ in range(30):  # agents busy on ticket 1001
        assert sandbox.agent_ui_update(1001)
    try:
        clock.advance(120)  # the agents' saves stamped it up to 30 s on; the export lags 60
        before = clock()
        totals = sync.poll("poll", START - timedelta(days=400))
        assert (clock() - before).total_seconds() < 60  # nobody waited the ticket's 10 minutes
        assert totals.writes >= 20
        assert "sla_photoprism" not in sandbox.zendesk.tickets[1001].tags
        assert state.wakeup_of("1001") is not None  # tried again later
        refused = sandbox.counters.total(helpdesk="zendesk", method="PUT", status=429)
        assert refused == 1
    finally:
        sync.helpdesk.close()
        state.close()
