"""The daemon's memory: one SQLite database (WAL) in the state directory.

What it keeps, and why:
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

Writers serialize on an exclusive file lock (`writer()`), held per page: `run` and a
`backfill` may share the database, and a `kill -9` releases the lock with the process.
The file is created 0600 and every change is a transaction.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from connector.errors import ConfigError, ConnectorError, Problem
from connector.sla.model import StatusChange, TicketFacts
from connector.timeutil import from_epoch, to_epoch

__all__ = ["UNKNOWN_JOB", "Busy", "State", "StateUnavailable", "TicketRecord"]

_STATUS_HISTORY = TypeAdapter(list[StatusChange])
# The job of a journalled write sent in a batch job whose id the helpdesk has not given (yet):
# the job may run later, so the write is settled only just before the ticket's next write.
UNKNOWN_JOB = "?"

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
    # The status changes seen on each ticket (JSON list of {"at", "status"}, oldest first):
    # paused targets need them, and neither helpdesk gives them with the ticket.
    """
    ALTER TABLE tickets ADD COLUMN statuses TEXT;
    """,
    # The batch job a journalled write went in (Zendesk's update_many): a crash with the job
    # in flight is settled from the job's own results, once it has finished.
    """
    ALTER TABLE journal ADD COLUMN job TEXT;
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
    """Another process holds the writer lock (and `wait` was False), or claimed the state."""


class StateUnavailable(ConnectorError):
    """The state database cannot be used now (disk full, I/O error, locked): may pass.

    Exit status 1, not 2: systemd restarts the service once the cause is gone.
    """


SQLITE_HEADER = b"SQLite format 3\x00"
# SQLite's primary result codes that say the file itself is wrong, not the moment.
_DAMAGED = ("SQLITE_NOTADB", "SQLITE_CORRUPT")


@dataclass(frozen=True, slots=True)
class TicketRecord:
    """What the state knows about one ticket."""

    ticket: str
    facts: TicketFacts | None
    results: str | None
    note: str | None


def _check_ours(path: Path, new_state: bool) -> None:
    """Refuse a state file that is empty, or not a state of sla-connector (see `State`)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        size = None
    if size is None:
        wal = path.with_name(path.name + "-wal")
        if wal.exists() and not new_state:
            raise _refused(path, f"is missing, but its write-ahead log {wal.name} is there")
        return
    if size == 0:
        if not new_state:
            raise _refused(path, "is empty (0 bytes)")
        path.unlink()
        return
    if not _is_ours(path):
        if not new_state:
            raise _refused(path, "is not a state database of sla-connector")
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        path.rename(path.with_name(f"{path.name}.not-ours-{stamp}"))


def _is_ours(path: Path) -> bool:
    with path.open("rb") as file:
        if file.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
            return False
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.DatabaseError:
        return True  # SQLite's own file that cannot be opened now: the open says why
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError:
        return True  # damaged or busy: the open says which
    finally:
        db.close()
    # A newer schema is ours too: the open then says to upgrade.
    return version > len(MIGRATIONS) or (bool(version) and {"tickets", "cursors"} <= tables)


def _refused(path: Path, what: str) -> ConfigError:
    return ConfigError(
        [
            Problem(
                str(path),
                "",
                f"{what}: not the state this connector keeps. Restore it from a backup; or, "
                "if it is lost, start once with --new-state (notes already on the tickets "
                "are read there and not posted again)",
            )
        ]
    )


def _create(path: Path) -> None:
    """A new state, made whole beside `path` and moved into place.

    A process killed while creating it leaves no empty file behind, which the next start
    would refuse as a lost state.
    """
    partial = path.with_name(path.name + ".new")
    partial.unlink(missing_ok=True)
    # Created 0600 before SQLite opens it (SQLite would use the umask).
    os.close(os.open(partial, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        db = sqlite3.connect(partial, isolation_level=None)
        try:
            db.create_function("facts_category", 1, _facts_category, deterministic=True)
            db.execute("PRAGMA journal_mode = WAL")
            _migrate(db, partial)
        finally:
            db.close()  # the only connection: its WAL is checkpointed and removed
        os.replace(partial, path)
    except sqlite3.DatabaseError as exc:
        partial.unlink(missing_ok=True)
        raise _open_error(path, exc) from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    """Bring the schema up to the newest version, one committed step at a time."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise ConfigError(
            [
                Problem(
                    str(path),
                    "",
                    f"schema version {version} is newer than this sla-connector "
                    f"understands ({len(MIGRATIONS)}); upgrade sla-connector",
                )
            ]
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in script.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {number}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


def _open_error(path: Path, exc: sqlite3.DatabaseError) -> ConnectorError:
    """A damaged file is a problem to fix (exit 2); a full disk or a lock may pass (exit 1)."""
    name = str(getattr(exc, "sqlite_errorname", ""))
    if name.startswith(_DAMAGED):
        return ConfigError(
            [
                Problem(
                    str(path),
                    "",
                    f"is damaged ({exc}): restore it from a backup; or, if it is lost, start "
                    "once with --new-state (notes already on the tickets are not posted again)",
                )
            ]
        )
    return StateUnavailable(f"{path}: cannot be used now ({exc}); tried again at the next start")


class State:
    """One open state database. Not shared between threads."""

    def __init__(self, path: Path, *, readonly: bool = False, new_state: bool = False) -> None:
        """Open (or create) the state at `path`.

        A file that is there but empty, or is not a state of ours, is refused (`ConfigError`)
        unless `new_state`: the state is what stops notes being posted twice, and a file
        truncated or replaced by mistake must not pass for a new installation. With
        `new_state` an empty file is used and a foreign one is moved aside.
        """
        self.path = path
        self._lock_fd: int | None = None
        self._claim_fd: int | None = None
        if not readonly:
            try:
                self._make(new_state)
            except OSError as exc:  # a full disk, a read-only file system, a folder in its way
                raise StateUnavailable(
                    f"{path}: cannot be used now ({exc.strerror or exc}); "
                    "tried again at the next start"
                ) from None
        uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
        try:
            self.db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30.0)
        except sqlite3.DatabaseError as exc:
            raise _open_error(path, exc) from None
        try:
            self._prepare(readonly=readonly)
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise _open_error(path, exc) from None
        except BaseException:  # a newer schema (ConfigError), an interrupt...
            self.db.close()
            raise

    def _make(self, new_state: bool) -> None:
        # Every folder made here is 0700 whatever the umask (mkdir's `parents` would make
        # the missing parents with the umask's mode, which another user could then swap).
        missing = [p for p in (self.path.parent, *self.path.parent.parents) if not p.exists()]
        for folder in reversed(missing):
            folder.mkdir(mode=0o700, exist_ok=True)
        _check_ours(self.path, new_state)
        if not self.path.exists():
            _create(self.path)

    def _prepare(self, *, readonly: bool) -> None:
        self.db.execute("PRAGMA busy_timeout = 30000")
        self.db.create_function("facts_category", 1, _facts_category, deterministic=True)
        if not readonly:
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = FULL")
            _migrate(self.db, self.path)

    # --- schema ---------------------------------------------------------------------------

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

    def claim(self, command: str) -> None:
        """Hold the state for this process's life: a second daemon on it refuses to start.

        A lock (flock) on `<state>.claim`, released when the process ends, however it ends;
        the file names the holder for the refusal. `Busy` when another process holds it.
        """
        claim_path = self.path.with_name(self.path.name + ".claim")
        fd = os.open(claim_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise Busy(
                f"{self.path}: already in use by {holder}; one daemon per state "
                "(stop that one first, or give this one a state directory of its own)"
            ) from None
        os.ftruncate(fd, 0)
        started = datetime.now(UTC).isoformat(timespec="seconds")
        os.write(fd, f"sla-connector {command} (pid {os.getpid()}, since {started})".encode())
        self._claim_fd = fd

    def close(self) -> None:
        """Close the database (and give up a claim)."""
        self.db.close()
        if self._claim_fd is not None:
            os.close(self._claim_fd)
            self._claim_fd = None

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

    def written(self, ticket: str) -> bool:
        """Whether results were ever recorded for `ticket` (it has been written, or decided)."""
        row = self.db.execute(
            "SELECT 1 FROM tickets WHERE ticket = ? AND results IS NOT NULL", (ticket,)
        ).fetchone()
        return row is not None

    def status_history(self, ticket: str) -> list[StatusChange]:
        """The status changes seen on `ticket`, oldest first (empty: none seen yet)."""
        row = self.db.execute("SELECT statuses FROM tickets WHERE ticket = ?", (ticket,)).fetchone()
        if row is None or row[0] is None:
            return []
        return _STATUS_HISTORY.validate_json(row[0])

    def set_status_history(self, ticket: str, history: Sequence[StatusChange]) -> None:
        """Replace the status changes kept for `ticket`."""
        text = _STATUS_HISTORY.dump_json(list(history)).decode()
        with self.transaction():
            self.db.execute(
                "INSERT INTO tickets (ticket, statuses) VALUES (?, ?) "
                "ON CONFLICT (ticket) DO UPDATE SET statuses = excluded.statuses",
                (ticket, text),
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

    def begin_note(
        self, ticket: str, fingerprint: str, now: datetime, job: str | None = None
    ) -> None:
        """Journal a write carrying a note, before sending it (`job`: in a batch job, its id
        or `UNKNOWN_JOB` until the helpdesk gave one)."""
        with self.transaction():
            # A write after one whose batch job's id never came back stays `UNKNOWN_JOB`
            # until settled: that job may still run (see `Sync._settle_journalled`).
            self.db.execute(
                "INSERT INTO journal (ticket, note, started_at, job) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (ticket) DO UPDATE SET note = excluded.note, "
                "started_at = excluded.started_at, "
                "job = CASE WHEN excluded.job IS NULL AND journal.job = ? THEN journal.job "
                "ELSE excluded.job END",
                (ticket, fingerprint, to_epoch(now), job, UNKNOWN_JOB),
            )

    def set_job(self, tickets: Sequence[str], job: str) -> None:
        """Record the batch job that carries these journalled writes."""
        with self.transaction():
            self.db.executemany(
                "UPDATE journal SET job = ? WHERE ticket = ?", [(job, t) for t in tickets]
            )

    def pending_job(self, ticket: str) -> tuple[str, datetime] | None:
        """The batch job carrying the ticket's journalled write, if one does, and when it
        was sent."""
        row = self.db.execute(
            "SELECT job, started_at FROM journal WHERE ticket = ?", (ticket,)
        ).fetchone()
        return None if row is None or row[0] is None else (str(row[0]), from_epoch(int(row[1])))

    def pending_jobs(self) -> dict[str, tuple[datetime, list[str]]]:
        """Each batch job with journalled writes left, its id known: when it was sent, its
        tickets."""
        jobs: dict[str, tuple[datetime, list[str]]] = {}
        rows = self.db.execute(
            "SELECT job, ticket, started_at FROM journal WHERE job IS NOT NULL AND job != ? "
            "ORDER BY job, ticket",
            (UNKNOWN_JOB,),
        )
        for job, ticket, started in rows:
            sent = from_epoch(int(started))
            earliest, tickets = jobs.setdefault(str(job), (sent, []))
            tickets.append(str(ticket))
            jobs[str(job)] = (min(earliest, sent), tickets)
        return jobs

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
