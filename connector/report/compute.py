"""The report's figures, from the same decisions the daemon writes.

The state holds each ticket's facts as the daemon last read them. The report decides them
again with the engine at one instant, in order of creation, quotas counted as the daemon
counts them (`decide_in_order`): the same inputs and the same code give the same decisions,
so the report says what the tickets show. Nothing is kept per ticket but a few numbers:
a year of a large account is read once, in bounded memory.

Compliance counts the targets **due in the period** (a target without a due instant: best
effort, or paused with time still owed, counts where the ticket was created). Contract use
counts the quota periods and entitlements of the tickets **created in the period**.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta, tzinfo
from itertools import groupby
from statistics import median, quantiles
from typing import Any

from connector.sla.contract import Contract
from connector.sla.engine import decide_in_order, time_to_event
from connector.sla.model import Decision, TicketFacts
from connector.sla.quotas import NEVER_COUNTS
from connector.timeutil import format_instant, to_epoch

__all__ = ["GROUPINGS", "Period", "ReportBuilder", "build_report", "count_into"]

REPORT_VERSION = 1
GROUPINGS = ("contract", "customer", "severity", "office", "plan")
ENTITLEMENTS = ("included", "over_quota", "grace", "pay_per_incident", "not_eligible")
WORST = 10  # the worst breaches listed per group


@dataclass(frozen=True)
class Period:
    """[since, until) and how people call it ("2026-11").

    `local`: the bounds are calendar dates (`--month`, or `--since` given as a date), each
    contract's read in its own zone, as its monthly quotas count: March in Berlin begins at
    23:00 UTC on the last day of February. Otherwise they are instants, the same for all.
    """

    since: datetime
    until: datetime
    label: str
    local: bool = False

    def bounds(self, zone: tzinfo | None) -> tuple[datetime, datetime]:
        """The period's instants for a contract counting in `zone`."""
        if not self.local or zone is None:
            return self.since, self.until
        return (
            datetime.combine(self.since.date(), time(0), zone),
            datetime.combine(self.until.date(), time(0), zone),
        )

    @property
    def widest_until(self) -> datetime:
        """An instant after the period's end in every zone (zones run to UTC-12)."""
        return self.until + timedelta(hours=14) if self.local else self.until


@dataclass
class _TargetFigures:
    label: str | None
    unit: str | None = None
    due: int = 0
    met: int = 0
    breached: int = 0
    running: int = 0
    paused: int = 0  # paused now, with time still owed: no due instant yet
    waited: int = 0  # counted targets whose clock a wait on the customer stopped at all
    best_effort: int = 0
    hours: list[float] = field(default_factory=list)

    def row(self, name: str) -> dict[str, Any]:
        counted = self.due + self.paused + self.best_effort
        hours = sorted(self.hours)
        return {
            "target": name,
            "label": self.label,
            "due": self.due,
            "met": self.met,
            "breached": self.breached,
            "running": self.running,
            "paused": self.paused,
            "best_effort": self.best_effort,
            "paused_share": round(self.waited / counted, 4) if counted else 0.0,
            "median_hours": round(median(hours), 2) if hours else None,
            "p90_hours": round(_p90(hours), 2) if hours else None,
            "unit": self.unit,
        }


@dataclass
class _Group:
    tickets: int = 0
    targets: dict[str, _TargetFigures] = field(default_factory=dict)
    worst: list[tuple[float, str, str, str]] = field(default_factory=list)


@dataclass
class _Use:
    quotas: dict[tuple[str, str], tuple[int, int, int]] = field(default_factory=dict)
    entitlements: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ENTITLEMENTS, 0))


class ReportBuilder:
    """Adds decisions one at a time; `report()` gives the figures."""

    def __init__(
        self,
        contracts: Mapping[str, Contract],
        period: Period,
        by: Sequence[str],
        now: datetime,
        names: Mapping[str, str] | None = None,
    ) -> None:
        self.contracts, self.period, self.by, self.now = contracts, period, tuple(by), now
        self.names = names or {}
        self._groups: dict[tuple[str | None, ...], _Group] = {}
        self._weekly: dict[tuple[str, str], list[int]] = {}
        self._use: dict[tuple[str, str | None], _Use] = {}
        self._period_bounds: dict[str, tuple[datetime, datetime]] = {}
        self.notes: list[str] = []  # what the reader should know about the figures

    def add(self, facts: TicketFacts, decision: Decision) -> None:
        """Count one ticket's decision (its facts for the grouping and the timing)."""
        if decision.problem is not None or facts.status in NEVER_COUNTS:
            return  # unmapped, deleted or spam: no SLA to report on
        created = facts.created_at
        if created > self.now:
            return  # not there yet at the report's instant (`--at`)
        contract = self.contracts.get(decision.contract)
        since, until = self._bounds(decision.contract, contract)
        counted_here = since <= created < until
        if counted_here:
            self._add_use(facts, decision)
        key = self._key(facts, decision)
        group: _Group | None = None
        for name, target in decision.targets.items():
            due = target.due
            in_period = since <= due < until if due is not None else counted_here
            if not in_period:
                continue
            if group is None:
                group = self._groups.setdefault(key, _Group())
                group.tickets += 1
            figures = self._figures(group, decision.contract, contract, name)
            state = target.state
            if target.best_effort or state == "best_effort":
                figures.best_effort += 1
                continue
            if target.paused_seconds or state == "paused":
                figures.waited += 1
            if state == "paused" and due is None:
                figures.paused += 1
                continue
            # A target re-armed at each agent reply: its earlier cycles missed count too.
            missed = target.cycles_breached or 0
            figures.due += 1 + missed
            figures.breached += missed
            if state == "achieved":
                figures.met += 1
            elif state == "breached":
                figures.breached += 1
                self._late(group, facts, decision, name, target.achieved_at or self.now)
            else:
                figures.running += 1
            if due is not None and (state in ("achieved", "breached")):
                self._week(decision.contract, contract, due, state)
            if target.achieved_at is not None and contract is not None:
                measured = time_to_event(contract, facts, decision, name, target.achieved_at)
                if measured is not None:
                    seconds, unit = measured
                    # The time the ticket waited on the customer is not the support's.
                    waited = target.paused_seconds or 0
                    figures.hours.append(max(0, seconds - waited) / 3600)
                    figures.unit = unit

    def _bounds(self, name: str, contract: Contract | None) -> tuple[datetime, datetime]:
        found = self._period_bounds.get(name)
        if found is None:
            zone = contract.zone if contract is not None else None
            found = self._period_bounds[name] = self.period.bounds(zone)
        return found

    def _figures(
        self, group: _Group, contract_name: str, contract: Contract | None, name: str
    ) -> _TargetFigures:
        """A target's figures in its group; targets of several contracts in one group (not
        grouped by contract) are kept apart by contract."""
        key = name if "contract" in self.by else f"{contract_name}: {name}"
        figures = group.targets.get(key)
        if figures is None:
            label = None
            if contract is not None and name in contract.spec.targets:
                label = contract.spec.targets[name].label
            if label is not None and "contract" not in self.by:
                label = f"{contract_name}: {label}"
            figures = group.targets[key] = _TargetFigures(label)
        return figures

    def parts(self) -> tuple[Any, Any, Any]:
        """What has been counted, to merge into another builder (`absorb`): one process may
        count some contracts and another the others."""
        return self._groups, self._weekly, self._use

    def absorb(self, parts: tuple[Any, Any, Any]) -> None:
        """Add what another builder counted (`parts`) to this one's figures."""
        groups, weekly, use = parts
        for key, other in groups.items():
            group = self._groups.setdefault(key, _Group())
            group.tickets += other.tickets
            for name, theirs in other.targets.items():
                mine = group.targets.setdefault(name, _TargetFigures(theirs.label))
                for count in (
                    "due",
                    "met",
                    "breached",
                    "running",
                    "paused",
                    "waited",
                    "best_effort",
                ):
                    setattr(mine, count, getattr(mine, count) + getattr(theirs, count))
                mine.hours.extend(theirs.hours)
                mine.unit = mine.unit or theirs.unit
            group.worst = heapq.nlargest(WORST, [*group.worst, *other.worst])
            heapq.heapify(group.worst)
        for key, (met, breached) in weekly.items():
            counts = self._weekly.setdefault(key, [0, 0])
            counts[0] += met
            counts[1] += breached
        for key, other_use in use.items():
            found = self._use.setdefault(key, _Use())
            for name, count in other_use.entitlements.items():
                found.entitlements[name] = found.entitlements.get(name, 0) + count
            for quota_key, (count, limit, over) in other_use.quotas.items():
                held = found.quotas.get(quota_key, (0, limit, 0))
                found.quotas[quota_key] = (max(held[0], count), limit, held[2] + over)

    def report(self) -> dict[str, Any]:
        """The figures as a JSON-able dict (`--format json`)."""
        compliance = []
        for key, group in sorted(self._groups.items(), key=lambda kv: _sort_key(kv[0])):
            compliance.append(
                {
                    "group": dict(zip(self.by, key, strict=True)),
                    "tickets": group.tickets,
                    "targets": [
                        figures.row(name) for name, figures in sorted(group.targets.items())
                    ],
                    "worst": [
                        {
                            "ticket": ticket,
                            "target": target,
                            "late_hours": round(late, 2),
                            "due": due,
                            "unit": "hours",
                        }
                        for late, ticket, target, due in sorted(group.worst, reverse=True)
                    ],
                }
            )
        weekly = [
            {"week": week, "contract": contract, "met": counts[0], "breached": counts[1]}
            for (week, contract), counts in sorted(self._weekly.items())
        ]
        use = []
        for (contract, customer), found in sorted(
            self._use.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")
        ):
            entry: dict[str, Any] = {"contract": contract, "customer": customer}
            if customer is not None and customer in self.names:
                entry["customer_name"] = self.names[customer]
            entry["quotas"] = [
                {
                    "quota": quota,
                    "label": _quota_label(self.contracts.get(contract), quota),
                    "period": period,
                    "count": count,
                    "limit": limit,
                    "over": over,
                }
                for (quota, period), (count, limit, over) in sorted(found.quotas.items())
            ]
            entry["entitlements"] = found.entitlements
            use.append(entry)
        return {
            "v": REPORT_VERSION,
            "generated_at": format_instant(self.now),
            "period": {
                "since": format_instant(self.period.since),
                "until": format_instant(self.period.until),
                "label": self.period.label,
            },
            "by": list(self.by),
            "notes": list(self.notes),
            "compliance": compliance,
            "weekly": weekly,
            "use": use,
        }

    # -- pieces -----------------------------------------------------------------------------

    def _key(self, facts: TicketFacts, decision: Decision) -> tuple[str | None, ...]:
        values = {
            "contract": decision.contract,
            "customer": facts.customer,
            "severity": decision.severity,
            "office": decision.calendar,
            "plan": decision.plan,
        }
        return tuple(values[name] for name in self.by)

    def _late(
        self, group: _Group, facts: TicketFacts, decision: Decision, name: str, end: datetime
    ) -> None:
        target = decision.targets[name]
        if target.due is None:
            return
        late = (to_epoch(end) - to_epoch(target.due)) / 3600
        # A heap of the WORST latest: its smallest is the one to drop for a later breach.
        entry = (late, facts.id, name, format_instant(target.due))
        if len(group.worst) < WORST:
            heapq.heappush(group.worst, entry)
        else:
            heapq.heappushpop(group.worst, entry)

    def _week(self, name: str, contract: Contract | None, due: datetime, state: str) -> None:
        zone = contract.zone if contract is not None and self.period.local else UTC
        year, week, _ = due.astimezone(zone).isocalendar()
        counts = self._weekly.setdefault((f"{year}-W{week:02d}", name), [0, 0])
        counts[0 if state == "achieved" else 1] += 1

    def _add_use(self, facts: TicketFacts, decision: Decision) -> None:
        use = self._use.setdefault((decision.contract, facts.customer), _Use())
        if decision.entitlement is not None:
            use.entitlements[decision.entitlement] = (
                use.entitlements.get(decision.entitlement, 0) + 1
            )
        for quota in decision.quotas:
            key = (quota.quota, quota.period)
            count, _, over = use.quotas.get(key, (0, quota.limit, 0))
            # A ticket that fits is counted at its place in the period: the highest such
            # place is the period's use. One that does not fit uses none of it; it is "over".
            # The limit is the latest ticket's (a limit by seats may change in a period).
            if quota.fits:
                count = max(count, quota.count)
            use.quotas[key] = (count, quota.limit, over + (not quota.fits))


def build_report(
    contracts: Mapping[str, Contract],
    tickets: Iterable[TicketFacts],
    period: Period,
    by: Sequence[str],
    *,
    now: datetime,
    names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The report over `tickets` (in order of creation, each once), decided at `now`."""
    return count_into(ReportBuilder(contracts, period, by, now, names), tickets).report()


def count_into(
    builder: ReportBuilder, tickets: Iterable[TicketFacts], *, by_customer: bool = False
) -> ReportBuilder:
    """Decide `tickets` (in order of creation, each once) at the builder's instant and count
    each decision; the builder.

    `by_customer`: the tickets come customer by customer (each customer's in order of
    creation), and each customer's are decided on their own. Quotas, grace calls and daily
    capacities count per customer (the daemon's ledger books are per customer too), so the
    decisions are the same; what is held at once is one customer's open periods, not a whole
    contract's (a contract year of every customer).
    """
    if not by_customer:
        return _count(builder, tickets)
    for _, customer_tickets in groupby(tickets, key=lambda facts: facts.customer):
        _count(builder, customer_tickets)
    return builder


def _count(builder: ReportBuilder, tickets: Iterable[TicketFacts]) -> ReportBuilder:
    period, contracts, now = builder.period, builder.contracts, builder.now
    facts_by_id: dict[str, TicketFacts] = {}

    def remembered() -> Iterable[TicketFacts]:
        last = period.widest_until
        for facts in tickets:
            if facts.created_at >= last:
                continue  # the rest of this run is later still; read past it
            facts_by_id[facts.id] = facts
            yield facts

    for decision in decide_in_order(contracts, remembered(), now):
        facts = facts_by_id.pop(decision.ticket)
        builder.add(facts, decision)
    return builder


def _p90(values: list[float]) -> float:
    if len(values) == 1:
        return values[0]
    return quantiles(values, n=10, method="inclusive")[-1]


def _sort_key(key: tuple[str | None, ...]) -> tuple[str, ...]:
    return tuple("" if part is None else part for part in key)


def _quota_label(contract: Contract | None, quota: str) -> str | None:
    if contract is None or quota not in contract.spec.quotas:
        return None
    return contract.spec.quotas[quota].label
