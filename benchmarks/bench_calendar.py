"""Benchmark of the business-time engine against `businesstimedelta`, plus startup times.

Run from the repository root after `pip install -e '.[bench]'`:

    python benchmarks/bench_calendar.py           # full run, about a minute
    python benchmarks/bench_calendar.py --quick   # smoke run, well under 20 s

Every workload uses the same start instants (fixed seed, whole seconds, uniform over
2026-2027 UTC) for both libraries. Each figure is the best of three timed passes over the
starts, after a warm-up pass (our first call builds the interval tables). Nothing here asserts
on time: the goals are printed beside the measurements.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from importlib.metadata import version
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from connector.sla.calendar import BusinessCalendar, HolidayRule, Office, WeeklyHours

try:
    import businesstimedelta as btd
    import holidays
    import pytz
except ImportError:  # pragma: no cover - depends on the environment
    sys.exit("businesstimedelta is missing: pip install -e '.[bench]'")

REPO = Path(__file__).resolve().parent.parent
SEED = 20260101
FIRST, LAST = datetime(2026, 1, 1, tzinfo=UTC), datetime(2028, 1, 1, tzinfo=UTC)
# Holiday years handed to businesstimedelta: its HolidayRule looks for the *next* holiday and
# fails when there is none within five years, and 1000 business hours from late 2027 end in 2028.
HOLIDAY_YEARS = range(2025, 2033)
REPEATS = 3
STARTUP_REPEATS = 5

# name, starts for our engine, starts for businesstimedelta at 8 h, at 1000 h
SIZES = {"full": (10_000, 10_000, 500), "quick": (2_000, 500, 25)}


@dataclass
class Row:
    workload: str
    ours_us: float
    theirs_us: float | None
    theirs_note: str = ""
    agree: str = ""

    @property
    def speedup(self) -> float | None:
        return None if self.theirs_us is None else self.theirs_us / self.ours_us


def random_starts(count: int) -> list[datetime]:
    rng = random.Random(SEED)
    lo, hi = int(FIRST.timestamp()), int(LAST.timestamp())
    return [datetime.fromtimestamp(rng.randrange(lo, hi), UTC) for _ in range(count)]


def best_of(run: Callable[[], list[Any]], repeats: int = REPEATS) -> tuple[float, list[Any]]:
    """Best wall time of `repeats` calls (garbage collector off while timing) and the results."""
    best, results = float("inf"), []
    for _ in range(repeats):
        gc.collect()
        gc.disable()
        try:
            begin = time.perf_counter()
            results = run()
            elapsed = time.perf_counter() - begin
        finally:
            gc.enable()
        best = min(best, elapsed)
    return best, results


def time_adds(
    add: Callable[[datetime, Any], datetime], starts: Sequence[datetime], duration: Any
) -> tuple[float, list[datetime]]:
    """µs per operation of `add(start, duration)` over `starts`, after one warm-up pass."""
    for start in starts:
        add(start, duration)
    seconds, results = best_of(lambda: [add(start, duration) for start in starts])
    return seconds / len(starts) * 1e6, results


# -- the calendars ------------------------------------------------------------------------------

NINE_TO_FIVE = WeeklyHours.parse({"mon-fri": ["09:00-17:00"]})


def vaud_office() -> Office:
    return Office(
        "vaud", ZoneInfo("Europe/Zurich"), NINE_TO_FIVE, HolidayRule(country="CH", subdivision="VD")
    )


def union_calendar() -> BusinessCalendar:
    """pix4d-premium's follow-the-sun union: national holidays, Mon-Fri 09:00-17:00 local."""
    offices = [
        Office("lausanne", ZoneInfo("Europe/Zurich"), NINE_TO_FIVE, HolidayRule(country="CH")),
        Office("denver", ZoneInfo("America/Denver"), NINE_TO_FIVE, HolidayRule(country="US")),
        Office("tokyo", ZoneInfo("Asia/Tokyo"), NINE_TO_FIVE, HolidayRule(country="JP")),
    ]
    return BusinessCalendar(offices)


def vaud_dates() -> frozenset[date]:
    """Canton Vaud's holidays straight from the `holidays` package, checked against ours."""
    table = holidays.country_holidays("CH", subdiv="VD", years=list(HOLIDAY_YEARS))
    dates = frozenset(table)
    ours = vaud_office().holidays.closed_dates(HOLIDAY_YEARS[0], HOLIDAY_YEARS[-1])
    if dates != ours:
        sys.exit(f"holiday lists differ: {sorted(dates ^ ours)}")
    return dates


def btd_vaud_rules() -> Any:
    """The businesstimedelta equivalent: 09:00-17:00 Mon-Fri and whole-day holidays, in
    Europe/Zurich local time (it documents pytz zones and localizes with them).

    The holidays go in as a frozenset of dates: `HolidayRule` only tests `day in holidays`,
    so this is the fastest container it accepts (a list would make it slower still).
    """
    zurich = pytz.timezone("Europe/Zurich")
    workday = btd.WorkDayRule(
        start_time=clock(9), end_time=clock(17), working_days=[0, 1, 2, 3, 4], tz=zurich
    )
    return btd.Rules([workday, btd.HolidayRule(vaud_dates(), tz=zurich)])


# -- the workloads ------------------------------------------------------------------------------


def compare(
    starts: Sequence[datetime], ours: Sequence[datetime], theirs: Sequence[datetime]
) -> tuple[int, list[tuple[datetime, datetime, datetime]]]:
    """Agreement count on the same instant (compared as instants, whatever the zone)."""
    differ = [(s, a, b) for s, a, b in zip(starts, ours, theirs, strict=True) if a != b]
    return len(starts) - len(differ), differ


def bench_vaud(hours: int, n_ours: int, n_theirs: int, starts: list[datetime]) -> Row:
    calendar = BusinessCalendar([vaud_office()])
    ours_us, ours_due = time_adds(calendar.add, starts[:n_ours], timedelta(hours=hours))
    rules = btd_vaud_rules()
    duration = btd.BusinessTimeDelta(rules, hours=hours)
    theirs_us, theirs_due = time_adds(lambda s, d: s + d, starts[:n_theirs], duration)
    agreed, differ = compare(starts[:n_theirs], ours_due[:n_theirs], theirs_due)
    for start, a, b in differ[:10]:
        print(f"  DISAGREE start={start:%Y-%m-%dT%H:%M:%SZ} ours={a} businesstimedelta={b}")
    note = "" if n_theirs == n_ours else f"on first {n_theirs:,} starts"
    return Row(f"CH-VD +{hours} h", ours_us, theirs_us, note, f"{agreed:,}/{n_theirs:,} identical")


def bench_union(n_ours: int, starts: list[datetime]) -> Row:
    union = union_calendar()
    ours_us, due = time_adds(union.add, starts[:n_ours], timedelta(hours=8))
    # Sanity check (no second library has unions): business time accrues at least as fast in
    # a union as in any of its offices, so the union is never due later than an office alone.
    singles = [BusinessCalendar([office]) for office in union.offices]
    sample = starts[:200]
    earliest = [min(c.add(s, timedelta(hours=8)) for c in singles) for s in sample]
    ok = sum(u <= e for u, e in zip(due[: len(sample)], earliest, strict=True))
    return Row(
        "union lausanne+denver+tokyo +8 h",
        ours_us,
        None,
        "n/a (no unions)",
        f"{ok}/{len(sample)} not later than best office",
    )


# -- startup ------------------------------------------------------------------------------------

LOAD_CONTRACTS = """\
import time
begin = time.perf_counter()
from pathlib import Path
from connector.mappingfiles import load_contracts
contracts = load_contracts(Path({mappings!r}))
elapsed = time.perf_counter() - begin
print(len(contracts), elapsed)
"""


def entry_point() -> str:
    beside = Path(sys.executable).parent / "sla-connector"
    found = str(beside) if beside.exists() else shutil.which("sla-connector")
    if found is None:
        sys.exit("sla-connector entry point not found: pip install -e '.[bench]'")
    return found


def startup_ms() -> tuple[float, float, int]:
    """Best-of-5 wall time of `sla-connector --help`, and in-process time to import and load the
    bundled contracts in a fresh interpreter; both in ms."""
    command = [entry_point(), "--help"]
    help_times = []
    for _ in range(STARTUP_REPEATS):
        begin = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        help_times.append(time.perf_counter() - begin)
    code = LOAD_CONTRACTS.format(mappings=str(REPO / "mappings"))
    load_times, count = [], 0
    for _ in range(STARTUP_REPEATS):
        out = subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=REPO
        ).stdout.split()
        count = int(out[0])
        load_times.append(float(out[1]))
    return min(help_times) * 1e3, min(load_times) * 1e3, count


# -- report -------------------------------------------------------------------------------------


def pin_one_core() -> str:
    """Run on a single CPU where the OS allows it (Python code uses one core anyway)."""
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    return "not pinned"


def print_table(rows: list[Row]) -> None:
    headers = ("workload", "ours µs/op", "businesstimedelta µs/op", "speed-up", "ops/s ours")
    lines = []
    for row in rows:
        theirs = row.theirs_note if row.theirs_us is None else f"{row.theirs_us:,.1f}"
        if row.theirs_us is not None and row.theirs_note:
            theirs += f" ({row.theirs_note})"
        speedup = "n/a" if row.speedup is None else f"{row.speedup:,.0f}×"
        ops = f"{1e6 / row.ours_us:,.0f}"
        lines.append((row.workload, f"{row.ours_us:,.2f}", theirs, speedup, ops))
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers)]

    def fmt(cells: Sequence[str]) -> str:
        first, *rest = cells
        return (
            "| "
            + " | ".join(
                [first.ljust(widths[0])]
                + [c.rjust(w) for c, w in zip(rest, widths[1:], strict=True)]
            )
            + " |"
        )

    print(fmt(headers))
    print(
        "|"
        + "|".join(("-" * (widths[0] + 2),) + tuple("-" * (w + 1) + ":" for w in widths[1:]))
        + "|"
    )
    for line in lines:
        print(fmt(line))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer starts, for CI smoke runs")
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    n_ours, n_btd8, n_btd1000 = SIZES[mode]
    began = time.perf_counter()

    pinned = pin_one_core()
    print(
        f"mode={mode} seed={SEED} starts={n_ours:,} python={platform.python_version()} "
        f"cpus={os.cpu_count()} ({pinned}) holidays={version('holidays')} "
        f"businesstimedelta={version('businesstimedelta')} pytz={version('pytz')}"
    )
    starts = random_starts(n_ours)
    rows = [
        bench_vaud(8, n_ours, n_btd8, starts),
        bench_vaud(1000, n_ours, n_btd1000, starts),
        bench_union(n_ours, starts),
    ]
    print()
    print_table(rows)
    print()
    for row in rows:
        print(f"check {row.workload}: {row.agree}")

    eight, thousand = rows[0], rows[1]
    ratio = thousand.ours_us / eight.ours_us
    ops = 1e6 / eight.ours_us
    print()
    print(f"ours(1000 h) / ours(8 h)          = {ratio:.2f}  (goal <= 2: {_yes(ratio <= 2)})")
    print(f"ours due computations/s, 1 core   = {ops:,.0f}  (goal > 100,000: {_yes(ops > 1e5)})")
    speedup = eight.speedup or 0.0
    print(
        f"speed-up at 8 h                   = {speedup:,.0f}×  (goal >= 100×: {_yes(speedup >= 100)})"
    )

    help_ms, load_ms, count = startup_ms()
    print()
    print(
        f"sla-connector --help, wall        = {help_ms:6.1f} ms  (goal < 300 ms: {_yes(help_ms < 300)})"
    )
    print(
        f"import + load {count} contracts       = {load_ms:6.1f} ms  "
        f"(goal < 300 ms: {_yes(load_ms < 300)})"
    )
    print(f"\nbenchmark wall time: {time.perf_counter() - began:.1f} s")
    return 0


def _yes(ok: bool) -> str:
    return "yes" if ok else "NO"


if __name__ == "__main__":
    raise SystemExit(main())
