"""The report as one HTML page: inline CSS and SVG, nothing fetched when it is opened, A4 in print.

`render_html(report)` takes the dict `report --format json` prints (version 1) and returns the
whole document: the summary per contract, a chart of targets met and breached per ISO week,
compliance per group and target, and contract use per customer. Every text from the data is
escaped; the same dict gives the same bytes (the page holds no instant of its own).
"""

from __future__ import annotations

import html
import math
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

__all__ = ["render_html"]

MET = "#038153"  # the apps' "achieved" green
BREACHED = "#cc3340"  # the apps' "breached" red
WITHIN = "#1f73b7"  # the apps' "running" blue: a quota within its limit
TRACK = "#e9ebed"
TEXT = "#2f3941"
MUTED = "#68737d"
LINE = "#d8dcde"
HATCH = "sla-hatch"  # the pattern that tells breached from met in greyscale

ENTITLEMENTS = {
    "included": ("Included", "covered by the plan"),
    "over_quota": ("Over quota", "beyond the plan's quota: best effort, or billed, as agreed"),
    "grace": ("Grace", "answered once more although the contract does not cover it"),
    "pay_per_incident": ("Pay per incident", "not covered: offered as a paid incident"),
    "not_eligible": ("Not eligible", "not covered by this contract"),
}

NOTHING = "\u2013"  # an en dash where there is no figure

CSS = """
* { box-sizing: border-box; }
html { background: #fff; }
body {
  margin: 0 auto; padding: 20px 24px 28px; max-width: 760px; color: var(--text);
  font: 13px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
    sans-serif;
}
h1 { font-size: 22px; margin: 0 0 4px; }
h2 {
  font-size: 16px; margin: 26px 0 8px; padding-bottom: 3px; border-bottom: 2px solid var(--text);
}
h3 { font-size: 14px; margin: 18px 0 2px; }
h4 {
  font-size: 11px; margin: 10px 0 3px; color: var(--muted); text-transform: uppercase;
  letter-spacing: .04em;
}
p { margin: 0 0 6px; }
.period { font-size: 15px; }
.meta, .note { color: var(--muted); font-size: 12px; }
.note { margin-top: 4px; }
.empty { color: var(--muted); font-style: italic; margin: 8px 0; }
table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td {
  padding: 4px 6px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top;
}
th {
  background: #f3f4f5; color: var(--muted); font-size: 11px; font-weight: 600;
  vertical-align: bottom;
}
.num { text-align: right; white-space: nowrap; }
th.num { white-space: normal; }
.targets { table-layout: fixed; }
.targets th, .targets td { padding-left: 4px; padding-right: 4px; }
.worst { width: auto; min-width: 75%; }
.sub { display: block; color: var(--muted); font-size: 10px; white-space: nowrap; }
.bad { color: var(--breached); font-weight: 600; }
tr.total td { font-weight: 600; border-top: 2px solid var(--text); border-bottom: none; }
figure { margin: 6px 0 0; }
.chart { display: block; width: 100%; max-width: 700px; height: auto; }
.legend {
  display: flex; flex-wrap: wrap; gap: 4px 18px; margin-top: 4px; font-size: 12px;
}
.legend svg { vertical-align: -2px; margin-right: 5px; }
.legend b { font-weight: 700; }
.customer {
  border: 1px solid var(--line); border-radius: 4px; padding: 2px 14px 10px; margin: 14px 0;
}
.customer h3 { font-size: 15px; margin-top: 10px; }
.quotas { table-layout: fixed; }
.quotas td { vertical-align: middle; }
.quotas .bar svg { display: block; }
.quota-use { font-weight: 600; white-space: nowrap; }
.over .quota-use { color: var(--breached); }
.entitlements td:last-child { width: 60px; }
.explain { color: var(--muted); }
footer {
  margin-top: 28px; padding-top: 6px; border-top: 1px solid var(--line); color: var(--muted);
  font-size: 11px;
}
.defs { position: absolute; width: 0; height: 0; overflow: hidden; }
svg { print-color-adjust: exact; -webkit-print-color-adjust: exact; }
thead { display: table-header-group; }
tr, figure, .customer, .group-head { break-inside: avoid; }
h2, h3, h4 { break-after: avoid; }
@page { size: A4; margin: 12mm; }
@media print {
  html, body { background: none; }
  body { max-width: none; padding: 0; font-size: 12px; }
  footer { font-size: 10px; }
  th { background: none; border-bottom: 1px solid var(--text); }
  h2 { margin-top: 18px; }
  .use { break-before: page; }
  .use > h2 { margin-top: 0; }
  .customer { border-radius: 0; }
}
"""


def render_html(report: Mapping[str, Any]) -> str:
    """The whole HTML document for `report` (the dict `--format json` prints, version 1).

    One self-contained file: inline CSS and SVG, no script, nothing fetched. Missing optional
    keys leave their part out or show a dash; text from the data is escaped throughout.
    """
    period = _mapping(report.get("period"))
    by = _words_list(report.get("by"))
    compliance = _mappings(report.get("compliance"))
    label = _text(period.get("label"))
    title = f"SLA report {label}".strip()
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        # Nothing may be fetched when the page is opened: the browser holds it to that.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f"<style>\n:root {{ color-scheme: light; --text: {TEXT}; --muted: {MUTED}; "
        f"--line: {LINE}; --breached: {BREACHED}; }}{CSS}</style>",
        "</head>",
        "<body>",
        _patterns(),
        *_header(report, period, by),
        *_summary(compliance, by),
        *_chart_section(_mappings(report.get("weekly"))),
        *_compliance_section(compliance, by),
        *_use_section(_mappings(report.get("use")), label),
        "<footer>Figures from the same decisions the daemon writes, re-made from the state at "
        f"the generated-at instant, {_e(_instant(report.get('generated_at')) or 'not given')}."
        "</footer>",
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


# --- the parts, top to bottom ------------------------------------------------------------------


def _header(report: Mapping[str, Any], period: Mapping[str, Any], by: list[str]) -> list[str]:
    since, until = _instant(period.get("since")), _instant(period.get("until"))
    span = f"from {since} to {until}" if since and until else since or until
    label = _text(period.get("label"))
    shown = f"{label}: {span}" if label and span else label or span
    facts = []
    generated = _instant(report.get("generated_at"))
    if generated:
        facts.append(f"Generated {generated}")
    facts.append(f"grouped by {', '.join(by)}" if by else "not grouped")
    lines = ["<header>", "<h1>SLA report</h1>"]
    if shown:
        lines.append(f'<p class="period">Period {_e(shown)}</p>')
    lines.append(f'<p class="meta">{_e(" · ".join(facts))}</p>')
    lines += [f'<p class="meta">Note: {_e(str(note))}</p>' for note in report.get("notes") or []]
    lines.append("</header>")
    return lines


@dataclass
class _Totals:
    tickets: int = 0
    due: int = 0
    met: int = 0
    breached: int = 0
    running: int = 0

    def add(self, other: _Totals) -> None:
        self.tickets += other.tickets
        self.due += other.due
        self.met += other.met
        self.breached += other.breached
        self.running += other.running


def _group_totals(group: Mapping[str, Any]) -> _Totals:
    totals = _Totals(tickets=_count(group.get("tickets")))
    for target in _mappings(group.get("targets")):
        totals.due += _count(target.get("due"))
        totals.met += _count(target.get("met"))
        totals.breached += _count(target.get("breached"))
        totals.running += _count(target.get("running"))
    return totals


def _summary(compliance: list[Mapping[str, Any]], by: list[str]) -> list[str]:
    """One row per value of the first grouping key (the contract, usually)."""
    key = by[0] if by else None
    rows: dict[str, _Totals] = {}
    for group in compliance:
        values = _mapping(group.get("group"))
        name = _value(values.get(key)) if key is not None else "All tickets"
        rows.setdefault(name, _Totals()).add(_group_totals(group))
    lines = ["<section>", "<h2>Summary</h2>"]
    if not rows:
        lines += ['<p class="empty">No targets due in this period.</p>', "</section>"]
        return lines
    head = _words(key) if key is not None else "Group"
    lines += [
        '<table class="summary">',
        "<thead><tr>"
        f'<th>{_e(head)}</th><th class="num">Tickets</th><th class="num">Targets due</th>'
        '<th class="num">Met</th><th class="num">Breached</th><th class="num">Compliance</th>'
        '<th class="num">Still running</th>'
        "</tr></thead>",
        "<tbody>",
    ]
    everything = _Totals()
    for name, totals in rows.items():
        everything.add(totals)
        lines.append(_summary_row(name, totals))
    lines.append("</tbody>")
    if len(rows) > 1:
        lines.append(f"<tfoot>{_summary_row('All', everything, total=True)}</tfoot>")
    lines += [
        "</table>",
        '<p class="note">Targets due in the period. Compliance: met / (met + breached).</p>',
        "</section>",
    ]
    return lines


def _summary_row(name: str, totals: _Totals, *, total: bool = False) -> str:
    breached = _cell(totals.breached, bad=totals.breached > 0)
    row = '<tr class="total">' if total else "<tr>"
    return (
        f"{row}<td>{_e(name)}</td>{_cell(totals.tickets)}"
        f"{_cell(totals.due)}{_cell(totals.met)}{breached}"
        f'<td class="num">{_compliance(totals.met, totals.breached)}</td>'
        f"{_cell(totals.running)}</tr>"
    )


def _compliance_section(compliance: list[Mapping[str, Any]], by: list[str]) -> list[str]:
    if not compliance:
        return []
    heading = f"Compliance by {', '.join(by)}" if by else "Compliance"
    lines = [
        "<section>",
        f"<h2>{_e(heading)}</h2>",
        '<p class="meta">Targets due in the period. Paused: targets paused now with time '
        "still owed; under it, the share of the targets whose clock a wait on the customer "
        "stopped. Median and 90th percentile: the time to the target's event, the wait on "
        "the customer left out.</p>",
    ]
    for group in compliance:
        lines += _group(group)
    lines.append("</section>")
    return lines


def _group(group: Mapping[str, Any]) -> list[str]:
    values = _mapping(group.get("group"))
    name = " · ".join(_value(v) for v in values.values()) or "All tickets"
    described = ", ".join(f"{_words(k).lower()} {_value(v)}" for k, v in values.items())
    tickets = _count(group.get("tickets"))
    meta = f"{described}: {_plural(tickets, 'ticket')}" if described else _plural(tickets, "ticket")
    targets = _mappings(group.get("targets"))
    lines = [
        '<div class="group-head">',
        f"<h3>{_e(name)}</h3>",
        f'<p class="meta">{_e(meta)}</p>',
        "</div>",
    ]
    if not targets:
        lines.append('<p class="empty">No targets due in this period.</p>')
    else:
        lines += [
            '<table class="targets">',
            TARGET_COLUMNS,
            "<thead><tr><th>Target</th>"
            + "".join(
                f'<th class="num">{h}</th>'
                for h in (
                    "Due",
                    "Met",
                    "Breached",
                    "Compliance",
                    "Running",
                    "Paused",
                    "Best effort",
                    "Median",
                    "90th percentile",
                )
            )
            + "</tr></thead>",
            "<tbody>",
            *(_target_row(target) for target in targets),
            "</tbody>",
            "</table>",
        ]
    labels = {_text(t.get("target")): _text(t.get("label")) for t in targets}
    worst = _mappings(group.get("worst"))
    if worst:
        lines += [
            "<h4>Worst breaches</h4>",
            '<table class="worst">',
            '<thead><tr><th>Ticket</th><th>Target</th><th>Was due</th><th class="num">Late by'
            "</th></tr></thead>",
            "<tbody>",
        ]
        for breach in worst:
            target = _text(breach.get("target"))
            late = _hours(breach.get("late_hours"), breach.get("unit"), inline=True)
            lines.append(
                f"<tr><td>{_e(_text(breach.get('ticket')))}</td>"
                f"<td>{_e(labels.get(target) or target)}</td>"
                f"<td>{_e(_instant(breach.get('due')))}</td>"
                f'<td class="num">{late}</td></tr>'
            )
        lines += ["</tbody>", "</table>"]
    return lines


# The same widths in every group's table, so that the columns line up down the page.
TARGET_COLUMNS = (
    "<colgroup>"
    + "".join(f'<col style="width: {w}%">' for w in (19, 6, 6, 9, 11.5, 8.5, 8, 8, 12, 12))
    + "</colgroup>"
)


def _target_row(target: Mapping[str, Any]) -> str:
    name = _text(target.get("label")) or _text(target.get("target")) or "(unnamed)"
    met, breached = _count(target.get("met")), _count(target.get("breached"))
    share = _number(target.get("paused_share"))
    paused = _cell(target.get("paused"))
    if share is not None and _count(target.get("paused")):
        paused = paused.removesuffix("</td>") + f'<span class="sub">{_percent(share)}</span></td>'
    return (
        f"<tr><td>{_e(name)}</td>{_cell(target.get('due'))}{_cell(target.get('met'))}"
        f"{_cell(target.get('breached'), bad=breached > 0)}"
        f'<td class="num">{_compliance(met, breached)}</td>'
        f"{_cell(target.get('running'))}{paused}{_cell(target.get('best_effort'))}"
        f'<td class="num">{_hours(target.get("median_hours"), target.get("unit"))}</td>'
        f'<td class="num">{_hours(target.get("p90_hours"), target.get("unit"))}</td></tr>'
    )


def _use_section(use: list[Mapping[str, Any]], period: str) -> list[str]:
    heading = f"Contract use, {period}" if period else "Contract use"
    if not use:
        return [
            "<section>",
            f"<h2>{_e(heading)}</h2>",
            '<p class="empty">No tickets with a contract in this period.</p>',
            "</section>",
        ]
    # In print, a page of its own: what an account manager sends a customer.
    lines = ['<section class="use">', f"<h2>{_e(heading)}</h2>"]
    lines.append(
        '<p class="meta">Per customer: each quota\'s count against its limit, and how the '
        "tickets created in the period were covered.</p>"
    )
    for entry in use:
        lines += _customer(entry)
    lines.append("</section>")
    return lines


def _customer(entry: Mapping[str, Any]) -> list[str]:
    customer = _text(entry.get("customer"))
    name = _text(entry.get("customer_name"))
    contract = _text(entry.get("contract"))
    heading = name or (f"Customer {customer}" if customer else "No customer")
    facts = []
    if customer and name:
        facts.append(f"customer {customer}")
    if contract:
        facts.append(f"contract {contract}")
    lines = ['<article class="customer">', f"<h3>{_e(heading)}</h3>"]
    if facts:
        lines.append(f'<p class="meta">{_e(_first_up(", ".join(facts)))}</p>')
    quotas = _mappings(entry.get("quotas"))
    if quotas:
        lines += [
            "<h4>Quotas</h4>",
            '<table class="quotas">',
            '<colgroup><col style="width: 38%"><col style="width: 14%">'
            '<col style="width: 18%"><col style="width: 30%"></colgroup>',
            "<thead><tr><th>Quota</th><th>Period</th><th>Used</th><th>Against the limit</th>"
            "</tr></thead>",
            "<tbody>",
            *(_quota_row(quota) for quota in quotas),
            "</tbody>",
            "</table>",
        ]
    entitlements = entry.get("entitlements")
    if isinstance(entitlements, Mapping):
        lines += ["<h4>Tickets by entitlement</h4>", *_entitlements(entitlements)]
    lines.append("</article>")
    return lines


def _quota_row(quota: Mapping[str, Any]) -> str:
    name = _text(quota.get("label")) or _words(_text(quota.get("quota"))) or "(unnamed)"
    count, limit = _number(quota.get("count")), _number(quota.get("limit"))
    over = _count(quota.get("over"))
    is_over = over > 0 or (count is not None and limit is not None and count > limit)
    if count is None:
        used = NOTHING
    elif limit is None:
        used = f"{_plain(count)} (no limit)"
    else:
        used = f"{_plain(count)} of {_plain(limit)}"
    if over:
        used += f" \u00b7 {over} over"
    bar = _quota_bar(count or 0, limit, is_over) if limit is not None else ""
    title = f"{name}: {used}"
    return (
        f'<tr class="quota{" over" if is_over else ""}"><td>{_e(name)}</td>'
        f"<td>{_e(_text(quota.get('period')))}</td>"
        f'<td class="quota-use">{_e(used)}</td>'
        f'<td class="bar" title="{_e(title)}">{bar}</td></tr>'
    )


def _quota_bar(count: float, limit: float, over: bool) -> str:
    """The count against the limit: a bar on a track whose end is the limit, or the count
    when that is larger (then a mark at the limit, and the part beyond it hatched red)."""
    width, height = 180, 12
    scale = max(count, limit, 1)
    inside = min(count, limit) / scale * width
    shapes = [
        f'<rect class="track" x="0" y="2" width="{width}" height="8" rx="2" fill="{TRACK}"/>',
        f'<rect class="fill" x="0" y="2" width="{_px(inside)}" height="8" rx="2" '
        f'fill="{BREACHED if over else WITHIN}"/>',
    ]
    if count > limit:
        start = limit / scale * width
        shapes += [
            f'<rect class="beyond" x="{_px(start)}" y="2" width="{_px(width - start)}" '
            f'height="8" fill="url(#{HATCH})"/>',
            f'<rect class="limit" x="{_px(max(start - 1, 0))}" y="0" width="2" '
            f'height="{height}" fill="{TEXT}"/>',
        ]
    return (
        f'<svg class="quota-bar" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" aria-hidden="true">{"".join(shapes)}</svg>'
    )


def _entitlements(entitlements: Mapping[str, Any]) -> list[str]:
    """A row for each kind given, with what it means; the kinds not given on one line."""
    names = [*ENTITLEMENTS, *sorted(k for k in entitlements if k not in ENTITLEMENTS)]
    given, none = [], []
    for key in names:
        label, explanation = ENTITLEMENTS.get(key, (_words(key), ""))
        if not _count(entitlements.get(key)):
            none.append(label.lower())
            continue
        explained = f' <span class="explain">{_e(explanation)}</span>' if explanation else ""
        given.append(
            f"<tr><td><b>{_e(label)}</b>{explained}</td>{_cell(entitlements.get(key))}</tr>"
        )
    lines = []
    if given:
        lines += ['<table class="entitlements">', "<tbody>", *given, "</tbody>", "</table>"]
    if none:
        lines.append(f'<p class="note">None: {_e(", ".join(none))}.</p>')
    return lines


# --- the chart ---------------------------------------------------------------------------------

WIDTH = 700  # CSS px: A4's 210 mm less 2 x 12 mm margins is 703 px at 96 px an inch
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP = 52, 692, 14
BAR_MAX = 36
BAR_MIN = 6  # narrower than this side by side, each contract gets a plot of its own
WEEK = re.compile(r"(\d{4})-W(\d{2})")


def _chart_section(weekly: list[Mapping[str, Any]]) -> list[str]:
    lines = ["<section>", "<h2>Targets met and breached per week</h2>"]
    counts: dict[tuple[str, str], tuple[int, int]] = {}
    for row in weekly:
        key = (_text(row.get("week")), _value(row.get("contract")))
        met, breached = counts.get(key, (0, 0))
        counts[key] = (met + _count(row.get("met")), breached + _count(row.get("breached")))
    if not any(met + breached for met, breached in counts.values()):
        lines += ['<p class="empty">No targets due in this period.</p>', "</section>"]
        return lines
    weeks = _week_axis(sorted({week for week, _ in counts}))
    contracts = sorted({contract for _, contract in counts})
    bar, _ = _bar_width((PLOT_RIGHT - PLOT_LEFT) / len(weeks), len(contracts))
    rows = [contracts] if bar >= BAR_MIN else [[contract] for contract in contracts]
    lines += [
        '<figure class="chart-figure">',
        _chart(weeks, rows, counts),
        _legend(rows),
        "</figure>",
        '<p class="note">Targets due in the period that were met or breached, by the ISO week '
        "(UTC) they were due in.</p>",
        "</section>",
    ]
    return lines


def _week_axis(weeks: list[str]) -> list[str]:
    """The weeks seen, with the weeks between them that saw nothing: a gap shows as a gap."""
    mondays = [_monday(week) for week in weeks]
    first, last = (mondays[0], mondays[-1]) if mondays else (None, None)
    if first is None or last is None or None in mondays:
        return weeks
    axis: list[str] = []
    day = first
    while day <= last and len(axis) <= 600:  # a long run is drawn as it came, not filled in
        year, week, _ = day.isocalendar()
        axis.append(f"{year}-W{week:02d}")
        day += timedelta(weeks=1)
    return axis if set(weeks) <= set(axis) else weeks


def _bar_width(slot: float, series: int) -> tuple[float, float]:
    """The width of each bar and the gap between neighbours, `series` bars in a week's slot."""
    gap = 0.0 if series == 1 else (3.0 if slot * 0.72 / series >= 12 else 1.0)
    return min(BAR_MAX, (slot * 0.72 - gap * (series - 1)) / series), gap


def _chart(
    weeks: list[str], rows: list[list[str]], counts: Mapping[tuple[str, str], tuple[int, int]]
) -> str:
    """One plot with the contracts of each week side by side (`rows` of one), or, when that
    makes bars too thin, one plot per contract, one above the other on the same scale."""
    panels = len(rows) > 1
    plot_height = 180 if not panels else 90 if len(rows) <= 4 else 64
    top, step = _scale(max(m + b for m, b in counts.values()), steps=3 if panels else 5)
    plot_width = PLOT_RIGHT - PLOT_LEFT
    slot = plot_width / len(weeks)
    series = len(rows[0])
    bar, gap = _bar_width(slot, series)
    group_width = bar * series + gap * (series - 1)
    lettered = series > 1 and bar >= 7
    title_height = 18 if panels else 0
    row_height = title_height + plot_height + (16 if lettered else 6)
    bottom = PLOT_TOP + len(rows) * row_height - (16 if lettered else 6)  # the last baseline
    week_row = bottom + (27 if lettered else 16)
    years = {m.group(1) for w in weeks if (m := WEEK.fullmatch(w))}
    year_row = week_row + 12 if len(years) > 1 else week_row
    height = year_row + 34
    parts = [
        f'<svg class="chart" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
        f'role="img" aria-labelledby="chart-title" font-size="10" fill="{TEXT}">',
        '<title id="chart-title">Targets met and breached per ISO week'
        f"{', per contract' if len(rows) > 1 or series > 1 else ''}</title>",
        f'<text class="axis-title" transform="translate(13 {_px((PLOT_TOP + bottom) / 2)}) '
        'rotate(-90)" text-anchor="middle" font-size="11">Targets met or breached</text>',
    ]
    for number, row in enumerate(rows):
        plot_top = PLOT_TOP + number * row_height + title_height
        base = plot_top + plot_height
        parts.append('<g class="plot">')
        if panels:
            parts.append(
                f'<text class="panel-title" x="{PLOT_LEFT}" y="{_px(plot_top - 7)}" '
                f'font-size="11" font-weight="600">{_e(row[0])}</text>'
            )
        for tick in range(0, top + 1, step):
            level = base - tick / top * plot_height
            parts.append(
                f'<line x1="{PLOT_LEFT}" x2="{PLOT_RIGHT}" y1="{_px(level)}" y2="{_px(level)}" '
                f'stroke="{LINE if tick else MUTED}" stroke-width="1"/>'
                f'<text class="tick" x="{PLOT_LEFT - 6}" y="{_px(level + 3.5)}" '
                f'text-anchor="end">{tick}</text>'
            )
        for index, week in enumerate(weeks):
            left = PLOT_LEFT + slot * (index + 0.5) - group_width / 2
            described = "; ".join(
                f"{contract}: {counts[(week, contract)][0]} met, "
                f"{counts[(week, contract)][1]} breached"
                for contract in row
                if (week, contract) in counts
            )
            parts.append(f'<g class="week" data-week="{_e(week)}">')
            parts.append(f"<title>{_e(week)}: {_e(described or 'no targets')}</title>")
            for position, contract in enumerate(row):
                x = left + position * (bar + gap)
                parts += _stacked_bar(
                    x,
                    bar,
                    counts.get((week, contract), (0, 0)),
                    base=base,
                    per_target=plot_height / top,
                    contract=contract,
                )
                if lettered:
                    parts.append(
                        f'<text class="bar-label" x="{_px(x + bar / 2)}" y="{_px(base + 12)}" '
                        f'text-anchor="middle" fill="{MUTED}" font-size="9">'
                        f"{_letter(position)}</text>"
                    )
            parts.append("</g>")
        parts.append("</g>")
    parts += _week_labels(weeks, slot, week_row, year_row)
    axis = "ISO week"
    if len(years) == 1:
        axis += f" of {next(iter(years))}"
    parts += [
        f'<text class="axis-title" x="{_px(PLOT_LEFT + plot_width / 2)}" y="{year_row + 20}" '
        f'text-anchor="middle" font-size="11">{_e(axis)}</text>',
        "</svg>",
    ]
    return "\n".join(parts)


def _week_labels(weeks: list[str], slot: float, week_row: float, year_row: float) -> list[str]:
    """Under the last plot: every week's name that fits ("W45"), and the year where it
    changes when the weeks run across one."""
    every = max(1, math.ceil(max(_label_width(_week_label(w)) for w in weeks) / slot))
    years = {m.group(1) for w in weeks if (m := WEEK.fullmatch(w))}
    shown_year = ""
    labels = []
    for index in range(0, len(weeks), every):
        week, centre = weeks[index], PLOT_LEFT + slot * (index + 0.5)
        labels.append(
            f'<text class="week-label" x="{_px(centre)}" y="{_px(week_row)}" '
            f'text-anchor="middle">{_e(_week_label(week))}</text>'
        )
        match = WEEK.fullmatch(week)
        if len(years) > 1 and match and match.group(1) != shown_year:
            shown_year = match.group(1)
            labels.append(
                f'<text class="year-label" x="{_px(centre)}" y="{_px(year_row)}" '
                f'text-anchor="middle" fill="{MUTED}">{_e(shown_year)}</text>'
            )
    return labels


def _stacked_bar(
    x: float,
    width: float,
    counts: tuple[int, int],
    *,
    base: float,
    per_target: float,
    contract: str,
) -> list[str]:
    """Met at the foot, breached on top, each with its count inside when it fits."""
    shapes = []
    met, breached = counts
    for kind, value, fill in (("met", met, MET), ("breached", breached, f"url(#{HATCH})")):
        if not value:
            continue
        height = value * per_target
        top = base - height
        shapes.append(
            f'<rect class="bar {kind}" data-contract="{_e(contract)}" x="{_px(x)}" '
            f'y="{_px(top)}" width="{_px(width)}" height="{_px(height)}" fill="{fill}">'
            f"<title>{_e(f'{contract}: {value} {kind}')}</title></rect>"
        )
        if width >= 16 and height >= 14:
            # White on the stripes needs a red edge to stay readable.
            halo = (
                f' stroke="{BREACHED}" stroke-width="3" paint-order="stroke"'
                if kind == "breached"
                else ""
            )
            shapes.append(
                f'<text class="count" x="{_px(x + width / 2)}" y="{_px(top + height / 2 + 3.5)}" '
                f'text-anchor="middle" fill="#fff" font-weight="600"{halo}>{value}</text>'
            )
        base = top
    return shapes


def _legend(rows: list[list[str]]) -> str:
    def swatch(fill: str) -> str:
        return (
            '<svg width="14" height="14" viewBox="0 0 14 14" aria-hidden="true">'
            f'<rect width="14" height="14" fill="{fill}"/></svg>'
        )

    items = [
        f"<span>{swatch(MET)}Met</span>",
        f"<span>{swatch(f'url(#{HATCH})')}Breached</span>",
    ]
    if len(rows) > 1:
        items.append("<span>One plot per contract, on the same scale</span>")
    elif len(rows[0]) > 1:
        named = ", ".join(
            f"<b>{_letter(i)}</b> {_e(contract)}" for i, contract in enumerate(rows[0])
        )
        items.append(f"<span>In each week, left to right: {named}</span>")
    else:
        items.append(f"<span>Contract {_e(rows[0][0])}</span>")
    return f'<figcaption class="legend">{"".join(items)}</figcaption>'


def _patterns() -> str:
    """The hatch of breached bars and over-limit quota parts: red with pale stripes, unlike
    the solid green of met bars even in greyscale. One definition, used by every SVG."""
    return (
        '<svg class="defs" width="0" height="0" aria-hidden="true" focusable="false"><defs>'
        f'<pattern id="{HATCH}" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)">'
        f'<rect width="6" height="6" fill="{BREACHED}"/>'
        '<rect width="2" height="6" fill="#fff" fill-opacity="0.6"/>'
        "</pattern></defs></svg>"
    )


def _scale(highest: int, steps: int) -> tuple[int, int]:
    """The axis' top and step: 1, 2, 2.5 or 5 times a power of ten, `steps` steps at most."""
    for power in range(12):
        unit = 10**power
        # 2.5 from 25 up only (5 // 2 is 2 again): the ticks stay whole numbers.
        for step in (unit, 2 * unit, 5 * unit // 2, 5 * unit):
            if math.ceil(highest / step) <= steps:
                return max(step, step * math.ceil(highest / step)), step
    return highest, highest


def _monday(week: str) -> date | None:
    match = WEEK.fullmatch(week)
    try:
        return date.fromisocalendar(int(match.group(1)), int(match.group(2)), 1) if match else None
    except ValueError:  # week 54, or week 53 of a year that has 52
        return None


def _week_label(week: str) -> str:
    match = WEEK.fullmatch(week)
    return f"W{match.group(2)}" if match else week


def _label_width(text: str) -> float:
    return len(text) * 6.2 + 8  # 10 px system-ui, with room on either side


def _letter(index: int) -> str:
    letters = string.ascii_uppercase
    return letters[index] if index < len(letters) else f"{letters[index % 26]}{index // 26}"


# --- words and numbers -------------------------------------------------------------------------


def _e(text: str) -> str:
    """Text as it goes into an element or a quoted attribute."""
    return html.escape(text, quote=True)


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _value(value: object) -> str:
    """A grouping value as shown: `None` (a ticket with no such fact) as "(none)"."""
    return "(none)" if value is None or value == "" else str(value)


def _words(key: str) -> str:
    """A key as words: `first_response` as "First response"."""
    return _first_up(key.replace("_", " ").strip())


def _first_up(text: str) -> str:
    return text[:1].upper() + text[1:]


def _words_list(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Iterable):
        return [str(item) for item in value]
    return []


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _mappings(value: object) -> list[Mapping[str, Any]]:
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        return []
    return [item for item in value if isinstance(item, Mapping)]


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) else None


def _count(value: object) -> int:
    number = _number(value)
    return 0 if number is None else int(number)


def _plain(value: float) -> str:
    """A count as a count, a fraction with one decimal."""
    if float(value).is_integer():
        return str(int(value))
    return _decimal(value)


def _decimal(value: float) -> str:
    text = f"{value:.1f}"
    return text.removesuffix(".0")


def _cell(value: object, *, bad: bool = False) -> str:
    number = _number(value)
    shown = NOTHING if number is None else _plain(number)
    return f'<td class="num{" bad" if bad else ""}">{shown}</td>'


def _compliance(met: int, breached: int) -> str:
    """met / (met + breached), rounded down to a tenth of a percent: 100 % only when all met."""
    done = met + breached
    if not done:
        return NOTHING
    tenths = 1000 * met // done
    return f"{tenths // 10}.{tenths % 10}".removesuffix(".0") + "%"


def _percent(share: float) -> str:
    return f"{_decimal(share * 100)}%"


def _hours(value: object, unit: object, *, inline: bool = False) -> str:
    """Hours with their unit ("business hours"), below the figure in a narrow column."""
    number = _number(value)
    if number is None:
        return NOTHING
    shown = _e(_text(unit) or "hours")
    if inline:
        return f"{_decimal(number)} {shown}"
    return f'{_decimal(number)}<span class="sub">{shown}</span>'


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _instant(value: object) -> str:
    """An instant of the report as "2026-11-04 16:00 UTC"; anything else as it came."""
    if not isinstance(value, str):
        return ""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None:
        return moment.strftime("%Y-%m-%d %H:%M")
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _px(value: float) -> str:
    return f"{value:.1f}"
