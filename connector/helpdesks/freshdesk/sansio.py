"""The Freshdesk API v2 protocol without I/O: requests to send, and what the answers mean.

Each call has a `*_request(base_url, ...)` that builds a `connector.http.Request` and a
`decode_*(response)` that returns typed values or raises a typed error from `connector.errors`;
`connector.http.HttpShell.send(request, decode)` joins them. The ticket poll is a small state
machine, `TicketPoller`, because Freshdesk's list cannot be paged past page 300.

API facts, and where they come from ("docs": the Freshdesk API v2 reference; "server": the
validation code of Freshdesk's API as found in public code; "reports": issue threads of
connectors that met the behaviour; "assumed": not found written down):

- Basic auth with the API key as user and `X` as password; HTTPS only (docs).
- `GET /api/v2/tickets` takes `updated_since`, `order_by=updated_at`, `order_type=asc`,
  `per_page` up to 100, `page` and `include=stats`; without `updated_since` only the last 30
  days come back (docs). Each `include` costs 2 more credits a call (docs: "each include
  consumes an additional 2 credits"), so one list call with stats costs 3.
- The next page is announced by a `Link: <...>; rel="next"` header (docs). Page 301 and beyond
  are refused with 400 and `{"description": "Validation failed", "errors": [{"field": "page",
  "message": "You cannot access tickets beyond the 300th page. ...", "code": "invalid_value"}]}`
  (reports: airbyte issue 3858 and its recorded test body; singer-io/tap-freshdesk PR 69).
- `updated_since` includes tickets updated exactly at that instant (assumed; the restart below
  relies on it and de-duplicates what comes twice).
- Error bodies: validation errors as above, one entry per field; other errors
  `{"code": ..., "message": ...}` (docs, "Error" section). A 409 with field errors is taken as
  a validation failure (assumed: Freshdesk has no `safe_update`, so it is no edit conflict).
- Ticket update rules (server): `fr_due_by`/`due_by` not before `created_at`, `due_by` not
  before `fr_due_by` (compared with the values already on the ticket when only one is sent),
  both or neither on the ticket, and neither when the ticket's status has "stop SLA timer" set
  (pending, resolved and closed by default; custom statuses by their setting). Tags at most 32
  characters each (server: `TAG_MAX_LENGTH_STRING = 32`) and without commas (server).
"""

from __future__ import annotations

import base64
import email.utils
import html
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from connector.errors import (
    ApiError,
    ConfigError,
    FieldError,
    MalformedResponse,
    Problem,
    ValidationFailed,
    masked_setting,
)
from connector.helpdesks.freshdesk.models import (
    COMPANY_FIELD_LIST,
    COMPANY_LIST,
    NOTE_LIST,
    TICKET_FIELD_LIST,
    TICKET_LIST,
    Company,
    CompanyField,
    Note,
    Ticket,
    TicketField,
    TicketUpdate,
)
from connector.helpdesks.wire import Malformed, each_valid
from connector.http import Request, Response, check_base_url, error_for
from connector.timeutil import format_instant

__all__ = [
    "LIST_BUDGET",
    "MAX_PAGE",
    "PLAN_SUB_LIMITS",
    "TAG_MAX_LENGTH",
    "TIMER_STOPPING_STATUSES",
    "UPDATE_BUDGET",
    "ApiKeyCredentials",
    "PollPosition",
    "TicketPoller",
    "admin_ticket_fields_request",
    "base_url_for",
    "check_due_dates",
    "check_tags",
    "companies_request",
    "company_fields_request",
    "company_request",
    "create_field_request",
    "decode_admin_ticket_field",
    "decode_admin_ticket_fields",
    "decode_companies",
    "decode_company",
    "decode_company_fields",
    "decode_created_field",
    "decode_note",
    "decode_ticket",
    "decode_ticket_fields",
    "error_from",
    "has_next_page",
    "note_request",
    "refuses_tag",
    "show_request",
    "ticket_fields_request",
    "timer_stopping_choices",
    "update_body",
    "update_request",
]

T = TypeVar("T")

API = "/api/v2"
MAX_PAGE = 300
TAG_MAX_LENGTH = 32
# The plans' sub-limits, a minute (Growth, Pro, Enterprise), shared with the account's other
# integrations; Freshdesk sends no header for them: the connector paces them from the plan.
UPDATE_BUDGET = "tickets-update"
LIST_BUDGET = "tickets-list"
PLAN_SUB_LIMITS: dict[str, dict[str, int]] = {
    "growth": {UPDATE_BUDGET: 80, LIST_BUDGET: 20},
    "pro": {UPDATE_BUDGET: 160, LIST_BUDGET: 100},
    "enterprise": {UPDATE_BUDGET: 280, LIST_BUDGET: 200},
}
PER_PAGE_MAX = 100
# Statuses whose "stop SLA timer" is on out of the box: pending, resolved, closed.
TIMER_STOPPING_STATUSES = frozenset({3, 4, 5})

_DOMAIN = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
_LINK = re.compile(r"<([^<>]*)>\s*((?:;\s*[^;,]+)*)")
_REL_NEXT = re.compile(r"""rel\s*=\s*"?([^";,]*)"?""")


# --- where and who ---------------------------------------------------------------------------


def base_url_for(domain: str, *, file: str = "<config>", key: str = "freshdesk.domain") -> str:
    """`https://{domain}.freshdesk.com` for an account name; a full URL is checked as given."""
    if "://" in domain:
        return check_base_url(domain, file=file, key=key)
    name = domain.strip().lower().removesuffix(".freshdesk.com")
    if not _DOMAIN.fullmatch(name):
        shown = masked_setting(domain)  # an API key pasted here is the likely mistake
        raise ConfigError([Problem(file, key, f"expected a Freshdesk account name, got {shown!r}")])
    return f"https://{name}.freshdesk.com"


class ApiKeyCredentials:
    """Basic auth with the API key as user and `X` as password; never shows the key."""

    __slots__ = ("_authorization",)

    def __init__(self, api_key: str) -> None:
        if not api_key.strip():
            raise ValueError("the Freshdesk API key is empty")
        token = base64.b64encode(f"{api_key.strip()}:X".encode()).decode("ascii")
        self._authorization = f"Basic {token}"

    def headers(self) -> Mapping[str, str]:
        """The Authorization header for every request."""
        return {"Authorization": self._authorization}

    def refresh(self) -> bool:
        """An API key cannot renew itself: a 401 is final."""
        return False

    def __repr__(self) -> str:
        return "ApiKeyCredentials(api_key='***')"

    __str__ = __repr__


# --- errors ----------------------------------------------------------------------------------


def _body_json(response: Response) -> Any:
    try:
        return json.loads(response.body)
    except ValueError:
        return None


def error_from(response: Response) -> ApiError:
    """The typed error for a failed Freshdesk response, worded from its error body."""
    body = _body_json(response)
    # A Freshdesk 409 names a duplicate value (assumed from the docs' wording, "conflicting
    # state"), not a concurrent edit: re-reading would not help, so it is a field error too.
    generic_statuses = {401, 403, 404, 429}
    if (
        isinstance(body, dict)
        and isinstance(body.get("errors"), list)
        and 400 <= response.status < 500
        and response.status not in generic_statuses
    ):
        errors = [
            FieldError(
                field=str(item.get("field") or ""),
                message=str(item.get("message") or ""),
                code=None if item.get("code") is None else str(item["code"]),
            )
            for item in body["errors"]
            if isinstance(item, dict)
        ]
        method, url = response.request.describe()
        request_id = error_for(response, "").request_id
        return ValidationFailed(
            str(body.get("description") or "Validation failed"),
            method=method,
            url=url,
            status=response.status,
            request_id=request_id,
            errors=errors,
        )
    if isinstance(body, dict) and (body.get("message") or body.get("code")):
        code, message = body.get("code"), body.get("message") or body.get("description")
        text = f"{code}: {message}" if code and message else str(code or message)
    else:
        text = response.text() or f"HTTP {response.status} with an empty body"
    return error_for(response, text)


def _decode(response: Response, adapter: TypeAdapter[T], what: str) -> T:
    if not 200 <= response.status < 300:
        raise error_from(response)
    try:
        return adapter.validate_json(response.body)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        method, url = response.request.describe()
        raise MalformedResponse(
            f"expected {what}; {exc.error_count()} problem(s), first at {where}: {first['msg']}",
            method=method,
            url=url,
            status=response.status,
            request_id=error_for(response, "").request_id,
        ) from None


_TICKET = TypeAdapter(Ticket)
_COMPANY = TypeAdapter(Company)
_NOTE = TypeAdapter(Note)


# --- paging ----------------------------------------------------------------------------------


def has_next_page(headers: Mapping[str, str]) -> bool:
    """Whether the `Link` header announces a next page (`rel="next"`)."""
    link = headers.get("link")
    if not link:
        return False
    for _url, params in _LINK.findall(link):
        for rel in _REL_NEXT.findall(params):
            if "next" in rel.split():
                return True
    return False


class PollPosition(BaseModel):
    """Where a ticket poll stands, to persist and resume from after a restart.

    `start` is where the poll began (no round reaches back before it). `seen` holds the
    `(id, updated_at)` versions already reported that a later request can return again: they
    are not reported twice. `seen_ids` is the form of positions saved before rounds overlapped
    (the ids reported at `last_updated_at`); it is read, never written.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    since: AwareDatetime
    page: int = Field(default=1, ge=1)
    last_updated_at: AwareDatetime | None = None
    start: AwareDatetime | None = None
    unsure_from: AwareDatetime | None = None
    round_time: AwareDatetime | None = None
    seen: tuple[tuple[int, AwareDatetime], ...] = ()
    seen_ids: tuple[int, ...] = ()


class TicketPoller:
    """Pages through tickets updated since an instant, oldest change first, no version twice.

    `next_request(base_url)` says what to ask; `feed(response)` takes the answer and returns the
    tickets not reported before. Freshdesk refuses page 301, so before reaching it the poller
    starts again at page 1 with `updated_since` set to the last `updated_at` it saw, and drops
    the versions it already reported. A 400 for the page is handled the same way.

    `restart_every` starts again from the last `updated_at` after that many pages. The default,
    1, asks every page as page 1 from the last instant seen (page 2, 3... only while a whole
    page shares one `updated_at`). That is what a writer needs: each write between pages moves a
    ticket to the end of the `updated_at` order and shifts every later page by one, so following
    `Link` to page N+1 would skip one unread ticket per write. The cost is the few tickets of the
    last instant coming twice (dropped here). 300 follows `Link` up to Freshdesk's cap, for a
    reader that writes nothing while it pages.

    After the last page `next_request` returns None until `start_round()`. The next round asks
    again from `OVERLAP` before the last `updated_at` seen (never before the poll's start): a
    change stamped a little before one already seen (Freshdesk's servers disagree by seconds;
    a slow write shows after later ones) is read then, and what was reported already is
    dropped by `(id, updated_at)`. A ticket stamped later than the helpdesk's own clock (its
    `Date` header, else `clock`) is reported and listed in `ahead`, but never moves the
    position: one bad stamp cannot make the poll jump over the changes still to come.
    """

    # How far each round reaches back before the last change seen.
    OVERLAP = timedelta(minutes=2)
    # How far past the helpdesk's clock a stamp may be before it counts as dated in the future.
    AHEAD_TOLERANCE = timedelta(seconds=5)

    def __init__(
        self,
        since: datetime,
        per_page: int = PER_PAGE_MAX,
        include: str | None = "stats",
        *,
        restart_every: int = 1,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        if not 1 <= per_page <= PER_PAGE_MAX:
            raise ValueError(f"per_page must be 1..{PER_PAGE_MAX}, got {per_page}")
        if not 1 <= restart_every <= MAX_PAGE:
            raise ValueError(f"restart_every must be 1..{MAX_PAGE}, got {restart_every}")
        self.per_page = per_page
        self.include = include
        self.restart_every = restart_every
        self._clock = clock
        self._start = since
        self._since = since
        self._page = 1
        self._last: datetime | None = None
        # The latest stamp (not dated ahead) of the pages asked since `since` was set: the
        # list is in `updated_at` order, so every change before it has been read.
        self._read_to: datetime | None = None
        # Where pages asked by number (2, 3...) began: a change made meanwhile shifts them,
        # so the round that follows reaches back there.
        self._unsure_from: datetime | None = None
        # The helpdesk's clock when this round's first page was answered: a change that shows
        # later is stamped at most OVERLAP before it.
        self._round_time: datetime | None = None
        self._seen: set[tuple[int, datetime]] = set()
        self._done = False
        self.ahead: list[Ticket] = []
        self.malformed: list[Malformed] = []

    @classmethod
    def resume(
        cls,
        position: PollPosition,
        per_page: int = PER_PAGE_MAX,
        include: str | None = "stats",
        *,
        restart_every: int = 1,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> TicketPoller:
        """A poller that carries on from a persisted `position`."""
        poller = cls(position.since, per_page, include, restart_every=restart_every, clock=clock)
        poller._page = position.page
        poller._start = position.start or position.since
        poller._unsure_from = position.unsure_from
        poller._round_time = position.round_time
        poller._last = position.last_updated_at
        poller._seen = set(position.seen)
        if position.last_updated_at is not None:
            poller._seen.update((i, position.last_updated_at) for i in position.seen_ids)
        return poller

    @property
    def since(self) -> datetime:
        """The `updated_since` of the requests in hand."""
        return self._since

    @property
    def page(self) -> int:
        """The page the next request asks for."""
        return self._page

    @property
    def last_updated_at(self) -> datetime | None:
        """The latest `updated_at` reported so far that is not dated in the future."""
        return self._last

    @property
    def done(self) -> bool:
        """Whether this round has read the last page."""
        return self._done

    @property
    def position(self) -> PollPosition:
        """Everything needed to resume exactly here."""
        return PollPosition(
            since=self._since,
            page=self._page,
            last_updated_at=self._last,
            start=self._start,
            unsure_from=self._unsure_from,
            round_time=self._round_time,
            seen=tuple(sorted(self._seen)),
        )

    def start_round(self) -> None:
        """Allow the next round of requests after the last page of the previous one."""
        self._done = False

    def next_request(self, base_url: str) -> Request | None:
        """The next page to ask for, or None when this round has read the last page."""
        if self._done:
            return None
        params = [
            ("updated_since", format_instant(self._since)),
            ("order_by", "updated_at"),
            ("order_type", "asc"),
            ("per_page", str(self.per_page)),
        ]
        if self.include:
            params.append(("include", self.include))
        params.append(("page", str(self._page)))
        return Request("GET", f"{base_url}{API}/tickets", params=tuple(params), budget=LIST_BUDGET)

    def feed(self, response: Response) -> list[Ticket]:
        """Take one page's answer; return the tickets (or new versions) not reported before.

        Raises the typed error of a failed response, except Freshdesk's refusal of a page past
        300, after which the poller starts again from the last `updated_at` and returns [].
        Tickets dated past the helpdesk's clock are returned too, and listed in `ahead`.
        """
        if response.status == 400 and self._page > 1:
            error = error_from(response)
            if isinstance(error, ValidationFailed) and any(e.field == "page" for e in error.errors):
                restart_at = self._restart_point()
                if restart_at is None:
                    raise error
                self._restart(restart_at)
                return []
            raise error
        tickets, self.malformed = _decode_tickets(response)
        server_time = _server_time(response.headers) or self._clock()
        if self._round_time is None:
            self._round_time = server_time
        latest_allowed = server_time + self.AHEAD_TOLERANCE
        fresh: list[Ticket] = []
        self.ahead = []
        for ticket in tickets:
            stamp = ticket.updated_at
            if stamp <= latest_allowed and (self._read_to is None or stamp > self._read_to):
                self._read_to = stamp
            if (ticket.id, stamp) in self._seen:
                continue
            fresh.append(ticket)
            self._seen.add((ticket.id, stamp))
            if stamp > latest_allowed:
                self.ahead.append(ticket)
            elif self._last is None or stamp > self._last:
                self._last = stamp
        restart_at = self._restart_point()
        if not has_next_page(response.headers):
            self._restart(self._floor())
            self._unsure_from = self._round_time = None
            self._done = True
        elif self._page >= self.restart_every and restart_at is not None:
            self._restart(restart_at)
        elif self._page >= MAX_PAGE:
            method, url = response.request.describe()
            raise ApiError(
                f"more than {MAX_PAGE} pages of tickets were updated at "
                f"{format_instant(self._since)}; Freshdesk cannot page past them",
                method=method,
                url=url,
            )
        else:
            if self._unsure_from is None or self._since < self._unsure_from:
                self._unsure_from = self._since
            self._page += 1
        return fresh

    def _restart_point(self) -> datetime | None:
        """The later `updated_since` to start again from; None when there is none yet.

        The last change read in this run of pages, not the latest ever seen: a round that
        reaches back by OVERLAP must not jump over the changes between.
        """
        if self._read_to is not None and self._read_to > self._since:
            return self._read_to
        return None

    def _floor(self) -> datetime:
        """The earliest `updated_since` any later request asks: where the next round starts.

        `OVERLAP` before the helpdesk's clock at the round's first page (a change that shows
        later is stamped after that), and never after the `updated_since` in hand nor where
        pages were last asked by number: pages shift under changes made meanwhile (a ticket
        changed moves to the end of the list), so only what comes before is surely read.
        """
        floor = min(self._since, self._unsure_from or self._since)
        if self._round_time is not None:
            floor = min(floor, self._round_time - self.OVERLAP)
        return max(self._start, floor)

    def _restart(self, since: datetime) -> None:
        self._since = since
        self._page = 1
        self._read_to = None
        # Only versions a later request can return again need remembering: every later
        # `updated_since` is at the floor or after it.
        floor = self._floor()
        self._seen = {(i, stamp) for i, stamp in self._seen if stamp >= floor}


def _decode_tickets(response: Response) -> tuple[list[Ticket], list[Malformed]]:
    """A page of tickets; those that do not read are left out and reported, not the page.

    Validated from its JSON in one pass; read again ticket by ticket only when that fails
    (see `connector.helpdesks.wire`).
    """
    if not 200 <= response.status < 300:
        raise error_from(response)
    try:
        return list(TICKET_LIST.validate_json(response.body)), []
    except ValidationError:
        pass
    try:
        records = json.loads(response.body)
    except ValueError:
        records = None
    if not isinstance(records, list):
        _decode(response, TICKET_LIST, "a JSON list of tickets")  # raises, saying where
    return each_valid(records, Ticket)


def _server_time(headers: Mapping[str, str]) -> datetime | None:
    """The helpdesk's clock when it answered (the `Date` header), if it says."""
    try:
        when = email.utils.parsedate_to_datetime(headers.get("date", ""))
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo is not None else None


# --- tickets ---------------------------------------------------------------------------------


def show_request(base_url: str, ticket_id: int, include: str | None = "stats") -> Request:
    """`GET /api/v2/tickets/{id}?include=stats`."""
    params = (("include", include),) if include else ()
    return Request("GET", f"{base_url}{API}/tickets/{ticket_id}", params=params)


def decode_ticket(response: Response) -> Ticket:
    """The ticket of a show or update answer."""
    return _decode(response, _TICKET, "a JSON ticket")


def refuses_tag(tag: str) -> bool:
    """Whether Freshdesk refuses a ticket's tag list that holds `tag` (too long, a comma)."""
    return len(tag) > TAG_MAX_LENGTH or "," in tag


def check_tags(tags: Iterable[str], *, method: str = "PUT", url: str = "") -> None:
    """Refuse, before sending, the tags Freshdesk would refuse (over 32 characters, commas)."""
    errors = [
        FieldError(
            "tags", f"{tag!r} has {len(tag)} characters, at most {TAG_MAX_LENGTH}", "invalid_value"
        )
        for tag in tags
        if len(tag) > TAG_MAX_LENGTH
    ]
    errors += [
        FieldError("tags", f"{tag!r} holds a comma, which Freshdesk refuses", "invalid_value")
        for tag in tags
        if "," in tag
    ]
    if errors:
        raise ValidationFailed(
            "refused before sending", method=method, url=url, status=None, errors=errors
        )


def check_due_dates(
    ticket: Ticket,
    update: TicketUpdate,
    *,
    timer_stopping_statuses: Iterable[int] = TIMER_STOPPING_STATUSES,
) -> TicketUpdate:
    """The update as Freshdesk will take it; due dates it would refuse are dropped or refused.

    - On a ticket whose status stops the SLA timer, the due dates are dropped from the update
      (the rest still goes) and the reason is added to `update.dropped` for the caller to log.
    - A due date before `created_at`, a `due_by` before `fr_due_by` (with the ticket's own
      value standing in for the one not sent), or a ticket left with only one of the two raises
      `ValidationFailed`: the computation upstream is wrong, and sending would only fail.
    """
    if update.fr_due_by is None and update.due_by is None:
        return update
    if ticket.status in frozenset(timer_stopping_statuses):
        reason = (
            f"ticket {ticket.id}: status {ticket.status} stops the SLA timer; "
            "Freshdesk refuses fr_due_by/due_by, not written"
        )
        return update.model_copy(
            update={"fr_due_by": None, "due_by": None, "dropped": (*update.dropped, reason)}
        )
    errors: list[FieldError] = []
    for name, value in (("fr_due_by", update.fr_due_by), ("due_by", update.due_by)):
        if value is not None and value < ticket.created_at:
            errors.append(
                FieldError(
                    name,
                    f"{format_instant(value)} is before created_at "
                    f"{format_instant(ticket.created_at)}",
                    "invalid_value",
                )
            )
    first = update.fr_due_by or ticket.fr_due_by
    final = update.due_by or ticket.due_by
    if first is None or final is None:
        missing = "fr_due_by" if first is None else "due_by"
        errors.append(
            FieldError(missing, "Freshdesk needs fr_due_by and due_by together", "missing_field")
        )
    elif final < first:
        errors.append(
            FieldError(
                "due_by",
                f"{format_instant(final)} is before fr_due_by {format_instant(first)}",
                "invalid_value",
            )
        )
    if errors:
        raise ValidationFailed(
            f"ticket {ticket.id}: due dates refused before sending",
            method="PUT",
            url=f"{API}/tickets/{ticket.id}",
            status=None,
            errors=errors,
        )
    return update


def update_body(update: TicketUpdate) -> dict[str, Any]:
    """The JSON body of a ticket update: only the attributes that change."""
    body: dict[str, Any] = {}
    if update.fr_due_by is not None:
        body["fr_due_by"] = format_instant(update.fr_due_by)
    if update.due_by is not None:
        body["due_by"] = format_instant(update.due_by)
    if update.priority is not None:
        body["priority"] = update.priority
    if update.tags is not None:
        body["tags"] = list(update.tags)
    if update.custom_fields:
        body["custom_fields"] = dict(update.custom_fields)
    return body


def update_request(base_url: str, ticket_id: int, update: TicketUpdate) -> Request:
    """`PUT /api/v2/tickets/{id}` with the changed attributes; bad tags refused here."""
    url = f"{base_url}{API}/tickets/{ticket_id}"
    if update.is_empty:
        raise ValueError(f"ticket {ticket_id}: an empty update has nothing to send")
    if update.tags is not None:
        check_tags(update.tags, method="PUT", url=url)
    return Request("PUT", url, json=update_body(update), budget=UPDATE_BUDGET)


# --- notes -----------------------------------------------------------------------------------


def note_request(base_url: str, ticket_id: int, text: str) -> Request:
    """`POST /api/v2/tickets/{id}/notes`: a private note showing `text` as written."""
    # Freshdesk renders the body as HTML: escape it so a "<" in a reason stays a "<".
    body = html.escape(text).replace("\r\n", "\n").replace("\n", "<br>")
    return Request(
        "POST",
        f"{base_url}{API}/tickets/{ticket_id}/notes",
        json={"body": body, "private": True},
    )


def decode_note(response: Response) -> Note:
    """The note Freshdesk created."""
    return _decode(response, _NOTE, "a JSON note")


def conversations_request(base_url: str, ticket_id: int, page: int = 1) -> Request:
    """`GET /api/v2/tickets/{id}/conversations?per_page=100&page=N` (oldest first)."""
    params = (("per_page", str(PER_PAGE_MAX)), ("page", str(page)))
    return Request("GET", f"{base_url}{API}/tickets/{ticket_id}/conversations", params=params)


def decode_private_notes(response: Response) -> tuple[list[str], bool]:
    """The private notes' text of one page, and whether the `Link` header announces another."""
    notes = _decode(response, NOTE_LIST, "a JSON list of conversations")
    return [n.body_text or n.body for n in notes if n.private], has_next_page(response.headers)


# --- companies and fields --------------------------------------------------------------------


def company_request(base_url: str, company_id: int) -> Request:
    """`GET /api/v2/companies/{id}`."""
    return Request("GET", f"{base_url}{API}/companies/{company_id}")


def decode_company(response: Response) -> Company:
    """The company of a show answer."""
    return _decode(response, _COMPANY, "a JSON company")


def companies_request(base_url: str, page: int = 1, per_page: int = PER_PAGE_MAX) -> Request:
    """`GET /api/v2/companies?per_page=100&page=N`."""
    params = (("per_page", str(per_page)), ("page", str(page)))
    return Request("GET", f"{base_url}{API}/companies", params=params)


def decode_companies(response: Response) -> tuple[list[Company], bool]:
    """One page of companies, and whether the `Link` header announces another."""
    companies = _decode(response, COMPANY_LIST, "a JSON list of companies")
    return companies, has_next_page(response.headers)


def ticket_fields_request(base_url: str) -> Request:
    """`GET /api/v2/ticket_fields` (not paginated)."""
    return Request("GET", f"{base_url}{API}/ticket_fields")


def decode_ticket_fields(response: Response) -> list[TicketField]:
    """The ticket field definitions."""
    return _decode(response, TICKET_FIELD_LIST, "a JSON list of ticket fields")


def admin_ticket_fields_request(base_url: str, field_id: int | None = None) -> Request:
    """`GET /api/v2/admin/ticket_fields[/{id}]` (admins only): field definitions with the
    status choices' `stop_sla_timer` flags, which the public endpoint leaves out."""
    path = f"{base_url}{API}/admin/ticket_fields"
    return Request("GET", path if field_id is None else f"{path}/{field_id}")


class _AdminField(BaseModel):
    """An admin field definition, as far as the status field's SLA timer flags go."""

    id: int
    name: str
    choices: Any = None


_ADMIN_FIELD = TypeAdapter(_AdminField)
_ADMIN_FIELDS = TypeAdapter(list[_AdminField])


def decode_admin_ticket_fields(response: Response) -> list[_AdminField]:
    """The admin listing of ticket fields."""
    return _decode(response, _ADMIN_FIELDS, "a JSON list of ticket fields")


def decode_admin_ticket_field(response: Response) -> _AdminField:
    """One admin ticket field definition."""
    return _decode(response, _ADMIN_FIELD, "a ticket field")


def timer_stopping_choices(field: _AdminField) -> frozenset[int] | None:
    """The status ids whose choice says `stop_sla_timer: true` (None: the field lists no such
    flags, as a listing may not). A choice's `id` is the status id (2 open ... 6, 7 custom)."""
    if not isinstance(field.choices, list):
        return None
    stopping: set[int] = set()
    flagged = False
    for choice in field.choices:
        if not isinstance(choice, dict) or "stop_sla_timer" not in choice:
            continue
        flagged = True
        number = choice.get("id")
        stops = choice.get("stop_sla_timer") is True and not choice.get("deleted")
        if stops and isinstance(number, int) and not isinstance(number, bool):
            stopping.add(number)
    return frozenset(stopping) if flagged else None


def create_field_request(
    base_url: str, level: str, label: str, kind: str, choices: Sequence[str] = ()
) -> Request:
    """`POST /api/v2/admin/ticket_fields` (`level` "ticket") or `/admin/company_fields`
    ("company"), admins only: a custom field (`custom_text`, `custom_dropdown`...); its name
    comes from its label."""
    body: dict[str, Any] = {"label": label, "type": kind}
    if level == "ticket":
        body["label_for_customers"] = label
    if choices:
        body["choices"] = [{"value": c, "position": n} for n, c in enumerate(choices, start=1)]
    return Request("POST", f"{base_url}{API}/admin/{level}_fields", json=body)


def decode_created_field(response: Response) -> TicketField:
    """The field just created."""
    return _decode(response, TypeAdapter(TicketField), "a field")


def company_fields_request(base_url: str) -> Request:
    """`GET /api/v2/company_fields` (not paginated)."""
    return Request("GET", f"{base_url}{API}/company_fields")


def decode_company_fields(response: Response) -> list[CompanyField]:
    """The company field definitions."""
    return _decode(response, COMPANY_FIELD_LIST, "a JSON list of company fields")
