"""The sandbox on a loopback socket: both APIs under one port, the control API, cut sockets."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from connector.sandbox import Sandbox, SandboxServer
from tests.sandbox.conftest import FRESHDESK_AUTH, ZENDESK_AUTH


@pytest.fixture
def server(sandbox: Sandbox) -> Iterator[SandboxServer]:
    with sandbox.serve("127.0.0.1", 0) as running:
        yield running


def test_both_helpdesks_answer_under_their_prefix(server: SandboxServer) -> None:
    with httpx.Client(base_url=server.zendesk_url, auth=ZENDESK_AUTH) as zendesk:
        ticket = zendesk.get("/api/v2/tickets/1001.json").json()["ticket"]
    assert ticket["url"] == f"{server.zendesk_url}/api/v2/tickets/1001.json"
    with httpx.Client(base_url=server.freshdesk_url, auth=FRESHDESK_AUTH) as freshdesk:
        page = freshdesk.get("/api/v2/tickets", params={"per_page": 5, "order_by": "updated_at"})
    assert len(page.json()) == 5
    assert page.links["next"]["url"].startswith(f"{server.freshdesk_url}/api/v2/tickets?")


def test_control_api_injects_faults_and_agent_edits(server: SandboxServer) -> None:
    control = httpx.Client(base_url=server.control_url)
    zendesk = httpx.Client(base_url=server.zendesk_url, auth=ZENDESK_AUTH)
    with control, zendesk:
        added = control.post(
            "/faults", json={"kind": "rate_limited", "helpdesk": "zendesk", "retry_after": 7}
        )
        assert added.status_code == 201
        assert [f["kind"] for f in control.get("/faults").json()] == ["rate_limited"]
        refused = zendesk.get("/api/v2/tickets/1001.json")
        assert (refused.status_code, refused.headers["Retry-After"]) == (429, "7")

        assert control.post("/agent_edit", json={"ticket_id": 1001}).status_code == 200
        assert "agent_edit" in zendesk.get("/api/v2/tickets/1001.json").json()["ticket"]["tags"]
        assert control.post("/agent_reply", json={"ticket_id": 42}).status_code == 404

        counters = control.get("/counters").json()
        assert counters["total"] == 2
        assert counters["faults_fired"] == 1
        assert {(c["status"], c["count"]) for c in counters["requests"]} == {(429, 1), (200, 1)}

        assert control.post("/reset").json() == {"reset": True}
        assert control.get("/counters").json()["total"] == 0
        assert control.post("/faults", json={"kind": "nonsense"}).status_code == 400


def test_control_api_adds_tickets_changes_statuses_and_says_where_everything_is(
    server: SandboxServer,
) -> None:
    control = httpx.Client(base_url=server.control_url)
    zendesk = httpx.Client(base_url=server.zendesk_url, auth=ZENDESK_AUTH)
    freshdesk = httpx.Client(base_url=server.freshdesk_url, auth=FRESHDESK_AUTH)
    with control, zendesk, freshdesk:
        where = control.get("").json()
        assert where["helpdesks"]["zendesk"] == server.zendesk_url
        assert where["credentials"]["zendesk_api_token"] == ZENDESK_AUTH[1]
        assert {
            "id": 101,
            "name": "Lumen Archiv GmbH",
            "contract": "photoprism",
            "plan": "gold",
        } in (where["customers"])
        body = {"customer_id": 101, "subject": "Export fails", "severity": "sev1", "images": 3}
        added = control.post("/tickets", json=body)
        assert added.status_code == 201
        ticket_id = added.json()["ticket_id"]
        ticket = zendesk.get(f"/api/v2/tickets/{ticket_id}.json").json()["ticket"]
        assert (ticket["subject"], ticket["organization_id"]) == ("Export fails", 101)
        assert "severity_sev1" in ticket["tags"]
        assert freshdesk.get(f"/api/v2/tickets/{ticket_id}").json()["company_id"] == 101

        done = control.post("/status", json={"ticket_id": ticket_id, "status": "pending"})
        assert done.status_code == 200
        assert zendesk.get(f"/api/v2/tickets/{ticket_id}.json").json()["ticket"]["status"] == (
            "pending"
        )
        assert freshdesk.get(f"/api/v2/tickets/{ticket_id}").json()["status"] == 3

        assert control.post("/tickets", json={"customer_id": 5}).status_code == 400
        assert control.post("/tickets", json={"customer_id": 101, "images": "3"}).status_code == 400
        assert (
            control.post("/status", json={"ticket_id": 424242, "status": "open"}).status_code == 404
        )


@pytest.mark.parametrize(("kind", "priority"), [("cut_after", 1), ("cut_before", 4)])
def test_a_cut_fault_drops_the_socket_quietly(
    server: SandboxServer,
    sandbox: Sandbox,
    capfd: pytest.CaptureFixture[str],
    kind: str,
    priority: int,
) -> None:
    sandbox.faults.add(kind, helpdesk="freshdesk", method="PUT")
    with httpx.Client(base_url=server.freshdesk_url, auth=FRESHDESK_AUTH) as freshdesk:
        with pytest.raises(httpx.RemoteProtocolError):
            freshdesk.put("/api/v2/tickets/1001", json={"priority": 1})
        assert freshdesk.get("/api/v2/tickets/1001").json()["priority"] == priority
    # A cut is a fault the sandbox meant: no traceback from its server thread.
    assert "Traceback" not in capfd.readouterr().err


def test_serving_one_helpdesk_only(sandbox: Sandbox) -> None:
    with sandbox.serve("127.0.0.1", 0, helpdesks=("freshdesk",)) as running:
        assert httpx.get(f"{running.zendesk_url}/api/v2/tickets/1001.json").status_code == 404
        assert httpx.get(f"{running.control_url}/").json()["helpdesks"] == {
            "freshdesk": running.freshdesk_url
        }


def test_a_closed_server_releases_its_port(sandbox: Sandbox) -> None:
    running = sandbox.serve("127.0.0.1", 0).start()
    url = f"{running.zendesk_url}/api/v2/tickets/1001.json"
    assert httpx.get(url, auth=ZENDESK_AUTH).status_code == 200
    running.close()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, auth=ZENDESK_AUTH)
