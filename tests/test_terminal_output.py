"""Text from a helpdesk, a ticket file or a mapping reaches the operator's terminal printable.

A ticket field holding `ESC ] 0 ; title BEL` retitles the operator's terminal, `ESC [ 2 J`
clears it, a bare CR or a newline rewrites or forges a line, U+202E reverses what follows and
`0x9b` is an 8-bit CSI. Every command that prints helpdesk content is run here against the
sandbox with such a ticket: the output keeps its own layout (newlines) and nothing else that
is not printable, and the hostile value is still there, escaped, for the operator to read.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from connector import logs
from connector.cli import main
from connector.sandbox import Sandbox, SandboxCredentials, SandboxServer
from connector.sandbox.seed import SeedTicket
from tests.conftest import MAPPINGS, forget_admin_settings, logging_restored

pytestmark = pytest.mark.reliability

CREDENTIALS = SandboxCredentials()
# Everything a terminal acts on, in one product name.
HOSTILE = "pdm\x1b]0;pwned\x07\x1b[2J\rspoof\nforged: line\u202eevil\x9b31m"
# The same value as the operator reads it: each character that is not printable escaped.
ESCAPED = r"pdm\x1b]0;pwned\x07\x1b[2J\rspoof\nforged: line\u202eevil\x9b31m"
# A ticket mapped with the hostile product, and one unmapped by its hostile severity.
PRODUCT_TICKET, SEVERITY_TICKET = 7001, 7002


def unprintable(text: str) -> list[str]:
    """The characters of `text` a terminal would act on, layout newlines excepted."""
    return [c for c in text if not c.isprintable() and c != "\n"]


def forged(text: str) -> list[str]:
    """Lines that start with what the hostile value put after its newline."""
    return [line for line in text.splitlines() if line.startswith("forged")]


def assert_printable(*texts: str) -> None:
    for text in texts:
        assert unprintable(text) == [], text
        assert forged(text) == [], text


def hostile_tickets(sandbox: Sandbox) -> list[SeedTicket]:
    # Whole seconds, as Zendesk stamps them (its safe update compares the stamp as text).
    created = sandbox.now().replace(microsecond=0) - timedelta(hours=2)
    return [
        SeedTicket(PRODUCT_TICKET, HOSTILE, created, 101, severity="sev1", product=HOSTILE),
        SeedTicket(SEVERITY_TICKET, HOSTILE, created, 101, severity=HOSTILE, category=HOSTILE),
    ]


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    forget_admin_settings(monkeypatch)
    monkeypatch.setenv("SLA_CONNECTOR_ZENDESK_API_TOKEN", CREDENTIALS.zendesk_api_token)
    monkeypatch.setenv("SLA_CONNECTOR_FRESHDESK_API_KEY", CREDENTIALS.freshdesk_api_key)
    with logging_restored():
        yield


@pytest.fixture(params=["zendesk", "freshdesk"])
def helpdesk(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def served() -> Iterator[tuple[Sandbox, SandboxServer]]:
    sandbox = Sandbox.seeded(incremental_export_limit=None)
    sandbox.seed(hostile_tickets(sandbox), customers=())
    server = sandbox.serve("127.0.0.1", 0).start()
    try:
        yield sandbox, server
    finally:
        server.close()


def write_config(path: Path, helpdesk: str, server: SandboxServer) -> Path:
    url = server.zendesk_url if helpdesk == "zendesk" else server.freshdesk_url
    values = {
        "helpdesk": helpdesk,
        "mappings": str(MAPPINGS),
        "helpdesk_mapping": str(MAPPINGS / "helpdesks" / f"{helpdesk}.example.yaml"),
        "state_dir": str(path.parent / "state"),
        "start": "2020-01-01T00:00:00Z",
    }
    lines = [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    lines += ["[log]", 'level = "warning"', f"[{helpdesk}]", f"url = {json.dumps(url)}"]
    if helpdesk == "zendesk":
        lines.append(f"email = {json.dumps(CREDENTIALS.zendesk_email)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def config(helpdesk: str, served: tuple[Sandbox, SandboxServer], tmp_path: Path) -> Path:
    return write_config(tmp_path / "config.toml", helpdesk, served[1])


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


# --- explain, backfill --dry-run, check, demo ------------------------------------------------


def test_explain_prints_a_hostile_ticket_field_escaped(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(capsys, "explain", str(PRODUCT_TICKET), "--config", str(config))

    assert (status, err) == (0, "")
    assert_printable(out)
    assert f"\n  product: {ESCAPED}\n" in out
    # The layout is intact around it.
    assert "\nDecision:\nTicket 7001: photoprism, plan gold, severity sev1\n" in out
    assert "\nWould write:\n" in out


def test_explain_of_an_unmapped_ticket_prints_the_hostile_value_escaped(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(capsys, "explain", str(SEVERITY_TICKET), "--config", str(config))

    assert (status, err) == (0, "")
    assert_printable(out)
    assert "\nUnmapped: " in out
    assert ESCAPED.removeprefix("pdm") in out


def test_backfill_dry_run_prints_each_change_printable(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(
        capsys, "backfill", "--since", "2020-01-01", "--dry-run", "--config", str(config)
    )

    assert status == 0, err
    assert_printable(out, err)
    assert f"\nticket {SEVERITY_TICKET}: " in out
    assert ESCAPED.removeprefix("pdm") in out


def test_an_error_quoting_the_command_line_is_one_printable_line(
    helpdesk: str, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(capsys, "explain", HOSTILE, "--config", str(config))

    assert (status, out) == (2, "")
    assert err == f"sla-connector: error: ticket {ESCAPED}: not found in {helpdesk}\n"


def test_check_prints_a_hostile_configuration_path_escaped(
    helpdesk: str,
    served: tuple[Sandbox, SandboxServer],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path / "odd\x1b[2J\u202e.toml", helpdesk, served[1])

    status, out, err = run(capsys, "check", "--config", str(config))

    assert (status, err) == (0, "")
    assert_printable(out)
    assert "odd\\x1b[2J\\u202e.toml" in out


def test_demo_prints_what_it_wrote_printable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded = Sandbox.seeded

    def with_hostile_tickets(**options: object) -> Sandbox:
        sandbox = seeded(**options)  # type: ignore[arg-type]
        sandbox.seed(hostile_tickets(sandbox), customers=())
        return sandbox

    monkeypatch.setattr(Sandbox, "seeded", with_hostile_tickets)
    status, out, err = run(capsys, "demo", "--helpdesk", "zendesk")

    assert status == 0, out
    assert_printable(out, err)
    assert f"\nticket {SEVERITY_TICKET}  [unmapped: " in out
    assert ESCAPED.removeprefix("pdm") in out


# --- sla compute and sla simulate ------------------------------------------------------------


def test_simulate_error_and_warning_lines_are_printable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = {
        "id": f"T{HOSTILE}",
        "created_at": "2026-03-02T08:15:00Z",
        "contract": "photoprism",
        "plan": HOSTILE,
        "severity": "sev1",
    }
    bad = {"id": f"B{HOSTILE}", "created_at": "yesterday", "contract": "photoprism"}
    tickets = tmp_path / "tickets.jsonl"
    tickets.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n", encoding="utf-8")

    status, out, err = run(
        capsys, "sla", "simulate", str(tickets), "--now", "2026-03-02T09:00:00Z",
        "--mappings", str(MAPPINGS),
    )  # fmt: skip

    assert status == 2
    assert_printable(out, err)
    warning, error = sorted(err.splitlines(), key=lambda line: "warning" not in line)
    assert warning.startswith(f"sla-connector: warning: ticket T{ESCAPED}: unknown plan")
    assert error.startswith(f"sla-connector: error: {tickets}:2 (ticket B{ESCAPED}): ")
    # The decision line is still the same JSON, its strings the same text.
    [decision] = out.splitlines()
    assert json.loads(decision)["ticket"] == f"T{HOSTILE}"


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_compute_prints_a_hostile_flag_printable(
    as_json: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(
        capsys, "sla", "compute", "--contract", "photoprism", "--plan", "gold",
        "--severity", HOSTILE, "--severity-override", "sev1",
        "--created", "2026-03-02T08:15:00Z", "--now", "2026-03-02T09:00:00Z",
        "--mappings", str(MAPPINGS), *(["--json"] if as_json else []),
    )  # fmt: skip

    assert (status, err) == (0, "")
    assert_printable(out)
    if as_json:  # the same JSON value: only how its strings are spelled changed
        assert json.loads(out)["severity_submitted"] == HOSTILE
    else:
        assert f"severity sev1 (submitted {ESCAPED})\n" in out


# --- logs on a terminal ----------------------------------------------------------------------


def test_console_log_lines_are_printable() -> None:
    stream = io.StringIO()
    logs.configure(format="console", level="info", stream=stream)
    logs.get_logger("sla-connector").warning(
        f"ticket_unmapped {HOSTILE}", reason=HOSTILE, product="x\x1b[2J", **{HOSTILE: 1}
    )

    text = stream.getvalue()
    assert text.endswith("\n")
    assert_printable(text)
    assert len(text.splitlines()) == 1
    # Escaped once, whether the renderer quotes the value or not.
    assert f"reason='{ESCAPED}'" in text
    assert "product='x\\x1b[2J'" in text


def test_json_log_lines_are_printable() -> None:
    stream = io.StringIO()
    logs.configure(format="json", level="info", stream=stream)
    logs.get_logger("sla-connector").warning("ticket_unmapped", reason=HOSTILE)

    [line] = stream.getvalue().splitlines()
    assert_printable(line)
    assert json.loads(line)["reason"] == HOSTILE
