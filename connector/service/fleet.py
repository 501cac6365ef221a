"""`run` for a configuration that names several helpdesk accounts (`[[tenants]]`).

Each tenant held is served by a `Daemon` of its own (its state view, helpdesk, mappings,
budgets, metrics), each in a thread: one account's rate-limit wait or outage holds up no other.
The main thread holds them together:

- On a SQLite state the process claims the file (one daemon per file, as with one account)
  and serves every tenant.
- On a PostgreSQL state several daemons share the tenants. Each says it is alive (a lease
  `daemon:<owner>`) and serves its share: ceil(tenants / daemons alive), at most
  `tenants_per_daemon`. It takes free tenants (a lease `tenant:<name>` each, with fencing:
  see `connector.state.postgres`) while under its share, and hands back its newest ones while
  over it (a daemon joined). A daemon that stops (SIGTERM) hands every tenant back at once;
  one that dies loses them when their leases run out, and the others take them.

A tenant that cannot start (its mappings refused, a secret missing) is said on one log line and
on the status line, and tried again a minute later; the others go on.

systemd hears READY once every tenant held at the start has synced once (or failed), WATCHDOG
while every tenant's thread shows progress, STATUS with the tenants served and failing, and
STOPPING on SIGTERM. SIGHUP reloads every tenant's mappings.
"""

from __future__ import annotations

import math
import os
import random
import socket
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from connector import logs
from connector.app import open_helpdesk
from connector.config import MetricsSettings, Settings
from connector.errors import ConnectorError
from connector.http import Interrupt
from connector.metrics import Metrics
from connector.notify import Notifier
from connector.service.daemon import Daemon, handle_signals, renewer
from connector.state import Busy, LeaseLost, Store, open_state

__all__ = ["Fleet"]

# A tenant that failed to start is tried again after this long.
RETRY_SECONDS = 60.0
# The most the main loop sleeps between looks at the tenants and the other daemons.
TICK_SECONDS = 5.0
# How long a stop waits for each tenant's page in hand.
STOP_SECONDS = 60.0


class _TenantNotifier(Notifier):
    """What one tenant's daemon tells systemd, kept for the fleet to sum up: its status, its
    first sync, its last sign of progress. Sends nothing itself."""

    def __init__(self) -> None:
        super().__init__(socket_path="")
        self.text: str | None = None
        self.synced = False
        self.beat = time.monotonic()

    def ready(self, status: str | None = None) -> None:
        self.synced = True
        self.beat = time.monotonic()
        if status is not None:
            self.text = status

    def status(self, text: str) -> None:
        self.text = text

    def watchdog(self) -> None:
        super().watchdog()
        self.beat = time.monotonic()

    def reloading(self, status: str | None = None) -> None:
        return

    def stopping(self, status: str | None = None) -> None:
        return


@dataclass
class _Held:
    """One tenant this daemon serves."""

    settings: Settings
    state: Store
    metrics: Metrics
    notifier: _TenantNotifier = field(default_factory=_TenantNotifier)
    interrupt: Interrupt = field(default_factory=Interrupt)
    daemon: Daemon | None = None
    thread: threading.Thread | None = None
    failure: str | None = None
    lost: bool = False  # its lease passed to another daemon
    stop_asked: bool = False

    @property
    def name(self) -> str:
        return self.settings.tenant


class Fleet:
    """The tenants of one configuration, served by this process (and others, on a server)."""

    def __init__(
        self,
        settings: Settings,
        *,
        log: Any,
        metrics: Metrics,
        notifier: Notifier | None = None,
        new_state: bool = False,
    ) -> None:
        self.settings = settings
        self.accounts = {a.tenant: a for a in settings.accounts()}
        self.log = log
        self.metrics = metrics
        self.notifier = notifier or Notifier()
        self.lease_seconds = settings.state_lease_seconds
        # The control view: the claim on a file, or this daemon's own lease on a server.
        self.control = open_state(settings, new_state=new_state)
        self.shared = self.control.shared
        self.owner = str(getattr(self.control, "owner", f"{socket.gethostname()}:{os.getpid()}"))
        self.held: dict[str, _Held] = {}
        self.failed_at: dict[str, float] = {}  # tenant → when it last failed to start
        self.failures: dict[str, str] = {}  # tenant → why, until it runs again
        self._stop = False
        self._reload = False
        self._wakeup = threading.Event()
        self._ready = False
        self._first: set[str] | None = None  # the tenants held after the first look
        self._said: str | None = None
        self._short = False  # too few daemons for every tenant (said once)
        self._free_since: dict[str, float] = {}  # tenant → since when nobody serves it
        self._unserved = 0  # tenants no daemon serves, at the last look
        self._textfile_at = 0.0
        self.status = 0

    # --- signals ----------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT stop every tenant after its page in hand; SIGHUP reloads them all."""
        handle_signals(self.stop, self.ask_reload)

    def ask_reload(self) -> None:
        """Reload every tenant's mappings (as SIGHUP does)."""
        self._reload = True
        self._wakeup.set()

    def stop(self) -> None:
        """Ask every tenant to end its page in hand, then hand the tenants back."""
        self._stop = True
        self._wakeup.set()
        for held in list(self.held.values()):
            self._ask_stop(held)

    # --- the loop ---------------------------------------------------------------------------

    def run(self) -> int:
        """Serve tenants until stopped; returns the exit status (0)."""
        if not self.shared:
            self.control.claim("run")  # one daemon per file: Busy when another holds it
        self.log.info(
            "fleet_started",
            tenants=sorted(self.accounts),
            state=self.control.where,
            owner=self.owner,
            tenants_per_daemon=self.settings.tenants_per_daemon,
        )
        try:
            while not self._stop:
                self._look()
                self._wakeup.wait(self._tick())
                self._wakeup.clear()
                if self._reload and not self._stop:
                    self._reload_all()
        finally:
            # Said at once: the tenants end their pages in hand, then are handed back.
            self.notifier.stopping("stopping: every tenant ends its page in hand")
            self._hand_back()
        self.log.info("fleet_stopped")
        return self.status

    def _tick(self) -> float:
        tick = min(self.lease_seconds / 3, TICK_SECONDS)
        watchdog = self.notifier.watchdog_interval()
        return min(tick, watchdog / 2) if watchdog else tick

    def _look(self) -> None:
        """One look: the tenants that ended, the share, the tenants to take or hand back,
        then what systemd hears."""
        for held in list(self.held.values()):
            if held.thread is not None and not held.thread.is_alive():
                self._ended(held)
        try:
            if self.shared:
                self._share()
            else:
                for name in sorted(self.accounts):
                    if self._stop:
                        break
                    if name not in self.held and self._may_start(name):
                        self._start(name)
        except (ConnectorError, sqlite3.Error, OSError) as exc:  # the state away for now
            self.log.warning("fleet_look_failed", error=str(exc))
        if self._first is None:
            self._first = set(self.held)
        self._tell()
        textfile = self.settings.metrics.textfile
        if textfile is not None and time.monotonic() - self._textfile_at >= 15:
            self._textfile_at = time.monotonic()
            try:
                self.metrics.write_textfile(textfile)
            except OSError as exc:
                self.log.warning("metrics_textfile_failed", error=str(exc))

    def _share(self) -> None:
        """Take free tenants up to this daemon's share, and tenants nobody took for two looks
        beyond it; hand back the newest beyond the share, as many as the other daemons lack.

        A daemon whose every tenant fails (a credential missing on its host, say) stops saying
        it is alive and well: the others' shares then grow over what it cannot serve.
        """
        # Failed a start within the last minute, and serves nothing that works.
        failing_all = any(
            time.monotonic() - at < RETRY_SECONDS for at in self.failed_at.values()
        ) and not any(h.notifier.synced for h in self.held.values())
        self.control.announce(alive=not failing_all)
        daemons, serving = self.control.served()
        self._unserved = len(self.accounts) - len(serving)
        for name in serving:  # served by another now: not failing, whatever it did here
            if name not in self.held:
                self.failures.pop(name, None)
        per_daemon = self.settings.tenants_per_daemon
        share = math.ceil(len(self.accounts) / max(len(daemons), 1))
        if per_daemon is not None:
            share = min(share, per_daemon)
        now = time.monotonic()
        for name in self.accounts:  # how long each tenant has gone unserved
            if name in serving or name in self.held:
                self._free_since.pop(name, None)
            else:
                self._free_since.setdefault(name, now)
        mine = [name for name in self.held if not self.held[name].stop_asked]
        counts = Counter(serving.values())
        lacking = sum(max(share - counts[d], 0) for d in daemons if d != self.owner)
        if len(mine) > share and lacking:
            # The newest go: the oldest keep their warm caches.
            for name in mine[len(mine) - min(len(mine) - share, lacking) :]:
                self.log.info("tenant_handed_back", tenant=name, share=share, daemons=daemons)
                self._ask_stop(self.held[name])
            return
        free = [name for name in self._free_since if self._may_start(name)]
        random.shuffle(free)  # daemons starting together reach for different tenants first
        # Up to the share, going on down the list past the tenants another daemon took first
        # (daemons reach for the same free tenants at once); then, beyond the share, the
        # tenants nobody took for two looks, up to tenants_per_daemon.
        room = (per_daemon if per_daemon is not None else len(self.accounts)) - len(mine)
        wanted, started = max(min(share, len(mine) + room) - len(mine), 0), 0
        orphans = []
        for name in free:
            if self._stop or room <= 0:
                break
            if started < wanted:
                if self._start(name):
                    started, room = started + 1, room - 1
            elif now - self._free_since[name] >= 2 * self._tick():
                orphans.append(name)
        for name in orphans[: max(room, 0)]:
            if self._stop:
                break
            self._start(name)
        short = per_daemon is not None and len(daemons) * per_daemon < len(self.accounts)
        if short and not self._short:
            self.log.warning(
                "tenants_unserved",
                tenants=len(self.accounts) - len(daemons) * (per_daemon or 0),
                daemons=len(daemons),
                tenants_per_daemon=per_daemon,
                action="start another daemon, or raise tenants_per_daemon",
            )
        self._short = short

    def _may_start(self, name: str) -> bool:
        failed = self.failed_at.get(name)
        return failed is None or time.monotonic() - failed >= RETRY_SECONDS

    # --- one tenant -------------------------------------------------------------------------

    def _start(self, name: str) -> bool:
        """Claim the tenant and serve it in a thread of its own (False: another has it, or it
        cannot start)."""
        # The fleet writes the metrics' textfile for every tenant at once.
        settings = self.accounts[name].model_copy(update={"metrics": MetricsSettings()})
        owner = getattr(self.control, "owner", None)
        try:
            state = open_state(settings, owner=owner)
        except ConnectorError as exc:
            self._failed(name, str(exc))
            return False
        try:
            if self.shared:
                state.claim("run")
        except Busy:
            state.close()
            return False
        except BaseException:
            state.close()
            raise
        metrics = Metrics(settings.kind, tenant=name, parent=self.metrics)
        held = _Held(settings, state, metrics)
        self.held[name] = held
        self._size_pool()
        # A daemon thread: a tenant still stuck past STOP_SECONDS does not keep the process
        # alive (ended like a kill: its journal settles the write in flight at the next start).
        held.thread = threading.Thread(
            target=self._serve, args=(held,), name=f"tenant-{name}", daemon=True
        )
        held.thread.start()
        self.log.info("tenant_taken", tenant=name)
        return True

    def _serve(self, held: _Held) -> None:
        """A tenant's thread: its daemon, until stopped, its lease lost, or it fails."""
        log = self.log.bind(tenant=held.name)
        notifier = held.notifier
        try:
            helpdesk = open_helpdesk(
                held.settings,
                held.state,
                observers=[held.metrics.http_observer, notifier.alive],
                on_pace=held.metrics.paced,
                sleep=notifier.sleep,
                interrupt=held.interrupt,
            )
            try:
                notifier.also.append(renewer(held.state))
                daemon = Daemon(
                    held.settings,
                    held.state,
                    helpdesk,
                    log=log,
                    metrics=held.metrics,
                    notifier=notifier,
                    interrupt=held.interrupt,
                )
                held.daemon = daemon
                if held.stop_asked:
                    return
                status = daemon.run()
                # A claim lost (this daemon stalled past it) is no failure of the tenant's: it
                # is served elsewhere, and this daemon may take it again at once.
                held.lost = daemon.claim_lost
                held.failure = None if status == 0 or daemon.claim_lost else notifier.text
            finally:
                helpdesk.close()
        except LeaseLost as exc:  # passed to another daemon: no failure of the tenant's
            log.error("claim_lost", error=str(exc))
            held.lost = True
        except ConnectorError as exc:  # its mappings, its secrets, its state
            held.failure = logs.redact(str(exc))
        except Exception as exc:  # a fault of ours must not take the other tenants down
            log.exception("tenant_crashed", error=str(exc))
            held.failure = f"{type(exc).__name__}: {logs.redact(str(exc))}"

    def _ask_stop(self, held: _Held) -> None:
        held.stop_asked = True
        held.interrupt.set()
        if held.daemon is not None:
            held.daemon.stop()

    def _ended(self, held: _Held) -> None:
        """A tenant's thread ended: hand its lease back, say why, and free its slot."""
        del self.held[held.name]
        held.metrics.forget()
        try:
            held.state.close()  # its leases given back (else they run out by themselves)
        except ConnectorError as exc:
            self.log.warning("tenant_release_failed", tenant=held.name, error=str(exc))
        self._size_pool()
        if held.failure is not None and not held.stop_asked:
            self._failed(held.name, held.failure)
        else:
            self.failures.pop(held.name, None)
            self.log.info("tenant_released", tenant=held.name, lost=held.lost)

    def _failed(self, name: str, why: str) -> None:
        self.failed_at[name] = time.monotonic()
        self.failures[name] = why
        self.log.error("tenant_failed", tenant=name, error=why, retry_in=RETRY_SECONDS)

    def _size_pool(self) -> None:
        if self.shared and self.settings.state_url is not None:
            from connector.state.postgres import resize_pool

            connections = min(len(self.held) + 2, self.settings.state_connections)
            resize_pool(self.settings.state_url, connections)

    def _hand_back(self) -> None:
        """Stop every tenant (its page in hand done), give every lease back."""
        for held in list(self.held.values()):
            self._ask_stop(held)
        deadline = time.monotonic() + STOP_SECONDS
        for held in list(self.held.values()):
            if held.thread is not None:
                held.thread.join(max(deadline - time.monotonic(), 0.1))
            if held.thread is None or not held.thread.is_alive():
                self._ended(held)
            else:
                self.log.warning("tenant_not_stopped", tenant=held.name, seconds=STOP_SECONDS)
        self.control.close()

    def _reload_all(self) -> None:
        self._reload = False
        self.notifier.reloading()
        for held in self.held.values():
            if held.daemon is not None:
                held.daemon.ask_reload()
        self.notifier.ready()

    # --- what systemd hears -----------------------------------------------------------------

    def _tell(self) -> None:
        """READY once the first tenants synced (or failed), WATCHDOG while every tenant shows
        progress, STATUS when what it says changes."""
        held = [h for h in self.held.values() if not h.stop_asked]
        watchdog = self.notifier.watchdog_interval()
        if not watchdog or all(time.monotonic() - h.notifier.beat <= watchdog for h in held):
            self.notifier.watchdog()
        line = self._line(held)
        if not self._ready:
            # A first sync done, or failed (its helpdesk down): the others need not wait.
            waiting = [
                h.name
                for h in held
                if h.name in (self._first or ()) and not h.notifier.synced and not h.notifier.text
            ]
            if not waiting:
                self._ready = True
                self._said = line
                self.notifier.ready(line)
            return
        if line != self._said:
            self._said = line
            self.notifier.status(line)

    def _line(self, held: list[_Held]) -> str:
        names = sorted(h.name for h in held)
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        line = f"serving {len(names)} of {len(self.accounts)} tenants"
        if names:
            line += f" ({shown})"
        if self.shared and self._unserved:
            line += f"; {self._unserved} served by no daemon"
        refused = [h.name for h in held if (h.notifier.text or "").startswith("RELOAD REFUSED")]
        failing = sorted(self.failures)
        if failing:
            first = failing[0]
            line += f"; FAILING {len(failing)}: {first} ({self.failures[first]})"
        if refused:
            line += f"; RELOAD REFUSED for {', '.join(sorted(refused))}"
        return line
