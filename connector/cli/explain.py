"""`sla-connector explain TICKET_ID`: one ticket, from the helpdesk to the write it needs.

Reads the ticket fresh, shows the facts the mapping reads from it, the customer's other
tickets the quotas count, the decision with how each due instant was reached, and the write
that would make the ticket show it. Changes nothing, in the helpdesk or in the state.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo

from connector.cli.render import render_decision
from connector.errors import printable
from connector.helpdesks.adapter import Helpdesk, Item
from connector.service.rules import Rules
from connector.service.sync import Sync
from connector.sla.calendar import zone
from connector.sla.explain import due_timeline
from connector.sla.model import StatusChange
from connector.state import Store
from connector.timeutil import format_instant, format_local_and_utc

__all__ = ["explain"]


class _Quiet:
    """A logger that drops everything (explain reports problems in its own text)."""

    def __getattr__(self, name: str) -> object:
        return lambda *args, **kwargs: None


def _when(instant: datetime, local: tzinfo | None) -> str:
    """An instant in the decision's zone with UTC beside it; in UTC alone without a zone."""
    return format_instant(instant) if local is None else format_local_and_utc(instant, local)


def _status_history(history: Sequence[StatusChange], local: tzinfo | None) -> list[str]:
    """The status changes the connector has seen, and how far back they are known."""
    if not history:
        return []
    first = _when(history[0].at, local)
    lines = [
        f"Status history (known from {first}: sla-connector keeps the changes it sees; "
        "before that the ticket counts as open):"
    ]
    lines.extend(f"  {_when(change.at, local)}  {change.status}" for change in history)
    lines.append("")
    return lines


def explain(item: Item, helpdesk: Helpdesk, state: Store, rules: Rules, now: datetime) -> str:
    """The explanation of one ticket, as text for a terminal: every line printable.

    Ticket content is shown as the helpdesk holds it, so each line is escaped where it is
    joined: a value with an escape sequence or a line break in it stays on its own line.
    """
    sync = Sync(helpdesk, state, rules, clock=lambda: now, log=_Quiet())
    outcome = sync.decide(item, record=False)
    lines = [
        f"Ticket {item.id} in {helpdesk.name}, updated {format_instant(item.updated_at)}, "
        f"explained at {format_instant(now)}",
        "",
    ]
    facts, decision = outcome.facts, outcome.decision
    # The zone the decision's own times are in (its note's): the ticket's other times too.
    local = zone(decision.local_zone) if decision is not None and decision.local_zone else None
    if facts is None:
        lines.append(f"Unmapped: {outcome.problem}")
        lines.append("The ticket gets the sla_unmapped tag and nothing else.")
    else:
        lines.append(f"Facts (read with {rules.mapping.helpdesk} mapping):")
        dumped = facts.model_dump(mode="json", exclude_defaults=True)
        dumped.pop("status_history", None)
        lines.extend(f"  {key}: {value}" for key, value in dumped.items())
        lines.append("")
        lines.extend(_status_history(facts.status_history, local))
    contract = rules.contracts.get(facts.contract) if facts is not None else None
    if decision is not None:
        if decision.problem is not None:
            lines.append(f"Unmapped: {decision.problem}")
        elif contract is not None and facts is not None:
            lines.append("Decision:")
            lines.extend(render_decision(decision, contract).splitlines())
            for quota in decision.quotas:
                verdict = "fits" if quota.fits else "over the limit"
                lines.append(
                    f"  quota {quota.quota}: ticket {quota.count} of {quota.limit} in "
                    f"{quota.period} ({verdict})"
                )
            if decision.entitlement:
                lines.append(f"  entitlement {decision.entitlement}")
            lines.append("")
            lines.append("How each due instant was reached:")
            lines.extend(due_timeline(decision, contract, facts))
        lines.append("")
    record = state.record(item.id)
    assert outcome.desired is not None
    plan = helpdesk.plan(item, outcome.desired, record.note)
    if plan is None:
        lines.append("Would write: nothing, the ticket already shows this.")
    else:
        lines.append("Would write:")
        lines.extend(f"  {change}" for change in plan.changes)
        lines.extend(f"  (left out: {why})" for why in plan.dropped)
    wake = state.wakeup_of(item.id)
    lines.append("")
    lines.append(
        f"State: last note posted {record.note or 'none'}; next re-decision "
        f"{_when(wake, local) if wake else 'none scheduled'}"
    )
    return "".join(printable(line) + "\n" for line in lines)
