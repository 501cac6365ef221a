"""A throw-away systemd container booted from this machine's own /usr: shared test setup.

`SystemdContainer` boots `systemd-nspawn --volatile=yes` on the host's root: the container's
root is an empty tmpfs with the host's /usr (read-only) under it, so systemd, Python and every
tool are the host's while nothing the container does reaches the host. On top:
- /etc and /usr/local are overlays of the host's with their writes in `workdir` (the host's
  configuration, so no first-boot questions; the units, configuration and secrets written
  inside stay there);
- `--private-network`: the container has only its own loopback;
- `binds`: host folders bound read-only at the given paths;
- it boots to basic.target, not the host's multi-user.target, so that none of the host's own
  services start inside.

Commands run inside with `nsenter` into the container's namespaces (no machined needed):
`run`, `sh`, `show` (`systemctl show`), `journal` (`journalctl -o json`). `close()` powers
the container off (SIGTERM to systemd-nspawn), kills it if that takes too long, and removes
what `SystemdContainer` created on the host. `unavailable()` says why this machine cannot boot
one (None when it can); `boot()` raises `ContainerUnavailable` when booting fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["ContainerUnavailable", "SystemdContainer", "unavailable"]

SYSTEMD = Path("/usr/lib/systemd/systemd")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"
BOOT_DEADLINE = 180.0


class ContainerUnavailable(Exception):
    """This machine cannot boot the container (the reason is the message)."""


def unavailable() -> str | None:
    """Why this machine cannot boot a systemd container, or None if it can try."""
    if sys.platform != "linux":
        return f"not Linux ({sys.platform})"
    if os.geteuid() != 0:
        return "not root"
    for tool in ("systemd-nspawn", "nsenter"):
        if shutil.which(tool) is None:
            package = "systemd-container" if tool == "systemd-nspawn" else "util-linux"
            return f"no {tool} (Debian package {package})"
    if not SYSTEMD.exists():
        return f"no {SYSTEMD} (Debian package systemd)"
    return None


def _escape(path: str) -> str:
    """A path for systemd-nspawn's colon-separated --bind/--overlay arguments."""
    return path.replace("\\", "\\\\").replace(":", "\\:")


def _cgroup_dirs() -> list[Path]:
    """Where systemd-nspawn --keep-unit makes its `payload` and `supervisor` cgroups."""
    dirs = []
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        hierarchy, _, path = line.split(":", 2)
        if hierarchy == "0":
            base = Path("/sys/fs/cgroup/unified")
            base = base if base.is_dir() else Path("/sys/fs/cgroup")
        elif "name=systemd" in line:
            base = Path("/sys/fs/cgroup/systemd")
        else:
            continue
        for name in ("payload", "supervisor"):
            dirs.append(base / path.lstrip("/") / name)
    return dirs


class SystemdContainer:
    """One booted container; see the module's docstring."""

    def __init__(self, workdir: Path, name: str, binds: Sequence[tuple[Path, str]] = ()) -> None:
        self.workdir = workdir
        self.name = name
        self.binds = list(binds)
        self.boot_log = workdir / "boot.log"
        self.nspawn: subprocess.Popen[bytes] | None = None
        self.init_pid: int | None = None
        self._new_cgroups: list[Path] = []

    # --- boot and power-off ---------------------------------------------------------------

    def boot(self) -> None:
        """Start the container and wait until its systemd has finished booting."""
        uppers = {"/etc": self.workdir / "etc", "/usr/local": self.workdir / "usr-local"}
        for upper in uppers.values():
            upper.mkdir(parents=True)
        command = [
            "systemd-nspawn",
            "--directory=/",
            "--volatile=yes",
            f"--machine={self.name}",
            "--register=no",
            "--keep-unit",
            "--settings=no",
            "--private-network",
            "--link-journal=no",
            "--resolv-conf=off",
            "--timezone=off",
            "--console=read-only",
        ]
        for target, upper in uppers.items():
            command.append(f"--overlay={_escape(target)}:{_escape(str(upper))}:{_escape(target)}")
        for source, target in self.binds:
            command.append(f"--bind-ro={_escape(str(source))}:{_escape(target)}")
        command += ["--boot", "--", "systemd.unit=basic.target", "systemd.show_status=0"]
        self._new_cgroups = [d for d in _cgroup_dirs() if not d.exists()]
        with self.boot_log.open("wb") as log:
            self.nspawn = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + BOOT_DEADLINE
        self.init_pid = self._wait_for_init(deadline)
        self._wait_for_boot(deadline)

    def _wait_for_init(self, deadline: float) -> int:
        """The host PID of the container's systemd (PID 1 inside), once it runs systemd."""
        assert self.nspawn is not None
        while time.monotonic() < deadline:
            if self.nspawn.poll() is not None:
                raise ContainerUnavailable(
                    f"systemd-nspawn exited with status {self.nspawn.returncode}: "
                    f"{self.last_boot_line()}"
                )
            pid = _container_init(self.nspawn.pid)
            if pid is not None:
                return pid
            time.sleep(0.1)
        raise ContainerUnavailable(f"no systemd in the container: {self.last_boot_line()}")

    def _wait_for_boot(self, deadline: float) -> None:
        state = ""
        while time.monotonic() < deadline:
            left = max(deadline - time.monotonic(), 1.0)
            try:
                done = self.run(
                    "systemctl", "is-system-running", "--wait", check=False, timeout=left
                )
            except subprocess.TimeoutExpired:
                break
            state = done.stdout.strip() or done.stderr.strip()
            if state in ("running", "degraded"):
                return
            if state in ("maintenance", "stopping", "offline"):
                break
            time.sleep(0.5)  # the manager's socket is not there yet
        raise ContainerUnavailable(f"its systemd did not finish booting ({state or 'silent'})")

    def last_boot_line(self) -> str:
        """The last line systemd-nspawn or the container's console printed."""
        lines = self.boot_log.read_text(errors="replace").strip().splitlines()
        return lines[-1].strip() if lines else "no output"

    def close(self) -> None:
        """Power off (or kill) the container and remove what it left on the host."""
        nspawn, self.nspawn = self.nspawn, None
        if nspawn is not None:
            if nspawn.poll() is None:
                nspawn.send_signal(signal.SIGTERM)  # systemd-nspawn: an orderly power-off
            try:
                nspawn.wait(timeout=60)
            except subprocess.TimeoutExpired:
                nspawn.kill()
                if self.init_pid is not None:
                    # PID 1 of the container's PID namespace: its death ends every process
                    # in it.
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(self.init_pid, signal.SIGKILL)
                nspawn.wait(timeout=60)
        for cgroup in reversed(self._new_cgroups):
            with contextlib.suppress(OSError):
                cgroup.rmdir()  # only when empty: what a container left there

    def __enter__(self) -> SystemdContainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- commands inside ------------------------------------------------------------------

    def run(
        self,
        *argv: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """`argv` inside the container, as root, with a clean environment."""
        process = self.popen(*argv, stdin=subprocess.PIPE if input is not None else None)
        try:
            stdout, stderr = process.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill(process)
            raise
        done = subprocess.CompletedProcess(list(argv), process.returncode, stdout, stderr)
        if check and done.returncode != 0:
            raise AssertionError(
                f"in the container: {' '.join(argv)} exited with {done.returncode}\n"
                f"{done.stdout}{done.stderr}"
            )
        return done

    @staticmethod
    def kill(process: subprocess.Popen[str]) -> None:
        """End a `popen()` command: nsenter and the command it forked inside (its group)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate(timeout=60)

    def popen(self, *argv: str, stdin: int | None = None) -> subprocess.Popen[str]:
        """`argv` inside the container, not waited for (its output in `.stdout`, `.stderr`);
        in a process group of its own, which `kill()` ends."""
        assert self.init_pid is not None, "not booted"
        enter = ["nsenter", f"--target={self.init_pid}", "-m", "-u", "-i", "-n", "-p", "-r", "-w"]
        environment = ["env", "-i", f"PATH={PATH}", "LANG=C.UTF-8", "HOME=/root"]
        return subprocess.Popen(
            [*enter, "--", *environment, "SYSTEMD_COLORS=0", "SYSTEMD_PAGER=", *argv],
            stdin=subprocess.DEVNULL if stdin is None else stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def sh(self, script: str, timeout: float = 120.0) -> str:
        """A shell script inside (`set -eu`); its standard output."""
        return self.run("sh", "-eu", "-s", input=script, timeout=timeout).stdout

    def show(self, unit: str, *properties: str) -> dict[str, str]:
        """`systemctl show -p …` of `unit`."""
        wanted = [f"--property={name}" for name in properties]
        output = self.run("systemctl", "show", *wanted, unit).stdout
        return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)

    def cursor(self) -> str:
        """The journal's position now: `journal(after=…)` reads what comes after."""
        output = self.run("journalctl", "--no-pager", "-n", "1", "-o", "json").stdout
        return str(json.loads(output.splitlines()[-1])["__CURSOR"]) if output.strip() else ""

    def journal(self, unit: str | None = None, after: str = "") -> list[dict[str, Any]]:
        """The journal's entries (of `unit`, and systemd's about it), after a `cursor()`."""
        argv = ["journalctl", "--no-pager", "-o", "json"]
        argv += [f"--unit={unit}"] if unit else []
        # --cursor, and the entry at it left out: journalctl 252's --after-cursor also skips
        # the first match after the cursor when the entry at the cursor does not match.
        argv += [f"--cursor={after}"] if after else []
        entries = []
        for line in self.run(*argv).stdout.splitlines():
            entry = json.loads(line)
            if entry["__CURSOR"] == after:
                continue
            if not isinstance(entry.get("MESSAGE"), str):
                entry["MESSAGE"] = ""  # not UTF-8: journalctl gives it as bytes
            entries.append(entry)
        return entries

    def wait_for_journal(
        self,
        what: str,
        found: Callable[[list[dict[str, Any]]], bool],
        unit: str | None = None,
        after: str = "",
        timeout: float = 60.0,
    ) -> list[dict[str, Any]]:
        """The entries, once `found(entries)` (journald writes what it hears a moment later)."""
        deadline = time.monotonic() + timeout
        while True:
            entries = self.journal(unit, after)
            if found(entries):
                return entries
            if time.monotonic() > deadline:
                tail = "\n".join(e["MESSAGE"] for e in entries[-15:])
                raise AssertionError(f"timed out waiting for {what}; the journal's last:\n{tail}")
            time.sleep(0.5)


def _container_init(nspawn_pid: int) -> int | None:
    """The descendant of `nspawn_pid` that is PID 1 of its own namespace and runs systemd."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{entry}/status").read_text()
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            children.setdefault(int(fields["PPid"]), []).append(int(entry))
    todo = list(children.get(nspawn_pid, []))
    while todo:
        pid = todo.pop()
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{pid}/status").read_text()
            nspid = next(line for line in status.splitlines() if line.startswith("NSpid:"))
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            if nspid.split()[-1] == "1" and len(nspid.split()) > 2 and comm == "systemd":
                return pid
        todo += children.get(pid, [])
    return None
