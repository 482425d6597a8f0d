"""The FastAPI references' app and server: a lifespan that opens the client, a call that uses it.

uvicorn runs it with the receiver's server settings (uvloop, httptools, no access log, no
proxy headers); FastAPI's own options are left at their defaults.
"""

import os
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response

from bench.references import ANSWERED, FAILED


def proxy_app(lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
              upstream_ok: Callable[[Request], Awaitable[bool]]) -> FastAPI:
    """GET /tasks/{name}: upstream_ok(request) makes the call (True: upstream answered 200); GET /healthz."""
    app = FastAPI(lifespan=lifespan)

    @app.get("/tasks/{name}")
    async def task(name: str, request: Request) -> Response:
        ok = await upstream_ok(request)
        return Response(ANSWERED if ok else FAILED, status_code=200 if ok else 502, media_type="application/json")

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    return app


def serve(app: FastAPI) -> None:
    uvicorn.run(app, host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ["PORT"]),
                loop="uvloop", http="httptools", access_log=False, proxy_headers=False, log_level="warning")
