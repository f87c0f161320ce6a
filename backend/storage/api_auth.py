"""The api role's own table: sign-in nonces (used once, expiring). Separate from D1-D7 on purpose:
it is session plumbing, not a data store of the design, and only the api touches it.

Used when no Redis is configured; with Redis the nonces live there (``SET NX EX`` / ``GETDEL``).
"""

from __future__ import annotations

import time

from backend.storage.database import Storage

__all__ = ["SqlNonceStore", "ensure_api_auth_schema"]

_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS api_nonces (nonce TEXT PRIMARY KEY, expires_ms BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS api_nonces_expiry ON api_nonces (expires_ms)",
]


async def ensure_api_auth_schema(storage: Storage) -> None:
    for statement in _SCHEMA:
        await storage.execute(statement)


class SqlNonceStore:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def issue(self, nonce: str, ttl_s: int) -> None:
        now = int(time.time() * 1000)
        await self.storage.execute("DELETE FROM api_nonces WHERE expires_ms < $1", now)
        await self.storage.execute(
            "INSERT INTO api_nonces (nonce, expires_ms) VALUES ($1, $2)", nonce, now + ttl_s * 1000
        )

    async def consume(self, nonce: str) -> bool:
        """True once for a nonce issued and not expired; False after (replay) or for an unknown one."""
        rows = await self.storage.fetch(
            "DELETE FROM api_nonces WHERE nonce = $1 AND expires_ms >= $2 RETURNING nonce",
            nonce,
            int(time.time() * 1000),
        )
        return bool(rows)
