"""The JSON Schema files in docs/schemas say what the models say now."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connector.schemas import SCHEMAS, schema_texts

DOCS = Path(__file__).resolve().parent.parent / "docs" / "schemas"


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_the_committed_schema_is_the_models(name: str) -> None:
    committed = (DOCS / name).read_text(encoding="utf-8")
    assert committed == schema_texts()[name], "run: python -m connector.schemas docs/schemas"


def test_the_schemas_name_every_field_of_the_json_lines() -> None:
    facts = json.loads((DOCS / "ticket-facts.schema.json").read_text())
    decision = json.loads((DOCS / "decision.schema.json").read_text())
    assert {"id", "created_at", "contract", "status_history"} <= set(facts["properties"])
    assert facts["required"] == ["id", "created_at", "contract"]
    assert {"ticket", "targets", "entitlement", "note", "next_change_at"} <= set(
        decision["properties"]
    )
    assert facts["additionalProperties"] is False  # an unknown key is refused, not ignored
