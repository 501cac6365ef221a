"""The Freshdesk client: the sans-I/O protocol of `sansio` sent through one `HttpShell`.

Nothing here decides anything: each method builds a request, lets the shell send it (pacing,
retries and the one retry policy live there) and decodes the answer. A POST is never retried
after a 5xx by the shell, so `add_note` may raise `NotAvailable` for a note that did land: the
caller checks the ticket's conversations before posting again.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from connector.helpdesks.freshdesk import sansio
from connector.helpdesks.freshdesk.models import (
    Company,
    CompanyField,
    Note,
    Ticket,
    TicketField,
    TicketUpdate,
)
from connector.http import HttpShell, check_base_url

__all__ = ["FreshdeskClient"]


class FreshdeskClient:
    """Typed calls to one Freshdesk account (`https://{domain}.freshdesk.com` or the sandbox)."""

    def __init__(self, shell: HttpShell, base_url: str) -> None:
        self.shell = shell
        self.base_url = check_base_url(base_url, file="<freshdesk client>", key="base_url")

    def poll(self, poller: sansio.TicketPoller) -> Iterator[list[Ticket]]:
        """One list per page of tickets changed since the poller's position, none twice.

        Persist `poller.position` after handling each list to resume there after a restart.
        """
        poller.start_round()
        while (request := poller.next_request(self.base_url)) is not None:
            yield self.shell.send(request, poller.feed)

    def show(self, ticket_id: int) -> Ticket:
        """The ticket as it is now, with its stats."""
        return self.shell.send(sansio.show_request(self.base_url, ticket_id), sansio.decode_ticket)

    def update(self, ticket_id: int, update: TicketUpdate) -> Ticket:
        """Send the attributes `update` changes; returns the ticket as Freshdesk stored it.

        Run `sansio.check_due_dates` first: it drops or refuses due dates Freshdesk would refuse.
        """
        request = sansio.update_request(self.base_url, ticket_id, update)
        return self.shell.send(request, sansio.decode_ticket)

    def add_note(self, ticket_id: int, body: str) -> Note:
        """Post `body` (plain text, shown as written) as a private note."""
        request = sansio.note_request(self.base_url, ticket_id, body)
        return self.shell.send(request, sansio.decode_note)

    def private_notes(self, ticket_id: int) -> Iterator[str]:
        """The text of a ticket's private notes, oldest first, page by page."""
        page = 1
        while True:
            request = sansio.conversations_request(self.base_url, ticket_id, page)
            notes, more = self.shell.send(request, sansio.decode_private_notes)
            yield from notes
            if not more or not notes:
                return
            page += 1

    def company(self, company_id: int) -> Company:
        """One company with its custom fields."""
        request = sansio.company_request(self.base_url, company_id)
        return self.shell.send(request, sansio.decode_company)

    def companies(self) -> Iterator[Company]:
        """Every company, page after page (100 a page) while the `Link` header says more."""
        page = 1
        while True:
            request = sansio.companies_request(self.base_url, page)
            companies, more = self.shell.send(request, sansio.decode_companies)
            yield from companies
            if not more or not companies:
                return
            page += 1

    def ticket_fields(self) -> list[TicketField]:
        """The account's ticket field definitions (for `check`)."""
        request = sansio.ticket_fields_request(self.base_url)
        return self.shell.send(request, sansio.decode_ticket_fields)

    def timer_stopping_statuses(self) -> frozenset[int] | None:
        """The status ids whose SLA timer is off, from the admin field definitions (admins
        only: `AuthError` otherwise); None when the account's status field does not say."""
        fields = self.shell.send(
            sansio.admin_ticket_fields_request(self.base_url), sansio.decode_admin_ticket_fields
        )
        status = next((field for field in fields if field.name == "status"), None)
        if status is None:
            return None
        found = sansio.timer_stopping_choices(status)
        if found is None:  # the listing left the choices out: the field's own page has them
            request = sansio.admin_ticket_fields_request(self.base_url, status.id)
            found = sansio.timer_stopping_choices(
                self.shell.send(request, sansio.decode_admin_ticket_field)
            )
        return found

    def create_field(
        self, level: str, label: str, kind: str, choices: Sequence[str] = ()
    ) -> TicketField:
        """Create a custom ticket (`level` "ticket") or company ("company") field (`init
        --apply`; admins only)."""
        request = sansio.create_field_request(self.base_url, level, label, kind, choices)
        return self.shell.send(request, sansio.decode_created_field)

    def company_fields(self) -> list[CompanyField]:
        """The account's company field definitions (for `check`)."""
        request = sansio.company_fields_request(self.base_url)
        return self.shell.send(request, sansio.decode_company_fields)
