"""Wiring: from settings to loaded rules, an open state and a connected helpdesk.

The commands (`run`, `sync`, `backfill`, `explain`, `check`, `demo`) all start here, so they
see the same mappings, credentials and state the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import SecretStr

from connector import logs
from connector.config import Settings, require_secret
from connector.errors import ConfigError, Problem
from connector.helpdesks.adapter import Helpdesk
from connector.helpdesks.freshdesk import ApiKeyCredentials, FreshdeskClient
from connector.helpdesks.freshdesk.adapter import FreshdeskHelpdesk
from connector.helpdesks.mapping import cross_check
from connector.helpdesks.zendesk import ApiTokenCredentials, ZendeskClient
from connector.helpdesks.zendesk.adapter import ZendeskHelpdesk
from connector.helpdesks.zendesk.auth import OAuthCredentials, OAuthTokens
from connector.http import Credentials, HttpShell, Observer, RetryPolicy
from connector.mappingfiles import load_contracts, load_helpdesk_mapping
from connector.state import State
from connector.sync import Rules

__all__ = ["load_rules", "open_helpdesk"]

OAUTH_TOKEN = "zendesk_oauth"


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
    state: State,
    *,
    transport: httpx.BaseTransport | None = None,
    observers: Iterable[Observer] = (),
    on_pace: Callable[[float], None] | None = None,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] | None = None,
    secrets: Mapping[str, str] | None = None,
) -> Helpdesk:
    """A connected helpdesk of the configured kind, with its credentials.

    Secrets come from the environment or systemd credentials, unless `secrets` gives them
    (the demo passes the sandbox's own).
    """
    http = httpx.Client(transport=transport, timeout=(policy or RetryPolicy()).timeout)
    url = settings.helpdesk_url
    credentials = _credentials(settings, state, http, secrets)
    extra: dict[str, Any] = {} if sleep is None else {"sleep": sleep}
    shell = HttpShell(
        http,
        credentials=credentials,
        policy=policy,
        observers=observers,
        on_pace=on_pace,
        **extra,
    )
    if settings.helpdesk == "zendesk":
        return ZendeskHelpdesk(ZendeskClient(shell, url))
    return FreshdeskHelpdesk(FreshdeskClient(shell, url))


def _credentials(
    settings: Settings, state: State, http: httpx.Client, secrets: Mapping[str, str] | None
) -> Credentials:
    def _secret(settings: Settings, name: str) -> str:
        if secrets is not None and name in secrets:
            value = secrets[name]
        else:
            value = require_secret(name, settings.source).get_secret_value()
        logs.register_secret(value)
        return value

    if settings.helpdesk == "freshdesk":
        return ApiKeyCredentials(_secret(settings, "freshdesk_api_key"))
    zendesk = settings.zendesk
    if zendesk.auth == "api_token":
        if not zendesk.email:
            raise ConfigError([Problem(settings.source, "zendesk.email", "is required")])
        return ApiTokenCredentials(zendesk.email, _secret(settings, "zendesk_api_token"))
    if not zendesk.client_id:
        raise ConfigError([Problem(settings.source, "zendesk.client_id", "is required")])
    tokens = _saved_tokens(state)
    if tokens is not None:
        for secret in (tokens.access_token, tokens.refresh_token):
            if secret is not None:
                logs.register_secret(secret.get_secret_value())
    else:
        # The configured refresh token is good for one refresh: the rotated ones live in state.
        tokens = OAuthTokens(
            access_token=SecretStr(""),
            refresh_token=SecretStr(_secret(settings, "zendesk_oauth_refresh_token")),
            expires_at=datetime(1970, 1, 1, tzinfo=UTC),
        )

    def persist(new: OAuthTokens) -> None:
        for secret in (new.access_token, new.refresh_token):
            if secret is not None:
                logs.register_secret(secret.get_secret_value())
        state.set_token(OAUTH_TOKEN, _token_json(new), datetime.now(UTC))

    return OAuthCredentials(
        http=http,
        base_url=settings.helpdesk_url,
        client_id=zendesk.client_id,
        client_secret=_secret(settings, "zendesk_oauth_client_secret"),
        tokens=tokens,
        persist=persist,
    )


def _saved_tokens(state: State) -> OAuthTokens | None:
    """The rotated OAuth tokens kept in the state; None when there are none or they are
    unreadable (then the configured refresh token is used, and its successors replace them)."""
    try:
        saved = state.token(OAUTH_TOKEN)
        return None if saved is None else OAuthTokens.model_validate(saved)
    except (ValueError, TypeError):  # not JSON, not an object, not tokens
        logs.get_logger("sla-connector").warning(
            "oauth_tokens_unreadable",
            state=str(state.path),
            action="using the configured refresh token",
        )
        return None


def _token_json(tokens: OAuthTokens) -> dict[str, Any]:
    def reveal(value: SecretStr | None) -> str | None:
        return None if value is None else value.get_secret_value()

    return {
        "access_token": reveal(tokens.access_token),
        "refresh_token": reveal(tokens.refresh_token),
        "expires_at": None if tokens.expires_at is None else tokens.expires_at.isoformat(),
        "refresh_expires_at": (
            None if tokens.refresh_expires_at is None else tokens.refresh_expires_at.isoformat()
        ),
    }
