"""D5 trade history: one row per TradeExecuted event.

``trades``: (signature, ix_index, event_index) primary key, order_address, seller, buyer, amount (GRID base
units), price (THBC base units per kWh), cost (THBC the buyer paid), fee (of the cost, to the market),
remaining (GRID left on the order), executed_at (chain unix seconds), slot, event_id (the ``chain_events``
row: trades are listed in its order, the chain's).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from backend.storage.sql import I64_MAX, Sql

__all__ = ["TradeRow", "insert_trade", "list_trades", "trade_totals"]

_COLUMNS = ("signature, ix_index, event_index, order_address, seller, buyer, amount, price, cost, fee, remaining, "
            "executed_at, slot, event_id")


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
    event_id: int | None = None

    @property
    def seller_received(self) -> int:
        return self.cost - self.fee


def _row(r: Sequence[Any]) -> TradeRow:
    return TradeRow(*r)


async def insert_trade(db: Sql, row: TradeRow) -> bool:
    rows = await db.fetch(
        f"INSERT INTO trades ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) "
        "ON CONFLICT DO NOTHING RETURNING signature",
        row.signature, row.ix_index, row.event_index, row.order_address, row.seller, row.buyer, row.amount,
        row.price, row.cost, row.fee, row.remaining, row.executed_at, row.slot, row.event_id,
    )
    return bool(rows)


async def list_trades(db: Sql, *, order_address: str | None = None, wallet: str | None = None,
                      since: int | None = None, until: int | None = None, after: int | None = None,
                      newest_first: bool = False, limit: int = 100) -> list[TradeRow]:
    """Trades in the chain's order, oldest first (or ``newest_first``); ``wallet`` as seller or buyer;
    ``since``/``until``: executed_at range [since, until); ``after``: the ``event_id`` of the previous
    page's last trade (in the order listed)."""
    where, order = ("event_id < $1", "event_id DESC") if newest_first else ("event_id > $1", "event_id")
    start = (I64_MAX if newest_first else -1) if after is None else after
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM trades WHERE {where} "
        "AND (CAST($2 AS TEXT) IS NULL OR order_address = $2) "
        "AND (CAST($3 AS TEXT) IS NULL OR seller = $3 OR buyer = $3) "
        "AND (CAST($4 AS BIGINT) IS NULL OR executed_at >= $4) AND (CAST($5 AS BIGINT) IS NULL OR executed_at < $5) "
        f"ORDER BY {order} LIMIT $6",
        start, order_address, wallet, since, until, limit,
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
