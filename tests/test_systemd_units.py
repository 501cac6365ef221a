"""The systemd units and example configuration an admin installs from systemd/."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from connector.app import load_rules
from connector.config import SECRET_NAMES, load_settings, secret, secret_names
from tests.conftest import ROOT

SYSTEMD = ROOT / "systemd"
DAEMON = SYSTEMD / "sla-connector.service"
BACKFILL = SYSTEMD / "sla-connector-backfill@.service"
# One of several daemons sharing the accounts of one configuration (a PostgreSQL state).
TEMPLATE = SYSTEMD / "sla-connector@.service"
UNITS = [DAEMON, BACKFILL]
ALL_UNITS = [DAEMON, BACKFILL, TEMPLATE]
EXAMPLE_CONFIG = SYSTEMD / "config.toml.example"
CHECK = ROOT / ".ci" / "systemd-check"

# Credential file name -> environment variable, for every secret the connector reads.
SECRETS = {name: f"SLA_CONNECTOR_{name.upper()}" for name in SECRET_NAMES}

# What lets the daemon and the backfill share one state directory and one set of secrets, and
# what keeps them sandboxed: identical in both units.
SHARED_SETTINGS = [
    "DynamicUser",
    "User",
    "Group",
    "StateDirectory",
    "StateDirectoryMode",
    "ConfigurationDirectory",
    "UMask",
    "LoadCredential",
    "LoadCredentialEncrypted",
    "CapabilityBoundingSet",
    "AmbientCapabilities",
    "NoNewPrivileges",
    "ProtectSystem",
    "ProtectHome",
    "PrivateTmp",
    "PrivateDevices",
    "DevicePolicy",
    "PrivateUsers",
    "PrivateIPC",
    "PrivateMounts",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectKernelLogs",
    "ProtectControlGroups",
    "ProtectClock",
    "ProtectHostname",
    "ProtectProc",
    "ProcSubset",
    "RestrictAddressFamilies",
    "RestrictNamespaces",
    "RestrictRealtime",
    "RestrictSUIDSGID",
    "LockPersonality",
    "MemoryDenyWriteExecute",
    "RemoveIPC",
    "SystemCallArchitectures",
    "SystemCallFilter",
    "SystemCallErrorNumber",
]

# How systemd runs, watches and restarts a daemon: identical in sla-connector.service and in
# each instance of the template.
DAEMON_SETTINGS = [
    "Type",
    "NotifyAccess",
    "ExecStart",
    "ExecReload",
    "WatchdogSec",
    "TimeoutStartSec",
    "TimeoutStopSec",
    "Restart",
    "RestartSec",
    "RestartPreventExitStatus",
]
# The template keeps no state on the host: the state is on the server.
LOCAL_STATE_SETTINGS = ["StateDirectory", "StateDirectoryMode"]


def read_unit(path: Path) -> dict[str, list[str]]:
    """Every `Key=value` of a unit's [Service] section, values in file order (keys repeat)."""
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        assert not line.endswith("\\"), f"{path.name}: keep each setting on one line: {line}"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not a setting: {line}"
        if section == "[Service]":
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def one(settings: dict[str, list[str]], key: str) -> str:
    values = settings.get(key, [])
    assert len(values) == 1, f"{key}: expected one value, got {values}"
    return values[0]


def test_daemon_unit_tells_systemd_when_it_is_ready_alive_and_reloading() -> None:
    service = read_unit(DAEMON)
    assert one(service, "Type") == "notify"
    assert one(service, "NotifyAccess") == "main"
    assert one(service, "ExecStart").split() == [
        "/usr/local/bin/sla-connector",
        "run",
        "--config",
        "/etc/sla-connector/config.toml",
    ]
    assert one(service, "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert one(service, "WatchdogSec") == "5min"
    assert one(service, "Restart") == "on-failure"
    # A bad configuration (exit status 2) is reported once, not restarted forever.
    assert one(service, "RestartPreventExitStatus") == "2"


def test_backfill_unit_takes_the_since_date_from_its_instance_name() -> None:
    service = read_unit(BACKFILL)
    assert one(service, "Type") == "oneshot"
    argv = one(service, "ExecStart").split()
    assert argv[:4] == [
        "/usr/local/bin/sla-connector",
        "backfill",
        "--config",
        "/etc/sla-connector/config.toml",
    ]
    assert argv[argv.index("--since") + 1] == "%i"
    assert one(service, "EnvironmentFile") == "-/etc/sla-connector/backfill.env"


@pytest.mark.parametrize("unit", ALL_UNITS, ids=lambda p: p.name)
def test_unit_is_sandboxed(unit: Path) -> None:
    service = read_unit(unit)
    assert one(service, "DynamicUser") == "yes"
    assert one(service, "User") == "sla-connector"
    if unit == TEMPLATE:
        # Nothing written on the host: no writable directory at all.
        for key in ("StateDirectory", "CacheDirectory", "LogsDirectory", "RuntimeDirectory"):
            assert key not in service, key
        assert "ReadWritePaths" not in service
    else:
        assert one(service, "StateDirectory") == "sla-connector"
        assert one(service, "StateDirectoryMode") == "0700"
    assert one(service, "ConfigurationDirectory") == "sla-connector"
    assert one(service, "UMask") == "0077"
    assert one(service, "ProtectSystem") == "strict"
    assert one(service, "ProtectHome") == "yes"
    assert one(service, "CapabilityBoundingSet") == ""
    assert one(service, "NoNewPrivileges") == "yes"
    assert one(service, "PrivateUsers") == "yes"
    assert one(service, "MemoryDenyWriteExecute") == "yes"
    assert set(one(service, "RestrictAddressFamilies").split()) == {
        "AF_INET",
        "AF_INET6",
        "AF_UNIX",
    }
    assert service["SystemCallFilter"] == ["@system-service", "~@privileged @resources"]
    assert one(service, "SystemCallArchitectures") == "native"
    # The helpdesk is a SaaS on changing addresses: no IP allow list.
    assert "IPAddressDeny" not in service
    assert "IPAddressAllow" not in service


def test_daemon_and_backfill_share_user_state_secrets_and_sandbox() -> None:
    daemon, backfill = read_unit(DAEMON), read_unit(BACKFILL)
    different = {
        key: (daemon.get(key), backfill.get(key))
        for key in SHARED_SETTINGS
        if daemon.get(key) != backfill.get(key)
    }
    assert different == {}


def test_template_runs_each_instance_as_the_daemon_unit_runs_the_daemon() -> None:
    daemon, template = read_unit(DAEMON), read_unit(TEMPLATE)
    assert one(template, "Type") == "notify"
    # The same command for every instance: the daemons tell each other apart by their leases
    # (host, pid and a random part), not by the instance name.
    assert one(template, "ExecStart").split() == [
        "/usr/local/bin/sla-connector",
        "run",
        "--config",
        "/etc/sla-connector/config.toml",
    ]
    assert one(template, "WatchdogSec") == "5min"
    assert one(template, "Restart") == "on-failure"
    different = {
        key: (daemon.get(key), template.get(key))
        for key in DAEMON_SETTINGS
        if daemon.get(key) != template.get(key)
    }
    assert different == {}


def test_template_has_the_daemons_user_secrets_and_sandbox_but_no_state_directory() -> None:
    daemon, template = read_unit(DAEMON), read_unit(TEMPLATE)
    different = {
        key: (daemon.get(key), template.get(key))
        for key in SHARED_SETTINGS
        if key not in LOCAL_STATE_SETTINGS and daemon.get(key) != template.get(key)
    }
    assert different == {}
    for key in LOCAL_STATE_SETTINGS:
        assert key not in template, key
    # Said where an admin reads it: for a PostgreSQL state only.
    head = TEMPLATE.read_text().split("[Unit]", 1)[0]
    assert "PostgreSQL" in head
    assert "SQLite" in head


def commented_examples(unit: Path, pattern: str) -> list[re.Match[str]]:
    """The settings a unit's comments show as examples (`#     Key=value`)."""
    return [
        match
        for line in unit.read_text().splitlines()
        if (match := re.fullmatch(rf"#\s+{pattern}", line))
    ]


def test_template_instance_environment_file_sets_a_metrics_port_of_its_own(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    template = read_unit(TEMPLATE)
    # Optional ("-"), one per instance: two instances on a host cannot share a port.
    assert one(template, "EnvironmentFile") == "-/etc/sla-connector/instance-%i.env"
    examples = commented_examples(TEMPLATE, r"(SLA_CONNECTOR_\w+)=(\S+)")
    assert [m.group(1) for m in examples] == ["SLA_CONNECTOR_METRICS__LISTEN"]
    for variable in list(os.environ):
        if variable.startswith("SLA_CONNECTOR_"):
            monkeypatch.delenv(variable)
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path))
    variable, listen = examples[0].groups()
    monkeypatch.setenv(variable, listen)
    assert load_settings(EXAMPLE_CONFIG).metrics.listen == listen != "127.0.0.1:9464"
    # An empty value turns the endpoint off.
    monkeypatch.setenv(variable, "")
    assert load_settings(EXAMPLE_CONFIG).metrics.listen is None


def test_template_shows_tenant_credentials_under_the_names_the_daemon_reads(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    examples = commented_examples(TEMPLATE, r"LoadCredential=([^:\s]+):(\S+)")
    assert len(examples) >= 2
    for variable in list(os.environ):
        if variable.startswith("SLA_CONNECTOR_"):
            monkeypatch.delenv(variable)
    credentials = tmp_path / "credentials"  # $CREDENTIALS_DIRECTORY as systemd fills it
    credentials.mkdir()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    for match in examples:
        credential, stored = match.groups()
        tenant, _, name = credential.partition(".")
        assert name in SECRET_NAMES
        assert re.fullmatch(r"[a-z0-9][a-z0-9-]{0,39}", tenant), tenant
        assert secret_names(name, tenant)[1] == credential
        # Kept beside the plain ones in /etc/credstore, with the program's prefix.
        assert stored == f"sla-connector.{credential}"
        (credentials / credential).write_text(f"{tenant}-{name}\n")
        value = secret(name, tenant)
        assert value is not None
        assert value.get_secret_value() == f"{tenant}-{name}"


@pytest.mark.parametrize("unit", ALL_UNITS, ids=lambda p: p.name)
def test_unit_loads_every_secret_as_a_credential_and_nowhere_else(unit: Path) -> None:
    service = read_unit(unit)
    loaded = dict(value.split(":", 1) for value in service["LoadCredential"])
    # Credential names are what the daemon reads from $CREDENTIALS_DIRECTORY; the files in
    # /etc/credstore carry the program's prefix.
    assert loaded == {name: f"sla-connector.{name}" for name in SECRETS}
    for key in ("SetCredential", "SetCredentialEncrypted", "Environment", "PassEnvironment"):
        for value in service.get(key, []):
            for name, variable in SECRETS.items():
                assert name not in value
                assert variable not in value
    for key, values in service.items():
        if key.startswith("Exec"):
            for word in " ".join(values).lower().split():
                assert not re.search(r"token|secret|key|password|credential", word), word


def test_example_config_has_every_key_of_the_format_and_no_secret() -> None:
    text = EXAMPLE_CONFIG.read_text()
    config = tomllib.loads(text)
    assert config["helpdesk"] in {"zendesk", "freshdesk"}
    assert set(config) == {
        "helpdesk",
        "mappings",
        "helpdesk_mapping",
        "poll_interval",
        "zendesk",
        "freshdesk",
        "metrics",
        "log",
    }
    assert set(config["zendesk"]) == {"url", "auth", "email", "client_id", "update_share"}
    assert set(config["freshdesk"]) == {"url", "budget_share"}
    assert set(config["metrics"]) == {"listen"}
    assert set(config["log"]) == {"format", "level"}
    assert config["metrics"]["listen"].startswith("127.0.0.1:")
    # Keys whose defaults suit the service are documented, commented out.
    for key in ("state_dir", "start", "textfile", "plan"):
        assert re.search(rf"^# {key} = ", text, re.MULTILINE), key
    # Hosts are example ones, and no secret has a key in the file.
    for url in (config["zendesk"]["url"], config["freshdesk"]["url"]):
        assert re.fullmatch(r"https://example\.(zendesk|freshdesk)\.com", url)
    assert config["zendesk"]["email"].endswith("@example.com")
    for table in [config, *(v for v in config.values() if isinstance(v, dict))]:
        for key in table:
            assert not re.search(r"token|secret|key|password", key), key


def test_example_config_loads_as_the_service_would_load_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for variable in list(os.environ):
        if variable.startswith("SLA_CONNECTOR_"):
            monkeypatch.delenv(variable)
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path))
    settings = load_settings(EXAMPLE_CONFIG)
    assert settings.helpdesk == "zendesk"
    assert settings.helpdesk_url == "https://example.zendesk.com"
    assert settings.mapping_file == Path("/etc/sla-connector/mappings/helpdesks/zendesk.yaml")
    assert settings.state_file == tmp_path / "state.sqlite3"
    assert settings.metrics.listen == "127.0.0.1:9464"
    assert settings.metrics.textfile is None


def readme_install_steps() -> list[list[str]]:
    """The `install -d` and `cp` commands of README.md's "Running it as a service" that lay
    out /etc/sla-connector (the units' copy to /etc/systemd/system is not of that folder)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Running it as a service", 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.DOTALL):
        for line in block.splitlines():
            words = line.split()
            command = words[:2] == ["install", "-d"] or words[:1] == ["cp"]
            if command and words[-1].startswith("/etc/sla-connector"):
                commands.append(words)
    return commands


def test_example_config_names_a_mapping_the_readme_steps_create(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for variable in list(os.environ):
        if variable.startswith("SLA_CONNECTOR_"):
            monkeypatch.delenv(variable)
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    etc = tmp_path / "etc" / "sla-connector"

    def here(word: str) -> Path:
        return Path(word.replace("/etc/sla-connector", str(etc)))

    created: set[Path] = set()
    steps = readme_install_steps()
    assert steps
    for words in steps:
        if words[0] == "install":
            for folder in words[2:]:
                here(folder).mkdir(parents=True)
            continue
        *sources, target = words[1:]
        for pattern in sources:
            matches = sorted(ROOT.glob(pattern))
            assert matches, pattern
            for source in matches:
                copy = here(target) / source.name if target.endswith("/") else here(target)
                shutil.copyfile(source, copy)
                created.add(copy)
    config = etc / "config.toml"
    assert config in created  # step 3 copies the example configuration
    config.write_text(
        config.read_text(encoding="utf-8").replace("/etc/sla-connector", str(etc)), "utf-8"
    )

    settings = load_settings(config)
    assert settings.mapping_file == etc / "mappings" / "helpdesks" / "zendesk.yaml"
    assert settings.mapping_file in created
    rules = load_rules(settings)  # the contracts and the mapping load as the service's would
    assert rules.mapping.helpdesk == settings.helpdesk
    assert len(rules.contracts) == len(list((ROOT / "mappings" / "contracts").glob("*.yaml")))


# The check script, run as CI runs it. It needs systemd-analyze; on a copy of the repository's
# units, so that a broken unit can be shown to fail it.

needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


def run_check(tree: Path, path: str | None = None) -> subprocess.CompletedProcess[str]:
    # Any executable satisfies verify's check that ExecStart= exists.
    env = {**os.environ, "SLA_CONNECTOR_BIN": sys.executable}
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        ["/bin/bash", str(tree / ".ci" / "systemd-check")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the check script and the units, to break at will."""
    (tmp_path / ".ci").mkdir()
    shutil.copy(CHECK, tmp_path / ".ci")
    shutil.copytree(SYSTEMD, tmp_path / "systemd")
    return tmp_path


@needs_systemd_analyze
def test_check_passes_the_repository_units() -> None:
    result = run_check(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    scores = re.findall(r"Overall exposure level for (\S+): (\d+\.\d+)", result.stdout)
    assert {unit for unit, _ in scores} == {
        "sla-connector.service",
        "sla-connector-backfill@i.service",
        "sla-connector@i.service",
    }
    assert all(float(score) <= 1.5 for _, score in scores)


@needs_systemd_analyze
def test_check_passes_the_template_with_the_tenant_credentials_of_its_comments(tree: Path) -> None:
    unit = tree / "systemd" / TEMPLATE.name
    text = unit.read_text()
    lines = [m.group(0) for m in commented_examples(TEMPLATE, r"LoadCredential=\S+")]
    assert lines
    for line in lines:  # as the drop-in would add them
        text = text.replace(line, line.lstrip("# "))
    unit.write_text(text)
    assert len(read_unit(unit)["LoadCredential"]) == len(SECRETS) + len(lines)
    result = run_check(tree)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_systemd_analyze
def test_check_fails_a_misspelt_setting(tree: Path) -> None:
    unit = tree / "systemd" / DAEMON.name
    unit.write_text(unit.read_text().replace("ProtectSystem=strict", "ProtectSytem=strict"))
    result = run_check(tree)
    assert result.returncode == 1
    assert "Unknown key" in result.stderr
    assert "ProtectSytem" in result.stderr


@needs_systemd_analyze
def test_check_fails_a_unit_with_its_sandbox_removed(tree: Path) -> None:
    unit = tree / "systemd" / BACKFILL.name
    kept = [
        line
        for line in unit.read_text().splitlines()
        if line.split("=", 1)[0] not in SHARED_SETTINGS or line.startswith("#")
    ]
    unit.write_text("\n".join(kept) + "\n")
    result = run_check(tree)
    assert result.returncode == 1
    assert f"systemd/{BACKFILL.name} is over the exposure limit" in result.stderr


def test_check_is_skipped_without_systemd_analyze(tree: Path) -> None:
    bin_dir = tree / "bin"
    bin_dir.mkdir()
    dirname = shutil.which("dirname")
    assert dirname is not None
    (bin_dir / "dirname").symlink_to(dirname)
    result = run_check(tree, path=str(bin_dir))
    assert (result.returncode, result.stdout) == (0, "skipped: no systemd-analyze\n")
