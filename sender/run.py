"""The sender's runs: bursts (SENDER_RATE=0) or open loop, to every target in RECEIVER_URL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import signal
import time
from pathlib import Path

from sender import report
from sender.burst import Burst, Prediction, predict, run_burst
from sender.metrics import BURST_SIZE, BURSTS, BURSTS_FAILED, LOOP_LAG, MAKESPAN, PREDICTED, UNKNOWN, Rates, publish
from sender.open_loop import DRAIN, OPEN_LOOP_NAME, WINDOW, OpenLoop, Plan, RateTarget
from sender.settings import Settings
from sender.target import Target, session_for

log = logging.getLogger("sender")


class Stop:
    """The first SIGTERM or SIGINT: send nothing more, give what is in flight DRAIN seconds,
    then the summary and exit 0. The second: stop at once."""

    def __init__(self, task: asyncio.Task):
        self.requested = asyncio.Event()
        self._task = task

    def __call__(self) -> None:
        if self.requested.is_set():
            self._task.cancel()
            return
        log.info("sender: stopping: nothing more is sent; what is in flight gets %gs", DRAIN)
        self.requested.set()


async def finish(work: asyncio.Future, stop: asyncio.Event) -> bool:
    """Wait for work; if a stop comes first, for DRAIN seconds more. False: cut (cancelled)."""
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if not work.done():
        await asyncio.wait({work}, timeout=DRAIN)
    if work.done():
        return True
    work.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await work
    return False


async def stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep for seconds, or less if a stop comes: True if it did."""
    try:
        await asyncio.wait_for(stop.wait(), max(0.0, seconds))
    except TimeoutError:
        return stop.is_set()
    return True


def prefixes(bases: list[str]) -> list[str]:
    """What goes before a target's per-request log lines: nothing when there is one target."""
    return [""] * len(bases) if len(bases) == 1 else [f"[{base}] " for base in bases]


async def run_bursts(settings: Settings, once: bool, json_path: Path | None, stop: asyncio.Event) -> int:
    n, delay, bases = settings.sender_concurrency, settings.sender_delay, settings.receiver_bases
    several = len(bases) > 1
    async with contextlib.AsyncExitStack() as stack:
        # One session per target, limit n (+1 for /info): the pool never holds a burst back.
        targets = [
            Target(base, await stack.enter_async_context(session_for(n, settings.sender_timeout)), prefix)
            for base, prefix in zip(bases, prefixes(bases))
        ]
        rates = Rates()
        ticker: asyncio.Task | None = None
        try:
            number, next_start = 0, time.monotonic()
            while True:
                number += 1
                await asyncio.gather(*(t.refresh_info() for t in targets))
                if ticker is None:
                    rates.publish([t.mode for t in targets], n / settings.sender_interval, first=True)
                    ticker = asyncio.create_task(tick_rates(rates, targets, n / settings.sender_interval))
                predictions = [predict(t.info, n, delay) for t in targets]
                start = time.perf_counter()  # every target's burst starts at this same moment
                sending = asyncio.gather(*(
                    run_burst(t.session, t.base, n, delay, mode=t.mode, start=start, prefix=t.prefix)
                    for t in targets
                ))
                if not await finish(sending, stop):
                    log.info("sender: stopped: burst %d cut after %gs more with requests unanswered", number, DRAIN)
                    return 0
                bursts = sending.result()
                rounds = list(zip(targets, bursts, predictions))
                for t, burst, prediction in rounds:
                    BURSTS.labels(t.mode).inc()
                    log.info(report.summary(number, burst, t.mode, prediction, t.base if several else ""))
                publish_bursts(rounds, n)
                if once:
                    for t, burst, _ in rounds:
                        print(f"{t.base}\n{report.timeline(burst)}" if several else report.timeline(burst), flush=True)
                    if json_path is not None:
                        write_json(json_path, report.burst_json(rounds, n, delay))
                    return 1 if any(burst.failures for burst in bursts) else 0
                if settings.sender_bursts and number >= settings.sender_bursts:
                    return 0
                # Bursts never overlap: a late burst pushes the next one back.
                next_start = max(next_start + settings.sender_interval, time.monotonic())
                if await stopped_within(stop, next_start - time.monotonic()):
                    log.info("sender: stopped after %d burst(s)", number)
                    return 0
        finally:
            if ticker is not None:
                ticker.cancel()


def publish_bursts(rounds: list[tuple[Target, Burst, Prediction | None]], n: int) -> None:
    """The bursts' makespans and predictions, per mode. A burst that did not reach its receiver
    (a request without an answer, or a receiver whose mode is unknown: restarting) has no
    makespan: it counts as failed, and its mode shows no makespan until one reaches it."""
    reached = []
    for t, b, p in rounds:
        if t.mode == UNKNOWN or b.unanswered:
            BURSTS_FAILED.labels(t.mode).inc()
        else:
            reached.append((t, b, p))
    modes = {t.mode for t, _, _ in reached}
    publish(BURST_SIZE, {mode: n for mode in modes})
    publish(MAKESPAN, {m: max(b.makespan for t, b, _ in reached if t.mode == m) for m in modes})
    publish(PREDICTED, {m: max((p.makespan if p else math.nan) for t, _, p in reached if t.mode == m) for m in modes})


async def tick_rates(rates: Rates, targets: list[Target], offered_each: float) -> None:
    while True:
        await asyncio.sleep(WINDOW)
        rates.publish([t.mode for t in targets], offered_each)


async def run_rate(settings: Settings, once: bool, json_path: Path | None, stop: asyncio.Event) -> int:
    plan = Plan.of(settings)
    bases = settings.receiver_bases
    async with contextlib.AsyncExitStack() as stack:
        targets = [
            RateTarget(
                base,
                await stack.enter_async_context(session_for(plan.max_in_flight, plan.timeout)),
                prefix,
                settings.request_url(base, OPEN_LOOP_NAME),
                plan.max_in_flight,
            )
            for base, prefix in zip(bases, prefixes(bases))
        ]
        log.info(
            "sender: open loop, %g requests/s to each of %s (%s%s), %s, at most %d in flight each",
            plan.rate, ", ".join(t.url.human_repr() for t in targets), plan.arrivals,
            f", seed {plan.seed}" if plan.arrivals == "poisson" else "",
            f"for {plan.duration:g}s" if plan.duration else "until stopped", plan.max_in_flight,
        )
        run = OpenLoop(targets, plan, keep_records=json_path is not None, stop=stop)
        await run.run()
        seconds = run.elapsed()
        for t in targets:
            log.info(report.final_line(t, plan, seconds))
        if run.cut:
            log.info("sender: %d request(s) still in flight after %gs were cut unanswered (sent = answered + cut)",
                     run.cut, DRAIN)
        if once:
            print(report.table(targets, plan), flush=True)
            if json_path is not None:
                write_json(json_path, report.rate_json(targets, plan, run.started_at))
            unreached = [t.base for t in targets if not t.reached]
            if unreached:
                log.warning("sender: could not reach %s at all", ", ".join(unreached))
                return 1
        return 0


def write_json(path: Path, document: dict) -> None:
    path.write_text(json.dumps(document, separators=(",", ":")) + "\n")


async def run(settings: Settings, once: bool, json_path: Path | None = None, stop: asyncio.Event | None = None) -> int:
    probe = asyncio.create_task(LOOP_LAG.run())
    stop = stop or asyncio.Event()
    try:
        if settings.open_loop:
            return await run_rate(settings, once, json_path, stop)
        return await run_bursts(settings, once, json_path, stop)
    finally:
        probe.cancel()


async def until_stopped(settings: Settings, once: bool, json_path: Path | None) -> int:
    """run(), ended cleanly by SIGTERM (docker stop) or SIGINT (Ctrl-C): see Stop."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    stop = Stop(task)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    try:
        return await run(settings, once, json_path, stop.requested)
    except asyncio.CancelledError:
        log.info("sender: stopped")
        return 0
