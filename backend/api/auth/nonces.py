"""Single-use sign-in nonces: in Redis when configured (shared by every api instance), else in the
database (backend/storage/nonces.py). Either way a nonce is accepted once and only before it expires."""

from __future__ import annotations

from typing import Any, Protocol

from backend.storage import Sql, nonces

__all__ = ["NonceStore", "RedisNonceStore", "SqlNonceStore"]


class NonceStore(Protocol):
    async def issue(self, nonce: str, ttl_s: int) -> None: ...

    async def consume(self, nonce: str) -> bool: ...


class RedisNonceStore:
    def __init__(self, redis: Any, prefix: str = "gridtokenx:nonce:") -> None:
        self.redis = redis
        self.prefix = prefix

    async def issue(self, nonce: str, ttl_s: int) -> None:
        await self.redis.set(self.prefix + nonce, b"1", ex=ttl_s, nx=True)

    async def consume(self, nonce: str) -> bool:
        # GETDEL is atomic: two logins racing with one nonce cannot both see it.
        return await self.redis.getdel(self.prefix + nonce) is not None


class SqlNonceStore:
    def __init__(self, db: Sql) -> None:
        self.db = db

    async def issue(self, nonce: str, ttl_s: int) -> None:
        await nonces.issue_nonce(self.db, nonce, ttl_s)

    async def consume(self, nonce: str) -> bool:
        return await nonces.consume_nonce(self.db, nonce)
