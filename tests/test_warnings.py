"""Warnings and escalation levels (contracts.md §4): the steps between running and breached,
and after.

tests/data/contracts/escalating.yaml warns at 0.5, 0.75 and 0.9 of each target's time and
escalates 1 and 4 business hours past the first response's due (the resolution: 2 and 8 plain
hours, tags of its own). Its calendar is New York, 09:00-17:00 on weekdays. The instants below
are worked by hand; the first ticket is created on Friday 6 March 2026 at 15:00 EST, so its
first response runs over the weekend and into the Monday after the switch to daylight saving
time (8 March): Monday's office hours are 13:00-21:00 UTC, not 14:00-22:00.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.sla.contract import Contract, ContractInvalid
from connector.sla.engine import decide
from connector.sla.model import Decision, StatusChange, TicketFacts

DATA = Path(__file__).resolve().parent / "data" / "contracts" / "escalating.yaml"
CREATED = datetime(2026, 3, 6, 20, 0, tzinfo=UTC)  # Friday 15:00 EST
STEP_TAGS = {
    "sla_warn_50",
    "sla_warn_75",
    "sla_warn_90",
    "sla_escalation_1",
    "sla_escalation_2",
    "resolution_late",
    "resolution_very_late",
    "sla_breached",
    "sla_paused",
}


def z(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def contract_data(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(DATA.read_text())
    data.update(changes)
    return data


@pytest.fixture(scope="module")
def escalating() -> Contract:
    return Contract.from_data(contract_data())


def ticket(created: datetime = CREATED, **extra: Any) -> TicketFacts:
    values: dict[str, Any] = {
        "id": "1",
        "created_at": created,
        "contract": "escalating",
        "customer": "7",
        "severity": "sev1",
    }
    return TicketFacts.model_validate({**values, **extra})


def steps(decision: Decision) -> set[str]:
    return {t for t in decision.tags if t in STEP_TAGS or t.startswith("sla_warn_")}


def walk(
    contract: Contract, facts: TicketFacts, start: datetime
) -> list[tuple[datetime, set[str]]]:
    """Each change the decisions announce (`next_change_at`), followed to the end: when, and
    the step tags then."""
    seen = []
    now: datetime | None = start
    while now is not None and len(seen) < 40:
        decision = decide(contract, facts, now)
        seen.append((now, steps(decision)))
        now = decision.next_change_at
    return seen


def test_each_point_comes_at_its_hand_worked_instant_and_replaces_the_one_before(
    escalating: Contract,
) -> None:
    """No ticket activity: the decisions wake up at each point, and only the current step of
    each target shows. Over a weekend and the switch to daylight saving time."""
    assert walk(escalating, ticket(), CREATED) == [
        (CREATED, set()),
        # first response: half of 4 business hours = Friday 15:00-17:00 EST
        (z("2026-03-06T22:00:00Z"), {"sla_warn_50"}),
        # resolution (24 hours around the clock): 12, 18 and 21.6 hours
        (z("2026-03-07T08:00:00Z"), {"sla_warn_50"}),
        (z("2026-03-07T14:00:00Z"), {"sla_warn_50", "sla_warn_75"}),
        (z("2026-03-07T17:36:00Z"), {"sla_warn_50", "sla_warn_90"}),
        # resolution due Saturday 20:00 UTC: breached a second later, then its own levels
        (z("2026-03-07T20:00:01Z"), {"sla_warn_50", "sla_breached"}),
        (z("2026-03-07T22:00:00Z"), {"sla_warn_50", "sla_breached", "resolution_late"}),
        (z("2026-03-08T04:00:00Z"), {"sla_warn_50", "sla_breached", "resolution_very_late"}),
        # first response: 3 business hours = Monday 10:00 EDT (14:00 UTC), 3.6 = 10:36 EDT
        (z("2026-03-09T14:00:00Z"), {"sla_warn_75", "sla_breached", "resolution_very_late"}),
        (z("2026-03-09T14:36:00Z"), {"sla_warn_90", "sla_breached", "resolution_very_late"}),
        # due Monday 11:00 EDT; then 1 and 4 business hours past it: 12:00 and 15:00 EDT
        (z("2026-03-09T15:00:01Z"), {"sla_breached", "resolution_very_late"}),
        (z("2026-03-09T16:00:00Z"), {"sla_breached", "sla_escalation_1", "resolution_very_late"}),
        (z("2026-03-09T19:00:00Z"), {"sla_breached", "sla_escalation_2", "resolution_very_late"}),
    ]


def test_paused_time_counts_towards_no_point(escalating: Contract) -> None:
    """Pending 09:30-10:30 EDT on Monday takes an hour out of the first response: its 0.75
    point moves from 10:00 to 11:00 EDT, 0.9 to 11:36, the due to 12:00. Pending again
    12:30-13:30, past due: the first escalation comes at 14:00, not 13:00. While paused, no
    warning shows; a breach stays."""
    history = [
        StatusChange(at=z("2026-03-09T13:30:00Z"), status="pending"),
        StatusChange(at=z("2026-03-09T14:30:00Z"), status="open"),
        StatusChange(at=z("2026-03-09T16:30:00Z"), status="pending"),
        StatusChange(at=z("2026-03-09T17:30:00Z"), status="open"),
    ]
    facts = ticket(status_history=history)
    expected = [
        ("2026-03-09T13:20:00Z", {"sla_warn_50"}, "2026-03-09T14:00:00Z"),
        ("2026-03-09T13:45:00Z", {"sla_paused"}, None),  # no warning while the clock stands
        ("2026-03-09T14:45:00Z", {"sla_warn_50"}, "2026-03-09T15:00:00Z"),
        ("2026-03-09T15:00:00Z", {"sla_warn_75"}, "2026-03-09T15:36:00Z"),
        ("2026-03-09T15:36:00Z", {"sla_warn_90"}, "2026-03-09T16:00:01Z"),
        ("2026-03-09T16:00:01Z", {"sla_breached"}, "2026-03-09T17:00:00Z"),
        # Breached before the second wait: it stays breached, its escalation clock stands.
        ("2026-03-09T16:45:00Z", {"sla_breached"}, None),
        ("2026-03-09T17:45:00Z", {"sla_breached"}, "2026-03-09T18:00:00Z"),
        ("2026-03-09T18:00:00Z", {"sla_breached", "sla_escalation_1"}, "2026-03-09T21:00:00Z"),
        ("2026-03-09T21:00:00Z", {"sla_breached", "sla_escalation_2"}, None),
    ]
    for now, tags, change in expected:
        decision = decide(escalating, facts, z(now))
        shown = steps(decision) - {"resolution_very_late"}
        if decision.targets["first_response"].state != "breached":
            shown.discard("sla_breached")  # the resolution's, breached since Saturday
        assert (now, shown) == (now, tags)
        assert (now, decision.next_change_at) == (now, z(change) if change else None)


def test_an_achieved_target_clears_its_steps(escalating: Contract) -> None:
    facts = ticket(events={"first_agent_reply_at": z("2026-03-09T14:40:00Z")})
    decision = decide(escalating, facts, z("2026-03-09T14:45:00Z"))
    assert decision.targets["first_response"].state == "achieved"
    assert "sla_warn_90" not in decision.tags
    # Met late: breached it stays, escalated no further.
    late = ticket(events={"first_agent_reply_at": z("2026-03-09T16:30:00Z")})
    decision = decide(escalating, late, z("2026-03-09T20:00:00Z"))
    assert decision.targets["first_response"].state == "breached"
    assert "sla_escalation_1" not in decision.tags
    assert "sla_escalation_2" not in decision.tags


def test_a_contract_without_steps_keeps_its_one_at_risk_point() -> None:
    data = contract_data(risk_threshold=0.75)
    del data["warnings"]
    del data["escalations"]
    del data["targets"]["resolution"]["escalations"]
    plain = Contract.from_data(data)
    decision = decide(plain, ticket(), z("2026-03-09T14:00:00Z"))  # 3 of 4 business hours
    assert "sla_at_risk" in decision.tags
    assert not steps(decision) - {"sla_breached"}


def test_escalations_alone_keep_the_at_risk_tag_as_the_one_warning() -> None:
    data = contract_data()
    del data["warnings"]
    contract = Contract.from_data(data)
    at_risk = decide(contract, ticket(), z("2026-03-09T14:00:00Z"))
    assert "sla_at_risk" in at_risk.tags
    escalated = decide(contract, ticket(), z("2026-03-09T16:00:00Z"))
    assert {"sla_breached", "sla_escalation_1"} <= set(escalated.tags)
    assert "sla_at_risk" not in escalated.tags


def test_every_step_tag_is_one_the_writer_may_remove(escalating: Contract) -> None:
    assert STEP_TAGS - {"sla_paused"} <= escalating.owned_tags


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"warnings": [0.75, 0.5]}, "warning points rise"),
        ({"warnings": [0.5, 0.5]}, "warning points rise"),
        ({"warnings": [1.0]}, "less than 1"),
        ({"risk_threshold": 0.8}, "give warnings or risk_threshold, not both"),
        ({"escalations": ["4 business_hours", "1 business_hours"]}, "escalation levels rise"),
        ({"escalations": ["1 business_hours", "4 hours"]}, "all of one unit"),
        ({"escalations": ["next_day_at 09:00"]}, "an escalation is N business_hours"),
        ({"tags": {"warning": "warn_{pct}"}}, "bad tag template"),
    ],
)
def test_wrong_steps_are_refused_naming_the_key(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ContractInvalid, match=message):
        Contract.from_data(contract_data(**changes))


_SHARES = st.lists(st.integers(min_value=1, max_value=99), min_size=1, max_size=4, unique=True).map(
    lambda xs: [x / 100 for x in sorted(xs)]
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shares=_SHARES,
    created=st.datetimes(
        min_value=datetime(2026, 1, 1),  # noqa: DTZ001 (hypothesis takes naive bounds)
        max_value=datetime(2026, 12, 31),  # noqa: DTZ001
        timezones=st.just(UTC),
    ),
    severity=st.sampled_from(["sev1", "sev2"]),
    offset=st.integers(min_value=0, max_value=14 * 86400),
)
def test_points_are_in_time_order_and_the_tag_shown_is_the_latest_reached(
    shares: list[float], created: datetime, severity: str, offset: int
) -> None:
    created = created.replace(microsecond=0)
    data = contract_data(warnings=shares)
    contract = Contract.from_data(data)
    facts = ticket(created, severity=severity)
    # The first response's points alone: its warnings, due, then escalations.
    data_one = contract_data(warnings=shares)
    del data_one["targets"]["resolution"]
    one = Contract.from_data(data_one)
    walked = walk(one, facts, created)
    instants = [at for at, _ in walked]
    assert instants == sorted(set(instants))
    due = decide(one, facts, created).targets["first_response"].due
    assert due is not None
    warned = [at for at, tags in walked if tags & {f"sla_warn_{round(s * 100)}" for s in shares}]
    assert warned
    assert max(warned) <= due
    # At any instant, the step shown is the latest point reached.
    now = created + timedelta(seconds=offset)
    expected = next((tags for at, tags in reversed(walked) if at <= now), set())
    assert steps(decide(one, facts, now)) == expected
    # The whole contract shows the same first-response step among its tags.
    assert steps(decide(contract, facts, now)) >= expected - {"sla_breached"}


# --- end to end: the steps reach the helpdesk with no ticket activity ----------------------


@pytest.mark.parametrize("helpdesk", ["zendesk", "freshdesk"])
def test_each_step_reaches_the_ticket_on_time_with_no_activity(
    helpdesk: str, tmp_path: Path
) -> None:
    """A ticket of the escalating contract in the sandbox, created Friday 10:00 EST: nobody
    touches it, and the daemon's wake-ups put each step's tag on it in turn, the one before
    taken off: sla_warn_50 at 12:00, 75 at 13:00, 90 at 13:36, the breach at 14:00, the
    first escalation at 15:00 (EST)."""
    import shutil

    from connector.sandbox.seed import SeedCustomer, SeedTicket
    from tests.conftest import MAPPINGS
    from tests.test_sync_e2e import EXPORT_LAG, START, open_desk

    mappings = tmp_path / "mappings"
    shutil.copytree(MAPPINGS, mappings)
    shutil.copy(DATA, mappings / "contracts" / DATA.name)
    desk = open_desk(helpdesk, tmp_path, mappings=mappings)
    try:
        customer = SeedCustomer(950, "Escalation Test Co", "escalation.example", "escalating")
        desk.sandbox.seed(
            [SeedTicket(1950, "nobody answers", START, 950, severity="sev1")],
            customers=[customer],
            helpdesks=(helpdesk,),
        )
        desk.run()
        assert "sla_escalating" in desk.tags(1950)

        def steps_at(instant: str) -> set[str]:
            # `run` moves the clock on by the export's lag first: it runs at `instant`.
            desk.clock.advance((z(instant) - desk.clock()).total_seconds() - EXPORT_LAG)
            desk.run()  # a poll (nothing changed) and the wake-ups that are due
            tags = set(desk.tags(1950))
            return {t for t in tags if t in STEP_TAGS or t.startswith("sla_warn_")}

        assert steps_at("2026-03-06T16:59:00Z") == set()
        assert steps_at("2026-03-06T17:00:00Z") == {"sla_warn_50"}
        assert steps_at("2026-03-06T18:00:00Z") == {"sla_warn_75"}
        assert steps_at("2026-03-06T18:36:00Z") == {"sla_warn_90"}
        assert steps_at("2026-03-06T19:00:01Z") == {"sla_breached"}
        assert steps_at("2026-03-06T20:00:00Z") == {"sla_breached", "sla_escalation_1"}
        assert len(desk.notes(1950)) == 1  # the tags move; the note says the due, once
    finally:
        desk.state.close()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"escalations": ["1 business_days"]}, "an escalation is N business_hours or N hours"),
        ({"tags": {"warning": "sla_warn"}}, "a tag of its own"),
        ({"warnings": [0.5, {"at": 0.9, "tag": "sla_breached"}]}, "a tag of its own"),
        ({"warnings": [{"at": 0.5, "tag": "warn half"}]}, "a tag is one word"),
    ],
)
def test_steps_that_could_not_be_told_apart_are_refused(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ContractInvalid, match=message):
        Contract.from_data(contract_data(**changes))


def test_an_expedited_target_turns_at_risk_at_its_first_warning() -> None:
    """The expedited duration's clock uses the target's first warning point too."""
    data = contract_data()
    data["severities"]["sev1"]["priority"] = "urgent"
    data["targets"]["first_response"]["expedite"] = {
        "flag": "expedite",
        "duration": "2 business_hours",
    }
    contract = Contract.from_data(data)
    facts = ticket(flags={"expedite": True}, created_at=z("2026-03-09T13:00:00Z"))
    at_half = decide(contract, facts, z("2026-03-09T14:00:00Z"))  # 1 of 2 business hours
    first = at_half.targets["first_response"]
    assert first.state == "at_risk"
    assert first.at_risk_at == z("2026-03-09T14:00:00Z")
    assert "sla_warn_50" in at_half.tags


def test_a_target_with_a_daily_capacity_keeps_its_one_at_risk_point() -> None:
    with pytest.raises(ContractInvalid, match="daily capacity takes no warnings"):
        Contract.from_data(
            contract_data(
                targets={
                    "delivery": {
                        "achieved_by": ["delivered_at"],
                        "duration": "24 hours",
                        "capacity": {"limit": 10},
                        "warnings": [0.5],
                    }
                }
            )
        )
