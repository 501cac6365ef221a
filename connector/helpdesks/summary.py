"""The SLA summary: one compact, versioned JSON text per ticket, for the helpdesk apps.

The agents' sidebar apps (apps/) read it from one ticket field the helpdesk mapping names
(`results.summary`), through the helpdesk's own client API: no network path to the daemon.
It holds what a panel shows — contract, plan, severity (submitted and used), entitlement,
each target's due instant, state and paused time (and the shares of an order split by
capacity, each with its due), the customer's quota use, the explanation —
and nothing that changes by itself: the countdown is the app's to compute from `due`, so an
unchanged decision writes the same text, and the minimal write sends nothing.

Version 1. At most `MAX_SUMMARY` characters: a longer one loses its explanation lines first,
then its quotas, and says so (`"cut": true`).
"""

from __future__ import annotations

import json
from typing import Any

from connector.sla.contract import ContractSpec
from connector.sla.model import Decision, QuotaResult
from connector.timeutil import format_instant

__all__ = ["MAX_SUMMARY", "SUMMARY_VERSION", "summary_text"]

SUMMARY_VERSION = 1
# Zendesk's multi-line text fields and Freshdesk's paragraph fields take far more; a panel
# needs far less, and every write carries it.
MAX_SUMMARY = 4000


def summary_text(decision: Decision, spec: ContractSpec | None = None) -> str:
    """The summary of `decision` as compact JSON; `spec`, the decision's contract, gives the
    words people read: its title, and its targets' and quotas' labels."""
    summary = _summary(decision, spec)
    text = _dumps(summary)
    for cut in ("lines", "quotas"):
        if len(text) <= MAX_SUMMARY:
            break
        summary[cut] = []
        summary["cut"] = True
        text = _dumps(summary)
    if len(text) > MAX_SUMMARY:  # targets alone too long: keep what fits, say so
        summary["targets"] = summary["targets"][:1]
        text = _dumps(summary)
    return text


def _summary(decision: Decision, spec: ContractSpec | None) -> dict[str, Any]:
    targets = []
    for name, target in decision.targets.items():
        entry: dict[str, Any] = {"name": name, "state": target.state}
        target_spec = spec.targets.get(name) if spec is not None else None
        if target_spec is not None and target_spec.label:
            entry["label"] = target_spec.label
        if target.due is not None and not target.best_effort:
            entry["due"] = format_instant(target.due)
        if target.at_risk_at is not None:
            entry["at_risk_at"] = format_instant(target.at_risk_at)
        if target.achieved_at is not None:
            entry["achieved_at"] = format_instant(target.achieved_at)
        if target.owed_seconds is not None:
            entry["owed_seconds"] = target.owed_seconds
        # While paused, the pause so far grows with every decision: left out (the summary would
        # change, and be written, at every poll); what is still owed says it all.
        if target.paused_seconds is not None and target.state != "paused":
            entry["paused_seconds"] = target.paused_seconds
        if target.parts:  # an order split by capacity: each share with its own due
            entry["parts"] = [
                {"quantity": p.quantity, "due": format_instant(p.due)}
                for p in target.parts
                if p.due is not None
            ]
        entry["basis"] = target.basis
        targets.append(entry)
    summary: dict[str, Any] = {
        "v": SUMMARY_VERSION,
        "contract": decision.contract,
        "title": spec.title if spec is not None else None,
        "plan": decision.plan,
        "severity": decision.severity,
        "submitted": decision.severity_submitted,
        "entitlement": decision.entitlement,
        "zone": decision.local_zone,
        "calendar": decision.calendar,
        "targets": targets,
        "quotas": [_quota(q, spec) for q in decision.quotas],
        "lines": decision.note.splitlines() if decision.note else [],
    }
    return {k: v for k, v in summary.items() if v is not None}


def _quota(quota: QuotaResult, spec: ContractSpec | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"quota": quota.quota}
    quota_spec = spec.quotas.get(quota.quota) if spec is not None else None
    if quota_spec is not None and quota_spec.label:
        entry["label"] = quota_spec.label
    entry |= {"period": quota.period, "count": quota.count, "limit": quota.limit}
    entry["fits"] = quota.fits
    return entry


def _dumps(summary: dict[str, Any]) -> str:
    return json.dumps(summary, ensure_ascii=False, separators=(",", ":"))
