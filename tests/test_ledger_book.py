"""Ledger books: a customer's ledger kept up to date change by change counts every ticket as a
ledger built afresh from the same tickets would, and the daemon's books follow the state."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.mappingfiles import load_contracts
from connector.service.books import Books
from connector.service.rules import Rules
from connector.sla.contract import Contract
from connector.sla.model import TicketFacts
from connector.sla.quotas import Ledger, LedgerBook
from connector.state import State
from tests.conftest import ROOT
from tests.test_quotas import ticket

CONTRACTS = load_contracts(ROOT / "mappings")
LEDGER_CONTRACTS = sorted(name for name, c in CONTRACTS.items() if c.needs_ledger)
START = datetime(2025, 1, 1, tzinfo=UTC)


def _choices(contract: Contract) -> dict[str, list[Any]]:
    """Values of the facts the contract's quotas, scope and capacities look at."""
    spec = contract.spec
    categories: set[str | None] = {None, "something-else"}
    plans: set[str | None] = {None, "no-such-plan"}
    quantities = {"images"}
    flags = {"expedite"}
    kinds: set[str | None] = {None, "trial"}
    if spec.scope is not None:
        categories |= set(spec.scope.categories or [])
    for quota in spec.quotas.values():
        categories |= set(quota.categories or [])
        plans |= set(quota.by_plan or {})
        quantities.add(quota.counts)
        kinds |= set(quota.eligible.excluded_kinds)
    for target in spec.targets.values():
        categories |= set(target.categories or [])
        plans |= set(target.by_plan or {})
        if target.capacity is not None:
            quantities.add(target.capacity.quantity)
        if target.expedite is not None:
            flags.add(target.expedite.flag)
    return {
        "category": sorted(categories, key=str),
        "plan": sorted(plans, key=str),
        "quantity": sorted(quantities - {"tickets"}),
        "flag": sorted(flags),
        "kind": sorted(kinds, key=str),
    }


@st.composite
def tickets_of(draw: st.DrawFn, contract: Contract, count: int) -> list[TicketFacts]:
    """Tickets of a few customers over two years, with repeats (new facts of one ticket)."""
    values = _choices(contract)
    made = []
    for _ in range(count):
        created = START + timedelta(
            hours=draw(st.integers(0, 2 * 365 * 24)), minutes=draw(st.sampled_from([0, 30]))
        )
        data: dict[str, Any] = {
            "id": str(draw(st.integers(1, count // 2 + 2))),
            "created_at": created.isoformat(),
            "customer": draw(st.sampled_from(["org-1", "org-2", None])),
            "contract": draw(st.sampled_from([contract.name, contract.name, "other"])),
            "plan": draw(st.sampled_from(values["plan"])),
            "category": draw(st.sampled_from(values["category"])),
            "status": draw(st.sampled_from(["open", "open", "solved", "deleted", "spam"])),
            "quantities": {q: draw(st.integers(0, 40)) for q in values["quantity"]},
            "flags": {f: draw(st.booleans()) for f in values["flag"]},
            "customer_facts": {
                "seats": draw(st.sampled_from([None, 3, 30, 300])),
                "subscription_start": draw(
                    st.sampled_from([None, date(2024, 2, 29), date(2024, 7, 15)])
                ),
                "subscription_kind": draw(st.sampled_from(values["kind"])),
                "active": draw(st.sampled_from([True, True, False])),
                "timezone": draw(st.sampled_from([None, "Asia/Tokyo", "America/New_York"])),
            },
        }
        made.append(TicketFacts.model_validate(data))
    return made


def _same_counts(book: Ledger, fresh: Ledger, ids: set[str]) -> None:
    for one in ids:
        assert (one in book) == (one in fresh), one
        assert book.uses(one) == fresh.uses(one), one
        assert book.in_scope(one) == fresh.in_scope(one), one
        assert book.same_for(fresh, one), one


@pytest.mark.parametrize("name", LEDGER_CONTRACTS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_a_book_changed_ticket_by_ticket_counts_as_a_fresh_ledger(
    name: str, data: st.DataObject
) -> None:
    contract = CONTRACTS[name]
    tickets = data.draw(tickets_of(contract, 40))
    if data.draw(st.booleans()):  # as they come in a steady state: each new one last
        tickets[10:] = sorted(tickets[10:], key=lambda t: t.created_at)
    book = LedgerBook(contract, None)
    book.fill(tickets[:10])
    held = {t.id: t for t in tickets[:10]}
    for facts in tickets[10:]:
        pinned = book.pin() if data.draw(st.booleans()) else None
        as_pinned = dict(held)
        if data.draw(st.integers(0, 5)) == 0:
            book.remove(facts.id)
            held.pop(facts.id, None)
        else:
            book.put(facts)
            held[facts.id] = facts
        _same_counts(book.ledger(), Ledger(contract, held.values()), set(held))
        if pinned is not None:  # what `Sync` compares the re-checked tickets against
            _same_counts(pinned, Ledger(contract, as_pinned.values()), {*as_pinned, facts.id})


@pytest.mark.parametrize("name", LEDGER_CONTRACTS)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_a_book_from_a_window_places_each_ticket_as_its_own_window_does(
    name: str, data: st.DataObject
) -> None:
    """What `Sync._ledger` reads for one ticket (its window up to itself) and what a book
    opened a window before it holds (everything from there on) place the ticket alike."""
    contract = CONTRACTS[name]
    reach = Rules(CONTRACTS, None).reach(contract)  # type: ignore[arg-type]
    tickets = list({t.id: t for t in data.draw(tickets_of(contract, 60))}.values())
    target = data.draw(st.sampled_from(tickets))
    since = None if reach.window is None else target.created_at - reach.window
    book = LedgerBook(contract, since, reach.kept)
    book.fill(tickets)

    def wanted(t: TicketFacts) -> bool:
        return since is None or t.created_at >= since or t.category in reach.kept

    own = [t for t in tickets if wanted(t) and t.created_at <= target.created_at]
    _same_counts(book.ledger(), Ledger(contract, own), {target.id})


# --- the daemon's books follow the state ---------------------------------------------------


def _month(books: Books, rules: Rules, facts: TicketFacts) -> list[str]:
    contract = CONTRACTS["photoprism"]
    ledger = books.book(rules, contract, facts).ledger()
    return [u.describe for u in ledger.uses(facts.id)]


def test_books_follow_changes_made_through_them_and_by_another_process(tmp_path: Path) -> None:
    rules = Rules(CONTRACTS, None)  # type: ignore[arg-type]
    state = State(tmp_path / "state.db")
    books = Books(state)
    march = [ticket(str(i), f"2026-03-0{i}T10:00:00Z") for i in range(1, 6)]
    for facts in march[:4]:
        state.put_facts(facts)
    fifth = march[4]
    state.put_facts(fifth)
    assert _month(books, rules, fifth) == ["incidents: 5 of 4 in 2026-03"]

    # This process forgets one: the book is told, and the fifth now fits.
    state.forget_facts("2")
    books.forget("2")
    assert _month(books, rules, fifth) == ["incidents: 4 of 4 in 2026-03"]

    # Another process (a backfill beside the daemon) adds an earlier ticket of the month.
    other = State(tmp_path / "state.db")
    other.put_facts(ticket("0", "2026-03-01T08:00:00Z"))
    other.close()
    assert _month(books, rules, fifth) == ["incidents: 5 of 4 in 2026-03"]

    # New rules: the book is read again under them.
    reloaded = Rules(CONTRACTS, None)  # type: ignore[arg-type]
    state.forget_facts("0")  # unseen by the books: only a reload or another process tells
    assert _month(books, reloaded, fifth) == ["incidents: 4 of 4 in 2026-03"]
    state.close()


def test_books_beyond_their_limit_are_dropped_oldest_first(tmp_path: Path) -> None:
    rules = Rules(CONTRACTS, None)  # type: ignore[arg-type]
    state = State(tmp_path / "state.db")
    books = Books(state, limit=5)
    contract = CONTRACTS["photoprism"]
    for org in ("org-1", "org-2", "org-3"):
        for day in range(1, 4):
            state.put_facts(ticket(f"{org}-{day}", f"2026-03-0{day}T10:00:00Z", customer=org))
    first = books.book(rules, contract, ticket("org-1-3", "2026-03-03T10:00:00Z"))
    books.book(rules, contract, ticket("org-2-3", "2026-03-03T10:00:00Z", customer="org-2"))
    again = books.book(rules, contract, ticket("org-1-3", "2026-03-03T10:00:00Z"))
    assert again is not first  # 6 entries > 5: org-1's book went, and was read again
    assert len(again) == 3
    state.close()
