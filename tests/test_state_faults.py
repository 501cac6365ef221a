"""The daemon when its own state fails under it: a full disk, a lock held too long, a damaged
file. Each is a log line, a metric and a back-off, never a traceback; nothing half-written,
and once the cause is gone the daemon converges with no note posted twice (issue 16, item 6).
"""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

import pytest

from tests.test_fault_soak import open_run, tickets

pytestmark = pytest.mark.reliability


@pytest.mark.parametrize("helpdesk", ["zendesk", "freshdesk"])
def test_a_full_disk_mid_sync_is_a_failed_cycle_then_the_daemon_converges(
    helpdesk: str, tmp_path: Path
) -> None:
    seeds = tickets(120)
    reference = open_run(helpdesk, tmp_path / "reference", seeds)
    reference.converge(50)

    run = open_run(helpdesk, tmp_path / "full", seeds)
    db = run.state.db
    # The database may not grow past its size now: SQLite answers "database or disk is full"
    # as it would on a full file system, part way through the first sync.
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages + 3}")
    for _ in range(3):
        completed, _ = run.cycle()  # raises nothing
        assert not completed
    assert run.events.counts["sync_failed"] == 3
    db.execute("PRAGMA max_page_count = 1073741823")  # space freed
    run.converge(50)

    expected, shown = reference.shown(), run.shown()
    for ticket_id, want in expected.items():
        tags, *rest, marks = shown[ticket_id]
        assert (tags, *rest) == want[:-1], ticket_id
        assert all(a != b for a, b in itertools.pairwise(marks)), ticket_id
        assert marks[-1:] == want[-1][-1:], ticket_id


def test_a_state_locked_by_another_process_is_a_failed_cycle(tmp_path: Path) -> None:
    seeds = tickets(30)
    run = open_run("zendesk", tmp_path / "locked", seeds)
    run.state.db.execute("PRAGMA busy_timeout = 50")  # not the 30 s of production, for speed
    other = sqlite3.connect(run.state.path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # a sqlite3 shell left open on the live state, say
    try:
        completed, wrote = run.cycle()
        assert not completed
        assert wrote == 0
    finally:
        other.execute("ROLLBACK")
        other.close()
    completed, _ = run.cycle()
    assert completed
