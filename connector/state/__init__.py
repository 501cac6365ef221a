"""The daemon's memory: cursors, the quota ledger's facts, the write journal, wake-ups, tokens.

Two backends with the same tables and queries (`base.Store`):
- `State`, one SQLite file in the state directory: the embedded default for one host;
- `PostgresState`, a PostgreSQL database (`state_url = "postgresql://…"`): for several hosts,
  with leases instead of file locks.

`open_state` opens the one the settings name.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from connector.state.base import (
    DEFAULT_TENANT,
    UNKNOWN_JOB,
    Busy,
    LeaseLost,
    StateUnavailable,
    Store,
    TicketRecord,
)
from connector.state.sqlite import State

if TYPE_CHECKING:
    from connector.config import Settings

__all__ = [
    "DEFAULT_TENANT",
    "UNKNOWN_JOB",
    "Busy",
    "LeaseLost",
    "State",
    "StateUnavailable",
    "Store",
    "TicketRecord",
    "is_server_url",
    "open_state",
    "open_state_at",
]


def is_server_url(where: str) -> bool:
    """Whether `where` names a PostgreSQL server rather than a file."""
    return where.startswith(("postgresql://", "postgres://"))


def open_state_at(
    where: str | Path,
    *,
    readonly: bool = False,
    new_state: bool = False,
    password: str | None = None,
) -> Store:
    """The state at a path (SQLite) or a `postgresql://` URL (`password`: the server's)."""
    if isinstance(where, str) and is_server_url(where):
        from connector.state.postgres import PostgresState  # psycopg only where it is used

        return PostgresState(where, readonly=readonly, new_state=new_state, password=password)
    return State(Path(where), readonly=readonly, new_state=new_state)


def open_state(
    settings: Settings,
    *,
    readonly: bool = False,
    new_state: bool = False,
    owner: str | None = None,
) -> Store:
    """The state the settings name, as a view of their tenant's rows: `state_url` when set
    (its password the secret `state_password`, if set), else the file in `state_dir`.
    `owner`: who holds the leases taken through it (a daemon's tenants share its name)."""
    from connector.config import secret

    if settings.state_url is None:
        return State(
            settings.state_file, readonly=readonly, new_state=new_state, tenant=settings.tenant
        )
    password = secret("state_password")
    if password is not None:
        from connector import logs

        logs.register_secret(password.get_secret_value())
    from connector.state.postgres import PostgresState

    return PostgresState(
        settings.state_url,
        readonly=readonly,
        new_state=new_state,
        password=password.get_secret_value() if password is not None else None,
        # The writer's lease runs out as fast as the claim: a standby that took over after
        # a holder's death must not then wait longer for the writer's.
        claim_seconds=settings.state_lease_seconds,
        writer_seconds=settings.state_lease_seconds,
        tenant=settings.tenant,
        owner=owner,
    )
