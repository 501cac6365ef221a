"""JSON Schema files for what crosses the engine's boundary: `TicketFacts` in (`sla simulate`
reads them as JSON lines), `Decision` out (it writes them).

Generated from the models, so that they cannot drift from the code: `python -m
connector.schemas docs/schemas` writes them; a test compares the committed files with what
the models say now.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from connector.sla.model import Decision, TicketFacts

__all__ = ["SCHEMAS", "schema_texts"]

SCHEMAS: dict[str, tuple[type[BaseModel], Literal["validation", "serialization"]]] = {
    "ticket-facts.schema.json": (TicketFacts, "validation"),
    "decision.schema.json": (Decision, "serialization"),
}
_BASE = "https://sla-connector.invalid/schemas/"  # an id, not an address: nothing is fetched


def schema_texts() -> dict[str, str]:
    """Each schema file's name and its text."""
    texts = {}
    for name, (model, mode) in SCHEMAS.items():
        schema = model.model_json_schema(mode=mode)
        document = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": _BASE + name}
        texts[name] = json.dumps({**document, **schema}, indent=2, ensure_ascii=False) + "\n"
    return texts


def main(argv: list[str]) -> int:
    """Write the schema files into the folder given."""
    if len(argv) != 1:
        print("usage: python -m connector.schemas FOLDER", file=sys.stderr)
        return 2
    folder = Path(argv[0])
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in schema_texts().items():
        (folder / name).write_text(text, encoding="utf-8")
        print(folder / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
