"""What the sync loop needs from a helpdesk, whichever it is.

`connector.service.sync` is written once against `Helpdesk`; `zendesk.adapter` and
`freshdesk.adapter` fit each client to it. A `Page` carries the position to save once its
tickets are handled; `plan` is the pure minimal write; `apply` sends it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from connector.errors import ApiError
from connector.helpdesks.mapping import DesiredResults, WireView
from connector.helpdesks.wire import Malformed
from connector.sla.model import Status

__all__ = ["Helpdesk", "Item", "Jobs", "Page", "Plan", "StatusPage", "StatusSeen"]


@dataclass(frozen=True, slots=True)
class Item:
    """One ticket as read from the helpdesk, ready for `read_facts`."""

    id: str
    updated_at: datetime
    view: WireView
    ticket: Any  # the helpdesk's own wire model
    read_at: float = 0.0  # when it was read (the adapter's monotonic clock), where it matters


@dataclass(frozen=True, slots=True)
class Page:
    """Tickets of one poll page and the position that follows them.

    `ahead` names the items stamped later than the helpdesk's own clock: they are handled, but
    did not move the position (and are worth a log line: a server's clock is off).
    `malformed` are the page's tickets that did not read: reported, and the page goes on.
    """

    items: list[Item]
    cursor: str
    ahead: frozenset[str] = frozenset()
    malformed: tuple[Malformed, ...] = ()


@dataclass(frozen=True, slots=True)
class Plan:
    """The minimal write for one ticket: the helpdesk's own update and/or a note."""

    update: Any  # the helpdesk's update model, or None
    note: str | None
    changes: tuple[str, ...]  # one readable line per change, for dry runs and explain
    dropped: tuple[str, ...] = ()  # what the helpdesk would refuse and was left out


@dataclass(frozen=True, slots=True)
class StatusSeen:
    """A status change the helpdesk recorded: ticket, instant, and the status it entered.

    `key` is the helpdesk's own status (a custom status id where there is one), as the
    mapping's `facts.statuses` names it; `category` the helpdesk's own category for it, None
    when the record does not say (a custom status changed within its category).
    """

    ticket: str
    at: datetime
    key: str
    category: Status | None


@dataclass(frozen=True, slots=True)
class StatusPage:
    """Status changes of one page of a helpdesk's status stream, and the position after it."""

    changes: list[StatusSeen]
    cursor: str


class Jobs(Protocol):
    """A helpdesk's background jobs of different writes, one request for many tickets
    (Zendesk's update_many)."""

    size: int  # writes one job takes

    def send(self, writes: Sequence[tuple[Item, Plan]]) -> str:
        """Queue one job of up to `size` writes; its id. Raises when the helpdesk did not
        take it, or when its answer was lost (then it may run all the same)."""
        ...

    def results(
        self, job_id: str, tickets: Sequence[str], *, sent_ago: float = 0.0
    ) -> list[ApiError | None]:
        """Wait for the job sent `sent_ago` seconds ago to finish (about as long as such a
        job takes, and then some);
        each ticket's outcome: its error (`Conflict` when the ticket changed since it was
        read), None when its write landed. Raises `NotFound` when the helpdesk no longer
        knows the job, another `ApiError` when it still runs or its status cannot be read."""
        ...


class Helpdesk(Protocol):
    """A helpdesk account the sync loop reads and writes."""

    name: str

    @property
    def jobs(self) -> Jobs | None:
        """Batch jobs of different writes, where the helpdesk has them."""
        ...

    def poll(self, cursor: str | None, start: datetime) -> Iterator[Page]:
        """Pages of tickets changed since `cursor` (None: since `start`), to the end."""
        ...

    def fetch(self, ids: Sequence[str]) -> list[Item]:
        """The tickets as they are now (missing ones are left out)."""
        ...

    def status_changes(self, cursor: str | None, start: datetime) -> Iterator[StatusPage]:
        """Pages of status changes since `cursor` (None: since `start`), to the end; nothing
        for a helpdesk without such a stream (its statuses are observed as tickets are read)."""
        ...

    def plan(self, item: Item, desired: DesiredResults, posted_note: str | None) -> Plan | None:
        """The smallest write that makes the ticket show `desired`; None when it does."""
        ...

    def apply(self, item: Item, plan: Plan) -> None:
        """Send `plan`; raises `Conflict` when the ticket changed since it was read."""
        ...

    def last_note_mark(self, ticket_id: str) -> str | None:
        """The fingerprint of the latest sla-connector note on the ticket, if any."""
        ...

    def field_keys(self) -> tuple[set[str], set[str]]:
        """The account's ticket field keys and customer field keys (for `check`)."""
        ...

    def close(self) -> None:
        """Release the HTTP connections."""
        ...
