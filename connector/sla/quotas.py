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

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
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
    "Ledger",
    "QuotaUse",
    "Reach",
    "contract_year_start",
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


def _in_counting_order(tickets: Iterable[TicketFacts]) -> list[TicketFacts]:
    """The tickets sorted by `order_key`, at a third of the cost.

    Sorting on the creation instant alone is a sort of floats, much cheaper than one of tuples;
    the few runs of tickets created at the same instant are then put in order of id.
    """
    stamped = sorted(
        ((facts.created_at.timestamp(), facts) for facts in tickets), key=itemgetter(0)
    )
    ordered = [facts for _, facts in stamped]
    start = 0
    for end in range(1, len(stamped) + 1):
        if end == len(stamped) or stamped[end][0] != stamped[start][0]:
            if end - start > 1:
                ordered[start:end] = sorted(ordered[start:end], key=order_key)
            start = end
    return ordered


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


class Ledger:
    """Quota positions of a set of tickets of one contract."""

    def __init__(self, contract: Contract, tickets: Iterable[TicketFacts]) -> None:
        latest: dict[str, TicketFacts] = {}
        for facts in tickets:
            latest[facts.id] = facts
        self.tickets = latest
        self._uses: dict[str, list[QuotaUse]] = defaultdict(list)
        self._allocations: dict[tuple[str, str], Allocation] = {}
        scope = contract.spec.scope
        # The tickets the contract does not cover; an allowance can add more below.
        self._out_of_scope = (
            set()
            if scope is None
            else {facts.id for facts in latest.values() if not scope.covers(facts)}
        )
        # Sorted once: every quota and capacity below takes the tickets in this order.
        counted = _in_counting_order(
            facts
            for facts in latest.values()
            if facts.status not in NEVER_COUNTS and facts.contract == contract.name
        )
        # In file order: a quota that puts tickets out of scope (an installation allowance)
        # comes before the quotas that count out-of-scope tickets (grace calls).
        for name, quota in contract.spec.quotas.items():
            self._count(contract, name, quota, counted)
        for name, target in contract.spec.targets.items():
            if target.capacity is not None:
                self._allocate(name, target, counted)

    def in_scope(self, ticket_id: str) -> bool:
        """True when the contract covers the ticket, allowances taken into account."""
        return ticket_id not in self._out_of_scope

    def uses(self, ticket_id: str) -> list[QuotaUse]:
        """Every quota's verdict on that ticket (empty when no quota applies to it)."""
        return self._uses.get(ticket_id, [])

    def allocation(self, ticket_id: str, target: str) -> Allocation | None:
        """How an order's units share the day's capacity of `target` (None: not counted)."""
        return self._allocations.get((ticket_id, target))

    def _allocate(self, name: str, target: TargetSpec, counted: list[TicketFacts]) -> None:
        capacity = target.capacity
        assert capacity is not None
        tiers = capacity.expedited
        # Units given a due so far per customer-local day: in all, and in each expedited tier.
        used_by_day: dict[tuple[str, str], int] = {}
        tiers_by_day: dict[tuple[str, str], list[int]] = {}
        for facts in counted:
            if target.categories is not None and facts.category not in target.categories:
                continue
            local_zone = _customer_zone(facts)
            if local_zone is None:
                continue
            day = facts.created_at.astimezone(local_zone)
            customer = facts.customer or f"ticket:{facts.id}"
            key = (customer, day.date().isoformat())
            used = used_by_day.get(key, 0)
            tier_used = tiers_by_day.setdefault(key, [0] * len(tiers))
            expedited = target.expedite is not None and target.expedite.honoured(facts)
            remaining = facts.quantities.get(capacity.quantity, 0)
            pieces: Allocation = []
            while remaining > 0:
                take = min(remaining, capacity.limit - used)
                if take <= 0:
                    pieces.append((remaining, None))
                    break
                tier = STANDARD
                for index, level in enumerate(tiers if expedited else []):
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
            used_by_day[key] = used
            self._allocations[(facts.id, name)] = pieces or [
                (0, 0 if expedited and tiers else STANDARD)
            ]

    def _count(
        self, contract: Contract, name: str, quota: QuotaSpec, counted: list[TicketFacts]
    ) -> None:
        used: dict[tuple[str, str], int] = {}
        by_tickets = quota.counts == "tickets"
        for facts in counted:
            if not quota.concerns(facts, facts.id not in self._out_of_scope):
                continue
            limit = quota.limit_for(facts, contract)
            period = period_of(quota, contract, facts)
            if limit is None or period is None:
                continue
            # A ticket without a customer cannot share a quota with anyone.
            key = (facts.customer or f"ticket:{facts.id}", period)
            before = used.get(key, 0)
            amount = 1 if by_tickets else facts.quantities.get(quota.counts, 1)
            eligible = quota.eligible.allows(facts)
            fits = eligible and before + amount <= limit
            self._uses[facts.id].append(
                QuotaUse(name, period, before, amount, limit, fits, eligible)
            )
            if fits:
                used[key] = before + amount
            elif quota.over.out_of_scope:
                self._out_of_scope.add(facts.id)
