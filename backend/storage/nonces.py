"""The api role's sign-in nonces, when no Redis is configured (with Redis they live there: ``SET NX EX`` /
``GETDEL``). Session plumbing, not a data store of the design; only the api touches it.

``api_nonces``: nonce (primary key), expires_ms. A nonce is consumed once, and only before it expires.
"""

from __future__ import annotations

from backend.storage.sql import Sql, now_ms

__all__ = ["consume_nonce", "issue_nonce"]


async def issue_nonce(db: Sql, nonce: str, ttl_s: int) -> None:
    """Store a new nonce (and drop the expired ones, so the table stays small)."""
    now = now_ms()
    await db.execute("DELETE FROM api_nonces WHERE expires_ms < $1", now)
    await db.execute("INSERT INTO api_nonces (nonce, expires_ms) VALUES ($1, $2)", nonce, now + ttl_s * 1000)


async def consume_nonce(db: Sql, nonce: str) -> bool:
    """True once for a nonce issued and not expired; False after (a replay) or for an unknown one."""
    rows = await db.fetch("DELETE FROM api_nonces WHERE nonce = $1 AND expires_ms >= $2 RETURNING nonce",
                          nonce, now_ms())
    return bool(rows)
