"""D5 trade history: one row per TradeExecuted event.

``trades``: (signature, ix_index, event_index) primary key, order_address, seller, buyer, amount (GRID base
units), price (THBC base units per kWh), cost (THBC the buyer paid), fee (of the cost, to the market),
remaining (GRID left on the order), executed_at (chain unix seconds), slot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from backend.storage.database import Sql

__all__ = ["TradeRow", "insert_trade", "list_trades", "trade_totals"]

_COLUMNS = ("signature, ix_index, event_index, order_address, seller, buyer, amount, price, cost, fee, remaining, "
            "executed_at, slot")


@dataclass(frozen=True)
class TradeRow:
    signature: str
    ix_index: int
    event_index: int
    order_address: str
    seller: str
    buyer: str
    amount: int
    price: int
    cost: int
    fee: int
    remaining: int
    executed_at: int
    slot: int

    @property
    def seller_received(self) -> int:
        return self.cost - self.fee


def _row(r: Sequence[Any]) -> TradeRow:
    return TradeRow(*r)


async def insert_trade(db: Sql, row: TradeRow) -> bool:
    rows = await db.fetch(
        f"INSERT INTO trades ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) "
        "ON CONFLICT DO NOTHING RETURNING signature",
        row.signature, row.ix_index, row.event_index, row.order_address, row.seller, row.buyer, row.amount,
        row.price, row.cost, row.fee, row.remaining, row.executed_at, row.slot,
    )
    return bool(rows)


async def list_trades(db: Sql, *, order_address: str | None = None, wallet: str | None = None,
                      since: int | None = None, until: int | None = None,
                      after: tuple[int, str, int, int] | None = None, limit: int = 100) -> list[TradeRow]:
    """Trades oldest first; ``wallet`` as seller or buyer; ``since``/``until``: executed_at range [since,
    until); ``after``: (executed_at, signature, ix_index, event_index) of the previous page's last trade."""
    at, sig, ix, ev = after if after is not None else (-(2**62), "", -1, -1)
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM trades WHERE (executed_at, signature, ix_index, event_index) > ($1, $2, $3, $4) "
        "AND (CAST($5 AS TEXT) IS NULL OR order_address = $5) "
        "AND (CAST($6 AS TEXT) IS NULL OR seller = $6 OR buyer = $6) "
        "AND (CAST($7 AS BIGINT) IS NULL OR executed_at >= $7) AND (CAST($8 AS BIGINT) IS NULL OR executed_at < $8) "
        "ORDER BY executed_at, signature, ix_index, event_index LIMIT $9",
        at, sig, ix, ev, order_address, wallet, since, until, limit,
    )
    return [_row(r) for r in rows]


async def trade_totals(db: Sql, *, since: int | None = None, until: int | None = None) -> dict[str, dict[str, int]]:
    """Per seller: {"sold": GRID, "cost": THBC paid by buyers, "fee": THBC fees, "trades": n}; per buyer
    the same under key ``buyer:<wallet>`` with "bought"."""
    rows = await db.fetch(
        "SELECT seller, buyer, amount, cost, fee FROM trades WHERE (CAST($1 AS BIGINT) IS NULL OR executed_at >= $1) "
        "AND (CAST($2 AS BIGINT) IS NULL OR executed_at < $2)",
        since, until,
    )
    out: dict[str, dict[str, int]] = {}
    for seller, buyer, amount, cost, fee in rows:
        s = out.setdefault(seller, {"sold": 0, "bought": 0, "received": 0, "paid": 0, "fee": 0, "trades": 0})
        s["sold"] += int(amount)
        s["received"] += int(cost) - int(fee)
        s["fee"] += int(fee)
        s["trades"] += 1
        b = out.setdefault(buyer, {"sold": 0, "bought": 0, "received": 0, "paid": 0, "fee": 0, "trades": 0})
        b["bought"] += int(amount)
        b["paid"] += int(cost)
        b["trades"] += 1 if buyer != seller else 0
    return out
