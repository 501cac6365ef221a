"""The rules a sync works by: the loaded contracts and the helpdesk mapping, as one value
replaced whole when the daemon reloads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from connector.helpdesks.mapping import HelpdeskMapping
from connector.sla.contract import Contract
from connector.sla.quotas import Reach, reach

__all__ = ["UNMAPPED_TAG", "Rules"]

UNMAPPED_TAG = "sla_unmapped"


@dataclass(frozen=True)
class Rules:
    """The loaded contracts and helpdesk mapping: replaced as a whole on reload."""

    contracts: Mapping[str, Contract]
    mapping: HelpdeskMapping

    @cached_property
    def owned_tags(self) -> frozenset[str]:
        """Every tag any loaded contract may put on a ticket (the only ones ever removed)."""
        owned: set[str] = {UNMAPPED_TAG}
        for contract in self.contracts.values():
            owned |= contract.owned_tags
        return frozenset(owned)

    @cached_property
    def _reaches(self) -> dict[str, Reach]:
        return {name: reach(contract) for name, contract in self.contracts.items()}

    def reach(self, contract: Contract) -> Reach:
        """Which of a customer's stored tickets a decision on one of them needs."""
        return self._reaches.get(contract.name) or reach(contract)
