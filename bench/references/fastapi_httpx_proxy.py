"""python -m bench.references.fastapi_httpx_proxy: the plain FastAPI + httpx proxy (not part of the lab).

bench/references/fastapi_proxy.py with httpx.AsyncClient for aiohttp's session: one client
opened in the lifespan, the same upstream call, body, answer and server.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request

from bench.references import work_url
from bench.references.fastapi_app import proxy_app, serve


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with httpx.AsyncClient() as client:
        app.state.client = client
        yield


async def upstream_ok(request: Request) -> bool:
    response = await request.app.state.client.get(work_url(request.url.query))
    return response.status_code == 200


app = proxy_app(lifespan, upstream_ok)

if __name__ == "__main__":
    serve(app)
