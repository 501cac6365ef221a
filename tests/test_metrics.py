"""Metrics as Prometheus and node_exporter read them."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from connector.errors import NotAvailable, NotFound
from connector.http import HttpShell, Request, Response, RetryPolicy, error_for
from connector.metrics import Metrics
from connector.sandbox import ZENDESK_URL, ManualClock, Sandbox

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    metrics = Metrics("zendesk")
    yield metrics
    metrics.close()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition text, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def labels(**values: str) -> frozenset[tuple[str, str]]:
    return frozenset(values.items())


def exposition(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return samples(generate_latest(metrics.registry).decode())


def test_the_endpoint_serves_every_metric_with_its_labels(metrics: Metrics) -> None:
    metrics.tickets_seen.inc(40)
    metrics.decisions_changed.inc(3)
    metrics.writes.labels(kind="note").inc()
    metrics.unmapped.inc()
    metrics.observe_api("get", 200)
    metrics.observe_api("PUT", 409)
    metrics.observe_api("GET", None)
    metrics.rate_limit_waits.labels(by="helpdesk").inc(2.5)
    metrics.paced(1.5)
    metrics.sync_lag.set(75)
    metrics.last_sync.set(1772442000)
    metrics.breaches.labels(contract="photoprism").set(2)
    metrics.errors.labels(kind="malformed_page").inc()

    host, port = metrics.serve("127.0.0.1", 0)
    assert host == "127.0.0.1"
    assert port > 0
    response = httpx.get(f"http://{host}:{port}/metrics")
    assert response.status_code == 200
    found = samples(response.text)

    zd = {"helpdesk": "zendesk"}
    assert found[("sla_connector_tickets_seen_total", labels(**zd))] == 40
    assert found[("sla_connector_decisions_changed_total", labels(**zd))] == 3
    assert found[("sla_connector_writes_total", labels(**zd, kind="note"))] == 1
    assert found[("sla_connector_writes_total", labels(**zd, kind="update"))] == 0
    assert found[("sla_connector_writes_total", labels(**zd, kind="bulk"))] == 0
    assert found[("sla_connector_tickets_unmapped_total", labels(**zd))] == 1
    api = "sla_connector_api_requests_total"
    assert found[(api, labels(**zd, method="GET", status="200"))] == 1
    assert found[(api, labels(**zd, method="PUT", status="409"))] == 1
    assert found[(api, labels(**zd, method="GET", status="error"))] == 1
    waits = "sla_connector_rate_limit_wait_seconds_total"
    assert found[(waits, labels(**zd, by="helpdesk"))] == 2.5
    assert found[(waits, labels(**zd, by="pacer"))] == 1.5
    assert found[("sla_connector_sync_lag_seconds", labels(**zd))] == 75
    assert found[("sla_connector_last_successful_sync_timestamp_seconds", labels(**zd))] == (
        1772442000
    )
    assert found[("sla_connector_breached_targets", labels(**zd, contract="photoprism"))] == 2
    assert found[("sla_connector_errors_total", labels(**zd, kind="malformed_page"))] == 1
    assert not [name for name, _ in found if name.endswith("_created")]


def test_ipv6_loopback_and_localhost_are_accepted(metrics: Metrics) -> None:
    host, port = metrics.serve("localhost", 0)
    assert host == "127.0.0.1"
    assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 200
    metrics.close()
    try:
        host, port = metrics.serve("::1", 0)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    assert host == "::1"
    assert httpx.get(f"http://[::1]:{port}/metrics").status_code == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "", "::", "192.168.1.10", "metrics.example.com"])
def test_a_non_loopback_host_is_refused(metrics: Metrics, host: str) -> None:
    with pytest.raises(ValueError, match="loopback") as refused:
        metrics.serve(host, 0)
    assert repr(host) in str(refused.value)


def test_close_stops_the_endpoint(metrics: Metrics) -> None:
    host, port = metrics.serve("127.0.0.1", 0)
    metrics.close()
    metrics.close()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://{host}:{port}/metrics")


def test_serving_twice_is_refused(metrics: Metrics) -> None:
    metrics.serve("127.0.0.1", 0)
    with pytest.raises(RuntimeError, match="already"):
        metrics.serve("127.0.0.1", 0)


def test_textfile_is_replaced_whole_readable_by_node_exporter(
    metrics: Metrics, tmp_path: Path
) -> None:
    target = tmp_path / "sla_connector_zendesk.prom"
    target.write_text("stale\n")
    os.chmod(target, 0o600)
    metrics.tickets_seen.inc(7)
    metrics.breaches.labels(contract="acme-msp").set(1)

    metrics.write_textfile(target)

    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]  # no temp file left
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    found = samples(target.read_text())
    assert found[("sla_connector_tickets_seen_total", labels(helpdesk="zendesk"))] == 7
    assert (
        found[("sla_connector_breached_targets", labels(helpdesk="zendesk", contract="acme-msp"))]
        == 1
    )


def test_a_failed_textfile_write_leaves_the_old_file_and_no_temp(
    metrics: Metrics, tmp_path: Path
) -> None:
    target = tmp_path / "metrics.prom"
    metrics.write_textfile(target)
    before = target.read_text()
    (tmp_path / "metrics.prom.d").mkdir()
    metrics.tickets_seen.inc()
    with pytest.raises(IsADirectoryError):
        metrics.write_textfile(tmp_path / "metrics.prom.d")
    assert target.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.prom", "metrics.prom.d"]


def test_two_instances_are_independent() -> None:
    zendesk, freshdesk = Metrics("zendesk"), Metrics("freshdesk")
    zendesk.tickets_seen.inc(5)
    freshdesk.tickets_seen.inc(2)
    freshdesk.errors.labels(kind="auth").inc()

    assert (
        exposition(zendesk)[("sla_connector_tickets_seen_total", labels(helpdesk="zendesk"))] == 5
    )
    assert not [name for name, _ in exposition(zendesk) if name == "sla_connector_errors_total"]
    found = exposition(freshdesk)
    assert found[("sla_connector_tickets_seen_total", labels(helpdesk="freshdesk"))] == 2
    assert found[("sla_connector_errors_total", labels(helpdesk="freshdesk", kind="auth"))] == 1


# --- the HTTP shell observer, against the sandbox --------------------------------------------


def _ticket(response: Response) -> dict[str, Any]:
    if response.status >= 400:
        raise error_for(response, response.text())
    return dict(response.json()["ticket"])


def test_the_http_observer_counts_every_attempt_and_the_rate_limit_wait(
    metrics: Metrics,
) -> None:
    clock = ManualClock(START)
    sandbox = Sandbox.seeded(clock=clock)
    sandbox.faults.add("rate_limited", retry_after=7, method="GET")
    sandbox.faults.add("server_error", method="PUT")
    creds = sandbox.credentials
    client = httpx.Client(
        transport=sandbox.zendesk_transport(),
        base_url=ZENDESK_URL,
        auth=(f"{creds.zendesk_email}/token", creds.zendesk_api_token),
    )
    shell = HttpShell(
        client,
        policy=RetryPolicy(attempts=3, backoff_initial=0.01),
        sleep=clock.sleep,
        clock=lambda: clock().timestamp(),
        wall_clock=clock,
        observers=[metrics.http_observer],
    )
    with client:
        ticket = shell.send(Request("GET", "/api/v2/tickets/1001.json"), _ticket)
        body = {"ticket": {"priority": "high", "updated_stamp": ticket["updated_at"]}}
        shell.send(Request("PUT", "/api/v2/tickets/1001.json", json=body), _ticket)
        with pytest.raises(NotFound):
            shell.send(Request("GET", "/api/v2/tickets/999999.json"), _ticket)

    found = exposition(metrics)
    api = "sla_connector_api_requests_total"
    zd = {"helpdesk": "zendesk"}
    assert found[(api, labels(**zd, method="GET", status="429"))] == 1
    assert found[(api, labels(**zd, method="GET", status="200"))] == 1
    assert found[(api, labels(**zd, method="PUT", status="500"))] == 1
    assert found[(api, labels(**zd, method="PUT", status="200"))] == 1
    assert found[(api, labels(**zd, method="GET", status="404"))] == 1
    assert found[("sla_connector_rate_limit_wait_seconds_total", labels(**zd, by="helpdesk"))] == 7


def test_the_http_observer_counts_a_transport_failure_as_error(metrics: Metrics) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with httpx.Client(transport=httpx.MockTransport(refuse)) as client:
        shell = HttpShell(
            client,
            policy=RetryPolicy(attempts=2, backoff_initial=0.0),
            sleep=lambda _: None,
            observers=[metrics.http_observer],
        )
        with pytest.raises(NotAvailable):
            shell.send(Request("GET", "https://desk.example.com/x"), lambda r: r)

    found = exposition(metrics)
    key = (
        "sla_connector_api_requests_total",
        labels(helpdesk="zendesk", method="GET", status="error"),
    )
    assert found[key] == 2
