"""Decisions: states, recurrence, next_change_at, reclassification, unmapped tickets."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from connector.sla.contract import Contract
from connector.sla.engine import decide_with
from connector.sla.model import Decision, TicketFacts
from connector.timeutil import format_instant


def z(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def decide(contracts: dict[str, Contract], now: str, **facts: Any) -> Decision:
    data: dict[str, Any] = {"id": "1", **facts}
    return decide_with(contracts, TicketFacts.model_validate(data), z(now))


def gold_sev1(contracts: dict[str, Contract], now: str, **events: Any) -> Decision:
    # Monday 2 March 2026, 09:15 Berlin: first response due Tuesday 09:15 (08:15Z),
    # at risk after 6 business hours: Monday 15:15 (14:15Z).
    return decide(
        contracts,
        now,
        created_at="2026-03-02T08:15:00Z",
        contract="photoprism",
        plan="gold",
        severity="sev1",
        events=events,
    )


@pytest.mark.parametrize(
    ("now", "state"),
    [
        ("2026-03-02T08:15:00Z", "running"),
        ("2026-03-02T14:14:59Z", "running"),
        ("2026-03-02T14:15:00Z", "at_risk"),
        ("2026-03-03T08:15:00Z", "at_risk"),  # at the due instant: not yet past due
        ("2026-03-03T08:15:01Z", "breached"),
    ],
)
def test_states_over_time(contracts: dict[str, Contract], now: str, state: str) -> None:
    target = gold_sev1(contracts, now).targets["first_response"]
    assert format_instant(target.due) == "2026-03-03T08:15:00Z"  # type: ignore[arg-type]
    assert target.state == state


def test_next_change_at_is_when_the_state_turns(contracts: dict[str, Contract]) -> None:
    assert gold_sev1(contracts, "2026-03-02T09:00:00Z").next_change_at == z("2026-03-02T14:15:00Z")
    # At risk: the next change is the first second past due (resolution's at-risk is later).
    at_risk = gold_sev1(contracts, "2026-03-02T15:00:00Z")
    assert at_risk.next_change_at == z("2026-03-03T08:15:01Z")
    # Deciding again at next_change_at really changes the decision.
    again = gold_sev1(contracts, "2026-03-03T08:15:01Z")
    assert again.targets["first_response"].state == "breached"
    assert "sla_breached" in again.tags
    assert "sla_breached" not in at_risk.tags


def test_nothing_pending_means_no_next_change(contracts: dict[str, Contract]) -> None:
    done = gold_sev1(
        contracts,
        "2026-03-20T00:00:00Z",
        first_agent_reply_at="2026-03-02T10:00:00Z",
        solved_at="2026-03-03T10:00:00Z",
    )
    assert {t.state for t in done.targets.values()} == {"achieved"}
    assert done.next_change_at is None


def test_an_event_at_the_due_instant_achieves_and_a_late_one_breaches(
    contracts: dict[str, Contract],
) -> None:
    on_time = gold_sev1(
        contracts, "2026-03-05T00:00:00Z", first_agent_reply_at="2026-03-03T08:15:00Z"
    )
    late = gold_sev1(contracts, "2026-03-05T00:00:00Z", first_agent_reply_at="2026-03-03T08:15:01Z")
    assert on_time.targets["first_response"].state == "achieved"
    assert late.targets["first_response"].state == "breached"


def test_events_after_now_have_not_happened_yet(contracts: dict[str, Contract]) -> None:
    decision = gold_sev1(
        contracts, "2026-03-02T09:00:00Z", first_agent_reply_at="2026-03-02T10:00:00Z"
    )
    assert decision.targets["first_response"].state == "running"


def test_best_effort_never_breaches(contracts: dict[str, Contract]) -> None:
    decision = decide(
        contracts,
        "2027-01-01T00:00:00Z",
        created_at="2026-03-02T08:15:00Z",
        contract="photoprism",
        plan="professional",
        severity="sev1",
    )
    for target in decision.targets.values():
        assert (target.due, target.best_effort, target.state) == (None, True, "best_effort")
    assert decision.next_change_at is None


def test_agent_override_wins_and_both_are_reported(contracts: dict[str, Contract]) -> None:
    decision = decide(
        contracts,
        "2026-11-16T08:00:00Z",
        created_at="2026-11-16T08:00:00Z",
        contract="pix4d-premium",
        severity="information",
        severity_override="critical",
        customer_facts={"offices": ["lausanne"]},
    )
    assert (decision.severity_submitted, decision.severity) == ("information", "critical")
    assert decision.priority == "urgent"
    assert decision.tags == ["sla_pix4d-premium", "sla_critical"]
    # Monday 09:00 Lausanne + 1 business hour.
    assert decision.targets["first_contact"].due == z("2026-11-16T09:00:00Z")
    assert "submitted as information" in decision.note


def test_missing_offices_default_to_lausanne(contracts: dict[str, Contract]) -> None:
    decision = decide(
        contracts,
        "2026-11-16T08:00:00Z",
        created_at="2026-11-16T08:00:00Z",
        contract="pix4d-premium",
        severity="critical",
    )
    assert "sla_defaulted" in decision.tags
    assert decision.calendar == "Lausanne office"
    assert "no offices on the customer" in decision.targets["first_contact"].basis


def recurring(contracts: dict[str, Contract], now: str, **events: Any) -> Decision:
    # Monday 16 November 2026 10:00 in Vaud (09:00Z), major: 4 business hours a cycle.
    return decide(
        contracts,
        now,
        created_at="2026-11-16T09:00:00Z",
        contract="pix4dengine-enterprise",
        severity="major",
        region="europe",
        events=events,
    )


def test_recurring_target_rearms_after_each_agent_reply(contracts: dict[str, Contract]) -> None:
    first = recurring(contracts, "2026-11-16T09:30:00Z").targets["response"]
    assert (first.due, first.cycle) == (z("2026-11-16T13:00:00Z"), 1)
    # A reply at 13:30 local (12:30Z) starts cycle 2: 3.5 h today, 0.5 h tomorrow from 09:00.
    second = recurring(
        contracts, "2026-11-16T15:00:00Z", agent_replies=["2026-11-16T12:30:00Z"]
    ).targets["response"]
    assert (second.due, second.cycle, second.cycles_breached) == (z("2026-11-17T08:30:00Z"), 2, 0)
    assert "after the agent reply of 2026-11-16T12:30:00Z" in second.basis


def test_a_late_reply_counts_a_breached_cycle(contracts: dict[str, Contract]) -> None:
    target = recurring(
        contracts,
        "2026-11-17T09:00:00Z",
        first_agent_reply_at="2026-11-16T14:00:00Z",
        agent_replies=["2026-11-16T14:00:00Z"],  # the same reply twice counts once
    ).targets["response"]
    assert (target.cycle, target.cycles_breached) == (2, 1)


def test_recurring_target_ends_when_solved(contracts: dict[str, Contract]) -> None:
    target = recurring(
        contracts,
        "2026-11-20T00:00:00Z",
        agent_replies=["2026-11-16T10:00:00Z"],
        solved_at="2026-11-16T11:00:00Z",
    ).targets["response"]
    assert target.state == "achieved"
    assert target.achieved_at == z("2026-11-16T11:00:00Z")


@pytest.mark.parametrize(
    ("facts", "problem"),
    [
        ({"contract": "acme"}, "unknown contract 'acme'"),
        ({"contract": "photoprism", "plan": "platinum", "severity": "sev1"}, "unknown plan"),
        ({"contract": "photoprism", "plan": "gold", "severity": "sev9"}, "unknown severity 'sev9'"),
        ({"contract": "photoprism", "plan": "gold"}, "no severity"),
        ({"contract": "photoprism", "severity": "sev1"}, "no plan"),
        (
            {"contract": "pix4d-premium", "severity": "minor", "severity_override": "meh"},
            "unknown severity override 'meh'",
        ),
        (
            {
                "contract": "pix4d-premium",
                "severity": "minor",
                "customer_facts": {"offices": ["paris"]},
            },
            "unknown office 'paris'",
        ),
        ({"contract": "pix4dengine-enterprise", "severity": "major"}, "no region"),
        (
            {"contract": "pix4dengine-enterprise", "severity": "major", "region": "moon"},
            "unknown region 'moon'",
        ),
        (
            {
                "contract": "pixelz",
                "category": "order",
                "customer_facts": {"timezone": "Mars/Base"},
            },
            "unknown customer time zone",
        ),
    ],
)
def test_unmappable_tickets_are_tagged_not_raised(
    contracts: dict[str, Contract], facts: dict[str, Any], problem: str
) -> None:
    decision = decide(contracts, "2026-11-16T09:00:00Z", created_at="2026-11-16T09:00:00Z", **facts)
    assert decision.problem is not None
    assert problem in decision.problem
    assert "sla_unmapped" in decision.tags
    assert decision.targets == {}
    assert decision.next_change_at is None


def order(contracts: dict[str, Contract], created: str, **extra: Any) -> Decision:
    return decide(
        contracts,
        created,
        created_at=created,
        contract="pixelz",
        category="order",
        quantities={"images": 10},
        flags={"expedite": True},
        customer_facts={"timezone": "Asia/Tokyo"},
        **extra,
    )


@pytest.mark.parametrize(
    ("created", "standard_due"),
    [
        ("2026-11-16T00:00:00Z", None),  # Monday 00:00 UTC opens the window
        ("2026-11-20T23:59:59Z", None),  # Friday 24:00 UTC closes it
        # Saturday in UTC (and in Tokyo): standard, Monday 09:00 JST.
        ("2026-11-21T00:00:00Z", "2026-11-23T00:00:00Z"),
        # Sunday 23:59:59 UTC is already Monday 08:59 in Tokyo, yet outside the UTC window:
        # standard, due the next local morning, Tuesday 09:00 JST.
        ("2026-11-22T23:59:59Z", "2026-11-24T00:00:00Z"),
    ],
)
def test_expedite_window_is_monday_to_friday_utc(
    contracts: dict[str, Contract], created: str, standard_due: str | None
) -> None:
    expedited = standard_due is None
    decision = order(contracts, created)
    delivery = decision.targets["delivery"]
    if expedited:
        assert delivery.due == z(created) + timedelta(hours=3)
        assert decision.priority == "high"
        assert "expedite_unavailable" not in decision.tags
    else:
        assert delivery.due == z(standard_due)
        assert decision.priority == "normal"
        assert "expedite_unavailable" in decision.tags
    assert [(p.quantity, p.due) for p in delivery.parts or []] == [(10, delivery.due)]


def test_customer_without_zone_is_served_in_utc_and_flagged(contracts: dict[str, Contract]) -> None:
    decision = decide(
        contracts,
        "2026-11-17T10:00:00Z",
        created_at="2026-11-17T10:00:00Z",
        contract="pixelz",
        category="order",
        quantities={"images": 1},
    )
    assert decision.targets["delivery"].due == z("2026-11-18T09:00:00Z")
    assert "sla_defaulted" in decision.tags


def test_inquiries_and_orders_get_their_own_targets(contracts: dict[str, Contract]) -> None:
    inquiry = decide(
        contracts,
        "2026-11-17T10:00:00Z",
        created_at="2026-11-17T10:00:00Z",
        contract="pixelz",
        category="inquiry",
        customer_facts={"timezone": "Europe/Paris"},
    )
    assert list(inquiry.targets) == ["first_response"]
    assert list(order(contracts, "2026-11-17T10:00:00Z").targets) == [
        "rejection_notice",
        "delivery",
    ]


def test_decision_json_uses_the_design_field_names(contracts: dict[str, Contract]) -> None:
    data = gold_sev1(contracts, "2026-03-02T09:00:00Z").model_dump(mode="json")
    for key in (
        "ticket",
        "contract",
        "plan",
        "severity_submitted",
        "severity",
        "entitlement",
        "targets",
        "priority",
        "tags",
        "note",
        "next_change_at",
    ):
        assert key in data
    first = data["targets"]["first_response"]
    assert first["due"] == "2026-03-03T08:15:00Z"
    assert {"due", "best_effort", "state", "basis"} <= set(first)
