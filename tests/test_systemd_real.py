"""The units of systemd/ under a real systemd (issue 23): what an administrator relies on.

A throw-away container (tests/systemd_container.py: systemd-nspawn on this machine's /usr, its
writes in a temporary folder, only its own loopback) gets the project installed as the README's
"Running it as a service" says: a virtual environment in /opt/sla-connector linked from
/usr/local/bin, the mappings and config.toml in /etc/sla-connector, the API token in
/etc/credstore, the units copied to /etc/systemd/system and enabled. Its helpdesk is the
sandbox (`sla-connector sandbox`), served inside as a transient unit. What differs from an
administrator's installation, and why:
- the dependencies are this test's own site-packages, bound read-only (no network inside);
- a drop-in sets WatchdogSec=5s (restarts after 1 s, no core dumps) for every check, and
  config.toml polls every 2 s;
- systemd logs at debug level, so that the journal shows each message the daemon sends
  ("Got notification message from PID … (READY=1, STATUS=…)");
- a started target ordered after the units keeps them loaded once stopped, so that
  `systemctl show` still tells how they ended.

The checks, in order (each brings the service to the state it needs first):
- `systemctl start` waits while the helpdesk is down (`activating`, the status line says why)
  and returns once the daemon said READY; `systemctl status` then shows the last sync;
- the state is /var/lib/private/sla-connector/state.sqlite3, in a 0700 folder of the dynamic
  user;
- `systemctl reload` with a broken mapping is refused on the status line, the daemon runs
  on; a good one clears it;
- the backfill template (`sla-connector-backfill@2026-11-01`) runs beside the daemon;
- a daemon stopped with SIGSTOP is restarted by the watchdog;
- `systemctl stop`: STOPPING, then exit 0 within TimeoutStopSec;
- the watchdog is fed through a first sync of thousands of tickets (systemd 252 watches a
  notify service from its first WATCHDOG=1, or from READY);
- the proof that the first check rests on READY: the same daemon with READY withheld syncs,
  and `systemctl start` fails at TimeoutStartSec;
- the watchdog is fed while the daemon waits for the next poll (a `poll_interval` longer than
  `WatchdogSec` is a wait, not a hang; it once was a kill at every wait).

Skipped where this machine cannot boot a container: in one line when that is known beforehand
(not Linux, not root, no systemd-nspawn), each test with the reason when the boot fails. CI sets
SLA_CONNECTOR_REQUIRE_SYSTEMD: there every test fails instead.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tests.systemd_container import ContainerUnavailable, SystemdContainer, unavailable

ROOT = Path(__file__).resolve().parent.parent

UNIT = "sla-connector.service"
SINCE = "2026-11-01"
BACKFILL = f"sla-connector-backfill@{SINCE}.service"
PORT = 8765
WATCHDOG_SEC = 5
# Tickets of the sandbox for the long first sync: far longer than WATCHDOG_SEC to sync.
LARGE = 2000

CHECKOUT = "/opt/sla-connector-checkout"  # this clone, read-only
DEPS = "/opt/sla-connector-deps"  # this test's site-packages, read-only
VENV = "/opt/sla-connector"
CONFIG = "/etc/sla-connector/config.toml"
MAPPING = "/etc/sla-connector/mappings/helpdesks/zendesk.yaml"
STATE_DIR = "/var/lib/private/sla-connector"

SYNCED = re.compile(r"^synced \S+: (\d+) tickets, \d+ writes, \d+ unmapped$")
NOTIFICATION = re.compile(r"Got notification message from PID (\d+) \((.*)\)$", re.DOTALL)
REFUSED = "RELOAD REFUSED, previous mappings in force: "


REQUIRED = bool(os.environ.get("SLA_CONNECTOR_REQUIRE_SYSTEMD"))


def cannot_boot(reason: str) -> NoReturn:
    message = f"cannot boot a systemd container here: {reason}"
    if REQUIRED:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@contextmanager
def timed(what: str) -> Iterator[None]:
    """Print how long `what` took (a busy machine is slow: printed, never asserted)."""
    started = time.monotonic()
    try:
        yield
    finally:
        print(f"[systemd] {what}: {time.monotonic() - started:.1f} s", flush=True)


def service_python() -> str | None:
    """A Python of this test's version that the service can run: not in /root or /home
    (ProtectHome=) nor /tmp (PrivateTmp=), where pyenv and virtual environments live."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    prefixes = ["/usr", "/usr/local"]
    base = sys.base_prefix
    if base.startswith("/usr/") and base not in prefixes:
        prefixes.insert(0, base)
    for prefix in prefixes:
        if Path(prefix, "bin", version).is_file():
            return f"{prefix}/bin/{version}"
    return None


def lacking() -> str | None:
    """What this machine lacks to boot the container and run the service, if anything."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return unavailable() or (None if service_python() else f"no {version} in /usr for it")


# Known before booting: the whole file is skipped, in one line (where it is required, each
# test fails instead).
if not REQUIRED and (missing := lacking()) is not None:
    pytest.skip(f"cannot boot a systemd container here: {missing}", allow_module_level=True)


def site_packages() -> list[Path]:
    """This test's installed dependencies (its virtual environment's site-packages)."""
    paths = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    return [Path(p) for p in sorted(paths)]


# --- reading the journal ------------------------------------------------------------------------


@dataclass(frozen=True)
class Notification:
    pid: int
    fields: str  # "READY=1, STATUS=…", as systemd logs them
    at: float


def notifications(entries: list[dict[str, Any]], field: str = "") -> list[Notification]:
    """The sd_notify messages systemd logged (at debug level), those with `field` only."""
    found = []
    for entry in entries:
        match = NOTIFICATION.search(entry["MESSAGE"])
        if match and field in match[2]:
            at = int(entry["__REALTIME_TIMESTAMP"]) / 1e6
            found.append(Notification(int(match[1]), match[2], at))
    return found


def events(entries: list[dict[str, Any]], name: str, unit: str = UNIT) -> list[dict[str, Any]]:
    """The daemon's own JSON log lines named `name` (with `_pid` and `_at` added). journald
    files them under the unit from the first line on, as it does for every DynamicUser= unit
    (see `Box.wait_for_sandbox` for the others)."""
    found = []
    for entry in entries:
        if entry.get("_SYSTEMD_UNIT") != unit or not entry["MESSAGE"].startswith("{"):
            continue
        try:
            line = json.loads(entry["MESSAGE"])
        except ValueError:
            continue
        if isinstance(line, dict) and line.get("event") == name:
            line["_pid"] = int(entry["_PID"])
            line["_at"] = int(entry["__REALTIME_TIMESTAMP"]) / 1e6
            found.append(line)
    return found


def messages(entries: list[dict[str, Any]], text: str) -> list[str]:
    return [e["MESSAGE"] for e in entries if text in e["MESSAGE"]]


# --- the installed service ----------------------------------------------------------------------


@dataclass
class Box:
    """The container with the project installed; helpers to bring the service to a state."""

    container: SystemdContainer
    sandboxes: int = 0  # sandboxes started so far: each a transient unit of its own name

    @property
    def sandbox(self) -> str:
        return f"sla-sandbox-{self.sandboxes}.service"

    def run(self, *argv: str, **options: Any) -> subprocess.CompletedProcess[str]:
        return self.container.run(*argv, **options)

    def show(self, *properties: str, unit: str = UNIT) -> dict[str, str]:
        return self.container.show(unit, *properties)

    def journal(self, after: str, unit: str = UNIT) -> list[dict[str, Any]]:
        return self.container.journal(unit, after)

    def wait_until(
        self,
        what: str,
        check: Callable[[dict[str, str]], bool],
        *properties: str,
        timeout: float = 120.0,
    ) -> dict[str, str]:
        """`systemctl show` of the daemon's unit, once `check` holds for it."""
        deadline = time.monotonic() + timeout
        while True:
            shown = self.show(*properties)
            if check(shown):
                return shown
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}: {shown}")
            time.sleep(0.25)

    def start_sandbox(self, tickets: int = 0) -> None:
        """The sandbox helpdesk (Zendesk) on 127.0.0.1:PORT; `tickets` more generated."""
        self.stop_sandbox()
        self.sandboxes += 1
        generate = ["--generate", str(tickets)] if tickets else []
        command = ["sandbox", "--port", str(PORT), "--helpdesk", "zendesk", *generate]
        unit = f"--unit={self.sandbox}"
        self.run("systemd-run", unit, "--collect", "--quiet", f"{VENV}/bin/sla-connector", *command)

    def wait_for_sandbox(self, timeout: float = 300.0) -> None:
        """Until the sandbox answers (generating thousands of tickets takes a while). Asked
        over HTTP: in this container journald files a plain unit's first lines (the sandbox's
        banner) under init.scope, not the unit (units with DynamicUser= are not affected)."""
        url = f"http://127.0.0.1:{PORT}/_sandbox"
        ask = f"import urllib.request; urllib.request.urlopen({url!r}, timeout=10).read()"
        deadline = time.monotonic() + timeout
        while self.run(f"{VENV}/bin/python", "-c", ask, check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise AssertionError(f"the sandbox did not answer at {url}")
            time.sleep(1)

    def stop_sandbox(self) -> None:
        if self.sandboxes:
            self.run("systemctl", "stop", self.sandbox, check=False)

    def sandbox_running(self) -> bool:
        shown = self.show("ActiveState", unit=self.sandbox) if self.sandboxes else {}
        return shown.get("ActiveState") == "active"

    def ensure_active(self) -> dict[str, str]:
        """The daemon running against a running sandbox; its MainPID and NRestarts."""
        if self.show("ActiveState")["ActiveState"] != "active":
            if not self.sandbox_running():
                self.start_sandbox()
            self.run("systemctl", "reset-failed", UNIT, check=False)
            self.run("systemctl", "start", UNIT, timeout=300)
        return self.show("ActiveState", "MainPID", "NRestarts")

    def fresh(self) -> None:
        """The daemon and the sandbox stopped, no state: as before the first start."""
        self.run("systemctl", "stop", UNIT)
        self.run("systemctl", "reset-failed", UNIT, check=False)
        self.stop_sandbox()
        self.run("rm", "-rf", STATE_DIR)

    def assert_no_watchdog_kill(self, after: str) -> None:
        entries = self.journal(after)
        assert not messages(entries, "Watchdog timeout"), messages(entries, "Watchdog timeout")


def dependency_binds() -> list[tuple[Path, str]]:
    """This test's site-packages folders and where the container has them."""
    folders = site_packages()
    return [(path, DEPS if i == 0 else f"{DEPS}-{i}") for i, path in enumerate(folders)]


def install_script(python: str) -> str:
    """The README's "Running it as a service" (steps 1-5 and 7), then the test's drop-ins."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    deps = "\\n".join(target for _, target in dependency_binds())
    return f"""
# A clean slate: nothing of this machine's own installation, if it has one.
rm -rf /etc/sla-connector /etc/credstore /etc/systemd/system/sla-connector*
mkdir /root/clone
cp -a {CHECKOUT}/pyproject.toml {CHECKOUT}/README.md {CHECKOUT}/connector {CHECKOUT}/mappings \\
    {CHECKOUT}/systemd /root/clone/
cd /root/clone

# 1. A virtual environment outside /home, linked where the units expect it. The locked
# dependencies are this test's own (no network here): a .pth names them instead of
# `pip install -r requirements.txt`; the project itself is installed as the README says.
{python} -m venv --without-pip {VENV}
printf '{deps}\\n' > {VENV}/lib/{version}/site-packages/sla-connector-deps.pth
PIP_ROOT_USER_ACTION=ignore {VENV}/bin/python -m pip install -q --disable-pip-version-check \\
    --no-index --ignore-installed --no-deps --no-build-isolation .
ln -s {VENV}/bin/sla-connector /usr/local/bin/sla-connector

# 2. The mappings.
install -d /etc/sla-connector/mappings/contracts /etc/sla-connector/mappings/helpdesks
cp mappings/contracts/*.yaml /etc/sla-connector/mappings/contracts/
cp mappings/helpdesks/zendesk.example.yaml {MAPPING}

# 3. The configuration: the sandbox, polled every 2 s. No `start`: the first poll reads the
# last 24 hours, older tickets are the backfill's.
cat > {CONFIG} <<'EOF'
helpdesk = "zendesk"
mappings = "/etc/sla-connector/mappings"
helpdesk_mapping = "{MAPPING}"
poll_interval = 2

[zendesk]
url = "http://127.0.0.1:{PORT}/zendesk"
auth = "api_token"
email = "agent@example.com"

[metrics]
listen = "127.0.0.1:9464"
EOF

# 4. The secret: the sandbox's public API token.
install -d -m 0700 /etc/credstore
(umask 077; printf %s sandbox-zendesk-token > /etc/credstore/sla-connector.zendesk_api_token)

# 5. The units.
cp systemd/sla-connector.service systemd/sla-connector-backfill@.service /etc/systemd/system/
systemctl daemon-reload

# 7. Enabled (started by the tests).
systemctl enable --quiet sla-connector

# The test's own: a 5 s watchdog for every check, quick restarts, no core dumps.
mkdir -p /etc/systemd/system/{UNIT}.d
cat > /etc/systemd/system/{UNIT}.d/50-test.conf <<'EOF'
[Service]
WatchdogSec={WATCHDOG_SEC}s
RestartSec=1s
LimitCORE=0
EOF
# A started unit ordered after both keeps them loaded once they have stopped, so that
# `systemctl show` still tells how they ended (systemd unloads an idle unit otherwise).
cat > /etc/systemd/system/sla-test-pin.target <<'EOF'
[Unit]
Description=Keeps the units under test loaded
After={UNIT} {BACKFILL}
EOF
systemctl daemon-reload
systemctl start sla-test-pin.target
# systemd logs each sd_notify message at debug level.
systemd-analyze log-level debug
"""


@pytest.fixture(scope="module")
def box() -> Iterator[Box]:
    missing, python = lacking(), service_python()
    if missing is not None or python is None:
        cannot_boot(missing or "no Python")
    binds = [(ROOT, CHECKOUT), *dependency_binds()]
    with tempfile.TemporaryDirectory(prefix="sla-systemd-") as work:
        container = SystemdContainer(Path(work), f"sla-test-{os.getpid()}", binds)
        try:
            try:
                with timed("boot"):
                    container.boot()
            except ContainerUnavailable as exc:
                container.close()
                cannot_boot(str(exc))
            with timed("install (README steps 1-5, 7)"):
                container.sh(install_script(python))
            yield Box(container)
        finally:
            with timed("power-off"):
                container.close()


# --- the checks -------------------------------------------------------------------------------


def test_start_returns_once_ready_and_waits_while_the_helpdesk_is_down(box: Box) -> None:
    box.fresh()
    mark = box.container.cursor()
    started = time.monotonic()
    start = box.container.popen("systemctl", "start", UNIT)
    try:
        with timed("helpdesk down: until the status line says the sync failed"):
            down = box.wait_until(
                "the failed sync on the status line",
                lambda p: p["StatusText"].startswith("last sync failed: "),
                "ActiveState",
                "StatusText",
            )
        assert down["ActiveState"] == "activating", down
        assert "127.0.0.1" in down["StatusText"], down
        assert start.poll() is None, "systemctl start returned while the helpdesk was down"
        box.start_sandbox()
        with timed("sandbox up: until systemctl start returns"):
            try:
                stdout, stderr = start.communicate(timeout=180)
            except subprocess.TimeoutExpired:
                state = box.show("ActiveState", "StatusText")
                raise AssertionError(
                    f"systemctl start still waits (no READY=1?): {state}"
                ) from None
        assert start.returncode == 0, stdout + stderr
    finally:
        if start.returncode is None:
            box.container.kill(start)
    print(f"[systemd] systemctl start, in all: {time.monotonic() - started:.1f} s")

    shown = box.show("ActiveState", "MainPID", "StatusText")
    assert shown["ActiveState"] == "active", shown
    assert SYNCED.match(shown["StatusText"]), shown
    # What let `systemctl start` return: READY=1 from the main process, with the last sync.
    entries = box.container.wait_for_journal(
        "Started", lambda es: bool(messages(es, f"Started {UNIT}")), UNIT, mark
    )
    ready = notifications(entries, "READY=1")
    assert [n.pid for n in ready] == [int(shown["MainPID"])], ready
    assert "STATUS=synced " in ready[0].fields, ready
    assert {e["_pid"] for e in events(entries, "daemon_started")} == {ready[0].pid}, "restarted"
    order = [e["MESSAGE"] for e in entries]
    first_ready = next(i for i, m in enumerate(order) if "READY=1" in m)
    assert first_ready < next(i for i, m in enumerate(order) if f"Started {UNIT}" in m)
    # The retries while the helpdesk was down kept the watchdog fed (5 s) too: it watched
    # them from the first WATCHDOG=1 on (see the long first sync below).
    assert [n for n in notifications(entries, "WATCHDOG=1") if n.at < ready[0].at]
    assert events(entries, "helpdesk_unreachable")
    box.assert_no_watchdog_kill(mark)
    # `systemctl status` shows it on its Status: line.
    status = box.run("systemctl", "status", "--no-pager", "--lines=0", UNIT).stdout
    assert re.search(r'^\s*Status: "synced \S+: \d+ tickets, ', status, re.MULTILINE), status


def test_state_is_in_the_private_state_directory_of_the_dynamic_user(box: Box) -> None:
    shown = box.ensure_active()
    files = f"/var/lib/private {STATE_DIR} {STATE_DIR}/state.sqlite3"
    stats = box.run("sh", "-c", f"stat -c '%a %u %F' {files}").stdout.splitlines()
    owner = box.run("stat", "-c", "%u", f"/proc/{shown['MainPID']}").stdout.strip()
    link = box.run("readlink", "/var/lib/sla-connector").stdout.strip()
    private, folder, database = (line.split(" ", 2) for line in stats)
    assert private[0] == "700", private
    assert folder == ["700", owner, "directory"], (folder, owner)
    assert 61184 <= int(owner) <= 65519, f"not a dynamic user's uid: {owner}"
    assert database[1:] == [owner, "regular file"], database
    assert int(database[0], 8) & 0o077 == 0, f"state.sqlite3 is readable by others: {database}"
    assert link == "private/sla-connector", link


def test_reload_refuses_a_broken_mapping_and_keeps_running(box: Box) -> None:
    pid = box.ensure_active()["MainPID"]
    mark = box.container.cursor()
    good = box.run("cat", MAPPING).stdout
    with timed("reload with a good mapping"):
        box.run("systemctl", "reload", UNIT)
        box.container.wait_for_journal(
            "the good reload", lambda es: len(events(es, "reloaded")) == 1, UNIT, mark
        )
    box.run("sh", "-c", f"cat > {MAPPING}", input="facts: [this is not a mapping\n")
    with timed("reload with a broken mapping: until the status line says so"):
        box.run("systemctl", "reload", UNIT)
        refused = box.wait_until(
            "the refusal on the status line",
            lambda p: p["StatusText"].startswith(REFUSED),
            "StatusText",
        )["StatusText"]
    assert MAPPING in refused, refused
    # Still running with the previous mappings, and a later sync still says so.
    box.wait_until(
        "a later sync's status, still refused",
        lambda p: p["StatusText"].startswith(REFUSED) and p["StatusText"] != refused,
        "StatusText",
    )
    shown = box.show("ActiveState", "MainPID")
    assert shown == {"ActiveState": "active", "MainPID": pid}, shown
    box.run("sh", "-c", f"cat > {MAPPING}", input=good)
    with timed("reload with the good mapping again: until the status line is clear"):
        box.run("systemctl", "reload", UNIT)
        cleared = box.wait_until(
            "a status line without the refusal",
            lambda p: SYNCED.match(p["StatusText"]) is not None,
            "StatusText",
        )
    entries = box.journal(mark)
    assert len(events(entries, "reload_refused")) == 1
    assert len(events(entries, "reloaded")) == 2, cleared
    assert box.show("MainPID")["MainPID"] == pid
    box.assert_no_watchdog_kill(mark)


def test_backfill_instance_runs_beside_the_daemon(box: Box) -> None:
    pid = box.ensure_active()["MainPID"]
    mark = box.container.cursor()
    with timed(f"systemctl start {BACKFILL}"):
        done = box.run("systemctl", "start", BACKFILL, check=False, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    shown = box.show(
        "Description", "ExecStart", "Result", "ExecMainCode", "ExecMainStatus", unit=BACKFILL
    )
    # %i: the instance as written, not unescaped ("-" would become "/" with %I).
    assert shown["Description"] == f"sla-connector backfill of tickets updated since {SINCE}"
    assert f"--since {SINCE} " in shown["ExecStart"], shown["ExecStart"]
    assert (shown["Result"], shown["ExecMainCode"], shown["ExecMainStatus"]) == (
        "success",
        "1",  # CLD_EXITED
        "0",
    ), shown
    # It wrote the tickets older than the daemon's first poll (24 hours back).
    entries = box.journal(mark, unit=BACKFILL)
    lines = [e["MESSAGE"] for e in entries]
    summary = [re.match(r"(\d+) tickets, (\d+) written, ", m) for m in lines]
    counts = [(int(m[1]), int(m[2])) for m in summary if m]
    assert counts, lines[-20:]
    tickets, written = counts[-1]
    assert tickets > 0, lines[-20:]
    assert written > 0, lines[-20:]
    # The daemon went on beside it.
    assert box.show("ActiveState", "MainPID") == {"ActiveState": "active", "MainPID": pid}
    box.assert_no_watchdog_kill(mark)


def test_watchdog_restarts_a_daemon_that_stopped_making_progress(box: Box) -> None:
    before = box.ensure_active()
    pid = before["MainPID"]
    mark = box.container.cursor()
    box.run("kill", "-STOP", pid)
    with timed("kill -STOP: until the watchdog's restart is active again"):
        after = box.wait_until(
            "the watchdog's restart",
            lambda p: (
                int(p["NRestarts"]) > int(before["NRestarts"]) and p["ActiveState"] == "active"
            ),
            "ActiveState",
            "MainPID",
            "NRestarts",
        )
    assert after["MainPID"] != pid
    said = (
        f"Watchdog timeout (limit {WATCHDOG_SEC}s)!",
        f"Killing process {pid} (sla-connector) with signal SIGABRT.",
        "Failed with result 'watchdog'.",
    )
    box.container.wait_for_journal(
        "the watchdog's messages", lambda es: all(messages(es, m) for m in said), UNIT, mark
    )


def test_stop_is_a_clean_exit_after_stopping(box: Box) -> None:
    pid = box.ensure_active()["MainPID"]
    mark = box.container.cursor()
    with timed("systemctl stop"):
        done = box.run("systemctl", "stop", UNIT, check=False, timeout=400)
    assert done.returncode == 0, done.stdout + done.stderr
    shown = box.show("ActiveState", "Result", "ExecMainPID", "ExecMainCode", "ExecMainStatus")
    assert shown == {
        "ActiveState": "inactive",
        "Result": "success",  # "timeout" had it needed a SIGKILL after TimeoutStopSec
        "ExecMainPID": pid,
        "ExecMainCode": "1",  # CLD_EXITED
        "ExecMainStatus": "0",
    }
    entries = box.container.wait_for_journal(
        "the stop", lambda es: bool(messages(es, f"Stopped {UNIT}")), UNIT, mark
    )
    stopping = notifications(entries, "STOPPING=1")
    assert [n.pid for n in stopping] == [int(pid)], stopping
    assert events(entries, "daemon_stopped")
    assert not messages(entries, "timed out"), messages(entries, "timed out")


def test_watchdog_is_fed_through_a_long_first_sync(box: Box) -> None:
    box.fresh()
    # The generated tickets span 60 days: the first poll starts before them all.
    start = (datetime.now(UTC) - timedelta(days=70)).strftime("%Y-%m-%dT%H:%M:%SZ")
    dropin = f"/etc/systemd/system/{UNIT}.d/55-start.conf"
    setting = f"[Service]\nEnvironment=SLA_CONNECTOR_START={start}\n"
    box.run("sh", "-c", f"cat > {dropin}", input=setting)
    box.run("systemctl", "daemon-reload")
    try:
        first_sync_of_many_tickets(box)
    finally:
        box.run("rm", "-f", dropin)
        box.run("systemctl", "daemon-reload")


def first_sync_of_many_tickets(box: Box) -> None:
    mark = box.container.cursor()
    with timed(f"sandbox of {LARGE} more tickets: until it serves"):
        box.start_sandbox(tickets=LARGE)
        box.wait_for_sandbox()
    with timed("systemctl start: the first sync"):
        done = box.run("systemctl", "start", UNIT, check=False, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    shown = box.show("ActiveState", "MainPID")
    assert shown["ActiveState"] == "active", shown
    entries = box.container.wait_for_journal(
        "READY", lambda es: bool(notifications(es, "READY=1")), UNIT, mark
    )
    box.assert_no_watchdog_kill(mark)
    pid = int(shown["MainPID"])
    assert {e["_pid"] for e in events(entries, "daemon_started")} == {pid}, "restarted"
    ready = notifications(entries, "READY=1")
    assert [n.pid for n in ready] == [pid]
    tickets = re.search(r"STATUS=synced \S+: (\d+) tickets", ready[0].fields)
    assert tickets, ready[0].fields
    assert int(tickets[1]) >= LARGE, ready[0].fields
    # systemd 252 arms a notify service's watchdog at READY=1, or earlier at its first
    # WATCHDOG=1: the sync was watched from the first ping on, and must have been watched far
    # longer than WatchdogSec for this check to mean something.
    began = events(entries, "daemon_started")[0]["_at"]
    pings = [n.at for n in notifications(entries, "WATCHDOG=1") if began <= n.at <= ready[0].at]
    gaps = [b - a for a, b in zip([began, *pings], [*pings, ready[0].at], strict=True)]
    print(
        f"[systemd] first sync of {tickets[1]} tickets: {ready[0].at - began:.1f} s, "
        f"{len(pings)} WATCHDOG=1, longest silence {max(gaps):.1f} s"
    )
    assert pings, "no WATCHDOG=1 before READY: the watchdog never watched the first sync"
    watched = ready[0].at - pings[0]
    assert watched > 2 * WATCHDOG_SEC, (
        f"the watchdog watched the first sync for {watched:.1f} s only, not far beyond "
        f"WatchdogSec={WATCHDOG_SEC}s: raise LARGE for this machine"
    )


def test_without_ready_systemctl_start_never_returns_success(box: Box) -> None:
    """The proof that check 1 rests on READY=1: the same daemon, with `Notifier.ready` sending
    only its status line, syncs and says so, yet `systemctl start` fails at TimeoutStartSec."""
    if not box.sandbox_running():
        box.start_sandbox()
    box.run("systemctl", "stop", UNIT)
    wrapper = "/opt/sla-test/no_ready.py"
    dropin = f"/etc/systemd/system/{UNIT}.d/60-no-ready.conf"
    box.container.sh(f"""
mkdir -p /opt/sla-test
cat > {wrapper} <<'EOF'
import sys

from connector.cli import main
from connector.notify import Notifier


def ready(self: Notifier, status: str | None = None) -> None:
    if status is not None:
        self.status(status)  # the status line, but no READY=1


Notifier.ready = ready  # type: ignore[method-assign]
sys.exit(main(sys.argv[1:]))
EOF
cat > {dropin} <<'EOF'
[Service]
ExecStart=
ExecStart={VENV}/bin/python {wrapper} run --config {CONFIG}
TimeoutStartSec=20s
Restart=no
EOF
systemctl daemon-reload
""")
    try:
        mark = box.container.cursor()
        with timed("systemctl start without READY (TimeoutStartSec=20s)"):
            done = box.run("systemctl", "start", UNIT, check=False, timeout=300)
        assert done.returncode != 0, "systemctl start succeeded without READY=1"
        assert "timeout" in done.stderr, done.stderr
        shown = box.show("ActiveState", "Result")
        assert shown == {"ActiveState": "failed", "Result": "timeout"}, shown
        entries = box.journal(mark)
        # It did sync (and said so on the status line) while systemd waited for READY.
        assert events(entries, "synced"), [e["MESSAGE"] for e in entries[-20:]]
        assert notifications(entries, "STATUS=synced ")
        assert not notifications(entries, "READY=1")
    finally:
        box.container.sh(f"""
systemctl stop {UNIT}
rm -f {dropin} {wrapper}
systemctl daemon-reload
systemctl reset-failed {UNIT} || true
""")


def test_watchdog_is_fed_while_waiting_for_the_next_poll(box: Box) -> None:
    """A poll_interval longer than WatchdogSec is a wait, not a hang: the daemon says all is
    well while it waits (it once did not, and was killed at every wait)."""
    interval = 3 * WATCHDOG_SEC
    dropin = f"/etc/systemd/system/{UNIT}.d/55-poll-interval.conf"
    box.run("systemctl", "stop", UNIT)
    setting = f"[Service]\nEnvironment=SLA_CONNECTOR_POLL_INTERVAL={interval}\n"
    box.run("sh", "-c", f"cat > {dropin}", input=setting)
    box.run("systemctl", "daemon-reload")
    try:
        before = box.ensure_active()
        mark = box.container.cursor()
        deadline = time.monotonic() + 2 * interval + WATCHDOG_SEC
        with timed(f"two waits of {interval} s between polls (WatchdogSec={WATCHDOG_SEC}s)"):
            while time.monotonic() < deadline:
                if box.show("NRestarts")["NRestarts"] != before["NRestarts"]:
                    break
                time.sleep(0.5)
        box.assert_no_watchdog_kill(mark)
        assert box.show("NRestarts") == {"NRestarts": before["NRestarts"]}
    finally:
        box.run("systemctl", "stop", UNIT)
        box.run("rm", "-f", dropin)
        box.run("systemctl", "daemon-reload")
        box.run("systemctl", "reset-failed", UNIT, check=False)
