"""The HTTP shell: retry policy, Retry-After, pacing from rate-limit headers, safe retries."""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import httpx
import pytest

from connector.errors import (
    ApiError,
    AuthError,
    ConfigError,
    Conflict,
    NotAvailable,
    NotFound,
    RateLimited,
)
from connector.http import (
    HttpShell,
    Pacer,
    RateLimit,
    Request,
    Response,
    RetryPolicy,
    check_base_url,
    error_for,
    parse_rate_limit,
    retry_after_seconds,
)
from tests.fakes import FakeTime

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def decode_json(response: Response) -> object:
    if response.status >= 400:
        raise error_for(response, response.text())
    return response.json()


def shell_for(
    handler: Callable[[httpx.Request], httpx.Response],
    time: FakeTime,
    **kwargs: object,
) -> HttpShell:
    client = httpx.Client(transport=httpx.MockTransport(handler))
    return HttpShell(
        client,
        sleep=time.sleep,
        clock=time.clock,
        wall_clock=lambda: NOW,
        **kwargs,  # type: ignore[arg-type]
    )


def scripted(*responses: httpx.Response | Exception) -> tuple[Callable[..., httpx.Response], list]:
    sent: list[httpx.Request] = []
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        item = queue.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    return handler, sent


GET = Request("GET", "https://acme.example/api/v2/tickets/1.json")
POST = Request("POST", "https://acme.example/api/v2/tickets/1/notes", json={"body": "x"})


# --- Retry-After ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30", 30.0),
        ("0", 0.0),
        ("-5", 0.0),  # negative is clamped
        ("100000", 300.0),  # capped
        ("1.5", 1.5),
        ("Mon, 02 Mar 2026 12:00:45 GMT", 45.0),  # an HTTP date
        ("Mon, 02 Mar 2026 11:59:00 GMT", 0.0),  # a date in the past
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_seconds_or_an_http_date_clamped_and_capped(
    value: str | None, expected: float | None
) -> None:
    assert retry_after_seconds(value, NOW, cap=300.0) == expected


# --- rate-limit headers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-Rate-Limit": "700", "X-Rate-Limit-Remaining": "699"}, RateLimit(700, 699, None)),
        (
            {"ratelimit-limit": "700", "ratelimit-remaining": "12", "ratelimit-reset": "41"},
            RateLimit(700, 12, 41),
        ),
        (  # Freshdesk: decimal strings
            {"X-RateLimit-Total": "200.0", "X-RateLimit-Remaining": "199.0"},
            RateLimit(200, 199, None),
        ),
        (  # Zendesk per-endpoint budget is tighter than the account's
            {
                "x-rate-limit": "700",
                "x-rate-limit-remaining": "699",
                "zendesk-ratelimit-incremental-exports": "total=10; remaining=3; resets=20",
            },
            RateLimit(10, 3, 20),
        ),
        ({"RateLimit": "limit=100, remaining=50, reset=5"}, RateLimit(100, 50, 5)),
        ({"RateLimit": '"default";r=7;t=30'}, RateLimit(None, 7, 30)),
        ({"Content-Type": "application/json"}, None),
        ({"X-Rate-Limit-Remaining": "n/a"}, None),
    ],
)
def test_every_rate_limit_header_variant_is_read_and_the_tightest_kept(
    headers: dict[str, str], expected: RateLimit | None
) -> None:
    assert parse_rate_limit(httpx.Headers(headers)) == expected


def test_pacer_lets_requests_go_while_the_budget_is_large() -> None:
    pacer = Pacer()
    pacer.observe(RateLimit(700, 600, 30), at=0.0)
    pacer.sent(0.0)
    assert pacer.delay(0.0) == 0.0


def test_pacer_spreads_a_small_remaining_budget_over_the_window() -> None:
    pacer = Pacer()
    pacer.observe(RateLimit(100, 10, 30), at=0.0)
    pacer.sent(0.0)
    assert pacer.delay(0.0) == pytest.approx(3.0)
    assert pacer.delay(2.0) == pytest.approx(1.0)


def test_pacer_waits_for_the_reset_when_nothing_is_left() -> None:
    pacer = Pacer()
    pacer.observe(RateLimit(10, 0, 20), at=5.0)
    assert pacer.delay(5.0) == pytest.approx(20.0)


class _Limiter:
    """A helpdesk's request budget that says its limit and what remains, never when it refills."""

    def __init__(self, limit: int, window: float, *, sliding: bool) -> None:
        self.limit, self.window, self.sliding = limit, window, sliding
        self.sent: list[float] = []

    def _used(self, at: float) -> int:
        start = at - self.window if self.sliding else at - at % self.window
        return sum(1 for when in self.sent if when > start or (not self.sliding and when == start))

    def take(self, at: float) -> RateLimit | None:
        """None for a 429; else the budget the answer announces."""
        if self._used(at) >= self.limit:
            return None
        self.sent.append(at)
        return RateLimit(self.limit, self.limit - self._used(at), None)


@pytest.mark.parametrize("sliding", [True, False], ids=["sliding window", "fixed window"])
def test_pacer_keeps_the_allowed_rate_when_the_helpdesk_does_not_say_when_its_window_refills(
    sliding: bool,
) -> None:
    # Freshdesk announces a limit and what remains, no reset; a backfill should use the whole
    # budget (at least 90 %) on either kind of window and not run into 429s.
    limiter, pacer = _Limiter(400, 60.0, sliding=sliding), Pacer()
    now, refused = 0.0, 0
    while now < 600.0:
        now += pacer.delay(now)
        pacer.sent(now)
        rate = limiter.take(now)
        answered = now + 0.05
        if rate is None:
            refused += 1
            pacer.hold_off(60.0 - now % 60.0 if not sliding else 1.0, answered)
        else:
            pacer.observe(rate, answered)
        now = answered
    assert refused == 0
    assert len(limiter.sent) >= 0.9 * 400 * 10


def test_pacer_spends_an_untouched_budget_of_an_unknown_window_at_once_then_paces() -> None:
    pacer = Pacer()
    pacer.observe(RateLimit(400, 399, None), at=0.0)
    pacer.sent(0.0)
    assert pacer.delay(0.0) == 0.0
    pacer.observe(RateLimit(400, 300, None), at=1.0)
    pacer.sent(1.0)
    assert pacer.delay(1.0) == pytest.approx(60.0 / 400)
    pacer.observe(RateLimit(400, 20, None), at=2.0)
    pacer.sent(2.0)
    assert pacer.delay(2.0) == pytest.approx(60.0 / 400 * 2)
    pacer.observe(RateLimit(400, 0, None), at=3.0)
    assert pacer.delay(3.0) == pytest.approx(60.0 / 400)


# --- the shell --------------------------------------------------------------------------------


def test_429_with_retry_after_waits_that_long_then_succeeds() -> None:
    time = FakeTime()
    handler, sent = scripted(
        httpx.Response(429, headers={"Retry-After": "7"}, text="slow down"),
        httpx.Response(200, json={"ok": True}),
    )
    shell = shell_for(handler, time)
    assert shell.send(GET, decode_json) == {"ok": True}
    assert len(sent) == 2
    assert time.sleeps == [7.0]


def test_429_without_retry_after_backs_off_with_jitter() -> None:
    time = FakeTime()
    handler, sent = scripted(httpx.Response(429), httpx.Response(429), httpx.Response(200, json=[]))
    shell = shell_for(handler, time, policy=RetryPolicy(backoff_initial=1.0))
    assert shell.send(GET, decode_json) == []
    assert len(sent) == 3
    assert len(time.sleeps) <= 2
    assert all(0 <= s <= 2.0 for s in time.sleeps)


def test_a_429_is_retried_even_for_a_post_since_it_was_not_processed() -> None:
    time = FakeTime()
    handler, sent = scripted(
        httpx.Response(429, headers={"Retry-After": "1"}), httpx.Response(201, json={"id": 9})
    )
    assert shell_for(handler, time).send(POST, decode_json) == {"id": 9}
    assert len(sent) == 2


def test_503_on_a_get_is_retried_until_the_attempts_run_out() -> None:
    time = FakeTime()
    handler, sent = scripted(*[httpx.Response(503, text="down")] * 3)
    shell = shell_for(handler, time, policy=RetryPolicy(attempts=3))
    with pytest.raises(NotAvailable) as caught:
        shell.send(GET, decode_json)
    assert len(sent) == 3
    assert caught.value.status == 503
    assert "GET https://acme.example/api/v2/tickets/1.json -> 503" in str(caught.value)


def test_a_post_that_may_have_landed_is_never_sent_twice() -> None:
    time = FakeTime()
    handler, sent = scripted(httpx.ReadTimeout("read timed out"), httpx.Response(201))
    with pytest.raises(NotAvailable):
        shell_for(handler, time).send(POST, decode_json)
    assert len(sent) == 1


def test_a_post_whose_connection_never_opened_is_sent_again() -> None:
    time = FakeTime()
    handler, sent = scripted(httpx.ConnectError("refused"), httpx.Response(201, json={"id": 1}))
    assert shell_for(handler, time).send(POST, decode_json) == {"id": 1}
    assert len(sent) == 2


def test_a_transport_error_on_a_get_is_retried() -> None:
    time = FakeTime()
    handler, sent = scripted(httpx.RemoteProtocolError("cut"), httpx.Response(200, json=1))
    assert shell_for(handler, time).send(GET, decode_json) == 1
    assert len(sent) == 2


@pytest.mark.parametrize(("status", "kind"), [(409, Conflict), (404, NotFound), (400, ApiError)])
def test_client_errors_are_not_retried(status: int, kind: type[ApiError]) -> None:
    time = FakeTime()
    handler, sent = scripted(httpx.Response(status, headers={"X-Request-Id": "abc"}))
    with pytest.raises(kind) as caught:
        shell_for(handler, time).send(Request("PUT", "https://acme.example/t"), decode_json)
    assert len(sent) == 1
    assert caught.value.request_id == "abc"


class RotatingCredentials:
    def __init__(self, refreshable: bool) -> None:
        self.token = "old"
        self.refreshable = refreshable
        self.refreshes = 0

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def refresh(self) -> bool:
        self.refreshes += 1
        self.token = "new"
        return self.refreshable


def test_a_401_is_retried_once_with_refreshed_credentials() -> None:
    time = FakeTime()
    handler, sent = scripted(httpx.Response(401), httpx.Response(200, json="ok"))
    credentials = RotatingCredentials(refreshable=True)
    shell = shell_for(handler, time, credentials=credentials)
    assert shell.send(GET, decode_json) == "ok"
    assert [r.headers["Authorization"] for r in sent] == ["Bearer old", "Bearer new"]


def test_a_401_that_refresh_cannot_fix_is_an_auth_error() -> None:
    time = FakeTime()
    handler, sent = scripted(httpx.Response(401), httpx.Response(401))
    credentials = RotatingCredentials(refreshable=False)
    with pytest.raises(AuthError):
        shell_for(handler, time, credentials=credentials).send(GET, decode_json)
    assert credentials.refreshes == 1
    assert len(sent) == 1


def test_requests_are_paced_from_the_headers_so_429s_stay_rare() -> None:
    time = FakeTime()
    remaining = iter(range(5, -1, -1))

    def handler(request: httpx.Request) -> httpx.Response:
        headers = {"X-Rate-Limit": "100", "X-Rate-Limit-Remaining": str(next(remaining))}
        return httpx.Response(200, json=0, headers=headers)

    paced: list[float] = []
    shell = shell_for(handler, time, on_pace=paced.append)
    for _ in range(4):
        shell.send(GET, decode_json)
    # 5 left of 100 in a 60 s window that may slide: the steady 0.6 s between requests,
    # stretched as the last tenth drains (5 %: twice as long, 4 %: 2.5 times, 3 %: 3.3 times).
    assert time.sleeps == pytest.approx([1.2, 1.5, 2.0])
    assert paced == time.sleeps  # what the metrics count as the pacer's waits
    assert shell.rate_limit_waits == 3


def test_observers_see_every_attempt_with_its_outcome() -> None:
    time = FakeTime()
    handler, _ = scripted(httpx.Response(500), httpx.Response(200, json=0))
    seen: list[tuple[int | None, bool]] = []
    shell = shell_for(
        handler,
        time,
        observers=[lambda req, resp, err, elapsed: seen.append((resp and resp.status, bool(err)))],
    )
    shell.send(GET, decode_json)
    assert seen == [(500, False), (200, False)]


@pytest.mark.parametrize(
    "url", ["https://acme.zendesk.com", "http://127.0.0.1:8765", "http://localhost:1/"]
)
def test_https_or_loopback_base_urls_are_accepted(url: str) -> None:
    assert check_base_url(url, file="config.toml", key="zendesk.url") == url.rstrip("/")


@pytest.mark.parametrize("url", ["http://acme.zendesk.com", "ftp://x", "acme.zendesk.com"])
def test_other_base_urls_are_refused_naming_the_key(url: str) -> None:
    with pytest.raises(ConfigError, match=r"config\.toml: zendesk\.url: expected an https://"):
        check_base_url(url, file="config.toml", key="zendesk.url")


def test_error_for_503_with_retry_after_is_a_rate_limit() -> None:
    response = Response(503, httpx.Headers({"Retry-After": "3"}), b"", GET, retry_after=3.0)
    error = error_for(response, "maintenance")
    assert isinstance(error, RateLimited)
    assert error.retry_after == 3.0


# --- what comes back: decoded, capped, on time -------------------------------------------------


def test_a_gzip_body_is_asked_for_and_decoded() -> None:
    body = gzip.compress(b'{"ok": true}')
    handler, sent = scripted(
        httpx.Response(200, stream=httpx.ByteStream(body), headers={"Content-Encoding": "gzip"})
    )
    assert shell_for(handler, FakeTime()).send(GET, decode_json) == {"ok": True}
    assert sent[0].headers["Accept-Encoding"] == "gzip"


@pytest.mark.parametrize(
    ("encoding", "body", "why"),
    [
        ("gzip", b"plain", "not the gzip"),
        ("gzip", gzip.compress(b'{"ok": true}')[:-12], "ends before its end"),
        ("br", b"\x0b\x02\x80{}\x03", "encoding not asked for"),
        ("gzip, gzip", gzip.compress(gzip.compress(b"{}")), "encoding not asked for"),
    ],
)
def test_a_body_not_in_the_encoding_it_claims_is_not_available(
    encoding: str, body: bytes, why: str
) -> None:
    handler, sent = scripted(
        *[
            httpx.Response(
                200, stream=httpx.ByteStream(body), headers={"Content-Encoding": encoding}
            )
            for _ in range(2)
        ]
    )
    shell = shell_for(handler, FakeTime(), policy=RetryPolicy(attempts=2))
    with pytest.raises(NotAvailable, match=why) as caught:
        shell.send(GET, decode_json)
    assert caught.value.status == 200
    assert len(sent) == 2  # a GET: tried again, as after a 5xx


@pytest.mark.parametrize(
    "raised",
    [
        httpx.DecodingError("bad gzip"),
        httpx.TooManyRedirects("loop"),
        httpx.LocalProtocolError("bad header"),
        httpx.ProxyError("proxy down"),
    ],
)
def test_no_httpx_error_escapes_the_shell(raised: Exception) -> None:
    handler, _ = scripted(raised)
    shell = shell_for(handler, FakeTime(), policy=RetryPolicy(attempts=1))
    with pytest.raises(NotAvailable, match=type(raised).__name__):
        shell.send(GET, decode_json)


class _Trickle(httpx.SyncByteStream):
    """A body that arrives a byte per second of `time`, for 1,000 seconds."""

    def __init__(self, time: FakeTime) -> None:
        self.time = time
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        for _ in range(1000):
            self.time.now += 1.0
            self.sent += 1
            yield b" "


def test_a_body_still_arriving_at_the_deadline_is_not_available() -> None:
    time = FakeTime()
    trickle = _Trickle(time)
    handler, _ = scripted(httpx.Response(200, stream=trickle))
    shell = shell_for(handler, time, policy=RetryPolicy(attempts=1, deadline=10.0))
    with pytest.raises(NotAvailable, match=r"within the 10 s deadline"):
        shell.send(GET, decode_json)
    assert trickle.sent == 11


def test_a_body_over_the_cap_is_not_available() -> None:
    handler, _ = scripted(httpx.Response(200, stream=httpx.ByteStream(b" " * 101)))
    shell = shell_for(handler, FakeTime(), policy=RetryPolicy(attempts=1, max_body=100))
    with pytest.raises(NotAvailable, match="larger than the 100 bytes allowed"):
        shell.send(GET, decode_json)
