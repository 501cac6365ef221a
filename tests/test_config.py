"""The configuration: a TOML file, the environment over it, and secrets kept out of both."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connector.config import (
    SECRET_NAMES,
    config_path,
    load_settings,
    require_secret,
    secret,
)
from connector.errors import ConfigError

FILE = """\
helpdesk = "zendesk"
poll_interval = 30
start = "2026-01-01T00:00:00Z"

[zendesk]
url = "https://acme.zendesk.com"
email = "robot@acme.example"

[log]
level = "debug"
"""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No setting, secret or systemd folder of the machine running the tests leaks in."""
    for name in list(os.environ):
        if name.upper().startswith("SLA_CONNECTOR_"):
            monkeypatch.delenv(name)
    for name in ("STATE_DIRECTORY", "CREDENTIALS_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path | None) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    return [str(problem) for problem in raised.value.problems]


# --- the file -------------------------------------------------------------------------------


def test_the_file_is_read(tmp_path: Path) -> None:
    path = write(tmp_path, FILE)
    settings = load_settings(path)
    assert settings.helpdesk == "zendesk"
    assert settings.poll_interval == 30
    assert settings.start == datetime(2026, 1, 1, tzinfo=UTC)
    assert settings.zendesk.url == "https://acme.zendesk.com"
    assert settings.zendesk.email == "robot@acme.example"
    assert settings.helpdesk_url == "https://acme.zendesk.com"
    assert settings.log.level == "debug"
    assert settings.source == str(path)


def test_the_environment_wins_over_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLA_CONNECTOR_POLL_INTERVAL", "120")
    monkeypatch.setenv("SLA_CONNECTOR_ZENDESK__URL", "https://other.zendesk.com")
    settings = load_settings(write(tmp_path, FILE))
    assert settings.poll_interval == 120
    assert settings.zendesk.url == "https://other.zendesk.com"
    assert settings.zendesk.email == "robot@acme.example"  # the rest of [zendesk] stays


def test_the_environment_alone_is_a_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLA_CONNECTOR_HELPDESK", "freshdesk")
    monkeypatch.setenv("SLA_CONNECTOR_FRESHDESK__URL", "https://acme.freshdesk.com")
    settings = load_settings(None)
    assert settings.helpdesk_url == "https://acme.freshdesk.com"
    assert settings.source == "<environment>"


def test_unknown_keys_are_named_with_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path, "pol_interval = 5\n" + FILE + '[zendesk.extra]\n[metrics]\nlisten_on = ""\n'
    )
    found = problems(path)
    top = (
        "freshdesk, helpdesk, helpdesk_mapping, log, mappings, metrics, poll_interval, start, "
        "state_connections, state_dir, state_lease_seconds, state_url, tenants, "
        "tenants_per_daemon, zendesk"
    )
    zendesk = "auth, batch_writes, client_id, email, update_share, url"
    assert sorted(found) == sorted(
        [
            f"{path}: pol_interval: unknown key (did you mean poll_interval?); "
            f"the keys here are: {top}",
            f"{path}: zendesk.extra: unknown key; the keys here are: {zendesk}",
            f"{path}: metrics.listen_on: unknown key (did you mean listen?); "
            "the keys here are: listen, textfile",
        ]
    )


def test_source_is_not_a_key_of_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'source = "elsewhere"\n' + FILE)
    [problem] = problems(path)
    assert problem.startswith(f"{path}: source: unknown key; the keys here are: freshdesk, ")
    assert "source," not in problem


@pytest.mark.parametrize(
    ("text", "key", "variable"),
    [
        ('zendesk_api_token = "t0ps3cret"\n', "zendesk_api_token", "ZENDESK_API_TOKEN"),
        ('[freshdesk]\napi_key = "t0ps3cret"\n', "freshdesk.api_key", "FRESHDESK_API_KEY"),
        (
            '[zendesk]\noauth_refresh_token = "t0ps3cret"\n',
            "zendesk.oauth_refresh_token",
            "ZENDESK_OAUTH_REFRESH_TOKEN",
        ),
    ],
)
def test_a_secret_in_the_file_is_refused(
    tmp_path: Path, text: str, key: str, variable: str
) -> None:
    path = write(tmp_path, 'helpdesk = "zendesk"\n' + text)
    [problem] = problems(path)
    assert problem.startswith(f"{path}: {key}: secrets do not belong in the file")
    assert f"SLA_CONNECTOR_{variable}" in problem
    assert "t0ps3cret" not in problem


def test_invalid_toml_is_one_problem_naming_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'helpdesk = "zendesk"\npoll_interval = \n')
    [problem] = problems(path)
    assert problem.startswith(f"{path}: is not valid TOML")
    assert "line 2" in problem


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    assert problems(path) == [f"{path}: no such file"]


def test_a_missing_helpdesk_and_a_bad_value_are_both_reported(tmp_path: Path) -> None:
    path = write(tmp_path, 'poll_interval = 0\n[log]\nformat = "xml"\n')
    found = problems(path)
    assert f"{path}: helpdesk: required key is missing" in found
    assert any(p.startswith(f"{path}: poll_interval: ") for p in found)
    assert any(p.startswith(f"{path}: log.format: ") for p in found)


def test_a_bad_value_from_the_environment_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLA_CONNECTOR_LOG__LEVEL", "loud")
    [problem] = problems(write(tmp_path, FILE))
    assert problem.startswith("environment SLA_CONNECTOR_LOG__LEVEL: log.level: ")


def test_a_missing_helpdesk_url_is_named_when_asked_for(tmp_path: Path) -> None:
    path = write(tmp_path, 'helpdesk = "freshdesk"\n')
    settings = load_settings(path)
    with pytest.raises(ConfigError, match=r"freshdesk\.url: required key is missing"):
        _ = settings.helpdesk_url


# --- defaults -------------------------------------------------------------------------------


def test_the_state_directory_comes_from_systemd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, FILE)
    assert load_settings(path).state_dir == tmp_path / "xdg-state" / "sla-connector"

    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/sla-connector:/var/lib/other")
    settings = load_settings(path)
    assert settings.state_dir == Path("/var/lib/sla-connector")
    assert settings.state_file == Path("/var/lib/sla-connector/state.sqlite3")

    configured = load_settings(write(tmp_path, 'state_dir = "/srv/sla"\n' + FILE))
    assert configured.state_dir == Path("/srv/sla")


def test_an_empty_metrics_textfile_means_none(tmp_path: Path) -> None:
    empty = load_settings(write(tmp_path, FILE + '[metrics]\ntextfile = ""\nlisten = ""\n'))
    assert empty.metrics.textfile is None
    assert empty.metrics.listen is None
    given = load_settings(write(tmp_path, FILE + '[metrics]\ntextfile = "/run/m.prom"\n'))
    assert given.metrics.textfile == Path("/run/m.prom")


def test_the_mapping_file_defaults_to_the_helpdesk_name(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, 'mappings = "/etc/sla/mappings"\n' + FILE))
    assert settings.mapping_file == Path("/etc/sla/mappings/helpdesks/zendesk.yaml")
    chosen = load_settings(write(tmp_path, 'helpdesk_mapping = "/etc/sla/zd.yaml"\n' + FILE))
    assert chosen.mapping_file == Path("/etc/sla/zd.yaml")


def test_the_config_path_is_the_flag_then_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLA_CONNECTOR_CONFIG", str(tmp_path / "from-env.toml"))
    assert config_path(tmp_path / "flag.toml") == tmp_path / "flag.toml"
    assert config_path(None) == tmp_path / "from-env.toml"


# --- secrets --------------------------------------------------------------------------------


def test_a_secret_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLA_CONNECTOR_ZENDESK_API_TOKEN", "  from-env\n")
    value = secret("zendesk_api_token")
    assert value is not None
    assert value.get_secret_value() == "from-env"
    assert "from-env" not in repr(value)


def test_a_secret_comes_from_a_systemd_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "freshdesk_api_key").write_text("from-credential\n", encoding="utf-8")
    (tmp_path / "zendesk_api_token").write_text("\n", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    value = secret("freshdesk_api_key")
    assert value is not None
    assert value.get_secret_value() == "from-credential"
    assert secret("zendesk_api_token") is None  # an empty credential is no credential
    assert secret("zendesk_oauth_client_secret") is None

    monkeypatch.setenv("SLA_CONNECTOR_FRESHDESK_API_KEY", "from-env")
    value = secret("freshdesk_api_key")
    assert value is not None
    assert value.get_secret_value() == "from-env"


def test_a_blank_variable_is_not_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLA_CONNECTOR_FRESHDESK_API_KEY", "   ")
    assert secret("freshdesk_api_key") is None


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_a_missing_secret_says_both_places_to_put_it(name: str) -> None:
    with pytest.raises(ConfigError) as raised:
        require_secret(name, "/etc/sla-connector/config.toml")
    [problem] = raised.value.problems
    text = str(problem)
    assert text.startswith(f"/etc/sla-connector/config.toml: {name}: secret not set")
    assert f"SLA_CONNECTOR_{name.upper()}" in text
    assert f"credential {name}" in text
