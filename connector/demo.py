"""`sla-connector demo`: the real sync against the built-in sandbox, on loopback.

Starts the sandbox seeded with tickets for all five contracts, syncs each helpdesk once with
the bundled example mappings and a throw-away state, prints what was written to each ticket,
then syncs again to show that a second pass writes nothing. With `--keep-running` the daemon
then keeps running against the sandbox until Ctrl-C.
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from connector import logs
from connector.app import load_rules, open_helpdesk
from connector.config import Settings
from connector.errors import InputError, printable
from connector.mappingfiles import default_mappings_dir
from connector.sandbox import OffsetClock, Sandbox, SandboxCredentials
from connector.state import State
from connector.sync import Outcome, Sync

__all__ = ["demo_settings", "run_demo"]


def demo_settings(helpdesk: str, url: str, state_dir: Path, **extra: object) -> Settings:
    """Settings for one sandbox helpdesk with the bundled example mapping.

    Built from values only: an administrator's `SLA_CONNECTOR_*` environment does not leak
    into the demo.
    """
    mappings = default_mappings_dir()
    section = {"url": url}
    if helpdesk == "zendesk":
        section["email"] = SandboxCredentials().zendesk_email
    values = {
        "helpdesk": helpdesk,
        "mappings": mappings,
        "helpdesk_mapping": mappings / "helpdesks" / f"{helpdesk}.example.yaml",
        "state_dir": state_dir,
        "start": datetime.now(UTC) - timedelta(days=400),
        "source": "<demo>",
        helpdesk: section,
        **extra,
    }
    return Settings.model_validate(values)


def sandbox_secrets(sandbox: Sandbox) -> dict[str, str]:
    """The sandbox's public, sandbox-only credentials."""
    creds = sandbox.credentials
    return {
        "zendesk_api_token": creds.zendesk_api_token,
        "freshdesk_api_key": creds.freshdesk_api_key,
    }


def run_demo(args: argparse.Namespace, out: TextIO) -> int:
    """Run the demo; returns the exit status."""
    logs.configure(format="console", level="error")
    log = logs.get_logger("sla-connector")
    clock = OffsetClock()
    sandbox = Sandbox.seeded(clock=clock)
    try:
        server = sandbox.serve("127.0.0.1", args.port).start()
    except OSError as exc:
        raise InputError(f"--port {args.port}: cannot listen ({exc.strerror})") from None
    helpdesks = ("zendesk", "freshdesk") if args.helpdesk == "both" else (args.helpdesk,)
    urls = {"zendesk": server.zendesk_url, "freshdesk": server.freshdesk_url}
    out.write(f"Sandbox helpdesk on {server.root} (loopback only), seeded for five contracts.\n")
    status = 0
    with tempfile.TemporaryDirectory(prefix="sla-demo-") as scratch:
        try:
            for helpdesk in helpdesks:
                settings = demo_settings(helpdesk, urls[helpdesk], Path(scratch) / helpdesk)
                status |= _demo_one(settings, sandbox, clock, out, log)
            if args.keep_running:
                first = helpdesks[0]
                settings = demo_settings(first, urls[first], Path(scratch) / first, poll_interval=5)
                _keep_running(settings, sandbox, server.control_url, out)
        finally:
            server.close()
    return status


def _demo_one(
    settings: Settings, sandbox: Sandbox, clock: OffsetClock, out: TextIO, log: object
) -> int:
    rules = load_rules(settings)
    state = State(settings.state_file)
    # The demo's world runs on the sandbox's clock: a wait of the connector (a batch job
    # running, a rate limit) moves that clock instead of holding the terminal.
    helpdesk = open_helpdesk(
        settings,
        state,
        secrets=sandbox_secrets(sandbox),
        sleep=clock.sleep,
        monotonic=lambda: clock().timestamp(),
    )
    out.write(f"\n== {settings.helpdesk} ({settings.helpdesk_url})\n")
    outcomes: list[Outcome] = []
    try:
        sync = Sync(helpdesk, state, rules, clock=sandbox.now, log=log, observe=outcomes.append)
        start = settings.first_poll_start(sandbox.now())
        sync.read_statuses("statuses", start)
        first = sync.poll("poll", start)
        for outcome in outcomes:
            out.write(_describe(outcome))
        clock.advance(61)  # a minute on: Zendesk's export leaves out the last minute
        sync.read_statuses("statuses", start)
        second = sync.poll("poll", start)
    finally:
        helpdesk.close()
        state.close()
    out.write(
        f"first pass: {first.tickets} tickets, {first.writes} written "
        f"({first.notes} notes), {first.unmapped} unmapped (tagged sla_unmapped)\n"
        f"second pass: {second.tickets} tickets came back (our own writes), "
        f"{second.writes} written\n"
    )
    return 0 if first.failed == 0 and second.writes == 0 else 1


def _describe(outcome: Outcome) -> str:
    """What was written to one ticket; each line printable, as it quotes the ticket."""
    decision = outcome.decision
    head = f"ticket {outcome.ticket}"
    if decision is not None:
        words = [decision.contract, decision.plan, decision.severity, decision.entitlement]
        head += ": " + " ".join(w for w in words if w)
    if outcome.problem is not None:
        head += f"  [unmapped: {outcome.problem}]"
    lines = [head]
    if outcome.plan is not None:
        lines.extend(f"    {change}" for change in outcome.plan.changes)
    else:
        lines.append("    (already up to date)")
    return "".join(printable(line) + "\n" for line in lines)


def _keep_running(settings: Settings, sandbox: Sandbox, control_url: str, out: TextIO) -> None:
    from connector.daemon import Daemon

    state = State(settings.state_file)
    client = open_helpdesk(settings, state, secrets=sandbox_secrets(sandbox))
    out.write(
        f"\nThe daemon keeps {settings.helpdesk} in sync every {settings.poll_interval} s; "
        f"the sandbox control API is at {control_url}/. Ctrl-C stops.\n"
    )
    out.flush()
    logs.configure(format="console", level="info")
    daemon = Daemon(settings, state, client, log=logs.get_logger("sla-connector"))
    daemon.install_signal_handlers()
    try:
        daemon.run()
    finally:
        client.close()
        state.close()
