"""The state on a PostgreSQL server (`state_url = "postgresql://…"`), for several hosts.

The same tables and queries as the embedded SQLite state (`connector.state.base`), through
psycopg 3 and a small connection pool per server. Nothing here needs a session of its own: no
advisory locks, no prepared statements kept on the server, no `SET`, so the state works behind a
transaction-pooling proxy (PgBouncer) as well as on a direct connection.

Where the SQLite state takes a file lock, this one takes a **lease**: a row of `leases` with an
owner, an expiry (the server's clock, so hosts' clocks may differ) and an epoch that grows each
time the lease changes hands. Every transaction made while holding a lease first renews it,
checking owner and epoch (a fencing token); the renewal keeps the row locked until the commit,
so a process that stalled past its lease (SIGSTOP, a long pause, a partition) and lost it
to another changes nothing when it wakes: its transaction is refused (`LeaseLost`).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

from connector.errors import ConfigError, Problem
from connector.state.base import (
    DEFAULT_TENANT,
    TABLES,
    Busy,
    LeaseLost,
    StateUnavailable,
    Store,
    schema_mismatch,
)
from connector.state.schema import POSTGRES_MIGRATIONS
from connector.timeutil import to_epoch

__all__ = [
    "CLAIM_SECONDS",
    "WRITER_SECONDS",
    "PostgresState",
    "close_pools",
    "display_url",
    "new_owner",
    "resize_pool",
]

# How long a lease lasts without renewal. The writer's is renewed by every transaction of a
# page; the daemon's claim by the daemon's loop (`keep`) at least every third of it.
WRITER_SECONDS = 60.0
CLAIM_SECONDS = 30.0
# How long a statement waits for a connection to the server before the state is unavailable.
CONNECT_SECONDS = 10.0
# How often a writer that waits for another's lease asks again.
_POLL_SECONDS = 0.5


class _Registry:
    """The process's pools, one per server URL, and the lock that guards them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pools: dict[str, ConnectionPool] = {}


_registry = _Registry()


def display_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        params = conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://(a URL that does not parse)"
    user = str(params.get("user") or "")
    host = str(params.get("host") or "localhost")
    port = params.get("port")
    name = str(params.get("dbname") or user)
    who = f"{user}@" if user else ""
    if host.startswith("/"):  # a Unix socket's folder
        return f"postgresql://{who}/{name} (socket in {host})"
    where = f"{host}:{port}" if port else host
    return f"postgresql://{who}{where}/{name}"


def new_owner() -> str:
    """A name for a process's leases: its host, its pid and a random part (a pid is reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def resize_pool(url: str, connections: int) -> None:
    """Let the process hold up to `connections` to the server at `url` (a daemon holding many
    tenants works on them at once, one connection each at most)."""
    with _registry.lock:
        pool = _registry.pools.get(url)
        if pool is not None and pool.max_size != max(connections, 2):
            pool.resize(min_size=1, max_size=max(connections, 2))


def _pool(url: str, password: str | None) -> ConnectionPool:
    """One pool per server URL in a process (each `PostgresState` borrows from it)."""
    options: dict[str, Any] = {"autocommit": True, "prepare_threshold": None}
    if password is not None:
        options["password"] = password
    with _registry.lock:
        pool = _registry.pools.get(url)
        if pool is None:
            pool = ConnectionPool(
                url,
                min_size=1,
                max_size=4,
                # No prepared statements on the server: a transaction-pooling proxy would hand
                # the next transaction another server connection.
                kwargs=options,
                check=ConnectionPool.check_connection,
                timeout=CONNECT_SECONDS,
                name="sla-connector",
                open=False,
            )
            pool.open(wait=False)
            _registry.pools[url] = pool
        return pool


def close_pools() -> None:
    """Close every pool (at exit, before a fork, and between tests)."""
    with _registry.lock:
        for pool in _registry.pools.values():
            pool.close()
        _registry.pools.clear()


def _forget_pools() -> None:
    """In a forked child: the parent's pools are the parent's (their threads did not
    follow, their connections are shared): dropped unused, the child makes its own."""
    _registry.lock = threading.Lock()
    _registry.pools = {}


os.register_at_fork(after_in_child=_forget_pools)


class PostgresState(Store):
    """The state in a PostgreSQL database. Not shared between threads (a process may open
    several: they share one pool)."""

    shared = True

    def __init__(
        self,
        url: str,
        *,
        readonly: bool = False,
        new_state: bool = False,
        writer_seconds: float = WRITER_SECONDS,
        claim_seconds: float = CLAIM_SECONDS,
        connect_seconds: float | None = None,
        password: str | None = None,
        tenant: str = DEFAULT_TENANT,
        owner: str | None = None,
    ) -> None:
        """Open the state in the database `url` names, creating its tables if it has none.

        A database with tables but not this state's is refused, `new_state` or not: the
        connector drops nothing on a server. `writer_seconds` and `claim_seconds`: how long
        the leases last unrenewed; `connect_seconds`: how long to wait for a connection;
        `password`: the server's (else libpq's own: PGPASSFILE, ~/.pgpass); `tenant`: whose
        rows this view reads and writes; `owner`: the name its leases are held under (the
        tenants of one daemon share it; else one of its own).
        """
        self.writer_seconds, self.claim_seconds = writer_seconds, claim_seconds
        self.connect_seconds = CONNECT_SECONDS if connect_seconds is None else connect_seconds
        self.url = url
        self.where = display_url(url)
        self.tenant = tenant
        self.owner = owner or new_owner()
        self._claim_name = f"tenant:{tenant}"
        self._writer_name = f"writer:{tenant}"
        self._pool = _pool(url, password)
        self._conn: psycopg.Connection[Any] | None = None  # in a transaction
        self._wrote = False
        self._own_changes = 0
        # Leases held: name -> (epoch, seconds it lasts).
        self._leases: dict[str, tuple[int, float]] = {}
        self._sql: dict[str, str] = {}
        self._lost: str | None = None  # why this state may change nothing any more
        self._lost_writer: str | None = None  # why nothing more within this writer's hold
        self._row_busy = False
        self.readonly = readonly
        if not readonly:
            self._migrate()
        elif (version := self.schema_version) == 0:
            raise ConfigError([Problem(self.where, "", "holds no state of sla-connector")])
        elif version != len(POSTGRES_MIGRATIONS):  # read as it is: must be this version's
            raise schema_mismatch(self.where, version, len(POSTGRES_MIGRATIONS))

    # --- connections and errors ---------------------------------------------------------

    def _text(self, sql: str) -> str:
        text = self._sql.get(sql)
        if text is None:
            text = self._sql[sql] = sql.replace("%", "%%").replace("?", "%s")
        return text

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """The transaction's connection, or one from the pool for a single statement; a
        server that cannot be reached is `StateUnavailable`."""
        if self._conn is not None:
            yield self._conn
            return
        try:
            with self._pool.connection(timeout=self.connect_seconds) as conn:
                yield conn
        except PoolTimeout as exc:
            raise StateUnavailable(f"{self.where}: no connection to the server ({exc})") from None
        except psycopg.Error as exc:
            raise _translated(self.where, exc) from None

    def _one(self, sql: str, args: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        with self._connection() as conn:
            row: tuple[Any, ...] | None = conn.execute(self._text(sql), args).fetchone()
            return row

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._connection() as conn:
            return conn.execute(self._text(sql), args).fetchall()

    def _stream(self, sql: str, args: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        with self._connection() as conn, conn.cursor() as cursor:
            yield from cursor.stream(self._text(sql), args)

    def _run(self, sql: str, args: Sequence[Any] = ()) -> int:
        self._writing()
        with self._connection() as conn:
            return conn.execute(self._text(sql), _storable(args)).rowcount

    def _run_many(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        self._writing()
        with self._connection() as conn, conn.cursor() as cursor:
            cursor.executemany(self._text(sql), [_storable(row) for row in args])

    def _writing(self) -> None:
        if self.readonly:
            raise StateUnavailable(f"{self.where}: opened to read only")
        self._wrote = True

    # --- transactions -------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic change: committed on success, rolled back on any exception.

        Each lease this process holds is renewed first, its owner and epoch checked, in the
        same transaction: a lease that passed to another refuses it (`LeaseLost`).
        """
        if self._conn is not None:  # nested: part of the outer one
            yield
            return
        if self._lost is not None:
            raise LeaseLost(self._lost)
        if self._lost_writer is not None:  # lost within the writer's hold: nothing more in it
            raise LeaseLost(self._lost_writer)
        with self._connection() as conn:
            self._conn, self._wrote = conn, False
            try:
                with conn.transaction():
                    # A holder stopped inside a transaction (SIGSTOP, a long pause) would keep
                    # its rows locked, and the next holder waiting: the server ends it instead.
                    idle = max(1, int(self.writer_seconds * 1000))
                    conn.execute(f"SET LOCAL idle_in_transaction_session_timeout = {idle}")
                    self._renew_leases()
                    yield
                    if self._wrote:
                        # Counted, so that `data_version` tells others' changes from ours.
                        self._run(
                            "INSERT INTO changes (tenant, version) VALUES (?, 1) "
                            "ON CONFLICT (tenant) DO UPDATE SET version = changes.version + 1",
                            (self.tenant,),
                        )
                if self._wrote:
                    self._own_changes += 1
            except psycopg.Error as exc:
                raise _translated(self.where, exc) from None
            finally:
                self._conn = None

    def data_version(self) -> int:
        """Changes others committed to this tenant's rows: every write transaction counts one
        in `changes`; the ones this state made are taken off."""
        row = self._one("SELECT version FROM changes WHERE tenant = ?", (self.tenant,))
        return (0 if row is None else int(row[0])) - self._own_changes

    @property
    def schema_version(self) -> int:
        """The schema version of the open database (0: none of ours yet)."""
        row = self._one("SELECT to_regclass('schema_version') IS NOT NULL")
        if row is None or not row[0]:
            return 0
        version = self._one("SELECT max(version) FROM schema_version")
        return 0 if version is None or version[0] is None else int(version[0])

    def _migrate(self) -> None:
        """Bring the schema up to the newest version, one committed step at a time; several
        processes starting at once take turns (the table lock)."""
        with self._connection() as conn, conn.transaction():
            # One process at a time, for this transaction only (nothing held in the session,
            # so a transaction-pooling proxy is fine).
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('sla-connector schema'))")
            exists = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
            version = 0
            if exists is not None and exists[0]:
                row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
                version = 0 if row is None or row[0] is None else int(row[0])
            elif not self.readonly:
                conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            if version > len(POSTGRES_MIGRATIONS):
                raise ConfigError(
                    [
                        Problem(
                            self.where,
                            "",
                            f"schema version {version} is newer than this sla-connector "
                            f"understands ({len(POSTGRES_MIGRATIONS)}); upgrade sla-connector",
                        )
                    ]
                )
            if version == 0:
                foreign = conn.execute(
                    "SELECT count(*) FROM information_schema.tables WHERE table_schema = "
                    "current_schema() AND table_name = ANY(%s)",
                    ([*TABLES, "leases", "changes"],),
                ).fetchone()
                if foreign is not None and foreign[0]:
                    raise ConfigError(
                        [
                            Problem(
                                self.where,
                                "",
                                "has tables of the state's names but no schema_version: not a "
                                "state of sla-connector; give the connector a database of its "
                                "own",
                            )
                        ]
                    )
            for number, script in enumerate(POSTGRES_MIGRATIONS[version:], start=version + 1):
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (number,))

    # --- leases -------------------------------------------------------------------------

    def _take(self, name: str, seconds: float) -> bool:
        """Take the lease `name` if it is free, expired or already ours; False: another
        process holds it (or holds its row locked, in a transaction of its own)."""
        if self._lost is not None:
            raise LeaseLost(self._lost)
        try:
            with self._connection() as conn, conn.transaction():
                conn.execute("SET LOCAL lock_timeout = '2s'")
                row = self._take_row(conn, name, seconds)
        except StateUnavailable:
            if self._row_busy:
                self._row_busy = False
                return False
            raise
        if row is None:
            return False
        self._leases[name] = (int(row[0]), seconds)
        return True

    def _take_row(
        self, conn: psycopg.Connection[Any], name: str, seconds: float
    ) -> tuple[Any, ...] | None:
        try:
            row: tuple[Any, ...] | None = conn.execute(
                self._text(
                    "INSERT INTO leases (name, owner, expires_at, epoch) "
                    "VALUES (?, ?, extract(epoch FROM clock_timestamp()) + ?, 1) "
                    "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
                    "expires_at = excluded.expires_at, "
                    "epoch = CASE WHEN leases.owner = excluded.owner THEN leases.epoch "
                    "ELSE leases.epoch + 1 END "
                    "WHERE leases.owner IS NULL OR leases.owner = excluded.owner "
                    "OR leases.expires_at < extract(epoch FROM clock_timestamp()) "
                    "RETURNING epoch"
                ),
                (name, self.owner, seconds),
            ).fetchone()
        except psycopg.errors.LockNotAvailable:
            self._row_busy = True  # its holder is inside a transaction: held, for now
            raise
        return row

    def _renew_leases(self) -> None:
        """Renew each lease held, in the transaction in hand; `LeaseLost` if one passed."""
        for name, (epoch, seconds) in list(self._leases.items()):
            renewed = self._run(
                "UPDATE leases SET expires_at = extract(epoch FROM clock_timestamp()) + ? "
                "WHERE name = ? AND owner = ? AND epoch = ?",
                (seconds, name, self.owner, epoch),
            )
            if not renewed:
                del self._leases[name]
                if name.startswith("daemon:"):  # only says it is alive: said again next look
                    continue
                lost = (
                    f"{self.where}: the {name} lease passed to another process; this one "
                    "stalled past it and changes nothing more"
                )
                if name == self._claim_name:  # the claim: nothing more, ever, from here
                    self._lost = lost
                else:  # the writer's: nothing more until its hold ends
                    self._lost_writer = lost
                raise LeaseLost(lost)
        self._wrote = False  # a renewal alone is not a change of the state

    def _release(self, name: str) -> None:
        held = self._leases.pop(name, None)
        if held is None:
            return
        # A daemon's own lease goes with it (one a start: they would pile up); a tenant's or a
        # writer's stays, free, its epoch kept growing.
        sql = (
            "DELETE FROM leases WHERE name = ? AND owner = ? AND epoch = ?"
            if name.startswith("daemon:")
            else "UPDATE leases SET owner = NULL, expires_at = 0 "
            "WHERE name = ? AND owner = ? AND epoch = ?"
        )
        try:
            self._run(sql, (name, self.owner, held[0]))
        except StateUnavailable:
            return  # the lease runs out by itself

    def lease(self, name: str) -> tuple[str | None, float, int] | None:
        """Who holds the lease `name`, until when (seconds since the epoch), its epoch."""
        row = self._one(
            "SELECT CASE WHEN expires_at >= extract(epoch FROM clock_timestamp()) "
            "THEN owner END, expires_at, epoch FROM leases WHERE name = ?",
            (name,),
        )
        return None if row is None else (row[0], float(row[1]), int(row[2]))

    def holders(self) -> list[str]:
        """Each lease in words (`check` shows them): who serves each tenant and until when on
        the server's clock, or that it is free; who writes for it; the daemons alive. The
        epoch says how many times a lease has changed hands."""
        rows = self._rows(
            "SELECT name, CASE WHEN expires_at >= extract(epoch FROM clock_timestamp()) "
            "THEN owner END, expires_at, epoch FROM leases ORDER BY name"
        )
        said = []
        for name, owner, expires, epoch in rows:
            kind, _, who = str(name).partition(":")
            what = {"tenant": f"tenant {who}", "writer": f"tenant {who}'s writer"}.get(kind)
            if kind == "daemon":  # a daemon's own lease: alive, or gone (left out)
                if owner is not None:
                    until = datetime.fromtimestamp(float(expires), UTC).strftime("%H:%M:%S UTC")
                    said.append(f"daemon {who}: alive until {until}")
            elif what is None:
                continue
            elif owner is None:
                said.append(f"{what}: free (epoch {epoch})")
            else:
                until = datetime.fromtimestamp(float(expires), UTC).strftime("%H:%M:%S UTC")
                said.append(f"{what}: held by {owner} until {until} (epoch {epoch})")
        return said

    @contextmanager
    def writer(self, *, wait: bool = True) -> Iterator[None]:
        """Hold the writer's lease: one process writes to the helpdesk at a time, on any
        host. Renewed by each transaction; given back at the end."""
        if self._writer_name in self._leases:
            yield
            return
        while not self._take(self._writer_name, self.writer_seconds):
            if not wait:
                holder = self.lease(self._writer_name)
                who = holder[0] if holder is not None and holder[0] else "another process"
                raise Busy(f"{self.where}: {who} is writing")
            # Waiting is no stall: what this process holds (its claim on the tenant) stays
            # renewed, and the daemon hears that all is well (or stops the wait).
            self.keep()
            if self.waiting is not None:
                self.waiting()
            time.sleep(_POLL_SECONDS)
        try:
            yield
        finally:
            self._lost_writer = None
            self._release(self._writer_name)

    def claim(self, command: str) -> None:
        """Hold the daemon's lease for this process's life (renewed by `keep`): a second
        daemon on the same state refuses to start while it is held."""
        if not self._take(self._claim_name, self.claim_seconds):
            holder = self.lease(self._claim_name)
            who = holder[0] if holder is not None and holder[0] else "another process"
            if self.tenant != DEFAULT_TENANT:
                raise Busy(f"{self.where}: tenant {self.tenant} is held by {who}")
            raise Busy(
                f"{self.where}: already in use by {who}; one daemon per state (stop that one "
                "first, or give this one a database of its own)"
            )

    def due_wakeups(self, now: datetime, limit: int = 1000) -> list[str]:
        """The tenant's tickets whose wake-up time has come, earliest first; rows another
        transaction holds (a backfill rewriting a ticket's wake-up) are skipped, not waited
        for: `FOR UPDATE SKIP LOCKED`, in a transaction of the caller's or one of its own."""
        with self.transaction():
            rows = self._rows(
                "SELECT ticket FROM wakeups WHERE tenant = ? AND at <= ? "
                "ORDER BY at, ticket LIMIT ? FOR UPDATE SKIP LOCKED",
                (self.tenant, to_epoch(now), limit),
            )
        return [str(row[0]) for row in rows]

    def announce(self, alive: bool = True) -> None:
        """Say that this process's daemon is alive and well (its lease `daemon:<owner>`,
        renewed by `keep`), or no longer (`alive` False: the lease goes): the daemons count
        each other so that each serves its share of the tenants. Daemons gone an hour and more
        (killed: their lease ran out) are forgotten."""
        name = f"daemon:{self.owner}"
        if not alive:
            self._release(name)
            return
        if name in self._leases:
            self.keep()
            if name in self._leases:
                return
        self._run(
            "DELETE FROM leases WHERE name LIKE 'daemon:%' "
            "AND expires_at < extract(epoch FROM clock_timestamp()) - 3600"
        )
        self._take(name, self.claim_seconds)

    def served(self) -> tuple[list[str], dict[str, str]]:
        """The daemons alive and well (their owners), and who serves each tenant now (tenants
        whose lease is free, or has run out, are left out)."""
        rows = self._rows(
            "SELECT name, owner FROM leases WHERE owner IS NOT NULL "
            "AND expires_at >= extract(epoch FROM clock_timestamp()) "
            "AND (name LIKE 'daemon:%' OR name LIKE 'tenant:%')"
        )
        daemons = sorted(str(owner) for name, owner in rows if str(name).startswith("daemon:"))
        tenants = {
            str(name).removeprefix("tenant:"): str(owner)
            for name, owner in rows
            if str(name).startswith("tenant:")
        }
        return daemons, tenants

    @property
    def keep_every(self) -> float | None:
        """How often `keep` must be called: three times a claim's life, or a writer's hold's
        (None: no lease held)."""
        if self._claim_name in self._leases:
            return self.claim_seconds / 3
        return self.writer_seconds / 3 if self._leases else None

    def keep(self) -> None:
        """Renew the leases held (the daemon's loop calls this while idle); `LeaseLost` once
        the claim has passed to another."""
        if self._lost is not None:
            raise LeaseLost(self._lost)
        if self._leases:
            with self.transaction():
                pass

    def close(self) -> None:
        """Give the leases back. The pool stays for other states of the process."""
        for name in list(self._leases):
            self._release(name)

    def snapshot(self, path: Path) -> Store:
        """A private copy in a SQLite file at `path` (a dry run changes nothing here)."""
        from connector.state.copy import copy_state
        from connector.state.sqlite import State

        copy = State(path, tenant=self.tenant)
        copy_state(self, copy)
        return copy


def _unavailable(where: str, exc: BaseException) -> StateUnavailable:
    text = str(exc).strip()
    why = text.splitlines()[0] if text else type(exc).__name__
    return StateUnavailable(f"{where}: cannot be used now ({why}); tried again later")


def _translated(where: str, exc: psycopg.Error) -> Exception:
    """A server's error in our terms: a role without the rights it needs is a problem to fix
    (exit 2); anything else of the server's (down, restarting, read-only after a failover,
    out of disk) may pass (exit 1, tried again). A programming error of ours stays one."""
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else "permission denied"
        return ConfigError(
            [Problem(where, "", f"{why}: the role needs to read and write the state's tables")]
        )
    if isinstance(exc, psycopg.ProgrammingError) and not isinstance(
        exc, psycopg.errors.UndefinedTable
    ):
        return exc
    return _unavailable(where, exc)


def _storable(args: Sequence[Any]) -> Sequence[Any]:
    """PostgreSQL's text holds no NUL character (SQLite's does): one from a helpdesk field
    becomes U+FFFD instead of failing the ticket's every write."""
    if not any(isinstance(a, str) and "\x00" in a for a in args):
        return args
    return [a.replace("\x00", "\ufffd") if isinstance(a, str) else a for a in args]
