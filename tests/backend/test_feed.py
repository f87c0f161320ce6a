"""The live feed: every subscriber gets every event once, in order; in one process or through Redis."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import uuid
from pathlib import Path

import pytest

from backend.feed import NOTICE, FeedOverflow, InProcessFeed, RedisFeed, RejectionNotices
from backend.indexer.decode import event_kinds
from backend.storage.database import QuarantineRow
from backend.storage.events import EventRecord

REDIS_URL = "redis://127.0.0.1:6379/0"


def _record(i: int) -> EventRecord:
    return EventRecord(i, f"sig{i}", 0, 0, i, 1_700_000_000, "trading", "order_created", 1, f"Order{i}", None,
                       {"amount": 2**64 - 1}, ("Seller",))


async def _take(sub: object, n: int) -> list[dict[str, object]]:
    out = []
    async with asyncio.timeout(10):
        async for event in sub:  # type: ignore[attr-defined]
            out.append(event)
            if len(out) == n:
                return out
    return out


async def test_in_process_subscribers_each_get_every_event_once() -> None:
    feed = InProcessFeed()
    async with feed.subscribe() as one, feed.subscribe() as two:
        await feed.publish([_record(i) for i in range(1, 6)])
        got_one, got_two = await asyncio.gather(_take(one, 5), _take(two, 5))
    assert [e["id"] for e in got_one] == [e["id"] for e in got_two] == [1, 2, 3, 4, 5]
    assert got_one[0]["data"] == {"amount": 2**64 - 1} and got_one[0]["wallets"] == ["Seller"]
    assert feed.subscribers == 0


async def test_a_subscriber_that_falls_behind_is_cut_off_not_the_indexer() -> None:
    feed = InProcessFeed(max_queue=3)
    async with feed.subscribe() as slow:
        await feed.publish([_record(i) for i in range(1, 10)])  # never blocks
        assert [e["id"] for e in await _take(slow, 3)] == [1, 2, 3]
        with pytest.raises(FeedOverflow):
            await slow.__anext__()


async def test_redis_carries_events_between_instances_once() -> None:
    prefix = f"gtx-test-{uuid.uuid4().hex[:10]}"  # a channel of this test's own on the shared server
    first, second = RedisFeed(REDIS_URL, prefix), RedisFeed(REDIS_URL, prefix)
    try:
        async with first.subscribe() as here, second.subscribe() as there:
            await first.publish([_record(1), _record(2)])  # one instance's indexer applied them
            await second.publish([_record(3)])  # the other's applied this one
            got_here, got_there = await asyncio.gather(_take(here, 3), _take(there, 3))
            assert [e["id"] for e in got_here] == [e["id"] for e in got_there] == [1, 2, 3]
            await asyncio.sleep(0.2)
            with pytest.raises(TimeoutError):  # nothing twice
                async with asyncio.timeout(0.3):
                    await here.__anext__()
        assert first.published == 2 and second.published == 1
    finally:
        await first.close()
        await second.close()


def test_the_event_vocabulary_is_documented_once() -> None:
    """docs/backend.md "Events" lists every kind the indexer records, with its program, and every field of
    an event record; docs/api.md points there and names no kind the indexer does not record."""
    docs = Path(__file__).parents[2] / "docs"
    section = (docs / "backend.md").read_text().split("\n## Events\n", 1)[1].split("\n## ", 1)[0]
    kinds_part, record_part = section.split("**An event record**")
    documented = re.findall(r"^\| `([a-z_]+)` \| ([a-z_]+) \w+ \|", kinds_part, re.MULTILINE)
    every = {(kind, program) for program, kinds in event_kinds().items() for kind in kinds}
    assert len(documented) == len(set(documented)) and set(documented) == every
    rows = re.findall(r"^\| ((?:`[a-z_]+`(?:, )?)+) \|", record_part, re.MULTILINE)
    fields = {name for row in rows for name in re.findall(r"`([a-z_]+)`", row)}
    assert fields == {f.name for f in dataclasses.fields(EventRecord)} - {"payload"} | {"data"}
    api = (docs / "api.md").read_text()
    assert "backend.md#events" in api
    snake = set(re.findall(r"`([a-z]+_[a-z_]+)`", api))
    kinds = {kind for kind, _ in every}
    assert {"payment_issued", "payment_redeemed"}.isdisjoint(snake)
    assert {k for k in snake if k.endswith(("_issued", "_redeemed", "_consumed", "_executed"))} <= kinds


async def test_notices_reach_only_subscribers_that_ask_for_them_and_never_take_an_id() -> None:
    feed = InProcessFeed()
    async with feed.subscribe() as events_only, feed.subscribe(notices=True) as live:
        notice = {"kind": "reading_rejected", "meter_id": "m1", "seq": 5, "reason": "bad_signature"}
        await feed.publish_notices([notice])
        await feed.publish([_record(1)])
        got = await _take(live, 2)
        assert got[0] == {"kind": "reading_rejected", "meter_id": "m1", "seq": 5, "reason": "bad_signature",
                          "type": NOTICE}
        assert got[1]["id"] == 1
        assert [e["id"] for e in await _take(events_only, 1)] == [1]  # the notice passed it by


async def test_redis_carries_notices_between_instances() -> None:
    prefix = f"gtx-test-{uuid.uuid4().hex[:10]}"
    ingest_side, api_side = RedisFeed(REDIS_URL, prefix), RedisFeed(REDIS_URL, prefix)
    try:
        async with api_side.subscribe(notices=True) as live, api_side.subscribe() as events_only:
            await ingest_side.publish_notices([{"kind": "reading_rejected", "meter_id": "m2", "seq": 1}])
            await ingest_side.publish([_record(7)])
            got = await _take(live, 2)
            assert (got[0]["type"], got[0]["meter_id"], got[1]["id"]) == (NOTICE, "m2", 7)
            assert [e["id"] for e in await _take(events_only, 1)] == [7]
    finally:
        await ingest_side.close()
        await api_side.close()


async def test_rejection_notices_are_rate_limited_and_count_what_they_drop() -> None:
    feed = InProcessFeed()
    now = [0.0]
    notices = RejectionNotices(feed, rate=10, burst=20, clock=lambda: now[0])
    rows = [QuarantineRow("gw", "bad_signature", "m1", seq) for seq in range(50)]
    async with feed.subscribe(notices=True) as live:
        await notices(rows)  # a burst: 20 pass, 30 are dropped
        now[0] = 1.0
        await notices(rows[:15])  # a second later: 10 more tokens
        got = await _take(live, 30)
    assert [n["seq"] for n in got] == list(range(20)) + list(range(10))
    assert {n["kind"] for n in got} == {"reading_rejected"} and got[0]["gateway_id"] == "gw"
    assert (notices.sent, notices.dropped) == (30, 35)
