"""The SLA summary the agents' apps read: compact versioned JSON in one ticket field, written
with the rest of a ticket's results, the same text while the decision is the same (no write),
bounded in size; none on an unmapped ticket."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connector.helpdesks.summary import MAX_SUMMARY, summary_text
from connector.sla.contract import Contract
from connector.sla.engine import decide_with
from connector.sla.model import TicketFacts
from tests.test_sync_e2e import open_desk

CREATED = datetime(2026, 3, 2, 8, 15, tzinfo=UTC)  # a Monday, Berlin office open at 9


def facts(**extra: object) -> TicketFacts:
    values: dict[str, object] = {
        "id": "7",
        "created_at": CREATED,
        "contract": "photoprism",
        "customer": "101",
        "plan": "gold",
        "severity": "sev2",
        "customer_facts": {"timezone": "Europe/Berlin", "seats": 10},
    }
    return TicketFacts.model_validate({**values, **extra})


def test_the_summary_says_what_a_panel_shows(contracts: dict[str, Contract]) -> None:
    decision = decide_with(contracts, facts(), CREATED + timedelta(hours=1))
    summary = json.loads(summary_text(decision, contracts["photoprism"].spec))
    assert summary["v"] == 1
    assert (summary["contract"], summary["plan"], summary["severity"]) == (
        "photoprism",
        "gold",
        "sev2",
    )
    assert summary["title"] == "PhotoPrism Business Support"
    assert summary["entitlement"] == "included"
    first = summary["targets"][0]
    assert first["name"] == "first_response"
    assert first["state"] == "running"
    assert first["due"] == "2026-03-03T08:15:00Z"  # 8 business hours from 9:15 CET
    assert summary["quotas"][0]["count"] == 1
    # The contract's words for people, beside the names the rules use.
    spec = contracts["photoprism"].spec
    assert summary["quotas"][0]["label"] == spec.quotas["incidents"].label
    assert [t.get("label") for t in summary["targets"]] == [
        spec.targets[t["name"]].label for t in summary["targets"]
    ]
    assert summary["lines"][0].startswith("SLA PhotoPrism Business Support")
    assert "now" not in summary  # nothing that moves by itself: the app counts down


def test_the_same_decision_writes_the_same_summary(contracts: dict[str, Contract]) -> None:
    """Minutes apart, with nothing changed on the ticket, the summary is the same text: the
    minimal write sends nothing."""
    early = decide_with(contracts, facts(), CREATED + timedelta(hours=1))
    later = decide_with(contracts, facts(), CREATED + timedelta(hours=2))
    assert summary_text(early) == summary_text(later)


def test_a_summary_over_the_limit_loses_its_explanation_first(
    contracts: dict[str, Contract],
) -> None:
    decision = decide_with(contracts, facts(), CREATED + timedelta(hours=1))
    long = decision.model_copy(update={"note": "\n".join(["x" * 200] * 40)})
    text = summary_text(long)
    assert len(text) <= MAX_SUMMARY
    summary = json.loads(text)
    assert summary["cut"] is True
    assert summary["lines"] == []
    assert summary["targets"][0]["due"] == "2026-03-03T08:15:00Z"  # what matters stays


@pytest.mark.parametrize("helpdesk", ["zendesk", "freshdesk"])
def test_each_written_ticket_holds_its_summary_and_a_second_pass_writes_nothing(
    helpdesk: str, tmp_path: Path
) -> None:
    desk = open_desk(helpdesk, tmp_path)
    totals = desk.run()
    assert totals.failed == 0
    field: int | str = 9100105 if helpdesk == "zendesk" else "cf_sla_summary"
    tickets = desk.tickets()

    def summary(ticket_id: int) -> str | None:
        ticket = tickets[ticket_id]
        value = ticket.fields.get(field) if helpdesk == "zendesk" else ticket.custom.get(field)
        return None if value is None else str(value)

    held = json.loads(summary(1001) or "{}")
    assert (held.get("v"), held.get("contract")) == (1, "photoprism")
    assert summary(9001) is None  # unmapped: no SLA result, the summary included
    before = desk.writes()
    assert desk.run().writes == 0
    assert desk.writes() == before


def test_a_paused_ticket_keeps_the_same_summary_while_it_waits(
    contracts: dict[str, Contract],
) -> None:
    """While the clock is stopped, the time paused so far grows with every decision: it is
    not in the summary, else a waiting ticket would be rewritten at every poll."""
    waiting = facts(
        status="pending",
        status_history=[{"at": CREATED + timedelta(minutes=30), "status": "pending"}],
    )
    early = decide_with(contracts, waiting, CREATED + timedelta(days=2))
    later = decide_with(contracts, waiting, CREATED + timedelta(days=2, minutes=5))
    assert summary_text(early) == summary_text(later)
    [resolution] = [
        t for t in json.loads(summary_text(early))["targets"] if t["name"] == "resolution"
    ]
    assert resolution["state"] == "paused"
    assert resolution["owed_seconds"] > 0


def test_an_order_split_by_capacity_gives_each_share_its_due(
    contracts: dict[str, Contract],
) -> None:
    """A pixelz order over the day's expedited capacity is split: the summary carries each
    share and its own due, as the panel shows them."""
    order = facts(
        contract="pixelz",
        plan=None,
        severity=None,
        category="order",
        quantities={"images": 35},
        flags={"expedite": True},
        customer_facts={"timezone": "America/Sao_Paulo"},
    )
    decision = decide_with(contracts, order, CREATED + timedelta(minutes=5))
    split = [t for t in decision.targets.values() if t.parts]
    assert split, "the example order is split"
    summary = json.loads(summary_text(decision, contracts["pixelz"].spec))
    [target] = [t for t in summary["targets"] if "parts" in t]
    assert [p["quantity"] for p in target["parts"]] == [p.quantity for p in split[0].parts]
    assert sum(p["quantity"] for p in target["parts"]) <= 35
    assert all(p["due"].endswith("Z") for p in target["parts"])
