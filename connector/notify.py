"""Tell systemd how the daemon is doing: the sd_notify protocol, without libsystemd.

A `Type=notify` unit gets `$NOTIFY_SOCKET`, an AF_UNIX datagram socket (a path, or an abstract
name written with a leading `@`). Each message is newline-separated `KEY=value` lines. Outside
systemd there is no socket and every call is a no-op, so the daemon calls these unconditionally.
A failed or blocked send is dropped silently: systemd going away or stalling must never take
the daemon down with it.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable

__all__ = ["Notifier"]


class Notifier:
    """Sends READY, STATUS, WATCHDOG, RELOADING and STOPPING to the service manager."""

    # `alive()` sends at most this often: often enough for any watchdog a unit would set.
    ALIVE_EVERY = 1.0

    def __init__(self, socket_path: str | None = None) -> None:
        path = os.environ.get("NOTIFY_SOCKET") if socket_path is None else socket_path
        self._address = _address(path or "")
        self._alive_at = -self.ALIVE_EVERY
        # Called with each `alive` that reaches systemd: more that must be kept alive while
        # the daemon works (its claim on a shared state).
        self.also: list[Callable[[], None]] = []

    @property
    def enabled(self) -> bool:
        """Whether there is a socket to talk to; when False every call does nothing."""
        return self._address is not None

    def ready(self, status: str | None = None) -> None:
        """Startup (or a reload) is complete: `READY=1`, with an optional status line."""
        self._send("READY=1", status)

    def status(self, text: str) -> None:
        """Set the one-line status `systemctl status` shows."""
        self._send(None, text)

    def watchdog(self) -> None:
        """Keep the watchdog from firing: send while the daemon makes progress."""
        self._alive_at = time.monotonic()
        self._send("WATCHDOG=1", None)

    def alive(self, *_: object) -> None:
        """`watchdog()` at most once every `ALIVE_EVERY` seconds, to call at each step of work.

        A first sync of a large account takes most of an hour: the watchdog must hear from
        the daemon while it works (each ticket, each request, each wait), not once a cycle.
        Takes and ignores any arguments, so that it can also serve as an HTTP observer.
        """
        if time.monotonic() - self._alive_at >= self.ALIVE_EVERY:
            self.watchdog()
            for keep in self.also:
                keep()

    def sleep(self, seconds: float) -> None:
        """Sleep `seconds` (a rate-limit wait, a back-off), still saying that all is well."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.alive()
            time.sleep(min(left, self.ALIVE_EVERY))

    def reloading(self, status: str | None = None) -> None:
        """A reload has started; call `ready()` when it is done.

        systemd ≥ 253 (`Type=notify-reload`) wants the CLOCK_MONOTONIC instant with it, so that
        it can tell this reload from an earlier one.
        """
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self._send(f"RELOADING=1\nMONOTONIC_USEC={usec}", status)

    def stopping(self, status: str | None = None) -> None:
        """Shutdown has started: `STOPPING=1`."""
        self._send("STOPPING=1", status)

    def watchdog_interval(self) -> float | None:
        """Seconds within which systemd expects `watchdog()`, or None when no watchdog is set.

        From `$WATCHDOG_USEC`, honoured only when `$WATCHDOG_PID` is unset or is this process
        (a child that inherited the variables must not answer for its parent). Send at about
        half this interval.
        """
        pid = os.environ.get("WATCHDOG_PID")
        if pid is not None and pid.strip() != str(os.getpid()):
            return None
        try:
            usec = int(os.environ.get("WATCHDOG_USEC", ""))
        except ValueError:
            return None
        return usec / 1_000_000 if usec > 0 else None

    def _send(self, state: str | None, status: str | None) -> None:
        if self._address is None:
            return
        lines = [] if state is None else [state]
        if status is not None:
            # One message line per field: a newline in the text would start a bogus field.
            lines.append("STATUS=" + " ".join(status.splitlines()))
        message = "\n".join(lines).encode("utf-8", "replace")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                # Never wait: if systemd's queue is full, losing one message beats hanging.
                sock.sendto(message, socket.MSG_DONTWAIT, self._address)
        except OSError:
            return


def _address(path: str) -> str | None:
    """The AF_UNIX address for `$NOTIFY_SOCKET`; None when unset or not an AF_UNIX socket."""
    if path.startswith("@") and len(path) > 1:
        return "\0" + path[1:]
    if path.startswith("/"):
        return path
    return None  # unset, or a form we do not speak (systemd also allows `vsock:`)
