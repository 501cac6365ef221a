"""The real daemon process (`sla-connector run`) against the sandbox served on loopback.

Each test starts `python -m connector run` as a subprocess with a config file and secrets in
its environment, and watches what it does to the sandbox and what it says on its log
(JSON lines) and on its sd_notify socket:
- killed with SIGKILL in the middle of its writes, twice, then restarted, it ends with the
  helpdesk showing exactly what an uninterrupted run shows: no note twice, no quota counted
  twice;
- SIGTERM is graceful (STOPPING, exit 0);
- SIGHUP with a broken mapping keeps the old mapping and the daemon goes on.
"""

from __future__ import annotations

import dataclasses
import itertools
import signal
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog

from connector.app import load_rules, open_helpdesk
from connector.cli.demo import demo_settings, sandbox_secrets
from connector.sandbox import FRESHDESK_URL, ZENDESK_URL, OffsetClock, Sandbox, generate
from connector.sandbox.faults import FaultKind
from connector.sandbox.seed import SeedTicket
from connector.service.sync import Sync
from connector.state import State
from tests.daemon_harness import ANCHOR, START, Served, served, shown, wait_for

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="signals and AF_UNIX datagrams")

LOAD = 300


def seeded(clock: OffsetClock | None = None) -> Sandbox:
    sandbox = Sandbox.seeded(
        anchor=ANCHOR, incremental_export_limit=None, clock=clock or OffsetClock()
    )
    sandbox.seed(generate(LOAD, seed=5, anchor=ANCHOR), customers=())
    return sandbox


def reference(helpdesk: str, folder: Path) -> tuple[dict[int, tuple[Any, ...]], int]:
    """An uninterrupted in-process sync of the same tickets: what the helpdesk should show."""
    sandbox = seeded()
    url = ZENDESK_URL if helpdesk == "zendesk" else FRESHDESK_URL
    settings = demo_settings(helpdesk, url, folder, start=START)
    transport = sandbox.zendesk_transport() if helpdesk == "zendesk" else None
    transport = transport or sandbox.freshdesk_transport()
    state = State(settings.state_file)
    client = open_helpdesk(settings, state, transport=transport, secrets=sandbox_secrets(sandbox))
    log = structlog.wrap_logger(structlog.ReturnLogger())
    sync = Sync(client, state, load_rules(settings), clock=lambda: datetime.now(UTC), log=log)
    sync.poll("poll", START)
    sync.wake()
    counted = state.counts()["counted"]
    state.close()
    return shown(sandbox, helpdesk), counted


@pytest.fixture(name="served", params=["zendesk", "freshdesk"])
def served_daemon(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    clock = OffsetClock()
    with served(seeded(clock), clock, request.param, tmp_path) as setup:
        yield setup


def test_kill_9_mid_sync_then_restart_ends_as_an_uninterrupted_run(
    served: Served, tmp_path: Path
) -> None:
    expected, counted = reference(served.helpdesk, tmp_path / "reference")
    daemon = served.daemon
    for stop_after in (40, 150):
        daemon.start()
        wait_for(f"{stop_after} writes", lambda n=stop_after: served.writes() >= n)  # type: ignore[misc]
        daemon.kill()
    assert served.writes() < len(expected), "the kills must land before the sync is done"
    daemon.start()
    wait_for("a complete sync after the restart", lambda: len(daemon.events("synced")) >= 1)
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0
    assert shown(served.sandbox, served.helpdesk) == expected
    state = State(tmp_path / "state" / "state.sqlite3")
    assert state.counts()["counted"] == counted
    assert state.pending_notes() == []
    state.close()


def test_sigterm_is_graceful_and_systemd_is_told(served: Served) -> None:
    daemon = served.daemon
    daemon.start()
    wait_for("READY=1", lambda: any("READY=1" in m for m in served.messages()))
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0
    assert daemon.events("daemon_stopped")
    messages = served.messages()
    assert any("STOPPING=1" in m for m in messages)


def test_sighup_with_a_broken_mapping_keeps_the_old_one(served: Served) -> None:
    daemon = served.daemon
    daemon.start()
    wait_for("the first sync", lambda: len(daemon.events("synced")) >= 1)
    good = served.mapping.read_text()
    served.mapping.write_text("facts: [this is not a mapping\n")
    daemon.signal(signal.SIGHUP)
    wait_for("the refusal", lambda: len(daemon.events("reload_refused")) >= 1)
    refused = daemon.events("reload_refused")[0]
    assert str(served.mapping) in " ".join(refused["problems"])
    # `systemctl status` says so, and keeps saying so at every sync until a good reload.
    statuses: list[str] = []

    def status_seen(text: str, present: bool = True) -> bool:
        statuses.extend(m for m in served.messages() if "STATUS=" in m)
        return any((text in m) == present for m in statuses[-1:])

    wait_for("the refusal on the status line", lambda: status_seen("RELOAD REFUSED"))
    # Still running, still with the old mapping: a new ticket is written.
    now = datetime.now(UTC).replace(microsecond=0)
    new = SeedTicket(777_001, "After the reload", now - timedelta(hours=1), 101, severity="sev2")
    served.sandbox.seed([new], customers=(), helpdesks=(served.helpdesk,))
    served.sandbox.agent_edit(777_001, helpdesk=served.helpdesk)
    served.clock.advance(61)  # past Zendesk's one-minute export lag
    desk = served.sandbox.zendesk if served.helpdesk == "zendesk" else served.sandbox.freshdesk
    wait_for("the new ticket written", lambda: "sla_photoprism" in desk.tickets[777_001].tags)

    def refused_twice() -> bool:
        status_seen("RELOAD REFUSED")
        return sum("RELOAD REFUSED" in m and "synced" in m for m in statuses) >= 2

    # The refusal's own status, then a later sync's: both say it.
    wait_for("a later sync's status, still saying so", refused_twice)
    assert daemon.process is not None
    assert daemon.process.poll() is None
    served.mapping.write_text(good)
    daemon.signal(signal.SIGHUP)
    wait_for("the good reload", lambda: len(daemon.events("reloaded")) >= 1)
    wait_for("a status without it", lambda: status_seen("RELOAD REFUSED", present=False))
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0


@pytest.mark.reliability
def test_a_second_daemon_on_the_same_state_refuses_to_start_naming_the_first(
    served: Served,
) -> None:
    first = served.daemon
    first.start()
    wait_for("READY=1", lambda: any("READY=1" in m for m in served.messages()))
    second = dataclasses.replace(
        first, log_path=first.log_path.with_name("second.log"), process=None
    )
    second.start()
    assert second.wait() == 1  # not 2: systemd may start it again once the first is gone
    refusal = second.log_path.read_text()
    assert f"already in use by sla-connector run (pid {first.process.pid}" in refusal  # type: ignore[union-attr]
    assert "Traceback" not in refusal
    assert first.running()
    first.signal(signal.SIGTERM)
    assert first.wait() == 0
    # Released on exit (and by the kernel on a crash): the next one starts.
    second.start()
    wait_for("the second daemon's first sync", lambda: len(second.events("synced")) >= 1)
    second.kill()


@pytest.mark.reliability
def test_the_watchdog_hears_from_a_long_first_sync_all_along(served: Served) -> None:
    # Every request answered 0.05 s late: a first sync of several seconds, as a large account's
    # takes most of an hour. With a 3 s watchdog, systemd must hear WATCHDOG=1 well within it.
    served.sandbox.faults.add("slow", helpdesk=served.helpdesk, count=None, delay=0.05)
    daemon = served.daemon
    daemon.env["WATCHDOG_USEC"] = "3000000"
    daemon.start()
    heard: list[float] = []
    started = time.monotonic()

    def synced() -> bool:
        heard.extend(time.monotonic() for m in served.messages() if "WATCHDOG=1" in m)
        return len(daemon.events("synced")) >= 1

    wait_for("the first sync", synced)
    took = time.monotonic() - started
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0
    assert took > 4, "the first sync must outlast the watchdog for the test to mean anything"
    gaps = [b - a for a, b in itertools.pairwise([started, *heard])]
    # Pinged about once a second, so a loaded machine still has two seconds of slack.
    assert max(gaps) < 3.0, gaps


@pytest.mark.reliability
@pytest.mark.parametrize(
    "fault",
    [FaultKind.RATE_LIMITED, FaultKind.SLOW],
    ids=["in a rate-limit wait", "in a read"],
)
def test_sigterm_ends_a_cycle_stuck_in_a_wait_or_a_read_at_once(
    served: Served, fault: FaultKind
) -> None:
    """Issue 16, item 5: SIGTERM waits for no Retry-After, back-off or slow read.

    Each read is answered 429 with a Retry-After of 250 s, or 40 s late (within the request's
    60 s deadline). Before the stop reached the HTTP shell, the daemon finished the wait or the
    read and then the rest of the page, retries and all: minutes, beyond `TimeoutStopSec`.
    """
    stuck = 250.0 if fault is FaultKind.RATE_LIMITED else 40.0
    served.sandbox.faults.add(
        fault, helpdesk=served.helpdesk, method="GET", count=None, retry_after=stuck, delay=stuck
    )
    daemon = served.daemon
    daemon.start()
    wait_for("the first read", lambda: served.sandbox.faults.fired >= 1)
    time.sleep(0.5)  # into the wait or the read
    asked = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0
    assert time.monotonic() - asked < stuck / 4
    assert daemon.events("sync_interrupted")
    assert daemon.events("daemon_stopped")
    assert not daemon.events("sync_failed")
    assert served.sandbox.faults.fired == 1  # nothing sent after the stop
