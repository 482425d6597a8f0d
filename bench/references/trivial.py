"""python -m bench.references.trivial: a trivial endpoint for load generators (not part of the lab).

aiohttp.web answering every GET (any path, so the sender's /tasks/taskK?delay=... too) with
the seed's body at once: no upstream, no metrics, no logs. It runs on uvloop: it must outrun
every load generator it measures, or the fastest two stop at its ceiling and their ratio says
nothing (on asyncio's loop they can: docs/performance.md, "Goals").
"""

import os

import uvloop
from aiohttp import web

BODY = b'{"res":{"message":"success"}}'


async def answer(request: web.Request) -> web.Response:
    return web.Response(body=BODY, content_type="application/json")


if __name__ == "__main__":
    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)  # /healthz included
    web.run_app(app, host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ["PORT"]), access_log=None,
                print=None, loop=uvloop.new_event_loop())
