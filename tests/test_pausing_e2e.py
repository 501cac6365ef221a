"""A ticket waiting on the customer, end to end: sandbox helpdesk → Sync → sandbox helpdesk.

An agent sets a new photoprism gold sev1 ticket to pending (a built-in status, or a custom
status the mapping puts in the pending category) late on a Friday and back to open on Monday
morning. While pending the resolution clock is paused: no due instant, `sla_paused`, no breach,
no wake-up for it; Zendesk's due text field says so, Freshdesk's `due_by` is left alone. Once
open again the due moves by exactly the business time spent pending (contracts.md §1).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog

from connector.app import load_rules
from connector.cli.demo import demo_settings
from connector.cli.explain import explain
from connector.sandbox.faults import FaultKind
from connector.service.rules import Rules
from connector.sla.model import StatusChange
from tests.test_sync_e2e import FRESHDESK_URL, Desk, new_ticket, open_desk

TICKET = 1300
RESOLUTION_TEXT = 9100103  # the Zendesk example mapping's resolution due text field
CUSTOM = {"zendesk": 4044396, "freshdesk": 6}
EVENTS = "/api/v2/incremental/ticket_events.json"  # a custom status in the pending category


@pytest.fixture(params=["zendesk", "freshdesk"])
def desk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Desk]:
    desk = open_desk(request.param, tmp_path)
    yield desk
    desk.state.close()


def resolution_due(desk: Desk) -> str | datetime | None:
    ticket = desk.tickets()[TICKET]
    if desk.name == "zendesk":
        value: str | None = ticket.fields.get(RESOLUTION_TEXT)
        return value
    due: datetime | None = ticket.due_by
    return due


def business_calendar(desk: Desk) -> object:
    settings = demo_settings(desk.name, FRESHDESK_URL, Path("unused"))
    return load_rules(settings).contracts["photoprism"].calendar(("berlin",), "UTC")


@pytest.mark.parametrize("custom", [False, True], ids=["pending", "custom pending status"])
def test_pending_pauses_the_resolution_and_resuming_moves_its_due(desk: Desk, custom: bool) -> None:
    desk.run()
    new_ticket(desk, TICKET)  # Friday 2026-03-06, 16:01 in Berlin
    desk.sandbox.agent_reply(TICKET, helpdesk=desk.name)  # the first response is kept
    desk.run()
    before = resolution_due(desk)
    assert before is not None
    assert "sla_paused" not in desk.tags(TICKET)

    desk.clock.advance(600)
    paused_at = desk.clock().replace(microsecond=0)
    desk.sandbox.set_status(
        TICKET, "pending", custom=CUSTOM[desk.name] if custom else None, helpdesk=desk.name
    )
    desk.run()
    assert "sla_paused" in desk.tags(TICKET)
    if desk.name == "zendesk":
        shown = resolution_due(desk)
        assert isinstance(shown, str)
        assert shown.startswith("paused, ")
        assert shown.endswith(" still owed")
    else:
        assert resolution_due(desk) == before  # Freshdesk's own field is left as it was

    # Over the weekend and past the old due instant: still paused, never breached, no wake-up.
    desk.clock.advance((datetime(2026, 3, 11, 10, 0, tzinfo=UTC) - desk.clock()).total_seconds())
    assert desk.state.wakeup_of(str(TICKET)) is None
    desk.run()
    assert "sla_paused" in desk.tags(TICKET)
    assert "sla_breached" not in desk.tags(TICKET)

    resumed_at = desk.clock().replace(microsecond=0)
    desk.sandbox.set_status(TICKET, "open", helpdesk=desk.name)
    desk.run()
    tags = desk.tags(TICKET)
    assert "sla_paused" not in tags
    history = desk.state.status_history(str(TICKET))
    assert history[-2:] == [
        StatusChange(at=paused_at, status="pending"),
        StatusChange(at=resumed_at, status="open"),
    ]
    calendar = business_calendar(desk)
    paused = calendar.elapsed(paused_at, resumed_at)  # type: ignore[attr-defined]
    # Berlin: Fri 16:12:02-17:00 (0h47m58s), Mon and Tue (16h), Wed 09:00-11:01:01 (2h01m01s).
    assert paused == timedelta(hours=18, minutes=48, seconds=59)
    old = before if isinstance(before, datetime) else datetime.fromisoformat(before)
    expected = calendar.add(old, paused)  # type: ignore[attr-defined]
    after = resolution_due(desk)
    shown_after = after if isinstance(after, datetime) else datetime.fromisoformat(str(after))
    assert shown_after == expected

    # `explain` shows the history it knows and the spell that moved the due instant.
    item = desk.sync.helpdesk.fetch([str(TICKET)])[0]
    text = explain(item, desk.sync.helpdesk, desk.state, desk.sync.rules, desk.clock())
    assert "Status history (known from " in text
    assert "    paused Fri 2026-03-06 16:12 CET to Wed 2026-03-11 11:01 CET (status pending)\n" in (
        text
    )
    assert "\n    due " in text


def test_zendesk_events_give_a_spell_no_poll_saw(tmp_path: Path) -> None:
    """Pending and open again between two polls: the ticket export shows it open, as before,
    but Zendesk's ticket events export has both changes, and the due moves by the spell."""
    desk = open_desk("zendesk", tmp_path)
    desk.run()
    new_ticket(desk, TICKET)
    desk.sandbox.agent_reply(TICKET, helpdesk="zendesk")
    desk.run()
    before = datetime.fromisoformat(str(resolution_due(desk)))
    desk.clock.advance(300)
    paused_at = desk.clock().replace(microsecond=0)
    desk.sandbox.set_status(TICKET, "pending", helpdesk="zendesk")
    desk.clock.advance(1200)
    resumed_at = desk.clock().replace(microsecond=0)
    desk.sandbox.set_status(TICKET, "open", helpdesk="zendesk")
    desk.run()
    history = desk.state.status_history(str(TICKET))
    assert history[-2:] == [
        StatusChange(at=paused_at, status="pending"),
        StatusChange(at=resumed_at, status="open"),
    ]
    calendar = business_calendar(desk)
    paused = calendar.elapsed(paused_at, resumed_at)  # type: ignore[attr-defined]
    assert paused == timedelta(minutes=20)  # Friday 16:06:02 to 16:26:02 in Berlin, all open
    after = datetime.fromisoformat(str(resolution_due(desk)))
    assert after == calendar.add(before, paused)  # type: ignore[attr-defined]
    # Read again, the same audits change nothing.
    writes = desk.writes()
    desk.run()
    assert desk.writes() == writes


def test_the_status_stream_failing_never_holds_up_the_poll(tmp_path: Path) -> None:
    desk = open_desk("zendesk", tmp_path)
    desk.run()
    new_ticket(desk, TICKET)
    desk.sandbox.agent_reply(TICKET, helpdesk="zendesk")
    desk.sandbox.set_status(TICKET, "pending", helpdesk="zendesk")
    fault = desk.sandbox.faults.add(
        FaultKind.SERVER_ERROR, helpdesk="zendesk", path=EVENTS, count=None
    )
    with structlog.testing.capture_logs() as logs:
        desk.run()
    assert [e["event"] for e in logs].count("status_stream_failed") == 1
    assert "sla_paused" in desk.tags(TICKET)  # the poll went on, and observed the status
    cursor = desk.state.cursor("statuses")
    desk.sandbox.faults.remove(fault.id)
    desk.run()
    assert desk.state.cursor("statuses") != cursor  # read from where it stopped


def test_freshdesk_due_dates_follow_the_accounts_own_sla_timer_flags(tmp_path: Path) -> None:
    """An account where "Waiting on Third Party" (7) stops Freshdesk's SLA timer: the admin
    field definitions say so, and a ticket in 7 gets its tags and note with no due date sent
    (Freshdesk would refuse the whole update). The mapping puts 7 in on_hold, which pauses
    nothing bundled, so only the account's own flag can tell."""
    desk = open_desk("freshdesk", tmp_path)
    desk.sandbox.freshdesk.sla_stopped = frozenset({3, 4, 5, 6, 7})
    desk.run()
    new_ticket(desk, TICKET)
    desk.sandbox.set_status(TICKET, "on_hold", custom=7, helpdesk="freshdesk")
    totals = desk.run()
    assert totals.failed == 0
    assert "sla_photoprism" in desk.tags(TICKET)
    assert len(desk.notes(TICKET)) == 1
    ticket = desk.tickets()[TICKET]
    before = (ticket.fr_due_by, ticket.due_by)
    desk.sandbox.set_status(TICKET, "open", helpdesk="freshdesk")
    desk.run()
    ticket = desk.tickets()[TICKET]
    assert (ticket.fr_due_by, ticket.due_by) != before  # written once the timer runs again


def test_a_zendesk_change_within_one_category_takes_the_custom_statuses_category(
    tmp_path: Path,
) -> None:
    """The mapping counts "Awaiting your reply" (4044396, pending in Zendesk) as open; between
    two polls an agent moves the ticket to "Waiting on logs" (4044397, pending) and back. The
    audits name no status, only custom status ids: the account's custom statuses say the
    first change entered pending, and the spell moves the due."""
    desk = open_desk("zendesk", tmp_path)
    mapping = desk.sync.rules.mapping
    facts = mapping.facts.model_copy(update={"statuses": {"4044396": "open"}})
    desk.sync.rules = Rules(desk.sync.rules.contracts, mapping.model_copy(update={"facts": facts}))
    desk.run()
    new_ticket(desk, TICKET)
    desk.sandbox.agent_reply(TICKET, helpdesk="zendesk")
    desk.sandbox.set_status(TICKET, "pending", custom=4044396, helpdesk="zendesk")
    desk.run()
    assert "sla_paused" not in desk.tags(TICKET)  # pending in Zendesk, open by the mapping
    before = datetime.fromisoformat(str(resolution_due(desk)))
    desk.clock.advance(300)
    paused_at = desk.clock().replace(microsecond=0)
    desk.sandbox.set_status(TICKET, "pending", custom=4044397, helpdesk="zendesk")
    desk.clock.advance(600)
    resumed_at = desk.clock().replace(microsecond=0)
    desk.sandbox.set_status(TICKET, "pending", custom=4044396, helpdesk="zendesk")
    desk.run()
    history = desk.state.status_history(str(TICKET))
    assert history[-2:] == [
        StatusChange(at=paused_at, status="pending"),
        StatusChange(at=resumed_at, status="open"),
    ]
    calendar = business_calendar(desk)
    after = datetime.fromisoformat(str(resolution_due(desk)))
    assert after == calendar.add(before, timedelta(minutes=10))  # type: ignore[attr-defined]
