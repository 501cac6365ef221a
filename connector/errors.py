"""The one exception tree of sla-connector.

Every error the program reports on purpose derives from `ConnectorError` and carries the exit
status the command line uses for it (0 ok, 1 runtime failure, 2 bad usage or configuration).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ApiError",
    "AuthError",
    "ConfigError",
    "Conflict",
    "ConnectorError",
    "FieldError",
    "InputError",
    "MalformedResponse",
    "NotAvailable",
    "NotFound",
    "Problem",
    "RateLimited",
    "UnmappedTicket",
    "ValidationFailed",
    "validation_message",
]


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
        text = f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"
        return _one_line(text)


def _one_line(text: str) -> str:
    """`text` with line breaks and other control characters escaped: one problem, one line.

    Keys and values quoted in a message come from the file, which may hold anything.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


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
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


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
        return _one_line(f"{self.method} {self.url}{status}: {self.message}{request_id}")


def _masked(text: str) -> str:
    """`text` with every registered secret and credential-looking value masked."""
    from connector.logs import redact  # on first use: `sla compute` never imports structlog

    return redact(text)


class RateLimited(ApiError):
    """The helpdesk refused the call for rate; `retry_after` seconds (None: not said)."""

    def __init__(
        self,
        message: str,
        *,
        method: str,
        url: str,
        status: int | None = 429,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
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
