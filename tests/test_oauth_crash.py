"""The real daemon killed between an OAuth refresh and its persistence.

Zendesk deletes the old token pair when it answers a refresh. Here the sandbox rotates the
pair and holds its answer back (`slow_after`); the daemon is killed -9 while it waits. The
rotated pair is lost with the process, so the saved refresh token is dead: the restarted
daemon must say so (log and systemd status: refused, when the lost refresh was sent, what to
do) without writing anything, and after the administrator authorizes again and restarts it,
end exactly as an uninterrupted run.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from connector.app import OAUTH_REFRESHING
from connector.sandbox import OffsetClock
from connector.state import State
from tests.daemon_harness import Served, served, shown, wait_for
from tests.test_daemon_process import reference, seeded

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.skipif(sys.platform != "linux", reason="signals and AF_UNIX datagrams"),
]

TOKEN_PATH = "/oauth/tokens"


def use_oauth(setup: Served, refresh_token: str) -> None:
    """Configure the daemon for OAuth with this refresh token (as an administrator would)."""
    credentials = setup.sandbox.credentials
    config = setup.daemon.config
    text = config.read_text().replace(
        f'email = "{credentials.zendesk_email}"\n',
        f'auth = "oauth"\nclient_id = "{credentials.oauth_client_id}"\n',
    )
    assert 'auth = "oauth"' in text
    config.write_text(text)
    env = setup.daemon.env
    env.pop("SLA_CONNECTOR_ZENDESK_API_TOKEN", None)
    env["SLA_CONNECTOR_ZENDESK_OAUTH_CLIENT_SECRET"] = credentials.oauth_client_secret
    env["SLA_CONNECTOR_ZENDESK_OAUTH_REFRESH_TOKEN"] = refresh_token


def test_kill_9_between_an_oauth_refresh_and_its_persistence(tmp_path: Path) -> None:
    expected, counted = reference("zendesk", tmp_path / "reference")
    clock = OffsetClock()
    sandbox = seeded(clock)
    with served(sandbox, clock, "zendesk", tmp_path / "served") as setup:
        use_oauth(setup, sandbox.issue_oauth_tokens().refresh_token)
        daemon = setup.daemon
        daemon.start()
        wait_for("40 writes", lambda: setup.writes() >= 40)  # first refresh saved, mid-sync

        # The access token dies; the refresh it triggers is applied, its answer held back.
        sandbox.faults.add("slow_after", helpdesk="zendesk", path=TOKEN_PATH, delay=30)
        issued = sandbox.zendesk.tokens_issued
        clock.advance(sandbox.credentials.access_token_ttl + 1)
        wait_for("the refresh applied", lambda: sandbox.zendesk.tokens_issued > issued)
        daemon.kill()
        writes = setup.writes()
        state = State(tmp_path / "served" / "state" / "state.sqlite3")
        try:  # the refresh is written down as in flight, its answer never saved
            assert state.token(OAUTH_REFRESHING) is not None
            # The kill landed before the sync was done: tickets left to write, or batch jobs
            # whose results were never recorded (they ran in the helpdesk all the same).
            assert writes < len(expected) or state.pending_notes()
        finally:
            state.close()

        setup.messages()  # the first life's, read: the socket's buffer is not endless
        daemon.start()
        wait_for("the refusal", lambda: daemon.tail()["sync_failed"] >= 1)
        [failure, *_] = daemon.events("sync_failed")
        assert "OAuth refresh token refused" in failure["error"]
        assert "was never answered" in failure["error"]
        assert "authorize the connector again" in failure["error"]
        assert any("OAuth refresh token refused" in m for m in setup.messages())
        assert setup.writes() == writes  # nothing written with a dead token
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0

        # The administrator authorizes again, stores the new refresh token, restarts.
        use_oauth(setup, sandbox.issue_oauth_tokens().refresh_token)
        synced = daemon.tail()["synced"]
        daemon.start()
        wait_for("a complete sync", lambda: daemon.tail()["synced"] > synced)
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0

    assert shown(sandbox, "zendesk") == expected
    state = State(tmp_path / "served" / "state" / "state.sqlite3")
    try:
        assert state.counts()["counted"] == counted
        assert state.pending_notes() == []
    finally:
        state.close()
