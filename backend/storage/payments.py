"""D7 payment records: THBC issued against a fiat deposit, THBC redeemed (burned for a payout), GRID
consumed (burned). One row per payments-program event.

``payments``: (signature, ix_index, event_index) primary key, kind (ISSUE | REDEEM | CONSUME), wallet,
asset (THBC for ISSUE/REDEEM, GRID for CONSUME), amount (base units), reference (the deposit or payout
reference), executed_at (chain unix seconds), slot, event_id (the ``chain_events`` row: the chain's order).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from backend.storage.sql import I64_MAX, Sql

__all__ = ["PAYMENT_KINDS", "PaymentRow", "insert_payment", "list_payments", "payment_totals"]

PAYMENT_KINDS = ("ISSUE", "REDEEM", "CONSUME")
_COLUMNS = "signature, ix_index, event_index, kind, wallet, asset, amount, reference, executed_at, slot, event_id"


@dataclass(frozen=True)
class PaymentRow:
    signature: str
    ix_index: int
    event_index: int
    kind: str
    wallet: str
    asset: str
    amount: int
    reference: str | None
    executed_at: int | None
    slot: int
    event_id: int | None = None


def _row(r: Sequence[Any]) -> PaymentRow:
    return PaymentRow(*r)


async def insert_payment(db: Sql, row: PaymentRow) -> bool:
    if row.kind not in PAYMENT_KINDS:
        raise ValueError(f"payment kind {row.kind!r} is not one of {PAYMENT_KINDS}")
    rows = await db.fetch(
        f"INSERT INTO payments ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
        "ON CONFLICT DO NOTHING RETURNING signature",
        row.signature, row.ix_index, row.event_index, row.kind, row.wallet, row.asset, row.amount, row.reference,
        row.executed_at, row.slot, row.event_id,
    )
    return bool(rows)


async def list_payments(db: Sql, *, wallet: str | None = None, kind: str | None = None,
                        reference: str | None = None, after: int | None = None, newest_first: bool = False,
                        limit: int = 100) -> list[PaymentRow]:
    """Payments in the chain's order, oldest first (or ``newest_first``); ``after``: the ``event_id`` of
    the previous page's last row (in the order listed)."""
    where, order = ("event_id < $1", "event_id DESC") if newest_first else ("event_id > $1", "event_id")
    start = (I64_MAX if newest_first else -1) if after is None else after
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM payments WHERE {where} "
        "AND (CAST($2 AS TEXT) IS NULL OR wallet = $2) AND (CAST($3 AS TEXT) IS NULL OR kind = $3) "
        f"AND (CAST($4 AS TEXT) IS NULL OR reference = $4) ORDER BY {order} LIMIT $5",
        start, wallet, kind, reference, limit,
    )
    return [_row(r) for r in rows]


async def payment_totals(db: Sql, *, since: int | None = None, until: int | None = None) -> dict[str, int]:
    """{kind: base units} over executed_at in [since, until)."""
    out = dict.fromkeys(PAYMENT_KINDS, 0)
    for kind, amount in await db.fetch(
        "SELECT kind, COALESCE(sum(amount), 0) FROM payments WHERE (CAST($1 AS BIGINT) IS NULL OR executed_at >= $1) "
        "AND (CAST($2 AS BIGINT) IS NULL OR executed_at < $2) GROUP BY kind",
        since, until,
    ):
        out[kind] = int(amount)
    return out
