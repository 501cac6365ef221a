"""The Zendesk API as pure functions: build a `Request`, decode a `Response`.

Nothing here touches the network or the clock. `ZendeskClient` pairs each builder with its
decoder over `HttpShell.send`. Where a behaviour below comes from the Zendesk API reference it
says "documented"; where the reference is silent and the code relies on observed or assumed
behaviour it says "assumed".
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, Field, ValidationError

from connector.errors import (
    ApiError,
    FieldError,
    MalformedResponse,
    ValidationFailed,
    masked_setting,
)
from connector.helpdesks.wire import Malformed, each_valid
from connector.helpdesks.zendesk.models import (
    EventsPage,
    EventStatus,
    ExportPage,
    FieldsPage,
    JobStatus,
    MetricSet,
    Organization,
    OrganizationField,
    Ticket,
    TicketField,
    TicketPage,
    TicketUpdate,
    TicketWrite,
)
from connector.http import Request, Response, error_for
from connector.timeutil import format_instant, to_epoch

__all__ = [
    "EVENTS_PATH",
    "EXPORT_BUDGET",
    "EXPORT_PATH",
    "FIELDS_PAGE_SIZE",
    "MAX_IDS",
    "SIDELOADS",
    "UPDATE_BUDGET",
    "UPDATE_MANY_PATH",
    "base_url_for",
    "create_organization_field_request",
    "create_ticket_field_request",
    "custom_statuses_request",
    "decode_created_organization_field",
    "decode_created_ticket_field",
    "decode_custom_statuses",
    "decode_error",
    "decode_export",
    "decode_job_status",
    "decode_organization_fields",
    "decode_organizations",
    "decode_ticket",
    "decode_ticket_events",
    "decode_ticket_fields",
    "decode_tickets",
    "export_request",
    "job_seconds",
    "job_status_request",
    "organization_fields_request",
    "organizations_request",
    "show_many_request",
    "show_request",
    "ticket_body",
    "ticket_events_request",
    "ticket_fields_request",
    "update_many_request",
    "update_request",
]

EXPORT_PATH = "/api/v2/incremental/tickets/cursor.json"
UPDATE_MANY_PATH = "/api/v2/tickets/update_many.json"
EVENTS_PATH = "/api/v2/incremental/ticket_events.json"
EVENTS_PAGE = 1000  # audits a full page of the events export holds
# The endpoints' own budgets, as Zendesk names them in its `Zendesk-RateLimit-<name>` headers:
# Update Ticket (100 a minute an account, 300 with High Volume, spent by the agents' own
# updates in the UI too) and the incremental exports (10 a minute, 30 with High Volume).
UPDATE_BUDGET = "tickets-update"
EXPORT_BUDGET = "incremental-exports"
# Documented: show_many for tickets and organizations, and update_many, take up to 100.
MAX_IDS = 100
# Documented: cursor pagination of ticket and organization fields returns at most 100 a page.
FIELDS_PAGE_SIZE = 100
# Documented sideloads of the ticket endpoints (incremental export included).
SIDELOADS = ("organizations", "metric_sets")

_SUBDOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]*$")
M = TypeVar("M", bound=BaseModel)


def base_url_for(subdomain: str) -> str:
    """The API base of a Zendesk account: `https://{subdomain}.zendesk.com`."""
    name = subdomain.strip().lower()
    if not _SUBDOMAIN.match(name):
        # An API token pasted here is the likely mistake: not repeated.
        raise ValueError(f"not a Zendesk subdomain: {masked_setting(subdomain)!r}")
    return f"https://{name}.zendesk.com"


# --- requests --------------------------------------------------------------------------------


def _ids(ids: Iterable[int]) -> str:
    unique = sorted(set(ids))
    if not unique:
        raise ValueError("no ids given")
    if len(unique) > MAX_IDS:
        raise ValueError(f"{len(unique)} ids given, Zendesk takes at most {MAX_IDS} a call")
    return ",".join(str(i) for i in unique)


def export_request(
    base: str,
    *,
    start_time: datetime | None = None,
    cursor: str | None = None,
    include: Sequence[str] = SIDELOADS,
    exclude_deleted: bool = True,
) -> Request:
    """The next page of the cursor-based incremental ticket export.

    Documented: `start_time` (epoch seconds) on the first call only, then the page's
    `after_cursor` alone; pages hold up to 1000 tickets (the default and the maximum, so
    `per_page` is not sent); the last minute is left out. Assumed: `include` and
    `exclude_deleted` filter every page, so they go with the cursor too.
    """
    if (start_time is None) == (cursor is None):
        raise ValueError("give exactly one of start_time (first call) or cursor (next pages)")
    params: list[tuple[str, str]] = []
    if cursor is not None:
        params.append(("cursor", cursor))
    else:
        assert start_time is not None
        params.append(("start_time", str(to_epoch(start_time))))
    if include:
        params.append(("include", ",".join(include)))
    if exclude_deleted:
        params.append(("exclude_deleted", "true"))
    return Request("GET", base + EXPORT_PATH, params=tuple(params), budget=EXPORT_BUDGET)


def ticket_events_request(base: str, start_time: int) -> Request:
    """A page of the time-based incremental ticket events export (1000 audits a page, its
    own 10 requests a minute, the last minute left out): every audit from `start_time` on."""
    return Request("GET", base + EVENTS_PATH, params=(("start_time", str(start_time)),))


def show_request(base: str, ticket_id: int, *, include: Sequence[str] = SIDELOADS) -> Request:
    """One ticket with its organization and metric set sideloaded."""
    params = (("include", ",".join(include)),) if include else ()
    return Request("GET", f"{base}/api/v2/tickets/{ticket_id}.json", params=params)


def show_many_request(
    base: str, ids: Iterable[int], *, include: Sequence[str] = SIDELOADS
) -> Request:
    """Up to 100 tickets by id (documented limit), with sideloads."""
    params = [("ids", _ids(ids))]
    if include:
        params.append(("include", ",".join(include)))
    return Request("GET", f"{base}/api/v2/tickets/show_many.json", params=tuple(params))


def ticket_body(update: TicketUpdate, updated_stamp: datetime) -> dict[str, Any]:
    """The `ticket` object of an update, guarded by `safe_update`.

    Documented: with `safe_update` and `updated_stamp` (the `updated_at` as read) Zendesk
    refuses the change with 409 if the ticket changed since; `tags` would replace every tag,
    so only `additional_tags`/`remove_tags` are sent; a comment with `public: false` is a
    private note, written in the same audit as the fields. The guard is also what makes the
    shell's retry of this PUT safe: if the first attempt landed, `updated_at` moved on and the
    retry gets 409 instead of posting the note twice.
    """
    body: dict[str, Any] = {"safe_update": True, "updated_stamp": format_instant(updated_stamp)}
    if update.custom_fields:
        body["custom_fields"] = [
            {"id": field_id, "value": value} for field_id, value in update.custom_fields.items()
        ]
    if update.priority is not None:
        body["priority"] = update.priority
    if update.additional_tags:
        body["additional_tags"] = list(update.additional_tags)
    if update.remove_tags:
        body["remove_tags"] = list(update.remove_tags)
    if update.note:
        body["comment"] = {"body": update.note, "public": False}
    return body


def update_request(
    base: str, ticket_id: int, update: TicketUpdate, updated_stamp: datetime
) -> Request:
    """`PUT /api/v2/tickets/{id}.json`: fields, priority, tags and note in one request."""
    if update.is_empty:
        raise ValueError(f"ticket {ticket_id}: nothing to update")
    return Request(
        "PUT",
        f"{base}/api/v2/tickets/{ticket_id}.json",
        json={"ticket": ticket_body(update, updated_stamp)},
        budget=UPDATE_BUDGET,
    )


def update_many_request(base: str, writes: Sequence[TicketWrite]) -> Request:
    """`PUT /api/v2/tickets/update_many.json` with up to 100 different updates (a job).

    Documented: the batch form takes a `tickets` array, each with its own `id`. Assumed:
    `safe_update` works per ticket there too, a conflict showing as a failed job result.
    """
    if not writes:
        raise ValueError("no tickets to update")
    if len(writes) > MAX_IDS:
        raise ValueError(f"{len(writes)} tickets given, update_many takes at most {MAX_IDS}")
    if len({write.ticket_id for write in writes}) != len(writes):
        raise ValueError("a ticket appears twice in one batch")
    tickets = []
    for write in writes:
        if write.update.is_empty:
            raise ValueError(f"ticket {write.ticket_id}: nothing to update")
        tickets.append({"id": write.ticket_id, **ticket_body(write.update, write.updated_stamp)})
    return Request("PUT", f"{base}{UPDATE_MANY_PATH}", json={"tickets": tickets})


def job_seconds(entries: int) -> float:
    """About how long an update_many job of `entries` tickets runs: 2 s for one, 5 s for 50,
    10 s for 100 (observed, zenpy's recordings of 2023)."""
    return 1.5 + 0.085 * entries


def job_status_request(base: str, job_id: str) -> Request:
    """`GET /api/v2/job_statuses/{id}.json`."""
    if not job_id or "/" in job_id:
        raise ValueError(f"not a job id: {job_id!r}")
    return Request("GET", f"{base}/api/v2/job_statuses/{job_id}.json")


def organizations_request(base: str, ids: Iterable[int]) -> Request:
    """Up to 100 organizations by id (documented `show_many` limit)."""
    return Request(
        "GET", f"{base}/api/v2/organizations/show_many.json", params=(("ids", _ids(ids)),)
    )


def _fields_request(url: str, after: str | None) -> Request:
    # Documented: `page[size]` switches these lists to cursor pagination (at most 100).
    params = [("page[size]", str(FIELDS_PAGE_SIZE))]
    if after is not None:
        params.append(("page[after]", after))
    return Request("GET", url, params=tuple(params))


def custom_statuses_request(base: str) -> Request:
    """`GET /api/v2/custom_statuses` (not paginated): the account's statuses, each with its
    category (`new`, `open`, `pending`, `hold`, `solved`)."""
    return Request("GET", f"{base}/api/v2/custom_statuses.json")


class _CustomStatus(BaseModel):
    id: int
    status_category: str


class _CustomStatusesBody(BaseModel):
    custom_statuses: list[dict[str, Any]]


def decode_custom_statuses(response: Response) -> dict[str, str]:
    """Custom status id (as text) → its Zendesk category; a record that does not read is left
    out (its changes then stay unknown from the events export)."""
    body = _decode(response, _CustomStatusesBody)
    statuses, _ = each_valid(body.custom_statuses, _CustomStatus)
    return {str(status.id): status.status_category for status in statuses}


def ticket_fields_request(base: str, after: str | None = None) -> Request:
    """One page of ticket field definitions; `after` is the previous page's cursor."""
    return _fields_request(f"{base}/api/v2/ticket_fields.json", after)


def organization_fields_request(base: str, after: str | None = None) -> Request:
    """One page of organization field definitions; `after` is the previous page's cursor."""
    return _fields_request(f"{base}/api/v2/organization_fields.json", after)


def create_ticket_field_request(
    base: str, kind: str, title: str, options: Sequence[tuple[str, str]] = ()
) -> Request:
    """`POST /api/v2/ticket_fields.json`: a custom ticket field; `options` (title, tag) for a
    drop-down (`tagger`)."""
    field: dict[str, Any] = {"type": kind, "title": title}
    if options:
        field["custom_field_options"] = [{"name": n, "value": v} for n, v in options]
    return Request("POST", f"{base}/api/v2/ticket_fields.json", json={"ticket_field": field})


def create_organization_field_request(
    base: str, kind: str, key: str, title: str, options: Sequence[tuple[str, str]] = ()
) -> Request:
    """`POST /api/v2/organization_fields.json`: a custom organization field under `key`;
    `options` (title, value) for a drop-down."""
    field: dict[str, Any] = {"type": kind, "key": key, "title": title}
    if options:
        field["custom_field_options"] = [{"name": n, "value": v} for n, v in options]
    return Request(
        "POST", f"{base}/api/v2/organization_fields.json", json={"organization_field": field}
    )


class _CreatedTicketField(BaseModel):
    ticket_field: TicketField


class _CreatedOrganizationField(BaseModel):
    organization_field: OrganizationField


def decode_created_ticket_field(response: Response) -> TicketField:
    """The ticket field just created."""
    return _decode(response, _CreatedTicketField).ticket_field


def decode_created_organization_field(response: Response) -> OrganizationField:
    """The organization field just created."""
    return _decode(response, _CreatedOrganizationField).organization_field


def comments_request(base: str, ticket_id: int, after: str | None = None) -> Request:
    """One page of a ticket's comments, newest first (cursor pagination, 100 a page)."""
    params = [("page[size]", str(FIELDS_PAGE_SIZE)), ("sort_order", "desc")]
    if after is not None:
        params.append(("page[after]", after))
    return Request("GET", f"{base}/api/v2/tickets/{ticket_id}/comments.json", params=tuple(params))


# --- responses -------------------------------------------------------------------------------


def _is_json(response: Response) -> bool:
    kind = response.headers.get("content-type", "").lower()
    return "json" in kind or response.body.lstrip()[:1] in (b"{", b"[")


def _error_message(body: Any) -> tuple[str, list[FieldError]]:
    """The message ("" if none) and field errors of the documented Zendesk error bodies."""
    if not isinstance(body, dict):
        return "", []
    error = body.get("error")
    problems: list[FieldError] = []
    details = body.get("details")
    if isinstance(details, dict):
        # {"error": "RecordInvalid", "description": ..., "details": {field: [{description,
        # error}]}}: the documented shape of 400/422 answers.
        for field_name, entries in details.items():
            for entry in entries if isinstance(entries, list) else [entries]:
                if isinstance(entry, dict):
                    problems.append(
                        FieldError(
                            str(field_name),
                            str(entry.get("description") or entry.get("message") or entry),
                            None if entry.get("error") is None else str(entry["error"]),
                        )
                    )
                else:
                    problems.append(FieldError(str(field_name), str(entry)))
    if isinstance(error, dict):  # {"error": {"title": ..., "message": ...}} (newer endpoints)
        parts = [str(error[key]) for key in ("title", "message") if error.get(key)]
        return ": ".join(parts), problems
    parts = [str(part) for part in (error, body.get("description")) if part]
    return ": ".join(parts), problems


def decode_error(response: Response) -> ApiError:
    """The typed error for a failed response, worded from whatever body came back.

    JSON bodies give their message (and, on 400/422, one `FieldError` per detail); a
    text/plain body (as the recorded 409 on concurrent imports) is quoted; an HTML page, as a
    proxy or load balancer sends, is only named, never dumped.
    """
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    problems: list[FieldError] = []
    if _is_json(response):
        try:
            message, problems = _error_message(response.json())
        except ValueError:
            message = ""
        message = message or f"error body without a message: {response.text(200)!r}"
    elif "html" in kind or response.body.lstrip()[:1] == b"<":
        message = f"HTML error page ({response.status}), likely from a proxy, not the API"
    elif response.body.strip():
        message = response.text()
    else:
        message = f"HTTP {response.status} with an empty body"
    if response.status in (400, 422) and problems:
        method, url = response.request.describe()
        base = error_for(response, message)
        return ValidationFailed(
            message,
            method=method,
            url=url,
            status=response.status,
            request_id=base.request_id,
            errors=problems,
        )
    return error_for(response, message)


def _malformed(response: Response, why: str) -> MalformedResponse:
    method, url = response.request.describe()
    request_id = error_for(response, why).request_id
    return MalformedResponse(
        why, method=method, url=url, status=response.status, request_id=request_id
    )


def _decode(response: Response, model: type[M]) -> M:
    if not 200 <= response.status < 300:
        raise decode_error(response)
    try:
        return model.model_validate_json(response.body)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        why = f"not a {model.__name__}: {where}: {first['msg']} ({exc.error_count()} problems)"
        raise _malformed(response, why) from None


class _TicketBody(BaseModel):
    ticket: Ticket


class _JobStatusBody(BaseModel):
    job_status: JobStatus


class _OrganizationsBody(BaseModel):
    organizations: tuple[Organization, ...]


class _Meta(BaseModel):
    has_more: bool = False
    after_cursor: str | None = None


class _TicketFieldsBody(BaseModel):
    ticket_fields: tuple[TicketField, ...]
    meta: _Meta = _Meta()


class _OrganizationFieldsBody(BaseModel):
    organization_fields: tuple[OrganizationField, ...]
    meta: _Meta = _Meta()


def _decode_tickets_of(response: Response, model: type[M]) -> tuple[M, tuple[Malformed, ...]]:
    """A body listing `tickets`; tickets that do not read are left out and reported.

    The whole body is validated from its JSON in one pass; only when that fails on a ticket
    is it read again ticket by ticket (see `connector.helpdesks.wire`).
    """
    if not 200 <= response.status < 300:
        raise decode_error(response)
    try:
        return model.model_validate_json(response.body), ()
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        if first["loc"][:1] != ("tickets",):
            return _decode(response, model), ()  # raises, saying where
    data = json.loads(response.body)
    if not isinstance(data, dict) or not isinstance(data.get("tickets"), list):
        return _decode(response, model), ()
    good, bad = each_valid(data["tickets"], Ticket)
    body = _decode_data(response, model, {**data, "tickets": []})
    return body.model_copy(update={"tickets": tuple(good)}), tuple(bad)


def _decode_data(response: Response, model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise _malformed(response, f"not a {model.__name__}: {where}: {first['type']}") from None


def decode_export(response: Response) -> ExportPage:
    """An export page; refuses a page that says more follows but gives no cursor."""
    page, malformed = _decode_tickets_of(response, ExportPage)
    page = page.model_copy(update={"malformed": malformed}) if malformed else page
    if not page.end_of_stream and not page.after_cursor:
        raise _malformed(response, "export page without end_of_stream has no after_cursor")
    return page


class _TicketsBody(BaseModel):
    ticket: Ticket | None = None
    tickets: tuple[Ticket, ...] = ()
    organizations: tuple[Organization, ...] = ()
    metric_sets: tuple[MetricSet, ...] = ()


class _Audit(BaseModel):
    """An audit of the events export, as far as status changes go: lenient about the rest
    (`via` is a string here and an object elsewhere; child events carry the changed field as
    their own key, `status` or `custom_status_id`, the latter a number or a string)."""

    ticket_id: int
    timestamp: int
    child_events: list[dict[str, Any]] = Field(default_factory=list)


class _EventsBody(BaseModel):
    ticket_events: list[dict[str, Any]]
    end_time: int | None = None
    end_of_stream: bool | None = None
    count: int | None = None


def decode_ticket_events(response: Response) -> EventsPage:
    """The status changes on one page of the events export, and where the next page starts.

    Only `Create` and `Change` child events count (a `status` key, a `custom_status_id` key);
    an audit that does not read is left out (one broken audit never holds up the stream).
    `end_of_stream` is not in every recording; without it, as for the older time-based
    exports, a page of fewer than 1000 items is the last (`next_page` is always there).
    """
    body = _decode(response, _EventsBody)
    audits, _ = each_valid(body.ticket_events, _Audit)
    changes: list[EventStatus] = []
    for audit in audits:
        status: str | None = None
        custom: str | None = None
        for child in audit.child_events:
            if child.get("event_type") not in ("Create", "Change"):
                continue
            if isinstance(child.get("status"), str):
                status = child["status"]
            value = child.get("custom_status_id")
            if isinstance(value, int | str) and not isinstance(value, bool) and str(value):
                custom = str(value)
        if status is not None or custom is not None:
            changes.append(EventStatus(audit.ticket_id, audit.timestamp, status, custom))
    last = max((audit.timestamp for audit in audits), default=None)
    end_time = body.end_time if body.end_time is not None else last
    count = body.count if body.count is not None else len(body.ticket_events)
    ended = body.end_of_stream if body.end_of_stream is not None else count < EVENTS_PAGE
    return EventsPage(tuple(changes), end_time, ended)


def decode_tickets(response: Response) -> TicketPage:
    """Tickets with sideloads, from show (`ticket`) or show_many (`tickets`).

    Documented: sideloads come as top-level arrays named after the resource.
    """
    body, malformed = _decode_tickets_of(response, _TicketsBody)
    tickets = body.tickets if body.ticket is None else (body.ticket, *body.tickets)
    return TicketPage(
        tickets=tickets,
        organizations=body.organizations,
        metric_sets=body.metric_sets,
        malformed=malformed,
    )


def decode_ticket(response: Response) -> Ticket:
    """The ticket an update returned (the audit that comes with it is not kept)."""
    return _decode(response, _TicketBody).ticket


def decode_job_status(response: Response) -> JobStatus:
    """A job status, as update_many and the job status endpoint return it."""
    return _decode(response, _JobStatusBody).job_status


def decode_organizations(response: Response) -> tuple[Organization, ...]:
    """The organizations of a show_many."""
    return _decode(response, _OrganizationsBody).organizations


def _next_cursor(meta: _Meta) -> str | None:
    # Documented: `meta.has_more` false ends the list; without `meta` the list was not paged.
    return meta.after_cursor if meta.has_more else None


class _Comment(BaseModel):
    body: str = ""
    public: bool = True


class _CommentsBody(BaseModel):
    comments: tuple[_Comment, ...]
    meta: _Meta = _Meta()


def decode_comment_bodies(response: Response) -> tuple[list[str], str | None]:
    """The private comments' bodies of one page, and the cursor of the next page."""
    body = _decode(response, _CommentsBody)
    return [c.body for c in body.comments if not c.public], _next_cursor(body.meta)


def decode_ticket_fields(response: Response) -> FieldsPage[TicketField]:
    """One page of ticket field definitions."""
    body = _decode(response, _TicketFieldsBody)
    return FieldsPage[TicketField](fields=body.ticket_fields, after_cursor=_next_cursor(body.meta))


def decode_organization_fields(response: Response) -> FieldsPage[OrganizationField]:
    """One page of organization field definitions."""
    body = _decode(response, _OrganizationFieldsBody)
    return FieldsPage[OrganizationField](
        fields=body.organization_fields, after_cursor=_next_cursor(body.meta)
    )
