"""`sla-connector report` over a year of a large account: time and peak memory beside the goal.

Builds a SQLite state holding 200,000 tickets created over 2026 (the generator of
`bench_simulate.py`: all five contracts, 2,000 customers), then runs the real command in a
fresh process, several times, for a year's report in JSON and in HTML:

    python benchmarks/bench_report.py [--tickets 200000] [--runs 3]

Goal (issue 20): a report over 200,000 tickets in under 10 s and 200 MB.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench_simulate import ticket_lines

from connector.sla.model import TicketFacts
from connector.state import State

ROOT = Path(__file__).resolve().parent.parent
GOAL_SECONDS, GOAL_MB = 10.0, 200.0


def build_state(folder: Path, tickets: int, customers: int) -> float:
    """The state with `tickets` tickets' facts, in one transaction; the seconds it took."""
    started = time.perf_counter()
    state = State(folder / "state.sqlite3")
    try:
        with state.transaction():
            for line in ticket_lines(tickets, customers, in_order=True):
                facts = TicketFacts.model_validate_json(line)
                state.put_facts(facts, line)
    finally:
        state.close()
    return time.perf_counter() - started


def run_report(config: Path, out: Path, fmt: str) -> tuple[float, float]:
    """One report in a fresh process: wall seconds and the process's peak resident MB."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "connector",
            "report",
            "--config",
            str(config),
            "--since",
            "2026-01-01",
            "--until",
            "2027-01-01",
            "--by",
            "contract",
            "--by",
            "customer",
            "--format",
            fmt,
            "--out",
            str(out),
        ],
        check=True,
        cwd=ROOT,
        capture_output=True,
        env={**os.environ, "SLA_CONNECTOR_CONFIG": str(config)},
    )
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of the children is the largest child's so far: each run in a new process
    # shows its own only if it is the largest; the runs are alike, so this is their peak.
    return seconds, max(peak, before) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=200_000)
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-report-") as scratch:
        folder = Path(scratch)
        built = build_state(folder, args.tickets, args.customers)
        config = folder / "config.toml"
        config.write_text(
            f'helpdesk = "zendesk"\nstate_dir = "{folder}"\n'
            f'helpdesk_mapping = "{ROOT / "mappings" / "helpdesks" / "zendesk.example.yaml"}"\n'
            '[zendesk]\nurl = "https://acme.zendesk.com"\nemail = "bot@acme.example"\n'
        )
        size = (folder / "state.sqlite3").stat().st_size / 2**20
        print(
            f"state: {args.tickets:,} tickets of {args.customers:,} customers over 2026, "
            f"{size:.0f} MB, built in {built:.1f} s ({datetime.now(UTC):%Y-%m-%d})"
        )
        print(f"{'format':<6} {'min s':>7} {'median s':>9} {'max s':>7} {'peak MB':>8}  goal")
        for fmt in ("json", "html"):
            times, peaks = [], []
            for _ in range(args.runs):
                seconds, peak = run_report(config, folder / f"report.{fmt}", fmt)
                times.append(seconds)
                peaks.append(peak)
            print(
                f"{fmt:<6} {min(times):>7.2f} {statistics.median(times):>9.2f} "
                f"{max(times):>7.2f} {max(peaks):>8.0f}  under {GOAL_SECONDS:.0f} s and "
                f"{GOAL_MB:.0f} MB"
            )


if __name__ == "__main__":
    main()
