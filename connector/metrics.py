"""Prometheus metrics of one daemon: a scrape endpoint on loopback, or node_exporter's textfile.

Each `Metrics` owns its registry (never the process-wide one), so tests and a process that
watches two helpdesks can hold several. Every series carries a `helpdesk` label, so that two
daemons on one host can share a textfile folder without clashing. Counters do not export the
`_created` series: nothing here reads them and they double the textfile.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest, make_wsgi_app
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from connector.errors import ApiError
from connector.http import Request, Response

__all__ = ["WRITE_KINDS", "Metrics"]

WRITE_KINDS = ("update", "note", "bulk")
PREFIX = "sla_connector_"


class Metrics:
    """The daemon's counters and gauges, and the two ways to export them."""

    def __init__(
        self,
        helpdesk: str | None,
        *,
        tenant: str | None = None,
        parent: Metrics | None = None,
    ) -> None:
        """The series of one helpdesk account (`helpdesk`; None: none, only the export of
        the accounts that name this one their `parent`).

        `tenant`: the account's name where one configuration serves several (`[[tenants]]`),
        a `tenant` label on each of its series; None for the one account of a configuration
        without tenants (its series as they always were). `parent`: the daemon's metrics that
        export this account's with the others' (each metric once, a sample per account).
        """
        self.helpdesk = helpdesk or "all"
        self._root: Metrics = parent._root if parent is not None else self
        if parent is None:
            self.registry = CollectorRegistry()
            self._parts: list[_WithLabels] = []
            self._parts_lock = threading.Lock()
            self.registry.register(_Merged(self))
        else:
            self.registry = parent.registry
        self._collector: _WithLabels | None = None
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        if helpdesk is not None:
            self._series(helpdesk, tenant)

    def _series(self, helpdesk: str, tenant: str | None) -> None:
        self.tickets_seen = Counter(
            PREFIX + "tickets_seen", "Tickets read from the helpdesk.", registry=None
        )
        self.decisions_changed = Counter(
            PREFIX + "decisions_changed",
            "SLA decisions that differed from what the ticket showed.",
            registry=None,
        )
        self.writes = Counter(
            PREFIX + "writes", "Writes sent to the helpdesk, by kind.", ["kind"], registry=None
        )
        self.unmapped = Counter(
            PREFIX + "tickets_unmapped",
            "Tickets tagged sla_unmapped: no contract, plan or severity found.",
            registry=None,
        )
        self.api_calls = Counter(
            PREFIX + "api_requests",
            'Helpdesk API requests, by method and HTTP status ("error": no response).',
            ["method", "status"],
            registry=None,
        )
        self.rate_limit_waits = Counter(
            PREFIX + "rate_limit_wait_seconds",
            "Seconds spent waiting for the rate limit: asked by the helpdesk (Retry-After on "
            "429 and 503) or chosen by our pacer to stay within the announced budget.",
            ["by"],
            registry=None,
        )
        self.sync_lag = Gauge(
            PREFIX + "sync_lag_seconds",
            "Now minus the newest ticket change seen by the last poll.",
            registry=None,
        )
        self.last_sync = Gauge(
            PREFIX + "last_successful_sync_timestamp_seconds",
            "Unix time of the last poll that completed.",
            registry=None,
        )
        self.breaches = Gauge(
            PREFIX + "breached_targets",
            "SLA targets currently breached, by contract.",
            ["contract"],
            registry=None,
        )
        self.errors = Counter(
            PREFIX + "errors", "Errors the daemon survived, by kind.", ["kind"], registry=None
        )
        for kind in WRITE_KINDS:  # a series at 0 beats a missing one for rate()
            self.writes.labels(kind=kind)
        for by in ("helpdesk", "pacer"):
            self.rate_limit_waits.labels(by=by)
        labels = (
            {"helpdesk": helpdesk} if tenant is None else {"helpdesk": helpdesk, "tenant": tenant}
        )
        collector = self._collector = _WithLabels(
            [
                self.tickets_seen,
                self.decisions_changed,
                self.writes,
                self.unmapped,
                self.api_calls,
                self.rate_limit_waits,
                self.sync_lag,
                self.last_sync,
                self.breaches,
                self.errors,
            ],
            labels,
        )
        with self._root._parts_lock:
            self._root._parts.append(collector)

    def parts(self) -> list[_WithLabels]:
        """The accounts' collectors the export holds now."""
        with self._root._parts_lock:
            return list(self._root._parts)

    # --- recording -----------------------------------------------------------------------------

    def observe_api(self, method: str, status: int | None) -> None:
        """Count one API request; `status` None means no response came (transport error)."""
        self.api_calls.labels(
            method=method.upper(), status="error" if status is None else str(status)
        ).inc()

    def http_observer(
        self,
        request: Request,
        response: Response | None,
        error: ApiError | None,
        elapsed: float,
    ) -> None:
        """An `HttpShell` observer: `HttpShell(client, observers=[metrics.http_observer])`.

        Counts every attempt (retries included) by method and status, and adds the
        `Retry-After` of a 429 or 503 to the rate-limit wait: the shell sends nothing until it
        has passed. The waits the shell's pacer chooses come through `paced`.
        """
        self.observe_api(request.method, None if response is None else response.status)
        if response is not None and response.status in (429, 503) and response.retry_after:
            self.rate_limit_waits.labels(by="helpdesk").inc(response.retry_after)

    def paced(self, seconds: float) -> None:
        """An `HttpShell` `on_pace` hook: the pacer held a request back `seconds`."""
        self.rate_limit_waits.labels(by="pacer").inc(seconds)

    # --- exporting -----------------------------------------------------------------------------

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Serve `/metrics` over HTTP in a background thread; returns the bound (host, port).

        Loopback only (`127.0.0.0/8`, `::1`, `localhost`): metrics say which customers breach
        which contracts, and the endpoint has no authentication. Port 0 picks a free port.
        """
        address = _loopback_address(host)
        if self._server is not None:
            raise RuntimeError("the metrics endpoint is already being served")
        server_class = _Server6 if ":" in address else _Server
        server = make_server(
            address, port, make_wsgi_app(self.registry), server_class, _QuietHandler
        )
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},  # how long `close()` may wait for the loop
            name=f"metrics-{self.helpdesk}",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread
        bound_host, bound_port = server.server_address[:2]
        return str(bound_host), int(bound_port)

    def write_textfile(self, path: Path) -> None:
        """Write the metrics for node_exporter's textfile collector, atomically, mode 0644.

        The scraper sees the old file or the new one, never a half: the text goes to a hidden
        temporary file in the same folder (not `*.prom`, so never collected), is flushed to
        disk, then renamed over `path`.
        """
        data = generate_latest(self.registry)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fchmod(file.fileno(), 0o644)
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        _fsync_folder(path.parent)

    def forget(self) -> None:
        """Take this account's series out of the registry (a tenant handed to another daemon:
        its series are that daemon's now)."""
        if self._collector is None:
            return
        with self._root._parts_lock, contextlib.suppress(ValueError):
            self._root._parts.remove(self._collector)

    def close(self) -> None:
        """Stop the HTTP endpoint, if it runs; safe to call twice."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join()


class _Merged(Collector):
    """Every account's series of one daemon: each metric once, with a sample per account (two
    families of one name would be refused by a scraper)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for part in self._metrics.parts():
            for family in part.collect():
                if family.name in families:
                    families[family.name].samples.extend(family.samples)
                else:
                    families[family.name] = family
        yield from families.values()


class _WithLabels(Collector):
    """Collects `metrics` with `labels` added to every sample, `_created` series left out."""

    def __init__(self, metrics: Iterable[MetricWrapperBase], labels: dict[str, str]) -> None:
        self._metrics = list(metrics)
        self._labels = labels

    def collect(self) -> Iterator[Metric]:
        for metric in self._metrics:
            for family in metric.collect():
                family.samples = [
                    sample._replace(labels={**self._labels, **sample.labels})
                    for sample in family.samples
                    if not (family.type == "counter" and sample.name.endswith("_created"))
                ]
                yield family


def _loopback_address(host: str) -> str:
    """The address to bind for `host`; ValueError unless it is a loopback address."""
    name = host.strip().strip("[]")
    if name.lower() == "localhost":
        return "127.0.0.1"
    try:
        if ipaddress.ip_address(name).is_loopback:
            return name
    except ValueError:
        pass
    raise ValueError(
        f"refusing to serve metrics on {host!r}: only a loopback address (127.0.0.1, ::1) "
        "is allowed; use a reverse proxy or the textfile collector to expose them"
    )


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (best effort: not every file system allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not worth a log line."""
