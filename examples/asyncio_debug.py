"""asyncio's debug mode under FastAPI: what it names when a handler blocks the loop.

    python examples/asyncio_debug.py --port 8080 [--loop uvloop|asyncio] [--in-lifespan]
    curl localhost:8080/slow

/slow blocks the loop for 0.3 s. asyncio's debug mode logs every callback that holds the
loop longer than slow_callback_duration (0.1 s by default): "Executing <Task ...
coro=<RequestResponseCycle.run_asgi() ...> took 0.301 seconds". Under uvicorn each request
is one task, so the line names uvicorn's request cycle, not the handler nor the blocking
call. And on Python 3.11 PYTHONASYNCIODEBUG=1 is not enough: uvicorn starts its loop with
debug=False, so the debug mode has to be turned on in the lifespan (--in-lifespan).
tests/test_detectors.py runs this file and asserts all of that.
"""

import argparse
import asyncio
import time
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, default=8080)
parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
parser.add_argument("--in-lifespan", action="store_true", help="loop.set_debug(True) in the lifespan")
args = parser.parse_args()


@asynccontextmanager
async def lifespan(app: FastAPI):
    if args.in_lifespan:
        loop = asyncio.get_running_loop()
        loop.set_debug(True)
        loop.slow_callback_duration = 0.1  # asyncio's default, named
    yield


app = FastAPI(lifespan=lifespan)


def blocking_call() -> None:
    time.sleep(0.3)  # deliberately blocking, inside async def below


@app.get("/slow")
async def slow() -> dict[str, float]:
    blocking_call()
    return {"slept": 0.3}


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


uvicorn.run(app, host="127.0.0.1", port=args.port, loop=args.loop, log_level="warning")
