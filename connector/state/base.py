"""What every state backend keeps, and the SQL they share.

`Store` holds the queries; a backend (`sqlite.State`, `postgres.PostgresState`) supplies the
connection, transactions, the writer's lock and the few statements that differ. Queries are
written with `?` placeholders; a backend rewrites them to its driver's style once.

What the state keeps, and why:
- `cursors`: where each poll or backfill stands. A cursor moves only after the writes of the
  page it covers are done (or journalled), so a restart re-reads at most one page.
- `tickets`: per ticket, the facts the quota ledger needs (the customer's other tickets of the
  open periods are read from here instead of the helpdesk), the fingerprint of the results last
  made true on the helpdesk and of the last note posted (a note is never posted twice).
- `journal`: a note-carrying write in flight. A row left behind means the process died between
  sending and recording: the helpdesk's conversation is read to learn whether the note landed,
  or, for a write sent in a batch job whose id came back, the job's own results.
- `wakeups`: when each ticket's decision next changes by itself (at risk, breached), so the
  daemon re-decides it then without waiting for anyone to touch it.
- `tokens`: rotated OAuth tokens (the refresh token changes on every refresh).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from connector.errors import ConfigError, ConnectorError, Problem
from connector.sla.model import StatusChange, TicketFacts
from connector.timeutil import from_epoch, to_epoch

__all__ = [
    "DEFAULT_TENANT",
    "TABLES",
    "UNKNOWN_JOB",
    "Busy",
    "LeaseLost",
    "StateUnavailable",
    "Store",
    "TicketRecord",
    "schema_mismatch",
]

_STATUS_HISTORY = TypeAdapter(list[StatusChange])
# The job of a journalled write sent in a batch job whose id the helpdesk has not given (yet):
# the job may run later, so the write is settled only just before the ticket's next write.
UNKNOWN_JOB = "?"

# Every table of the state and its columns, in the order a copy reads and writes them (the
# first two columns are the key: the tenant, then the row's own): `state migrate` copies
# these, and checks them, table by table.
TABLES: dict[str, tuple[str, ...]] = {
    "cursors": ("tenant", "name", "value", "changed_at"),
    "tickets": (
        "tenant",
        "ticket",
        "contract",
        "customer",
        "created_at",
        "facts",
        "results",
        "note",
        "category",
        "statuses",
    ),
    "journal": ("tenant", "ticket", "note", "started_at", "job"),
    "wakeups": ("tenant", "ticket", "at"),
    "tokens": ("tenant", "name", "value", "changed_at"),
}
# The tenant of a configuration that names one helpdesk account (no `[[tenants]]`).
DEFAULT_TENANT = "default"


class Busy(ConnectorError):
    """Another process holds the writer lock (and `wait` was False), or claimed the state."""


class StateUnavailable(ConnectorError):
    """The state database cannot be used now (disk full, I/O error, locked, server down): may
    pass.

    Exit status 1, not 2: systemd restarts the service once the cause is gone.
    """


class LeaseLost(StateUnavailable):
    """This process's lease on a shared state passed to another (it stalled past its expiry):
    nothing it does now may change the state."""


def schema_mismatch(where: str, version: int, known: int) -> ConfigError:
    """A state read as it is, of another schema version than this sla-connector's."""
    if version > known:
        why = (
            f"schema version {version} is newer than this sla-connector understands "
            f"({known}); upgrade sla-connector"
        )
    else:
        why = (
            f"schema version {version} is older than this sla-connector's ({known}): start the "
            "daemon, or run `sla-connector check`, once to upgrade it"
        )
    return ConfigError([Problem(where, "", why)])


@dataclass(frozen=True, slots=True)
class TicketRecord:
    """What the state knows about one ticket."""

    ticket: str
    facts: TicketFacts | None
    results: str | None
    note: str | None


@lru_cache(maxsize=2_000)
def _parsed(text: str) -> TicketFacts:
    """Stored facts as the engine's value, remembered: `explain` and `simulate` read the same
    neighbours for each ticket of a customer's period (the daemon reads them once into its
    ledger books). The facts are immutable, so sharing them is safe."""
    return TicketFacts.model_validate_json(text)


class Store(ABC):
    """One tenant's view of an open state (every row it reads or writes is that tenant's).
    Not shared between threads."""

    # Where the state is, for messages (a path, or a URL without its password).
    where: str
    # Whether daemons on several hosts share it (a server): a claim is then a lease, and a
    # second daemon may stand by for it instead of refusing to start.
    shared = False
    # The helpdesk account whose rows this view reads and writes.
    tenant: str = DEFAULT_TENANT
    # Called while `writer()` waits for another process's hold (a backfill's page): the
    # daemon keeps its watchdog fed there, and gives up the wait (raises) when stopped.
    waiting: Callable[[], None] | None = None

    # --- what a backend supplies ----------------------------------------------------------

    @abstractmethod
    def _one(self, sql: str, args: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """The first row of a query (None: no row)."""

    @abstractmethod
    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Every row of a query."""

    def _stream(self, sql: str, args: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        """The rows of a query one at a time, for queries over the whole state (a backend
        that can streams them; this one reads them all first)."""
        yield from self._rows(sql, args)

    @abstractmethod
    def _run(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run a statement; the number of rows it changed."""

    @abstractmethod
    def _run_many(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        """Run a statement once for each set of arguments."""

    @abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """One atomic change: committed on success, rolled back on any exception; nested, part
        of the outer one."""

    @abstractmethod
    def writer(self, *, wait: bool = True) -> AbstractContextManager[None]:
        """Hold the exclusive writer lock (one process writes to the helpdesk at a time)."""

    @abstractmethod
    def claim(self, command: str) -> None:
        """Hold the state for this process's life: a second daemon on it refuses to start."""

    @abstractmethod
    def close(self) -> None:
        """Close the state (and give up a claim)."""

    @abstractmethod
    def snapshot(self, path: Path) -> Store:
        """A private copy of this state at `path` (for a dry run that changes nothing)."""

    @property
    @abstractmethod
    def schema_version(self) -> int:
        """The schema version of the open state."""

    @abstractmethod
    def data_version(self) -> int:
        """A number that changes when another connection commits a change, and only then:
        what this one commits leaves it alone. A cache kept in step with this connection's own
        changes can tell when another process (a `backfill` beside the daemon) changed the
        state under it."""

    @property
    def keep_every(self) -> float | None:
        """How often a long-running process must call `keep` to hold its claim (None: never;
        a file lock lasts as long as the process)."""
        return None

    def keep(self) -> None:
        """Renew what this process holds on a shared state (nothing for a file)."""
        return

    def holders(self) -> list[str]:
        """Who holds the state now, in words (`check` shows them): none by default."""
        return []

    def announce(self, alive: bool = True) -> None:
        """Say that this process's daemon is alive and well (or no longer), to the others
        sharing the state (nothing for a file: one daemon holds it)."""
        return

    def served(self) -> tuple[list[str], dict[str, str]]:
        """The daemons alive and well, and who serves each tenant now (a file: none known)."""
        return [], {}

    # --- cursors --------------------------------------------------------------------------

    def cursor(self, name: str) -> str | None:
        """The saved position `name`, if any."""
        row = self._one(
            "SELECT value FROM cursors WHERE tenant = ? AND name = ?", (self.tenant, name)
        )
        return None if row is None else str(row[0])

    def set_cursor(self, name: str, value: str, now: datetime) -> None:
        """Save the position `name`."""
        with self.transaction():
            self._run(
                "INSERT INTO cursors (tenant, name, value, changed_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (tenant, name) DO UPDATE SET value = excluded.value, "
                "changed_at = excluded.changed_at",
                (self.tenant, name, value, to_epoch(now)),
            )

    def forget_cursor(self, *names: str) -> None:
        """Drop saved positions (the next pass starts from its beginning)."""
        with self.transaction():
            self._run_many(
                "DELETE FROM cursors WHERE tenant = ? AND name = ?",
                [(self.tenant, n) for n in names],
            )

    def cursors(self, prefix: str = "") -> dict[str, str]:
        """Every saved position whose name starts with `prefix`."""
        rows = self._rows(
            "SELECT name, value FROM cursors WHERE tenant = ? AND substr(name, 1, ?) = ?",
            (self.tenant, len(prefix), prefix),
        )
        return {str(name): str(value) for name, value in rows}

    # --- tickets --------------------------------------------------------------------------

    def record(self, ticket: str) -> TicketRecord:
        """What is known about `ticket` (all None for a ticket never seen)."""
        row = self._one(
            "SELECT facts, results, note FROM tickets WHERE tenant = ? AND ticket = ?",
            (self.tenant, ticket),
        )
        if row is None:
            return TicketRecord(ticket, None, None, None)
        facts = None if row[0] is None else TicketFacts.model_validate_json(row[0])
        return TicketRecord(ticket, facts, row[1], row[2])

    def facts_json(self, ticket: str) -> str | None:
        """The stored facts of `ticket`, as JSON."""
        row = self._one(
            "SELECT facts FROM tickets WHERE tenant = ? AND ticket = ?", (self.tenant, ticket)
        )
        return None if row is None else row[0]

    def facts(self, ticket: str) -> TicketFacts | None:
        """The stored facts of `ticket` (None: none stored)."""
        text = self.facts_json(ticket)
        return None if text is None else _parsed(text)

    def put_facts(self, facts: TicketFacts, facts_json: str | None = None) -> None:
        """Remember the facts of a ticket (the ledger counts them), replacing older ones."""
        text = facts_json if facts_json is not None else facts.model_dump_json()
        with self.transaction():
            self._run(
                "INSERT INTO tickets (tenant, ticket, contract, customer, created_at, category, "
                "facts) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant, ticket) DO UPDATE SET "
                "contract = excluded.contract, customer = excluded.customer, "
                "created_at = excluded.created_at, category = excluded.category, "
                "facts = excluded.facts",
                (
                    self.tenant,
                    facts.id,
                    facts.contract,
                    facts.customer,
                    to_epoch(facts.created_at),
                    facts.category,
                    text,
                ),
            )

    def written(self, ticket: str) -> bool:
        """Whether results were ever recorded for `ticket` (it has been written, or decided)."""
        row = self._one(
            "SELECT 1 FROM tickets WHERE tenant = ? AND ticket = ? AND results IS NOT NULL",
            (self.tenant, ticket),
        )
        return row is not None

    def status_history(self, ticket: str) -> list[StatusChange]:
        """The status changes seen on `ticket`, oldest first (empty: none seen yet)."""
        row = self._one(
            "SELECT statuses FROM tickets WHERE tenant = ? AND ticket = ?", (self.tenant, ticket)
        )
        if row is None or row[0] is None:
            return []
        return _STATUS_HISTORY.validate_json(row[0])

    def set_status_history(self, ticket: str, history: Sequence[StatusChange]) -> None:
        """Replace the status changes kept for `ticket`."""
        text = _STATUS_HISTORY.dump_json(list(history)).decode()
        with self.transaction():
            self._run(
                "INSERT INTO tickets (tenant, ticket, statuses) VALUES (?, ?, ?) "
                "ON CONFLICT (tenant, ticket) DO UPDATE SET statuses = excluded.statuses",
                (self.tenant, ticket, text),
            )

    def forget_facts(self, ticket: str) -> None:
        """Stop counting a ticket that can no longer be mapped."""
        with self.transaction():
            self._run(
                "UPDATE tickets SET contract = NULL, customer = NULL, created_at = NULL, "
                "facts = NULL WHERE tenant = ? AND ticket = ?",
                (self.tenant, ticket),
            )

    def _customer_window(
        self,
        contract: str,
        customer: str | None,
        since: datetime | None,
        until: datetime | None,
    ) -> tuple[str, list[Any]]:
        """The WHERE clause (and its arguments) for one customer's tickets of one contract
        created in [since, until], either end open when None."""
        # `customer IS ?` would say it in one, but PostgreSQL's IS NOT DISTINCT FROM uses no
        # index: the two cases are written apart.
        args: list[Any] = [self.tenant, contract]
        if customer is None:
            where = "tenant = ? AND contract = ? AND customer IS NULL"
        else:
            where = "tenant = ? AND contract = ? AND customer = ?"
            args.append(customer)
        if since is not None:
            where += " AND created_at >= ?"
            args.append(to_epoch(since))
        if until is not None:
            where += " AND created_at <= ?"
            args.append(to_epoch(until))
        return where, args

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
        where, args = self._customer_window(contract, customer, since, until)
        query = f"SELECT facts, created_at FROM tickets WHERE {where}"
        if since is not None and kept:
            marks = ", ".join("?" * len(kept))
            older, older_args = self._customer_window(contract, customer, None, None)
            query += (
                f" UNION ALL SELECT facts, created_at FROM tickets WHERE {older} "
                f"AND category IN ({marks}) AND created_at < ?"
            )
            args += [*older_args, *sorted(kept), to_epoch(since)]
        for text, _ in self._rows(query + " ORDER BY 2", args):
            yield _parsed(text)

    def facts_in_order(
        self,
        until: datetime | None = None,
        contract: str | None = None,
        *,
        by_customer: bool = False,
    ) -> Iterator[TicketFacts]:
        """Every counted ticket's stored facts in order of creation (ties by id), created
        before `until` and of `contract` when given: what a report decides again;
        `by_customer`: customer by customer, each customer's in order of creation."""
        query = (
            "SELECT facts FROM tickets WHERE tenant = ? AND facts IS NOT NULL "
            "AND created_at IS NOT NULL"
        )
        args: list[Any] = [self.tenant]
        if contract is not None:
            query += " AND contract = ?"
            args.append(contract)
        if until is not None:
            query += " AND created_at < ?"
            args.append(to_epoch(until))
        order = "customer, created_at, ticket" if by_customer else "created_at, ticket"
        for (text,) in self._stream(f"{query} ORDER BY {order}", args):
            yield TicketFacts.model_validate_json(text)

    def written_without_facts(self) -> int:
        """Tickets written but with no facts kept: unmapped ones, and those a version before
        0.2 wrote (it kept facts only where a quota counts them)."""
        row = self._one(
            "SELECT count(*) FROM tickets WHERE tenant = ? AND results IS NOT NULL "
            "AND facts IS NULL",
            (self.tenant,),
        )
        return 0 if row is None else int(row[0])

    def contracts_counted(self) -> list[str]:
        """The contracts the stored facts name."""
        rows = self._rows(
            "SELECT DISTINCT contract FROM tickets WHERE tenant = ? AND facts IS NOT NULL",
            (self.tenant,),
        )
        return sorted(str(row[0]) for row in rows if row[0] is not None)

    def customer_results(
        self, contract: str, customer: str | None, since: datetime, until: datetime | None
    ) -> dict[str, str]:
        """The results fingerprint each counted ticket of the customer created then shows."""
        where, args = self._customer_window(contract, customer, since, until)
        query = f"SELECT ticket, results FROM tickets WHERE {where} AND results IS NOT NULL"
        return {str(ticket): str(results) for ticket, results in self._rows(query, args)}

    def set_written(self, ticket: str, results: str, note: str | None) -> None:
        """Record that the helpdesk shows `results` (a fingerprint) and, if given, `note`."""
        with self.transaction():
            self._run(
                "INSERT INTO tickets (tenant, ticket, results, note) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (tenant, ticket) DO UPDATE SET results = excluded.results, "
                "note = coalesce(excluded.note, tickets.note)",
                (self.tenant, ticket, results, note),
            )
            self._run("DELETE FROM journal WHERE tenant = ? AND ticket = ?", (self.tenant, ticket))

    # --- the write journal ----------------------------------------------------------------

    def begin_note(
        self, ticket: str, fingerprint: str, now: datetime, job: str | None = None
    ) -> None:
        """Journal a write carrying a note, before sending it (`job`: in a batch job, its id
        or `UNKNOWN_JOB` until the helpdesk gave one)."""
        with self.transaction():
            # A write after one whose batch job's id never came back stays `UNKNOWN_JOB`
            # until settled: that job may still run (see `Sync._settle_journalled`).
            self._run(
                "INSERT INTO journal (tenant, ticket, note, started_at, job) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant, ticket) DO UPDATE SET "
                "note = excluded.note, "
                "started_at = excluded.started_at, "
                "job = CASE WHEN excluded.job IS NULL AND journal.job = ? THEN journal.job "
                "ELSE excluded.job END",
                (self.tenant, ticket, fingerprint, to_epoch(now), job, UNKNOWN_JOB),
            )

    def set_job(self, tickets: Sequence[str], job: str) -> None:
        """Record the batch job that carries these journalled writes."""
        with self.transaction():
            self._run_many(
                "UPDATE journal SET job = ? WHERE tenant = ? AND ticket = ?",
                [(job, self.tenant, t) for t in tickets],
            )

    def pending_job(self, ticket: str) -> tuple[str, datetime] | None:
        """The batch job carrying the ticket's journalled write, if one does, and when it
        was sent."""
        row = self._one(
            "SELECT job, started_at FROM journal WHERE tenant = ? AND ticket = ?",
            (self.tenant, ticket),
        )
        return None if row is None or row[0] is None else (str(row[0]), from_epoch(int(row[1])))

    def pending_jobs(self) -> dict[str, tuple[datetime, list[str]]]:
        """Each batch job with journalled writes left, its id known: when it was sent, its
        tickets."""
        jobs: dict[str, tuple[datetime, list[str]]] = {}
        rows = self._rows(
            "SELECT job, ticket, started_at FROM journal WHERE tenant = ? AND job IS NOT NULL "
            "AND job != ? ORDER BY job, ticket",
            (self.tenant, UNKNOWN_JOB),
        )
        for job, ticket, started in rows:
            sent = from_epoch(int(started))
            earliest, tickets = jobs.setdefault(str(job), (sent, []))
            tickets.append(str(ticket))
            jobs[str(job)] = (min(earliest, sent), tickets)
        return jobs

    def pending_note(self, ticket: str) -> str | None:
        """The fingerprint of a note whose write may or may not have landed."""
        row = self._one(
            "SELECT note FROM journal WHERE tenant = ? AND ticket = ?", (self.tenant, ticket)
        )
        return None if row is None else str(row[0])

    def pending_notes(self) -> list[tuple[str, str]]:
        """Every (ticket, fingerprint) left in the journal."""
        rows = self._rows(
            "SELECT ticket, note FROM journal WHERE tenant = ? ORDER BY ticket", (self.tenant,)
        )
        return [(str(t), str(n)) for t, n in rows]

    def settle_note(self, ticket: str, landed: str | None) -> None:
        """Close a journal entry once the helpdesk said which note (if any) is there."""
        with self.transaction():
            if landed is not None:
                self._run(
                    "INSERT INTO tickets (tenant, ticket, note) VALUES (?, ?, ?) "
                    "ON CONFLICT (tenant, ticket) DO UPDATE SET note = excluded.note",
                    (self.tenant, ticket, landed),
                )
            self._run("DELETE FROM journal WHERE tenant = ? AND ticket = ?", (self.tenant, ticket))

    # --- wake-ups -------------------------------------------------------------------------

    def wake_at(self, ticket: str, at: datetime | None) -> None:
        """Re-decide `ticket` at `at` (None: never by itself)."""
        with self.transaction():
            if at is None:
                self._run(
                    "DELETE FROM wakeups WHERE tenant = ? AND ticket = ?", (self.tenant, ticket)
                )
            else:
                self._run(
                    "INSERT INTO wakeups (tenant, ticket, at) VALUES (?, ?, ?) "
                    "ON CONFLICT (tenant, ticket) DO UPDATE SET at = excluded.at",
                    (self.tenant, ticket, to_epoch(at)),
                )

    def due_wakeups(self, now: datetime, limit: int = 1000) -> list[str]:
        """Tickets whose wake-up time has come, earliest first."""
        rows = self._rows(
            "SELECT ticket FROM wakeups WHERE tenant = ? AND at <= ? ORDER BY at, ticket LIMIT ?",
            (self.tenant, to_epoch(now), limit),
        )
        return [str(row[0]) for row in rows]

    def next_wakeup(self) -> datetime | None:
        """The earliest wake-up time, if any."""
        row = self._one("SELECT min(at) FROM wakeups WHERE tenant = ?", (self.tenant,))
        return None if row is None or row[0] is None else from_epoch(int(row[0]))

    def wakeup_of(self, ticket: str) -> datetime | None:
        """When `ticket` wakes up next, if ever."""
        row = self._one(
            "SELECT at FROM wakeups WHERE tenant = ? AND ticket = ?", (self.tenant, ticket)
        )
        return None if row is None else from_epoch(int(row[0]))

    # --- OAuth tokens ---------------------------------------------------------------------

    def token(self, name: str) -> dict[str, Any] | None:
        """A saved token set (as the JSON object it was saved as)."""
        row = self._one(
            "SELECT value FROM tokens WHERE tenant = ? AND name = ?", (self.tenant, name)
        )
        return None if row is None else dict(json.loads(row[0]))

    def set_token(self, name: str, value: dict[str, Any], now: datetime) -> None:
        """Save a token set, durably, before it is used."""
        with self.transaction():
            self._run(
                "INSERT INTO tokens (tenant, name, value, changed_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (tenant, name) DO UPDATE SET value = excluded.value, "
                "changed_at = excluded.changed_at",
                (self.tenant, name, json.dumps(value), to_epoch(now)),
            )

    def forget_token(self, name: str) -> None:
        """Remove a saved token entry (no error if there is none)."""
        with self.transaction():
            self._run("DELETE FROM tokens WHERE tenant = ? AND name = ?", (self.tenant, name))

    # --- figures and copies ---------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """How many tickets, counted tickets, wake-ups and journal entries the tenant has."""

        def count(sql: str) -> int:
            row = self._one(sql, (self.tenant,))
            return 0 if row is None else int(row[0])

        return {
            "tickets": count("SELECT count(*) FROM tickets WHERE tenant = ?"),
            "counted": count("SELECT count(*) FROM tickets WHERE tenant = ? AND facts IS NOT NULL"),
            "wakeups": count("SELECT count(*) FROM wakeups WHERE tenant = ?"),
            "journal": count("SELECT count(*) FROM journal WHERE tenant = ?"),
        }

    def tenants(self) -> list[str]:
        """Every tenant with rows in the state, the view's own first (`check`, `migrate`)."""
        names = {
            str(row[0])
            for table in TABLES
            for row in self._rows(f"SELECT DISTINCT tenant FROM {table}")
        }
        return sorted(names, key=lambda name: (name != self.tenant, name))

    def table_rows(self, table: str) -> list[tuple[Any, ...]]:
        """Every row of one of `TABLES`, every tenant's, its columns in that order, by its
        key in code point order (sorted here: a server's collation may order text otherwise)."""
        columns = TABLES[table]
        rows = self._rows(f"SELECT {', '.join(columns)} FROM {table}")
        return sorted(rows, key=lambda row: (str(row[0]), str(row[1])))

    def put_rows(self, table: str, rows: Iterable[Sequence[Any]]) -> None:
        """Add rows to one of `TABLES` (a copy into an empty state), in the caller's
        transaction."""
        columns = TABLES[table]
        marks = ", ".join("?" * len(columns))
        self._run_many(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
