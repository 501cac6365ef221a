"""Solidxperts: scope, the lifetime installation allowance, grace calls, pay per incident."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from connector.sla.contract import Contract
from connector.sla.engine import decide_all
from connector.sla.model import Decision, TicketFacts

NOW = datetime(2027, 1, 1, tzinfo=UTC)
CUSTOMER = {"seats": 3, "subscription_start": "2025-06-15", "subscription_kind": "annual"}


def ticket(id_: str, created: str, category: str, **extra: Any) -> TicketFacts:
    customer = {**CUSTOMER, **extra.pop("customer_facts", {})}
    return TicketFacts.model_validate(
        {
            "id": id_,
            "created_at": created,
            "customer": "cad-1",
            "contract": "solidxperts",
            "category": category,
            "customer_facts": customer,
            **extra,
        }
    )


def decided(contracts: dict[str, Contract], *tickets: TicketFacts) -> dict[str, Decision]:
    return {d.ticket: d for d in decide_all(contracts, tickets, NOW)}


@pytest.mark.parametrize(
    ("category", "product", "entitlement"),
    [
        ("software_error", None, "included"),
        ("license", "solidworks", "included"),
        ("major_upgrade", None, "included"),
        ("service_pack", None, "included"),
        ("software_error", "pdm", "grace"),
        ("license", "DriveWorks", "grace"),
        ("how_to", None, "grace"),
        ("configuration", None, "grace"),
        ("it_infrastructure", None, "grace"),
        ("training", None, "grace"),
    ],
)
def test_scope_by_category_and_product(
    contracts: dict[str, Contract], category: str, product: str | None, entitlement: str
) -> None:
    decision = decided(contracts, ticket("1", "2026-09-01T14:00:00Z", category, product=product))[
        "1"
    ]
    assert decision.entitlement == entitlement
    assert decision.priority == "normal"
    assert ("grace_call_used" in decision.tags) == (entitlement == "grace")


def test_grace_calls_then_pay_per_incident(contracts: dict[str, Contract]) -> None:
    # 3 seats: one grace call a contract year (15 June to 14 June).
    first = ticket("1", "2026-07-01T14:00:00Z", "how_to")
    second = ticket("2", "2026-08-01T14:00:00Z", "training")
    next_year = ticket("3", "2027-06-15T14:00:00Z", "configuration")
    result = decided(contracts, first, second, next_year)
    assert result["1"].entitlement == "grace"
    assert "account manager" in result["1"].note
    assert result["2"].entitlement == "pay_per_incident"
    assert "ppi_offer" in result["2"].tags
    assert "fixed-price incident" in result["2"].note
    assert result["3"].entitlement == "grace"
    assert result["3"].quotas[0].period == "2027-06-15/2028-06-14"


@pytest.mark.parametrize(("seats", "grace"), [(1, 1), (5, 1), (6, 2), (15, 2), (16, 3), (200, 3)])
def test_grace_calls_by_seats(contracts: dict[str, Contract], seats: int, grace: int) -> None:
    tickets = [
        ticket(str(i), f"2026-07-{i + 1:02d}T14:00:00Z", "how_to", customer_facts={"seats": seats})
        for i in range(4)
    ]
    entitlements = [d.entitlement for d in decide_all(contracts, tickets, NOW)]
    assert entitlements == ["grace"] * grace + ["pay_per_incident"] * (4 - grace)


@pytest.mark.parametrize(
    ("customer", "in_scope", "out_of_scope"),
    [
        ({"active": False}, "not_eligible", "pay_per_incident"),
        ({"subscription_kind": "qsc"}, "included", "pay_per_incident"),
        ({"subscription_kind": "QLC"}, "included", "pay_per_incident"),
        ({"subscription_kind": "annual"}, "included", "grace"),
    ],
)
def test_eligibility(
    contracts: dict[str, Contract], customer: dict[str, Any], in_scope: str, out_of_scope: str
) -> None:
    result = decided(
        contracts,
        ticket("1", "2026-07-01T14:00:00Z", "software_error", customer_facts=customer),
        ticket("2", "2026-07-02T14:00:00Z", "how_to", customer_facts=customer),
    )
    assert (result["1"].entitlement, result["2"].entitlement) == (in_scope, out_of_scope)


def test_installations_are_covered_for_two_devices_for_life(
    contracts: dict[str, Contract],
) -> None:
    tickets = [
        ticket("1", "2024-01-10T14:00:00Z", "installation"),  # 1 device by default
        # Would make 3 devices: out of scope as a whole, uses the year's grace call...
        ticket("2", "2025-03-01T14:00:00Z", "installation", quantities={"devices": 2}),
        # ...and does not count, so one more device still fits, years later.
        ticket("3", "2026-09-01T14:00:00Z", "installation", quantities={"devices": 1}),
        ticket("4", "2026-10-01T14:00:00Z", "installation"),
    ]
    result = decided(contracts, *tickets)
    assert [result[str(i)].entitlement for i in range(1, 5)] == [
        "included",
        "grace",
        "included",
        "grace",
    ]


def test_a_late_older_out_of_scope_ticket_takes_the_grace_call(
    contracts: dict[str, Contract],
) -> None:
    younger = ticket("10", "2026-08-01T14:00:00Z", "how_to")
    assert decided(contracts, younger)["10"].entitlement == "grace"
    older = ticket("9", "2026-07-01T14:00:00Z", "how_to")
    result = decided(contracts, younger, older)
    assert (result["9"].entitlement, result["10"].entitlement) == ("grace", "pay_per_incident")


def test_deleted_tickets_use_no_grace_call(contracts: dict[str, Contract]) -> None:
    result = decided(
        contracts,
        ticket("1", "2026-07-01T14:00:00Z", "how_to", status="deleted"),
        ticket("2", "2026-07-02T14:00:00Z", "how_to"),
    )
    assert result["2"].entitlement == "grace"


def test_contract_years_start_in_quebec(contracts: dict[str, Contract]) -> None:
    # 15 June 2026 02:00 UTC is still 14 June in Québec: the old contract year.
    result = decided(
        contracts,
        ticket("1", "2026-06-10T14:00:00Z", "how_to"),
        ticket("2", "2026-06-15T02:00:00Z", "how_to"),
    )
    assert result["2"].entitlement == "pay_per_incident"
    assert result["2"].quotas[0].period == "2025-06-15/2026-06-14"
