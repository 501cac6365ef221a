"""Freshdesk as the sync loop's `Helpdesk`: `updated_since` polling, updates and notes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime

from connector.errors import ApiError, Conflict, NotFound
from connector.helpdesks.adapter import Item, Page, Plan, StatusPage
from connector.helpdesks.freshdesk.client import FreshdeskClient
from connector.helpdesks.freshdesk.mapping import FreshdeskView, writes_for
from connector.helpdesks.freshdesk.models import Company, Ticket, TicketUpdate
from connector.helpdesks.freshdesk.sansio import TIMER_STOPPING_STATUSES, PollPosition, TicketPoller
from connector.helpdesks.mapping import DesiredResults, find_note_fingerprint
from connector.timeutil import format_instant

__all__ = ["FreshdeskHelpdesk"]

# How long the companies listing is trusted before a ticket of an unknown company reloads it.
COMPANIES_TTL = 300.0
# How long the account's SLA timer flags of its statuses are trusted before they are read again.
TIMER_FLAGS_TTL = 3600.0
RESOLVED_OR_CLOSED = frozenset({4, 5})
# Freshdesk has no conditional update and its PUT replaces the tags: a ticket read longer ago
# than this is read again before an update that sets tags or priority, so that an agent's edit
# made in between is seen (as a conflict: re-read, re-plan) rather than overwritten.
FRESH_FOR = 2.0


class FreshdeskHelpdesk:
    """One Freshdesk account through `FreshdeskClient`; companies are cached."""

    name = "freshdesk"
    # Its bulk update applies one change to many tickets, not a different change to each.
    jobs = None

    def __init__(
        self,
        client: FreshdeskClient,
        *,
        per_page: int = 100,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.per_page = per_page
        self._monotonic = monotonic
        self._companies: dict[int, Company | None] = {}
        self._listed_at: float | None = None
        # The statuses whose SLA timer is off, as the account says (None: not known; then the
        # built-in ones and those the mapping puts in pending), and when that was read.
        self._stopping: frozenset[int] | None = None
        self._stopping_read: float | None = None
        # What changed since an instant, listed once for the aged tickets of a page: (since,
        # when listed, ticket id → latest updated_at).
        self._recent: tuple[datetime, float, dict[int, datetime]] | None = None

    def poll(self, cursor: str | None, start: datetime) -> Iterator[Page]:
        """Pages of tickets updated since the saved position (or `start`), oldest first."""
        self._read_timer_flags()
        if cursor is not None:
            poller = TicketPoller.resume(
                PollPosition.model_validate_json(cursor), per_page=self.per_page
            )
        else:
            poller = TicketPoller(start, per_page=self.per_page)
        for tickets in self.client.poll(poller):
            ahead = frozenset(str(t.id) for t in poller.ahead)
            position = poller.position.model_dump_json()
            items = [self._item(t) for t in tickets]
            yield Page(items, position, ahead, tuple(poller.malformed))

    def fetch(self, ids: Sequence[str]) -> list[Item]:
        """The tickets as they are now, one request each (Freshdesk has no batch read)."""
        items = []
        for ticket_id in ids:
            try:
                items.append(self._item(self.client.show(int(ticket_id))))
            except NotFound:
                continue
        return items

    def _read_timer_flags(self) -> None:
        """Learn (again, once an hour) which statuses stop the SLA timer on this account.

        Freshdesk refuses due dates on those; the flags are in the admin field definitions
        only. Without an admin key, or if the read fails, the last known (or assumed) set
        stays in use and the read is tried again an hour later.
        """
        now = self._monotonic()
        if self._stopping_read is not None and now - self._stopping_read < TIMER_FLAGS_TTL:
            return
        self._stopping_read = now
        try:
            found = self.client.timer_stopping_statuses()
        except ApiError:
            return
        if found is not None:
            self._stopping = found | RESOLVED_OR_CLOSED  # a finished ticket takes no due date

    def status_changes(self, cursor: str | None, start: datetime) -> Iterator[StatusPage]:
        """Nothing: Freshdesk's API has no status stream (statuses are observed as tickets are
        read, from `stats.status_updated_at`)."""
        return iter(())

    def plan(self, item: Item, desired: DesiredResults, posted_note: str | None) -> Plan | None:
        """The update and note `writes_for` computes, with a readable line per change."""
        ticket: Ticket = item.ticket
        stopping = self._stopping
        if stopping is None:
            # Not known from the account: a custom status the mapping puts in pending is taken
            # to stop the timer, as Freshdesk's own "Waiting on Customer" does.
            waiting = {int(key) for key in desired.waiting_statuses if key.isdigit()}
            stopping = TIMER_STOPPING_STATUSES | waiting
        writes = writes_for(
            ticket, desired, posted_note=posted_note, timer_stopping_statuses=stopping
        )
        if writes.is_empty:
            return None
        summary = desired.summary[0] if desired.summary is not None else None
        changes = _describe(ticket, writes.update, summary) if writes.update is not None else ()
        if writes.note:
            changes = (*changes, "note: " + writes.note.splitlines()[0])
        return Plan(writes.update, writes.note, changes, writes.dropped)

    def apply(self, item: Item, plan: Plan) -> None:
        """The update first, then the note (a note is never sent before its fields)."""
        ticket_id = int(item.id)
        if plan.update is not None:
            self._check_unchanged(item, plan.update)
            self.client.update(ticket_id, plan.update)
        if plan.note is not None:
            self.client.add_note(ticket_id, plan.note)

    def _check_unchanged(self, item: Item, update: TicketUpdate) -> None:
        """Raise Conflict if an update touching agents' fields would overwrite a newer edit."""
        if update.tags is None and update.priority is None:
            return  # only the due dates, which are ours
        if self._monotonic() - item.read_at <= FRESH_FOR:
            return
        latest = self._changed_since(item.updated_at).get(int(item.id))
        if latest is not None and latest != item.updated_at:
            raise Conflict(
                f"ticket {item.id} changed since it was read",
                method="PUT",
                url=f"{self.client.base_url}/api/v2/tickets/{item.id}",
                status=409,
            )

    def _changed_since(self, since: datetime) -> dict[int, datetime]:
        """Every ticket changed since `since`, with its latest `updated_at`, as one listing
        (a page or two for a page of writes) instead of a read of each ticket: the tickets of
        a page still to be written when it has aged are checked against it. Kept
        `FRESH_FOR` seconds (the tolerance of a ticket read just now), for any `since` it
        covers."""
        now = self._monotonic()
        cached = self._recent
        if cached is not None and now - cached[1] <= FRESH_FOR and cached[0] <= since:
            return cached[2]
        found: dict[int, datetime] = {}
        poller = TicketPoller(since, per_page=self.per_page, include=None)
        for tickets in self.client.poll(poller):
            for ticket in tickets:
                known = found.get(ticket.id)
                if known is None or ticket.updated_at > known:
                    found[ticket.id] = ticket.updated_at
        self._recent = (since, now, found)
        return found

    def last_note_mark(self, ticket_id: str) -> str | None:
        """The latest private note carrying a note fingerprint."""
        found = None
        for body in self.client.private_notes(int(ticket_id)):
            found = find_note_fingerprint(body) or found
        return found

    def field_keys(self) -> tuple[set[str], set[str]]:
        """Ticket field names and company field names."""
        tickets = {f.name for f in self.client.ticket_fields()}
        return tickets, {f.name for f in self.client.company_fields()}

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.shell.client.close()

    def _item(self, ticket: Ticket) -> Item:
        company = None if ticket.company_id is None else self._company(ticket.company_id)
        view = FreshdeskView(ticket, company)
        return Item(str(ticket.id), ticket.updated_at, view, ticket, self._monotonic())

    def _company(self, company_id: int) -> Company | None:
        if company_id in self._companies:
            return self._companies[company_id]
        now = self._monotonic()
        if self._listed_at is None or now - self._listed_at > COMPANIES_TTL:
            self._companies = {c.id: c for c in self.client.companies()}
            self._listed_at = now
            if company_id in self._companies:
                return self._companies[company_id]
        try:
            company: Company | None = self.client.company(company_id)
        except NotFound:
            company = None
        self._companies[company_id] = company
        return company


def _describe(ticket: Ticket, update: TicketUpdate, summary: str | None = None) -> tuple[str, ...]:
    def when(value: datetime | None) -> str:
        return "none" if value is None else format_instant(value)

    lines = []
    if update.fr_due_by is not None:
        lines.append(f"fr_due_by: {when(ticket.fr_due_by)} -> {when(update.fr_due_by)}")
    if update.due_by is not None:
        lines.append(f"due_by: {when(ticket.due_by)} -> {when(update.due_by)}")
    if update.priority is not None:
        lines.append(f"priority: {ticket.priority} -> {update.priority}")
    if update.tags is not None:
        added = [t for t in update.tags if t not in ticket.tags]
        removed = [t for t in ticket.tags if t not in update.tags]
        if added:
            lines.append("tags +: " + " ".join(added))
        if removed:
            lines.append("tags -: " + " ".join(removed))
    for key, value in update.custom_fields.items():
        if key == summary:  # JSON for the apps: its size, not its text
            lines.append(f"summary: {len(str(value or ''))} characters ({key})")
            continue
        lines.append(f"{key}: {ticket.custom_fields.get(key)!r} -> {value!r}")
    return tuple(lines)
