"""The daemon's memory: one SQLite database (WAL) in the state directory.

What it keeps, and why:
- `cursors`: where each poll or backfill stands. A cursor moves only after the writes of the
  page it covers are done (or journalled), so a restart re-reads at most one page.
- `tickets`: per ticket, the facts the quota ledger needs (the customer's other tickets of the
  open periods are read from here instead of the helpdesk), the fingerprint of the results last
  made true on the helpdesk and of the last note posted (a note is never posted twice).
- `journal`: a note-carrying write in flight. A row left behind means the process died between
  sending and recording: the helpdesk's conversation is read to learn whether the note landed.
- `wakeups`: when each ticket's decision next changes by itself (at risk, breached), so the
  daemon re-decides it then without waiting for anyone to touch it.
- `tokens`: rotated OAuth tokens (the refresh token changes on every refresh).

Writers serialize on an exclusive file lock (`writer()`), held per page: `run` and a
`backfill` may share the database, and a `kill -9` releases the lock with the process.
The file is created 0600 and every change is a transaction.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from connector.errors import ConfigError, ConnectorError, Problem
from connector.sla.model import TicketFacts
from connector.timeutil import from_epoch, to_epoch

__all__ = ["Busy", "State", "TicketRecord"]

# Each entry moves the schema one version up; never edit one that has shipped.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE cursors (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        changed_at INTEGER NOT NULL
    );
    CREATE TABLE tickets (
        ticket TEXT PRIMARY KEY,
        contract TEXT,
        customer TEXT,
        created_at INTEGER,
        facts TEXT,
        results TEXT,
        note TEXT
    );
    CREATE INDEX tickets_by_customer ON tickets (contract, customer, created_at);
    CREATE TABLE journal (
        ticket TEXT PRIMARY KEY,
        note TEXT NOT NULL,
        started_at INTEGER NOT NULL
    );
    CREATE TABLE wakeups (
        ticket TEXT PRIMARY KEY,
        at INTEGER NOT NULL
    );
    CREATE INDEX wakeups_by_time ON wakeups (at);
    CREATE TABLE tokens (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        changed_at INTEGER NOT NULL
    );
    """,
    # The ledger keeps a customer's tickets of a lifetime quota's categories whatever their age;
    # the category, indexed, finds them without reading the rest of the customer's history.
    """
    ALTER TABLE tickets ADD COLUMN category TEXT;
    UPDATE tickets SET category = facts_category(facts) WHERE facts IS NOT NULL;
    CREATE INDEX tickets_by_category ON tickets (contract, customer, category, created_at);
    """,
)


def _customer_window(
    contract: str, customer: str | None, since: datetime | None, until: datetime | None
) -> tuple[str, list[Any]]:
    """The WHERE clause (and its arguments) for one customer's tickets of one contract created
    in [since, until], either end open when None."""
    where = "contract = ? AND customer IS ?"
    args: list[Any] = [contract, customer]
    if since is not None:
        where += " AND created_at >= ?"
        args.append(to_epoch(since))
    if until is not None:
        where += " AND created_at <= ?"
        args.append(to_epoch(until))
    return where, args


@lru_cache(maxsize=2_000)
def _parsed(text: str) -> TicketFacts:
    """Stored facts as the engine's value, remembered: `explain` and `simulate` read the same
    neighbours for each ticket of a customer's period (the daemon reads them once into its
    ledger books). The facts are immutable, so sharing them is safe."""
    return TicketFacts.model_validate_json(text)


def _facts_category(text: str | None) -> str | None:
    """The category in stored facts (for the migration that added the column)."""
    if text is None:
        return None
    category = json.loads(text).get("category")
    return category if isinstance(category, str) else None


class Busy(ConnectorError):
    """Another process holds the writer lock (and `wait` was False)."""


@dataclass(frozen=True, slots=True)
class TicketRecord:
    """What the state knows about one ticket."""

    ticket: str
    facts: TicketFacts | None
    results: str | None
    note: str | None


class State:
    """One open state database. Not shared between threads."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        if not readonly:
            # Every folder made here is 0700 whatever the umask (mkdir's `parents` would make
            # the missing parents with the umask's mode, which another user could then swap).
            missing = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
            for folder in reversed(missing):
                folder.mkdir(mode=0o700, exist_ok=True)
            # Create it 0600 before SQLite opens it (SQLite would use the umask).
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
        uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
        self.db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30.0)
        try:
            self.db.execute("PRAGMA busy_timeout = 30000")
            self.db.create_function("facts_category", 1, _facts_category, deterministic=True)
            if not readonly:
                self.db.execute("PRAGMA journal_mode = WAL")
                self.db.execute("PRAGMA synchronous = FULL")
                self._migrate()
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise ConfigError(
                [Problem(str(path), "", f"is not a usable state database ({exc})")]
            ) from None
        except BaseException:  # a newer schema (ConfigError), an interrupt...
            self.db.close()
            raise
        self._lock_fd: int | None = None

    # --- schema ---------------------------------------------------------------------------

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise ConfigError(
                [
                    Problem(
                        str(self.path),
                        "",
                        f"schema version {version} is newer than this sla-connector "
                        f"understands ({len(MIGRATIONS)}); upgrade sla-connector",
                    )
                ]
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.transaction():
                for statement in script.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {number}")

    @property
    def schema_version(self) -> int:
        """The schema version of the open database."""
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic change: committed on success, rolled back on any exception."""
        if self.db.in_transaction:  # nested: part of the outer one
            yield
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    @contextmanager
    def writer(self, *, wait: bool = True) -> Iterator[None]:
        """Hold the exclusive writer lock (one process writes to the helpdesk at a time)."""
        if self._lock_fd is not None:
            yield
            return
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise Busy(f"{self.path}: another sla-connector process is writing") from None
        self._lock_fd = fd
        try:
            yield
        finally:
            self._lock_fd = None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def close(self) -> None:
        """Close the database."""
        self.db.close()

    def snapshot(self, path: Path) -> State:
        """A private copy of this database at `path` (for a dry run that changes nothing)."""
        copy = sqlite3.connect(path)
        try:
            self.db.backup(copy)
        finally:
            copy.close()
        os.chmod(path, 0o600)
        snapshot = State(path)
        # Thrown away at the end of the dry run: no commit of it needs to survive a crash.
        snapshot.db.execute("PRAGMA synchronous = OFF")
        return snapshot

    # --- cursors --------------------------------------------------------------------------

    def cursor(self, name: str) -> str | None:
        """The saved position `name`, if any."""
        row = self.db.execute("SELECT value FROM cursors WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def set_cursor(self, name: str, value: str, now: datetime) -> None:
        """Save the position `name`."""
        with self.transaction():
            self.db.execute(
                "INSERT INTO cursors (name, value, changed_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value, "
                "changed_at = excluded.changed_at",
                (name, value, to_epoch(now)),
            )

    def forget_cursor(self, *names: str) -> None:
        """Drop saved positions (the next pass starts from its beginning)."""
        with self.transaction():
            self.db.executemany("DELETE FROM cursors WHERE name = ?", [(n,) for n in names])

    def cursors(self, prefix: str = "") -> dict[str, str]:
        """Every saved position whose name starts with `prefix`."""
        rows = self.db.execute(
            "SELECT name, value FROM cursors WHERE substr(name, 1, ?) = ?", (len(prefix), prefix)
        )
        return {str(name): str(value) for name, value in rows}

    # --- tickets --------------------------------------------------------------------------

    def record(self, ticket: str) -> TicketRecord:
        """What is known about `ticket` (all None for a ticket never seen)."""
        row = self.db.execute(
            "SELECT facts, results, note FROM tickets WHERE ticket = ?", (ticket,)
        ).fetchone()
        if row is None:
            return TicketRecord(ticket, None, None, None)
        facts = None if row[0] is None else TicketFacts.model_validate_json(row[0])
        return TicketRecord(ticket, facts, row[1], row[2])

    def facts_json(self, ticket: str) -> str | None:
        """The stored facts of `ticket`, as JSON."""
        row = self.db.execute("SELECT facts FROM tickets WHERE ticket = ?", (ticket,)).fetchone()
        return None if row is None else row[0]

    def facts(self, ticket: str) -> TicketFacts | None:
        """The stored facts of `ticket` (None: none stored)."""
        text = self.facts_json(ticket)
        return None if text is None else _parsed(text)

    def data_version(self) -> int:
        """A number that changes when another connection commits a change to the file.

        SQLite's `PRAGMA data_version`: what this connection commits leaves it alone, so a
        cache of the state kept in step with this connection's own changes can tell when
        another process (a `backfill` beside the daemon) changed the file under it.
        """
        row = self.db.execute("PRAGMA data_version").fetchone()
        return int(row[0])

    def put_facts(self, facts: TicketFacts, facts_json: str | None = None) -> None:
        """Remember the facts of a ticket (the ledger counts them), replacing older ones."""
        text = facts_json if facts_json is not None else facts.model_dump_json()
        with self.transaction():
            self.db.execute(
                "INSERT INTO tickets (ticket, contract, customer, created_at, category, facts) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (ticket) DO UPDATE SET "
                "contract = excluded.contract, customer = excluded.customer, "
                "created_at = excluded.created_at, category = excluded.category, "
                "facts = excluded.facts",
                (
                    facts.id,
                    facts.contract,
                    facts.customer,
                    to_epoch(facts.created_at),
                    facts.category,
                    text,
                ),
            )

    def forget_facts(self, ticket: str) -> None:
        """Stop counting a ticket that can no longer be mapped."""
        with self.transaction():
            self.db.execute(
                "UPDATE tickets SET contract = NULL, customer = NULL, created_at = NULL, "
                "facts = NULL WHERE ticket = ?",
                (ticket,),
            )

    def customer_tickets(
        self,
        contract: str,
        customer: str | None,
        since: datetime | None,
        until: datetime | None,
        *,
        kept: frozenset[str] = frozenset(),
    ) -> Iterator[TicketFacts]:
        """The stored facts of one customer's tickets of one contract created in [since, until].

        Tickets of a category in `kept` created before `since` come too (a lifetime quota's).
        """
        where, args = _customer_window(contract, customer, since, until)
        query = f"SELECT facts, created_at FROM tickets WHERE {where}"
        if since is not None and kept:
            marks = ", ".join("?" * len(kept))
            older, older_args = _customer_window(contract, customer, None, None)
            query += (
                f" UNION ALL SELECT facts, created_at FROM tickets WHERE {older} "
                f"AND category IN ({marks}) AND created_at < ?"
            )
            args += [*older_args, *sorted(kept), to_epoch(since)]
        for text, _ in self.db.execute(query + " ORDER BY 2", args).fetchall():
            yield _parsed(text)

    def customer_results(
        self, contract: str, customer: str | None, since: datetime, until: datetime | None
    ) -> dict[str, str]:
        """The results fingerprint each counted ticket of the customer created then shows."""
        where, args = _customer_window(contract, customer, since, until)
        query = f"SELECT ticket, results FROM tickets WHERE {where} AND results IS NOT NULL"
        return dict(self.db.execute(query, args).fetchall())

    def set_written(self, ticket: str, results: str, note: str | None) -> None:
        """Record that the helpdesk shows `results` (a fingerprint) and, if given, `note`."""
        with self.transaction():
            self.db.execute(
                "INSERT INTO tickets (ticket, results, note) VALUES (?, ?, ?) "
                "ON CONFLICT (ticket) DO UPDATE SET results = excluded.results, "
                "note = coalesce(excluded.note, tickets.note)",
                (ticket, results, note),
            )
            self.db.execute("DELETE FROM journal WHERE ticket = ?", (ticket,))

    # --- the write journal ----------------------------------------------------------------

    def begin_note(self, ticket: str, fingerprint: str, now: datetime) -> None:
        """Journal a write carrying a note, before sending it."""
        with self.transaction():
            self.db.execute(
                "INSERT OR REPLACE INTO journal (ticket, note, started_at) VALUES (?, ?, ?)",
                (ticket, fingerprint, to_epoch(now)),
            )

    def pending_note(self, ticket: str) -> str | None:
        """The fingerprint of a note whose write may or may not have landed."""
        row = self.db.execute("SELECT note FROM journal WHERE ticket = ?", (ticket,)).fetchone()
        return None if row is None else str(row[0])

    def pending_notes(self) -> list[tuple[str, str]]:
        """Every (ticket, fingerprint) left in the journal."""
        rows = self.db.execute("SELECT ticket, note FROM journal ORDER BY ticket")
        return [(str(t), str(n)) for t, n in rows]

    def settle_note(self, ticket: str, landed: str | None) -> None:
        """Close a journal entry once the helpdesk said which note (if any) is there."""
        with self.transaction():
            if landed is not None:
                self.db.execute(
                    "INSERT INTO tickets (ticket, note) VALUES (?, ?) "
                    "ON CONFLICT (ticket) DO UPDATE SET note = excluded.note",
                    (ticket, landed),
                )
            self.db.execute("DELETE FROM journal WHERE ticket = ?", (ticket,))

    # --- wake-ups -------------------------------------------------------------------------

    def wake_at(self, ticket: str, at: datetime | None) -> None:
        """Re-decide `ticket` at `at` (None: never by itself)."""
        with self.transaction():
            if at is None:
                self.db.execute("DELETE FROM wakeups WHERE ticket = ?", (ticket,))
            else:
                self.db.execute(
                    "INSERT INTO wakeups (ticket, at) VALUES (?, ?) "
                    "ON CONFLICT (ticket) DO UPDATE SET at = excluded.at",
                    (ticket, to_epoch(at)),
                )

    def due_wakeups(self, now: datetime, limit: int = 1000) -> list[str]:
        """Tickets whose wake-up time has come, earliest first."""
        rows = self.db.execute(
            "SELECT ticket FROM wakeups WHERE at <= ? ORDER BY at, ticket LIMIT ?",
            (to_epoch(now), limit),
        )
        return [str(row[0]) for row in rows]

    def next_wakeup(self) -> datetime | None:
        """The earliest wake-up time, if any."""
        row = self.db.execute("SELECT min(at) FROM wakeups").fetchone()
        return None if row[0] is None else from_epoch(int(row[0]))

    def wakeup_of(self, ticket: str) -> datetime | None:
        """When `ticket` wakes up next, if ever."""
        row = self.db.execute("SELECT at FROM wakeups WHERE ticket = ?", (ticket,)).fetchone()
        return None if row is None else from_epoch(int(row[0]))

    # --- OAuth tokens ---------------------------------------------------------------------

    def token(self, name: str) -> dict[str, Any] | None:
        """A saved token set (as the JSON object it was saved as)."""
        row = self.db.execute("SELECT value FROM tokens WHERE name = ?", (name,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def set_token(self, name: str, value: dict[str, Any], now: datetime) -> None:
        """Save a token set, durably, before it is used."""
        with self.transaction():
            self.db.execute(
                "INSERT INTO tokens (name, value, changed_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value, "
                "changed_at = excluded.changed_at",
                (name, json.dumps(value), to_epoch(now)),
            )

    def forget_token(self, name: str) -> None:
        """Remove a saved token entry (no error if there is none)."""
        with self.transaction():
            self.db.execute("DELETE FROM tokens WHERE name = ?", (name,))

    # --- figures --------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """How many tickets, counted tickets, wake-ups and journal entries the state holds."""
        one = self.db.execute
        return {
            "tickets": int(one("SELECT count(*) FROM tickets").fetchone()[0]),
            "counted": int(
                one("SELECT count(*) FROM tickets WHERE facts IS NOT NULL").fetchone()[0]
            ),
            "wakeups": int(one("SELECT count(*) FROM wakeups").fetchone()[0]),
            "journal": int(one("SELECT count(*) FROM journal").fetchone()[0]),
        }
