"""D1 user database: profiles (the API writes them) and on-chain registrations (the indexer writes them).

``users``: wallet_address (base58, primary key), user_type (prosumer | consumer), name (display name),
pda_address (the registry's User PDA, once the chain confirmed it), registered_at (chain unix seconds),
registration_signature, created_ms, last_active_ms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from backend.storage.sql import Sql, now_ms

__all__ = ["UserRow", "get_user", "list_users", "name_taken", "record_registration", "save_profile", "touch"]

_COLUMNS = ("wallet_address, user_type, name, pda_address, registered_at, registration_signature, created_ms, "
            "last_active_ms")


@dataclass(frozen=True)
class UserRow:
    wallet_address: str
    user_type: str
    name: str | None
    pda_address: str | None
    registered_at: int | None
    registration_signature: str | None
    created_ms: int
    last_active_ms: int | None

    @property
    def registered(self) -> bool:
        """The chain holds this user's account."""
        return self.pda_address is not None


def _row(r: Sequence[Any]) -> UserRow:
    return UserRow(*r)


async def save_profile(db: Sql, wallet: str, user_type: str, name: str | None) -> None:
    """Create or update a profile (the API, after sign-in). A type already confirmed on chain stays."""
    await db.execute(
        "INSERT INTO users (wallet_address, user_type, name, created_ms) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (wallet_address) DO UPDATE SET name = excluded.name, "
        "user_type = CASE WHEN users.pda_address IS NULL THEN excluded.user_type ELSE users.user_type END",
        wallet, user_type, name, now_ms(),
    )


async def record_registration(db: Sql, wallet: str, user_type: str, pda_address: str, registered_at: int | None,
                              signature: str) -> None:
    """The chain registered ``wallet`` (the indexer): a profile is created if the API never saw it."""
    await db.execute(
        "INSERT INTO users (wallet_address, user_type, pda_address, registered_at, registration_signature, "
        "created_ms) VALUES ($1, $2, $3, $4, $5, $6) "
        "ON CONFLICT (wallet_address) DO UPDATE SET user_type = excluded.user_type, "
        "pda_address = excluded.pda_address, registered_at = excluded.registered_at, "
        "registration_signature = excluded.registration_signature",
        wallet, user_type, pda_address, registered_at, signature, now_ms(),
    )


async def touch(db: Sql, wallet: str, when_ms: int | None = None) -> None:
    await db.execute("UPDATE users SET last_active_ms = $2 WHERE wallet_address = $1", wallet,
                     now_ms() if when_ms is None else when_ms)


async def get_user(db: Sql, wallet: str) -> UserRow | None:
    rows = await db.fetch(f"SELECT {_COLUMNS} FROM users WHERE wallet_address = $1", wallet)
    return _row(rows[0]) if rows else None


async def list_users(db: Sql, *, after: str | None = None, limit: int = 100) -> list[UserRow]:
    """Users by wallet address; ``after``: the last wallet of the previous page (cursor pagination)."""
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM users WHERE wallet_address > $1 ORDER BY wallet_address LIMIT $2",
        after or "", limit,
    )
    return [_row(r) for r in rows]


async def name_taken(db: Sql, name: str, wallet: str) -> bool:
    """Another wallet already goes by ``name`` (compared without case)."""
    return bool(await db.fetch("SELECT 1 FROM users WHERE lower(name) = lower($1) AND wallet_address <> $2 LIMIT 1",
                               name, wallet))
