"""A process taking from the shared limits, for the tests of limits held across processes.

    python tests/limit_worker.py tokens URL BUCKET RATE BURST SECONDS
        four sends' worth of waiters take from the shared rate `BUCKET` for SECONDS; prints a
        JSON list of the time each token was got
    python tests/limit_worker.py slots URL ENGINE LIMIT SECONDS
        three waiters lease the engine's slots (at most LIMIT held) for SECONDS, each holding
        one 5-30 ms and giving back what is idle; prints the [start, end] of each

Both print "ready" once loaded, then read the epoch time to start at from stdin, so that
processes slow to start on a busy machine still take at the same time.
    python tests/limit_worker.py hold URL ENGINE LIMIT TTL
        leases every slot with that TTL (renewed), prints "held", then sleeps until killed
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time

from outreach_core.adapters.store.db import create_db_engine
from outreach_core.services.sending.shared_limits import SharedBucket, SharedSlots


def ready() -> float:
    """Say so, then read when to start."""
    print("ready", flush=True)
    return float(sys.stdin.readline())


async def until(start: float) -> None:
    await asyncio.sleep(max(0.0, start - time.time()))


async def tokens(url: str, bucket: str, rate: float, burst: int, start: float, secs: float) -> list:
    limiter = SharedBucket(create_db_engine(url), bucket, rate, burst)
    got: list[float] = []
    await until(start)

    async def waiter() -> None:
        while time.time() < start + secs:
            await limiter.acquire()
            got.append(time.time())

    await asyncio.gather(*(waiter() for _ in range(4)))
    return [t for t in got if t < start + secs]


async def slots(url: str, engine: int, limit: int, start: float, secs: float) -> list:
    shared = SharedSlots(create_db_engine(url), engine, limit, holder=f"worker:{engine}")
    held: list[list[float]] = []
    await until(start)

    async def waiter() -> None:
        while time.time() < start + secs:
            async with shared:
                began = time.time()
                await asyncio.sleep(random.uniform(0.005, 0.03))
                held.append([began, time.time()])
            await shared.release_idle()

    await asyncio.gather(*(waiter() for _ in range(3)))
    await shared.close()
    return held


async def hold(url: str, engine: int, limit: int, ttl: float) -> None:
    shared = SharedSlots(create_db_engine(url), engine, limit, holder="doomed", ttl_s=ttl)
    for _ in range(limit):
        await shared.acquire()
    print("held", flush=True)
    await asyncio.sleep(3600)


def main(mode: str, *args: str) -> None:
    if mode == "tokens":
        url, bucket, rate, burst, secs = args
        got = asyncio.run(tokens(url, bucket, float(rate), int(burst), ready(), float(secs)))
        print(json.dumps(got))
    elif mode == "slots":
        url, engine, limit, secs = args
        held = asyncio.run(slots(url, int(engine), int(limit), ready(), float(secs)))
        print(json.dumps(held))
    else:
        url, engine, limit, ttl = args
        asyncio.run(hold(url, int(engine), int(limit), float(ttl)))


if __name__ == "__main__":
    main(*sys.argv[1:])
