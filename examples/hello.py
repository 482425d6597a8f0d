"""The seed's hello world, against the lab's upstream instead of httpbin.org.

    python examples/hello.py            # upstream on http://127.0.0.1:8001
    UPSTREAM_URL=http://host:port python examples/hello.py
"""

import asyncio
import os

import aiohttp

URL = os.environ.get("UPSTREAM_URL", "http://127.0.0.1:8001").rstrip("/")


async def main() -> None:
    async with aiohttp.ClientSession() as session:
        resp = await session.get(f"{URL}/get")
        print(resp.status)
        print(await resp.text())


asyncio.run(main())
