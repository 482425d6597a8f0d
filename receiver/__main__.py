"""python -m receiver: settings, logging, metrics thread, then uvicorn."""

import logging

import uvicorn

from lab import logs, metrics
from lab.model import FORMULAS
from lab.settings import load
from receiver.app import create_app
from receiver.settings import Settings


def main() -> None:
    settings = load(Settings, "receiver")
    logs.setup()
    metrics.serve(settings.metrics_port, settings.host)
    logging.info(
        "receiver: mode=%s (a burst of N takes %s) threads=%d pool_limit=%d requests_pool=%d "
        "upstream=%s timeout=%gs, metrics on :%d",
        settings.receiver_mode, FORMULAS[settings.receiver_mode], settings.receiver_threads,
        settings.receiver_pool_limit, settings.receiver_requests_pool, settings.upstream_base,
        settings.receiver_upstream_timeout, settings.metrics_port,
    )
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=logs.UVICORN_LOG_CONFIG)


if __name__ == "__main__":
    main()
