"""`sla simulate` throughput: N tickets over many customers and all five contracts.

Usage: python benchmarks/bench_simulate.py [--tickets N] [--customers C]

Prints CPU seconds for parsing, deciding and writing, the cost per ticket, and the same cost
with a history ten times shorter per customer (it must not grow with history length).
No timed assertions: the figures are printed beside their goals.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from connector.mappingfiles import load_contracts
from connector.sla.engine import decide_all
from connector.sla.model import TicketFacts

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2026, 1, 1, tzinfo=UTC)


def ticket_lines(count: int, customers: int, seed: int = 7) -> list[str]:
    """Deterministic TicketFacts JSON lines spread over one year."""
    rng = random.Random(seed)
    lines = []
    for i in range(count):
        customer = rng.randrange(customers)
        created = START + timedelta(seconds=rng.randrange(365 * 86_400))
        kind = customer % 5
        facts: dict[str, object] = {
            "id": str(i),
            "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "customer": f"org-{customer}",
        }
        if kind == 0:
            facts |= {
                "contract": "photoprism",
                "plan": rng.choice(["professional", "gold"]),
                "severity": rng.choice(["sev1", "sev2", "sev3", "sev4"]),
            }
        elif kind == 1:
            facts |= {
                "contract": "pix4d-premium",
                "severity": rng.choice(["critical", "minor"]),
                "customer_facts": {"offices": rng.choice([["lausanne"], ["denver", "tokyo"]])},
            }
        elif kind == 2:
            facts |= {
                "contract": "pix4dengine-enterprise",
                "severity": "major",
                "region": rng.choice(["europe", "north_america"]),
                "events": {
                    "agent_replies": [(created + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")]
                },
            }
        elif kind == 3:
            facts |= {
                "contract": "pixelz",
                "category": rng.choice(["order", "inquiry"]),
                "quantities": {"images": rng.randrange(1, 120)},
                "flags": {"expedite": rng.random() < 0.3},
                "customer_facts": {"timezone": "Europe/Paris"},
            }
        else:
            facts |= {
                "contract": "solidxperts",
                "category": rng.choice(["software_error", "how_to", "installation"]),
                "customer_facts": {"seats": 8, "subscription_start": "2025-03-01"},
            }
        lines.append(json.dumps(facts))
    return lines


def run(lines: list[str]) -> tuple[float, float, float]:
    """CPU seconds to parse, decide and write the lines, as `sla simulate` does (no cyclic GC)."""
    gc.disable()
    try:
        return _run(lines)
    finally:
        gc.enable()


def _run(lines: list[str]) -> tuple[float, float, float]:
    contracts = load_contracts(ROOT / "mappings")
    now = datetime(2026, 12, 31, tzinfo=UTC)
    decide_all(contracts, [TicketFacts.model_validate_json(lines[0])], now)  # warm calendars
    begin = time.process_time()
    tickets = [TicketFacts.model_validate_json(line) for line in lines]
    parsed = time.process_time()
    decisions = decide_all(contracts, tickets, now)
    decided = time.process_time()
    out = io.StringIO()
    for decision in decisions:
        out.write(decision.model_dump_json() + "\n")
    written = time.process_time()
    return parsed - begin, decided - parsed, written - decided


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=1_000)
    args = parser.parse_args()
    print(
        f"{'tickets':>8} {'customers':>9} {'parse s':>8} {'decide s':>9} {'write s':>8} "
        f"{'total s':>8} {'µs/ticket':>10}"
    )
    for tickets, customers in [
        (args.tickets, args.customers),
        (args.tickets // 10, args.customers),
        (args.tickets // 10, args.customers // 10),
    ]:
        parse, decide, write = run(ticket_lines(tickets, customers))
        total = parse + decide + write
        print(
            f"{tickets:>8,} {customers:>9,} {parse:>8.2f} {decide:>9.2f} {write:>8.2f} "
            f"{total:>8.2f} {total / tickets * 1e6:>10.1f}"
        )
    print(
        "goal: 100,000 tickets over 1,000 customers under 5 s of CPU; µs/ticket flat in the "
        "history length (rows 2 and 3: same tickets, 10x more per customer in row 3)"
    )


if __name__ == "__main__":
    main()
