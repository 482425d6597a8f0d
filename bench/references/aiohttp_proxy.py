"""python -m bench.references.aiohttp_proxy: the same proxy in aiohttp.web (not part of the lab).

What aiohttp's documentation leads to: one ClientSession made in a cleanup context, web.run_app
serving on the loop it picks by default (asyncio's), without an access log, with uvicorn's
listen backlog (bench/references/__init__.py). It does the
receiver's work and no more: the same upstream call, upstream's body read and not parsed, the
receiver's answer (its bytes, 502 if upstream did not answer 200). No metrics, no logging.
"""

import os

import aiohttp
from aiohttp import web

from bench.references import ANSWERED, BACKLOG, FAILED, POOL_LIMIT, work_url

SESSION = web.AppKey("session", aiohttp.ClientSession)


async def client_session(app: web.Application):
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=POOL_LIMIT)) as session:
        app[SESSION] = session
        yield


async def task(request: web.Request) -> web.Response:
    async with request.app[SESSION].get(work_url(request.query_string)) as response:
        await response.read()
        ok = response.status == 200
    return web.Response(body=ANSWERED if ok else FAILED, status=200 if ok else 502,
                        content_type="application/json")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


if __name__ == "__main__":
    app = web.Application()
    app.cleanup_ctx.append(client_session)
    app.router.add_get("/tasks/{name}", task)
    app.router.add_get("/healthz", healthz)
    host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ["PORT"])
    web.run_app(app, host=host, port=port, access_log=None, print=None, backlog=BACKLOG)
