"""The service commands: `run`, `sync --once`, `backfill`, `explain`, `check`, `demo`.

`cli.py` defines their arguments (so that `--help` imports none of this) and calls
`run_command`. Everything
here reads its settings the same way (`--config`, `$SLA_CONNECTOR_CONFIG`, the environment)
and never takes a secret from the command line.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from connector import logs
from connector.app import load_rules, open_helpdesk
from connector.config import Settings, config_path, load_settings
from connector.errors import ConfigError, InputError, Problem, masked_setting, printable
from connector.helpdesks.adapter import Helpdesk
from connector.notify import Notifier
from connector.service.sync import Outcome, Sync, Totals
from connector.state import Busy, StateUnavailable, Store, open_state
from connector.timeutil import format_instant, parse_day_or_instant

__all__ = ["run_command"]


def run_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run one of `connector.cli.SERVICE_COMMANDS`; returns the exit status."""
    if args.command == "demo":
        from connector.cli.demo import run_demo

        return run_demo(args, out)
    settings = load_settings(config_path(args.config))
    if args.command in ("check", "explain"):
        # Their answer goes to stdout; a warning (the helpdesk unreachable, retrying) to
        # stderr as it happens, instead of seconds of silence.
        logs.configure(format=settings.log.format, level="warning", stream=err)
    if args.command == "check":
        return _check(settings, out, offline=args.offline, tenant=args.tenant)
    if args.command in ("sync", "backfill", "explain", "report"):
        # One account: the only one, or the one --tenant names.
        settings = settings.account(args.tenant)
    if args.command == "report":
        from connector.cli.report import run_report

        return run_report(settings, args, out)
    if args.command == "state":
        from connector.cli.state import migrate_state

        return migrate_state(settings, args.to, out)
    if args.command == "explain":
        return _explain(settings, args.ticket, out)
    logs.configure(format=settings.log.format, level=settings.log.level, stream=err)
    new_state = bool(getattr(args, "new_state", False))
    if args.command == "run":
        return _run(settings, new_state)
    if args.command == "sync":
        return _sync_once(settings, out, new_state)
    return _backfill(settings, args, out, err)


@contextmanager
def _opened(
    settings: Settings,
    *,
    claim: str | None = None,
    new_state: bool = False,
    standby: Notifier | None = None,
    **options: Any,
) -> Iterator[tuple[Store, Helpdesk]]:
    """The state and the helpdesk; `claim`: hold the state for this process (one daemon).

    The state failing under a command (a full disk, a lock held too long, a read-only file
    system) ends it with one line and exit 1, as at start: the transaction in hand was rolled
    back, and the command can simply be run again once the cause is gone.
    """
    state = open_state(settings, new_state=new_state)
    try:
        if claim is not None:
            _claim(state, claim, standby)
        if state.shared and "sleep" not in options:
            # A rate limit's wait of minutes inside a page of `backfill` or `sync --once`: the
            # writer's lease on the server stays renewed through it.
            from connector.service.daemon import renewer

            quiet = Notifier(socket_path="")  # the same sleep as the daemon's, told nobody
            quiet.also.append(renewer(state))
            options["sleep"] = quiet.sleep
        helpdesk = open_helpdesk(settings, state, **options)
        try:
            yield state, helpdesk
        except BrokenPipeError:
            raise  # the reader of our output went away: cli.main's to handle
        except (sqlite3.Error, OSError) as exc:
            raise StateUnavailable(
                f"state {settings.state_where}: {exc}; run the command again once the cause is gone"
            ) from exc
        finally:
            helpdesk.close()
    finally:
        state.close()


def _claim(state: Store, command: str, standby: Notifier | None) -> None:
    """Hold the state; with `standby`, on a state another daemon holds on a server (leases),
    wait for it instead of refusing: the holder's lease runs out if it dies, and this daemon
    takes over. systemd hears READY at once and the watchdog while it waits."""
    log = logs.get_logger("sla-connector")
    waiting = False
    while True:
        try:
            state.claim(command)
        except Busy as exc:
            if standby is None or not state.shared:
                raise
            if not waiting:
                log.info("standing_by", holder=str(exc))
                standby.ready(f"standing by: {exc}")
                waiting = True
            standby.sleep(_STANDBY_POLL)
            continue
        if waiting:
            log.info("took_over", state=state.where)
        return


# How often a standby daemon asks for the claim.
_STANDBY_POLL = 2.0


def _run(settings: Settings, new_state: bool) -> int:
    from connector.http import Interrupt
    from connector.metrics import Metrics
    from connector.notify import Notifier
    from connector.service.daemon import Daemon, renewer

    log = logs.get_logger("sla-connector")
    # Several accounts: a series of each, labelled by tenant, exported together.
    metrics = Metrics(None if settings.tenants else settings.kind)
    try:
        if settings.metrics.listen:
            host, _, port = settings.metrics.listen.rpartition(":")
            try:
                bound = metrics.serve(host.strip("[]") or "127.0.0.1", int(port))
            except ValueError as exc:  # its message quotes the configured value
                why = masked_setting(str(exc))
                raise ConfigError([Problem(settings.source, "metrics.listen", why)]) from None
            except OSError as exc:  # the port taken (another daemon of the same file)
                why = f"cannot listen on {settings.metrics.listen}: {exc.strerror or exc}"
                raise ConfigError([Problem(settings.source, "metrics.listen", why)]) from None
            log.info("metrics_listening", address=f"{bound[0]}:{bound[1]}")
        # The watchdog hears from the daemon at each request and through each wait.
        notifier = Notifier()
        if settings.tenants:
            from connector.service.fleet import Fleet

            fleet = Fleet(
                settings, log=log, metrics=metrics, notifier=notifier, new_state=new_state
            )
            fleet.install_signal_handlers()
            return fleet.run()
        interrupt = Interrupt()
        opened = _opened(
            settings,
            claim="run",
            new_state=new_state,
            standby=notifier,
            observers=[metrics.http_observer, notifier.alive],
            on_pace=metrics.paced,
            sleep=notifier.sleep,
            interrupt=interrupt,
        )
        with opened as (state, helpdesk):
            # A claim on a shared state is renewed while the daemon works and waits (a rate
            # limit's minutes), not only between cycles.
            notifier.also.append(renewer(state))
            daemon = Daemon(
                settings,
                state,
                helpdesk,
                log=log,
                metrics=metrics,
                notifier=notifier,
                interrupt=interrupt,
            )
            daemon.install_signal_handlers()
            return daemon.run()
    finally:
        metrics.close()


def _sync_once(settings: Settings, out: TextIO, new_state: bool) -> int:
    from connector.service.daemon import POLL_CURSOR, STATUS_CURSOR

    log = logs.get_logger("sla-connector")
    rules = load_rules(settings)
    with _opened(settings, claim="sync --once", new_state=new_state) as (state, helpdesk):
        sync = Sync(helpdesk, state, rules, clock=_utcnow, log=log, batches=settings.batch_writes)
        sync.settle_journal()
        start = settings.first_poll_start(_utcnow())
        sync.read_statuses(STATUS_CURSOR, start)
        totals = sync.poll(POLL_CURSOR, start)
        woken = sync.wake()
    out.write(_summary(totals, woken) + "\n")
    return 1 if totals.failed or woken.failed else 0


def _summary(totals: Totals, woken: Totals | None = None) -> str:
    text = (
        f"{totals.tickets} tickets, {totals.writes} written ({totals.notes} notes), "
        f"{totals.unmapped} unmapped, {totals.failed} failed"
    )
    if woken is not None and woken.tickets:
        text += f"; {woken.woken} re-decided on time, {woken.writes} written"
    return text


def _utcnow() -> datetime:
    return datetime.now(UTC)


# --- backfill --------------------------------------------------------------------------------


def _day_or_instant(value: str, flag: str) -> datetime:
    try:
        return parse_day_or_instant(value)
    except ValueError as exc:
        raise InputError(f"{flag} {value}: {exc}") from None


class _Progress:
    """Count, rate and ETA on a terminal (one line redrawn); silent otherwise."""

    def __init__(self, stream: TextIO, since: datetime, until: datetime) -> None:
        self.stream = stream
        self.enabled = stream.isatty()
        self.since, self.until = since, until
        self.started = time.monotonic()
        self.shown = 0.0
        self.count = 0
        self.newest: datetime | None = None

    def __call__(self, outcome: Outcome) -> None:
        self.count += 1
        if outcome.updated_at is not None:
            self.newest = outcome.updated_at
        now = time.monotonic()
        if self.enabled and now - self.shown >= 0.5:
            self.shown = now
            self.stream.write("\r" + self.line(now) + "\x1b[K")
            self.stream.flush()

    def line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-6)
        rate = self.count / elapsed
        text = f"{self.count} tickets, {rate:.0f}/s"
        if self.newest is not None:
            span = (self.until - self.since).total_seconds()
            done = (self.newest - self.since).total_seconds() / span if span > 0 else 1.0
            if 0 < done < 1:
                eta = elapsed * (1 - done) / done
                text += f", at {format_instant(self.newest)}, {done:.0%}, ETA {eta:.0f} s"
        return text

    def finish(self) -> None:
        if self.enabled:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def _backfill(settings: Settings, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    since = _day_or_instant(args.since, "--since")
    # Nothing was updated after now: the helpdesk would refuse the range in its own words
    # (Zendesk's 422 "Too recent start_time"). A future --until just means now.
    if since >= _utcnow():
        raise InputError(
            f"--since {args.since}: in the future; a backfill covers tickets updated before now"
        )
    until = _day_or_instant(args.until, "--until") if args.until else None
    if until is not None and until <= since:
        raise InputError(f"--until {args.until}: must be after --since {args.since}")
    if args.limit is not None and args.limit < 1:
        raise InputError("--limit: expected a positive number of tickets")
    name = f"backfill:{format_instant(since)}:{'' if until is None else format_instant(until)}"
    log = logs.get_logger("sla-connector")
    rules = load_rules(settings)
    opened = _opened(settings, new_state=args.new_state)
    with opened as (state, helpdesk), tempfile.TemporaryDirectory() as scratch:
        if args.restart:
            state.forget_cursor(name, name + ":done")
        if state.cursor(name + ":done"):
            out.write(f"backfill {args.since}..{args.until or 'now'} already done (--restart)\n")
            return 0
        work = state.snapshot(Path(scratch) / "dry-run.sqlite3") if args.dry_run else state
        progress = _Progress(err, since, until or _utcnow())

        def observe(outcome: Outcome) -> None:
            progress(outcome)
            # Problems and changes quote the ticket: one printable line each.
            if outcome.problem is not None:
                progress.finish()
                out.write(printable(f"ticket {outcome.ticket}: {outcome.problem}") + "\n")
            if args.dry_run and outcome.plan is not None:
                progress.finish()
                if outcome.problem is None:
                    out.write(printable(f"ticket {outcome.ticket}:") + "\n")
                out.writelines(printable(f"  {change}") + "\n" for change in outcome.plan.changes)

        sync = Sync(
            helpdesk,
            work,
            rules,
            clock=_utcnow,
            log=log,
            dry_run=args.dry_run,
            observe=observe,
            notes=args.notes,
            batches=settings.batch_writes if args.batch is None else args.batch,
        )
        if not args.dry_run:
            # Notes a killed run left in flight: settled, and their tickets re-decided at the
            # end (their own write may have moved them past --until).
            sync.settle_journal()
        # The helpdesk's record of status changes first: the range's paused targets need it.
        sync.read_statuses(name + ":statuses", since)
        totals = sync.poll(name, since, until=until, limit=args.limit)
        if totals.complete:
            # The customers' later tickets that this range's tickets moved (a quota, a day's
            # capacity) were queued for a re-decision: done now, not at the daemon's next
            # wake-up (Zendesk's export shows a backfill its own writes only a minute later).
            woken = sync.wake()
            totals.planned += woken.planned
            totals.writes += woken.writes
            totals.failed += woken.failed
        progress.finish()
        if totals.complete and not args.dry_run:
            state.set_cursor(name + ":done", format_instant(_utcnow()), _utcnow())
        if args.dry_run:
            out.write(f"{totals.tickets} tickets, {totals.planned} would be written")
        else:
            out.write(f"{totals.tickets} tickets, {totals.writes} written")
        out.write(f", {totals.unmapped} unmapped, {totals.failed} failed")
        out.write("" if totals.complete else " (stopped early: run again to resume)")
        out.write("\n")
    return 1 if totals.failed else 0


# --- explain and check -----------------------------------------------------------------------


def _explain(settings: Settings, ticket: str, out: TextIO) -> int:
    from connector.cli.explain import explain

    rules = load_rules(settings)
    with _opened(settings) as (state, helpdesk):
        items = helpdesk.fetch([ticket]) if ticket.isdigit() else []
        if not items:
            raise InputError(f"ticket {ticket}: not found in {settings.helpdesk}")
        out.write(explain(items[0], helpdesk, state, rules, _utcnow()))
    return 0


def _check(settings: Settings, out: TextIO, *, offline: bool, tenant: str | None) -> int:
    from connector.cli.check import run_checks

    if tenant is not None:
        settings = settings.account(tenant)
    return run_checks(settings, out, offline=offline)
