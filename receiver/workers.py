"""RECEIVER_WORKERS > 1: gunicorn runs W uvicorn workers; the master serves their metrics.

Each worker is a process with its own event loop, app, client session and thread pool (the
app is loaded in the worker, not before the fork). Their metrics go through prometheus-client's
multiprocess mode: every worker writes its values to files in PROMETHEUS_MULTIPROC_DIR, and
the gunicorn master, which runs no event loop, serves /metrics from those files on its own
port. So /metrics answers even while every worker's loop is blocked in sync mode.

- The directory is wiped before gunicorn starts (prepare()): files of an earlier run would
  add their counts.
- A worker that exits (recycled, killed) is marked dead: its live gauges (in flight, peaks,
  probe) leave the sums at once; its counters and histograms stay in them, so no counter goes
  backwards when gunicorn replaces it.
- How a burst's connections reach the workers (RECEIVER_ACCEPT): `shared`, gunicorn's way,
  one listening socket that every worker polls, so whichever worker wakes first accepts
  what is waiting; or `reuseport`, each worker a socket of its own on the same port
  (SO_REUSEPORT), among which the kernel picks by a hash of each connection's addresses.
  Neither promises the even spread the model assumes; the benchmark measures both.
- Aggregation is pid-free: counters and histograms are summed over workers, in-flight is a
  live sum, the in-flight peak the largest one worker saw, and the event loop's blocked time
  the most overdue worker's (a `worker` label would need a bounded name per slot, which
  gunicorn does not give a recycled worker).
"""

from __future__ import annotations

import asyncio
import logging
import math
import shutil
import socket
import struct
import sys
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from prometheus_client import CollectorRegistry, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from uvicorn import Server
from uvicorn_worker import UvicornWorker

from lab import metrics
from lab.runtime import tune_gc
from receiver.metrics import receiver_info
from receiver.settings import KEEP_ALIVE, Settings

log = logging.getLogger("receiver")

BLOCKED = "receiver_event_loop_blocked_seconds"
PROBE_DUE = f"receiver{metrics.PROBE_DUE_SUFFIX}"
BLOCKED_PEAK = f"receiver{metrics.BLOCKED_PEAK_SUFFIX}"


class Worker(UvicornWorker):
    """uvicorn as `python -m receiver` runs it with one worker: uvloop and httptools, named."""

    CONFIG_KWARGS = {"loop": "uvloop", "http": "httptools", "proxy_headers": False}
    # RECEIVER_ACCEPT=reuseport: the address each worker listens on with a socket of its own
    # (set in the master before the workers are forked).
    own_socket: tuple[str, int] | None = None
    # Set by gunicorn's Worker (untyped): the listeners, gunicorn's wrappers passing every attribute
    # on to their socket; uvicorn's server.serve(sockets=...) takes them as list[socket.socket].
    sockets: list[socket.socket]

    def run(self) -> None:
        if self.own_socket is not None:
            for inherited in self.sockets:  # the master's placeholder: never accepted on
                inherited.close()
            self.sockets = [reuseport_socket(*self.own_socket, self.cfg.backlog)]
            # gunicorn's "Listening at" names its placeholder's port; this is where requests come in.
            log.info("worker %d listens on %s:%d with a socket of its own (SO_REUSEPORT)", self.pid, *self.own_socket)
        super().run()

    async def _serve(self) -> None:  # uvicorn_worker's, with the server below
        server = DrainingServer(config=self.config)
        self.config.app = server.closing_when_draining(self.wsgi)
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)


def queued(sock: Any) -> int:
    """Connections the kernel completed on a listening socket that nobody has accepted yet
    (Linux: a listener's tcp_info counts its accept queue in tcpi_unacked)."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    except OSError:  # closed, or not TCP
        return 0
    return int(struct.unpack_from("I", info, 24)[0])


# How long a stopping worker keeps serving the connections it has, at most.
DRAIN_GRACE = 1.0
CLOSE = (b"connection", b"close")


class DrainingServer(Server):
    """uvicorn's Server, but a stop loses no request that was already sent to it.

    uvicorn stops by closing its listening sockets, then closing every connection that has
    no request in progress. That loses three kinds of request: connections the kernel
    completed but nobody accepted (a worker whose loop was blocked, sync mode: the client
    sees a reset when the last worker closes the socket), connections accepted but not read
    yet (closed unanswered), and a request a client sends on an idle keep-alive connection
    just as it is closed (reset: the client cannot tell it from a lost answer). So: on SIGTERM
    it keeps accepting until the kernel's queue is empty (the other workers drain the same
    shared socket); on any stop, a recycled worker's included, it then stops accepting and
    drains (for DRAIN_GRACE at most): every answer it gives from then on says
    `Connection: close`, so each connection closes after an answer, where its client knows
    it is closed, and uvicorn closes only what is left idle after that.
    """

    draining = False

    def closing_when_draining(self, app: Any) -> Any:
        """app, but each answer it starts while this server drains says `Connection: close`."""
        async def closing(scope: Any, receive: Any, send: Any) -> None:
            if self.draining and scope["type"] == "http":
                send = partial(send_closing, send)
            await app(scope, receive, send)
        return closing

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.should_exit:  # a signal: the whole receiver stops, nobody else will accept
            listeners = [sock for server in self.servers for sock in server.sockets]
            # A poll: the kernel's queue has no event to wait on.
            while not self.force_exit and any(queued(sock) for sock in listeners):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        self.draining = True
        for connection in self.server_state.connections:
            close_after_answer(connection)
        for server in self.servers:
            server.close()  # from here on, only what this worker took
        deadline = time.monotonic() + DRAIN_GRACE
        while not self.force_exit and time.monotonic() < deadline and self.server_state.connections:  # noqa: ASYNC110
            await asyncio.sleep(0.01)  # a poll, as above
        await super().shutdown(sockets)


def close_after_answer(connection: Any) -> None:
    """An answer under way on connection (uvicorn's protocol) closes it once it is out."""
    cycle = getattr(connection, "cycle", None)
    if cycle is not None and not cycle.response_complete:
        cycle.keep_alive = False


async def send_closing(send: Any, message: Any) -> None:
    if message["type"] == "http.response.start":
        message = {**message, "headers": [*message.get("headers", ()), CLOSE]}
    await send(message)


def reuseport_socket(host: str, port: int, backlog: int) -> socket.socket:
    """A listening socket that shares host:port with the other workers' (the kernel spreads connections by hash)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


class WorkersMetrics(Collector):
    """What the workers wrote, summed over them; the probes' due times become the blocked gauge."""

    def __init__(self, path: Path):
        self._path = path

    def written(self) -> list[str]:
        """The workers' metrics files, but for one a worker is creating: it is empty until the
        worker sizes it, and prometheus_client cannot read an empty file (struct.error)."""
        files = []
        for path in self._path.glob("*.db"):
            try:
                if path.stat().st_size >= 8:  # the file's header: how much of it is in use
                    files.append(str(path))
            except FileNotFoundError:  # a live gauge's file, removed as its worker exited
                pass
        return files

    def collect(self) -> Iterator[Any]:
        merged = multiprocess.MultiProcessCollector.merge(self.written(), accumulate=True)
        families = {family.name: family for family in merged}
        due = min((sample.value for sample in families.pop(PROBE_DUE).samples), default=None) \
            if PROBE_DUE in families else None  # the most overdue worker
        blocked = 0.0 if due is None else max(0.0, time.monotonic() - due)
        peaks = families.pop(BLOCKED_PEAK).samples if BLOCKED_PEAK in families else []
        yield from families.values()
        yield GaugeMetricFamily(
            BLOCKED,
            "How long the most overdue worker's event loop has been late to wake its probe (0 when responsive).",
            value=blocked,
        )
        # Each worker wrote its longest block at its last wake-up; a block going on is not in it yet.
        yield GaugeMetricFamily(BLOCKED_PEAK, metrics.BLOCKED_PEAK_HELP,
                                value=max([blocked, *(sample.value for sample in peaks)]))


class Gunicorn(BaseApplication):
    def __init__(self, settings: Settings):
        if settings.prometheus_multiproc_dir is None:  # python -m receiver names one (a private one if unset)
            raise ValueError("gunicorn's workers need PROMETHEUS_MULTIPROC_DIR")
        self.settings = settings
        self.metrics_dir: Path = settings.prometheus_multiproc_dir  # where the workers write their metrics
        super().__init__()

    def load_config(self) -> None:
        s = self.settings
        # reuseport: the workers bind the port themselves; gunicorn's own socket (which every
        # worker would share) goes to a port nobody uses, so it never takes a connection.
        port = 0 if s.receiver_accept == "reuseport" else s.port
        options = {
            "bind": [f"{s.host}:{port}"],
            "workers": s.receiver_workers,
            "worker_class": "receiver.workers.Worker",
            "keepalive": KEEP_ALIVE,  # uvicorn's timeout_keep_alive in the workers: the model counts on it
            # A blocked loop is the lesson, not a hung worker: gunicorn must never kill one for
            # missing its heartbeat (a sync burst of N blocks it for N·D).
            "timeout": 0,
            "graceful_timeout": math.ceil(s.receiver_upstream_timeout) + 5,
            "max_requests": s.receiver_max_requests,
            "backlog": 4096,
            "accesslog": "-" if s.receiver_access_log else None,
            "errorlog": "-",
            "loglevel": s.log_level,
            # gunicorn's control socket (gunicornc) would go to ~/.gunicorn: one path shared by
            # every gunicorn of the user (the tests run several), and read-only in the container.
            "control_socket_disable": True,
            "when_ready": self.when_ready,
            "child_exit": self.child_exit,
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        # In each worker, after the fork: its own app, metrics, client session and threads. The
        # settings say RECEIVER_WORKERS > 1, so create_app gives the metrics their shared form.
        from receiver.app import create_app

        app = create_app(self.settings)
        tune_gc()
        return app

    def when_ready(self, server: Any) -> None:
        registry = CollectorRegistry()
        registry.register(WorkersMetrics(self.metrics_dir))
        receiver_info(self.settings, registry)  # the workers leave it out: an Info has no multiprocess form
        metrics.serve(self.settings.metrics_port, self.settings.host, registry)

    def child_exit(self, server: Any, worker: Any) -> None:
        multiprocess.mark_process_dead(worker.pid, str(self.metrics_dir))


def prepare(path: Path) -> None:
    """An empty PROMETHEUS_MULTIPROC_DIR, before any metric is made (the directory may be a mount)."""
    if path.exists():
        for entry in path.iterdir():
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    path.mkdir(parents=True, exist_ok=True)


def run(settings: Settings) -> None:
    if settings.receiver_accept == "reuseport":
        Worker.own_socket = (settings.host, settings.port)
    logging.logProcesses = True  # gunicorn's own lines name the process (lab.logs turns it off)
    Gunicorn(settings).run()
