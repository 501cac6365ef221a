"""The sandbox's Freshdesk: the subset of API v2 the connector uses.

Checked against the Freshdesk API v2 reference (developers.freshdesk.com/api) where it says so,
and against behaviour seen from the service where it does not:

- `GET /api/v2/tickets` (documented): `updated_since`, `order_by` (`created_at` default,
  `due_by`, `updated_at`, `status`), `order_type` (`desc` default), `per_page` (30 default,
  100 at most), `page`, `include=stats` (and `requester`, `description`); the next page in a
  `Link: <...>; rel="next"` header; without `updated_since` only tickets created in the last 30
  days. Pages beyond 300 are refused with 400 and the body seen from the service (airbytehq/
  airbyte#3858): `{"description":"Validation failed","errors":[{"field":"page","message":"You
  cannot access tickets beyond the 300th page. Please provide a smaller page number.",
  "code":"invalid_value"}]}`. Each `include` costs 2 more credits (documented).
- `PUT /api/v2/tickets/{id}`: `tags` replace; `fr_due_by`/`due_by` must not be before
  `created_at`, `due_by` must not be before `fr_due_by`, and both are refused while the status
  stops the SLA timer (pending, resolved, closed); tags are at most 32 characters without
  commas; unknown fields are `invalid_field`. These rules are those of the service's own
  ticket validation; the error codes (`invalid_value`, `incompatible_field`, `invalid_field`,
  `datatype_mismatch`) and the body shape `{"description":"Validation failed","errors":[...]}`
  are as recorded; the message wording is assumed where no recording was found.
- Notes (`POST .../notes`, 201), conversations, companies, ticket fields: documented shapes.
- Headers `X-RateLimit-Total`, `X-RateLimit-Remaining`, `X-RateLimit-Used-CurrentRequest`
  (documented; decimals such as `700.0` in the reference's example). 429 with `Retry-After`
  (documented); its body is assumed.
- Auth: basic with the API key as user name and any password (`X` by convention); 401 body
  `{"code":"invalid_credentials","message":"You have to be logged in to perform this action."}`.
- An update that changes nothing does not move `updated_at` (assumed).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

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

__all__ = ["COMPANY_FIELDS", "TICKET_FIELDS", "FreshdeskDesk", "FreshdeskTicket"]

AGENT_ID = 9_000_001
API_USER_ID = 9_000_002
REQUESTER_BASE = 7_000_000
MAX_PAGE = 300
MAX_PER_PAGE = 100
DEFAULT_PER_PAGE = 30
TAG_MAX = 32
DEFAULT_WINDOW = timedelta(days=30)

PRIORITY = {"low": 1, "normal": 2, "high": 3, "urgent": 4}
PRIORITY_NAME = {1: "Low", 2: "Medium", 3: "High", 4: "Urgent"}
STATUS = {"new": 2, "open": 2, "pending": 3, "solved": 4, "closed": 5}
SLA_STOPPED = frozenset({3, 4, 5, 6})  # pending, resolved, closed, waiting on customer
# The account's custom statuses, as a new Freshdesk account has them.
CUSTOM_STATUSES = {6: "Waiting on Customer", 7: "Waiting on Third Party"}
STATUS_IDS = frozenset({2, 3, 4, 5, *CUSTOM_STATUSES})
ADMIN_STATUS_FIELD = 8_100_003
# Freshdesk's plans (a minute): the account's limit in credits, the ticket update and tickets
# list sub-limits in calls (Freshdesk's API rate limits page).
PLANS: dict[str, dict[str, int]] = {
    "growth": {"account": 200, "tickets-update": 80, "tickets-list": 20},
    "pro": {"account": 400, "tickets-update": 160, "tickets-list": 100},
    "enterprise": {"account": 700, "tickets-update": 280, "tickets-list": 200},
}
_SUB_LIMITED = {
    ("PUT", "/api/v2/tickets/{id}"): "tickets-update",
    ("GET", "/api/v2/tickets"): "tickets-list",
}
ORDER_BY = ("created_at", "due_by", "updated_at", "status")

# (key, type, choices) of the ticket custom fields the mapping reads.
TICKET_FIELDS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("cf_sla_severity", "custom_dropdown", SEVERITIES),
    ("cf_severity_override", "custom_dropdown", SEVERITIES),
    ("cf_category", "custom_dropdown", CATEGORIES),
    ("cf_product", "custom_text", ()),
    ("cf_images", "custom_number", ()),
    ("cf_expedite", "custom_checkbox", ()),
    ("cf_workaround_at", "custom_text", ()),
    ("cf_delivered_at", "custom_text", ()),
    ("cf_sla_summary", "custom_paragraph", ()),
)
_FIELDS = {key: (kind, choices) for key, kind, choices in TICKET_FIELDS}
COMPANY_FIELDS: tuple[tuple[str, str], ...] = (
    ("sla_contract", "custom_text"),
    ("sla_plan", "custom_text"),
    ("sla_region", "custom_text"),
    ("seats", "custom_number"),
    ("subscription_start", "custom_date"),
    ("subscription_kind", "custom_text"),
    ("subscription_active", "custom_checkbox"),
    ("timezone", "custom_text"),
    ("offices", "custom_text"),
)
# The custom field types the admin create endpoints take (documented).
FIELD_TYPES = frozenset(
    {"custom_text", "custom_paragraph", "custom_checkbox", "custom_number", "custom_date",
     "custom_decimal", "custom_dropdown", "nested_field"}
)  # fmt: skip
UPDATABLE = frozenset(
    {"priority", "status", "tags", "custom_fields", "fr_due_by", "due_by", "subject", "type",
     "group_id", "responder_id", "description"}
)  # fmt: skip

_ID = r"(?P<id>\d+)"


def _route(method: str, path: str, name: str, handler: Handler) -> Route:
    return Route(method, re.compile(f"^{path}$"), name, handler)


@dataclass(slots=True)
class Note:
    """A note or reply on a ticket (a "conversation")."""

    id: int
    user_id: int
    body: str
    private: bool
    incoming: bool
    source: int  # 0 reply, 2 note
    created_at: datetime


@dataclass(slots=True)
class FreshdeskTicket:
    """One ticket's mutable state; rendered to the wire shape on each read."""

    id: int
    subject: str
    created_at: datetime
    updated_at: datetime
    status: int
    priority: int
    company_id: int | None
    requester_id: int
    tags: list[str]
    custom: dict[str, Any]
    fr_due_by: datetime
    due_by: datetime
    first_responded_at: datetime | None = None
    agent_responded_at: datetime | None = None
    resolved_at: datetime | None = None
    status_updated_at: datetime | None = None
    conversations: list[Note] | None = None  # None until someone writes one

    def thread(self) -> list[Note]:
        """Every conversation, oldest first (materialized once)."""
        if self.conversations is None:
            self.conversations = []
            if self.first_responded_at is not None:
                body = "Thanks, we are looking into it."
                reply = Note(
                    self.id * 1000 + 1, AGENT_ID, body, False, False, 0, self.first_responded_at
                )
                self.conversations.append(reply)
        return self.conversations


def _error(field: str, message: str, code: str) -> dict[str, str]:
    return {"field": field, "message": message, "code": code}


def validation_failed(errors: list[dict[str, str]]) -> ApiResponse:
    """Freshdesk's 400 body."""
    return json_response(400, {"description": "Validation failed", "errors": errors})


class FreshdeskDesk:
    """The Freshdesk side of the sandbox: state, routes and the rules of each endpoint."""

    name = "freshdesk"

    def __init__(
        self,
        clock: Any,
        *,
        api_key: str,
        rate_limit: int | None,
        advertised_limit: int,
        plan: str | None = None,
        fresh_account: bool = False,
    ) -> None:
        self._clock = clock
        self.api_key = api_key
        # The custom fields the account has: the bundled mapping's, or none on a fresh
        # account (where `sla-connector init` creates them through the admin API).
        self.ticket_fields: list[tuple[str, str, tuple[str, ...]]] = (
            [] if fresh_account else list(TICKET_FIELDS)
        )
        self.company_fields: list[tuple[str, str, tuple[str, ...]]] = (
            [] if fresh_account else [(name, kind, ()) for name, kind in COMPANY_FIELDS]
        )
        # A plan's limits: the account's (in credits) unless `rate_limit` says otherwise, and
        # the per-endpoint sub-limits (in calls), which Freshdesk enforces but announces not.
        limits = PLANS[plan] if plan is not None else {}
        rate_limit = rate_limit or limits.get("account")
        self.sub_limits = {
            name: SlidingWindow(limit) for name, limit in limits.items() if name != "account"
        }
        # The statuses whose "stop SLA timer" is on (an admin setting: tests may change it).
        self.sla_stopped = SLA_STOPPED
        self.tickets: dict[int, FreshdeskTicket] = {}
        self.companies: dict[int, SeedCustomer] = {}
        self._changes = ChangeOrder()
        self.rate = SlidingWindow(rate_limit) if rate_limit else None
        self.advertised_limit = advertised_limit
        self.routes = (
            _route("GET", "/api/v2/tickets", "/api/v2/tickets", self._list),
            _route("GET", f"/api/v2/tickets/{_ID}", "/api/v2/tickets/{id}", self._show),
            _route("PUT", f"/api/v2/tickets/{_ID}", "/api/v2/tickets/{id}", self._update),
            _route("POST", f"/api/v2/tickets/{_ID}/notes", "/api/v2/tickets/{id}/notes",
                   self._add_note),
            _route("GET", f"/api/v2/tickets/{_ID}/conversations",
                   "/api/v2/tickets/{id}/conversations", self._conversations),
            _route("GET", "/api/v2/companies", "/api/v2/companies", self._companies),
            _route("GET", f"/api/v2/companies/{_ID}", "/api/v2/companies/{id}", self._company),
            _route("GET", "/api/v2/ticket_fields", "/api/v2/ticket_fields", self._ticket_fields),
            _route("GET", "/api/v2/admin/ticket_fields", "/api/v2/admin/ticket_fields",
                   self._admin_ticket_fields),
            _route("GET", f"/api/v2/admin/ticket_fields/{_ID}", "/api/v2/admin/ticket_fields/{id}",
                   self._admin_ticket_field),
            _route("GET", "/api/v2/company_fields", "/api/v2/company_fields", self._company_fields),
            _route("POST", "/api/v2/admin/ticket_fields", "/api/v2/admin/ticket_fields",
                   self._create_ticket_field),
            _route("POST", "/api/v2/admin/company_fields", "/api/v2/admin/company_fields",
                   self._create_company_field),
        )  # fmt: skip

    # --- seeding and agent actions --------------------------------------------------------

    def now(self) -> datetime:
        """The sandbox clock, to the second."""
        now: datetime = self._clock()
        return now.astimezone(UTC).replace(microsecond=0)

    def add_customer(self, customer: SeedCustomer) -> None:
        """Create (or replace) the company."""
        self.companies[customer.id] = customer

    def add_ticket(self, seed: SeedTicket) -> None:
        """Create (or replace) the ticket as the seed describes it."""
        custom: dict[str, Any] = {
            "cf_sla_severity": seed.severity,
            "cf_severity_override": seed.severity_override,
            "cf_category": seed.category,
            "cf_product": seed.product,
            "cf_images": seed.images,
            "cf_expedite": bool(seed.expedite),
            "cf_workaround_at": format_instant(seed.workaround_at) if seed.workaround_at else None,
            "cf_delivered_at": format_instant(seed.delivered_at) if seed.delivered_at else None,
        }
        updated = max(d for d in (seed.created_at, seed.first_reply_at, seed.solved_at) if d)
        status = STATUS.get(seed.status, 2)
        ticket = FreshdeskTicket(
            id=seed.id,
            subject=seed.subject,
            created_at=seed.created_at,
            updated_at=updated,
            status=status,
            priority=PRIORITY.get(seed.priority or "normal", 2),
            company_id=seed.customer_id,
            requester_id=REQUESTER_BASE + seed.id,
            tags=list(seed.tags),
            custom=custom,
            # Freshdesk's own SLA policy until someone writes them (as recorded: +1 d, +5 d).
            fr_due_by=seed.created_at + timedelta(days=1),
            due_by=seed.created_at + timedelta(days=5),
            first_responded_at=seed.first_reply_at,
            agent_responded_at=seed.first_reply_at,
            resolved_at=seed.solved_at,
            status_updated_at=seed.solved_at or seed.created_at,
        )
        if seed.id in self.tickets:
            self._changes.discard(self.tickets[seed.id])
        self.tickets[seed.id] = ticket
        self._changes.add(ticket)

    def _touch(self, ticket: FreshdeskTicket, *, strictly_later: bool = False) -> None:
        """Record a change: `updated_at` moves to now."""
        self._changes.touch(ticket, self.now(), strictly_later=strictly_later)

    def agent_reply(self, ticket_id: int, at: datetime | None = None) -> None:
        """A public agent reply: `stats.first_responded_at` is set by the first one."""
        ticket = self.tickets[ticket_id]
        when = (at or self.now()).astimezone(UTC).replace(microsecond=0)
        thread = ticket.thread()
        body = "Here is an update on your request."
        note_id = ticket.id * 1000 + len(thread) + 1
        thread.append(Note(note_id, AGENT_ID, body, False, False, 0, when))
        if ticket.first_responded_at is None:
            ticket.first_responded_at = when
        ticket.agent_responded_at = when
        self._touch(ticket)

    def agent_edit(self, ticket_id: int) -> None:
        """An agent adds the tag `agent_edit` in the UI: `updated_at` moves on."""
        ticket = self.tickets.get(ticket_id)
        if ticket is None:
            return
        if "agent_edit" not in ticket.tags:
            ticket.tags.append("agent_edit")
        self._touch(ticket, strictly_later=True)

    def stamp(self, ticket_id: int, at: datetime) -> None:
        """An agent edit that Freshdesk records at `at`, whatever its clock says.

        What a server whose clock is off does (hours ahead, or seconds behind the one that
        stamped the last change), and a slow write that shows after later ones.
        """
        ticket = self.tickets[ticket_id]
        if "agent_edit" not in ticket.tags:
            ticket.tags.append("agent_edit")
        self._changes.discard(ticket)
        ticket.updated_at = at.astimezone(UTC).replace(microsecond=0)
        self._changes.add(ticket)

    def set_status(self, ticket_id: int, status: int) -> None:
        """An agent sets the status (2 open, 3 pending, 4 resolved, 5 closed, or a custom
        status id): `stats.status_updated_at` moves to now."""
        if status not in STATUS_IDS:
            raise ValueError(f"not a status of this account: {status}")
        ticket = self.tickets[ticket_id]
        ticket.status = status
        ticket.status_updated_at = self.now().astimezone(UTC).replace(microsecond=0)
        self._touch(ticket, strictly_later=True)

    def solve(self, ticket_id: int, at: datetime | None = None) -> None:
        """An agent resolves the ticket (status 4)."""
        ticket = self.tickets[ticket_id]
        ticket.status = 4
        ticket.resolved_at = (at or self.now()).astimezone(UTC).replace(microsecond=0)
        ticket.status_updated_at = ticket.resolved_at
        self._touch(ticket)

    def reset_limits(self) -> None:
        """Forget the rate-limit window."""
        if self.rate is not None:
            self.rate.reset()

    # --- the Desk protocol ----------------------------------------------------------------

    def match(self, method: str, path: str) -> Match | None:
        """The route for this call, or None."""
        for route in self.routes:
            if route.method == method and (found := route.pattern.match(path)):
                return Match(route, found.groupdict())
        return None

    def authenticate(self, request: ApiRequest) -> ApiResponse | None:
        """Basic auth with the API key as user name; else Freshdesk's 401."""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                user = base64.b64decode(value).decode().partition(":")[0]
            except (binascii.Error, UnicodeDecodeError):
                user = ""
            if user == self.api_key:
                return None
        return json_response(
            401,
            {
                "code": "invalid_credentials",
                "message": "You have to be logged in to perform this action.",
            },
        )

    def not_found(self) -> ApiResponse:
        """Freshdesk answers an unknown path or record with an empty 404 (assumed)."""
        return ApiResponse(404)

    def rate_limited(self, retry_after: str | None) -> ApiResponse:
        """A 429 with `Retry-After`; the body is assumed."""
        headers = [("Retry-After", retry_after)] if retry_after is not None else []
        body = {"message": "You have exceeded the limit of requests per minute."}
        return json_response(429, body, headers)

    def admit(self, request: ApiRequest, match: Match) -> tuple[ApiResponse | None, Headers]:
        """Spend the account budget in credits; say what is left and what this call cost."""
        now = self.now()
        cost = 1
        if match.route.name in ("/api/v2/tickets", "/api/v2/companies"):
            includes = [p for p in (request.arg("include") or "").split(",") if p.strip()]
            cost += 2 * len(includes)
        refused: ApiResponse | None = None
        sub = self.sub_limits.get(_SUB_LIMITED.get((request.method, match.route.name), ""))
        if sub is not None and not sub.admit(now):
            refused = self.rate_limited(str(sub.resets_in(now)))
        if self.rate is not None:
            if refused is None and not self.rate.admit(now, cost):
                refused = self.rate_limited(str(self.rate.resets_in(now)))
            limit, remaining = self.rate.limit, self.rate.remaining(now)
        else:
            limit, remaining = self.advertised_limit, self.advertised_limit
        return refused, [
            ("X-RateLimit-Total", f"{limit:.1f}"),
            ("X-RateLimit-Remaining", f"{remaining:.1f}"),
            ("X-RateLimit-Used-CurrentRequest", str(cost)),
        ]

    # --- rendering --------------------------------------------------------------------------

    def render_ticket(self, ticket: FreshdeskTicket, includes: set[str]) -> dict[str, Any]:
        """The ticket in Freshdesk's JSON shape (`stats` when asked for)."""
        body: dict[str, Any] = {
            "cc_emails": [],
            "fwd_emails": [],
            "reply_cc_emails": [],
            "ticket_cc_emails": [],
            "fr_escalated": False,
            "spam": False,
            "email_config_id": None,
            "group_id": None,
            "priority": ticket.priority,
            "requester_id": ticket.requester_id,
            "responder_id": None,
            "source": 2,
            "company_id": ticket.company_id,
            "status": ticket.status,
            "subject": ticket.subject,
            "association_type": None,
            "support_email": None,
            "to_emails": None,
            "product_id": None,
            "id": ticket.id,
            "type": None,
            "due_by": format_instant(ticket.due_by),
            "fr_due_by": format_instant(ticket.fr_due_by),
            "is_escalated": False,
            "custom_fields": dict(ticket.custom),
            "created_at": format_instant(ticket.created_at),
            "updated_at": format_instant(ticket.updated_at),
            "associated_tickets_count": None,
            "tags": list(ticket.tags),
            "nr_due_by": None,
            "nr_escalated": False,
        }
        if "description" in includes:
            body["description"] = f"<div>{ticket.subject}</div>"
            body["description_text"] = ticket.subject
        if "stats" in includes:

            def instant(value: datetime | None) -> str | None:
                return format_instant(value) if value else None

            body["stats"] = {
                "agent_responded_at": instant(ticket.agent_responded_at),
                "requester_responded_at": None,
                "first_responded_at": instant(ticket.first_responded_at),
                "status_updated_at": instant(ticket.status_updated_at),
                "reopened_at": None,
                "resolved_at": instant(ticket.resolved_at),
                "closed_at": instant(ticket.resolved_at) if ticket.status == 5 else None,
                "pending_since": instant(ticket.status_updated_at) if ticket.status == 3 else None,
            }
        return body

    def render_company(self, company: SeedCustomer) -> dict[str, Any]:
        """The company in Freshdesk's JSON shape, with the mapping's field keys."""
        start = company.subscription_start
        return {
            "id": company.id,
            "name": company.name,
            "description": None,
            "note": None,
            "domains": [company.domain],
            "created_at": "2024-01-15T09:00:00Z",
            "updated_at": "2024-01-15T09:00:00Z",
            "custom_fields": {
                "sla_contract": company.contract,
                "sla_plan": company.plan,
                "sla_region": company.region,
                "seats": company.seats,
                "subscription_start": start.isoformat() if start else None,
                "subscription_kind": company.subscription_kind,
                "subscription_active": company.active,
                "timezone": company.timezone,
                "offices": ",".join(company.offices) or None,
            },
            "health_score": None,
            "account_tier": None,
            "renewal_date": None,
            "industry": None,
        }

    @staticmethod
    def _note_json(ticket_id: int, note: Note) -> dict[str, Any]:
        return {
            "body": f"<div>{note.body}</div>",
            "body_text": note.body,
            "id": note.id,
            "incoming": note.incoming,
            "private": note.private,
            "user_id": note.user_id,
            "support_email": None,
            "source": note.source,
            "ticket_id": ticket_id,
            "to_emails": [],
            "from_email": None,
            "cc_emails": None,
            "bcc_emails": None,
            "created_at": format_instant(note.created_at),
            "updated_at": format_instant(note.created_at),
            "attachments": [],
        }

    # --- handlers ---------------------------------------------------------------------------

    @staticmethod
    def _paging(request: ApiRequest) -> tuple[int, int] | ApiResponse:
        errors = []
        per_page = page = 0
        raw_per_page, raw_page = request.arg("per_page"), request.arg("page")
        if raw_per_page is not None and not raw_per_page.isdigit():
            errors.append(
                _error("per_page", "It should be a/an Positive Integer", "datatype_mismatch")
            )
        else:
            per_page = int(raw_per_page or DEFAULT_PER_PAGE)
            if not 1 <= per_page <= MAX_PER_PAGE:
                message = f"It should be a Positive Integer less than or equal to {MAX_PER_PAGE}"
                errors.append(_error("per_page", message, "invalid_value"))
        if raw_page is not None and not raw_page.isdigit():
            errors.append(_error("page", "It should be a/an Positive Integer", "datatype_mismatch"))
        else:
            page = int(raw_page or 1)
            if page < 1:
                errors.append(_error("page", "It should be a Positive Integer", "invalid_value"))
        if errors:
            return validation_failed(errors)
        return per_page, page

    def _list(self, request: ApiRequest, _: dict[str, str]) -> ApiResponse:
        paging = self._paging(request)
        if isinstance(paging, ApiResponse):
            return paging
        per_page, page = paging
        errors = []
        order_by = request.arg("order_by") or "created_at"
        order_type = request.arg("order_type") or "desc"
        if order_by not in ORDER_BY:
            errors.append(_error("order_by", _ONE_OF.format(",".join(ORDER_BY)), "invalid_value"))
        if order_type not in ("asc", "desc"):
            errors.append(_error("order_type", _ONE_OF.format("asc,desc"), "invalid_value"))
        since: datetime | None = None
        if (raw_since := request.arg("updated_since")) is not None:
            try:
                since = parse_instant(raw_since)
            except ValueError:
                errors.append(_error("updated_since", _ISO, "invalid_value"))
        if errors:
            return validation_failed(errors)
        if page > MAX_PAGE:
            return validation_failed(
                [
                    _error(
                        "page",
                        "You cannot access tickets beyond the 300th page. "
                        "Please provide a smaller page number.",
                        "invalid_value",
                    )
                ]
            )
        tickets = self._select(since, order_by, order_type == "desc")
        start = (page - 1) * per_page
        window = tickets[start : start + per_page]
        includes = self._includes(request)
        headers = []
        if start + per_page < len(tickets):
            query = {k: v[0] for k, v in request.query.items() if k != "page"}
            url = f"{request.base_url}/api/v2/tickets?{urlencode({**query, 'page': page + 1})}"
            headers.append(("Link", f'<{url}>; rel="next"'))
        return json_response(200, [self.render_ticket(t, includes) for t in window], headers)

    def _select(self, since: datetime | None, order_by: str, desc: bool) -> list[FreshdeskTicket]:
        if order_by == "updated_at":
            at = 0 if since is None else bisect.bisect_left(self._changes.keys, (to_epoch(since),))
            keys = self._changes.keys[at:]
            chosen = [self.tickets[i] for _, i in (reversed(keys) if desc else keys)]
        else:
            chosen = [t for t in self.tickets.values() if since is None or t.updated_at >= since]
            chosen.sort(key=lambda t: (_order_value(t, order_by), t.id), reverse=desc)
        if since is None:
            oldest = self.now() - DEFAULT_WINDOW
            chosen = [t for t in chosen if t.created_at >= oldest]
        return chosen

    def _includes(self, request: ApiRequest) -> set[str]:
        return {p.strip() for p in (request.arg("include") or "").split(",") if p.strip()}

    def _show(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        ticket = self.tickets.get(int(params["id"]))
        if ticket is None:
            return self.not_found()
        return json_response(200, self.render_ticket(ticket, self._includes(request)))

    def _update(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        ticket = self.tickets.get(int(params["id"]))
        if ticket is None:
            return self.not_found()
        payload = request.json()
        update = _validate_update(ticket, payload, self.sla_stopped)
        if isinstance(update, ApiResponse):
            return update
        if update != _Update.of(ticket):
            if update.status != ticket.status:
                ticket.status_updated_at = self.now()
                if update.status == 4 and ticket.resolved_at is None:
                    ticket.resolved_at = self.now()
            ticket.subject, ticket.priority, ticket.status = (
                update.subject,
                update.priority,
                update.status,
            )
            ticket.tags, ticket.custom = update.tags, update.custom
            ticket.fr_due_by, ticket.due_by = update.fr_due_by, update.due_by
            self._touch(ticket)
        return json_response(200, self.render_ticket(ticket, set()))

    def _add_note(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        ticket = self.tickets.get(int(params["id"]))
        if ticket is None:
            return self.not_found()
        payload = request.json()
        body = payload.get("body")
        errors = []
        if not isinstance(body, str) or not body.strip():
            code = "missing_field" if body is None else "invalid_value"
            message = "It should not be blank as this is a mandatory field"
            errors.append(_error("body", message, code))
        private = payload.get("private", True)
        if not isinstance(private, bool):
            errors.append(_error("private", "It should be a/an Boolean", "datatype_mismatch"))
        if errors:
            return validation_failed(errors)
        thread = ticket.thread()
        note_id = ticket.id * 1000 + len(thread) + 1
        note = Note(note_id, API_USER_ID, str(body), private, False, 2, self.now())
        thread.append(note)
        self._touch(ticket)
        return json_response(201, self._note_json(ticket.id, note))

    def _conversations(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        ticket = self.tickets.get(int(params["id"]))
        if ticket is None:
            return self.not_found()
        paging = self._paging(request)
        if isinstance(paging, ApiResponse):
            return paging
        per_page, page = paging
        thread = ticket.thread()
        start = (page - 1) * per_page
        headers = []
        if start + per_page < len(thread):
            url = f"{request.base_url}/api/v2/tickets/{ticket.id}/conversations?"
            url += urlencode({"per_page": per_page, "page": page + 1})
            headers.append(("Link", f'<{url}>; rel="next"'))
        notes = [self._note_json(ticket.id, n) for n in thread[start : start + per_page]]
        return json_response(200, notes, headers)

    def _companies(self, request: ApiRequest, _: dict[str, str]) -> ApiResponse:
        paging = self._paging(request)
        if isinstance(paging, ApiResponse):
            return paging
        per_page, page = paging
        companies = sorted(self.companies.values(), key=lambda c: c.id)
        start = (page - 1) * per_page
        headers = []
        if start + per_page < len(companies):
            url = f"{request.base_url}/api/v2/companies?"
            url += urlencode({"per_page": per_page, "page": page + 1})
            headers.append(("Link", f'<{url}>; rel="next"'))
        body = [self.render_company(c) for c in companies[start : start + per_page]]
        return json_response(200, body, headers)

    def _company(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        company = self.companies.get(int(params["id"]))
        if company is None:
            return self.not_found()
        return json_response(200, self.render_company(company))

    def _ticket_fields(self, request: ApiRequest, _: dict[str, str]) -> ApiResponse:
        defaults = [
            ("requester", "default_requester"),
            ("subject", "default_subject"),
            ("status", "default_status"),
            ("priority", "default_priority"),
        ]
        fields: list[dict[str, Any]] = []
        all_fields = [(n, t, ()) for n, t in defaults] + list(self.ticket_fields)
        for position, (name, kind, choices) in enumerate(all_fields, start=1):
            entry: dict[str, Any] = {
                "id": 8_100_000 + position,
                "name": name,
                "label": name.removeprefix("cf_").replace("_", " ").capitalize(),
                "description": "",
                "position": position,
                "required_for_closure": False,
                "required_for_agents": name == "requester",
                "type": kind,
                "default": kind.startswith("default_"),
                "customers_can_edit": False,
                "label_for_customers": name,
                "required_for_customers": False,
                "displayed_to_customers": False,
                "created_at": "2024-01-15T09:00:00Z",
                "updated_at": "2024-01-15T09:00:00Z",
            }
            if choices:
                entry["choices"] = list(choices)
            fields.append(entry)
        return json_response(200, fields)

    def _admin_status_field(self, *, with_choices: bool) -> dict[str, Any]:
        """The status field as the admin endpoints show it; the listing leaves the choices
        out, as the connector must expect (the field's own page has them)."""
        labels = {2: "Open", 3: "Pending", 4: "Resolved", 5: "Closed", **CUSTOM_STATUSES}
        field: dict[str, Any] = {
            "id": ADMIN_STATUS_FIELD,
            "name": "status",
            "type": "default_status",
        }
        if with_choices:
            field["choices"] = [
                {
                    "id": number,
                    "value": label,
                    "label_for_customers": label,
                    "stop_sla_timer": number in self.sla_stopped,
                    "position": position,
                    "default": number < 6,
                    "deleted": False,
                }
                for position, (number, label) in enumerate(sorted(labels.items()), start=1)
            ]
        return field

    def _admin_ticket_fields(self, request: ApiRequest, _: dict[str, str]) -> ApiResponse:
        return json_response(200, [self._admin_status_field(with_choices=False)])

    def _admin_ticket_field(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        if int(params["id"]) != ADMIN_STATUS_FIELD:
            return self.not_found()
        return json_response(200, self._admin_status_field(with_choices=True))

    def _company_fields(self, request: ApiRequest, _: dict[str, str]) -> ApiResponse:
        defaults = [("name", "default_name"), ("domains", "default_domains")]
        fields: list[dict[str, Any]] = [
            {
                "id": 8_200_000 + position,
                "name": name,
                "label": name.replace("_", " ").capitalize(),
                "position": position,
                "required_for_agents": name == "name",
                "type": kind,
                "default": kind.startswith("default_"),
                "created_at": "2024-01-15T09:00:00Z",
                "updated_at": "2024-01-15T09:00:00Z",
            }
            for position, (name, kind) in enumerate(
                [*defaults, *((n, k) for n, k, _ in self.company_fields)], start=1
            )
        ]
        for entry, (_name, _kind, options) in zip(
            fields[len(defaults) :], self.company_fields, strict=True
        ):
            if options:
                entry["choices"] = list(options)
        return json_response(200, fields)

    def _create_ticket_field(self, request: ApiRequest, _: dict[str, str]) -> ApiResponse:
        """`POST /api/v2/admin/ticket_fields` (documented): a custom field named `cf_` and its
        label in snake case; 201 with it."""
        created = self._new_field(request, "cf_", {n for n, _, _ in self.ticket_fields})
        if isinstance(created, ApiResponse):
            return created
        self.ticket_fields.append(created)
        return json_response(201, json.loads(self._ticket_fields(request, {}).body)[-1])

    def _create_company_field(self, request: ApiRequest, _: dict[str, str]) -> ApiResponse:
        """`POST /api/v2/admin/company_fields` (documented): a custom field named after its
        label in snake case (the REST API shows company fields without the `cf_` prefix)."""
        created = self._new_field(request, "", {n for n, _, _ in self.company_fields})
        if isinstance(created, ApiResponse):
            return created
        self.company_fields.append(created)
        return json_response(201, json.loads(self._company_fields(request, {}).body)[-1])

    def _new_field(
        self, request: ApiRequest, prefix: str, taken: set[str]
    ) -> tuple[str, str, tuple[str, ...]] | ApiResponse:
        spec = request.json()
        label, kind = spec.get("label"), spec.get("type")
        errors = []
        if not isinstance(label, str) or not label.strip():
            errors.append(
                {"field": "label", "message": "It should not be blank", "code": "missing_field"}
            )
        if kind not in FIELD_TYPES:
            errors.append(
                {
                    "field": "type",
                    "message": "It should be one of these values: " + ",".join(sorted(FIELD_TYPES)),
                    "code": "invalid_value",
                }
            )
        choices: tuple[str, ...] = ()
        raw = spec.get("choices")
        if kind == "custom_dropdown":
            if isinstance(raw, list):
                choices = tuple(
                    str(c["value"]) for c in raw if isinstance(c, dict) and c.get("value")
                )
            if not choices:
                errors.append(
                    {
                        "field": "choices",
                        "message": "It should not be blank",
                        "code": "missing_field",
                    }
                )
        if errors:
            return json_response(400, {"description": "Validation failed", "errors": errors})
        assert isinstance(label, str)
        assert isinstance(kind, str)
        name = prefix + re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")
        if name in taken:
            error = {
                "field": "label",
                "message": "It should be a unique value",
                "code": "duplicate_value",
            }
            return json_response(409, {"description": "Validation failed", "errors": [error]})
        return name, kind, choices


@dataclass(frozen=True, slots=True)
class _Update:
    """The writable part of a ticket, before or after a PUT."""

    subject: str
    priority: int
    status: int
    tags: list[str]
    custom: dict[str, Any]
    fr_due_by: datetime
    due_by: datetime

    @classmethod
    def of(cls, ticket: FreshdeskTicket) -> _Update:
        return cls(
            ticket.subject,
            ticket.priority,
            ticket.status,
            ticket.tags,
            ticket.custom,
            ticket.fr_due_by,
            ticket.due_by,
        )


_ONE_OF = "It should be one of these values: '{}'"
_ISO = "It should be in the 'combined date and time ISO8601' format"


def _validate_update(
    ticket: FreshdeskTicket, payload: dict[str, Any], sla_stopped: frozenset[int] = SLA_STOPPED
) -> _Update | ApiResponse:
    """The ticket as the PUT would leave it, or Freshdesk's 400 listing every problem."""
    errors = [
        _error(key, "Unexpected/invalid field in request", "invalid_field")
        for key in payload
        if key not in UPDATABLE
    ]
    priority = payload.get("priority", ticket.priority)
    if isinstance(priority, bool) or priority not in PRIORITY.values():
        errors.append(_error("priority", _ONE_OF.format("1,2,3,4"), "invalid_value"))
    status = payload.get("status", ticket.status)
    if isinstance(status, bool) or status not in STATUS_IDS:
        errors.append(
            _error(
                "status", _ONE_OF.format(",".join(map(str, sorted(STATUS_IDS)))), "invalid_value"
            )
        )
    tags = ticket.tags
    if "tags" in payload:
        tags, tag_errors = _tags(payload["tags"])
        errors += tag_errors
    custom = dict(ticket.custom)
    if "custom_fields" in payload:
        errors += _custom_fields(payload["custom_fields"], custom)
    due = {"fr_due_by": ticket.fr_due_by, "due_by": ticket.due_by}
    due_errors = []
    for key in (k for k in due if k in payload):
        if status in sla_stopped:
            message = "Due dates cannot be set while the status stops the SLA timer"
            due_errors.append(_error(key, message, "incompatible_field"))
            continue
        try:
            value = parse_instant(str(payload[key]))
        except ValueError:
            due_errors.append(_error(key, _ISO, "invalid_value"))
            continue
        if value < ticket.created_at:
            message = "It should be a date time greater than created_at"
            due_errors.append(_error(key, message, "invalid_value"))
            continue
        due[key] = value
    if not due_errors and due["fr_due_by"] > due["due_by"]:
        # Reported on the field the request set (fr_due_by when both were).
        if "fr_due_by" in payload:
            message = "It should be less than or equal to due_by"
            due_errors.append(_error("fr_due_by", message, "invalid_value"))
        else:
            message = "It should be greater than or equal to fr_due_by"
            due_errors.append(_error("due_by", message, "invalid_value"))
    errors += due_errors
    if errors:
        return validation_failed(errors)
    subject = str(payload.get("subject", ticket.subject))
    return _Update(subject, priority, status, tags, custom, due["fr_due_by"], due["due_by"])


# --- pure helpers --------------------------------------------------------------------------


def _tags(value: Any) -> tuple[list[str], list[dict[str, str]]]:
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        return [], [_error("tags", "It should be a/an Array of String", "datatype_mismatch")]
    errors = []
    if any(len(t) > TAG_MAX for t in value):
        message = f"It should only contain elements that have maximum of {TAG_MAX} characters"
        errors.append(_error("tags", message, "invalid_value"))
    if any("," in t for t in value):
        errors.append(_error("tags", "It should not contain elements with ','", "invalid_value"))
    return list(dict.fromkeys(value)), errors


def _custom_fields(value: Any, custom: dict[str, Any]) -> list[dict[str, str]]:
    """Apply `custom_fields` into `custom`; the errors Freshdesk would report."""
    if not isinstance(value, dict):
        return [_error("custom_fields", "It should be a/an key/value pair", "datatype_mismatch")]
    errors = []
    for key, item in value.items():
        if key not in _FIELDS:
            errors.append(_error(key, "Unexpected/invalid field in request", "invalid_field"))
            continue
        kind, choices = _FIELDS[key]
        if item is None:
            custom[key] = False if kind == "custom_checkbox" else None
        elif kind == "custom_dropdown" and item not in choices:
            errors.append(_error(key, _ONE_OF.format(",".join(choices)), "invalid_value"))
        elif kind == "custom_number" and (isinstance(item, bool) or not isinstance(item, int)):
            errors.append(_error(key, "It should be a/an Integer", "datatype_mismatch"))
        elif kind == "custom_checkbox" and not isinstance(item, bool):
            errors.append(_error(key, "It should be a/an Boolean", "datatype_mismatch"))
        elif kind == "custom_date" and not (isinstance(item, str) and _is_date(item)):
            errors.append(_error(key, "It should be in the 'yyyy-mm-dd' format", "invalid_value"))
        else:
            custom[key] = item
    return errors


def _order_value(ticket: FreshdeskTicket, order_by: str) -> int:
    if order_by == "status":
        return ticket.status
    return to_epoch(ticket.due_by if order_by == "due_by" else ticket.created_at)


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10
