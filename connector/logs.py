"""Logging for the daemon and the commands: structlog, JSON lines for journald, no secrets.

`configure()` sets up one processor chain for structlog loggers and for records from the
standard `logging` module (libraries' warnings), so both come out the same way on the same
stream. Every line goes through `redact()` twice: each string value (nested in dicts and lists,
the formatted traceback included) before rendering, then the rendered line itself, which
catches what only appears in a `repr()`. Register each secret with `register_secret()` as soon
as it is read; well-known credential shapes (`Authorization:` values, `Bearer …`,
`token=…`, keys named like `password`, the password of `scheme://user:password@host`) are
masked even when not registered.

JSON lines escape what a terminal would act on by themselves; readable lines have every key
and text value made printable (`connector.errors.printable`) first, as a ticket's content
logged on a terminal must not drive it.
"""

from __future__ import annotations

import base64
import logging
import re
import sys
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Literal, TextIO, cast
from urllib.parse import quote

import structlog
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

from connector.text import printable

__all__ = ["MASK", "configure", "get_logger", "redact", "register_secret"]

MASK = "**********"
MIN_SECRET_LENGTH = 4
# A base64 run shorter than this (three whole groups) would mask too many innocent strings.
MIN_BASE64_SECRET_LENGTH = 12

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}

# Values under these keys are credentials whatever they look like.
_SECRET_KEY = re.compile(
    r"(?i)^(?:.*[-_])?(?:authorization|cookie|password|passwd|secret|token|api[-_]?key)$"
)
# Credential-looking text: a header, a scheme and its value, or `key=value` / `"key": "value"`.
_SHAPES = (
    re.compile(
        r"(?i)(\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?)(?!null\b)"
        r"(?:(?:basic|bearer|digest|token)\s+)?[^\s\"',;}&]+"
    ),
    # A scheme and a value that looks like a credential (not "Basic auth configured").
    re.compile(
        r"(?i)(\b(?:bearer|basic|token)\s+)(?=[A-Za-z0-9._~+/=-]*[0-9+/=])[A-Za-z0-9._~+/=-]{12,}"
    ),
    # `null` stays: a JSON line must still parse.
    re.compile(
        r"(?i)(\b(?:[a-z]+[-_])?(?:token|password|passwd|secret|api[-_]?key)[\"']?\s*[:=]\s*[\"']?)"
        r"(?!null\b)[^\s\"',;}&]+"
    ),
    # The password of a URL with credentials (`https://user:password@host`, a proxy URL).
    re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^\s/?#@:\"']*:)[^\s/?#@\"']+(?=@)"),
)

_BASE64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")

_lock = threading.Lock()
_secrets: set[str] = set()
_plain_pattern: re.Pattern[str] | None = None
_base64_pattern: re.Pattern[str] | None = None


def register_secret(value: str) -> None:
    """Mask `value` (and its base64 and URL-encoded forms) in every log line from now on.

    Surrounding whitespace is ignored (credential files end with a newline); values shorter
    than four characters are ignored, as masking them would shred ordinary words.
    """
    global _plain_pattern, _base64_pattern  # noqa: PLW0603 - one registry per process
    secret = value.strip()
    if len(secret) < MIN_SECRET_LENGTH:
        return
    with _lock:
        if secret in _secrets:
            return
        _secrets.add(secret)
        _plain_pattern = _alternation(form for s in _secrets for form in _plain_forms(s))
        _base64_pattern = _alternation(core for s in _secrets for core in _base64_cores(s))


def redact(text: str) -> str:
    """`text` with every registered secret and credential-looking value replaced by `MASK`."""
    if _plain_pattern is not None:
        text = _plain_pattern.sub(MASK, text)
    if _base64_pattern is not None:
        text = _mask_base64_runs(_base64_pattern, text)
    for shape in _SHAPES:
        text = shape.sub(lambda match: match.group(1) + MASK, text)
    return text


def _alternation(forms: Iterable[str]) -> re.Pattern[str] | None:
    ordered = sorted(set(forms), key=len, reverse=True)  # longest first: mask whole forms
    return re.compile("|".join(map(re.escape, ordered))) if ordered else None


def _plain_forms(secret: str) -> set[str]:
    return {secret, quote(secret, safe=""), quote(secret, safe="/")}


def _base64_cores(secret: str) -> list[str]:
    """What any base64 text encoding a string that contains `secret` must contain.

    Base64 turns each 3 bytes into 4 characters, so wherever the secret sits inside the
    encoded string (think `Basic base64(user:secret)`), the groups that lie wholly inside it
    encode one of three strings, one per alignment.
    """
    raw = secret.encode()
    if len(raw) < MIN_BASE64_SECRET_LENGTH:
        return []
    cores = []
    for skip in range(3):
        usable = (len(raw) - skip) // 3 * 3
        cores.append(base64.b64encode(raw[skip : skip + usable]).decode())
    return cores


def _mask_base64_runs(cores: re.Pattern[str], text: str) -> str:
    """Mask the whole base64 run (padding included) around each core found in `text`."""
    spans: list[tuple[int, int]] = []
    for match in cores.finditer(text):
        start, end = match.span()
        if spans and start < spans[-1][1]:
            continue  # inside a run already masked
        while start > 0 and text[start - 1] in _BASE64_ALPHABET:
            start -= 1
        while end < len(text) and text[end] in _BASE64_ALPHABET:
            end += 1
        while end < len(text) and text[end] == "=":
            end += 1
        spans.append((start, end))
    if not spans:
        return text
    parts, last = [], 0
    for start, end in spans:
        parts += [text[last:start], MASK]
        last = end
    parts.append(text[last:])
    return "".join(parts)


# --- processors --------------------------------------------------------------------------------


def _redacted(value: Any, key: str | None = None) -> Any:
    if key is not None and value is not None and _SECRET_KEY.match(key):
        return MASK
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bytes):
        return redact(value.decode("utf-8", "replace"))
    if isinstance(value, Mapping):
        return {k: _redacted(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redacted(item) for item in value]
    return value  # numbers, None, instants; anything else is caught on the rendered line


def _redact_event(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    """Processor: mask secrets in every value, recursively, including the traceback text."""
    return {key: _redacted(value, key) for key, value in event_dict.items()}


def _json_default(value: object) -> str:
    isoformat = getattr(value, "isoformat", None)
    return str(isoformat()) if callable(isoformat) else str(value)


def _redact_line(renderer: Processor) -> Processor:
    def render(logger: WrappedLogger, method: str, event_dict: EventDict) -> str:
        return redact(cast(str, renderer(logger, method, event_dict)))

    return render


class _Escaped:
    """A text value that is not printable, as the console renderer should show it.

    The renderer writes text raw unless it holds a space or a quote, and `repr`s anything
    else: this shows escaped either way, and escaped once.
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return repr(self.text)

    def __str__(self) -> str:
        return printable(self.text)


def _printable_event(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    """Processor: every key and text value printable, for readable lines on a terminal.

    A rendered traceback is multi-line by design: each of its lines is made printable.
    """

    def shown(key: str, value: Any) -> Any:
        if not isinstance(value, str) or value.isprintable():
            return value  # anything else the renderer shows by `repr`, which escapes
        if key in ("exception", "stack"):
            return "\n".join(printable(line) for line in value.split("\n"))
        return _Escaped(value)

    return {printable(str(key)): shown(str(key), value) for key, value in event_dict.items()}


def _timestamp_level_event_first(
    logger: WrappedLogger, method: str, event_dict: EventDict
) -> EventDict:
    first = {
        key: event_dict.pop(key) for key in ("timestamp", "level", "event") if key in event_dict
    }
    return {**first, **event_dict}


def _pre_chain() -> list[Processor]:
    """What turns a call into a complete, redacted event, before rendering."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        structlog.processors.StackInfoRenderer(),
        # Render the traceback to text here, so that redaction sees it.
        structlog.processors.format_exc_info,
        _redact_event,
        _timestamp_level_event_first,
    ]


class _NamedWriteLogger(structlog.WriteLogger):
    """A `WriteLogger` that knows the name it was asked for, as stdlib loggers do."""

    def __init__(self, file: TextIO, name: str | None) -> None:
        super().__init__(file)
        self.name = name


class _NamedWriteLoggerFactory:
    def __init__(self, file: TextIO) -> None:
        self._file = file

    def __call__(self, *args: Any) -> _NamedWriteLogger:
        return _NamedWriteLogger(self._file, str(args[0]) if args else None)


def _add_logger_name(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    name = getattr(logger, "name", None)
    if name is not None:
        event_dict.setdefault("logger", name)
    return event_dict


class _RootHandler(logging.StreamHandler[TextIO]):
    """The handler `configure()` puts on the root logger; replaced, never duplicated."""


def configure(
    *,
    format: Literal["auto", "json", "console"] = "auto",
    level: str = "info",
    stream: TextIO | None = None,
) -> None:
    """Route all logging to `stream` (standard error by default), filtered at `level`.

    `auto` renders JSON lines (`timestamp` in UTC ISO 8601, `level`, `event`, bound keys)
    unless the stream is a terminal, where it renders readable lines. Calling it again (on
    SIGHUP, in tests) replaces the previous set-up; loggers already handed out follow it.
    """
    number = LEVELS.get(level.strip().lower())
    if number is None:
        raise ValueError(f"unknown log level {level!r}; expected one of {', '.join(LEVELS)}")
    out = sys.stderr if stream is None else stream
    tty = _isatty(out)
    renderer: Processor
    shown: list[Processor] = []
    if format == "console" or (format == "auto" and tty):
        renderer = structlog.dev.ConsoleRenderer(colors=tty, sort_keys=False)
        shown = [_printable_event]
    elif format in ("auto", "json"):
        renderer = structlog.processors.JSONRenderer(default=_json_default)
    else:
        raise ValueError(f"unknown log format {format!r}; expected auto, json or console")

    structlog.configure(
        processors=[_add_logger_name, *_pre_chain(), *shown, _redact_line(renderer)],
        wrapper_class=structlog.make_filtering_bound_logger(number),
        logger_factory=_NamedWriteLoggerFactory(out),
        context_class=dict,
        # Loggers made at import time must follow a later reconfiguration.
        cache_logger_on_first_use=False,
    )

    # Libraries log through `logging`; only their warnings and worse are worth a line.
    handler = _RootHandler(out)
    handler.setLevel(max(number, logging.WARNING))
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *_pre_chain()],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *shown,
                _redact_line(renderer),
            ],
        )
    )
    root = logging.getLogger()
    _remove_handlers(root, [h for h in root.handlers if isinstance(h, _RootHandler)])
    root.addHandler(handler)


def _remove_handlers(logger: logging.Logger, handlers: Iterable[logging.Handler]) -> None:
    for handler in handlers:
        logger.removeHandler(handler)
        handler.close()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no such method, or a closed stream
        return False


def get_logger(name: str | None = None) -> FilteringBoundLogger:
    """A logger that follows the current configuration; `name` becomes the `logger` key."""
    args = () if name is None else (name,)
    return cast(FilteringBoundLogger, structlog.get_logger(*args))
