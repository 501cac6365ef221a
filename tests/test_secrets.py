"""Secrets stay secret: a canary per credential, through every command, the daemon and each fault.

Each credential is configured as a distinctive canary (through the environment, or as systemd
credential files in `$CREDENTIALS_DIRECTORY`), and the sandbox accepts exactly those canaries.
The real commands run against it (`check`, `sync --once`, `explain`, `backfill`, the daemon
in-process with its metrics and as a subprocess with JSON logs at debug level) while the
sandbox injects every fault it knows (429 in its three forms, 5xx, cut connections, slow and
malformed answers, agents' concurrent edits) and a `Gate` in front of its routes adds what it
does not: a 401 (Zendesk OAuth then refreshes), a 403, and error bodies that reflect the
request back, its Authorization header decoded and its body included, as a misbehaving proxy
or OAuth server does. So every error path carries the credentials as far as it can.

Then every byte a user or an operator can see is searched for each canary as is, URL-encoded,
JSON-escaped and base64-encoded (at any alignment, so inside `Basic base64(email/token:TOKEN)`
too, and the exact Authorization strings as well): standard output and error, the log lines,
the explain text, sd_notify messages, the metrics (scrape endpoint and textfile) and the state
database (the file, its -wal and -shm). Rotated OAuth tokens may live in one place only, the
`tokens` table, in clear: the daemon must use them after a restart, and the file is the
operator's alone (0600 in a 0700 directory, whatever the umask).

Plain `http://` is accepted on loopback only (the sandbox), refused with one line naming the
key everywhere else, before anything is sent.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import os
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

import connector.http
from connector import logs
from connector.app import open_helpdesk
from connector.cli import main
from connector.config import SECRET_NAMES, load_settings
from connector.metrics import Metrics
from connector.notify import Notifier
from connector.sandbox import Sandbox, SandboxCredentials, SandboxServer
from connector.sandbox.wsgi import ApiRequest, ApiResponse, Match, json_response
from connector.service.daemon import Daemon
from connector.state import State
from tests.conftest import MAPPINGS, forget_admin_settings, logging_restored

pytestmark = pytest.mark.reliability

MASK = logs.MASK
EMAIL = SandboxCredentials().zendesk_email
CLIENT_ID = SandboxCredentials().oauth_client_id
# A canary per credential: distinctive, with the characters that URL-encoding and base64
# alignment change, and (see `canaries`) a suffix proper to each test, so that a secret
# registered for redaction by an earlier test in this process cannot hide a leak in a later one.
CANARY = {
    "zendesk_api_token": "CANARY-zd-token-7f3a+9c1e/b5d2",
    "zendesk_oauth_client_secret": "CANARY-zd-client-secret-4be1+d70a/9c",
    "zendesk_oauth_refresh_token": "CANARY-zd-refresh-c3d9+e2a1/f07b",
    "freshdesk_api_key": "CANARY-fd-key-9e8d+7c6b/a5f4",
    # Used only with a PostgreSQL state_url: tests/test_state_postgres.py follows it there.
    "state_password": "CANARY-state-password-5d1c+a8e3/7f",
}
DEADLINE = 60.0


def canaries(tag: str) -> dict[str, str]:
    """The canaries of one test: the same every run, different from every other test's."""
    suffix = hashlib.sha256(tag.encode()).hexdigest()[:8]
    return {name: f"{value}-{suffix}" for name, value in CANARY.items()}


# --- what a leak looks like ------------------------------------------------------------------


def written_forms(secret: str) -> dict[str, str]:
    """Every way `secret` may be written down: as is, URL-encoded, JSON-escaped, base64.

    Base64 turns 3 bytes into 4 characters, so a secret inside a longer encoded string (as in
    `Basic base64(email/token:TOKEN)`) shows as the encoding of one of its three alignments.
    """
    forms = {
        "plain": secret,
        "url-encoded": quote(secret, safe=""),
        "url-encoded (path)": quote(secret, safe="/"),
        "form-encoded": quote_plus(secret),
        "json-escaped": json.dumps(secret)[1:-1],
    }
    raw = secret.encode()
    for skip in range(3):
        chunk = raw[skip : skip + (len(raw) - skip) // 3 * 3]
        forms[f"base64 at offset {skip}"] = base64.b64encode(chunk).decode()
        forms[f"url-safe base64 at offset {skip}"] = base64.urlsafe_b64encode(chunk).decode()
    return forms


def authorizations(secrets: dict[str, str]) -> dict[str, str]:
    """The exact Authorization values that carry the configured secrets, and their base64."""
    found = {}
    if "zendesk_api_token" in secrets:
        basic = _b64(f"{EMAIL}/token:{secrets['zendesk_api_token']}")
        found |= {"zendesk Authorization": f"Basic {basic}", "zendesk basic credentials": basic}
    if "freshdesk_api_key" in secrets:
        basic = _b64(f"{secrets['freshdesk_api_key']}:X")
        found |= {"freshdesk Authorization": f"Basic {basic}", "freshdesk basic credentials": basic}
    return found


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def leaks(artifacts: dict[str, bytes], secrets: dict[str, str]) -> list[str]:
    """`where: which secret, in which form` for every secret found in any artifact."""
    needles: dict[str, bytes] = {}
    for name, secret in secrets.items():
        for form, text in written_forms(secret).items():
            needles[f"{name} ({form})"] = text.encode()
    for what, text in authorizations(secrets).items():
        needles[what] = text.encode()
    return [
        f"{where}: {needle}"
        for where, data in artifacts.items()
        for needle, text in needles.items()
        if text in data
    ]


def token_leaks(artifacts: dict[str, bytes], tokens: Iterable[str]) -> list[str]:
    """Rotated OAuth tokens found in any artifact (as is, URL-encoded or JSON-escaped)."""
    found = []
    for token in tokens:
        forms = written_forms(token)
        for form in ("plain", "url-encoded", "json-escaped"):
            found += [
                f"{where}: {token} ({form})"
                for where, data in artifacts.items()
                if forms[form].encode() in data
            ]
    return found


def state_files(state_dir: Path) -> dict[str, bytes]:
    """Every byte of the state database: the file, its -wal and -shm (and the lock file)."""
    out = {}
    for path in sorted(state_dir.iterdir()):
        if path.name.startswith("state.sqlite3"):
            out[f"state file {path.name}"] = path.read_bytes()
    assert "state file state.sqlite3" in out, sorted(state_dir.iterdir())
    return out


def rows_outside_tokens(database: Path) -> str:
    """Every row of every table but `tokens`, as SQL text."""
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return "\n".join(line for line in db.iterdump() if '"tokens"' not in line)
    finally:
        db.close()


def saved_tokens(database: Path) -> dict[str, Any]:
    """The OAuth token set the state keeps, as stored."""
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        [(value,)] = db.execute("SELECT value FROM tokens").fetchall()
    finally:
        db.close()
    result: dict[str, Any] = json.loads(value)
    return result


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def modes_in(state_dir: Path) -> dict[str, int]:
    """The permission bits of the state directory and of everything in it."""
    return {path.name: mode_of(path) for path in [state_dir, *state_dir.iterdir()]}


PRIVATE_STATE = {
    "state": 0o700,
    "state.sqlite3": 0o600,
    "state.sqlite3-wal": 0o600,
    "state.sqlite3-shm": 0o600,
    "state.sqlite3.lock": 0o600,
    "state.sqlite3.claim": 0o600,  # the daemon's hold on the state (one daemon per state)
}


class NotifySocket:
    """Stands in for systemd's notify socket: keeps the datagrams the daemon sends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(str(path))
        self.socket.setblocking(False)

    def drain(self) -> bytes:
        """Every message received so far, one per line, and close."""
        messages = []
        with contextlib.suppress(BlockingIOError):
            while True:
                messages.append(self.socket.recv(4096))
        self.socket.close()
        return b"\n".join(messages)


# --- the sandbox, with canary credentials and a gate in front --------------------------------


@dataclass
class Rule:
    """Answer the next `count` calls matching method and path (a glob) this way instead."""

    kind: str  # "unauthorized", "forbidden", "echo" (JSON error body) or "echo_text"
    method: str
    path: str
    count: int = 1


@dataclass
class Gate:
    """Sits between a sandbox helpdesk's routing and its handlers.

    Answers chosen calls with a 401, a 403, or an error whose body reflects the request (its
    Authorization header, decoded, and its body), and records the OAuth tokens the sandbox
    issues so that the test knows every rotated token to look for.
    """

    desk: Any
    rules: list[Rule] = field(default_factory=list)
    reflected: list[str] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> Gate:
        route = self.desk.match

        def match(method: str, path: str) -> Match | None:
            found = route(method, path)
            if found is None:
                return None
            gated = dataclasses.replace(found.route, handler=self._gated(found.route))
            return Match(gated, found.params)

        monkeypatch.setattr(self.desk, "match", match)
        return self

    def add(self, kind: str, method: str, path: str, count: int = 1) -> None:
        with self.lock:
            self.rules.append(Rule(kind, method, path, count))

    def armed(self) -> list[Rule]:
        with self.lock:
            return [rule for rule in self.rules if rule.count > 0]

    def _take(self, request: ApiRequest) -> Rule | None:
        with self.lock:
            for rule in self.rules:
                if (
                    rule.count > 0
                    and rule.method == request.method
                    and fnmatchcase(request.path, rule.path)
                ):
                    rule.count -= 1
                    return rule
        return None

    def _gated(self, route: Any) -> Callable[[ApiRequest, dict[str, str]], ApiResponse]:
        def handler(request: ApiRequest, params: dict[str, str]) -> ApiResponse:
            rule = self._take(request)
            if rule is not None:
                return self._answer(rule, request)
            response: ApiResponse = route.handler(request, params)
            if route.name == "/oauth/tokens" and response.status == 200:
                answer = json.loads(response.body)
                with self.lock:
                    self.issued += [answer["access_token"], answer["refresh_token"]]
            return response

        return handler

    def _answer(self, rule: Rule, request: ApiRequest) -> ApiResponse:
        zendesk = self.desk.name == "zendesk"
        if rule.kind == "unauthorized":
            if zendesk:
                return json_response(401, {"error": "Couldn't authenticate you"})
            return json_response(
                401,
                {
                    "code": "invalid_credentials",
                    "message": "You have to be logged in to perform this action.",
                },
            )
        if rule.kind == "forbidden":
            if zendesk:
                return json_response(
                    403,
                    {
                        "error": "Forbidden",
                        "description": "You do not have access to this page. Please contact "
                        "the account owner of this help desk for further help.",
                    },
                )
            return json_response(
                403,
                {
                    "code": "access_denied",
                    "message": "You are not authorized to perform this action.",
                },
            )
        authorization = request.headers.get("authorization", "")
        scheme, _, value = authorization.partition(" ")
        decoded = value
        if scheme.lower() == "basic":
            decoded = base64.b64decode(value).decode("utf-8", "replace")
        body = request.body.decode("utf-8", "replace")
        text = f"refused, you sent Authorization: {authorization} ({decoded}) and {body[:200]}"
        with self.lock:
            self.reflected.append(text)
        if rule.kind == "echo_text":
            return ApiResponse(400, text.encode(), content_type="text/plain; charset=utf-8")
        if request.path == "/oauth/tokens":
            return json_response(400, {"error": "invalid_grant", "error_description": text})
        if zendesk:
            return json_response(403, {"error": "Forbidden", "description": text})
        return json_response(403, {"code": "access_denied", "message": text})


def canary_sandbox(secrets: dict[str, str]) -> Sandbox:
    """The bundled tickets, behind credentials that are the canaries."""
    credentials = SandboxCredentials(
        zendesk_api_token=secrets["zendesk_api_token"],
        oauth_client_secret=secrets["zendesk_oauth_client_secret"],
        freshdesk_api_key=secrets["freshdesk_api_key"],
    )
    sandbox = Sandbox.seeded(credentials=credentials, incremental_export_limit=None)
    # The sandbox names the refresh tokens it issues itself; let the canary in as the one an
    # authorization code grant would have given the administrator.
    refresh = secrets["zendesk_oauth_refresh_token"]
    sandbox.zendesk._tokens.refresh[refresh] = sandbox.now() + timedelta(days=30)
    return sandbox


@dataclass(frozen=True)
class Mode:
    """How the connector signs in: which helpdesk, which Zendesk auth."""

    helpdesk: str
    auth: str = "api_token"

    @property
    def oauth(self) -> bool:
        return self.auth == "oauth"


MODES = {
    "zendesk-api-token": Mode("zendesk"),
    "zendesk-oauth": Mode("zendesk", "oauth"),
    "freshdesk": Mode("freshdesk"),
}
# Where each helpdesk's calls go, as globs over the path the sandbox sees.
PATHS = {
    "zendesk": {
        "list": "/api/v2/incremental/tickets/cursor.json",
        "ticket fields": "/api/v2/ticket_fields.json",
        "customer fields": "/api/v2/organization_fields.json",
        "fetch": "/api/v2/tickets/show_many.json",
        "write": "/api/v2/tickets/*",
    },
    "freshdesk": {
        "list": "/api/v2/tickets",
        "ticket fields": "/api/v2/ticket_fields",
        "customer fields": "/api/v2/company_fields",
        "fetch": "/api/v2/tickets/*",
        "write": "/api/v2/tickets/*",
    },
}


def config_text(
    mode: Mode, url: str, state_dir: Path, *, metrics: str | None = None, poll: int = 60
) -> str:
    """A configuration file an administrator would write (no secret in it)."""
    helpdesk = mode.helpdesk
    mapping = MAPPINGS / "helpdesks" / f"{helpdesk}.example.yaml"
    lines = [
        f'helpdesk = "{helpdesk}"',
        f"mappings = {json.dumps(str(MAPPINGS))}",
        f"helpdesk_mapping = {json.dumps(str(mapping))}",
        f"state_dir = {json.dumps(str(state_dir))}",
        'start = "2020-01-01T00:00:00Z"',
        f"poll_interval = {poll}",
        "[log]",
        'format = "json"',
        'level = "debug"',
    ]
    if metrics is not None:
        lines += ["[metrics]", f"listen = {json.dumps(metrics)}"]
    lines += [f"[{helpdesk}]", f"url = {json.dumps(url)}"]
    if helpdesk == "zendesk":
        lines += [f"email = {json.dumps(EMAIL)}", f'auth = "{mode.auth}"']
        if mode.oauth:
            lines.append(f"client_id = {json.dumps(CLIENT_ID)}")
    return "\n".join(lines) + "\n"


def provide_secrets(secrets: dict[str, str], source: str, folder: Path) -> dict[str, str]:
    """The environment that hands the secrets over: variables, or systemd credential files."""
    if source == "environment":
        return {f"SLA_CONNECTOR_{name.upper()}": value for name, value in secrets.items()}
    folder.mkdir(mode=0o700)
    for name, value in secrets.items():
        path = folder / name
        path.write_text(value + "\n", encoding="utf-8")  # as an administrator's editor leaves it
        path.chmod(0o400)
    return {"CREDENTIALS_DIRECTORY": str(folder)}


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No secret or setting of the machine; a redaction registry of this test's own."""
    forget_admin_settings(monkeypatch, "NOTIFY_SOCKET")
    monkeypatch.setattr(logs, "_secrets", set())
    monkeypatch.setattr(logs, "_plain_pattern", None)
    monkeypatch.setattr(logs, "_base64_pattern", None)
    with logging_restored():
        yield


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process commands back off for milliseconds: the faults are under test, not the waits."""
    policy = connector.http.RetryPolicy
    monkeypatch.setattr(
        connector.http,
        "RetryPolicy",
        lambda: policy(backoff_initial=0.001, backoff_max=0.01, retry_after_cap=0.1),
    )


@contextlib.contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


@dataclass
class Lab:
    """A served canary sandbox, gates on both helpdesks, and what the commands printed."""

    mode: Mode
    secrets: dict[str, str]
    sandbox: Sandbox
    server: SandboxServer
    gates: dict[str, Gate]
    folder: Path
    capsys: pytest.CaptureFixture[str]
    seen: dict[str, bytes] = field(default_factory=dict)

    @property
    def gate(self) -> Gate:
        return self.gates[self.mode.helpdesk]

    @property
    def url(self) -> str:
        return (
            self.server.zendesk_url
            if self.mode.helpdesk == "zendesk"
            else self.server.freshdesk_url
        )

    @property
    def state_dir(self) -> Path:
        return self.folder / "state"

    @property
    def config(self) -> Path:
        return self.folder / "config.toml"

    def path(self, what: str) -> str:
        return PATHS[self.mode.helpdesk][what]

    def fault(self, kind: str, path: str = "*", method: str | None = None, **extra: Any) -> None:
        self.sandbox.faults.add(
            kind, helpdesk=self.mode.helpdesk, method=method, path=path, **extra
        )

    def run(self, *argv: str) -> tuple[int, str, str]:
        """`sla-connector ARGV --config FILE`; keeps what it printed."""
        status = main([*argv, "--config", str(self.config)])
        out, err = self.capsys.readouterr()
        step = f"#{len(self.seen) // 2 + 1} {' '.join(argv)}"
        self.seen[f"{step} stdout"] = out.encode()
        self.seen[f"{step} stderr"] = err.encode()
        return status, out, err

    def faults_left(self) -> list[str]:
        active = [f"sandbox {f.kind} on {f.path}" for f in self.sandbox.faults.active()]
        return active + [f"gate {r.kind} on {r.method} {r.path}" for r in self.gate.armed()]


@pytest.fixture
def lab(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Lab]:
    mode = MODES[request.param]
    secrets = canaries(request.node.nodeid)
    sandbox = canary_sandbox(secrets)
    gates = {
        "zendesk": Gate(sandbox.zendesk).install(monkeypatch),
        "freshdesk": Gate(sandbox.freshdesk).install(monkeypatch),
    }
    server = sandbox.serve("127.0.0.1", 0).start()
    try:
        lab = Lab(mode, secrets, sandbox, server, gates, tmp_path, capsys)
        lab.config.write_text(config_text(mode, lab.url, lab.state_dir), encoding="utf-8")
        yield lab
    finally:
        server.close()


def test_every_secret_has_a_canary() -> None:
    assert set(CANARY) == set(SECRET_NAMES)


# --- 1. the commands -------------------------------------------------------------------------


def check_steps(lab: Lab) -> None:
    """`check`: its first call reflected back (for OAuth, the refresh that sends both secrets),
    then through 429s (Retry-After as a date, a 503 with Retry-After) and a dropped connection.
    """
    mode, gate = lab.mode, lab.gate
    if mode.oauth:
        gate.add("echo", "POST", "/oauth/tokens")
    else:
        gate.add("echo", "GET", lab.path("ticket fields"))
    status, out, _ = lab.run("check")
    assert status == 1
    [refused] = [line for line in out.splitlines() if line.startswith("FAIL  credentials refused")]
    assert MASK in refused
    [reflected] = gate.reflected  # and what came back held the configured secrets
    if mode.oauth:
        assert lab.secrets["zendesk_oauth_refresh_token"] in reflected
        assert lab.secrets["zendesk_oauth_client_secret"] in reflected
    else:
        key = "zendesk_api_token" if mode.helpdesk == "zendesk" else "freshdesk_api_key"
        assert lab.secrets[key] in reflected

    lab.fault("rate_limited_http_date", lab.path("ticket fields"), retry_after=0)
    lab.fault("cut_before", lab.path("ticket fields"))
    lab.fault("unavailable_retry_after", lab.path("customer fields"), retry_after=0)
    status, out, _ = lab.run("check")
    assert status == 0, out
    assert lab.faults_left() == []


def sync_steps(lab: Lab) -> None:
    """`sync --once` through transient faults on reads and writes, a refused write and a
    reflected one; then a 401: OAuth refreshes and carries on, a token or key is refused."""
    mode, gate = lab.mode, lab.gate
    lab.fault("rate_limited", lab.path("list"), retry_after=0)
    lab.fault("server_error", lab.path("list"))
    lab.fault("rate_limited_no_retry_after", lab.path("list"))
    lab.fault("cut_after", lab.path("list"))
    lab.fault("bad_gateway", lab.path("write"), method="PUT")
    lab.fault("unavailable", lab.path("write"), method="PUT")
    lab.fault("agent_edit", lab.path("write"), method="PUT")
    lab.fault("slow", lab.path("write"), method="PUT", delay=0.01)
    # Twice: on Zendesk the first is the batch job (its tickets then go alone), so a ticket
    # of those the agent_edit fault leaves alone is refused too, for the backfill below.
    gate.add("forbidden", "PUT", lab.path("write"), count=2)
    gate.add("echo", "PUT", lab.path("write"))
    status, out, err = lab.run("sync", "--once")
    assert status == 1, err
    assert out.endswith(" failed\n")
    # The refused write is a batch job where the helpdesk has them (its tickets are then
    # written alone), a ticket's write elsewhere; the reflected one is a ticket's.
    assert int(out.split(" unmapped, ")[1].split()[0]) >= (1 if mode.helpdesk == "zendesk" else 2)
    refused = ("ticket_write_failed", "job_refused")
    failures = [json.loads(line) for line in err.splitlines() if any(r in line for r in refused)]
    assert len(failures) >= 2
    assert any(MASK in failure["error"] for failure in failures)
    assert lab.faults_left() == []

    refreshes = lab.sandbox.counters.total(route="/oauth/tokens", status=200)
    gate.add("unauthorized", "GET", lab.path("list"))
    status, _, err = lab.run("sync", "--once")
    if mode.oauth:
        assert status == 0, err
        assert lab.sandbox.counters.total(route="/oauth/tokens", status=200) == refreshes + 1
    else:
        assert status == 1
        assert "-> 401: " in err
    assert lab.faults_left() == []


def explain_and_backfill_steps(lab: Lab) -> None:
    """`explain` (its text, then a read refused with the request reflected), `backfill
    --dry-run` (stopped by a malformed page, then complete), and a `backfill` that prints the
    refusal of a write, quoted from a plain-text body, for its ticket."""
    status, out, _ = lab.run("explain", "1001")
    assert status == 0
    assert out.startswith(f"Ticket 1001 in {lab.mode.helpdesk}")
    lab.gate.add("echo", "GET", lab.path("fetch"))
    status, out, err = lab.run("explain", "1001")
    assert (status, out) == (1, "")
    assert err.startswith("sla-connector: error: GET ")
    assert MASK in err

    lab.fault("malformed", lab.path("list"))
    status, _, err = lab.run("backfill", "--since", "2020-01-01", "--dry-run")
    assert status == 1
    assert "sla-connector: error: GET " in err
    status, out, _ = lab.run("backfill", "--since", "2020-01-01", "--dry-run")
    assert status == 0
    assert "would be written" in out

    lab.gate.add("echo_text", "PUT", lab.path("write"))
    status, out, _ = lab.run("backfill", "--since", "2020-01-01")
    assert status == 1
    [quoted] = [line for line in out.splitlines() if "refused, you sent" in line]
    assert quoted.startswith("ticket ")
    assert "-> 400: refused, you sent Authorization: " in quoted
    assert MASK in quoted
    assert lab.faults_left() == []


@pytest.mark.usefixtures("quick_retries")
@pytest.mark.parametrize("source", ["environment", "credentials directory"])
@pytest.mark.parametrize("lab", list(MODES), indirect=True)
def test_no_command_shows_a_canary_whatever_goes_wrong(
    lab: Lab, source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in provide_secrets(lab.secrets, source, lab.folder / "credentials").items():
        monkeypatch.setenv(name, value)

    check_steps(lab)
    sync_steps(lab)
    explain_and_backfill_steps(lab)

    assert len(lab.gate.reflected) == 4
    database = lab.state_dir / "state.sqlite3"
    assert leaks({**lab.seen, **state_files(lab.state_dir)}, lab.secrets) == []
    if lab.mode.oauth:
        issued = lab.gate.issued
        assert len(issued) >= 4  # the first refresh and the one after the 401
        assert token_leaks(lab.seen, issued) == []
        assert token_leaks({"rows": rows_outside_tokens(database).encode()}, issued) == []
        saved = saved_tokens(database)  # in clear: the next run signs in with them
        assert [saved["access_token"], saved["refresh_token"]] == issued[-2:]


def test_the_demo_never_picks_up_the_configured_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = canaries("demo")
    given = provide_secrets(secrets, "environment", tmp_path)
    given |= provide_secrets(secrets, "credentials directory", tmp_path / "credentials")
    for name, value in given.items():
        monkeypatch.setenv(name, value)
    status = main(["demo"])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert "second pass: " in out
    assert leaks({"stdout": out.encode(), "stderr": err.encode()}, secrets) == []


# --- the daemon, in process: metrics, systemd status -----------------------------------------


@pytest.mark.usefixtures("quick_retries")
@pytest.mark.parametrize("lab", list(MODES), indirect=True)
def test_the_daemon_s_metrics_and_status_never_show_a_canary(
    lab: Lab, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in provide_secrets(lab.secrets, "environment", tmp_path / "unused").items():
        monkeypatch.setenv(name, value)
    notify = NotifySocket(tmp_path / "notify.sock")
    log = io.StringIO()
    settings = load_settings(lab.config)
    logs.configure(format="json", level="debug", stream=log)
    metrics = Metrics(lab.mode.helpdesk)
    state = State(settings.state_file)
    helpdesk = open_helpdesk(settings, state, observers=[metrics.http_observer])
    try:
        daemon = Daemon(
            settings,
            state,
            helpdesk,
            log=logs.get_logger("sla-connector"),
            metrics=metrics,
            notifier=Notifier(str(notify.path)),
        )
        lab.gate.add("echo", "GET", lab.path("list"))  # the cycle fails, and says why
        daemon.cycle()
        lab.gate.add("unauthorized", "GET", lab.path("list"))
        lab.fault("server_error", lab.path("list"))
        lab.fault("cut_after", lab.path("write"), method="PUT")
        lab.gate.add("echo", "PUT", lab.path("write"))
        for _ in range(4):
            daemon.cycle()
            if not lab.faults_left():
                break
        daemon.cycle()
        textfile = tmp_path / "metrics" / "sla.prom"
        textfile.parent.mkdir()
        with umask(0):
            metrics.write_textfile(textfile)
        host, port = metrics.serve("127.0.0.1", 0)
        scraped = httpx.get(f"http://{host}:{port}/metrics").content
    finally:
        metrics.close()
        helpdesk.close()
        state.close()
    messages = notify.drain()

    events = [json.loads(line) for line in log.getvalue().splitlines()]
    failed = [e for e in events if e["event"] == "sync_failed"]
    assert failed
    assert MASK in failed[0]["error"]
    failing = [m for m in messages.splitlines() if m.startswith(b"STATUS=last sync failed: ")]
    assert failing
    assert MASK.encode() in failing[0]
    assert any(e["event"] == "synced" for e in events)
    assert b'kind="AuthError"' in scraped
    assert lab.faults_left() == []
    # node_exporter reads the textfile as another user: 0644, never group- or world-writable.
    assert mode_of(textfile) == 0o644
    artifacts = {
        "log": log.getvalue().encode(),
        "sd_notify": messages,
        "metrics endpoint": scraped,
        "metrics textfile": textfile.read_bytes(),
        **state_files(lab.state_dir),
    }
    assert leaks(artifacts, lab.secrets) == []
    assert (
        token_leaks({k: v for k, v in artifacts.items() if "state" not in k}, lab.gate.issued) == []
    )


# --- the daemon, as systemd runs it ----------------------------------------------------------


@dataclass
class DaemonProcess:
    process: subprocess.Popen[bytes]
    log: Path

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        found = []
        for line in self.log.read_text(encoding="utf-8", errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if name is None or entry.get("event") == name:
                    found.append(entry)
        return found


def wait_for(what: str, check: Callable[[], bool], process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        if process.poll() is not None:
            raise AssertionError(f"the daemon exited ({process.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def arm_for_the_daemon(lab: Lab) -> None:
    """Faults whose retries wait little in real time (Retry-After 0), and the gate's."""
    lab.fault("rate_limited", lab.path("list"), retry_after=0)
    lab.fault("unavailable_retry_after", lab.path("list"), retry_after=0)
    lab.fault("malformed", lab.path("list"))
    lab.fault("server_error", lab.path("write"), method="PUT")
    # The write goes through, then the connection drops: the gate's next answer is lost with
    # it (that PUT is sent again), hence a 403 that nobody sees before the two that surface.
    lab.fault("cut_after", lab.path("write"), method="PUT")
    lab.gate.add("unauthorized", "GET", lab.path("list"))
    lab.gate.add("forbidden", "PUT", lab.path("write"))
    lab.gate.add("echo", "PUT", lab.path("write"))
    lab.gate.add("echo_text", "PUT", lab.path("write"))


@pytest.mark.skipif(sys.platform != "linux", reason="signals and AF_UNIX datagrams")
@pytest.mark.parametrize(
    ("lab", "source"),
    [
        ("zendesk-api-token", "environment"),
        ("zendesk-oauth", "credentials directory"),
        ("freshdesk", "credentials directory"),
    ],
    indirect=["lab"],
)
def test_the_daemon_process_never_shows_a_canary_and_keeps_its_state_private(
    lab: Lab, source: str, tmp_path: Path
) -> None:
    lab.config.write_text(
        config_text(lab.mode, lab.url, lab.state_dir, metrics="127.0.0.1:0", poll=1),
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLA_CONNECTOR_")}
    env.update(provide_secrets(lab.secrets, source, tmp_path / "credentials"))
    notify = NotifySocket(tmp_path / "notify.sock")
    env["NOTIFY_SOCKET"] = str(notify.path)
    arm_for_the_daemon(lab)
    log = tmp_path / "daemon.log"
    with log.open("wb") as sink, umask(0):
        process = subprocess.Popen(
            [sys.executable, "-m", "connector", "run", "--config", str(lab.config)],
            env=env,
            stdout=sink,
            stderr=sink,
        )
    daemon = DaemonProcess(process, log)
    try:
        wait_for("the faults", lambda: lab.faults_left() == [], process)
        after = len(daemon.events("synced"))
        wait_for("a sync after them", lambda: len(daemon.events("synced")) > after, process)
        [listening] = daemon.events("metrics_listening")
        scraped = httpx.get(f"http://{listening['address']}/metrics").content
        running = state_files(lab.state_dir)  # the -wal and -shm exist while it runs
        modes = modes_in(lab.state_dir)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=DEADLINE) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert modes == PRIVATE_STATE
    events = daemon.events()
    assert {e["level"] for e in events} >= {"info", "error"}
    failures = [e for e in events if e["event"] in ("ticket_write_failed", "job_refused")]
    assert len(failures) >= 2
    assert any(MASK in e["error"] for e in failures)
    assert b"sla_connector_api_requests" in scraped
    artifacts = {
        "daemon output": log.read_bytes(),
        "sd_notify": notify.drain(),
        "metrics endpoint": scraped,
        **{f"{k} (running)": v for k, v in running.items()},
        **state_files(lab.state_dir),
    }
    assert leaks(artifacts, lab.secrets) == []
    if lab.mode.oauth:
        assert len(lab.gate.issued) >= 4
        outside = {k: v for k, v in artifacts.items() if not k.startswith("state file")}
        assert token_leaks(outside, lab.gate.issued) == []
        rows = rows_outside_tokens(lab.state_dir / "state.sqlite3").encode()
        assert token_leaks({"rows": rows}, lab.gate.issued) == []


# --- the log pipeline, on exceptions that carry requests -------------------------------------

TOKEN_ALPHABET = st.sampled_from(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/="
)


def _carriers(secret: str) -> dict[str, Any]:
    """Everything that may carry a secret into a log line, as the connector's libraries make it."""
    basic = "Basic " + _b64(f"{EMAIL}/token:{secret}")
    request = httpx.Request(
        "POST",
        f"https://agent:{quote(secret, safe='')}@acme.zendesk.com/oauth/tokens?token={secret}",
        headers={"Authorization": basic, "X-Api-Key": secret},
        json={"refresh_token": secret},
    )
    response = httpx.Response(401, request=request, json={"echo": f"Bearer {secret}"})
    return {
        "request": request,
        "response": response,
        "headers": request.headers,
        "url": request.url,
        "body": request.content,
        "nested": {"calls": [{"auth": basic, "note": f"used {secret}"}]},
        "text": f"refused {basic} for {secret}",
    }


def render(secret: str, format: str) -> str:
    """Log the carriers and two exceptions that hold the request, as both loggers do."""
    stream = io.StringIO()
    logs.configure(format=format, level="debug", stream=stream)  # type: ignore[arg-type]
    logs.register_secret(secret)
    carriers = _carriers(secret)
    log = logs.get_logger("sla-connector")
    log.debug("request_sent", **carriers)
    try:
        try:
            raise ValueError(f"the token {secret} was refused")
        except ValueError as inner:
            raise httpx.HTTPStatusError(
                f"401 for {carriers['request'].url} with {carriers['headers']}",
                request=carriers["request"],
                response=carriers["response"],
            ) from inner
    except httpx.HTTPStatusError:
        log.exception("call_failed", request=carriers["request"])
        logging.getLogger("httpx").warning(
            "HTTP Request: %s %r", carriers["url"], carriers["request"], exc_info=True
        )
    return stream.getvalue()


# The fixtures only clear the environment and the registry: examples may share them.
@hypothesis_settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(tail=st.text(TOKEN_ALPHABET, min_size=6, max_size=42))
def test_the_log_pipeline_masks_a_registered_secret_in_whatever_carries_it(tail: str) -> None:
    secret = "CANARY" + tail  # distinctive: found only where it leaked
    for format in ("json", "console"):
        rendered = render(secret, format)
        assert "call_failed" in rendered
        assert "Traceback" in rendered
        found = [form for form, text in written_forms(secret).items() if text in rendered]
        assert found == [], rendered


def test_credentials_in_a_url_are_masked_even_when_nobody_registered_them() -> None:
    stream = io.StringIO()
    logs.configure(format="json", level="debug", stream=stream)
    url = "https://agent:hunter2-not-registered@proxy.example:3128/"
    logs.get_logger().warning("proxy_refused", proxy=url, detail=f"via {url} at {url}")
    assert "hunter2" not in stream.getvalue()
    assert "agent:" + MASK + "@proxy.example" in stream.getvalue()


# --- 2. plain http:// on loopback only -------------------------------------------------------

REFUSED_URLS = [
    "http://acme.zendesk.com",
    "http://192.0.2.10:8765/zendesk",
    "http://localhost.invalid/zendesk",
    "http://127.0.0.1.invalid/zendesk",
    "http://0.0.0.0:8765/zendesk",
    "ftp://127.0.0.1/zendesk",
    "127.0.0.1:8765/zendesk",
]


@pytest.mark.parametrize("helpdesk", ["zendesk", "freshdesk"])
@pytest.mark.parametrize("url", REFUSED_URLS)
def test_plain_http_off_loopback_is_refused_naming_the_key(
    helpdesk: str, url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(config_text(Mode(helpdesk), url, tmp_path / "state"), encoding="utf-8")
    for command in (["check"], ["sync", "--once"]):
        status = main([*command, "--config", str(config)])
        out, err = capsys.readouterr()
        assert (status, out) == (2, ""), command
        assert err == (
            f"sla-connector: error: {config}: {helpdesk}.url: expected an https:// URL "
            f"(http:// only on loopback: localhost, 127.0.0.1, [::1]), got {url!r}\n"
        )
    assert not (tmp_path / "state").exists()  # refused before anything was opened


def test_a_url_from_the_environment_is_refused_naming_the_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(config_text(Mode("freshdesk"), "https://acme.freshdesk.com", tmp_path))
    monkeypatch.setenv("SLA_CONNECTOR_FRESHDESK__URL", "http://acme.freshdesk.com")
    assert main(["check", "--config", str(config)]) == 2
    _, err = capsys.readouterr()
    [line] = err.splitlines()
    assert line.startswith(
        "sla-connector: error: environment SLA_CONNECTOR_FRESHDESK__URL: freshdesk.url: "
        "expected an https:// URL"
    )


def test_credentials_in_the_url_are_refused_without_repeating_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = canaries("url")["zendesk_api_token"]
    config = tmp_path / "config.toml"
    url = f"https://agent:{quote(secret, safe='')}@acme.zendesk.com"
    config.write_text(config_text(Mode("zendesk"), url, tmp_path / "state"), encoding="utf-8")
    assert main(["check", "--config", str(config)]) == 2
    out, err = capsys.readouterr()
    assert err == (
        f"sla-connector: error: {config}: zendesk.url: credentials do not belong in the URL: "
        "set the secrets in the environment or as systemd credentials\n"
    )
    assert (
        leaks({"stdout": out.encode(), "stderr": err.encode()}, {"zendesk_api_token": secret}) == []
    )


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
@pytest.mark.parametrize("helpdesk", ["zendesk", "freshdesk"])
def test_plain_http_on_loopback_is_accepted(
    host: str,
    helpdesk: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secrets = canaries("loopback")
    sandbox = canary_sandbox(secrets)
    server = sandbox.serve("::1" if host == "[::1]" else "127.0.0.1", 0).start()
    try:
        url = f"http://{host}:{server.port}/{helpdesk}"
        for name, value in provide_secrets(secrets, "environment", tmp_path).items():
            monkeypatch.setenv(name, value)
        config = tmp_path / "config.toml"
        config.write_text(config_text(Mode(helpdesk), url, tmp_path / "state"), encoding="utf-8")
        status = main(["check", "--config", str(config)])
        out, err = capsys.readouterr()
    finally:
        server.close()
    assert (status, err) == (0, "")
    assert f"ok    signed in to {url}\n" in out


# --- 3. private state files ------------------------------------------------------------------


@pytest.mark.usefixtures("quick_retries")
@pytest.mark.parametrize("lab", ["freshdesk"], indirect=True)
def test_state_files_are_private_under_a_permissive_umask(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in provide_secrets(lab.secrets, "environment", lab.folder).items():
        monkeypatch.setenv(name, value)
    with umask(0):
        status, _, err = lab.run("sync", "--once")
        # Open again (as the daemon keeps it): its -wal and -shm exist while it is open.
        state = State(lab.state_dir / "state.sqlite3")
        try:
            state.set_cursor("probe", "1", datetime.now(UTC))
            modes = modes_in(lab.state_dir)
        finally:
            state.close()
    assert status == 0, err
    assert modes == PRIVATE_STATE


def test_missing_parents_of_the_state_directory_are_not_left_writable(tmp_path: Path) -> None:
    with umask(0):
        State(tmp_path / "var" / "lib" / "state" / "state.sqlite3").close()
    assert mode_of(tmp_path / "var" / "lib" / "state") == 0o700
    for folder in (tmp_path / "var", tmp_path / "var" / "lib"):
        assert mode_of(folder) & 0o022 == 0, f"{folder} is {oct(mode_of(folder))}"
