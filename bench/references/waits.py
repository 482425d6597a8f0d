"""python -m bench.references.waits: a server that only waits (not part of the lab).

GET /tasks/{name}?delay=D waits D seconds on the loop and answers the receiver's bytes: no
upstream call, no framework beyond aiohttp.web, on uvloop as the receiver is. What a burst
against it takes beyond D is the load generator's and the kernel's share (connections
opened, requests sent and read), the floor under any server's burst (bench/floors.py).
"""

import asyncio
import os

import uvloop
from aiohttp import web

from bench.references import ANSWERED, BACKLOG


async def task(request: web.Request) -> web.Response:
    await asyncio.sleep(float(request.query.get("delay", "0")))
    return web.Response(body=ANSWERED, content_type="application/json")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


if __name__ == "__main__":
    app = web.Application()
    app.router.add_get("/tasks/{name}", task)
    app.router.add_get("/healthz", healthz)
    host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ["PORT"])
    web.run_app(app, host=host, port=port, access_log=None, print=None, backlog=BACKLOG, loop=uvloop.new_event_loop())
