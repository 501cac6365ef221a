"""`sla-connector init` against a fresh sandbox account (no custom field yet), both helpdesks:
shows what it would create and creates nothing; with --apply creates each field once, writes
a configuration and a mapping with the account's ids that `check` passes; a second run
creates nothing and overwrites nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.cli import main
from connector.cli.init import needed_fields
from connector.config import load_settings
from connector.mappingfiles import default_mappings_dir, load_contracts
from connector.sandbox import Sandbox
from connector.sandbox.server import SandboxServer

HELPDESKS = ("zendesk", "freshdesk")
SOLD = "photoprism,pixelz,solidxperts"
CREATE = {
    "zendesk": ("/api/v2/ticket_fields.json", "/api/v2/organization_fields.json"),
    "freshdesk": ("/api/v2/admin/ticket_fields", "/api/v2/admin/company_fields"),
}


@pytest.fixture
def account(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Sandbox, SandboxServer]]:
    sandbox = Sandbox(fresh_account=True)
    server = sandbox.serve("127.0.0.1", 0).start()
    monkeypatch.setenv("SLA_CONNECTOR_ZENDESK_API_TOKEN", sandbox.credentials.zendesk_api_token)
    monkeypatch.setenv("SLA_CONNECTOR_FRESHDESK_API_KEY", sandbox.credentials.freshdesk_api_key)
    try:
        yield sandbox, server
    finally:
        server.close()


def init(server: SandboxServer, sandbox: Sandbox, helpdesk: str, folder: Path, *extra: str) -> int:
    url = server.zendesk_url if helpdesk == "zendesk" else server.freshdesk_url
    argv = ["init", "--helpdesk", helpdesk, "--url", url, "--contracts", SOLD]
    argv += ["--dir", str(folder), *extra]
    if helpdesk == "zendesk":
        argv += ["--email", sandbox.credentials.zendesk_email]
    return main(argv)


def created(sandbox: Sandbox, helpdesk: str) -> int:
    return sum(
        sandbox.counters.total(helpdesk=helpdesk, method="POST", route=route)
        for route in CREATE[helpdesk]
    )


def fields(sandbox: Sandbox, helpdesk: str) -> int:
    if helpdesk == "zendesk":
        return len(sandbox.zendesk.ticket_fields) + len(sandbox.zendesk.organization_fields)
    return len(sandbox.freshdesk.ticket_fields) + len(sandbox.freshdesk.company_fields)


@pytest.mark.parametrize("helpdesk", HELPDESKS)
def test_init_shows_then_creates_each_field_once_and_check_passes(
    helpdesk: str,
    account: tuple[Sandbox, SandboxServer],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sandbox, server = account
    folder = tmp_path / "etc"
    assert init(server, sandbox, helpdesk, folder) == 0
    shown = capsys.readouterr().out
    assert "would create" in shown
    assert "ticket field 'SLA severity' (dropdown: " in shown
    assert "run again with --apply" in shown
    assert created(sandbox, helpdesk) == 0  # nothing without --apply
    assert fields(sandbox, helpdesk) == 0
    assert not folder.exists()

    assert init(server, sandbox, helpdesk, folder, "--apply") == 0
    out = capsys.readouterr().out
    sold = [load_contracts(default_mappings_dir())[n] for n in SOLD.split(",")]
    # On Freshdesk the due dates go to its own fields: nothing to create for them.
    wanted = len([f for f in needed_fields(sold) if helpdesk == "zendesk" or not f.zendesk_only])
    assert created(sandbox, helpdesk) == wanted
    assert fields(sandbox, helpdesk) == wanted
    assert "ok    every mapped field exists" in out
    assert "FAIL" not in out
    settings = load_settings(folder / "config.toml")
    assert settings.mapping_file == folder / "mappings" / "helpdesks" / f"{helpdesk}.yaml"
    assert sorted(p.stem for p in (folder / "mappings" / "contracts").glob("*.yaml")) == sorted(
        SOLD.split(",")
    )

    mapping = settings.mapping_file.read_text()
    assert init(server, sandbox, helpdesk, folder, "--apply") == 0
    again = capsys.readouterr().out
    assert f"{wanted} of the {wanted} fields" in again
    assert created(sandbox, helpdesk) == wanted  # a second run creates nothing
    assert "wrote" not in again  # and writes nothing: the files already say the same
    assert settings.mapping_file.read_text() == mapping


def test_a_file_an_admin_changed_is_kept_and_the_new_text_goes_beside_it(
    account: tuple[Sandbox, SandboxServer], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox, server = account
    folder = tmp_path / "etc"
    assert init(server, sandbox, "zendesk", folder, "--apply") == 0
    config = folder / "config.toml"
    config.write_text(config.read_text() + "# an admin's comment\n")
    edited = config.read_text()
    capsys.readouterr()
    assert init(server, sandbox, "zendesk", folder, "--apply") == 0
    assert config.read_text() == edited
    assert (folder / "config.toml.new").exists()
    assert f"wrote {folder / 'config.toml.new'}" in capsys.readouterr().out


def test_only_the_fields_the_contracts_sold_use() -> None:
    contracts = load_contracts(default_mappings_dir())
    photoprism = {f.title for f in needed_fields([contracts["photoprism"]])}
    pixelz = {f.title for f in needed_fields([contracts["pixelz"]])}
    assert "Images" in pixelz
    assert "Expedite" in pixelz
    assert "Images" not in photoprism
    assert "SLA plan" in photoprism
    [plan] = [f for f in needed_fields([contracts["photoprism"]]) if f.title == "SLA plan"]
    assert set(plan.options) == set(contracts["photoprism"].spec.plans)


def test_without_a_terminal_a_missing_flag_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["init", "--helpdesk", "zendesk", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sla-connector: error: --url is required")
    assert len(err.splitlines()) == 1


def test_an_unknown_contract_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    argv = ["init", "--helpdesk", "freshdesk", "--url", "https://x.freshdesk.com"]
    assert main([*argv, "--contracts", "photoprism,acme", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown acme" in err
    assert "photoprism" in err
