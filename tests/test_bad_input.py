"""Bad input never ends in a traceback, a hang or a half-applied write (issue 6, item 3).

Three sources of bad input, each driven through the real code:

- a corpus of broken mapping files (`tests/data/bad_mappings/`, described by its `cases.yaml`):
  each stops `sla simulate`, `check --offline` and `sync --once` with exit status 2 and one
  line naming the file, the key path and the line, before anything is written;
- hypothesis mutations of the real mapping files: the loader either loads the file (and the
  engine and fact reader then run on it without error) or raises `ConfigError`, one line per
  problem, each naming the file;
- hypothesis mutations of the recorded Zendesk and Freshdesk payloads: each decoder returns its
  value or raises `MalformedResponse`; decoded tickets become facts or `UnmappedTicket`, then
  decisions and writes. End to end, a ticket whose custom fields are nonsense gets the
  `sla_unmapped` tag and no SLA result (no due, no priority, no tag taken away), while the
  tickets beside it on the page are written exactly as they would be without it.

Figures (for the report): 90 corpus cases (+3 generated: a 2 MB file, one over the size limit,
100,000 levels of nesting); the fuzz tests run `MAX_EXAMPLES` examples each by default.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest
import structlog
import yaml
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from connector.app import load_rules, open_helpdesk
from connector.cli import main
from connector.cli.demo import demo_settings, sandbox_secrets
from connector.errors import ConfigError, MalformedResponse, UnmappedTicket, ValidationFailed
from connector.helpdesks.adapter import Item, Plan
from connector.helpdesks.freshdesk import sansio as freshdesk_sansio
from connector.helpdesks.freshdesk.mapping import FreshdeskView
from connector.helpdesks.freshdesk.mapping import writes_for as freshdesk_writes_for
from connector.helpdesks.freshdesk.models import COMPANY_LIST as FRESHDESK_COMPANIES
from connector.helpdesks.freshdesk.models import TICKET_LIST as FRESHDESK_TICKETS
from connector.helpdesks.freshdesk.models import Company as FreshdeskCompany
from connector.helpdesks.freshdesk.models import Ticket as FreshdeskTicket
from connector.helpdesks.freshdesk.sansio import PollPosition, TicketPoller
from connector.helpdesks.mapping import (
    DesiredResults,
    HelpdeskMapping,
    desired_results,
    read_facts,
)
from connector.helpdesks.zendesk import sansio as zendesk_sansio
from connector.helpdesks.zendesk.mapping import ZendeskView
from connector.helpdesks.zendesk.mapping import update_for as zendesk_update_for
from connector.helpdesks.zendesk.models import Ticket as ZendeskTicket
from connector.helpdesks.zendesk.models import TicketPage
from connector.http import Request, Response
from connector.mappingfiles import load_contract, load_helpdesk_mapping
from connector.sandbox import FRESHDESK_URL, ZENDESK_URL, ManualClock, Sandbox
from connector.service.sync import Sync, Totals
from connector.sla.contract import Contract
from connector.sla.engine import decide_each, decide_with
from connector.sla.model import TicketFacts
from connector.state import State
from tests.conftest import MAPPINGS, ROOT, forget_admin_settings, logging_restored

pytestmark = pytest.mark.reliability

CORPUS = ROOT / "tests" / "data" / "bad_mappings"
EXAMPLES = MAPPINGS / "examples" / "tickets.jsonl"
NOW = "2026-03-06T16:00:00Z"
# Nothing listens there: a command that reached the helpdesk would fail differently.
NOWHERE = "http://127.0.0.1:9"
START = datetime(2026, 3, 6, 15, 0, tzinfo=UTC)  # a Friday afternoon
# What the sync asks of a ticket it cannot map: the unmapped tag, and nothing else.
UNMAPPED_RESULTS = DesiredResults(
    due=(),
    priority=None,
    tags=("sla_unmapped",),
    owned_tags=frozenset(),
    note=None,
    note_fingerprint=None,
)


@dataclass(frozen=True)
class Case:
    """One broken file of the corpus and the error line it must give."""

    file: str  # relative to CORPUS: contracts/NAME.yaml or helpdesks/NAME.yaml
    why: str
    key: str
    line: int | None
    says: str
    config: str = "zendesk"
    column: int | None = None  # YAML syntax errors name the column too

    @property
    def is_contract(self) -> bool:
        return self.file.startswith("contracts/")

    def where(self, path: Path) -> str:
        """What the error line must start its text with: file, line, key path."""
        place = f"{path}:{self.line}" if self.line is not None else f"{path}"
        place += f":{self.column}" if self.column is not None else ""
        return f"{place}: {self.key}: " if self.key else f"{place}: "


def corpus() -> list[Case]:
    """The cases of `cases.yaml`."""
    entries = yaml.safe_load((CORPUS / "cases.yaml").read_text(encoding="utf-8"))
    return [Case(file=name, **entry) for name, entry in entries.items()]


CASES = corpus()
CONTRACT_CASES = [case for case in CASES if case.is_contract]


@dataclass(frozen=True)
class Workspace:
    """A mappings folder and a configuration holding one broken file."""

    broken: Path
    config: Path
    state_dir: Path


def workspace(case: Case, tmp_path: Path) -> Workspace:
    """The broken file where the loader looks for it, and a configuration pointing there."""
    source = CORPUS / case.file
    if case.is_contract:
        mappings = tmp_path / "mappings"
        (mappings / "contracts").mkdir(parents=True)
        broken = mappings / "contracts" / source.name
        helpdesk_mapping = MAPPINGS / "helpdesks" / "zendesk.example.yaml"
    else:
        mappings = MAPPINGS
        broken = tmp_path / source.name
        helpdesk_mapping = broken
    broken.write_bytes(source.read_bytes())
    state_dir = tmp_path / "state"
    values = {
        "helpdesk": case.config,
        "mappings": str(mappings),
        "helpdesk_mapping": str(helpdesk_mapping),
        "state_dir": str(state_dir),
    }
    lines = [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    lines += [f"[{case.config}]", f"url = {json.dumps(NOWHERE)}"]
    if case.config == "zendesk":
        lines.append('email = "agent@example.com"')
    config = tmp_path / "config.toml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Workspace(broken, config, state_dir)


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No administrator settings or secrets leak in; logging is put back after each command."""
    forget_admin_settings(monkeypatch)
    with logging_restored():
        yield


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """`sla-connector ARGV` in process: exit status, stdout, stderr."""
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def the_one_error_line(stderr: str) -> str:
    """The single `sla-connector: error:` line of stderr (fails on anything else)."""
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    prefix = "sla-connector: error: "
    assert lines[0].startswith(prefix), stderr
    return lines[0].removeprefix(prefix)


def assert_names_the_place(line: str, case: Case, path: Path) -> None:
    assert line.startswith(case.where(path)), (line, case.where(path))
    assert case.says in line, line


# --- the corpus ------------------------------------------------------------------------------


def test_every_corpus_file_is_described_and_every_case_has_its_file() -> None:
    files = {
        str(path.relative_to(CORPUS))
        for path in CORPUS.rglob("*.yaml")
        if path.name != "cases.yaml"
    }
    assert files == {case.file for case in CASES}
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", CONTRACT_CASES, ids=lambda case: case.file)
def test_a_broken_contract_stops_sla_simulate_with_one_line(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = workspace(case, tmp_path)
    mappings = space.broken.parent.parent
    status, out, err = run(
        capsys, "sla", "simulate", str(EXAMPLES), "--mappings", str(mappings), "--now", NOW
    )
    assert (status, out) == (2, "")
    assert_names_the_place(the_one_error_line(err), case, space.broken)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.file)
def test_a_broken_file_fails_check_offline_with_one_problem_line(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = workspace(case, tmp_path)
    status, out, err = run(capsys, "check", "--offline", "--config", str(space.config))
    assert (status, err) == (2, "")
    assert "Traceback" not in out
    lines = out.splitlines()
    assert lines[0] == f"ok    configuration {space.config} ({case.config})"
    assert lines[1] == "FAIL  mappings"
    [problem] = lines[2:]
    assert_names_the_place(problem.strip(), case, space.broken)
    # It stopped before the state: nothing was created, let alone written.
    assert not space.state_dir.exists()


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.file)
def test_a_broken_file_stops_sync_before_the_helpdesk_and_the_state(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = workspace(case, tmp_path)
    status, out, err = run(capsys, "sync", "--once", "--config", str(space.config))
    assert (status, out) == (2, "")
    # Had it gone on, the helpdesk at NOWHERE (or the missing secret) would have said so.
    assert_names_the_place(the_one_error_line(err), case, space.broken)
    assert not space.state_dir.exists()


SUBPROCESS_CASES = [
    "contracts/yaml_tab_indentation.yaml",
    "contracts/duplicate_top_level_key.yaml",
    "contracts/binary_garbage.yaml",
    "contracts/billion_laughs.yaml",
    "helpdesks/helpdesk_due_written_twice.yaml",
]


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_the_installed_entry_point_gives_the_same_single_line(name: str, tmp_path: Path) -> None:
    [case] = [case for case in CASES if case.file == name]
    space = workspace(case, tmp_path)
    if case.is_contract:
        argv = ["sla", "simulate", str(EXAMPLES), "--mappings", str(space.broken.parent.parent)]
    else:
        argv = ["sync", "--once", "--config", str(space.config)]
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith("SLA_CONNECTOR_")
        and k not in ("CREDENTIALS_DIRECTORY", "STATE_DIRECTORY")
    }
    result = subprocess.run(
        [sys.executable, "-m", "connector", *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
        check=False,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert_names_the_place(the_one_error_line(result.stderr), case, space.broken)


# --- generated files: too big to keep in the corpus ------------------------------------------


def contract_folder(tmp_path: Path, name: str, text: str | bytes) -> Path:
    """A mappings folder whose only contract is `name`.yaml holding `text`."""
    folder = tmp_path / "mappings" / "contracts"
    folder.mkdir(parents=True)
    path = folder / f"{name}.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def simulate_error(capsys: pytest.CaptureFixture[str], path: Path) -> str:
    status, out, err = run(
        capsys, "sla", "simulate", str(EXAMPLES), "--mappings", str(path.parent.parent)
    )
    assert (status, out) == (2, "")
    return the_one_error_line(err)


def test_a_huge_file_is_read_to_its_one_bad_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 2 MB: a photoprism contract closed on 100,000 listed days, the last of which does not
    # exist. The error still names the key path and the line, 100,000 lines down.
    text = (MAPPINGS / "contracts" / "photoprism.yaml").read_text(encoding="utf-8")
    old = "holidays: {country: DE, subdivision: BE}"
    assert old in text
    first = date(2026, 1, 1)
    days = "".join(f"        - {first + timedelta(days=i % 300)}\n" for i in range(100_000))
    closed = f"holidays:\n      country: DE\n      closed:\n{days}        - 2026-02-30"
    text = text.replace(old, closed)
    path = contract_folder(tmp_path, "photoprism", text)
    assert path.stat().st_size > 2_000_000
    line = text.splitlines().index("        - 2026-02-30") + 1
    error = simulate_error(capsys, path)
    assert error.startswith(
        f"{path}:{line}: calendars.berlin.holidays.closed.100000: not a valid timestamp"
    )


def test_a_file_over_the_size_limit_is_refused_unread(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = contract_folder(tmp_path, "photoprism", b"")
    with path.open("wb") as out:  # sparse: no 9 MB written for real
        out.truncate(9 * 1024 * 1024)
    error = simulate_error(capsys, path)
    assert error.startswith(f"{path}: is 9,437,184 bytes: a mapping file may be")


def test_nesting_deeper_than_the_parser_can_follow(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    depth = 100_000
    text = "name: photoprism\nx: " + "[" * depth + "]" * depth
    path = contract_folder(tmp_path, "photoprism", text)
    error = simulate_error(capsys, path)
    assert error == f"{path}:2: nested more than 32 levels deep"


# --- hypothesis: mutations of the real mapping files -----------------------------------------

# Examples per fuzz test; BAD_INPUT_EXAMPLES=2000 for a long run by hand.
MAX_EXAMPLES = int(os.environ.get("BAD_INPUT_EXAMPLES", "25"))
FUZZ = settings(max_examples=MAX_EXAMPLES, deadline=None)

REAL_FILES = [
    *sorted((MAPPINGS / "contracts").glob("*.yaml")),
    ROOT / "tests" / "data" / "contracts" / "acme-msp.yaml",
    *sorted((MAPPINGS / "helpdesks").glob("*.yaml")),
]
# Values that are wrong in interesting ways: types, ranges, and words the files do use.
NASTY_TEXT = [
    "", " ", "\n", "\x00", "\u2028", "é", "😀", "a" * 3000, "9" * 3000, "-1", "NaN", "null",
    "2026-02-30T00:00:00Z", "2026-03-02T08:00:00", "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-12:00", "2999-01-01T00:00:00Z", "1900-01-01T00:00:00Z", "2026-03-02",
    "sev1", "gold", "urgent", "customer", "Europe/Nowhere", "UTC", "24:00-09:00",
    "00:00-24:00", "mon-sun", "fri 24:00", "99999999 hours", "1e6 business_days",
    "0.0000001 hours", "100000 business_days", "next_day_at 24:00", "{contract!r}", "{0}",
    "{contract:>999999999999}", "severity_sev1", "category_order", "cf_x", "first_response",
]  # fmt: skip
NASTY = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 2**31, 2**63, 10**30, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(NASTY_TEXT),
    st.lists(st.one_of(st.integers(), st.text(max_size=5)), max_size=3),
    st.dictionaries(st.text(max_size=5), st.one_of(st.none(), st.integers()), max_size=3),
)
Path_ = tuple[str | int, ...]


def places(value: Any, path: Path_ = ()) -> list[Path_]:
    """The path of every node of a parsed document, the root first."""
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += places(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += places(item, (*path, index))
    return found


def node_at(root: Any, path: Path_) -> Any:
    for part in path:
        root = root[part]
    return root


# Like-for-like replacements reach further than random ones: a duration that parses but is
# absurd, an instant that parses but is out of range, office hours that overlap.
_DURATION = re.compile(r"^\s*\d+(\.\d+)?\s+(business_hours|business_days|hours)\s*$")
_INSTANT = re.compile(r"^\d{4}-\d\d-\d\dT")
_INTERVAL = re.compile(r"^\d\d:\d\d-\d\d:\d\d$")
AMOUNTS = st.one_of(
    st.integers(0, 10**12), st.floats(0, 1e12, allow_subnormal=False), st.sampled_from([0.0001])
)
INSTANTS = st.one_of(
    st.builds(
        lambda moment, minutes: moment.replace(
            tzinfo=timezone(timedelta(minutes=minutes))
        ).isoformat(),
        st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),  # noqa: DTZ001
        st.integers(-(24 * 60 - 1), 24 * 60 - 1),
    ),
    st.sampled_from([t for t in NASTY_TEXT if t[:2].isdigit()]),
)
CLOCK = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 25), st.integers(0, 61))


def similar(value: Any) -> st.SearchStrategy[Any]:
    """A value of the same kind as `value`, at the edges of that kind."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.one_of(st.integers(-(10**6), 10**6), st.sampled_from([2**63, 10**18, 10**400]))
    if isinstance(value, float):
        return st.floats(allow_nan=True, allow_infinity=True)
    if isinstance(value, date):
        return st.dates()
    if isinstance(value, str) and _DURATION.match(value):
        units = st.sampled_from(["business_hours", "business_days", "hours"])
        return st.builds(lambda amount, unit: f"{amount} {unit}", AMOUNTS, units)
    if isinstance(value, str) and _INSTANT.match(value):
        return INSTANTS
    if isinstance(value, str) and _INTERVAL.match(value):
        return st.builds(lambda a, b: f"{a}-{b}", CLOCK, CLOCK)
    return NASTY


OPERATIONS = [
    "drop",
    "replace",
    "similar",
    "similar",
    "similar",
    "swap",
    "wrap",
    "unknown_key",
    "null",
]


@st.composite
def mutated(draw: st.DrawFn, original: Any, focus: frozenset[str] = frozenset()) -> Any:
    """`original` (JSON-like) with one to three structural changes.

    Three changes in four are made at a key named in `focus` (the attributes a model reads),
    the key drawn first, so that a large payload is not mostly changed where nothing looks
    and a rare key (`created_at`) is hit as often as a frequent one (`id`).
    """
    data = copy.deepcopy(original)
    for _ in range(draw(st.integers(1, 3))):
        everywhere = places(data)
        focused = [p for p in everywhere if p and p[-1] in focus]
        if focused and draw(st.integers(0, 3)):
            key = draw(st.sampled_from(sorted({str(p[-1]) for p in focused})))
            path = draw(st.sampled_from([p for p in focused if p[-1] == key]))
        else:
            path = draw(st.sampled_from(everywhere))
        operation = draw(st.sampled_from(OPERATIONS))
        current = node_at(data, path)
        if operation == "swap":
            new: Any = copy.deepcopy(node_at(data, draw(st.sampled_from(everywhere))))
        elif operation == "wrap":
            new = draw(st.sampled_from([[current], {"value": current}]))
        elif operation == "null":
            new = None
        elif operation == "similar":
            new = draw(similar(current))
        else:
            new = draw(NASTY)
        if operation == "unknown_key" and isinstance(current, dict):
            current[draw(st.text(max_size=12))] = new
        elif not path:
            data = data if operation == "drop" else new
        elif operation == "drop":
            del node_at(data, path[:-1])[path[-1]]
        else:
            node_at(data, path[:-1])[path[-1]] = new
    return data


TEXT_OPERATIONS = ["truncate", "flip", "double_line", "drop_line", "bytes", "tag"]


@st.composite
def mutated_text(draw: st.DrawFn, original: str) -> bytes:
    """`original` cut, characters flipped, lines doubled or dropped, bytes or a YAML tag added."""
    text = original.encode("utf-8")
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        operation = draw(st.sampled_from(TEXT_OPERATIONS))
        if operation == "tag":
            # An explicit YAML tag in front of a value: `title: !!timestamp PhotoPrism`.
            values = [i + 2 for i in range(len(text)) if text.startswith(b": ", i)]
            if values:
                at = draw(st.sampled_from(values))
                tag = draw(st.sampled_from(["!!int", "!!float", "!!bool", "!!timestamp"]))
                text = text[:at] + tag.encode() + b" " + text[at:]
        elif operation == "truncate":
            text = text[:at]
        elif operation == "flip" and text:
            at = min(at, len(text) - 1)
            flipped = draw(st.sampled_from(list(":-[]{}'\"&*!#|>\t\n ,?%@`")) | st.characters())
            text = text[:at] + flipped.encode("utf-8", "surrogatepass") + text[at + 1 :]
        elif operation in ("double_line", "drop_line"):
            lines = text.splitlines(keepends=True)
            if lines:
                index = draw(st.integers(0, len(lines) - 1))
                if operation == "double_line":
                    lines.insert(index, lines[index])
                else:
                    del lines[index]
                text = b"".join(lines)
        else:
            text = text[:at] + draw(st.binary(min_size=1, max_size=8)) + text[at:]
    return text


def is_contract_file(path: Path) -> bool:
    return path.parent.name == "contracts"


# --- what the fuzz tests run a decoded payload or a loaded file through -----------------------

ZENDESK_BASE = "https://acme.zendesk.com"
FRESHDESK_BASE = "https://acme.freshdesk.com"
DECIDED_AT = datetime(2026, 3, 6, 16, tzinfo=UTC)


def ok(body: bytes, headers: dict[str, str] | None = None) -> Response:
    """A 200 answer carrying `body`."""
    request = Request("GET", f"{ZENDESK_BASE}/api/v2/x")
    return Response(200, httpx.Headers(headers or {}), body, request)


def zendesk_items(page: TicketPage) -> list[Item]:
    """A Zendesk page's tickets as the sync loop sees them."""
    return [
        Item(
            str(t.id),
            t.updated_at,
            ZendeskView(t, page.organization_for(t), page.metric_set_for(t)),
            t,
        )
        for t in page.tickets
    ]


def freshdesk_items(
    tickets: list[FreshdeskTicket], companies: dict[int, FreshdeskCompany]
) -> list[Item]:
    """Freshdesk tickets as the sync loop sees them."""
    return [
        Item(str(t.id), t.updated_at, FreshdeskView(t, companies.get(t.company_id or 0)), t)
        for t in tickets
    ]


def poll_page(response: Response) -> list[FreshdeskTicket]:
    """One page through the Freshdesk poller, and the next request and position it gives."""
    poller = TicketPoller(datetime(2015, 1, 1, tzinfo=UTC))
    tickets = poller.feed(response)
    poller.next_request(FRESHDESK_BASE)
    poller.start_round()
    poller.next_request(FRESHDESK_BASE)
    PollPosition.model_validate_json(poller.position.model_dump_json())
    return tickets


def send_plan(item: Item, desired: DesiredResults) -> None:
    """Decide the write and build its requests, as the adapters do before sending."""
    if isinstance(item.ticket, ZendeskTicket):
        update = zendesk_update_for(item.ticket, desired, posted_note=None)
        if update is not None:
            zendesk_sansio.update_request(ZENDESK_BASE, item.ticket.id, update, item.updated_at)
        return
    try:
        writes = freshdesk_writes_for(item.ticket, desired, posted_note=None)
        if writes.update is not None:
            freshdesk_sansio.update_request(FRESHDESK_BASE, item.ticket.id, writes.update)
    except ValidationFailed:
        return  # refused before sending: the sync reports it for this ticket alone
    if writes.note is not None:
        freshdesk_sansio.note_request(FRESHDESK_BASE, item.ticket.id, writes.note)


def decide_and_plan(
    items: list[Item], mapping: HelpdeskMapping, contracts: dict[str, Contract]
) -> None:
    """Facts (or unmapped), decision and write of each ticket, as the sync makes them."""
    owned = frozenset().union(*(c.owned_tags for c in contracts.values()))
    for item in items:
        try:
            facts = read_facts(item.view, mapping)
        except UnmappedTicket:
            send_plan(item, UNMAPPED_RESULTS)
            continue
        decision = decide_with(contracts, facts, DECIDED_AT)
        contract = contracts.get(facts.contract)
        send_plan(item, desired_results(decision, mapping, owned, contract))


def sandbox_pages() -> dict[str, Any]:
    """A few seeded sandbox tickets of every contract, as each helpdesk's API sends them.

    Unlike the recorded payloads, these carry the fields the example mappings read, so that
    a mutation reaches the fact reader and the engine, not only the decoder.
    """
    sandbox = Sandbox.seeded(clock=ManualClock(START), anchor=START)
    zendesk, freshdesk = sandbox.zendesk, sandbox.freshdesk
    chosen = [ticket_id for ticket_id in sorted(zendesk.tickets) if ticket_id % 1000 <= 2]
    tickets = [zendesk.tickets[i] for i in chosen]
    organizations = sorted({t.organization_id for t in tickets if t.organization_id})
    return {
        "zendesk": {
            "tickets": [zendesk.render_ticket(t, ZENDESK_BASE) for t in tickets],
            "organizations": [
                zendesk.render_organization(zendesk.organizations[i], ZENDESK_BASE)
                for i in organizations
            ],
            "metric_sets": [zendesk.render_metric_set(t, ZENDESK_BASE) for t in tickets],
            "end_of_stream": True,
            "after_cursor": "MTU3NjYxMzUzOS4wfHw0Njd8",
        },
        "freshdesk": [freshdesk.render_ticket(freshdesk.tickets[i], {"stats"}) for i in chosen],
        "companies": [freshdesk.render_company(c) for c in freshdesk.companies.values()],
    }


class World:
    """What the fuzz tests run things against, built once (and short in hypothesis reports)."""

    def __init__(self, scratch: Path, contracts: dict[str, Contract]) -> None:
        self.scratch = scratch
        self.contracts = contracts
        self.owned = frozenset().union(*(c.owned_tags for c in contracts.values()))
        lines = EXAMPLES.read_text(encoding="utf-8").splitlines()
        self.tickets = [TicketFacts.model_validate_json(line) for line in lines if line.strip()]
        self.mappings = {
            name: load_helpdesk_mapping(MAPPINGS / "helpdesks" / f"{name}.example.yaml")
            for name in ("zendesk", "freshdesk")
        }
        self.pages = sandbox_pages()
        companies = FRESHDESK_COMPANIES.validate_json(json.dumps(self.pages["companies"]))
        self.companies = {c.id: c for c in companies}
        zendesk = zendesk_sansio.decode_export(ok(json.dumps(self.pages["zendesk"]).encode()))
        freshdesk = FRESHDESK_TICKETS.validate_json(json.dumps(self.pages["freshdesk"]))
        self.items = {
            "zendesk": zendesk_items(zendesk),
            "freshdesk": freshdesk_items(freshdesk, self.companies),
        }

    def __repr__(self) -> str:
        return "World()"

    def run_loaded(self, loaded: Contract | HelpdeskMapping) -> None:
        """Run what a loaded file drives; an exception here is a bug the loader let through."""
        if isinstance(loaded, Contract):
            # Every example ticket under this contract: the ones it fits are decided, the
            # others unmapped; none may raise.
            ours = [t.model_copy(update={"contract": loaded.name}) for t in self.tickets]
            for decision in decide_each({loaded.name: loaded}, ours, DECIDED_AT):
                assert decision.contract == loaded.name
            return
        decide_and_plan(self.items[loaded.helpdesk], loaded, self.contracts)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, contracts: dict[str, Contract]) -> World:
    return World(tmp_path_factory.mktemp("mutated"), dict(contracts))


# --- hypothesis: the mapping loader ----------------------------------------------------------


def load_or_say_where(path: Path) -> Contract | HelpdeskMapping | None:
    """The loaded file, or None once each problem has shown as one line naming the file."""
    problems: ConfigError | None = None
    try:
        if is_contract_file(path):
            return load_contract(path)
        return load_helpdesk_mapping(path)
    except ConfigError as exc:
        problems = exc
    lines = str(problems).splitlines()
    assert len(lines) == len(problems.problems) >= 1
    for line in lines:
        assert line.startswith(f"{path}:"), line
    return None


@pytest.mark.parametrize("real", REAL_FILES, ids=lambda path: path.name)
@FUZZ
@given(data=st.data())
def test_a_structurally_mutated_mapping_file_loads_or_says_where(
    real: Path, data: st.DataObject, world: World
) -> None:
    original = yaml.safe_load(real.read_text(encoding="utf-8"))
    changed = data.draw(mutated(original), label="document")
    path = world.scratch / real.name
    path.write_text(yaml.safe_dump(changed, sort_keys=False, allow_unicode=True), "utf-8")
    loaded = load_or_say_where(path)
    if loaded is not None:
        world.run_loaded(loaded)


@pytest.mark.parametrize("real", REAL_FILES, ids=lambda path: path.name)
@FUZZ
@given(data=st.data())
def test_a_textually_mutated_mapping_file_loads_or_says_where(
    real: Path, data: st.DataObject, world: World
) -> None:
    path = world.scratch / real.name
    path.write_bytes(data.draw(mutated_text(real.read_text(encoding="utf-8")), label="bytes"))
    loaded = load_or_say_where(path)
    if loaded is not None:
        world.run_loaded(loaded)


# --- hypothesis: the wire models and decoders ------------------------------------------------

FIXTURES = {
    "zendesk": ROOT / "tests" / "zendesk" / "fixtures",
    "freshdesk": ROOT / "tests" / "freshdesk" / "fixtures",
}
# The attributes the wire models read (the rest of a payload is ignored by design).
WIRE_KEYS = frozenset(
    [
        *("id", "created_at", "updated_at", "generated_timestamp", "status", "priority"),
        *("organization_id", "company_id", "requester_id", "tags", "custom_fields", "value"),
        *("organization_fields", "name", "external_id", "ticket_id", "solved_at", "calendar"),
        *("reply_time_in_minutes", "business", "stats", "first_responded_at", "resolved_at"),
        *("agent_responded_at", "closed_at", "fr_due_by", "due_by", "end_of_stream"),
        *("after_cursor", "tickets", "organizations", "metric_sets", "ticket", "key", "type"),
        *("ticket_fields", "title", "custom_field_options", "system_field_options", "body"),
        *("body_text", "private", "choices", "label", "field_type", "domains", "meta"),
        "has_more",
    ]
)


def wrap_metric(document: Any) -> Any:
    """The recorded ticket metric as the `metric_sets` sideload carries it."""
    return {"tickets": [], "metric_sets": [document["ticket_metric"]]}


def as_recorded(document: Any) -> Any:
    return document


Decoder = Callable[[Response], Any]


class Payload(NamedTuple):
    """A recorded payload, the decoder it goes to, and how it is shaped for that decoder."""

    helpdesk: str
    name: str
    decode: Decoder
    shape: Callable[[Any], Any]

    def __repr__(self) -> str:
        return f"Payload({self.name!r})"


PAYLOADS: list[tuple[str, str, Decoder, Callable[[Any], Any]]] = [
    ("zendesk", "incremental_cursor_last_page.json", zendesk_sansio.decode_export, as_recorded),
    ("zendesk", "incremental_cursor_page_more.json", zendesk_sansio.decode_export, as_recorded),
    *(
        ("zendesk", name, zendesk_sansio.decode_tickets, as_recorded)
        for name in (
            "incremental_export_with_metric_sets.json",
            "incremental_time_based_with_organizations.json",
            "ticket_with_custom_fields.json",
            "ticket_show_email_via.json",
        )
    ),
    ("zendesk", "ticket_metric_with_reply_time.json", zendesk_sansio.decode_tickets, wrap_metric),
    (
        "zendesk",
        "ticket_update_put_response_with_audit.json",
        zendesk_sansio.decode_ticket,
        as_recorded,
    ),
    ("zendesk", "organizations_list.json", zendesk_sansio.decode_organizations, as_recorded),
    ("zendesk", "ticket_fields_list.json", zendesk_sansio.decode_ticket_fields, as_recorded),
    (
        "zendesk",
        "organization_fields_list.json",
        zendesk_sansio.decode_organization_fields,
        as_recorded,
    ),
    *(
        ("freshdesk", name, poll_page, as_recorded)
        for name in (
            "tickets_list_page_1.json",
            "tickets_list_page_2.json",
            "tickets_list_docs_example_custom_field_value.json",
        )
    ),
    *(
        ("freshdesk", name, freshdesk_sansio.decode_ticket, as_recorded)
        for name in (
            "ticket_with_due_dates_stats_custom_fields.json",
            "ticket_updated_put_response.json",
        )
    ),
    ("freshdesk", "companies_list.json", freshdesk_sansio.decode_companies, as_recorded),
    ("freshdesk", "company_with_custom_fields.json", freshdesk_sansio.decode_company, as_recorded),
    ("freshdesk", "company_fields_list.json", freshdesk_sansio.decode_company_fields, as_recorded),
    ("freshdesk", "company_fields_list.json", freshdesk_sansio.decode_ticket_fields, as_recorded),
    ("freshdesk", "private_note.json", freshdesk_sansio.decode_note, as_recorded),
    ("freshdesk", "reply.json", freshdesk_sansio.decode_note, as_recorded),
    (
        "freshdesk",
        "conversations_note_and_reply.json",
        freshdesk_sansio.decode_private_notes,
        as_recorded,
    ),
]


def items_of(decoded: Any) -> list[Item]:
    """The tickets a decoder returned, as the sync loop would see them."""
    if isinstance(decoded, TicketPage):
        return zendesk_items(decoded)
    if isinstance(decoded, ZendeskTicket):
        return zendesk_items(TicketPage(tickets=(decoded,)))
    if isinstance(decoded, FreshdeskTicket):
        return freshdesk_items([decoded], {})
    if isinstance(decoded, list) and all(isinstance(t, FreshdeskTicket) for t in decoded):
        return freshdesk_items(decoded, {})
    return []


@st.composite
def mutated_body(draw: st.DrawFn, document: Any) -> bytes:
    """The payload with structural changes; one time in ten also cut or with bytes changed."""
    text = json.dumps(draw(mutated(document, WIRE_KEYS)), ensure_ascii=draw(st.booleans()))
    body = text.encode()
    if draw(st.integers(0, 9)) == 0:
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(st.binary(max_size=4)) + body[at + draw(st.integers(0, 4)) :]
    return body


def decoded_or_malformed(decode: Decoder, response: Response) -> Any:
    """What `decode` returns; None when it refused the body as malformed (and said so)."""
    refused: MalformedResponse | None = None
    try:
        return decode(response)
    except MalformedResponse as exc:
        refused = exc
    assert refused.status == 200
    assert "\n" not in str(refused)
    return None


@pytest.mark.parametrize(
    "payload",
    [Payload(*entry) for entry in PAYLOADS],
    ids=[f"{decode.__name__}-{name.removesuffix('.json')}" for _, name, decode, _ in PAYLOADS],
)
@FUZZ
@given(data=st.data())
def test_a_mutated_recorded_payload_decodes_or_is_malformed(
    payload: Payload, data: st.DataObject, world: World
) -> None:
    recorded = FIXTURES[payload.helpdesk] / payload.name
    document = payload.shape(json.loads(recorded.read_text(encoding="utf-8")))
    body = data.draw(mutated_body(document), label="body")
    link = {"link": f'<{FRESHDESK_BASE}/api/v2/tickets?page=2>; rel="next"'}
    response = ok(body, data.draw(st.sampled_from([{}, link]), label="headers"))
    decoded = decoded_or_malformed(payload.decode, response)
    if decoded is not None:
        decide_and_plan(items_of(decoded), world.mappings[payload.helpdesk], world.contracts)


@pytest.mark.parametrize("helpdesk", ["zendesk", "freshdesk"])
@FUZZ
@given(data=st.data())
def test_a_mutated_sandbox_page_is_decided_or_unmapped_ticket_by_ticket(
    helpdesk: str, data: st.DataObject, world: World
) -> None:
    body = data.draw(mutated_body(world.pages[helpdesk]), label="body")
    if helpdesk == "zendesk":
        page = decoded_or_malformed(zendesk_sansio.decode_export, ok(body))
        items = [] if page is None else zendesk_items(page)
    else:
        tickets = decoded_or_malformed(poll_page, ok(body))
        items = [] if tickets is None else freshdesk_items(tickets, world.companies)
    decide_and_plan(items, world.mappings[helpdesk], world.contracts)


# --- end to end: a ticket of nonsense among good ones, through the sync and the sandbox ------

# A pix4d-premium ticket: that contract counts no quota, so whether it is mapped changes
# nothing for any other ticket and every neighbour must end exactly as without it.
VICTIM = 2001
FIELDS = {
    "zendesk": {
        "severity": 9100001,
        "severity_override": 9100002,
        "category": 9100003,
        "product": 9100004,
        "images": 9100005,
        "expedite": 9100006,
        "workaround_at": 9100007,
        "delivered_at": 9100008,
    },
    "freshdesk": {
        "severity": "cf_sla_severity",
        "severity_override": "cf_severity_override",
        "category": "cf_category",
        "product": "cf_product",
        "images": "cf_images",
        "expedite": "cf_expedite",
        "workaround_at": "cf_workaround_at",
        "delivered_at": "cf_delivered_at",
    },
}
# Zendesk drop-down ("tagger") fields hold an option's tag: text, never a list or an object.
TAGGERS = {"severity", "severity_override", "category"}
NONSENSE_TEXT = st.one_of(
    st.text(min_size=1, max_size=40),
    st.sampled_from(["severity_bogus", "sev0", "🔥", "\u2028", "x" * 500, "null", "-1"]),
)
NONSENSE = st.one_of(
    NONSENSE_TEXT,
    st.sampled_from(
        [
            {"an": "object"},
            [1, 2],
            ["a", "b"],
            10**30,
            -7,
            2.5,
            True,
            "2026-02-30T00:00:00Z",
            "0001-01-01T00:00:00+01:00",
            "2999-01-01T00:00:00Z",
            "1e999",
        ]
    ),
)


@st.composite
def nonsense_fields(draw: st.DrawFn) -> dict[str, Any]:
    """Nonsense for the ticket's severity, and for some of its other custom fields."""
    names = [n for n in FIELDS["zendesk"] if n != "severity"]
    chosen = ["severity", *draw(st.lists(st.sampled_from(names), unique=True, max_size=4))]
    values = {}
    for name in chosen:
        strategy = NONSENSE_TEXT if name in TAGGERS else NONSENSE
        value = draw(strategy)
        if name == "severity":
            # Nonsense, not a severity some contract knows by chance.
            assume(isinstance(value, str) and value.strip().removeprefix("severity_") not in KNOWN)
        values[name] = value
    return values


KNOWN = {"sev1", "sev2", "sev3", "sev4", "critical", "severe", "minor", "information", "major"}
KNOWN |= {"moderate", "limited", ""}


class Recording:
    """The helpdesk as the sync sees it, keeping every write it is asked to send."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.applied: dict[str, list[Plan]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def apply(self, item: Item, plan: Plan) -> None:
        self.applied.setdefault(item.id, []).append(plan)
        self.inner.apply(item, plan)

    @property
    def jobs(self) -> Any:
        """The helpdesk's batch jobs, each write they send kept too."""
        inner = self.inner.jobs
        if inner is None:
            return None
        recording = self

        class Jobs:
            size = inner.size

            def send(self, writes: Any) -> str:
                for item, plan in writes:
                    recording.applied.setdefault(item.id, []).append(plan)
                return str(inner.send(writes))

            def results(self, job: str, tickets: Any, **options: Any) -> Any:
                return inner.results(job, tickets, **options)

        return Jobs()


@dataclass
class Pass:
    """One first sync pass over the seeded sandbox, and what every ticket shows after it."""

    totals: Totals
    applied: dict[str, list[Plan]]
    shown: dict[int, tuple[Any, ...]]
    before: dict[int, tuple[Any, ...]]

    def __repr__(self) -> str:
        return f"Pass({self.totals.tickets} tickets)"


def shown(sandbox: Sandbox, helpdesk: str) -> dict[int, tuple[Any, ...]]:
    """Tags, priority, due fields and sla-connector notes of every ticket."""
    out: dict[int, tuple[Any, ...]] = {}
    if helpdesk == "zendesk":
        for ticket_id, z in sandbox.zendesk.tickets.items():
            dues = tuple(z.fields.get(f) for f in (9100101, 9100102, 9100103, 9100104))
            notes = tuple(c.body for c in z.thread() if not c.public)
            out[ticket_id] = (tuple(sorted(z.tags)), z.priority, dues, notes)
    else:
        for ticket_id, f in sandbox.freshdesk.tickets.items():
            notes = tuple(n.body for n in f.thread() if n.private)
            out[ticket_id] = (tuple(sorted(f.tags)), f.priority, (f.fr_due_by, f.due_by), notes)
    return out


def first_pass(helpdesk: str, state_dir: Path, nonsense: dict[str, Any] | None) -> Pass:
    """Seed the sandbox, put `nonsense` in the victim's custom fields, sync once."""
    clock = ManualClock(START)
    sandbox = Sandbox.seeded(clock=clock, anchor=START, incremental_export_limit=None)
    for name, value in (nonsense or {}).items():
        key = FIELDS[helpdesk][name]
        if helpdesk == "zendesk":
            sandbox.zendesk.tickets[VICTIM].fields[int(key)] = value
        else:
            sandbox.freshdesk.tickets[VICTIM].custom[str(key)] = value
    before = shown(sandbox, helpdesk)
    url = ZENDESK_URL if helpdesk == "zendesk" else FRESHDESK_URL
    settings_ = demo_settings(helpdesk, url, state_dir)
    transport = (
        sandbox.zendesk_transport() if helpdesk == "zendesk" else sandbox.freshdesk_transport()
    )
    state = State(settings_.state_file)
    try:
        recording = Recording(
            open_helpdesk(
                settings_,
                state,
                transport=transport,
                secrets=sandbox_secrets(sandbox),
                sleep=clock.sleep,
            )
        )
        log = structlog.wrap_logger(structlog.ReturnLogger())
        sync = Sync(recording, state, load_rules(settings_), clock=clock, log=log)
        clock.advance(61)  # Zendesk's export leaves out the last minute
        totals = sync.poll("poll", START - timedelta(days=400))
        recording.close()
    finally:
        state.close()
    return Pass(totals, recording.applied, shown(sandbox, helpdesk), before)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Pass]:
    """The first pass with no nonsense anywhere, for each helpdesk."""
    return {
        helpdesk: first_pass(helpdesk, tmp_path_factory.mktemp(f"reference-{helpdesk}"), None)
        for helpdesk in ("zendesk", "freshdesk")
    }


def assert_only_tagged_unmapped(run: Pass, helpdesk: str) -> None:
    """The victim got `sla_unmapped` and no SLA result: no due, no priority, no tag removed.

    A fact the mapping cannot read (a severity outside its values table, a number that is
    not one) leaves the unmapped tag alone. A fact the contract does not know (a severity
    `pix4d-premium` lacks) is decided by the engine as unmapped, which by design also names
    the contract in a tag and explains the reason in a private note.
    """
    victim = str(VICTIM)
    [plan] = run.applied[victim]
    update = plan.update
    if helpdesk == "zendesk":
        added, removed = set(update.additional_tags), set(update.remove_tags)
        assert (update.custom_fields, update.priority) == ({}, None)
    else:
        old = run.before[VICTIM][0]
        added, removed = set(update.tags) - set(old), set(old) - set(update.tags)
        assert (update.fr_due_by, update.due_by, update.priority) == (None, None, None)
        assert update.custom_fields == {}
    assert "sla_unmapped" in added
    assert added <= {"sla_unmapped", "sla_pix4d-premium"}
    assert not removed
    if plan.note is not None:
        assert plan.note.startswith("sla-connector could not apply a contract to this ticket")
        assert "sla_pix4d-premium" in added
    else:
        assert added == {"sla_unmapped"}
    tags, priority, dues, notes = run.shown[VICTIM]
    old_tags, old_priority, old_dues, old_notes = run.before[VICTIM]
    assert set(tags) == {*old_tags, *added}
    assert (priority, dues) == (old_priority, old_dues)
    assert len(notes) == len(old_notes) + (plan.note is not None)


def assert_neighbours_as_without_it(run: Pass, reference: Pass) -> None:
    assert run.totals.failed == 0
    assert run.totals.unmapped == reference.totals.unmapped + 1
    for ticket_id, showing in reference.shown.items():
        if ticket_id != VICTIM:
            assert run.shown[ticket_id] == showing, ticket_id
    # And the neighbours were really written: each mapped one carries its contract's tags.
    written = [t for t in reference.applied if t != str(VICTIM)]
    assert len(written) >= 20


@pytest.mark.parametrize("helpdesk", ["zendesk", "freshdesk"])
@settings(max_examples=max(3, MAX_EXAMPLES // 5), deadline=None)
@given(nonsense=nonsense_fields())
def test_a_ticket_of_nonsense_is_tagged_unmapped_and_its_neighbours_written(
    helpdesk: str,
    nonsense: dict[str, Any],
    reference: dict[str, Pass],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    run = first_pass(helpdesk, tmp_path_factory.mktemp(helpdesk), nonsense)
    assert_only_tagged_unmapped(run, helpdesk)
    assert_neighbours_as_without_it(run, reference[helpdesk])


@pytest.mark.parametrize("helpdesk", ["zendesk", "freshdesk"])
@pytest.mark.parametrize(
    "nonsense",
    [
        {"severity": "severity_sev0"},
        {"severity": "sev9", "images": {"an": "object"}, "expedite": "perhaps"},
        {"severity": "🔥", "workaround_at": "0001-01-01T00:00:00+01:00"},
        {"severity": "x", "delivered_at": "2999-01-01T00:00:00Z", "images": 10**30},
    ],
    ids=["severity", "object-images", "year-one", "year-2999"],
)
def test_named_kinds_of_nonsense_are_tagged_unmapped(
    helpdesk: str, nonsense: dict[str, Any], reference: dict[str, Pass], tmp_path: Path
) -> None:
    run = first_pass(helpdesk, tmp_path, nonsense)
    assert_only_tagged_unmapped(run, helpdesk)
    assert_neighbours_as_without_it(run, reference[helpdesk])
