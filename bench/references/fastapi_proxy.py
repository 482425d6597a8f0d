"""python -m bench.references.fastapi_proxy: the plain FastAPI + aiohttp proxy (not part of the lab).

What FastAPI's documentation leads to: one aiohttp.ClientSession opened in the lifespan, the
receiver's work and no more (bench/references/__init__.py), served as the receiver is
(fastapi_app.py).
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from fastapi import FastAPI, Request

from bench.references import POOL_LIMIT, work_url
from bench.references.fastapi_app import proxy_app, serve


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=POOL_LIMIT)) as session:
        app.state.session = session
        yield


async def upstream_ok(request: Request) -> bool:
    async with request.app.state.session.get(work_url(request.url.query)) as response:
        await response.read()
        return response.status == 200


app = proxy_app(lifespan, upstream_ok)

if __name__ == "__main__":
    serve(app)
