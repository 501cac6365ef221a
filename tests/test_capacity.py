"""Pixelz's Daily Guarantee of Images: expedite tiers, the daily 200, split orders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.sla.contract import Contract
from connector.sla.engine import decide_all
from connector.sla.model import Decision, TicketFacts

NOW = datetime(2026, 3, 2, 9, tzinfo=UTC)
MONDAY = datetime(2026, 3, 2, 9, tzinfo=UTC)  # 10:00 in Paris


def order(
    id_: str, images: int, *, expedite: bool, at: datetime = MONDAY, **extra: Any
) -> TicketFacts:
    return TicketFacts.model_validate(
        {
            "id": id_,
            "created_at": at,
            "customer": "shop",
            "contract": "pixelz",
            "category": "order",
            "quantities": {"images": images},
            "flags": {"expedite": expedite},
            "customer_facts": {"timezone": "Europe/Paris"},
            **extra,
        }
    )


def parts(decision: Decision) -> list[tuple[int, datetime | None]]:
    return [(p.quantity, p.due) for p in decision.targets["delivery"].parts or []]


def test_seed_example_35_expedited_images_are_split_20_and_15(
    contracts: dict[str, Contract],
) -> None:
    (decision,) = decide_all(contracts, [order("1", 35, expedite=True)], NOW)
    assert parts(decision) == [(20, MONDAY + timedelta(hours=3)), (15, MONDAY + timedelta(hours=6))]
    assert decision.targets["delivery"].due == MONDAY + timedelta(hours=6)
    assert decision.priority == "high"
    assert "capacity_exceeded" not in decision.tags


def test_seed_example_20_expedited_leave_180_for_next_morning(
    contracts: dict[str, Contract],
) -> None:
    tuesday_nine = datetime(2026, 3, 3, 8, tzinfo=UTC)  # 09:00 in Paris
    tickets = [
        order("1", 20, expedite=True),
        order("2", 200, expedite=False, at=MONDAY + timedelta(hours=1)),
    ]
    first, second = decide_all(contracts, tickets, NOW)
    assert parts(first) == [(20, MONDAY + timedelta(hours=3))]
    assert parts(second) == [(180, tuesday_nine), (20, None)]
    assert second.targets["delivery"].due == tuesday_nine
    assert "capacity_exceeded" in second.tags
    assert "20 images without a guaranteed due" in second.targets["delivery"].basis


def test_expedited_images_past_the_day_have_no_due(contracts: dict[str, Contract]) -> None:
    (decision,) = decide_all(contracts, [order("1", 450, expedite=True)], NOW)
    assert parts(decision) == [
        (20, MONDAY + timedelta(hours=3)),
        (180, MONDAY + timedelta(hours=6)),
        (250, None),
    ]


def test_an_order_entirely_past_the_guarantee_is_best_effort(
    contracts: dict[str, Contract],
) -> None:
    tickets = [
        order("1", 200, expedite=False),
        order("2", 5, expedite=False, at=MONDAY + timedelta(minutes=1)),
    ]
    second = decide_all(contracts, tickets, NOW)[1]
    delivery = second.targets["delivery"]
    assert (delivery.due, delivery.best_effort, delivery.state) == (None, True, "best_effort")
    assert parts(second) == [(5, None)]


def test_the_day_is_the_customers_local_day(contracts: dict[str, Contract]) -> None:
    # 23:30 UTC on Monday is already Tuesday in Paris: a fresh 200.
    late = datetime(2026, 3, 2, 23, 30, tzinfo=UTC)
    tickets = [order("1", 200, expedite=False), order("2", 10, expedite=False, at=late)]
    assert parts(decide_all(contracts, tickets, NOW)[1])[0][1] is not None


def test_an_earlier_order_arriving_late_takes_the_capacity_first(
    contracts: dict[str, Contract],
) -> None:
    tickets = [
        order("2", 30, expedite=True, at=MONDAY + timedelta(hours=1)),
        order("1", 10, expedite=True),
    ]
    by_id = {d.ticket: d for d in decide_all(contracts, tickets, NOW)}
    assert parts(by_id["1"]) == [(10, MONDAY + timedelta(hours=3))]
    later = MONDAY + timedelta(hours=1)
    assert parts(by_id["2"]) == [(10, later + timedelta(hours=3)), (20, later + timedelta(hours=6))]


orders = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=260),
        st.booleans(),
        st.integers(min_value=0, max_value=72),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=200)
@given(rows=orders)
def test_parts_always_sum_to_the_order(
    contracts: dict[str, Contract], rows: list[tuple[int, bool, int]]
) -> None:
    tickets = [
        order(str(i), n, expedite=e, at=MONDAY + timedelta(hours=h))
        for i, (n, e, h) in enumerate(rows)
    ]
    guaranteed: dict[str, int] = {}
    for facts, decision in zip(tickets, decide_all(contracts, tickets, NOW), strict=True):
        split = parts(decision)
        assert sum(q for q, _ in split) == facts.quantities["images"]
        dues = [d for _, d in split]
        assert len(set(dues)) == len(dues)  # one part per distinct due
        day = (facts.created_at + timedelta(hours=1)).date().isoformat()  # Paris, winter
        guaranteed[day] = guaranteed.get(day, 0) + sum(q for q, d in split if d is not None)
    assert all(total <= 200 for total in guaranteed.values())
