"""Several helpdesk accounts (`[[tenants]]`), each a sandbox on loopback, served by real
`sla-connector run` processes: shared setup of `test_tenants.py` and `test_fleet_failover.py`.

`accounts(n, folder)` serves `n` seeded sandboxes (Zendesk and Freshdesk in turn, tenants
`t01`, `t02`, …), writes one configuration naming them all (JSON logs, poll every second),
their secrets by tenant name in an environment, and yields an `Accounts` whose `daemon()`
makes another daemon process of that configuration (not started), each with its own log and
notify socket.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from connector.cli.demo import sandbox_secrets
from connector.config import secret_names
from connector.mappingfiles import default_mappings_dir
from connector.sandbox import FRESHDESK_URL, ZENDESK_URL, OffsetClock, Sandbox
from connector.sandbox.server import SandboxServer
from tests.daemon_harness import ANCHOR, START, Daemon, shown

__all__ = ["Account", "Accounts", "accounts", "reference"]


@dataclass
class Account:
    """One tenant: its sandbox, its helpdesk there, its clock."""

    name: str
    helpdesk: str
    sandbox: Sandbox
    clock: OffsetClock
    server: SandboxServer

    def shown(self) -> dict[int, tuple[object, ...]]:
        return shown(self.sandbox, self.helpdesk)


@dataclass
class Accounts:
    """The tenants, their configuration and the daemons made for it."""

    folder: Path
    config: Path
    env: dict[str, str]
    tenants: list[Account]
    daemons: list[Daemon] = field(default_factory=list)
    sockets: list[socket.socket] = field(default_factory=list)
    told: dict[int, list[str]] = field(default_factory=dict)
    _folders: list[tempfile.TemporaryDirectory[str]] = field(default_factory=list)

    def daemon(self, **env: str) -> Daemon:
        """Another daemon process of the configuration (not started), its own log and
        notify socket (`.notify`: the socket, to read what it told systemd)."""
        number = len(self.daemons) + 1
        folder = tempfile.TemporaryDirectory(prefix="sla-notify-")  # AF_UNIX: ≤ 107 bytes
        self._folders.append(folder)
        path = str(Path(folder.name) / "notify.sock")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(path)
        notify.setblocking(False)
        self.sockets.append(notify)
        daemon = Daemon(
            self.config,
            {**self.env, "NOTIFY_SOCKET": path, **env},
            self.folder / f"daemon-{number}.log",
        )
        self.daemons.append(daemon)
        return daemon

    def messages(self, daemon: Daemon) -> list[str]:
        """Everything `daemon` told systemd so far, oldest first."""
        number = self.daemons.index(daemon)
        told = self.told.setdefault(number, [])
        with contextlib.suppress(BlockingIOError):
            while True:
                told.append(self.sockets[number].recv(4096).decode())
        return list(told)


def tenant_config(tenant: Account, folder: Path) -> str:
    """The `[[tenants]]` table of one account."""
    mapping = folder / f"{tenant.name}-{tenant.helpdesk}.yaml"
    source = default_mappings_dir() / "helpdesks" / f"{tenant.helpdesk}.example.yaml"
    mapping.write_text(source.read_text())
    url = tenant.server.zendesk_url if tenant.helpdesk == "zendesk" else tenant.server.freshdesk_url
    text = (
        f'[[tenants]]\nname = "{tenant.name}"\nhelpdesk = "{tenant.helpdesk}"\n'
        f'helpdesk_mapping = "{mapping}"\nstart = "{START.isoformat()}"\n'
        f'[tenants.{tenant.helpdesk}]\nurl = "{url}"\n'
    )
    if tenant.helpdesk == "zendesk":
        text += f'email = "{tenant.sandbox.credentials.zendesk_email}"\n'
    return text


@contextlib.contextmanager
def accounts(
    count: int, folder: Path, *, state_url: str | None = None, extra: str = ""
) -> Iterator[Accounts]:
    """`count` seeded sandboxes on loopback and one configuration serving them all (`state_url`:
    a PostgreSQL state, else a SQLite file in `folder`; `extra`: more top-level keys)."""
    folder.mkdir(parents=True, exist_ok=True)
    tenants: list[Account] = []
    try:
        for number in range(1, count + 1):
            clock = OffsetClock()
            sandbox = Sandbox.seeded(clock=clock, anchor=ANCHOR)
            helpdesk = "zendesk" if number % 2 else "freshdesk"
            server = sandbox.serve("127.0.0.1", 0, helpdesks=(helpdesk,)).start()
            tenants.append(Account(f"t{number:02d}", helpdesk, sandbox, clock, server))
        config = folder / "config.toml"
        config.write_text(
            f'mappings = "{default_mappings_dir()}"\n'
            + (f'state_url = "{state_url}"\n' if state_url else f'state_dir = "{folder}/state"\n')
            + "poll_interval = 1\n"
            + extra
            + '[log]\nformat = "json"\nlevel = "info"\n'
            + "".join(tenant_config(t, folder) for t in tenants)
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLA_CONNECTOR_")}
        for tenant in tenants:
            for name, value in sandbox_secrets(tenant.sandbox).items():
                env[secret_names(name, tenant.name)[0]] = value
        made = Accounts(folder, config, env, tenants)
        try:
            yield made
        finally:
            for daemon in made.daemons:
                if daemon.running():
                    daemon.kill()
            for notify in made.sockets:
                notify.close()
            for kept in made._folders:
                kept.cleanup()
    finally:
        for tenant in tenants:
            tenant.server.close()


def reference(helpdesk: str, folder: Path) -> dict[int, tuple[object, ...]]:
    """What an uninterrupted single-account sync of the same seeded sandbox leaves on the
    helpdesk: what every tenant's helpdesk should show."""
    import structlog

    from connector.app import load_rules, open_helpdesk
    from connector.cli.demo import demo_settings
    from connector.service.daemon import STATUS_CURSOR
    from connector.service.sync import Sync
    from connector.state import State

    sandbox = Sandbox.seeded(clock=OffsetClock(), anchor=ANCHOR)
    url = ZENDESK_URL if helpdesk == "zendesk" else FRESHDESK_URL
    settings = demo_settings(helpdesk, url, folder, start=START)
    transport = (
        sandbox.zendesk_transport() if helpdesk == "zendesk" else sandbox.freshdesk_transport()
    )
    state = State(settings.state_file)
    client = open_helpdesk(settings, state, transport=transport, secrets=sandbox_secrets(sandbox))
    log = structlog.wrap_logger(structlog.ReturnLogger())
    sync = Sync(client, state, load_rules(settings), clock=lambda: datetime.now(UTC), log=log)
    sync.read_statuses(STATUS_CURSOR, START)
    sync.poll("poll", START)
    sync.wake()
    state.close()
    client.close()
    return shown(sandbox, helpdesk)
