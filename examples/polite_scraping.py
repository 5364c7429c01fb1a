"""Polite scraping: at most 4 requests in flight and 50 a second per host, retries on.

Run: python examples/polite_scraping.py
"""

import asyncio

import fanfetch


async def main() -> None:
    with fanfetch.MockAPI(latency_ms=10, error_rate=0.05, seed=1) as api:
        urls = [f"{api.url}/items/{i}" for i in range(200)]
        statuses: dict[int, int] = {}
        async for result in fanfetch.stream(urls, per_host=4, rate_per_host="50/s", retries=3):
            key = result.status or 0
            statuses[key] = statuses.get(key, 0) + 1
    print("statuses:", statuses)
    assert statuses.get(200, 0) >= 190, "retries recover the 5% of 500/503 answers"


asyncio.run(main())
