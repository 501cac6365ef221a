"""The embedded state: one SQLite database (WAL) in the state directory.

The default for a single host: no server to run. Writers serialize on an exclusive file lock
(`writer()`), held per page: `run` and a `backfill` may share the database, and a `kill -9`
releases the lock with the process. The file is created 0600 and every change is a
transaction. The tables and the queries are `connector.state.base`'s.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connector.errors import ConfigError, ConnectorError, Problem
from connector.state.base import DEFAULT_TENANT, Busy, StateUnavailable, Store, schema_mismatch
from connector.state.schema import SQLITE_MIGRATIONS as MIGRATIONS

__all__ = ["SQLITE_HEADER", "State"]


def _facts_category(text: str | None) -> str | None:
    """The category in stored facts (for the migration that added the column)."""
    if text is None:
        return None
    category = json.loads(text).get("category")
    return category if isinstance(category, str) else None


SQLITE_HEADER = b"SQLite format 3\x00"
# How often a writer waiting for another process's lock asks again.
_LOCK_POLL_SECONDS = 0.1
# SQLite's primary result codes that say the file itself is wrong, not the moment.
_DAMAGED = ("SQLITE_NOTADB", "SQLITE_CORRUPT")


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


class State(Store):
    """The state in one SQLite database file. Not shared between threads."""

    def __init__(
        self,
        path: Path,
        *,
        readonly: bool = False,
        new_state: bool = False,
        tenant: str = DEFAULT_TENANT,
    ) -> None:
        """Open (or create) the state at `path`, as a view of `tenant`'s rows.

        A file that is there but empty, or is not a state of ours, is refused (`ConfigError`)
        unless `new_state`: the state is what stops notes being posted twice, and a file
        truncated or replaced by mistake must not pass for a new installation. With
        `new_state` an empty file is used and a foreign one is moved aside.
        """
        self.path = path
        self.tenant = tenant
        self._own_changes = 0
        self.where = str(path)
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
            # One thread at a time uses it, not always the one that opened it: a daemon serving
            # several tenants opens each one's view before handing it to the tenant's thread.
            self.db = sqlite3.connect(
                uri, uri=True, isolation_level=None, timeout=30.0, check_same_thread=False
            )
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
        version = int(self.db.execute("PRAGMA user_version").fetchone()[0])
        if readonly:
            # Read as it is: the queries are this version's, so the schema must be too.
            if version != len(MIGRATIONS):
                raise schema_mismatch(str(self.path), version, len(MIGRATIONS))
            return
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = FULL")
        if 0 < version < len(MIGRATIONS) and (holders := self.holders()):
            # An older daemon still runs on it: changing the tables under it would fail its
            # every write. It must stop first (this process is tried again).
            raise StateUnavailable(
                f"{self.path}: schema version {version} is to be upgraded to "
                f"{len(MIGRATIONS)}, but it is {holders[0]} (an older sla-connector?): stop "
                "it first; tried again at the next start"
            )
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
        before = self.db.total_changes
        try:
            yield
            wrote = self.db.total_changes != before
            if wrote:  # counted, so that `data_version` tells others' changes from ours
                self.db.execute(
                    "INSERT INTO changes (tenant, version) VALUES (?, 1) ON CONFLICT (tenant) "
                    "DO UPDATE SET version = changes.version + 1",
                    (self.tenant,),
                )
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        if wrote:
            self._own_changes += 1

    @contextmanager
    def writer(self, *, wait: bool = True) -> Iterator[None]:
        """Hold the tenant's exclusive writer lock (one process writes to a helpdesk account
        at a time; the `default` tenant's is `<state>.lock`, another's `<state>.<tenant>.lock`)."""
        if self._lock_fd is not None:
            yield
            return
        own = "" if self.tenant == DEFAULT_TENANT else f".{self.tenant}"
        lock_path = self.path.with_name(f"{self.path.name}{own}.lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait:
                    os.close(fd)
                    whose = "" if self.tenant == DEFAULT_TENANT else f" for tenant {self.tenant}"
                    raise Busy(
                        f"{self.path}: another sla-connector process is writing{whose}"
                    ) from None
            try:  # asked again and again: the daemon's watchdog hears from it, a stop ends it
                if self.waiting is not None:
                    self.waiting()
                time.sleep(_LOCK_POLL_SECONDS)
            except BaseException:
                os.close(fd)
                raise
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

    def holders(self) -> list[str]:
        """The daemon holding the state, if one does (its claim file's lock is taken)."""
        claim_path = self.path.with_name(self.path.name + ".claim")
        try:
            fd = os.open(claim_path, os.O_RDONLY)
        except OSError:
            return []
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 200).decode("utf-8", "replace").strip()
                return [f"held by {holder or 'another process'}"]
            fcntl.flock(fd, fcntl.LOCK_UN)
            return []
        finally:
            os.close(fd)

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
        snapshot = State(path, tenant=self.tenant)
        # Thrown away at the end of the dry run: no commit of it needs to survive a crash.
        snapshot.db.execute("PRAGMA synchronous = OFF")
        return snapshot

    # --- the queries' primitives ---------------------------------------------------------

    def _one(self, sql: str, args: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self.db.execute(sql, args).fetchone()
        return row

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.db.execute(sql, args).fetchall()

    def _stream(self, sql: str, args: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        yield from self.db.execute(sql, args)

    def _run(self, sql: str, args: Sequence[Any] = ()) -> int:
        return self.db.execute(sql, args).rowcount

    def _run_many(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        self.db.executemany(sql, args)

    def data_version(self) -> int:
        """A number that changes when another connection commits a change to this tenant's
        rows, and only then: every write transaction counts one in `changes`, and the ones
        this connection made are taken off. A cache of the state kept in step with this
        connection's own changes can tell when another process (a `backfill` beside the daemon)
        changed the tenant's rows under it; another tenant's writes leave it alone."""
        row = self.db.execute(
            "SELECT version FROM changes WHERE tenant = ?", (self.tenant,)
        ).fetchone()
        return (0 if row is None else int(row[0])) - self._own_changes
