"""The decision for one ticket at `now`: due instants, states, priority, tags and a note.

`decide` is pure: the same contract, facts and `now` give the same decision. A ticket that
names something its contract does not know gets a decision tagged `sla_unmapped` with the
reason in `problem`, never an exception, so one bad ticket never stops the rest.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connector.errors import UnmappedTicket
from connector.sla.calendar import BusinessCalendar, zone
from connector.sla.contract import (
    Contract,
    QuotaEffect,
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
)
from connector.sla.quotas import STANDARD, Ledger, QuotaUse
from connector.timeutil import format_instant, format_local, from_epoch, to_epoch

__all__ = ["decide", "decide_all", "decide_with"]


def decide_with(
    contracts: Mapping[str, Contract],
    facts: TicketFacts,
    now: datetime,
    ledger: Ledger | None = None,
) -> Decision:
    """`decide` with the ticket's contract looked up by name; unknown names are unmapped."""
    contract = contracts.get(facts.contract)
    if contract is None:
        known = ", ".join(sorted(contracts)) or "none loaded"
        return _unmapped(
            facts, now, f"unknown contract {facts.contract!r} (known: {known})", ["sla_unmapped"]
        )
    return decide(contract, facts, now, ledger)


def decide_all(
    contracts: Mapping[str, Contract], tickets: Iterable[TicketFacts], now: datetime
) -> list[Decision]:
    """Decide a whole set of tickets, quotas counted across it.

    One decision per distinct ticket id, in order of first appearance; when a ticket appears
    more than once, its latest version is the one decided and counted.
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
    return [decide_with(contracts, f, now, ledgers.get(f.contract)) for f in latest.values()]


def decide(
    contract: Contract, facts: TicketFacts, now: datetime, ledger: Ledger | None = None
) -> Decision:
    """Everything the contract promises this ticket, as it stands at `now`.

    `ledger` holds the customer's other tickets of the periods the contract's quotas count;
    without it the ticket is counted alone.
    """
    try:
        return _Decider(contract, facts, now, ledger).decision()
    except UnmappedTicket as exc:
        tags = contract.spec.tags
        return _unmapped(
            facts, now, exc.reason, [tags.contract.format(contract=contract.name), tags.unmapped]
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


@dataclass(frozen=True)
class _Choice:
    names: tuple[str, ...]
    customer_zone: str | None
    defaulted: str | None


class _Decider:
    def __init__(
        self, contract: Contract, facts: TicketFacts, now: datetime, ledger: Ledger | None
    ) -> None:
        self.contract, self.spec, self.facts = contract, contract.spec, facts
        self.now = to_epoch(now)
        self.now_dt = from_epoch(self.now)
        self.created = to_epoch(facts.created_at)
        self.plan, self.severity = resolve(contract, facts)
        self.choice = self._choose_calendar() if self.spec.calendar_choice else None
        self.extra_tags: list[str] = []
        if self.choice is not None and self.choice.defaulted and self.spec.calendar_choice:
            self.extra_tags.append(self.spec.calendar_choice.default_tag)
        self.expedited = False
        self.quota_uses: list[QuotaUse] = []
        # The effect of scope and quotas on this ticket, and a few words on why.
        self.effect: tuple[QuotaEffect, str] | None = None
        # A ledger that does not hold this ticket cannot place it: count it alone.
        self._ledger = ledger if ledger is not None and facts.id in ledger.tickets else None
        if contract.needs_ledger:
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
        targets = {
            name: self._target(name, target)
            for name, target in self.spec.targets.items()
            if target.categories is None or self.facts.category in target.categories
        }
        states = {t.state for t in targets.values()}
        tags = self._base_tags() + self.extra_tags
        entitlement: Entitlement = "included"
        if self.effect is not None:
            entitlement = self.effect[0].entitlement or entitlement
            if self.effect[0].tag:
                tags.append(self.effect[0].tag)
        if "at_risk" in states:
            tags.append(self.spec.tags.at_risk)
        if "breached" in states:
            tags.append(self.spec.tags.breached)
        changes = [c for t in targets.values() if (c := _next_change(t, self.now)) is not None]
        return Decision(
            ticket=self.facts.id,
            contract=self.contract.name,
            plan=self.plan,
            severity_submitted=self.facts.severity,
            severity=self.severity,
            entitlement=entitlement,
            targets=targets,
            priority=self._priority(),
            tags=_unique(tags),
            note=self._note(targets),
            next_change_at=from_epoch(min(changes)) if changes else None,
            quotas=[
                QuotaResult(
                    quota=u.quota,
                    period=u.period,
                    count=u.used_before + u.amount,
                    limit=u.limit,
                    fits=u.fits,
                )
                for u in self.quota_uses
            ],
            calendar=self._calendar(self.choice.names).label if self.choice else None,
            local_zone=self._note_zone().key,
            now=self.now_dt,
        )

    # -- calendars ---------------------------------------------------------------------------

    def _choose_calendar(self) -> _Choice:
        choice, facts = self.spec.calendar_choice, self.facts
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
                unknown = [o for o in offices if o not in self.contract.office_names]
                if unknown:
                    raise UnmappedTicket(
                        facts.id,
                        f"unknown office {unknown[0]!r} for contract "
                        f"{self.contract.name} (known: "
                        f"{', '.join(self.contract.office_names)})",
                    )
                names = tuple(sorted(set(offices)))
        else:
            region = facts.region
            if region is None:
                raise UnmappedTicket(
                    facts.id,
                    f"no region (contract {self.contract.name} needs "
                    f"one of {', '.join(choice.regions)})",
                )
            if region not in choice.regions:
                raise UnmappedTicket(
                    facts.id,
                    f"unknown region {region!r} for contract "
                    f"{self.contract.name} (known: "
                    f"{', '.join(choice.regions)})",
                )
            names = (choice.regions[region],)
        if customer_zone is None and self.contract.needs_customer_zone(names):
            customer_zone, defaulted = "UTC", "no time zone on the customer, UTC used"
        return _Choice(names, customer_zone, defaulted)

    @property
    def _chosen(self) -> _Choice:
        assert self.choice is not None  # only contracts with a calendar_choice have targets
        return self.choice

    def _calendar(self, names: tuple[str, ...]) -> BusinessCalendar:
        return self.contract.calendar(names, self._chosen.customer_zone)

    def _local_zone(self, calendar: BusinessCalendar) -> ZoneInfo:
        return calendar.offices[0].zone

    # -- targets -----------------------------------------------------------------------------

    def _duration(self, target: TargetSpec) -> Duration:
        if target.duration is not None:
            return target.duration
        if target.by_severity is not None:
            assert self.severity is not None
            return target.by_severity[self.severity]
        assert target.by_plan is not None
        assert self.plan is not None
        assert self.severity is not None
        return target.by_plan[self.plan][self.severity]

    def _target(self, name: str, target: TargetSpec) -> TargetResult:
        names = (target.calendar,) if target.calendar else self._chosen.names
        calendar = self._calendar(names)
        duration, basis_extra = self._duration(target), ""
        expedite = target.expedite
        if expedite is not None and self.facts.flags.get(expedite.flag):
            if expedite.honoured(self.facts):
                duration, basis_extra, self.expedited = expedite.duration, ", expedited", True
            else:
                self.extra_tags.append(expedite.unavailable_tag)
                basis_extra = ", expedite unavailable at upload time"
        if self.effect is not None and self.effect[0].best_effort:
            duration, basis_extra = BestEffort(), f": {self.effect[1]}"
        events = self._events(target)
        if isinstance(duration, BestEffort):
            done = events[0] if events else None
            return TargetResult(
                due=None,
                best_effort=True,
                state="achieved" if done is not None else "best_effort",
                basis=f"best effort{basis_extra}",
                achieved_at=_dt(done),
            )
        where = self._where(duration, calendar)
        if target.recurring:
            return self._recurring(duration, calendar, where)
        if target.capacity is not None:
            return self._shared(name, target, calendar, events)
        due, at_risk = self._due(duration, self.created, calendar)
        result = _state(due, at_risk, events[0] if events else None, self.now)
        return TargetResult(
            due=from_epoch(due),
            best_effort=False,
            state=result,
            basis=f"{duration}{where}{basis_extra}",
            at_risk_at=from_epoch(at_risk),
            achieved_at=_dt(events[0] if events else None),
        )

    def _shared(
        self, name: str, target: TargetSpec, calendar: BusinessCalendar, events: list[int]
    ) -> TargetResult:
        """A target whose units share a daily capacity: one part per distinct due instant."""
        capacity = target.capacity
        assert capacity is not None
        allocation = self.ledger.allocation(self.facts.id, name) or [(0, STANDARD)]
        unit = capacity.quantity
        parts: list[tuple[int, Duration | None]] = []
        for quantity, tier in allocation:
            duration = (
                None
                if tier is None
                else self._duration(target)
                if tier == STANDARD
                else capacity.expedited[tier].duration
            )
            if parts and parts[-1][1] == duration:
                parts[-1] = (parts[-1][0] + quantity, duration)
            else:
                parts.append((quantity, duration))
        dues = [(q, None if d is None else self._due(d, self.created, calendar)) for q, d in parts]
        texts = [
            f"{q} {unit} "
            + ("without a guaranteed due (daily capacity used)" if d is None else f"at {d}")
            for q, d in parts
        ]
        if any(d is None for _, d in parts):
            self.extra_tags.append(capacity.exceeded_tag)
        guaranteed = [pair for _, pair in dues if pair is not None]
        done = events[0] if events else None
        part_models = [
            Part(quantity=q, due=None if p is None else from_epoch(p[0])) for q, p in dues
        ]
        if not guaranteed:
            return TargetResult(
                due=None,
                best_effort=True,
                parts=part_models,
                basis="; ".join(texts),
                state="achieved" if done is not None else "best_effort",
                achieved_at=_dt(done),
            )
        due, at_risk = max(guaranteed)
        return TargetResult(
            due=from_epoch(due),
            best_effort=False,
            state=_state(due, at_risk, done, self.now),
            basis="; ".join(texts),
            at_risk_at=from_epoch(at_risk),
            achieved_at=_dt(done),
            parts=part_models,
        )

    def _recurring(
        self, duration: Duration, calendar: BusinessCalendar, where: str
    ) -> TargetResult:
        """A target re-armed after each public agent reply, until the ticket is solved."""
        ev = self.facts.events
        solved = _seen(ev.solved_at, self.created, self.now)
        seen = [*ev.agent_replies]
        if ev.first_agent_reply_at is not None:
            seen.append(ev.first_agent_reply_at)
        last = self.now if solved is None else min(self.now, solved)
        replies = sorted({r for r in map(to_epoch, seen) if self.created <= r <= last})
        start, cycle, missed = self.created, 1, 0
        for reply in replies:
            due, _ = self._due(duration, start, calendar)
            missed += reply > due
            start, cycle = reply, cycle + 1
        due, at_risk = self._due(duration, start, calendar)
        state = _state(due, at_risk, solved, self.now)
        since = (
            "creation" if cycle == 1 else f"the agent reply of {format_instant(from_epoch(start))}"
        )
        return TargetResult(
            due=from_epoch(due),
            best_effort=False,
            state=state,
            basis=f"{duration} after {since}{where}",
            at_risk_at=from_epoch(at_risk),
            achieved_at=_dt(solved),
            cycle=cycle,
            cycles_breached=missed,
        )

    def _due(self, duration: Duration, start: int, calendar: BusinessCalendar) -> tuple[int, int]:
        """Due instant and at-risk instant of a duration started at `start`."""
        assert not isinstance(duration, BestEffort)
        due = due_epoch(duration, start, calendar, self._local_zone(calendar))
        threshold = self.spec.risk_threshold
        if isinstance(duration, BusinessHours | BusinessDays):
            total = calendar.elapsed_epoch(start, due)
            return due, calendar.add_epoch(start, math.ceil(threshold * total))
        return due, start + math.ceil(threshold * (due - start))

    def _events(self, target: TargetSpec) -> list[int]:
        """The target's events that happened by `now`, earliest first."""
        ev = self.facts.events
        found = [_seen(getattr(ev, name), self.created, self.now) for name in target.achieved_by]
        return sorted(e for e in found if e is not None)

    def _where(self, duration: Duration, calendar: BusinessCalendar) -> str:
        if isinstance(duration, BusinessHours | BusinessDays):
            defaulted = self._chosen.defaulted
            suffix = f" ({defaulted})" if defaulted else ""
            return f", {calendar.label}{suffix}"
        if isinstance(duration, Hours):
            return ""
        return f" ({self._local_zone(calendar).key})"

    def _note_zone(self) -> ZoneInfo:
        """The customer's zone when the contract counts in it, else the contract's zone."""
        if self.choice is not None and self.contract.needs_customer_zone(self.choice.names):
            return zone(self.choice.customer_zone or "UTC")
        return self.contract.zone

    # -- priority, tags, note ----------------------------------------------------------------

    def _priority(self) -> Priority:
        for target in self.spec.targets.values():
            if self.expedited and target.expedite and target.expedite.priority:
                return target.expedite.priority
        if self.severity is not None and self.severity in self.spec.severities:
            return self.spec.severities[self.severity].priority
        return self.spec.priority

    def _base_tags(self) -> list[str]:
        tags = self.spec.tags
        out = [tags.contract.format(contract=self.contract.name)]
        if self.plan is not None and self.spec.plans:
            out.append(tags.plan.format(plan=self.plan))
        if self.severity is not None and self.spec.severities:
            out.append(tags.severity.format(severity=self.severity))
        return out

    def _note(self, targets: Mapping[str, TargetResult]) -> str:
        head = f"SLA {self.spec.title}"
        if self.plan is not None and self.spec.plans:
            head += f", plan {self.plan}"
        if self.severity is not None and self.spec.severities:
            head += f", severity {self.severity}"
            if self.facts.severity and self.facts.severity != self.severity:
                head += f" (submitted as {self.facts.severity})"
        lines = [head + "."]
        if self.effect is not None:
            effect, why = self.effect
            lines.append(f"Entitlement: {effect.entitlement or 'included'} ({why}).")
            if effect.note:
                lines.append(effect.note.strip())
        local = self._note_zone()
        for name, result in targets.items():
            when = "no due time" if result.due is None else format_local(result.due, local)
            lines.append(f"{name}: {when} ({result.basis})")
        return "\n".join(lines)


def _unmapped(facts: TicketFacts, now: datetime, reason: str, tags: list[str]) -> Decision:
    now = from_epoch(to_epoch(now))
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


def _next_change(result: TargetResult, now: int) -> int | None:
    """The first second after `now` at which this target's state would differ."""
    if result.state not in ("running", "at_risk") or result.due is None:
        return None
    if result.state == "running" and result.at_risk_at is not None:
        return max(to_epoch(result.at_risk_at), now + 1)
    return to_epoch(result.due) + 1


def _seen(value: datetime | None, created: int, now: int) -> int | None:
    """An event's instant if it happened by `now` (events before creation count at creation)."""
    if value is None:
        return None
    instant = to_epoch(value)
    return max(instant, created) if instant <= now else None


def _dt(epoch: int | None) -> datetime | None:
    return None if epoch is None else from_epoch(epoch)


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
