"""python -m bench.references.fastapi_httpx_proxy: the plain FastAPI + httpx proxy (not part of the lab).

bench/references/fastapi_proxy.py with httpx.AsyncClient for aiohttp's session: one client
opened in the lifespan, the same upstream call, body and answer, the same server settings.
"""

import os
from contextlib import asynccontextmanager

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response

from lab import SEED_BODY

UPSTREAM_URL = os.environ.get("UPSTREAM_URL", "http://127.0.0.1:8001").rstrip("/")


@asynccontextmanager
async def lifespan(app: FastAPI):
    async with httpx.AsyncClient() as client:
        app.state.client = client
        yield


app = FastAPI(lifespan=lifespan)


@app.get("/tasks/{name}")
async def task(name: str, request: Request) -> Response:
    response = await request.app.state.client.get(f"{UPSTREAM_URL}/work")
    ok = response.status_code == 200
    return Response(SEED_BODY if ok else b'{"error": "upstream"}', status_code=200 if ok else 502,
                    media_type="application/json")


@app.get("/healthz")
async def healthz():
    return {"status": "ok"}


if __name__ == "__main__":
    uvicorn.run(app, host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ["PORT"]),
                loop="uvloop", http="httptools", access_log=False, proxy_headers=False, log_level="warning")
