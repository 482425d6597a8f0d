"""Reference servers the benchmark measures against: not part of the lab, never in its images.

fastapi_proxy, fastapi_httpx_proxy and aiohttp_proxy are the smallest proxies a user would
write from each framework's documentation: GET /tasks/{name} calls UPSTREAM_URL + "/work" and
does the receiver's work and no more (upstream's body read, not parsed; ANSWERED, the
receiver's bytes, or FAILED with 502 if upstream did not answer 200), with no metrics and no
logs. The two FastAPI ones share their app and server (fastapi_app.py): only the client differs.
Each passes the request's query (its ?delay=) on to upstream, as the receiver does.

waits is no proxy: it only waits the request's ?delay= and answers, the floor under a burst
(bench/floors.py); waits_raw does the same with no HTTP library, the floor under that floor.
"""

import os

from lab import SEED_BODY

UPSTREAM_URL = os.environ.get("UPSTREAM_URL", "http://127.0.0.1:8001").rstrip("/")
ANSWERED = SEED_BODY  # the receiver's answer
FAILED = b'{"error": "upstream"}'
# The connections an aiohttp proxy's session holds at once (0: no limit). 100 is aiohttp's
# default; a burst of more than 100 needs 0 to compare with the receiver's L=0. (The httpx
# proxy keeps httpx's defaults: its pool's cost is what it measures.)
POOL_LIMIT = int(os.environ.get("REFERENCE_POOL_LIMIT", "100"))
# The connections a listening socket queues before it accepts them: uvicorn's default, so
# that aiohttp.web (128 by default) takes a burst of 1,000 as the receiver does, without
# refused SYNs that the client retries a second later.
BACKLOG = 2048


def work_url(query: str) -> str:
    """Upstream's /work with the request's query string (its ?delay=), as the receiver calls it."""
    return f"{UPSTREAM_URL}/work?{query}" if query else f"{UPSTREAM_URL}/work"
