"""The Freshdesk poll position under any order of changes and any clock skew: nothing skipped.

A fake ticket list answers like Freshdesk's (`updated_since`, oldest change first, `Link` to
the next page, a `Date` header from its own clock). Hypothesis interleaves changes stamped a
little before the server's clock (servers that disagree, writes that show late), now and then
hours after it (a server whose clock ran ahead), clock ticks, and single pages of the poll, in
any order. After a last quiet round, every ticket's current version must have been reported.
"""

from __future__ import annotations

import email.utils
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from freshdesk_fakes import BASE, ticket_json
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.helpdesks.freshdesk import PollPosition, TicketPoller
from connector.http import Request, Response

pytestmark = pytest.mark.reliability

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
# How far behind the server's clock a change may be stamped (well inside the poller's OVERLAP).
MAX_LATE = 90


@dataclass
class FakeList:
    """Freshdesk's ticket list over `stamps` (ticket id -> updated_at), on its own clock."""

    now: datetime = T0
    stamps: dict[int, datetime] = field(default_factory=dict)
    per_page: int = 3

    def answer(self, request: Request) -> Response:
        params = dict(request.params)
        since = datetime.fromisoformat(params["updated_since"])
        page = int(params["page"])
        ordered = sorted(
            ((stamp, ticket_id) for ticket_id, stamp in self.stamps.items() if stamp >= since),
        )
        chunk = ordered[(page - 1) * self.per_page : page * self.per_page]
        headers = {"Date": email.utils.format_datetime(self.now, usegmt=True)}
        if page * self.per_page < len(ordered):
            headers["Link"] = f'<{BASE}/api/v2/tickets?page={page + 1}>; rel="next"'
        body = json.dumps([ticket_json(ticket_id, stamp) for stamp, ticket_id in chunk])
        return Response(200, httpx.Headers(headers), body.encode(), request)


change = st.tuples(
    st.just("change"),
    st.integers(0, 11),
    st.one_of(
        st.integers(-MAX_LATE, 0),
        st.sampled_from([6 * 3600, 26 * 3600]),  # a server clock hours ahead
    ),
)
tick = st.tuples(st.just("tick"), st.integers(1, 400), st.just(0))
page = st.tuples(st.just("page"), st.just(0), st.just(0))
steps = st.lists(st.one_of(change, tick, page, page), max_size=60)


@settings(max_examples=300, deadline=None)
@given(steps=steps, per_page=st.integers(1, 4))
def test_no_change_is_ever_skipped(steps: list[tuple[str, int, int]], per_page: int) -> None:
    # The daemon's poller: each page asked again from the last change read (restart_every=1).
    # Following `Link` instead (restart_every=300) is for a reader of a list nobody changes
    # while it pages: a change moves a ticket to the end and shifts the pages under it.
    restart_every = 1
    server = FakeList(per_page=per_page)
    poller = TicketPoller(T0 - timedelta(days=1), per_page=per_page, restart_every=restart_every)
    reported: set[tuple[int, datetime]] = set()

    def one_page() -> None:
        if poller.done:
            poller.start_round()
        request = poller.next_request(BASE)
        assert request is not None
        for ticket in poller.feed(server.answer(request)):
            version = (ticket.id, ticket.updated_at)
            assert version not in reported, "a version reported twice"
            reported.add(version)

    for kind, number, skew in steps:
        if kind == "change":
            server.stamps[number] = server.now + timedelta(seconds=skew)
        elif kind == "tick":
            server.now += timedelta(seconds=number)
        else:
            one_page()
        # What the daemon saves after each page is enough to resume exactly there.
        saved = PollPosition.model_validate_json(poller.position.model_dump_json())
        poller = TicketPoller.resume(saved, per_page=per_page, restart_every=restart_every)

    # A quiet while later, rounds to the end: every current version has been seen.
    server.now += timedelta(minutes=10)
    for _ in range(2):
        one_page()
        while not poller.done:
            one_page()
    missing = {(i, s) for i, s in server.stamps.items()} - reported
    assert not missing
    # And the position never went past the server's clock.
    assert poller.since <= server.now
