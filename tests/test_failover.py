"""Failover on a PostgreSQL state (issue 21): two real daemons on one account, `kill -9` of the
one that holds it, the other takes over within the lease's time, and the helpdesk ends as an
uninterrupted run leaves it: every ticket written, no note twice.

The state is on a throw-away PostgreSQL server (tests/postgres_server.py); the helpdesk is the
sandbox served on loopback (tests/daemon_harness.py); the daemons are `python -m connector run`
processes, the second one standing by (`standing_by`) until the first's lease runs out.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connector.sandbox import OffsetClock, Sandbox
from connector.sandbox.seed import SeedTicket
from tests.daemon_harness import ANCHOR, Served, served, shown, wait_for

LEASE = 3.0  # seconds: a short lease, so that the test waits little


@pytest.fixture(params=["zendesk", "freshdesk"])
def pair(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_url: str
) -> Iterator[tuple[Served, Served]]:
    clock = OffsetClock()
    sandbox = Sandbox.seeded(clock=clock, anchor=ANCHOR)
    with served(sandbox, clock, request.param, tmp_path / "first") as first:
        env = {
            **first.daemon.env,
            "SLA_CONNECTOR_STATE_URL": postgres_url,
            "SLA_CONNECTOR_STATE_LEASE_SECONDS": str(LEASE),
        }
        one = dataclasses.replace(first.daemon, env=env)
        two = dataclasses.replace(
            one, log_path=tmp_path / "second.log", process=None, env=dict(env, NOTIFY_SOCKET="")
        )
        yield (
            dataclasses.replace(first, daemon=one),
            dataclasses.replace(first, daemon=two),
        )
        for daemon in (one, two):
            if daemon.running():
                daemon.kill()


def notes_twice(state: dict[int, tuple[object, ...]]) -> list[int]:
    """Tickets carrying one of our notes twice."""
    return [
        ticket
        for ticket, (_, _, _, marks) in state.items()
        if any(n > 1 for n in Counter(m for m in marks if m).values())  # type: ignore[union-attr]
    ]


def test_the_standby_takes_over_when_the_holder_is_killed(pair: tuple[Served, Served]) -> None:
    holder, standby = pair
    holder.daemon.start()
    wait_for("the first daemon's first sync", lambda: bool(holder.daemon.events("synced")))
    standby.daemon.start()
    wait_for("the second to stand by", lambda: bool(standby.daemon.events("standing_by")))
    assert not standby.daemon.events("synced")

    # A ticket while the first holds the state: the first writes it.
    def new_ticket(number: int) -> None:
        now = datetime.now(UTC).replace(microsecond=0)
        ticket = SeedTicket(number, "failover", now - timedelta(hours=1), 101, severity="sev2")
        holder.sandbox.seed([ticket], customers=(), helpdesks=(holder.helpdesk,))
        holder.sandbox.agent_edit(number, helpdesk=holder.helpdesk)
        holder.clock.advance(61)  # past Zendesk's one-minute export lag

    def shows_ours(ticket: int) -> bool:
        """The ticket shows its results and our note (Freshdesk's note comes a request
        after the update)."""
        tags, _, _, marks = shown(holder.sandbox, holder.helpdesk)[ticket]
        return "sla_photoprism" in tags and any(marks)

    new_ticket(880_001)
    wait_for("the first daemon to write it", lambda: shows_ours(880_001))

    holder.daemon.kill()  # kill -9: its lease stays until it runs out
    killed = time.monotonic()
    new_ticket(880_002)
    wait_for("the standby to take over", lambda: bool(standby.daemon.events("took_over")))
    took = time.monotonic() - killed
    wait_for("the new holder to write", lambda: shows_ours(880_002))
    wrote = time.monotonic() - killed
    # The lease, then at most one standby poll (2 s), then a start: a few seconds at most.
    assert took < LEASE + 2 + 5, took
    assert wrote < LEASE + 2 + 30, wrote
    print(f"took over {took:.1f} s after the kill, wrote {wrote:.1f} s after it")
    final = shown(holder.sandbox, holder.helpdesk)
    assert notes_twice(final) == []
