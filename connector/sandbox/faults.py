"""Faults the sandbox injects on demand: what goes wrong, on which calls, how often.

A `Fault` matches on helpdesk, method and a glob over the request path (e.g.
`/api/v2/tickets/*`), fires `count` times (None: until removed) with a `probability`, and
says what happens instead of (or around) the normal answer. `FaultBook` holds the active ones;
it is thread-safe and its dice are seeded, so a run with faults is reproducible.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, field, replace
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Any

__all__ = ["Fault", "FaultBook", "FaultKind"]


class FaultKind(StrEnum):
    """What a fault does to the call it matches."""

    RATE_LIMITED = "rate_limited"  # 429, Retry-After in seconds
    RATE_LIMITED_HTTP_DATE = "rate_limited_http_date"  # 429, Retry-After as an HTTP date
    RATE_LIMITED_BARE = "rate_limited_no_retry_after"  # 429 without Retry-After
    SERVER_ERROR = "server_error"  # 500
    BAD_GATEWAY = "bad_gateway"  # 502 from the proxy in front
    UNAVAILABLE = "unavailable"  # 503 without Retry-After
    UNAVAILABLE_RETRY_AFTER = "unavailable_retry_after"  # 503 with Retry-After (maintenance)
    SLOW = "slow"  # the normal answer, after `delay` seconds of the sandbox's sleep
    SLOW_AFTER = "slow_after"  # applied at once, answered `delay` seconds later
    CUT_BEFORE = "cut_before"  # the connection drops before the server did anything
    CUT_AFTER = "cut_after"  # the server applied the call, then the connection dropped
    MALFORMED = "malformed"  # 200 with the body cut in half (truncated JSON)
    LOGIN_PAGE = "login_page"  # a proxy answers 200 with its HTML sign-in page; nothing applied
    AGENT_EDIT = "agent_edit"  # an agent edits the ticket just before this PUT is applied


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected fault; `count` None fires until removed, `probability` rolls each time."""

    kind: FaultKind
    helpdesk: str | None = None  # "zendesk", "freshdesk" or None for both
    method: str | None = None  # e.g. "PUT"; None for any
    path: str = "*"  # glob over the request path, without the query
    count: int | None = 1
    probability: float = 1.0
    retry_after: float = 2.0  # seconds, for the kinds that send Retry-After
    delay: float = 5.0  # seconds, for SLOW and SLOW_AFTER
    id: int = 0

    def matches(self, helpdesk: str, method: str, path: str) -> bool:
        """Whether this fault applies to the call (not counting its dice)."""
        return (
            (self.helpdesk is None or self.helpdesk == helpdesk)
            and (self.method is None or self.method.upper() == method)
            and fnmatchcase(path, self.path)
        )

    def describe(self) -> dict[str, Any]:
        """The fault as JSON for the control API."""
        return {
            "id": self.id,
            "kind": self.kind.value,
            "helpdesk": self.helpdesk,
            "method": self.method,
            "path": self.path,
            "count": self.count,
            "probability": self.probability,
            "retry_after": self.retry_after,
            "delay": self.delay,
        }


@dataclass
class FaultBook:
    """The active faults, in the order they were added; the first that fires wins."""

    seed: int = 0
    _faults: list[Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _next_id: int = 1
    _fired: int = 0
    _fired_by_kind: Counter[FaultKind] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def add(
        self,
        kind: FaultKind | str,
        *,
        helpdesk: str | None = None,
        method: str | None = None,
        path: str = "*",
        count: int | None = 1,
        probability: float = 1.0,
        retry_after: float = 2.0,
        delay: float = 5.0,
    ) -> Fault:
        """Activate a fault; returns it with its id (for `remove`)."""
        if helpdesk not in (None, "zendesk", "freshdesk"):
            raise ValueError(f"helpdesk must be zendesk, freshdesk or None, got {helpdesk!r}")
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must be within [0, 1], got {probability}")
        if count is not None and count < 1:
            raise ValueError(f"count must be at least 1 (or None), got {count}")
        with self._lock:
            fault = Fault(
                FaultKind(kind),
                helpdesk=helpdesk,
                method=method.upper() if method else None,
                path=path,
                count=count,
                probability=probability,
                retry_after=retry_after,
                delay=delay,
                id=self._next_id,
            )
            self._next_id += 1
            self._faults.append(fault)
            return fault

    def remove(self, fault_id: int) -> None:
        """Deactivate one fault (no error if it already ran out)."""
        with self._lock:
            self._faults = [f for f in self._faults if f.id != fault_id]

    def clear(self) -> None:
        """Deactivate every fault."""
        with self._lock:
            self._faults.clear()

    def active(self) -> list[Fault]:
        """The faults still armed, in order."""
        with self._lock:
            return list(self._faults)

    @property
    def fired(self) -> int:
        """How many times a fault fired since the sandbox started (or was reset)."""
        return self._fired

    def fired_by_kind(self) -> dict[FaultKind, int]:
        """How many times each kind fired since the sandbox started (or was reset)."""
        with self._lock:
            return dict(self._fired_by_kind)

    def take(self, helpdesk: str, method: str, path: str) -> Fault | None:
        """The fault that fires for this call, if any; uses up one of its `count`."""
        with self._lock:
            for index, fault in enumerate(self._faults):
                if not fault.matches(helpdesk, method, path):
                    continue
                if fault.probability < 1.0 and self._rng.random() >= fault.probability:
                    continue
                if fault.count is not None:
                    if fault.count <= 1:
                        del self._faults[index]
                    else:
                        self._faults[index] = replace(fault, count=fault.count - 1)
                self._fired += 1
                self._fired_by_kind[fault.kind] += 1
                return fault
            return None

    def reset(self) -> None:
        """Clear the faults and the fired count; the dice start over."""
        with self._lock:
            self._faults.clear()
            self._fired = 0
            self._fired_by_kind.clear()
            self._rng = random.Random(self.seed)
