"""The `sandbox` sub-command as a user types it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from connector.cli import main


def test_help_lists_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["sandbox", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for option in ("--port", "--host", "--helpdesk", "--rate-limit"):
        assert option in out


def test_a_non_loopback_host_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sandbox", "--host", "0.0.0.0", "--port", "0"]) == 2
    assert "not a loopback address" in capsys.readouterr().err


def test_a_bad_rate_limit_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sandbox", "--rate-limit", "0", "--port", "0"]) == 2
    assert "--rate-limit" in capsys.readouterr().err


@pytest.mark.parametrize("fresh", [False, True])
def test_the_banner_says_where_it_is_with_which_credentials(fresh: bool) -> None:
    """The real command: its banner names each API, its public credentials, the control API
    and what to export to run the connector against it; then the APIs answer."""
    argv = [sys.executable, "-m", "connector", "sandbox", "--port", "0"]
    with subprocess.Popen(
        [*argv, *(["--fresh"] if fresh else [])], stdout=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            banner = [process.stdout.readline() for _ in range(11)]
        finally:
            process.terminate()
            process.wait(timeout=10)
    text = "".join(banner)
    assert ("a fresh account" in banner[0]) is fresh
    assert "email agent@example.com, API token sandbox-zendesk-token" in text
    assert "API key sandbox-freshdesk-key" in text
    assert "export SLA_CONNECTOR_ZENDESK_API_TOKEN=sandbox-zendesk-token" in text
    assert ("sla-connector init" in text) is fresh
    assert "/_sandbox/" in text
