"""The tests' PostgreSQL server (tests/postgres_server.py, fixtures `postgres_server` and
`postgres_url` in conftest): a real server, one empty database per test, nothing on TCP,
nothing left in the repository or behind it."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests import postgres_server as postgres_server_module
from tests.conftest import ROOT
from tests.postgres_server import PG_BIN_ENV, PostgresServer, find_bindir

SEEN_DATABASES: set[str] = set()


def psql(server: PostgresServer, url: str, sql: str) -> str:
    """`sql` run by the server's own psql through `url` (libpq's reading of the URL)."""
    done = subprocess.run(
        [str(server.bindir / "psql"), "-X", "-At", "-v", "ON_ERROR_STOP=1", url, "-c", sql],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


def test_psql_connects_through_the_url(postgres_server: PostgresServer, postgres_url: str) -> None:
    assert psql(postgres_server, postgres_url, "select 1") == "1"
    assert psql(postgres_server, postgres_url, "select current_user") == "postgres"


def test_psycopg_connects_through_the_url(postgres_url: str) -> None:
    psycopg = pytest.importorskip("psycopg")
    with psycopg.connect(postgres_url) as connection:
        assert connection.execute("select 1").fetchone() == (1,)
        assert connection.info.host.startswith("/")  # the socket folder, not a TCP host


@pytest.mark.parametrize("turn", ["first", "second"])
def test_each_test_has_its_own_empty_database(
    postgres_server: PostgresServer, postgres_url: str, turn: str
) -> None:
    """Both turns find their database empty and leave a table in it: were the database shared,
    the later turn would find the earlier one's table (or its name)."""
    tables = (
        "select count(*) from pg_tables"
        " where schemaname not in ('pg_catalog', 'information_schema')"
    )
    assert psql(postgres_server, postgres_url, tables) == "0"
    psql(postgres_server, postgres_url, f"create table left_by_{turn} (x int)")
    name = psql(postgres_server, postgres_url, "select current_database()")
    assert name not in SEEN_DATABASES
    SEEN_DATABASES.add(name)


def test_a_database_is_dropped_even_while_connected(postgres_server: PostgresServer) -> None:
    """What `postgres_url` does after each test: a connection a test left open does not stop it."""
    url = postgres_server.create_database("still_connected")
    with subprocess.Popen(
        [str(postgres_server.bindir / "psql"), "-X", url, "-c", "select pg_sleep(60)"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as client:
        waiting = "select count(*) from pg_stat_activity where datname = 'still_connected'"
        for _ in range(500):
            if postgres_server.psql(waiting) == "1":
                break
        postgres_server.drop_database("still_connected")
        assert client.wait(30) != 0  # disconnected by the server
    names = postgres_server.psql("select datname from pg_database").splitlines()
    assert "still_connected" not in names


def test_the_data_folder_is_a_private_temporary_one_outside_the_repository(
    postgres_server: PostgresServer,
) -> None:
    data = postgres_server.data_dir.resolve()
    assert (data / "PG_VERSION").is_file()
    assert not data.is_relative_to(ROOT.resolve())
    folder = postgres_server.folder
    assert folder is not None
    assert folder.stat().st_mode & 0o077 == 0  # trust authentication: nobody else reaches it
    expected_owner = os.geteuid() if os.geteuid() != 0 else (data / "PG_VERSION").stat().st_uid
    assert folder.stat().st_uid == expected_owner
    if os.geteuid() == 0:
        assert expected_owner != 0  # PostgreSQL runs as the `postgres` user, not root


def test_nothing_listens_on_tcp(postgres_server: PostgresServer, postgres_url: str) -> None:
    assert psql(postgres_server, postgres_url, "show listen_addresses") == ""
    # connected through the socket: the server has no address to report
    assert psql(postgres_server, postgres_url, "select inet_server_addr() is null") == "t"
    assert (postgres_server.socket_dir / ".s.PGSQL.5432").is_socket()


def test_a_second_server_starts_and_is_removed_when_stopped(
    postgres_server: PostgresServer,
) -> None:
    with PostgresServer(postgres_server.bindir) as server:
        folder = server.folder
        assert folder is not None
        assert folder != postgres_server.folder
        url = server.create_database("x")
        assert psql(server, url, "select current_database()") == "x"
    assert not folder.exists()
    assert server.folder is None
    server.stop()  # again: nothing to do


def test_a_server_that_fails_to_start_says_why_and_leaves_nothing(
    postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its `postgres` exits at once: the error carries the log's tail, the folder is gone."""
    made: list[str] = []
    mkdtemp = tempfile.mkdtemp
    monkeypatch.setattr(
        postgres_server_module.tempfile,
        "mkdtemp",
        lambda **kwargs: made.append(mkdtemp(**kwargs)) or made[-1],
    )
    fake = Path(mkdtemp(prefix="sla-connector-fake-pg-", dir="/tmp"))  # `postgres` reaches it
    try:
        fake.chmod(0o755)
        for tool in ("initdb", "pg_isready", "psql"):
            (fake / tool).symlink_to(postgres_server.bindir / tool)
        (fake / "postgres").write_text('#!/bin/sh\necho "FATAL:  pretend failure" >&2\nexit 3\n')
        (fake / "postgres").chmod(0o755)
        server = PostgresServer(fake)
        with pytest.raises(RuntimeError, match=r"exited \(3\)[\s\S]*pretend failure"):
            server.start()
        assert server.folder is None
        assert len(made) == 1
        assert not Path(made[0]).exists()
    finally:
        for child in fake.iterdir():
            child.unlink()
        fake.rmdir()


def test_a_named_binary_folder_without_initdb_is_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(PG_BIN_ENV, str(tmp_path))
    with pytest.raises(RuntimeError, match="no initdb there"):
        find_bindir()
