"""Log lines in the seed's shape: `07:59:04,569 - Received task1 Request!!`."""

from __future__ import annotations

import logging
import sys
from typing import Any

FORMAT = "%(asctime)s,%(msecs)03d - %(message)s"
DATEFMT = "%H:%M:%S"


def setup(level: str = "info") -> None:
    """Send `level` (debug, info, warning, error) and above to stdout, in the seed's format.

    At info the services log a line or two per request, as the seed did; at warning they
    are quiet, and a log call that is filtered out costs next to nothing.
    """
    logging.basicConfig(level=level.upper(), format=FORMAT, datefmt=DATEFMT, stream=sys.stdout, force=True)
    # FORMAT (and uvicorn's formats below) use no caller, thread, process or task: skip
    # collecting them for every record (the logging HOWTO's "Optimization" section).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    if sys.version_info >= (3, 12):  # the attribute (and the task name it collects) is new in 3.12
        logging.logAsyncioTasks = False


def uvicorn_log_config(level: str = "info") -> dict[str, Any]:
    """uvicorn's own loggers (startup lines and the access line) in the same format, at `level`.

    Whether the access line is written at all is uvicorn's `access_log` option; at a level
    above info it is filtered out anyway.
    """
    return {
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
            "uvicorn": {"handlers": ["default"], "level": level.upper(), "propagate": False},
            "uvicorn.error": {"level": level.upper()},
            "uvicorn.access": {"handlers": ["access"], "level": level.upper(), "propagate": False},
        },
    }

