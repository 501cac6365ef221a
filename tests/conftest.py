"""Shared test setup: hypothesis profiles and the bundled contracts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from connector.mappingfiles import load_contracts
from connector.sla.contract import Contract

ROOT = Path(__file__).resolve().parent.parent
MAPPINGS = ROOT / "mappings"

# CI replays the same examples every run (a red run is reproducible); by hand, new ones.
settings.register_profile(
    "ci", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="session")
def contracts() -> dict[str, Contract]:
    """The five bundled contracts."""
    return load_contracts(MAPPINGS)


@pytest.fixture(scope="session")
def owned(contracts: dict[str, Contract]) -> frozenset[str]:
    """Every tag the bundled contracts emit: what the writers may remove."""
    return frozenset().union(*(c.owned_tags for c in contracts.values()))
