"""The PostgreSQL state on a real server (tests/postgres_server.py): what the SQLite state does
with a file lock, it does with leases; a stalled former holder changes nothing; a SQLite state
moves to a server whole, proven table by table; a server that is away may pass.

The queries both backends share are tested on both in tests/test_state.py.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connector.cli import main
from connector.errors import ConfigError
from connector.state import Busy, LeaseLost, State, StateUnavailable, open_state_at
from connector.state.copy import copy_state, table_check
from connector.state.postgres import PostgresState, close_pools, display_url
from connector.state.schema import POSTGRES_MIGRATIONS
from tests.conftest import ROOT, forget_admin_settings, logging_restored
from tests.test_state import facts

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def url(postgres_url: str) -> Iterator[str]:
    """A database of this test's own; the connections to it closed before it is dropped."""
    yield postgres_url
    close_pools()


def test_a_new_database_gets_the_schema_and_a_second_open_changes_nothing(
    url: str,
) -> None:
    first = PostgresState(url)
    first.set_cursor("poll", "c1", NOW)
    again = PostgresState(url)
    assert again.schema_version == len(POSTGRES_MIGRATIONS)
    assert again.cursor("poll") == "c1"


def test_a_database_with_other_tables_of_those_names_is_refused(
    url: str,
) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE tickets (id integer)")
    with pytest.raises(ConfigError, match="not a state of sla-connector"):
        PostgresState(url)


def test_a_schema_newer_than_known_is_refused(url: str) -> None:
    import psycopg

    PostgresState(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_version VALUES (%s)", (len(POSTGRES_MIGRATIONS) + 1,))
    with pytest.raises(ConfigError, match="newer than this sla-connector understands"):
        PostgresState(url)


def test_a_password_in_the_configured_url_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Secrets never come from the configuration file: the password is `state_password`."""
    from pydantic import ValidationError

    from connector.config import Settings

    forget_admin_settings(monkeypatch)
    for url in ("postgresql://sla:s3cret@db/sla", "postgresql://db/sla?password=s3cret"):
        with pytest.raises(ValidationError, match="state_password"):
            Settings(helpdesk="zendesk", state_url=url)
    assert Settings(helpdesk="zendesk", state_url="postgresql://sla@db/sla").state_url


def test_the_url_shown_has_no_password() -> None:
    shown = display_url("postgresql://sla:s3cret@db.example.com:6432/sla")
    assert shown == "postgresql://sla@db.example.com:6432/sla"
    assert "s3cret" not in display_url("postgresql://db.example.com/sla?password=s3cret")


def test_a_server_that_is_away_may_pass(tmp_path: Path) -> None:
    """No server at the socket: StateUnavailable (exit 1: systemd tries again), not a crash."""
    url = f"postgresql://postgres@/nothing?host={tmp_path}&connect_timeout=1"
    try:
        with pytest.raises(StateUnavailable, match="no connection to the server"):
            PostgresState(url, connect_seconds=1.0)
    finally:
        close_pools()


# --- leases ---------------------------------------------------------------------------------


def test_one_writer_at_a_time_and_the_next_one_after_it(url: str) -> None:
    first, second = PostgresState(url), PostgresState(url)
    with first.writer():
        with pytest.raises(Busy, match=r"is writing"), second.writer(wait=False):
            pass
        first.set_cursor("poll", "first", NOW)
    with second.writer(wait=False):
        second.set_cursor("poll", "second", NOW)
    assert first.cursor("poll") == "second"


def test_a_lease_outlives_its_killed_holder_until_it_runs_out(url: str) -> None:
    """Unlike a file lock, a lease does not die with its process: it runs out."""
    with subprocess.Popen(
        [sys.executable, "-c", _HOLD, url, "1.5"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline() == "locked\n"
        finally:
            holder.send_signal(signal.SIGKILL)
            holder.wait()
    state = PostgresState(url)
    with pytest.raises(Busy), state.writer(wait=False):
        pass
    time.sleep(1.6)
    with state.writer(wait=False):
        state.set_cursor("poll", "after the lease ran out", NOW)


_HOLD = """
import sys
from connector.state.postgres import PostgresState
from datetime import UTC, datetime
state = PostgresState(sys.argv[1], writer_seconds=float(sys.argv[2]))
with state.writer():
    print("locked", flush=True)
    sys.stdin.readline()  # stopped here (SIGSTOP) until the test lets it go on
    try:
        state.set_cursor("poll", "from the stalled holder", datetime.now(UTC))
        print("wrote", flush=True)
    except Exception as exc:
        print(type(exc).__name__, exc, flush=True)
"""


def test_a_stalled_holder_changes_nothing_once_its_lease_has_passed(url: str) -> None:
    """SIGSTOP the writer past its lease, let another take it and write, resume the first:
    its next transaction is refused (the epoch moved on) and the state keeps the second's."""
    with subprocess.Popen(
        [sys.executable, "-c", _HOLD, url, "1.0"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdin is not None
        assert holder.stdout is not None
        try:
            assert holder.stdout.readline() == "locked\n"
            holder.send_signal(signal.SIGSTOP)
            time.sleep(1.2)
            other = PostgresState(url)
            with other.writer(wait=False):
                other.set_cursor("poll", "from the new holder", NOW)
            holder.send_signal(signal.SIGCONT)
            holder.stdin.write("go on\n")
            holder.stdin.flush()
            said = holder.stdout.readline()
        finally:
            holder.kill()
            holder.wait()
    assert said.startswith("LeaseLost"), said
    assert other.cursor("poll") == "from the new holder"


def test_a_daemon_that_lost_its_claim_changes_nothing_any_more(url: str) -> None:
    first = PostgresState(url, claim_seconds=0.5)
    first.claim("run")
    assert first.keep_every == pytest.approx(0.5 / 3)
    time.sleep(0.7)  # not kept: the claim runs out
    second = PostgresState(url)
    second.claim("run")
    with pytest.raises(LeaseLost):
        first.keep()
    with pytest.raises(LeaseLost):  # and for good, not only the claim's own renewal
        first.set_cursor("poll", "late", NOW)
    second.set_cursor("poll", "current", NOW)
    assert second.cursor("poll") == "current"


def test_a_second_claim_names_the_first(url: str) -> None:
    first, second = PostgresState(url), PostgresState(url)
    first.claim("run")
    with pytest.raises(Busy, match=rf"already in use by .*:{__import__('os').getpid()}:"):
        second.claim("run")
    first.close()  # given back
    second.claim("run")


def test_other_processes_changes_move_the_data_version_and_ours_do_not(
    url: str,
) -> None:
    mine, theirs = PostgresState(url), PostgresState(url)
    before = mine.data_version()
    mine.set_cursor("poll", "mine", NOW)
    mine.put_facts(facts("1", NOW))
    assert mine.data_version() == before
    theirs.set_cursor("poll", "theirs", NOW)
    assert mine.data_version() != before


# --- a SQLite state moved to a server -----------------------------------------------------


def _filled(path: Path) -> State:
    state = State(path)
    state.set_cursor("poll", "cursor-1", NOW)
    state.set_cursor("backfill:2026-01-01", "page-7", NOW)
    for number in range(1, 40):
        state.put_facts(facts(str(number), NOW, customer=str(number % 4)))
        state.set_written(str(number), f"results-{number}", f"note-{number}")
        state.wake_at(str(number), NOW)
    state.begin_note("3", "note-3b", NOW, job="V3-abc")
    state.begin_note("4", "note-4b", NOW, job="?")
    state.set_token("zendesk_oauth", {"refresh_token": "r", "access_token": "a"}, NOW)
    return state


def test_a_copy_holds_every_row_and_says_so_table_by_table(tmp_path: Path, url: str) -> None:
    source = _filled(tmp_path / "state.sqlite3")
    target = PostgresState(url)
    checks = copy_state(source, target)
    assert {c.table: c.rows for c in checks} == {
        "cursors": 2,
        "tickets": 39,
        "journal": 2,
        "wakeups": 39,
        "tokens": 1,
    }
    for check in checks:
        assert table_check(source, check.table) == check
    assert target.pending_jobs() == source.pending_jobs()
    assert target.record("7") == source.record("7")
    assert sorted(f.id for f in target.customer_tickets("pixelz", "3", None, None)) == sorted(
        f.id for f in source.customer_tickets("pixelz", "3", None, None)
    )
    # into a state that holds anything: refused, nothing merged
    with pytest.raises(ConfigError, match="not empty"):
        copy_state(source, target)


def test_state_migrate_moves_the_configured_state_to_a_server(
    tmp_path: Path,
    url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    forget_admin_settings(monkeypatch)
    _filled(tmp_path / "state" / "state.sqlite3").close()
    config = tmp_path / "config.toml"
    config.write_text(f'helpdesk = "zendesk"\nstate_dir = "{tmp_path / "state"}"\n')
    assert main(["state", "migrate", "--config", str(config), "--to", url]) == 0
    out = capsys.readouterr().out
    assert "tickets" in out
    assert "39 rows" in out
    assert out.count(" ok\n") == 5
    moved = open_state_at(url)
    assert moved.counts() == {"tickets": 39, "counted": 39, "wakeups": 39, "journal": 2}
    # Again, into the now full state: refused on one line, exit 2, nothing changed.
    assert main(["state", "migrate", "--config", str(config), "--to", url]) == 2
    assert "not empty" in capsys.readouterr().err
    assert moved.counts()["tickets"] == 39


def test_state_migrate_refuses_while_a_daemon_holds_the_state(
    tmp_path: Path,
    url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    forget_admin_settings(monkeypatch)
    running = _filled(tmp_path / "state" / "state.sqlite3")
    running.claim("run")
    config = tmp_path / "config.toml"
    config.write_text(f'helpdesk = "zendesk"\nstate_dir = "{tmp_path / "state"}"\n')
    try:
        status = main(["state", "migrate", "--config", str(config), "--to", url])
    finally:
        running.close()
    assert status != 0
    assert "already in use by sla-connector run" in capsys.readouterr().err
    assert PostgresState(url).counts()["tickets"] == 0


# --- the daemon's sync on a server state ----------------------------------------------------


@pytest.mark.parametrize("helpdesk", ["zendesk", "freshdesk"])
def test_the_sync_on_a_server_state_writes_each_ticket_once(
    helpdesk: str, url: str, tmp_path: Path
) -> None:
    """The sandbox's tickets synced with the state on PostgreSQL: every contract written, one
    note a ticket; a second pass writes nothing; the state then holds what the SQLite one
    would."""
    from tests.test_sync_e2e import open_desk

    desk = open_desk(helpdesk, tmp_path, state=PostgresState(url))
    first = desk.run()
    assert first.failed == 0
    assert first.writes > 0
    for ticket_id in desk.tickets():
        if "sla_unmapped" not in desk.tags(ticket_id):
            assert len(desk.notes(ticket_id)) == 1, ticket_id
    writes = desk.writes()
    assert desk.run().writes == 0
    assert desk.writes() == writes

    on_file = open_desk(helpdesk, tmp_path / "file")
    on_file.run()
    for table in ("tickets", "wakeups"):
        assert table_check(desk.state, table) == table_check(on_file.state, table), table


def test_the_state_password_is_used_and_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The secret state_password reaches libpq, not the output: a server that is away is
    told about on one line, exit 1 (may pass), without the password in any form."""
    from connector.state import postgres

    forget_admin_settings(monkeypatch)
    canary = "CANARY-state-password-5d1c+a8e3/7f-pg"
    monkeypatch.setenv("SLA_CONNECTOR_STATE_PASSWORD", canary)
    monkeypatch.setattr(postgres, "CONNECT_SECONDS", 1.0)
    seen: list[str | None] = []
    real_pool = postgres._pool
    monkeypatch.setattr(postgres, "_pool", lambda url, pw: seen.append(pw) or real_pool(url, pw))
    config = tmp_path / "config.toml"
    config.write_text(
        'helpdesk = "freshdesk"\n'
        f'state_url = "postgresql://sla@/sla?host={tmp_path}&connect_timeout=1"\n'
        f'helpdesk_mapping = "{ROOT / "mappings" / "helpdesks" / "freshdesk.example.yaml"}"\n'
        '[freshdesk]\nurl = "https://acme.freshdesk.com"\n'
    )
    monkeypatch.setenv("SLA_CONNECTOR_FRESHDESK_API_KEY", "unused")
    try:
        with logging_restored():
            status = main(["sync", "--once", "--config", str(config)])
    finally:
        close_pools()  # the pool would go on trying to connect
    out, err = capsys.readouterr()
    assert seen == [canary], (out, err)
    assert status == 1
    assert "cannot be used now" in err or "no connection to the server" in err
    for form in (canary, canary.replace("+", "%2B").replace("/", "%2F")):
        assert form not in out + err


# --- what the review found (losing a lease mid-cycle, stalls, odd servers) -----------------


def test_a_claim_lost_inside_a_transaction_stops_everything_after(url: str) -> None:
    """The loss first seen by a cycle's transaction: `keep` says so too (the daemon stops),
    and the writer's lease is not taken from the daemon that holds the state now."""
    first = PostgresState(url, claim_seconds=0.3)
    first.claim("run")
    time.sleep(0.5)
    second = PostgresState(url)
    second.claim("run")
    with pytest.raises(LeaseLost):
        first.set_cursor("poll", "late", NOW)
    with pytest.raises(LeaseLost):
        first.keep()
    with pytest.raises(LeaseLost), first.writer(wait=False):
        pass
    with second.writer(wait=False):
        second.set_cursor("poll", "current", NOW)


def test_a_writer_lost_mid_hold_changes_nothing_more_in_that_hold(url: str) -> None:
    first, second = PostgresState(url, writer_seconds=0.3), PostgresState(url)
    with first.writer():
        first.set_cursor("poll", "first", NOW)
        time.sleep(0.5)
        with second.writer(wait=False):
            second.set_cursor("poll", "second", NOW)
            with pytest.raises(LeaseLost):
                first.set_cursor("poll", "late", NOW)
            with pytest.raises(LeaseLost):  # and again: not a one-off
                first.set_cursor("poll", "later", NOW)
    assert second.cursor("poll") == "second"
    with first.writer(wait=False):  # a new hold, once the other's is over
        first.set_cursor("poll", "first again", NOW)


def test_a_holder_stalled_inside_a_transaction_holds_nobody_up_for_long(url: str) -> None:
    """A transaction left open (the process stopped mid-way) keeps its rows locked: another
    process asking for the lease hears Busy within seconds, and the server ends the stalled
    transaction after the lease's time, so nothing it did is committed."""
    import threading

    stalled = PostgresState(url, writer_seconds=3.0)
    outcome: list[BaseException | None] = []

    def stall() -> None:
        try:
            with stalled.writer(), stalled.transaction():
                stalled.set_cursor("stalled", "x", NOW)
                time.sleep(4)  # past the lease: the server ends the transaction at 3 s
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=stall)
    thread.start()
    time.sleep(0.3)
    other = PostgresState(url)
    started = time.monotonic()
    with pytest.raises(Busy), other.writer(wait=False):
        pass
    assert time.monotonic() - started < 5
    thread.join()
    assert isinstance(outcome[0], StateUnavailable), outcome
    assert other.cursor("stalled") is None


def test_text_with_a_nul_character_is_stored_not_refused(url: str) -> None:
    state = PostgresState(url)
    state.put_facts(facts("1", NOW, customer="org\x00-1"))
    [stored] = list(state.customer_tickets("pixelz", "org\ufffd-1", None, None))
    assert stored.id == "1"


def test_daemons_starting_at_once_on_an_empty_database_all_start(url: str) -> None:
    import threading

    errors: list[BaseException] = []

    def start() -> None:
        try:
            PostgresState(url)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert PostgresState(url).schema_version == len(POSTGRES_MIGRATIONS)


def test_a_copy_checks_out_on_a_server_that_sorts_text_its_own_way(
    tmp_path: Path, postgres_server: Any
) -> None:
    """An ICU collation orders 'Poll-x' before 'backfill:a'; the checks compare the same
    rows all the same."""
    name = "icu_collated"
    postgres_server.psql(
        f"CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
    )
    target_url = postgres_server.url(name)
    try:
        source = State(tmp_path / "state.sqlite3")
        for key in ("poll", "Poll-x", "backfill:a", "backfilla", "Zeta", "älter"):
            source.set_cursor(key, key.upper(), NOW)
        checks = copy_state(source, PostgresState(target_url))
        assert [c.rows for c in checks if c.table == "cursors"] == [6]
    finally:
        close_pools()
        postgres_server.drop_database(name)


def test_a_role_that_may_only_read_and_write_uses_a_current_state(
    url: str, postgres_server: Any
) -> None:
    """The tables made once by their owner, a role with no more than read and write rights
    runs the daemon; on a database with no state yet it is told what it lacks."""
    PostgresState(url).set_cursor("poll", "c1", NOW)
    database = url.rsplit("/", maxsplit=1)[-1].split("?", maxsplit=1)[0]
    postgres_server.psql(
        "CREATE ROLE sla_writer LOGIN; "
        "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO sla_writer; "
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
        dbname=database,
    )
    try:
        as_writer = url.replace("postgresql://postgres@", "postgresql://sla_writer@")
        state = PostgresState(as_writer)
        assert state.cursor("poll") == "c1"
        state.set_cursor("poll", "c2", NOW)
        empty = postgres_server.create_database("no_state_yet")
        with pytest.raises(ConfigError, match="the role needs"):
            PostgresState(empty.replace("postgresql://postgres@", "postgresql://sla_writer@"))
    finally:
        close_pools()
        postgres_server.drop_database("no_state_yet")
        postgres_server.psql("DROP OWNED BY sla_writer; DROP ROLE sla_writer", dbname=database)


def test_a_state_opened_to_read_changes_nothing(url: str) -> None:
    PostgresState(url).set_cursor("poll", "c1", NOW)
    reader = PostgresState(url, readonly=True)
    assert reader.cursor("poll") == "c1"
    with pytest.raises(StateUnavailable, match="read only"):
        reader.set_cursor("poll", "c2", NOW)


def test_check_names_who_holds_each_lease(url: str) -> None:
    daemon, looker = PostgresState(url), PostgresState(url)
    daemon.claim("run")
    with daemon.writer():
        said = looker.holders()
    assert any(s.startswith(f"tenant default: held by {daemon.owner} until ") for s in said)
    assert any(
        s.startswith(f"tenant default's writer: held by {daemon.owner} until ") for s in said
    )
    daemon.close()
    assert all(s.endswith(")") and ": free (epoch" in s for s in looker.holders())


def test_a_claim_is_kept_through_a_long_wait_inside_a_cycle(url: str) -> None:
    """A rate limit's wait of minutes inside a cycle: the daemon's sleep keeps the watchdog
    fed and, with it, the claim (`run` hangs the renewal on the notifier)."""
    from connector.notify import Notifier
    from connector.service.daemon import renewer

    holder = PostgresState(url, claim_seconds=1.0)
    holder.claim("run")
    notifier = Notifier(socket_path="")
    notifier.also.append(renewer(holder))
    notifier.sleep(2.5)  # two and a half leases
    with pytest.raises(Busy):
        PostgresState(url).claim("run")
