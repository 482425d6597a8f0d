"""The sender's settings: every variable, its default and what it allows.

Bursts (SENDER_RATE=0, the default): every SENDER_INTERVAL seconds, SENDER_CONCURRENCY
requests at the same moment to every target. Open loop (SENDER_RATE>0): SENDER_RATE requests
per second to every target, on the schedule lab.arrivals draws, whatever the answers do.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AnyHttpUrl, Field, TypeAdapter, ValidationError, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import NoDecode

from lab.arrivals import Arrivals
from lab.settings import Port, PositiveSeconds, Seconds, ServiceSettings

# Open-loop runs may last a day (the compose lab runs until stopped: SENDER_DURATION=0).
MAX_DURATION = 86400.0
DurationSeconds = Annotated[float, Field(ge=0, le=MAX_DURATION, allow_inf_nan=False)]
MAX_RATE = 100000.0
URL = TypeAdapter(AnyHttpUrl)


class Settings(ServiceSettings):
    metrics_port: Port = 9002
    # One receiver, or several separated by commas: every one gets the same bursts or schedule.
    receiver_url: Annotated[tuple[AnyHttpUrl, ...], NoDecode] = (
        AnyHttpUrl("http://127.0.0.1:8000"),
    )
    sender_concurrency: Annotated[int, Field(ge=1, le=10000)] = 2  # N: requests per burst, per target
    sender_interval: PositiveSeconds = 5.0  # seconds between burst starts (never overlapping)
    sender_delay: Seconds | None = None  # ?delay= to ask for; unset: upstream's default
    sender_timeout: PositiveSeconds = 300.0  # per request, in seconds (total: connect, send, answer)
    sender_bursts: Annotated[int, Field(ge=0)] = 0  # stop after this many bursts; 0 = never
    # Open loop. SENDER_RATE: requests/s per target; 0 (default) = bursts, > 0 = open loop.
    sender_rate: Annotated[float, Field(ge=0, le=MAX_RATE, allow_inf_nan=False)] = 0.0
    sender_arrivals: Arrivals = "constant"  # constant: every 1/rate s; poisson: seeded exponential gaps
    sender_seed: int = 1  # the poisson schedule's seed: the same seed, the same schedule
    # Per target: a request due while this many are in flight is dropped (counted, never sent late).
    sender_max_in_flight: Annotated[int, Field(ge=1, le=100000)] = 1000
    sender_duration: DurationSeconds = 0.0  # seconds of open-loop sending; 0 = until stopped

    @field_validator("receiver_url", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        items = tuple(item.strip() for item in value.split(",") if item.strip())
        if not items:
            raise PydanticCustomError("urls", "one http(s) URL, or several separated by commas")
        if len(items) > 1:  # name the bad item; a single one gets pydantic's own message
            for item in items:
                try:
                    URL.validate_python(item)
                except ValidationError as exc:
                    raise PydanticCustomError(
                        "urls", "item {item} of the comma-separated list: {problem}",
                        {"item": repr(item), "problem": exc.errors()[0]["msg"]},
                    ) from None
        return items

    @property
    def receiver_bases(self) -> list[str]:
        """Every target's base URL, without the trailing slash."""
        return [str(url).rstrip("/") for url in self.receiver_url]

    @property
    def receiver_base(self) -> str:
        """The first target's base URL."""
        return self.receiver_bases[0]

    @property
    def open_loop(self) -> bool:
        return self.sender_rate > 0

    def request_url(self, base: str, name: str) -> str:
        return request_url(base, name, self.sender_delay)


def request_url(base: str, name: str, delay: float | None) -> str:
    """The URL one request GETs: the receiver's /tasks/{name}, with ?delay= if asked."""
    return f"{base}/tasks/{name}" + ("" if delay is None else f"?delay={delay!r}")  # repr: never rounded up
