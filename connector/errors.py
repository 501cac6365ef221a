"""The one exception tree of sla-connector.

Every error the program reports on purpose derives from `ConnectorError` and carries the exit
status the command line uses for it (0 ok, 1 runtime failure, 2 bad usage or configuration).

What an error, or any other line for the operator, may quote is made safe here too:
`printable()` for whatever reaches a terminal, `masked_setting()` for a configuration value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connector.text import printable, printable_json

__all__ = [
    "ApiError",
    "AuthError",
    "ConfigError",
    "Conflict",
    "ConnectorError",
    "FieldError",
    "InputError",
    "Interrupted",
    "MalformedResponse",
    "NotAvailable",
    "NotFound",
    "Problem",
    "RateLimited",
    "UnmappedTicket",
    "ValidationFailed",
    "masked_setting",
    "printable",
    "printable_json",
    "validation_message",
]


class ConnectorError(Exception):
    """Base of every error sla-connector raises deliberately."""

    exit_status = 1

    def lines(self) -> list[str]:
        """What the error says, as printable lines for a terminal (one, unless overridden).

        The message may quote a ticket, a helpdesk's answer or the command line: a line break
        in there is escaped, never a second line.
        """
        return [printable(str(self))]


@dataclass(frozen=True)
class Problem:
    """One thing wrong in one file: where it is and what was expected."""

    file: str
    key: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        text = f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"
        return printable(text)


# What a value of the wrong kind was expected to be, by pydantic's error type. The types are
# part of pydantic's API; its wording (`msg`) changes between releases and is not ours to show.
_EXPECTED = {
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "text",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "tuple_type": "a list",
    "set_type": "a list",
    "dict_type": "keys and values",
    "model_type": "keys and values",
    "model_attributes_type": "keys and values",
    "datetime_type": "an instant",
    "datetime_parsing": "an instant",
    "datetime_from_date_parsing": "an instant",
    "date_type": "a date",
    "date_parsing": "a date",
    "date_from_datetime_parsing": "a date",
}
# Types whose context says what was expected: (type, context key, wording).
_BOUNDS = {
    "greater_than": ("gt", "more than {}"),
    "greater_than_equal": ("ge", "at least {}"),
    "less_than": ("lt", "less than {}"),
    "less_than_equal": ("le", "at most {}"),
    "too_short": ("min_length", "at least {} item(s)"),
    "too_long": ("max_length", "at most {} item(s)"),
    "string_too_short": ("min_length", "at least {} character(s)"),
    "string_too_long": ("max_length", "at most {} character(s)"),
    "string_pattern_mismatch": ("pattern", "text matching {}"),
    "literal_error": ("expected", "{}"),
    "enum": ("expected", "{}"),
}


def validation_message(error: Mapping[str, Any]) -> str:
    """One pydantic error (an item of `ValidationError.errors()`) in our own words.

    Our validators' own messages are kept as they are; pydantic's built-in checks are worded
    here from the error's type and context, so a pydantic release does not change what users
    (and tests) read.
    """
    kind = str(error.get("type", ""))
    context = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind in ("value_error", "assertion_error") and "error" in context:
        return str(context["error"])
    if kind == "timezone_aware":
        return "timestamp without a timezone (add Z or an offset)"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {_described(error.get('input'))}"
    if kind in _BOUNDS and _BOUNDS[kind][0] in context:
        key, wording = _BOUNDS[kind]
        expected = wording.format(context[key])
        return f"expected {expected}, got {_described(error.get('input'))}"
    return str(error.get("msg", kind))


def _described(value: Any) -> str:
    if isinstance(value, Mapping):
        return "keys and values"
    if isinstance(value, list | tuple):
        return f"a list of {len(value)}"
    if value is None:
        return "nothing"
    # Masked before it is cut short: a cut token is still most of the token.
    text = repr(masked_setting(value)) if isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# A run of token characters long enough to be a credential (Zendesk API tokens are 40 of them,
# Freshdesk API keys 20, OAuth tokens 64, base64 has + / =). Dots and colons end a run, so host
# names, ports and instants are not runs; shorter runs count only if they mix letters and
# digits, as keys do and words do not.
_TOKEN_RUN = re.compile(r"[A-Za-z0-9_+/=~-]{16,}")
_ALWAYS_A_TOKEN = 32


def _token_runs_masked(text: str, mask: str) -> str:
    def masked(match: re.Match[str]) -> str:
        run = match.group()
        mixed = any(c.isdigit() for c in run) and any(c.isalpha() for c in run)
        return mask if mixed or len(run) >= _ALWAYS_A_TOKEN else run

    return _TOKEN_RUN.sub(masked, text)


def masked_setting(value: str) -> str:
    """`value` from a configuration (a file, the environment) fit to quote in an error message.

    Masked as the logs are (registered secrets, credential shapes) and more, because a secret
    pasted where it does not belong is the likely mistake: a URL keeps its scheme, host, port
    and path, but not its user-info, query or fragment, where tokens get pasted; any
    token-looking run is masked, which covers a bare token pasted as the value. Every error
    line that quotes a URL or another value of the configuration goes through this.
    """
    from connector.logs import MASK

    rest, hash_sign, fragment = value.partition("#")
    rest, question_mark, query = rest.partition("?")
    scheme, separator, after = rest.partition("://")
    if separator:
        authority, slash, path = after.partition("/")
    else:
        scheme, (authority, slash, path) = "", rest.partition("/")
    if "@" in authority:
        authority = MASK + "@" + authority.rpartition("@")[2]
    if separator:
        # The host and the path apart: `zendesk.com/api/v2/...` is not one run.
        text = scheme + separator + _token_runs_masked(authority, MASK)
        text += slash + _token_runs_masked(path, MASK)
    else:
        text = _token_runs_masked(authority + slash + path, MASK)
    text += question_mark + (MASK if query else "")
    text += hash_sign + (MASK if fragment else "")
    return _masked(text)


class ConfigError(ConnectorError):
    """A configuration or mapping file is invalid; one `Problem` per thing wrong."""

    exit_status = 2

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))

    def lines(self) -> list[str]:
        """One printable line per problem."""
        return [str(p) for p in self.problems]


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


# --- helpdesk API errors -------------------------------------------------------------------
#
# ConnectorError
#  └── ApiError            any failed helpdesk call; carries the request and, if any, the status
#       ├── RateLimited    429 (and a 503 with Retry-After): wait `retry_after` seconds, then retry
#       ├── Conflict       409: someone changed the ticket; re-read, recompute, retry
#       ├── AuthError      401/403: bad or expired credentials, or a refresh that failed
#       ├── NotFound       404: the ticket, note target or field does not exist (any more)
#       ├── ValidationFailed 400/422 with the helpdesk's per-field messages
#       ├── MalformedResponse a 2xx whose body is not what the API documents
#       └── NotAvailable   5xx, timeouts and transport errors: worth retrying if the call is safe
#            └── Interrupted a stop was asked for (SIGTERM): the request was not sent, or a
#                            read in flight was cut; never retried


class ApiError(ConnectorError):
    """A helpdesk call failed; says which call, with what status and request id."""

    def __init__(
        self,
        message: str,
        *,
        method: str,
        url: str,
        status: int | None = None,
        request_id: str | None = None,
    ) -> None:
        self.method = method
        self.url = url
        self.status = status
        # The message and the request id quote what came back, and a helpdesk or a proxy in
        # front of it may echo the request, credentials included: masked before anyone sees.
        self.request_id = None if request_id is None else _masked(request_id)
        self.message = _masked(message)
        super().__init__(self._describe())

    def _describe(self) -> str:
        status = "" if self.status is None else f" -> {self.status}"
        request_id = "" if self.request_id is None else f" (request id {self.request_id})"
        # The message quotes what the helpdesk sent (a body, a key of its JSON): one line.
        return printable(f"{self.method} {self.url}{status}: {self.message}{request_id}")


def _masked(text: str) -> str:
    """`text` with every registered secret and credential-looking value masked."""
    from connector.logs import redact  # on first use: `sla compute` never imports structlog

    return redact(text)


class RateLimited(ApiError):
    """The helpdesk refused the call for rate; `retry_after` seconds (None: not said).

    `one_ticket`: the budget spent is the ticket's own (Zendesk's 30 updates a ticket in 10
    minutes), not the account's: that ticket waits for a later try, nothing else does.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str,
        url: str,
        status: int | None = 429,
        request_id: str | None = None,
        retry_after: float | None = None,
        one_ticket: bool = False,
    ) -> None:
        self.retry_after = retry_after
        self.one_ticket = one_ticket
        super().__init__(message, method=method, url=url, status=status, request_id=request_id)


class Conflict(ApiError):
    """The ticket changed since it was read (Zendesk `safe_update`)."""


class AuthError(ApiError):
    """Credentials are missing, wrong, expired or lack the permission the call needs."""


class NotFound(ApiError):
    """The resource does not exist (any more)."""


@dataclass(frozen=True)
class FieldError:
    """One field the helpdesk refused, in its own words."""

    field: str
    message: str
    code: str | None = None

    def __str__(self) -> str:
        code = "" if self.code is None else f" [{self.code}]"
        return f"{self.field}: {self.message}{code}"


class ValidationFailed(ApiError):
    """The helpdesk refused the request's content; one `FieldError` per field it named."""

    def __init__(
        self,
        message: str,
        *,
        method: str,
        url: str,
        status: int | None = 400,
        request_id: str | None = None,
        errors: list[FieldError] | None = None,
    ) -> None:
        self.errors = errors or []
        if self.errors:
            message = f"{message}: " + "; ".join(str(e) for e in self.errors)
        super().__init__(message, method=method, url=url, status=status, request_id=request_id)


class MalformedResponse(ApiError):
    """A successful status with a body that is not what the API documents."""


class NotAvailable(ApiError):
    """The helpdesk did not answer usefully (5xx, timeout, connection cut).

    `never_sent` is True when the connection could not even be opened, so the request provably
    had no effect and may be sent again whatever its method.
    """

    never_sent = False


class Interrupted(NotAvailable):
    """A stop was asked for: the request was not sent (`never_sent`), or a read was cut.

    Not a failure of the helpdesk: the command or the daemon ends its work in hand.
    """
