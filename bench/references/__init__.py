"""Reference servers the benchmark measures against: not part of the lab, never in its images.

fastapi_proxy, fastapi_httpx_proxy and aiohttp_proxy are the smallest proxies a user would
write from each framework's documentation: GET /tasks/{name} calls UPSTREAM_URL + "/work" and
does the receiver's work and no more (upstream's body read, not parsed; ANSWERED, the
receiver's bytes, or FAILED with 502 if upstream did not answer 200), with no metrics and no
logs. The two FastAPI ones share their app and server (fastapi_app.py): only the client differs.
"""

import os

from lab import SEED_BODY

UPSTREAM_URL = os.environ.get("UPSTREAM_URL", "http://127.0.0.1:8001").rstrip("/")
ANSWERED = SEED_BODY  # the receiver's answer
FAILED = b'{"error": "upstream"}'
