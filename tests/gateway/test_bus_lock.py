"""The RS-485 line's lock: healthy meters first, FIFO within a priority, cancellation-safe."""

from __future__ import annotations

import asyncio

import pytest

from gateway.scan import parse_units
from gateway.transport import PriorityLock


async def test_lower_priority_number_goes_first_fifo_within() -> None:
    lock = PriorityLock()
    order: list[str] = []

    async def worker(name: str, priority: int) -> None:
        async with lock.hold(priority):
            order.append(name)
            await asyncio.sleep(0.01)

    await lock.acquire()
    tasks = [
        asyncio.create_task(worker("failing-1", 1)),
        asyncio.create_task(worker("healthy-1", 0)),
        asyncio.create_task(worker("failing-2", 1)),
        asyncio.create_task(worker("healthy-2", 0)),
    ]
    await asyncio.sleep(0.01)  # all four are queued
    lock.release()
    await asyncio.gather(*tasks)
    assert order == ["healthy-1", "healthy-2", "failing-1", "failing-2"]
    assert not lock.locked()


async def test_cancelled_waiter_does_not_keep_the_lock() -> None:
    lock = PriorityLock()
    await lock.acquire()
    waiter = asyncio.create_task(lock.acquire(0))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    lock.release()
    assert not lock.locked()
    await asyncio.wait_for(lock.acquire(), 0.1)


async def test_waiter_cancelled_after_being_granted_passes_the_lock_on() -> None:
    lock = PriorityLock()
    await lock.acquire()
    first = asyncio.create_task(lock.acquire(0))
    second = asyncio.create_task(lock.acquire(0))
    await asyncio.sleep(0)
    lock.release()  # grants `first`, which is cancelled before it runs
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, 0.1)
    assert lock.locked()
    assert lock.has_waiters_before(5) is False
    lock.release()
    with pytest.raises(RuntimeError):
        lock.release()


def test_unit_ranges_for_scan() -> None:
    assert parse_units("1-3,7, 5-6,2") == [1, 2, 3, 7, 5, 6]
    assert parse_units("247") == [247]
    for bad in ("0", "1-248", "5-3", "x", "", "1-a"):
        with pytest.raises(ValueError):
            parse_units(bad)
