"""Who blocked the loop: a watcher thread names the code the event loop is stuck in.

The event-loop probe (lab.metrics.LoopLag) says *that* the loop is blocked: it is overdue.
While it is overdue by more than LOOP_BLOCK_THRESHOLD, this thread samples the loop thread's
stack (sys._current_frames()) every SAMPLE_INTERVAL and charges the time to a culprit: the
innermost frame of the lab's own code and the library call below it, for instance
`receiver.clients.call_with_requests → requests.sessions.Session.get`. The seconds go to
receiver_event_loop_block_seconds_total{culprit} (at most LOOP_CULPRITS_MAX names, the rest
as "other"), and each block, once over, gets one log line with the stack it was stuck in.

A healthy loop costs this thread one comparison per SAMPLE_INTERVAL, and the loop nothing.
(pyleak and BlockBuster raise on blocking calls in tests, asyncio's debug mode logs slow
callbacks: this does it live, on a dashboard, with no change to the code it watches.)
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType

from prometheus_client import Counter

from lab.metrics import PROBE_INTERVAL, LoopLag

log = logging.getLogger("receiver")

SAMPLE_INTERVAL = 0.05  # seconds between two looks at the probe (and stack samples while blocked)
OTHER = "other"  # the culprit of every block once LOOP_CULPRITS_MAX names are taken
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


def is_own(frame: FrameType) -> bool:
    module = str(frame.f_globals.get("__name__", ""))
    return module.split(".")[0] in OWN_PACKAGES and module not in INSIDE_LIBRARIES


def stack_of(frame: FrameType | None) -> list[FrameType]:
    """The frames from the innermost outwards."""
    frames = []
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    return frames


def innermost_own(frames: list[FrameType]) -> int | None:
    """The index of the innermost frame of the lab's own code (frames innermost first); None: there is none."""
    return next((i for i, frame in enumerate(frames) if is_own(frame)), None)


def culprit(frames: list[FrameType]) -> str | None:
    """The innermost frame of the lab's own code, and the call below it (innermost first).

    None: the loop is in its own machinery (LOOP_FRAMES), between callbacks.
    """
    i = innermost_own(frames)
    if i is not None:
        return f"{where(frames[i])} → {where(frames[i - 1])}" if i > 0 else where(frames[i])
    if frames and where(frames[0]) in LOOP_FRAMES:
        return None
    return where(frames[0]) if frames else UNKNOWN


def describe(frames: list[FrameType]) -> str:
    """The stack on one line, outermost first: the lab's own frames around the culprit, and every frame below them."""
    own = innermost_own(frames)
    if own is None:
        shown = frames[:8]
    else:
        end = own
        while end + 1 < len(frames) and is_own(frames[end + 1]):
            end += 1
        shown = frames[: end + 1]
    return " > ".join(
        f"{f.f_globals.get('__name__', '?')}:{f.f_lineno} {f.f_code.co_qualname}" for f in reversed(shown)
    )


class Culprits:
    """The watcher thread and the counter it writes."""

    def __init__(self, probe: LoopLag, seconds: Callable[[str], Counter], threshold: float, max_culprits: int):
        self.probe = probe
        self.seconds = seconds  # a culprit's name -> its counter
        self.threshold = threshold
        self.max_culprits = max_culprits
        self._named: dict[str, Counter] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, loop_thread: int) -> None:
        """Watch the loop running on the thread with this ident (threading.get_ident() there)."""
        self._thread = threading.Thread(target=self._run, args=(loop_thread,), name="loop-culprits", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def charge(self, name: str, seconds: float) -> str:
        """Add seconds to a culprit's count (OTHER once max_culprits names are taken); the name used."""
        if name not in self._named:
            if len(self._named) >= self.max_culprits:
                name = OTHER
            if name not in self._named:
                self._named[name] = self.seconds(name)
        self._named[name].inc(seconds)
        return name

    def _run(self, loop_thread: int) -> None:
        episode: float | None = None  # the probe's due time of the block being charged
        charged = 0.0  # seconds of it charged so far
        last: str | None = None  # the culprit last named in this block
        frames: list[FrameType] = []
        while not self._stop.wait(SAMPLE_INTERVAL):
            due = self.probe.due
            if due is None:  # the probe has not run yet (once it has, it always has a due time)
                continue
            if episode is not None and due != episode:
                # The loop woke the probe, which set its next due time PROBE_INTERVAL after it woke.
                total = max(charged, due - PROBE_INTERVAL - episode)
                if last is not None:  # the rest of the block (the loop catching up) goes to its culprit
                    self.charge(last, total - charged)
                    log.warning("event loop blocked %.3f s by %s; stack: %s", total, last, describe(frames))
                episode, charged, last = None, 0.0, None
            overdue = time.monotonic() - due
            if overdue <= self.threshold:
                continue
            sampled = stack_of(sys._current_frames().get(loop_thread))
            name = culprit(sampled)
            if name is None:  # between callbacks: charged, with what follows, to the block's culprit at its end
                episode = due
                continue
            frames, last = sampled, self.charge(name, overdue - charged)
            episode, charged = due, overdue
