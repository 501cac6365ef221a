"""Credentials: API token header, OAuth refresh that saves the rotated tokens first, no leaks."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import respx
from pydantic import SecretStr
from zendesk_helpers import BASE, MakeClient, json_response, ticket_json

from connector.errors import AuthError
from connector.helpdesks.zendesk import ApiTokenCredentials, OAuthCredentials, OAuthTokens

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
TOKEN_URL = "/oauth/tokens"
SECRETS = ("ACCESS-OLD-c4n4ry", "REFRESH-OLD-c4n4ry", "CLIENT-SECRET-c4n4ry", "API-TOKEN-c4n4ry")


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def tokens(expires_in: timedelta | None = timedelta(hours=1)) -> OAuthTokens:
    return OAuthTokens(
        access_token=SecretStr("ACCESS-OLD-c4n4ry"),
        refresh_token=SecretStr("REFRESH-OLD-c4n4ry"),
        expires_at=None if expires_in is None else NOW + expires_in,
    )


class Journal:
    """A `RefreshJournal` in memory: the refresh tokens sent and not yet answered."""

    def __init__(self) -> None:
        self.sent: dict[str, datetime] = {}

    def begin(self, tokens: OAuthTokens) -> None:
        assert tokens.refresh_token is not None
        self.sent[tokens.refresh_token.get_secret_value()] = NOW

    def interrupted(self, tokens: OAuthTokens) -> datetime | None:
        assert tokens.refresh_token is not None
        return self.sent.get(tokens.refresh_token.get_secret_value())


def oauth(
    http: httpx.Client,
    saved: list[OAuthTokens],
    clock: Clock | None = None,
    initial: OAuthTokens | None = None,
    journal: Journal | None = None,
) -> OAuthCredentials:
    return OAuthCredentials(
        http=http,
        base_url=BASE,
        client_id="sla-connector",
        client_secret="CLIENT-SECRET-c4n4ry",
        tokens=initial or tokens(),
        persist=saved.append,
        journal=journal,
        clock=clock or Clock(),
    )


def new_token_set() -> httpx.Response:
    return json_response(
        200,
        {
            "access_token": "ACCESS-NEW",
            "refresh_token": "REFRESH-NEW",
            "token_type": "bearer",
            "scope": "read write",
            "expires_in": 3600,
            "refresh_token_expires_in": 2592000,
        },
    )


def test_api_token_is_basic_auth_with_the_token_suffix() -> None:
    credentials = ApiTokenCredentials("agent@example.com", "API-TOKEN-c4n4ry")

    scheme, encoded = credentials.headers()["Authorization"].split()

    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode() == "agent@example.com/token:API-TOKEN-c4n4ry"
    assert credentials.refresh() is False


def test_401_refreshes_and_saves_the_new_tokens_before_retrying(
    router: respx.MockRouter, http: httpx.Client, make_client: MakeClient
) -> None:
    events: list[str] = []
    saved: list[OAuthTokens] = []

    def persist(new: OAuthTokens) -> None:
        events.append("persisted")
        saved.append(new)

    def api(request: httpx.Request) -> httpx.Response:
        events.append(f"api {request.headers['Authorization']}")
        if request.headers["Authorization"] == "Bearer ACCESS-OLD-c4n4ry":
            return json_response(401, {"error": "Couldn't authenticate you"})
        return json_response(200, {"ticket": ticket_json(1)})

    token_route = router.post(TOKEN_URL).mock(return_value=new_token_set())
    router.get("/api/v2/tickets/1.json").mock(side_effect=api)
    credentials = OAuthCredentials(
        http=http,
        base_url=BASE,
        client_id="sla-connector",
        client_secret="CLIENT-SECRET-c4n4ry",
        tokens=tokens(),
        persist=persist,
        clock=Clock(),
    )

    page = make_client(credentials=credentials).show(1)

    assert page.tickets[0].id == 1
    assert events == ["api Bearer ACCESS-OLD-c4n4ry", "persisted", "api Bearer ACCESS-NEW"]
    assert saved[0].refresh_token is not None
    assert saved[0].refresh_token.get_secret_value() == "REFRESH-NEW"
    assert saved[0].expires_at == NOW + timedelta(hours=1)
    assert json.loads(token_route.calls.last.request.content) == {
        "grant_type": "refresh_token",
        "refresh_token": "REFRESH-OLD-c4n4ry",
        "client_id": "sla-connector",
        "client_secret": "CLIENT-SECRET-c4n4ry",
    }


def test_token_expiring_within_a_minute_is_refreshed_before_the_request(
    router: respx.MockRouter, http: httpx.Client
) -> None:
    router.post(TOKEN_URL).mock(return_value=new_token_set())
    saved: list[OAuthTokens] = []
    clock = Clock()
    credentials = oauth(http, saved, clock)

    clock.now = NOW + timedelta(minutes=58)
    assert credentials.headers()["Authorization"] == "Bearer ACCESS-OLD-c4n4ry"
    assert saved == []

    clock.now = NOW + timedelta(minutes=59, seconds=30)
    assert credentials.headers()["Authorization"] == "Bearer ACCESS-NEW"
    assert len(saved) == 1


def test_token_without_expiry_is_never_refreshed_proactively(
    router: respx.MockRouter, http: httpx.Client
) -> None:
    route = router.post(TOKEN_URL).mock(return_value=new_token_set())
    credentials = oauth(http, [], initial=tokens(expires_in=None))

    credentials.headers()

    assert route.call_count == 0


def test_refused_refresh_is_an_auth_error_without_secrets(
    router: respx.MockRouter, http: httpx.Client
) -> None:
    router.post(TOKEN_URL).mock(
        return_value=json_response(
            400, {"error": "invalid_grant", "error_description": "The refresh token is invalid"}
        )
    )
    saved: list[OAuthTokens] = []
    credentials = oauth(http, saved)

    with pytest.raises(AuthError) as caught:
        credentials.refresh()

    message = str(caught.value)
    assert "invalid_grant" in message
    assert "revoked or has expired" in message
    assert "authorize the connector again" in message
    assert "zendesk_oauth_refresh_token" in message
    assert not any(secret in message for secret in SECRETS)
    assert saved == []
    assert credentials.tokens.access_token.get_secret_value() == "ACCESS-OLD-c4n4ry"


def test_a_refresh_whose_answer_was_lost_is_named_when_zendesk_refuses_its_token(
    router: respx.MockRouter, http: httpx.Client
) -> None:
    # Zendesk rotated the pair but the answer never arrived: the next refresh is refused.
    router.post(TOKEN_URL).mock(
        side_effect=[
            httpx.ReadError("connection reset after the server answered"),
            json_response(400, {"error": "invalid_grant", "error_description": "revoked"}),
        ]
    )
    journal = Journal()
    credentials = oauth(http, [], journal=journal)

    with pytest.raises(AuthError, match="unreachable"):
        credentials.refresh()
    assert list(journal.sent) == ["REFRESH-OLD-c4n4ry"]
    with pytest.raises(AuthError) as caught:
        credentials.refresh()

    message = str(caught.value)
    assert "a refresh sent with it at 2026-03-02T08:00:00Z was never answered" in message
    assert "authorize the connector again" in message
    assert "\n" not in message
    assert not any(secret in message for secret in SECRETS)


def test_401_with_a_refused_refresh_surfaces_the_auth_error(
    router: respx.MockRouter, http: httpx.Client, make_client: MakeClient
) -> None:
    router.post(TOKEN_URL).mock(return_value=json_response(401, {"error": "invalid_client"}))
    api = router.get("/api/v2/tickets/1.json").mock(return_value=json_response(401, {}))

    with pytest.raises(AuthError, match="OAuth token refresh failed"):
        make_client(credentials=oauth(http, [])).show(1)

    assert api.call_count == 1


def test_token_endpoint_cut_is_not_retried(router: respx.MockRouter, http: httpx.Client) -> None:
    route = router.post(TOKEN_URL).mock(side_effect=httpx.ConnectError("refused"))

    with pytest.raises(AuthError, match="unreachable"):
        oauth(http, []).refresh()

    assert route.call_count == 1


def test_without_refresh_token_a_401_is_final(http: httpx.Client) -> None:
    credentials = oauth(http, [], initial=OAuthTokens(access_token=SecretStr("ACCESS-OLD-c4n4ry")))

    assert credentials.refresh() is False


def test_new_tokens_are_kept_when_saving_them_fails(
    router: respx.MockRouter, http: httpx.Client
) -> None:
    router.post(TOKEN_URL).mock(return_value=new_token_set())

    def broken(_: OAuthTokens) -> None:
        raise OSError("disk full")

    credentials = OAuthCredentials(
        http=http,
        base_url=BASE,
        client_id="sla-connector",
        client_secret="CLIENT-SECRET-c4n4ry",
        tokens=tokens(),
        persist=broken,
        clock=Clock(),
    )

    with pytest.raises(OSError, match="disk full"):
        credentials.refresh()

    assert credentials.headers()["Authorization"] == "Bearer ACCESS-NEW"


def test_secrets_never_show_in_repr_or_str(http: httpx.Client) -> None:
    shown = " ".join(
        text
        for thing in (
            ApiTokenCredentials("agent@example.com", "API-TOKEN-c4n4ry"),
            oauth(http, []),
            tokens(),
        )
        for text in (repr(thing), str(thing))
    )

    assert "agent@example.com" in shown
    assert not any(secret in shown for secret in SECRETS)
