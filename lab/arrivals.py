"""When an open-loop sender sends: the schedule the sender follows and the model replays.

Offsets are seconds after the run's start. `constant`: every 1/rate seconds (what k6's
constant-arrival-rate and wrk2 do). `poisson`: exponential gaps with mean 1/rate, from a
seeded generator, so a run and the model's replay of it see exactly the same arrivals.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from typing import Literal, get_args

Arrivals = Literal["constant", "poisson"]
ARRIVALS: tuple[Arrivals, ...] = get_args(Arrivals)


def offsets(rate: float, arrivals: Arrivals, seed: int = 1) -> Iterator[float]:
    """Send times in seconds from the start, without end: 0, then one gap after another."""
    if not rate > 0:
        raise ValueError(f"an open-loop rate is above 0 requests/s, got {rate!r}")
    if arrivals == "constant":
        return (i / rate for i in itertools.count())
    if arrivals == "poisson":
        return _poisson(rate, random.Random(seed))
    raise ValueError(f"arrivals must be one of {ARRIVALS}, got {arrivals!r}")


def _poisson(rate: float, rng: random.Random) -> Iterator[float]:
    t = 0.0
    while True:
        yield t
        t += rng.expovariate(rate)


def schedule(rate: float, duration: float, arrivals: Arrivals, seed: int = 1) -> list[float]:
    """Every send time in [0, duration)."""
    return list(itertools.takewhile(lambda t: t < duration, offsets(rate, arrivals, seed)))
