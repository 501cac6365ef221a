"""`sla simulate` throughput and memory: N tickets over many customers and all five contracts.

Usage: python benchmarks/bench_simulate.py [--tickets N] [--customers C] [--runs R]
       [--skip-sorted | --only-sorted]

Each row runs R times, each time in a fresh process, and keeps the fastest run. A run times, in
CPU seconds, what `sla simulate` does: parse the JSON lines, decide them as one set, and write
each decision as it is made (to the null device). It prints the cost per ticket beside the cost
before the engine's caches (commit 92e7e67, same machine, same method), and the peak memory the
run added. Rows 2-4 decide the same number of tickets over 1000, 100 and 10 customers: 10, 100
and 1000 tickets of history per customer.
No timed assertions: the figures are printed beside their goals.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import multiprocessing
import os
import random
import resource
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from connector.mappingfiles import load_contracts
from connector.sla.engine import decide_all, decide_each, decide_in_order
from connector.sla.model import Decision, TicketFacts

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2026, 1, 1, tzinfo=UTC)
# µs per ticket at commit 92e7e67 (decide_all, then write), by this method on the same machine.
BEFORE = {(100_000, 1_000): 56.2, (10_000, 1_000): 51.6, (10_000, 100): 50.5, (10_000, 10): 49.2}
CHUNK = 1_000
WARM = 1_000


def ticket_lines(
    count: int, customers: int, seed: int = 7, *, years: int = 1, in_order: bool = False
) -> list[str]:
    """Deterministic TicketFacts JSON lines spread over `years` (in order of creation if asked)."""
    rng = random.Random(seed)
    lines = []
    span = years * 365 * 86_400
    for i in range(count):
        customer = rng.randrange(customers)
        offset = i * span // count if in_order else rng.randrange(span)
        created = START + timedelta(seconds=offset)
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


def run(tickets: int, customers: int) -> tuple[float, float, float, int]:
    """CPU seconds to parse, decide and write, and the peak bytes added, as `sla simulate`."""
    lines = ticket_lines(tickets, customers)
    return timed_simulate(lines, datetime(2026, 12, 31, tzinfo=UTC))


def timed_simulate(
    lines: list[str], now: datetime, seen: Callable[[Decision], None] | None = None
) -> tuple[float, float, float, int]:
    """What `sla simulate` does with `lines`, timed: CPU seconds to parse, decide and write
    (to the null device), and the peak bytes added. `seen` looks at each decision, untimed."""
    contracts = load_contracts(ROOT / "mappings")
    # One-off costs left out: the contracts' calendar tables and lookups, built by a first run.
    decide_all(contracts, [TicketFacts.model_validate_json(line) for line in lines[:WARM]], now)
    gc.disable()  # as `sla simulate` does
    peak_before = _peak_rss()
    with open(os.devnull, "w", encoding="utf-8") as out:
        begin = time.process_time()
        parsed = [TicketFacts.model_validate_json(line) for line in lines]
        parse = time.process_time() - begin
        decide = write = 0.0
        decisions = decide_each(contracts, parsed, now)
        while True:
            begin = time.process_time()
            chunk = list(itertools.islice(decisions, CHUNK))
            decided = time.process_time()
            for decision in chunk:
                out.write(decision.model_dump_json() + "\n")
            decide += decided - begin
            write += time.process_time() - decided
            if not chunk:
                break
            if seen is not None:
                for decision in chunk:
                    seen(decision)
    return parse, decide, write, _peak_rss() - peak_before


def run_file(path: Path, in_order: bool) -> tuple[float, float, int]:
    """What `sla simulate [--sorted] FILE` does: CPU seconds, held tickets' peak bytes added."""
    import sys

    from connector.cli import _TicketLines

    contracts = load_contracts(ROOT / "mappings")
    now = datetime(2029, 12, 31, tzinfo=UTC)
    warm = [TicketFacts.model_validate_json(line) for line in ticket_lines(WARM, 10)]
    decide_all(contracts, warm, now)
    gc.disable()
    peak_before = _peak_rss()
    decide = decide_in_order if in_order else decide_each
    reader = _TicketLines(str(path), sys.stderr, in_order=in_order)
    begin = time.process_time()
    decided = 0
    with path.open(encoding="utf-8") as stream, open(os.devnull, "w", encoding="utf-8") as out:
        for decision in decide(contracts, reader.read(stream), now):
            out.write(decision.model_dump_json() + "\n")
            decided += 1
    assert decided == sum(1 for _ in path.open()), "one decision per line"
    return time.process_time() - begin, decided, _peak_rss() - peak_before


def compare_sorted(args: argparse.Namespace) -> None:
    """Peak memory of the plain and the `--sorted` run as the input's history grows."""
    print(
        "\n`--sorted`: the same rate of tickets (100,000 a year over 1,000 customers) for a "
        "longer history; input in order of creation, read from a file as the command does"
    )
    print(f"{'tickets':>8} {'years':>5} {'mode':>8} {'CPU s':>6} {'µs/ticket':>10} {'peak MB':>8}")
    fork = multiprocessing.get_context("fork")
    with tempfile.TemporaryDirectory(prefix="bench-simulate-") as scratch:
        for years in (1, 3):
            tickets = args.tickets * years
            path = Path(scratch) / f"{years}.jsonl"
            lines = ticket_lines(tickets, args.customers, years=years, in_order=True)
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
            del lines
            for in_order in (False, True):
                runs = []
                for _ in range(args.runs):
                    with ProcessPoolExecutor(max_workers=1, mp_context=fork) as pool:
                        runs.append(pool.submit(run_file, path, in_order).result())
                cpu, decided, peak = min(runs)
                mode = "--sorted" if in_order else "plain"
                print(
                    f"{tickets:>8,} {years:>5} {mode:>8} {cpu:>6.2f} "
                    f"{cpu / decided * 1e6:>10.1f} {peak / 2**20:>8.0f}"
                )
    print(
        "goal: memory bounded by the tickets of open periods: with --sorted, flat as the "
        "history grows (solidxperts' contract year is the longest period: a year of its tickets)"
    )


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=3, help="fresh runs per row, fastest kept")
    parser.add_argument("--skip-sorted", action="store_true", help="leave out the --sorted rows")
    parser.add_argument("--only-sorted", action="store_true", help="only the --sorted rows")
    args = parser.parse_args()
    if args.only_sorted:
        compare_sorted(args)
        return
    print(
        f"{'tickets':>8} {'customers':>9} {'per cust':>8} {'parse s':>8} {'decide s':>9} "
        f"{'write s':>8} {'total s':>8} {'µs/ticket':>10} {'before':>7} {'peak MB':>8} "
        f"{'KB/ticket':>9}"
    )
    rows = [
        (args.tickets, args.customers),
        (args.tickets // 10, args.customers),
        (args.tickets // 10, args.customers // 10),
        (args.tickets // 10, args.customers // 100),
    ]
    fork = multiprocessing.get_context("fork")
    for tickets, customers in rows:
        runs = []
        for _ in range(args.runs):
            # A fresh process per run: its own peak memory, no heap left from the last run.
            with ProcessPoolExecutor(max_workers=1, mp_context=fork) as pool:
                runs.append(pool.submit(run, tickets, customers).result())
        parse, decide, write, peak = min(runs, key=lambda r: r[0] + r[1] + r[2])
        total = parse + decide + write
        before = BEFORE.get((tickets, customers))
        print(
            f"{tickets:>8,} {customers:>9,} {tickets // customers:>8,} {parse:>8.2f} "
            f"{decide:>9.2f} {write:>8.2f} {total:>8.2f} {total / tickets * 1e6:>10.1f} "
            f"{'' if before is None else f'{before:.1f}':>7} {peak / 2**20:>8.0f} "
            f"{peak / tickets / 1024:>9.1f}"
        )
    print(
        "goal: 100,000 tickets over 1,000 customers under 5 s of CPU; µs/ticket flat in the "
        "history length (rows 2-4: same tickets, 10, 100 and 1000 per customer)"
    )
    if not args.skip_sorted:
        compare_sorted(args)


if __name__ == "__main__":
    main()
