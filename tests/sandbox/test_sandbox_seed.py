"""The seeded content: what the mapping files expect, the same in both helpdesks."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import yaml

from connector.sandbox import CUSTOMERS, Sandbox, bundled_tickets, generate
from connector.sandbox.freshdesk import COMPANY_FIELDS
from connector.sandbox.freshdesk import TICKET_FIELDS as FRESHDESK_FIELDS
from connector.sandbox.zendesk import ORGANIZATION_FIELDS, TICKET_FIELDS
from tests.conftest import MAPPINGS
from tests.sandbox.conftest import START


def _sources(node: Any, kind: str) -> set[Any]:
    """Every value under a `kind:` key anywhere in a mapping file."""
    found: set[Any] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == kind:
                found.add(value)
            found |= _sources(value, kind)
    elif isinstance(node, list):
        for item in node:
            found |= _sources(item, kind)
    return found


def _mapping(name: str) -> Any:
    return yaml.safe_load((MAPPINGS / "helpdesks" / f"{name}.example.yaml").read_text())


def test_zendesk_fields_are_those_the_mapping_reads_and_writes() -> None:
    mapping = _mapping("zendesk")
    assert _sources(mapping, "ticket_field") <= {f.id for f in TICKET_FIELDS}
    assert _sources(mapping, "organization_field") <= {key for key, _, _ in ORGANIZATION_FIELDS}
    severity_values = set(mapping["facts"]["severity"]["values"])
    assert set(next(f for f in TICKET_FIELDS if f.id == 9100001).options) == severity_values


def test_freshdesk_fields_are_those_the_mapping_reads() -> None:
    mapping = _mapping("freshdesk")
    assert _sources(mapping, "ticket_field") <= {key for key, _, _ in FRESHDESK_FIELDS}
    assert _sources(mapping, "company_field") <= {key for key, _ in COMPANY_FIELDS}


def _contract(name: str) -> Any:
    return yaml.safe_load((MAPPINGS / "contracts" / f"{name}.yaml").read_text())


def test_customers_use_the_contracts_words(contracts: dict[str, Any]) -> None:
    assert {c.contract for c in CUSTOMERS} == set(contracts)
    for customer in CUSTOMERS:
        contract = _contract(customer.contract or "")
        if customer.plan is not None and customer.id != 901:
            assert customer.plan in contract["plans"]
        if customer.region is not None:
            assert customer.region in contract["calendar_choice"]["regions"]
        for office in customer.offices:
            assert office in contract["calendars"]
    assert any(c.plan == "platinum" for c in CUSTOMERS)  # deliberately unmappable
    assert any(c.contract == "pix4d-premium" and not c.offices for c in CUSTOMERS)


def test_tickets_cover_each_contract_and_the_unmappable(contracts: dict[str, Any]) -> None:
    tickets = bundled_tickets(START)
    customer = {c.id: c for c in CUSTOMERS}
    covered = {customer[t.customer_id].contract for t in tickets if t.customer_id}
    assert covered == set(contracts)
    assert any(t.customer_id is None for t in tickets)
    assert any(t.expedite and (t.images or 0) > 20 for t in tickets)  # splits at 20 expedited
    assert any(t.product == "pdm" for t in tickets)  # solidxperts out of scope by product
    assert all(t.created_at < START for t in tickets)


def test_both_helpdesks_hold_the_same_tickets(sandbox: Sandbox) -> None:
    assert set(sandbox.zendesk.tickets) == set(sandbox.freshdesk.tickets)
    assert set(sandbox.zendesk.organizations) == set(sandbox.freshdesk.companies)
    for ticket_id, zendesk in sandbox.zendesk.tickets.items():
        freshdesk = sandbox.freshdesk.tickets[ticket_id]
        assert (zendesk.created_at, zendesk.organization_id) == (
            freshdesk.created_at,
            freshdesk.company_id,
        )


def test_severity_reads_the_same_in_both(zendesk: httpx.Client, freshdesk: httpx.Client) -> None:
    zendesk_ticket = zendesk.get("/api/v2/tickets/2002.json").json()["ticket"]
    values = {f["id"]: f["value"] for f in zendesk_ticket["custom_fields"]}
    freshdesk_ticket = freshdesk.get("/api/v2/tickets/2002").json()
    assert (values[9100001], values[9100002]) == ("severity_minor", "override_severe")
    assert freshdesk_ticket["custom_fields"]["cf_sla_severity"] == "minor"
    assert freshdesk_ticket["custom_fields"]["cf_severity_override"] == "severe"


def test_generate_is_lazy_and_deterministic() -> None:
    first = list(generate(200, seed=3, anchor=START))
    assert first == list(generate(200, seed=3, anchor=START))
    assert first != list(generate(200, seed=4, anchor=START))
    assert [t.id for t in first] == list(range(100_001, 100_201))
    # A billion tickets are never built: only what is taken.
    assert len(list(itertools.islice(generate(10**9, seed=3, anchor=START), 5))) == 5


def test_generated_tickets_are_served_like_the_others(
    sandbox: Sandbox, zendesk: httpx.Client
) -> None:
    assert sandbox.seed(generate(2500, seed=1, anchor=START), customers=()) == 2500
    pages = 0
    response = zendesk.get("/api/v2/incremental/tickets/cursor.json", params={"start_time": 0})
    while True:
        page = response.json()
        pages += 1
        if page["end_of_stream"]:
            break
        response = zendesk.get(page["after_url"])
    assert pages == 3  # 2527 tickets, 1000 a page
