"""Who blocked the loop: a watcher thread names the code the event loop is stuck in.

The event-loop probe (lab.metrics.LoopLag) says *that* the loop is blocked: it is overdue.
While it is overdue by more than LOOP_BLOCK_THRESHOLD, this thread samples the loop thread's
stack (sys._current_frames()) every SAMPLE_INTERVAL and charges the time to a culprit: the
innermost frame of the lab's own code and the library call below it, for instance
`receiver.clients.call_with_requests → requests.sessions.Session.get`. The seconds go to
receiver_event_loop_block_seconds_total{culprit, kind} (at most LOOP_CULPRITS_MAX names, the
rest as "other"), and each block, once over, gets one log line with the stack it was stuck in.

kind says whether the loop was waiting or computing: the thread also reads the loop thread's
own CPU clock (Linux lets one thread read another's), and a stretch in which that clock ran
at least a tenth as fast as the wall clock is `cpu` (RECEIVER_CPU_MS on the loop, a parser, a
hash), any other `wait` (a requests call: the thread sleeps in the kernel).

A healthy loop costs this thread one comparison per SAMPLE_INTERVAL, and the loop nothing.
(pyleak and BlockBuster raise on blocking calls in tests, asyncio's debug mode logs slow
callbacks: this does it live, on a dashboard, with no change to the code it watches.)

A drop-in for any asyncio service: this file imports only the standard library. Copy it,
and in the lifespan (docs/detectors.md; examples/culprits_fastapi.py):

    probe = LoopProbe()  # or any object with .due (monotonic time) and .interval
    task = asyncio.create_task(probe.run())
    culprits = Culprits(probe, lambda name, kind: counter.labels(name, kind), 0.1, 20, own=("myapp",))
    culprits.start(threading.get_ident())  # the thread that runs the loop
    ...; culprits.stop(); task.cancel()
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Protocol

log = logging.getLogger(__name__)  # receiver.culprits: under the receiver's logger

SAMPLE_INTERVAL = 0.05  # seconds between two looks at the probe (and stack samples while blocked)
OTHER = "other"  # the culprit of every block once LOOP_CULPRITS_MAX names are taken
WAIT, CPU = "wait", "cpu"  # the kinds of block: the loop thread sleeping in a call, or computing
# The share of a stretch's wall time the loop thread spent on a CPU from which it was computing.
# Asleep in a call, a thread uses next to none; computing, it uses a core, or on a busy
# machine the share of one it gets (a third, with twice as many busy threads as cores).
COMPUTING = 0.1
UNKNOWN = "unknown"  # the loop thread had no Python frame when sampled
OWN_PACKAGES = ("receiver", "lab")
# The receiver's code that runs inside a library's call: requests' deadline (an HTTPAdapter's
# connection class). A sample taken there blames the call the handler made, not the hook.
INSIDE_LIBRARIES = ("receiver.deadline",)
# The event loop's own frames: a stack that ends in one of these is the loop between callbacks
# (uvloop runs them in C), catching up after a block: nobody's code to blame.
LOOP_FRAMES = {"asyncio.runners.Runner.run", "asyncio.runners.run", "asyncio.base_events.BaseEventLoop.run_forever",
               "asyncio.base_events.BaseEventLoop.run_until_complete", "asyncio.base_events.BaseEventLoop._run_once",
               "selectors.EpollSelector.select"}


def where(frame: FrameType) -> str:
    """module.qualified_name of a frame's function: requests.sessions.Session.get."""
    return f"{frame.f_globals.get('__name__', '?')}.{frame.f_code.co_qualname}"


class Probe(Protocol):
    """What the watcher reads of the loop's probe: when it is next due, and how long it sleeps."""

    @property
    def due(self) -> float | None: ...  # time.monotonic() at which the loop should wake it; None: not started

    @property
    def interval(self) -> float: ...


class Count(Protocol):
    """A counter of seconds (prometheus_client's Counter, say)."""

    def inc(self, amount: float = 1) -> None: ...


class LoopProbe:
    """A probe for a service that has none: a task that sleeps `interval` and says when it is next due."""

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.due: float | None = None

    async def run(self) -> None:
        while True:
            self.due = time.monotonic() + self.interval
            await asyncio.sleep(self.interval)


def is_own(frame: FrameType, own: Sequence[str] = OWN_PACKAGES, inside: Sequence[str] = INSIDE_LIBRARIES) -> bool:
    module = str(frame.f_globals.get("__name__", ""))
    return module.split(".")[0] in own and module not in inside


def stack_of(frame: FrameType | None) -> list[FrameType]:
    """The frames from the innermost outwards."""
    frames = []
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    return frames


def innermost_own(frames: list[FrameType], own: Sequence[str] = OWN_PACKAGES,
                  inside: Sequence[str] = INSIDE_LIBRARIES) -> int | None:
    """The index of the innermost frame of one's own code (frames innermost first); None: there is none."""
    return next((i for i, frame in enumerate(frames) if is_own(frame, own, inside)), None)


def culprit(frames: list[FrameType], own: Sequence[str] = OWN_PACKAGES,
            inside: Sequence[str] = INSIDE_LIBRARIES) -> str | None:
    """The innermost frame of one's own code (own: its top-level packages), and the call below it.

    None: the loop is in its own machinery (LOOP_FRAMES), between callbacks.
    """
    i = innermost_own(frames, own, inside)
    if i is not None:
        return f"{where(frames[i])} → {where(frames[i - 1])}" if i > 0 else where(frames[i])
    if frames and where(frames[0]) in LOOP_FRAMES:
        return None
    return where(frames[0]) if frames else UNKNOWN


def describe(frames: list[FrameType], own: Sequence[str] = OWN_PACKAGES,
             inside: Sequence[str] = INSIDE_LIBRARIES) -> str:
    """The stack on one line, outermost first: one's own frames around the culprit, and every frame below them."""
    first = innermost_own(frames, own, inside)
    if first is None:
        shown = frames[:8]
    else:
        end = first
        while end + 1 < len(frames) and is_own(frames[end + 1], own, inside):
            end += 1
        shown = frames[: end + 1]
    return " > ".join(
        f"{f.f_globals.get('__name__', '?')}:{f.f_lineno} {f.f_code.co_qualname}" for f in reversed(shown)
    )


def cpu_clock(thread: int) -> Callable[[], float]:
    """The CPU time a thread of this process has used so far, in seconds (thread: its threading ident)."""
    clock = time.pthread_getcpuclockid(thread)
    return lambda: time.clock_gettime(clock)


def kind_of(cpu: float, wall: float) -> str:
    """What the loop thread did over a stretch of wall seconds in which it used cpu seconds."""
    return CPU if cpu >= COMPUTING * wall else WAIT


class Culprits:
    """The watcher thread and the counter it writes."""

    def __init__(self, probe: Probe, seconds: Callable[[str, str], Count], threshold: float, max_culprits: int,
                 own: Sequence[str] = OWN_PACKAGES, inside: Sequence[str] = INSIDE_LIBRARIES):
        self.probe = probe
        self.seconds = seconds  # a culprit's name and kind -> its counter
        self.threshold = threshold
        self.max_culprits = max_culprits
        self.own, self.inside = tuple(own), tuple(inside)  # one's own top-level packages; modules of them not one's own
        self._named: dict[str, dict[str, Count]] = {}  # name -> kind -> counter
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, loop_thread: int) -> None:
        """Watch the loop running on the thread with this ident (threading.get_ident() there)."""
        self._thread = threading.Thread(target=self._run, args=(loop_thread,), name="loop-culprits", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def charge(self, name: str, seconds: float, kind: str = WAIT) -> str:
        """Add seconds to a culprit's count of this kind (OTHER once max_culprits names are taken); the name used."""
        if name not in self._named and len(self._named) >= self.max_culprits:
            name = OTHER
        kinds = self._named.setdefault(name, {})
        if kind not in kinds:
            kinds[kind] = self.seconds(name, kind)
        kinds[kind].inc(seconds)
        return name

    def _run(self, loop_thread: int) -> None:
        episode: float | None = None  # the probe's due time of the block being charged
        block = Block()
        cpu = cpu_clock(loop_thread)
        looked, used = time.monotonic(), cpu()  # the last look: the wall clock, the loop thread's CPU clock
        while not self._stop.wait(SAMPLE_INTERVAL):
            now, spent = time.monotonic(), cpu()
            kind, looked, used = kind_of(spent - used, now - looked), now, spent
            due = self.probe.due
            if due is None:  # the probe has not run yet (once it has, it always has a due time)
                continue
            if episode is not None and due != episode:
                # The loop woke the probe, which set its next due time PROBE_INTERVAL after it woke.
                total = max(block.charged, due - self.probe.interval - episode)
                main = block.main()
                if main is not None:  # the rest of the block (the loop catching up) goes to its main culprit
                    blamed, blamed_kind, frames = main
                    self.charge(blamed, total - block.charged, blamed_kind)
                    log.warning("event loop blocked %.3f s by %s (%s); stack: %s", total, blamed, blamed_kind,
                                describe(frames, self.own, self.inside))
                episode, block = None, Block()
            overdue = now - due
            if overdue <= self.threshold:
                continue
            sampled = stack_of(sys._current_frames().get(loop_thread))
            name = culprit(sampled, self.own, self.inside)
            episode = due
            if name is None:  # between callbacks: charged, with what follows, to the block's main culprit at its end
                continue
            block.add(self.charge(name, overdue - block.charged, kind), overdue, kind, sampled)


class Block:
    """One block of the loop as the watcher samples it: the seconds charged to each culprit so far.

    Each sample charges the time since the last one to the frame the loop is in at that moment,
    as waiting or computing by what the loop thread's CPU clock did over that stretch. A long
    block holds more than its cause: as a blocking call returns, the loop computes a little
    (a response sent, the next request read), and a sample may land there. The block is the
    culprit's that holds the most of it, of the kind that holds the most of that: its log line
    names the two, with the stack the culprit was last sampled in, and the rest of the block
    (the loop catching up) is charged to them.
    """

    def __init__(self) -> None:
        self.charged = 0.0  # seconds of the block charged so far
        self._seconds: dict[str, dict[str, float]] = {}  # culprit -> kind -> seconds of this block
        self._frames: dict[str, list[FrameType]] = {}  # culprit -> the stack it was last sampled in

    def add(self, name: str, overdue: float, kind: str, frames: list[FrameType]) -> None:
        """A sample: the block overdue by this much so far, the seconds since the last one charged to name."""
        kinds = self._seconds.setdefault(name, {})
        kinds[kind] = kinds.get(kind, 0.0) + overdue - self.charged
        self._frames[name] = frames
        self.charged = overdue

    def main(self) -> tuple[str, str, list[FrameType]] | None:
        """The culprit that holds the most of the block, its main kind and stack; None: nobody's yet."""
        if not self._seconds:
            return None
        name = max(self._seconds, key=lambda culprit: sum(self._seconds[culprit].values()))
        kinds = self._seconds[name]
        return name, max(kinds, key=kinds.__getitem__), self._frames[name]
