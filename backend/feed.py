"""The live event feed: every event the indexer applies, to every subscriber, once.

    feed = open_feed(redis_url, channel_prefix)       # RedisFeed, or InProcessFeed when redis_url is None
    await feed.publish(records)                        # the indexer, after its database commit
    async with feed.subscribe() as events:             # the API's /ws, a test, a bench
        async for event in events:                     # dicts: EventRecord.to_json()
            ...

An event is published by the one indexer that applied it (the apply-once gate decides which), right after
the database transaction that recorded it commits, so a subscriber sees it once. With Redis, events go
through one pub/sub channel, ``<prefix>:events``, and every backend instance's subscribers receive every
instance's events; without Redis the feed stays inside the process. Each event carries its ``id`` (the
``chain_events`` row): a client that disconnects resumes from the database (``events_after(id)``) and
then follows the feed, skipping ids it has already seen — this is how ``/ws`` offers "no gap".

A subscriber that does not keep up (``max_queue`` events waiting) is cut off rather than slowing the
indexer: its iteration ends with :class:`FeedOverflow`, and it resumes from the database like a
reconnecting client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

from backend.storage.events import EventRecord

__all__ = ["Feed", "FeedOverflow", "InProcessFeed", "RedisFeed", "Subscription", "open_feed"]

log = logging.getLogger(__name__)

_CLOSED = object()


class FeedOverflow(Exception):
    """The subscriber fell ``max_queue`` events behind and was cut off; resume from the database."""


class Subscription:
    """An async iterator of event dicts (ids increasing)."""

    def __init__(self, max_queue: int) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=max_queue + 1)
        self.max_queue = max_queue
        self.overflowed = False

    def _offer(self, event: dict[str, Any]) -> None:
        if self.overflowed:
            return
        if self._queue.qsize() >= self.max_queue:
            self.overflowed = True
            self._queue.put_nowait(_CLOSED)
            return
        self._queue.put_nowait(event)

    def _close(self) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(_CLOSED)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> dict[str, Any]:
        item = await self._queue.get()
        if item is _CLOSED:
            if self.overflowed:
                raise FeedOverflow(f"subscriber fell {self.max_queue} events behind")
            raise StopAsyncIteration
        event: dict[str, Any] = item
        return event


class Feed(Protocol):
    async def publish(self, records: Sequence[EventRecord]) -> None: ...

    def subscribe(self) -> contextlib.AbstractAsyncContextManager[Subscription]: ...

    async def close(self) -> None: ...


class InProcessFeed:
    """Fan-out inside one process (no Redis configured)."""

    def __init__(self, *, max_queue: int = 10_000) -> None:
        self.max_queue = max_queue
        self._subscribers: set[Subscription] = set()
        self.published = 0

    async def publish(self, records: Sequence[EventRecord]) -> None:
        for record in records:
            self._deliver(record.to_json())
            self.published += 1

    def _deliver(self, event: dict[str, Any]) -> None:
        for sub in list(self._subscribers):
            sub._offer(event)
            if sub.overflowed:
                self._subscribers.discard(sub)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        sub = Subscription(self.max_queue)
        self._subscribers.add(sub)
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    async def close(self) -> None:
        for sub in self._subscribers:
            sub._close()
        self._subscribers.clear()


class RedisFeed(InProcessFeed):
    """Fan-out between backend instances through Redis pub/sub (channel ``<prefix>:events``): publish goes
    to Redis only; one listener task per process hands what Redis delivers to the local subscribers."""

    def __init__(self, url: str, prefix: str, *, max_queue: int = 10_000) -> None:
        super().__init__(max_queue=max_queue)
        import redis.asyncio as redis

        self.channel = f"{prefix}:events"
        self._redis = redis.from_url(url)
        self._listener: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def publish(self, records: Sequence[EventRecord]) -> None:
        from redis.exceptions import RedisError

        for record in records:
            try:
                await self._redis.publish(self.channel, json.dumps(record.to_json(), separators=(",", ":")))
            except RedisError as exc:  # the event is in the database; live subscribers will resume from it
                log.warning("feed: publishing event %d to Redis failed: %s", record.id, exc)
                continue
            self.published += 1

    async def _listen(self) -> None:
        from redis.exceptions import RedisError

        delay = 0.5
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    self._ready.set()
                    delay = 0.5
                    async for message in pubsub.listen():
                        if message.get("type") != "message":
                            continue
                        try:
                            event = json.loads(message["data"])
                        except (ValueError, TypeError):
                            log.warning("feed: ignoring a malformed message on %s", self.channel)
                            continue
                        self._deliver(event)
            except RedisError as exc:
                self._ready.clear()
                log.warning("feed: Redis subscription lost (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="feed-redis-listener")
        await asyncio.wait_for(self._ready.wait(), 10)
        async with super().subscribe() as sub:
            yield sub

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await super().close()
        await self._redis.aclose()


def open_feed(redis_url: str | None, prefix: str = "gridtokenx", *, max_queue: int = 10_000) -> InProcessFeed:
    """The Redis feed when ``redis_url`` is set, else the in-process one."""
    if redis_url:
        return RedisFeed(redis_url, prefix, max_queue=max_queue)
    return InProcessFeed(max_queue=max_queue)
