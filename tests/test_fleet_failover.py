"""Several daemons sharing several accounts on a PostgreSQL state (issue 21): each serves its
share, the shares move when a daemon joins or leaves, a daemon killed with `kill -9` loses its
tenants to the others within the lease, and every account ends as its own uninterrupted
single-account run leaves it, no note posted twice.

Real `sla-connector run` processes (tests/fleet_harness.py), a real throw-away PostgreSQL
(tests/postgres_server.py), each account a sandbox on loopback.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

from connector.errors import ConfigError
from connector.state.postgres import PostgresState, close_pools
from tests.daemon_harness import Daemon, wait_for
from tests.fleet_harness import Accounts, accounts, reference

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
