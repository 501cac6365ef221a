"""`sla-connector report`: compliance and contract use, from the same decisions the daemon
writes, checked against states built by hand (issue 20).

photoprism's gold plan allows 4 incidents a month (Berlin); its first response is 8 business
hours on the Berlin office's calendar (Mon-Fri 09:00-17:00), the resolution 16 (sev1).
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connector.cli import main
from connector.report.compute import Period, build_report
from connector.report.formats import render_csv, render_table
from connector.sla.contract import Contract
from connector.sla.model import TicketFacts
from connector.state import State
from tests.conftest import MAPPINGS, forget_admin_settings, logging_restored

MARCH = Period(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC), "2026-03")
NOW = datetime(2026, 4, 15, 12, 0, tzinfo=UTC)


def incident(number: int, created: datetime, **extra: Any) -> TicketFacts:
    values: dict[str, Any] = {
        "id": str(number),
        "created_at": created,
        "contract": "photoprism",
        "customer": "101",
        "plan": "gold",
        "severity": "sev1",
        "customer_facts": {"timezone": "Europe/Berlin", "seats": 10},
    }
    return TicketFacts.model_validate({**values, **extra})


def monday(day: int, hour: int, minute: int = 0) -> datetime:
    """A March 2026 instant given in Berlin winter time (UTC+1)."""
    return datetime(2026, 3, day, hour - 1, minute, tzinfo=UTC)


def five_incidents() -> list[TicketFacts]:
    """Five sev1 incidents of one gold customer in March: the fifth is over the quota. The
    first three are answered 2 h, 6 h and 10 business hours after creation (the third too
    late: 8 are promised); the others never."""
    answers = {1: monday(2, 11), 2: monday(2, 15), 3: monday(3, 11)}
    tickets = []
    for number in range(1, 6):
        created = monday(2, 9) + timedelta(minutes=number - 1)
        reply = answers.get(number)
        if reply is not None:
            reply += timedelta(minutes=number - 1)
        tickets.append(
            incident(number, created, events={"first_agent_reply_at": reply} if reply else {})
        )
    return tickets


def test_a_month_of_one_customer_counted_by_hand(contracts: dict[str, Contract]) -> None:
    report = build_report(contracts, five_incidents(), MARCH, ["contract"], now=NOW)
    [use] = report["use"]
    assert (use["contract"], use["customer"]) == ("photoprism", "101")
    [incidents] = use["quotas"]
    # 4 of 4 used; the fifth did not fit: over the quota, using none of it.
    assert (incidents["period"], incidents["count"], incidents["limit"]) == ("2026-03", 4, 4)
    assert incidents["over"] == 1
    assert use["entitlements"]["included"] == 4
    assert use["entitlements"]["over_quota"] == 1

    [group] = report["compliance"]
    assert group["group"] == {"contract": "photoprism"}
    assert group["tickets"] == 5
    first = next(t for t in group["targets"] if t["target"] == "first_response")
    # The over-quota ticket is best effort; of the four due: 2 met, 2 breached (one late,
    # one never answered by 15 April).
    assert (first["due"], first["met"], first["breached"], first["running"]) == (4, 2, 2, 0)
    assert first["best_effort"] == 1
    # Hours to the reply, in business hours: 2, 6 and 10 (the late one too).
    assert first["unit"] == "business hours"
    assert first["median_hours"] == pytest.approx(6.0)
    assert first["p90_hours"] == pytest.approx(9.2)
    worst = [(w["ticket"], w["target"]) for w in group["worst"]]
    assert ("4", "first_response") in worst
    assert ("3", "first_response") in worst
    # A week with breaches and one without on the chart.
    assert {w["week"] for w in report["weekly"]} >= {"2026-W10"}


def test_a_month_is_the_contracts_own(contracts: dict[str, Contract]) -> None:
    """`--month` is a month in the contract's zone, as its quota counts: a ticket created on
    31 March at 23:30 UTC (1 April in Berlin) is April's, and one created 28 February at
    23:30 UTC (1 March in Berlin) is March's."""
    local_march = Period(MARCH.since, MARCH.until, "2026-03", local=True)
    tickets = [
        incident(8, datetime(2026, 2, 28, 23, 30, tzinfo=UTC)),
        *five_incidents()[:3],
        incident(9, datetime(2026, 3, 31, 23, 30, tzinfo=UTC)),
    ]
    report = build_report(contracts, tickets, local_march, ["contract"], now=NOW)
    [use] = report["use"]
    assert {(q["period"], q["count"]) for q in use["quotas"]} == {("2026-03", 4)}
    assert use["entitlements"]["included"] == 4


def test_deleted_and_spam_tickets_and_tickets_after_the_instant_count_nowhere(
    contracts: dict[str, Contract],
) -> None:
    tickets = [
        *five_incidents()[:2],
        incident(6, monday(4, 10), status="deleted"),
        incident(7, monday(4, 11), status="spam"),
        incident(8, monday(20, 10)),  # after the report's instant
    ]
    report = build_report(contracts, tickets, MARCH, ["contract"], now=monday(12, 12))
    assert report["compliance"][0]["tickets"] == 2
    assert report["use"][0]["entitlements"]["included"] == 2


def test_hours_to_the_event_leave_out_the_wait_on_the_customer(
    contracts: dict[str, Contract],
) -> None:
    """Pending for 3 business hours, then answered 5 business hours after creation: the
    support took 2."""
    facts = incident(
        1,
        monday(2, 9),
        status_history=[
            {"at": monday(2, 10), "status": "pending"},
            {"at": monday(2, 13), "status": "open"},
        ],
        events={"first_agent_reply_at": monday(2, 14)},
    )
    report = build_report(contracts, [facts], MARCH, ["contract"], now=NOW)
    [group] = report["compliance"]
    resolution = next(t for t in group["targets"] if t["target"] == "resolution")
    first = next(t for t in group["targets"] if t["target"] == "first_response")
    assert first["median_hours"] == pytest.approx(5.0)  # first response does not pause
    assert resolution["paused_share"] == 1.0  # the resolution's clock stood


def test_a_recurring_target_counts_each_cycle_it_missed(contracts: dict[str, Contract]) -> None:
    """pix4dengine's response is due again after each agent reply: two replies, each 24 h
    after the last, miss two cycles (8 business hours each) and the third still runs."""
    created = datetime(2026, 3, 2, 16, 0, tzinfo=UTC)
    facts = TicketFacts.model_validate(
        {
            "id": "31",
            "created_at": created,
            "contract": "pix4dengine-enterprise",
            "customer": "301",
            "severity": "major",
            "region": "north_america",
            "events": {"agent_replies": [created + timedelta(days=3), created + timedelta(days=6)]},
        }
    )
    report = build_report(contracts, [facts], MARCH, ["contract"], now=NOW)
    [group] = report["compliance"]
    [response] = group["targets"]
    assert response["breached"] >= 2
    assert response["due"] == response["breached"] + response["met"] + response["running"]


def test_groupings_split_the_same_figures(contracts: dict[str, Contract]) -> None:
    tickets = [*five_incidents(), incident(6, monday(4, 10), customer="102", plan="professional")]
    by_customer = build_report(contracts, tickets, MARCH, ["contract", "customer"], now=NOW)
    groups = {tuple(g["group"].values()): g["tickets"] for g in by_customer["compliance"]}
    assert groups == {("photoprism", "101"): 5, ("photoprism", "102"): 1}
    by_contract = build_report(contracts, tickets, MARCH, ["contract"], now=NOW)
    assert by_contract["compliance"][0]["tickets"] == 6


def test_the_text_and_csv_carry_the_same_figures(contracts: dict[str, Contract]) -> None:
    report = build_report(contracts, five_incidents(), MARCH, ["contract"], now=NOW)
    text = render_table(report)
    assert "Incidents per month: 4 of 4 in 2026-03, 1 over" in text
    assert "included 4, over_quota 1" in text
    rows = list(csv.DictReader(io.StringIO(render_csv(report))))
    compliance = [r for r in rows if r["section"] == "compliance"]
    use = [r for r in rows if r["section"] == "use"]
    first = next(r for r in compliance if r["target"] == "first_response")
    assert (first["contract"], first["met"], first["breached"]) == ("photoprism", "2", "2")
    assert (use[0]["count"], use[0]["limit"], use[0]["over"]) == ("4", "4", "1")


def _configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    forget_admin_settings(monkeypatch)
    state = State(tmp_path / "state" / "state.sqlite3")
    for facts in five_incidents():
        state.put_facts(facts)
    state.close()
    config = tmp_path / "config.toml"
    config.write_text(
        f'helpdesk = "zendesk"\nstate_dir = "{tmp_path / "state"}"\n'
        f'helpdesk_mapping = "{MAPPINGS / "helpdesks" / "zendesk.example.yaml"}"\n'
        '[zendesk]\nurl = "https://acme.zendesk.com"\nemail = "bot@acme.example"\n'
    )
    return config


def test_the_command_reads_the_state_and_writes_each_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _configured(tmp_path, monkeypatch)
    args = ["report", "--config", str(config), "--month", "2026-03"]
    with logging_restored():
        assert main([*args, "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["use"][0]["quotas"][0]["count"] == 4
    out = tmp_path / "report.html"
    with logging_restored():
        assert main([*args, "--format", "html", "--out", str(out)]) == 0
    assert out.read_text().lstrip().lower().startswith("<!doctype html")
    assert f"wrote {out}" in capsys.readouterr().out
    with logging_restored():
        assert main([*args, "--by", "customer", "--format", "csv"]) == 0
    assert capsys.readouterr().out.startswith("section,customer,")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--month", "March"], "--month March: expected YYYY-MM"),
        (["--month", "2026-03", "--since", "2026-03-01"], "give it or --since/--until"),
        (["--since", "2026-03-05", "--until", "2026-03-01"], "not after --since"),
        (["--until", "2026-03-01"], "give --since too"),
    ],
)
def test_wrong_periods_are_one_clear_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    message: str,
) -> None:
    config = _configured(tmp_path, monkeypatch)
    with logging_restored():
        assert main(["report", "--config", str(config), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_deciding_customer_by_customer_gives_the_same_report(
    contracts: dict[str, Contract],
) -> None:
    """Quotas, grace calls and capacities count per customer: the report decided one
    customer at a time (as its workers do, to hold less) equals the one decided whole."""
    import sys

    sys.path.insert(0, str(MAPPINGS.parent / "benchmarks"))
    from bench_simulate import ticket_lines

    from connector.report.compute import ReportBuilder, count_into

    tickets = [
        TicketFacts.model_validate_json(line) for line in ticket_lines(3000, 60, in_order=True)
    ]
    year = Period(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC), "H1")
    whole = build_report(contracts, tickets, year, ["contract", "customer"], now=NOW)
    by_customer = sorted(tickets, key=lambda f: (f.customer or "", f.created_at, f.id))
    builder = ReportBuilder(contracts, year, ["contract", "customer"], NOW)
    split = count_into(builder, by_customer, by_customer=True).report()
    assert split == whole
    assert sum(g["tickets"] for g in whole["compliance"]) > 500
