"""python -m bench.references.fastapi_proxy: the plain FastAPI + aiohttp proxy (not part of the lab).

What FastAPI's documentation leads to: one aiohttp.ClientSession opened in the lifespan, the
handler returns upstream's JSON as a dict, uvicorn serves it with the receiver's server
settings (uvloop, httptools, no access log, no proxy headers). No metrics, no logging; FastAPI's
own options (its built-in telemetry check, route order) are left at their defaults.
"""

import os
from contextlib import asynccontextmanager

import aiohttp
import uvicorn
from fastapi import FastAPI, Request

UPSTREAM_URL = os.environ.get("UPSTREAM_URL", "http://127.0.0.1:8001").rstrip("/")


@asynccontextmanager
async def lifespan(app: FastAPI):
    async with aiohttp.ClientSession() as session:
        app.state.session = session
        yield


app = FastAPI(lifespan=lifespan)


@app.get("/tasks/{name}")
async def task(name: str, request: Request):
    async with request.app.state.session.get(f"{UPSTREAM_URL}/work") as response:
        return await response.json()


@app.get("/healthz")
async def healthz():
    return {"status": "ok"}


if __name__ == "__main__":
    uvicorn.run(app, host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ["PORT"]),
                loop="uvloop", http="httptools", access_log=False, proxy_headers=False, log_level="warning")
