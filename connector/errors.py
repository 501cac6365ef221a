"""The one exception tree of sla-connector.

Every error the program reports on purpose derives from `ConnectorError` and carries the exit
status the command line uses for it (0 ok, 1 runtime failure, 2 bad usage or configuration).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ConfigError", "ConnectorError", "InputError", "Problem", "UnmappedTicket"]


class ConnectorError(Exception):
    """Base of every error sla-connector raises deliberately."""

    exit_status = 1


@dataclass(frozen=True)
class Problem:
    """One thing wrong in one file: where it is and what was expected."""

    file: str
    key: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigError(ConnectorError):
    """A configuration or mapping file is invalid; one `Problem` per thing wrong."""

    exit_status = 2

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class InputError(ConnectorError):
    """Bad input on the command line or in a ticket stream (naive timestamp, unknown name)."""

    exit_status = 2


class UnmappedTicket(ConnectorError):
    """A ticket that names something its contract does not know (plan, severity, region...).

    The engine turns this into a decision tagged `sla_unmapped`; the `sla compute` command
    reports it as a usage error.
    """

    exit_status = 2

    def __init__(self, ticket: str, message: str) -> None:
        self.ticket = ticket
        self.reason = message
        super().__init__(f"ticket {ticket}: {message}")
