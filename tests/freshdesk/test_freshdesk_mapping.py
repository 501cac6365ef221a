"""Freshdesk tickets to facts, and decisions to the minimal writes: round trips."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connector.errors import UnmappedTicket
from connector.helpdesks.freshdesk.mapping import FreshdeskView, writes_for
from connector.helpdesks.freshdesk.models import Company, Ticket, TicketUpdate
from connector.helpdesks.mapping import HelpdeskMapping, desired_results, read_facts
from connector.mappingfiles import load_helpdesk_mapping
from connector.sla.contract import Contract
from connector.sla.engine import decide

MAPPING = Path(__file__).resolve().parents[2] / "mappings" / "helpdesks" / "freshdesk.example.yaml"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def mapping() -> HelpdeskMapping:
    return load_helpdesk_mapping(MAPPING)


def company(**fields: Any) -> Company:
    return Company.model_validate({"id": 5, "name": "Acme", "custom_fields": fields})


def ticket(**changes: Any) -> Ticket:
    data: dict[str, Any] = {
        "id": 42,
        "created_at": "2026-03-02T08:15:00Z",
        "updated_at": "2026-03-02T08:15:01Z",
        "status": 2,
        "priority": 1,
        "company_id": 5,
        "tags": ["vip"],
        "custom_fields": {"cf_sla_severity": "sev1", "cf_images": None},
        "fr_due_by": "2026-03-02T12:15:00Z",  # what Freshdesk's own policy had set
        "due_by": "2026-03-07T08:15:00Z",
        "stats": {"first_responded_at": None, "resolved_at": None},
    }
    data.update(changes)
    return Ticket.model_validate(data)


def applied(before: Ticket, update: TicketUpdate | None) -> Ticket:
    """The ticket as Freshdesk returns it after `update` (what the next poll sees)."""
    if update is None:
        return before
    changes: dict[str, Any] = {}
    for key in ("fr_due_by", "due_by", "priority"):
        if (value := getattr(update, key)) is not None:
            changes[key] = value
    if update.tags is not None:
        changes["tags"] = list(update.tags)
    if update.custom_fields:
        changes["custom_fields"] = {**before.custom_fields, **update.custom_fields}
    return before.model_copy(update=changes)


def decide_ticket(
    wire: Ticket, customer: Company, mapping: HelpdeskMapping, contracts: dict[str, Contract]
) -> tuple[Any, Contract]:
    facts = read_facts(FreshdeskView(wire, customer), mapping)
    contract = contracts[facts.contract]
    return decide(contract, facts, NOW), contract


def test_a_decision_becomes_native_dues_priority_tags_and_one_note(
    mapping: HelpdeskMapping, contracts: dict[str, Contract], owned: frozenset[str]
) -> None:
    customer = company(sla_contract="photoprism", sla_plan="gold", timezone="Europe/Berlin")
    wire = ticket()
    decision, contract = decide_ticket(wire, customer, mapping, contracts)
    desired = desired_results(decision, mapping, owned, contract)
    writes = writes_for(wire, desired, posted_note=None)
    assert writes.update is not None
    # 8 and 16 business hours in Berlin from Monday 09:15 CET
    assert writes.update.fr_due_by == datetime(2026, 3, 3, 8, 15, tzinfo=UTC)
    assert writes.update.due_by == datetime(2026, 3, 4, 8, 15, tzinfo=UTC)
    assert writes.update.priority == 4  # sev1 is urgent
    assert writes.update.tags == (
        "vip",
        "sla_photoprism",
        "sla_plan_gold",
        "sla_sev1",
        "sla_priority_corrected",
    )
    assert writes.note is not None
    assert "sla-connector note " in writes.note

    # The next poll sees the ticket as written: nothing more to send.
    after = applied(wire, writes.update)
    again = writes_for(after, desired, posted_note=desired.note_fingerprint)
    assert again.is_empty


def test_an_agents_tags_survive_and_stale_sla_tags_go(
    mapping: HelpdeskMapping, contracts: dict[str, Contract], owned: frozenset[str]
) -> None:
    customer = company(sla_contract="photoprism", sla_plan="gold")
    wire = ticket(tags=["sla_sev3", "escalated_by_phone", "sla_photoprism", "sla_breached"])
    decision, contract = decide_ticket(wire, customer, mapping, contracts)
    writes = writes_for(wire, desired_results(decision, mapping, owned, contract), posted_note=None)
    assert writes.update is not None
    assert writes.update.tags is not None
    assert "escalated_by_phone" in writes.update.tags
    assert not {"sla_sev3", "sla_breached"} & set(writes.update.tags)


def test_no_due_dates_on_a_pending_ticket_but_the_rest_goes(
    mapping: HelpdeskMapping, contracts: dict[str, Contract], owned: frozenset[str]
) -> None:
    customer = company(sla_contract="photoprism", sla_plan="gold")
    wire = ticket(status=3)
    decision, contract = decide_ticket(wire, customer, mapping, contracts)
    writes = writes_for(wire, desired_results(decision, mapping, owned, contract), posted_note=None)
    assert writes.update is not None
    assert (writes.update.fr_due_by, writes.update.due_by) == (None, None)
    assert writes.update.priority == 4
    assert any("stops the SLA timer" in reason for reason in writes.dropped)


def test_a_best_effort_resolution_keeps_due_by_not_before_fr_due_by(
    mapping: HelpdeskMapping, contracts: dict[str, Contract], owned: frozenset[str]
) -> None:
    customer = company(sla_contract="photoprism", sla_plan="professional")
    # Freshdesk's own due_by lies before the contract's first response due.
    wire = ticket(
        custom_fields={"cf_sla_severity": "sev4"},
        fr_due_by="2026-03-02T09:15:00Z",
        due_by="2026-03-02T10:15:00Z",
    )
    decision, contract = decide_ticket(wire, customer, mapping, contracts)
    assert decision.targets["resolution"].best_effort
    writes = writes_for(wire, desired_results(decision, mapping, owned, contract), posted_note=None)
    assert writes.update is not None
    assert writes.update.fr_due_by is not None
    assert writes.update.due_by == writes.update.fr_due_by
    assert writes.dropped


def test_the_note_is_not_posted_again_for_the_same_text(
    mapping: HelpdeskMapping, contracts: dict[str, Contract], owned: frozenset[str]
) -> None:
    customer = company(sla_contract="photoprism", sla_plan="gold")
    wire = ticket()
    decision, contract = decide_ticket(wire, customer, mapping, contracts)
    desired = desired_results(decision, mapping, owned, contract)
    assert writes_for(wire, desired, posted_note=desired.note_fingerprint).note is None
    assert writes_for(wire, desired, posted_note="0123456789abcdef").note == desired.note


def test_facts_from_stats_company_fields_and_custom_fields(mapping: HelpdeskMapping) -> None:
    customer = company(sla_contract="pixelz", offices="lausanne,tokyo", seats="12")
    wire = ticket(
        custom_fields={"cf_images": 250, "cf_expedite": True},
        stats={"first_responded_at": "2026-03-02T09:00:00Z", "resolved_at": None},
        status=4,
    )
    facts = read_facts(FreshdeskView(wire, customer), mapping)
    assert facts.customer == "5"
    assert facts.status == "solved"
    assert facts.quantities == {"images": 250}
    assert facts.flags == {"expedite": True}
    assert facts.customer_facts.offices == ["lausanne", "tokyo"]
    assert facts.customer_facts.seats == 12
    assert facts.events.first_agent_reply_at == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_a_ticket_without_company_is_unmapped(mapping: HelpdeskMapping) -> None:
    with pytest.raises(UnmappedTicket, match="ticket 42: no contract"):
        read_facts(FreshdeskView(ticket(company_id=None), None), mapping)


def test_without_a_first_response_target_fr_due_by_comes_down_to_due_by(
    mapping: HelpdeskMapping, contracts: dict[str, Contract], owned: frozenset[str]
) -> None:
    # A pixelz order: only a delivery due (3 hours), while Freshdesk's own policy had put
    # fr_due_by a day out. Freshdesk refuses due_by before fr_due_by.
    customer = company(sla_contract="pixelz", timezone="Europe/Paris")
    wire = ticket(
        custom_fields={"cf_images": 5, "cf_expedite": True, "cf_category": "order"},
        created_at="2026-03-02T09:00:00Z",
        fr_due_by="2026-03-03T09:00:00Z",
        due_by="2026-03-07T09:00:00Z",
    )
    decision, contract = decide_ticket(wire, customer, mapping, contracts)
    desired = desired_results(decision, mapping, owned, contract)
    delivery = decision.targets["delivery"].due
    writes = writes_for(wire, desired, posted_note=None)
    assert writes.update is not None
    assert writes.update.due_by == delivery
    assert writes.update.fr_due_by == min(delivery, decision.targets["rejection_notice"].due)
    after = applied(wire, writes.update)
    assert writes_for(after, desired, posted_note=desired.note_fingerprint).is_empty


@pytest.mark.reliability
@pytest.mark.parametrize("theirs", ["x" * 33, "billing, urgent"])
def test_an_agents_tag_freshdesk_refuses_leaves_the_tags_alone_and_the_rest_goes(
    mapping: HelpdeskMapping, contracts: dict[str, Contract], owned: frozenset[str], theirs: str
) -> None:
    customer = company(sla_contract="photoprism", sla_plan="gold")
    wire = ticket(tags=["vip", theirs])
    decision, contract = decide_ticket(wire, customer, mapping, contracts)
    writes = writes_for(wire, desired_results(decision, mapping, owned, contract), posted_note=None)
    assert writes.update is not None
    assert writes.update.tags is None  # sending the list back would have it all refused
    assert writes.update.fr_due_by is not None
    assert writes.update.priority == 4
    assert writes.note is not None
    assert any("tags left unwritten" in reason for reason in writes.dropped)
    # The next poll sees the same tags: nothing more to send but what failed to fit.
    again = writes_for(
        applied(wire, writes.update),
        desired_results(decision, mapping, owned, contract),
        posted_note=None,
    )
    assert again.update is None
