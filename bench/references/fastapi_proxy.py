"""python -m bench.references.fastapi_proxy: the plain FastAPI + aiohttp proxy (not part of the lab).

What FastAPI's documentation leads to: one aiohttp.ClientSession opened in the lifespan,
uvicorn with the receiver's server settings (uvloop, httptools, no access log, no proxy
headers). It does the receiver's work and no more: the same upstream call, upstream's body
read and not parsed, the receiver's answer (its bytes, 502 if upstream did not answer 200).
No metrics, no logging; FastAPI's own options are left at their defaults.
"""

import os
from contextlib import asynccontextmanager

import aiohttp
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response

from lab import SEED_BODY

UPSTREAM_URL = os.environ.get("UPSTREAM_URL", "http://127.0.0.1:8001").rstrip("/")


@asynccontextmanager
async def lifespan(app: FastAPI):
    async with aiohttp.ClientSession() as session:
        app.state.session = session
        yield


app = FastAPI(lifespan=lifespan)


@app.get("/tasks/{name}")
async def task(name: str, request: Request) -> Response:
    async with request.app.state.session.get(f"{UPSTREAM_URL}/work") as response:
        await response.read()
        ok = response.status == 200
    return Response(SEED_BODY if ok else b'{"error": "upstream"}', status_code=200 if ok else 502,
                    media_type="application/json")


@app.get("/healthz")
async def healthz():
    return {"status": "ok"}


if __name__ == "__main__":
    uvicorn.run(app, host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ["PORT"]),
                loop="uvloop", http="httptools", access_log=False, proxy_headers=False, log_level="warning")
