"""`Sandbox`: one in-memory helpdesk state served as a Zendesk and a Freshdesk API.

Both helpdesks hold the same logical customers and tickets (same ids). Everything that moves
time (ticket updates, rate-limit windows, OAuth expiry, the export's one-minute lag, slow
responses) reads the injectable `clock` and `sleep`; tests pass a `ManualClock` and nothing
really waits.

    sandbox = Sandbox.seeded(clock=ManualClock(datetime(2026, 3, 2, 9, tzinfo=UTC)))
    zendesk = httpx.Client(transport=sandbox.zendesk_transport(), base_url=ZENDESK_URL)
    sandbox.faults.add("rate_limited", helpdesk="zendesk", path="/api/v2/tickets/*")
    sandbox.agent_reply(1001)
    sandbox.counters.total(helpdesk="zendesk", method="PUT")
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from wsgiref.types import WSGIApplication

from connector.sandbox.faults import FaultBook
from connector.sandbox.freshdesk import FreshdeskDesk
from connector.sandbox.seed import CUSTOMERS, SeedCustomer, SeedTicket, bundled_tickets
from connector.sandbox.wsgi import Counters, SandboxTransport, wsgi_app
from connector.sandbox.zendesk import JOB_SECONDS, OAuthTokens, ZendeskDesk

if TYPE_CHECKING:
    from connector.sandbox.server import SandboxServer

__all__ = [
    "FRESHDESK_URL",
    "ZENDESK_URL",
    "ManualClock",
    "Sandbox",
    "SandboxCredentials",
]

# Base URLs for in-process clients; any host works, these read well in test failures.
ZENDESK_URL = "https://sandbox.zendesk.com"
FRESHDESK_URL = "https://sandbox.freshdesk.com"


class ManualClock:
    """A clock that moves only when told to (or when something sleeps on it)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware start instant")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> datetime:
        """Move the clock forward; returns the new now."""
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now

    def sleep(self, seconds: float) -> None:
        """What a sleeping caller sees: the clock moves on, no real time passes."""
        self.slept.append(seconds)
        self.advance(max(seconds, 0.0))


class OffsetClock:
    """Real time, moved ahead on demand (to let the sandbox's minutes pass in a demo or test)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> datetime:
        """Move the clock forward; returns the new now."""
        self.offset += timedelta(seconds=seconds)
        return self()

    def sleep(self, seconds: float) -> None:
        """A sleep that moves the clock instead of waiting."""
        self.advance(seconds)


@dataclass(frozen=True, slots=True)
class SandboxCredentials:
    """The credentials the sandbox accepts (fixed, public, sandbox-only values)."""

    zendesk_email: str = "agent@example.com"
    zendesk_api_token: str = "sandbox-zendesk-token"
    oauth_client_id: str = "sla-connector"
    oauth_client_secret: str = "sandbox-client-secret"
    access_token_ttl: int = 7200
    refresh_token_ttl: int = 30 * 86_400
    freshdesk_api_key: str = "sandbox-freshdesk-key"


class Sandbox:
    """The shared, thread-safe state of both sandbox helpdesks, and their apps."""

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], None] | None = None,
        credentials: SandboxCredentials | None = None,
        rate_limit: int | None = None,
        zendesk_rate_limit: int | None = None,
        freshdesk_rate_limit: int | None = None,
        incremental_export_limit: int | None = 10,
        advertised_limit: int = 100_000,
        fault_seed: int = 0,
        zendesk_update_limit: int | None = None,
        freshdesk_plan: str | None = None,
        zendesk_job_seconds: tuple[float, float] = JOB_SECONDS,
        fresh_account: bool = False,
    ) -> None:
        """`rate_limit` (per minute) applies to both helpdesks unless one has its own.

        Without an enforced limit the rate-limit headers still come, announcing
        `advertised_limit` so that a pacing client never holds back. The incremental export's
        own 10 a minute is on by default, as in Zendesk (None turns it off);
        `zendesk_update_limit` turns on Update Ticket's own budget (100 a minute on a real
        account), which `agent_ui_update` spends too; `freshdesk_plan` (growth, pro,
        enterprise) the plan's limits, its sub-limits included. An update_many job runs
        `zendesk_job_seconds` (before its first entry, each entry) of the sandbox clock:
        about 10 s for 100 tickets, as observed on real accounts. A `fresh_account` has
        none of the custom fields the bundled mappings read (`sla-connector init` creates
        them); its helpdesks take no tickets that would use them.
        """
        self._clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        if sleep is not None:
            self._sleep = sleep
        elif isinstance(clock, ManualClock):
            self._sleep = clock.sleep
        else:
            self._sleep = time.sleep
        self.credentials = credentials or SandboxCredentials()
        self.lock = threading.RLock()
        self.faults = FaultBook(seed=fault_seed)
        self.counters = Counters()
        creds = self.credentials
        self.zendesk = ZendeskDesk(
            self.now,
            email=creds.zendesk_email,
            api_token=creds.zendesk_api_token,
            oauth_client_id=creds.oauth_client_id,
            oauth_client_secret=creds.oauth_client_secret,
            access_token_ttl=creds.access_token_ttl,
            refresh_token_ttl=creds.refresh_token_ttl,
            rate_limit=zendesk_rate_limit or rate_limit,
            export_limit=incremental_export_limit,
            advertised_limit=advertised_limit,
            update_limit=zendesk_update_limit,
            job_seconds=zendesk_job_seconds,
            fresh_account=fresh_account,
        )
        self.freshdesk = FreshdeskDesk(
            self.now,
            api_key=creds.freshdesk_api_key,
            rate_limit=freshdesk_rate_limit or rate_limit,
            advertised_limit=advertised_limit,
            plan=freshdesk_plan,
            fresh_account=fresh_account,
        )
        self._zendesk_app = wsgi_app(self, self.zendesk)
        self._freshdesk_app = wsgi_app(self, self.freshdesk)

    def ticket_writes(self, helpdesk: str) -> int:
        """Calls that changed (or tried to change) one ticket: updates, Zendesk's
        update_many entries run so far, Freshdesk's note posts."""
        counters = self.counters
        if helpdesk == "zendesk":
            with self.lock:
                self.zendesk.run_jobs()
                entries = self.zendesk.job_entries
            single = counters.total(
                helpdesk="zendesk", method="PUT", route="/api/v2/tickets/{id}.json"
            )
            return single + entries
        return counters.total(helpdesk=helpdesk, method="PUT") + counters.total(
            helpdesk=helpdesk, method="POST", route="/api/v2/tickets/{id}/notes"
        )

    @classmethod
    def seeded(
        cls, *, anchor: datetime | None = None, extra: Iterable[SeedTicket] = (), **options: Any
    ) -> Sandbox:
        """A sandbox holding the bundled customers and tickets (plus `extra` tickets)."""
        sandbox = cls(**options)
        sandbox.seed(anchor=anchor)
        if extra:
            sandbox.seed(extra, customers=())
        return sandbox

    # --- time -----------------------------------------------------------------------------

    def now(self) -> datetime:
        """The sandbox clock (aware UTC)."""
        return self._clock().astimezone(UTC)

    def sleep(self, seconds: float) -> None:
        """Wait the way the sandbox waits (for slow responses)."""
        self._sleep(seconds)

    # --- content ----------------------------------------------------------------------------

    def seed(
        self,
        tickets: Iterable[SeedTicket] | None = None,
        *,
        customers: Iterable[SeedCustomer] | None = None,
        anchor: datetime | None = None,
        helpdesks: tuple[str, ...] = ("zendesk", "freshdesk"),
    ) -> int:
        """Add customers (default: the bundled ones) and tickets (default: the bundled ones,
        dated before `anchor`, default now) to the helpdesks named; returns the ticket count.

        `tickets` may be a generator (`generate(...)`): it is consumed once, lazily.
        """
        desks = [d for d in (self.zendesk, self.freshdesk) if d.name in helpdesks]
        with self.lock:
            for customer in CUSTOMERS if customers is None else customers:
                for desk in desks:
                    desk.add_customer(customer)
            count = 0
            source = bundled_tickets(anchor or self.now()) if tickets is None else tickets
            for ticket in source:
                for desk in desks:
                    desk.add_ticket(ticket)
                count += 1
            return count

    def _desks(self, helpdesk: str | None) -> list[ZendeskDesk | FreshdeskDesk]:
        if helpdesk not in (None, "zendesk", "freshdesk"):
            raise ValueError(f"helpdesk must be zendesk, freshdesk or None, got {helpdesk!r}")
        return [d for d in (self.zendesk, self.freshdesk) if helpdesk in (None, d.name)]

    def agent_reply(
        self, ticket_id: int, at: datetime | None = None, *, helpdesk: str | None = None
    ) -> None:
        """An agent answers publicly (Zendesk comment + metric set; Freshdesk stats)."""
        with self.lock:
            for desk in self._desks(helpdesk):
                desk.agent_reply(ticket_id, at)

    def agent_edit(self, ticket_id: int, *, helpdesk: str | None = None) -> None:
        """An agent edits the ticket in the UI: adds tag `agent_edit`, moves `updated_at`."""
        with self.lock:
            for desk in self._desks(helpdesk):
                desk.agent_edit(ticket_id)

    def set_status(
        self,
        ticket_id: int,
        status: str,
        *,
        custom: int | None = None,
        helpdesk: str | None = None,
    ) -> None:
        """An agent sets the status, in the engine's words (`open`, `pending`, `on_hold`,
        `solved`, `closed`), now. `custom`: a custom status of that category (Zendesk's
        `custom_status_id`; on Freshdesk, its status id, which replaces the built-in one)."""
        zendesk = {"on_hold": "hold"}.get(status, status)
        freshdesk = {"open": 2, "pending": 3, "solved": 4, "closed": 5}.get(status)
        with self.lock:
            for desk in self._desks(helpdesk):
                if desk is self.zendesk:
                    self.zendesk.set_status(ticket_id, zendesk, custom)
                else:
                    number = custom if custom is not None else freshdesk
                    if number is None:
                        raise ValueError(f"no built-in Freshdesk status {status!r}: give custom")
                    self.freshdesk.set_status(ticket_id, number)

    def agent_ui_update(self, ticket_id: int) -> bool:
        """A Zendesk agent saves the ticket in the UI (spends Update Ticket's budget); False:
        refused with a 429, as the agent would see it."""
        with self.lock:
            return self.zendesk.agent_ui_update(ticket_id)

    def solve(
        self, ticket_id: int, at: datetime | None = None, *, helpdesk: str | None = None
    ) -> None:
        """An agent solves (Zendesk) / resolves (Freshdesk) the ticket."""
        with self.lock:
            for desk in self._desks(helpdesk):
                desk.solve(ticket_id, at)

    def issue_oauth_tokens(self) -> OAuthTokens:
        """A Zendesk OAuth token pair, as an authorization code grant would give."""
        with self.lock:
            return self.zendesk.issue_tokens()

    def reset(self) -> None:
        """Clear faults, counters and rate-limit windows (the tickets stay as they are)."""
        with self.lock:
            self.faults.reset()
            self.counters.reset()
            self.zendesk.reset_limits()
            self.freshdesk.reset_limits()

    # --- serving ----------------------------------------------------------------------------

    def zendesk_app(self) -> WSGIApplication:
        """The Zendesk API as a WSGI application."""
        return self._zendesk_app

    def freshdesk_app(self) -> WSGIApplication:
        """The Freshdesk API as a WSGI application."""
        return self._freshdesk_app

    def zendesk_transport(self) -> SandboxTransport:
        """An in-process httpx transport to the Zendesk API."""
        return SandboxTransport(self._zendesk_app)

    def freshdesk_transport(self) -> SandboxTransport:
        """An in-process httpx transport to the Freshdesk API."""
        return SandboxTransport(self._freshdesk_app)

    def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 8765,
        *,
        helpdesks: tuple[str, ...] = ("zendesk", "freshdesk"),
    ) -> SandboxServer:
        """Bind the loopback server (both helpdesks under one port, by path prefix).

        Zendesk answers under `/zendesk`, Freshdesk under `/freshdesk`, the control API under
        `/_sandbox/`. Call `start()` (background thread) or `serve_forever()` on the result.
        """
        from connector.sandbox.server import SandboxServer

        return SandboxServer(self, host, port, helpdesks=helpdesks)
