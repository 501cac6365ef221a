"""The operator commands as an admin types them, against the sandbox served on loopback.

Each test gets its own sandbox, a configuration file in its temporary folder and the sandbox's
credentials in the environment, as systemd or an admin's shell would give them.
"""

from __future__ import annotations

import errno
import json
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from connector.cli import SERVICE_COMMANDS as COMMANDS
from connector.cli import main
from connector.sandbox import Sandbox, SandboxCredentials, SandboxServer, generate
from connector.state import State
from tests.conftest import MAPPINGS, forget_admin_settings, logging_restored

CREDENTIALS = SandboxCredentials()
SECRETS = {
    "zendesk": ("SLA_CONNECTOR_ZENDESK_API_TOKEN", "zendesk_api_token"),
    "freshdesk": ("SLA_CONNECTOR_FRESHDESK_API_KEY", "freshdesk_api_key"),
}
SUMMARY = re.compile(
    r"^(?P<tickets>\d+) tickets, (?P<written>\d+) written \((?P<notes>\d+) notes\), "
    r"(?P<unmapped>\d+) unmapped, (?P<failed>\d+) failed"
)
BACKFILL = re.compile(
    r"^(?P<tickets>\d+) tickets, (?P<written>\d+) (?:would be )?written, "
    r"(?P<unmapped>\d+) unmapped, (?P<failed>\d+) failed(?P<early> \(stopped early.*\))?$",
    re.MULTILINE,
)


@dataclass
class Desk:
    """One sandbox helpdesk, and the configuration an admin would write for it."""

    helpdesk: str
    sandbox: Sandbox
    server: SandboxServer
    config: Path
    state_file: Path
    capsys: pytest.CaptureFixture[str]

    def run(self, *argv: str) -> tuple[int, str, str]:
        """`sla-connector ARGV --config FILE`: exit status, stdout, stderr."""
        status = main([*argv, "--config", str(self.config)])
        out, err = self.capsys.readouterr()
        return status, out, err

    def writes(self) -> int:
        """Every PUT and POST the helpdesk has answered so far."""
        counters = self.sandbox.counters
        return counters.total(helpdesk=self.helpdesk, method="PUT") + counters.total(
            helpdesk=self.helpdesk, method="POST"
        )

    def write_config(self, **top: str) -> None:
        """The configuration file, with `top` keys added or replaced."""
        url = self.server.zendesk_url if self.helpdesk == "zendesk" else self.server.freshdesk_url
        values = {
            "helpdesk": self.helpdesk,
            "mappings": str(MAPPINGS),
            "helpdesk_mapping": str(MAPPINGS / "helpdesks" / f"{self.helpdesk}.example.yaml"),
            "state_dir": str(self.state_file.parent),
            "start": "2020-01-01T00:00:00Z",
            **top,
        }
        lines = [f"{key} = {json.dumps(value)}" for key, value in values.items()]
        lines += ["[log]", 'level = "warning"', f"[{self.helpdesk}]", f"url = {json.dumps(url)}"]
        if self.helpdesk == "zendesk":
            lines.append(f"email = {json.dumps(CREDENTIALS.zendesk_email)}")
        self.config.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Only the sandbox's secrets; logging put back as it was after each command."""
    forget_admin_settings(monkeypatch)
    monkeypatch.setenv("SLA_CONNECTOR_ZENDESK_API_TOKEN", CREDENTIALS.zendesk_api_token)
    monkeypatch.setenv("SLA_CONNECTOR_FRESHDESK_API_KEY", CREDENTIALS.freshdesk_api_key)
    with logging_restored():
        yield


@pytest.fixture(params=["zendesk", "freshdesk"])
def helpdesk(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def desk(helpdesk: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Desk]:
    # The export's own 10 a minute would make a test wait a real minute for its third pass.
    sandbox = Sandbox.seeded(incremental_export_limit=None)
    server = sandbox.serve("127.0.0.1", 0).start()
    try:
        desk = Desk(
            helpdesk,
            sandbox,
            server,
            tmp_path / "config.toml",
            tmp_path / "state" / "state.sqlite3",
            capsys,
        )
        desk.write_config()
        yield desk
    finally:
        server.close()


def dump(path: Path) -> list[str]:
    """Every schema item and row of a SQLite database, as SQL."""
    db = sqlite3.connect(path)
    try:
        return list(db.iterdump())
    finally:
        db.close()


def sla_tagged(desk: Desk) -> set[int]:
    """The tickets that show something sla-connector wrote (every write adds an sla_ tag)."""
    tickets = desk.sandbox.freshdesk.tickets if desk.helpdesk == "freshdesk" else {}
    with desk.sandbox.lock:
        return {n for n, t in tickets.items() if any(tag.startswith("sla_") for tag in t.tags)}


# --- check ----------------------------------------------------------------------------------


@pytest.mark.parametrize("helpdesk", ["zendesk", "freshdesk"])
def test_check_passes_with_the_example_mappings(desk: Desk) -> None:
    status, out, err = desk.run("check")
    lines = out.splitlines()
    assert (status, err) == (0, "")
    assert len(lines) == 6
    assert all(line.startswith("ok    ") for line in lines), out
    assert f"signed in to {desk.server.root}/{desk.helpdesk}" in out
    budgets = lines[-1]
    if desk.helpdesk == "zendesk":
        assert budgets.startswith("ok    budgets: at most 50% of Update Ticket's budget")
    else:
        assert "no plan is set ([freshdesk] plan)" in budgets
    assert desk.writes() == 0


@pytest.mark.parametrize("helpdesk", ["freshdesk"])
def test_check_shows_the_freshdesk_plans_sub_limits_and_the_share(desk: Desk) -> None:
    with desk.config.open("a", encoding="utf-8") as config:
        config.write('plan = "pro"\nbudget_share = 0.6\n')  # in [freshdesk], the last table
    status, out, _ = desk.run("check")
    assert status == 0
    assert out.splitlines()[-1] == (
        "ok    budgets: plan pro: tickets-list 100/min, tickets-update 160/min, of which the "
        "connector spends at most 60% ([freshdesk] budget_share)"
    )


@pytest.mark.parametrize("helpdesk", ["zendesk"])
def test_check_names_a_mapped_field_the_account_lacks(desk: Desk, tmp_path: Path) -> None:
    example = MAPPINGS / "helpdesks" / "zendesk.example.yaml"
    text = example.read_text(encoding="utf-8")
    assert "ticket_field: 9100001\n" in text
    mapping = tmp_path / "zendesk.yaml"
    mapping.write_text(text.replace("ticket_field: 9100001\n", "ticket_field: 9199999\n"))
    desk.write_config(helpdesk_mapping=str(mapping))

    status, out, _ = desk.run("check")

    assert status == 2
    assert "FAIL  mapped fields missing from the account" in out
    [line] = [line for line in out.splitlines() if "9199999" in line]
    assert line.strip() == f"{mapping}: facts.severity: no ticket field 9199999 in the account"


def test_check_with_a_wrong_credential_fails(desk: Desk, monkeypatch: pytest.MonkeyPatch) -> None:
    variable, _ = SECRETS[desk.helpdesk]
    monkeypatch.setenv(variable, "not-the-sandbox-credential")
    status, out, _ = desk.run("check")
    assert status == 1
    assert out.splitlines()[-1].startswith(f"FAIL  credentials refused by {desk.server.root}")
    assert "not-the-sandbox-credential" not in out


def test_a_missing_secret_says_where_to_put_it(desk: Desk, monkeypatch: pytest.MonkeyPatch) -> None:
    variable, credential = SECRETS[desk.helpdesk]
    monkeypatch.delenv(variable)

    status, out, _ = desk.run("check")
    assert status == 2
    assert "FAIL  credentials" in out
    assert variable in out
    assert f"credential {credential}" in out

    status, out, err = desk.run("sync", "--once")
    assert (status, out) == (2, "")
    [line] = err.splitlines()
    assert line.startswith(f"sla-connector: error: {desk.config}: {credential}: secret not set")
    assert variable in line
    assert f"credential {credential}" in line
    assert desk.writes() == 0


# --- sync --once ----------------------------------------------------------------------------


def test_sync_once_writes_and_a_second_pass_writes_nothing(desk: Desk) -> None:
    status, out, _ = desk.run("sync", "--once")
    first = SUMMARY.match(out)
    assert status == 0
    assert first is not None, out
    assert int(first["written"]) > 0
    assert int(first["notes"]) > 0
    assert int(first["failed"]) == 0
    writes = desk.writes()
    assert writes > 0

    status, out, _ = desk.run("sync", "--once")
    second = SUMMARY.match(out)
    assert status == 0
    assert second is not None, out
    assert re.findall(r"(\d+) written", out) == ["0"] * len(re.findall(r"written", out))
    assert desk.writes() == writes

    status, out, _ = desk.run("explain", "1001")
    assert status == 0
    assert "Would write: nothing, the ticket already shows this." in out
    assert re.search(r"^State: last note posted [0-9a-f]+; next re-decision ", out, re.M)


# --- backfill -------------------------------------------------------------------------------


def test_backfill_dry_run_prints_each_change_and_changes_nothing(desk: Desk) -> None:
    State(desk.state_file).close()
    before = dump(desk.state_file)

    status, out, _ = desk.run("backfill", "--since", "2020-01-01", "--dry-run")

    assert status == 0
    assert desk.writes() == 0
    assert dump(desk.state_file) == before
    assert "ticket 1001:\n  " in out  # a photoprism ticket, with its changes indented below
    assert re.search(r"^  note: SLA PhotoPrism", out, re.MULTILINE)
    assert re.search(r"^  tags \+: .*sla_photoprism", out, re.MULTILINE)
    [summary] = BACKFILL.finditer(out)
    assert "would be written" in summary[0]
    assert summary["early"] is None
    planned = int(summary["written"])
    assert planned > 0

    status, out, _ = desk.run("backfill", "--since", "2020-01-01")
    [summary] = BACKFILL.finditer(out)
    assert status == 0
    assert int(summary["written"]) == planned
    assert summary["early"] is None
    assert "ticket 1001:" not in out  # a real run names only the tickets it skips
    writes = desk.writes()
    assert writes > 0

    status, out, _ = desk.run("backfill", "--since", "2020-01-01")
    assert status == 0
    assert out == "backfill 2020-01-01..now already done (--restart)\n"
    assert desk.writes() == writes


@pytest.mark.parametrize("helpdesk", ["freshdesk"])  # pages of 100: a limit can stop between
def test_backfill_limit_stops_early_and_a_rerun_carries_on(desk: Desk) -> None:
    desk.sandbox.seed(
        generate(74, seed=5, anchor=desk.sandbox.now()), customers=(), helpdesks=("freshdesk",)
    )
    everything = set(desk.sandbox.freshdesk.tickets)

    status, out, _ = desk.run("backfill", "--since", "2020-01-01", "--limit", "5")
    [summary] = BACKFILL.finditer(out)
    assert status == 0
    assert summary["early"] is not None
    assert 5 <= int(summary["tickets"]) < len(everything)
    done_first = sla_tagged(desk)
    assert 0 < len(done_first) < len(everything)

    # The writes come back in the poll (their updated_at moves), so a rerun sees them again:
    # each rerun carries on past them, and the range is done after a few.
    seen = int(summary["tickets"])
    for _ in range(6):
        status, out, _ = desk.run("backfill", "--since", "2020-01-01", "--limit", "5")
        assert status == 0
        if "already done" in out:
            break
        [summary] = BACKFILL.finditer(out)
        seen += int(summary["tickets"])
    else:
        pytest.fail("the backfill never finished")
    assert sla_tagged(desk) == everything
    assert seen >= len(everything)


# --- explain --------------------------------------------------------------------------------


def test_explain_shows_facts_decision_timeline_and_the_write(desk: Desk) -> None:
    status, out, err = desk.run("explain", "1001")

    assert (status, err) == (0, "")
    assert out.startswith(f"Ticket 1001 in {desk.helpdesk}, updated ")
    assert f"Facts (read with {desk.helpdesk} mapping):\n" in out
    assert "  contract: photoprism\n" in out
    assert "Decision:\nTicket 1001: photoprism, plan gold, severity sev1\n" in out
    assert "How each due instant was reached:\n  first_response: 8 business hours" in out
    # Business hours: the open periods of the Berlin office, adding up to the duration.
    opens = re.findall(r"^    open .* CE[S]?T to \d\d:\d\d  \+\d+h\d\d = (\d+)h\d\d$", out, re.M)
    assert opens, out
    assert "8" in opens
    assert "\nWould write:\n" in out
    assert re.search(r"^  note: SLA PhotoPrism Business Support, plan gold", out, re.MULTILINE)
    assert desk.writes() == 0


@pytest.mark.parametrize("ticket", ["999999", "not-a-number"])
def test_explain_of_an_unknown_ticket_is_a_one_line_error(desk: Desk, ticket: str) -> None:
    status, out, err = desk.run("explain", ticket)
    assert (status, out) == (2, "")
    assert err == f"sla-connector: error: ticket {ticket}: not found in {desk.helpdesk}\n"


@pytest.mark.reliability
@pytest.mark.parametrize(
    "command",
    [("sync", "--once"), ("backfill", "--since", "2020-01-01"), ("explain", "1001")],
    ids=["sync", "backfill", "explain"],
)
@pytest.mark.parametrize(
    "failure",
    [
        sqlite3.OperationalError("database or disk is full"),
        sqlite3.OperationalError("database is locked"),
        OSError(errno.EROFS, "Read-only file system"),
    ],
    ids=["full", "locked", "read-only"],
)
def test_the_state_failing_under_a_command_is_one_line_and_exit_1(
    desk: Desk, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...], failure: Exception
) -> None:
    """Issue 16, item 6: what the daemon survives ends a one-shot command with one line.

    Exit 1 (it may pass: run it again), not the traceback of SQLite's or the OS's exception.
    """

    def fail(*_: object) -> None:
        raise failure

    # Each command reads the ticket's record before anything else of the state.
    monkeypatch.setattr(State, "record", fail)
    status, _, err = desk.run(*command)
    assert status == 1
    said = f"state {desk.state_file}: {failure}; run the command again once the cause is gone"
    assert err == f"sla-connector: error: {said}\n"
    assert desk.writes() == 0


# --- demo and --help ------------------------------------------------------------------------


def test_demo_shows_a_second_pass_that_writes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["demo", "--helpdesk", "both"])
    out, err = capsys.readouterr()
    assert status == 0, out + err  # the passes' summary lines say what failed
    assert "\n== zendesk, a sandbox on loopback (http://127.0.0.1:" in out
    assert "\n== freshdesk, a sandbox on loopback (http://127.0.0.1:" in out
    second = re.findall(r"^second pass: \d+ tickets came back .*, (.+)$", out, re.M)
    assert second == ["nothing to write", "nothing to write"]


@pytest.mark.parametrize("command", COMMANDS)
def test_no_command_takes_a_secret_on_the_command_line(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    out, _ = capsys.readouterr()
    assert exited.value.code == 0
    options = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", out))
    assert "--help" in options
    secretive = re.compile(r"token|key|secret|password|passwd|credential|auth")
    assert {option for option in options if secretive.search(option)} == set()


@pytest.mark.parametrize("notes", ["open", "all", "none"])
def test_backfill_posts_notes_where_agents_read_them(desk: Desk, notes: str) -> None:
    """`--notes open` (the default) leaves solved and closed tickets without a note."""
    argv = ["backfill", "--since", "2020-01-01"] + ([] if notes == "open" else ["--notes", notes])
    status, _, _ = desk.run(*argv)
    assert status == 0
    noted, finished = set(), set()
    if desk.helpdesk == "zendesk":
        for ticket in desk.sandbox.zendesk.tickets.values():
            if any(not c.public for c in ticket.thread()):
                noted.add(ticket.id)
            if ticket.status in ("solved", "closed"):
                finished.add(ticket.id)
    else:
        for ticket in desk.sandbox.freshdesk.tickets.values():
            if any(n.private for n in ticket.thread()):
                noted.add(ticket.id)
            if ticket.status in (4, 5):
                finished.add(ticket.id)
    assert finished  # the bundled tickets have some
    unmapped = {n for n, t in desk.sandbox.freshdesk.tickets.items() if "sla_unmapped" in t.tags}
    tagged = sla_tagged(desk) - unmapped  # an unmapped ticket gets its tag, and no note
    if notes == "all":
        assert finished & tagged <= noted
    elif notes == "open":
        assert not noted & finished
        assert tagged - finished <= noted
    else:
        assert not noted


def test_backfill_batch_sends_zendesk_writes_as_jobs(desk: Desk) -> None:
    status, out, _ = desk.run("backfill", "--since", "2020-01-01", "--batch")
    [summary] = BACKFILL.finditer(out)
    assert status == 0
    assert int(summary["written"]) > 20
    counters = desk.sandbox.counters
    jobs = counters.total(helpdesk="zendesk", route="/api/v2/tickets/update_many.json")
    singles = counters.total(helpdesk=desk.helpdesk, method="PUT") - jobs
    if desk.helpdesk == "zendesk":
        assert (jobs, singles) == (1, 0)
    else:  # Freshdesk has no batch of different changes: one by one, as without --batch
        assert (jobs, singles) == (0, int(summary["written"]))
