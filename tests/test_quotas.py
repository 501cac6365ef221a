"""Quotas: periods, the order tickets consume them in, and invariance under re-processing."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.mappingfiles import load_contract
from connector.sla.contract import Contract
from connector.sla.engine import decide_all
from connector.sla.model import Decision, TicketFacts
from connector.sla.quotas import contract_year_start, order_key
from tests.conftest import ROOT

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def ticket(id_: str, created: str, **extra: Any) -> TicketFacts:
    data: dict[str, Any] = {
        "id": id_,
        "created_at": created,
        "customer": "org-1",
        "contract": "photoprism",
        "plan": "gold",
        "severity": "sev2",
        **extra,
    }
    return TicketFacts.model_validate(data)


def by_ticket(decisions: list[Decision]) -> dict[str, Decision]:
    return {d.ticket: d for d in decisions}


def test_gold_has_four_incidents_a_month(contracts: dict[str, Contract]) -> None:
    tickets = [ticket(str(i), f"2026-03-0{i}T10:00:00Z") for i in range(1, 7)]
    decisions = by_ticket(decide_all(contracts, tickets, NOW))
    assert [decisions[str(i)].entitlement for i in range(1, 7)] == ["included"] * 4 + [
        "over_quota"
    ] * 2
    fifth = decisions["5"]
    assert "sla_quota_exceeded" in fifth.tags
    for target in fifth.targets.values():
        assert (target.due, target.best_effort, target.state) == (None, True, "best_effort")
    assert "incidents: 5 of 4 in 2026-03" in fifth.targets["first_response"].basis
    assert fifth.quotas[0].model_dump() == {
        "quota": "incidents",
        "period": "2026-03",
        "count": 5,
        "limit": 4,
        "fits": False,
    }
    assert decisions["4"].targets["first_response"].due is not None


def test_a_late_older_ticket_moves_a_younger_one_over_quota(
    contracts: dict[str, Contract],
) -> None:
    first = ticket("20", "2026-03-10T10:00:00Z", plan="professional")
    alone = by_ticket(decide_all(contracts, [first], NOW))
    assert alone["20"].entitlement == "included"
    older = ticket("21", "2026-03-02T10:00:00Z", plan="professional")
    both = by_ticket(decide_all(contracts, [first, older], NOW))
    assert (both["21"].entitlement, both["20"].entitlement) == ("included", "over_quota")


def test_ties_are_broken_by_numeric_id(contracts: dict[str, Contract]) -> None:
    same = "2026-03-10T10:00:00Z"
    tickets = [ticket("10", same, plan="professional"), ticket("9", same, plan="professional")]
    decisions = by_ticket(decide_all(contracts, tickets, NOW))
    assert (decisions["9"].entitlement, decisions["10"].entitlement) == ("included", "over_quota")
    assert order_key(tickets[1]) < order_key(tickets[0])


def test_deleted_and_spam_never_count(contracts: dict[str, Contract]) -> None:
    tickets = [
        ticket("1", "2026-03-02T10:00:00Z", plan="professional", status="deleted"),
        ticket("2", "2026-03-03T10:00:00Z", plan="professional", status="spam"),
        ticket("3", "2026-03-04T10:00:00Z", plan="professional"),
    ]
    assert by_ticket(decide_all(contracts, tickets, NOW))["3"].entitlement == "included"


def test_months_are_counted_in_the_contracts_zone(contracts: dict[str, Contract]) -> None:
    # 31 March 22:30 UTC is 1 April 00:30 in Berlin: April's quota.
    tickets = [
        ticket("1", "2026-03-20T10:00:00Z", plan="professional"),
        ticket("2", "2026-03-31T22:30:00Z", plan="professional"),
    ]
    decisions = by_ticket(decide_all(contracts, tickets, NOW))
    assert decisions["2"].entitlement == "included"
    assert decisions["2"].quotas[0].period == "2026-04"


def test_customers_have_their_own_quota(contracts: dict[str, Contract]) -> None:
    tickets = [
        ticket("1", "2026-03-02T10:00:00Z", plan="professional"),
        ticket("2", "2026-03-03T10:00:00Z", plan="professional", customer="org-2"),
    ]
    assert {d.entitlement for d in decide_all(contracts, tickets, NOW)} == {"included"}


@pytest.mark.parametrize(
    ("start", "day", "expected"),
    [
        ("2025-06-15", "2026-06-14", "2025-06-15"),
        ("2025-06-15", "2026-06-15", "2026-06-15"),
        # 29 February renews on 28 February in common years, and on 29 in leap years.
        ("2024-02-29", "2025-02-27", "2024-02-29"),
        ("2024-02-29", "2025-02-28", "2025-02-28"),
        ("2024-02-29", "2027-03-01", "2027-02-28"),
        ("2024-02-29", "2028-02-28", "2027-02-28"),
        ("2024-02-29", "2028-02-29", "2028-02-29"),
    ],
)
def test_contract_year_anniversaries(start: str, day: str, expected: str) -> None:
    result = contract_year_start(date.fromisoformat(start), date.fromisoformat(day))
    assert result == date.fromisoformat(expected)


# -- invariance ------------------------------------------------------------------------------

ticket_sets = st.lists(
    st.tuples(
        st.sampled_from(["org-1", "org-2", "org-3"]),
        st.sampled_from(["professional", "enterprise", "gold"]),
        st.integers(min_value=0, max_value=24 * 75),  # hours from 1 March 2026
        st.sampled_from(["open", "open", "open", "deleted"]),
    ),
    min_size=1,
    max_size=40,
)


def _facts(rows: list[tuple[str, str, int, str]]) -> list[TicketFacts]:
    base = datetime(2026, 3, 1, tzinfo=UTC)
    return [
        TicketFacts(
            id=str(i),
            customer=customer,
            contract="photoprism",
            plan=plan,
            severity="sev3",
            created_at=base + timedelta(hours=hours),
            status=status,  # type: ignore[arg-type]
        )
        for i, (customer, plan, hours, status) in enumerate(rows)
    ]


@settings(max_examples=150)
@given(rows=ticket_sets, seed=st.integers(min_value=0, max_value=2**32))
def test_decisions_depend_only_on_the_set(
    contracts: dict[str, Contract], rows: list[tuple[str, str, int, str]], seed: int
) -> None:
    tickets = _facts(rows)
    shuffled = tickets + random.Random(seed).sample(tickets, k=len(tickets) // 2)
    random.Random(seed).shuffle(shuffled)
    assert by_ticket(decide_all(contracts, tickets, NOW)) == by_ticket(
        decide_all(contracts, shuffled, NOW)
    )


@settings(max_examples=150)
@given(rows=ticket_sets)
def test_no_quota_is_ever_exceeded(
    contracts: dict[str, Contract], rows: list[tuple[str, str, int, str]]
) -> None:
    tickets = {t.id: t for t in _facts(rows)}
    counts: dict[tuple[str, str], list[int]] = {}
    for decision in decide_all(contracts, list(tickets.values()), NOW):
        for quota in decision.quotas:
            assert quota.fits == (decision.entitlement == "included")
            assert quota.fits == (quota.count <= quota.limit)
            if quota.fits:
                key = (tickets[decision.ticket].customer or "", quota.period)
                counts.setdefault(key, []).append(quota.count)
        if tickets[decision.ticket].status == "deleted":
            assert decision.quotas == []
    # Within a customer's month, the tickets that fit hold the places 1, 2, ... k once each.
    for places in counts.values():
        assert sorted(places) == list(range(1, len(places) + 1))


# -- a sixth contract, YAML only --------------------------------------------------------------


def test_a_new_vendor_needs_only_a_yaml_file() -> None:
    acme = load_contract(ROOT / "tests" / "data" / "contracts" / "acme-msp.yaml")
    contracts = {"acme-msp": acme}

    def facts(id_: str, created: str, severity: str) -> TicketFacts:
        return TicketFacts(
            id=id_,
            customer="c",
            contract="acme-msp",
            severity=severity,
            created_at=datetime.fromisoformat(created),
        )

    # Saturday 23:00: P1 is one plain hour; P2 waits for Monday 08:00 + 4 business hours.
    saturday = "2026-11-21T23:00:00+01:00"
    decisions = by_ticket(
        decide_all(contracts, [facts("1", saturday, "P1"), facts("2", saturday, "P2")], NOW)
    )
    assert decisions["1"].targets["reaction"].due == datetime(2026, 11, 21, 23, tzinfo=UTC)
    assert decisions["2"].targets["reaction"].due == datetime(2026, 11, 23, 11, tzinfo=UTC)
    # P3: 1 business day = 9 h of the 08:00-17:00 calendar; 6 January (Epiphany) is a Bavarian
    # holiday: Monday 5 January 2026 16:00 + 9 h = 1 h Monday + 8 h Wednesday = 16:00.
    p3 = decide_all(contracts, [facts("3", "2026-01-05T16:00:00+01:00", "P3")], NOW)[0]
    assert p3.targets["reaction"].due == datetime(2026, 1, 7, 15, tzinfo=UTC)
    assert p3.priority == "normal"
    # Ten tickets a month, the eleventh is over quota.
    month = [facts(str(i), f"2026-02-{i + 1:02d}T10:00:00+01:00", "P4") for i in range(11)]
    entitlements = [d.entitlement for d in decide_all(contracts, month, NOW)]
    assert entitlements == ["included"] * 10 + ["over_quota"]
