"""`sla-connector report`: SLA compliance and contract use over the state, no helpdesk call."""

from __future__ import annotations

import argparse
import calendar
import multiprocessing
import os
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TextIO

from connector.app import load_rules
from connector.config import Settings
from connector.errors import InputError
from connector.report.compute import GROUPINGS, Period, ReportBuilder, count_into
from connector.report.formats import render_csv, render_json, render_table
from connector.state import open_state
from connector.timeutil import parse_day_or_instant

__all__ = ["period_of", "run_report"]


def period_of(args: argparse.Namespace, now: datetime) -> Period:
    """The period the flags name: `--month YYYY-MM`, or `--since` (and `--until`, default
    now), dates or instants in UTC; the last full month without either."""
    if args.month and (args.since or args.until):
        raise InputError("--month: give it or --since/--until, not both")
    if args.month:
        try:
            start = datetime.strptime(args.month, "%Y-%m").replace(tzinfo=UTC)
        except ValueError:
            raise InputError(f"--month {args.month}: expected YYYY-MM, e.g. 2026-11") from None
        days = calendar.monthrange(start.year, start.month)[1]
        return Period(start, start + timedelta(days=days), args.month, local=True)
    if args.since:
        since = _day_or_instant(args.since, "--since")
        until = _day_or_instant(args.until, "--until") if args.until else now
        if until <= since:
            raise InputError(f"--until {args.until}: not after --since {args.since}")
        label = f"{since:%Y-%m-%d} to {until:%Y-%m-%d}"
        # Dates are each contract's own days, as its quotas count them; instants are instants.
        dates = len(args.since) == 10 and (args.until is None or len(args.until) == 10)
        return Period(since, until, label, local=dates)
    if args.until:
        raise InputError("--until: give --since too")
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    last = (first - timedelta(days=1)).replace(day=1)
    return Period(last, first, f"{last:%Y-%m}", local=True)


def _day_or_instant(text: str, flag: str) -> datetime:
    try:
        return parse_day_or_instant(text)
    except ValueError as exc:
        raise InputError(f"{flag} {text}: {exc}") from None


def run_report(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    """Decide the state's tickets at now and write the report in the format asked for."""
    now = datetime.now(UTC).replace(microsecond=0)
    if getattr(args, "at", None):
        at = _day_or_instant(args.at, "--at")
        if at > now:
            raise InputError(f"--at {args.at}: in the future; a report says what has happened")
        now = at
    period = period_of(args, now)
    by = args.by or ["contract"]
    unknown = [name for name in by if name not in GROUPINGS]
    if unknown:
        raise InputError(f"--by {unknown[0]}: one of {', '.join(GROUPINGS)}")
    report = _counted(settings, period, by, now).report()
    if args.format == "json":
        text = render_json(report)
    elif args.format == "csv":
        text = render_csv(report)
    elif args.format == "html":
        from connector.report.html import render_html

        text = render_html(report)
    else:
        text = render_table(report)
    if args.out is None:
        out.write(text)
        return 0
    _write_whole(Path(args.out), text)
    out.write(f"wrote {args.out} ({args.format}, {len(report['compliance'])} groups)\n")
    return 0


def _counted(settings: Settings, period: Period, by: list[str], now: datetime) -> ReportBuilder:
    """Every contract's tickets decided and counted; contracts are independent (each its own
    ledger), so with several processors each process takes some of them."""
    state = open_state(settings, readonly=True)
    try:
        names = state.contracts_counted()
        missing = state.written_without_facts()
    finally:
        state.close()
    rules = load_rules(settings)
    builder = ReportBuilder(rules.contracts, period, by, now)
    if missing:
        builder.notes.append(
            f"{missing} tickets were written with no facts kept (unmapped ones, and those "
            "written before every contract's facts were kept): they are not in this report; "
            "a backfill over its period (--notes none) reads them again"
        )
    workers = min(len(names), os.cpu_count() or 1)
    if workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
        for part in map(partial(_contract_part, settings, period, by, now), names):
            builder.absorb(part)
        return builder
    # No connection pool may cross the fork (its threads stay behind): closed here, and a
    # child forgets any it inherited (connector.state.postgres); each opens its own.
    _close_pools()
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        for part in pool.map(partial(_contract_part, settings, period, by, now), names):
            builder.absorb(part)
    return builder


def _close_pools() -> None:
    if "connector.state.postgres" in sys.modules:
        from connector.state.postgres import close_pools

        close_pools()


def _contract_part(
    settings: Settings, period: Period, by: list[str], now: datetime, contract: str
) -> tuple[Any, Any, Any]:
    """One contract's tickets decided and counted (in a process of its own)."""
    rules = load_rules(settings)
    state = open_state(settings, readonly=True)
    try:
        builder = ReportBuilder(rules.contracts, period, by, now)
        tickets = state.facts_in_order(period.widest_until, contract, by_customer=True)
        count_into(builder, tickets, by_customer=True)
        return builder.parts()
    finally:
        state.close()


def _write_whole(path: Path, text: str) -> None:
    """The file whole or not at all: written beside, then moved into place."""
    folder = path.parent if str(path.parent) else Path(".")
    handle, partial = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
