"""The one exception tree of sla-connector.

Every error the program reports on purpose derives from `ConnectorError` and carries the exit
status the command line uses for it (0 ok, 1 runtime failure, 2 bad usage or configuration).

What an error, or any other line for the operator, may quote is made safe here too:
`printable()` for whatever reaches a terminal, `masked_setting()` for a configuration value.
"""

from __future__ import annotations

import collections.abc
import difflib
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Union, get_args, get_origin

from connector.text import printable, printable_json

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError

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
    "validation_problems",
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
    """One thing wrong in one file: where it is (line, and column where known) and what was
    expected."""

    file: str
    key: str
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}" if self.column is None else f":{self.line}:{self.column}"
        text = f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"
        return printable(text)


KeyPath = tuple[str | int, ...]
# What an instant in a file or on a line of input must look like.
_INSTANT = "a date-time with its UTC offset, e.g. 2026-11-24T09:00:00+01:00"

# What a value of the wrong kind was expected to be, by pydantic's error type. The types are
# part of pydantic's API; its wording (`msg`) changes between releases and is not ours to show.
_EXPECTED = {
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_parsing_size": "a whole number of sensible size",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "decimal_type": "a number",
    "decimal_parsing": "a number",
    "string_type": "text",
    "string_unicode": "text",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "tuple_type": "a list",
    "set_type": "a list",
    "frozen_set_type": "a list",
    "iterable_type": "a list",
    "dict_type": "keys and values",
    "mapping_type": "keys and values",
    "model_type": "keys and values",
    "model_attributes_type": "keys and values",
    "dataclass_type": "keys and values",
    "datetime_type": _INSTANT,
    "datetime_parsing": _INSTANT,
    "datetime_from_date_parsing": _INSTANT,
    "datetime_object_invalid": _INSTANT,
    "date_type": "a date, e.g. 2026-11-24",
    "date_parsing": "a date, e.g. 2026-11-24",
    "date_from_datetime_parsing": "a date, e.g. 2026-11-24",
    "date_from_datetime_inexact": "a date without a time of day, e.g. 2026-11-24",
    "time_type": "a time of day, e.g. 09:00",
    "time_parsing": "a time of day, e.g. 09:00",
    "timedelta_type": "a duration",
    "timedelta_parsing": "a duration",
    "url_type": "a URL, e.g. https://example.com",
    "url_parsing": "a URL, e.g. https://example.com",
    "url_syntax_violation": "a URL, e.g. https://example.com",
    "path_type": "a path",
    "none_required": "nothing (leave the key out)",
}
# Types whose context says what was expected: (type, context key, wording).
_BOUNDS = {
    "greater_than": ("gt", "more than {}"),
    "greater_than_equal": ("ge", "at least {}"),
    "less_than": ("lt", "less than {}"),
    "less_than_equal": ("le", "at most {}"),
    "multiple_of": ("multiple_of", "a multiple of {}"),
    "too_short": ("min_length", "at least {} item(s)"),
    "too_long": ("max_length", "at most {} item(s)"),
    "string_too_short": ("min_length", "at least {} character(s)"),
    "string_too_long": ("max_length", "at most {} character(s)"),
    "string_pattern_mismatch": ("pattern", "text matching {}"),
}
# Types whose context lists the values allowed, as pydantic quotes them: "'a', 'b' or 'c'".
_CHOICES = ("literal_error", "enum")


def validation_message(error: Mapping[str, Any], model: type[BaseModel] | None = None) -> str:
    """One pydantic error (an item of `ValidationError.errors()`) in our own words.

    Our validators' own messages are kept as they are; pydantic's built-in checks are worded
    here from the error's type and context, so a pydantic release does not change what users
    (and tests) read. `model`, the model that was validated, lets an unknown key's message
    list the keys allowed where it is. A type not worded here keeps pydantic's message.
    """
    kind = str(error.get("type", ""))
    context = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return _unknown_key(model, tuple(error.get("loc", ())))
    if kind == "missing":
        return "required key is missing"
    if kind in ("value_error", "assertion_error") and "error" in context:
        return str(context["error"])
    if kind == "timezone_aware":
        # "timestamp without a timezone" is the wording of `connector.timeutil` too.
        return f"timestamp without a timezone: expected {_INSTANT}, got {_input(error)}"
    if kind == "timezone_naive":
        return f"expected a date-time without a UTC offset, got {_input(error)}"
    if kind == "json_invalid":
        why = f" ({context['error']})" if "error" in context else ""
        return f"not valid JSON{why}"
    if kind == "json_type":
        return f"expected JSON text, got {_input(error)}"
    expected = _expected(error)
    if expected is not None:
        return _expected_got(expected, _input(error))
    if kind in _BOUNDS and _BOUNDS[kind][0] in context:
        key, wording = _BOUNDS[kind]
        bound = context[key]
        # A float field's bound comes as 1.0: said as the file would write it.
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)
        return f"expected {wording.format(bound)}, got {_input(error)}"
    return str(error.get("msg", kind))


def validation_problems(
    exc: ValidationError, model: type[BaseModel] | None = None
) -> list[tuple[KeyPath, str]]:
    """Every problem of a validation error as (key path in the file, message in our words).

    The key path is the file's: pydantic's own parts of a location (the member of a union it
    tried, `function-after[...]` wrappers) are dropped, and the errors of a union's members
    become one problem ("expected a whole number or text, got a list").
    """
    union_errors: dict[KeyPath, list[Mapping[str, Any]]] = {}
    # In the errors' order; a message of None is a union's, worded once all its errors are in.
    problems: list[tuple[KeyPath, str | None]] = []
    for error in exc.errors():
        path, union = _file_path(model, tuple(error["loc"]))
        if not union:
            problems.append((path, validation_message(error, model)))
        elif path in union_errors:
            union_errors[path].append(error)
        else:
            union_errors[path] = [error]
            problems.append((path, None))
    return [
        (path, _union_message(union_errors[path]) if message is None else message)
        for path, message in problems
    ]


def _expected(error: Mapping[str, Any]) -> str | None:
    """What a value of the wrong kind or outside a list of choices was expected to be."""
    kind = str(error.get("type", ""))
    if kind in _EXPECTED:
        return _EXPECTED[kind]
    context = error.get("ctx") or {}
    if kind in _CHOICES and "expected" in context:
        # pydantic quotes each choice and ends the list with "or": "'a', 'b' or 'c'".
        choices = str(context["expected"])
        head, last = choices.rsplit(" or ", 1) if " or " in choices else ("", choices)
        return f"one of: {head}, {last}" if head else last
    return None


def _expected_got(expected: str, got: str) -> str:
    # After a list of choices a comma would read as one more choice.
    return f"expected {expected}{'; ' if expected.startswith('one of:') else ', '}got {got}"


def _union_message(errors: list[Mapping[str, Any]]) -> str:
    """The errors of a union's members as one message: every kind that was expected."""
    kinds = [_expected(error) for error in errors]
    if all(kinds):
        wanted = list(dict.fromkeys(k for k in kinds if k))
        either = ", ".join(wanted[:-1]) + " or " + wanted[-1] if len(wanted) > 1 else wanted[0]
        return _expected_got(either, _input(errors[0]))
    # A member took the value's kind but not its value (a bound, a pattern): that is the news.
    return "; ".join(
        dict.fromkeys(validation_message(e) for e, k in zip(errors, kinds, strict=True) if not k)
    )


def _unknown_key(model: type[BaseModel] | None, loc: KeyPath) -> str:
    """The message for an unknown key: the keys allowed where it is, if the model says them."""
    keys = _keys_at(model, loc[:-1]) if model is not None else None
    if not keys:
        return "unknown key"
    name = str(loc[-1]) if loc else ""
    # A typo (`sevrity`) first, then a key cut short or run on (`batch`, `time_zone`), which
    # difflib's ratio ranks below unrelated short keys.
    close = difflib.get_close_matches(name, keys, n=1, cutoff=0.8)
    if not close:
        close = [k for k in keys if min(len(k), len(name)) >= 3 and (k in name or name in k)]
    if len(close) != 1:
        close = difflib.get_close_matches(name, keys, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"unknown key{hint}; the keys here are: {', '.join(keys)}"


def _keys_at(model: type[BaseModel], loc: KeyPath) -> list[str] | None:
    """The keys the model allows at `loc` (a location of pydantic's), or None if not a model."""
    members = _members(_walk(model, loc)[1])
    if len(members) != 1 or not _is_model(members[0]):
        return None
    fields = members[0].model_fields.items()
    # An excluded field (`Settings.source`) is the program's, not a key of the file.
    return sorted(field.alias or name for name, field in fields if field.exclude is not True)


def _file_path(model: type[BaseModel] | None, loc: KeyPath) -> tuple[KeyPath, bool]:
    """`loc` as a key path of the file, and whether a union's member was named in it."""
    if model is None:
        return tuple(p for p in loc if not str(p).startswith("function-")), False
    path, _, union = _walk(model, loc)
    return path, union


def _walk(model: type[BaseModel], loc: KeyPath) -> tuple[KeyPath, Any, bool]:
    """Follow `loc` through the model's types: (the file's key path, the type found at its
    end or None when unknown, whether a part named a union's member rather than a key)."""
    current: Any = model
    path: list[str | int] = []
    union = False
    for part in loc:
        if isinstance(part, str) and part.startswith("function-"):
            continue  # a validator's wrapper, not a key
        members = _members(current)
        if len(members) > 1:
            # pydantic names the member it tried (`int`, `str`, a model's name): not a key.
            union = True
            current = next((m for m in members if _tag(m) == part), None)
            continue
        path.append(part)
        current = _inside(members[0], part) if members else None
    return tuple(path), current, union


def _members(annotation: Any) -> list[Any]:
    """The types a value of `annotation` may be, `None` and `Annotated` metadata left out."""
    if annotation is None or annotation is type(None):
        return []
    origin = get_origin(annotation)
    if origin is Annotated:
        return _members(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return [member for arg in get_args(annotation) for member in _members(arg)]
    return [annotation]


def _inside(kind: Any, part: str | int) -> Any:
    """The type of the value at key or index `part` of a value of type `kind` (None: unknown)."""
    if _is_model(kind):
        for name, field in kind.model_fields.items():
            if part in (name, field.alias):
                return field.annotation
        return None
    origin, args = get_origin(kind), get_args(kind)
    if origin in (dict, Mapping, collections.abc.Mapping) and len(args) == 2:
        return args[1]
    if origin in (list, set, frozenset, collections.abc.Sequence) and args:
        return args[0]
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return args[0]
    if origin is tuple and isinstance(part, int) and 0 <= part < len(args):
        return args[part]
    return None


def _is_model(kind: Any) -> bool:
    from pydantic import BaseModel

    return isinstance(kind, type) and issubclass(kind, BaseModel)


def _tag(kind: Any) -> str:
    """How pydantic names a union's member in an error's location: `int`, `list[str]`."""
    if isinstance(kind, type) and get_origin(kind) is None:
        return kind.__name__
    return str(kind).replace(" ", "").replace("typing.", "")


def _input(error: Mapping[str, Any]) -> str:
    """The value an error refused, as a message may quote it."""
    return _described(error.get("input"))


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
