"""Opening the helpdesk: saved OAuth tokens, unreadable ones, and refresh tokens lost to a crash.

Zendesk deletes the old token pair when it answers a refresh. If the answer is lost (the
connector killed, or the connection cut after the server acted), the saved refresh token is
dead: the error must say why and what to do, and a newly authorized refresh token must take
over from the saved chain.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connector.app import OAUTH_TOKEN, _saved_tokens, open_helpdesk
from connector.cli.demo import demo_settings
from connector.config import Settings
from connector.errors import AuthError
from connector.sandbox import ZENDESK_URL, ManualClock, Sandbox
from connector.state import State

START = datetime(2026, 3, 6, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "row",
    ['{"access_token": 5}', "[1, 2]", "not json at all", '{"refresh_token": null}'],
    ids=["wrong type", "not an object", "not JSON", "missing fields"],
)
def test_unreadable_saved_tokens_fall_back_to_the_configured_refresh_token(
    tmp_path: Path, row: str
) -> None:
    state = State(tmp_path / "state.sqlite3")
    try:
        state.db.execute(
            "INSERT INTO tokens (tenant, name, value, changed_at) VALUES ('default', ?, ?, ?)",
            (OAUTH_TOKEN, row, int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())),
        )
        assert _saved_tokens(state) == (None, None)  # no traceback: the configured token is used
    finally:
        state.close()


def test_saved_tokens_are_read_back(tmp_path: Path) -> None:
    state = State(tmp_path / "state.sqlite3")
    try:
        saved = {
            "access_token": "a1",
            "refresh_token": "r1",
            "expires_at": "2026-01-01T00:00:00Z",
        }
        state.set_token(OAUTH_TOKEN, saved, datetime(2026, 1, 1, tzinfo=UTC))
        tokens, origin = _saved_tokens(state)
        assert tokens is not None
        assert origin is None  # saved before origins were kept
        assert tokens.refresh_token is not None
        assert tokens.refresh_token.get_secret_value() == "r1"
    finally:
        state.close()


class OAuthDesk:
    """The connector opened on the sandbox's Zendesk with OAuth, as the daemon opens it."""

    def __init__(self, tmp_path: Path) -> None:
        self.clock = ManualClock(START)
        self.sandbox = Sandbox.seeded(clock=self.clock, anchor=START)
        creds = self.sandbox.credentials
        self.settings: Settings = demo_settings(
            "zendesk",
            ZENDESK_URL,
            tmp_path,
            zendesk={"url": ZENDESK_URL, "auth": "oauth", "client_id": creds.oauth_client_id},
        )
        self.client_secret = creds.oauth_client_secret
        self.state = State(self.settings.state_file)

    def authorize(self) -> str:
        """What an administrator does: a new authorization, its refresh token configured."""
        return self.sandbox.issue_oauth_tokens().refresh_token

    def call(self, refresh_token: str) -> None:
        """Open the helpdesk with this configured refresh token and read from it."""
        secrets = {
            "zendesk_oauth_client_secret": self.client_secret,
            "zendesk_oauth_refresh_token": refresh_token,
        }
        helpdesk = open_helpdesk(
            self.settings,
            self.state,
            transport=self.sandbox.zendesk_transport(),
            secrets=secrets,
            sleep=self.clock.sleep,
        )
        try:
            helpdesk.field_keys()
        finally:
            helpdesk.close()

    def refreshes(self) -> int:
        return self.sandbox.counters.total(helpdesk="zendesk", method="POST", status=200)

    def lose_the_next_refresh_answer(self) -> None:
        self.sandbox.faults.add("cut_after", helpdesk="zendesk", path="/oauth/tokens")


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[OAuthDesk]:
    desk = OAuthDesk(tmp_path)
    yield desk
    desk.state.close()


def test_a_lost_first_refresh_is_explained_and_a_new_authorization_recovers(
    desk: OAuthDesk,
) -> None:
    configured = desk.authorize()
    desk.lose_the_next_refresh_answer()
    with pytest.raises(AuthError, match="unreachable"):
        desk.call(configured)
    with pytest.raises(AuthError) as refused:
        desk.call(configured)
    message = str(refused.value)
    assert "was never answered" in message
    assert "authorize the connector again" in message
    assert configured not in message

    desk.call(desk.authorize())
    assert desk.state.token(OAUTH_TOKEN) is not None


def test_a_lost_refresh_mid_chain_and_the_new_authorization_replaces_the_saved_tokens(
    desk: OAuthDesk,
) -> None:
    configured = desk.authorize()
    desk.call(configured)  # first refresh: the rotated pair is saved
    saved = desk.state.token(OAUTH_TOKEN)
    assert saved is not None
    assert saved["refresh_token"] != configured
    desk.clock.advance(desk.sandbox.credentials.access_token_ttl + 1)  # the access token dies
    desk.lose_the_next_refresh_answer()
    with pytest.raises(AuthError, match="unreachable"):
        desk.call(configured)
    with pytest.raises(AuthError, match="was never answered"):
        desk.call(configured)  # the saved refresh token was deleted by Zendesk

    renewed = desk.authorize()
    desk.call(renewed)
    again = desk.state.token(OAUTH_TOKEN)
    assert again is not None
    assert again["refresh_token"] not in (saved["refresh_token"], renewed)
    # The new chain goes on across restarts with the same configured token.
    before = desk.refreshes()
    desk.clock.advance(desk.sandbox.credentials.access_token_ttl + 1)
    desk.call(renewed)
    assert desk.refreshes() == before + 1


def test_saved_tokens_are_kept_when_the_configured_token_is_the_one_they_descend_from(
    desk: OAuthDesk,
) -> None:
    configured = desk.authorize()
    desk.call(configured)
    desk.call(configured)  # a restart: the saved access token is still good, no refresh
    assert desk.refreshes() == 1


def test_tokens_saved_before_origins_were_kept_go_on_being_used(desk: OAuthDesk) -> None:
    configured = desk.authorize()
    desk.call(configured)
    saved = desk.state.token(OAUTH_TOKEN)
    assert saved is not None
    del saved["origin"]
    desk.state.set_token(OAUTH_TOKEN, saved, START)
    desk.clock.advance(desk.sandbox.credentials.access_token_ttl + 1)
    desk.call(configured)  # the configured token is dead; the saved chain must be used
    upgraded = desk.state.token(OAUTH_TOKEN)
    assert upgraded is not None
    assert upgraded["origin"] == hashlib.sha256(configured.encode()).hexdigest()
