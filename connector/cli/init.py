"""`sla-connector init`: from a helpdesk account to a checked configuration.

Reads the account's custom fields, works out which fields the bundled mapping reads for the
contracts sold (ticket fields and organization or company fields, with their types and the
drop-down values the contracts name: plans, severities, regions, categories), shows the ones
missing and, with `--apply`, creates them through the helpdesk's API. Then it writes the
helpdesk mapping with the account's real field ids, the contracts and a configuration into
the folder given, and runs `check` against them. Nothing is created without `--apply`; a
second run finds every field and creates nothing; a file that exists is never overwritten
(the new text goes beside it, `.new`).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

import yaml

from connector.app import open_helpdesk
from connector.cli.check import run_checks
from connector.config import Settings, load_settings
from connector.errors import InputError, printable
from connector.mappingfiles import default_mappings_dir, load_contracts
from connector.sla.contract import Contract
from connector.state import open_state

__all__ = ["FieldSpec", "mapping_for", "needed_fields", "run_init"]

Kind = Literal["dropdown", "text", "textarea", "date", "integer", "checkbox"]
Level = Literal["ticket", "customer"]


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One custom field the mapping reads or writes.

    `path` is where the bundled example mapping names it (`("facts", "severity")`,
    `("results", "due", 0)`); `key` is its organization field key on Zendesk and, snake-cased
    from `title`, its name on Freshdesk (`cf_` first for a ticket field); `prefix` is the tag
    prefix of a Zendesk drop-down's options (Zendesk drop-down values are tags).
    """

    path: tuple[str | int, ...]
    level: Level
    title: str
    kind: Kind
    options: tuple[str, ...] = ()
    key: str = ""
    prefix: str = ""
    zendesk_only: bool = False


def _union(values: Iterable[Iterable[str]]) -> tuple[str, ...]:
    """Each value once, in the order of first appearance."""
    return tuple(dict.fromkeys(v for vs in values for v in vs))


def needed_fields(contracts: Sequence[Contract]) -> list[FieldSpec]:
    """The fields the bundled mapping reads for these contracts, with their drop-down values.

    A field serves a contract rule: a plan field where a contract has plans, an images field
    where a target has a capacity in images, the subscription start where a quota counts by
    contract year, and so on; what no contract uses is left out.
    """
    specs = [c.spec for c in contracts]
    targets = [t for s in specs for t in s.targets.values()]
    quotas = [q for s in specs for q in s.quotas.values()]
    choices = [s.calendar_choice for s in specs if s.calendar_choice is not None]
    severities = _union(s.severities for s in specs)
    categories = _union(
        [
            *(t.categories or () for t in targets),
            *(q.categories or () for q in quotas),
            *(s.scope.categories or () for s in specs if s.scope is not None),
        ]
    )
    events = {event for t in targets for event in t.achieved_by}
    fields = [
        FieldSpec(
            ("facts", "contract"),
            "customer",
            "SLA contract",
            "dropdown",
            tuple(s.name for s in specs),
            key="sla_contract",
        ),
    ]
    plans = _union(s.plans for s in specs)
    if plans:
        fields.append(
            FieldSpec(("facts", "plan"), "customer", "SLA plan", "dropdown", plans, key="sla_plan")
        )
    regions = _union(c.regions for c in choices if c.by == "region")
    if regions:
        fields.append(
            FieldSpec(
                ("facts", "region"), "customer", "SLA region", "dropdown", regions, "sla_region"
            )
        )
    if severities:
        fields += [
            FieldSpec(
                ("facts", "severity"),
                "ticket",
                "SLA severity",
                "dropdown",
                severities,
                prefix="severity_",
            ),
            FieldSpec(
                ("facts", "severity_override"),
                "ticket",
                "Severity override",
                "dropdown",
                severities,
                prefix="override_",
            ),
        ]
    if categories:
        fields.append(
            FieldSpec(
                ("facts", "category"),
                "ticket",
                "Category",
                "dropdown",
                categories,
                prefix="category_",
            )
        )
    if any(s.scope is not None and s.scope.excluded_products for s in specs):
        fields.append(FieldSpec(("facts", "product"), "ticket", "Product", "text"))
    if any(t.capacity is not None and t.capacity.quantity == "images" for t in targets):
        fields.append(FieldSpec(("facts", "quantities", "images"), "ticket", "Images", "integer"))
    if any(t.expedite is not None for t in targets):
        fields.append(FieldSpec(("facts", "flags", "expedite"), "ticket", "Expedite", "checkbox"))
    if "workaround_at" in events:
        fields.append(
            FieldSpec(("facts", "events", "workaround_at"), "ticket", "Workaround at", "text")
        )
    if "delivered_at" in events:
        fields.append(
            FieldSpec(("facts", "events", "delivered_at"), "ticket", "Delivered at", "text")
        )
    customer: list[tuple[str, str, Kind, bool]] = [
        ("seats", "Seats", "integer", any(q.by_seats for q in quotas)),
        (
            "subscription_start",
            "Subscription start",
            "date",
            any(q.period == "contract_year" for q in quotas),
        ),
        (
            "subscription_kind",
            "Subscription kind",
            "text",
            any(q.eligible.excluded_kinds for q in quotas),
        ),
        (
            "active",
            "Subscription active",
            "checkbox",
            any(q.eligible.active for q in quotas)
            or any(s.scope is not None and s.scope.inactive is not None for s in specs),
        ),
        ("timezone", "Timezone", "text", bool(quotas)),
        ("offices", "Offices", "text", any(c.by == "offices" for c in choices)),
    ]
    for fact, title, customer_kind, used in customer:
        if used:
            key = "subscription_active" if fact == "active" else fact
            fields.append(
                FieldSpec(
                    ("facts", "customer_facts", fact), "customer", title, customer_kind, key=key
                )
            )
    # The summary the agents' sidebar apps read (multi-line text / paragraph).
    fields.append(FieldSpec(("results", "summary"), "ticket", "SLA summary", "textarea"))
    for index, title in enumerate(
        (
            "SLA first response due (UTC)",
            "SLA first response due",
            "SLA resolution due (UTC)",
            "SLA resolution due",
        )
    ):
        due_kind: Kind = "text" if index % 2 == 0 else "date"
        fields.append(
            FieldSpec(("results", "due", index), "ticket", title, due_kind, zendesk_only=True)
        )
    return fields


def _snake(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")


# --- the account: what it has, what it gets ------------------------------------------------


class _Account:
    """The fields of one helpdesk account, found by what identifies them there."""

    def __init__(self, helpdesk: str, client: Any) -> None:
        self.helpdesk, self.client = helpdesk, client
        if helpdesk == "zendesk":
            self.tickets = {f.title.casefold(): str(f.id) for f in client.ticket_fields()}
            self.customers = {f.key: f.key for f in client.organization_fields()}
        else:
            self.tickets = {f.name: f.name for f in client.ticket_fields()}
            self.customers = {f.name: f.name for f in client.company_fields()}

    def found(self, spec: FieldSpec) -> str | None:
        """The field's id (Zendesk ticket field) or key/name, if the account has it."""
        if self.helpdesk == "zendesk":
            if spec.level == "ticket":
                return self.tickets.get(spec.title.casefold())
            return self.customers.get(spec.key)
        if spec.level == "ticket":
            return self.tickets.get("cf_" + _snake(spec.title))
        return self.customers.get(_snake(spec.title))

    def create(self, spec: FieldSpec) -> str:
        """Create the field; its id or name."""
        if self.helpdesk == "zendesk":
            if spec.level == "ticket":
                tagger = "tagger" if spec.kind == "dropdown" else spec.kind
                options = [(o, spec.prefix + o) for o in spec.options]
                return str(self.client.create_ticket_field(tagger, spec.title, options).id)
            options = [(o, o) for o in spec.options]
            created = self.client.create_organization_field(
                spec.kind, spec.key, spec.title, options
            )
            return str(created.key)
        custom = {
            "dropdown": "custom_dropdown",
            "integer": "custom_number",
            "textarea": "custom_paragraph",
        }.get(spec.kind, f"custom_{spec.kind}")
        level = "ticket" if spec.level == "ticket" else "company"
        return str(self.client.create_field(level, spec.title, custom, spec.options).name)


def describe(spec: FieldSpec, helpdesk: str) -> str:
    """One line: where, what, its values."""
    where = {"ticket": "ticket field", "customer": _customer_word(helpdesk) + " field"}[spec.level]
    name = spec.title if spec.level == "ticket" or helpdesk == "freshdesk" else spec.key
    values = f": {', '.join(spec.options)}" if spec.options else ""
    return f"{where} {name!r} ({spec.kind}{values})"


def _customer_word(helpdesk: str) -> str:
    return "organization" if helpdesk == "zendesk" else "company"


# --- the mapping -------------------------------------------------------------------------------


def mapping_for(helpdesk: str, fields: dict[FieldSpec, str]) -> str:
    """The bundled example mapping, its fields pointed at the account's (`fields`: each spec
    and its id or name there), the facts no contract sold uses left out; as YAML text."""
    example = default_mappings_dir() / "helpdesks" / f"{helpdesk}.example.yaml"
    data = yaml.safe_load(example.read_text(encoding="utf-8"))
    due = data["results"]["due"]
    # Every field the example names (it is written for all the bundled contracts).
    every = needed_fields(list(load_contracts(default_mappings_dir()).values()))
    paths = {spec.path: spec for spec in fields}
    for known in sorted(every, key=lambda s: s.path, reverse=True):
        spec = paths.get(known.path, known)
        if spec.zendesk_only and helpdesk != "zendesk":
            continue
        parent, last = _parent(data, spec.path)
        if spec not in fields:
            del parent[last]
            continue
        entry = parent[last]
        if spec.level == "ticket":
            entry["ticket_field"] = int(fields[spec]) if helpdesk == "zendesk" else fields[spec]
        else:
            entry["organization_field" if helpdesk == "zendesk" else "company_field"] = fields[spec]
        if helpdesk == "zendesk" and spec.path == ("facts", "severity"):
            entry["values"] = {spec.prefix + o: o for o in spec.options}
    for section in ("quantities", "flags", "events", "customer_facts"):
        if not data["facts"].get(section):
            data["facts"].pop(section, None)
    data["results"]["due"] = [d for d in due if d]
    header = (
        f"# The {helpdesk} mapping `sla-connector init` wrote for this account: where each\n"
        "# ticket fact comes from and where each result goes. The bundled example\n"
        f"# ({example.name}) explains every key.\n"
    )
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _parent(data: Any, path: tuple[str | int, ...]) -> tuple[Any, str | int]:
    node = data
    for step in path[:-1]:
        node = node[step]
    return node, path[-1]


# --- the command -----------------------------------------------------------------------------


def run_init(args: Any, out: TextIO, *, ask: Callable[[str], str] | None = None) -> int:
    """The `init` command; returns the exit status. `ask` prompts for what the flags left
    out (None: they must all be given)."""
    helpdesk = args.helpdesk or _asked(ask, "helpdesk (zendesk or freshdesk)", "--helpdesk")
    if helpdesk not in ("zendesk", "freshdesk"):
        raise InputError(f"--helpdesk {helpdesk}: expected zendesk or freshdesk")
    url = args.url or _asked(ask, f"{helpdesk} URL (https://…)", "--url")
    email = args.email
    if helpdesk == "zendesk" and not email:
        email = _asked(ask, "the Zendesk agent's email (its API token is a secret)", "--email")
    bundled = load_contracts(default_mappings_dir())
    names = args.contracts or _asked(
        ask, f"contracts sold, comma-separated ({', '.join(sorted(bundled))})", "--contracts"
    )
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in bundled]
    if unknown or not chosen:
        raise InputError(
            f"--contracts {names}: unknown {', '.join(unknown) or 'none given'}; "
            f"the bundled contracts are {', '.join(sorted(bundled))}"
        )
    folder = Path(args.dir)
    section: dict[str, Any] = {"url": url}
    if email:
        section["email"] = email
    with tempfile.TemporaryDirectory(prefix="sla-init-") as scratch:
        settings = Settings.model_validate(
            {
                "helpdesk": helpdesk,
                "state_dir": Path(scratch),
                "source": "<init>",
                helpdesk: section,
            }
        )
        state = open_state(settings)
        client = open_helpdesk(settings, state)
        try:
            account = _Account(helpdesk, getattr(client, "client"))  # noqa: B009
            specs = [
                s
                for s in needed_fields([bundled[n] for n in chosen])
                if helpdesk == "zendesk" or not s.zendesk_only
            ]
            found = {s: f for s in specs if (f := account.found(s)) is not None}
            missing = [s for s in specs if s not in found]
            out.write(
                printable(
                    f"{helpdesk} {url}: {len(found)} of the {len(specs)} fields the mapping "
                    f"needs for {', '.join(chosen)} are there"
                )
                + "\n"
            )
            for spec in missing:
                verb = "create" if args.apply else "would create"
                out.write(printable(f"  {verb} {describe(spec, helpdesk)}") + "\n")
            if not args.apply:
                if missing:
                    out.write("Nothing created: run again with --apply to create them.\n")
                    return 0
            else:
                for spec in missing:
                    found[spec] = account.create(spec)
        finally:
            client.close()
            state.close()
    if missing and not args.apply:
        return 0
    written = _write_files(folder, helpdesk, section, chosen, mapping_for(helpdesk, found))
    for path in written:
        out.write(printable(f"wrote {path}") + "\n")
    return _check(folder / "config.toml", out)


def _asked(ask: Callable[[str], str] | None, what: str, flag: str) -> str:
    if ask is None:
        raise InputError(f"{flag} is required (or run init on a terminal to be asked)")
    answer = ask(f"{what}: ").strip()
    if not answer:
        raise InputError(f"{flag}: no answer given")
    return answer


def _write_files(
    folder: Path, helpdesk: str, section: dict[str, Any], chosen: list[str], mapping: str
) -> list[Path]:
    """The configuration, the mapping and the contracts sold; a file already there is left
    as it is and the new text goes beside it (`.new`). Returns the paths written."""
    written = []
    mappings = folder / "mappings"
    source = default_mappings_dir() / "contracts"
    files: list[tuple[Path, str]] = [
        (folder / "config.toml", _config_text(helpdesk, section, mappings)),
        (mappings / "helpdesks" / f"{helpdesk}.yaml", mapping),
    ]
    files += [
        (mappings / "contracts" / f"{n}.yaml", (source / f"{n}.yaml").read_text()) for n in chosen
    ]
    for path, text in files:
        path.parent.mkdir(parents=True, exist_ok=True)
        target = path
        if path.exists():
            if path.read_text(encoding="utf-8") == text:
                continue
            target = path.with_name(path.name + ".new")
        target.write_text(text, encoding="utf-8")
        written.append(target)
    return written


def _config_text(helpdesk: str, section: dict[str, Any], mappings: Path) -> str:
    lines = [
        "# Written by `sla-connector init`; systemd/config.toml.example explains every key.",
        "# No secrets here: they come from systemd credentials or the environment.",
        f'helpdesk = "{helpdesk}"',
        f'mappings = "{mappings.resolve()}"',
        "poll_interval = 60",
        "",
        f"[{helpdesk}]",
        *(f'{key} = "{value}"' for key, value in section.items()),
    ]
    return "\n".join(lines) + "\n"


def _check(config: Path, out: TextIO) -> int:
    """`check` with the files written (its state in a scratch folder: the service's own is
    made at its first start)."""
    out.write("\nsla-connector check:\n")
    settings = load_settings(config)
    with tempfile.TemporaryDirectory(prefix="sla-init-check-") as scratch:
        return run_checks(settings.model_copy(update={"state_dir": Path(scratch)}), out)
