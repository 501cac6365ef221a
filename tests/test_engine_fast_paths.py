"""The engine's fast paths: streamed decisions, trusted result models, remembered lookups."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connector.mappingfiles import load_contract, load_contracts
from connector.sla.contract import Contract
from connector.sla.engine import decide, decide_all, decide_each
from connector.sla.model import Decision, Part, QuotaResult, TargetResult, TicketFacts, trusted
from tests.conftest import MAPPINGS

NOW = datetime(2026, 3, 20, 12, tzinfo=UTC)
DUE = datetime(2026, 3, 3, 8, 15, tzinfo=UTC)


def facts(id_: str, **extra: Any) -> TicketFacts:
    data: dict[str, Any] = {
        "id": id_,
        "created_at": "2026-03-02T08:15:00Z",
        "customer": "org-1",
        "contract": "photoprism",
        "plan": "gold",
        "severity": "sev2",
        **extra,
    }
    return TicketFacts.model_validate(data)


def test_decide_each_streams_what_decide_all_returns(contracts: dict[str, Contract]) -> None:
    tickets = [
        facts("1"),
        facts("2", plan="professional"),
        facts("1", severity="sev1"),  # a newer version of ticket 1
        facts("3", contract="nosuch"),
        facts("4", contract="pixelz", category="order", quantities={"images": 250}),
    ]
    stream = decide_each(contracts, tickets, NOW)
    assert not isinstance(stream, list)
    streamed = [d.model_dump_json() for d in stream]
    assert streamed == [d.model_dump_json() for d in decide_all(contracts, tickets, NOW)]
    assert [Decision.model_validate_json(d).ticket for d in streamed] == [
        "1",
        "2",
        "3",
        "4",
    ]
    assert Decision.model_validate_json(streamed[0]).severity == "sev1"


@pytest.mark.parametrize(
    ("model", "values"),
    [
        (Part, {"quantity": 20, "due": DUE}),
        (
            QuotaResult,
            {"quota": "incidents", "period": "2026-03", "count": 5, "limit": 4, "fits": False},
        ),
        (
            TargetResult,
            {"due": DUE, "best_effort": False, "state": "running", "basis": "8 business hours"},
        ),
        (
            TargetResult,
            {"basis": "x", "state": "best_effort", "best_effort": True, "due": None, "cycle": 2},
        ),
    ],
)
def test_trusted_models_equal_validated_ones(model: Any, values: dict[str, Any]) -> None:
    made, validated = trusted(model, **values), model(**values)
    assert made == validated
    assert made.model_dump_json() == validated.model_dump_json()
    assert made.model_fields_set == validated.model_fields_set


def test_trusted_refuses_unknown_and_missing_fields() -> None:
    with pytest.raises(TypeError, match="no field colour"):
        trusted(Part, quantity=1, due=None, colour="red")
    with pytest.raises(TypeError, match="needs state, basis"):
        trusted(TargetResult, due=None, best_effort=True)


def test_an_unknown_customer_zone_is_unmapped_and_takes_no_capacity(
    contracts: dict[str, Contract],
) -> None:
    def order(id_: str, images: int, zone: str) -> TicketFacts:
        return facts(
            id_,
            contract="pixelz",
            plan=None,
            severity=None,
            category="order",
            quantities={"images": images},
            customer_facts={"timezone": zone},
        )

    stray, other = decide_all(
        contracts, [order("1", 200, "Mars/Base"), order("2", 150, "Europe/Paris")], NOW
    )
    assert stray.problem == "unknown customer time zone 'Mars/Base'"
    assert "capacity_exceeded" not in other.tags
    assert other.targets["delivery"].parts == [
        Part(quantity=150, due=datetime(2026, 3, 3, 8, tzinfo=UTC))
    ]


def test_each_loaded_contract_keeps_its_own_lookups(tmp_path: Path) -> None:
    text = (MAPPINGS / "contracts" / "photoprism.yaml").read_text(encoding="utf-8")
    old, new = "gold: {sev1: 8 business_hours, sev2: 8", "gold: {sev1: 8 business_hours, sev2: 4"
    assert old in text
    (tmp_path / "photoprism.yaml").write_text(text.replace(old, new), encoding="utf-8")
    bundled = load_contracts(MAPPINGS)["photoprism"]
    edited = load_contract(tmp_path / "photoprism.yaml")
    ticket = facts("1")
    assert decide(bundled, ticket, NOW).targets["first_response"].basis.startswith("8 business")
    assert decide(edited, ticket, NOW).targets["first_response"].basis.startswith("4 business")
    assert decide(bundled, ticket, NOW).targets["first_response"].basis.startswith("8 business")
