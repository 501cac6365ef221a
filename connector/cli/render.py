"""A decision as a person reads it on a terminal (`sla compute`, `explain`).

One place for the commands that print decisions, so that none imports another for it.
"""

from __future__ import annotations

from connector.sla.calendar import zone
from connector.sla.contract import Contract
from connector.sla.model import Decision
from connector.text import printable
from connector.timeutil import format_local_and_utc, format_span

__all__ = ["ENTITLEMENTS", "render_decision"]

# What each entitlement means for the customer, in the words of a support desk.
ENTITLEMENTS = {
    "included": "covered by the plan",
    "over_quota": "over the plan's quota: best effort, or billed, as the contract says",
    "grace": "a grace call: answered once more although the contract does not cover it",
    "pay_per_incident": "not covered: offered as a paid incident",
    "not_eligible": "not covered by this contract",
}


def render_decision(decision: Decision, contract: Contract) -> str:
    """The decision: each target's due time (local and UTC) and state, the entitlement in
    words, the quotas counted, priority, tags and the note; every line printable.

    Local is the decision's own zone (`local_zone`: the office's or customer's it was computed
    for), so a due reads as the people serving the ticket read their clocks.
    """
    local = zone(decision.local_zone) if decision.local_zone else contract.zone
    head = f"Ticket {decision.ticket}: {decision.contract}"
    if decision.plan:
        head += f", plan {decision.plan}"
    if decision.severity:
        head += f", severity {decision.severity}"
        if decision.severity_submitted and decision.severity_submitted != decision.severity:
            head += f" (submitted {decision.severity_submitted})"
    lines = [head]
    if decision.calendar:
        lines.append(f"  calendar   {decision.calendar}")
    width = max((len(n) for n in decision.targets), default=0)
    for name, target in decision.targets.items():
        if target.owed_seconds is not None:
            when = f"{format_span(target.owed_seconds)} still owed"
        elif target.due is None:
            when = "no due time"
        else:
            when = format_local_and_utc(target.due, local)
        lines.append(f"  {name:<{width}}  {target.state:<11} {when}")
        lines.append(f"  {'':<{width}}  {'':<11} {target.basis}")
    if decision.entitlement:
        meaning = ENTITLEMENTS.get(decision.entitlement, "")
        lines.append(f"  entitled   {decision.entitlement}: {meaning}".rstrip(": "))
    for quota in decision.quotas:
        fits = "fits" if quota.fits else "over the limit"
        lines.append(
            f"  quota      {quota.quota}: {quota.count} of {quota.limit} in {quota.period} ({fits})"
        )
    lines.append(f"  priority   {decision.priority}")
    lines.append(f"  tags       {' '.join(decision.tags)}")
    if decision.next_change_at is not None:
        lines.append(f"  changes at {format_local_and_utc(decision.next_change_at, local)}")
    if decision.note:
        lines.append("  note       " + decision.note.splitlines()[0])
        lines.extend(f"             {line}" for line in decision.note.splitlines()[1:])
    return "".join(printable(line) + "\n" for line in lines)
