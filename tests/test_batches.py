"""Writes in Zendesk batch jobs (update_many, issue 17): one request for a hundred tickets.

Each ticket is decided alone and in order, its note journalled before its job is sent; a
ticket whose entry failed is handled alone; a job whose outcome is unknown (a crash after it
was sent) posts no note twice. The helpdesk ends up showing what single writes show.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from connector.errors import NotAvailable
from connector.sandbox import ManualClock, OffsetClock, Sandbox, generate
from connector.service.sync import Totals
from connector.state import State
from tests.daemon_harness import ANCHOR, served, wait_for
from tests.daemon_harness import START as HARNESS_START
from tests.daemon_harness import shown as harness_shown
from tests.test_sync_e2e import START, Desk, open_desk

TICKETS = 300
BEGIN = START - timedelta(days=400)


def world() -> tuple[Sandbox, ManualClock]:
    clock = ManualClock(START)
    sandbox = Sandbox.seeded(clock=clock, anchor=START, incremental_export_limit=None)
    sandbox.seed(generate(TICKETS, seed=9, anchor=START), customers=(), helpdesks=("zendesk",))
    return sandbox, clock


def connect(sandbox: Sandbox, clock: ManualClock, folder: Path, *, batches: bool) -> Desk:
    return open_desk("zendesk", folder, sandbox, clock, batches=batches)


def backfill(desk: Desk) -> Totals:
    desk.clock.advance(61)
    totals = desk.sync.poll("backfill", BEGIN)
    woken = desk.sync.wake()
    totals.writes += woken.writes
    return totals


def last_note(shown: dict[int, tuple[Any, ...]]) -> dict[int, tuple[Any, ...]]:
    """What the tickets show now: tags, priority, dues and the last of our notes.

    Single writes may post a note a later ticket of the page then makes stale (a quota's
    count moved: the ticket is re-decided and noted again); a batch decides the page whole
    first, so it posts only the final note.
    """
    return {ticket: (*rest, marks[-1:]) for ticket, (*rest, marks) in shown.items()}


def requests(sandbox: Sandbox, route: str, method: str = "PUT") -> int:
    return sandbox.counters.total(helpdesk="zendesk", method=method, route=route)


def dies_after_sending(desk: Desk) -> None:
    """The process dies once its next job is queued, before the answer with the job's id."""
    client = desk.sync.helpdesk.client  # type: ignore[attr-defined]
    send: Callable[..., Any] = client.update_many

    def send_then_die(writes: Any) -> Any:
        send(writes)
        raise SystemExit("killed")

    client.update_many = send_then_die


@pytest.fixture(name="reference")
def reference_fixture(tmp_path: Path) -> dict[int, tuple[Any, ...]]:
    """What the helpdesk shows after single writes."""
    sandbox, clock = world()
    desk = connect(sandbox, clock, tmp_path / "single", batches=False)
    backfill(desk)
    desk.state.close()
    return desk.shown()


def test_a_backfill_in_batches_shows_what_single_writes_show(
    tmp_path: Path, reference: dict[int, tuple[Any, ...]]
) -> None:
    sandbox, clock = world()
    desk = connect(sandbox, clock, tmp_path / "batches", batches=True)
    totals = backfill(desk)
    assert totals.failed == 0
    assert totals.writes > TICKETS
    assert last_note(desk.shown()) == last_note(reference)
    jobs = requests(sandbox, "/api/v2/tickets/update_many.json")
    assert jobs == -(-totals.writes // 100)  # full jobs of 100
    assert requests(sandbox, "/api/v2/tickets/{id}.json") == 0  # no Update Ticket budget
    assert desk.state.pending_notes() == []
    before = desk.writes()
    assert backfill(desk).writes == 0  # read again: nothing to write
    assert desk.writes() == before


def test_an_entry_refused_for_a_conflict_is_read_again_and_written_alone(
    tmp_path: Path, reference: dict[int, tuple[Any, ...]]
) -> None:
    sandbox, clock = world()
    desk = connect(sandbox, clock, tmp_path / "batches", batches=True)
    client = desk.sync.helpdesk.client  # type: ignore[attr-defined]
    send: Callable[..., Any] = client.update_many
    edited = itertools.count()

    def agent_edits_first(writes: Any) -> Any:
        if next(edited) == 0:
            sandbox.agent_edit(1002, helpdesk="zendesk")  # just before the job runs
        return send(writes)

    client.update_many = agent_edits_first
    totals = backfill(desk)
    assert totals.failed == 0
    assert "agent_edit" in desk.tags(1002)
    assert len(desk.notes(1002)) == 1
    assert requests(sandbox, "/api/v2/tickets/{id}.json") == 1  # 1002, alone
    shown, want = last_note(desk.shown()), last_note(reference)
    for ticket_id, expected in want.items():
        tags = tuple(t for t in shown[ticket_id][0] if t != "agent_edit")
        assert (tags, *shown[ticket_id][1:]) == expected, ticket_id


def test_a_crash_after_a_job_was_sent_posts_no_note_twice(
    tmp_path: Path, reference: dict[int, tuple[Any, ...]]
) -> None:
    sandbox, clock = world()
    desk = connect(sandbox, clock, tmp_path / "batches", batches=True)
    dies_after_sending(desk)
    with pytest.raises(SystemExit):
        backfill(desk)
    assert desk.state.pending_notes()  # the job's notes were journalled before it was sent
    desk.sync.helpdesk.close()
    desk.state.close()

    again = connect(sandbox, clock, tmp_path / "batches", batches=True)  # the restart
    again.sync.settle_journal()
    totals = backfill(again)
    assert totals.failed == 0
    shown = again.shown()
    assert last_note(shown) == last_note(reference)
    assert all(len(set(marks)) == len(marks) for *_, marks in shown.values())  # no note twice
    assert again.state.pending_notes() == []


def test_a_crash_with_jobs_running_is_settled_from_their_results(
    tmp_path: Path, reference: dict[int, tuple[Any, ...]]
) -> None:
    """The jobs were queued and their ids journalled, the process died while they ran: the
    restart waits for them and settles every journalled note from the jobs' results, one
    request a job, no conversation read, no note twice."""
    sandbox, clock = world()
    desk = connect(sandbox, clock, tmp_path / "batches", batches=True)
    jobs = desk.sync.helpdesk.jobs
    assert jobs is not None

    def dies_waiting(job: str, tickets: Any, **_: Any) -> Any:
        raise SystemExit("killed")  # every job of the page queued, none waited for

    jobs.results = dies_waiting  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        backfill(desk)
    journalled = desk.state.pending_jobs()
    assert len(journalled) >= 3  # the page's jobs in flight together
    desk.sync.helpdesk.close()
    desk.state.close()

    again = connect(sandbox, clock, tmp_path / "batches", batches=True)  # the restart
    comments = requests(sandbox, "/api/v2/tickets/{id}/comments.json", "GET")
    statuses = requests(sandbox, "/api/v2/job_statuses/{id}.json", "GET")
    settled = again.sync.settle_journal()
    assert settled == sum(len(tickets) for _, tickets in journalled.values())
    assert requests(sandbox, "/api/v2/tickets/{id}/comments.json", "GET") == comments
    polled = requests(sandbox, "/api/v2/job_statuses/{id}.json", "GET") - statuses
    assert polled == len(journalled)  # one poll a job: the first came when it was done
    assert again.state.pending_notes() == []
    totals = backfill(again)
    assert totals.failed == 0
    shown = again.shown()
    assert last_note(shown) == last_note(reference)
    assert all(len(set(marks)) == len(marks) for *_, marks in shown.values())  # no note twice


def test_a_job_the_helpdesk_no_longer_knows_is_settled_from_the_conversations(
    tmp_path: Path,
) -> None:
    """A job kept past its day (Zendesk forgets finished jobs): its journalled tickets are
    settled at start from their conversations, and queued for a re-decision."""
    sandbox, clock = world()
    desk = connect(sandbox, clock, tmp_path / "batches", batches=True)
    jobs = desk.sync.helpdesk.jobs
    assert jobs is not None

    def dies_waiting(job: str, tickets: Any, **_: Any) -> Any:
        raise SystemExit("killed")

    jobs.results = dies_waiting  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        backfill(desk)
    journalled = sum(len(tickets) for _, tickets in desk.state.pending_jobs().values())
    desk.sync.helpdesk.close()
    desk.state.close()
    clock.advance(2 * 86_400)  # the jobs ran and were forgotten

    again = connect(sandbox, clock, tmp_path / "batches", batches=True)
    comments = requests(sandbox, "/api/v2/tickets/{id}/comments.json", "GET")
    assert again.sync.settle_journal() == journalled
    assert requests(sandbox, "/api/v2/tickets/{id}/comments.json", "GET") > comments
    assert again.state.pending_notes() == []
    assert len(again.state.due_wakeups(clock(), limit=10_000)) >= journalled


def test_a_job_whose_id_never_came_back_posts_no_note_twice(
    tmp_path: Path, reference: dict[int, tuple[Any, ...]]
) -> None:
    """The job was queued, its answer lost with the process; the restart comes before the job
    ran: the conversations show no note yet, the tickets are written again with the same
    stamps, and whichever write comes second is refused as a conflict: one note each."""
    sandbox, clock = world()
    desk = connect(sandbox, clock, tmp_path / "batches", batches=True)
    dies_after_sending(desk)
    with pytest.raises(SystemExit):
        backfill(desk)
    assert desk.state.pending_notes()
    assert not desk.state.pending_jobs()
    desk.sync.helpdesk.close()
    desk.state.close()

    again = connect(sandbox, clock, tmp_path / "batches", batches=True)
    again.sync.settle_journal()  # no sleep of the clock: the lost job has not run yet
    totals = backfill(again)
    assert totals.failed == 0
    shown = again.shown()
    assert last_note(shown) == last_note(reference)
    assert all(len(set(marks)) == len(marks) for *_, marks in shown.values())
    assert again.state.pending_notes() == []


def test_a_lost_job_that_runs_after_the_restart_posts_no_note_twice(tmp_path: Path) -> None:
    """Tickets written before (so their conversations are not read for a first write), then
    a job of their notes whose answer is lost with the process. The restart settles nothing
    early: the job runs before the tickets are read again, and their conversations, read just
    before the next write, show its notes."""
    sandbox, clock = world()
    desk = connect(sandbox, clock, tmp_path / "batches", batches=True)
    desk.sync.notes = "none"
    backfill(desk)  # every ticket written, none with a note
    assert desk.state.pending_notes() == []
    for ticket_id in sandbox.zendesk.tickets:  # a change an agent makes: each is read again
        sandbox.agent_edit(ticket_id, helpdesk="zendesk")
    dies_after_sending(desk)
    desk.sync.notes = "all"
    with pytest.raises(SystemExit):
        backfill(desk)
    journalled = [ticket for ticket, _ in desk.state.pending_notes()]
    assert journalled
    assert all(desk.state.pending_job(ticket) is not None for ticket in journalled)
    desk.sync.helpdesk.close()
    desk.state.close()

    again = connect(sandbox, clock, tmp_path / "batches", batches=True)
    assert again.sync.settle_journal() == 0  # nothing settled before the job could run
    totals = backfill(again)  # the lost job runs during the export's minute
    assert totals.failed == 0
    shown = again.shown()
    twice = [t for t, (*_, marks) in shown.items() if len(marks) != len(set(marks))]
    assert twice == []
    assert again.state.pending_notes() == []


def test_a_lost_job_then_a_write_that_never_reached_zendesk_posts_no_note_twice(
    tmp_path: Path,
) -> None:
    """The job's id was lost with the process; at the restart the tickets' conversations show
    no note yet and the new job never reaches Zendesk (connection refused). The lost job then
    runs and posts the notes: the next decisions find them there, and post none again."""
    sandbox, clock = world()
    desk = connect(sandbox, clock, tmp_path / "batches", batches=True)
    desk.sync.notes = "none"
    backfill(desk)  # every ticket written, none with a note: their conversations are not read
    for ticket_id in sandbox.zendesk.tickets:
        sandbox.agent_edit(ticket_id, helpdesk="zendesk")
    dies_after_sending(desk)
    desk.sync.notes = "all"
    with pytest.raises(SystemExit):
        backfill(desk)
    desk.sync.helpdesk.close()
    desk.state.close()

    again = connect(sandbox, clock, tmp_path / "batches", batches=True)
    again.sync.settle_journal()
    client = again.sync.helpdesk.client  # type: ignore[attr-defined]
    send: Callable[..., Any] = client.update_many

    def refused(writes: Any) -> Any:
        error = NotAvailable("connection refused", method="PUT", url="update_many")
        error.never_sent = True
        raise error

    client.update_many = refused
    with pytest.raises(NotAvailable):  # the helpdesk failing: the pass stops
        again.sync.poll("backfill", BEGIN)  # the lost job has not run yet
    client.update_many = send
    totals = backfill(again)  # the clock moves: the lost job runs, then the tickets again
    assert totals.failed == 0
    shown = again.shown()
    twice = sorted(t for t, (*_, marks) in shown.items() if len(marks) != len(set(marks)))
    assert twice == []
    assert again.state.pending_notes() == []


@pytest.mark.reliability
@pytest.mark.skipif(sys.platform != "linux", reason="signals")
def test_a_backfill_in_batches_killed_twice_ends_as_an_uninterrupted_one(tmp_path: Path) -> None:
    """The real process, killed with SIGKILL right after its first and second jobs were
    accepted (their results not yet recorded, or just), then run to the end: the helpdesk
    shows what an uninterrupted run shows, no note twice."""
    command = ("backfill", "--since", HARNESS_START.isoformat(), "--batch", "--notes", "all")

    def load(clock: OffsetClock) -> Sandbox:
        sandbox = Sandbox.seeded(anchor=ANCHOR, incremental_export_limit=None, clock=clock)
        sandbox.seed(generate(TICKETS, seed=9, anchor=ANCHOR), customers=())
        return sandbox

    clock = OffsetClock()
    with served(load(clock), clock, "zendesk", tmp_path / "whole", command=command) as whole:
        whole.daemon.start()
        assert whole.daemon.wait() == 0
        expected = harness_shown(whole.sandbox, "zendesk")
    clock = OffsetClock()
    with served(load(clock), clock, "zendesk", tmp_path / "killed", command=command) as run:
        sandbox = run.sandbox

        def jobs() -> int:
            return sandbox.counters.total(route="/api/v2/tickets/update_many.json", status=200)

        for after in (1, 2):
            run.daemon.start()
            wait_for(f"{after} jobs accepted", lambda n=after: jobs() >= n)  # type: ignore[misc]
            run.daemon.kill()
        run.daemon.start()
        assert run.daemon.wait() == 0
        assert harness_shown(sandbox, "zendesk") == expected
        state = State(tmp_path / "killed" / "state" / "state.sqlite3")
        assert state.pending_notes() == []
        state.close()


def test_freshdesk_has_no_jobs_and_a_batch_backfill_writes_each_ticket_alone(
    tmp_path: Path,
) -> None:
    """Freshdesk has no batch of different changes (its bulk update applies one change to
    many tickets): `--batch` there sends the usual single writes."""
    desk = open_desk("freshdesk", tmp_path, batches=True)
    assert desk.sync.helpdesk.jobs is None
    desk.clock.advance(61)
    totals = desk.sync.poll("backfill", BEGIN)
    assert totals.failed == 0
    assert totals.writes > 10
    puts = desk.sandbox.counters.total(helpdesk="freshdesk", method="PUT", status=200)
    assert 0 < puts <= totals.writes  # a ticket whose fields already show needs its note only
