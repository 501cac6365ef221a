"""Reading mapping files from disk: YAML with line numbers, problems as `ConfigError`.

The only module that reads mapping files (contracts and helpdesk field maps). Each problem
found becomes one line naming the file, the key path and (where the YAML has it) the line.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from connector.errors import ConfigError, Problem
from connector.helpdesks.mapping import HelpdeskMapping, cross_check
from connector.sla.contract import Contract, ContractInvalid

__all__ = [
    "default_mappings_dir",
    "line_of",
    "load_contract",
    "load_contracts",
    "load_helpdesk_mapping",
    "read_yaml",
]

KeyPath = tuple[str | int, ...]
# libyaml's parser when present: five times faster, same marks for line numbers.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def default_mappings_dir() -> Path:
    """`$SLA_CONNECTOR_MAPPINGS`, else `./mappings`, else the folder bundled beside the package."""
    if env := os.environ.get("SLA_CONNECTOR_MAPPINGS"):
        return Path(env)
    here = Path("mappings")
    if (here / "contracts").is_dir():
        return here
    return Path(__file__).resolve().parent.parent / "mappings"


def read_yaml(path: Path) -> tuple[Any, dict[KeyPath, int]]:
    """Parse a YAML file; return its data and the 1-based line of every key path in it."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(str(path), "", f"cannot read: {exc}")]) from None
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError([Problem(str(path), "", f"not valid YAML: {reason}", line)]) from None
    finally:
        loader.dispose()
    lines: dict[KeyPath, int] = {}
    if node is not None:
        for key_path, line in _walk(node, ()):
            lines.setdefault(key_path, line)
    return data, lines


def _walk(node: yaml.Node, path: KeyPath) -> Iterator[tuple[KeyPath, int]]:
    yield path, node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else str(key.start_mark.line)
            yield (*path, name), key.start_mark.line + 1
            yield from _walk(value, (*path, name))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _walk(item, (*path, index))


def line_of(lines: dict[KeyPath, int], path: KeyPath) -> int | None:
    """The line of the longest prefix of `path` that the file has."""
    normalised = tuple(p if isinstance(p, int) else str(p) for p in path)
    for end in range(len(normalised), -1, -1):
        if (line := lines.get(normalised[:end])) is not None:
            return line
    return None


def load_contract(path: Path) -> Contract:
    """Load and validate one contract file; ConfigError lists every problem in it."""
    data, lines = read_yaml(path)
    try:
        contract = Contract.from_data(data)
    except ContractInvalid as exc:
        raise ConfigError(
            [
                Problem(str(path), ".".join(map(str, key)), message, line_of(lines, key))
                for key, message in exc.problems
            ]
        ) from None
    if contract.name != path.stem:
        raise ConfigError(
            [
                Problem(
                    str(path),
                    "name",
                    f"is {contract.name!r} but the file is named {path.name!r}: they must match",
                    line_of(lines, ("name",)),
                )
            ]
        )
    return contract


def load_contracts(mappings: Path) -> dict[str, Contract]:
    """Every contract in `mappings/contracts/*.yaml`, by name; all problems of all files."""
    folder = mappings / "contracts"
    if not folder.is_dir():
        raise ConfigError(
            [
                Problem(
                    str(folder),
                    "",
                    "no such folder (give --mappings DIR, whose "
                    "contracts/ holds the contract files)",
                )
            ]
        )
    contracts: dict[str, Contract] = {}
    problems: list[Problem] = []
    for path in sorted(folder.glob("*.yaml")):
        try:
            contract = load_contract(path)
        except ConfigError as exc:
            problems.extend(exc.problems)
        else:
            contracts[contract.name] = contract
    if problems:
        raise ConfigError(problems)
    if not contracts:
        raise ConfigError([Problem(str(folder), "", "holds no *.yaml contract file")])
    return contracts


def load_helpdesk_mapping(path: Path) -> HelpdeskMapping:
    """Load and validate a helpdesk mapping file; ConfigError lists every problem in it."""
    data, lines = read_yaml(path)
    try:
        mapping = HelpdeskMapping.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(p for p in error["loc"] if not str(p).startswith("function-"))
            message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
            message = message.removeprefix("Value error, ")
            problems.append(
                Problem(str(path), ".".join(map(str, loc)), message, line_of(lines, loc))
            )
        raise ConfigError(problems) from None
    problems = [
        Problem(str(path), ".".join(map(str, where)), message, line_of(lines, where))
        for where, message in cross_check(mapping)
    ]
    if problems:
        raise ConfigError(problems)
    return mapping
