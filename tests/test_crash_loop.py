"""Crash consistency: the real process `kill -9`ed again and again, then left to finish.

For each helpdesk and each of `sla-connector run` (the daemon's sync) and `sla-connector
backfill`, the real command runs as a subprocess against the sandbox on loopback, over a few
hundred generated tickets (a few thousand with `--long`). It is killed with SIGKILL at random
points and restarted, 6 times (32 with `--long`), then left to finish: the daemon until it
logs a complete `synced` cycle (then SIGTERM), the backfill until it exits 0. The end must
equal an uninterrupted run of the same command over an identical sandbox:

- the helpdesk: every ticket's tags, priority, due fields and notes (by fingerprint, in
  order, so a note posted twice shows);
- the state database, table by table, on the columns that define the outcome (see
  `outcome()`): the ledger (`tickets`), the journal (empty), the wake-ups, the tokens and the
  cursors (at the end of the stream).

Kill points come from a seeded generator (`CRASH_LOOP_SEED` in the environment replays one;
the seed is printed): a random delay after the start (imports, opening the state, the first
requests), a short random delay after the first read answered (the page being received and
parsed, settling, decisions), or a random number of further writes seen by the sandbox
(decisions, writes, note posts, state commits). What each kill interrupted is printed: the
last call the sandbox answered, whether a note was left in flight in the journal, and whether
the work had already ended.

Zendesk's export leaves out the last minute: a ticket whose write landed just before a kill
comes back in the stream only a minute later. Before the last run the sandbox clock moves one
minute on (as if the restart came a minute after the last crash), so that the last run has the
whole stream to read, as the uninterrupted run had.

One kill point the loop rarely hits is tested on its own, in process: between a ticket's entry
in the quota ledger and the re-decision it queues for the customer's later tickets.
"""

from __future__ import annotations

import base64
import os
import random
import signal
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog

from connector.app import load_rules, open_helpdesk
from connector.cli.demo import demo_settings, sandbox_secrets
from connector.helpdesks.freshdesk.sansio import PollPosition
from connector.sandbox import (
    FRESHDESK_URL,
    ZENDESK_URL,
    ManualClock,
    OffsetClock,
    Sandbox,
    SeedTicket,
    generate,
)
from connector.service.sync import Sync
from connector.state import State
from tests.daemon_harness import ANCHOR, START, RequestLog, Served, served, shown

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.skipif(sys.platform != "linux", reason="signals and AF_UNIX datagrams"),
]


@dataclass(frozen=True)
class Length:
    tickets: int
    kills: int
    deadline: float  # seconds one life may take before the test gives up


SHORT = Length(tickets=300, kills=6, deadline=60.0)
LONG = Length(tickets=2000, kills=32, deadline=300.0)
EXPORT_LAG = 61  # seconds: Zendesk's export leaves out the last minute
SEED = int(os.environ.get("CRASH_LOOP_SEED") or random.SystemRandom().randrange(1 << 32))
# (kind of kill point, weight)
TRIGGERS = (("after the start", 1), ("after a read", 2), ("after more writes", 5))
SUMMARY: list[str] = []
# Warnings and errors the process logs (counted and printed; two tickets are unmapped).
PROBLEMS = frozenset(
    {
        "sync_failed",
        "wake_failed",
        "ticket_write_failed",
        "journal_unsettled",
        "ticket_conflict_gave_up",
        "ticket_unmapped",
    }
)
NOW = datetime(2026, 3, 6, 15, 0, tzinfo=UTC)  # a Friday afternoon, for the in-process test


@pytest.fixture(scope="module", autouse=True)
def _summary() -> Iterator[None]:
    """Print every case's figures once the module is done (visible with `-s`)."""
    yield
    print(f"\ncrash loop summary (seed {SEED}; CRASH_LOOP_SEED={SEED} replays the kill points)")
    for line in SUMMARY:
        print("  " + line)


# --- the sandbox and what it shows --------------------------------------------------------------


def seeded(
    tickets: int, clock: OffsetClock, helpdesk: str
) -> tuple[Sandbox, RequestLog, tuple[int, int]]:
    """A sandbox with the bundled and `tickets` generated tickets, its request log, and the
    position (updated_at epoch, id) of the helpdesk's last change before anything was written."""
    sandbox = Sandbox.seeded(anchor=ANCHOR, incremental_export_limit=None, clock=clock)
    sandbox.seed(generate(tickets, seed=5, anchor=ANCHOR), customers=())
    requests = RequestLog()
    sandbox.counters = requests
    desk = sandbox.zendesk if helpdesk == "zendesk" else sandbox.freshdesk
    end = max((int(t.updated_at.timestamp()), t.id) for t in desk.tickets.values())
    return sandbox, requests, end


def writes(sandbox: Sandbox, helpdesk: str) -> int:
    """Calls that change a ticket: updates, update_many entries (and Freshdesk's notes)."""
    return sandbox.ticket_writes(helpdesk)


def repeated_notes(view: dict[int, tuple[Any, ...]]) -> int:
    """Notes whose fingerprint the same ticket already carries."""
    return sum(len(marks) - len(set(marks)) for *_, marks in view.values())


# --- the state database -----------------------------------------------------------------------


def position(value: str) -> tuple[int, int] | None:
    """Where a saved poll position stands, as (updated_at epoch, ticket id), if readable."""
    if value.startswith("cursor:"):  # Zendesk export cursor: base64 of "EPOCH.0||ID|"
        raw = value.removeprefix("cursor:")
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        stamp, _, rest = text.partition("||")
        return int(float(stamp)), int(rest.rstrip("|"))
    if value.startswith("start:"):
        return int(datetime.fromisoformat(value.removeprefix("start:")).timestamp()), -1
    if value.startswith("{"):  # Freshdesk: updated_since and the versions seen since then
        poll = PollPosition.model_validate_json(value)
        last = poll.last_updated_at or poll.since
        return int(last.timestamp()), max((i for i, s in poll.seen if s == last), default=-1)
    return None


def outcome(path: Path, end: tuple[int, int], ended: int) -> dict[str, Any]:
    """The rows of the state that define the outcome, table by table.

    Left out, because they legitimately differ between two correct runs: `cursors.changed_at`,
    `tokens.changed_at` and `journal.started_at` (when a row was written); the value of a
    backfill's `:done` mark (the instant it finished); and a poll position's exact value, which
    depends on when our own writes moved tickets to the end of the stream (they are re-read,
    and change nothing): it is compared as "at the end", i.e. past the last change that was
    not ours, `end`. A wake-up already due when the run ended (a ticket queued for an
    immediate re-decision and not re-decided yet) is compared as "due": its instant is when it
    was queued. The test asserts that the uninterrupted run leaves none.
    """
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)

    def rows(sql: str) -> list[tuple[Any, ...]]:
        return db.execute(sql).fetchall()

    try:
        cursors = {}
        names = {name for (name,) in rows("SELECT name FROM cursors")}
        for name, value in rows("SELECT name, value FROM cursors"):
            if name.endswith(":done"):
                cursors[name] = "done"
                continue
            if f"{name}:done" in names:
                # A finished backfill's range: where its position stopped no longer matters
                # (its own writes may have moved every ticket past it by the last page).
                cursors[name] = "at the end"
                continue
            if value.startswith("events:"):
                # The status stream's position (Zendesk's ticket events export): this world
                # makes no status change after seeding, so any position read it all.
                cursors[name] = "at the end"
                continue
            where = position(value)
            cursors[name] = "at the end" if where is not None and where >= end else value
        return {
            "tickets": rows(
                "SELECT ticket, contract, customer, created_at, category, facts, results, note, "
                "statuses FROM tickets ORDER BY ticket"
            ),
            "journal": rows("SELECT ticket, note FROM journal ORDER BY ticket"),
            "wakeups": [
                (ticket, "due" if at <= ended else at)
                for ticket, at in rows("SELECT ticket, at FROM wakeups ORDER BY ticket")
            ],
            "tokens": rows("SELECT name, value FROM tokens ORDER BY name"),
            "cursors": cursors,
        }
    finally:
        db.close()


def after_kill(path: Path) -> tuple[int, tuple[int, int] | None]:
    """Notes in flight (journalled before their write, not yet recorded as landed) and where
    the saved poll position stands, in the state a kill left."""
    if not path.exists():
        return 0, None
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        journal = int(db.execute("SELECT count(*) FROM journal").fetchone()[0])
        saved = db.execute("SELECT value FROM cursors WHERE name NOT LIKE '%:done'").fetchone()
    except sqlite3.OperationalError:  # killed before the schema was made
        return 0, None
    finally:
        db.close()
    return journal, None if saved is None else position(saved[0])


# --- one command, run, killed, restarted -------------------------------------------------------


@dataclass
class Kill:
    """One `kill -9` and what it interrupted."""

    trigger: str
    last_call: str  # what the sandbox answered last before the kill
    writes: int  # writes the sandbox had seen at the kill
    in_flight: int  # notes left in the journal by the kill
    cursor: tuple[int, int] | None  # the saved poll position after the kill
    after_work: bool  # the life had finished the work before the kill


@dataclass
class Run:
    """A `Served` command with what ending a life means for it."""

    setup: Served
    requests: RequestLog
    command: str
    deadline: float
    kills: list[Kill] = field(default_factory=list)

    @property
    def state_file(self) -> Path:
        return self.setup.daemon.config.parent / "state" / "state.sqlite3"

    def writes(self) -> int:
        return writes(self.setup.sandbox, self.setup.helpdesk)

    def reads(self) -> int:
        return self.requests.total(method="GET")

    def finished(self, synced_before: int) -> bool:
        """The work of this life is done: a complete cycle logged, or the backfill exited."""
        daemon = self.setup.daemon
        if self.command == "run":
            return daemon.tail()["synced"] > synced_before
        return not daemon.running()

    def finish(self) -> None:
        """Start a life and let it do all the work: one complete cycle, or the whole backfill."""
        daemon = self.setup.daemon
        synced_before = daemon.tail()["synced"]
        daemon.start()
        deadline = time.monotonic() + self.deadline
        while not self.finished(synced_before):
            assert time.monotonic() < deadline, f"{self.command}: no end in {self.deadline} s"
            time.sleep(0.02)
        if self.command == "run":
            daemon.signal(signal.SIGTERM)
        code = daemon.wait()
        assert code == 0, f"{self.command} exited {code}; see {daemon.log_path}"

    def kill_once(self, rng: random.Random, step: int) -> None:
        """Start a life and kill it at a random point of its work."""
        daemon = self.setup.daemon
        synced_before = daemon.tail()["synced"]
        calls_before, writes_before = self.requests.calls, self.writes()
        trigger = rng.choices([t for t, _ in TRIGGERS], [w for _, w in TRIGGERS])[0]
        # After the start: imports, opening the state, the first calls. After a read: the
        # answer being received, parsed, its tickets decided.
        delay = rng.uniform(0.0, 1.0) if trigger == "after the start" else rng.uniform(0, 0.05)
        reads_before, read_at = self.reads(), 0.0
        target = writes_before + rng.randint(1, 2 * step)
        daemon.start()
        started = time.monotonic()
        checked = 0.0
        while True:
            now = time.monotonic()
            assert now - started < self.deadline, f"{self.command}: stuck before the kill"
            if trigger == "after the start" and now - started >= delay:
                break
            if trigger == "after a read" and not read_at and self.reads() > reads_before:
                read_at = now
            if read_at and now - read_at >= delay:
                break
            # Whatever the trigger, a life does its share of the work at most (`target`): a
            # fast one would otherwise finish everything within an "after the start" delay,
            # and the kills after it would land after the work (seed 2551113059 did).
            if self.writes() >= target:
                break
            if now - checked > 0.05:  # reading the log costs more: not every turn
                checked = now
                if self.finished(synced_before):
                    break
            time.sleep(0.001)
        after_work = self.finished(synced_before)
        if daemon.running():
            daemon.kill()
        else:  # a backfill that finished: anything else exiting by itself is a failure
            code = daemon.wait()
            assert code == 0, f"{self.command} exited {code}; see {daemon.log_path}"
        last = self.requests.last
        if self.requests.calls == calls_before or last is None:
            last_call = "none yet"
        elif last.method == "GET" and last.route.endswith(("/comments.json", "/conversations")):
            last_call = "conversation read"
        elif last.method == "GET":
            last_call = "ticket read"
        elif last.route.endswith("/notes"):
            last_call = "note post"
        else:
            last_call = "ticket update"
        self.kills.append(
            Kill(trigger, last_call, self.writes(), *after_kill(self.state_file), after_work)
        )


@dataclass
class Result:
    """What one command left behind."""

    view: dict[int, tuple[Any, ...]]
    state: dict[str, Any]
    writes: int
    calls: Counter[str]
    kills: list[Kill]
    problems: Counter[str]  # warnings and errors the process logged, by event
    log: Path


def calls_by_method(requests: RequestLog) -> Counter[str]:
    out: Counter[str] = Counter()
    for line in requests.snapshot():
        out[line["method"]] += line["count"]
    return out


def run_command(
    helpdesk: str,
    command: str,
    folder: Path,
    length: Length,
    *,
    rng: random.Random | None = None,
    expected_writes: int = 0,
) -> Result:
    """Run `command` over a fresh sandbox: killed `length.kills` times first if `rng` is given
    (the kill points drawn from it), then to the end."""
    clock = OffsetClock()
    sandbox, requests, end = seeded(length.tickets, clock, helpdesk)
    # Every ticket noted (a backfill notes open tickets only by default): the most writes,
    # and the notes in flight that the journal must settle.
    backfill = ("backfill", "--since", START.isoformat(), "--notes", "all")
    args = ("run",) if command == "run" else backfill
    with served(sandbox, clock, helpdesk, folder, args) as setup:
        # One update a ticket: these few tickets are four update_many jobs, all queued by the
        # first life, which leaves the next ones nothing to be killed in. The batch path is
        # killed for real in tests/test_batches.py, and soaked in tests/test_fault_soak.py.
        setup.daemon.env["SLA_CONNECTOR_ZENDESK__BATCH_WRITES"] = "false"
        run = Run(setup, requests, command, length.deadline)
        if rng is not None:
            # Each kill moves the work on by `step` writes on average: the kills spread over
            # about three quarters of it, and the last life has the rest to do.
            step = max(1, int(0.75 * expected_writes / length.kills))
            for _ in range(length.kills):
                run.kill_once(rng, step)
            clock.advance(EXPORT_LAG)
        run.finish()
        return Result(
            shown(sandbox, helpdesk),
            outcome(run.state_file, end, int(time.time())),
            run.writes(),
            calls_by_method(requests),
            run.kills,
            Counter({e: n for e, n in setup.daemon.tail().items() if e in PROBLEMS}),
            setup.daemon.log_path,
        )


@pytest.mark.parametrize("command", ["run", "backfill"])
@pytest.mark.parametrize("helpdesk", ["zendesk", "freshdesk"])
def test_killed_again_and_again_ends_as_an_uninterrupted_run(
    helpdesk: str, command: str, tmp_path: Path, long_run: bool
) -> None:
    length = LONG if long_run else SHORT
    began = time.monotonic()
    reference = run_command(helpdesk, command, tmp_path / "reference", length)
    rng = random.Random(f"{SEED}:{helpdesk}:{command}")
    crashed = run_command(
        helpdesk, command, tmp_path / "crashed", length, rng=rng, expected_writes=reference.writes
    )
    kills = crashed.kills
    wall = time.monotonic() - began

    landed = Counter(k.last_call for k in kills)
    triggers = Counter(k.trigger for k in kills)
    # Inside the work: writes were still to come, or some in flight were not recorded yet
    # (batch jobs run on in the helpdesk after a kill: their results are the work left).
    inside = [
        k for k in kills if not k.after_work and (k.writes < reference.writes or k.in_flight > 0)
    ]
    at_kill = sorted(k.writes for k in kills)
    figures = (
        f"{command} {helpdesk} ({'long' if long_run else 'short'}): "
        f"{len(kills)} kills survived, {len(inside)} inside the work, "
        f"{len(crashed.view)} tickets, writes {crashed.writes} (uninterrupted "
        f"{reference.writes}), requests {dict(crashed.calls)} (uninterrupted "
        f"{dict(reference.calls)}), repeated notes {repeated_notes(crashed.view)}, "
        f"notes in flight at a kill {sum(k.in_flight > 0 for k in kills)}, "
        f"kill points {dict(triggers)}, last call before a kill {dict(landed)}, "
        f"writes at each kill {at_kill}, "
        f"journal rows at the end {len(crashed.state['journal'])}, "
        f"ledger rows {len(crashed.state['tickets'])}, "
        f"problems logged {dict(crashed.problems)} (uninterrupted {dict(reference.problems)}), "
        f"wall {wall:.1f} s, seed {SEED}"
    )
    SUMMARY.append(figures)
    print("\n" + figures)

    # The helpdesk shows what an uninterrupted run shows, no note twice.
    assert repeated_notes(reference.view) == 0
    twice = sorted(t for t, (*_, marks) in crashed.view.items() if len(marks) > len(set(marks)))
    assert not twice, f"seed {SEED}: a note posted twice on tickets {twice}"
    differ = sorted(t for t, shows in reference.view.items() if crashed.view.get(t) != shows)
    assert crashed.view == reference.view, (
        f"seed {SEED}: {len(differ)} tickets differ, {differ[:20]}...; positions saved at each "
        f"kill {[k.cursor for k in kills]}; see {crashed.log}"
    )
    # Nothing left queued for a re-decision: a backfill re-decides what it queued.
    queued = [ticket for ticket, at in reference.state["wakeups"] if at == "due"]
    assert not queued, f"the uninterrupted {command} left tickets {queued} to re-decide"
    # The state holds the same outcome, table by table.
    for table, rows in reference.state.items():
        assert crashed.state[table] == rows, f"seed {SEED}: table {table} differs"
    assert crashed.state["journal"] == []
    assert set(crashed.state["cursors"].values()) <= {"at the end", "done"}
    # And the kills landed inside the work, not after it.
    assert len(kills) == length.kills
    assert len(inside) >= 0.8 * len(kills), f"seed {SEED}: kills after the work: {kills}"


# --- one kill point the loop rarely hits: between counting a ticket and queuing its effects ---


class Killed(BaseException):
    """The process dies here (nothing after this point runs; what was committed stays)."""


@dataclass
class Life:
    """One in-process life of the sync over a shared sandbox and state file."""

    helpdesk: str
    sandbox: Sandbox
    clock: ManualClock
    state: State
    sync: Sync

    @classmethod
    def start(cls, helpdesk: str, sandbox: Sandbox, clock: ManualClock, folder: Path) -> Life:
        url = ZENDESK_URL if helpdesk == "zendesk" else FRESHDESK_URL
        transport = (
            sandbox.zendesk_transport() if helpdesk == "zendesk" else sandbox.freshdesk_transport()
        )
        settings = demo_settings(helpdesk, url, folder)
        state = State(settings.state_file)
        client = open_helpdesk(
            settings,
            state,
            transport=transport,
            secrets=sandbox_secrets(sandbox),
            sleep=clock.sleep,
        )
        log = structlog.wrap_logger(structlog.ReturnLogger())
        sync = Sync(client, state, load_rules(settings), clock=clock, log=log)
        return cls(helpdesk, sandbox, clock, state, sync)

    def cycle(self) -> None:
        """One cycle as the daemon runs it (after Zendesk's export lag)."""
        self.clock.advance(EXPORT_LAG)
        self.sync.settle_journal()
        self.sync.poll("poll", NOW - timedelta(days=400))
        self.sync.wake()

    def tags(self, ticket_id: int) -> list[str]:
        desk = self.sandbox.zendesk if self.helpdesk == "zendesk" else self.sandbox.freshdesk
        return list(desk.tickets[ticket_id].tags)


@pytest.mark.parametrize("helpdesk", ["zendesk", "freshdesk"])
def test_a_kill_between_counting_a_late_ticket_and_queuing_the_later_ones(
    helpdesk: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = ManualClock(NOW)
    sandbox = Sandbox.seeded(clock=clock, anchor=NOW, incremental_export_limit=None)
    life = Life.start(helpdesk, sandbox, clock, tmp_path)
    # Customer 101 (gold: 4 incidents a month) gets older tickets of 1001's month, entered
    # late: after two, 1001 is still within the quota; the third puts it over.
    created = NOW - timedelta(hours=100)
    late = [
        SeedTicket(1100 + n, f"late {n}", created + timedelta(minutes=n), 101, severity="sev3")
        for n in range(3)
    ]
    for batch in (late[:2], late[2:]):
        life.cycle()
        assert "sla_quota_exceeded" not in life.tags(1001)
        sandbox.seed(batch, customers=(), helpdesks=(helpdesk,))
        for ticket in batch:
            sandbox.agent_edit(ticket.id, helpdesk=helpdesk)

    # The process dies after a late ticket's facts went to the ledger, before the customer's
    # later tickets were queued for a re-decision.
    def die(*_: object, **__: object) -> None:
        raise Killed

    monkeypatch.setattr(Sync, "_recheck_later", die)
    with pytest.raises(Killed):
        life.cycle()
    life.state.close()
    monkeypatch.undo()
    life = Life.start(helpdesk, sandbox, clock, tmp_path)
    life.cycle()
    life.cycle()
    assert "sla_quota_exceeded" in life.tags(1001)
    life.state.close()
