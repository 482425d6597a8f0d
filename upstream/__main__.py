"""python -m upstream: settings, logging, metrics thread, then the aiohttp server."""

import logging

from aiohttp import web

from lab import logs, metrics
from lab.runtime import tune_gc
from lab.settings import load
from upstream.app import create_app
from upstream.settings import Settings


def main() -> None:
    settings = load(Settings, "upstream")
    logs.setup(settings.log_level)
    metrics.serve(settings.metrics_port, settings.host)
    logging.info(
        "upstream: delay=%gs jitter=±%gs error_rate=%g max_delay=%gs, metrics on :%d",
        settings.upstream_delay, settings.upstream_jitter, settings.upstream_error_rate,
        settings.upstream_max_delay, settings.metrics_port,
    )
    # No access log: upstream must never be the bottleneck; its metrics tell what it served.
    # backlog: a burst of 1,000 connections at once must not overflow the accept queue
    # (aiohttp's default, 128, drops SYNs that come back a second later).
    app = create_app(settings)
    tune_gc()
    # shutdown_timeout: on SIGTERM the longest call a caller may ask for still finishes
    # (aiohttp's default, 60 s, would cut one of UPSTREAM_MAX_DELAY=120 s short).
    web.run_app(app, host=settings.host, port=settings.port, access_log=None, print=None,
                backlog=4096, shutdown_timeout=settings.upstream_max_delay + settings.upstream_jitter + 5)


if __name__ == "__main__":
    main()
