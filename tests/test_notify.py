"""sd_notify as systemd receives it: real datagram sockets, exact messages."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.notify import Notifier


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    """A datagram socket bound in a temporary folder, standing in for systemd's."""
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(5)
        yield path, sock


def received(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def nothing_waiting(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        sock.recv(4096)
    except BlockingIOError:
        return True
    return False


def test_each_call_sends_its_exact_message(listener: tuple[str, socket.socket]) -> None:
    path, sock = listener
    notifier = Notifier(path)
    assert notifier.enabled

    notifier.ready()
    assert received(sock) == "READY=1"
    notifier.ready("synced 12 tickets")
    assert received(sock) == "READY=1\nSTATUS=synced 12 tickets"
    notifier.status("last sync 09:00:00Z")
    assert received(sock) == "STATUS=last sync 09:00:00Z"
    notifier.watchdog()
    assert received(sock) == "WATCHDOG=1"
    notifier.stopping("finishing the page in hand")
    assert received(sock) == "STOPPING=1\nSTATUS=finishing the page in hand"
    notifier.stopping()
    assert received(sock) == "STOPPING=1"


def test_reloading_carries_the_monotonic_clock(listener: tuple[str, socket.socket]) -> None:
    path, sock = listener
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    Notifier(path).reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000

    first, second = received(sock).split("\n")
    assert first == "RELOADING=1"
    key, _, value = second.partition("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after


def test_a_newline_in_a_status_cannot_forge_another_field(
    listener: tuple[str, socket.socket],
) -> None:
    path, sock = listener
    Notifier(path).status("bad page\nREADY=1")
    assert received(sock) == "STATUS=bad page READY=1"


def test_an_abstract_socket_is_reached_through_its_at_name() -> None:
    name = f"sla-connector-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        Notifier("@" + name).ready()
        assert received(sock) == "READY=1"


def test_the_socket_defaults_to_notify_socket(
    listener: tuple[str, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, sock = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    Notifier().watchdog()
    assert received(sock) == "WATCHDOG=1"


@pytest.mark.parametrize("value", [None, "", "vsock:2:1234"])
def test_without_a_unix_socket_every_call_is_a_no_op(
    value: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if value is None:
        monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    else:
        monkeypatch.setenv("NOTIFY_SOCKET", value)
    notifier = Notifier()
    assert not notifier.enabled
    notifier.ready("up")
    notifier.status("x")
    notifier.watchdog()
    notifier.reloading()
    notifier.stopping()


def test_a_dead_socket_does_not_raise(tmp_path: Path) -> None:
    notifier = Notifier(str(tmp_path / "gone"))
    assert notifier.enabled
    notifier.ready("up")
    notifier.watchdog()
    notifier.stopping()


def test_a_full_socket_queue_drops_the_message_instead_of_blocking(
    listener: tuple[str, socket.socket],
) -> None:
    path, sock = listener
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as filler:
        filler.setblocking(False)
        sent = 0
        with pytest.raises(BlockingIOError):  # noqa: PT012
            while sent < 100_000:
                filler.sendto(b"FILLER=1", path)
                sent += 1
    Notifier(path).watchdog()  # returns at once
    sock.setblocking(False)
    messages = []
    with pytest.raises(BlockingIOError):  # noqa: PT012
        while True:
            messages.append(sock.recv(4096))
    assert messages == [b"FILLER=1"] * sent


def test_an_explicit_empty_path_disables_even_with_notify_socket(
    listener: tuple[str, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, sock = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    Notifier("").ready()
    assert nothing_waiting(sock)


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("30000000", None, 30.0),
        ("30000000", "self", 30.0),
        ("500000", "self", 0.5),
        ("30000000", "1", None),  # another process's watchdog
        (None, None, None),
        ("0", None, None),
        ("-5", None, None),
        ("soon", None, None),
    ],
)
def test_watchdog_interval_from_the_environment(
    usec: str | None, pid: str | None, expected: float | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in (("WATCHDOG_USEC", usec), ("WATCHDOG_PID", pid)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, str(os.getpid()) if value == "self" else value)
    assert Notifier("").watchdog_interval() == expected


def test_alive_pings_at_most_once_a_second_and_a_sleep_keeps_pinging(
    listener: tuple[str, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, sock = listener
    notifier = Notifier(path)
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    notifier.alive("request", None, None, 0.1)  # an HTTP observer's arguments are ignored
    assert received(sock) == "WATCHDOG=1"
    now[0] += 0.5
    notifier.alive()
    now[0] += 0.6
    notifier.alive()
    assert received(sock) == "WATCHDOG=1"
    assert nothing_waiting(sock)  # the one half a second after the first was not sent

    def sleep(seconds: float) -> None:
        now[0] += seconds

    monkeypatch.setattr(time, "sleep", sleep)
    notifier.sleep(3.5)  # a long rate-limit wait
    pings = []
    with contextlib.suppress(BlockingIOError):
        while True:
            pings.append(sock.recv(4096).decode())
    assert pings == ["WATCHDOG=1"] * 3  # a second, two and three into the wait
