"""The agents' apps (apps/zendesk, apps/freshdesk) in a real browser: headless Chromium driven
by ChromeDriver, each app served from its own folder on loopback with a test double of its
helpdesk's client (tests/apps/) in place of the vendor's, answering with tickets the real
daemon wrote in the sandbox.

Each state a target can be in, countdowns in two time zones and two languages, a paused
target, an unmapped ticket, a ticket with no summary yet, a summary that changes while the
app is open; a screenshot of each state is saved (`SLA_CONNECTOR_SCREENSHOTS=DIR` keeps them,
e.g. for the README's pictures) and checked to be a picture of the panel. A test fails when the
app throws or logs an error.

Skipped, with one line saying so, where Chromium and ChromeDriver are not installed (Debian:
`apt-get install chromium chromium-driver`; `.ci/run` installs them).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from connector.app import load_rules
from connector.cli.demo import demo_settings
from connector.sandbox import ManualClock, Sandbox
from tests.test_sync_e2e import START, open_desk

ROOT = Path(__file__).resolve().parent.parent
APPS = ROOT / "apps"
DOUBLES = Path(__file__).resolve().parent / "apps"
CHROMIUM = os.environ.get("SLA_CONNECTOR_CHROMIUM") or shutil.which("chromium")
CHROMEDRIVER = os.environ.get("SLA_CONNECTOR_CHROMEDRIVER") or shutil.which("chromedriver")

MISSING = (
    "no chromium and chromedriver on PATH: the apps' browser tests need them "
    "(apt-get install chromium chromium-driver)"
)
# CI sets SLA_CONNECTOR_REQUIRE_BROWSER: there, a missing browser fails the tests instead.
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER) and not os.environ.get("SLA_CONNECTOR_REQUIRE_BROWSER"),
    reason=MISSING,
)

STATES = ("running", "at_risk", "breached", "paused", "achieved", "best_effort")


# --- the tickets: what the real daemon wrote in the sandbox -------------------------------------


@dataclass
class World:
    """Both sandbox helpdesks after the daemon's passes: each ticket's summary and tags."""

    now: datetime
    tickets: dict[str, dict[int, tuple[str | None, list[str]]]]  # helpdesk -> id -> (text, tags)
    paused: int  # a ticket an agent set to pending while a target was running

    def summary(self, helpdesk: str, ticket: int) -> dict[str, Any]:
        text = self.tickets[helpdesk][ticket][0]
        assert text, f"{helpdesk} ticket {ticket} has no summary"
        return dict(json.loads(text))

    def with_target(self, helpdesk: str, state: str, *, needs: str | None = None) -> int:
        """The first ticket with a target in `state` (and, if given, with the key `needs`)."""
        for ticket, (text, _) in sorted(self.tickets[helpdesk].items()):
            if text and any(
                t["state"] == state and (needs is None or needs in t)
                for t in json.loads(text)["targets"]
            ):
                return ticket
        raise AssertionError(f"no {helpdesk} ticket has a {state} target")


def _summary_keys() -> dict[str, str]:
    keys = {}
    for name in ("zendesk", "freshdesk"):
        mapping = yaml.safe_load(
            (ROOT / "mappings" / "helpdesks" / f"{name}.example.yaml").read_text()
        )
        keys[name] = str(mapping["results"]["summary"]["ticket_field"])
    return keys


SUMMARY_FIELD = _summary_keys()


def _snapshot(sandbox: Sandbox) -> dict[str, dict[int, tuple[str | None, list[str]]]]:
    zendesk_field = int(SUMMARY_FIELD["zendesk"])
    return {
        "zendesk": {
            i: (t.fields.get(zendesk_field), list(t.tags))
            for i, t in sandbox.zendesk.tickets.items()
        },
        "freshdesk": {
            i: (t.custom.get(SUMMARY_FIELD["freshdesk"]), list(t.tags))
            for i, t in sandbox.freshdesk.tickets.items()
        },
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """The seeded sandbox synced by the daemon on both helpdesks; then an agent sets a ticket
    whose running target pauses on pending to pending, and the daemon syncs again."""
    folder = tmp_path_factory.mktemp("world")
    clock = ManualClock(START)
    sandbox = Sandbox.seeded(clock=clock, anchor=START, incremental_export_limit=None)
    desks = [open_desk(name, folder, sandbox, clock) for name in ("zendesk", "freshdesk")]
    try:
        for desk in desks:
            desk.run()
        rules = load_rules(demo_settings("zendesk", "https://unused.invalid", folder / "rules"))
        first = _snapshot(sandbox)
        paused = next(
            ticket
            for ticket, (text, _) in sorted(first["zendesk"].items())
            if text
            and (summary := json.loads(text))["targets"]
            and all(t["state"] == "running" for t in summary["targets"])
            and all(
                "pending" in target.paused_by
                for target in rules.contracts[summary["contract"]].spec.targets.values()
            )
        )
        sandbox.set_status(paused, "pending")
        clock.advance(60)
        for desk in desks:
            desk.run()
        return World(clock(), _snapshot(sandbox), paused)
    finally:
        for desk in desks:
            desk.state.close()


# --- serving the apps with the doubles ----------------------------------------------------------


class AppServer:
    """Serves apps/ on loopback. The vendor's client is replaced by its double with the
    current fixture and a fixed clock in front of it, unless `real_sdk` is set."""

    def __init__(self) -> None:
        self.fixture: dict[str, Any] = {}
        self.real_sdk = False
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def double(self, name: str) -> bytes:
        prelude = (
            "window.__errors = [];\n"
            "addEventListener('error', function (e) { __errors.push(String(e.message)); });\n"
            "addEventListener('unhandledrejection', function (e) {"
            " var why = e.reason && e.reason.message || e.reason;"
            " __errors.push('unhandled rejection: ' + String(why)); });\n"
            f"window.__FIXTURE__ = {json.dumps(self.fixture)};\n"
        )
        scripts = [(DOUBLES / "fixed_clock.js").read_text(), (DOUBLES / name).read_text()]
        return (prelude + "\n".join(scripts)).encode()

    def respond(self, path: str) -> tuple[int, str, bytes]:
        path = path.split("?", 1)[0]
        if path == "/zendesk/assets/vendor/zaf_sdk.min.js" and not self.real_sdk:
            return 200, "text/javascript", self.double("fake_zaf.js")
        if path == "/freshdesk/fake/fresh_client.js":
            return 200, "text/javascript", self.double("fake_freshworks.js")
        if path.startswith("/zendesk/"):
            file = APPS / "zendesk" / path.removeprefix("/zendesk/")
        elif path.startswith("/freshdesk/"):
            file = APPS / "freshdesk" / "app" / path.removeprefix("/freshdesk/")
        else:
            return 404, "text/plain", b"not here"
        if not file.resolve().is_relative_to(APPS) or not file.is_file():
            return 404, "text/plain", b"not here"
        body = file.read_bytes()
        if file.name == "index.html" and "freshdesk" in file.parts:
            # What the platform does when it serves the app: its client script goes here.
            body = body.replace(b"{{{appclient}}}", b"fake/fresh_client.js")
        kinds = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
        kinds |= {".svg": "image/svg+xml", ".png": "image/png"}
        return 200, kinds.get(file.suffix, "application/octet-stream"), body

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, kind, body = server.respond(self.path)
                self.send_response(status)
                self.send_header("Content-Type", f"{kind}; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return None  # quiet: pytest shows a failure's own output

        return Handler


@pytest.fixture(scope="module")
def server() -> Iterator[AppServer]:
    server = AppServer()
    yield server
    server.close()


@contextmanager
def chromium(width: int, height: int) -> Iterator[Any]:
    """A headless Debian Chromium driven through its ChromeDriver, its browser log kept; the
    window `width` x `height` CSS pixels. Fails the test where there is none (the module
    skips first, unless CI requires the browser)."""
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.fail(MISSING)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",  # root in a container: Chromium's own sandbox cannot start
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",  # no calls home: the machine may have no network
        "--disable-component-update",
        "--disable-sync",
        f"--window-size={width},{height}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium(360, 1000) as driver:
        yield driver


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    kept = os.environ.get("SLA_CONNECTOR_SCREENSHOTS")
    folder = Path(kept) if kept else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# --- opening an app ---------------------------------------------------------------------------


class Panel:
    """An app open in the browser: its panel's text, states and errors."""

    def __init__(self, driver: Any, shots: Path) -> None:
        self.driver, self.shots = driver, shots

    def js(self, script: str, *args: object) -> Any:
        return self.driver.execute_script(script, *args)

    def wait(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 10
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"waited 10 s for {what}; the panel shows: {self.text!r}")
            time.sleep(0.05)

    @property
    def kind(self) -> str | None:
        return self.js(
            "var r = document.getElementById('sla'); return r && r.getAttribute('data-kind');"
        )

    @property
    def text(self) -> str:
        return str(self.js("return document.getElementById('sla').innerText;"))

    def states(self) -> list[str]:
        return list(
            self.js(
                "return [...document.querySelectorAll('.sla-target')].map(e => e.dataset.state);"
            )
        )

    def target_text(self, state: str) -> str:
        return str(
            self.js(f"return document.querySelector('.sla-target[data-state={state}]').innerText;")
        )

    def errors(self) -> list[str]:
        logged = [
            entry["message"]
            for entry in self.driver.get_log("browser")
            if entry["level"] == "SEVERE" and "favicon.ico" not in entry["message"]
        ]
        caught = self.js("return window.__errors || [];")
        return logged + list(caught)

    def screenshot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        element = self.driver.find_element("id", "sla")
        element.screenshot(str(path))
        _check_png(path, element.size)
        return path


def _check_png(path: Path, size: dict[str, int]) -> None:
    """A PNG picture of the panel: its signature, and a width and height near the panel's."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= size["width"] - 2, (path, width)
    assert height >= size["height"] - 2 > 20, (path, height)
    assert len(data) > 2000, f"{path}: {len(data)} bytes, a blank picture"


@pytest.fixture
def open_app(browser: Any, server: AppServer, shots: Path) -> Iterator[Callable[..., Panel]]:
    panels: list[Panel] = []
    errors: list[str] = []
    browser.get_log("browser")  # what an earlier test's pages logged is not this test's

    def open_(
        helpdesk: str,
        text: str | None,
        tags: list[str],
        now: datetime,
        *,
        locale: str = "en-US",
        zone: Any = "America/Los_Angeles",
        browser_zone: str = "UTC",
        field_key: str | None = None,
        settings_field: str | None = None,
        real_sdk: bool = False,
        expect: str | None = None,
    ) -> Panel:
        browser.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": browser_zone})
        server.real_sdk = real_sdk
        if helpdesk == "zendesk":
            field = SUMMARY_FIELD["zendesk"]
            server.fixture = {
                "now": now.timestamp() * 1000,
                "settings": {
                    "summary_field_id": int(settings_field or field),
                    "unmapped_tag": "sla_unmapped",
                },
                "data": {
                    f"ticket.customField:custom_field_{field}": text,
                    "ticket.tags": tags,
                    "currentUser.locale": locale,
                    "currentUser.timeZone": zone,
                },
            }
            url = f"{server.url}/zendesk/assets/iframe.html"
        else:
            key = field_key or SUMMARY_FIELD["freshdesk"]
            server.fixture = {
                "now": now.timestamp() * 1000,
                "iparams": {
                    "summary_field": SUMMARY_FIELD["freshdesk"],
                    "unmapped_tag": "sla_unmapped",
                },
                "data": {
                    "ticket": {"id": 1, "tags": tags, "custom_fields": {key: text}},
                    "loggedInUser": {"contact": {"language": locale, "time_zone": zone}},
                },
            }
            url = f"{server.url}/freshdesk/index.html"
        if panels:  # the page before this one: what it threw or logged, before it goes
            errors.extend(panels[-1].errors())
        browser.get(url)
        panel = Panel(browser, shots)
        panels.append(panel)
        wanted = expect or ("summary" if text else "none")
        panel.wait(lambda: panel.kind == wanted, f"the panel to show {wanted!r}")
        return panel

    yield open_
    if panels:
        errors.extend(panels[-1].errors())
    assert errors == [], "the app threw or logged an error"


# --- the states ---------------------------------------------------------------------------------


def _text_for(world: World, helpdesk: str, ticket: int) -> tuple[str, list[str]]:
    text, tags = world.tickets[helpdesk][ticket]
    assert text is not None
    return text, tags


@pytest.mark.parametrize("helpdesk", ["zendesk", "freshdesk"])
@pytest.mark.parametrize("state", STATES)
def test_each_state_is_shown_in_its_colour(
    world: World, open_app: Callable[..., Panel], helpdesk: str, state: str
) -> None:
    ticket = world.paused if state == "paused" else world.with_target(helpdesk, state)
    text, tags = _text_for(world, helpdesk, ticket)
    panel = open_app(helpdesk, text, tags, world.now)
    assert state in panel.states()
    colours = panel.js(
        "var box = document.querySelector(`.sla-target[data-state=${arguments[0]}]`);"
        "return [getComputedStyle(box.querySelector('.sla-badge')).backgroundColor,"
        " getComputedStyle(box.querySelector('.sla-when')).color,"
        " getComputedStyle(box).borderLeftColor];",
        state,
    )
    assert colours == [_STATE_COLOURS[state]] * 3, (state, colours)
    badge = {"at_risk": "AT RISK", "best_effort": "BEST EFFORT"}.get(state, state.upper())
    assert badge in panel.target_text(state)
    panel.screenshot(f"{helpdesk}-{state.replace('_', '-')}")


# The colours the README explains (apps/panel/panel.css), as the browser computes them.
_STATE_COLOURS = {
    "running": "rgb(31, 115, 183)",
    "at_risk": "rgb(179, 89, 0)",
    "breached": "rgb(204, 51, 64)",
    "paused": "rgb(104, 115, 125)",
    "achieved": "rgb(3, 129, 83)",
    "best_effort": "rgb(135, 146, 157)",
}


def test_a_paused_target_says_what_is_still_owed(
    world: World, open_app: Callable[..., Panel]
) -> None:
    text, tags = _text_for(world, "zendesk", world.paused)
    owed = next(t for t in json.loads(text)["targets"] if t["state"] == "paused")["owed_seconds"]
    panel = open_app("zendesk", text, tags, world.now)
    shown = panel.target_text("paused")
    assert "still owed when the clock resumes" in shown
    assert "due in" not in shown
    assert "overdue" not in shown
    assert _duration(owed) in shown, (owed, shown)


def _duration(seconds: int) -> str:
    """The panel's span in English as Chromium's Intl.DurationFormat (narrow) writes it: the
    two largest units from the first that is not zero ("3d 17h", "4h", "12m")."""
    units = [("d", 86400), ("h", 3600), ("m", 60)]
    parts: list[str] = []
    for unit, size in units:
        if len(parts) == 2:
            break
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
        elif parts:
            break
    return " ".join(parts) or f"{seconds}s"


@pytest.mark.parametrize(
    ("locale", "zone", "words"),
    [("en-US", "America/Los_Angeles", "due in"), ("de", "Europe/Berlin", "fällig in")],
)
def test_a_countdown_in_the_agents_zone_and_language(
    world: World, open_app: Callable[..., Panel], locale: str, zone: str, words: str
) -> None:
    """The same ticket for an agent in Los Angeles (English) and one in Berlin (German): the
    countdown is the same span, the due time each one's own wall clock and zone name."""
    ticket = world.with_target("zendesk", "running", needs="at_risk_at")
    text, tags = _text_for(world, "zendesk", ticket)
    target = next(
        t for t in json.loads(text)["targets"] if t["state"] == "running" and "at_risk_at" in t
    )
    due = datetime.fromisoformat(target["due"])
    panel = open_app(
        "zendesk", text, tags, world.now, locale=locale, zone={"ianaName": zone, "name": "x"}
    )
    shown = panel.target_text("running")
    left = int((due - world.now).total_seconds())
    local = due.astimezone(ZoneInfo(zone))
    risk = datetime.fromisoformat(target["at_risk_at"]).astimezone(ZoneInfo(zone))
    if locale == "en-US":
        assert f"{words} {_duration(left)}" in shown
        assert f"{local:%a}, {local:%I:%M %p} {local.tzname()}" in shown  # Tue, 02:00 AM PDT
        assert f"at risk from {risk:%a}, {risk:%I:%M %p}" in shown
    else:
        days, hours = left // 86400, left % 86400 // 3600
        assert re.search(rf"{words} {days} T, {hours} ?(h|Std)", shown), shown
        assert f"{local:%H:%M} MEZ" in shown  # Central European Time, in German
        assert "gefährdet ab" in shown
        assert f"{risk:%H:%M} MEZ" in shown
    assert f"Times shown in {zone}" in panel.text or f"Zeiten angezeigt in {zone}" in panel.text
    panel.screenshot(f"zendesk-countdown-{zone.split('/')[1].lower().replace('_', '-')}")


def test_the_clock_moves_a_running_target_to_at_risk_then_breached(
    world: World, open_app: Callable[..., Panel]
) -> None:
    """The summary does not change by itself: the app moves a running target on from its
    at-risk and due instants, as the daemon's next pass would."""
    ticket = world.with_target("zendesk", "running", needs="at_risk_at")
    text, tags = _text_for(world, "zendesk", ticket)
    targets = json.loads(text)["targets"]
    index = next(i for i, t in enumerate(targets) if t["state"] == "running" and "at_risk_at" in t)
    risky = datetime.fromisoformat(targets[index]["at_risk_at"]) + timedelta(minutes=1)
    late = datetime.fromisoformat(targets[index]["due"]) + timedelta(minutes=25)
    assert open_app("zendesk", text, tags, risky).states()[index] == "at_risk"
    panel = open_app("zendesk", text, tags, late)
    assert panel.states()[index] == "breached"
    shown = panel.js(
        "return document.querySelectorAll('.sla-target')[arguments[0]].innerText;", index
    )
    assert "overdue by 25m" in shown


def test_an_unmapped_ticket_says_so(world: World, open_app: Callable[..., Panel]) -> None:
    for helpdesk in ("zendesk", "freshdesk"):
        ticket = next(
            i for i, (_, tags) in world.tickets[helpdesk].items() if "sla_unmapped" in tags
        )
        text, tags = world.tickets[helpdesk][ticket]
        panel = open_app(helpdesk, text, tags, world.now, expect="unmapped")
        assert "No contract applies to this ticket." in panel.text
        assert "sla_unmapped" in panel.text
        panel.screenshot(f"{helpdesk}-unmapped")
    # A ticket no contract applies to any more keeps an older summary: the tag wins.
    text, tags = _text_for(world, "zendesk", world.with_target("zendesk", "running"))
    open_app("zendesk", text, [*tags, "sla_unmapped"], world.now, expect="unmapped")


def test_a_ticket_with_no_summary_yet(world: World, open_app: Callable[..., Panel]) -> None:
    for helpdesk in ("zendesk", "freshdesk"):
        panel = open_app(helpdesk, None, [], world.now)
        assert "No SLA summary yet." in panel.text
        panel.screenshot(f"{helpdesk}-no-summary")


def test_the_panel_follows_the_field_as_it_changes(
    world: World, open_app: Callable[..., Panel]
) -> None:
    """Opened before the daemon's first pass, the panel shows the summary once it is written
    (Zendesk: the field's change event; Freshdesk: the agent's update)."""
    text, tags = _text_for(world, "zendesk", world.with_target("zendesk", "running"))
    panel = open_app("zendesk", None, [], world.now)
    field = SUMMARY_FIELD["zendesk"]
    panel.js(
        "__fake.change(arguments[0], arguments[1], arguments[2]);",
        f"ticket.customField:custom_field_{field}",
        text,
        f"ticket.custom_field_{field}.changed",
    )
    panel.wait(lambda: panel.kind == "summary", "the summary after the field changed")
    sizes = panel.js("return __fake.calls.invoke.map(c => c[0]);")
    assert sizes
    assert set(sizes) == {"resize"}

    text, tags = _text_for(world, "freshdesk", world.with_target("freshdesk", "running"))
    panel = open_app("freshdesk", None, [], world.now)
    panel.js(
        "var fields = {cf_sla_summary: arguments[1]};"
        "__fake.setTicket({id: 1, tags: arguments[0], custom_fields: fields});"
        "__fake.fire('ticket.propertiesUpdated', {});",
        tags,
        text,
    )
    panel.wait(lambda: panel.kind == "summary", "the summary after the agent's update")


def test_quotas_as_bars_and_the_explanation_on_demand(
    world: World, open_app: Callable[..., Panel]
) -> None:
    ticket = next(
        i
        for i, (text, _) in sorted(world.tickets["zendesk"].items())
        if text and any(not q["fits"] for q in json.loads(text)["quotas"])
    )
    text, tags = _text_for(world, "zendesk", ticket)
    summary = json.loads(text)
    panel = open_app("zendesk", text, tags, world.now)
    bars = panel.js(
        "return [...document.querySelectorAll('.sla-quota')].map(q => [q.innerText,"
        " q.classList.contains('sla-over'), q.querySelector('.sla-bar-fill').style.width]);"
    )
    assert len(bars) == len(summary["quotas"])
    for (shown, over, width), quota in zip(bars, summary["quotas"], strict=True):
        assert f"{quota['count']} of {quota['limit']}" in shown
        assert over == (not quota["fits"])
        assert width == f"{round(min(1, quota['count'] / quota['limit']) * 100)}%"
    assert not panel.js("return document.querySelector('details.sla-explanation').open;")
    before = panel.js("return __fake.calls.invoke.length;")
    panel.driver.find_element("css selector", "details.sla-explanation summary").click()
    panel.wait(
        lambda: panel.js("return __fake.calls.invoke.length;") > before, "a resize after opening"
    )
    for line in summary["lines"]:
        assert line in panel.text
    panel.screenshot("zendesk-quotas-explanation")


def test_freshdesk_agent_zone_and_field_names(world: World, open_app: Callable[..., Panel]) -> None:
    """Freshdesk names zones the Rails way: the browser's zone is used instead. A custom field
    whose name carries the account's id is found all the same."""
    text, tags = _text_for(
        world, "freshdesk", world.with_target("freshdesk", "running", needs="due")
    )
    panel = open_app(
        "freshdesk",
        text,
        tags,
        world.now,
        locale="fr",
        zone="Eastern Time (US & Canada)",
        browser_zone="Asia/Tokyo",
        field_key=f"{SUMMARY_FIELD['freshdesk']}_1000123",
    )
    assert "Heures affichées en Asia/Tokyo" in panel.text
    assert "échéance dans" in panel.target_text("running")
    panel.screenshot("freshdesk-countdown-tokyo-fr")


def test_summaries_the_app_cannot_read(open_app: Callable[..., Panel]) -> None:
    now = START
    panel = open_app("zendesk", "not json", [], now, expect="unreadable")
    assert "could not be read" in panel.text
    panel = open_app("freshdesk", json.dumps({"v": 2, "targets": []}), [], now, expect="newer")
    assert "summary version 2" in panel.text


def test_the_real_sdk_outside_zendesk_says_where_the_app_runs(
    open_app: Callable[..., Panel],
) -> None:
    """The vendored SDK itself loads and, outside Zendesk's frame, gives no client: the app
    says where it runs instead of throwing."""
    panel = open_app("zendesk", None, [], START, real_sdk=True, expect="message")
    assert "ticket sidebar only" in panel.text


def test_at_the_due_instant_a_target_is_still_due_and_the_clock_moves_it_on(
    world: World, open_app: Callable[..., Panel]
) -> None:
    """Breached once past due (contracts.md: "breached when now is past due"), not at it; the
    panel's own timer moves the countdown on as time passes."""
    ticket = world.with_target("zendesk", "running", needs="at_risk_at")
    text, tags = _text_for(world, "zendesk", ticket)
    targets = json.loads(text)["targets"]
    index = next(i for i, t in enumerate(targets) if t["state"] == "running" and "at_risk_at" in t)
    due = datetime.fromisoformat(targets[index]["due"])
    panel = open_app("zendesk", text, tags, due)
    assert panel.states()[index] == "at_risk"
    card = "return document.querySelectorAll('.sla-target')[arguments[0]].innerText;"
    assert "due in 0s" in panel.js(card, index)
    panel.js("__tick(arguments[0]);", 90 * 60 * 1000)  # an hour and a half on
    assert panel.states()[index] == "breached"
    assert "overdue by 1h 30m" in panel.js(card, index)


def test_a_summary_field_the_ticket_does_not_have_is_a_settings_problem(
    world: World, open_app: Callable[..., Panel], server: AppServer
) -> None:
    """A wrong field id or name in the app's settings is said so, not shown as a summary
    still to come."""
    text, tags = _text_for(world, "zendesk", world.with_target("zendesk", "running"))
    panel = open_app("zendesk", text, tags, world.now, settings_field="123", expect="message")
    assert "(custom_field_123) is not a field of this ticket" in panel.text
    panel = open_app(
        "freshdesk", text, tags, world.now, field_key="cf_other_field", expect="message"
    )
    assert "(cf_sla_summary) is not a field of this ticket" in panel.text


def test_a_malformed_summary_shows_what_it_can_and_throws_nothing(
    open_app: Callable[..., Panel],
) -> None:
    odd = {
        "v": 1,
        "title": "Odd",
        "entitlement": 7,
        "targets": [
            {},
            None,
            {"name": "toString", "state": "running", "due": "2026-03-06T18:00:00Z"},
        ],
        "quotas": [{}, {"quota": "incidents", "count": 5, "limit": 4, "fits": False}],
        "lines": "not a list",
    }
    panel = open_app("zendesk", json.dumps(odd), [], START)
    assert panel.states() == ["running"]
    assert "ToString" in panel.text
    assert "native code" not in panel.text
    assert "5 of 4" in panel.text
    assert "undefined" not in panel.text


def test_a_language_the_panel_lacks_reads_english_throughout(
    world: World, open_app: Callable[..., Panel]
) -> None:
    text, tags = _text_for(world, "zendesk", world.with_target("zendesk", "running", needs="due"))
    panel = open_app("zendesk", text, tags, world.now, locale="pt-BR", zone="America/Sao_Paulo")
    shown = panel.target_text("running")
    assert "due in" in shown
    assert "BRT" in shown or "GMT-3" in shown or "UTC-3" in shown
    for portuguese in ("dom.", "seg.", "ter.", "qua.", "qui.", "sex.", "sáb."):
        assert portuguese not in shown


def test_an_order_split_by_capacity_shows_each_share_and_its_due(
    open_app: Callable[..., Panel], contracts: dict[str, Any]
) -> None:
    from connector.helpdesks.summary import summary_text
    from connector.sla.engine import decide_with
    from connector.sla.model import TicketFacts

    facts = TicketFacts.model_validate(
        {
            "id": "4100",
            "created_at": START,
            "contract": "pixelz",
            "customer": "401",
            "category": "order",
            "quantities": {"images": 35},
            "flags": {"expedite": True},
            "customer_facts": {"timezone": "America/Sao_Paulo"},
        }
    )
    decision = decide_with(contracts, facts, START + timedelta(minutes=5))
    text = summary_text(decision, contracts["pixelz"].spec)
    [target] = [t for t in json.loads(text)["targets"] if "parts" in t]
    panel = open_app("zendesk", text, [], START + timedelta(minutes=5), zone="America/Sao_Paulo")
    for part in target["parts"]:
        due = datetime.fromisoformat(part["due"]).astimezone(ZoneInfo("America/Sao_Paulo"))
        assert f"{part['quantity']} due {due:%a}, {due:%I:%M %p}" in panel.text, panel.text
    panel.screenshot("zendesk-split-order")
