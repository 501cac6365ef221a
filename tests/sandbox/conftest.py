"""Fixtures for the sandbox tests: a seeded sandbox on a manual clock, and clients to it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from connector.sandbox import FRESHDESK_URL, ZENDESK_URL, ManualClock, Sandbox

# A Monday morning; seeded tickets are dated before it.
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ZENDESK_AUTH = ("agent@example.com/token", "sandbox-zendesk-token")
FRESHDESK_AUTH = ("sandbox-freshdesk-key", "X")


@pytest.fixture
def clock() -> ManualClock:
    """The sandbox's clock; moves only when a test (or a sleeping client) moves it."""
    return ManualClock(START)


@pytest.fixture
def sandbox(clock: ManualClock) -> Sandbox:
    """A sandbox seeded with the bundled customers and tickets."""
    return Sandbox.seeded(clock=clock)


@pytest.fixture
def zendesk(sandbox: Sandbox) -> Iterator[httpx.Client]:
    """An authenticated in-process client to the sandbox's Zendesk API."""
    with httpx.Client(
        transport=sandbox.zendesk_transport(), base_url=ZENDESK_URL, auth=ZENDESK_AUTH
    ) as client:
        yield client


@pytest.fixture
def freshdesk(sandbox: Sandbox) -> Iterator[httpx.Client]:
    """An authenticated in-process client to the sandbox's Freshdesk API."""
    with httpx.Client(
        transport=sandbox.freshdesk_transport(), base_url=FRESHDESK_URL, auth=FRESHDESK_AUTH
    ) as client:
        yield client
