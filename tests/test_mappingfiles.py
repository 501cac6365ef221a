"""Contract files: the bundled ones load; broken ones fail with one line per problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.errors import ConfigError
from connector.mappingfiles import load_contract, load_contracts
from tests.conftest import MAPPINGS

GOOD = """\
name: acme
title: ACME support
zone: Europe/Berlin
calendars:
  office:
    zone: Europe/Berlin
    hours: {mon-fri: ["09:00-17:00"]}
    holidays: {country: DE, subdivision: BY}
calendar_choice: {by: fixed, calendar: office}
severities:
  p1: {priority: urgent}
  p2: {priority: high}
targets:
  first_response:
    achieved_by: [first_agent_reply_at]
    by_severity: {p1: 4 hours, p2: 8 business_hours}
"""


def write(tmp_path: Path, text: str, name: str = "acme") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_contract(write(tmp_path, text))
    lines = str(caught.value).splitlines()
    assert len(lines) == len(caught.value.problems)
    return lines


def test_the_five_bundled_contracts_load() -> None:
    contracts = load_contracts(MAPPINGS)
    assert sorted(contracts) == [
        "photoprism",
        "pix4d-premium",
        "pix4dengine-enterprise",
        "pixelz",
        "solidxperts",
    ]


def test_a_good_file_loads(tmp_path: Path) -> None:
    assert load_contract(write(tmp_path, GOOD)).name == "acme"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("zone: Europe/Berlin\ncal", "zone: Europe/Bonn\ncal", "acme.yaml:3: zone: unknown IANA"),
        ("    zone: Europe/Berlin", "    zone: Mars/Olympus", "acme.yaml:6: calendars.office.zone"),
        ("country: DE,", "country: XX,", "calendars.office.holidays.country: unknown holiday"),
        ("subdivision: BY", "subdivision: ZZ", "unknown subdivision 'ZZ' of DE"),
        ('"09:00-17:00"', '"17:00-09:00"', "acme.yaml:7: calendars.office.hours: interval"),
        ("calendar: office}", "calendar: home}", "calendar_choice.calendar: unknown calendar"),
        ("p1: 4 hours", "p1: 4 fortnights", "acme.yaml:16: targets.first_response.by_severity.p1"),
        ("p1: 4 hours, ", "", "targets.first_response.by_severity: missing p1"),
        ("p2: 8 business", "p3: 8 business", "by_severity.p3: not one of the contract's severit"),
        (
            "title: ACME support\n",
            "title: ACME support\ncolour: red\n",
            "acme.yaml:3: colour: unkn",
        ),
        (
            "[first_agent_reply_at]",
            "[coffee_at]",
            "achieved_by.0: expected one of: 'first_agent_reply_at', 'workaround_at'",
        ),
        ("priority: urgent", "priority: panic", "acme.yaml:11: severities.p1.priority"),
        ("name: acme", "name: other", "name: is 'other' but the file is named 'acme.yaml'"),
    ],
)
def test_each_problem_names_file_key_and_line(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    assert old in GOOD
    lines = problems(tmp_path, GOOD.replace(old, new, 1))
    assert any(expected in line for line in lines), lines


@pytest.mark.parametrize(
    ("edits", "count"),
    [
        # Two problems of shape...
        ({"p1: 4 hours": "p1: soon", "priority: high": "priority: meh"}, 2),
        # ...or two of meaning (checked once the shape is right).
        ({"zone: Europe/Berlin\n    hours": "zone: Nowhere\n    hours", "office}": "home}"}, 2),
    ],
)
def test_several_problems_are_all_reported(
    tmp_path: Path, edits: dict[str, str], count: int
) -> None:
    text = GOOD
    for old, new in edits.items():
        assert old in text
        text = text.replace(old, new)
    lines = problems(tmp_path, text)
    assert len(lines) == count
    assert all(line.startswith(str(tmp_path / "acme.yaml")) for line in lines)


def test_unknown_holiday_name_in_a_named_subset(tmp_path: Path) -> None:
    text = GOOD.replace("{country: DE, subdivision: BY}", '{country: US, only: ["Pi Day"]}')
    (line,) = problems(tmp_path, text)
    assert "holidays.only.0: no holiday named 'Pi Day' in US" in line


def test_business_days_need_equal_days(tmp_path: Path) -> None:
    text = GOOD.replace(
        '{mon-fri: ["09:00-17:00"]}', '{mon-thu: ["09:00-17:00"], fri: ["09:00-12:00"]}'
    )
    text = text.replace("p2: 8 business_hours", "p2: 2 business_days")
    (line,) = problems(tmp_path, text)
    assert "targets.first_response: business_days needs calendars" in line


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    (line,) = problems(tmp_path, GOOD.replace("severities:", "severities: [\n"))
    assert line.startswith(f"{tmp_path / 'acme.yaml'}:")
    assert "not valid YAML" in line


def test_not_a_mapping(tmp_path: Path) -> None:
    (line,) = problems(tmp_path, "- just\n- a list\n")
    assert "acme.yaml:1:" in line


def test_folder_problems_are_collected(tmp_path: Path) -> None:
    (tmp_path / "contracts").mkdir()
    write(tmp_path / "contracts", GOOD)
    write(
        tmp_path / "contracts",
        GOOD.replace("name: acme", "name: b")
        .replace("Europe/Bonn", "x")
        .replace("p1: 4 hours", "p1: never"),
        name="b",
    )
    with pytest.raises(ConfigError) as caught:
        load_contracts(tmp_path)
    assert [p.file for p in caught.value.problems] == [str(tmp_path / "contracts" / "b.yaml")]


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such folder"):
        load_contracts(tmp_path)
