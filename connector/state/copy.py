"""Copying a state whole, from one backend to another, and proving the copy.

`state migrate --to postgresql://…` moves an existing SQLite state to a server; a dry run on a
server state works on a SQLite copy of it. Each table is copied in the key's order in one
transaction of the target, then both sides are read again and compared table by table: the
number of rows and a SHA-256 of the rows' values (the same on both backends: instants are
whole seconds in both, texts are texts).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from connector.errors import ConfigError, Problem
from connector.state.base import TABLES, Store

__all__ = ["TableCheck", "copy_state", "table_check"]


@dataclass(frozen=True, slots=True)
class TableCheck:
    """What a table holds: its rows' count and checksum."""

    table: str
    rows: int
    sha256: str


def table_check(state: Store, table: str) -> TableCheck:
    """The count and checksum of one table of `state`."""
    digest = hashlib.sha256()
    count = 0
    for row in state.table_rows(table):
        digest.update(json.dumps(list(row), ensure_ascii=False, separators=(",", ":")).encode())
        digest.update(b"\n")
        count += 1
    return TableCheck(table, count, digest.hexdigest())


def copy_state(source: Store, target: Store) -> list[TableCheck]:
    """Copy every table of `source` into the empty state `target`, then check that both hold
    the same rows; the checks of the copy, one per table.

    A target that holds anything is refused: the copy adds, it never merges or replaces.
    """
    held = {table: table_check(target, table).rows for table in TABLES}
    if any(held.values()):
        rows = ", ".join(f"{t} {n}" for t, n in held.items() if n)
        raise ConfigError(
            [
                Problem(
                    target.where, "", f"is not empty ({rows}): a state is copied into an empty one"
                )
            ]
        )
    with target.transaction():
        for table in TABLES:
            target.put_rows(table, source.table_rows(table))
    checks = []
    for table in TABLES:
        before, after = table_check(source, table), table_check(target, table)
        if before != after:
            raise ConfigError(
                [
                    Problem(
                        target.where,
                        table,
                        f"the copy differs from {source.where}: {after.rows} rows, sha256 "
                        f"{after.sha256[:16]}…, against {before.rows} rows, {before.sha256[:16]}…",
                    )
                ]
            )
        checks.append(after)
    return checks
