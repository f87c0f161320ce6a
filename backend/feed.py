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

Besides the chain's events the feed carries **notices**: live-only messages that are not in the database's
event sequence and have no ``id`` — today ``reading_rejected`` from ingest (a reading quarantined, with its
gateway, meter, seq and reason). Only subscribers that ask for them (``subscribe(notices=True)``, the api's
``/ws``) get them; they are never replayed to a reconnecting client (the quarantine table keeps the record).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Protocol

from backend.storage.events import EventRecord

__all__ = [
    "NOTICE", "Feed", "FeedOverflow", "InProcessFeed", "RedisFeed", "RejectionNotices", "Subscription", "open_feed",
]

log = logging.getLogger(__name__)

_CLOSED = object()


class FeedOverflow(Exception):
    """The subscriber fell ``max_queue`` events behind and was cut off; resume from the database."""


NOTICE = "notice"  # the "type" of a notice dict; chain events have an "id" instead


class Subscription:
    """An async iterator of event dicts (ids increasing), and of notices when asked for."""

    def __init__(self, max_queue: int, *, notices: bool = False) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=max_queue + 1)
        self.max_queue = max_queue
        self.overflowed = False
        self.notices = notices

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

    async def publish_notices(self, notices: Sequence[dict[str, Any]]) -> None: ...

    def subscribe(self, *, notices: bool = False) -> contextlib.AbstractAsyncContextManager[Subscription]: ...

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

    async def publish_notices(self, notices: Sequence[dict[str, Any]]) -> None:
        """Live-only messages (``{"type": "notice", "kind": …}``) to the subscribers that asked for them."""
        for notice in notices:
            self._deliver({**notice, "type": NOTICE})

    def _deliver(self, event: dict[str, Any]) -> None:
        notice = event.get("type") == NOTICE
        for sub in list(self._subscribers):
            if notice and not sub.notices:
                continue
            sub._offer(event)
            if sub.overflowed:
                self._subscribers.discard(sub)

    @contextlib.asynccontextmanager
    async def subscribe(self, *, notices: bool = False) -> AsyncIterator[Subscription]:
        sub = Subscription(self.max_queue, notices=notices)
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

    async def publish_notices(self, notices: Sequence[dict[str, Any]]) -> None:
        from redis.exceptions import RedisError

        for notice in notices:
            try:
                await self._redis.publish(self.channel, json.dumps({**notice, "type": NOTICE}, separators=(",", ":")))
            except RedisError as exc:  # live-only: nobody resumes from a notice, the quarantine keeps the record
                log.warning("feed: publishing a %s notice to Redis failed: %s", notice.get("kind"), exc)
                return

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
    async def subscribe(self, *, notices: bool = False) -> AsyncIterator[Subscription]:
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="feed-redis-listener")
        await asyncio.wait_for(self._ready.wait(), 10)
        async with super().subscribe(notices=notices) as sub:
            yield sub

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await super().close()
        await self._redis.aclose()


class RejectionNotices:
    """Ingest's quarantined readings as ``reading_rejected`` notices on the feed, at most ``rate`` a second
    (a burst of ``burst``): a gateway flooding bad readings must not flood every live client. What the limit
    drops is counted (``dropped``); the quarantine table holds every rejection either way."""

    def __init__(self, feed: Feed, *, rate: float = 50.0, burst: float = 200.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.feed, self.rate, self.burst, self._clock = feed, rate, burst, clock
        self._tokens, self._at = burst, clock()
        self.sent = self.dropped = 0

    async def __call__(self, rows: Sequence[Any]) -> None:
        """``rows``: backend.storage QuarantineRows of readings (gateway_id, meter_id, seq, reason …)."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        allowed = min(len(rows), int(self._tokens))
        self._tokens -= allowed
        self.dropped += len(rows) - allowed
        if allowed:
            await self.feed.publish_notices([
                {"kind": "reading_rejected", "gateway_id": r.gateway_id, "meter_id": r.meter_id, "seq": r.seq,
                 "reason": r.reason, "received_ms": r.received_ms}
                for r in rows[:allowed]
            ])
            self.sent += allowed


def open_feed(redis_url: str | None, prefix: str = "gridtokenx", *, max_queue: int = 10_000) -> InProcessFeed:
    """The Redis feed when ``redis_url`` is set, else the in-process one."""
    if redis_url:
        return RedisFeed(redis_url, prefix, max_queue=max_queue)
    return InProcessFeed(max_queue=max_queue)
