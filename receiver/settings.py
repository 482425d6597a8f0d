from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Annotated, Literal

import anyio
import anyio.to_thread
from pydantic import AnyHttpUrl, Field

from lab.model import Mode
from lab.settings import Port, PositiveSeconds, ServiceSettings

# uvicorn's keep-alive (its timeout_keep_alive, its default, named; gunicorn's `keepalive` for
# the workers): a connection idle this many seconds is closed. The model (models/simulate.py)
# counts on it to know when a request comes on a new connection, which costs a loop turn more.
# Whole seconds: uvicorn's Config and gunicorn's keepalive both take an int.
KEEP_ALIVE = 5

# The client libraries (receiver/clients.py, CALLS): the loop-friendly call of async and mixed,
# and the blocking call of sync, mixed, threaded and def. A sync client blocks the loop
# whatever its name: the mode decides where it runs, the library what each call costs.
AsyncClient = Literal["aiohttp", "httpx"]
SyncClient = Literal["requests", "httpx"]


@cache
def anyio_default_tokens() -> int:
    """anyio's default thread-pool size (FastAPI runs plain `def` endpoints in it), read from anyio itself."""
    async def read() -> int:
        return int(anyio.to_thread.current_default_thread_limiter().total_tokens)

    return anyio.run(read)


class Settings(ServiceSettings):
    port: Port = 8000
    metrics_port: Port = 9000
    receiver_mode: Mode = "sync"
    upstream_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8001")
    receiver_threads: Annotated[int, Field(ge=1, le=1000)] = 40  # threaded mode's pool (T)
    # def mode's pool: anyio's thread-pool tokens (K); unset: anyio's own default (40)
    receiver_threadpool_tokens: Annotated[int, Field(ge=1, le=1000)] | None = None
    receiver_pool_limit: Annotated[int, Field(ge=0, le=10000)] = 100  # aiohttp connector (L), 0 = none
    # requests' pool_maxsize; httpx.Client's max_keepalive_connections
    receiver_requests_pool: Annotated[int, Field(ge=1, le=10000)] = 10
    receiver_async_client: AsyncClient = "aiohttp"  # async, mixed: aiohttp, or httpx.AsyncClient (L connections)
    receiver_sync_client: SyncClient = "requests"  # sync, mixed, threaded, def: requests, or httpx.Client
    receiver_upstream_timeout: PositiveSeconds = 130.0  # every upstream call, in seconds
    # uvicorn's access line; off by default: "Send task1 response" already says it (at LOG_LEVEL=info)
    receiver_access_log: bool = False
    # Most GET /tasks requests a receiver process works on at once; one more is answered 503
    # at once (with Retry-After) instead of joining a queue without bound. 0: no limit.
    receiver_max_in_flight: Annotated[int, Field(ge=0, le=100_000)] = 0
    # c: milliseconds of pure-Python work (its thread's CPU time) each GET /tasks does after its
    # upstream call, where the mode runs its handler: on the loop or in the thread (receiver/cpu.py).
    receiver_cpu_ms: Annotated[float, Field(ge=0, le=10_000, allow_inf_nan=False)] = 0.0
    # P: that work in a pool of P processes instead (0: where the handler runs).
    receiver_cpu_processes: Annotated[int, Field(ge=0, le=64)] = 0
    # The HTTP metrics (requests, duration, in flight) and the per-call upstream histogram.
    # false leaves them out, so the benchmark can measure what they cost; /metrics still
    # answers (receiver_info, the event-loop probe).
    receiver_metrics: bool = True
    # A block of the event loop longer than this many seconds gets the loop's stack sampled,
    # and its time charged to the code it is stuck in (receiver/culprits.py). 0: off.
    loop_block_threshold: Annotated[float, Field(ge=0, le=60, allow_inf_nan=False)] = 0.1
    # Most culprits named in receiver_event_loop_block_seconds_total; any more count as "other".
    loop_culprits_max: Annotated[int, Field(ge=1, le=1000)] = 20
    # 1: uvicorn, one process, as the seed ran it. Above 1: gunicorn with that many uvicorn
    # workers (W), each its own event loop, and prometheus-client's multiprocess mode.
    receiver_workers: Annotated[int, Field(ge=1, le=64)] = 1
    # How connections reach the workers: shared (gunicorn's one listening socket, whichever
    # worker wakes first accepts) or reuseport (a socket per worker, the kernel hashes).
    receiver_accept: Literal["shared", "reuseport"] = "shared"
    # gunicorn recycles a worker after this many requests (0: never).
    receiver_max_requests: Annotated[int, Field(ge=0)] = 0
    # Where workers write their metrics (prometheus-client's variable; wiped at start), read
    # when the process starts: set it in the environment, not later. With RECEIVER_WORKERS > 1
    # and none set, the receiver makes a private one and removes it at exit.
    prometheus_multiproc_dir: Path | None = None

    def info(self) -> dict[str, object]:
        """The mode, the caps that shape it, and how it is served: /info and receiver_info."""
        return {
            "mode": self.receiver_mode,
            "threads": self.receiver_threads,
            "threadpool_tokens": self.threadpool_tokens,
            "pool_limit": self.receiver_pool_limit,
            "requests_pool": self.receiver_requests_pool,
            "async_client": self.receiver_async_client,
            "sync_client": self.receiver_sync_client,
            "upstream_url": self.upstream_base,
            "upstream_timeout": self.receiver_upstream_timeout,
            "server": self.server,
            "workers": self.receiver_workers,
            "accept": self.receiver_accept if self.receiver_workers > 1 else "one process",
            "cpu_ms": self.receiver_cpu_ms,
            "cpu_processes": self.receiver_cpu_processes,
        }

    def knobs(self) -> dict[str, object]:
        """What it logs and measures, not how it calls upstream: in /info, not in receiver_info's labels."""
        return {"log_level": self.log_level, "access_log": self.receiver_access_log, "metrics": self.receiver_metrics,
                "max_in_flight": self.receiver_max_in_flight, "loop_block_threshold": self.loop_block_threshold,
                "loop_culprits_max": self.loop_culprits_max}

    @property
    def threadpool_tokens(self) -> int:
        """K: the tokens of anyio's thread pool, as set or anyio's default."""
        return self.receiver_threadpool_tokens or anyio_default_tokens()

    @property
    def server(self) -> str:
        return "uvicorn" if self.receiver_workers == 1 else "gunicorn"

    @property
    def upstream_base(self) -> str:
        return str(self.upstream_url).rstrip("/")
