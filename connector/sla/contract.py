"""Contract files: their schema, their checks, and the `Contract` the engine runs.

A contract file (`mappings/contracts/NAME.yaml`) says everything about one vendor's terms:
calendars, plans, severities, targets and their durations, priorities and tag names. A new
vendor needs a new file, never new code. `Contract.from_data` validates a parsed file and
raises `ContractInvalid` with one `(key path, message)` per problem; the loader in
`connector.mappingfiles` adds the file name and line numbers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cached_property, lru_cache
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)

from connector.errors import validation_problems
from connector.sla.calendar import (
    WEEKDAYS,
    BusinessCalendar,
    HolidayRule,
    Office,
    WeeklyHours,
    holiday_names,
    zone,
)
from connector.sla.durations import (
    BusinessDays,
    BusinessHours,
    Duration,
    Hours,
    NextDayAt,
    parse_duration,
)
from connector.sla.holidaydata import canonical, subdivisions
from connector.sla.model import Entitlement, Priority, TicketFacts

__all__ = [
    "CUSTOMER_ZONE",
    "Contract",
    "ContractInvalid",
    "ContractSpec",
    "Steps",
    "TargetSpec",
]

CUSTOMER_ZONE = "customer"
EventName = Literal["first_agent_reply_at", "workaround_at", "solved_at", "delivered_at"]
# The statuses a target may pause on: waiting on the customer, or on someone else.
PausingStatus = Literal["pending", "on_hold"]
# The longest promise a contract may make: a year. Anything longer is a typo (a missing unit,
# a stray digit) that would only fail later, when a ticket's due instant leaves the calendar.
MAX_DURATION_DAYS = 366


def _within_a_year(duration: Duration) -> Duration:
    if isinstance(duration, BusinessDays):
        too_long = duration.days > MAX_DURATION_DAYS
    elif isinstance(duration, BusinessHours | Hours):
        too_long = duration.seconds > MAX_DURATION_DAYS * 86_400
    else:
        too_long = False
    if too_long:
        raise ValueError(f"{duration} is longer than the longest allowed, {MAX_DURATION_DAYS} days")
    return duration


DurationField = Annotated[Duration, BeforeValidator(parse_duration), AfterValidator(_within_a_year)]
KeyPath = tuple[str | int, ...]


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class HolidaysSpec(_Spec):
    """Whole local days an office is closed."""

    country: str | None = None
    subdivision: str | None = None
    only: list[str] | None = None
    observed: bool = True
    closed: list[date] = Field(default_factory=list)


class CalendarSpec(_Spec):
    """One office: zone (or `customer` for the customer's own zone), hours, holidays."""

    label: str | None = None
    zone: str
    hours: dict[str, list[str]]
    holidays: HolidaysSpec = Field(default_factory=HolidaysSpec)


class CalendarChoice(_Spec):
    """How a ticket picks its calendar: one fixed, the customer's offices, or its region."""

    by: Literal["fixed", "offices", "region"]
    calendar: str | None = None
    default: str | None = None
    default_tag: str = "sla_defaulted"
    regions: dict[str, str] = Field(default_factory=dict)


class ExpediteWindow(_Spec):
    """When an expedite request is honoured: from `opens` to `closes` each week, in `zone`."""

    zone: str = "UTC"
    opens: str = "mon 00:00"
    closes: str = "fri 24:00"


class ExpediteSpec(_Spec):
    """A faster variant of a target, asked for by a ticket flag."""

    flag: str = "expedite"
    duration: DurationField
    window: ExpediteWindow | None = None
    unavailable_tag: str = "expedite_unavailable"
    priority: Priority | None = None

    def asked(self, facts: TicketFacts) -> bool:
        """True when the ticket asks for the expedited variant."""
        return bool(facts.flags.get(self.flag))

    def honoured(self, facts: TicketFacts) -> bool:
        """True when the ticket asks for it and was created inside the weekly window."""
        if not self.asked(facts):
            return False
        window = self.window
        if window is None:
            return True
        local = facts.created_at.astimezone(zone(window.zone))
        in_week = local.weekday() * 86_400 + local.hour * 3600 + local.minute * 60 + local.second
        return parse_week_instant(window.opens) <= in_week < parse_week_instant(window.closes)


class CapacityTier(_Spec):
    """Expedited units of a day: `limit` of them (none: while the day's limit lasts) at a pace."""

    limit: int | None = Field(default=None, ge=0)
    duration: DurationField


class CapacitySpec(_Spec):
    """A daily guarantee: `limit` units a customer-local day get the target's due instant.

    Units are the ticket quantity `quantity`. Expedited units use the `expedited` tiers in
    order and count towards `limit` too; units past `limit` have no guaranteed due.
    """

    quantity: str = "images"
    limit: int = Field(ge=0)
    expedited: list[CapacityTier] = Field(default_factory=list)
    exceeded_tag: str = "capacity_exceeded"


class WarningSpec(_Spec):
    """A warning point: a share of a target's time (`at: 0.9`), with its own tag (default:
    the contract's `tags.warning` with `{percent}`, e.g. `sla_warn_90`)."""

    at: float = Field(gt=0, lt=1)
    tag: str | None = None


class EscalationSpec(_Spec):
    """An escalation level: so long past a breached target's due instant (`after: 4
    business_hours`, or plain `hours`), with its own tag (default: the contract's
    `tags.escalation` with `{level}`, e.g. `sla_escalation_2`)."""

    after: DurationField
    tag: str | None = None


def _warning(value: object) -> object:
    """`0.9` is short for `{at: 0.9}`."""
    return (
        {"at": value} if isinstance(value, int | float) and not isinstance(value, bool) else value
    )


def _escalation(value: object) -> object:
    """`4 business_hours` is short for `{after: 4 business_hours}`."""
    return {"after": value} if isinstance(value, str) else value


WarningField = Annotated[WarningSpec, BeforeValidator(_warning)]
EscalationField = Annotated[EscalationSpec, BeforeValidator(_escalation)]


class TargetSpec(_Spec):
    """One promise of the contract: how long, on which calendar, and what keeps it."""

    label: str | None = None
    achieved_by: list[EventName] = Field(min_length=1)
    categories: list[str] | None = None
    recurring: bool = False
    calendar: str | None = None
    duration: DurationField | None = None
    by_severity: dict[str, DurationField] | None = None
    by_plan: dict[str, dict[str, DurationField]] | None = None
    expedite: ExpediteSpec | None = None
    capacity: CapacitySpec | None = None
    # The status categories in which this target's clock stops (docs/pausing.md).
    paused_by: list[PausingStatus] = Field(default_factory=list)
    # This target's own warning points and escalation levels (else the contract's).
    warnings: list[WarningField] | None = None
    escalations: list[EscalationField] | None = None


class SeatTier(_Spec):
    """A limit for customers with at most `up_to` seats (no `up_to`: any number)."""

    up_to: int | None = Field(default=None, ge=0)
    limit: int = Field(ge=0)


class QuotaEffect(_Spec):
    """What a quota does to a ticket: its entitlement, a tag, a note, best effort or scope."""

    entitlement: Entitlement | None = None
    tag: str | None = None
    note: str | None = None
    best_effort: bool = False
    out_of_scope: bool = False


class Eligibility(_Spec):
    """Which customers a quota is open to; the others are treated as over it."""

    active: bool = False
    excluded_kinds: list[str] = Field(default_factory=list)

    def allows(self, facts: TicketFacts) -> bool:
        """True when the ticket's customer may use the quota."""
        customer = facts.customer_facts
        if self.active and not customer.active:
            return False
        return (customer.subscription_kind or "").lower() not in self.excluded_kinds


class QuotaSpec(_Spec):
    """So many tickets (or so much of a quantity) per customer per period.

    `applies_to` says which tickets consume it (in or out of the contract's scope),
    `categories` narrows that further; `within` and `over` are the effects on the tickets
    that fit and on those that do not (or whose customer is not `eligible`).
    """

    label: str | None = None
    period: Literal["month", "contract_year", "day", "lifetime"]
    applies_to: Literal["in_scope", "out_of_scope"] = "in_scope"
    categories: list[str] | None = None
    counts: str = "tickets"
    limit: int | None = Field(default=None, ge=0)
    by_plan: dict[str, int] | None = None
    by_seats: list[SeatTier] | None = None
    eligible: Eligibility = Field(default_factory=Eligibility)
    within: QuotaEffect = Field(default_factory=QuotaEffect)
    over: QuotaEffect = Field(
        default_factory=lambda: QuotaEffect(
            entitlement="over_quota", tag="sla_quota_exceeded", best_effort=True
        )
    )

    def concerns(self, facts: TicketFacts, in_scope: bool) -> bool:
        """True when the ticket is one this quota counts (or refuses)."""
        if in_scope != (self.applies_to == "in_scope"):
            return False
        return self.categories is None or facts.category in self.categories

    def limit_for(self, facts: TicketFacts, contract: Contract) -> int | None:
        """The ticket's limit (None: the quota cannot apply, e.g. unknown plan or seats)."""
        if self.limit is not None:
            return self.limit
        if self.by_plan is not None:
            return self.by_plan.get(facts.plan or contract.spec.default_plan or "")
        seats = facts.customer_facts.seats
        if self.by_seats is None or seats is None:
            return None
        for tier in self.by_seats:
            if tier.up_to is None or seats <= tier.up_to:
                return tier.limit
        return None


class ScopeSpec(_Spec):
    """Which tickets the contract covers: categories in, products out.

    Tickets outside it are handled by `out_of_scope` quotas (grace calls) or get
    `otherwise`; customers whose subscription is inactive get `inactive` for every ticket the
    scope would cover.
    """

    categories: list[str] | None = None
    excluded_products: list[str] = Field(default_factory=list)
    otherwise: QuotaEffect = Field(
        default_factory=lambda: QuotaEffect(entitlement="pay_per_incident")
    )
    inactive: QuotaEffect | None = None

    def covers(self, facts: TicketFacts) -> bool:
        """True when the ticket's category and product are within the contract."""
        if self.categories is not None and facts.category not in self.categories:
            return False
        return (facts.product or "").lower() not in self.excluded_products


class SeveritySpec(_Spec):
    """A severity the contract knows and the helpdesk priority it maps to."""

    label: str | None = None
    priority: Priority


class TagSpec(_Spec):
    """Tag names; `{contract}`, `{plan}` and `{severity}` are filled in."""

    contract: str = "sla_{contract}"
    plan: str = "sla_plan_{plan}"
    severity: str = "sla_{severity}"
    at_risk: str = "sla_at_risk"
    breached: str = "sla_breached"
    paused: str = "sla_paused"
    unmapped: str = "sla_unmapped"
    # Warning points and escalation levels without a tag of their own (`{percent}`: 90 for
    # 0.9; `{level}`: 1 for the first level).
    warning: str = "sla_warn_{percent}"
    escalation: str = "sla_escalation_{level}"
    # Put by the writer, never removed: it records that the priority was corrected once.
    priority_corrected: str = "sla_priority_corrected"


class ContractSpec(_Spec):
    """A whole contract file."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    title: str
    seed: str | None = None
    zone: str
    risk_threshold: float = Field(default=0.75, gt=0, le=1)
    # Several warning points instead of the one at-risk threshold, and escalation levels after
    # a breach (contracts.md §4); a target may name its own.
    warnings: list[WarningField] | None = None
    escalations: list[EscalationField] = Field(default_factory=list)
    calendars: dict[str, CalendarSpec] = Field(default_factory=dict)
    calendar_choice: CalendarChoice | None = None
    plans: list[str] = Field(default_factory=list)
    default_plan: str | None = None
    severities: dict[str, SeveritySpec] = Field(default_factory=dict)
    default_severity: str | None = None
    priority: Priority = "normal"
    targets: dict[str, TargetSpec] = Field(default_factory=dict)
    scope: ScopeSpec | None = None
    quotas: dict[str, QuotaSpec] = Field(default_factory=dict)
    tags: TagSpec = Field(default_factory=TagSpec)


@dataclass(frozen=True)
class Steps:
    """A target's steps between running and breached and after: warning points (a share of
    its time, the tag) in time order, and escalation levels (time past due, the tag)."""

    warnings: tuple[tuple[float, str], ...]
    escalations: tuple[tuple[Duration, str], ...]


def _percent(share: float) -> str:
    """90 for 0.9, 33.3 for 0.333: as many digits as the share has, no more."""
    return f"{share * 100:.4f}".rstrip("0").rstrip(".")


class ContractInvalid(ValueError):
    """A contract file's content is wrong; `problems` holds `(key path, message)` pairs."""

    def __init__(self, problems: list[tuple[KeyPath, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{'.'.join(map(str, k))}: {m}" for k, m in problems))


class Contract:
    """A validated contract, ready for the engine. Build with `Contract.from_data`."""

    def __init__(self, spec: ContractSpec, offices: dict[str, _OfficeTemplate]) -> None:
        self.spec = spec
        self.name = spec.name
        self.zone = zone(spec.zone)
        self._offices = offices
        self._calendars: dict[tuple[tuple[str, ...], str | None], BusinessCalendar] = {}
        self._needs_zone: dict[tuple[str, ...], bool] = {}

    def __repr__(self) -> str:
        return f"Contract({self.name!r})"

    @classmethod
    def from_data(cls, data: Any) -> Contract:
        """Validate a parsed contract file; raise `ContractInvalid` listing every problem."""
        try:
            spec = ContractSpec.model_validate(data)
        except ValidationError as exc:
            raise ContractInvalid(validation_problems(exc, ContractSpec)) from None
        problems: list[tuple[KeyPath, str]] = []
        offices = {
            name: office
            for name, cal in spec.calendars.items()
            if (office := _office_template(name, cal, ("calendars", name), problems))
        }
        problems.extend(_check_references(spec, offices))
        problems.extend(_check_all_steps(spec))
        if problems:
            raise ContractInvalid(problems)
        return cls(spec, offices)

    def steps(self, target: str) -> Steps | None:
        """The target's warning points and escalation levels with their tags; None when it
        has only the contract's one at-risk threshold (`risk_threshold`, tag `at_risk`)."""
        return self._steps.get(target)

    @cached_property
    def _steps(self) -> dict[str, Steps]:
        spec, tags = self.spec, self.spec.tags
        found = {}
        for name, target in spec.targets.items():
            if target.capacity is not None:  # a promise about a day's share: no steps
                continue
            warnings = target.warnings if target.warnings is not None else spec.warnings
            escalations = target.escalations if target.escalations is not None else spec.escalations
            if warnings is None and not escalations:
                continue
            points = (
                tuple(
                    (w.at, w.tag or tags.warning.format(percent=_percent(w.at))) for w in warnings
                )
                if warnings
                else ((spec.risk_threshold, tags.at_risk),)
            )
            levels = tuple(
                (e.after, e.tag or tags.escalation.format(level=number))
                for number, e in enumerate(escalations, start=1)
            )
            found[name] = Steps(points, levels)
        return found

    @cached_property
    def needs_ledger(self) -> bool:
        """True when a decision depends on the customer's other tickets."""
        spec = self.spec
        return bool(spec.quotas or spec.scope) or any(t.capacity for t in spec.targets.values())

    @cached_property
    def owned_tags(self) -> frozenset[str]:
        """Every tag a decision under this contract can carry.

        The writer removes a stale tag only when it is one of these (of any loaded contract),
        so an agent's own tags are never touched.
        """
        spec = self.spec
        tags = spec.tags
        owned = {
            tags.contract.format(contract=self.name),
            tags.at_risk,
            tags.breached,
            tags.unmapped,
        }
        if any(target.paused_by for target in spec.targets.values()):
            owned.add(tags.paused)
        for steps in self._steps.values():
            owned.update(tag for _, tag in steps.warnings)
            owned.update(tag for _, tag in steps.escalations)
        owned.update(tags.plan.format(plan=plan) for plan in spec.plans)
        owned.update(tags.severity.format(severity=severity) for severity in spec.severities)
        choice = spec.calendar_choice
        if (default_tag := getattr(choice, "default_tag", None)) is not None:
            owned.add(default_tag)
        for target in spec.targets.values():
            if target.expedite is not None:
                owned.add(target.expedite.unavailable_tag)
            if target.capacity is not None:
                owned.add(target.capacity.exceeded_tag)
        effects = [
            effect for quota in spec.quotas.values() for effect in (quota.within, quota.over)
        ]
        if spec.scope is not None:
            effects.extend(
                effect
                for effect in (spec.scope.otherwise, spec.scope.inactive)
                if isinstance(effect, QuotaEffect)
            )
        owned.update(effect.tag for effect in effects if effect.tag)
        return frozenset(owned)

    @cached_property
    def office_names(self) -> tuple[str, ...]:
        """Every calendar the contract defines."""
        return tuple(self.spec.calendars)

    def needs_customer_zone(self, names: tuple[str, ...]) -> bool:
        """True when one of the named offices keeps the customer's own time zone."""
        needs = self._needs_zone.get(names)
        if needs is None:
            needs = self._needs_zone[names] = any(self._offices[n].zone is None for n in names)
        return needs

    def calendar(self, names: tuple[str, ...], customer_zone: str | None) -> BusinessCalendar:
        """The (cached) calendar that unions the named offices.

        `customer_zone` fills in offices whose zone is `customer`.
        """
        key = (names, customer_zone if self.needs_customer_zone(names) else None)
        calendar = self._calendars.get(key)
        if calendar is None:
            offices = [self._offices[n].office(customer_zone) for n in names]
            label = " + ".join(self._offices[n].label for n in names)
            calendar = self._calendars[key] = BusinessCalendar(offices, label)
        return calendar


class _OfficeTemplate:
    """An office whose zone may be the customer's, resolved per ticket."""

    def __init__(
        self,
        name: str,
        label: str,
        zone_: ZoneInfo | None,
        hours: WeeklyHours,
        holidays: HolidayRule,
    ) -> None:
        self.name, self.label, self.zone = name, label, zone_
        self.hours, self.holidays = hours, holidays

    def office(self, customer_zone: str | None) -> Office:
        chosen = self.zone or zone(customer_zone or "UTC")
        return Office(self.name, chosen, self.hours, self.holidays)


def _office_template(
    name: str, spec: CalendarSpec, path: KeyPath, problems: list[tuple[KeyPath, str]]
) -> _OfficeTemplate | None:
    before = len(problems)
    zone_: ZoneInfo | None = None
    if spec.zone != CUSTOMER_ZONE:
        zone_ = _zone(spec.zone, (*path, "zone"), problems)
    hours: WeeklyHours | None = None
    try:
        hours = WeeklyHours.parse(spec.hours)
    except ValueError as exc:
        problems.append(((*path, "hours"), str(exc)))
    rule = _holiday_rule(spec.holidays, (*path, "holidays"), problems)
    if len(problems) > before or hours is None:
        return None
    return _OfficeTemplate(name, spec.label or name, zone_, hours, rule)


def _holiday_rule(
    spec: HolidaysSpec, path: KeyPath, problems: list[tuple[KeyPath, str]]
) -> HolidayRule:
    rule = HolidayRule(
        country=spec.country,
        subdivision=spec.subdivision,
        names=frozenset(spec.only) if spec.only is not None else None,
        observed=spec.observed,
        closed=frozenset(spec.closed),
    )
    if spec.country is None:
        if spec.subdivision or spec.only:
            problems.append((path, "subdivision and only need a country"))
        return rule
    try:
        known_subdivisions = subdivisions(spec.country)
    except NotImplementedError:
        problems.append(
            (
                (*path, "country"),
                f"unknown holiday country {spec.country!r} "
                "(expected an ISO 3166 code the holidays package knows, e.g. CH)",
            )
        )
        return rule
    if spec.subdivision is not None and spec.subdivision not in known_subdivisions:
        choices = ", ".join(known_subdivisions) or "none"
        problems.append(
            (
                (*path, "subdivision"),
                f"unknown subdivision {spec.subdivision!r} of "
                f"{spec.country} (expected one of {choices})",
            )
        )
        return rule
    if spec.only:
        known = holiday_names(spec.country, spec.subdivision, range(2020, 2031))
        for i, name in enumerate(spec.only):
            if canonical(name) not in known:
                problems.append(
                    (
                        (*path, "only", i),
                        f"no holiday named {name!r} in {spec.country} "
                        f"(known: {', '.join(sorted(known))})",
                    )
                )
    return rule


def _zone(name: str, path: KeyPath, problems: list[tuple[KeyPath, str]]) -> ZoneInfo | None:
    try:
        return zone(name)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append((path, f"unknown IANA time zone {name!r}"))
        return None


def _check_references(
    spec: ContractSpec, offices: dict[str, _OfficeTemplate]
) -> list[tuple[KeyPath, str]]:
    """Cross-references: calendars named, tables complete, units the calendars allow."""
    problems: list[tuple[KeyPath, str]] = []
    _zone(spec.zone, ("zone",), problems)
    known_calendars = set(spec.calendars)

    def need_calendar(name: str | None, path: KeyPath) -> None:
        if name is not None and name not in known_calendars:
            problems.append(
                (path, f"unknown calendar {name!r} (defined: {', '.join(sorted(known_calendars))})")
            )

    choice = spec.calendar_choice
    if choice is None and spec.targets:
        problems.append((("calendar_choice",), "required when the contract has targets"))
    if choice is not None:
        if choice.by == "fixed" and choice.calendar is None:
            problems.append((("calendar_choice", "calendar"), "required when by is fixed"))
        if choice.by == "region" and not choice.regions:
            problems.append((("calendar_choice", "regions"), "required when by is region"))
        need_calendar(choice.calendar, ("calendar_choice", "calendar"))
        need_calendar(choice.default, ("calendar_choice", "default"))
        for region, name in choice.regions.items():
            need_calendar(name, ("calendar_choice", "regions", region))

    if spec.default_plan is not None and spec.default_plan not in spec.plans:
        problems.append((("default_plan",), f"{spec.default_plan!r} is not one of plans"))
    if spec.default_severity is not None and spec.default_severity not in spec.severities:
        problems.append((("default_severity",), f"{spec.default_severity!r} is not a severity"))

    severities, plans = list(spec.severities), spec.plans
    for name, target in spec.targets.items():
        path: KeyPath = ("targets", name)
        need_calendar(target.calendar, (*path, "calendar"))
        given = [k for k in ("duration", "by_severity", "by_plan") if getattr(target, k)]
        if len(given) != 1:
            problems.append((path, "give exactly one of duration, by_severity, by_plan"))
            continue
        if target.by_severity is not None:
            problems.extend(
                _same_keys(target.by_severity, severities, (*path, "by_severity"), "severities")
            )
        if target.by_plan is not None:
            problems.extend(_same_keys(target.by_plan, plans, (*path, "by_plan"), "plans"))
            for plan, table in target.by_plan.items():
                problems.extend(
                    _same_keys(table, severities, (*path, "by_plan", plan), "severities")
                )
        problems.extend(_check_business_days(spec, target, offices, path))
        problems.extend(_check_expedite_and_capacity(target, path))
        problems.extend(_check_pausing(target, path))
    problems.extend(_check_quotas(spec))
    for key in ("contract", "plan", "severity"):
        template = getattr(spec.tags, key)
        try:
            template.format(contract="c", plan="p", severity="s")
        except (KeyError, IndexError, ValueError):
            problems.append(
                (
                    ("tags", key),
                    f"bad tag template {template!r} "
                    "(placeholders: {contract}, {plan}, {severity})",
                )
            )
    return problems


def _check_all_steps(spec: ContractSpec) -> list[tuple[KeyPath, str]]:
    """The contract's and each target's warning points and escalation levels, their tags."""
    problems = _check_steps(spec.warnings, spec.escalations, ())
    for name, target in spec.targets.items():
        path: KeyPath = ("targets", name)
        problems.extend(_check_steps(target.warnings, target.escalations, path))
        if target.capacity is not None and (target.warnings or target.escalations):
            problems.append(
                (path, "a target with a daily capacity takes no warnings or escalations")
            )
        elif target.capacity is None:
            problems.extend(_check_step_tags(spec, target, path))
    if spec.warnings is not None and "risk_threshold" in spec.model_fields_set:
        problems.append(
            (("warnings",), "give warnings or risk_threshold, not both (one warning point)")
        )
    for key, fields in (("warning", {"percent": "90"}), ("escalation", {"level": "1"})):
        template = getattr(spec.tags, key)
        try:
            template.format(**fields)
        except (KeyError, IndexError, ValueError):
            placeholder = "{" + next(iter(fields)) + "}"
            problems.append(
                (("tags", key), f"bad tag template {template!r} (placeholder: {placeholder})")
            )
    return problems


def _check_step_tags(
    spec: ContractSpec, target: TargetSpec, path: KeyPath
) -> list[tuple[KeyPath, str]]:
    """Each step of a target has a tag of its own: the helpdesk's rules tell them apart."""
    warnings = target.warnings if target.warnings is not None else spec.warnings
    escalations = target.escalations if target.escalations is not None else spec.escalations
    tags: list[str] = []
    try:
        tags += [w.tag or spec.tags.warning.format(percent=_percent(w.at)) for w in warnings or []]
        tags += [
            e.tag or spec.tags.escalation.format(level=number)
            for number, e in enumerate(escalations or [], start=1)
        ]
    except (KeyError, IndexError, ValueError):
        return []  # a bad template: said once, under tags
    reserved = {spec.tags.breached, spec.tags.paused, spec.tags.unmapped}
    if len(set(tags)) != len(tags) or reserved & set(tags):
        return [
            (
                path,
                "each warning and escalation needs a tag of its own (give the templates "
                "{percent} and {level}, or a tag each), none of sla_breached, sla_paused, "
                f"sla_unmapped: got {', '.join(tags)}",
            )
        ]
    if any(not re.fullmatch(r"[\w:.-]+", tag) for tag in tags):
        return [(path, f"a tag is one word (letters, digits, _ - . :): got {', '.join(tags)}")]
    return []


def _check_steps(
    warnings: list[WarningSpec] | None, escalations: list[EscalationSpec] | None, path: KeyPath
) -> list[tuple[KeyPath, str]]:
    """Warning points in rising order, distinct; escalation levels of one unit, rising."""
    problems: list[tuple[KeyPath, str]] = []
    shares = [w.at for w in warnings or []]
    if shares != sorted(set(shares)):
        problems.append(
            ((*path, "warnings"), "warning points rise: each later than the one before")
        )
    levels = [e.after for e in escalations or []]
    for number, level in enumerate(levels):
        where = (*path, "escalations", number, "after")
        if not isinstance(level, BusinessHours | Hours):
            problems.append((where, "an escalation is N business_hours or N hours"))
    kinds = {type(level) for level in levels}
    if len(kinds) > 1:
        problems.append(((*path, "escalations"), "escalation levels are all of one unit"))
    elif levels and all(isinstance(level, BusinessHours | Hours) for level in levels):
        seconds = [level.seconds for level in levels]  # type: ignore[union-attr]
        if seconds != sorted(set(seconds)):
            problems.append(((*path, "escalations"), "escalation levels rise: each later"))
    elif levels and all(isinstance(level, BusinessDays) for level in levels):
        days = [level.days for level in levels]  # type: ignore[union-attr]
        if days != sorted(set(days)):
            problems.append(((*path, "escalations"), "escalation levels rise: each later"))
    return problems


def _check_expedite_and_capacity(target: TargetSpec, path: KeyPath) -> list[tuple[KeyPath, str]]:
    """An expedite window that opens before it closes; capacity tiers all reachable."""
    problems: list[tuple[KeyPath, str]] = []
    if target.expedite and target.expedite.window:
        window_path = (*path, "expedite", "window")
        _zone(target.expedite.window.zone, (*window_path, "zone"), problems)
        instants = {}
        for key in ("opens", "closes"):
            try:
                instants[key] = parse_week_instant(getattr(target.expedite.window, key))
            except ValueError as exc:
                problems.append(((*window_path, key), str(exc)))
        if len(instants) == 2 and instants["opens"] >= instants["closes"]:
            problems.append(
                (
                    (*window_path, "closes"),
                    "must come after opens in the week (Monday first): the window would "
                    "never be open",
                )
            )
    if target.capacity is not None:
        problems.extend(
            _check_tiers(target.capacity.expedited, (*path, "capacity", "expedited"), "limit")
        )
    return problems


def _check_pausing(target: TargetSpec, path: KeyPath) -> list[tuple[KeyPath, str]]:
    """`paused_by` only on targets that are an amount of time (docs/pausing.md)."""
    if not target.paused_by:
        return []
    where = (*path, "paused_by")
    if target.capacity is not None:
        return [(where, "a target with a daily capacity is a promise about a day: it never pauses")]
    if any(isinstance(d, NextDayAt) for d in _durations(target)):
        return [(where, "next_day_at is a promise about a calendar day: it never pauses")]
    return []


def _durations(target: TargetSpec) -> list[Duration]:
    """Every duration the target names, for any plan and severity."""
    durations: list[Duration] = []
    if target.duration is not None:
        durations.append(target.duration)
    durations.extend((target.by_severity or {}).values())
    for table in (target.by_plan or {}).values():
        durations.extend(table.values())
    if target.expedite is not None:
        durations.append(target.expedite.duration)
    return durations


def _check_quotas(spec: ContractSpec) -> list[tuple[KeyPath, str]]:
    """Each quota has one kind of limit, a complete plan table, an open-ended last tier."""
    problems: list[tuple[KeyPath, str]] = []
    plans = spec.plans
    for index, plan in enumerate(plans):
        if plan in plans[:index]:
            problems.append((("plans", index), f"{plan!r} is listed twice"))
    for name, quota in spec.quotas.items():
        path: KeyPath = ("quotas", name)
        given = [k for k in ("limit", "by_plan", "by_seats") if getattr(quota, k) is not None]
        if len(given) != 1:
            problems.append((path, "give exactly one of limit, by_plan, by_seats"))
        if quota.by_plan is not None:
            problems.extend(_same_keys(quota.by_plan, plans, (*path, "by_plan"), "plans"))
        problems.extend(_check_tiers(quota.by_seats or [], (*path, "by_seats"), "up_to"))
        if quota.by_seats and quota.by_seats[-1].up_to is not None:
            problems.append(
                (
                    (*path, "by_seats"),
                    "the last tier must have no up_to (it covers every larger customer)",
                )
            )
    return problems


def _check_tiers(
    tiers: Sequence[SeatTier] | Sequence[CapacityTier], path: KeyPath, bound: str
) -> list[tuple[KeyPath, str]]:
    """Tiers in increasing order, and only the last one open-ended (else some are unreachable)."""
    problems: list[tuple[KeyPath, str]] = []
    previous: int | None = None
    for index, tier in enumerate(tiers):
        value: int | None = getattr(tier, bound)
        if value is None:
            if index < len(tiers) - 1:
                problems.append(
                    (
                        (*path, index),
                        f"only the last tier may leave out {bound}: the tiers after this one "
                        "would never be reached",
                    )
                )
            continue
        if previous is not None and value <= previous and bound == "up_to":
            problems.append(
                (
                    (*path, index, bound),
                    f"{value} is not above the previous tier's {previous} "
                    "(tiers go from the smallest customers up)",
                )
            )
        previous = value
    return problems


def _same_keys(
    table: Mapping[str, object], expected: list[str], path: KeyPath, what: str
) -> list[tuple[KeyPath, str]]:
    problems: list[tuple[KeyPath, str]] = []
    for key in table:
        if key not in expected:
            problems.append(
                (
                    (*path, key),
                    f"not one of the contract's {what} ({', '.join(expected) or 'none defined'})",
                )
            )
    missing = [k for k in expected if k not in table]
    if missing:
        problems.append((path, f"missing {', '.join(missing)} (use best_effort for no target)"))
    return problems


def _check_business_days(
    spec: ContractSpec, target: TargetSpec, offices: dict[str, _OfficeTemplate], path: KeyPath
) -> list[tuple[KeyPath, str]]:
    if not any(isinstance(d, BusinessDays) for d in _durations(target)):
        return []
    names = [target.calendar] if target.calendar else list(offices)
    uneven = [n for n in names if n in offices and offices[n].hours.nominal_day_seconds is None]
    lengths = {offices[n].hours.nominal_day_seconds for n in names if n in offices}
    if uneven or len(lengths) > 1:
        return [
            (
                path,
                "business_days needs calendars whose open days all have one length "
                f"({', '.join(uneven or names)} differ)",
            )
        ]
    return []


@lru_cache(maxsize=64)
def parse_week_instant(text: str) -> int:
    """Seconds after Monday 00:00 of a `"fri 24:00"`-style weekly instant."""
    day, _, clock = text.strip().partition(" ")
    if day[:3].lower() not in WEEKDAYS:
        raise ValueError(f"bad weekly instant {text!r} (expected e.g. 'mon 00:00')")
    hours, _, minutes = clock.partition(":")
    if not (hours.isdigit() and minutes.isdigit()) or int(minutes) > 59 or int(hours) > 24:
        raise ValueError(f"bad weekly instant {text!r} (expected e.g. 'fri 24:00')")
    seconds = int(hours) * 3600 + int(minutes) * 60
    if seconds > 86_400:
        raise ValueError(f"bad weekly instant {text!r} (time past 24:00)")
    return WEEKDAYS.index(day[:3].lower()) * 86_400 + seconds
