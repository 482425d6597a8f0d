"""python -m sender [--once]: bursts every SENDER_INTERVAL seconds, or one burst and a timeline."""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import signal
import time

import aiohttp

from lab import logs, metrics
from lab.settings import load
from sender.burst import Burst, Prediction, fetch_info, predict, run_burst
from sender.metrics import BURST_SIZE, BURSTS, LOOP_LAG, MAKESPAN, PREDICTED
from sender.settings import Settings

log = logging.getLogger("sender")


def summary(number: int, burst: Burst, mode: str, prediction: Prediction | None) -> str:
    return (
        f"=== burst {number}: N={len(burst.results)} makespan={burst.makespan:.3f}s "
        f"mode={mode} predicted={prediction or 'unknown'} failed={burst.failures}"
    )


def timeline(burst: Burst) -> str:
    lines = [f"{'task':<10}{'sent':>9}{'answered':>11}  status"]
    for r in sorted(burst.results, key=lambda r: r.seconds):
        lines.append(f"{r.name:<10}{'+0.000s':>9}{f'+{r.seconds:.3f}s':>11}  {r.status or 'no answer'}")
    return "\n".join(lines)


async def run(settings: Settings, once: bool) -> int:
    n = settings.sender_concurrency
    # limit=n: the sender's own pool never holds a burst back.
    connector = aiohttp.TCPConnector(limit=n)
    timeout = aiohttp.ClientTimeout(total=settings.sender_timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        probe = asyncio.create_task(LOOP_LAG.run())
        try:
            number, next_start = 0, time.monotonic()
            while True:
                number += 1
                info = await fetch_info(session, settings.receiver_base)
                prediction = predict(info, n, settings.sender_delay)
                burst = await run_burst(session, settings.receiver_base, n, settings.sender_delay)
                BURSTS.inc()
                BURST_SIZE.set(n)
                MAKESPAN.set(burst.makespan)
                PREDICTED.set(prediction.makespan if prediction else math.nan)
                log.info(summary(number, burst, (info or {}).get("mode", "unknown"), prediction))
                if once:
                    print(timeline(burst), flush=True)
                    return 1 if burst.failures else 0
                if settings.sender_bursts and number >= settings.sender_bursts:
                    return 0
                # Bursts never overlap: a late burst pushes the next one back.
                next_start = max(next_start + settings.sender_interval, time.monotonic())
                await asyncio.sleep(next_start - time.monotonic())
        finally:
            probe.cancel()


async def until_stopped(settings: Settings, once: bool) -> int:
    """run(), ended cleanly by SIGTERM (docker stop) or SIGINT (Ctrl-C)."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        return await run(settings, once)
    except asyncio.CancelledError:
        log.info("sender: stopped")
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sender", description=__doc__)
    parser.add_argument("--once", action="store_true", help="send one burst, print its timeline, exit non-zero if any request failed")
    args = parser.parse_args()
    settings = load(Settings, "sender")
    logs.setup()
    if not args.once:
        metrics.serve(settings.metrics_port, settings.host)
    raise SystemExit(asyncio.run(until_stopped(settings, args.once)))


if __name__ == "__main__":
    main()
