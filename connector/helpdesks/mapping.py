"""Helpdesk field mappings: where each fact comes from and where each result goes.

A mapping file (`mappings/helpdesks/*.yaml`, read by `connector.mappingfiles`) is validated
by the models here and then used by two pure functions that know nothing of HTTP:

- `read_facts(view, mapping)` turns one ticket (seen through a `WireView`, which each helpdesk
  implements over its own wire models) into the engine's `TicketFacts`;
- `desired_results(decision, mapping, owned_tags)` says what the ticket should show for a
  decision: due instants per destination, priority, the tags to have and to drop, the note.

Each helpdesk then diffs `DesiredResults` with the ticket as it is into its minimal update.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cached_property
from typing import Annotated, Any, Literal, Protocol

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from connector.errors import UnmappedTicket, validation_message
from connector.helpdesks.summary import summary_text
from connector.sla.calendar import FIRST_YEAR, LAST_YEAR
from connector.sla.calendar import zone as load_zone
from connector.sla.contract import Contract
from connector.sla.model import CustomerFacts, Decision, Events, Status, TicketFacts
from connector.timeutil import format_instant, format_span, parse_instant

__all__ = [
    "Changes",
    "DesiredResults",
    "DueDestination",
    "DueValue",
    "HelpdeskMapping",
    "Source",
    "WireView",
    "cross_check",
    "desired_results",
    "find_note_fingerprint",
    "note_fingerprint",
    "read_facts",
]

Helpdesk = Literal["zendesk", "freshdesk"]
# A status id as YAML gives it (Freshdesk's `6`, Zendesk's `4044396`), as text.
StatusKey = Annotated[
    str, BeforeValidator(lambda v: str(v) if isinstance(v, int) and not isinstance(v, bool) else v)
]
Scalar = str | int | float | bool

# Which source kinds each helpdesk offers, and what each kind reads.
KINDS: dict[Helpdesk, dict[str, str]] = {
    "zendesk": {
        "ticket_field": "ticket_field",
        "organization_field": "customer_field",
        "ticket": "ticket_attribute",
        "organization": "customer_attribute",
        "metric": "event",
    },
    "freshdesk": {
        "ticket_field": "ticket_field",
        "company_field": "customer_field",
        "ticket": "ticket_attribute",
        "company": "customer_attribute",
        "stats": "event",
    },
}
COMMON_KINDS = ("tag", "tag_prefix", "static")
ALL_KINDS = sorted({kind for kinds in KINDS.values() for kind in kinds} | set(COMMON_KINDS))

NOTE_MARK = "sla-connector note "
# Our mark is the last thing a note of ours says. Only a mark at the very end counts (the
# helpdesk may add trailing blanks or close its HTML after it): text a note quotes from the
# ticket or the customer (an unknown plan, say) comes before the mark and cannot pose as it.
_NOTE_MARK_RE = re.compile(
    r"(?:\A|[\s>])" + re.escape(NOTE_MARK) + r"([0-9a-f]{16})(?:\s|<[^<>]*>|&nbsp;)*\Z"
)


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Source(_Spec):
    """Where one fact comes from: exactly one kind, then optional value handling."""

    ticket_field: int | str | None = None
    organization_field: str | None = None
    company_field: str | None = None
    ticket: str | None = None
    organization: str | None = None
    company: str | None = None
    metric: str | None = None
    stats: str | None = None
    tag: str | None = None
    tag_prefix: str | None = None
    static: Scalar | None = None
    values: dict[str, Scalar] | None = None
    prefix: str | None = None
    default: Scalar | None = None
    split: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Source:
        given = [kind for kind in ALL_KINDS if getattr(self, kind) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of {', '.join(ALL_KINDS)}"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self

    @property
    def kind(self) -> str:
        """The name of the one source kind given."""
        return next(kind for kind in ALL_KINDS if getattr(self, kind) is not None)

    @property
    def key(self) -> Scalar:
        """The field id, key, attribute, tag or static value of the source."""
        value: Scalar = getattr(self, self.kind)
        return value

    def describe(self) -> str:
        """How an error message names the source, e.g. `ticket field 9100005`."""
        return f"{self.kind.replace('_', ' ')} {self.key}"


class CustomerFactSources(_Spec):
    """Sources of `CustomerFacts`."""

    seats: Source | None = None
    subscription_start: Source | None = None
    subscription_kind: Source | None = None
    active: Source | None = None
    timezone: Source | None = None
    offices: Source | None = None


class EventSources(_Spec):
    """Sources of `Events` (instants)."""

    first_agent_reply_at: Source | None = None
    workaround_at: Source | None = None
    solved_at: Source | None = None
    delivered_at: Source | None = None


class FactSources(_Spec):
    """Sources of every `TicketFacts` field a helpdesk does not give natively."""

    customer: Source | None = None
    contract: Source
    plan: Source | None = None
    severity: Source | None = None
    severity_override: Source | None = None
    category: Source | None = None
    product: Source | None = None
    region: Source | None = None
    quantities: dict[str, Source] = Field(default_factory=dict)
    flags: dict[str, Source] = Field(default_factory=dict)
    customer_facts: CustomerFactSources = Field(default_factory=CustomerFactSources)
    events: EventSources = Field(default_factory=EventSources)
    # A helpdesk status (Freshdesk's status id, Zendesk's custom status id) → the category the
    # contracts see (docs/pausing.md); statuses not listed keep the helpdesk's own
    # category (Zendesk's `status`, Freshdesk's built-in ones; other Freshdesk ids: open).
    statuses: dict[StatusKey, Status] = Field(default_factory=dict)


class SummaryDestination(_Spec):
    """The ticket field that holds the SLA summary (a Zendesk id, a Freshdesk `cf_` name)."""

    ticket_field: int | str

    @property
    def key(self) -> str:
        """The field as the helpdesk's update names it."""
        return str(self.ticket_field)


class DueDestination(_Spec):
    """Where the due instant of the first of `targets` the decision has is written."""

    ticket_field: int | str | None = None
    native: Literal["fr_due_by", "due_by"] | None = None
    format: Literal["instant", "date"] = "instant"
    targets: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_place(self) -> DueDestination:
        if (self.ticket_field is None) == (self.native is None):
            raise ValueError("give exactly one of ticket_field, native")
        return self

    @property
    def key(self) -> int | str:
        """The ticket field id or native attribute name written."""
        if self.native is not None:
            return self.native
        assert self.ticket_field is not None  # one of the two, by validation
        return self.ticket_field


DEFAULT_PRIORITIES: dict[Helpdesk, dict[str, Scalar]] = {
    "zendesk": {"low": "low", "normal": "normal", "high": "high", "urgent": "urgent"},
    # Freshdesk: 1 low, 2 medium, 3 high, 4 urgent.
    "freshdesk": {"low": 1, "normal": 2, "high": 3, "urgent": 4},
}


class ResultDestinations(_Spec):
    """Where each result goes."""

    due: list[DueDestination] = Field(default_factory=list)
    # The ticket field (a multi-line text field on Zendesk, a paragraph field on Freshdesk)
    # that holds the SLA summary the agents' apps read (`connector.helpdesks.summary`).
    summary: SummaryDestination | None = None
    priority: bool = True
    priority_values: dict[str, Scalar] | None = None
    tags: bool = True
    note: bool = True


class HelpdeskMapping(_Spec):
    """A whole helpdesk mapping file."""

    helpdesk: Helpdesk
    facts: FactSources
    results: ResultDestinations = Field(default_factory=ResultDestinations)

    @cached_property
    def fact_reader(self) -> _FactReader:
        """The fact sources compiled into readers, once per mapping."""
        return _compile(self)

    @cached_property
    def waiting_statuses(self) -> frozenset[str]:
        """The helpdesk statuses `facts.statuses` puts in `pending`."""
        return frozenset(k for k, v in self.facts.statuses.items() if v == "pending")

    @property
    def priorities(self) -> dict[str, Scalar]:
        """Engine priority name → the helpdesk's priority value."""
        return self.results.priority_values or DEFAULT_PRIORITIES[self.helpdesk]

    def sources(self) -> Iterable[tuple[tuple[str | int, ...], Source]]:
        """Every source with its key path in the file."""
        facts = self.facts
        for name in FactSources.model_fields:
            value = getattr(facts, name)
            if isinstance(value, Source):
                yield ("facts", name), value
            elif isinstance(value, dict) and name != "statuses":
                for key, source in value.items():
                    yield ("facts", name, key), source
            elif isinstance(value, CustomerFactSources | EventSources):
                for key in type(value).model_fields:
                    if (source := getattr(value, key)) is not None:
                        yield ("facts", name, key), source


def cross_check(mapping: HelpdeskMapping) -> Iterable[tuple[tuple[str | int, ...], str]]:
    """Problems pydantic cannot see: source kinds and field ids the helpdesk does not have."""
    allowed = set(KINDS[mapping.helpdesk]) | set(COMMON_KINDS)
    for where, source in mapping.sources():
        if source.kind not in allowed:
            yield (
                (*where, source.kind),
                f"{mapping.helpdesk} has no {source.kind!r} source "
                f"(expected one of {', '.join(sorted(allowed))})",
            )
        if source.kind != "ticket_field":
            continue
        if mapping.helpdesk == "zendesk" and not isinstance(source.ticket_field, int):
            yield (*where, "ticket_field"), "expected a numeric Zendesk ticket field id"
        if mapping.helpdesk == "freshdesk" and not str(source.ticket_field).startswith("cf_"):
            yield (*where, "ticket_field"), "expected a Freshdesk custom field name (cf_...)"
    written: dict[int | str, int] = {}
    for index, due in enumerate(mapping.results.due):
        where = ("results", "due", index)
        if mapping.helpdesk == "zendesk" and due.native is not None:
            yield (*where, "native"), "zendesk has no native due fields: use ticket_field"
        field = due.ticket_field
        if mapping.helpdesk == "zendesk" and field is not None and not isinstance(field, int):
            yield (*where, "ticket_field"), "expected a numeric Zendesk ticket field id"
        if (
            mapping.helpdesk == "freshdesk"
            and field is not None
            and not str(field).startswith("cf_")
        ):
            yield (*where, "ticket_field"), "expected a Freshdesk custom field name (cf_...)"
        if due.key in written:
            yield (
                (*where, "native" if due.native is not None else "ticket_field"),
                f"{due.key!r} is already written by results.due.{written[due.key]}: "
                "one destination, one due instant",
            )
        written.setdefault(due.key, index)
        if (
            mapping.helpdesk == "freshdesk"
            and due.ticket_field is not None
            and due.format == "date"
        ):
            yield (*where, "format"), "write Freshdesk dues to the native fr_due_by / due_by"
    if mapping.results.priority_values is not None:
        known = ("low", "normal", "high", "urgent")
        missing = set(known) - set(mapping.results.priority_values)
        if missing:
            yield ("results", "priority_values"), f"missing {', '.join(sorted(missing))}"
        accepted = DEFAULT_PRIORITIES[mapping.helpdesk].values()
        for name, value in mapping.results.priority_values.items():
            if name not in known:
                yield (
                    ("results", "priority_values", name),
                    f"not a priority the contracts give (expected {', '.join(known)})",
                )
            elif isinstance(value, bool) or value not in accepted:
                yield (
                    ("results", "priority_values", name),
                    f"{value!r} is not a {mapping.helpdesk} priority "
                    f"(expected one of {', '.join(map(repr, accepted))})",
                )


# --- reading facts ---------------------------------------------------------------------------


class WireView(Protocol):
    """One ticket and its customer as a helpdesk gives them, read by source kind."""

    @property
    def ticket_id(self) -> str:
        """The ticket id as text."""
        ...

    @property
    def created_at(self) -> datetime:
        """When the ticket was created (aware)."""
        ...

    @property
    def status(self) -> Status:
        """The ticket status in the engine's words (a custom status: its helpdesk category)."""
        ...

    @property
    def status_key(self) -> str:
        """The helpdesk's own status, as the mapping's `facts.statuses` names it."""
        ...

    @property
    def status_since(self) -> datetime | None:
        """When the ticket entered its present status, as the helpdesk says (None: unknown)."""
        ...

    @property
    def tags(self) -> Sequence[str]:
        """The ticket's tags."""
        ...

    def ticket_field(self, key: int | str) -> Any:
        """A custom ticket field's value (None when absent)."""
        ...

    def customer_field(self, key: str) -> Any:
        """A custom field of the ticket's organization or company (None when absent)."""
        ...

    def ticket_attribute(self, name: str) -> Any:
        """A native ticket attribute (None when absent)."""
        ...

    def customer_attribute(self, name: str) -> Any:
        """A native organization or company attribute (None when absent)."""
        ...

    def event(self, name: str) -> Any:
        """A metric or stats instant (None when absent)."""
        ...


class _Unreadable(ValueError):
    pass


def _getter(source: Source) -> Callable[[WireView], Any]:
    """A function reading the source's raw value from a view, chosen once per source."""
    kind, key = source.kind, source.key
    if kind == "static":
        return lambda view: key
    if kind == "tag":
        return lambda view: key in view.tags
    if kind == "tag_prefix":
        prefix = str(key)
        size = len(prefix)
        return lambda view: next((t[size:] for t in view.tags if t.startswith(prefix)), None)
    reader = KINDS["zendesk"].get(kind) or KINDS["freshdesk"][kind]
    if reader == "ticket_field":
        return lambda view: view.ticket_field(key)  # type: ignore[arg-type]
    if reader == "customer_field":
        return lambda view: view.customer_field(str(key))
    if reader == "ticket_attribute":
        return lambda view: view.ticket_attribute(str(key))
    if reader == "customer_attribute":
        return lambda view: view.customer_attribute(str(key))
    return lambda view: view.event(str(key))


def _present(value: Any) -> bool:
    return value is not None and value not in ("", [])


def _text(value: Any, source: Source) -> str | None:
    if not _present(value):
        value = source.default
        if not _present(value):
            return None
    if isinstance(value, list):
        raise _Unreadable(f"expected one value, got the list {value!r}")
    text = value.strip() if isinstance(value, str) else str(value)
    if source.prefix is not None:
        if not text.startswith(source.prefix):
            raise _Unreadable(f"expected a value starting with {source.prefix!r}, got {text!r}")
        text = text[len(source.prefix) :]
    if source.values is not None:
        if text not in source.values:
            known = ", ".join(sorted(source.values))
            raise _Unreadable(f"{text!r} is not in its values table (known: {known})")
        return str(source.values[text])
    return text


def _integer(value: Any, source: Source) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    text = _text(value, source)
    if text is None:
        return None
    try:
        number = float(text)
    except ValueError:
        raise _Unreadable(f"expected a whole number, got {text!r}") from None
    if not number.is_integer() or number < 0:
        raise _Unreadable(f"expected a whole number, got {text!r}")
    return int(number)


_TRUE = frozenset({"true", "yes", "1", "on", "y"})
_FALSE = frozenset({"false", "no", "0", "off", "n"})


def _boolean(value: Any, source: Source) -> bool | None:
    if isinstance(value, bool):
        return value
    text = _text(value, source)
    if text is None:
        return None
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise _Unreadable(f"expected yes or no, got {text!r}")


def _instant(value: Any, source: Source) -> datetime | None:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise _Unreadable(f"expected an instant with a time zone, got {value.isoformat()}")
        return value
    text = _text(value, source)
    if text is None:
        return None
    try:
        return parse_instant(text)
    except ValueError as exc:
        raise _Unreadable(str(exc)) from None


def _date(value: Any, source: Source) -> date | None:
    text = _text(value, source)
    if text is None:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise _Unreadable(f"expected a date YYYY-MM-DD, got {text!r}") from None


def _list(value: Any, source: Source) -> list[str] | None:
    if not _present(value):
        value = source.default
        if not _present(value):
            return None
    items = value if isinstance(value, list) else str(value).split(source.split or ",")
    out = [str(item).strip() for item in items]
    if source.prefix is not None:
        out = [item.removeprefix(source.prefix) for item in out]
    if source.values is not None:
        unknown = [item for item in out if item and item not in source.values]
        if unknown:
            raise _Unreadable(f"{unknown[0]!r} is not in its values table")
        out = [str(source.values[item]) for item in out if item]
    return [item for item in out if item]


Convert = Callable[[Any, Source], Any]


@dataclass(frozen=True, slots=True)
class _Field:
    """One fact to read: its place in TicketFacts, its source, how to read and convert it."""

    path: str
    source: Source
    get: Callable[[WireView], Any]
    convert: Convert

    def read(self, view: WireView) -> Any:
        # Any value the helpdesk sends may be nonsense (an instant in year 1, a reply time of
        # a billion minutes): whatever conversion refuses, the ticket is unmapped, not the
        # sync stopped.
        try:
            return self.convert(self.get(view), self.source)
        except (ValueError, OverflowError) as exc:
            raise UnmappedTicket(
                view.ticket_id, f"facts.{self.path} ({self.source.describe()}): {exc}"
            ) from None


def _field(path: str, source: Source | None, convert: Convert) -> _Field | None:
    return None if source is None else _Field(path, source, _getter(source), convert)


@dataclass(frozen=True, slots=True)
class _FactReader:
    """A mapping turned into readers once, so that each ticket costs only the reads."""

    contract: _Field
    top: tuple[tuple[str, _Field], ...]
    customer: tuple[tuple[str, _Field], ...]
    events: tuple[tuple[str, _Field], ...]
    quantities: tuple[tuple[str, _Field], ...]
    flags: tuple[tuple[str, _Field], ...]


_TOP: dict[str, Convert] = {
    "customer": _text,
    "plan": _text,
    "severity": _text,
    "severity_override": _text,
    "category": _text,
    "product": _text,
    "region": _text,
}
_CUSTOMER: dict[str, Convert] = {
    "seats": _integer,
    "subscription_start": _date,
    "subscription_kind": _text,
    "active": _boolean,
    "timezone": _text,
    "offices": _list,
}


def _compile(mapping: HelpdeskMapping) -> _FactReader:
    facts = mapping.facts

    def fields(
        prefix: str, sources: dict[str, Source | None], converts: dict[str, Convert] | Convert
    ) -> tuple[tuple[str, _Field], ...]:
        out = []
        for name, source in sources.items():
            convert = converts[name] if isinstance(converts, dict) else converts
            if (field := _field(f"{prefix}{name}", source, convert)) is not None:
                out.append((name, field))
        return tuple(out)

    contract = _field("contract", facts.contract, _text)
    assert contract is not None  # the schema requires it
    return _FactReader(
        contract=contract,
        top=fields("", {name: getattr(facts, name) for name in _TOP}, _TOP),
        customer=fields(
            "customer_facts.",
            {name: getattr(facts.customer_facts, name) for name in _CUSTOMER},
            _CUSTOMER,
        ),
        events=fields(
            "events.",
            {name: getattr(facts.events, name) for name in EventSources.model_fields},
            _instant,
        ),
        quantities=fields("quantities.", dict(facts.quantities), _integer),
        flags=fields("flags.", dict(facts.flags), _boolean),
    )


# The years the engine's calendars cover (with a year of margin for due instants): a ticket
# dated outside them cannot be decided.
_EARLIEST = datetime(FIRST_YEAR + 1, 1, 1, tzinfo=UTC)
_LATEST = datetime(LAST_YEAR - 1, 1, 1, tzinfo=UTC)


def _check_supported(ticket_id: str, what: str, instant: datetime | None) -> None:
    if instant is not None and not _EARLIEST <= instant < _LATEST:
        raise UnmappedTicket(
            ticket_id,
            f"{what}: {instant.isoformat()} is outside the years the SLA calendars cover "
            f"({_EARLIEST.year}-{_LATEST.year - 1})",
        )


def read_facts(view: WireView, mapping: HelpdeskMapping) -> TicketFacts:
    """The engine's facts for one ticket; `UnmappedTicket` names the fact that cannot be read."""
    reader = mapping.fact_reader
    ticket_id = view.ticket_id
    _check_supported(ticket_id, "created_at", view.created_at)
    contract = reader.contract.read(view)
    if contract is None:
        raise UnmappedTicket(
            ticket_id, f"no contract: facts.contract ({reader.contract.source.describe()}) is empty"
        )
    customer = {name: field.read(view) for name, field in reader.customer}
    if customer.get("active") is None:
        customer.pop("active", None)
    quantities = {
        name: number
        for name, field in reader.quantities
        if (number := field.read(view)) is not None
    }
    flags = {name: flag for name, field in reader.flags if (flag := field.read(view)) is not None}
    events = {name: field.read(view) for name, field in reader.events}
    for name, instant in events.items():
        _check_supported(ticket_id, f"facts.events.{name}", instant)
    try:
        return TicketFacts(
            id=ticket_id,
            created_at=view.created_at,
            contract=contract,
            status=mapping.facts.statuses.get(view.status_key, view.status),
            quantities=quantities,
            flags=flags,
            customer_facts=CustomerFacts(**customer),
            events=Events(**events),
            **{name: field.read(view) for name, field in reader.top},
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(map(str, first["loc"]))
        raise UnmappedTicket(ticket_id, f"{path}: {validation_message(first)}") from None


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DueValue:
    """What one due destination should hold: an instant (None: nothing to write) as text."""

    destination: DueDestination
    due: datetime | None
    text: str | None


@dataclass(frozen=True, slots=True)
class Changes:
    """Priority (None: leave it) and tags to add and remove on one ticket."""

    priority: Scalar | None
    add: tuple[str, ...]
    remove: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DesiredResults:
    """What a ticket should show for one decision, before diffing with the ticket as it is."""

    due: tuple[DueValue, ...]
    priority: Scalar | None
    tags: tuple[str, ...]
    owned_tags: frozenset[str]
    note: str | None
    note_fingerprint: str | None
    severity_tag: str | None = None
    corrected_tag: str = "sla_priority_corrected"
    # The helpdesk's own statuses the mapping puts in `pending` (waiting on the customer):
    # where a helpdesk stops its own SLA timer and refuses due dates (Freshdesk).
    waiting_statuses: frozenset[str] = frozenset()
    # (the summary field, its text) where the mapping names one.
    summary: tuple[str, str] | None = None

    def priority_correction(
        self, current: Scalar | None, tags: Iterable[str]
    ) -> tuple[Scalar | None, list[str]]:
        """The priority to set (None: leave it) and the tags that record the correction.

        A ticket whose priority differs from its severity's is corrected once and tagged. An
        agent who then sets another priority is not overruled, until the severity itself
        changes (the ticket no longer carries the tag of the severity now in force).
        """
        if self.priority is None or current == self.priority:
            return None, []
        have = set(tags)
        severity_changed = self.severity_tag is not None and self.severity_tag not in have
        if self.corrected_tag in have and not severity_changed:
            return None, []
        return self.priority, [] if self.corrected_tag in have else [self.corrected_tag]

    def changes(self, priority: Scalar | None, tags: Sequence[str]) -> Changes:
        """The priority and tag changes a ticket showing `priority` and `tags` needs."""
        new_priority, corrected = self.priority_correction(priority, tags)
        return Changes(
            priority=new_priority,
            add=(*self.tags_to_add(tags), *corrected),
            remove=tuple(self.tags_to_remove(tags)),
        )

    def note_to_post(self, posted: str | None) -> str | None:
        """The note, unless the one last posted (fingerprint `posted`) has the same text."""
        return self.note if self.note is not None and self.note_fingerprint != posted else None

    def tags_to_add(self, current: Iterable[str]) -> list[str]:
        """Our tags the ticket lacks, in decision order."""
        have = set(current)
        return [tag for tag in self.tags if tag not in have]

    def tags_to_remove(self, current: Iterable[str]) -> list[str]:
        """Tags we own that the ticket carries but the decision no longer has."""
        keep = set(self.tags)
        return [tag for tag in current if tag in self.owned_tags and tag not in keep]


def note_fingerprint(note: str) -> str:
    """A short stable fingerprint of a note's text, to post each distinct note once."""
    return hashlib.sha256(note.encode("utf-8")).hexdigest()[:16]


def find_note_fingerprint(body: str) -> str | None:
    """The fingerprint that ends `body` if it is a note we posted; a mark elsewhere is not ours.

    Read from the ticket's notes to recover after a crash, or with a state that lost them.
    """
    match = _NOTE_MARK_RE.search(body)
    return match.group(1) if match else None


def desired_results(
    decision: Decision,
    mapping: HelpdeskMapping,
    owned_tags: frozenset[str],
    contract: Contract | None = None,
) -> DesiredResults:
    """What the ticket should show for `decision`, in the helpdesk's own values.

    `owned_tags` are the tags sla-connector may remove (every loaded contract's); `contract` is
    the decision's, when known, for its tag names.
    """
    results = mapping.results
    zone = decision.local_zone
    due_values = []
    for destination in results.due:
        target = next(
            (decision.targets[name] for name in destination.targets if name in decision.targets),
            None,
        )
        due = None if target is None or target.best_effort else target.due
        text = None
        if target is not None and target.owed_seconds is not None:
            # Paused: no due instant, and a field that says so (a date field is left empty).
            if destination.format == "instant":
                text = f"paused, {format_span(target.owed_seconds)} still owed"
        elif due is not None:
            if destination.format == "date":
                text = _local_date(due, zone).isoformat()
            else:
                text = format_instant(due)
        due_values.append(DueValue(destination, due, text))
    priority = None
    if results.priority and decision.priority is not None:
        priority = mapping.priorities.get(decision.priority)
    note = fingerprint = None
    if results.note and decision.note:
        fingerprint = note_fingerprint(decision.note)
        note = f"{decision.note}\n\n{NOTE_MARK}{fingerprint}"
    tag_names = contract.spec.tags if contract is not None else None
    severity_tag = None
    if tag_names is not None and decision.severity is not None:
        severity_tag = tag_names.severity.format(severity=decision.severity)
    summary = None
    # An unmapped ticket gets no SLA result, the summary included: its app says "unmapped"
    # from the tag, and the note says why.
    if results.summary is not None and decision.problem is None:
        spec = contract.spec if contract is not None else None
        summary = (results.summary.key, summary_text(decision, spec))
    return DesiredResults(
        due=tuple(due_values),
        summary=summary,
        priority=priority,
        tags=tuple(decision.tags) if results.tags else (),
        owned_tags=owned_tags if results.tags else frozenset(),
        note=note,
        note_fingerprint=fingerprint,
        severity_tag=severity_tag,
        corrected_tag=tag_names.priority_corrected if tag_names else "sla_priority_corrected",
        waiting_statuses=mapping.waiting_statuses,
    )


def _local_date(instant: datetime, zone: str | None) -> date:
    return instant.astimezone(UTC if zone is None else load_zone(zone)).date()
