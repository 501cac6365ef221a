"""How the connector proves who it is to Zendesk: an API token, or OAuth with refresh.

Both implement `connector.http.Credentials`. Secrets never appear in `repr()`, `str()` or any
error message of these objects: a traceback or a log line of them is safe to share.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import httpx
from pydantic import AwareDatetime, BaseModel, ConfigDict, SecretStr, ValidationError

from connector.errors import AuthError, NotAvailable
from connector.http import HttpShell, Request, Response, RetryPolicy

__all__ = [
    "REAUTHORIZE",
    "REFRESH_MARGIN",
    "TOKEN_PATH",
    "ApiTokenCredentials",
    "OAuthCredentials",
    "OAuthTokens",
    "RefreshJournal",
]

TOKEN_PATH = "/oauth/tokens"
# Refresh this long before the access token expires, so no request carries a dying token.
REFRESH_MARGIN = timedelta(minutes=1)
# What an administrator does when Zendesk refuses the refresh token.
REAUTHORIZE = (
    "authorize the connector again and configure the new refresh token as the secret "
    "zendesk_oauth_refresh_token (it replaces the saved tokens), then restart it"
)


class ApiTokenCredentials:
    """Basic authentication with `{email}/token:{api_token}`, as documented by Zendesk.

    Zendesk has announced the end of API tokens (2027): prefer `OAuthCredentials`; this stays
    for accounts that have not moved yet.
    """

    __slots__ = ("_header", "email")

    def __init__(self, email: str, token: str) -> None:
        if not email or not token:
            raise ValueError("an API token needs both the agent's e-mail and the token")
        self.email = email
        raw = f"{email}/token:{token}".encode()
        self._header = "Basic " + base64.b64encode(raw).decode("ascii")

    def headers(self) -> Mapping[str, str]:
        """The Authorization header."""
        return {"Authorization": self._header}

    def refresh(self) -> bool:
        """An API token cannot renew itself: a 401 is final."""
        return False

    def __repr__(self) -> str:
        return f"ApiTokenCredentials(email={self.email!r}, token='**********')"


class OAuthTokens(BaseModel):
    """An OAuth token set; the secrets print as `**********`."""

    model_config = ConfigDict(frozen=True)

    access_token: SecretStr
    refresh_token: SecretStr | None = None
    expires_at: AwareDatetime | None = None  # None: does not expire (or not said)
    refresh_expires_at: AwareDatetime | None = None


class _TokenAnswer(BaseModel):
    access_token: str
    refresh_token: str | None = None
    expires_in: float | None = None
    refresh_token_expires_in: float | None = None


class RefreshJournal(Protocol):
    """Where a refresh in flight is written down before it is sent.

    Zendesk deletes the old token pair when it answers a refresh; if that answer is lost (the
    process killed, the connection cut after the server acted), the saved refresh token is
    dead and only a new authorization helps. The journal lets the error say so.
    """

    def begin(self, tokens: OAuthTokens) -> None:
        """A refresh with `tokens` is about to be sent."""

    def interrupted(self, tokens: OAuthTokens) -> datetime | None:
        """When a refresh with `tokens` was sent and its answer never saved, if one was."""


def _now() -> datetime:
    return datetime.now(UTC)


class OAuthCredentials:
    """Bearer access token that refreshes itself with the refresh-token grant.

    Documented by Zendesk: `POST {base}/oauth/tokens` with `grant_type=refresh_token`, the
    refresh token and the OAuth client's id and secret returns a new access token *and a new
    refresh token*, and invalidates the old pair. So the new set goes to `persist` before it
    is used: a daemon that used a new token and then died before saving it would restart
    with a refresh token that no longer works. If `persist` raises, the new set is still kept
    in memory (it is the only valid one) and the error propagates for the operator to see.
    A `journal` records each refresh before it is sent (see `RefreshJournal`).
    """

    def __init__(
        self,
        *,
        http: httpx.Client,
        base_url: str,
        client_id: str,
        client_secret: str,
        tokens: OAuthTokens,
        persist: Callable[[OAuthTokens], None],
        journal: RefreshJournal | None = None,
        clock: Callable[[], datetime] = _now,
        margin: timedelta = REFRESH_MARGIN,
        scope: str | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self._http = http
        self._token_url = base_url.rstrip("/") + TOKEN_PATH
        self._client_id = client_id
        self._client_secret = SecretStr(client_secret)
        self._tokens = tokens
        self._persist = persist
        self._journal = journal
        self._clock = clock
        self._margin = margin
        self._scope = scope
        # The token request is bounded as every other request is (a total deadline, a capped
        # body, no raw httpx error), and never retried here: the next request that needs a
        # token tries again with the same refresh token, which is the same as a retry.
        self._shell = HttpShell(http, policy=replace(policy or RetryPolicy(), attempts=1))
        self._lock = threading.Lock()

    @property
    def tokens(self) -> OAuthTokens:
        """The token set in use."""
        return self._tokens

    def headers(self) -> Mapping[str, str]:
        """The Authorization header, refreshed first if the access token is about to expire."""
        tokens = self._tokens
        if self._expiring(tokens) and tokens.refresh_token is not None:
            with self._lock:
                if self._tokens is tokens:  # another thread may have refreshed meanwhile
                    self._refresh(tokens)
        return {"Authorization": f"Bearer {self._tokens.access_token.get_secret_value()}"}

    def refresh(self) -> bool:
        """Renew after a 401; False when there is no refresh token to do it with."""
        tokens = self._tokens
        if tokens.refresh_token is None:
            return False
        with self._lock:
            if self._tokens is tokens:
                self._refresh(tokens)
        return True

    def _expiring(self, tokens: OAuthTokens) -> bool:
        return tokens.expires_at is not None and tokens.expires_at - self._margin <= self._clock()

    def _refresh(self, tokens: OAuthTokens) -> None:
        assert tokens.refresh_token is not None
        body: dict[str, Any] = {
            "grant_type": "refresh_token",
            "refresh_token": tokens.refresh_token.get_secret_value(),
            "client_id": self._client_id,
            "client_secret": self._client_secret.get_secret_value(),
        }
        if self._scope:
            body["scope"] = self._scope
        asked_at = self._clock()
        if self._journal is not None:
            self._journal.begin(tokens)
        try:
            raw = self._shell.send(Request("POST", self._token_url, json=body), _as_it_is)
        except NotAvailable as exc:
            raise self._failure(f"token endpoint unreachable ({exc.args[0]})") from None
        if raw.status != 200:
            why = _oauth_error(raw)
            if _oauth_code(raw) == "invalid_grant":
                raise self._rejected(why, tokens, raw.status)
            raise self._failure(why, status=raw.status)
        try:
            answer = _TokenAnswer.model_validate_json(raw.body)
        except ValidationError:
            raise self._failure("token endpoint answered without an access token") from None
        new = OAuthTokens(
            access_token=SecretStr(answer.access_token),
            # A server that does not rotate leaves the old refresh token valid.
            refresh_token=(
                SecretStr(answer.refresh_token) if answer.refresh_token else tokens.refresh_token
            ),
            expires_at=_after(asked_at, answer.expires_in),
            refresh_expires_at=(
                _after(asked_at, answer.refresh_token_expires_in)
                if answer.refresh_token
                else tokens.refresh_expires_at
            ),
        )
        try:
            self._persist(new)
        finally:
            self._tokens = new

    def _failure(self, why: str, status: int | None = None) -> AuthError:
        return AuthError(
            f"OAuth token refresh failed: {why}; re-authorize the connector if this persists",
            method="POST",
            url=self._token_url,
            status=status,
        )

    def _rejected(self, why: str, tokens: OAuthTokens, status: int) -> AuthError:
        """Zendesk no longer knows the refresh token: only a new authorization helps."""
        lost = None if self._journal is None else self._journal.interrupted(tokens)
        cause = (
            "it was revoked or has expired"
            if lost is None
            else f"a refresh sent with it at {lost.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ} was never "
            "answered (the connector stopped or the connection dropped), and Zendesk deletes "
            "the old tokens when it answers"
        )
        return AuthError(
            f"OAuth refresh token refused ({why}): {cause}; {REAUTHORIZE}",
            method="POST",
            url=self._token_url,
            status=status,
        )

    def __repr__(self) -> str:
        return f"OAuthCredentials(token_url={self._token_url!r}, client_id={self._client_id!r})"


def _after(start: datetime, seconds: float | None) -> datetime | None:
    return None if seconds is None else start + timedelta(seconds=seconds)


def _as_it_is(response: Response) -> Response:
    return response


def _oauth_body(raw: Response) -> dict[str, Any]:
    """The JSON object of a refused token request ({} if it is not one)."""
    try:
        body = raw.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _oauth_code(raw: Response) -> str | None:
    """The OAuth error code of a refused token request, if it has one."""
    code = _oauth_body(raw).get("error")
    return code if isinstance(code, str) else None


def _oauth_error(raw: Response) -> str:
    """The OAuth error code and description only: never the body, which may echo input."""
    body = _oauth_body(raw)
    code = body.get("error")
    text = body.get("error_description")
    if isinstance(code, str) and isinstance(text, str):
        return f"HTTP {raw.status} {code}: {text}"
    if isinstance(code, str):
        return f"HTTP {raw.status} {code}"
    return f"HTTP {raw.status}"
