"""The report as text for a terminal, as CSV for a spreadsheet, as JSON.

All three are written from the report's dict (`compute.ReportBuilder.report`); the HTML page
is `html.render_html`'s.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from typing import Any

__all__ = ["render_csv", "render_json", "render_table"]


def render_json(report: Mapping[str, Any]) -> str:
    return json.dumps(report, ensure_ascii=False, indent=2) + "\n"


def _group_text(group: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v if v is not None else '-'}" for k, v in group.items())


def _hours(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _share(met: int, breached: int) -> str:
    done = met + breached
    return "-" if not done else f"{100 * met / done:.1f} %"


def render_table(report: Mapping[str, Any]) -> str:
    """Compliance per group and target, then contract use per customer, as aligned text."""
    period = report["period"]
    lines = [
        f"SLA report {period['label']} ({period['since']} to {period['until']}), "
        f"by {', '.join(report['by'])}; decided at {report['generated_at']}",
        *[f"Note: {note}" for note in report.get("notes", [])],
        "",
        "Compliance (targets due in the period)",
    ]
    header = (
        f"  {'target':<22} {'due':>6} {'met':>6} {'breached':>8} {'running':>7} "
        f"{'paused':>6} {'met %':>7} {'median h':>9} {'p90 h':>7}"
    )
    if not report["compliance"]:
        lines.append("  no targets due in this period")
    for group in report["compliance"]:
        lines += ["", f"{_group_text(group['group'])}: {group['tickets']} tickets", header]
        for row in group["targets"]:
            lines.append(
                f"  {(row['label'] or row['target'])[:22]:<22} {row['due']:>6} {row['met']:>6} "
                f"{row['breached']:>8} {row['running']:>7} {row['paused']:>6} "
                f"{_share(row['met'], row['breached']):>7} {_hours(row['median_hours']):>9} "
                f"{_hours(row['p90_hours']):>7}"
            )
        units = sorted({row["unit"] for row in group["targets"] if row["unit"]})
        if units:
            lines.append(f"  (hours to the target's event, in {' and '.join(units)})")
        for worst in group["worst"][:3]:
            lines.append(
                f"  worst: ticket {worst['ticket']} {worst['target']}, "
                f"{worst['late_hours']:.1f} h late (due {worst['due']})"
            )
    lines += ["", "Contract use (tickets created in the period)"]
    if not report["use"]:
        lines.append("  none")
    for entry in report["use"]:
        who = entry.get("customer_name") or entry["customer"] or "(no customer)"
        given = ", ".join(f"{k} {v}" for k, v in entry["entitlements"].items() if v)
        lines.append(f"  {entry['contract']}  {who}: {given or 'no tickets'}")
        for quota in entry["quotas"]:
            over = f", {quota['over']} over" if quota["over"] else ""
            lines.append(
                f"    {quota['label'] or quota['quota']}: {quota['count']} of {quota['limit']} "
                f"in {quota['period']}{over}"
            )
    return "\n".join(lines) + "\n"


def render_csv(report: Mapping[str, Any]) -> str:
    """One row a group and target (compliance), then one row a customer and quota period
    (use): the `section` column tells them apart, for one sheet."""
    out = io.StringIO()
    keys = list(report["by"])
    fields = [
        "section",
        *keys,
        "target",
        "due",
        "met",
        "breached",
        "running",
        "paused",
        "best_effort",
        "paused_share",
        "median_hours",
        "p90_hours",
        "unit",
        "contract",
        "customer",
        "customer_name",
        "quota",
        "period",
        "count",
        "limit",
        "over",
        *[
            f"entitled_{name}"
            for name in ("included", "over_quota", "grace", "pay_per_incident", "not_eligible")
        ],
    ]
    fields = list(dict.fromkeys(fields))  # a grouping key named like a column: once
    writer = csv.DictWriter(out, fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for group in report["compliance"]:
        for row in group["targets"]:
            writer.writerow(_inert({"section": "compliance", **group["group"], **row}))
    for entry in report["use"]:
        entitled = {f"entitled_{k}": v for k, v in entry["entitlements"].items()}
        base = {
            "section": "use",
            "contract": entry["contract"],
            "customer": entry["customer"],
            "customer_name": entry.get("customer_name"),
            **entitled,
        }
        if not entry["quotas"]:
            writer.writerow(_inert(base))
        for quota in entry["quotas"]:
            writer.writerow(_inert({**base, **quota}))
    return out.getvalue()


def _inert(row: Mapping[str, Any]) -> dict[str, Any]:
    """A text a spreadsheet would take for a formula (=, +, -, @ first) is written with a
    quote in front: a customer's name must not run as code when the file is opened."""
    return {
        key: "'" + value if isinstance(value, str) and value[:1] in ("=", "+", "-", "@") else value
        for key, value in row.items()
    }
