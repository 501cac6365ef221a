"""The service commands: `run`, `sync --once`, `backfill`, `explain`, `check`, `demo`.

`cli.py` builds the argument parser from `add_commands` and calls `run_command`. Everything
here reads its settings the same way (`--config`, `$SLA_CONNECTOR_CONFIG`, the environment)
and never takes a secret from the command line.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from datetime import time as clock_time
from pathlib import Path
from typing import Any, TextIO

from connector import logs
from connector.app import load_rules, open_helpdesk
from connector.config import Settings, config_path, load_settings
from connector.errors import ConfigError, InputError, Problem
from connector.helpdesks.adapter import Helpdesk
from connector.state import State
from connector.sync import Outcome, Sync, Totals
from connector.timeutil import format_instant, parse_instant

__all__ = ["COMMANDS", "add_commands", "run_command"]

COMMANDS = ("run", "sync", "backfill", "explain", "check", "demo")


def add_commands(commands: Any) -> None:
    """Add the service commands to the `sla-connector` subparsers."""

    def with_config(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument(
            "--config",
            type=Path,
            metavar="FILE",
            help="TOML configuration (default: $SLA_CONNECTOR_CONFIG or "
            "/etc/sla-connector/config.toml); secrets come from the environment or "
            "$CREDENTIALS_DIRECTORY, never from here",
        )
        return parser

    with_config(
        commands.add_parser(
            "run",
            help="run the sync daemon (systemd Type=notify)",
            description="Poll the helpdesk and keep every ticket showing what its contract "
            "says, until SIGTERM. SIGHUP reloads the mappings.",
        )
    )
    sync = with_config(
        commands.add_parser(
            "sync",
            help="poll the helpdesk once and write what changed",
            description="One pass: every ticket changed since the last pass, then the tickets "
            "whose SLA state changed by itself (at risk, breached).",
        )
    )
    sync.add_argument("--once", action="store_true", required=True, help="one pass, then exit")

    backfill = with_config(
        commands.add_parser(
            "backfill",
            help="decide and write the tickets updated in a date range",
            description="Re-decide the tickets updated from --since (to --until). Resumes where "
            "an interrupted run of the same range stopped. Run with --dry-run first.",
        )
    )
    backfill.add_argument("--since", required=True, metavar="DATE", help="date or instant (UTC)")
    backfill.add_argument("--until", metavar="DATE", help="date or instant (default: now)")
    backfill.add_argument(
        "--dry-run", action="store_true", help="print what would change; write nothing"
    )
    backfill.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help="stop after N tickets, rounded up to a whole page of the helpdesk; run again "
        "to resume",
    )
    backfill.add_argument(
        "--restart", action="store_true", help="start the range again instead of resuming"
    )

    explain = with_config(
        commands.add_parser(
            "explain",
            help="show how one ticket's SLA is computed and what would be written",
            description="Fetch one ticket, read its facts, decide it and show the timeline of "
            "each due instant and the write it needs. Changes nothing.",
        )
    )
    explain.add_argument("ticket", metavar="TICKET_ID")

    check = with_config(
        commands.add_parser(
            "check",
            help="check configuration, mappings, credentials and reachability",
            description="Load the configuration and mappings, sign in to the helpdesk and "
            "compare the mapping's field ids with the account's real fields.",
        )
    )
    check.add_argument("--offline", action="store_true", help="skip the helpdesk calls")

    demo = commands.add_parser(
        "demo",
        help="run the daemon against the built-in sandbox helpdesk and show what it wrote",
        description="Start the sandbox on loopback with tickets for all five contracts, run "
        "one sync against it for each helpdesk, show what was written, and sync again to "
        "show that nothing more is.",
    )
    demo.add_argument(
        "--helpdesk",
        choices=("zendesk", "freshdesk", "both"),
        default="both",
        help="which helpdesk to demonstrate (default both)",
    )
    demo.add_argument(
        "--keep-running",
        action="store_true",
        help="then keep the sandbox and the daemon running until Ctrl-C",
    )
    demo.add_argument("--port", type=int, default=0, help="sandbox port (default: any free)")


def run_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run one of `COMMANDS`; returns the exit status."""
    if args.command == "demo":
        from connector.demo import run_demo

        return run_demo(args, out)
    settings = load_settings(config_path(args.config))
    if args.command == "check":
        return _check(settings, out, offline=args.offline)
    if args.command == "explain":
        return _explain(settings, args.ticket, out)
    logs.configure(format=settings.log.format, level=settings.log.level, stream=err)
    if args.command == "run":
        return _run(settings)
    if args.command == "sync":
        return _sync_once(settings, out)
    return _backfill(settings, args, out, err)


@contextmanager
def _opened(settings: Settings, **options: Any) -> Iterator[tuple[State, Helpdesk]]:
    state = State(settings.state_file)
    try:
        helpdesk = open_helpdesk(settings, state, **options)
        try:
            yield state, helpdesk
        finally:
            helpdesk.close()
    finally:
        state.close()


def _run(settings: Settings) -> int:
    from connector.daemon import Daemon
    from connector.metrics import Metrics
    from connector.notify import Notifier

    log = logs.get_logger("sla-connector")
    metrics = Metrics(settings.helpdesk)
    try:
        if settings.metrics.listen:
            host, _, port = settings.metrics.listen.rpartition(":")
            try:
                bound = metrics.serve(host.strip("[]") or "127.0.0.1", int(port))
            except ValueError as exc:
                raise ConfigError([Problem(settings.source, "metrics.listen", str(exc))]) from None
            log.info("metrics_listening", address=f"{bound[0]}:{bound[1]}")
        with _opened(settings, observers=[metrics.http_observer]) as (state, helpdesk):
            daemon = Daemon(
                settings, state, helpdesk, log=log, metrics=metrics, notifier=Notifier()
            )
            daemon.install_signal_handlers()
            return daemon.run()
    finally:
        metrics.close()


def _sync_once(settings: Settings, out: TextIO) -> int:
    from connector.daemon import POLL_CURSOR

    log = logs.get_logger("sla-connector")
    rules = load_rules(settings)
    with _opened(settings) as (state, helpdesk):
        sync = Sync(helpdesk, state, rules, clock=_utcnow, log=log)
        sync.settle_journal()
        totals = sync.poll(POLL_CURSOR, settings.first_poll_start(_utcnow()))
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
        return datetime.combine(date.fromisoformat(value), clock_time(0), tzinfo=UTC)
    except ValueError:
        pass
    try:
        return parse_instant(value)
    except ValueError:
        raise InputError(
            f"{flag} {value}: expected a date (2026-01-31) or an instant with Z or an offset"
        ) from None


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
    until = _day_or_instant(args.until, "--until") if args.until else None
    if until is not None and until <= since:
        raise InputError(f"--until {args.until}: must be after --since {args.since}")
    if args.limit is not None and args.limit < 1:
        raise InputError("--limit: expected a positive number of tickets")
    name = f"backfill:{format_instant(since)}:{'' if until is None else format_instant(until)}"
    log = logs.get_logger("sla-connector")
    rules = load_rules(settings)
    with _opened(settings) as (state, helpdesk), tempfile.TemporaryDirectory() as scratch:
        if args.restart:
            state.forget_cursor(name, name + ":done")
        if state.cursor(name + ":done"):
            out.write(f"backfill {args.since}..{args.until or 'now'} already done (--restart)\n")
            return 0
        work = state.snapshot(Path(scratch) / "dry-run.sqlite3") if args.dry_run else state
        progress = _Progress(err, since, until or _utcnow())

        def observe(outcome: Outcome) -> None:
            progress(outcome)
            if outcome.problem is not None:
                progress.finish()
                out.write(f"ticket {outcome.ticket}: {outcome.problem}\n")
            if args.dry_run and outcome.plan is not None:
                progress.finish()
                if outcome.problem is None:
                    out.write(f"ticket {outcome.ticket}:\n")
                out.writelines(f"  {change}\n" for change in outcome.plan.changes)

        sync = Sync(
            helpdesk,
            work,
            rules,
            clock=_utcnow,
            log=log,
            dry_run=args.dry_run,
            observe=observe,
        )
        totals = sync.poll(name, since, until=until, limit=args.limit)
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
    from connector.explain import explain

    rules = load_rules(settings)
    with _opened(settings) as (state, helpdesk):
        items = helpdesk.fetch([ticket]) if ticket.isdigit() else []
        if not items:
            raise InputError(f"ticket {ticket}: not found in {settings.helpdesk}")
        out.write(explain(items[0], helpdesk, state, rules, _utcnow()))
    return 0


def _check(settings: Settings, out: TextIO, *, offline: bool) -> int:
    from connector.check import run_checks

    return run_checks(settings, out, offline=offline)
