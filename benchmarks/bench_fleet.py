"""200 helpdesk accounts on 3 daemons sharing one PostgreSQL state (issue 21): the shares, the
memory and CPU per tenant, the wake-up latency of a "Monday opening", and rebalancing.

Usage: python benchmarks/bench_fleet.py [--quick] [--accounts 200] [--daemons 3]
           [--poll-interval 15] [--lease 30] [--steady 60] [--burst 5] [--workdir DIR]

Each account is a seeded sandbox (the bundled customers and 27 tickets) served on loopback by
this process, Zendesk and Freshdesk in turn (tenants t001, t002, ...); one configuration names
them all (`[[tenants]]`) with `state_url` on a throw-away PostgreSQL server
(tests/postgres_server.py). The daemons are real `python -m connector run` processes
(tests/daemon_harness.py), all started at the same instant. Phases, in order:

1. Start: time from the start until every tenant is served (`PostgresState.served()`), until
   every tenant has logged `synced` once, and until the shares are even (within 1) and stay so
   for 6 s; the tenants per daemon then; hand-backs on the way.
2. Idle: once no poll has read a ticket for 80 s (the first syncs' writes come back in the
   next polls, Zendesk's a minute later), a steady window (`--steady` s) of idle polling. Each
   daemon's RSS (VmRSS) and CPU (utime + stime, /proc/<pid>/stat) over the window, per daemon
   and per tenant; beside it the CPU of this process (the 200 sandboxes), of the PostgreSQL
   server, the HTTP requests, the PostgreSQL commits and connections (open, and busy at once).
3. Burst: every account gets `--burst` pixelz orders whose rejection notice ("5 hours", plain
   hours) breaches at one instant T0 a little ahead: created at T0 - 5 h - 1 s, touched by an
   agent now (and the Zendesk sandboxes' clocks moved 61 s past the export's minute). A target
   met in its due second is on time, so it breaches at due + 1 s = T0. The daemons decide them
   (at risk) before T0; at T0 every one of them breaches at once, as every clock of a
   business-hours contract turns at a Monday 09:00. This process watches the sandboxes and
   times T0 -> `sla_breached` shown on each ticket: median, p90, max.
4. SIGTERM of one daemon: time until its leases are given back, until it exits, and until
   every tenant is served by the others; then the memory of the survivors (more tenants each:
   the marginal MB per tenant gained).
5. The daemon starts again: time until the shares are even again.
6. kill -9 of one daemon: time until its leases run out (`--lease`, default 30 s, the
   configuration's default; renewed every third of it) and until its tenants are served by the
   others.

`--quick`: 20 accounts, a 10 s poll and lease, a 10 s idle window, 3 tickets an account, and no
wait for the echoes before the idle window: about 2 minutes. The full run takes about 8.

The PostgreSQL server is tests/postgres_server.py's (max_connections 100, PostgreSQL's
default). This process opens its two connections (its own, and the pool `served()` reads
through) before the daemons start: their pools may fill the server.

No timed assertions: each figure is printed beside its goal, and the script exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import signal
import socket
import statistics
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

import psycopg

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the tests' harnesses: `python benchmarks/bench_fleet.py`
    sys.path.insert(0, str(ROOT))

from connector.cli.demo import sandbox_secrets  # noqa: E402
from connector.config import secret_names  # noqa: E402
from connector.errors import ConnectorError  # noqa: E402
from connector.mappingfiles import default_mappings_dir  # noqa: E402
from connector.sandbox import OffsetClock, Sandbox, SandboxServer, SeedTicket  # noqa: E402
from connector.state.postgres import PostgresState, close_pools  # noqa: E402
from tests.postgres_server import PostgresServer  # noqa: E402

# As tests/daemon_harness.py: every seeded target long settled, the first poll before them all.
ANCHOR = datetime.now(UTC).replace(microsecond=0) - timedelta(days=90)
START = ANCHOR - timedelta(days=400)
CLOCK_TICK = os.sysconf("SC_CLK_TCK")
PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20
# The burst: pixelz orders (customers 401 and 402); their rejection notice is due 5 plain
# hours after creation (mappings/contracts/pixelz.yaml), whatever the day and hour.
BURST_FIRST_ID = 700_001
BURST_TARGET = timedelta(hours=5)
BURST_CUSTOMERS = (401, 402)
SETTLED_SECONDS = 6.0  # even shares held this long (longer than the fleet's 5 s look)


@dataclass(frozen=True)
class Mode:
    name: str
    accounts: int
    poll_interval: int
    lease: float
    steady: float
    burst: int
    lead: float  # T0 this long after the burst is seeded
    quiet: float  # the idle window begins once no poll has read a ticket for this long


# The first syncs' writes come back in the next polls (Zendesk's export a minute later) and are
# read again: a full run's idle window waits for that; a quick one does not.
FULL = Mode("full", 200, poll_interval=15, lease=30.0, steady=60.0, burst=5, lead=90.0, quiet=80.0)
QUICK = Mode("quick", 20, poll_interval=10, lease=10.0, steady=10.0, burst=3, lead=30.0, quiet=15.0)


# --- /proc ------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (its threads included)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK


def tree_cpu_seconds(pid: int) -> float:
    """utime + stime of a process, of its children reaped (cutime + cstime), and of its
    children alive: PostgreSQL's postmaster and its backends."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    total = sum(int(f) for f in fields[11:15]) / CLOCK_TICK
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        with contextlib.suppress(OSError, ValueError):
            total += cpu_seconds(int(child))
    return total


def cpu_split(pid: int) -> tuple[float, float]:
    """(utime, stime) of a process, in seconds."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[11]) / CLOCK_TICK, int(fields[12]) / CLOCK_TICK


def context_switches(pid: int) -> int:
    """Voluntary and involuntary context switches of all the process's threads alive."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            for line in (task / "status").read_text().splitlines():
                if "ctxt_switches:" in line:
                    total += int(line.split()[1])
    return total


def status(pid: int, key: str) -> int:
    """A number of /proc/<pid>/status (VmRSS, VmHWM in kB; Threads)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def rss_mb(pid: int) -> float:
    return status(pid, "VmRSS") / 1024


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot (/proc/stat)."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


# --- the daemons ------------------------------------------------------------------------------


class LogTail:
    """A JSON log read as it grows: the new entries at each call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._read = 0
        self._partial = b""

    def new(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as log:
            log.seek(self._read)
            chunk = log.read()
        self._read += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        out = []
        for line in lines:
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict):
                    out.append(entry)
        return out


@dataclass
class Daemon:
    """One `python -m connector run` process at a time (as tests/daemon_harness.py's)."""

    config: Path
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "connector", "run", "--config", str(self.config)],
                env=self.env,
                stdout=log,
                stderr=log,
            )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float = 90.0) -> int | None:
        """The exit status (None: still running after `timeout`)."""
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.wait()


@dataclass
class Member:
    """One daemon process of the fleet, its notify socket and its log."""

    number: int
    daemon: Daemon
    notify: socket.socket
    log: LogTail
    started: float = 0.0  # monotonic
    ready_after: float | None = None  # seconds from the start to READY=1

    @property
    def pid(self) -> int:
        assert self.daemon.process is not None
        return self.daemon.process.pid

    def start(self) -> None:
        self.ready_after = None
        self.started = time.monotonic()
        self.daemon.start()

    def read_notify(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while True:
                message = self.notify.recv(4096).decode()
                if "READY=1" in message.split("\n") and self.ready_after is None:
                    self.ready_after = time.monotonic() - self.started


@dataclass
class Fleet:
    """The accounts, the daemons, and what the benchmark has seen of them."""

    accounts: list[Account]
    url: str
    members: list[Member] = field(default_factory=list)
    # tenant -> [(epoch seconds, pid)] of each `synced` logged
    synced: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    events: Counter[tuple[str, str]] = field(default_factory=Counter)  # (level, event)
    # Connections to the database, sampled about once a second: the most open, the most
    # busy at once (in a statement or a transaction), this process's own two included.
    peak_connections: int = 0
    peak_busy: int = 0
    last_busy: float = 0.0  # epoch seconds of the last poll that read or woke a ticket
    _view: PostgresState | None = None
    _conn: psycopg.Connection[Any] | None = None
    _sampled: float = 0.0

    def prepare(self) -> None:
        """This process's connections, made before the daemons' pools fill the server (at
        max_connections it refuses more): one of its own, and the pool that `served()` reads
        through (its view opens once a daemon has made the tables)."""
        self._conn = psycopg.connect(self.url, autocommit=True)
        with contextlib.suppress(ConnectorError):
            self._view = PostgresState(self.url, readonly=True)
        deadline = time.monotonic() + 10
        while self.connections()[0] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)

    def connections(self) -> tuple[int, int]:
        """Connections to the database now: open, and busy (not idle)."""
        assert self._conn is not None
        row = self._conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE state <> 'idle') FROM pg_stat_activity "
            "WHERE datname = current_database()"
        ).fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def commits(self) -> int:
        assert self._conn is not None
        row = self._conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
        return int(row[0]) if row else 0

    def pump(self) -> None:
        """Read what the daemons logged and told systemd since the last call."""
        if time.monotonic() - self._sampled >= 1.0:
            self._sampled = time.monotonic()
            now, busy = self.connections()
            self.peak_connections = max(self.peak_connections, now)
            self.peak_busy = max(self.peak_busy, busy)
        for member in self.members:
            member.read_notify()
            if member.daemon.process is None:
                continue
            pid = member.pid
            for entry in member.log.new():
                event, level = str(entry.get("event")), str(entry.get("level"))
                self.events[(level, event)] += 1
                if event == "synced" and "tenant" in entry:
                    at = datetime.fromisoformat(str(entry["timestamp"])).timestamp()
                    self.synced.setdefault(str(entry["tenant"]), []).append((at, pid))
                    if entry.get("tickets") or entry.get("woken"):
                        self.last_busy = max(self.last_busy, at)

    def serving(self) -> dict[str, int]:
        """tenant -> pid of the daemon that holds its lease now."""
        if self._view is None:
            try:
                self._view = PostgresState(self.url, readonly=True)
            except ConnectorError:  # no daemon has made the tables yet
                return {}
        try:
            served = self._view.served()[1]
        except ConnectorError:
            return {}
        return {tenant: int(owner.split(":")[-2]) for tenant, owner in served.items()}

    def daemons_alive(self) -> int:
        """How many daemons hold their own lease (`daemon:<owner>`) now."""
        if self._view is None:
            return 0
        try:
            return len(self._view.served()[0])
        except ConnectorError:
            return 0

    def alive(self) -> list[Member]:
        return [m for m in self.members if m.daemon.running()]

    def shares(self, serving: dict[str, int] | None = None) -> list[int]:
        """Tenants held by each running daemon, in the order of `members`."""
        held = Counter((self.serving() if serving is None else serving).values())
        return [held.get(m.pid, 0) for m in self.alive()]

    def even(self, serving: dict[str, int]) -> bool:
        shares = self.shares(serving)
        return bool(shares) and sum(shares) == len(self.accounts) and max(shares) - min(shares) <= 1

    def close(self) -> None:
        if self._view is not None:
            self._view.close()
        if self._conn is not None:
            self._conn.close()
        close_pools()


def wait(fleet: Fleet, check: Callable[[], bool], timeout: float, every: float = 0.2) -> bool:
    """Call `check` (reading the logs first) until it holds (True) or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        fleet.pump()
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(every)


def wait_settled(fleet: Fleet, since: float, timeout: float) -> float | None:
    """Seconds from `since` until the shares were even and stayed even `SETTLED_SECONDS`."""
    streak: float | None = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fleet.pump()
        now = time.monotonic()
        if fleet.even(fleet.serving()):
            streak = now if streak is None else streak
            if now - streak >= SETTLED_SECONDS:
                return streak - since
        else:
            streak = None
        time.sleep(0.25)
    return None


def wait_quiet(fleet: Fleet, seconds: float, timeout: float) -> float | None:
    """Seconds until no poll has read or woken a ticket for `seconds`."""
    began = time.monotonic()
    if wait(fleet, lambda: time.time() - fleet.last_busy >= seconds, timeout, every=1.0):
        return time.monotonic() - began
    return None


# --- set-up -----------------------------------------------------------------------------------


@dataclass
class Account:
    """One tenant: its sandbox, its helpdesk there, its clock, its server on loopback."""

    name: str
    helpdesk: str
    sandbox: Sandbox
    clock: OffsetClock
    server: SandboxServer


def tenant_config(account: Account) -> str:
    """The `[[tenants]]` table of one account (as tests/fleet_harness.py writes it)."""
    mapping = default_mappings_dir() / "helpdesks" / f"{account.helpdesk}.example.yaml"
    server = account.server
    url = server.zendesk_url if account.helpdesk == "zendesk" else server.freshdesk_url
    text = (
        f'[[tenants]]\nname = "{account.name}"\nhelpdesk = "{account.helpdesk}"\n'
        f'helpdesk_mapping = "{mapping}"\nstart = "{START.isoformat()}"\n'
        f'[tenants.{account.helpdesk}]\nurl = "{url}"\n'
    )
    if account.helpdesk == "zendesk":
        text += f'email = "{account.sandbox.credentials.zendesk_email}"\n'
    return text


@contextlib.contextmanager
def sandboxes(count: int) -> Iterator[list[Account]]:
    """`count` seeded sandboxes on loopback, Zendesk and Freshdesk in turn."""
    accounts: list[Account] = []
    try:
        for number in range(1, count + 1):
            clock = OffsetClock()
            sandbox = Sandbox.seeded(clock=clock, anchor=ANCHOR)
            helpdesk = "zendesk" if number % 2 else "freshdesk"
            server = sandbox.serve("127.0.0.1", 0, helpdesks=(helpdesk,)).start()
            accounts.append(Account(f"t{number:03d}", helpdesk, sandbox, clock, server))
        yield accounts
    finally:
        for account in accounts:
            account.server.close()


def write_config(folder: Path, accounts: list[Account], url: str, mode: Mode) -> Path:
    config = folder / "config.toml"
    config.write_text(
        f'mappings = "{default_mappings_dir()}"\n'
        f'state_url = "{url}"\n'
        f"poll_interval = {mode.poll_interval}\n"
        f"state_lease_seconds = {mode.lease}\n"
        '[log]\nformat = "json"\nlevel = "info"\n'
        + "".join(tenant_config(account) for account in accounts)
    )
    return config


def environment(accounts: list[Account]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLA_CONNECTOR_")}
    for account in accounts:
        for name, value in sandbox_secrets(account.sandbox).items():
            env[secret_names(name, account.name)[0]] = value
    return env


@contextlib.contextmanager
def members(count: int, config: Path, env: dict[str, str], folder: Path) -> Iterator[list[Member]]:
    """`count` daemons of the configuration (not started); killed at the end if still up."""
    made: list[Member] = []
    sockets = Path(tempfile.mkdtemp(prefix="sla-notify-"))  # AF_UNIX: a short path
    try:
        for number in range(1, count + 1):
            path = str(sockets / f"{number}.sock")
            notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            notify.bind(path)
            notify.setblocking(False)
            log = folder / f"daemon-{number}.log"
            daemon = Daemon(config, {**env, "NOTIFY_SOCKET": path}, log)
            made.append(Member(number, daemon, notify, LogTail(log)))
        yield made
    finally:
        for member in made:
            if member.daemon.running():
                member.daemon.kill()
            member.notify.close()
        shutil.rmtree(sockets, ignore_errors=True)


# --- the phases -------------------------------------------------------------------------------


@dataclass
class Figures:
    """What the goals table needs, filled in phase by phase (None: not reached)."""

    shares: list[int] = field(default_factory=list)
    all_served: float | None = None
    all_synced: float | None = None
    settled: float | None = None
    rss: list[float] = field(default_factory=list)
    cpu_cores: list[float] = field(default_factory=list)  # each daemon's share of one core
    tenants_idle: list[int] = field(default_factory=list)
    marginal_mb: float | None = None
    latencies: list[float] = field(default_factory=list)
    burst_tickets: int = 0
    leave: float | None = None
    join: float | None = None
    kill: float | None = None


def phase_start(fleet: Fleet, figures: Figures, timeout: float) -> None:
    print("\n## 1. Start: every daemon at once\n")
    began, began_epoch = time.monotonic(), time.time()
    for member in fleet.members:
        member.start()
    count = len(fleet.accounts)
    if wait(fleet, lambda: len(fleet.serving()) == count, timeout, every=0.25):
        figures.all_served = time.monotonic() - began
    wait(fleet, lambda: len(fleet.synced) == count, timeout, every=0.5)
    if len(fleet.synced) == count:
        firsts = [min(at for at, _ in seen) for seen in fleet.synced.values()]
        figures.all_synced = max(firsts) - began_epoch
    figures.settled = wait_settled(fleet, began, timeout)
    figures.shares = fleet.shares()
    startup_cpu = [cpu_seconds(m.pid) for m in fleet.alive()]
    wait(fleet, lambda: all(m.ready_after is not None for m in fleet.members), 30, every=0.5)
    print("| figure | seconds from the start |\n|---|---:|")
    print(f"| every tenant served (a lease held) | {_s(figures.all_served)} |")
    print(f"| every tenant synced once | {_s(figures.all_synced)} |")
    print(f"| shares even (±1) and held {SETTLED_SECONDS:.0f} s | {_s(figures.settled)} |")
    for member in fleet.members:
        print(f"| daemon {member.number} READY=1 | {_s(member.ready_after)} |")
    taken = sum(n for (_, e), n in fleet.events.items() if e == "tenant_taken")
    handed = sum(n for (_, e), n in fleet.events.items() if e == "tenant_handed_back")
    print(
        f"\ntenants per daemon: {' / '.join(map(str, figures.shares))} "
        f"(tenants taken {taken}, handed back {handed} on the way); CPU s each daemon used "
        f"to get there: {' / '.join(f'{c:.0f}' for c in startup_cpu)}, "
        f"{sum(startup_cpu) / len(fleet.accounts):.2f} s a tenant (its first sync: "
        "27 tickets decided and written)"
    )


def phase_idle(fleet: Fleet, figures: Figures, mode: Mode, pg: PostgresServer) -> None:
    print(f"\n## 2. Idle polling: a {mode.steady:.0f} s window\n")
    quiet = wait_quiet(fleet, mode.quiet, 300)
    print(
        f"(the window began once no poll had read a ticket for {mode.quiet:.0f} s: "
        f"{_s(quiet)} s later)\n"
    )
    me = os.getpid()
    assert pg._process is not None
    postmaster = pg._process.pid

    def requests() -> int:
        return sum(a.sandbox.counters.total() for a in fleet.accounts)

    fleet.pump()
    events = Counter(fleet.events)
    alive = fleet.alive()
    cpu0 = [cpu_seconds(m.pid) for m in alive]
    mine0, pg0, req0 = cpu_seconds(me), tree_cpu_seconds(postmaster), requests()
    commit0 = fleet.commits()
    busy0, total0 = machine_jiffies()
    started = time.monotonic()
    shares0 = fleet.shares()
    samples = []  # (open, busy) connections, each second
    while time.monotonic() - started < mode.steady:
        time.sleep(1.0)
        samples.append(fleet.connections())
    seconds = time.monotonic() - started
    cpu1 = [cpu_seconds(m.pid) for m in alive]
    mine1, pg1, req1 = cpu_seconds(me), tree_cpu_seconds(postmaster), requests()
    commit1 = fleet.commits()
    busy1, total1 = machine_jiffies()
    shares1 = fleet.shares()
    fleet.pump()
    moved = shares0 != shares1
    print(
        "| daemon | tenants | RSS MB | RSS MB/tenant | threads | CPU s | % of a core "
        "| % of a core/tenant | CPU ms/tenant/poll |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for member, tenants, before, after in zip(alive, shares1, cpu0, cpu1, strict=True):
        rss = rss_mb(member.pid)
        cpu = after - before
        core = cpu / seconds
        polls = tenants * seconds / mode.poll_interval
        figures.rss.append(rss)
        figures.cpu_cores.append(core)
        figures.tenants_idle.append(tenants)
        print(
            f"| {member.number} | {tenants} | {rss:.0f} | {rss / max(tenants, 1):.2f} "
            f"| {status(member.pid, 'Threads')} | {cpu:.1f} | {100 * core:.1f} "
            f"| {100 * core / max(tenants, 1):.3f} | {1000 * cpu / max(polls, 1):.1f} |"
        )
    total_cpu = sum(b - a for a, b in zip(cpu0, cpu1, strict=True))
    print(
        f"| all | {sum(shares1)} | {sum(figures.rss):.0f} | "
        f"{sum(figures.rss) / max(sum(shares1), 1):.2f} | | {total_cpu:.1f} "
        f"| {100 * total_cpu / seconds:.1f} | | |"
    )
    busy = (busy1 - busy0) / max(total1 - total0, 1)
    print(
        f"\nbeside them over the window ({seconds:.0f} s): this process (the "
        f"{len(fleet.accounts)} sandboxes) {100 * (mine1 - mine0) / seconds:.1f} % of a core, "
        f"RSS {rss_mb(me):.0f} MB; PostgreSQL {100 * (pg1 - pg0) / seconds:.1f} % of a core, "
        f"{(commit1 - commit0) / seconds:.0f} commits/s, "
        f"{max(o for o, _ in samples)} connections open, busy at once "
        f"{statistics.mean(b for _, b in samples) - 1:.1f} on average and "
        f"{max(b for _, b in samples) - 1} at most (sampled each second, ours left out); "
        f"{(req1 - req0) / seconds:.1f} HTTP requests/s "
        f"({60 * (req1 - req0) / seconds / len(fleet.accounts):.1f} a tenant a minute); "
        f"the machine's {os.cpu_count()} CPUs {100 * busy:.0f} % busy (everything on it)"
    )
    logged = {
        f"{level} {event}": n - events.get((level, event), 0)
        for (level, event), n in fleet.events.items()
        if level in ("warning", "error") and n > events.get((level, event), 0)
    }
    print(f"warnings and errors logged in the window: {logged or 'none'}")
    if moved:
        print(f"NOTE: shares moved during the window: {shares0} -> {shares1}")


def burst_tickets(at: datetime, count: int) -> list[SeedTicket]:
    """Orders breaching at `at`: due one second before it (the due second is on time)."""
    created = (at - BURST_TARGET - timedelta(seconds=1)).replace(microsecond=0)
    return [
        SeedTicket(
            BURST_FIRST_ID + k,
            f"Order #{90_000 + k}: weekend uploads",
            created,
            BURST_CUSTOMERS[k % 2],
            category="order",
            images=1,
            expedite=False,
            priority="normal",
        )
        for k in range(count)
    ]


class BurstWatch:
    """The burst's tickets on every account, looked at as a user would see them: when each
    first shows `sla_at_risk` (decided before T0) and `sla_breached`."""

    def __init__(self, accounts: list[Account], tickets: list[SeedTicket]) -> None:
        self.accounts = accounts
        self.watched = [(i, t.id) for i in range(len(accounts)) for t in tickets]
        self.at_risk: dict[tuple[int, int], float] = {}
        self.breached: dict[tuple[int, int], float] = {}

    def look(self) -> None:
        now = time.time()
        for i, ticket in self.watched:
            if (i, ticket) in self.breached:
                continue
            account = self.accounts[i]
            sandbox = account.sandbox
            if account.helpdesk == "zendesk":
                with sandbox.lock:
                    sandbox.zendesk.run_jobs()  # update_many entries due (any API call does)
                tags = sandbox.zendesk.tickets[ticket].tags
            else:
                tags = sandbox.freshdesk.tickets[ticket].tags
            if "sla_breached" in tags:
                self.breached[(i, ticket)] = now
            elif "sla_at_risk" in tags and (i, ticket) not in self.at_risk:
                self.at_risk[(i, ticket)] = now

    def until(self, epoch: float, *, all_breached: bool = False) -> None:
        while time.time() < epoch and not (
            all_breached and len(self.breached) == len(self.watched)
        ):
            self.look()
            time.sleep(0.05)


def seed_burst(accounts: list[Account], tickets: list[SeedTicket]) -> None:
    """The tickets on every account, touched by an agent now; the Zendesk sandboxes' clocks
    past the export's minute, so that the next poll of each account sees them."""
    for account in accounts:
        account.sandbox.seed(tickets, customers=(), helpdesks=(account.helpdesk,))
        for ticket in tickets:
            account.sandbox.agent_edit(ticket.id, helpdesk=account.helpdesk)
        if account.helpdesk == "zendesk":
            account.clock.advance(61)


def woken(fleet: Fleet) -> int:
    fleet.pump()
    return sum(n for (_, e), n in fleet.events.items() if e == "woken")


def phase_burst(fleet: Fleet, figures: Figures, mode: Mode, pg: PostgresServer) -> None:
    count = len(fleet.accounts) * mode.burst
    print(f"\n## 3. Burst: {count} tickets ({mode.burst} an account) breaching at one instant\n")
    t0 = (datetime.now(UTC) + timedelta(seconds=mode.lead)).replace(microsecond=0)
    t0_epoch = t0.timestamp()
    tickets = burst_tickets(t0, mode.burst)
    seed_burst(fleet.accounts, tickets)
    seeded = time.time()
    watch = BurstWatch(fleet.accounts, tickets)
    watch.until(t0_epoch)
    alive = fleet.alive()
    woken0, cpu0 = woken(fleet), [cpu_split(m.pid) for m in alive]
    switches0 = sum(context_switches(m.pid) for m in alive)
    assert pg._process is not None
    postmaster = pg._process.pid
    mine0, pg0, (busy0, total0) = (
        cpu_seconds(os.getpid()),
        tree_cpu_seconds(postmaster),
        machine_jiffies(),
    )
    decided, early = len(watch.at_risk), len(watch.breached)
    last_decided = max(watch.at_risk.values(), default=seeded) - t0_epoch
    watch.until(t0_epoch + max(120.0, 4 * mode.poll_interval), all_breached=True)
    done = time.time()
    user = sum(cpu_split(m.pid)[0] - before[0] for m, before in zip(alive, cpu0, strict=True))
    system = sum(cpu_split(m.pid)[1] - before[1] for m, before in zip(alive, cpu0, strict=True))
    cpu = user + system
    switches = sum(context_switches(m.pid) for m in alive) - switches0
    mine, pg_cpu = cpu_seconds(os.getpid()) - mine0, tree_cpu_seconds(postmaster) - pg0
    busy1, total1 = machine_jiffies()
    passes = woken(fleet) - woken0
    latencies = sorted(at - t0_epoch for at in watch.breached.values())
    figures.latencies, figures.burst_tickets = latencies, len(watch.watched)
    print(
        f"seeded {seeded - t0_epoch:+.1f} s from T0; decided (sla_at_risk shown) before T0: "
        f"{decided}/{count}, the last {last_decided:+.1f} s from T0; breached before T0 "
        f"(should be 0): {early}"
    )
    print(
        f"sla_breached shown at T0 + latency: {len(latencies)}/{count} tickets; "
        f"`woken` passes logged: {passes}"
    )
    if latencies:
        print("\n| tickets | median s | p90 s | max s | daemons' CPU s, T0 to the last |")
        print("|---:|---:|---:|---:|---:|")
        print(
            f"| {len(latencies)} | {statistics.median(latencies):.2f} "
            f"| {_p90(latencies):.2f} | {latencies[-1]:.2f} "
            f"| {cpu:.1f} in {done - t0_epoch:.1f} s |"
        )
        print(
            f"\nthe daemons' CPU: {user:.1f} s user, {system:.1f} s system; "
            f"{switches:,} context switches of their threads\n"
            f"beside them from T0 to the last: this process (the sandboxes, answering every "
            f"request) {mine:.1f} CPU s, PostgreSQL {pg_cpu:.1f} CPU s; the machine's "
            f"{os.cpu_count()} CPUs {100 * (busy1 - busy0) / max(total1 - total0, 1):.0f} % busy"
        )


def phase_leave(fleet: Fleet, figures: Figures, mode: Mode, timeout: float) -> Member:
    leaver = fleet.alive()[-1]
    print(f"\n## 4. SIGTERM of daemon {leaver.number}\n")
    before = fleet.serving()
    lost = sorted(t for t, pid in before.items() if pid == leaver.pid)
    others = {m.pid for m in fleet.alive() if m is not leaver}
    count = len(fleet.accounts)
    sent_epoch, sent = time.time(), time.monotonic()
    leaver.daemon.signal(signal.SIGTERM)
    released: float | None = None
    exited: float | None = None

    def taken() -> bool:
        nonlocal released, exited
        now = fleet.serving()
        if released is None and leaver.pid not in now.values():
            released = time.monotonic() - sent
        if exited is None and not leaver.daemon.running():
            exited = time.monotonic() - sent
        return len(now) == count and set(now.values()) <= others

    if wait(fleet, taken, timeout, every=0.1):
        figures.leave = time.monotonic() - sent
    code = leaver.daemon.wait(60)
    exited = time.monotonic() - sent if exited is None else exited

    def resynced() -> bool:
        return all(
            any(at >= sent_epoch and pid in others for at, pid in fleet.synced.get(t, ()))
            for t in lost
        )

    again = time.monotonic() - sent if wait(fleet, resynced, timeout, every=0.5) else None
    shares = fleet.shares()
    print("| figure | seconds from SIGTERM |\n|---|---:|")
    print(f"| its {len(lost)} tenants' leases all given back | {_s(released)} |")
    print(f"| it exited (status {code}) | {exited:.1f} |")
    print(f"| its {len(lost)} tenants served by the others | {_s(figures.leave)} |")
    print(f"| each of them synced by its new daemon | {_s(again)} |")
    print(f"\ntenants per daemon now: {' / '.join(map(str, shares))}")
    # The survivors hold more tenants now: the RSS they grew by, per tenant gained.
    time.sleep(mode.poll_interval)
    grown = []
    for member, tenants in zip(fleet.alive(), shares, strict=True):
        index = fleet.members.index(member)
        if index < len(figures.rss) and tenants > figures.tenants_idle[index]:
            gained = tenants - figures.tenants_idle[index]
            growth = rss_mb(member.pid) - figures.rss[index]
            grown.append(growth / gained)
            print(
                f"daemon {member.number}: {figures.tenants_idle[index]} -> {tenants} tenants, "
                f"RSS {figures.rss[index]:.0f} -> {rss_mb(member.pid):.0f} MB: "
                f"{growth / gained:.2f} MB a tenant gained"
            )
    figures.marginal_mb = statistics.mean(grown) if grown else None
    return leaver


def phase_join(fleet: Fleet, figures: Figures, member: Member, timeout: float) -> None:
    print(f"\n## 5. Daemon {member.number} starts again\n")
    handed0 = sum(n for (_, e), n in fleet.events.items() if e == "tenant_handed_back")
    began = time.monotonic()
    member.start()
    figures.join = wait_settled(fleet, began, timeout)
    handed = sum(n for (_, e), n in fleet.events.items() if e == "tenant_handed_back") - handed0
    print(
        f"shares even (±1) and held {SETTLED_SECONDS:.0f} s after {_s(figures.join)} s: "
        f"{' / '.join(map(str, fleet.shares()))} ({handed} tenants handed back)"
    )


def phase_kill(fleet: Fleet, figures: Figures, mode: Mode, timeout: float) -> None:
    victim = fleet.alive()[0]
    print(f"\n## 6. kill -9 of daemon {victim.number} (lease {mode.lease:.0f} s)\n")
    lost = sorted(t for t, pid in fleet.serving().items() if pid == victim.pid)
    victim.daemon.kill()
    killed_epoch, killed = time.time(), time.monotonic()
    others = {m.pid for m in fleet.alive()}
    count = len(fleet.accounts)

    def taken() -> bool:
        now = fleet.serving()
        return len(now) == count and set(now.values()) <= others

    freed: float | None = None
    counted: float | None = None  # its own lease ran out: the others' share grows

    def watch() -> bool:
        nonlocal freed, counted
        if freed is None and len(fleet.serving()) < count:
            freed = time.monotonic() - killed
        if counted is None and fleet.daemons_alive() < len(others) + 1:
            counted = time.monotonic() - killed
        return taken()

    if wait(fleet, watch, timeout, every=0.2):
        figures.kill = time.monotonic() - killed

    def resynced() -> bool:
        return all(
            any(at >= killed_epoch and pid in others for at, pid in fleet.synced.get(t, ()))
            for t in lost
        )

    again = time.monotonic() - killed if wait(fleet, resynced, timeout, every=0.5) else None
    print("| figure | seconds from kill -9 |\n|---|---:|")
    print(f"| its first tenant's lease ran out | {_s(freed)} |")
    print(f"| its own lease ran out (the others count {len(others)} daemons) | {_s(counted)} |")
    print(f"| its {len(lost)} tenants served by the others | {_s(figures.kill)} |")
    print(f"| each of them synced by its new daemon | {_s(again)} |")
    print(f"\ntenants per daemon now: {' / '.join(map(str, fleet.shares()))}")


# --- the report -------------------------------------------------------------------------------


def _s(seconds: float | None) -> str:
    return "not reached" if seconds is None else f"{seconds:.1f}"


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(math.ceil(0.9 * len(ordered)) - 1, 0)]


def goals(figures: Figures, mode: Mode, daemons: int, accounts: int) -> None:
    print("\n## Goals\n")
    print("| figure | measured | goal | status |\n|---|---|---|---|")

    def row(name: str, measured: str, goal: str, ok: bool | str | None) -> None:
        verdict = ok if isinstance(ok, str) else {None: "figure", True: "met"}.get(ok, "NOT MET")
        print(f"| {name} | {measured} | {goal} | {verdict} |")

    even = accounts / daemons
    shares = figures.shares
    row(
        "tenants per daemon, settled",
        " / ".join(map(str, shares)) or "n/a",
        f"within ±1 of {even:.1f}",
        bool(shares) and all(abs(s - even) <= 1 for s in shares),
    )
    row(
        "start to every tenant served / synced once",
        f"{_s(figures.all_served)} / {_s(figures.all_synced)} s",
        "(a figure)",
        None,
    )
    if figures.rss:
        per = sum(figures.rss) / max(sum(figures.tenants_idle), 1)
        marginal = "n/a" if figures.marginal_mb is None else f"{figures.marginal_mb:.2f}"
        margin_ok = figures.marginal_mb is not None and figures.marginal_mb < 10
        row(
            "memory per tenant (RSS / tenants; marginal)",
            f"{per:.2f} MB; {marginal} MB",
            "under 10 MB",
            per < 10
            or (
                "NOT MET; met at the margin (a daemon's base RSS over few tenants)"
                if margin_ok
                else False
            ),
        )
        cores = sum(figures.cpu_cores)
        tenants = max(sum(figures.tenants_idle), 1)
        row(
            f"CPU while idle (poll every {mode.poll_interval} s)",
            f"{100 * cores / tenants:.3f} % of a core a tenant; {daemons} daemons together "
            f"{100 * cores:.0f} % of a core",
            f"the {daemons} daemons together under one core at {accounts} tenants",
            cores < 1.0,
        )
    if figures.latencies:
        lat = figures.latencies
        complete = len(lat) == figures.burst_tickets
        row(
            "wake-up latency at the burst (median / p90 / max)",
            f"{statistics.median(lat):.1f} / {_p90(lat):.1f} / {lat[-1]:.1f} s"
            + ("" if complete else f" ({len(lat)}/{figures.burst_tickets} shown)"),
            f"p90 under poll_interval + 10 s = {mode.poll_interval + 10} s",
            complete and _p90(lat) < mode.poll_interval + 10,
        )
    row(
        "rebalance after SIGTERM",
        f"{_s(figures.leave)} s",
        "under 10 s",
        figures.leave is not None and figures.leave < 10,
    )
    row("shares even again after the daemon rejoins", f"{_s(figures.join)} s", "(a figure)", None)
    row(
        "takeover after kill -9",
        f"{_s(figures.kill)} s",
        f"within the lease + 10 s = {mode.lease + 10:.0f} s",
        figures.kill is not None and figures.kill <= mode.lease + 10,
    )


def run_phases(fleet: Fleet, figures: Figures, mode: Mode, pg: PostgresServer) -> None:
    """Every phase in turn, then SIGTERM to the daemons left (as systemd stops them)."""
    timeout = 120.0 + 2 * mode.lease + mode.accounts
    try:
        fleet.prepare()
        phase_start(fleet, figures, timeout)
        phase_idle(fleet, figures, mode, pg)
        phase_burst(fleet, figures, mode, pg)
        leaver = phase_leave(fleet, figures, mode, timeout)
        phase_join(fleet, figures, leaver, timeout)
        phase_kill(fleet, figures, mode, timeout)
        for member in fleet.alive():
            member.daemon.signal(signal.SIGTERM)
        for member in fleet.members:
            if member.daemon.process is not None:
                member.daemon.wait(90)
        fleet.pump()
    finally:
        fleet.close()
    noted = {
        f"{level} {event}": n
        for (level, event), n in sorted(fleet.events.items())
        if level in ("warning", "error", "critical")
    }
    print(f"\nwarnings and errors the daemons logged in the run: {noted or 'none'}")
    print(
        f"connections to the database, the most seen: {fleet.peak_connections} (this "
        "process's 2 included; the server's max_connections: 100, PostgreSQL's default); the "
        f"daemons' busy at once (in a statement or transaction), the most seen: "
        f"{fleet.peak_busy - 1} (sampled each second)"
    )


def run(mode: Mode, daemons: int, workdir: Path) -> Figures:
    """The PostgreSQL server, the sandboxes and the daemons, set up, measured, put away."""
    figures = Figures()
    with PostgresServer() as pg:
        url = pg.create_database("fleet")
        rss0, made = rss_mb(os.getpid()), time.perf_counter()
        with sandboxes(mode.accounts) as accounts:
            print(
                f"{mode.accounts} sandboxes seeded and served in "
                f"{time.perf_counter() - made:.1f} s; this process's RSS "
                f"{rss0:.0f} -> {rss_mb(os.getpid()):.0f} MB"
            )
            config = write_config(workdir, accounts, url, mode)
            with members(daemons, config, environment(accounts), workdir) as made_members:
                run_phases(Fleet(accounts, url, made_members), figures, mode, pg)
        refused = pg.log_file.read_text(errors="replace").count("too many clients")
        print(f"PostgreSQL refused connections (too many clients): {refused} times")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 accounts, short windows")
    parser.add_argument("--accounts", type=int)
    parser.add_argument("--daemons", type=int, default=3)
    parser.add_argument("--poll-interval", type=int)
    parser.add_argument("--lease", type=float, help="state_lease_seconds")
    parser.add_argument("--steady", type=float, help="seconds of the idle window")
    parser.add_argument("--burst", type=int, help="tickets an account breaching at T0")
    parser.add_argument("--workdir", type=Path, help="keep the configuration and logs here")
    args = parser.parse_args()
    base = QUICK if args.quick else FULL
    poll = args.poll_interval or base.poll_interval
    mode = Mode(
        base.name,
        args.accounts or base.accounts,
        poll,
        args.lease or base.lease,
        args.steady or base.steady,
        args.burst or base.burst,
        max(base.lead, poll + 20.0 if args.quick else 2.0 * poll + 30),
        base.quiet if args.quick else max(base.quiet, 60.0 + poll + 5),
    )
    started = time.perf_counter()
    print(
        f"mode={mode.name} accounts={mode.accounts} daemons={args.daemons} "
        f"poll_interval={mode.poll_interval}s state_lease_seconds={mode.lease:.0f} "
        f"steady={mode.steady:.0f}s burst={mode.burst}/account lead={mode.lead:.0f}s "
        f"python={platform.python_version()} cpus={os.cpu_count()} "
        f"load average={os.getloadavg()[0]:.2f} (other work runs on this machine)"
    )
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        figures = run(mode, args.daemons, workdir)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    goals(figures, mode, args.daemons, mode.accounts)
    print(f"\nbenchmark wall time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
