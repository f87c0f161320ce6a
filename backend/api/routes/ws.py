"""``/ws``: the indexer's events as they are applied, filtered by wallet or meter, resumable by event id.

``/ws?since=ID&wallet=W&meter=M``: first every stored event after ``since`` (from ``chain_events``), then
live ones from the feed. The feed is subscribed *before* the backlog is read, so nothing applied in
between is lost; events are sent in id order and each once. The feed only says what was applied; when
a live event's id is not the next one this client has seen (a burst, or a feed without the event's
wallets), the gap is filled from the database first. A client too slow to keep up is closed with code
4008 and the last id it was sent in the reason — it reconnects with ``since`` and loses nothing.

Each message is one event as the indexer recorded it (``EventRecord.to_json()``: ``id``, ``signature``,
``ix_index``, ``event_index``, ``slot``, ``block_time``, ``program``, ``kind``, ``version``, ``subject``,
``meter_id``, ``data``; the kinds are docs/backend.md's "Events"); ``{"type": "ready", "last_id": N}`` marks
the end of the backlog. After it, live **notices** may come between events: ``{"type": "notice", "kind":
"reading_rejected", "gateway_id", "meter_id", "seq", "reason", "received_ms"}`` when ingest quarantines a
reading (backend.feed). They have no id, are never part of a backlog and do not move ``since``; with
``meter`` only that meter's are sent, with ``wallet`` none (a notice names a meter, not a wallet).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any, Protocol

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect
from solders.pubkey import Pubkey

from backend.api.context import ApiContext
from backend.api.errors import ApiError
from backend.api.routes.common import meter_id
from backend.feed import NOTICE, FeedOverflow
from backend.storage import I64_MAX, events

router = APIRouter(tags=["live"])

BACKLOG_PAGE = 500
QUEUE_LIMIT = 1000
CLOSE_TOO_SLOW = 4008


class LiveFeed(Protocol):
    """backend.feed's ``Feed``: ``subscribe()`` is an async context manager yielding an async iterator of
    applied events (``EventRecord.to_json()`` dicts; ``wallets`` and ``meter_id`` let the api filter without
    a query). The iterator ends with ``FeedOverflow`` when this subscriber fell too far behind."""

    def subscribe(self, *, notices: bool = False) -> contextlib.AbstractAsyncContextManager[
            AsyncIterator[dict[str, Any]]]: ...


def _matches(event: dict[str, Any], wallet: str | None, meter: str | None) -> bool | None:
    """True/False, or None when the event does not say (then the database decides)."""
    if meter is not None and event.get("meter_id") != meter:
        return False
    if wallet is not None:
        wallets = event.get("wallets")
        if wallets is None:
            return None
        return wallet in wallets
    return True


@router.websocket("/ws")
async def live(websocket: WebSocket, since: int | None = Query(None, ge=0, le=I64_MAX),
               wallet: str | None = Query(None, max_length=64),
               meter: str | None = Query(None, max_length=16)) -> None:
    ctx: ApiContext = websocket.app.state.ctx
    if wallet is not None:
        try:
            Pubkey.from_string(wallet)
        except ValueError:
            await websocket.close(code=1008, reason="wallet is not base58 of 32 bytes")
            return
    if meter is not None:
        try:
            meter_id(meter)
        except ApiError as exc:
            await websocket.close(code=1008, reason=exc.message)
            return
    await websocket.accept()
    ctx.metrics.ws_clients.inc()
    try:
        if ctx.feed is None:
            await websocket.close(code=1011, reason="no live feed configured")
            return
        await _stream(websocket, ctx, since, wallet, meter)
    except WebSocketDisconnect:
        pass
    finally:
        ctx.metrics.ws_clients.dec()


async def _stream(websocket: WebSocket, ctx: ApiContext, since: int | None, wallet: str | None,
                  meter: str | None) -> None:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_LIMIT)
    overflow = asyncio.Event()

    async def pump(feed: AsyncIterator[dict[str, Any]]) -> None:
        try:
            async for event in feed:
                queue.put_nowait(event)
        except (asyncio.QueueFull, FeedOverflow):  # this client, or this process, fell behind: resume
            overflow.set()

    closed = asyncio.Event()

    async def read() -> None:  # clients send nothing we use; this notices them leave
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass
        closed.set()

    sent = 0

    async def send(event: dict[str, Any]) -> None:
        nonlocal sent
        await websocket.send_text(json.dumps({k: v for k, v in event.items() if k != "wallets"}))
        ctx.metrics.ws_events.inc()
        sent = int(event["id"])

    async def fill(upto: int | None) -> int:
        """Send stored events after ``seen`` (up to ``upto``); return the last id covered."""
        covered = seen
        while True:
            batch = await events.events_after(ctx.storage, covered, limit=BACKLOG_PAGE, wallet=wallet, meter_id=meter)
            for record in batch:
                if upto is not None and record.id > upto:
                    return upto
                await send(record.to_json())
                covered = record.id
            if len(batch) < BACKLOG_PAGE:
                return covered if upto is None else max(covered, upto)

    async with ctx.feed.subscribe(notices=True) as feed:
        pumping = asyncio.create_task(pump(feed))
        reading = asyncio.create_task(read())
        try:
            seen = since if since is not None else await events.last_event_id(ctx.storage)
            seen = await fill(None)
            await websocket.send_text(json.dumps({"type": "ready", "last_id": seen}))
            while True:
                getter = asyncio.ensure_future(queue.get())
                overflowed = asyncio.ensure_future(overflow.wait())
                left = asyncio.ensure_future(closed.wait())
                done, _ = await asyncio.wait({getter, overflowed, left}, return_when=asyncio.FIRST_COMPLETED)
                overflowed.cancel()
                left.cancel()
                if getter not in done:
                    getter.cancel()
                    if not closed.is_set():
                        await websocket.close(code=CLOSE_TOO_SLOW,
                                              reason=f"too slow; resume with since={sent or seen}")
                    return
                event = getter.result()
                if event.get("type") == NOTICE:
                    if wallet is None and (meter is None or event.get("meter_id") == meter):
                        await websocket.send_text(json.dumps(event))
                        ctx.metrics.ws_events.inc()
                    continue
                event_id = int(event["id"])
                if event_id <= seen:
                    continue
                verdict = _matches(event, wallet, meter)
                if event_id != seen + 1 or verdict is None:
                    seen = await fill(event_id)
                    continue
                if verdict:
                    await send(event)
                seen = event_id
        finally:
            for task in (pumping, reading):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
                    await task
