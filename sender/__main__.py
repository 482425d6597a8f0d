"""python -m sender [--once [--json PATH]]: load for the receivers in RECEIVER_URL.

SENDER_RATE=0 (default): a burst of SENDER_CONCURRENCY requests to every target every
SENDER_INTERVAL seconds; --once: one burst and its timeline per target, exit 1 if any
request failed. SENDER_RATE>0: open loop at that rate per target for SENDER_DURATION seconds
(0: until stopped); --once: one run of SENDER_DURATION (> 0) seconds and a table, exit 0
unless a receiver could not be reached at all (drops, errors and late starts are results of
an open-loop run, not failures). --json PATH: after --once, the results as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

from lab import logs, metrics
from lab.runtime import tune_gc
from lab.settings import EXIT_BAD_CONFIG, load
from sender.run import until_stopped
from sender.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sender", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--once", action="store_true",
        help="one burst per target and its timeline (exit 1 if any request failed); with SENDER_RATE>0 "
             "one open-loop run of SENDER_DURATION seconds and a table (exit 1 only if a receiver "
             "could not be reached at all)",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="with --once: write the results to PATH as JSON")
    args = parser.parse_args()
    if args.json is not None and not args.once:
        parser.error("--json needs --once")
    settings = load(Settings, "sender")
    if args.once and settings.open_loop and settings.sender_duration == 0:
        print(
            f"sender: bad configuration: SENDER_DURATION={settings.sender_duration:g}: "
            "--once with SENDER_RATE>0 needs a bounded run, greater than 0 seconds",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_BAD_CONFIG)
    logs.setup(settings.log_level)
    if not args.once:
        metrics.serve(settings.metrics_port, settings.host)
    tune_gc()
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        code = runner.run(until_stopped(settings, args.once, args.json))
    raise SystemExit(code)


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (the image installs it), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


if __name__ == "__main__":
    main()
