"""`sla-connector check`: is this installation ready to run?

Each check prints one line (`ok` or `FAIL` with the reason) and the command exits 0 when all
pass, 2 when the configuration or mappings are wrong, 1 when the helpdesk cannot be reached
or refuses the credentials. Nothing is written to the helpdesk.
"""

from __future__ import annotations

from typing import TextIO

from connector.app import load_rules, open_helpdesk
from connector.config import Settings
from connector.errors import ApiError, AuthError, ConfigError
from connector.state import State
from connector.sync import Rules

__all__ = ["mapped_field_problems", "run_checks"]


def run_checks(settings: Settings, out: TextIO, *, offline: bool = False) -> int:
    """Run every check, print one line each; returns the exit status."""
    out.write(f"ok    configuration {settings.source} ({settings.helpdesk})\n")
    try:
        rules = load_rules(settings)
    except ConfigError as exc:
        out.write("FAIL  mappings\n")
        out.writelines(f"        {problem}\n" for problem in exc.problems)
        return 2
    out.write(
        f"ok    mappings: {len(rules.contracts)} contracts ({', '.join(sorted(rules.contracts))})"
        f", helpdesk mapping {settings.mapping_file}\n"
    )
    try:
        state = State(settings.state_file)
    except (ConfigError, OSError) as exc:
        out.write(f"FAIL  state {settings.state_file}: {exc}\n")
        return 2
    try:
        out.write(f"ok    state {settings.state_file} (schema {state.schema_version})\n")
        if offline:
            return 0
        try:
            helpdesk = open_helpdesk(settings, state)
        except ConfigError as exc:
            out.write("FAIL  credentials\n")
            out.writelines(f"        {problem}\n" for problem in exc.problems)
            return 2
        try:
            tickets, customers = helpdesk.field_keys()
        except AuthError as exc:
            out.write(f"FAIL  credentials refused by {settings.helpdesk_url}: {exc}\n")
            return 1
        except ApiError as exc:
            out.write(f"FAIL  {settings.helpdesk_url} unreachable: {exc}\n")
            return 1
        finally:
            helpdesk.close()
        out.write(f"ok    signed in to {settings.helpdesk_url}\n")
        problems = mapped_field_problems(rules, tickets, customers)
        if problems:
            out.write("FAIL  mapped fields missing from the account\n")
            out.writelines(f"        {settings.mapping_file}: {p}\n" for p in problems)
            return 2
        out.write(
            f"ok    every mapped field exists ({len(tickets)} ticket fields, "
            f"{len(customers)} customer fields in the account)\n"
        )
        return 0
    finally:
        state.close()


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
