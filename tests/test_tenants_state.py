"""Tenants in the state (issue 21): every row carries its tenant, each view sees its own only,
on both backends; states from before tenants keep their rows as the `default` tenant's; leases,
writer locks and the change counter are per tenant."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from connector.errors import ConfigError
from connector.sla.model import TicketFacts
from connector.state import Busy, LeaseLost, State, StateUnavailable, Store
from connector.state.copy import copy_state
from connector.state.postgres import PostgresState, close_pools
from connector.state.schema import POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

Opener = Callable[[str], Store]


@pytest.fixture(params=["sqlite", "postgresql"])
def open_view(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens views of one state, each for a tenant, on either backend."""
    opened: list[Store] = []

    def open_for(tenant: str) -> Store:
        if request.param == "sqlite":
            view: Store = State(tmp_path / "state.sqlite3", tenant=tenant)
        else:
            view = PostgresState(request.getfixturevalue("postgres_url"), tenant=tenant)
        opened.append(view)
        return view

    yield open_for
    for view in opened:
        view.close()
    if request.param == "postgresql":
        close_pools()


def facts(ticket: str, created: datetime, customer: str = "org-1") -> TicketFacts:
    return TicketFacts(id=ticket, created_at=created, contract="pixelz", customer=customer)


def fill(view: Store, word: str) -> None:
    """The same keys in every table, with values that name the tenant (`word`)."""
    view.set_cursor("poll", word, NOW)
    view.put_facts(facts("1", NOW, customer=f"org-{word}"))
    view.set_written("1", f"results-{word}", f"note-{word}")
    view.begin_note("2", f"pending-{word}", NOW)
    view.wake_at("1", NOW + timedelta(hours=1 if word == "a" else 2))
    view.set_token("oauth", {"who": word}, NOW)


def test_each_tenant_sees_its_own_rows_only(open_view: Opener) -> None:
    a, b, c = open_view("a"), open_view("b"), open_view("c")
    fill(a, "a")
    fill(b, "b")
    for view, word in ((a, "a"), (b, "b")):
        assert view.cursor("poll") == word
        assert view.cursors() == {"poll": word}
        record = view.record("1")
        assert record.facts is not None
        assert record.facts.customer == f"org-{word}"
        assert (record.results, record.note) == (f"results-{word}", f"note-{word}")
        assert view.pending_notes() == [("2", f"pending-{word}")]
        assert view.token("oauth") == {"who": word}
        assert [t.customer for t in view.facts_in_order()] == [f"org-{word}"]
        assert list(view.customer_tickets("pixelz", f"org-{word}", None, None))
        assert not list(
            view.customer_tickets("pixelz", "org-b" if word == "a" else "org-a", None, None)
        )
        assert view.counts() == {"tickets": 1, "counted": 1, "wakeups": 1, "journal": 1}
    assert a.next_wakeup() == NOW + timedelta(hours=1)
    assert b.next_wakeup() == NOW + timedelta(hours=2)
    assert a.due_wakeups(NOW + timedelta(hours=1)) == ["1"]
    assert b.due_wakeups(NOW + timedelta(hours=1)) == []
    # A tenant with nothing yet sees nothing of the others'.
    assert c.cursor("poll") is None
    assert c.record("1").results is None
    assert c.counts() == {"tickets": 0, "counted": 0, "wakeups": 0, "journal": 0}
    assert c.next_wakeup() is None
    assert c.token("oauth") is None
    assert c.pending_notes() == []
    # Changes to one leave the other's alone.
    a.forget_cursor("poll")
    a.settle_note("2", None)
    a.wake_at("1", None)
    a.forget_token("oauth")
    assert b.cursor("poll") == "b"
    assert b.pending_notes() == [("2", "pending-b")]
    assert b.next_wakeup() is not None
    assert b.token("oauth") == {"who": "b"}
    assert set(a.tenants()) == {"a", "b"}
    assert a.tenants()[0] == "a"


def test_copying_a_state_carries_every_tenant(open_view: Opener, tmp_path: Path) -> None:
    a, b = open_view("a"), open_view("b")
    fill(a, "a")
    fill(b, "b")
    copy = State(tmp_path / "copy.sqlite3", tenant="b")
    try:
        checks = copy_state(a, copy)
        assert {c.table: c.rows for c in checks} == {
            "cursors": 2,
            "tickets": 2,
            "journal": 2,
            "wakeups": 2,
            "tokens": 2,
        }
        assert copy.cursor("poll") == "b"
        assert copy.token("oauth") == {"who": "b"}
    finally:
        copy.close()


def test_a_state_from_before_tenants_is_the_default_tenants(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    db = sqlite3.connect(path)
    db.create_function("facts_category", 1, lambda _: None)  # the migration's helper
    db.executescript(";".join(SQLITE_MIGRATIONS[:4]) + "; PRAGMA user_version = 4;")
    db.execute("INSERT INTO cursors VALUES ('poll', 'p', 1)")
    db.execute(
        "INSERT INTO tickets (ticket, contract, customer, created_at, facts, results, note) "
        "VALUES ('7', 'pixelz', 'org-1', ?, ?, 'r', 'n')",
        (int(NOW.timestamp()), facts("7", NOW).model_dump_json()),
    )
    db.execute("INSERT INTO journal VALUES ('8', 'f', 1, 'job-1')")
    db.execute("INSERT INTO wakeups VALUES ('7', ?)", (int(NOW.timestamp()),))
    db.execute("""INSERT INTO tokens VALUES ('oauth', '{"x": 1}', 1)""")
    db.commit()
    db.close()
    state = State(path)
    try:
        assert state.schema_version == len(SQLITE_MIGRATIONS)
        assert state.cursor("poll") == "p"
        assert state.record("7").results == "r"
        assert state.facts("7") == facts("7", NOW)
        assert state.pending_job("8") == ("job-1", datetime.fromtimestamp(1, UTC))
        assert state.due_wakeups(NOW) == ["7"]
        assert state.token("oauth") == {"x": 1}
        assert state.tenants() == ["default"]
    finally:
        state.close()
    other = State(path, tenant="acme")
    try:
        assert other.cursor("poll") is None
        assert other.counts()["tickets"] == 0
    finally:
        other.close()


def test_writer_locks_are_per_tenant_on_a_file(tmp_path: Path) -> None:
    a = State(tmp_path / "state.sqlite3", tenant="a")
    again = State(tmp_path / "state.sqlite3", tenant="a")
    b = State(tmp_path / "state.sqlite3", tenant="b")
    try:
        with a.writer(wait=False):
            with b.writer(wait=False):  # another account's writer is not held up
                b.set_cursor("poll", "b", NOW)
            with pytest.raises(Busy, match="for tenant a"), again.writer(wait=False):
                pass
    finally:
        for view in (a, again, b):
            view.close()


# --- on a server ------------------------------------------------------------------------------


def test_a_server_state_from_before_tenants_is_the_default_tenants(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for statement in POSTGRES_MIGRATIONS[0].split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version VALUES (1)")
        conn.execute("INSERT INTO cursors VALUES ('poll', 'p', 1)")
        conn.execute("INSERT INTO tickets (ticket, results, note) VALUES ('7', 'r', 'n')")
        conn.execute("INSERT INTO wakeups VALUES ('7', %s)", (int(NOW.timestamp()),))
        conn.execute("INSERT INTO leases VALUES ('daemon', 'old', 0, 5)")
    state = PostgresState(postgres_url)
    try:
        assert state.schema_version == len(POSTGRES_MIGRATIONS)
        assert state.cursor("poll") == "p"
        assert state.record("7").results == "r"
        assert state.due_wakeups(NOW) == ["7"]
        assert state.lease("tenant:default") == (None, 0.0, 5)  # its epoch goes on growing
        state.claim("run")
        assert state.lease("tenant:default") == (
            state.owner,
            pytest.approx(time.time() + 30, abs=5),
            6,
        )
    finally:
        state.close()
        close_pools()


def test_leases_are_per_tenant_and_fence_each_alone(postgres_url: str) -> None:
    first_a = PostgresState(postgres_url, tenant="a", claim_seconds=3.0, owner="first")
    first_b = PostgresState(postgres_url, tenant="b", claim_seconds=3.0, owner="first")
    second_a = PostgresState(postgres_url, tenant="a", claim_seconds=3.0, owner="second")
    second_b = PostgresState(postgres_url, tenant="b", claim_seconds=3.0, owner="second")
    try:
        first_a.claim("run")
        second_b.claim("run")  # another tenant: free
        with pytest.raises(Busy, match="tenant a is held by first"):
            second_a.claim("run")
        with pytest.raises(Busy, match="tenant b is held by second"):
            first_b.claim("run")
        # The first stalls past its lease on `a`: the second takes `a`; the first's next write
        # to `a` is refused, and `b` stays the second's.
        time.sleep(3.2)
        second_a.claim("run")
        with pytest.raises(LeaseLost):
            first_a.set_cursor("poll", "late", NOW)
        second_a.set_cursor("poll", "second", NOW)
        second_b.set_cursor("poll", "second", NOW)
        assert first_a.cursor("poll") == "second"
        said = second_a.holders()
        assert any(s.startswith("tenant a: held by second until ") for s in said), said
        assert any(s.startswith("tenant b: held by second until ") for s in said), said
    finally:
        for view in (first_a, first_b, second_a, second_b):
            view.close()
        close_pools()


def test_the_change_counter_is_per_tenant(open_view: Opener) -> None:
    """Another tenant's writes leave a view's cache valid; the same tenant's from elsewhere
    (a backfill beside the daemon) do not; its own never do."""
    a, b, other_a = open_view("a"), open_view("b"), open_view("a")
    seen = a.data_version()
    b.set_cursor("poll", "b", NOW)
    assert a.data_version() == seen
    a.set_cursor("poll", "a", NOW)
    assert a.data_version() == seen
    other_a.set_cursor("poll", "a2", NOW)
    assert a.data_version() != seen


def test_waiting_for_the_writer_keeps_the_claim_and_can_be_stopped(postgres_url: str) -> None:
    """A backfill's page holds the tenant's writer past the lease: the daemon waiting for it
    keeps its claim renewed (no other daemon takes the tenant), hears `waiting` all along, and
    a stop raised there ends the wait."""
    daemon = PostgresState(postgres_url, tenant="a", claim_seconds=3.0, writer_seconds=3.0)
    backfill = PostgresState(postgres_url, tenant="a", writer_seconds=3.0)
    other = PostgresState(postgres_url, tenant="a", owner="other")
    heard: list[float] = []
    try:
        daemon.claim("run")
        held = threading.Event()

        def page() -> None:  # a backfill's page: the writer held past the lease
            with backfill.writer():
                held.set()
                for _ in range(3):
                    time.sleep(1.5)
                    backfill.set_cursor("page", "on", NOW)  # renews its hold

        thread = threading.Thread(target=page)
        thread.start()
        held.wait()
        daemon.waiting = lambda: heard.append(time.monotonic())
        with daemon.writer():  # waits the page out, its claim renewed meanwhile
            daemon.set_cursor("poll", "daemon", NOW)
        thread.join()
        assert len(heard) >= 5
        with pytest.raises(Busy):
            other.claim("run")
        assert daemon.cursor("poll") == "daemon"

        def stop() -> None:
            raise KeyboardInterrupt

        daemon.waiting = stop
        with backfill.writer(), pytest.raises(KeyboardInterrupt), daemon.writer():
            pass
    finally:
        for view in (daemon, backfill, other):
            view.close()
        close_pools()


def test_a_file_writer_waiting_hears_and_can_be_stopped(tmp_path: Path) -> None:
    holder = State(tmp_path / "state.sqlite3", tenant="a")
    waiter = State(tmp_path / "state.sqlite3", tenant="a")
    calls = []

    def stop() -> None:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt

    waiter.waiting = stop
    try:
        with holder.writer(), pytest.raises(KeyboardInterrupt), waiter.writer():
            pass
        assert len(calls) == 3
        with waiter.writer():  # the lock file was not left open or held
            pass
    finally:
        holder.close()
        waiter.close()


def test_a_daemons_own_lease_goes_with_it(postgres_url: str) -> None:
    views = [PostgresState(postgres_url) for _ in range(3)]
    try:
        for view in views:
            view.announce()
        daemons, _ = views[0].served()
        assert daemons == sorted(v.owner for v in views)
        views[1].announce(alive=False)  # failing everything: no longer counted
        assert views[0].served()[0] == sorted(v.owner for v in (views[0], views[2]))
        for view in views:
            view.close()
        with psycopg.connect(postgres_url) as conn:
            row = conn.execute("SELECT count(*) FROM leases WHERE name LIKE 'daemon:%'").fetchone()
        assert row == (0,)
    finally:
        close_pools()


def test_an_older_daemon_holding_a_file_keeps_its_schema(tmp_path: Path) -> None:
    """An older daemon runs on the state: this version does not change the tables under it
    (its every write would fail); it waits (exit 1, tried again) until that one stops."""
    import fcntl
    import os

    path = tmp_path / "state.sqlite3"
    db = sqlite3.connect(path)
    db.create_function("facts_category", 1, lambda _: None)
    db.executescript(";".join(SQLITE_MIGRATIONS[:4]) + "; PRAGMA user_version = 4;")
    db.close()
    claim = os.open(tmp_path / "state.sqlite3.claim", os.O_RDWR | os.O_CREAT, 0o600)
    os.write(claim, b"sla-connector run (pid 4242, since 2026-12-01T00:00:00+00:00)")
    fcntl.flock(claim, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        with pytest.raises(
            StateUnavailable,
            match=r"schema version 4 is to be upgraded to 5, but it is held by sla-connector run "
            r"\(pid 4242",
        ):
            State(path)
    finally:
        os.close(claim)
    assert State(path).schema_version == len(SQLITE_MIGRATIONS)  # once it stopped


def test_a_state_read_as_it_is_must_be_of_this_version(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    db = sqlite3.connect(path)
    db.create_function("facts_category", 1, lambda _: None)
    db.executescript(";".join(SQLITE_MIGRATIONS[:4]) + "; PRAGMA user_version = 4;")
    db.close()
    with pytest.raises(ConfigError, match="schema version 4 is older than this sla-connector's"):
        State(path, readonly=True)


def test_a_daemons_connections_are_as_many_as_it_is_allowed(postgres_url: str) -> None:
    """The fleet sizes the pool to its tenants, at most `state_connections`: what it asks
    for is what the pool holds, however small."""
    from connector.state.postgres import _registry, resize_pool

    view = PostgresState(postgres_url)
    try:
        for asked in (3, 12, 2):
            resize_pool(postgres_url, asked)
            assert _registry.pools[postgres_url].max_size == asked
    finally:
        view.close()
        close_pools()
