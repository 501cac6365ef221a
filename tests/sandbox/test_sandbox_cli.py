"""The `sandbox` sub-command as a user types it."""

from __future__ import annotations

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
