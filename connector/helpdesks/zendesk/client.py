"""The Zendesk client: each call is one `sansio` request sent through the `HttpShell`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import TypeVar

from connector.errors import NotAvailable
from connector.helpdesks.zendesk import sansio
from connector.helpdesks.zendesk.models import (
    EventsPage,
    ExportPage,
    FieldsPage,
    JobStatus,
    Organization,
    OrganizationField,
    Ticket,
    TicketField,
    TicketPage,
    TicketUpdate,
    TicketWrite,
)
from connector.http import HttpShell, Request, Response, check_base_url

__all__ = ["ZendeskClient"]

F = TypeVar("F", TicketField, OrganizationField)


class ZendeskClient:
    """Typed calls to one Zendesk account (or the sandbox) over one `HttpShell`."""

    def __init__(
        self,
        shell: HttpShell,
        base_url: str,
        *,
        include: Sequence[str] = sansio.SIDELOADS,
        exclude_deleted: bool = True,
    ) -> None:
        self.shell = shell
        self.base_url = check_base_url(base_url, file="(zendesk client)", key="base_url")
        self.include = tuple(include)
        self.exclude_deleted = exclude_deleted

    def export(self, start_time: datetime | None = None, cursor: str | None = None) -> ExportPage:
        """One export page: from `start_time` on the first call, from `cursor` after that."""
        request = sansio.export_request(
            self.base_url,
            start_time=start_time,
            cursor=cursor,
            include=self.include,
            exclude_deleted=self.exclude_deleted,
        )
        return self.shell.send(request, sansio.decode_export)

    def iter_export(self, start_time: datetime) -> Iterator[ExportPage]:
        """Every page from `start_time` until `end_of_stream`; keep the last cursor to resume."""
        page = self.export(start_time=start_time)
        yield page
        while not page.end_of_stream:
            page = self.export(cursor=page.after_cursor)
            yield page

    def ticket_events(self, start_time: int) -> EventsPage:
        """One page of the ticket events export from `start_time` (epoch seconds)."""
        request = sansio.ticket_events_request(self.base_url, start_time)
        return self.shell.send(request, sansio.decode_ticket_events)

    def custom_statuses(self) -> dict[str, str]:
        """The account's custom statuses: id (as text) → Zendesk category."""
        request = sansio.custom_statuses_request(self.base_url)
        return self.shell.send(request, sansio.decode_custom_statuses)

    def show(self, ticket_id: int) -> TicketPage:
        """One ticket with its organization and metric set."""
        request = sansio.show_request(self.base_url, ticket_id, include=self.include)
        return self.shell.send(request, sansio.decode_tickets)

    def show_many(self, ids: Iterable[int]) -> TicketPage:
        """Up to 100 tickets with their organizations and metric sets."""
        request = sansio.show_many_request(self.base_url, ids, include=self.include)
        return self.shell.send(request, sansio.decode_tickets)

    def update(self, ticket_id: int, update: TicketUpdate, updated_stamp: datetime) -> Ticket:
        """Apply `update` unless the ticket changed since `updated_stamp` (then `Conflict`)."""
        request = sansio.update_request(self.base_url, ticket_id, update, updated_stamp)
        return self.shell.send(request, sansio.decode_ticket)

    def update_many(self, writes: Sequence[TicketWrite]) -> JobStatus:
        """Queue up to 100 guarded updates as one background job."""
        request = sansio.update_many_request(self.base_url, writes)
        return self.shell.send(request, sansio.decode_job_status)

    def job_status(self, job_id: str) -> JobStatus:
        """The job as it stands now."""
        request = sansio.job_status_request(self.base_url, job_id)
        return self.shell.send(request, sansio.decode_job_status)

    def wait_for_job(
        self,
        job_id: str,
        poll_interval: float = 2.0,
        max_polls: int = 300,
        *,
        first_wait: float = 0.0,
    ) -> JobStatus:
        """Poll the job until it finished, the first time after `first_wait` seconds (about
        as long as such a job takes); sleeps through the shell, so tests never wait."""
        if first_wait > 0:
            self.shell.sleep(first_wait)
        for _ in range(max_polls):
            job = self.job_status(job_id)
            if job.finished:
                return job
            self.shell.sleep(poll_interval)
        request = sansio.job_status_request(self.base_url, job_id)
        raise NotAvailable(  # it may finish yet: not a refusal
            f"job {job_id} still not finished after {max_polls} polls",
            method=request.method,
            url=request.url,
        )

    def private_comments(self, ticket_id: int) -> Iterator[str]:
        """The bodies of a ticket's private comments, newest first, page by page."""
        after: str | None = None
        while True:
            request = sansio.comments_request(self.base_url, ticket_id, after)
            bodies, after = self.shell.send(request, sansio.decode_comment_bodies)
            yield from bodies
            if after is None:
                return

    def organizations(self, ids: Iterable[int]) -> tuple[Organization, ...]:
        """Up to 100 organizations by id."""
        request = sansio.organizations_request(self.base_url, ids)
        return self.shell.send(request, sansio.decode_organizations)

    def ticket_fields(self) -> tuple[TicketField, ...]:
        """Every ticket field definition, following the cursor pages."""
        return self._all_fields(sansio.ticket_fields_request, sansio.decode_ticket_fields)

    def organization_fields(self) -> tuple[OrganizationField, ...]:
        """Every organization field definition, following the cursor pages."""
        return self._all_fields(
            sansio.organization_fields_request, sansio.decode_organization_fields
        )

    def create_ticket_field(
        self, kind: str, title: str, options: Sequence[tuple[str, str]] = ()
    ) -> TicketField:
        """Create a custom ticket field (`init --apply`)."""
        request = sansio.create_ticket_field_request(self.base_url, kind, title, options)
        return self.shell.send(request, sansio.decode_created_ticket_field)

    def create_organization_field(
        self, kind: str, key: str, title: str, options: Sequence[tuple[str, str]] = ()
    ) -> OrganizationField:
        """Create a custom organization field (`init --apply`)."""
        request = sansio.create_organization_field_request(self.base_url, kind, key, title, options)
        return self.shell.send(request, sansio.decode_created_organization_field)

    def _all_fields(
        self,
        build: Callable[[str, str | None], Request],
        decode: Callable[[Response], FieldsPage[F]],
    ) -> tuple[F, ...]:
        fields: list[F] = []
        after: str | None = None
        while True:
            page = self.shell.send(build(self.base_url, after), decode)
            fields.extend(page.fields)
            if page.after_cursor is None:
                return tuple(fields)
            after = page.after_cursor
