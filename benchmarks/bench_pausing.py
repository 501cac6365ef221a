"""Pausing on the ticket's status: what pending spells cost a due instant and `sla simulate`.

Usage: python benchmarks/bench_pausing.py [--number N] [--repeat R] [--tickets N]
       [--customers C] [--runs R] [--command-runs R] [--skip-simulate | --only-simulate]
       [--write DIR] [--profile]

Part 1 decides one photoprism ticket (plan enterprise, sev3: its resolution target is 14
business days on the Berlin calendar and pauses while the ticket is pending) with 0, 3 and 30
pending spells spread over the two weeks before `now`, the ticket open again at `now`, so the
target is running in all three. Each figure is timeit-style: R passes of N calls, garbage
collector off, one core; min and median per call.

Part 2 runs what `sla simulate` does on the tickets of bench_simulate.py (same generator, same
seed), once as they are and once with a status history on each (0-6 changes, most tickets 0-2
pending spells). Runs alternate, each in a fresh process; the fastest of each kind is kept.
Then it times the whole command on the same two inputs (`--command-runs`, 0 to skip).
No timed assertions: the figures are printed beside their goals.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import math
import multiprocessing
import os
import platform
import pstats
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench_simulate import ticket_lines, timed_simulate

from connector.mappingfiles import default_mappings_dir, load_contracts
from connector.sla.contract import Contract
from connector.sla.durations import BusinessDays
from connector.sla.engine import decide
from connector.sla.model import Decision, TicketFacts
from connector.sla.pausing import accrue, paused_spells
from connector.timeutil import to_epoch

# Part 1: a ticket created on a Monday at the Berlin opening, decided two weeks later. Without
# a spell 10 business days and 2 hours of the 14 have accrued (73 %, below the 75 % at-risk
# share), so the resolution target is running whatever the spells.
CREATED = datetime(2026, 3, 2, 8, tzinfo=UTC)  # Mon 09:00 CET
NOW = datetime(2026, 3, 16, 10, tzinfo=UTC)  # Mon 11:00 CET
SPELLS = (0, 3, 30)
PAUSED_BY = frozenset({"pending"})

# Part 2: the `now` of bench_simulate.py, and the status histories added to its tickets.
SIM_NOW = datetime(2026, 12, 31, tzinfo=UTC)
SIM_NOW_TEXT = "2026-12-31T00:00:00Z"
HISTORY_SEED = 11
# How many status changes a ticket has, 0 to 6, and how often: most tickets 0-2 pending spells.
CHANGES = (0, 1, 2, 3, 4, 5, 6)
CHANGE_WEIGHTS = (30, 8, 30, 6, 16, 3, 7)
FORMAT = "%Y-%m-%dT%H:%M:%SZ"


# -- part 1: one due instant -------------------------------------------------------------------


def spelled_facts(spells: int) -> TicketFacts:
    """The ticket with `spells` pending spells spread over [CREATED, NOW - 1 h], open after.

    Each spell takes the middle half of its share of that span: pending at a quarter, open
    again at three quarters, so spells fall in and out of business hours alike.
    """
    history = []
    if spells:
        share = (NOW - timedelta(hours=1) - CREATED) / spells
        for i in range(spells):
            begin = CREATED + share * i
            history.append({"at": (begin + share / 4).strftime(FORMAT), "status": "pending"})
            history.append({"at": (begin + share * 3 / 4).strftime(FORMAT), "status": "open"})
    return TicketFacts.model_validate(
        {
            "id": f"spells-{spells}",
            "created_at": CREATED.strftime(FORMAT),
            "customer": "org-1",
            "contract": "photoprism",
            "plan": "enterprise",
            "severity": "sev3",
            "status_history": history,
        }
    )


def per_call(run: Callable[[], object], number: int, repeat: int) -> tuple[float, float]:
    """min and median µs per call of `run`: `repeat` passes of `number` calls (gc off)."""
    run()  # warm-up: calendar tables, contract lookups
    passes = timeit.Timer(run).repeat(repeat=repeat, number=number)
    return min(passes) / number * 1e6, statistics.median(passes) / number * 1e6


def raw_due(contract: Contract, facts: TicketFacts) -> Callable[[], int | None]:
    """The due computation alone: history to spells (if any), then the business-time search.

    What the engine does for the resolution target with no spell is one `add_epoch`; with
    spells, `paused_spells` and then `accrue` (one search per spell) on the same calendar.
    """
    calendar = contract.calendar(("berlin",), None)
    seconds = BusinessDays(14).seconds_on(calendar)
    start, now = to_epoch(facts.created_at), to_epoch(NOW)
    history = [(to_epoch(change.at), change.status) for change in facts.status_history]
    add, measure = calendar.add_epoch, calendar.elapsed_epoch
    if not history:
        return lambda: add(start, seconds)

    def run() -> int | None:
        spells = paused_spells(history, PAUSED_BY, start, now)
        return accrue(add, measure, start, (seconds,), spells)[0][0]

    return run


def check_due(contract: Contract, facts: TicketFacts, due: int) -> str:
    """Business time outside the spells from creation to `due` is the 14 days, and not before."""
    calendar = contract.calendar(("berlin",), None)
    seconds = BusinessDays(14).seconds_on(calendar)
    start = to_epoch(facts.created_at)
    history = [(to_epoch(change.at), change.status) for change in facts.status_history]
    spells = paused_spells(history, PAUSED_BY, start, to_epoch(NOW))

    def outside(end: int) -> int:
        total = calendar.elapsed_epoch(start, end)
        for begin, stop in spells:
            if begin < end:
                total -= calendar.elapsed_epoch(begin, min(end, stop or end))
        return total

    ok = outside(due) == seconds and outside(due - 1) < seconds
    return "ok" if ok else "MISMATCH"


def bench_due(args: argparse.Namespace) -> tuple[float, float]:
    """Part 1; returns the median µs per decision with 0 and with 30 spells."""
    contract = load_contracts(default_mappings_dir())["photoprism"]
    print(
        "\nPart 1: one photoprism ticket (enterprise, sev3; resolution: 14 business days, "
        "Berlin, paused_by [pending]), `decide(contract, facts, now)`; "
        f"{args.repeat} passes of {args.number:,} calls, µs per call"
    )
    print(
        f"{'spells':>6} {'decide min':>10} {'median':>8} {'raw min':>8} {'median':>8} "
        f"{'state':>8} {'paused':>11} {'resolution due (UTC)':>20} {'check':>5}"
    )
    medians: dict[int, float] = {}
    for spells in SPELLS:
        facts = spelled_facts(spells)
        decision = decide(contract, facts, NOW)
        target = decision.targets["resolution"]
        assert target.due is not None
        paused = target.paused_seconds or 0
        decide_min, decide_median = per_call(
            lambda facts=facts: decide(contract, facts, NOW), args.number, args.repeat
        )
        raw = raw_due(contract, facts)
        assert raw() == to_epoch(target.due), "the raw computation gives the engine's due"
        raw_min, raw_median = per_call(raw, args.number, args.repeat)
        medians[spells] = decide_median
        print(
            f"{spells:>6} {decide_min:>10.1f} {decide_median:>8.1f} {raw_min:>8.2f} "
            f"{raw_median:>8.2f} {target.state:>8} "
            f"{f'{paused // 3600}h{paused % 3600 // 60:02d}':>11} "
            f"{target.due.strftime('%Y-%m-%d %H:%M'):>20} "
            f"{check_due(contract, facts, to_epoch(target.due)):>5}"
        )
    for spells in SPELLS[1:]:
        ratio = medians[spells] / medians[0]
        goal = " (goal ≤ 3x): " + ("met" if ratio <= 3 else "NOT MET") if spells == 30 else ""
        print(
            f"{spells} spells: {medians[spells]:.1f} µs vs 0 spells {medians[0]:.1f} µs: "
            f"{ratio:.1f}x{goal}"
        )
    return medians[0], medians[30]


def profile_due(number: int) -> None:
    """cProfile of `number` decisions of the 30-spell ticket: where its time goes."""
    contract = load_contracts(default_mappings_dir())["photoprism"]
    facts = spelled_facts(30)
    decide(contract, facts, NOW)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(number):
        decide(contract, facts, NOW)
    profiler.disable()
    print(f"\ncProfile: {number:,} decisions of the 30-spell ticket, by own time")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(18)
    breakdown(contract, facts, max(number // 5, 1))


def breakdown(contract: Contract, facts: TicketFacts, number: int) -> None:
    """The steps the engine adds for a paused target, each timed alone (no profiler overhead).

    The same calls as `engine._Decider._history`, `paused_spells` and `_Clock.accrued`, on the
    resolution target's calendar, duration and at-risk share (75 %).
    """
    calendar = contract.calendar(("berlin",), None)
    seconds = BusinessDays(14).seconds_on(calendar)
    risk = math.ceil(contract.spec.risk_threshold * seconds)
    start, now = to_epoch(facts.created_at), to_epoch(NOW)
    changes = facts.status_history
    add, measure = calendar.add_epoch, calendar.elapsed_epoch

    def history() -> list[tuple[int, str]]:
        found = [(to_epoch(change.at), change.status) for change in changes]
        found.sort(key=lambda entry: entry[0])
        return found

    entries = history()
    spells = paused_spells(entries, PAUSED_BY, start, now)
    due = accrue(add, measure, start, (seconds,), spells)[0][0]
    assert due is not None
    steps = {
        f"status history to epoch seconds, sorted ({len(changes)} entries)": history,
        f"paused_spells ({len(spells)} spells)": lambda: paused_spells(
            entries, PAUSED_BY, start, now
        ),
        "accrue to the at-risk and due instants (one walk)": lambda: accrue(
            add, measure, start, (risk, seconds), spells
        ),
        "paused seconds: measure(start, due)": lambda: measure(start, due),
    }
    timed = {name: per_call(step, number, 9)[1] for name, step in steps.items()}
    whole = per_call(lambda: decide(contract, facts, NOW), number, 9)[1]
    unpaused = spelled_facts(0)
    alone = per_call(lambda: decide(contract, unpaused, NOW), number, 9)[1]
    print(f"the 30 spells' extra cost, step by step (median µs per call of {number:,} calls):")
    for name, micros in timed.items():
        print(f"  {name:<58} {micros:>6.1f}")
    rest = whole - alone - sum(timed.values())
    print(f"  {'the rest (by difference)':<58} {rest:>6.1f}")
    print(f"  {'decide, 30 spells minus 0 spells':<58} {whole - alone:>6.1f}")


# -- part 2: `sla simulate` ---------------------------------------------------------------------


def with_history(lines: list[str], seed: int = HISTORY_SEED) -> list[str]:
    """The same tickets, each with a status history: 0-6 changes after its creation.

    Agents set a ticket pending (now and then on hold) a few hours after it comes in, the
    customer answers within a day or so and it is open again, and so on. Changes at or after
    the benchmark's `now` are left out (a history holds only what happened).
    """
    rng = random.Random(seed)
    now = SIM_NOW.timestamp()
    out = []
    for line in lines:
        facts = json.loads(line)
        at = datetime.strptime(facts["created_at"], FORMAT).replace(tzinfo=UTC).timestamp()
        history, status = [], "open"
        for _ in range(rng.choices(CHANGES, CHANGE_WEIGHTS)[0]):
            if status == "open":
                at += rng.expovariate(1 / (4 * 3600))  # the agent asks back after ~4 h
                status = "on_hold" if rng.random() < 0.15 else "pending"
            else:
                at += rng.expovariate(1 / (24 * 3600))  # the answer comes after ~a day
                status = "open"
            if at >= now:
                break
            history.append({"at": time.strftime(FORMAT, time.gmtime(int(at))), "status": status})
        facts["status_history"] = history
        out.append(json.dumps(facts))
    return out


def sim_lines(tickets: int, customers: int, histories: bool) -> list[str]:
    lines = ticket_lines(tickets, customers)
    return with_history(lines) if histories else lines


def run(tickets: int, customers: int, histories: bool) -> tuple[float, float, float, int, Counter]:
    """CPU seconds to parse, decide and write, the peak bytes added, and the targets' pauses.

    As bench_simulate.run: a warm-up decides the first 1,000 tickets, then the timed run parses
    all lines, decides them as one set and writes each decision as it comes (to the null
    device), garbage collector off as `sla simulate` has it.
    """
    lines = sim_lines(tickets, customers, histories)
    pauses: Counter[str] = Counter()

    def seen(decision: Decision) -> None:  # not timed: how many targets the spells touched
        for target in decision.targets.values():
            if target.state == "paused":
                pauses["paused now"] += 1
            elif target.paused_seconds:
                pauses["due moved by a pause"] += 1

    parse, decide_s, write, peak = timed_simulate(lines, SIM_NOW, seen)
    return parse, decide_s, write, peak, pauses


def history_mix(lines: list[str]) -> tuple[Counter[int], Counter[int]]:
    """How many tickets have n status changes, and n pending spells (pending entries)."""
    changes: Counter[int] = Counter()
    spells: Counter[int] = Counter()
    for line in lines:
        history = json.loads(line)["status_history"]
        changes[len(history)] += 1
        spells[sum(entry["status"] == "pending" for entry in history)] += 1
    return changes, spells


def bench_simulate(args: argparse.Namespace) -> None:
    tickets, customers = args.tickets, args.customers
    changes, spells = history_mix(sim_lines(tickets, customers, True))
    print(
        f"\nPart 2: `sla simulate` on {tickets:,} tickets over {customers:,} customers "
        f"(bench_simulate.py's), without and with status histories; now {SIM_NOW_TEXT}"
    )
    print(
        "status changes a ticket: "
        + ", ".join(f"{n}: {changes[n] / tickets:.0%}" for n in sorted(changes))
    )
    print(
        "pending spells a ticket: "
        + ", ".join(f"{n}: {spells[n] / tickets:.0%}" for n in sorted(spells))
    )
    fork = multiprocessing.get_context("fork")
    runs: dict[bool, list[tuple[float, float, float, int, Counter]]] = {False: [], True: []}
    for _ in range(args.runs):
        for histories in (False, True):  # alternated, so drift hits both alike
            with ProcessPoolExecutor(max_workers=1, mp_context=fork) as pool:
                job = pool.submit(run, tickets, customers, histories)
                runs[histories].append(job.result())
    print(
        f"{'histories':>10} {'parse s':>8} {'decide s':>9} {'write s':>8} {'total s':>8} "
        f"{'µs/ticket':>10} {'peak MB':>8}"
    )
    totals = {}
    for histories in (False, True):
        parse, decide_s, write, peak, pauses = min(runs[histories], key=lambda r: sum(r[:3]))
        total = totals[histories] = parse + decide_s + write
        print(
            f"{'0-6 changes' if histories else 'none':>10} {parse:>8.2f} {decide_s:>9.2f} "
            f"{write:>8.2f} {total:>8.2f} {total / tickets * 1e6:>10.1f} {peak / 2**20:>8.0f}"
        )
    print(
        "targets the spells touched: "
        + ", ".join(f"{name} {count:,}" for name, count in sorted(pauses.items()))
    )
    ratio = totals[True] / totals[False]
    print(
        f"with histories: {totals[True]:.2f} s vs without {totals[False]:.2f} s: {ratio:.2f}x "
        f"(goal ≤ 1.5x): {'met' if ratio <= 1.5 else 'NOT MET'}"
    )
    if args.command_runs:
        bench_command(args)


def write_inputs(folder: Path, tickets: int, customers: int) -> tuple[Path, Path]:
    plain, history = folder / "plain.jsonl", folder / "history.jsonl"
    lines = ticket_lines(tickets, customers)
    plain.write_text("\n".join(lines) + "\n", encoding="utf-8")
    history.write_text("\n".join(with_history(lines)) + "\n", encoding="utf-8")
    return plain, history


def command(path: Path) -> list[str]:
    found = shutil.which("sla-connector") or str(Path(sys.executable).with_name("sla-connector"))
    return [found, "sla", "simulate", str(path), "--now", SIM_NOW_TEXT]


def time_command(argv: list[str]) -> tuple[float, float]:
    """CPU seconds (user + system) and wall seconds of one run of `argv`, output discarded."""
    with open(os.devnull, "wb") as sink:
        begin = time.perf_counter()
        child = subprocess.Popen(argv, stdout=sink, stderr=sink)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - begin
    child.returncode = os.waitstatus_to_exitcode(status)
    assert child.returncode == 0, f"{argv}: exit {child.returncode}"
    return usage.ru_utime + usage.ru_stime, wall


def bench_command(args: argparse.Namespace) -> None:
    """The whole command, start-up included, on both inputs in turn; the ratio pair by pair."""
    with tempfile.TemporaryDirectory(prefix="bench-pausing-") as scratch:
        plain, history = write_inputs(Path(scratch), args.tickets, args.customers)
        time_command(command(plain))  # warm-up: page cache, bytecode
        pairs = []
        for _ in range(args.command_runs):
            pairs.append((time_command(command(plain)), time_command(command(history))))
    print(
        f"\nthe whole command, `sla-connector sla simulate FILE --now {SIM_NOW_TEXT}` "
        f"(start-up included), {args.command_runs} runs of each in turn, CPU s (user + system)"
    )
    for name, index in (("without histories", 0), ("with histories", 1)):
        cpu = [pair[index][0] for pair in pairs]
        wall = [pair[index][1] for pair in pairs]
        print(
            f"{name:<18} CPU min {min(cpu):.2f} median {statistics.median(cpu):.2f} "
            f"max {max(cpu):.2f}; wall median {statistics.median(wall):.2f}"
        )
    ratios = [with_[0] / without[0] for without, with_ in pairs]
    ratio = statistics.median(ratios)
    print(
        f"with / without, pair by pair: median {ratio:.2f}x (min {min(ratios):.2f}, "
        f"max {max(ratios):.2f}) (goal ≤ 1.5x): {'met' if ratio <= 1.5 else 'NOT MET'}"
    )


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def pin_one_core() -> Callable[[], None]:
    """Run on the highest-numbered CPU (CPU 0 takes most housekeeping); returns the undo."""
    if not hasattr(os, "sched_setaffinity"):
        return lambda: None
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {max(cpus)})
    return lambda: os.sched_setaffinity(0, cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=2_000, help="calls per timed pass")
    parser.add_argument("--repeat", type=int, default=15, help="timed passes per figure")
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=3, help="fresh runs of each kind, fastest kept")
    parser.add_argument(
        "--command-runs", type=int, default=5, help="runs of the whole command on each input"
    )
    parser.add_argument("--skip-simulate", action="store_true", help="part 1 only")
    parser.add_argument("--only-simulate", action="store_true", help="part 2 only")
    parser.add_argument(
        "--write", metavar="DIR", type=Path, help="write part 2's two inputs to DIR and stop"
    )
    parser.add_argument(
        "--profile", action="store_true", help="also profile the 30-spell decision (cProfile)"
    )
    args = parser.parse_args()
    if args.write is not None:
        args.write.mkdir(parents=True, exist_ok=True)
        for path in write_inputs(args.write, args.tickets, args.customers):
            print(f"wrote {path}: {sum(1 for _ in path.open()):,} lines")
        return
    began = time.perf_counter()
    print(f"python={platform.python_version()} cpus={os.cpu_count()}")
    if not args.only_simulate:
        undo = pin_one_core()
        try:
            bench_due(args)
            if args.profile:
                profile_due(args.number * 5)
        finally:
            undo()
    if not args.skip_simulate:
        bench_simulate(args)
    print(f"\nbenchmark wall time: {time.perf_counter() - began:.1f} s")


if __name__ == "__main__":
    main()
