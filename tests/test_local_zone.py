"""Times people read are in the zone of the office or customer a decision was computed for
(issue 18, item 4): notes, `sla compute`, `explain` and the demo.

The zone (`Decision.local_zone`) is, in order: the customer's when the contract counts in it;
the office's when one office serves the ticket; for a union of offices, the customer's zone if
the ticket gives one, else the contract's. Notes give local time and zone only; terminals put
the UTC instant beside it.

Every expected time below is worked by hand from the contract files (pix4d-premium: offices
Mon-Fri 09:00-17:00, Lausanne Europe/Zurich, Denver America/Denver, Tokyo Asia/Tokyo; severe is
2 business hours to first contact, 8 to a workaround; critical 1 and 4). Offsets in 2026:
Denver MST (UTC-7) until Sun 8 March and again from Sun 1 November, MDT (UTC-6) between; Zurich
CET (UTC+1), CEST (UTC+2) from 29 March to Sun 25 October; Tokyo JST (UTC+9) all year;
São Paulo UTC-3 all year (its zone has no letters: shown as UTC-03).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from connector.cli import main
from connector.cli.demo import _when_and_utc
from connector.cli.render import render_decision
from connector.sla.contract import Contract
from connector.sla.engine import decide_with
from connector.sla.explain import due_timeline
from connector.sla.model import Decision, TicketFacts
from connector.timeutil import format_local, format_local_and_utc, zone_abbreviation
from tests.conftest import MAPPINGS

# Relative wording ("in 3 h 12 min", "2 h overdue", "ago") goes stale in a note written once.
RELATIVE = re.compile(r"\bin \d+ ?(h|min|d)\b|\boverdue\b|\bago\b|\bleft\b")


def z(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def facts(**values: Any) -> TicketFacts:
    return TicketFacts.model_validate({"id": "1", **values})


def decide(contracts: dict[str, Contract], now: str, **values: Any) -> Decision:
    return decide_with(contracts, facts(**values), z(now))


def pix4d(
    contracts: dict[str, Contract],
    created: str,
    offices: list[str] | None,
    timezone: str | None = None,
    severity: str = "severe",
) -> Decision:
    customer: dict[str, Any] = {}
    if offices is not None:
        customer["offices"] = offices
    if timezone is not None:
        customer["timezone"] = timezone
    return decide(
        contracts,
        created,
        created_at=created,
        contract="pix4d-premium",
        severity=severity,
        customer_facts=customer,
    )


def compute(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """`sla-connector sla compute ARGV` with the bundled contracts: its output."""
    status = main(["sla", "compute", *argv, "--mappings", str(MAPPINGS)])
    out, err = capsys.readouterr()
    assert (status, err) == (0, ""), err
    return out


# --- one office: its own zone ------------------------------------------------------------------


def test_a_denver_office_ticket_reads_in_denver_time(contracts: dict[str, Contract]) -> None:
    # Created Mon 2 March 23:00Z = 16:00 MST. First contact, 2 bh: Mon 16:00-17:00 (1 h), then
    # Tue 09:00-10:00 MST: due Tue 3 March 10:00 MST = 17:00Z (18:00 CET, what Zurich would say).
    # Workaround, 8 bh: 1 h Mon + 7 h Tue: Tue 16:00 MST = 23:00Z.
    decision = pix4d(contracts, "2026-03-02T23:00:00Z", ["denver"])
    assert decision.local_zone == "America/Denver"
    assert decision.targets["first_contact"].due == z("2026-03-03T17:00:00Z")
    lines = decision.note.splitlines()
    assert lines[1].startswith("first_contact: Tue 2026-03-03 10:00 MST (2 business hours")
    assert lines[2].startswith("workaround: Tue 2026-03-03 16:00 MST (8 business hours")
    assert "CET" not in decision.note
    assert RELATIVE.search(decision.note) is None


def test_sla_compute_prints_the_denver_time_with_utc_beside_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = compute(
        capsys,
        *("--contract", "pix4d-premium", "--severity", "severe", "--office", "denver"),
        *("--created", "2026-03-02T23:00:00Z", "--now", "2026-03-02T23:01:00Z"),
    )
    assert "  first_contact  running     Tue 2026-03-03 10:00 MST (2026-03-03T17:00:00Z)\n" in out
    assert "  workaround     running     Tue 2026-03-03 16:00 MST (2026-03-03T23:00:00Z)\n" in out
    # The next change: at risk after 1 h 30 of 2 h, Tue 09:30 MST.
    assert "  changes at Tue 2026-03-03 09:30 MST (2026-03-03T16:30:00Z)\n" in out
    assert "first_contact: Tue 2026-03-03 10:00 MST (2 business hours, Denver office)" in out
    assert "CET" not in out


def test_a_tokyo_office_ticket_reads_in_tokyo_time(
    contracts: dict[str, Contract], capsys: pytest.CaptureFixture[str]
) -> None:
    # Created Mon 2 March 00:00Z = 09:00 JST. Critical: first contact 1 bh, 10:00 JST = 01:00Z;
    # workaround 4 bh, 13:00 JST = 04:00Z.
    decision = pix4d(contracts, "2026-03-02T00:00:00Z", ["tokyo"], severity="critical")
    assert decision.local_zone == "Asia/Tokyo"
    assert "first_contact: Mon 2026-03-02 10:00 JST (" in decision.note
    assert "workaround: Mon 2026-03-02 13:00 JST (" in decision.note
    out = compute(
        capsys,
        *("--contract", "pix4d-premium", "--severity", "critical", "--office", "tokyo"),
        *("--created", "2026-03-02T00:00:00Z", "--now", "2026-03-02T00:00:00Z"),
    )
    assert "Mon 2026-03-02 10:00 JST (2026-03-02T01:00:00Z)" in out
    assert "Mon 2026-03-02 13:00 JST (2026-03-02T04:00:00Z)" in out


def test_a_pacific_region_ticket_reads_in_pacific_time(contracts: dict[str, Contract]) -> None:
    # pix4dengine-enterprise, north_america -> the Pacific office. Created Mon 2 March 17:00Z =
    # 09:00 PST; critical, 2 bh: due 11:00 PST = 19:00Z (20:00 CET before this change).
    decision = decide(
        contracts,
        "2026-03-02T17:00:00Z",
        created_at="2026-03-02T17:00:00Z",
        contract="pix4dengine-enterprise",
        severity="critical",
        region="north_america",
        customer_facts={"timezone": "Australia/Perth"},
    )
    assert decision.local_zone == "America/Los_Angeles"
    assert "response: Mon 2026-03-02 11:00 PST (" in decision.note


def test_a_customer_without_offices_reads_in_the_default_offices_time(
    contracts: dict[str, Contract],
) -> None:
    # Defaulted to Lausanne; Mon 2 March 08:00Z = 09:00 CET, critical 1 bh: 10:00 CET.
    decision = pix4d(contracts, "2026-03-02T08:00:00Z", None, "Asia/Tokyo", severity="critical")
    assert decision.local_zone == "Europe/Zurich"
    assert "first_contact: Mon 2026-03-02 10:00 CET (" in decision.note


# --- several offices: the customer's zone, else the contract's --------------------------------


@pytest.mark.parametrize(
    ("timezone", "local_zone", "shown"),
    [
        ("America/Denver", "America/Denver", "Mon 2026-03-02 18:00 MST"),
        ("America/Sao_Paulo", "America/Sao_Paulo", "Mon 2026-03-02 22:00 UTC-03"),
        (None, "Europe/Zurich", "Tue 2026-03-03 02:00 CET"),
    ],
)
def test_a_union_of_offices_reads_in_the_customers_zone_else_the_contracts(
    contracts: dict[str, Contract], timezone: str | None, local_zone: str, shown: str
) -> None:
    # Denver + Tokyo, created Mon 2 March 23:00Z (16:00 MST). Denver is open until 00:00Z,
    # Tokyo opens at 00:00Z (Tue 09:00 JST): first contact, 2 bh, due 01:00Z.
    decision = pix4d(contracts, "2026-03-02T23:00:00Z", ["denver", "tokyo"], timezone)
    assert decision.targets["first_contact"].due == z("2026-03-03T01:00:00Z")
    assert decision.local_zone == local_zone
    assert f"first_contact: {shown} (2 business hours, Denver office + Tokyo office)" in (
        decision.note
    )


# --- zones that were right already ------------------------------------------------------------


def test_a_contract_that_counts_in_the_customers_zone_is_unchanged(
    contracts: dict[str, Contract],
) -> None:
    # pixelz inquiry, 5 bh on the customer's whole weekdays: Mon 2 March 04:30Z = 10:00 IST,
    # due 15:00 IST = 09:30Z.
    decision = decide(
        contracts,
        "2026-03-02T04:30:00Z",
        created_at="2026-03-02T04:30:00Z",
        contract="pixelz",
        category="inquiry",
        customer_facts={"timezone": "Asia/Kolkata"},
    )
    assert decision.local_zone == "Asia/Kolkata"
    assert "first_response: Mon 2026-03-02 15:00 IST (" in decision.note


def test_a_fixed_office_and_a_contract_without_calendar_keep_their_zones(
    contracts: dict[str, Contract],
) -> None:
    photoprism = decide(
        contracts,
        "2026-03-02T08:15:00Z",
        created_at="2026-03-02T08:15:00Z",
        contract="photoprism",
        plan="gold",
        severity="sev1",
        customer_facts={"timezone": "Asia/Tokyo"},
    )
    assert photoprism.local_zone == "Europe/Berlin"
    assert "first_response: Tue 2026-03-03 09:15 CET (" in photoprism.note
    # solidxperts has no calendar: contract years and notes use the contract's zone.
    solidxperts = decide(
        contracts,
        "2026-03-02T15:00:00Z",
        created_at="2026-03-02T15:00:00Z",
        contract="solidxperts",
        category="installation",
        customer_facts={"timezone": "Asia/Tokyo", "active": True, "seats": 2},
    )
    assert solidxperts.local_zone == "America/Toronto"


# --- daylight saving time: the zones switch on different Sundays ------------------------------


def test_a_denver_due_after_the_us_switch_reads_right_to_the_minute(
    contracts: dict[str, Contract], capsys: pytest.CaptureFixture[str]
) -> None:
    # Zurich went back to CET on Sun 25 October, Denver goes back to MST on Sun 1 November.
    # Created Fri 30 October 22:17Z = 16:17 MDT (UTC-6). First contact, 2 bh: Fri 16:17-17:00
    # (43 min), 1 h 17 min from Mon 2 November 09:00 MST (UTC-7, 16:00Z): 10:17 MST = 17:17Z.
    # Workaround, 8 bh: 43 min Fri, 7 h 17 min Mon: 16:17 MST = 23:17Z.
    decision = pix4d(contracts, "2026-10-30T22:17:00Z", ["denver"])
    assert decision.targets["first_contact"].due == z("2026-11-02T17:17:00Z")
    assert decision.targets["workaround"].due == z("2026-11-02T23:17:00Z")
    assert "first_contact: Mon 2026-11-02 10:17 MST (" in decision.note
    assert "workaround: Mon 2026-11-02 16:17 MST (" in decision.note
    out = compute(
        capsys,
        *("--contract", "pix4d-premium", "--severity", "severe", "--office", "denver"),
        *("--created", "2026-10-30T22:17:00Z", "--now", "2026-10-30T22:18:00Z"),
    )
    assert "Mon 2026-11-02 10:17 MST (2026-11-02T17:17:00Z)" in out
    assert "Mon 2026-11-02 16:17 MST (2026-11-02T23:17:00Z)" in out


def test_between_the_two_switches_denver_still_reads_mdt(contracts: dict[str, Contract]) -> None:
    # Created Tue 27 October 15:00Z = 09:00 MDT (16:00 CET: Zurich has switched, Denver not).
    # Critical, 1 bh: 10:00 MDT = 16:00Z.
    decision = pix4d(contracts, "2026-10-27T15:00:00Z", ["denver"], severity="critical")
    assert decision.targets["first_contact"].due == z("2026-10-27T16:00:00Z")
    assert "first_contact: Tue 2026-10-27 10:00 MDT (" in decision.note


# --- explain, the demo, and the zone's name ----------------------------------------------------


def test_explain_shows_the_periods_and_the_due_in_the_decisions_zone(
    contracts: dict[str, Contract],
) -> None:
    ticket = facts(
        created_at="2026-03-02T23:00:00Z",
        contract="pix4d-premium",
        severity="severe",
        customer_facts={"offices": ["denver"]},
    )
    decision = decide_with(contracts, ticket, z("2026-03-02T23:01:00Z"))
    lines = due_timeline(decision, contracts["pix4d-premium"], ticket)
    assert "    clock starts Mon 2026-03-02 16:00 MST (ticket created)" in lines
    assert "    open Mon 2026-03-02 16:00 MST to 17:00  +1h00 = 1h00" in lines
    assert "    open Tue 2026-03-03 09:00 MST to 10:00  +1h00 = 2h00" in lines
    assert "    due Tue 2026-03-03 10:00 MST (2026-03-03T17:00:00Z)" in lines
    rendered = render_decision(decision, contracts["pix4d-premium"])
    assert "Tue 2026-03-03 10:00 MST (2026-03-03T17:00:00Z)" in rendered


def test_the_demo_puts_utc_beside_a_local_due() -> None:
    zurich, denver = ZoneInfo("Europe/Zurich"), ZoneInfo("America/Denver")
    assert _when_and_utc(z("2026-12-07T16:00:00Z"), zurich) == "Mon 7 Dec 17:00 CET (16:00 UTC)"
    # Mon 17:00 MST is already Tuesday in UTC: the UTC weekday is named.
    assert _when_and_utc(z("2026-12-08T00:00:00Z"), denver) == "Mon 7 Dec 17:00 MST (Tue 00:00 UTC)"
    # Nothing beside a time already in UTC.
    assert _when_and_utc(z("2026-12-07T16:00:00Z"), UTC) == "Mon 7 Dec 16:00 UTC"


@pytest.mark.parametrize(
    ("zone", "shown"),
    [
        ("Asia/Tokyo", "JST"),
        ("America/Denver", "MST"),
        ("America/Sao_Paulo", "UTC-03"),  # tzdata has `-03`
        ("Asia/Dubai", "UTC+04"),  # `+04`
        ("Asia/Kathmandu", "UTC+05:45"),  # `+0545`
        ("UTC", "UTC"),
    ],
)
def test_a_zone_without_letters_is_named_from_utc(zone: str, shown: str) -> None:
    instant = z("2026-12-07T16:00:00Z")
    assert zone_abbreviation(instant.astimezone(ZoneInfo(zone))) == shown
    assert format_local(instant, ZoneInfo(zone)).endswith(f" {shown}")
    assert format_local_and_utc(instant, ZoneInfo(zone)).endswith(
        f" {shown} (2026-12-07T16:00:00Z)"
    )


def test_the_note_and_format_local_name_a_bare_offset_zone_alike(
    contracts: dict[str, Contract],
) -> None:
    # pixelz in São Paulo (UTC-3): the engine's own quick formatting agrees with format_local.
    decision = decide(
        contracts,
        "2026-03-02T13:00:00Z",
        created_at="2026-03-02T13:00:00Z",  # 10:00 UTC-03; inquiry 5 bh: 15:00 = 18:00Z
        contract="pixelz",
        category="inquiry",
        customer_facts={"timezone": "America/Sao_Paulo"},
    )
    due = decision.targets["first_response"].due
    assert due is not None
    assert due == z("2026-03-02T18:00:00Z")
    assert f"first_response: {format_local(due, ZoneInfo('America/Sao_Paulo'))} (" in (
        decision.note
    )
    assert "first_response: Mon 2026-03-02 15:00 UTC-03 (" in decision.note
