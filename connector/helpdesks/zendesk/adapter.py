"""Zendesk as the sync loop's `Helpdesk`: cursor export, show_many, safe updates."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime

from connector.errors import ApiError, Conflict, NotAvailable
from connector.helpdesks.adapter import Item, Page, Plan, StatusPage, StatusSeen
from connector.helpdesks.mapping import DesiredResults, find_note_fingerprint
from connector.helpdesks.zendesk.client import ZendeskClient
from connector.helpdesks.zendesk.mapping import STATUSES, ZendeskView, update_for
from connector.helpdesks.zendesk.models import (
    JobStatus,
    Ticket,
    TicketPage,
    TicketUpdate,
    TicketWrite,
)
from connector.helpdesks.zendesk.sansio import (
    MAX_IDS,
    UPDATE_MANY_PATH,
    job_seconds,
)
from connector.sla.model import Status
from connector.timeutil import format_instant, from_epoch, parse_instant, to_epoch

__all__ = ["ZendeskHelpdesk", "ZendeskJobs"]

# A saved position is either a cursor of the export or the start time of the first request.
_CURSOR = "cursor:"
_START = "start:"
# The position in the ticket events export: the start time of the next page (epoch seconds).
_EVENTS = "events:"
# Polls of a job's status after its expected run time before it is left for later.
JOB_POLLS = 30
JOB_POLL_EVERY = 2.0  # seconds between two polls of a job's status
# How often, at most, the account's custom statuses are read again for an id not known yet.
CUSTOM_STATUSES_TTL = 600.0


class ZendeskJobs:
    """update_many jobs of safe updates: each entry with its own stamp, fields, tags, priority
    and note; Zendesk reports a collision of a safe update as a failed entry."""

    size = MAX_IDS

    def __init__(self, client: ZendeskClient) -> None:
        self.client = client

    def send(self, writes: Sequence[tuple[Item, Plan]]) -> str:
        """Queue the job; its id."""
        batch = [
            TicketWrite(item.ticket.id, plan.update, item.ticket.updated_at)
            for item, plan in writes
        ]
        return self.client.update_many(batch).id

    def results(
        self, job_id: str, tickets: Sequence[str], *, sent_ago: float = 0.0
    ) -> list[ApiError | None]:
        """Each ticket's outcome once the job finished. The first poll comes when a job of its
        size is expected done, then one every `JOB_POLL_EVERY` seconds, `JOB_POLLS` at most."""
        first = max(job_seconds(len(tickets)) - sent_ago, 0.0)
        job = self.client.wait_for_job(job_id, JOB_POLL_EVERY, JOB_POLLS, first_wait=first)
        return self._outcomes(job, tickets)

    def _outcomes(self, job: JobStatus, tickets: Sequence[str]) -> list[ApiError | None]:
        method, url = "PUT", f"{self.client.base_url}{UPDATE_MANY_PATH}"
        by_id = {str(result.id): result for result in job.results if result.id is not None}
        errors: list[ApiError | None] = []
        for ticket in tickets:
            result = by_id.get(ticket)
            if result is None:
                why = f"job {job.id} ({job.status}) has no result for ticket {ticket}"
                errors.append(NotAvailable(why, method=method, url=url))
            elif result.success:
                errors.append(None)
            else:
                text = f"{result.error or 'failed'}: {result.details or ''}".strip(": ")
                conflict = "conflict" in text.lower()
                kind: type[ApiError] = Conflict if conflict else ApiError
                errors.append(
                    kind(
                        f"ticket {ticket}: {text}",
                        method=method,
                        url=url,
                        status=409 if conflict else 422,
                    )
                )
        return errors


class ZendeskHelpdesk:
    """One Zendesk account through `ZendeskClient`."""

    name = "zendesk"

    def __init__(
        self, client: ZendeskClient, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.client = client
        self.jobs = ZendeskJobs(client)
        self._monotonic = monotonic
        self._custom: dict[str, str] = {}  # custom status id → Zendesk category
        self._custom_read: float | None = None

    def poll(self, cursor: str | None, start: datetime) -> Iterator[Page]:
        """Export pages from the saved cursor (or `start`) to the end of the stream."""
        if cursor is not None and cursor.startswith(_CURSOR):
            position = cursor
            page = self.client.export(cursor=cursor.removeprefix(_CURSOR))
        else:
            if cursor is not None and cursor.startswith(_START):
                start = parse_instant(cursor.removeprefix(_START))
            position = _START + format_instant(start)
            page = self.client.export(start_time=start)
        while True:
            if page.after_cursor:
                position = _CURSOR + page.after_cursor
            yield Page(_items(page), position, malformed=page.malformed)
            if page.end_of_stream or not page.after_cursor:
                return
            page = self.client.export(cursor=page.after_cursor)

    def status_changes(self, cursor: str | None, start: datetime) -> Iterator[StatusPage]:
        """The ticket events export's status changes, page by page, from the saved position.

        Time-based: each page starts at the second the last one ended, so the audits of that
        second come again (harmless: a change already known changes nothing). A full page that
        ends where it began would repeat for ever; the next one then starts a second later.
        """
        begin = to_epoch(start)
        if cursor is not None and cursor.startswith(_EVENTS) and cursor[len(_EVENTS) :].isdigit():
            begin = int(cursor[len(_EVENTS) :])
        while True:
            page = self.client.ticket_events(begin)
            changes = [
                StatusSeen(
                    ticket=str(change.ticket_id),
                    at=from_epoch(change.at),
                    key=change.custom_status_id or change.status or "",
                    category=(
                        STATUSES.get(change.status)
                        if change.status is not None
                        else self._custom_category(change.custom_status_id)
                    ),
                )
                for change in page.changes
            ]
            end = begin if page.end_time is None else max(page.end_time, begin)
            if not page.end_of_stream and end == begin:
                end += 1
            yield StatusPage(changes, _EVENTS + str(end))
            if page.end_of_stream:
                return
            begin = end

    def _custom_category(self, custom_status_id: str | None) -> Status | None:
        """The category of a custom status, for an audit that changed only the custom status
        (within one Zendesk category, so the audit names no status). The account's list is
        read when an id is not in it, at most once every `CUSTOM_STATUSES_TTL`; None when
        it cannot be read (the change is then left to the poll's observation)."""
        if custom_status_id is None:
            return None
        if custom_status_id not in self._custom:
            now = self._monotonic()
            if self._custom_read is None or now - self._custom_read >= CUSTOM_STATUSES_TTL:
                self._custom_read = now
                try:
                    self._custom = self.client.custom_statuses()
                except ApiError:
                    return None
        category = self._custom.get(custom_status_id)
        return None if category is None else STATUSES.get(category)

    def fetch(self, ids: Sequence[str]) -> list[Item]:
        """The tickets as they are now, 100 to a request."""
        items: list[Item] = []
        numbers = [int(i) for i in ids]
        for start in range(0, len(numbers), MAX_IDS):
            items.extend(_items(self.client.show_many(numbers[start : start + MAX_IDS])))
        return items

    def plan(self, item: Item, desired: DesiredResults, posted_note: str | None) -> Plan | None:
        """The update `update_for` computes, with a readable line per change."""
        ticket: Ticket = item.ticket
        update = update_for(ticket, desired, posted_note=posted_note)
        if update is None:
            return None
        summary = desired.summary[0] if desired.summary is not None else None
        return Plan(update=update, note=update.note, changes=_describe(ticket, update, summary))

    def apply(self, item: Item, plan: Plan) -> None:
        """One safe PUT: fields, tags, priority and the note land together or not at all."""
        ticket: Ticket = item.ticket
        self.client.update(ticket.id, plan.update, ticket.updated_at)

    def last_note_mark(self, ticket_id: str) -> str | None:
        """The newest private comment carrying a note fingerprint."""
        for body in self.client.private_comments(int(ticket_id)):
            if (mark := find_note_fingerprint(body)) is not None:
                return mark
        return None

    def field_keys(self) -> tuple[set[str], set[str]]:
        """Ticket field ids (as text) and organization field keys."""
        tickets = {str(f.id) for f in self.client.ticket_fields()}
        return tickets, {f.key for f in self.client.organization_fields()}

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.shell.client.close()


def _items(page: TicketPage) -> list[Item]:
    return [
        Item(
            id=str(ticket.id),
            updated_at=ticket.updated_at,
            view=ZendeskView(ticket, page.organization_for(ticket), page.metric_set_for(ticket)),
            ticket=ticket,
        )
        for ticket in page.tickets
    ]


def _describe(ticket: Ticket, update: TicketUpdate, summary: str | None = None) -> tuple[str, ...]:
    lines = []
    for field_id, value in update.custom_fields.items():
        if str(field_id) == summary:  # JSON for the apps: its size, not its text
            lines.append(f"summary: {len(value or '')} characters (field {field_id})")
            continue
        lines.append(f"field {field_id}: {ticket.field(field_id)!r} -> {value!r}")
    if update.priority is not None:
        lines.append(f"priority: {ticket.priority!r} -> {update.priority!r}")
    if update.additional_tags:
        lines.append("tags +: " + " ".join(update.additional_tags))
    if update.remove_tags:
        lines.append("tags -: " + " ".join(update.remove_tags))
    if update.note:
        lines.append("note: " + update.note.splitlines()[0])
    return tuple(lines)
