"""The WSGI plumbing both sandbox helpdesks share: one call, from environ to answer.

Each helpdesk (`connector.sandbox.zendesk`, `connector.sandbox.freshdesk`) is a `Desk`: routes,
authentication, rate-limit bookkeeping and error bodies in its own words. `handle` runs one call
through them in the same order for both: route, authenticate, fault, rate limit, handler, and
counts it. The state is touched only under the sandbox lock, so the threaded loopback server
and concurrent test clients see one consistent helpdesk.

`SandboxTransport` runs an app in process for `httpx.Client(transport=...)`; it turns a cut
connection into the transport error a real socket gives (`RemoteProtocolError` when nothing
was processed, `ReadError` when the server applied the call and the answer was lost).
"""

from __future__ import annotations

import bisect
import json
import math
import re
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http import HTTPStatus
from typing import Any, NamedTuple, Protocol
from urllib.parse import parse_qs
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

import httpx

from connector.sandbox.faults import Fault, FaultBook, FaultKind
from connector.timeutil import to_epoch

__all__ = [
    "ApiRequest",
    "ApiResponse",
    "BadRequestBody",
    "ChangeOrder",
    "Counters",
    "CutConnection",
    "Desk",
    "Handler",
    "Host",
    "Match",
    "RequestCount",
    "Route",
    "SandboxTransport",
    "SlidingWindow",
    "handle",
    "json_response",
    "wsgi_app",
]

Headers = list[tuple[str, str]]


class CutConnection(Exception):
    """Raised through the WSGI stack to drop the connection without an answer."""

    def __init__(self, applied: bool) -> None:
        self.applied = applied
        super().__init__("connection cut after the call was applied" if applied else "cut")


class BadRequestBody(ValueError):
    """The request body is not the JSON the endpoint needs."""


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """One call as the sandbox sees it; `base_url` is where the helpdesk is mounted."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    base_url: str

    @classmethod
    def from_environ(cls, environ: WSGIEnvironment) -> ApiRequest:
        """Read method, path, query, headers and body from a WSGI environ."""
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        headers = {
            key[5:].replace("_", "-").lower(): str(value)
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = str(environ["CONTENT_TYPE"])
        host = headers.get("host") or f"{environ['SERVER_NAME']}:{environ['SERVER_PORT']}"
        base = f"{environ.get('wsgi.url_scheme', 'http')}://{host}{environ.get('SCRIPT_NAME', '')}"
        return cls(
            method=str(environ["REQUEST_METHOD"]).upper(),
            path=str(environ.get("PATH_INFO") or "/"),
            query=parse_qs(str(environ.get("QUERY_STRING", "")), keep_blank_values=True),
            headers=headers,
            body=body,
            base_url=base,
        )

    def arg(self, name: str) -> str | None:
        """The first value of a query parameter, or None."""
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> Any:
        """The body as JSON (an object); raises `BadRequestBody` otherwise."""
        try:
            value = json.loads(self.body or b"null")
        except ValueError:
            raise BadRequestBody("the body is not valid JSON") from None
        if not isinstance(value, dict):
            raise BadRequestBody("the body must be a JSON object")
        return value


@dataclass(slots=True)
class ApiResponse:
    """What the sandbox answers: status, headers and body bytes."""

    status: int
    body: bytes = b""
    headers: Headers = field(default_factory=list)
    content_type: str = "application/json; charset=utf-8"

    def all_headers(self) -> Headers:
        """Headers including Content-Type and Content-Length."""
        head = [("Content-Type", self.content_type)] if self.body or self.status != 204 else []
        return [*head, ("Content-Length", str(len(self.body))), *self.headers]


def json_response(
    status: int, payload: Any, headers: Iterable[tuple[str, str]] = ()
) -> ApiResponse:
    """A JSON answer, compact as the real APIs send it."""
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return ApiResponse(status, body, list(headers))


Handler = Callable[[ApiRequest, dict[str, str]], ApiResponse]


@dataclass(frozen=True, slots=True)
class Route:
    """One endpoint: method, path regex with named groups, and the name counters use."""

    method: str
    pattern: re.Pattern[str]
    name: str
    handler: Handler
    authenticated: bool = True


class Match(NamedTuple):
    """A routed call: the route and the values of its path parameters."""

    route: Route
    params: dict[str, str]


class RequestCount(NamedTuple):
    """One line of the counters: how many calls of a kind got a status (0: connection cut)."""

    helpdesk: str
    method: str
    route: str
    status: int


class Counters:
    """Requests by helpdesk, method, route and status, for tests and benchmarks."""

    def __init__(self) -> None:
        self._counts: Counter[RequestCount] = Counter()
        self._lock = threading.Lock()

    def record(self, helpdesk: str, method: str, route: str, status: int) -> None:
        """Count one call."""
        with self._lock:
            self._counts[RequestCount(helpdesk, method, route, status)] += 1

    def total(
        self,
        helpdesk: str | None = None,
        method: str | None = None,
        route: str | None = None,
        status: int | None = None,
    ) -> int:
        """How many calls matched every filter given."""
        with self._lock:
            return sum(
                count
                for key, count in self._counts.items()
                if (helpdesk is None or key.helpdesk == helpdesk)
                and (method is None or key.method == method)
                and (route is None or key.route == route)
                and (status is None or key.status == status)
            )

    def snapshot(self) -> list[dict[str, Any]]:
        """Every line as JSON-ready dicts, sorted."""
        with self._lock:
            items = sorted(self._counts.items())
        return [{**key._asdict(), "count": count} for key, count in items]

    def reset(self) -> None:
        """Forget every count."""
        with self._lock:
            self._counts.clear()


class SlidingWindow:
    """A requests-per-window budget on the sandbox clock, counting credits per call."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._spent: deque[tuple[datetime, int]] = deque()
        self._used = 0

    def _expire(self, now: datetime) -> None:
        horizon = now - timedelta(seconds=self.window)
        while self._spent and self._spent[0][0] <= horizon:
            self._used -= self._spent.popleft()[1]

    def admit(self, now: datetime, cost: int = 1) -> bool:
        """Spend `cost` if the budget allows it; False means refuse the call."""
        self._expire(now)
        if self._used + cost > self.limit:
            return False
        self._spent.append((now, cost))
        self._used += cost
        return True

    def remaining(self, now: datetime) -> int:
        """What is left of the budget now."""
        self._expire(now)
        return max(self.limit - self._used, 0)

    def resets_in(self, now: datetime) -> int:
        """Whole seconds until the oldest spent call leaves the window (at least 1)."""
        self._expire(now)
        if not self._spent:
            return int(self.window)
        left = (self._spent[0][0] + timedelta(seconds=self.window) - now).total_seconds()
        return max(math.ceil(left), 1)

    def reset(self) -> None:
        """Forget what was spent."""
        self._spent.clear()
        self._used = 0


class Host(Protocol):
    """What a desk call needs from the sandbox around it."""

    lock: threading.RLock
    faults: FaultBook
    counters: Counters

    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...


class Desk(Protocol):
    """One helpdesk's API: its routes, its authentication, limits and error bodies."""

    name: str

    def match(self, method: str, path: str) -> Match | None:
        """The route for this call, or None."""
        ...

    def authenticate(self, request: ApiRequest) -> ApiResponse | None:
        """None when the credentials are good, else the helpdesk's 401."""
        ...

    def not_found(self) -> ApiResponse:
        """The helpdesk's answer for an unknown endpoint."""
        ...

    def admit(self, request: ApiRequest, match: Match) -> tuple[ApiResponse | None, Headers]:
        """Spend the rate budget: (a 429 or None, the rate-limit headers to send)."""
        ...

    def rate_limited(self, retry_after: str | None) -> ApiResponse:
        """The helpdesk's 429 body with `Retry-After` (None: left out)."""
        ...

    def agent_edit(self, ticket_id: int) -> None:
        """An agent changes the ticket (a tag, updated_at) in the helpdesk's UI."""
        ...


_PROXY_PAGE = "<html><body><h1>{status} {phrase}</h1></body></html>\n"


def _fault_response(desk: Desk, fault: Fault, now: datetime) -> ApiResponse | None:
    seconds = str(max(math.ceil(fault.retry_after), 0))
    if fault.kind is FaultKind.RATE_LIMITED:
        return desk.rate_limited(seconds)
    if fault.kind is FaultKind.RATE_LIMITED_HTTP_DATE:
        when = now + timedelta(seconds=fault.retry_after)
        return desk.rate_limited(format_datetime(when.replace(microsecond=0), usegmt=True))
    if fault.kind is FaultKind.RATE_LIMITED_BARE:
        return desk.rate_limited(None)
    if fault.kind is FaultKind.LOGIN_PAGE:
        page = _PROXY_PAGE.format(status=200, phrase="Sign in to continue").encode()
        return ApiResponse(200, page, content_type="text/html; charset=utf-8")
    status = {
        FaultKind.SERVER_ERROR: 500,
        FaultKind.BAD_GATEWAY: 502,
        FaultKind.UNAVAILABLE: 503,
        FaultKind.UNAVAILABLE_RETRY_AFTER: 503,
    }.get(fault.kind)
    if status is None:
        return None
    # Assumed: 5xx answers come from the proxy in front of the API, as HTML pages.
    page = _PROXY_PAGE.format(status=status, phrase=HTTPStatus(status).phrase).encode()
    headers = [("Retry-After", seconds)] if fault.kind is FaultKind.UNAVAILABLE_RETRY_AFTER else []
    return ApiResponse(status, page, headers, content_type="text/html; charset=utf-8")


def _edited(request: ApiRequest, match: Match) -> int | None:
    """The ticket an agent saves just before this write: the one it names, or a batch's
    first (Zendesk's update_many)."""
    if match.params.get("id", "").isdigit():
        return int(match.params["id"])
    try:
        tickets = request.json().get("tickets")
    except BadRequestBody:
        return None
    if isinstance(tickets, list) and tickets and isinstance(tickets[0], dict):
        first = str(tickets[0].get("id", ""))
        return int(first) if first.isdigit() else None
    return None


def handle(host: Host, desk: Desk, request: ApiRequest) -> ApiResponse:
    """Answer one call: route, authenticate, inject faults, rate limit, run, count.

    Raises `CutConnection` when a cut fault fires (before or after the call took effect).
    """
    match = desk.match(request.method, request.path)
    if match is None:
        response = desk.not_found()
        host.counters.record(desk.name, request.method, "(unknown)", response.status)
        return response
    route = match.route.name
    if match.route.authenticated and (refused := desk.authenticate(request)) is not None:
        host.counters.record(desk.name, request.method, route, refused.status)
        return refused
    fault = host.faults.take(desk.name, request.method, request.path)
    kind = fault.kind if fault is not None else None
    if fault is not None and (injected := _fault_response(desk, fault, host.now())) is not None:
        host.counters.record(desk.name, request.method, route, injected.status)
        return injected
    if kind is FaultKind.CUT_BEFORE:
        host.counters.record(desk.name, request.method, route, 0)
        raise CutConnection(applied=False)
    if fault is not None and kind is FaultKind.SLOW:
        host.sleep(fault.delay)
    with host.lock:
        refused, rate_headers = desk.admit(request, match)
        if refused is not None:
            refused.headers.extend(rate_headers)
            host.counters.record(desk.name, request.method, route, refused.status)
            return refused
        if kind is FaultKind.AGENT_EDIT and (edited := _edited(request, match)) is not None:
            desk.agent_edit(edited)
        try:
            response = match.route.handler(request, match.params)
        except BadRequestBody as exc:
            response = json_response(400, {"error": "InvalidJSON", "description": str(exc)})
    response.headers.extend(rate_headers)
    if fault is not None and kind is FaultKind.SLOW_AFTER:
        host.sleep(fault.delay)
    if kind is FaultKind.MALFORMED and 200 <= response.status < 300:
        response.body = response.body[: max(len(response.body) // 2, 1)]
    if kind is FaultKind.CUT_AFTER:
        host.counters.record(desk.name, request.method, route, 0)
        raise CutConnection(applied=True)
    host.counters.record(desk.name, request.method, route, response.status)
    return response


def wsgi_app(host: Host, desk: Desk) -> WSGIApplication:
    """The desk as a WSGI application over the sandbox state."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        response = handle(host, desk, ApiRequest.from_environ(environ))
        phrase = HTTPStatus(response.status).phrase
        # As the real services do, the answer says the time on the helpdesk's (sandbox) clock.
        date = ("Date", format_datetime(host.now().astimezone(UTC), usegmt=True))
        start_response(f"{response.status} {phrase}", [*response.all_headers(), date])
        return [response.body]

    return app


class SandboxTransport(httpx.BaseTransport):
    """Runs a sandbox app in process; cut connections surface as transport errors."""

    def __init__(self, app: WSGIApplication) -> None:
        self._inner = httpx.WSGITransport(app=app)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request` to the app; raise what a dropped socket would raise."""
        try:
            return self._inner.handle_request(request)
        except CutConnection as cut:
            if cut.applied:
                raise httpx.ReadError("connection reset by peer", request=request) from None
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            ) from None


class _Changing(Protocol):
    id: int
    updated_at: datetime


class ChangeOrder:
    """Tickets as `(updated_at epoch, id)` keys, kept sorted as tickets change.

    Both helpdesks list changes in this order: Zendesk's export by `generated_timestamp` (which
    moves with `updated_at` here), Freshdesk's list by `updated_at`.
    """

    def __init__(self) -> None:
        self.keys: list[tuple[int, int]] = []

    def add(self, ticket: _Changing) -> None:
        """Index a ticket at its current `updated_at`."""
        bisect.insort(self.keys, (to_epoch(ticket.updated_at), ticket.id))

    def discard(self, ticket: _Changing) -> None:
        """Forget a ticket's current key, if it is indexed."""
        key = (to_epoch(ticket.updated_at), ticket.id)
        at = bisect.bisect_left(self.keys, key)
        if at < len(self.keys) and self.keys[at] == key:
            del self.keys[at]

    def touch(self, ticket: _Changing, now: datetime, *, strictly_later: bool = False) -> None:
        """Record a change: `updated_at` moves to now (a second on at least, if asked)."""
        self.discard(ticket)
        floor = ticket.updated_at + timedelta(seconds=1 if strictly_later else 0)
        ticket.updated_at = max(now, floor)
        self.add(ticket)
