"""`sla-connector demo`: the real sync against the built-in sandbox, on loopback.

Starts the sandbox seeded with tickets for all five contracts, syncs a helpdesk once with the
bundled example mappings and a throw-away state, then syncs again to show that a second pass
writes nothing. What it prints is a story an agent can follow: the time, then one ordinary
ticket of each contract and one ticket for each special rule of the contracts (chosen by what
their decisions show, not by ticket id), each in plain words with what was written, the tags
explained, and a count of the rest. `--verbose` adds every ticket's raw changes. With
`--keep-running` the daemon then keeps running against the sandbox until Ctrl-C.
"""

from __future__ import annotations

import argparse
import re
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from functools import partial
from pathlib import Path
from typing import TextIO

from connector import logs
from connector.app import load_rules, open_helpdesk
from connector.config import Settings
from connector.errors import InputError, printable
from connector.helpdesks.adapter import Plan
from connector.helpdesks.mapping import DueDestination, HelpdeskMapping
from connector.mappingfiles import default_mappings_dir
from connector.sandbox import OffsetClock, Sandbox, SandboxCredentials
from connector.service.rules import Rules
from connector.service.sync import Outcome, Sync, Totals
from connector.sla.calendar import zone as load_zone
from connector.sla.contract import Contract
from connector.sla.model import Decision, TargetResult
from connector.state import open_state
from connector.timeutil import zone_abbreviation

__all__ = ["demo_settings", "run_demo"]

# The story's long lines are wrapped here: fixed, not the terminal's width, so that the output
# (and its line count) is the same everywhere.
WIDTH = 100


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
    _waiting_on_the_customer(sandbox)
    clock.advance(61)
    try:
        server = sandbox.serve("127.0.0.1", args.port).start()
    except OSError as exc:
        raise InputError(f"--port {args.port}: cannot listen ({exc.strerror})") from None
    helpdesks = ("zendesk", "freshdesk") if args.helpdesk == "both" else (args.helpdesk,)
    urls = {"zendesk": server.zendesk_url, "freshdesk": server.freshdesk_url}
    now = sandbox.now()
    status = 0
    with tempfile.TemporaryDirectory(prefix="sla-demo-") as scratch:
        try:
            runs = []
            for helpdesk in helpdesks:
                settings = demo_settings(helpdesk, urls[helpdesk], Path(scratch) / helpdesk)
                runs.append(_sync_twice(settings, sandbox, clock, log))
            # The story is told once every pass is done: its first line names the local zone
            # most of the tickets' due times are in.
            story = _Story(verbose=bool(getattr(args, "verbose", False)))
            out.write(story.opening(now, runs))
            for run in runs:
                out.write(story.tell(run))
                status |= run.status
            if args.keep_running:
                first = helpdesks[0]
                settings = demo_settings(first, urls[first], Path(scratch) / first, poll_interval=5)
                _keep_running(settings, sandbox, server.control_url, out)
        finally:
            server.close()
    return status


def _waiting_on_the_customer(sandbox: Sandbox) -> None:
    """An agent set one ticket to pending, waiting on the customer, a minute before the demo
    starts (Zendesk's export shows a change a minute after it): a contract whose target
    pauses then shows its clock stopped. The ticket is the middle one of the open tickets of
    the contract most of whose targets pause on pending (the first stays an ordinary
    example)."""
    rules = load_rules(demo_settings("zendesk", "https://unused.invalid", Path("unused")))
    # The contract most of whose targets pause: every ticket of it then shows a paused one.
    share = {
        name: sum("pending" in t.paused_by for t in targets) / len(targets)
        for name, contract in sorted(rules.contracts.items())
        if (targets := list(contract.spec.targets.values()))
    }
    pausing = sorted((n for n, s in share.items() if s > 0), key=lambda n: -share[n])
    customers = sandbox.zendesk.organizations
    for contract in pausing:
        open_tickets = [
            ticket_id
            for ticket_id, ticket in sorted(sandbox.zendesk.tickets.items())
            if ticket.status == "open"
            and ticket.organization_id in customers
            and customers[ticket.organization_id].contract == contract
        ]
        if len(open_tickets) > 1:
            sandbox.set_status(open_tickets[len(open_tickets) // 2], "pending")
            return


# --- the two passes ---------------------------------------------------------------------------


@dataclass
class _Run:
    """One helpdesk's demo: the rules, each ticket's outcome of the first pass, both totals."""

    helpdesk: str
    url: str
    rules: Rules
    outcomes: list[Outcome]
    first: Totals
    second: Totals
    customers: dict[str, str]  # customer id (as the facts hold it) -> the customer's name
    # Tickets the second pass wrote although the first pass had written them: those whose
    # SLA changed with time between the passes (a due instant passed) are as they should be.
    with_time: list[str] = field(default_factory=list)
    unexplained: list[str] = field(default_factory=list)

    @property
    def status(self) -> int:
        """0 when the first pass had no failure and the second wrote nothing but what time
        changed between the passes."""
        return 0 if self.first.failed == 0 and not self.unexplained else 1


def _sync_twice(settings: Settings, sandbox: Sandbox, clock: OffsetClock, log: object) -> _Run:
    rules = load_rules(settings)
    state = open_state(settings)
    # The demo's world runs on the sandbox's clock: a wait of the connector (a batch job
    # running, a rate limit) moves that clock instead of holding the terminal.
    helpdesk = open_helpdesk(
        settings,
        state,
        secrets=sandbox_secrets(sandbox),
        sleep=clock.sleep,
        monotonic=lambda: clock().timestamp(),
    )
    outcomes: list[Outcome] = []
    again: list[Outcome] = []
    try:
        sync = Sync(helpdesk, state, rules, clock=sandbox.now, log=log, observe=outcomes.append)
        start = settings.first_poll_start(sandbox.now())
        sync.read_statuses("statuses", start)
        first = sync.poll("poll", start)
        # The story is about the first pass; the second must write nothing it did not.
        sync.observe = again.append
        clock.advance(61)  # a minute on: Zendesk's export leaves out the last minute
        sync.read_statuses("statuses", start)
        second = sync.poll("poll", start)
        second_now = sandbox.now()
    finally:
        helpdesk.close()
        state.close()
    # A ticket due (or turning at risk) between the passes is written again, rightly: its
    # first decision said when it would change. Anything else written twice is a fault.
    changes = {o.ticket: o.decision.next_change_at for o in outcomes if o.decision is not None}
    rewritten = [o.ticket for o in again if o.wrote]
    with_time = [t for t in rewritten if (at := changes.get(t)) is not None and at <= second_now]
    return _Run(
        settings.kind,
        settings.helpdesk_url,
        rules,
        # A ticket handled twice (a conflict re-read, a retry) is told as it ended.
        list({o.ticket: o for o in outcomes}.values()),
        first,
        second,
        _customer_names(sandbox, settings.kind),
        with_time=sorted(set(with_time), key=_by_number),
        unexplained=sorted(set(rewritten) - set(with_time), key=_by_number),
    )


def _by_number(ticket: str) -> tuple[int, str]:
    return (int(ticket), ticket) if ticket.isdigit() else (0, ticket)


def _customer_names(sandbox: Sandbox, helpdesk: str) -> dict[str, str]:
    """The sandbox's organizations (Zendesk) or companies (Freshdesk) by id, as facts hold it."""
    with sandbox.lock:
        customers = (
            sandbox.zendesk.organizations if helpdesk == "zendesk" else sandbox.freshdesk.companies
        )
        return {str(key): customer.name for key, customer in customers.items()}


# --- the story --------------------------------------------------------------------------------

# What each entitlement means, in an agent's words (the contracts' `scope` and
# `quotas` decide which one a ticket gets).
ENTITLEMENTS = {
    "included": "covered by the {plan}{count}",
    "over_quota": "the plan's {quota} are used up{count}: best effort",
    "grace": "outside standard support, a grace call{count}: free of charge",
    "pay_per_incident": "outside standard support, no grace call: offer a single paid "
    "incident (PPI)",
    "not_eligible": "no support under this contract: offer a single paid incident (PPI)",
}
STATES = {
    "running": "running",
    "at_risk": "at risk (past its warning point)",
    "breached": "breached",
    "paused": "paused",
    "achieved": "achieved",
    "best_effort": "best effort: no due time",
}


@dataclass(frozen=True)
class _Rule:
    """A special rule of the contracts, recognised by what a ticket's decision or plan shows;
    `shows` ranks the tickets it applies to, those showing it best (lowest) first."""

    key: str
    applies: Callable[[Outcome, Rules], bool]
    shows: Callable[[Outcome], int] = lambda _: 0


def _entitled(entitlement: str) -> Callable[[Outcome, Rules], bool]:
    return lambda o, _: o.decision is not None and o.decision.entitlement == entitlement


def _union(outcome: Outcome, _: Rules) -> bool:
    # A calendar made of several offices is named after all of them ("Denver + Tokyo").
    decision = outcome.decision
    return decision is not None and " + " in (decision.calendar or "")


def _reclassified(outcome: Outcome, _: Rules) -> bool:
    decision = outcome.decision
    return (
        decision is not None
        and decision.severity_submitted is not None
        and decision.severity != decision.severity_submitted
    )


def _capacity(outcome: Outcome, rules: Rules) -> bool:
    decision = outcome.decision
    if decision is None:
        return False
    return bool(_capacity_tags(rules, decision) & set(decision.tags)) or any(
        part.due is None for target in decision.targets.values() for part in target.parts or ()
    )


def _split(outcome: Outcome) -> int:
    """0 for an order split into a part with a due and a part without: the capacity at work."""
    targets = outcome.decision.targets.values() if outcome.decision is not None else ()
    for target in targets:
        if {part.due is None for part in target.parts or ()} == {True, False}:
            return 0
    return 1


def _paused(outcome: Outcome, _: Rules) -> bool:
    decision = outcome.decision
    return decision is not None and any(t.state == "paused" for t in decision.targets.values())


def _dropped(outcome: Outcome, _: Rules) -> bool:
    return outcome.plan is not None and bool(outcome.plan.dropped)


# In the order the story tells them; one ticket may show several (it is told once).
RULES = (
    _Rule("union", _union),
    _Rule("reclassified", _reclassified),
    _Rule("over_quota", _entitled("over_quota")),
    _Rule("grace", _entitled("grace")),
    _Rule("pay_per_incident", _entitled("pay_per_incident")),
    _Rule("not_eligible", _entitled("not_eligible")),
    _Rule("capacity", _capacity, _split),
    _Rule("paused", _paused),
    _Rule("dropped", _dropped),
)


@dataclass
class _Story:
    """Tells the demo's runs; remembers what it has explained already (notes, tags)."""

    verbose: bool = False
    note_shown: tuple[str, str] | None = None  # (helpdesk, ticket) whose note is shown in full
    tags_explained: set[str] = field(default_factory=set)
    identity_tags_shown: bool = False  # a ticket's contract, plan and severity tags, in full
    told_no_targets: set[str] = field(default_factory=set)  # contracts without targets

    def opening(self, now: datetime, runs: list[_Run]) -> str:
        """The time: in UTC and in the zone most of the tickets' due times are in."""
        zones = Counter(
            o.decision.local_zone
            for o in runs[0].outcomes
            if o.decision is not None
            and o.decision.local_zone
            and any(t.due is not None for t in o.decision.targets.values())
        )
        line = f"Now: {_when(now, UTC, year=True)}"
        if zones:
            name = min(zones, key=lambda z: (-zones[z], z))
            line += f", {_when(now, load_zone(name), day=False)} in {name}"
        return printable(line) + "\n"  # the zone name comes from the helpdesk

    def tell(self, run: _Run) -> str:
        """One helpdesk's story, its summary lines, and with `verbose` every raw change."""
        count = len(run.outcomes)
        lines = [
            "",
            f"== {run.helpdesk}, a sandbox on loopback ({run.url}): one sync, {count} tickets",
        ]
        lines += _wrap(_fields_intro(run.rules.mapping), "")
        ordinary = _ordinary(run)
        special = _representatives(run)
        unmapped = [o for o in _by_id(run.outcomes) if o.unmapped]
        failed = [o for o in _by_id(run.outcomes) if o.problem is not None and not o.unmapped]
        if ordinary:
            lines += ["", "One ordinary ticket of each contract:"]
            for outcome in ordinary:
                lines += _Ticket(self, run, outcome).lines()
        if special:
            lines += ["", "The contracts' special rules, one ticket each:"]
            for outcome, keys in special:
                lines += _Ticket(self, run, outcome, keys, _others(run, outcome, keys)).lines()
        if unmapped:
            lines += ["", "No contract could be applied to these (tagged sla_unmapped):"]
            lines += [f"ticket {o.ticket}  [unmapped: {o.problem}]" for o in unmapped]
        if failed:
            lines += ["", "Not written:"]
            lines += [f"ticket {o.ticket}  [failed: {o.problem}]" for o in failed]
        told = [*ordinary, *(o for o, _ in special), *unmapped, *failed]
        lines += self._legend(run, told)
        rest = len({o.ticket for o in run.outcomes} - {o.ticket for o in told})
        if rest:
            where = "each is listed below" if self.verbose else "--verbose shows each"
            lines += [f"And {rest} more tickets like these; {where}."]
        if self.verbose:
            lines += ["", f"Every ticket of {run.helpdesk} as written (field ids, raw values):"]
            lines += "".join(_describe(o) for o in run.outcomes).splitlines()
        lines += ["", *_summary(run)]
        # Every line quotes ticket data (names, notes, reasons, tags): made printable here.
        return "".join(printable(line) + "\n" for line in lines)

    def _legend(self, run: _Run, shown: Iterable[Outcome]) -> list[str]:
        """What the tags that appeared mean, each explained once across the runs."""
        meanings = {
            **_tag_meanings(run.rules),
            "(identity)": "sla_<contract>, sla_plan_<plan>, sla_<severity>: on every mapped ticket",
        }
        entries: list[str] = []
        for outcome in shown:
            for tag in _written_tags(outcome):
                # A ticket's contract, plan and severity tags have one entry for them all.
                key = "(identity)" if _identity_tag(run.rules, outcome, tag) else tag
                if key in meanings and key not in self.tags_explained:
                    self.tags_explained.add(key)
                    text = meanings[key]
                    entries.append(text if key == "(identity)" else f"{key}: {text}")
        if not entries:
            return []
        return ["", "What the tags mean:", *_wrap("; ".join(entries) + ".", "  ")]


class _Ticket:
    """One ticket in an agent's words: who, what is covered, what is due, what was written."""

    def __init__(
        self,
        story: _Story,
        run: _Run,
        outcome: Outcome,
        rules: Iterable[str] = (),
        others: Iterable[str] = (),
    ) -> None:
        self.story, self.run, self.outcome = story, run, outcome
        self.rules, self.others = list(rules), list(others)
        assert outcome.decision is not None  # unmapped tickets are told in one line
        self.decision = outcome.decision
        self.contract = run.rules.contracts.get(self.decision.contract)
        zone_name = self.decision.local_zone
        self.zone: tzinfo = UTC if zone_name is None else load_zone(zone_name)

    def lines(self) -> list[str]:
        head, entitlement = self._head(), self._entitlement()
        if len(head) + 2 + len(entitlement) <= WIDTH:
            lines = [f"{head}; {entitlement}"]
        else:
            lines = [head, *_wrap(entitlement, "  ")]
        for sentence in self._special():
            lines += _wrap(sentence, "  ")
        return lines + self._targets() + self._written()

    def _head(self) -> str:
        decision, facts = self.decision, self.outcome.facts
        customer = "" if facts is None or facts.customer is None else facts.customer
        words = [decision.contract]
        if decision.plan:
            words.append(f"plan {decision.plan}")
        if decision.severity:
            severity = f"severity {decision.severity}"
            spec = (
                None
                if self.contract is None
                else self.contract.spec.severities.get(decision.severity)
            )
            # Short labels only ("Urgent"); some contracts describe a severity in a sentence.
            if spec is not None and spec.label and len(spec.label) <= 20:
                severity += f" ({spec.label})"
            if decision.severity_submitted and decision.severity_submitted != decision.severity:
                severity += f", submitted as {decision.severity_submitted}"
            words.append(severity)
        name = self.run.customers.get(customer, customer or "no customer")
        # The other tickets the same rule applies to, named when they are few.
        others = f" (and {', '.join(self.others)})" if self.others else ""
        return f"ticket {self.outcome.ticket}{others}  {name}: " + ", ".join(words)

    def _entitlement(self) -> str:
        """The entitlement's name and what it means here, with the quota it counts in."""
        decision = self.decision
        entitlement = decision.entitlement or "included"
        # The quota that decided (the one overrun, else the first); none for pay per incident,
        # whose count does not say that the customer may not be eligible at all (its note does).
        quota = next((q for q in decision.quotas if not q.fits), None) or next(
            iter(decision.quotas), None
        )
        count = ""
        if quota is not None and entitlement != "pay_per_incident":
            # The quota is named in the words but for included (which names the plan).
            label = f"{self._quota_label(quota.quota)}: " if entitlement == "included" else ""
            count = f" ({label}{quota.count} of {quota.limit} {_period(quota.period)})"
        words = ENTITLEMENTS[entitlement].format(
            plan=f"{decision.plan} plan" if decision.plan else "contract",
            quota=self._quota_label(quota.quota) if quota else "quota",
            count=count,
        )
        return f"{entitlement}: {words}"

    def _quota_label(self, name: str) -> str:
        spec = None if self.contract is None else self.contract.spec.quotas.get(name)
        return (spec.label if spec is not None and spec.label else _words(name)).lower()

    def _special(self) -> list[str]:
        """A sentence for each special rule the ticket shows that its other lines do not."""
        decision, sentences = self.decision, []
        if "union" in self.rules:
            sentences.append(
                f"Union of offices ({decision.calendar}): business time runs while any is open."
            )
        if "reclassified" in self.rules:
            sentences.append(
                f"Reclassified by an agent: targets and priority follow {decision.severity}, "
                f"not {decision.severity_submitted}."
            )
        contract = self.contract
        if (
            not decision.targets
            and contract is not None
            and not contract.spec.targets
            and contract.name not in self.story.told_no_targets
        ):
            self.story.told_no_targets.add(contract.name)
            sentences.append("No due times: this contract promises none, it decides coverage.")
        return sentences

    def _targets(self) -> list[str]:
        """A line per target: its due in the ticket's zone, its state, how far off; targets
        with the same outcome (best effort over quota, say) share a line."""
        decision = self.decision
        told: dict[str, list[str]] = {}  # what is said of a target -> the targets' labels
        parts: dict[str, list[str]] = {}
        for name, target in decision.targets.items():
            text = self._target(target, decision.now)
            told.setdefault(text, []).append(self._target_label(name))
            parts.setdefault(text, []).extend(self._parts(target))
        labels = {text: _and(names) for text, names in told.items()}
        width = max((len(label) for label in labels.values()), default=0)
        lines = []
        for text, label in labels.items():
            lines.append(f"  {label:<{width}}  {text}")
            lines += [f"    {line}" for line in parts[text]]
        return lines

    def _target_label(self, name: str) -> str:
        spec = None if self.contract is None else self.contract.spec.targets.get(name)
        return spec.label if spec is not None and spec.label else _first_upper(_words(name))

    def _target(self, target: TargetResult, now: datetime) -> str:
        state = STATES.get(target.state, target.state)
        if target.owed_seconds is not None:
            return f"paused: {_span(target.owed_seconds)} still owed when the clock resumes"
        if target.due is None or target.best_effort:
            why = re.sub(r"^best effort:? ?", "", target.basis)
            # Over quota: the entitlement's line says so already.
            return f"{state} ({why})" if why and not why.startswith("over quota") else state
        due = f"due {_when_and_utc(target.due, self.zone)}"
        if target.achieved_at is not None:
            late = int((target.achieved_at - target.due).total_seconds())
            return f"{due}  {state}, done {_span(abs(late))} {'late' if late > 0 else 'early'}"
        left = int((target.due - now).total_seconds())
        if left < 0:
            return f"{due}  {state}, {_span(-left)} overdue"
        return f"{due}  {state}, in {_span(left)}"

    def _parts(self, target: TargetResult) -> list[str]:
        """An order split by a daily capacity: how many are due when."""
        parts = target.parts or []
        if len(parts) < 2:
            return []
        words = [
            f"{part.quantity} due {_when_and_utc(part.due, self.zone)}"
            if part.due is not None
            else f"{part.quantity} with no guaranteed due"
            for part in parts
        ]
        return ["split by the daily capacity: " + ", ".join(words)]

    def _written(self) -> list[str]:
        plan = self.outcome.plan
        if plan is None:
            return ["  wrote nothing: the ticket already showed all this"]
        # A ticket's contract, plan and severity tags are listed once; the legend says that
        # every mapped ticket gets them.
        identity = partial(_identity_tag, self.run.rules, self.outcome)
        hide = identity if self.story.identity_tags_shown else None
        items = _Changes(self.run.rules.mapping, self.decision, self._target_label).read(plan, hide)
        self.story.identity_tags_shown |= any(map(identity, _added_tags(plan)))
        items += [self._dropped(why) for why in plan.dropped]
        note: list[str] = []
        if plan.note is not None:
            # The full text once: the others differ in what the lines above say in words.
            this = (self.run.helpdesk, self.outcome.ticket)
            if self.story.note_shown in (None, this):
                self.story.note_shown = this
                items.append("the note:")
                lines = [line for line in plan.note.splitlines() if line]
                note = [wrapped for line in lines for wrapped in _wrap(line, "    | ")]
            else:
                items.append("the note")
        return _wrap("wrote " + "; ".join(items), "  ") + note

    def _dropped(self, why: str) -> str:
        """Why part of the write was left out, in words (Freshdesk's refusals)."""
        why = re.sub(r"^ticket \S+: ", "", why)
        if "stops the SLA timer" in why:
            facts = self.outcome.facts
            status = f" ({facts.status})" if facts is not None else ""
            return f"not the due times: Freshdesk refuses them while a status{status} stops its SLA"
        return f"left out or adjusted: {why}"


@dataclass
class _Changes:
    """A plan's readable change lines, with the mapping's names for the fields they write."""

    mapping: HelpdeskMapping
    decision: Decision
    target_label: Callable[[str], str]

    def read(self, plan: Plan, hide: Callable[[str], bool] | None = None) -> list[str]:
        """The writes as phrases: due fields by name, priority in words, tags (but those
        `hide` says), no ids."""
        fields: list[str] = []
        cleared: list[str] = []
        items: list[str] = []
        added: list[str] = []
        removed: list[str] = []
        for change in plan.changes:
            key, _, rest = change.partition(": ")
            destination = self._destination(key)
            if destination is not None:
                # A due no longer owed (the ticket changed) empties its field.
                names = cleared if rest.endswith("-> None") else fields
                name = self._field(destination)
                names += [] if name in names else [name]
            elif key == "priority":
                old, _, new = rest.partition(" -> ")
                items.append(f"priority {self._priority(old)} -> {self._priority(new)}")
            elif key == "tags +":
                added += rest.split()
            elif key == "tags -":
                removed += rest.split()
            elif key not in ("note", "summary"):  # (the opening names the summary once)
                items.append(change)  # a field this story has no name for: as the plan says
        natives = {d.native for d in self.mapping.results.due}
        due = [
            verb + _and(names) + ("" if set(names) <= natives else " due")
            for verb, names in (("", fields), ("emptied ", cleared))
            if names
        ]
        items = due + items
        added = [tag for tag in added if hide is None or not hide(tag)]
        if added:
            items.append("tags " + " ".join(added))
        if removed:
            items.append("tags removed " + " ".join(removed))
        return items

    def _destination(self, key: str) -> DueDestination | None:
        """The due destination a change line's key names: `field 9100101` or `fr_due_by`."""
        wanted = key.removeprefix("field ")
        return next((d for d in self.mapping.results.due if str(d.key) == wanted), None)

    def _field(self, destination: DueDestination) -> str:
        """A due field's name: the target whose due it holds (of those it may hold, the one
        this decision has), and Freshdesk's own name for its native fields."""
        target = next(
            (name for name in destination.targets if name in self.decision.targets),
            destination.targets[0],
        )
        # A native field is known by its own name (the story's opening says what it takes).
        return destination.native or self.target_label(target).lower()

    def _priority(self, value: str) -> str:
        value = value.strip("'\"")
        names = {str(wire): name for name, wire in self.mapping.priorities.items()}
        return names.get(value, value)


def _summary(run: _Run) -> list[str]:
    """The two passes in numbers; the second must write nothing but what time changed."""
    first, second = run.first, run.second
    failed = f", {first.failed} failed" if first.failed else ""
    wrote = "nothing to write" if second.writes == 0 else f"{second.writes} written"
    if second.writes and run.with_time and not run.unexplained:
        tickets = _and([f"ticket {t}" for t in run.with_time])
        wrote += f" ({tickets}: its SLA changed with time between the passes)"
    return [
        f"first pass: {first.tickets} tickets, {first.writes} written ({first.notes} notes), "
        f"{first.unmapped} unmapped (tagged sla_unmapped){failed}",
        f"second pass: {second.tickets} tickets came back (our own writes), {wrote}",
    ]


def _fields_intro(mapping: HelpdeskMapping) -> str:
    """Where the mapping writes due times, in a sentence: the fields' kinds, not their ids;
    and the summary field, where there is one."""
    due = mapping.results.due
    summary = (
        " Every ticket written also gets the SLA summary its sidebar app shows (one field)."
        if mapping.results.summary is not None
        else ""
    )
    if due and all(d.native is not None for d in due):
        takes = [f"{d.native} for a {_and([_words(t) for t in d.targets], 'or')}" for d in due]
        return (
            f"Due times go to {mapping.helpdesk.capitalize()}'s own {'; '.join(takes)}." + summary
        )
    kinds = []
    if any(d.native is None and d.format == "instant" for d in due):
        kinds.append("a UTC time")
    if any(d.native is None and d.format == "date" for d in due):
        kinds.append("a local date")
    if not kinds:
        return summary.strip()
    if mapping.results.summary is not None:  # in one line: the story is short
        return (
            f"Each due time goes to ticket fields as {_and(kinds)}; the app's summary to one more."
        )
    return f"Each due time goes to ticket fields as {_and(kinds)}."


def _ordinary(run: _Run) -> list[Outcome]:
    """For each contract, one ticket no special rule touches, with a target running if any."""
    rules = run.rules
    special_tags = _special_tags(rules)
    picked = []
    for name in sorted(rules.contracts):
        candidates = [
            o
            for o in _by_id(run.outcomes)
            if o.decision is not None
            and o.decision.contract == name
            and not o.unmapped
            and o.problem is None
            and o.decision.entitlement == "included"
            and not any(rule.applies(o, rules) for rule in RULES)
            and not set(_written_tags(o)) & special_tags
        ]
        if candidates:
            picked.append(min(candidates, key=_liveliness))
    return picked


def _liveliness(outcome: Outcome) -> int:
    """0 for a ticket with a target running, 1 with a due time, 2 otherwise: the first
    shows best what the connector does."""
    assert outcome.decision is not None
    targets = outcome.decision.targets.values()
    if any(t.state in ("running", "at_risk") for t in targets):
        return 0
    return 1 if any(t.due is not None for t in targets) else 2


def _representatives(run: _Run) -> list[tuple[Outcome, list[str]]]:
    """For each special rule some ticket shows, one such ticket (one already picked for
    another rule when it can be, to keep the story short), with the rules it shows."""
    chosen: dict[str, tuple[Outcome, list[str]]] = {}
    for rule in RULES:
        candidates = [
            o for o in _by_id(run.outcomes) if not o.unmapped and rule.applies(o, run.rules)
        ]
        if not candidates:
            continue
        best = min(rule.shows(o) for o in candidates)
        candidates = [o for o in candidates if rule.shows(o) == best]
        pick = next((o for o in candidates if o.ticket in chosen), candidates[0])
        chosen.setdefault(pick.ticket, (pick, []))[1].append(rule.key)
    return list(chosen.values())


def _others(run: _Run, shown: Outcome, keys: list[str]) -> list[str]:
    """The other tickets the first of these rules applies to (named when few, not told)."""
    rule = next(r for r in RULES if r.key == keys[0])
    matching = [
        o.ticket
        for o in _by_id(run.outcomes)
        if o.ticket != shown.ticket and not o.unmapped and rule.applies(o, run.rules)
    ]
    return matching if len(matching) <= 5 else []


def _by_id(outcomes: Iterable[Outcome]) -> list[Outcome]:
    return sorted(outcomes, key=lambda o: (len(o.ticket), o.ticket))


def _written_tags(outcome: Outcome) -> list[str]:
    """The tags the ticket carries for its decision, with those the write added."""
    tags = list(outcome.decision.tags) if outcome.decision is not None else []
    added = _added_tags(outcome.plan) if outcome.plan is not None else []
    return tags + [tag for tag in added if tag not in tags]


def _added_tags(plan: Plan) -> list[str]:
    """The tags a plan adds, from its readable change lines (`tags +: a b`)."""
    return [
        tag
        for change in plan.changes
        if change.startswith("tags +: ")
        for tag in change.removeprefix("tags +: ").split()
    ]


def _identity_tag(rules: Rules, outcome: Outcome, tag: str) -> bool:
    """Whether `tag` names the ticket's contract, plan or severity."""
    decision = outcome.decision
    contract = None if decision is None else rules.contracts.get(decision.contract)
    if decision is None or contract is None:
        return False
    names = contract.spec.tags
    return tag in (
        names.contract.format(contract=decision.contract),
        names.plan.format(plan=decision.plan),
        names.severity.format(severity=decision.severity),
    )


def _capacity_tags(rules: Rules, decision: Decision) -> set[str]:
    contract = rules.contracts.get(decision.contract)
    if contract is None:
        return set()
    return {t.capacity.exceeded_tag for t in contract.spec.targets.values() if t.capacity}


def _special_tags(rules: Rules) -> set[str]:
    """Tags that mark a ticket as out of the ordinary (all but identity and state tags)."""
    states: set[str] = set()
    for contract in rules.contracts.values():
        tags = contract.spec.tags
        states |= {tags.at_risk, tags.breached, tags.paused}
    return set(_tag_meanings(rules)) - states


def _tag_meanings(rules: Rules) -> dict[str, str]:
    """Each tag the loaded contracts may set (but their identity tags), in words."""
    meanings: dict[str, str] = {}
    for contract in rules.contracts.values():
        for tag, meaning in _contract_tags(contract):
            meanings.setdefault(tag, meaning)
    return meanings


def _contract_tags(contract: Contract) -> Iterable[tuple[str, str]]:
    spec, tags = contract.spec, contract.spec.tags
    yield tags.at_risk, "a target is past its warning point"
    yield tags.breached, "a due time passed before it was met"
    yield tags.paused, "a target's clock is stopped (waiting on the customer)"
    yield tags.priority_corrected, "priority set once to the severity's"
    yield tags.unmapped, "no contract applies (the note and the log say why)"
    if spec.calendar_choice is not None:
        yield spec.calendar_choice.default_tag, "a fact was missing: the contract's default used"
    effects = [effect for quota in spec.quotas.values() for effect in (quota.within, quota.over)]
    if spec.scope is not None:
        effects += [spec.scope.otherwise, *([spec.scope.inactive] if spec.scope.inactive else [])]
    for effect in effects:
        if effect.tag:
            yield effect.tag, _effect_meaning(effect.entitlement)
    for target in spec.targets.values():
        if target.capacity is not None:
            yield target.capacity.exceeded_tag, "part of an order is past the daily capacity"
        if target.expedite is not None:
            yield target.expedite.unavailable_tag, "expedite asked outside its window"


def _effect_meaning(entitlement: str | None) -> str:
    if entitlement == "over_quota":
        return "over the plan's quota"
    if entitlement == "grace":
        return "a grace call used (tell the account manager)"
    if entitlement in ("pay_per_incident", "not_eligible"):
        return "offer the fixed-price incident (PPI)"
    return f"entitlement {entitlement}"


# --- words ------------------------------------------------------------------------------------


def _when(instant: datetime, zone: tzinfo, *, year: bool = False, day: bool = True) -> str:
    """`Mon 7 Dec 17:00 CET` (with `year`: `Mon 7 Dec 2026 17:00 UTC`; without `day`: the
    time and zone only)."""
    local = instant.astimezone(zone)
    time = f"{local:%H:%M} {zone_abbreviation(local)}"
    if not day:
        return time
    return f"{local:%a} {local.day} {local:%b}" + (f" {local.year}" if year else "") + f" {time}"


def _when_and_utc(instant: datetime, zone: tzinfo) -> str:
    """`_when` with the UTC time beside it: `Mon 7 Dec 17:00 MST (Tue 00:00 UTC)`, the UTC
    weekday named only when it is not the local one (a day apart at most); nothing beside a
    time already in UTC."""
    local, utc = instant.astimezone(zone), instant.astimezone(UTC)
    if zone_abbreviation(local) == "UTC":
        return _when(instant, zone)
    day = "" if local.date() == utc.date() else f"{utc:%a} "
    return f"{_when(instant, zone)} ({day}{utc:%H:%M} UTC)"


def _span(seconds: int) -> str:
    """`45 min`, `3 h 5 min`, `2 d 4 h`: to the minute under a day, to the hour beyond."""
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    days, hours = divmod(hours, 24)
    return f"{days} d" + (f" {hours} h" if hours else "")


def _period(period: str) -> str:
    """A quota period as a phrase: `in 2026-12`, `in 2026-09-01/2027-08-31`, `so far`."""
    return "so far" if period == "lifetime" else f"in {period}"


def _words(name: str) -> str:
    return name.replace("_", " ")


def _first_upper(text: str) -> str:
    return text[:1].upper() + text[1:]


def _and(items: list[str], word: str = "and") -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" {word} " + items[-1]


def _wrap(text: str, indent: str) -> list[str]:
    """`text` as lines of at most `WIDTH` columns, each after `indent`, the later ones
    further in; words are not broken."""
    lines: list[str] = []
    line, empty = indent, True
    for word in text.split(" "):
        if not empty and len(line) + 1 + len(word) > WIDTH:
            lines.append(line)
            line = indent + "  " + word
        else:
            line = line + word if empty else f"{line} {word}"
        empty = False
    lines.append(line)
    return lines


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
    from connector.service.daemon import Daemon

    state = open_state(settings)
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
