"""Agents working in the Zendesk UI beside the connector, on a simulated clock.

The agents' saves spend Zendesk's Update Ticket budget, as the API's updates do
(`Sandbox.agent_ui_update`; their 429s are counted there). Driven by the connector itself:
`advance` is its shell's `sleep` (waiting moves the clock on, and the agents save meanwhile),
`request_took` an HTTP observer (each request takes `request_takes` of the clock), `seconds`
its monotonic clock (pacing and the sandbox's limits then read one time).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from connector.sandbox.sandbox import ManualClock, Sandbox

__all__ = ["Agents"]


class Agents:
    """Agents saving a ticket every `every` seconds, going through the tickets in id order."""

    def __init__(
        self,
        sandbox: Sandbox,
        clock: ManualClock,
        *,
        every: float | None = 2.0,
        request_takes: float = 0.25,
    ) -> None:
        """`every` None: no agent saves in the Zendesk UI (Freshdesk's UI spends none of the
        API's budgets); the clock still moves with the connector's requests and waits."""
        self.sandbox, self.clock = sandbox, clock
        self.every, self.request_takes = every, request_takes
        self.origin = clock()
        self.next_save = None if every is None else self.origin + timedelta(seconds=every)
        self.tickets = sorted(sandbox.zendesk.tickets)
        self.saved = 0
        self.puts: list[float] = []  # when the connector's PUTs went, in `seconds()`
        self.last_write: datetime | None = None  # the connector's last accepted write

    def seconds(self) -> float:
        """The simulated clock in seconds since the agents began: a monotonic clock."""
        return (self.clock() - self.origin).total_seconds()

    def advance(self, seconds: float) -> None:
        """Let `seconds` of the clock pass, the agents saving as they come."""
        end = self.clock() + timedelta(seconds=seconds)
        while self.next_save is not None and self.every is not None and self.next_save <= end:
            self.clock.advance((self.next_save - self.clock()).total_seconds())
            self.sandbox.agent_ui_update(self.tickets[self.saved % len(self.tickets)])
            self.saved += 1
            self.next_save += timedelta(seconds=self.every)
        self.clock.advance(max((end - self.clock()).total_seconds(), 0.0))

    def request_took(self, request: Any, response: Any = None, *_: object) -> None:
        """An HTTP observer: note the connector's PUTs, then let the request's time pass."""
        if request.method == "PUT":
            self.puts.append(self.seconds())
        if request.method in ("PUT", "POST") and response is not None and response.status < 300:
            self.last_write = self.clock()  # an update, a job queued, or a note posted
        self.advance(self.request_takes)

    def busiest_minute(self) -> int:
        """The most PUTs the connector sent in any 60 s."""
        return max(
            (sum(1 for other in self.puts if start <= other < start + 60) for start in self.puts),
            default=0,
        )
