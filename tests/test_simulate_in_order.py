"""`sla simulate --sorted`: input in order of creation, decided as periods close.

The decisions must be exactly those of the whole set decided at once, for every contract
(monthly incidents, lifetime installations and contract-year grace calls, daily capacity),
while tickets of closed periods are let go.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.cli import main
from connector.sla.contract import Contract
from connector.sla.engine import decide_each, decide_in_order
from connector.sla.model import Decision, TicketFacts
from tests.conftest import ROOT

MAPPINGS = ROOT / "mappings"
START = datetime(2025, 1, 1, tzinfo=UTC)
NOW = datetime(2028, 6, 1, tzinfo=UTC)


def _facts(number: int, contract: str, customer: str, hours: int, pick: int) -> TicketFacts:
    created = START + timedelta(hours=hours)
    data: dict[str, Any] = {
        "id": str(number),
        "created_at": created,
        "customer": customer,
        "contract": contract,
        "status": "deleted" if pick % 11 == 0 else "open",
    }
    if contract == "photoprism":
        data |= {"plan": ["professional", "enterprise", "gold"][pick % 3], "severity": "sev3"}
    elif contract == "pixelz":
        data |= {
            "category": "order",
            "quantities": {"images": 1 + pick % 150},
            "flags": {"expedite": pick % 2 == 0},
            "customer_facts": {"timezone": "America/Chicago"},
        }
    elif contract == "solidxperts":
        data |= {
            "category": ["installation", "software_error", "how_to"][pick % 3],
            "product": "pdm" if pick % 7 == 0 else None,
            "customer_facts": {"seats": 4, "subscription_start": "2024-02-29", "active": True},
        }
    else:
        data |= {"severity": "critical", "customer_facts": {"offices": ["lausanne"]}}
    return TicketFacts.model_validate(data)


rows = st.lists(
    st.tuples(
        st.sampled_from(["photoprism", "pixelz", "solidxperts", "pix4d-premium"]),
        st.sampled_from(["org-1", "org-2"]),
        # Up to three years: months, contract years (from a 29 February) and lifetimes pass.
        st.integers(min_value=0, max_value=24 * 365 * 3),
        st.integers(min_value=0, max_value=1000),
    ),
    min_size=1,
    max_size=150,
)


def _in_creation_order(tickets: list[TicketFacts], seed: int) -> list[TicketFacts]:
    """Sorted by creation; tickets created at the same instant in any order."""
    shuffled = random.Random(seed).sample(tickets, k=len(tickets))
    return sorted(shuffled, key=lambda t: t.created_at)


def _by_ticket(decisions: Iterator[Decision]) -> dict[str, Decision]:
    found: dict[str, Decision] = {}
    for decision in decisions:
        assert decision.ticket not in found, "one decision per ticket"
        found[decision.ticket] = decision
    return found


@settings(max_examples=120)
@given(rows=rows, seed=st.integers(min_value=0, max_value=2**32))
def test_in_order_decisions_equal_those_of_the_whole_set(
    contracts: dict[str, Contract], rows: list[tuple[str, str, int, int]], seed: int
) -> None:
    # Bunch the instants so that some tickets share one (ties are broken by id).
    tickets = [
        _facts(n, c, org, hours - hours % 5, pick) for n, (c, org, hours, pick) in enumerate(rows)
    ]
    expected = _by_ticket(decide_each(contracts, tickets, NOW))
    assert _by_ticket(decide_in_order(contracts, _in_creation_order(tickets, seed), NOW)) == (
        expected
    )


def _at(facts: TicketFacts, when: datetime) -> TicketFacts:
    return facts.model_copy(update={"created_at": when})


def test_a_month_used_up_at_its_start_is_still_used_up_at_its_end_across_batches(
    contracts: dict[str, Contract],
) -> None:
    # Gold has 4 incidents a month. The first ticket opens a batch that closes before the end of
    # March; the last ticket of March starts the next batch and must still see the four.
    march = datetime(2026, 3, 1, tzinfo=UTC) - timedelta(hours=1)  # Berlin's 1 March
    gold = _facts(0, "photoprism", "org-1", 0, 2)
    tickets = [_at(gold.model_copy(update={"id": "0"}), march - timedelta(days=3))]
    tickets += [
        _at(gold.model_copy(update={"id": str(n)}), march + timedelta(hours=n)) for n in range(1, 5)
    ]
    tickets.append(_at(gold.model_copy(update={"id": "5"}), march + timedelta(days=30, hours=20)))
    decided = _by_ticket(decide_in_order(contracts, tickets, NOW))
    assert decided == _by_ticket(decide_each(contracts, tickets, NOW))
    assert decided["5"].entitlement == "over_quota"


def test_a_grace_call_used_at_the_start_of_a_contract_year_counts_at_its_end_across_batches(
    contracts: dict[str, Contract],
) -> None:
    # 4 seats: one grace call a contract year (from 1 March, the 29 February subscription's
    # anniversary in 2025). Ticket 1 uses it on 2 March; ticket 2, out of scope too, comes on
    # 25 February 2026, in a later batch, and must be offered the paid incident.
    year = datetime(2025, 3, 1, 5, tzinfo=UTC)
    how_to = _facts(0, "solidxperts", "org-1", 0, 2)  # how_to: out of scope
    tickets = [
        _at(how_to.model_copy(update={"id": "0"}), year - timedelta(days=10)),
        _at(how_to.model_copy(update={"id": "1"}), year + timedelta(days=1)),
        _at(how_to.model_copy(update={"id": "2"}), year + timedelta(days=361)),
    ]
    decided = _by_ticket(decide_in_order(contracts, tickets, NOW))
    assert decided == _by_ticket(decide_each(contracts, tickets, NOW))
    assert [decided[n].entitlement for n in "012"] == ["grace", "grace", "pay_per_incident"]


def test_decisions_come_out_while_the_input_is_still_being_read(
    contracts: dict[str, Contract],
) -> None:
    # Five years of a photoprism customer, one ticket a day: the first month's decisions are
    # out long before the last ticket is read, and the batches held stay small.
    read = 0

    def tickets() -> Iterator[TicketFacts]:
        nonlocal read
        for day in range(5 * 365):
            read += 1
            yield _facts(day, "photoprism", "org-1", 24 * day, 2)

    first_out_after = None
    decided = 0
    for _ in decide_in_order(contracts, tickets(), NOW):
        decided += 1
        if first_out_after is None:
            first_out_after = read
    assert decided == 5 * 365
    assert first_out_after is not None
    assert first_out_after <= 70


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["sla", *args, "--mappings", str(MAPPINGS), "--now", "2028-06-01T00:00Z"])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _write(path: Path, tickets: list[TicketFacts]) -> Path:
    path.write_text("".join(t.model_dump_json() + "\n" for t in tickets))
    return path


def test_sorted_simulate_gives_the_decisions_of_the_plain_one(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Three years of tickets: every batch boundary, month, contract year and the lifetime
    # allowance of installations are crossed many times.
    rng = random.Random(5)
    contracts = ["photoprism", "pixelz", "solidxperts"]
    tickets = [
        _facts(n, rng.choice(contracts), f"org-{n % 3}", 9 * n, rng.randrange(1000))
        for n in range(3000)
    ]
    source = _write(tmp_path / "in.jsonl", tickets)
    status, plain, _ = _run(capsys, "simulate", str(source))
    assert status == 0
    status, streamed, err = _run(capsys, "simulate", "--sorted", str(source))
    assert (status, err) == (0, "")

    def decisions(out: str) -> dict[str, Any]:
        return {d["ticket"]: d for d in map(json.loads, out.splitlines())}

    assert decisions(streamed) == decisions(plain)
    assert len(streamed.splitlines()) == 3000


def test_sorted_simulate_stops_at_a_line_out_of_order_naming_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    tickets = [_facts(n, "photoprism", "org-1", 24 * n, 0) for n in range(5)]
    tickets[2], tickets[3] = tickets[3], tickets[2]
    source = _write(tmp_path / "in.jsonl", tickets)
    status, _, err = _run(capsys, "simulate", "--sorted", str(source))
    assert status == 2
    assert err.count("\n") == 1
    assert f"{source}:4 (ticket 2): created_at 2025-01-03T00:00:00+00:00 comes before" in err
    assert "leave out --sorted" in err


def test_sorted_simulate_refuses_a_repeated_ticket(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    tickets = [_facts(n, "photoprism", "org-1", 24 * n, 0) for n in range(3)]
    source = _write(tmp_path / "in.jsonl", [*tickets, tickets[2]])
    status, _, err = _run(capsys, "simulate", "--sorted", str(source))
    assert status == 2
    assert err.count("\n") == 1
    assert f"{source}:4 (ticket 2): the ticket was already given" in err
