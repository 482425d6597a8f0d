"""python -m receiver: settings, logging, then uvicorn (metrics from a thread) or gunicorn workers."""

import logging
import math
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from lab import logs
from lab.model import FORMULAS, FORMULAS_PER_WORKER
from lab.runtime import tune_gc
from lab.settings import load
from receiver.settings import KEEP_ALIVE, Settings


def main() -> None:
    settings = load(Settings, "receiver")
    logs.setup(settings.log_level)
    logging.info(
        "receiver: mode=%s (a burst of N takes %s) threads=%d threadpool_tokens=%d pool_limit=%d requests_pool=%d "
        "upstream=%s timeout=%gs log_level=%s access_log=%s metrics=%s, %s with %d worker(s), /metrics on :%d",
        settings.receiver_mode,
        FORMULAS[settings.receiver_mode] if settings.receiver_workers == 1
        else f"{FORMULAS_PER_WORKER[settings.receiver_mode]} if the workers share it evenly",
        settings.receiver_threads, settings.threadpool_tokens,
        settings.receiver_pool_limit, settings.receiver_requests_pool, settings.upstream_base,
        settings.receiver_upstream_timeout, settings.log_level, str(settings.receiver_access_log).lower(),
        str(settings.receiver_metrics).lower(), settings.server, settings.receiver_workers, settings.metrics_port,
    )
    if settings.receiver_workers > 1:
        serve_workers(settings)
        return
    if settings.prometheus_multiproc_dir is not None:
        # prometheus-client is in multiprocess mode (the variable was set at start): its
        # values are files there, also with one process. Emptied before any metric exists.
        from receiver.workers import prepare

        prepare(settings.prometheus_multiproc_dir)
    serve_one(settings)


def private_metrics_dir() -> Path:
    """A new directory for the workers' metrics files, named in PROMETHEUS_MULTIPROC_DIR.

    prometheus-client picks its multiprocess mode from that variable when it is imported, so
    it is set before anything imports it (this module imports no metrics code at its top).
    """
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before PROMETHEUS_MULTIPROC_DIR was set")
    path = Path(tempfile.mkdtemp(prefix="receiver-metrics-"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    return path


def serve_workers(settings: Settings) -> None:
    """gunicorn with RECEIVER_WORKERS uvicorn workers, their metrics files in a wiped directory:
    PROMETHEUS_MULTIPROC_DIR, or a private one that the master removes at exit."""
    named = settings.prometheus_multiproc_dir
    private = named is None
    directory = private_metrics_dir() if named is None else named
    from receiver import workers  # after private_metrics_dir(): it imports prometheus-client

    master = os.getpid()
    try:
        workers.prepare(directory)
        workers.run(settings.model_copy(update={"prometheus_multiproc_dir": directory}))
    finally:
        # gunicorn's workers are forks of this call: a worker exiting leaves through here too.
        if private and os.getpid() == master:
            shutil.rmtree(directory, ignore_errors=True)


def serve_one(settings: Settings) -> None:
    """uvicorn, one process, as the seed ran it; /metrics from a thread."""
    import uvicorn

    from lab import metrics
    from receiver.app import create_app

    app = create_app(settings)
    metrics.serve(settings.metrics_port, settings.host, app.state.metrics.registry)  # the app's own registry
    # uvicorn drains on SIGTERM/SIGINT (stops accepting, finishes what is in flight), then
    # raises the signal again for the handler found before it ran: this one, so a drained
    # receiver exits 0 (compose: "exited (0)", not 143) instead of dying by the signal.
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, lambda *_: None)
    tune_gc()  # a burst of 1,000 keeps 1,000 requests' objects alive at once
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",  # what uvicorn[standard] brings; named, so a missing one fails loudly
        http="httptools",
        access_log=settings.receiver_access_log,
        log_config=logs.uvicorn_log_config(settings.log_level),
        # No proxy in front of the receiver: X-Forwarded-* headers are never sent, and the
        # middleware that would read them is one more layer on every request.
        proxy_headers=False,
        # uvicorn's default, named: the model (models/simulate.py) counts on it to know when
        # a request comes on a new connection, which costs it a loop turn more.
        timeout_keep_alive=KEEP_ALIVE,
        # On SIGTERM, wait this long for requests in flight (each ends by the upstream
        # timeout anyway); compose's stop_grace_period is longer.
        timeout_graceful_shutdown=math.ceil(settings.receiver_upstream_timeout) + 5,
    )


if __name__ == "__main__":
    main()
