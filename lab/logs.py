"""Log lines in the seed's shape: `07:59:04,569 - Received task1 Request!!`."""

from __future__ import annotations

import logging
import sys
from typing import Any

FORMAT = "%(asctime)s,%(msecs)03d - %(message)s"
DATEFMT = "%H:%M:%S"


def setup() -> None:
    """Send INFO and above to stdout, in the seed's format."""
    logging.basicConfig(level=logging.INFO, format=FORMAT, datefmt=DATEFMT, stream=sys.stdout, force=True)


# uvicorn's own loggers (startup lines and the access line) in the same format.
UVICORN_LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "default": {
            "()": "uvicorn.logging.DefaultFormatter",
            "fmt": "%(asctime)s,%(msecs)03d - %(levelprefix)s %(message)s",
            "datefmt": DATEFMT,
            "use_colors": False,
        },
        "access": {
            "()": "uvicorn.logging.AccessFormatter",
            "fmt": '%(asctime)s,%(msecs)03d - %(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s',
            "datefmt": DATEFMT,
            "use_colors": False,
        },
    },
    "handlers": {
        "default": {"formatter": "default", "class": "logging.StreamHandler", "stream": "ext://sys.stdout"},
        "access": {"formatter": "access", "class": "logging.StreamHandler", "stream": "ext://sys.stdout"},
    },
    "loggers": {
        "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"level": "INFO"},
        "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
    },
}
