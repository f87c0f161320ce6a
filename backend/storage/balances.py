"""D3 token ledger mirror: every GRID and THBC token account our programs' transactions touched.

``token_accounts``: address (primary key), owner (wallet, or the order PDA for an escrow vault), mint,
asset (GRID | THBC), amount (base units), escrow_order (the order whose vault this is; NULL for a
wallet's account), closed, and the (slot, position, signature) of the transaction whose post-state set
it. Balances are set from the chain's own post-transaction token balances, never summed from deltas, so
a replay or a second indexer can only write the same value; a write older than the stored one (by slot,
then position) is ignored. ``wallet_balances`` (a view) sums a wallet's open non-escrow accounts per asset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from backend.storage.sql import Sql, now_ms

__all__ = ["TokenAccountRow", "set_token_balance", "token_accounts", "wallet_balances"]

_COLUMNS = "address, owner, mint, asset, amount, escrow_order, closed, slot, position, signature, updated_ms"


@dataclass(frozen=True)
class TokenAccountRow:
    address: str
    owner: str
    mint: str
    asset: str
    amount: int
    escrow_order: str | None
    closed: bool
    slot: int
    position: int
    signature: str
    updated_ms: int


def _row(r: Sequence[Any]) -> TokenAccountRow:
    return TokenAccountRow(r[0], r[1], r[2], r[3], int(r[4]), r[5], bool(r[6]), int(r[7]), int(r[8]), r[9],
                           int(r[10]))


async def set_token_balance(db: Sql, *, address: str, owner: str, mint: str, asset: str, amount: int,
                            escrow_order: str | None, closed: bool, slot: int, position: int,
                            signature: str) -> None:
    await db.execute(
        f"INSERT INTO token_accounts ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
        "ON CONFLICT (address) DO UPDATE SET owner = excluded.owner, mint = excluded.mint, asset = excluded.asset, "
        "amount = excluded.amount, escrow_order = COALESCE(excluded.escrow_order, token_accounts.escrow_order), "
        "closed = excluded.closed, slot = excluded.slot, position = excluded.position, "
        "signature = excluded.signature, updated_ms = excluded.updated_ms "
        "WHERE (token_accounts.slot, token_accounts.position) <= (excluded.slot, excluded.position)",
        address, owner, mint, asset, amount, escrow_order, closed, slot, position, signature, now_ms(),
    )


async def wallet_balances(db: Sql, wallet: str) -> dict[str, int]:
    """{asset: base units} over the wallet's open accounts (escrow excluded); assets it never held are 0."""
    out = {"GRID": 0, "THBC": 0}
    for asset, amount in await db.fetch("SELECT asset, amount FROM wallet_balances WHERE wallet = $1", wallet):
        out[asset] = int(amount)
    return out


async def token_accounts(db: Sql, *, owner: str | None = None, asset: str | None = None,
                         include_closed: bool = True, escrow: bool | None = None) -> list[TokenAccountRow]:
    """Mirrored token accounts, optionally one owner's or one asset's; ``escrow`` True: only order vaults,
    False: only wallets' accounts."""
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM token_accounts WHERE (CAST($1 AS TEXT) IS NULL OR owner = $1) "
        "AND (CAST($2 AS TEXT) IS NULL OR asset = $2) ORDER BY address",
        owner, asset,
    )
    out = [_row(r) for r in rows]
    if not include_closed:
        out = [r for r in out if not r.closed]
    if escrow is not None:
        out = [r for r in out if (r.escrow_order is not None) == escrow]
    return out
