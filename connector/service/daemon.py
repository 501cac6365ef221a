"""The long-running service: poll, re-decide on time, report to systemd, reload on SIGHUP.

One loop, one thread. Each cycle polls every page changed since the saved position, then
re-decides the tickets whose wake-up time has come (at risk, breached), then sleeps until the
next poll or the next wake-up, whichever is first. Signals only set flags:
- SIGTERM / SIGINT: end the page in hand at once (no request sent, retried or waited for
  after it; its unwritten tickets are taken again at the next start), say STOPPING, exit 0;
- SIGHUP: reload the mappings before the next cycle; invalid new mappings are refused with a
  log line and the old ones stay in force.
"""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import schedule

from connector import logs
from connector.app import load_rules
from connector.config import Settings
from connector.errors import ConfigError, ConnectorError, Interrupted
from connector.helpdesks.adapter import Helpdesk
from connector.http import Interrupt
from connector.metrics import Metrics
from connector.notify import Notifier
from connector.service.sync import Outcome, Sync, Totals
from connector.state import LeaseLost, Store
from connector.timeutil import format_instant

__all__ = ["POLL_CURSOR", "STATUS_CURSOR", "Daemon", "handle_signals", "renewer"]

POLL_CURSOR = "poll"
# The position in the helpdesk's status stream (Zendesk's ticket events export).
STATUS_CURSOR = "statuses"
# After a failed cycle, wait this long before the next try (doubling up to the poll interval).
RETRY_FIRST = 5.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Daemon:
    """`sla-connector run`: the sync loop under systemd."""

    def __init__(
        self,
        settings: Settings,
        state: Store,
        helpdesk: Helpdesk,
        *,
        log: Any,
        metrics: Metrics | None = None,
        notifier: Notifier | None = None,
        clock: Callable[[], datetime] = _utcnow,
        interrupt: Interrupt | None = None,
    ) -> None:
        self.settings = settings
        # Shared with the helpdesk's HTTP shell: a stop ends its waits and reads at once.
        self.interrupt = interrupt or Interrupt()
        self.state = state
        self.helpdesk = helpdesk
        self.log = log
        self.metrics = metrics
        self.notifier = notifier or Notifier()
        self.clock = clock
        self.sync = Sync(
            helpdesk,
            state,
            load_rules(settings),
            clock=clock,
            log=log,
            observe=self._observe,
            batches=settings.batch_writes,
        )
        self._stop = False
        state.waiting = self._waiting
        self.status = 0  # the exit status `run` returns
        # Whether it stopped because its claim on a shared state passed to another daemon.
        self.claim_lost = False
        # A reload refused: said on every status line until a good reload (the mappings in
        # force are not the files on disk).
        self._refused: str | None = None
        self._last_status: str | None = None
        self._reload = False
        self._wakeup = threading.Event()
        self._ready = False
        self._failures = 0
        self._breached: dict[str, str] = {}  # ticket → contract, for the breaches gauge
        self.scheduler = schedule.Scheduler()
        self.scheduler.every(settings.poll_interval).seconds.do(self.cycle)
        if metrics is not None and settings.metrics.textfile is not None:
            textfile = settings.metrics.textfile
            self.scheduler.every(15).seconds.do(metrics.write_textfile, textfile)

    # --- signals ----------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT stop after the page in hand; SIGHUP reloads the mappings."""
        handle_signals(self.stop, self.ask_reload)

    def ask_reload(self) -> None:
        """Reload the mappings before the next cycle (as SIGHUP does)."""
        self._reload = True
        self._wakeup.set()

    def stop(self) -> None:
        """Ask the loop to end the page in hand and return.

        The page ends at once: no request is sent or retried after it, a wait or a read in
        flight ends, a write in flight is left to end within its deadline. The tickets of the
        page not yet written are taken again at the next start.
        """
        self._stop = True
        self._wakeup.set()
        self.interrupt.set()

    def _waiting(self) -> None:
        """While the state's writer is another's (a backfill's page): all is well, unless a
        stop was asked for."""
        self.notifier.alive()
        if self.interrupt.is_set():
            raise Interrupted(
                "not sent: the process is stopping", method="WAIT", url=self.state.where
            )

    @property
    def stopping(self) -> bool:
        """Whether a stop was asked for."""
        return self._stop

    # --- the loop ---------------------------------------------------------------------------

    def run(self) -> int:
        """Cycle until stopped; returns the exit status (0)."""
        self.log.info(
            "daemon_started",
            helpdesk=self.helpdesk.name,
            state=self.state.where,
            poll_interval=self.settings.poll_interval,
            contracts=sorted(self.sync.rules.contracts),
        )
        self.cycle()
        while not self._stop:
            self._idle_wait(self._idle_seconds())
            self._wakeup.clear()
            if self._stop:
                break
            if not self._keep_claim():
                break
            if self._reload:
                self.reload()
            if self._failures:
                self.cycle()
            else:
                self.scheduler.run_pending()
                if self._wake_due():
                    self.wake()
        self.notifier.stopping("stopping: the page in hand is done")
        self.log.info("daemon_stopped")
        return self.status

    def _idle_wait(self, seconds: float) -> None:
        """Wait for the next poll or wake-up, or a signal, saying all is well meanwhile: a
        `poll_interval` longer than the unit's `WatchdogSec` is a wait, not a hang. (Saying so
        renews a claim on a shared state too: found passed, the loop ends.)"""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self._wakeup.wait(min(left, self.notifier.ALIVE_EVERY)):
                return
            try:
                self.notifier.alive()
            except LeaseLost as exc:
                self._claim_passed(exc)
                return
            except (ConnectorError, OSError) as exc:  # the server away for now: tried again
                self.log.warning("claim_not_renewed", error=str(exc))

    def _claim_passed(self, exc: LeaseLost) -> None:
        """Another daemon holds the claim now (this one stalled past it): nothing more from
        this one; the loop ends, exit status 1 (systemd restarts it, and it waits its turn as
        a second daemon would)."""
        self.log.error("claim_lost", error=str(exc))
        self.notifier.status(f"stopped: {exc}")
        self.status, self._stop, self.claim_lost = 1, True, True

    def _keep_claim(self) -> bool:
        """Renew the claim on a shared state; False when it passed to another daemon (this
        one stalled past it): the loop ends, and the exit status says so."""
        try:
            self.state.keep()
        except LeaseLost as exc:
            self._claim_passed(exc)
            return False
        except (ConnectorError, OSError) as exc:  # the server away for now: tried again
            self.log.warning("claim_not_renewed", error=str(exc))
        return True

    def _idle_seconds(self) -> float:
        keep = self.state.keep_every
        try:
            idle = self._idle()
        except (ConnectorError, sqlite3.Error, OSError) as exc:  # the state away for now
            self._failed("state_unavailable", exc)
            idle = float(min(RETRY_FIRST * 2 ** (self._failures - 1), self.settings.poll_interval))
        return min(idle, keep) if keep is not None else idle

    def _idle(self) -> float:
        if self._failures:
            return float(min(RETRY_FIRST * 2 ** (self._failures - 1), self.settings.poll_interval))
        idle: float | None = self.scheduler.idle_seconds
        wait = float(self.settings.poll_interval) if idle is None else max(idle, 0.0)
        next_wake = self.state.next_wakeup()
        if next_wake is not None:
            wait = min(wait, max((next_wake - self.clock()).total_seconds(), 0.0))
        return max(wait, 0.05)

    def _wake_due(self) -> bool:
        try:
            next_wake = self.state.next_wakeup()
        except (ConnectorError, sqlite3.Error, OSError) as exc:
            self._failed("state_unavailable", exc)
            return False
        return next_wake is not None and next_wake <= self.clock()

    def cycle(self) -> None:
        """One poll to the end of the stream, then the wake-ups that are due."""
        started = self.clock()
        try:
            self.sync.settle_journal()
            start = self.settings.first_poll_start(started)
            self.sync.read_statuses(STATUS_CURSOR, start)
            totals = self.sync.poll(POLL_CURSOR, start, stop=lambda: self._stop)
            if not self._stop:
                woken = self.sync.wake()
                totals.woken = woken.woken
                totals.writes += woken.writes
        except Interrupted:
            self.log.info("sync_interrupted", detail="stopping; the page in hand is taken again")
            return
        except (ConnectorError, sqlite3.Error, OSError) as exc:
            self._failed("sync_failed", exc)
            return
        self._failures = 0
        self._progress(started, totals)

    def _failed(self, event: str, exc: Exception) -> None:
        """A cycle that failed: a log line, a metric, the status line, and a back-off.

        The state's own failures (a full disk, a lock held too long, a damaged file, a
        read-only file system) come as SQLite's and the OS's exceptions: they may pass, and
        the transaction in hand was rolled back, so they are handled like a helpdesk outage.
        """
        self._failures += 1
        if isinstance(exc, LeaseLost):
            self._claim_passed(exc)
            return
        if isinstance(exc, ConnectorError):
            kind, text = type(exc).__name__, str(exc)
        else:
            kind, text = "StateUnavailable", f"state {self.state.where}: {exc}"
        self.log.error(event, error=text, kind=kind, failures=self._failures)
        if self.metrics is not None:
            self.metrics.errors.labels(kind=kind).inc()
        self._status(f"last sync failed: {logs.redact(text)}")

    def wake(self) -> None:
        """Re-decide the tickets whose time has come (between polls)."""
        try:
            totals = self.sync.wake()
        except Interrupted:
            return
        except (ConnectorError, sqlite3.Error, OSError) as exc:
            self._failed("wake_failed", exc)
            return
        if totals.tickets:
            self.log.info("woken", tickets=totals.woken, writes=totals.writes)
            self.notifier.watchdog()

    def _progress(self, started: datetime, totals: Totals) -> None:
        now = self.clock()
        self.log.info(
            "synced",
            tickets=totals.tickets,
            writes=totals.writes,
            notes=totals.notes,
            unmapped=totals.unmapped,
            failed=totals.failed,
            woken=totals.woken,
            seconds=round((now - started).total_seconds(), 3),
        )
        status = (
            f"synced {format_instant(now)}: {totals.tickets} tickets, {totals.writes} writes, "
            f"{totals.unmapped} unmapped"
        )
        if not self._ready:
            self._ready = True
            self._last_status = status
            self.notifier.ready(status)
        else:
            self._status(status)
        self.notifier.watchdog()
        if self.metrics is not None:
            self.metrics.last_sync.set(now.timestamp())
            if totals.newest is not None:
                self.metrics.sync_lag.set(max((now - totals.newest).total_seconds(), 0.0))
            breached: dict[str, int] = {}
            for contract in self._breached.values():
                breached[contract] = breached.get(contract, 0) + 1
            for name in self.sync.rules.contracts:
                self.metrics.breaches.labels(contract=name).set(breached.get(name, 0))

    def _observe(self, outcome: Outcome) -> None:
        self.notifier.alive()
        decision = outcome.decision
        if decision is not None and any(t.state == "breached" for t in decision.targets.values()):
            self._breached[outcome.ticket] = decision.contract
        else:
            self._breached.pop(outcome.ticket, None)
        metrics = self.metrics
        if metrics is None:
            return
        metrics.tickets_seen.inc()
        if outcome.changed:
            metrics.decisions_changed.inc()
        if outcome.wrote and outcome.plan is not None:
            metrics.writes.labels(kind="update").inc()
            if outcome.plan.note:
                metrics.writes.labels(kind="note").inc()
        if outcome.unmapped:
            metrics.unmapped.inc()
        elif outcome.problem is not None:
            metrics.errors.labels(kind="ticket").inc()

    # --- reload -----------------------------------------------------------------------------

    def reload(self) -> None:
        """Load the mappings again; keep the ones in force if the new ones are invalid."""
        self._reload = False
        self.notifier.reloading()
        try:
            rules = load_rules(self.settings)
        except ConfigError as exc:
            self.log.error(
                "reload_refused", problems=[str(p) for p in exc.problems], kept="previous mappings"
            )
            if self.metrics is not None:
                self.metrics.errors.labels(kind="reload_refused").inc()
            first = str(exc.problems[0]) if exc.problems else str(exc)
            more = f" (+{len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
            self._refused = f"{logs.redact(first)}{more}"
        else:
            self.sync.rules = rules
            self.log.info("reloaded", contracts=sorted(rules.contracts))
            self._refused = None
        self.notifier.ready()
        self._status(self._last_status or "reloaded")

    def _status(self, text: str) -> None:
        """The status line; while a reload stands refused, it says so first."""
        self._last_status = text
        if self._refused is not None:
            text = f"RELOAD REFUSED, previous mappings in force: {self._refused}; {text}"
        self.notifier.status(text)


def handle_signals(stop: Callable[[], None], reload: Callable[[], None]) -> None:
    """SIGTERM and SIGINT call `stop`, SIGHUP `reload` (each only sets flags: a handler runs
    between two bytecodes of the main thread)."""

    def on_stop(signum: int, frame: FrameType | None) -> None:
        stop()

    def on_reload(signum: int, frame: FrameType | None) -> None:
        reload()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_reload)


def renewer(state: Store) -> Callable[[], None]:
    """`state.keep()` at most every `state.keep_every` seconds (nothing for a file): hung on
    the notifier, it keeps a claim on a shared state through the waits inside a cycle (a rate
    limit's minutes), not only between cycles."""
    last = [time.monotonic()]

    def renew() -> None:
        every = state.keep_every
        if every is not None and time.monotonic() - last[0] >= every:
            last[0] = time.monotonic()
            state.keep()

    return renew
