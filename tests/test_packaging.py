"""The package as `pip install .` builds it: the bundled mappings inside, found from anywhere.

The wheel is built from a copy of this checkout without its build leftovers (a stale
`*.egg-info` would hand setuptools the file list of an earlier build), with no build isolation
(the lock installs the build backend into the test environment), and unpacked, as pip does,
into a folder of its own. The
commands then run from an unrelated working directory with that folder on the path and
nothing pointing at the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
MAPPINGS = ROOT / "mappings"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source") / "sla-connector"
    leftovers = shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis"
    )
    shutil.copytree(ROOT, source, symlinks=True, ignore=leftovers)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(out),
            str(source),
        ],
        check=True,
        capture_output=True,
        cwd=out,
    )
    (built,) = out.glob("sla_connector-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    return site


def run(
    installed: Path, cwd: Path, *args: str, mappings: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m connector ARGS` from `installed` alone (`-P`: not from the working folder)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLA_CONNECTOR_")}
    env["PYTHONPATH"] = str(installed)
    if mappings is not None:
        env["SLA_CONNECTOR_MAPPINGS"] = str(mappings)
    return subprocess.run(
        [sys.executable, "-P", "-m", "connector", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_wheel_holds_every_bundled_mapping_file_and_no_top_level_folder(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    bundled = {
        f"connector/bundled/{path.relative_to(MAPPINGS).as_posix()}"
        for path in MAPPINGS.rglob("*")
        if path.is_file()
    }
    assert bundled, "mappings/ is empty"
    assert bundled <= names, sorted(bundled - names)
    assert not [n for n in names if n.startswith("mappings/")]


def test_the_installed_package_reads_its_own_contracts_from_any_folder(
    installed: Path, tmp_path: Path
) -> None:
    done = run(
        installed,
        tmp_path,
        *("sla", "compute", "--contract", "photoprism", "--plan", "gold", "--severity", "sev1"),
        *("--created", "2026-03-02T08:15:00Z", "--now", "2026-03-02T14:00:00Z"),
    )
    assert done.returncode == 0, done.stderr
    assert "first_response  running     Tue 2026-03-03 09:15 CET" in done.stdout


def test_the_installed_package_runs_the_demo_from_any_folder(
    installed: Path, tmp_path: Path
) -> None:
    done = run(installed, tmp_path, "demo", "--helpdesk", "freshdesk")
    assert done.returncode == 0, done.stderr
    assert "second pass:" in done.stdout
    assert done.stdout.splitlines()[-1].endswith(", nothing to write")


def test_sla_connector_mappings_and_the_option_come_before_the_bundled_files(
    installed: Path, tmp_path: Path
) -> None:
    own = tmp_path / "own"
    (own / "contracts").mkdir(parents=True)
    text = (MAPPINGS / "contracts" / "photoprism.yaml").read_text(encoding="utf-8")
    (own / "contracts" / "photoprism.yaml").write_text(
        text.replace("zone: Europe/Berlin", "zone: Asia/Tokyo"), encoding="utf-8"
    )
    args = ("sla", "compute", "--contract", "photoprism", "--plan", "gold", "--severity", "sev1")
    args += ("--created", "2026-03-02T08:15:00Z", "--now", "2026-03-02T09:00:00Z")

    by_option = run(installed, tmp_path, *args, "--mappings", str(own))
    by_environment = run(installed, tmp_path, *args, mappings=own)
    for done in (by_option, by_environment):
        assert done.returncode == 0, done.stderr
        assert "JST" in done.stdout


# --- the lock against the ranges ------------------------------------------------------------


def locked(name: str) -> dict[str, str]:
    """Package name (canonical) to version, as a lock file pins them."""
    pins = {}
    for line in (ROOT / name).read_text(encoding="utf-8").splitlines():
        if line[:1].isalnum() and "==" in line:
            package, _, rest = line.partition("==")
            pins[canonicalize_name(package.split(";")[0].strip())] = rest.split()[0].rstrip("\\;")
    return pins


def declared() -> tuple[list[Requirement], list[Requirement]]:
    """(run time and build backend, test and development) requirements of pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    run = [Requirement(r) for r in project["project"]["dependencies"]]
    run += [Requirement(r) for r in project["build-system"]["requires"]]
    extras = [
        Requirement(r)
        for group in project["project"]["optional-dependencies"].values()
        for r in group
    ]
    return run, [r for r in extras if canonicalize_name(r.name) != "sla-connector"]


def test_the_locks_pin_every_declared_dependency_inside_its_range() -> None:
    run, development = declared()
    for lock, requirements in (
        ("requirements.txt", run),
        ("requirements-dev.txt", run + development),
    ):
        pins = locked(lock)
        for requirement in requirements:
            name = canonicalize_name(requirement.name)
            assert name in pins, f"{lock} does not pin {name}: run .ci/lock"
            assert requirement.specifier.contains(pins[name], prereleases=True), (
                f"{lock} pins {name}=={pins[name]}, outside {requirement}: run .ci/lock"
            )


def test_the_run_time_lock_is_the_development_lock_without_the_tools() -> None:
    run_pins, dev_pins = locked("requirements.txt"), locked("requirements-dev.txt")
    assert {name: dev_pins.get(name) for name in run_pins} == run_pins
    _, development = declared()
    assert not {canonicalize_name(r.name) for r in development} & set(run_pins)
