"""Log output as journald or a terminal receives it, and secrets that never reach it."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest

from connector.logs import MASK, configure, get_logger, redact, register_secret
from tests.conftest import logging_restored

CANARY = "canary-7f3a9c1e-d00d-4b2f-secret"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Each test configures logging afresh; put structlog and the root logger back after."""
    with logging_restored():
        register_secret(CANARY)
        yield


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_timestamp_level_event_and_bound_keys() -> None:
    out = io.StringIO()
    configure(format="json", stream=out)
    get_logger("connector.sync").bind(helpdesk="zendesk").info("page synced", tickets=3)

    [line] = json_lines(out)
    assert list(line)[:3] == ["timestamp", "level", "event"]
    assert line["level"] == "info"
    assert line["event"] == "page synced"
    assert line["logger"] == "connector.sync"
    assert line["helpdesk"] == "zendesk"
    assert line["tickets"] == 3
    assert line["timestamp"].endswith("Z")
    stamp = datetime.fromisoformat(line["timestamp"])
    assert stamp.utcoffset() is not None
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 3600


def test_values_json_cannot_encode_are_written_as_text() -> None:
    out = io.StringIO()
    configure(format="json", stream=out)
    when = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    get_logger().info("woke", next_change_at=when, ids={7})
    [line] = json_lines(out)
    assert line["next_change_at"] == "2026-03-02T09:00:00+00:00"
    assert line["ids"] == [7]


def test_auto_renders_json_off_a_terminal_and_readable_lines_on_one() -> None:
    piped, terminal = io.StringIO(), Terminal()
    configure(stream=piped)
    get_logger().info("first poll done", tickets=12)
    configure(stream=terminal)
    get_logger().info("first poll done", tickets=12)

    assert json_lines(piped)[0]["event"] == "first poll done"
    text = terminal.getvalue()
    assert "first poll done" in text
    assert "tickets" in text
    assert "12" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_console_can_be_forced_and_has_no_colours_off_a_terminal() -> None:
    out = io.StringIO()
    configure(format="console", stream=out)
    get_logger().warning("slow page", seconds=4)
    text = out.getvalue()
    assert "slow page" in text
    assert "\x1b[" not in text


def test_level_filters_lower_events() -> None:
    out = io.StringIO()
    configure(format="json", level="WARNING", stream=out)
    log = get_logger()
    log.debug("noise")
    log.info("noise")
    log.warning("kept")
    log.error("kept too")
    assert [line["event"] for line in json_lines(out)] == ["kept", "kept too"]


def test_an_unknown_level_or_format_is_refused() -> None:
    with pytest.raises(ValueError, match="loud"):
        configure(level="loud", stream=io.StringIO())
    with pytest.raises(ValueError, match="xml"):
        configure(format="xml", stream=io.StringIO())  # type: ignore[arg-type]


def test_configuring_twice_writes_each_event_once_and_old_loggers_follow() -> None:
    first, second = io.StringIO(), io.StringIO()
    log = get_logger("connector.service.daemon")  # made before the (re)configuration, as at import
    configure(format="json", stream=first)
    configure(format="json", level="debug", stream=second)
    log.debug("reloaded")
    logging.getLogger("some.library").warning("library warning")

    assert first.getvalue() == ""
    assert [line["event"] for line in json_lines(second)] == ["reloaded", "library warning"]


def test_library_records_come_out_in_the_same_format_warnings_only() -> None:
    out = io.StringIO()
    configure(format="json", level="debug", stream=out)
    library = logging.getLogger("httpx")
    library.setLevel(logging.DEBUG)
    try:
        library.info("HTTP Request: GET https://example.zendesk.com/ 200")
        library.warning("retrying with token=%s", CANARY)
    finally:
        library.setLevel(logging.NOTSET)

    [line] = json_lines(out)
    assert line["logger"] == "httpx"
    assert line["level"] == "warning"
    assert line["event"] == f"retrying with token={MASK}"


# --- secrets -----------------------------------------------------------------------------------


def test_a_registered_secret_never_reaches_the_output(capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    configure(format="json", stream=out)
    log = get_logger()

    class Credentials:
        def __repr__(self) -> str:
            return f"Credentials(key={CANARY!r})"

    log.info("as a value", key_material=CANARY)
    log.info(f"in the event: {CANARY}")
    log.info("nested", request={"headers": [("X-Note", f"prefix {CANARY} suffix")]}, n=[CANARY])
    log.info("in a repr", creds=Credentials())
    log.info("as bytes", body=CANARY.encode())
    try:
        raise RuntimeError(f"refused with {CANARY}")
    except RuntimeError:
        log.exception("in an exception message")
    try:
        raise ValueError("outer") from KeyError(CANARY)
    except ValueError:
        log.error("in a chained cause", exc_info=True)

    text = out.getvalue()
    assert CANARY not in text
    assert CANARY not in capsys.readouterr().err
    lines = json_lines(out)
    assert len(lines) == 7
    assert lines[0]["key_material"] == MASK
    assert lines[1]["event"] == f"in the event: {MASK}"
    assert lines[2]["request"] == {"headers": [["X-Note", f"prefix {MASK} suffix"]]}
    assert "Traceback" in lines[5]["exception"]
    assert f"RuntimeError: refused with {MASK}" in lines[5]["exception"]


def test_a_secret_in_a_traceback_is_masked_on_a_terminal_too() -> None:
    out = Terminal()
    configure(stream=out)
    try:
        raise RuntimeError(f"refused with {CANARY}")
    except RuntimeError:
        get_logger().exception("call failed", header=f"Authorization: Bearer {CANARY}")
    text = out.getvalue()
    assert "RuntimeError" in text
    assert CANARY not in text
    assert MASK in text


def test_values_under_credential_keys_are_masked_whatever_they_are() -> None:
    out = io.StringIO()
    configure(format="json", stream=out)
    get_logger().info(
        "auth",
        password="hunter2-not-registered",
        headers={"Authorization": "Basic dXNlcjpwYXNz", "Accept": "application/json"},
        refresh_token=12345,
        access_token=None,
        token_count=2,
    )
    [line] = json_lines(out)
    assert line["password"] == MASK
    assert line["headers"] == {"Authorization": MASK, "Accept": "application/json"}
    assert line["refresh_token"] == MASK
    assert line["access_token"] is None
    assert line["token_count"] == 2


@pytest.mark.parametrize("prefix", ["", "a", "ab", "agent@example.com/token:", "x:"])
@pytest.mark.parametrize("suffix", ["", ":X", "!!"])
def test_basic_auth_encoding_a_secret_is_masked_at_any_offset(prefix: str, suffix: str) -> None:
    encoded = base64.b64encode(f"{prefix}{CANARY}{suffix}".encode()).decode()
    assert redact(f"sent Authorization {encoded} once") == f"sent Authorization {MASK} once"


def test_url_encoded_secret_is_masked() -> None:
    secret = "k3y/with+odd=chars"
    register_secret(secret)
    assert redact(f"GET /x?key={quote(secret, safe='')}&page=2") == f"GET /x?key={MASK}&page=2"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer 0a1b2c3d4e5f", f"Authorization: {MASK}"),
        ('{"authorization": "Basic dXNlcjpwYXNz"}', f'{{"authorization": "{MASK}"}}'),
        ("retry with bearer 9f8e7d6c5b4a3f2e", f"retry with bearer {MASK}"),
        ("GET /oauth?access_token=abc&x=1", f"GET /oauth?access_token={MASK}&x=1"),
        ("api_key: 1234abcd", f"api_key: {MASK}"),
        ('"token": null', '"token": null'),
        ("token refreshed", "token refreshed"),
        ("Basic auth configured", "Basic auth configured"),
        ("authorization failed for agent 12", "authorization failed for agent 12"),
    ],
)
def test_credential_shapes_are_masked_without_being_registered(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_short_or_blank_secrets_are_ignored_and_whitespace_is_trimmed() -> None:
    register_secret("")
    register_secret("abc")
    register_secret("  file-secret-from-credentials\n")
    assert redact("abc abc") == "abc abc"
    assert redact("x file-secret-from-credentials y") == f"x {MASK} y"


def test_a_long_base64_run_holding_a_secret_is_masked_as_one() -> None:
    blob = base64.b64encode(f"{CANARY}-".encode() * 20_000).decode()
    assert redact(f"body={blob}; done") == f"body={MASK}; done"
