"""The culprit sampler in your own FastAPI service: copy receiver/culprits.py, add five lines.

    uvicorn examples.culprits_fastapi:app --port 8080    # from the repository's root
    curl localhost:8080/slow; curl localhost:8080/metrics | grep block

/slow blocks the loop with time.sleep, and the log says so: "event loop blocked 0.300 s by
examples.culprits_fastapi.slow (wait)". culprits.py imports only the standard library; the
counter here is prometheus-client's, but any object with .labels(...).inc() does.
"""

import asyncio
import threading
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from prometheus_client import Counter, generate_latest

from receiver.culprits import Culprits, LoopProbe  # your copy: from myapp.culprits import ...

BLOCKED = Counter("event_loop_block_seconds", "Seconds the event loop was blocked, by culprit.", ["culprit", "kind"])


@asynccontextmanager
async def lifespan(app: FastAPI):
    probe = LoopProbe()
    task = asyncio.create_task(probe.run())
    culprits = Culprits(probe, lambda name, kind: BLOCKED.labels(name, kind), 0.1, 20, own=("examples",))
    culprits.start(threading.get_ident())  # this thread runs the loop
    yield
    culprits.stop()
    task.cancel()


app = FastAPI(lifespan=lifespan)


@app.get("/slow")
async def slow() -> dict[str, str]:
    time.sleep(0.3)  # noqa: ASYNC251  deliberately blocking: what the sampler is there to catch
    return {"slept": "0.3 s"}


@app.get("/metrics", response_class=PlainTextResponse)
async def metrics() -> str:
    return generate_latest().decode()
