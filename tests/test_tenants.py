"""Several helpdesk accounts in one configuration (`[[tenants]]`, issue 21): the settings and
secrets of each, and one real daemon serving them all on a SQLite state, each account ending as
its own single-account run would leave it."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connector.config import Settings, load_settings, secret
from connector.errors import ConfigError, InputError
from connector.state import State
from tests.conftest import forget_admin_settings
from tests.daemon_harness import wait_for
from tests.fleet_harness import accounts, reference

TWO = """
state_url = "postgresql://sla@db.example/sla"
[[tenants]]
name = "acme"
helpdesk = "zendesk"
mappings = "/etc/sla-connector/acme"
[tenants.zendesk]
url = "https://acme.zendesk.com"
email = "ops@acme.example"
update_share = 0.3

[[tenants]]
name = "globex-eu"
helpdesk = "freshdesk"
[tenants.freshdesk]
url = "https://globex.freshdesk.com"
plan = "pro"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    return [str(p) for p in caught.value.problems]


@pytest.fixture(autouse=True)
def _no_admin_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    forget_admin_settings(monkeypatch, "CREDENTIALS_DIRECTORY")


def test_each_tenant_is_an_account_of_its_own(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, TWO))
    acme, globex = settings.accounts()
    assert (acme.tenant, acme.kind, acme.helpdesk_url) == (
        "acme",
        "zendesk",
        "https://acme.zendesk.com",
    )
    assert acme.zendesk.update_share == 0.3
    assert acme.mappings == Path("/etc/sla-connector/acme")
    assert acme.mapping_file == Path("/etc/sla-connector/acme/helpdesks/zendesk.yaml")
    assert (globex.tenant, globex.kind, globex.freshdesk.plan) == ("globex-eu", "freshdesk", "pro")
    assert globex.mappings == settings.mappings  # the shared folder where it names none
    assert acme.state_url == globex.state_url == settings.state_url
    assert settings.account("globex-eu") == globex
    with pytest.raises(InputError, match=r"names 2 tenants \(acme, globex-eu\): choose one"):
        settings.account(None)
    with pytest.raises(InputError, match="--tenant nope: no such tenant"):
        settings.account("nope")
    alone = Settings(helpdesk="zendesk")
    assert alone.accounts() == [alone]
    assert alone.account(None).tenant == "default"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            TWO + '[[tenants]]\nname = "acme"\nhelpdesk = "zendesk"\n',
            "tenant 'acme' is named twice",
        ),
        ('helpdesk = "zendesk"\n' + TWO, "helpdesk: set per tenant"),
        (TWO + "[zendesk]\nurl = 'https://x.zendesk.com'\n", "zendesk belong to each tenant"),
        ('[[tenants]]\nname = "Acme Corp"\nhelpdesk = "zendesk"\n', "tenants.0.name"),
        ('[[tenants]]\nname = "zendesk"\nhelpdesk = "zendesk"\n', "keeps for itself"),
        ('[[tenants]]\nname = "a"\n', "tenants.0.helpdesk"),
        ("poll_interval = 5\n", "helpdesk: required key is missing"),
    ],
)
def test_a_wrong_tenant_table_is_one_line_naming_its_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    found = problems(write(tmp_path, text))
    assert any(expected in line for line in found), found


def test_a_secret_inside_a_tenant_table_is_refused(tmp_path: Path) -> None:
    text = TWO.replace('email = "ops@acme.example"', 'email = "x"\napi_token = "s3cr3t"')
    [line] = problems(write(tmp_path, text))
    assert "tenants.0.zendesk.api_token: secrets do not belong in the file" in line
    assert "s3cr3t" not in line


def test_secrets_are_found_by_tenant_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLA_CONNECTOR_GLOBEX_EU__FRESHDESK_API_KEY", "from-env")
    (tmp_path / "acme.zendesk_api_token").write_text("from-credential\n")
    (tmp_path / "zendesk_api_token").write_text("the-default-one\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    found = secret("freshdesk_api_key", "globex-eu")
    assert found is not None
    assert found.get_secret_value() == "from-env"
    found = secret("zendesk_api_token", "acme")
    assert found is not None
    assert found.get_secret_value() == "from-credential"
    assert secret("zendesk_api_token", "globex-eu") is None  # not another tenant's
    settings = load_settings(write(tmp_path, TWO))
    from connector.config import require_secret

    with pytest.raises(ConfigError) as caught:
        require_secret("freshdesk_api_key", settings.source, "acme")
    assert (
        "secret of tenant acme not set: set SLA_CONNECTOR_ACME__FRESHDESK_API_KEY or the "
        "systemd credential acme.freshdesk_api_key" in str(caught.value)
    )


# --- one daemon, several accounts, a file -----------------------------------------------------


def test_one_daemon_serves_every_tenant_as_each_alone_would_be(tmp_path: Path) -> None:
    with accounts(3, tmp_path / "fleet") as fleet:
        daemon = fleet.daemon()
        daemon.start()
        wait_for("READY=1", lambda: any("READY=1" in m for m in fleet.messages(daemon)), 120)
        for tenant in fleet.tenants:
            wait_for(
                f"{tenant.name}'s first sync",
                lambda t=tenant.name: any(e.get("tenant") == t for e in daemon.events("synced")),
            )
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0
        told = "\n".join(fleet.messages(daemon))
        assert "STOPPING=1" in told
        for tenant in fleet.tenants:
            expected = reference(tenant.helpdesk, tmp_path / f"reference-{tenant.name}")
            assert tenant.shown() == expected, tenant.name
        states = {
            t.name: State(tmp_path / "fleet" / "state" / "state.sqlite3", tenant=t.name)
            for t in fleet.tenants
        }
        try:
            for name, state in states.items():
                assert state.counts()["tickets"] == len(fleet.tenants[0].shown()), name
                assert state.pending_notes() == []
        finally:
            for state in states.values():
                state.close()


def cli(fleet_env: dict[str, str], config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connector", *args, "--config", str(config)],
        env=fleet_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_one_account_commands_take_the_tenant_by_name(tmp_path: Path) -> None:
    with accounts(2, tmp_path / "fleet") as fleet:
        first, second = fleet.tenants
        done = cli(fleet.env, fleet.config, "sync", "--once", "--tenant", second.name)
        assert done.returncode == 0, done.stderr
        assert second.sandbox.ticket_writes(second.helpdesk) > 0
        assert first.sandbox.ticket_writes(first.helpdesk) == 0  # the other account untouched
        refused = cli(fleet.env, fleet.config, "explain", "1")
        assert refused.returncode == 2
        assert refused.stderr.strip().endswith(
            "names 2 tenants (t01, t02): choose one with --tenant NAME"
        ), refused.stderr
        unknown = cli(fleet.env, fleet.config, "report", "--tenant", "t09")
        assert unknown.returncode == 2
        assert "--tenant t09: no such tenant" in unknown.stderr
        report = cli(
            fleet.env,
            fleet.config,
            "report",
            "--tenant",
            second.name,
            "--format",
            "json",
            "--since",
            "2000-01-01",
        )
        assert report.returncode == 0, report.stderr
        assert json.loads(report.stdout)["compliance"]  # the second's tickets, counted
        empty = cli(
            fleet.env,
            fleet.config,
            "report",
            "--tenant",
            first.name,
            "--format",
            "json",
            "--since",
            "2000-01-01",
        )
        assert json.loads(empty.stdout)["compliance"] == []  # nothing of the other's
        checked = cli(fleet.env, fleet.config, "check")
        assert checked.returncode == 0, checked.stdout + checked.stderr
        lines = checked.stdout.splitlines()
        assert "== tenant t01 (zendesk)" in lines
        assert "== tenant t02 (freshdesk)" in lines
        assert sum(line.startswith("ok    signed in to http://127.0.0.1:") for line in lines) == 2


def test_a_tenant_that_cannot_start_leaves_the_others_served(tmp_path: Path) -> None:
    textfile = tmp_path / "metrics.prom"
    extra = f'[metrics]\ntextfile = "{textfile}"\n'
    with accounts(2, tmp_path / "fleet", extra=extra) as fleet:
        broken, working = fleet.tenants
        mapping = tmp_path / "fleet" / f"{broken.name}-{broken.helpdesk}.yaml"
        mapping.write_text("helpdesk: zendesk\nsources: [\n")  # not YAML
        daemon = fleet.daemon()
        daemon.start()
        wait_for("READY=1", lambda: any("READY=1" in m for m in fleet.messages(daemon)))
        wait_for(
            "the working tenant's sync",
            lambda: any(e.get("tenant") == working.name for e in daemon.events("synced")),
        )
        [failed] = daemon.events("tenant_failed")
        assert failed["tenant"] == broken.name
        assert str(mapping) in failed["error"]
        assert broken.sandbox.ticket_writes(broken.helpdesk) == 0
        wait_for(
            "the status line to say so",
            lambda: any(f"FAILING 1: {broken.name}" in m for m in fleet.messages(daemon)),
        )
        wait_for("the textfile", textfile.exists)
        metrics = textfile.read_text()
        assert f'tenant="{working.name}"' in metrics
        assert metrics.count("# TYPE sla_connector_tickets_seen_total counter") == 1
        # SIGHUP reloads every tenant's mappings; the refused one is said on the status line.
        working_mapping = tmp_path / "fleet" / f"{working.name}-{working.helpdesk}.yaml"
        working_mapping.write_text("helpdesk: freshdesk\n")  # valid YAML, not a mapping
        daemon.signal(signal.SIGHUP)
        wait_for(
            "the refused reload on the status line",
            lambda: any(f"RELOAD REFUSED for {working.name}" in m for m in fleet.messages(daemon)),
        )
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0


def test_an_account_moved_into_tenants_as_default_keeps_its_rows_and_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one account of a file without tenants is `default`: named so under `[[tenants]]`,
    it reads the rows it kept before and its secrets' plain names."""
    text = (
        '[[tenants]]\nname = "default"\nhelpdesk = "zendesk"\n'
        '[tenants.zendesk]\nurl = "https://a.zendesk.com"\nemail = "ops@a.example"\n'
        '[[tenants]]\nname = "b"\nhelpdesk = "freshdesk"\n'
    )
    settings = load_settings(write(tmp_path, text))
    first = settings.account("default")
    monkeypatch.setenv("SLA_CONNECTOR_ZENDESK_API_TOKEN", "plain")
    found = secret("zendesk_api_token", first.tenant)
    assert found is not None
    assert found.get_secret_value() == "plain"
    before = State(tmp_path / "state.sqlite3")  # as the single account kept it
    before.set_cursor("poll", "kept", datetime(2026, 1, 1, tzinfo=UTC))
    before.close()
    after = State(tmp_path / "state.sqlite3", tenant=first.tenant)
    try:
        assert after.cursor("poll") == "kept"
    finally:
        after.close()


def test_a_metrics_port_already_taken_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        extra = f'[metrics]\nlisten = "127.0.0.1:{port}"\n'
        with accounts(1, tmp_path / "fleet", extra=extra) as fleet:
            done = cli(fleet.env, fleet.config, "run")
    assert done.returncode == 2
    [line] = [line for line in done.stderr.splitlines() if line.strip()]
    assert f"metrics.listen: cannot listen on 127.0.0.1:{port}: Address already in use" in line
