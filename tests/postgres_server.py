"""A throw-away PostgreSQL server for the tests: a real `postgres`, started from Debian's
`postgresql` binaries into a fresh temporary folder, reachable only through a Unix socket in
that folder (no TCP), trust authentication for that socket, stopped and removed afterwards.

PostgreSQL refuses to run as root: under root (a CI container) `initdb` and `postgres` run as
the `postgres` OS user, the folder then belonging to that user; the client tools and the tests
still run as root, which may reach the socket. Otherwise everything runs as the current user.
The folder is private (0700): no other local user can reach the trusting socket.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

PG_BIN_ENV = "SLA_CONNECTOR_PG_BIN"
MISSING = (
    "no PostgreSQL server binaries (initdb): the PostgreSQL tests are skipped; "
    "apt-get install postgresql"
)
SUPERUSER = "postgres"
RUN_AS = "postgres"  # the OS user the server runs as when we are root
PORT = 5432  # only names the socket file: nothing listens on TCP
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux, 104 on the BSDs
IDENTIFIER_MAX = 63  # NAMEDATALEN - 1
SHM_MIN_FREE = 1 << 30  # Docker's default /dev/shm (64 MiB) is too small for a cluster


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


def find_bindir() -> Path:
    """The folder with `initdb`, `postgres`, `pg_isready` and `psql`: `$SLA_CONNECTOR_PG_BIN`,
    else `pg_config --bindir`, else the newest /usr/lib/postgresql/*/bin (Debian's layout), else
    the folder of an `initdb` on PATH. A candidate without `initdb` is passed over (Debian's
    libpq-dev has a `pg_config` without the server)."""
    if configured := os.environ.get(PG_BIN_ENV):
        if not (Path(configured) / "initdb").is_file():
            # asked for by name: a mistake to show, not a reason to skip
            raise RuntimeError(f"{PG_BIN_ENV}={configured}: no initdb there")
        return Path(configured)
    candidates: list[Path] = []
    if pg_config := shutil.which("pg_config"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            done = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            )
            candidates.append(Path(done.stdout.strip()))
    candidates.extend(
        Path(found)
        for found in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True)
    )
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).resolve().parent)
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "postgres").is_file():
            return candidate
    raise PostgresUnavailable(MISSING)


def _version(bindir: str) -> tuple[int, ...]:
    """/usr/lib/postgresql/15/bin -> (15,): 9.6 sorts below 10."""
    return tuple(int(part) for part in re.findall(r"\d+", Path(bindir).parent.name))


def _private_base() -> Path:
    """Where the server's folder is made: /dev/shm when it is a roomy memory file system (there a
    CREATE DATABASE takes ~15 ms instead of 50-300 ms on a busy disk), else the temporary folder,
    else /tmp when the temporary folder is out of reach of the server's user. (pytest's own
    tmp_path, /tmp/pytest-of-root, is 0700: out of reach of `postgres`.)"""
    shm = Path("/dev/shm")
    with contextlib.suppress(OSError):
        room = os.statvfs(shm)
        if room.f_bavail * room.f_frsize >= SHM_MIN_FREE and _reachable(shm):
            return shm
    base = Path(tempfile.gettempdir()).resolve()
    return base if _reachable(base) else Path("/tmp")


def _reachable(folder: Path) -> bool:
    """Whether the server's user may make and enter a folder in `folder`."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    if os.geteuid() != 0:
        return True
    return all(path.stat().st_mode & stat.S_IXOTH for path in (folder, *folder.parents))


def quote_identifier(name: str) -> str:
    """`name` as an SQL identifier, quoted."""
    if not name or len(name.encode()) > IDENTIFIER_MAX or "\0" in name:
        raise ValueError(f"not a PostgreSQL name: {name!r}")
    return '"' + name.replace('"', '""') + '"'


_DATABASES = itertools.count(1)


def database_name(test_name: str) -> str:
    """A new database name for a test, readable in the server's log: `t12_test_x_case_`."""
    readable = re.sub(r"[^a-z0-9]+", "_", test_name.lower())
    return f"t{next(_DATABASES)}_{readable}"[:IDENTIFIER_MAX]


class PostgresServer:
    """One throw-away server. Use as a context manager, or `start()` then `stop()` (which also
    removes the folder; it is safe to call more than once and after a failed start)."""

    def __init__(self, bindir: Path | None = None) -> None:
        self.bindir = bindir if bindir is not None else find_bindir()
        for tool in ("initdb", "postgres", "pg_isready", "psql"):
            if not (self.bindir / tool).is_file():
                raise PostgresUnavailable(f"no {tool} in {self.bindir}: apt-get install postgresql")
        self.folder: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self.version = 0  # server_version_num once started, e.g. 150018
        self._user: dict[str, Any] = {}
        if os.geteuid() == 0:
            try:
                entry = pwd.getpwnam(RUN_AS)
            except KeyError:
                raise PostgresUnavailable(
                    f"running as root and there is no {RUN_AS!r} OS user to run the server as "
                    "(Debian's postgresql package creates it)"
                ) from None
            self._user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    # --- where things are -----------------------------------------------------------------------

    def _in_folder(self, name: str) -> Path:
        if self.folder is None:
            raise RuntimeError("the PostgreSQL server is not started")
        return self.folder / name

    @property
    def data_dir(self) -> Path:
        """The cluster's data folder (made by initdb)."""
        return self._in_folder("data")

    @property
    def socket_dir(self) -> Path:
        """The folder holding the server's only socket, `.s.PGSQL.5432`."""
        return self._in_folder("socket")

    @property
    def log_file(self) -> Path:
        """The server's stderr: its log."""
        return self._in_folder("server.log")

    def url(self, dbname: str = "postgres") -> str:
        """A libpq URL for `dbname` as the superuser, through the socket: psycopg 3, psql and
        libpq accept it, e.g. postgresql://postgres@/db?host=%2Ftmp%2F...%2Fsocket&port=5432.
        The port is explicit so that a PGPORT of the environment does not redirect it."""
        return (
            f"postgresql://{SUPERUSER}@/{quote(dbname, safe='')}"
            f"?host={quote(str(self.socket_dir), safe='')}&port={PORT}"
        )

    # --- running the tools ----------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        """The environment without PG* variables (PGHOST, PGDATA, PGPORT... of the machine)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_MESSAGES"] = "C"
        return env

    def _as_server(self, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run a server tool (initdb) as the server's user."""
        return subprocess.run(
            argv,
            env=self._env(),
            cwd=self.folder,
            capture_output=True,
            text=True,
            check=False,
            **self._user,
            **kwargs,
        )

    def psql(self, sql: str, dbname: str = "postgres", timeout: float = 60) -> str:
        """Run `sql` with psql in `dbname` as the superuser; its unaligned, tuples-only output.
        Raises RuntimeError with psql's message when it fails."""
        done = subprocess.run(
            [
                str(self.bindir / "psql"),
                "--no-psqlrc",
                "--quiet",
                "--no-align",
                "--tuples-only",
                "--set=ON_ERROR_STOP=1",
                f"--dbname={self.url(dbname)}",
                f"--command={sql}",
            ],
            env=self._env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout.strip()

    def create_database(self, name: str) -> str:
        """A new, empty UTF8 database `name` (from template0: nothing a test left in template1);
        its URL. Copied file by file where the server can (15 and later): with fsync off that
        is about 3 times faster than the default WAL-logged copy for an empty database."""
        strategy = " STRATEGY FILE_COPY" if self.version >= 150000 else ""
        self.psql(
            f"CREATE DATABASE {quote_identifier(name)} TEMPLATE template0 ENCODING 'UTF8'{strategy}"
        )
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Remove database `name`, disconnecting whoever is still connected to it."""
        force = " WITH (FORCE)" if self.version >= 130000 else ""
        self.psql(f"DROP DATABASE IF EXISTS {quote_identifier(name)}{force}")

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the server's log, for error messages."""
        try:
            text = self.log_file.read_text(errors="replace")
        except (OSError, RuntimeError):
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty server log)"

    # --- life -----------------------------------------------------------------------------------

    def start(self) -> None:
        """initdb into a new temporary folder, start `postgres` on its socket only and wait until
        it accepts connections. On failure the folder is removed and the error says why."""
        if self.folder is not None:
            raise RuntimeError("the PostgreSQL server is already started")
        self.folder = Path(tempfile.mkdtemp(prefix="sla-connector-pg-", dir=_private_base()))
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        assert self.folder is not None
        socket_file = self.socket_dir / f".s.PGSQL.{PORT}"
        if len(str(socket_file)) > SOCKET_PATH_MAX:
            raise RuntimeError(f"socket path too long for a Unix socket: {socket_file}")
        self.socket_dir.mkdir(mode=0o700)
        if self._user:
            for path in (self.folder, self.socket_dir):
                os.chown(path, self._user["user"], self._user["group"])
        done = self._as_server(
            [
                str(self.bindir / "initdb"),
                f"--pgdata={self.data_dir}",
                f"--username={SUPERUSER}",
                "--auth-local=trust",
                "--auth-host=reject",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"initdb failed ({done.returncode}):\n{done.stderr.strip() or done.stdout.strip()}"
            )
        with self.log_file.open("wb") as log:
            self._process = subprocess.Popen(
                [
                    str(self.bindir / "postgres"),
                    "-D",
                    str(self.data_dir),
                    "-c",
                    "listen_addresses=",
                    "-c",
                    f"port={PORT}",
                    "-c",
                    f"unix_socket_directories={self.socket_dir}",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=100",
                    "-c",
                    "logging_collector=off",
                ],
                env=self._env(),
                cwd=self.folder,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                **self._user,
            )
        self._wait_until_ready()
        self.version = int(self.psql("SHOW server_version_num"))

    def _wait_until_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if (code := self._process.poll()) is not None:
                raise RuntimeError(
                    f"the PostgreSQL server exited ({code}) while starting; its log:\n"
                    f"{self.log_tail()}"
                )
            ready = subprocess.run(
                [
                    str(self.bindir / "pg_isready"),
                    "--quiet",
                    f"--host={self.socket_dir}",
                    f"--port={PORT}",
                    f"--username={SUPERUSER}",
                    "--dbname=postgres",
                ],
                env=self._env(),
                check=False,
                timeout=30,
            )
            if ready.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the PostgreSQL server did not accept connections within {START_TIMEOUT:.0f}"
                    f" s; its log:\n{self.log_tail()}"
                )
            time.sleep(0.02)

    def stop(self) -> None:
        """Fast shutdown (SIGINT: clients are disconnected, no waiting for them), then immediate
        (SIGQUIT) and SIGKILL when it takes too long; then remove the folder."""
        process, self._process = self._process, None
        try:
            if process is not None and process.poll() is None:
                for sig, wait in (
                    (signal.SIGINT, STOP_TIMEOUT),
                    (signal.SIGQUIT, 10.0),
                    (signal.SIGKILL, 10.0),
                ):
                    with contextlib.suppress(ProcessLookupError):
                        process.send_signal(sig)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        process.wait(wait)
                        break
        finally:
            folder, self.folder = self.folder, None
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
