"""Typed settings, parsed once at start from the environment.

Every service subclasses `ServiceSettings`; variables are the field names in upper case
(`PORT`, `RECEIVER_MODE`, ...). `load()` turns a bad value into one line on stderr that
names the variable, the value and what is allowed, and exits with status 2 before the
service binds any port.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any, Literal, TypeVar, get_args

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

# The longest delay or timeout any setting accepts, in seconds (lab.metrics' buckets reach past it).
MAX_SECONDS = 300.0
Port = Annotated[int, Field(ge=1, le=65535)]
# Durations in seconds: finite, not negative, and within the histograms' buckets.
Seconds = Annotated[float, Field(ge=0, le=MAX_SECONDS, allow_inf_nan=False)]
PositiveSeconds = Annotated[float, Field(gt=0, le=MAX_SECONDS, allow_inf_nan=False)]

EXIT_BAD_CONFIG = 2

LogLevel = Literal["debug", "info", "warning", "error"]
LOG_LEVELS: tuple[str, ...] = get_args(LogLevel)


class ServiceSettings(BaseSettings):
    # env_ignore_empty: a variable set to "" (as compose passes an unset knob) means "use the default".
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True, env_ignore_empty=True)

    # The address to listen on: an IP address or a host name (compose: 0.0.0.0).
    host: Annotated[str, Field(pattern=r"^[A-Za-z0-9.:-]{1,253}$")] = "127.0.0.1"
    metrics_port: Port
    # info: the seed's per-request lines ("Received task1 Request!!"), the lab's lesson;
    # warning silences them (the benchmark's quiet services).
    log_level: LogLevel = "info"

    @field_validator("log_level", mode="before")
    @classmethod
    def _any_case(cls, value: Any) -> Any:
        # INFO and Info mean info; anything else stays as given, so the error quotes it.
        lowered = value.lower() if isinstance(value, str) else value
        return lowered if lowered in LOG_LEVELS else value

    @model_validator(mode="after")
    def _ports_differ(self) -> ServiceSettings:
        port = getattr(self, "port", None)
        if port is not None and port == self.metrics_port:
            raise ValueError(
                f"METRICS_PORT={self.metrics_port} is the same as PORT: "
                "the metrics server needs a port of its own"
            )
        return self


S = TypeVar("S", bound=BaseSettings)


def describe(error: ErrorDetails) -> str:
    """One pydantic error as `VARIABLE='value': what is allowed`."""
    if not error["loc"]:  # a check across fields: its message names the variables
        return error["msg"].removeprefix("Value error, ")
    variable = str(error["loc"][0]).upper()
    return f"{variable}={error['input']!r}: {error['msg']}"


def load(cls: type[S], service: str) -> S:
    """Parse `cls` from the environment, or exit with one line saying what is wrong."""
    try:
        return cls()
    except ValidationError as exc:
        problems = "; ".join(describe(e) for e in exc.errors())
        print(f"{service}: bad configuration: {problems}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_CONFIG) from None
