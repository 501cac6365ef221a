"""Paused clocks (contracts.md §1, "Pausing"): properties, and agreement with a reference.

The reference below walks time minute by minute from the clock's start: a minute counts when
the calendar is open at its start and the ticket's status then does not pause the target; the
due instant is the end of the minute that completes the duration. It knows nothing of the
engine's interval tables: office hours, zones and holidays are written out here from
contracts.md §3 (the holiday dates are those pinned in tests/test_holiday_dates.py), and every
instant is on a whole minute, so stepping by minutes is exact.

After `now` nothing is known: a clock running at now runs on without a further pause, one
paused at now owes what is left. A target achieved by an event (or a recurring cycle ended by
a reply) is judged on the time accrued up to that event: its clock stands as it did then, with
no pause after it, and the event is in time when it comes at or before that due.

The agreement test runs `PAUSING_EXAMPLES` examples (default 400, a few seconds); for a long run
by hand: `PAUSING_EXAMPLES=5000 .venv/bin/python -m pytest tests/test_pausing_property.py`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from connector.mappingfiles import load_contract
from connector.sla.contract import Contract
from connector.sla.engine import decide
from connector.sla.model import Decision, TargetResult, TicketFacts
from tests.conftest import ROOT

EXAMPLES = int(os.environ.get("PAUSING_EXAMPLES", "400"))
PROPERTY = settings(max_examples=max(20, EXAMPLES // 2), deadline=None)

MINUTE, HOUR, DAY = 60, 3600, 86_400
PAUSE_CLOCK = ROOT / "tests" / "data" / "contracts" / "pausing" / "pause-clock.yaml"


def epoch(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def instant(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


# -- the reference calendars ---------------------------------------------------------------------

# What the reference covers; tickets are made so that every walk stays inside it.
WINDOW = (epoch("2025-12-25T00:00:00Z"), epoch("2027-03-01T00:00:00Z"))
CREATED = (epoch("2026-01-01T00:00:00Z"), epoch("2026-12-20T00:00:00Z"))
HISTORY_DAYS = 20  # no status change is made later than this after creation


def dates(text: str) -> frozenset[date]:
    """`YYYY: MM-DD ...` lines as dates."""
    found: set[date] = set()
    year = 0
    for token in text.split():
        if token.endswith(":"):
            year = int(token[:-1])
        else:
            month, day = token.split("-")
            found.add(date(year, int(month), int(day)))
    return frozenset(found)


# Each office: zone, Mon-Fri 09:00-17:00 local, closed on these dates (2025 end to 2027 March).
OFFICES: dict[str, tuple[str, frozenset[date]]] = {
    "berlin": (  # photoprism, and the test contract's Berlin desk (DE-BE)
        "Europe/Berlin",
        dates("2025: 12-25 12-26 2026: 01-01 03-08 04-03 04-06 05-01 05-14 05-25 10-03 12-25 12-26"
              " 2027: 01-01"),
    ),
    "lausanne": ("Europe/Zurich", dates("2025: 12-25 2026: 01-01 05-14 08-01 12-25 2027: 01-01")),
    "denver": (
        "America/Denver",
        dates("2025: 12-25 2026: 01-01 01-19 02-16 05-25 06-19 07-03 07-04 09-07 10-12 11-11"
              " 11-26 12-25 2027: 01-01 01-18 02-15"),
    ),
    "tokyo": (
        "Asia/Tokyo",
        dates("2026: 01-01 01-12 02-11 02-23 03-20 04-29 05-03 05-04 05-05 05-06 07-20 08-11 09-21"
              " 09-22 09-23 10-12 11-03 11-23 2027: 01-01 01-11 02-11 02-23"),
    ),
    "central_europe": (  # pix4dengine-enterprise, canton Vaud (CH-VD)
        "Europe/Zurich",
        dates("2025: 12-25 2026: 01-01 01-02 04-03 04-06 05-14 05-25 08-01 09-21 12-25"
              " 2027: 01-01 01-02"),
    ),
    "pacific": (  # pix4dengine-enterprise, major US holidays with observed dates
        "America/Los_Angeles",
        dates("2025: 12-25 2026: 01-01 05-25 07-03 07-04 09-07 11-26 12-25 2027: 01-01"),
    ),
    "new_york": ("America/New_York", frozenset()),  # the test contract: no holidays
}  # fmt: skip


class RefCalendar:
    """Whether any of some offices is open at an instant, from wall-clock rules.

    Every zone here is a whole number of hours from UTC and every office opens and closes on
    the hour, so a calendar is open or closed for a whole UTC hour: the answer is asked once per
    hour (in each office's local time) and kept.
    """

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        start, end = WINDOW
        hours = bytearray((end - start) // HOUR)
        for name in names:
            zone_name, closed = OFFICES[name]
            zone = ZoneInfo(zone_name)
            for index in range(len(hours)):
                wall = datetime.fromtimestamp(start + index * HOUR, zone)
                assert wall.minute == 0
                assert wall.second == 0
                if wall.weekday() < 5 and wall.date() not in closed and 9 <= wall.hour < 17:
                    hours[index] = 1
        self.hours = bytes(hours)

    def is_open(self, at: int) -> bool:
        start, end = WINDOW
        assert start <= at < end, f"{instant(at)} is outside the reference window"
        return bool(self.hours[(at - start) // HOUR])

    def next_open(self, at: int) -> int:
        """`at` if the calendar is open then, else the next opening."""
        while not self.is_open(at):
            at = at - at % HOUR + HOUR
        return at

    def closed_run(self, at: int) -> tuple[int, int]:
        """The closed stretch `[begin, end)` containing `at`, or the first one after it."""
        start, _end = WINDOW
        index = (at - start) // HOUR
        while self.hours[index]:
            index += 1
        first = index
        while first > 0 and not self.hours[first - 1]:
            first -= 1
        last = index
        while last < len(self.hours) and not self.hours[last]:
            last += 1
        return start + first * HOUR, start + last * HOUR


@cache
def ref_calendar(names: tuple[str, ...]) -> RefCalendar:
    return RefCalendar(names)


# -- the reference clock -------------------------------------------------------------------------

History = list[tuple[int, str]]  # (epoch, status), oldest first


@dataclass
class Walk:
    """Where a minute-by-minute walk ended."""

    due: int | None = None  # the duration accrued: the end of its last minute
    at_risk: int | None = None  # the at-risk share accrued
    owed: int | None = None  # paused at now with this many seconds owed
    paused: int = 0  # seconds the calendar was open but the status paused the clock


def walk(
    calendar: RefCalendar | None,
    start: int,
    seconds: int,
    *,
    risk: int,
    history: History,
    paused_by: frozenset[str],
    now: int,
) -> Walk:
    """Walk from `start`, one minute at a time, until `seconds` of unpaused open time accrue
    (`calendar` None: every minute is open) or the clock is paused at `now` (then it never
    resumes: nothing after now is known). Each minute's status is that of the latest entry at
    or before its start; the entries after `now` are not known."""
    known = [(at, status) for at, status in history if at <= now]
    minutes, risk_minutes = seconds // MINUTE, risk // MINUTE
    assert minutes * MINUTE == seconds
    assert risk_minutes * MINUTE == risk
    result = Walk()
    status, index, accrued, t = "open", 0, 0, start
    while True:
        while index < len(known) and known[index][0] <= t:
            status = known[index][1]
            index += 1
        pausing = status in paused_by
        if t >= now and pausing:
            result.owed = (minutes - accrued) * MINUTE
            return result
        if calendar is None or calendar.is_open(t):
            if pausing:
                result.paused += MINUTE
            else:
                accrued += 1
                if accrued == risk_minutes:
                    result.at_risk = t + MINUTE
                if accrued == minutes:
                    result.due = t + MINUTE
                    return result
        t += MINUTE


@dataclass(frozen=True)
class RefTarget:
    """A target as contracts.md §3 words it (hours of business time, or elapsed hours)."""

    name: str
    hours: int
    elapsed: bool = False
    paused_by: frozenset[str] = frozenset()
    achieved_by: tuple[str, ...] = ("first_agent_reply_at",)
    recurring: bool = False


PENDING = frozenset({"pending"})
BOTH = frozenset({"pending", "on_hold"})
PHOTOPRISM = {  # (first response, resolution) business hours by plan and severity; 1 bd = 8 h
    ("gold", "sev1"): (8, 16),
    ("gold", "sev2"): (8, 3 * 8),
    ("gold", "sev3"): (8, 7 * 8),
    ("enterprise", "sev1"): (8, 32),
    ("enterprise", "sev2"): (16, 7 * 8),
    ("enterprise", "sev3"): (24, 14 * 8),
}
PIX4D = {"critical": (1, 4), "severe": (2, 8), "minor": (4, 12), "information": (8, 24)}
ENGINE = {"critical": 2, "major": 4, "moderate": 8, "limited": 12}
REGIONS = {"europe": "central_europe", "asia": "central_europe", "north_america": "pacific"}


def ref_targets(ticket: Ticket) -> list[RefTarget]:
    data = ticket.data
    if ticket.contract == "photoprism":
        first, resolution = PHOTOPRISM[data["plan"], data["severity"]]
        return [
            RefTarget("first_response", first),
            RefTarget("resolution", resolution, paused_by=PENDING, achieved_by=("solved_at",)),
        ]
    if ticket.contract == "pix4d-premium":
        first, workaround = PIX4D[data["severity"]]
        return [
            RefTarget("first_contact", first),
            RefTarget(
                "workaround",
                workaround,
                paused_by=PENDING,
                achieved_by=("workaround_at", "solved_at"),
            ),
        ]
    if ticket.contract == "pix4dengine-enterprise":
        hours = ENGINE[data["severity"]]
        return [RefTarget("response", hours, paused_by=PENDING, recurring=True)]
    assert ticket.contract == "pause-clock"
    restore = (
        RefTarget("restore", 8, elapsed=True, paused_by=BOTH, achieved_by=("solved_at",))
        if data["severity"] == "p1"
        else RefTarget("restore", 10, paused_by=BOTH, achieved_by=("solved_at",))
    )
    return [RefTarget("reaction", 2, elapsed=True), restore]


def offices_of(contract: str, data: dict[str, Any]) -> tuple[str, ...]:
    if contract == "photoprism":
        return ("berlin",)
    if contract == "pix4dengine-enterprise":
        return (REGIONS[data["region"]],)
    default = "lausanne" if contract == "pix4d-premium" else "berlin"
    return tuple(sorted(set(data.get("customer_facts", {}).get("offices") or [default])))


@dataclass
class Expected:
    due: int | None
    state: str
    owed: int | None = None
    at_risk: int | None = None
    paused: int | None = None
    cycle: int | None = None
    missed: int | None = None

    def change(self, now: int) -> int | None:
        """When the state would turn next (design.md §2, `next_change_at`)."""
        if self.state == "running":
            assert self.at_risk is not None
            return max(self.at_risk, now + 1)
        if self.state == "at_risk":
            assert self.due is not None
            return self.due + 1
        return None


def seen(ticket: Ticket, name: str) -> int | None:
    value = ticket.events.get(name)
    return None if value is None or value > ticket.now else max(value, ticket.created)


def as_at(history: History, done: int) -> History:
    """What is known of the status at `done`, with no pause after it: the clock of a target
    achieved at `done` (or of a cycle ended by a reply) stands as it did then."""
    return [e for e in history if e[0] < done] + [(done, "open")]


def run_clock(
    ticket: Ticket, target: RefTarget, start: int, done: int | None = None
) -> tuple[Walk, int]:
    """The walk of one clock from `start`, as at `done` if an event ended it, else at now."""
    calendar = None if target.elapsed else ref_calendar(offices_of(ticket.contract, ticket.data))
    seconds = target.hours * HOUR
    history, now = ticket.history, ticket.now
    if done is not None:
        history, now = as_at(history, done), done
    risk = math.ceil(0.75 * seconds)
    found = walk(
        calendar, start, seconds, risk=risk, history=history, paused_by=target.paused_by, now=now
    )
    return found, now


def expect_clock(
    ticket: Ticket, target: RefTarget, start: int, done: int | None, **extra: Any
) -> Expected:
    """One clock from `start`, achieved by `done` (an event by now, or None)."""
    found, _ = run_clock(ticket, target, start, done)
    if found.owed is not None:  # paused at now (never with an event: the clock stands at it)
        return Expected(None, "paused", owed=found.owed, at_risk=found.at_risk, **extra)
    assert found.due is not None
    assert found.at_risk is not None
    now, due, at_risk = ticket.now, found.due, found.at_risk
    if done is not None:
        state = "achieved" if done <= due else "breached"
    else:
        state = "breached" if now > due else "at_risk" if now >= at_risk else "running"
    return Expected(due, state, at_risk=at_risk, paused=found.paused or None, **extra)


def expect(ticket: Ticket, target: RefTarget) -> Expected:
    if not target.recurring:
        done = [d for d in (seen(ticket, n) for n in target.achieved_by) if d is not None]
        return expect_clock(ticket, target, ticket.created, min(done, default=None))
    # A cycle runs from creation or a public agent reply to the next reply, until solved.
    solved = seen(ticket, "solved_at")
    last = ticket.now if solved is None else min(ticket.now, solved)
    replies = [*ticket.replies]
    if (first := ticket.events.get("first_agent_reply_at")) is not None:
        replies.append(first)
    cycles = sorted({r for r in replies if ticket.created <= r <= last})
    start, missed = ticket.created, 0
    for reply in cycles:
        found, _ = run_clock(ticket, target, start, reply)
        assert found.due is not None
        missed += reply > found.due
        start = reply
    return expect_clock(ticket, target, start, solved, cycle=len(cycles) + 1, missed=missed)


# -- tickets -------------------------------------------------------------------------------------


@dataclass
class Ticket:
    contract: str
    data: dict[str, Any]
    created: int
    now: int
    history: History = field(default_factory=list)
    events: dict[str, int] = field(default_factory=dict)
    replies: list[int] = field(default_factory=list)

    def facts(self, history: History | None = None, *, with_field: bool = True) -> TicketFacts:
        values: dict[str, Any] = {
            "id": "1",
            "contract": self.contract,
            "created_at": instant(self.created),
            **self.data,
            "events": {
                **{name: instant(at) for name, at in self.events.items()},
                "agent_replies": [instant(at) for at in self.replies],
            },
        }
        if with_field:
            changes = self.history if history is None else history
            values["status_history"] = [{"at": instant(a), "status": s} for a, s in changes]
        return TicketFacts.model_validate(values)


STATUSES = ("new", "open", "pending", "on_hold", "solved", "closed")
# Days around which the calendars do something: DST changes (Europe, US), holidays.
SPECIAL_DAYS = [
    epoch(f"{d}T00:00:00Z")
    for d in (
        "2026-01-02", "2026-03-08", "2026-03-29", "2026-04-03", "2026-05-14", "2026-05-25",
        "2026-07-03", "2026-08-01", "2026-09-21", "2026-10-25", "2026-11-01", "2026-11-26",
        "2026-12-18",
    )
]  # fmt: skip


def on_minutes(lo: int, hi: int) -> st.SearchStrategy[int]:
    return st.integers(lo // MINUTE, hi // MINUTE).map(lambda m: m * MINUTE)


created_instants = st.one_of(
    on_minutes(*CREATED),
    st.sampled_from(SPECIAL_DAYS).flatmap(lambda d: on_minutes(d - 4 * DAY, d + 2 * DAY)),
).map(lambda t: min(max(t, CREATED[0]), CREATED[1]))


def offsets(lo_days: float, hi_days: float) -> st.SearchStrategy[int]:
    return on_minutes(int(lo_days * DAY), int(hi_days * DAY))


def some_offices(names: Sequence[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.just({}),
        st.lists(st.sampled_from(names), min_size=1, max_size=3).map(
            lambda o: {"customer_facts": {"offices": o}}
        ),
    )


KINDS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "photoprism": st.sampled_from(sorted(PHOTOPRISM)).map(
        lambda ps: {"plan": ps[0], "severity": ps[1]}
    ),
    "pix4d-premium": st.builds(
        lambda s, o: {"severity": s, **o},
        st.sampled_from(sorted(PIX4D)),
        some_offices(["lausanne", "denver", "tokyo"]),
    ),
    "pix4dengine-enterprise": st.builds(
        lambda s, r: {"severity": s, "region": r},
        st.sampled_from(sorted(ENGINE)),
        st.sampled_from(sorted(REGIONS)),
    ),
    "pause-clock": st.builds(
        lambda s, o: {"severity": s, **o},
        st.sampled_from(["p1", "p2"]),
        some_offices(["berlin", "new_york"]),
    ),
}
EVENTS = {
    "photoprism": ("first_agent_reply_at", "solved_at"),
    "pix4d-premium": ("first_agent_reply_at", "workaround_at", "solved_at"),
    "pix4dengine-enterprise": ("first_agent_reply_at", "solved_at"),
    "pause-clock": ("first_agent_reply_at", "solved_at"),
}


@st.composite
def instants_near_opening(draw: st.DrawFn, calendar: RefCalendar, at: int) -> int:
    """`at`, or (half of the time) a moment in the first hours the calendar is open from it:
    closed time is most of a week, and a spell that lies only there moves nothing."""
    if draw(st.booleans()):
        return at
    return calendar.next_open(at) + draw(offsets(0, 0.2))


@st.composite
def histories(
    draw: st.DrawFn, calendar: RefCalendar, created: int, statuses: Sequence[str] = STATUSES
) -> History:
    """Status changes, oldest first: the first from two days before creation to three after,
    each next one minutes to days after the one before (none after `HISTORY_DAYS`), some at
    the same instant (the last of them holds). Pending and open come most often, so that
    spells open and close."""
    weighted = [s for s in statuses for _ in range(4 if s in ("pending", "open") else 1)]
    at = created + draw(st.one_of(offsets(-2, 0), offsets(0, 1), offsets(0, 3)))
    history: History = []
    for _ in range(draw(st.one_of(st.integers(1, 8), st.integers(3, 8)))):
        if at > created + HISTORY_DAYS * DAY:
            break
        if history:
            # One gap in twenty is none; the others up to 5 hours, 12 hours, a day, 3 days.
            kind = draw(st.integers(0, 19))
            if kind:
                at += draw(offsets(0, (0.2, 0.5, 1, 3)[kind % 4]))
                at = draw(instants_near_opening(calendar, at))
        else:
            at = draw(instants_near_opening(calendar, at))
        history.append((at, draw(st.sampled_from(weighted))))
    return history


@st.composite
def tickets(
    draw: st.DrawFn,
    kinds: Sequence[str] = tuple(KINDS),
    statuses: Sequence[str] = STATUSES,
) -> Ticket:
    contract = draw(st.sampled_from(kinds))
    data = draw(KINDS[contract])
    calendar = ref_calendar(offices_of(contract, data))
    created = draw(instants_near_opening(calendar, draw(created_instants)))
    history = draw(histories(calendar, created, statuses))
    # Now: soon after creation, any time in two weeks, or after the last status change.
    last = max([created, *(at for at, _ in history)])
    now = draw(
        st.one_of(
            offsets(0, 2).map(lambda off: created + off),
            offsets(0, 14).map(lambda off: created + off),
            offsets(0, 3).map(lambda off: last + off),
            offsets(0, 0.5).map(lambda off: last + off),
        )
    )
    ticket = Ticket(contract, data, created, now, history)
    for name in EVENTS[contract]:
        if draw(st.integers(0, 3)) == 0:
            ticket.events[name] = created + draw(offsets(0, 8))
    if contract == "pix4dengine-enterprise":
        ticket.replies = [created + off for off in draw(st.lists(offsets(0, 4), max_size=3))]
    return ticket


@pytest.fixture(scope="module")
def all_contracts(contracts: dict[str, Contract]) -> dict[str, Contract]:
    return {**contracts, "pause-clock": load_contract(PAUSE_CLOCK)}


def decide_ticket(
    all_contracts: dict[str, Contract], ticket: Ticket, history: History | None = None
) -> Decision:
    return decide(all_contracts[ticket.contract], ticket.facts(history), instant(ticket.now))


def status_at(history: History, at: int) -> str:
    status = "open"
    for when, name in history:
        if when > at:
            break
        status = name
    return status


def with_spell(history: History, begin: int, end: int | None) -> History:
    """`history` with the ticket pending on `[begin, end)` (to the end when `end` is None)."""
    changed = [e for e in history if e[0] < begin] + [(begin, "pending")]
    if end is not None:
        changed.append((end, status_at(history, end)))
        changed += [e for e in history if e[0] > end]
    return changed


# -- (a) a history with nothing that pauses is no history -------------------------------------


@PROPERTY
@given(data=st.data())
def test_a_history_without_pausing_statuses_changes_nothing(
    all_contracts: dict[str, Contract], data: st.DataObject
) -> None:
    kinds = tuple(KINDS)
    contract = data.draw(st.sampled_from(kinds))
    # on_hold pauses nothing bundled; the test contract is paused by on_hold too.
    quiet = ("new", "open", "solved", "closed") + (
        () if contract == "pause-clock" else ("on_hold",)
    )
    ticket = data.draw(tickets(kinds=(contract,), statuses=quiet))
    contract_ = all_contracts[ticket.contract]
    without = decide(contract_, ticket.facts(with_field=False), instant(ticket.now))
    assert decide_ticket(all_contracts, ticket) == without
    assert decide_ticket(all_contracts, ticket, []) == without


# -- (b) a pause never brings a due forward ---------------------------------------------------


def later_or_equal(before: TargetResult, after: TargetResult) -> None:
    if before.state == "paused":
        assert after.state == "paused", (before, after)
        assert after.owed_seconds is not None
        assert before.owed_seconds is not None
        assert after.owed_seconds >= before.owed_seconds
    elif after.due is not None:
        assert before.due is not None, (before, after)
        assert after.due >= before.due, (before, after)
    if before.at_risk_at is not None and after.at_risk_at is not None:
        assert after.at_risk_at >= before.at_risk_at
    if before.state == "achieved":
        assert after.state == "achieved"
    if before.cycles_breached is not None:
        assert after.cycles_breached is not None
        assert after.cycles_breached <= before.cycles_breached


@PROPERTY
@given(ticket=tickets(), begin=offsets(-1, 12), length=st.one_of(st.none(), offsets(0, 5)))
def test_adding_a_pending_spell_never_makes_a_due_earlier(
    all_contracts: dict[str, Contract], ticket: Ticket, begin: int, length: int | None
) -> None:
    start = ticket.created + begin
    before = decide_ticket(all_contracts, ticket)
    spell = with_spell(ticket.history, start, None if length is None else start + length)
    after = decide_ticket(all_contracts, ticket, spell)
    for name, target in before.targets.items():
        later_or_equal(target, after.targets[name])


# -- (c) a pause while the office is closed changes nothing ------------------------------------

BUSINESS_TICKETS = tickets(
    kinds=("photoprism", "pix4d-premium", "pix4dengine-enterprise", "pause-clock")
)


def with_closed_spell(
    all_contracts: dict[str, Contract], ticket: Ticket, at: int, cut: tuple[float, float]
) -> tuple[Decision, Decision]:
    """The decisions of the ticket, and of the ticket pending for a while inside the first
    stretch from `created + at` on in which every office is closed (a spell that has ended by
    now)."""
    data = ticket.data
    if ticket.contract == "pause-clock":
        data = {**data, "severity": "p2"}  # restore in business hours (reaction never pauses)
    closed = ref_calendar(offices_of(ticket.contract, data)).closed_run(ticket.created + at)
    low, high = sorted(cut)
    span = (closed[1] - closed[0]) // MINUTE
    begin = closed[0] + int(low * (span - 1)) * MINUTE
    end = max(begin + MINUTE, closed[0] + int(high * span) * MINUTE)
    assert closed[0] <= begin < end <= closed[1]
    ticket = replace(ticket, data=data, now=max(ticket.now, end))
    before = decide_ticket(all_contracts, ticket)
    after = decide_ticket(all_contracts, ticket, with_spell(ticket.history, begin, end))
    return before, after


@example(
    # Enterprise sev1 (32 business hours), created Fri 2 January 10:58 CET, pending since; a
    # minute of `new` at the close (17:00-17:01 CET). The spell added is that minute: the
    # ticket is then pending without a break, and the engine's paused_seconds go from 21720
    # (6h02 before the break) to None.
    ticket=Ticket(
        "photoprism",
        {"plan": "enterprise", "severity": "sev1"},
        epoch("2026-01-02T09:58:00Z"),
        epoch("2026-01-02T16:01:00Z"),
        [
            (epoch("2026-01-02T09:58:00Z"), "pending"),
            (epoch("2026-01-02T16:00:00Z"), "new"),
            (epoch("2026-01-02T16:01:00Z"), "pending"),
        ],
    ),
    at=0,
    cut=(0.0, 0.0),
)
@PROPERTY
@given(ticket=BUSINESS_TICKETS, at=offsets(-1, 10), cut=st.tuples(st.floats(0, 1), st.floats(0, 1)))
def test_a_spell_while_every_office_is_closed_changes_no_business_target(
    all_contracts: dict[str, Contract], ticket: Ticket, at: int, cut: tuple[float, float]
) -> None:
    before, after = with_closed_spell(all_contracts, ticket, at, cut)
    assert after == before


# -- (d) agreement with the minute-stepping reference ------------------------------------------


def check(ticket: Ticket, decision: Decision) -> dict[str, Expected]:
    expected = {t.name: expect(ticket, t) for t in ref_targets(ticket)}
    assert set(decision.targets) == set(expected)
    for name, want in expected.items():
        got = decision.targets[name]
        where = f"{name}: expected {want}, got {got}"
        assert got.state == want.state, where
        assert got.best_effort is False, where
        assert got.due == (None if want.due is None else instant(want.due)), where
        assert got.owed_seconds == want.owed, where
        assert got.at_risk_at == (None if want.at_risk is None else instant(want.at_risk)), where
        if want.state != "paused":
            assert got.paused_seconds == want.paused, where
        if want.cycle is not None:
            assert (got.cycle, got.cycles_breached) == (want.cycle, want.missed), where
    changes = [c for w in expected.values() if (c := w.change(ticket.now)) is not None]
    assert decision.next_change_at == (instant(min(changes)) if changes else None)
    assert ("sla_paused" in decision.tags) == any(w.state == "paused" for w in expected.values())
    return expected


@settings(max_examples=EXAMPLES, deadline=None)
@given(ticket=tickets())
def test_the_engine_agrees_with_minute_stepping(
    all_contracts: dict[str, Contract], ticket: Ticket
) -> None:
    expected = check(ticket, decide_ticket(all_contracts, ticket))
    for name, want in expected.items():
        event(f"{name}: {want.state}" + (", paused before" if want.paused else ""))


# Cases the reference's own arithmetic is checked against (values worked by hand in
# tests/test_pausing.py), so that a wrong reference cannot agree with a wrong engine.
HAND_WORKED: list[tuple[Ticket, Callable[[Decision], bool]]] = [
    (
        Ticket(
            "photoprism",
            {"plan": "gold", "severity": "sev2"},
            epoch("2026-03-02T08:15:00Z"),
            epoch("2026-03-03T10:00:00Z"),
            [(epoch("2026-03-02T10:00:00Z"), "pending"), (epoch("2026-03-03T08:30:00Z"), "open")],
        ),
        lambda d: d.targets["resolution"].due == instant(epoch("2026-03-05T14:45:00Z")),
    ),
    (
        Ticket(
            "photoprism",
            {"plan": "gold", "severity": "sev2"},
            epoch("2026-03-02T08:15:00Z"),
            epoch("2026-03-03T10:00:00Z"),
            [(epoch("2026-03-02T10:00:00Z"), "pending")],
        ),
        lambda d: d.targets["resolution"].owed_seconds == 80100,
    ),
    (
        Ticket(
            "pix4d-premium",
            {"severity": "information", "customer_facts": {"offices": ["lausanne", "tokyo"]}},
            epoch("2026-06-01T06:00:00Z"),
            epoch("2026-06-02T12:00:00Z"),
            [(epoch("2026-06-01T07:30:00Z"), "pending"), (epoch("2026-06-02T07:30:00Z"), "open")],
        ),
        lambda d: d.targets["workaround"].due == instant(epoch("2026-06-03T15:00:00Z")),
    ),
    (
        Ticket(
            "pause-clock",
            {"severity": "p1"},
            epoch("2026-03-28T20:00:00Z"),
            epoch("2026-03-29T04:00:00Z"),
            [(epoch("2026-03-28T22:00:00Z"), "pending"), (epoch("2026-03-29T04:00:00Z"), "open")],
        ),
        lambda d: d.targets["restore"].due == instant(epoch("2026-03-29T10:00:00Z")),
    ),
    (
        Ticket(
            "pix4dengine-enterprise",
            {"severity": "major", "region": "europe"},
            epoch("2026-03-02T08:00:00Z"),
            epoch("2026-03-03T11:00:00Z"),
            [(epoch("2026-03-02T09:30:00Z"), "pending"), (epoch("2026-03-03T08:00:00Z"), "open")],
            replies=[epoch("2026-03-03T10:00:00Z")],
        ),
        lambda d: d.targets["response"].cycles_breached == 0,
    ),
]


@pytest.mark.parametrize("index", range(len(HAND_WORKED)))
def test_the_reference_agrees_with_the_hand_worked_cases(
    all_contracts: dict[str, Contract], index: int
) -> None:
    ticket, holds = HAND_WORKED[index]
    decision = decide_ticket(all_contracts, ticket)
    assert holds(decision)
    check(ticket, decision)


def test_the_reference_calendars_open_where_the_contracts_say() -> None:
    # Mon 2 March 2026 09:00-17:00 CET is 08:00-16:00Z in Berlin; Good Friday is closed; the
    # Lausanne + Tokyo union is open 00:00-15:00Z on a June weekday.
    berlin = ref_calendar(("berlin",))
    assert not berlin.is_open(epoch("2026-03-02T07:59:00Z"))
    assert berlin.is_open(epoch("2026-03-02T08:00:00Z"))
    assert berlin.is_open(epoch("2026-03-02T15:59:00Z"))
    assert not berlin.is_open(epoch("2026-03-02T16:00:00Z"))
    assert not berlin.is_open(epoch("2026-04-03T10:00:00Z"))
    union = ref_calendar(("lausanne", "tokyo"))
    assert union.closed_run(epoch("2026-06-01T16:00:00Z")) == (
        epoch("2026-06-01T15:00:00Z"),
        epoch("2026-06-02T00:00:00Z"),
    )
    assert union.is_open(epoch("2026-06-01T00:00:00Z"))
    assert union.is_open(epoch("2026-06-01T14:59:00Z"))


def test_the_window_covers_every_ticket() -> None:
    # The latest ticket: created 20 December, status changes up to 20 days later (the last one
    # may be moved to the next opening: a few days more), now up to 3 days after it, then at
    # most 14 business days (112 hours, photoprism enterprise sev3) owed over the holidays.
    latest = CREATED[1] + (HISTORY_DAYS + 5 + 3) * DAY + timedelta(weeks=5).total_seconds()
    assert latest < WINDOW[1]
    assert CREATED[0] - 2 * DAY >= WINDOW[0]
