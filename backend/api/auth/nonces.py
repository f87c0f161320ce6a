"""Single-use sign-in nonces: in Redis when configured (shared by every api instance), else in the
database (backend.storage.api_auth). Either way a nonce is accepted once and only before it expires."""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["NonceStore", "RedisNonceStore"]


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
