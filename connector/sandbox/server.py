"""The sandbox on a real socket: both helpdesks under one port, and a small control API.

    http://HOST:PORT/zendesk/api/v2/...     the Zendesk API (base URL .../zendesk)
    http://HOST:PORT/freshdesk/api/v2/...   the Freshdesk API (base URL .../freshdesk)
    http://HOST:PORT/_sandbox/...           control: faults, agent actions, counters, reset

The API paths after the prefix are exactly the vendors'. Control endpoints (JSON bodies):
`POST /_sandbox/faults` (a fault as `FaultBook.add` takes it), `GET`/`DELETE /_sandbox/faults`,
`POST /_sandbox/agent_edit`, `/_sandbox/agent_reply`, `/_sandbox/solve`
(`{"ticket_id": N, "helpdesk": optional, "at": optional ISO instant}`),
`POST /_sandbox/status` (`{"ticket_id": N, "status": "pending", "helpdesk": optional}`),
`POST /_sandbox/tickets` (a new ticket: `{"customer_id": N, "subject": …, "severity": …,
"category": …, "images": N, "expedite": bool, "priority": …, "status": …}`, all but the
customer optional; answers its `ticket_id`), `GET /_sandbox` (where everything is, the
credentials and the customers), `GET /_sandbox/counters`, `POST /_sandbox/reset`. A
cut-connection fault closes the socket without an answer, as a dropped connection does.
docs/sandbox.md shows each with curl.
"""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Iterable
from http import HTTPStatus
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.handlers import SimpleHandler
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIEnvironment

from connector.sandbox.faults import FaultKind
from connector.sandbox.seed import SeedTicket
from connector.sandbox.wsgi import ApiRequest, ApiResponse, BadRequestBody, CutConnection
from connector.sandbox.wsgi import json_response as _json
from connector.timeutil import parse_instant

if TYPE_CHECKING:
    from connector.sandbox.sandbox import Sandbox

__all__ = ["SandboxServer"]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _ThreadingServer6(_ThreadingServer):
    address_family = socket.AF_INET6


class _CuttingHandler(ServerHandler):
    """Drops the connection, answer unsent, when the app raises `CutConnection`."""

    def handle_error(self) -> None:
        if isinstance(sys.exc_info()[1], CutConnection):
            self.close()
            return
        super().handle_error()

    def close(self) -> None:
        # `ServerHandler.close` logs the status line, and a cut answer has none.
        if getattr(self, "status", None) is None:
            SimpleHandler.close(self)
            return
        super().close()


class _RequestHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the counters say what happened."""

    def handle(self) -> None:
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.send_error(414)
            return
        if not self.parse_request():
            return
        handler = _CuttingHandler(
            self.rfile,
            self.wfile,  # type: ignore[arg-type]
            self.get_stderr(),
            self.get_environ(),
            multithread=True,
        )
        handler.request_handler = self  # type: ignore[attr-defined]
        app = self.server.get_app()  # type: ignore[attr-defined]
        handler.run(app)


class SandboxServer:
    """A bound loopback server over one `Sandbox`; start it in a thread or in the foreground."""

    def __init__(
        self,
        sandbox: Sandbox,
        host: str,
        port: int,
        *,
        helpdesks: tuple[str, ...] = ("zendesk", "freshdesk"),
    ) -> None:
        self.sandbox = sandbox
        self.helpdesks = helpdesks
        mounts = {"zendesk": sandbox.zendesk_app(), "freshdesk": sandbox.freshdesk_app()}
        self._mounts = {f"/{name}": mounts[name] for name in helpdesks}
        server_class = _ThreadingServer6 if ":" in host else _ThreadingServer
        self._server = make_server(
            host, port, self._dispatch, server_class=server_class, handler_class=_RequestHandler
        )
        self._thread: threading.Thread | None = None

    # --- addresses --------------------------------------------------------------------------

    @property
    def host(self) -> str:
        """The bound host."""
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was asked for)."""
        return int(self._server.server_address[1])

    @property
    def root(self) -> str:
        """`http://host:port`."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def zendesk_url(self) -> str:
        """Base URL of the Zendesk API."""
        return f"{self.root}/zendesk"

    @property
    def freshdesk_url(self) -> str:
        """Base URL of the Freshdesk API."""
        return f"{self.root}/freshdesk"

    @property
    def control_url(self) -> str:
        """Base URL of the control API."""
        return f"{self.root}/_sandbox"

    # --- running ----------------------------------------------------------------------------

    def start(self) -> SandboxServer:
        """Serve in a daemon thread; returns self."""
        # A short poll keeps close() quick; the loop itself costs next to nothing.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="sla-sandbox", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until `close()` (from another thread) or an interrupt."""
        self._server.serve_forever()

    def close(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- dispatch ---------------------------------------------------------------------------

    def _dispatch(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO") or "/")
        for prefix, app in self._mounts.items():
            if path == prefix or path.startswith(prefix + "/"):
                environ["SCRIPT_NAME"] = str(environ.get("SCRIPT_NAME", "")) + prefix
                environ["PATH_INFO"] = path[len(prefix) :] or "/"
                return app(environ, start_response)
        if path.startswith("/_sandbox"):
            response = self._control(ApiRequest.from_environ(environ))
        else:
            response = _json(404, {"error": "not a sandbox path", "path": path})
        phrase = HTTPStatus(response.status).phrase
        start_response(f"{response.status} {phrase}", response.all_headers())
        return [response.body]

    def _control(self, request: ApiRequest) -> ApiResponse:
        sandbox = self.sandbox
        route = (request.method, request.path.rstrip("/"))
        try:
            if route == ("GET", "/_sandbox"):
                return _json(200, self.describe())
            if route == ("GET", "/_sandbox/counters"):
                return _json(
                    200,
                    {
                        "requests": sandbox.counters.snapshot(),
                        "total": sandbox.counters.total(),
                        "faults_fired": sandbox.faults.fired,
                    },
                )
            if route == ("GET", "/_sandbox/faults"):
                return _json(200, [f.describe() for f in sandbox.faults.active()])
            if route == ("DELETE", "/_sandbox/faults"):
                sandbox.faults.clear()
                return ApiResponse(204)
            if route == ("POST", "/_sandbox/faults"):
                body = request.json()
                kind = FaultKind(body.pop("kind", None))
                fault = sandbox.faults.add(kind, **body)
                return _json(201, fault.describe())
            if route == ("POST", "/_sandbox/reset"):
                sandbox.reset()
                return _json(200, {"reset": True})
            if route == ("POST", "/_sandbox/status"):
                body = request.json()
                ticket_id, status = body.get("ticket_id"), body.get("status")
                if not isinstance(ticket_id, int) or not isinstance(status, str):
                    return _json(400, {"error": "ticket_id (an integer) and status are required"})
                try:
                    sandbox.set_status(ticket_id, status, helpdesk=body.get("helpdesk"))
                except KeyError:
                    return _json(404, {"error": f"no ticket {ticket_id}"})
                return _json(200, {"done": "status", "ticket_id": ticket_id, "status": status})
            if route == ("POST", "/_sandbox/tickets"):
                return self._new_ticket(request.json())
            if request.method == "POST" and route[1] in (
                "/_sandbox/agent_edit",
                "/_sandbox/agent_reply",
                "/_sandbox/solve",
            ):
                return self._agent(route[1].rsplit("/", 1)[1], request.json())
        except (BadRequestBody, TypeError, ValueError) as exc:
            return _json(400, {"error": str(exc)})
        return _json(404, {"error": "unknown control endpoint", "path": request.path})

    def _agent(self, action: str, body: dict[str, Any]) -> ApiResponse:
        ticket_id = body.get("ticket_id")
        if not isinstance(ticket_id, int):
            return _json(400, {"error": "ticket_id (an integer) is required"})
        helpdesk = body.get("helpdesk")
        at = parse_instant(str(body["at"])) if body.get("at") else None
        try:
            if action == "agent_edit":
                self.sandbox.agent_edit(ticket_id, helpdesk=helpdesk)
            elif action == "agent_reply":
                self.sandbox.agent_reply(ticket_id, at, helpdesk=helpdesk)
            else:
                self.sandbox.solve(ticket_id, at, helpdesk=helpdesk)
        except KeyError:
            return _json(404, {"error": f"no ticket {ticket_id}"})
        return _json(200, {"done": action, "ticket_id": ticket_id})

    def _new_ticket(self, body: dict[str, Any]) -> ApiResponse:
        customer = body.get("customer_id")
        known = {c.id: c for c in self.sandbox.zendesk.organizations.values()}
        known.update(self.sandbox.freshdesk.companies)
        if not isinstance(customer, int) or customer not in known:
            return _json(400, {"error": f"customer_id: one of {sorted(known)}"})
        fields = {
            k: body[k]
            for k in (
                "subject", "severity", "severity_override", "category", "product", "images",
                "expedite", "priority", "status",
            )
            if k in body
        }  # fmt: skip
        kinds = {"images": int, "expedite": bool}
        for key, value in fields.items():
            wanted = kinds.get(key, str)
            if not isinstance(value, wanted) or (wanted is int and isinstance(value, bool)):
                return _json(400, {"error": f"{key}: expected {wanted.__name__}"})
        with self.sandbox.lock:
            taken = [*self.sandbox.zendesk.tickets, *self.sandbox.freshdesk.tickets]
            ticket_id = max(taken, default=0) + 1
            seed = SeedTicket(
                id=ticket_id,
                subject=str(fields.pop("subject", f"Ticket {ticket_id}")),
                created_at=self.sandbox.now(),
                customer_id=customer,
                **fields,
            )
            helpdesk = body.get("helpdesk")
            self.sandbox.seed(
                [seed],
                customers=(),
                helpdesks=(helpdesk,) if helpdesk else ("zendesk", "freshdesk"),
            )
        return _json(201, {"ticket_id": ticket_id})

    def describe(self) -> dict[str, Any]:
        """Where everything is, the (public, sandbox-only) credentials and the customers."""
        urls = {"zendesk": self.zendesk_url, "freshdesk": self.freshdesk_url}
        creds = self.sandbox.credentials
        customers = {**self.sandbox.zendesk.organizations, **self.sandbox.freshdesk.companies}
        return {
            "helpdesks": {name: urls[name] for name in self.helpdesks},
            "control": self.control_url,
            "credentials": {
                "zendesk_email": creds.zendesk_email,
                "zendesk_api_token": creds.zendesk_api_token,
                "freshdesk_api_key": creds.freshdesk_api_key,
            },
            "customers": [
                {"id": c.id, "name": c.name, "contract": c.contract, "plan": c.plan}
                for c in sorted(customers.values(), key=lambda c: c.id)
            ],
        }
