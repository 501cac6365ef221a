"""The decision for one ticket at `now`: due instants, states, priority, tags and a note.

`decide` is pure: the same contract, facts and `now` give the same decision. A ticket that
names something its contract does not know gets a decision tagged `sla_unmapped` with the
reason in `problem`, never an exception, so one bad ticket never stops the rest.

What a contract says about one plan and severity, or one calendar choice, is looked up once
per contract and remembered (`_Rules`): a decision then costs its due computations and the
building of its result, not a new reading of the contract.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import TypeVar
from weakref import WeakKeyDictionary
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connector.errors import UnmappedTicket
from connector.sla.calendar import BusinessCalendar, CalendarError, zone
from connector.sla.contract import (
    Contract,
    QuotaEffect,
    Steps,
    TargetSpec,
)
from connector.sla.durations import (
    BestEffort,
    BusinessDays,
    BusinessHours,
    Duration,
    Hours,
    due_epoch,
)
from connector.sla.model import (
    Decision,
    Entitlement,
    Part,
    Priority,
    QuotaResult,
    TargetResult,
    TargetState,
    TicketFacts,
    trusted,
)
from connector.sla.pausing import Spell, accrue, epoch_history, paused_spells
from connector.sla.quotas import STANDARD, Ledger, QuotaUse, reach
from connector.timeutil import (
    format_instant,
    format_local,
    format_span,
    from_epoch,
    to_epoch,
    zone_abbreviation,
)

__all__ = [
    "decide",
    "decide_all",
    "decide_each",
    "decide_in_order",
    "decide_with",
    "time_to_event",
]


def decide_with(
    contracts: Mapping[str, Contract],
    facts: TicketFacts,
    now: datetime,
    ledger: Ledger | None = None,
) -> Decision:
    """`decide` with the ticket's contract looked up by name; unknown names are unmapped."""
    contract = contracts.get(facts.contract)
    if contract is None:
        return _unknown_contract(contracts, facts, from_epoch(to_epoch(now)))
    return decide(contract, facts, now, ledger)


def decide_all(
    contracts: Mapping[str, Contract], tickets: Iterable[TicketFacts], now: datetime
) -> list[Decision]:
    """Decide a whole set of tickets, quotas counted across it.

    One decision per distinct ticket id, in order of first appearance; when a ticket appears
    more than once, its latest version is the one decided and counted.
    """
    return list(decide_each(contracts, tickets, now))


def decide_each(
    contracts: Mapping[str, Contract], tickets: Iterable[TicketFacts], now: datetime
) -> Iterator[Decision]:
    """`decide_all` one decision at a time, so that a caller can write each as it comes.

    The whole input is read before the first decision: any ticket may be a newer version of
    an earlier one, or come first in a quota that an earlier line counted.
    """
    latest: dict[str, TicketFacts] = {}
    for facts in tickets:
        latest[facts.id] = facts
    by_contract: dict[str, list[TicketFacts]] = {}
    for facts in latest.values():
        by_contract.setdefault(facts.contract, []).append(facts)
    ledgers = {
        name: Ledger(contracts[name], members)
        for name, members in by_contract.items()
        if name in contracts and contracts[name].needs_ledger
    }
    del by_contract
    epoch = to_epoch(now)
    instant = from_epoch(epoch)
    rules = {name: _rules(contract) for name, contract in contracts.items()}
    for facts in latest.values():
        found = rules.get(facts.contract)
        if found is None:
            yield _unknown_contract(contracts, facts, instant)
        else:
            yield _decide(found, facts, epoch, instant, ledgers.get(facts.contract))


def decide_in_order(
    contracts: Mapping[str, Contract], tickets: Iterable[TicketFacts], now: datetime
) -> Iterator[Decision]:
    """`decide_each` for tickets that come in order of creation, one version of each.

    A ticket's decision depends only on the tickets created before it in its periods, so the
    tickets are decided in batches as time moves on, each contract's batch half its longest
    period. A batch is decided with one ledger of its own tickets and the ones before it
    still in an open period (and the older ones a lifetime quota took); tickets of closed
    periods are dropped. What is held is bounded by the tickets of the open
    periods, not by the length of the input. Decisions come out batch by batch: a contract
    without quotas decides each ticket at once, others when the batch's time has passed.

    The caller checks the order (created_at never goes back) and that no ticket repeats.
    """
    epoch = to_epoch(now)
    instant = from_epoch(epoch)
    rules = {name: _rules(contract) for name, contract in contracts.items()}
    batches: dict[str, _Batches] = {}
    for facts in tickets:
        found = rules.get(facts.contract)
        if found is None:
            yield _unknown_contract(contracts, facts, instant)
            continue
        if not found.contract.needs_ledger:
            yield _decide(found, facts, epoch, instant, None)
            continue
        batch = batches.get(facts.contract)
        if batch is None:
            batch = batches[facts.contract] = _Batches(found.contract)
        closed = batch.add(facts)
        if closed is not None:
            ledger, members = closed
            for member in members:
                yield _decide(found, member, epoch, instant, ledger)
    for name, batch in batches.items():
        ledger, members = batch.close()
        for member in members:
            yield _decide(rules[name], member, epoch, instant, ledger)


_DAY = 86_400


class _Batches:
    """One contract's tickets in order of creation: the open batch and the history it needs."""

    def __init__(self, contract: Contract) -> None:
        self.contract = contract
        found = reach(contract)
        self.kept = found.kept
        self.lifetime = frozenset(
            name for name, quota in contract.spec.quotas.items() if quota.period == "lifetime"
        )
        self.window = None if found.window is None else found.window.total_seconds()
        # Half the longest period: what is held peaks at 1.5 periods of tickets, and each ticket
        # is counted in at most three ledgers.
        self.length = None if self.window is None else max(self.window / 2, _DAY)
        self.for_life: list[TicketFacts] = []  # older than the window, taken by a lifetime quota
        self.history: list[TicketFacts] = []  # decided, within the window; in order of creation
        self.stamps: list[float] = []  # their creation instants
        self.batch: list[TicketFacts] = []
        self.batch_stamps: list[float] = []
        self.ends = math.inf
        self.ledger: Ledger | None = None

    def add(self, facts: TicketFacts) -> tuple[Ledger, list[TicketFacts]] | None:
        """Take the next ticket; returns the batch it closed, with its ledger, if it did."""
        created = facts.created_at.timestamp()
        closed = None
        if created >= self.ends:
            closed = self.close()
            self._forget_before(created)
        if not self.batch and self.length is not None:
            self.ends = created + self.length
        self.batch.append(facts)
        self.batch_stamps.append(created)
        return closed

    def close(self) -> tuple[Ledger, list[TicketFacts]]:
        """The open batch with its ledger; its tickets join the history."""
        members = self.batch
        self.ledger = Ledger(self.contract, [*self.for_life, *self.history, *members])
        self.history.extend(members)
        self.stamps.extend(self.batch_stamps)
        self.batch, self.batch_stamps, self.ends = [], [], math.inf
        return self.ledger, members

    def _forget_before(self, start: float) -> None:
        """Drop the tickets no period open from `start` on can count.

        Older than the longest period, a ticket still counts only if a lifetime quota took it
        (one it refused added nothing to the count, and its own periods are closed), so what is
        held for life is bounded by the allowances, not by the customer's history.
        """
        assert self.window is not None
        assert self.ledger is not None
        cut = bisect.bisect_left(self.stamps, start - self.window)
        if not cut:
            return
        if self.kept:
            kept, lifetime, ledger = self.kept, self.lifetime, self.ledger
            self.for_life += [
                facts
                for facts in self.history[:cut]
                if facts.category in kept
                and any(use.fits and use.quota in lifetime for use in ledger.uses(facts.id))
            ]
        del self.history[:cut]
        del self.stamps[:cut]


def decide(
    contract: Contract, facts: TicketFacts, now: datetime, ledger: Ledger | None = None
) -> Decision:
    """Everything the contract promises this ticket, as it stands at `now`.

    `ledger` holds the customer's other tickets of the periods the contract's quotas count;
    without it the ticket is counted alone.
    """
    epoch = to_epoch(now)
    return _decide(_rules(contract), facts, epoch, from_epoch(epoch), ledger)


def time_to_event(
    contract: Contract, facts: TicketFacts, decision: Decision, target: str, event: datetime
) -> tuple[int, str] | None:
    """How long a target took from the ticket's creation to `event`, measured as the target
    counts: business seconds on its calendar ("business hours") or elapsed seconds ("hours").
    None for what has no such measure (a target re-armed at each reply, a daily capacity, a
    calendar-day promise, best effort). Time the ticket spent waiting is included."""
    spec = contract.spec.targets.get(target)
    if spec is None or spec.recurring or spec.capacity is not None:
        return None
    duration = spec.duration
    if duration is None and spec.by_severity is not None and decision.severity is not None:
        duration = spec.by_severity.get(decision.severity)
    if duration is None and spec.by_plan is not None and decision.plan and decision.severity:
        duration = spec.by_plan.get(decision.plan, {}).get(decision.severity)
    start, end = to_epoch(facts.created_at), to_epoch(event)
    if isinstance(duration, Hours):
        return max(0, end - start), "hours"
    if not isinstance(duration, BusinessHours | BusinessDays):
        return None
    rules = _rules(contract)
    try:
        calendar = rules.calendar(rules.choice(facts), spec)
    except (UnmappedTicket, CalendarError):
        return None
    return calendar.elapsed_epoch(start, max(start, end)), "business hours"


def _decide(
    rules: _Rules, facts: TicketFacts, now: int, now_dt: datetime, ledger: Ledger | None
) -> Decision:
    try:
        return _Decider(rules, facts, now, now_dt, ledger).decision()
    except (UnmappedTicket, CalendarError) as exc:
        # A calendar refuses an instant outside the years it covers (a ticket dated 1900):
        # that ticket cannot be decided, the others go on.
        reason = exc.reason if isinstance(exc, UnmappedTicket) else str(exc)
        contract = rules.contract
        tags = contract.spec.tags
        return _unmapped(
            facts, now_dt, reason, [tags.contract.format(contract=contract.name), tags.unmapped]
        )


def resolve(contract: Contract, facts: TicketFacts) -> tuple[str | None, str | None]:
    """The plan and severity the contract applies to the ticket; UnmappedTicket if unknown."""
    spec = contract.spec
    plan = facts.plan
    if spec.plans:
        plan = plan or spec.default_plan
        if plan is None:
            raise UnmappedTicket(
                facts.id, f"no plan (contract {contract.name} has plans {', '.join(spec.plans)})"
            )
        if plan not in spec.plans:
            raise UnmappedTicket(
                facts.id,
                f"unknown plan {plan!r} for contract {contract.name} "
                f"(known: {', '.join(spec.plans)})",
            )
    severity = facts.severity_override or facts.severity or spec.default_severity
    if spec.severities:
        if severity is None:
            raise UnmappedTicket(
                facts.id, f"no severity (contract {contract.name} has {', '.join(spec.severities)})"
            )
        if severity not in spec.severities:
            which = "severity override" if facts.severity_override else "severity"
            raise UnmappedTicket(
                facts.id,
                f"unknown {which} {severity!r} for contract "
                f"{contract.name} (known: {', '.join(spec.severities)})",
            )
    return plan, severity


# -- what a contract says, looked up once ----------------------------------------------------

_BEST_EFFORT = BestEffort()

# Keys come from ticket data (plans, zones, offices): a flood of distinct values must not make
# a long-running daemon grow, so a cache that gets this big starts again.
_CACHE_LIMIT = 4096


class _Clock:
    """One duration on one calendar: its due and at-risk instants from any start."""

    def __init__(self, duration: Duration, calendar: BusinessCalendar, threshold: float) -> None:
        assert not isinstance(duration, BestEffort)
        self.duration, self.calendar, self.threshold = duration, calendar, threshold
        self.text = str(duration)
        self.zone = calendar.offices[0].zone
        self.business = isinstance(duration, BusinessHours | BusinessDays)
        # Business time from the start to the due instant is the duration itself, so the
        # at-risk point is a fixed share of it.
        seconds = 0
        if isinstance(duration, BusinessHours | Hours):
            seconds = duration.seconds
        elif isinstance(duration, BusinessDays):
            seconds = duration.seconds_on(calendar)
        self.seconds, self.risk_seconds = seconds, math.ceil(threshold * seconds)

    def due(self, start: int) -> int:
        """The due instant of the duration started at `start`."""
        if self.business:
            return self.calendar.add_epoch(start, self.seconds)
        if isinstance(self.duration, Hours):
            return start + self.seconds
        return due_epoch(self.duration, start, self.calendar, self.zone)

    def due_and_risk(self, start: int) -> tuple[int, int]:
        """The due instant and the instant the target turns at risk."""
        due = self.due(start)
        if self.business:
            return due, self.calendar.add_epoch(start, self.risk_seconds)
        if isinstance(self.duration, Hours):
            return due, start + self.risk_seconds
        return due, start + math.ceil(self.threshold * (due - start))

    def accrued(
        self, start: int, spells: Sequence[Spell], until: int
    ) -> tuple[int | None, int | None, int, int]:
        """With the clock stopped in `spells`: (due, at-risk instant, seconds owed, seconds
        paused). Due and at-risk are None when an open last spell stops the clock before they
        accrue; the paused seconds are those of the measure (business or elapsed) that the
        spells took out before the due, or, paused at `until` (now), before `until`."""
        assert self.business or isinstance(self.duration, Hours)  # the loader refuses others
        add, measure = (
            (self.calendar.add_epoch, self.calendar.elapsed_epoch)
            if self.business
            else (_elapsed_add, _elapsed_measure)
        )
        (at_risk, _), (due, owed) = accrue(
            add, measure, start, (self.risk_seconds, self.seconds), spells
        )
        if due is not None:
            return due, at_risk, 0, measure(start, due) - self.seconds
        return None, at_risk, owed, measure(start, until) - (self.seconds - owed)

    def warnings(
        self, start: int, spells: Sequence[Spell], shares: Sequence[float]
    ) -> list[int | None]:
        """The instants each share of the duration has run, counted as the due instant is
        (business or elapsed time, the spells not counting); None: paused before it."""
        if not (self.business or isinstance(self.duration, Hours)):  # a calendar-day promise
            due = self.due(start)
            return [start + math.ceil(share * (due - start)) for share in shares]
        add, measure = self._measure()
        amounts = [math.ceil(share * self.seconds) for share in shares]
        return [at for at, _ in accrue(add, measure, start, amounts, spells)]

    def escalations(
        self, due: int, spells: Sequence[Spell], levels: Sequence[Duration]
    ) -> list[int | None]:
        """The instants so much time has run past `due` (business time on this clock's
        calendar for business levels, elapsed time for hours), the spells not counting; None:
        paused before it."""
        if not levels:
            return []
        first = levels[0]
        if isinstance(first, Hours):
            add, measure = _elapsed_add, _elapsed_measure
        else:
            add, measure = self.calendar.add_epoch, self.calendar.elapsed_epoch
        amounts = [
            level.seconds_on(self.calendar) if isinstance(level, BusinessDays) else level.seconds
            for level in levels
            if isinstance(level, BusinessDays | BusinessHours | Hours)
        ]
        return [at for at, _ in accrue(add, measure, due, amounts, spells)]

    def _measure(self) -> tuple[Callable[[int, int], int], Callable[[int, int], int]]:
        if self.business:
            return self.calendar.add_epoch, self.calendar.elapsed_epoch
        return _elapsed_add, _elapsed_measure

    def where(self, defaulted: str | None) -> str:
        """Which clock the basis counts on: the calendar, nothing (elapsed time), the zone."""
        if self.business:
            return f", {self.calendar.label}" + (f" ({defaulted})" if defaulted else "")
        if isinstance(self.duration, Hours):
            return ""
        return f" ({self.zone.key})"


def _elapsed_add(start: int, seconds: int) -> int:
    return start + seconds


def _elapsed_measure(start: int, end: int) -> int:
    return end - start


class _Target:
    """One target of the contract for one plan and severity."""

    def __init__(
        self,
        name: str,
        spec: TargetSpec,
        plan: str | None,
        severity: str | None,
        steps: Steps | None = None,
    ) -> None:
        self.name, self.spec, self._plan, self._severity = name, spec, plan, severity
        self.categories = None if spec.categories is None else frozenset(spec.categories)
        self.paused_by = frozenset(spec.paused_by)
        # Warning points and escalation levels beyond the one at-risk threshold (None: none).
        self.steps = steps
        self.threshold = None if steps is None else steps.warnings[0][0]

    @cached_property
    def duration(self) -> Duration:
        """The target's duration for this plan and severity (not expedited)."""
        target = self.spec
        if target.duration is not None:
            return target.duration
        if target.by_severity is not None:
            assert self._severity is not None
            return target.by_severity[self._severity]
        assert target.by_plan is not None
        assert self._plan is not None
        assert self._severity is not None
        return target.by_plan[self._plan][self._severity]


class _Terms:
    """What the contract promises one plan and severity: targets, tags, priority, note head."""

    def __init__(self, contract: Contract, plan: str | None, severity: str | None) -> None:
        spec = contract.spec
        self.plan, self.severity = plan, severity
        self.targets = tuple(
            _Target(n, t, plan, severity, contract.steps(n)) for n, t in spec.targets.items()
        )
        tags = [spec.tags.contract.format(contract=contract.name)]
        head = f"SLA {spec.title}"
        if plan is not None and spec.plans:
            tags.append(spec.tags.plan.format(plan=plan))
            head += f", plan {plan}"
        self.names_severity = severity is not None and bool(spec.severities)
        if severity is not None and spec.severities:
            tags.append(spec.tags.severity.format(severity=severity))
            head += f", severity {severity}"
        self.tags, self.head = tuple(tags), head
        self.priority: Priority = spec.priority
        if severity is not None and severity in spec.severities:
            self.priority = spec.severities[severity].priority


class _Choice:
    """The calendar a ticket's offices, region and zone pick, and what follows from it."""

    def __init__(
        self,
        contract: Contract,
        names: tuple[str, ...],
        customer_zone: str | None,
        defaulted: str | None,
    ) -> None:
        self.names, self.customer_zone, self.defaulted = names, customer_zone, defaulted
        self.calendar = contract.calendar(names, customer_zone)
        self.local_zone = _local_zone(contract, names, self.calendar, customer_zone)
        self.calendars: dict[str | None, BusinessCalendar] = {None: self.calendar}
        # Each target's clock for its own duration, and where the basis says it counts.
        self.clocks: dict[_Target, tuple[_Clock, str]] = {}


def _local_zone(
    contract: Contract,
    names: tuple[str, ...],
    calendar: BusinessCalendar,
    customer_zone: str | None,
) -> ZoneInfo:
    """The zone a decision's times are shown in (its note, `local_zone`): the customer's when
    the contract counts in it; else the one office's that serves the ticket; else, for a union
    of offices, the customer's if the ticket names one, the contract's if not.

    A Denver-office ticket of a contract written in Zurich is due at 17:00 Denver time, and
    says so in Denver time, not as 01:00 the next day in Zurich.
    """
    if contract.needs_customer_zone(names):
        return zone(customer_zone or "UTC")
    if len(calendar.offices) == 1:
        return calendar.offices[0].zone
    return zone(customer_zone) if customer_zone else contract.zone


class _Rules:
    """A contract's terms by plan and severity, and its calendar choices, each made once."""

    def __init__(self, contract: Contract) -> None:
        self.contract, self.spec = contract, contract.spec
        self._terms: dict[tuple[str | None, ...], _Terms | str] = {}
        self._choices: dict[tuple[object, ...], _Choice | str] = {}
        self._clocks: dict[tuple[Duration, BusinessCalendar, float | None], _Clock] = {}
        self._best_effort: dict[str, TargetResult] = {}
        self.expedite_priority: Priority | None = next(
            (
                t.expedite.priority
                for t in self.spec.targets.values()
                if t.expedite and t.expedite.priority
            ),
            None,
        )

    def terms(self, facts: TicketFacts) -> _Terms:
        """The ticket's plan and severity and what they promise; UnmappedTicket if unknown."""
        key = (facts.plan, facts.severity, facts.severity_override)
        found = self._terms.get(key)
        if found is None:
            try:
                found = _Terms(self.contract, *resolve(self.contract, facts))
            except UnmappedTicket as exc:
                found = exc.reason
            _remember(self._terms, key, found)
        if isinstance(found, str):
            raise UnmappedTicket(facts.id, found)
        return found

    def choice(self, facts: TicketFacts) -> _Choice:
        """The ticket's calendar choice; UnmappedTicket if it names nothing known."""
        customer = facts.customer_facts
        offices = customer.offices
        key = (facts.region, customer.timezone, None if offices is None else tuple(offices))
        found = self._choices.get(key)
        if found is None:
            try:
                found = self._choose(facts)
            except UnmappedTicket as exc:
                found = exc.reason
            _remember(self._choices, key, found)
        if isinstance(found, str):
            raise UnmappedTicket(facts.id, found)
        return found

    def best_effort(self, basis: str) -> TargetResult:
        """A best-effort target nothing has achieved yet: the same for every such ticket."""
        result = self._best_effort.get(basis)
        if result is None:
            result = trusted(
                TargetResult,
                due=None,
                best_effort=True,
                state="best_effort",
                basis=basis,
                at_risk_at=None,
                achieved_at=None,
                parts=None,
                cycle=None,
                cycles_breached=None,
                owed_seconds=None,
                paused_seconds=None,
            )
            _remember(self._best_effort, basis, result)
        return result

    def clock(
        self, duration: Duration, calendar: BusinessCalendar, threshold: float | None = None
    ) -> _Clock:
        """The (remembered) clock of a duration on a calendar; `threshold`: its first warning
        point, when not the contract's `risk_threshold`."""
        key = (duration, calendar, threshold)
        clock = self._clocks.get(key)
        if clock is None:
            share = self.spec.risk_threshold if threshold is None else threshold
            clock = _Clock(duration, calendar, share)
            _remember(self._clocks, key, clock)
        return clock

    def target_clock(self, choice: _Choice, target: _Target) -> tuple[_Clock, str]:
        """The clock of a target's own duration under a calendar choice, and its `where`."""
        found = choice.clocks.get(target)
        if found is None:
            calendar = self.calendar(choice, target.spec)
            clock = self.clock(target.duration, calendar, target.threshold)
            found = choice.clocks[target] = (clock, clock.where(choice.defaulted))
        return found

    def calendar(self, choice: _Choice, target: TargetSpec) -> BusinessCalendar:
        """The target's own calendar if it names one, else the chosen one."""
        calendar = choice.calendars.get(target.calendar)
        if calendar is None:
            assert target.calendar is not None
            calendar = choice.calendars[target.calendar] = self.contract.calendar(
                (target.calendar,), choice.customer_zone
            )
        return calendar

    def _choose(self, facts: TicketFacts) -> _Choice:
        contract = self.contract
        choice = self.spec.calendar_choice
        assert choice is not None
        customer_zone = facts.customer_facts.timezone
        defaulted: str | None = None
        if customer_zone is not None:
            try:
                zone(customer_zone)
            except (ZoneInfoNotFoundError, ValueError):
                raise UnmappedTicket(
                    facts.id, f"unknown customer time zone {customer_zone!r}"
                ) from None
        if choice.by == "fixed":
            assert choice.calendar is not None  # checked at load
            names: tuple[str, ...] = (choice.calendar,)
        elif choice.by == "offices":
            offices = facts.customer_facts.offices
            if not offices:
                if choice.default is None:
                    raise UnmappedTicket(facts.id, "the customer has no offices")
                names, defaulted = (choice.default,), "no offices on the customer"
            else:
                unknown = [o for o in offices if o not in contract.office_names]
                if unknown:
                    raise UnmappedTicket(
                        facts.id,
                        f"unknown office {unknown[0]!r} for contract "
                        f"{contract.name} (known: "
                        f"{', '.join(contract.office_names)})",
                    )
                names = tuple(sorted(set(offices)))
        else:
            region = facts.region
            if region is None:
                raise UnmappedTicket(
                    facts.id,
                    f"no region (contract {contract.name} needs "
                    f"one of {', '.join(choice.regions)})",
                )
            if region not in choice.regions:
                raise UnmappedTicket(
                    facts.id,
                    f"unknown region {region!r} for contract "
                    f"{contract.name} (known: "
                    f"{', '.join(choice.regions)})",
                )
            names = (choice.regions[region],)
        if customer_zone is None and contract.needs_customer_zone(names):
            customer_zone, defaulted = "UTC", "no time zone on the customer, UTC used"
        return _Choice(contract, names, customer_zone, defaulted)


_RULES: WeakKeyDictionary[Contract, _Rules] = WeakKeyDictionary()


def _rules(contract: Contract) -> _Rules:
    rules = _RULES.get(contract)
    if rules is None:
        rules = _RULES[contract] = _Rules(contract)
    return rules


_K = TypeVar("_K")
_V = TypeVar("_V")


def _remember(cache: dict[_K, _V], key: _K, value: _V) -> None:
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[key] = value


# -- one ticket --------------------------------------------------------------------------------

# A target's result, its due instant and the next instant at which its state would change.
_Outcome = tuple[TargetResult, int | None, int | None]


class _Decider:
    def __init__(
        self,
        rules: _Rules,
        facts: TicketFacts,
        now: int,
        now_dt: datetime,
        ledger: Ledger | None,
    ) -> None:
        self.rules, self.contract, self.spec, self.facts = rules, rules.contract, rules.spec, facts
        self.now, self.now_dt = now, now_dt
        self.created = to_epoch(facts.created_at)
        self.terms = rules.terms(facts)
        self.choice = rules.choice(facts) if self.spec.calendar_choice else None
        self.extra_tags: list[str] = []
        if self.choice is not None and self.choice.defaulted and self.spec.calendar_choice:
            self.extra_tags.append(self.spec.calendar_choice.default_tag)
        self.expedited = False
        self.quota_uses: list[QuotaUse] = []
        # The effect of scope and quotas on this ticket, and a few words on why.
        self.effect: tuple[QuotaEffect, str] | None = None
        # A ledger that does not hold this ticket cannot place it: count it alone.
        self._ledger = ledger if ledger is not None and facts.id in ledger else None
        if self.contract.needs_ledger:
            self.quota_uses = self.ledger.uses(facts.id)
            self.effect = self._effect(self.ledger.in_scope(facts.id))

    def _effect(self, in_scope: bool) -> tuple[QuotaEffect, str] | None:
        """What scope and quotas make of the ticket: entitlement, tag, note, best effort."""
        scope, quotas = self.spec.scope, self.spec.quotas
        wanted = "in_scope" if in_scope else "out_of_scope"
        uses = [u for u in self.quota_uses if quotas[u.quota].applies_to == wanted]
        if in_scope:
            if scope and scope.inactive and not self.facts.customer_facts.active:
                return scope.inactive, "the subscription is not active"
            for use in uses:
                if not use.fits:
                    return quotas[use.quota].over, f"over quota ({use.describe})"
            return None
        for use in uses:
            quota = quotas[use.quota]
            if use.fits:
                return quota.within, f"out of scope, {use.describe}"
            return quota.over, f"out of scope, {use.describe}"
        if scope is not None:
            return scope.otherwise, "out of scope"
        return None

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            self._ledger = Ledger(self.contract, [self.facts])
        return self._ledger

    def decision(self) -> Decision:
        terms, facts, spec = self.terms, self.facts, self.spec
        targets: dict[str, TargetResult] = {}
        dues: list[int | None] = []
        changes: list[int] = []
        for target in terms.targets:
            if target.categories is None or facts.category in target.categories:
                result, due, change = self._target(target)
                targets[target.name] = result
                dues.append(due)
                if change is not None:
                    changes.append(change)
        states = {t.state for t in targets.values()} if targets else ()
        # A target with steps shows its own warning tag instead of the one at-risk tag.
        plain_risk = any(
            targets[t.name].state == "at_risk"
            for t in terms.targets
            if t.steps is None and t.name in targets
        )
        tags = [*terms.tags, *self.extra_tags]
        entitlement: Entitlement = "included"
        if self.effect is not None:
            entitlement = self.effect[0].entitlement or entitlement
            if self.effect[0].tag:
                tags.append(self.effect[0].tag)
        if plain_risk:
            tags.append(spec.tags.at_risk)
        if "breached" in states:
            tags.append(spec.tags.breached)
        if "paused" in states:
            tags.append(spec.tags.paused)
        choice = self.choice
        local_zone = self.contract.zone if choice is None else choice.local_zone
        priority = terms.priority
        if self.expedited and self.rules.expedite_priority:
            priority = self.rules.expedite_priority
        return trusted(
            Decision,
            ticket=facts.id,
            contract=self.contract.name,
            plan=terms.plan,
            severity_submitted=facts.severity,
            severity=terms.severity,
            entitlement=entitlement,
            targets=targets,
            priority=priority,
            tags=list(dict.fromkeys(tags)),
            note=self._note(targets, dues, local_zone),
            next_change_at=from_epoch(min(changes)) if changes else None,
            quotas=[
                trusted(
                    QuotaResult,
                    quota=u.quota,
                    period=u.period,
                    count=u.used_before + u.amount,
                    limit=u.limit,
                    fits=u.fits,
                )
                for u in self.quota_uses
            ],
            calendar=choice.calendar.label if choice is not None else None,
            local_zone=local_zone.key,
            problem=None,
            now=self.now_dt,
        )

    # -- targets -----------------------------------------------------------------------------

    @property
    def _chosen(self) -> _Choice:
        assert self.choice is not None  # only contracts with a calendar_choice have targets
        return self.choice

    def _target(self, target: _Target) -> _Outcome:
        choice = self._chosen
        spec = target.spec
        duration, basis_extra = target.duration, ""
        expedite = spec.expedite
        if expedite is not None and self.facts.flags.get(expedite.flag):
            if expedite.honoured(self.facts):
                duration, basis_extra, self.expedited = expedite.duration, ", expedited", True
            else:
                self.extra_tags.append(expedite.unavailable_tag)
                basis_extra = ", expedite unavailable at upload time"
        if self.effect is not None and self.effect[0].best_effort:
            duration, basis_extra = _BEST_EFFORT, f": {self.effect[1]}"
        done = self._event(spec)
        if isinstance(duration, BestEffort):
            basis = f"best effort{basis_extra}"
            if done is None:
                return self.rules.best_effort(basis), None, None
            return (
                trusted(
                    TargetResult,
                    due=None,
                    best_effort=True,
                    state="achieved",
                    basis=basis,
                    at_risk_at=None,
                    achieved_at=from_epoch(done),
                    parts=None,
                    cycle=None,
                    cycles_breached=None,
                    owed_seconds=None,
                    paused_seconds=None,
                ),
                None,
                None,
            )
        if duration is target.duration:
            clock, where = self.rules.target_clock(choice, target)
        else:
            calendar = self.rules.calendar(choice, spec)
            clock = self.rules.clock(duration, calendar, target.threshold)
            where = clock.where(choice.defaulted)
        if spec.recurring:
            return self._recurring(target, clock, where)
        if spec.capacity is not None:
            return self._shared(target, self.rules.calendar(choice, spec), done)
        basis = f"{clock.text}{where}{basis_extra}"
        if target.paused_by and (spells := self._spells(target.paused_by, self.created, done)):
            outcome = self._paused(clock, self.created, spells, done, basis)
            return self._stepped(target, clock, self.created, spells, outcome)
        due, at_risk = clock.due_and_risk(self.created)
        return self._stepped(
            target, clock, self.created, [], self._timed(due, at_risk, done, basis)
        )

    def _stepped(
        self,
        target: _Target,
        clock: _Clock,
        start: int,
        spells: Sequence[Spell],
        outcome: _Outcome,
    ) -> _Outcome:
        """With warning points and escalation levels: the tag of the latest one reached (only
        the current step shows), and the next one as a change to wake up for. Paused,
        achieved and best-effort targets show none."""
        steps = target.steps
        if steps is None:  # most targets: nothing to add, at once
            return outcome
        result, due, change = outcome
        if (
            result.state not in ("running", "at_risk", "breached")
            or result.achieved_at is not None  # met late: breached, escalated no further
        ):
            return outcome
        now = self.now
        points: list[tuple[int | None, str]]
        if result.state == "breached":
            assert due is not None
            levels = [level for level, _ in steps.escalations]
            instants = clock.escalations(due, spells, levels)
            points = list(zip(instants, (tag for _, tag in steps.escalations), strict=True))
        else:
            shares = [share for share, _ in steps.warnings]
            instants = clock.warnings(start, spells, shares)
            points = list(zip(instants, (tag for _, tag in steps.warnings), strict=True))
        reached = [tag for at, tag in points if at is not None and at <= now]
        if reached:
            self.extra_tags.append(reached[-1])
        coming = [at for at, _ in points if at is not None and at > now]
        if coming:
            change = coming[0] if change is None else min(change, coming[0])
        return result, due, change

    def _shared(self, target: _Target, calendar: BusinessCalendar, done: int | None) -> _Outcome:
        """A target whose units share a daily capacity: one part per distinct due instant."""
        capacity = target.spec.capacity
        assert capacity is not None
        allocation = self.ledger.allocation(self.facts.id, target.name) or [(0, STANDARD)]
        unit = capacity.quantity
        parts: list[tuple[int, Duration | None]] = []
        for quantity, tier in allocation:
            duration = (
                None
                if tier is None
                else target.duration
                if tier == STANDARD
                else capacity.expedited[tier].duration
            )
            if parts and parts[-1][1] == duration:
                parts[-1] = (parts[-1][0] + quantity, duration)
            else:
                parts.append((quantity, duration))
        clocks = [(q, None if d is None else self.rules.clock(d, calendar)) for q, d in parts]
        dues = [(q, None if c is None else c.due_and_risk(self.created)) for q, c in clocks]
        texts = [
            f"{q} {unit} "
            + ("without a guaranteed due (daily capacity used)" if c is None else f"at {c.text}")
            for q, c in clocks
        ]
        if any(c is None for _, c in clocks):
            self.extra_tags.append(capacity.exceeded_tag)
        guaranteed = [pair for _, pair in dues if pair is not None]
        part_models = [
            trusted(Part, quantity=q, due=None if p is None else from_epoch(p[0])) for q, p in dues
        ]
        if not guaranteed:
            return (
                trusted(
                    TargetResult,
                    due=None,
                    best_effort=True,
                    state="achieved" if done is not None else "best_effort",
                    basis="; ".join(texts),
                    at_risk_at=None,
                    achieved_at=_dt(done),
                    parts=part_models,
                    cycle=None,
                    cycles_breached=None,
                    owed_seconds=None,
                    paused_seconds=None,
                ),
                None,
                None,
            )
        due, at_risk = max(guaranteed)
        state = _state(due, at_risk, done, self.now)
        return (
            trusted(
                TargetResult,
                due=from_epoch(due),
                best_effort=False,
                state=state,
                basis="; ".join(texts),
                at_risk_at=from_epoch(at_risk),
                achieved_at=_dt(done),
                parts=part_models,
                cycle=None,
                cycles_breached=None,
                owed_seconds=None,
                paused_seconds=None,
            ),
            due,
            _next_change(state, due, at_risk, self.now),
        )

    def _recurring(self, target: _Target, clock: _Clock, where: str) -> _Outcome:
        """A target re-armed after each public agent reply, until the ticket is solved.

        Each cycle pauses on its own: the spells between its start and its end (the next
        reply, or now) stop its clock.
        """
        paused_by = target.paused_by
        ev = self.facts.events
        solved = _seen(ev.solved_at, self.created, self.now)
        seen = [*ev.agent_replies]
        if ev.first_agent_reply_at is not None:
            seen.append(ev.first_agent_reply_at)
        last = self.now if solved is None else min(self.now, solved)
        replies = sorted({r for r in map(to_epoch, seen) if self.created <= r <= last})
        start, cycle, missed = self.created, 1, 0
        for reply in replies:
            spells = self._spells(paused_by, start, reply) if paused_by else None
            if spells:
                due = clock.accrued(start, spells, reply)[0]
                assert due is not None  # the spells end at the reply at the latest
            else:
                due = clock.due(start)
            missed += reply > due
            start, cycle = reply, cycle + 1
        since = "creation" if cycle == 1 else f"the agent reply of {_utc_time(start)}"
        basis = f"{clock.text} after {since}{where}"
        if paused_by and (spells := self._spells(paused_by, start, solved)):
            outcome = self._paused(clock, start, spells, solved, basis, cycle=cycle, missed=missed)
            return self._stepped(target, clock, start, spells, outcome)
        due, at_risk = clock.due_and_risk(start)
        outcome = self._timed(due, at_risk, solved, basis, cycle=cycle, missed=missed)
        return self._stepped(target, clock, start, [], outcome)

    def _spells(self, paused_by: frozenset[str], start: int, done: int | None) -> list[Spell]:
        """The spells that stop a clock started at `start`, as far as they matter: up to the
        event that achieved it (a spell still open then ends there), else up to now."""
        history = self._history
        if not history:
            return []
        spells = paused_spells(history, paused_by, start, self.now if done is None else done)
        if done is not None and spells and spells[-1][1] is None:
            spells[-1] = (spells[-1][0], done)
        return spells

    @cached_property
    def _history(self) -> list[tuple[int, str]]:
        """The status history as (epoch, status), oldest first."""
        return epoch_history(self.facts.status_history)

    def _paused(
        self,
        clock: _Clock,
        start: int,
        spells: list[Spell],
        done: int | None,
        basis: str,
        *,
        cycle: int | None = None,
        missed: int | None = None,
    ) -> _Outcome:
        """A target whose clock the ticket's status stopped at least once."""
        due, at_risk, owed, paused = clock.accrued(start, spells, self.now)
        if due is not None:
            if paused:
                basis = f"{basis}, {format_span(paused)} paused"
            assert at_risk is not None
            return self._timed(
                due, at_risk, done, basis, cycle=cycle, missed=missed, paused=paused or None
            )
        # Paused now, with time still owed: no due, no risk, no breach until it resumes.
        result = trusted(
            TargetResult,
            due=None,
            best_effort=False,
            state="paused",
            basis=basis,
            at_risk_at=None if at_risk is None or at_risk > self.now else from_epoch(at_risk),
            achieved_at=None,
            parts=None,
            cycle=cycle,
            cycles_breached=missed,
            owed_seconds=owed,
            paused_seconds=paused or None,
        )
        return result, None, None

    def _timed(
        self,
        due: int,
        at_risk: int,
        done: int | None,
        basis: str,
        *,
        cycle: int | None = None,
        missed: int | None = None,
        paused: int | None = None,
    ) -> _Outcome:
        """A target with one due instant: its result, due and next change."""
        state = _state(due, at_risk, done, self.now)
        result = trusted(
            TargetResult,
            due=from_epoch(due),
            best_effort=False,
            state=state,
            basis=basis,
            at_risk_at=from_epoch(at_risk),
            achieved_at=_dt(done),
            parts=None,
            cycle=cycle,
            cycles_breached=missed,
            owed_seconds=None,
            paused_seconds=paused,
        )
        return result, due, _next_change(state, due, at_risk, self.now)

    def _event(self, target: TargetSpec) -> int | None:
        """The first of the target's events that happened by `now`."""
        events, first = self.facts.events, None
        for name in target.achieved_by:
            value = getattr(events, name)
            if value is not None and (seen := _seen(value, self.created, self.now)) is not None:
                first = seen if first is None else min(first, seen)
        return first

    # -- note --------------------------------------------------------------------------------

    def _note(
        self, targets: Mapping[str, TargetResult], dues: list[int | None], local: ZoneInfo
    ) -> str:
        terms, submitted = self.terms, self.facts.severity
        head = terms.head
        if terms.names_severity and submitted and submitted != terms.severity:
            head += f" (submitted as {submitted})"
        lines = [head + "."]
        if self.effect is not None:
            effect, why = self.effect
            lines.append(f"Entitlement: {effect.entitlement or 'included'} ({why}).")
            if effect.note:
                lines.append(effect.note.strip())
        for (name, result), due in zip(targets.items(), dues, strict=True):
            if result.owed_seconds is not None:
                when = f"paused, {format_span(result.owed_seconds)} still owed"
            else:
                when = "no due time" if due is None else _local_time(due, local)
            lines.append(f"{name}: {when} ({result.basis})")
        return "\n".join(lines)


def _unknown_contract(
    contracts: Mapping[str, Contract], facts: TicketFacts, now: datetime
) -> Decision:
    known = ", ".join(sorted(contracts)) or "none loaded"
    return _unmapped(
        facts, now, f"unknown contract {facts.contract!r} (known: {known})", ["sla_unmapped"]
    )


def _unmapped(facts: TicketFacts, now: datetime, reason: str, tags: list[str]) -> Decision:
    return Decision(
        ticket=facts.id,
        contract=facts.contract,
        plan=facts.plan,
        severity_submitted=facts.severity,
        severity=facts.severity_override or facts.severity,
        entitlement=None,
        targets={},
        priority=None,
        tags=tags,
        note=f"sla-connector could not apply a contract to this ticket: {reason}.",
        next_change_at=None,
        problem=reason,
        now=now,
    )


def _state(due: int, at_risk: int, done: int | None, now: int) -> TargetState:
    if done is not None:
        return "achieved" if done <= due else "breached"
    if now > due:
        return "breached"
    return "at_risk" if now >= at_risk else "running"


def _next_change(state: TargetState, due: int, at_risk: int, now: int) -> int | None:
    """The first second after `now` at which a target's state would differ."""
    if state == "running":
        return max(at_risk, now + 1)
    if state == "at_risk":
        return due + 1
    return None


def _seen(value: datetime | None, created: int, now: int) -> int | None:
    """An event's instant if it happened by `now` (events before creation count at creation)."""
    if value is None:
        return None
    instant = to_epoch(value)
    return max(instant, created) if instant <= now else None


def _dt(epoch: int | None) -> datetime | None:
    return None if epoch is None else from_epoch(epoch)


_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_CLOCK = tuple(f"{hour:02d}:{minute:02d}" for hour in range(24) for minute in range(60))
_DAYS: dict[int, str] = {}


def _utc_time(epoch: int) -> str:
    """`format_instant` of an epoch instant, without strftime."""
    value = datetime.fromtimestamp(epoch, UTC)
    if value.year < 1000:  # strftime does not pad such years: keep its exact text
        return format_instant(value)
    return f"{value.isoformat()[:19]}Z"


def _local_time(epoch: int, local: ZoneInfo) -> str:
    """`format_local` of an epoch instant, from remembered pieces instead of strftime."""
    value = datetime.fromtimestamp(epoch, local)
    ordinal = value.toordinal()
    day = _DAYS.get(ordinal)
    if day is None:
        if value.year < 1000:  # strftime does not pad such years: keep its exact text
            return format_local(value, local)
        day = f"{_WEEKDAYS[value.weekday()]} {value.date().isoformat()}"
        _remember(_DAYS, ordinal, day)
    name = value.tzname()
    if not name or name[0] in "+-":  # a zone without letters (`-03`): `zone_abbreviation`
        name = zone_abbreviation(value)
    return f"{day} {_CLOCK[value.hour * 60 + value.minute]} {name}"
