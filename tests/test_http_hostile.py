"""The HTTP shell against a hostile server on loopback: every request ends, in bounded memory.

A raw socket server (one thread, one connection at a time) answers each request the way the
adversarial run's servers did: a trickle of one byte at a time, a `Content-Encoding` the body
does not have, a gzip bomb, a chunked body that never ends. Each must end with the shell's own
retryable error, `NotAvailable`, within the deadline and without holding more than the body cap
in memory. Deadlines are short here (half a second); the bounds on elapsed time are generous,
so a slow machine does not make them flaky, and far below what the hostile answers would last.
"""

from __future__ import annotations

import socket
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache

import httpx
import pytest
from pydantic import SecretStr

from connector.errors import AuthError, Interrupted, NotAvailable
from connector.helpdesks.zendesk import OAuthCredentials, OAuthTokens
from connector.http import HttpShell, Interrupt, Request, Response, RetryPolicy

pytestmark = pytest.mark.reliability

DEADLINE = 0.5
# Far above the deadline, far below how long each hostile answer would go on.
WITHIN = 8.0
CAP = 1 << 20
# Python allocations while a request runs: the cap, a decoding step, buffers. Without a cap
# the bombs below hold hundreds of MiB.
MEMORY_BOUND = 32 << 20
# How long a trickle goes on at most, so that a shell without a deadline fails instead of hanging.
TRICKLE_FOR = 30.0

Answer = Callable[[socket.socket, threading.Event], None]


class HostileServer:
    """A loopback HTTP/1.1 server that gives every request the same hostile `answer`."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.stopped = threading.Event()
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, name="hostile-server")

    def url(self, path: str = "/api/v2/tickets/1.json") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            with conn:
                try:
                    _read_request(conn)
                    self.answer(conn, self.stopped)
                except OSError:  # the client gave up: what the shell should do
                    pass

    def __enter__(self) -> HostileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join()
        self.listener.close()


def _read_request(conn: socket.socket) -> None:
    conn.settimeout(5.0)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            raise ConnectionError("closed before the request was complete")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        body += conn.recv(4096)


def _trickle(conn: socket.socket, stopped: threading.Event, data: Iterator[bytes]) -> None:
    """Send `data` one byte every 20 ms, until the client goes or `TRICKLE_FOR` is over."""
    ends = time.monotonic() + TRICKLE_FOR
    for byte in data:
        if stopped.wait(0.02) or time.monotonic() > ends:
            return
        conn.sendall(byte)


def _bytes(data: bytes) -> Iterator[bytes]:
    return (data[i : i + 1] for i in range(len(data)))


def _forever(data: bytes) -> Iterator[bytes]:
    while True:
        yield from _bytes(data)


def trickled_body(conn: socket.socket, stopped: threading.Event) -> None:
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    )
    _trickle(conn, stopped, _forever(b" "))


def trickled_status_line(conn: socket.socket, stopped: threading.Event) -> None:
    # Every byte arrives well within the per-read timeout: only a total deadline ends it.
    _trickle(conn, stopped, _bytes(b"HTTP/1.1 200 OK\r\nX-Padding: "))
    _trickle(conn, stopped, _forever(b"a"))


def broken_encoding(conn: socket.socket, stopped: threading.Event) -> None:
    body = b'{"ticket": {"id": 1}} says gzip, is not'
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )


@cache
def gzip_bomb() -> bytes:
    """256 MiB of zeros as ~260 KB of gzip: 256 times the test cap, small on the wire."""
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    zeros = bytes(1 << 20)
    return b"".join([*(packer.compress(zeros) for _ in range(256)), packer.flush()])


def bomb(conn: socket.socket, stopped: threading.Event) -> None:
    body = gzip_bomb()
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    conn.sendall(body)


def endless_chunks(conn: socket.socket, stopped: threading.Event) -> None:
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"%x\r\n%s\r\n" % (1 << 16, b" " * (1 << 16))
    # 256 MiB, 256 times the cap: endless as far as the shell can tell; then it ends, so that a
    # shell without a cap fails the test instead of running out of memory.
    for _ in range(4096):
        if stopped.is_set():
            return
        conn.sendall(chunk)
    conn.sendall(b"0\r\n\r\n")


def huge_declared_length(conn: socket.socket, stopped: threading.Event) -> None:
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        % (CAP * 256)
    )
    zeros = bytes(1 << 16)
    for _ in range(4096):
        if stopped.is_set():
            return
        conn.sendall(zeros)


def decode_json(response: Response) -> object:
    return response.json()


@contextmanager
def open_shell(attempts: int = 1) -> Iterator[HttpShell]:
    # A per-read timeout far above the trickle's pace: only the total deadline can end it.
    policy = RetryPolicy(
        attempts=attempts, backoff_initial=0.01, timeout=5.0, deadline=DEADLINE, max_body=CAP
    )
    with httpx.Client() as client:
        yield HttpShell(client, policy=policy)


@pytest.fixture(name="shell")
def shell_fixture() -> Iterator[HttpShell]:
    with open_shell() as shell:
        yield shell


def timed(send: Callable[[], object]) -> tuple[BaseException, float]:
    started = time.monotonic()
    with pytest.raises(NotAvailable) as caught:
        send()
    return caught.value, time.monotonic() - started


# --- item 5: a total deadline ----------------------------------------------------------------


@pytest.mark.parametrize("answer", [trickled_body, trickled_status_line], ids=["body", "head"])
def test_an_answer_trickling_past_the_deadline_ends_with_not_available(
    shell: HttpShell, answer: Answer
) -> None:
    with HostileServer(answer) as server:
        error, elapsed = timed(lambda: shell.send(Request("GET", server.url()), decode_json))
    assert elapsed < WITHIN
    assert "deadline" in str(error)


@pytest.mark.parametrize(("method", "sent"), [("GET", 2), ("PUT", 2), ("POST", 1)])
def test_a_request_past_its_deadline_is_retried_only_when_safe(method: str, sent: int) -> None:
    with open_shell(attempts=2) as shell, HostileServer(trickled_body) as server:
        _, elapsed = timed(lambda: shell.send(Request(method, server.url(), json={}), decode_json))
    assert server.connections == sent
    assert elapsed < WITHIN * sent


# --- item 6: no raw httpx error, no unbounded body -------------------------------------------


def test_a_body_that_is_not_in_its_content_encoding_is_not_available(shell: HttpShell) -> None:
    with HostileServer(broken_encoding) as server:
        error, _ = timed(lambda: shell.send(Request("GET", server.url()), decode_json))
    assert "gzip" in str(error)
    assert getattr(error, "status", None) == 200


@pytest.mark.parametrize(
    "answer", [bomb, endless_chunks, huge_declared_length], ids=["gzip bomb", "chunked", "length"]
)
def test_a_body_over_the_cap_stops_early_in_bounded_memory(
    shell: HttpShell, answer: Answer
) -> None:
    gzip_bomb()  # built before measuring
    with HostileServer(answer) as server:
        tracemalloc.start()
        try:
            error, elapsed = timed(lambda: shell.send(Request("GET", server.url()), decode_json))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < MEMORY_BOUND
    assert elapsed < WITHIN
    assert "larger than" in str(error)


# --- item 5: SIGTERM ends a read in flight, never a write ------------------------------------


@pytest.mark.parametrize("method", ["GET", "PUT", "POST"])
def test_a_stop_cuts_a_read_in_flight_and_lets_a_write_end_by_its_deadline(method: str) -> None:
    interrupt = Interrupt()
    deadline = 1.5
    policy = RetryPolicy(attempts=3, backoff_initial=0.01, timeout=5.0, deadline=deadline)
    with httpx.Client() as client, HostileServer(trickled_body) as server:
        shell = HttpShell(client, policy=policy, interrupt=interrupt)
        stop = threading.Timer(0.2, interrupt.set)
        stop.start()
        error, elapsed = timed(
            lambda: shell.send(Request(method, server.url(), json={}), decode_json)
        )
        stop.join()
    assert server.connections == 1  # never retried after the stop
    assert not getattr(error, "never_sent", True)
    if method == "GET":
        assert isinstance(error, Interrupted)
        assert elapsed < deadline
    else:
        # Cut, a write's outcome would be unknown: it runs to its deadline.
        assert elapsed >= deadline


def test_nothing_is_sent_once_a_stop_was_asked_for() -> None:
    interrupt = Interrupt()
    interrupt.set()
    with httpx.Client() as client, HostileServer(trickled_body) as server:
        shell = HttpShell(client, interrupt=interrupt)
        error, _ = timed(lambda: shell.send(Request("POST", server.url(), json={}), decode_json))
    assert isinstance(error, Interrupted)
    assert error.never_sent
    assert server.connections == 0


# --- the OAuth token request is bounded as every other ---------------------------------------


@pytest.mark.parametrize("answer", [trickled_body, bomb], ids=["trickle", "gzip bomb"])
def test_a_hostile_token_endpoint_ends_the_refresh_with_one_auth_error(answer: Answer) -> None:
    policy = RetryPolicy(timeout=5.0, deadline=DEADLINE, max_body=CAP)
    with httpx.Client() as client, HostileServer(answer) as server:
        credentials = OAuthCredentials(
            http=client,
            base_url=server.url(""),
            client_id="sla-connector",
            client_secret="CLIENT-SECRET-c4n4ry",
            tokens=OAuthTokens(
                access_token=SecretStr("ACCESS-c4n4ry"), refresh_token=SecretStr("REFRESH-c4n4ry")
            ),
            persist=lambda _: None,
            policy=policy,
        )
        started = time.monotonic()
        with pytest.raises(AuthError, match="token endpoint unreachable") as caught:
            credentials.refresh()
    assert time.monotonic() - started < WITHIN
    assert server.connections == 1
    assert "c4n4ry" not in str(caught.value)
