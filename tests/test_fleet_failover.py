"""Several daemons sharing several accounts on a PostgreSQL state (issue 21): each serves its
share, the shares move when a daemon joins or leaves, a daemon killed with `kill -9` loses its
tenants to the others within the lease, and every account ends as its own uninterrupted
single-account run leaves it, no note posted twice.

Real `sla-connector run` processes (tests/fleet_harness.py), a real throw-away PostgreSQL
(tests/postgres_server.py), each account a sandbox on loopback.
"""

from __future__ import annotations

import contextlib
import json
import random
import signal
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from connector.errors import ConfigError
from connector.sandbox.seed import SeedTicket
from connector.state.postgres import PostgresState, close_pools
from tests.daemon_harness import Daemon, wait_for
from tests.fleet_harness import Accounts, accounts, reference

pytestmark = pytest.mark.reliability

LEASE = 3.0  # seconds: short, so that the test waits little
TENANTS = 6


def serving(url: str) -> dict[str, str]:
    """Who serves each tenant now (its lease's owner)."""
    try:
        view = PostgresState(url, readonly=True)
    except ConfigError:  # no daemon has made the tables yet
        return {}
    try:
        return view.served()[1]
    finally:
        view.close()


def pid_of(owner: str) -> int:
    return int(owner.split(":")[-2])


def held_by(url: str, daemon: Daemon) -> list[str]:
    assert daemon.process is not None
    return sorted(t for t, o in serving(url).items() if pid_of(o) == daemon.process.pid)


def written_by(daemon: Daemon, tenant: str, until_event: str | None = None) -> list[str]:
    """The tickets `daemon` logged as written for `tenant` (up to its first `until_event` for
    that tenant)."""
    written = []
    for line in daemon.log_path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if entry.get("tenant") != tenant:
                continue
            if entry.get("event") == until_event:
                break
            if entry.get("event") == "ticket_written":
                written.append(str(entry.get("ticket")))
    return written


def notes_twice(fleet: Accounts) -> list[str]:
    found = []
    for tenant in fleet.tenants:
        for ticket, (_, _, _, marks) in tenant.shown().items():
            if any(n > 1 for n in Counter(m for m in marks if m).values()):  # type: ignore[union-attr]
                found.append(f"{tenant.name}#{ticket}")
    return found


def test_daemons_share_the_tenants_and_take_over_from_one_that_leaves_or_dies(
    tmp_path: Path, postgres_url: str
) -> None:
    extra = f"state_lease_seconds = {LEASE}\n"
    with accounts(TENANTS, tmp_path / "fleet", state_url=postgres_url, extra=extra) as fleet:
        one, two, three = fleet.daemon(), fleet.daemon(), fleet.daemon()
        try:
            one.start()
            wait_for("the first to hold every tenant", lambda: len(held_by(postgres_url, one)) == 6)
            wait_for("READY=1", lambda: any("READY=1" in m for m in fleet.messages(one)))

            # A second joins: the first hands back half, the second takes them.
            joined = time.monotonic()
            two.start()
            wait_for(
                "three each",
                lambda: (
                    (len(held_by(postgres_url, one)), len(held_by(postgres_url, two))) == (3, 3)
                ),
            )
            print(f"rebalanced to 3 + 3 in {time.monotonic() - joined:.1f} s")
            three.start()
            wait_for(
                "two each",
                lambda: (
                    sorted(len(held_by(postgres_url, d)) for d in (one, two, three)) == [2, 2, 2]
                ),
            )
            assert len(serving(postgres_url)) == TENANTS

            # SIGTERM: its tenants are handed back at once, the others take them (well within
            # the lease: nothing has to run out).
            left = held_by(postgres_url, three)
            stopped = time.monotonic()
            three.signal(signal.SIGTERM)
            assert three.wait() == 0
            wait_for(
                "the leaver's tenants taken",
                lambda: all(t in serving(postgres_url) for t in left),
            )
            handed = time.monotonic() - stopped
            assert three.events("fleet_stopped")

            # kill -9: its leases stay until they run out, then the survivor takes them.
            lost = held_by(postgres_url, two)
            assert lost
            two.kill()
            killed = time.monotonic()
            wait_for(
                "the dead daemon's tenants taken",
                lambda: held_by(postgres_url, one) == sorted(t.name for t in fleet.tenants),
            )
            took = time.monotonic() - killed
            print(
                f"handed over on SIGTERM in {handed:.1f} s; taken over {took:.1f} s after kill -9"
            )
            assert took < LEASE + 5 + 10, took  # the lease, a look (≤ 1 s here), a start

            for tenant in fleet.tenants:
                wait_for(
                    f"{tenant.name} synced by the survivor",
                    lambda t=tenant.name: any(
                        e.get("tenant") == t for e in one.events("synced")[-TENANTS * 3 :]
                    ),
                )
            one.signal(signal.SIGTERM)
            assert one.wait() == 0
        finally:
            close_pools()
        assert serving(postgres_url) == {}  # every lease handed back
        assert notes_twice(fleet) == []
        for tenant in fleet.tenants:
            expected = reference(tenant.helpdesk, tmp_path / f"reference-{tenant.name}")
            assert tenant.shown() == expected, tenant.name


# --- kill -9 again and again, agents acting -------------------------------------------------

SOAK_TENANTS = 10
SOAK_DAEMONS = 3


class Agents:
    """Agents at work on every account while daemons die: new tickets (photoprism customers,
    severities 1 to 4, created up to three hours before) and edits of them, one action every
    0.2 s, on a thread of their own."""

    def __init__(self, fleet: Accounts, seed: int) -> None:
        self.fleet = fleet
        self.random = random.Random(seed)
        self.created: dict[str, list[int]] = {t.name: [] for t in fleet.tenants}
        self.actions = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="agents")

    def __enter__(self) -> Agents:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _work(self) -> None:
        number = 900_000
        while not self._stop.wait(0.2):
            tenant = self.random.choice(self.fleet.tenants)
            mine = self.created[tenant.name]
            if mine and self.random.random() < 0.4:
                tenant.sandbox.agent_edit(self.random.choice(mine), helpdesk=tenant.helpdesk)
            else:
                number += 1
                now = datetime.now(UTC).replace(microsecond=0)
                ticket = SeedTicket(
                    number,
                    "soak",
                    now - timedelta(minutes=self.random.randrange(1, 180)),
                    self.random.choice((101, 102, 103)),
                    severity=self.random.choice(("sev1", "sev2", "sev3", "sev4")),
                )
                tenant.sandbox.seed([ticket], customers=(), helpdesks=(tenant.helpdesk,))
                # Saved now, as a new ticket is (the seed dates it at its creation).
                tenant.sandbox.agent_edit(number, helpdesk=tenant.helpdesk)
                mine.append(number)
            tenant.clock.advance(61)  # past Zendesk's one-minute export lag
            self.actions += 1


def oldest_due_wakeup(url: str) -> float:
    """How long ago the instant of the oldest wake-up still waiting passed, on any tenant
    (0: none is due)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT extract(epoch FROM now()) - min(at) FROM wakeups "
            "WHERE at < extract(epoch FROM now())"
        ).fetchone()
    return 0.0 if row is None or row[0] is None else float(row[0])


def test_kill_9_again_and_again_with_agents_acting(
    tmp_path: Path, postgres_url: str, long_run: bool
) -> None:
    """Three daemons, ten accounts, agents creating and editing tickets throughout; six
    times (thirty with --long) a daemon holding tenants is killed with kill -9 at a random
    point and started again. Its tenants are taken within the lease; no wake-up waits past
    the lease and a poll; at the end every account shows each seeded ticket as its own
    uninterrupted run does, every agent's ticket decided and noted, no note twice."""
    kills = 30 if long_run else 6
    rng = random.Random(21)
    extra = f"state_lease_seconds = {LEASE}\n"
    took: list[float] = []
    late = LEASE + 1 + 10  # the lease, a poll (1 s here), and a start's first cycle
    with accounts(SOAK_TENANTS, tmp_path / "fleet", state_url=postgres_url, extra=extra) as fleet:
        daemons = [fleet.daemon() for _ in range(SOAK_DAEMONS)]
        for daemon in daemons:
            daemon.start()
        wait_for("every tenant served", lambda: len(serving(postgres_url)) == SOAK_TENANTS)
        waited = 0.0  # the longest a due wake-up was seen waiting
        with Agents(fleet, seed=21) as agents:
            for _ in range(kills):
                time.sleep(rng.uniform(0.2, 3.0))  # a random point: mid-sync, idle, handing over
                holding = [d for d in daemons if d.running() and held_by(postgres_url, d)]
                victim = rng.choice(holding)
                lost = held_by(postgres_url, victim)
                victim.kill()
                killed = time.monotonic()
                assert victim.process is not None
                dead = victim.process.pid
                wait_for(
                    "the dead daemon's tenants taken",
                    lambda lost=lost, dead=dead: all(
                        t in (now := serving(postgres_url)) and pid_of(now[t]) != dead for t in lost
                    ),
                )
                took.append(time.monotonic() - killed)
                waited = max(waited, oldest_due_wakeup(postgres_url))
                daemons[daemons.index(victim)] = replacement = fleet.daemon()
                replacement.start()
        actions = agents.actions
        # Quiet now: every tenant served, every agent's ticket written, nothing left due.
        wait_for("every tenant served", lambda: len(serving(postgres_url)) == SOAK_TENANTS)

        def written(tenant_name: str, ticket: int) -> bool:
            tenant = next(t for t in fleet.tenants if t.name == tenant_name)
            tags, _, _, marks = tenant.shown()[ticket]
            return "sla_photoprism" in tags and any(marks)

        for name, tickets in agents.created.items():
            for ticket in tickets:
                wait_for(f"{name}#{ticket} written", lambda n=name, t=ticket: written(n, t), 120)
        for daemon in daemons:  # started far enough to stop gracefully (its handlers set)
            wait_for("a daemon's start", lambda d=daemon: bool(d.events("fleet_started")))
            daemon.signal(signal.SIGTERM)
        for daemon in daemons:
            assert daemon.wait() == 0
        close_pools()
        assert waited < late, f"a wake-up waited {waited:.1f} s past its instant"
        assert notes_twice(fleet) == []
        for tenant in fleet.tenants:
            expected = reference(tenant.helpdesk, tmp_path / f"reference-{tenant.name}")
            final = tenant.shown()
            assert {t: final[t] for t in expected} == expected, tenant.name
    took.sort()
    print(
        f"{kills} kills, {actions} agent actions: taken over in {took[len(took) // 2]:.1f} s "
        f"(median), {took[-1]:.1f} s at most, lease {LEASE} s; a due wake-up waited "
        f"{waited:.1f} s at most"
    )
    assert took[-1] < LEASE + 10, took


def test_a_stopped_daemon_resumed_after_its_tenants_moved_writes_nothing(
    tmp_path: Path, postgres_url: str
) -> None:
    """SIGSTOP a daemon past its leases: the other takes its tenants and writes the next
    ticket. SIGCONT: each of its tenants finds its lease passed at its first transaction and
    ends there (`claim_lost`), writing nothing; the daemon takes its share again."""
    extra = f"state_lease_seconds = {LEASE}\n"
    with accounts(2, tmp_path / "fleet", state_url=postgres_url, extra=extra) as fleet:
        one, two = fleet.daemon(), fleet.daemon()
        try:
            one.start()
            wait_for("the first to hold both", lambda: len(held_by(postgres_url, one)) == 2)
            wait_for("READY=1", lambda: any("READY=1" in m for m in fleet.messages(one)))
            two.start()
            wait_for("one each", lambda: len(held_by(postgres_url, two)) == 1)
            [kept] = held_by(postgres_url, one)
            tenant = next(t for t in fleet.tenants if t.name == kept)
            written_before = len(written_by(one, kept))
            one.signal(signal.SIGSTOP)
            stopped = time.monotonic()
            wait_for("the other to take it", lambda: len(held_by(postgres_url, two)) == 2)
            now = datetime.now(UTC).replace(microsecond=0)
            ticket = SeedTicket(990_001, "stalled", now - timedelta(hours=1), 101, severity="sev2")
            tenant.sandbox.seed([ticket], customers=(), helpdesks=(tenant.helpdesk,))
            tenant.sandbox.agent_edit(990_001, helpdesk=tenant.helpdesk)
            tenant.clock.advance(61)

            def noted() -> bool:
                tags, _, _, marks = tenant.shown()[990_001]
                return "sla_photoprism" in tags and any(marks)

            wait_for("the other to write the new ticket", noted)
            assert time.monotonic() - stopped > LEASE
            one.signal(signal.SIGCONT)
            wait_for(
                "the resumed daemon to find its lease passed",
                lambda: any(e.get("tenant") == kept for e in one.events("claim_lost")),
            )
            wait_for("one each again", lambda: len(held_by(postgres_url, one)) == 1)
            for daemon in (one, two):
                daemon.signal(signal.SIGTERM)
            assert one.wait() == 0
            assert two.wait() == 0
        finally:
            close_pools()
        # Up to the lease found passed, nothing more written for that tenant by the resumed one.
        assert len(written_by(one, kept, until_event="claim_lost")) == written_before
        assert notes_twice(fleet) == []


def test_a_daemon_that_fails_every_tenant_leaves_none_unserved(
    tmp_path: Path, postgres_url: str
) -> None:
    """A third daemon joins without the tenants' secrets (a host missing its credentials):
    the two others hand it its share, each tenant of which fails there at once. It stops
    counting itself among the daemons alive, and the two serve every tenant again."""
    extra = f"state_lease_seconds = {LEASE}\n"
    with accounts(6, tmp_path / "fleet", state_url=postgres_url, extra=extra) as fleet:
        one, two = fleet.daemon(), fleet.daemon()
        blind = fleet.daemon(**{k: "" for k in fleet.env if "__" in k and "API" in k})

        def healthy() -> bool:
            served = held_by(postgres_url, one) + held_by(postgres_url, two)
            return sorted(served) == sorted(t.name for t in fleet.tenants)

        try:
            one.start()
            two.start()
            wait_for(
                "three each", lambda: [len(held_by(postgres_url, d)) for d in (one, two)] == [3, 3]
            )
            blind.start()
            wait_for("the blind one to fail", lambda: bool(blind.events("tenant_failed")))
            wait_for("the two to serve every tenant", healthy)
            for _ in range(20):  # two leases and more: it stays so
                assert healthy()
                time.sleep(0.3)
            assert blind.running()
            told = "\n".join(fleet.messages(blind))
            assert "FAILING" in told
        finally:
            for daemon in (one, two, blind):
                if daemon.running():
                    daemon.signal(signal.SIGTERM)
                    daemon.wait()
            close_pools()
