"""Wiring: from settings to loaded rules, an open state and a connected helpdesk.

The commands (`run`, `sync`, `backfill`, `explain`, `check`, `demo`) all start here, so they
see the same mappings, credentials and state the same way.
"""

from __future__ import annotations

import functools
import hashlib
import ssl
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import SecretStr

from connector import logs
from connector.config import Settings, require_secret, secret
from connector.errors import ConfigError, Problem
from connector.helpdesks.adapter import Helpdesk
from connector.helpdesks.freshdesk import ApiKeyCredentials, FreshdeskClient
from connector.helpdesks.freshdesk.adapter import FreshdeskHelpdesk
from connector.helpdesks.freshdesk.sansio import LIST_BUDGET as FRESHDESK_LIST
from connector.helpdesks.freshdesk.sansio import PLAN_SUB_LIMITS
from connector.helpdesks.freshdesk.sansio import UPDATE_BUDGET as FRESHDESK_UPDATE
from connector.helpdesks.mapping import cross_check
from connector.helpdesks.zendesk import ApiTokenCredentials, ZendeskClient
from connector.helpdesks.zendesk.adapter import ZendeskHelpdesk
from connector.helpdesks.zendesk.auth import OAuthCredentials, OAuthTokens
from connector.helpdesks.zendesk.sansio import UPDATE_BUDGET
from connector.http import Budget, Credentials, HttpShell, Interrupt, Observer, RetryPolicy
from connector.mappingfiles import load_contracts, load_helpdesk_mapping
from connector.service.rules import Rules
from connector.state import Store

__all__ = ["load_rules", "open_helpdesk"]

OAUTH_TOKEN = "zendesk_oauth"
OAUTH_REFRESHING = "zendesk_oauth_refreshing"  # the refresh in flight, if any


def load_rules(settings: Settings) -> Rules:
    """The contracts and the helpdesk mapping; ConfigError lists every problem."""
    contracts = load_contracts(settings.mappings)
    mapping_file = settings.mapping_file
    mapping = load_helpdesk_mapping(mapping_file)
    if mapping.helpdesk != settings.helpdesk:
        raise ConfigError(
            [
                Problem(
                    str(mapping_file),
                    "helpdesk",
                    f"is {mapping.helpdesk!r} but the configuration says {settings.helpdesk!r}",
                )
            ]
        )
    problems = [
        Problem(str(mapping_file), ".".join(str(p) for p in path), message)
        for path, message in cross_check(mapping)
    ]
    if problems:
        raise ConfigError(problems)
    return Rules(contracts, mapping)


def open_helpdesk(
    settings: Settings,
    state: Store,
    *,
    transport: httpx.BaseTransport | None = None,
    observers: Iterable[Observer] = (),
    on_pace: Callable[[float], None] | None = None,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] | None = None,
    secrets: Mapping[str, str] | None = None,
    interrupt: Interrupt | None = None,
    monotonic: Callable[[], float] | None = None,
) -> Helpdesk:
    """A connected helpdesk of the configured kind, with its credentials.

    Secrets come from the environment or systemd credentials, unless `secrets` gives them
    (the demo passes the sandbox's own).
    """
    http = httpx.Client(
        transport=transport, timeout=(policy or RetryPolicy()).timeout, verify=_tls()
    )
    url = settings.helpdesk_url
    credentials = _credentials(settings, state, http, secrets)
    extra: dict[str, Any] = {} if sleep is None else {"sleep": sleep}
    if monotonic is not None:  # a simulated clock (tests, benchmarks), with its `sleep`
        extra["clock"] = monotonic
    shell = HttpShell(
        http,
        credentials=credentials,
        policy=policy,
        observers=observers,
        on_pace=on_pace,
        interrupt=interrupt,
        budgets=_budgets(settings),
        **extra,
    )
    if settings.helpdesk == "zendesk":
        return ZendeskHelpdesk(ZendeskClient(shell, url))
    return FreshdeskHelpdesk(FreshdeskClient(shell, url))


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for the process: each client would otherwise load the CA bundle again
    (0.8 MB and 22 ms a helpdesk account, measured at 200 accounts)."""
    return httpx.create_ssl_context()


def _budgets(settings: Settings) -> dict[str, Budget]:
    """The endpoint budgets the connector may spend, from the settings."""
    if settings.helpdesk == "zendesk":
        return {UPDATE_BUDGET: Budget(share=settings.zendesk.update_share)}
    freshdesk = settings.freshdesk
    limits = PLAN_SUB_LIMITS.get(freshdesk.plan or "", {})
    names = {*limits, FRESHDESK_UPDATE, FRESHDESK_LIST}
    return {name: Budget(share=freshdesk.budget_share, limit=limits.get(name)) for name in names}


def _credentials(
    settings: Settings, state: Store, http: httpx.Client, secrets: Mapping[str, str] | None
) -> Credentials:
    def _secret(settings: Settings, name: str) -> str:
        if secrets is not None and name in secrets:
            value = secrets[name]
        else:
            value = require_secret(name, settings.source, settings.tenant).get_secret_value()
        logs.register_secret(value)
        return value

    if settings.helpdesk == "freshdesk":
        return ApiKeyCredentials(_secret(settings, "freshdesk_api_key"))
    zendesk = settings.zendesk
    if zendesk.auth == "api_token":
        if not zendesk.email:
            raise ConfigError(
                [Problem(settings.source, settings.key("zendesk.email"), "required key is missing")]
            )
        return ApiTokenCredentials(zendesk.email, _secret(settings, "zendesk_api_token"))
    if not zendesk.client_id:
        raise ConfigError(
            [Problem(settings.source, settings.key("zendesk.client_id"), "required key is missing")]
        )
    configured = (
        secrets.get("zendesk_oauth_refresh_token")
        if secrets is not None
        else reveal(secret("zendesk_oauth_refresh_token", settings.tenant))
    )
    tokens, origin = _saved_tokens(state)
    if tokens is not None and origin is None and configured:
        origin = _digest(configured)  # saved before origins were kept: assume it is unchanged
    if tokens is not None and configured and _digest(configured) != origin:
        # A refresh token the saved ones do not descend from: the administrator authorized
        # the connector again (after a refused refresh token, say); it starts a new chain.
        logs.get_logger("sla-connector").info("oauth_reauthorized", action="using it")
        tokens = None
    if tokens is not None:
        for token in (tokens.access_token, tokens.refresh_token):
            if token is not None:
                logs.register_secret(token.get_secret_value())
    else:
        # The configured refresh token is good for one refresh: the rotated ones live in state.
        configured = _secret(settings, "zendesk_oauth_refresh_token")
        origin = _digest(configured)
        tokens = OAuthTokens(
            access_token=SecretStr(""),
            refresh_token=SecretStr(configured),
            expires_at=datetime(1970, 1, 1, tzinfo=UTC),
        )

    def persist(new: OAuthTokens) -> None:
        for token in (new.access_token, new.refresh_token):
            if token is not None:
                logs.register_secret(token.get_secret_value())
        with state.transaction():  # saved, and no refresh in flight any more
            state.set_token(OAUTH_TOKEN, _token_json(new, origin), datetime.now(UTC))
            state.forget_token(OAUTH_REFRESHING)

    return OAuthCredentials(
        http=http,
        base_url=settings.helpdesk_url,
        client_id=zendesk.client_id,
        client_secret=_secret(settings, "zendesk_oauth_client_secret"),
        tokens=tokens,
        persist=persist,
        journal=_StateJournal(state),
    )


def _saved_tokens(state: Store) -> tuple[OAuthTokens | None, str | None]:
    """The rotated OAuth tokens kept in the state, and the digest of the configured refresh
    token they descend from; (None, None) when there are none or they are unreadable (then the
    configured refresh token is used, and its successors replace them)."""
    try:
        saved = state.token(OAUTH_TOKEN)
        if saved is None:
            return None, None
        origin = saved.get("origin")
        return OAuthTokens.model_validate(saved), origin if isinstance(origin, str) else None
    except (ValueError, TypeError):  # not JSON, not an object, not tokens
        logs.get_logger("sla-connector").warning(
            "oauth_tokens_unreadable",
            state=state.where,
            action="using the configured refresh token",
        )
        return None, None


class _StateJournal:
    """The OAuth refresh in flight, written down in the state (see `RefreshJournal`).

    Tokens are named by their SHA-256 digest, never stored in clear here.
    """

    def __init__(self, state: Store) -> None:
        self.state = state

    def begin(self, tokens: OAuthTokens) -> None:
        sent = datetime.now(UTC)
        entry = {
            "refresh_token": _digest(reveal(tokens.refresh_token)),
            "sent_at": sent.isoformat(),
        }
        self.state.set_token(OAUTH_REFRESHING, entry, sent)

    def interrupted(self, tokens: OAuthTokens) -> datetime | None:
        try:
            entry = self.state.token(OAUTH_REFRESHING)
            if entry is None or entry.get("refresh_token") != _digest(reveal(tokens.refresh_token)):
                return None
            return datetime.fromisoformat(str(entry["sent_at"]))
        except (ValueError, TypeError, KeyError):  # a damaged entry only loses the explanation
            return None


def _digest(token: str | None) -> str:
    return hashlib.sha256((token or "").encode()).hexdigest()


def reveal(value: SecretStr | None) -> str | None:
    """The secret's text (None stays None)."""
    return None if value is None else value.get_secret_value()


def _token_json(tokens: OAuthTokens, origin: str | None) -> dict[str, Any]:
    return {
        "origin": origin,
        "access_token": reveal(tokens.access_token),
        "refresh_token": reveal(tokens.refresh_token),
        "expires_at": None if tokens.expires_at is None else tokens.expires_at.isoformat(),
        "refresh_expires_at": (
            None if tokens.refresh_expires_at is None else tokens.refresh_expires_at.isoformat()
        ),
    }
