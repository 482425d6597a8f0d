from __future__ import annotations

from typing import Annotated

from pydantic import AnyHttpUrl, Field

from lab.model import Mode
from lab.settings import Port, PositiveSeconds, ServiceSettings


class Settings(ServiceSettings):
    port: Port = 8000
    metrics_port: Port = 9000
    receiver_mode: Mode = "sync"
    upstream_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8001")
    receiver_threads: Annotated[int, Field(ge=1, le=1000)] = 40  # threaded mode's pool (T)
    receiver_pool_limit: Annotated[int, Field(ge=0, le=10000)] = 100  # aiohttp connector (L), 0 = none
    receiver_requests_pool: Annotated[int, Field(ge=1, le=10000)] = 10  # requests' pool_maxsize
    receiver_upstream_timeout: PositiveSeconds = 130.0  # every upstream call, in seconds
    # uvicorn's access line; off by default: "Send task1 response" already says it (at LOG_LEVEL=info)
    receiver_access_log: bool = False
    # The HTTP metrics (requests, duration, in flight) and the per-call upstream histogram.
    # false leaves them out, so the benchmark can measure what they cost; /metrics still
    # answers (receiver_info, the event-loop probe).
    receiver_metrics: bool = True

    @property
    def upstream_base(self) -> str:
        return str(self.upstream_url).rstrip("/")
