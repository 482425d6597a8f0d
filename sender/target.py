"""One receiver the sender sends to: its session, its /info, and what it was sent and answered."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
from hdrh.histogram import HdrHistogram

from sender.metrics import UNKNOWN, Children, children

log = logging.getLogger("sender")

# HDR histograms of latency in microseconds: 1 µs to 600 s, 3 significant digits.
HDR_LOWEST, HDR_HIGHEST, HDR_DIGITS = 1, 600_000_000, 3


def histogram() -> HdrHistogram:
    return HdrHistogram(HDR_LOWEST, HDR_HIGHEST, HDR_DIGITS)


def session_for(cap: int, timeout: float) -> aiohttp.ClientSession:
    """A session whose pool never holds back any of `cap` concurrent requests (+1 for /info)."""
    connector = aiohttp.TCPConnector(limit=cap + 1, limit_per_host=cap + 1)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout),
        cookie_jar=aiohttp.DummyCookieJar(),  # no cookie bookkeeping per answer
    )


async def fetch_info(
    session: aiohttp.ClientSession, receiver: str, timeout: float | None = None
) -> dict[str, Any] | None:
    """The receiver's GET /info, or None if it cannot be had."""
    try:
        # None: the session's own timeout, which is what get() uses when given none
        bound = session.timeout if timeout is None else aiohttp.ClientTimeout(total=timeout)
        async with session.get(f"{receiver}/info", timeout=bound) as response:
            return await response.json() if response.status == 200 else None
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        log.warning("could not read %s/info (%s)", receiver, exc or type(exc).__name__)
        return None


class Target:
    """A receiver, with everything counted about it during one run.

    `m` holds the metric children of the receiver's current mode; it changes only when a
    fresh /info says the mode changed. Counters are plain ints, changed on the event loop only.
    """

    def __init__(self, base: str, session: aiohttp.ClientSession, prefix: str = ""):
        self.base = base
        self.session = session
        self.prefix = prefix  # put before its log lines when there are several targets
        self.info: dict[str, Any] | None = None
        self.info_answered = False  # /info ever answered (the receiver could be reached)
        # Bound by the first set_info(), which comes before any request: no "unknown" series
        # appear for a receiver whose mode is known.
        self.m: Children = None  # type: ignore[assignment]
        self.sent = self.dropped = self.late = 0
        self.answers = 0  # HTTP answers, any status
        self.answered: dict[int | None, int] = {}  # status (None: no answer) -> count
        self.in_flight = self.peak_in_flight = 0
        self.hdr = histogram()  # latency of answered requests, whole run (µs)

    @property
    def mode(self) -> str:
        return self.m.mode if self.m is not None else UNKNOWN

    def set_info(self, info: dict[str, Any] | None, keep_known: bool = False) -> None:
        """A fresh /info. keep_known: a failed read keeps the mode known so far (a sync receiver
        under load answers /info late; its mode does not change without a restart)."""
        if info is None and keep_known and self.info is not None:
            return
        self.info = info
        self.info_answered |= info is not None
        self.m = children((info or {}).get("mode"))

    async def refresh_info(self, timeout: float | None = None, keep_known: bool = False) -> None:
        self.set_info(await fetch_info(self.session, self.base, timeout), keep_known)

    @property
    def reached(self) -> bool:
        """Did the receiver answer anything at all, /info or a request?"""
        return self.info_answered or self.answers > 0
