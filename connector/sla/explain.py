"""How each due instant of a decision was reached, as lines a person can check by hand.

For a business-time target, the open periods of the calendar between the start of the clock
and the due instant, each with its length and the running total: the sum is the contract's
duration, and every gap is a night, a weekend or a named holiday of the calendar.

Times are shown in the decision's own zone (`local_zone`), as its note and `sla compute` show
them; each due instant with its UTC instant beside it.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from connector.sla.calendar import BusinessCalendar, zone
from connector.sla.contract import Contract, TargetSpec
from connector.sla.model import Decision, TargetResult, TicketFacts
from connector.sla.pausing import epoch_history, paused_spells
from connector.timeutil import (
    format_local,
    format_local_and_utc,
    format_span,
    from_epoch,
    to_epoch,
)

__all__ = ["due_timeline"]

MAX_PERIODS = 12


def due_timeline(decision: Decision, contract: Contract, facts: TicketFacts) -> list[str]:
    """One block of lines per target of `decision`."""
    local = zone(decision.local_zone) if decision.local_zone else contract.zone
    lines: list[str] = []
    for name, result in decision.targets.items():
        spec = contract.spec.targets.get(name)
        if result.owed_seconds is not None:
            lines.append(
                f"  {name}: paused, {format_span(result.owed_seconds)} still owed "
                f"({result.basis}); the due instant comes when the ticket resumes"
            )
            continue
        if result.due is None:
            lines.append(f"  {name}: no due instant ({result.basis})")
            continue
        start = facts.created_at
        if result.cycle and result.cycle > 1:
            lines.append(f"  {name}: cycle {result.cycle}, {result.basis}")
            lines.append(f"    due {format_local_and_utc(result.due, local)}")
            continue
        names: tuple[str, ...] | None = None
        if spec is not None and spec.calendar:
            names = (spec.calendar,)
        names = names or _calendar_names(contract, decision.calendar, facts)
        lines.append(f"  {name}: {result.basis}")
        lines.append(f"    clock starts {format_local(start, local)} (ticket created)")
        spells = _spells(spec, facts, result, decision.now)
        lines.extend(
            f"    paused {format_local(from_epoch(begin), local)} to "
            f"{format_local(from_epoch(end), local)} (status {_status_at(facts, begin)})"
            for begin, end in spells
        )
        if names is None or "business" not in result.basis:
            lines.append(f"    due {format_local_and_utc(result.due, local)}")
            continue
        calendar = contract.calendar(names, facts.customer_facts.timezone or "UTC")
        lines.extend(_periods(calendar, start, result, spells, local))
    return lines


def _spells(
    spec: TargetSpec | None, facts: TicketFacts, result: TargetResult, now: datetime
) -> list[tuple[int, int]]:
    """The closed spells that stopped the target's clock before its due instant."""
    if spec is None or not spec.paused_by or not facts.status_history or result.due is None:
        return []
    history = epoch_history(facts.status_history)
    until = min(to_epoch(now), to_epoch(result.due))
    if result.achieved_at is not None:
        until = min(until, to_epoch(result.achieved_at))
    spells = paused_spells(history, frozenset(spec.paused_by), to_epoch(facts.created_at), until)
    closed = [(begin, until if end is None else end) for begin, end in spells]
    return [(begin, end) for begin, end in closed if end > begin]


def _status_at(facts: TicketFacts, instant: int) -> str:
    status = "open"
    for change in facts.status_history:
        if to_epoch(change.at) <= instant:
            status = change.status
    return status


def _calendar_names(
    contract: Contract, label: str | None, facts: TicketFacts
) -> tuple[str, ...] | None:
    if label is None:
        return None
    zone_name = facts.customer_facts.timezone or "UTC"
    by_label = {contract.calendar((n,), zone_name).label: n for n in contract.office_names}
    names = tuple(by_label.get(part) for part in label.split(" + "))
    return None if None in names else names  # type: ignore[return-value]


def _periods(
    calendar: BusinessCalendar,
    start: datetime,
    result: TargetResult,
    spells: list[tuple[int, int]],
    local: ZoneInfo,
) -> list[str]:
    """The open periods that counted, the paused spells cut out of them, shown in `local`."""
    assert result.due is not None
    begin, due = to_epoch(start), to_epoch(result.due)
    spans: list[tuple[int, int]] = []
    for office in calendar.offices:
        years = range(start.astimezone(office.zone).year - 1, result.due.year + 1)
        for opens, closes in office.open_intervals(years.start, years.stop - 1):
            if closes > begin and opens < due:
                spans.append((max(opens, begin), min(closes, due)))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for opens, closes in spans:
        if merged and opens <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], closes))
        else:
            merged.append((opens, closes))
    for paused_from, paused_to in spells:
        kept: list[tuple[int, int]] = []
        for opens, closes in merged:
            if opens < paused_from:
                kept.append((opens, min(closes, paused_from)))
            if closes > paused_to:
                kept.append((max(opens, paused_to), closes))
        merged = kept
    lines, total = [], 0
    for index, (opens, closes) in enumerate(merged):
        total += closes - opens
        if index < MAX_PERIODS - 1 or index == len(merged) - 1:
            lines.append(
                f"    open {format_local(from_epoch(opens), local)} to "
                f"{from_epoch(closes).astimezone(local):%H:%M}  "
                f"+{_hours(closes - opens)} = {_hours(total)}"
            )
        elif index == MAX_PERIODS - 1:
            lines.append(f"    ... {len(merged) - MAX_PERIODS} more open periods ...")
    lines.append(f"    due {format_local_and_utc(result.due, local)}")
    return lines


def _hours(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}"
