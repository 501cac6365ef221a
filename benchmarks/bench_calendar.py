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
REPEATS = 7
STARTUP_REPEATS = 5

# starts timed for our engine; for businesstimedelta at 8 h and at 1000 h; every how many edge
# starts are checked at 1000 h; starts checked against the brute-force union
SIZES = {"full": (10_000, 10_000, 500, 1, 200), "quick": (2_000, 500, 25, 10, 40)}


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


def edge_starts() -> list[datetime]:
    """Deterministic awkward starts for the agreement check: just before/at each opening and
    closing, around midnight and in the DST gap/overlap hours, on every day within three days of
    a DST change or a Vaud holiday in 2026-2027."""
    zurich = ZoneInfo("Europe/Zurich")
    changes = [date(2026, 3, 29), date(2026, 10, 25), date(2027, 3, 28), date(2027, 10, 31)]
    holidays_ = [d for d in vaud_dates() if d.year in (2026, 2027)]
    days = sorted({d + timedelta(days=k) for d in changes + holidays_ for k in range(-3, 4)})
    times = [(0, 0, 0), (0, 30, 0), (2, 30, 0), (8, 59, 59), (9, 0, 0), (16, 59, 59), (17, 0, 0)]
    return [
        datetime(d.year, d.month, d.day, h, m, s, tzinfo=zurich).astimezone(UTC)
        for d in days
        for h, m, s in times
    ]


def compare(
    starts: Sequence[datetime], ours: Sequence[datetime], theirs: Sequence[datetime]
) -> tuple[int, list[tuple[datetime, datetime, datetime]]]:
    """Agreement count on the same instant (compared as instants, whatever the zone)."""
    differ = [(s, a, b) for s, a, b in zip(starts, ours, theirs, strict=True) if a != b]
    for start, a, b in differ[:10]:
        print(f"  DISAGREE start={start:%Y-%m-%dT%H:%M:%SZ} ours={a} businesstimedelta={b}")
    return len(starts) - len(differ), differ


def bench_vaud(
    hours: int, n_ours: int, n_theirs: int, starts: list[datetime], edges: list[datetime]
) -> Row:
    calendar = BusinessCalendar([vaud_office()])
    ours_us, ours_due = time_adds(calendar.add, starts[:n_ours], timedelta(hours=hours))
    duration = btd.BusinessTimeDelta(btd_vaud_rules(), hours=hours)
    theirs_us, theirs_due = time_adds(lambda s, d: s + d, starts[:n_theirs], duration)
    # Every start both libraries were timed on is compared, then the awkward edge starts.
    agreed, _ = compare(starts[:n_theirs], ours_due[:n_theirs], theirs_due)
    edge_ours = [calendar.add(s, timedelta(hours=hours)) for s in edges]
    edge_agreed, _ = compare(edges, edge_ours, [s + duration for s in edges])
    note = "" if n_theirs == n_ours else f"on first {n_theirs:,} starts"
    return Row(
        f"CH-VD +{hours} h",
        ours_us,
        theirs_us,
        note,
        f"{agreed:,}/{n_theirs:,} random starts and {edge_agreed:,}/{len(edges):,} edge starts "
        "give identical due instants",
    )


def bench_vaud_epoch(n_ours: int, starts: list[datetime]) -> Row:
    """The same engine without the datetime conversions: epoch seconds in and out."""
    calendar = BusinessCalendar([vaud_office()])
    epochs = [int(s.timestamp()) for s in starts[:n_ours]]
    ours_us, due = time_adds(calendar.add_epoch, epochs, 8 * 3600)
    same = sum(
        int(calendar.add(s, timedelta(hours=8)).timestamp()) == d
        for s, d in zip(starts, due, strict=False)
    )
    return Row(
        "CH-VD +8 h, add_epoch (int seconds)",
        ours_us,
        None,
        "n/a (datetimes only)",
        f"{same:,}/{len(due):,} equal to add()",
    )


def brute_union_due(start: datetime, seconds: int, offices: Sequence[Office]) -> datetime:
    """Independent check of the union: walk minute by minute (every opening and closing here is
    on a whole minute), open when any office is on a weekday 09:00-17:00 local, not a holiday of
    its own country straight from the `holidays` package."""
    closed = [
        frozenset(holidays.country_holidays(o.holidays.country, years=[2025, 2026, 2027, 2028]))
        for o in offices
    ]
    t, left = start, seconds
    while True:
        after = t.replace(second=0) + timedelta(minutes=1)
        step = int((after - t).total_seconds())
        if any(
            (local := t.astimezone(o.zone)).weekday() < 5
            and 9 <= local.hour < 17
            and local.date() not in days
            for o, days in zip(offices, closed, strict=True)
        ):
            if left <= step:
                return t + timedelta(seconds=left)
            left -= step
        t = after


def bench_union(n_ours: int, n_check: int, starts: list[datetime]) -> Row:
    union = union_calendar()
    ours_us, due = time_adds(union.add, starts[:n_ours], timedelta(hours=8))
    brute = [brute_union_due(s, 8 * 3600, union.offices) for s in starts[:n_check]]
    same = sum(a == b for a, b in zip(due, brute, strict=False))
    return Row(
        "union lausanne+denver+tokyo +8 h",
        ours_us,
        None,
        "n/a (no unions)",
        f"{same:,}/{n_check:,} equal to a minute-by-minute walk",
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
        cpu = max(os.sched_getaffinity(0))  # CPU 0 takes most housekeeping
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    return "not pinned"


def print_table(rows: list[Row]) -> None:
    headers = ("workload", "ours µs/op", "businesstimedelta µs/op", "speed-up", "ops/s ours")
    lines = [headers]
    for row in rows:
        theirs = row.theirs_note if row.theirs_us is None else f"{row.theirs_us:,.1f}"
        if row.theirs_us is not None and row.theirs_note:
            theirs += f" ({row.theirs_note})"
        speedup = "n/a" if row.speedup is None else f"{row.speedup:,.0f}x"
        ops = f"{1e6 / row.ours_us:,.0f}"
        lines.append((row.workload, f"{row.ours_us:,.2f}", theirs, speedup, ops))
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]
    rule = ["-" * (widths[0] + 2)] + ["-" * (w + 1) + ":" for w in widths[1:]]
    for n, line in enumerate(lines):
        right = zip(line[1:], widths[1:], strict=True)
        cells = [line[0].ljust(widths[0]), *(c.rjust(w) for c, w in right)]
        print("| " + " | ".join(cells) + " |")
        if n == 0:
            print("|" + "|".join(rule) + "|")


def print_goal(label: str, value: str, goal: str, met: bool) -> None:
    print(f"{label:<38} {value:>10}   goal {goal:<12} {'met' if met else 'NOT MET'}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer starts, for CI smoke runs")
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    n_ours, n_btd8, n_btd1000, edge_step, n_union = SIZES[mode]
    began = time.perf_counter()

    pinned = pin_one_core()
    print(
        f"mode={mode} seed={SEED} starts={n_ours:,} python={platform.python_version()} "
        f"cpus={os.cpu_count()} ({pinned}) holidays={version('holidays')} "
        f"businesstimedelta={version('businesstimedelta')} pytz={version('pytz')}"
    )
    starts = random_starts(n_ours)
    edges = edge_starts()
    rows = [
        bench_vaud(8, n_ours, n_btd8, starts, edges),
        bench_vaud(1000, n_ours, n_btd1000, starts, edges[::edge_step]),
        bench_union(n_ours, n_union, starts),
        bench_vaud_epoch(n_ours, starts),
    ]
    print()
    print_table(rows)
    print()
    for row in rows:
        print(f"check {row.workload}: {row.agree}")

    eight, thousand = rows[0], rows[1]
    ratio = thousand.ours_us / eight.ours_us
    ops = 1e6 / eight.ours_us
    speedup = eight.speedup or 0.0
    help_ms, load_ms, count = startup_ms()
    print()
    print_goal("ours(1000 h) / ours(8 h)", f"{ratio:.2f}", "<= 2", ratio <= 2)
    print_goal("ours CH-VD +8 h due computations/s", f"{ops:,.0f}", "> 100,000", ops > 100_000)
    print_goal(
        "speed-up vs businesstimedelta at 8 h", f"{speedup:,.0f}x", ">= 100x", speedup >= 100
    )
    print_goal(
        "sla-connector --help (wall, best of 5)", f"{help_ms:.1f} ms", "< 300 ms", help_ms < 300
    )
    print_goal(
        f"import + load {count} contracts (best of 5)",
        f"{load_ms:.1f} ms",
        "< 300 ms",
        load_ms < 300,
    )
    print(f"\nbenchmark wall time: {time.perf_counter() - began:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
