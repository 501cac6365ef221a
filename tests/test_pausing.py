"""Paused clocks (contracts.md §1, "Pausing"): cases worked by hand.

Every expected instant below is computed in the comment above it from the calendar's own words
(office hours, zone, holidays), not copied from the engine. Notation: `CET`/`CEST` are Berlin or
Zurich wall-clock time (UTC+1 / UTC+2), `Z` is UTC; "accrued" is business time (or elapsed time
for a plain-hours target) the target's clock has counted.

Calendars used (contracts.md §3 and the bundled mapping files):
- photoprism `berlin`: Mon-Fri 09:00-17:00 Europe/Berlin, DE-BE holidays (2026: Good Friday
  3 April, Easter Monday 6 April, ...). Gold sev1 resolution is 16 business hours, gold sev2
  3 business days = 24 business hours; risk threshold 0.75.
- pix4dengine-enterprise `central_europe`: Mon-Fri 09:00-17:00 Europe/Zurich, CH-VD holidays.
  `response` (recurring) is 4 business hours for `major`.
- pix4d-premium `lausanne` (Europe/Zurich) and `tokyo` (Asia/Tokyo, no DST): Mon-Fri 09:00-17:00
  each; `workaround` is 24 business hours for `information`.
- tests/data/contracts/pausing/pause-clock.yaml: `restore` is `8 hours` (p1, elapsed) or
  10 business hours (p2, Berlin), paused by `pending` and `on_hold`.

2026 DST in Europe: clocks go forward on Sunday 29 March at 01:00Z (02:00 CET -> 03:00 CEST) and
back on Sunday 25 October at 01:00Z (03:00 CEST -> 02:00 CET).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connector.cli import main
from connector.errors import ConfigError
from connector.mappingfiles import load_contract
from connector.sla.contract import Contract
from connector.sla.engine import decide
from connector.sla.model import Decision, TargetResult, TicketFacts
from tests.conftest import MAPPINGS, ROOT

PAUSE_CLOCK = ROOT / "tests" / "data" / "contracts" / "pausing" / "pause-clock.yaml"


def z(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def facts(history: Sequence[tuple[str, str]] = (), **data: Any) -> TicketFacts:
    """A ticket with `history` as its status changes (instant, status), oldest first."""
    changes = [{"at": at, "status": status} for at, status in history]
    return TicketFacts.model_validate({"id": "1", **data, "status_history": changes})


def run(
    contract: Contract, now: str, history: Sequence[tuple[str, str]] = (), /, **data: Any
) -> Decision:
    return decide(contract, facts(history, **data), z(now))


def gold(
    contracts: dict[str, Contract],
    severity: str,
    created: str,
    now: str,
    history: Sequence[tuple[str, str]] = (),
    **events: Any,
) -> Decision:
    return run(
        contracts["photoprism"],
        now,
        history,
        created_at=created,
        contract="photoprism",
        plan="gold",
        severity=severity,
        events=events,
    )


def resolution(decision: Decision) -> TargetResult:
    return decision.targets["resolution"]


@pytest.fixture(scope="module")
def pause_clock() -> Contract:
    return load_contract(PAUSE_CLOCK)


# -- the worked example of the feature ----------------------------------------------------------


def test_the_worked_example_running_again(contracts: dict[str, Contract]) -> None:
    # Created Mon 2 March 09:15 CET; pending Mon 11:00 CET -> open Tue 09:30 CET.
    # Accrued before the pause: 09:15-11:00 = 1h45. Owed 24h - 1h45 = 22h15 from Tue 09:30:
    # Tue 09:30-17:00 7h30 (14h45 left), Wed 8h (6h45 left), Thu 09:00 + 6h45 = 15:45 CET
    # = 14:45Z. Paused business time: Mon 11:00-17:00 6h + Tue 09:00-09:30 0h30 = 6h30.
    # At risk at 18h accrued: 1h45 + 7h30 + 8h = 17h15 by Wed's close, +45 min = Thu 09:45 CET.
    decision = gold(
        contracts,
        "sev2",
        "2026-03-02T08:15:00Z",
        "2026-03-03T10:00:00Z",
        [("2026-03-02T10:00:00Z", "pending"), ("2026-03-03T08:30:00Z", "open")],
    )
    target = resolution(decision)
    assert target.due == z("2026-03-05T14:45:00Z")
    assert target.state == "running"
    assert target.paused_seconds == 6 * 3600 + 30 * 60
    assert target.owed_seconds is None
    assert target.at_risk_at == z("2026-03-05T08:45:00Z")
    assert decision.next_change_at == z("2026-03-05T08:45:00Z")  # first_response is breached
    assert "sla_paused" not in decision.tags
    assert "6h30 paused" in target.basis


def test_the_worked_example_still_paused(contracts: dict[str, Contract]) -> None:
    # As above with no `open` entry: still pending at now, 24h - 1h45 = 22h15 = 80100 s owed.
    decision = gold(
        contracts,
        "sev2",
        "2026-03-02T08:15:00Z",
        "2026-03-03T10:00:00Z",
        [("2026-03-02T10:00:00Z", "pending")],
        first_agent_reply_at="2026-03-02T09:00:00Z",
    )
    target = resolution(decision)
    assert (target.due, target.state, target.owed_seconds) == (None, "paused", 80100)
    assert target.best_effort is False
    assert "sla_paused" in decision.tags
    assert "sla_breached" not in decision.tags
    assert "sla_at_risk" not in decision.tags
    # first_response is achieved; the paused target gives no wake-up of its own.
    assert decision.targets["first_response"].state == "achieved"
    assert decision.next_change_at is None
    assert "resolution: paused, 22h15 still owed" in decision.note


# -- spells across closed time ------------------------------------------------------------------


def test_a_spell_across_a_weekend_takes_out_only_business_time(
    contracts: dict[str, Contract],
) -> None:
    # Gold sev1, 16 business hours. Created Thu 5 March 09:00 CET (08:00Z).
    # Pending Fri 6 March 15:00 CET (14:00Z) -> open Mon 9 March 11:00 CET (10:00Z).
    # Accrued: Thu 8h + Fri 09:00-15:00 6h = 14h; 2h owed from Mon 11:00: due Mon 13:00 CET
    # = 12:00Z. Paused: Fri 15:00-17:00 2h + Mon 09:00-11:00 2h = 4h; the 44 h of weekend in
    # between are closed and take nothing out.
    # At risk at 12h accrued: Thu 8h + Fri 4h = Fri 13:00 CET = 12:00Z, before the pause.
    history = [("2026-03-06T14:00:00Z", "pending"), ("2026-03-09T10:00:00Z", "open")]
    decision = gold(
        contracts,
        "sev1",
        "2026-03-05T08:00:00Z",
        "2026-03-09T10:30:00Z",
        history,
        first_agent_reply_at="2026-03-05T09:00:00Z",
    )
    target = resolution(decision)
    assert target.due == z("2026-03-09T12:00:00Z")
    assert target.paused_seconds == 4 * 3600
    assert target.at_risk_at == z("2026-03-06T12:00:00Z")
    assert target.state == "at_risk"
    assert decision.next_change_at == z("2026-03-09T12:00:01Z")


def test_a_spell_inside_the_weekend_changes_nothing(contracts: dict[str, Contract]) -> None:
    # Same ticket, pending Sat 7 March 11:00 CET -> open Sun 8 March 21:00 CET: the office is
    # closed throughout. Due as without a pause: Thu 8h + Fri 8h = Fri 17:00 CET = 16:00Z.
    history = [("2026-03-07T10:00:00Z", "pending"), ("2026-03-08T20:00:00Z", "open")]
    paused = gold(contracts, "sev1", "2026-03-05T08:00:00Z", "2026-03-06T09:00:00Z", history)
    plain = gold(contracts, "sev1", "2026-03-05T08:00:00Z", "2026-03-06T09:00:00Z")
    assert resolution(paused).due == z("2026-03-06T16:00:00Z")
    assert resolution(paused).paused_seconds is None
    assert paused.targets == plain.targets
    assert paused.next_change_at == plain.next_change_at


def test_a_spell_across_public_holidays(contracts: dict[str, Contract]) -> None:
    # Gold sev2, 24 business hours. Berlin closes Good Friday 3 April and Easter Monday
    # 6 April 2026; CEST (UTC+2) since 29 March.
    # Created Wed 1 April 09:00 CEST (07:00Z). Pending Thu 2 April 15:00 CEST (13:00Z) ->
    # open Tue 7 April 11:00 CEST (09:00Z).
    # Accrued: Wed 8h + Thu 09:00-15:00 6h = 14h; 10h owed from Tue 11:00: Tue 11:00-17:00 6h,
    # Wed 8 April 09:00-13:00 4h: due Wed 13:00 CEST = 11:00Z.
    # Paused: Thu 15:00-17:00 2h + Tue 09:00-11:00 2h = 4h (Friday and Monday are holidays).
    # Without the pause: Wed 8h + Thu 8h + Tue 8h = Tue 7 April 17:00 CEST = 15:00Z.
    # At risk at 18h: 14h + Tue 11:00-15:00 = Tue 15:00 CEST = 13:00Z.
    history = [("2026-04-02T13:00:00Z", "pending"), ("2026-04-07T09:00:00Z", "open")]
    decision = gold(contracts, "sev2", "2026-04-01T07:00:00Z", "2026-04-07T12:00:00Z", history)
    target = resolution(decision)
    assert target.due == z("2026-04-08T11:00:00Z")
    assert target.paused_seconds == 4 * 3600
    assert target.at_risk_at == z("2026-04-07T13:00:00Z")
    assert target.state == "running"
    plain = gold(contracts, "sev2", "2026-04-01T07:00:00Z", "2026-04-07T12:00:00Z")
    assert resolution(plain).due == z("2026-04-07T15:00:00Z")


def test_a_spell_across_the_spring_forward_change(contracts: dict[str, Contract]) -> None:
    # Gold sev1, 16 business hours. Created Fri 27 March 09:00 CET (08:00Z).
    # Pending Fri 13:00 CET (12:00Z) -> open Mon 30 March 06:00Z = 08:00 CEST, before the
    # office opens (a clock that kept CET would open at 08:00Z and put the due an hour late).
    # Accrued: Fri 09:00-13:00 4h; 12h owed from Mon 09:00 CEST (07:00Z): Mon 8h to 17:00
    # CEST, Tue 31 March 09:00-13:00 CEST: due 13:00 CEST = 11:00Z.
    # Paused: Fri 13:00-17:00 CET = 4h (Monday 08:00-09:00 is closed).
    # At risk at 12h accrued: 4h + Mon 8h = Mon 17:00 CEST = 15:00Z.
    history = [("2026-03-27T12:00:00Z", "pending"), ("2026-03-30T06:00:00Z", "open")]
    decision = gold(contracts, "sev1", "2026-03-27T08:00:00Z", "2026-03-30T14:00:00Z", history)
    target = resolution(decision)
    assert target.due == z("2026-03-31T11:00:00Z")
    assert target.paused_seconds == 4 * 3600
    assert target.at_risk_at == z("2026-03-30T15:00:00Z")
    assert target.state == "running"


def test_a_spell_across_the_fall_back_change(contracts: dict[str, Contract]) -> None:
    # Gold sev1, 16 business hours. Created Thu 22 October 09:00 CEST (07:00Z).
    # Pending Fri 23 October 15:00 CEST (13:00Z) -> open Mon 26 October 07:30Z = 08:30 CET,
    # before the office opens (a clock that kept CEST would have opened at 07:00Z).
    # Accrued: Thu 8h + Fri 09:00-15:00 6h = 14h; 2h owed from Mon 09:00 CET (08:00Z): due
    # Mon 11:00 CET = 10:00Z. Paused: Fri 15:00-17:00 CEST = 2h.
    # At risk at 12h accrued: Thu 8h + Fri 09:00-13:00 = Fri 13:00 CEST = 11:00Z.
    history = [("2026-10-23T13:00:00Z", "pending"), ("2026-10-26T07:30:00Z", "open")]
    decision = gold(contracts, "sev1", "2026-10-22T07:00:00Z", "2026-10-26T09:00:00Z", history)
    target = resolution(decision)
    assert target.due == z("2026-10-26T10:00:00Z")
    assert target.paused_seconds == 2 * 3600
    assert target.at_risk_at == z("2026-10-23T11:00:00Z")
    assert target.state == "at_risk"


# -- spells that begin before the clock starts --------------------------------------------------


def test_pending_before_creation(contracts: dict[str, Contract]) -> None:
    # Gold sev1, 16 business hours. The ticket is pending from 07:00Z, before it is created
    # Mon 2 March 09:00 CET (08:00Z), and opens at 13:00 CET (12:00Z). The clock starts at
    # creation but is paused until 13:00: Mon 13:00-17:00 4h, Tue 8h, Wed 09:00-13:00 4h:
    # due Wed 4 March 13:00 CET = 12:00Z. Paused: Mon 09:00-13:00 = 4h (the hour before the
    # creation is not the clock's to lose).
    history = [("2026-03-02T07:00:00Z", "pending"), ("2026-03-02T12:00:00Z", "open")]
    target = resolution(
        gold(contracts, "sev1", "2026-03-02T08:00:00Z", "2026-03-03T08:00:00Z", history)
    )
    assert target.due == z("2026-03-04T12:00:00Z")
    assert target.paused_seconds == 4 * 3600
    assert target.state == "running"


def test_pending_since_before_creation_and_still_pending_owes_everything(
    contracts: dict[str, Contract],
) -> None:
    # Nothing has accrued: the whole 16 business hours = 57600 s are owed.
    history = [("2026-03-02T07:00:00Z", "pending")]
    target = resolution(
        gold(contracts, "sev1", "2026-03-02T08:00:00Z", "2026-03-10T08:00:00Z", history)
    )
    assert (target.due, target.state, target.owed_seconds) == (None, "paused", 16 * 3600)


def test_pending_before_the_office_opens(contracts: dict[str, Contract]) -> None:
    # Gold sev1, 16 business hours. Created Mon 2 March 07:00 CET (06:00Z), office closed:
    # the clock would start at 09:00 CET. Pending 08:30 CET (07:30Z) -> open 10:00 CET
    # (09:00Z). From 10:00: Mon 7h, Tue 8h, Wed 09:00-10:00 1h: due Wed 4 March 10:00 CET
    # = 09:00Z. Paused: 09:00-10:00 = 1h (08:30-09:00 was closed anyway).
    history = [("2026-03-02T07:30:00Z", "pending"), ("2026-03-02T09:00:00Z", "open")]
    target = resolution(
        gold(contracts, "sev1", "2026-03-02T06:00:00Z", "2026-03-02T12:00:00Z", history)
    )
    assert target.due == z("2026-03-04T09:00:00Z")
    assert target.paused_seconds == 3600
    # At risk at 12h accrued: Mon 7h + Tue 09:00-14:00 = Tue 14:00 CET = 13:00Z.
    assert target.at_risk_at == z("2026-03-03T13:00:00Z")


# -- paused at now ------------------------------------------------------------------------------


def test_paused_at_now_never_turns_at_risk_or_breaches(contracts: dict[str, Contract]) -> None:
    # Gold sev1, 16 business hours. Created Mon 2 March 09:00 CET (08:00Z); pending Tue
    # 3 March 15:00 CET (14:00Z): accrued Mon 8h + Tue 6h = 14h, 2h = 7200 s owed.
    # The at-risk point (12h accrued: Tue 13:00 CET = 12:00Z) came before the pause, and the
    # unpaused due (Tue 17:00 CET) is long past at now, yet the target is only paused.
    history = [("2026-03-03T14:00:00Z", "pending")]
    decision = gold(
        contracts,
        "sev1",
        "2026-03-02T08:00:00Z",
        "2026-03-20T12:00:00Z",
        history,
        first_agent_reply_at="2026-03-02T08:30:00Z",
    )
    target = resolution(decision)
    assert (target.due, target.state, target.owed_seconds) == (None, "paused", 7200)
    assert target.at_risk_at == z("2026-03-03T12:00:00Z")
    assert "sla_paused" in decision.tags
    assert "sla_at_risk" not in decision.tags
    assert "sla_breached" not in decision.tags
    assert decision.next_change_at is None
    assert "resolution: paused, 2h00 still owed" in decision.note


def test_a_paused_target_gives_no_wake_up_the_others_do(contracts: dict[str, Contract]) -> None:
    # The example ticket (gold sev2, created Mon 09:15 CET, pending from 11:00 CET) at
    # Mon 13:00 CET: first_response (8 business hours, at risk after 6h: Mon 15:15 CET =
    # 14:15Z) is running; the paused resolution adds nothing, so the next change is 14:15Z.
    decision = gold(
        contracts,
        "sev2",
        "2026-03-02T08:15:00Z",
        "2026-03-02T12:00:00Z",
        [("2026-03-02T10:00:00Z", "pending")],
    )
    assert resolution(decision).state == "paused"
    assert decision.targets["first_response"].state == "running"
    assert decision.next_change_at == z("2026-03-02T14:15:00Z")


def test_status_changes_after_now_are_ignored(contracts: dict[str, Contract]) -> None:
    # Pending Mon 11:00 CET, open Tue 09:30 CET, decided Mon 16:00Z (17:00 CET): the reopening
    # has not happened yet, so the target is paused with 22h15 = 80100 s owed.
    history = [("2026-03-02T10:00:00Z", "pending"), ("2026-03-03T08:30:00Z", "open")]
    target = resolution(
        gold(contracts, "sev2", "2026-03-02T08:15:00Z", "2026-03-02T16:00:00Z", history)
    )
    assert (target.due, target.state, target.owed_seconds) == (None, "paused", 80100)


def test_entering_pending_exactly_at_now_pauses(contracts: dict[str, Contract]) -> None:
    # The status at an instant is the latest entry at or before it.
    history = [("2026-03-02T10:00:00Z", "pending")]
    target = resolution(
        gold(contracts, "sev2", "2026-03-02T08:15:00Z", "2026-03-02T10:00:00Z", history)
    )
    assert (target.state, target.owed_seconds) == ("paused", 80100)


def test_entries_at_one_instant_do_not_split_a_spell(contracts: dict[str, Contract]) -> None:
    # Gold sev1, 16 business hours, created Mon 2 March 09:00 CET (08:00Z). Pending from
    # 10:00 CET (09:00Z). At 17:00 CET (16:00Z) two entries: open, then pending: the last one at
    # an instant holds, so the ticket is pending without a break from 10:00 CET, exactly as
    # with the single pending entry. Both decisions must be the same: paused at Tue 11:00 CET,
    # 1h accrued, 15h = 54000 s owed.
    single = [("2026-03-02T09:00:00Z", "pending")]
    tie = [*single, ("2026-03-02T16:00:00Z", "open"), ("2026-03-02T16:00:00Z", "pending")]
    now = "2026-03-03T10:00:00Z"
    expected = resolution(gold(contracts, "sev1", "2026-03-02T08:00:00Z", now, single))
    assert (expected.state, expected.owed_seconds) == ("paused", 54000)
    got = resolution(gold(contracts, "sev1", "2026-03-02T08:00:00Z", now, tie))
    assert got == expected


def test_entries_at_one_instant_the_last_holds(contracts: dict[str, Contract]) -> None:
    # The due does not depend on the break: pending from 10:00 CET with an open-then-pending
    # pair at 17:00 CET, open again Tue 10:00 CET (09:00Z). Accrued Mon 09:00-10:00 1h; 15h
    # owed from Tue 10:00: Tue 7h, Wed 8h: due Wed 4 March 17:00 CET = 16:00Z. Paused: Mon
    # 10:00-17:00 7h + Tue 09:00-10:00 1h = 8h.
    history = [
        ("2026-03-02T09:00:00Z", "pending"),
        ("2026-03-02T16:00:00Z", "open"),
        ("2026-03-02T16:00:00Z", "pending"),
        ("2026-03-03T09:00:00Z", "open"),
    ]
    target = resolution(
        gold(contracts, "sev1", "2026-03-02T08:00:00Z", "2026-03-03T10:00:00Z", history)
    )
    assert (target.due, target.paused_seconds) == (z("2026-03-04T16:00:00Z"), 8 * 3600)


def test_a_break_while_the_office_is_closed_changes_nothing_while_paused(
    contracts: dict[str, Contract],
) -> None:
    # Gold sev1, 16 business hours, created Mon 2 March 09:00 CET (08:00Z), pending from 10:00
    # CET. Open at the close (17:00 CET) and pending again at 17:30 CET: the break lies where
    # Berlin is closed, so in business time the ticket is pending without a break from 10:00
    # CET. At Tue 11:00 CET both tickets have accrued 1h and owe 15h = 54000 s, and nothing
    # in their business time differs: their decisions must be the same.
    single = [("2026-03-02T09:00:00Z", "pending")]
    broken = [*single, ("2026-03-02T16:00:00Z", "open"), ("2026-03-02T16:30:00Z", "pending")]
    now = "2026-03-03T10:00:00Z"
    expected = gold(contracts, "sev1", "2026-03-02T08:00:00Z", now, single)
    assert (resolution(expected).state, resolution(expected).owed_seconds) == ("paused", 54000)
    got = gold(contracts, "sev1", "2026-03-02T08:00:00Z", now, broken)
    assert got.targets == expected.targets
    assert got.note == expected.note


def test_a_break_while_the_office_is_closed_moves_no_due(contracts: dict[str, Contract]) -> None:
    # The same tickets, open again Tue 10:30 CET (09:30Z): 15h owed from there: Tue 6h30, Wed
    # 8h, Thu 09:00-09:30 CET: due Thu 5 March 09:30 CET = 08:30Z. Paused: Mon 10:00-17:00 7h
    # + Tue 09:00-10:30 1h30 = 8h30, with or without the break.
    single = [("2026-03-02T09:00:00Z", "pending"), ("2026-03-03T09:30:00Z", "open")]
    broken = [
        single[0],
        ("2026-03-02T16:00:00Z", "open"),
        ("2026-03-02T16:30:00Z", "pending"),
        single[1],
    ]
    for history in (single, broken):
        target = resolution(
            gold(contracts, "sev1", "2026-03-02T08:00:00Z", "2026-03-03T10:00:00Z", history)
        )
        assert (target.due, target.paused_seconds) == (z("2026-03-05T08:30:00Z"), 30600)


# -- time run out before the pause --------------------------------------------------------------


def test_time_run_out_before_the_pause_keeps_its_due_and_breaches(
    contracts: dict[str, Contract],
) -> None:
    # Gold sev1, 16 business hours from Mon 2 March 09:00 CET: Mon 8h + Tue 8h = due Tue
    # 17:00 CET = 16:00Z. Pending Wed 4 March from 11:00 CET, still pending at now.
    history = [("2026-03-04T10:00:00Z", "pending")]
    decision = gold(
        contracts,
        "sev1",
        "2026-03-02T08:00:00Z",
        "2026-03-05T10:00:00Z",
        history,
        first_agent_reply_at="2026-03-02T08:30:00Z",
    )
    target = resolution(decision)
    assert (target.due, target.state) == (z("2026-03-03T16:00:00Z"), "breached")
    assert target.owed_seconds is None
    assert target.paused_seconds is None
    assert "sla_breached" in decision.tags
    assert "sla_paused" not in decision.tags
    assert decision.next_change_at is None


@pytest.mark.parametrize(
    ("pending_at", "state", "owed"),
    [
        # Pending from the due instant itself: [16:00Z, ...) is paused, but the 16 hours have
        # accrued on [08:00Z Mon, 16:00Z Tue): due there, and breached a second later.
        ("2026-03-03T16:00:00Z", "breached", None),
        # Pending a minute earlier: one minute (60 s) is still owed.
        ("2026-03-03T15:59:00Z", "paused", 60),
    ],
)
def test_a_pause_at_the_due_instant(
    contracts: dict[str, Contract], pending_at: str, state: str, owed: int | None
) -> None:
    history = [(pending_at, "pending")]
    target = resolution(
        gold(contracts, "sev1", "2026-03-02T08:00:00Z", "2026-03-04T10:00:00Z", history)
    )
    assert (target.state, target.owed_seconds) == (state, owed)
    assert target.due == (z("2026-03-03T16:00:00Z") if owed is None else None)


# -- solved while paused ------------------------------------------------------------------------


def test_solved_while_paused_with_time_owed_is_achieved(contracts: dict[str, Contract]) -> None:
    # Gold sev1, 16 business hours from Mon 2 March 09:00 CET. Pending Tue 15:00 CET: 14h
    # accrued, 2h owed. Solved Thu 5 March 11:00 CET while still pending: achieved, although
    # the unpaused due (Tue 17:00 CET) is two days before the solve.
    history = [("2026-03-03T14:00:00Z", "pending")]
    target = resolution(
        gold(
            contracts,
            "sev1",
            "2026-03-02T08:00:00Z",
            "2026-03-06T10:00:00Z",
            history,
            solved_at="2026-03-05T10:00:00Z",
        )
    )
    assert target.state == "achieved"
    assert target.achieved_at == z("2026-03-05T10:00:00Z")
    assert target.due is None or target.due >= z("2026-03-05T10:00:00Z")


def test_solved_while_paused_after_the_time_ran_out_is_breached(
    contracts: dict[str, Contract],
) -> None:
    # Due Tue 3 March 16:00Z (16 hours from Mon 09:00 CET); pending only from Wed 11:00 CET,
    # solved Wed 13:00 CET during the pause: the time had run out, breached.
    history = [("2026-03-04T10:00:00Z", "pending")]
    target = resolution(
        gold(
            contracts,
            "sev1",
            "2026-03-02T08:00:00Z",
            "2026-03-06T10:00:00Z",
            history,
            solved_at="2026-03-04T12:00:00Z",
        )
    )
    assert (target.state, target.due) == ("breached", z("2026-03-03T16:00:00Z"))


@pytest.mark.parametrize(
    ("solved", "state"),
    [("2026-03-04T10:00:00Z", "achieved"), ("2026-03-04T10:00:01Z", "breached")],
)
def test_solved_after_the_pause_is_judged_on_accrued_time(
    contracts: dict[str, Contract], solved: str, state: str
) -> None:
    # Pending Tue 15:00 CET (14h accrued) -> open Wed 4 March 09:00 CET (08:00Z): 2h owed,
    # due Wed 11:00 CET = 10:00Z. Solved at that instant: achieved; a second later: breached.
    history = [("2026-03-03T14:00:00Z", "pending"), ("2026-03-04T08:00:00Z", "open")]
    target = resolution(
        gold(
            contracts,
            "sev1",
            "2026-03-02T08:00:00Z",
            "2026-03-06T10:00:00Z",
            history,
            solved_at=solved,
        )
    )
    assert (target.due, target.state) == (z("2026-03-04T10:00:00Z"), state)
    assert target.paused_seconds == 2 * 3600  # Tue 15:00-17:00; Wed opened at 09:00


# -- recurring response -------------------------------------------------------------------------


def enterprise(now: str, history: Sequence[tuple[str, str]], contracts, **events: Any) -> Decision:
    return run(
        contracts["pix4dengine-enterprise"],
        now,
        history,
        created_at="2026-03-02T08:00:00Z",  # Mon 2 March 09:00 CET
        contract="pix4dengine-enterprise",
        severity="major",  # 4 business hours a cycle
        region="europe",  # central_europe: Zurich 09:00-17:00, CH-VD
        events=events,
    )


def test_a_recurring_response_pauses_within_its_cycle(contracts: dict[str, Contract]) -> None:
    # Cycle 1: Mon 09:00 CET, answered at 11:00 CET (10:00Z; its due was 13:00 CET): kept.
    # Cycle 2 from 11:00 CET. Pending 13:00 CET (12:00Z) -> open Tue 3 March 10:00 CET (09:00Z).
    # Accrued 11:00-13:00 = 2h; 2h owed from Tue 10:00: due Tue 12:00 CET = 11:00Z.
    # Paused: Mon 13:00-17:00 4h + Tue 09:00-10:00 1h = 5h. At risk at 3h accrued: Tue 11:00
    # CET = 10:00Z.
    history = [("2026-03-02T12:00:00Z", "pending"), ("2026-03-03T09:00:00Z", "open")]
    decision = enterprise(
        "2026-03-03T09:30:00Z",
        history,
        contracts,
        first_agent_reply_at="2026-03-02T10:00:00Z",
        agent_replies=["2026-03-02T10:00:00Z"],
    )
    target = decision.targets["response"]
    assert (target.cycle, target.cycles_breached) == (2, 0)
    assert target.due == z("2026-03-03T11:00:00Z")
    assert target.paused_seconds == 5 * 3600
    assert target.at_risk_at == z("2026-03-03T10:00:00Z")
    assert target.state == "running"
    assert decision.next_change_at == z("2026-03-03T10:00:00Z")


def test_a_recurring_response_paused_at_now(contracts: dict[str, Contract]) -> None:
    # Same ticket at Mon 16:00 CET (15:00Z): the reopening of Tuesday is after now. Cycle 2 has
    # accrued 11:00-13:00 = 2h of its 4h: 7200 s owed, paused.
    history = [("2026-03-02T12:00:00Z", "pending"), ("2026-03-03T09:00:00Z", "open")]
    decision = enterprise(
        "2026-03-02T15:00:00Z",
        history,
        contracts,
        first_agent_reply_at="2026-03-02T10:00:00Z",
    )
    target = decision.targets["response"]
    assert (target.cycle, target.state, target.due, target.owed_seconds) == (
        2,
        "paused",
        None,
        7200,
    )
    assert "sla_paused" in decision.tags
    assert decision.next_change_at is None


@pytest.mark.parametrize(("status", "missed"), [("pending", 0), ("on_hold", 1)])
def test_a_pause_in_an_earlier_cycle_decides_whether_it_was_missed(
    contracts: dict[str, Contract], status: str, missed: int
) -> None:
    # Cycle 1 from Mon 09:00 CET; pending 10:30 CET (09:30Z) -> open Tue 09:00 CET (08:00Z).
    # Accrued 1h30, 2h30 owed from Tue 09:00: cycle 1 due Tue 11:30 CET. The reply comes Tue
    # 11:00 CET (10:00Z): in time. Unpaused (on_hold pauses nothing here) cycle 1 was due Mon
    # 13:00 CET, so the same reply missed it.
    # Cycle 2 from Tue 11:00 CET, no pause: due 15:00 CET = 14:00Z either way.
    history = [("2026-03-02T09:30:00Z", status), ("2026-03-03T08:00:00Z", "open")]
    decision = enterprise(
        "2026-03-03T11:00:00Z", history, contracts, agent_replies=["2026-03-03T10:00:00Z"]
    )
    target = decision.targets["response"]
    assert (target.cycle, target.cycles_breached) == (2, missed)
    assert (target.due, target.state) == (z("2026-03-03T14:00:00Z"), "running")
    assert target.paused_seconds is None  # the spell lies in cycle 1 only


# -- a union of offices -------------------------------------------------------------------------


def test_a_union_of_offices_pauses_on_the_union(contracts: dict[str, Contract]) -> None:
    # pix4d-premium, offices Lausanne + Tokyo, severity information: workaround 24 business
    # hours. June 2026: Lausanne 09:00-17:00 CEST = 07:00-15:00Z, Tokyo 09:00-17:00 JST =
    # 00:00-08:00Z; the union is open 00:00-15:00Z on weekdays (15 h: the 07:00-08:00Z overlap
    # counts once). No holiday of CH or JP between 1 and 3 June.
    # Created Mon 1 June 06:00Z. Pending 07:30Z -> open Tue 2 June 07:30Z.
    # Accrued Mon 06:00-07:30 = 1h30; 22h30 owed: Tue 07:30-15:00 7h30, Wed 00:00-15:00 15h:
    # due Wed 3 June 15:00Z (Lausanne's 17:00 close). Paused: Mon 07:30-15:00 7h30 + Tue
    # 00:00-07:30 7h30 = 15h, one union day (16h if the overlap were counted twice).
    # Unpaused: Mon 06:00-15:00 9h + Tue 15h = Tue 15:00Z.
    # At risk at 18h accrued: 1h30 + 7h30 + Wed 9h = Wed 09:00Z.
    history = [("2026-06-01T07:30:00Z", "pending"), ("2026-06-02T07:30:00Z", "open")]
    data: dict[str, Any] = {
        "created_at": "2026-06-01T06:00:00Z",
        "contract": "pix4d-premium",
        "severity": "information",
        "customer_facts": {"offices": ["lausanne", "tokyo"]},
        "events": {"first_agent_reply_at": "2026-06-01T06:30:00Z"},
    }
    decision = run(contracts["pix4d-premium"], "2026-06-02T12:00:00Z", history, **data)
    target = decision.targets["workaround"]
    assert target.due == z("2026-06-03T15:00:00Z")
    assert target.paused_seconds == 15 * 3600
    assert target.at_risk_at == z("2026-06-03T09:00:00Z")
    assert target.state == "running"
    plain = run(contracts["pix4d-premium"], "2026-06-02T12:00:00Z", **data)
    assert plain.targets["workaround"].due == z("2026-06-02T15:00:00Z")


def test_a_union_of_offices_paused_at_now(contracts: dict[str, Contract]) -> None:
    # Same ticket, still pending at Tue 12:00Z: 24h - 1h30 = 22h30 = 81000 s owed.
    data: dict[str, Any] = {
        "created_at": "2026-06-01T06:00:00Z",
        "contract": "pix4d-premium",
        "severity": "information",
        "customer_facts": {"offices": ["tokyo", "lausanne"]},
    }
    decision = run(
        contracts["pix4d-premium"],
        "2026-06-02T12:00:00Z",
        [("2026-06-01T07:30:00Z", "pending")],
        **data,
    )
    target = decision.targets["workaround"]
    assert (target.state, target.owed_seconds) == ("paused", 81000)


# -- what pauses and what does not --------------------------------------------------------------

BUNDLED_TICKETS: dict[str, dict[str, Any]] = {
    "photoprism": {"plan": "enterprise", "severity": "sev2"},
    "pix4d-premium": {"severity": "severe", "customer_facts": {"offices": ["denver"]}},
    "pix4dengine-enterprise": {
        "severity": "moderate",
        "region": "north_america",
        "events": {"agent_replies": ["2026-03-03T18:00:00Z"]},
    },
}


@pytest.mark.parametrize("name", sorted(BUNDLED_TICKETS))
@pytest.mark.parametrize("now", ["2026-03-03T20:00:00Z", "2026-03-20T12:00:00Z"])
def test_on_hold_pauses_no_bundled_target(
    contracts: dict[str, Contract], name: str, now: str
) -> None:
    # Waiting on a third party (on_hold) stops no clock of the bundled contracts: a decision
    # with an on_hold spell (closed, and one still open at now) is that of the same ticket
    # without any history.
    data = {"created_at": "2026-03-02T15:00:00Z", "contract": name, **BUNDLED_TICKETS[name]}
    plain = run(contracts[name], now, **data)
    for history in (
        [("2026-03-02T16:00:00Z", "on_hold"), ("2026-03-03T16:00:00Z", "open")],
        [("2026-03-02T16:00:00Z", "on_hold")],
    ):
        assert run(contracts[name], now, history, **data) == plain


@pytest.mark.parametrize(
    ("name", "first"),
    [("photoprism", "first_response"), ("pix4d-premium", "first_contact")],
)
def test_first_responses_never_pause(contracts: dict[str, Contract], name: str, first: str) -> None:
    # The first answer is owed whatever the status: a pending spell leaves it as it was,
    # while the contract's later target does pause.
    data = {"created_at": "2026-03-02T15:00:00Z", "contract": name, **BUNDLED_TICKETS[name]}
    history = [("2026-03-02T15:30:00Z", "pending"), ("2026-03-04T16:00:00Z", "open")]
    plain = run(contracts[name], "2026-03-05T12:00:00Z", **data)
    paused = run(contracts[name], "2026-03-05T12:00:00Z", history, **data)
    assert paused.targets[first] == plain.targets[first]
    later = "resolution" if name == "photoprism" else "workaround"
    assert paused.targets[later].paused_seconds
    assert paused.targets[later].due > plain.targets[later].due  # type: ignore[operator]


# -- a plain-hours target -----------------------------------------------------------------------


def restore(
    pause_clock: Contract, now: str, history: Sequence[tuple[str, str]], **data: Any
) -> tuple[Decision, TargetResult]:
    values: dict[str, Any] = {"contract": "pause-clock", **data}
    values.setdefault("customer_facts", {"offices": ["berlin"]})
    decision = run(pause_clock, now, history, **values)
    return decision, decision.targets["restore"]


@pytest.mark.parametrize(
    ("created", "pending", "reopened"),
    [
        # Spring forward. Created Sat 28 March 20:00Z; pending 22:00Z (23:00 CET) -> open Sun
        # 29 March 04:00Z (06:00 CEST): 6 h elapsed paused, though the wall clock shows 7 h.
        ("2026-03-28T20:00:00Z", "2026-03-28T22:00:00Z", "2026-03-29T04:00:00Z"),
        # Fall back. Created Sat 24 October 20:00Z; pending 22:00Z (Sun 00:00 CEST) -> open
        # Sun 25 October 04:00Z (05:00 CET): 6 h elapsed, 5 h on the wall clock.
        ("2026-10-24T20:00:00Z", "2026-10-24T22:00:00Z", "2026-10-25T04:00:00Z"),
    ],
)
def test_a_plain_hours_target_pauses_elapsed_time(
    pause_clock: Contract, created: str, pending: str, reopened: str
) -> None:
    # p1 restore: 8 hours, elapsed (night and weekend count), paused by pending and on_hold.
    # The spell goes pending -> on_hold (at its midpoint: 01:00Z, the DST change itself in the
    # spring) -> open: one pause of 6 h = 21600 s. Accrued 2h before it, 6h owed after it:
    # due = reopened + 6h (10:00Z); at risk at 6h accrued = reopened + 4h (08:00Z).
    middle = (z(pending) + (z(reopened) - z(pending)) / 2).isoformat()
    history = [(pending, "pending"), (middle, "on_hold"), (reopened, "open")]
    decision, target = restore(
        pause_clock,
        reopened,
        history,
        created_at=created,
        severity="p1",
        events={"first_agent_reply_at": created},
    )
    assert target.due == z(reopened) + timedelta(hours=6)
    assert target.due.time().isoformat() == "10:00:00"  # type: ignore[union-attr]
    assert target.at_risk_at == z(reopened) + timedelta(hours=4)
    assert target.paused_seconds == 6 * 3600
    assert target.state == "running"
    assert decision.next_change_at == target.at_risk_at
    # Unpaused, 8 hours after creation; the unpaused reaction target is untouched.
    plain = run(pause_clock, reopened, contract="pause-clock", created_at=created, severity="p1")
    assert plain.targets["restore"].due == z(created) + timedelta(hours=8)
    assert decision.targets["reaction"].due == plain.targets["reaction"].due


def test_a_plain_hours_target_paused_at_now(pause_clock: Contract) -> None:
    # Created Sat 28 March 20:00Z, on_hold from 22:00Z, still on hold at Mon 30 March 12:00Z:
    # 2h accrued, 6h = 21600 s owed.
    decision, target = restore(
        pause_clock,
        "2026-03-30T12:00:00Z",
        [("2026-03-28T22:00:00Z", "on_hold")],
        created_at="2026-03-28T20:00:00Z",
        severity="p1",
        events={"first_agent_reply_at": "2026-03-28T20:30:00Z"},
    )
    assert (target.due, target.state, target.owed_seconds) == (None, "paused", 21600)
    assert "sla_paused" in decision.tags
    assert decision.next_change_at is None


def test_on_hold_pauses_where_the_contract_says_so(pause_clock: Contract) -> None:
    # p2 restore: 10 business hours, Berlin desk. Created Mon 2 March 09:00 CET (08:00Z);
    # on_hold 11:00 CET -> open Tue 09:00 CET: accrued 2h, 8h owed from Tue 09:00: due Tue
    # 17:00 CET = 16:00Z (at the close). Paused: Mon 11:00-17:00 = 6h.
    _, target = restore(
        pause_clock,
        "2026-03-03T09:00:00Z",
        [("2026-03-02T10:00:00Z", "on_hold"), ("2026-03-03T08:00:00Z", "open")],
        created_at="2026-03-02T08:00:00Z",
        severity="p2",
    )
    assert target.due == z("2026-03-03T16:00:00Z")
    assert target.paused_seconds == 6 * 3600


# -- the loader refuses pausing promises about a day --------------------------------------------

NEXT_DAY = """\
name: nextday
title: Next day
zone: Europe/Berlin
calendars:
  office:
    zone: Europe/Berlin
    hours: {mon-fri: ["09:00-17:00"]}
calendar_choice: {by: fixed, calendar: office}
severities:
  p1: {priority: urgent}
  p2: {priority: high}
targets:
  delivery:
    achieved_by: [delivered_at]
    paused_by: [pending]
    by_severity: {p1: 4 business_hours, p2: DURATION}
"""


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_contract(path)
    lines = str(caught.value).splitlines()
    assert len(lines) == len(caught.value.problems)
    return lines


def test_the_loader_refuses_paused_by_on_next_day_at(tmp_path: Path) -> None:
    path = tmp_path / "nextday.yaml"
    # Even when only one severity's duration is next_day_at.
    path.write_text(NEXT_DAY.replace("DURATION", "next_day_at 09:00"), encoding="utf-8")
    assert problems(path) == [
        f"{path}:15: targets.delivery.paused_by: next_day_at is a promise about a calendar day:"
        " it never pauses"
    ]
    # The same target on an amount of business time loads.
    path.write_text(NEXT_DAY.replace("DURATION", "8 business_hours"), encoding="utf-8")
    assert load_contract(path).spec.targets["delivery"].paused_by == ["pending"]


def test_the_loader_refuses_paused_by_when_the_expedited_variant_is_next_day_at(
    tmp_path: Path,
) -> None:
    path = tmp_path / "nextday.yaml"
    text = NEXT_DAY.replace("DURATION", "8 business_hours") + (
        "    expedite: {flag: expedite, duration: next_day_at 09:00}\n"
    )
    path.write_text(text, encoding="utf-8")
    assert problems(path) == [
        f"{path}:15: targets.delivery.paused_by: next_day_at is a promise about a calendar day:"
        " it never pauses"
    ]


def test_the_loader_refuses_paused_by_on_a_capacity_target(tmp_path: Path) -> None:
    text = (MAPPINGS / "contracts" / "pixelz.yaml").read_text(encoding="utf-8")
    marker = "    achieved_by: [delivered_at]\n"
    assert text.count(marker) == 1
    line = text[: text.index(marker)].count("\n") + 2  # the line after achieved_by
    path = tmp_path / "pixelz.yaml"
    path.write_text(text.replace(marker, marker + "    paused_by: [pending]\n"), encoding="utf-8")
    assert problems(path) == [
        f"{path}:{line}: targets.delivery.paused_by: a target with a daily capacity is a promise"
        " about a day: it never pauses"
    ]


def test_the_loader_refuses_a_status_that_cannot_pause(tmp_path: Path) -> None:
    path = tmp_path / "nextday.yaml"
    text = NEXT_DAY.replace("DURATION", "8 business_hours").replace("[pending]", "[solved]")
    path.write_text(text, encoding="utf-8")
    (line,) = problems(path)
    assert line.startswith(f"{path}:15: targets.delivery.paused_by.0")


# -- the command line ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statuses", "due", "state", "owed"),
    [
        # The worked example: running again, due Thu 5 March 15:45 CET; still paused, 22h15 owed.
        (["pending@2026-03-02T10:00:00Z", "open@2026-03-03T08:30:00Z"], "2026-03-05T14:45:00Z",
         "running", None),
        (["pending@2026-03-02T10:00:00Z"], None, "paused", 80100),
    ],
)  # fmt: skip
def test_sla_compute_takes_the_status_history(
    capsys: pytest.CaptureFixture[str],
    statuses: list[str],
    due: str | None,
    state: str,
    owed: int | None,
) -> None:
    argv = ["sla", "compute", "--contract", "photoprism", "--plan", "gold", "--severity", "sev2"]
    argv += ["--created", "2026-03-02T08:15:00Z", "--now", "2026-03-03T10:00:00Z", "--json"]
    for status in statuses:
        argv += ["--status", status]
    assert main([*argv, "--mappings", str(MAPPINGS)]) == 0
    target = json.loads(capsys.readouterr().out)["targets"]["resolution"]
    assert (target["due"], target["state"], target["owed_seconds"]) == (due, state, owed)
