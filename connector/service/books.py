"""The ledger books of the customers decided lately, kept beside the sync loop: a cache of the
state's quota facts that the loop tells of each change it makes."""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime
from itertools import islice

from connector.service.rules import Rules
from connector.sla.contract import Contract
from connector.sla.model import TicketFacts
from connector.sla.quotas import LedgerBook, Reach
from connector.state import Store

__all__ = ["BOOK_ENTRIES", "WARM", "Books"]

# Ledger entries kept across customers' books (about 500 bytes each): 2,000 tickets in the
# open periods of each of 75 customers.
BOOK_ENTRIES = 150_000
WARM = 8  # books whose counted ledger is kept (see `Books._cool`)


class Books:
    """The ledger books of the customers decided lately, kept in step with the state.

    Each decision on a ticket whose contract has quotas or capacities needs the customer's
    other tickets of its periods; reading and counting them again for each decision made its
    cost grow with the customer's history (a customer with 2,000 tickets in a contract year
    cost 28 ms a ticket). A book reads them once; `Sync.decide` tells it each change it
    makes to the state. Every book is dropped when the rules are reloaded, when another
    process commits to the state file (`State.data_version`), and when a transaction that
    may have changed facts is rolled back.
    """

    def __init__(self, state: Store, limit: int = BOOK_ENTRIES) -> None:
        self.state = state
        self.limit = limit
        self._books: OrderedDict[tuple[str, str], LedgerBook] = OrderedDict()
        self._where: dict[str, tuple[str, str]] = {}  # ticket → the book holding it
        self._rules: Rules | None = None
        self._version: int | None = None

    def book(self, rules: Rules, contract: Contract, facts: TicketFacts) -> LedgerBook:
        """The book of the ticket's customer, holding every ticket its periods reach."""
        assert facts.customer is not None
        version = self.state.data_version()
        if rules is not self._rules or version != self._version:
            self.clear()
            self._rules, self._version = rules, version
        key = (contract.name, facts.customer)
        reach = rules.reach(contract)
        since = None if reach.window is None else facts.created_at - reach.window
        book = self._books.get(key)
        if book is not None and _covers(book.since, since, reach):
            self._books.move_to_end(key)
            self._cool()
            return book
        self._drop(key)
        book = LedgerBook(contract, since, reach.kept)
        book.fill(
            self.state.customer_tickets(contract.name, facts.customer, since, None, kept=reach.kept)
        )
        self._books[key] = book
        for ticket in book.ids():
            self._where[ticket] = key
        self._evict()
        self._cool()
        return book

    def put(self, facts: TicketFacts) -> None:
        """The state now holds these facts of the ticket."""
        self.forget(facts.id)
        if facts.customer is None:
            return
        key = (facts.contract, facts.customer)
        book = self._books.get(key)
        if book is not None and book.holds(facts):
            book.put(facts)
            self._where[facts.id] = key

    def forget(self, ticket: str) -> None:
        """The state no longer holds facts of the ticket."""
        key = self._where.pop(ticket, None)
        if key is not None and key in self._books:
            self._books[key].remove(ticket)

    def clear(self) -> None:
        self._books.clear()
        self._where.clear()
        self._rules = self._version = None

    def _cool(self) -> None:
        """Keep the counted ledgers of the `WARM` books used last, and only theirs: a
        ledger takes about as much memory as its book again. Called each time a book moves
        to the end, which pushes one book out of the last `WARM`."""
        for cold in islice(reversed(self._books), WARM, WARM + 1):
            self._books[cold].cool()

    def _drop(self, key: tuple[str, str]) -> None:
        book = self._books.pop(key, None)
        if book is not None:
            for ticket in book.ids():
                self._where.pop(ticket, None)

    def _evict(self) -> None:
        """Drop the books used longest ago while they hold more than `limit` entries."""
        total = sum(len(book) for book in self._books.values())
        while total > self.limit and len(self._books) > 1:
            key = next(iter(self._books))
            total -= len(self._books[key])
            self._drop(key)


def _covers(held: datetime | None, needed: datetime | None, reach: Reach) -> bool:
    """Whether a book holding tickets from `held` on serves a decision needing `needed` on.

    Not when it holds more than two windows beyond what is needed: a daemon that has run for a
    year would otherwise keep counting a year of tickets no decision needs.
    """
    if held is None or needed is None:
        return held is None and needed is None
    window = reach.window
    assert window is not None
    return held <= needed <= held + 2 * window
