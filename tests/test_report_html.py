"""The HTML report (connector/report/html.py) as text: one file that fetches nothing, every
figure of the report's dict on the page, text from the data escaped, the same bytes twice.

The page in a real browser (layout, chart, print to PDF) is tests/test_report_browser.py's.
"""

from __future__ import annotations

import copy
import re
from html.parser import HTMLParser
from typing import Any

import pytest

from connector.report.html import render_html

HOSTILE = "<script>alert(1)</script>"

SAMPLE: dict[str, Any] = {
    "v": 1,
    "generated_at": "2026-12-01T08:00:00Z",
    "period": {
        "since": "2026-11-01T00:00:00Z",
        "until": "2026-12-01T00:00:00Z",
        "label": "2026-11",
    },
    "by": ["contract", "office"],
    "compliance": [
        {
            "group": {"contract": "photoprism", "office": "berlin"},
            "tickets": 120,
            "targets": [
                {
                    "target": "first_response",
                    "label": "First response",
                    "due": 118,
                    "met": 100,
                    "breached": 10,
                    "running": 5,
                    "paused": 3,
                    "best_effort": 2,
                    "paused_share": 0.0244,
                    "median_hours": 2.5,
                    "p90_hours": 7.1,
                    "unit": "business hours",
                },
                {
                    "target": "resolution",
                    "label": "Resolution",
                    "due": 97,
                    "met": 81,
                    "breached": 4,
                    "running": 12,
                    "paused": 0,
                    "best_effort": 0,
                    "paused_share": 0.0,
                    "median_hours": 19.4,
                    "p90_hours": 46.8,
                    "unit": "business hours",
                },
            ],
            "worst": [
                {
                    "ticket": "1003",
                    "target": "first_response",
                    "late_hours": 12.5,
                    "due": "2026-11-04T16:00:00Z",
                    "unit": "hours",
                },
                {
                    "ticket": "1088",
                    "target": "resolution",
                    "late_hours": 6.2,
                    "due": "2026-11-19T09:30:00Z",
                    "unit": "hours",
                },
            ],
        },
        {
            "group": {"contract": "pix4d-premium", "office": "denver"},
            "tickets": 41,
            "targets": [
                {
                    "target": "first_response",
                    "label": "First response",
                    "due": 39,
                    "met": 33,
                    "breached": 2,
                    "running": 4,
                    "paused": 1,
                    "best_effort": 0,
                    "paused_share": 0.025,
                    "median_hours": 1.2,
                    "p90_hours": 3.9,
                    "unit": "hours",
                },
                {
                    "target": "workaround",
                    "label": "Workaround",
                    "due": 6,
                    "met": 0,
                    "breached": 0,
                    "running": 6,
                    "paused": 0,
                    "best_effort": 0,
                    "paused_share": 0.0,
                    "median_hours": None,
                    "p90_hours": None,
                    "unit": None,
                },
            ],
            "worst": [
                {
                    "ticket": "2210",
                    "target": "first_response",
                    "late_hours": 3.4,
                    "due": "2026-11-26T15:00:00Z",
                    "unit": "hours",
                }
            ],
        },
        {
            "group": {"contract": "pix4d-premium", "office": None},
            "tickets": 7,
            "targets": [
                {
                    "target": "first_response",
                    "label": "First response",
                    "due": 7,
                    "met": 6,
                    "breached": 1,
                    "running": 0,
                    "paused": 0,
                    "best_effort": 0,
                    "paused_share": 0.0,
                    "median_hours": 0.8,
                    "p90_hours": 2.3,
                    "unit": "hours",
                }
            ],
            "worst": [],
        },
    ],
    "weekly": [
        {"week": week, "contract": contract, "met": met, "breached": breached}
        for week, contract, met, breached in [
            ("2026-W44", "photoprism", 9, 1),
            ("2026-W45", "photoprism", 48, 3),
            ("2026-W45", "pix4d-premium", 8, 1),
            ("2026-W46", "photoprism", 44, 4),
            ("2026-W46", "pix4d-premium", 10, 0),
            ("2026-W47", "photoprism", 39, 5),
            ("2026-W47", "pix4d-premium", 11, 2),
            ("2026-W48", "photoprism", 41, 1),
            ("2026-W48", "pix4d-premium", 9, 0),
        ]
    ],
    "use": [
        {
            "contract": "photoprism",
            "customer": "101",
            "customer_name": "Lumen Archiv GmbH",
            "quotas": [
                {
                    "quota": "incidents",
                    "label": "Incidents per month",
                    "period": "2026-11",
                    "count": 5,
                    "limit": 4,
                    "over": 1,
                },
                {
                    "quota": "phone_calls",
                    "label": "Phone calls per month",
                    "period": "2026-11",
                    "count": 2,
                    "limit": 6,
                    "over": 0,
                },
            ],
            "entitlements": {
                "included": 4,
                "over_quota": 1,
                "grace": 0,
                "pay_per_incident": 0,
                "not_eligible": 0,
            },
        },
        {
            "contract": "pix4d-premium",
            "customer": "207",
            "quotas": [
                {
                    "quota": "priority_tickets",
                    "label": None,
                    "period": "2026-Q4",
                    "count": 9,
                    "limit": 12,
                    "over": 0,
                }
            ],
            "entitlements": {
                "included": 9,
                "over_quota": 0,
                "grace": 2,
                "pay_per_incident": 3,
                "not_eligible": 0,
            },
        },
    ],
}

EMPTY: dict[str, Any] = {
    "v": 1,
    "generated_at": "2026-12-01T08:00:00Z",
    "period": {
        "since": "2026-11-01T00:00:00Z",
        "until": "2026-12-01T00:00:00Z",
        "label": "2026-11",
    },
    "by": ["contract"],
    "compliance": [],
    "weekly": [],
    "use": [],
}


def year_by_week() -> dict[str, Any]:
    """A year by week for three contracts: the crowded chart."""
    report = copy.deepcopy(SAMPLE)
    report["period"] = {
        "since": "2026-01-01T00:00:00Z",
        "until": "2027-01-01T00:00:00Z",
        "label": "2026",
    }
    contracts = ("photoprism", "pix4d-premium", "pixelz")
    report["weekly"] = [
        {
            "week": f"2026-W{week:02d}",
            "contract": contract,
            "met": 20 + (week * 7 + index * 13) % 40,
            "breached": (week + index * 5) % 7,
        }
        for week in range(1, 54)
        for index, contract in enumerate(contracts)
    ]
    return report


class _Page(HTMLParser):
    """The text a reader sees (no style), and every tag with its attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if not self._in_style:
            self.text.append(data)


def _page(document: str) -> _Page:
    page = _Page()
    page.feed(document)
    page.close()
    return page


def _seen(document: str) -> str:
    return " ".join(" ".join(_page(document).text).split())


@pytest.mark.parametrize("report", [SAMPLE, EMPTY], ids=["sample", "empty"])
def test_one_file_that_fetches_nothing(report: dict[str, Any]) -> None:
    document = render_html(report)
    assert document.startswith("<!DOCTYPE html>\n")
    assert document.endswith("</html>\n")
    assert "http://" not in document
    assert "https://" not in document
    lowered = document.lower()
    for banned in ("<link", "<script", "<img", "<iframe", "<object", "@import", "@font-face"):
        assert banned not in lowered, banned
    for tag, attrs in _page(document).tags:
        for name in ("src", "href", "xlink:href"):
            assert name not in attrs, (tag, attrs)
    for reference in re.findall(r"url\(([^)]*)\)", document):
        assert reference.startswith("#"), reference  # the page's own patterns only
    # The browser holds the page to that too.
    assert "default-src 'none'" in document


def test_print_rules_for_a4() -> None:
    document = render_html(SAMPLE)
    assert "@page { size: A4; margin: 12mm; }" in document
    assert "@media print" in document
    assert "tr, figure, .customer, .group-head { break-inside: avoid; }" in document
    assert "print-color-adjust: exact" in document


def _rows(document: str, table: str) -> list[list[str]]:
    """The text of each body cell, row by row, of the tables of class `table`."""
    rows = []
    for body in re.findall(rf'<table class="{table}">.*?<tbody>(.*?)</tbody>', document, re.S):
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S):
            cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
            rows.append([" ".join(" ".join(_page(cell).text).split()) for cell in cells])
    return rows


def test_every_figure_of_the_report_is_on_the_page() -> None:
    document = render_html(SAMPLE)
    seen = _seen(document)
    for words in (
        "SLA report",
        "Period 2026-11: from 2026-11-01 00:00 UTC to 2026-12-01 00:00 UTC",
        "Generated 2026-12-01 08:00 UTC",
        "grouped by contract, office",
        "re-made from the state at the generated-at instant, 2026-12-01 08:00 UTC.",
    ):
        assert words in seen, words
    groups = document.split('<div class="group-head">')[1:]
    assert len(groups) == len(SAMPLE["compliance"])
    for group, shown in zip(SAMPLE["compliance"], groups, strict=True):
        assert f"{group['tickets']} tickets" in _seen(shown)
        rows = _rows(shown, "targets")
        assert [row[0] for row in rows] == [t["label"] for t in group["targets"]]
        for target, row in zip(group["targets"], rows, strict=True):
            counts = [row[i] for i in (1, 2, 3, 5, 7)] + [row[6].split()[0]]
            keys = ("due", "met", "breached", "running", "best_effort", "paused")
            assert counts == [str(target[key]) for key in keys]
            if target["paused"]:
                assert row[6].split()[1] == f"{round(target['paused_share'] * 100, 1)}%"
            for key, cell in (("median_hours", row[8]), ("p90_hours", row[9])):
                hours = target[key]
                assert cell == ("\u2013" if hours is None else f"{hours} {target['unit']}")
        labels = {t["target"]: t["label"] for t in group["targets"]}
        assert _rows(shown, "worst") == [
            [
                w["ticket"],
                labels[w["target"]],
                w["due"].replace("T", " ").replace(":00Z", " UTC"),
                f"{w['late_hours']} {w['unit']}",
            ]
            for w in group["worst"]
        ]
    for week in SAMPLE["weekly"]:  # each bar carries its counts
        assert f"{week['contract']}: {week['met']} met" in seen
        if week["breached"]:
            assert f"{week['contract']}: {week['breached']} breached" in seen
    quotas = _rows(document, "quotas")
    entitlements = _rows(document, "entitlements")
    for entry in SAMPLE["use"]:
        for quota in entry["quotas"]:
            over = f" · {quota['over']} over" if quota["over"] else ""
            assert [quota["period"], f"{quota['count']} of {quota['limit']}{over}"] in [
                row[1:3] for row in quotas
            ]
    assert [row[1] for row in entitlements] == ["4", "1", "9", "2", "3"]
    assert [row[0].split(" ", 1)[0] for row in entitlements] == [
        "Included",
        "Over",
        "Included",
        "Grace",
        "Pay",
    ]
    assert "None: grace, pay per incident, not eligible." in seen
    assert "None: over quota, not eligible." in seen


def test_the_figures_the_page_works_out() -> None:
    seen = _seen(render_html(SAMPLE))
    # photoprism: 181 met, 14 breached -> 92.8 %; pix4d-premium sums two offices.
    assert "photoprism 120 215 181 14 92.8% 17" in seen
    assert "pix4d-premium 48 52 39 3 92.8% 10" in seen
    assert "All 168 267 220 17 92.8% 27" in seen
    # Per target: met / (met + breached), rounded down; a target with neither shows a dash.
    assert "First response 118 100 10 90.9% 5 3 2.4% 2" in seen
    assert "Workaround 6 0 0 \u2013 6 0 0 \u2013 \u2013" in seen
    # The office a ticket has none of, and a customer with no name but its id.
    assert "pix4d-premium · (none)" in seen
    assert "Customer 207" in seen
    assert "Lumen Archiv GmbH" in seen
    assert "Priority tickets" in seen  # a quota without a label: its key in words


def test_a_quota_over_its_limit_is_red_and_says_so() -> None:
    document = render_html(SAMPLE)
    rows = re.findall(r'<tr class="quota( over)?"><td>(.*?)</td>(.*?)</tr>', document, re.S)
    assert {name: bool(over) for over, name, _ in rows} == {
        "Incidents per month": True,
        "Phone calls per month": False,
        "Priority tickets": False,
    }
    over = next(row for flag, _, row in rows if flag)
    assert "5 of 4 · 1 over" in over
    assert 'class="fill"' in over
    assert 'fill="#cc3340"' in over
    assert 'class="beyond"' in over  # the part past the limit, hatched
    within = next(row for flag, _, row in rows if not flag)
    assert 'fill="#1f73b7"' in within
    assert "#cc3340" not in within


def test_the_chart_has_one_bar_group_a_week_and_fills_gaps() -> None:
    document = render_html(SAMPLE)
    weeks = re.findall(r'<g class="week" data-week="([^"]*)">', document)
    assert weeks == ["2026-W44", "2026-W45", "2026-W46", "2026-W47", "2026-W48"]
    gappy = copy.deepcopy(SAMPLE)
    gappy["weekly"] = [w for w in gappy["weekly"] if w["week"] not in ("2026-W46", "2026-W47")]
    weeks = re.findall(r'<g class="week" data-week="([^"]*)">', render_html(gappy))
    assert weeks == ["2026-W44", "2026-W45", "2026-W46", "2026-W47", "2026-W48"]
    seen = _seen(render_html(SAMPLE))
    assert "In each week, left to right: A photoprism, B pix4d-premium" in seen
    assert "ISO week of 2026" in seen


def test_too_many_bars_side_by_side_make_a_plot_per_contract() -> None:
    document = render_html(year_by_week())
    assert re.findall(r'class="panel-title"[^>]*>([^<]*)<', document) == [
        "photoprism",
        "pix4d-premium",
        "pixelz",
    ]
    assert document.count('<g class="plot">') == 3
    assert document.count('<g class="week"') == 3 * 53
    assert 'class="bar-label"' not in document  # no letters: each plot is one contract
    assert "One plot per contract, on the same scale" in _seen(document)
    single = year_by_week()
    single["weekly"] = [w for w in single["weekly"] if w["contract"] == "pixelz"]
    document = render_html(single)
    assert document.count('<g class="plot">') == 1
    assert "panel-title" not in document


def test_a_chart_across_new_year_marks_each_year() -> None:
    report = copy.deepcopy(EMPTY)
    report["weekly"] = [
        {"week": week, "contract": "photoprism", "met": 3, "breached": 1}
        for week in ("2026-W52", "2026-W53", "2027-W01")
    ]
    document = render_html(report)
    weeks = re.findall(r'<g class="week" data-week="([^"]*)">', document)
    assert weeks == ["2026-W52", "2026-W53", "2027-W01"]
    assert re.findall(r'class="year-label"[^>]*>(\d+)<', document) == ["2026", "2027"]


def test_the_empty_report_says_there_is_nothing() -> None:
    document = render_html(EMPTY)
    seen = _seen(document).lower()
    assert "no targets due in this period" in seen
    assert "no tickets with a contract in this period" in seen
    assert 'class="chart"' not in document
    quiet = copy.deepcopy(SAMPLE)
    quiet["weekly"] = [dict(w, met=0, breached=0) for w in quiet["weekly"]]
    assert 'class="chart"' not in render_html(quiet)


def test_text_from_the_data_is_escaped_everywhere() -> None:
    report = copy.deepcopy(SAMPLE)
    quote = '"><svg onload=alert(2)>'
    report["period"]["label"] = HOSTILE
    report["by"] = [HOSTILE]
    report["compliance"][0]["group"] = {HOSTILE: HOSTILE}
    report["compliance"][0]["targets"][0]["label"] = HOSTILE
    report["compliance"][0]["targets"][0]["unit"] = HOSTILE
    report["compliance"][0]["worst"][0]["ticket"] = quote
    report["compliance"][0]["worst"][0]["due"] = HOSTILE
    report["weekly"][0]["contract"] = quote
    report["weekly"][1]["week"] = quote
    report["use"][0]["customer_name"] = HOSTILE
    report["use"][0]["quotas"][0]["label"] = quote
    report["use"][0]["quotas"][0]["period"] = HOSTILE
    report["use"][1]["customer"] = quote
    report["use"][1]["entitlements"][HOSTILE] = 1
    document = render_html(report)
    assert "<script" not in document.lower()
    assert document.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 8
    assert "&quot;&gt;&lt;svg onload=alert(2)&gt;" in document
    # Every attribute is still one attribute: the parser sees no event handler.
    for _, attrs in _page(document).tags:
        assert not any(name.startswith("on") for name in attrs), attrs
    seen = _seen(document)
    assert HOSTILE in seen  # shown as text, as it came
    assert "Customer " + quote in seen


def test_the_same_report_gives_the_same_bytes() -> None:
    first = render_html(SAMPLE)
    assert render_html(copy.deepcopy(SAMPLE)) == first
    assert render_html(SAMPLE) == first


def test_missing_optional_parts_are_left_out() -> None:
    document = render_html({"v": 1})
    seen = _seen(document)
    assert "SLA report" in seen
    assert "not grouped" in seen
    assert "No targets due in this period." in seen
    sparse = {
        "v": 1,
        "by": [],
        "compliance": [{"group": {}, "tickets": 2, "targets": [{"target": "reply", "due": 2}]}],
        "weekly": [{"week": "not a week", "met": 1}],
        "use": [{"customer": None, "quotas": [{"quota": "calls", "count": 3, "limit": None}]}],
    }
    document = render_html(sparse)
    dash = "\u2013"
    assert _rows(document, "summary") == [["All tickets", "2", "2", "0", "0", dash, "0"]]
    assert _rows(document, "targets") == [["reply", "2", *[dash] * 8]]
    assert _rows(document, "quotas") == [["Calls", "", "3 (no limit)", ""]]
    seen = _seen(document)
    assert "not a week" in seen  # a week label it cannot read, as it came
    assert "No customer" in seen
