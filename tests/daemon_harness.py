"""The real `sla-connector` process against the sandbox served on loopback: shared test setup.

`served(...)` serves a sandbox, writes a config file (JSON logs) and the sandbox's secrets into
an environment, and yields a `Served` whose `Daemon` starts the real command as a subprocess
(`python -m connector run`, or any other command such as `backfill`). `shown()` is what every
ticket shows a user. Used by `test_daemon_process.py` and `test_crash_loop.py`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from connector.cli.demo import sandbox_secrets
from connector.helpdesks.mapping import find_note_fingerprint
from connector.mappingfiles import default_mappings_dir
from connector.sandbox import Counters, OffsetClock, RequestCount, Sandbox

__all__ = [
    "ANCHOR",
    "DEADLINE",
    "START",
    "Daemon",
    "RequestLog",
    "Served",
    "served",
    "shown",
    "wait_for",
]

# Long enough ago that every target is settled (achieved or breached): an uninterrupted run a
# few seconds apart decides exactly the same.
ANCHOR = datetime.now(UTC).replace(microsecond=0) - timedelta(days=90)
# Where the first poll starts (config `start`): before every seeded ticket.
START = ANCHOR - timedelta(days=400)
DEADLINE = 60.0


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


class RequestLog(Counters):
    """The sandbox's counters, plus how many calls were answered and the last one (to tell
    what a process was doing when it was killed)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.last: RequestCount | None = None

    def record(self, helpdesk: str, method: str, route: str, status: int) -> None:
        """Count one call and remember it as the last."""
        super().record(helpdesk, method, route, status)
        with self._lock:
            self.calls += 1
            self.last = RequestCount(helpdesk, method, route, status)


@dataclass
class Daemon:
    """One `sla-connector` subprocess at a time (`command`, default `run`) and what it said."""

    config: Path
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    command: tuple[str, ...] = ("run",)
    _read: int = 0  # how much of the log `tail()` has read
    _partial: bytes = b""
    _seen: Counter[str] = field(default_factory=Counter)

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "connector", *self.command, "--config", str(self.config)],
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

    def tail(self) -> Counter[str]:
        """How many times each event was logged so far (reads only what is new)."""
        if not self.log_path.exists():
            return self._seen
        with self.log_path.open("rb") as log:
            log.seek(self._read)
            chunk = log.read()
        self._read += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict) and isinstance(entry.get("event"), str):
                    self._seen[entry["event"]] += 1
        return self._seen

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

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
        return self.sandbox.ticket_writes(self.helpdesk)


@contextlib.contextmanager
def served(
    sandbox: Sandbox,
    clock: OffsetClock,
    helpdesk: str,
    folder: Path,
    command: tuple[str, ...] = ("run",),
) -> Iterator[Served]:
    """`sandbox` on loopback and a `Daemon` (not started) configured for it in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    server = sandbox.serve("127.0.0.1", 0).start()
    mapping = folder / f"{helpdesk}.yaml"
    source = default_mappings_dir() / "helpdesks" / f"{helpdesk}.example.yaml"
    mapping.write_text(source.read_text())
    url = server.zendesk_url if helpdesk == "zendesk" else server.freshdesk_url
    config = folder / "config.toml"
    config.write_text(
        f'helpdesk = "{helpdesk}"\n'
        f'mappings = "{default_mappings_dir()}"\n'
        f'helpdesk_mapping = "{mapping}"\n'
        f'state_dir = "{folder / "state"}"\n'
        "poll_interval = 1\n"
        f'start = "{START.isoformat()}"\n'
        f'[{helpdesk}]\nurl = "{url}"\n'
        + (f'email = "{sandbox.credentials.zendesk_email}"\n' if helpdesk == "zendesk" else "")
        + '[log]\nformat = "json"\nlevel = "info"\n'
    )
    # A short folder of its own: an AF_UNIX path is at most 107 bytes.
    sockets = tempfile.TemporaryDirectory(prefix="sla-notify-")
    notify_path = str(Path(sockets.name) / "notify.sock")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    notify.setblocking(False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLA_CONNECTOR_")}
    env.update(
        {f"SLA_CONNECTOR_{k.upper()}": v for k, v in sandbox_secrets(sandbox).items()},
        NOTIFY_SOCKET=notify_path,
    )
    daemon = Daemon(config, env, folder / "daemon.log", command=command)
    try:
        yield Served(sandbox, clock, helpdesk, daemon, mapping, notify)
    finally:
        if daemon.running():
            daemon.kill()
        notify.close()
        sockets.cleanup()
        server.close()
