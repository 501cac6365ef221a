"""The sandbox's Zendesk: the subset of the Ticketing API the connector uses.

Checked against the Zendesk references (developer.zendesk.com) where they say it, assumed
(and marked so) where they do not:

- Cursor incremental export `GET /api/v2/incremental/tickets/cursor[.json]` (documented):
  `start_time` on the first call only, then `cursor`; `per_page` up to 1000 (default 1000);
  compares `generated_timestamp`, not `updated_at`; leaves out the most recent minute and
  refuses a `start_time` within it; `after_url`, `after_cursor`, `before_*` null,
  `end_of_stream`; `include=` sideloads (`organizations`, `metric_sets`); 10 requests a minute
  of its own. The refusal body `{"error":"InvalidValue","description":"Too recent start_time.
  ..."}` with 422 is the one clients report (embulk-input-zendesk). The cursor is opaque
  (documented); its encoding here is ours. `after_url` keeps `per_page`/`include` (assumed).
  The endpoint's own budget header is `Zendesk-RateLimit-incremental-exports: total=10;
  remaining=9; resets=2`, as seen in client code (the reference names the user-export one
  `...-incremental-exports-cursor`).
- `PUT /api/v2/tickets/{id}.json` (documented): `custom_fields`, `priority`, `status`, `tags`
  (replaces), `additional_tags`, `remove_tags`, `comment` (`public: false` is private),
  `safe_update` + `updated_stamp` -> 409 when the stamp is not the ticket's `updated_at`
  ("a value of false has the same effect as true; omit it to force the update"). The 409 body
  `{"error":"UpdateConflict","description":"Safe Update prevented the update due to outdated
  ticket data. ..."}` is assumed (no recorded one; clients' mocks agree on it). Date fields
  take `YYYY-MM-DD` only; a bad value is a 422 `RecordInvalid` with `details.base[]` items
  `{description, error: "InvalidValue", field_key}` (shape from a recorded client test). An
  update that changes nothing does not bump `updated_at` (assumed). Dropdown (tagger) values
  show up as ticket tags and follow them (documented behaviour of tagger fields).
- `show_many` (up to 100 ids, documented), `update_many` (up to 100, answers a job status,
  documented) and `GET /api/v2/job_statuses/{id}`. A job is `queued`, then `working` (its
  entries applied one after the other, each a safe update checked when its turn comes), then
  `completed` with its results; it takes about 10 s for 100 tickets (observed); at most 30
  jobs queued or running an account (documented; the 429 `TooManyJobs` body is assumed);
  ids prefixed `V3-` (observed); a finished job's status is kept a day (documented). A job
  costs one request of the account's budget and none of Update Ticket's (assumed: the
  reference gives update_many no limit of its own, and observed answers carry no
  `tickets-update` header). Result items are as documented (`id`, `success`, `error`).
- Account rate-limit headers `X-Rate-Limit`, `X-Rate-Limit-Remaining`, `ratelimit-limit`,
  `-remaining`, `-reset` (documented); 429 with `Retry-After` (documented), body assumed.
- Auth: basic `{email}/token:{api_token}`, `Bearer` OAuth tokens, `POST /oauth/tokens` with
  `grant_type=refresh_token` returning a new access *and* refresh token and deleting the old
  ones (documented, 2025). 401 bodies `{"error":"Couldn't authenticate you"}` and
  `{"error":"invalid_token",...}` are as recorded in client issues.
- Metric sets carry `reply_time_in_minutes`, `solved_at` etc. as recorded (no
  `first_reply_at`); business minutes equal calendar minutes here (the sandbox keeps no
  schedule).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode

from connector.sandbox.seed import CATEGORIES, SEVERITIES, SeedCustomer, SeedTicket
from connector.sandbox.wsgi import (
    ApiRequest,
    ApiResponse,
    ChangeOrder,
    Handler,
    Headers,
    Match,
    Route,
    SlidingWindow,
    json_response,
)
from connector.timeutil import format_instant, parse_instant, to_epoch

__all__ = [
    "AGENT_ID",
    "ORGANIZATION_FIELDS",
    "TICKET_FIELDS",
    "ZendeskDesk",
    "ZendeskTicket",
]

AGENT_ID = 9_000_001  # the "agent" behind agent_reply / agent_edit
API_USER_ID = 9_000_002  # the connector's user (authenticated calls)
REQUESTER_BASE = 7_000_000
BRAND_ID = 360_000_001
MAX_EXPORT_PAGE = 1000
MAX_SHOW_MANY = 100
EXPORT_LAG = 60  # seconds: the export leaves out the most recent minute
PER_TICKET_UPDATES = 30  # updates of one ticket in 10 minutes
MAX_JOBS = 30  # update_many jobs queued or running at once, an account
# An update_many job's run time, as observed (zenpy's recordings, 2023): about 2 s for one
# ticket, 5 s for 50, 10 s for 100: (seconds before the first entry, seconds an entry).
JOB_SECONDS = (1.5, 0.085)
JOB_RETENTION = timedelta(days=1)  # a finished job's status is kept a day


# The account's custom statuses: id → (category, agent label); one default per category.
CUSTOM_STATUSES: dict[int, tuple[str, str]] = {
    4044390: ("new", "New"),
    4044391: ("open", "Open"),
    4044392: ("hold", "On-hold"),
    4044393: ("solved", "Solved"),
    4044396: ("pending", "Awaiting your reply"),
    4044397: ("pending", "Waiting on logs"),
}
DEFAULT_CUSTOM_STATUSES = frozenset({4044390, 4044391, 4044392, 4044393, 4044396})


@dataclass(frozen=True, slots=True)
class StatusEvent:
    """One audit that changed a ticket's status (and, with custom statuses, its specific one)."""

    id: int
    ticket_id: int
    at: int  # epoch seconds
    status: str
    previous: str
    custom_status_id: int | None = None


@dataclass(frozen=True, slots=True)
class TicketField:
    """A custom ticket field: id, type and (for taggers) the option tags it can take."""

    id: int
    type: str  # tagger, text, integer, checkbox, date
    title: str
    options: tuple[str, ...] = ()


TICKET_FIELDS: tuple[TicketField, ...] = (
    TicketField(9100001, "tagger", "SLA severity", tuple(f"severity_{s}" for s in SEVERITIES)),
    TicketField(9100002, "tagger", "Severity override",
                tuple(f"override_{s}" for s in SEVERITIES)),
    TicketField(9100003, "tagger", "Category", tuple(f"category_{c}" for c in CATEGORIES)),
    TicketField(9100004, "text", "Product"),
    TicketField(9100005, "integer", "Images"),
    TicketField(9100006, "checkbox", "Expedite"),
    TicketField(9100007, "text", "Workaround given at"),
    TicketField(9100008, "text", "Delivered at"),
    TicketField(9100101, "text", "SLA first response due (UTC)"),
    TicketField(9100102, "date", "SLA first response due"),
    TicketField(9100103, "text", "SLA resolution due (UTC)"),
    TicketField(9100104, "date", "SLA resolution due"),
    TicketField(9100105, "textarea", "SLA summary"),
)  # fmt: skip
_FIELDS = {f.id: f for f in TICKET_FIELDS}
_TAGGERS = tuple(f for f in TICKET_FIELDS if f.type == "tagger")

# (key, type, title) of the organization fields the mapping reads.
ORGANIZATION_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("sla_contract", "text", "SLA contract"),
    ("sla_plan", "text", "SLA plan"),
    ("sla_region", "text", "SLA region"),
    ("seats", "integer", "Seats"),
    ("subscription_start", "date", "Subscription start"),
    ("subscription_kind", "text", "Subscription kind"),
    ("subscription_active", "checkbox", "Subscription active"),
    ("timezone", "text", "Time zone"),
    ("offices", "text", "Offices (comma-separated)"),
)
PRIORITIES = ("low", "normal", "high", "urgent")
STATUSES = ("new", "open", "pending", "hold", "solved", "closed")
# The custom field types the create endpoints take (documented lists).
TICKET_FIELD_TYPES = frozenset(
    {"text", "textarea", "checkbox", "date", "integer", "decimal", "regexp", "tagger",
     "multiselect", "partialcreditcard", "lookup"}
)  # fmt: skip
ORGANIZATION_FIELD_TYPES = frozenset(
    {"text", "textarea", "checkbox", "date", "integer", "decimal", "regexp", "dropdown",
     "multiselect", "lookup"}
)  # fmt: skip
FIRST_CREATED_FIELD = 360_000_100_000  # ids of fields created through the API follow this

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _route(
    method: str, name: str, handler: Handler, *, ids: str = r"\d+", auth: bool = True
) -> Route:
    """A route named by its documented path; the `.json` suffix is optional, as in Zendesk."""
    pattern = re.escape(name.removesuffix(".json")).replace(r"\{id\}", f"(?P<id>{ids})")
    return Route(method, re.compile(f"^{pattern}(?:\\.json)?$"), name, handler, auth)


@dataclass(slots=True)
class Comment:
    """One ticket comment."""

    id: int
    author_id: int
    body: str
    public: bool
    created_at: datetime


@dataclass(slots=True)
class ZendeskTicket:
    """One ticket's mutable state; rendered to the wire shape on each read."""

    id: int
    subject: str
    created_at: datetime
    updated_at: datetime
    status: str
    priority: str | None
    organization_id: int | None
    requester_id: int
    tags: list[str]
    fields: dict[int, Any]
    first_reply_at: datetime | None = None
    solved_at: datetime | None = None
    replies: int = 0
    custom_status_id: int | None = None
    status_changed_at: datetime | None = None  # None: at creation (or solving)
    # None until someone comments: the description and first reply are derived on demand,
    # which keeps a 200,000-ticket load sandbox small.
    comments: list[Comment] | None = None

    @property
    def generated(self) -> int:
        """`generated_timestamp`: every change bumps it (here: with `updated_at`)."""
        return to_epoch(self.updated_at)

    def thread(self) -> list[Comment]:
        """Every comment, oldest first (materialized once)."""
        if self.comments is None:
            self.comments = [
                Comment(self.id * 1000, self.requester_id, self.subject, True, self.created_at)
            ]
            if self.first_reply_at is not None:
                body = "Thanks, we are looking into it."
                self.comments.append(
                    Comment(self.id * 1000 + 1, AGENT_ID, body, True, self.first_reply_at)
                )
        return self.comments


@dataclass
class _Job:
    """An update_many job: its entries run one after the other once it starts."""

    id: str
    entries: list[tuple[int, Mapping[str, Any]]]
    queued_at: datetime
    starts_after: float  # seconds from queued to the first entry's turn
    per_entry: float  # seconds each entry takes
    results: list[dict[str, Any]] = field(default_factory=list)
    finished_at: datetime | None = None

    @property
    def total(self) -> int:
        return len(self.entries)

    def entry_due(self, index: int) -> datetime:
        """When entry `index` (from 0) is applied."""
        return self.queued_at + timedelta(seconds=self.starts_after + self.per_entry * (index + 1))

    @property
    def status(self) -> str:
        if self.finished_at is not None:
            return "completed"
        return "working" if self.results else "queued"


@dataclass
class _Tokens:
    access: dict[str, datetime] = field(default_factory=dict)
    refresh: dict[str, datetime] = field(default_factory=dict)
    issued: int = 0


@dataclass(frozen=True, slots=True)
class OAuthTokens:
    """A pair of OAuth tokens as the sandbox issued them."""

    access_token: str
    refresh_token: str
    expires_in: int
    refresh_token_expires_in: int


class ZendeskDesk:
    """The Zendesk side of the sandbox: state, routes and the rules of each endpoint."""

    name = "zendesk"

    def __init__(
        self,
        clock: Any,
        *,
        email: str,
        api_token: str,
        oauth_client_id: str,
        oauth_client_secret: str,
        access_token_ttl: int,
        refresh_token_ttl: int,
        rate_limit: int | None,
        export_limit: int | None,
        advertised_limit: int,
        update_limit: int | None = None,
        job_seconds: tuple[float, float] = JOB_SECONDS,
        fresh_account: bool = False,
    ) -> None:
        self._clock = clock
        # The custom fields the account has: the bundled mapping's, or none on a fresh
        # account (where `sla-connector init` creates them through the API).
        self.ticket_fields: list[TicketField] = [] if fresh_account else list(TICKET_FIELDS)
        self.organization_fields: list[tuple[str, str, str]] = (
            [] if fresh_account else list(ORGANIZATION_FIELDS)
        )
        self.field_options: dict[str, tuple[tuple[str, str], ...]] = {}  # org key → options
        # How long an update_many job takes: (before its first entry, each entry).
        self.job_seconds = job_seconds
        self.email = email
        self.api_token = api_token
        self.oauth_client_id = oauth_client_id
        self.oauth_client_secret = oauth_client_secret
        self.access_token_ttl = access_token_ttl
        self.refresh_token_ttl = refresh_token_ttl
        self.tickets: dict[int, ZendeskTicket] = {}
        self.organizations: dict[int, SeedCustomer] = {}
        self._changes = ChangeOrder()
        # The status changes made after seeding, oldest first, for the ticket events export
        # (seeded tickets have none: their history starts where the connector first sees them).
        self.status_events: list[StatusEvent] = []
        self.events_rate = SlidingWindow(export_limit) if export_limit else None
        # Update Ticket's own budget (100 a minute an account), spent by the API's PUTs and by
        # the agents' saves in the UI alike; what the agents were refused is counted.
        self.update_rate = SlidingWindow(update_limit) if update_limit else None
        self.agent_updates = 0
        self.agent_429s = 0
        # 30 updates of one ticket in 10 minutes, the API's and the agents' alike.
        self._per_ticket: dict[int, SlidingWindow] = {}
        self._jobs: dict[str, _Job] = {}
        self._job_count = 0
        self.job_entries = 0  # update_many entries run (each a ticket's update, as a PUT is)
        self.last_entry_at: datetime | None = None  # when the last entry that landed ran
        self._tokens = _Tokens()
        self.rate = SlidingWindow(rate_limit) if rate_limit else None
        self.export_rate = SlidingWindow(export_limit) if export_limit else None
        self.advertised_limit = advertised_limit
        self.routes = (
            _route("GET", "/api/v2/incremental/tickets/cursor.json", self._export),
            _route("GET", "/api/v2/incremental/ticket_events.json", self._ticket_events),
            _route("GET", "/api/v2/custom_statuses.json", self._custom_statuses),
            _route("GET", "/api/v2/tickets/show_many.json", self._show_many),
            _route("PUT", "/api/v2/tickets/update_many.json", self._update_many),
            _route("GET", "/api/v2/tickets/{id}.json", self._show),
            _route("PUT", "/api/v2/tickets/{id}.json", self._update),
            _route("GET", "/api/v2/tickets/{id}/comments.json", self._comments),
            _route("GET", "/api/v2/job_statuses/{id}.json", self._job_status, ids="[A-Za-z0-9-]+"),
            _route("GET", "/api/v2/organizations/show_many.json", self._organizations),
            _route("GET", "/api/v2/ticket_fields.json", self._ticket_fields),
            _route("POST", "/api/v2/ticket_fields.json", self._create_ticket_field),
            _route("GET", "/api/v2/organization_fields.json", self._organization_fields),
            _route("POST", "/api/v2/organization_fields.json", self._create_organization_field),
            _route("POST", "/oauth/tokens", self._oauth_tokens, auth=False),
        )

    # --- seeding and agent actions --------------------------------------------------------

    def now(self) -> datetime:
        """The sandbox clock, to the second."""
        now: datetime = self._clock()
        return now.astimezone(UTC).replace(microsecond=0)

    def add_customer(self, customer: SeedCustomer) -> None:
        """Create (or replace) the organization."""
        self.organizations[customer.id] = customer

    def add_ticket(self, seed: SeedTicket) -> None:
        """Create (or replace) the ticket as the seed describes it."""
        fields: dict[int, Any] = {}
        if seed.severity:
            fields[9100001] = f"severity_{seed.severity}"
        if seed.severity_override:
            fields[9100002] = f"override_{seed.severity_override}"
        if seed.category:
            fields[9100003] = f"category_{seed.category}"
        if seed.product:
            fields[9100004] = seed.product
        if seed.images is not None:
            fields[9100005] = str(seed.images)
        if seed.expedite is not None:
            fields[9100006] = seed.expedite
        if seed.workaround_at:
            fields[9100007] = format_instant(seed.workaround_at)
        if seed.delivered_at:
            fields[9100008] = format_instant(seed.delivered_at)
        tags = [*seed.tags, *(v for k, v in fields.items() if _FIELDS[k].type == "tagger")]
        updated = max(d for d in (seed.created_at, seed.first_reply_at, seed.solved_at) if d)
        ticket = ZendeskTicket(
            id=seed.id,
            subject=seed.subject,
            created_at=seed.created_at,
            updated_at=updated,
            status=seed.status,
            priority=seed.priority,
            organization_id=seed.customer_id,
            requester_id=REQUESTER_BASE + seed.id,
            tags=tags,
            fields=fields,
            first_reply_at=seed.first_reply_at,
            solved_at=seed.solved_at,
            replies=1 if seed.first_reply_at else 0,
        )
        if seed.id in self.tickets:
            self._changes.discard(self.tickets[seed.id])
        self.tickets[seed.id] = ticket
        self._changes.add(ticket)

    def _touch(self, ticket: ZendeskTicket, *, strictly_later: bool = False) -> None:
        """Record a change: `updated_at` moves to now."""
        self._changes.touch(ticket, self.now(), strictly_later=strictly_later)

    def agent_reply(self, ticket_id: int, at: datetime | None = None) -> None:
        """A public agent comment; the metric set's reply time counts from the first one."""
        ticket = self.tickets[ticket_id]
        when = (at or self.now()).astimezone(UTC).replace(microsecond=0)
        thread = ticket.thread()
        body = "Here is an update on your request."
        thread.append(Comment(ticket.id * 1000 + len(thread), AGENT_ID, body, True, when))
        ticket.replies += 1
        if ticket.first_reply_at is None:
            ticket.first_reply_at = when
        if ticket.status == "new":
            ticket.status = "open"
        self._touch(ticket)

    def agent_edit(self, ticket_id: int) -> None:
        """An agent adds the tag `agent_edit` in the UI: `updated_at` moves on."""
        ticket = self.tickets.get(ticket_id)
        if ticket is None:
            return
        if "agent_edit" not in ticket.tags:
            ticket.tags.append("agent_edit")
        self._touch(ticket, strictly_later=True)

    def solve(self, ticket_id: int, at: datetime | None = None) -> None:
        """An agent solves the ticket."""
        ticket = self.tickets[ticket_id]
        ticket.status = "solved"
        ticket.solved_at = (at or self.now()).astimezone(UTC).replace(microsecond=0)
        self._status_changed(ticket, "solved", None, ticket.solved_at)
        self._touch(ticket)

    def set_status(self, ticket_id: int, status: str, custom_status_id: int | None = None) -> None:
        """An agent sets the status (`hold` for on-hold) and, with custom statuses, the
        specific one: the metric set's `status_updated_at` moves to now."""
        if status not in STATUSES:
            raise ValueError(f"not a Zendesk status: {status!r}")
        category = CUSTOM_STATUSES.get(custom_status_id or 0, (status, ""))[0]
        if category != status:
            raise ValueError(f"custom status {custom_status_id} is not one of {status!r}")
        ticket = self.tickets[ticket_id]
        self._status_changed(ticket, status, custom_status_id, self.now())
        self._touch(ticket, strictly_later=True)

    def _status_changed(
        self, ticket: ZendeskTicket, status: str, custom_status_id: int | None, at: datetime
    ) -> None:
        when = at.astimezone(UTC).replace(microsecond=0)
        self.status_events.append(
            StatusEvent(
                id=9_300_000_000 + len(self.status_events),
                ticket_id=ticket.id,
                at=to_epoch(when),
                status=status,
                previous=ticket.status,
                custom_status_id=custom_status_id,
            )
        )
        ticket.status, ticket.custom_status_id, ticket.status_changed_at = (
            status,
            custom_status_id,
            when,
        )

    @property
    def tokens_issued(self) -> int:
        """How many OAuth token pairs were issued (grants and refreshes)."""
        return self._tokens.issued

    def issue_tokens(self) -> OAuthTokens:
        """A fresh OAuth token pair, as after an authorization code grant."""
        tokens = self._tokens
        tokens.issued += 1
        access = f"sandbox-access-{tokens.issued}"
        refresh = f"sandbox-refresh-{tokens.issued}"
        now = self.now()
        tokens.access[access] = now + timedelta(seconds=self.access_token_ttl)
        tokens.refresh[refresh] = now + timedelta(seconds=self.refresh_token_ttl)
        return OAuthTokens(access, refresh, self.access_token_ttl, self.refresh_token_ttl)

    def reset_limits(self) -> None:
        """Forget the rate-limit windows."""
        for window in (self.rate, self.export_rate):
            if window is not None:
                window.reset()

    # --- the Desk protocol ----------------------------------------------------------------

    def match(self, method: str, path: str) -> Match | None:
        """The route for this call, or None."""
        for route in self.routes:
            if route.method == method and (found := route.pattern.match(path)):
                return Match(route, found.groupdict())
        return None

    def authenticate(self, request: ApiRequest) -> ApiResponse | None:
        """Basic `email/token:api_token` or a live Bearer token; else Zendesk's 401."""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            expires = self._tokens.access.get(value.strip())
            if expires is not None and expires > self.now():
                return None
            return json_response(
                401,
                {
                    "error": "invalid_token",
                    "error_description": "The access token provided is expired, revoked, "
                    "malformed or invalid for other reasons.",
                },
                [("WWW-Authenticate", 'Bearer realm="Doorkeeper", error="invalid_token"')],
            )
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user = password = ""
            if user == f"{self.email}/token" and password == self.api_token:
                return None
        return json_response(
            401,
            {"error": "Couldn't authenticate you"},
            [("WWW-Authenticate", 'Basic realm="Web Password"')],
        )

    def not_found(self) -> ApiResponse:
        """Zendesk's answer for a path it does not serve."""
        return json_response(404, {"error": "InvalidEndpoint", "description": "Not found"})

    def rate_limited(self, retry_after: str | None) -> ApiResponse:
        """A 429; the plain-text body is assumed (clients report non-JSON 429 bodies)."""
        headers = [("Retry-After", retry_after)] if retry_after is not None else []
        body = b"Number of allowed API requests per minute exceeded"
        return ApiResponse(429, body, headers, content_type="text/plain; charset=utf-8")

    def admit(self, request: ApiRequest, match: Match) -> tuple[ApiResponse | None, Headers]:
        """Spend the account budget (and the export's own); say what is left."""
        self.run_jobs()
        now = self.now()
        headers: Headers = []
        if match.route.name == "/oauth/tokens":
            return None, headers
        refused: ApiResponse | None = None
        if self.rate is not None and not self.rate.admit(now):
            refused = self.rate_limited(str(self.rate.resets_in(now)))
        if self.rate is not None:
            limit, remaining, reset = (
                self.rate.limit,
                self.rate.remaining(now),
                self.rate.resets_in(now),
            )
        else:
            limit, remaining, reset = self.advertised_limit, self.advertised_limit, 60
        headers += [
            ("X-Rate-Limit", str(limit)),
            ("X-Rate-Limit-Remaining", str(remaining)),
            ("ratelimit-limit", str(limit)),
            ("ratelimit-remaining", str(remaining)),
            ("ratelimit-reset", str(reset)),
        ]
        windows: list[tuple[str, SlidingWindow]] = []
        name = match.route.name
        export = self.events_rate if name.endswith("/ticket_events.json") else self.export_rate
        if name.startswith("/api/v2/incremental/") and export is not None:
            windows.append(("Zendesk-RateLimit-incremental-exports", export))
        if name == "/api/v2/tickets/{id}.json" and request.method == "PUT":
            ticket = self._ticket_window(int(match.params["id"]))
            windows.append(("zendesk-ratelimit-per-ticket-updates", ticket))
            if self.update_rate is not None:
                windows.append(("Zendesk-RateLimit-tickets-update", self.update_rate))
        for header, window in windows:  # each endpoint's own budget, with its header
            if refused is None and not window.admit(now):
                refused = self.rate_limited(str(window.resets_in(now)))
            budget = f"total={window.limit}; remaining={window.remaining(now)}"
            headers.append((header, f"{budget}; resets={window.resets_in(now)}"))
        return refused, headers

    def agent_ui_update(self, ticket_id: int) -> bool:
        """An agent saves the ticket in the Zendesk UI: it spends the Update Ticket budget
        (not the API's); False when the budget is spent (the agent sees the 429)."""
        self.run_jobs()
        self.agent_updates += 1
        now = self.now()
        if self.update_rate is not None and not self.update_rate.admit(now):
            self.agent_429s += 1
            return False
        if not self._ticket_window(ticket_id).admit(now):
            self.agent_429s += 1
            return False
        self.agent_edit(ticket_id)
        return True

    def _ticket_window(self, ticket_id: int) -> SlidingWindow:
        window = self._per_ticket.get(ticket_id)
        if window is None:
            window = self._per_ticket[ticket_id] = SlidingWindow(PER_TICKET_UPDATES, 600.0)
        return window

    # --- rendering --------------------------------------------------------------------------

    def render_ticket(self, ticket: ZendeskTicket, base: str) -> dict[str, Any]:
        """The ticket in Zendesk's JSON shape."""
        custom = [
            {"id": f.id, "value": ticket.fields.get(f.id, False if f.type == "checkbox" else None)}
            for f in TICKET_FIELDS
        ]
        return {
            "url": f"{base}/api/v2/tickets/{ticket.id}.json",
            "id": ticket.id,
            "external_id": None,
            "via": {"channel": "web", "source": {"from": {}, "to": {}, "rel": None}},
            "created_at": format_instant(ticket.created_at),
            "updated_at": format_instant(ticket.updated_at),
            "generated_timestamp": ticket.generated,
            "type": None,
            "subject": ticket.subject,
            "raw_subject": ticket.subject,
            "description": ticket.subject,
            "priority": ticket.priority,
            "status": ticket.status,
            "recipient": None,
            "requester_id": ticket.requester_id,
            "submitter_id": ticket.requester_id,
            "assignee_id": None,
            "organization_id": ticket.organization_id,
            "group_id": None,
            "collaborator_ids": [],
            "follower_ids": [],
            "email_cc_ids": [],
            "forum_topic_id": None,
            "problem_id": None,
            "has_incidents": False,
            "is_public": True,
            "due_at": None,
            "tags": list(ticket.tags),
            "custom_fields": custom,
            "satisfaction_rating": None,
            "sharing_agreement_ids": [],
            "custom_status_id": ticket.custom_status_id,
            "fields": custom,
            "followup_ids": [],
            "brand_id": BRAND_ID,
            "allow_channelback": False,
            "allow_attachments": True,
            "from_messaging_channel": False,
        }

    def render_metric_set(self, ticket: ZendeskTicket, base: str) -> dict[str, Any]:
        """The ticket's metric set as the `metric_sets` sideload carries it."""

        def minutes(since: datetime, until: datetime | None) -> dict[str, int | None]:
            value = None if until is None else int((until - since).total_seconds() // 60)
            return {"calendar": value, "business": value}

        thread_end = ticket.solved_at or ticket.first_reply_at or ticket.created_at
        latest = ticket.comments[-1].created_at if ticket.comments else thread_end
        return {
            "url": f"{base}/api/v2/ticket_metrics/{ticket.id}.json",
            "id": ticket.id,
            "ticket_id": ticket.id,
            "created_at": format_instant(ticket.created_at),
            "updated_at": format_instant(ticket.updated_at),
            "group_stations": 1,
            "assignee_stations": 1,
            "reopens": 0,
            "replies": ticket.replies,
            "assignee_updated_at": None,
            "requester_updated_at": format_instant(ticket.created_at),
            "status_updated_at": format_instant(
                ticket.status_changed_at or ticket.solved_at or ticket.created_at
            ),
            "initially_assigned_at": None,
            "assigned_at": None,
            "solved_at": format_instant(ticket.solved_at) if ticket.solved_at else None,
            "latest_comment_added_at": format_instant(latest),
            "reply_time_in_minutes": minutes(ticket.created_at, ticket.first_reply_at),
            "first_resolution_time_in_minutes": minutes(ticket.created_at, ticket.solved_at),
            "full_resolution_time_in_minutes": minutes(ticket.created_at, ticket.solved_at),
            "agent_wait_time_in_minutes": {"calendar": None, "business": None},
            "requester_wait_time_in_minutes": {"calendar": None, "business": None},
            "on_hold_time_in_minutes": {"calendar": 0, "business": 0},
        }

    def render_organization(self, org: SeedCustomer, base: str) -> dict[str, Any]:
        """The organization in Zendesk's JSON shape, with the mapping's field keys."""
        values: dict[str, Any] = {
            "sla_contract": org.contract,
            "sla_plan": org.plan,
            "sla_region": org.region,
            "seats": org.seats,
            # Decided: dates as YYYY-MM-DD, as the mapping reads them.
            "subscription_start": org.subscription_start.isoformat()
            if org.subscription_start
            else None,
            "subscription_kind": org.subscription_kind,
            "subscription_active": org.active,
            "timezone": org.timezone,
            "offices": ",".join(org.offices) or None,
        }
        return {
            "url": f"{base}/api/v2/organizations/{org.id}.json",
            "id": org.id,
            "name": org.name,
            "shared_tickets": False,
            "shared_comments": False,
            "external_id": None,
            "created_at": "2024-01-15T09:00:00Z",
            "updated_at": "2024-01-15T09:00:00Z",
            "domain_names": [org.domain],
            "details": "",
            "notes": "",
            "group_id": None,
            "tags": [],
            "organization_fields": values,
        }

    # --- handlers ---------------------------------------------------------------------------

    def _not_found_record(self) -> ApiResponse:
        return json_response(404, {"error": "RecordNotFound", "description": "Not found"})

    @staticmethod
    def _invalid(description: str, status: int = 400) -> ApiResponse:
        return json_response(status, {"error": "InvalidValue", "description": description})

    def _export(self, request: ApiRequest, _: dict[str, str]) -> ApiResponse:
        now = self.now()
        cutoff = to_epoch(now) - EXPORT_LAG
        per_page_raw = request.arg("per_page")
        per_page = MAX_EXPORT_PAGE
        if per_page_raw:
            if not per_page_raw.isdigit() or int(per_page_raw) < 1:
                return self._invalid("per_page must be a positive integer")
            per_page = min(int(per_page_raw), MAX_EXPORT_PAGE)
        cursor, start = request.arg("cursor"), request.arg("start_time")
        if cursor:
            position = _decode_cursor(cursor)
            if position is None:
                return self._invalid("Invalid cursor")
        elif start is not None:
            if not start.lstrip("-").isdigit():
                return self._invalid("start_time must be a Unix epoch time")
            if int(start) > cutoff:
                return json_response(
                    422,
                    {
                        "error": "InvalidValue",
                        "description": "Too recent start_time. "
                        "Use a start_time older than 1 minute",
                    },
                )
            position = (int(start), -1)
        else:
            return self._invalid("start_time or cursor is required")
        at = bisect.bisect_right(self._changes.keys, position)
        page = [key for key in self._changes.keys[at : at + per_page + 1] if key[0] <= cutoff]
        end_of_stream = len(page) <= per_page
        page = page[:per_page]
        after = page[-1] if page else position
        tickets = [self.tickets[ticket_id] for _, ticket_id in page]
        after_cursor = _encode_cursor(after)
        extra = {k: v[0] for k, v in request.query.items() if k in ("per_page", "include")}
        after_url = f"{request.base_url}/api/v2/incremental/tickets/cursor.json?" + urlencode(
            {"cursor": after_cursor, **extra}
        )
        body: dict[str, Any] = {
            "tickets": [self.render_ticket(t, request.base_url) for t in tickets],
            "after_url": after_url,
            "after_cursor": after_cursor,
            "before_url": None,
            "before_cursor": None,
            "end_of_stream": end_of_stream,
        }
        self._sideload(body, tickets, request)
        return json_response(200, body)

    def _ticket_events(self, request: ApiRequest, _: dict[str, str]) -> ApiResponse:
        """The time-based ticket events export: the audits from `start_time` on (those of
        the last minute left out), up to `per_page` (1000) a page; the next page starts at
        the page's `end_time`, so audits of that second come again (told apart by id)."""
        cutoff = to_epoch(self.now()) - EXPORT_LAG
        start = request.arg("start_time")
        if start is None or not start.lstrip("-").isdigit():
            return self._invalid("start_time must be a Unix epoch time")
        if int(start) > cutoff:
            return self._invalid("Too recent start_time. Use a start_time older than 1 minute", 422)
        per_page = MAX_EXPORT_PAGE
        raw = request.arg("per_page")
        if raw:
            if not raw.isdigit() or int(raw) < 1:
                return self._invalid("per_page must be a positive integer")
            per_page = min(int(raw), MAX_EXPORT_PAGE)
        times = [event.at for event in self.status_events]
        first = bisect.bisect_left(times, int(start))
        page = [e for e in self.status_events[first : first + per_page] if e.at <= cutoff]
        # Audits of one second are never split across pages (Zendesk lets such a page run over).
        while page and first + len(page) < len(times):
            following = self.status_events[first + len(page)]
            if following.at != page[-1].at or following.at > cutoff:
                break
            page.append(following)
        end_time = page[-1].at if page else int(start)
        end_of_stream = len(page) < per_page
        next_page = f"{request.base_url}/api/v2/incremental/ticket_events.json?" + urlencode(
            {"start_time": end_time, **({"per_page": raw} if raw else {})}
        )
        body = {
            "ticket_events": [self._render_event(event) for event in page],
            "next_page": None if end_of_stream else next_page,
            "count": len(page),
            "end_time": end_time,
            "end_of_stream": end_of_stream,
        }
        return json_response(200, body)

    def _custom_statuses(self, request: ApiRequest, _: dict[str, str]) -> ApiResponse:
        body = [
            {
                "id": number,
                "status_category": category,
                "agent_label": label,
                "end_user_label": label,
                "active": True,
                "default": number in DEFAULT_CUSTOM_STATUSES,
            }
            for number, (category, label) in sorted(CUSTOM_STATUSES.items())
        ]
        return json_response(200, {"custom_statuses": body})

    @staticmethod
    def _render_event(event: StatusEvent) -> dict[str, Any]:
        # A change between two custom statuses of one category names no status: only the
        # custom status id changes.
        children: list[dict[str, Any]] = []
        if event.status != event.previous:
            children.append(
                {
                    "id": event.id * 10 + 1,
                    "via": "Web form",
                    "via_reference_id": None,
                    "status": event.status,
                    "event_type": "Change",
                    "previous_value": event.previous,
                }
            )
        if event.custom_status_id is not None:
            children.append(
                {
                    "id": event.id * 10 + 2,
                    "via": "Web form",
                    "via_reference_id": None,
                    "custom_status_id": event.custom_status_id,
                    "event_type": "Change",
                    "previous_value": None,
                }
            )
        when = datetime.fromtimestamp(event.at, UTC)
        return {
            "id": event.id,
            "ticket_id": event.ticket_id,
            "timestamp": event.at,
            "created_at": format_instant(when),
            "updater_id": AGENT_ID,
            "via": "Web form",
            "system": {"client": "sandbox", "location": None},
            "event_type": "Audit",
            "child_events": children,
        }

    def _sideload(
        self, body: dict[str, Any], tickets: list[ZendeskTicket], request: ApiRequest
    ) -> None:
        includes = {part.strip() for part in (request.arg("include") or "").split(",")}
        base = request.base_url
        if "organizations" in includes:
            ids = sorted({t.organization_id for t in tickets if t.organization_id is not None})
            body["organizations"] = [
                self.render_organization(self.organizations[i], base)
                for i in ids
                if i in self.organizations
            ]
        if "metric_sets" in includes:
            metric_sets = [self.render_metric_set(t, base) for t in tickets]
            for rendered, metric_set in zip(body["tickets"], metric_sets, strict=True):
                rendered["metric_set"] = metric_set
            body["metric_sets"] = metric_sets

    def _ids(self, request: ApiRequest) -> list[int] | ApiResponse:
        raw = request.arg("ids") or ""
        parts = [p.strip() for p in raw.split(",") if p.strip()]
        if not parts or not all(p.isdigit() for p in parts):
            return self._invalid("ids must be a comma-separated list of ids")
        if len(parts) > MAX_SHOW_MANY:
            return self._invalid(f"Too many ids (at most {MAX_SHOW_MANY})")
        return [int(p) for p in parts]

    def _show_many(self, request: ApiRequest, _: dict[str, str]) -> ApiResponse:
        ids = self._ids(request)
        if isinstance(ids, ApiResponse):
            return ids
        tickets = [self.tickets[i] for i in ids if i in self.tickets]
        body: dict[str, Any] = {
            "tickets": [self.render_ticket(t, request.base_url) for t in tickets]
        }
        self._sideload(body, tickets, request)
        return json_response(200, body)

    def _show(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        ticket = self.tickets.get(int(params["id"]))
        if ticket is None:
            return self._not_found_record()
        body: dict[str, Any] = {"ticket": self.render_ticket(ticket, request.base_url)}
        return json_response(200, body)

    def _comments(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        ticket = self.tickets.get(int(params["id"]))
        if ticket is None:
            return self._not_found_record()
        comments = [
            {
                "id": c.id,
                "type": "Comment",
                "author_id": c.author_id,
                "body": c.body,
                "html_body": f'<div class="zd-comment"><p>{c.body}</p></div>',
                "plain_body": c.body,
                "public": c.public,
                "attachments": [],
                "audit_id": c.id,
                "via": {"channel": "api" if c.author_id == API_USER_ID else "web"},
                "created_at": format_instant(c.created_at),
            }
            for c in ticket.thread()
        ]
        if request.arg("sort_order") == "desc":  # oldest first by default (documented)
            comments.reverse()
        body = {"comments": comments, "next_page": None, "previous_page": None}
        return json_response(200, {**body, "count": len(comments)})

    def _update(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        ticket = self.tickets.get(int(params["id"]))
        if ticket is None:
            return self._not_found_record()
        payload = request.json().get("ticket")
        if not isinstance(payload, dict):
            return json_response(
                400,
                {
                    "error": "ParameterMissing",
                    "description": "param is missing or the value is empty: ticket",
                },
            )
        outcome = self._apply(ticket, payload)
        if isinstance(outcome, ApiResponse):
            return outcome
        audit = {
            "id": to_epoch(ticket.updated_at) * 10,
            "ticket_id": ticket.id,
            "created_at": format_instant(ticket.updated_at),
            "author_id": API_USER_ID,
            "metadata": {"system": {}, "custom": {}},
            "events": outcome,
            "via": {"channel": "api", "source": {"from": {}, "to": {}, "rel": None}},
        }
        return json_response(
            200, {"ticket": self.render_ticket(ticket, request.base_url), "audit": audit}
        )

    def _apply(
        self, ticket: ZendeskTicket, payload: Mapping[str, Any]
    ) -> list[dict[str, Any]] | ApiResponse:
        """Apply one ticket update; the audit events, or the 409/422 refusing it."""
        if (conflict := _stale(ticket, payload)) is not None:
            return conflict
        if ticket.status == "closed":
            return _record_invalid({"status": [{"description": "closed prevents ticket update"}]})
        fields, problems = _validated_fields(ticket.fields, payload.get("custom_fields"))
        priority = payload.get("priority", ticket.priority)
        if priority is not None and priority not in PRIORITIES:
            problems.append({"description": "Priority: is invalid", "error": "InvalidValue"})
        status = payload.get("status", ticket.status)
        if status not in STATUSES:
            problems.append({"description": "Status: is invalid", "error": "InvalidValue"})
        comment = payload.get("comment")
        if comment is not None and not (
            isinstance(comment, dict) and (comment.get("body") or comment.get("html_body"))
        ):
            problems.append({"description": "Comment: cannot be blank", "error": "BlankValue"})
        if problems:
            return _record_invalid({"base": problems})
        tags = _new_tags(_sync_tags(ticket.tags, ticket.fields, fields), payload)
        fields = _sync_fields(tags, fields)
        events = _changes(ticket, fields, tags, priority, status)
        if comment is not None:
            body = str(comment.get("body") or comment.get("html_body"))
            public = bool(comment.get("public", True))
            thread = ticket.thread()
            comment_id = ticket.id * 1000 + len(thread)
            thread.append(Comment(comment_id, API_USER_ID, body, public, self.now()))
            events.append({"type": "Comment", "body": body, "public": public})
        if not events:
            return events
        ticket.fields, ticket.tags, ticket.priority = fields, tags, priority
        if status != ticket.status:
            self._status_changed(ticket, status, None, self.now())
            if status == "solved" and ticket.solved_at is None:
                ticket.solved_at = self.now()
        self._touch(ticket)
        return events

    def _update_many(self, request: ApiRequest, _: dict[str, str]) -> ApiResponse:
        payload = request.json()
        updates: list[tuple[int, Mapping[str, Any]]]
        if isinstance(payload.get("tickets"), list):
            updates = [
                (int(item["id"]), item)
                for item in payload["tickets"]
                if isinstance(item, dict) and str(item.get("id", "")).isdigit()
            ]
        elif isinstance(payload.get("ticket"), dict):
            ids = self._ids(request)
            if isinstance(ids, ApiResponse):
                return ids
            updates = [(i, payload["ticket"]) for i in ids]
        else:
            return self._invalid("tickets or ticket (with ids) is required")
        if len(updates) > MAX_SHOW_MANY:
            return self._invalid(f"Too many tickets (at most {MAX_SHOW_MANY})")
        now = self._clock()
        self.run_jobs()
        running = [job for job in self._jobs.values() if job.finished_at is None]
        if len(running) >= MAX_JOBS:
            # Assumed body; the limit and the 429 are documented.
            soonest = min(job.entry_due(job.total - 1) for job in running)
            wait = max(math.ceil((soonest - now).total_seconds()), 1)
            description = f"Number of allowed background jobs exceeded: {MAX_JOBS}"
            return json_response(
                429,
                {"error": "TooManyJobs", "description": description},
                [("Retry-After", str(wait))],
            )
        self._job_count += 1
        job_id = "V3-" + format(self._job_count * 0x9E3779B97F4A7C15 % 2**128, "032x")
        before, each = self.job_seconds
        job = _Job(job_id, updates, now, before, each)
        self._jobs[job_id] = job
        return json_response(200, {"job_status": self._render_job(job, request.base_url)})

    def run_jobs(self) -> None:
        """Apply the update_many entries whose turn has come, oldest job first; forget the
        jobs finished more than a day ago. Every call to the API runs it first."""
        now = self._clock()
        for job_id, job in list(self._jobs.items()):
            if job.finished_at is not None:
                if now - job.finished_at > JOB_RETENTION:
                    del self._jobs[job_id]
                continue
            while len(job.results) < job.total and job.entry_due(len(job.results)) <= now:
                self._run_entry(job, len(job.results))
            if len(job.results) == job.total:
                job.finished_at = job.entry_due(job.total - 1) if job.total else now

    def _run_entry(self, job: _Job, index: int) -> None:
        self.job_entries += 1
        ticket_id, update = job.entries[index]
        ticket = self.tickets.get(ticket_id)
        outcome: list[dict[str, Any]] | ApiResponse
        outcome = self._not_found_record() if ticket is None else self._apply(ticket, update)
        if isinstance(outcome, ApiResponse):
            body = json.loads(outcome.body)
            job.results.append(
                {
                    "id": ticket_id,
                    "index": index,
                    "action": "update",
                    "success": False,
                    "status": "Failed",
                    "error": body.get("error", "Failed"),
                    "details": body.get("description", ""),
                }
            )
        else:
            self.last_entry_at = job.entry_due(index)
            job.results.append(
                {"id": ticket_id, "action": "update", "success": True, "status": "Updated"}
            )

    def _render_job(self, job: _Job, base: str) -> dict[str, Any]:
        done = job.finished_at
        return {
            "id": job.id,
            "url": f"{base}/api/v2/job_statuses/{job.id}.json",
            "job_type": "bulk_update",
            "total": job.total,
            "progress": len(job.results) if job.results else None,
            "status": job.status,
            "message": None if done is None else f"Completed at {format_instant(done)}",
            "results": None if done is None else list(job.results),
        }

    def _job_status(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        job = self._jobs.get(params["id"])
        if job is None:
            return self._not_found_record()
        return json_response(200, {"job_status": self._render_job(job, request.base_url)})

    def _organizations(self, request: ApiRequest, _: dict[str, str]) -> ApiResponse:
        ids = self._ids(request)
        if isinstance(ids, ApiResponse):
            return ids
        orgs = [
            self.render_organization(self.organizations[i], request.base_url)
            for i in ids
            if i in self.organizations
        ]
        return json_response(200, {"organizations": orgs})

    def _ticket_fields(self, request: ApiRequest, _: dict[str, str]) -> ApiResponse:
        base = request.base_url
        fields = [
            {
                "url": f"{base}/api/v2/ticket_fields/{f.id}.json",
                "id": f.id,
                "type": f.type,
                "title": f.title,
                "raw_title": f.title,
                "description": "",
                "position": position,
                "active": True,
                "required": False,
                "collapsed_for_agents": False,
                "regexp_for_validation": r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}\z"
                if f.type == "date"
                else None,
                "title_in_portal": f.title,
                "visible_in_portal": False,
                "editable_in_portal": False,
                "required_in_portal": False,
                "tag": None,
                "created_at": "2024-01-15T09:00:00Z",
                "updated_at": "2024-01-15T09:00:00Z",
                "removable": True,
                "key": None,
                "agent_description": None,
                **(
                    {
                        "custom_field_options": [
                            {"id": f.id * 100 + i, "name": o, "raw_name": o, "value": o}
                            for i, o in enumerate(f.options)
                        ]
                    }
                    if f.type == "tagger"
                    else {}
                ),
            }
            for position, f in enumerate(self.ticket_fields, start=1)
        ]
        return json_response(200, _listing("ticket_fields", fields))

    def _organization_fields(self, request: ApiRequest, _: dict[str, str]) -> ApiResponse:
        base = request.base_url
        fields = [
            {
                "url": f"{base}/api/v2/organization_fields/{9200000 + i}.json",
                "id": 9200000 + i,
                "type": kind,
                "key": key,
                "title": title,
                "raw_title": title,
                "description": "",
                "position": i,
                "active": True,
                "system": False,
                "regexp_for_validation": None,
                "created_at": "2024-01-15T09:00:00Z",
                "updated_at": "2024-01-15T09:00:00Z",
                **(
                    {
                        "custom_field_options": [
                            {"id": 9300000 + i * 100 + n, "name": name, "value": value}
                            for n, (name, value) in enumerate(self.field_options[key])
                        ]
                    }
                    if key in self.field_options
                    else {}
                ),
            }
            for i, (key, kind, title) in enumerate(self.organization_fields, start=1)
        ]
        return json_response(200, _listing("organization_fields", fields))

    def _create_ticket_field(self, request: ApiRequest, _: dict[str, str]) -> ApiResponse:
        """`POST /api/v2/ticket_fields` (documented): a custom field; 201 with its id."""
        spec = request.json().get("ticket_field")
        if not isinstance(spec, dict):
            return self._invalid("ticket_field is required")
        kind, title = spec.get("type"), spec.get("title")
        if kind not in TICKET_FIELD_TYPES:
            return _record_invalid({"type": [{"description": f"Type: {kind!r} is invalid"}]})
        if not isinstance(title, str) or not title.strip():
            return _record_invalid({"title": [{"description": "Title: cannot be blank"}]})
        options = _options(spec.get("custom_field_options"))
        if kind in ("tagger", "multiselect") and not options:
            return _record_invalid(
                {"custom_field_options": [{"description": "Field options: cannot be blank"}]}
            )
        field_id = max([f.id for f in self.ticket_fields] + [FIRST_CREATED_FIELD]) + 1
        created = TicketField(field_id, kind, title, tuple(value for _, value in options))
        self.ticket_fields.append(created)
        listing = json.loads(self._ticket_fields(request, {}).body)["ticket_fields"]
        return json_response(201, {"ticket_field": listing[-1]})

    def _create_organization_field(self, request: ApiRequest, _: dict[str, str]) -> ApiResponse:
        """`POST /api/v2/organization_fields` (documented): a custom field under its `key`."""
        spec = request.json().get("organization_field")
        if not isinstance(spec, dict):
            return self._invalid("organization_field is required")
        kind, key, title = spec.get("type"), spec.get("key"), spec.get("title")
        if kind not in ORGANIZATION_FIELD_TYPES:
            return _record_invalid({"type": [{"description": f"Type: {kind!r} is invalid"}]})
        if not isinstance(key, str) or not re.fullmatch(r"[a-z0-9_]+", key):
            return _record_invalid({"key": [{"description": "Key: is invalid"}]})
        if any(existing == key for existing, _, _ in self.organization_fields):
            return _record_invalid({"key": [{"description": "Key: has already been taken"}]})
        if not isinstance(title, str) or not title.strip():
            return _record_invalid({"title": [{"description": "Title: cannot be blank"}]})
        options = _options(spec.get("custom_field_options"))
        if kind in ("dropdown", "multiselect"):
            if not options:
                return _record_invalid(
                    {"custom_field_options": [{"description": "Field options: cannot be blank"}]}
                )
            self.field_options[key] = options
        self.organization_fields.append((key, kind, title))
        listing = json.loads(self._organization_fields(request, {}).body)["organization_fields"]
        return json_response(201, {"organization_field": listing[-1]})

    def _oauth_tokens(self, request: ApiRequest, _: dict[str, str]) -> ApiResponse:
        content_type = request.headers.get("content-type", "")
        if "json" in content_type:
            form = {k: str(v) for k, v in request.json().items()}
        else:
            parsed = parse_qs(request.body.decode("utf-8", "replace"))
            form = {k: v[0] for k, v in parsed.items()}
        if (
            form.get("client_id") != self.oauth_client_id
            or form.get("client_secret") != self.oauth_client_secret
        ):
            return json_response(
                401,
                {
                    "error": "invalid_client",
                    "error_description": "Client authentication failed due to unknown client, "
                    "no client authentication included, or unsupported authentication method.",
                },
            )
        if form.get("grant_type") != "refresh_token":
            return json_response(
                400,
                {
                    "error": "unsupported_grant_type",
                    "error_description": "The authorization grant type is not supported by "
                    "the authorization server.",
                },
            )
        old = form.get("refresh_token", "")
        expires = self._tokens.refresh.get(old)
        if expires is None or expires <= self.now():
            return json_response(
                400,
                {
                    "error": "invalid_grant",
                    "error_description": "The provided authorization grant is invalid, "
                    "expired, revoked, does not match the redirection URI used in the "
                    "authorization request, or was issued to another client.",
                },
            )
        # Documented: a refresh returns a new pair and deletes the previous tokens.
        del self._tokens.refresh[old]
        self._tokens.access.clear()
        pair = self.issue_tokens()
        return json_response(
            200,
            {
                "access_token": pair.access_token,
                "token_type": "bearer",
                "scope": "read write",
                "expires_in": pair.expires_in,
                "refresh_token": pair.refresh_token,
                "refresh_token_expires_in": pair.refresh_token_expires_in,
            },
        )


# --- pure helpers --------------------------------------------------------------------------


def _options(raw: Any) -> tuple[tuple[str, str], ...]:
    """A create request's `custom_field_options` as (name, value) pairs; junk left out."""
    if not isinstance(raw, list):
        return ()
    return tuple(
        (str(o["name"]), str(o["value"]))
        for o in raw
        if isinstance(o, dict) and o.get("name") and o.get("value")
    )


def _encode_cursor(position: tuple[int, int]) -> str:
    raw = f"{position[0]}.0||{position[1]}|".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[int, int] | None:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, _, rest = raw.partition("||")
        return int(float(stamp)), int(rest.rstrip("|"))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None


def _listing(name: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {name: items, "next_page": None, "previous_page": None, "count": len(items)}


def _record_invalid(details: dict[str, Any]) -> ApiResponse:
    return json_response(
        422,
        {"error": "RecordInvalid", "description": "Record validation errors", "details": details},
    )


def _stale(ticket: ZendeskTicket, payload: Mapping[str, Any]) -> ApiResponse | None:
    """The 409 of a safe update whose stamp is not the ticket's `updated_at`, else None."""
    if "safe_update" not in payload or payload.get("updated_stamp") is None:
        return None
    try:
        stamp = parse_instant(str(payload["updated_stamp"]))
    except ValueError:
        stamp = None
    if stamp == ticket.updated_at:
        return None
    return json_response(
        409,
        {
            "error": "UpdateConflict",
            "description": "Safe Update prevented the update due to outdated ticket data. "
            "Please fetch the latest ticket data and try again.",
        },
    )


def _validated_fields(
    current: dict[int, Any], items: Any
) -> tuple[dict[int, Any], list[dict[str, Any]]]:
    """Custom field values after `custom_fields`, and the problems Zendesk reports."""
    fields = dict(current)
    problems: list[dict[str, Any]] = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict) or item.get("id") not in _FIELDS:
            continue  # Zendesk ignores fields it does not know
        field_ = _FIELDS[item["id"]]
        value, problem = _field_value(field_, item.get("value"))
        if problem:
            description = f"{field_.title}: {problem}"
            problems.append(
                {"description": description, "error": "InvalidValue", "field_key": field_.id}
            )
        elif value is None:
            fields.pop(field_.id, None)
        else:
            fields[field_.id] = value
    return fields, problems


def _new_tags(tags: list[str], payload: Mapping[str, Any]) -> list[str]:
    """Tags after `tags` (replace), then `additional_tags`, then `remove_tags`."""
    if isinstance(payload.get("tags"), list):
        tags = _unique(str(t) for t in payload["tags"])
    if isinstance(payload.get("additional_tags"), list):
        tags = _unique([*tags, *(str(t) for t in payload["additional_tags"])])
    if isinstance(payload.get("remove_tags"), list):
        gone = {str(t) for t in payload["remove_tags"]}
        tags = [t for t in tags if t not in gone]
    return tags


def _field_value(field_: TicketField, value: Any) -> tuple[Any, str | None]:
    """The value to store for a custom field, or why Zendesk refuses it."""
    if value is None or value == "":
        return None, None
    if field_.type == "date":
        text = str(value)
        if not _DATE.fullmatch(text):
            return None, "is invalid"
        try:
            date.fromisoformat(text)
        except ValueError:
            return None, "is invalid"
        return text, None
    if field_.type == "integer":
        if isinstance(value, bool) or not str(value).lstrip("-").isdigit():
            return None, "is invalid"
        return str(int(value)), None
    if field_.type == "checkbox":
        if not isinstance(value, bool):
            return None, "is invalid"
        return value, None
    if field_.type == "tagger":
        if str(value) not in field_.options:
            return None, "is invalid"
        return str(value), None
    return str(value), None


def _unique(tags: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(t for t in tags if t))


def _sync_tags(tags: list[str], before: dict[int, Any], after: dict[int, Any]) -> list[str]:
    """Tags after dropdown values changed: the old option tag goes, the new one comes."""
    result = list(tags)
    for field_ in _TAGGERS:
        old, new = before.get(field_.id), after.get(field_.id)
        if old != new:
            result = [t for t in result if t != old]
            if new is not None:
                result.append(new)
    return _unique(result)


def _sync_fields(tags: list[str], fields: dict[int, Any]) -> dict[int, Any]:
    """Dropdown values after tags changed: a removed option tag clears its field."""
    result = dict(fields)
    present = set(tags)
    for field_ in _TAGGERS:
        current = result.get(field_.id)
        if current is not None and current not in present:
            result.pop(field_.id)
        if result.get(field_.id) is None:
            chosen = next((o for o in field_.options if o in present), None)
            if chosen is not None:
                result[field_.id] = chosen
    return result


def _changes(
    ticket: ZendeskTicket,
    fields: dict[int, Any],
    tags: list[str],
    priority: str | None,
    status: str,
) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []

    def change(name: str, value: Any, previous: Any) -> None:
        events.append(
            {"type": "Change", "field_name": name, "value": value, "previous_value": previous}
        )

    for field_ in TICKET_FIELDS:
        if fields.get(field_.id) != ticket.fields.get(field_.id):
            change(str(field_.id), fields.get(field_.id), ticket.fields.get(field_.id))
    if tags != ticket.tags:
        change("tags", tags, list(ticket.tags))
    if priority != ticket.priority:
        change("priority", priority, ticket.priority)
    if status != ticket.status:
        change("status", status, ticket.status)
    return events
