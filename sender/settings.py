from __future__ import annotations

from typing import Annotated

from pydantic import AnyHttpUrl, Field

from lab.settings import Port, PositiveSeconds, Seconds, ServiceSettings


class Settings(ServiceSettings):
    metrics_port: Port = 9002
    receiver_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8000")
    sender_concurrency: Annotated[int, Field(ge=1, le=10000)] = 2  # N: requests per burst
    sender_interval: PositiveSeconds = 5.0  # seconds between burst starts (never overlapping)
    sender_delay: Seconds | None = None  # ?delay= to ask for; unset: upstream's default
    sender_timeout: PositiveSeconds = 300.0  # per request, in seconds
    sender_bursts: Annotated[int, Field(ge=0)] = 0  # stop after this many bursts; 0 = never

    @property
    def receiver_base(self) -> str:
        return str(self.receiver_url).rstrip("/")
