"""The command line, run in process as a user would type it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from connector.cli import main
from tests.conftest import MAPPINGS, ROOT

EXAMPLE = MAPPINGS / "examples" / "tickets.jsonl"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["sla", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_compute_prints_a_readable_decision(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(
        capsys,
        "compute",
        "--contract",
        "photoprism",
        "--plan",
        "gold",
        "--severity",
        "sev1",
        "--created",
        "2026-03-02T08:15:00Z",
        "--now",
        "2026-03-02T09:00:00Z",
        "--mappings",
        str(MAPPINGS),
    )
    assert (status, err) == (0, "")
    assert "first_response  running     Tue 2026-03-03 09:15 CET (2026-03-03T08:15:00Z)" in out
    assert "8 business hours, Berlin office" in out
    assert "tags       sla_photoprism sla_plan_gold sla_sev1" in out
    assert "entitled   included: covered by the plan" in out
    assert "quota      incidents: 1 of 4 in 2026-03 (fits)" in out
    assert "note       SLA PhotoPrism Business Support, plan gold, severity sev1." in out


@pytest.mark.parametrize(
    ("flags", "entitled"),
    [
        (("--seats", "2", "--subscription-start", "2023-05-01"), "entitled   included"),
        (("--inactive",), "entitled   not_eligible: not covered by this contract"),
    ],
)
def test_compute_takes_the_customers_subscription(
    capsys: pytest.CaptureFixture[str], flags: tuple[str, ...], entitled: str
) -> None:
    """solidxperts' answer is its entitlement and note: an active subscription covers an
    installation; an inactive one does not, and the note says what to offer instead."""
    status, out, err = run(
        capsys,
        "compute",
        "--contract",
        "solidxperts",
        "--category",
        "installation",
        "--created",
        "2026-03-02T15:00:00Z",
        "--now",
        "2026-03-02T16:00:00Z",
        "--mappings",
        str(MAPPINGS),
        *flags,
    )
    assert (status, err) == (0, "")
    assert entitled in out
    if "--inactive" in flags:
        assert "ppi_offer" in out
        assert "subscription is not active" in out


def test_compute_json(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(
        capsys,
        "compute",
        "--contract",
        "pix4d-premium",
        "--severity",
        "critical",
        "--office",
        "lausanne",
        "--office",
        "denver",
        "--created",
        "2026-11-20T15:30:00Z",
        "--now",
        "2026-11-20T15:30:00Z",
        "--json",
        "--mappings",
        str(MAPPINGS),
    )
    decision = json.loads(out)
    assert status == 0
    # Friday: Lausanne closes at 16:00Z, Denver opens then: follow the sun.
    assert decision["targets"]["first_contact"]["due"] == "2026-11-20T16:30:00Z"
    assert decision["calendar"] == "Denver office + Lausanne office"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            [
                "--contract",
                "photoprism",
                "--plan",
                "gold",
                "--severity",
                "sev1",
                "--created",
                "2026-03-02T08:15:00",
            ],
            "--created: timestamp without a timezone",
        ),
        (
            ["--contract", "acme", "--severity", "sev1", "--created", "2026-03-02T08:15:00Z"],
            "--contract: unknown contract 'acme' (known: photoprism, pix4d-premium",
        ),
        (
            [
                "--contract",
                "photoprism",
                "--plan",
                "gold",
                "--severity",
                "sev7",
                "--created",
                "2026-03-02T08:15:00Z",
            ],
            "ticket cli: unknown severity 'sev7'",
        ),
        (
            [
                "--contract",
                "pix4dengine-enterprise",
                "--severity",
                "major",
                "--region",
                "mars",
                "--created",
                "2026-03-02T08:15:00Z",
            ],
            "ticket cli: unknown region 'mars'",
        ),
        (
            [
                "--contract",
                "pix4d-premium",
                "--severity",
                "major",
                "--office",
                "paris",
                "--created",
                "2026-03-02T08:15:00Z",
            ],
            "ticket cli: unknown severity 'major'",
        ),
        (
            [
                "--contract",
                "pix4d-premium",
                "--severity",
                "minor",
                "--office",
                "paris",
                "--created",
                "2026-03-02T08:15:00Z",
            ],
            "ticket cli: unknown office 'paris'",
        ),
        (
            [
                "--contract",
                "pixelz",
                "--category",
                "order",
                "--quantity",
                "images",
                "--created",
                "2026-03-02T08:15:00Z",
            ],
            "--quantity: expected NAME=N",
        ),
    ],
)
def test_compute_errors_are_one_line_with_status_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    status, out, err = run(capsys, "compute", *argv, "--mappings", str(MAPPINGS))
    assert status == 2
    assert out == ""
    assert err.count("\n") == 1
    assert message in err


def test_simulate_writes_one_decision_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(
        capsys,
        "simulate",
        str(EXAMPLE),
        "--now",
        "2026-03-06T16:00:00Z",
        "--mappings",
        str(MAPPINGS),
    )
    lines = [json.loads(line) for line in out.splitlines()]
    tickets = [json.loads(line)["id"] for line in EXAMPLE.read_text().splitlines() if line]
    assert status == 0
    assert [d["ticket"] for d in lines] == tickets
    assert {d["contract"] for d in lines} == {
        "photoprism",
        "pix4d-premium",
        "pix4dengine-enterprise",
        "pixelz",
        "solidxperts",
    }
    # The example's ticket in Antarctica is unmapped: a decision plus a one-line warning.
    assert "ticket 6003: unknown region 'antarctica'" in err
    assert err.count("\n") == 1


def test_simulate_reports_bad_lines_and_goes_on(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = EXAMPLE.read_text().splitlines()[0]
    naive = good.replace('"id": "4711"', '"id": "9"').replace("08:15:00Z", "08:15:00")
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join([naive, "{not json", good, ""]) + "\n")
    monkeypatch.chdir(tmp_path)
    status, out, err = run(capsys, "simulate", "in.jsonl", "--mappings", str(MAPPINGS))
    assert status == 2
    assert len(out.splitlines()) == 1
    errors = err.splitlines()
    assert errors[0].startswith("sla-connector: error: in.jsonl:1 (ticket 9): created_at:")
    assert "timestamp without a timezone" in errors[0]
    assert errors[1].startswith("sla-connector: error: in.jsonl:2: ")
    assert len(errors) == 2


def test_a_ticket_dated_outside_the_calendars_years_is_unmapped_not_a_crash(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lines = [
        '{"id": "1", "created_at": "1960-01-01T00:00:00Z", "contract": "photoprism", '
        '"customer": "c", "plan": "gold", "severity": "sev1"}',
        '{"id": "2", "created_at": "2026-01-01T09:00:00Z", "contract": "photoprism", '
        '"customer": "c", "plan": "gold", "severity": "sev1"}',
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n")
    status, out, err = run(capsys, "simulate", str(source), "--mappings", str(MAPPINGS))
    assert status == 0
    decisions = {d["ticket"]: d for d in map(json.loads, out.splitlines())}
    assert "sla_unmapped" in decisions["1"]["tags"]
    assert "outside the supported years" in decisions["1"]["problem"]
    assert decisions["2"]["entitlement"] == "included"
    assert err.count("\n") == 1
    assert err.startswith("sla-connector: warning: ticket 1: ")


def test_simulate_reads_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO(EXAMPLE.read_text().splitlines()[0] + "\n"))
    status, out, _ = run(capsys, "simulate", "-", "--mappings", str(MAPPINGS))
    assert status == 0
    assert json.loads(out)["ticket"] == "4711"


def test_a_broken_mapping_folder_stops_with_status_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts" / "bad.yaml").write_text("name: bad\ntitle: x\nzone: Nowhere/Land\n")
    status, out, err = run(capsys, "simulate", str(EXAMPLE), "--mappings", str(tmp_path))
    assert (status, out) == (2, "")
    where = f"{tmp_path}/contracts/bad.yaml:3"
    assert err == f"sla-connector: error: {where}: zone: unknown IANA time zone 'Nowhere/Land'\n"


def test_module_entry_point_and_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "connector", "sla", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0
    assert "compute" in result.stdout
    assert "simulate" in result.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "connector", "sla", "compute"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert missing.returncode == 2
    assert "--contract" in missing.stderr


def test_a_reader_that_stops_early_gets_no_traceback() -> None:
    # `sla simulate - | head -1`: the pipe closes long before the output (well over a pipe
    # buffer) is written.
    lines = (MAPPINGS / "examples" / "tickets.jsonl").read_text().splitlines()
    tickets = [json.loads(line) for line in lines if line.strip()]
    many = "".join(
        json.dumps(ticket | {"id": f"{ticket['id']}-{i}"}) + "\n"
        for i in range(400)
        for ticket in tickets
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "connector", "sla", "simulate", "-", "--now", "2026-03-06T16:00Z"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.write(many.encode())
    process.stdin.close()
    assert process.stdout.readline().startswith(b'{"ticket"')
    process.stdout.close()
    assert process.stderr is not None
    with process.stderr:
        stderr = process.stderr.read()
    process.wait(timeout=60)
    assert b"Traceback" not in stderr


def test_an_instant_without_a_utc_equivalent_is_one_error_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"id": "1", "created_at": "0001-01-01T00:00:00+01:00", "contract": "photoprism", '
        '"customer": "c", "plan": "gold", "severity": "sev1"}\n'
    )
    status, out, err = run(capsys, "simulate", str(source), "--mappings", str(MAPPINGS))
    assert (status, out) == (2, "")
    assert err.startswith(f"sla-connector: error: {source}:1 (ticket 1): created_at: ")
    assert err.count("\n") == 1
    status, _, err = run(
        capsys, "compute", "--contract", "photoprism", "--plan", "gold", "--severity", "sev1",
        "--created", "0001-01-01T00:00:00+01:00", "--mappings", str(MAPPINGS),
    )  # fmt: skip
    assert status == 2
    assert "--created: instant out of range" in err
