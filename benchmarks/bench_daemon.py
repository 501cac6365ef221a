"""The sync daemon against the sandbox: requests, throughput, memory and write-back latency.

Usage: python benchmarks/bench_daemon.py [--quick] [--parts economy,latency,memory,load,limits]
                                         [--sizes 50000,100000,200000] [--helpdesks zendesk,...]

1. Economy (in process, sandbox clock). The sandbox enforces a per-minute rate limit on its
   own clock, a `ManualClock` that moves only when the client sleeps, so waiting costs nothing.
   A backfill (`Sync.poll`, as `sla-connector backfill` runs it) decides and writes generated
   tickets. Printed: API requests per ticket, 429s, and the throughput, i.e. the request credits
   the sandbox admitted per minute divided by the limit (goal ≥ 0.9 with at most one 429). Then
   the `Daemon` runs one-minute cycles while agents change tickets. Printed: requests per changed
   ticket, and per ticket re-decided on time by a wake-up.
2. Latency (loopback, real time). `Daemon.run()` runs in a thread against the sandbox served on
   127.0.0.1. New tickets appear in the sandbox at random instants. Printed: the time from each
   ticket's creation to the end of its write (goal ≤ poll interval + 2 s).
3. Memory (a subprocess per size). The real command `sla-connector backfill --dry-run` runs
   against the sandbox on loopback, with no rate limit. Printed: the peak RSS (`ru_maxrss`) of
   that process, goal ≤ 200 MB and flat in the ticket count, with its CPU time and tickets per
   second.
4. Load (a subprocess, loopback, real time; not in the default parts: about an hour a
   helpdesk). The real daemon (`python -m connector run`) against 100,000 tickets of 50
   customers, under a per-minute limit the sandbox enforces. Phase 1: it starts with every
   ticket waiting. Printed: tickets and requests a minute, the share of the limit used, 429s,
   and its resident memory (VmRSS from /proc, every second) at 10 %, 25 %, 50 %, 75 % and 100 %
   of the tickets written (goal ≤ 200 MB). Phase 2: agents change 300 tickets a minute.
   Printed: the backlog of changes not yet written, the time from a change to its write (goal:
   poll interval + 2 s, plus the Zendesk export's minute), requests, 429s and memory (goal:
   flat, within 5 MB, once the ledger books hold the customers' open periods).
5. Limits (in process, sandbox clock; not in the default parts). A Zendesk backfill at a
   Professional account's limits (400 requests a minute, Update Ticket 100 a minute, the export
   10, update_many jobs of 10 s a hundred) while agents save 30 tickets a minute in the UI;
   each request takes 0.25 s of the sandbox clock. Run twice, single PUTs and update_many
   batch jobs. Printed: sandbox minutes until every ticket is written, tickets a minute,
   requests per ticket, PUTs by route, 429s of the daemon and of the agents (goals: agents 0,
   daemon ≤ 1 per 10,000 tickets, batches ≥ 20 times single PUTs). Then a Freshdesk Pro
   backfill (400 credits, update 160, list 100): requests per open ticket with and without its
   note (goal ≤ 1.05 without), each budget's busiest minute, notes on closed tickets (goal 0).
   The run ends with one `LIMITS <helpdesk> ...` line a helpdesk.

Generated tickets (`connector.sandbox.generate`) are moved onto copies of the bundled
customers, about 100 tickets a customer (`--per-customer`), as in a helpdesk with many
customers. The full run also repeats the memory part on the 17 bundled customers alone, to show
how the cost per ticket grows with a customer's history.

No timed assertions: figures are printed beside their goals.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import itertools
import json
import math
import os
import platform
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

import httpx

from connector import logs
from connector.app import load_rules, open_helpdesk
from connector.cli.demo import demo_settings, sandbox_secrets
from connector.config import Settings
from connector.helpdesks.adapter import Helpdesk
from connector.helpdesks.freshdesk import ApiKeyCredentials, FreshdeskClient
from connector.helpdesks.freshdesk.adapter import FreshdeskHelpdesk
from connector.helpdesks.zendesk import ApiTokenCredentials, ZendeskClient
from connector.helpdesks.zendesk.adapter import ZendeskHelpdesk
from connector.http import Credentials, HttpShell
from connector.notify import Notifier
from connector.sandbox import (
    CUSTOMERS,
    FRESHDESK_URL,
    ZENDESK_URL,
    ManualClock,
    Sandbox,
    SandboxCredentials,
    SeedCustomer,
    SeedTicket,
    generate,
)
from connector.sandbox.agents import Agents
from connector.service.books import BOOK_ENTRIES
from connector.service.daemon import Daemon
from connector.service.sync import Outcome, Sync, Totals
from connector.state import State

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 3, 6, 12, tzinfo=UTC)
# `generate` dates replies and solutions up to ~57 h after its anchor: anchoring it three days
# back keeps every generated change in the past, as in a real helpdesk.
GENERATE_LAG = timedelta(days=3)
HELPDESKS = ("zendesk", "freshdesk")
MAPPABLE = tuple(c for c in CUSTOMERS if c.id < 900)
LOAD_CUSTOMERS = 50


@dataclass(frozen=True)
class Mode:
    """The sizes of one run (`--quick` or full)."""

    name: str
    economy: dict[str, tuple[int, int]]  # helpdesk -> (tickets, rate limit per minute)
    steady_minutes: int
    changes_per_minute: int
    latency: dict[str, tuple[int, int]]  # helpdesk -> (poll interval s, new tickets)
    memory_sizes: tuple[int, ...]
    memory_helpdesks: tuple[str, ...]
    history_sizes: tuple[int, ...]  # memory runs on the 17 bundled customers only
    load: dict[str, tuple[int, int, int]]  # helpdesk -> (tickets, limit per minute, poll s)
    load_minutes: int  # of steady changes after the catch-up
    load_changes_per_minute: int
    limits_tickets: int  # the Zendesk backfill at a real account's limits


FULL = Mode(
    "full",
    economy={"zendesk": (6000, 400), "freshdesk": (3000, 400)},
    steady_minutes=60,
    changes_per_minute=20,
    latency={"zendesk": (10, 12), "freshdesk": (5, 12)},
    memory_sizes=(50_000, 100_000, 200_000),
    memory_helpdesks=HELPDESKS,
    history_sizes=(5_000, 10_000),
    load={"zendesk": (100_000, 2500, 10), "freshdesk": (100_000, 5000, 5)},
    load_minutes=5,
    load_changes_per_minute=300,
    limits_tickets=10_000,
)
QUICK = Mode(
    "quick",
    economy={"zendesk": (1500, 200), "freshdesk": (700, 200)},
    steady_minutes=10,
    changes_per_minute=10,
    latency={"freshdesk": (2, 6)},
    memory_sizes=(2_000, 4_000, 8_000),
    memory_helpdesks=("zendesk",),
    history_sizes=(),
    load={"freshdesk": (5_000, 10_000, 5)},
    load_minutes=1,
    load_changes_per_minute=300,
    limits_tickets=2_000,
)


# --- content ---------------------------------------------------------------------------------


def spread(
    count: int, anchor: datetime, per_customer: int | None
) -> tuple[list[SeedCustomer], Iterator[SeedTicket]]:
    """`count` generated tickets over copies of the bundled customers (None: no copies).

    Copy k of customer 101 is customer 101 + 1000 k, with the same contract and terms. The
    tickets are produced lazily, in `generate`'s order.
    """
    copies = 1 if not per_customer else max(1, math.ceil(count / (len(MAPPABLE) * per_customer)))
    customers = [
        dataclasses.replace(c, id=c.id + 1000 * k, name=f"{c.name} {k}")
        for k in range(copies)
        for c in MAPPABLE
    ]
    tickets = (
        dataclasses.replace(t, customer_id=(t.customer_id or 0) + 1000 * (t.id % copies))
        for t in generate(count, seed=1, anchor=anchor - GENERATE_LAG)
    )
    return customers, tickets


def new_ticket(ticket_id: int, rng: random.Random, now: datetime) -> SeedTicket:
    """A ticket a customer opens now (open, unanswered), of a random bundled customer."""
    template = next(generate(1, seed=rng.randrange(1 << 30), anchor=now, first_id=ticket_id))
    return dataclasses.replace(
        template,
        created_at=now.replace(microsecond=0),
        first_reply_at=None,
        solved_at=None,
        status="open",
    )


# --- an in-process daemon on the sandbox clock -----------------------------------------------


@dataclass
class InProcess:
    """One sandbox helpdesk on a `ManualClock`, its state and the adapter the daemon uses."""

    helpdesk: str
    sandbox: Sandbox
    clock: ManualClock
    settings: Settings
    state: State
    desk: Helpdesk
    admitted: list[tuple[float, int]] = field(default_factory=list)  # (sandbox s, credits)

    def requests(self, **filters: Any) -> int:
        return self.sandbox.counters.total(helpdesk=self.helpdesk, **filters)


def in_process(helpdesk: str, limit: int, scratch: Path) -> InProcess:
    """A rate-limited sandbox, the real adapter over its in-process transport, a fresh state.

    The client's pacer and `Retry-After` read the sandbox clock and sleep on it.
    """
    clock = ManualClock(NOW)
    sandbox = Sandbox(clock=clock, rate_limit=limit)
    creds = sandbox.credentials
    url = ZENDESK_URL if helpdesk == "zendesk" else FRESHDESK_URL
    transport = (
        sandbox.zendesk_transport() if helpdesk == "zendesk" else sandbox.freshdesk_transport()
    )
    credentials: Credentials = (
        ApiTokenCredentials(creds.zendesk_email, creds.zendesk_api_token)
        if helpdesk == "zendesk"
        else ApiKeyCredentials(creds.freshdesk_api_key)
    )
    shell = HttpShell(
        httpx.Client(transport=transport),
        credentials=credentials,
        sleep=clock.sleep,
        clock=lambda: clock().timestamp(),
        wall_clock=clock,
    )
    desk: Helpdesk
    if helpdesk == "zendesk":
        desk = ZendeskHelpdesk(ZendeskClient(shell, url))
    else:
        desk = FreshdeskHelpdesk(FreshdeskClient(shell, url), monotonic=lambda: clock().timestamp())
    settings = demo_settings(helpdesk, url, scratch / helpdesk, start=NOW - timedelta(days=1))
    run = InProcess(helpdesk, sandbox, clock, settings, State(settings.state_file), desk)
    window = sandbox.zendesk.rate if helpdesk == "zendesk" else sandbox.freshdesk.rate
    assert window is not None
    admit = window.admit

    def counted(now: datetime, cost: int = 1) -> bool:
        ok = admit(now, cost)
        if ok:
            run.admitted.append((now.timestamp(), cost))
        return ok

    window.admit = counted  # type: ignore[method-assign]
    return run


@dataclass
class Backfill:
    helpdesk: str
    tickets: int
    limit: int
    reads: int
    writes: int
    refused: int
    credits: int
    seen: int
    minutes: float
    throughput: float | None
    cpu_ms: float


def backfill(run: InProcess, count: int, limit: int, per_customer: int | None) -> Backfill:
    """Seed `count` tickets and backfill them all; requests, 429s and throughput."""
    customers, tickets = spread(count, NOW, per_customer)
    run.sandbox.seed(anchor=NOW)
    seeded = run.sandbox.seed(tickets, customers=customers) + 27
    sync = Sync(run.desk, run.state, load_rules(run.settings), clock=run.sandbox.now, log=_log())
    started, cpu = run.clock().timestamp(), time.process_time()
    totals = sync.poll("backfill", NOW - timedelta(days=90))
    cpu = time.process_time() - cpu
    ended = run.clock().timestamp()
    reads = run.requests(method="GET")
    writes = run.requests() - reads
    refused = run.requests(status=429)
    credits = sum(cost for _, cost in run.admitted)
    # The window starts empty, so its first minute may take a whole minute's budget at once:
    # the throughput is measured from the end of that first minute on.
    steady = [cost for at, cost in run.admitted if at > started + 60]
    span = ended - started - 60
    throughput = sum(steady) / (limit * span / 60) if span >= 120 else None
    return Backfill(
        run.helpdesk,
        seeded,
        limit,
        reads - refused,
        writes,
        refused,
        credits,
        totals.tickets,
        (ended - started) / 60,
        throughput,
        cpu * 1000 / max(reads + writes, 1),
    )


@dataclass
class Steady:
    helpdesk: str
    minutes: int
    changes: int
    poll_reads: int
    poll_writes: int
    idle_reads: float
    woken: int
    wake_requests: int
    refused: int


def steady(run: InProcess, minutes: int, per_minute: int, rng: random.Random) -> Steady:
    """The daemon's one-minute cycles while agents reply, solve, edit and customers write in."""
    daemon = Daemon(run.settings, run.state, run.desk, log=_log(), clock=run.sandbox.now)
    run.clock.advance(120)  # the backfill's own last writes reach the export
    daemon.cycle()  # catches up from the backfill: not counted
    woken = wake_requests = wake_reads = 0
    inner_wake = daemon.sync.wake

    def counted_wake(limit: int = 1000) -> Any:
        nonlocal woken, wake_requests, wake_reads
        before, reads_before = run.requests(), run.requests(method="GET")
        totals = inner_wake(limit)
        woken += totals.woken
        wake_requests += run.requests() - before
        wake_reads += run.requests(method="GET") - reads_before
        return totals

    daemon.sync.wake = counted_wake  # type: ignore[method-assign]
    desk = run.sandbox.zendesk if run.helpdesk == "zendesk" else run.sandbox.freshdesk
    reads_before, all_before = run.requests(method="GET"), run.requests()
    refused_before = run.requests(status=429)
    changes = 0
    idle: list[int] = []
    next_id = 800_001
    for minute in range(minutes):
        quiet = minute % 10 == 9  # one cycle in ten sees no change: the idle cost of a poll
        if not quiet:
            open_ids = [
                i for i, t in desk.tickets.items() if t.status not in ("solved", "closed", 5, 4)
            ]
            for _ in range(per_minute):
                roll = rng.random()
                ticket = rng.choice(open_ids)
                if roll < 0.25:
                    run.sandbox.seed([new_ticket(next_id, rng, run.clock())], customers=())
                    next_id += 1
                elif roll < 0.6:
                    run.sandbox.agent_reply(ticket, helpdesk=run.helpdesk)
                elif roll < 0.8:
                    run.sandbox.solve(ticket, helpdesk=run.helpdesk)
                else:
                    run.sandbox.agent_edit(ticket, helpdesk=run.helpdesk)
                changes += 1
                run.clock.advance(60 / per_minute)
        else:
            run.clock.advance(60)
        before, woken_reads = run.requests(method="GET"), wake_reads
        daemon.cycle()
        if quiet:  # the poll's own reads, without the wake-ups' fetches
            idle.append(run.requests(method="GET") - before - (wake_reads - woken_reads))
    reads = run.requests(method="GET") - reads_before
    everything = run.requests() - all_before
    return Steady(
        run.helpdesk,
        minutes,
        changes,
        reads,
        everything - reads,
        statistics.mean(idle) if idle else math.nan,
        woken,
        wake_requests,
        run.requests(status=429) - refused_before,
    )


def part_economy(mode: Mode, per_customer: int | None, helpdesks: tuple[str, ...]) -> None:
    print("\n## 1. API requests per ticket and throughput (in process, sandbox clock)\n")
    fills, steadies = [], []
    for helpdesk in helpdesks:
        if helpdesk not in mode.economy:
            continue
        count, limit = mode.economy[helpdesk]
        with tempfile.TemporaryDirectory(prefix="bench-daemon-") as scratch:
            run = in_process(helpdesk, limit, Path(scratch))
            fills.append(backfill(run, count, limit, per_customer))
            steadies.append(
                steady(run, mode.steady_minutes, mode.changes_per_minute, random.Random(5))
            )
            run.desk.close()
            run.state.close()
    floor = {"zendesk": "1 write + 1 read/1000", "freshdesk": "2 writes + 1 read/100"}
    print(
        "Backfill of every generated ticket (plus the 27 bundled ones), to the end of the stream:"
    )
    print()
    print(
        "| helpdesk | tickets | reads/ticket | writes/ticket | requests/ticket | floor "
        "| 429s | limit/min | sandbox min | throughput | goal | client CPU ms/request |"
    )
    print("|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---:|")
    for f in fills:
        reached = f.throughput is not None and f.throughput >= 0.9 and f.refused <= 1
        shown = "n/a" if f.throughput is None else f"{f.throughput:.2f}"
        print(
            f"| {f.helpdesk} | {f.tickets:,} | {f.reads / f.tickets:.3f} "
            f"| {f.writes / f.tickets:.2f} | {(f.reads + f.writes) / f.tickets:.2f} "
            f"| {floor[f.helpdesk]} | {f.refused} | {f.limit} | {f.minutes:.1f} | {shown} "
            f"| ≥ 0.9, ≤ 1 429: {'met' if reached else 'NOT MET'} | {f.cpu_ms:.1f} |"
        )
    for f in fills:
        print(
            f"- {f.helpdesk}: {f.seen:,} tickets read in all ({f.seen - f.tickets:,} of them "
            f"our own writes coming back), {f.credits:,} request credits admitted"
        )
    print()
    print(
        f"Steady state: {mode.steady_minutes} one-minute `Daemon.cycle()`s after the backfill, "
        f"{mode.changes_per_minute} agent changes a minute (25 % new tickets, 35 % replies, "
        "20 % solves, 20 % edits of agents' own tags); every tenth minute has none:"
    )
    print()
    print(
        "| helpdesk | changes | poll reads | poll writes | requests/change "
        "| reads of an idle poll | woken | requests/woken | 429s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in steadies:
        poll_requests = s.poll_reads + s.poll_writes - s.wake_requests
        print(
            f"| {s.helpdesk} | {s.changes:,} | {s.poll_reads:,} | {s.poll_writes:,} "
            f"| {poll_requests / max(s.changes, 1):.2f} | {s.idle_reads:.1f} | {s.woken:,} "
            f"| {s.wake_requests / max(s.woken, 1):.2f} | {s.refused} |"
        )
    print(
        "(poll reads and writes include the wake-ups'; requests/change leaves them out, "
        "requests/woken counts only them)"
    )


# --- latency on loopback -----------------------------------------------------------------


class _ReadyNotifier(Notifier):
    """A Notifier that tells the benchmark when the daemon's first poll is done."""

    def __init__(self) -> None:
        super().__init__(socket_path="")
        self.is_ready = threading.Event()

    def ready(self, status: str | None = None) -> None:
        self.is_ready.set()


class LoopbackDaemon:
    """`Daemon.run()` in a thread against a sandbox served on loopback.

    Records when each ticket's first write ends (`written`, monotonic seconds).
    """

    def __init__(self, sandbox: Sandbox, helpdesk: str, interval: int, scratch: Path) -> None:
        self.sandbox = sandbox
        self.helpdesk = helpdesk
        self.interval = interval
        self.scratch = scratch
        self.written: dict[str, float] = {}
        self.notifier = _ReadyNotifier()
        self.server = sandbox.serve("127.0.0.1", 0, helpdesks=(helpdesk,)).start()
        self.daemon: Daemon | None = None
        self.thread = threading.Thread(target=self._serve, name="daemon")

    def start(self) -> None:
        """Start the daemon; returns once its first poll is done."""
        self.thread.start()
        while not self.notifier.is_ready.wait(0.1):
            if not self.thread.is_alive():
                raise RuntimeError("the daemon stopped before its first poll was done")
        self.written.clear()

    def stop(self) -> None:
        """Stop the daemon (after the page in hand) and the server."""
        if self.daemon is not None:
            self.daemon.stop()
        self.thread.join()
        self.server.close()

    def _serve(self) -> None:
        # SQLite connections stay in the thread that opened them: the daemon's thread.
        server = self.server
        url = server.zendesk_url if self.helpdesk == "zendesk" else server.freshdesk_url
        settings = demo_settings(self.helpdesk, url, self.scratch, poll_interval=self.interval)
        state = State(settings.state_file)
        desk = open_helpdesk(settings, state, secrets=sandbox_secrets(self.sandbox))
        try:
            daemon = Daemon(settings, state, desk, log=_log(), notifier=self.notifier)
            inner = daemon.sync.observe
            assert inner is not None

            def observe(outcome: Outcome) -> None:
                if outcome.wrote and outcome.ticket not in self.written:
                    self.written[outcome.ticket] = time.monotonic()
                inner(outcome)

            daemon.sync.observe = observe
            self.daemon = daemon
            daemon.run()
        finally:
            desk.close()
            state.close()


ZENDESK_EXPORT_LAG = 60  # seconds of recent changes the incremental export leaves out


def latency(helpdesk: str, interval: int, count: int, rng: random.Random) -> list[float]:
    """Seconds from each new ticket's creation to the end of its write, on loopback.

    The tickets appear at random instants over two poll intervals.
    """
    sandbox = Sandbox.seeded()
    sandbox.seed(spread(200, datetime.now(UTC), None)[1], customers=())
    created: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-daemon-") as scratch:
        running = LoopbackDaemon(sandbox, helpdesk, interval, Path(scratch))
        running.start()
        try:
            origin = time.monotonic()
            for number, offset in enumerate(
                sorted(rng.uniform(0, 2 * interval) for _ in range(count))
            ):
                time.sleep(max(origin + offset - time.monotonic(), 0))
                ticket = new_ticket(700_001 + number, rng, sandbox.now())
                sandbox.seed([ticket], customers=())
                created[str(ticket.id)] = time.monotonic()
            lag = ZENDESK_EXPORT_LAG if helpdesk == "zendesk" else 0
            deadline = time.monotonic() + lag + interval + 30
            while time.monotonic() < deadline and not set(created) <= set(running.written):
                time.sleep(0.05)
        finally:
            running.stop()
    written = running.written
    missing = sorted(set(created) - set(written))
    if missing:
        print(f"  {helpdesk}: {len(missing)} tickets never written back: {missing}")
    return [written[t] - created[t] for t in sorted(created) if t in written]


def part_latency(mode: Mode, helpdesks: tuple[str, ...]) -> None:
    print("\n## 2. From a ticket change to its write-back (loopback, real time)\n")
    print("| helpdesk | poll interval | new tickets | median s | max s | goal | status |")
    print("|---|---:|---:|---:|---:|---|---|")
    notes = []
    for helpdesk in helpdesks:
        if helpdesk not in mode.latency:
            notes.append(f"- {helpdesk}: not run in --quick mode")
            continue
        interval, count = mode.latency[helpdesk]
        seconds = latency(helpdesk, interval, count, random.Random(11))
        # Zendesk's export leaves out the changes of the last minute, on purpose (they may not
        # be final yet), so a change cannot be read sooner than that minute after it.
        lag = ZENDESK_EXPORT_LAG if helpdesk == "zendesk" else 0
        goal = interval + lag + 2
        worst = max(seconds) if seconds else math.nan
        status = "met" if seconds and worst <= goal and len(seconds) == count else "NOT MET"
        stated = (
            f"≤ poll + {lag} s export lag + 2 s = {goal} s" if lag else f"≤ poll + 2 s = {goal} s"
        )
        print(
            f"| {helpdesk} | {interval} s | {count} | {statistics.median(seconds):.1f} "
            f"| {worst:.1f} | {stated} | {status} |"
        )
    print("\n".join(notes))


# --- peak memory of a dry-run backfill -----------------------------------------------------


# Runs `sla-connector` as `python -m connector` would, then writes the process's peak resident
# set (VmHWM) to the file named by $BENCH_PEAK_FILE. The kernel's ru_maxrss is no use here: a
# child started with vfork + exec inherits its parent's high-water mark, and the parent holds
# the sandbox with every ticket.
PEAK_PROBE = """
import atexit, os, runpy, sys

def report():
    with open("/proc/self/status") as status:
        peak = next(line for line in status if line.startswith("VmHWM:"))
    with open(os.environ["BENCH_PEAK_FILE"], "w") as out:
        out.write(peak.split()[1])

atexit.register(report)
sys.argv = ["sla-connector", *sys.argv[1:]]
runpy.run_module("connector", run_name="__main__", alter_sys=True)
"""


@dataclass
class MemoryRun:
    helpdesk: str
    tickets: int
    customers: int
    peak_mb: float
    cpu: float
    wall: float
    decided: int
    diff_lines: int


def dry_run_backfill(helpdesk: str, count: int, per_customer: int | None) -> MemoryRun:
    """`sla-connector backfill --dry-run` in a subprocess against `count` tickets on loopback."""
    now = datetime.now(UTC)
    sandbox = Sandbox(incremental_export_limit=None)
    customers, tickets = spread(count, now, per_customer)
    sandbox.seed(tickets, customers=customers if count else (), helpdesks=(helpdesk,))
    server = sandbox.serve("127.0.0.1", 0, helpdesks=(helpdesk,)).start()
    url = server.zendesk_url if helpdesk == "zendesk" else server.freshdesk_url
    creds = SandboxCredentials()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-daemon-") as scratch:
            config = Path(scratch) / "config.toml"
            email = f'email = "{creds.zendesk_email}"\n' if helpdesk == "zendesk" else ""
            config.write_text(
                f'helpdesk = "{helpdesk}"\n'
                f'mappings = "{ROOT / "mappings"}"\n'
                f'helpdesk_mapping = "{ROOT / "mappings" / "helpdesks"}/{helpdesk}.example.yaml"\n'
                f'state_dir = "{Path(scratch) / "state"}"\n'
                f'[log]\nlevel = "error"\n'
                f'[{helpdesk}]\nurl = "{url}"\n{email}'
            )
            env = {
                **os.environ,
                "SLA_CONNECTOR_ZENDESK_API_TOKEN": creds.zendesk_api_token,
                "SLA_CONNECTOR_FRESHDESK_API_KEY": creds.freshdesk_api_key,
                "BENCH_PEAK_FILE": str(Path(scratch) / "peak"),
            }
            since = (now - timedelta(days=90)).date().isoformat()
            command = [sys.executable, "-c", PEAK_PROBE, "backfill", "--dry-run"]
            command += ["--config", str(config), "--since", since]
            started = time.perf_counter()
            process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=scratch
            )
            assert process.stdout is not None
            assert process.stderr is not None
            lines, last = 0, b""
            for line in process.stdout:
                lines, last = lines + 1, line
            errors = process.stderr.read()
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
            wall = time.perf_counter() - started
            peak = Path(scratch) / "peak"
            peak_kib = int(peak.read_text()) if peak.exists() else -1
    finally:
        server.close()
    if process.returncode != 0:
        raise RuntimeError(f"backfill failed ({process.returncode}): {errors.decode()[-500:]}")
    decided = int(last.split()[0]) if last[:1].isdigit() else -1
    return MemoryRun(
        helpdesk,
        count,
        len(customers) if count else 0,
        peak_kib / 1024,
        usage.ru_utime + usage.ru_stime,
        wall,
        decided,
        lines - 1,
    )


def part_memory(
    mode: Mode, per_customer: int | None, helpdesks: tuple[str, ...], sizes: tuple[int, ...]
) -> None:
    print("\n## 3. Peak memory of `sla-connector backfill --dry-run` (subprocess, loopback)\n")
    print(
        "| helpdesk | tickets | customers | peak RSS MB | CPU s | wall s | CPU ms/ticket "
        "| tickets/s | goal |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    rows: list[tuple[MemoryRun, str]] = []
    for helpdesk in helpdesks:
        if helpdesk not in mode.memory_helpdesks:
            continue
        plan = [(0, per_customer)] + [(n, per_customer) for n in sizes]
        plan += [(n, None) for n in mode.history_sizes]
        for count, spread_over in plan:
            run = dry_run_backfill(helpdesk, count, spread_over)
            goal = "baseline (no tickets)" if run.tickets == 0 else "≤ 200 MB"
            if run.tickets:
                goal += ": met" if run.peak_mb <= 200 else ": NOT MET"
            rows.append((run, goal))
            per_ticket = f"{run.cpu * 1000 / run.decided:.2f}" if run.decided > 0 else "n/a"
            rate = f"{run.decided / run.wall:,.0f}" if run.decided > 0 else "n/a"
            print(
                f"| {run.helpdesk} | {run.decided:,} | {run.customers:,} | {run.peak_mb:.0f} "
                f"| {run.cpu:.1f} | {run.wall:.1f} | {per_ticket} | {rate} | {goal} |",
                flush=True,
            )
    for helpdesk in helpdesks:
        peaks = [r.peak_mb for r, _ in rows if r.helpdesk == helpdesk and r.tickets in sizes]
        if len(peaks) >= 2:
            print(
                f"- {helpdesk}: peak RSS from {sizes[0]:,} to {sizes[-1]:,} tickets: "
                f"{peaks[0]:.0f} → {peaks[-1]:.0f} MB ({peaks[-1] / peaks[0]:.2f}x for "
                f"{sizes[-1] / sizes[0]:.0f}x the tickets; goal: flat)"
            )


# --- load: the real daemon under an enforced rate limit --------------------------------------


_WRITE_PATH = re.compile(r"^/api/v2/tickets/(\d+)(?:\.json|/notes)?$")


class WriteLog:
    """The ticket writes the sandbox accepted, as seen from the sandbox's side of the socket.

    `first` holds each ticket's first accepted write, `times` every one (monotonic seconds).
    """

    def __init__(self) -> None:
        self.times: dict[int, list[float]] = {}
        self.first: dict[int, float] = {}
        self._lock = threading.Lock()

    def wrap(self, app: WSGIApplication) -> WSGIApplication:
        """`app`, recording each 2xx PUT or POST to a ticket (or its notes)."""

        def observed(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
            found = _WRITE_PATH.match(str(environ.get("PATH_INFO", "")))
            if environ.get("REQUEST_METHOD") not in ("PUT", "POST") or found is None:
                return app(environ, start_response)
            ticket = int(found.group(1))

            def record(status: str, headers: Any, exc_info: Any = None) -> Any:
                if status.startswith("2"):
                    at = time.monotonic()
                    with self._lock:
                        self.times.setdefault(ticket, []).append(at)
                        self.first.setdefault(ticket, at)
                return start_response(status, headers, exc_info)

            return app(environ, record)

        return observed

    def after(self, ticket: int, instant: float) -> float | None:
        """When `ticket` was first written after `instant` (None: not since)."""
        with self._lock:
            later = [t for t in self.times.get(ticket, ()) if t > instant]
        return min(later) if later else None


class ObservedSandbox(Sandbox):
    """A sandbox whose served apps report ticket writes to `writes`, and count credits."""

    def __init__(self, writes: WriteLog, **options: Any) -> None:
        super().__init__(**options)
        self.writes = writes
        self.credits = 0
        for desk in (self.zendesk, self.freshdesk):
            if desk.rate is not None:
                desk.rate.admit = self._counting(desk.rate.admit)  # type: ignore[method-assign]

    def _counting(self, admit: Callable[[datetime, int], bool]) -> Callable[..., bool]:
        def counted(now: datetime, cost: int = 1) -> bool:
            ok = admit(now, cost)
            if ok:
                self.credits += cost  # under the sandbox lock, like admit itself
            return ok

        return counted

    def zendesk_app(self) -> WSGIApplication:
        return self.writes.wrap(super().zendesk_app())

    def freshdesk_app(self) -> WSGIApplication:
        return self.writes.wrap(super().freshdesk_app())


def load_content(
    count: int, customers: int, anchor: datetime
) -> tuple[list[SeedCustomer], Iterator[SeedTicket]]:
    """`count` generated tickets over exactly `customers` copies of the bundled customers.

    Copies of all 17 are made as `spread` makes them; the ones past `customers` are left out
    and their tickets go to the same customer's first copy (same contract, same terms).
    """
    per_customer = math.ceil(count / customers)
    made, tickets = spread(count, anchor, per_customer)
    kept = made[:customers]
    ids = {c.id for c in kept}
    return kept, (
        t
        if t.customer_id in ids
        else dataclasses.replace(t, customer_id=(t.customer_id or 0) % 1000)
        for t in tickets
    )


@dataclass
class Sample:
    """One second of the load run, seen from the benchmark process."""

    at: float  # monotonic s
    rss_mb: float  # the daemon's VmRSS
    written: int  # tickets written at least once
    requests: int
    refused: int
    credits: int
    cpu_s: float  # the daemon's user + system CPU


def _proc_status(pid: int, key: str) -> float:
    """A `kB` line of /proc/<pid>/status, in MB (nan once the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return math.nan


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a live process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class DaemonProcess:
    """`python -m connector run` against the served sandbox; its log, its samples."""

    def __init__(
        self, sandbox: ObservedSandbox, helpdesk: str, url: str, interval: int, scratch: Path
    ) -> None:
        self.sandbox = sandbox
        self.helpdesk = helpdesk
        self.log_path = scratch / "daemon.log"
        config = scratch / "config.toml"
        email = f'email = "{sandbox.credentials.zendesk_email}"\n' if helpdesk == "zendesk" else ""
        config.write_text(
            f'helpdesk = "{helpdesk}"\n'
            f'mappings = "{ROOT / "mappings"}"\n'
            f'helpdesk_mapping = "{ROOT / "mappings" / "helpdesks"}/{helpdesk}.example.yaml"\n'
            f'state_dir = "{scratch / "state"}"\n'
            f"poll_interval = {interval}\n"
            f'start = "{(datetime.now(UTC) - timedelta(days=90)).isoformat()}"\n'
            '[log]\nformat = "json"\nlevel = "info"\n'
            f'[{helpdesk}]\nurl = "{url}"\n{email}'
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLA_CONNECTOR_")}
        env.update({f"SLA_CONNECTOR_{k.upper()}": v for k, v in sandbox_secrets(sandbox).items()})
        env.pop("NOTIFY_SOCKET", None)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "connector", "run", "--config", str(config)],
                env=env,
                stdout=log,
                stderr=log,
                cwd=scratch,
            )
        self.started = time.monotonic()
        self.samples: list[Sample] = []
        self.events: list[dict[str, Any]] = []
        self._read = 0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, name="sampler", daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        pid = self.process.pid
        counters = self.sandbox.counters
        while not self._stop.wait(1.0):
            self.samples.append(
                Sample(
                    time.monotonic(),
                    _proc_status(pid, "VmRSS"),
                    len(self.sandbox.writes.first),
                    counters.total(helpdesk=self.helpdesk),
                    counters.total(helpdesk=self.helpdesk, status=429),
                    self.sandbox.credits,
                    _proc_cpu(pid),
                )
            )

    def synced(self) -> list[dict[str, Any]]:
        """The daemon's `synced` log lines so far (one per completed cycle)."""
        with self.log_path.open("rb") as log:
            log.seek(self._read)
            chunk = log.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._read += len(complete)
        for line in complete.splitlines():
            if b'"synced"' in line or b"Traceback" in line:
                try:
                    self.events.append(json.loads(line))
                except ValueError:
                    self.events.append({"event": "unreadable", "line": line.decode()})
        return [e for e in self.events if e.get("event") == "synced"]

    def alive(self) -> bool:
        return self.process.poll() is None

    def peak_mb(self) -> float:
        return _proc_status(self.process.pid, "VmHWM")

    def stop(self) -> int:
        """SIGTERM (the page in hand is finished), then the exit status."""
        self._stop.set()
        self._sampler.join()
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Change:
    ticket: int
    kind: str  # new, reply, solve, edit
    at: float  # monotonic s, once the sandbox holds it
    written: float | None = None  # the first accepted write of the ticket after `at`


@dataclass
class LoadRun:
    helpdesk: str
    limit: int
    interval: int
    tickets: int
    customers: int
    seed_s: float
    started: float  # monotonic s when the daemon was started
    # phase 1
    catch_up_s: float  # start to the first `synced` (the whole first cycle)
    written_s: float  # start to the last ticket's first write
    written: int
    catch_up: list[Sample]
    catch_up_load: tuple[float, float, float]
    # phase 2
    minutes: int
    per_minute: int
    changes: list[Change]
    steady: list[Sample]  # from the first change to the end of the drain
    steady_end: float  # monotonic s of the last change
    steady_load: tuple[float, float, float]
    cycles: int
    peak_mb: float
    exit_status: int


RECENT = 500  # open tickets agents pick from, newest first


def _pace_changes(
    sandbox: ObservedSandbox, helpdesk: str, minutes: int, per_minute: int, rng: random.Random
) -> list[Change]:
    """Agents and customers change tickets at `per_minute` for `minutes`, in real time."""
    desk = sandbox.zendesk if helpdesk == "zendesk" else sandbox.freshdesk
    with sandbox.lock:
        open_ids = [
            i for i, t in desk.tickets.items() if t.status not in ("solved", "closed", 5, 4)
        ]
    changes: list[Change] = []
    next_id = 900_001
    origin = time.monotonic()
    for number in range(minutes * per_minute):
        time.sleep(max(origin + number * 60 / per_minute - time.monotonic(), 0))
        roll = rng.random()
        # Agents work on the newest open tickets, as the ones created here become.
        index = len(open_ids) - 1 - rng.randrange(min(len(open_ids), RECENT))
        ticket = open_ids[index]
        if roll < 0.25:
            ticket, next_id, kind = next_id, next_id + 1, "new"
            sandbox.seed(
                [new_ticket(ticket, rng, sandbox.now())], customers=(), helpdesks=(helpdesk,)
            )
            open_ids.append(ticket)
        elif roll < 0.6:
            kind = "reply"
            sandbox.agent_reply(ticket, helpdesk=helpdesk)
        elif roll < 0.8:
            kind = "solve"
            sandbox.solve(ticket, helpdesk=helpdesk)
            del open_ids[index]
        else:
            kind = "edit"
            sandbox.agent_edit(ticket, helpdesk=helpdesk)
        changes.append(Change(ticket, kind, time.monotonic()))
    return changes


def load_run(
    helpdesk: str,
    *,
    count: int,
    customers: int,
    limit: int,
    interval: int,
    minutes: int,
    per_minute: int,
) -> LoadRun:
    """Phase 1: the daemon catches up on `count` waiting tickets under `limit` requests a
    minute. Phase 2: `per_minute` changes a minute for `minutes`, then a drain."""
    writes = WriteLog()
    sandbox = ObservedSandbox(writes, rate_limit=limit)
    started = time.perf_counter()
    made, tickets = load_content(count, customers, datetime.now(UTC))
    seeded = sandbox.seed(tickets, customers=made, helpdesks=(helpdesk,))
    seed_s = time.perf_counter() - started
    server = sandbox.serve("127.0.0.1", 0, helpdesks=(helpdesk,)).start()
    url = server.zendesk_url if helpdesk == "zendesk" else server.freshdesk_url
    lag = ZENDESK_EXPORT_LAG if helpdesk == "zendesk" else 0
    try:
        with tempfile.TemporaryDirectory(prefix="bench-load-") as scratch:
            daemon = DaemonProcess(sandbox, helpdesk, url, interval, Path(scratch))
            try:
                # Phase 1: to the end of the first cycle (every page, then the wake-ups).
                while not daemon.synced():
                    if not daemon.alive():
                        raise RuntimeError(f"the daemon stopped:\n{daemon.tail()}")
                    time.sleep(1)
                catch_up_s = time.monotonic() - daemon.started
                catch_up = list(daemon.samples)
                catch_up_load = os.getloadavg()
                firsts = sorted(writes.first.values())
                written_s = (firsts[-1] - daemon.started) if firsts else math.nan
                # Phase 2: changes in real time, then a drain long enough for the last one.
                first_steady = len(daemon.samples)
                changes = _pace_changes(sandbox, helpdesk, minutes, per_minute, random.Random(7))
                steady_end = time.monotonic()
                time.sleep(lag + 2 * interval + 10)
                steady = daemon.samples[first_steady:]
                steady_load = os.getloadavg()
                synced = daemon.synced()
                peak = daemon.peak_mb()
                for change in changes:
                    change.written = writes.after(change.ticket, change.at)
            finally:
                status = daemon.stop()
    finally:
        server.close()
    return LoadRun(
        helpdesk=helpdesk,
        limit=limit,
        interval=interval,
        tickets=seeded,
        customers=len(made),
        seed_s=seed_s,
        started=daemon.started,
        catch_up_s=catch_up_s,
        written_s=written_s,
        written=len(firsts),
        catch_up=catch_up,
        catch_up_load=catch_up_load,
        minutes=minutes,
        per_minute=per_minute,
        changes=changes,
        steady=steady,
        steady_end=steady_end,
        steady_load=steady_load,
        cycles=len(synced) - 1,
        peak_mb=peak,
        exit_status=status,
    )


def _at_share(samples: list[Sample], total: int, share: float) -> Sample | None:
    """The first sample at which `share` of `total` tickets had been written."""
    return next((s for s in samples if s.written >= share * total), None)


def _quantiles(values: list[float]) -> str:
    """`median | p95 | max`, as table cells."""
    if not values:
        return "n/a | n/a | n/a"
    ordered = sorted(values)
    p95 = ordered[min(int(0.95 * len(ordered)), len(ordered) - 1)]
    return f"{statistics.median(ordered):.1f} | {p95:.1f} | {ordered[-1]:.1f}"


def _backlog(changes: list[Change], at: float) -> int:
    """Changes made by `at` that call for a write not yet accepted at `at`.

    A change calls for a write when one followed it (by the end of the drain); every new
    ticket does, written or not.
    """
    return sum(
        1
        for c in changes
        if c.at <= at
        and ((c.written is not None and c.written > at) or (c.written is None and c.kind == "new"))
    )


def _since_last_change(changes: list[Change]) -> list[float]:
    """For each handled change, the time from its ticket's last change before that write.

    Zendesk's export shows a ticket only once it has been left alone for a minute, so a ticket
    changed again within the minute is read (and written) a minute after its last change.
    """
    by_ticket: dict[int, list[float]] = {}
    for c in changes:
        by_ticket.setdefault(c.ticket, []).append(c.at)
    return [
        c.written - max(at for at in by_ticket[c.ticket] if at <= c.written)
        for c in changes
        if c.written is not None
    ]


def _mb(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.0f}"


def _load_avg(load: tuple[float, float, float]) -> str:
    return "/".join(f"{x:.1f}" for x in load)


def _pace(r: LoadRun, start: Sample, end: Sample) -> tuple[float, float, float]:
    """Tickets a minute, share of the limit and share of a core between two samples."""
    minutes = max((end.at - start.at) / 60, 1e-9)
    return (
        (end.written - start.written) / minutes,
        (end.credits - start.credits) / (r.limit * minutes),
        (end.cpu_s - start.cpu_s) / (minutes * 60),
    )


def print_catch_up(runs: list[LoadRun]) -> None:
    """Phase 1's figures, one row per helpdesk."""
    print(
        "Phase 1, catch-up: the daemon starts with every ticket waiting and works through them. "
        "Its first cycle reads every page to the end of the stream (its own writes coming back "
        "included), then runs the wake-ups. Rates are to the last ticket's first write; the "
        "share is of the credits the sandbox admitted (a Freshdesk list costs 3):"
    )
    print()
    print(
        "| helpdesk | tickets | customers | limit/min | all written, min | first cycle, min "
        "| tickets/min | requests/ticket | requests/min | share of limit | 429s "
        "| daemon CPU ms/ticket | load avg 1/5/15 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in runs:
        s = r.catch_up
        done = _at_share(s, r.tickets, 1.0) or s[-1]
        span = max((done.at - r.started) / 60, 1e-9)
        print(
            f"| {r.helpdesk} | {r.tickets:,} | {r.customers} | {r.limit:,} "
            f"| {r.written_s / 60:.1f} | {r.catch_up_s / 60:.1f} | {r.written / span:,.0f} "
            f"| {done.requests / max(r.written, 1):.2f} | {done.requests / span:,.0f} "
            f"| {done.credits / (r.limit * span):.2f} | {s[-1].refused} "
            f"| {done.cpu_s * 1000 / max(r.written, 1):.1f} | {_load_avg(r.catch_up_load)} |"
        )
    print()
    print(
        "Pace by quarter of the tickets written, then the rest of the first cycle (reading its "
        "own writes back): tickets a minute / share of the limit used / daemon CPU in cores:"
    )
    print()
    print("| helpdesk | 0-25 % | 25-50 % | 50-75 % | 75-100 % | rest of the first cycle |")
    print("|---|---|---|---|---|---|")
    for r in runs:
        s = r.catch_up
        marks = [s[0], *(_at_share(s, r.tickets, q) or s[-1] for q in (0.25, 0.5, 0.75, 1.0))]
        marks.append(s[-1])
        cells = []
        for start, end in itertools.pairwise(marks):
            rate, share, cores = _pace(r, start, end)
            cells.append(f"{rate:,.0f} / {share:.2f} / {cores:.2f}")
        print(f"| {r.helpdesk} | {' | '.join(cells)} |")
    print()
    print(
        "Resident memory of the daemon process (VmRSS, MB, sampled every second) as the "
        "tickets get written, and its high-water mark (VmHWM) at the end of the run:"
    )
    print()
    print(
        "| helpdesk | first write | 10 % | 25 % | 50 % | 75 % | 100 % | end of first cycle "
        "| peak sampled | VmHWM | goal |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in runs:
        s = r.catch_up
        marks_rss = [_at_share(s, r.tickets, q) for q in (1 / r.tickets, 0.1, 0.25, 0.5, 0.75, 1.0)]
        cells_rss = " | ".join(_mb(m.rss_mb if m else None) for m in marks_rss)
        # What grows from a quarter on is the daemon's ledger books (`service.books.Books`):
        # each customer's tickets of its open periods as counting entries, capped at
        # BOOK_ENTRIES. Bounded, not flat: the flat check is phase 2's, once they hold the
        # tickets a decision needs.
        at_25, at_100 = marks_rss[2], marks_rss[5]
        growth = at_100.rss_mb - at_25.rss_mb if at_25 and at_100 else math.nan
        per_ticket = growth * 1024 / (0.75 * r.tickets)
        peak = max((x.rss_mb for x in s), default=math.nan)
        shape = (
            f"from 25 % to 100 %: {growth:+.0f} MB, {per_ticket:.2f} KB a ticket "
            f"(books capped at {BOOK_ENTRIES:,} tickets)"
        )
        status = "met" if r.peak_mb <= 200 else "NOT MET"
        print(
            f"| {r.helpdesk} | {cells_rss} | {_mb(s[-1].rss_mb)} | {_mb(peak)} | {_mb(r.peak_mb)} "
            f"| ≤ 200 MB: {status}; {shape} |"
        )


def print_steady(runs: list[LoadRun]) -> None:
    """Phase 2's figures, one row per helpdesk."""
    print(
        "Phase 2, steady state: agents and customers change tickets in real time (25 % new "
        "tickets, 35 % replies, 20 % solves, 20 % edits of agents' own tags, all but the new "
        "ones on the 500 newest open tickets), then a drain of export lag + 2 polls + 10 s. A "
        "change is handled by the first write to its ticket after it; the backlog is the "
        "changes made and not yet handled. The goal is on the time from the ticket's last "
        "change before the write (see Zendesk's export lag):"
    )
    print()
    print(
        "| helpdesk | poll s | changes/min | minutes | handled by a write | new tickets written "
        "| backlog max / at the last change / after the drain "
        "| from the change: median s | p95 s | max s "
        "| from the last change: median s | p95 s | max s | goal (max) "
        "| requests/min | 429s | daemon cores | RSS start / end / peak MB, goal |"
    )
    print("|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|")
    for r in runs:
        handled = [c for c in r.changes if c.written is not None]
        news = [c for c in r.changes if c.kind == "new"]
        new_written = sum(c.written is not None for c in news)
        seconds = [(c.written or 0) - c.at for c in handled]
        settled = _since_last_change(r.changes)
        st = r.steady
        backlog = [_backlog(r.changes, x.at) for x in st]
        lag = ZENDESK_EXPORT_LAG if r.helpdesk == "zendesk" else 0
        goal = r.interval + lag + 2
        worst = max(settled, default=math.nan)
        status = "met" if worst <= goal and new_written == len(news) else "NOT MET"
        during = [x for x in st if x.at <= r.steady_end]
        if len(during) > 1:
            first, last = during[0], during[-1]
            minutes = (last.at - first.at) / 60
            requests = f"{(last.requests - first.requests) / minutes:,.0f}"
            cores = f"{(last.cpu_s - first.cpu_s) / (minutes * 60):.2f}"
        else:
            requests = cores = "n/a"
        refused = st[-1].refused - r.catch_up[-1].refused if st else 0
        rss = [x.rss_mb for x in st]
        print(
            f"| {r.helpdesk} | {r.interval} | {r.per_minute} | {r.minutes} | {len(handled):,} "
            f"| {new_written:,}/{len(news):,} | {max(backlog, default=0):,} / "
            f"{_backlog(r.changes, r.steady_end):,} / {backlog[-1] if backlog else 0:,} "
            f"| {_quantiles(seconds)} | {_quantiles(settled)} "
            f"| ≤ poll{f' + {lag} s export lag' if lag else ''} + 2 s = {goal} s: {status} "
            f"| {requests} | {refused} | {cores} "
            f"| {_mb(rss[0] if rss else None)} / {_mb(rss[-1] if rss else None)} / "
            f"{_mb(max(rss, default=math.nan))}, flat within 5 MB: "
            f"{'met' if rss and max(rss) - rss[0] <= 5 else 'NOT MET'} |"
        )
    for r in runs:
        kinds = ("new", "reply", "solve", "edit")
        made = {k: sum(1 for c in r.changes if c.kind == k) for k in kinds}
        unhandled = {
            k: sum(1 for c in r.changes if c.kind == k and c.written is None) for k in kinds
        }
        print(
            f"- {r.helpdesk}: changes by kind {made}, of which not followed by a write (none "
            f"needed) {unhandled}; {r.cycles} cycles; load avg at the end "
            f"{_load_avg(r.steady_load)}; seeding the sandbox took {r.seed_s:.0f} s; the daemon "
            f"exited with status {r.exit_status}"
        )


def part_load(mode: Mode, helpdesks: tuple[str, ...]) -> None:
    print(
        "\n## 4. Load: the real daemon, many customers, a rate limit enforced by the sandbox "
        "(subprocess, loopback, real time)\n"
    )
    print(f"cpus={os.cpu_count()} load avg 1/5/15 at start={_load_avg(os.getloadavg())}")
    for helpdesk in helpdesks:
        if helpdesk not in mode.load:
            print(f"- {helpdesk}: not run in --{mode.name} mode")
            continue
        count, limit, interval = mode.load[helpdesk]
        run = load_run(
            helpdesk,
            count=count,
            customers=LOAD_CUSTOMERS,
            limit=limit,
            interval=interval,
            minutes=mode.load_minutes,
            per_minute=mode.load_changes_per_minute,
        )
        # Each helpdesk's figures as soon as they are known: a full run takes over an hour each.
        print(f"\n### {helpdesk}\n")
        print_catch_up([run])
        print()
        print_steady([run])
        print(flush=True)


# --- limits: a Zendesk backfill at a real account's limits, agents working beside it ---------

LIMITS_ACCOUNT = 400  # Zendesk Professional: requests a minute, the whole account
LIMITS_UPDATE = 100  # Update Ticket a minute, the agents' saves in the UI included
LIMITS_EXPORT = 10  # incremental export requests a minute
REQUEST_TAKES = 0.25  # sandbox seconds each request of the connector takes
AGENT_EVERY = 2.0  # sandbox seconds between two agents' saves in the UI: 30 a minute
SINGLE_ROUTE = "/api/v2/tickets/{id}.json"
BATCH_ROUTE = "/api/v2/tickets/update_many.json"


@dataclass
class LimitsRun:
    path: str  # "single" or "batches"
    tickets: int
    written_min: float  # sandbox minutes from the start to the last accepted write
    total_min: float  # sandbox minutes of the whole backfill (its own writes read back too)
    requests: int
    single_puts: int
    batch_puts: int
    daemon_429: int
    conflicts: int  # 409s: an agent saved the ticket after the connector read it
    agent_429: int
    agent_saves: int
    writes: int
    failed: int
    cpu_s: float

    @property
    def per_minute(self) -> float:
        return self.tickets / self.written_min if self.written_min > 0 else math.nan


def _timed_backfill(
    sync: Sync, clock: ManualClock, start: datetime
) -> tuple[Totals, Totals, datetime, datetime, float]:
    """A whole backfill then its wake-ups, the helpdesk and the state closed after: the
    totals of both, when it began and ended on the sandbox clock, the client CPU seconds."""
    try:
        began, cpu = clock(), time.process_time()
        totals = sync.poll("backfill", start - timedelta(days=400))
        woken = sync.wake()
        return totals, woken, began, clock(), time.process_time() - cpu
    finally:
        sync.helpdesk.close()
        sync.state.close()


def limits_run(count: int, *, batches: bool, scratch: Path) -> LimitsRun:
    """Backfill `count` generated tickets (plus the bundled ones) on a fresh sandbox at
    Zendesk Professional's limits, agents saving 30 tickets a minute throughout."""
    start = NOW
    clock = ManualClock(start)
    sandbox = Sandbox.seeded(
        clock=clock,
        anchor=start,
        incremental_export_limit=LIMITS_EXPORT,
        zendesk_rate_limit=LIMITS_ACCOUNT,
        zendesk_update_limit=LIMITS_UPDATE,
    )
    sandbox.seed(
        generate(count, seed=11, anchor=start - GENERATE_LAG),
        customers=(),
        helpdesks=("zendesk",),
    )
    tickets = len(sandbox.zendesk.tickets)
    agents = Agents(sandbox, clock, every=AGENT_EVERY, request_takes=REQUEST_TAKES)
    settings = demo_settings("zendesk", ZENDESK_URL, scratch / ("batches" if batches else "single"))
    state = State(settings.state_file)
    desk = open_helpdesk(
        settings,
        state,
        transport=sandbox.zendesk_transport(),
        secrets=sandbox_secrets(sandbox),
        sleep=agents.advance,
        observers=[agents.request_took],
        monotonic=agents.seconds,  # one time for the shell's pacing and the sandbox's limits
    )
    sync = Sync(desk, state, load_rules(settings), clock=clock, log=_log(), batches=batches)
    agents.advance(61)  # the export shows a change a minute after it: the seed is visible
    totals, woken, began, ended, cpu = _timed_backfill(sync, clock, start)
    # The last write that landed: a PUT's answer, or the last update_many entry that ran.
    landed = [t for t in (agents.last_write, sandbox.zendesk.last_entry_at) if t is not None]
    last = max(landed, default=ended)

    def puts(route: str) -> int:
        return sandbox.counters.total(helpdesk="zendesk", method="PUT", route=route)

    return LimitsRun(
        "batches" if batches else "single",
        tickets,
        (last - began).total_seconds() / 60,
        (ended - began).total_seconds() / 60,
        sandbox.counters.total(helpdesk="zendesk"),
        puts(SINGLE_ROUTE),
        puts(BATCH_ROUTE),
        sandbox.counters.total(helpdesk="zendesk", status=429),
        sandbox.counters.total(helpdesk="zendesk", method="PUT", status=409),
        sandbox.zendesk.agent_429s,
        agents.saved,
        totals.writes + woken.writes,
        totals.failed + woken.failed,
        cpu,
    )


FRESHDESK_PLAN = "pro"  # 400 credits a minute, ticket update 160, tickets list 100
NOTE_ROUTE = "/api/v2/tickets/{id}/notes"


@dataclass
class FreshdeskLimitsRun:
    tickets: int
    open_tickets: int  # neither resolved nor closed
    written_min: float
    requests: int
    by_route: dict[tuple[str, str], int]  # (method, route) -> requests
    open_requests: int  # the requests naming an open ticket (update, note, conversation)
    closed_notes: int  # notes posted on resolved or closed tickets
    per_ticket_requests: int  # the requests naming any one ticket
    notes: int
    daemon_429: int
    busiest: dict[str, int]  # sub-limit name -> most calls in any 60 s of the sandbox clock
    failed: int
    cpu_s: float

    @property
    def per_minute(self) -> float:
        return self.tickets / self.written_min if self.written_min > 0 else math.nan

    @property
    def lists(self) -> int:
        return self.by_route.get(("GET", "/api/v2/tickets"), 0)


def limits_run_freshdesk(count: int, *, scratch: Path) -> FreshdeskLimitsRun:
    """Backfill `count` generated tickets (plus the bundled ones) on a fresh sandbox at
    Freshdesk Pro's limits and sub-limits; `--notes open`, as `backfill` by default."""
    start = NOW
    clock = ManualClock(start)
    sandbox = Sandbox.seeded(clock=clock, anchor=start, freshdesk_plan=FRESHDESK_PLAN)
    sandbox.seed(
        generate(count, seed=11, anchor=start - GENERATE_LAG),
        customers=(),
        helpdesks=("freshdesk",),
    )
    tickets = sandbox.freshdesk.tickets
    open_ids = {str(i) for i, t in tickets.items() if t.status not in (4, 5)}
    agents = Agents(sandbox, clock, every=None, request_takes=REQUEST_TAKES)
    sent: list[tuple[float, str, str, int]] = []  # (clock s, method, path, status)

    def record(request: Any, response: Any = None, *_: object) -> None:
        status = 0 if response is None else response.status
        sent.append((agents.seconds(), request.method, httpx.URL(request.url).path, status))

    settings = demo_settings(
        "freshdesk",
        FRESHDESK_URL,
        scratch / "freshdesk",
        freshdesk={"url": FRESHDESK_URL, "plan": FRESHDESK_PLAN},
    )
    state = State(settings.state_file)
    desk = open_helpdesk(
        settings,
        state,
        transport=sandbox.freshdesk_transport(),
        secrets=sandbox_secrets(sandbox),
        sleep=agents.advance,
        observers=[record, agents.request_took],
        monotonic=agents.seconds,
    )
    sync = Sync(desk, state, load_rules(settings), clock=clock, log=_log(), notes="open")
    totals, woken, began, ended, cpu = _timed_backfill(sync, clock, start)
    last = agents.last_write or ended
    by_route: dict[tuple[str, str], int] = {}
    open_requests = per_ticket = closed_notes = 0
    for _, method, path, _status in sent:
        parts = path.split("/")  # /api/v2/tickets/{id}[/notes|/conversations]
        ticket = parts[4] if len(parts) > 4 and parts[4].isdigit() else None
        route = "/".join([*parts[:4], *(["{id}"] if ticket else parts[4:5]), *parts[5:]])
        by_route[(method, route)] = by_route.get((method, route), 0) + 1
        if ticket is not None:
            per_ticket += 1
            open_requests += ticket in open_ids
            closed_notes += route == NOTE_ROUTE and ticket not in open_ids
    busiest = {
        "tickets-update": _busiest(s for s, m, p, _ in sent if m == "PUT"),
        "tickets-list": _busiest(
            s for s, m, p, _ in sent if m == "GET" and p.endswith("/api/v2/tickets")
        ),
        "account": _busiest(s for s, *_ in sent),
    }
    return FreshdeskLimitsRun(
        len(tickets),
        len(open_ids),
        (last - began).total_seconds() / 60,
        len(sent),
        by_route,
        open_requests,
        closed_notes,
        per_ticket,
        by_route.get(("POST", NOTE_ROUTE), 0),
        sum(1 for *_, status in sent if status == 429),
        busiest,
        totals.failed + woken.failed,
        cpu,
    )


def _busiest(instants: Iterable[float]) -> int:
    """The most of these instants in any 60 s."""
    times = sorted(instants)
    most, first = 0, 0
    for last, at in enumerate(times):
        while at - times[first] >= 60:
            first += 1
        most = max(most, last - first + 1)
    return most


def part_limits_freshdesk(mode: Mode) -> str:
    """Print the Freshdesk table; returns its `LIMITS` line."""
    from connector.sandbox.freshdesk import PLANS

    limits = PLANS[FRESHDESK_PLAN]
    count = mode.limits_tickets
    print(
        f"\nFreshdesk Pro: {limits['account']} credits/min for the account, ticket update "
        f"{limits['tickets-update']}/min, tickets list {limits['tickets-list']}/min (Freshdesk "
        f'announces neither sub-limit: `plan = "pro"` tells the connector); '
        f"`budget_share` 1.0 (the default). {count:,} generated tickets plus the bundled ones; "
        f"`--notes open` (the default). Each request takes {REQUEST_TAKES} s of the sandbox "
        "clock.\n"
    )
    with tempfile.TemporaryDirectory(prefix="bench-daemon-limits-") as scratch:
        r = limits_run_freshdesk(count, scratch=Path(scratch))
    notes = r.notes
    lists_per_ticket = r.lists / r.tickets
    print(
        "| tickets | open | all written, sandbox min | tickets/min | requests | requests/ticket "
        "| list pages | PUT tickets/{id} | POST notes | other | daemon 429s | failed "
        "| client CPU s |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    puts = r.by_route.get(("PUT", "/api/v2/tickets/{id}"), 0)
    other = r.requests - r.lists - puts - notes
    print(
        f"| {r.tickets:,} | {r.open_tickets:,} | {r.written_min:.1f} | {r.per_minute:,.0f} "
        f"| {r.requests:,} | {r.requests / r.tickets:.3f} | {r.lists:,} | {puts:,} | {notes:,} "
        f"| {other:,} | {r.daemon_429} | {r.failed} | {r.cpu_s:.1f} |"
    )
    print()
    print("| endpoint | limit/min | busiest minute | share |")
    print("|---|---:|---:|---:|")
    for name, busiest in r.busiest.items():
        limit = limits[name]
        print(f"| {name} | {limit} | {busiest} | {busiest / limit:.2f} |")
    print()
    open_per_ticket = r.open_requests / r.open_tickets + lists_per_ticket
    open_notes = notes / r.open_tickets
    print("| goal | figure | status |")
    print("|---|---|---|")
    print(
        f"| daemon ≤ 1 429 per 10,000 tickets | {r.daemon_429} in {r.tickets:,} tickets "
        f"| {'met' if r.daemon_429 * 10_000 <= r.tickets else 'NOT MET'} |"
    )
    without_note = open_per_ticket - open_notes
    print(
        f"| ≤ 1.05 requests per open ticket | {open_per_ticket:.3f}: {without_note:.3f} for "
        f"the list pages and the update, {open_notes:.3f} for the private note (Freshdesk "
        f"takes a note only as a request of its own) | "
        f"{'met' if without_note <= 1.05 else 'NOT MET'} without the note; "
        f"{open_notes:.2f} more with it |"
    )
    print(
        f"| no note on solved or closed tickets (`--notes open`) | {r.closed_notes} notes on "
        f"{r.tickets - r.open_tickets:,} resolved or closed tickets ({notes:,} on "
        f"{r.open_tickets:,} open ones) | {'met' if r.closed_notes == 0 else 'NOT MET'} |"
    )
    return (
        f"LIMITS freshdesk agents_429=0 daemon_429={r.daemon_429} "
        f"tickets_per_min={r.per_minute:.0f} single_put_tickets_per_min={r.per_minute:.0f} "
        f"speedup=1.0 requests_per_ticket={r.requests / r.tickets:.3f} "
        f"requests_per_open_ticket={open_per_ticket:.3f} "
        f"requests_per_open_ticket_without_note={without_note:.3f}"
    )


def part_limits(mode: Mode, helpdesks: tuple[str, ...]) -> list[str]:
    """Print the part's tables; returns its `LIMITS` lines, printed last of all."""
    print(
        "\n## 5. Limits: backfills at real accounts' limits, Zendesk's agents beside it "
        "(in process, sandbox clock)\n"
    )
    verdicts = []
    if "zendesk" in helpdesks:
        verdicts.append(part_limits_zendesk(mode))
    if "freshdesk" in helpdesks:
        verdicts.append(part_limits_freshdesk(mode))
    return verdicts


def part_limits_zendesk(mode: Mode) -> str:
    """Print the Zendesk tables; returns its `LIMITS` line."""
    count = mode.limits_tickets
    print(
        f"Zendesk Professional: {LIMITS_ACCOUNT} requests/min for the account, Update Ticket "
        f"{LIMITS_UPDATE}/min (the agents' UI saves included), the export {LIMITS_EXPORT}/min; "
        f"`update_share` 0.5 (the default). {count:,} generated tickets plus the bundled ones; "
        f"agents save one ticket every {AGENT_EVERY:.0f} s; each request takes "
        f"{REQUEST_TAKES} s of the sandbox clock."
    )
    print()
    runs = []
    for batches in (False, True):
        with tempfile.TemporaryDirectory(prefix="bench-daemon-limits-") as scratch:
            runs.append(limits_run(count, batches=batches, scratch=Path(scratch)))
    single, batch = runs
    speedup = batch.per_minute / single.per_minute
    print(
        "| path | tickets | all written, sandbox min | whole backfill, sandbox min "
        "| tickets/min | requests/ticket | PUT tickets/{id} | PUT update_many | daemon 429s "
        "| 409s | agents' 429s | agents' saves | failed | client CPU s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        print(
            f"| {r.path} | {r.tickets:,} | {r.written_min:.1f} | {r.total_min:.1f} "
            f"| {r.per_minute:,.0f} | {r.requests / r.tickets:.3f} | {r.single_puts:,} "
            f"| {r.batch_puts:,} | {r.daemon_429} | {r.conflicts:,} | {r.agent_429} "
            f"| {r.agent_saves:,} | {r.failed} | {r.cpu_s:.1f} |"
        )
    print()

    def met(ok: bool) -> str:
        return "met" if ok else "NOT MET"

    agents_429 = sum(r.agent_429 for r in runs)
    daemon_429 = sum(r.daemon_429 for r in runs)
    tickets = sum(r.tickets for r in runs)
    print("| goal | figure | status |")
    print("|---|---|---|")
    print(
        f"| agents see 0 429s caused by us | {agents_429} (single {single.agent_429}, "
        f"batches {batch.agent_429}) | {met(agents_429 == 0)} |"
    )
    print(
        f"| daemon ≤ 1 429 per 10,000 tickets | {daemon_429} in {tickets:,} tickets "
        f"(single {single.daemon_429}, batches {batch.daemon_429}) "
        f"| {met(daemon_429 * 10_000 <= tickets)} |"
    )
    print(
        f"| batches ≥ 20 times single PUTs, tickets/min | {batch.per_minute:,.0f} / "
        f"{single.per_minute:,.0f} = {speedup:.1f} times | {met(speedup >= 20)} |"
    )
    return (
        f"LIMITS zendesk agents_429={agents_429} daemon_429={daemon_429} "
        f"tickets_per_min={batch.per_minute:.0f} "
        f"single_put_tickets_per_min={single.per_minute:.0f} speedup={speedup:.1f}"
    )


# --- the run ---------------------------------------------------------------------------------


def _log() -> Any:
    return logs.get_logger("bench")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run under a minute")
    parser.add_argument(
        "--parts",
        default="economy,latency,memory",
        help="comma-separated; `load` (about 50 min a helpdesk, 3 with --quick) and `limits` "
        "only when named",
    )
    parser.add_argument("--helpdesks", default="zendesk,freshdesk")
    parser.add_argument("--sizes", help="memory run sizes, comma-separated (default by mode)")
    parser.add_argument("--per-customer", type=int, default=100)
    args = parser.parse_args()
    mode = QUICK if args.quick else FULL
    parts = set(args.parts.split(","))
    helpdesks = tuple(h for h in HELPDESKS if h in args.helpdesks.split(","))
    sizes = tuple(int(n) for n in args.sizes.split(",")) if args.sizes else mode.memory_sizes
    logs.configure(format="json", level="critical", stream=io.StringIO())
    started = time.perf_counter()
    print(
        f"mode={mode.name} python={platform.python_version()} cpus={os.cpu_count()} "
        f"tickets a customer≈{args.per_customer}"
    )
    if "economy" in parts:
        part_economy(mode, args.per_customer, helpdesks)
    if "latency" in parts:
        part_latency(mode, helpdesks)
    if "memory" in parts:
        part_memory(mode, args.per_customer, helpdesks, sizes)
    if "load" in parts:
        part_load(mode, helpdesks)
    verdicts = part_limits(mode, helpdesks) if "limits" in parts else []
    print(f"\nbenchmark wall time: {time.perf_counter() - started:.1f} s")
    for line in verdicts:  # last of all, one line a helpdesk, for scripts to read
        print(line)


if __name__ == "__main__":
    main()
