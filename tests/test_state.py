"""The state database: schema, permissions, each table's promises, the writer lock, snapshots."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connector.errors import ConfigError
from connector.sla.model import StatusChange, TicketFacts
from connector.state import Busy, State, StateUnavailable, Store
from connector.state.postgres import PostgresState, close_pools
from connector.state.schema import SQLITE_MIGRATIONS as MIGRATIONS
from tests.conftest import ROOT

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """The same tests on both backends: a SQLite file, a PostgreSQL database on a real server
    (tests/postgres_server.py; skipped with one line where there is none)."""
    if request.param == "sqlite":
        opened: Store = State(tmp_path / "state.sqlite3")
    else:
        opened = PostgresState(request.getfixturevalue("postgres_url"))
    yield opened
    opened.close()
    if request.param == "postgresql":
        close_pools()


@pytest.fixture
def file_state(tmp_path: Path) -> Iterator[State]:
    opened = State(tmp_path / "state.sqlite3")
    yield opened
    opened.close()


def where_of(state: Store) -> str:
    """What `open_state_at` takes to open the same state in another process."""
    return state.url if isinstance(state, PostgresState) else str(state.where)


def facts(
    ticket: str,
    created: datetime,
    *,
    contract: str = "pixelz",
    customer: str | None = "org-1",
    severity: str | None = None,
    category: str | None = None,
) -> TicketFacts:
    return TicketFacts(
        id=ticket,
        created_at=created,
        contract=contract,
        customer=customer,
        severity=severity,
        category=category,
    )


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


# --- schema and files -----------------------------------------------------------------------


def test_an_empty_file_is_refused_unless_a_new_state_is_asked_for(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    path.touch()  # a state truncated by mistake: taking it for new would post every note again
    with pytest.raises(ConfigError, match=r"state.sqlite3: is empty \(0 bytes\).*--new-state"):
        State(path)
    state = State(path, new_state=True)
    try:
        assert state.schema_version == len(MIGRATIONS)
        assert state.counts() == {"tickets": 0, "counted": 0, "wakeups": 0, "journal": 0}
    finally:
        state.close()


def test_reopening_keeps_the_schema_and_the_data(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    first = State(path)
    first.set_cursor("poll", "c1", NOW)
    first.close()
    again = State(path)
    try:
        assert again.schema_version == len(MIGRATIONS)
        assert again.cursor("poll") == "c1"
    finally:
        again.close()


def test_a_schema_newer_than_known_is_refused_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(ConfigError) as raised:
        State(path)
    message = str(raised.value)
    assert len(raised.value.problems) == 1
    assert "\n" not in message
    assert message.startswith(str(path))
    assert "newer" in message
    assert "upgrade sla-connector" in message


def test_a_file_that_is_not_a_database_is_refused_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    path.write_bytes(b"this is a text file, not SQLite\n" * 100)
    with pytest.raises(ConfigError) as raised:
        State(path)
    message = str(raised.value)
    assert len(raised.value.problems) == 1
    assert "\n" not in message
    assert message.startswith(str(path))
    assert "is not a state database of sla-connector" in message


def test_the_database_is_private_and_a_new_folder_is_0700(tmp_path: Path) -> None:
    folder = tmp_path / "created"
    path = folder / "state.sqlite3"
    previous = os.umask(0o022)  # a common umask, which would give 0644 and 0755
    try:
        state = State(path)
        try:
            state.set_cursor("poll", "c1", NOW)
            with state.writer():
                pass
        finally:
            state.close()
    finally:
        os.umask(previous)
    assert mode(folder) == 0o700
    assert mode(path) == 0o600
    assert mode(path.with_name("state.sqlite3.lock")) == 0o600
    for side in folder.glob("state.sqlite3-*"):  # WAL and shared-memory files, if left
        assert mode(side) == 0o600, side


# --- cursors --------------------------------------------------------------------------------


def test_cursors_round_trip_and_are_forgotten_by_name(state: Store) -> None:
    assert state.cursor("poll") is None
    state.set_cursor("poll", "c1", NOW)
    state.set_cursor("poll", "c2", NOW + timedelta(minutes=1))
    state.set_cursor("backfill:a", "x", NOW)
    state.set_cursor("backfill:a:done", "y", NOW)
    assert state.cursor("poll") == "c2"
    assert state.cursors("backfill:") == {"backfill:a": "x", "backfill:a:done": "y"}

    state.forget_cursor("backfill:a", "backfill:a:done", "never-set")

    assert state.cursors() == {"poll": "c2"}


# --- tickets and the ledger -----------------------------------------------------------------


def test_facts_are_upserted(state: Store) -> None:
    first = facts("1", NOW, severity="sev2")
    state.put_facts(first)
    assert state.record("1").facts == first
    assert state.facts_json("1") == first.model_dump_json()

    moved = facts("1", NOW, customer="org-2", severity="sev1")
    state.put_facts(moved)

    assert state.record("1").facts == moved
    assert list(state.customer_tickets("pixelz", "org-1", None, None)) == []
    assert list(state.customer_tickets("pixelz", "org-2", None, None)) == [moved]
    assert state.counts()["tickets"] == 1


def test_a_ticket_never_seen_has_an_empty_record(state: Store) -> None:
    record = state.record("404")
    assert (record.facts, record.results, record.note) == (None, None, None)
    assert state.facts_json("404") is None


def test_customer_tickets_are_one_customer_of_one_contract_in_the_window(state: Store) -> None:
    day = timedelta(days=1)
    own = [facts(str(n), NOW + n * day) for n in range(5)]
    for one in own:
        state.put_facts(one)
    state.put_facts(facts("other-customer", NOW + day, customer="org-2"))
    state.put_facts(facts("other-contract", NOW + day, contract="photoprism"))
    state.put_facts(facts("no-customer", NOW + day, customer=None))

    def ids(since: datetime | None, until: datetime | None) -> list[str]:
        return [f.id for f in state.customer_tickets("pixelz", "org-1", since, until)]

    assert ids(None, None) == ["0", "1", "2", "3", "4"]
    assert ids(NOW + day, NOW + 3 * day) == ["1", "2", "3"]  # both ends included
    assert ids(NOW + 3 * day, None) == ["3", "4"]
    assert ids(None, NOW) == ["0"]
    assert [f.id for f in state.customer_tickets("pixelz", None, None, None)] == ["no-customer"]


def test_kept_categories_come_whatever_their_age(state: Store) -> None:
    year = timedelta(days=365)
    state.put_facts(facts("old-install", NOW - 3 * year, category="installation"))
    state.put_facts(facts("old-error", NOW - 3 * year, category="software_error"))
    state.put_facts(facts("recent-error", NOW, category="software_error"))
    state.put_facts(facts("later-install", NOW + year, category="installation"))

    def ids(since: datetime | None, until: datetime | None) -> list[str]:
        found = state.customer_tickets(
            "pixelz", "org-1", since, until, kept=frozenset({"installation"})
        )
        return [f.id for f in found]

    assert ids(NOW - year, NOW) == ["old-install", "recent-error"]
    assert ids(NOW - year, None) == ["old-install", "recent-error", "later-install"]
    assert ids(None, NOW) == ["old-install", "old-error", "recent-error"]


def test_the_category_column_is_filled_in_for_tickets_stored_before_it(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0] + "; PRAGMA user_version = 1;")
    old = facts("1", NOW, category="installation")
    db.execute(
        "INSERT INTO tickets (ticket, contract, customer, created_at, facts) "
        "VALUES (?, ?, ?, ?, ?)",
        ("1", "pixelz", "org-1", int(NOW.timestamp()) - 10 * 86400, old.model_dump_json()),
    )
    db.execute("INSERT INTO tickets (ticket, results) VALUES ('2', 'r')")  # written, not counted
    db.commit()
    db.close()
    state = State(path)
    try:
        found = state.customer_tickets(
            "pixelz", "org-1", NOW, None, kept=frozenset({"installation"})
        )
        assert [f.id for f in found] == ["1"]
        assert state.record("2").results == "r"
    finally:
        state.close()


def test_a_state_from_before_status_histories_keeps_its_tickets_and_gains_them(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.sqlite3"
    db = sqlite3.connect(path)
    db.create_function("facts_category", 1, lambda _: None)  # the migration's helper
    db.executescript(MIGRATIONS[0] + ";" + MIGRATIONS[1] + "; PRAGMA user_version = 2;")
    db.execute("INSERT INTO tickets (ticket, results, note) VALUES ('7', 'r', 'n')")
    db.commit()
    db.close()
    state = State(path)
    try:
        assert state.status_history("7") == []
        history = [
            StatusChange(at=NOW, status="pending"),
            StatusChange(at=NOW + timedelta(hours=2), status="open"),
        ]
        state.set_status_history("7", history)
        state.set_status_history("8", history[:1])  # a ticket the state had not seen
        assert state.status_history("7") == history
        assert state.status_history("8") == history[:1]
        assert (state.record("7").results, state.record("7").note) == ("r", "n")
    finally:
        state.close()


def test_forgotten_facts_stop_counting_but_the_written_results_stay(state: Store) -> None:
    state.put_facts(facts("1", NOW))
    state.set_written("1", "r1", "n1")

    state.forget_facts("1")

    record = state.record("1")
    assert (record.facts, record.results, record.note) == (None, "r1", "n1")
    assert list(state.customer_tickets("pixelz", "org-1", None, None)) == []
    assert state.counts()["counted"] == 0


def test_set_written_keeps_the_last_note_when_given_none(state: Store) -> None:
    state.put_facts(facts("1", NOW))
    state.set_written("1", "r1", "n1")
    state.set_written("1", "r2", None)

    record = state.record("1")
    assert (record.results, record.note) == ("r2", "n1")
    assert record.facts == facts("1", NOW)  # the ledger's facts are not touched

    state.set_written("1", "r3", "n2")
    assert (state.record("1").results, state.record("1").note) == ("r3", "n2")


# --- the journal ----------------------------------------------------------------------------


def test_a_journalled_note_is_pending_until_settled(state: Store) -> None:
    state.set_written("1", "r1", "old-note")
    state.begin_note("2", "n2", NOW)
    state.begin_note("1", "n1", NOW)
    assert state.pending_note("1") == "n1"
    assert state.pending_notes() == [("1", "n1"), ("2", "n2")]

    state.settle_note("1", "n1")  # the helpdesk shows the note: it landed
    state.settle_note("2", None)  # the helpdesk shows no note: it did not

    assert state.pending_notes() == []
    assert state.pending_note("1") is None
    assert state.record("1").note == "n1"
    assert state.record("2").note is None


def test_a_settled_miss_keeps_the_previous_note(state: Store) -> None:
    state.set_written("1", "r1", "old-note")
    state.begin_note("1", "n1", NOW)
    state.settle_note("1", None)
    assert state.record("1").note == "old-note"


def test_recording_the_write_closes_its_journal_entry(state: Store) -> None:
    state.begin_note("1", "n1", NOW)
    state.set_written("1", "r1", "n1")
    assert state.pending_notes() == []
    assert state.record("1").note == "n1"


# --- wake-ups -------------------------------------------------------------------------------


def test_wakeups_come_due_earliest_first(state: Store) -> None:
    hour = timedelta(hours=1)
    state.wake_at("a", NOW + 3 * hour)
    state.wake_at("b", NOW + hour)
    state.wake_at("c", NOW + 2 * hour)
    state.wake_at("d", NOW + 5 * hour)
    assert state.next_wakeup() == NOW + hour

    assert state.due_wakeups(NOW) == []
    assert state.due_wakeups(NOW + 4 * hour) == ["b", "c", "a"]
    assert state.due_wakeups(NOW + 4 * hour, limit=2) == ["b", "c"]

    state.wake_at("b", None)
    state.wake_at("c", NOW + 6 * hour)  # moved, not added
    assert state.next_wakeup() == NOW + 3 * hour
    assert state.wakeup_of("c") == NOW + 6 * hour
    assert state.wakeup_of("b") is None
    assert state.counts()["wakeups"] == 3


def test_no_wakeups_means_no_next_one(state: Store) -> None:
    assert state.next_wakeup() is None
    state.wake_at("a", NOW)
    state.wake_at("a", None)
    assert state.next_wakeup() is None


# --- tokens ---------------------------------------------------------------------------------


def test_tokens_round_trip_and_are_replaced(state: Store) -> None:
    assert state.token("zendesk_oauth") is None
    first = {"access_token": "a1", "refresh_token": "r1", "expires_at": None}
    state.set_token("zendesk_oauth", first, NOW)
    assert state.token("zendesk_oauth") == first

    second = {"access_token": "a2", "refresh_token": "r2", "expires_at": "2026-03-02T11:00:00Z"}
    state.set_token("zendesk_oauth", second, NOW)
    assert state.token("zendesk_oauth") == second


# --- transactions ---------------------------------------------------------------------------


def test_a_failed_transaction_changes_nothing(state: Store) -> None:
    def crash_midway() -> None:
        with state.transaction():
            state.set_cursor("poll", "c1", NOW)
            state.wake_at("1", NOW)
            raise RuntimeError("crash in the middle")

    with pytest.raises(RuntimeError):
        crash_midway()
    assert state.cursor("poll") is None
    assert state.next_wakeup() is None


# --- the writer lock ------------------------------------------------------------------------

_TRY_LOCK = """
import sys
from connector.state import Busy, open_state_at
state = open_state_at(sys.argv[1])
try:
    with state.writer(wait=False):
        print("locked", flush=True)
except Busy as exc:
    print("busy:", exc, flush=True)
"""

_HOLD_LOCK = """
import sys
from pathlib import Path
from connector.state import State
state = State(Path(sys.argv[1]))
with state.writer():
    print("locked", flush=True)
    sys.stdin.read()  # hold until killed
"""


def take_lock(state: Store) -> None:
    with state.writer(wait=False):
        pass


def _python(script: str, where: Path | str) -> list[str]:
    return [sys.executable, "-c", script, str(where)]


def test_a_second_process_cannot_take_the_writer_lock(state: Store) -> None:
    with state.writer(), state.writer():  # re-entrant within one State
        held = subprocess.run(
            _python(_TRY_LOCK, where_of(state)),
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
    free = subprocess.run(
        _python(_TRY_LOCK, where_of(state)), cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert held.stdout.startswith("busy:")
    assert "is writing" in held.stdout
    assert free.stdout == "locked\n"


def test_the_writer_lock_dies_with_a_killed_holder(file_state: State) -> None:
    """A file lock ends with its process (a lease on a server runs out: test_state_postgres)."""
    state = file_state
    with subprocess.Popen(
        _python(_HOLD_LOCK, state.path),
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline() == "locked\n"
            with pytest.raises(Busy):
                take_lock(state)
        finally:
            holder.send_signal(signal.SIGKILL)
            holder.wait()
    assert holder.returncode == -signal.SIGKILL
    with state.writer(wait=False):
        state.set_cursor("poll", "after the crash", NOW)
    assert state.cursor("poll") == "after the crash"


# --- snapshots ------------------------------------------------------------------------------


def test_a_snapshot_copies_everything_and_changes_only_itself(state: Store, tmp_path: Path) -> None:
    state.set_cursor("poll", "c1", NOW)
    state.put_facts(facts("1", NOW))
    state.set_written("1", "r1", "n1")
    state.wake_at("1", NOW)
    state.set_token("zendesk_oauth", {"refresh_token": "r"}, NOW)

    copy = state.snapshot(tmp_path / "copy.sqlite3")
    try:
        assert mode(copy.path) == 0o600
        assert copy.cursor("poll") == "c1"
        assert copy.record("1") == state.record("1")
        assert copy.wakeup_of("1") == NOW
        assert copy.token("zendesk_oauth") == {"refresh_token": "r"}

        copy.set_cursor("poll", "c2", NOW)
        copy.put_facts(facts("2", NOW))
        copy.set_written("1", "r2", "n2")
        copy.wake_at("1", None)
        copy.begin_note("2", "n", NOW)
    finally:
        copy.close()

    assert state.cursor("poll") == "c1"
    assert state.record("2").facts is None
    assert (state.record("1").results, state.record("1").note) == ("r1", "n1")
    assert state.wakeup_of("1") == NOW
    assert state.pending_notes() == []


# --- a state that is not ours, lost, damaged or busy (issue 16, items 2, 7, 12) -------------


@pytest.mark.reliability
def test_a_file_that_is_not_a_state_of_ours_is_refused_then_moved_aside(tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite3"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE photos (id INTEGER)")
    db.commit()
    db.close()
    text = tmp_path / "text.sqlite3"
    text.write_text("not a database at all\n")
    for path in (other, text):
        before = path.read_bytes()
        with pytest.raises(ConfigError, match="is not a state database of sla-connector"):
            State(path)
        assert path.read_bytes() == before  # refused, untouched
        State(path, new_state=True).close()
        (aside,) = tmp_path.glob(f"{path.name}.not-ours-*")
        assert aside.read_bytes() == before
        assert State(path).schema_version == len(MIGRATIONS)


@pytest.mark.reliability
def test_a_write_ahead_log_without_its_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    (tmp_path / "state.sqlite3-wal").write_bytes(b"\0" * 32)
    with pytest.raises(ConfigError, match="is missing, but its write-ahead log"):
        State(path)


def test_a_new_state_is_created_whole(tmp_path: Path) -> None:
    path = tmp_path / "state" / "state.sqlite3"
    State(path).close()
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.sqlite3"]
    assert path.stat().st_mode & 0o777 == 0o600
    assert State(path).schema_version == len(MIGRATIONS)


@pytest.mark.reliability
def test_a_damaged_file_is_a_problem_to_fix_and_an_unreadable_one_may_pass(
    tmp_path: Path,
) -> None:
    damaged = tmp_path / "damaged.sqlite3"
    State(damaged).close()
    data = bytearray(damaged.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # the schema page overwritten
    damaged.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="is damaged"):
        State(damaged)
    # A state SQLite cannot open now (a folder in its place stands for any I/O error):
    # exit status 1, so that systemd starts the service again once it is fixed.
    unreadable = tmp_path / "unreadable.sqlite3"
    State(unreadable).close()
    unreadable.unlink()
    unreadable.mkdir()
    (unreadable / "x").touch()
    with pytest.raises(StateUnavailable, match="cannot be used now") as caught:
        State(unreadable)
    assert caught.value.exit_status == 1


@pytest.mark.reliability
def test_a_second_claim_on_a_state_is_refused_naming_the_first(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    first, second = State(path), State(path)
    try:
        first.claim("run")
        with pytest.raises(Busy, match=rf"already in use by sla-connector run \(pid {os.getpid()}"):
            second.claim("run")
        first.close()  # released with its process (or its state)
        second.claim("sync")
    finally:
        second.close()


def test_check_names_the_daemon_holding_a_state_file(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    daemon, looker = State(path), State(path)
    try:
        assert looker.holders() == []
        daemon.claim("run")
        [said] = looker.holders()
        assert said.startswith(f"held by sla-connector run (pid {os.getpid()}")
        daemon.close()
        assert looker.holders() == []
    finally:
        looker.close()
