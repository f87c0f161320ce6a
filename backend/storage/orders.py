"""D4 order book: the trading program's orders with the design's states.

``orders``: address (the order PDA, primary key), order_id (the seller's u64 id), seller, vault (escrow
token account), amount (GRID offered, base units), remaining, price (THBC base units per kWh), fee_bps
(the order's fee terms, when the program records them), proceeds (THBC the seller received, after fees),
escrow (GRID in the vault, from the D3 mirror), state, created_at / expires_at / closed_at (chain unix
seconds), created_signature, updated_signature, updated_slot, updated_ms.

States (design §5.1): CREATED (not used on chain: creation and escrow are one instruction, so an order is
ACTIVE as soon as it exists), ACTIVE, PARTIALLY_FILLED, FILLED, CANCELLED, EXPIRED. An order id the seller
reuses after closing the old order's account is a new order at the same address: its row replaces the
finished one (the old one's trades and events stay in D5 and ``chain_events``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from backend.storage.sql import Sql, now_ms, placeholders

__all__ = [
    "OPEN_STATES",
    "ORDER_STATES",
    "OrderRow",
    "expired_open_orders",
    "get_order",
    "in_escrow",
    "list_orders",
    "order_book",
    "recent_orders",
    "record_closed",
    "record_created",
    "record_fill",
    "record_filled",
    "set_escrow",
]

ORDER_STATES = ("CREATED", "ACTIVE", "PARTIALLY_FILLED", "FILLED", "CANCELLED", "EXPIRED")
OPEN_STATES = ("ACTIVE", "PARTIALLY_FILLED")
_COLUMNS = ("address, order_id, seller, vault, amount, remaining, price, fee_bps, proceeds, escrow, state, "
            "created_at, expires_at, closed_at, created_signature, updated_signature, updated_slot, updated_ms")


@dataclass(frozen=True)
class OrderRow:
    address: str
    order_id: int
    seller: str
    vault: str | None
    amount: int
    remaining: int
    price: int
    fee_bps: int | None
    proceeds: int
    escrow: int
    state: str
    created_at: int
    expires_at: int | None
    closed_at: int | None
    created_signature: str
    updated_signature: str
    updated_slot: int
    updated_ms: int

    @property
    def filled(self) -> int:
        return self.amount - self.remaining

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES


def _row(r: Sequence[Any]) -> OrderRow:
    return OrderRow(*r)


async def record_created(db: Sql, *, address: str, order_id: int, seller: str, vault: str | None, amount: int,
                         price: int, fee_bps: int | None, created_at: int, expires_at: int | None, signature: str,
                         slot: int) -> None:
    await db.execute(
        f"INSERT INTO orders ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $5, $6, $7, 0, $5, 'ACTIVE', $8, $9, NULL, "
        "$10, $10, $11, $12) "
        "ON CONFLICT (address) DO UPDATE SET order_id = excluded.order_id, seller = excluded.seller, "
        "vault = excluded.vault, amount = excluded.amount, remaining = excluded.remaining, price = excluded.price, "
        "fee_bps = excluded.fee_bps, proceeds = 0, escrow = excluded.escrow, state = 'ACTIVE', "
        "created_at = excluded.created_at, expires_at = excluded.expires_at, closed_at = NULL, "
        "created_signature = excluded.created_signature, updated_signature = excluded.updated_signature, "
        "updated_slot = excluded.updated_slot, updated_ms = excluded.updated_ms "
        "WHERE orders.state IN ('FILLED', 'CANCELLED', 'EXPIRED') "
        "AND orders.created_signature <> excluded.created_signature",
        address, order_id, seller, vault, amount, price, fee_bps, created_at, expires_at, signature, slot, now_ms(),
    )


async def record_fill(db: Sql, address: str, *, remaining: int, proceeds: int, signature: str, slot: int,
                      at: int | None = None) -> None:
    """A trade left ``remaining`` GRID on the order; ``proceeds``: what the seller received from it."""
    filled = remaining == 0
    await db.execute(
        "UPDATE orders SET remaining = $2, proceeds = proceeds + $3, state = $4, closed_at = COALESCE($5, closed_at), "
        "updated_signature = $6, updated_slot = $7, updated_ms = $8 WHERE address = $1",
        address, remaining, proceeds, "FILLED" if filled else "PARTIALLY_FILLED", at if filled else None, signature,
        slot, now_ms(),
    )


async def record_filled(db: Sql, address: str, *, remaining: int, proceeds: int, state: str, at: int | None,
                        signature: str, slot: int) -> None:
    """The order's state after a fill, as the program reports it (OrderFilled): what is left, the seller's
    proceeds so far (after fees) and the state."""
    if state not in ORDER_STATES:
        raise ValueError(f"order state {state!r} is not one of {ORDER_STATES}")
    await db.execute(
        "UPDATE orders SET remaining = $2, proceeds = $3, state = $4, closed_at = COALESCE($5, closed_at), "
        "updated_signature = $6, updated_slot = $7, updated_ms = $8 WHERE address = $1",
        address, remaining, proceeds, state, at if state == "FILLED" else None, signature, slot, now_ms(),
    )


async def record_closed(db: Sql, address: str, state: str, *, at: int, signature: str, slot: int) -> None:
    """CANCELLED or EXPIRED: the unsold GRID went back to the seller."""
    if state not in ("CANCELLED", "EXPIRED"):
        raise ValueError(f"an order closes as CANCELLED or EXPIRED, not {state}")
    await db.execute(
        "UPDATE orders SET state = $2, closed_at = $3, updated_signature = $4, updated_slot = $5, updated_ms = $6 "
        "WHERE address = $1",
        address, state, at, signature, slot, now_ms(),
    )


async def set_escrow(db: Sql, address: str, amount: int) -> None:
    await db.execute("UPDATE orders SET escrow = $2 WHERE address = $1", address, amount)


async def get_order(db: Sql, address: str) -> OrderRow | None:
    rows = await db.fetch(f"SELECT {_COLUMNS} FROM orders WHERE address = $1", address)
    return _row(rows[0]) if rows else None


async def list_orders(db: Sql, *, seller: str | None = None, states: Sequence[str] | None = None,
                      after: str | None = None, limit: int = 100) -> list[OrderRow]:
    """Orders by address (cursor: the previous page's last address), optionally one seller's / some states."""
    args: list[Any] = [after or "", limit]
    where = ["address > $1"]
    if seller is not None:
        args.append(seller)
        where.append(f"seller = ${len(args)}")
    if states:
        where.append(f"state IN ({placeholders(args, states)})")
    rows = await db.fetch(f"SELECT {_COLUMNS} FROM orders WHERE {' AND '.join(where)} ORDER BY address LIMIT $2",
                          *args)
    return [_row(r) for r in rows]


async def order_book(db: Sql, *, now: int | None = None, limit: int = 100, after: tuple[int, int, str] | None = None,
                     min_price: int | None = None, max_price: int | None = None, seller: str | None = None,
                     min_remaining: int = 1) -> list[OrderRow]:
    """Open orders in price-time order (cheapest first, then oldest); ``after``: (price, created_at,
    address) of the previous page's last row. Orders past their expiry (``expires_at <= now``) are left
    out: nobody can buy them, the crank closes them."""
    price, created, address = after if after is not None else (-1, -(2**62), "")
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM orders WHERE state IN ('ACTIVE', 'PARTIALLY_FILLED') AND remaining >= $6 "
        "AND (price, created_at, address) > ($1, $2, $3) "
        "AND (CAST($4 AS BIGINT) IS NULL OR expires_at IS NULL OR expires_at > $4) "
        "AND (CAST($5 AS BIGINT) IS NULL OR price <= $5) AND (CAST($8 AS BIGINT) IS NULL OR price >= $8) "
        "AND (CAST($9 AS TEXT) IS NULL OR seller = $9) ORDER BY price, created_at, address LIMIT $7",
        price, created, address, now, max_price, min_remaining, limit, min_price, seller,
    )
    return [_row(r) for r in rows]


async def recent_orders(db: Sql, seller: str, *, states: Sequence[str] | None = None,
                        before: tuple[int, str] | None = None, limit: int = 100) -> list[OrderRow]:
    """A seller's orders, newest first; ``before``: (created_at, address) of the previous page's last row."""
    created, address = before if before is not None else (2**62, "")
    args: list[Any] = [seller, created, address, limit, before is None]
    where = ["seller = $1", "(CAST($5 AS BOOLEAN) OR created_at < $2 OR (created_at = $2 AND address < $3))"]
    if states:
        where.append(f"state IN ({placeholders(args, states)})")
    rows = await db.fetch(f"SELECT {_COLUMNS} FROM orders WHERE {' AND '.join(where)} "
                          "ORDER BY created_at DESC, address DESC LIMIT $4", *args)
    return [_row(r) for r in rows]


async def in_escrow(db: Sql, seller: str) -> int:
    """GRID a seller has on offer: what is left on their open orders (held in the orders' vaults)."""
    rows = await db.fetch("SELECT COALESCE(sum(remaining), 0) FROM orders WHERE seller = $1 "
                          "AND state IN ('ACTIVE', 'PARTIALLY_FILLED')", seller)
    return int(rows[0][0])


async def expired_open_orders(db: Sql, now: int, *, limit: int = 100) -> list[OrderRow]:
    """Open orders whose expiry has passed (``expires_at <= now``): what the crank closes."""
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM orders WHERE state IN ('ACTIVE', 'PARTIALLY_FILLED') AND expires_at <= $1 "
        "ORDER BY expires_at, address LIMIT $2",
        now, limit,
    )
    return [_row(r) for r in rows]
