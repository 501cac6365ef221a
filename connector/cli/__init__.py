"""The `sla-connector` command line: the parser and `sla compute`/`sla simulate`/`sandbox`
here; the commands that read a configuration in `commands`, `check`, `explain`, `init` and
`demo`; a decision as text in `render`. None of them imports another's module for a helper.

Exit status: 0 ok, 1 runtime failure, 2 bad usage, configuration or input. Heavy imports
happen inside the commands so that `--help` stays instant.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from connector import __version__

if TYPE_CHECKING:
    from datetime import datetime

    from pydantic import ValidationError

    from connector.sla.contract import Contract
    from connector.sla.model import TicketFacts

__all__ = ["SERVICE_COMMANDS", "main"]

SERVICE_COMMANDS = (
    "run",
    "sync",
    "backfill",
    "explain",
    "check",
    "demo",
    "state",
    "report",
)


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree."""
    parser = argparse.ArgumentParser(
        prog="sla-connector",
        description="Compute vendor support contracts (SLAs, quotas, entitlements) and write "
        "them back into Zendesk or Freshdesk.",
    )
    parser.add_argument("--version", action="version", version=f"sla-connector {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sla = commands.add_parser(
        "sla",
        help="run the SLA engine on tickets given by hand",
        description="Run the SLA engine without a helpdesk.",
    )
    sla_commands = sla.add_subparsers(dest="sla_command", required=True, metavar="SUBCOMMAND")

    compute = sla_commands.add_parser(
        "compute",
        help="decide one ticket described by flags",
        description="Decide one ticket: due instants, states, the entitlement, the quotas it "
        "counts in (alone: the first of its period), priority, tags and the note.",
    )
    compute.add_argument("--contract", required=True, help="contract name, e.g. photoprism")
    compute.add_argument("--plan", help="plan, for contracts that have plans")
    compute.add_argument("--severity", help="severity as the customer submitted it")
    compute.add_argument("--severity-override", help="severity set by an agent (wins)")
    compute.add_argument(
        "--created",
        required=True,
        metavar="T",
        help="creation instant, ISO 8601 with Z or an offset",
    )
    compute.add_argument("--region", help="customer region (pix4dengine-enterprise)")
    compute.add_argument(
        "--office",
        action="append",
        metavar="O",
        help="customer office; repeat for a follow-the-sun union",
    )
    compute.add_argument("--timezone", help="customer IANA time zone (pixelz)")
    compute.add_argument("--seats", type=int, metavar="N", help="the customer's seats (quotas)")
    compute.add_argument(
        "--subscription-start",
        metavar="DATE",
        help="the customer's subscription start, YYYY-MM-DD (contract-year quotas)",
    )
    compute.add_argument(
        "--subscription-kind", metavar="KIND", help="the customer's subscription kind"
    )
    compute.add_argument(
        "--inactive",
        action="store_true",
        help="the customer's subscription is not active (solidxperts: grace calls)",
    )
    compute.add_argument("--category", help="ticket category, e.g. order or inquiry")
    compute.add_argument(
        "--quantity",
        action="append",
        default=[],
        metavar="NAME=N",
        help="a quantity on the ticket, e.g. images=35",
    )
    compute.add_argument(
        "--flag",
        action="append",
        default=[],
        metavar="NAME",
        help="a flag set on the ticket, e.g. expedite",
    )
    compute.add_argument("--first-reply", metavar="T", help="first public agent reply")
    compute.add_argument("--solved", metavar="T", help="when the ticket was solved")
    compute.add_argument(
        "--status",
        action="append",
        default=[],
        metavar="STATUS@T",
        help="a status change, oldest first, e.g. pending@2026-03-02T10:00:00Z "
        "(open before the first)",
    )
    _common(compute)
    compute.add_argument("--json", action="store_true", help="print the decision as JSON")

    simulate = sla_commands.add_parser(
        "simulate",
        help="decide TicketFacts JSON lines into Decision JSON lines",
        description="Read TicketFacts as JSON lines (a file or - for stdin) and write one "
        "Decision JSON line per ticket. Problems go to stderr, one line each.",
    )
    simulate.add_argument("file", metavar="FILE|-", help="JSON lines of TicketFacts, or -")
    simulate.add_argument(
        "--sorted",
        action="store_true",
        help="the input is in order of created_at, one line per ticket (as an export comes): "
        "decide as periods close and hold only the tickets of open periods, so memory does not "
        "grow with the input; decisions then come out period by period",
    )
    _common(simulate)

    sandbox = commands.add_parser(
        "sandbox",
        help="serve a local Zendesk and Freshdesk API seeded with demo tickets",
        description="Serve the sandbox helpdesks (Zendesk under /zendesk, Freshdesk under "
        "/freshdesk, control API under /_sandbox/) on one port until interrupted.",
    )
    sandbox.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any)")
    sandbox.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    sandbox.add_argument(
        "--helpdesk",
        choices=("zendesk", "freshdesk", "both"),
        default="both",
        help="which API to serve (default both)",
    )
    sandbox.add_argument(
        "--rate-limit",
        type=int,
        metavar="N",
        help="enforce N requests a minute per helpdesk (429 with Retry-After beyond)",
    )
    sandbox.add_argument(
        "--fresh",
        action="store_true",
        help="a new account instead: no custom field, no ticket (to try `sla-connector init`)",
    )
    sandbox.add_argument(
        "--generate",
        type=int,
        default=0,
        metavar="N",
        help="add N generated tickets for load runs (deterministic)",
    )
    sandbox.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --host (the sandbox has no real security)",
    )
    _service_commands(commands)
    return parser


def _with_config(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="TOML configuration (default: $SLA_CONNECTOR_CONFIG or "
        "/etc/sla-connector/config.toml); secrets come from the environment or "
        "$CREDENTIALS_DIRECTORY, never from here",
    )
    return parser


def _with_tenant(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "--tenant",
        metavar="NAME",
        help="the account to act on, when the configuration names several ([[tenants]])",
    )
    return parser


def _with_state(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "--new-state",
        action="store_true",
        help="accept an empty state file, or move aside one that is not sla-connector's, "
        "and start a new state (after losing the old one: notes already on the tickets "
        "are read there, not posted again)",
    )
    return parser


def _service_commands(commands: Any) -> None:
    """`run`, `sync`, `backfill`, `explain`, `check`, `demo` (run by `connector.cli.commands`)."""

    run = _with_config(
        commands.add_parser(
            "run",
            help="run the sync daemon (systemd Type=notify)",
            description="Poll the helpdesk and keep every ticket showing what its contract "
            "says, until SIGTERM. SIGHUP reloads the mappings.",
        )
    )
    _with_state(run)
    sync = _with_config(
        commands.add_parser(
            "sync",
            help="poll the helpdesk once and write what changed",
            description="One pass: every ticket changed since the last pass, then the tickets "
            "whose SLA state changed by itself (at risk, breached).",
        )
    )
    sync.add_argument("--once", action="store_true", required=True, help="one pass, then exit")
    _with_state(sync)
    _with_tenant(sync)

    backfill = _with_config(
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
    backfill.add_argument(
        "--batch",
        action=argparse.BooleanOptionalAction,
        help="send the writes in batch jobs of up to 100 tickets where the helpdesk has them "
        "(Zendesk's update_many; the default unless [zendesk] batch_writes is false): one "
        "request for a hundred, none of the Update Ticket budget the agents share; "
        "--no-batch sends one update per ticket",
    )
    backfill.add_argument(
        "--notes",
        choices=("all", "open", "none"),
        default="open",
        help="which tickets get the private note: all, open ones only (not solved or closed: "
        "no agent reads those; the default), or none",
    )
    _with_state(backfill)
    _with_tenant(backfill)

    explain = _with_config(
        commands.add_parser(
            "explain",
            help="show how one ticket's SLA is computed and what would be written",
            description="Fetch one ticket, read its facts, decide it and show the timeline of "
            "each due instant and the write it needs. Changes nothing.",
        )
    )
    explain.add_argument("ticket", metavar="TICKET_ID")
    _with_tenant(explain)

    check = _with_config(
        commands.add_parser(
            "check",
            help="check configuration, mappings, credentials and reachability",
            description="Load the configuration and mappings, sign in to the helpdesk and "
            "compare the mapping's field ids with the account's real fields.",
        )
    )
    check.add_argument("--offline", action="store_true", help="skip the helpdesk calls")
    check.add_argument(
        "--tenant", metavar="NAME", help="check this account only (default: every one)"
    )

    _state_and_report_commands(commands)

    init = commands.add_parser(
        "init",
        help="create the helpdesk fields the contracts need and write a checked configuration",
        description="Read the helpdesk account's fields, show the custom fields the bundled "
        "mapping needs for the contracts you sell (ticket and organization/company fields, "
        "with their drop-down values), create them with --apply, then write config.toml, "
        "the helpdesk mapping with the account's real field ids and the contracts into DIR "
        "and run `check`. Credentials come from the environment or systemd credentials, as "
        "for the service (SLA_CONNECTOR_ZENDESK_API_TOKEN, SLA_CONNECTOR_FRESHDESK_API_KEY). "
        "Asks for what the flags leave out when run on a terminal.",
    )
    init.add_argument("--helpdesk", choices=("zendesk", "freshdesk"))
    init.add_argument("--url", help="the account, e.g. https://acme.zendesk.com")
    init.add_argument("--email", help="Zendesk: the agent the API token belongs to")
    init.add_argument(
        "--contracts", metavar="NAMES", help="the bundled contracts you sell, comma-separated"
    )
    init.add_argument(
        "--dir",
        default="sla-connector",
        help="where to write config.toml and mappings/ (default ./sla-connector); files "
        "already there are kept, the new text written beside them as .new",
    )
    init.add_argument(
        "--apply", action="store_true", help="create the missing fields (else only show them)"
    )

    demo = commands.add_parser(
        "demo",
        help="run the daemon against the built-in sandbox helpdesk and show what it wrote",
        description="Start the sandbox on loopback with tickets for all five contracts, run "
        "one sync against it, tell what was written to each ticket and why, and sync again "
        "to show that nothing more is.",
    )
    demo.add_argument(
        "--helpdesk",
        choices=("zendesk", "freshdesk", "both"),
        default="zendesk",
        help="which helpdesk to demonstrate (default zendesk)",
    )
    demo.add_argument(
        "--verbose",
        action="store_true",
        help="show every ticket and the raw change written to it, field by field",
    )
    demo.add_argument(
        "--keep-running",
        action="store_true",
        help="then keep the sandbox and the daemon running until Ctrl-C",
    )
    demo.add_argument("--port", type=int, default=0, help="sandbox port (default: any free)")


def _state_and_report_commands(commands: Any) -> None:
    """`state migrate` and `report`: the state itself, no helpdesk call."""
    state = commands.add_parser(
        "state",
        help="move the state to another backend (SQLite file, PostgreSQL)",
        description="Commands on the state itself. Stop the daemon first.",
    )
    state_commands = state.add_subparsers(dest="state_command", metavar="STATE_COMMAND")
    state_commands.required = True
    migrate = _with_config(
        state_commands.add_parser(
            "migrate",
            help="copy the state into an empty PostgreSQL database (or SQLite file)",
            description="Copy every table of the configured state (cursors, tickets and the "
            "quota ledger, the write journal, wake-ups, tokens) into an empty state at --to, "
            "then compare the two table by table (rows and a SHA-256 of them). The configured "
            "state is left as it is: point state_url at the new one once it says ok.",
        )
    )
    migrate.add_argument(
        "--to",
        required=True,
        metavar="URL",
        help="postgresql://user@host/database (the password from PGPASSFILE or ~/.pgpass), "
        "or a path for a SQLite file",
    )

    report = _with_config(
        commands.add_parser(
            "report",
            help="SLA compliance and contract use over the state (no helpdesk call)",
            description="Decide the state's tickets again at now, as the daemon does, and "
            "count: per group, the targets due in the period, met, breached, still running, "
            "paused, the hours to each target's event; per customer, each quota's use against "
            "its limit and the entitlements given to the tickets created in the period. "
            "Without --month or --since: the last full month.",
        )
    )
    report.add_argument(
        "--month", metavar="YYYY-MM", help="one calendar month, in each contract's own zone"
    )
    report.add_argument(
        "--since", metavar="DATE", help="a date (each contract's own) or an instant (with Z)"
    )
    report.add_argument("--until", metavar="DATE", help="date or instant (default: now)")
    report.add_argument(
        "--by",
        action="append",
        choices=("contract", "customer", "severity", "office", "plan"),
        help="group the compliance figures (repeat for several; default: contract)",
    )
    report.add_argument(
        "--format", choices=("table", "csv", "json", "html"), default="table", help="(table)"
    )
    report.add_argument("--out", metavar="FILE", help="write to FILE (whole, or not at all)")
    report.add_argument(
        "--at",
        metavar="INSTANT",
        help="decide the tickets as they stood at this instant (default: now), e.g. to "
        "repeat an earlier report",
    )
    _with_tenant(report)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--now", metavar="T", help="decide as of this instant (default: now)")
    parser.add_argument(
        "--mappings",
        metavar="DIR",
        help="mapping folder with contracts/ "
        "(default: $SLA_CONNECTOR_MAPPINGS, else the bundled contracts)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    from connector.errors import ConnectorError

    try:
        if args.command == "sandbox":
            return _sandbox(args, sys.stdout)
        if args.command == "init":
            from connector.cli.init import run_init

            ask = input if sys.stdin.isatty() else None
            return run_init(args, sys.stdout, ask=ask)
        if args.command != "sla":
            from connector.cli.commands import run_command

            return run_command(args, sys.stdout, sys.stderr)
        if args.command == "sla" and args.sla_command == "compute":
            return _compute(args, sys.stdout)
        return _simulate(args, sys.stdout, sys.stderr)
    except ConnectorError as exc:
        for line in exc.lines():
            print(f"sla-connector: error: {line}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, as Unix tools do, and keep
        # Python from complaining again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _sandbox(args: argparse.Namespace, out: TextIO) -> int:
    """Serve the sandbox helpdesks in the foreground until interrupted."""
    from connector.errors import InputError
    from connector.http import LOOPBACK_HOSTS
    from connector.sandbox import Sandbox, generate

    if args.host not in LOOPBACK_HOSTS and not args.allow_remote:
        raise InputError(f"--host {args.host}: not a loopback address (add --allow-remote)")
    if args.rate_limit is not None and args.rate_limit < 1:
        raise InputError("--rate-limit: expected a positive number of requests a minute")
    if args.fresh:
        sandbox = Sandbox(rate_limit=args.rate_limit, fresh_account=True)
    else:
        sandbox = Sandbox.seeded(rate_limit=args.rate_limit)
    if args.generate > 0:
        sandbox.seed(generate(args.generate, seed=1, anchor=sandbox.now()), customers=())
    helpdesks = ("zendesk", "freshdesk") if args.helpdesk == "both" else (args.helpdesk,)
    try:
        server = sandbox.serve(args.host, args.port, helpdesks=helpdesks)
    except OSError as exc:
        raise InputError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    creds = sandbox.credentials
    tickets = len(sandbox.zendesk.tickets) or len(sandbox.freshdesk.tickets)
    what = "a fresh account: no custom field, no ticket" if args.fresh else f"{tickets} tickets"
    out.write(f"sla-connector sandbox ({what}); loopback only, Ctrl-C stops.\n")
    out.write("Its credentials are public and work nowhere else:\n")
    if "zendesk" in helpdesks:
        out.write(
            f"  zendesk    {server.zendesk_url}\n"
            f"             email {creds.zendesk_email}, API token {creds.zendesk_api_token}\n"
        )
    if "freshdesk" in helpdesks:
        out.write(
            f"  freshdesk  {server.freshdesk_url}\n"
            f"             API key {creds.freshdesk_api_key} (password X)\n"
        )
    out.write(
        f"  control    {server.control_url}/  (GET it for the customers; add tickets, reply,\n"
        "             solve, change a status, inject faults: docs/sandbox.md)\n"
    )
    first = helpdesks[0]
    secret = "ZENDESK_API_TOKEN" if first == "zendesk" else "FRESHDESK_API_KEY"
    value = creds.zendesk_api_token if first == "zendesk" else creds.freshdesk_api_key
    out.write(
        "To run the connector against it, in another terminal:\n"
        f"  export SLA_CONNECTOR_{secret}={value}\n"
        f"  sla-connector {'init' if args.fresh else 'sync --once'} … "
        f"(docs/sandbox.md)\n"
    )
    out.flush()
    try:
        server.serve_forever()
    finally:
        server.close()
    return 0


def _instant(value: str | None, flag: str) -> datetime | None:
    from connector.errors import InputError
    from connector.timeutil import parse_instant

    if value is None:
        return None
    try:
        return parse_instant(value)
    except ValueError as exc:
        raise InputError(f"{flag}: {exc}") from None


def _now(args: argparse.Namespace) -> datetime:
    from datetime import UTC, datetime

    return _instant(args.now, "--now") or datetime.now(UTC)


def _contracts(args: argparse.Namespace) -> dict[str, Contract]:
    from pathlib import Path

    from connector.mappingfiles import default_mappings_dir, load_contracts

    folder: Path = Path(args.mappings) if args.mappings else default_mappings_dir()
    return load_contracts(folder)


def _compute(args: argparse.Namespace, out: TextIO) -> int:
    from pydantic import ValidationError

    from connector.errors import InputError, UnmappedTicket, printable_json
    from connector.sla.engine import decide_with
    from connector.sla.model import TicketFacts

    contracts = _contracts(args)
    if args.contract not in contracts:
        raise InputError(
            f"--contract: unknown contract {args.contract!r} "
            f"(known: {', '.join(sorted(contracts))})"
        )
    quantities: dict[str, int] = {}
    for item in args.quantity:
        name, _, number = item.partition("=")
        if not name or not number.strip().isdigit():
            raise InputError(f"--quantity: expected NAME=N, got {item!r}")
        quantities[name] = int(number)
    facts_data = {
        "id": "cli",
        "created_at": _instant(args.created, "--created"),
        "contract": args.contract,
        "plan": args.plan,
        "severity": args.severity,
        "severity_override": args.severity_override,
        "category": args.category,
        "region": args.region,
        "quantities": quantities,
        "flags": dict.fromkeys(args.flag, True),
        "customer_facts": {
            "offices": args.office,
            "timezone": args.timezone,
            "seats": args.seats,
            "subscription_start": args.subscription_start,
            "subscription_kind": args.subscription_kind,
            "active": not args.inactive,
        },
        "events": {
            "first_agent_reply_at": _instant(args.first_reply, "--first-reply"),
            "solved_at": _instant(args.solved, "--solved"),
        },
        "status_history": [_status_change(item) for item in args.status],
    }
    try:
        facts = TicketFacts.model_validate(facts_data)
    except ValidationError as exc:
        raise InputError(_first_error(exc)) from None
    decision = decide_with(contracts, facts, _now(args))
    if decision.problem is not None:
        raise UnmappedTicket(facts.id, decision.problem)
    if args.json:
        out.write(printable_json(decision.model_dump_json(indent=2)) + "\n")
    else:
        from connector.cli.render import render_decision

        out.write(render_decision(decision, contracts[args.contract]))
    return 0


def _status_change(item: str) -> dict[str, object]:
    """`--status pending@2026-03-02T10:00:00Z` as a status history entry."""
    from connector.errors import InputError

    status, at, instant = item.partition("@")
    if not at or not status:
        raise InputError(
            f"--status: expected STATUS@T, e.g. pending@2026-03-02T10:00:00Z, got {item!r}"
        )
    return {"status": status.strip(), "at": _instant(instant, "--status")}


def _simulate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Decide the whole input as one set of tickets, so quotas count across lines.

    The tickets are held until the input ends (any line may change an earlier line's place in
    a quota), unless `--sorted` says they come in order of creation; each decision is written
    as soon as it is made and not kept.
    """
    import gc

    # The input is held and makes no reference cycles: the cyclic collector would only re-scan
    # every ticket again and again, tripling the run time.
    gc.disable()
    try:
        return _simulate_all(args, out, err)
    finally:
        gc.enable()


def _simulate_all(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from connector.errors import InputError, printable, printable_json
    from connector.sla.engine import decide_each, decide_in_order

    contracts = _contracts(args)
    now = _now(args)
    source = args.file
    try:
        stream = sys.stdin if source == "-" else open(source, encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise InputError(f"{source}: cannot read: {exc.strerror}") from None
    reader = _TicketLines("stdin" if source == "-" else source, err, in_order=args.sorted)
    decide = decide_in_order if args.sorted else decide_each
    with stream:
        for decision in decide(contracts, reader.read(stream), now):
            if decision.problem is not None:
                warning = f"ticket {decision.ticket}: {decision.problem}"
                print(
                    f"sla-connector: warning: {printable(warning)} (decision tagged sla_unmapped)",
                    file=err,
                )
            out.write(printable_json(decision.model_dump_json()) + "\n")
    return 2 if reader.bad else 0


class _TicketLines:
    """TicketFacts from JSON lines; a bad line is reported on `err` and skipped.

    `in_order`: each line must be created no earlier than the one before and name a ticket not
    seen before; the first line that is not stops the run with an error naming it.
    """

    def __init__(self, name: str, err: TextIO, *, in_order: bool) -> None:
        self.name, self.err, self.in_order = name, err, in_order
        self.bad = 0

    def read(self, stream: Iterable[str]) -> Iterator[TicketFacts]:
        from pydantic import ValidationError

        from connector.errors import InputError, printable
        from connector.sla.model import TicketFacts

        seen: set[str] = set()
        last: datetime | None = None
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                facts = TicketFacts.model_validate_json(line)
            except ValidationError as exc:
                self.bad += 1
                hint = _ticket_hint(line)
                where = f"{self.name}:{number}{hint}"
                problem = printable(f"{where}: {_first_error(exc)}")
                print(f"sla-connector: error: {problem}", file=self.err)
                continue
            if self.in_order:
                where = f"{self.name}:{number} (ticket {facts.id})"
                if last is not None and facts.created_at < last:
                    raise InputError(
                        f"{where}: created_at {facts.created_at.isoformat()} comes before the "
                        f"line above's {last.isoformat()}; --sorted needs the input in order of "
                        "created_at (sort it, or leave out --sorted)"
                    )
                if facts.id in seen:
                    raise InputError(
                        f"{where}: the ticket was already given; --sorted needs one line per "
                        "ticket (leave out --sorted to take the latest version of each)"
                    )
                seen.add(facts.id)
                last = facts.created_at
            yield facts


def _ticket_hint(line: str) -> str:
    import json

    try:
        value = json.loads(line)
    except ValueError:
        return ""
    if isinstance(value, dict) and "id" in value:
        return f" (ticket {value['id']})"
    return ""


def _first_error(exc: ValidationError) -> str:
    """The first three problems of a validation error (of `TicketFacts`), on one line."""
    from connector.errors import validation_message
    from connector.sla.model import TicketFacts

    parts = []
    for error in exc.errors()[:3]:
        loc = ".".join(str(p) for p in error["loc"]) or "line"
        parts.append(f"{loc}: {validation_message(error, TicketFacts)}")
    more = len(exc.errors()) - 3
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
