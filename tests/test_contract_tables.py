"""The SLA engine against hand-worked due instants for the bundled contracts (contracts.md §3).

Every expected instant below was worked out by hand from contracts.md, the 2026 holiday lists
of the `holidays` package and the 2026 DST dates; the comment next to each case shows the
arithmetic. Nothing here asks the engine (or the calendar) what the answer should be.

Reference facts used throughout (2026):
- Mon 2 Mar, Fri 6 Mar, Fri 27 Mar, Fri 23 Oct, Fri 30 Oct are the weekdays they say.
- EU DST: Sun 29 Mar (CET +1 -> CEST +2), Sun 25 Oct (CEST -> CET).
- US DST: Sun 8 Mar (MST -7 -> MDT -6, PST -8 -> PDT -7, EST -5 -> EDT -4), Sun 1 Nov back.
- Egypt DST: Fri 24 Apr 00:00 (EET +2 -> EEST +3), Thu 29 Oct 24:00 back.
- DE-BE: Good Friday 3 Apr, Easter Monday 6 Apr, Labour Day Fri 1 May, Ascension 14 May.
- CH (national): 1 Jan, Ascension Thu 14 May, 1 Aug (a Saturday), 25 Dec.
- CH-VD adds: Berchtold Fri 2 Jan, Good Friday, Easter Monday, Whit Monday 25 May,
  Prayer Monday 21 Sep.
- US federal: Independence Day observed Fri 3 Jul, Juneteenth Fri 19 Jun, Thanksgiving 26 Nov.
- JP: Vernal Equinox Day Fri 20 Mar.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from connector.mappingfiles import load_contracts
from connector.sla.engine import decide_with
from connector.sla.model import Decision, TicketFacts
from connector.timeutil import format_instant, parse_instant

CONTRACTS = load_contracts(Path(__file__).resolve().parent.parent / "mappings")


def ticket(contract: str, created: str, **fields: Any) -> TicketFacts:
    """Ticket facts with sensible empty defaults; `fields` are TicketFacts fields."""
    data: dict[str, Any] = {"id": "1", "created_at": created, "contract": contract}
    data.update(fields)
    return TicketFacts.model_validate(data)


def decide(contract: str, created: str, now: str | None = None, **fields: Any) -> Decision:
    """The decision at `now` (default: the creation instant)."""
    facts = ticket(contract, created, **fields)
    return decide_with(CONTRACTS, facts, now=parse_instant(now or created))


def due(decision: Decision, target: str) -> str | None:
    """A target's due instant as `...Z` text, or None."""
    value = decision.targets[target].due
    return None if value is None else format_instant(value)


def photoprism(
    created: str, plan: str = "gold", severity: str = "sev1", now: str | None = None, **kw: Any
) -> Decision:
    return decide("photoprism", created, now, plan=plan, severity=severity, **kw)


def pix4d(
    created: str,
    severity: str = "critical",
    offices: list[str] | None = None,
    now: str | None = None,
    **kw: Any,
) -> Decision:
    return decide(
        "pix4d-premium",
        created,
        now,
        severity=severity,
        customer_facts={"offices": ["lausanne"] if offices is None else offices},
        **kw,
    )


def engine(
    created: str,
    severity: str = "critical",
    region: str | None = "europe",
    now: str | None = None,
    **kw: Any,
) -> Decision:
    return decide("pix4dengine-enterprise", created, now, severity=severity, region=region, **kw)


def pixelz(
    created: str,
    category: str = "order",
    tz: str | None = "Europe/Paris",
    *,
    now: str | None = None,
    images: int = 10,
    expedite: bool = False,
    **kw: Any,
) -> Decision:
    fields: dict[str, Any] = {"category": category, "customer_facts": {"timezone": tz}}
    if category == "order":
        fields["quantities"] = {"images": images}
        fields["flags"] = {"expedite": expedite}
    return decide("pixelz", created, now, **fields, **kw)


# =============================================================================================
# photoprism: every cell of the plan x severity table
# =============================================================================================

# Created Mon 2026-03-02 08:15Z = 09:15 CET (Berlin). Mon 2..Fri 6, Mon 9..Fri 13,
# Mon 16..Fri 20 March hold no DE-BE holiday (Women's Day 8 Mar is a Sunday); all CET.
# From Mon 09:15, every 8 business hours land on the next business day at 09:15 CET = 08:15Z.
PP_CREATED = "2026-03-02T08:15:00Z"
PP_BE = None  # best effort: no due instant
PP_8BH = "2026-03-03T08:15:00Z"  # Mon 09:15 + 7h45 -> 17:00, +15 min Tue -> Tue 09:15 CET
PP_16BH = "2026-03-04T08:15:00Z"  # one more business day -> Wed 09:15 CET
PP_24BH = "2026-03-05T08:15:00Z"  # -> Thu 09:15 CET (also 3 bd = 24 bh)
PP_32BH = "2026-03-06T08:15:00Z"  # -> Fri 09:15 CET
PP_7BD = "2026-03-11T08:15:00Z"  # 56 bh: Tue3 Wed4 Thu5 Fri6 Mon9 Tue10 Wed11 09:15 CET
# 112 bh: 7 bd as above to Wed 11, then Thu12 Fri13 Mon16 Tue17 Wed18 Thu19 Fri20 09:15 CET
PP_14BD = "2026-03-20T08:15:00Z"

PHOTOPRISM_TABLE = [
    # plan, severity, first_response, resolution
    ("professional", "sev1", PP_BE, PP_BE),
    ("professional", "sev2", PP_BE, PP_BE),
    ("professional", "sev3", PP_BE, PP_BE),
    ("professional", "sev4", PP_24BH, PP_BE),
    ("enterprise", "sev1", PP_8BH, PP_32BH),
    ("enterprise", "sev2", PP_16BH, PP_7BD),
    ("enterprise", "sev3", PP_24BH, PP_14BD),
    ("enterprise", "sev4", PP_24BH, PP_BE),
    ("gold", "sev1", PP_8BH, PP_16BH),
    ("gold", "sev2", PP_8BH, PP_24BH),  # 3 bd = 24 bh
    ("gold", "sev3", PP_8BH, PP_7BD),
    ("gold", "sev4", PP_24BH, PP_BE),
]


@pytest.mark.parametrize(
    ("plan", "severity", "target", "expected"),
    [
        pytest.param(plan, sev, target, exp, id=f"{plan}-{sev}-{target}")
        for plan, sev, first, resolution in PHOTOPRISM_TABLE
        for target, exp in (("first_response", first), ("resolution", resolution))
    ],
)
def test_photoprism_table(plan: str, severity: str, target: str, expected: str | None) -> None:
    d = photoprism(PP_CREATED, plan, severity)
    assert set(d.targets) == {"first_response", "resolution"}
    result = d.targets[target]
    assert due(d, target) == expected
    assert result.best_effort is (expected is None)
    assert result.state == ("best_effort" if expected is None else "running")


@pytest.mark.parametrize(
    ("severity", "priority"),
    [("sev1", "urgent"), ("sev2", "high"), ("sev3", "normal"), ("sev4", "low")],
)
@pytest.mark.parametrize("plan", ["professional", "enterprise", "gold"])
def test_photoprism_priority_and_tags(plan: str, severity: str, priority: str) -> None:
    d = photoprism(PP_CREATED, plan, severity)
    assert d.priority == priority
    assert {"sla_photoprism", f"sla_plan_{plan}", f"sla_{severity}"} <= set(d.tags)
    assert d.problem is None
    assert (d.severity_submitted, d.severity, d.plan) == (severity, severity, plan)


@pytest.mark.parametrize(
    ("created", "plan", "severity", "target", "expected"),
    [
        # Mon 09:00 CET + 8 bh = Mon 17:00 CET exactly (the close, not Tue 09:00) = 16:00Z
        pytest.param(
            "2026-03-02T08:00:00Z",
            "gold",
            "sev1",
            "first_response",
            "2026-03-02T16:00:00Z",
            id="close-8bh-mon-1700",
        ),
        # Mon 09:00 CET + 16 bh = Tue 17:00 CET = 16:00Z
        pytest.param(
            "2026-03-02T08:00:00Z",
            "enterprise",
            "sev2",
            "first_response",
            "2026-03-03T16:00:00Z",
            id="close-16bh-tue-1700",
        ),
        # Mon 09:00 CET + 3 bd (24 bh) = Wed 17:00 CET = 16:00Z
        pytest.param(
            "2026-03-02T08:00:00Z",
            "gold",
            "sev2",
            "resolution",
            "2026-03-04T16:00:00Z",
            id="close-3bd-wed-1700",
        ),
        # Fri 6 Mar 16:00 CET: 1h to 17:00, 7h left; Mon 9 Mar 09:00 + 7h = 16:00 CET = 15:00Z
        pytest.param(
            "2026-03-06T15:00:00Z",
            "gold",
            "sev1",
            "first_response",
            "2026-03-09T15:00:00Z",
            id="friday-afternoon",
        ),
        # Sat 7 Mar 12:00Z closed -> clock starts Mon 9 Mar 09:00 CET; +8 bh = 17:00 CET = 16:00Z
        pytest.param(
            "2026-03-07T12:00:00Z",
            "gold",
            "sev1",
            "first_response",
            "2026-03-09T16:00:00Z",
            id="created-saturday",
        ),
        # Mon 2 Mar 07:00 CET (before opening) -> start 09:00 CET; +8 bh = 17:00 CET = 16:00Z
        pytest.param(
            "2026-03-02T06:00:00Z",
            "gold",
            "sev1",
            "first_response",
            "2026-03-02T16:00:00Z",
            id="created-before-opening",
        ),
        # Tue 3 Mar 17:00:00 CET is closed (half-open) -> start Wed 09:00; +8 = Wed 17:00 CET
        pytest.param(
            "2026-03-03T16:00:00Z",
            "gold",
            "sev1",
            "first_response",
            "2026-03-04T16:00:00Z",
            id="created-exactly-at-close",
        ),
        # Thu 2 Apr 16:00 CEST: 1h; Fri 3 Apr Good Friday, weekend, Mon 6 Apr Easter Monday;
        # Tue 7 Apr 09:00 + 7h = 16:00 CEST = 14:00Z
        pytest.param(
            "2026-04-02T14:00:00Z",
            "gold",
            "sev1",
            "first_response",
            "2026-04-07T14:00:00Z",
            id="berlin-easter",
        ),
        # Fri 3 Apr (Good Friday) 10:00 CEST: closed until Tue 7 Apr 09:00 CEST (Easter Mon);
        # +8 bh = 17:00 CEST = 15:00Z
        pytest.param(
            "2026-04-03T08:00:00Z",
            "gold",
            "sev1",
            "first_response",
            "2026-04-07T15:00:00Z",
            id="berlin-created-on-holiday",
        ),
        # Thu 30 Apr 10:00 CEST: 7h, 9 left; Fri 1 May Labour Day (DE-BE); Mon 4 May 8h, 1 left;
        # Tue 5 May 09:00 + 1h = 10:00 CEST = 08:00Z
        pytest.param(
            "2026-04-30T08:00:00Z",
            "gold",
            "sev1",
            "resolution",
            "2026-05-05T08:00:00Z",
            id="berlin-labour-day",
        ),
        # Fri 27 Mar 15:00 CET: 2h, 6 left; DST Sun 29 Mar; Mon 30 Mar 09:00 CEST + 6h
        # = 15:00 CEST = 13:00Z
        pytest.param(
            "2026-03-27T14:00:00Z",
            "enterprise",
            "sev1",
            "first_response",
            "2026-03-30T13:00:00Z",
            id="berlin-dst-spring",
        ),
        # Fri 27 Mar 15:00 CET, 7 bd = 56 bh: Fri 2 (54), Mon 30 (46), Tue 31 (38), Wed 1 Apr
        # (30), Thu 2 Apr (22), Good Friday and Easter Monday closed, Tue 7 (14), Wed 8 (6),
        # Thu 9 Apr 09:00 + 6h = 15:00 CEST = 13:00Z
        pytest.param(
            "2026-03-27T14:00:00Z",
            "enterprise",
            "sev2",
            "resolution",
            "2026-04-09T13:00:00Z",
            id="berlin-7bd-dst-and-easter",
        ),
        # Fri 23 Oct 15:00 CEST: 2h, 6 left; DST ends Sun 25 Oct; Mon 26 Oct 09:00 CET + 6h
        # = 15:00 CET = 14:00Z
        pytest.param(
            "2026-10-23T13:00:00Z",
            "gold",
            "sev1",
            "first_response",
            "2026-10-26T14:00:00Z",
            id="berlin-dst-autumn",
        ),
    ],
)
def test_photoprism_due(created: str, plan: str, severity: str, target: str, expected: str) -> None:
    assert due(photoprism(created, plan, severity), target) == expected


# =============================================================================================
# pix4d-premium: every cell of the severity table (Lausanne), offices and unions
# =============================================================================================

# Created Mon 2 Mar 10:30 CET = 09:30Z at Lausanne; 6h30 left on Monday, all CET.
P4_CREATED = "2026-03-02T09:30:00Z"

PIX4D_TABLE = [
    # severity, target, expected, arithmetic
    ("critical", "first_contact", "2026-03-02T10:30:00Z"),  # 10:30 + 1h = 11:30 CET
    ("critical", "workaround", "2026-03-02T13:30:00Z"),  # 10:30 + 4h = 14:30 CET
    ("severe", "first_contact", "2026-03-02T11:30:00Z"),  # 10:30 + 2h = 12:30 CET
    ("severe", "workaround", "2026-03-03T09:30:00Z"),  # 6.5h Mon + 1.5h -> Tue 10:30 CET
    ("minor", "first_contact", "2026-03-02T13:30:00Z"),  # 10:30 + 4h = 14:30 CET
    ("minor", "workaround", "2026-03-03T13:30:00Z"),  # 6.5h Mon + 5.5h -> Tue 14:30 CET
    ("information", "first_contact", "2026-03-03T09:30:00Z"),  # 6.5 + 1.5 -> Tue 10:30 CET
    ("information", "workaround", "2026-03-05T09:30:00Z"),  # 6.5 + 8 + 8 + 1.5 -> Thu 10:30
]


@pytest.mark.parametrize(
    ("severity", "target", "expected"),
    [pytest.param(*row, id=f"{row[0]}-{row[1]}") for row in PIX4D_TABLE],
)
def test_pix4d_table(severity: str, target: str, expected: str) -> None:
    d = pix4d(P4_CREATED, severity)
    assert set(d.targets) == {"first_contact", "workaround"}
    assert due(d, target) == expected
    assert d.targets[target].state == "running"


@pytest.mark.parametrize(
    ("severity", "priority"),
    [("critical", "urgent"), ("severe", "high"), ("minor", "normal"), ("information", "low")],
)
def test_pix4d_priority_and_tags(severity: str, priority: str) -> None:
    d = pix4d(P4_CREATED, severity)
    assert d.priority == priority
    assert {"sla_pix4d-premium", f"sla_{severity}"} <= set(d.tags)
    assert "sla_defaulted" not in d.tags


@pytest.mark.parametrize(
    ("created", "severity", "offices", "target", "expected"),
    [
        # Denver Mon 2 Mar 09:00 MST = 16:00Z; +1h = 10:00 MST = 17:00Z
        pytest.param(
            "2026-03-02T16:00:00Z",
            "critical",
            ["denver"],
            "first_contact",
            "2026-03-02T17:00:00Z",
            id="denver-only",
        ),
        # Tokyo Mon 2 Mar 09:00 JST = 00:00Z; +1h = 10:00 JST = 01:00Z
        pytest.param(
            "2026-03-02T00:00:00Z",
            "critical",
            ["tokyo"],
            "first_contact",
            "2026-03-02T01:00:00Z",
            id="tokyo-only",
        ),
        # Lausanne 2 Mar 07:00Z = 08:00 CET is closed for Lausanne alone -> 09:00 CET + 1h
        # = 10:00 CET = 09:00Z
        pytest.param(
            "2026-03-02T07:00:00Z",
            "critical",
            ["lausanne"],
            "first_contact",
            "2026-03-02T09:00:00Z",
            id="lausanne-before-opening",
        ),
        # Union lausanne+tokyo in winter: Tokyo 00-08Z, Lausanne 08-16Z -> open 00-16Z.
        # Mon 07:00Z (16:00 JST): 07-16Z = 9h, 15 left; Tue 3 Mar 00:00Z + 15h = 15:00Z
        pytest.param(
            "2026-03-02T07:00:00Z",
            "information",
            ["lausanne", "tokyo"],
            "workaround",
            "2026-03-03T15:00:00Z",
            id="union-lausanne-tokyo-winter",
        ),
        # Union lausanne+tokyo in summer: Tokyo 00-08Z, Lausanne (CEST) 07-15Z, overlap 07-08Z
        # counts once -> open 00-15Z. Mon 1 Jun 06:00Z + 8h = 14:00Z (double counting: 12:00Z)
        pytest.param(
            "2026-06-01T06:00:00Z",
            "information",
            ["lausanne", "tokyo"],
            "first_contact",
            "2026-06-01T14:00:00Z",
            id="union-overlap-once-8h",
        ),
        # Same ticket, 24h: Mon 06-15Z = 9h, 15 left; Tue 2 Jun 00:00Z + 15h = 15:00Z, exactly
        # Lausanne's 17:00 CEST close
        pytest.param(
            "2026-06-01T06:00:00Z",
            "information",
            ["lausanne", "tokyo"],
            "workaround",
            "2026-06-02T15:00:00Z",
            id="union-overlap-once-24h-at-close",
        ),
        # Union lausanne+denver between the US and EU DST changes: Lausanne CET 08-16Z, Denver
        # MDT 15-23Z; overlap 15-16Z counts once. Tue 10 Mar 14:00Z: open 14-23Z continuously;
        # +8h = 22:00Z (double counting would give 21:00Z)
        pytest.param(
            "2026-03-10T14:00:00Z",
            "information",
            ["lausanne", "denver"],
            "first_contact",
            "2026-03-10T22:00:00Z",
            id="union-lausanne-denver-overlap-once",
        ),
        # All three offices, Fri 6 Mar 23:30Z (Denver 16:30 MST): 0.5h to Denver's close at
        # Sat 00:00Z, 23.5 left. Mon 9 Mar (after US DST): Tokyo 00-08Z, Lausanne CET 08-16Z,
        # Denver MDT 15-23Z -> 00-23Z = 23h, 0.5 left; Tue 10 Mar Tokyo 00:00Z + 0.5 = 00:30Z
        pytest.param(
            "2026-03-06T23:30:00Z",
            "information",
            ["lausanne", "denver", "tokyo"],
            "workaround",
            "2026-03-10T00:30:00Z",
            id="union-three-offices-us-dst",
        ),
        # Union lausanne+tokyo with Tokyo's Vernal Equinox Day Fri 20 Mar: Thu 19 Mar 07:00Z:
        # 07-16Z = 9h (15 left); Fri: Tokyo closed, Lausanne 08-16Z = 8h (7 left);
        # Mon 23 Mar Tokyo 00:00Z + 7h = 07:00Z
        pytest.param(
            "2026-03-19T07:00:00Z",
            "information",
            ["lausanne", "tokyo"],
            "workaround",
            "2026-03-23T07:00:00Z",
            id="union-one-office-on-holiday",
        ),
        # Lausanne, Ascension Thu 14 May: Wed 13 May 16:00 CEST: 1h, 3 left; Fri 15 May
        # 09:00 + 3h = 12:00 CEST = 10:00Z
        pytest.param(
            "2026-05-13T14:00:00Z",
            "critical",
            ["lausanne"],
            "workaround",
            "2026-05-15T10:00:00Z",
            id="lausanne-ascension",
        ),
        # Lausanne uses national holidays only: Good Friday 3 Apr is open. Thu 2 Apr 16:00 CEST:
        # 1h, 3 left; Fri 3 Apr 09:00 + 3h = 12:00 CEST = 10:00Z
        pytest.param(
            "2026-04-02T14:00:00Z",
            "critical",
            ["lausanne"],
            "workaround",
            "2026-04-03T10:00:00Z",
            id="lausanne-good-friday-open",
        ),
        # Denver, Independence Day observed Fri 3 Jul: Thu 2 Jul 16:00 MDT: 1h, 3 left;
        # Mon 6 Jul 09:00 + 3h = 12:00 MDT = 18:00Z
        pytest.param(
            "2026-07-02T22:00:00Z",
            "critical",
            ["denver"],
            "workaround",
            "2026-07-06T18:00:00Z",
            id="denver-independence-observed",
        ),
        # Denver, Thanksgiving Thu 26 Nov: Wed 25 Nov 16:00 MST: 1h, 1 left; Fri 27 Nov 09:00
        # + 1h = 10:00 MST = 17:00Z
        pytest.param(
            "2026-11-25T23:00:00Z",
            "severe",
            ["denver"],
            "first_contact",
            "2026-11-27T17:00:00Z",
            id="denver-thanksgiving",
        ),
        # Tokyo, Vernal Equinox Day Fri 20 Mar: Thu 19 Mar 16:00 JST: 1h, 3 left; Mon 23 Mar
        # 09:00 + 3h = 12:00 JST = 03:00Z
        pytest.param(
            "2026-03-19T07:00:00Z",
            "critical",
            ["tokyo"],
            "workaround",
            "2026-03-23T03:00:00Z",
            id="tokyo-vernal-equinox",
        ),
        # Zurich spring DST: Fri 27 Mar 15:00 CET: 2h, 2 left; Mon 30 Mar 09:00 CEST + 2h
        # = 11:00 CEST = 09:00Z
        pytest.param(
            "2026-03-27T14:00:00Z",
            "critical",
            ["lausanne"],
            "workaround",
            "2026-03-30T09:00:00Z",
            id="lausanne-dst-spring",
        ),
        # Zurich autumn DST: Fri 23 Oct 15:00 CEST: 2h, 2 left; Mon 26 Oct 09:00 CET + 2h
        # = 11:00 CET = 10:00Z
        pytest.param(
            "2026-10-23T13:00:00Z",
            "critical",
            ["lausanne"],
            "workaround",
            "2026-10-26T10:00:00Z",
            id="lausanne-dst-autumn",
        ),
        # Denver spring DST: Fri 6 Mar 15:00 MST (22:00Z): 2h, 2 left; Mon 9 Mar 09:00 MDT
        # + 2h = 11:00 MDT = 17:00Z
        pytest.param(
            "2026-03-06T22:00:00Z",
            "critical",
            ["denver"],
            "workaround",
            "2026-03-09T17:00:00Z",
            id="denver-dst-spring",
        ),
        # Denver autumn DST: Fri 30 Oct 15:00 MDT (21:00Z): 2h, 2 left; Mon 2 Nov 09:00 MST
        # + 2h = 11:00 MST = 18:00Z
        pytest.param(
            "2026-10-30T21:00:00Z",
            "critical",
            ["denver"],
            "workaround",
            "2026-11-02T18:00:00Z",
            id="denver-dst-autumn",
        ),
    ],
)
def test_pix4d_due(
    created: str, severity: str, offices: list[str], target: str, expected: str
) -> None:
    d = pix4d(created, severity, offices)
    assert due(d, target) == expected
    assert "sla_defaulted" not in d.tags


@pytest.mark.parametrize("offices", [None, []], ids=["missing", "empty"])
def test_pix4d_missing_offices_default_to_lausanne(offices: list[str] | None) -> None:
    # Lausanne alone: Mon 2 Mar 07:00Z = 08:00 CET closed -> 09:00 CET + 1h = 10:00 CET = 09:00Z
    # (with Tokyo or Denver the clock would already be running)
    facts = ticket(
        "pix4d-premium",
        "2026-03-02T07:00:00Z",
        severity="critical",
        customer_facts={"offices": offices},
    )
    d = decide_with(CONTRACTS, facts, now=parse_instant("2026-03-02T07:00:00Z"))
    assert due(d, "first_contact") == "2026-03-02T09:00:00Z"
    assert "sla_defaulted" in d.tags
    assert d.problem is None


def test_pix4d_severity_override_wins() -> None:
    # Submitted as information (8 bh), reclassified critical (1 bh):
    # Mon 2 Mar 10:30 CET + 1h = 11:30 CET = 10:30Z; workaround 4h -> 14:30 CET = 13:30Z
    d = pix4d(P4_CREATED, "information", severity_override="critical")
    assert (d.severity_submitted, d.severity) == ("information", "critical")
    assert due(d, "first_contact") == "2026-03-02T10:30:00Z"
    assert due(d, "workaround") == "2026-03-02T13:30:00Z"
    assert d.priority == "urgent"
    assert "sla_critical" in d.tags


@pytest.mark.parametrize(
    ("workaround_at", "state"),
    [
        # critical workaround due Mon 2 Mar 14:30 CET = 13:30Z (see the table)
        ("2026-03-02T13:30:00Z", "achieved"),  # exactly at due
        ("2026-03-02T13:30:01Z", "breached"),  # one second late
    ],
)
def test_pix4d_workaround_event(workaround_at: str, state: str) -> None:
    d = pix4d(
        P4_CREATED,
        now="2026-03-02T15:00:00Z",
        events={"workaround_at": workaround_at, "first_agent_reply_at": "2026-03-02T10:00:00Z"},
    )
    assert d.targets["workaround"].state == state
    assert d.targets["first_contact"].state == "achieved"  # 10:00Z <= 10:30Z


# =============================================================================================
# pix4dengine-enterprise: severity table per region, holidays, DST, recurring response
# =============================================================================================

ENGINE_TABLE = [
    # severity, region, expected, arithmetic
    # central_europe: created Mon 2 Mar 10:30 CET = 09:30Z, 6.5h left on Monday
    ("critical", "europe", "2026-03-02T11:30:00Z"),  # +2h = 12:30 CET
    ("major", "europe", "2026-03-02T13:30:00Z"),  # +4h = 14:30 CET
    ("moderate", "europe", "2026-03-03T09:30:00Z"),  # 6.5 Mon + 1.5 -> Tue 10:30 CET
    ("limited", "europe", "2026-03-03T13:30:00Z"),  # 6.5 Mon + 5.5 -> Tue 14:30 CET
    # pacific: created Mon 2 Mar 10:30 PST = 18:30Z, 6.5h left on Monday
    ("critical", "north_america", "2026-03-02T20:30:00Z"),  # +2h = 12:30 PST
    ("major", "north_america", "2026-03-02T22:30:00Z"),  # +4h = 14:30 PST
    ("moderate", "north_america", "2026-03-03T18:30:00Z"),  # -> Tue 10:30 PST
    ("limited", "north_america", "2026-03-03T22:30:00Z"),  # -> Tue 14:30 PST
]


@pytest.mark.parametrize(
    ("severity", "region", "expected"),
    [pytest.param(*row, id=f"{row[0]}-{row[1]}") for row in ENGINE_TABLE],
)
def test_engine_table(severity: str, region: str, expected: str) -> None:
    created = "2026-03-02T09:30:00Z" if region == "europe" else "2026-03-02T18:30:00Z"
    d = engine(created, severity, region)
    assert set(d.targets) == {"response"}
    assert due(d, "response") == expected
    assert d.targets["response"].state == "running"


@pytest.mark.parametrize(
    ("severity", "priority"),
    [("critical", "urgent"), ("major", "high"), ("moderate", "normal"), ("limited", "low")],
)
def test_engine_priority_and_tags(severity: str, priority: str) -> None:
    d = engine("2026-03-02T09:30:00Z", severity)
    assert d.priority == priority
    assert {"sla_pix4dengine-enterprise", f"sla_{severity}"} <= set(d.tags)


# One created instant, Mon 2 Mar 09:30Z, critical (2 bh):
# central_europe: 10:30 CET open, +2h = 12:30 CET = 11:30Z;
# pacific: 01:30 PST closed, starts 09:00 PST = 17:00Z, +2h = 19:00Z.
CENTRAL, PACIFIC = "2026-03-02T11:30:00Z", "2026-03-02T19:00:00Z"


@pytest.mark.parametrize(
    ("region", "expected"),
    [
        ("north_america", PACIFIC),
        ("australia", PACIFIC),
        ("africa", CENTRAL),
        ("asia", CENTRAL),
        ("europe", CENTRAL),
        ("south_america", CENTRAL),
    ],
)
def test_engine_region_chooses_calendar(region: str, expected: str) -> None:
    assert due(engine("2026-03-02T09:30:00Z", "critical", region), "response") == expected


@pytest.mark.parametrize("region", [None, "antarctica"], ids=["missing", "unknown"])
def test_engine_unmapped_region(region: str | None) -> None:
    d = engine("2026-03-02T09:30:00Z", "critical", region)
    assert d.problem is not None
    assert "sla_unmapped" in d.tags
    assert d.targets == {}


@pytest.mark.parametrize(
    ("created", "severity", "region", "expected"),
    [
        # Pacific, Independence Day observed Fri 3 Jul: Thu 2 Jul 16:00 PDT: 1h, 1 left;
        # Mon 6 Jul 09:00 + 1h = 10:00 PDT = 17:00Z
        pytest.param(
            "2026-07-02T23:00:00Z",
            "critical",
            "north_america",
            "2026-07-06T17:00:00Z",
            id="pacific-independence-observed",
        ),
        # Pacific closes on major US holidays only: Juneteenth Fri 19 Jun is open.
        # Thu 18 Jun 16:00 PDT: 1h, 1 left; Fri 19 Jun 09:00 + 1h = 10:00 PDT = 17:00Z
        pytest.param(
            "2026-06-18T23:00:00Z",
            "critical",
            "north_america",
            "2026-06-19T17:00:00Z",
            id="pacific-juneteenth-open",
        ),
        # Pacific, Thanksgiving Thu 26 Nov: Wed 25 Nov 16:00 PST: 1h, 3 left; Fri 27 Nov
        # 09:00 + 3h = 12:00 PST = 20:00Z
        pytest.param(
            "2026-11-26T00:00:00Z",
            "major",
            "north_america",
            "2026-11-27T20:00:00Z",
            id="pacific-thanksgiving",
        ),
        # Pacific spring DST: Fri 6 Mar 16:00 PST (Sat 00:00Z): 1h, 1 left; Mon 9 Mar 09:00 PDT
        # + 1h = 10:00 PDT = 17:00Z
        pytest.param(
            "2026-03-07T00:00:00Z",
            "critical",
            "north_america",
            "2026-03-09T17:00:00Z",
            id="pacific-dst-spring",
        ),
        # Pacific autumn DST: Fri 30 Oct 16:00 PDT (23:00Z): 1h, 1 left; Mon 2 Nov 09:00 PST
        # + 1h = 10:00 PST = 18:00Z
        pytest.param(
            "2026-10-30T23:00:00Z",
            "critical",
            "north_america",
            "2026-11-02T18:00:00Z",
            id="pacific-dst-autumn",
        ),
        # Vaud, Prayer Monday 21 Sep: Fri 18 Sep 16:00 CEST: 1h, 1 left; Mon closed;
        # Tue 22 Sep 09:00 + 1h = 10:00 CEST = 08:00Z
        pytest.param(
            "2026-09-18T14:00:00Z",
            "critical",
            "europe",
            "2026-09-22T08:00:00Z",
            id="vaud-prayer-monday",
        ),
        # Vaud, New Year + Berchtold: Wed 31 Dec 2025 16:00 CET: 1h, 3 left; Thu 1 Jan and
        # Fri 2 Jan closed; Mon 5 Jan 09:00 + 3h = 12:00 CET = 11:00Z
        pytest.param(
            "2025-12-31T15:00:00Z",
            "major",
            "europe",
            "2026-01-05T11:00:00Z",
            id="vaud-berchtold",
        ),
        # Vaud, Easter: Thu 2 Apr 16:00 CEST: 1h, 7 left; Good Friday, Easter Monday closed;
        # Tue 7 Apr 09:00 + 7h = 16:00 CEST = 14:00Z
        pytest.param(
            "2026-04-02T14:00:00Z",
            "moderate",
            "europe",
            "2026-04-07T14:00:00Z",
            id="vaud-easter",
        ),
        # Vaud, Whit Monday 25 May: Fri 22 May 16:00 CEST: 1h, 1 left; Tue 26 May 10:00 CEST
        pytest.param(
            "2026-05-22T14:00:00Z",
            "critical",
            "europe",
            "2026-05-26T08:00:00Z",
            id="vaud-whit-monday",
        ),
        # Zurich spring DST: Fri 27 Mar 16:00 CET: 1h, 3 left; Mon 30 Mar 09:00 CEST + 3h
        # = 12:00 CEST = 10:00Z
        pytest.param(
            "2026-03-27T15:00:00Z",
            "major",
            "europe",
            "2026-03-30T10:00:00Z",
            id="central-dst-spring",
        ),
        # Zurich autumn DST: Fri 23 Oct 16:00 CEST: 1h, 3 left; Mon 26 Oct 09:00 CET + 3h
        # = 12:00 CET = 11:00Z
        pytest.param(
            "2026-10-23T14:00:00Z",
            "major",
            "europe",
            "2026-10-26T11:00:00Z",
            id="central-dst-autumn",
        ),
    ],
)
def test_engine_due(created: str, severity: str, region: str, expected: str) -> None:
    assert due(engine(created, severity, region), "response") == expected


# Recurring response, central_europe, critical (2 bh), created Mon 2 Mar 09:00 CET = 08:00Z.
# First cycle due 11:00 CET = 10:00Z; at risk after 75 % of 2h = 1h30 -> 09:30Z.
ENG_CREATED = "2026-03-02T08:00:00Z"


@pytest.mark.parametrize(
    ("events", "now", "expected_due", "state"),
    [
        pytest.param({}, "2026-03-02T09:29:59Z", "2026-03-02T10:00:00Z", "running", id="fresh"),
        pytest.param({}, "2026-03-02T09:30:00Z", "2026-03-02T10:00:00Z", "at_risk", id="75pct"),
        pytest.param({}, "2026-03-02T10:00:00Z", "2026-03-02T10:00:00Z", "at_risk", id="at-due"),
        pytest.param({}, "2026-03-02T10:00:01Z", "2026-03-02T10:00:00Z", "breached", id="past-due"),
        # reply 10:00 CET (09:00Z) -> due again 2 bh later: 12:00 CET = 11:00Z
        pytest.param(
            {"first_agent_reply_at": "2026-03-02T09:00:00Z"},
            "2026-03-02T09:05:00Z",
            "2026-03-02T11:00:00Z",
            "running",
            id="first-reply-rearms",
        ),
        # replies 10:00 and 11:30 CET -> due 13:30 CET = 12:30Z
        pytest.param(
            {
                "first_agent_reply_at": "2026-03-02T09:00:00Z",
                "agent_replies": ["2026-03-02T09:00:00Z", "2026-03-02T10:30:00Z"],
            },
            "2026-03-02T10:31:00Z",
            "2026-03-02T12:30:00Z",
            "running",
            id="second-reply-rearms",
        ),
        # a late reply (11:30 CET, first cycle was due 11:00 CET) still re-arms: 13:30 CET
        pytest.param(
            {"agent_replies": ["2026-03-02T10:30:00Z"]},
            "2026-03-02T10:31:00Z",
            "2026-03-02T12:30:00Z",
            "running",
            id="late-reply-rearms",
        ),
        # reply Mon 16:00 CET: 1h to close, Tue 3 Mar 09:00 + 1h = 10:00 CET = 09:00Z
        pytest.param(
            {"agent_replies": ["2026-03-02T15:00:00Z"]},
            "2026-03-02T15:01:00Z",
            "2026-03-03T09:00:00Z",
            "running",
            id="reply-near-close",
        ),
        # reply Mon 18:00 CET (closed): clock restarts Tue 09:00 + 2h = 11:00 CET = 10:00Z
        pytest.param(
            {"agent_replies": ["2026-03-02T17:00:00Z"]},
            "2026-03-02T17:01:00Z",
            "2026-03-03T10:00:00Z",
            "running",
            id="reply-after-hours",
        ),
        # a reply after `now` has not happened yet: still the first cycle
        pytest.param(
            {"agent_replies": ["2026-03-02T09:00:00Z"]},
            "2026-03-02T08:59:00Z",
            "2026-03-02T10:00:00Z",
            "running",
            id="future-reply-ignored",
        ),
        # solved 10:45 CET, before 11:00 CET due
        pytest.param(
            {"solved_at": "2026-03-02T09:45:00Z"},
            "2026-03-02T12:00:00Z",
            "2026-03-02T10:00:00Z",
            "achieved",
            id="solved-in-time",
        ),
        # solved 11:30 CET, after 11:00 CET due, no reply in between
        pytest.param(
            {"solved_at": "2026-03-02T10:30:00Z"},
            "2026-03-02T12:00:00Z",
            "2026-03-02T10:00:00Z",
            "breached",
            id="solved-late",
        ),
        # reply 10:00 CET re-arms to 12:00 CET; solved 11:30 CET is in time
        pytest.param(
            {"first_agent_reply_at": "2026-03-02T09:00:00Z", "solved_at": "2026-03-02T10:30:00Z"},
            "2026-03-02T12:00:00Z",
            "2026-03-02T11:00:00Z",
            "achieved",
            id="reply-then-solved",
        ),
    ],
)
def test_engine_recurring(events: dict[str, Any], now: str, expected_due: str, state: str) -> None:
    d = engine(ENG_CREATED, "critical", "europe", now=now, events=events)
    assert due(d, "response") == expected_due
    assert d.targets["response"].state == state


def test_engine_recurring_reply_across_pacific_holiday() -> None:
    # major (4 bh), pacific. Created Thu 2 Jul 09:00 PDT = 16:00Z; reply Thu 16:30 PDT
    # (23:30Z): 0.5h to close, 3.5 left; Fri 3 Jul observed holiday; Mon 6 Jul 09:00 + 3.5h
    # = 12:30 PDT = 19:30Z
    d = engine(
        "2026-07-02T16:00:00Z",
        "major",
        "north_america",
        now="2026-07-03T00:00:00Z",
        events={"agent_replies": ["2026-07-02T23:30:00Z"]},
    )
    assert due(d, "response") == "2026-07-06T19:30:00Z"
    assert d.targets["response"].state == "running"


# =============================================================================================
# pixelz: inquiries, rejection notice, standard and expedited delivery
# =============================================================================================


@pytest.mark.parametrize(
    ("created", "tz", "expected"),
    [
        # Paris Mon 2 Mar 10:00 CET + 5h = 15:00 CET = 14:00Z
        pytest.param("2026-03-02T09:00:00Z", "Europe/Paris", "2026-03-02T14:00:00Z", id="mon"),
        # Paris Fri 6 Mar 22:00 CET: 2h to 24:00; Mon 9 Mar 00:00 CET + 3h = 03:00 CET = 02:00Z
        pytest.param(
            "2026-03-06T21:00:00Z", "Europe/Paris", "2026-03-09T02:00:00Z", id="fri-night"
        ),
        # Paris Fri 6 Mar 19:00 CET + 5h = Fri 24:00 exactly -> due at the close,
        # Sat 00:00 CET = Fri 23:00Z (not Mon 00:00)
        pytest.param(
            "2026-03-06T18:00:00Z", "Europe/Paris", "2026-03-06T23:00:00Z", id="due-at-midnight"
        ),
        # no holidays: Easter Monday 6 Apr, Paris 10:00 CEST + 5h = 15:00 CEST = 13:00Z
        pytest.param(
            "2026-04-06T08:00:00Z", "Europe/Paris", "2026-04-06T13:00:00Z", id="no-holidays"
        ),
        # Paris Fri 27 Mar 22:00 CET: 2h; DST Sun 29 Mar; Mon 30 Mar 00:00 CEST (Sun 22:00Z)
        # + 3h = 03:00 CEST = Mon 01:00Z
        pytest.param(
            "2026-03-27T21:00:00Z", "Europe/Paris", "2026-03-30T01:00:00Z", id="paris-dst"
        ),
        # New York, Sat 7 Mar 12:00Z closed; US DST Sun 8 Mar; Mon 9 Mar 00:00 EDT = 04:00Z
        # + 5h = 09:00Z
        pytest.param(
            "2026-03-07T12:00:00Z", "America/New_York", "2026-03-09T09:00:00Z", id="ny-dst"
        ),
        # Tokyo: Mon 2 Mar 20:00Z = Tue 3 Mar 05:00 JST, open; + 5h = 10:00 JST = 01:00Z
        pytest.param("2026-03-02T20:00:00Z", "Asia/Tokyo", "2026-03-03T01:00:00Z", id="tokyo"),
        # Tokyo: Fri 6 Mar 16:00Z = Sat 01:00 JST, closed; Mon 9 Mar 00:00 JST = Sun 15:00Z
        # + 5h = Sun 8 Mar 20:00Z
        pytest.param(
            "2026-03-06T16:00:00Z", "Asia/Tokyo", "2026-03-08T20:00:00Z", id="tokyo-weekend"
        ),
    ],
)
def test_pixelz_inquiry(created: str, tz: str, expected: str) -> None:
    d = pixelz(created, "inquiry", tz)
    assert set(d.targets) == {"first_response"}
    assert due(d, "first_response") == expected
    assert d.priority == "normal"
    assert "sla_pixelz" in d.tags


def test_pixelz_inquiry_without_timezone_uses_utc() -> None:
    # mappings/contracts/pixelz.yaml: no customer zone -> UTC, tag sla_defaulted.
    # Fri 6 Mar 22:00Z: 2h to 24:00Z; Mon 9 Mar 00:00Z + 3h = 03:00Z
    d = pixelz("2026-03-06T22:00:00Z", "inquiry", None)
    assert due(d, "first_response") == "2026-03-09T03:00:00Z"
    assert "sla_defaulted" in d.tags


@pytest.mark.parametrize(
    ("created", "tz", "expected"),
    [
        # Tue 3 Mar 14:00Z (15:00 CET) -> Wed 4 Mar 09:00 CET = 08:00Z
        pytest.param("2026-03-03T14:00:00Z", "Europe/Paris", "2026-03-04T08:00:00Z", id="tue"),
        # Fri 6 Mar 10:00 CET -> Sat -> Mon 9 Mar 09:00 CET = 08:00Z
        pytest.param("2026-03-06T09:00:00Z", "Europe/Paris", "2026-03-09T08:00:00Z", id="fri"),
        # Sat 7 Mar 10:00 CET -> Sun -> Mon 9 Mar 09:00 CET = 08:00Z
        pytest.param("2026-03-07T09:00:00Z", "Europe/Paris", "2026-03-09T08:00:00Z", id="sat"),
        # Sun 8 Mar 10:00 CET -> Mon 9 Mar 09:00 CET = 08:00Z
        pytest.param("2026-03-08T09:00:00Z", "Europe/Paris", "2026-03-09T08:00:00Z", id="sun"),
        # Sat 28 Mar 23:30 CET -> Sun 29 (DST night) -> Mon 30 Mar 09:00 CEST = 07:00Z
        pytest.param(
            "2026-03-28T22:30:00Z", "Europe/Paris", "2026-03-30T07:00:00Z", id="paris-dst-spring"
        ),
        # Sun 29 Mar 10:00 CEST -> Mon 30 Mar 09:00 CEST = 07:00Z
        pytest.param(
            "2026-03-29T08:00:00Z", "Europe/Paris", "2026-03-30T07:00:00Z", id="paris-dst-sun"
        ),
        # Sat 24 Oct 12:00 CEST -> Sun 25 (DST ends) -> Mon 26 Oct 09:00 CET = 08:00Z
        pytest.param(
            "2026-10-24T10:00:00Z", "Europe/Zurich", "2026-10-26T08:00:00Z", id="zurich-autumn"
        ),
        # Cairo Thu 23 Apr 12:00 EET (10:00Z); DST starts Fri 24 Apr 00:00 ->
        # Fri 24 Apr 09:00 EEST (+3) = 06:00Z
        pytest.param(
            "2026-04-23T10:00:00Z", "Africa/Cairo", "2026-04-24T06:00:00Z", id="cairo-dst-night"
        ),
        # Cairo Thu 29 Oct 12:00 EEST (09:00Z); DST ends Thu 24:00 -> Fri 30 Oct 09:00 EET
        # (+2) = 07:00Z
        pytest.param(
            "2026-10-29T09:00:00Z", "Africa/Cairo", "2026-10-30T07:00:00Z", id="cairo-dst-end"
        ),
        # Denver Sat 31 Oct 12:00 MDT (18:00Z) -> Sun 1 Nov (DST ends) -> Mon 2 Nov 09:00 MST
        # = 16:00Z
        pytest.param(
            "2026-10-31T18:00:00Z", "America/Denver", "2026-11-02T16:00:00Z", id="denver-autumn"
        ),
        # Los Angeles Sat 7 Mar 03:00Z = Fri 6 Mar 19:00 PST: local date Fri -> Sat -> Mon 9
        # Mar 09:00 PDT = 16:00Z
        pytest.param(
            "2026-03-07T03:00:00Z", "America/Los_Angeles", "2026-03-09T16:00:00Z", id="la-spring"
        ),
        # Tokyo Mon 2 Mar 20:00Z = Tue 3 Mar 05:00 JST: local date Tue -> Wed 4 Mar 09:00 JST
        # = Wed 00:00Z
        pytest.param(
            "2026-03-02T20:00:00Z", "Asia/Tokyo", "2026-03-04T00:00:00Z", id="tokyo-local-date"
        ),
    ],
)
def test_pixelz_standard_delivery(created: str, tz: str, expected: str) -> None:
    d = pixelz(created, tz=tz, images=10)
    assert set(d.targets) == {"rejection_notice", "delivery"}
    assert due(d, "delivery") == expected
    parts = d.targets["delivery"].parts
    assert parts is not None
    assert [(p.quantity, format_instant(p.due) if p.due else None) for p in parts] == [
        (10, expected)
    ]
    assert d.priority == "normal"
    assert "expedite_unavailable" not in d.tags


def test_pixelz_order_without_timezone_uses_utc() -> None:
    # Tue 3 Mar 14:00Z in UTC -> Wed 4 Mar 09:00Z; tag sla_defaulted (pixelz.yaml)
    d = pixelz("2026-03-03T14:00:00Z", tz=None)
    assert due(d, "delivery") == "2026-03-04T09:00:00Z"
    assert "sla_defaulted" in d.tags


@pytest.mark.parametrize(
    ("created", "tz", "expected"),
    [
        # 5 plain hours: Tue 3 Mar 14:00Z + 5h = 19:00Z
        pytest.param("2026-03-03T14:00:00Z", "Europe/Paris", "2026-03-03T19:00:00Z", id="tue"),
        # Fri 6 Mar 22:00Z + 5h = Sat 03:00Z (weekend counts)
        pytest.param("2026-03-06T22:00:00Z", "Europe/Paris", "2026-03-07T03:00:00Z", id="fri"),
        # Sun 29 Mar 00:30Z (01:30 CET) + 5h elapsed = 05:30Z (07:30 CEST; wall clock +6h)
        pytest.param(
            "2026-03-29T00:30:00Z", "Europe/Paris", "2026-03-29T05:30:00Z", id="paris-dst"
        ),
        # Sun 8 Mar 06:00Z (01:00 EST) + 5h elapsed = 11:00Z (07:00 EDT)
        pytest.param(
            "2026-03-08T06:00:00Z", "America/New_York", "2026-03-08T11:00:00Z", id="ny-dst"
        ),
    ],
)
def test_pixelz_rejection_notice(created: str, tz: str, expected: str) -> None:
    assert due(pixelz(created, tz=tz), "rejection_notice") == expected


@pytest.mark.parametrize(
    ("created", "tz", "expected"),
    [
        # Tue 3 Mar 14:00Z + 3h = 17:00Z
        pytest.param("2026-03-03T14:00:00Z", "Europe/Paris", "2026-03-03T17:00:00Z", id="tue"),
        # Mon 2 Mar 00:00:00Z is the window's first second: + 3h = 03:00Z
        pytest.param(
            "2026-03-02T00:00:00Z", "Europe/Paris", "2026-03-02T03:00:00Z", id="window-open"
        ),
        # Fri 6 Mar 23:59:59Z is still inside (Fri 24:00 excluded): + 3h = Sat 02:59:59Z
        pytest.param(
            "2026-03-06T23:59:59Z", "Europe/Paris", "2026-03-07T02:59:59Z", id="window-last-sec"
        ),
        # Los Angeles Fri 6 Mar 20:00Z (12:00 PST) + 3h = 23:00Z
        pytest.param(
            "2026-03-06T20:00:00Z", "America/Los_Angeles", "2026-03-06T23:00:00Z", id="la"
        ),
    ],
)
def test_pixelz_expedited_delivery(created: str, tz: str, expected: str) -> None:
    d = pixelz(created, tz=tz, images=5, expedite=True)
    assert due(d, "delivery") == expected
    parts = d.targets["delivery"].parts
    assert parts is not None
    assert [(p.quantity, format_instant(p.due) if p.due else None) for p in parts] == [
        (5, expected)
    ]
    assert d.priority == "high"
    assert "expedite_unavailable" not in d.tags


@pytest.mark.parametrize(
    ("created", "tz", "expected"),
    [
        # Sat 7 Mar 00:00:00Z: window closed -> standard. Paris Sat 01:00 CET -> Sun -> Mon 9
        # Mar 09:00 CET = 08:00Z
        pytest.param(
            "2026-03-07T00:00:00Z", "Europe/Paris", "2026-03-09T08:00:00Z", id="sat-first-sec"
        ),
        # Sun 1 Mar 23:59:59Z (UTC Sunday) though Paris is already Mon 2 Mar 00:59:59 CET ->
        # standard: Tue 3 Mar 09:00 CET = 08:00Z
        pytest.param(
            "2026-03-01T23:59:59Z", "Europe/Paris", "2026-03-03T08:00:00Z", id="sun-last-sec"
        ),
        # Tokyo: Sun 1 Mar 20:00Z = Mon 2 Mar 05:00 JST; UTC Sunday -> standard:
        # Tue 3 Mar 09:00 JST = 00:00Z
        pytest.param(
            "2026-03-01T20:00:00Z", "Asia/Tokyo", "2026-03-03T00:00:00Z", id="tokyo-monday"
        ),
    ],
)
def test_pixelz_expedite_unavailable(created: str, tz: str, expected: str) -> None:
    d = pixelz(created, tz=tz, images=5, expedite=True)
    assert due(d, "delivery") == expected
    assert "expedite_unavailable" in d.tags
    assert d.priority == "normal"


@pytest.mark.parametrize(
    ("delivered_at", "now", "state"),
    [
        # Tue 3 Mar 14:00Z upload, Paris: due Wed 4 Mar 09:00 CET = 08:00Z (18h);
        # 75 % of 18h = 13h30 -> at risk from Wed 03:30Z
        (None, "2026-03-04T03:29:59Z", "running"),
        (None, "2026-03-04T03:30:00Z", "at_risk"),
        (None, "2026-03-04T08:00:00Z", "at_risk"),
        (None, "2026-03-04T08:00:01Z", "breached"),
        ("2026-03-04T08:00:00Z", "2026-03-04T12:00:00Z", "achieved"),
        ("2026-03-04T08:00:01Z", "2026-03-04T12:00:00Z", "breached"),
    ],
)
def test_pixelz_delivery_states(delivered_at: str | None, now: str, state: str) -> None:
    d = pixelz("2026-03-03T14:00:00Z", now=now, events={"delivered_at": delivered_at})
    assert d.targets["delivery"].state == state


# =============================================================================================
# states, risk and breach (contracts.md §4) on photoprism gold sev1
# =============================================================================================

# Created Mon 2 Mar 09:00 CET = 08:00Z: first_response (8 bh) due 17:00 CET = 16:00Z; 75 %
# = 6 bh -> at risk from 15:00 CET = 14:00Z.
ST_CREATED = "2026-03-02T08:00:00Z"


@pytest.mark.parametrize(
    ("reply", "now", "state"),
    [
        (None, "2026-03-02T13:59:59Z", "running"),
        (None, "2026-03-02T14:00:00Z", "at_risk"),
        (None, "2026-03-02T16:00:00Z", "at_risk"),  # at due: not yet past
        (None, "2026-03-02T16:00:01Z", "breached"),  # strictly after due
        ("2026-03-02T16:00:00Z", "2026-03-03T12:00:00Z", "achieved"),  # event at due
        ("2026-03-02T09:00:00Z", "2026-03-02T10:00:00Z", "achieved"),  # early
        ("2026-03-02T16:00:01Z", "2026-03-03T12:00:00Z", "breached"),  # event late
        ("2026-03-02T12:00:00Z", "2026-03-02T11:00:00Z", "running"),  # event after now
    ],
)
def test_photoprism_states(reply: str | None, now: str, state: str) -> None:
    d = photoprism(ST_CREATED, now=now, events={"first_agent_reply_at": reply})
    assert d.targets["first_response"].state == state
    assert due(d, "first_response") == "2026-03-02T16:00:00Z"


@pytest.mark.parametrize(
    ("now", "state"),
    [
        # Created Fri 6 Mar 16:00 CET (15:00Z): due Mon 9 Mar 16:00 CET = 15:00Z. 75 % of the
        # 8 *business* hours = 6 bh: Fri 1h + Mon 5h -> Mon 14:00 CET = 13:00Z. (Elapsed time
        # would have put it on Sunday.)
        ("2026-03-08T23:00:00Z", "running"),
        ("2026-03-09T12:59:59Z", "running"),
        ("2026-03-09T13:00:00Z", "at_risk"),
        ("2026-03-09T15:00:01Z", "breached"),
    ],
)
def test_at_risk_uses_business_time(now: str, state: str) -> None:
    d = photoprism("2026-03-06T15:00:00Z", now=now)
    assert due(d, "first_response") == "2026-03-09T15:00:00Z"
    assert d.targets["first_response"].state == state


def test_best_effort_never_breaches() -> None:
    d = photoprism(ST_CREATED, "professional", "sev1", now="2027-03-02T08:00:00Z")
    for name in ("first_response", "resolution"):
        result = d.targets[name]
        assert (result.due, result.best_effort, result.state) == (None, True, "best_effort")


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # running: next change is first_response's at-risk instant, Mon 14:00Z (resolution,
        # 16 bh due Tue 3 Mar 17:00 CET, turns at risk after 12 bh = Tue 13:00 CET = 12:00Z)
        ("2026-03-02T10:00:00Z", "2026-03-02T14:00:00Z"),
        # at risk: next change is the first second past first_response's due, 16:00:01Z
        ("2026-03-02T15:00:00Z", "2026-03-02T16:00:01Z"),
    ],
)
def test_next_change_at(now: str, expected: str) -> None:
    d = photoprism(ST_CREATED, now=now)
    assert d.next_change_at is not None
    assert format_instant(d.next_change_at) == expected
