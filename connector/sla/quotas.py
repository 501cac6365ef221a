"""Quotas: which period a ticket falls in, and which tickets fit in a customer's quota.

A quota counts tickets (or a quantity on them) per customer per period. Tickets consume it in
order of `created_at`, ties broken by id (numerically when both are digit strings), so a
decision depends only on the set of tickets: re-processing is free, and a late-arriving older
ticket may move a younger one over quota. Deleted and spam tickets never count.

A `Ledger` is built from the tickets of one contract (any customers, any order, repeats
allowed: the latest version of a ticket wins) and answers, per ticket, how each quota treats it.
It only needs the tickets of the periods that matter: the daemon feeds it from its state store,
`sla simulate` from its input.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from operator import itemgetter
from typing import TYPE_CHECKING, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connector.sla.calendar import zone
from connector.sla.model import TicketFacts

if TYPE_CHECKING:
    from connector.sla.contract import Contract, QuotaSpec, TargetSpec

__all__ = [
    "STANDARD",
    "Allocation",
    "Entry",
    "Ledger",
    "LedgerBook",
    "QuotaUse",
    "Reach",
    "contract_year_start",
    "entry",
    "order_key",
    "period_of",
    "reach",
]

NEVER_COUNTS = frozenset({"deleted", "spam"})
STANDARD = -1
# An order's units in counting order: (quantity, tier), the tier being an index into the
# capacity's expedited tiers, STANDARD, or None for units past the daily guarantee.
Allocation = list[tuple[int, int | None]]


def order_key(facts: TicketFacts) -> tuple[float, int, int, str]:
    """The order in which tickets consume quotas: creation, then id (numeric when digits)."""
    digits = facts.id.isdigit()
    return (
        facts.created_at.timestamp(),
        0 if digits else 1,
        int(facts.id) if digits else 0,
        facts.id,
    )


def contract_year_start(subscription_start: date, day: date) -> date:
    """The first day of the contract year holding `day` (29 Feb renews on 28 Feb)."""

    def anniversary(year: int) -> date:
        try:
            return subscription_start.replace(year=year)
        except ValueError:  # 29 February in a common year
            return date(year, 2, 28)

    start = anniversary(day.year)
    return start if day >= start else anniversary(day.year - 1)


def period_of(quota: QuotaSpec, contract: Contract, facts: TicketFacts) -> str | None:
    """A label naming the ticket's period of `quota` (None: the ticket has no such period)."""
    if quota.period == "lifetime":
        return "lifetime"
    if quota.period == "day":
        local_zone = _customer_zone(facts)
        if local_zone is None:
            return None
        return facts.created_at.astimezone(local_zone).date().isoformat()
    local = facts.created_at.astimezone(contract.zone).date()
    if quota.period == "month":
        return local.isoformat()[:7]  # YYYY-MM
    start = facts.customer_facts.subscription_start
    if start is None:
        return None
    return _contract_year(start, local)


# How far back from a ticket the start of its period of each kind can lie, with a margin
# (a customer-local day seen from UTC; the longest month; a contract year in a leap year).
_PERIOD_SPAN = {
    "day": timedelta(days=2),
    "month": timedelta(days=32),
    "contract_year": timedelta(days=367),
}


@dataclass(frozen=True, slots=True)
class Reach:
    """Which of a customer's other tickets a decision on one of them can depend on.

    `window`: tickets created this long before it (or after it, for those it can move) share a
    period with it; None: every ticket, for ever. `kept`: categories a lifetime quota counts;
    such tickets count whatever their age, and nothing else older than the window does.
    """

    window: timedelta | None
    kept: frozenset[str] = frozenset()


def reach(contract: Contract) -> Reach:
    """How far the quotas and capacities of `contract` reach among a customer's tickets."""
    spec = contract.spec
    spans = [timedelta(0)]
    kept: set[str] = set()
    for quota in spec.quotas.values():
        if quota.period != "lifetime":
            spans.append(_PERIOD_SPAN[quota.period])
        elif quota.categories is None:
            return Reach(None)
        else:
            kept.update(quota.categories)
    if any(target.capacity for target in spec.targets.values()):
        spans.append(_PERIOD_SPAN["day"])
    return Reach(max(spans), frozenset(kept))


def _customer_zone(facts: TicketFacts) -> ZoneInfo | None:
    """The customer's zone, UTC when not given; None when the name is unknown."""
    try:
        return zone(facts.customer_facts.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return None  # the engine leaves such a ticket unmapped; it takes no one's place


@lru_cache(maxsize=4096)
def _contract_year(subscription_start: date, day: date) -> str:
    first = contract_year_start(subscription_start, day)
    last = contract_year_start(subscription_start, first + timedelta(days=366)) - timedelta(days=1)
    return f"{first.isoformat()}/{last.isoformat()}"


class QuotaUse(NamedTuple):
    """How one quota treats one ticket: its place in the period and whether it fits.

    A named tuple rather than a dataclass: a ledger makes one per ticket and quota, and a tuple
    is built in a third of the time.
    """

    quota: str
    period: str
    used_before: int
    amount: int
    limit: int
    fits: bool
    eligible: bool = True

    @property
    def describe(self) -> str:
        """E.g. `incidents: 5 of 4 in 2026-03`."""
        if not self.eligible:
            return f"{self.quota}: the customer is not eligible"
        return f"{self.quota}: {self.used_before + self.amount} of {self.limit} in {self.period}"


class _QuotaFacts(NamedTuple):
    """What one quota needs of one ticket, worked out once (see `Entry`)."""

    wanted: bool  # of a category the quota counts
    limit: int
    period: str
    amount: int
    eligible: bool


class _TargetFacts(NamedTuple):
    """What one daily capacity needs of one ticket, worked out once (see `Entry`)."""

    day: tuple[str, str]  # (customer, customer-local date)
    expedited: bool
    quantity: int


class Entry(NamedTuple):
    """One ticket as a ledger counts it under one contract.

    Working out periods, limits and eligibility is most of the cost of counting; an entry does
    it once, so that a `LedgerBook` can count a customer's tickets again after each change for
    a fraction of the cost, and holds a few hundred bytes a ticket instead of its facts.
    Entries sort in counting order (`key` is unique: it ends with the id).
    """

    key: tuple[float, int, int, str]
    id: str
    customer: str  # the customer, or the ticket alone when it has none
    counted: bool  # neither deleted nor spam, and of this contract
    covered: bool  # within the contract's scope
    quotas: tuple[_QuotaFacts | None, ...]  # per quota, in file order; None: cannot apply
    targets: tuple[_TargetFacts | None, ...]  # per capacity target; None: not counted


def entry(contract: Contract, facts: TicketFacts) -> Entry:
    """`facts` as the ledgers of `contract` count them."""
    spec = contract.spec
    quotas: list[_QuotaFacts | None] = []
    for quota in spec.quotas.values():
        limit = quota.limit_for(facts, contract)
        period = period_of(quota, contract, facts)
        if limit is None or period is None:
            quotas.append(None)
            continue
        quotas.append(
            _QuotaFacts(
                quota.categories is None or facts.category in quota.categories,
                limit,
                _shared(period),
                1 if quota.counts == "tickets" else facts.quantities.get(quota.counts, 1),
                quota.eligible.allows(facts),
            )
        )
    targets: list[_TargetFacts | None] = []
    customer = _shared(facts.customer or f"ticket:{facts.id}")
    for _, target in _capacity_targets(contract):
        capacity = target.capacity
        assert capacity is not None
        local_zone = _customer_zone(facts)
        if local_zone is None or (
            target.categories is not None and facts.category not in target.categories
        ):
            targets.append(None)
            continue
        day = _shared(facts.created_at.astimezone(local_zone).date().isoformat())
        targets.append(
            _TargetFacts(
                (customer, day),
                target.expedite is not None and target.expedite.honoured(facts),
                facts.quantities.get(capacity.quantity, 0),
            )
        )
    scope = spec.scope
    return Entry(
        order_key(facts),
        facts.id,
        customer,
        facts.status not in NEVER_COUNTS and facts.contract == contract.name,
        scope is None or scope.covers(facts),
        tuple(quotas),
        tuple(targets),
    )


_SHARED: dict[str, str] = {}


def _shared(label: str) -> str:
    """One string object per period label or customer, however many entries name it."""
    if len(_SHARED) > 100_000:
        _SHARED.clear()
    return _SHARED.setdefault(label, label)


def _capacity_targets(contract: Contract) -> list[tuple[str, TargetSpec]]:
    """The targets with a daily capacity, by name, in file order."""
    return [(name, t) for name, t in contract.spec.targets.items() if t.capacity is not None]


def _in_counting_order(entries: Iterable[Entry]) -> list[Entry]:
    """The entries sorted by key, at a third of the cost.

    Sorting on the creation instant alone is a sort of floats, much cheaper than one of tuples;
    the few runs of tickets created at the same instant are then put in order of key.
    """
    stamped = sorted(((e.key[0], e) for e in entries), key=itemgetter(0))
    ordered = [e for _, e in stamped]
    start = 0
    for end in range(1, len(stamped) + 1):
        if end == len(stamped) or stamped[end][0] != stamped[start][0]:
            if end - start > 1:
                ordered[start:end] = sorted(ordered[start:end])
            start = end
    return ordered


class Ledger:
    """Quota positions of a set of tickets of one contract."""

    def __init__(self, contract: Contract, tickets: Iterable[TicketFacts]) -> None:
        latest: dict[str, TicketFacts] = {}
        for facts in tickets:
            latest[facts.id] = facts
        self._count_all(contract, _in_counting_order(entry(contract, f) for f in latest.values()))

    @classmethod
    def of_entries(cls, contract: Contract, entries: list[Entry]) -> Ledger:
        """The ledger of entries already in counting order, one per ticket."""
        ledger = cls.__new__(cls)
        ledger._count_all(contract, entries)
        return ledger

    def __contains__(self, ticket_id: object) -> bool:
        return ticket_id in self._ids

    def in_scope(self, ticket_id: str) -> bool:
        """True when the contract covers the ticket, allowances taken into account."""
        return ticket_id not in self._out_of_scope

    def uses(self, ticket_id: str) -> list[QuotaUse]:
        """Every quota's verdict on that ticket (empty when no quota applies to it)."""
        return self._uses.get(ticket_id, [])

    def allocation(self, ticket_id: str, target: str) -> Allocation | None:
        """How an order's units share the day's capacity of `target` (None: not counted)."""
        return self._allocations.get((ticket_id, target))

    def same_for(self, other: Ledger, ticket_id: str) -> bool:
        """True when both ledgers treat the ticket alike (a decision on it would not change)."""
        return (
            self.uses(ticket_id) == other.uses(ticket_id)
            and self.in_scope(ticket_id) == other.in_scope(ticket_id)
            and all(
                self.allocation(ticket_id, name) == other.allocation(ticket_id, name)
                for name, _ in self._capacities
            )
        )

    def _count_all(self, contract: Contract, entries: list[Entry]) -> None:
        """Count `entries` (in counting order) against every quota and daily capacity.

        Ticket by ticket, each quota in file order: a quota that puts tickets out of scope (an
        installation allowance) acts on a ticket before the quotas that count out-of-scope
        tickets (grace calls) look at it, as if each quota had counted every ticket in turn.
        """
        self._ids: set[str] = set()
        self._uses: dict[str, list[QuotaUse]] = defaultdict(list)
        self._allocations: dict[tuple[str, str], Allocation] = {}
        # The tickets the contract does not cover; an allowance can add more.
        self._out_of_scope: set[str] = set()
        # The running totals, kept so that `extend` can count one more ticket.
        self._quotas = list(contract.spec.quotas.items())
        self._capacities = _capacity_targets(contract)
        self._used: list[dict[tuple[str, str], int]] = [{} for _ in self._quotas]
        self._days: list[tuple[dict[tuple[str, str], int], dict[tuple[str, str], list[int]]]] = [
            ({}, {}) for _ in self._capacities
        ]
        for e in entries:
            self.extend(e)

    def extend(self, e: Entry) -> None:
        """Count one more ticket, which must come after every ticket counted so far."""
        self._ids.add(e.id)
        if not e.covered:
            self._out_of_scope.add(e.id)
        if not e.counted:
            return
        for index, (name, quota) in enumerate(self._quotas):
            q = e.quotas[index]
            if q is None or not q.wanted:
                continue
            if (e.id not in self._out_of_scope) != (quota.applies_to == "in_scope"):
                continue
            self._count(name, quota, q, e, self._used[index])
        for index, (name, target) in enumerate(self._capacities):
            t = e.targets[index]
            if t is not None:
                self._allocate(name, target, t, e.id, self._days[index])

    def _count(
        self,
        name: str,
        quota: QuotaSpec,
        q: _QuotaFacts,
        e: Entry,
        used: dict[tuple[str, str], int],
    ) -> None:
        # A ticket without a customer cannot share a quota with anyone (its own key).
        key = (e.customer, q.period)
        before = used.get(key, 0)
        fits = q.eligible and before + q.amount <= q.limit
        self._uses[e.id].append(
            QuotaUse(name, q.period, before, q.amount, q.limit, fits, q.eligible)
        )
        if fits:
            used[key] = before + q.amount
        elif quota.over.out_of_scope:
            self._out_of_scope.add(e.id)

    def _allocate(
        self,
        name: str,
        target: TargetSpec,
        t: _TargetFacts,
        ticket_id: str,
        days: tuple[dict[tuple[str, str], int], dict[tuple[str, str], list[int]]],
    ) -> None:
        """Give the ticket's units their share of its customer-local day's capacity.

        `days` holds the units given a due so far per customer-local day: in all, and in each
        expedited tier.
        """
        used_by_day, tiers_by_day = days
        capacity = target.capacity
        assert capacity is not None
        tiers = capacity.expedited
        used = used_by_day.get(t.day, 0)
        tier_used = tiers_by_day.setdefault(t.day, [0] * len(tiers))
        remaining = t.quantity
        pieces: Allocation = []
        while remaining > 0:
            take = min(remaining, capacity.limit - used)
            if take <= 0:
                pieces.append((remaining, None))
                break
            tier = STANDARD
            for index, level in enumerate(tiers if t.expedited else []):
                if level.limit is None:
                    tier = index
                    break
                if tier_used[index] < level.limit:
                    tier, take = index, min(take, level.limit - tier_used[index])
                    break
            if tier != STANDARD:
                tier_used[tier] += take
            pieces.append((take, tier))
            used += take
            remaining -= take
        used_by_day[t.day] = used
        self._allocations[(ticket_id, name)] = pieces or [
            (0, 0 if t.expedited and tiers else STANDARD)
        ]


class LedgerBook:
    """One customer's tickets of one contract as ledger entries, kept up to date between
    decisions: a change costs one entry and a count of cheap entries, not a read and a count
    of the customer's whole period.

    It holds the tickets created at or after `since` (None: all), and older ones only of the
    categories a lifetime quota keeps counting (`Reach.kept`). A ledger counted from it places
    every ticket created `reach.window` or more after `since` exactly as one built from that
    ticket's own window would: tickets outside a ticket's periods never change its count.
    """

    def __init__(
        self, contract: Contract, since: datetime | None, kept: frozenset[str] = frozenset()
    ) -> None:
        self.contract = contract
        self.since = since
        self.kept = kept
        self._entries: list[Entry] = []  # in counting order
        self._by_id: dict[str, Entry] = {}
        self._ledger: Ledger | None = None
        self._pinned: Ledger | None = None  # see `pin`

    def __len__(self) -> int:
        return len(self._entries)

    def ids(self) -> list[str]:
        """The tickets the book holds."""
        return list(self._by_id)

    def holds(self, facts: TicketFacts) -> bool:
        """True when a ticket like this one belongs in the book."""
        return self.since is None or facts.created_at >= self.since or facts.category in self.kept

    def fill(self, tickets: Iterable[TicketFacts]) -> None:
        """Add many tickets at once (the first fill of an empty book)."""
        for facts in tickets:
            if self.holds(facts):
                self._by_id[facts.id] = entry(self.contract, facts)
        self._entries = _in_counting_order(self._by_id.values())
        self._ledger = self._pinned = None

    def put(self, facts: TicketFacts) -> None:
        """Add a ticket or its new facts (a ticket the book does not hold is dropped).

        A new ticket that comes last in counting order, as a new ticket usually does, is
        counted onto the ledger in hand; any other change has the ledger counted again.
        """
        self.remove(facts.id)
        if not self.holds(facts):
            return
        new = entry(self.contract, facts)
        self._by_id[new.id] = new
        if not self._entries or self._entries[-1] < new:
            self._entries.append(new)
            if self._ledger is not None and self._ledger is not self._pinned:
                self._ledger.extend(new)
                return
        else:
            insort(self._entries, new)
        self._ledger = self._pinned = None

    def remove(self, ticket_id: str) -> None:
        """Forget a ticket (nothing when the book does not hold it)."""
        old = self._by_id.pop(ticket_id, None)
        if old is None:
            return
        del self._entries[bisect_left(self._entries, old)]
        self._ledger = self._pinned = None

    def ledger(self) -> Ledger:
        """The ledger of the book's tickets as they are now (counted again after a change)."""
        if self._ledger is None:
            self._ledger = Ledger.of_entries(self.contract, self._entries)
        return self._ledger

    def pin(self) -> Ledger:
        """The ledger as it is now, left as it is by later changes (they count a new one)."""
        self._pinned = self.ledger()
        return self._pinned

    def cool(self) -> None:
        """Let the counted ledger go (it is counted again when next asked for)."""
        self._ledger = self._pinned = None

    def later(self, facts: TicketFacts) -> list[str]:
        """The ids of the tickets after `facts` in counting order."""
        start = bisect_right(self._entries, order_key(facts), key=itemgetter(0))
        return [e.id for e in self._entries[start:]]
