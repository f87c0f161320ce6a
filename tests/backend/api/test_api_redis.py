"""With Redis configured: sign-in nonces live there (shared by every api instance, expiring, used once),
/healthz reports it, the live feed runs through it (backend.feed.RedisFeed), and the order book is
cached for a short TTL, its version bumped by every trading event the feed carries."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.backend.api.api_support import RunningApi, TestWallet, running_api
from tests.backend.api.test_api_market import KWH, PRICE, registered, seed_grid
from tests.support.fixtures import pg_url  # noqa: F401

pytestmark = [pytest.mark.postgres, pytest.mark.chain]


@pytest.fixture
async def redis_client() -> AsyncIterator[Any]:
    client = aioredis.Redis(host="127.0.0.1", port=6379)
    await client.ping()
    yield client
    await client.aclose()


@pytest.fixture
async def api(pg_url: str, tmp_path: Path) -> AsyncIterator[RunningApi]:  # noqa: F811
    prefix = f"gtx-test-{uuid.uuid4().hex[:8]}"
    async with running_api(pg_url, tmp_path, redis_prefix=prefix, settings={"book_cache_ttl_s": 30}) as running:
        running.extra["prefix"] = prefix + ":"
        yield running


async def test_nonces_in_redis_expire_and_work_once(api: RunningApi, redis_client: Any) -> None:
    prefix = api.extra["prefix"]
    wallet = TestWallet()
    challenge = (await api.http.post("/auth/nonce", json={"address": wallet.address})).json()
    key = f"{prefix}nonce:{challenge['nonce']}"
    assert 0 < await redis_client.ttl(key) <= api.settings.nonce_ttl_s
    body = {"message": challenge["message"], "signature": str(wallet.key.sign_message(challenge["message"].encode()))}
    assert (await api.http.post("/auth/login", json=body)).status_code == 200
    assert await redis_client.exists(key) == 0
    replay = await api.http.post("/auth/login", json=body)
    assert replay.status_code == 401 and replay.json()["error"]["code"] == "nonce_used"
    health = (await api.http.get("/healthz")).json()
    assert health["checks"]["redis"]["status"] == "ok"


async def test_order_book_is_cached_in_redis(api: RunningApi, redis_client: Any) -> None:
    seller = await registered(api, "prosumer", "Seller")
    await seed_grid(api, seller, 2 * KWH)
    await seller.act(api.http, "POST", "/orders", {"amount": KWH, "price": PRICE})
    first = (await api.http.get("/orders/book")).json()
    assert len(first["items"]) == 1
    cached = [k async for k in redis_client.scan_iter(f"{api.extra['prefix']}book:*") if not k.endswith(b":version")]
    assert len(cached) == 1
    # a second read within the TTL is the cached page, not a query: shown by changing the cached copy
    await redis_client.set(cached[0], first_json := json.dumps({**first, "items": []}), px=30_000)
    assert (await api.http.get("/orders/book")).json() == json.loads(first_json)
    # a trading event bumps the book's version: the new order shows at once, cache or not
    await seller.act(api.http, "POST", "/orders", {"amount": KWH, "price": PRICE})
    for _ in range(50):
        if len((await api.http.get("/orders/book")).json()["items"]) == 2:
            break
        await asyncio.sleep(0.05)
    assert len((await api.http.get("/orders/book")).json()["items"]) == 2
