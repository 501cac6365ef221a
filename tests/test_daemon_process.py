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

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog

from connector.app import load_rules, open_helpdesk
from connector.demo import demo_settings, sandbox_secrets
from connector.helpdesks.mapping import find_note_fingerprint
from connector.mappingfiles import default_mappings_dir
from connector.sandbox import FRESHDESK_URL, ZENDESK_URL, OffsetClock, Sandbox, generate
from connector.sandbox.seed import SeedTicket
from connector.state import State
from connector.sync import Sync

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="signals and AF_UNIX datagrams")

# Long enough ago that every target is settled (achieved or breached): an uninterrupted run a
# few seconds apart decides exactly the same.
ANCHOR = datetime.now(UTC).replace(microsecond=0) - timedelta(days=90)
LOAD = 300
DEADLINE = 60.0


def seeded(clock: OffsetClock | None = None) -> Sandbox:
    sandbox = Sandbox.seeded(
        anchor=ANCHOR, incremental_export_limit=None, clock=clock or OffsetClock()
    )
    sandbox.seed(generate(LOAD, seed=5, anchor=ANCHOR), customers=())
    return sandbox


def wait_for(what: str, check: Callable[[], bool], timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def shown(sandbox: Sandbox, helpdesk: str) -> dict[int, tuple[Any, ...]]:
    """What every ticket shows: our tags, priority, dues and notes (agents' own edits aside)."""
    desk = sandbox.zendesk if helpdesk == "zendesk" else sandbox.freshdesk
    out = {}
    for ticket_id, ticket in desk.tickets.items():
        if helpdesk == "zendesk":
            dues: Any = tuple(sorted(ticket.fields.items()))
            notes = [c.body for c in ticket.thread() if not c.public]
        else:
            dues = (ticket.fr_due_by, ticket.due_by)
            notes = [n.body for n in ticket.thread() if n.private]
        marks = tuple(find_note_fingerprint(n) for n in notes)
        out[ticket_id] = (tuple(sorted(ticket.tags)), ticket.priority, dues, marks)
    return out


def reference(helpdesk: str, folder: Path) -> tuple[dict[int, tuple[Any, ...]], int]:
    """An uninterrupted in-process sync of the same tickets: what the helpdesk should show."""
    sandbox = seeded()
    url = ZENDESK_URL if helpdesk == "zendesk" else FRESHDESK_URL
    settings = demo_settings(helpdesk, url, folder, start=ANCHOR - timedelta(days=400))
    transport = sandbox.zendesk_transport() if helpdesk == "zendesk" else None
    transport = transport or sandbox.freshdesk_transport()
    state = State(settings.state_file)
    client = open_helpdesk(settings, state, transport=transport, secrets=sandbox_secrets(sandbox))
    log = structlog.wrap_logger(structlog.ReturnLogger())
    sync = Sync(client, state, load_rules(settings), clock=lambda: datetime.now(UTC), log=log)
    sync.poll("poll", ANCHOR - timedelta(days=400))
    sync.wake()
    counted = state.counts()["counted"]
    state.close()
    return shown(sandbox, helpdesk), counted


@dataclass
class Daemon:
    """One `sla-connector run` subprocess and what it said."""

    config: Path
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "connector", "run", "--config", str(self.config)],
            env=self.env,
            stdout=log,
            stderr=log,
        )
        log.close()

    def events(self, name: str) -> list[dict[str, Any]]:
        found = []
        for line in self.log_path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if entry.get("event") == name:
                    found.append(entry)
        return found

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self) -> int:
        assert self.process is not None
        return self.process.wait(timeout=DEADLINE)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.wait()


@dataclass
class Served:
    sandbox: Sandbox
    clock: OffsetClock
    helpdesk: str
    daemon: Daemon
    mapping: Path
    notify: socket.socket

    def messages(self) -> list[str]:
        out = []
        with contextlib.suppress(BlockingIOError):
            while True:
                out.append(self.notify.recv(4096).decode())
        return out

    def writes(self) -> int:
        method = "PUT" if self.helpdesk == "zendesk" else "POST"
        return self.sandbox.counters.total(helpdesk=self.helpdesk, method=method)


@pytest.fixture(params=["zendesk", "freshdesk"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    helpdesk: str = request.param
    clock = OffsetClock()
    sandbox = seeded(clock)
    server = sandbox.serve("127.0.0.1", 0).start()
    mapping = tmp_path / f"{helpdesk}.yaml"
    source = default_mappings_dir() / "helpdesks" / f"{helpdesk}.example.yaml"
    mapping.write_text(source.read_text())
    url = server.zendesk_url if helpdesk == "zendesk" else server.freshdesk_url
    config = tmp_path / "config.toml"
    config.write_text(
        f'helpdesk = "{helpdesk}"\n'
        f'mappings = "{default_mappings_dir()}"\n'
        f'helpdesk_mapping = "{mapping}"\n'
        f'state_dir = "{tmp_path / "state"}"\n'
        "poll_interval = 1\n"
        f'start = "{(ANCHOR - timedelta(days=400)).isoformat()}"\n'
        f'[{helpdesk}]\nurl = "{url}"\n'
        + (f'email = "{sandbox.credentials.zendesk_email}"\n' if helpdesk == "zendesk" else "")
        + '[log]\nformat = "json"\nlevel = "info"\n'
    )
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.setblocking(False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLA_CONNECTOR_")}
    env.update(
        {f"SLA_CONNECTOR_{k.upper()}": v for k, v in sandbox_secrets(sandbox).items()},
        NOTIFY_SOCKET=str(tmp_path / "notify.sock"),
    )
    daemon = Daemon(config, env, tmp_path / "daemon.log")
    try:
        yield Served(sandbox, clock, helpdesk, daemon, mapping, notify)
    finally:
        if daemon.process is not None and daemon.process.poll() is None:
            daemon.kill()
        notify.close()
        server.close()


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
    served.mapping.write_text("facts: [this is not a mapping\n")
    daemon.signal(signal.SIGHUP)
    wait_for("the refusal", lambda: len(daemon.events("reload_refused")) >= 1)
    refused = daemon.events("reload_refused")[0]
    assert str(served.mapping) in " ".join(refused["problems"])
    # Still running, still with the old mapping: a new ticket is written.
    now = datetime.now(UTC).replace(microsecond=0)
    new = SeedTicket(777_001, "After the reload", now - timedelta(hours=1), 101, severity="sev2")
    served.sandbox.seed([new], customers=(), helpdesks=(served.helpdesk,))
    served.sandbox.agent_edit(777_001, helpdesk=served.helpdesk)
    served.clock.advance(61)  # past Zendesk's one-minute export lag
    desk = served.sandbox.zendesk if served.helpdesk == "zendesk" else served.sandbox.freshdesk
    wait_for("the new ticket written", lambda: "sla_photoprism" in desk.tickets[777_001].tags)
    assert daemon.process is not None
    assert daemon.process.poll() is None
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0
