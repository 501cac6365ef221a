"""The one HTTP shell every helpdesk client runs on, and the one retry policy.

Each helpdesk is written sans-I/O (see `connector.helpdesks.*.sansio`): it builds `Request`
values and turns a `Response` into data or a typed error from `connector.errors`. This module
is the only place that touches the network. It adds credentials, paces requests from the
rate-limit headers so that a 429 stays rare, and retries what is safe to retry:

- a 429 (`RateLimited`) is always retried: the helpdesk did not process the call. The wait is
  its `Retry-After` (seconds or an HTTP date; negative clamped to 0, capped), or the backoff;
- a 5xx, timeout or cut connection (`NotAvailable`) is retried with capped exponential backoff
  and jitter, but only for idempotent requests (GET, PUT, DELETE), or when the request provably
  never left (the connection could not be opened). A POST that may have landed is never sent
  twice blindly: the caller must check and decide;
- a 401 is retried once after the credentials say they refreshed themselves;
- everything else (409, 400, 404...) goes straight to the caller.

Whatever the server does, a request ends, in bounded memory, with an answer or a typed error:
every request has a total deadline (connect, send, the head and the whole body), on top of
httpx's timeouts, which bound each read and not the request; the body is capped, counted as
it arrives and as it inflates, so that a gzip bomb or an endless body stops early. A body that
runs past either, or that is not in the encoding it claims, is `NotAvailable`, as any httpx
error is: nothing of httpx escapes.
"""

from __future__ import annotations

import contextlib
import email.utils
import errno
import json
import math
import random
import re
import socket
import ssl
import threading
import time
import weakref
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import httpx
import structlog
import tenacity

from connector import logs
from connector.errors import (
    ApiError,
    AuthError,
    ConfigError,
    Conflict,
    Interrupted,
    NotAvailable,
    NotFound,
    Problem,
    RateLimited,
    masked_setting,
)

__all__ = [
    "Budget",
    "Credentials",
    "HttpShell",
    "Interrupt",
    "Pacer",
    "RateLimit",
    "Request",
    "Response",
    "RetryPolicy",
    "check_base_url",
    "error_for",
    "parse_endpoint_limits",
    "parse_rate_limit",
    "retry_after_seconds",
]

T = TypeVar("T")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True, slots=True)
class Request:
    """One API call as data: what the sans-I/O layer asks the shell to send."""

    method: str
    url: str
    params: tuple[tuple[str, str], ...] = ()
    json: Any = None
    headers: tuple[tuple[str, str], ...] = ()
    # The endpoint's own rate budget, as the helpdesk names it in its per-endpoint headers
    # (Zendesk's `tickets-update`) or as a plan's sub-limit is named (Freshdesk's
    # `tickets-update`, `tickets-list`); None: only the account's budget applies.
    budget: str | None = None

    @property
    def idempotent(self) -> bool:
        """Whether sending this twice has the effect of sending it once."""
        return self.method in IDEMPOTENT_METHODS

    def describe(self) -> tuple[str, str]:
        """(method, url) for error messages; never includes credentials or the query."""
        return self.method, self.url


@dataclass(frozen=True, slots=True)
class Response:
    """What came back: status, headers (case-insensitive), body bytes, and the request."""

    status: int
    headers: httpx.Headers
    body: bytes
    request: Request
    retry_after: float | None = None  # seconds, from `Retry-After`, clamped and capped

    def json(self) -> Any:
        """The body as JSON; raises `ValueError` when it is not."""
        return json.loads(self.body)

    def text(self, limit: int = 300) -> str:
        """The start of the body as text, for error messages."""
        return self.body[:limit].decode("utf-8", "replace").strip()


# --- rate-limit headers ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RateLimit:
    """The tightest budget the headers of one response announce."""

    limit: float | None
    remaining: float
    reset_after: float | None  # seconds until the window refills; None: not said


_PAIRS = re.compile(r"([A-Za-z_-]+)\s*=\s*\"?([0-9.]+)\"?")


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _pairs(value: str) -> dict[str, float]:
    return {key.lower(): float(number) for key, number in _PAIRS.findall(value)}


_ENDPOINT_HEADER = re.compile(r"^zendesk-rate-?limit-(.+)$")


def parse_endpoint_limits(headers: Mapping[str, str]) -> dict[str, RateLimit]:
    """The per-endpoint budgets a response announces, by endpoint name: Zendesk's
    `Zendesk-RateLimit-<endpoint>: total=…; remaining=…; resets=…`, in either spelling seen
    (`rate-limit`, `ratelimit`), e.g. `tickets-update` (100 a minute, shared with the agents'
    own updates in the Zendesk UI) or `incremental-exports` (10 a minute)."""
    found: dict[str, RateLimit] = {}
    for key, value in headers.items():
        match = _ENDPOINT_HEADER.match(key.lower())
        if match is None:
            continue
        pairs = _pairs(value)
        if "remaining" in pairs:
            found[match.group(1)] = RateLimit(
                pairs.get("total"),
                max(pairs["remaining"], 0.0),
                _reset_seconds(pairs.get("resets")),
            )
    return found


def parse_rate_limit(
    headers: Mapping[str, str], *, with_endpoints: bool = True
) -> RateLimit | None:
    """Read every rate-limit header variant seen in the wild and keep the tightest.

    - `X-Rate-Limit` / `X-Rate-Limit-Remaining` (Zendesk, account-wide);
    - `RateLimit-Limit` / `-Remaining` / `-Reset` (IETF draft, Zendesk list endpoints);
    - `RateLimit: limit=…, remaining=…, reset=…` and `"policy";r=…;t=…` (later IETF drafts);
    - `X-RateLimit-Limit` or `X-RateLimit-Total` / `X-RateLimit-Remaining` / `X-RateLimit-Reset`
      (Freshdesk, as decimal strings; others);
    - `Zendesk-RateLimit-<endpoint>: total=…; remaining=…; resets=…` (per-endpoint budgets such
      as the incremental export's 10 a minute), unless `with_endpoints` is False (the shell
      paces those endpoint by endpoint: see `parse_endpoint_limits`).
    """
    found: list[RateLimit] = []
    lower = {key.lower(): value for key, value in headers.items()}

    def add(limit: float | None, remaining: float | None, reset: float | None) -> None:
        if remaining is not None:
            found.append(RateLimit(limit, max(remaining, 0.0), _reset_seconds(reset)))

    add(
        _number(lower.get("x-rate-limit")),
        _number(lower.get("x-rate-limit-remaining")),
        _number(lower.get("x-rate-limit-reset")),
    )
    add(
        _number(lower.get("x-ratelimit-limit") or lower.get("x-ratelimit-total")),
        _number(lower.get("x-ratelimit-remaining")),
        _number(lower.get("x-ratelimit-reset")),
    )
    add(
        _number(lower.get("ratelimit-limit")),
        _number(lower.get("ratelimit-remaining")),
        _number(lower.get("ratelimit-reset")),
    )
    if "ratelimit" in lower:
        pairs = _pairs(lower["ratelimit"])
        add(
            pairs.get("limit"),
            pairs.get("remaining", pairs.get("r")),
            pairs.get("reset", pairs.get("t")),
        )
    if with_endpoints:
        found.extend(parse_endpoint_limits(headers).values())
    if not found:
        return None
    return min(found, key=lambda rate: (rate.remaining, -(rate.reset_after or 0.0)))


def _reset_seconds(reset: float | None) -> float | None:
    if reset is None or reset < 0:
        return None
    if reset > 1_000_000_000:  # an epoch instant, as some APIs send, not a delay
        return max(reset - time.time(), 0.0)
    return reset


def retry_after_seconds(value: str | None, now: datetime, cap: float) -> float | None:
    """`Retry-After` as seconds to wait: delay-seconds or an HTTP date; clamped to [0, cap]."""
    if value is None or not value.strip():
        return None
    seconds = _number(value)
    if seconds is None:
        try:
            when = email.utils.parsedate_to_datetime(value.strip())
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # HTTP dates are GMT by definition
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    return min(max(seconds, 0.0), cap)


# --- pacing ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Budget:
    """What the connector may spend of one endpoint's budget.

    `share` of it (the rest is left to people and other integrations: Zendesk's agents spend
    the Update Ticket budget from the UI); `limit` a minute when the helpdesk announces none
    (Freshdesk's plan sub-limits), else what its headers say.
    """

    share: float = 1.0
    limit: float | None = None

    def of(self, rate: RateLimit, own: int = 0) -> RateLimit:
        """The announced budget as this connector's part of it, `own` requests of which it
        sent in the window: at most `share` of the limit for itself, whatever the others
        spend of theirs, and never more than what remains at all."""
        if self.share >= 1.0 or rate.limit is None:
            return rate
        mine = rate.limit * self.share
        left = max(min(mine - own, rate.remaining), 0.0)
        return RateLimit(mine, left, rate.reset_after)


_IDLE_BURST = 0.1  # the share of an unknown window spent at once, and the share kept in hand


@dataclass
class Pacer:
    """Spaces requests so that the announced budget lasts until its window refills.

    When the helpdesk says when its window refills (Zendesk): while more than `reserve` of the
    budget is left, requests go at once; below that, the remaining requests are spread evenly over
    the time left. When it does not say (Freshdesk: a limit and what remains, no reset), the window
    may slide or be fixed, so requests are spaced at the steady allowed rate (`window / limit`),
    going at once only from a nearly untouched budget and slowing further as the last tenth of the
    budget drains; that holds the full rate on either kind of window without meeting a 429. With
    nothing left, the next request waits one steady interval (`window` when the limit is not said
    either). After a 429, nothing is sent until its `Retry-After` has passed.
    """

    window: float = 60.0
    reserve: float = 0.2
    not_before: float = 0.0
    interval: float = 0.0
    last_sent: float = field(default=-math.inf)

    def observe(self, rate: RateLimit | None, at: float) -> None:
        """Take the budget a response announced at monotonic time `at`."""
        if rate is None:
            return
        if rate.reset_after is None and rate.limit:
            self._observe_unknown_window(rate.limit, rate.remaining, at)
            return
        reset = self.window if rate.reset_after is None else rate.reset_after
        if rate.limit is not None and rate.remaining > rate.limit * self.reserve:
            self.interval = 0.0
        elif rate.remaining < 1:
            self.interval = 0.0
            self.not_before = max(self.not_before, at + reset)
        else:
            self.interval = reset / rate.remaining

    def _observe_unknown_window(self, limit: float, remaining: float, at: float) -> None:
        steady = self.window / limit
        share = remaining / limit
        if remaining < 1:
            self.interval = 0.0
            self.not_before = max(self.not_before, at + steady)
        elif share > 1 - _IDLE_BURST:
            self.interval = 0.0
        else:
            self.interval = steady * max(1.0, _IDLE_BURST / share)

    def hold_off(self, seconds: float, at: float) -> None:
        """Send nothing for `seconds` (a 429's Retry-After)."""
        self.not_before = max(self.not_before, at + seconds)

    def delay(self, at: float) -> float:
        """Seconds to wait before the next request may go."""
        return max(self.not_before - at, self.last_sent + self.interval - at, 0.0)

    def sent(self, at: float) -> None:
        """Record that a request went at `at`."""
        self.last_sent = at


# --- the shell -------------------------------------------------------------------------------


class Credentials(Protocol):
    """How a client proves who it is; may renew itself once after a 401."""

    def headers(self) -> Mapping[str, str]:
        """Headers to add to every request."""
        ...

    def refresh(self) -> bool:
        """Renew expired credentials; True when a retry may now succeed."""
        ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounds of the one retry policy (see the module docstring)."""

    attempts: int = 6
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    retry_after_cap: float = 300.0
    timeout: float = 30.0  # each phase: connect, and each write or read of the socket
    # The whole request: connect, send, the head and all of the body. Twice the per-read
    # timeout: a slow but healthy page fits, a trickle ends, and SIGTERM, which waits for the
    # request in hand, waits at most this long for it.
    deadline: float = 60.0
    # The body, as sent and as decoded: far above any page of 1,000 tickets.
    max_body: int = 64 * 2**20


Observer = Callable[[Request, Response | None, ApiError | None, float], None]
_ALL = Budget()
# Budgets of one ticket, not of the account: Zendesk's 30 updates a ticket in 10 minutes
# (`zendesk-ratelimit-per-ticket-updates`, as observed).
PER_TICKET_BUDGETS = frozenset({"per-ticket-updates"})
_FULL = RateLimit(None, math.inf, None)


class Interrupt:
    """A stop asked for from outside the request (SIGTERM), and what the shell does about it.

    Once set, a shell given it sends nothing more and retries nothing (`Interrupted`), a read
    in flight (GET, HEAD) is cut at once, and a wait made through `sleep` ends within a
    second. A write in flight is left to end by itself, within its deadline: cut, its outcome
    would be unknown. So a stop takes at most one request's deadline, never a chain of
    retries and rate-limit waits. Safe to `set` from a signal handler.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._hooks: list[Callable[[], None]] = []

    def is_set(self) -> bool:
        """Whether a stop was asked for."""
        return self._event.is_set()

    def set(self) -> None:
        """Ask for the stop, and tell the shells that listen."""
        self._event.set()
        for hook in list(self._hooks):
            hook()

    def on_set(self, hook: Callable[[], None]) -> None:
        """Call `hook` when the stop is asked for."""
        self._hooks.append(hook)

    def sleep(self, seconds: float, *, step: Callable[[float], None] = time.sleep) -> None:
        """Sleep `seconds` by `step`, a second at a time, ending early once set."""
        left = seconds
        while left > 0 and not self.is_set():
            step(min(left, 1.0))
            left -= 1.0


class HttpShell:
    """Sends `Request` values over one `httpx.Client`, paced and retried by one policy."""

    def __init__(
        self,
        client: httpx.Client,
        *,
        credentials: Credentials | None = None,
        policy: RetryPolicy | None = None,
        pacer: Pacer | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        observers: Iterable[Observer] = (),
        on_pace: Callable[[float], None] | None = None,
        rng: random.Random | None = None,
        interrupt: Interrupt | None = None,
        budgets: Mapping[str, Budget] | None = None,
    ) -> None:
        self.client = client
        self.credentials = credentials
        self.policy = policy or RetryPolicy()
        self.pacer = pacer or Pacer()
        # One pacer per endpoint budget, beside the account's (`pacer`): a request waits for
        # both. Made as requests for them go out or their headers come back.
        self.budgets = dict(budgets or {})
        self.endpoint_pacers: dict[str, Pacer] = {}
        # When this shell sent each endpoint's requests in the last window: its own part of
        # a budget it shares with others.
        self._endpoint_sends: dict[str, deque[float]] = {}
        self.sleep = sleep if interrupt is None else partial(interrupt.sleep, step=sleep)
        self.clock = clock
        self.wall_clock = wall_clock
        self.observers = list(observers)
        self.on_pace = on_pace
        self._rng = rng or random.Random()
        self.rate_limit_waits = 0
        # The connections this shell has seen, for `_Watchdog` to cut.
        self._streams: weakref.WeakSet[Any] = weakref.WeakSet()
        self.interrupt = interrupt
        self._in_flight: tuple[Request, _Watchdog] | None = None
        if interrupt is not None:
            interrupt.on_set(self._on_interrupt)

    def send(self, request: Request, decode: Callable[[Response], T]) -> T:
        """Send `request` and decode the answer; retries what the policy allows."""
        refreshed = False
        tries = 0

        def attempt() -> T:
            nonlocal refreshed, tries
            tries += 1
            try:
                return decode(self._send_once(request))
            except AuthError as exc:
                if exc.status == 401 and not refreshed and self.credentials is not None:
                    refreshed = True
                    if self.credentials.refresh():
                        return decode(self._send_once(request))
                raise
            except Interrupted as exc:
                # Not sent this time; an earlier try may have landed (a 5xx after the change).
                exc.never_sent = exc.never_sent and tries == 1
                raise

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.policy.attempts),
            retry=tenacity.retry_if_exception(lambda exc: self._retryable(request, exc)),
            wait=self._wait,
            sleep=self._sleep_before_retry,
            before_sleep=partial(self._announce_retry, request),
            reraise=True,
        )
        return retrying(attempt)

    def endpoint_pacer(self, name: str) -> Pacer:
        """The pacer of one endpoint budget; one with a plan limit starts at its steady pace."""
        pacer = self.endpoint_pacers.get(name)
        if pacer is None:
            pacer = self.endpoint_pacers[name] = Pacer()
            budget = self.budgets.get(name)
            if budget is not None and budget.limit:
                pacer.interval = pacer.window / (budget.limit * budget.share)
        return pacer

    def _own(self, name: str, now: float, pacer: Pacer) -> int:
        """How many requests of an endpoint this shell sent in the last window."""
        sends = self._endpoint_sends.get(name)
        if sends is None:
            return 0
        while sends and sends[0] <= now - pacer.window:
            sends.popleft()
        return len(sends)

    def _delay(self, request: Request, at: float) -> float:
        delay = self.pacer.delay(at)
        if request.budget is not None:
            delay = max(delay, self.endpoint_pacer(request.budget).delay(at))
        return delay

    def _send_once(self, request: Request) -> Response:
        self._refuse_if_interrupted(request)
        delay = self._delay(request, self.clock())
        if delay > 0:
            self.rate_limit_waits += 1
            if self.on_pace is not None:
                self.on_pace(delay)
            self.sleep(delay)
            self._refuse_if_interrupted(request)
        headers = {"Accept-Encoding": ACCEPT_ENCODING, **dict(request.headers)}
        if self.credentials is not None:
            headers.update(self.credentials.headers())
        started = self.clock()
        self.pacer.sent(started)
        if request.budget is not None:
            self.endpoint_pacer(request.budget).sent(started)
            self._endpoint_sends.setdefault(request.budget, deque()).append(started)
        method, url = request.describe()
        deadline = self.policy.deadline
        watchdog = _Watchdog(deadline, self._streams)
        self._in_flight = (request, watchdog)
        raw: httpx.Response | None = None
        try:
            raw = self.client.send(
                self.client.build_request(
                    request.method,
                    request.url,
                    params=list(request.params) or None,
                    json=request.json,
                    headers=headers,
                    timeout=min(self.policy.timeout, deadline),
                    extensions={"trace": watchdog.trace},
                ),
                stream=True,
            )
            watchdog.watch(raw.extensions.get("network_stream"))
            body = self._read_body(raw, started + deadline)
        except (httpx.RequestError, _Unreadable) as exc:
            watchdog.stop()
            kind = NotAvailable
            if watchdog.interrupted:
                why, kind = "cut: the process is stopping", Interrupted
            elif watchdog.expired or isinstance(exc, _Late):
                why = f"no complete answer within the {deadline:g} s deadline"
            else:
                why = str(exc) if isinstance(exc, _Unreadable) else _described(exc, request.url)
            status = None if raw is None else raw.status_code
            request_id = None if raw is None else _request_id(raw.headers)
            error = kind(why, method=method, url=url, status=status, request_id=request_id)
            error.never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
            self._notify(request, None, error, started)
            raise error from exc
        finally:
            self._in_flight = None
            watchdog.stop()
            if raw is not None:
                raw.close()
        wait = retry_after_seconds(
            raw.headers.get("retry-after"), self.wall_clock(), self.policy.retry_after_cap
        )
        response = Response(raw.status_code, raw.headers, body, request, wait)
        self._observe(request, response, wait)
        self._notify(request, response, None, started)
        return response

    def _observe(self, request: Request, response: Response, wait: float | None) -> None:
        """Take the budgets a response announces: the account's, and each endpoint's (of which
        this connector spends its `Budget.share`); a 429 holds off the budget that ran out."""
        now = self.clock()
        self.pacer.observe(parse_rate_limit(response.headers, with_endpoints=False), now)
        endpoints = parse_endpoint_limits(response.headers)
        for name, rate in endpoints.items():
            pacer = self.endpoint_pacer(name)
            own = self._own(name, now, pacer)
            mine = self.budgets.get(name, _ALL).of(rate, own)
            if mine.remaining < 1 and own and mine.limit is not None and own >= mine.limit:
                # Our part is spent: the next request waits until our own oldest leaves the
                # window (the header's reset is when anyone's oldest does: a probe each time
                # would spend the others' part).
                oldest = self._endpoint_sends[name][0]
                wait = max(mine.reset_after or 0.0, oldest + pacer.window - now)
                mine = RateLimit(mine.limit, 0.0, wait)
            pacer.observe(mine, now)
        if wait is None or response.status not in (429, 503):
            return
        spent = {name for name, rate in endpoints.items() if rate.remaining < 1}
        budget = request.budget
        if spent and spent <= PER_TICKET_BUDGETS:
            return  # one ticket's own budget: that ticket waits for a later try, nobody else
        if budget is not None and budget in spent:
            self.endpoint_pacer(budget).hold_off(wait, now)  # only its requests wait
        else:
            self.pacer.hold_off(wait, now)

    def _read_body(self, raw: httpx.Response, deadline: float) -> bytes:
        """All of the body, decoded; `_Unreadable` past the deadline or over the size cap."""
        cap = self.policy.max_body
        too_large = f"the body is larger than the {cap:,} bytes allowed"
        announced = _number(raw.headers.get("content-length"))
        if announced is not None and announced > cap and raw.request.method != "HEAD":
            raise _Unreadable(f"{too_large} ({announced:,.0f} announced)")
        received = 0

        def arriving() -> Iterator[bytes]:
            nonlocal received
            for chunk in raw.iter_raw():
                received += len(chunk)
                if received > cap:
                    raise _Unreadable(too_large)
                if self.clock() > deadline:
                    raise _Late
                yield chunk

        if raw.is_stream_consumed:
            # An answer a test transport built whole (MockTransport, respx): httpx has read and
            # decoded it already; nothing arrives any more.
            chunks, encoding = iter([raw.content]), ""
        else:
            chunks, encoding = arriving(), raw.headers.get("content-encoding", "")
        pieces: list[bytes] = []
        size = 0
        for piece in _inflated(chunks, encoding):
            size += len(piece)
            if size > cap:
                raise _Unreadable(too_large)
            pieces.append(piece)
        return b"".join(pieces)

    def _notify(
        self, request: Request, response: Response | None, error: ApiError | None, started: float
    ) -> None:
        elapsed = self.clock() - started
        for observer in self.observers:
            observer(request, response, error, elapsed)

    def _refuse_if_interrupted(self, request: Request) -> None:
        if self.interrupt is not None and self.interrupt.is_set():
            method, url = request.describe()
            error = Interrupted("not sent: the process is stopping", method=method, url=url)
            error.never_sent = True
            raise error

    def _on_interrupt(self) -> None:
        """The stop was asked for (perhaps in a signal handler): cut a read in flight."""
        in_flight = self._in_flight
        if in_flight is not None and in_flight[0].method in ("GET", "HEAD"):
            in_flight[1].interrupt()

    @staticmethod
    def _retryable(request: Request, exc: BaseException) -> bool:
        if isinstance(exc, Interrupted):
            return False
        if isinstance(exc, RateLimited):
            return not exc.one_ticket  # a ticket's own budget: minutes away, tried later
        if isinstance(exc, NotAvailable):
            return request.idempotent or getattr(exc, "never_sent", False)
        return False

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.policy.backoff_max, self.policy.backoff_initial * 2 ** (attempt - 1))
        return self._rng.uniform(0, ceiling)  # "full jitter"

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, RateLimited):
            # The pacer already holds the Retry-After; it sleeps before the next send.
            return 0.0 if exc.retry_after is not None else self._backoff(state.attempt_number)
        return self._backoff(state.attempt_number)

    def _announce_retry(self, request: Request, state: tenacity.RetryCallState) -> None:
        """Say, at a request's first retry, that the helpdesk cannot be reached: the retries
        (right for a daemon) would otherwise wait in silence, some 8 s on average.

        Only once logging is set up (`run`, `sync`, `backfill`): `check` and `explain` print
        their own lines, and structlog's default would write on their standard output.
        """
        exc = state.outcome.exception() if state.outcome is not None else None
        if state.attempt_number != 1 or not isinstance(exc, NotAvailable) or not exc.never_sent:
            return
        if not structlog.is_configured():
            return
        retries = self.policy.attempts - 1
        logs.get_logger("sla-connector").warning(
            "helpdesk_unreachable",
            detail=f"{exc.message}; trying again up to {retries} more times within "
            f"{math.ceil(self._longest_backoff())} s",
            request=f"{request.method} {request.url}",
        )

    def _longest_backoff(self) -> float:
        """The longest the retries of one request may wait in all, pacing aside."""
        policy = self.policy
        return sum(
            min(policy.backoff_max, policy.backoff_initial * 2.0 ** (n - 1))
            for n in range(1, policy.attempts)
        )

    def _sleep_before_retry(self, seconds: float) -> None:
        if seconds > 0:
            self.sleep(seconds)


def check_base_url(url: str, *, file: str, key: str) -> str:
    """Refuse anything but HTTPS, except plain HTTP on loopback (the sandbox); refuse
    credentials, a query or a fragment in it. The error never repeats them."""
    try:
        parts = urlsplit(url)
    except ValueError:  # an unbalanced IPv6 bracket
        parts = urlsplit("")
    host = (parts.hostname or "").lower()
    if "@" in parts.netloc or parts.query or parts.fragment:
        why = "credentials, a query or a fragment do not belong in a base URL"
    elif (parts.scheme == "https" and host) or (parts.scheme == "http" and host in LOOPBACK_HOSTS):
        return url.rstrip("/")
    else:
        why = "expected an https:// URL (http:// only on loopback)"
    raise ConfigError([Problem(file, key, f"{why}, got {masked_setting(url)!r}")])


REQUEST_ID_HEADERS = ("x-request-id", "x-zendesk-request-id", "x-freshdesk-request-id")


def error_for(response: Response, message: str) -> ApiError:
    """The typed error for a failed response; the helpdesk's sans-I/O layer words `message`.

    Field-level validation errors are helpdesk-specific: build `ValidationFailed` there.
    """
    method, url = response.request.describe()
    request_id = _request_id(response.headers)
    status = response.status
    if status == 429:
        spent = [n for n, r in parse_endpoint_limits(response.headers).items() if r.remaining < 1]
        return RateLimited(
            message,
            method=method,
            url=url,
            request_id=request_id,
            retry_after=response.retry_after,
            one_ticket=bool(spent) and all(name in PER_TICKET_BUDGETS for name in spent),
        )
    if status == 503 and response.retry_after is not None:
        return RateLimited(
            message,
            method=method,
            url=url,
            status=503,
            request_id=request_id,
            retry_after=response.retry_after,
        )
    kind: type[ApiError]
    if status in (401, 403):
        kind = AuthError
    elif status == 404:
        kind = NotFound
    elif status == 409:
        kind = Conflict
    elif status >= 500:
        kind = NotAvailable
    else:
        kind = ApiError
    return kind(message, method=method, url=url, status=status, request_id=request_id)


def _request_id(headers: Mapping[str, str]) -> str | None:
    return next((headers[name] for name in REQUEST_ID_HEADERS if name in headers), None)


# --- what the shell does not leave to httpx --------------------------------------------------


def _described(exc: Exception, url: str) -> str:
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return _connect_failure(exc, url)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


# Why a connection could not be opened, by the errno under httpx's error.
_CONNECT_REASONS = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.ETIMEDOUT: "timed out",
}


def _connect_failure(exc: httpx.TransportError, url: str) -> str:
    """`cannot connect to HOST:PORT: why`, in one line of our words."""
    host = urlsplit(url).netloc.rpartition("@")[2]  # never the user-info, if any got in
    return f"cannot connect to {host}: {_connect_reason(exc)}"


def _connect_reason(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return "no answer (timed out)"
    cause: BaseException | None = exc
    for _ in range(8):  # httpx's error, httpcore's, then the socket's or TLS's own
        if cause is None:
            break
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"its TLS certificate is not accepted ({cause.verify_message})"
        if isinstance(cause, ssl.SSLError):
            return f"the TLS handshake failed ({cause.reason or cause})"
        if isinstance(cause, socket.gaierror):
            return "no such host (the name does not resolve)"
        if isinstance(cause, OSError) and cause.errno in _CONNECT_REASONS:
            return _CONNECT_REASONS[cause.errno]
        cause = cause.__cause__ or cause.__context__
    return re.sub(r"^\[Errno -?\d+\] ", "", str(exc)) or type(exc).__name__


class _Unreadable(Exception):
    """The body cannot be taken: too large, late, or not in the encoding it claims."""


class _Late(_Unreadable):
    """The body was still arriving at the request's deadline."""


# The only encoding `_inflated` decodes: asked for explicitly, so that httpx does not offer
# the brotli or zstd it would decode, unbounded, if those packages happened to be installed.
ACCEPT_ENCODING = "gzip"
_INFLATE_STEP = 1 << 20  # bytes of decoded body at a time


def _inflated(raw: Iterable[bytes], encoding: str) -> Iterator[bytes]:
    """The body arriving in `raw`, decoded from `encoding`, a bounded piece at a time.

    Not httpx's decoders: they inflate each network read whole, and 64 KiB of a gzip bomb
    is 64 MiB at once; here each piece is at most `_INFLATE_STEP`.
    """
    codings = [c.strip().lower() for c in encoding.split(",")]
    codings = [c for c in codings if c not in ("", "identity")]
    if not codings:
        yield from raw
        return
    if codings not in (["gzip"], ["x-gzip"]):
        raise _Unreadable(f"a body in an encoding not asked for (Content-Encoding {encoding!r})")
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
    empty = True
    try:
        for chunk in raw:
            empty, data = empty and not chunk, chunk
            while data and not inflater.eof:
                yield inflater.decompress(data, _INFLATE_STEP)
                data = inflater.unconsumed_tail
        yield inflater.flush()
    except zlib.error as exc:
        raise _Unreadable(f"the body is not the gzip its Content-Encoding says ({exc})") from None
    if not inflater.eof and not empty:
        raise _Unreadable("the gzip body ends before its end")


class _Watchdog:
    """Cuts the shell's connections when a request outlives its deadline.

    httpx's timeouts bound each read, not the request: a server sending a byte every few
    seconds keeps it going for ever, its head included, which httpx reads in a loop of its own.
    The body loop checks the deadline between reads; this ends whatever is still blocked when
    the deadline passes: shutting a socket down wakes the thread blocked on it, and the request
    fails with a transport error, reported as the deadline. Every connection the shell knows is
    cut, not only the request's: httpx does not say which pooled one a request reuses, and the
    others are idle (the shell sends one request at a time), so the pool just opens new ones.
    """

    _CONNECTED = frozenset({"connection.connect_tcp.complete", "connection.start_tls.complete"})

    def __init__(self, seconds: float, streams: weakref.WeakSet[Any]) -> None:
        self.expired = False
        self.interrupted = False
        self._streams = streams
        # Re-entrant: `interrupt` may run in a signal handler on the thread that holds it.
        self._lock = threading.RLock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def trace(self, event: str, info: Mapping[str, Any]) -> None:
        """httpcore's `trace` extension: learn each connection as it opens."""
        if event in self._CONNECTED:
            self.watch(info.get("return_value"))

    def watch(self, stream: Any) -> None:
        """Cut `stream` (an httpcore network stream) at the deadline, or now if it has passed."""
        if stream is None:
            return
        with self._lock:
            self._streams.add(stream)
            if self.expired:
                _cut(stream)

    def stop(self) -> None:
        """The request is over: cut nothing from now on."""
        self._timer.cancel()
        if self._timer.is_alive():
            self._timer.join()

    def interrupt(self) -> None:
        """Cut now: the process is stopping."""
        self.interrupted = True
        self._expire()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for stream in list(self._streams):
                _cut(stream)


def _cut(stream: Any) -> None:
    sock = stream.get_extra_info("socket") if hasattr(stream, "get_extra_info") else None
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):  # closed meanwhile: nothing left to cut
            # The plain socket's shutdown: an SSLSocket's own also drops its TLS state, under
            # the thread that is reading through it.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
