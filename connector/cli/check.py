"""`sla-connector check`: is this installation ready to run?

Each check prints one line (`ok` or `FAIL` with the reason) and the command exits 0 when all
pass, 2 when the configuration or mappings are wrong, 1 when the helpdesk cannot be reached
or refuses the credentials. Nothing is written to the helpdesk.
"""

from __future__ import annotations

from typing import TextIO

from connector.app import load_rules, open_helpdesk
from connector.config import Settings
from connector.errors import ApiError, AuthError, ConfigError, Problem, masked_setting, printable
from connector.helpdesks.freshdesk.sansio import PLAN_SUB_LIMITS
from connector.service.rules import Rules
from connector.state import open_state

__all__ = ["budgets_line", "mapped_field_problems", "run_checks"]


def run_checks(settings: Settings, out: TextIO, *, offline: bool = False) -> int:
    """Run every check, print one line each; returns the exit status. A configuration of
    several accounts (`[[tenants]]`): each account's checks under its name, and the worst
    status (a problem to fix, 2, before one that may pass, 1)."""
    if not settings.tenants:
        return _check_account(settings, out, offline=offline)
    statuses = []
    for number, account in enumerate(settings.accounts()):
        out.write(printable(f"== tenant {account.tenant} ({account.kind})") + "\n")
        statuses.append(_check_account(account, out, offline=offline, holders=number == 0))
    return 2 if 2 in statuses else max(statuses)


def _check_account(
    settings: Settings, out: TextIO, *, offline: bool = False, holders: bool = True
) -> int:
    """The checks of one account (`holders`: list who holds the state too)."""

    def say(line: str) -> None:
        # Lines quote paths, mapping keys and the helpdesk's answers: printable, one each.
        out.write(printable(line) + "\n")

    def say_problems(problems: list[str] | list[Problem]) -> None:
        for problem in problems:
            say(f"        {problem}")

    say(f"ok    configuration {settings.source} ({settings.helpdesk})")
    try:
        rules = load_rules(settings)
    except ConfigError as exc:
        say("FAIL  mappings")
        say_problems(exc.problems)
        return 2
    say(
        f"ok    mappings: {len(rules.contracts)} contracts ({', '.join(sorted(rules.contracts))})"
        f", helpdesk mapping {settings.mapping_file}"
    )
    try:
        state = open_state(settings)
    except (ConfigError, OSError) as exc:
        say(f"FAIL  state {settings.state_where}: {exc}")
        return 2
    try:
        say(f"ok    state {settings.state_where} (schema {state.schema_version})")
        for holder in state.holders() if holders else ():
            say(f"      {holder}")
        if offline:
            return 0
        try:
            helpdesk = open_helpdesk(settings, state)
        except ConfigError as exc:
            say("FAIL  credentials")
            say_problems(exc.problems)
            return 2
        url = masked_setting(settings.helpdesk_url)
        try:
            tickets, customers = helpdesk.field_keys()
        except AuthError as exc:
            say(f"FAIL  credentials refused by {url}: {exc}")
            return 1
        except ApiError as exc:
            say(f"FAIL  {url} unreachable: {exc}")
            return 1
        finally:
            helpdesk.close()
        say(f"ok    signed in to {url}")
        problems = mapped_field_problems(rules, tickets, customers)
        if problems:
            say("FAIL  mapped fields missing from the account")
            say_problems([f"{settings.mapping_file}: {p}" for p in problems])
            return 2
        say(
            f"ok    every mapped field exists ({len(tickets)} ticket fields, "
            f"{len(customers)} customer fields in the account)"
        )
        say(f"ok    budgets: {budgets_line(settings)}")
        return 0
    finally:
        state.close()


def budgets_line(settings: Settings) -> str:
    """What the connector may spend of the endpoints' budgets it shares with people."""
    if settings.helpdesk == "zendesk":
        share = settings.zendesk.update_share
        return (
            f"at most {share:.0%} of Update Ticket's budget (the agents' saves in the UI spend "
            f"the rest; [zendesk] update_share), paced from Zendesk's own headers"
        )
    freshdesk = settings.freshdesk
    if freshdesk.plan is None:
        return (
            "Freshdesk announces no per-endpoint limits and no plan is set ([freshdesk] plan): "
            "only the account's limit is paced"
        )
    limits = PLAN_SUB_LIMITS[freshdesk.plan]
    parts = ", ".join(f"{name} {limit}/min" for name, limit in sorted(limits.items()))
    return (
        f"plan {freshdesk.plan}: {parts}, of which the connector spends at most "
        f"{freshdesk.budget_share:.0%} ([freshdesk] budget_share)"
    )


def mapped_field_problems(rules: Rules, tickets: set[str], customers: set[str]) -> list[str]:
    """The mapping's custom fields that the account does not have, as `key path: problem`."""
    mapping = rules.mapping
    problems = []
    for path, source in mapping.sources():
        where = ".".join(str(p) for p in path)
        if source.ticket_field is not None and str(source.ticket_field) not in tickets:
            problems.append(f"{where}: no ticket field {source.ticket_field!r} in the account")
        customer = source.organization_field or source.company_field
        if customer is not None and customer not in customers:
            problems.append(f"{where}: no customer field {customer!r} in the account")
    for index, due in enumerate(mapping.results.due):
        if due.ticket_field is not None and str(due.ticket_field) not in tickets:
            problems.append(
                f"results.due.{index}: no ticket field {due.ticket_field!r} in the account"
            )
    return problems
