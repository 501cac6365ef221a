"""Zendesk tickets to facts, and decisions to the minimal update: round trips."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connector.errors import UnmappedTicket
from connector.helpdesks.mapping import HelpdeskMapping, desired_results, read_facts
from connector.helpdesks.zendesk.mapping import ZendeskView, update_for
from connector.helpdesks.zendesk.models import (
    MetricSet,
    Organization,
    Ticket,
    TicketUpdate,
)
from connector.mappingfiles import load_helpdesk_mapping
from connector.sla.contract import Contract
from connector.sla.engine import decide
from connector.sla.model import Decision

MAPPING = Path(__file__).resolve().parents[2] / "mappings" / "helpdesks" / "zendesk.example.yaml"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def mapping() -> HelpdeskMapping:
    return load_helpdesk_mapping(MAPPING)


def organization(**fields: Any) -> Organization:
    return Organization.model_validate({"id": 17, "name": "Acme", "organization_fields": fields})


def ticket(fields: dict[int, Any] | None = None, **changes: Any) -> Ticket:
    data: dict[str, Any] = {
        "id": 4711,
        "created_at": "2026-03-02T08:15:00Z",
        "updated_at": "2026-03-02T08:15:01Z",
        "status": "open",
        "priority": "normal",
        "organization_id": 17,
        "tags": ["vip"],
        "custom_fields": [
            {"id": key, "value": value}
            for key, value in ({9100001: "severity_sev1"} | (fields or {})).items()
        ],
    }
    data.update(changes)
    return Ticket.model_validate(data)


def applied(before: Ticket, update: TicketUpdate | None) -> Ticket:
    """The ticket as the next export returns it after `update`."""
    if update is None:
        return before
    values = {field.id: field.value for field in before.custom_fields} | update.custom_fields
    tags = [t for t in before.tags if t not in update.remove_tags]
    tags += [t for t in update.additional_tags if t not in tags]
    # Parsed anew, as the next poll would: a copy would keep the cached field lookup.
    data = before.model_dump(mode="json")
    data |= {
        "custom_fields": [{"id": key, "value": value} for key, value in values.items()],
        "priority": update.priority or before.priority,
        "tags": tags,
    }
    return Ticket.model_validate(data)


def decide_ticket(
    wire: Ticket,
    customer: Organization | None,
    mapping: HelpdeskMapping,
    contracts: dict[str, Contract],
    *,
    metrics: MetricSet | None = None,
    now: datetime = NOW,
) -> tuple[Decision, Contract]:
    facts = read_facts(ZendeskView(wire, customer, metrics), mapping)
    contract = contracts[facts.contract]
    return decide(contract, facts, now), contract


def test_a_decision_becomes_fields_priority_tags_and_a_note_in_one_update(
    mapping: HelpdeskMapping, contracts: dict[str, Contract], owned: frozenset[str]
) -> None:
    customer = organization(sla_contract="photoprism", sla_plan="gold")
    wire = ticket()
    decision, contract = decide_ticket(wire, customer, mapping, contracts)
    desired = desired_results(decision, mapping, owned, contract)
    update = update_for(wire, desired, posted_note=None)
    assert update is not None
    summary = update.custom_fields.pop(9100105)  # the apps' summary, in the same update
    assert update.custom_fields == {
        9100101: "2026-03-03T08:15:00Z",
        9100102: "2026-03-03",
        9100103: "2026-03-04T08:15:00Z",
        9100104: "2026-03-04",
    }
    assert summary is not None
    assert summary.startswith('{"v":1,"contract":"photoprism"')
    update.custom_fields[9100105] = summary
    assert update.priority == "urgent"
    assert update.additional_tags == (
        "sla_photoprism",
        "sla_plan_gold",
        "sla_sev1",
        "sla_priority_corrected",
    )
    assert update.remove_tags == ()
    assert update.note is not None
    assert update.note.startswith("SLA PhotoPrism")

    after = applied(wire, update)
    assert update_for(after, desired, posted_note=desired.note_fingerprint) is None


def test_a_state_change_touches_only_the_tags_and_the_summary(
    mapping: HelpdeskMapping, contracts: dict[str, Contract], owned: frozenset[str]
) -> None:
    customer = organization(sla_contract="photoprism", sla_plan="gold")
    wire = ticket()
    decision, contract = decide_ticket(wire, customer, mapping, contracts)
    first = desired_results(decision, mapping, owned, contract)
    after = applied(wire, update_for(wire, first, posted_note=None))
    # A day later, nobody touched the ticket: the first response is now breached.
    later, _ = decide_ticket(
        after, customer, mapping, contracts, now=datetime(2026, 3, 3, 12, tzinfo=UTC)
    )
    desired = desired_results(later, mapping, owned, contract)
    update = update_for(after, desired, posted_note=first.note_fingerprint)
    assert desired.summary is not None
    assert '"state":"breached"' in desired.summary[1]
    assert update == TicketUpdate(
        additional_tags=("sla_breached",), custom_fields={9100105: desired.summary[1]}
    )


def test_best_effort_clears_a_due_field_written_before(
    mapping: HelpdeskMapping, contracts: dict[str, Contract], owned: frozenset[str]
) -> None:
    customer = organization(sla_contract="photoprism", sla_plan="professional")
    wire = ticket(
        {9100001: "severity_sev4", 9100103: "2026-03-04T08:15:00Z", 9100104: "2026-03-04"}
    )
    decision, contract = decide_ticket(wire, customer, mapping, contracts)
    update = update_for(wire, desired_results(decision, mapping, owned, contract), posted_note="x")
    assert update is not None
    assert update.custom_fields[9100103] is None
    assert update.custom_fields[9100104] is None


def test_agents_fields_and_tags_are_never_touched(
    mapping: HelpdeskMapping, contracts: dict[str, Contract], owned: frozenset[str]
) -> None:
    customer = organization(sla_contract="photoprism", sla_plan="gold")
    wire = ticket({555: "agent's own field"}, tags=["vip", "sla_sev2", "sla_vip_by_hand"])
    decision, contract = decide_ticket(wire, customer, mapping, contracts)
    update = update_for(wire, desired_results(decision, mapping, owned, contract), posted_note=None)
    assert update is not None
    assert 555 not in update.custom_fields
    assert update.remove_tags == ("sla_sev2",)


def test_first_reply_comes_from_the_metric_set(
    mapping: HelpdeskMapping, contracts: dict[str, Contract]
) -> None:
    customer = organization(sla_contract="photoprism", sla_plan="gold")
    metrics = MetricSet.model_validate(
        {"ticket_id": 4711, "reply_time_in_minutes": {"calendar": 45, "business": 45}}
    )
    decision, _ = decide_ticket(ticket(), customer, mapping, contracts, metrics=metrics)
    assert decision.targets["first_response"].state == "achieved"
    assert decision.targets["first_response"].achieved_at == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_hold_is_on_hold_and_a_ticket_without_organization_is_unmapped(
    mapping: HelpdeskMapping,
) -> None:
    customer = organization(sla_contract="photoprism")
    assert read_facts(ZendeskView(ticket(status="hold"), customer, None), mapping).status == (
        "on_hold"
    )
    with pytest.raises(UnmappedTicket, match="ticket 4711: no contract"):
        read_facts(ZendeskView(ticket(organization_id=None), None, None), mapping)
