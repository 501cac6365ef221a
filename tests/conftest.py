"""Shared test setup: hypothesis profiles, the bundled contracts, a clean environment."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import structlog
from hypothesis import HealthCheck, settings

from connector.mappingfiles import load_contracts
from connector.sla.contract import Contract

ROOT = Path(__file__).resolve().parent.parent
MAPPINGS = ROOT / "mappings"

# CI replays the same examples every run (a red run is reproducible); by hand, new ones.
settings.register_profile(
    "ci", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--long",
        action="store_true",
        help="run the reliability suites (fault soak, crash loop) at full length",
    )


@pytest.fixture(scope="session")
def long_run(request: pytest.FixtureRequest) -> bool:
    """Whether `--long` was given: the reliability suites then run at full length."""
    return bool(request.config.getoption("--long"))


@pytest.fixture(scope="session")
def contracts() -> dict[str, Contract]:
    """The five bundled contracts."""
    return load_contracts(MAPPINGS)


@pytest.fixture(scope="session")
def owned(contracts: dict[str, Contract]) -> frozenset[str]:
    """Every tag the bundled contracts emit: what the writers may remove."""
    return frozenset().union(*(c.owned_tags for c in contracts.values()))


def forget_admin_settings(monkeypatch: pytest.MonkeyPatch, *more: str) -> None:
    """No `SLA_CONNECTOR_*` setting or secret of the machine's administrator leaks into a test,
    nor its systemd folders (`more`: other variables to remove)."""
    for name in list(os.environ):
        if name.upper().startswith("SLA_CONNECTOR_"):
            monkeypatch.delenv(name)
    for name in ("CREDENTIALS_DIRECTORY", "STATE_DIRECTORY", *more):
        monkeypatch.delenv(name, raising=False)


@contextmanager
def logging_restored() -> Iterator[None]:
    """Put structlog and the root logger back as they were (commands configure logging)."""
    handlers = list(logging.getLogger().handlers)
    try:
        yield
    finally:
        structlog.reset_defaults()
        root = logging.getLogger()
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
                handler.close()


# --- a real PostgreSQL server (tests/postgres_server.py) ----------------------------------------

from tests.postgres_server import PostgresServer, PostgresUnavailable, database_name  # noqa: E402


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throw-away PostgreSQL server for the session (Unix socket only, trust, as the
    `postgres` OS user under root), stopped and removed at the end. Skipped when this machine has
    no PostgreSQL server binaries; CI sets SLA_CONNECTOR_REQUIRE_POSTGRES: there it fails."""
    try:
        server = PostgresServer()
    except PostgresUnavailable as missing:
        if os.environ.get("SLA_CONNECTOR_REQUIRE_POSTGRES"):
            pytest.fail(str(missing), pytrace=False)
        pytest.skip(str(missing))
    with server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """A libpq URL (`psycopg.connect(postgres_url)`) of a new, empty database of this test's own,
    on the session's server, as the superuser `postgres`; dropped after the test."""
    name = database_name(request.node.name)
    url = postgres_server.create_database(name)
    yield url
    postgres_server.drop_database(name)
