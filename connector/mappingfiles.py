"""Reading mapping files from disk: YAML with line numbers, problems as `ConfigError`.

The only module that reads mapping files (contracts and helpdesk field maps). Each problem
found becomes one line naming the file, the key path and (where the YAML has it) the line.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import re
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import ValidationError

from connector.errors import ConfigError, Problem, validation_problems
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
# Real mapping files nest six levels at most; far deeper is a broken or hostile file.
MAX_DEPTH = 32
# The bundled files are a few kilobytes; a file this large is not a mapping file.
MAX_BYTES = 8 * 1024 * 1024
# Below this many nesting characters a file cannot nest past MAX_DEPTH far enough to matter.
_SCAN_ABOVE = 2000


def default_mappings_dir() -> Path:
    """`$SLA_CONNECTOR_MAPPINGS`, else the mappings bundled in the package.

    The bundled folder is package data (`connector/bundled`, the repository's `mappings/`), so
    a plain `pip install` finds it from any working directory. A `--mappings` option or the
    configuration's `mappings` key is given precedence by the callers.
    """
    if env := os.environ.get("SLA_CONNECTOR_MAPPINGS"):
        return Path(env)
    # pip installs a wheel as files, so the resource is a folder on disk.
    return Path(str(resources.files("connector") / "bundled"))


def read_yaml(path: Path) -> tuple[Any, dict[KeyPath, int]]:
    """Parse a YAML file; return its data and the 1-based line of every key path in it.

    Whatever the bytes, the only error is a `ConfigError` naming the file and, where the YAML
    has them, the key path and line: a key given twice, nesting deeper than any mapping file
    needs, a value the YAML types refuse (a 30 February, a number of 5000 digits).
    """
    file = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ConfigError(
                [
                    Problem(
                        file, "", f"is {size:,} bytes: a mapping file may be {MAX_BYTES:,} at most"
                    )
                ]
            )
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError([Problem(file, "", "no such file")]) from None
    except OSError as exc:
        raise ConfigError([Problem(file, "", f"cannot read: {exc.strerror or exc}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        problem = f"not UTF-8 text: byte {raw[exc.start]:#04x} at offset {exc.start}"
        at = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError([Problem(file, "", problem, at)]) from None
    places = _Places(text)
    _refuse_deep_nesting(text, file, places)
    try:
        return _parsed(text, file, places)
    except yaml.reader.ReaderError as exc:
        raise ConfigError([_unreadable_character(file, text, places, exc)]) from None
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([_syntax_problem(file, text, places, exc)]) from None
    except yaml.YAMLError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError([Problem(file, "", f"not valid YAML: {reason}")]) from None
    except RecursionError:
        raise ConfigError(
            [Problem(file, "", f"nested more than {MAX_DEPTH} levels deep")]
        ) from None


def _parsed(text: str, file: str, places: _Places) -> tuple[Any, dict[KeyPath, int]]:
    """The data of a YAML text and the line of each key path; YAML's errors pass through."""
    loader = _Loader(text)  # PyYAML's own loader reads (and checks) the characters here
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        lines = _index(node, file, places)
        return _construct(loader, node, file, places), lines
    finally:
        loader.dispose()


# YAML's line breaks that editors do not break lines at: a U+2028 pasted into a value would
# put every later line number one off.
_YAML_ONLY_BREAKS = re.compile("[\x85\u2028\u2029]")
_YAML_BREAKS = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
_EDITOR_BREAKS = re.compile("\r\n|[\r\n]")
_ALIAS = re.compile(r"\*([^\s,\[\]{}]+)")
# What PyYAML names a tag it has no constructor for; a file's shorthand is `!!` for it.
_STANDARD_TAGS = "tag:yaml.org,2002:"


class _Mark(Protocol):
    """A place in a YAML text, as PyYAML's and libyaml's marks give it (0-based)."""

    line: int
    column: int


class _Places:
    """Where a YAML mark (0-based, in YAML's lines) is as an editor shows it: 1-based line and
    column. PyYAML's and libyaml's marks agree on line and column (not on the index: one
    counts a leading byte order mark, the other does not)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.bom = 1 if text.startswith("\ufeff") else 0
        self.exact = _YAML_ONLY_BREAKS.search(text) is None

    @cached_property
    def _editor_starts(self) -> list[int]:
        return [0, *(m.end() for m in _EDITOR_BREAKS.finditer(self.text))]

    @cached_property
    def _yaml_starts(self) -> list[int]:
        if self.exact:
            return self._editor_starts
        return [0, *(m.end() for m in _YAML_BREAKS.finditer(self.text))]

    def line(self, mark: _Mark) -> int:
        """The 1-based line of `mark`."""
        return mark.line + 1 if self.exact else self.of_offset(self.offset(mark))[0]

    def of_mark(self, mark: _Mark) -> tuple[int, int]:
        """The 1-based line and column of `mark`."""
        if self.exact:
            return mark.line + 1, mark.column + 1
        return self.of_offset(self.offset(mark))

    def offset(self, mark: _Mark) -> int:
        """The index in the text of the character `mark` points at."""
        starts = self._yaml_starts
        start = starts[min(mark.line, len(starts) - 1)]
        return start + mark.column + (self.bom if mark.line == 0 else 0)

    def of_offset(self, offset: int) -> tuple[int, int]:
        """The 1-based line and column of the character at index `offset` of the text."""
        starts = self._editor_starts
        line = bisect.bisect_right(starts, offset)
        column = offset - starts[line - 1] + 1 - (self.bom if line == 1 else 0)
        return line, max(column, 1)


def _unreadable_character(
    file: str, text: str, places: _Places, exc: yaml.reader.ReaderError
) -> Problem:
    """A character YAML refuses (a control character), at its line and column.

    The reader's position is a character index in PyYAML's reader but a byte index in
    libyaml's: the character itself is looked for instead, its first place being where the
    reader stopped (a byte order mark is allowed first only).
    """
    character = exc.character
    if isinstance(character, int):
        what = f"U+{character:04X}"
        at = text.find(chr(character), places.bom if character == 0xFEFF else 0)
    else:
        what, at = repr(character), -1
    if at < 0:
        at = min(exc.position, len(text))
    line, column = places.of_offset(at)
    return Problem(file, "", f"not valid YAML: character {what} is not allowed here", line, column)


def _syntax_problem(file: str, text: str, places: _Places, exc: yaml.MarkedYAMLError) -> Problem:
    """A YAML syntax error where the parser found it, in our words where we know the case.

    The parser notices some mistakes only further on (an unclosed bracket at the next key, a
    key without ':' on the next line): the message names where the construct began.
    """
    problem = exc.problem or (str(exc).splitlines() or [type(exc).__name__])[0]
    context = exc.context or ""
    mark, opened = exc.problem_mark, exc.context_mark
    line, column = places.of_mark(mark) if mark is not None else (None, None)
    start = "" if opened is None else "at line {}, column {}".format(*places.of_mark(opened))
    if "cannot start any token" in problem and mark is not None:
        found = text[places.offset(mark) : places.offset(mark) + 1]
        if found == "\t":
            reason = "a tab: YAML indents with spaces only"
        else:
            reason = f"{found!r} cannot start a value (put the value in quotes)"
    elif "mapping values are not allowed" in problem:
        reason = (
            "a ':' where no key can start (quote a value that holds ': ', or check the indentation)"
        )
    elif "simple key" in context and "':'" in problem and start:
        reason = f"no ':' after the key {start}"
    elif "quoted scalar" in context and "end of stream" in problem and start:
        reason = f"the quoted text {start} is never closed"
    elif "flow mapping" in context and "','" in problem and start:
        reason = f"the '{{' {start} is not closed by '}}' (or an item lacks its ',')"
    elif "flow sequence" in context and "','" in problem and start:
        reason = f"the '[' {start} is not closed by ']' (or an item lacks its ',')"
    elif "another document" in problem:
        reason = "a second document (after '---'): a mapping file holds one"
    elif "undefined alias" in problem and mark is not None:
        alias = _ALIAS.match(text, places.offset(mark))
        name = alias.group(1) if alias else "?"
        reason = f"the alias *{name} names no anchor (&{name}) above it"
    elif "could not determine a constructor" in problem:
        tag = problem.rpartition(" ")[2].strip("'").replace(_STANDARD_TAGS, "!!")
        reason = f"the tag {tag} is not allowed (a mapping file holds plain values)"
    elif "unhashable key" in problem:
        reason = "a list or keys and values used as a key: a key is a single value"
    elif "expected key" in problem or "<block end>" in problem:
        reason = "expected a key here: check this line's indentation, and the quotes above it"
    elif context and start and opened is not None and mark is not None and opened.line != mark.line:
        reason = f"{problem} ({context} {start})"
    else:
        reason = problem
    return Problem(file, "", f"not valid YAML: {reason}", line, column)


def _index(node: yaml.Node, file: str, places: _Places) -> dict[KeyPath, int]:
    """The line of every key path; refuses keys given twice and nesting past `MAX_DEPTH`.

    Iterative and visiting each node once: an alias is not walked again, so a file whose
    anchors refer to themselves, or nest aliases of aliases (a "billion laughs"), is indexed
    in time proportional to its size.
    """
    lines: dict[KeyPath, int] = {}
    problems: list[Problem] = []
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, KeyPath]] = [(node, ())]
    while stack:
        current, path = stack.pop()
        lines.setdefault(path, places.line(current.start_mark))
        if id(current) in seen:
            continue
        seen.add(id(current))
        if len(path) > MAX_DEPTH:
            problems.append(
                Problem(
                    file,
                    ".".join(map(str, path[:MAX_DEPTH])) + "...",
                    f"nested more than {MAX_DEPTH} levels deep",
                    places.line(current.start_mark),
                )
            )
            break
        children: list[tuple[yaml.Node, KeyPath]] = []
        if isinstance(current, yaml.MappingNode):
            first: dict[str, int] = {}
            for key, value in current.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else str(key.start_mark.line)
                line = places.line(key.start_mark)
                if name in first and key.tag != "tag:yaml.org,2002:merge":
                    problems.append(
                        Problem(
                            file,
                            ".".join(map(str, (*path, name))),
                            f"given twice (first on line {first[name]})",
                            line,
                        )
                    )
                first.setdefault(name, line)
                lines.setdefault((*path, name), line)
                children.append((value, (*path, name)))
        elif isinstance(current, yaml.SequenceNode):
            children = [(item, (*path, index)) for index, item in enumerate(current.value)]
        stack.extend(reversed(children))
    if problems:
        raise ConfigError(problems)
    return lines


def _construct(loader: Any, node: yaml.Node, file: str, places: _Places) -> Any:
    """The Python data of a composed document; a scalar YAML cannot convert is a Problem."""
    try:
        return loader.construct_document(node)
    except yaml.YAMLError:
        raise
    except Exception:  # PyYAML's converters fail in many ways on odd scalars: find which
        pass
    # A scalar whose tag says int, float, bool or timestamp (resolved, or written as `!!int`)
    # but whose text Python cannot convert: a 30 February, a number of 5000 digits. Find it
    # again, for its key path and line.
    constructor = yaml.constructor.SafeConstructor()
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, KeyPath]] = [(node, ())]
    while stack:
        current, path = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, yaml.ScalarNode):
            try:
                constructor.construct_object(current, deep=True)
            except Exception as exc:
                raise ConfigError([_unconvertible(file, path, current, exc, places)]) from None
        elif isinstance(current, yaml.MappingNode):
            for key, value in reversed(current.value):
                name = key.value if isinstance(key, yaml.ScalarNode) else str(key.start_mark.line)
                stack.append((value, (*path, name)))
                stack.append((key, (*path, name)))
        elif isinstance(current, yaml.SequenceNode):
            stack.extend((item, (*path, i)) for i, item in reversed(list(enumerate(current.value))))
    raise ConfigError([Problem(file, "", "not valid YAML: a value cannot be read")])


def _unconvertible(
    file: str, path: KeyPath, node: yaml.ScalarNode, exc: Exception, places: _Places
) -> Problem:
    kind = node.tag.rsplit(":", 1)[-1]
    if "digits" in str(exc):
        reason = "too many digits"
    elif kind == "timestamp" and isinstance(exc, ValueError) and str(exc):
        reason = str(exc)  # "day is out of range for month"
    else:
        reason = f"cannot read {node.value[:40]!r} as one"
    return Problem(
        file,
        ".".join(map(str, path)),
        f"not a valid {kind}: {reason}",
        places.line(node.start_mark),
    )


def _refuse_deep_nesting(text: str, file: str, places: _Places) -> None:
    """Refuse a file nested past `MAX_DEPTH` before the composer sees it.

    The composer recurses once per level: in libyaml's binding a few ten thousand levels
    overflow the C stack and kill the process. Each level needs one of `[{-:?`, so a file with
    few of them cannot nest deep and is not scanned; otherwise the parser's events (a flat
    stream) are counted.
    """
    if sum(text.count(c) for c in "[{-:?") <= _SCAN_ABOVE:
        return
    try:
        _count_depth(text, file, _Loader, places)
    except yaml.YAMLError:
        # libyaml's scanner reads a flow collection ahead of its events and has a nesting
        # limit of its own (PyYAML 6.0.4 and later): count again with the pure-Python parser,
        # which emits events level by level, so the file gets our line, not libyaml's wording.
        # A file that does not parse there either is left to the composer, which reports it.
        with contextlib.suppress(yaml.YAMLError):
            _count_depth(text, file, yaml.SafeLoader, places)


def _count_depth(text: str, file: str, loader: Any, places: _Places) -> None:
    depth = 0
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                mark = event.start_mark
                line = None if mark is None else places.line(mark)
                problem = f"nested more than {MAX_DEPTH} levels deep"
                raise ConfigError([Problem(file, "", problem, line)])
        elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            depth -= 1


def line_of(lines: dict[KeyPath, int], path: KeyPath) -> int | None:
    """The line of the longest prefix of `path` that the file has."""
    normalised = tuple(p if isinstance(p, int) else str(p) for p in path)
    # A mapping key YAML read as a number (`1: x`) is indexed as the text it was written in.
    as_text = tuple(str(p) for p in path)
    for end in range(len(normalised), -1, -1):
        line = lines.get(normalised[:end])
        if line is None:
            line = lines.get(as_text[:end])
        if line is not None:
            return line
    return None


def _mapping_document(path: Path, data: Any, lines: dict[KeyPath, int], what: str) -> None:
    """Refuse a file that is empty or whose top level is not keys and values."""
    if data is None:
        raise ConfigError([Problem(str(path), "", f"is empty: expected {what}")])
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"the single value {str(data)[:40]!r}"
        raise ConfigError(
            [
                Problem(
                    str(path),
                    "",
                    f"expected {what} (keys and their values), got {kind}",
                    line_of(lines, ()),
                )
            ]
        )


def load_contract(path: Path) -> Contract:
    """Load and validate one contract file; ConfigError lists every problem in it."""
    data, lines = read_yaml(path)
    _mapping_document(path, data, lines, "a contract")
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
    example = path.with_name(path.name.removesuffix(".yaml") + ".example.yaml")
    if not path.exists() and example.is_file():
        # The default `<mappings>/helpdesks/<helpdesk>.yaml` of a folder that ships examples.
        raise ConfigError(
            [
                Problem(
                    str(path),
                    "",
                    "no such file: name your mapping file with helpdesk_mapping in the "
                    f"configuration (start from {example}, with your field ids put in)",
                )
            ]
        )
    data, lines = read_yaml(path)
    _mapping_document(path, data, lines, "a helpdesk mapping")
    try:
        mapping = HelpdeskMapping.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            [
                Problem(str(path), ".".join(map(str, loc)), message, line_of(lines, loc))
                for loc, message in validation_problems(exc, HelpdeskMapping)
            ]
        ) from None
    problems = [
        Problem(str(path), ".".join(map(str, where)), message, line_of(lines, where))
        for where, message in cross_check(mapping)
    ]
    if problems:
        raise ConfigError(problems)
    return mapping
