from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from lab.settings import Port, PositiveSeconds, Seconds, ServiceSettings


class Settings(ServiceSettings):
    port: Port = 8001
    metrics_port: Port = 9001
    upstream_delay: Seconds = 1.0  # seconds /work waits when the caller asks for no delay
    upstream_jitter: Seconds = 0.0  # each wait is moved by up to ± this many seconds
    upstream_error_rate: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = 0.0
    upstream_max_delay: PositiveSeconds = 120.0  # the longest delay a caller may ask for

    @model_validator(mode="after")
    def _default_within_max(self) -> Settings:
        if self.upstream_delay > self.upstream_max_delay:
            raise ValueError(
                f"UPSTREAM_DELAY={self.upstream_delay:g} is above "
                f"UPSTREAM_MAX_DELAY={self.upstream_max_delay:g}: lower the delay or raise the max"
            )
        return self
