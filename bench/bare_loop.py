"""python -m bench.bare_loop URL SECONDS CONNECTIONS [uvloop|asyncio]: the plainest aiohttp load.

CONNECTIONS coroutines each loop `GET URL` as fast as answers come back, on one session, for
SECONDS; prints the answers per second. No schedule, no metrics, no percentiles: the
ceiling an aiohttp client reaches on this core, to measure the sender against. uvloop (the
default) is the loop the sender runs on; asyncio's own loop is measured beside it.
"""

import asyncio
import sys
import time

import aiohttp


async def main(url: str, seconds: float, connections: int) -> None:
    done = 0
    stop = time.perf_counter() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while time.perf_counter() < stop:
            async with session.get(url) as response:
                await response.read()
                done += response.status == 200

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(connections)))
        print(f"{done / (time.perf_counter() - started):.1f}")


if __name__ == "__main__":
    run = asyncio.run
    if (sys.argv[4] if len(sys.argv) > 4 else "uvloop") == "uvloop":
        import uvloop

        run = uvloop.run
    run(main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3])))
