"""Lists of records from a helpdesk read one by one, where the list as a whole will not read.

A page of a thousand tickets is decoded in one pass from its JSON (the fast path). When that
fails on one ticket (`tags: null`, no `status`, a time without a zone), the page is read again
record by record: the good ones go on, each bad one is reported with its id, so that one broken
ticket never holds up its neighbours.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

__all__ = ["Malformed", "each_valid"]

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Malformed:
    """A record that did not read: its id where it has one, and the first problem."""

    id: str | None
    problem: str


def each_valid(records: Iterable[Any], model: type[M]) -> tuple[list[M], list[Malformed]]:
    """The records that validate as `model`, and one `Malformed` for each that does not."""
    good: list[M] = []
    bad: list[Malformed] = []
    for record in records:
        try:
            good.append(model.model_validate(record))
        except ValidationError as exc:
            first = exc.errors(include_url=False, include_input=False)[0]
            where = ".".join(str(part) for part in first["loc"]) or "record"
            raw_id = record.get("id") if isinstance(record, dict) else None
            record_id = str(raw_id) if isinstance(raw_id, int | str) else None
            bad.append(Malformed(record_id, f"{where}: {first['type']}"))
    return good, bad
