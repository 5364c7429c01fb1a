"""The bounded hand-off between coroutines that every request passes through."""

from __future__ import annotations

import asyncio

from fanfetch._engine._channel import Channel


async def test_items_come_out_in_order_and_none_once_ended_and_empty():
    channel: Channel[int] = Channel(10)
    for i in range(5):
        await channel.put(i)
    channel.end()
    assert [await channel.get() for _ in range(6)] == [0, 1, 2, 3, 4, None]


async def test_ending_with_drop_forgets_what_is_queued_and_frees_a_waiting_producer():
    channel: Channel[int] = Channel(2)
    await channel.put(1)
    producer = asyncio.create_task(channel.put(2))  # fills it: waits
    await asyncio.sleep(0)
    assert not producer.done()
    channel.end(drop=True)
    await producer
    assert await channel.get() is None


async def test_ending_wakes_every_waiting_consumer_with_none():
    channel: Channel[int] = Channel(2)
    consumers = [asyncio.create_task(channel.get()) for _ in range(3)]
    await asyncio.sleep(0)
    channel.end()
    assert await asyncio.gather(*consumers) == [None, None, None]


async def test_a_full_channel_holds_its_producer_until_it_is_half_empty():
    channel: Channel[int] = Channel(4)
    put = 0

    async def produce() -> None:
        nonlocal put
        for i in range(8):
            await channel.put(i)
            put += 1

    producer = asyncio.create_task(produce())
    await asyncio.sleep(0)
    assert put == 3  # the fourth put filled it and waits
    assert await channel.get() == 0
    await asyncio.sleep(0)
    assert put == 3  # three left: not yet half empty
    assert await channel.get() == 1
    for _ in range(3):
        await asyncio.sleep(0)
    assert put > 3  # two left: the producer goes on
    got = [await channel.get() for _ in range(6)]
    await producer
    assert got == [2, 3, 4, 5, 6, 7]


async def test_a_consumer_cancelled_as_it_is_woken_passes_the_item_on():
    channel: Channel[str] = Channel(4)
    first = asyncio.create_task(channel.get())
    second = asyncio.create_task(channel.get())
    await asyncio.sleep(0)  # both wait
    await channel.put("x")  # wakes the first...
    first.cancel()  # ...which is cancelled before it runs
    assert await asyncio.wait_for(second, 5) == "x"  # without the hand-on it waits for ever
    assert first.cancelled()
