"""Opening the helpdesk: saved OAuth tokens that cannot be read."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from connector.app import OAUTH_TOKEN, _saved_tokens
from connector.state import State


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
            "INSERT INTO tokens (name, value, changed_at) VALUES (?, ?, ?)",
            (OAUTH_TOKEN, row, int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())),
        )
        assert _saved_tokens(state) is None  # no traceback: the configured token is used
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
        tokens = _saved_tokens(state)
        assert tokens is not None
        assert tokens.refresh_token is not None
        assert tokens.refresh_token.get_secret_value() == "r1"
    finally:
        state.close()
