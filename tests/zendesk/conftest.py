"""Fixtures of the Zendesk tests: a fake clock, a shell that never really sleeps, respx."""

from __future__ import annotations

import random
from collections.abc import Iterator

import httpx
import pytest
import respx
from zendesk_helpers import BASE, FakeTime, MakeClient

from connector.helpdesks.zendesk import ZendeskClient
from connector.http import Credentials, HttpShell, RetryPolicy


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        yield mock


@pytest.fixture
def make_client(fake_time: FakeTime) -> Iterator[MakeClient]:
    clients: list[httpx.Client] = []

    def make(credentials: Credentials | None = None, attempts: int = 6) -> ZendeskClient:
        http = httpx.Client()
        clients.append(http)
        shell = HttpShell(
            http,
            credentials=credentials,
            policy=RetryPolicy(attempts=attempts),
            sleep=fake_time.sleep,
            clock=fake_time.clock,
            wall_clock=fake_time.wall,
            rng=random.Random(7),
        )
        return ZendeskClient(shell, BASE)

    yield make
    for http in clients:
        http.close()
