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
"""

from __future__ import annotations

import email.utils
import json
import math
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import httpx
import tenacity

from connector.errors import (
    ApiError,
    AuthError,
    ConfigError,
    Conflict,
    NotAvailable,
    NotFound,
    Problem,
    RateLimited,
)

__all__ = [
    "Credentials",
    "HttpShell",
    "Pacer",
    "RateLimit",
    "Request",
    "Response",
    "RetryPolicy",
    "check_base_url",
    "error_for",
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


def parse_rate_limit(headers: Mapping[str, str]) -> RateLimit | None:
    """Read every rate-limit header variant seen in the wild and keep the tightest.

    - `X-Rate-Limit` / `X-Rate-Limit-Remaining` (Zendesk, account-wide);
    - `RateLimit-Limit` / `-Remaining` / `-Reset` (IETF draft, Zendesk list endpoints);
    - `RateLimit: limit=…, remaining=…, reset=…` and `"policy";r=…;t=…` (later IETF drafts);
    - `X-RateLimit-Limit` or `X-RateLimit-Total` / `X-RateLimit-Remaining` / `X-RateLimit-Reset`
      (Freshdesk, as decimal strings; others);
    - `Zendesk-RateLimit-<endpoint>: total=…; remaining=…; resets=…` (per-endpoint budgets such
      as the incremental export's 10 a minute).
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
    for key, value in lower.items():
        if key.startswith("zendesk-ratelimit-"):
            pairs = _pairs(value)
            add(pairs.get("total"), pairs.get("remaining"), pairs.get("resets"))
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
    timeout: float = 30.0


Observer = Callable[[Request, Response | None, ApiError | None, float], None]


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
    ) -> None:
        self.client = client
        self.credentials = credentials
        self.policy = policy or RetryPolicy()
        self.pacer = pacer or Pacer()
        self.sleep = sleep
        self.clock = clock
        self.wall_clock = wall_clock
        self.observers = list(observers)
        self.on_pace = on_pace
        self._rng = rng or random.Random()
        self.rate_limit_waits = 0

    def send(self, request: Request, decode: Callable[[Response], T]) -> T:
        """Send `request` and decode the answer; retries what the policy allows."""
        refreshed = False

        def attempt() -> T:
            nonlocal refreshed
            try:
                return decode(self._send_once(request))
            except AuthError as exc:
                if exc.status == 401 and not refreshed and self.credentials is not None:
                    refreshed = True
                    if self.credentials.refresh():
                        return decode(self._send_once(request))
                raise

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.policy.attempts),
            retry=tenacity.retry_if_exception(lambda exc: self._retryable(request, exc)),
            wait=self._wait,
            sleep=self._sleep_before_retry,
            reraise=True,
        )
        return retrying(attempt)

    def _send_once(self, request: Request) -> Response:
        delay = self.pacer.delay(self.clock())
        if delay > 0:
            self.rate_limit_waits += 1
            if self.on_pace is not None:
                self.on_pace(delay)
            self.sleep(delay)
        headers = dict(request.headers)
        if self.credentials is not None:
            headers.update(self.credentials.headers())
        started = self.clock()
        self.pacer.sent(started)
        method, url = request.describe()
        try:
            raw = self.client.request(
                request.method,
                request.url,
                params=list(request.params) or None,
                json=request.json,
                headers=headers,
                timeout=self.policy.timeout,
            )
            body = raw.read()
        except httpx.TransportError as exc:
            error = NotAvailable(
                f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
                method=method,
                url=url,
            )
            error.never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
            self._notify(request, None, error, started)
            raise error from exc
        wait = retry_after_seconds(
            raw.headers.get("retry-after"), self.wall_clock(), self.policy.retry_after_cap
        )
        response = Response(raw.status_code, raw.headers, body, request, wait)
        now = self.clock()
        self.pacer.observe(parse_rate_limit(response.headers), now)
        if wait is not None and response.status in (429, 503):
            self.pacer.hold_off(wait, now)
        self._notify(request, response, None, started)
        return response

    def _notify(
        self, request: Request, response: Response | None, error: ApiError | None, started: float
    ) -> None:
        elapsed = self.clock() - started
        for observer in self.observers:
            observer(request, response, error, elapsed)

    @staticmethod
    def _retryable(request: Request, exc: BaseException) -> bool:
        if isinstance(exc, RateLimited):
            return True
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

    def _sleep_before_retry(self, seconds: float) -> None:
        if seconds > 0:
            self.sleep(seconds)


def check_base_url(url: str, *, file: str, key: str) -> str:
    """Refuse anything but HTTPS, except plain HTTP on loopback (the sandbox)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme == "https" and host:
        return url.rstrip("/")
    if parts.scheme == "http" and host in LOOPBACK_HOSTS:
        return url.rstrip("/")
    raise ConfigError(
        [Problem(file, key, f"expected an https:// URL (http:// only on loopback), got {url!r}")]
    )


REQUEST_ID_HEADERS = ("x-request-id", "x-zendesk-request-id", "x-freshdesk-request-id")


def error_for(response: Response, message: str) -> ApiError:
    """The typed error for a failed response; the helpdesk's sans-I/O layer words `message`.

    Field-level validation errors are helpdesk-specific: build `ValidationFailed` there.
    """
    method, url = response.request.describe()
    request_id = next(
        (response.headers[name] for name in REQUEST_ID_HEADERS if name in response.headers), None
    )
    status = response.status
    if status == 429:
        return RateLimited(
            message, method=method, url=url, request_id=request_id, retry_after=response.retry_after
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
