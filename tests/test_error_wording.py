"""Every error in our own words, one line naming the file, key or value (issue 19, item 5).

- no configuration file: the line names the file looked for and how to name another;
- a YAML syntax error: the line and column an editor shows, whichever YAML parser runs;
- pydantic's checks (configuration, contract and mapping files, `sla simulate` lines): our
  wording, the keys allowed beside an unknown one, one problem for a union's members;
- `backfill --since` in the future: refused before the helpdesk is asked;
- a refused connection: one warning at the first retry, one line at the end.
"""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from connector import config as config_module
from connector import logs
from connector import mappingfiles as mappingfiles_module
from connector.cli import main
from connector.config import config_path, load_settings
from connector.errors import ConfigError, NotAvailable
from connector.http import HttpShell, Request, RetryPolicy
from connector.mappingfiles import load_contract, load_helpdesk_mapping, read_yaml
from tests.conftest import MAPPINGS, forget_admin_settings, logging_restored
from tests.fakes import FakeTime

ZENDESK_MAPPING = MAPPINGS / "helpdesks" / "zendesk.example.yaml"
# What pydantic says in its own words: none of it may reach a user.
PYDANTIC_WORDING = ("Input should", "Field required", "Extra inputs", "Value error", "valid ")


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No administrator settings leak in; logging is put back after each command."""
    forget_admin_settings(monkeypatch)
    with logging_restored():
        yield


def problems_of(call: object, *args: object) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        call(*args)  # type: ignore[operator]
    return [str(problem) for problem in raised.value.problems]


def one_error_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("sla-connector: error: "), stderr
    return lines[0].removeprefix("sla-connector: error: ")


# --- 1. no configuration file -----------------------------------------------------------------


@pytest.fixture
def default_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Where the default configuration file is looked for: nothing there yet."""
    path = tmp_path / "etc" / "config.toml"
    monkeypatch.setattr(config_module, "DEFAULT_CONFIG", path)
    return path


def test_no_file_and_no_helpdesk_in_the_environment_names_the_file_looked_for(
    default_config: Path,
) -> None:
    assert config_path(None) is None
    assert problems_of(load_settings, None) == [
        f"{default_config}: no such file (the default configuration file): give one with "
        "--config FILE or SLA_CONNECTOR_CONFIG, or set SLA_CONNECTOR_HELPDESK to configure "
        "from the environment alone"
    ]


def test_the_command_line_says_the_same_in_one_line(
    default_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "--offline"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    line = one_error_line(err)
    assert line.startswith(f"{default_config}: no such file")
    assert "--config FILE" in line
    assert "SLA_CONNECTOR_CONFIG" in line


def test_the_environment_alone_still_needs_no_file(
    default_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLA_CONNECTOR_HELPDESK", "zendesk")
    settings = load_settings(config_path(None))
    assert settings.helpdesk == "zendesk"
    assert settings.source == "<environment>"


def test_other_problems_of_the_environment_are_still_named(
    default_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLA_CONNECTOR_POLL_INTERVAL", "often")
    found = problems_of(load_settings, None)
    assert found[0].startswith(f"{default_config}: no such file")
    assert found[1:] == [
        "environment SLA_CONNECTOR_POLL_INTERVAL: poll_interval: expected a whole number, "
        "got 'often'"
    ]


def test_a_default_file_that_is_a_folder_is_said_so(default_config: Path) -> None:
    default_config.mkdir(parents=True)
    [problem] = problems_of(load_settings, config_path(None))
    assert problem.startswith(f"{default_config}: is not a file (the default configuration")


def test_the_default_file_is_read_when_there(default_config: Path) -> None:
    default_config.parent.mkdir(parents=True)
    default_config.write_text('helpdesk = "freshdesk"\n', encoding="utf-8")
    assert config_path(None) == default_config
    assert load_settings(config_path(None)).helpdesk == "freshdesk"


def test_a_missing_file_named_by_the_environment_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "nowhere.toml"
    monkeypatch.setenv("SLA_CONNECTOR_CONFIG", str(path))
    assert problems_of(load_settings, config_path(None)) == [
        f"{path}: no such file (named by SLA_CONNECTOR_CONFIG)"
    ]


# --- 2. YAML syntax errors: the line and column an editor shows ------------------------------

LOADERS = [yaml.SafeLoader] + ([yaml.CSafeLoader] if hasattr(yaml, "CSafeLoader") else [])


@pytest.fixture(params=LOADERS, ids=lambda loader: loader.__name__)
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each YAML parser in turn: libyaml's (the default when installed) and PyYAML's own."""
    monkeypatch.setattr(mappingfiles_module, "_Loader", request.param)


@pytest.mark.usefixtures("loader")
@pytest.mark.parametrize(
    ("text", "where", "says"),
    [
        # A tab before a key: YAML indents with spaces.
        ("name: x\nplans:\n  - a\nseverities:\n\tsev1: {priority: high}\n", "5:1", "a tab"),
        # A quote opened on line 2 and never closed.
        (
            'name: x\ntitle: "Support\nzone: UTC\n',
            "4:1",
            "the quoted text at line 2, column 8 is never closed",
        ),
        # A colon inside a plain value.
        (
            "name: x\ntitle: Support: gold\nzone: UTC\n",
            "2:15",
            "a ':' where no key can start (quote a value that holds ': '",
        ),
        # A key without its colon: noticed on the next line, named where it is.
        ("name: x\nzone UTC\nplans: []\n", "3:1", "no ':' after the key at line 2, column 1"),
        # A bracket never closed: noticed at the next key, named where it opens.
        (
            "name: x\nhours: {mon-fri: [09-17]\nzone: UTC\n",
            "3:1",
            "the '{' at line 2, column 8 is not closed by '}'",
        ),
        ("name: x\nplans: [a, b\nzone: UTC\n", "3:5", "the '[' at line 2, column 8 is not closed"),
        # A key one space out of line.
        ("calendars:\n  berlin:\n    label: B\n   zone: UTC\n", "4:4", "expected a key here"),
        # A control character after non-ASCII text: libyaml counts bytes, not characters.
        (
            "title: Büro München Düsseldorf Köln Zürich\nzone: Europe/Berlin\x07\nplans: []\n",
            "2:20",
            "character U+0007 is not allowed",
        ),
        # U+2028 is a line break to YAML, not to an editor: the lines after it keep counting.
        ("title: 'Support\u2028desk'\nzone: UTC: bad\n", "2:10", "a ':' where no key can start"),
        ("\ufefftitle: x\nzone: UTC: bad\n", "2:10", "a ':' where no key can start"),
        ("\ufefftitle: x: y\n", "1:9", "a ':' where no key can start"),
        ("name: x\nplan: *gold\n", "2:7", "the alias *gold names no anchor"),
        ("name: x\n---\nname: y\n", "2:1", "a second document"),
    ],
)
def test_a_yaml_syntax_error_names_its_line_and_column(
    tmp_path: Path, text: str, where: str, says: str
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text, encoding="utf-8")
    [problem] = problems_of(read_yaml, path)
    assert problem.startswith(f"{path}:{where}: not valid YAML: "), problem
    assert says in problem, problem


@pytest.mark.usefixtures("loader")
def test_key_lines_after_a_yaml_only_line_break_are_an_editors(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("title: 'a\u2028b'\nname: c\nzone: 5\n", encoding="utf-8")
    _, lines = read_yaml(path)
    assert lines[("name",)] == 2
    assert lines[("zone",)] == 3


# --- 3. pydantic's checks in our words -------------------------------------------------------

CONFIG = f"""\
helpdesk = "zendesk"
helpdesk_mapping = "{ZENDESK_MAPPING}"
[zendesk]
url = "https://acme.zendesk.com"
email = "agent@example.com"
"""


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ("pol_interval = 5\n", "pol_interval", "unknown key (did you mean poll_interval?); "),
        ('poll_interval = "often"\n', "poll_interval", "expected a whole number, got 'often'"),
        ("poll_interval = 1.5\n", "poll_interval", "expected a whole number, got 1.5"),
        ("poll_interval = 0\n", "poll_interval", "expected at least 1, got 0"),
        (
            'start = "2026-11-24T09:00:00"\n',
            "start",
            "timestamp without a timezone: expected a date-time with its UTC offset, "
            "e.g. 2026-11-24T09:00:00+01:00, got '2026-11-24T09:00:00'",
        ),
        (
            'start = "yesterday"\n',
            "start",
            "expected a date-time with its UTC offset, e.g. 2026-11-24T09:00:00+01:00, "
            "got 'yesterday'",
        ),
        ("mappings = 5\n", "mappings", "expected a path, got 5"),
        ("metrics = 5\n", "metrics", "expected keys and values, got 5"),
        # Below: keys of the [zendesk] table CONFIG ends with, or tables after it.
        ('batch_writes = "perhaps"\n', "zendesk.batch_writes", "expected true or false, got"),
        ('auth = "password"\n', "zendesk.auth", "expected one of: 'api_token', 'oauth'; got"),
        ("update_share = 0\n", "zendesk.update_share", "expected more than 0, got 0"),
        ('[log]\nformat = "xml"\n', "log.format", "expected one of: 'auto', 'json', 'console'; "),
        ("[freshdesk]\nbudget_share = 2\n", "freshdesk.budget_share", "expected at most 1, got 2"),
        ('[freshdesk]\nplan = "gold"\n', "freshdesk.plan", "'enterprise'; got 'gold'"),
    ],
)
def test_a_configuration_file_problem_in_our_words(
    tmp_path: Path, text: str, key: str, message: str
) -> None:
    path = tmp_path / "config.toml"
    top_level = "." not in key and not text.startswith("[")
    path.write_text(text + CONFIG if top_level else CONFIG + text, encoding="utf-8")
    [problem] = problems_of(load_settings, path)
    assert problem.startswith(f"{path}: {key}: "), problem
    assert message in problem, problem
    assert not any(words in problem for words in PYDANTIC_WORDING), problem


def test_an_unknown_key_lists_the_keys_of_its_table(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG + "batch = false\n", encoding="utf-8")
    assert problems_of(load_settings, path) == [
        f"{path}: zendesk.batch: unknown key (did you mean batch_writes?); the keys here are: "
        "auth, batch_writes, client_id, email, update_share, url"
    ]


CONTRACT = (MAPPINGS / "contracts" / "photoprism.yaml").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "zone: Europe/Berlin\n",
            "time_zone: Europe/Berlin\n",
            ":5: time_zone: unknown key (did you mean zone?); the keys here are: "
            "calendar_choice, calendars, default_plan, default_severity, escalations, name, "
            "plans, priority, quotas, risk_threshold, scope, seed, severities, tags, targets, "
            "title, warnings, zone",
        ),
        ("title: ", "titel: ", ":3: titel: unknown key (did you mean title?)"),
        ("risk_threshold: 0.75", "risk_threshold: high", "expected a number, got 'high'"),
        ("priority: urgent", "priority: panic", "'normal', 'high', 'urgent'; got 'panic'"),
        ("[first_agent_reply_at]", "[coffee_at]", "'delivered_at'; got 'coffee_at'"),
        ("plans: [", "plans: {a: 1}\nx: [", "plans: expected a list, got keys and values"),
    ],
)
def test_a_contract_file_problem_in_our_words(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    assert old in CONTRACT
    path = tmp_path / "photoprism.yaml"
    path.write_text(CONTRACT.replace(old, new, 1), encoding="utf-8")
    found = problems_of(load_contract, path)
    assert any(expected in problem for problem in found), found
    assert not any(words in p for p in found for words in PYDANTIC_WORDING), found


MAPPING = ZENDESK_MAPPING.read_text(encoding="utf-8")


def test_a_unions_members_are_one_problem_at_the_files_key(tmp_path: Path) -> None:
    old = "images: {ticket_field: 9100005}"
    assert old in MAPPING
    path = tmp_path / "zendesk.yaml"
    path.write_text(MAPPING.replace(old, "images: {ticket_field: [9100005]}"), "utf-8")
    [problem] = problems_of(load_helpdesk_mapping, path)
    line = MAPPING[: MAPPING.index(old)].count("\n") + 1
    assert problem == (
        f"{path}:{line}: facts.quantities.images.ticket_field: expected a whole number or "
        "text, got a list of 1"
    )


def test_an_unknown_key_of_a_mapping_lists_the_source_keys(tmp_path: Path) -> None:
    old = "images: {ticket_field: 9100005}"
    path = tmp_path / "zendesk.yaml"
    path.write_text(MAPPING.replace(old, "images: {ticket_feild: 9100005}"), "utf-8")
    found = problems_of(load_helpdesk_mapping, path)
    assert any(
        "facts.quantities.images.ticket_feild: unknown key (did you mean ticket_field?); "
        "the keys here are: company, company_field, default, " in problem
        for problem in found
    ), found


def test_a_missing_helpdesk_mapping_says_to_copy_the_example(tmp_path: Path) -> None:
    (tmp_path / "zendesk.example.yaml").write_text(MAPPING, encoding="utf-8")
    path = tmp_path / "zendesk.yaml"
    assert problems_of(load_helpdesk_mapping, path) == [
        f"{path}: no such file: name your mapping file with helpdesk_mapping in the "
        f"configuration (start from {tmp_path / 'zendesk.example.yaml'}, with your field ids "
        "put in)"
    ]
    assert problems_of(load_helpdesk_mapping, tmp_path / "other.yaml") == [
        f"{tmp_path / 'other.yaml'}: no such file"
    ]


def test_simulate_lines_are_in_our_words(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ticket = {
        "id": "7",
        "created_at": "2026-03-02T08:15:00",
        "contract": "photoprism",
        "quantities": {"images": "many"},
        "colour": "red",
    }
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(ticket) + "\n{not json\n", encoding="utf-8")
    argv = ["sla", "simulate", str(source), "--mappings", str(MAPPINGS)]
    assert main([*argv, "--now", "2026-03-06T16:00:00Z"]) == 2
    _, err = capsys.readouterr()
    first, second = err.splitlines()
    assert first == (
        f"sla-connector: error: {source}:1 (ticket 7): created_at: timestamp without a "
        "timezone: expected a date-time with its UTC offset, e.g. 2026-11-24T09:00:00+01:00, "
        "got '2026-03-02T08:15:00'; quantities.images: expected a whole number, got 'many'; "
        "colour: unknown key; the keys here are: category, contract, created_at, customer, "
        "customer_facts, events, flags, id, plan, product, quantities, region, severity, "
        "severity_override, status, status_history"
    )
    assert second.startswith(f"sla-connector: error: {source}:2: line: not valid JSON (")


# --- 4. backfill --since in the future --------------------------------------------------------


def service_config(tmp_path: Path, url: str, mapping: Path = ZENDESK_MAPPING) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'helpdesk = "zendesk"\nhelpdesk_mapping = "{mapping}"\n'
        f'state_dir = "{tmp_path / "state"}"\n'
        f'[zendesk]\nurl = "{url}"\nemail = "agent@example.com"\n',
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize(
    "since", ["2030-01-01", (datetime.now(UTC) + timedelta(hours=1)).isoformat()]
)
def test_backfill_refuses_a_since_in_the_future(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], since: str
) -> None:
    config = service_config(tmp_path, "http://127.0.0.1:9")
    assert main(["backfill", "--config", str(config), "--since", since]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert one_error_line(err) == (
        f"--since {since}: in the future; a backfill covers tickets updated before now"
    )
    assert not (tmp_path / "state").exists()


def test_backfill_takes_an_until_in_the_future(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A mapping that is not there stops it right after the argument checks: they passed.
    config = service_config(tmp_path, "http://127.0.0.1:9", tmp_path / "missing.yaml")
    argv = ["backfill", "--config", str(config), "--since", "2020-01-01", "--until", "2030-01-01"]
    assert main(argv) == 2
    assert one_error_line(capsys.readouterr().err) == f"{tmp_path / 'missing.yaml'}: no such file"


# --- 5. a refused connection ------------------------------------------------------------------


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound a moment ago, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_a_refused_connection_warns_once_at_the_first_retry(closed_port: int) -> None:
    stream = io.StringIO()
    logs.configure(format="json", level="info", stream=stream)
    time = FakeTime()
    shell = HttpShell(httpx.Client(), sleep=time.sleep, clock=time.clock)
    url = f"http://127.0.0.1:{closed_port}/api/v2/tickets.json"
    with pytest.raises(NotAvailable) as raised:
        shell.send(Request("GET", url), lambda response: response)
    assert len(time.sleeps) == RetryPolicy().attempts - 1  # the retries are kept
    refused = f"cannot connect to 127.0.0.1:{closed_port}: connection refused"
    assert str(raised.value) == f"GET {url}: {refused}"
    [line] = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert line["level"] == "warning"
    assert line["event"] == "helpdesk_unreachable"
    assert line["detail"] == f"{refused}; trying again up to 5 more times within 16 s"


def test_without_logging_set_up_the_shell_writes_nothing(
    closed_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    time = FakeTime()
    shell = HttpShell(httpx.Client(), sleep=time.sleep, clock=time.clock)
    with pytest.raises(NotAvailable):
        shell.send(Request("GET", f"http://127.0.0.1:{closed_port}/"), lambda r: r)
    assert capsys.readouterr() == ("", "")


def test_check_says_cannot_connect_in_one_line(
    tmp_path: Path,
    closed_port: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(HttpShell, "_backoff", lambda self, attempt: 0.0)
    monkeypatch.setenv("SLA_CONNECTOR_ZENDESK_API_TOKEN", "not-a-real-token")
    url = f"http://127.0.0.1:{closed_port}"
    assert main(["check", "--config", str(service_config(tmp_path, url))]) == 1
    out, err = capsys.readouterr()
    # The retries are said as they begin, one warning on stderr (not seconds of silence).
    [warning] = [json.loads(line) for line in err.splitlines()]
    assert warning["event"] == "helpdesk_unreachable"
    assert warning["detail"].startswith(f"cannot connect to 127.0.0.1:{closed_port}: connection")
    [failure] = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert failure.startswith(f"FAIL  {url} unreachable: GET {url}/api/v2/")
    assert failure.endswith(f": cannot connect to 127.0.0.1:{closed_port}: connection refused")
