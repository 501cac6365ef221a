"""The sync loop: poll → facts → decision (with the ledger) → minimal write → state.

Written once for every helpdesk (`connector.helpdesks.adapter.Helpdesk`). The rules it keeps:
- a page's position is saved only after every ticket of the page has been handled, so a
  restart re-reads at most one page, and re-reading changes nothing that was already written;
- a note-carrying write is journalled before it is sent; a journal entry left by a crash is
  settled by reading the ticket's conversation, so no note is ever posted twice;
- a 409 (someone changed the ticket meanwhile) re-reads, re-decides and tries again;
- one ticket that cannot be mapped or written never stops the others;
- a ticket whose facts change the quota positions of the customer's later tickets schedules
  those tickets for an immediate re-decision (the wake-up queue), so they are rewritten too.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from connector.errors import (
    ApiError,
    AuthError,
    Conflict,
    Interrupted,
    MalformedResponse,
    NotAvailable,
    NotFound,
    RateLimited,
    UnmappedTicket,
)
from connector.helpdesks.adapter import Helpdesk, Item, Jobs, Plan
from connector.helpdesks.mapping import (
    DesiredResults,
    desired_results,
    read_facts,
)
from connector.helpdesks.statuses import merge, observe
from connector.service.books import Books
from connector.service.rules import UNMAPPED_TAG, Rules
from connector.sla.contract import Contract
from connector.sla.engine import decide, decide_with
from connector.sla.model import Decision, StatusChange, TicketFacts
from connector.sla.quotas import Ledger, LedgerBook
from connector.state import UNKNOWN_JOB, Store
from connector.timeutil import format_instant

__all__ = ["Outcome", "Rules", "Sync", "Totals", "results_fingerprint"]

# How far apart two tickets of one period can be created, per kind of period (a local day
# spans at most 26 hours of UTC; a generous bound only costs a few more rows read).
CONFLICT_RETRIES = 3
# A write that fails after the shell's retries (5xx, cut, timeout) is tried again this much
# later from the wake-up queue, and the page goes on: one ticket never holds up the others.
WRITE_RETRY = timedelta(minutes=1)
# So many such failures in a row mean the helpdesk, not a ticket, is failing: the pass stops
# (its position unsaved) and the daemon backs off.
FAILURES_IN_A_ROW = 3
# A page (or a wake-up pass) with this many writes or more sends them as batch jobs where the
# helpdesk has them; fewer go one by one (a job costs its status polls and seconds of waiting).
BATCH_FROM = 10
# Jobs of ours queued or running at once: a third of Zendesk's 30 an account, the rest left to
# the account's other integrations. A job runs about 10 s; ten in flight keep the writes going.
JOBS_IN_FLIGHT = 10


@dataclass
class _Pending:
    """A decided ticket's write, ready to send: the plan, the results it records, its note."""

    item: Item
    outcome: Outcome
    plan: Plan
    fingerprint: str
    note: str | None  # the fingerprint of the note it carries


@dataclass
class Outcome:
    """What happened to one ticket."""

    ticket: str
    updated_at: datetime | None = None  # as the helpdesk said when the ticket was read
    facts: TicketFacts | None = None
    decision: Decision | None = None
    desired: DesiredResults | None = None
    plan: Plan | None = None
    wrote: bool = False
    changed: bool = False
    unmapped: bool = False  # no contract could be applied (tagged sla_unmapped)
    problem: str | None = None


@dataclass
class Totals:
    """Counts of one pass, for logs, progress and metrics."""

    pages: int = 0
    tickets: int = 0
    changed: int = 0
    planned: int = 0
    writes: int = 0
    notes: int = 0
    unmapped: int = 0
    failed: int = 0
    woken: int = 0
    newest: datetime | None = None
    complete: bool = True

    def add(self, outcome: Outcome) -> None:
        """Count one ticket's outcome."""
        self.tickets += 1
        self.changed += outcome.changed
        self.planned += outcome.plan is not None
        if outcome.wrote:
            self.writes += 1
            self.notes += bool(outcome.plan and outcome.plan.note)
        if outcome.unmapped:
            self.unmapped += 1
        elif outcome.problem is not None:
            self.failed += 1


def results_fingerprint(desired: DesiredResults) -> str:
    """A short fingerprint of what a ticket should show (dues, priority, tags, note)."""
    parts = [
        *(f"{value.destination.key}={value.text}" for value in desired.due),
        f"priority={desired.priority}",
        "tags=" + ",".join(desired.tags),
        f"note={desired.note_fingerprint}",
    ]
    if desired.summary is not None:
        parts.append(f"summary={desired.summary[1]}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


# What a ticket whose facts cannot be read should show: the unmapped tag, nothing removed.
_UNMAPPED = DesiredResults(
    due=(),
    priority=None,
    tags=(UNMAPPED_TAG,),
    owned_tags=frozenset(),
    note=None,
    note_fingerprint=None,
)


class Sync:
    """Polls one helpdesk and keeps its tickets showing what their contracts say.

    `dry_run` decides and plans but sends nothing (give it a `State.snapshot` so the real
    state is untouched). `observe` is called with each ticket's outcome (progress, diffs).
    """

    def __init__(
        self,
        helpdesk: Helpdesk,
        state: Store,
        rules: Rules,
        *,
        clock: Callable[[], datetime],
        log: Any,
        dry_run: bool = False,
        observe: Callable[[Outcome], None] | None = None,
        notes: Literal["all", "open", "none"] = "all",
        batches: bool = True,
    ) -> None:
        self.helpdesk = helpdesk
        # Whether writes may go in batch jobs where the helpdesk has them (see `handle_all`).
        self.batches = batches
        # Which tickets get the note: a backfill leaves solved and closed tickets without one
        # (no agent reads them; a later change of the ticket brings it).
        self.notes = notes
        self.state = state
        self.rules = rules
        self.clock = clock
        self.log = log
        self.dry_run = dry_run
        self.observe = observe
        self._failing = 0  # tickets deferred in a row by a transient failure
        self._statuses_refused = False  # the status stream said no for good (not an admin)
        self.books = Books(state)

    # --- passes ---------------------------------------------------------------------------

    def poll(
        self,
        cursor_name: str,
        start: datetime,
        *,
        until: datetime | None = None,
        limit: int | None = None,
        stop: Callable[[], bool] = lambda: False,
    ) -> Totals:
        """Handle every page from the saved position `cursor_name` (or `start`) to the end.

        Ends (`complete`) at the end of the stream or at the first ticket updated after
        `until` (the rest are later still); stops early (`complete` False) at the end of the
        page where `limit` tickets are reached, or when `stop()` says so between pages. The
        position is saved after each whole page, so the next call carries on from there.
        """
        totals = Totals()
        pages: Iterator[Any] = self.helpdesk.poll(self.state.cursor(cursor_name), start)
        for page in pages:
            for bad in page.malformed:
                # Not one of ours to fix: logged and counted; its neighbours go on.
                self.log.error("ticket_malformed", ticket=bad.id, problem=bad.problem)
                totals.unmapped += 1
            with self.state.writer():
                within = [i for i in page.items if until is None or i.updated_at <= until]
                for outcome in self.handle_all(within):
                    self._count(totals, outcome)
                for item in page.items:
                    if until is not None and item.updated_at > until:
                        break
                    if item.id in page.ahead:
                        self.log.warning(
                            "ticket_dated_in_future",
                            ticket=item.id,
                            updated_at=format_instant(item.updated_at),
                            detail="handled; the poll position does not move past the "
                            "helpdesk's clock",
                        )
                    elif totals.newest is None or item.updated_at > totals.newest:
                        totals.newest = item.updated_at
                else:
                    self.state.set_cursor(cursor_name, page.cursor, self.clock())
                    totals.pages += 1
                    if limit is not None and totals.tickets >= limit:
                        totals.complete = False
                        break
                    if stop():
                        totals.complete = False
                        break
                    continue
                break  # `until` reached inside the page: its position is not saved
        return totals

    def read_statuses(self, cursor_name: str, start: datetime) -> int:
        """Merge the helpdesk's own record of status changes (Zendesk's ticket events export)
        into the tickets' histories, from the saved position (or `start`) to the end.

        A ticket already written whose history changed is queued for a re-decision now: a
        recent change also brings it in the next poll (which decides it and replaces the
        wake-up), an old one (a daemon that was down) only this way; a ticket not written yet
        is decided when the poll reaches it. Returns how many histories changed.

        The stream failing never holds up the poll: the error is logged and the stream tried
        again next time from where it stopped; refused for good (the export is for admins),
        it is logged once and left alone, and statuses are only observed as tickets are read.
        """
        if self._statuses_refused:
            return 0
        changed = 0
        try:
            changed = self._read_statuses(cursor_name, start)
        except Interrupted:
            raise
        except AuthError as exc:
            self._statuses_refused = True
            self.log.warning(
                "status_stream_refused",
                error=str(exc),
                detail="status changes are observed as tickets are read; spells shorter than "
                "a poll are missed (an admin's credentials let the connector read them)",
            )
        except ApiError as exc:
            self.log.warning("status_stream_failed", error=str(exc), detail="tried again next time")
        return changed

    def _read_statuses(self, cursor_name: str, start: datetime) -> int:
        statuses = self.rules.mapping.facts.statuses
        changed = 0
        for page in self.helpdesk.status_changes(self.state.cursor(cursor_name), start):
            by_ticket: dict[str, list[StatusChange]] = {}
            for seen in page.changes:
                category = statuses.get(seen.key, seen.category)
                if category is not None:
                    by_ticket.setdefault(seen.ticket, []).append(
                        StatusChange(at=seen.at, status=category)
                    )
            with self.state.writer(), self.state.transaction():
                now = self.clock()
                for ticket, changes in by_ticket.items():
                    merged = merge(self.state.status_history(ticket), changes)
                    if merged is not None:
                        self.state.set_status_history(ticket, merged)
                        if self.state.written(ticket):
                            self.state.wake_at(ticket, now)
                        changed += 1
                self.state.set_cursor(cursor_name, page.cursor, now)
        return changed

    def wake(self, limit: int = 1000) -> Totals:
        """Re-decide the tickets whose wake-up time has come, reading them fresh."""
        totals = Totals()
        now = self.clock()
        ids = self.state.due_wakeups(now, limit)
        if not ids:
            return totals
        items = {item.id: item for item in self.helpdesk.fetch(ids)}
        with self.state.writer():
            present = []
            for ticket_id in ids:
                item = items.get(ticket_id)
                if item is None:  # deleted meanwhile
                    self.state.wake_at(ticket_id, None)
                else:
                    present.append(item)
            for outcome in self.handle_all(present):
                self._count(totals, outcome)
                totals.woken += 1
        return totals

    def settle_journal(self) -> int:
        """Settle the notes a crash left in flight (best effort); returns how many.

        A write sent in a batch job whose id came back is settled from the job's results
        (one request for its hundred tickets, waiting for a job still running); any other from
        the ticket's conversation. Each settled ticket is also queued for a re-decision now:
        its write may have landed after all, and it may never come back in a poll (a
        backfill's own write moves it past `--until`), so the wake-up records what it shows.
        """
        settled = 0
        unsettled: set[str] = set()
        with self.state.writer():
            jobs = self.helpdesk.jobs
            if jobs is not None:
                settled += self._settle_jobs(jobs, unsettled)
            for ticket, _ in self.state.pending_notes():
                if ticket in unsettled or self.state.pending_job(ticket) is not None:
                    # A job still to settle, or one whose id never came back: it may run
                    # later, so only a read of the ticket just before its next write settles
                    # it (whichever of the two writes comes second is refused, same stamp).
                    continue
                try:
                    self._settle_pending(ticket)
                except Interrupted:
                    raise
                except ApiError as exc:
                    self.log.warning("journal_unsettled", ticket=ticket, error=str(exc))
                else:
                    self.state.wake_at(ticket, self.clock())
                    settled += 1
        return settled

    def _settle_jobs(self, jobs: Jobs, unsettled: set[str]) -> int:
        """Settle the journal entries of batch jobs whose ids came back, from the jobs'
        results; the tickets of jobs whose status cannot be read go in `unsettled`."""
        settled = 0
        pending = self.state.pending_jobs()
        for job, (sent, tickets) in pending.items():
            try:
                ago = (self.clock() - sent).total_seconds()
                errors = jobs.results(job, tickets, sent_ago=ago)
            except Interrupted:
                raise
            except NotFound as gone:
                # Gone (kept a day after it finished): it ran long ago; the conversations say.
                errors = [gone] * len(tickets)
            except ApiError as exc:
                self.log.warning("journal_unsettled", job=job, error=str(exc))
                unsettled.update(tickets)
                continue
            for ticket, error in zip(tickets, errors, strict=True):
                try:
                    if not self._settle_from_job(ticket, job, error):
                        self._settle_pending(ticket)  # the job is over: the conversation
                except Interrupted:
                    raise
                except ApiError as exc:
                    self.log.warning("journal_unsettled", ticket=ticket, error=str(exc))
                    continue
                self.state.wake_at(ticket, self.clock())
                settled += 1
        return settled

    def _count(self, totals: Totals, outcome: Outcome) -> None:
        totals.add(outcome)
        if self.observe is not None:
            self.observe(outcome)

    # --- one ticket -----------------------------------------------------------------------

    def handle(self, item: Item) -> Outcome:
        """Decide one ticket and make the helpdesk show it.

        A problem of this ticket alone (unmappable, a write the helpdesk refuses) is logged
        and reported in the outcome. A failure that may pass (a 5xx or a cut connection after
        the retries) queues the ticket for another try `WRITE_RETRY` later; after
        `FAILURES_IN_A_ROW` of them in a row it raises, so that the page is not marked done.
        """
        for _ in range(CONFLICT_RETRIES):
            try:
                outcome = self._handle(item)
            except Interrupted:
                # The process is stopping: the page is not marked done, and the ticket is
                # taken again first thing at the next start (it may have left the wake-ups).
                self.state.wake_at(item.id, self.clock())
                raise
            except Conflict:
                self.log.info("ticket_conflict", ticket=item.id)
                fresh = self.helpdesk.fetch([item.id])
                if not fresh:
                    return Outcome(item.id, item.updated_at, problem="deleted while being written")
                item = fresh[0]
                continue
            except ApiError as exc:
                if _permanent(exc):
                    self.log.error("ticket_write_failed", ticket=item.id, error=str(exc))
                    return Outcome(item.id, item.updated_at, problem=str(exc))
                return self._defer(item, exc)
            self._failing = 0
            return outcome
        self.log.warning("ticket_conflict_gave_up", ticket=item.id, attempts=CONFLICT_RETRIES)
        return Outcome(
            item.id, item.updated_at, problem=f"changed by someone else {CONFLICT_RETRIES} times"
        )

    def _defer(self, item: Item, exc: ApiError) -> Outcome:
        """Queue a ticket whose write failed for another try; raise if all writes fail.

        Queued in both cases: deciding the ticket may have removed the wake-up it was taken
        from, and a wake-up pass has no page to take again. A ticket over its own rate budget
        (Zendesk's 30 updates in 10 minutes) is tried again when that budget allows, and says
        nothing of the helpdesk: it does not count as a failure in a row.
        """
        if isinstance(exc, RateLimited) and exc.one_ticket:
            wait = timedelta(seconds=exc.retry_after or WRITE_RETRY.total_seconds())
            retry_at = self.clock() + max(wait, WRITE_RETRY)
            self.state.wake_at(item.id, retry_at)
            self.log.info(
                "ticket_write_deferred",
                ticket=item.id,
                error=str(exc),
                retry_at=retry_at.isoformat(),
            )
            return Outcome(item.id, item.updated_at, problem=f"over its own update limit: {exc}")
        retry_at = self.clock() + WRITE_RETRY
        self.state.wake_at(item.id, retry_at)
        self._failing += 1
        if self._failing >= FAILURES_IN_A_ROW:
            self._failing = 0
            raise exc
        self.log.warning(
            "ticket_write_deferred", ticket=item.id, error=str(exc), retry_at=retry_at.isoformat()
        )
        return Outcome(item.id, item.updated_at, problem=f"write failed, tried again later: {exc}")

    def decide(self, item: Item, *, record: bool = True) -> Outcome:
        """Facts, decision and desired results of one ticket.

        With `record` (the default) the facts go to the ledger, the wake-up time is saved and
        the customer's later tickets whose results change are queued; without it (`explain`)
        the state is only read.
        """
        now = self.clock()
        outcome = Outcome(item.id, item.updated_at)
        try:
            facts = read_facts(item.view, self.rules.mapping)
        except UnmappedTicket as exc:
            self.log.warning("ticket_unmapped", ticket=item.id, reason=exc.reason)
            if record:
                self._forget_facts(item.id)
                self.state.wake_at(item.id, None)
            outcome.problem, outcome.unmapped = exc.reason, True
            outcome.desired = _UNMAPPED
            return outcome
        facts = self._with_statuses(item, facts, record=record)
        outcome.facts = facts
        contract = self.rules.contracts.get(facts.contract)
        ledger = before = book = None
        shown: dict[str, str] = {}  # the later tickets showing results, and what they show
        counted = False  # whether the ledger now holds different facts for this ticket
        if contract is not None and contract.needs_ledger:
            if record:
                if facts.customer is not None:
                    book = self.books.book(self.rules, contract, facts)
                text = facts.model_dump_json()
                counted = self.state.facts_json(item.id) != text
                if counted:
                    if book is not None:
                        shown = self._shown_later(contract, facts)
                        before = book.pin() if shown else None
                    self.state.put_facts(facts, text)
                    self.books.put(facts)
            ledger = book.ledger() if book is not None else self._ledger(contract, facts)
        elif contract is not None and record:
            # No quota counts it, but the report decides every ticket again from the state.
            text = facts.model_dump_json()
            if self.state.facts_json(item.id) != text:
                self.state.put_facts(facts, text)
        decision = decide_with(self.rules.contracts, facts, now, ledger)
        outcome.decision = decision
        if decision.problem is not None:
            self.log.warning("ticket_unmapped", ticket=item.id, reason=decision.problem)
            outcome.problem, outcome.unmapped = decision.problem, True
            if record:
                self._forget_facts(item.id)
        outcome.desired = desired_results(
            decision, self.rules.mapping, self.rules.owned_tags, contract
        )
        if record:
            self.state.wake_at(item.id, decision.next_change_at)
            if book is not None and before is not None:
                self._recheck_later(facts, now, book, before=before, shown=shown)
        return outcome

    def _with_statuses(self, item: Item, facts: TicketFacts, *, record: bool) -> TicketFacts:
        """The facts with the ticket's status history: the changes the state has seen, and
        the status it shows now (kept with `record`), from when the helpdesk says it began."""
        history = self.state.status_history(item.id)
        seen = observe(history, facts.status, item.view.status_since or item.updated_at)
        if seen is not None:
            if record:
                self.state.set_status_history(item.id, seen)
            history = seen
        return facts.model_copy(update={"status_history": history}) if history else facts

    def _handle(self, item: Item) -> Outcome:
        prepared = self._prepare(item)
        return prepared if isinstance(prepared, Outcome) else self._send(prepared)

    def _send(self, prepared: _Pending) -> Outcome:
        """Send one prepared write, its note journalled first; a failure is raised, its
        note settled first (did it land after all?)."""
        self._begin(prepared)
        try:
            self.helpdesk.apply(prepared.item, prepared.plan)
        except ApiError as exc:
            if prepared.plan.note is not None:
                self._settle_after_failure(prepared.item.id, exc)
            raise
        return self._written(prepared)

    def _prepare(self, item: Item) -> Outcome | _Pending:
        """Decide one ticket and plan its write: the outcome when nothing is to be sent (or a
        dry run), else what to send."""
        # The ledger entry and the re-decisions it queues commit together: after a kill between
        # them, the stored facts would match and the later tickets would never be re-decided.
        try:
            with self.state.transaction():
                outcome = self.decide(item)
        except BaseException:
            self.books.clear()  # it may hold changes the rollback undid
            raise
        desired = outcome.desired
        assert desired is not None
        if desired.note is not None and self._without_note(outcome):
            desired = replace(desired, note=None, note_fingerprint=None)
            outcome.desired = desired
        fingerprint = results_fingerprint(desired)
        record = self.state.record(item.id)
        outcome.changed = record.results != fingerprint
        posted = record.note
        if self.state.pending_note(item.id) is not None:
            posted = self._settle_journalled(item.id)
        elif posted is None and record.results is None and self._may_show_our_note(item, desired):
            # This state never wrote the ticket, yet it shows tags of ours: another state wrote
            # it (one lost, restored from an old copy, or a second installation). Its own notes
            # say which of ours it already shows.
            posted = self._settle_pending(item.id, why="ticket_notes_read")
        plan = self.helpdesk.plan(item, desired, posted)
        outcome.plan = plan
        if plan is None:
            if outcome.changed:
                self.state.set_written(item.id, fingerprint, None)
            return outcome
        if plan.dropped:
            self.log.info("ticket_due_dropped", ticket=item.id, why=list(plan.dropped))
        if self.dry_run:
            return outcome
        note = desired.note_fingerprint if plan.note is not None else None
        return _Pending(item, outcome, plan, fingerprint, note)

    def _begin(self, pending: _Pending, job: str | None = None) -> None:
        """Journal the note a write carries, before sending it."""
        if pending.note is not None:
            self.state.begin_note(pending.item.id, pending.note, self.clock(), job)

    def _written(self, pending: _Pending) -> Outcome:
        """Record a write the helpdesk took."""
        item, outcome = pending.item, pending.outcome
        self.state.set_written(item.id, pending.fingerprint, pending.note)
        outcome.wrote = True
        self.log.info("ticket_written", ticket=item.id, changes=list(pending.plan.changes))
        return outcome

    # --- batches ----------------------------------------------------------------------------

    def handle_all(self, items: Sequence[Item]) -> list[Outcome]:
        """`handle` each ticket; where the helpdesk takes batch jobs (Zendesk's update_many)
        and `BATCH_FROM` or more of them need a write, their writes go in jobs: one request
        where there were a hundred, none of Update Ticket's budget (which the agents share).

        Each ticket is decided in order first, as alone; the notes of a job are journalled
        before it is sent and the job's id once it is queued; up to `JOBS_IN_FLIGHT` jobs run
        at once; a ticket whose entry failed is handled alone (a conflict: read again, decided
        again), as after a failed single write.
        """
        jobs = self.helpdesk.jobs if self.batches else None
        ids = [item.id for item in items]
        if jobs is None or self.dry_run or len(items) < BATCH_FROM or len(set(ids)) < len(ids):
            return [self.handle(item) for item in items]
        outcomes: dict[str, Outcome] = {}
        try:
            self._handle_in_jobs(jobs, items, outcomes)
        except ApiError:  # Interrupted too: a stop, or the helpdesk failing part way
            # Deciding a ticket replaced its wake-up with its own next change: the tickets not
            # done yet are taken again first thing (a wake-up pass has no page to re-read).
            now = self.clock()
            for item in items:
                if item.id not in outcomes:
                    self.state.wake_at(item.id, now)
            raise
        return [outcomes[item_id] for item_id in ids]

    def _handle_in_jobs(
        self, jobs: Jobs, items: Sequence[Item], outcomes: dict[str, Outcome]
    ) -> None:
        """`handle_all`'s work, each outcome put in `outcomes` as it is known."""
        pending: list[_Pending] = []
        for item in items:
            try:
                prepared = self._prepare(item)
            except Interrupted:
                raise
            except ApiError:  # a conversation that did not read, say: the single path decides
                outcomes[item.id] = self.handle(item)
                continue
            if isinstance(prepared, Outcome):
                outcomes[item.id] = prepared
            else:
                pending.append(prepared)
        pending = self._decided_again(pending, outcomes)
        if len(pending) < BATCH_FROM:
            for prepared in pending:
                outcomes[prepared.item.id] = self._send_alone(prepared)
        else:
            for prepared, outcome in self._send_jobs(jobs, pending):
                outcomes[prepared.item.id] = outcome

    def _decided_again(
        self, pending: list[_Pending], outcomes: dict[str, Outcome]
    ) -> list[_Pending]:
        """The prepared writes of tickets a quota or capacity counts, decided again now that
        the whole page is counted.

        One by one, a later ticket that moves an earlier one's place in its customer's ledger
        re-decides it (`_recheck_later`), but only one that shows results: here none of the
        page is written yet, so an earlier ticket's plan may be stale. Its facts are counted
        already: deciding again counts nothing twice.
        """
        again: list[_Pending] = []
        for prepared in pending:
            facts = prepared.outcome.facts
            contract = None if facts is None else self.rules.contracts.get(facts.contract)
            if contract is None or not contract.needs_ledger:
                again.append(prepared)
                continue
            redone = self._prepare(prepared.item)
            if isinstance(redone, Outcome):
                outcomes[prepared.item.id] = redone
            else:
                again.append(redone)
        return again

    def _send_alone(self, prepared: _Pending) -> Outcome:
        """A prepared write sent by itself, its failure taken as `handle` takes one."""
        try:
            outcome = self._send(prepared)
        except Interrupted:
            self.state.wake_at(prepared.item.id, self.clock())
            raise
        except ApiError as exc:
            return self._failed_write(prepared, exc)
        self._failing = 0
        return outcome

    def _send_jobs(self, jobs: Jobs, pending: list[_Pending]) -> list[tuple[_Pending, Outcome]]:
        """Send the writes in jobs, `JOBS_IN_FLIGHT` at most running; each one's outcome."""
        done: list[tuple[_Pending, Outcome]] = []
        in_flight: deque[tuple[str, datetime, list[_Pending]]] = deque()
        try:
            for start in range(0, len(pending), jobs.size):
                if len(in_flight) >= JOBS_IN_FLIGHT:
                    done += self._job_done(jobs, *in_flight.popleft())
                batch = pending[start : start + jobs.size]
                sent_at = self.clock()
                sent = self._queue_job(jobs, batch)
                if isinstance(sent, str):
                    in_flight.append((sent, sent_at, batch))
                else:
                    done += sent
            while in_flight:
                done += self._job_done(jobs, *in_flight.popleft())
        except Interrupted:
            # Jobs may be running: their tickets are journalled with them and queued for now.
            # The ones not sent yet are queued too (a wake-up pass has no page to take again).
            finished = {prepared.item.id for prepared, _ in done}
            for prepared in pending:
                if prepared.item.id not in finished:
                    self.state.wake_at(prepared.item.id, self.clock())
            raise
        return done

    def _queue_job(self, jobs: Jobs, batch: list[_Pending]) -> str | list[tuple[_Pending, Outcome]]:
        """Journal the batch and send its job: the job's id, or each ticket's outcome when the
        job was not taken."""
        # A process that dies with the job in flight leaves up to a hundred writes whose
        # results were not recorded, and whose tickets the job itself moved to the last
        # minute of the export, which a backfill finishing then does not read: each is queued
        # for a re-decision now, and given back its own wake-up once its result is known.
        now = self.clock()
        with self.state.transaction():
            for prepared in batch:
                self._begin(prepared, UNKNOWN_JOB)  # its id comes with the answer
                self.state.wake_at(prepared.item.id, now)
        try:
            job = jobs.send([(p.item, p.plan) for p in batch])
        except Interrupted:
            raise
        except ApiError as exc:
            if _permanent(exc):
                # Refused as a whole (one entry the helpdesk will not take, say): nothing ran;
                # each ticket is written alone, so that only what is wrong stays unwritten.
                self.log.warning("job_refused", tickets=len(batch), error=str(exc))
                alone = []
                for prepared in batch:
                    self._own_wakeup(prepared)
                    alone.append((prepared, self._send_alone(prepared)))
                return alone
            if isinstance(exc, NotAvailable) and exc.never_sent:
                return self._settle_batch(batch, [exc] * len(batch))  # nothing reached it
            # Its answer lost: it may run all the same, later. Each ticket's journal entry
            # stays, settled from its conversation before its next write, a while after.
            return self._unsettled(batch, None, exc)
        self.state.set_job([p.item.id for p in batch if p.note is not None], job)
        return job

    def _job_done(
        self, jobs: Jobs, job: str, sent_at: datetime, batch: list[_Pending]
    ) -> list[tuple[_Pending, Outcome]]:
        """Wait for a job and record each ticket's outcome."""
        tickets = [prepared.item.id for prepared in batch]
        try:
            ago = (self.clock() - sent_at).total_seconds()
            errors = jobs.results(job, tickets, sent_ago=ago)
        except Interrupted:
            raise
        except ApiError as exc:
            # Still running, its status unreadable, or unknown to the helpdesk: its writes may
            # land yet. The journal keeps them (with the job); each is settled later.
            return self._unsettled(batch, job, exc)
        return self._settle_batch(batch, errors)

    def _unsettled(
        self, batch: list[_Pending], job: str | None, exc: ApiError
    ) -> list[tuple[_Pending, Outcome]]:
        """A job whose outcome is not known yet: its tickets are decided again
        `WRITE_RETRY` later, each journal entry settled first (never settled now: a job runs
        after its request, and a conversation read now could miss a note it posts later)."""
        retry_at = self.clock() + WRITE_RETRY
        self.log.warning("job_unsettled", job=job, tickets=len(batch), error=str(exc))
        done = []
        for prepared in batch:
            self.state.wake_at(prepared.item.id, retry_at)
            problem = f"written in a job whose outcome is not known yet: {exc}"
            done.append(
                (prepared, Outcome(prepared.item.id, prepared.item.updated_at, problem=problem))
            )
        return done

    def _settle_batch(
        self, batch: list[_Pending], errors: Sequence[ApiError | None]
    ) -> list[tuple[_Pending, Outcome]]:
        """Record what a job did to each of its tickets."""
        done: list[tuple[_Pending, Outcome]] = []
        for prepared, error in zip(batch, errors, strict=True):
            self._own_wakeup(prepared)  # a retry below sets its own
            if error is None:
                self._failing = 0
                done.append((prepared, self._written(prepared)))
                continue
            if prepared.plan.note is not None:
                self._settle_after_failure(prepared.item.id, error)
            done.append((prepared, self._failed_write(prepared, error)))
        self.log.info(
            "batch_written", tickets=len(batch), failed=sum(e is not None for e in errors)
        )
        return done

    def _own_wakeup(self, prepared: _Pending) -> None:
        """Give a ticket queued for now while its job was in flight its own wake-up back."""
        decision = prepared.outcome.decision
        next_change = None if decision is None else decision.next_change_at
        self.state.wake_at(prepared.item.id, next_change)

    def _failed_write(self, prepared: _Pending, error: ApiError) -> Outcome:
        """A write of a prepared ticket that did not land, as `handle` takes one."""
        item = prepared.item
        if isinstance(error, Conflict):
            self.log.info("ticket_conflict", ticket=item.id)
            fresh = self.helpdesk.fetch([item.id])
            if not fresh:
                return Outcome(item.id, item.updated_at, problem="deleted while being written")
            return self.handle(fresh[0])
        if _permanent(error):
            self.log.error("ticket_write_failed", ticket=item.id, error=str(error))
            return Outcome(item.id, item.updated_at, problem=str(error))
        return self._defer(item, error)

    def _without_note(self, outcome: Outcome) -> bool:
        """Whether the `notes` setting leaves this ticket without its note."""
        if self.notes == "none":
            return True
        finished = outcome.facts is not None and outcome.facts.status in ("solved", "closed")
        return self.notes == "open" and finished

    # --- the ledger -----------------------------------------------------------------------

    def _forget_facts(self, ticket: str) -> None:
        """Stop counting a ticket: in the state and in the books that mirror it."""
        self.state.forget_facts(ticket)
        self.books.forget(ticket)

    def _ledger(self, contract: Contract, facts: TicketFacts) -> Ledger:
        """The ticket with the customer's earlier tickets of its periods, read for it alone
        (`explain`, which may decide facts the state does not hold)."""
        if facts.customer is None:
            return Ledger(contract, [facts])
        reach = self.rules.reach(contract)
        since = None if reach.window is None else facts.created_at - reach.window
        others = self.state.customer_tickets(
            contract.name, facts.customer, since, facts.created_at, kept=reach.kept
        )
        return Ledger(contract, [*(o for o in others if o.id != facts.id), facts])

    def _shown_later(self, contract: Contract, facts: TicketFacts) -> dict[str, str]:
        """The customer's tickets after this one (as far as its periods reach) that show
        results, with the fingerprint of what they show."""
        reach = self.rules.reach(contract)
        until = None
        if reach.window is not None and not reach.kept:
            # (A lifetime quota's change moves every later ticket of its kind.)
            until = facts.created_at + reach.window
        assert facts.customer is not None
        shown = self.state.customer_results(contract.name, facts.customer, facts.created_at, until)
        shown.pop(facts.id, None)
        return shown

    def _recheck_later(
        self,
        facts: TicketFacts,
        now: datetime,
        book: LedgerBook,
        *,
        before: Ledger,
        shown: dict[str, str],
    ) -> None:
        """Wake the customer's later tickets whose results this ticket's new facts changed.

        `before` is the book's ledger before the change, `shown` the later tickets showing
        results. Only one that the ledger now treats differently can have new results; each
        such one is decided again. (A later ticket showing nothing is decided when read.)
        """
        contract, ledger = book.contract, book.ledger()
        for ticket in book.later(facts):
            if ticket not in shown or (ticket in before and ledger.same_for(before, ticket)):
                continue
            other = self.state.facts(ticket)
            if other is None:
                continue
            decision = decide(contract, other, now, ledger)
            desired = desired_results(decision, self.rules.mapping, self.rules.owned_tags, contract)
            if results_fingerprint(desired) != shown[ticket]:
                self.log.info("ticket_requeued", ticket=ticket, because=facts.id)
                self.state.wake_at(ticket, now)

    # --- the journal ----------------------------------------------------------------------

    def _settle_after_failure(self, ticket: str, exc: ApiError) -> None:
        """After a failed note-carrying write, learn whether the note landed anyway.

        A write that surely never reached the helpdesk changed nothing. Any other failure may
        hide a success (a cut connection after the change, a retried PUT answered 409 because
        its first attempt landed): the conversation says. If it cannot be read now, the
        journal entry stays, to be settled before the ticket's next write.
        """
        unknown = self._unknown_job(ticket)  # an earlier job of ours may still run
        if isinstance(exc, NotAvailable) and exc.never_sent:
            if not unknown:
                self.state.settle_note(ticket, None)
            return
        try:
            landed = self.helpdesk.last_note_mark(ticket)
        except Interrupted:
            raise
        except ApiError as read_error:
            self.log.warning("journal_unsettled", ticket=ticket, error=str(read_error))
            return
        if unknown and (landed is None or landed == self.state.record(ticket).note):
            return  # nothing new: the entry stays until that job surely ran or a write lands
        self.state.settle_note(ticket, landed)

    def _settle_journalled(self, ticket: str) -> str | None:
        """Settle the ticket's journal entry before its next write: from the results of the
        batch job that carried it, if one did and the helpdesk still knows it (waiting for
        it to finish), else from its conversation; the fingerprint of its last note."""
        pending, jobs = self.state.pending_job(ticket), self.helpdesk.jobs
        if pending is not None and pending[0] == UNKNOWN_JOB:
            return self._settle_unknown_job(ticket)
        if pending is not None and jobs is not None:
            job, sent = pending
            error: ApiError | None
            try:
                ago = (self.clock() - sent).total_seconds()
                (error,) = jobs.results(job, [ticket], sent_ago=ago)
            except NotFound as gone:  # forgotten (kept a day): the conversation says
                error = gone
            if self._settle_from_job(ticket, job, error):
                return self.state.record(ticket).note
        # The conversation, read after the ticket this write is planned on: a job of ours
        # still to run would find the ticket changed by this write, or this write find it
        # changed by the job, the same stamp on both.
        return self._settle_pending(ticket)

    def _settle_unknown_job(self, ticket: str) -> str | None:
        """A journal entry whose batch job's id never came back: that job may still run.

        A note of ours the state does not know on the ticket is that job's (or landed
        otherwise): settled. Without one the entry stays: this write is planned on the ticket
        as just read, so if the job runs first this write is refused (the stamp moved) and the
        conversation is read again; if this write lands first the job is refused. A write of
        ours that never reaches the helpdesk leaves the entry as it is (`_settle_after_failure`).
        """
        known = self.state.record(ticket).note
        try:
            landed = self.helpdesk.last_note_mark(ticket)
        except NotFound:
            landed = None
        if landed is not None and landed != known:
            self.log.info("journal_settled", ticket=ticket, landed=landed)
            self.state.settle_note(ticket, landed)
            return landed
        return known

    def _unknown_job(self, ticket: str) -> bool:
        pending = self.state.pending_job(ticket)
        return pending is not None and pending[0] == UNKNOWN_JOB

    def _settle_from_job(self, ticket: str, job: str, error: ApiError | None) -> bool:
        """Close a journal entry whose job landed the ticket's write; False when its entry
        failed, or the job says nothing of it: then the conversation must say (a conflict
        may be an earlier write of ours, one whose job id never came back)."""
        if error is not None:
            return False
        landed = self.state.pending_note(ticket)
        self.log.info("journal_settled", ticket=ticket, job=job, landed=landed)
        self.state.settle_note(ticket, landed)
        return True

    def _may_show_our_note(self, item: Item, desired: DesiredResults) -> bool:
        """Whether a ticket unknown to the state may already show the note we would post.

        Only a ticket that carries one of our tags: both helpdesks write our tags before (or
        with) our note, so a ticket without them has none of our notes, and a first pass over
        a new account reads no conversation.
        """
        if desired.note_fingerprint is None:
            return False
        return any(tag in self.rules.owned_tags for tag in item.view.tags)

    def _settle_pending(self, ticket: str, why: str = "journal_settled") -> str | None:
        """Ask the ticket which note of ours it shows last, and record it; its fingerprint.

        For a journal entry a crash left behind, and for a ticket the state does not know.
        Raises the helpdesk's error when its conversation cannot be read: the ticket is then
        skipped this time rather than risk posting its note twice.
        """
        try:
            landed = self.helpdesk.last_note_mark(ticket)
        except NotFound:
            landed = None
        self.log.info(why, ticket=ticket, landed=landed)
        self.state.settle_note(ticket, landed)
        return self.state.record(ticket).note


def _permanent(exc: ApiError) -> bool:
    """A failure that trying the same ticket again would not cure: the helpdesk refused it.

    An answer that cannot be read (a proxy's HTML login page with status 200, a cut body) is
    not one: the write may or may not have landed, so the ticket is taken again later, its
    conversation read first, as after a 5xx.
    """
    if isinstance(exc, MalformedResponse):
        return False
    return exc.status is not None and 400 <= exc.status < 500 and exc.status not in (408, 429)
