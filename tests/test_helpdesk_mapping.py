"""Helpdesk mapping files: validation, facts read from a ticket, results desired for a decision."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.errors import ConfigError, UnmappedTicket
from connector.helpdesks.mapping import (
    NOTE_MARK,
    HelpdeskMapping,
    desired_results,
    find_note_fingerprint,
    note_fingerprint,
    read_facts,
)
from connector.mappingfiles import load_helpdesk_mapping
from connector.sla.contract import Contract
from connector.sla.engine import decide
from connector.sla.model import Status

ROOT = Path(__file__).resolve().parent.parent
ZENDESK = ROOT / "mappings" / "helpdesks" / "zendesk.example.yaml"
FRESHDESK = ROOT / "mappings" / "helpdesks" / "freshdesk.example.yaml"


@dataclass
class DictView:
    """A WireView over plain dicts, standing in for a helpdesk's wire models."""

    fields: dict[Any, Any] = field(default_factory=dict)
    customer: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)
    customer_attributes: dict[str, Any] = field(default_factory=dict)
    events: dict[str, Any] = field(default_factory=dict)
    tags: Sequence[str] = ()
    ticket_id: str = "101"
    created_at: datetime = datetime(2026, 3, 2, 8, 15, tzinfo=UTC)
    status: Status = "open"
    status_key: str = "open"
    status_since: datetime | None = None

    def ticket_field(self, key: int | str) -> Any:
        return self.fields.get(key)

    def customer_field(self, key: str) -> Any:
        return self.customer.get(key)

    def ticket_attribute(self, name: str) -> Any:
        return self.attributes.get(name)

    def customer_attribute(self, name: str) -> Any:
        return self.customer_attributes.get(name)

    def event(self, name: str) -> Any:
        return self.events.get(name)


@pytest.fixture(scope="module")
def zendesk() -> HelpdeskMapping:
    return load_helpdesk_mapping(ZENDESK)


@pytest.fixture(scope="module")
def freshdesk() -> HelpdeskMapping:
    return load_helpdesk_mapping(FRESHDESK)


def pixelz_view(**changes: Any) -> DictView:
    view = DictView(
        fields={9100005: 35, 9100006: True, 9100008: None, 9100001: None},
        customer={
            "sla_contract": "pixelz",
            "timezone": "Europe/Paris",
            "offices": "lausanne, tokyo",
            "seats": 12,
            "subscription_start": "2025-06-15",
        },
        attributes={"organization_id": 17},
        events={"first_reply_at": datetime(2026, 3, 2, 9, 0, tzinfo=UTC), "solved_at": None},
    )
    for key, value in changes.items():
        setattr(view, key, value)
    return view


# --- files ------------------------------------------------------------------------------------


def test_the_example_mappings_load(zendesk: HelpdeskMapping, freshdesk: HelpdeskMapping) -> None:
    assert zendesk.helpdesk == "zendesk"
    assert freshdesk.priorities["urgent"] == 4
    assert [d.native for d in freshdesk.results.due] == ["fr_due_by", "due_by"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "helpdesk: zendesk\nfacts:\n  contract: {organization_field: a, static: b}\n",
            "x.yaml:3: facts.contract: give exactly one of",
        ),
        (
            "helpdesk: zendesk\nfacts:\n  contract: {company_field: sla}\n",
            "x.yaml:3: facts.contract.company_field: zendesk has no 'company_field' source",
        ),
        (
            "helpdesk: zendesk\nfacts:\n  contract: {static: x}\n  plan: {ticket_field: cf_plan}\n",
            "x.yaml:4: facts.plan.ticket_field: expected a numeric Zendesk ticket field id",
        ),
        (
            "helpdesk: freshdesk\nfacts:\n  contract: {static: x}\n  sevrity: {static: y}\n",
            "x.yaml:4: facts.sevrity: unknown key",
        ),
        ("helpdesk: jira\nfacts:\n  contract: {static: x}\n", "x.yaml:1: helpdesk: expected "),
        (
            "helpdesk: zendesk\nfacts: {contract: {static: x}}\n"
            "results:\n  due:\n    - {native: due_by, targets: [resolution]}\n",
            "x.yaml:5: results.due.0.native: zendesk has no native due fields",
        ),
    ],
)
def test_a_bad_mapping_file_names_file_line_and_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_helpdesk_mapping(path)
    assert str(caught.value).replace(str(tmp_path) + "/", "").startswith(expected)


# --- facts ------------------------------------------------------------------------------------


def test_facts_come_from_fields_organization_and_metrics(zendesk: HelpdeskMapping) -> None:
    facts = read_facts(pixelz_view(), zendesk)
    assert facts.contract == "pixelz"
    assert facts.customer == "17"
    assert facts.quantities == {"images": 35}
    assert facts.flags == {"expedite": True}
    assert facts.customer_facts.offices == ["lausanne", "tokyo"]
    assert facts.customer_facts.subscription_start == date(2025, 6, 15)
    assert facts.customer_facts.seats == 12
    assert facts.customer_facts.active is True  # the mapping's default
    assert facts.events.first_agent_reply_at == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert facts.severity is None


def test_values_tables_and_prefixes_translate_helpdesk_values(zendesk: HelpdeskMapping) -> None:
    view = pixelz_view()
    view.fields |= {9100001: "severity_critical", 9100002: "override_minor", 9100003: None}
    facts = read_facts(view, zendesk)
    assert (facts.severity, facts.severity_override) == ("critical", "minor")


def test_a_value_outside_the_table_is_unmapped_naming_the_field(zendesk: HelpdeskMapping) -> None:
    view = pixelz_view()
    view.fields[9100001] = "severity_catastrophic"
    with pytest.raises(
        UnmappedTicket, match=r"ticket 101: facts\.severity \(ticket field 9100001\)"
    ):
        read_facts(view, zendesk)


def test_no_contract_is_unmapped(zendesk: HelpdeskMapping) -> None:
    view = pixelz_view(customer={})
    with pytest.raises(UnmappedTicket, match=r"no contract: facts\.contract"):
        read_facts(view, zendesk)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {9100005: "lots"},
            r"facts\.quantities\.images \(ticket field 9100005\): expected a whole",
        ),
        ({9100005: 2.5}, "expected a whole number"),
        ({9100006: "perhaps"}, r"facts\.flags\.expedite .*expected yes or no"),
        ({9100008: "2026-03-02 10:00"}, r"facts\.events\.delivered_at .*without a timezone"),
    ],
)
def test_unreadable_values_are_unmapped_with_a_reason(
    zendesk: HelpdeskMapping, fields: dict[int, Any], message: str
) -> None:
    view = pixelz_view()
    view.fields |= fields
    with pytest.raises(UnmappedTicket, match=message):
        read_facts(view, zendesk)


def test_text_fields_holding_instants_and_numbers_are_read(freshdesk: HelpdeskMapping) -> None:
    view = DictView(
        fields={"cf_images": "250", "cf_expedite": "yes", "cf_delivered_at": "2026-03-02T10:00Z"},
        customer={"sla_contract": "pixelz", "subscription_active": False},
        attributes={"company_id": 5},
    )
    facts = read_facts(view, freshdesk)
    assert facts.quantities == {"images": 250}
    assert facts.flags == {"expedite": True}
    assert facts.events.delivered_at == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    assert facts.customer_facts.active is False


def test_tag_sources(freshdesk: HelpdeskMapping) -> None:
    data = freshdesk.model_dump()
    data["facts"]["plan"] = {"tag_prefix": "plan_"}
    data["facts"]["flags"]["expedite"] = {"tag": "rush"}
    mapping = HelpdeskMapping.model_validate(data)
    view = DictView(customer={"sla_contract": "photoprism"}, tags=["vip", "plan_gold", "rush"])
    facts = read_facts(view, mapping)
    assert (facts.plan, facts.flags) == ("gold", {"expedite": True})


# --- results ----------------------------------------------------------------------------------


def test_due_instants_go_to_text_and_local_date_fields(
    zendesk: HelpdeskMapping, contracts: dict[str, Contract]
) -> None:
    view = DictView(
        customer={"sla_contract": "photoprism", "sla_plan": "gold", "timezone": "Europe/Berlin"},
        fields={9100001: "severity_sev1"},
        created_at=datetime(2026, 3, 2, 8, 15, tzinfo=UTC),
    )
    facts = read_facts(view, zendesk)
    decision = decide(contracts["photoprism"], facts, datetime(2026, 3, 2, 9, tzinfo=UTC))
    owned = contracts["photoprism"].owned_tags
    desired = desired_results(decision, zendesk, owned)
    assert [(d.destination.key, d.text) for d in desired.due] == [
        (9100101, "2026-03-03T08:15:00Z"),
        (9100102, "2026-03-03"),
        (9100103, "2026-03-04T08:15:00Z"),
        (9100104, "2026-03-04"),
    ]
    assert desired.priority == "urgent"
    assert desired.tags == ("sla_photoprism", "sla_plan_gold", "sla_sev1")


def test_the_date_field_holds_the_local_date_not_the_utc_one(
    zendesk: HelpdeskMapping, contracts: dict[str, Contract]
) -> None:
    view = DictView(
        customer={"sla_contract": "photoprism", "sla_plan": "gold"},
        fields={9100001: "severity_sev1"},
        created_at=datetime(2026, 3, 2, 15, 0, tzinfo=UTC),
    )
    decision = decide(
        contracts["photoprism"], read_facts(view, zendesk), datetime(2026, 3, 2, 16, tzinfo=UTC)
    )
    texts = {d.destination.key: d.text for d in desired_results(decision, zendesk, frozenset()).due}
    assert (texts[9100101], texts[9100102]) == ("2026-03-03T15:00:00Z", "2026-03-03")
    # Seen from Tokyo, 15:00 UTC is already midnight of the next day.
    in_tokyo = decision.model_copy(update={"local_zone": "Asia/Tokyo"})
    texts = {d.destination.key: d.text for d in desired_results(in_tokyo, zendesk, frozenset()).due}
    assert (texts[9100101], texts[9100102]) == ("2026-03-03T15:00:00Z", "2026-03-04")


def test_freshdesk_priorities_are_numbers_and_best_effort_writes_no_due(
    freshdesk: HelpdeskMapping, contracts: dict[str, Contract]
) -> None:
    view = DictView(
        customer={"sla_contract": "photoprism", "sla_plan": "professional"},
        fields={"cf_sla_severity": "sev4"},
    )
    decision = decide(
        contracts["photoprism"], read_facts(view, freshdesk), datetime(2026, 3, 2, 9, tzinfo=UTC)
    )
    desired = desired_results(decision, freshdesk, frozenset())
    assert desired.priority == 1
    assert [(d.destination.key, d.due is None) for d in desired.due] == [
        ("fr_due_by", False),
        ("due_by", True),  # resolution is best effort for sev4: nothing to write
    ]


def test_only_our_own_stale_tags_are_removed(
    zendesk: HelpdeskMapping, contracts: dict[str, Contract]
) -> None:
    view = DictView(
        customer={"sla_contract": "photoprism", "sla_plan": "gold"},
        fields={9100001: "severity_sev2"},
    )
    decision = decide(
        contracts["photoprism"], read_facts(view, zendesk), datetime(2026, 3, 2, 9, tzinfo=UTC)
    )
    owned = frozenset().union(*(c.owned_tags for c in contracts.values()))
    desired = desired_results(decision, zendesk, owned)
    current = ["vip", "sla_sev1", "sla_breached", "sla_photoprism", "sla_custom_by_agent"]
    assert desired.tags_to_remove(current) == ["sla_sev1", "sla_breached"]
    assert desired.tags_to_add(current) == ["sla_plan_gold", "sla_sev2"]


def test_the_note_carries_a_stable_fingerprint_mark(
    zendesk: HelpdeskMapping, contracts: dict[str, Contract]
) -> None:
    view = DictView(customer={"sla_contract": "photoprism", "sla_plan": "gold"})
    facts = read_facts(view, zendesk)
    first = decide(contracts["photoprism"], facts, datetime(2026, 3, 2, 9, tzinfo=UTC))
    later = decide(contracts["photoprism"], facts, datetime(2026, 3, 9, 9, tzinfo=UTC))
    a = desired_results(first, zendesk, frozenset())
    b = desired_results(later, zendesk, frozenset())
    assert a.note is not None
    assert a.note_fingerprint == b.note_fingerprint == note_fingerprint(first.note)
    assert find_note_fingerprint(a.note) == a.note_fingerprint
    assert find_note_fingerprint("an agent's own note") is None


def test_owned_tags_cover_every_tag_the_engine_emits(contracts: dict[str, Contract]) -> None:
    lines = (ROOT / "mappings" / "examples" / "tickets.jsonl").read_text().splitlines()
    from connector.sla.engine import decide_all
    from connector.sla.model import TicketFacts

    tickets = [TicketFacts.model_validate_json(line) for line in lines if line.strip()]
    owned = frozenset().union(*(c.owned_tags for c in contracts.values()))
    for now in ("2026-03-02T09:00:00Z", "2026-03-06T16:00:00Z", "2026-06-01T00:00:00Z"):
        at = datetime.fromisoformat(now.replace("Z", "+00:00"))
        for decision in decide_all(contracts, tickets, at):
            assert set(decision.tags) <= owned | {"sla_unmapped"}, decision.ticket


@pytest.mark.parametrize(
    ("current", "tags", "expected"),
    [
        ("urgent", [], (None, [])),  # already right: nothing to do
        ("low", [], ("urgent", ["sla_priority_corrected"])),  # corrected once, tagged
        (None, [], ("urgent", ["sla_priority_corrected"])),
        # an agent lowered it after our correction, severity unchanged: left alone
        ("normal", ["sla_priority_corrected", "sla_sev1"], (None, [])),
        # the severity changed since (the ticket still says sev3): corrected again
        ("normal", ["sla_priority_corrected", "sla_sev3"], ("urgent", [])),
    ],
)
def test_priority_is_corrected_once_per_severity(
    zendesk: HelpdeskMapping,
    contracts: dict[str, Contract],
    current: str | None,
    tags: list[str],
    expected: tuple[str | None, list[str]],
) -> None:
    view = DictView(
        customer={"sla_contract": "photoprism", "sla_plan": "gold"},
        fields={9100001: "severity_sev1"},
    )
    contract = contracts["photoprism"]
    decision = decide(contract, read_facts(view, zendesk), datetime(2026, 3, 2, 9, tzinfo=UTC))
    desired = desired_results(decision, zendesk, contract.owned_tags, contract)
    assert desired.priority_correction(current, tags) == expected


# --- the note's mark (issue 16, item 3) -----------------------------------------------------

marks = st.text(alphabet="0123456789abcdef", min_size=16, max_size=16)
words = st.text(alphabet="abcxyz.!'", min_size=1)


@pytest.mark.reliability
@given(text=st.text(), fake=marks, mark=marks, tail=words)
def test_only_the_mark_that_ends_a_note_counts(text: str, fake: str, mark: str, tail: str) -> None:
    # A value the note quotes (a customer's plan field, say), posing as a mark.
    quoted = f"unknown plan '{NOTE_MARK}{fake}' {text}"
    assert find_note_fingerprint(f"{quoted}\n\n{NOTE_MARK}{mark}") == mark
    assert find_note_fingerprint(f"{quoted}<br><br>{NOTE_MARK}{mark}</p>\n") == mark
    assert find_note_fingerprint(f"{quoted} {NOTE_MARK}{fake}{tail}") is None
    assert find_note_fingerprint(f"unknown plan '{NOTE_MARK}{fake}'") is None
